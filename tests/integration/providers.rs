//! Service orders and providers (issue 12, part 5): the MakrX Store, calling with the
//! `service` role, uploads a file and routes a service order; it is offered to the best
//! capable provider as `offered` jobs the router leaves alone; the provider refuses (the next
//! provider gets it at once), lets it lapse (the same), or accepts (its jobs join the queue and
//! the router sends one to a machine over the generic MQTT topics). Offers live in the
//! database: a restart neither loses nor doubles one.

use std::time::Duration;

use makrcave::domain::access::Role;
use serde_json::{json, Value};

use crate::common::{eventually, open_space_ws, ws_until, TestApp};
use crate::job_queue::{form, sliced_gcode, submit};

/// Uploads a file as a service: its answer.
pub async fn upload(t: &TestApp, token: &str, name: &str, file: &[u8]) -> (u16, Value) {
    let (content_type, body) = form(name, file, None);
    let response = t
        .http
        .post(t.url("/api/v1/jobs/upload"))
        .bearer_auth(token)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("POST upload");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A binary STL of one triangle spanning `side` mm in x and y, 5 mm high.
fn triangle_stl(side: f32) -> Vec<u8> {
    let corners = [[0.0, 0.0, 0.0], [side, 0.0, 0.0], [0.0, side, 5.0]];
    let mut file = vec![0u8; 80];
    file.extend_from_slice(&1u32.to_le_bytes());
    let normal = [0.0f32, 0.0, 1.0];
    for value in normal.iter().chain(corners.iter().flatten()) {
        file.extend_from_slice(&value.to_le_bytes());
    }
    file.extend_from_slice(&[0, 0]);
    file
}

/// Makes `space` a provider of 3D printing with this time to answer, at `location`.
async fn make_provider(t: &TestApp, space: &str, location: &str, accept_timeout_s: u64) {
    let provider = json!({"enabled": true, "service_types": ["3d_printing"], "accept_timeout_s": accept_timeout_s});
    let body = json!({"location": location, "settings": {"provider": provider}});
    let (status, saved) = t.put(&format!("/api/v1/makerspaces/{space}"), &t.super_admin(), body).await;
    assert_eq!(status, 200, "{saved}");
}

fn printer() -> Value {
    json!({"specifications": {"build_volume_mm": [200, 200, 200]}})
}

async fn order(t: &TestApp, token: &str, id: &str) -> Value {
    let (status, order) = t.get(&format!("/api/v1/service-orders/{id}"), Some(token)).await;
    assert_eq!(status, 200, "{order}");
    order
}

fn events(order: &Value) -> Vec<(String, String)> {
    order["history"]
        .as_array()
        .expect("history")
        .iter()
        .map(|e| (e["event"].as_str().unwrap_or("").to_string(), e["makerspace_id"].as_str().unwrap_or("").to_string()))
        .collect()
}

fn ids(jobs: &Value) -> Vec<String> {
    jobs.as_array().expect("jobs").iter().map(|j| j["id"].as_str().expect("job id").to_string()).collect()
}

async fn job_status(t: &TestApp, space: &str, job: &str) -> String {
    let (status, body) = t.get(&format!("/api/v1/makerspaces/{space}/jobs/{job}"), Some(&t.super_admin())).await;
    assert_eq!(status, 200, "{body}");
    body["status"].as_str().expect("status").to_string()
}

#[actix_web::test]
async fn a_service_order_is_offered_refused_passed_on_accepted_and_printed() {
    let t = TestApp::spawn().await;
    for space in ["prov-a", "prov-b", "plain"] {
        t.makerspace(space).await;
    }
    make_provider(&t, "prov-a", "Berlin, Kreuzberg", 900).await;
    make_provider(&t, "prov-b", "Hamburg", 900).await;
    t.machine("prov-a", "a1", printer()).await;
    t.machine("prov-b", "b1", printer()).await;
    t.machine("plain", "c1", printer()).await;
    let store = t.token("makrx-store", Role::Service, &[]);
    let admin_a = t.token("boss-a", Role::MakerspaceAdmin, &["prov-a"]);
    let admin_b = t.token("boss-b", Role::MakerspaceAdmin, &["prov-b"]);
    let member_b = t.token("ben", Role::Member, &["prov-b"]);
    let provider_a = t.token("sam", Role::ServiceProvider, &["prov-a"]);

    // Provider settings are checked where admins write them; a bad one changes nothing.
    for bad in [
        json!({"enabled": true, "service_types": ["3d_printing"], "accept_timeout_s": 0}),
        json!({"enabled": true, "service_types": ["welding"]}),
        json!({"enabled": true}),
        json!("on"),
    ] {
        let (status, body) =
            t.put("/api/v1/makerspaces/prov-a", &admin_a, json!({"settings": {"provider": bad}})).await;
        assert_eq!((status, body["error_type"].as_str()), (422, Some("validation_error")), "{body}");
    }
    let (_, space) = t.get("/api/v1/makerspaces/prov-a", Some(&admin_a)).await;
    assert_eq!(space["settings"]["provider"]["accept_timeout_s"], 900, "{space}");

    // The file: uploaded by the service, analysed, named by its SHA-256. Nobody else uploads.
    let (status, body) = upload(&t, &member_b, "part.gcode", &sliced_gcode("2")).await;
    assert_eq!(status, 403, "{body}");
    let (status, file) = upload(&t, &store, "part.gcode", &sliced_gcode("2")).await;
    assert_eq!(status, 201, "{file}");
    assert_eq!((file["kind"].as_str(), file["analysis"]["print_seconds"].as_i64()), (Some("gcode"), Some(65)));
    let sha = file["sha256"].as_str().expect("sha256").to_string();
    let (status, body) = upload(&t, &store, "notes.txt", b"just words, no file makrcave takes").await;
    assert_eq!((status, body["error_type"].as_str()), (415, Some("unsupported_file_type")), "{body}");

    // The providers: the plain space is not one; filters by service, location and free machines.
    let (status, list) = t.get("/api/v1/providers/available", Some(&store)).await;
    assert_eq!(status, 200, "{list}");
    let names: Vec<&str> =
        list["providers"].as_array().expect("providers").iter().filter_map(|p| p["id"].as_str()).collect();
    assert_eq!(names, ["prov-a", "prov-b"]);
    let capacity = &list["providers"][0]["capacity"][0];
    assert_eq!(
        (&capacity["service_type"], &capacity["machines"], &capacity["online"], &capacity["idle"]),
        (&json!("3d_printing"), &json!(1), &json!(0), &json!(0)),
        "{list}"
    );
    let (_, list) = t.get("/api/v1/providers/available?location=KREUZ", Some(&store)).await;
    assert_eq!(list["providers"].as_array().map(Vec::len), Some(1), "{list}");
    assert_eq!(list["providers"][0]["id"], "prov-a");
    let (_, list) = t.get("/api/v1/providers/available?service_type=laser_cutting", Some(&store)).await;
    assert_eq!(list["providers"], json!([]));
    let (_, list) = t.get("/api/v1/providers/available?capacity=1", Some(&store)).await;
    assert_eq!(list["providers"], json!([]), "every machine is offline");
    let (status, _) = t.get("/api/v1/providers/available?service_type=welding", Some(&store)).await;
    assert_eq!(status, 422);
    let (status, _) = t.get("/api/v1/providers/available", Some(&admin_a)).await;
    assert_eq!(status, 403);

    // Orders nobody can make are refused with each provider's reason, and not stored.
    let (_, big) = upload(&t, &store, "big.stl", &triangle_stl(300.0)).await;
    let too_big = json!({"service_order_id": "so-big", "file_sha256": big["sha256"], "service_type": "3d_printing"});
    let (status, body) = t.post("/api/v1/jobs/route-service-order", &store, too_big).await;
    assert_eq!((status, body["error_type"].as_str()), (422, Some("no_provider")), "{body}");
    assert_eq!(
        body["providers"],
        json!([
            {"makerspace_id": "prov-a", "reason": "no_capable_machine", "misfits": ["build_volume"]},
            {"makerspace_id": "prov-b", "reason": "no_capable_machine", "misfits": ["build_volume"]}
        ])
    );
    let (status, _) = t.get("/api/v1/service-orders/so-big", Some(&store)).await;
    assert_eq!(status, 404, "nothing stored");
    let laser = json!({"service_order_id": "so-laser", "file_sha256": sha, "service_type": "laser_cutting"});
    let (status, body) = t.post("/api/v1/jobs/route-service-order", &store, laser).await;
    assert_eq!((status, body["providers"][0]["reason"].as_str()), (422, Some("service_not_offered")), "{body}");
    let unknown = json!({"service_order_id": "so-x", "file_sha256": "ab".repeat(32), "service_type": "3d_printing"});
    let (status, body) = t.post("/api/v1/jobs/route-service-order", &store, unknown).await;
    assert_eq!((status, body["error_type"].as_str()), (422, Some("unknown_file")), "{body}");

    // The order goes to the preferred provider: two copies, offered there, seen by its admins.
    let mut ws_b = open_space_ws(&t, &admin_b, "prov-b").await;
    let request = json!({
        "service_order_id": "so-1", "file_sha256": sha, "service_type": "3d_printing", "copies": 2,
        "requirements": {"nozzle_mm": 0.4},
        "preferences": {"makerspace_ids": ["prov-b"], "location": "berlin", "quality": "as_sliced", "material": "PLA"}
    });
    let (status, body) = t.post("/api/v1/jobs/route-service-order", &member_b, request.clone()).await;
    assert_eq!(status, 403, "{body}");
    let (status, offered) = t.post("/api/v1/jobs/route-service-order", &store, request.clone()).await;
    assert_eq!(status, 201, "{offered}");
    assert_eq!((offered["status"].as_str(), offered["makerspace_id"].as_str()), (Some("offered"), Some("prov-b")));
    let offered_b: Vec<String> =
        offered["job_ids"].as_array().expect("job ids").iter().map(|j| j.as_str().unwrap().to_string()).collect();
    assert_eq!(offered_b.len(), 2);
    assert!(offered["jobs"].as_array().expect("jobs").iter().all(|j| j["status"] == "offered"), "{offered}");
    assert_eq!(offered["chosen_quote"]["quality"], "as_sliced", "{offered}");
    let pushed = ws_until(&mut ws_b, |m| m["type"] == "job" && m["job"]["status"] == "offered").await;
    assert_eq!(
        (pushed["job"]["owner_id"].as_str(), pushed["job"]["file_name"].as_str()),
        (Some("makrx-store"), Some("so-1.gcode"))
    );

    // Sent again: the same order; another request under its id: a conflict.
    let (status, again) = t.post("/api/v1/jobs/route-service-order", &store, request.clone()).await;
    assert_eq!((status, &again["job_ids"]), (200, &offered["job_ids"]), "{again}");
    let mut changed = request.clone();
    changed["copies"] = json!(3);
    let (status, body) = t.post("/api/v1/jobs/route-service-order", &store, changed).await;
    assert_eq!((status, body["error_type"].as_str()), (409, Some("conflict")), "{body}");
    let other_store = t.token("other-store", Role::Service, &[]);
    let (status, _) = t.get("/api/v1/service-orders/so-1", Some(&other_store)).await;
    assert_eq!(status, 404, "another service's order");

    // The router leaves offered jobs alone: b1 comes online and takes a job queued after them.
    let device = t.publisher().await;
    device.telemetry("prov-b", "b1", json!({"state": "idle"})).await;
    let (status, made) = submit(&t, &member_b, "prov-b", "own.gcode", &sliced_gcode("1"), None).await;
    assert_eq!(status, 201, "{made}");
    let own = made["jobs"][0]["id"].as_str().expect("job id").to_string();
    let sent = ws_until(&mut ws_b, |m| {
        m["type"] == "job" && m["job"]["id"] == own.as_str() && m["job"]["status"] == "sending"
    })
    .await;
    assert_eq!(sent["job"]["equipment_id"], "b1");
    for job in &offered_b {
        assert_eq!(job_status(&t, "prov-b", job).await, "offered");
    }
    let (status, body) = t.post(&format!("/api/v1/makerspaces/prov-b/jobs/{own}/accept"), &admin_b, json!(null)).await;
    assert_eq!((status, body["error_type"].as_str()), (409, Some("not_offered")), "{body}");
    let (status, body) =
        t.post(&format!("/api/v1/makerspaces/prov-b/jobs/{}/cancel", offered_b[0]), &admin_b, json!(null)).await;
    assert_eq!((status, body["error_type"].as_str()), (409, Some("job_offered")), "{body}");

    // Who answers: the space's admins and service providers, nobody else.
    let accept_b = format!("/api/v1/makerspaces/prov-b/jobs/{}/accept", offered_b[0]);
    let (status, _) = t.post(&accept_b, &member_b, json!(null)).await;
    assert_eq!(status, 403);
    let (status, _) = t.post(&accept_b, &admin_a, json!(null)).await;
    assert_eq!(status, 404);

    // prov-b refuses: its jobs are refused and the order is offered to prov-a at once.
    let mut ws_a = open_space_ws(&t, &admin_a, "prov-a").await;
    let reject_b = format!("/api/v1/makerspaces/prov-b/jobs/{}/reject", offered_b[1]);
    let (status, refused) = t.post(&reject_b, &admin_b, json!({"reason": "our printers are booked"})).await;
    assert_eq!(status, 200, "{refused}");
    assert_eq!((refused["status"].as_str(), ids(&refused["jobs"]).len()), (Some("offered"), 2), "{refused}");
    assert!(refused["jobs"].as_array().expect("jobs").iter().all(|j| j["status"] == "refused"), "{refused}");
    let (status, body) = t.post(&reject_b, &admin_b, json!(null)).await;
    assert_eq!((status, body["status"].as_str()), (409, Some("refused")), "once only: {body}");
    let passed = order(&t, &store, "so-1").await;
    assert_eq!((passed["makerspace_id"].as_str(), &passed["tried"]), (Some("prov-a"), &json!(["prov-b"])), "{passed}");
    assert_eq!(
        events(&passed),
        [("offered".into(), "prov-b".into()), ("refused".into(), "prov-b".into()), ("offered".into(), "prov-a".into())]
    );
    assert_eq!(passed["history"][1]["reason"], "our printers are booked");
    ws_until(&mut ws_a, |m| m["type"] == "job" && m["job"]["status"] == "offered").await;

    // prov-a's service provider finds the offer, accepts it: both copies join its queue, and
    // a1 prints one.
    let (status, offers) = t.get("/api/v1/makerspaces/prov-a/offers", Some(&provider_a)).await;
    assert_eq!((status, offers.as_array().map(Vec::len)), (200, Some(1)), "{offers}");
    assert_eq!((offers[0]["service_order_id"].as_str(), offers[0]["copies"].as_i64()), (Some("so-1"), Some(2)));
    let offered_a = ids(&offers[0]["jobs"]);
    assert_eq!(json!(offered_a), passed["job_ids"]);
    let (status, _) = t.get("/api/v1/makerspaces/prov-b/offers", Some(&member_b)).await;
    assert_eq!(status, 403);
    let (_, none) = t.get("/api/v1/makerspaces/prov-b/offers", Some(&admin_b)).await;
    assert_eq!(none, json!([]), "prov-b refused it");
    let (status, accepted) =
        t.post(&format!("/api/v1/makerspaces/prov-a/jobs/{}/accept", offered_a[0]), &provider_a, json!(null)).await;
    assert_eq!(status, 200, "{accepted}");
    assert_eq!(accepted["status"], "accepted");
    assert_eq!(ids(&accepted["jobs"]).len(), 2);
    assert!(accepted["jobs"].as_array().expect("jobs").iter().all(|j| j["status"] == "queued"), "{accepted}");
    let (_, list) = t.get("/api/v1/providers/available?service_type=3d_printing", Some(&t.super_admin())).await;
    assert_eq!(list["providers"][0]["capacity"][0]["queued_jobs"], 2, "{list}");
    device.telemetry("prov-a", "a1", json!({"state": "idle"})).await;
    let sent = ws_until(&mut ws_a, |m| m["type"] == "job" && m["job"]["status"] == "sending").await;
    assert_eq!(sent["job"]["equipment_id"], "a1");
    assert!(offered_a.contains(&sent["job"]["id"].as_str().expect("id").to_string()));
    let followed = eventually(Duration::from_secs(10), "the store to see a job sent", || async {
        let now = order(&t, &store, "so-1").await;
        now["jobs"].as_array().is_some_and(|jobs| jobs.iter().any(|j| j["status"] == "sending")).then_some(now)
    })
    .await;
    assert_eq!(followed["status"], "accepted", "{followed}");
    assert_eq!(events(&followed).last(), Some(&("accepted".to_string(), "prov-a".to_string())));
    t.stop().await;
}

#[actix_web::test]
async fn an_offer_nobody_answers_lapses_to_the_next_provider_and_a_restart_neither_loses_nor_doubles_it() {
    let mut t = TestApp::spawn().await;
    for space in ["lapse-x", "lapse-y"] {
        t.makerspace(space).await;
        make_provider(&t, space, "", 1).await;
        t.machine(space, &format!("{space}-p"), printer()).await;
    }
    let store = t.token("makrx-store", Role::Service, &[]);
    let (_, file) = upload(&t, &store, "part.gcode", &sliced_gcode("3")).await;
    let request = json!({"service_order_id": "so-lapse", "file_sha256": file["sha256"], "service_type": "3d_printing"});
    let (status, offered) = t.post("/api/v1/jobs/route-service-order", &store, request).await;
    assert_eq!((status, offered["makerspace_id"].as_str()), (201, Some("lapse-x")), "{offered}");
    let first_jobs: Vec<String> =
        offered["job_ids"].as_array().expect("ids").iter().map(|j| j.as_str().unwrap().to_string()).collect();

    // makrcave stops and starts again while the offer runs: the deadline is in the database.
    t.restart().await;
    let done = eventually(Duration::from_secs(20), "the order to lapse at both providers", || async {
        let now = order(&t, &store, "so-lapse").await;
        (now["status"] == "unroutable").then_some(now)
    })
    .await;
    assert_eq!(
        events(&done),
        [
            ("offered".into(), "lapse-x".into()),
            ("timed_out".into(), "lapse-x".into()),
            ("offered".into(), "lapse-y".into()),
            ("timed_out".into(), "lapse-y".into()),
            ("unroutable".into(), String::new()),
        ],
        "each offer made and lapsed once: {done}"
    );
    assert_eq!(done["history"][1]["reason"], "no answer within 1 s");
    assert_eq!(done["tried"], json!(["lapse-x", "lapse-y"]));
    assert_eq!(done["job_ids"], json!([]));
    for job in &first_jobs {
        assert_eq!(job_status(&t, "lapse-x", job).await, "refused");
    }
    let admin_y = t.token("boss-y", Role::MakerspaceAdmin, &["lapse-y"]);
    let (_, refused) = t.get("/api/v1/makerspaces/lapse-y/jobs?status=refused", Some(&admin_y)).await;
    assert_eq!(refused["total"], 1, "{refused}");
    let (_, offered) = t.get("/api/v1/makerspaces/lapse-y/jobs?status=offered", Some(&admin_y)).await;
    assert_eq!(offered["total"], 0, "{offered}");
    t.stop().await;
}
