use chrono::{NaiveDate, TimeZone, Utc};

use super::fonts::{Fonts, Style};
use super::layout::{lay_out, Item, Page, MAX_DESCRIPTION_LINES};
use super::*;

fn line(i: usize, description: String) -> DocumentLine {
    DocumentLine {
        charge_id: format!("c{i}"),
        description,
        usage_at: Some(format!("2026-11-{:02}T10:00:00.000000Z", i % 28 + 1)),
        net_minor: 1000,
        tax_rate_id: Some("vat".into()),
        tax_percent: Some("20".into()),
        tax_minor: 200,
        total_minor: 1200,
    }
}

fn sheet(lines: usize) -> InvoiceSheet {
    let lines: Vec<DocumentLine> = (0..lines).map(|i| line(i, format!("Laser cutter, session {i}"))).collect();
    let n = lines.len() as i64;
    InvoiceSheet {
        issuer: "Makers of Łódź".into(),
        issuer_details: vec!["ul. Piotrkowska 1, Łódź".into()],
        member_name: "Zoë Łukasiewicz".into(),
        member_email: Some("zoe@example.org".into()),
        status: SheetStatus::Finalized,
        number: Some("INV-2026-00007".into()),
        invoice_id: "inv-1".into(),
        dated: Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap(),
        voided: None,
        period_from: NaiveDate::from_ymd_opt(2026, 11, 1).unwrap(),
        period_to: NaiveDate::from_ymd_opt(2026, 11, 30).unwrap(),
        currency: "EUR".into(),
        lines,
        net_minor: 1000 * n,
        tax_minor: 200 * n,
        total_minor: 1200 * n,
        credited_minor: 0,
        paid_minor: 0,
        balance_due_minor: 1200 * n,
        payment_status: "open".into(),
        payments: Vec::new(),
        credit_notes: Vec::new(),
    }
}

fn text_of(page: &Page) -> String {
    page.texts().collect::<Vec<_>>().join("\n")
}

#[test]
fn fonts_load_and_cover_the_scripts() {
    let fonts = Fonts::load();
    for name in ["Zoë Łukasiewicz", "Дмитрий Шостакович", "Ωμέγα", "€ £ ¥ ₹ – “ ” …"]
    {
        assert_eq!(fonts.printable(name), name);
        assert!(fonts.get(Style::Regular).width(name, 10.0) > 0.0);
    }
    // Neither face has CJK: a question mark stands in, a tab becomes a space.
    assert_eq!(fonts.printable("a\t你"), "a ?");
}

#[test]
fn many_lines_flow_onto_pages_that_each_repeat_the_header() {
    let sheet = sheet(120);
    let pages = lay_out(&sheet, &Fonts::load());
    assert!(pages.len() >= 3, "{} pages", pages.len());
    let n = pages.len();
    for (i, page) in pages.iter().enumerate() {
        let text = text_of(page);
        assert!(text.contains("Invoice number: INV-2026-00007"), "page {i}: {text}");
        assert!(text.contains("Zoë Łukasiewicz") && text.contains("Makers of Łódź"), "page {i}");
        assert!(text.contains(&format!("Page {} of {n}", i + 1)), "page {i}");
        assert_eq!(text.contains("Balance due"), i + 1 == n, "totals only on the last page; page {i}");
        for item in &page.items {
            if let Item::Text(t) = item {
                assert!(t.y >= 40.0 && t.y <= 842.0, "inside the page: {t:?}");
            }
        }
    }
    let all: Vec<String> = pages.iter().map(text_of).collect();
    for i in 0..120 {
        let description = format!("Laser cutter, session {i}");
        assert_eq!(all.iter().map(|p| p.lines().filter(|l| *l == description).count()).sum::<usize>(), 1);
    }
    let last = all.last().unwrap();
    assert!(last.contains("1440.00 EUR") && last.contains("Tax vat 20% on 1200.00"), "{last}");
}

#[test]
fn long_descriptions_wrap_and_are_cut() {
    let mut sheet = sheet(0);
    let long = "Sheet of birch plywood cut along a very long and winding path ".repeat(12);
    let word = "x".repeat(300);
    sheet.lines = vec![line(1, long.clone()), line(2, word)];
    let pages = lay_out(&sheet, &Fonts::load());
    assert_eq!(pages.len(), 1);
    let texts: Vec<&str> = pages[0].texts().collect();
    let cut: Vec<&&str> = texts.iter().filter(|t| t.starts_with("Sheet of birch") || t.contains("plywood")).collect();
    assert!(cut.len() <= MAX_DESCRIPTION_LINES && cut.len() > 1, "{cut:?}");
    assert!(cut.last().unwrap().ends_with('…'), "{cut:?}");
    let broken = texts.iter().filter(|t| t.starts_with('x')).count();
    assert!((2..=MAX_DESCRIPTION_LINES).contains(&broken), "a long word is broken: {texts:?}");
}

#[test]
fn a_draft_and_a_void_invoice_are_marked() {
    let mut draft = sheet(2);
    draft.status = SheetStatus::Draft;
    draft.number = None;
    let text = text_of(&lay_out(&draft, &Fonts::load())[0]);
    assert!(text.contains("DRAFT") && text.contains("none yet"), "{text}");
    assert_eq!(draft.file_name(), "draft-inv-1.pdf");

    let mut void = sheet(2);
    void.status = SheetStatus::Void;
    void.voided = Some((Utc.with_ymd_and_hms(2026, 12, 2, 9, 0, 0).unwrap(), "billed twice".into()));
    let text = text_of(&lay_out(&void, &Fonts::load())[0]);
    assert!(text.contains("VOID since 2026-12-02: billed twice"), "{text}");
}

#[test]
fn amounts_use_the_currency_decimals() {
    let mut yen = sheet(1);
    yen.currency = "JPY".into();
    let text = text_of(&lay_out(&yen, &Fonts::load())[0]);
    assert!(text.contains("1200 JPY") && !text.contains("12.00"), "{text}");
    let mut dinar = sheet(1);
    dinar.currency = "BHD".into();
    let text = text_of(&lay_out(&dinar, &Fonts::load())[0]);
    assert!(text.contains("1.200 BHD"), "{text}");
}

#[test]
fn the_pdf_embeds_a_subset_with_a_unicode_map_and_is_the_same_each_time() {
    let mut sheet = sheet(120);
    sheet.member_name = "Дмитрий Zoë".into();
    let pdf = render(&sheet);
    assert!(pdf.starts_with(b"%PDF-"));
    let text = String::from_utf8_lossy(&pdf);
    for needle in ["/ToUnicode", "/FontFile2", "/Identity-H", "MKRCVA+DejaVuSans"] {
        assert!(text.contains(needle), "{needle}");
    }
    assert!(pdf.len() < 80_000, "{} bytes: only the glyphs used are embedded", pdf.len());
    assert_eq!(render(&sheet), pdf);
    assert_eq!(sheet.file_name(), "INV-2026-00007.pdf");
}

#[test]
fn a_number_with_a_slash_makes_a_safe_file_name() {
    let mut sheet = sheet(0);
    sheet.number = Some("MC/2026/00001".into());
    assert_eq!(sheet.file_name(), "MC-2026-00001.pdf");
}
