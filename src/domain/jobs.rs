//! Jobs on a machine, whatever its protocol: the commands makrcave gives (send-and-start a
//! file, pause, resume, cancel, refresh) and the lifecycle events machines report (started,
//! progress, paused, resumed, finished, failed, cancelled).
//!
//! Which commands a machine's protocol can carry out is the protocol's business
//! (`crate::protocols::commands::supports`); whether the machine is in a state to take one is
//! decided here, from its live state, so every protocol refuses the same way.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::machine::MachineState;

/// A job command, protocol-neutral.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobCommand {
    /// Send a file to the machine and start it. `file` is a local copy the adapter sends
    /// (OctoPrint, Bambu); a machine on the generic topics (makrcave-bridge) fetches it itself,
    /// as `fetch` says.
    Start {
        file: String,
        fetch: Option<FileFetch>,
    },
    Pause,
    Resume,
    Cancel,
    /// Ask the machine for a full report now.
    Refresh,
}

impl JobCommand {
    pub fn action(&self) -> &'static str {
        match self {
            Self::Start { .. } => "start",
            Self::Pause => "pause",
            Self::Resume => "resume",
            Self::Cancel => "cancel",
            Self::Refresh => "refresh",
        }
    }
}

/// Where a machine that fetches its own files (a bridge) finds a job's file: the job's file
/// endpoint, with the device token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileFetch {
    pub job_id: String,
    /// The file's name as uploaded.
    pub name: String,
    pub sha256: String,
    pub size: u64,
}

impl FileFetch {
    /// The path of the file on makrcave's API (`GET`, device token).
    pub fn url(&self) -> String {
        format!("/api/v1/kiosk/jobs/{}/file", self.job_id)
    }
}

/// Why a machine does not take a job command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobRefusal {
    #[error("this machine's connection cannot {0}")]
    Unsupported(&'static str),
    #[error("the machine is offline")]
    Offline,
    #[error("the machine is in maintenance")]
    Maintenance,
    #[error("the machine is not running a job")]
    NotRunning,
    #[error("the machine's job is not paused")]
    NotPaused,
    #[error("the machine is busy with a job")]
    Busy,
    #[error("the machine's bed is not cleared since its last job: a person must confirm it first")]
    BedNotClear,
    /// The machine (or its controller, e.g. OctoPrint) answered and refused, saying why.
    #[error("the machine refused: {0}")]
    Rejected(String),
}

impl JobRefusal {
    /// The stable code clients read (`error_type`).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unsupported(_) => "unsupported",
            Self::Offline => "machine_offline",
            Self::Maintenance => "maintenance",
            Self::NotRunning => "not_running",
            Self::NotPaused => "not_paused",
            Self::Busy => "machine_busy",
            Self::BedNotClear => "bed_not_clear",
            Self::Rejected(_) => "machine_refused",
        }
    }
}

/// Whether a machine in `state` can take `command` now.
pub fn check(command: &JobCommand, state: MachineState) -> Result<(), JobRefusal> {
    match (command, state) {
        (_, MachineState::Offline) => Err(JobRefusal::Offline),
        (JobCommand::Refresh, _) => Ok(()),
        (_, MachineState::Maintenance) => Err(JobRefusal::Maintenance),
        (JobCommand::Pause, MachineState::Running) => Ok(()),
        (JobCommand::Pause, _) => Err(JobRefusal::NotRunning),
        (JobCommand::Resume, MachineState::Paused) => Ok(()),
        (JobCommand::Resume, _) => Err(JobRefusal::NotPaused),
        (JobCommand::Cancel, MachineState::Running | MachineState::Paused) => Ok(()),
        (JobCommand::Cancel, _) => Err(JobRefusal::NotRunning),
        (JobCommand::Start { .. }, MachineState::Running | MachineState::Paused | MachineState::Error) => {
            Err(JobRefusal::Busy)
        }
        (JobCommand::Start { .. }, MachineState::AwaitingClear) => Err(JobRefusal::BedNotClear),
        (JobCommand::Start { .. }, _) => Ok(()),
    }
}

/// A job lifecycle event a machine reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum JobEvent {
    JobStarted {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        file: Option<String>,
    },
    JobProgress {
        /// 0 to 100.
        progress: f64,
    },
    JobPaused,
    JobResumed,
    JobFinished,
    JobFailed {
        reason: String,
    },
    JobCancelled,
}

impl JobEvent {
    /// The event's name, as machines send it and as it is stored.
    pub fn name(&self) -> &'static str {
        match self {
            Self::JobStarted { .. } => "job_started",
            Self::JobProgress { .. } => "job_progress",
            Self::JobPaused => "job_paused",
            Self::JobResumed => "job_resumed",
            Self::JobFinished => "job_finished",
            Self::JobFailed { .. } => "job_failed",
            Self::JobCancelled => "job_cancelled",
        }
    }

    /// What the machine says it does after this event (`None`: the event does not say).
    pub fn reported_state(&self) -> Option<MachineState> {
        match self {
            Self::JobStarted { .. } | Self::JobResumed => Some(MachineState::Running),
            Self::JobPaused => Some(MachineState::Paused),
            Self::JobFinished | Self::JobCancelled => Some(MachineState::Idle),
            Self::JobFailed { .. } => Some(MachineState::Error),
            Self::JobProgress { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_needs_the_state_it_acts_on() {
        assert_eq!(check(&JobCommand::Pause, MachineState::Running), Ok(()));
        assert_eq!(check(&JobCommand::Pause, MachineState::Idle), Err(JobRefusal::NotRunning));
        assert_eq!(check(&JobCommand::Resume, MachineState::Paused), Ok(()));
        assert_eq!(check(&JobCommand::Resume, MachineState::Running), Err(JobRefusal::NotPaused));
        assert_eq!(check(&JobCommand::Cancel, MachineState::Paused), Ok(()));
        assert_eq!(check(&JobCommand::Cancel, MachineState::InUse), Err(JobRefusal::NotRunning));
        let start = JobCommand::Start { file: "benchy.gcode".into(), fetch: None };
        assert_eq!(check(&start, MachineState::Idle), Ok(()));
        assert_eq!(check(&start, MachineState::InUse), Ok(()), "the member's own session");
        assert_eq!(check(&start, MachineState::Running), Err(JobRefusal::Busy));
        assert_eq!(
            check(&start, MachineState::AwaitingClear),
            Err(JobRefusal::BedNotClear),
            "no print onto a full bed"
        );
        assert_eq!(check(&start, MachineState::Maintenance), Err(JobRefusal::Maintenance));
        for command in [JobCommand::Pause, JobCommand::Refresh, start] {
            assert_eq!(check(&command, MachineState::Offline), Err(JobRefusal::Offline));
        }
        assert_eq!(check(&JobCommand::Refresh, MachineState::Maintenance), Ok(()));
    }

    #[test]
    fn events_say_what_the_machine_does_next() {
        assert_eq!(JobEvent::JobStarted { file: None }.reported_state(), Some(MachineState::Running));
        assert_eq!(
            JobEvent::JobFailed { reason: "thermal runaway".into() }.reported_state(),
            Some(MachineState::Error)
        );
        assert_eq!(JobEvent::JobProgress { progress: 5.0 }.reported_state(), None);
        let json = serde_json::to_value(JobEvent::JobFailed { reason: "jam".into() }).expect("json");
        assert_eq!(json, serde_json::json!({"event": "job_failed", "reason": "jam"}));
    }
}
