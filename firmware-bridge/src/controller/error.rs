//! Why a controller refused a command.

/// A command the controller refused, or could not carry out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControllerError {
    #[error("the controller is offline (serial port closed)")]
    Offline,
    #[error("the controller has not reported its state yet")]
    NotReady,
    #[error("the controller is busy: {0}")]
    Busy(String),
    #[error("the controller is in alarm: {0}")]
    Alarm(String),
    #[error("no job is running")]
    NoJob,
    #[error("the job is not paused")]
    NotPaused,
    #[error("the job is already stopping")]
    Stopping,
    #[error("cannot read the job file: {0}")]
    File(String),
    #[error("the controller task has stopped")]
    Stopped,
}
