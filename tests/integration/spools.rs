//! Filament spools on whichever database the run uses: registered on a filament item (their
//! net weight received into it), listed with what is left, weighed (an adjustment of the
//! spool), loaded on printers (one place per spool, one spool per slot), shown on the
//! printer's live view over the WebSocket, and charged a finished job's grams once however
//! often the job's end is reported. A spool's grams and its item's level are always sums of
//! the one log.

use std::collections::BTreeMap;

use makrcave::domain::access::Role;
use makrcave::domain::inventory::Quantity;
use makrcave::services::spools::SpoolError;
use makrcave::services::stock::{self, StockError};
use serde_json::{json, Value};

use crate::common::{open_space_ws, ws_until, TestApp};

const ITEMS: &str = "/api/v1/makerspaces/s/inventory";

async fn filament(t: &TestApp, admin: &str, id: &str) {
    let body = json!({"id": id, "name": id, "category": "filament", "unit": "g", "current_stock": 100,
                      "filament": {"material": "PLA", "color": "#1a1a1a"}});
    let (status, item) = t.post(ITEMS, admin, body).await;
    assert_eq!(status, 201, "{item}");
}

async fn spool(t: &TestApp, admin: &str, item: &str, body: Value) -> Value {
    let (status, spool) = t.post(&format!("{ITEMS}/{item}/spools"), admin, body).await;
    assert_eq!(status, 201, "{spool}");
    spool
}

/// The item's level as stored, and the sums of its log: the whole log, and per spool.
async fn sums(t: &TestApp, item: &str) -> (Quantity, Quantity, BTreeMap<String, Quantity>) {
    let (status, page) = t.get(&format!("{ITEMS}/{item}/usage?page_size=200"), Some(&t.super_admin())).await;
    assert_eq!(status, 200, "{page}");
    let rows = page["usage"].as_array().expect("rows");
    assert!(rows.len() < 200, "one page holds the whole log");
    let delta = |row: &Value| serde_json::from_value::<Quantity>(row["delta"].clone()).expect("a quantity");
    let whole = Quantity(rows.iter().map(|r| delta(r).0).sum());
    let mut by_spool = BTreeMap::new();
    for row in rows {
        if let Some(spool) = row["spool_id"].as_str() {
            by_spool.entry(spool.to_string()).or_insert(Quantity::ZERO).0 += delta(row).0;
        }
    }
    let stored = t.app().state().store.get_item("s", item).await.expect("read").expect("the item").current_stock;
    (stored, whole, by_spool)
}

/// Makerspaces "s", with a filament "pla", and "other"; tokens of s's admin and of a member.
async fn space_with_pla() -> (TestApp, String, String) {
    let t = TestApp::spawn().await;
    t.makerspace("s").await;
    t.makerspace("other").await;
    let admin = t.token("boss", Role::MakerspaceAdmin, &["s"]);
    let member = t.token("ada", Role::Member, &["s"]);
    filament(&t, &admin, "pla").await;
    (t, admin, member)
}

#[actix_web::test]
async fn spools_are_registered_listed_and_weighed_as_rows_of_their_items_log() {
    let (t, admin, member) = space_with_pla().await;
    let (status, _) =
        t.post(ITEMS, &admin, json!({"id": "ply", "name": "Plywood", "category": "sheet", "unit": "sheet"})).await;
    assert_eq!(status, 201);

    // The net weight comes into the item as a receipt carrying the spool's id.
    let first = spool(
        &t,
        &admin,
        "pla",
        json!({"id": "pla-1", "net_g": 1000, "tare_g": 250.5, "lot": "LOT-2411", "idempotency_key": "delivery-7/1"}),
    )
    .await;
    assert_eq!(
        (&first["initial_net_g"], &first["tare_g"], &first["remaining_g"], &first["lot"], &first["loaded"]),
        (&json!(1000.0), &json!(250.5), &json!(1000.0), &json!("LOT-2411"), &Value::Null),
        "{first}"
    );
    // Sent again with its key: the same spool, nothing received twice.
    let again = spool(
        &t,
        &admin,
        "pla",
        json!({"id": "pla-1", "net_g": 1000, "tare_g": 250.5, "idempotency_key": "delivery-7/1"}),
    )
    .await;
    assert_eq!(again["id"], "pla-1");
    let second = spool(&t, &admin, "pla", json!({"net_g": 500, "tare_g": 180})).await;
    let second_id = second["id"].as_str().expect("a minted id").to_string();
    let (stored, whole, by_spool) = sums(&t, "pla").await;
    assert_eq!((stored, whole), (Quantity::from_units(1600), Quantity::from_units(1600)));
    assert_eq!(
        by_spool,
        BTreeMap::from([("pla-1".into(), Quantity::from_units(1000)), (second_id.clone(), Quantity::from_units(500))])
    );

    // Members read them, oldest first; only admins register; only filaments in grams have spools.
    let (status, list) = t.get(&format!("{ITEMS}/pla/spools"), Some(&member)).await;
    assert_eq!(status, 200, "{list}");
    let ids: Vec<&str> = list["spools"].as_array().expect("spools").iter().filter_map(|s| s["id"].as_str()).collect();
    assert_eq!(ids, ["pla-1", second_id.as_str()]);
    let (status, _) = t.post(&format!("{ITEMS}/pla/spools"), &member, json!({"net_g": 1, "tare_g": 1})).await;
    assert_eq!(status, 403);
    let (status, body) = t.post(&format!("{ITEMS}/ply/spools"), &admin, json!({"net_g": 1000, "tare_g": 200})).await;
    assert_eq!((status, body["error_type"].as_str()), (422, Some("validation_error")), "{body}");
    let (status, body) =
        t.post(&format!("{ITEMS}/pla/spools"), &admin, json!({"id": "pla-1", "net_g": 5, "tare_g": 1})).await;
    assert_eq!((status, body["error_type"].as_str()), (409, Some("duplicate_spool")), "{body}");
    let (status, body) = t.post(&format!("{ITEMS}/pla/spools"), &admin, json!({"net_g": 0, "tare_g": 1})).await;
    assert_eq!(status, 422, "{body}");
    let stranger = t.token("eve", Role::MakerspaceAdmin, &["other"]);
    let (status, _) = t.get("/api/v1/makerspaces/other/spools/pla-1", Some(&stranger)).await;
    assert_eq!(status, 404);

    // A weighing sets the spool to gross less tare: an adjustment of the spool, and of its item
    // as much.
    let weigh = "/api/v1/makerspaces/s/spools/pla-1/weigh";
    let (status, weighed) = t.post(weigh, &admin, json!({"gross_g": 1013.125, "idempotency_key": "scale-1"})).await;
    assert_eq!(status, 200, "{weighed}");
    assert_eq!(
        (
            &weighed["spool"]["remaining_g"],
            &weighed["usage"]["reason"],
            &weighed["usage"]["delta"],
            &weighed["usage"]["spool_id"]
        ),
        (&json!(762.625), &json!("adjusted"), &json!(-237.375), &json!("pla-1")),
        "{weighed}"
    );
    let (status, replay) = t.post(weigh, &admin, json!({"gross_g": 900, "idempotency_key": "scale-1"})).await;
    assert_eq!((status, &replay["replayed"], &replay["usage"]["id"]), (200, &json!(true), &weighed["usage"]["id"]));
    // Less than the empty spool weighs: refused, nothing changes.
    let (status, body) = t.post(weigh, &admin, json!({"gross_g": 250})).await;
    assert_eq!((status, body["error_type"].as_str()), (422, Some("validation_error")), "{body}");
    let (status, body) = t.post(weigh, &member, json!({"gross_g": 900})).await;
    assert_eq!(status, 403, "{body}");
    let (stored, whole, by_spool) = sums(&t, "pla").await;
    assert_eq!((stored, whole), (Quantity(1_362_625), Quantity(1_362_625)));
    assert_eq!(by_spool["pla-1"], Quantity(762_625));
    let (_, read) = t.get("/api/v1/makerspaces/s/spools/pla-1", Some(&member)).await;
    assert_eq!(read["remaining_g"], 762.625, "{read}");

    // A makerspace deleted with its spools and their log goes at once.
    let (status, body) = t.delete("/api/v1/makerspaces/s", &t.super_admin()).await;
    assert_eq!(status, 204, "{body}");
    t.stop().await;
}

#[actix_web::test]
async fn a_spool_is_in_one_place_and_a_slot_holds_one_spool() {
    let (t, admin, member) = space_with_pla().await;
    for id in ["a", "b"] {
        spool(&t, &admin, "pla", json!({"id": id, "net_g": 1000, "tare_g": 200})).await;
    }
    t.machine("s", "p1", json!({})).await;
    t.machine("s", "p2", json!({})).await;
    t.machine("s", "laser", json!({"type": "laser_cutter"})).await;
    t.machine("other", "theirs", json!({})).await;
    let on = |machine: &str| format!("/api/v1/makerspaces/s/equipment/{machine}/spools");

    let (status, loaded) = t.post(&on("p1"), &admin, json!({"spool_id": "a", "slot": "main"})).await;
    assert_eq!(status, 201, "{loaded}");
    assert_eq!(
        loaded,
        json!({"spool_id": "a", "item_id": "pla", "slot": "main", "material": "PLA", "color": "#1A1A1A", "remaining_g": 1000.0})
    );
    let (status, _) = t.post(&on("p1"), &admin, json!({"spool_id": "a", "slot": "main"})).await;
    assert_eq!(status, 200, "loading it again where it is changes nothing");

    let refusals = [
        (on("p1"), json!({"spool_id": "b", "slot": "main"}), 409, "slot_taken"),
        (on("p2"), json!({"spool_id": "a", "slot": "main"}), 409, "spool_loaded_elsewhere"),
        (on("laser"), json!({"spool_id": "b", "slot": "main"}), 409, "not_a_printer"),
        (
            "/api/v1/makerspaces/s/equipment/theirs/spools".into(),
            json!({"spool_id": "b", "slot": "main"}),
            404,
            "not_found",
        ),
        (on("p2"), json!({"spool_id": "nope", "slot": "main"}), 422, "validation_error"),
        (on("p2"), json!({"spool_id": "b", "slot": "tray 1"}), 422, "validation_error"),
    ];
    for (path, body, status, error_type) in refusals {
        let (got, answer) = t.post(&path, &admin, body.clone()).await;
        assert_eq!((got, answer["error_type"].as_str()), (status, Some(error_type)), "{path} {body}: {answer}");
    }
    let (_, elsewhere) = t.post(&on("p2"), &admin, json!({"spool_id": "a", "slot": "0-0"})).await;
    assert_eq!((&elsewhere["equipment_id"], &elsewhere["slot"]), (&json!("p1"), &json!("main")), "{elsewhere}");
    let (status, _) = t.post(&on("p2"), &member, json!({"spool_id": "b", "slot": "main"})).await;
    assert_eq!(status, 403);

    // Members see what is loaded; the spool says where it is.
    let (status, list) = t.get(&on("p1"), Some(&member)).await;
    assert_eq!((status, list["spools"].as_array().map(Vec::len)), (200, Some(1)), "{list}");
    let (_, a) = t.get("/api/v1/makerspaces/s/spools/a", Some(&member)).await;
    assert_eq!((&a["loaded"]["equipment_id"], &a["loaded"]["slot"]), (&json!("p1"), &json!("main")), "{a}");

    // Unloading frees the spool and the slot.
    let (status, _) = t.delete(&format!("{}/a", on("p1")), &admin).await;
    assert_eq!(status, 204);
    for path in [format!("{}/a", on("p1")), format!("{}/a", on("laser")), format!("{}/a", on("theirs"))] {
        let (status, body) = t.delete(&path, &admin).await;
        assert_eq!((status, body["error_type"].as_str()), (404, Some("not_found")), "{path}: {body}");
    }
    let (status, _) = t.post(&on("p2"), &admin, json!({"spool_id": "a", "slot": "main"})).await;
    assert_eq!(status, 201);
    let (status, _) = t.post(&on("p1"), &admin, json!({"spool_id": "b", "slot": "main"})).await;
    assert_eq!(status, 201);

    // A deleted machine lets its spools go.
    let (status, _) = t.delete("/api/v1/makerspaces/s/equipment/p2", &admin).await;
    assert_eq!(status, 204);
    let (_, a) = t.get("/api/v1/makerspaces/s/spools/a", Some(&member)).await;
    assert_eq!(a["loaded"], Value::Null, "{a}");
    t.stop().await;
}

#[actix_web::test]
async fn a_jobs_grams_are_charged_once_to_its_printers_spool_and_shown_live() {
    let (mut t, admin, _) = space_with_pla().await;
    filament(&t, &admin, "petg").await;
    spool(&t, &admin, "pla", json!({"id": "black", "net_g": 1000, "tare_g": 200})).await;
    spool(&t, &admin, "petg", json!({"id": "white", "net_g": 750, "tare_g": 200})).await;
    t.machine("s", "mk4", json!({})).await;
    let state = t.app().state();

    // Nothing loaded: a clear refusal, nothing written.
    let none = stock::charge_job(state, "s", "mk4", "job-1", Quantity::from_units(10), None).await;
    assert!(matches!(none, Err(SpoolError::NoSpoolLoaded { slot: None })), "{none:?}");

    let mut ws = open_space_ws(&t, &admin, "s").await;
    let load = "/api/v1/makerspaces/s/equipment/mk4/spools";
    let (status, _) = t.post(load, &admin, json!({"spool_id": "black", "slot": "main"})).await;
    assert_eq!(status, 201);
    let shown = ws_until(&mut ws, |m| m["type"] == "machine" && m["machine"]["spools"][0]["spool_id"] == "black").await;
    assert_eq!(
        shown["machine"]["spools"],
        json!([{"spool_id": "black", "item_id": "pla", "slot": "main", "material": "PLA", "color": "#1A1A1A", "remaining_g": 1000.0}])
    );

    // The job's end is reported twice: charged once, with the job as cause.
    let state = t.app().state();
    let first = stock::charge_job(state, "s", "mk4", "job-42", Quantity(212_345), None).await.expect("charged");
    let again = stock::charge_job(state, "s", "mk4", "job-42", Quantity(212_345), None).await.expect("answered");
    // (PostgreSQL keeps microseconds: the rows are compared by id.)
    assert_eq!((first.replayed, again.replayed, again.usage.id), (false, true, first.usage.id));
    assert_eq!(
        (
            first.usage.delta,
            first.usage.reason.as_str(),
            first.usage.cause_kind.as_str(),
            first.usage.cause_id.as_deref()
        ),
        (Quantity(-212_345), "used_by_job", "job", Some("job-42"))
    );
    assert_eq!(first.usage.spool_id.as_deref(), Some("black"));
    let (stored, whole, by_spool) = sums(&t, "pla").await;
    assert_eq!((stored, whole), (Quantity(887_655), Quantity(887_655)));
    assert_eq!(by_spool["black"], Quantity(787_655));
    let shown =
        ws_until(&mut ws, |m| m["type"] == "machine" && m["machine"]["spools"][0]["remaining_g"] == 787.655).await;
    assert_eq!(shown["machine"]["equipment_id"], "mk4");

    // Two spools loaded: the job names its slot; without one it is ambiguous.
    let (status, _) = t.post(load, &admin, json!({"spool_id": "white", "slot": "external"})).await;
    assert_eq!(status, 201);
    let state = t.app().state();
    let ambiguous = stock::charge_job(state, "s", "mk4", "job-43", Quantity::from_units(5), None).await;
    assert!(matches!(&ambiguous, Err(SpoolError::AmbiguousSpool { slots }) if slots.len() == 2), "{ambiguous:?}");
    let white = stock::charge_job(state, "s", "mk4", "job-43", Quantity::from_units(5), Some("external")).await;
    assert_eq!(white.expect("charged").usage.item_id, "petg");
    let wrong_slot = stock::charge_job(state, "s", "mk4", "job-44", Quantity::from_units(5), Some("0-1")).await;
    assert!(matches!(wrong_slot, Err(SpoolError::NoSpoolLoaded { slot: Some(_) })), "{wrong_slot:?}");
    // More than the spool holds by its log: refused like a deduct, nothing changes.
    let too_much = stock::charge_job(state, "s", "mk4", "job-45", Quantity::from_units(800), Some("main")).await;
    assert!(matches!(too_much, Err(SpoolError::Stock(StockError::Insufficient { .. }))), "{too_much:?}");
    // A retried report still answers with its row after the spool left the machine.
    let (status, _) = t.delete(&format!("{load}/black"), &admin).await;
    assert_eq!(status, 204);
    let state = t.app().state();
    let late = stock::charge_job(state, "s", "mk4", "job-42", Quantity(212_345), None).await.expect("answered");
    assert_eq!((late.replayed, late.usage.id), (true, first.usage.id));
    assert_eq!(sums(&t, "pla").await.1, Quantity(887_655));

    // After a restart the printer shows its spools again, from the store.
    t.restart().await;
    let view = t
        .wait_state("s", "mk4", "the spools shown again", |s| s["spools"].as_array().is_some_and(|a| !a.is_empty()))
        .await;
    assert_eq!(
        view["spools"],
        json!([{"spool_id": "white", "item_id": "petg", "slot": "external", "material": "PLA", "color": "#1A1A1A", "remaining_g": 745.0}])
    );
    t.stop().await;
}
