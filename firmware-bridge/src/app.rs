//! The bridge's run loop: it owns the relay and the session, and reacts to makrcave's
//! commands, card taps, the bed-clear button, the controller's job state and the clock.
//! The decisions themselves live in `session` (when to cut) and `allowlist` (offline taps).

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::allowlist::{normalize_uid, AllowlistError, AllowlistHolder, AllowlistKey, AllowlistStore, Verdict};
use crate::card;
use crate::command::{Command, StartJob};
use crate::config::{Config, MqttEndpoint, OfflinePolicy};
use crate::indicator::{self, ButtonError, Indicator, Signal};
use crate::jobs::{fetch_job_file, JobAction, JobSeam};
use crate::link::{self, LinkConfig, LinkHandle, Topics};
use crate::queue::DiskQueue;
use crate::relay::{Relay, RelayError};
use crate::server::{ServerClient, ServerError};
use crate::session::{decide, Decision, Session};

/// The bed-clear button confirms for the card tapped at this bridge within this time.
const BED_CLEAR_CARD_WINDOW: Duration = Duration::from_secs(60);
/// Controller telemetry is published at most this often (each message is an fsync on disk).
const TELEMETRY_MIN_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("the queue in {dir}: {source}")]
    Queue { dir: String, source: std::io::Error },
    #[error("relay: {0}")]
    Relay(#[from] RelayError),
    #[error("indicator: {0}")]
    Indicator(gpiocdev::Error),
    #[error("bed-clear button: {0}")]
    Button(#[from] ButtonError),
    #[error("offline.public_key: {0}")]
    Key(#[from] AllowlistError),
    #[error("server: {0}")]
    Server(#[from] ServerError),
    #[error("mqtt.url: {0}")]
    Mqtt(String),
}

/// Who gets to decide a tap (for the `offline_tap` event's `action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TapAction {
    Unlock,
    Lock,
}

impl TapAction {
    fn name(self) -> &'static str {
        match self {
            TapAction::Unlock => "unlock",
            TapAction::Lock => "lock",
        }
    }
}

pub struct App {
    config: Config,
    server: ServerClient,
    link: LinkHandle,
    link_task: JoinHandle<()>,
    commands: mpsc::Receiver<Command>,
    relay: Relay,
    indicator: Indicator,
    card: Option<card::CardReader>,
    button: Option<mpsc::Receiver<()>>,
    allowlist: Option<AllowlistHolder>,
    jobs: JobSeam,
    /// The unlock the relay is on for; `None` while locked.
    session: Option<Session>,
    /// The last card tapped here and when (for the bed-clear button).
    last_tap: Option<(String, Instant)>,
    /// The controller's telemetry changed since it was last published.
    telemetry_dirty: bool,
    /// How many card taps have been decided (granted or refused, online or offline).
    taps_decided: watch::Sender<u64>,
}

async fn next_tap(card: &mut Option<card::CardReader>) -> Option<String> {
    match card {
        Some(card) => card.taps.recv().await,
        None => std::future::pending().await,
    }
}

async fn next_of<T>(rx: &mut Option<mpsc::Receiver<T>>) -> Option<T> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

impl App {
    /// Builds everything the config names: queue, MQTT link, relay (switched off), readers.
    pub async fn build(config: Config, jobs: JobSeam) -> Result<App, StartError> {
        let dir = config.queue.dir.clone();
        let queue = DiskQueue::open(&dir, config.queue.max_bytes)
            .map_err(|source| StartError::Queue { dir: dir.display().to_string(), source })?;
        let server = ServerClient::new(
            &config.server.url,
            &config.server.device_token,
            &config.machine.equipment_id,
            config.http_timeout(),
        )?;
        let allowlist = match &config.offline.public_key {
            Some(key) => Some(AllowlistHolder::open(
                AllowlistKey::parse(key)?,
                &config.machine.makerspace_id,
                AllowlistStore::new(&dir),
            )),
            None => None,
        };
        let relay = Relay::open(&config.relay.kind).await?;
        let indicator = Indicator::open(config.indicator.gpio.as_ref()).map_err(StartError::Indicator)?;
        let button = config.button.bed_clear.as_ref().map(indicator::watch_button).transpose()?;
        let card = card::spawn_reader(&config.card);
        let endpoint = MqttEndpoint::parse(&config.mqtt.url).map_err(StartError::Mqtt)?;
        let link_config = LinkConfig {
            endpoint,
            client_id: format!("makrcave-bridge-{}", config.machine.equipment_id),
            keep_alive: Duration::from_secs(config.mqtt.keep_alive),
            topics: Topics::new(&config.machine.makerspace_id, &config.machine.equipment_id),
        };
        let (link, commands, link_task) = link::spawn(link_config, queue);
        Ok(App {
            config,
            server,
            link,
            link_task,
            commands,
            relay,
            indicator,
            card,
            button,
            allowlist,
            jobs,
            session: None,
            last_tap: None,
            telemetry_dirty: false,
            taps_decided: watch::channel(0).0,
        })
    }

    /// The MQTT link, for the controller's events and telemetry.
    pub fn link(&self) -> LinkHandle {
        self.link.clone()
    }

    /// The number of card taps decided so far (for a status display, and for tests).
    pub fn taps_decided(&self) -> watch::Receiver<u64> {
        self.taps_decided.subscribe()
    }

    /// Runs until `shutdown` completes, then says `offline` and disconnects.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut heartbeat = tokio::time::interval(Duration::from_secs(self.config.telemetry.heartbeat_s.max(1)));
        let mut telemetry_tick = tokio::time::interval(TELEMETRY_MIN_INTERVAL);
        let mut refresh = tokio::time::interval(Duration::from_secs(self.config.offline.refresh_s.max(10)));
        let mut job_watch_open = true;
        let mut telemetry_watch_open = true;
        loop {
            let wake = self.next_wake();
            tokio::select! {
                command = self.commands.recv() => match command {
                    Some(command) => self.on_command(command).await,
                    None => {
                        tracing::error!("the MQTT link stopped");
                        self.release_card_reader().await;
                        return;
                    }
                },
                tap = next_tap(&mut self.card) => match tap {
                    Some(uid) => self.on_tap(uid).await,
                    None => self.card = None,
                },
                press = next_of(&mut self.button) => match press {
                    Some(()) => self.on_bed_clear().await,
                    None => self.button = None,
                },
                changed = self.jobs.job_running.changed(), if job_watch_open => {
                    job_watch_open = changed.is_ok();
                    self.enforce().await;
                }
                changed = self.jobs.telemetry.changed(), if telemetry_watch_open => {
                    telemetry_watch_open = changed.is_ok();
                    self.telemetry_dirty = true;
                }
                _ = tokio::time::sleep_until(wake.unwrap_or_else(Instant::now)), if wake.is_some() => self.enforce().await,
                _ = heartbeat.tick() => {
                    self.enforce().await;
                    self.publish_telemetry().await;
                }
                _ = telemetry_tick.tick(), if self.telemetry_dirty => self.publish_telemetry().await,
                _ = refresh.tick(), if self.allowlist.is_some() => self.refresh_allowlist().await,
                () = &mut shutdown => {
                    tracing::info!("stopping");
                    self.release_card_reader().await;
                    self.link.shutdown().await;
                    let _ = (&mut self.link_task).await;
                    return;
                }
            }
        }
    }

    async fn release_card_reader(&mut self) {
        if let Some(card) = self.card.take() {
            card.stop().await;
        }
    }

    fn grace(&self) -> chrono::Duration {
        chrono::Duration::seconds(i64::try_from(self.config.relay.lock_grace_s).unwrap_or(i64::MAX / 1000))
    }

    fn job_running(&self) -> bool {
        *self.jobs.job_running.borrow()
    }

    /// When the session's decision may change next.
    fn next_wake(&self) -> Option<Instant> {
        let session = self.session.as_ref()?;
        let now = Utc::now();
        let at = match decide(session, now, self.job_running(), self.grace()) {
            Decision::Keep => session.end()?.0,
            Decision::Wait { cut_at, .. } => cut_at,
            Decision::LockNow(_) => now,
        };
        Some(Instant::now() + (at - now).to_std().unwrap_or(Duration::ZERO))
    }

    /// Applies the session rules now: cuts the power when the session is over and no job
    /// runs (or the grace time is up).
    async fn enforce(&mut self) {
        let now = Utc::now();
        let decision = match &self.session {
            Some(session) => decide(session, now, self.job_running(), self.grace()),
            // Locked, yet the relay is on: a switch-off failed before; try again.
            None if self.relay.is_on() => Decision::LockNow(crate::session::LockReason::Requested),
            None => Decision::Keep,
        };
        match decision {
            Decision::Keep => {}
            Decision::Wait { reason, cut_at } => {
                tracing::debug!(?reason, %cut_at, "session over; waiting for the job to end");
            }
            Decision::LockNow(reason) => {
                tracing::info!(?reason, "locking");
                self.session = None;
                self.switch(false).await;
            }
        }
    }

    async fn switch(&mut self, on: bool) -> bool {
        let was = self.relay.is_on();
        let result = self.relay.set(on).await;
        if let Err(err) = &result {
            tracing::error!(error = %err, on, "relay did not switch");
        }
        if self.relay.is_on() != was {
            self.publish_telemetry().await;
        }
        result.is_ok()
    }

    fn unlock(&mut self, session: Session) -> impl Future<Output = bool> + '_ {
        self.session = Some(session);
        self.switch(true)
    }

    /// Asks for a lock: immediate, or after the running job (see `session`).
    async fn request_lock(&mut self) {
        if !self.relay.is_on() && self.session.is_none() {
            return;
        }
        let now = Utc::now();
        let session = self.session.get_or_insert_with(Session::default);
        session.lock_requested_at.get_or_insert(now);
        self.enforce().await;
    }

    async fn on_command(&mut self, command: Command) {
        match command {
            Command::Unlock { session_id, until } => {
                if until.is_some_and(|until| until <= Utc::now()) {
                    // A late delivery (say, replayed after a broker outage): the session is over.
                    tracing::warn!(?session_id, ?until, "ignoring an unlock whose session already ended");
                    return;
                }
                let session = Session { session_id, until, ..Session::default() };
                if self.unlock(session).await {
                    self.enforce().await;
                }
            }
            Command::Lock { .. } => self.request_lock().await,
            Command::Start(job) => self.start_job(job),
            Command::Pause => self.send_job_action(JobAction::Pause),
            Command::Resume => self.send_job_action(JobAction::Resume),
            Command::Cancel => self.send_job_action(JobAction::Cancel),
            Command::Refresh => self.publish_telemetry().await,
        }
    }

    fn send_job_action(&self, action: JobAction) {
        if self.jobs.actions.try_send(action).is_err() {
            tracing::warn!("no controller takes job actions (none configured, or it is busy)");
        }
    }

    /// Downloads and checks the job's file in the background, then hands it to the controller.
    fn start_job(&self, job: StartJob) {
        let server = self.server.clone();
        let link = self.link.clone();
        let actions = self.jobs.actions.clone();
        let spool = self.config.queue.dir.join("jobs");
        tokio::spawn(async move {
            let failure = match fetch_job_file(&server, &spool, &job).await {
                Ok(file) => {
                    tracing::info!(job_id = job.job_id, file = %file.display(), "job file fetched");
                    match actions.send(JobAction::Start { job_id: job.job_id.clone(), file }).await {
                        Ok(()) => return,
                        Err(_) => "no controller on this bridge".to_string(),
                    }
                }
                Err(err) => err.to_string(),
            };
            tracing::warn!(job_id = job.job_id, reason = failure, "job failed");
            let event = json!({"event": "job_failed", "job_id": job.job_id, "file": job.file, "reason": failure});
            if let Err(err) = link.publish_event(event).await {
                tracing::error!(error = %err, "cannot queue job_failed");
            }
        });
    }

    async fn on_tap(&mut self, uid: String) {
        tracing::info!(card = uid, "card tapped");
        self.last_tap = Some((uid.clone(), Instant::now()));
        let offline_session =
            self.session.as_ref().is_some_and(|s| s.session_id.is_none() && s.offline_until.is_some());
        let granted = if !self.relay.is_on() {
            self.tap_unlock(&uid).await
        } else if offline_session {
            // makrcave knows nothing of an unlock decided offline: end it here.
            self.offline_lock(&uid).await
        } else {
            self.tap_lock(&uid).await
        };
        self.indicator.signal(if granted { Signal::Granted } else { Signal::Refused });
        self.taps_decided.send_modify(|n| *n += 1);
    }

    async fn tap_unlock(&mut self, uid: &str) -> bool {
        match self.server.unlock(uid).await {
            Ok(reply) if reply.granted => {
                let session = Session { session_id: reply.session_id, until: reply.until, ..Session::default() };
                self.unlock(session).await
            }
            Ok(reply) => {
                tracing::info!(reason = reply.reason.as_deref().unwrap_or(""), "unlock refused by makrcave");
                false
            }
            Err(err) if err.is_unreachable() => self.offline_unlock(uid).await,
            Err(err) => {
                tracing::warn!(error = %err, "unlock failed");
                false
            }
        }
    }

    async fn tap_lock(&mut self, uid: &str) -> bool {
        match self.server.lock(Some(uid)).await {
            Ok(reply) if reply.locked => {
                self.request_lock().await;
                true
            }
            Ok(reply) => {
                tracing::info!(reason = reply.reason.as_deref().unwrap_or(""), "lock refused by makrcave");
                false
            }
            Err(err) if err.is_unreachable() => self.offline_lock(uid).await,
            Err(err) => {
                tracing::warn!(error = %err, "lock failed");
                false
            }
        }
    }

    /// What the allowlist says, or why it cannot be asked.
    fn offline_verdict(&self, uid: &str, now: DateTime<Utc>) -> Verdict {
        match self.allowlist.as_ref().and_then(|h| h.current()) {
            Some(list) => list.check(uid, &self.config.machine.equipment_id, now),
            None => Verdict::NotAllowlisted,
        }
    }

    async fn offline_unlock(&mut self, uid: &str) -> bool {
        let now = Utc::now();
        let (granted, reason) = match self.config.offline.policy {
            OfflinePolicy::FailClosed => (false, "fail_closed"),
            OfflinePolicy::Allowlist => match self.offline_verdict(uid, now) {
                Verdict::Allowlisted { until } => {
                    let cap = now + chrono::Duration::minutes(self.config.offline.max_unlock_minutes as i64);
                    let session = Session {
                        offline_until: Some(until.min(cap)),
                        offline_card: normalize_uid(uid),
                        ..Session::default()
                    };
                    (self.unlock(session).await, "allowlisted")
                }
                verdict => (false, verdict.reason()),
            },
        };
        tracing::info!(granted, reason, "offline unlock decided");
        self.report_offline_tap(uid, TapAction::Unlock, granted, reason, now).await;
        granted
    }

    /// Ends an offline session for the card that started it. Another card is refused, as
    /// makrcave refuses it online (`not_your_session`): nobody walks by and cuts someone's
    /// machine. (The session still ends at its offline expiry.)
    async fn offline_lock(&mut self, uid: &str) -> bool {
        let now = Utc::now();
        let own =
            self.session.as_ref().and_then(|s| s.offline_card.clone()).is_some_and(|c| Some(c) == normalize_uid(uid));
        let reason = if own { "own_session" } else { "not_your_session" };
        if own {
            self.request_lock().await;
        }
        self.report_offline_tap(uid, TapAction::Lock, own, reason, now).await;
        own
    }

    async fn report_offline_tap(&self, uid: &str, action: TapAction, granted: bool, reason: &str, at: DateTime<Utc>) {
        let event = json!({
            "event": "offline_tap",
            "id": uuid::Uuid::new_v4().to_string(),
            "card_uid": uid,
            "action": action.name(),
            "granted": granted,
            "reason": reason,
            "at": at.to_rfc3339(),
        });
        if let Err(err) = self.link.publish_event(event).await {
            tracing::error!(error = %err, "cannot queue offline_tap");
        }
    }

    async fn on_bed_clear(&mut self) {
        let card =
            self.last_tap.as_ref().filter(|(_, at)| at.elapsed() <= BED_CLEAR_CARD_WINDOW).map(|(uid, _)| uid.clone());
        let cleared = match card {
            None => {
                tracing::info!("bed-clear button: no card tapped within a minute");
                false
            }
            Some(uid) => match self.server.clear(&uid).await {
                Ok(reply) => {
                    if !reply.cleared {
                        tracing::info!(reason = reply.reason.as_deref().unwrap_or(""), "bed clear refused");
                    }
                    reply.cleared
                }
                Err(err) => {
                    tracing::warn!(error = %err, "bed clear failed");
                    false
                }
            },
        };
        self.indicator.signal(if cleared { Signal::Granted } else { Signal::Refused });
    }

    async fn refresh_allowlist(&mut self) {
        let Some(holder) = self.allowlist.as_mut() else { return };
        match self.server.allowlist().await {
            Ok(signed) => {
                if let Err(err) = holder.accept(&signed) {
                    tracing::warn!(error = %err, "allowlist from makrcave refused");
                }
            }
            Err(err) => tracing::debug!(error = %err, "allowlist refresh failed"),
        }
    }

    /// Publishes the controller's latest telemetry with the relay state.
    async fn publish_telemetry(&mut self) {
        self.telemetry_dirty = false;
        let mut telemetry = match self.jobs.telemetry.borrow().clone() {
            Value::Object(map) => map,
            _ => serde_json::Map::new(),
        };
        telemetry.insert("relay".into(), Value::Bool(self.relay.is_on()));
        if let Err(err) = self.link.publish_telemetry(Value::Object(telemetry)).await {
            tracing::error!(error = %err, "cannot queue telemetry");
        }
    }
}
