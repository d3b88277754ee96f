//! The MQTT link to makrcave's broker: `online` (retained) on connect and `offline` as the last
//! will, commands from `cmd`, and telemetry and events through the on-disk queue.
//!
//! Everything published goes into the queue first and leaves it only when the broker has
//! acknowledged it (QoS 1): with the broker away it waits on disk, and it is replayed in order
//! when the broker is back. One record is in flight at a time, so the order holds across
//! reconnects. Each connection gets a fresh client, so no request of a dead connection is
//! resent behind our back (that would deliver a record twice).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rumqttc::{AsyncClient, ConnectReturnCode, Event, EventLoop, LastWill, MqttOptions, Outgoing, Packet, QoS};
use serde_json::Value;
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinHandle;

use crate::command::Command;
use crate::config::MqttEndpoint;
use crate::queue::{DiskQueue, RecordKind};

/// Longest wait between two connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Largest MQTT packet in or out (a telemetry message is far smaller).
const MAX_PACKET: usize = 256 * 1024;

/// The per-machine topics of DESIGN.md's generic schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    pub status: String,
    pub telemetry: String,
    pub event: String,
    pub cmd: String,
}

impl Topics {
    pub fn new(makerspace_id: &str, equipment_id: &str) -> Topics {
        let base = format!("makrcave/{makerspace_id}/{equipment_id}");
        Topics {
            status: format!("{base}/status"),
            telemetry: format!("{base}/telemetry"),
            event: format!("{base}/event"),
            cmd: format!("{base}/cmd"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct LinkConfig {
    pub endpoint: MqttEndpoint,
    /// Also the broker's session key: one per machine (`makrcave-bridge-{equipment_id}`).
    pub client_id: String,
    pub keep_alive: Duration,
    pub topics: Topics,
}

/// MQTT options with credentials; the last will is the link's business, not `check`'s.
pub fn mqtt_options(endpoint: &MqttEndpoint, client_id: &str, keep_alive: Duration) -> MqttOptions {
    let mut options = MqttOptions::new(client_id, &endpoint.host, endpoint.port);
    options.set_keep_alive(keep_alive.max(Duration::from_secs(1)));
    options.set_max_packet_size(MAX_PACKET, MAX_PACKET);
    if let Some((user, pass)) = &endpoint.credentials {
        options.set_credentials(user, pass);
    }
    options
}

/// What publishers hold: cheap to clone, never blocks on the network.
#[derive(Debug, Clone)]
pub struct LinkHandle {
    queue: Arc<Mutex<DiskQueue>>,
    wake: Arc<Notify>,
    connected: watch::Receiver<bool>,
    stop: mpsc::Sender<()>,
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("cannot queue the message: {0}")]
    Queue(#[from] std::io::Error),
    #[error("the queue is unusable (a writer panicked)")]
    Poisoned,
}

impl LinkHandle {
    /// Queues a telemetry message; adds `dropped` (records the full queue dropped so far) and
    /// `ts` when missing.
    pub async fn publish_telemetry(&self, mut json: Value) -> Result<(), PublishError> {
        if let Value::Object(map) = &mut json {
            map.entry("dropped").or_insert_with(|| Value::from(self.dropped()));
            map.entry("ts").or_insert_with(|| Value::from(chrono::Utc::now().to_rfc3339()));
        }
        self.push(RecordKind::Telemetry, json).await
    }

    /// Queues an event (`{"event": name, ...}`).
    pub async fn publish_event(&self, json: Value) -> Result<(), PublishError> {
        self.push(RecordKind::Event, json).await
    }

    async fn push(&self, kind: RecordKind, json: Value) -> Result<(), PublishError> {
        let queue = self.queue.clone();
        let bytes = json.to_string().into_bytes();
        // Append + fsync: off the async threads.
        tokio::task::spawn_blocking(move || {
            let mut queue = queue.lock().map_err(|_| PublishError::Poisoned)?;
            queue.push(kind, &bytes).map_err(PublishError::from)
        })
        .await
        .map_err(|_| PublishError::Poisoned)??;
        self.wake.notify_one();
        Ok(())
    }

    /// Records the full queue dropped (telemetry's `dropped`).
    pub fn dropped(&self) -> u64 {
        self.queue.lock().map(|q| q.dropped()).unwrap_or(0)
    }

    /// Records waiting for the broker.
    pub fn queued(&self) -> usize {
        self.queue.lock().map(|q| q.len()).unwrap_or(0)
    }

    /// True while the broker has the bridge connected.
    pub fn connected(&self) -> watch::Receiver<bool> {
        self.connected.clone()
    }

    /// Says `offline` ourselves and disconnects (a clean stop sends no will).
    pub async fn shutdown(&self) {
        let _ = self.stop.send(()).await;
    }
}

/// Starts the link; commands from `cmd` arrive on the returned channel.
pub fn spawn(config: LinkConfig, queue: DiskQueue) -> (LinkHandle, mpsc::Receiver<Command>, JoinHandle<()>) {
    let queue = Arc::new(Mutex::new(queue));
    let wake = Arc::new(Notify::new());
    let (connected_tx, connected_rx) = watch::channel(false);
    let (stop_tx, stop_rx) = mpsc::channel(1);
    let (cmd_tx, cmd_rx) = mpsc::channel(32);
    let link = Link { config, queue: queue.clone(), wake: wake.clone(), connected: connected_tx, commands: cmd_tx };
    let task = tokio::spawn(link.run(stop_rx));
    (LinkHandle { queue, wake, connected: connected_rx, stop: stop_tx }, cmd_rx, task)
}

struct Link {
    config: LinkConfig,
    queue: Arc<Mutex<DiskQueue>>,
    wake: Arc<Notify>,
    connected: watch::Sender<bool>,
    commands: mpsc::Sender<Command>,
}

/// What a publish we asked for was, to know which acknowledgement frees a queue record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sent {
    Status,
    QueueHead,
}

/// How a connection ended.
enum Ended {
    Stopped,
    Lost { was_connected: bool },
}

/// One connection's bookkeeping.
#[derive(Default)]
struct Flight {
    /// Publishes handed to the client, waiting for their packet id (in order).
    awaiting_pkid: VecDeque<Sent>,
    by_pkid: HashMap<u16, Sent>,
    /// The queue's head is on its way to the broker.
    head_in_flight: bool,
    connected: bool,
}

impl Link {
    async fn run(self, mut stop: mpsc::Receiver<()>) {
        let mut backoff = Duration::from_secs(1);
        let mut malformed = 0u64;
        loop {
            let mut options = mqtt_options(&self.config.endpoint, &self.config.client_id, self.config.keep_alive);
            options.set_last_will(LastWill::new(&self.config.topics.status, "offline", QoS::AtLeastOnce, true));
            let (client, mut eventloop) = AsyncClient::new(options, 16);
            let ended = self.connection(&client, &mut eventloop, &mut stop, &mut malformed).await;
            self.connected.send_replace(false);
            match ended {
                Ended::Stopped => return,
                Ended::Lost { was_connected: true } => backoff = Duration::from_secs(1),
                Ended::Lost { was_connected: false } => {}
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = stop.recv() => return,
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    async fn connection(
        &self,
        client: &AsyncClient,
        eventloop: &mut EventLoop,
        stop: &mut mpsc::Receiver<()>,
        malformed: &mut u64,
    ) -> Ended {
        let mut flight = Flight::default();
        loop {
            tokio::select! {
                event = eventloop.poll() => match event {
                    Ok(event) => {
                        if let Err(err) = self.on_event(event, client, &mut flight, malformed).await {
                            tracing::warn!(error = %err, "MQTT: dropping the connection");
                            return Ended::Lost { was_connected: flight.connected };
                        }
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, queued = self.queue_len(), "MQTT connection lost; retrying");
                        return Ended::Lost { was_connected: flight.connected };
                    }
                },
                _ = self.wake.notified(), if flight.connected => self.send_head(client, &mut flight),
                _ = stop.recv() => {
                    self.say_goodbye(client, eventloop).await;
                    return Ended::Stopped;
                }
            }
        }
    }

    async fn on_event(
        &self,
        event: Event,
        client: &AsyncClient,
        flight: &mut Flight,
        malformed: &mut u64,
    ) -> Result<(), String> {
        match event {
            Event::Incoming(Packet::ConnAck(ack)) => {
                if ack.code != ConnectReturnCode::Success {
                    return Err(format!("broker refused the connection: {:?}", ack.code));
                }
                tracing::info!(queued = self.queue_len(), "MQTT connected");
                flight.connected = true;
                self.connected.send_replace(true);
                client
                    .try_publish(&self.config.topics.status, QoS::AtLeastOnce, true, "online")
                    .map_err(|e| e.to_string())?;
                flight.awaiting_pkid.push_back(Sent::Status);
                client.try_subscribe(&self.config.topics.cmd, QoS::AtLeastOnce).map_err(|e| e.to_string())?;
                self.send_head(client, flight);
            }
            Event::Outgoing(Outgoing::Publish(pkid)) => {
                if let Some(sent) = flight.awaiting_pkid.pop_front() {
                    flight.by_pkid.insert(pkid, sent);
                }
            }
            Event::Incoming(Packet::PubAck(ack)) if flight.by_pkid.remove(&ack.pkid) == Some(Sent::QueueHead) => {
                flight.head_in_flight = false;
                self.pop_head().await.map_err(|e| format!("queue: {e}"))?;
                self.send_head(client, flight);
            }
            Event::Incoming(Packet::Publish(publish)) if publish.topic == self.config.topics.cmd => {
                match Command::parse(&publish.payload) {
                    Ok(command) => {
                        tracing::info!(?command, "command");
                        if self.commands.try_send(command).is_err() {
                            tracing::warn!("command dropped: the run loop is not keeping up");
                        }
                    }
                    Err(err) => {
                        *malformed += 1;
                        tracing::warn!(error = %err, malformed = *malformed, "ignoring a malformed command");
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Hands the queue's oldest record to the client unless one is already on its way.
    fn send_head(&self, client: &AsyncClient, flight: &mut Flight) {
        if flight.head_in_flight || !flight.connected {
            return;
        }
        let Some(record) = self.queue.lock().ok().and_then(|q| q.front().cloned()) else { return };
        let topic = match record.kind {
            RecordKind::Telemetry => &self.config.topics.telemetry,
            RecordKind::Event => &self.config.topics.event,
        };
        match client.try_publish(topic, QoS::AtLeastOnce, false, record.payload) {
            Ok(()) => {
                flight.head_in_flight = true;
                flight.awaiting_pkid.push_back(Sent::QueueHead);
            }
            // The request channel is full: the next acknowledgement or wake-up retries.
            Err(err) => tracing::debug!(error = %err, "publish deferred"),
        }
    }

    async fn pop_head(&self) -> Result<(), String> {
        let queue = self.queue.clone();
        tokio::task::spawn_blocking(move || match queue.lock() {
            Ok(mut queue) => queue.pop_front().map(|_| ()).map_err(|e| e.to_string()),
            Err(_) => Err("poisoned".to_string()),
        })
        .await
        .map_err(|e| e.to_string())?
    }

    fn queue_len(&self) -> usize {
        self.queue.lock().map(|q| q.len()).unwrap_or(0)
    }

    async fn say_goodbye(&self, client: &AsyncClient, eventloop: &mut EventLoop) {
        if !*self.connected.borrow() {
            return;
        }
        let _ = client.try_publish(&self.config.topics.status, QoS::AtLeastOnce, true, "offline");
        let _ = client.try_disconnect();
        let drained = tokio::time::timeout(Duration::from_secs(2), async {
            while let Ok(event) = eventloop.poll().await {
                if matches!(event, Event::Outgoing(Outgoing::Disconnect)) {
                    break;
                }
            }
        });
        let _ = drained.await;
    }
}
