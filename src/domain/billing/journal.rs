//! The accounting journal of a period: double-entry rows from finalized documents and
//! payments, as Fab-manager's accounting export and French/European practice write them.
//!
//! - an invoice: debit the client account with its total; credit a revenue account per line
//!   kind with the nets; credit the tax account of each rate with its tax;
//! - a credit note: the same, reversed (its amounts are negative, so the sides swap);
//! - a payment: debit the method's account (cash, bank, wallet, gateway), credit the client
//!   account; a refund is a negative payment, so the sides swap;
//! - a void invoice: its original entry on its finalization date, and the reversal on its void
//!   date. An export never rewrites the past: a period's journal is the same whenever it is
//!   exported.
//!
//! A signed amount lands on its side when positive and on the other side when negative (a
//! discount line credits revenue negatively: it debits it). Each entry balances by
//! construction: the client amount is the sum of the nets and taxes the other rows carry.

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};

use super::accounting::AccountingSettings;
use crate::domain::validate::Invalid;

/// The longest period one export covers (five years and a day of leap years).
pub const MAX_PERIOD_DAYS: i64 = 5 * 366;

/// `[from, to)`: `from` inclusive, `to` exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

/// The longest bound a query may give (an RFC 3339 instant with nanoseconds and an offset is 35).
pub const MAX_BOUND_LEN: usize = 40;

/// A bound as a query gives it: a date (midnight UTC) or an RFC 3339 instant.
fn parse_bound(field: &str, text: &str) -> Result<DateTime<Utc>, Invalid> {
    if text.len() > MAX_BOUND_LEN {
        return Err(Invalid::new(format!("{field} is at most {MAX_BOUND_LEN} characters")));
    }
    if let Ok(date) = text.parse::<NaiveDate>() {
        return Ok(Utc.from_utc_datetime(&date.and_hms_opt(0, 0, 0).expect("midnight exists")));
    }
    DateTime::parse_from_rfc3339(text)
        .map(|at| at.with_timezone(&Utc))
        .map_err(|_| Invalid::new(format!("{field} is a date (YYYY-MM-DD) or an RFC 3339 instant")))
}

impl Period {
    /// Reads `from` and `to`: `to` after `from`, at most [`MAX_PERIOD_DAYS`] apart.
    pub fn parse(from: &str, to: &str) -> Result<Period, Invalid> {
        let period = Period { from: parse_bound("from", from)?, to: parse_bound("to", to)? };
        if period.to <= period.from {
            return Err(Invalid::new("to must be after from (from is inclusive, to exclusive)"));
        }
        if period.to - period.from > Duration::days(MAX_PERIOD_DAYS) {
            return Err(Invalid::new(format!("a period is at most {MAX_PERIOD_DAYS} days")));
        }
        Ok(period)
    }

    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        self.from <= at && at < self.to
    }

    /// A bound as a file name says it: the date at midnight, else the compact instant.
    pub fn bound_text(at: DateTime<Utc>) -> String {
        if at.time() == chrono::NaiveTime::MIN {
            at.format("%Y-%m-%d").to_string()
        } else {
            at.format("%Y%m%dT%H%M%S%.fZ").to_string().replace('.', "")
        }
    }
}

/// Which revenue account a line's net goes to: by the kind of the charge it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RevenueKind {
    MachineUse,
    Jobs,
    PlanFees,
    Other,
}

impl RevenueKind {
    /// A charge's `kind`: `session`, `job`, plan fees (`plan`, `plan_fee`, `membership`),
    /// else (manual lines, discounts) other revenue.
    pub fn of_charge(kind: &str) -> RevenueKind {
        match kind {
            "session" => Self::MachineUse,
            "job" => Self::Jobs,
            "plan" | "plan_fee" | "membership" => Self::PlanFees,
            _ => Self::Other,
        }
    }

    fn account(self, accounting: &AccountingSettings) -> &str {
        match self {
            Self::MachineUse => &accounting.machine_use_account,
            Self::Jobs => &accounting.jobs_account,
            Self::PlanFees => &accounting.plan_fees_account,
            Self::Other => &accounting.other_account,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::MachineUse => "Machine use",
            Self::Jobs => "Jobs and material",
            Self::PlanFees => "Plan fees",
            Self::Other => "Other",
        }
    }
}

/// A document's line as the journal needs it (amounts as frozen, negative on a credit note).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalLine {
    pub revenue: RevenueKind,
    pub net_minor: i64,
    pub tax_rate_id: Option<String>,
    pub tax_minor: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentKind {
    Invoice,
    CreditNote,
}

/// A finalized invoice or a credit note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalDocument {
    pub kind: DocumentKind,
    pub number: String,
    /// An invoice's finalization, a credit note's issue.
    pub issued_at: DateTime<Utc>,
    /// When a void invoice was voided.
    pub voided_at: Option<DateTime<Utc>>,
    pub member_id: String,
    pub member_name: String,
    pub currency: String,
    pub lines: Vec<JournalLine>,
}

/// A payment (positive) or a refund (negative) of an invoice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalPayment {
    pub id: i64,
    pub invoice_number: String,
    /// cash | bank_transfer | wallet | a gateway's name.
    pub method: String,
    pub amount_minor: i64,
    pub at: DateTime<Utc>,
    pub member_id: String,
    pub member_name: String,
    pub currency: String,
}

/// What made an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum EntryKind {
    Invoice,
    CreditNote,
    Void,
    Payment,
    Refund,
}

impl EntryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Invoice => "invoice",
            Self::CreditNote => "credit_note",
            Self::Void => "void",
            Self::Payment => "payment",
            Self::Refund => "refund",
        }
    }
}

/// One row of the journal: one side of one account of one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalRow {
    pub at: DateTime<Utc>,
    pub journal: String,
    pub account: String,
    pub document_number: String,
    pub label: String,
    pub debit_minor: i64,
    pub credit_minor: i64,
    pub currency: String,
    pub member_id: String,
    pub member_name: String,
    pub entry: EntryKind,
}

/// An entry being written: its header and rows.
struct Entry<'a> {
    at: DateTime<Utc>,
    kind: EntryKind,
    journal: &'a str,
    number: &'a str,
    member_id: &'a str,
    member_name: &'a str,
    currency: &'a str,
    /// Ties between entries of one instant and number: the payment's id.
    tie: i64,
    rows: Vec<JournalRow>,
}

impl Entry<'_> {
    /// A signed amount on `account`: `debit` says its side when positive. Zero writes nothing.
    fn post(&mut self, account: &str, label: String, amount: i64, debit: bool) {
        if amount == 0 {
            return;
        }
        let (debit_minor, credit_minor) = if (amount > 0) == debit { (amount.abs(), 0) } else { (0, amount.abs()) };
        self.rows.push(JournalRow {
            at: self.at,
            journal: self.journal.to_string(),
            account: account.to_string(),
            document_number: self.number.to_string(),
            label,
            debit_minor,
            credit_minor,
            currency: self.currency.to_string(),
            member_id: self.member_id.to_string(),
            member_name: self.member_name.to_string(),
            entry: self.kind,
        });
    }
}

/// The rows of one document's entry: the client, each revenue kind, each tax rate. `sign` is
/// -1 for a reversal (a void).
fn document_entry<'a>(
    doc: &'a JournalDocument,
    kind: EntryKind,
    at: DateTime<Utc>,
    sign: i64,
    accounting: &'a AccountingSettings,
) -> Entry<'a> {
    let mut entry = Entry {
        at,
        kind,
        journal: &accounting.sales_journal,
        number: &doc.number,
        member_id: &doc.member_id,
        member_name: &doc.member_name,
        currency: &doc.currency,
        tie: 0,
        rows: Vec::new(),
    };
    let what = match kind {
        EntryKind::CreditNote => "Credit note",
        EntryKind::Void => "Void of invoice",
        _ => "Invoice",
    };
    let mut revenue: Vec<(RevenueKind, i64)> = Vec::new();
    let mut taxes: Vec<(&str, i64)> = Vec::new();
    for line in &doc.lines {
        match revenue.iter_mut().find(|(k, _)| *k == line.revenue) {
            Some((_, net)) => *net += line.net_minor,
            None => revenue.push((line.revenue, line.net_minor)),
        }
        if let Some(rate) = &line.tax_rate_id {
            match taxes.iter_mut().find(|(r, _)| r == rate) {
                Some((_, tax)) => *tax += line.tax_minor,
                None => taxes.push((rate, line.tax_minor)),
            }
        }
    }
    revenue.sort();
    taxes.sort();
    // The client owes what the other rows credit, so the entry balances whatever the lines.
    let client = revenue.iter().map(|(_, n)| n).sum::<i64>() + taxes.iter().map(|(_, t)| t).sum::<i64>();
    let label = format!("{what} {}", doc.number);
    entry.post(&accounting.client_account, label.clone(), sign * client, true);
    for (kind, net) in revenue {
        entry.post(kind.account(accounting), format!("{label} - {}", kind.label()), sign * net, false);
    }
    for (rate, tax) in taxes {
        entry.post(&accounting.tax_account_of(rate), format!("{label} - tax {rate}"), sign * tax, false);
    }
    entry
}

/// The journal of `period`: every entry dated in it, in a fixed order (date, document, then
/// instant and line), so that exporting one period twice gives the same rows.
pub fn journal(
    period: &Period,
    documents: &[JournalDocument],
    payments: &[JournalPayment],
    accounting: &AccountingSettings,
) -> Vec<JournalRow> {
    let mut entries: Vec<Entry> = Vec::new();
    for doc in documents {
        let kind = match doc.kind {
            DocumentKind::Invoice => EntryKind::Invoice,
            DocumentKind::CreditNote => EntryKind::CreditNote,
        };
        if period.contains(doc.issued_at) {
            entries.push(document_entry(doc, kind, doc.issued_at, 1, accounting));
        }
        if let Some(voided) = doc.voided_at.filter(|at| period.contains(*at)) {
            entries.push(document_entry(doc, EntryKind::Void, voided, -1, accounting));
        }
    }
    for p in payments.iter().filter(|p| period.contains(p.at)) {
        let kind = if p.amount_minor < 0 { EntryKind::Refund } else { EntryKind::Payment };
        let mut entry = Entry {
            at: p.at,
            kind,
            journal: &accounting.payments_journal,
            number: &p.invoice_number,
            member_id: &p.member_id,
            member_name: &p.member_name,
            currency: &p.currency,
            tie: p.id,
            rows: Vec::new(),
        };
        let what = if kind == EntryKind::Refund { "Refund" } else { "Payment" };
        let label = format!("{what} {} of {} ({})", p.id, p.invoice_number, p.method);
        entry.post(accounting.method_account(&p.method), label.clone(), p.amount_minor, true);
        entry.post(&accounting.client_account, label, p.amount_minor, false);
        entries.push(entry);
    }
    // Date, then document (an invoice's payments follow it within a day), then the instant.
    entries.sort_by_key(|e| (e.at.date_naive(), e.number, e.at, e.kind, e.tie));
    entries.into_iter().flat_map(|e| e.rows).collect()
}

/// An amount in minor units as decimal text in the currency's unit: `1250` with 2 digits is
/// `12.50`, with 0 digits `1250`; `-5` with 2 digits is `-0.05`.
pub fn minor_text(amount: i64, digits: u32) -> String {
    if digits == 0 {
        return amount.to_string();
    }
    let unit = 10u64.pow(digits);
    let abs = amount.unsigned_abs();
    let sign = if amount < 0 { "-" } else { "" };
    format!("{sign}{}.{:0width$}", abs / unit, abs % unit, width = digits as usize)
}

#[cfg(test)]
mod tests;
