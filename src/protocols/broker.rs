//! The embedded MQTT broker (rumqttd), so that `makrcave serve` works with nothing installed.
//!
//! rumqttd's `Broker::start` never returns and has no shutdown, so it runs on its own thread
//! for the life of the process. It cannot report the port it bound either: the caller picks a
//! free port first (see [`resolve_listen_addr`]) and we wait until it accepts connections.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};

/// Largest MQTT payload accepted (telemetry, events, small job files go elsewhere).
pub const MAX_PAYLOAD_BYTES: usize = 64 * 1024;
/// rumqttd keeps an in-memory log per topic of `SEGMENT_BYTES * SEGMENT_COUNT`; small segments
/// keep a farm of thousands of machines (one topic each) within a few hundred MiB.
const SEGMENT_BYTES: usize = 128 * 1024;
const SEGMENT_COUNT: usize = 2;
/// Connections the embedded broker accepts (machines, bridges, makrcave itself).
const MAX_CONNECTIONS: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("cannot bind the MQTT listener {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
    #[error("the embedded MQTT broker did not start listening on {0}")]
    NotListening(SocketAddr),
}

/// Turns a requested address with port 0 into a concrete free port (rumqttd needs one).
pub fn resolve_listen_addr(requested: SocketAddr) -> Result<SocketAddr, BrokerError> {
    if requested.port() != 0 {
        return Ok(requested);
    }
    let probe = TcpListener::bind(requested).map_err(|e| BrokerError::Bind(requested, e))?;
    probe.local_addr().map_err(|e| BrokerError::Bind(requested, e))
}

/// Starts the broker on `listen` and waits until it accepts TCP connections.
pub fn start(listen: SocketAddr) -> Result<SocketAddr, BrokerError> {
    // Fail early and clearly when the port is taken (rumqttd would only log it in its thread).
    drop(TcpListener::bind(listen).map_err(|e| BrokerError::Bind(listen, e))?);
    let config = config(listen);
    std::thread::Builder::new()
        .name("mqtt-broker".into())
        .spawn(move || {
            let mut broker = Broker::new(config);
            if let Err(err) = broker.start() {
                tracing::error!(error = ?err, "embedded MQTT broker stopped");
            }
        })
        .map_err(|e| BrokerError::Bind(listen, e))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&connect_addr(listen), Duration::from_millis(200)).is_ok() {
            tracing::info!(%listen, "embedded MQTT broker listening");
            return Ok(listen);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(BrokerError::NotListening(listen))
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

fn config(listen: SocketAddr) -> Config {
    let server = ServerSettings {
        name: "v4".into(),
        listen,
        tls: None,
        next_connection_delay_ms: 1,
        connections: ConnectionSettings {
            connection_timeout_ms: 60_000,
            max_payload_size: MAX_PAYLOAD_BYTES,
            max_inflight_count: 500,
            auth: None,
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
