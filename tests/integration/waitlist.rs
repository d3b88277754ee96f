//! The waitlist's life: an entry becomes `booked` when its person books the slot, a person
//! queues once for any instant of a machine (also under a race), and an offer not taken in
//! time expires and passes to the next in line.

use chrono::{DateTime, Duration as Span, SubsecRound, Utc};
use makrcave::domain::access::Role;
use serde_json::{json, Value};

use crate::common::TestApp;

use crate::common::Socket;

const SPACE: &str = "wl";

fn reservations() -> String {
    format!("/api/v1/makerspaces/{SPACE}/reservations")
}

fn waitlist() -> String {
    format!("/api/v1/makerspaces/{SPACE}/waitlist")
}

/// `n` hours after a fixed origin of the test (see reservations.rs).
fn hour(n: i64) -> DateTime<Utc> {
    static ORIGIN: std::sync::OnceLock<DateTime<Utc>> = std::sync::OnceLock::new();
    *ORIGIN.get_or_init(|| Utc::now().trunc_subsecs(0) + Span::minutes(5)) + Span::hours(n)
}

fn slot(machine: &str, start: DateTime<Utc>, end: DateTime<Utc>) -> Value {
    json!({"equipment_id": machine, "start": start.to_rfc3339(), "end": end.to_rfc3339()})
}

async fn setup() -> TestApp {
    let t = TestApp::spawn().await;
    t.makerspace(SPACE).await;
    t
}

fn member(t: &TestApp, sub: &str) -> String {
    t.token(sub, Role::Member, &[SPACE])
}

async fn book(t: &TestApp, token: &str, machine: &str, start: DateTime<Utc>, end: DateTime<Utc>) -> Value {
    let (status, body) = t.post(&reservations(), token, slot(machine, start, end)).await;
    assert_eq!(status, 201, "book {machine}: {body}");
    body
}

async fn join(t: &TestApp, token: &str, machine: &str, start: DateTime<Utc>, end: DateTime<Utc>) -> Value {
    let (status, body) = t.post(&waitlist(), token, slot(machine, start, end)).await;
    assert_eq!(status, 201, "join the waitlist for {machine}: {body}");
    body
}

async fn cancel(t: &TestApp, token: &str, reservation: &Value) {
    let id = reservation["id"].as_str().expect("id");
    let (status, body) = t.post(&format!("{}/{id}/cancel", reservations()), token, json!({})).await;
    assert_eq!(status, 200, "{body}");
}

/// The caller's entries in a status (`None`: the live ones).
async fn entries(t: &TestApp, token: &str, status: Option<&str>) -> Vec<Value> {
    let path = match status {
        Some(s) => format!("{}?status={s}", waitlist()),
        None => waitlist(),
    };
    let (code, body) = t.get(&path, Some(token)).await;
    assert_eq!(code, 200, "{body}");
    body.as_array().expect("a list").clone()
}

fn ids(list: &[Value]) -> Vec<&str> {
    list.iter().filter_map(|e| e["id"].as_str()).collect()
}

async fn open_ws(t: &TestApp, token: &str) -> Socket {
    crate::common::open_space_ws(t, token, SPACE).await
}

async fn until(ws: &mut Socket, check: impl Fn(&Value) -> bool) -> Value {
    crate::common::ws_until(ws, check).await
}

fn offer_to(user: &'static str) -> impl Fn(&Value) -> bool {
    move |m: &Value| m["type"] == "waitlist_offer" && m["user_id"] == user
}

fn entry_now<'a>(id: &'a str, status: &'static str) -> impl Fn(&Value) -> bool + 'a {
    move |m: &Value| {
        m["type"] == "waitlist" && m["waitlist_entry"]["id"] == id && m["waitlist_entry"]["status"] == status
    }
}

#[actix_web::test]
async fn booking_the_slot_marks_the_entry_booked() {
    let t = setup().await;
    t.machine(SPACE, "m1", json!({})).await;
    t.machine(SPACE, "m2", json!({})).await;
    let (ann, bob, cid) = (member(&t, "ann"), member(&t, "bob"), member(&t, "cid"));
    let mut ws = open_ws(&t, &bob).await;

    // An offered entry: Bob books the freed slot and his entry is booked.
    let taken = book(&t, &ann, "m1", hour(1), hour(2)).await;
    let entry = join(&t, &bob, "m1", hour(1), hour(2)).await;
    let entry_id = entry["id"].as_str().expect("id").to_string();
    cancel(&t, &ann, &taken).await;
    let offer = until(&mut ws, offer_to("bob")).await;
    assert_eq!(offer["waitlist_entry"]["id"], entry_id.as_str());
    book(&t, &bob, "m1", hour(1), hour(2)).await;
    let pushed = until(&mut ws, entry_now(&entry_id, "booked")).await;
    assert_eq!(pushed["waitlist_entry"]["user_id"], "bob");
    assert!(entries(&t, &bob, None).await.is_empty(), "a booked entry is not live");
    assert_eq!(ids(&entries(&t, &bob, Some("booked")).await), vec![entry_id.as_str()], "it stays in the history");

    // A waiting entry: Bob books a free part of the interval he waits for.
    book(&t, &ann, "m2", hour(1), hour(2)).await;
    let waiting = join(&t, &bob, "m2", hour(1), hour(3)).await;
    let waiting_id = waiting["id"].as_str().expect("id").to_string();
    // Someone else's booking of the machine does not touch Bob's entry.
    book(&t, &cid, "m2", hour(3), hour(4)).await;
    assert_eq!(ids(&entries(&t, &bob, None).await), vec![waiting_id.as_str()]);
    // Nor does Bob's booking of another machine, or of a time that does not overlap.
    book(&t, &bob, "m1", hour(5), hour(6)).await;
    book(&t, &bob, "m2", hour(4), hour(5)).await;
    assert_eq!(ids(&entries(&t, &bob, None).await), vec![waiting_id.as_str()]);
    book(&t, &bob, "m2", hour(2), hour(3)).await;
    until(&mut ws, entry_now(&waiting_id, "booked")).await;
    assert!(entries(&t, &bob, None).await.is_empty());

    // A request awaiting approval does not hold the slot: the entry stays until approved.
    t.machine(SPACE, "m3", json!({"requires_approval": true})).await;
    let admin = t.token("boss", Role::MakerspaceAdmin, &[SPACE]);
    let held = book(&t, &admin, "m3", hour(1), hour(2)).await;
    let queued = join(&t, &bob, "m3", hour(1), hour(2)).await;
    let queued_id = queued["id"].as_str().expect("id").to_string();
    cancel(&t, &admin, &held).await;
    until(&mut ws, offer_to("bob")).await;
    let request = book(&t, &bob, "m3", hour(1), hour(2)).await;
    assert_eq!(request["status"], "pending");
    assert_eq!(entries(&t, &bob, None).await[0]["status"], "offered");
    let request_id = request["id"].as_str().expect("id");
    let (status, approved) = t.post(&format!("{}/{request_id}/approve", reservations()), &admin, json!({})).await;
    assert_eq!(status, 200, "{approved}");
    until(&mut ws, entry_now(&queued_id, "booked")).await;
    assert!(entries(&t, &bob, None).await.is_empty());

    // Bob books only a part of the slot he was offered: the rest goes to the next in line.
    t.machine(SPACE, "m4", json!({})).await;
    let held = book(&t, &ann, "m4", hour(1), hour(3)).await;
    let wide = join(&t, &bob, "m4", hour(1), hour(3)).await;
    let narrow = join(&t, &cid, "m4", hour(2), hour(3)).await;
    cancel(&t, &ann, &held).await;
    let offer = until(&mut ws, |m| m["type"] == "waitlist_offer").await;
    assert_eq!(offer["waitlist_entry"]["id"], wide["id"], "first come first");
    assert_eq!(entries(&t, &cid, None).await[0]["status"], "waiting", "one offer at a time");
    book(&t, &bob, "m4", hour(1), hour(2)).await;
    let offer = until(&mut ws, |m| m["type"] == "waitlist_offer").await;
    assert_eq!(
        (offer["user_id"].as_str(), offer["waitlist_entry"]["id"].as_str()),
        (Some("cid"), narrow["id"].as_str())
    );

    // A booked entry is history: it cannot be removed.
    let (status, body) = t.delete(&format!("{}/{entry_id}", waitlist()), &bob).await;
    assert_eq!((status, body["error_type"].as_str()), (409, Some("invalid_status")), "{body}");
    t.stop().await;
}

#[actix_web::test]
async fn a_person_queues_once_for_any_instant_of_a_machine() {
    let t = setup().await;
    t.machine(SPACE, "m1", json!({})).await;
    t.machine(SPACE, "m2", json!({})).await;
    let (ann, bob) = (member(&t, "ann"), member(&t, "bob"));
    book(&t, &ann, "m1", hour(1), hour(4)).await;
    book(&t, &ann, "m2", hour(1), hour(4)).await;
    let first = join(&t, &bob, "m1", hour(1), hour(2)).await;
    let first_id = first["id"].as_str().expect("id");

    let later = hour(1) + Span::minutes(30);
    let (status, body) = t.post(&waitlist(), &bob, slot("m1", later, hour(3))).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error_type"], "waitlist_duplicate");
    assert_eq!(body["existing_entry_id"], first_id);
    assert_eq!(body["existing_entry"]["status"], "waiting");
    // An admin queueing Bob (a member of the space) is refused alike.
    let (status, member_bob) = t
        .post(
            &format!("/api/v1/makerspaces/{SPACE}/members"),
            &t.super_admin(),
            json!({"email": "bob@example.org", "first_name": "Bob", "last_name": "B", "user_id": "bob"}),
        )
        .await;
    assert_eq!(status, 201, "{member_bob}");
    let admin = t.token("boss", Role::MakerspaceAdmin, &[SPACE]);
    let mut for_bob = slot("m1", later, hour(3));
    for_bob["user_id"] = json!("bob");
    let (status, body) = t.post(&waitlist(), &admin, for_bob).await;
    assert_eq!((status, body["existing_entry_id"].as_str()), (409, Some(first_id)), "{body}");
    // Touching intervals, another machine, another person: all fine.
    join(&t, &bob, "m1", hour(2), hour(3)).await;
    join(&t, &bob, "m2", hour(1), hour(2)).await;
    join(&t, &member(&t, "cid"), "m1", hour(1), hour(2)).await;
    assert_eq!(entries(&t, &bob, None).await.len(), 3);
    // Once the first entry is left, Bob may queue for that time again.
    let (status, _) = t.delete(&format!("{}/{first_id}", waitlist()), &bob).await;
    assert_eq!(status, 204);
    join(&t, &bob, "m1", later, hour(2)).await;

    // Twenty racing requests of one person for one slot: exactly one entry.
    let dan = member(&t, "dan");
    let path = waitlist();
    let answers =
        futures_util::future::join_all((0..20).map(|_| t.post(&path, &dan, slot("m1", hour(3), hour(4))))).await;
    let created: Vec<&Value> = answers.iter().filter(|(s, _)| *s == 201).map(|(_, b)| b).collect();
    assert_eq!(created.len(), 1, "one entry wins: {answers:?}");
    let winner = created[0]["id"].as_str().expect("id");
    for (status, body) in answers.iter().filter(|(s, _)| *s != 201) {
        assert_eq!(*status, 409, "{body}");
        assert_eq!(body["error_type"], "waitlist_duplicate");
        assert_eq!(body["existing_entry_id"], winner);
    }
    assert_eq!(ids(&entries(&t, &dan, None).await), vec![winner]);
    t.stop().await;
}

#[actix_web::test]
async fn an_offer_not_taken_in_time_expires_and_passes_to_the_next() {
    let t = setup().await;
    t.machine(SPACE, "m1", json!({})).await;
    let (ann, bob, cid, dan) = (member(&t, "ann"), member(&t, "bob"), member(&t, "cid"), member(&t, "dan"));
    let admin = t.token("boss", Role::MakerspaceAdmin, &[SPACE]);
    let mut ws = open_ws(&t, &admin).await;
    let taken = book(&t, &ann, "m1", hour(1), hour(2)).await;
    let bob_entry = join(&t, &bob, "m1", hour(1), hour(2)).await;
    let cid_entry = join(&t, &cid, "m1", hour(1), hour(2)).await;
    let dan_entry = join(&t, &dan, "m1", hour(1), hour(2)).await;
    let (bob_id, cid_id, dan_id) = (
        bob_entry["id"].as_str().expect("id"),
        cid_entry["id"].as_str().expect("id"),
        dan_entry["id"].as_str().expect("id"),
    );
    cancel(&t, &ann, &taken).await;
    let offer = until(&mut ws, |m| m["type"] == "waitlist_offer").await;
    assert_eq!((offer["user_id"].as_str(), offer["waitlist_entry"]["id"].as_str()), (Some("bob"), Some(bob_id)));
    // One offer at a time: Cid still waits behind Bob.
    assert_eq!(entries(&t, &cid, None).await[0]["status"], "waiting");

    // The sweep (which the server runs every second) with a clock moved on: within the
    // window Bob keeps his offer; past it, the offer expires and Cid is offered the slot.
    let state = t.app().state();
    let now = Utc::now();
    let kept = makrcave::services::waitlist::expire_offers(state, now + Span::minutes(14)).await.expect("sweep");
    assert_eq!(kept, 0);
    assert_eq!(entries(&t, &bob, None).await[0]["status"], "offered");
    let expired = makrcave::services::waitlist::expire_offers(state, now + Span::minutes(16)).await.expect("sweep");
    assert_eq!(expired, 1);
    until(&mut ws, entry_now(bob_id, "expired")).await;
    let offer = until(&mut ws, |m| m["type"] == "waitlist_offer").await;
    assert_eq!((offer["user_id"].as_str(), offer["waitlist_entry"]["id"].as_str()), (Some("cid"), Some(cid_id)));
    assert!(entries(&t, &bob, None).await.is_empty(), "an expired entry is not live");
    assert_eq!(ids(&entries(&t, &bob, Some("expired")).await), vec![bob_id]);
    assert_eq!(entries(&t, &dan, None).await[0]["status"], "waiting");

    // Cid declines (leaves): Dan is offered at once, and books.
    let (status, _) = t.delete(&format!("{}/{cid_id}", waitlist()), &cid).await;
    assert_eq!(status, 204);
    let offer = until(&mut ws, |m| m["type"] == "waitlist_offer").await;
    assert_eq!((offer["user_id"].as_str(), offer["waitlist_entry"]["id"].as_str()), (Some("dan"), Some(dan_id)));
    book(&t, &dan, "m1", hour(1), hour(2)).await;
    until(&mut ws, entry_now(dan_id, "booked")).await;
    // A booked entry never expires.
    let later = Utc::now() + Span::minutes(30);
    assert_eq!(makrcave::services::waitlist::expire_offers(state, later).await.expect("sweep"), 0);
    assert_eq!(ids(&entries(&t, &admin, Some("booked")).await), vec![dan_id]);
    t.stop().await;
}

#[actix_web::test]
async fn postgres_exclusion_constraint_backs_the_duplicate_check() {
    use makrcave::store::reservations::WaitlistRecord;
    let t = setup().await;
    t.machine(SPACE, "m1", json!({})).await;
    let store = &t.app().state().store;
    let entry = |id: &str, start: DateTime<Utc>, end: DateTime<Utc>, status: &str| WaitlistRecord {
        id: id.into(),
        makerspace_id: SPACE.into(),
        equipment_id: "m1".into(),
        user_id: "bob".into(),
        start_at: start,
        end_at: end,
        status: status.into(),
        offered_at: None,
        created_at: Utc::now(),
    };
    store.insert_waitlist(&entry("w1", hour(1), hour(2), "waiting")).await.expect("first entry");
    store.insert_waitlist(&entry("w2", hour(2), hour(3), "waiting")).await.expect("touching is no duplicate");
    store.insert_waitlist(&entry("w3", hour(1), hour(2), "booked")).await.expect("history is no duplicate");
    // Written without the check, as a node that skipped it would.
    let duplicate = store.insert_waitlist(&entry("w4", hour(1) + Span::minutes(30), hour(2), "waiting")).await;
    match crate::common::database_kind() {
        crate::common::DatabaseKind::Postgres => assert!(
            matches!(duplicate, Err(makrcave::store::StoreError::Conflict)),
            "the exclusion constraint must refuse the duplicate, got {duplicate:?}"
        ),
        // Without the check SQLite stores it: the check (one writer at a time) guards SQLite.
        crate::common::DatabaseKind::Sqlite => assert!(duplicate.is_ok(), "{duplicate:?}"),
    }
    // Through the check, on either database: the existing entry comes back.
    let refused = store.join_waitlist(&entry("w5", hour(1), hour(1) + Span::minutes(10), "waiting")).await;
    assert_eq!(refused.expect("store").map_err(|e| e.id), Err("w1".to_string()));
    t.stop().await;
}
