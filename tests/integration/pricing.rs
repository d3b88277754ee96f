//! A makerspace's price table and quotes over HTTP, on whichever database the run uses: the
//! default table until the admins write theirs, a replaced table read back exactly, quotes
//! whose figures are checked by hand, tables that break a rule refused with nothing changed,
//! and other spaces' prices out of reach.

use makrcave::domain::access::Role;
use makrcave::domain::equipment::EquipmentType;
use makrcave::domain::pricing::QuoteInput;
use makrcave::services::access::AccessError;
use makrcave::services::pricing::{self, PricingError};
use serde_json::{json, Value};

use crate::common::TestApp;

const TABLE: &str = "/api/v1/makerspaces/eu/price-table";
const QUOTES: &str = "/api/v1/makerspaces/eu/quotes";

/// A space that prices in euros.
async fn euro_space(t: &TestApp) {
    let (status, body) = t
        .post("/api/v1/makerspaces", &t.super_admin(), json!({"id": "eu", "name": "Euro lab", "currency": "EUR"}))
        .await;
    assert_eq!(status, 201, "{body}");
}

/// The euro space with [`table`] written by its admin: the admin's token and the answer.
async fn priced_space(t: &TestApp) -> (String, Value) {
    euro_space(t).await;
    let admin = t.token("boss", Role::MakerspaceAdmin, &["eu"]);
    let (status, written) = t.put(TABLE, &admin, table()).await;
    assert_eq!(status, 200, "{written}");
    (admin, written)
}

fn table() -> Value {
    json!({
        "materials": [
            {"material": "PLA", "price_per_gram": 0.04, "density_g_cm3": 1.24},
            {"material": "PETG", "equipment_type": "3d_printer", "price_per_gram": 0.055, "density_g_cm3": 1.27},
            {"material": "Tough resin", "equipment_type": "sla_printer", "price_per_cm3": 0.2, "density_g_cm3": 1.1}
        ],
        "machines": {
            "3d_printer": {"rate_per_hour": 1.5, "fill_fraction": 0.4, "deposition_cm3_per_hour": 12},
            "laser_cutter": {"rate_per_hour": 24, "cutting_speed_mm_s": 20}
        },
        "setup_fee": 1.25,
        "qualities": {"draft": 0.8, "standard": 1, "fine": 1.4}
    })
}

#[actix_web::test]
async fn a_space_quotes_from_the_default_table_until_its_admins_write_theirs() {
    let t = TestApp::spawn().await;
    euro_space(&t).await;
    let admin = t.token("boss", Role::MakerspaceAdmin, &["eu"]);
    let member = t.token("ada", Role::Member, &["eu"]);

    let (status, default) = t.get(TABLE, Some(&member)).await;
    assert_eq!(status, 200, "{default}");
    assert_eq!((default["default"].clone(), default["currency"].clone()), (json!(true), json!("EUR")));
    assert_eq!((default["updated_at"].clone(), default["updated_by"].clone()), (Value::Null, Value::Null));
    assert_eq!(
        default["table"]["materials"][0],
        json!({"material": "PLA", "equipment_type": "3d_printer", "price_per_gram": 0.05, "density_g_cm3": 1.24})
    );

    let (status, written) = t.put(TABLE, &admin, table()).await;
    assert_eq!(status, 200, "{written}");
    assert_eq!(written["default"], false);
    assert_eq!(written["updated_by"], "boss");
    let (status, read) = t.get(TABLE, Some(&member)).await;
    assert_eq!(status, 200);
    assert_eq!(read, written, "what was written is read back");
    let mut expected = table();
    expected["materials"][0]["equipment_type"] = json!("3d_printer");
    assert_eq!(read["table"], expected, "the numbers as they were sent: 0.055, 1.25, 0.2");

    // 25 cm³ at a fill of 0.4: 10 cm³ printed. PLA: 12.4 g × 0.04 € = 49.6 -> 50 cents; PETG:
    // 12.7 g × 0.055 € = 69.85 -> 70 cents. 10 cm³ at 12 cm³/h is 3000 s at standard (×0.8:
    // 2400 s, ×1.4: 4200 s); at 1.5 €/h: 125 cents (100, 175). Setup 1.25 €.
    let (status, quotes) =
        t.post(QUOTES, &member, json!({"equipment_type": "3d_printer", "volume_cm3": 25, "material": null})).await;
    assert_eq!(status, 200, "{quotes}");
    assert_eq!(quotes["currency"], "EUR");
    let figures: Vec<Value> = quotes["options"]
        .as_array()
        .expect("options")
        .iter()
        .map(|o| {
            json!([
                o["material"],
                o["quality"],
                o["grams"],
                o["time_s"],
                o["material_minor"],
                o["machine_minor"],
                o["setup_minor"],
                o["total_minor"],
                o["currency"]
            ])
        })
        .collect();
    assert_eq!(
        figures,
        vec![
            json!(["PLA", "draft", 12.4, 2400, 50, 100, 125, 275, "EUR"]),
            json!(["PLA", "standard", 12.4, 3000, 50, 125, 125, 300, "EUR"]),
            json!(["PLA", "fine", 12.4, 4200, 50, 175, 125, 350, "EUR"]),
            json!(["PETG", "draft", 12.7, 2400, 70, 100, 125, 295, "EUR"]),
            json!(["PETG", "standard", 12.7, 3000, 70, 125, 125, 320, "EUR"]),
            json!(["PETG", "fine", 12.7, 4200, 70, 175, 125, 370, "EUR"]),
        ]
    );

    // A sliced file in its own material: 20.5 g of PETG is 112.75 -> 113 cents, 1 h 30 min at
    // 1.5 €/h is 225 cents.
    let (status, sliced) = t
        .post(
            QUOTES,
            &member,
            json!({"equipment_type": "3d_printer", "grams": 20.5, "time_s": 5400, "material": "petg"}),
        )
        .await;
    assert_eq!(status, 200, "{sliced}");
    assert_eq!(
        sliced["options"],
        json!([{"material": "PETG", "quality": "as_sliced", "grams": 20.5, "time_s": 5400, "material_minor": 113,
                "machine_minor": 225, "setup_minor": 125, "total_minor": 463, "currency": "EUR"}])
    );

    // What intake calls gives the same quotes as the preview.
    let services = t.app().state();
    let input = QuoteInput {
        equipment_type: EquipmentType::Printer3d,
        volume_cm3: Some(25.0),
        grams: None,
        time_s: None,
        material: None,
        cut_length_mm: None,
    };
    let intake = pricing::quote(services, "eu", &input).await.expect("quotes");
    assert_eq!(serde_json::to_value(&intake).expect("json"), quotes);
    let unknown = pricing::quote(services, "nowhere", &input).await;
    assert!(matches!(unknown, Err(PricingError::Access(AccessError::NotFound(_)))), "{unknown:?}");
    t.stop().await;
}

#[actix_web::test]
async fn what_a_table_cannot_price_is_a_422_that_says_why() {
    let t = TestApp::spawn().await;
    let (admin, _) = priced_space(&t).await;
    for (input, error_type, detail) in [
        (
            json!({"equipment_type": "cnc_machine", "time_s": 60}),
            "not_priced",
            "this makerspace's price table has no rates for cnc_machine",
        ),
        (
            json!({"equipment_type": "sla_printer", "volume_cm3": 5}),
            "not_priced",
            "this makerspace's price table has no rates for sla_printer",
        ),
        (
            json!({"equipment_type": "3d_printer", "time_s": 60}),
            "missing_figures",
            "a print is priced from the model's volume_cm3, or from a sliced file's grams and time_s",
        ),
        (
            json!({"equipment_type": "3d_printer", "volume_cm3": 5, "material": "PLA\u{7}"}),
            "validation_error",
            "material must not contain a control character (one at character 4)",
        ),
        (json!(["3d_printer", 5]), "validation_error", "invalid type: sequence, expected a map"),
    ] {
        let (status, body) = t.post(QUOTES, &admin, input.clone()).await;
        assert_eq!((status, body["error_type"].as_str()), (422, Some(error_type)), "{input}: {body}");
        // (serde's sentences end with where in the text they stopped.)
        assert!(body["detail"].as_str().is_some_and(|d| d.starts_with(detail)), "{input}: {body}");
    }
    // A laser job: 3000 mm at 20 mm/s is 150 s at standard; at 24 €/h, 100 cents.
    let (status, laser) =
        t.post(QUOTES, &admin, json!({"equipment_type": "laser_cutter", "cut_length_mm": 3000})).await;
    assert_eq!(status, 200, "{laser}");
    assert_eq!(
        laser["options"][1],
        json!({"material": null, "quality": "standard", "grams": null, "time_s": 150,
        "material_minor": 0, "machine_minor": 100, "setup_minor": 125, "total_minor": 225, "currency": "EUR"})
    );
    t.stop().await;
}

#[actix_web::test]
async fn a_table_that_breaks_a_rule_is_refused_and_changes_nothing() {
    let t = TestApp::spawn().await;
    let (admin, before) = priced_space(&t).await;

    let with = |pointer: &str, value: Value| {
        let mut body = table();
        *body.pointer_mut(pointer).expect("the field") = value;
        body
    };
    let mut twice = table();
    twice["materials"]
        .as_array_mut()
        .expect("materials")
        .push(json!({"material": "pla", "price_per_gram": 1, "density_g_cm3": 1}));
    let mut both_prices = table();
    both_prices["materials"][0]["price_per_cm3"] = json!(0.1);
    let mut unknown_field = table();
    unknown_field["discount"] = json!(0.1);
    let as_arrays = json!([[], [null], 1, [1, 1, 1]]);
    for (body, detail) in [
        (twice, Some("materials[3]: pla is listed twice (names are compared whatever their case)")),
        (both_prices, Some("materials[0] (PLA) must have exactly one of price_per_gram and price_per_cm3")),
        (
            with("/machines/3d_printer/fill_fraction", json!(0)),
            Some("machines.3d_printer.fill_fraction must be more than 0 and at most 1"),
        ),
        (with("/setup_fee", json!(-1)), Some("setup_fee must be from 0 to 100000")),
        (with("/qualities/fine", json!(10.5)), Some("qualities.fine must be from 0.1 to 10")),
        (with("/materials/1/material", json!("PETG/CF")), None),
        (with("/setup_fee", json!(0.0000001)), None),
        (with("/setup_fee", json!("1.25")), None),
        (unknown_field, None),
        (as_arrays, None),
        (with("/machines", json!([null, null])), None),
    ] {
        let (status, answer) = t.put(TABLE, &admin, body.clone()).await;
        assert_eq!((status, answer["error_type"].as_str()), (422, Some("validation_error")), "{body}: {answer}");
        if let Some(detail) = detail {
            assert_eq!(answer["detail"], detail);
        }
    }
    let (_, after) = t.get(TABLE, Some(&admin)).await;
    assert_eq!(after, before, "a refused table changes nothing");
    t.stop().await;
}

#[actix_web::test]
async fn other_spaces_prices_are_out_of_reach() {
    let t = TestApp::spawn().await;
    euro_space(&t).await;
    t.makerspace("other").await;
    let admin = t.token("boss", Role::MakerspaceAdmin, &["eu"]);
    let member = t.token("ada", Role::Member, &["eu"]);
    let quote = json!({"equipment_type": "laser_cutter", "cut_length_mm": 10});
    for path in ["/api/v1/makerspaces/other/price-table", "/api/v1/makerspaces/nowhere/price-table"] {
        assert_eq!(t.get(path, Some(&admin)).await.0, 404);
        assert_eq!(t.put(path, &admin, table()).await.0, 404);
    }
    assert_eq!(t.post("/api/v1/makerspaces/other/quotes", &admin, quote.clone()).await.0, 404);
    assert_eq!(t.put(TABLE, &member, table()).await.0, 403, "members read the table, admins write it");
    assert_eq!(t.post(QUOTES, &member, quote).await.0, 200);
    let (_, still_default) = t.get("/api/v1/makerspaces/other/price-table", Some(&t.super_admin())).await;
    assert_eq!((still_default["default"].clone(), still_default["currency"].clone()), (json!(true), json!("USD")));
    t.stop().await;
}
