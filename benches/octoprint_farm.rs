//! OctoPrint farm: BENCH_PRINTERS real OctoPrint servers (10 by default), each with its virtual
//! printer, followed by one makrcave (`makrcave serve` as a child process, release build) as
//! `{"kind":"octoprint","url","api_key","auto_connect":true}` machines, with one dashboard
//! subscribed to the farm over WebSocket.
//!
//! Five windows of BENCH_SECONDS (60) each measure makrcave's CPU time and resident memory:
//! 1. baseline: the printers are up and connected, makrcave has no machine;
//! 2. idle: makrcave follows the first half of the printers, none prints (OctoPrint still sends
//!    `current` twice a second, each the same as the one before in all that makrcave shows);
//! 3. half printing: those printers print a long G-code file (moves at 20 mm/s, no `M220`: the
//!    virtual printer runs a move in a tenth of its real time, so a line takes ~0.2 s and the
//!    progress, file position and temperatures change at a printer's pace; the file lasts ~30
//!    minutes);
//! 4. all printing: makrcave follows the second half too, and it prints as well;
//! 5. the same again: what grows with time alone (drift), not with the printers.
//!
//! Per printer = (window − baseline) / printers followed, and, for what one more printer costs
//! once makrcave follows some, (all printing − half printing) / second half. Before the
//! baseline, the requests that add a machine are made and undone a few times, so that what
//! they cost once (route caches per worker thread) falls outside the windows.
//!
//! Beside makrcave, a tap client per printer (logged in the way makrcave is) reads the same push
//! socket and records each `current` frame's arrival and what makrcave would show of it; it
//! connected before makrcave, so OctoPrint writes each frame to it first. Each dashboard message
//! is matched to the first tap frame showing the same (state, file, progress, remaining time,
//! temperatures): the difference of the arrival times is what makrcave adds, plus OctoPrint's
//! own delay between writing a frame to two sockets, which a second tap, connected after
//! makrcave, measures as a control.
//!
//! Run with `scripts/bench octoprint_farm` (it makes OctoPrint's virtualenv).
//! `MAKRCAVE_TEST_OCTOPRINT` names the `octoprint` program.

#[allow(dead_code)]
#[path = "../tests/integration/octoprint_server.rs"]
mod octoprint_server;
#[allow(dead_code)]
#[path = "../tests/integration/spawn.rs"]
mod spawn;

mod farm;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use farm::{env_or, measure, micros_between, per_printer, row, spread, Makrcave};
use futures_util::{SinkExt, StreamExt};
use makrcave::protocols::octoprint::rest::{base_url, socket_url, Api};
use octoprint_server::OctoPrint;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

const FILE: &str = "farm.gcode";
/// OctoPrints started at once: each start is a Python process importing OctoPrint, and these
/// share two cores.
const STARTING_AT_ONCE: usize = 3;

/// A long print: 10,000 moves of 40 mm at 20 mm/s (2 s each on a real printer, 0.2 s on the
/// virtual one), heaters set without waiting so that the temperatures climb while it prints.
fn gcode() -> String {
    let mut text = String::from("; makrcave octoprint_farm bench\nM104 S210\nM140 S60\nG28\nG90\nM82\nG92 E0\n");
    let mut e = 0.0;
    for i in 0..10_000 {
        e += 1.2;
        let x = if i % 2 == 0 { 60 } else { 20 };
        text.push_str(&format!("G1 X{x} Y{} E{e:.2} F1200\n", 20 + (i / 2) % 100));
    }
    text
}

/// The state as makrcave names it, from OctoPrint's flags (what `push::machine_state` does,
/// written again here so that the bench does not check makrcave against itself).
fn state_of(flags: &Value) -> &'static str {
    let f = |name: &str| flags[name].as_bool().unwrap_or(false);
    if f("error") {
        "error"
    } else if f("closedOrError") {
        "offline"
    } else if f("paused") || f("pausing") {
        "paused"
    } else if f("printing") || f("resuming") || f("cancelling") || f("finishing") {
        "running"
    } else if f("operational") {
        "idle"
    } else {
        "error"
    }
}

fn number(v: &Value, digits: usize) -> String {
    v.as_f64().map_or("-".into(), |n| format!("{n:.digits$}"))
}

/// What a dashboard shows of a machine: state, file, progress, remaining time, temperatures.
fn shown(state: &str, file: &Value, progress: &Value, remaining: &Value, temps: &[Value; 5]) -> String {
    let t: Vec<String> = temps.iter().map(|v| number(v, 2)).collect();
    format!("{state}|{}|{}|{}|{}", file.as_str().unwrap_or(""), number(progress, 6), number(remaining, 0), t.join(","))
}

/// The same from a dashboard's `machine` message.
fn shown_by_makrcave(machine: &Value) -> String {
    let job = &machine["job"];
    let t = &machine["temps"];
    let temps = ["nozzle", "nozzle_target", "bed", "bed_target", "chamber"].map(|k| t[k].clone());
    shown(machine["state"].as_str().unwrap_or(""), &job["file"], &job["progress"], &job["remaining_s"], &temps)
}

/// A tap's reading of the frames: the temperatures come only in some frames, and are kept.
#[derive(Default)]
struct Reader {
    temps: [Value; 5],
    last: Option<String>,
}

impl Reader {
    /// What the frame shows, and whether that differs from the frame before.
    fn read(&mut self, current: &Value) -> (String, bool) {
        if let Some(reading) = current["temps"].as_array().and_then(|t| t.last()) {
            let fields =
                [("tool0", "actual"), ("tool0", "target"), ("bed", "actual"), ("bed", "target"), ("chamber", "actual")];
            for (slot, (heater, field)) in self.temps.iter_mut().zip(fields) {
                if reading[heater][field].is_number() {
                    *slot = reading[heater][field].clone();
                }
            }
        }
        let state = state_of(&current["state"]["flags"]);
        let printing = matches!(state, "running" | "paused");
        let job = |v: &Value| if printing { v.clone() } else { Value::Null };
        let progress =
            current["progress"]["completion"].as_f64().map(|c| json!(c.clamp(0.0, 100.0))).unwrap_or_default();
        let remaining = current["progress"]["printTimeLeft"].as_f64().map(|s| json!(s.round())).unwrap_or_default();
        let text = shown(state, &job(&current["job"]["file"]["name"]), &job(&progress), &job(&remaining), &self.temps);
        let changed = self.last.as_ref() != Some(&text);
        self.last = Some(text.clone());
        (text, changed)
    }
}

/// One `current` frame as a tap received it.
struct Frame {
    at: Instant,
    shown: String,
    changed: bool,
}

type Frames = Arc<Mutex<Vec<Frame>>>;

/// Connects a tap to `printer`'s push socket as makrcave does (passive login, `auth`, the same
/// subscription) and records its `current` frames from then on.
async fn tap(printer: &OctoPrint) -> Frames {
    let api = Api::new(reqwest::Client::new(), base_url(&printer.url()).expect("url"), printer.api_key.clone());
    let auth = api.login().await.expect("passive login");
    let (mut socket, _) = tokio_tungstenite::connect_async(socket_url(api.base()).as_str()).await.expect("push socket");
    for hello in [
        json!({"auth": auth}),
        json!({"subscribe": {"state": {"logs": false, "messages": false}, "events": true, "plugins": false}}),
    ] {
        socket.send(Message::text(hello.to_string())).await.expect("hello");
    }
    let frames = Frames::default();
    let f = frames.clone();
    tokio::spawn(async move {
        let mut reader = Reader::default();
        while let Some(Ok(message)) = socket.next().await {
            let at = Instant::now();
            let Message::Text(text) = message else { continue };
            let Ok(frame) = serde_json::from_str::<Value>(&text) else { continue };
            if let Some(current) = frame.get("current") {
                let (shown, changed) = reader.read(current);
                f.lock().expect("lock").push(Frame { at, shown, changed });
            }
        }
    });
    frames
}

/// Connects the printer, uploads the file (OctoPrint analyses it now, not during a window)
/// and waits for the analysis.
async fn prepare(printer: &OctoPrint, gcode: &str) {
    let api = Api::new(reqwest::Client::new(), base_url(&printer.url()).expect("url"), printer.api_key.clone());
    api.connect_printer().await.expect("connect the virtual printer");
    let deadline = Instant::now() + Duration::from_secs(60);
    while printer.printer_state().await.as_deref() != Some("Operational") {
        assert!(Instant::now() < deadline, "the virtual printer did not connect: {}", printer.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let boundary = "makrcave-bench-boundary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{FILE}\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(gcode.as_bytes());
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{}/api/files/local", printer.url()))
        .header("X-Api-Key", &printer.api_key)
        .header("Content-Type", format!("multipart/form-data; boundary={boundary}"))
        .body(body)
        .send()
        .await
        .expect("upload");
    assert_eq!(r.status().as_u16(), 201, "upload: {}", r.text().await.unwrap_or_default());
    let deadline = Instant::now() + Duration::from_secs(300);
    while printer.get(&format!("/api/files/local/{FILE}")).await.1.get("gcodeAnalysis").is_none() {
        assert!(Instant::now() < deadline, "OctoPrint did not analyse the file: {}", printer.log());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn start_printing(printer: &OctoPrint) {
    let r = reqwest::Client::new()
        .post(format!("{}/api/files/local/{FILE}", printer.url()))
        .header("X-Api-Key", &printer.api_key)
        .json(&json!({"command": "select", "print": true}))
        .send()
        .await
        .expect("select and print");
    assert_eq!(r.status().as_u16(), 204, "print: {}", r.text().await.unwrap_or_default());
}

/// Frames, frames that changed what makrcave shows, and dashboard messages, over a window.
struct Counts {
    frames: u64,
    changed: u64,
    messages: u64,
}

fn counts(taps: &[Frames], ids: &[String], feed: &farm::Feed, from: Instant, to: Instant) -> Counts {
    let messages = feed.counts(from, to);
    let mut c =
        Counts { frames: 0, changed: 0, messages: ids.iter().map(|id| messages.get(id).copied().unwrap_or(0)).sum() };
    for tap in taps {
        for f in tap.lock().expect("lock").iter().filter(|f| f.at >= from && f.at < to) {
            c.frames += 1;
            c.changed += u64::from(f.changed);
        }
    }
    c
}

/// Signed delays (µs) of `later`'s arrivals after the first tap frame showing the same, over
/// `[from, to)`; and how many found no such frame.
fn delays(first: &Frames, later: impl Iterator<Item = (Instant, String)>) -> (Vec<i64>, u64) {
    let mut at: HashMap<String, Instant> = HashMap::new();
    for f in first.lock().expect("lock").iter() {
        at.entry(f.shown.clone()).or_insert(f.at);
    }
    let (mut found, mut missing) = (Vec::new(), 0);
    for (arrived, shown) in later {
        match at.get(&shown) {
            Some(tapped) => found.push(micros_between(*tapped, arrived)),
            None => missing += 1,
        }
    }
    (found, missing)
}

async fn run(n: usize, window: Duration) {
    let gcode = gcode();
    println!("starting {n} OctoPrint servers ({STARTING_AT_ONCE} at a time)");
    let started = Instant::now();
    let gate = Arc::new(tokio::sync::Semaphore::new(STARTING_AT_ONCE));
    let mut starting = Vec::new();
    for _ in 0..n {
        let gate = gate.clone();
        let gcode = gcode.clone();
        starting.push(tokio::spawn(async move {
            let _turn = gate.acquire().await.expect("semaphore");
            let printer = OctoPrint::start().await;
            prepare(&printer, &gcode).await;
            printer
        }));
    }
    let mut printers = Vec::new();
    for s in starting {
        printers.push(s.await.expect("an OctoPrint started"));
    }
    println!("  {n} printers up, connected and with the file analysed in {:.0} s", started.elapsed().as_secs_f64());
    let mut first_taps = Vec::new();
    for p in &printers {
        first_taps.push(tap(p).await);
    }

    let makrcave = Makrcave::start().await;
    let feed = makrcave.watch().await;
    makrcave.warm_up().await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    println!("  measuring: baseline");
    let baseline = measure(makrcave.pid(), window).await;

    // The farm is followed in two halves: what the second half adds, once makrcave already
    // follows printers, is what one more printer costs (the first half also pays what is paid
    // once: the OctoPrint path's code paged in, an allocator arena, deeper stacks).
    let ids: Vec<String> = (0..n).map(|i| format!("octo{i:02}")).collect();
    let half = n / 2;
    let follow = |range: std::ops::Range<usize>| {
        let (makrcave, feed, ids, printers) = (&makrcave, &feed, &ids, &printers);
        async move {
            for i in range.clone() {
                let p = &printers[i];
                let connection =
                    json!({"kind": "octoprint", "url": p.url(), "api_key": p.api_key, "auto_connect": true});
                makrcave.machine(&ids[i], connection).await;
            }
            feed.wait_all(&ids[range.clone()], "idle", Duration::from_secs(60), |m| m["state"] == "idle").await;
            let mut second_taps = Vec::new();
            for p in &printers[range] {
                second_taps.push(tap(p).await);
            }
            second_taps
        }
    };
    let print = |range: std::ops::Range<usize>| {
        let (feed, ids, printers) = (&feed, &ids, &printers);
        async move {
            for p in &printers[range.clone()] {
                start_printing(p).await;
            }
            feed.wait_all(&ids[range], "printing", Duration::from_secs(60), |m| {
                m["state"] == "running" && m["job"]["progress"].is_number()
            })
            .await;
            tokio::time::sleep(Duration::from_secs(10)).await;
        }
    };

    let mut second_taps = follow(0..half).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let t0 = Instant::now();
    println!("  measuring: {half} idle printers");
    let idle = measure(makrcave.pid(), window).await;
    let idle_counts = counts(&first_taps[..half], &ids[..half], &feed, t0, Instant::now());

    print(0..half).await;
    println!("  measuring: {half} printing printers");
    let half_printing = measure(makrcave.pid(), window).await;

    second_taps.extend(follow(half..n).await);
    print(half..n).await;
    let t0 = Instant::now();
    println!("  measuring: {n} printing printers");
    let printing = measure(makrcave.pid(), window).await;
    let t1 = Instant::now();
    let printing_counts = counts(&first_taps, &ids, &feed, t0, t1);
    let (mut latency, mut unmatched) = (Vec::new(), 0);
    let (mut skew, mut skew_unmatched) = (Vec::new(), 0);
    for (i, id) in ids.iter().enumerate() {
        let messages: Vec<(Instant, String)> = feed
            .seen
            .lock()
            .expect("lock")
            .iter()
            .filter(|s| &s.equipment_id == id && s.at >= t0 && s.at < t1)
            .map(|s| (s.at, shown_by_makrcave(&s.machine)))
            .collect();
        let (found, missing) = delays(&first_taps[i], messages.into_iter());
        latency.extend(found);
        unmatched += missing;
        let control: Vec<(Instant, String)> = second_taps[i]
            .lock()
            .expect("lock")
            .iter()
            .filter(|f| f.at >= t0 && f.at < t1)
            .map(|f| (f.at, f.shown.clone()))
            .collect();
        let (found, missing) = delays(&first_taps[i], control.into_iter());
        skew.extend(found);
        skew_unmatched += missing;
    }
    latency.sort_unstable();
    skew.sort_unstable();
    // The same farm once more: what grows with time alone (caches, the database) and not with
    // the printers shows here, and is not a printer's.
    println!("  measuring: {n} printing printers, again");
    let again = measure(makrcave.pid(), window).await;

    let (idle_mib, idle_anon, idle_core) = per_printer(&idle, &baseline, half);
    let (print_mib, print_anon, print_core) = per_printer(&printing, &baseline, n);
    let (more_mib, more_anon, more_core) = per_printer(&printing, &half_printing, n - half);
    let (drift_mib, drift_anon, drift_core) = per_printer(&again, &printing, 1);
    println!("makrcave OctoPrint farm: {n} OctoPrint 1.11.8 servers with virtual printers, makrcave serve (release, SQLite), 1 dashboard; load {}", farm::load());
    println!("{}", row("baseline (no machines)", &baseline));
    println!("{}", row(&format!("following {half} idle printers"), &idle));
    println!("{}", row(&format!("following {half} printing printers"), &half_printing));
    println!("{}", row(&format!("following {n} printing printers"), &printing));
    println!("{}", row(&format!("the same {n}, one window later"), &again));
    println!(
        "  per idle printer (first {half}):       RSS {idle_mib:.3} MiB (anonymous {idle_anon:.3} MiB), {idle_core:.4} % of a core"
    );
    println!(
        "  per printing printer, all {n}:        RSS {print_mib:.3} MiB (anonymous {print_anon:.3} MiB), {print_core:.4} % of a core"
    );
    println!(
        "  per printing printer, the last {}:  RSS {more_mib:.3} MiB (anonymous {more_anon:.3} MiB), {more_core:.4} % of a core   (targets: ≤ 0.1 MiB, ≤ 0.05 %)",
        n - half
    );
    // What the CPU goes on: thread wake-ups. What one costs, at the margin: the CPU the last
    // printers added over the wake-ups they added.
    let more_wake_ups = (printing.wake_ups - half_printing.wake_ups) / (n - half) as f64;
    let cpu_per_wake_up =
        (printing.cores - half_printing.cores) / (printing.wake_ups - half_printing.wake_ups).max(1.0);
    println!(
        "  wake-ups per printing printer, the last {}: {more_wake_ups:.1}/s for its 2 frames/s; {:.0} µs of CPU per wake-up",
        n - half,
        cpu_per_wake_up * 1e6
    );
    for line in farm::per_printer_by_thread(&printing, &half_printing, n - half) {
        println!("    by thread, per printing printer (the last {}): {line}", n - half);
    }
    for line in farm::per_printer_by_thread(&idle, &baseline, half) {
        println!("    by thread, per idle printer (the first {half}): {line}");
    }
    println!(
        "  drift over one window with nothing changed: RSS {drift_mib:+.3} MiB (anonymous {drift_anon:+.3} MiB), {drift_core:+.4} % of a core"
    );
    for (name, c) in [(format!("idle ({half})"), &idle_counts), (format!("printing ({n})"), &printing_counts)] {
        println!(
            "  {name}: {} current frames, {} of them changed what makrcave shows, {} dashboard messages",
            c.frames, c.changed, c.messages
        );
    }
    println!(
        "  push frame to dashboard: {}, {unmatched} unmatched)   (targets: p50 ≤ 5 ms, p99 ≤ 20 ms)",
        spread(&latency)
    );
    println!(
        "  control, OctoPrint's own delay between two sockets (second tap − first tap): {}, {skew_unmatched} unmatched)",
        spread(&skew)
    );
    drop(makrcave);
    drop(printers);
}

fn main() {
    let n = env_or("BENCH_PRINTERS", 10) as usize;
    let window = Duration::from_secs(env_or("BENCH_SECONDS", 60));
    // Starting an OctoPrint blocks a thread while `octoprint user add` runs.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2 + STARTING_AT_ONCE)
        .enable_all()
        .build()
        .expect("rt");
    rt.block_on(run(n, window));
}
