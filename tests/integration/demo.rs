//! `serve --demo`: the whole floor is seeded (people with cards, skills, a kiosk, today's
//! bookings, requests, a waitlist entry), the kiosk works with the demo cards, and a restart
//! on the same data neither fails nor duplicates anything.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::common::{TestApp, TestOptions};

/// What the demo seeded, counted through the API.
#[derive(Debug, PartialEq)]
struct Census {
    members: i64,
    cards_of_ada: usize,
    skills: usize,
    reservations: usize,
    pending_bookings: usize,
    skill_requests: usize,
    waitlist: usize,
    kiosks: usize,
}

async fn list(t: &TestApp, path: &str, token: &str) -> Value {
    let (status, body) = t.get(path, Some(token)).await;
    assert_eq!(status, 200, "{path}: {body}");
    body
}

async fn census(t: &TestApp, admin: &str) -> Census {
    let len = |v: Value| v.as_array().map(Vec::len).unwrap_or_default();
    let reservations = list(t, "/api/v1/makerspaces/demo/reservations?limit=1000", admin).await;
    Census {
        members: list(t, "/api/v1/makerspaces/demo/members?page_size=200", admin).await["total"]
            .as_i64()
            .unwrap_or_default(),
        cards_of_ada: len(list(t, "/api/v1/makerspaces/demo/members/demo-member-ada/cards", admin).await),
        skills: len(list(t, "/api/v1/skills?makerspace_id=demo", admin).await),
        reservations: len(reservations.clone()),
        pending_bookings: reservations.as_array().into_iter().flatten().filter(|r| r["status"] == "pending").count(),
        skill_requests: len(list(t, "/api/v1/skills/requests?makerspace_id=demo&status=pending", admin).await),
        waitlist: len(list(t, "/api/v1/makerspaces/demo/waitlist", admin).await),
        kiosks: len(list(t, "/api/v1/makerspaces/demo/kiosks", admin).await),
    }
}

fn time(v: &Value) -> DateTime<Utc> {
    v.as_str().and_then(|s| s.parse().ok()).expect("an RFC 3339 time")
}

async fn tap(t: &TestApp, device: &str, machine: &str, card: &str) -> Value {
    let (status, answer) = t
        .send(
            reqwest::Method::POST,
            "/api/v1/kiosk/unlock",
            Some(device),
            Some(json!({"equipment_id": machine, "card_uid": card})),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    answer
}

#[actix_web::test]
async fn the_demo_seeds_the_whole_floor_and_a_restart_adds_nothing() {
    let mut t = TestApp::spawn_with(TestOptions { demo: true, ..Default::default() }).await;
    let (status, demo) = t.get("/demo/token", None).await;
    assert_eq!(status, 200, "{demo}");
    let admin = demo["token"].as_str().expect("the demo token").to_string();

    let seeded = census(&t, &admin).await;
    assert_eq!(seeded.members, 12, "{seeded:?}");
    assert_eq!(seeded.cards_of_ada, 1, "{seeded:?}");
    assert_eq!(seeded.skills, 4, "{seeded:?}");
    assert!(seeded.pending_bookings >= 1, "{seeded:?}");
    assert_eq!((seeded.skill_requests, seeded.waitlist, seeded.kiosks), (1, 1, 1), "{seeded:?}");

    // One booking is in progress now; the pending ones are on the machine that needs approval.
    let reservations = list(&t, "/api/v1/makerspaces/demo/reservations?limit=1000", &admin).await;
    let now = Utc::now();
    let in_progress: Vec<&Value> = reservations
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["status"] == "checked_in" && time(&r["start"]) <= now && now < time(&r["end"]))
        .collect();
    assert_eq!(in_progress.len(), 1, "{reservations}");
    let (_, cnc) = t.get("/api/v1/makerspaces/demo/equipment/demo-cnc-1", Some(&admin)).await;
    assert_eq!(cnc["requires_approval"], true, "{cnc}");
    assert!(
        reservations
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["status"] == "pending")
            .all(|r| r["equipment_id"] == "demo-cnc-1"),
        "{reservations}"
    );

    // The kiosk: Ada unlocks the laser; Ben is refused for the missing laser skill.
    let device = makrcave::demo::demo_kiosk_token(&t.app().state().card_key);
    t.wait_state("demo", "demo-laser-1", "the simulated laser online", |s| s["state"] == "idle").await;
    let granted = tap(&t, &device, "demo-laser-1", "04A1B2C3D4").await;
    assert_eq!(granted["reason"], "granted", "{granted}");
    assert_eq!(granted["member_name"], "Ada Byrne");
    t.wait_state("demo", "demo-laser-1", "the laser in use by Ada", |s| s["session"]["user_id"] == "ada").await;
    let (status, locked) = t
        .send(
            reqwest::Method::POST,
            "/api/v1/kiosk/lock",
            Some(&device),
            Some(json!({"equipment_id": "demo-laser-1", "card_uid": "04A1B2C3D4"})),
        )
        .await;
    assert_eq!((status, &locked["locked"]), (200, &json!(true)), "{locked}");
    let refused = tap(&t, &device, "demo-laser-1", "04:b5:c6:d7:e8").await;
    assert_eq!(refused["reason"], "insufficient_skills", "{refused}");
    assert_eq!(refused["missing_skills"], json!(["Laser safety"]));

    t.restart().await;
    let (_, demo) = t.get("/demo/token", None).await;
    let admin = demo["token"].as_str().expect("the demo token").to_string();
    assert_eq!(census(&t, &admin).await, seeded, "a restart seeds nothing twice");
    let again = tap(&t, &device, "demo-laser-1", "04B5C6D7E8").await;
    assert_eq!(again["reason"], "insufficient_skills", "the kiosk URL still works: {again}");
    t.stop().await;
}
