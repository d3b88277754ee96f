//! One actor per machine: the only writer of that machine's live state.
//!
//! It applies inputs (telemetry, availability, heartbeat expiry, maintenance) through the pure
//! state machine of [`crate::domain::machine`], publishes every change to the [`Hub`],
//! persists transitions through the state writer, and turns silence into `offline`.
//!
//! It runs under an actix `Supervisor`. A handler that panics is caught here and turned into
//! a stop, which the supervisor answers with a restart: the actor comes back with its last
//! persisted state while every other machine carries on. Restarts are rate limited: past
//! [`MAX_RESTARTS`] in [`RESTART_WINDOW`], the actor waits [`RESTART_BACKOFF`] before it takes
//! messages again.

pub mod plug;
pub mod spools;

use crate::logging::escaped;
use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::actors::hub::Hub;
use crate::actors::state_writer::{Entry, StateSender};
use crate::domain::equipment::{AdminStatus, Connection, EquipmentType};
use crate::domain::holds::Holds;
use crate::domain::jobs::{self, JobCommand, JobEvent, JobRefusal};
use crate::domain::machine::{
    Input, JobProgress, LiveState, Loadout, MachineState, ReservationHold, Session, Temperatures, Transition,
};
use crate::domain::secrets::DataKey;
use crate::domain::spools::{LoadedSpool, TrayMatch};
use crate::protocols::adapter::{AdapterCommand, AdapterSender};
use crate::protocols::commands::{encode, supports, MachineCommand};
use crate::protocols::mqtt::CommandPublisher;
use crate::store::equipment::EquipmentRecord;
use crate::store::machine_states::{EndedSession, StateChange};

/// Messages an actor may have waiting before senders must wait (backpressure to MQTT ingest).
pub const MAILBOX_CAPACITY: usize = 1024;
/// Restarts tolerated within [`RESTART_WINDOW`] before backing off.
pub const MAX_RESTARTS: usize = 5;
pub const RESTART_WINDOW: Duration = Duration::from_secs(60);
pub const RESTART_BACKOFF: Duration = Duration::from_secs(5);
/// How long before a session's end its member is warned (WebSocket `session_warning`).
pub const SESSION_WARNING: Duration = Duration::from_secs(5 * 60);
/// How often unpersisted changes that were not transitions (job progress, temperatures) are
/// written, so that a restart of makrcave shows recent values.
const SNAPSHOT_INTERVAL: Duration = Duration::from_secs(30);

/// What the actor knows about the machine it represents, from its equipment record.
#[derive(Debug, Clone)]
pub struct MachineIdentity {
    pub equipment_id: Arc<str>,
    pub makerspace_id: String,
    pub name: String,
    pub kind: EquipmentType,
    pub heartbeat_timeout: Duration,
    /// How the machine is reached (the format of its commands).
    pub connection: Connection,
    /// What an hour of use costs, for the usage record.
    pub hourly_rate: Option<f64>,
    /// It clears its own bed after a job (no `awaiting_clear`).
    pub auto_clear: bool,
}

impl MachineIdentity {
    pub fn from_record(record: &EquipmentRecord) -> Self {
        MachineIdentity {
            equipment_id: Arc::from(record.id.as_str()),
            makerspace_id: record.makerspace_id.clone(),
            name: record.name.clone(),
            kind: record.kind,
            heartbeat_timeout: Duration::from_secs(record.heartbeat_timeout_s.max(1) as u64),
            connection: record.connection.clone(),
            hourly_rate: record.hourly_rate,
            auto_clear: record.auto_clear,
        }
    }
}

/// The live state of a machine as clients see it (REST and WebSocket).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct MachineView {
    pub equipment_id: String,
    pub makerspace_id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: EquipmentType,
    pub state: MachineState,
    /// The product documents' coarse status: available, in_use, maintenance, offline.
    pub status: String,
    /// When `state` last changed.
    pub since: DateTime<Utc>,
    pub online: bool,
    pub job: Option<JobProgress>,
    pub temps: Temperatures,
    pub power_w: Option<f64>,
    /// Whether the smart plug in front of the machine has its relay on (plug connections only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relay_on: Option<bool>,
    /// When makrcave last heard from the machine.
    pub last_heard: Option<DateTime<Utc>>,
    /// The machine's own timestamp of its last report (`ts`).
    pub reported_at: Option<DateTime<Utc>>,
    /// Why the machine is in error, when it says (a failed job, OctoPrint refusing the API key).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What the machine has loaded (materials, nozzle), when it reports it (Bambu).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loadout: Option<Loadout>,
    pub heartbeat_timeout_s: u64,
    /// The member session in progress (who has the machine unlocked, until when).
    pub session: Option<Session>,
    /// The booking in progress (confirmed or checked in, `start <= now < end`), if any. The
    /// state says `reserved` while nobody uses the machine during it.
    pub reservation: Option<ReservationHold>,
    /// The filament spools loaded on the machine, by slot, with their remaining grams.
    pub spools: Vec<LoadedSpool>,
    /// For a printer that reports its trays (Bambu): each tray next to the spool registered in
    /// its slot, matched, mismatched, unregistered or empty.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tray_matches: Vec<TrayMatch>,
}

impl MachineView {
    pub fn new(identity: &MachineIdentity, live: &LiveState) -> Self {
        MachineView {
            equipment_id: identity.equipment_id.to_string(),
            makerspace_id: identity.makerspace_id.clone(),
            name: identity.name.clone(),
            kind: identity.kind,
            state: live.state,
            status: live.state.document_status().to_string(),
            since: live.since,
            online: live.online,
            job: live.job.clone(),
            temps: live.temps,
            power_w: live.power_w,
            relay_on: live.relay_on,
            last_heard: live.last_heard,
            reported_at: live.reported_at,
            error: live.error.clone(),
            loadout: live.loadout.clone(),
            heartbeat_timeout_s: identity.heartbeat_timeout.as_secs(),
            session: live.session.clone(),
            reservation: live.reservation.clone(),
            spools: Vec::new(),
            tray_matches: Vec::new(),
        }
    }
}

/// The WebSocket message carrying one machine's state.
#[derive(Serialize)]
struct MachineMessage<'a> {
    r#type: &'static str,
    machine: &'a MachineView,
}

/// Serializes the WebSocket message for a machine update.
pub fn machine_message(view: &MachineView) -> Arc<str> {
    let msg = MachineMessage { r#type: "machine", machine: view };
    // A struct of strings, numbers and options always serializes.
    Arc::from(serde_json::to_string(&msg).unwrap_or_default())
}

/// What every machine actor shares.
#[derive(Clone)]
pub struct MachineDeps {
    pub hub: Arc<Hub>,
    pub state_writer: StateSender,
    /// Where commands to machines go (the MQTT link).
    pub commands: CommandPublisher,
    /// Opens the secrets of machines' connections (an OctoPrint's API key) for the adapters
    /// the fleet starts.
    pub data_key: DataKey,
    /// The job router, told when a machine's state changes (it may free or take a machine)
    /// and of every job event.
    pub router: crate::actors::router::RouterHandle,
}

#[cfg(test)]
impl MachineDeps {
    /// What an actor under test needs without a network: an MQTT link that never connects,
    /// and a state writer whose end is gone (changes are logged as not persisted).
    pub fn offline() -> MachineDeps {
        use crate::protocols::mqtt::{BrokerAddress, MqttLink};
        let (state_writer, _) = tokio::sync::mpsc::channel(16);
        let link = MqttLink::prepare(&BrokerAddress { host: "127.0.0.1".into(), port: 1, credentials: None });
        MachineDeps {
            hub: Arc::new(Hub::new()),
            state_writer,
            commands: link.publisher(),
            data_key: DataKey::derive("test data key 0123456789"),
            router: crate::actors::router::RouterHandle::channel().0,
        }
    }
}

pub struct MachineActor {
    identity: MachineIdentity,
    live: LiveState,
    /// What was last handed to the state writer: the state a restart comes back with.
    last_persisted: LiveState,
    /// Something changed since `last_persisted` (job progress, temperatures).
    dirty: bool,
    /// Monotonic time we last heard from the machine (the heartbeat runs on this, not on
    /// wall-clock time, which may jump).
    last_heard_at: Instant,
    heartbeat_armed: bool,
    restarts: VecDeque<Instant>,
    /// Set once the equipment is deleted: the actor no longer reacts to anything.
    retired: bool,
    /// The timers of the session in progress (warning, then lock at `until`).
    session_timers: Vec<SpawnHandle>,
    /// Numbers Shelly Gen2 RPC requests.
    rpc_id: u64,
    /// The holding bookings of the machine it was told about (the nearest ones; the
    /// reservation book tells it again about the others as they come near, see
    /// `crate::services::bookings::feed_fleet`). The one in progress is mirrored in
    /// `live.reservation`.
    holds: Holds,
    /// Wakes the actor at the next start or end of a booking.
    hold_timer: Option<SpawnHandle>,
    /// What its smart plug said, for machines behind one.
    plug: plug::PlugState,
    /// The client task that follows the machine in its own protocol (OctoPrint), when it has
    /// one: job commands go there, and it tells reachability itself (no heartbeat here).
    adapter: Option<AdapterSender>,
    /// The filament spools loaded on it.
    spools: spools::Spools,
    deps: MachineDeps,
}

impl MachineActor {
    pub fn new(identity: MachineIdentity, mut live: LiveState, deps: MachineDeps) -> Self {
        live.auto_clear = identity.auto_clear;
        MachineActor {
            identity,
            last_persisted: live.clone(),
            live,
            dirty: false,
            last_heard_at: Instant::now(),
            heartbeat_armed: false,
            restarts: VecDeque::new(),
            retired: false,
            session_timers: Vec::new(),
            rpc_id: 0,
            holds: Holds::default(),
            hold_timer: None,
            plug: plug::PlugState::default(),
            adapter: None,
            spools: spools::Spools::default(),
            deps,
        }
    }

    /// The actor of a machine followed by an adapter (see [`MachineActor::adapter`]).
    pub fn with_adapter(mut self, adapter: Option<AdapterSender>) -> Self {
        self.adapter = adapter;
        self
    }

    fn view(&self) -> MachineView {
        MachineView {
            spools: self.spools.loaded().to_vec(),
            tray_matches: self.tray_matches(),
            ..MachineView::new(&self.identity, &self.live)
        }
    }

    /// Runs a handler body; a panic becomes a stop, which the supervisor turns into a restart.
    fn guarded<R: Default>(
        &mut self,
        ctx: &mut Context<Self>,
        body: impl FnOnce(&mut Self, &mut Context<Self>) -> R,
    ) -> R {
        match std::panic::catch_unwind(AssertUnwindSafe(|| body(self, ctx))) {
            Ok(result) => result,
            Err(_) => {
                tracing::error!(equipment_id = ?self.identity.equipment_id, "machine actor failed; restarting it");
                ctx.stop();
                R::default()
            }
        }
    }

    fn apply(&mut self, input: &Input, ctx: &mut Context<Self>) {
        if self.retired {
            return;
        }
        let now = Utc::now();
        let heard =
            matches!(input, Input::Telemetry(_) | Input::Availability { online: true } | Input::Job(_) | Input::Heard);
        if heard {
            self.last_heard_at = Instant::now();
        }
        let transition = self.live.apply(input, now);
        self.dirty = true;
        if let Some(t) = transition {
            metrics::counter!(crate::metrics::STATE_TRANSITIONS, "to" => t.to.as_str()).increment(1);
        }
        if let Input::Job(event) = input {
            // Every job event is stored and shown, whether or not it changed the state.
            self.persist_with(transition, None, Some(event.clone()), ctx);
            self.publish_job_event(event, now);
            self.deps.router.machine_job(&self.identity.makerspace_id, &self.identity.equipment_id, event.clone());
        } else if transition.is_some() {
            self.persist(transition, ctx);
        }
        if transition.is_some() {
            self.deps.router.machine_changed(&self.identity.makerspace_id, &self.identity.equipment_id);
        }
        if self.live.online {
            self.arm_heartbeat(ctx);
        }
        // A sign of life alone is not news: it reaches watchers with the next real change
        // (and the REST view at once), so an idle machine costs no WebSocket traffic.
        if !matches!(input, Input::Heard) || transition.is_some() {
            self.publish();
        }
    }

    /// Publishes a command in the machine's own format. The MQTT link queues it while the
    /// broker is away; if even its queue is full the command is lost, which is logged and
    /// counted (the session state stays what the member was told).
    fn command(&mut self, command: MachineCommand) {
        self.rpc_id += 1;
        let messages = encode(
            &self.identity.makerspace_id,
            &self.identity.equipment_id,
            &self.identity.connection,
            &command,
            self.rpc_id,
        );
        for message in messages {
            if let Err(err) = self.deps.commands.publish(&message) {
                metrics::counter!(crate::metrics::COMMANDS_DROPPED).increment(1);
                tracing::error!(equipment_id = ?self.identity.equipment_id, topic = ?message.topic, error = %escaped(&err), "command not sent");
            }
        }
    }

    /// Starts a member's session: checks the machine can be unlocked, switches it on, and
    /// schedules the warning and the lock at `until`.
    fn start_session(&mut self, session: Session, ctx: &mut Context<Self>) -> Result<Session, UnlockRefusal> {
        if self.retired {
            return Err(UnlockRefusal::Gone);
        }
        if self.live.maintenance {
            return Err(UnlockRefusal::Maintenance);
        }
        if !self.live.online {
            return Err(UnlockRefusal::Offline);
        }
        if self.live.reported == MachineState::Error {
            return Err(UnlockRefusal::Error);
        }
        if let Some(current) = &self.live.session {
            return if current.user_id == session.user_id {
                Ok(current.clone())
            } else {
                Err(UnlockRefusal::Busy { user_id: current.user_id.clone() })
            };
        }
        let now = Utc::now();
        let transition = self.live.apply(&Input::SessionStarted(session.clone()), now);
        self.persist(transition, ctx);
        self.command(MachineCommand::Unlock { session_id: session.id.clone(), until: session.until });
        self.arm_session_timers(ctx);
        self.publish();
        Ok(session)
    }

    /// Schedules the warning and the lock of the session in progress at its `until` (also
    /// after a restart, from the restored state).
    fn arm_session_timers(&mut self, ctx: &mut Context<Self>) {
        for timer in self.session_timers.drain(..) {
            ctx.cancel_future(timer);
        }
        let Some((id, until)) = self.live.session.as_ref().and_then(|s| Some((s.id.clone(), s.until?))) else {
            return;
        };
        let left = (until - Utc::now()).to_std().unwrap_or_default();
        let warn_id = id.clone();
        self.session_timers
            .push(ctx.run_later(left.saturating_sub(SESSION_WARNING), move |act, _| act.warn_session(&warn_id, until)));
        self.session_timers.push(ctx.run_later(left, move |act, ctx| {
            act.guarded(ctx, |act, ctx| {
                if act.live.session.as_ref().is_some_and(|s| s.id == id) {
                    let _ = act.end_session(None, "system", "time_up", ctx);
                }
            })
        }));
    }

    fn warn_session(&self, session_id: &str, until: DateTime<Utc>) {
        let Some(session) = self.live.session.as_ref().filter(|s| s.id == session_id) else { return };
        let warning = serde_json::json!({
            "type": "session_warning",
            "makerspace_id": self.identity.makerspace_id,
            "equipment_id": &*self.identity.equipment_id,
            "session_id": session.id,
            "user_id": session.user_id,
            "until": until,
        });
        self.deps.hub.publish_event(&self.identity.makerspace_id, &Arc::from(warning.to_string()));
    }

    /// Ends the session in progress (the given one, if named): switches the machine off and
    /// stores the usage record with its cost.
    fn end_session(
        &mut self,
        session_id: Option<&str>,
        ended_by: &str,
        reason: &str,
        ctx: &mut Context<Self>,
    ) -> Result<EndedSession, LockRefusal> {
        let current = self.live.session.clone().ok_or(LockRefusal::NotInUse)?;
        if session_id.is_some_and(|id| id != current.id) {
            return Err(LockRefusal::OtherSession);
        }
        for timer in self.session_timers.drain(..) {
            ctx.cancel_future(timer);
        }
        let now = Utc::now();
        let ended = EndedSession::close(current.clone(), now, self.identity.hourly_rate, ended_by, reason)
            .with_busy(self.live.busy.total(now));
        let transition = self.live.apply(&Input::SessionEnded, now);
        self.persist_with(transition, Some(ended.clone()), None, ctx);
        self.command(MachineCommand::Lock { session_id: current.id });
        self.publish();
        Ok(ended)
    }

    /// Takes a holding booking (new, or changed times); a released one is ignored.
    fn reserve(&mut self, hold: ReservationHold, ctx: &mut Context<Self>) {
        if self.retired {
            return;
        }
        self.holds.reserve(hold, Utc::now());
        self.refresh_holds(ctx);
    }

    /// Forgets a booking for good (it was cancelled, rejected, released or completed).
    fn unreserve(&mut self, reservation_id: &str, end: DateTime<Utc>, ctx: &mut Context<Self>) {
        if self.retired {
            return;
        }
        self.holds.release(reservation_id, end, Utc::now());
        self.refresh_holds(ctx);
    }

    /// Derives the booking in progress from the known ones, shows it if it changed, and
    /// sets the timer for the next start or end.
    fn refresh_holds(&mut self, ctx: &mut Context<Self>) {
        if let Some(timer) = self.hold_timer.take() {
            ctx.cancel_future(timer);
        }
        if self.retired {
            return;
        }
        let now = Utc::now();
        self.holds.prune(now);
        let current = self.holds.current(now).cloned();
        if current != self.live.reservation {
            self.apply(&Input::Reservation(current), ctx);
        }
        if let Some(next) = self.holds.next_change(now) {
            let wait = (next - now).to_std().unwrap_or_default();
            self.hold_timer = Some(ctx.run_later(wait, |act, ctx| {
                act.hold_timer = None;
                act.guarded(ctx, |act, ctx| act.refresh_holds(ctx))
            }));
        }
    }

    /// Tells the space's live feed what happened to the machine's job.
    fn publish_job_event(&self, event: &JobEvent, at: DateTime<Utc>) {
        let mut message = serde_json::to_value(event).unwrap_or_default();
        if let Some(fields) = message.as_object_mut() {
            fields.insert("type".into(), "machine_event".into());
            fields.insert("makerspace_id".into(), self.identity.makerspace_id.clone().into());
            fields.insert("equipment_id".into(), self.identity.equipment_id.to_string().into());
            fields.insert("state".into(), self.live.state.as_str().into());
            fields.insert("at".into(), serde_json::to_value(at).unwrap_or_default());
        }
        self.deps.hub.publish_event(&self.identity.makerspace_id, &Arc::from(message.to_string()));
    }

    /// A job command: refused with a reason unless the machine's protocol can carry it out
    /// and the machine is in a state to take it; then sent in the machine's own format, or
    /// handed to the machine's adapter, whose answer comes back through the receiver.
    fn control(&mut self, command: JobCommand) -> Result<Option<AdapterAnswer>, JobRefusal> {
        if self.retired {
            return Err(JobRefusal::Offline);
        }
        if !supports(&self.identity.connection, &MachineCommand::Job(command.clone())) {
            return Err(JobRefusal::Unsupported(command.action()));
        }
        jobs::check(&command, self.live.state)?;
        let Some(adapter) = &self.adapter else {
            self.command(MachineCommand::Job(command));
            return Ok(None);
        };
        let (reply, answer) = tokio::sync::oneshot::channel();
        match adapter.try_send(AdapterCommand { command, reply }) {
            Ok(()) => Ok(Some(answer)),
            Err(tokio::sync::mpsc::error::TrySendError::Full(_)) => {
                Err(JobRefusal::Rejected("earlier commands to this machine are still waiting for an answer".into()))
            }
            Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => Err(JobRefusal::Offline),
        }
    }

    fn publish(&self) {
        self.deps.hub.publish_machine(&self.identity.makerspace_id, &self.identity.equipment_id, || {
            machine_message(&self.view())
        });
    }

    /// Hands the current state to the state writer. When its queue is full the actor waits
    /// (processes no further message) rather than dropping a transition.
    fn persist(&mut self, transition: Option<Transition>, ctx: &mut Context<Self>) {
        self.persist_with(transition, None, None, ctx)
    }

    fn persist_with(
        &mut self,
        transition: Option<Transition>,
        ended_session: Option<EndedSession>,
        job_event: Option<JobEvent>,
        ctx: &mut Context<Self>,
    ) {
        let change = StateChange {
            equipment_id: self.identity.equipment_id.to_string(),
            makerspace_id: self.identity.makerspace_id.clone(),
            live: self.live.clone(),
            transition,
            ended_session,
            job_event,
        };
        self.last_persisted = self.live.clone();
        self.dirty = false;
        match self.deps.state_writer.try_send(Entry::State(change)) {
            Ok(()) => {}
            Err(tokio::sync::mpsc::error::TrySendError::Full(change)) => {
                let writer = self.deps.state_writer.clone();
                ctx.wait(actix::fut::wrap_future(async move {
                    let _ = writer.send(change).await;
                }));
            }
            Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => {
                tracing::warn!(equipment_id = ?self.identity.equipment_id, "state writer is gone; change not persisted");
            }
        }
    }

    /// Makes sure a heartbeat check is pending. One timer at a time: when it fires early
    /// (the machine spoke since), it re-arms for the remainder instead of being reset on
    /// every message.
    fn arm_heartbeat(&mut self, ctx: &mut Context<Self>) {
        // An adapter tells when the machine is unreachable, and delivers only changes: the
        // silence of an idle printer is not an outage.
        if self.heartbeat_armed || self.adapter.is_some() {
            return;
        }
        self.heartbeat_armed = true;
        let due = self.identity.heartbeat_timeout.saturating_sub(self.last_heard_at.elapsed());
        ctx.run_later(due, |act, ctx| {
            act.heartbeat_armed = false;
            act.guarded(ctx, |act, ctx| {
                if act.adapter.is_some() {
                    // An adapter took over while this check was pending.
                } else if act.live.online && act.last_heard_at.elapsed() >= act.identity.heartbeat_timeout {
                    tracing::info!(equipment_id = ?act.identity.equipment_id, "heartbeat timeout: machine offline");
                    act.apply(&Input::HeartbeatExpired, ctx);
                } else if act.live.online {
                    act.arm_heartbeat(ctx);
                }
            })
        });
    }
}

impl Actor for MachineActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
        if self.retired {
            return;
        }
        // A machine restored as online must be heard from again within its timeout.
        self.last_heard_at = Instant::now();
        if self.live.online {
            self.arm_heartbeat(ctx);
        }
        ctx.run_interval(SNAPSHOT_INTERVAL, |act, ctx| {
            if act.dirty && !act.retired {
                act.persist(None, ctx);
            }
        });
        self.arm_session_timers(ctx);
        // Derives the booking in progress again (after a restart, from the bookings kept).
        self.refresh_holds(ctx);
        self.publish();
    }
}

impl Supervised for MachineActor {
    fn restarting(&mut self, ctx: &mut Context<Self>) {
        metrics::counter!(crate::metrics::ACTOR_RESTARTS).increment(1);
        self.heartbeat_armed = false;
        // The context's timers are gone with the old run; `started` arms them again.
        self.session_timers.clear();
        self.hold_timer = None;
        self.plug.timer = None;
        if self.retired {
            return;
        }
        // Whatever the failed handler left half-done is discarded.
        self.live = self.last_persisted.clone();
        self.dirty = false;
        let now = Instant::now();
        self.restarts.push_back(now);
        while self.restarts.front().is_some_and(|t| now.duration_since(*t) > RESTART_WINDOW) {
            self.restarts.pop_front();
        }
        if self.restarts.len() > MAX_RESTARTS {
            tracing::warn!(equipment_id = ?self.identity.equipment_id, "machine actor keeps failing; backing off");
            ctx.wait(actix::fut::wrap_future(tokio::time::sleep(RESTART_BACKOFF)));
        }
    }
}

/// An input from a protocol adapter (telemetry, availability).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Report(pub Input);

impl Handler<Report> for MachineActor {
    type Result = ();
    fn handle(&mut self, msg: Report, ctx: &mut Context<Self>) {
        self.guarded(ctx, |act, ctx| act.apply(&msg.0, ctx))
    }
}

/// The equipment record changed (name, type, heartbeat, maintenance).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Configure(pub EquipmentRecord);

impl Handler<Configure> for MachineActor {
    type Result = ();
    fn handle(&mut self, msg: Configure, ctx: &mut Context<Self>) {
        self.guarded(ctx, |act, ctx| {
            act.identity = MachineIdentity::from_record(&msg.0);
            act.live.auto_clear = act.identity.auto_clear;
            // What it can make may have changed (type, build volume, tags).
            act.deps.router.machine_changed(&act.identity.makerspace_id, &act.identity.equipment_id);
            let maintenance = msg.0.admin_status == AdminStatus::Maintenance;
            if maintenance != act.live.maintenance {
                act.apply(&Input::Maintenance(maintenance), ctx);
            } else {
                act.publish();
            }
        })
    }
}

/// A person confirmed the machine's bed is clear. Answers whether it was waiting for that.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct ClearBed;

impl Handler<ClearBed> for MachineActor {
    type Result = bool;
    fn handle(&mut self, _: ClearBed, ctx: &mut Context<Self>) -> bool {
        self.guarded(ctx, |act, ctx| {
            let waiting = act.live.awaiting_clear && !act.retired;
            if waiting {
                act.apply(&Input::BedCleared, ctx);
                // A clear may not change the state (the machine is in error): the router
                // hears of it all the same.
                act.deps.router.machine_changed(&act.identity.makerspace_id, &act.identity.equipment_id);
            }
            waiting
        })
    }
}

/// Asks for the current state.
#[derive(Message)]
#[rtype(result = "MachineView")]
pub struct GetView;

impl Handler<GetView> for MachineActor {
    type Result = MessageResult<GetView>;
    fn handle(&mut self, _: GetView, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.view())
    }
}

/// The machine is going away: stop for good. With `announce`, WebSocket clients are told the
/// machine was removed (the actor says it itself, so the message comes after its last update).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Retire {
    pub announce: bool,
}

#[derive(Serialize)]
struct RemovedMessage<'a> {
    r#type: &'static str,
    makerspace_id: &'a str,
    equipment_id: &'a str,
}

impl Handler<Retire> for MachineActor {
    type Result = ();
    fn handle(&mut self, msg: Retire, ctx: &mut Context<Self>) {
        // A machine deleted in the middle of a session is switched off and the session
        // recorded; at shutdown (no announcement) sessions carry on, to be restored at start.
        if msg.announce && !self.retired && self.live.session.is_some() {
            let _ = self.end_session(None, "system", "machine_removed", ctx);
        }
        if msg.announce && !self.retired {
            let removed = RemovedMessage {
                r#type: "machine_removed",
                makerspace_id: &self.identity.makerspace_id,
                equipment_id: &self.identity.equipment_id,
            };
            let text: Arc<str> = Arc::from(serde_json::to_string(&removed).unwrap_or_default());
            self.deps.hub.publish_removal(&self.identity.makerspace_id, &self.identity.equipment_id, &text);
        }
        self.retired = true;
        // The supervisor restarts a stopped actor while any address to it is alive; a retired
        // one then does nothing, and ends for good once the last address is dropped.
        ctx.stop();
    }
}

/// A holding booking (confirmed or checked in) of the machine: while it is in progress and
/// nobody uses the machine, the machine shows `reserved` (`maintenance` for a maintenance
/// window). Sent again when it changes; a booking already released is ignored.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Reserve(pub ReservationHold);

impl Handler<Reserve> for MachineActor {
    type Result = ();
    fn handle(&mut self, msg: Reserve, ctx: &mut Context<Self>) {
        self.guarded(ctx, |act, ctx| act.reserve(msg.0, ctx))
    }
}

/// A booking no longer holds the machine (cancelled, rejected, released as a no-show,
/// completed). `end` is when it would have ended: until then a stale `Reserve` of it is
/// ignored.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Unreserve {
    pub reservation_id: String,
    pub end: DateTime<Utc>,
}

impl Handler<Unreserve> for MachineActor {
    type Result = ();
    fn handle(&mut self, msg: Unreserve, ctx: &mut Context<Self>) {
        self.guarded(ctx, |act, ctx| act.unreserve(&msg.reservation_id, msg.end, ctx))
    }
}

/// Makes the actor's handler panic: for supervision tests and failure drills.
#[derive(Message)]
#[rtype(result = "()")]
pub struct InjectFault;

impl Handler<InjectFault> for MachineActor {
    type Result = ();
    fn handle(&mut self, _: InjectFault, ctx: &mut Context<Self>) {
        self.guarded(ctx, |act, _| {
            // Leave a visible half-done change behind, so tests can see it is discarded.
            act.live.state = MachineState::Error;
            panic!("fault injected into machine actor {}", act.identity.equipment_id);
        })
    }
}

/// Why a machine cannot be unlocked now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnlockRefusal {
    #[error("the machine is in maintenance")]
    Maintenance,
    #[error("the machine is offline")]
    Offline,
    #[error("the machine reports an error")]
    Error,
    #[error("someone else is using the machine")]
    Busy { user_id: String },
    #[error("the machine is being removed")]
    Gone,
}

impl UnlockRefusal {
    /// The stable code kiosks show (`machine_offline`, `machine_busy`, ...).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Maintenance => "maintenance",
            Self::Offline => "machine_offline",
            Self::Error => "machine_error",
            Self::Busy { .. } => "machine_busy",
            Self::Gone => "unknown_machine",
        }
    }
}

/// Why a session could not be ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LockRefusal {
    #[error("the machine has no session in progress")]
    NotInUse,
    #[error("a different session is in progress")]
    OtherSession,
}

/// Unlock the machine for a member's session (already cleared by the gate and the book).
#[derive(Message)]
#[rtype(result = "Result<Session, UnlockRefusal>")]
pub struct Unlock(pub Session);

impl Handler<Unlock> for MachineActor {
    type Result = Result<Session, UnlockRefusal>;
    fn handle(&mut self, msg: Unlock, ctx: &mut Context<Self>) -> Self::Result {
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| self.start_session(msg.0, ctx)));
        outcome.unwrap_or_else(|_| {
            ctx.stop();
            Err(UnlockRefusal::Gone)
        })
    }
}

/// Where an adapter's answer to a job command arrives.
type AdapterAnswer = tokio::sync::oneshot::Receiver<Result<(), JobRefusal>>;

/// A job command (pause, resume, cancel, send-and-start, refresh). Answered once the command
/// is sent (MQTT), or once the machine's adapter has carried it out or been refused
/// (OctoPrint); the actor takes other messages meanwhile.
#[derive(Message)]
#[rtype(result = "Result<(), JobRefusal>")]
pub struct Control(pub JobCommand);

impl Handler<Control> for MachineActor {
    type Result = ResponseFuture<Result<(), JobRefusal>>;
    fn handle(&mut self, msg: Control, ctx: &mut Context<Self>) -> Self::Result {
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| self.control(msg.0)));
        let outcome = outcome.unwrap_or_else(|_| {
            ctx.stop();
            Err(JobRefusal::Offline)
        });
        Box::pin(async move {
            match outcome? {
                // An adapter that stops before answering is as good as offline.
                Some(answer) => answer.await.unwrap_or(Err(JobRefusal::Offline)),
                None => Ok(()),
            }
        })
    }
}

/// The machine's adapter changed (its connection was edited): `None` when it has none now.
#[derive(Message)]
#[rtype(result = "()")]
pub struct UseAdapter(pub Option<AdapterSender>);

impl Handler<UseAdapter> for MachineActor {
    type Result = ();
    fn handle(&mut self, msg: UseAdapter, ctx: &mut Context<Self>) {
        self.adapter = msg.0;
        if self.live.online && !self.retired {
            self.arm_heartbeat(ctx);
        }
    }
}

/// End the session in progress (the named one, if given).
#[derive(Message)]
#[rtype(result = "Result<EndedSession, LockRefusal>")]
pub struct Lock {
    pub session_id: Option<String>,
    pub ended_by: String,
    pub reason: String,
}

impl Handler<Lock> for MachineActor {
    type Result = Result<EndedSession, LockRefusal>;
    fn handle(&mut self, msg: Lock, ctx: &mut Context<Self>) -> Self::Result {
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
            self.end_session(msg.session_id.as_deref(), &msg.ended_by, &msg.reason, ctx)
        }));
        outcome.unwrap_or_else(|_| {
            ctx.stop();
            Err(LockRefusal::NotInUse)
        })
    }
}
