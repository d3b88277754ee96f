//! The embedded MQTT broker, so that `makrcave serve` works with nothing installed.
//!
//! Two parts: rumqttd does the broker's work (sessions, QoS, retained messages) on a loopback
//! port behind a password only this process knows, and the [`gate`] in front of it is what
//! machines connect to: it authenticates every client and authorizes every topic (rumqttd
//! 0.20 cannot do either per device; see the gate's comment).
//!
//! rumqttd's `Broker::start` never returns and has no shutdown, so it runs on its own thread
//! for the life of the process. It cannot report the port it bound either: we pick a free
//! port first and wait until it accepts connections.

pub mod gate;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};
use tokio_util::sync::CancellationToken;

use self::gate::{Authenticator, Connections, Upstream};

/// Largest MQTT payload accepted (telemetry, events, small job files go elsewhere).
pub const MAX_PAYLOAD_BYTES: usize = 64 * 1024;
/// Room for MQTT framing around the largest payload.
const MAX_FRAME_BYTES: usize = MAX_PAYLOAD_BYTES + 1024;
/// rumqttd keeps an in-memory log per topic of `SEGMENT_BYTES * SEGMENT_COUNT`; small segments
/// keep a farm of thousands of machines (one topic each) within a few hundred MiB.
const SEGMENT_BYTES: usize = 128 * 1024;
const SEGMENT_COUNT: usize = 2;
/// Connections the embedded broker accepts (machines, bridges, makrcave itself).
const MAX_CONNECTIONS: usize = 10_000;
/// Clients the gate serves at once: fewer than rumqttd takes, so that rumqttd never refuses
/// one (it may still hold a connection the gate has just let go, and a refusal there leaves
/// its will registry in a state that breaks the next connect with that client id).
const MAX_GATE_CLIENTS: usize = MAX_CONNECTIONS - 100;
/// The gate's account on rumqttd.
const UPSTREAM_USERNAME: &str = "gate";

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("cannot bind the MQTT listener {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
    #[error("the embedded MQTT broker did not start listening on {0}")]
    NotListening(SocketAddr),
}

/// The running embedded broker.
pub struct EmbeddedBroker {
    /// Where machines connect (the gate).
    pub listen: SocketAddr,
    /// The gate's live clients, to cut a revoked device off.
    pub connections: Connections,
}

/// Starts rumqttd on a free loopback port and the gate on `listen`; the gate stops accepting,
/// and closes every client's connection, when `shutdown` is cancelled.
pub async fn start(
    listen: SocketAddr,
    authenticator: Arc<dyn Authenticator>,
    shutdown: CancellationToken,
) -> Result<EmbeddedBroker, BrokerError> {
    let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| BrokerError::Bind(listen, e))?;
    let listen = listener.local_addr().map_err(|e| BrokerError::Bind(listen, e))?;
    let password = crate::domain::mqtt_access::new_password(&rand::random());
    let inner = {
        let password = password.clone();
        tokio::task::spawn_blocking(move || start_rumqttd(password))
            .await
            .map_err(|_| BrokerError::NotListening(listen))??
    };
    let upstream = Upstream { addr: inner, username: UPSTREAM_USERNAME.to_string(), password };
    let connections = Connections::default();
    let gate = gate::serve(listener, upstream, authenticator, connections.clone(), MAX_FRAME_BYTES, MAX_GATE_CLIENTS);
    let live = connections.clone();
    tokio::spawn(async move {
        tokio::select! {
            () = gate => {}
            () = shutdown.cancelled() => live.disconnect_all(),
        }
    });
    tracing::info!(%listen, "embedded MQTT broker listening");
    Ok(EmbeddedBroker { listen, connections })
}

/// Starts rumqttd on a free loopback port that only `password` opens, and waits until it
/// accepts TCP connections.
fn start_rumqttd(password: String) -> Result<SocketAddr, BrokerError> {
    let probe_addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let probe = TcpListener::bind(probe_addr).map_err(|e| BrokerError::Bind(probe_addr, e))?;
    let addr = probe.local_addr().map_err(|e| BrokerError::Bind(probe_addr, e))?;
    drop(probe);
    let config = config(addr, password);
    std::thread::Builder::new()
        .name("mqtt-broker".into())
        .spawn(move || {
            let mut broker = Broker::new(config);
            if let Err(err) = broker.start() {
                tracing::error!(error = ?err, "embedded MQTT broker stopped");
            }
        })
        .map_err(|e| BrokerError::Bind(addr, e))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(addr);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(BrokerError::NotListening(addr))
}

/// Where to connect to reach a listener (an unspecified address means loopback).
pub fn connect_addr(listen: SocketAddr) -> SocketAddr {
    if listen.ip().is_unspecified() {
        let loopback: std::net::IpAddr =
            if listen.is_ipv4() { std::net::Ipv4Addr::LOCALHOST.into() } else { std::net::Ipv6Addr::LOCALHOST.into() };
        SocketAddr::new(loopback, listen.port())
    } else {
        listen
    }
}

fn config(listen: SocketAddr, password: String) -> Config {
    let server = ServerSettings {
        name: "v4".into(),
        listen,
        tls: None,
        next_connection_delay_ms: 1,
        connections: ConnectionSettings {
            connection_timeout_ms: 60_000,
            max_payload_size: MAX_PAYLOAD_BYTES,
            max_inflight_count: 500,
            // Only the gate may connect (a local user could reach the loopback port).
            auth: Some(HashMap::from([(UPSTREAM_USERNAME.to_string(), password)])),
            external_auth: None,
            dynamic_filters: true,
        },
    };
    Config {
        id: 0,
        router: RouterConfig {
            max_connections: MAX_CONNECTIONS,
            max_outgoing_packet_count: 200,
            max_segment_size: SEGMENT_BYTES,
            max_segment_count: SEGMENT_COUNT,
            custom_segment: None,
            initialized_filters: None,
            shared_subscriptions_strategy: Default::default(),
        },
        v4: Some(HashMap::from([("1".to_string(), server)])),
        ..Default::default()
    }
}
