//! Invoices as PDFs (issue 14, item 4), read back with the real `pdftotext` (Debian's
//! poppler-utils; `scripts/lib.sh` installs it): the number, every line, the totals as
//! formatted, a member's name in Cyrillic and Polish letters; a long invoice over several
//! pages, each with the header and the totals on the last; only frozen lines; payments and
//! credit notes; a draft marked DRAFT; another member's invoice is 404.

use std::path::PathBuf;
use std::process::Command;

use makrcave::domain::access::Role;
use serde_json::{json, Value};

use crate::billing::{keyed, S};
use crate::billing_invoices::{base, behind_the_back, draft, finalize, space};
use crate::common::TestApp;

/// `pdftotext`: `MAKRCAVE_TEST_PDFTOTEXT`, else Debian's. Missing, the test fails: it is
/// never skipped.
fn pdftotext() -> PathBuf {
    if let Ok(path) = std::env::var("MAKRCAVE_TEST_PDFTOTEXT") {
        return PathBuf::from(path);
    }
    let debian = PathBuf::from("/usr/bin/pdftotext");
    assert!(
        debian.exists(),
        "the PDF tests need pdftotext (apt-get install poppler-utils, or set MAKRCAVE_TEST_PDFTOTEXT)"
    );
    debian
}

/// The PDF's text as `pdftotext -layout` extracts it; pages end with a form feed.
pub(crate) fn pdf_text(pdf: &[u8]) -> String {
    let file = tempfile::Builder::new().suffix(".pdf").tempfile().expect("a temporary file");
    std::fs::write(file.path(), pdf).expect("write the PDF");
    let out = Command::new(pdftotext()).arg("-layout").arg(file.path()).arg("-").output().expect("run pdftotext");
    assert!(out.status.success(), "pdftotext refused the PDF: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("pdftotext writes UTF-8")
}

/// `GET .../invoices/{id}.pdf`: status, Content-Type, Content-Disposition, body.
async fn download(t: &TestApp, token: &str, id: &str) -> (u16, String, String, Vec<u8>) {
    let res = t.http.get(t.url(&format!("{}/invoices/{id}.pdf", base()))).bearer_auth(token).send().await;
    let res = res.expect("GET the PDF");
    let header = |name: &str| res.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let (content_type, disposition) = (header("content-type"), header("content-disposition"));
    (res.status().as_u16(), content_type, disposition, res.bytes().await.expect("body").to_vec())
}

/// A member with a name in Cyrillic and Polish letters; their id.
async fn dmitry(t: &TestApp) -> String {
    let body = json!({"email": "dmitry@example.org", "first_name": "Дмитрий", "last_name": "Łukasiewicz-Zoë",
        "user_id": "dmitry"});
    let (status, m) = t.post(&format!("/api/v1/makerspaces/{S}/members"), &t.super_admin(), body).await;
    assert_eq!(status, 201, "{m}");
    m["id"].as_str().expect("id").to_string()
}

async fn charge(t: &TestApp, admin: &str, member: &str, description: &str, amount: i64, vat: bool) -> Value {
    let mut body = json!({"member_id": member, "kind": "manual", "description": description, "amount_minor": amount, "reason": "desk"});
    if vat {
        body["tax_rate_id"] = json!("vat");
    }
    let (status, c) = keyed(t, &format!("{}/charges", base()), admin, uuid::Uuid::new_v4().to_string(), body).await;
    assert_eq!(status, 201, "{c}");
    c
}

#[actix_web::test]
async fn a_finalized_invoice_reads_back_with_its_number_lines_and_totals() {
    let t = TestApp::spawn().await;
    let admin = space(&t).await;
    let member = dmitry(&t).await;
    charge(&t, &admin, &member, "Laser cutter: 42 minutes", 1260, true).await;
    let filament = charge(&t, &admin, &member, "PLA filament, 120 g", 600, false).await;
    let id = draft(&t, &admin, &member).await["id"].as_str().unwrap().to_string();

    // A draft renders too, marked, under its id.
    let (status, content_type, disposition, pdf) = download(&t, &admin, &id).await;
    assert_eq!((status, content_type.as_str()), (200, "application/pdf"));
    assert_eq!(disposition, format!("attachment; filename=\"draft-{id}.pdf\""));
    let text = pdf_text(&pdf);
    assert!(text.contains("DRAFT") && text.contains("none yet"), "{text}");

    let (status, done) = finalize(&t, &admin, &id, "pdf-fin").await;
    assert_eq!(status, 201, "{done}");
    let number = done["number"].as_str().unwrap().to_string();
    // The charge changed behind makrcave's back after finalizing: the PDF shows the frozen line.
    let changed =
        behind_the_back(&t, "UPDATE billing_charges SET description = 'CHANGED LATER' WHERE invoice_id = $1", &id)
            .await;
    assert_eq!(changed, 2);

    let (status, content_type, disposition, pdf) = download(&t, &admin, &id).await;
    assert_eq!((status, content_type.as_str()), (200, "application/pdf"));
    assert_eq!(disposition, format!("attachment; filename=\"{number}.pdf\""));
    assert!(pdf.len() < 60_000, "{} bytes", pdf.len());
    let text = pdf_text(&pdf);
    for expected in [
        number.as_str(),
        "Дмитрий Łukasiewicz-Zoë",
        "Laser cutter: 42 minutes",
        "PLA filament, 120 g",
        "vat 20%",
        "12.60",
        "2.52",
        "15.12",
        "Tax vat 20% on 12.60",
        "18.60 EUR",
        "2.52 EUR",
        "21.12 EUR",
        "Page 1 of 1",
    ] {
        assert!(text.contains(expected), "{expected:?} not in:\n{text}");
    }
    assert!(!text.contains("CHANGED LATER") && !text.contains("DRAFT"), "{text}");

    // Paid in part: the payment and the payment status show.
    let pay = format!("{}/invoices/{id}/payments", base());
    let (status, paid) =
        keyed(&t, &pay, &admin, "pdf-pay", json!({"method": "cash", "amount_minor": 1000, "reference": "till 3"}))
            .await;
    assert_eq!(status, 201, "{paid}");
    let text = pdf_text(&download(&t, &admin, &id).await.3);
    for expected in ["payment (cash)", "till 3", "10.00 EUR", "11.12 EUR", "partially paid"] {
        assert!(text.contains(expected), "{expected:?} not in:\n{text}");
    }

    // A credit note against it is listed, and what is due drops by it.
    let notes = format!("{}/invoices/{id}/credit-notes", base());
    let body = json!({"lines": [filament["id"]], "refund_to": "wallet", "reason": "filament was brittle"});
    let (status, note) = keyed(&t, &notes, &admin, "pdf-cn", body).await;
    assert_eq!(status, 201, "{note}");
    let text = pdf_text(&download(&t, &admin, &id).await.3);
    let note_number = note["number"].as_str().unwrap();
    for expected in ["Credit notes", note_number, "filament was brittle", "-6.00 EUR", "5.12 EUR", "partially paid"] {
        assert!(text.contains(expected), "{expected:?} not in:\n{text}");
    }

    // The member reads their own; another member gets 404, as for the JSON.
    let own = t.token("dmitry", Role::Member, &[S]);
    assert_eq!(download(&t, &own, &id).await.0, 200);
    let (status, _) = t
        .post(
            &format!("/api/v1/makerspaces/{S}/members"),
            &t.super_admin(),
            json!({"email": "eve@example.org", "first_name": "Eve", "last_name": "M", "user_id": "eve"}),
        )
        .await;
    assert_eq!(status, 201);
    let eve = t.token("eve", Role::Member, &[S]);
    let (status, _, _, body) = download(&t, &eve, &id).await;
    let body: Value = serde_json::from_slice(&body).expect("a JSON error");
    assert_eq!((status, body["error_type"].as_str()), (404, Some("not_found")), "{body}");
    let (status, _, _, body) = download(&t, &admin, "no-such-invoice").await;
    assert_eq!(status, 404, "{}", String::from_utf8_lossy(&body));
    t.stop().await;
}

#[actix_web::test]
async fn a_long_invoice_flows_over_pages_each_with_the_header() {
    let t = TestApp::spawn().await;
    let admin = space(&t).await;
    let member = dmitry(&t).await;
    for i in 0..120 {
        charge(&t, &admin, &member, &format!("Print job {i:03} on the Prusa"), 100 + i, true).await;
    }
    let id = draft(&t, &admin, &member).await["id"].as_str().unwrap().to_string();
    let (status, done) = finalize(&t, &admin, &id, "pdf-long").await;
    assert_eq!(status, 201, "{done}");
    let number = done["number"].as_str().unwrap();
    let total = format!(
        "{}.{:02} EUR",
        done["total_minor"].as_i64().unwrap() / 100,
        done["total_minor"].as_i64().unwrap() % 100
    );

    let text = pdf_text(&download(&t, &admin, &id).await.3);
    let pages: Vec<&str> = text.split('\u{c}').filter(|p| !p.trim().is_empty()).collect();
    assert!(pages.len() >= 3, "{} pages:\n{text}", pages.len());
    for (i, page) in pages.iter().enumerate() {
        assert!(page.contains(number) && page.contains("Дмитрий"), "page {}:\n{page}", i + 1);
        assert!(page.contains(&format!("Page {} of {}", i + 1, pages.len())), "page {}:\n{page}", i + 1);
        assert_eq!(page.contains("Balance due"), i + 1 == pages.len(), "totals on the last page only; page {}", i + 1);
    }
    for i in 0..120 {
        assert_eq!(text.matches(&format!("Print job {i:03} on the Prusa")).count(), 1, "line {i}");
    }
    assert!(pages.last().unwrap().contains(&total), "{total} on the last page:\n{}", pages.last().unwrap());
    t.stop().await;
}
