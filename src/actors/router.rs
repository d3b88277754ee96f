//! The job router: one task with a mailbox that owns the queue's routing state. Services tell
//! it of jobs queued and gone; machine actors tell it of machines that changed and of the job
//! events they report. Its decisions are the domain's (`crate::domain::routing`, pure); what
//! it does with them (moving a job, sending the file, following the machine's reports) is
//! `crate::services::production`'s.
//!
//! Its state is rebuilt from the database at start: queued jobs are queued again, a job that
//! was only `assigned` (its file not sent) goes back to the queue, and machines holding a job
//! being sent or printed stay taken. Nothing is sent twice: a send follows the job's move
//! from `assigned` to `sending`, which only one writer can make.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::actors::machine::MachineView;
use crate::domain::job_files::facts::FileFacts;
use crate::domain::job_lifecycle::JobStatus;
use crate::domain::machine::MachineState;
use crate::domain::routing::{
    Booking, JobNeeds, JobScope, LoadedMaterial, MachineFacts, QueuedJob, RoutingState, StaggerRule,
};
use crate::services::Services;
use crate::store::equipment::EquipmentRecord;
use crate::store::jobs::{JobMove, JobRecord};

/// How many router messages may wait: past that, a sender's message is dropped and the
/// router's periodic pass catches up (a machine change is only a hint to look again).
const MAILBOX: usize = 4096;

/// How far ahead a machine's bookings are read: the longest job window checked.
const BOOKINGS_AHEAD: chrono::Duration = chrono::Duration::hours(72);
/// A job whose file gives no estimate is taken to last this long (its booking window).
const DEFAULT_ESTIMATE_S: u32 = 2 * 3600;
/// How often every machine's facts are read again: bookings come near, a missed hint is
/// caught up.
const REFRESH: Duration = Duration::from_secs(60);

/// What the router hears.
#[derive(Debug)]
pub enum RouterEvent {
    JobQueued(Box<JobRecord>),
    JobGone(String),
    /// A person gave a queued job another priority. Not a `JobQueued` again: a job the router
    /// has just handed to a machine must not be queued a second time.
    Reprioritised {
        job_id: String,
        priority: i32,
    },
    /// The job a machine held is over (or could not be sent): it may take another once free.
    Release(String),
    MachineChanged {
        makerspace_id: String,
        equipment_id: String,
    },
    /// A machine reported a job event (started, progress, finished...).
    MachineJob {
        makerspace_id: String,
        equipment_id: String,
        event: crate::domain::jobs::JobEvent,
    },
    /// "Why does this job wait?", answered from the live routing state.
    /// Why each of these jobs waits, in their order (`None` for a job the router does not
    /// hold): one message for a whole page of the queue.
    WhyWaiting {
        job_ids: Vec<String>,
        answer: tokio::sync::oneshot::Sender<Vec<Option<serde_json::Value>>>,
    },
}

/// The router's address. Cheap to clone.
#[derive(Clone, Debug)]
pub struct RouterHandle {
    sender: mpsc::Sender<RouterEvent>,
}

impl RouterHandle {
    /// A handle and the mailbox the router task reads.
    pub fn channel() -> (RouterHandle, mpsc::Receiver<RouterEvent>) {
        let (sender, receiver) = mpsc::channel(MAILBOX);
        (RouterHandle { sender }, receiver)
    }

    fn tell(&self, event: RouterEvent) {
        if let Err(mpsc::error::TrySendError::Full(event)) = self.sender.try_send(event) {
            metrics::counter!(crate::metrics::ROUTER_DROPPED).increment(1);
            tracing::warn!(?event, "the job router's mailbox is full: dropped (its next pass catches up)");
        }
    }

    pub fn job_queued(&self, job: JobRecord) {
        self.tell(RouterEvent::JobQueued(Box::new(job)));
    }

    pub fn job_gone(&self, job_id: &str) {
        self.tell(RouterEvent::JobGone(job_id.to_string()));
    }

    pub fn reprioritised(&self, job_id: &str, priority: i32) {
        self.tell(RouterEvent::Reprioritised { job_id: job_id.to_string(), priority });
    }

    pub fn release(&self, equipment_id: &str) {
        self.tell(RouterEvent::Release(equipment_id.to_string()));
    }

    pub fn machine_changed(&self, makerspace_id: &str, equipment_id: &str) {
        self.tell(RouterEvent::MachineChanged {
            makerspace_id: makerspace_id.to_string(),
            equipment_id: equipment_id.to_string(),
        });
    }

    pub fn machine_job(&self, makerspace_id: &str, equipment_id: &str, event: crate::domain::jobs::JobEvent) {
        self.tell(RouterEvent::MachineJob {
            makerspace_id: makerspace_id.to_string(),
            equipment_id: equipment_id.to_string(),
            event,
        });
    }

    /// The router's current answer to "why does this job wait" (`None`: it does not know the
    /// job, or it is not running).
    pub async fn why_waiting(&self, job_id: &str) -> Option<serde_json::Value> {
        self.why_waiting_each(&[job_id.to_string()]).await.pop().flatten()
    }

    /// The same for several jobs in one round trip, in their order.
    pub async fn why_waiting_each(&self, job_ids: &[String]) -> Vec<Option<serde_json::Value>> {
        let (answer, reply) = tokio::sync::oneshot::channel();
        let asked = RouterEvent::WhyWaiting { job_ids: job_ids.to_vec(), answer };
        if self.sender.send(asked).await.is_err() {
            return vec![None; job_ids.len()];
        }
        reply.await.unwrap_or_else(|_| vec![None; job_ids.len()])
    }
}

/// A job as the router queues it: its needs from its spec and its file's analysis.
fn queued(job: &JobRecord, file: Option<&FileFacts>) -> QueuedJob {
    QueuedJob {
        job_id: job.id.clone(),
        owner_id: job.owner_id.clone(),
        priority: job.priority,
        // Creation time, then the copy: the same order on every rebuild.
        sequence: (job.created_at.timestamp_micros().max(0) as u64) * 128 + job.copy_number.clamp(0, 127) as u64,
        scope: JobScope::Makerspace(job.makerspace_id.clone()),
        needs: JobNeeds {
            equipment_type: job.equipment_type,
            // The material the submitter asks for. (The one a slicer wrote into the file is
            // shown with the job; as a need it would keep sliced jobs off every machine whose
            // loaded filament makrcave does not know.)
            material: job.requirements.material.clone(),
            color: job.requirements.color.clone(),
            nozzle_mm: job.requirements.nozzle_mm.or_else(|| file.and_then(|f| f.nozzle_mm)),
            bounding_box_mm: file.and_then(|f| f.size_mm),
            tags: job.requirements.tags.clone(),
        },
        estimated_duration_s: job.estimated_s.map_or(DEFAULT_ESTIMATE_S, |s| s.clamp(1, u32::MAX as i64) as u32),
        pinned_machine: job.pinned_equipment_id.clone(),
        avoid_machines: job.avoid_equipment.clone(),
        refused_by: Vec::new(),
    }
}

/// Reads what a machine's record says it can make: `specifications.build_volume_mm`
/// (`[x, y, z]`), `specifications.nozzle_mm`, `specifications.tags`.
fn capabilities(record: &EquipmentRecord) -> (Option<[f64; 3]>, Option<f64>, Vec<String>) {
    let specs = &record.specifications;
    let volume = specs.get("build_volume_mm").and_then(|v| serde_json::from_value::<[f64; 3]>(v.clone()).ok());
    let nozzle = specs.get("nozzle_mm").and_then(|v| v.as_f64());
    let tags = specs
        .get("tags")
        .and_then(|v| v.as_array())
        .map(|tags| tags.iter().filter_map(|t| t.as_str().map(|t| t.trim().to_lowercase())).collect())
        .unwrap_or_default();
    (volume, nozzle, tags)
}

/// What the router needs to know of a machine now (`None`: it is gone).
async fn machine_facts(svc: &Services, equipment_id: &str, now: DateTime<Utc>) -> Option<MachineFacts> {
    let record = svc.store.get_equipment(equipment_id).await.ok()??;
    let view = svc.fleet.view(&record.makerspace_id, equipment_id).await.ok()?;
    let bookings = svc.store.holding_of(equipment_id, now, now + BOOKINGS_AHEAD).await.ok()?;
    Some(facts_of(&record, &view, bookings.into_iter().map(|(start, end)| Booking { start, end }).collect()))
}

/// A machine's facts for routing, from its record, its live view and its bookings near now
/// (also what the provider choice judges a service order's makerspaces by).
pub fn facts_of(record: &EquipmentRecord, view: &MachineView, bookings: Vec<Booking>) -> MachineFacts {
    let (build_volume_mm, nozzle_mm, tags) = capabilities(record);
    let trays = view.loadout.as_ref().map(|l| l.trays.as_slice()).unwrap_or(&[]);
    // A machine waiting for its bed to be cleared is idle otherwise: the reason it waits is
    // the bed, and that is what the job's wait reasons say.
    let bed_clear = view.state != MachineState::AwaitingClear;
    let state = if bed_clear { view.state } else { MachineState::Idle };
    MachineFacts {
        machine_id: record.id.clone(),
        makerspace_id: record.makerspace_id.clone(),
        provider: false,
        equipment_type: record.kind,
        state,
        bed_clear,
        loaded: LoadedMaterial::merged(&view.spools, trays),
        nozzle_mm: view.loadout.as_ref().and_then(|l| l.nozzle_diameter_mm).or(nozzle_mm),
        build_volume_mm,
        tags,
        bookings,
    }
}

/// A makerspace's staggered starts, from its settings: `{"jobs": {"stagger_max_starts": N,
/// "stagger_window_s": M}}`.
pub fn stagger_rule(settings: &serde_json::Value) -> Option<StaggerRule> {
    let jobs = settings.get("jobs")?;
    let max = jobs.get("stagger_max_starts")?.as_u64()?;
    let window = jobs.get("stagger_window_s")?.as_u64()?;
    StaggerRule::new(u32::try_from(max).ok()?, u32::try_from(window).ok()?).ok()
}

/// The router's task.
struct Router {
    svc: Services,
    state: RoutingState,
    /// Analyses of the files of queued jobs, by SHA-256 (copies share one).
    files: HashMap<String, Option<FileFacts>>,
    /// Machine job events, handled in order by one task (a start before its end).
    events: mpsc::UnboundedSender<(String, String, crate::domain::jobs::JobEvent)>,
}

impl Router {
    async fn file(&mut self, sha256: &str) -> Option<FileFacts> {
        if let Some(facts) = self.files.get(sha256) {
            return facts.clone();
        }
        let facts = match self.svc.store.get_job_file(sha256).await {
            Ok(file) => file.and_then(|f| serde_json::from_value::<FileFacts>(f.analysis).ok()),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read a job file's analysis");
                return None;
            }
        };
        self.files.insert(sha256.to_string(), facts.clone());
        facts
    }

    async fn queue(&mut self, job: &JobRecord) {
        if job.status != JobStatus::Queued {
            // An offered job waits for its provider's answer; anything else is not queued.
            return;
        }
        let file = self.file(&job.file_sha256).await;
        self.state.job_queued(queued(job, file.as_ref()));
    }

    async fn look_at(&mut self, equipment_id: &str) {
        match machine_facts(&self.svc, equipment_id, Utc::now()).await {
            Some(facts) => self.state.machine_changed(facts),
            None => {
                self.state.machine_removed(equipment_id);
            }
        }
    }

    /// Rebuilds the queue and the machines from the database and the fleet.
    async fn rebuild(&mut self) -> Result<(), crate::store::StoreError> {
        for space in self.svc.store.list_makerspaces().await? {
            self.state.set_stagger(&space.id, stagger_rule(&space.settings));
        }
        for job in self.svc.store.unfinished_jobs().await? {
            match job.status {
                JobStatus::Queued => self.queue(&job).await,
                JobStatus::Assigned => {
                    // Its file was never sent: it goes back to the queue.
                    let mut back =
                        JobMove::new(&job.id, &[JobStatus::Assigned], JobStatus::Queued, "router", Utc::now());
                    back.equipment_id = Some(None);
                    back.reason = Some("makrcave restarted before sending it".into());
                    if let Some(job) = self.svc.store.move_job(&back).await? {
                        self.queue(&job).await;
                    }
                }
                _ => {
                    if let Some(machine) = &job.equipment_id {
                        self.state.claim_machine(machine);
                    }
                }
            }
        }
        for machine in self.svc.store.list_equipment(&Default::default()).await? {
            self.look_at(&machine.id).await;
        }
        Ok(())
    }

    async fn handle(&mut self, event: RouterEvent) {
        match event {
            RouterEvent::JobQueued(job) => self.queue(&job).await,
            RouterEvent::JobGone(job_id) => {
                self.state.job_removed(&job_id);
            }
            RouterEvent::Reprioritised { job_id, priority } => {
                self.state.reprioritise(&job_id, priority);
            }
            RouterEvent::Release(equipment_id) => {
                self.state.release_machine(&equipment_id);
                self.look_at(&equipment_id).await;
            }
            RouterEvent::MachineChanged { equipment_id, .. } => self.look_at(&equipment_id).await,
            RouterEvent::MachineJob { makerspace_id, equipment_id, event } => {
                let _ = self.events.send((makerspace_id, equipment_id, event));
            }
            RouterEvent::WhyWaiting { job_ids, answer } => {
                let now = Utc::now();
                let reasons = job_ids
                    .iter()
                    .map(|id| self.state.why_waiting(id, now).and_then(|r| serde_json::to_value(r).ok()))
                    .collect();
                let _ = answer.send(reasons);
            }
        }
    }

    /// Sends every job that can start now to its machine.
    fn decide(&mut self) {
        for assignment in self.state.decide(Utc::now()) {
            let svc = self.svc.clone();
            tokio::spawn(async move {
                if let Err(e) =
                    crate::services::production::start(&svc, &assignment.job_id, &assignment.machine_id).await
                {
                    tracing::error!(job_id = %assignment.job_id, error = %e, "cannot send a job");
                    svc.router.release(&assignment.machine_id);
                }
            });
        }
    }

    async fn refresh(&mut self) {
        match self.svc.store.list_equipment(&Default::default()).await {
            Ok(machines) => {
                for machine in machines {
                    self.look_at(&machine.id).await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the machines to route to"),
        }
        if let Ok(spaces) = self.svc.store.list_makerspaces().await {
            for space in spaces {
                self.state.set_stagger(&space.id, stagger_rule(&space.settings));
            }
        }
    }
}

/// Starts the router on `mailbox` (see [`RouterHandle::channel`]), after rebuilding its state.
pub fn spawn(svc: Services, mut mailbox: mpsc::Receiver<RouterEvent>, shutdown: CancellationToken) -> JoinHandle<()> {
    let (events, mut machine_events) = mpsc::unbounded_channel::<(String, String, crate::domain::jobs::JobEvent)>();
    let production = {
        let svc = svc.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            loop {
                let next = tokio::select! {
                    next = machine_events.recv() => next,
                    _ = shutdown.cancelled() => None,
                };
                let Some((space, equipment, event)) = next else { break };
                if let Err(e) = crate::services::production::on_machine_event(&svc, &space, &equipment, &event).await {
                    tracing::error!(equipment_id = %equipment, error = %e, "a machine's job event did not move its job");
                }
            }
        })
    };
    tokio::spawn(async move {
        let mut router = Router { svc, state: RoutingState::new(), files: HashMap::new(), events };
        if let Err(e) = router.rebuild().await {
            tracing::error!(error = %e, "the job router could not read its queue; it starts empty");
        }
        tracing::info!(
            queued = router.state.queued_jobs(),
            machines = router.state.machine_count(),
            "job router started"
        );
        router.decide();
        let mut refresh = tokio::time::interval(REFRESH);
        refresh.tick().await;
        loop {
            let wakeup = router
                .state
                .next_wakeup()
                .map(|at| (at - Utc::now()).to_std().unwrap_or(Duration::ZERO))
                .unwrap_or(REFRESH);
            tokio::select! {
                event = mailbox.recv() => match event {
                    Some(event) => {
                        router.handle(event).await;
                        // Take whatever else is waiting before deciding: one decision for a burst.
                        while let Ok(event) = mailbox.try_recv() {
                            router.handle(event).await;
                        }
                    }
                    None => break,
                },
                _ = tokio::time::sleep(wakeup) => {}
                _ = refresh.tick() => router.refresh().await,
                _ = shutdown.cancelled() => break,
            }
            router.decide();
        }
        let _ = production.await;
    })
}
