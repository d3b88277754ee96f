//! The serial controllers: GRBL 1.1 (lasers, CNC) and Marlin (printers) on a serial port.
//!
//! Parsers and streaming are pure state machines (`grbl`, `marlin`, `session`); `driver` is
//! the thin I/O loop around them (tokio-serial, the job file, reconnection). The rest of the
//! bridge talks to a controller through `spawn` and `ControllerHandle`, and hears from it
//! through `ControllerEvent`s.

mod driver;
pub mod error;
pub mod gcode;
pub mod grbl;
pub mod marlin;
pub mod session;
pub mod telemetry;

use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};

pub use error::ControllerError;
pub use telemetry::{ControllerEvent, JobEvent, JobTelemetry, MachineState, Telemetry, Temps};

/// The firmware on the other end of the serial port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ControllerKind {
    Grbl,
    Marlin,
}

/// How to reach and drive a controller.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    pub kind: ControllerKind,
    /// A serial device (`/dev/ttyUSB0`, `/dev/serial/by-id/…`) or a pseudo-terminal.
    pub port: PathBuf,
    pub baud: u32,
    /// GRBL: how often the real-time `?` asks for a status report. Marlin: how often deadlines
    /// are checked (and `M105` sent when the printer does not auto-report).
    pub poll_interval: Duration,
    /// GRBL's serial RX buffer in bytes: 128 on an Arduino; larger on 32-bit ports (grblHAL).
    pub rx_buffer_bytes: usize,
    /// GRBL: how long a cancel waits for the feed hold (or the `M5` answer), and then for the
    /// banner after the reset, before going on anyway.
    pub hold_timeout: Duration,
    /// Marlin: how long a line may wait for its `ok` with no sign of life (busy messages
    /// restart it) before the job fails.
    pub response_timeout: Duration,
    /// Marlin: the `M155` temperature auto-report interval (whole seconds).
    pub temperature_interval: Duration,
    /// The longest wait between two attempts to reopen a failed port (it doubles up to this).
    pub reconnect_max: Duration,
}

impl ControllerConfig {
    /// Settings that suit an Arduino GRBL or a stock Marlin printer at 115200 baud.
    pub fn new(kind: ControllerKind, port: impl Into<PathBuf>) -> Self {
        ControllerConfig {
            kind,
            port: port.into(),
            baud: 115_200,
            // GRBL's docs suggest at most 5 Hz; 4 Hz keeps the telemetry fresh.
            poll_interval: Duration::from_millis(250),
            rx_buffer_bytes: 128,
            hold_timeout: Duration::from_secs(5),
            // Marlin sends busy every 2 s during long commands; 30 s of silence is a dead link.
            response_timeout: Duration::from_secs(30),
            temperature_interval: Duration::from_secs(2),
            reconnect_max: Duration::from_secs(10),
        }
    }
}

/// Requests to the driver task, each with its answer.
#[derive(Debug)]
enum Command {
    Start { job_id: String, file: PathBuf, reply: oneshot::Sender<Result<(), ControllerError>> },
    Pause { reply: oneshot::Sender<Result<(), ControllerError>> },
    Resume { reply: oneshot::Sender<Result<(), ControllerError>> },
    Cancel { reply: oneshot::Sender<Result<(), ControllerError>> },
}

/// Drives one controller. Dropping every clone stops the task (and closes the port).
#[derive(Debug, Clone)]
pub struct ControllerHandle {
    commands: mpsc::Sender<Command>,
    job_running: watch::Receiver<bool>,
    telemetry: watch::Receiver<Telemetry>,
}

/// Opens the port (retrying with backoff for as long as the handle lives) and drives the
/// controller. Needs a tokio runtime. Events are bounded: read them, or the driver waits.
pub fn spawn(config: ControllerConfig) -> (ControllerHandle, mpsc::Receiver<ControllerEvent>) {
    let (commands, command_rx) = mpsc::channel(16);
    let (event_tx, events) = mpsc::channel(256);
    let (telemetry_tx, telemetry) = watch::channel(Telemetry::offline());
    let (running_tx, job_running) = watch::channel(false);
    tokio::spawn(driver::Driver::new(config, command_rx, event_tx, telemetry_tx, running_tx).run());
    (ControllerHandle { commands, job_running, telemetry }, events)
}

impl ControllerHandle {
    /// Streams `file` (read line by line from disk). Refused when offline, busy, in alarm, or
    /// before the controller reported its state. The job events' `file` is the file's name.
    pub async fn start_job(&self, job_id: String, file: PathBuf) -> Result<(), ControllerError> {
        self.ask(|reply| Command::Start { job_id, file, reply }).await
    }

    pub async fn pause(&self) -> Result<(), ControllerError> {
        self.ask(|reply| Command::Pause { reply }).await
    }

    pub async fn resume(&self) -> Result<(), ControllerError> {
        self.ask(|reply| Command::Resume { reply }).await
    }

    /// Stops the job and makes the machine safe (GRBL: hold, spindle off, reset; Marlin: heaters
    /// and fan off). `Ok` means the stop began; `JobEvent::Cancelled` says it is done.
    pub async fn cancel(&self) -> Result<(), ControllerError> {
        self.ask(|reply| Command::Cancel { reply }).await
    }

    /// True while a job streams, is paused, or is being stopped (the relay must not cut power).
    pub fn job_running(&self) -> watch::Receiver<bool> {
        self.job_running.clone()
    }

    pub fn telemetry(&self) -> watch::Receiver<Telemetry> {
        self.telemetry.clone()
    }

    async fn ask(
        &self,
        command: impl FnOnce(oneshot::Sender<Result<(), ControllerError>>) -> Command,
    ) -> Result<(), ControllerError> {
        let (reply, answer) = oneshot::channel();
        self.commands.send(command(reply)).await.map_err(|_| ControllerError::Stopped)?;
        answer.await.map_err(|_| ControllerError::Stopped)?
    }
}
