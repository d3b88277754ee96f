//! Bambu Lab printers in LAN mode, with no Bambu printer: makrcave connects to the printer's
//! own broker (a real Mosquitto over TLS, `bblp` and the access code), checks its certificate
//! (a CA file naming the serial, or a pinned fingerprint), follows the scripted printer's
//! reports (an X1's full object, then P1 deltas) and carries pause, resume and stop to it as
//! requests whose replies it matches. A start uploads the file to the printer's storage (a real
//! vsftpd with implicit FTPS that requires TLS session reuse on data connections) and then
//! asks the printer to print it.

use std::time::Duration;

use makrcave::domain::access::Role;
use makrcave::domain::jobs::{JobCommand, JobRefusal};
use serde_json::{json, Value};

use crate::bambu_printer::{PrinterBroker, PrinterStorage, ScriptedPrinter, ACCESS_CODE, SERIAL};
use crate::common::{eventually, TestApp};

/// Adds a Bambu machine `m` to space `s`, reached with `check` (`ca_file` or
/// `fingerprint_sha256`).
async fn bambu_machine(t: &TestApp, broker: &PrinterBroker, check: Value) {
    t.makerspace("s").await;
    let mut connection = json!({"kind": "bambu", "host": "127.0.0.1", "port": broker.tls_port,
                                "serial": SERIAL, "access_code": ACCESS_CODE});
    if let (Some(c), Some(extra)) = (connection.as_object_mut(), check.as_object()) {
        c.extend(extra.clone());
    }
    t.machine("s", "m", json!({"connection": connection})).await;
}

#[actix_web::test]
async fn reports_are_followed_and_pause_reaches_the_printer() {
    let broker = PrinterBroker::start();
    let printer = ScriptedPrinter::start(&broker).await;
    let t = TestApp::spawn().await;
    let admin = t.token("boss", Role::MakerspaceAdmin, &["s"]);
    bambu_machine(&t, &broker, json!({"ca_file": broker.ca_file()})).await;

    // On connect makrcave asks for the full state; the printer's answer makes it running.
    let live =
        t.wait_state("s", "m", "running at 37 %", |s| s["state"] == "running" && s["job"]["progress"] == 37.0).await;
    assert_eq!(live["temps"]["nozzle"], 219.8, "{live}");
    assert_eq!(live["job"]["remaining_s"], 42 * 60, "{live}");
    assert!(printer.requests.lock().expect("lock").iter().any(|r| r["pushing"]["command"] == "pushall"));
    // The AMS trays and the nozzle are what the printer has loaded.
    assert_eq!(live["loadout"]["nozzle_diameter_mm"], 0.4, "{live}");
    assert_eq!(
        live["loadout"]["trays"][1],
        json!({"slot": "0-1", "material": "PETG", "color": "000000FF", "remain_percent": null, "active": true})
    );

    // P1 deltas merge into what is known.
    printer.delta(json!({"mc_percent": 38, "nozzle_temper": 220.1}));
    let live = t.wait_state("s", "m", "progress 38 %", |s| s["job"]["progress"] == 38.0).await;
    assert_eq!(live["temps"]["bed"], 55.1, "unchanged fields stay: {live}");

    let job = |action: &str| format!("/api/v1/makerspaces/s/equipment/m/job/{action}");
    let (status, body) = t.post(&job("pause"), &admin, json!(null)).await;
    assert_eq!(status, 202, "{body}");
    let pause = printer.requests.lock().expect("lock").iter().find(|r| r["print"]["command"] == "pause").cloned();
    let pause = pause.expect("the pause request reached the printer");
    assert!(pause["print"]["sequence_id"].as_str().is_some_and(|s| s.parse::<u64>().is_ok()), "{pause}");
    t.wait_state("s", "m", "paused", |s| s["state"] == "paused").await;

    // A refusal comes back with the printer's reason.
    printer.refuse_with("the printer is busy homing");
    let (status, body) = t.post(&job("resume"), &admin, json!(null)).await;
    assert_eq!((status, body["error_type"].as_str()), (409, Some("machine_refused")), "{body}");
    assert!(body.to_string().contains("the printer is busy homing"), "{body}");

    // Resumed and stopped: a stop is a cancel, not a failure.
    printer.comply();
    let (status, body) = t.post(&job("resume"), &admin, json!(null)).await;
    assert_eq!(status, 202, "{body}");
    t.wait_state("s", "m", "running again", |s| s["state"] == "running").await;
    let (status, body) = t.post(&job("cancel"), &admin, json!(null)).await;
    assert_eq!(status, 202, "{body}");
    assert!(printer.requests.lock().expect("lock").iter().any(|r| r["print"]["command"] == "stop"));
    // The stopped print is still on the plate: the machine waits for a person to clear it.
    let live = t.wait_state("s", "m", "awaiting_clear after the stop", |s| s["state"] == "awaiting_clear").await;
    assert!(live["error"].is_null() && live["job"].is_null(), "{live}");

    // A serious HMS entry is an error with its readable code.
    printer.delta(json!({"hms": [{"attr": 0x0300_0100, "code": 0x0002_0007}]}));
    let live = t.wait_state("s", "m", "an HMS error", |s| s["state"] == "error").await;
    assert_eq!(live["error"], "HMS 0300_0100_0002_0007 (serious)", "{live}");

    // The access code never leaves the server.
    let (_, machine) = t.get("/api/v1/makerspaces/s/equipment/m", Some(&admin)).await;
    assert!(!machine.to_string().contains(ACCESS_CODE), "{machine}");
    t.stop().await;
}

#[actix_web::test]
async fn a_pinned_fingerprint_connects_and_a_wrong_one_never_does() {
    let broker = PrinterBroker::start();
    let printer = ScriptedPrinter::start(&broker).await;
    let t = TestApp::spawn().await;
    let wrong = "ab".repeat(32);
    bambu_machine(&t, &broker, json!({"fingerprint_sha256": wrong})).await;
    let live = t.wait_state("s", "m", "an error", |s| s["state"] == "error").await;
    assert!(live["error"].as_str().is_some_and(|e| e.contains("certificate")), "{live}");
    let refused = t.metric("makrcave_bambu_sessions_total", "outcome=\"certificate\"").await;
    assert!(refused >= 1.0, "counted: {refused}");
    assert!(
        printer.requests.lock().expect("lock").is_empty(),
        "nothing reached the printer over an unchecked connection"
    );

    // The right fingerprint, once an admin enters it, is taken at once.
    let admin = t.token("boss", Role::MakerspaceAdmin, &["s"]);
    let connection = json!({"kind": "bambu", "host": "127.0.0.1", "port": broker.tls_port, "serial": SERIAL,
                            "access_code": ACCESS_CODE, "fingerprint_sha256": broker.fingerprint()});
    let (status, body) = t.put("/api/v1/makerspaces/s/equipment/m", &admin, json!({"connection": connection})).await;
    assert_eq!(status, 200, "{body}");
    let running = eventually(Duration::from_secs(20), "the machine running", || async {
        let s = t.state("s", "m").await;
        (s["state"] == "running").then_some(s)
    })
    .await;

    // A printer that sends nothing new is still heard (its broker answers the keep-alive):
    // `last_heard` moves though no report changes anything.
    let heard = |s: &Value| s["last_heard"].as_str().and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok());
    let first = heard(&running).expect("heard");
    eventually(Duration::from_secs(45), "last_heard to move", || async {
        heard(&t.state("s", "m").await).filter(|at| *at > first)
    })
    .await;
    t.stop().await;
}

#[actix_web::test]
async fn a_printer_switched_off_goes_offline_and_comes_back() {
    let mut broker = PrinterBroker::start();
    let _printer = ScriptedPrinter::start(&broker).await;
    let t = TestApp::spawn().await;
    bambu_machine(&t, &broker, json!({"ca_file": broker.ca_file()})).await;
    t.wait_state("s", "m", "running", |s| s["state"] == "running").await;

    broker.stop();
    let offline = t.wait_state("s", "m", "offline", |s| s["state"] == "offline").await;
    assert_eq!(offline["online"], false);
    let admin = t.token("boss", Role::MakerspaceAdmin, &["s"]);
    let (status, body) = t.post("/api/v1/makerspaces/s/equipment/m/job/pause", &admin, json!(null)).await;
    assert_eq!((status, body["error_type"].as_str()), (409, Some("machine_offline")), "{body}");

    broker.restart();
    // makrcave finds it again within its backoff and asks for the full state.
    eventually(Duration::from_secs(60), "the machine running again", || async {
        let s = t.state("s", "m").await;
        (s["state"] == "running").then_some(())
    })
    .await;
    t.stop().await;
}

/// A printer that has finished its last print and waits, with its storage; the machine shows
/// it idle.
async fn idle_printer(t: &TestApp, broker: &PrinterBroker, storage: &PrinterStorage, extra: Value) -> ScriptedPrinter {
    let printer = ScriptedPrinter::start(broker).await;
    printer.delta(json!({"gcode_state": "IDLE", "mc_percent": 0, "subtask_name": "", "gcode_file": ""}));
    let mut connection = json!({"ca_file": broker.ca_file(), "ftps_port": storage.port});
    if let (Some(c), Some(extra)) = (connection.as_object_mut(), extra.as_object()) {
        c.extend(extra.clone());
    }
    bambu_machine(t, broker, connection).await;
    t.wait_state("s", "m", "idle", |s| s["state"] == "idle").await;
    printer
}

/// A file of `len` bytes with every byte value in it, written to makrcave's disk: an upload in
/// ASCII mode, or a lost piece, would show.
fn file_to_print(t: &TestApp, name: &str, len: usize) -> (String, Vec<u8>) {
    let contents: Vec<u8> = (0..len).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let path = t.data_dir.path().join(name);
    std::fs::write(&path, &contents).expect("write the file to print");
    (path.to_string_lossy().into_owned(), contents)
}

fn print_request(printer: &ScriptedPrinter, command: &str) -> Option<Value> {
    printer.requests.lock().expect("lock").iter().rev().find(|r| r["print"]["command"] == command).cloned()
}

#[actix_web::test]
async fn a_3mf_is_uploaded_over_ftps_and_printed_while_the_printer_is_followed() {
    let broker = PrinterBroker::start();
    // Slow enough (4 MB at 2 MB/s) that the upload is still under way when the refresh
    // below is answered.
    let storage = PrinterStorage::start_with(&broker, "local_max_rate=2000000");
    let t = TestApp::spawn().await;
    let printer = idle_printer(&t, &broker, &storage, json!({})).await;
    let (path, contents) = file_to_print(&t, "benchy.gcode.3mf", 4_000_000);

    let fleet = t.app().state().fleet.clone();
    let start = {
        let fleet = fleet.clone();
        tokio::spawn(async move { fleet.control("s", "m", JobCommand::Start { file: path, fetch: None }).await })
    };
    // The printer's session is followed during the upload: a refresh is answered by the
    // printer's next state at once.
    fleet.control("s", "m", JobCommand::Refresh).await.expect("the machine is there").expect("refreshed");
    assert!(!start.is_finished(), "the refresh was answered while the file was on its way");
    let started = start.await.expect("the start's task").expect("the machine is there");
    assert_eq!(started, Ok(()), "{}", storage.log());

    let uploaded = std::fs::read(storage.card().join("benchy.gcode.3mf")).expect("the file on the printer's card");
    assert!(uploaded == contents, "the file arrived byte for byte ({} of {} bytes)", uploaded.len(), contents.len());
    let request = print_request(&printer, "project_file").expect("the printer was asked to print the project");
    assert_eq!(request["print"]["url"], "ftp:///benchy.gcode.3mf", "{request}");
    assert_eq!(request["print"]["param"], "Metadata/plate_1.gcode", "{request}");
    assert_eq!(request["print"]["subtask_name"], "benchy", "{request}");

    let live = t.wait_state("s", "m", "printing the project", |s| s["state"] == "running").await;
    assert_eq!(live["job"]["file"], "benchy", "{live}");
    let store = t.app().state().store.clone();
    let events = eventually(Duration::from_secs(10), "the job's start stored", || {
        let store = store.clone();
        async move {
            let events = store.job_events("m").await.expect("job events");
            events.iter().any(|e| e.event == "job_started").then_some(events)
        }
    })
    .await;
    assert_eq!(events.iter().filter(|e| e.event == "job_started").count(), 1, "{events:?}");
    t.stop().await;
}

#[actix_web::test]
async fn a_gcode_file_is_printed_by_its_path_on_the_card_and_a_refusal_is_the_answer() {
    let broker = PrinterBroker::start();
    let storage = PrinterStorage::start(&broker);
    let t = TestApp::spawn().await;
    let printer = idle_printer(&t, &broker, &storage, json!({})).await;
    let (path, contents) = file_to_print(&t, "cube.gcode", 100_000);
    let fleet = t.app().state().fleet.clone();

    // The printer refuses (as current firmware does outside Developer Mode): the reason comes
    // back, and the machine stays idle.
    printer.refuse_with("print start is not allowed in this mode");
    let refused = fleet
        .control("s", "m", JobCommand::Start { file: path.clone(), fetch: None })
        .await
        .expect("the machine is there");
    assert_eq!(refused, Err(JobRefusal::Rejected("print start is not allowed in this mode".into())));
    assert_eq!(t.state("s", "m").await["state"], "idle");

    printer.comply();
    let started =
        fleet.control("s", "m", JobCommand::Start { file: path, fetch: None }).await.expect("the machine is there");
    assert_eq!(started, Ok(()), "{}", storage.log());
    assert!(std::fs::read(storage.card().join("cube.gcode")).expect("the file on the card") == contents);
    let request = print_request(&printer, "gcode_file").expect("the printer was asked to print the G-code");
    assert_eq!(request["print"]["param"], "/sdcard/cube.gcode", "{request}");
    let live = t.wait_state("s", "m", "printing the G-code", |s| s["state"] == "running").await;
    assert_eq!(live["job"]["file"], "cube", "{live}");

    // Busy now; and a file the printer cannot print is refused before any upload.
    let busy = fleet.control("s", "m", JobCommand::Start { file: "/files/other.gcode".into(), fetch: None }).await;
    assert_eq!(busy.expect("the machine is there"), Err(JobRefusal::Busy));
    t.stop().await;
}

#[actix_web::test]
async fn a_storage_that_refuses_the_access_code_or_a_file_of_another_kind_is_the_answer() {
    // The broker takes another code than the storage: the machine connects, the upload's
    // login is refused.
    let code = "11112222";
    let broker = PrinterBroker::start_with_code(code);
    let storage = PrinterStorage::start(&broker);
    let t = TestApp::spawn().await;
    let printer = idle_printer(&t, &broker, &storage, json!({"access_code": code})).await;
    let (path, _) = file_to_print(&t, "benchy.3mf", 10_000);
    let fleet = t.app().state().fleet.clone();

    let refused =
        fleet.control("s", "m", JobCommand::Start { file: path, fetch: None }).await.expect("the machine is there");
    let Err(JobRefusal::Rejected(reason)) = &refused else { panic!("refused: {refused:?}") };
    assert!(reason.contains("refused the access code") && reason.contains("530"), "{reason}");
    assert!(print_request(&printer, "project_file").is_none(), "no print without the file");
    assert!(std::fs::read_dir(storage.card()).expect("the card").next().is_none(), "nothing stored");

    let (stl, _) = file_to_print(&t, "bracket.stl", 100);
    let refused =
        fleet.control("s", "m", JobCommand::Start { file: stl, fetch: None }).await.expect("the machine is there");
    let Err(JobRefusal::Rejected(reason)) = &refused else { panic!("refused: {refused:?}") };
    assert!(reason.contains(".3mf or a .gcode"), "{reason}");
    // The machine is still followed and idle.
    assert_eq!(t.state("s", "m").await["state"], "idle");
    t.stop().await;
}
