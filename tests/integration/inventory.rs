//! Inventory items and their stock log over HTTP, on whichever database the run uses: items
//! are listed, searched and edited by the space's admins and read by its members; stock
//! moves only through the log (deducts, receipts, counts), a retried key changes nothing,
//! and under concurrent deducts the level never goes below zero and is always the sum of
//! the log.

use makrcave::domain::access::Role;
use makrcave::domain::inventory::Quantity;
use serde_json::{json, Value};

use crate::common::TestApp;

const ITEMS: &str = "/api/v1/makerspaces/s/inventory";

async fn item(t: &TestApp, admin: &str, body: Value) -> Value {
    let (status, item) = t.post(ITEMS, admin, body).await;
    assert_eq!(status, 201, "{item}");
    item
}

/// The level stored for an item, and the sum of its log.
async fn level_and_log(t: &TestApp, id: &str) -> (Quantity, Quantity) {
    let store = &t.app().state().store;
    let item = store.get_item("s", id).await.expect("read").expect("the item");
    (item.current_stock, store.sum_of_usage(id).await.expect("sum"))
}

#[actix_web::test]
async fn items_are_kept_listed_and_read_by_the_space() {
    let t = TestApp::spawn().await;
    t.makerspace("s").await;
    t.makerspace("other").await;
    let admin = t.token("boss", Role::MakerspaceAdmin, &["s"]);
    let member = t.token("ada", Role::Member, &["s"]);

    let pla = item(
        &t,
        &admin,
        json!({"id": "pla-black", "name": "PLA black 1kg", "category": "filament", "unit": "g", "current_stock": 2500.5,
               "min_stock_level": 500, "reorder_quantity": 5000, "location": "Shelf A",
               "supplier": {"kind": "makrx_store", "sku": "FIL-PLA-BLK-1KG"}, "unit_cost_minor": 3,
               "filament": {"material": "PLA", "color": "#1a1a1a", "diameter_mm": 1.75, "density_g_cm3": 1.24},
               "attributes": {"brand": "Prusament"}}),
    )
    .await;
    assert_eq!(pla["current_stock"], 2500.5);
    assert_eq!(
        pla["filament"],
        json!({"material": "PLA", "color": "#1A1A1A", "diameter_mm": 1.75, "density_g_cm3": 1.24})
    );
    assert_eq!(pla["unit_cost"], json!({"amount_minor": 3, "currency": "USD"}));
    assert_eq!(pla["supplier"], json!({"kind": "makrx_store", "sku": "FIL-PLA-BLK-1KG"}));
    assert_eq!(pla["low_stock"], false);
    item(
        &t,
        &admin,
        json!({"id": "plywood", "name": "Birch plywood 4mm", "category": "sheet", "unit": "sheet", "current_stock": 3,
               "min_stock_level": 5, "supplier": {"kind": "external", "name": "Timber & Co", "url": "https://timber.example"}}),
    )
    .await;
    item(&t, &admin, json!({"id": "m3-screws", "name": "M3x8 screws", "category": "component", "unit": "piece"})).await;

    // The opening stock is the log's first row.
    assert_eq!(level_and_log(&t, "pla-black").await, (Quantity(2_500_500), Quantity(2_500_500)));

    // Members read what their space stocks; lists search, filter, sort and page.
    let (status, page) = t.get(&format!("{ITEMS}?search=ply"), Some(&member)).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!((page["total"].as_i64(), page["items"][0]["id"].as_str()), (Some(1), Some("plywood")));
    let (_, low) = t.get(&format!("{ITEMS}?low_stock=true"), Some(&member)).await;
    assert_eq!(
        low["items"].as_array().map(|i| i.iter().map(|i| i["id"].clone()).collect::<Vec<_>>()),
        Some(vec![json!("plywood"), json!("m3-screws")])
    );
    let (_, by_sku) = t.get(&format!("{ITEMS}?search=fil-pla&supplier_kind=makrx_store"), Some(&member)).await;
    assert_eq!(by_sku["items"][0]["id"], "pla-black", "{by_sku}");
    let (_, sorted) = t.get(&format!("{ITEMS}?sort=-current_stock&page_size=2&page=1"), Some(&member)).await;
    assert_eq!((sorted["items"][0]["id"].as_str(), sorted["pages"].as_i64()), (Some("pla-black"), Some(2)), "{sorted}");
    let (_, filament) = t.get(&format!("{ITEMS}?category=filament"), Some(&member)).await;
    assert_eq!(filament["total"], 1);

    // Only admins write; the stock is not an editable field; filament details need a filament.
    let (status, _) = t.put(&format!("{ITEMS}/plywood"), &member, json!({"location": "B"})).await;
    assert_eq!(status, 403);
    let (status, body) = t.put(&format!("{ITEMS}/plywood"), &admin, json!({"current_stock": 99})).await;
    assert!(status == 400 || status == 422, "{status} {body}");
    let (status, body) = t.put(&format!("{ITEMS}/plywood"), &admin, json!({"filament": {"material": "PLA"}})).await;
    assert_eq!((status, body["error_type"].as_str()), (422, Some("validation_error")), "{body}");
    let (status, updated) =
        t.put(&format!("{ITEMS}/plywood"), &admin, json!({"min_stock_level": 2, "location": "Rack 3"})).await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(
        (&updated["low_stock"], &updated["location"], &updated["current_stock"]),
        (&json!(false), &json!("Rack 3"), &json!(3.0))
    );

    // Another space's admin does not see the item; a duplicate id conflicts.
    let stranger = t.token("eve", Role::MakerspaceAdmin, &["other"]);
    let (status, _) = t.get("/api/v1/makerspaces/other/inventory/plywood", Some(&stranger)).await;
    assert_eq!(status, 404);
    let (status, body) =
        t.post(ITEMS, &admin, json!({"id": "plywood", "name": "x", "category": "sheet", "unit": "sheet"})).await;
    assert_eq!((status, body["error_type"].as_str()), (409, Some("duplicate_item")), "{body}");

    // A retired item leaves the listings.
    let (status, _) = t.delete(&format!("{ITEMS}/m3-screws"), &admin).await;
    assert_eq!(status, 204);
    let (status, _) = t.get(&format!("{ITEMS}/m3-screws"), Some(&member)).await;
    assert_eq!(status, 404);
    t.stop().await;
}

#[actix_web::test]
async fn stock_moves_only_through_its_log_and_a_retried_key_counts_once() {
    let t = TestApp::spawn().await;
    t.makerspace("s").await;
    t.makerspace("other").await;
    let admin = t.token("boss", Role::MakerspaceAdmin, &["s"]);
    item(&t, &admin, json!({"id": "pla", "name": "PLA", "category": "filament", "unit": "g", "current_stock": 1000}))
        .await;
    let deduct = format!("{ITEMS}/pla/deduct");

    let (status, first) = t
        .post(
            &deduct,
            &admin,
            json!({"quantity": 212.345, "reason": "used_by_job", "job_id": "job-7", "idempotency_key": "job-7"}),
        )
        .await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(
        (&first["success"], &first["new_stock"], &first["replayed"]),
        (&json!(true), &json!(787.655), &json!(false))
    );
    assert_eq!(
        (&first["usage"]["delta"], &first["usage"]["cause_kind"], &first["usage"]["cause_id"]),
        (&json!(-212.345), &json!("job"), &json!("job-7"))
    );
    // The same key again: the first answer, nothing changed.
    let (status, again) = t.post(&deduct, &admin, json!({"quantity": 212.345, "idempotency_key": "job-7"})).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(
        (&again["replayed"], &again["new_stock"], &again["usage"]["id"]),
        (&json!(true), &json!(787.655), &first["usage"]["id"])
    );
    assert_eq!(level_and_log(&t, "pla").await, (Quantity(787_655), Quantity(787_655)));

    // More than is there: 400 with the level, as the documents say; nothing changes.
    let (status, body) = t.post(&deduct, &admin, json!({"quantity": 800})).await;
    assert_eq!((status, body["error_type"].as_str()), (400, Some("insufficient_stock")), "{body}");
    assert_eq!((&body["current_stock"], &body["requested"]), (&json!(787.655), &json!(800.0)));
    // A quantity finer than a thousandth, or none, is refused.
    for bad in [json!({"quantity": 0.0001}), json!({"quantity": 0}), json!({"quantity": -5})] {
        let (status, body) = t.post(&deduct, &admin, bad.clone()).await;
        assert!(status == 400 || status == 422, "{bad}: {status} {body}");
        assert_ne!(body["error_type"], "insufficient_stock", "{body}");
    }
    // Another space's item is not found.
    let (status, _) =
        t.post("/api/v1/makerspaces/other/inventory/pla/deduct", &t.super_admin(), json!({"quantity": 1})).await;
    assert_eq!(status, 404);

    // A delivery and a count write their own rows.
    let (status, received) =
        t.post(&format!("{ITEMS}/pla/receive"), &admin, json!({"quantity": 1000, "idempotency_key": "po-1"})).await;
    assert_eq!((status, &received["new_stock"]), (200, &json!(1787.655)), "{received}");
    let (status, counted) =
        t.post(&format!("{ITEMS}/pla/adjust"), &admin, json!({"counted": 1750, "note": "weighed"})).await;
    assert_eq!(
        (status, &counted["usage"]["delta"], &counted["usage"]["reason"]),
        (200, &json!(-37.655), &json!("adjusted")),
        "{counted}"
    );
    assert_eq!(level_and_log(&t, "pla").await, (Quantity(1_750_000), Quantity(1_750_000)));

    // The log pages, newest first; members do not read who took what.
    let (status, log) = t.get(&format!("{ITEMS}/pla/usage?page_size=2"), Some(&admin)).await;
    assert_eq!(status, 200, "{log}");
    assert_eq!((log["total"].as_i64(), log["pages"].as_i64()), (Some(4), Some(2)));
    let reasons: Vec<&str> =
        log["usage"].as_array().expect("rows").iter().filter_map(|r| r["reason"].as_str()).collect();
    assert_eq!(reasons, ["adjusted", "received"]);
    let member = t.token("ada", Role::Member, &["s"]);
    let (status, _) = t.get(&format!("{ITEMS}/pla/usage"), Some(&member)).await;
    assert_eq!(status, 403);
    t.stop().await;
}

#[actix_web::test]
async fn fifty_concurrent_deducts_never_take_the_level_below_zero() {
    let t = TestApp::spawn().await;
    t.makerspace("s").await;
    let admin = t.token("boss", Role::MakerspaceAdmin, &["s"]);
    item(&t, &admin, json!({"id": "resin", "name": "Resin", "category": "resin", "unit": "ml", "current_stock": 100}))
        .await;
    let url = t.url(&format!("{ITEMS}/resin/deduct"));
    let client = reqwest::Client::new();
    let calls = (0..50).map(|i| {
        let (client, url, admin) = (client.clone(), url.clone(), admin.clone());
        // Calls 1, 6, 11, ... retry the key of the call before: a retry must not count twice.
        let key = format!("k-{}", if i % 5 == 1 { i - 1 } else { i });
        tokio::spawn(async move {
            let response = client
                .post(&url)
                .bearer_auth(&admin)
                .json(&json!({"quantity": 3, "idempotency_key": key}))
                .send()
                .await;
            let response = response.expect("deduct");
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.expect("json"))
        })
    });
    let mut answers = Vec::new();
    for call in calls {
        answers.push(call.await.expect("task"));
    }
    let taken = answers.iter().filter(|(s, b)| *s == 200 && b["replayed"] == false).count();
    let refused = answers.iter().filter(|(s, b)| *s == 400 && b["error_type"] == "insufficient_stock").count();
    let replayed = answers.iter().filter(|(s, b)| *s == 200 && b["replayed"] == true).count();
    assert_eq!(taken + refused + replayed, 50, "{answers:?}");
    assert_eq!(taken, 33, "100 ml takes 33 deducts of 3: {answers:?}");
    let (level, log) = level_and_log(&t, "resin").await;
    assert_eq!((level, log), (Quantity(1_000), Quantity(1_000)), "the level is the sum of the log");
    assert!(answers.iter().all(|(_, b)| b["new_stock"].as_f64().is_none_or(|l| l >= 0.0)), "{answers:?}");
    t.stop().await;
}
