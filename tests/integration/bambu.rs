//! Bambu Lab printers in LAN mode, with no Bambu printer: makrcave connects to the printer's
//! own broker (a real Mosquitto over TLS, `bblp` and the access code), checks its certificate
//! (a CA file naming the serial, or a pinned fingerprint), follows the scripted printer's
//! reports (an X1's full object, then P1 deltas) and carries pause, resume and stop to it as
//! requests whose replies it matches.

use std::time::Duration;

use makrcave::domain::access::Role;
use serde_json::{json, Value};

use crate::bambu_printer::{PrinterBroker, ScriptedPrinter, ACCESS_CODE, SERIAL};
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
    let live = t.wait_state("s", "m", "idle after the stop", |s| s["state"] == "idle").await;
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
    eventually(Duration::from_secs(20), "the machine running", || async {
        let s = t.state("s", "m").await;
        (s["state"] == "running").then_some(())
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
