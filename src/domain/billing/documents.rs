//! Invoices and credit notes as documents: their frozen content, its canonical form and
//! hashes (the integrity chain), the tax per rate, and an invoice's payment status.
//!
//! The chain (as French law asks of invoicing software, and Fab-manager does): each
//! finalized document stores `content_sha256` = SHA-256 of the canonical JSON of its content,
//! and `chain_sha256` = SHA-256 of the previous document's `chain_sha256` (hex, empty for
//! the first) followed by its own `content_sha256` (hex). Changing any stored line, total
//! or number changes the content hash; removing or reordering a document breaks the links.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

/// An instant as the canonical form writes it: RFC 3339, UTC, microseconds (what both
/// databases store, so a stored instant reads back to the same text).
pub fn stamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Lowercase hex of SHA-256.
pub fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

/// One line of a document, as frozen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DocumentLine {
    pub charge_id: String,
    pub description: String,
    /// When the use happened (invoice lines; a credit note's line has none).
    pub usage_at: Option<String>,
    pub net_minor: i64,
    pub tax_rate_id: Option<String>,
    pub tax_percent: Option<String>,
    pub tax_minor: i64,
    pub total_minor: i64,
}

/// The tax of one rate over a document's lines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct TaxTotal {
    pub tax_rate_id: Option<String>,
    /// As decimal text (`20`, `5.5`).
    pub tax_percent: Option<String>,
    /// The lines' net at this rate, and their tax.
    pub net_minor: i64,
    pub tax_minor: i64,
}

/// Lines summed per tax rate (and percent: a rate's percent may change between charges),
/// in a fixed order: by rate id, then percent, untaxed lines first.
pub fn tax_totals(lines: &[DocumentLine]) -> Vec<TaxTotal> {
    let mut totals: Vec<TaxTotal> = Vec::new();
    for line in lines {
        match totals.iter_mut().find(|t| t.tax_rate_id == line.tax_rate_id && t.tax_percent == line.tax_percent) {
            Some(t) => {
                t.net_minor += line.net_minor;
                t.tax_minor += line.tax_minor;
            }
            None => totals.push(TaxTotal {
                tax_rate_id: line.tax_rate_id.clone(),
                tax_percent: line.tax_percent.clone(),
                net_minor: line.net_minor,
                tax_minor: line.tax_minor,
            }),
        }
    }
    totals.sort_by(|a, b| (&a.tax_rate_id, &a.tax_percent).cmp(&(&b.tax_rate_id, &b.tax_percent)));
    totals
}

/// Net, tax and total of lines.
pub fn sums(lines: &[DocumentLine]) -> (i64, i64, i64) {
    lines.iter().fold((0, 0, 0), |(n, t, g), l| (n + l.net_minor, t + l.tax_minor, g + l.total_minor))
}

/// What a document's hash covers, in a fixed field order (serde writes struct fields in
/// declaration order, so the JSON text is canonical).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DocumentContent {
    /// `invoice` or `credit_note`.
    pub kind: &'static str,
    pub number: String,
    /// When it was finalized (an invoice) or issued (a credit note).
    pub issued_at: String,
    /// The invoice a credit note corrects.
    pub invoice_number: Option<String>,
    pub period_from: Option<String>,
    pub period_to: Option<String>,
    pub member_id: String,
    pub currency: String,
    pub lines: Vec<DocumentLine>,
    pub taxes: Vec<TaxTotal>,
    pub net_minor: i64,
    pub tax_minor: i64,
    pub total_minor: i64,
}

impl DocumentContent {
    pub fn canonical(&self) -> String {
        serde_json::to_string(self).expect("document content is plain data")
    }

    pub fn sha256(&self) -> String {
        sha256_hex(self.canonical().as_bytes())
    }
}

/// The chain link after `previous` (empty for a space's first document).
pub fn chain_sha256(previous: &str, content_sha256: &str) -> String {
    sha256_hex(format!("{previous}{content_sha256}").as_bytes())
}

/// A finalized document as stored: its content rebuilt from its stored rows, and the hashes
/// stored with it.
#[derive(Debug, Clone)]
pub struct StoredDocument {
    pub kind: &'static str,
    pub id: String,
    pub number: String,
    pub seq: i64,
    pub content: DocumentContent,
    pub content_sha256: String,
    pub chain_sha256: String,
}

/// The first link of a chain that does not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenLink {
    pub kind: &'static str,
    pub number: String,
    pub id: String,
    pub reason: String,
}

/// Recomputes a space's chain over its documents in finalization order, against the head
/// the space stored (`last_seq`, `last_sha256`). `Ok(n)`: all `n` documents hold.
pub fn verify_chain(docs: &[StoredDocument], last_seq: i64, last_sha256: &str) -> Result<usize, BrokenLink> {
    let mut previous = String::new();
    for (i, doc) in docs.iter().enumerate() {
        let broken =
            |reason: String| BrokenLink { kind: doc.kind, number: doc.number.clone(), id: doc.id.clone(), reason };
        let expected_seq = i as i64 + 1;
        if doc.seq != expected_seq {
            return Err(broken(format!("it is document {} of the chain; document {expected_seq} is missing", doc.seq)));
        }
        if doc.content.sha256() != doc.content_sha256 {
            return Err(broken("its stored content no longer matches its content_sha256".into()));
        }
        if chain_sha256(&previous, &doc.content_sha256) != doc.chain_sha256 {
            return Err(broken("its chain_sha256 does not follow from the previous document".into()));
        }
        previous.clone_from(&doc.chain_sha256);
    }
    if docs.len() as i64 != last_seq || previous != last_sha256 {
        let reason = format!("the chain's head counts {last_seq} documents; {} are stored", docs.len());
        return Err(match docs.last() {
            Some(doc) => BrokenLink { kind: doc.kind, number: doc.number.clone(), id: doc.id.clone(), reason },
            None => BrokenLink { kind: "invoice", number: String::new(), id: String::new(), reason },
        });
    }
    Ok(docs.len())
}

/// Where an invoice's money stands (separate from its status).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentStatus {
    Open,
    PartiallyPaid,
    Paid,
}

impl PaymentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::PartiallyPaid => "partially_paid",
            Self::Paid => "paid",
        }
    }
}

/// `due`: the invoice's total less what its credit notes took off; `paid`: payments less
/// refunds. Nothing due is paid.
pub fn payment_status(due: i64, paid: i64) -> PaymentStatus {
    if paid >= due {
        PaymentStatus::Paid
    } else if paid > 0 {
        PaymentStatus::PartiallyPaid
    } else {
        PaymentStatus::Open
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(id: &str, net: i64, rate: Option<&str>, tax: i64) -> DocumentLine {
        DocumentLine {
            charge_id: id.into(),
            description: format!("line {id}"),
            usage_at: None,
            net_minor: net,
            tax_rate_id: rate.map(str::to_string),
            tax_percent: rate.map(|_| "20".to_string()),
            tax_minor: tax,
            total_minor: net + tax,
        }
    }

    fn doc(seq: i64, previous: &str, lines: Vec<DocumentLine>) -> StoredDocument {
        let (net, tax, total) = sums(&lines);
        let content = DocumentContent {
            kind: "invoice",
            number: format!("INV-2026-{seq:05}"),
            issued_at: "2026-12-01T00:00:00.000000Z".into(),
            invoice_number: None,
            period_from: Some("2026-11-01".into()),
            period_to: Some("2026-11-30".into()),
            member_id: "m".into(),
            currency: "EUR".into(),
            taxes: tax_totals(&lines),
            lines,
            net_minor: net,
            tax_minor: tax,
            total_minor: total,
        };
        let content_sha256 = content.sha256();
        StoredDocument {
            kind: "invoice",
            id: format!("inv-{seq}"),
            number: content.number.clone(),
            seq,
            chain_sha256: chain_sha256(previous, &content_sha256),
            content_sha256,
            content,
        }
    }

    #[test]
    fn taxes_are_summed_per_rate_in_a_fixed_order() {
        let lines = [line("a", 100, Some("vat"), 20), line("b", 50, None, 0), line("c", 200, Some("vat"), 40)];
        let totals = tax_totals(&lines);
        assert_eq!(totals.len(), 2);
        assert_eq!((totals[0].tax_rate_id.as_deref(), totals[0].net_minor), (None, 50));
        assert_eq!((totals[1].net_minor, totals[1].tax_minor), (300, 60));
        assert_eq!(sums(&lines), (350, 60, 410));
    }

    #[test]
    fn a_chain_holds_until_a_line_changes() {
        let first = doc(1, "", vec![line("a", 100, Some("vat"), 20)]);
        let second = doc(2, &first.chain_sha256, vec![line("b", 300, None, 0)]);
        let head = second.chain_sha256.clone();
        assert_eq!(verify_chain(&[first.clone(), second.clone()], 2, &head), Ok(2));

        let mut altered = first.clone();
        altered.content.lines[0].net_minor = 1;
        let broken = verify_chain(&[altered, second.clone()], 2, &head).unwrap_err();
        assert_eq!(broken.id, "inv-1");
        assert!(broken.reason.contains("content"), "{broken:?}");

        let gap = verify_chain(std::slice::from_ref(&second), 2, &head).unwrap_err();
        assert_eq!(gap.id, "inv-2");
        let lost_last = verify_chain(std::slice::from_ref(&first), 2, &head).unwrap_err();
        assert!(lost_last.reason.contains("head"), "{lost_last:?}");
    }

    #[test]
    fn payment_status_follows_what_is_due() {
        assert_eq!(payment_status(100, 0), PaymentStatus::Open);
        assert_eq!(payment_status(100, 40), PaymentStatus::PartiallyPaid);
        assert_eq!(payment_status(100, 100), PaymentStatus::Paid);
        assert_eq!(payment_status(0, 0), PaymentStatus::Paid);
    }
}
