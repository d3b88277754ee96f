//! Low-stock alerts and purchase orders over HTTP, on whichever database the run uses: one
//! alert per crossing of the minimum (also under fifty concurrent deducts), pushed on the
//! WebSocket and mailed to the space's admins (a real SMTP server); orders made from alerts
//! and items, ordered, cancelled and received in parts, each receipt written to the stock log
//! once however often it is sent; and the MakrX Store's quick-reorder payload, sent to a Store
//! played by a real HTTP server started here.

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use makrcave::domain::access::Role;
use makrcave::domain::inventory::Quantity;
use serde_json::{json, Value};

use crate::common::{eventually, open_space_ws, ws_until, TestApp, TestOptions};
use crate::mailbox::{header, headers, SmtpServer};

const ITEMS: &str = "/api/v1/makerspaces/s/inventory";
const ALERTS: &str = "/api/v1/makerspaces/s/inventory/alerts";
const ORDERS: &str = "/api/v1/makerspaces/s/purchase-orders";

async fn item(t: &TestApp, admin: &str, body: Value) -> Value {
    let (status, item) = t.post(ITEMS, admin, body).await;
    assert_eq!(status, 201, "{item}");
    item
}

async fn deduct(t: &TestApp, admin: &str, id: &str, quantity: f64) -> Value {
    let (status, body) = t.post(&format!("{ITEMS}/{id}/deduct"), admin, json!({"quantity": quantity})).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// The alerts of a listing (`status=` as given), as (item_id, status, level_at_alert).
async fn alerts(t: &TestApp, token: &str, status: &str) -> Vec<(String, String, f64)> {
    let (code, page) = t.get(&format!("{ALERTS}?status={status}"), Some(token)).await;
    assert_eq!(code, 200, "{page}");
    page["alerts"]
        .as_array()
        .expect("alerts")
        .iter()
        .map(|a| {
            let text = |f: &str| a[f].as_str().expect("text").to_string();
            (text("item_id"), text("status"), a["level_at_alert"].as_f64().expect("level"))
        })
        .collect()
}

/// A member of the space in makrcave's database (so that mail reaches them).
async fn member(t: &TestApp, email: &str, role: &str) {
    let (status, body) = t
        .post(
            "/api/v1/makerspaces/s/members",
            &t.super_admin(),
            json!({"email": email, "first_name": "F", "last_name": "L", "role": role}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}

#[actix_web::test]
async fn a_crossing_raises_one_alert_pushed_listed_and_mailed_to_the_admins() {
    let smtp = SmtpServer::start().await;
    let t = TestApp::spawn_with(TestOptions { smtp_url: Some(smtp.url()), ..Default::default() }).await;
    t.makerspace("s").await;
    member(&t, "boss@example.org", "makerspace_admin").await;
    member(&t, "ada@example.org", "member").await;
    let admin = t.token("boss", Role::MakerspaceAdmin, &["s"]);
    let reader = t.token("ada", Role::Member, &["s"]);
    item(
        &t,
        &admin,
        json!({"id": "petg", "name": "PETG orange", "category": "filament", "unit": "g", "current_stock": 20,
               "min_stock_level": 10, "reorder_quantity": 50}),
    )
    .await;
    let mut ws = open_space_ws(&t, &reader, "s").await;

    // Still above the minimum: nothing.
    deduct(&t, &admin, "petg", 5.0).await;
    assert!(alerts(&t, &reader, "live").await.is_empty());
    // Down across it: one alert, pushed to the space's people.
    deduct(&t, &admin, "petg", 6.0).await;
    let pushed = ws_until(&mut ws, |m| m["type"] == "stock_alert").await;
    assert_eq!(
        (&pushed["makerspace_id"], &pushed["alert"]["item_id"], &pushed["alert"]["item_name"]),
        (&json!("s"), &json!("petg"), &json!("PETG orange")),
        "{pushed}"
    );
    assert_eq!((&pushed["alert"]["level_at_alert"], &pushed["alert"]["min_stock_level"]), (&json!(9.0), &json!(10.0)));
    // Further deducts while low raise nothing more.
    deduct(&t, &admin, "petg", 1.0).await;
    deduct(&t, &admin, "petg", 0.5).await;
    assert_eq!(alerts(&t, &reader, "live").await, vec![("petg".into(), "open".into(), 9.0)]);

    // The space's active admins get a mail; members do not.
    let mail = eventually(Duration::from_secs(10), "the low-stock mail", || {
        let received = smtp.received();
        async move { received.into_iter().find(|(_, m)| header(&headers(m), "subject").starts_with("Low stock")) }
    })
    .await;
    assert_eq!(mail.0["rcpt_tos"], json!(["boss@example.org"]));
    assert_eq!(header(&headers(&mail.1), "subject"), "Low stock at s: PETG orange");
    assert!(mail.1.contains("down to 9 g") && mail.1.contains("asks for 50 g"), "{}", mail.1);

    // Stock back above the minimum closes it; a new crossing raises a new one.
    let (status, _) = t.post(&format!("{ITEMS}/petg/receive"), &admin, json!({"quantity": 10})).await;
    assert_eq!(status, 200);
    assert!(alerts(&t, &reader, "live").await.is_empty());
    assert_eq!(alerts(&t, &reader, "closed").await.len(), 1);
    deduct(&t, &admin, "petg", 8.5).await;
    assert_eq!(alerts(&t, &reader, "open").await, vec![("petg".into(), "open".into(), 9.0)]);
    let second = ws_until(&mut ws, |m| m["type"] == "stock_alert").await;
    assert_ne!(second["alert"]["id"], pushed["alert"]["id"]);
    // Counts move alerts as well: one above the minimum closes, one below it raises.
    for (counted, live, closed) in [(30, 0, 2), (4, 1, 2)] {
        let (status, _) = t.post(&format!("{ITEMS}/petg/adjust"), &admin, json!({"counted": counted})).await;
        assert_eq!(status, 200);
        assert_eq!(
            (alerts(&t, &reader, "live").await.len(), alerts(&t, &reader, "closed").await.len()),
            (live, closed)
        );
    }
    let store = &t.app().state().store;
    assert_eq!(store.sum_of_usage("petg").await.expect("sum"), Quantity(4_000));
    t.stop().await;
}

#[actix_web::test]
async fn fifty_concurrent_deducts_across_the_minimum_raise_exactly_one_alert() {
    let t = TestApp::spawn().await;
    t.makerspace("s").await;
    let admin = t.token("boss", Role::MakerspaceAdmin, &["s"]);
    item(
        &t,
        &admin,
        json!({"id": "resin", "name": "Resin", "category": "resin", "unit": "ml", "current_stock": 100,
               "min_stock_level": 50}),
    )
    .await;
    let url = t.url(&format!("{ITEMS}/resin/deduct"));
    let calls: Vec<_> = (0..50)
        .map(|_| {
            let (client, url, admin) = (t.http.clone(), url.clone(), admin.clone());
            tokio::spawn(async move {
                let response = client.post(&url).bearer_auth(&admin).json(&json!({"quantity": 2})).send().await;
                response.expect("deduct").status().as_u16()
            })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.expect("task"), 200);
    }
    let (_, page) = t.get(&format!("{ALERTS}?status=open"), Some(&admin)).await;
    assert_eq!(page["total"], 1, "{page}");
    assert_eq!(page["alerts"][0]["level_at_alert"], 50.0, "raised by the deduct that reached the minimum");
    for status in ["ordered", "closed"] {
        let (_, page) = t.get(&format!("{ALERTS}?status={status}"), Some(&admin)).await;
        assert_eq!(page["total"], 0, "{status}: {page}");
    }
    t.stop().await;
}

/// Two Store items with alerts, and an item of another supplier.
async fn stocked(t: &TestApp, admin: &str) -> (String, String) {
    for (id, sku, cost) in [("pla", "FIL-PLA-1KG", 3), ("nozzle", "NOZ-04", 450)] {
        item(
            t,
            admin,
            json!({"id": id, "name": format!("{id} item"), "category": "consumable", "unit": if id == "pla" { "g" } else { "piece" },
                   "current_stock": 10, "min_stock_level": 5, "reorder_quantity": if id == "pla" { 2000 } else { 4 },
                   "supplier": {"kind": "makrx_store", "sku": sku}, "unit_cost_minor": cost}),
        )
        .await;
    }
    item(
        t,
        admin,
        json!({"id": "birch", "name": "Birch", "category": "sheet", "unit": "sheet", "current_stock": 1,
               "supplier": {"kind": "external", "name": "Timber & Co"}}),
    )
    .await;
    deduct(t, admin, "pla", 6.0).await;
    deduct(t, admin, "nozzle", 6.0).await;
    let (_, page) = t.get(&format!("{ALERTS}?status=open"), Some(admin)).await;
    let id_of = |item: &str| {
        page["alerts"].as_array().expect("alerts").iter().find(|a| a["item_id"] == item).expect("its alert")["id"]
            .as_str()
            .expect("id")
            .to_string()
    };
    (id_of("pla"), id_of("nozzle"))
}

#[actix_web::test]
async fn an_order_from_alerts_is_received_in_parts_and_each_receipt_counts_once() {
    let t = TestApp::spawn().await;
    t.makerspace("s").await;
    let admin = t.token("boss", Role::MakerspaceAdmin, &["s"]);
    let (pla_alert, nozzle_alert) = stocked(&t, &admin).await;

    // Another supplier's item does not go on a Store order; items must be the space's.
    let (status, body) =
        t.post(ORDERS, &admin, json!({"alert_ids": [pla_alert], "lines": [{"item_id": "birch", "quantity": 2}]})).await;
    assert_eq!((status, body["error_type"].as_str()), (422, Some("validation_error")), "{body}");
    let (status, body) = t.post(ORDERS, &admin, json!({"lines": [{"item_id": "nope"}]})).await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = t.post(ORDERS, &admin, json!({"lines": [{"item_id": "birch"}]})).await;
    assert_eq!(status, 422, "birch has no reorder quantity: {body}");
    let (status, body) = t.post(ORDERS, &admin, json!({})).await;
    assert_eq!(status, 422, "{body}");

    // From the PLA alert, with the nozzle's line given: both lines, the Store's payload.
    let create = json!({"alert_ids": [pla_alert], "lines": [{"item_id": "nozzle", "quantity": 10, "unit_cost_minor": 400}],
                        "idempotency_key": "po-1"});
    let (status, order) = t.post(ORDERS, &admin, create.clone()).await;
    assert_eq!(status, 201, "{order}");
    let id = order["id"].as_str().expect("id").to_string();
    assert_eq!((&order["status"], &order["supplier"]), (&json!("draft"), &json!({"kind": "makrx_store"})));
    let lines = order["lines"].as_array().expect("lines");
    assert_eq!(
        lines
            .iter()
            .map(|l| (l["item_id"].clone(), l["quantity_ordered"].clone(), l["amount_minor"].clone()))
            .collect::<Vec<_>>(),
        vec![(json!("pla"), json!(2000.0), json!(6000)), (json!("nozzle"), json!(10.0), json!(4000))]
    );
    assert_eq!(order["total"], json!({"amount_minor": 10000, "currency": "USD"}));
    assert_eq!(
        order["store_payload"],
        json!({"makerspace_id": "s", "user_id": "boss", "bom_items": [
            {"sku": "FIL-PLA-1KG", "quantity": 2000.0, "unit": "g", "name": "pla item", "unit_cost_minor": 3, "currency": "USD"},
            {"sku": "NOZ-04", "quantity": 10.0, "unit": "piece", "name": "nozzle item", "unit_cost_minor": 400, "currency": "USD"}]})
    );
    // Both alerts are the order's now (the nozzle's through its line); the same key again is
    // the same order, and an alert cannot be ordered twice.
    let mut taken: Vec<String> = serde_json::from_value(order["alert_ids"].clone()).expect("alert ids");
    taken.sort();
    let mut expected = vec![pla_alert.clone(), nozzle_alert.clone()];
    expected.sort();
    assert_eq!(taken, expected);
    let (status, again) = t.post(ORDERS, &admin, create).await;
    assert_eq!((status, &again["id"], &again["replayed"]), (200, &json!(id), &json!(true)), "{again}");
    let (status, body) = t.post(ORDERS, &admin, json!({"alert_ids": [pla_alert]})).await;
    assert_eq!((status, body["error_type"].as_str()), (409, Some("alert_not_open")), "{body}");
    let ordered_alerts = alerts(&t, &admin, "ordered").await;
    assert_eq!(ordered_alerts.len(), 2, "{ordered_alerts:?}");

    // A draft is not received; it is ordered once.
    let at = |action: &str| format!("{ORDERS}/{id}/{action}");
    let (status, body) = t.post(&at("receive"), &admin, json!({"idempotency_key": "d0"})).await;
    assert_eq!(
        (status, body["error_type"].as_str(), body["status"].as_str()),
        (409, Some("invalid_status"), Some("draft"))
    );
    let (status, ordered) = t.post(&at("order"), &admin, json!(null)).await;
    assert_eq!((status, &ordered["status"]), (200, &json!("ordered")), "{ordered}");
    assert_eq!(ordered["store_sync"], json!({"sent_at": null, "error": null}), "no Store configured: nothing sent");
    let (status, _) = t.post(&at("order"), &admin, json!(null)).await;
    assert_eq!(status, 409);

    // A first delivery: part of the PLA.
    let pla_line = lines[0]["id"].as_str().expect("line id").to_string();
    let first = json!({"idempotency_key": "delivery-1", "lines": [{"line_id": pla_line, "quantity": 1500}]});
    let (status, partial) = t.post(&at("receive"), &admin, first.clone()).await;
    assert_eq!(
        (status, &partial["status"], &partial["replayed"]),
        (200, &json!("partially_received"), &json!(false)),
        "{partial}"
    );
    assert_eq!(
        (&partial["lines"][0]["quantity_received"], &partial["lines"][0]["quantity_outstanding"]),
        (&json!(1500.0), &json!(500.0))
    );
    // Sent again: counted once.
    let (status, retried) = t.post(&at("receive"), &admin, first).await;
    assert_eq!(
        (status, &retried["replayed"], &retried["lines"][0]["quantity_received"]),
        (200, &json!(true), &json!(1500.0))
    );
    let store = &t.app().state().store;
    assert_eq!(store.sum_of_usage("pla").await.expect("sum"), Quantity(1_504_000));
    // More than is outstanding is refused, and changes nothing.
    let (status, body) = t
        .post(
            &at("receive"),
            &admin,
            json!({"idempotency_key": "too-much", "lines": [{"line_id": pla_line, "quantity": 501}]}),
        )
        .await;
    assert_eq!(
        (status, body["error_type"].as_str(), &body["outstanding"]),
        (409, Some("over_receipt"), &json!(500.0)),
        "{body}"
    );
    // A partially received order is not cancelled.
    let (status, body) = t.post(&at("cancel"), &admin, json!(null)).await;
    assert_eq!((status, body["error_type"].as_str()), (409, Some("invalid_status")));

    // The rest: everything outstanding.
    let (status, received) = t.post(&at("receive"), &admin, json!({"idempotency_key": "delivery-2"})).await;
    assert_eq!((status, &received["status"]), (200, &json!("received")), "{received}");
    assert!(received["received_at"].is_string());
    assert_eq!(store.sum_of_usage("pla").await.expect("sum"), Quantity(2_004_000));
    assert_eq!(store.sum_of_usage("nozzle").await.expect("sum"), Quantity(14_000));
    let statuses: Vec<&str> =
        received["history"].as_array().expect("history").iter().filter_map(|e| e["status"].as_str()).collect();
    assert_eq!(statuses, ["draft", "ordered", "partially_received", "received"]);
    // The rows say where they came from.
    let (_, log) = t.get(&format!("{ITEMS}/pla/usage"), Some(&admin)).await;
    let rows: Vec<(Value, Value, Value)> = log["usage"]
        .as_array()
        .expect("rows")
        .iter()
        .filter(|r| r["cause_kind"] == "purchase_order")
        .map(|r| (r["reason"].clone(), r["cause_id"].clone(), r["delta"].clone()))
        .collect();
    assert_eq!(rows, vec![(json!("received"), json!(id), json!(500.0)), (json!("received"), json!(id), json!(1500.0))]);
    // Its alerts are closed; a received order takes nothing more.
    assert!(alerts(&t, &admin, "live").await.is_empty());
    assert_eq!(alerts(&t, &admin, "closed").await.len(), 2);
    let (status, body) = t.post(&at("receive"), &admin, json!({"idempotency_key": "delivery-3"})).await;
    assert_eq!((status, body["error_type"].as_str()), (409, Some("invalid_status")));
    let (status, _) = t.post(&at("cancel"), &admin, json!(null)).await;
    assert_eq!(status, 409);

    // Members do not read orders; the list shows this one.
    let member = t.token("ada", Role::Member, &["s"]);
    let (status, _) = t.get(ORDERS, Some(&member)).await;
    assert_eq!(status, 403);
    let (_, list) = t.get(&format!("{ORDERS}?status=received"), Some(&admin)).await;
    assert_eq!((&list["total"], &list["purchase_orders"][0]["id"]), (&json!(1), &json!(id)), "{list}");
    t.stop().await;
}

#[actix_web::test]
async fn cancelling_a_draft_or_an_ordered_order_opens_its_alerts_again() {
    let t = TestApp::spawn().await;
    t.makerspace("s").await;
    let admin = t.token("boss", Role::MakerspaceAdmin, &["s"]);
    let (pla_alert, _) = stocked(&t, &admin).await;
    for order_first in [false, true] {
        let (status, order) = t.post(ORDERS, &admin, json!({"alert_ids": [pla_alert]})).await;
        assert_eq!(status, 201, "{order}");
        let id = order["id"].as_str().expect("id");
        if order_first {
            let (status, _) = t.post(&format!("{ORDERS}/{id}/order"), &admin, json!(null)).await;
            assert_eq!(status, 200);
        }
        let (status, cancelled) = t.post(&format!("{ORDERS}/{id}/cancel"), &admin, json!(null)).await;
        assert_eq!((status, &cancelled["status"]), (200, &json!("cancelled")), "{cancelled}");
        assert!(cancelled["cancelled_at"].is_string());
        assert!(alerts(&t, &admin, "open").await.iter().any(|(item, _, _)| item == "pla"), "the alert is open again");
        let (status, body) = t.post(&format!("{ORDERS}/{id}/order"), &admin, json!(null)).await;
        assert_eq!((status, body["error_type"].as_str()), (409, Some("invalid_status")));
    }
    t.stop().await;
}

#[actix_web::test]
async fn concurrent_deliveries_of_one_order_take_in_what_was_ordered_once() {
    let t = TestApp::spawn().await;
    t.makerspace("s").await;
    let admin = t.token("boss", Role::MakerspaceAdmin, &["s"]);
    let (pla_alert, _) = stocked(&t, &admin).await;
    let (_, order) = t.post(ORDERS, &admin, json!({"alert_ids": [pla_alert]})).await;
    let id = order["id"].as_str().expect("id").to_string();
    let (status, _) = t.post(&format!("{ORDERS}/{id}/order"), &admin, json!(null)).await;
    assert_eq!(status, 200);
    // Ten clerks book the same delivery at once, each under a key of their own.
    let url = t.url(&format!("{ORDERS}/{id}/receive"));
    let calls: Vec<_> = (0..10)
        .map(|i| {
            let (client, url, admin) = (t.http.clone(), url.clone(), admin.clone());
            tokio::spawn(async move {
                let response = client
                    .post(&url)
                    .bearer_auth(&admin)
                    .json(&json!({"idempotency_key": format!("clerk-{i}")}))
                    .send();
                let response = response.await.expect("receive");
                (response.status().as_u16(), response.json::<Value>().await.expect("json"))
            })
        })
        .collect();
    let mut answers = Vec::new();
    for call in calls {
        answers.push(call.await.expect("task"));
    }
    let taken = answers.iter().filter(|(status, _)| *status == 200).count();
    let refused = answers
        .iter()
        .filter(|(status, body)| {
            *status == 409
                && ["purchase_order_busy", "invalid_status"].contains(&body["error_type"].as_str().unwrap_or(""))
        })
        .count();
    assert_eq!((taken, refused), (1, 9), "{answers:?}");
    let store = &t.app().state().store;
    assert_eq!(store.sum_of_usage("pla").await.expect("sum"), Quantity(2_004_000), "2000 g arrived once");
    let (_, received) = t.get(&format!("{ORDERS}/{id}"), Some(&admin)).await;
    assert_eq!(received["status"], "received", "{received}");
    t.stop().await;
}

/// The MakrX Store, played by an HTTP server on a free port: it keeps each quick-reorder it
/// gets (its Idempotency-Key header and body) and answers with the status it is told to.
struct FakeStore {
    url: String,
    received: Arc<Mutex<Vec<(String, Value)>>>,
    answer: Arc<AtomicU16>,
    server: actix_web::dev::ServerHandle,
}

impl FakeStore {
    async fn start() -> FakeStore {
        let received: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
        let answer = Arc::new(AtomicU16::new(201));
        let (kept, status) = (received.clone(), answer.clone());
        let server = HttpServer::new(move || {
            let (kept, status) = (kept.clone(), status.clone());
            App::new().route(
                "/api/v1/orders/quick-reorder",
                web::post().to(move |request: HttpRequest, body: web::Json<Value>| {
                    let (kept, status) = (kept.clone(), status.clone());
                    async move {
                        let key = request.headers().get("idempotency-key").and_then(|v| v.to_str().ok()).unwrap_or("");
                        kept.lock().expect("kept").push((key.to_string(), body.into_inner()));
                        let code =
                            actix_web::http::StatusCode::from_u16(status.load(Ordering::SeqCst)).expect("status");
                        HttpResponse::build(code).json(json!({"order_id": "store-order-1"}))
                    }
                }),
            )
        })
        .workers(1)
        .bind(("127.0.0.1", 0))
        .expect("bind the store");
        let addr = server.addrs()[0];
        let server = server.run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        FakeStore { url: format!("http://{addr}"), received, answer, server: handle }
    }

    fn received(&self) -> Vec<(String, Value)> {
        self.received.lock().expect("kept").clone()
    }
}

#[actix_web::test]
async fn ordering_sends_the_quick_reorder_to_a_configured_store_and_a_failed_send_is_kept() {
    let store = FakeStore::start().await;
    let t = TestApp::spawn_with(TestOptions { store_url: Some(store.url.clone()), ..Default::default() }).await;
    t.makerspace("s").await;
    let admin = t.token("boss", Role::MakerspaceAdmin, &["s"]);
    let (pla_alert, _) = stocked(&t, &admin).await;
    let (_, order) = t.post(ORDERS, &admin, json!({"alert_ids": [pla_alert]})).await;
    let id = order["id"].as_str().expect("id").to_string();

    // The Store is down: the order is ordered all the same, and says why it did not arrive.
    store.answer.store(503, Ordering::SeqCst);
    let (status, ordered) = t.post(&format!("{ORDERS}/{id}/order"), &admin, json!(null)).await;
    assert_eq!((status, &ordered["status"]), (200, &json!("ordered")), "{ordered}");
    assert_eq!(ordered["store_sync"]["sent_at"], Value::Null);
    assert_eq!(ordered["store_sync"]["error"], "the MakrX Store answered 503 Service Unavailable");
    // Ordering again sends again, under the same key; the Store takes it.
    store.answer.store(201, Ordering::SeqCst);
    let (status, sent) = t.post(&format!("{ORDERS}/{id}/order"), &admin, json!(null)).await;
    assert_eq!(status, 200, "{sent}");
    assert!(sent["store_sync"]["sent_at"].is_string(), "{sent}");
    assert_eq!(sent["store_sync"]["error"], Value::Null);
    let received = store.received();
    assert_eq!(received.len(), 2);
    assert!(received.iter().all(|(key, _)| *key == id), "{received:?}");
    assert_eq!(
        received[1].1,
        json!({"makerspace_id": "s", "user_id": "boss", "bom_items": [
            {"sku": "FIL-PLA-1KG", "quantity": 2000.0, "unit": "g", "name": "pla item", "unit_cost_minor": 3, "currency": "USD"}]})
    );
    // Once it is there, ordering again is a transition like any other.
    let (status, body) = t.post(&format!("{ORDERS}/{id}/order"), &admin, json!(null)).await;
    assert_eq!((status, body["error_type"].as_str()), (409, Some("invalid_status")));
    assert_eq!(store.received().len(), 2);
    // An order to another supplier is never sent.
    let (_, other) = t.post(ORDERS, &admin, json!({"lines": [{"item_id": "birch", "quantity": 3}]})).await;
    let (status, ordered) =
        t.post(&format!("{ORDERS}/{}/order", other["id"].as_str().expect("id")), &admin, json!(null)).await;
    assert_eq!(
        (status, &ordered["store_payload"], &ordered["store_sync"]),
        (200, &Value::Null, &Value::Null),
        "{ordered}"
    );
    assert_eq!(store.received().len(), 2);
    t.stop().await;
    store.server.stop(true).await;
}
