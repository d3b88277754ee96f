//! Production: a job the router assigned goes to its machine through the machine's command
//! interface (`JobCommand::Start`, whatever the protocol), and what the machine then reports
//! (started, progress, paused, finished, failed, cancelled) moves the job. Every move is a
//! compare-and-set on the job's status in the store, so a retried or late report never moves
//! a job twice, and a job is sent at most once per assignment: the send happens only after
//! the job moved from `assigned` to `sending`, which only one writer can do.

use std::path::PathBuf;

use chrono::Utc;

use crate::domain::equipment::Connection;
use crate::domain::job_lifecycle::JobStatus;
use crate::domain::jobs::{FileFetch, JobCommand, JobEvent, JobRefusal};
use crate::store::equipment::EquipmentRecord;
use crate::store::files::FilesError;
use crate::store::jobs::{JobMove, JobRecord};
use crate::store::StoreError;

use super::jobs::announce;
use super::Services;

/// A failed print goes back to the queue once, for another machine.
const MAX_FAILURES: usize = 2;
/// After this many sends of a job (refused or not), a machine that refuses it is not asked
/// again for it.
const MAX_REFUSED_SENDS: i32 = 3;
/// How long a machine that refused a job is left alone before it is offered one again.
const REFUSAL_PAUSE: std::time::Duration = std::time::Duration::from_secs(5);

/// Who moves a job when the router or a machine does.
const ROUTER: &str = "router";
const MACHINE: &str = "machine";

/// Where a job's file is put for the machine's adapter to send: the data folder's `outbox/`.
fn outbox_path(svc: &Services, job: &JobRecord) -> PathBuf {
    svc.settings.data_dir.join("outbox").join(&job.id).join(&job.file_name)
}

/// Gives the machine the job's file and tells it to start. A machine on the generic topics
/// (makrcave-bridge) is told where to fetch the file; for the others (OctoPrint, Bambu) the
/// adapter sends a local copy, taken out of storage for the send and removed after it.
async fn send_file(svc: &Services, job: &JobRecord, equipment_id: &str) -> Result<(), JobRefusal> {
    let fetches_itself = matches!(
        svc.store.get_equipment(equipment_id).await,
        Ok(Some(EquipmentRecord { connection: Connection::Mqtt, .. }))
    );
    let unreadable = |e: FilesError| {
        tracing::error!(job_id = %job.id, error = %e, "cannot take a job's file out of storage");
        JobRefusal::Rejected(format!("makrcave could not read the job's file: {e}"))
    };
    let (command, local_copy) = if fetches_itself {
        let size = svc.files.size(&job.file_sha256).await.map_err(unreadable)?;
        let fetch =
            FileFetch { job_id: job.id.clone(), name: job.file_name.clone(), sha256: job.file_sha256.clone(), size };
        (JobCommand::Start { file: job.file_name.clone(), fetch: Some(fetch) }, None)
    } else {
        let path = outbox_path(svc, job);
        svc.files.copy_to(&job.file_sha256, &path).await.map_err(unreadable)?;
        (JobCommand::Start { file: path.display().to_string(), fetch: None }, Some(path))
    };
    let sent = match svc.fleet.control(&job.makerspace_id, equipment_id, command).await {
        Ok(answer) => answer,
        Err(_) => Err(JobRefusal::Offline),
    };
    // The adapter read the file (OctoPrint, Bambu) or never will: the copy is not needed.
    if let Some(path) = local_copy {
        let _ = tokio::fs::remove_dir_all(path.parent().unwrap_or(&path)).await;
    }
    sent
}

/// Sends an assigned job to its machine. Answers the job as it ends up (`None`: it was not
/// queued any more, nothing done); a job that could not be sent is back in the queue.
pub async fn start(svc: &Services, job_id: &str, equipment_id: &str) -> Result<Option<JobRecord>, StoreError> {
    let mut assign = JobMove::new(job_id, &[JobStatus::Queued], JobStatus::Assigned, ROUTER, Utc::now());
    assign.equipment_id = Some(Some(equipment_id.to_string()));
    let Some(job) = svc.store.move_job(&assign).await? else { return Ok(None) };
    announce(svc, &job);
    let mut send = JobMove::new(job_id, &[JobStatus::Assigned], JobStatus::Sending, ROUTER, Utc::now());
    send.count_attempt = true;
    let Some(job) = svc.store.move_job(&send).await? else { return Ok(None) };
    announce(svc, &job);
    let sent = send_file(svc, &job, equipment_id).await;
    match sent {
        Ok(()) => {
            metrics::counter!(crate::metrics::JOBS_STARTED).increment(1);
            Ok(Some(job))
        }
        Err(refusal) => {
            // Back to the queue. A machine whose connection cannot print files, or that said
            // no to this job several times, is not asked again for it. One that was offline,
            // busy, or refused once (OctoPrint still finishing the last print, say) is left
            // alone for a moment and may be offered the job again.
            let mut back =
                JobMove::new(job_id, &[JobStatus::Sending, JobStatus::Assigned], JobStatus::Queued, ROUTER, Utc::now());
            back.equipment_id = Some(None);
            back.reason = Some(format!("{equipment_id} did not take it: {refusal}"));
            let given_up = match &refusal {
                JobRefusal::Unsupported(_) => true,
                JobRefusal::Rejected(_) => job.attempts >= MAX_REFUSED_SENDS,
                _ => false,
            };
            if given_up {
                back.avoid = Some(equipment_id.to_string());
            }
            let job = svc.store.move_job(&back).await?;
            if let Some(job) = &job {
                announce(svc, job);
                svc.router.job_queued(job.clone());
            }
            let router = svc.router.clone();
            let equipment_id = equipment_id.to_string();
            tokio::spawn(async move {
                tokio::time::sleep(REFUSAL_PAUSE).await;
                router.release(&equipment_id);
            });
            Ok(job)
        }
    }
}

/// A job event a machine reported moves the job it holds, if makrcave sent it one.
pub async fn on_machine_event(
    svc: &Services,
    makerspace_id: &str,
    equipment_id: &str,
    event: &JobEvent,
) -> Result<(), StoreError> {
    let job = svc.store.job_on_machine(equipment_id).await?.filter(|j| j.makerspace_id == makerspace_id);
    let now = Utc::now();
    let ends = matches!(event, JobEvent::JobFinished | JobEvent::JobFailed { .. } | JobEvent::JobCancelled);
    let Some(job) = job else {
        if let JobEvent::JobStarted { file } = event {
            cancel_if_cancelled_while_sent(svc, makerspace_id, equipment_id, file.as_deref()).await?;
        }
        // A print started by hand, or a job already cancelled from makrcave: nothing of ours
        // to move, but the machine is free of it.
        if ends {
            svc.router.release(equipment_id);
        }
        return Ok(());
    };
    let step = |from: &[JobStatus], to: JobStatus| JobMove::new(&job.id, from, to, MACHINE, now);
    let running = [JobStatus::Assigned, JobStatus::Sending, JobStatus::Printing, JobStatus::Paused];
    let moved = match event {
        JobEvent::JobStarted { .. } => {
            svc.store.move_job(&step(&[JobStatus::Assigned, JobStatus::Sending], JobStatus::Printing)).await?
        }
        JobEvent::JobProgress { progress } => {
            svc.store.set_job_progress(&job.id, progress.clamp(0.0, 100.0), now).await?;
            None
        }
        JobEvent::JobPaused => svc.store.move_job(&step(&[JobStatus::Printing], JobStatus::Paused)).await?,
        JobEvent::JobResumed => svc.store.move_job(&step(&[JobStatus::Paused], JobStatus::Printing)).await?,
        JobEvent::JobFinished => {
            let done = svc.store.move_job(&step(&running, JobStatus::Done)).await?;
            if let Some(done) = &done {
                charge_material(svc, done, equipment_id).await;
            }
            done
        }
        JobEvent::JobCancelled => {
            let mut cancel = step(&running, JobStatus::Cancelled);
            cancel.reason = Some("cancelled on the machine".into());
            svc.store.move_job(&cancel).await?
        }
        JobEvent::JobFailed { reason } => fail(svc, &job, equipment_id, reason).await?,
    };
    // The router hears that the machine is free of the job before anyone hears that the job
    // ended: whoever then asks why another job waits is told about the machine as it is now.
    if ends {
        svc.router.release(equipment_id);
    }
    if let Some(moved) = &moved {
        announce(svc, moved);
        if matches!(moved.status, JobStatus::Done | JobStatus::Failed | JobStatus::Cancelled) {
            charge_use(svc, moved).await;
        }
    }
    Ok(())
}

/// A job cancelled while its file was on its way starts all the same once the machine has it;
/// the machine's report of that start is when makrcave can stop it. A start of the file last
/// sent to the machine, for a job cancelled in the last ten minutes, is cancelled on the
/// machine (a print someone started by hand names another file, or comes later).
async fn cancel_if_cancelled_while_sent(
    svc: &Services,
    makerspace_id: &str,
    equipment_id: &str,
    file: Option<&str>,
) -> Result<(), StoreError> {
    let Some(last) = svc.store.last_job_on_machine(equipment_id).await? else { return Ok(()) };
    let recent = Utc::now() - last.updated_at < chrono::Duration::minutes(10);
    let same_file = file.is_none_or(|f| f.rsplit(['/', '\\']).next() == Some(last.file_name.as_str()));
    if last.status != JobStatus::Cancelled || !recent || !same_file || last.makerspace_id != makerspace_id {
        return Ok(());
    }
    tracing::info!(job_id = %last.id, equipment_id, "a job cancelled while it was sent started: cancelling it on the machine");
    match svc.fleet.control(makerspace_id, equipment_id, JobCommand::Cancel).await {
        Ok(Ok(())) => {}
        Ok(Err(refusal)) => {
            tracing::warn!(job_id = %last.id, equipment_id, %refusal, "the machine did not take the cancel of a cancelled job")
        }
        Err(_) => tracing::warn!(job_id = %last.id, equipment_id, "the machine of a cancelled job is gone"),
    }
    Ok(())
}

/// A failed print is logged against the machine, then goes back to the queue once for another
/// machine; a second failure is final.
async fn fail(
    svc: &Services,
    job: &JobRecord,
    equipment_id: &str,
    reason: &str,
) -> Result<Option<JobRecord>, StoreError> {
    let running = [JobStatus::Assigned, JobStatus::Sending, JobStatus::Printing, JobStatus::Paused];
    let mut failed = JobMove::new(&job.id, &running, JobStatus::Failed, MACHINE, Utc::now());
    failed.reason = Some(reason.to_string());
    failed.failure_reason = Some(reason.to_string());
    failed.avoid = Some(equipment_id.to_string());
    let Some(failed) = svc.store.move_job(&failed).await? else { return Ok(None) };
    // Sends a machine refused are attempts too; only prints that failed count here.
    let failures =
        svc.store.job_transitions(&job.id).await?.iter().filter(|t| t.to_status == JobStatus::Failed).count();
    if failures >= MAX_FAILURES {
        return Ok(Some(failed));
    }
    announce(svc, &failed);
    let mut retry = JobMove::new(&job.id, &[JobStatus::Failed], JobStatus::Queued, ROUTER, Utc::now());
    retry.equipment_id = Some(None);
    retry.reason = Some(format!("failed on {equipment_id}; trying another machine once"));
    let retried = svc.store.move_job(&retry).await?;
    if let Some(retried) = &retried {
        svc.router.job_queued(retried.clone());
    }
    Ok(retried)
}

/// Charges a job that ended to its owner (once per job, whatever retries happen). A job that
/// cannot be charged is logged; it ended all the same.
async fn charge_use(svc: &Services, job: &JobRecord) {
    if let Err(e) = super::billing::charge_job(svc, job).await {
        tracing::warn!(job_id = %job.id, error = %e, "an ended job was not charged");
    }
}

/// Charges a finished job's grams to the spool loaded on its machine, once per job (the job
/// id is the idempotency key). A machine without a registered spool, or a job without known
/// grams, charges nothing: that is logged, the job is done all the same.
async fn charge_material(svc: &Services, job: &JobRecord, equipment_id: &str) {
    let Some(grams) = job.grams.filter(|g| g.0 > 0) else { return };
    match super::spools::charge_job(svc, &job.makerspace_id, equipment_id, &job.id, grams, None).await {
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(job_id = %job.id, equipment_id, error = %e, "a finished job's grams were not charged to a spool")
        }
    }
}
