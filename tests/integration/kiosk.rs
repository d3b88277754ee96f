//! The kiosk: a registered device unlocks machines for members' cards with stable reasons,
//! sessions show on the machine, and every attempt is in the floor's audit log.

use makrcave::domain::access::Role;
use serde_json::{json, Value};

use std::time::Duration;

use crate::common::{eventually, open_space_ws, ws_until, TestApp, TestOptions};

const S: &str = "floor";

async fn add_member(t: &TestApp, user: &str, card: &str) -> String {
    let root = t.super_admin();
    let (status, m) = t
        .post(
            &format!("/api/v1/makerspaces/{S}/members"),
            &root,
            json!({"email": format!("{user}@example.org"), "first_name": user, "last_name": "M", "user_id": user}),
        )
        .await;
    assert_eq!(status, 201, "{m}");
    let id = m["id"].as_str().expect("id").to_string();
    let (status, c) = t.post(&format!("/api/v1/makerspaces/{S}/members/{id}/cards"), &root, json!({"uid": card})).await;
    assert_eq!(status, 201, "{c}");
    id
}

async fn tap(t: &TestApp, kiosk: &str, machine: &str, card: &str) -> Value {
    let (status, answer) = t
        .send(
            reqwest::Method::POST,
            "/api/v1/kiosk/unlock",
            Some(kiosk),
            Some(json!({"equipment_id": machine, "card_uid": card})),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    answer
}

#[actix_web::test]
async fn a_card_tap_unlocks_only_for_a_certified_active_member_of_a_free_machine() {
    let t = TestApp::spawn_with(TestOptions { heartbeat_timeout_s: Some(3600), ..Default::default() }).await;
    t.makerspace(S).await;
    let root = t.super_admin();
    t.machine(
        S,
        "laser",
        json!({"type": "laser_cutter", "hourly_rate": 30.0, "connection": {"kind": "tasmota", "topic": "laser1"}}),
    )
    .await;
    t.machine(S, "cnc", json!({"type": "cnc_machine"})).await;
    let p = t.publisher().await;
    for m in ["laser", "cnc"] {
        p.publish(&format!("makrcave/{S}/{m}/status"), "online").await;
        t.wait_state(S, m, "online", |s| s["state"] == "idle").await;
    }
    let (status, skill) = t
        .post(
            "/api/v1/skills",
            &root,
            json!({"id": "laser-safety", "name": "Laser safety", "category": "Safety",
            "level": "beginner", "makerspace_id": S, "equipment_ids": ["laser"]}),
        )
        .await;
    assert_eq!(status, 201, "{skill}");
    let ada = add_member(&t, "ada", "04:A1:B2:C3").await;
    add_member(&t, "bob", "04:B0:B0:B0").await;
    // Carl books the CNC below: bookings name members of the space.
    add_member(&t, "carl", "04:CA:41:00").await;

    // Register the kiosk: the device token is shown once.
    let admin = t.token("boss", Role::MakerspaceAdmin, &[S]);
    let (status, registered) =
        t.post(&format!("/api/v1/makerspaces/{S}/kiosks"), &admin, json!({"name": "Laser corner"})).await;
    assert_eq!(status, 201, "{registered}");
    let kiosk = registered["token"].as_str().expect("the device token").to_string();
    let (_, listed) = t.get(&format!("/api/v1/makerspaces/{S}/kiosks"), Some(&admin)).await;
    assert!(listed[0].get("token").is_none(), "never shown again");

    // A person's token is no device token; an unknown card; no skill yet.
    let (status, _) = t
        .send(
            reqwest::Method::POST,
            "/api/v1/kiosk/unlock",
            Some(&admin),
            Some(json!({"equipment_id": "laser", "card_uid": "04A1B2C3"})),
        )
        .await;
    assert_eq!(status, 401);
    assert_eq!(tap(&t, &kiosk, "laser", "DEADBEEF").await["reason"], "unknown_card");
    let no_skill = tap(&t, &kiosk, "laser", "04a1b2c3").await;
    assert_eq!(
        (no_skill["granted"].as_bool(), no_skill["reason"].as_str()),
        (Some(false), Some("insufficient_skills")),
        "{no_skill}"
    );
    assert_eq!(no_skill["missing_skills"], json!(["Laser safety"]));
    assert!(no_skill["member_name"].is_null(), "a denial names nobody: {no_skill}");

    // Certified: granted, the machine is in use for Ada, and its plug got its command.
    let (status, _) =
        t.post("/api/v1/skills/user-skills", &root, json!({"user_id": "ada", "skill_id": "laser-safety"})).await;
    assert_eq!(status, 201);
    let granted = tap(&t, &kiosk, "laser", "04-A1-B2-C3").await;
    assert_eq!((granted["granted"].as_bool(), granted["reason"].as_str()), (Some(true), Some("granted")), "{granted}");
    assert!(granted["session_id"].is_string());
    assert_eq!(granted["member_name"], "ada M", "a grant greets the member");
    let state = t.wait_state(S, "laser", "laser in use", |s| s["state"] == "in_use").await;
    assert_eq!(state["session"]["user_id"], "ada");
    assert_eq!(state["session"]["member_id"].as_str(), Some(ada.as_str()));
    // Bob (no skill) and, on the CNC, someone else's booking in progress.
    let (status, _) =
        t.post("/api/v1/skills/user-skills", &root, json!({"user_id": "bob", "skill_id": "laser-safety"})).await;
    assert_eq!(status, 201);
    assert_eq!(tap(&t, &kiosk, "laser", "04B0B0B0").await["reason"], "machine_busy");
    // The CNC is booked by Carl from in a moment: a walk-up until then, and refused after.
    let starts = chrono::Utc::now() + chrono::Duration::seconds(2);
    let (status, booking) = t
        .post(&format!("/api/v1/makerspaces/{S}/reservations"), &admin,
            json!({"equipment_id": "cnc", "user_id": "carl", "start": starts.to_rfc3339(), "end": (starts + chrono::Duration::hours(1)).to_rfc3339()}))
        .await;
    assert_eq!(status, 201, "{booking}");
    let walk_up = tap(&t, &kiosk, "cnc", "04B0B0B0").await;
    assert_eq!(walk_up["granted"], true, "{walk_up}");
    let until: chrono::DateTime<chrono::Utc> = walk_up["until"].as_str().expect("until").parse().expect("time");
    assert_eq!(until.timestamp(), starts.timestamp(), "a walk-up lasts until the next booking");
    let lock = json!({"equipment_id": "cnc", "card_uid": "04B0B0B0"});
    t.send(reqwest::Method::POST, "/api/v1/kiosk/lock", Some(&kiosk), Some(lock)).await;
    crate::common::eventually(std::time::Duration::from_secs(10), "Carl's booking to begin", || async {
        let answer = tap(&t, &kiosk, "cnc", "04B0B0B0").await;
        (answer["reason"] == "reserved_by_other").then_some(())
    })
    .await;

    // Lock: the session is stored with its cost; the audit log has every attempt.
    let lock = json!({"equipment_id": "laser", "card_uid": "04A1B2C3"});
    let (status, locked) = t.send(reqwest::Method::POST, "/api/v1/kiosk/lock", Some(&kiosk), Some(lock)).await;
    assert_eq!((status, locked["locked"].as_bool()), (200, Some(true)), "{locked}");
    assert_eq!(locked["session"]["hourly_rate"], 30.0);
    t.wait_state(S, "laser", "laser idle", |s| s["state"] == "idle").await;
    let (_, log) = t.get(&format!("/api/v1/makerspaces/{S}/kiosk-attempts"), Some(&admin)).await;
    let reasons: Vec<&str> = log.as_array().expect("log").iter().rev().filter_map(|a| a["reason"].as_str()).collect();
    assert!(
        reasons.starts_with(&["unknown_card", "insufficient_skills", "granted", "machine_busy", "granted", "locked"]),
        "{reasons:?}"
    );
    assert!(reasons.contains(&"reserved_by_other"), "{reasons:?}");
    assert_eq!(reasons.last(), Some(&"locked"));
    assert!(log.to_string().contains("…B2C3") && !log.to_string().contains("04A1B2C3"), "card hints only");

    // Suspending Ada mid-session ends it at once; her card is refused after.
    assert_eq!(tap(&t, &kiosk, "laser", "04A1B2C3").await["granted"], true);
    t.wait_state(S, "laser", "laser in use again", |s| s["state"] == "in_use").await;
    let (status, _) =
        t.post(&format!("/api/v1/makerspaces/{S}/members/{ada}/suspend"), &root, json!({"reason": "safety"})).await;
    assert_eq!(status, 200);
    t.wait_state(S, "laser", "the session ended by the suspension", |s| s["state"] == "idle").await;
    assert_eq!(tap(&t, &kiosk, "laser", "04A1B2C3").await["reason"], "member_suspended");
    let sessions = t.app().state().store.usage_sessions("laser").await.expect("sessions");
    assert_eq!(sessions.last().map(|s| s.end_reason.as_str()), Some("member_suspended"));

    // Revoking Bob's skill ends his session on the laser.
    assert_eq!(tap(&t, &kiosk, "laser", "04B0B0B0").await["granted"], true);
    let (_, held) = t.get("/api/v1/skills/user-skills?user_id=bob", Some(&root)).await;
    let held_id = held[0]["id"]
        .as_str()
        .or_else(|| held["user_skills"][0]["id"].as_str())
        .expect("bob's certification")
        .to_string();
    let (status, _) =
        t.post(&format!("/api/v1/skills/user-skills/{held_id}/revoke?reason=unsafe"), &root, json!({})).await;
    assert_eq!(status, 200);
    t.wait_state(S, "laser", "the session ended by the revocation", |s| s["state"] == "idle").await;

    // Offline and maintenance machines, and a revoked kiosk.
    assert_eq!(tap(&t, &kiosk, "laser", "04B0B0B0").await["reason"], "insufficient_skills", "revoked");
    let (status, regrant) =
        t.post("/api/v1/skills/user-skills", &root, json!({"user_id": "bob", "skill_id": "laser-safety"})).await;
    assert_eq!(status, 201, "{regrant}");
    p.publish(&format!("makrcave/{S}/laser/status"), "offline").await;
    t.wait_state(S, "laser", "laser offline", |s| s["state"] == "offline").await;
    assert_eq!(tap(&t, &kiosk, "laser", "04B0B0B0").await["reason"], "machine_offline");
    p.publish(&format!("makrcave/{S}/laser/status"), "online").await;
    t.wait_state(S, "laser", "laser back", |s| s["state"] == "idle").await;
    t.put(&format!("/api/v1/makerspaces/{S}/equipment/laser"), &root, json!({"status": "maintenance"})).await;
    t.wait_state(S, "laser", "maintenance", |s| s["state"] == "maintenance").await;
    assert_eq!(tap(&t, &kiosk, "laser", "04B0B0B0").await["reason"], "maintenance");
    let (status, _) =
        t.delete(&format!("/api/v1/makerspaces/{S}/kiosks/{}", registered["id"].as_str().expect("id")), &admin).await;
    assert_eq!(status, 204);
    let (status, _) = t
        .send(
            reqwest::Method::POST,
            "/api/v1/kiosk/unlock",
            Some(&kiosk),
            Some(json!({"equipment_id": "laser", "card_uid": "04B0B0B0"})),
        )
        .await;
    assert_eq!(status, 401, "a revoked kiosk is refused");
    t.stop().await;
}

/// No unlock without its line in the audit log: when the audit row of a granted unlock cannot
/// be stored (here: services whose journal has no writer any more), the kiosk hears that the
/// log is unavailable and the machine is locked again, its session ended as `audit_unavailable`.
#[actix_web::test]
async fn an_unlock_that_cannot_be_audited_is_undone() {
    let t = TestApp::spawn_with(TestOptions { heartbeat_timeout_s: Some(3600), ..Default::default() }).await;
    t.makerspace(S).await;
    t.machine(S, "drill", json!({"type": "cnc_machine"})).await;
    let p = t.publisher().await;
    p.publish(&format!("makrcave/{S}/drill/status"), "online").await;
    t.wait_state(S, "drill", "online", |s| s["state"] == "idle").await;
    add_member(&t, "cy", "04:C1:C1:C1").await;
    let admin = t.token("boss", Role::MakerspaceAdmin, &[S]);
    let (status, registered) =
        t.post(&format!("/api/v1/makerspaces/{S}/kiosks"), &admin, json!({"name": "Door"})).await;
    assert_eq!(status, 201, "{registered}");
    let token = registered["token"].as_str().expect("the device token");

    let mut services = (*t.app().state().services).clone();
    let (journal, writer) = tokio::sync::mpsc::channel(1);
    drop(writer);
    services.journal = journal;
    let kiosk = makrcave::services::kiosk::authenticate(&services, Some(token)).await.expect("the kiosk");
    let outcome = makrcave::services::kiosk::unlock(&services, &kiosk, "drill", "04:C1:C1:C1").await;
    assert!(matches!(outcome, Err(makrcave::services::kiosk::KioskError::AuditUnavailable)), "{outcome:?}");

    // Locked again: no session, and the usage record says why.
    t.wait_state(S, "drill", "locked again", |s| s["state"] == "idle" && s["session"].is_null()).await;
    let store = t.app().state().store.clone();
    let reason = eventually(Duration::from_secs(10), "the ended session to be stored", || {
        let store = store.clone();
        async move { store.usage_sessions("drill").await.ok()?.pop().map(|s| s.end_reason) }
    })
    .await;
    assert_eq!(reason, "audit_unavailable");
}

/// Adds a member with a role and a card; returns the member id.
async fn add_member_as(t: &TestApp, user: &str, role: &str, card: &str) -> String {
    let root = t.super_admin();
    let body = json!({"email": format!("{user}@example.org"), "first_name": user, "last_name": "M", "user_id": user,
        "role": role});
    let (status, m) = t.post(&format!("/api/v1/makerspaces/{S}/members"), &root, body).await;
    assert_eq!(status, 201, "{m}");
    let id = m["id"].as_str().expect("id").to_string();
    let (status, c) = t.post(&format!("/api/v1/makerspaces/{S}/members/{id}/cards"), &root, json!({"uid": card})).await;
    assert_eq!(status, 201, "{c}");
    id
}

/// A machine of the floor, online; a kiosk registered by the space's admin (its device token).
async fn floor_with_kiosk(t: &TestApp, machine: &str, registration: Value) -> (String, String) {
    t.makerspace(S).await;
    t.machine(S, machine, json!({"type": "cnc_machine"})).await;
    let p = t.publisher().await;
    p.publish(&format!("makrcave/{S}/{machine}/status"), "online").await;
    t.wait_state(S, machine, "online", |s| s["state"] == "idle").await;
    let admin = t.token("boss", Role::MakerspaceAdmin, &[S]);
    let (status, registered) = t.post(&format!("/api/v1/makerspaces/{S}/kiosks"), &admin, registration).await;
    assert_eq!(status, 201, "{registered}");
    let token = registered["token"].as_str().expect("the device token").to_string();
    (token, registered["id"].as_str().expect("kiosk id").to_string())
}

/// A kiosk request as sent: status, `Retry-After` and the JSON body.
async fn kiosk_call(t: &TestApp, kiosk: &str, action: &str, body: Value) -> (u16, Option<String>, Value) {
    let res = t.http.post(t.url(&format!("/api/v1/kiosk/{action}"))).bearer_auth(kiosk).json(&body).send().await;
    let res = res.expect("kiosk request");
    let status = res.status().as_u16();
    let retry = res.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_string);
    (status, retry, res.json().await.unwrap_or(Value::Null))
}

fn small_guessing_limits(s: &mut makrcave::Settings) {
    s.kiosk_guard.unknown_cards = 3;
    s.kiosk_guard.window = Duration::from_secs(60);
    s.kiosk_guard.backoff = Duration::from_secs(1);
    s.kiosk_guard.backoff_max = Duration::from_secs(2);
}

/// After N unknown cards within the window a kiosk is slowed down (429 with `Retry-After`),
/// the space's admins get a `kiosk_alert` on the WebSocket (its members do not), a known card
/// works again once the backoff is over, and the next backoff is twice as long.
#[actix_web::test]
async fn a_kiosk_that_sees_unknown_cards_is_slowed_down_and_the_admins_are_told() {
    let t = TestApp::spawn_with(TestOptions {
        heartbeat_timeout_s: Some(3600),
        adjust: Some(small_guessing_limits),
        ..Default::default()
    })
    .await;
    let (kiosk, kiosk_id) = floor_with_kiosk(&t, "drill", json!({"name": "Drill corner"})).await;
    add_member(&t, "ada", "04:AD:AD:AD").await;
    let mut admin_ws = open_space_ws(&t, &t.token("boss", Role::MakerspaceAdmin, &[S]), S).await;
    let mut member_ws = open_space_ws(&t, &t.token("max", Role::Member, &[S]), S).await;

    let ada = json!({"equipment_id": "drill", "card_uid": "04ADADAD"});
    for guess in ["01020304", "01020305", "01020306"] {
        assert_eq!(tap(&t, &kiosk, "drill", guess).await["reason"], "unknown_card");
    }
    // Slowed down: even a known card waits, and so does a lock with a card.
    let (status, retry, body) = kiosk_call(&t, &kiosk, "unlock", ada.clone()).await;
    assert_eq!((status, retry.as_deref(), body["error_type"].as_str()), (429, Some("1"), Some("kiosk_slowed_down")));
    assert!(body["detail"].as_str().is_some_and(|d| d.contains("unknown cards")), "{body}");
    let (status, _, _) = kiosk_call(&t, &kiosk, "lock", ada.clone()).await;
    assert_eq!(status, 429);

    // The space's admins are told; its members are not (a later member event reaches them
    // first, through the same queue).
    let alert = ws_until(&mut admin_ws, |m| m["type"] == "kiosk_alert").await;
    assert_eq!(
        (alert["kiosk_id"].as_str(), alert["kiosk_name"].as_str(), alert["equipment_id"].as_str()),
        (Some(kiosk_id.as_str()), Some("Drill corner"), Some("drill"))
    );
    assert_eq!((alert["unknown_cards"].as_u64(), alert["backoff_s"].as_u64()), (Some(3), Some(1)), "{alert}");
    assert_eq!((alert["reason"].as_str(), alert["window_s"].as_u64()), (Some("unknown_cards"), Some(60)));
    add_member(&t, "late", "04:1A:7E:00").await;
    let next = ws_until(&mut member_ws, |m| m["type"] == "kiosk_alert" || m["type"] == "member").await;
    assert_eq!(next["type"], "member", "a member gets no kiosk alert: {next}");

    // After the backoff a known card works again.
    let granted = eventually(Duration::from_secs(10), "the backoff to end", || async {
        let (status, _, body) = kiosk_call(&t, &kiosk, "unlock", ada.clone()).await;
        (status == 200).then_some(body)
    })
    .await;
    assert_eq!(granted["granted"], true, "{granted}");
    let (status, _, locked) = kiosk_call(&t, &kiosk, "lock", ada.clone()).await;
    assert_eq!((status, locked["locked"].as_bool()), (200, Some(true)), "{locked}");

    // Guessing on: the next backoff doubles (to the configured maximum of 2 s).
    for guess in ["01020307", "01020308", "01020309"] {
        assert_eq!(tap(&t, &kiosk, "drill", guess).await["reason"], "unknown_card");
    }
    let (status, retry, _) = kiosk_call(&t, &kiosk, "unlock", ada.clone()).await;
    assert_eq!((status, retry.as_deref()), (429, Some("2")));
    let alert = ws_until(&mut admin_ws, |m| m["type"] == "kiosk_alert").await;
    assert_eq!(alert["backoff_s"], 2);
    t.stop().await;
}

/// The newest line of the floor's audit log.
async fn last_attempt(t: &TestApp) -> Value {
    let (status, log) = t.get(&format!("/api/v1/makerspaces/{S}/kiosk-attempts"), Some(&t.super_admin())).await;
    assert_eq!(status, 200, "{log}");
    log[0].clone()
}

/// `POST /kiosk/lock` ends a session only for the session's own card or an admin's, unless
/// the kiosk is set to "any card locks"; the audit row names the card's presenter apart from
/// the session's member.
#[actix_web::test]
async fn a_lock_takes_the_sessions_own_card_or_an_admins_unless_any_card_locks() {
    let t = TestApp::spawn_with(TestOptions { heartbeat_timeout_s: Some(3600), ..Default::default() }).await;
    let (kiosk, kiosk_id) = floor_with_kiosk(&t, "saw", json!({"name": "Saw"})).await;
    let ada = add_member_as(&t, "ada", "member", "04:AA:00:01").await;
    let bob = add_member_as(&t, "bob", "member", "04:BB:00:02").await;
    let boss = add_member_as(&t, "chief", "makerspace_admin", "04:CC:00:03").await;
    let unlock = |card: &str| json!({"equipment_id": "saw", "card_uid": card});
    let lock = |card: Option<&str>| match card {
        Some(card) => json!({"equipment_id": "saw", "card_uid": card}),
        None => json!({"equipment_id": "saw"}),
    };
    let locks = |answer: &Value| (answer["locked"].as_bool(), answer["reason"].as_str().map(str::to_string));

    assert_eq!(kiosk_call(&t, &kiosk, "unlock", unlock("04AA0001")).await.2["granted"], true);
    // Bob's card, or no card: the session goes on.
    let (status, _, answer) = kiosk_call(&t, &kiosk, "lock", lock(Some("04BB0002"))).await;
    assert_eq!((status, locks(&answer)), (200, (Some(false), Some("not_your_session".into()))), "{answer}");
    let row = last_attempt(&t).await;
    assert_eq!(
        (row["member_id"].as_str(), row["presenter_member_id"].as_str()),
        (Some(ada.as_str()), Some(bob.as_str()))
    );
    assert_eq!((row["granted"].as_bool(), row["presenter_user_id"].as_str()), (Some(false), Some("bob")));
    let (_, _, answer) = kiosk_call(&t, &kiosk, "lock", lock(None)).await;
    assert_eq!(locks(&answer), (Some(false), Some("card_required".into())));
    // An unknown card is just not hers (nothing tells a guesser the card is unknown).
    let (_, _, answer) = kiosk_call(&t, &kiosk, "lock", lock(Some("0BADCAFE"))).await;
    assert_eq!(locks(&answer), (Some(false), Some("not_your_session".into())));
    assert_eq!(t.state(S, "saw").await["session"]["user_id"], "ada", "still Ada's");

    // An admin's card ends it; the audit row keeps both people.
    let (_, _, answer) = kiosk_call(&t, &kiosk, "lock", lock(Some("04CC0003"))).await;
    assert_eq!(locks(&answer), (Some(true), Some("locked".into())), "{answer}");
    let row = last_attempt(&t).await;
    assert_eq!((row["action"].as_str(), row["granted"].as_bool()), (Some("lock"), Some(true)));
    assert_eq!((row["member_id"].as_str(), row["user_id"].as_str()), (Some(ada.as_str()), Some("ada")));
    assert_eq!(
        (row["presenter_member_id"].as_str(), row["presenter_user_id"].as_str()),
        (Some(boss.as_str()), Some("chief"))
    );

    // Her own card ends her session.
    assert_eq!(kiosk_call(&t, &kiosk, "unlock", unlock("04AA0001")).await.2["granted"], true);
    let (_, _, answer) = kiosk_call(&t, &kiosk, "lock", lock(Some("04AA0001"))).await;
    assert_eq!(locks(&answer), (Some(true), Some("locked".into())), "{answer}");

    // "Any card locks": set by an admin, then Bob's card (or none) ends Ada's session.
    let admin = t.token("boss", Role::MakerspaceAdmin, &[S]);
    let (status, updated) =
        t.put(&format!("/api/v1/makerspaces/{S}/kiosks/{kiosk_id}"), &admin, json!({"any_card_locks": true})).await;
    assert_eq!((status, updated["any_card_locks"].as_bool()), (200, Some(true)), "{updated}");
    assert!(updated.get("token").is_none(), "the token is never shown again");
    assert_eq!(kiosk_call(&t, &kiosk, "unlock", unlock("04AA0001")).await.2["granted"], true);
    let (_, _, answer) = kiosk_call(&t, &kiosk, "lock", lock(Some("04BB0002"))).await;
    assert_eq!(locks(&answer), (Some(true), Some("locked".into())), "{answer}");
    let row = last_attempt(&t).await;
    assert_eq!(
        (row["member_id"].as_str(), row["presenter_member_id"].as_str()),
        (Some(ada.as_str()), Some(bob.as_str()))
    );
    assert_eq!(kiosk_call(&t, &kiosk, "unlock", unlock("04AA0001")).await.2["granted"], true);
    let (_, _, answer) = kiosk_call(&t, &kiosk, "lock", lock(None)).await;
    assert_eq!(locks(&answer), (Some(true), Some("locked".into())), "{answer}");
    // Registered so from the start, and an unknown kiosk.
    let (status, other) = t
        .post(&format!("/api/v1/makerspaces/{S}/kiosks"), &admin, json!({"name": "Door", "any_card_locks": true}))
        .await;
    assert_eq!((status, other["any_card_locks"].as_bool()), (201, Some(true)), "{other}");
    let (status, _) =
        t.put(&format!("/api/v1/makerspaces/{S}/kiosks/no-such-kiosk"), &admin, json!({"any_card_locks": false})).await;
    assert_eq!(status, 404);
    t.stop().await;
}

/// A machine whose job ended waits for its bed: a person confirms it at the kiosk with their
/// card (who and when is kept, as on the dashboard), an unknown card does not, and every tap
/// is in the floor's audit log.
#[actix_web::test]
async fn a_card_at_the_kiosk_confirms_a_machines_bed_is_clear() {
    let t = TestApp::spawn_with(TestOptions { heartbeat_timeout_s: Some(3600), ..Default::default() }).await;
    let (kiosk, _) = floor_with_kiosk(&t, "mk4", json!({"name": "Print room"})).await;
    add_member(&t, "ada", "04A1B2C3D4").await;
    let p = t.publisher().await;
    let (status, _, answer) =
        kiosk_call(&t, &kiosk, "clear", json!({"equipment_id": "mk4", "card_uid": "04A1B2C3D4"})).await;
    assert_eq!(
        (status, answer["cleared"].as_bool(), answer["reason"].as_str()),
        (200, Some(false), Some("not_awaiting_clear"))
    );

    p.publish(&format!("makrcave/{S}/mk4/event"), json!({"event": "job_started", "file": "gear.gcode"}).to_string())
        .await;
    p.publish(&format!("makrcave/{S}/mk4/event"), json!({"event": "job_finished"}).to_string()).await;
    t.wait_state(S, "mk4", "awaiting_clear", |m| m["state"] == "awaiting_clear").await;

    let (status, _, answer) =
        kiosk_call(&t, &kiosk, "clear", json!({"equipment_id": "mk4", "card_uid": "FFFF0000"})).await;
    assert_eq!(
        (status, answer["cleared"].as_bool(), answer["reason"].as_str()),
        (200, Some(false), Some("unknown_card"))
    );
    let refused = last_attempt(&t).await;
    assert_eq!((refused["action"].as_str(), refused["granted"].as_bool()), (Some("clear"), Some(false)), "{refused}");
    // The refusal was answered after the decision: the machine still waits for its bed.
    assert_eq!(t.state(S, "mk4").await["state"], "awaiting_clear");

    let (status, _, answer) =
        kiosk_call(&t, &kiosk, "clear", json!({"equipment_id": "mk4", "card_uid": "04a1b2c3d4"})).await;
    assert_eq!(
        (status, answer["cleared"].as_bool(), answer["reason"].as_str()),
        (200, Some(true), Some("cleared")),
        "{answer}"
    );
    assert_eq!(answer["confirmation"]["cleared_by"], "ada", "{answer}");
    t.wait_state(S, "mk4", "idle", |m| m["state"] == "idle").await;
    let cleared = last_attempt(&t).await;
    assert_eq!(
        (cleared["action"].as_str(), cleared["granted"].as_bool(), cleared["user_id"].as_str()),
        (Some("clear"), Some(true), Some("ada")),
        "{cleared}"
    );
    t.stop().await;
}
