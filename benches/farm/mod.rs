//! What the farm benches share: makrcave as a child process (`makrcave serve`, release build),
//! so that its resident memory and CPU time are its own and not the printers' or the load's;
//! its REST API; a dashboard's WebSocket that records every `machine` message with its arrival
//! time; and the figures read from `/proc`.

use std::collections::{BTreeMap, HashMap};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use makrcave::config::Secret;
use makrcave::domain::access::Role;
use makrcave::web::auth::JwtKeys;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

use crate::spawn::free_port;

const SECRET: &str = "farm-benchmark-secret-0123456789";
/// The makerspace every farm machine belongs to.
pub const SPACE: &str = "farm";

pub fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// `makrcave serve` on free ports with a fresh SQLite data folder, killed on drop.
pub struct Makrcave {
    child: Child,
    pub base: String,
    pub token: String,
    http: reqwest::Client,
    data: tempfile::TempDir,
}

/// The body that adds the 3D printer `id` with `connection`.
fn machine_body(id: &str, connection: Value) -> Value {
    serde_json::json!({"id": id, "name": id, "type": "3d_printer", "connection": connection})
}

impl Makrcave {
    pub async fn start() -> Makrcave {
        makrcave::install_crypto_provider();
        let data = tempfile::tempdir().expect("data dir");
        let (http_port, mqtt_port) = (free_port(), free_port());
        let log = std::fs::File::create(data.path().join("makrcave.log")).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_makrcave"))
            .arg("serve")
            .args(["--http", &format!("127.0.0.1:{http_port}"), "--mqtt-listen", &format!("127.0.0.1:{mqtt_port}")])
            .arg("--data-dir")
            .arg(data.path().join("data"))
            .args(["--log", "warn,rumqttd=off"])
            .env("MAKRCAVE_JWT_SECRET", SECRET)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start makrcave serve");
        let token =
            JwtKeys::hs256(&Secret::new(SECRET)).mint("bench", &[Role::SuperAdmin], &[], chrono::Duration::hours(6));
        let mut server = Makrcave {
            child,
            base: format!("http://127.0.0.1:{http_port}"),
            token,
            http: reqwest::Client::new(),
            data,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = server.http.get(format!("{}/healthz", server.base)).send().await {
                if r.status() == 200 {
                    break;
                }
            }
            if let Ok(Some(exit)) = server.child.try_wait() {
                panic!("makrcave exited ({exit}): {}", server.log());
            }
            assert!(Instant::now() < deadline, "makrcave did not become healthy: {}", server.log());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (status, body) = server.post("/api/v1/makerspaces", serde_json::json!({"id": SPACE, "name": "Farm"})).await;
        assert_eq!(status, 201, "create the makerspace: {body}");
        server
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The end of makrcave's log, for failure messages.
    pub fn log(&self) -> String {
        let text = std::fs::read_to_string(self.data.path().join("makrcave.log")).unwrap_or_default();
        text.lines().rev().take(30).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self.http.post(format!("{}{path}", self.base)).bearer_auth(&self.token).json(&body).send().await;
        let r = r.expect("makrcave answers");
        (r.status().as_u16(), r.json().await.unwrap_or_default())
    }

    /// Adds the machine `id` to the farm with `connection`.
    pub async fn machine(&self, id: &str, connection: Value) {
        let (status, body) =
            self.post(&format!("/api/v1/makerspaces/{SPACE}/equipment"), machine_body(id, connection)).await;
        assert_eq!(status, 201, "create machine {id}: {body}");
    }

    /// Sends the requests that add a machine, over fresh connections, before anything is
    /// measured: actix-web matches a path against its routes' regexes, and each regex keeps a
    /// matching cache per worker thread, made on first use (about 160 KiB per worker for the
    /// routes tried before `/equipment`). Without this, the first machines added in a window
    /// would be charged for it (a heap profile of a window showed it as most of the growth).
    pub async fn warm_up(&self) {
        for i in 0..8 {
            let http = reqwest::Client::new();
            let id = format!("warm{i}");
            let r = http
                .post(format!("{}/api/v1/makerspaces/{SPACE}/equipment", self.base))
                .bearer_auth(&self.token)
                .json(&machine_body(&id, serde_json::json!({"kind": "mqtt"})))
                .send()
                .await
                .expect("makrcave answers");
            assert_eq!(r.status().as_u16(), 201, "create {id}");
            let r = http
                .delete(format!("{}/api/v1/makerspaces/{SPACE}/equipment/{id}", self.base))
                .bearer_auth(&self.token)
                .send()
                .await
                .expect("makrcave answers");
            assert!(r.status().is_success(), "delete {id}: {}", r.status());
        }
    }

    /// A dashboard subscribed to the farm.
    pub async fn watch(&self) -> Feed {
        let url = format!("{}/api/v1/ws?token={}", self.base.replace("http://", "ws://"), self.token);
        let (mut ws, _) = tokio_tungstenite::connect_async(url).await.expect("WebSocket connects");
        let subscribe = serde_json::json!({"type": "subscribe", "makerspace_id": SPACE});
        ws.send(Message::text(subscribe.to_string())).await.expect("subscribe");
        let feed = Feed::default();
        let f = feed.clone();
        tokio::spawn(async move {
            while let Some(Ok(message)) = ws.next().await {
                let at = Instant::now();
                let Message::Text(text) = message else { continue };
                let Ok(mut message) = serde_json::from_str::<Value>(&text) else { continue };
                match message["type"].as_str() {
                    Some("machine") => {
                        let machine = message["machine"].take();
                        let id = machine["equipment_id"].as_str().unwrap_or_default().to_string();
                        f.latest.lock().expect("lock").insert(id.clone(), machine.clone());
                        f.seen.lock().expect("lock").push(Seen { at, equipment_id: id, machine });
                    }
                    Some("snapshot") => {
                        let mut latest = f.latest.lock().expect("lock");
                        for machine in message["machines"].as_array().into_iter().flatten() {
                            latest.insert(machine["equipment_id"].as_str().unwrap_or_default().into(), machine.clone());
                        }
                    }
                    _ => {}
                }
            }
        });
        feed
    }
}

impl Drop for Makrcave {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One `machine` message as the dashboard received it.
pub struct Seen {
    pub at: Instant,
    pub equipment_id: String,
    pub machine: Value,
}

/// What the dashboard has received: every `machine` message, and each machine's last view.
#[derive(Clone, Default)]
pub struct Feed {
    pub seen: Arc<Mutex<Vec<Seen>>>,
    pub latest: Arc<Mutex<HashMap<String, Value>>>,
}

impl Feed {
    /// Waits until `check` holds for the last view of every machine in `ids`.
    pub async fn wait_all(&self, ids: &[String], what: &str, timeout: Duration, check: impl Fn(&Value) -> bool) {
        let deadline = Instant::now() + timeout;
        loop {
            let missing = {
                let latest = self.latest.lock().expect("lock");
                ids.iter().filter(|id| !latest.get(*id).is_some_and(&check)).count()
            };
            if missing == 0 {
                return;
            }
            assert!(Instant::now() < deadline, "{what}: {missing} of {} machines still not there", ids.len());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The messages received in `[from, to)`, by machine.
    pub fn counts(&self, from: Instant, to: Instant) -> HashMap<String, u64> {
        let mut counts = HashMap::new();
        for s in self.seen.lock().expect("lock").iter().filter(|s| s.at >= from && s.at < to) {
            *counts.entry(s.equipment_id.clone()).or_insert(0) += 1;
        }
        counts
    }
}

fn clock_ticks() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        let out = Command::new("getconf").arg("CLK_TCK").output().expect("getconf CLK_TCK");
        String::from_utf8_lossy(&out.stdout).trim().parse().expect("a number of ticks")
    })
}

/// A process's CPU time so far (user + system, all its threads, dead ones included).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("the process is alive");
    // Fields after the command name (which may hold spaces): state is the first, utime the 12th.
    let fields: Vec<&str> = stat[stat.rfind(')').expect("stat format") + 2..].split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    ticks as f64 / clock_ticks()
}

/// A process's resident memory in KiB: all of it, and its anonymous part (heap and stacks,
/// without the pages of the program's file, which grow once as code is first run).
fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the process is alive");
    let field = |name: &str| {
        let line = status.lines().find(|l| l.starts_with(name)).expect("a field of /proc/PID/status");
        line.split_whitespace().nth(1).and_then(|v| v.parse::<u64>().ok()).expect("a size in kB")
    };
    (field("VmRSS:"), field("RssAnon:"))
}

/// Per thread name (threads of one pool share a name): how many times they were woken after
/// waiting (voluntary context switches) and their CPU time in nanoseconds (the scheduler's own
/// count, `schedstat`), summed over the threads alive now.
fn threads(pid: u32) -> BTreeMap<String, (u64, u64)> {
    let mut by_name = BTreeMap::new();
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("the process is alive");
    for task in tasks.filter_map(Result::ok) {
        let read = |file: &str| std::fs::read_to_string(task.path().join(file)).ok();
        let (Some(name), Some(status), Some(schedstat)) = (read("comm"), read("status"), read("schedstat")) else {
            continue; // the thread ended meanwhile
        };
        let woken = status
            .lines()
            .find(|l| l.starts_with("voluntary_ctxt_switches:"))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .unwrap_or(0);
        let cpu_ns = schedstat.split_whitespace().next().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        let entry = by_name.entry(name.trim().to_string()).or_insert((0, 0));
        entry.0 += woken;
        entry.1 += cpu_ns;
    }
    by_name
}

/// The whole machine's busy and total CPU time so far (jiffies of `/proc/stat`).
fn machine_cpu() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").expect("/proc/stat");
    let values: Vec<u64> =
        stat.lines().next().expect("cpu line").split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
    let idle = values[3] + values.get(4).copied().unwrap_or(0);
    (values.iter().sum::<u64>() - idle, values.iter().sum())
}

/// What makrcave used over a measured window.
#[derive(Debug, Clone)]
pub struct Usage {
    /// Its CPU time over the window's wall time: cores (1.0 = one core all the time).
    pub cores: f64,
    /// Its resident memory, mean of one sample a second, in MiB.
    pub rss_mib: f64,
    /// The anonymous part of it (heap, stacks), the same way.
    pub anon_mib: f64,
    /// The whole machine's busy cores over the window (everything, makrcave included).
    pub machine_busy: f64,
    /// makrcave's thread wake-ups a second.
    pub wake_ups: f64,
    /// Per thread name: wake-ups a second and cores.
    pub by_thread: Vec<(String, f64, f64)>,
    pub seconds: f64,
}

/// Measures makrcave (`pid`) for `window`.
pub async fn measure(pid: u32, window: Duration) -> Usage {
    let (busy0, total0) = machine_cpu();
    let cpu0 = cpu_seconds(pid);
    let threads0 = threads(pid);
    let start = Instant::now();
    let mut rss = Vec::new();
    while start.elapsed() < window {
        rss.push(rss_kib(pid));
        tokio::time::sleep(Duration::from_secs(1).min(window.saturating_sub(start.elapsed()))).await;
    }
    let seconds = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid) - cpu0;
    let by_thread: Vec<(String, f64, f64)> = threads(pid)
        .into_iter()
        .map(|(name, (woken, cpu_ns))| {
            let (woken0, cpu0_ns) = threads0.get(&name).copied().unwrap_or((0, 0));
            (name, woken.saturating_sub(woken0) as f64 / seconds, cpu_ns.saturating_sub(cpu0_ns) as f64 / 1e9 / seconds)
        })
        .collect();
    let (busy1, total1) = machine_cpu();
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) as f64;
    let mean =
        |part: fn(&(u64, u64)) -> u64| rss.iter().map(part).sum::<u64>() as f64 / rss.len().max(1) as f64 / 1024.0;
    Usage {
        cores: cpu / seconds,
        rss_mib: mean(|r| r.0),
        anon_mib: mean(|r| r.1),
        machine_busy: (busy1 - busy0) as f64 / (total1 - total0).max(1) as f64 * cores,
        wake_ups: by_thread.iter().map(|t| t.1).sum(),
        by_thread,
        seconds,
    }
}

/// Per printer, `(loaded - baseline) / n`: MiB of resident memory, of it anonymous, and % of
/// one core.
pub fn per_printer(loaded: &Usage, baseline: &Usage, n: usize) -> (f64, f64, f64) {
    let n = n as f64;
    (
        (loaded.rss_mib - baseline.rss_mib) / n,
        (loaded.anon_mib - baseline.anon_mib) / n,
        (loaded.cores - baseline.cores) / n * 100.0,
    )
}

/// Per thread name, what `loaded` adds over `before` per printer: wake-ups a second and µs of
/// CPU a second (the names whose wake-ups changed by at least 0.05 a printer).
pub fn per_printer_by_thread(loaded: &Usage, before: &Usage, n: usize) -> Vec<String> {
    let n = n as f64;
    loaded
        .by_thread
        .iter()
        .filter_map(|(name, woken, cores)| {
            let (woken0, cores0) =
                before.by_thread.iter().find(|t| &t.0 == name).map(|t| (t.1, t.2)).unwrap_or((0.0, 0.0));
            let (woken, cpu_us) = ((woken - woken0) / n, (cores - cores0) / n * 1e6);
            (woken.abs() >= 0.05).then(|| format!("{name}: {woken:+.2} wake-ups/s, {cpu_us:+.0} µs/s"))
        })
        .collect()
}

/// A window's line: makrcave's CPU and memory, and how busy the machine was.
pub fn row(name: &str, u: &Usage) -> String {
    format!(
        "  {name:<36} makrcave {:>6.3} % of a core, RSS {:>6.2} MiB (anonymous {:>6.2} MiB), {:>5.0} wake-ups/s; machine busy {:.2} of 2 cores ({:.0} s)",
        u.cores * 100.0,
        u.rss_mib,
        u.anon_mib,
        u.wake_ups,
        u.machine_busy,
        u.seconds
    )
}

/// The `p` quantile of sorted microseconds, in milliseconds.
pub fn percentile_ms(sorted: &[i64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize] as f64 / 1000.0
}

/// p50, p99 and max of sorted microseconds, and how many.
pub fn spread(sorted: &[i64]) -> String {
    format!(
        "p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} matched",
        percentile_ms(sorted, 0.5),
        percentile_ms(sorted, 0.99),
        percentile_ms(sorted, 1.0),
        sorted.len()
    )
}

/// Signed microseconds from `earlier` to `later` (negative when `later` came first).
pub fn micros_between(earlier: Instant, later: Instant) -> i64 {
    if later >= earlier {
        (later - earlier).as_micros() as i64
    } else {
        -((earlier - later).as_micros() as i64)
    }
}

/// The uptime line: the load the measurement ran under.
pub fn load() -> String {
    std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim().to_string()
}
