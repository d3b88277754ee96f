//! Events that machines and bridges report over MQTT (`makrcave/{space}/{machine}/event`),
//! turned into the same workflows a person starts over HTTP. The MQTT link (below the
//! services) parses them and hands them over on a bounded channel; [`spawn`] runs them.

use crate::logging::escaped;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::protocols::generic::MachineEvent;
use crate::protocols::mqtt::ReportedEvent;

use super::{sessions, Services};

/// How many reported events may wait for their workflow. Events are rare (a lock, an
/// alarm); a flood past this is dropped and counted by the link rather than queued without
/// bound.
pub const EVENT_QUEUE: usize = 1024;

/// The channel the MQTT link reports events on.
pub fn channel() -> (mpsc::Sender<ReportedEvent>, mpsc::Receiver<ReportedEvent>) {
    mpsc::channel(EVENT_QUEUE)
}

/// Runs each reported event's workflow until `stop` is cancelled.
pub fn spawn(svc: Services, mut events: mpsc::Receiver<ReportedEvent>, stop: CancellationToken) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let event = tokio::select! {
                _ = stop.cancelled() => break,
                event = events.recv() => match event { Some(e) => e, None => break },
            };
            handle(&svc, event).await;
        }
    })
}

/// One event: a `lock` ends the machine's session; an offline tap joins the audit log.
pub async fn handle(svc: &Services, event: ReportedEvent) {
    match event.event {
        MachineEvent::Lock => {
            if let Err(err) = sessions::lock_from_machine(svc, &event.makerspace_id, &event.equipment_id).await {
                tracing::debug!(equipment_id = ?event.equipment_id, error = %escaped(&err), "lock event with nothing to lock");
            }
        }
        // The link hands job events to the machine's actor itself; none arrive here.
        MachineEvent::Job(job) => {
            tracing::debug!(equipment_id = ?event.equipment_id, event = job.name(), "job event reached the workflows");
        }
        MachineEvent::OfflineTap(tap) => {
            match super::bridges::record_offline_tap(svc, &event.makerspace_id, &event.equipment_id, &tap).await {
                Ok(true) => tracing::info!(equipment_id = ?event.equipment_id, tap = ?tap.id, "offline tap recorded"),
                Ok(false) => tracing::debug!(tap = ?tap.id, "offline tap already recorded, or not one to record"),
                Err(err) => tracing::warn!(error = %escaped(&err), "offline tap not recorded"),
            }
        }
        MachineEvent::Other(name) => {
            tracing::debug!(equipment_id = ?event.equipment_id, event = ?name, "machine event not handled yet");
        }
    }
}
