//! Billing, first slice: prices, charges made from sessions (once per session, plan minutes
//! first), the credit wallet under concurrency, and prepaid mode at the kiosk.

use std::time::Duration;

use futures_util::future::join_all;
use makrcave::domain::access::Role;
use serde_json::{json, Value};

use crate::common::{eventually, TestApp, TestOptions};

pub(crate) const S: &str = "bill";

/// A POST with an `Idempotency-Key`: status and body.
pub(crate) async fn keyed(t: &TestApp, path: &str, token: &str, key: impl AsRef<str>, body: Value) -> (u16, Value) {
    let res =
        t.http.post(t.url(path)).bearer_auth(token).header("Idempotency-Key", key.as_ref()).json(&body).send().await;
    let res = res.expect("keyed request");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

pub(crate) async fn add_member(t: &TestApp, user: &str, card: &str, plan: Option<&str>) -> String {
    let root = t.super_admin();
    let mut body =
        json!({"email": format!("{user}@example.org"), "first_name": user, "last_name": "M", "user_id": user});
    if let Some(plan) = plan {
        body["plan_id"] = json!(plan);
    }
    let (status, m) = t.post(&format!("/api/v1/makerspaces/{S}/members"), &root, body).await;
    assert_eq!(status, 201, "{m}");
    let id = m["id"].as_str().expect("id").to_string();
    let (status, c) = t.post(&format!("/api/v1/makerspaces/{S}/members/{id}/cards"), &root, json!({"uid": card})).await;
    assert_eq!(status, 201, "{c}");
    id
}

/// The space, an online machine priced per `price`, and a kiosk's device token.
async fn floor(t: &TestApp, price: Value) -> String {
    t.makerspace(S).await;
    t.machine(S, "cnc", json!({"type": "cnc_machine"})).await;
    let p = t.publisher().await;
    p.publish(&format!("makrcave/{S}/cnc/status"), "online").await;
    t.wait_state(S, "cnc", "online", |s| s["state"] == "idle").await;
    let admin = t.token("boss", Role::MakerspaceAdmin, &[S]);
    let settings = json!({"currency": "EUR", "tax_rates": [{"id": "vat", "name": "VAT", "percent": 20}],
        "prepaid": false, "prepaid_minimum_minor": 0, "job_charge_policy": "actual"});
    let (status, body) = t.put(&format!("/api/v1/makerspaces/{S}/billing/settings"), &admin, settings).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = t.put(&format!("/api/v1/makerspaces/{S}/equipment/cnc/price"), &admin, price).await;
    assert_eq!(status, 200, "{body}");
    let (status, kiosk) = t.post(&format!("/api/v1/makerspaces/{S}/kiosks"), &admin, json!({"name": "desk"})).await;
    assert_eq!(status, 201, "{kiosk}");
    kiosk["token"].as_str().expect("device token").to_string()
}

async fn kiosk(t: &TestApp, token: &str, action: &str, card: &str) -> Value {
    let body = json!({"equipment_id": "cnc", "card_uid": card});
    let (status, answer) =
        t.send(reqwest::Method::POST, &format!("/api/v1/kiosk/{action}"), Some(token), Some(body)).await;
    assert_eq!(status, 200, "{answer}");
    answer
}

async fn charges_of(t: &TestApp, member: &str) -> Vec<Value> {
    let (status, page) =
        t.get(&format!("/api/v1/makerspaces/{S}/billing/charges?member_id={member}"), Some(&t.super_admin())).await;
    assert_eq!(status, 200, "{page}");
    page["charges"].as_array().expect("charges").clone()
}

/// A session's charge shows a moment after the session is stored (the sweep makes it).
async fn wait_charges(t: &TestApp, member: &str, n: usize) -> Vec<Value> {
    eventually(Duration::from_secs(10), "the session's charge", || async {
        let charges = charges_of(t, member).await;
        (charges.len() >= n).then_some(charges)
    })
    .await
}

async fn balance(t: &TestApp, member: &str) -> i64 {
    let (status, wallet) =
        t.get(&format!("/api/v1/makerspaces/{S}/members/{member}/wallet?page_size=200"), Some(&t.super_admin())).await;
    assert_eq!(status, 200, "{wallet}");
    let sum: i64 =
        wallet["entries"].as_array().expect("entries").iter().map(|e| e["amount_minor"].as_i64().unwrap()).sum();
    assert!(wallet["total"].as_i64().unwrap() <= 200, "one page holds every row: {wallet}");
    assert_eq!(sum, wallet["balance_minor"].as_i64().unwrap(), "the balance is the sum of the rows: {wallet}");
    sum
}

#[actix_web::test]
async fn a_session_becomes_one_charge_with_plan_minutes_first() {
    let t = TestApp::spawn_with(TestOptions { heartbeat_timeout_s: Some(3600), ..Default::default() }).await;
    let price = json!({"rate_per_hour": 12.5, "billing_unit": "started_15_minutes", "minimum_minor": 100,
        "flat_fee_minor": 0, "tax_rate_id": "vat"});
    let device = floor(&t, price).await;
    let root = t.super_admin();
    let (status, plan) = t
        .post(
            &format!("/api/v1/makerspaces/{S}/members/plans"),
            &root,
            json!({"name": "Maker", "price": 20, "billing_period": "monthly",
                   "included_minutes": [{"equipment_type": "cnc_machine", "minutes": 20}]}),
        )
        .await;
    assert_eq!(status, 201, "{plan}");
    assert_eq!((plan["fee_minor"].as_i64(), plan["included_minutes"][0]["minutes"].as_i64()), (Some(2000), Some(20)));
    let ada = add_member(&t, "ada", "04:AD:A0:01", plan["id"].as_str()).await;

    // First session: a few seconds, billed as a started quarter, all of it from the plan.
    assert_eq!(kiosk(&t, &device, "unlock", "04:AD:A0:01").await["granted"], true);
    assert_eq!(kiosk(&t, &device, "lock", "04:AD:A0:01").await["locked"], true);
    let first = wait_charges(&t, &ada, 1).await;
    let c = &first[0];
    assert_eq!(
        (c["kind"].as_str(), c["included_minutes"].as_i64(), c["net_minor"].as_i64()),
        (Some("session"), Some(15), Some(0)),
        "{c}"
    );
    assert_eq!(c["detail"]["billing_unit"], "started_15_minutes", "{c}");
    assert!(c["rounding_rule"].as_str().unwrap().contains("per started 15 minutes"), "{c}");

    // Second session: 5 plan minutes left, then money: 10 minutes at 12.50/h = 2.0833 -> 208
    // cents, tax 20% rounded once: 42.
    assert_eq!(kiosk(&t, &device, "unlock", "04:AD:A0:01").await["granted"], true);
    assert_eq!(kiosk(&t, &device, "lock", "04:AD:A0:01").await["locked"], true);
    let both = wait_charges(&t, &ada, 2).await;
    let c = both.iter().find(|c| c["id"] != first[0]["id"]).expect("the second charge");
    assert_eq!((c["included_minutes"].as_i64(), c["net_minor"].as_i64()), (Some(5), Some(208)), "{c}");
    assert_eq!(
        (c["tax_minor"].as_i64(), c["total_minor"].as_i64(), c["tax_percent"].as_str()),
        (Some(42), Some(250), Some("20"))
    );

    // The sweep, a retry and a restart find the session charged: still two charges.
    let svc = t.app().state().services.clone();
    let session_id = c["source"].as_str().unwrap().trim_start_matches("session:").to_string();
    let (started, ended): (chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>) =
        (chrono::Utc::now() - chrono::Duration::minutes(10), chrono::Utc::now());
    let again = makrcave::store::billing_ledger::UnchargedSession {
        id: session_id,
        makerspace_id: S.into(),
        equipment_id: "cnc".into(),
        user_id: "ada".into(),
        member_id: Some(ada.clone()),
        started_at: started,
        ended_at: ended,
        busy_minutes: Some(0.0),
    };
    let retries = join_all((0..10).map(|_| makrcave::services::billing::charge_session(&svc, &again))).await;
    assert!(retries.iter().all(|r| matches!(r, Ok(false))), "{retries:?}");
    let mut t = t;
    t.restart().await;
    let svc = t.app().state().services.clone();
    assert_eq!(makrcave::services::billing::charge_ended_sessions(&svc).await.unwrap(), 0);
    assert_eq!(charges_of(&t, &ada).await.len(), 2);
    t.stop().await;
}

#[actix_web::test]
async fn concurrent_top_ups_and_retries_count_exactly_once() {
    let t = TestApp::spawn().await;
    t.makerspace(S).await;
    let ada = add_member(&t, "ada", "04:AD:A0:02", None).await;
    let admin = t.token("boss", Role::MakerspaceAdmin, &[S]);
    let path = format!("/api/v1/makerspaces/{S}/members/{ada}/wallet/top-ups");

    // 50 distinct keys: 50 top-ups.
    let answers =
        join_all((0..50).map(|i| keyed(&t, &path, &admin, format!("top-{i}"), json!({"amount_minor": 100 + i})))).await;
    assert!(answers.iter().all(|(s, _)| *s == 201), "{answers:?}");
    let expected: i64 = (0..50).map(|i| 100 + i).sum();
    assert_eq!(balance(&t, &ada).await, expected);

    // 50 retries of one key: one top-up, every answer the same row.
    let answers = join_all((0..50).map(|_| keyed(&t, &path, &admin, "same-key", json!({"amount_minor": 500})))).await;
    assert!(answers.iter().all(|(s, b)| *s == 201 && b["id"] == answers[0].1["id"]), "{answers:?}");
    assert_eq!(balance(&t, &ada).await, expected + 500);

    // The same key with another body is refused; without a key, nothing is written.
    let (status, body) = keyed(&t, &path, &admin, "same-key", json!({"amount_minor": 501})).await;
    assert_eq!((status, body["error_type"].as_str()), (409, Some("idempotency_key_reused")), "{body}");
    let (status, body) = t.post(&path, &admin, json!({"amount_minor": 1})).await;
    assert_eq!((status, body["error_type"].as_str()), (400, Some("idempotency_key_required")), "{body}");
    // An adjustment says why, and may not take the balance below zero.
    let adjust = format!("/api/v1/makerspaces/{S}/members/{ada}/wallet/adjustments");
    let (status, body) =
        keyed(&t, &adjust, &admin, "adj-1", json!({"amount_minor": -(expected + 501), "reason": "typo"})).await;
    assert_eq!((status, body["error_type"].as_str()), (409, Some("insufficient_credit")), "{body}");
    let (status, body) =
        keyed(&t, &adjust, &admin, "adj-2", json!({"amount_minor": -500, "reason": "double top-up"})).await;
    assert_eq!((status, body["kind"].as_str()), (201, Some("adjustment")), "{body}");
    assert_eq!(balance(&t, &ada).await, expected);
    t.stop().await;
}

#[actix_web::test]
async fn concurrent_wallet_payments_never_overdraw() {
    let t = TestApp::spawn().await;
    t.makerspace(S).await;
    let ada = add_member(&t, "ada", "04:AD:A0:03", None).await;
    let admin = t.token("boss", Role::MakerspaceAdmin, &[S]);
    let (status, _) = keyed(
        &t,
        &format!("/api/v1/makerspaces/{S}/members/{ada}/wallet/top-ups"),
        &admin,
        "funds",
        json!({"amount_minor": 1000}),
    )
    .await;
    assert_eq!(status, 201);
    // 50 charges of 100 each: the wallet pays 10 of them.
    let mut charges = Vec::new();
    for i in 0..50 {
        let body = json!({"member_id": ada, "kind": "manual", "description": format!("Consumable {i}"),
            "amount_minor": 100, "reason": "sold at the desk"});
        let (status, charge) =
            keyed(&t, &format!("/api/v1/makerspaces/{S}/billing/charges"), &admin, &format!("c-{i}"), body).await;
        assert_eq!(status, 201, "{charge}");
        charges.push(charge["id"].as_str().unwrap().to_string());
    }
    let member = t.token("ada", Role::Member, &[S]);
    let answers = join_all(charges.iter().map(|c| {
        let path = format!("/api/v1/makerspaces/{S}/billing/charges/{c}/pay-from-wallet");
        let (t, member) = (&t, &member);
        async move { keyed(t, &path, member, format!("pay-{c}"), json!(null)).await }
    }))
    .await;
    let paid = answers.iter().filter(|(s, _)| *s == 201).count();
    let short = answers.iter().filter(|(s, b)| *s == 409 && b["error_type"] == "insufficient_credit").count();
    assert_eq!((paid, short), (10, 40), "{answers:?}");
    assert_eq!(balance(&t, &ada).await, 0);
    // A paid charge is not paid twice, whatever the key.
    let paid_one = charges.iter().zip(&answers).find(|(_, (s, _))| *s == 201).unwrap().0;
    let (status, body) = keyed(
        &t,
        &format!("/api/v1/makerspaces/{S}/billing/charges/{paid_one}/pay-from-wallet"),
        &admin,
        "again",
        json!(null),
    )
    .await;
    assert_eq!((status, body["error_type"].as_str()), (409, Some("charge_not_payable")), "{body}");
    t.stop().await;
}

#[actix_web::test]
async fn a_member_sees_only_their_own_charges_and_wallet() {
    let t = TestApp::spawn().await;
    t.makerspace(S).await;
    let ada = add_member(&t, "ada", "04:AD:A0:04", None).await;
    let bob = add_member(&t, "bob", "04:B0:B0:04", None).await;
    let admin = t.token("boss", Role::MakerspaceAdmin, &[S]);
    for (who, key) in [(&ada, "a"), (&bob, "b")] {
        let body = json!({"member_id": who, "kind": "manual", "description": "Key card", "amount_minor": 500, "reason": "lost"});
        let (status, _) = keyed(&t, &format!("/api/v1/makerspaces/{S}/billing/charges"), &admin, key, body).await;
        assert_eq!(status, 201);
    }
    let as_ada = t.token("ada", Role::Member, &[S]);
    let (status, page) = t.get(&format!("/api/v1/makerspaces/{S}/billing/charges"), Some(&as_ada)).await;
    assert_eq!(status, 200);
    assert_eq!(page["total"], 1, "{page}");
    assert_eq!(page["charges"][0]["member_id"], json!(ada));
    let (_, page) = t.get(&format!("/api/v1/makerspaces/{S}/billing/charges?member_id={bob}"), Some(&as_ada)).await;
    assert_eq!(page["total"], 0, "{page}");
    let (status, _) = t.get(&format!("/api/v1/makerspaces/{S}/members/{ada}/wallet"), Some(&as_ada)).await;
    assert_eq!(status, 200);
    let (status, _) = t.get(&format!("/api/v1/makerspaces/{S}/members/{bob}/wallet"), Some(&as_ada)).await;
    assert_eq!(status, 404);
    let (_, page) = t.get(&format!("/api/v1/makerspaces/{S}/billing/charges?status=open"), Some(&admin)).await;
    assert_eq!(page["total"], 2, "{page}");
    t.stop().await;
}

#[actix_web::test]
async fn prepaid_mode_refuses_an_unlock_until_a_top_up() {
    let t = TestApp::spawn_with(TestOptions { heartbeat_timeout_s: Some(3600), ..Default::default() }).await;
    let device = floor(&t, json!({"rate_per_hour": 30})).await;
    let ada = add_member(&t, "ada", "04:AD:A0:05", None).await;
    let admin = t.token("boss", Role::MakerspaceAdmin, &[S]);
    let settings = json!({"currency": "EUR", "tax_rates": [{"id": "vat", "name": "VAT", "percent": 20}],
        "prepaid": true, "prepaid_minimum_minor": 500, "job_charge_policy": "actual"});
    let (status, body) = t.put(&format!("/api/v1/makerspaces/{S}/billing/settings"), &admin, settings).await;
    assert_eq!(status, 200, "{body}");
    let answer = kiosk(&t, &device, "unlock", "04:AD:A0:05").await;
    assert_eq!(
        (answer["granted"].as_bool(), answer["reason"].as_str()),
        (Some(false), Some("insufficient_credit")),
        "{answer}"
    );
    let (status, _) = keyed(
        &t,
        &format!("/api/v1/makerspaces/{S}/members/{ada}/wallet/top-ups"),
        &admin,
        "desk-cash",
        json!({"amount_minor": 500, "reason": "cash"}),
    )
    .await;
    assert_eq!(status, 201);
    let answer = kiosk(&t, &device, "unlock", "04:AD:A0:05").await;
    assert_eq!(answer["granted"], true, "{answer}");
    t.stop().await;
}

#[actix_web::test]
async fn settings_and_prices_refuse_bad_input_and_change_nothing() {
    let t = TestApp::spawn().await;
    t.makerspace(S).await;
    t.machine(S, "saw", json!({"type": "tool", "hourly_rate": 12.5})).await;
    let admin = t.token("boss", Role::MakerspaceAdmin, &[S]);
    // A machine priced before billing keeps its rate, exactly.
    let (status, price) = t.get(&format!("/api/v1/makerspaces/{S}/equipment/saw/price"), Some(&admin)).await;
    assert_eq!(
        (status, price["price"]["rate_per_hour"].as_f64(), price["default"].as_bool()),
        (200, Some(12.5), Some(false)),
        "{price}"
    );
    let bad = [
        json!({"currency": "euro", "tax_rates": [], "prepaid": false, "prepaid_minimum_minor": 0, "job_charge_policy": "actual"}),
        json!({"currency": "EUR", "tax_rates": [{"id": "v", "name": "V", "percent": 101}], "prepaid": false, "prepaid_minimum_minor": 0, "job_charge_policy": "actual"}),
        json!({"currency": "EUR", "tax_rates": [], "prepaid": false, "prepaid_minimum_minor": -1, "job_charge_policy": "actual"}),
    ];
    for body in bad {
        let (status, answer) = t.put(&format!("/api/v1/makerspaces/{S}/billing/settings"), &admin, body).await;
        assert_eq!(status, 422, "{answer}");
    }
    let (status, price) = t
        .put(
            &format!("/api/v1/makerspaces/{S}/equipment/saw/price"),
            &admin,
            json!({"rate_per_hour": 1, "tax_rate_id": "nope"}),
        )
        .await;
    assert_eq!(status, 422, "{price}");
    let (_, settings) = t.get(&format!("/api/v1/makerspaces/{S}/billing/settings"), Some(&admin)).await;
    assert_eq!(settings["currency"], "USD", "{settings}");
    t.stop().await;
}
