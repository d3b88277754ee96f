//! Bambu farm: BENCH_BAMBU_PRINTERS scripted Bambu printers (200 by default) whose report
//! streams go through one makrcave (`makrcave serve` as a child process, release build), with
//! one dashboard subscribed to the farm over WebSocket.
//!
//! Each real Bambu printer runs its own TLS broker; here one real Mosquitto plays all 200: a TLS
//! listener whose certificate, issued by a test CA made with `openssl`, names every printer's
//! serial as a subject alternative name, and a password file with `bblp` and the access code.
//! Each machine is configured as a real one is (`ca_file`, its own serial), so makrcave opens
//! 200 TLS connections and checks the chain and its serial on each. Each scripted printer (its
//! own MQTT client on the broker's plain listener) answers `pushall` with a full X1-style
//! report, then publishes a P1-style delta once a second (temperatures, progress, remaining
//! time), the printers spread evenly over the second.
//!
//! Two windows of BENCH_SECONDS (60) measure makrcave's CPU time and resident memory: with no
//! machine (baseline), then following every printer. Per printer = (following − baseline) / N.
//! The dashboard's messages are counted against the deltas published in the window, and each
//! is matched to the delta it shows (the nozzle temperature, which each delta changes) for the
//! delay from publishing to the dashboard (through Mosquitto, TLS and makrcave).
//!
//! Run with `scripts/bench bambu_farm` (it installs Mosquitto and openssl if missing).

#[allow(dead_code)]
#[path = "../tests/integration/bambu_printer.rs"]
mod bambu_printer;
#[allow(dead_code)]
#[path = "../tests/integration/spawn.rs"]
mod spawn;

#[allow(dead_code)]
mod farm;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bambu_printer::{PrinterBroker, ScriptedPrinter, ACCESS_CODE};
use farm::{env_or, measure, micros_between, per_printer, row, spread, Makrcave};
use serde_json::json;

/// A delta as it left the scripted printer: when, which printer, its nozzle temperature (in
/// tenths of a degree).
type Published = Arc<Mutex<Vec<(Instant, usize, i64)>>>;

/// The nozzle temperature of a printer's `tick`th delta: a new one every second, repeating
/// every 20 s (a nozzle holding 220 °C within a degree).
fn nozzle(tick: u64) -> f64 {
    219.0 + (tick % 20) as f64 * 0.1
}

/// A printer's P1-style deltas, once a second from `offset` on.
async fn stream(printer: ScriptedPrinter, index: usize, offset: Duration, published: Published) {
    tokio::time::sleep(offset).await;
    let mut every = tokio::time::interval(Duration::from_secs(1));
    for tick in 0u64.. {
        every.tick().await;
        let temperature = nozzle(tick);
        let delta = json!({
            "command": "push_status", "msg": 1, "sequence_id": (3000 + tick).to_string(),
            "nozzle_temper": temperature, "bed_temper": 55.0 + (tick % 3) as f64 * 0.1,
            "mc_percent": (37 + tick / 30).min(99), "mc_remaining_time": 42u64.saturating_sub(tick / 60).max(1),
        });
        let at = Instant::now();
        printer.delta(delta);
        published.lock().expect("lock").push((at, index, (temperature * 10.0).round() as i64));
    }
}

async fn run(n: usize, window: Duration) {
    let serials: Vec<String> = (0..n).map(|i| format!("01P00A{i:09}")).collect();
    let names: Vec<&str> = serials.iter().map(String::as_str).collect();
    let broker = PrinterBroker::start_for(&names, ACCESS_CODE);
    let published = Published::default();
    for (i, serial) in serials.iter().enumerate() {
        let printer = ScriptedPrinter::start_as(&broker, serial).await;
        let offset = Duration::from_secs(1) * i as u32 / n as u32;
        tokio::spawn(stream(printer, i, offset, published.clone()));
    }

    let makrcave = Makrcave::start().await;
    let feed = makrcave.watch().await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let baseline = measure(makrcave.pid(), window).await;

    let ids: Vec<String> = (0..n).map(|i| format!("bambu{i:03}")).collect();
    let started = Instant::now();
    for (id, serial) in ids.iter().zip(&serials) {
        let connection = json!({"kind": "bambu", "host": "127.0.0.1", "port": broker.tls_port, "serial": serial,
                                "access_code": ACCESS_CODE, "ca_file": broker.ca_file()});
        makrcave.machine(id, connection).await;
    }
    feed.wait_all(&ids, "running", Duration::from_secs(120), |m| m["state"] == "running").await;
    let following_after = started.elapsed();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let t0 = Instant::now();
    let following = measure(makrcave.pid(), window).await;
    let t1 = Instant::now();

    let index: HashMap<&str, usize> = ids.iter().enumerate().map(|(i, id)| (id.as_str(), i)).collect();
    let published = published.lock().expect("lock").clone();
    let deltas = published.iter().filter(|(at, _, _)| *at >= t0 && *at < t1).count();
    let mut sent: HashMap<(usize, i64), Vec<Instant>> = HashMap::new();
    for (at, i, key) in &published {
        sent.entry((*i, *key)).or_default().push(*at);
    }
    let (mut latency, mut messages, mut unmatched) = (Vec::new(), 0, 0);
    for seen in feed.seen.lock().expect("lock").iter().filter(|s| s.at >= t0 && s.at < t1) {
        let Some(&i) = index.get(seen.equipment_id.as_str()) else { continue };
        messages += 1;
        let key = seen.machine["temps"]["nozzle"].as_f64().map(|t| (t * 10.0).round() as i64);
        let before = key.and_then(|k| sent.get(&(i, k))).and_then(|times| times.iter().rev().find(|t| **t <= seen.at));
        match before {
            Some(at) => latency.push(micros_between(*at, seen.at)),
            None => unmatched += 1,
        }
    }
    latency.sort_unstable();
    let (mib, anon, core) = per_printer(&following, &baseline, n);
    println!(
        "makrcave Bambu farm: {n} scripted printers, one TLS Mosquitto (CA file, a serial per printer), makrcave serve (release, SQLite), 1 dashboard; load {}",
        farm::load()
    );
    println!(
        "  all {n} machines running on the dashboard {:.1} s after the first was created",
        following_after.as_secs_f64()
    );
    println!("{}", row("baseline (no machines)", &baseline));
    println!("{}", row(&format!("following {n} printers"), &following));
    println!("  per printer: RSS {mib:.3} MiB (anonymous {anon:.3} MiB), {core:.4} % of a core");
    println!("  {deltas} deltas published in the window, {messages} dashboard messages for the printers");
    println!("  delta published to dashboard: {}, {unmatched} unmatched)", spread(&latency));
    drop(makrcave);
    drop(broker);
}

fn main() {
    let n = env_or("BENCH_BAMBU_PRINTERS", 200) as usize;
    let window = Duration::from_secs(env_or("BENCH_SECONDS", 60));
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
    rt.block_on(run(n, window));
}
