//! The queue's admin tools: a queued job moved up or down by the space's admins (kept in its
//! history, pushed, and followed by the router), and the machines' failed prints of the week
//! with the flag the dashboard shows. Machines speak makrcave's generic MQTT topics here.

use makrcave::domain::access::Role;
use serde_json::{json, Value};

use crate::common::{open_space_ws, ws_until, Socket, TestApp};
use crate::job_queue::{sliced_gcode, submit};
use crate::jobs::Firmware;

async fn job_update(ws: &mut Socket, job_id: &str, status: &str) -> Value {
    ws_until(ws, |m| m["type"] == "job" && m["job"]["id"] == job_id && m["job"]["status"] == status).await
}

/// Submits one job as `token` and answers its id.
async fn queue_one(t: &TestApp, token: &str, name: &str) -> String {
    let (status, made) = submit(t, token, "s", name, &sliced_gcode("1"), None).await;
    assert_eq!(status, 201, "{made}");
    made["jobs"][0]["id"].as_str().expect("job id").to_string()
}

fn priority_of(job: &str) -> String {
    format!("/api/v1/makerspaces/s/jobs/{job}/priority")
}

async fn history(t: &TestApp, token: &str, job: &str) -> Vec<Value> {
    let (status, detail) = t.get(&format!("/api/v1/makerspaces/s/jobs/{job}"), Some(token)).await;
    assert_eq!(status, 200, "{detail}");
    detail["history"].as_array().expect("history").clone()
}

/// What p1's firmware does when makrcave sends it a job: it takes the start command, then
/// reports the print started.
async fn start_when_told(firmware: &mut Firmware) {
    assert_eq!(firmware.next_command().await["action"], "start");
    firmware.event(json!({"event": "job_started"})).await;
}

#[actix_web::test]
async fn the_spaces_admins_move_a_queued_job_up_and_the_router_follows() {
    let t = TestApp::spawn().await;
    t.makerspace("s").await;
    t.machine("s", "p1", json!({})).await;
    let admin = t.token("boss", Role::MakerspaceAdmin, &["s"]);
    let ada = t.token("ada", Role::Member, &["s"]);
    let mut ws = open_space_ws(&t, &admin, "s").await;
    // The machine is offline: all three wait, first come first served.
    let a = queue_one(&t, &ada, "a.gcode").await;
    let b = queue_one(&t, &ada, "b.gcode").await;
    let c = queue_one(&t, &ada, "c.gcode").await;

    // Not the owner's call; out of bounds; an unknown job or field: refused, nothing written.
    let (status, body) = t.post(&priority_of(&c), &ada, json!({"priority": 5})).await;
    assert_eq!((status, body["error_type"].as_str()), (403, Some("forbidden")), "{body}");
    let (status, body) = t.post(&priority_of(&c), &admin, json!({"priority": 11})).await;
    assert_eq!((status, body["error_type"].as_str()), (422, Some("validation_error")), "{body}");
    for refused in
        [json!({"priority": 1, "why": "rush"}), json!({"priority": 1.5}), json!({}), json!({"priority": null})]
    {
        let (status, body) = t.post(&priority_of(&c), &admin, refused.clone()).await;
        assert_eq!(status, 422, "{refused}: {body}");
    }
    let (status, body) = t.post(&priority_of("no-such-job"), &admin, json!({"priority": 1})).await;
    assert_eq!((status, body["error_type"].as_str()), (404, Some("not_found")), "{body}");
    assert_eq!(history(&t, &admin, &c).await.len(), 1, "only its queueing");

    // The admin moves it up: stored with who and from what, and pushed. (`5.0` is the whole
    // number 5, as JSON Schema's `integer` allows.)
    let (status, moved) = t.post(&priority_of(&c), &admin, json!({"priority": 5.0})).await;
    assert_eq!((status, moved["priority"].as_i64()), (200, Some(5)), "{moved}");
    let pushed =
        ws_until(&mut ws, |m| m["type"] == "job" && m["job"]["id"] == c.as_str() && m["job"]["priority"] == 5).await;
    assert_eq!(pushed["job"]["status"], "queued", "{pushed}");
    let steps = history(&t, &admin, &c).await;
    let last = steps.last().expect("a transition");
    assert_eq!(
        (&last["from_status"], &last["to_status"], &last["actor"], &last["reason"]),
        (&json!("queued"), &json!("queued"), &json!("boss"), &json!("priority 0 → 5 by boss")),
        "{steps:?}"
    );
    // The same priority again changes nothing.
    let (status, _) = t.post(&priority_of(&c), &admin, json!({"priority": 5})).await;
    assert_eq!(status, 200);
    assert_eq!(history(&t, &admin, &c).await.len(), 2);

    // The machine comes online: the job moved up goes first.
    let mut firmware = Firmware::connect(&t, "s", "p1").await;
    firmware.report("telemetry", json!({"state": "idle"})).await;
    let sent = ws_until(&mut ws, |m| m["type"] == "job" && m["job"]["status"] == "sending").await;
    assert_eq!(sent["job"]["id"], c.as_str(), "{sent}");
    // On its machine, its priority is settled.
    let (status, body) = t.post(&priority_of(&c), &admin, json!({"priority": 1})).await;
    assert_eq!((status, body["error_type"].as_str()), (409, Some("job_not_queued")), "{body}");
    assert_eq!(body["status"], "sending", "{body}");

    // While it prints, b is moved up past a: it goes next.
    start_when_told(&mut firmware).await;
    job_update(&mut ws, &c, "printing").await;
    let (status, moved) = t.post(&priority_of(&b), &admin, json!({"priority": 2})).await;
    assert_eq!((status, moved["priority"].as_i64()), (200, Some(2)), "{moved}");
    firmware.event(json!({"event": "job_finished"})).await;
    job_update(&mut ws, &c, "done").await;
    t.wait_state("s", "p1", "p1 awaiting its bed cleared", |m| m["state"] == "awaiting_clear").await;
    let (status, cleared) = t.post("/api/v1/makerspaces/s/equipment/p1/clear", &ada, json!(null)).await;
    assert_eq!(status, 200, "{cleared}");
    let sent = ws_until(&mut ws, |m| m["type"] == "job" && m["job"]["status"] == "sending").await;
    assert_eq!(sent["job"]["id"], b.as_str(), "b before a: {sent}");
    let (_, still) = t.get(&format!("/api/v1/makerspaces/s/jobs/{a}"), Some(&ada)).await;
    assert_eq!((still["status"].as_str(), still["priority"].as_i64()), (Some("queued"), Some(0)), "{still}");
    t.stop().await;
}

/// The machine-health row of `machine`.
async fn health_of(t: &TestApp, token: &str, machine: &str) -> Value {
    let (status, report) = t.get("/api/v1/makerspaces/s/jobs/machine-health", Some(token)).await;
    assert_eq!(status, 200, "{report}");
    let rows = report["machines"].as_array().expect("machines");
    rows.iter().find(|m| m["equipment_id"] == machine).cloned().unwrap_or_else(|| panic!("{machine} in {report}"))
}

#[actix_web::test]
async fn a_machine_that_failed_three_prints_this_week_is_flagged() {
    let t = TestApp::spawn().await;
    t.makerspace("s").await;
    t.machine("s", "p1", json!({})).await;
    t.machine("s", "p2", json!({})).await;
    let admin = t.token("boss", Role::MakerspaceAdmin, &["s"]);
    let ada = t.token("ada", Role::Member, &["s"]);
    let (status, report) = t.get("/api/v1/makerspaces/s/jobs/machine-health", Some(&ada)).await;
    assert_eq!(status, 200, "a member reads it: {report}");
    assert_eq!((report["window_days"].as_i64(), report["flag_at_failures"].as_i64()), (Some(7), Some(3)));
    assert_eq!(
        health_of(&t, &ada, "p1").await,
        json!({"equipment_id": "p1", "name": "Machine p1", "failures": 0, "flagged": false})
    );

    let mut ws = open_space_ws(&t, &admin, "s").await;
    let mut firmware = Firmware::connect(&t, "s", "p1").await;
    for round in 1..=3 {
        let job = queue_one(&t, &ada, &format!("part-{round}.gcode")).await;
        if round > 1 {
            // The last failure left the bed to clear.
            let (status, cleared) = t.post("/api/v1/makerspaces/s/equipment/p1/clear", &ada, json!(null)).await;
            assert_eq!(status, 200, "{cleared}");
        }
        firmware.report("telemetry", json!({"state": "idle"})).await;
        job_update(&mut ws, &job, "sending").await;
        start_when_told(&mut firmware).await;
        job_update(&mut ws, &job, "printing").await;
        firmware.event(json!({"event": "job_failed", "reason": "nozzle clogged"})).await;
        // Back in the queue for another machine: the failure counts against p1.
        job_update(&mut ws, &job, "queued").await;
        let p1 = health_of(&t, &admin, "p1").await;
        assert_eq!((p1["failures"].as_i64(), p1["flagged"].as_bool()), (Some(round), Some(round >= 3)), "{p1}");
    }
    assert_eq!(health_of(&t, &admin, "p2").await["failures"], 0);
    t.stop().await;
}
