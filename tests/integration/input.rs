//! Input that cannot hurt later (issue 9, part 4): names and texts without control
//! characters, references to things of the same makerspace, people who are members of the
//! space, bounded rates and prices, lists without repeats. Every refusal is a 422 in the
//! usual error shape, and changes nothing that is stored.

use chrono::{Duration as Span, SubsecRound, Utc};
use makrcave::domain::access::Role;
use serde_json::{json, Value};

use crate::common::TestApp;

fn assert_refused(status: u16, body: &Value, field: &str) {
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error_type"], "validation_error", "{body}");
    assert_eq!(body["status_code"], 422, "{body}");
    assert!(body["detail"].as_str().unwrap_or_default().starts_with(field), "{field}: {body}");
}

async fn add_member(t: &TestApp, space: &str, user: &str) -> Value {
    let (status, m) = t
        .post(
            &format!("/api/v1/makerspaces/{space}/members"),
            &t.super_admin(),
            json!({"email": format!("{user}@example.org"), "first_name": user, "last_name": "M", "user_id": user}),
        )
        .await;
    assert_eq!(status, 201, "{m}");
    m
}

async fn skill(t: &TestApp, space: &str, id: &str) {
    let (status, body) = t
        .post(
            "/api/v1/skills",
            &t.super_admin(),
            json!({"id": id, "name": format!("Skill {id}"), "category": "Safety", "level": "beginner",
                   "makerspace_id": space}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}

#[actix_web::test]
async fn names_and_texts_refuse_control_characters_and_change_nothing() {
    let t = TestApp::spawn().await;
    let root = t.super_admin();
    let forged = "Laser\n2026-12-01T10:00:00Z  INFO makrcave: unlocked";
    let (status, body) = t.post("/api/v1/makerspaces", &root, json!({"id": "x", "name": forged})).await;
    assert_refused(status, &body, "name");
    let (status, _) = t.get("/api/v1/makerspaces/x", Some(&root)).await;
    assert_eq!(status, 404, "nothing stored");

    t.makerspace("a").await;
    t.machine("a", "m1", json!({})).await;
    let refusals = [
        ("/api/v1/makerspaces/a/equipment", json!({"name": "Laser \u{1b}[31mred", "type": "tool"}), "name"),
        (
            "/api/v1/makerspaces/a/equipment",
            json!({"name": "Laser", "type": "tool", "location": "Room\r2"}),
            "location",
        ),
        (
            "/api/v1/makerspaces/a/equipment",
            json!({"name": "L", "type": "tool", "skill_requirements": ["a\nb"]}),
            "skill",
        ),
        (
            "/api/v1/makerspaces/a/members",
            json!({"email": "e@example.org", "first_name": "Eve\u{85}", "last_name": "M"}),
            "first_name",
        ),
        (
            "/api/v1/makerspaces/a/members",
            json!({"email": "e@example.org", "first_name": "Eve", "last_name": "M", "notes": "a\u{7}bell"}),
            "notes",
        ),
        (
            "/api/v1/makerspaces/a/members/plans",
            json!({"name": "Gold\tplan", "price": 1, "billing_period": "monthly"}),
            "name",
        ),
        ("/api/v1/makerspaces/a/kiosks", json!({"name": "Door\u{2028}kiosk"}), "name"),
        (
            "/api/v1/makerspaces/a/members/invites",
            json!({"email": "i@example.org", "message": "hi\r\nthere"}),
            "message",
        ),
        (
            "/api/v1/skills",
            json!({"name": "Safety", "category": "Shop\u{0}", "level": "beginner", "makerspace_id": "a"}),
            "category",
        ),
    ];
    for (path, body, field) in refusals {
        let (status, answer) = t.post(path, &root, body.clone()).await;
        assert_refused(status, &answer, field);
    }
    let (_, machines) = t.get("/api/v1/makerspaces/a/equipment", Some(&root)).await;
    assert_eq!(machines.as_array().map(Vec::len), Some(1), "{machines}");
    let (_, members) = t.get("/api/v1/makerspaces/a/members", Some(&root)).await;
    assert_eq!(members["total"], 0, "{members}");
    let (_, kiosks) = t.get("/api/v1/makerspaces/a/kiosks", Some(&root)).await;
    assert_eq!(kiosks.as_array().map(Vec::len), Some(0), "{kiosks}");

    // An edit with a control character changes nothing.
    let (status, body) = t.put("/api/v1/makerspaces/a/equipment/m1", &root, json!({"name": "M\n1"})).await;
    assert_refused(status, &body, "name");
    let (_, machine) = t.get("/api/v1/makerspaces/a/equipment/m1", Some(&root)).await;
    assert_eq!(machine["name"], "Machine m1");

    // Texts meant to span lines keep their line feeds and tabs.
    let notes = "First visit: laser intro.\n\tBrought own material.";
    let (status, member) = t
        .post(
            "/api/v1/makerspaces/a/members",
            &root,
            json!({"email": "ada@example.org", "first_name": "Ada", "last_name": "L", "notes": notes, "user_id": "ada"}),
        )
        .await;
    assert_eq!(status, 201, "{member}");
    assert_eq!(member["notes"], notes);
    let (status, space) = t.put("/api/v1/makerspaces/a", &root, json!({"description": "Line one\nLine two"})).await;
    assert_eq!(status, 200, "{space}");
    assert_eq!(space["description"], "Line one\nLine two");
    let start = Utc::now().trunc_subsecs(0) + Span::hours(1);
    let slot = |purpose: &str| {
        json!({"equipment_id": "m1", "start": start.to_rfc3339(), "end": (start + Span::hours(1)).to_rfc3339(),
               "purpose": purpose, "user_id": "ada"})
    };
    let (status, body) = t.post("/api/v1/makerspaces/a/reservations", &root, slot("cut\u{1b}[2J")).await;
    assert_refused(status, &body, "purpose");
    let (status, booking) =
        t.post("/api/v1/makerspaces/a/reservations", &root, slot("Name tags\nfor the open day")).await;
    assert_eq!(status, 201, "{booking}");
    assert_eq!(booking["purpose"], "Name tags\nfor the open day");
    t.stop().await;
}

#[actix_web::test]
async fn skill_requirements_name_skills_of_the_same_makerspace() {
    let t = TestApp::spawn().await;
    let root = t.super_admin();
    t.makerspace("a").await;
    t.makerspace("b").await;
    skill(&t, "a", "laser-a").await;
    skill(&t, "b", "laser-b").await;
    for requirements in [json!(["laser-b"]), json!(["laser-a", "no-such-skill"])] {
        let (status, body) = t
            .post(
                "/api/v1/makerspaces/a/equipment",
                &root,
                json!({"id": "m1", "name": "Laser", "type": "laser_cutter", "skill_requirements": requirements}),
            )
            .await;
        assert_refused(status, &body, "skill_requirements");
    }
    let (status, _) = t.get("/api/v1/makerspaces/a/equipment/m1", Some(&root)).await;
    assert_eq!(status, 404, "nothing stored");
    // Repeats are dropped, in the order given.
    let created = t.machine("a", "m1", json!({"skill_requirements": ["laser-a", "laser-a"]})).await;
    assert_eq!(created["skill_requirements"], json!(["laser-a"]));
    let (status, body) =
        t.put("/api/v1/makerspaces/a/equipment/m1", &root, json!({"skill_requirements": ["laser-b"]})).await;
    assert_refused(status, &body, "skill_requirements");
    let (_, machine) = t.get("/api/v1/makerspaces/a/equipment/m1", Some(&root)).await;
    assert_eq!(machine["skill_requirements"], json!(["laser-a"]));
    t.stop().await;
}

#[actix_web::test]
async fn bookings_waitlist_entries_and_grants_name_members_of_the_makerspace() {
    let t = TestApp::spawn().await;
    let root = t.super_admin();
    t.makerspace("a").await;
    t.makerspace("b").await;
    t.machine("a", "m1", json!({})).await;
    skill(&t, "a", "laser-a").await;
    add_member(&t, "a", "ada").await;
    // Bea is a member of b only; nobody knows "stranger".
    add_member(&t, "b", "bea").await;
    let admin = t.token("boss", Role::MakerspaceAdmin, &["a"]);
    let start = Utc::now().trunc_subsecs(0) + Span::hours(1);
    let slot = |user: &str, hours: i64| {
        json!({"equipment_id": "m1", "start": (start + Span::hours(hours)).to_rfc3339(),
               "end": (start + Span::hours(hours + 1)).to_rfc3339(), "user_id": user})
    };
    for user in ["stranger", "bea"] {
        let (status, body) = t.post("/api/v1/makerspaces/a/reservations", &admin, slot(user, 0)).await;
        assert_refused(status, &body, "user_id");
        let (status, body) =
            t.post("/api/v1/skills/user-skills", &admin, json!({"user_id": user, "skill_id": "laser-a"})).await;
        assert_refused(status, &body, "user_id");
    }
    let (_, bookings) = t.get("/api/v1/makerspaces/a/reservations", Some(&root)).await;
    assert_eq!(bookings.as_array().map(Vec::len), Some(0), "{bookings}");
    let (_, grants) = t.get("/api/v1/skills/user-skills?makerspace_id=a", Some(&root)).await;
    assert_eq!(grants.as_array().map(Vec::len), Some(0), "{grants}");

    // A member of the space is booked for, queued and certified.
    let (status, booking) = t.post("/api/v1/makerspaces/a/reservations", &admin, slot("ada", 0)).await;
    assert_eq!(status, 201, "{booking}");
    for user in ["stranger", "bea"] {
        let (status, body) = t.post("/api/v1/makerspaces/a/waitlist", &admin, slot(user, 0)).await;
        assert_refused(status, &body, "user_id");
    }
    let (_, queue) = t.get("/api/v1/makerspaces/a/waitlist", Some(&root)).await;
    assert_eq!(queue.as_array().map(Vec::len), Some(0), "{queue}");
    add_member(&t, "a", "cy").await;
    let (status, entry) = t.post("/api/v1/makerspaces/a/waitlist", &admin, slot("cy", 0)).await;
    assert_eq!(status, 201, "{entry}");
    let (status, grant) =
        t.post("/api/v1/skills/user-skills", &admin, json!({"user_id": "ada", "skill_id": "laser-a"})).await;
    assert_eq!(status, 201, "{grant}");
    // A person whose own token names the space books for themselves, as before.
    let (status, own) = t
        .post("/api/v1/makerspaces/a/reservations", &t.token("max", Role::Member, &["a"]), {
            let mut s = slot("max", 2);
            s.as_object_mut().map(|o| o.remove("user_id"));
            s
        })
        .await;
    assert_eq!(status, 201, "{own}");
    t.stop().await;
}

#[actix_web::test]
async fn rates_and_prices_are_bounded() {
    let t = TestApp::spawn().await;
    let root = t.super_admin();
    t.makerspace("a").await;
    for rate in [json!(-0.01), json!(100_000.01), json!(1e300)] {
        let (status, body) = t
            .post(
                "/api/v1/makerspaces/a/equipment",
                &root,
                json!({"id": "m1", "name": "M", "type": "tool", "hourly_rate": rate}),
            )
            .await;
        assert_refused(status, &body, "hourly_rate");
    }
    let created = t.machine("a", "m1", json!({"hourly_rate": 100_000})).await;
    assert_eq!(created["hourly_rate"], 100_000.0);
    let (status, body) = t.put("/api/v1/makerspaces/a/equipment/m1", &root, json!({"hourly_rate": 1e9})).await;
    assert_refused(status, &body, "hourly_rate");
    let (_, machine) = t.get("/api/v1/makerspaces/a/equipment/m1", Some(&root)).await;
    assert_eq!(machine["hourly_rate"], 100_000.0);

    let plans = "/api/v1/makerspaces/a/members/plans";
    let (status, body) =
        t.post(plans, &root, json!({"name": "Lavish", "price": 250_000, "billing_period": "monthly"})).await;
    assert_refused(status, &body, "price");
    let (status, plan) = t
        .post(
            plans,
            &root,
            json!({"name": "Basic", "price": 25, "billing_period": "monthly",
                                   "features": ["24/7 access", "storage", "24/7 access"]}),
        )
        .await;
    assert_eq!(status, 201, "{plan}");
    assert_eq!(plan["features"], json!(["24/7 access", "storage"]), "repeats dropped");
    let id = plan["id"].as_str().expect("an id");
    let (status, body) = t.put(&format!("{plans}/{id}"), &root, json!({"price": 100_000.5})).await;
    assert_refused(status, &body, "price");
    let (_, plan) = t.get(&format!("{plans}/{id}"), Some(&root)).await;
    assert_eq!(plan["price"], 25.0);
    t.stop().await;
}

#[actix_web::test]
async fn lists_given_in_a_request_lose_their_repeats() {
    let t = TestApp::spawn().await;
    let root = t.super_admin();
    t.makerspace("a").await;
    t.machine("a", "m1", json!({})).await;
    t.machine("a", "m2", json!({})).await;
    let (status, kiosk) = t
        .post("/api/v1/makerspaces/a/kiosks", &root, json!({"name": "Door", "equipment_ids": ["m2", "m1", "m2"]}))
        .await;
    assert_eq!(status, 201, "{kiosk}");
    assert_eq!(kiosk["equipment_ids"], json!(["m2", "m1"]));
    let (status, skill) = t
        .post(
            "/api/v1/skills",
            &root,
            json!({"id": "cnc", "name": "CNC", "category": "Machines", "level": "beginner", "makerspace_id": "a",
                   "equipment_ids": ["m1", "m1"]}),
        )
        .await;
    assert_eq!(status, 201, "{skill}");
    assert_eq!(skill["equipment_ids"], json!(["m1"]));
    let (_, machine) = t.get("/api/v1/makerspaces/a/equipment/m1", Some(&root)).await;
    assert_eq!(machine["skill_requirements"], json!(["cnc"]));
    let ada = add_member(&t, "a", "ada").await;
    let id = ada["id"].as_str().expect("an id");
    let (status, result) = t
        .post(
            "/api/v1/makerspaces/a/members/bulk-operations",
            &root,
            json!({"operation": "suspend", "member_ids": [id, id], "reason": "Unpaid dues"}),
        )
        .await;
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["succeeded"], json!([id]));
    assert_eq!(result["failed"], json!([]));
    t.stop().await;
}
