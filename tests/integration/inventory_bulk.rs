//! Many inventory items at once, on whichever database the run uses: bulk updates, issues and
//! retirements are all or nothing with a report per entry; the CSV export imports back into a
//! fresh makerspace as the same items and levels, with formula-like cells made inert on the
//! way out and restored on the way in; rejected import rows store nothing; and a bill of
//! materials from the MakrX Store is answered per SKU with what the space has and lacks.

use makrcave::domain::access::Role;
use makrcave::domain::inventory::Quantity;
use serde_json::{json, Value};

use crate::common::{TestApp, TestOptions};

fn items_of(space: &str) -> String {
    format!("/api/v1/makerspaces/{space}/inventory")
}

async fn item(t: &TestApp, space: &str, body: Value) -> Value {
    let (status, item) = t.post(&items_of(space), &t.super_admin(), body).await;
    assert_eq!(status, 201, "{item}");
    item
}

/// The level stored for an item, the sum of its log, and the number of rows in it.
async fn ledger(t: &TestApp, space: &str, id: &str) -> (Quantity, Quantity, i64) {
    let store = &t.app().state().store;
    let item = store.get_item(space, id).await.expect("read").expect("the item");
    let (_, rows) = store.item_usage(id, 1, 0).await.expect("log");
    (item.current_stock, store.sum_of_usage(id).await.expect("sum"), rows)
}

async fn bulk(t: &TestApp, token: &str, body: Value) -> (u16, Value) {
    t.post(&format!("{}/bulk", items_of("s")), token, body).await
}

/// Each report's `(status, error_type)`.
fn statuses(answer: &Value) -> Vec<(String, Option<String>)> {
    answer["results"]
        .as_array()
        .expect("a report per entry")
        .iter()
        .map(|r| (r["status"].as_str().unwrap_or_default().to_string(), r["error_type"].as_str().map(str::to_string)))
        .collect()
}

fn report(status: &str, error_type: Option<&str>) -> (String, Option<String>) {
    (status.to_string(), error_type.map(str::to_string))
}

/// Three items of space `s`: 1000 g of PLA, 10 sheets of plywood, 50 screws.
async fn stocked(t: &TestApp) {
    t.makerspace("s").await;
    item(t, "s", json!({"id": "pla", "name": "PLA", "category": "filament", "unit": "g", "current_stock": 1000})).await;
    item(t, "s", json!({"id": "ply", "name": "Plywood", "category": "sheet", "unit": "sheet", "current_stock": 10}))
        .await;
    item(
        t,
        "s",
        json!({"id": "m3", "name": "M3 screws", "category": "component", "unit": "piece", "current_stock": 50}),
    )
    .await;
}

#[actix_web::test]
async fn bulk_update_issue_and_delete_apply_every_entry_with_a_report() {
    let t = TestApp::spawn().await;
    stocked(&t).await;
    let admin = t.token("boss", Role::MakerspaceAdmin, &["s"]);

    let (status, updated) = bulk(
        &t,
        &admin,
        json!({"operation": "update", "items": [
            {"item_id": "pla", "changes": {"location": "Shelf 9", "min_stock_level": 200}},
            {"item_id": "ply", "changes": {"name": "Plywood 6mm", "min_stock_level": 8}}]}),
    )
    .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!((updated["applied"].as_u64(), updated["replayed"].as_u64()), (Some(2), Some(0)));
    assert_eq!(statuses(&updated), vec![report("applied", None), report("applied", None)]);
    let pla = &updated["results"][0]["item"];
    assert_eq!(
        (&pla["location"], &pla["min_stock_level"], &pla["current_stock"]),
        (&json!("Shelf 9"), &json!(200.0), &json!(1000.0))
    );
    assert_eq!(updated["results"][1]["item"]["name"], "Plywood 6mm");

    // An issue of several items, one of them twice: the second sees the first.
    let issue = json!({"operation": "issue", "items": [
        {"item_id": "pla", "quantity": 250.5, "idempotency_key": "hand-1"},
        {"item_id": "ply", "quantity": 3, "idempotency_key": "hand-2", "note": "for the workshop"},
        {"item_id": "pla", "quantity": 100, "idempotency_key": "hand-3"}]});
    let (status, issued) = bulk(&t, &admin, issue.clone()).await;
    assert_eq!(status, 200, "{issued}");
    assert_eq!(issued["applied"], 3);
    let levels: Vec<&Value> =
        issued["results"].as_array().expect("results").iter().map(|r| &r["current_stock"]).collect();
    assert_eq!(levels, [&json!(749.5), &json!(7.0), &json!(649.5)]);
    let usage = &issued["results"][1]["usage"];
    assert_eq!(
        (&usage["reason"], &usage["delta"], &usage["note"]),
        (&json!("issued"), &json!(-3.0), &json!("for the workshop"))
    );
    assert_eq!(ledger(&t, "s", "pla").await, (Quantity(649_500), Quantity(649_500), 3));
    // The plywood went below its minimum: one alert, as for a single deduct.
    let (_, alerts) = t.get(&format!("{}/alerts", items_of("s")), Some(&admin)).await;
    let low: Vec<&Value> = alerts["alerts"].as_array().expect("alerts").iter().map(|a| &a["item_id"]).collect();
    assert_eq!(low, [&json!("ply")], "{alerts}");

    // Sent again with the same keys, the batch answers as the first time and changes nothing.
    let (status, again) = bulk(&t, &admin, issue).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!((again["applied"].as_u64(), again["replayed"].as_u64()), (Some(0), Some(3)));
    assert_eq!(again["results"][2]["usage"]["id"], issued["results"][2]["usage"]["id"]);
    assert_eq!(ledger(&t, "s", "pla").await, (Quantity(649_500), Quantity(649_500), 3));
    assert_eq!(ledger(&t, "s", "ply").await, (Quantity(7_000), Quantity(7_000), 2));

    let (status, deleted) =
        bulk(&t, &admin, json!({"operation": "delete", "items": [{"item_id": "m3"}, {"item_id": "ply"}]})).await;
    assert_eq!(status, 200, "{deleted}");
    assert_eq!(statuses(&deleted), vec![report("applied", None), report("applied", None)]);
    let (_, left) = t.get(&items_of("s"), Some(&admin)).await;
    assert_eq!(left["total"], 1, "{left}");
    t.stop().await;
}

#[actix_web::test]
async fn one_bad_entry_applies_nothing_and_the_report_names_it() {
    let t = TestApp::spawn().await;
    stocked(&t).await;
    t.makerspace("other").await;
    item(&t, "other", json!({"id": "elsewhere", "name": "Not ours", "category": "tool", "unit": "piece"})).await;
    let admin = t.token("boss", Role::MakerspaceAdmin, &["s"]);
    let before = (ledger(&t, "s", "pla").await, ledger(&t, "s", "ply").await);

    // Too little of one item, and an item of another space: 409, nothing written.
    let (status, refused) = bulk(
        &t,
        &admin,
        json!({"operation": "issue", "items": [
            {"item_id": "pla", "quantity": 10, "idempotency_key": "a"},
            {"item_id": "ply", "quantity": 10.5},
            {"item_id": "elsewhere", "quantity": 1}]}),
    )
    .await;
    assert_eq!((status, refused["error_type"].as_str()), (409, Some("bulk_rejected")), "{refused}");
    assert_eq!(
        statuses(&refused),
        vec![
            report("not_applied", None),
            report("failed", Some("insufficient_stock")),
            report("failed", Some("not_found"))
        ]
    );
    let short = &refused["results"][1];
    assert_eq!(
        (&short["item_id"], &short["current_stock"], &short["requested"]),
        (&json!("ply"), &json!(10.0), &json!(10.5))
    );
    assert_eq!((ledger(&t, "s", "pla").await, ledger(&t, "s", "ply").await), before, "nothing was written");
    // The key of the refused batch was not used up: the same entry goes through later.
    let (status, alone) = bulk(
        &t,
        &admin,
        json!({"operation": "issue", "items": [{"item_id": "pla", "quantity": 10, "idempotency_key": "a"}]}),
    )
    .await;
    assert_eq!((status, alone["applied"].as_u64()), (200, Some(1)), "{alone}");

    // An entry that breaks a rule: 422, and the valid entry before it is not applied either.
    let (status, invalid) = bulk(
        &t,
        &admin,
        json!({"operation": "update", "items": [
            {"item_id": "pla", "changes": {"location": "Moved"}},
            {"item_id": "ply", "changes": {"filament": {"material": "PLA"}}}]}),
    )
    .await;
    assert_eq!((status, invalid["error_type"].as_str()), (422, Some("bulk_rejected")), "{invalid}");
    assert_eq!(statuses(&invalid), vec![report("not_applied", None), report("failed", Some("validation_error"))]);
    let (_, pla) = t.get(&format!("{}/pla", items_of("s")), Some(&admin)).await;
    assert_eq!(pla["location"], Value::Null, "{pla}");

    // An item named twice in an update or a retirement, or one not in the space.
    let (status, twice) =
        bulk(&t, &admin, json!({"operation": "delete", "items": [{"item_id": "pla"}, {"item_id": "pla"}]})).await;
    assert_eq!(status, 422, "{twice}");
    assert_eq!(statuses(&twice), vec![report("not_applied", None), report("failed", Some("repeated_item"))]);
    let (status, missing) =
        bulk(&t, &admin, json!({"operation": "delete", "items": [{"item_id": "pla"}, {"item_id": "nope"}]})).await;
    assert_eq!(status, 409, "{missing}");
    assert_eq!(statuses(&missing), vec![report("not_applied", None), report("failed", Some("not_found"))]);
    let (status, _) = t.get(&format!("{}/pla", items_of("s")), Some(&admin)).await;
    assert_eq!(status, 200, "the retirement was not applied");

    // A batch is bounded, and only the space's admins write.
    let many: Vec<Value> = (0..501).map(|_| json!({"item_id": "pla", "quantity": 1})).collect();
    let (status, body) = bulk(&t, &admin, json!({"operation": "issue", "items": many})).await;
    assert_eq!(status, 422, "{body}");
    let member = t.token("ada", Role::Member, &["s"]);
    let (status, _) = bulk(&t, &member, json!({"operation": "delete", "items": [{"item_id": "pla"}]})).await;
    assert_eq!(status, 403);
    t.stop().await;
}

/// A CSV body sent to a path, with its answer.
async fn send_csv(t: &TestApp, path: &str, token: &str, content_type: &str, body: String) -> (u16, Value) {
    let res = t
        .http
        .post(t.url(path))
        .bearer_auth(token)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("send");
    let status = res.status().as_u16();
    (status, res.json().await.expect("json"))
}

async fn export(t: &TestApp, space: &str, token: &str) -> (u16, String) {
    let res =
        t.http.get(t.url(&format!("{}/export", items_of(space)))).bearer_auth(token).send().await.expect("export");
    let status = res.status().as_u16();
    if status == 200 {
        let content_type = res.headers()["content-type"].to_str().unwrap_or_default().to_string();
        assert!(content_type.starts_with("text/csv"), "{content_type}");
    }
    (status, res.text().await.expect("body"))
}

/// What a listing shows of every item but its id and times, sorted: what a round trip keeps.
async fn listed(t: &TestApp, space: &str) -> Vec<Value> {
    let (status, page) = t.get(&format!("{}?page_size=200", items_of(space)), Some(&t.super_admin())).await;
    assert_eq!(status, 200, "{page}");
    let mut items: Vec<Value> = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| {
            let mut i = i.clone();
            for volatile in ["id", "makerspace_id", "created_at", "updated_at"] {
                i.as_object_mut().expect("an item").remove(volatile);
            }
            i
        })
        .collect();
    items.sort_by_key(|i| i["name"].as_str().unwrap_or_default().to_string());
    items
}

#[actix_web::test]
async fn an_export_imports_into_a_fresh_space_as_the_same_items_and_levels() {
    let t = TestApp::spawn().await;
    t.makerspace("s").await;
    t.makerspace("fresh").await;
    let admin = t.token("boss", Role::MakerspaceAdmin, &["s"]);
    item(
        &t,
        "s",
        json!({"id": "pla", "name": "=HYPERLINK(\"http://evil\")", "category": "filament", "unit": "g",
               "current_stock": 2500.5, "min_stock_level": 500, "reorder_quantity": 5000, "location": "-back shelf",
               "supplier": {"kind": "makrx_store", "sku": "FIL-PLA-BLK"}, "unit_cost_minor": 3,
               "filament": {"material": "PLA", "color": "#1a1a1a", "diameter_mm": 1.75, "density_g_cm3": 1.24},
               "attributes": {"brand": "@Prusament", "spool": 1}}),
    )
    .await;
    item(
        &t,
        "s",
        json!({"id": "ply", "name": "Plywood, 4mm \"birch\"", "category": "sheet", "unit": "sheet", "current_stock": 3,
               "supplier": {"kind": "external", "name": "+Timber & Co", "url": "https://timber.example", "sku": "P-4"}}),
    )
    .await;
    item(
        &t,
        "s",
        json!({"id": "glue", "name": "Glue", "category": "consumable", "unit": "ml", "allow_negative": true}),
    )
    .await;
    // A level below zero (an item counted after use) is exported as the number it is.
    let (status, _) = t.post(&format!("{}/glue/deduct", items_of("s")), &admin, json!({"quantity": 2.25})).await;
    assert_eq!(status, 200);

    // Members read the stock list, but the export is for the space's admins.
    let (status, _) = export(&t, "s", &t.token("ada", Role::Member, &["s"])).await;
    assert_eq!(status, 403);
    let (status, text) = export(&t, "s", &admin).await;
    assert_eq!(status, 200, "{text}");
    let mut lines = text.lines();
    assert!(lines.next().unwrap_or_default().starts_with("id,name,category,unit,current_stock,"), "{text}");
    assert_eq!(lines.count(), 3);
    assert!(text.contains("\"'=HYPERLINK(\"\"http://evil\"\")\""), "a formula is exported as text: {text}");
    assert!(text.contains(",'-back shelf,") && text.contains(",'+Timber & Co,"), "{text}");
    assert!(text.contains("glue,Glue,consumable,ml,-2.25,"), "a number is exported as a number: {text}");
    assert!(text.contains(",2500.5,500,5000,"), "{text}");

    let root = t.super_admin();
    let import_path = format!("{}/import", items_of("fresh"));
    let (status, imported) = send_csv(&t, &import_path, &root, "text/csv", text.clone()).await;
    assert_eq!(status, 200, "{imported}");
    assert_eq!((imported["created"].as_u64(), imported["rejected"].as_array().map(Vec::len)), (Some(3), Some(0)));
    assert_eq!(listed(&t, "fresh").await, listed(&t, "s").await, "the same items, fields and levels");
    let fresh = t.get(&format!("{}?search=plywood", items_of("fresh")), Some(&root)).await.1;
    assert_eq!(fresh["items"][0]["name"], "Plywood, 4mm \"birch\"");
    // The ids belong to the first space's items, so the copies got new ones; their levels are
    // their logs' first rows.
    for id in imported["created_ids"].as_array().expect("ids") {
        let id = id.as_str().expect("an id");
        assert!(!["pla", "ply", "glue"].contains(&id), "{id}");
        let (level, sum, rows) = ledger(&t, "fresh", id).await;
        assert_eq!((level, rows), (sum, i64::from(level != Quantity::ZERO)));
    }

    // The same file into the space it came from creates nothing twice.
    let (status, again) = send_csv(&t, &format!("{}/import", items_of("s")), &admin, "text/csv", text).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["created"], 0);
    let reasons: Vec<&str> =
        again["rejected"].as_array().expect("rejected").iter().filter_map(|r| r["reason"].as_str()).collect();
    assert!(reasons.len() == 3 && reasons.iter().all(|r| r.contains("already")), "{again}");
    t.stop().await;
}

#[actix_web::test]
async fn an_import_reports_every_rejected_row_and_stores_nothing_of_it() {
    let t = TestApp::spawn_with(TestOptions { csv_max_bytes: Some(4096), ..Default::default() }).await;
    t.makerspace("s").await;
    let admin = t.token("boss", Role::MakerspaceAdmin, &["s"]);
    let path = format!("{}/import", items_of("s"));
    let csv = "name,category,unit,current_stock,supplier_kind,supplier_sku,material,unit_cost_minor,currency,id\n\
               PLA white,filament,g,1000.5,makrx_store,FIL-PLA-WHT,PLA,2,USD,pla-white\n\
               Mystery,potion,g,1,,,,,,\n\
               Too fine,resin,ml,1.0005,,,,,,\n\
               No SKU,filament,g,1,makrx_store,,,,,\n\
               Sheet of PLA,sheet,sheet,1,,,PLA,,,\n\
               Again,component,piece,5,,,,,,pla-white\n\
               Euro,tool,piece,1,,,,9,EUR,\n\
               Blank,tool,piece,1,,,,,,\"\"\n\
               \"   \",tool,piece,1,,,,,,\n\
               Screws,component,piece,,,,,,,\n";
    let (status, result) = send_csv(&t, &path, &admin, "text/csv", csv.to_string()).await;
    assert_eq!(status, 200, "{result}");
    let rejected: Vec<(u64, String)> = result["rejected"]
        .as_array()
        .expect("rejected")
        .iter()
        .map(|r| (r["line"].as_u64().unwrap_or(0), r["reason"].as_str().unwrap_or_default().to_string()))
        .collect();
    assert_eq!(rejected.iter().map(|r| r.0).collect::<Vec<_>>(), vec![3, 4, 5, 6, 7, 8, 10], "{rejected:?}");
    assert!(rejected[0].1.contains("potion") && rejected[1].1.contains("three decimals"), "{rejected:?}");
    assert!(rejected[2].1.contains("supplier_sku") && rejected[3].1.contains("filament"), "{rejected:?}");
    assert!(rejected[4].1.contains("earlier") && rejected[5].1.contains("EUR"), "{rejected:?}");
    assert_eq!(result["created"], 3, "{result}");
    let (_, page) = t.get(&items_of("s"), Some(&admin)).await;
    assert_eq!(page["total"], 3, "only the good rows were stored: {page}");
    let (_, pla) = t.get(&format!("{}/pla-white", items_of("s")), Some(&admin)).await;
    assert_eq!((&pla["current_stock"], &pla["unit_cost"]["amount_minor"]), (&json!(1000.5), &json!(2)), "{pla}");
    assert_eq!(ledger(&t, "s", "pla-white").await, (Quantity(1_000_500), Quantity(1_000_500), 1));

    // Not CSV, too large, or a header the import does not know: nothing is read or stored.
    let (status, _) = send_csv(&t, &path, &admin, "application/json", csv.to_string()).await;
    assert_eq!(status, 415);
    let large = format!("name,category,unit\n{}", "Screw,component,piece\n".repeat(200));
    let (status, body) = send_csv(&t, &path, &admin, "text/csv", large).await;
    assert_eq!((status, body["error_type"].as_str()), (413, Some("payload_too_large")), "{body}");
    let (status, body) = send_csv(&t, &path, &admin, "text/csv", "name,colour\nx,red\n".into()).await;
    assert_eq!((status, body["error_type"].as_str()), (422, Some("validation_error")), "{body}");
    let member = t.token("ada", Role::Member, &["s"]);
    let (status, _) = send_csv(&t, &path, &member, "text/csv", "name,category,unit\nx,tool,piece\n".into()).await;
    assert_eq!(status, 403);
    let (_, page) = t.get(&items_of("s"), Some(&admin)).await;
    assert_eq!(page["total"], 3, "{page}");
    t.stop().await;
}

/// A member whose name or notes start like a formula (`=`, `+`, `-`, `@`) is exported with a
/// leading `'`, which a spreadsheet shows as text.
#[actix_web::test]
async fn the_member_export_makes_every_formula_start_inert() {
    let t = TestApp::spawn().await;
    t.makerspace("s").await;
    let root = t.super_admin();
    let people = [("eq@example.org", "=1+1", "@SUM(A1)"), ("pm@example.org", "+31 6", "-2+3")];
    for (email, first, last) in people {
        let body = json!({"email": email, "first_name": first, "last_name": last, "notes": "'=already quoted"});
        let (status, created) = t.post("/api/v1/makerspaces/s/members", &root, body).await;
        assert_eq!(status, 201, "{created}");
    }
    let res =
        t.http.get(t.url("/api/v1/makerspaces/s/members/export")).bearer_auth(&root).send().await.expect("export");
    let text = res.text().await.expect("csv");
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers = reader.headers().expect("header").clone();
    let at = |column: &str| headers.iter().position(|h| h == column).expect("a column");
    let mut cells: Vec<(String, String, String)> = reader
        .records()
        .map(|r| {
            let r = r.expect("a row");
            (r[at("first_name")].to_string(), r[at("last_name")].to_string(), r[at("notes")].to_string())
        })
        .collect();
    cells.sort();
    let expected = [("'+31 6", "'-2+3"), ("'=1+1", "'@SUM(A1)")];
    for ((first, last, notes), (want_first, want_last)) in cells.iter().zip(expected) {
        assert_eq!((first.as_str(), last.as_str()), (want_first, want_last), "{text}");
        assert_eq!(notes, "''=already quoted", "a quote before a formula is kept, itself quoted: {text}");
    }
    assert_eq!(cells.len(), 2);
    t.stop().await;
}

#[actix_web::test]
async fn a_bill_of_materials_is_answered_per_sku() {
    let t = TestApp::spawn().await;
    t.makerspace("s").await;
    t.makerspace("other").await;
    let store = |sku: &str| json!({"kind": "makrx_store", "sku": sku});
    let pla = |id: &str, stock: f64| json!({"id": id, "name": id, "category": "filament", "unit": "g", "current_stock": stock, "supplier": store("FIL-PLA-BLK")});
    item(&t, "s", pla("pla-1", 600.25)).await;
    item(&t, "s", pla("pla-2", 700.0)).await;
    item(&t, "s", json!({"id": "ply", "name": "Ply", "category": "sheet", "unit": "sheet", "current_stock": 3, "supplier": store("SHEET-PLY")}))
        .await;
    // Not counted: another supplier's product under the same code, a retired item, another space's.
    item(
        &t,
        "s",
        json!({"id": "ext", "name": "Ext", "category": "filament", "unit": "g", "current_stock": 5000,
                         "supplier": {"kind": "external", "name": "Other", "sku": "FIL-PLA-BLK"}}),
    )
    .await;
    item(&t, "s", json!({"id": "old-ply", "name": "Old", "category": "sheet", "unit": "sheet", "current_stock": 9, "supplier": store("SHEET-PLY")}))
        .await;
    let (status, _) = t.delete(&format!("{}/old-ply", items_of("s")), &t.super_admin()).await;
    assert_eq!(status, 204);
    item(
        &t,
        "other",
        json!({"id": "their-ply", "name": "Theirs", "category": "sheet", "unit": "sheet", "current_stock": 9,
                             "supplier": store("SHEET-PLY")}),
    )
    .await;

    let admin = t.token("boss", Role::MakerspaceAdmin, &["s"]);
    let request = json!({"makerspace_id": "s", "product_codes": ["FIL-PLA-BLK", "SHEET-PLY", "UNKNOWN-1", "FIL-PLA-BLK"],
                         "quantities": [1000, 5, 2, 250.5]});
    let (status, answer) = t.post("/api/v1/bom/sync-inventory", &admin, request.clone()).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["skus"],
        json!([
            {"sku": "FIL-PLA-BLK", "needed": 1250.5, "in_stock": 1300.25, "missing": 0.0, "unit": "g", "items": ["pla-1", "pla-2"]},
            {"sku": "SHEET-PLY", "needed": 5.0, "in_stock": 3.0, "missing": 2.0, "unit": "sheet", "items": ["ply"]},
            {"sku": "UNKNOWN-1", "needed": 2.0, "in_stock": 0.0, "missing": 2.0, "unit": null, "items": []}
        ])
    );
    assert_eq!(answer["totals"], json!({"skus": 3, "available": 1, "short": 2, "unknown": 1, "complete": false}));

    // Lists of different lengths are refused; only the space's admins ask.
    let (status, body) = t
        .post(
            "/api/v1/bom/sync-inventory",
            &admin,
            json!({"makerspace_id": "s", "product_codes": ["A"], "quantities": [1, 2]}),
        )
        .await;
    assert_eq!((status, body["error_type"].as_str()), (422, Some("validation_error")), "{body}");
    let (status, _) =
        t.post("/api/v1/bom/sync-inventory", &t.token("ada", Role::Member, &["s"]), request.clone()).await;
    assert_eq!(status, 403);
    let (status, _) =
        t.post("/api/v1/bom/sync-inventory", &t.token("eve", Role::MakerspaceAdmin, &["other"]), request).await;
    assert_eq!(status, 404);
    t.stop().await;
}
