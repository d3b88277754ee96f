//! The embedded broker's gate: what authenticating every device and judging every PUBLISH
//! costs, on SQLite.
//!
//! Phase 1 (connect): BENCH_DEVICES machines, each with its own credentials, connect at once;
//! we report the time until every CONNACK (each connect reads the credential from the database
//! and checks a PBKDF2 hash).
//! Phase 2 (throughput): every device publishes BENCH_MESSAGES QoS 1 telemetry messages on its
//! own topic as fast as its window of 100 unacknowledged messages lets it; the rate is of
//! messages the broker acknowledged (through the gate, which judged each one). Then the devices
//! disconnect and as many clients on makrcave's own account send the same, which the gate
//! relays as bytes without judging them. The ratio of the two rates is the price of judging.
//! makrcave's link takes the same flood into the machines' actors in both runs.
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
/// `acked` the broker's acknowledgements of its messages.
fn client(
    mqtt: std::net::SocketAddr,
    id: String,
    login: (String, String),
    connected: Arc<AtomicU64>,
    acked: Arc<AtomicU64>,
) -> AsyncClient {
    let mut options = MqttOptions::new(id, mqtt.ip().to_string(), mqtt.port());
    options.set_keep_alive(Duration::from_secs(30));
    options.set_credentials(login.0, login.1);
    options.set_inflight(100);
    let (client, mut eventloop) = AsyncClient::new(options, 10_000);
    tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    connected.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Event::Incoming(Packet::PubAck(_))) => {
                    acked.fetch_add(1, Ordering::Relaxed);
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    });
    client
}

/// Waits until `counter` reaches `target` (or stops moving for five seconds: the bench then
/// fails); returns when it reached it.
async fn reach(counter: &AtomicU64, target: u64, what: &str) -> Instant {
    let mut last = (Instant::now(), counter.load(Ordering::Relaxed));
    loop {
        tokio::time::sleep(Duration::from_millis(2)).await;
        let now = counter.load(Ordering::Relaxed);
        if now >= target {
            return Instant::now();
        }
        if now != last.1 {
            last = (Instant::now(), now);
        }
        assert!(last.0.elapsed() < Duration::from_secs(5), "{what}: stuck at {now} of {target}");
    }
}

/// Every client sends `messages` telemetry messages on its machine's topic; returns the rate
/// the broker acknowledged them at (messages per second).
async fn flood(clients: &[(String, AsyncClient)], messages: u64, acked: &AtomicU64) -> f64 {
    let before = acked.load(Ordering::Relaxed);
    let total = clients.len() as u64 * messages;
    let start = Instant::now();
    for (machine, client) in clients {
        let client = client.clone();
        let topic = format!("makrcave/bench/{machine}/telemetry");
        tokio::spawn(async move {
            for i in 0..messages {
                let payload = format!(r#"{{"state":"running","job":{{"progress":{}}}}}"#, i % 100);
                if client.publish(topic.clone(), QoS::AtLeastOnce, false, payload).await.is_err() {
                    return;
                }
            }
        });
    }
    let done = reach(acked, before + total, "acknowledged messages").await;
    total as f64 / (done - start).as_secs_f64()
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

                let connected = Arc::new(AtomicU64::new(0));
                let acked = Arc::new(AtomicU64::new(0));
                let start = Instant::now();
                let devices_clients: Vec<(String, AsyncClient)> = logins
                    .into_iter()
                    .map(|(machine, login)| {
                        let c = client(mqtt, format!("dev-{machine}"), login, connected.clone(), acked.clone());
                        (machine, c)
                    })
                    .collect();
                let connect_s = (reach(&connected, devices, "connected devices").await - start).as_secs_f64();
                println!(
                    "makrcave MQTT gate, {devices} devices, SQLite, release build:\n  \
                     connect: {devices} devices authenticated in {connect_s:.2} s ({:.0} connects/s)",
                    devices as f64 / connect_s
                );
                let judged = flood(&devices_clients, messages, &acked).await;
                for (_, c) in &devices_clients {
                    let _ = c.disconnect().await;
                }

                let service_connected = Arc::new(AtomicU64::new(0));
                let service_clients: Vec<(String, AsyncClient)> = devices_clients
                    .iter()
                    .enumerate()
                    .map(|(i, (machine, _))| {
                        let c = client(mqtt, format!("svc-{i}"), service.clone(), service_connected.clone(), acked.clone());
                        (machine.clone(), c)
                    })
                    .collect();
                reach(&service_connected, devices, "connected service clients").await;
                let relayed = flood(&service_clients, messages, &acked).await;
                println!(
                    "  QoS 1 telemetry, {messages} messages from each: devices (every PUBLISH judged) {judged:.0} messages/s; \
                     makrcave's own account (relayed as bytes) {relayed:.0} messages/s; judged / relayed {:.2}",
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
