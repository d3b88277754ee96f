//! Billing's exports: the accounting journal (balanced double entries with the space's
//! accounts and columns, exact period bounds, the same bytes twice) and revenue by month,
//! machine and material, from a session, a job and manual charges invoiced, paid, credited
//! and voided through the API.

use std::collections::BTreeMap;
use std::time::Duration;

use makrcave::domain::access::Role;
use serde_json::{json, Value};

use crate::billing::{add_member, keyed, S};
use crate::common::{eventually, TestApp, TestOptions};

fn base() -> String {
    format!("/api/v1/makerspaces/{S}/billing")
}

/// What the scenario made: the documents as the API answered them.
struct Books {
    admin: String,
    /// Ada's invoice (session, job, manual line), paid in cash, then its manual line credited.
    invoice: Value,
    credit_note: Value,
    /// Bob's invoice, voided.
    voided: Value,
    session_charge: Value,
    job_charge: Value,
}

const ACCOUNTING: &str = r#"{"client_account": "4110", "machine_use_account": "7061", "jobs_account": "7062",
    "tax_accounts": [{"tax_rate_id": "vat", "account": "445711"}],
    "columns": ["date", "journal", "account", "document_number", "label", "debit", "credit", "currency",
                "member_name", "entry"]}"#;

fn settings(accounting: Value) -> Value {
    json!({"currency": "EUR", "tax_rates": [{"id": "vat", "name": "VAT", "percent": 20}], "prepaid": false,
        "prepaid_minimum_minor": 0, "job_charge_policy": "actual", "accounting": accounting})
}

async fn charges_of(t: &TestApp, admin: &str, member: &str) -> Vec<Value> {
    let (status, page) = t.get(&format!("{}/charges?member_id={member}", base()), Some(admin)).await;
    assert_eq!(status, 200, "{page}");
    page["charges"].as_array().expect("charges").clone()
}

/// A session on the machine `cnc` through the kiosk: charged by the sweep a moment later.
async fn session_charge(t: &TestApp, admin: &str, member: &str, card: &str) -> Value {
    let (status, kiosk) = t.post(&format!("/api/v1/makerspaces/{S}/kiosks"), admin, json!({"name": "desk"})).await;
    assert_eq!(status, 201, "{kiosk}");
    let device = kiosk["token"].as_str().expect("device token").to_string();
    for action in ["unlock", "lock"] {
        let body = json!({"equipment_id": "cnc", "card_uid": card});
        let (status, answer) =
            t.send(reqwest::Method::POST, &format!("/api/v1/kiosk/{action}"), Some(&device), Some(body)).await;
        assert_eq!(status, 200, "{answer}");
    }
    eventually(Duration::from_secs(10), "the session's charge", || async {
        charges_of(t, admin, member).await.into_iter().find(|c| c["kind"] == "session")
    })
    .await
}

/// A finished job of `user` on `mk4` (PLA), charged as production charges it when a machine
/// reports the end: the job is submitted through the API; its end is written here, since no
/// printer runs it.
async fn job_charge(t: &TestApp, admin: &str, member: &str, user: &str) -> Value {
    let table = json!({
        "materials": [{"material": "PLA", "price_per_gram": 0.05, "density_g_cm3": 1.24}],
        "machines": {"3d_printer": {"rate_per_hour": 2, "fill_fraction": 0.3, "deposition_cm3_per_hour": 10}},
        "setup_fee": 1, "qualities": {"draft": 0.8, "standard": 1, "fine": 1.5}
    });
    let (status, body) = t.put(&format!("/api/v1/makerspaces/{S}/price-table"), admin, table).await;
    assert_eq!(status, 200, "{body}");
    let token = t.token(user, Role::Member, &[S]);
    let (status, submitted) =
        crate::job_queue::submit(t, &token, S, "part.gcode", &crate::job_queue::sliced_gcode("40"), None).await;
    assert_eq!(status, 201, "{submitted}");
    let id = submitted["jobs"][0]["id"].as_str().expect("job id");
    let svc = t.app().state().services.clone();
    let mut job = svc.store.get_job(S, id).await.expect("read the job").expect("the job");
    let now = chrono::Utc::now();
    job.status = makrcave::domain::job_lifecycle::JobStatus::Done;
    job.equipment_id = Some("mk4".into());
    job.requirements.material = Some("PLA".into());
    job.started_at = Some(now - chrono::Duration::minutes(30));
    job.finished_at = Some(now);
    job.progress = Some(100.0);
    assert!(makrcave::services::billing::charge_job(&svc, &job).await.expect("charged"));
    charges_of(t, admin, member).await.into_iter().find(|c| c["kind"] == "job").expect("the job's charge")
}

async fn manual(t: &TestApp, admin: &str, member: &str, amount: i64) -> Value {
    let body = json!({"member_id": member, "kind": "manual", "description": "Key card", "amount_minor": amount,
        "tax_rate_id": "vat", "reason": "sold at the desk"});
    let (status, c) = keyed(t, &format!("{}/charges", base()), admin, uuid::Uuid::new_v4().to_string(), body).await;
    assert_eq!(status, 201, "{c}");
    c
}

/// Drafts and finalizes an invoice of the member's open charges.
async fn finalized_invoice(t: &TestApp, admin: &str, member: &str) -> Value {
    let body = json!({"member_id": member, "period_from": "2000-01-01", "period_to": "2100-12-31"});
    let (status, draft) =
        keyed(t, &format!("{}/invoices", base()), admin, uuid::Uuid::new_v4().to_string(), body).await;
    assert_eq!(status, 201, "{draft}");
    let path = format!("{}/invoices/{}/finalize", base(), draft["id"].as_str().unwrap());
    let (status, done) = keyed(t, &path, admin, uuid::Uuid::new_v4().to_string(), json!(null)).await;
    assert_eq!(status, 201, "{done}");
    done
}

async fn books(t: &TestApp) -> Books {
    t.makerspace(S).await;
    t.machine(S, "cnc", json!({"type": "cnc_machine"})).await;
    t.machine(S, "mk4", json!({"type": "3d_printer"})).await;
    let p = t.publisher().await;
    p.publish(&format!("makrcave/{S}/cnc/status"), "online").await;
    t.wait_state(S, "cnc", "online", |s| s["state"] == "idle").await;
    let admin = t.token("boss", Role::MakerspaceAdmin, &[S]);
    let accounting: Value = serde_json::from_str(ACCOUNTING).unwrap();
    let (status, body) = t.put(&format!("{}/settings", base()), &admin, settings(accounting.clone())).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["accounting"]["client_account"], "4110", "{body}");
    assert_eq!(body["accounting"]["sales_journal"], "VT", "a default fills what is not written: {body}");
    let price = json!({"rate_per_hour": 12.5, "billing_unit": "minute", "minimum_minor": 100, "flat_fee_minor": 0,
        "tax_rate_id": "vat"});
    let (status, body) = t.put(&format!("/api/v1/makerspaces/{S}/equipment/cnc/price"), &admin, price).await;
    assert_eq!(status, 200, "{body}");

    let ada = add_member(t, "ada", "04:AD:E0:01", None).await;
    let root = t.super_admin();
    let (status, bob) = t
        .post(
            &format!("/api/v1/makerspaces/{S}/members"),
            &root,
            json!({"email": "bob@example.org", "first_name": "=HYPERLINK(\"http://x\")", "last_name": "B"}),
        )
        .await;
    assert_eq!(status, 201, "{bob}");
    let bob = bob["id"].as_str().unwrap().to_string();

    let session_charge = session_charge(t, &admin, &ada, "04:AD:E0:01").await;
    let job_charge = job_charge(t, &admin, &ada, "ada").await;
    let key_card = manual(t, &admin, &ada, 1000).await;
    let invoice = finalized_invoice(t, &admin, &ada).await;
    let total = invoice["total_minor"].as_i64().unwrap();
    let id = invoice["id"].as_str().unwrap();
    let pay = format!("{}/invoices/{id}/payments", base());
    let (status, paid) = keyed(t, &pay, &admin, "cash", json!({"method": "cash", "amount_minor": total})).await;
    assert_eq!(status, 201, "{paid}");
    let notes = format!("{}/invoices/{id}/credit-notes", base());
    let body = json!({"lines": [key_card["id"]], "refund_to": "original_method", "reason": "card never issued"});
    let (status, credit_note) = keyed(t, &notes, &admin, "cn", body).await;
    assert_eq!((status, credit_note["refunded_minor"].as_i64()), (201, Some(1200)), "{credit_note}");

    manual(t, &admin, &bob, 300).await;
    let voided = finalized_invoice(t, &admin, &bob).await;
    let void = format!("{}/invoices/{}/void", base(), voided["id"].as_str().unwrap());
    let (status, voided) = t.post(&void, &admin, json!({"reason": "billed the wrong member"})).await;
    assert_eq!(status, 200, "{voided}");
    Books { admin, invoice, credit_note, voided, session_charge, job_charge }
}

/// The export's status, headers and body.
async fn export(t: &TestApp, token: &str, query: &[(&str, &str)]) -> (u16, reqwest::header::HeaderMap, String) {
    let res = t
        .http
        .get(t.url(&format!("{}/export", base())))
        .bearer_auth(token)
        .query(query)
        .send()
        .await
        .expect("GET export");
    (res.status().as_u16(), res.headers().clone(), res.text().await.expect("body"))
}

/// Rows of a CSV as maps from its header's names.
fn rows(csv_text: &str) -> (Vec<String>, Vec<BTreeMap<String, String>>) {
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    let header: Vec<String> = reader.headers().expect("a header").iter().map(str::to_string).collect();
    let rows = reader
        .records()
        .map(|r| header.iter().cloned().zip(r.expect("a row").iter().map(str::to_string)).collect())
        .collect();
    (header, rows)
}

/// `12.50` as 1250 (EUR).
fn minor(text: &str) -> i64 {
    let (units, cents) = text.split_once('.').expect("two decimals");
    assert_eq!(cents.len(), 2, "{text}");
    let sign = if units.starts_with('-') { -1 } else { 1 };
    sign * (units.trim_start_matches('-').parse::<i64>().unwrap() * 100 + cents.parse::<i64>().unwrap())
}

/// Debits less credits of the rows that match.
fn net(rows: &[BTreeMap<String, String>], keep: impl Fn(&BTreeMap<String, String>) -> bool) -> i64 {
    rows.iter().filter(|r| keep(r)).map(|r| minor(&r["debit"]) - minor(&r["credit"])).sum()
}

fn today() -> (String, String) {
    let today = chrono::Utc::now().date_naive();
    (today.to_string(), (today + chrono::Duration::days(1)).to_string())
}

#[actix_web::test]
async fn the_journal_balances_per_document_with_the_space_accounts_and_is_the_same_twice() {
    let t = TestApp::spawn_with(TestOptions { heartbeat_timeout_s: Some(3600), ..Default::default() }).await;
    let b = books(&t).await;
    let (from, to) = today();
    let (status, headers, text) = export(&t, &b.admin, &[("from", &from), ("to", &to)]).await;
    assert_eq!(status, 200, "{text}");
    assert!(headers["content-type"].to_str().unwrap().starts_with("text/csv"));
    assert_eq!(
        headers["content-disposition"].to_str().unwrap(),
        format!("attachment; filename=\"journal-{S}-{from}-{to}.csv\"")
    );
    let (header, rows) = rows(&text);
    assert_eq!(
        header,
        [
            "date",
            "journal",
            "account",
            "document_number",
            "label",
            "debit",
            "credit",
            "currency",
            "member_name",
            "entry"
        ]
    );

    // Every entry balances: each document's (and each payment's) debits equal its credits.
    let mut entries: BTreeMap<(String, String, String), i64> = BTreeMap::new();
    for r in &rows {
        let payment =
            if ["payment", "refund"].contains(&r["entry"].as_str()) { r["label"].clone() } else { String::new() };
        *entries.entry((r["document_number"].clone(), r["entry"].clone(), payment)).or_default() +=
            minor(&r["debit"]) - minor(&r["credit"]);
        assert_eq!((r["date"].as_str(), r["currency"].as_str()), (from.as_str(), "EUR"), "{r:?}");
    }
    assert_eq!(entries.len(), 6, "invoice, payment, credit note, refund, invoice, void: {entries:?}");
    assert!(entries.values().all(|sum| *sum == 0), "{entries:?}");

    // The client account carries the invoices' totals, the credit note's and the void's.
    let number = |doc: &Value| doc["number"].as_str().unwrap().to_string();
    let client = |doc: &str, entry: &str| {
        net(&rows, |r| r["account"] == "4110" && r["document_number"] == doc && r["entry"] == entry)
    };
    let (ada_total, bob_total) =
        (b.invoice["total_minor"].as_i64().unwrap(), b.voided["total_minor"].as_i64().unwrap());
    assert_eq!(client(&number(&b.invoice), "invoice"), ada_total);
    assert_eq!(client(&number(&b.voided), "invoice"), bob_total);
    assert_eq!(net(&rows, |r| r["account"] == "4110" && r["entry"] == "invoice"), ada_total + bob_total);
    assert_eq!(client(&number(&b.invoice), "credit_note"), 0, "a credit note has its own number");
    assert_eq!(client(&number(&b.credit_note), "credit_note"), b.credit_note["total_minor"].as_i64().unwrap());
    assert_eq!(client(&number(&b.voided), "void"), -bob_total, "a void reverses its invoice, on its own date");
    assert_eq!(client(&number(&b.invoice), "payment"), -ada_total, "paid in cash");
    assert_eq!(net(&rows, |r| r["account"] == "530"), ada_total - 1200, "cash in, then the refund out");

    // The space's accounts: revenue per kind of line, tax per rate.
    let session_net = b.session_charge["net_minor"].as_i64().unwrap();
    let job_net = b.job_charge["net_minor"].as_i64().unwrap();
    assert!(session_net > 0 && job_net > 0, "{} {}", b.session_charge, b.job_charge);
    let on_invoice = |account: &str| net(&rows, |r| r["account"] == account && r["entry"] == "invoice");
    assert_eq!(on_invoice("7061"), -session_net);
    assert_eq!(on_invoice("7062"), -job_net);
    assert_eq!(on_invoice("706"), -1000 - 300);
    assert_eq!(on_invoice("445711"), -b.invoice["tax_minor"].as_i64().unwrap() - 60);
    let accounts: std::collections::BTreeSet<&str> = rows.iter().map(|r| r["account"].as_str()).collect();
    assert_eq!(accounts.into_iter().collect::<Vec<_>>(), ["4110", "445711", "530", "706", "7061", "7062"]);
    assert!(rows
        .iter()
        .all(|r| r["journal"] == if r["entry"].contains("payment") || r["entry"] == "refund" { "BQ" } else { "VT" }));

    // A name a spreadsheet would run is written as text.
    let bob_name = rows.iter().find(|r| r["document_number"] == number(&b.voided)).unwrap()["member_name"].clone();
    assert_eq!(bob_name, "'=HYPERLINK(\"http://x\") B");

    // The same period again: the same bytes.
    let (_, _, again) = export(&t, &b.admin, &[("from", &from), ("to", &to)]).await;
    assert_eq!(again, text);

    // Bounds are exact: `from` inclusive, `to` exclusive, to the microsecond.
    let finalized = b.invoice["finalized_at"].as_str().unwrap();
    let (_, _, before) = export(&t, &b.admin, &[("from", &from), ("to", finalized)]).await;
    assert!(!rows_of(&before).iter().any(|r| r["document_number"] == number(&b.invoice) && r["entry"] == "invoice"));
    let (_, _, after) = export(&t, &b.admin, &[("from", finalized), ("to", &to)]).await;
    assert!(rows_of(&after).iter().any(|r| r["document_number"] == number(&b.invoice) && r["entry"] == "invoice"));
    let (_, _, tomorrow) = export(&t, &b.admin, &[("from", &to), ("to", "2100-01-01")]).await;
    assert_eq!(tomorrow.lines().count(), 1, "only the header: {tomorrow}");

    // Bad periods and callers.
    for query in [
        [("from", to.as_str()), ("to", from.as_str())],
        [("from", "2020-01-01"), ("to", "2026-01-02")],
        [("from", "yesterday"), ("to", to.as_str())],
    ] {
        let (status, _, body) = export(&t, &b.admin, &query).await;
        assert_eq!(status, 422, "{query:?}: {body}");
        assert!(body.contains("\"error_type\""), "{body}");
    }
    let (status, _, _) = export(&t, &t.token("ada", Role::Member, &[S]), &[]).await;
    assert_eq!(status, 403);
    let (status, _, _) = export(&t, &t.token("other", Role::MakerspaceAdmin, &["elsewhere"]), &[]).await;
    assert_eq!(status, 404);
    t.stop().await;
}

fn rows_of(text: &str) -> Vec<BTreeMap<String, String>> {
    rows(text).1
}

#[actix_web::test]
async fn accounting_settings_refuse_unknown_columns_and_accounts() {
    let t = TestApp::spawn().await;
    t.makerspace(S).await;
    let admin = t.token("boss", Role::MakerspaceAdmin, &[S]);
    let (status, body) = t.get(&format!("{}/settings", base()), Some(&admin)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["accounting"]["columns"][3], "document_number", "the defaults: {body}");
    assert_eq!(
        (body["accounting"]["client_account"].as_str(), body["accounting"]["wallet_account"].as_str()),
        (Some("411"), Some("4191"))
    );
    for bad in [
        json!({"columns": ["date", "amount"]}),
        json!({"columns": ["date", "date"]}),
        json!({"columns": []}),
        json!({"client_account": "=1+1"}),
        json!({"tax_accounts": [{"tax_rate_id": "gst", "account": "4457"}]}),
        json!({"client": "411"}),
    ] {
        let (status, answer) = t.put(&format!("{}/settings", base()), &admin, settings(bad.clone())).await;
        assert_eq!((status, answer["error_type"].as_str()), (422, Some("validation_error")), "{bad}: {answer}");
    }
    let (_, body) = t.get(&format!("{}/settings", base()), Some(&admin)).await;
    assert_eq!(body["accounting"]["client_account"], "411", "nothing changed: {body}");
    // An export with the default columns, in a currency without decimals.
    let (status, _) = t
        .put(
            &format!("{}/settings", base()),
            &admin,
            json!({"currency": "JPY", "tax_rates": [],
        "prepaid": false, "prepaid_minimum_minor": 0, "job_charge_policy": "actual"}),
        )
        .await;
    assert_eq!(status, 200);
    let ada = add_member(&t, "ada", "04:AD:E0:02", None).await;
    let body =
        json!({"member_id": ada, "kind": "manual", "description": "Key card", "amount_minor": 1250, "reason": "desk"});
    let (status, _) = keyed(&t, &format!("{}/charges", base()), &admin, "jpy", body).await;
    assert_eq!(status, 201);
    finalized_invoice(&t, &admin, &ada).await;
    let (from, to) = today();
    let (status, _, text) = export(&t, &admin, &[("from", &from), ("to", &to)]).await;
    assert_eq!(status, 200, "{text}");
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("date,journal,account,document_number,label,debit,credit,currency"));
    let first: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!((first[1], first[2], first[5], first[6], first[7]), ("VT", "411", "1250", "0", "JPY"), "{text}");
    t.stop().await;
}

#[actix_web::test]
async fn revenue_by_month_machine_and_material_sums_to_invoices_less_credit_notes() {
    let t = TestApp::spawn_with(TestOptions { heartbeat_timeout_s: Some(3600), ..Default::default() }).await;
    let b = books(&t).await;
    let (from, to) = today();
    let expected_net = b.invoice["net_minor"].as_i64().unwrap() + b.credit_note["net_minor"].as_i64().unwrap();
    let expected_total = b.invoice["total_minor"].as_i64().unwrap() + b.credit_note["total_minor"].as_i64().unwrap();
    let mut by_key = BTreeMap::new();
    for by in ["month", "machine", "material"] {
        let path = format!("{}/revenue?from={from}&to={to}&by={by}", base());
        let (status, report) = t.get(&path, Some(&b.admin)).await;
        assert_eq!((status, report["currency"].as_str()), (200, Some("EUR")), "{report}");
        let rows = report["rows"].as_array().unwrap();
        let sum = |field: &str| rows.iter().map(|r| r[field].as_i64().unwrap()).sum::<i64>();
        assert_eq!((sum("net_minor"), sum("total_minor")), (expected_net, expected_total), "{by}: {report}");
        by_key.insert(by, report);
    }
    let month = &by_key["month"]["rows"];
    assert_eq!(month.as_array().unwrap().len(), 1);
    assert_eq!((month[0]["key"].as_str(), month[0]["documents"].as_i64()), (Some(&from[..7]), Some(2)), "{month}");
    let machine = by_key["machine"]["rows"].as_array().unwrap();
    let net_of =
        |rows: &[Value], key: Value| rows.iter().find(|r| r["key"] == key).map(|r| r["net_minor"].as_i64().unwrap());
    assert_eq!(net_of(machine, json!("cnc")), b.session_charge["net_minor"].as_i64());
    assert_eq!(net_of(machine, json!("mk4")), b.job_charge["net_minor"].as_i64());
    // The key card was invoiced and credited: it nets to nothing, on no machine.
    assert_eq!(net_of(machine, Value::Null), Some(0), "{machine:?}");
    assert_eq!(machine.last().unwrap()["label"], "unknown");
    let material = by_key["material"]["rows"].as_array().unwrap();
    assert_eq!(net_of(material, json!("PLA")), b.job_charge["net_minor"].as_i64(), "{material:?}");

    // As CSV, by the query or by the Accept header.
    let res = t
        .http
        .get(t.url(&format!("{}/revenue?from={from}&to={to}&by=machine", base())))
        .bearer_auth(&b.admin)
        .header("Accept", "text/csv")
        .send()
        .await
        .unwrap();
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    let csv_text = res.text().await.unwrap();
    let (header, csv_rows) = rows(&csv_text);
    assert_eq!(header, ["key", "label", "net_minor", "tax_minor", "total_minor", "documents", "currency"]);
    let csv_net: i64 = csv_rows.iter().map(|r| r["net_minor"].parse::<i64>().unwrap()).sum();
    assert_eq!((csv_rows.len(), csv_net), (machine.len(), expected_net));
    let res = t
        .http
        .get(t.url(&format!("{}/revenue?from={from}&to={to}&format=csv", base())))
        .bearer_auth(&b.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let text = res.text().await.unwrap();
    assert!(text.starts_with("key,label,net_minor"), "{text}");

    // Nothing before today; bad input is 422; a member is refused.
    let long_ago = (chrono::Utc::now().date_naive() - chrono::Duration::days(1000)).to_string();
    let (status, report) = t.get(&format!("{}/revenue?from={long_ago}&to={from}", base()), Some(&b.admin)).await;
    assert_eq!((status, report["rows"].as_array().map(Vec::len)), (200, Some(0)), "{report}");
    for bad in ["by=week", &format!("from={to}&to={from}"), "format=xml"] {
        let (status, answer) = t.get(&format!("{}/revenue?{bad}", base()), Some(&b.admin)).await;
        assert_eq!(status, 422, "{bad}: {answer}");
    }
    let (status, _) = t.get(&format!("{}/revenue", base()), Some(&t.token("ada", Role::Member, &[S]))).await;
    assert_eq!(status, 403);
    t.stop().await;
}
