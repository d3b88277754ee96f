//! The whole bridge: the run loop (`app`: MQTT link, relay, card reader, allowlist, queue)
//! and, when the configuration names one, the machine's serial controller (`controller`:
//! GRBL or Marlin). This is the one place that knows both: job actions go from the run loop
//! to the controller; the controller's telemetry, job events and alarms go back through the
//! run loop's MQTT link, and whether a job runs decides when the relay may cut power.

use std::future::Future;
use std::path::PathBuf;

use tokio::sync::mpsc;

use crate::app::{App, StartError};
use crate::config::{Config, ControllerKind};
use crate::controller::{self, ControllerConfig, ControllerError, ControllerEvent, ControllerHandle};
use crate::jobs::{self, ControllerSide, JobAction};
use crate::link::LinkHandle;

/// Builds the bridge the configuration describes and runs it until `shutdown` completes.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), StartError> {
    Bridge::start(config).await?.run(shutdown).await;
    Ok(())
}

/// A bridge whose devices are open: relay switched off, card reader and controller port open.
pub struct Bridge {
    app: App,
}

impl Bridge {
    /// Opens everything the configuration names and starts the controller.
    pub async fn start(config: Config) -> Result<Bridge, StartError> {
        let (seam, side) = jobs::seam();
        let controller = controller_config(&config).map(controller::spawn);
        let app = App::build(config, seam).await?;
        if let Some((handle, events)) = controller {
            tokio::spawn(drive(handle, events, side, app.link()));
        }
        Ok(Bridge { app })
    }

    /// The number of card taps decided so far.
    pub fn taps_decided(&self) -> tokio::sync::watch::Receiver<u64> {
        self.app.taps_decided()
    }

    /// Runs until `shutdown` completes, then says `offline` and disconnects.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        self.app.run(shutdown).await;
    }
}

/// The controller's settings from the configuration (`None`: the bridge has no controller).
pub fn controller_config(config: &Config) -> Option<ControllerConfig> {
    let kind = match config.controller.kind {
        ControllerKind::Grbl => controller::ControllerKind::Grbl,
        ControllerKind::Marlin => controller::ControllerKind::Marlin,
        ControllerKind::None => return None,
    };
    let port = PathBuf::from(config.controller.port.as_deref()?);
    Some(ControllerConfig { baud: config.controller.baud, ..ControllerConfig::new(kind, port) })
}

/// Carries job actions to the controller, and what it reports back, until either side ends.
async fn drive(
    controller: ControllerHandle,
    mut events: mpsc::Receiver<ControllerEvent>,
    mut side: ControllerSide,
    link: LinkHandle,
) {
    let mut running = controller.job_running();
    loop {
        tokio::select! {
            action = side.actions.recv() => match action {
                Some(action) => act(&controller, action, &link).await,
                None => break,
            },
            event = events.recv() => match event {
                Some(ControllerEvent::Telemetry(telemetry)) => {
                    if let Ok(json) = serde_json::to_value(&telemetry) {
                        side.telemetry.send_replace(json);
                    }
                }
                Some(ControllerEvent::Connected) => tracing::info!("the controller answers on its serial port"),
                Some(ControllerEvent::Disconnected { reason }) => {
                    tracing::warn!(%reason, "the controller's serial port is lost; reopening it");
                }
                Some(event) => {
                    if let Some(json) = event.event_json() {
                        publish_event(&link, json).await;
                    }
                }
                None => break,
            },
            changed = running.changed() => {
                if changed.is_err() {
                    break;
                }
                let now = *running.borrow_and_update();
                side.job_running.send_replace(now);
            }
        }
    }
}

/// One action on the controller. A start it refuses (busy, in alarm, not connected yet) is
/// reported as the job failing, so that makrcave puts the job back in its queue; a refused
/// pause, resume or cancel only changes nothing, and the machine's reports say so.
async fn act(controller: &ControllerHandle, action: JobAction, link: &LinkHandle) {
    let result: Result<(), ControllerError> = match &action {
        JobAction::Start { job_id, file } => controller.start_job(job_id.clone(), file.clone()).await,
        JobAction::Pause => controller.pause().await,
        JobAction::Resume => controller.resume().await,
        JobAction::Cancel => controller.cancel().await,
    };
    if let Err(err) = result {
        tracing::warn!(?action, error = %err, "the controller refused a job action");
        if let JobAction::Start { .. } = action {
            let reason = format!("the machine's controller refused the job: {err}");
            publish_event(link, serde_json::json!({"event": "job_failed", "reason": reason})).await;
        }
    }
}

async fn publish_event(link: &LinkHandle, json: serde_json::Value) {
    if let Err(err) = link.publish_event(json).await {
        tracing::error!(error = %err, "an event could not be queued for makrcave");
    }
}
