use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};
use proptest::prelude::*;

use super::*;
use crate::domain::billing::accounting::AccountingSettings;

fn at(day: u32, hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, day, hour, 0, 0).unwrap()
}

fn line(revenue: RevenueKind, net: i64, rate: Option<&str>, tax: i64) -> JournalLine {
    JournalLine { revenue, net_minor: net, tax_rate_id: rate.map(str::to_string), tax_minor: tax }
}

fn invoice(number: &str, issued: DateTime<Utc>, lines: Vec<JournalLine>) -> JournalDocument {
    JournalDocument {
        kind: DocumentKind::Invoice,
        number: number.into(),
        issued_at: issued,
        voided_at: None,
        member_id: "m-ada".into(),
        member_name: "Ada L".into(),
        currency: "EUR".into(),
        lines,
    }
}

fn payment(id: i64, invoice: &str, method: &str, amount: i64, when: DateTime<Utc>) -> JournalPayment {
    JournalPayment {
        id,
        invoice_number: invoice.into(),
        method: method.into(),
        amount_minor: amount,
        at: when,
        member_id: "m-ada".into(),
        member_name: "Ada L".into(),
        currency: "EUR".into(),
    }
}

fn november() -> Period {
    Period::parse("2026-11-01", "2026-12-01").unwrap()
}

/// `(account, debit, credit)` of each row.
fn postings(rows: &[JournalRow]) -> Vec<(&str, i64, i64)> {
    rows.iter().map(|r| (r.account.as_str(), r.debit_minor, r.credit_minor)).collect()
}

#[test]
fn an_invoice_debits_the_client_and_credits_revenue_per_kind_and_tax_per_rate() {
    let lines = vec![
        line(RevenueKind::MachineUse, 1000, Some("vat"), 200),
        line(RevenueKind::Jobs, 500, Some("vat"), 100),
        line(RevenueKind::MachineUse, 250, Some("reduced"), 14),
        line(RevenueKind::Other, -100, None, 0),
    ];
    let accounting =
        AccountingSettings { machine_use_account: "7061".into(), jobs_account: "7062".into(), ..Default::default() };
    let rows = journal(&november(), &[invoice("INV-2026-00001", at(3, 10), lines)], &[], &accounting);
    assert_eq!(
        postings(&rows),
        vec![
            ("411", 1964, 0),
            ("7061", 0, 1250),
            ("7062", 0, 500),
            // A discount credits revenue negatively: it debits it.
            ("706", 100, 0),
            ("4457reduced", 0, 14),
            ("4457vat", 0, 300),
        ]
    );
    assert!(rows.iter().all(|r| r.journal == "VT" && r.document_number == "INV-2026-00001"));
    assert!(rows.iter().all(|r| r.entry == EntryKind::Invoice && r.currency == "EUR"));
    assert_eq!(rows[0].label, "Invoice INV-2026-00001");
}

#[test]
fn a_credit_note_is_the_same_reversed_and_payments_go_through_the_method_account() {
    let mut note = invoice("CN-2026-00001", at(5, 9), vec![line(RevenueKind::Jobs, -500, Some("vat"), -100)]);
    note.kind = DocumentKind::CreditNote;
    let payments =
        [payment(7, "INV-2026-00001", "cash", 600, at(4, 9)), payment(8, "INV-2026-00001", "wallet", -600, at(5, 9))];
    let rows = journal(&november(), &[note], &payments, &AccountingSettings::default());
    assert_eq!(
        postings(&rows),
        vec![
            ("530", 600, 0),
            ("411", 0, 600),
            ("411", 0, 600),
            ("706", 500, 0),
            ("4457vat", 100, 0),
            ("4191", 0, 600),
            ("411", 600, 0),
        ]
    );
    let kinds: Vec<EntryKind> = rows.iter().map(|r| r.entry).collect();
    assert_eq!(kinds[0], EntryKind::Payment);
    assert_eq!(kinds[2], EntryKind::CreditNote);
    assert_eq!(kinds[6], EntryKind::Refund);
    assert_eq!(rows[0].journal, "BQ");
    assert_eq!(rows[0].label, "Payment 7 of INV-2026-00001 (cash)");
}

#[test]
fn a_void_keeps_its_original_entry_and_reverses_it_on_its_own_date() {
    let mut doc = invoice("INV-2026-00002", at(30, 23), vec![line(RevenueKind::Other, 300, None, 0)]);
    doc.voided_at = Some(Utc.with_ymd_and_hms(2026, 12, 2, 8, 0, 0).unwrap());
    let accounting = AccountingSettings::default();
    let before = journal(&november(), std::slice::from_ref(&doc), &[], &accounting);
    assert_eq!(postings(&before), vec![("411", 300, 0), ("706", 0, 300)]);
    let december = Period::parse("2026-12-01", "2027-01-01").unwrap();
    let after = journal(&december, std::slice::from_ref(&doc), &[], &accounting);
    assert_eq!(postings(&after), vec![("411", 0, 300), ("706", 300, 0)]);
    assert!(after.iter().all(|r| r.entry == EntryKind::Void && r.at == doc.voided_at.unwrap()));
    let both = journal(&Period::parse("2026-11-01", "2027-01-01").unwrap(), &[doc], &[], &accounting);
    assert_eq!(both.len(), 4);
    assert_eq!((both[0].entry, both[2].entry), (EntryKind::Invoice, EntryKind::Void));
}

#[test]
fn rows_come_by_date_then_document_then_time() {
    let docs = [
        invoice("INV-2", at(3, 9), vec![line(RevenueKind::Other, 2, None, 0)]),
        invoice("INV-1", at(3, 10), vec![line(RevenueKind::Other, 1, None, 0)]),
        invoice("INV-0", at(4, 8), vec![line(RevenueKind::Other, 5, None, 0)]),
    ];
    let payments = [payment(1, "INV-1", "bank_transfer", 1, at(3, 11))];
    let rows = journal(&november(), &docs, &payments, &AccountingSettings::default());
    let order: Vec<(&str, EntryKind)> = rows.iter().step_by(2).map(|r| (r.document_number.as_str(), r.entry)).collect();
    assert_eq!(
        order,
        [
            ("INV-1", EntryKind::Invoice),
            ("INV-1", EntryKind::Payment),
            ("INV-2", EntryKind::Invoice),
            ("INV-0", EntryKind::Invoice)
        ]
    );
}

#[test]
fn the_period_includes_from_and_excludes_to() {
    let docs = [
        invoice("INV-A", at(1, 0), vec![line(RevenueKind::Other, 1, None, 0)]),
        invoice(
            "INV-B",
            Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap(),
            vec![line(RevenueKind::Other, 2, None, 0)],
        ),
    ];
    let rows = journal(&november(), &docs, &[], &AccountingSettings::default());
    assert!(rows.iter().all(|r| r.document_number == "INV-A"), "{rows:?}");
    assert_eq!(rows.len(), 2);
}

#[test]
fn periods_are_dates_or_instants_in_order_and_bounded() {
    let p = Period::parse("2026-11-01T12:30:00+02:00", "2026-11-02").unwrap();
    assert_eq!(p.from, Utc.with_ymd_and_hms(2026, 11, 1, 10, 30, 0).unwrap());
    assert_eq!(
        (Period::bound_text(p.from), Period::bound_text(p.to)),
        ("20261101T103000Z".into(), "2026-11-02".into())
    );
    for (from, to) in [
        ("2026-11-02", "2026-11-01"),
        ("2026-11-01", "2026-11-01"),
        ("yesterday", "2026-11-01"),
        ("2026-11-01", "2026-13-01"),
        ("2020-01-01", "2026-01-02"),
        ("2026-11-01T00:00:00.0000000000000000000000Z", "2026-11-02"),
    ] {
        assert!(Period::parse(from, to).is_err(), "{from} {to}");
    }
    assert!(Period::parse("2021-01-01", "2026-01-01").is_ok());
}

#[test]
fn amounts_are_written_with_the_currency_digits() {
    assert_eq!(minor_text(1250, 2), "12.50");
    assert_eq!(minor_text(1250, 0), "1250");
    assert_eq!(minor_text(-5, 2), "-0.05");
    assert_eq!(minor_text(1, 3), "0.001");
    assert_eq!(minor_text(0, 2), "0.00");
    assert_eq!(minor_text(i64::MIN, 2), "-92233720368547758.08");
}

/// What tells one entry from another: its instant, document, kind and (a payment) label.
type EntryKey<'a> = (DateTime<Utc>, String, &'a str, String);

fn any_line() -> impl Strategy<Value = JournalLine> {
    let kind = proptest::sample::select(vec![
        RevenueKind::MachineUse,
        RevenueKind::Jobs,
        RevenueKind::PlanFees,
        RevenueKind::Other,
    ]);
    let rate = proptest::option::of(proptest::sample::select(vec!["vat".to_string(), "low".to_string()]));
    (kind, -100_000i64..1_000_000, rate, 0i64..200_000).prop_map(|(revenue, net, tax_rate_id, tax)| JournalLine {
        revenue,
        net_minor: net,
        tax_minor: if tax_rate_id.is_some() { tax } else { 0 },
        tax_rate_id,
    })
}

fn any_document() -> impl Strategy<Value = JournalDocument> {
    (any::<bool>(), 1u32..31, 0u32..24, proptest::option::of(1u32..31), proptest::collection::vec(any_line(), 0..8))
        .prop_map(|(credit, day, hour, void_day, lines)| {
            let sign = if credit { -1 } else { 1 };
            let mut doc = invoice(
                &format!("DOC-{day}-{hour}"),
                at(day, hour),
                lines
                    .into_iter()
                    .map(|l| JournalLine { net_minor: sign * l.net_minor, tax_minor: sign * l.tax_minor, ..l })
                    .collect(),
            );
            if credit {
                doc.kind = DocumentKind::CreditNote;
            } else {
                doc.voided_at = void_day.map(|d| at(d, 12));
            }
            doc
        })
}

fn any_payment() -> impl Strategy<Value = JournalPayment> {
    let method = proptest::sample::select(vec!["cash", "bank_transfer", "wallet", "stripe"]);
    (0i64..1000, method, -50_000i64..50_000, 1u32..31)
        .prop_map(|(id, method, amount, day)| payment(id, &format!("INV-{id}"), method, amount, at(day, 6)))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn every_entry_balances_and_the_client_carries_each_total(
        docs in proptest::collection::vec(any_document(), 0..12),
        payments in proptest::collection::vec(any_payment(), 0..12),
        from_day in 1u32..15,
        days in 1i64..40,
    ) {
        let from = at(from_day, 0);
        let period = Period { from, to: from + chrono::Duration::days(days) };
        let accounting = AccountingSettings::default();
        let rows = journal(&period, &docs, &payments, &accounting);
        let mut entries: BTreeMap<EntryKey, (i64, i64)> = BTreeMap::new();
        for r in &rows {
            prop_assert!(period.contains(r.at));
            prop_assert!(r.debit_minor >= 0 && r.credit_minor >= 0);
            prop_assert!((r.debit_minor == 0) != (r.credit_minor == 0), "one side per row: {r:?}");
            // A payment's entry is told apart from another of its invoice by its label.
            let payment_label = if matches!(r.entry, EntryKind::Payment | EntryKind::Refund) { r.label.clone() } else { String::new() };
            let sums = entries.entry((r.at, r.document_number.clone(), r.entry.as_str(), payment_label)).or_default();
            sums.0 += r.debit_minor;
            sums.1 += r.credit_minor;
        }
        for (entry, (debit, credit)) in &entries {
            prop_assert_eq!(debit, credit, "entry {:?} does not balance", entry);
        }
        // The client account carries each document's total: what its lines add up to.
        for doc in docs.iter().filter(|d| period.contains(d.issued_at) && d.voided_at.is_none_or(|v| !period.contains(v))) {
            let total: i64 = doc.lines.iter().map(|l| l.net_minor + if l.tax_rate_id.is_some() { l.tax_minor } else { 0 }).sum();
            let client: i64 = rows
                .iter()
                .filter(|r| r.document_number == doc.number && r.account == "411" && r.at == doc.issued_at && r.journal == "VT")
                .map(|r| r.debit_minor - r.credit_minor)
                .sum();
            let twins = docs.iter().filter(|d| d.number == doc.number).count();
            if twins == 1 {
                prop_assert_eq!(client, total);
            }
        }
        prop_assert_eq!(journal(&period, &docs, &payments, &accounting), rows, "deterministic");
    }
}
