//! Billing, second slice: invoices (drafts, numbering under concurrency, frozen lines),
//! payments (cash, wallet), voiding, credit notes, and the integrity chain, which names an
//! invoice altered behind makrcave's back.

use futures_util::future::join_all;
use makrcave::domain::access::Role;
use serde_json::{json, Value};
use sqlx::Connection;

use crate::billing::{add_member, keyed, S};
use crate::common::{database_kind, DatabaseKind, TestApp};

pub(crate) fn base() -> String {
    format!("/api/v1/makerspaces/{S}/billing")
}

/// The space with EUR and a 20% VAT rate; its admin's token.
pub(crate) async fn space(t: &TestApp) -> String {
    t.makerspace(S).await;
    let admin = t.token("boss", Role::MakerspaceAdmin, &[S]);
    let settings = json!({"currency": "EUR", "tax_rates": [{"id": "vat", "name": "VAT", "percent": 20}],
        "prepaid": false, "prepaid_minimum_minor": 0, "job_charge_policy": "actual"});
    let (status, body) = t.put(&format!("{}/settings", base()), &admin, settings).await;
    assert_eq!(status, 200, "{body}");
    admin
}

/// A manual charge of `member`: `amount` net, with VAT when `vat`.
pub(crate) async fn charge(t: &TestApp, admin: &str, member: &str, amount: i64, vat: bool) -> Value {
    let mut body = json!({"member_id": member, "kind": "manual", "description": format!("Item {amount}"),
        "amount_minor": amount, "reason": "sold at the desk"});
    if vat {
        body["tax_rate_id"] = json!("vat");
    }
    let (status, c) = keyed(t, &format!("{}/charges", base()), admin, uuid::Uuid::new_v4().to_string(), body).await;
    assert_eq!(status, 201, "{c}");
    c
}

/// A draft of the member's open charges of all time.
pub(crate) async fn draft(t: &TestApp, admin: &str, member: &str) -> Value {
    let body = json!({"member_id": member, "period_from": "2000-01-01", "period_to": "2100-12-31"});
    let (status, inv) = keyed(t, &format!("{}/invoices", base()), admin, uuid::Uuid::new_v4().to_string(), body).await;
    assert_eq!(status, 201, "{inv}");
    inv
}

pub(crate) async fn finalize(t: &TestApp, admin: &str, invoice: &str, key: &str) -> (u16, Value) {
    keyed(t, &format!("{}/invoices/{invoice}/finalize", base()), admin, key, json!(null)).await
}

pub(crate) async fn invoice(t: &TestApp, token: &str, id: &str) -> (u16, Value) {
    t.get(&format!("{}/invoices/{id}", base()), Some(token)).await
}

fn year() -> i32 {
    chrono::Datelike::year(&chrono::Utc::now())
}

#[actix_web::test]
async fn a_draft_collects_open_charges_and_freezes_when_finalized() {
    let t = TestApp::spawn().await;
    let admin = space(&t).await;
    let ada = add_member(&t, "ada", "04:AD:A1:01", None).await;
    let bob = add_member(&t, "bob", "04:B0:B1:01", None).await;
    let first = charge(&t, &admin, &ada, 1000, true).await;
    let second = charge(&t, &admin, &ada, 500, false).await;
    charge(&t, &admin, &bob, 700, true).await;

    // Ten concurrent drafts of ada's charges: each charge lands on exactly one of them.
    let body = json!({"member_id": ada, "period_from": "2000-01-01", "period_to": "2100-12-31"});
    let path = format!("{}/invoices", base());
    let drafts = join_all((0..10).map(|i| keyed(&t, &path, &admin, format!("draft-{i}"), body.clone()))).await;
    assert!(drafts.iter().all(|(s, _)| *s == 201), "{drafts:?}");
    let lines: usize = drafts.iter().map(|(_, d)| d["lines"].as_array().unwrap().len()).sum();
    assert_eq!(lines, 2, "{drafts:?}");
    let full =
        drafts.iter().map(|(_, d)| d).find(|d| d["lines"].as_array().unwrap().len() == 2).expect("one draft has both");
    let id = full["id"].as_str().unwrap();
    assert_eq!((full["status"].as_str(), full["number"].as_str()), (Some("draft"), None), "{full}");
    assert_eq!(
        (full["net_minor"].as_i64(), full["tax_minor"].as_i64(), full["total_minor"].as_i64()),
        (Some(1500), Some(200), Some(1700))
    );
    let vat = full["taxes"].as_array().unwrap().iter().find(|t| t["tax_rate_id"] == "vat").expect("a VAT line").clone();
    assert_eq!((vat["net_minor"].as_i64(), vat["tax_minor"].as_i64()), (Some(1000), Some(200)), "{full}");
    let empty = drafts.iter().map(|(_, d)| d).find(|d| d["lines"].as_array().unwrap().is_empty()).unwrap();
    let (status, answer) = finalize(&t, &admin, empty["id"].as_str().unwrap(), "fin-empty").await;
    assert_eq!((status, answer["error_type"].as_str()), (409, Some("invoice_empty")), "{answer}");

    // A draft changes: a line goes back to open.
    let remove = format!("{}/invoices/{id}/lines/{}/remove", base(), second["id"].as_str().unwrap());
    let (status, changed) = t.post(&remove, &admin, json!(null)).await;
    assert_eq!((status, changed["total_minor"].as_i64()), (200, Some(1200)), "{changed}");
    let (_, open) = t.get(&format!("{}/charges?member_id={ada}&status=open", base()), Some(&admin)).await;
    assert_eq!(open["charges"][0]["id"], second["id"], "{open}");

    // Finalized: numbered, frozen; retried with its key, the same answer; no line moves now.
    let (status, done) = finalize(&t, &admin, id, "fin-1").await;
    assert_eq!(status, 201, "{done}");
    assert_eq!(done["number"], json!(format!("INV-{}-00001", year())), "{done}");
    assert_eq!((done["status"].as_str(), done["payment_status"].as_str()), (Some("finalized"), Some("open")));
    assert_eq!(done["lines"][0]["charge_id"], first["id"]);
    assert_eq!(done["content_sha256"].as_str().map(str::len), Some(64), "{done}");
    let (status, again) = finalize(&t, &admin, id, "fin-1").await;
    assert_eq!((status, &again["number"]), (201, &done["number"]), "{again}");
    let (status, answer) = finalize(&t, &admin, id, "fin-2").await;
    assert_eq!((status, answer["error_type"].as_str()), (409, Some("invoice_finalized")), "{answer}");
    let remove = format!("{}/invoices/{id}/lines/{}/remove", base(), first["id"].as_str().unwrap());
    let (status, answer) = t.post(&remove, &admin, json!(null)).await;
    assert_eq!((status, answer["error_type"].as_str()), (409, Some("invoice_finalized")), "{answer}");

    // Members see only their own.
    let as_ada = t.token("ada", Role::Member, &[S]);
    let as_bob = t.token("bob", Role::Member, &[S]);
    let (status, mine) = invoice(&t, &as_ada, id).await;
    assert_eq!((status, mine["total_minor"].as_i64()), (200, Some(1200)), "{mine}");
    let (status, _) = invoice(&t, &as_bob, id).await;
    assert_eq!(status, 404);
    let (_, page) = t.get(&format!("{}/invoices", base()), Some(&as_bob)).await;
    assert_eq!(page["total"], 0, "{page}");
    let (_, page) = t.get(&format!("{}/invoices?status=finalized", base()), Some(&admin)).await;
    assert_eq!(page["total"], 1, "{page}");
    let (status, _) = t.post(&format!("{}/invoices/{id}/finalize", base()), &as_ada, json!(null)).await;
    assert_eq!(status, 400, "no key");
    let (status, _) = finalize(&t, &as_ada, id, "member-tries").await;
    assert_eq!(status, 403);
    t.stop().await;
}

#[actix_web::test]
async fn twenty_concurrent_finalizations_take_numbers_without_gaps() {
    let t = TestApp::spawn().await;
    let admin = space(&t).await;
    let settings = json!({"currency": "EUR", "tax_rates": [], "prepaid": false, "prepaid_minimum_minor": 0,
        "job_charge_policy": "actual", "invoice_number_pattern": "MC-{YYYY}-{NNNNN}"});
    let (status, body) = t.put(&format!("{}/settings", base()), &admin, settings.clone()).await;
    assert_eq!((status, body["credit_note_number_pattern"].as_str()), (200, Some("CN-{YYYY}-{NNNNN}")), "{body}");
    for bad in ["MC-{NNNNN}", "MC {YYYY}-{NNNNN}", "CN-{YYYY}-{NNNNN}"] {
        let mut s = settings.clone();
        s["invoice_number_pattern"] = json!(bad);
        let (status, answer) = t.put(&format!("{}/settings", base()), &admin, s).await;
        assert_eq!(status, 422, "{bad}: {answer}");
    }
    let ada = add_member(&t, "ada", "04:AD:A1:02", None).await;
    let mut drafts = Vec::new();
    for i in 0..20 {
        charge(&t, &admin, &ada, 100 + i, false).await;
        drafts.push(draft(&t, &admin, &ada).await["id"].as_str().unwrap().to_string());
    }
    let answers = join_all(drafts.iter().map(|d| finalize(&t, &admin, d, d))).await;
    assert!(answers.iter().all(|(s, _)| *s == 201), "{answers:?}");
    let mut numbers: Vec<String> = answers.iter().map(|(_, b)| b["number"].as_str().unwrap().to_string()).collect();
    numbers.sort();
    let expected: Vec<String> = (1..=20).map(|n| format!("MC-{}-{n:05}", year())).collect();
    assert_eq!(numbers, expected);
    let (status, check) = t.get(&format!("{}/integrity", base()), Some(&admin)).await;
    assert_eq!((status, check["ok"].as_bool(), check["documents"].as_i64()), (200, Some(true), Some(20)), "{check}");
    t.stop().await;
}

#[actix_web::test]
async fn payments_voids_and_credit_notes_follow_the_money() {
    let t = TestApp::spawn().await;
    let admin = space(&t).await;
    let ada = add_member(&t, "ada", "04:AD:A1:03", None).await;
    let big = charge(&t, &admin, &ada, 1000, true).await;
    let small = charge(&t, &admin, &ada, 500, false).await;
    let id = draft(&t, &admin, &ada).await["id"].as_str().unwrap().to_string();
    let pay = format!("{}/invoices/{id}/payments", base());
    let (status, answer) = keyed(&t, &pay, &admin, "early", json!({"method": "cash", "amount_minor": 1})).await;
    assert_eq!((status, answer["error_type"].as_str()), (409, Some("invoice_not_finalized")), "{answer}");
    let (status, _) = finalize(&t, &admin, &id, "fin").await;
    assert_eq!(status, 201);

    // 1700 due: cash 200, then more than is left is refused, a wallet with nothing in it too.
    let (status, p) =
        keyed(&t, &pay, &admin, "cash", json!({"method": "cash", "amount_minor": 200, "reference": "till 4"})).await;
    assert_eq!((status, p["method"].as_str()), (201, Some("cash")), "{p}");
    let (_, inv) = invoice(&t, &admin, &id).await;
    assert_eq!(
        (inv["payment_status"].as_str(), inv["balance_due_minor"].as_i64()),
        (Some("partially_paid"), Some(1500))
    );
    let (status, answer) =
        keyed(&t, &pay, &admin, "over", json!({"method": "bank_transfer", "amount_minor": 1501})).await;
    assert_eq!((status, answer["error_type"].as_str()), (409, Some("overpayment")), "{answer}");
    let (status, answer) = keyed(&t, &pay, &admin, "broke", json!({"method": "wallet", "amount_minor": 1500})).await;
    assert_eq!((status, answer["error_type"].as_str()), (409, Some("insufficient_credit")), "{answer}");
    let top_up = format!("/api/v1/makerspaces/{S}/members/{ada}/wallet/top-ups");
    let (status, _) = keyed(&t, &top_up, &admin, "funds", json!({"amount_minor": 2000})).await;
    assert_eq!(status, 201);
    let (status, p) = keyed(&t, &pay, &admin, "wallet", json!({"method": "wallet", "amount_minor": 1500})).await;
    assert_eq!((status, p["wallet_entry_id"].is_i64()), (201, true), "{p}");
    let (_, inv) = invoice(&t, &admin, &id).await;
    assert_eq!((inv["payment_status"].as_str(), inv["paid_minor"].as_i64()), (Some("paid"), Some(1700)), "{inv}");
    let (status, answer) = t.post(&format!("{}/invoices/{id}/void", base()), &admin, json!({"reason": "wrong"})).await;
    assert_eq!((status, answer["error_type"].as_str()), (409, Some("invoice_has_payments")), "{answer}");

    // A credit note of the big line, refunded to the wallet: 1200 back.
    let notes = format!("{}/invoices/{id}/credit-notes", base());
    let body = json!({"lines": [big["id"]], "refund_to": "wallet", "reason": "machine broke"});
    let (status, note) = keyed(&t, &notes, &admin, "cn-1", body.clone()).await;
    assert_eq!(status, 201, "{note}");
    assert_eq!(note["number"], json!(format!("CN-{}-00001", year())));
    assert_eq!((note["total_minor"].as_i64(), note["refunded_minor"].as_i64()), (Some(-1200), Some(1200)), "{note}");
    let (status, replay) = keyed(&t, &notes, &admin, "cn-1", body).await;
    assert_eq!((status, &replay["id"]), (201, &note["id"]));
    let (status, answer) =
        keyed(&t, &notes, &admin, "cn-2", json!({"lines": [big["id"]], "refund_to": "wallet", "reason": "again"}))
            .await;
    assert_eq!((status, answer["error_type"].as_str()), (409, Some("already_credited")), "{answer}");
    let (status, answer) =
        keyed(&t, &notes, &admin, "cn-3", json!({"lines": ["nope"], "refund_to": "wallet", "reason": "x"})).await;
    assert_eq!(status, 422, "{answer}");
    // The rest, to the original method (the last payment's: the wallet).
    let (status, rest) =
        keyed(&t, &notes, &admin, "cn-4", json!({"lines": null, "refund_to": "original_method", "reason": "closed"}))
            .await;
    assert_eq!(
        (status, rest["total_minor"].as_i64(), rest["refunded_minor"].as_i64()),
        (201, Some(-500), Some(500)),
        "{rest}"
    );
    let (status, answer) =
        keyed(&t, &notes, &admin, "cn-5", json!({"lines": null, "refund_to": "wallet", "reason": "more"})).await;
    assert_eq!((status, answer["error_type"].as_str()), (409, Some("already_credited")), "{answer}");
    let (_, inv) = invoice(&t, &admin, &id).await;
    assert_eq!(inv["credit_notes"].as_array().map(Vec::len), Some(2), "{inv}");
    assert_eq!(inv["credit_notes"][1]["lines"][0]["charge_id"], small["id"]);
    assert_eq!((inv["credited_minor"].as_i64(), inv["paid_minor"].as_i64()), (Some(-1700), Some(0)), "{inv}");
    let (_, wallet) = t.get(&format!("/api/v1/makerspaces/{S}/members/{ada}/wallet"), Some(&admin)).await;
    assert_eq!(wallet["balance_minor"].as_i64(), Some(2000 - 1500 + 1200 + 500), "{wallet}");

    // An unpaid invoice is voided, with its charges.
    let other = charge(&t, &admin, &ada, 300, false).await;
    let second = draft(&t, &admin, &ada).await["id"].as_str().unwrap().to_string();
    let (status, _) = finalize(&t, &admin, &second, "fin-2").await;
    assert_eq!(status, 201);
    let (status, void) =
        t.post(&format!("{}/invoices/{second}/void", base()), &admin, json!({"reason": "billed twice"})).await;
    assert_eq!(
        (status, void["status"].as_str(), void["payment_status"].as_str()),
        (200, Some("void"), Some("void")),
        "{void}"
    );
    let (_, charges) = t.get(&format!("{}/charges?status=void", base()), Some(&admin)).await;
    assert_eq!(charges["charges"][0]["id"], other["id"], "{charges}");
    let pay = format!("{}/invoices/{second}/payments", base());
    let (status, answer) = keyed(&t, &pay, &admin, "late", json!({"method": "cash", "amount_minor": 1})).await;
    assert_eq!((status, answer["error_type"].as_str()), (409, Some("invoice_void")), "{answer}");
    let (status, check) = t.get(&format!("{}/integrity", base()), Some(&admin)).await;
    assert_eq!((status, check["ok"].as_bool(), check["documents"].as_i64()), (200, Some(true), Some(4)), "{check}");
    t.stop().await;
}

/// Changes a frozen invoice line's amount with plain SQL, behind makrcave's back.
async fn tamper_line(t: &TestApp, invoice_id: &str) {
    let sql = "UPDATE billing_invoice_lines SET net_minor = net_minor - 1 WHERE invoice_id = $1";
    let changed = behind_the_back(t, sql, invoice_id).await;
    assert!(changed > 0, "the invoice has lines");
}

/// Runs one statement with one bound id straight on the test's database; the rows it changed.
pub(crate) async fn behind_the_back(t: &TestApp, sql: &'static str, id: &str) -> u64 {
    match database_kind() {
        DatabaseKind::Sqlite => {
            let mut db = sqlx::SqliteConnection::connect(&t.database.url).await.expect("open the SQLite file");
            sqlx::query(sql).bind(id).execute(&mut db).await.expect("update").rows_affected()
        }
        DatabaseKind::Postgres => {
            let mut db = sqlx::PgConnection::connect(&t.database.url).await.expect("connect to the test database");
            sqlx::query(sql).bind(id).execute(&mut db).await.expect("update").rows_affected()
        }
    }
}

#[actix_web::test]
async fn the_integrity_check_names_an_invoice_altered_with_sql() {
    let t = TestApp::spawn().await;
    let admin = space(&t).await;
    let ada = add_member(&t, "ada", "04:AD:A1:04", None).await;
    let mut invoices = Vec::new();
    for i in 0..3 {
        charge(&t, &admin, &ada, 1000 + i, true).await;
        let id = draft(&t, &admin, &ada).await["id"].as_str().unwrap().to_string();
        let (status, done) = finalize(&t, &admin, &id, &format!("fin-{i}")).await;
        assert_eq!(status, 201, "{done}");
        invoices.push(done);
    }
    let notes = format!("{}/invoices/{}/credit-notes", base(), invoices[2]["id"].as_str().unwrap());
    let (status, _) =
        keyed(&t, &notes, &admin, "cn", json!({"lines": null, "refund_to": "wallet", "reason": "goodwill"})).await;
    assert_eq!(status, 201);
    let (status, check) = t.get(&format!("{}/integrity", base()), Some(&admin)).await;
    assert_eq!((status, check["ok"].as_bool(), check["documents"].as_i64()), (200, Some(true), Some(4)), "{check}");
    let (status, _) = t.get(&format!("{}/integrity", base()), Some(&t.token("ada", Role::Member, &[S]))).await;
    assert_eq!(status, 403);

    tamper_line(&t, invoices[1]["id"].as_str().unwrap()).await;
    let (status, check) = t.get(&format!("{}/integrity", base()), Some(&admin)).await;
    assert_eq!(status, 200);
    assert_eq!(check["ok"], false, "{check}");
    assert_eq!(check["first_broken"]["kind"], "invoice", "{check}");
    assert_eq!(check["first_broken"]["id"], invoices[1]["id"], "{check}");
    assert_eq!(check["first_broken"]["number"], invoices[1]["number"], "{check}");
    assert!(check["reason"].as_str().unwrap().contains("content"), "{check}");
    t.stop().await;
}
