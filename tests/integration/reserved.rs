//! A machine with a booking in progress shows `reserved` (with the booking) while nobody uses
//! it, and goes back when the booking ends, is cancelled, or a session starts; the booking's
//! holder still unlocks it at the kiosk; the machines learn the book again at start.

use std::time::Duration;

use chrono::{DateTime, Duration as Span, SubsecRound, Utc};
use makrcave::domain::access::Role;
use serde_json::{json, Value};

use crate::common::{eventually, TestApp, TestOptions};

use crate::common::Socket;

const S: &str = "rv";

fn reservations() -> String {
    format!("/api/v1/makerspaces/{S}/reservations")
}

/// A whole second at least `seconds` from now.
fn in_seconds(seconds: i64) -> DateTime<Utc> {
    Utc::now().trunc_subsecs(0) + Span::seconds(seconds + 1)
}

fn time(v: &Value, field: &str) -> DateTime<Utc> {
    v[field].as_str().expect("a time").parse().expect("RFC 3339")
}

/// A makrcave with a makerspace and idle machines (heard from, and not timing out).
async fn setup(machines: &[(&str, Value)]) -> TestApp {
    let t = TestApp::spawn_with(TestOptions { heartbeat_timeout_s: Some(3600), ..Default::default() }).await;
    t.makerspace(S).await;
    let p = t.publisher().await;
    for (id, extra) in machines {
        t.machine(S, id, extra.clone()).await;
        p.telemetry(S, id, json!({"state": "idle"})).await;
        t.wait_state(S, id, "the machine online", |s| s["state"] == "idle").await;
    }
    t
}

fn member(t: &TestApp, sub: &str) -> String {
    t.token(sub, Role::Member, &[S])
}

fn space_admin(t: &TestApp) -> String {
    t.token("boss", Role::MakerspaceAdmin, &[S])
}

async fn book(t: &TestApp, token: &str, body: Value) -> Value {
    let (status, created) = t.post(&reservations(), token, body).await;
    assert_eq!(status, 201, "{created}");
    created
}

fn slot(machine: &str, start: DateTime<Utc>, end: DateTime<Utc>) -> Value {
    json!({"equipment_id": machine, "start": start.to_rfc3339(), "end": end.to_rfc3339()})
}

async fn post_ok(t: &TestApp, token: &str, path: String) -> Value {
    let (status, body) = t.post(&path, token, json!({})).await;
    assert_eq!(status, 200, "{path}: {body}");
    body
}

async fn open_ws(t: &TestApp, token: &str) -> Socket {
    crate::common::open_space_ws(t, token, S).await
}

async fn until(ws: &mut Socket, check: impl Fn(&Value) -> bool) -> Value {
    crate::common::ws_until(ws, check).await
}

async fn add_member(t: &TestApp, user: &str, card: &str) {
    let root = t.super_admin();
    let (status, m) = t
        .post(
            &format!("/api/v1/makerspaces/{S}/members"),
            &root,
            json!({"email": format!("{user}@example.org"), "first_name": user, "last_name": "M", "user_id": user}),
        )
        .await;
    assert_eq!(status, 201, "{m}");
    let id = m["id"].as_str().expect("id");
    let (status, c) = t.post(&format!("/api/v1/makerspaces/{S}/members/{id}/cards"), &root, json!({"uid": card})).await;
    assert_eq!(status, 201, "{c}");
}

async fn kiosk(t: &TestApp, action: &str, token: &str, body: Value) -> Value {
    let (status, answer) =
        t.send(reqwest::Method::POST, &format!("/api/v1/kiosk/{action}"), Some(token), Some(body)).await;
    assert_eq!(status, 200, "{answer}");
    answer
}

#[actix_web::test]
async fn a_booking_in_progress_shows_reserved_and_then_idle_again() {
    let t = setup(&[("m1", json!({})), ("m2", json!({}))]).await;
    let mut ws = open_ws(&t, &space_admin(&t)).await;
    let start = in_seconds(3);
    let end = start + Span::seconds(4);
    let booking = book(&t, &member(&t, "ann"), slot("m1", start, end)).await;
    let id = booking["id"].as_str().expect("id");
    assert_eq!(t.state(S, "m1").await["state"], "idle", "not before its start");

    let reserved = t.wait_state(S, "m1", "m1 reserved", |s| s["state"] == "reserved").await;
    assert!(time(&reserved, "since") >= start, "reserved from the start: {reserved}");
    assert_eq!(reserved["reservation"]["id"], id);
    assert_eq!(reserved["reservation"]["user_id"], "ann");
    assert_eq!(time(&reserved["reservation"], "end"), end);
    assert_eq!(reserved["online"], true, "the live state underneath is kept");
    let pushed = until(&mut ws, |m| {
        m["type"] == "machine" && m["machine"]["equipment_id"] == "m1" && m["machine"]["state"] == "reserved"
    })
    .await;
    assert_eq!(pushed["machine"]["reservation"]["id"], id);
    let (status, equipment) = t.get(&format!("/api/v1/makerspaces/{S}/equipment/m1"), Some(&t.super_admin())).await;
    assert_eq!(status, 200, "{equipment}");
    assert_eq!(
        (equipment["live_state"].as_str(), equipment["is_available"].as_bool()),
        (Some("reserved"), Some(false))
    );
    assert_eq!(t.state(S, "m2").await["state"], "idle", "other machines are not touched");

    let idle = t.wait_state(S, "m1", "m1 idle after the booking", |s| s["state"] == "idle").await;
    assert!(time(&idle, "since") >= end, "until the end: {idle}");
    assert!(idle["reservation"].is_null(), "{idle}");
    until(&mut ws, |m| {
        m["type"] == "machine" && m["machine"]["equipment_id"] == "m1" && m["machine"]["state"] == "idle"
    })
    .await;
    t.stop().await;
}

#[actix_web::test]
async fn the_holder_unlocks_a_reserved_machine_and_a_released_booking_frees_it() {
    let t = setup(&[("m1", json!({})), ("m2", json!({})), ("m3", json!({"requires_approval": true}))]).await;
    add_member(&t, "ada", "04:AD:AD:AD").await;
    add_member(&t, "bob", "04:B0:B0:B0").await;
    let admin = space_admin(&t);
    let (status, registered) = t.post(&format!("/api/v1/makerspaces/{S}/kiosks"), &admin, json!({"name": "k"})).await;
    assert_eq!(status, 201, "{registered}");
    let device = registered["token"].as_str().expect("device token").to_string();

    let start = in_seconds(1);
    let booking = book(&t, &member(&t, "ada"), slot("m1", start, start + Span::hours(1))).await;
    let id = booking["id"].as_str().expect("id");
    t.wait_state(S, "m1", "m1 reserved", |s| s["state"] == "reserved").await;

    // The actor fails and comes back still knowing the booking.
    let restarts = t.metric("makrcave_actor_restarts_total", "").await;
    t.app().state().fleet.inject_fault(S, "m1").expect("m1 exists");
    eventually(Duration::from_secs(5), "the restart to be counted", || async {
        (t.metric("makrcave_actor_restarts_total", "").await > restarts).then_some(())
    })
    .await;
    let s = t.wait_state(S, "m1", "m1 reserved after its restart", |s| s["state"] == "reserved").await;
    assert_eq!(s["reservation"]["id"], id);

    // Someone else is refused by the book; the holder unlocks: in_use wins.
    let refused = kiosk(&t, "unlock", &device, json!({"equipment_id": "m1", "card_uid": "04B0B0B0"})).await;
    assert_eq!(refused["reason"], "reserved_by_other", "{refused}");
    let granted = kiosk(&t, "unlock", &device, json!({"equipment_id": "m1", "card_uid": "04ADADAD"})).await;
    assert_eq!((granted["granted"].as_bool(), granted["reservation_id"].as_str()), (Some(true), Some(id)), "{granted}");
    let in_use = t.wait_state(S, "m1", "m1 in use", |s| s["state"] == "in_use").await;
    assert_eq!(in_use["session"]["user_id"], "ada");
    assert_eq!(in_use["reservation"]["id"], id, "the booking still shows");
    // Locked before the booking ends: the machine is held for the booking again.
    let locked = kiosk(&t, "lock", &device, json!({"equipment_id": "m1", "card_uid": "04ADADAD"})).await;
    assert_eq!(locked["locked"], true, "{locked}");
    let s = t.wait_state(S, "m1", "m1 reserved again", |s| s["state"] == "reserved").await;
    assert!(s["session"].is_null());

    // A pending request holds nothing; a maintenance window shows as maintenance.
    let bob = member(&t, "bob");
    let request = book(&t, &bob, slot("m3", in_seconds(1), in_seconds(1) + Span::hours(1))).await;
    assert_eq!(request["status"], "pending");
    let mut window = slot("m2", in_seconds(1), in_seconds(1) + Span::hours(1));
    window["kind"] = json!("maintenance");
    let window = book(&t, &admin, window).await;
    let s = t.wait_state(S, "m2", "m2 in its maintenance window", |s| s["state"] == "maintenance").await;
    assert_eq!(
        (s["reservation"]["id"].as_str(), s["reservation"]["kind"].as_str()),
        (window["id"].as_str(), Some("maintenance"))
    );
    assert_eq!(t.state(S, "m3").await["state"], "idle", "the request has started but holds nothing");
    let request_id = request["id"].as_str().expect("id");
    post_ok(&t, &admin, format!("{}/{request_id}/approve", reservations())).await;
    t.wait_state(S, "m3", "m3 reserved once approved", |s| s["state"] == "reserved").await;

    // Cancelled: back at once.
    let window_id = window["id"].as_str().expect("id");
    post_ok(&t, &admin, format!("{}/{window_id}/cancel", reservations())).await;
    let s = t.wait_state(S, "m2", "m2 idle after the cancellation", |s| s["state"] == "idle").await;
    assert!(s["reservation"].is_null());
    post_ok(&t, &bob, format!("{}/{request_id}/cancel", reservations())).await;
    t.wait_state(S, "m3", "m3 idle after the cancellation", |s| s["state"] == "idle").await;

    // Released as a no-show (a zero-minute check-in window): back too.
    let (status, _) = t
        .put(
            &format!("/api/v1/makerspaces/{S}"),
            &t.super_admin(),
            json!({"settings": {"booking": {"check_in_window_minutes": 0}}}),
        )
        .await;
    assert_eq!(status, 200);
    let missed = book(&t, &bob, slot("m2", in_seconds(2), in_seconds(2) + Span::hours(1))).await;
    let missed_id = missed["id"].as_str().expect("id").to_string();
    eventually(Duration::from_secs(10), "the booking released as a no-show", || async {
        let (_, r) = t.get(&format!("{}/{missed_id}", reservations()), Some(&admin)).await;
        (r["status"] == "no_show").then_some(())
    })
    .await;
    let s = t.wait_state(S, "m2", "m2 idle after the no-show", |s| s["state"] == "idle").await;
    assert!(s["reservation"].is_null(), "{s}");
    t.stop().await;
}

#[actix_web::test]
async fn the_machines_learn_the_book_again_at_start() {
    let mut t = setup(&[("m1", json!({})), ("m2", json!({}))]).await;
    let ann = member(&t, "ann");
    let start = in_seconds(1);
    let booking = book(&t, &ann, slot("m1", start, start + Span::hours(1))).await;
    let cancelled = book(&t, &ann, slot("m2", start, start + Span::hours(1))).await;
    let cancelled_id = cancelled["id"].as_str().expect("id");
    post_ok(&t, &ann, format!("{}/{cancelled_id}/cancel", reservations())).await;
    t.wait_state(S, "m1", "m1 reserved", |s| s["state"] == "reserved").await;

    t.restart().await;
    let s = t.wait_state(S, "m1", "m1 reserved after the restart", |s| s["state"] == "reserved").await;
    assert_eq!(s["reservation"]["id"], booking["id"]);
    let m2 = t.state(S, "m2").await;
    assert_eq!((m2["state"].as_str(), m2["reservation"].is_null()), (Some("idle"), true), "{m2}");
    t.stop().await;
}
