//! Members, plans, cards and CSV: the member management of a makerspace.

use makrcave::domain::access::Role;
use reqwest::Method;
use serde_json::{json, Value};

use crate::common::TestApp;

async fn member(t: &TestApp, space: &str, email: &str, extra: Value) -> Value {
    let mut body = json!({"email": email, "first_name": "Ada", "last_name": email.split('@').next().unwrap_or("x")});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    let (status, created) = t.post(&format!("/api/v1/makerspaces/{space}/members"), &t.super_admin(), body).await;
    assert_eq!(status, 201, "create member: {created}");
    created
}

fn ids(page: &Value) -> Vec<String> {
    page["members"]
        .as_array()
        .map(|l| l.iter().filter_map(|m| m["email"].as_str().map(String::from)).collect())
        .unwrap_or_default()
}

#[actix_web::test]
async fn a_new_makerspace_has_the_five_default_plans_and_a_plan_in_use_cannot_go() {
    let t = TestApp::spawn().await;
    t.makerspace("p").await;
    let root = t.super_admin();
    let (status, plans) = t.get("/api/v1/makerspaces/p/members/plans", Some(&root)).await;
    assert_eq!(status, 200);
    let names: Vec<&str> = plans.as_array().expect("plans").iter().filter_map(|p| p["name"].as_str()).collect();
    for name in ["Basic Maker", "Pro Maker", "Premium", "Student", "Service Provider"] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    let student = plans.as_array().expect("plans").iter().find(|p| p["name"] == "Student").expect("student").clone();
    assert_eq!(student["price"], 19.99);
    assert_eq!(student["access_hours_per_day"], 6);
    let plan_id = student["id"].as_str().expect("id").to_string();

    member(&t, "p", "sam@example.org", json!({"plan_id": plan_id})).await;
    let (status, body) = t.delete(&format!("/api/v1/makerspaces/p/members/plans/{plan_id}"), &root).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error_type"], "plan_in_use");
    let (_, again) = t.get(&format!("/api/v1/makerspaces/p/members/plans/{plan_id}"), Some(&root)).await;
    assert_eq!(again["member_count"], 1);

    let (status, custom) = t
        .post(
            "/api/v1/makerspaces/p/members/plans",
            &root,
            json!({"name": "Night Owl", "price": 15, "billing_period": "monthly", "access_hours_per_day": 4}),
        )
        .await;
    assert_eq!(status, 201, "{custom}");
    let (status, dup) = t
        .post(
            "/api/v1/makerspaces/p/members/plans",
            &root,
            json!({"name": "Night Owl", "price": 1, "billing_period": "monthly"}),
        )
        .await;
    assert_eq!((status, dup["error_type"].as_str()), (409, Some("duplicate_plan")));
    let (status, _) = t
        .post(
            "/api/v1/makerspaces/p/members/plans",
            &root,
            json!({"name": "Free", "price": -5, "billing_period": "monthly"}),
        )
        .await;
    assert_eq!(status, 422);
    let (status, _) =
        t.delete(&format!("/api/v1/makerspaces/p/members/plans/{}", custom["id"].as_str().expect("id")), &root).await;
    assert_eq!(status, 204);
    t.stop().await;
}

#[actix_web::test]
async fn members_are_created_searched_filtered_sorted_and_paged() {
    let t = TestApp::spawn().await;
    t.makerspace("m").await;
    let root = t.super_admin();
    for (email, first, last) in [
        ("ada@example.org", "Ada", "Lovelace"),
        ("alan@example.org", "Alan", "Turing"),
        ("grace@example.org", "Grace", "Hopper"),
        ("linus@example.org", "Linus", "Torvalds"),
    ] {
        member(&t, "m", email, json!({"first_name": first, "last_name": last})).await;
    }
    member(
        &t,
        "m",
        "old@example.org",
        json!({"first_name": "Old", "last_name": "Timer", "start_date": "2020-01-01", "end_date": "2021-01-01"}),
    )
    .await;

    let (status, page) = t.get("/api/v1/makerspaces/m/members?search=TUR", Some(&root)).await;
    assert_eq!(status, 200);
    assert_eq!(ids(&page), vec!["alan@example.org"]);
    let (_, page) = t.get("/api/v1/makerspaces/m/members?sort=-email&page_size=2&page=1", Some(&root)).await;
    assert_eq!(ids(&page), vec!["old@example.org", "linus@example.org"]);
    assert_eq!((page["total"].as_i64(), page["pages"].as_i64()), (Some(5), Some(3)));
    let (_, page) = t.get("/api/v1/makerspaces/m/members?sort=-email&page_size=2&page=3", Some(&root)).await;
    assert_eq!(ids(&page), vec!["ada@example.org"]);
    let (_, page) = t.get("/api/v1/makerspaces/m/members?status=expired", Some(&root)).await;
    assert_eq!(ids(&page), vec!["old@example.org"], "active past its end date is expired");
    assert_eq!(page["members"][0]["status"], "expired");
    let (_, page) = t.get("/api/v1/makerspaces/m/members?status=active&sort=name", Some(&root)).await;
    assert_eq!(ids(&page), vec!["grace@example.org", "ada@example.org", "linus@example.org", "alan@example.org"]);
    // A search with LIKE wildcards matches them literally.
    let (_, page) = t.get("/api/v1/makerspaces/m/members?search=%25", Some(&root)).await;
    assert_eq!(page["total"], 0);
    for bad in ["sort=shoe_size", "page=0", "page_size=1000", "status=sleeping", "role=wizard"] {
        let (status, body) = t.get(&format!("/api/v1/makerspaces/m/members?{bad}"), Some(&root)).await;
        assert_eq!(status, 422, "{bad}: {body}");
    }
    t.stop().await;
}

#[actix_web::test]
async fn bad_member_input_is_refused_and_stores_nothing() {
    let t = TestApp::spawn().await;
    t.makerspace("v").await;
    let root = t.super_admin();
    let existing = member(&t, "v", "dup@example.org", json!({})).await;
    let cases = [
        (json!({"email": "not-an-email", "first_name": "A", "last_name": "B"}), 422, "validation_error"),
        (json!({"email": "x@example.org", "first_name": "", "last_name": "B"}), 422, "validation_error"),
        (
            json!({"email": "x@example.org", "first_name": "A", "last_name": "B", "plan_id": "nope"}),
            422,
            "validation_error",
        ),
        (
            json!({"email": "x@example.org", "first_name": "A", "last_name": "B", "role": "emperor"}),
            422,
            "validation_error",
        ),
        (
            json!({"email": "x@example.org", "first_name": "A", "last_name": "B", "start_date": "2026-02-01", "end_date": "2026-01-01"}),
            422,
            "validation_error",
        ),
        (json!({"email": "DUP@example.org", "first_name": "A", "last_name": "B"}), 409, "duplicate_member"),
    ];
    for (body, want, error_type) in cases {
        let (status, answer) = t.post("/api/v1/makerspaces/v/members", &root, body.clone()).await;
        assert_eq!((status, answer["error_type"].as_str()), (want, Some(error_type)), "{body}: {answer}");
    }
    let (_, dup) = t
        .post(
            "/api/v1/makerspaces/v/members",
            &root,
            json!({"email": "dup@example.org", "first_name": "A", "last_name": "B"}),
        )
        .await;
    assert_eq!(dup["existing_member_id"], existing["id"]);
    let (_, page) = t.get("/api/v1/makerspaces/v/members", Some(&root)).await;
    assert_eq!(page["total"], 1, "nothing partial was stored");
    t.stop().await;
}

#[actix_web::test]
async fn suspend_reactivate_delete_and_the_activity_log() {
    let t = TestApp::spawn().await;
    t.makerspace("s").await;
    let admin = t.token("boss", Role::MakerspaceAdmin, &["s"]);
    let m = member(&t, "s", "kim@example.org", json!({"user_id": "kim"})).await;
    let id = m["id"].as_str().expect("id");
    let base = format!("/api/v1/makerspaces/s/members/{id}");

    let (status, _) = t.post(&format!("{base}/suspend"), &admin, json!({})).await;
    assert_eq!(status, 422, "a reason is required");
    let (status, suspended) = t.post(&format!("{base}/suspend"), &admin, json!({"reason": "unpaid dues"})).await;
    assert_eq!(status, 200, "{suspended}");
    assert_eq!(
        (suspended["status"].as_str(), suspended["suspension_reason"].as_str()),
        (Some("suspended"), Some("unpaid dues"))
    );
    let (status, again) = t.post(&format!("{base}/suspend"), &admin, json!({"reason": "again"})).await;
    assert_eq!((status, again["error_type"].as_str()), (409, Some("invalid_status")));
    let (status, active) = t.post(&format!("{base}/reactivate"), &admin, json!({})).await;
    assert_eq!((status, active["status"].as_str()), (200, Some("active")));
    let (status, updated) = t.put(&base, &admin, json!({"phone": "+49 30 1234", "role": "service_provider"})).await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["role"], "service_provider");

    let (_, log) = t.get(&format!("{base}/activities"), Some(&admin)).await;
    let actions: Vec<&str> = log.as_array().expect("log").iter().filter_map(|a| a["action"].as_str()).collect();
    assert_eq!(actions, vec!["created", "suspended", "reactivated", "updated"]);
    assert_eq!(log[1]["details"]["reason"], "unpaid dues");
    assert_eq!(log[1]["actor"], "boss");

    let (status, _) = t.delete(&base, &admin).await;
    assert_eq!(status, 204);
    let (status, _) = t.get(&base, Some(&admin)).await;
    assert_eq!(status, 404, "soft deleted members are gone from the API");
    // The email is free again for a new membership.
    member(&t, "s", "kim@example.org", json!({})).await;
    t.stop().await;
}

#[actix_web::test]
async fn statistics_and_bulk_operations() {
    let t = TestApp::spawn().await;
    t.makerspace("b").await;
    let root = t.super_admin();
    let (_, plans) = t.get("/api/v1/makerspaces/b/members/plans", Some(&root)).await;
    let pro = plans.as_array().expect("plans").iter().find(|p| p["name"] == "Pro Maker").expect("pro")["id"].clone();
    let mut ids_ = Vec::new();
    for i in 0..4 {
        ids_.push(
            member(&t, "b", &format!("m{i}@example.org"), json!({})).await["id"].as_str().expect("id").to_string(),
        );
    }
    let path = "/api/v1/makerspaces/b/members/bulk-operations";
    let (status, _) = t.post(path, &root, json!({"operation": "suspend", "member_ids": ids_[..2]})).await;
    assert_eq!(status, 422, "suspend needs a reason; nothing done");
    let (status, _) =
        t.post(path, &root, json!({"operation": "change_plan", "member_ids": ids_, "plan_id": "nope"})).await;
    assert_eq!(status, 422);
    let (status, result) = t
        .post(
            path,
            &root,
            json!({"operation": "suspend", "member_ids": [ids_[0], ids_[1], "ghost"], "reason": "bulk test"}),
        )
        .await;
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["succeeded"].as_array().map(Vec::len), Some(2));
    assert_eq!(result["failed"][0]["member_id"], "ghost");
    let (_, result) =
        t.post(path, &root, json!({"operation": "change_plan", "member_ids": ids_, "plan_id": pro})).await;
    assert_eq!(result["succeeded"].as_array().map(Vec::len), Some(4));

    let (status, stats) = t.get("/api/v1/makerspaces/b/members/analytics/statistics", Some(&root)).await;
    assert_eq!(status, 200, "{stats}");
    assert_eq!(stats["total"], 4);
    assert_eq!(stats["by_status"]["suspended"], 2);
    assert_eq!(stats["by_status"]["active"], 2);
    assert_eq!(stats["by_plan"][0]["plan_name"], "Pro Maker");
    assert_eq!(stats["by_plan"][0]["members"], 4);
    assert_eq!(stats["joined_last_30_days"], 4);
    t.stop().await;
}

#[actix_web::test]
async fn cards_are_hashed_unique_and_stop_working_with_a_suspension() {
    let t = TestApp::spawn().await;
    t.makerspace("c").await;
    t.makerspace("d").await;
    let root = t.super_admin();
    let m = member(&t, "c", "card@example.org", json!({})).await["id"].as_str().expect("id").to_string();
    let other = member(&t, "c", "other@example.org", json!({})).await["id"].as_str().expect("id").to_string();
    let cards = format!("/api/v1/makerspaces/c/members/{m}/cards");
    let (status, card) = t.post(&cards, &root, json!({"uid": "04:a2:1b:c3:5d", "label": "blue fob"})).await;
    assert_eq!(status, 201, "{card}");
    assert_eq!(card["uid_hint"], "…C35D");
    assert!(!card.to_string().contains("04A21BC35D"), "the UID is never returned");
    let (status, _) = t.post(&cards, &root, json!({"uid": "04A21BC3D5"})).await;
    assert_eq!(status, 201, "a second card for the same member");
    // The same card (written differently) for anyone else in the space: 409.
    let (status, dup) =
        t.post(&format!("/api/v1/makerspaces/c/members/{other}/cards"), &root, json!({"uid": "04-A2-1B-C3-5D"})).await;
    assert_eq!((status, dup["error_type"].as_str()), (409, Some("card_already_enrolled")));
    // In another makerspace the same card may be enrolled again.
    let d = member(&t, "d", "card@example.org", json!({})).await["id"].as_str().expect("id").to_string();
    let (status, _) =
        t.post(&format!("/api/v1/makerspaces/d/members/{d}/cards"), &root, json!({"uid": "04A21BC35D"})).await;
    assert_eq!(status, 201);
    let (status, _) = t.post(&cards, &root, json!({"uid": "x"})).await;
    assert_eq!(status, 422);

    // The UID is stored only as a keyed hash.
    let stored = t.app().state().store.list_cards(&m).await.expect("cards");
    assert_eq!(stored.len(), 2);
    assert!(stored.iter().all(|c| c.uid_hash.len() == 64 && !c.uid_hash.to_uppercase().contains("04A21B")));

    let lookup = |uid: &'static str| {
        let (t, root) = (&t, &root);
        async move { t.post("/api/v1/makerspaces/c/cards/lookup", root, json!({"uid": uid})).await.1 }
    };
    let found = lookup("04a21bc35d").await;
    assert_eq!((found["valid"].as_bool(), found["member_id"].as_str()), (Some(true), Some(m.as_str())));
    let (status, _) =
        t.post(&format!("/api/v1/makerspaces/c/members/{m}/suspend"), &root, json!({"reason": "lost key"})).await;
    assert_eq!(status, 200);
    let found = lookup("04a21bc35d").await;
    assert_eq!((found["valid"].as_bool(), found["reason"].as_str()), (Some(false), Some("member_suspended")));
    assert_eq!(lookup("DEADBEEF").await["reason"], "unknown_card");

    let (_, list) = t.get(&cards, Some(&root)).await;
    let first = list[0]["id"].as_str().expect("card id").to_string();
    let (status, _) = t.send(Method::DELETE, &format!("{cards}/{first}"), Some(&root), None).await;
    assert_eq!(status, 204);
    let (_, list) = t.get(&cards, Some(&root)).await;
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    t.stop().await;
}

#[actix_web::test]
async fn csv_export_and_import_report_every_rejected_row() {
    let t = crate::common::TestApp::spawn_with(crate::common::TestOptions {
        csv_max_bytes: Some(4096),
        ..Default::default()
    })
    .await;
    t.makerspace("x").await;
    let root = t.super_admin();
    member(&t, "x", "first@example.org", json!({"first_name": "First", "last_name": "One"})).await;
    let csv = "email,first_name,last_name,role,plan,start_date\n\
               new1@example.org,New,One,member,Student,2026-01-05\n\
               bad-email,Bad,Row,member,,\n\
               new2@example.org,New,Two,wizard,,\n\
               FIRST@example.org,Again,Dup,member,,\n\
               new3@example.org,New,Three,makerspace_admin,Premium,\n\
               new1@example.org,Twice,InFile,member,,\n\
               new4@example.org,New,Four,member,No Such Plan,\n\
               new5@example.org,New,Five,member,,2026-13-40\n";
    let import = |body: String, content_type: &'static str| {
        let (t, root) = (&t, &root);
        async move {
            let res = t
                .http
                .post(t.url("/api/v1/makerspaces/x/members/import"))
                .bearer_auth(root)
                .header("content-type", content_type)
                .body(body)
                .send()
                .await
                .expect("send");
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.expect("json"))
        }
    };
    let (status, result) = import(csv.to_string(), "text/csv").await;
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["created"], 2);
    let rejected: Vec<(i64, String)> = result["rejected"]
        .as_array()
        .expect("rejected")
        .iter()
        .map(|r| (r["line"].as_i64().unwrap_or(0), r["reason"].as_str().unwrap_or("").to_string()))
        .collect();
    assert_eq!(rejected.iter().map(|r| r.0).collect::<Vec<_>>(), vec![3, 4, 5, 7, 8, 9], "{rejected:?}");
    assert!(
        rejected[1].1.contains("wizard") && rejected[2].1.contains("already") && rejected[3].1.contains("earlier"),
        "{rejected:?}"
    );

    let (status, _) = import(csv.to_string(), "application/json").await;
    assert_eq!(status, 415);
    let (status, body) =
        import(format!("email,first_name,last_name\n{}", "a@example.org,A,B\n".repeat(400)), "text/csv").await;
    assert_eq!((status, body["error_type"].as_str()), (413, Some("payload_too_large")));
    let (status, _) = import("name,age\nx,1\n".into(), "text/csv").await;
    assert_eq!(status, 422);

    let (_, page) = t.get("/api/v1/makerspaces/x/members", Some(&root)).await;
    assert_eq!(page["total"], 3, "only the good rows were stored");
    let res =
        t.http.get(t.url("/api/v1/makerspaces/x/members/export")).bearer_auth(&root).send().await.expect("export");
    assert!(res.headers()["content-type"].to_str().unwrap_or("").starts_with("text/csv"));
    let text = res.text().await.expect("csv");
    let mut lines = text.lines();
    assert!(lines.next().unwrap_or("").starts_with("id,email,first_name,last_name"));
    assert_eq!(lines.clone().count(), 3);
    assert!(text.contains("new3@example.org") && text.contains("Premium") && text.contains("makerspace_admin"));
    t.stop().await;
}

/// A name or note that a spreadsheet would run as a formula is exported as text (a leading
/// `'`), and the exported file imports back as what was exported.
#[actix_web::test]
async fn csv_export_neutralizes_formulas_and_imports_back() {
    let t = crate::common::TestApp::spawn().await;
    t.makerspace("x").await;
    t.makerspace("y").await;
    let root = t.super_admin();
    member(
        &t,
        "x",
        "formula@example.org",
        json!({"first_name": "=HYPERLINK(\"http://evil\")", "last_name": "@SUM(A1)", "notes": "+1 555 0100"}),
    )
    .await;
    let export = |space: &'static str| {
        let (t, root) = (&t, &root);
        async move {
            let url = t.url(&format!("/api/v1/makerspaces/{space}/members/export"));
            let res = t.http.get(url).bearer_auth(root).send().await.expect("export");
            res.text().await.expect("csv")
        }
    };
    let text = export("x").await;
    assert!(text.contains("\"'=HYPERLINK(\"\"http://evil\"\")\""), "{text}");
    assert!(text.contains(",'@SUM(A1),") && text.contains(",'+1 555 0100,"), "{text}");

    let res = t
        .http
        .post(t.url("/api/v1/makerspaces/y/members/import"))
        .bearer_auth(&root)
        .header("content-type", "text/csv")
        .body(reimportable(&text))
        .send()
        .await
        .expect("import");
    let status = res.status().as_u16();
    let body: Value = res.json().await.expect("json");
    assert_eq!(status, 200, "{body}");
    let (_, page) = t.get("/api/v1/makerspaces/y/members", Some(&root)).await;
    let imported = &page["members"][0];
    assert_eq!(imported["first_name"], "=HYPERLINK(\"http://evil\")", "{page}");
    assert_eq!(imported["last_name"], "@SUM(A1)");
    assert_eq!(imported["notes"], "+1 555 0100");
    t.stop().await;
}

/// The export's email, name and notes columns, their cells as exported, as an import file.
fn reimportable(export: &str) -> String {
    let mut reader = csv::Reader::from_reader(export.as_bytes());
    let headers = reader.headers().expect("a header row").clone();
    let columns = ["email", "first_name", "last_name", "notes"];
    let at: Vec<usize> =
        columns.iter().map(|c| headers.iter().position(|h| h == *c).expect("an exported column")).collect();
    let mut out = csv::Writer::from_writer(Vec::new());
    out.write_record(columns).expect("header");
    for record in reader.records() {
        let record = record.expect("an exported row");
        out.write_record(at.iter().map(|&i| &record[i])).expect("row");
    }
    String::from_utf8(out.into_inner().expect("csv")).expect("utf-8")
}
