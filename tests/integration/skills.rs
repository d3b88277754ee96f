//! Skills, certifications, requests, the audit log and the equipment gate, through the API.

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use makrcave::domain::access::Role;
use makrcave::services::gate::{record_certified_use, GateError};
use serde_json::{json, Value};

use crate::common::TestApp;

fn time(v: &Value) -> DateTime<Utc> {
    v.as_str().and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("not a time: {v}"))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().map(|l| l.iter().filter_map(|s| s.as_str().map(String::from)).collect()).unwrap_or_default()
}

async fn skill(t: &TestApp, space: &str, id: &str, extra: Value) -> Value {
    let mut body = json!({"id": id, "name": format!("Skill {id}"), "category": "Safety", "level": "beginner",
                          "makerspace_id": space});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    let (status, created) = t.post("/api/v1/skills", &t.super_admin(), body).await;
    assert_eq!(status, 201, "create skill {id}: {created}");
    created
}

async fn member_with_user(t: &TestApp, space: &str, user: &str) -> String {
    let (status, m) = t
        .post(
            &format!("/api/v1/makerspaces/{space}/members"),
            &t.super_admin(),
            json!({"email": format!("{user}@example.org"), "first_name": "Ada", "last_name": user, "user_id": user}),
        )
        .await;
    assert_eq!(status, 201, "{m}");
    m["id"].as_str().expect("member id").to_string()
}

async fn audit_actions(t: &TestApp, space: &str, user: &str) -> Vec<(String, Value)> {
    let (status, log) =
        t.get(&format!("/api/v1/skills/audit-logs?makerspace_id={space}&user_id={user}"), Some(&t.super_admin())).await;
    assert_eq!(status, 200, "{log}");
    log.as_array()
        .expect("audit list")
        .iter()
        .map(|a| (a["action"].as_str().unwrap_or_default().to_string(), a.clone()))
        .collect()
}

#[actix_web::test]
async fn skills_prerequisites_cycles_and_forced_grants() {
    let t = TestApp::spawn().await;
    t.makerspace("sk1").await;
    let root = t.super_admin();
    // Certifications go to members of the space.
    member_with_user(&t, "sk1", "u1").await;
    member_with_user(&t, "sk1", "u2").await;
    skill(&t, "sk1", "safety", json!({"name": "Shop Safety"})).await;
    skill(&t, "sk1", "laser", json!({"name": "Laser Cutting", "prerequisite_ids": ["safety"]})).await;
    let cnc =
        skill(&t, "sk1", "cnc", json!({"name": "CNC Operation", "level": "advanced", "prerequisite_ids": ["laser"]}))
            .await;
    assert_eq!(strings(&cnc["prerequisite_ids"]), vec!["laser"]);
    assert_eq!(cnc["certification_validity_days"], 365);

    // A cycle, direct or through others, is refused and stores nothing.
    let (status, body) = t.put("/api/v1/skills/safety", &root, json!({"prerequisite_ids": ["cnc"]})).await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = t.put("/api/v1/skills/safety", &root, json!({"prerequisite_ids": ["safety"]})).await;
    assert_eq!(status, 422, "{body}");
    let (_, safety) = t.get("/api/v1/skills/safety", Some(&root)).await;
    assert_eq!(strings(&safety["prerequisite_ids"]), Vec::<String>::new());
    // Unknown prerequisites and duplicate names too.
    let (status, _) = t
        .post(
            "/api/v1/skills",
            &root,
            json!({"name": "X", "category": "C", "level": "expert", "makerspace_id": "sk1",
                                               "prerequisite_ids": ["nope"]}),
        )
        .await;
    assert_eq!(status, 422);
    let (status, body) = t
        .post(
            "/api/v1/skills",
            &root,
            json!({"name": "Shop Safety", "category": "C", "level": "expert",
                                               "makerspace_id": "sk1"}),
        )
        .await;
    assert_eq!((status, body["error_type"].as_str()), (409, Some("duplicate_skill")));
    let (status, _) = t
        .post(
            "/api/v1/skills",
            &root,
            json!({"name": "Bad; name", "category": "C", "level": "expert",
                                               "makerspace_id": "sk1"}),
        )
        .await;
    assert_eq!(status, 422);
    let (status, body) = t.get("/api/v1/skills/missing", Some(&root)).await;
    assert_eq!((status, body["error_type"].as_str()), (404, Some("skill_not_found")));
    let (_, listed) = t.get("/api/v1/skills?makerspace_id=sk1&level=advanced", Some(&root)).await;
    assert_eq!(listed.as_array().map(Vec::len), Some(1));

    // Granting CNC without its prerequisites names all of them (transitively), stores nothing.
    let (status, body) = t.post("/api/v1/skills/user-skills", &root, json!({"user_id": "u1", "skill_id": "cnc"})).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error_type"], "missing_prerequisites");
    assert_eq!(strings(&body["missing_prerequisites"]), vec!["Laser Cutting", "Shop Safety"]);
    assert_eq!(body["status_code"], 409);
    let (_, held) = t.get("/api/v1/skills/user-skills?user_id=u1", Some(&root)).await;
    assert_eq!(held.as_array().map(Vec::len), Some(0));
    // Forcing needs a reason.
    let (status, _) =
        t.post("/api/v1/skills/user-skills", &root, json!({"user_id": "u1", "skill_id": "cnc", "force": true})).await;
    assert_eq!(status, 422);
    // A makerspace_admin of the space forces it with a reason: granted, and the override audited.
    let admin = t.token("boss", Role::MakerspaceAdmin, &["sk1"]);
    let (status, granted) = t
        .post(
            "/api/v1/skills/user-skills",
            &admin,
            json!({"user_id": "u1", "skill_id": "cnc", "force": true, "reason": "Trained elsewhere",
                   "quiz_score": "95%", "notes": "Passed practical exam"}),
        )
        .await;
    assert_eq!(status, 201, "{granted}");
    assert_eq!(granted["status"], "certified");
    assert_eq!(granted["certified_by"], "boss");
    assert_eq!(granted["quiz_score"], "95%");
    let actions = audit_actions(&t, "sk1", "u1").await;
    let override_line = actions.iter().find(|(a, _)| a == "prerequisite_override").expect("override audited");
    assert_eq!(override_line.1["reason"], "Trained elsewhere");
    assert_eq!(override_line.1["performed_by"], "boss");
    assert!(actions.iter().any(|(a, _)| a == "skill_granted"));
    // With the prerequisites held, a plain grant passes.
    for s in ["safety", "laser"] {
        let (status, body) = t.post("/api/v1/skills/user-skills", &root, json!({"user_id": "u2", "skill_id": s})).await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, _) = t.post("/api/v1/skills/user-skills", &root, json!({"user_id": "u2", "skill_id": "cnc"})).await;
    assert_eq!(status, 201);
    // Members cannot grant; another space's admin does not see the skill.
    let member = t.token("m", Role::Member, &["sk1"]);
    let (status, _) =
        t.post("/api/v1/skills/user-skills", &member, json!({"user_id": "m", "skill_id": "safety"})).await;
    assert_eq!(status, 403);
    let other = t.token("o", Role::MakerspaceAdmin, &["elsewhere"]);
    let (status, _) = t.get("/api/v1/skills/safety", Some(&other)).await;
    assert_eq!(status, 404);
    t.stop().await;
}

#[actix_web::test]
async fn skill_requests_conflict_approve_and_revoke_with_audit() {
    let t = TestApp::spawn().await;
    t.makerspace("sk2").await;
    let root = t.super_admin();
    skill(&t, "sk2", "laser", json!({"name": "Laser Safety", "certification_validity_days": 30})).await;
    let ada = t.token("ada", Role::Member, &["sk2"]);
    let (status, first) = t
        .post(
            "/api/v1/skills/requests",
            &ada,
            json!({"skill_id": "laser", "reason": "Prototype", "notes": "Next week"}),
        )
        .await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["status"], "pending");
    assert_eq!(first["user_id"], "ada");
    let (status, again) = t.post("/api/v1/skills/requests", &ada, json!({"skill_id": "laser"})).await;
    assert_eq!(status, 409, "{again}");
    assert_eq!(again["error_type"], "request_conflict");
    assert_eq!(again["existing_request_id"], first["id"]);
    assert_eq!(again["status_code"], 409);
    let (_, mine) = t.get("/api/v1/skills/requests", Some(&ada)).await;
    assert_eq!(mine.as_array().map(Vec::len), Some(1));
    // admin reads but does not act for itself in a space; another space does not see it.
    let (status, _) =
        t.post("/api/v1/skills/requests", &t.token("a", Role::Admin, &[]), json!({"skill_id": "laser"})).await;
    assert_eq!(status, 403);

    // Two people asking at once: one request each; one person asking twice at once: one
    // request, and the other answer names it.
    let (cy, dee) = (t.token("cy", Role::Member, &["sk2"]), t.token("dee", Role::Member, &["sk2"]));
    let ((s1, b1), (s2, b2), (s3, _)) = tokio::join!(
        t.post("/api/v1/skills/requests", &cy, json!({"skill_id": "laser"})),
        t.post("/api/v1/skills/requests", &cy, json!({"skill_id": "laser"})),
        t.post("/api/v1/skills/requests", &dee, json!({"skill_id": "laser"})),
    );
    assert_eq!(s3, 201);
    let mut statuses = [s1, s2];
    statuses.sort();
    assert_eq!(statuses, [201, 409], "{b1} {b2}");
    let (winner, loser) = if s1 == 201 { (b1, b2) } else { (b2, b1) };
    assert_eq!(loser["existing_request_id"], winner["id"]);
    let (_, pending) = t.get("/api/v1/skills/requests?makerspace_id=sk2&status=pending", Some(&root)).await;
    assert_eq!(pending.as_array().map(Vec::len), Some(3));

    let id = first["id"].as_str().expect("request id");
    let (status, _) = t.put(&format!("/api/v1/skills/requests/{id}"), &ada, json!({"status": "approved"})).await;
    assert_eq!(status, 403);
    let before = Utc::now();
    let (status, decided) =
        t.put(&format!("/api/v1/skills/requests/{id}"), &root, json!({"status": "approved", "notes": "Demo ok"})).await;
    let after = Utc::now();
    assert_eq!(status, 200, "{decided}");
    assert_eq!(decided["status"], "approved");
    assert_eq!(decided["reviewed_by"], "root");
    let (status, again) = t.put(&format!("/api/v1/skills/requests/{id}"), &root, json!({"status": "rejected"})).await;
    assert_eq!((status, again["error_type"].as_str()), (409, Some("request_not_pending")));

    let (_, held) = t.get("/api/v1/skills/user-skills?user_id=ada&status=certified", Some(&ada)).await;
    let held = held.as_array().expect("list").clone();
    assert_eq!(held.len(), 1, "{held:?}");
    let expires = time(&held[0]["expires_at"]);
    assert!(expires >= before + Duration::days(30) && expires <= after + Duration::days(30), "{expires}");
    assert_eq!(time(&held[0]["expires_at"]) - time(&held[0]["certified_at"]), Duration::days(30));
    // Someone else in the space does not see ada's skills.
    let (_, others) =
        t.get("/api/v1/skills/user-skills?user_id=ada", Some(&t.token("bo", Role::Member, &["sk2"]))).await;
    assert_eq!(others.as_array().map(Vec::len), Some(0));
    // Holding it, ada cannot ask again.
    let (status, body) = t.post("/api/v1/skills/requests", &ada, json!({"skill_id": "laser"})).await;
    assert_eq!((status, body["error_type"].as_str()), (409, Some("already_certified")));

    // Revoke, once.
    let user_skill = held[0]["id"].as_str().expect("user skill id");
    let (status, revoked) = t
        .post(&format!("/api/v1/skills/user-skills/{user_skill}/revoke?reason=Safety%20violation"), &root, json!({}))
        .await;
    assert_eq!(status, 200, "{revoked}");
    assert_eq!(revoked["status"], "revoked");
    let (status, _) = t.post(&format!("/api/v1/skills/user-skills/{user_skill}/revoke"), &root, json!({})).await;
    assert_eq!(status, 409);

    // A second request, rejected.
    let (status, second) = t.post("/api/v1/skills/requests", &ada, json!({"skill_id": "laser"})).await;
    assert_eq!(status, 201, "{second}");
    let id2 = second["id"].as_str().expect("id");
    let (status, rejected) =
        t.put(&format!("/api/v1/skills/requests/{id2}"), &root, json!({"status": "rejected"})).await;
    assert_eq!((status, rejected["status"].as_str()), (200, Some("rejected")));

    let actions: Vec<String> = audit_actions(&t, "sk2", "ada").await.into_iter().map(|(a, _)| a).collect();
    for expected in ["skill_granted", "request_approved", "skill_revoked", "request_rejected"] {
        assert!(actions.contains(&expected.to_string()), "{expected} missing from {actions:?}");
    }
    let revoke_line =
        audit_actions(&t, "sk2", "ada").await.into_iter().find(|(a, _)| a == "skill_revoked").expect("line");
    assert_eq!(revoke_line.1["reason"], "Safety violation");
    // ada sees her own audit lines; a member of the space does not see hers.
    let (_, own) = t.get("/api/v1/skills/audit-logs", Some(&ada)).await;
    assert!(own.as_array().is_some_and(|l| !l.is_empty()));
    let (_, foreign) = t.get("/api/v1/skills/audit-logs", Some(&t.token("bo", Role::Member, &["sk2"]))).await;
    assert_eq!(foreign.as_array().map(Vec::len), Some(0));
    t.stop().await;
}

#[actix_web::test]
async fn equipment_access_names_every_missing_skill_and_expires() {
    let t = TestApp::spawn().await;
    t.makerspace("sk3").await;
    let root = t.super_admin();
    t.machine("sk3", "eq-laser-001", json!({"name": "Epilog Helix Laser"})).await;
    t.machine("sk3", "eq-free", json!({})).await;
    skill(&t, "sk3", "laser-safety", json!({"name": "Laser Safety", "equipment_ids": ["eq-laser-001"]})).await;
    skill(
        &t,
        "sk3",
        "materials",
        json!({"name": "Material Handling", "category": "Materials",
                                         "equipment_ids": ["eq-laser-001"]}),
    )
    .await;
    skill(&t, "sk3", "first-aid", json!({"name": "First Aid", "certification_validity_days": 10})).await;
    skill(
        &t,
        "sk3",
        "laser-op",
        json!({"name": "Laser Operation", "prerequisite_ids": ["first-aid"],
                                        "equipment_ids": ["eq-laser-001"]}),
    )
    .await;
    // Unknown equipment is refused.
    let (status, _) = t
        .post(
            "/api/v1/skills",
            &root,
            json!({"name": "Z", "category": "C", "level": "beginner", "makerspace_id": "sk3",
                                               "equipment_ids": ["eq-nope"]}),
        )
        .await;
    assert_eq!(status, 422);
    // The equipment's own skill_requirements is the same list.
    let (_, eq) = t.get("/api/v1/makerspaces/sk3/equipment/eq-laser-001", Some(&root)).await;
    assert_eq!(strings(&eq["skill_requirements"]), vec!["laser-safety", "materials", "laser-op"]);

    let (_, reqs) = t.get("/api/v1/skills/equipment-requirements?makerspace_id=sk3", Some(&root)).await;
    let laser = reqs.as_array().expect("list").iter().find(|e| e["equipment_id"] == "eq-laser-001").expect("laser");
    assert_eq!(laser["equipment_name"], "Epilog Helix Laser");
    let required = laser["required_skills"].as_array().expect("skills");
    assert_eq!(required.len(), 4, "{required:?}");
    let first_aid = required.iter().find(|r| r["skill_id"] == "first-aid").expect("prerequisite listed");
    assert_eq!(first_aid["is_required"], false);
    let safety = required.iter().find(|r| r["skill_id"] == "laser-safety").expect("laser safety");
    assert_eq!((safety["skill_level"].as_str(), safety["is_required"].as_bool()), (Some("beginner"), Some(true)));

    member_with_user(&t, "sk3", "maker1").await;
    let maker = t.token("maker1", Role::Member, &["sk3"]);
    let (status, body) =
        t.post("/api/v1/skills/user-skills", &root, json!({"user_id": "maker1", "skill_id": "materials"})).await;
    assert_eq!(status, 201, "{body}");
    let granted =
        audit_actions(&t, "sk3", "maker1").await.into_iter().find(|(a, _)| a == "skill_granted").expect("line");
    assert_eq!(strings(&granted.1["metadata"]["equipment_authorized"]), vec!["eq-laser-001"]);
    let (status, check) = t.get("/api/v1/skills/access/equipment/eq-laser-001", Some(&maker)).await;
    assert_eq!(status, 200, "{check}");
    assert_eq!(check["can_access"], false);
    assert_eq!(check["equipment_name"], "Epilog Helix Laser");
    let mut missing = strings(&check["missing_skills"]);
    missing.sort();
    assert_eq!(missing, vec!["First Aid", "Laser Operation", "Laser Safety"]);
    assert_eq!(strings(&check["user_skills"]), vec!["Material Handling"]);
    assert!(check["reason"].as_str().is_some_and(|r| r.starts_with("Missing required skills: ")));
    // A member may not look at someone else's access; an admin may.
    let (status, _) = t.get("/api/v1/skills/access/equipment/eq-laser-001?user_id=root", Some(&maker)).await;
    assert_eq!(status, 403);

    let (status, bulk) = t.get("/api/v1/skills/access/equipment?user_id=maker1&makerspace_id=sk3", Some(&root)).await;
    assert_eq!(status, 200, "{bulk}");
    assert_eq!(bulk["summary"]["total_equipment"], 2);
    assert_eq!(bulk["summary"]["accessible_equipment"], 1);
    assert_eq!(bulk["summary"]["access_percentage"], 50.0);
    let laser_row = bulk["equipment_access"]
        .as_array()
        .expect("rows")
        .iter()
        .find(|r| r["equipment_id"] == "eq-laser-001")
        .expect("row");
    assert_eq!(strings(&laser_row["missing_skill_ids"]), vec!["first-aid", "laser-op", "laser-safety"]);

    for s in ["laser-safety", "first-aid", "laser-op"] {
        let (status, body) =
            t.post("/api/v1/skills/user-skills", &root, json!({"user_id": "maker1", "skill_id": s})).await;
        assert_eq!(status, 201, "{body}");
    }
    let (_, check) = t.get("/api/v1/skills/access/equipment/eq-laser-001", Some(&maker)).await;
    assert_eq!(check["can_access"], true, "{check}");
    assert_eq!(strings(&check["missing_skills"]), Vec::<String>::new());

    // Eleven days on, First Aid (10 days) has expired: the gate fails and names it.
    let later = (Utc::now() + Duration::days(11)).to_rfc3339_opts(SecondsFormat::Secs, true);
    let (status, check) =
        t.get(&format!("/api/v1/skills/access/equipment/eq-laser-001?at={later}"), Some(&maker)).await;
    assert_eq!(status, 200, "{check}");
    assert_eq!(check["can_access"], false);
    assert_eq!(strings(&check["missing_skills"]), vec!["First Aid"]);

    // A suspended member is refused whatever the skills.
    let member_id = {
        let (_, page) = t.get("/api/v1/makerspaces/sk3/members", Some(&root)).await;
        page["members"][0]["id"].as_str().expect("member").to_string()
    };
    let (status, _) =
        t.post(&format!("/api/v1/makerspaces/sk3/members/{member_id}/suspend"), &root, json!({"reason": "test"})).await;
    assert_eq!(status, 200);
    // (Suspended, the member no longer reads the space at all; an admin checks for them.)
    let (status, _) = t.get("/api/v1/skills/access/equipment/eq-laser-001", Some(&maker)).await;
    assert_eq!(status, 404);
    let (_, check) = t.get("/api/v1/skills/access/equipment/eq-laser-001?user_id=maker1", Some(&root)).await;
    assert_eq!((check["can_access"].as_bool(), check["membership_ok"].as_bool()), (Some(false), Some(false)));
    assert_eq!(check["reason"], "Membership is suspended");
    // Not a member at all.
    let (_, check) =
        t.get("/api/v1/skills/access/equipment/eq-free", Some(&t.token("x", Role::Member, &["sk3"]))).await;
    assert_eq!(check["can_access"], false);
    // Another space's admin does not see the machine.
    let (status, _) = t
        .get("/api/v1/skills/access/equipment/eq-laser-001", Some(&t.token("o", Role::MakerspaceAdmin, &["zz"])))
        .await;
    assert_eq!(status, 404);
    t.stop().await;
}

#[actix_web::test]
async fn a_certified_use_renews_on_use_skills_and_the_cache_follows_changes() {
    let t = TestApp::spawn().await;
    t.makerspace("sk4").await;
    let root = t.super_admin();
    t.machine("sk4", "eq-cnc", json!({})).await;
    skill(
        &t,
        "sk4",
        "cnc",
        json!({"name": "CNC", "certification_validity_days": 30, "renew_on_use": true,
                                  "equipment_ids": ["eq-cnc"]}),
    )
    .await;
    skill(
        &t,
        "sk4",
        "dust",
        json!({"name": "Dust Control", "certification_validity_days": 30,
                                   "equipment_ids": ["eq-cnc"]}),
    )
    .await;
    member_with_user(&t, "sk4", "kim").await;
    let state = t.app().state();

    // Refused: every missing skill named, and nothing renewed.
    match record_certified_use(state, "eq-cnc", "kim", Utc::now()).await {
        Err(GateError::Refused { error_type, missing_skills, .. }) => {
            assert_eq!(error_type, "insufficient_skills");
            assert_eq!(missing_skills, vec!["CNC".to_string(), "Dust Control".to_string()]);
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(state.store.certifications_cached("sk4", "kim"), "the check filled the cache");
    for s in ["cnc", "dust"] {
        let (status, body) =
            t.post("/api/v1/skills/user-skills", &root, json!({"user_id": "kim", "skill_id": s})).await;
        assert_eq!(status, 201, "{body}");
    }
    assert!(!state.store.certifications_cached("sk4", "kim"), "a grant invalidates the cache");

    let granted_expiry = |list: &Value, skill: &str| {
        list.as_array()
            .and_then(|l| l.iter().find(|u| u["skill_id"] == skill))
            .map(|u| time(&u["expires_at"]))
            .expect("user skill")
    };
    let (_, before) = t.get("/api/v1/skills/user-skills?user_id=kim", Some(&root)).await;
    let dust_before = granted_expiry(&before, "dust");
    let at = Utc::now() + Duration::days(20);
    let used = record_certified_use(state, "eq-cnc", "kim", at).await.expect("a certified use");
    assert!(used.access.can_access);
    assert_eq!(used.renewed, vec![("cnc".to_string(), at + Duration::days(30))]);
    let (_, after) = t.get("/api/v1/skills/user-skills?user_id=kim", Some(&root)).await;
    let cnc_after = granted_expiry(&after, "cnc");
    assert!((cnc_after - (at + Duration::days(30))).num_milliseconds().abs() < 1000, "{cnc_after}");
    assert_eq!(granted_expiry(&after, "dust"), dust_before, "no renew_on_use, no renewal");
    assert!(audit_actions(&t, "sk4", "kim").await.iter().any(|(a, _)| a == "renewed_on_use"));

    // Past Dust Control's expiry the use is refused and names only it.
    match record_certified_use(state, "eq-cnc", "kim", Utc::now() + Duration::days(31)).await {
        Err(GateError::Refused { missing_skills, .. }) => assert_eq!(missing_skills, vec!["Dust Control".to_string()]),
        other => panic!("expected a refusal, got {other:?}"),
    }
    // A skill change invalidates the space's cache entries.
    let _ = record_certified_use(state, "eq-cnc", "kim", Utc::now()).await;
    assert!(state.store.certifications_cached("sk4", "kim"));
    let (status, _) = t.put("/api/v1/skills/dust", &root, json!({"certification_validity_days": 60})).await;
    assert_eq!(status, 200);
    assert!(!state.store.certifications_cached("sk4", "kim"));
    t.stop().await;
}
