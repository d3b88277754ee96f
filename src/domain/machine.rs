//! The live state of one machine and how reports change it.
//!
//! The effective state is derived, never set directly: an admin's maintenance flag wins, then
//! reachability (a machine we cannot hear is `offline`), then what the machine last reported.
//! Keeping the three inputs apart means leaving maintenance or coming back online lands in the
//! right state without special cases.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::busy::BusyClock;

/// The states a machine can be in, as the dashboard shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum MachineState {
    #[default]
    Offline,
    Idle,
    /// A booking is due now (set by the reservation book).
    Reserved,
    /// Unlocked by a member.
    InUse,
    /// A job is printing or cutting.
    Running,
    Paused,
    /// A job ended on it: nothing starts until a person confirms the bed or plate is clear.
    AwaitingClear,
    Error,
    Maintenance,
}

impl MachineState {
    pub const ALL: [MachineState; 9] = [
        Self::Offline,
        Self::Idle,
        Self::Reserved,
        Self::InUse,
        Self::Running,
        Self::Paused,
        Self::AwaitingClear,
        Self::Error,
        Self::Maintenance,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Offline => "offline",
            Self::Idle => "idle",
            Self::Reserved => "reserved",
            Self::InUse => "in_use",
            Self::Running => "running",
            Self::Paused => "paused",
            Self::AwaitingClear => "awaiting_clear",
            Self::Error => "error",
            Self::Maintenance => "maintenance",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// What a machine may say about itself in telemetry. `reserved` and `maintenance` are ours
    /// to decide, not the machine's; common firmware words are accepted as aliases.
    pub fn from_report(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "idle" | "ready" | "operational" | "finished" | "available" => Some(Self::Idle),
            "in_use" | "unlocked" => Some(Self::InUse),
            "running" | "printing" | "cutting" | "busy" => Some(Self::Running),
            "paused" | "pausing" => Some(Self::Paused),
            "error" | "failed" | "alarm" => Some(Self::Error),
            "offline" => Some(Self::Offline),
            _ => None,
        }
    }

    /// The coarse status of the product documents' Equipment model.
    pub fn document_status(self) -> &'static str {
        match self {
            Self::Idle => "available",
            Self::Reserved | Self::InUse | Self::Running | Self::Paused | Self::AwaitingClear => "in_use",
            Self::Maintenance => "maintenance",
            Self::Offline | Self::Error => "offline",
        }
    }
}

/// The job a machine reports it is running.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, Default)]
pub struct JobProgress {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// 0 to 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining_s: Option<i64>,
}

/// Temperatures in °C; each reading optional because plugs and lasers have none.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema, Default)]
pub struct Temperatures {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nozzle: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nozzle_target: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bed: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bed_target: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chamber: Option<f64>,
}

impl Temperatures {
    /// Takes every reading present in `update`, keeps the others.
    pub fn merge(&mut self, update: &Temperatures) {
        let take = |mine: &mut Option<f64>, theirs: Option<f64>| {
            if theirs.is_some() {
                *mine = theirs;
            }
        };
        take(&mut self.nozzle, update.nozzle);
        take(&mut self.nozzle_target, update.nozzle_target);
        take(&mut self.bed, update.bed);
        take(&mut self.bed_target, update.bed_target);
        take(&mut self.chamber, update.chamber);
    }
}

/// A member's usage session: the machine is unlocked for them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Session {
    pub id: String,
    /// The identity (JWT `sub`) of the member using the machine.
    pub user_id: String,
    pub member_id: Option<String>,
    pub started_at: DateTime<Utc>,
    /// When the session must end (the next booking, the end of a booking), if known.
    pub until: Option<DateTime<Utc>>,
}

/// What a booking of the machine in progress is: a member's booking or a maintenance window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HoldKind {
    Booking,
    Maintenance,
}

/// A holding booking (confirmed or checked in) of the machine, as the reservation book tells
/// the machine's actor about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReservationHold {
    /// The reservation's id.
    pub id: String,
    /// Whose booking it is (the admin who blocked it, for a maintenance window).
    pub user_id: String,
    pub kind: HoldKind,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// What a printer has loaded, as it reports it (Bambu: the AMS trays and the nozzle): the job
/// router matches jobs against it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, Default)]
pub struct Loadout {
    /// The nozzle's diameter in millimetres.
    pub nozzle_diameter_mm: Option<f64>,
    pub trays: Vec<Tray>,
}

/// A filament tray (an AMS slot, or the external spool holder).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Tray {
    /// `"{ams}-{tray}"`, or `"external"` for the spool holder.
    pub slot: String,
    /// `PLA`, `PETG`, `ABS`, ... (`None` for an empty tray).
    pub material: Option<String>,
    /// `RRGGBBAA` as the printer sends it.
    pub color: Option<String>,
    /// Percent of the spool left, when the printer knows it (RFID spools).
    pub remain_percent: Option<u8>,
    /// The tray feeding the printer now.
    pub active: bool,
}

/// A telemetry report, already parsed from whatever protocol carried it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TelemetryUpdate {
    pub state: Option<MachineState>,
    /// `None`: not mentioned; `Some(None)`: the machine says it has no job.
    pub job: Option<Option<JobProgress>>,
    pub temps: Option<Temperatures>,
    pub power_w: Option<f64>,
    /// Whether the machine's smart plug has its relay closed (power on), when it says.
    pub relay_on: Option<bool>,
    /// The machine's own clock, when it sent one.
    pub reported_at: Option<DateTime<Utc>>,
    /// Why the machine is in error, when it reports `error` (or `offline`) and says why.
    pub error: Option<String>,
    /// What the machine has loaded, when it says (`None`: not mentioned). Boxed: most
    /// machines never send it, and telemetry is the hottest message.
    pub loadout: Option<Box<Loadout>>,
}

/// Everything that can change a machine's live state.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    Telemetry(TelemetryUpdate),
    /// The machine's status topic (or last will): reachable or not.
    Availability {
        online: bool,
    },
    /// Nothing heard within the heartbeat timeout.
    HeartbeatExpired,
    /// The machine's protocol adapter still hears it, with nothing new to say (it drops
    /// unchanged reports): only `last_heard` moves.
    Heard,
    /// An admin took the machine out of service, or put it back.
    Maintenance(bool),
    /// A member's session started (the machine was unlocked for them).
    SessionStarted(Session),
    /// The session ended (locked).
    SessionEnded,
    /// The booking in progress now (`None`: none), as the machine's actor derives it from
    /// the bookings it was told about.
    Reservation(Option<ReservationHold>),
    /// A job lifecycle event the machine reported.
    Job(super::jobs::JobEvent),
    /// A person (at the dashboard, a kiosk or the bridge's button) confirmed the bed is clear.
    BedCleared,
    /// A plug's power draw, held past its threshold (see [`super::busy::PowerHold`]), says
    /// the machine runs or no longer does. Not hearing from the machine: a timer decides it.
    PowerSensed {
        running: bool,
    },
}

/// The live state of one machine, as its actor owns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveState {
    /// The effective state (derived from the three fields below, cached for comparison).
    pub state: MachineState,
    /// When `state` last changed.
    pub since: DateTime<Utc>,
    /// What the machine itself last said it was doing.
    pub reported: MachineState,
    pub online: bool,
    pub maintenance: bool,
    pub job: Option<JobProgress>,
    pub temps: Temperatures,
    pub power_w: Option<f64>,
    /// Whether the machine's smart plug has its relay closed, for a machine behind a plug.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay_on: Option<bool>,
    /// When we last heard anything from the machine.
    pub last_heard: Option<DateTime<Utc>>,
    /// The machine's own timestamp of its last report.
    pub reported_at: Option<DateTime<Utc>>,
    /// Why the machine is in error (a failed job's reason, a refused API key), while it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What the machine last said it has loaded (materials, nozzle), if it says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loadout: Option<Loadout>,
    /// The member session in progress, if any.
    #[serde(default)]
    pub session: Option<Session>,
    /// A job ended and no person has confirmed the bed is clear yet: no job starts.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub awaiting_clear: bool,
    /// The machine clears itself (a belt printer, a plate changer): a job's end does not
    /// wait for a person. From the equipment's settings, not persisted here.
    #[serde(skip)]
    pub auto_clear: bool,
    /// The booking in progress, if any. Not persisted: it is derived again from the
    /// reservation book when makrcave starts.
    #[serde(skip)]
    pub reservation: Option<ReservationHold>,
    /// Time spent `running` since the session in progress started (its usage record's
    /// `busy_minutes`).
    #[serde(default)]
    pub busy: BusyClock,
}

/// A change of effective state, worth persisting and showing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub from: MachineState,
    pub to: MachineState,
}

impl LiveState {
    /// A machine we have never heard from.
    pub fn new(maintenance: bool, now: DateTime<Utc>) -> Self {
        let mut live = LiveState {
            state: MachineState::Offline,
            since: now,
            reported: MachineState::Idle,
            online: false,
            maintenance,
            job: None,
            temps: Temperatures::default(),
            power_w: None,
            relay_on: None,
            last_heard: None,
            reported_at: None,
            error: None,
            loadout: None,
            session: None,
            awaiting_clear: false,
            auto_clear: false,
            reservation: None,
            busy: BusyClock::default(),
        };
        live.state = live.effective_state();
        live
    }

    /// Maintenance wins, then reachability, then what the machine is busy with (a job, a
    /// pause, an error), then a bed to clear after a job, then a member's session, then a booking in progress (`reserved`, or
    /// `maintenance` for a maintenance window) on an idle machine, then the machine's own word.
    pub fn effective_state(&self) -> MachineState {
        if self.maintenance {
            MachineState::Maintenance
        } else if !self.online {
            MachineState::Offline
        } else if matches!(self.reported, MachineState::Running | MachineState::Paused | MachineState::Error) {
            self.reported
        } else if self.awaiting_clear {
            MachineState::AwaitingClear
        } else if self.session.is_some() {
            MachineState::InUse
        } else if let (Some(hold), MachineState::Idle) = (&self.reservation, self.reported) {
            match hold.kind {
                HoldKind::Booking => MachineState::Reserved,
                HoldKind::Maintenance => MachineState::Maintenance,
            }
        } else {
            self.reported
        }
    }

    /// A job event: the machine is talking, its state follows the event, and its job starts,
    /// moves or ends.
    fn apply_job_event(&mut self, event: &super::jobs::JobEvent, now: DateTime<Utc>) {
        use super::jobs::JobEvent;
        self.last_heard = Some(now);
        self.online = true;
        if let Some(state) = event.reported_state() {
            self.reported = state;
            self.error = match event {
                JobEvent::JobFailed { reason } => Some(reason.clone()),
                _ => None,
            };
        }
        match event {
            JobEvent::JobStarted { file } => {
                self.job = Some(JobProgress { file: file.clone(), progress: Some(0.0), ..JobProgress::default() })
            }
            JobEvent::JobProgress { progress } => {
                self.job.get_or_insert_with(JobProgress::default).progress = Some(progress.clamp(0.0, 100.0))
            }
            JobEvent::JobFinished | JobEvent::JobFailed { .. } | JobEvent::JobCancelled => {
                self.job = None;
                // Whatever the end, something may be left on the bed (a part, a failed
                // tangle); only a machine that clears itself goes on without a person.
                self.awaiting_clear = !self.auto_clear;
            }
            JobEvent::JobPaused | JobEvent::JobResumed => {}
        }
    }

    /// Applies one input; returns the transition when the effective state changed.
    pub fn apply(&mut self, input: &Input, now: DateTime<Utc>) -> Option<Transition> {
        match input {
            Input::Telemetry(t) => {
                self.last_heard = Some(now);
                match t.state {
                    // A machine saying "offline" in telemetry is still talking to us: it
                    // means its controller is disconnected (OctoPrint with no printer).
                    Some(MachineState::Offline) => self.reported = MachineState::Error,
                    Some(state) => self.reported = state,
                    None => {}
                }
                // A reported state says whether the machine is in error, and why.
                if t.state.is_some() {
                    self.error = (self.reported == MachineState::Error).then(|| t.error.clone()).flatten();
                }
                self.online = true;
                if let Some(job) = &t.job {
                    self.job = job.clone();
                }
                if let Some(temps) = &t.temps {
                    self.temps.merge(temps);
                }
                if t.power_w.is_some() {
                    self.power_w = t.power_w;
                }
                if t.relay_on.is_some() {
                    self.relay_on = t.relay_on;
                }
                if t.reported_at.is_some() {
                    self.reported_at = t.reported_at;
                }
                if let Some(loadout) = &t.loadout {
                    self.loadout = Some(Loadout::clone(loadout));
                }
            }
            Input::Availability { online } => {
                if *online {
                    self.last_heard = Some(now);
                } else {
                    // We know nothing of what it does while away; it comes back idle unless
                    // it says otherwise.
                    self.reported = MachineState::Idle;
                    self.error = None;
                }
                self.online = *online;
            }
            Input::HeartbeatExpired => {
                self.online = false;
                self.reported = MachineState::Idle;
                self.error = None;
            }
            Input::Heard => self.last_heard = Some(now),
            Input::BedCleared => self.awaiting_clear = false,
            Input::Maintenance(on) => self.maintenance = *on,
            Input::SessionStarted(session) => {
                self.session = Some(session.clone());
                self.busy = BusyClock::starting(self.state == MachineState::Running, now);
            }
            Input::SessionEnded => self.session = None,
            Input::Reservation(hold) => self.reservation = hold.clone(),
            Input::Job(event) => self.apply_job_event(event, now),
            // Power says nothing about a pause or an error the machine reported itself.
            Input::PowerSensed { running } => match (self.reported, running) {
                (MachineState::Idle, true) => self.reported = MachineState::Running,
                (MachineState::Running, false) => self.reported = MachineState::Idle,
                _ => {}
            },
        }
        let next = self.effective_state();
        self.busy.observe(next == MachineState::Running, now);
        if next == self.state {
            return None;
        }
        let transition = Transition { from: self.state, to: next };
        self.state = next;
        self.since = now;
        Some(transition)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn now() -> DateTime<Utc> {
        Utc::now()
    }

    fn telemetry(state: Option<MachineState>) -> Input {
        Input::Telemetry(TelemetryUpdate { state, ..Default::default() })
    }

    #[test]
    fn first_telemetry_brings_a_machine_online_idle() {
        let mut live = LiveState::new(false, now());
        assert_eq!(live.state, MachineState::Offline);
        let t = live.apply(&telemetry(None), now());
        assert_eq!(t, Some(Transition { from: MachineState::Offline, to: MachineState::Idle }));
        assert!(live.last_heard.is_some());
    }

    #[test]
    fn reported_state_and_job_are_taken() {
        let mut live = LiveState::new(false, now());
        let job = JobProgress {
            id: Some("j1".into()),
            file: Some("cube.gcode".into()),
            progress: Some(42.0),
            remaining_s: Some(60),
        };
        live.apply(
            &Input::Telemetry(TelemetryUpdate {
                state: Some(MachineState::Running),
                job: Some(Some(job.clone())),
                temps: Some(Temperatures { nozzle: Some(210.0), ..Default::default() }),
                power_w: Some(120.0),
                relay_on: Some(true),
                reported_at: None,
                error: None,
                loadout: None,
            }),
            now(),
        );
        assert_eq!(live.state, MachineState::Running);
        assert_eq!(live.job, Some(job));
        // A later partial report keeps what it does not mention.
        live.apply(
            &Input::Telemetry(TelemetryUpdate {
                temps: Some(Temperatures { bed: Some(60.0), ..Default::default() }),
                ..Default::default()
            }),
            now(),
        );
        assert_eq!(live.temps.nozzle, Some(210.0));
        assert_eq!(live.temps.bed, Some(60.0));
        assert_eq!((live.power_w, live.relay_on), (Some(120.0), Some(true)));
        assert!(live.job.is_some());
        // An explicit null clears the job.
        live.apply(&Input::Telemetry(TelemetryUpdate { job: Some(None), ..Default::default() }), now());
        assert_eq!(live.job, None);
    }

    #[test]
    fn maintenance_wins_and_leaving_it_restores_the_reported_state() {
        let mut live = LiveState::new(false, now());
        live.apply(&telemetry(Some(MachineState::Running)), now());
        live.apply(&Input::Maintenance(true), now());
        assert_eq!(live.state, MachineState::Maintenance);
        assert_eq!(live.apply(&telemetry(Some(MachineState::Paused)), now()), None);
        assert_eq!(live.state, MachineState::Maintenance);
        live.apply(&Input::Maintenance(false), now());
        assert_eq!(live.state, MachineState::Paused);
    }

    #[test]
    fn a_session_shows_in_use_unless_the_machine_is_busy_with_more() {
        let mut live = LiveState::new(false, now());
        live.apply(&telemetry(Some(MachineState::Idle)), now());
        let session = Session { id: "s".into(), user_id: "u".into(), member_id: None, started_at: now(), until: None };
        live.apply(&Input::SessionStarted(session), now());
        assert_eq!(live.state, MachineState::InUse);
        live.apply(&telemetry(Some(MachineState::Running)), now());
        assert_eq!(live.state, MachineState::Running, "cutting during a session shows as running");
        live.apply(&telemetry(Some(MachineState::Idle)), now());
        assert_eq!(live.state, MachineState::InUse);
        live.apply(&Input::SessionEnded, now());
        assert_eq!(live.state, MachineState::Idle);
    }

    #[test]
    fn an_error_carries_its_reason_while_it_lasts() {
        let mut live = LiveState::new(false, now());
        let refused = TelemetryUpdate {
            state: Some(MachineState::Error),
            error: Some("OctoPrint refused the API key".into()),
            ..Default::default()
        };
        live.apply(&Input::Telemetry(refused), now());
        assert_eq!((live.state, live.error.as_deref()), (MachineState::Error, Some("OctoPrint refused the API key")));
        live.apply(&telemetry(None), now());
        assert!(live.error.is_some(), "a report that does not say its state keeps the reason");
        live.apply(&telemetry(Some(MachineState::Idle)), now());
        assert_eq!(live.error, None);
        live.apply(&Input::Job(crate::domain::jobs::JobEvent::JobFailed { reason: "jam".into() }), now());
        assert_eq!((live.state, live.error.as_deref()), (MachineState::Error, Some("jam")));
        live.apply(&Input::Availability { online: false }, now());
        assert_eq!(live.error, None);
    }

    #[test]
    fn last_will_and_heartbeat_make_a_machine_offline() {
        let mut live = LiveState::new(false, now());
        live.apply(&telemetry(Some(MachineState::Running)), now());
        live.apply(&Input::Availability { online: false }, now());
        assert_eq!(live.state, MachineState::Offline);
        live.apply(&Input::Availability { online: true }, now());
        assert_eq!(live.state, MachineState::Idle, "comes back idle, not with a stale job state");
        live.apply(&Input::HeartbeatExpired, now());
        assert_eq!(live.state, MachineState::Offline);
    }

    #[test]
    fn sensed_power_runs_an_idle_machine_and_a_session_counts_its_busy_time() {
        let t0 = now();
        let at = |s: i64| t0 + chrono::Duration::seconds(s);
        let mut live = LiveState::new(false, t0);
        live.apply(&Input::Availability { online: true }, at(0));
        let session = Session { id: "s".into(), user_id: "u".into(), member_id: None, started_at: at(0), until: None };
        live.apply(&Input::SessionStarted(session), at(0));
        assert_eq!(live.state, MachineState::InUse);
        live.apply(&Input::PowerSensed { running: true }, at(60));
        assert_eq!(live.state, MachineState::Running);
        let t = live.apply(&Input::PowerSensed { running: false }, at(180));
        assert_eq!(t, Some(Transition { from: MachineState::Running, to: MachineState::InUse }));
        assert_eq!(live.busy.total(at(300)), chrono::Duration::seconds(120));
        // A pause the machine reported is not undone by its power.
        live.apply(&telemetry(Some(MachineState::Paused)), at(400));
        live.apply(&Input::PowerSensed { running: true }, at(401));
        assert_eq!(live.state, MachineState::Paused);
        // The next session counts from its own start.
        live.apply(&Input::SessionEnded, at(500));
        let next = Session { id: "s2".into(), user_id: "u".into(), member_id: None, started_at: at(600), until: None };
        live.apply(&Input::SessionStarted(next), at(600));
        assert_eq!(live.busy.total(at(700)), chrono::Duration::zero());
    }

    fn hold(kind: HoldKind) -> ReservationHold {
        ReservationHold { id: "r".into(), user_id: "u".into(), kind, start: now(), end: now() }
    }

    #[test]
    fn a_booking_in_progress_shows_reserved_until_a_session_or_a_job_takes_over() {
        let mut live = LiveState::new(false, now());
        live.apply(&Input::Reservation(Some(hold(HoldKind::Booking))), now());
        assert_eq!(live.state, MachineState::Offline, "an unreachable machine is offline, booked or not");
        live.apply(&telemetry(Some(MachineState::Idle)), now());
        assert_eq!(live.state, MachineState::Reserved);
        assert!(live.online, "the underlying live state is kept");
        let session = Session { id: "s".into(), user_id: "u".into(), member_id: None, started_at: now(), until: None };
        live.apply(&Input::SessionStarted(session), now());
        assert_eq!(live.state, MachineState::InUse, "in_use wins");
        live.apply(&Input::SessionEnded, now());
        assert_eq!(live.state, MachineState::Reserved, "the booking still runs");
        live.apply(&telemetry(Some(MachineState::Running)), now());
        assert_eq!(live.state, MachineState::Running);
        live.apply(&telemetry(Some(MachineState::Idle)), now());
        let t = live.apply(&Input::Reservation(None), now());
        assert_eq!(t, Some(Transition { from: MachineState::Reserved, to: MachineState::Idle }));
        live.apply(&Input::Reservation(Some(hold(HoldKind::Maintenance))), now());
        assert_eq!(live.state, MachineState::Maintenance, "a maintenance window shows as maintenance");
        assert!(!live.maintenance, "without touching the admin's flag");
    }

    #[test]
    fn heard_moves_only_last_heard() {
        let mut live = LiveState::new(false, now());
        live.apply(&telemetry(Some(MachineState::Running)), now());
        let before = live.clone();
        let later = now() + chrono::Duration::seconds(10);
        assert_eq!(live.apply(&Input::Heard, later), None);
        assert_eq!(live.last_heard, Some(later));
        assert_eq!(LiveState { last_heard: before.last_heard, ..live }, before, "nothing else changed");
    }

    #[test]
    fn the_booking_in_progress_is_not_persisted() {
        let mut live = LiveState::new(false, now());
        live.apply(&telemetry(None), now());
        live.apply(&Input::Reservation(Some(hold(HoldKind::Booking))), now());
        let mut restored: LiveState = serde_json::from_str(&serde_json::to_string(&live).unwrap()).unwrap();
        assert_eq!(restored.reservation, None);
        restored.apply(&Input::Maintenance(false), now());
        assert_eq!(restored.state, MachineState::Idle, "re-derived from the book, not restored");
    }

    fn any_state() -> impl Strategy<Value = MachineState> {
        proptest::sample::select(MachineState::ALL.to_vec())
    }

    fn any_input() -> impl Strategy<Value = Input> {
        prop_oneof![
            proptest::option::of(any_state()).prop_map(telemetry),
            any::<bool>().prop_map(|online| Input::Availability { online }),
            Just(Input::HeartbeatExpired),
            Just(Input::Heard),
            any::<bool>().prop_map(Input::Maintenance),
            Just(Input::SessionStarted(Session {
                id: "s".into(),
                user_id: "u".into(),
                member_id: None,
                started_at: Utc::now(),
                until: None
            })),
            Just(Input::SessionEnded),
            any::<bool>().prop_map(|running| Input::PowerSensed { running }),
            proptest::option::of(prop_oneof![Just(HoldKind::Booking), Just(HoldKind::Maintenance)])
                .prop_map(|k| Input::Reservation(k.map(hold))),
        ]
    }

    proptest! {
        #[test]
        fn state_is_always_the_derived_one_and_transitions_are_real(
            inputs in proptest::collection::vec(any_input(), 0..60)
        ) {
            let mut live = LiveState::new(false, now());
            for input in &inputs {
                let before = live.state;
                let transition = live.apply(input, now());
                prop_assert_eq!(live.state, live.effective_state());
                match transition {
                    Some(t) => {
                        prop_assert_eq!(t.from, before);
                        prop_assert_eq!(t.to, live.state);
                        prop_assert_ne!(t.from, t.to);
                    }
                    None => prop_assert_eq!(before, live.state),
                }
                if live.maintenance {
                    prop_assert_eq!(live.state, MachineState::Maintenance);
                }
            }
        }
    }
}
