//! The gate of the embedded broker: the MQTT listener machines connect to. It authenticates
//! every client, then relays its packets to rumqttd (on loopback, behind a password only the
//! gate knows) and refuses, packet by packet, whatever the client may not do.
//!
//! Why a gate: rumqttd 0.20 checks a username and password at connect, but cannot authorize
//! per topic nor disconnect a client on demand. The gate reads each packet's fixed header and
//! only decodes the few it must judge (CONNECT, PUBLISH, SUBSCRIBE and the SUBACK answering a
//! trimmed SUBSCRIBE); everything else passes through as bytes. What it refuses:
//! - a CONNECT without credentials (return code 5) or with wrong ones (4), a protocol other
//!   than MQTT 3.1.1 (1), and a last will on a topic the client may not publish to (5);
//! - a PUBLISH outside the client's topics: dropped, as Mosquitto drops it (QoS 1 is still
//!   acknowledged so that the device does not resend it forever; QoS 2 closes the connection);
//! - a SUBSCRIBE filter outside them: answered with the failure code 0x80 in the SUBACK.
//!
//! A client's id is prefixed with its username on the way in, so that no device can take over
//! another's session (MQTT lets a new connection with the same id push the old one out).

use crate::logging::escaped;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use dashmap::DashMap;
use futures_util::future::BoxFuture;
use rumqttc::mqttbytes::v4::{
    ConnAck, ConnectReturnCode, Packet, PubAck, Publish, SubAck, Subscribe, SubscribeReasonCode,
};
use rumqttc::mqttbytes::{self, PacketType, QoS};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::domain::mqtt_access::BrokerGrant;
use crate::metrics::MQTT_REFUSED;

/// A client must send CONNECT this soon after opening the connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes read from a socket at a time, at most.
const READ_CHUNK: usize = 16 * 1024;
/// Frames the gate itself answers (PUBACK, SUBACK) that may wait for the client's socket.
const ANSWER_QUEUE: usize = 64;

/// Decides who a client is from the credentials in its CONNECT.
pub trait Authenticator: Send + Sync + 'static {
    /// The grant of `username` if `password` is theirs; `None` refuses the connection.
    fn authenticate(&self, username: String, password: String) -> BoxFuture<'static, Option<BrokerGrant>>;
}

/// Where the gate relays to: rumqttd on loopback, and the login it accepts.
#[derive(Clone)]
pub struct Upstream {
    pub addr: SocketAddr,
    pub username: String,
    pub password: String,
}

/// The connected clients, so that a revoked device can be cut off at once.
#[derive(Clone, Default)]
pub struct Connections {
    live: Arc<DashMap<u64, (String, CancellationToken)>>,
    next_id: Arc<AtomicU64>,
}

impl Connections {
    /// Closes every connection of `username`; returns how many there were.
    pub fn disconnect(&self, username: &str) -> usize {
        let mut closed = 0;
        for entry in self.live.iter() {
            if entry.value().0 == username {
                entry.value().1.cancel();
                closed += 1;
            }
        }
        if closed > 0 {
            tracing::info!(username = ?username, closed, "MQTT client disconnected by the gate");
        }
        closed
    }

    /// Closes every connection: makrcave is stopping, and its machines and bridges must see
    /// the broker gone (rumqttd itself cannot be stopped, and would otherwise go on taking
    /// their messages with nobody left to read them).
    pub fn disconnect_all(&self) {
        for entry in self.live.iter() {
            entry.value().1.cancel();
        }
    }

    fn register(&self, username: &str) -> (u64, CancellationToken) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let token = CancellationToken::new();
        self.live.insert(id, (username.to_string(), token.clone()));
        (id, token)
    }
}

/// Accepts clients on `listener`, at most `max_clients` at a time (counting those that have
/// not sent CONNECT yet), each served on its own task.
pub async fn serve(
    listener: TcpListener,
    upstream: Upstream,
    authenticator: Arc<dyn Authenticator>,
    connections: Connections,
    max_frame: usize,
    max_clients: usize,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(max_clients));
    loop {
        let (socket, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                // Out of file descriptors and the like: wait a moment rather than spin.
                tracing::warn!(error = %escaped(&err), "MQTT gate cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            // Full: closing at once costs less than holding a socket nobody will serve.
            metrics::counter!(MQTT_REFUSED, "reason" => "too_many_clients").increment(1);
            drop(socket);
            continue;
        };
        let upstream = upstream.clone();
        let authenticator = authenticator.clone();
        let connections = connections.clone();
        tokio::spawn(async move {
            let _slot = slot;
            if let Err(reason) = serve_client(socket, upstream, authenticator, connections, max_frame).await {
                tracing::debug!(%peer, reason = %escaped(&reason), "MQTT client connection ended");
            }
        });
    }
}

/// Why a client's connection ended early.
#[derive(Debug, thiserror::Error)]
enum Ended {
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("protocol: {0}")]
    Protocol(&'static str),
    #[error("refused at connect: {0:?}")]
    Refused(ConnectReturnCode),
    #[error("cut off (credentials revoked or changed)")]
    Cut,
}

async fn serve_client(
    mut client: TcpStream,
    upstream: Upstream,
    authenticator: Arc<dyn Authenticator>,
    connections: Connections,
    max_frame: usize,
) -> Result<(), Ended> {
    client.set_nodelay(true)?;
    let mut from_client = BytesMut::with_capacity(4096);
    let first = tokio::time::timeout(CONNECT_TIMEOUT, read_frame(&mut client, &mut from_client, max_frame))
        .await
        .map_err(|_| Ended::Protocol("no CONNECT in time"))??
        .ok_or(Ended::Protocol("closed before CONNECT"))?;
    let connect = match Packet::read(&mut BytesMut::from(&first[..]), max_frame) {
        Ok(Packet::Connect(connect)) if connect.protocol == mqttbytes::Protocol::V4 => connect,
        Ok(Packet::Connect(_)) | Err(mqttbytes::Error::InvalidProtocolLevel(_) | mqttbytes::Error::InvalidProtocol) => {
            return refuse(&mut client, ConnectReturnCode::RefusedProtocolVersion, "protocol").await;
        }
        _ => return Err(Ended::Protocol("the first packet is not CONNECT")),
    };
    if connect.client_id.is_empty() && !connect.clean_session {
        // MQTT 3.1.1 (3.1.3-8): a session to keep needs a name to keep it under.
        return refuse(&mut client, ConnectReturnCode::BadClientId, "protocol").await;
    }
    let Some(login) = connect.login.clone() else {
        return refuse(&mut client, ConnectReturnCode::NotAuthorized, "anonymous").await;
    };
    let Some(grant) = authenticator.authenticate(login.username.clone(), login.password).await else {
        return refuse(&mut client, ConnectReturnCode::BadUserNamePassword, "bad_credentials").await;
    };
    if let Some(will) = &connect.last_will {
        if !grant.may_publish(&will.topic) {
            return refuse(&mut client, ConnectReturnCode::NotAuthorized, "will_denied").await;
        }
    }

    let mut broker = TcpStream::connect(upstream.addr).await?;
    broker.set_nodelay(true)?;
    let mut inward = connect;
    inward.client_id = inner_client_id(&login.username, &inward.client_id);
    inward.set_login(upstream.username, upstream.password);
    let mut frame = BytesMut::new();
    inward.write(&mut frame).map_err(|_| Ended::Protocol("CONNECT cannot be written"))?;
    broker.write_all(&frame).await?;

    let (id, cut) = connections.register(&login.username);
    let result = match grant {
        // makrcave itself may do anything: no need to look inside its packets.
        BrokerGrant::Service => tokio::select! {
            copied = async {
                // Whatever the client sent right behind its CONNECT goes first.
                broker.write_all(&from_client).await?;
                tokio::io::copy_bidirectional(&mut client, &mut broker).await.map(|_| ())
            } => copied.map_err(Ended::from),
            () = cut.cancelled() => Err(Ended::Cut),
        },
        BrokerGrant::Device(_) => tokio::select! {
            relayed = relay(client, broker, from_client, &grant, max_frame) => relayed,
            () = cut.cancelled() => Err(Ended::Cut),
        },
    };
    connections.live.remove(&id);
    result
}

/// rumqttd's client id for a gate client: its username first, so ids of different accounts
/// never collide (an empty id gets a random one, as MQTT 3.1.1 lets the broker choose).
///
/// rumqttd refuses ids containing `+`, `$`, `#` or `/` in a way that leaves its will registry
/// poisoned for every later client (0.20: the next connect with that id panics its accept
/// thread), so those characters, and `%` to keep the mapping one-to-one, are percent-encoded.
fn inner_client_id(username: &str, client_id: &str) -> String {
    let encode = |text: &str| -> String {
        text.chars()
            .map(|c| match c {
                '+' | '$' | '#' | '/' | '%' => format!("%{:02X}", c as u32),
                other => other.to_string(),
            })
            .collect()
    };
    let client_id = if client_id.is_empty() { uuid::Uuid::new_v4().simple().to_string() } else { encode(client_id) };
    format!("{}:{client_id}", encode(username))
}

async fn refuse(client: &mut TcpStream, code: ConnectReturnCode, reason: &'static str) -> Result<(), Ended> {
    metrics::counter!(MQTT_REFUSED, "reason" => reason).increment(1);
    let mut frame = BytesMut::new();
    // Only fails for frames too large to encode; a CONNACK is four bytes.
    let _ = ConnAck::new(code, false).write(&mut frame);
    client.write_all(&frame).await?;
    client.shutdown().await?;
    Err(Ended::Refused(code))
}

/// Relays a device's packets both ways, judging what it sends.
async fn relay(
    client: TcpStream,
    broker: TcpStream,
    mut from_client: BytesMut,
    grant: &BrokerGrant,
    max_frame: usize,
) -> Result<(), Ended> {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut broker_read, mut broker_write) = broker.into_split();
    // SUBSCRIBEs sent on with some filters removed: by packet id, which positions were refused.
    let trimmed: Mutex<HashMap<u16, Vec<bool>>> = Mutex::new(HashMap::new());
    // The gate's own answers to the client go through the task that writes to it.
    let (answers, mut answer_queue) = mpsc::channel::<Bytes>(ANSWER_QUEUE);

    // Each side reads what is there, judges every whole frame in it, and writes what passes
    // in one go: a write per packet would cost a system call per telemetry message.
    let inbound = async {
        loop {
            let mut forward = BytesMut::new();
            while let Some(frame) = take_frame(&mut from_client, max_frame)? {
                match judge(frame, grant, &trimmed, max_frame)? {
                    Verdict::Forward(frame) => forward.extend_from_slice(&frame),
                    Verdict::Answer(frame) => {
                        answers.send(frame).await.map_err(|_| Ended::Protocol("client writer gone"))?
                    }
                    Verdict::Drop => {}
                }
            }
            if !forward.is_empty() {
                broker_write.write_all(&forward).await?;
            }
            if !read_more(&mut client_read, &mut from_client).await? {
                break;
            }
        }
        broker_write.shutdown().await?;
        Ok::<(), Ended>(())
    };
    let outbound = async {
        let mut from_broker = BytesMut::with_capacity(4096);
        loop {
            tokio::select! {
                more = read_more(&mut broker_read, &mut from_broker) => {
                    if !more? {
                        break;
                    }
                    let mut deliver = BytesMut::new();
                    while let Some(frame) = take_frame(&mut from_broker, max_frame)? {
                        deliver.extend_from_slice(&restore_refusals(frame, &trimmed, max_frame)?);
                    }
                    client_write.write_all(&deliver).await?;
                }
                Some(answer) = answer_queue.recv() => client_write.write_all(&answer).await?,
            }
        }
        client_write.shutdown().await?;
        Ok::<(), Ended>(())
    };
    // Either side closing ends the connection (the broker closes after DISCONNECT, the client
    // after a refused packet, ...).
    tokio::select! {
        result = inbound => result,
        result = outbound => result,
    }
}

enum Verdict {
    Forward(Bytes),
    Answer(Bytes),
    Drop,
}

/// What to do with one packet from a device.
fn judge(
    frame: Bytes,
    grant: &BrokerGrant,
    trimmed: &Mutex<HashMap<u16, Vec<bool>>>,
    max_frame: usize,
) -> Result<Verdict, Ended> {
    let header = mqttbytes::check(frame.iter(), max_frame).map_err(|_| Ended::Protocol("bad frame"))?;
    match header.packet_type().map_err(|_| Ended::Protocol("unknown packet type"))? {
        PacketType::Connect => Err(Ended::Protocol("a second CONNECT")),
        PacketType::Publish => {
            let publish = Publish::read(header, frame.clone()).map_err(|_| Ended::Protocol("bad PUBLISH"))?;
            if grant.may_publish(&publish.topic) {
                return Ok(Verdict::Forward(frame));
            }
            metrics::counter!(MQTT_REFUSED, "reason" => "publish_denied").increment(1);
            tracing::warn!(topic = ?publish.topic, "MQTT publish refused: not one of the device's topics");
            match publish.qos {
                QoS::AtMostOnce => Ok(Verdict::Drop),
                QoS::AtLeastOnce => Ok(Verdict::Answer(encode(|b| PubAck::new(publish.pkid).write(b))?)),
                QoS::ExactlyOnce => Err(Ended::Protocol("a refused QoS 2 publish")),
            }
        }
        PacketType::Subscribe => {
            let subscribe = Subscribe::read(header, frame.clone()).map_err(|_| Ended::Protocol("bad SUBSCRIBE"))?;
            let refused: Vec<bool> = subscribe.filters.iter().map(|f| !grant.may_subscribe(&f.path)).collect();
            if !refused.contains(&true) {
                return Ok(Verdict::Forward(frame));
            }
            metrics::counter!(MQTT_REFUSED, "reason" => "subscribe_denied").increment(1);
            for filter in subscribe.filters.iter().zip(&refused).filter(|(_, r)| **r).map(|(f, _)| &f.path) {
                tracing::warn!(filter = ?filter, "MQTT subscription refused: not the device's commands");
            }
            if !refused.contains(&false) {
                let codes = vec![SubscribeReasonCode::Failure; refused.len()];
                return Ok(Verdict::Answer(encode(|b| SubAck::new(subscribe.pkid, codes).write(b))?));
            }
            let allowed: Vec<_> =
                subscribe.filters.iter().zip(&refused).filter(|(_, r)| !**r).map(|(f, _)| f.clone()).collect();
            let pkid = subscribe.pkid;
            trimmed.lock().map_err(|_| Ended::Protocol("poisoned"))?.insert(pkid, refused);
            Ok(Verdict::Forward(encode(|b| Subscribe { pkid, filters: allowed }.write(b))?))
        }
        _ => Ok(Verdict::Forward(frame)),
    }
}

/// Puts the refused filters' failure codes back into the SUBACK of a trimmed SUBSCRIBE.
fn restore_refusals(frame: Bytes, trimmed: &Mutex<HashMap<u16, Vec<bool>>>, max_frame: usize) -> Result<Bytes, Ended> {
    let header = mqttbytes::check(frame.iter(), max_frame).map_err(|_| Ended::Protocol("bad frame from broker"))?;
    if !matches!(header.packet_type(), Ok(PacketType::SubAck)) {
        return Ok(frame);
    }
    let suback = SubAck::read(header, frame.clone()).map_err(|_| Ended::Protocol("bad SUBACK from broker"))?;
    let Some(refused) = trimmed.lock().map_err(|_| Ended::Protocol("poisoned"))?.remove(&suback.pkid) else {
        return Ok(frame);
    };
    let mut granted = suback.return_codes.into_iter();
    let codes = refused
        .iter()
        .map(|r| if *r { SubscribeReasonCode::Failure } else { granted.next().unwrap_or(SubscribeReasonCode::Failure) })
        .collect();
    encode(|b| SubAck::new(suback.pkid, codes).write(b))
}

fn encode(write: impl FnOnce(&mut BytesMut) -> Result<usize, mqttbytes::Error>) -> Result<Bytes, Ended> {
    let mut buffer = BytesMut::new();
    write(&mut buffer).map_err(|_| Ended::Protocol("packet cannot be encoded"))?;
    Ok(buffer.freeze())
}

/// Takes the next whole MQTT frame (fixed header, remaining length, body) off the front of
/// `buffer`, if it holds one.
fn take_frame(buffer: &mut BytesMut, max_frame: usize) -> Result<Option<Bytes>, Ended> {
    match mqttbytes::check(buffer.iter(), max_frame) {
        Ok(header) => Ok(Some(buffer.split_to(header.frame_length()).freeze())),
        Err(mqttbytes::Error::InsufficientBytes(_)) => Ok(None),
        Err(mqttbytes::Error::PayloadSizeLimitExceeded(_)) => Err(Ended::Protocol("frame too large")),
        Err(_) => Err(Ended::Protocol("malformed frame")),
    }
}

/// Reads what the peer sent into `buffer`; false when it closed cleanly between frames.
async fn read_more<R: AsyncRead + Unpin>(reader: &mut R, buffer: &mut BytesMut) -> Result<bool, Ended> {
    // Room for many small packets per read (BytesMut alone would grow 64 bytes at a time).
    buffer.reserve(READ_CHUNK);
    if reader.read_buf(buffer).await? > 0 {
        Ok(true)
    } else if buffer.is_empty() {
        Ok(false)
    } else {
        Err(Ended::Protocol("closed mid-frame"))
    }
}

/// Reads the next whole MQTT frame; `None` when the peer closed cleanly between frames.
async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    buffer: &mut BytesMut,
    max_frame: usize,
) -> Result<Option<Bytes>, Ended> {
    loop {
        if let Some(frame) = take_frame(buffer, max_frame)? {
            return Ok(Some(frame));
        }
        if !read_more(reader, buffer).await? {
            return Ok(None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::mqtt_access::TopicRules;

    fn device() -> BrokerGrant {
        BrokerGrant::Device(TopicRules {
            publish: vec!["makrcave/s/e/telemetry".into()],
            subscribe: vec!["makrcave/s/e/cmd".into()],
        })
    }

    fn frame(packet: Packet) -> Bytes {
        let mut b = BytesMut::new();
        packet.write(&mut b, 1 << 20).expect("encode");
        b.freeze()
    }

    #[test]
    fn a_device_publishes_on_its_topics_only() {
        let trimmed = Mutex::new(HashMap::new());
        let own = frame(Packet::Publish(Publish::new("makrcave/s/e/telemetry", QoS::AtMostOnce, "{}")));
        assert!(matches!(judge(own, &device(), &trimmed, 1 << 20), Ok(Verdict::Forward(_))));
        let other = frame(Packet::Publish(Publish::new("makrcave/s/other/telemetry", QoS::AtMostOnce, "{}")));
        assert!(matches!(judge(other, &device(), &trimmed, 1 << 20), Ok(Verdict::Drop)));
        let mut at_least_once = Publish::new("makrcave/s/other/status", QoS::AtLeastOnce, "online");
        at_least_once.pkid = 7;
        let Ok(Verdict::Answer(ack)) = judge(frame(Packet::Publish(at_least_once)), &device(), &trimmed, 1 << 20)
        else {
            panic!("a refused QoS 1 publish is acknowledged by the gate");
        };
        assert!(matches!(Packet::read(&mut BytesMut::from(&ack[..]), 64), Ok(Packet::PubAck(PubAck { pkid: 7 }))));
    }

    #[test]
    fn refused_filters_come_back_as_failures_in_their_place() {
        let trimmed = Mutex::new(HashMap::new());
        let mut subscribe = Subscribe::new("makrcave/s/other/cmd", QoS::AtLeastOnce);
        subscribe.add("makrcave/s/e/cmd".into(), QoS::AtLeastOnce);
        subscribe.pkid = 3;
        let Ok(Verdict::Forward(sent)) = judge(frame(Packet::Subscribe(subscribe)), &device(), &trimmed, 1 << 20)
        else {
            panic!("the allowed filter goes on to the broker");
        };
        let Ok(Packet::Subscribe(sent)) = Packet::read(&mut BytesMut::from(&sent[..]), 1 << 20) else {
            panic!("a SUBSCRIBE");
        };
        assert_eq!(sent.filters.iter().map(|f| f.path.as_str()).collect::<Vec<_>>(), ["makrcave/s/e/cmd"]);
        let from_broker = frame(Packet::SubAck(SubAck::new(3, vec![SubscribeReasonCode::Success(QoS::AtLeastOnce)])));
        let restored = restore_refusals(from_broker, &trimmed, 1 << 20).expect("restored");
        let Ok(Packet::SubAck(ack)) = Packet::read(&mut BytesMut::from(&restored[..]), 64) else {
            panic!("a SUBACK");
        };
        assert_eq!(
            ack.return_codes,
            [SubscribeReasonCode::Failure, SubscribeReasonCode::Success(QoS::AtLeastOnce)],
            "the client sees an answer for each filter it asked for, in order"
        );
    }

    #[test]
    fn a_subscription_to_everything_is_answered_by_the_gate() {
        let trimmed = Mutex::new(HashMap::new());
        let subscribe = Subscribe::new("#", QoS::AtMostOnce);
        let Ok(Verdict::Answer(ack)) = judge(frame(Packet::Subscribe(subscribe)), &device(), &trimmed, 1 << 20) else {
            panic!("refused outright");
        };
        let Ok(Packet::SubAck(ack)) = Packet::read(&mut BytesMut::from(&ack[..]), 64) else { panic!("a SUBACK") };
        assert_eq!(ack.return_codes, [SubscribeReasonCode::Failure]);
    }

    #[test]
    fn client_ids_are_kept_apart_by_username_and_safe_for_rumqttd() {
        assert_eq!(inner_client_id("eq-1", "plug"), "eq-1:plug");
        assert!(inner_client_id("eq-1", "").starts_with("eq-1:"));
        assert_ne!(inner_client_id("eq-1", ""), inner_client_id("eq-1", ""));
        assert_eq!(inner_client_id("eq-1", "a/b+$#%"), "eq-1:a%2Fb%2B%24%23%25");
        assert_ne!(inner_client_id("eq-1", "a/b"), inner_client_id("eq-1", "a%2Fb"), "one-to-one");
    }
}
