//! The embedded broker's gate: what authenticating every device and judging every PUBLISH
//! costs, on SQLite.
//!
//! Phase 1 (connect): BENCH_DEVICES machines, each with its own credentials, connect at once;
//! we report the time until every CONNACK (each connect reads the credential from the database
//! and checks a PBKDF2 hash).
//! Phase 2 (throughput): every device publishes BENCH_MESSAGES QoS 0 telemetry messages on its
//! own topic as fast as it can, while a subscriber on makrcave's own account counts them on
//! `makrcave/bench/+/telemetry`. Then the same publishers' messages go through makrcave's own
//! account, whose packets the gate relays as bytes without judging them. The ratio of the two
//! rates is the price of judging. makrcave's link takes the same flood into the machines'
//! actors in both runs.
//!
//! Run with `scripts/bench mqtt_gate`. Settings by environment: BENCH_DEVICES (500),
//! BENCH_MESSAGES (200).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use makrcave::domain::access::Role;
use makrcave::domain::mqtt_access::SERVICE_USERNAME;
use makrcave::{Application, Settings};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// A client whose event loop runs on its own task; `connected` counts its CONNACKs and
/// `received` the messages it gets.
fn client(
    mqtt: std::net::SocketAddr,
    id: String,
    login: (String, String),
    connected: Arc<AtomicU64>,
    received: Arc<AtomicU64>,
) -> AsyncClient {
    let mut options = MqttOptions::new(id, mqtt.ip().to_string(), mqtt.port());
    options.set_keep_alive(Duration::from_secs(30));
    options.set_credentials(login.0, login.1);
    options.set_request_channel_capacity(10_000);
    options.set_inflight(1_000);
    let (client, mut eventloop) = AsyncClient::new(options, 10_000);
    tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    connected.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Event::Incoming(Packet::Publish(_))) => {
                    received.fetch_add(1, Ordering::Relaxed);
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    client
}

/// Waits until `counter` reaches `target`, or stops moving for a second; returns when it last
/// moved and its value then.
async fn settle(counter: &AtomicU64, target: u64) -> (Instant, u64) {
    let mut last = (Instant::now(), counter.load(Ordering::Relaxed));
    loop {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let now = counter.load(Ordering::Relaxed);
        if now != last.1 {
            last = (Instant::now(), now);
        }
        if now >= target || last.0.elapsed() > Duration::from_secs(1) {
            return last;
        }
    }
}

/// Every publisher sends `messages` telemetry messages on its machine's topic; the subscriber
/// counts. Returns (messages per second received, share received).
async fn flood(publishers: &[(String, AsyncClient)], messages: u64, received: &AtomicU64) -> (f64, f64) {
    let before = received.load(Ordering::Relaxed);
    let total = publishers.len() as u64 * messages;
    let start = Instant::now();
    for (machine, client) in publishers {
        let client = client.clone();
        let topic = format!("makrcave/bench/{machine}/telemetry");
        tokio::spawn(async move {
            for i in 0..messages {
                let payload = format!(r#"{{"state":"running","job":{{"progress":{}}}}}"#, i % 100);
                if client.publish(topic.clone(), QoS::AtMostOnce, false, payload).await.is_err() {
                    return;
                }
            }
        });
    }
    let (last, count) = settle(received, before + total).await;
    let got = count - before;
    (got as f64 / (last - start).as_secs_f64(), got as f64 / total as f64)
}

fn main() {
    let devices = env_or("BENCH_DEVICES", 500);
    let messages = env_or("BENCH_MESSAGES", 200);
    let data = tempfile::tempdir().expect("data dir");
    let mut settings = Settings::defaults();
    settings.http = "127.0.0.1:0".parse().expect("addr");
    settings.mqtt_listen = "127.0.0.1:0".parse().expect("addr");
    settings.data_dir = data.path().to_path_buf();
    settings.database_url = format!("sqlite://{}", data.path().join("bench.db").display());
    settings.jwt_secret = Some(makrcave::config::Secret::new("benchmark-secret-0123456789"));
    settings.heartbeat_timeout_s = 3600;
    settings.log = "warn".into();

    actix_web::rt::System::new().block_on(async move {
        let app = Application::build(settings).await.expect("makrcave starts");
        let base = format!("http://{}", app.http_addr());
        let mqtt = app.mqtt_addr();
        let service = (
            SERVICE_USERNAME.to_string(),
            app.state().settings.mqtt_service_password().expect("password").expose().to_string(),
        );
        let token = app.state().auth.mint("bench", &[Role::SuperAdmin], &[], chrono::Duration::hours(2));

        // The load runs on its own runtime and threads, apart from makrcave's.
        let load = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
            rt.block_on(async move {
                let http = reqwest::Client::new();
                let post = |path: String, body: serde_json::Value| {
                    http.post(format!("{base}{path}")).bearer_auth(&token).json(&body).send()
                };
                post("/api/v1/makerspaces".into(), serde_json::json!({"id": "bench", "name": "Bench"}))
                    .await
                    .expect("space");
                let mut logins = Vec::new();
                for i in 0..devices {
                    let machine = format!("m{i:04}");
                    let res = post(
                        "/api/v1/makerspaces/bench/equipment".into(),
                        serde_json::json!({"id": machine, "name": machine, "type": "3d_printer"}),
                    )
                    .await
                    .expect("machine");
                    assert_eq!(res.status().as_u16(), 201);
                    let res = post(format!("/api/v1/makerspaces/bench/equipment/{machine}/mqtt-credentials"), serde_json::json!(null))
                        .await
                        .expect("credentials");
                    let body: serde_json::Value = res.json().await.expect("json");
                    let field = |f: &str| body[f].as_str().expect("credential field").to_string();
                    logins.push((machine, (field("username"), field("password"))));
                }

                let received = Arc::new(AtomicU64::new(0));
                let spy_connected = Arc::new(AtomicU64::new(0));
                let spy = client(mqtt, "bench-spy".into(), service.clone(), spy_connected.clone(), received.clone());
                settle(&spy_connected, 1).await;
                spy.subscribe("makrcave/bench/+/telemetry", QoS::AtMostOnce).await.expect("subscribe");

                let connected = Arc::new(AtomicU64::new(0));
                let nothing = Arc::new(AtomicU64::new(0));
                let start = Instant::now();
                let device_clients: Vec<(String, AsyncClient)> = logins
                    .into_iter()
                    .map(|(machine, login)| {
                        let c = client(mqtt, format!("dev-{machine}"), login, connected.clone(), nothing.clone());
                        (machine, c)
                    })
                    .collect();
                let (last, count) = settle(&connected, devices).await;
                assert_eq!(count, devices, "every device connected");
                let connect_s = (last - start).as_secs_f64();
                println!(
                    "makrcave MQTT gate, {devices} devices, SQLite:\n  connect: {devices} devices authenticated in {connect_s:.2} s ({:.0} connects/s)",
                    devices as f64 / connect_s
                );

                let (judged, judged_share) = flood(&device_clients, messages, &received).await;
                let service_connected = Arc::new(AtomicU64::new(0));
                let service_clients: Vec<(String, AsyncClient)> = device_clients
                    .iter()
                    .enumerate()
                    .map(|(i, (machine, _))| {
                        let c = client(mqtt, format!("svc-{i}"), service.clone(), service_connected.clone(), nothing.clone());
                        (machine.clone(), c)
                    })
                    .collect();
                settle(&service_connected, devices).await;
                let (relayed, relayed_share) = flood(&service_clients, messages, &received).await;
                println!(
                    "  devices' telemetry (every PUBLISH judged): {judged:.0} messages/s ({:.1}% delivered)\n  \
                     the same through makrcave's own account (relayed as bytes): {relayed:.0} messages/s ({:.1}% delivered)\n  \
                     judged / relayed: {:.2}",
                    judged_share * 100.0,
                    relayed_share * 100.0,
                    judged / relayed
                );
            });
        });
        while !load.is_finished() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let outcome = load.join();
        app.stop().await;
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    });
}
