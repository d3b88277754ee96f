//! The reservation book: no double booking under a race, the rules, approval, check-in and
//! no-shows, the waitlist, availability, and the WebSocket messages of every change.

use std::time::Duration;

use chrono::{DateTime, Duration as Span, SubsecRound, Utc};
use makrcave::domain::access::Role;
use serde_json::{json, Value};

use crate::common::{eventually, TestApp};

use crate::common::Socket;

const SPACE: &str = "rs";

fn base() -> String {
    format!("/api/v1/makerspaces/{SPACE}/reservations")
}

/// `n` hours after a fixed origin (the first call), so that the times of one test agree
/// however long it runs.
fn hour(n: i64) -> DateTime<Utc> {
    static ORIGIN: std::sync::OnceLock<DateTime<Utc>> = std::sync::OnceLock::new();
    *ORIGIN.get_or_init(|| Utc::now().trunc_subsecs(0) + Span::minutes(5)) + Span::hours(n)
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339()
}

async fn setup() -> TestApp {
    let t = TestApp::spawn().await;
    t.makerspace(SPACE).await;
    t
}

fn member(t: &TestApp, sub: &str) -> String {
    t.token(sub, Role::Member, &[SPACE])
}

fn space_admin(t: &TestApp) -> String {
    t.token("boss", Role::MakerspaceAdmin, &[SPACE])
}

async fn book(t: &TestApp, token: &str, machine: &str, start: DateTime<Utc>, end: DateTime<Utc>) -> (u16, Value) {
    t.post(&base(), token, json!({"equipment_id": machine, "start": ts(start), "end": ts(end)})).await
}

async fn stored(t: &TestApp, query: &str) -> Vec<Value> {
    let (status, body) = t.get(&format!("{}?{query}", base()), Some(&t.super_admin())).await;
    assert_eq!(status, 200, "{body}");
    body.as_array().expect("a list").clone()
}

fn time(v: &Value, field: &str) -> DateTime<Utc> {
    v[field].as_str().expect("a time").parse().expect("RFC 3339")
}

async fn open_ws(t: &TestApp, token: &str) -> Socket {
    crate::common::open_space_ws(t, token, SPACE).await
}

async fn until(ws: &mut Socket, check: impl Fn(&Value) -> bool) -> Value {
    crate::common::ws_until(ws, check).await
}

#[actix_web::test]
async fn fifty_racing_clients_never_double_book_a_machine() {
    let t = setup().await;
    t.machine(SPACE, "m1", json!({})).await;
    let origin = hour(2);
    // 50 clients, 10 overlapping 1-hour slots starting every 30 minutes: each slot is wanted
    // by five clients and overlaps its neighbours.
    let mut tasks = Vec::new();
    for i in 0..50i64 {
        let http = t.http.clone();
        let url = t.url(&base());
        let token = member(&t, &format!("racer-{i}"));
        let start = origin + Span::minutes(30 * (i % 10));
        let body = json!({"equipment_id": "m1", "start": ts(start), "end": ts(start + Span::hours(1))});
        tasks.push(tokio::spawn(async move {
            let res = http.post(url).bearer_auth(token).json(&body).send().await.expect("request");
            let status = res.status().as_u16();
            let body: Value = res.json().await.expect("json body");
            (status, body)
        }));
    }
    let mut created = 0;
    for task in tasks {
        let (status, body) = task.await.expect("task");
        match status {
            201 => created += 1,
            409 => {
                assert_eq!(body["error_type"], "reservation_conflict", "{body}");
                let list = body["conflicting_reservations"].as_array().expect("conflicts");
                assert!(!list.is_empty(), "{body}");
            }
            other => panic!("every request gets 201 or 409, not {other}: {body}"),
        }
    }
    let held: Vec<Value> = stored(&t, "equipment_id=m1")
        .await
        .into_iter()
        .filter(|r| r["status"] == "confirmed" || r["status"] == "checked_in")
        .collect();
    assert_eq!(created, held.len(), "every 201 is a stored booking and nothing else is");
    // Nothing was refused for no reason: every wanted slot is stored or overlaps a stored one.
    for k in 0..10 {
        let (start, end) = (origin + Span::minutes(30 * k), origin + Span::minutes(30 * k + 60));
        let blocked = held.iter().any(|b| time(b, "start") < end && start < time(b, "end"));
        assert!(blocked, "slot {k} was refused although nothing overlaps it");
    }
    for (i, a) in held.iter().enumerate() {
        for b in &held[i + 1..] {
            let overlap = time(a, "start") < time(b, "end") && time(b, "start") < time(a, "end");
            assert!(!overlap, "overlapping bookings stored: {a} and {b}");
        }
    }
    t.stop().await;
}

#[actix_web::test]
async fn touching_bookings_fit_and_overlaps_answer_409_with_the_conflict() {
    let t = setup().await;
    t.machine(SPACE, "m1", json!({})).await;
    let ann = member(&t, "ann");
    let (status, first) = book(&t, &ann, "m1", hour(1), hour(2)).await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["status"], "confirmed");
    assert_eq!(first["user_id"], "ann");
    let (status, second) = book(&t, &member(&t, "bob"), "m1", hour(2), hour(3)).await;
    assert_eq!(status, 201, "touching bookings do not overlap: {second}");
    let (status, clash) =
        book(&t, &member(&t, "cid"), "m1", hour(1) + Span::minutes(30), hour(2) + Span::minutes(30)).await;
    assert_eq!(status, 409, "{clash}");
    assert_eq!(clash["error_type"], "reservation_conflict");
    let ids: Vec<&str> =
        clash["conflicting_reservations"].as_array().expect("list").iter().filter_map(|c| c["id"].as_str()).collect();
    assert_eq!(ids, vec![first["id"].as_str().expect("id"), second["id"].as_str().expect("id")]);
    assert_eq!(stored(&t, "equipment_id=m1").await.len(), 2, "a rejected request stores nothing");
    // Bad input is 4xx, never 500.
    let (status, _) = book(&t, &ann, "m1", hour(3), hour(3)).await;
    assert_eq!(status, 422);
    let (status, _) = book(&t, &ann, "nope", hour(5), hour(6)).await;
    assert_eq!(status, 422, "the body names no machine of the space");
    let (status, _) = t.post(&base(), &ann, json!({"equipment_id": "m1", "start": "soon"})).await;
    assert_eq!(status, 422);
    t.stop().await;
}

#[actix_web::test]
async fn who_may_book_cancel_and_read() {
    let t = setup().await;
    t.makerspace("other").await;
    t.machine(SPACE, "m1", json!({})).await;
    let ann = member(&t, "ann");
    let (status, _) = t
        .post(&base(), &ann, json!({"equipment_id": "m1", "start": ts(hour(1)), "end": ts(hour(2)), "user_id": "bob"}))
        .await;
    assert_eq!(status, 403, "members book for themselves only");
    let (status, _) = book(&t, &t.token("reader", Role::Admin, &[]), "m1", hour(1), hour(2)).await;
    assert_eq!(status, 403, "admin only reads");
    let (status, _) = book(&t, &t.token("x", Role::Member, &["other"]), "m1", hour(1), hour(2)).await;
    assert_eq!(status, 404, "other spaces do not exist for you");
    // An admin books for a member of the space (one in our database).
    let (status, bob) = t
        .post(
            &format!("/api/v1/makerspaces/{SPACE}/members"),
            &t.super_admin(),
            json!({"email": "bob@example.org", "first_name": "Bob", "last_name": "B", "user_id": "bob"}),
        )
        .await;
    assert_eq!(status, 201, "{bob}");
    let (status, booking) = t
        .post(
            &base(),
            &space_admin(&t),
            json!({"equipment_id": "m1", "start": ts(hour(1)), "end": ts(hour(2)), "user_id": "bob"}),
        )
        .await;
    assert_eq!(status, 201, "{booking}");
    assert_eq!(booking["user_id"], "bob");
    let id = booking["id"].as_str().expect("id");
    let (status, _) = t.post(&format!("{}/{id}/cancel", base()), &ann, json!({})).await;
    assert_eq!(status, 403, "only the owner or an admin cancels");
    let (status, mine) = t.get(&format!("{}?user_id=me", base()), Some(&member(&t, "bob"))).await;
    assert_eq!(status, 200);
    assert_eq!(mine.as_array().map(Vec::len), Some(1));
    let (status, cancelled) = t.post(&format!("{}/{id}/cancel", base()), &member(&t, "bob"), json!({})).await;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled");
    let (status, again) = t.post(&format!("{}/{id}/cancel", base()), &member(&t, "bob"), json!({})).await;
    assert_eq!(status, 409, "{again}");
    let (status, one) = t.get(&format!("{}/{id}", base()), Some(&t.token("reader", Role::Admin, &[]))).await;
    assert_eq!(status, 200);
    let actions: Vec<&str> =
        one["history"].as_array().expect("history").iter().filter_map(|h| h["action"].as_str()).collect();
    assert_eq!(actions, vec!["created", "cancelled"]);
    // The slot is free again.
    let (status, _) = book(&t, &ann, "m1", hour(1), hour(2)).await;
    assert_eq!(status, 201);
    t.stop().await;
}

#[actix_web::test]
async fn equipment_that_requires_approval_keeps_bookings_pending() {
    let t = setup().await;
    let created = t.machine(SPACE, "laser", json!({"type": "laser_cutter", "requires_approval": true})).await;
    assert_eq!(created["requires_approval"], true);
    let ann = member(&t, "ann");
    let (status, a) = book(&t, &ann, "laser", hour(1), hour(2)).await;
    assert_eq!(status, 201, "{a}");
    assert_eq!(a["status"], "pending");
    let (status, b) = book(&t, &member(&t, "bob"), "laser", hour(1), hour(2)).await;
    assert_eq!(status, 201, "pending requests do not hold the slot: {b}");
    let a_id = a["id"].as_str().expect("id");
    let b_id = b["id"].as_str().expect("id");
    let (status, _) = t.post(&format!("{}/{a_id}/approve", base()), &ann, json!({})).await;
    assert_eq!(status, 403);
    let admin = space_admin(&t);
    let (status, approved) = t.post(&format!("{}/{a_id}/approve", base()), &admin, json!({})).await;
    assert_eq!(status, 200, "{approved}");
    assert_eq!(approved["status"], "confirmed");
    assert_eq!(approved["decided_by"], "boss");
    let (status, clash) = t.post(&format!("{}/{b_id}/approve", base()), &admin, json!({})).await;
    assert_eq!(status, 409, "{clash}");
    assert_eq!(clash["error_type"], "reservation_conflict");
    let (status, rejected) = t.post(&format!("{}/{b_id}/reject", base()), &admin, json!({"reason": "taken"})).await;
    assert_eq!(status, 200, "{rejected}");
    assert_eq!(rejected["status"], "rejected");
    assert_eq!(rejected["reason"], "taken");
    let (status, _) = t.post(&format!("{}/{b_id}/reject", base()), &admin, json!({})).await;
    assert_eq!(status, 409, "a decided request cannot be decided again");
    // An admin's own booking of the machine is confirmed at once.
    let (status, own) = book(&t, &admin, "laser", hour(3), hour(4)).await;
    assert_eq!((status, own["status"].as_str()), (201, Some("confirmed")));
    t.stop().await;
}

#[actix_web::test]
async fn makerspace_rules_bound_bookings() {
    let t = setup().await;
    t.machine(SPACE, "m1", json!({})).await;
    let root = t.super_admin();
    let path = format!("/api/v1/makerspaces/{SPACE}");
    let (status, _) = t.put(&path, &root, json!({"settings": {"booking": {"max_hours": 0}}})).await;
    assert_eq!(status, 422, "invalid rules are refused");
    let (status, _) = t.put(&path, &root, json!({"settings": {"booking": {"surprise": 1}}})).await;
    assert_eq!(status, 422);
    let rules = json!({"settings": {"booking": {"max_hours": 2, "max_days_ahead": 3, "min_gap_minutes": 30}}});
    let (status, body) = t.put(&path, &root, rules).await;
    assert_eq!(status, 200, "{body}");
    let ann = member(&t, "ann");
    let (status, body) = book(&t, &ann, "m1", hour(1), hour(4)).await;
    assert_eq!(status, 422, "longer than max_hours: {body}");
    let (status, _) = book(&t, &ann, "m1", hour(24 * 4), hour(24 * 4 + 1)).await;
    assert_eq!(status, 422, "further ahead than max_days_ahead");
    let (status, _) = book(&t, &ann, "m1", hour(-2), hour(-1)).await;
    assert_eq!(status, 422, "in the past");
    let (status, _) = book(&t, &ann, "m1", hour(1), hour(2)).await;
    assert_eq!(status, 201);
    let (status, gap) = book(&t, &member(&t, "bob"), "m1", hour(2) + Span::minutes(10), hour(3)).await;
    assert_eq!(status, 409, "closer than min_gap_minutes: {gap}");
    let (status, _) = book(&t, &member(&t, "bob"), "m1", hour(2) + Span::minutes(30), hour(3)).await;
    assert_eq!(status, 201, "exactly the gap is fine");
    t.stop().await;
}

#[actix_web::test]
async fn maintenance_blocks_booking() {
    let t = setup().await;
    t.machine(SPACE, "m1", json!({})).await;
    t.machine(SPACE, "broken", json!({"status": "maintenance"})).await;
    let ann = member(&t, "ann");
    let (status, body) = book(&t, &ann, "broken", hour(1), hour(2)).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error_type"], "equipment_unavailable");
    let window = json!({"equipment_id": "m1", "start": ts(hour(1)), "end": ts(hour(30)), "kind": "maintenance"});
    let (status, _) = t.post(&base(), &ann, window.clone()).await;
    assert_eq!(status, 403, "members do not block maintenance windows");
    let (status, blocked) = t.post(&base(), &space_admin(&t), window).await;
    assert_eq!(status, 201, "{blocked}");
    assert_eq!(blocked["kind"], "maintenance");
    let (status, clash) = book(&t, &ann, "m1", hour(3), hour(4)).await;
    assert_eq!(status, 409);
    assert_eq!(clash["conflicting_reservations"][0]["kind"], "maintenance");
    // Nobody checks in to a maintenance window: it ends as completed, never as a no-show.
    t.machine(SPACE, "m2", json!({})).await;
    let start = Utc::now().trunc_subsecs(0) + Span::seconds(1);
    let short =
        json!({"equipment_id": "m2", "start": ts(start), "end": ts(start + Span::seconds(2)), "kind": "maintenance"});
    let (status, short) = t.post(&base(), &space_admin(&t), short).await;
    assert_eq!(status, 201, "{short}");
    let id = short["id"].as_str().expect("id").to_string();
    let admin = space_admin(&t);
    let done = eventually(Duration::from_secs(15), "the maintenance window to end", || async {
        let (_, one) = t.get(&format!("{}/{id}", base()), Some(&admin)).await;
        (one["status"] != "confirmed").then_some(one)
    })
    .await;
    assert_eq!(done["status"], "completed", "{done}");
    t.stop().await;
}

#[actix_web::test]
async fn check_in_opens_around_the_start_and_no_shows_are_released() {
    let t = setup().await;
    t.machine(SPACE, "m1", json!({})).await;
    t.machine(SPACE, "m2", json!({})).await;
    let ann = member(&t, "ann");
    let mut ws = open_ws(&t, &ann).await;
    // Far from its start: check-in is closed.
    let (_, later) = book(&t, &ann, "m1", hour(3), hour(4)).await;
    let later_id = later["id"].as_str().expect("id");
    let (status, body) = t.post(&format!("{}/{later_id}/check-in", base()), &ann, json!({})).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error_type"], "outside_check_in_window");
    // Starting in a minute: inside the default 15-minute window.
    let soon = Utc::now().trunc_subsecs(0) + Span::minutes(1);
    let (status, booking) = book(&t, &ann, "m1", soon, soon + Span::hours(1)).await;
    assert_eq!(status, 201, "{booking}");
    let id = booking["id"].as_str().expect("id").to_string();
    let pushed = until(&mut ws, |m| m["type"] == "reservation" && m["reservation"]["id"] == id.as_str()).await;
    assert_eq!(pushed["reservation"]["status"], "confirmed");
    let (status, _) = t.post(&format!("{}/{id}/check-in", base()), &member(&t, "bob"), json!({})).await;
    assert_eq!(status, 403, "only the owner checks in");
    let (status, checked) = t.post(&format!("{}/{id}/check-in", base()), &ann, json!({})).await;
    assert_eq!(status, 200, "{checked}");
    assert_eq!(checked["status"], "checked_in");
    let pushed = until(&mut ws, |m| m["type"] == "reservation" && m["reservation"]["id"] == id.as_str()).await;
    assert_eq!(pushed["reservation"]["status"], "checked_in");

    // A zero-minute window: a booking not checked in at its start is released at once.
    let path = format!("/api/v1/makerspaces/{SPACE}");
    let (status, _) =
        t.put(&path, &t.super_admin(), json!({"settings": {"booking": {"check_in_window_minutes": 0}}})).await;
    assert_eq!(status, 200);
    let start = Utc::now().trunc_subsecs(0) + Span::seconds(2);
    let (status, missed) = book(&t, &ann, "m2", start, start + Span::hours(1)).await;
    assert_eq!(status, 201, "{missed}");
    let missed_id = missed["id"].as_str().expect("id").to_string();
    let pushed = until(&mut ws, |m| {
        m["type"] == "reservation"
            && m["reservation"]["id"] == missed_id.as_str()
            && m["reservation"]["status"] == "no_show"
    })
    .await;
    assert_eq!(pushed["reservation"]["status"], "no_show");
    let one = eventually(Duration::from_secs(10), "the no-show in the log", || async {
        let (_, one) = t.get(&format!("{}/{missed_id}", base()), Some(&ann)).await;
        let logged = one["history"].as_array()?.iter().any(|h| h["action"] == "no_show" && h["actor"] == "system");
        logged.then_some(one)
    })
    .await;
    assert_eq!(one["status"], "no_show");
    // The released slot can be booked again.
    let (status, _) = book(&t, &member(&t, "bob"), "m2", hour(1), hour(2)).await;
    assert_eq!(status, 201);
    t.stop().await;
}

#[actix_web::test]
async fn a_waiting_member_is_offered_a_freed_slot() {
    let t = setup().await;
    t.machine(SPACE, "m1", json!({})).await;
    let (ann, bob) = (member(&t, "ann"), member(&t, "bob"));
    let waitlist = format!("/api/v1/makerspaces/{SPACE}/waitlist");
    let slot = json!({"equipment_id": "m1", "start": ts(hour(1)), "end": ts(hour(2))});
    let (status, free) = t.post(&waitlist, &bob, slot.clone()).await;
    assert_eq!(status, 409, "a free slot is booked, not queued for: {free}");
    assert_eq!(free["error_type"], "slot_available");
    let (_, taken) = book(&t, &ann, "m1", hour(1), hour(2)).await;
    let (status, entry) = t.post(&waitlist, &bob, slot).await;
    assert_eq!(status, 201, "{entry}");
    assert_eq!(entry["status"], "waiting");
    let (status, mine) = t.get(&waitlist, Some(&bob)).await;
    assert_eq!(status, 200);
    assert_eq!(mine.as_array().map(Vec::len), Some(1));
    let (_, theirs) = t.get(&waitlist, Some(&ann)).await;
    assert_eq!(theirs.as_array().map(Vec::len), Some(0), "members see their own entries");
    let mut ws = open_ws(&t, &bob).await;
    let id = taken["id"].as_str().expect("id");
    let (status, _) = t.post(&format!("{}/{id}/cancel", base()), &ann, json!({})).await;
    assert_eq!(status, 200);
    let offer = until(&mut ws, |m| m["type"] == "waitlist_offer").await;
    assert_eq!(offer["user_id"], "bob");
    assert_eq!(offer["waitlist_entry"]["id"], entry["id"]);
    assert_eq!(offer["waitlist_entry"]["status"], "offered");
    let (status, booked) = book(&t, &bob, "m1", hour(1), hour(2)).await;
    assert_eq!(status, 201, "{booked}");
    let entry_id = entry["id"].as_str().expect("id");
    let (_, left) = t.get(&waitlist, Some(&bob)).await;
    assert_eq!(left.as_array().map(Vec::len), Some(0), "a booked entry is no longer live: {left}");
    let (status, body) = t.delete(&format!("{waitlist}/{entry_id}"), &bob).await;
    assert_eq!((status, body["error_type"].as_str()), (409, Some("invalid_status")), "{body}");
    t.stop().await;
}

#[actix_web::test]
async fn available_lists_machines_free_for_the_whole_window() {
    let t = setup().await;
    t.machine(SPACE, "p1", json!({})).await;
    t.machine(SPACE, "p2", json!({})).await;
    t.machine(SPACE, "laser", json!({"type": "laser_cutter"})).await;
    t.machine(SPACE, "down", json!({"status": "maintenance"})).await;
    let ann = member(&t, "ann");
    let (status, _) = book(&t, &ann, "p1", hour(1), hour(2)).await;
    assert_eq!(status, 201);
    let ids = |body: &Value| -> Vec<String> {
        body.as_array().expect("list").iter().filter_map(|m| m["id"].as_str().map(String::from)).collect()
    };
    let url = |start: DateTime<Utc>, end: DateTime<Utc>, kind: &str| {
        let mut u = format!(
            "/api/v1/makerspaces/{SPACE}/equipment/available?start={}&end={}",
            urlencode(&ts(start)),
            urlencode(&ts(end))
        );
        if !kind.is_empty() {
            u.push_str(&format!("&type={kind}"));
        }
        u
    };
    let (status, body) = t.get(&url(hour(1) + Span::minutes(30), hour(3), ""), Some(&ann)).await;
    assert_eq!(status, 200, "{body}");
    let mut got = ids(&body);
    got.sort();
    assert_eq!(got, vec!["laser", "p2"]);
    let (_, body) = t.get(&url(hour(2), hour(3), "3d_printer"), Some(&ann)).await;
    let mut got = ids(&body);
    got.sort();
    assert_eq!(got, vec!["p1", "p2"], "touching the booking is free");
    let (status, _) = t.get(&url(hour(3), hour(2), ""), Some(&ann)).await;
    assert_eq!(status, 422);
    let (status, _) = t.get(&url(hour(1), hour(2), ""), Some(&t.token("x", Role::Member, &["elsewhere"]))).await;
    assert_eq!(status, 404);
    t.stop().await;
}

fn urlencode(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}

/// The database's own guarantee, below the application's check: with the check given an
/// empty window (so it sees nothing), PostgreSQL's exclusion constraint still refuses an
/// overlapping confirmed booking (SQLSTATE 23P01, answered as a conflict naming the booking
/// in the way) and accepts one that only touches. SQLite has no such constraint; there the
/// application's serialized check (the race test above) is the guarantee.
#[actix_web::test]
async fn postgres_exclusion_constraint_backs_the_check() {
    use makrcave::domain::booking::{ReservationKind, ReservationStatus};
    use makrcave::store::reservations::ReservationRecord;
    let t = setup().await;
    t.machine(SPACE, "m1", json!({})).await;
    let store = &t.app().state().store;
    let record = |id: &str, start: DateTime<Utc>, end: DateTime<Utc>| ReservationRecord {
        id: id.into(),
        makerspace_id: SPACE.into(),
        equipment_id: "m1".into(),
        user_id: "ann".into(),
        kind: ReservationKind::Booking,
        status: ReservationStatus::Confirmed,
        start_at: start,
        end_at: end,
        purpose: None,
        created_by: "ann".into(),
        decided_by: None,
        reason: None,
        checked_in_at: None,
        created_at: Utc::now(),
        updated_at: Utc::now(),
    };
    let blind = |end: DateTime<Utc>| (end, end);
    let first = record("r1", hour(1), hour(2));
    assert_eq!(store.create_reservation(&first, blind(hour(2))).await.expect("store"), Ok(()));
    let touching = record("r2", hour(2), hour(3));
    assert_eq!(store.create_reservation(&touching, blind(hour(3))).await.expect("store"), Ok(()));
    let overlapping = record("r3", hour(1) + Span::minutes(30), hour(1) + Span::minutes(45));
    let outcome = store.create_reservation(&overlapping, blind(hour(1))).await.expect("store");
    match crate::common::database_kind() {
        crate::common::DatabaseKind::Postgres => match outcome {
            Err(c) => assert_eq!(c.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), vec!["r1"]),
            other => panic!("the exclusion constraint must refuse the overlap, got {other:?}"),
        },
        // Without the check SQLite stores it: the check is what guards SQLite.
        crate::common::DatabaseKind::Sqlite => assert_eq!(outcome, Ok(())),
    }
    t.stop().await;
}

/// Bookings queued together are written together by the booking writer (one transaction on
/// SQLite, one `book_reservations` call on PostgreSQL): each is still checked against the
/// ones before it, a refusal names bookings that really are in its way, and every stored
/// booking has exactly one "created" line in its history.
#[actix_web::test]
async fn bookings_written_in_one_batch_are_each_checked() {
    use makrcave::domain::booking::{ReservationKind, ReservationStatus};
    use makrcave::store::reservations::ReservationRecord;
    let t = setup().await;
    t.machine(SPACE, "m1", json!({})).await;
    t.machine(SPACE, "m2", json!({})).await;
    let store = t.app().state().store.clone();
    let record = |i: i64| {
        // Three machines' worth of 1-hour slots every 20 minutes: each overlaps its neighbours.
        let start = hour(3) + Span::minutes(20 * (i / 2));
        ReservationRecord {
            id: format!("batch-{i}"),
            makerspace_id: SPACE.into(),
            equipment_id: if i % 2 == 0 { "m1".into() } else { "m2".into() },
            user_id: format!("user-{i}"),
            kind: ReservationKind::Booking,
            status: ReservationStatus::Confirmed,
            start_at: start,
            end_at: start + Span::hours(1),
            purpose: None,
            created_by: format!("user-{i}"),
            decided_by: None,
            reason: None,
            checked_in_at: None,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    };
    let records: Vec<ReservationRecord> = (0..30).map(record).collect();
    // Sent at once from one task: they wait in the writer's queue together.
    let outcomes =
        futures_util::future::join_all(records.iter().map(|r| store.create_reservation(r, (r.start_at, r.end_at))))
            .await;
    let mut stored: Vec<&ReservationRecord> = Vec::new();
    for (r, outcome) in records.iter().zip(outcomes) {
        match outcome.expect("store") {
            Ok(()) => stored.push(r),
            Err(in_the_way) => {
                assert!(!in_the_way.is_empty(), "{} refused with nothing in the way", r.id);
                for other in &in_the_way {
                    assert_eq!(other.equipment_id, r.equipment_id);
                    assert!(
                        other.start_at < r.end_at && r.start_at < other.end_at,
                        "{} is not in {}'s way",
                        other.id,
                        r.id
                    );
                }
            }
        }
    }
    // Slots every 20 minutes, an hour long: every third one per machine fits.
    assert_eq!(stored.len(), 10, "{:?}", stored.iter().map(|r| &r.id).collect::<Vec<_>>());
    for (i, a) in stored.iter().enumerate() {
        for b in &stored[i + 1..] {
            let overlap = a.equipment_id == b.equipment_id && a.start_at < b.end_at && b.start_at < a.end_at;
            assert!(!overlap, "overlapping bookings stored: {} and {}", a.id, b.id);
        }
        let history = store.reservation_events(&a.id).await.expect("history");
        let created: Vec<_> = history.iter().filter(|e| e.action == "created").collect();
        assert_eq!(created.len(), 1, "{}: {history:?}", a.id);
        assert_eq!(created[0].actor, a.created_by);
    }
    t.stop().await;
}

#[actix_web::test]
async fn booking_and_availability_follow_the_skill_gate() {
    let t = setup().await;
    t.machine(SPACE, "laser", json!({"type": "laser_cutter"})).await;
    t.machine(SPACE, "drill", json!({"type": "tool"})).await;
    let root = t.super_admin();
    for (id, name) in [("laser-safety", "Laser safety"), ("laser-basics", "Laser basics")] {
        let (status, body) = t
            .post(
                "/api/v1/skills",
                &root,
                json!({"id": id, "name": name, "category": "Safety", "level": "beginner",
                "makerspace_id": SPACE, "equipment_ids": ["laser"]}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, m) = t
        .post(
            &format!("/api/v1/makerspaces/{SPACE}/members"),
            &root,
            json!({"email": "ada@example.org", "first_name": "Ada", "last_name": "L", "user_id": "ada"}),
        )
        .await;
    assert_eq!(status, 201, "{m}");
    let ada = member(&t, "ada");

    // Without the skills: 403 naming every missing one, nothing stored; the laser is not offered.
    let (status, body) = book(&t, &ada, "laser", hour(1), hour(2)).await;
    assert_eq!((status, body["error_type"].as_str()), (403, Some("insufficient_skills")), "{body}");
    let mut missing: Vec<&str> =
        body["missing_skills"].as_array().expect("list").iter().filter_map(Value::as_str).collect();
    missing.sort();
    assert_eq!(missing, vec!["Laser basics", "Laser safety"]);
    assert!(stored(&t, "equipment_id=laser").await.is_empty());
    let available =
        format!("/api/v1/makerspaces/{SPACE}/equipment/available?start={}&end={}", ts(hour(1)), ts(hour(2)));
    let ids = |v: &Value| -> Vec<String> {
        v.as_array().expect("list").iter().filter_map(|m| m["id"].as_str().map(String::from)).collect()
    };
    let (_, free) = t.get(&available.replace('+', "%2B"), Some(&ada)).await;
    assert_eq!(ids(&free), vec!["drill"], "{free}");
    let (_, free_for_admin) = t.get(&available.replace('+', "%2B"), Some(&space_admin(&t))).await;
    assert_eq!(ids(&free_for_admin).len(), 2, "admins see every free machine");

    // Certified: the booking goes through and the laser is offered.
    for skill in ["laser-safety", "laser-basics"] {
        let (status, body) =
            t.post("/api/v1/skills/user-skills", &root, json!({"user_id": "ada", "skill_id": skill})).await;
        assert_eq!(status, 201, "{body}");
    }
    let (_, free) = t.get(&available.replace('+', "%2B"), Some(&ada)).await;
    assert_eq!(ids(&free), vec!["drill", "laser"]);
    let (status, body) = book(&t, &ada, "laser", hour(1), hour(2)).await;
    assert_eq!(status, 201, "{body}");
    // A suspended member books nothing, certified or not.
    let (status, _) = t
        .post(
            &format!("/api/v1/makerspaces/{SPACE}/members/{}/suspend", m["id"].as_str().expect("id")),
            &root,
            json!({"reason": "test"}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = book(&t, &ada, "drill", hour(3), hour(4)).await;
    assert_eq!(status, 404, "the space is closed to a suspended member");
    t.stop().await;
}
