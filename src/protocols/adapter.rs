//! Machines driven by a client task of their own (OctoPrint now; Bambu and Moonraker later):
//! the task follows the machine and delivers its reports to the machine's actor, and the
//! actor hands it the job commands to carry out. Each command is answered once the machine
//! has taken or refused it, so a refusal reaches whoever gave the command.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::SendError;
use actix::Recipient;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::backoff::{self, Backoff};
use crate::actors::machine::Report;
use crate::domain::jobs::{JobCommand, JobRefusal};
use crate::domain::machine::{Input, MachineState, TelemetryUpdate};
use crate::logging::escaped;

/// Commands an adapter may have waiting: a person presses pause once, the router sends one
/// start at a time; more than a few waiting means the machine is not answering.
pub const COMMAND_QUEUE: usize = 8;

/// A job command for the adapter, with where its answer goes.
#[derive(Debug)]
pub struct AdapterCommand {
    pub command: JobCommand,
    pub reply: oneshot::Sender<Result<(), JobRefusal>>,
}

/// How a machine's actor reaches its adapter.
pub type AdapterSender = mpsc::Sender<AdapterCommand>;
/// Where an adapter takes its commands from.
pub type AdapterReceiver = mpsc::Receiver<AdapterCommand>;

/// A new command channel between an actor and its adapter.
pub fn channel() -> (AdapterSender, AdapterReceiver) {
    mpsc::channel(COMMAND_QUEUE)
}

/// Hands a report to the machine's actor without waiting for it to be taken: one wake-up
/// fewer per message from the machine. A full mailbox is waited on, so a slow actor slows the
/// reading down instead of growing a queue.
pub async fn report(actor: &Recipient<Report>, input: Input) -> Result<(), SessionEnd> {
    match actor.try_send(Report(input)) {
        Ok(()) => Ok(()),
        Err(SendError::Full(report)) => actor.send(report).await.map_err(|_| SessionEnd::ActorGone),
        Err(SendError::Closed(_)) => Err(SessionEnd::ActorGone),
    }
}

/// Why an adapter's session with its machine ended.
#[derive(Debug)]
pub enum SessionEnd {
    /// The machine is stopped or reconfigured.
    Cancelled,
    /// The machine's actor is gone (it was replaced or retired).
    ActorGone,
    /// The machine could not be reached or dropped the connection.
    Unreachable(String),
    /// The machine refused makrcave (a key, an access code, a certificate), or the settings
    /// cannot be used: retrying soon would only repeat it. The reason, and the outcome for
    /// the metric.
    Refused(String, &'static str),
}

/// What every adapter does between sessions with its machine: shows how the last one ended
/// (`error` with the reason when refused, `offline` once per outage when unreachable), counts
/// it, and waits (minutes after a refusal, backoff otherwise) while refusing the commands that
/// come meanwhile.
pub struct Between {
    /// Names the machine's kind in log lines (`OctoPrint`, `Bambu printer`).
    pub kind: &'static str,
    /// The counter of ended sessions, by `outcome`.
    pub sessions_metric: &'static str,
    pub equipment_id: Arc<str>,
    pub backoff: Backoff,
    /// Whether the machine was last shown offline by us: said once per outage.
    pub shown_offline: bool,
}

impl Between {
    pub fn new(kind: &'static str, sessions_metric: &'static str, equipment_id: Arc<str>) -> Between {
        Between { kind, sessions_metric, equipment_id, backoff: Backoff::default(), shown_offline: false }
    }

    /// After a session ended: `false` when the adapter must stop (cancelled, actor gone).
    pub async fn after(
        &mut self,
        ended: SessionEnd,
        actor: &Recipient<Report>,
        commands: &mut AdapterReceiver,
        cancel: &CancellationToken,
    ) -> bool {
        let deliver = |input| actor.send(Report(input));
        let (wait, refusal) = match ended {
            SessionEnd::Cancelled | SessionEnd::ActorGone => return false,
            SessionEnd::Refused(reason, outcome) => {
                metrics::counter!(self.sessions_metric, "outcome" => outcome).increment(1);
                tracing::warn!(equipment_id = ?self.equipment_id, kind = self.kind, reason = %escaped(&reason),
                    "the machine refused makrcave; retrying in minutes");
                let error = TelemetryUpdate {
                    state: Some(MachineState::Error),
                    error: Some(reason.clone()),
                    ..TelemetryUpdate::default()
                };
                if deliver(Input::Telemetry(error)).await.is_err() {
                    return false;
                }
                self.shown_offline = false;
                (self.wait_after_refusal(), JobRefusal::Rejected(reason))
            }
            SessionEnd::Unreachable(why) => {
                metrics::counter!(self.sessions_metric, "outcome" => "unreachable").increment(1);
                tracing::debug!(equipment_id = ?self.equipment_id, kind = self.kind, why = %escaped(&why), "machine unreachable");
                if !self.shown_offline {
                    tracing::info!(equipment_id = ?self.equipment_id, kind = self.kind, why = %escaped(&why),
                        "machine unreachable: shown offline");
                    if deliver(Input::Availability { online: false }).await.is_err() {
                        return false;
                    }
                    self.shown_offline = true;
                }
                (self.backoff.next_wait(), JobRefusal::Offline)
            }
        };
        wait_refusing(wait, refusal, commands, cancel).await
    }

    /// After a refusal a person must fix something (a key, a certificate): minutes, not the
    /// backoff's seconds, so that a refused machine never sees a storm of attempts.
    fn wait_after_refusal(&self) -> Duration {
        backoff::jittered(backoff::REFUSED)
    }
}

/// Waits, answering the commands that come meanwhile with `refusal`; `false`: stop.
async fn wait_refusing(
    wait: Duration,
    refusal: JobRefusal,
    commands: &mut AdapterReceiver,
    cancel: &CancellationToken,
) -> bool {
    let sleep = tokio::time::sleep(wait);
    tokio::pin!(sleep);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return false,
            _ = &mut sleep => return true,
            command = commands.recv() => match command {
                Some(command) => {
                    let _ = command.reply.send(Err(refusal.clone()));
                }
                None => return false,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_refused_machine_is_tried_again_in_minutes_an_unreachable_one_in_seconds() {
        let mut between = Between::new("test", "test_sessions_total", Arc::from("m"));
        assert!(between.wait_after_refusal() >= Duration::from_secs(225), "minutes after a refusal");
        assert!(between.backoff.next_wait() <= Duration::from_secs(1), "seconds after a lost connection");
    }

    use std::sync::Arc;
    use std::time::Duration;

    use actix::Actor;
    use chrono::Utc;

    use super::*;
    use crate::actors::machine::{Control, GetView, MachineActor, MachineDeps, MachineIdentity};
    use crate::domain::equipment::{Connection, EquipmentType};
    use crate::domain::machine::{Input, LiveState, MachineState, TelemetryUpdate};

    /// A running OctoPrint machine's actor, with its adapter's end of the channel: no network.
    fn running_machine() -> (actix::Addr<MachineActor>, AdapterReceiver) {
        // The MQTT link is never connected: an adapter-driven machine publishes nothing.
        let deps = MachineDeps::offline();
        let identity = MachineIdentity {
            equipment_id: Arc::from("octo"),
            makerspace_id: "s".into(),
            name: "Octo".into(),
            kind: EquipmentType::Printer3d,
            heartbeat_timeout: Duration::from_secs(30),
            connection: Connection::Octoprint { url: "http://p:5000".into(), api_key: None, auto_connect: true },
            hourly_rate: None,
            auto_clear: false,
        };
        let mut live = LiveState::new(false, Utc::now());
        let running = TelemetryUpdate { state: Some(MachineState::Running), ..TelemetryUpdate::default() };
        live.apply(&Input::Telemetry(running), Utc::now());
        let (commands, adapter) = channel();
        (MachineActor::new(identity, live, deps).with_adapter(Some(commands)).start(), adapter)
    }

    #[actix::test]
    async fn the_actor_hands_job_commands_to_its_adapter_and_passes_the_answer_on() {
        let (machine, mut adapter) = running_machine();
        let pause = machine.send(Control(JobCommand::Pause));
        let octoprint = async {
            let AdapterCommand { command, reply } = adapter.recv().await.expect("a command");
            assert_eq!(command, JobCommand::Pause);
            // The actor goes on with other messages while the adapter works.
            let view = machine.send(GetView).await.expect("the actor answers");
            assert_eq!(view.state, MachineState::Running);
            reply.send(Err(JobRefusal::Rejected("OctoPrint answered 409: busy".into()))).expect("the actor waits");
        };
        let (answer, ()) = tokio::join!(pause, octoprint);
        assert_eq!(answer.expect("answered"), Err(JobRefusal::Rejected("OctoPrint answered 409: busy".into())));

        // A command the adapter drops unanswered, and an adapter that is gone: offline.
        let cancel = machine.send(Control(JobCommand::Cancel));
        let dropped = async { drop(adapter.recv().await.expect("a command")) };
        assert_eq!(tokio::join!(cancel, dropped).0.expect("answered"), Err(JobRefusal::Offline));
        drop(adapter);
        assert_eq!(machine.send(Control(JobCommand::Refresh)).await.expect("answered"), Err(JobRefusal::Offline));
    }
}
