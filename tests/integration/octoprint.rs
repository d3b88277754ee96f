//! OctoPrint machines against a real OctoPrint 1.11.8 with its virtual printer: makrcave
//! connects the printer, follows it over the push socket (telemetry on the WebSocket, job
//! events stored and pushed), prints a file it sends, pauses, resumes and cancels through the
//! REST endpoints, shows the machine offline while OctoPrint is down, and shows a refused API
//! key as an error without retrying in a loop.

use std::time::Duration;

use makrcave::domain::access::Role;
use makrcave::domain::jobs::JobCommand;
use serde_json::{json, Value};

use crate::common::{eventually, open_space_ws, ws_until, Socket, TestApp};
use crate::octoprint_server::OctoPrint;

/// Adds an OctoPrint machine `m` to space `s`.
pub async fn octoprint_machine(t: &TestApp, octoprint: &OctoPrint, api_key: &str) {
    t.makerspace("s").await;
    let connection = json!({"kind": "octoprint", "url": octoprint.url(), "api_key": api_key});
    t.machine("s", "m", json!({"connection": connection})).await;
}

async fn state_is(t: &TestApp, state: &str) -> Value {
    t.wait_state("s", "m", &format!("machine {state}"), |s| s["state"] == state).await
}

/// A G-code file that the virtual printer prints in a few seconds (`M220 S1000`: ten times
/// the feed rate), or slowly enough to pause and cancel when `quick` is false.
fn gcode(dir: &std::path::Path, name: &str, quick: bool) -> String {
    let mut text = String::from(if quick { "M220 S1000\n" } else { "" });
    text.push_str("G28\nM104 S200\nM140 S60\n");
    let lines = if quick { 400 } else { 4000 };
    for i in 0..lines {
        text.push_str(&format!("G1 X{} Y{} F3000\n", i % 100, i % 50));
    }
    text.push_str("M104 S0\nM140 S0\n");
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write the G-code file");
    path.to_string_lossy().into_owned()
}

async fn next_event(ws: &mut Socket) -> Value {
    ws_until(ws, |m| m["type"] == "machine_event" && m["equipment_id"] == "m").await
}

#[actix_web::test]
async fn telemetry_reaches_a_websocket_client_and_unchanged_frames_do_not() {
    let octoprint = OctoPrint::start().await;
    assert_eq!(octoprint.printer_state().await, None, "OctoPrint starts without its printer");
    let t = TestApp::spawn().await;
    let admin = t.token("boss", Role::MakerspaceAdmin, &["s"]);
    octoprint_machine(&t, &octoprint, &octoprint.api_key).await;
    let mut ws = open_space_ws(&t, &admin, "s").await;

    // auto_connect: makrcave connects the printer, which then reports idle with temperatures.
    let update = ws_until(&mut ws, |m| {
        m["type"] == "machine" && m["machine"]["state"] == "idle" && m["machine"]["temps"]["nozzle"].is_number()
    })
    .await;
    assert_eq!(update["machine"]["equipment_id"], "m");
    assert!(update["machine"]["temps"]["bed"].is_number(), "{update}");
    assert_eq!(octoprint.printer_state().await.as_deref(), Some("Operational"));
    let live = state_is(&t, "idle").await;
    assert!(live["job"].is_null() && live["error"].is_null(), "{live}");

    // OctoPrint keeps sending `current` twice a second; an idle printer's frames are all
    // alike, so none of them reaches the WebSocket.
    let quiet = tokio::time::timeout(Duration::from_millis(2500), async {
        ws_until(&mut ws, |m| m["type"] == "machine" && m["machine"]["equipment_id"] == "m").await
    })
    .await;
    assert!(quiet.is_err(), "an unchanged frame reached the WebSocket: {quiet:?}");

    // Yet the printer is still heard: `last_heard` moves (at the client's keepalive), in the
    // machine's REST view, without a WebSocket message of its own.
    let last_heard = |m: &Value| m["last_heard"].as_str().and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok());
    let first = last_heard(&live).expect("heard");
    eventually(Duration::from_secs(30), "last_heard to move while idle", || async {
        let (_, machine) = t.get("/api/v1/makerspaces/s/equipment/m", Some(&admin)).await;
        last_heard(&machine).filter(|at| *at > first)
    })
    .await;
    let quiet = tokio::time::timeout(Duration::from_millis(300), async {
        ws_until(&mut ws, |m| m["type"] == "machine" && m["machine"]["equipment_id"] == "m").await
    })
    .await;
    assert!(quiet.is_err(), "a sign of life alone reached the WebSocket: {quiet:?}");

    // API keys never leave the server.
    let (_, machine) = t.get("/api/v1/makerspaces/s/equipment/m", Some(&admin)).await;
    assert!(!machine.to_string().contains(&octoprint.api_key), "{machine}");
    t.stop().await;
}

#[actix_web::test]
async fn a_file_is_sent_and_printed_to_the_end_with_its_job_events_stored() {
    let octoprint = OctoPrint::start().await;
    let t = TestApp::spawn().await;
    let admin = t.token("boss", Role::MakerspaceAdmin, &["s"]);
    octoprint_machine(&t, &octoprint, &octoprint.api_key).await;
    let mut ws = open_space_ws(&t, &admin, "s").await;
    state_is(&t, "idle").await;

    let file = gcode(t.data_dir.path(), "cube.gcode", true);
    let fleet = t.app().state().fleet.clone();
    fleet
        .control("s", "m", JobCommand::Start { file, fetch: None })
        .await
        .expect("the machine is there")
        .expect("printing");
    let started = next_event(&mut ws).await;
    assert_eq!((started["event"].as_str(), started["file"].as_str()), (Some("job_started"), Some("cube.gcode")));
    let running = state_is(&t, "running").await;
    assert_eq!(running["job"]["file"], "cube.gcode", "{running}");
    // Progress updates keep coming while it prints (each within ws_until's 10 s).
    let finished = ws_until(&mut ws, |m| m["type"] == "machine_event" && m["event"] != "job_progress").await;
    assert_eq!(finished["event"], "job_finished", "{finished}");
    // The part is on the bed: a person confirms it is taken off before anything else starts.
    assert_eq!(finished["state"], "awaiting_clear");
    let live = state_is(&t, "awaiting_clear").await;
    assert!(live["job"].is_null(), "{live}");

    let store = t.app().state().store.clone();
    let stored = eventually(Duration::from_secs(10), "the job events stored", || {
        let store = store.clone();
        async move {
            let events = store.job_events("m").await.expect("job events");
            (events.len() >= 2).then_some(events)
        }
    })
    .await;
    let names: Vec<&str> = stored.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(names, ["job_started", "job_finished"]);

    // A full report, asked for, comes back from OctoPrint's REST API.
    fleet.control("s", "m", JobCommand::Refresh).await.expect("the machine is there").expect("refreshed");
    // (It may catch OctoPrint still finishing, which shows as running, for a moment.) A report
    // of an idle printer does not clear the bed: only a person does.
    state_is(&t, "awaiting_clear").await;
    let (status, body) = t.post("/api/v1/makerspaces/s/equipment/m/clear", &admin, json!(null)).await;
    assert_eq!(status, 200, "{body}");
    state_is(&t, "idle").await;
    // A file that is not there is refused with the reason.
    let missing = t.data_dir.path().join("missing.gcode").to_string_lossy().into_owned();
    let refused =
        fleet.control("s", "m", JobCommand::Start { file: missing, fetch: None }).await.expect("the machine is there");
    assert!(matches!(refused, Err(makrcave::domain::jobs::JobRefusal::Rejected(_))), "{refused:?}");
    t.stop().await;
}

#[actix_web::test]
async fn pause_resume_and_cancel_go_through_octoprint() {
    let octoprint = OctoPrint::start().await;
    let t = TestApp::spawn().await;
    let admin = t.token("boss", Role::MakerspaceAdmin, &["s"]);
    octoprint_machine(&t, &octoprint, &octoprint.api_key).await;
    let mut ws = open_space_ws(&t, &admin, "s").await;
    state_is(&t, "idle").await;
    let job = |action: &str| format!("/api/v1/makerspaces/s/equipment/m/job/{action}");
    let (status, body) = t.post(&job("pause"), &admin, json!(null)).await;
    assert_eq!((status, body["error_type"].as_str()), (409, Some("not_running")), "{body}");

    let file = gcode(t.data_dir.path(), "slow.gcode", false);
    t.app()
        .state()
        .fleet
        .control("s", "m", JobCommand::Start { file, fetch: None })
        .await
        .expect("there")
        .expect("printing");
    assert_eq!(next_event(&mut ws).await["event"], "job_started");
    state_is(&t, "running").await;

    let (status, body) = t.post(&job("pause"), &admin, json!(null)).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(next_event(&mut ws).await["event"], "job_paused");
    state_is(&t, "paused").await;
    assert_eq!(octoprint.printer_state().await.as_deref(), Some("Paused"));

    let (status, body) = t.post(&job("resume"), &admin, json!(null)).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(next_event(&mut ws).await["event"], "job_resumed");
    state_is(&t, "running").await;

    let (status, body) = t.post(&job("cancel"), &admin, json!(null)).await;
    assert_eq!(status, 202, "{body}");
    let cancelled = next_event(&mut ws).await;
    assert_eq!(cancelled["event"], "job_cancelled", "{cancelled}");
    // A cancelled print may leave a part or a tangle on the bed: it waits for a person too.
    state_is(&t, "awaiting_clear").await;
    let (status, body) = t.post("/api/v1/makerspaces/s/equipment/m/clear", &admin, json!(null)).await;
    assert_eq!(status, 200, "{body}");
    state_is(&t, "idle").await;
    t.stop().await;
}

#[actix_web::test]
async fn octoprint_killed_and_restarted_takes_the_machine_offline_and_back() {
    let mut octoprint = OctoPrint::start().await;
    let t = TestApp::spawn().await;
    octoprint_machine(&t, &octoprint, &octoprint.api_key).await;
    state_is(&t, "idle").await;

    octoprint.kill();
    let offline = state_is(&t, "offline").await;
    assert_eq!(offline["online"], false);
    let admin = t.token("boss", Role::MakerspaceAdmin, &["s"]);
    let (status, body) = t.post("/api/v1/makerspaces/s/equipment/m/job/cancel", &admin, json!(null)).await;
    assert_eq!((status, body["error_type"].as_str()), (409, Some("machine_offline")), "{body}");

    octoprint.restart().await;
    // makrcave finds it again within its backoff and connects the fresh printer.
    eventually(Duration::from_secs(60), "the machine back idle", || async {
        let s = t.state("s", "m").await;
        (s["state"] == "idle").then_some(())
    })
    .await;
    t.stop().await;
}

#[actix_web::test]
async fn a_wrong_api_key_is_an_error_with_its_reason_and_no_storm() {
    let octoprint = OctoPrint::start().await;
    let t = TestApp::spawn().await;
    let refused_before = t.metric("makrcave_octoprint_sessions_total", "outcome=\"forbidden\"").await;
    octoprint_machine(&t, &octoprint, "not-the-key").await;
    let live = state_is(&t, "error").await;
    assert_eq!(live["error"], "OctoPrint refused the API key (403)", "{live}");
    assert_eq!(octoprint.printer_state().await, None, "nothing was done with a wrong key");

    // One refused session, then the adapter waits minutes (`adapter::Between`, unit tested)
    // rather than storming OctoPrint with logins.
    let refused = t.metric("makrcave_octoprint_sessions_total", "outcome=\"forbidden\"").await;
    assert_eq!(refused - refused_before, 1.0);

    // The right key, once an admin enters it, is taken at once (the adapter restarts).
    let admin = t.token("boss", Role::MakerspaceAdmin, &["s"]);
    let connection = json!({"kind": "octoprint", "url": octoprint.url(), "api_key": octoprint.api_key});
    let (status, body) = t.put("/api/v1/makerspaces/s/equipment/m", &admin, json!({"connection": connection})).await;
    assert_eq!(status, 200, "{body}");
    let live = state_is(&t, "idle").await;
    assert!(live["error"].is_null(), "{live}");
    t.stop().await;
}

/// The job router end to end on a real OctoPrint: two copies of a sliced file are submitted,
/// one prints to the end, the printer then waits for its bed to be cleared (the other copy
/// waits with it, saying why), a person clears it, the second copy prints; each finished
/// job's grams come off the loaded spool once.
#[actix_web::test]
async fn queued_jobs_print_one_after_the_other_with_the_bed_cleared_between() {
    use crate::job_queue::{sliced_gcode, submit};
    let octoprint = OctoPrint::start().await;
    let t = TestApp::spawn().await;
    let admin = t.token("boss", Role::MakerspaceAdmin, &["s"]);
    let ada = t.token("ada", Role::Member, &["s"]);
    octoprint_machine(&t, &octoprint, &octoprint.api_key).await;
    let item = json!({"id": "pla", "name": "PLA", "category": "filament", "unit": "g",
                      "filament": {"material": "PLA", "color": "#1a1a1a"}});
    let (status, body) = t.post("/api/v1/makerspaces/s/inventory", &admin, item).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = t
        .post("/api/v1/makerspaces/s/inventory/pla/spools", &admin, json!({"id": "sp", "net_g": 1000, "tare_g": 200}))
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) =
        t.post("/api/v1/makerspaces/s/equipment/m/spools", &admin, json!({"spool_id": "sp", "slot": "main"})).await;
    assert_eq!(status, 201, "{body}");
    let mut ws = open_space_ws(&t, &admin, "s").await;
    state_is(&t, "idle").await;

    let (status, made) = submit(&t, &ada, "s", "cube.gcode", &sliced_gcode("1.5"), Some(json!({"copies": 2}))).await;
    assert_eq!(status, 201, "{made}");
    let job = |m: &Value, status: &str| m["type"] == "job" && m["job"]["status"] == status;
    let first = ws_until(&mut ws, |m| job(m, "printing")).await["job"]["id"].as_str().expect("id").to_string();
    let done = ws_until(&mut ws, |m| job(m, "done")).await;
    assert_eq!((done["job"]["id"].as_str(), done["job"]["equipment_id"].as_str()), (Some(first.as_str()), Some("m")));

    // The bed holds the first cube: nothing starts, and the other copy says why.
    state_is(&t, "awaiting_clear").await;
    let second = made["jobs"].as_array().expect("jobs").iter().filter_map(|j| j["id"].as_str()).find(|id| *id != first);
    let second = second.expect("the other copy").to_string();
    // The router hears of the machine's new state through its own mailbox: it may say `busy`
    // for as long as that message takes.
    eventually(Duration::from_secs(10), "the other copy waiting for the bed", || async {
        let (_, waiting) = t.get(&format!("/api/v1/makerspaces/s/jobs/{second}"), Some(&ada)).await;
        let why = (waiting["status"].as_str(), waiting["waiting"]["machines"][0]["reason"].as_str());
        (why == (Some("queued"), Some("bed_not_clear"))).then_some(())
    })
    .await;

    let (status, cleared) = t.post("/api/v1/makerspaces/s/equipment/m/clear", &ada, json!(null)).await;
    assert_eq!(status, 200, "{cleared}");
    let printing = ws_until(&mut ws, |m| job(m, "printing")).await;
    assert_eq!(printing["job"]["id"], second.as_str());
    ws_until(&mut ws, |m| job(m, "done") && m["job"]["id"] == second.as_str()).await;
    state_is(&t, "awaiting_clear").await;

    // 1.5 g per finished job, charged once each.
    let spool = eventually(Duration::from_secs(10), "both jobs charged to the spool", || async {
        let (_, spool) = t.get("/api/v1/makerspaces/s/spools/sp", Some(&admin)).await;
        (spool["remaining_g"] == 997.0).then_some(spool)
    })
    .await;
    assert_eq!(spool["remaining_g"], 997.0);
    t.stop().await;
}
