//! The job queue's workflows: a submission becomes one queued job per copy, people list and
//! read jobs (a member their own, the space's admins all), and a cancel stops the job where it
//! is (on its machine, if it runs). Every transition is stored with its history, pushed on the
//! WebSocket as `{"type":"job",...}` (to the space's admins and the job's owner) and logged.
//! The router (`crate::actors::router`) is told of every change that can free or take a
//! machine.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::access::Principal;
use crate::domain::equipment::EquipmentType;
use crate::domain::ids::new_id;
use crate::domain::inventory::Quantity;
use crate::domain::job_files::facts::FileFacts;
use crate::domain::job_lifecycle::{
    default_equipment_type, file_fits_type, JobStatus, Requirements, MAX_COPIES, MAX_PRIORITY,
};
use crate::domain::jobs::{JobCommand, JobRefusal};
use crate::domain::pricing::{Quality, QuoteInput, Quotes};
use crate::store::jobs::{JobMove, JobQuery, JobRecord, JobTransitionRecord};
use crate::store::StoreError;

use super::access::{standing, AccessError, Standing};
use super::job_intake::{IntakeError, StoredFile};
use super::Services;

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    Access(#[from] AccessError),
    #[error(transparent)]
    Intake(#[from] IntakeError),
    #[error("job not found")]
    NotFound,
    #[error("{0}")]
    InvalidSpec(String),
    #[error("equipment not found in this makerspace")]
    UnknownEquipment,
    #[error("the job is {0} already: it cannot be cancelled")]
    Finished(&'static str),
    #[error("the job is offered to this makerspace by a service order: accept or reject it instead")]
    Offered,
    #[error(transparent)]
    Machine(#[from] JobRefusal),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a submission asks for, besides its file (the multipart part `spec`).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    /// The machine type to make it on [default: a laser cutter for an SVG, a 3D printer
    /// otherwise].
    #[serde(default)]
    pub equipment_type: Option<EquipmentType>,
    #[serde(default)]
    pub requirements: Requirements,
    /// Copies to make: each is a job of its own, spread over free machines [default: 1].
    #[serde(default)]
    #[schema(minimum = 1, maximum = 100)]
    pub copies: Option<u32>,
    /// Higher goes first, from -10 to 10 [default: 0].
    #[serde(default)]
    #[schema(minimum = -10, maximum = 10)]
    pub priority: Option<i32>,
    /// Only this machine may make it.
    #[serde(default)]
    pub equipment_id: Option<String>,
    /// The quote chosen among the options the file's analysis gives (material and quality);
    /// it is kept with the job.
    #[serde(default)]
    pub quote: Option<QuoteChoice>,
}

/// A choice among a job's quote options.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuoteChoice {
    /// `None` for an option without material (a laser's).
    #[serde(default)]
    pub material: Option<String>,
    pub quality: Quality,
}

/// A job as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JobView {
    pub id: String,
    pub makerspace_id: String,
    pub owner_id: String,
    /// The submission it is a copy of.
    pub batch_id: String,
    pub copy_number: i32,
    pub copies: i32,
    pub file_name: String,
    pub file_sha256: String,
    pub equipment_type: EquipmentType,
    pub requirements: Requirements,
    pub pinned_equipment_id: Option<String>,
    pub priority: i32,
    pub status: JobStatus,
    /// The machine it is assigned to or ran on last.
    pub equipment_id: Option<String>,
    /// Machines it failed on: it is not sent there again.
    pub avoid_equipment: Vec<String>,
    pub attempts: i32,
    pub estimated_s: Option<i64>,
    #[schema(value_type = Option<f64>)]
    pub grams: Option<Quantity>,
    pub progress: Option<f64>,
    /// The price options of the makerspace's table, made from the file's analysis.
    #[schema(value_type = Option<Object>)]
    pub quotes: Option<serde_json::Value>,
    #[schema(value_type = Option<Object>)]
    pub chosen_quote: Option<serde_json::Value>,
    /// Why the job waits: the router's last verdict on each machine.
    #[schema(value_type = Option<Object>)]
    pub waiting: Option<serde_json::Value>,
    pub failure_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<JobRecord> for JobView {
    fn from(job: JobRecord) -> JobView {
        JobView {
            id: job.id,
            makerspace_id: job.makerspace_id,
            owner_id: job.owner_id,
            batch_id: job.batch_id,
            copy_number: job.copy_number,
            copies: job.copies,
            file_name: job.file_name,
            file_sha256: job.file_sha256,
            equipment_type: job.equipment_type,
            requirements: job.requirements,
            pinned_equipment_id: job.pinned_equipment_id,
            priority: job.priority,
            status: job.status,
            equipment_id: job.equipment_id,
            avoid_equipment: job.avoid_equipment,
            attempts: job.attempts,
            estimated_s: job.estimated_s,
            grams: job.grams,
            progress: job.progress,
            quotes: job.quotes,
            chosen_quote: job.chosen_quote,
            waiting: job.wait_reasons,
            failure_reason: job.failure_reason,
            created_at: job.created_at,
            updated_at: job.updated_at,
            started_at: job.started_at,
            finished_at: job.finished_at,
        }
    }
}

/// One line of a job's history.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JobTransitionView {
    pub from_status: Option<JobStatus>,
    pub to_status: JobStatus,
    pub equipment_id: Option<String>,
    /// A user id, `router`, or `machine`.
    pub actor: String,
    pub reason: Option<String>,
    pub at: DateTime<Utc>,
}

impl From<JobTransitionRecord> for JobTransitionView {
    fn from(t: JobTransitionRecord) -> Self {
        JobTransitionView {
            from_status: t.from_status,
            to_status: t.to_status,
            equipment_id: t.equipment_id,
            actor: t.actor,
            reason: t.reason,
            at: t.at,
        }
    }
}

/// A job with its file's analysis and its history.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JobDetail {
    #[serde(flatten)]
    pub job: JobView,
    pub file: Option<FileFacts>,
    pub history: Vec<JobTransitionView>,
}

/// What a submission made.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Submission {
    pub batch_id: String,
    pub file: FileFacts,
    pub file_sha256: String,
    pub size_bytes: i64,
    /// One job per copy.
    pub jobs: Vec<JobView>,
}

/// Checks that the caller may submit jobs in the space (its people; not a platform reader).
pub async fn may_submit(svc: &Services, caller: &Principal, space_id: &str) -> Result<(), JobError> {
    let (_, standing) = standing(svc, caller, space_id).await?;
    if standing == Standing::Reader {
        return Err(super::access::forbidden_to("submit jobs").into());
    }
    Ok(())
}

/// The copies of one submission (or of one service order's offer), before they are stored:
/// what they share. Each copy is a job of its own.
pub struct NewBatch<'a> {
    pub makerspace_id: String,
    pub owner_id: String,
    pub file_sha256: String,
    pub file_name: String,
    pub equipment_type: EquipmentType,
    pub requirements: Requirements,
    pub pinned_equipment_id: Option<String>,
    pub priority: i32,
    /// `queued`, or `offered` for a service order's.
    pub status: JobStatus,
    pub copies: u32,
    /// The file's analysis: the estimate and the grams.
    pub facts: &'a FileFacts,
    pub quotes: Option<serde_json::Value>,
    pub chosen_quote: Option<serde_json::Value>,
}

impl NewBatch<'_> {
    /// One job per copy, in the batch `batch_id`.
    pub fn jobs(&self, batch_id: &str, now: DateTime<Utc>) -> Vec<JobRecord> {
        (1..=self.copies as i32)
            .map(|copy_number| JobRecord {
                id: new_id(),
                makerspace_id: self.makerspace_id.clone(),
                owner_id: self.owner_id.clone(),
                batch_id: batch_id.to_string(),
                copy_number,
                copies: self.copies as i32,
                file_sha256: self.file_sha256.clone(),
                file_name: self.file_name.clone(),
                equipment_type: self.equipment_type,
                requirements: self.requirements.clone(),
                pinned_equipment_id: self.pinned_equipment_id.clone(),
                priority: self.priority,
                status: self.status,
                equipment_id: None,
                avoid_equipment: Vec::new(),
                attempts: 0,
                estimated_s: self.facts.print_seconds.map(|s| s as i64),
                grams: self.facts.filament_grams,
                progress: None,
                quotes: self.quotes.clone(),
                chosen_quote: self.chosen_quote.clone(),
                wait_reasons: None,
                failure_reason: None,
                created_at: now,
                updated_at: now,
                started_at: None,
                finished_at: None,
            })
            .collect()
    }
}

/// Queues the copies of a received file.
pub async fn submit(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
    spec: JobSpec,
    file_name: String,
    stored: StoredFile,
) -> Result<Submission, JobError> {
    may_submit(svc, caller, space_id).await?;
    let requirements = spec.requirements.normalized().map_err(|e| JobError::InvalidSpec(e.to_string()))?;
    let copies = spec.copies.unwrap_or(1);
    if !(1..=MAX_COPIES).contains(&copies) {
        return Err(JobError::InvalidSpec(format!("copies must be 1 to {MAX_COPIES}")));
    }
    let priority = spec.priority.unwrap_or(0);
    if !(-MAX_PRIORITY..=MAX_PRIORITY).contains(&priority) {
        return Err(JobError::InvalidSpec(format!("priority must be -{MAX_PRIORITY} to {MAX_PRIORITY}")));
    }
    let equipment_type = spec.equipment_type.unwrap_or_else(|| default_equipment_type(stored.kind));
    if !file_fits_type(stored.kind, equipment_type) {
        return Err(JobError::InvalidSpec(format!(
            "a {} file is not made on a {}",
            stored.record.kind,
            equipment_type.as_str()
        )));
    }
    if let Some(pinned) = &spec.equipment_id {
        let machine = svc.store.get_equipment(pinned).await?.filter(|m| m.makerspace_id == space_id);
        let machine = machine.ok_or(JobError::UnknownEquipment)?;
        if machine.kind != equipment_type {
            return Err(JobError::InvalidSpec(format!(
                "{pinned} is a {}, not a {}",
                machine.kind.as_str(),
                equipment_type.as_str()
            )));
        }
    }
    let facts = stored.facts;
    let quotes = quotes_for(svc, space_id, equipment_type, &facts).await;
    let chosen_quote = match (&spec.quote, &quotes) {
        (None, _) => None,
        (Some(choice), Some(quotes)) => Some(
            quotes
                .option(choice.material.as_deref(), choice.quality)
                .ok_or_else(|| JobError::InvalidSpec("the chosen quote is not one of this file's options".into()))?
                .clone(),
        ),
        (Some(_), None) => return Err(JobError::InvalidSpec("this file has no quote to choose".into())),
    };
    let quotes = quotes.and_then(|q| serde_json::to_value(q).ok());
    let chosen_quote = chosen_quote.and_then(|q| serde_json::to_value(q).ok());
    let batch = NewBatch {
        makerspace_id: space_id.to_string(),
        owner_id: caller.user_id.clone(),
        file_sha256: stored.record.sha256.clone(),
        file_name,
        equipment_type,
        requirements,
        pinned_equipment_id: spec.equipment_id.clone(),
        priority,
        status: JobStatus::Queued,
        copies,
        facts: &facts,
        quotes,
        chosen_quote,
    };
    let batch_id = new_id();
    let jobs = batch.jobs(&batch_id, Utc::now());
    svc.store.insert_jobs(&jobs, &caller.user_id).await?;
    tracing::info!(makerspace_id = %space_id, batch_id = %batch_id, copies, owner = %caller.user_id,
        file = %stored.record.sha256, "job submitted");
    for job in &jobs {
        announce(svc, job);
        svc.router.job_queued(job.clone());
    }
    Ok(Submission {
        batch_id,
        file: facts,
        file_sha256: stored.record.sha256,
        size_bytes: stored.record.size_bytes,
        jobs: jobs.into_iter().map(JobView::from).collect(),
    })
}

/// The makerspace's price options for a file. A file the table cannot price (no rate for the
/// machine type, no material, a size past the table's bounds) is still queued, without quotes.
pub async fn quotes_for(
    svc: &Services,
    space_id: &str,
    equipment_type: EquipmentType,
    facts: &FileFacts,
) -> Option<Quotes> {
    let input = QuoteInput {
        equipment_type,
        volume_cm3: facts.volume_cm3,
        grams: facts.filament_grams,
        time_s: facts.print_seconds.map(|s| s.min(i64::MAX as u64) as i64),
        material: facts.material.clone(),
        cut_length_mm: facts.cut_length_mm,
    };
    match super::pricing::quote(svc, space_id, &input).await {
        Ok(quotes) => Some(quotes),
        Err(e) => {
            tracing::info!(makerspace_id = %space_id, reason = %e, "a job file has no quote");
            None
        }
    }
}

/// Filters of a job list.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    pub statuses: Vec<JobStatus>,
    pub owner_id: Option<String>,
    pub equipment_id: Option<String>,
    pub limit: i64,
    pub offset: i64,
}

/// A page of the space's jobs: a member sees their own, the space's admins and platform
/// readers every job.
pub async fn list(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
    filter: JobFilter,
) -> Result<(Vec<JobView>, i64), JobError> {
    let (_, standing) = standing(svc, caller, space_id).await?;
    let owner_id = match standing {
        Standing::Booker => Some(caller.user_id.clone()),
        Standing::Manager | Standing::Reader => filter.owner_id,
    };
    let query = JobQuery {
        statuses: filter.statuses,
        owner_id,
        equipment_id: filter.equipment_id,
        limit: filter.limit,
        offset: filter.offset,
    };
    let (jobs, total) = svc.store.list_jobs(space_id, &query).await?;
    let mut views: Vec<JobView> = jobs.into_iter().map(JobView::from).collect();
    // Why each queued job waits, as the router sees it now (the dashboard's Queue view), in
    // one round trip to the router for the page.
    let queued: Vec<String> = views.iter().filter(|v| v.status == JobStatus::Queued).map(|v| v.id.clone()).collect();
    let mut answers = svc.router.why_waiting_each(&queued).await.into_iter();
    for view in views.iter_mut().filter(|v| v.status == JobStatus::Queued) {
        view.waiting = answers.next().flatten().or(view.waiting.take());
    }
    Ok((views, total))
}

/// Loads a job the caller may see (a member's own; everyone's for admins and readers).
async fn visible_job(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
    job_id: &str,
) -> Result<(JobRecord, Standing), JobError> {
    let (_, standing) = standing(svc, caller, space_id).await?;
    let job = svc.store.get_job(space_id, job_id).await?.ok_or(JobError::NotFound)?;
    if standing == Standing::Booker && job.owner_id != caller.user_id {
        return Err(JobError::NotFound);
    }
    Ok((job, standing))
}

/// A job with its file's analysis and its history.
pub async fn get(svc: &Services, caller: &Principal, space_id: &str, job_id: &str) -> Result<JobDetail, JobError> {
    let (job, _) = visible_job(svc, caller, space_id, job_id).await?;
    let file = svc
        .store
        .get_job_file(&job.file_sha256)
        .await?
        .and_then(|f| serde_json::from_value::<FileFacts>(f.analysis).ok());
    let history = svc.store.job_transitions(&job.id).await?.into_iter().map(JobTransitionView::from).collect();
    let mut view = JobView::from(job);
    if view.status == JobStatus::Queued {
        // The router's answer now, machine by machine.
        view.waiting = svc.router.why_waiting(&view.id).await.or(view.waiting);
    }
    Ok(JobDetail { job: view, file, history })
}

/// Cancels a job: its owner or the space's admins. A job on a machine is cancelled there
/// first; a machine that cannot take the cancel (offline) leaves the job as it is, with the
/// machine's reason.
pub async fn cancel(svc: &Services, caller: &Principal, space_id: &str, job_id: &str) -> Result<JobView, JobError> {
    let (job, standing) = visible_job(svc, caller, space_id, job_id).await?;
    if standing == Standing::Reader {
        return Err(super::access::forbidden_to("cancel jobs").into());
    }
    if job.status.is_final() {
        return Err(JobError::Finished(job.status.as_str()));
    }
    if job.status == JobStatus::Offered {
        return Err(JobError::Offered);
    }
    if matches!(job.status, JobStatus::Printing | JobStatus::Paused) {
        if let Some(machine) = &job.equipment_id {
            svc.fleet
                .control(space_id, machine, JobCommand::Cancel)
                .await
                .map_err(|_| JobError::UnknownEquipment)??;
        }
    }
    let from = [JobStatus::Queued, JobStatus::Assigned, JobStatus::Sending, JobStatus::Printing, JobStatus::Paused];
    let mut change = JobMove::new(&job.id, &from, JobStatus::Cancelled, &caller.user_id, Utc::now());
    change.reason = Some("cancelled by a person".into());
    let moved = svc.store.move_job(&change).await?;
    let Some(moved) = moved else {
        // It ended meanwhile (finished or failed on its machine): say so.
        let now = svc.store.get_job(space_id, job_id).await?.ok_or(JobError::NotFound)?;
        return Err(JobError::Finished(now.status.as_str()));
    };
    announce(svc, &moved);
    svc.router.job_gone(&moved.id);
    // A job cancelled on its machine used time and material: it is charged what it used
    // (once per job). One cancelled before it ran used nothing.
    if matches!(job.status, JobStatus::Printing | JobStatus::Paused) {
        if let Err(e) = super::billing::charge_job(svc, &moved).await {
            tracing::warn!(job_id = %moved.id, error = %e, "a cancelled job was not charged");
        }
    }
    Ok(moved.into())
}

/// Pushes a job's new state to the people concerned and logs it.
pub fn announce(svc: &Services, job: &JobRecord) {
    tracing::info!(job_id = %job.id, makerspace_id = %job.makerspace_id, status = job.status.as_str(),
        equipment_id = ?job.equipment_id, "job");
    let message =
        serde_json::json!({"type": "job", "makerspace_id": job.makerspace_id, "job": JobView::from(job.clone())});
    svc.hub.publish_owned_event(&job.makerspace_id, &job.owner_id, &Arc::from(message.to_string()));
}
