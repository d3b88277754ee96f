//! The machine's power (or enable line): a GPIO output, a pair of commands, or nothing.
//! Switched off when the bridge starts: after a restart or a power cut nobody is unlocked.

use std::time::Duration;

use gpiocdev::line::Value;

use crate::config::RelayKind;

/// How long a switch command may run before it counts as failed.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("GPIO: {0}")]
    Gpio(#[from] gpiocdev::Error),
    #[error("cannot run {program}: {source}")]
    Spawn { program: String, source: std::io::Error },
    #[error("{program} exited with {status}")]
    Failed { program: String, status: std::process::ExitStatus },
    #[error("{0} did not finish within 10 s")]
    Timeout(String),
}

enum Driver {
    Gpio(gpiocdev::Request),
    Command { on: Vec<String>, off: Vec<String> },
    None,
}

pub struct Relay {
    driver: Driver,
    /// The state as the bridge last set it (what telemetry's `relay` reports).
    on: bool,
    /// Whether `on` is known: false until the first switch after opening.
    known: bool,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay").field("on", &self.on).finish_non_exhaustive()
    }
}

impl Relay {
    /// Takes the relay and switches it off.
    pub async fn open(kind: &RelayKind) -> Result<Relay, RelayError> {
        let driver = match kind {
            RelayKind::Gpio { chip, line, active_low } => {
                let mut builder = gpiocdev::Request::builder();
                builder.on_chip(chip).with_consumer("makrcave-bridge relay").with_line(*line);
                if *active_low {
                    builder.as_active_low();
                }
                Driver::Gpio(builder.as_output(Value::Inactive).request()?)
            }
            RelayKind::Command { on, off } => Driver::Command { on: on.clone(), off: off.clone() },
            RelayKind::None => Driver::None,
        };
        let mut relay = Relay { driver, on: false, known: false };
        relay.set(false).await?;
        Ok(relay)
    }

    pub fn is_on(&self) -> bool {
        self.on
    }

    /// Switches the relay; a switch to the state it is known to be in does nothing (an unlock
    /// is confirmed twice, by makrcave's answer and by its command; a command relay driving a
    /// smart plug or a contactor should not be told twice).
    pub async fn set(&mut self, on: bool) -> Result<(), RelayError> {
        if self.known && self.on == on {
            return Ok(());
        }
        match &self.driver {
            Driver::Gpio(request) => {
                let value = if on { Value::Active } else { Value::Inactive };
                request.set_lone_value(value)?;
            }
            Driver::Command { on: on_argv, off: off_argv } => run(if on { on_argv } else { off_argv }).await?,
            Driver::None => {}
        }
        tracing::info!(on, "relay switched");
        (self.on, self.known) = (on, true);
        Ok(())
    }
}

async fn run(argv: &[String]) -> Result<(), RelayError> {
    let Some((program, args)) = argv.split_first() else { return Ok(()) };
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| RelayError::Spawn { program: program.clone(), source })?;
    let status = tokio::time::timeout(COMMAND_TIMEOUT, child.wait())
        .await
        .map_err(|_| RelayError::Timeout(program.clone()))?
        .map_err(|source| RelayError::Spawn { program: program.clone(), source })?;
    if !status.success() {
        return Err(RelayError::Failed { program: program.clone(), status });
    }
    Ok(())
}
