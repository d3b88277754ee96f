//! The Billing view in a real headless Chromium: an admin sees a member's open charge, makes a
//! draft of it (a double click makes one), finalizes it (its number appears), and the PDF its
//! link points to, fetched with the page's own token, reads back with `pdftotext`; the
//! integrity chain shows as holding, then as an alarm once a frozen line is altered with SQL.
//! The member sees their wallet and the invoice.

use std::time::Duration;

use makrcave::domain::access::Role;
use serde_json::{json, Value};

use crate::billing::{add_member, keyed, S};
use crate::billing_invoices::{base, behind_the_back, space};
use crate::billing_pdf::pdf_text;
use crate::browser::{csp_violations, Driver};
use crate::common::{eventually, TestApp};

/// The Billing view as the test sees it.
const READ_BILLING: &str = r#"
    const texts = (css) => [...document.querySelectorAll(css)].map((e) => e.textContent);
    const rows = (id) => [...document.querySelectorAll(`#${id} li[data-invoice-id]`)].map((li) => ({
      id: li.dataset.invoiceId, status: li.dataset.status, number: li.querySelector('.number').textContent,
      text: li.textContent, pdf: li.querySelector('a.pdf') ? li.querySelector('a.pdf').href : null,
      buttons: [...li.querySelectorAll('button')].map((b) => b.className) }));
    return { visible: !document.getElementById('billing').hidden,
             admin: !document.getElementById('billing-admin').hidden,
             member: !document.getElementById('billing-member').hidden,
             problem: document.getElementById('billing-error').textContent,
             open: [...document.querySelectorAll('#open-charges tbody tr')].map((tr) => ({
               charge: tr.dataset.chargeId, text: tr.textContent,
               buttons: [...tr.querySelectorAll('button')].map((b) => b.className) })),
             drafts: rows('drafts'), invoices: rows('invoices'),
             integrity: document.getElementById('integrity').textContent,
             integrity_ok: document.getElementById('integrity').dataset.ok || null,
             balance: document.getElementById('wallet-balance').textContent,
             wallet: texts('#wallet-rows li') };
"#;

/// Fetches the URL with the token the page signed in with, as its PDF link does: the status,
/// the Content-Type and the bytes.
fn fetch_as_the_page(url: &str) -> String {
    format!(
        r#"return fetch({url:?}, {{ headers: {{ Authorization: `Bearer ${{localStorage.getItem("makrcave.token")}}` }} }})
             .then(async (r) => ({{ status: r.status, type: r.headers.get("content-type"),
                                    bytes: Array.from(new Uint8Array(await r.arrayBuffer())) }}));"#
    )
}

async fn wait_for(driver: &Driver, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    eventually(Duration::from_secs(20), what, || async {
        let page = driver.script(READ_BILLING).await;
        check(&page).then_some(page)
    })
    .await
}

#[actix_web::test]
async fn an_admin_makes_finalizes_and_downloads_an_invoice_on_the_billing_view() {
    let t = TestApp::spawn().await;
    let admin = space(&t).await;
    let ada = add_member(&t, "ada", "04:AD:A1:77", None).await;
    let (status, top_up) = keyed(
        &t,
        &format!("/api/v1/makerspaces/{S}/members/{ada}/wallet/top-ups"),
        &admin,
        "tb-1",
        json!({"amount_minor": 2500}),
    )
    .await;
    assert_eq!(status, 201, "{top_up}");
    let charge = json!({"member_id": ada, "kind": "manual", "description": "Laser cutter, 30 minutes",
        "amount_minor": 1500, "tax_rate_id": "vat", "reason": "desk"});
    let (status, charge) = keyed(&t, &format!("{}/charges", base()), &admin, "tb-2", charge).await;
    assert_eq!(status, 201, "{charge}");

    let driver = Driver::start().await;
    driver.goto(&format!("{}/?makerspace={S}&view=billing#token={admin}", t.base)).await;
    let page = wait_for(&driver, "the admin's Billing view with the open charge", |p| {
        p["visible"] == true && p["admin"] == true && p["open"].as_array().is_some_and(|o| o.len() == 1)
    })
    .await;
    let open = &page["open"][0];
    assert_eq!(open["charge"], charge["id"], "{page}");
    let text = open["text"].as_str().unwrap();
    assert!(
        text.contains("ada M") && text.contains("Laser cutter, 30 minutes") && text.contains("18.00 EUR"),
        "{page}"
    );
    assert_eq!(page["integrity"], "Integrity chain holds: 0 finalized documents checked.", "{page}");

    // A double click makes one draft: the button is disabled and sends one Idempotency-Key.
    driver
        .script(
            "const b = document.querySelector('#open-charges button.make-draft'); b.click(); b.click(); return null;",
        )
        .await;
    let page = wait_for(&driver, "the draft listed, the charge no longer open", |p| {
        p["drafts"].as_array().is_some_and(|d| d.len() == 1) && p["open"].as_array().is_some_and(Vec::is_empty)
    })
    .await;
    let draft = page["drafts"][0].clone();
    assert_eq!((draft["number"].as_str(), draft["buttons"][0].as_str()), (Some("Draft"), Some("finalize")), "{page}");
    let (_, drafts) = t.get(&format!("{}/invoices?status=draft", base()), Some(&admin)).await;
    assert_eq!(drafts["total"], 1, "one draft for two clicks: {drafts}");

    driver.click("#drafts button.finalize").await;
    let number = format!("INV-{}-00001", chrono::Datelike::year(&chrono::Utc::now()));
    let page = wait_for(&driver, "the finalized invoice with its number", |p| {
        p["invoices"].as_array().is_some_and(|i| i.iter().any(|r| r["number"] == number.as_str()))
            && p["drafts"].as_array().is_some_and(Vec::is_empty)
    })
    .await;
    let row = page["invoices"].as_array().unwrap().iter().find(|r| r["number"] == number.as_str()).unwrap().clone();
    assert_eq!(row["id"], draft["id"], "{page}");
    assert!(row["text"].as_str().unwrap().contains("18.00 EUR"), "{row}");
    let href = row["pdf"].as_str().expect("a PDF link").to_string();
    assert!(href.ends_with(&format!("/billing/invoices/{}.pdf", row["id"].as_str().unwrap())), "{href}");
    let page = wait_for(&driver, "the chain holding one document", |p| {
        p["integrity_ok"] == "true" && p["integrity"] == "Integrity chain holds: 1 finalized documents checked."
    })
    .await;
    assert_eq!(page["problem"], "", "{page}");

    // The link's PDF, fetched with the page's token, and with the test's client.
    let fetched = driver.script(&fetch_as_the_page(&href)).await;
    assert_eq!(
        (fetched["status"].as_u64(), fetched["type"].as_str()),
        (Some(200), Some("application/pdf")),
        "{}",
        fetched["status"]
    );
    let bytes: Vec<u8> = fetched["bytes"]
        .as_array()
        .expect("bytes")
        .iter()
        .map(|b| u8::try_from(b.as_u64().unwrap()).unwrap())
        .collect();
    let text = pdf_text(&bytes);
    assert!(
        text.contains(&number) && text.contains("Laser cutter, 30 minutes") && text.contains("18.00 EUR"),
        "{text}"
    );
    let res = t.http.get(&href).bearer_auth(&admin).send().await.expect("GET the PDF");
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.bytes().await.expect("body").to_vec(), bytes, "the same PDF for the same invoice");

    let console = driver.console().await;
    assert_eq!(csp_violations(&console), Vec::<&String>::new(), "the whole console: {console:#?}");

    // A frozen line altered behind makrcave's back: the view raises the alarm, naming it.
    let sql = "UPDATE billing_invoice_lines SET net_minor = net_minor + 1 WHERE invoice_id = $1";
    assert_eq!(behind_the_back(&t, sql, row["id"].as_str().unwrap()).await, 1);
    driver.goto("about:blank").await;
    driver.goto(&format!("{}/?makerspace={S}&view=billing#token={admin}", t.base)).await;
    let page = wait_for(&driver, "the integrity alarm", |p| p["integrity_ok"] == "false").await;
    let alarm = page["integrity"].as_str().unwrap();
    assert!(alarm.starts_with(&format!("Integrity alarm: invoice {number} is broken")), "{page}");

    // The member: their wallet and their invoice, with its PDF.
    let as_ada = t.token("ada", Role::Member, &[S]);
    driver.goto("about:blank").await;
    driver.goto(&format!("{}/?makerspace={S}&view=billing#token={as_ada}", t.base)).await;
    let page = wait_for(&driver, "the member's wallet and invoice", |p| {
        p["member"] == true && p["balance"] == "25.00 EUR" && p["invoices"].as_array().is_some_and(|i| i.len() == 1)
    })
    .await;
    assert_eq!(
        (page["admin"].as_bool(), page["invoices"][0]["number"].as_str()),
        (Some(false), Some(number.as_str())),
        "{page}"
    );
    assert!(page["wallet"][0].as_str().unwrap().contains("25.00 EUR"), "{page}");
    assert!(page["invoices"][0]["pdf"].as_str().is_some(), "{page}");
    t.stop().await;
}
