//! Kiosk decisions and bookings (issue 4), against makrcave in-process (release build) with its
//! embedded MQTT broker, on SQLite and, when `BENCH_PG_URL` names a PostgreSQL admin URL, on a
//! fresh PostgreSQL database too.
//!
//! Kiosk: 200 machines brought online over MQTT (10 of them laser cutters needing a skill that
//! 90% of the members hold), 1,000 members with a card each, one registered kiosk. Each
//! decision is `POST /api/v1/kiosk/unlock` with a random member's card on a random machine; a
//! grant is followed at once by `POST /api/v1/kiosk/lock` from the same client (so machines
//! stay free; the lock is timed apart). Phase 1 is paced at 500 decisions/s from 16 clients;
//! phase 2 runs flat out from 32 clients. Latency is measured by the clients on loopback, and
//! read from makrcave's own `makrcave_http_request_duration_seconds` histogram (bucket-derived).
//!
//! Bookings: 50 machines, 50 concurrent clients (member tokens), each taking the next ticket of
//! a shared counter. Tickets come in pairs on the same machine and slot: the even one books
//! [t, t+10 min), the odd one [t+5 min, t+15 min), which overlaps it and the next slot, so about
//! half the requests race for a slot already taken and must get 409. Afterwards every machine's
//! stored bookings are read back from the API and checked for overlaps (the bench fails on one).
//!
//! Each phase also reports where the CPU went: this process's threads by name, the whole
//! machine's busy time, and the difference (other processes: PostgreSQL, mostly).
//!
//! Run with `scripts/bench` (it starts the throwaway PostgreSQL). Settings by environment:
//! BENCH_SECONDS (10), BENCH_KIOSK_RATE (500), BENCH_KIOSK_CLIENTS (16), BENCH_FLAT_CLIENTS (32),
//! BENCH_MEMBERS (1000), BENCH_KIOSK_MACHINES (200), BENCH_BOOK_CLIENTS (50),
//! BENCH_BOOK_MACHINES (50), BENCH_PARTS ("kiosk,bookings"), BENCH_PG_URL (unset: PostgreSQL
//! skipped).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, SubsecRound, Utc};
use futures_util::StreamExt;
use makrcave::domain::access::Role;
use makrcave::{Application, Settings};
use rand::Rng;
use rumqttc::{AsyncClient, MqttOptions, QoS};
use serde_json::{json, Value};
use sqlx::Connection;

const KIOSK_SPACE: &str = "floor";
const BOOK_SPACE: &str = "book";
const SKILLED: usize = 10;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[derive(Clone, Copy)]
struct Config {
    seconds: u64,
    kiosk_rate: u64,
    kiosk_clients: usize,
    flat_clients: usize,
    members: usize,
    kiosk_machines: usize,
    book_clients: usize,
    book_machines: usize,
    /// Which parts run (BENCH_PARTS, default "kiosk,bookings").
    kiosk: bool,
    bookings: bool,
}

/// Percentile of sorted microseconds, in milliseconds.
fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

/// Cumulative bucket counts (upper bound in seconds, count) of makrcave's HTTP latency
/// histogram for one method and route, summed over statuses.
fn histogram(method: &str, route: &str) -> Vec<(f64, f64)> {
    let text = makrcave::metrics::recorder().render();
    let mut buckets: BTreeMap<String, f64> = BTreeMap::new();
    let route_label = format!("route=\"{route}\"");
    let method_label = format!("method=\"{method}\"");
    for line in text.lines() {
        if !line.starts_with("makrcave_http_request_duration_seconds_bucket")
            || !line.contains(&route_label)
            || !line.contains(&method_label)
        {
            continue;
        }
        let Some(le) = line.split("le=\"").nth(1).and_then(|r| r.split('"').next()) else { continue };
        let Some(count) = line.rsplit(' ').next().and_then(|c| c.parse::<f64>().ok()) else { continue };
        *buckets.entry(le.to_string()).or_insert(0.0) += count;
    }
    let mut out: Vec<(f64, f64)> = buckets
        .into_iter()
        .map(|(le, c)| (if le == "+Inf" { f64::INFINITY } else { le.parse().unwrap_or(0.0) }, c))
        .collect();
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    out
}

/// The p-quantile (ms) of what a histogram recorded between two snapshots: the bucket bound it
/// falls under, and a linear interpolation inside that bucket. Also the number of samples.
fn histogram_quantile(before: &[(f64, f64)], after: &[(f64, f64)], p: f64) -> (f64, f64, u64) {
    let diff: Vec<(f64, f64)> = after
        .iter()
        .map(|(le, c)| (*le, c - before.iter().find(|(l, _)| l == le).map(|(_, b)| *b).unwrap_or(0.0)))
        .collect();
    let total = diff.last().map(|(_, c)| *c).unwrap_or(0.0);
    if total <= 0.0 {
        return (f64::NAN, f64::NAN, 0);
    }
    let rank = total * p;
    let (mut lower, mut below) = (0.0, 0.0);
    for (le, cum) in &diff {
        if *cum >= rank {
            let inside = cum - below;
            let frac = if inside > 0.0 { (rank - below) / inside } else { 1.0 };
            let interpolated = if le.is_finite() { lower + (le - lower) * frac } else { lower };
            return (le * 1000.0, interpolated * 1000.0, total as u64);
        }
        lower = *le;
        below = *cum;
    }
    (f64::INFINITY, f64::INFINITY, total as u64)
}

/// CPU seconds used so far: by this process's threads, grouped by thread name (digits masked),
/// and by the whole machine (all processes, `/proc/stat`), for telling where the time goes.
#[derive(Clone, Default)]
struct Cpu {
    threads: BTreeMap<String, f64>,
    machine_busy: f64,
    machine_total: f64,
}

fn cpu_now() -> Cpu {
    const TICK: f64 = 100.0; // USER_HZ on Linux
    let mut cpu = Cpu::default();
    if let Ok(dir) = std::fs::read_dir("/proc/self/task") {
        for entry in dir.flatten() {
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
            let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else { continue };
            let name: String =
                stat[open + 1..close].chars().map(|c| if c.is_ascii_digit() { '#' } else { c }).collect();
            let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
            let ticks: f64 = [11, 12].iter().filter_map(|&i| fields.get(i)?.parse::<f64>().ok()).sum();
            *cpu.threads.entry(name).or_insert(0.0) += ticks / TICK;
        }
    }
    if let Ok(stat) = std::fs::read_to_string("/proc/stat") {
        if let Some(line) = stat.lines().next() {
            let v: Vec<f64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
            let idle = v.get(3).copied().unwrap_or(0.0) + v.get(4).copied().unwrap_or(0.0);
            cpu.machine_total = v.iter().take(8).sum::<f64>() / TICK;
            cpu.machine_busy = cpu.machine_total - idle / TICK;
        }
    }
    cpu
}

/// Where the CPU went between two snapshots, in cores (CPU seconds per second).
fn report_cpu(before: &Cpu, after: &Cpu, window: f64) {
    let mut groups: Vec<(String, f64)> = after
        .threads
        .iter()
        .map(|(k, v)| (k.clone(), (v - before.threads.get(k).copied().unwrap_or(0.0)) / window))
        .filter(|(_, v)| *v >= 0.01)
        .collect();
    groups.sort_by(|a, b| b.1.total_cmp(&a.1));
    let ours: f64 = groups.iter().map(|(_, v)| v).sum();
    let busy = (after.machine_busy - before.machine_busy) / window;
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let list: Vec<String> = groups.iter().take(8).map(|(k, v)| format!("{k} {v:.2}")).collect();
    println!(
        "    CPU (cores of {cores}): machine busy {busy:.2}; this process {ours:.2} [{}]; other processes {:.2}",
        list.join(", "),
        (busy - ours).max(0.0)
    );
}

struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    async fn post(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        let res = self.http.post(format!("{}{path}", self.base)).bearer_auth(token).json(&body).send().await;
        read(res).await
    }

    async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        read(self.http.get(format!("{}{path}", self.base)).bearer_auth(token).send().await).await
    }
}

async fn read(res: Result<reqwest::Response, reqwest::Error>) -> (u16, Value) {
    match res {
        Ok(res) => {
            let status = res.status().as_u16();
            let text = res.text().await.unwrap_or_default();
            (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
        }
        Err(e) => (0, Value::String(e.to_string())),
    }
}

fn created(what: &str, (status, body): (u16, Value)) -> Value {
    assert_eq!(status, 201, "{what}: {body}");
    body
}

fn card_of(i: usize) -> String {
    format!("04{i:06X}")
}

fn machine_of(i: usize) -> String {
    if i < SKILLED {
        format!("laser{i:02}")
    } else {
        format!("m{i:03}")
    }
}

#[derive(Default)]
struct Tally {
    decisions: u64,
    granted: u64,
    reasons: BTreeMap<String, u64>,
    unlock_us: Vec<u64>,
    lock_us: Vec<u64>,
    errors: u64,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.decisions += other.decisions;
        self.granted += other.granted;
        for (k, v) in other.reasons {
            *self.reasons.entry(k).or_insert(0) += v;
        }
        self.unlock_us.extend(other.unlock_us);
        self.lock_us.extend(other.lock_us);
        self.errors += other.errors;
    }
}

/// One kiosk client: decisions (each followed by a lock when granted) until `stop`, paced at
/// `rate` per second from `offset` (0: flat out).
async fn kiosk_client(
    api: Arc<Api>,
    kiosk: Arc<str>,
    cfg: Config,
    rate: f64,
    offset: f64,
    stop: Arc<AtomicBool>,
) -> Tally {
    let mut tally = Tally::default();
    let started = Instant::now();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        if rate > 0.0 {
            let due = started + Duration::from_secs_f64((n as f64 + offset) / rate);
            tokio::time::sleep_until(due.into()).await;
            if stop.load(Ordering::Relaxed) {
                break;
            }
        }
        n += 1;
        let (member, machine) = {
            let mut rng = rand::rng();
            (rng.random_range(0..cfg.members), machine_of(rng.random_range(0..cfg.kiosk_machines)))
        };
        let t = Instant::now();
        let (status, answer) = api
            .post("/api/v1/kiosk/unlock", &kiosk, json!({"equipment_id": machine, "card_uid": card_of(member)}))
            .await;
        let elapsed = t.elapsed().as_micros() as u64;
        if status != 200 {
            tally.errors += 1;
            continue;
        }
        tally.unlock_us.push(elapsed);
        tally.decisions += 1;
        let reason = answer["reason"].as_str().unwrap_or("?").to_string();
        *tally.reasons.entry(reason).or_insert(0) += 1;
        if answer["granted"].as_bool() == Some(true) {
            tally.granted += 1;
            let t = Instant::now();
            // Only the session's own card (or an admin's) locks.
            let lock = json!({"equipment_id": machine, "card_uid": card_of(member)});
            let (status, _) = api.post("/api/v1/kiosk/lock", &kiosk, lock).await;
            if status == 200 {
                tally.lock_us.push(t.elapsed().as_micros() as u64);
            } else {
                tally.errors += 1;
            }
        }
    }
    tally
}

async fn kiosk_phase(
    api: &Arc<Api>,
    kiosk: &Arc<str>,
    cfg: Config,
    clients: usize,
    rate: u64,
) -> (Tally, f64, Cpu, Cpu) {
    let stop = Arc::new(AtomicBool::new(false));
    let cpu0 = cpu_now();
    let per_client = rate as f64 / clients as f64;
    let t0 = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let offset = c as f64 / clients as f64;
            tokio::spawn(kiosk_client(api.clone(), kiosk.clone(), cfg, per_client, offset, stop.clone()))
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(cfg.seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let window = t0.elapsed().as_secs_f64();
    let cpu1 = cpu_now();
    let mut tally = Tally::default();
    for t in tasks {
        if let Ok(part) = t.await {
            tally.merge(part);
        }
    }
    tally.unlock_us.sort_unstable();
    tally.lock_us.sort_unstable();
    (tally, window, cpu0, cpu1)
}

fn report_kiosk(title: &str, tally: &Tally, window: f64) {
    println!("  {title}:");
    println!(
        "    decisions            {:>8.0} /s  ({} in {window:.1} s; {} granted = {:.1}%, {} HTTP errors)",
        tally.decisions as f64 / window,
        tally.decisions,
        tally.granted,
        100.0 * tally.granted as f64 / tally.decisions.max(1) as f64,
        tally.errors
    );
    println!("    reasons              {:?}", tally.reasons);
    println!(
        "    unlock, client-side  p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        percentile(&tally.unlock_us, 0.5),
        percentile(&tally.unlock_us, 0.99),
        percentile(&tally.unlock_us, 1.0)
    );
    println!(
        "    lock, client-side    p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        percentile(&tally.lock_us, 0.5),
        percentile(&tally.lock_us, 0.99),
        percentile(&tally.lock_us, 1.0)
    );
}

fn report_server(what: &str, before: &[(f64, f64)], after: &[(f64, f64)]) {
    let (b50, i50, n) = histogram_quantile(before, after, 0.5);
    let (b99, i99, _) = histogram_quantile(before, after, 0.99);
    println!(
        "    {what}, server-side (makrcave histogram, {n} samples): p50 ≤ {b50} ms bucket (~{i50:.2} ms), p99 ≤ {b99} ms bucket (~{i99:.2} ms interpolated)"
    );
}

async fn kiosk_bench(api: Arc<Api>, mqtt: (std::net::SocketAddr, String), root: &str, admin: &str, cfg: Config) {
    let t_setup = Instant::now();
    created("space", api.post("/api/v1/makerspaces", root, json!({"id": KIOSK_SPACE, "name": "Floor"})).await);
    let path = format!("/api/v1/makerspaces/{KIOSK_SPACE}/equipment");
    futures_util::stream::iter(0..cfg.kiosk_machines)
        .map(|i| {
            let (api, path) = (api.clone(), path.clone());
            async move {
                let kind = if i < SKILLED { "laser_cutter" } else { "3d_printer" };
                let id = machine_of(i);
                created("machine", api.post(&path, root, json!({"id": id, "name": id, "type": kind})).await);
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<()>>()
        .await;
    let lasers: Vec<String> = (0..SKILLED.min(cfg.kiosk_machines)).map(machine_of).collect();
    created(
        "skill",
        api.post(
            "/api/v1/skills",
            root,
            json!({"id": "laser-safety", "name": "Laser safety", "category": "Safety", "level": "beginner",
                   "makerspace_id": KIOSK_SPACE, "equipment_ids": lasers}),
        )
        .await,
    );
    futures_util::stream::iter(0..cfg.members)
        .map(|i| {
            let api = api.clone();
            async move {
                let user = format!("member{i:04}");
                let m = created(
                    "member",
                    api.post(
                        &format!("/api/v1/makerspaces/{KIOSK_SPACE}/members"),
                        root,
                        json!({"email": format!("{user}@example.org"), "first_name": user, "last_name": "M", "user_id": user}),
                    )
                    .await,
                );
                let id = m["id"].as_str().unwrap_or_default().to_string();
                created(
                    "card",
                    api.post(&format!("/api/v1/makerspaces/{KIOSK_SPACE}/members/{id}/cards"), root, json!({"uid": card_of(i)}))
                        .await,
                );
                if i % 10 != 9 {
                    created(
                        "user skill",
                        api.post("/api/v1/skills/user-skills", root, json!({"user_id": user, "skill_id": "laser-safety"}))
                            .await,
                    );
                }
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<()>>()
        .await;
    let registered = created(
        "kiosk",
        api.post(&format!("/api/v1/makerspaces/{KIOSK_SPACE}/kiosks"), admin, json!({"name": "Bench kiosk"})).await,
    );
    let kiosk: Arc<str> = Arc::from(registered["token"].as_str().unwrap_or_default());

    // Bring every machine online as its firmware would, and wait until each is idle.
    let (mqtt, mqtt_password) = mqtt;
    let mut options = MqttOptions::new("bench-machines", mqtt.ip().to_string(), mqtt.port());
    options.set_credentials(makrcave::domain::mqtt_access::SERVICE_USERNAME, mqtt_password);
    options.set_keep_alive(Duration::from_secs(30));
    let (client, mut eventloop) = AsyncClient::new(options, 10_000);
    let driver = tokio::spawn(async move {
        loop {
            if eventloop.poll().await.is_err() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
    for i in 0..cfg.kiosk_machines {
        let topic = format!("makrcave/{KIOSK_SPACE}/{}/status", machine_of(i));
        client.publish(topic, QoS::AtLeastOnce, true, "online").await.expect("publish status");
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    for i in 0..cfg.kiosk_machines {
        loop {
            let (_, s) =
                api.get(&format!("/api/v1/makerspaces/{KIOSK_SPACE}/equipment/{}/state", machine_of(i)), root).await;
            if s["state"] == "idle" {
                break;
            }
            assert!(Instant::now() < deadline, "machine {} did not come online: {s}", machine_of(i));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    println!(
        "  setup: {} machines online, {} members with cards, 1 kiosk, in {:.1} s",
        cfg.kiosk_machines,
        cfg.members,
        t_setup.elapsed().as_secs_f64()
    );
    // A short warm-up (connections, caches), not counted.
    let _ = kiosk_phase(&api, &kiosk, Config { seconds: 1, ..cfg }, cfg.kiosk_clients, cfg.kiosk_rate).await;

    let before = histogram("POST", "/api/v1/kiosk/unlock");
    let lock_before = histogram("POST", "/api/v1/kiosk/lock");
    let (paced, window, cpu0, cpu1) = kiosk_phase(&api, &kiosk, cfg, cfg.kiosk_clients, cfg.kiosk_rate).await;
    let after = histogram("POST", "/api/v1/kiosk/unlock");
    let lock_after = histogram("POST", "/api/v1/kiosk/lock");
    report_kiosk(
        &format!(
            "phase 1, paced at {} decisions/s from {} clients for {} s",
            cfg.kiosk_rate, cfg.kiosk_clients, cfg.seconds
        ),
        &paced,
        window,
    );
    report_server("unlock", &before, &after);
    report_server("lock", &lock_before, &lock_after);
    report_cpu(&cpu0, &cpu1, window);

    let before = histogram("POST", "/api/v1/kiosk/unlock");
    let (flat, window, fcpu0, fcpu1) = kiosk_phase(&api, &kiosk, cfg, cfg.flat_clients, 0).await;
    let after = histogram("POST", "/api/v1/kiosk/unlock");
    report_kiosk(&format!("phase 2, flat out from {} clients for {} s", cfg.flat_clients, cfg.seconds), &flat, window);
    report_server("unlock", &before, &after);
    report_cpu(&fcpu0, &fcpu1, window);
    driver.abort();
}

/// The interval of a booking ticket: pairs share a machine and a slot; the odd one is shifted by
/// half a slot. `None` when the slots of the 30-day horizon are used up.
fn ticket(i: u64, machines: u64, origin: DateTime<Utc>) -> Option<(String, DateTime<Utc>, DateTime<Utc>)> {
    let pair = i / 2;
    let machine = format!("b{:02}", pair % machines);
    let slot = (pair / machines) as i64;
    if slot > 4000 {
        return None;
    }
    let start = origin + chrono::Duration::minutes(10 * slot + if i % 2 == 1 { 5 } else { 0 });
    Some((machine, start, start + chrono::Duration::minutes(10)))
}

async fn bookings_bench(api: Arc<Api>, root: &str, tokens: Vec<String>, cfg: Config) {
    created("space", api.post("/api/v1/makerspaces", root, json!({"id": BOOK_SPACE, "name": "Book"})).await);
    for i in 0..cfg.book_machines {
        created(
            "machine",
            api.post(
                &format!("/api/v1/makerspaces/{BOOK_SPACE}/equipment"),
                root,
                json!({"id": format!("b{i:02}"), "name": format!("B{i:02}"), "type": "3d_printer"}),
            )
            .await,
        );
    }
    let origin = Utc::now().trunc_subsecs(0) + chrono::Duration::hours(1);
    let path = format!("/api/v1/makerspaces/{BOOK_SPACE}/reservations");
    let next = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let statuses: Arc<Mutex<BTreeMap<u16, u64>>> = Arc::default();
    let latencies: Arc<Mutex<Vec<u64>>> = Arc::default();
    let machines = cfg.book_machines as u64;
    let before = histogram("POST", "/api/v1/makerspaces/{makerspace_id}/reservations");
    let cpu0 = cpu_now();
    let t0 = Instant::now();
    let tasks: Vec<_> = tokens
        .into_iter()
        .map(|token| {
            let (api, path, next, stop) = (api.clone(), path.clone(), next.clone(), stop.clone());
            let (statuses, latencies) = (statuses.clone(), latencies.clone());
            tokio::spawn(async move {
                let mut mine: BTreeMap<u16, u64> = BTreeMap::new();
                let mut lat = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let Some((machine, start, end)) = ticket(next.fetch_add(1, Ordering::Relaxed), machines, origin)
                    else {
                        break;
                    };
                    let t = Instant::now();
                    let (status, body) = api
                        .post(
                            &path,
                            &token,
                            json!({"equipment_id": machine, "start": start.to_rfc3339(), "end": end.to_rfc3339()}),
                        )
                        .await;
                    lat.push(t.elapsed().as_micros() as u64);
                    if status == 409 {
                        assert_eq!(body["error_type"], "reservation_conflict", "{body}");
                    }
                    *mine.entry(status).or_insert(0) += 1;
                }
                for (k, v) in mine {
                    *statuses.lock().expect("lock").entry(k).or_insert(0) += v;
                }
                latencies.lock().expect("lock").extend(lat);
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(cfg.seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let window = t0.elapsed().as_secs_f64();
    let cpu1 = cpu_now();
    for t in tasks {
        t.await.expect("booking client");
    }
    let after = histogram("POST", "/api/v1/makerspaces/{makerspace_id}/reservations");
    let statuses = statuses.lock().expect("lock").clone();
    let mut lat = latencies.lock().expect("lock").clone();
    lat.sort_unstable();
    let accepted = statuses.get(&201).copied().unwrap_or(0);
    let requests: u64 = statuses.values().sum();
    println!("  {} concurrent clients, {} machines, for {} s:", cfg.book_clients, cfg.book_machines, cfg.seconds);
    println!("    bookings accepted    {:>8.0} /s  ({accepted} × 201)", accepted as f64 / window);
    println!("    requests             {:>8.0} /s  (by status: {statuses:?})", requests as f64 / window);
    println!(
        "    client-side latency  p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        percentile(&lat, 1.0)
    );
    report_server("booking", &before, &after);
    report_cpu(&cpu0, &cpu1, window);

    // Read every machine's bookings back and check that none overlap.
    let mut stored = 0u64;
    let mut overlaps = 0u64;
    for m in 0..cfg.book_machines {
        let machine = format!("b{m:02}");
        let mut seen = std::collections::HashSet::new();
        let mut held: Vec<(DateTime<Utc>, DateTime<Utc>)> = Vec::new();
        let mut cursor = origin - chrono::Duration::minutes(1);
        loop {
            let query =
                format!("{path}?equipment_id={machine}&limit=1000&from={}", cursor.to_rfc3339().replace('+', "%2B"));
            let (status, page) = api.get(&query, root).await;
            assert_eq!(status, 200, "{page}");
            let page = page.as_array().cloned().unwrap_or_default();
            let mut fresh = 0;
            for r in &page {
                let id = r["id"].as_str().unwrap_or_default().to_string();
                let start: DateTime<Utc> = r["start"].as_str().and_then(|s| s.parse().ok()).expect("start");
                cursor = cursor.max(start);
                if !seen.insert(id) {
                    continue;
                }
                fresh += 1;
                if r["status"] == "confirmed" || r["status"] == "checked_in" {
                    let end: DateTime<Utc> = r["end"].as_str().and_then(|s| s.parse().ok()).expect("end");
                    held.push((start, end));
                }
            }
            if page.len() < 1000 || fresh == 0 {
                break;
            }
        }
        held.sort();
        stored += held.len() as u64;
        // Sorted by start: any overlap shows as a start before the latest end so far.
        let mut latest: Option<DateTime<Utc>> = None;
        for (start, end) in &held {
            if latest.is_some_and(|l| *start < l) {
                overlaps += 1;
            }
            latest = Some(latest.map_or(*end, |l| l.max(*end)));
        }
    }
    println!("    stored bookings      {stored} (201 answers: {accepted})");
    println!("    overlaps: {overlaps}");
    assert_eq!(overlaps, 0, "overlapping bookings stored");
    assert_eq!(stored, accepted, "every 201 is a stored booking and nothing else is");
}

/// One makrcave on one database: the kiosk and the bookings.
async fn run(label: &str, database_url: String, cfg: Config) {
    let data = tempfile::tempdir().expect("data dir");
    let mut settings = Settings::defaults();
    settings.http = "127.0.0.1:0".parse().expect("addr");
    settings.mqtt_listen = "127.0.0.1:0".parse().expect("addr");
    settings.mqtt_broker = None;
    settings.data_dir = data.path().to_path_buf();
    settings.database_url = if database_url.is_empty() {
        format!("sqlite://{}", data.path().join("bench.db").display())
    } else {
        database_url
    };
    settings.jwt_secret = Some(makrcave::config::Secret::new("benchmark-secret-0123456789"));
    settings.heartbeat_timeout_s = 3600;
    settings.log = "warn".into();
    let app = Application::build(settings).await.expect("makrcave starts");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !app.state().mqtt.is_connected() {
        assert!(Instant::now() < deadline, "makrcave's MQTT link did not connect");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let base = format!("http://{}", app.http_addr());
    let mqtt = app.mqtt_addr();
    // The bench's machines publish with makrcave's own MQTT account.
    let mqtt_password = app.state().settings.mqtt_service_password().expect("MQTT password").expose().to_string();
    let auth = &app.state().auth;
    let hours = chrono::Duration::hours(2);
    let root = auth.mint("bench", &[Role::SuperAdmin], &[], hours);
    let admin = auth.mint("boss", &[Role::MakerspaceAdmin], &[KIOSK_SPACE.to_string()], hours);
    let tokens: Vec<String> = (0..cfg.book_clients)
        .map(|i| auth.mint(&format!("booker{i:02}"), &[Role::Member], &[BOOK_SPACE.to_string()], hours))
        .collect();
    let label = label.to_string();
    // The load runs on its own runtime and threads, apart from makrcave's.
    let load = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("bench-load")
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let http = reqwest::Client::builder().pool_max_idle_per_host(128).build().expect("http client");
            let api = Arc::new(Api { http, base });
            if cfg.kiosk {
                println!("makrcave kiosk decisions, {label}, embedded MQTT broker:");
                kiosk_bench(api.clone(), (mqtt, mqtt_password), &root, &admin, cfg).await;
            }
            if cfg.bookings {
                println!("makrcave bookings, {label}:");
                bookings_bench(api, &root, tokens, cfg).await;
            }
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
}

fn main() {
    let parts = std::env::var("BENCH_PARTS").unwrap_or_else(|_| "kiosk,bookings".into());
    let cfg = Config {
        seconds: env_or("BENCH_SECONDS", 10),
        kiosk_rate: env_or("BENCH_KIOSK_RATE", 500),
        kiosk_clients: env_or("BENCH_KIOSK_CLIENTS", 16) as usize,
        flat_clients: env_or("BENCH_FLAT_CLIENTS", 32) as usize,
        members: env_or("BENCH_MEMBERS", 1000) as usize,
        kiosk_machines: env_or("BENCH_KIOSK_MACHINES", 200) as usize,
        book_clients: env_or("BENCH_BOOK_CLIENTS", 50) as usize,
        book_machines: env_or("BENCH_BOOK_MACHINES", 50) as usize,
        kiosk: parts.split(',').any(|p| p.trim() == "kiosk"),
        bookings: parts.split(',').any(|p| p.trim() == "bookings"),
    };
    let pg_admin = std::env::var("BENCH_PG_URL").ok().filter(|u| !u.is_empty());
    actix_web::rt::System::new().block_on(async move {
        run("SQLite", String::new(), cfg).await;
        match pg_admin {
            None => println!("PostgreSQL: skipped (BENCH_PG_URL is unset; scripts/bench sets it)"),
            Some(admin) => {
                let name = format!("bench_{}", uuid::Uuid::new_v4().simple());
                let mut conn = sqlx::PgConnection::connect(&admin).await.expect("connect to BENCH_PG_URL");
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut conn)
                    .await
                    .expect("create the bench database");
                let mut url = url::Url::parse(&admin).expect("BENCH_PG_URL is a URL");
                url.set_path(&name);
                run("PostgreSQL", url.to_string(), cfg).await;
            }
        }
    });
}
