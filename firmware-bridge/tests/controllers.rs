//! The serial controllers against simulated firmware on real pseudo-terminals: the GRBL and
//! Marlin simulators (`makrcave_bridge::sim`) play the machine, the controller opens the pty
//! by its path as it would open `/dev/ttyUSB0`, and jobs stream from real files.

use std::path::PathBuf;
use std::time::Duration;

use makrcave_bridge::controller::{
    self, ControllerConfig, ControllerError, ControllerEvent, ControllerHandle, ControllerKind, JobEvent, MachineState,
    Telemetry,
};
use makrcave_bridge::sim::grbl::{self as grbl_sim, GrblSimConfig, GrblSimEvent};
use makrcave_bridge::sim::marlin::{self as marlin_sim, MarlinSimConfig};
use tokio::sync::mpsc;

/// Generous: the machine is shared and slow; every wait ends as soon as its condition holds.
const DEADLINE: Duration = Duration::from_secs(30);

/// A controller under test and every event it sent so far.
struct Bridge {
    handle: ControllerHandle,
    events: mpsc::Receiver<ControllerEvent>,
    seen: Vec<ControllerEvent>,
}

impl Bridge {
    fn start(config: ControllerConfig) -> Self {
        let (handle, events) = controller::spawn(config);
        Bridge { handle, events, seen: Vec::new() }
    }

    /// Waits for an event that matches, keeping all events seen.
    async fn until(&mut self, what: &str, matches: impl Fn(&ControllerEvent) -> bool) -> ControllerEvent {
        if let Some(event) = self.seen.iter().find(|e| matches(e)) {
            return event.clone();
        }
        self.until_new(what, matches).await
    }

    /// Waits for a new event that matches (ignoring those seen before).
    async fn until_new(&mut self, what: &str, matches: impl Fn(&ControllerEvent) -> bool) -> ControllerEvent {
        let wait = async {
            loop {
                let event = self.events.recv().await.expect("the controller task ended");
                self.seen.push(event.clone());
                if matches(&event) {
                    return event;
                }
            }
        };
        match tokio::time::timeout(DEADLINE, wait).await {
            Ok(event) => event,
            Err(_) => panic!("no {what} within {DEADLINE:?}; events: {:#?}", self.seen),
        }
    }

    async fn job_event(&mut self, what: &str, matches: impl Fn(&JobEvent) -> bool) -> JobEvent {
        match self.until(what, |e| matches!(e, ControllerEvent::Job(job) if matches(job))).await {
            ControllerEvent::Job(job) => job,
            _ => unreachable!(),
        }
    }

    fn job_events(&self) -> Vec<JobEvent> {
        self.seen.iter().filter_map(|e| if let ControllerEvent::Job(j) = e { Some(j.clone()) } else { None }).collect()
    }

    async fn telemetry_until(&self, what: &str, ok: impl Fn(&Telemetry) -> bool) -> Telemetry {
        let mut telemetry = self.handle.telemetry();
        let found =
            tokio::time::timeout(DEADLINE, async { telemetry.wait_for(|t| ok(t)).await.map(|t| t.clone()) }).await;
        match found {
            Ok(Ok(t)) => t,
            _ => panic!("telemetry never showed {what}; last: {:?}", *self.handle.telemetry().borrow()),
        }
    }
}

/// Polls a condition on a simulator until it holds.
async fn until(what: &str, condition: impl Fn() -> bool) {
    let start = tokio::time::Instant::now();
    while !condition() {
        assert!(start.elapsed() < DEADLINE, "{what} did not happen within {DEADLINE:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A job file on disk, and the lines that must reach the machine.
struct JobFile {
    _dir: tempfile::TempDir,
    path: PathBuf,
    expected: Vec<String>,
}

fn job_file(name: &str, lines: &[(&str, Option<&str>)]) -> JobFile {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    let text: String = lines.iter().map(|(raw, _)| format!("{raw}\n")).collect();
    std::fs::write(&path, text).unwrap();
    let expected = lines.iter().filter_map(|(_, sent)| sent.map(str::to_string)).collect();
    JobFile { _dir: dir, path, expected }
}

/// A laser job: comments, blank lines and lines of very different lengths, so the
/// character counting is really exercised against the 128-byte buffer.
fn laser_job(moves: usize) -> JobFile {
    let mut lines: Vec<(String, Option<String>)> = vec![
        ("; laser job".into(), None),
        ("(header comment)".into(), None),
        ("G21 G90".into(), Some("G21 G90".into())),
        ("M4 S800 ; laser on, dynamic power".into(), Some("M4 S800".into())),
        (String::new(), None),
    ];
    for i in 0..moves {
        let line = match i % 4 {
            0 => format!("G1 X{i}.5 Y{}.25 F1200", i * 2),
            1 => format!("G1 X{i} Y{i} S{}", i % 1000),
            2 => {
                format!("G1 X{i}.123456 Y{i}.654321 Z0.000000 F3000 S{} (long line to fill the buffer fast)", i % 1000)
            }
            _ => format!("G0 X{i}"),
        };
        let sent = line.split(" (").next().unwrap().to_string();
        lines.push((line, Some(sent)));
    }
    lines.push(("M5 ; laser off".into(), Some("M5".into())));
    let borrowed: Vec<(&str, Option<&str>)> = lines.iter().map(|(r, s)| (r.as_str(), s.as_deref())).collect();
    job_file("cut.nc", &borrowed)
}

fn grbl_config(sim: &grbl_sim::GrblSim) -> ControllerConfig {
    let mut config = ControllerConfig::new(ControllerKind::Grbl, sim.path());
    config.poll_interval = Duration::from_millis(20);
    config.hold_timeout = Duration::from_secs(3);
    config
}

/// A simulated GRBL taking 5 ms a line, a controller on it, and a laser job started.
async fn grbl_job_running(moves: usize, id: &str) -> (grbl_sim::GrblSim, Bridge, JobFile) {
    let sim =
        grbl_sim::spawn(GrblSimConfig { line_delay: Duration::from_millis(5), ..GrblSimConfig::default() }).unwrap();
    let bridge = Bridge::start(grbl_config(&sim));
    ready(&bridge).await;
    let job = laser_job(moves);
    bridge.handle.start_job(id.into(), job.path.clone()).await.unwrap();
    (sim, bridge, job)
}

async fn ready(bridge: &Bridge) {
    bridge.telemetry_until("idle", |t| t.state == MachineState::Idle).await;
}

#[tokio::test]
async fn grbl_job_streams_every_line_once_in_order_without_overflowing_the_buffer() {
    let sim = grbl_sim::spawn(GrblSimConfig::default()).unwrap();
    let mut bridge = Bridge::start(grbl_config(&sim));
    bridge.until("connected", |e| *e == ControllerEvent::Connected).await;
    ready(&bridge).await;
    let job = laser_job(400);
    bridge.handle.start_job("j1".into(), job.path.clone()).await.unwrap();
    assert!(*bridge.handle.job_running().borrow());
    bridge.job_event("finished", |e| *e == JobEvent::Finished).await;

    assert_eq!(sim.executed(), job.expected);
    assert!(!sim.overflowed(), "the RX buffer overflowed");
    assert!(sim.max_rx_used() > 64, "the streamer kept the buffer busy (max {})", sim.max_rx_used());
    assert!(sim.max_rx_used() <= 128);
    let events = bridge.job_events();
    assert_eq!(events.first(), Some(&JobEvent::Started { file: "cut.nc".into() }));
    let progress: Vec<f64> = events
        .iter()
        .filter_map(|e| if let JobEvent::Progress { progress } = e { Some(*progress) } else { None })
        .collect();
    assert!(progress.len() >= 10, "progress was reported along the way: {progress:?}");
    assert!(progress.windows(2).all(|w| w[0] < w[1]), "progress only grows: {progress:?}");
    assert_eq!(progress.last(), Some(&100.0));
    assert_eq!(events.last(), Some(&JobEvent::Finished));
    bridge.telemetry_until("idle without a job", |t| t.state == MachineState::Idle && t.job.is_none()).await;
    assert!(!*bridge.handle.job_running().borrow());
}

#[tokio::test]
async fn grbl_pause_holds_the_machine_and_resume_finishes_the_job() {
    let (sim, mut bridge, job) = grbl_job_running(200, "j2").await;
    until("the job under way", || sim.executed().len() > 20).await;

    bridge.handle.pause().await.unwrap();
    bridge.job_event("paused", |e| *e == JobEvent::Paused).await;
    bridge.telemetry_until("paused", |t| t.state == MachineState::Paused).await;
    until("the feed hold reached GRBL", || sim.log().contains(&GrblSimEvent::FeedHold)).await;
    let executed = sim.executed().len();
    // Several status polls go by: time passes while the machine is held.
    let polls = sim.status_queries();
    until("five more status polls", || sim.status_queries() >= polls + 5).await;
    assert_eq!(sim.executed().len(), executed, "nothing runs during a feed hold");
    assert!(*bridge.handle.job_running().borrow());

    bridge.handle.resume().await.unwrap();
    bridge.job_event("finished", |e| *e == JobEvent::Finished).await;
    assert_eq!(sim.executed(), job.expected);
    assert!(!sim.overflowed());
    let events = bridge.job_events();
    let paused = events.iter().position(|e| *e == JobEvent::Paused).unwrap();
    let resumed = events.iter().position(|e| *e == JobEvent::Resumed).unwrap();
    assert!(paused < resumed);
}

#[tokio::test]
async fn grbl_cancel_turns_the_laser_off_before_the_reset() {
    let (sim, mut bridge, job) = grbl_job_running(300, "j3").await;
    until("the job under way", || sim.spindle_on() && sim.executed().len() > 10).await;

    bridge.handle.cancel().await.unwrap();
    bridge.job_event("cancelled", |e| *e == JobEvent::Cancelled).await;
    let log = sim.log();
    let hold = log.iter().position(|e| *e == GrblSimEvent::FeedHold).expect("a feed hold first");
    let stop = log.iter().position(|e| *e == GrblSimEvent::SpindleStop).expect("the spindle stop override");
    let reset = log.iter().position(|e| matches!(e, GrblSimEvent::Reset { .. })).expect("a soft reset");
    assert!(hold < stop && stop < reset, "hold, spindle stop, reset: {:?}", &log[hold..]);
    assert_eq!(log[reset], GrblSimEvent::Reset { spindle_on: false }, "the laser was off before the reset");
    assert!(sim.executed().len() < job.expected.len());
    assert!(!*bridge.handle.job_running().borrow());
    bridge.telemetry_until("idle again", |t| t.state == MachineState::Idle && t.job.is_none()).await;
    // The machine takes the next job.
    let next = laser_job(5);
    bridge.handle.start_job("j4".into(), next.path.clone()).await.unwrap();
    bridge.job_event("the next job finished", |e| *e == JobEvent::Finished).await;
}

#[tokio::test]
async fn grbl_reset_mid_job_fails_the_job() {
    let (sim, mut bridge, _job) = grbl_job_running(300, "j5").await;
    until("the job under way", || sim.executed().len() > 10).await;
    sim.power_cycle();
    let failed = bridge.job_event("failed", |e| matches!(e, JobEvent::Failed { .. })).await;
    assert!(matches!(&failed, JobEvent::Failed { reason } if reason.contains("reset")), "{failed:?}");
    assert!(!*bridge.handle.job_running().borrow());
}

#[tokio::test]
async fn grbl_alarm_is_reported_and_blocks_the_next_job() {
    let (sim, mut bridge, job) = grbl_job_running(300, "j6").await;
    until("the job under way", || sim.executed().len() > 10).await;
    sim.inject_alarm(1);
    let alarm = bridge.until("an alarm", |e| matches!(e, ControllerEvent::Alarm { .. })).await;
    assert_eq!(alarm, ControllerEvent::Alarm { code: "ALARM:1".into(), text: "Hard limit triggered".into() });
    assert_eq!(alarm_json(&alarm), serde_json::json!({"event":"alarm","code":"ALARM:1","text":"Hard limit triggered"}));
    bridge.job_event("failed", |e| matches!(e, JobEvent::Failed { reason } if reason.contains("ALARM:1"))).await;
    bridge.telemetry_until("error", |t| t.state == MachineState::Error).await;
    let refused = bridge.handle.start_job("j7".into(), job.path.clone()).await;
    assert!(matches!(refused, Err(ControllerError::Alarm(_))), "{refused:?}");
}

fn alarm_json(event: &ControllerEvent) -> serde_json::Value {
    event.event_json().unwrap()
}

#[tokio::test]
async fn a_missing_port_is_reported_and_jobs_are_refused_until_it_appears() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("ttyGRBL");
    let mut config = ControllerConfig::new(ControllerKind::Grbl, &link);
    config.poll_interval = Duration::from_millis(20);
    config.reconnect_max = Duration::from_millis(200);
    let mut bridge = Bridge::start(config);
    bridge.until("disconnected", |e| matches!(e, ControllerEvent::Disconnected { .. })).await;
    assert_eq!(bridge.handle.telemetry().borrow().state, MachineState::Offline);
    let job = laser_job(3);
    assert_eq!(bridge.handle.start_job("j".into(), job.path.clone()).await, Err(ControllerError::Offline));

    // The device appears (as a USB adapter plugged in): the controller opens it.
    let sim = grbl_sim::spawn(GrblSimConfig::default()).unwrap();
    std::os::unix::fs::symlink(sim.path(), &link).unwrap();
    bridge.until("connected", |e| *e == ControllerEvent::Connected).await;
    ready(&bridge).await;

    // Unplugged: the port fails, the controller says so and goes offline.
    std::fs::remove_file(&link).unwrap();
    drop(sim);
    bridge.until_new("a disconnect after the connect", |e| matches!(e, ControllerEvent::Disconnected { .. })).await;
    bridge.telemetry_until("offline", |t| t.state == MachineState::Offline).await;
}

fn marlin_config(sim: &marlin_sim::MarlinSim) -> ControllerConfig {
    let mut config = ControllerConfig::new(ControllerKind::Marlin, sim.path());
    config.poll_interval = Duration::from_millis(20);
    config.response_timeout = Duration::from_secs(5);
    config.temperature_interval = Duration::from_secs(1);
    config
}

/// A print: heat-up, homing, moves with M73 progress, comments and blank lines.
fn print_job(moves: usize) -> JobFile {
    let mut lines: Vec<(String, Option<String>)> = vec![
        ("; generated by a slicer".into(), None),
        ("M140 S60".into(), Some("M140 S60".into())),
        ("M104 S200 ; hotend".into(), Some("M104 S200".into())),
        ("M109 S200".into(), Some("M109 S200".into())),
        ("G28 ; home".into(), Some("G28".into())),
        (String::new(), None),
    ];
    for i in 0..moves {
        if i % 10 == 0 {
            let line = format!("M73 P{} R{}", i * 100 / moves, moves - i);
            lines.push((line.clone(), Some(line)));
        }
        let line = format!("G1 X{i}.4 Y{}.2 E{}.05 F1800", i * 2, i);
        lines.push((format!("{line} ; move {i}"), Some(line)));
    }
    lines.push(("M104 S0".into(), Some("M104 S0".into())));
    let borrowed: Vec<(&str, Option<&str>)> = lines.iter().map(|(r, s)| (r.as_str(), s.as_deref())).collect();
    job_file("benchy.gcode", &borrowed)
}

/// The job's lines as the printer executed them (without the bridge's own commands).
fn job_lines(executed: &[String], expected: &[String]) -> Vec<String> {
    let first = executed.iter().position(|c| *c == expected[0]).unwrap_or(executed.len());
    executed[first..]
        .iter()
        .filter(|c| !matches!(c.as_str(), "M105" | "M400") && !c.starts_with("M155"))
        .cloned()
        .collect()
}

#[tokio::test]
async fn marlin_job_survives_a_forced_resend_and_arrives_once_in_order() {
    let sim = marlin_sim::spawn(MarlinSimConfig::default()).unwrap();
    let mut bridge = Bridge::start(marlin_config(&sim));
    ready(&bridge).await;
    until("numbering set up", || sim.executed().iter().any(|c| c.starts_with("M155"))).await;
    // Lines 0 and 1 were M110 and M155: corrupt the 20th and 21st job lines.
    sim.corrupt_line(22);
    sim.corrupt_line(23);
    let job = print_job(100);
    bridge.handle.start_job("p1".into(), job.path.clone()).await.unwrap();
    bridge.job_event("finished", |e| *e == JobEvent::Finished).await;
    assert!(sim.resends() >= 2, "the printer asked for resends");
    assert_eq!(job_lines(&sim.executed(), &job.expected), job.expected);
    let events = bridge.job_events();
    assert_eq!(events.first(), Some(&JobEvent::Started { file: "benchy.gcode".into() }));
    assert_eq!(events.last(), Some(&JobEvent::Finished));
    assert!(events.contains(&JobEvent::Progress { progress: 50.0 }), "M73 P50 drives the progress: {events:?}");
}

#[tokio::test]
async fn marlin_temperatures_reach_the_telemetry_from_auto_reports() {
    let sim = marlin_sim::spawn(MarlinSimConfig::default()).unwrap();
    let mut bridge = Bridge::start(marlin_config(&sim));
    ready(&bridge).await;
    let job = job_file("heat.gcode", &[("M104 S215", Some("M104 S215")), ("M140 S65", Some("M140 S65"))]);
    bridge.handle.start_job("p2".into(), job.path.clone()).await.unwrap();
    bridge.job_event("finished", |e| *e == JobEvent::Finished).await;
    let telemetry = bridge
        .telemetry_until("hot", |t| t.temps.nozzle_target == Some(215.0) && t.temps.nozzle.is_some_and(|n| n > 100.0))
        .await;
    assert_eq!(telemetry.temps.bed_target, Some(65.0));
    let json = serde_json::to_value(&telemetry).unwrap();
    assert_eq!(json["temps"]["nozzle_target"], 215.0);
    assert_eq!(json["state"], "idle");
}

#[tokio::test]
async fn marlin_without_auto_report_is_polled_with_m105() {
    let sim = marlin_sim::spawn(MarlinSimConfig { autoreport: false, ..MarlinSimConfig::default() }).unwrap();
    let bridge = Bridge::start(marlin_config(&sim));
    ready(&bridge).await;
    bridge.telemetry_until("temperatures", |t| t.temps.nozzle == Some(21.0)).await;
    assert!(sim.executed().iter().any(|c| c == "M105"));
}

#[tokio::test]
async fn marlin_busy_homing_longer_than_the_timeout_is_tolerated() {
    let sim = marlin_sim::spawn(MarlinSimConfig {
        long_move: Duration::from_millis(1500),
        busy_interval: Duration::from_millis(100),
        ..MarlinSimConfig::default()
    })
    .unwrap();
    let mut config = marlin_config(&sim);
    config.response_timeout = Duration::from_millis(500);
    let mut bridge = Bridge::start(config);
    ready(&bridge).await;
    let job = job_file("home.gcode", &[("G28", Some("G28")), ("G1 X10", Some("G1 X10"))]);
    bridge.handle.start_job("p3".into(), job.path.clone()).await.unwrap();
    bridge.job_event("finished", |e| *e == JobEvent::Finished).await;
    assert!(sim.busy_sent() >= 3, "busy messages kept the line alive ({})", sim.busy_sent());
    assert_eq!(job_lines(&sim.executed(), &job.expected), job.expected);
}

#[tokio::test]
async fn marlin_cancel_during_heat_up_turns_heaters_and_fan_off() {
    let sim = marlin_sim::spawn(MarlinSimConfig { heat_rate: 0.5, ..MarlinSimConfig::default() }).unwrap();
    let mut bridge = Bridge::start(marlin_config(&sim));
    ready(&bridge).await;
    let job = job_file(
        "hot.gcode",
        &[
            ("M106 S255", Some("M106 S255")),
            ("M140 S60", Some("M140 S60")),
            ("M109 S210", Some("M109 S210")),
            ("G28", Some("G28")),
        ],
    );
    bridge.handle.start_job("p4".into(), job.path.clone()).await.unwrap();
    until("heating up", || sim.heaters() == (210.0, 60.0, 255.0)).await;
    bridge.handle.cancel().await.unwrap();
    bridge.job_event("cancelled", |e| *e == JobEvent::Cancelled).await;
    assert_eq!(sim.heaters(), (0.0, 0.0, 0.0), "heaters and fan off");
    let executed = sim.executed();
    assert!(!executed.contains(&"G28".to_string()), "nothing after the cancel: {executed:?}");
    let tail: Vec<&str> = executed.iter().map(String::as_str).filter(|c| *c != "M105").rev().take(3).collect();
    assert_eq!(tail, ["M107", "M140 S0", "M104 S0"]);
    assert!(!*bridge.handle.job_running().borrow());
}

#[tokio::test]
async fn marlin_fatal_error_is_an_alarm_and_a_restart_clears_it() {
    let sim = marlin_sim::spawn(MarlinSimConfig { line_delay: Duration::from_millis(5), ..MarlinSimConfig::default() })
        .unwrap();
    let mut bridge = Bridge::start(marlin_config(&sim));
    ready(&bridge).await;
    let job = print_job(300);
    bridge.handle.start_job("p5".into(), job.path.clone()).await.unwrap();
    until("printing", || sim.executed().len() > 20).await;
    sim.fatal_error("Thermal Runaway, system stopped! Heater_ID: 0");
    let alarm = bridge.until("an alarm", |e| matches!(e, ControllerEvent::Alarm { .. })).await;
    assert!(matches!(&alarm, ControllerEvent::Alarm { text, .. } if text.contains("Thermal Runaway")), "{alarm:?}");
    bridge.job_event("failed", |e| matches!(e, JobEvent::Failed { .. })).await;
    bridge.telemetry_until("error", |t| t.state == MachineState::Error).await;
    sim.restart();
    ready(&bridge).await;
    let next = job_file("small.gcode", &[("G1 X1", Some("G1 X1"))]);
    bridge.handle.start_job("p6".into(), next.path.clone()).await.unwrap();
    bridge.job_event("finished", |e| *e == JobEvent::Finished).await;
}
