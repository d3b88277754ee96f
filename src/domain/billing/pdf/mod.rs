//! An invoice as a PDF (issue 14, item 4): a pure function from what the invoice says to the
//! bytes of an A4 document, with no I/O. A finalized invoice is drawn from its frozen lines
//! and totals only; a draft is marked DRAFT (it has no number yet), a void one VOID.
//!
//! - [`layout`]: the pages: the header every page repeats, the lines table (descriptions
//!   wrap, then are cut), credit notes, payments, and the totals, which close the last page.
//! - [`writer`]: the pages as PDF objects, with the glyphs used from the embedded faces as a
//!   TrueType subset and a ToUnicode map, so that text copies and `pdftotext` extracts.
//! - [`fonts`]: the embedded faces (DejaVu Sans, Latin, Greek and Cyrillic).

pub mod fonts;
pub mod layout;
pub mod writer;

#[cfg(test)]
mod tests;

use chrono::{DateTime, NaiveDate, Utc};

use super::documents::DocumentLine;

/// Where the invoice is in its life, as the sheet shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SheetStatus {
    Draft,
    Finalized,
    Void,
}

/// A payment (positive) or a refund (negative) shown on the invoice.
#[derive(Debug, Clone)]
pub struct SheetPayment {
    pub at: DateTime<Utc>,
    /// `payment` or `refund`.
    pub kind: String,
    /// `cash`, `bank_transfer`, `wallet`, or a gateway's name.
    pub method: String,
    pub reference: Option<String>,
    pub amount_minor: i64,
}

/// A credit note against the invoice.
#[derive(Debug, Clone)]
pub struct SheetCreditNote {
    pub number: String,
    pub at: DateTime<Utc>,
    pub reason: String,
    /// Negative.
    pub total_minor: i64,
}

/// Everything an invoice's PDF shows, gathered by the caller (the service reads the stored
/// invoice, its space and member); amounts in minor units of `currency`.
#[derive(Debug, Clone)]
pub struct InvoiceSheet {
    /// The makerspace's name, and lines under it (its location, when it has one).
    pub issuer: String,
    pub issuer_details: Vec<String>,
    pub member_name: String,
    pub member_email: Option<String>,
    pub status: SheetStatus,
    /// Given at finalization: none for a draft.
    pub number: Option<String>,
    pub invoice_id: String,
    /// Finalized at (a finalized or void invoice), or the draft's creation.
    pub dated: DateTime<Utc>,
    pub voided: Option<(DateTime<Utc>, String)>,
    pub period_from: NaiveDate,
    pub period_to: NaiveDate,
    pub currency: String,
    /// Oldest use first.
    pub lines: Vec<DocumentLine>,
    pub net_minor: i64,
    pub tax_minor: i64,
    pub total_minor: i64,
    /// What credit notes took off (0 or negative).
    pub credited_minor: i64,
    /// Payments less refunds.
    pub paid_minor: i64,
    pub balance_due_minor: i64,
    /// `open`, `partially_paid`, `paid` or `void`.
    pub payment_status: String,
    pub payments: Vec<SheetPayment>,
    pub credit_notes: Vec<SheetCreditNote>,
}

impl InvoiceSheet {
    /// The file name a download gets: the number (`INV-2026-00001.pdf`; a `/` of a number
    /// pattern becomes `-`), or `draft-{id}.pdf` before there is one.
    pub fn file_name(&self) -> String {
        let stem = match &self.number {
            Some(number) => number.clone(),
            None => format!("draft-{}", self.invoice_id),
        };
        let safe: String =
            stem.chars().map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '-' }).collect();
        format!("{safe}.pdf")
    }
}

/// The invoice as the bytes of a PDF. The same sheet always gives the same bytes.
pub fn render(sheet: &InvoiceSheet) -> Vec<u8> {
    let fonts = fonts::Fonts::load();
    let pages = layout::lay_out(sheet, &fonts);
    writer::write(&pages, &fonts, &layout::title(sheet))
}
