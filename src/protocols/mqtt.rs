//! The MQTT link: one client connection to the broker in use (embedded or external), which
//! subscribes to the machine topics, routes each message to its machine's actor, and publishes
//! commands. It reconnects with backoff and subscribes again after every reconnect (the
//! session is clean, so the broker forgets subscriptions with the connection).

use crate::logging::escaped;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::actors::fleet::{DeliveryError, Fleet};
use crate::domain::machine::Input;
use crate::metrics::{MQTT_CONNECTED, MQTT_CONNECTS, MQTT_MESSAGES_DROPPED, MQTT_MESSAGES_IN};
use crate::protocols::broker::MAX_PAYLOAD_BYTES;
use crate::protocols::commands::OutgoingMessage;
use crate::protocols::generic::{self, Channel};
use crate::protocols::plug_routes::PlugRoutes;
use crate::protocols::plugs;

/// First wait before reconnecting; doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Room for MQTT framing around the largest payload.
const MAX_PACKET_BYTES: usize = MAX_PAYLOAD_BYTES + 1024;
/// Outgoing requests (commands, subscriptions) that may wait for the connection.
const REQUEST_CAPACITY: usize = 1024;

/// Where the broker is, from an `mqtt://[user:password@]host[:port]` URL.
#[derive(Clone, PartialEq, Eq)]
pub struct BrokerAddress {
    pub host: String,
    pub port: u16,
    pub credentials: Option<(String, String)>,
}

impl std::fmt::Debug for BrokerAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the password.
        write!(f, "mqtt://{}:{}", self.host, self.port)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MqttUrlError {
    #[error("MQTT URL {0:?} is not a URL")]
    NotAUrl(String),
    #[error("MQTT URL scheme must be mqtt:// (or tcp://), not {0:?}")]
    Scheme(String),
    #[error("MQTT URL has no host")]
    NoHost,
}

impl BrokerAddress {
    pub fn parse(url: &str) -> Result<BrokerAddress, MqttUrlError> {
        let parsed = url::Url::parse(url).map_err(|_| MqttUrlError::NotAUrl(url.to_string()))?;
        if !matches!(parsed.scheme(), "mqtt" | "tcp") {
            return Err(MqttUrlError::Scheme(parsed.scheme().to_string()));
        }
        let host = parsed.host_str().filter(|h| !h.is_empty()).ok_or(MqttUrlError::NoHost)?;
        let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
        let credentials = (!parsed.username().is_empty())
            .then(|| (parsed.username().to_string(), parsed.password().unwrap_or_default().to_string()));
        Ok(BrokerAddress { host, port: parsed.port().unwrap_or(1883), credentials })
    }

    /// Client options with our defaults (clean session, packet sizes, keep-alive).
    pub fn options(&self, client_id: &str) -> MqttOptions {
        let mut options = MqttOptions::new(client_id, self.host.clone(), self.port);
        options.set_keep_alive(Duration::from_secs(15));
        options.set_clean_session(true);
        options.set_max_packet_size(MAX_PACKET_BYTES, MAX_PACKET_BYTES);
        options.set_request_channel_capacity(REQUEST_CAPACITY);
        if let Some((user, password)) = &self.credentials {
            options.set_credentials(user.clone(), password.clone());
        }
        options
    }
}

/// Whether the link is connected now (for health checks).
#[derive(Clone, Default)]
pub struct MqttStatus(Arc<AtomicBool>);

impl MqttStatus {
    pub fn is_connected(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Publishes commands to machines through the link's connection.
#[derive(Clone)]
pub struct CommandPublisher {
    client: AsyncClient,
}

#[derive(Debug, thiserror::Error)]
#[error("the MQTT link cannot take the command now (its queue is full or it is shut down)")]
pub struct PublishError;

impl CommandPublisher {
    /// Queues a message without waiting: an actor must never block on the network. The queue
    /// holds [`REQUEST_CAPACITY`] requests and is sent as soon as the broker is reachable.
    pub fn publish(&self, message: &OutgoingMessage) -> Result<(), PublishError> {
        let qos = if message.at_least_once { QoS::AtLeastOnce } else { QoS::AtMostOnce };
        self.client.try_publish(message.topic.clone(), qos, false, message.payload.clone()).map_err(|_| PublishError)
    }
}

/// A link whose client exists (so commands can be queued) but which is not running yet: the
/// fleet needs the publisher before it starts, and the running link needs the fleet.
pub struct PreparedLink {
    client: AsyncClient,
    routes: Arc<PlugRoutes>,
    eventloop: rumqttc::EventLoop,
    address: String,
}

/// The running link.
pub struct MqttLink {
    client: AsyncClient,
    status: MqttStatus,
    task: JoinHandle<()>,
}

impl MqttLink {
    /// Creates the client; nothing connects until [`PreparedLink::start`].
    pub fn prepare(address: &BrokerAddress) -> PreparedLink {
        let client_id = format!("makrcave-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let (client, eventloop) = AsyncClient::new(address.options(&client_id), REQUEST_CAPACITY);
        let routes = Arc::new(PlugRoutes::new(client.clone()));
        PreparedLink { client, routes, eventloop, address: format!("{address:?}") }
    }
}

impl PreparedLink {
    pub fn publisher(&self) -> CommandPublisher {
        CommandPublisher { client: self.client.clone() }
    }

    /// The plugs the link follows (the services tell it of added, changed and removed plug
    /// machines).
    pub fn plug_routes(&self) -> Arc<PlugRoutes> {
        self.routes.clone()
    }

    /// Connects (in the background) and starts routing messages: telemetry and status to the
    /// fleet, events to `events`.
    pub fn start(self, fleet: Arc<Fleet>, events: EventSink, shutdown: CancellationToken) -> MqttLink {
        let PreparedLink { client, routes, mut eventloop, address } = self;
        let status = MqttStatus::default();
        let task = {
            let client = client.clone();
            let connected = status.0.clone();
            tokio::spawn(async move {
                let mut backoff = MIN_BACKOFF;
                loop {
                    let event = tokio::select! {
                        _ = shutdown.cancelled() => break,
                        event = eventloop.poll() => event,
                    };
                    match event {
                        Ok(Event::Incoming(Packet::ConnAck(_))) => {
                            backoff = MIN_BACKOFF;
                            connected.store(true, Ordering::Relaxed);
                            metrics::counter!(MQTT_CONNECTS).increment(1);
                            metrics::gauge!(MQTT_CONNECTED).set(1.0);
                            tracing::info!(broker = %address, "MQTT connected; subscribing");
                            let mut topics = vec![
                                rumqttc::SubscribeFilter::new(generic::TELEMETRY_FILTER.into(), QoS::AtMostOnce),
                                rumqttc::SubscribeFilter::new(generic::STATUS_FILTER.into(), QoS::AtLeastOnce),
                                rumqttc::SubscribeFilter::new(generic::EVENT_FILTER.into(), QoS::AtLeastOnce),
                            ];
                            // The session is clean: the plugs' topics are forgotten too.
                            topics.extend(PlugRoutes::filters(routes.topics()));
                            if let Err(err) = client.try_subscribe_many(topics) {
                                tracing::error!(error = %escaped(&err), "could not queue MQTT subscriptions");
                            }
                        }
                        Ok(Event::Incoming(Packet::Publish(publish))) if is_generic(&publish.topic) => {
                            ingest(&fleet, &events, &publish.topic, &publish.payload).await;
                        }
                        Ok(Event::Incoming(Packet::Publish(publish))) => {
                            ingest_plug(&fleet, &routes, &publish.topic, &publish.payload).await;
                        }
                        Ok(_) => {}
                        Err(err) => {
                            if connected.swap(false, Ordering::Relaxed) {
                                metrics::gauge!(MQTT_CONNECTED).set(0.0);
                                tracing::warn!(broker = %address, error = %escaped(&err), "MQTT connection lost; reconnecting");
                            } else {
                                tracing::debug!(broker = %address, error = %escaped(&err), "MQTT connect failed; retrying");
                            }
                            tokio::select! {
                                _ = shutdown.cancelled() => break,
                                _ = tokio::time::sleep(backoff) => {}
                            }
                            backoff = (backoff * 2).min(MAX_BACKOFF);
                        }
                    }
                }
                let _ = client.try_disconnect();
                connected.store(false, Ordering::Relaxed);
            })
        };
        MqttLink { client, status, task }
    }
}

impl MqttLink {
    pub fn status(&self) -> MqttStatus {
        self.status.clone()
    }

    /// A handle for publishing (commands to machines).
    pub fn client(&self) -> AsyncClient {
        self.client.clone()
    }

    /// Waits for the link's task to end after shutdown was signalled.
    pub async fn join(self) {
        let _ = self.task.await;
    }
}

/// Routes one MQTT message to its machine. Anything that cannot be routed is counted by
/// reason, logged at debug and dropped: ingest never stops for a bad message.
pub async fn ingest(fleet: &Fleet, events: &EventSink, topic: &str, payload: &[u8]) {
    let drop_with = |reason: &'static str, detail: &dyn std::fmt::Display| {
        metrics::counter!(MQTT_MESSAGES_DROPPED, "reason" => reason).increment(1);
        tracing::debug!(topic, reason, detail = %escaped(&detail), "dropped MQTT message");
    };
    let parsed = match generic::parse_topic(topic) {
        Ok(t) => t,
        Err(err) => return drop_with(err.reason(), &err),
    };
    let (kind, input) = match parsed.channel {
        Channel::Telemetry => ("telemetry", generic::parse_telemetry(payload).map(Input::Telemetry)),
        Channel::Status => ("status", generic::parse_status(payload).map(|online| Input::Availability { online })),
        Channel::Event => match generic::parse_event(payload) {
            // A job event changes the machine's state: its actor takes it, as telemetry.
            Ok(generic::MachineEvent::Job(event)) => ("event", Ok(Input::Job(event))),
            other => return ingest_event(events, parsed.makerspace_id, parsed.equipment_id, other),
        },
        // Commands are ours.
        Channel::Cmd => return,
    };
    metrics::counter!(MQTT_MESSAGES_IN, "kind" => kind).increment(1);
    let input = match input {
        Ok(input) => input,
        Err(err) => return drop_with(err.reason(), &err),
    };
    match fleet.deliver(parsed.makerspace_id, parsed.equipment_id, input).await {
        Ok(()) => {}
        Err(err @ DeliveryError::UnknownMachine) => drop_with("unknown_machine", &err),
        Err(err @ DeliveryError::ActorGone) => drop_with("actor_gone", &err),
    }
}

/// Whether a topic is one of makrcave's generic ones (else it is a plug's).
fn is_generic(topic: &str) -> bool {
    topic.split('/').next() == Some(generic::ROOT)
}

/// Routes one plug message to the machines behind that plug. A plug makrcave does not know
/// (any more: messages in flight when a machine is removed) is counted as `unknown_device`.
pub async fn ingest_plug(fleet: &Fleet, routes: &PlugRoutes, topic: &str, payload: &[u8]) {
    let drop_with = |reason: &'static str, detail: &dyn std::fmt::Display| {
        metrics::counter!(MQTT_MESSAGES_DROPPED, "reason" => reason).increment(1);
        tracing::debug!(topic, reason, detail = %escaped(&detail), "dropped MQTT message");
    };
    let Some(device) = plugs::device_of(topic) else {
        return drop_with("bad_topic", &"not a topic makrcave reads");
    };
    let machines = routes.machines(&device);
    if machines.is_empty() {
        return drop_with("unknown_device", &format_args!("{device:?}"));
    }
    metrics::counter!(MQTT_MESSAGES_IN, "kind" => "plug").increment(1);
    let reading = match plugs::parse(topic, payload) {
        Ok(Some(reading)) => reading,
        // Well formed, but nothing makrcave uses (another command's result, another component).
        Ok(None) => return,
        Err(err) => return drop_with(err.reason(), &err),
    };
    for machine in machines {
        match fleet.sense(&machine.makerspace_id, &machine.equipment_id, reading).await {
            Ok(()) => {}
            Err(err @ DeliveryError::UnknownMachine) => drop_with("unknown_machine", &err),
            Err(err @ DeliveryError::ActorGone) => drop_with("actor_gone", &err),
        }
    }
}

/// An event a machine or its bridge reported, for the workflows above the link
/// (`services::events`) to act on.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportedEvent {
    pub makerspace_id: String,
    pub equipment_id: String,
    pub event: generic::MachineEvent,
}

/// Where the link hands reported events over. Never waits: a full queue drops the event and
/// counts it (ingest must not stall behind a workflow).
pub type EventSink = tokio::sync::mpsc::Sender<ReportedEvent>;

/// An event from a machine or its bridge: parsed here, acted on above.
fn ingest_event(
    events: &EventSink,
    makerspace_id: &str,
    equipment_id: &str,
    parsed: Result<generic::MachineEvent, generic::ParseError>,
) {
    metrics::counter!(MQTT_MESSAGES_IN, "kind" => "event").increment(1);
    match parsed {
        Ok(event) => {
            let reported = ReportedEvent {
                makerspace_id: makerspace_id.to_string(),
                equipment_id: equipment_id.to_string(),
                event,
            };
            if events.try_send(reported).is_err() {
                metrics::counter!(MQTT_MESSAGES_DROPPED, "reason" => "event_queue_full").increment(1);
                tracing::warn!(equipment_id, "machine event dropped: the event queue is full");
            }
        }
        Err(err) => {
            metrics::counter!(MQTT_MESSAGES_DROPPED, "reason" => err.reason()).increment(1);
            tracing::debug!(equipment_id, error = %escaped(&err), "dropped MQTT event");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls() {
        let a = BrokerAddress::parse("mqtt://broker.local:1884").expect("valid url");
        assert_eq!((a.host.as_str(), a.port, a.credentials.is_none()), ("broker.local", 1884, true));
        let a = BrokerAddress::parse("mqtt://user:secret@127.0.0.1").expect("valid url");
        assert_eq!(a.port, 1883);
        assert_eq!(a.credentials, Some(("user".into(), "secret".into())));
        assert!(!format!("{a:?}").contains("secret"));
        assert_eq!(BrokerAddress::parse("http://x"), Err(MqttUrlError::Scheme("http".into())));
        assert!(BrokerAddress::parse("nonsense").is_err());
        assert_eq!(BrokerAddress::parse("mqtt://[::1]:1883").map(|a| a.host), Ok("::1".to_string()));
    }
}
