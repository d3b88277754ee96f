//! REST: makerspaces and equipment, the role matrix, and bad input.

use makrcave::domain::access::Role;
use reqwest::Method;
use serde_json::json;

use crate::common::TestApp;

#[actix_web::test]
async fn no_token_is_401_and_a_bad_token_says_why() {
    let t = TestApp::spawn().await;
    let (status, body) = t.get("/api/v1/makerspaces", None).await;
    assert_eq!(status, 401);
    assert_eq!(body["error_type"], "unauthorized");
    assert_eq!(body["status_code"], 401);
    let expired = t.keys.mint("u", &[Role::Member], &[], chrono::Duration::hours(-3));
    let (status, body) = t.get("/api/v1/makerspaces", Some(&expired)).await;
    assert_eq!(status, 401);
    assert!(body["detail"].as_str().unwrap_or_default().contains("expired"), "{body}");
    let (status, _) = t.get("/api/v1/makerspaces", Some("garbage")).await;
    assert_eq!(status, 401);
    t.stop().await;
}

#[actix_web::test]
async fn only_super_admin_creates_makerspaces() {
    let t = TestApp::spawn().await;
    for role in [Role::Admin, Role::MakerspaceAdmin, Role::Member, Role::ServiceProvider, Role::StoreCustomer] {
        let token = t.token("someone", role, &["a"]);
        let (status, body) = t.post("/api/v1/makerspaces", &token, json!({"id": "a", "name": "A"})).await;
        assert_eq!(status, 403, "{role:?}: {body}");
        assert_eq!(body["error_type"], "forbidden");
    }
    let (status, body) = t.post("/api/v1/makerspaces", &t.super_admin(), json!({"id": "a", "name": "Space A"})).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["id"], "a");
    assert_eq!(body["timezone"], "UTC");
    assert_eq!(body["currency"], "USD");
    // Without an id, the server mints a UUID.
    let (status, body) = t.post("/api/v1/makerspaces", &t.super_admin(), json!({"name": "Unnamed"})).await;
    assert_eq!(status, 201);
    assert!(uuid::Uuid::parse_str(body["id"].as_str().unwrap_or_default()).is_ok(), "{body}");
    t.stop().await;
}

#[actix_web::test]
async fn people_of_one_space_get_404_for_another() {
    let t = TestApp::spawn().await;
    t.makerspace("a").await;
    t.makerspace("b").await;
    t.machine("b", "eq-b1", json!({})).await;
    for role in [Role::MakerspaceAdmin, Role::Member, Role::ServiceProvider] {
        let token = t.token("alice", role, &["a"]);
        for path in [
            "/api/v1/makerspaces/b",
            "/api/v1/makerspaces/b/equipment",
            "/api/v1/makerspaces/b/equipment/eq-b1",
            "/api/v1/makerspaces/b/equipment/eq-b1/state",
        ] {
            let (status, body) = t.get(path, Some(&token)).await;
            assert_eq!(status, 404, "{role:?} GET {path}: {body}");
        }
        let (status, _) = t.put("/api/v1/makerspaces/b/equipment/eq-b1", &token, json!({"name": "x"})).await;
        assert_eq!(status, 404, "{role:?} PUT");
        let (status, _) = t.delete("/api/v1/makerspaces/b/equipment/eq-b1", &token).await;
        assert_eq!(status, 404, "{role:?} DELETE");
        // Their own space is visible, and listings show only it.
        let (status, _) = t.get("/api/v1/makerspaces/a", Some(&token)).await;
        assert_eq!(status, 200);
        let (_, list) = t.get("/api/v1/makerspaces", Some(&token)).await;
        let ids: Vec<&str> =
            list.as_array().map(|l| l.iter().filter_map(|m| m["id"].as_str()).collect()).unwrap_or_default();
        assert_eq!(ids, vec!["a"], "{role:?}");
    }
    // The machine in b was not touched.
    let (_, eq) = t.get("/api/v1/makerspaces/b/equipment/eq-b1", Some(&t.super_admin())).await;
    assert_eq!(eq["name"], "Machine eq-b1");
    t.stop().await;
}

#[actix_web::test]
async fn makerspace_admin_manages_its_equipment_and_members_only_read() {
    let t = TestApp::spawn().await;
    t.makerspace("a").await;
    let admin = t.token("ada", Role::MakerspaceAdmin, &["a"]);
    let member = t.token("max", Role::Member, &["a"]);
    let reader = t.token("audit", Role::Admin, &[]);
    // Skill requirements name skills of the space.
    let (status, skill) = t
        .post(
            "/api/v1/skills",
            &t.super_admin(),
            json!({"id": "laser-basics", "name": "Laser basics", "category": "Laser", "level": "beginner",
                   "makerspace_id": "a"}),
        )
        .await;
    assert_eq!(status, 201, "{skill}");

    let (status, created) = t
        .post(
            "/api/v1/makerspaces/a/equipment",
            &admin,
            json!({"id": "eq-laser-001", "name": "Laser", "type": "laser_cutter",
            "hourly_rate": 12.5, "skill_requirements": ["laser-basics"], "location": "Room 2",
            "connection": {"kind": "tasmota", "topic": "laser1", "running_above_w": 50}}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["type"], "laser_cutter");
    assert_eq!(created["connection"]["kind"], "tasmota");
    assert_eq!(created["live_state"], "offline");
    assert_eq!(created["heartbeat_timeout_s"], 30);

    for token in [&member, &reader] {
        let (status, body) =
            t.post("/api/v1/makerspaces/a/equipment", token, json!({"name": "X", "type": "tool"})).await;
        assert_eq!(status, 403, "{body}");
        let (status, _) = t.put("/api/v1/makerspaces/a/equipment/eq-laser-001", token, json!({"name": "Y"})).await;
        assert_eq!(status, 403);
        let (status, _) = t.delete("/api/v1/makerspaces/a/equipment/eq-laser-001", token).await;
        assert_eq!(status, 403);
        let (status, _) = t.put("/api/v1/makerspaces/a", token, json!({"name": "Z"})).await;
        assert_eq!(status, 403);
        let (status, list) = t.get("/api/v1/makerspaces/a/equipment", Some(token)).await;
        assert_eq!(status, 200);
        assert_eq!(list.as_array().map(Vec::len), Some(1));
    }
    // Only a super_admin deletes a makerspace.
    let (status, _) = t.delete("/api/v1/makerspaces/a", &admin).await;
    assert_eq!(status, 403);

    let (status, updated) = t
        .put(
            "/api/v1/makerspaces/a/equipment/eq-laser-001",
            &admin,
            json!({"name": "Laser 60W", "status": "maintenance"}),
        )
        .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["name"], "Laser 60W");
    assert_eq!(updated["hourly_rate"], 12.5, "fields not sent stay");
    t.wait_state("a", "eq-laser-001", "maintenance", |s| s["state"] == "maintenance").await;

    let (status, space) =
        t.put("/api/v1/makerspaces/a", &admin, json!({"description": "Our space", "currency": "EUR"})).await;
    assert_eq!(status, 200, "{space}");
    assert_eq!(space["currency"], "EUR");

    let (status, _) = t.delete("/api/v1/makerspaces/a/equipment/eq-laser-001", &admin).await;
    assert_eq!(status, 204);
    let (status, _) = t.get("/api/v1/makerspaces/a/equipment/eq-laser-001/state", Some(&admin)).await;
    assert_eq!(status, 404, "the actor is gone with the machine");
    t.stop().await;
}

#[actix_web::test]
async fn equipment_filters_and_secrets() {
    let t = TestApp::spawn().await;
    t.makerspace("f").await;
    t.machine("f", "p1", json!({"type": "3d_printer"})).await;
    t.machine("f", "p2", json!({"type": "3d_printer", "status": "maintenance"})).await;
    t.machine("f", "l1", json!({"type": "laser_cutter", "connection": {"kind": "octoprint", "url": "http://op:5000", "api_key": "TOPSECRET"}})).await;
    let root = t.super_admin();
    let ids = |v: &serde_json::Value| -> Vec<String> {
        v.as_array().map(|l| l.iter().filter_map(|m| m["id"].as_str().map(String::from)).collect()).unwrap_or_default()
    };
    let (_, all) = t.get("/api/v1/makerspaces/f/equipment", Some(&root)).await;
    assert_eq!(ids(&all).len(), 3);
    assert!(!all.to_string().contains("TOPSECRET"), "API keys never leave");
    let (_, printers) = t.get("/api/v1/makerspaces/f/equipment?type=3d_printer", Some(&root)).await;
    assert_eq!(ids(&printers), vec!["p1", "p2"]);
    let (_, maint) = t.get("/api/v1/makerspaces/f/equipment?status=maintenance", Some(&root)).await;
    assert_eq!(ids(&maint), vec!["p2"]);
    let (_, offline) = t.get("/api/v1/makerspaces/f/equipment?status=offline&type=3d_printer", Some(&root)).await;
    assert_eq!(ids(&offline), vec!["p1"]);
    let (status, body) = t.get("/api/v1/makerspaces/f/equipment?type=spaceship", Some(&root)).await;
    assert_eq!(status, 422, "{body}");
    let (status, _) = t.get("/api/v1/makerspaces/f/equipment?status=sleepy", Some(&root)).await;
    assert_eq!(status, 422);
    // Sending the masked key back keeps the real one; a new key replaces it.
    let (status, _) = t
        .put(
            "/api/v1/makerspaces/f/equipment/l1",
            &root,
            json!({"connection": {"kind": "octoprint", "url": "http://op:5001", "api_key": "********"}}),
        )
        .await;
    assert_eq!(status, 200);
    // The clear key and the URL, as the OctoPrint adapter will read them.
    let key = &t.app().state().data_key;
    let api_key = |record: Option<makrcave::store::equipment::EquipmentRecord>| {
        let c = record.expect("the machine").connection;
        let makrcave::domain::equipment::Connection::Octoprint { url, .. } = &c else {
            panic!("not an octoprint connection: {c:?}")
        };
        (c.secret(key, makrcave::domain::secrets::API_KEY).expect("the data key opens it"), url.clone())
    };
    let stored = t.app().state().store.get_equipment("l1").await.expect("read");
    assert_eq!(api_key(stored), (Some("TOPSECRET".to_string()), "http://op:5001".to_string()));
    let (status, _) = t
        .put(
            "/api/v1/makerspaces/f/equipment/l1",
            &root,
            json!({"connection": {"kind": "octoprint", "url": "http://op:5001", "api_key": "NEWKEY"}}),
        )
        .await;
    assert_eq!(status, 200);
    let stored = t.app().state().store.get_equipment("l1").await.expect("read");
    assert_eq!(api_key(stored).0.as_deref(), Some("NEWKEY"));
    t.stop().await;
}

#[actix_web::test]
async fn bad_input_is_a_clear_4xx_and_changes_nothing() {
    let t = TestApp::spawn().await;
    t.makerspace("v").await;
    t.machine("v", "m1", json!({})).await;
    let root = t.super_admin();
    let cases: Vec<(Method, &str, Option<serde_json::Value>, u16, &str)> = vec![
        (Method::POST, "/api/v1/makerspaces", Some(json!({"id": "Bad Id!", "name": "x"})), 422, "validation_error"),
        (Method::POST, "/api/v1/makerspaces", Some(json!({"id": "v", "name": "dup"})), 409, "already_exists"),
        (Method::POST, "/api/v1/makerspaces", Some(json!({"name": ""})), 422, "validation_error"),
        (
            Method::POST,
            "/api/v1/makerspaces",
            Some(json!({"name": "x", "currency": "dollars"})),
            422,
            "validation_error",
        ),
        (Method::POST, "/api/v1/makerspaces", Some(json!({"name": "x", "settings": [1]})), 422, "validation_error"),
        (Method::POST, "/api/v1/makerspaces", Some(json!({"name": 5})), 422, "validation_error"),
        (Method::POST, "/api/v1/makerspaces", Some(json!({"name": "x", "surprise": true})), 422, "validation_error"),
        (
            Method::POST,
            "/api/v1/makerspaces/v/equipment",
            Some(json!({"id": "m1", "name": "dup", "type": "tool"})),
            409,
            "already_exists",
        ),
        (
            Method::POST,
            "/api/v1/makerspaces/v/equipment",
            Some(json!({"name": "x", "type": "toaster"})),
            422,
            "validation_error",
        ),
        (
            Method::POST,
            "/api/v1/makerspaces/v/equipment",
            Some(json!({"name": "x", "type": "tool", "hourly_rate": -1})),
            422,
            "validation_error",
        ),
        (
            Method::POST,
            "/api/v1/makerspaces/v/equipment",
            Some(json!({"name": "x", "type": "tool", "heartbeat_timeout_s": 0})),
            422,
            "validation_error",
        ),
        (
            Method::POST,
            "/api/v1/makerspaces/v/equipment",
            Some(json!({"name": "x", "type": "tool", "connection": {"kind": "zigbee"}})),
            422,
            "validation_error",
        ),
        (
            Method::POST,
            "/api/v1/makerspaces/v/equipment",
            Some(json!({"name": "x", "type": "tool", "connection": {"kind": "tasmota", "topic": "a/#"}})),
            422,
            "validation_error",
        ),
        (
            Method::POST,
            "/api/v1/makerspaces/nowhere/equipment",
            Some(json!({"name": "x", "type": "tool"})),
            404,
            "not_found",
        ),
        (Method::PUT, "/api/v1/makerspaces/v/equipment/m1", Some(json!({"status": "broken"})), 422, "validation_error"),
        (Method::PUT, "/api/v1/makerspaces/v/equipment/m1", Some(json!({"name": "   "})), 422, "validation_error"),
        (Method::PUT, "/api/v1/makerspaces/v/equipment/nope", Some(json!({"name": "x"})), 404, "not_found"),
        (Method::GET, "/api/v1/nothing-here", None, 404, "not_found"),
    ];
    for (method, path, body, want, error_type) in cases {
        let (status, answer) = t.send(method.clone(), path, Some(&root), body.clone()).await;
        assert_eq!(status, want, "{method} {path} {body:?}: {answer}");
        assert_eq!(answer["error_type"], error_type, "{method} {path}: {answer}");
        assert!(answer["detail"].as_str().is_some_and(|d| !d.is_empty()), "{answer}");
        assert_eq!(answer["status_code"], want);
    }
    // Not JSON, no content type, too large.
    let raw = |body: &'static str, content_type: Option<&str>| {
        let mut req = t.http.post(t.url("/api/v1/makerspaces")).bearer_auth(&root).body(body);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        req.send()
    };
    let res = raw("{not json", Some("application/json")).await.expect("send");
    assert_eq!(res.status().as_u16(), 400);
    let res = raw("{\"name\":\"x\"}", Some("text/plain")).await.expect("send");
    assert_eq!(res.status().as_u16(), 415);
    let big = format!("{{\"name\":\"{}\"}}", "x".repeat(300 * 1024));
    let res = t
        .http
        .post(t.url("/api/v1/makerspaces"))
        .bearer_auth(&root)
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .expect("send");
    assert_eq!(res.status().as_u16(), 413);
    let body: serde_json::Value = res.json().await.expect("json error body");
    assert_eq!(body["error_type"], "payload_too_large");
    // Nothing changed.
    let (_, spaces) = t.get("/api/v1/makerspaces", Some(&root)).await;
    assert_eq!(spaces.as_array().map(Vec::len), Some(1), "{spaces}");
    let (_, m1) = t.get("/api/v1/makerspaces/v/equipment/m1", Some(&root)).await;
    assert_eq!(m1["name"], "Machine m1");
    assert_eq!(m1["live_state"], "offline");
    t.stop().await;
}

#[actix_web::test]
async fn deleting_a_makerspace_removes_its_machines() {
    let t = TestApp::spawn().await;
    t.makerspace("gone").await;
    t.machine("gone", "g1", json!({})).await;
    let root = t.super_admin();
    let (status, _) = t.delete("/api/v1/makerspaces/gone", &root).await;
    assert_eq!(status, 204);
    let (status, _) = t.get("/api/v1/makerspaces/gone", Some(&root)).await;
    assert_eq!(status, 404);
    // The id is free again, for a new space and a new machine.
    t.makerspace("gone").await;
    t.machine("gone", "g1", json!({})).await;
    t.stop().await;
}

/// A method the path does not serve: 405 with `Allow` and the JSON error body, also where a
/// route with a variable segment would otherwise take the path's last segment for an id.
#[actix_web::test]
async fn a_method_the_path_does_not_serve_is_405_with_allow() {
    let t = TestApp::spawn().await;
    t.makerspace("a").await;
    t.machine("a", "m1", json!({})).await;
    let admin = t.super_admin();
    let cases: [(Method, &str, &[&str]); 6] = [
        (Method::PATCH, "/api/v1/makerspaces", &["GET", "POST"]),
        (Method::POST, "/api/v1/makerspaces/a", &["GET", "PUT", "DELETE"]),
        (Method::PUT, "/api/v1/makerspaces/a/equipment/available", &["GET"]),
        (Method::GET, "/api/v1/makerspaces/a/equipment/m1/lock", &["POST"]),
        (Method::DELETE, "/healthz", &["GET"]),
        (Method::TRACE, "/api/v1/user/makerspaces", &["GET"]),
    ];
    for (method, path, allowed) in cases {
        let response = t.http.request(method.clone(), t.url(path)).bearer_auth(&admin).send().await.expect("request");
        assert_eq!(response.status(), 405, "{method} {path}");
        let allow = response.headers().get("allow").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        let listed: std::collections::BTreeSet<&str> = allow.split(',').map(str::trim).collect();
        assert_eq!(listed, allowed.iter().copied().collect(), "{method} {path}: Allow {allow:?}");
        let body: serde_json::Value = response.json().await.expect("JSON body");
        assert_eq!(body["error_type"], "method_not_allowed", "{body}");
        assert_eq!(body["status_code"], 405, "{body}");
    }
    // The machine behind `m1` was not touched, and unknown paths stay 404.
    let (status, _) = t.get("/api/v1/makerspaces/a/equipment/m1", Some(&admin)).await;
    assert_eq!(status, 200);
    let (status, body) = t.send(Method::PATCH, "/api/v1/no-such-thing", Some(&admin), None).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error_type"], "not_found");
    t.stop().await;
}
