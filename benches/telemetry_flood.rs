//! Telemetry flood: 1,000 machines publish through Mosquitto into makrcave while 10 WebSocket
//! clients watch the whole makerspace and a plain `mosquitto_sub` takes the same flood.
//!
//! Phase 1 (throughput): publishers send as fast as they can for a while; we report the rate
//! makrcave processed and the rate `mosquitto_sub` received over the same window (the ratio
//! is the figure that matters: both are bounded by the same broker and the same 2 cores).
//! Phase 2 (latency): publishers send at a fixed rate (20,000 messages/s by default); the
//! WebSocket clients measure publish-to-WebSocket latency from each message's `ts`.
//!
//! Run with `scripts/bench` (it installs Mosquitto if needed). Settings by environment:
//! BENCH_MACHINES (1000), BENCH_WS_CLIENTS (10), BENCH_SECONDS (10), BENCH_RATE (20000),
//! BENCH_PUBLISHERS (2).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use makrcave::domain::access::Role;
use makrcave::{Application, Settings};
use rumqttc::{AsyncClient, MqttOptions, QoS};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// The broker process, and the folder of its config file (kept until the broker stops).
struct Mosquitto(std::process::Child, #[allow(dead_code)] tempfile::TempDir);

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_mosquitto(port: u16) -> Mosquitto {
    let dir = tempfile::tempdir().expect("temp dir");
    let conf = dir.path().join("mosquitto.conf");
    // Queues large enough that the broker itself does not drop the flood for a subscriber
    // that is a few milliseconds behind.
    std::fs::write(&conf, format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 1000000\nlog_type error\n"))
        .expect("conf");
    let bin = std::env::var("MOSQUITTO_BIN").unwrap_or_else(|_| "/usr/sbin/mosquitto".into());
    let child = Command::new(bin)
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start mosquitto");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "mosquitto did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Mosquitto(child, dir)
}

/// Counts what `mosquitto_sub` receives (one line per message), with the time of each count.
fn start_mosquitto_sub(port: u16) -> (std::process::Child, Arc<AtomicU64>) {
    let mut child = Command::new("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-t", "makrcave/+/+/telemetry", "-q", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start mosquitto_sub (apt-get install mosquitto-clients)");
    let count = Arc::new(AtomicU64::new(0));
    let stdout = child.stdout.take().expect("stdout");
    let c = count.clone();
    std::thread::spawn(move || {
        let mut reader = BufReader::with_capacity(1 << 20, stdout);
        let mut line = Vec::with_capacity(512);
        while reader.read_until(b'\n', &mut line).map(|n| n > 0).unwrap_or(false) {
            c.fetch_add(1, Ordering::Relaxed);
            line.clear();
        }
    });
    (child, count)
}

/// makrcave's count of MQTT messages it processed, from its own (process-wide) metrics.
fn processed() -> u64 {
    let text = makrcave::metrics::recorder().render();
    text.lines()
        .filter(|l| l.starts_with("makrcave_mqtt_messages_in_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

/// Publishes telemetry for all machines, round robin, at `rate` per second (0: flat out),
/// until `stop`. Returns the number published.
async fn publish(client: AsyncClient, machines: Vec<String>, rate: u64, stop: Arc<AtomicBool>) -> u64 {
    let mut sent = 0u64;
    let started = Instant::now();
    let mut i = 0usize;
    while !stop.load(Ordering::Relaxed) {
        if rate > 0 {
            let due = (started.elapsed().as_secs_f64() * rate as f64) as u64;
            if sent >= due {
                tokio::time::sleep(Duration::from_millis(1)).await;
                continue;
            }
        }
        for _ in 0..50 {
            let topic = &machines[i % machines.len()];
            i += 1;
            let ts = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
            let payload = format!(
                r#"{{"state":"running","power_w":{},"temps":{{"nozzle":215.0,"bed":60.0}},"ts":"{ts}"}}"#,
                sent % 500
            );
            if client.publish(topic.as_str(), QoS::AtMostOnce, false, payload).await.is_err() {
                return sent;
            }
            sent += 1;
        }
    }
    sent
}

async fn mqtt_client(port: u16, name: &str) -> AsyncClient {
    let mut options = MqttOptions::new(name, "127.0.0.1", port);
    options.set_keep_alive(Duration::from_secs(30));
    options.set_request_channel_capacity(10_000);
    let (client, mut eventloop) = AsyncClient::new(options, 10_000);
    tokio::spawn(async move {
        loop {
            if eventloop.poll().await.is_err() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
    client
}

/// One dashboard: subscribes to the space and records latency (µs) while `recording`.
async fn ws_client(url: String, latencies: Arc<Mutex<Vec<u64>>>, received: Arc<AtomicU64>, recording: Arc<AtomicBool>) {
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.expect("ws connect");
    ws.send(tokio_tungstenite::tungstenite::Message::text(r#"{"type":"subscribe","makerspace_id":"bench"}"#))
        .await
        .expect("subscribe");
    let mut local = Vec::with_capacity(1 << 20);
    while let Some(Ok(msg)) = ws.next().await {
        let tokio_tungstenite::tungstenite::Message::Text(text) = msg else { continue };
        received.fetch_add(1, Ordering::Relaxed);
        if !recording.load(Ordering::Relaxed) {
            if !local.is_empty() {
                latencies.lock().expect("lock").append(&mut local);
            }
            continue;
        }
        // Only the timestamp matters: find it rather than parse the whole message.
        if let Some(start) = text.find("\"reported_at\":\"") {
            let rest = &text[start + 15..];
            if let Some(end) = rest.find('"') {
                if let Ok(ts) = chrono::DateTime::parse_from_rfc3339(&rest[..end]) {
                    let micros = (chrono::Utc::now() - ts.with_timezone(&chrono::Utc)).num_microseconds().unwrap_or(0);
                    local.push(micros.max(0) as u64);
                }
            }
        }
    }
}

fn main() {
    let machines_n = env_or("BENCH_MACHINES", 1000) as usize;
    let clients_n = env_or("BENCH_WS_CLIENTS", 10) as usize;
    let seconds = env_or("BENCH_SECONDS", 10);
    let rate = env_or("BENCH_RATE", 20_000);
    let publishers = env_or("BENCH_PUBLISHERS", 2) as usize;
    let mqtt_port = free_port();
    let _broker = start_mosquitto(mqtt_port);
    let data = tempfile::tempdir().expect("data dir");

    let mut settings = Settings::defaults();
    settings.http = "127.0.0.1:0".parse().expect("addr");
    settings.data_dir = data.path().to_path_buf();
    settings.database_url = format!("sqlite://{}", data.path().join("bench.db").display());
    settings.mqtt_broker =
        Some(makrcave::protocols::mqtt::BrokerAddress::parse(&format!("mqtt://127.0.0.1:{mqtt_port}")).expect("url"));
    settings.jwt_secret = Some(makrcave::config::Secret::new("benchmark-secret-0123456789"));
    settings.heartbeat_timeout_s = 3600;
    settings.log = "warn".into();

    actix_web::rt::System::new().block_on(async move {
        let app = Application::build(settings).await.expect("makrcave starts");
        let base = format!("http://{}", app.http_addr());
        let token = app.state().auth.mint("bench", &[Role::SuperAdmin], &[], chrono::Duration::hours(2));
        let machines: Vec<String> = (0..machines_n).map(|i| format!("makrcave/bench/m{i:04}/telemetry")).collect();

        // The load runs on its own runtime and threads, apart from makrcave's.
        let load = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
            rt.block_on(async move {
                let http = reqwest::Client::new();
                let post = |path: String, body: serde_json::Value| {
                    http.post(format!("{base}{path}")).bearer_auth(&token).json(&body).send()
                };
                post("/api/v1/makerspaces".into(), serde_json::json!({"id": "bench", "name": "Bench"})).await.expect("space");
                for i in 0..machines_n {
                    let res = post("/api/v1/makerspaces/bench/equipment".into(),
                        serde_json::json!({"id": format!("m{i:04}"), "name": format!("Machine {i:04}"), "type": "3d_printer"})).await.expect("machine");
                    assert_eq!(res.status().as_u16(), 201);
                }
                let latencies = Arc::new(Mutex::new(Vec::new()));
                let ws_received = Arc::new(AtomicU64::new(0));
                let recording = Arc::new(AtomicBool::new(false));
                let ws_url = format!("{}/api/v1/ws?token={token}", base.replace("http://", "ws://"));
                for _ in 0..clients_n {
                    tokio::spawn(ws_client(ws_url.clone(), latencies.clone(), ws_received.clone(), recording.clone()));
                }
                let (mut sub, sub_count) = start_mosquitto_sub(mqtt_port);
                let mut clients = Vec::new();
                for p in 0..publishers {
                    clients.push(mqtt_client(mqtt_port, &format!("bench-pub-{p}")).await);
                }
                tokio::time::sleep(Duration::from_secs(1)).await; // connections settle

                // Phase 1: flat out.
                let stop = Arc::new(AtomicBool::new(false));
                let chunk = machines.len().div_ceil(publishers);
                let spawn_publishers = |rate_each: u64, stop: Arc<AtomicBool>| {
                    clients.iter().enumerate().map(|(p, c)| {
                        let mine: Vec<String> = machines.iter().skip(p * chunk).take(chunk).cloned().collect();
                        tokio::spawn(publish(c.clone(), mine, rate_each, stop.clone()))
                    }).collect::<Vec<_>>()
                };
                let s0 = sub_count.load(Ordering::Relaxed);
                let t0 = Instant::now();
                let before = processed();
                let tasks = spawn_publishers(0, stop.clone());
                tokio::time::sleep(Duration::from_secs(seconds)).await;
                let window = t0.elapsed().as_secs_f64();
                let after = processed();
                let s1 = sub_count.load(Ordering::Relaxed);
                stop.store(true, Ordering::Relaxed);
                let mut published = 0;
                for t in tasks { published += t.await.unwrap_or(0); }
                tokio::time::sleep(Duration::from_secs(3)).await; // drain
                let flat = (published as f64 / window, (after - before) as f64 / window, (s1 - s0) as f64 / window);

                // Phase 2: a fixed rate, latency recorded.
                let stop = Arc::new(AtomicBool::new(false));
                let before = processed();
                let s0 = sub_count.load(Ordering::Relaxed);
                let ws0 = ws_received.load(Ordering::Relaxed);
                recording.store(true, Ordering::Relaxed);
                let t0 = Instant::now();
                let tasks = spawn_publishers(rate / publishers as u64, stop.clone());
                tokio::time::sleep(Duration::from_secs(seconds)).await;
                let window = t0.elapsed().as_secs_f64();
                stop.store(true, Ordering::Relaxed);
                let mut published = 0;
                for t in tasks { published += t.await.unwrap_or(0); }
                tokio::time::sleep(Duration::from_millis(500)).await;
                recording.store(false, Ordering::Relaxed);
                let after = processed();
                let s1 = sub_count.load(Ordering::Relaxed);
                let ws1 = ws_received.load(Ordering::Relaxed);
                // Nudge every client once more so each flushes what it recorded.
                for c in &clients { let _ = c.publish(machines[0].as_str(), QoS::AtMostOnce, false, "{}").await; }
                tokio::time::sleep(Duration::from_millis(500)).await;
                let mut lat = latencies.lock().expect("lock").clone();
                lat.sort_unstable();
                let _ = sub.kill();
                println!("makrcave telemetry flood: {machines_n} machines, {clients_n} WebSocket clients, {publishers} publishers, Mosquitto, SQLite");
                println!("phase 1, flat out for {seconds} s:");
                println!("  published            {:>10.0} msg/s", flat.0);
                println!("  makrcave processed   {:>10.0} msg/s", flat.1);
                println!("  mosquitto_sub got    {:>10.0} msg/s", flat.2);
                println!("  ratio makrcave/mosquitto_sub {:.2}", flat.1 / flat.2);
                println!("phase 2, paced at {rate} msg/s for {seconds} s:");
                println!("  published            {:>10.0} msg/s", published as f64 / window);
                println!("  makrcave processed   {:>10.0} msg/s", (after - before) as f64 / window);
                println!("  mosquitto_sub got    {:>10.0} msg/s", (s1 - s0) as f64 / window);
                println!("  WebSocket messages   {:>10.0} msg/s over {clients_n} clients (coalesced per machine)", (ws1 - ws0) as f64 / window);
                println!("  publish-to-WebSocket latency: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} samples)",
                    percentile(&lat, 0.50), percentile(&lat, 0.99), percentile(&lat, 1.0), lat.len());
            });
        });
        // makrcave keeps running on this thread's runtime while the load runs on its own.
        while !load.is_finished() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        load.join().expect("load thread");
        app.stop().await;
    });
}
