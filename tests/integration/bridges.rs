//! What makrcave gives a makrcave-bridge (a kiosk device beside one machine): the file of the
//! job sent to its machine, fetched with its device token; the signed offline allowlist of the
//! cards allowed on its machine; and the audit rows of taps it decided while makrcave was away.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{Hmac, Mac};
use makrcave::domain::access::Role;
use ring::signature::{UnparsedPublicKey, ED25519};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::common::{eventually, open_space_ws, ws_until, TestApp};
use crate::job_queue::{sliced_gcode, submit};
use crate::jobs::Firmware;

async fn register_kiosk(t: &TestApp, space: &str, machines: &[&str]) -> String {
    let admin = t.token("boss", Role::MakerspaceAdmin, &[space]);
    let (status, kiosk) = t
        .post(
            &format!("/api/v1/makerspaces/{space}/kiosks"),
            &admin,
            json!({"name": format!("bridge {}", machines.join(",")), "equipment_ids": machines}),
        )
        .await;
    assert_eq!(status, 201, "{kiosk}");
    kiosk["token"].as_str().expect("device token").to_string()
}

async fn fetch(t: &TestApp, url: &str, token: &str) -> reqwest::Response {
    t.http.get(t.url(url)).bearer_auth(token).send().await.expect("GET")
}

#[actix_web::test]
async fn a_bridge_fetches_the_file_of_the_job_sent_to_its_machine_with_its_device_token() {
    let t = TestApp::spawn().await;
    t.makerspace("s").await;
    t.machine("s", "p1", json!({"heartbeat_timeout_s": 3600})).await;
    t.machine("s", "p2", json!({"heartbeat_timeout_s": 3600})).await;
    let bridge = register_kiosk(&t, "s", &["p1"]).await;
    let other_bridge = register_kiosk(&t, "s", &["p2"]).await;
    let admin = t.token("boss", Role::MakerspaceAdmin, &["s"]);
    let ada = t.token("ada", Role::Member, &["s"]);
    let mut ws = open_space_ws(&t, &admin, "s").await;
    let mut firmware = Firmware::connect(&t, "s", "p1").await;
    firmware.report("telemetry", json!({"state": "idle"})).await;
    t.wait_state("s", "p1", "idle", |m| m["state"] == "idle").await;

    let gcode = sliced_gcode("3");
    let (status, made) = submit(&t, &ada, "s", "bracket.gcode", &gcode, Some(json!({"equipment_id": "p1"}))).await;
    assert_eq!(status, 201, "{made}");
    let job = made["jobs"][0]["id"].as_str().expect("id").to_string();
    let start = firmware.next_command().await;
    let sha = hex(&Sha256::digest(&gcode));
    assert_eq!(
        start,
        json!({"action": "start", "job_id": job, "file": "bracket.gcode", "url": format!("/api/v1/kiosk/jobs/{job}/file"),
               "sha256": sha, "size": gcode.len()})
    );
    let url = start["url"].as_str().expect("url");

    // The bridge's token gets the bytes, whole, with their hash as the ETag.
    let response = fetch(&t, url, &bridge).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["etag"], format!("\"{sha}\"").as_str());
    assert_eq!(response.headers()["content-length"], gcode.len().to_string().as_str());
    assert_eq!(response.bytes().await.expect("body").as_ref(), gcode.as_slice());
    // Another machine's bridge, and a person, do not.
    assert_eq!(fetch(&t, url, &other_bridge).await.status(), 404);
    assert_eq!(fetch(&t, url, &admin).await.status(), 401);
    assert_eq!(fetch(&t, "/api/v1/kiosk/jobs/no-such-job/file", &bridge).await.status(), 404);

    // Printing, still there; once the job is over, gone.
    firmware.event(json!({"event": "job_started", "file": "bracket.gcode"})).await;
    ws_until(&mut ws, |m| m["type"] == "job" && m["job"]["id"] == job.as_str() && m["job"]["status"] == "printing")
        .await;
    assert_eq!(fetch(&t, url, &bridge).await.status(), 200);
    firmware.event(json!({"event": "job_finished"})).await;
    ws_until(&mut ws, |m| m["type"] == "job" && m["job"]["id"] == job.as_str() && m["job"]["status"] == "done").await;
    assert_eq!(fetch(&t, url, &bridge).await.status(), 404);
    t.stop().await;
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn member_with_card(t: &TestApp, space: &str, user: &str, card: &str, extra: Value) -> String {
    let root = t.super_admin();
    let mut body =
        json!({"email": format!("{user}@example.org"), "first_name": user, "last_name": "M", "user_id": user});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    let (status, m) = t.post(&format!("/api/v1/makerspaces/{space}/members"), &root, body).await;
    assert_eq!(status, 201, "{m}");
    let id = m["id"].as_str().expect("id").to_string();
    let (status, c) =
        t.post(&format!("/api/v1/makerspaces/{space}/members/{id}/cards"), &root, json!({"uid": card})).await;
    assert_eq!(status, 201, "{c}");
    id
}

async fn certify(t: &TestApp, user: &str, skill: &str) {
    let (status, body) =
        t.post("/api/v1/skills/user-skills", &t.super_admin(), json!({"user_id": user, "skill_id": skill})).await;
    assert_eq!(status, 201, "{body}");
}

/// The payload of a signed allowlist, after checking its signature with `public_key`.
fn verified(list: &Value, public_key: &str) -> Result<Value, String> {
    let payload = BASE64.decode(list["payload"].as_str().ok_or("payload")?).map_err(|e| e.to_string())?;
    let signature = BASE64.decode(list["signature"].as_str().ok_or("signature")?).map_err(|e| e.to_string())?;
    let key = BASE64.decode(public_key).map_err(|e| e.to_string())?;
    UnparsedPublicKey::new(&ED25519, &key).verify(&payload, &signature).map_err(|_| "bad signature".to_string())?;
    serde_json::from_slice(&payload).map_err(|e| e.to_string())
}

/// A card's name in the list, as a bridge computes it from a tap.
fn card_name(payload: &Value, normalized_uid: &str) -> String {
    let key = BASE64.decode(payload["card_key"].as_str().expect("card key")).expect("base64");
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("key");
    mac.update(normalized_uid.as_bytes());
    hex(&mac.finalize().into_bytes())
}

#[actix_web::test]
async fn the_offline_allowlist_is_signed_and_names_the_cards_allowed_on_the_bridges_machine() {
    let t = TestApp::spawn().await;
    t.makerspace("s").await;
    t.makerspace("other").await;
    t.machine("s", "laser", json!({"type": "laser_cutter"})).await;
    t.machine("s", "cnc", json!({"type": "cnc_machine"})).await;
    let (status, skill) = t
        .post(
            "/api/v1/skills",
            &t.super_admin(),
            json!({"id": "laser-safety", "name": "Laser safety", "category": "Safety",
                   "level": "beginner", "makerspace_id": "s", "equipment_ids": ["laser"]}),
        )
        .await;
    assert_eq!(status, 201, "{skill}");
    let ada = member_with_card(&t, "s", "ada", "04:A1:B2:C3", json!({})).await;
    member_with_card(&t, "s", "bob", "04:B0:B0:B0", json!({})).await;
    let today = chrono::Utc::now().date_naive();
    let dee = member_with_card(&t, "s", "dee", "04:DE:E0:00", json!({"end_date": today.to_string()})).await;
    let carl = member_with_card(&t, "s", "carl", "04:CA:41:00", json!({})).await;
    for user in ["ada", "dee", "carl"] {
        certify(&t, user, "laser-safety").await;
    }
    let admin = t.token("boss", Role::MakerspaceAdmin, &["s"]);
    let (status, _) =
        t.post(&format!("/api/v1/makerspaces/s/members/{carl}/suspend"), &admin, json!({"reason": "unpaid"})).await;
    assert_eq!(status, 200);
    let bridge = register_kiosk(&t, "s", &["laser"]).await;

    let (status, key) = t.get("/api/v1/makerspaces/s/allowlist-key", Some(&admin)).await;
    assert_eq!((status, key["algorithm"].as_str()), (200, Some("ed25519")), "{key}");
    let public_key = key["public_key"].as_str().expect("public key").to_string();
    let (status, list) = t.get("/api/v1/kiosk/allowlist", Some(&bridge)).await;
    assert_eq!(status, 200, "{list}");
    let payload = verified(&list, &public_key).expect("signed with the space's key");
    let (_, other_key) = t.get("/api/v1/makerspaces/other/allowlist-key", Some(&t.super_admin())).await;
    assert!(verified(&list, other_key["public_key"].as_str().expect("key")).is_err(), "another space's key");
    let mut tampered = BASE64.decode(list["payload"].as_str().expect("payload")).expect("base64");
    tampered[12] ^= 1;
    let tampered = json!({"payload": BASE64.encode(tampered), "signature": list["signature"]});
    assert!(verified(&tampered, &public_key).is_err(), "a changed byte breaks the signature");

    assert_eq!((payload["version"].as_u64(), payload["makerspace_id"].as_str()), (Some(1), Some("s")));
    let issued: chrono::DateTime<chrono::Utc> = payload["issued_at"].as_str().expect("issued").parse().expect("time");
    let expires: chrono::DateTime<chrono::Utc> =
        payload["expires_at"].as_str().expect("expires").parse().expect("time");
    assert_eq!(expires - issued, chrono::Duration::hours(24));
    let entries = payload["entries"].as_array().expect("entries");
    let entry = |uid: &str| entries.iter().find(|e| e["card"] == card_name(&payload, uid).as_str()).cloned();
    // Ada: certified, active; until the list's expiry.
    let ada_entry = entry("04A1B2C3").expect("ada is allowed");
    assert_eq!(
        (ada_entry["member_id"].as_str(), ada_entry["equipment_ids"].clone()),
        (Some(ada.as_str()), json!(["laser"]))
    );
    assert_eq!(ada_entry["expires_at"], payload["expires_at"]);
    // Dee's membership ends today: her entry ends at midnight.
    let dee_entry = entry("04DEE000").expect("dee is allowed today");
    assert_eq!(dee_entry["member_id"].as_str(), Some(dee.as_str()));
    let midnight = (today + chrono::Duration::days(1)).and_hms_opt(0, 0, 0).expect("midnight").and_utc();
    let dee_ends: chrono::DateTime<chrono::Utc> = dee_entry["expires_at"].as_str().expect("t").parse().expect("time");
    assert_eq!(dee_ends, midnight.min(expires));
    // Bob is not certified, Carl is suspended: neither is in the list; nor is a stranger.
    assert!(entry("04B0B0B0").is_none(), "bob lacks the skill");
    assert!(entry("04CA4100").is_none(), "carl is suspended");
    assert_eq!(entries.len(), 2, "{entries:?}");
    // A person's token is no device token.
    assert_eq!(t.get("/api/v1/kiosk/allowlist", Some(&admin)).await.0, 401);
    t.stop().await;
}

#[actix_web::test]
async fn a_tap_a_bridge_decided_offline_joins_the_audit_log_once() {
    let t = TestApp::spawn().await;
    t.makerspace("s").await;
    t.machine("s", "laser", json!({"type": "laser_cutter", "heartbeat_timeout_s": 3600})).await;
    let ada = member_with_card(&t, "s", "ada", "04:A1:B2:C3", json!({})).await;
    let admin = t.token("boss", Role::MakerspaceAdmin, &["s"]);
    let firmware = Firmware::connect(&t, "s", "laser").await;
    let tap = json!({"event": "offline_tap", "id": "0b6f3c1e-tap-1", "card_uid": "04:a1:b2:c3", "action": "unlock",
                     "granted": true, "reason": "allowlisted", "at": "2026-12-02T05:00:00Z"});
    // Replayed twice from the bridge's queue after a reconnect.
    firmware.event(tap.clone()).await;
    firmware.event(tap).await;
    firmware
        .event(json!({"event": "offline_tap", "id": "0b6f3c1e-tap-2", "card_uid": "DEADBEEF", "action": "unlock",
                      "granted": false, "reason": "fail_closed", "at": "2026-12-02T05:01:00Z"}))
        .await;
    // Events are handled in the order they came: once the last tap is in, the replayed one
    // has been handled too.
    let rows = eventually(std::time::Duration::from_secs(10), "the offline taps in the audit log", || {
        let t = &t;
        let admin = admin.clone();
        async move {
            let (_, rows) = t.get("/api/v1/makerspaces/s/kiosk-attempts", Some(&admin)).await;
            let rows = rows.as_array().cloned().unwrap_or_default();
            rows.iter().any(|r| r["reason"] == "offline_fail_closed").then_some(rows)
        }
    })
    .await;
    assert_eq!(rows.len(), 2, "the replayed tap is recorded once: {rows:?}");
    let granted = rows.iter().find(|r| r["granted"] == true).expect("the granted tap");
    assert_eq!(granted["kiosk_id"], "bridge:laser");
    assert_eq!(granted["reason"], "offline_allowlisted");
    assert_eq!(granted["member_id"].as_str(), Some(ada.as_str()));
    assert_eq!(granted["card_hint"], "…B2C3");
    assert_eq!(granted["at"], "2026-12-02T05:00:00Z");
    let refused = rows.iter().find(|r| r["granted"] == false).expect("the refused tap");
    assert_eq!((refused["reason"].as_str(), refused["member_id"].as_str()), (Some("offline_fail_closed"), None));
    t.stop().await;
}
