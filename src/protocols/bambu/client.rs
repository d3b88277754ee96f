//! The task that follows one Bambu printer: one MQTT client to the printer's own broker (TLS,
//! user `bblp`, the access code), subscribed to its report topic. Reports are merged into the
//! printer's state and what changed goes to the machine's actor; job commands become requests
//! whose replies are matched by `sequence_id`. A start first uploads the file to the printer's
//! storage over FTPS in a task of its own, so the session keeps being followed meanwhile, and
//! then asks the printer to print it. Between sessions it waits with backoff (the
//! machine shows `offline`), or, when the printer refuses the access code or its certificate
//! fails the check, for a long while (the machine shows `error` with the reason).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Recipient;
use rumqttc::{AsyncClient, ConnectReturnCode, ConnectionError, Event, MqttOptions, Packet, QoS};
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::ftps::Storage;
use super::report::{self, PrinterState};
use super::request::{self, PrintFile};
use crate::actors::machine::Report;
use crate::domain::jobs::{JobCommand, JobRefusal};
use crate::domain::machine::{Input, TelemetryUpdate};
use crate::logging::escaped;
use crate::metrics::{BAMBU_REPORTS_DROPPED, BAMBU_SESSIONS};
use crate::protocols::adapter::{self, AdapterCommand, AdapterReceiver, Between, SessionEnd as Ended};
use crate::protocols::backoff::Backoff;

/// A request the printer has not answered within this long is refused, and so is a refresh
/// the printer has sent no state for: the printer answers in well under a second when it
/// answers at all.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// No report for this long: ask for the full state again (a P1 sends deltas only on change).
const SILENCE: Duration = Duration::from_secs(60);
/// At most one `pushall` this often, apart from the one on connect: P1 printers are slowed
/// down by more (DESIGN.md).
const PUSHALL_EVERY: Duration = Duration::from_secs(300);
/// How often replies overdue and silences are looked for.
const TICK: Duration = Duration::from_secs(1);
/// How often the actor is told the printer is still heard (unchanged reports are dropped).
const HEARD_EVERY: Duration = Duration::from_secs(10);
/// Requests the client may have queued towards the printer: a few commands and a pushall.
const REQUESTS: usize = 16;
/// Full reports of an X1 with AMS units run to tens of KiB; rumqttc's default is 10 KiB.
pub(super) const MAX_PACKET_BYTES: usize = 1 << 20;

/// A request (or a refresh) waiting for its answer.
struct Pending {
    command: &'static str,
    reply: oneshot::Sender<Result<(), JobRefusal>>,
    deadline: Instant,
}

impl Pending {
    fn new(command: &'static str, reply: oneshot::Sender<Result<(), JobRefusal>>) -> Pending {
        Pending { command, reply, deadline: Instant::now() + REPLY_TIMEOUT }
    }

    fn overdue(self) {
        let reason = format!("the printer did not answer {} within {} s", self.command, REPLY_TIMEOUT.as_secs());
        let _ = self.reply.send(Err(JobRefusal::Rejected(reason)));
    }
}

/// A file on its way to the printer's storage, and the start waiting for it.
struct Upload {
    task: JoinHandle<Result<(), String>>,
    file: PrintFile,
    reply: oneshot::Sender<Result<(), JobRefusal>>,
}

/// How to reach one printer: its broker, and its storage for the files to print.
pub(super) struct Reach {
    pub mqtt: MqttOptions,
    pub storage: Arc<Storage>,
}

/// One Bambu printer's client task.
pub struct Client {
    pub(super) equipment_id: Arc<str>,
    pub(super) serial: String,
    /// How to reach the printer, or why it cannot be (no access code, an unreadable CA file).
    pub(super) reach: Result<Reach, String>,
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
        adapter::report(&self.actor, input).await
    }

    /// One connection to the printer's broker, from the connect to its loss.
    async fn session(&mut self, backoff: &mut Backoff, shown_offline: &mut bool, state: &mut PrinterState) -> Ended {
        let (options, storage) = match &self.reach {
            Ok(reach) => (reach.mqtt.clone(), reach.storage.clone()),
            Err(reason) => return Ended::Refused(reason.clone(), "settings"),
        };
        let (client, mut eventloop) = AsyncClient::new(options, REQUESTS);
        let report_topic = format!("device/{}/report", self.serial);
        let request_topic = format!("device/{}/request", self.serial);
        let mut session = Session::new(&client, &request_topic, storage);
        let mut last_sent: Option<TelemetryUpdate> = None;
        let mut last_report = Instant::now();
        // When the printer last said anything (a report, a ping's answer), and when the actor
        // was last told so.
        let (mut last_incoming, mut last_heard_told) = (None::<Instant>, Instant::now());
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
                        last_incoming = Some(last_report);
                        let Ok(report) = serde_json::from_slice::<Value>(&publish.payload) else {
                            metrics::counter!(BAMBU_REPORTS_DROPPED).increment(1);
                            tracing::debug!(equipment_id = ?self.equipment_id, "malformed Bambu report dropped");
                            continue;
                        };
                        if let Err(gone) = self.take_report(&report, state, &mut session, &mut last_sent).await {
                            break gone;
                        }
                    }
                    // The printer answers the keep-alive's ping: it is still there.
                    Ok(Event::Incoming(Packet::PingResp)) => last_incoming = Some(Instant::now()),
                    Ok(_) => {}
                    Err(e) => break classify(e),
                },
                command = self.commands.recv() => match command {
                    Some(AdapterCommand { command, reply }) => {
                        if let JobCommand::Start { file, .. } = &command {
                            tracing::info!(equipment_id = ?self.equipment_id, file = %escaped(file), "sending a file to the Bambu printer");
                        }
                        session.execute(command, reply);
                    }
                    None => break Ended::ActorGone,
                },
                uploaded = session.uploaded() => {
                    match &uploaded {
                        Ok(()) => tracing::info!(equipment_id = ?self.equipment_id, "file uploaded to the Bambu printer: asking it to print"),
                        Err(e) => tracing::warn!(equipment_id = ?self.equipment_id, reason = %escaped(e), "upload to the Bambu printer failed"),
                    }
                    session.print(uploaded);
                }
                _ = tick.tick() => {
                    session.expire(Instant::now());
                    // Unchanged reports go no further; the printer is still heard.
                    if last_heard_told.elapsed() >= HEARD_EVERY {
                        last_heard_told = Instant::now();
                        if last_incoming.is_some_and(|at| at.elapsed() < HEARD_EVERY) {
                            if let Err(gone) = self.deliver(Input::Heard).await {
                                break gone;
                            }
                        }
                    }
                    if last_report.elapsed() >= SILENCE && session.pushall_allowed() {
                        tracing::debug!(equipment_id = ?self.equipment_id, "Bambu printer silent: asking for its full state");
                        if let Err(e) = session.pushall() {
                            break Ended::Unreachable(e);
                        }
                    }
                }
            }
        };
        session.end();
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
        for refresh in session.refreshes.drain(..) {
            let _ = refresh.reply.send(Ok(()));
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
    refreshes: Vec<Pending>,
    last_pushall: Option<Instant>,
    storage: Arc<Storage>,
    /// The upload under way: one at a time, as the printer prints one file at a time.
    upload: Option<Upload>,
}

impl<'a> Session<'a> {
    fn new(client: &'a AsyncClient, request_topic: &'a str, storage: Arc<Storage>) -> Session<'a> {
        Session {
            client,
            request_topic,
            next_sequence: 1,
            pending: HashMap::new(),
            refreshes: Vec::new(),
            last_pushall: None,
            storage,
            upload: None,
        }
    }

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

    /// Sends a job command as a request; its answer comes with the matching reply. A start
    /// uploads the file first (see [`Session::print`]).
    fn execute(&mut self, command: JobCommand, reply: oneshot::Sender<Result<(), JobRefusal>>) {
        let name = match command {
            JobCommand::Start { file, .. } => return self.start(file, reply),
            JobCommand::Refresh => {
                // Asked for by a person: not held to the silence's rate limit.
                match self.pushall() {
                    Ok(()) => self.refreshes.push(Pending::new("refresh", reply)),
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
        self.request(id, name, &body, reply);
    }

    /// Sends a numbered request; its answer comes with the reply of the same number.
    fn request(
        &mut self,
        id: u64,
        command: &'static str,
        body: &Value,
        reply: oneshot::Sender<Result<(), JobRefusal>>,
    ) {
        match self.send(body) {
            Ok(()) => {
                self.pending.insert(id, Pending::new(command, reply));
            }
            Err(e) => {
                let _ = reply.send(Err(JobRefusal::Rejected(e)));
            }
        }
    }

    /// Starts uploading the file at `path` (a path on makrcave's disk) to the printer's
    /// storage, under its own name.
    fn start(&mut self, path: String, reply: oneshot::Sender<Result<(), JobRefusal>>) {
        if self.upload.is_some() {
            let _ = reply.send(Err(JobRefusal::Busy));
            return;
        }
        let name = Path::new(&path).file_name().and_then(|n| n.to_str());
        let file = match name.ok_or_else(|| format!("{path:?} does not name a file")).and_then(PrintFile::from_name) {
            Ok(file) => file,
            Err(reason) => {
                let _ = reply.send(Err(JobRefusal::Rejected(reason)));
                return;
            }
        };
        let storage = self.storage.clone();
        let name = file.name().to_string();
        let task = tokio::spawn(async move { storage.upload(Path::new(&path), &name).await });
        self.upload = Some(Upload { task, file, reply });
    }

    /// How the upload under way ended; pending for ever while there is none.
    async fn uploaded(&mut self) -> Result<(), String> {
        match &mut self.upload {
            Some(upload) => (&mut upload.task).await.unwrap_or_else(|e| Err(format!("the upload stopped: {e}"))),
            None => std::future::pending().await,
        }
    }

    /// After the upload: the request that prints the file, or the upload's failure as the
    /// start's answer.
    fn print(&mut self, uploaded: Result<(), String>) {
        let Some(Upload { file, reply, .. }) = self.upload.take() else {
            return;
        };
        if let Err(reason) = uploaded {
            let _ = reply.send(Err(JobRefusal::Rejected(reason)));
            return;
        }
        let id = self.sequence();
        self.request(id, file.command(), &request::print(&file, id), reply);
    }

    /// Refuses the requests and refreshes whose answer is overdue.
    fn expire(&mut self, now: Instant) {
        let overdue: Vec<u64> = self.pending.iter().filter(|(_, p)| p.deadline <= now).map(|(id, _)| *id).collect();
        for id in overdue {
            if let Some(pending) = self.pending.remove(&id) {
                pending.overdue();
            }
        }
        let (overdue, waiting): (Vec<Pending>, Vec<Pending>) =
            std::mem::take(&mut self.refreshes).into_iter().partition(|p| p.deadline <= now);
        self.refreshes = waiting;
        overdue.into_iter().for_each(Pending::overdue);
    }

    /// The connection is gone: what was in flight will not be answered now, and an upload
    /// under way is given up (its print request could not be sent).
    fn end(&mut self) {
        if let Some(upload) = self.upload.take() {
            upload.task.abort();
            let _ = upload.reply.send(Err(JobRefusal::Offline));
        }
        for (_, pending) in self.pending.drain() {
            let _ = pending.reply.send(Err(JobRefusal::Offline));
        }
        for refresh in self.refreshes.drain(..) {
            let _ = refresh.reply.send(Err(JobRefusal::Offline));
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

    /// A session whose requests queue in a client that never connects, and whose printer's
    /// storage is nowhere.
    fn session(client: &AsyncClient) -> Session<'_> {
        let storage = Storage {
            host: "127.0.0.1".into(),
            port: 1,
            access_code: "12345678".into(),
            serial: "01S".into(),
            trust: super::super::tls::Trust::Fingerprint([0; 32]),
        };
        Session::new(client, "device/01S/request", Arc::new(storage))
    }

    /// Gives the session `command`; its answer comes on the receiver.
    fn ask(session: &mut Session<'_>, command: JobCommand) -> oneshot::Receiver<Result<(), JobRefusal>> {
        let (reply, answer) = oneshot::channel();
        session.execute(command, reply);
        answer
    }

    fn start(file: &str) -> JobCommand {
        JobCommand::Start { file: file.into(), fetch: None }
    }

    /// A request waits for its reply, and a refresh for the printer's next state, that long
    /// and no longer.
    #[tokio::test]
    async fn an_unanswered_request_or_refresh_is_refused_after_the_timeout() {
        let (client, _eventloop) = AsyncClient::new(MqttOptions::new("t", "127.0.0.1", 1), REQUESTS);
        let mut session = session(&client);
        for (command, name) in [(JobCommand::Pause, "pause"), (JobCommand::Refresh, "refresh")] {
            let mut answer = ask(&mut session, command);
            assert_eq!(session.pending.len() + session.refreshes.len(), 1, "waiting for the printer");
            session.expire(Instant::now() + REPLY_TIMEOUT / 2);
            assert!(answer.try_recv().is_err(), "not yet overdue");
            session.expire(Instant::now() + REPLY_TIMEOUT);
            let reason = format!("the printer did not answer {name} within 10 s");
            assert_eq!(answer.try_recv().expect("answered"), Err(JobRefusal::Rejected(reason)));
            assert!(session.pending.is_empty() && session.refreshes.is_empty());
        }
    }

    #[tokio::test]
    async fn a_start_uploads_one_file_at_a_time_and_its_failure_is_the_answer() {
        let (client, _eventloop) = AsyncClient::new(MqttOptions::new("t", "127.0.0.1", 1), REQUESTS);
        let mut session = session(&client);
        let refused = ask(&mut session, start("/parts/bracket.stl")).try_recv().expect("answered at once");
        assert!(matches!(&refused, Err(JobRefusal::Rejected(r)) if r.contains(".3mf or a .gcode")), "{refused:?}");

        let mut answer = ask(&mut session, start("/nonexistent/benchy.3mf"));
        assert!(session.upload.is_some(), "uploading");
        let busy = ask(&mut session, start("/nonexistent/cube.gcode")).try_recv().expect("answered at once");
        assert_eq!(busy, Err(JobRefusal::Busy));

        let uploaded = session.uploaded().await;
        session.print(uploaded);
        let refused = answer.try_recv().expect("answered");
        assert!(matches!(&refused, Err(JobRefusal::Rejected(r)) if r.contains("cannot read the file")), "{refused:?}");
        assert!(session.upload.is_none() && session.pending.is_empty(), "no print request without the file");
    }

    #[tokio::test]
    async fn a_lost_connection_gives_up_the_upload() {
        let (client, _eventloop) = AsyncClient::new(MqttOptions::new("t", "127.0.0.1", 1), REQUESTS);
        let mut session = session(&client);
        let mut answer = ask(&mut session, start("/nonexistent/benchy.3mf"));
        session.end();
        assert_eq!(answer.try_recv().expect("answered"), Err(JobRefusal::Offline));
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
