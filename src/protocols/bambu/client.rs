//! The task that follows one Bambu printer: one MQTT client to the printer's own broker (TLS,
//! user `bblp`, the access code), subscribed to its report topic. Reports are merged into the
//! printer's state and what changed goes to the machine's actor; job commands become requests
//! whose replies are matched by `sequence_id`. Between sessions it waits with backoff (the
//! machine shows `offline`), or, when the printer refuses the access code or its certificate
//! fails the check, for a long while (the machine shows `error` with the reason).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Recipient;
use rumqttc::{AsyncClient, ConnectReturnCode, ConnectionError, Event, MqttOptions, Packet, QoS};
use serde_json::Value;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::report::{self, PrinterState};
use super::request;
use crate::actors::machine::Report;
use crate::domain::jobs::{JobCommand, JobRefusal};
use crate::domain::machine::{Input, TelemetryUpdate};
use crate::metrics::{BAMBU_REPORTS_DROPPED, BAMBU_SESSIONS};
use crate::protocols::adapter::{AdapterCommand, AdapterReceiver, Between, SessionEnd as Ended};
use crate::protocols::backoff::Backoff;

/// A request the printer has not answered within this long is refused: the printer answers
/// in well under a second when it answers at all.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// No report for this long: ask for the full state again (a P1 sends deltas only on change).
const SILENCE: Duration = Duration::from_secs(60);
/// At most one `pushall` this often, apart from the one on connect: P1 printers are slowed
/// down by more (DESIGN.md).
const PUSHALL_EVERY: Duration = Duration::from_secs(300);
/// How often replies overdue and silences are looked for.
const TICK: Duration = Duration::from_secs(1);
/// Requests the client may have queued towards the printer: a few commands and a pushall.
const REQUESTS: usize = 16;
/// Full reports of an X1 with AMS units run to tens of KiB; rumqttc's default is 10 KiB.
pub(super) const MAX_PACKET_BYTES: usize = 1 << 20;

/// A request waiting for its reply.
struct Pending {
    command: &'static str,
    reply: oneshot::Sender<Result<(), JobRefusal>>,
    deadline: Instant,
}

/// One Bambu printer's client task.
pub struct Client {
    pub(super) equipment_id: Arc<str>,
    pub(super) serial: String,
    /// How to reach the printer, or why it cannot be (no access code, an unreadable CA file).
    pub(super) options: Result<MqttOptions, String>,
    pub(super) actor: Recipient<Report>,
    pub(super) commands: AdapterReceiver,
    pub(super) cancel: CancellationToken,
}

impl Client {
    /// Follows the printer until cancelled or until its actor is gone.
    pub async fn run(mut self) {
        let mut between = Between::new("Bambu printer", BAMBU_SESSIONS, self.equipment_id.clone());
        // The printer's state outlives a session: a P1's deltas after a reconnect build on it
        // until the pushall answers.
        let mut state = PrinterState::default();
        loop {
            let ended = self.session(&mut between.backoff, &mut between.shown_offline, &mut state).await;
            if !between.after(ended, &self.actor, &mut self.commands, &self.cancel).await {
                return;
            }
        }
    }

    async fn deliver(&self, input: Input) -> Result<(), Ended> {
        self.actor.send(Report(input)).await.map_err(|_| Ended::ActorGone)
    }

    /// One connection to the printer's broker, from the connect to its loss.
    async fn session(&mut self, backoff: &mut Backoff, shown_offline: &mut bool, state: &mut PrinterState) -> Ended {
        let options = match &self.options {
            Ok(options) => options.clone(),
            Err(reason) => return Ended::Refused(reason.clone(), "settings"),
        };
        let (client, mut eventloop) = AsyncClient::new(options, REQUESTS);
        let report_topic = format!("device/{}/report", self.serial);
        let request_topic = format!("device/{}/request", self.serial);
        let mut session = Session {
            client: &client,
            request_topic: &request_topic,
            next_sequence: 1,
            pending: HashMap::new(),
            refreshes: Vec::new(),
            last_pushall: None,
        };
        let mut last_sent: Option<TelemetryUpdate> = None;
        let mut last_report = Instant::now();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let ended = loop {
            tokio::select! {
                _ = self.cancel.cancelled() => {
                    let _ = client.try_disconnect();
                    break Ended::Cancelled;
                }
                event = eventloop.poll() => match event {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        tracing::info!(equipment_id = ?self.equipment_id, "following the Bambu printer");
                        backoff.reset();
                        *shown_offline = false;
                        last_report = Instant::now();
                        if let Err(e) = client.try_subscribe(report_topic.as_str(), QoS::AtMostOnce) {
                            break Ended::Unreachable(format!("cannot subscribe: {e}"));
                        }
                        if let Err(e) = session.pushall() {
                            break Ended::Unreachable(e);
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(publish))) if publish.topic == report_topic => {
                        last_report = Instant::now();
                        let Ok(report) = serde_json::from_slice::<Value>(&publish.payload) else {
                            metrics::counter!(BAMBU_REPORTS_DROPPED).increment(1);
                            tracing::debug!(equipment_id = ?self.equipment_id, "malformed Bambu report dropped");
                            continue;
                        };
                        if let Err(gone) = self.take_report(&report, state, &mut session, &mut last_sent).await {
                            break gone;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => break classify(e),
                },
                command = self.commands.recv() => match command {
                    Some(AdapterCommand { command, reply }) => session.execute(command, reply),
                    None => break Ended::ActorGone,
                },
                _ = tick.tick() => {
                    session.expire(Instant::now());
                    if last_report.elapsed() >= SILENCE && session.pushall_allowed() {
                        tracing::debug!(equipment_id = ?self.equipment_id, "Bambu printer silent: asking for its full state");
                        if let Err(e) = session.pushall() {
                            break Ended::Unreachable(e);
                        }
                    }
                }
            }
        };
        // Requests in flight will not be answered now.
        for (_, pending) in session.pending.drain() {
            let _ = pending.reply.send(Err(JobRefusal::Offline));
        }
        for reply in session.refreshes.drain(..) {
            let _ = reply.send(Err(JobRefusal::Offline));
        }
        ended
    }

    /// A report: a reply to one of our requests, and (or) state to merge and pass on.
    async fn take_report(
        &self,
        report: &Value,
        state: &mut PrinterState,
        session: &mut Session<'_>,
        last_sent: &mut Option<TelemetryUpdate>,
    ) -> Result<(), Ended> {
        if let Some(reply) = request::reply(report) {
            if let Some(pending) = session.pending.remove(&reply.sequence_id) {
                let answer = reply.outcome.map_err(JobRefusal::Rejected);
                tracing::debug!(equipment_id = ?self.equipment_id, command = pending.command, ?answer, "Bambu printer answered");
                let _ = pending.reply.send(answer);
            }
        }
        let before = state.gcode_state().map(str::to_string);
        if !state.merge(report) {
            return Ok(());
        }
        // A refresh is answered by the next state the printer sends.
        for reply in session.refreshes.drain(..) {
            let _ = reply.send(Ok(()));
        }
        if let Some(event) = state.gcode_state().and_then(|after| report::job_event(before.as_deref(), after, state)) {
            self.deliver(Input::Job(event)).await?;
        }
        let update = state.telemetry();
        if last_sent.as_ref() != Some(&update) {
            *last_sent = Some(update.clone());
            self.deliver(Input::Telemetry(update)).await?;
        }
        Ok(())
    }
}

/// The requests of one connection, and those waiting for a reply.
struct Session<'a> {
    client: &'a AsyncClient,
    request_topic: &'a str,
    next_sequence: u64,
    pending: HashMap<u64, Pending>,
    /// Refreshes waiting for the printer's next state.
    refreshes: Vec<oneshot::Sender<Result<(), JobRefusal>>>,
    last_pushall: Option<Instant>,
}

impl Session<'_> {
    fn sequence(&mut self) -> u64 {
        let id = self.next_sequence;
        self.next_sequence += 1;
        id
    }

    fn send(&self, body: &Value) -> Result<(), String> {
        self.client
            .try_publish(self.request_topic, QoS::AtMostOnce, false, body.to_string())
            .map_err(|e| format!("cannot send a request to the printer: {e}"))
    }

    fn pushall_allowed(&self) -> bool {
        self.last_pushall.is_none_or(|at| at.elapsed() >= PUSHALL_EVERY)
    }

    fn pushall(&mut self) -> Result<(), String> {
        let id = self.sequence();
        self.last_pushall = Some(Instant::now());
        self.send(&request::pushall(id))
    }

    /// Sends a job command as a request; its answer comes with the matching reply.
    fn execute(&mut self, command: JobCommand, reply: oneshot::Sender<Result<(), JobRefusal>>) {
        let name = match command {
            JobCommand::Start { .. } => {
                let _ = reply.send(Err(JobRefusal::Unsupported(
                    "start a print yet: sending a file to a Bambu printer (FTPS) is not built",
                )));
                return;
            }
            JobCommand::Refresh => {
                // Asked for by a person: not held to the silence's rate limit.
                match self.pushall() {
                    Ok(()) => self.refreshes.push(reply),
                    Err(e) => {
                        let _ = reply.send(Err(JobRefusal::Rejected(e)));
                    }
                }
                return;
            }
            JobCommand::Pause => "pause",
            JobCommand::Resume => "resume",
            JobCommand::Cancel => "stop",
        };
        let id = self.sequence();
        let body = request::job(&command, id).expect("pause, resume and stop are requests");
        match self.send(&body) {
            Ok(()) => {
                self.pending.insert(id, Pending { command: name, reply, deadline: Instant::now() + REPLY_TIMEOUT });
            }
            Err(e) => {
                let _ = reply.send(Err(JobRefusal::Rejected(e)));
            }
        }
    }

    /// Refuses the requests whose reply is overdue.
    fn expire(&mut self, now: Instant) {
        let overdue: Vec<u64> = self.pending.iter().filter(|(_, p)| p.deadline <= now).map(|(id, _)| *id).collect();
        for id in overdue {
            if let Some(pending) = self.pending.remove(&id) {
                let reason =
                    format!("the printer did not answer {} within {} s", pending.command, REPLY_TIMEOUT.as_secs());
                let _ = pending.reply.send(Err(JobRefusal::Rejected(reason)));
            }
        }
    }
}

/// What a connection error means: a refusal (the access code, the certificate) that retrying
/// soon would only repeat, or the printer out of reach.
fn classify(error: ConnectionError) -> Ended {
    match &error {
        ConnectionError::ConnectionRefused(
            ConnectReturnCode::BadUserNamePassword | ConnectReturnCode::NotAuthorized,
        ) => Ended::Refused("the printer refused the access code".into(), "access_code"),
        ConnectionError::Tls(rumqttc::TlsError::Io(io)) | ConnectionError::Io(io) => {
            match io.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) {
                Some(rustls::Error::InvalidCertificate(why)) => {
                    Ended::Refused(format!("the printer's certificate failed the check: {why:?}"), "certificate")
                }
                _ => Ended::Unreachable(error.to_string()),
            }
        }
        ConnectionError::Tls(e) => Ended::Refused(format!("TLS with the printer: {e}"), "tls"),
        _ => Ended::Unreachable(error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A session whose requests queue in a client that never connects.
    fn session(client: &AsyncClient) -> Session<'_> {
        Session {
            client,
            request_topic: "device/01S/request",
            next_sequence: 1,
            pending: HashMap::new(),
            refreshes: Vec::new(),
            last_pushall: None,
        }
    }

    #[tokio::test]
    async fn an_unanswered_request_is_refused_after_the_timeout_and_a_start_at_once() {
        let (client, _eventloop) = AsyncClient::new(MqttOptions::new("t", "127.0.0.1", 1), REQUESTS);
        let mut session = session(&client);
        let (reply, mut answer) = oneshot::channel();
        session.execute(JobCommand::Pause, reply);
        assert_eq!(session.pending.len(), 1, "waiting for the printer");
        session.expire(Instant::now() + REPLY_TIMEOUT / 2);
        assert!(answer.try_recv().is_err(), "not yet overdue");
        session.expire(Instant::now() + REPLY_TIMEOUT);
        assert_eq!(
            answer.try_recv().expect("answered"),
            Err(JobRefusal::Rejected("the printer did not answer pause within 10 s".into()))
        );

        let (reply, mut answer) = oneshot::channel();
        session.execute(JobCommand::Start { file: "benchy.3mf".into() }, reply);
        assert!(matches!(answer.try_recv().expect("answered at once"), Err(JobRefusal::Unsupported(_))));
        assert!(session.pending.is_empty());
    }

    #[test]
    fn pushall_after_a_silence_is_rate_limited() {
        let (client, _eventloop) = AsyncClient::new(MqttOptions::new("t", "127.0.0.1", 1), REQUESTS);
        let mut session = session(&client);
        assert!(session.pushall_allowed(), "none sent yet");
        session.pushall().expect("queued");
        assert!(!session.pushall_allowed(), "one was just sent");
        session.last_pushall = Instant::now().checked_sub(PUSHALL_EVERY);
        assert!(session.pushall_allowed());
    }
}
