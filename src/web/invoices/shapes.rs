//! The bodies the invoice endpoints answer.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::billing::documents::{payment_status, tax_totals, DocumentLine, PaymentStatus, TaxTotal};
use crate::services::billing_invoices::InvoiceDetail;
use crate::store::billing_invoices::{InvoiceLine, InvoiceRecord};
use crate::store::billing_settlement::{CreditNoteLine, CreditNoteRecord, PaymentRecord};
use crate::web::paging::PageInfo;

/// Where an invoice is in its life: only a draft changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InvoiceStatus {
    Draft,
    Finalized,
    Void,
}

impl InvoiceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Finalized => "finalized",
            Self::Void => "void",
        }
    }

    fn of(text: &str) -> InvoiceStatus {
        match text {
            "finalized" => Self::Finalized,
            "void" => Self::Void,
            _ => Self::Draft,
        }
    }
}

/// Where an invoice's money stands, apart from its status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InvoicePaymentStatus {
    Open,
    PartiallyPaid,
    Paid,
    /// The invoice is void: nothing is owed.
    Void,
}

/// An invoice as listed.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvoiceSummary {
    pub id: String,
    pub makerspace_id: String,
    pub member_id: String,
    /// Given at finalization (null for a draft).
    pub number: Option<String>,
    pub status: InvoiceStatus,
    pub payment_status: InvoicePaymentStatus,
    pub period_from: NaiveDate,
    pub period_to: NaiveDate,
    #[schema(pattern = "^[A-Z]{3}$")]
    pub currency: String,
    /// In minor units: a draft's from its charges now, a finalized invoice's as frozen.
    pub net_minor: i64,
    pub tax_minor: i64,
    pub total_minor: i64,
    /// What its credit notes took off (0 or negative).
    pub credited_minor: i64,
    /// Payments less refunds.
    pub paid_minor: i64,
    /// Still to pay: total, less credit notes, less what was paid.
    pub balance_due_minor: i64,
    pub finalized_at: Option<DateTime<Utc>>,
    /// SHA-256 of its frozen content, and its link in the space's chain (finalized only).
    pub content_sha256: Option<String>,
    pub chain_sha256: Option<String>,
    pub voided_at: Option<DateTime<Utc>>,
    pub void_reason: Option<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

impl From<InvoiceRecord> for InvoiceSummary {
    fn from(i: InvoiceRecord) -> Self {
        let status = InvoiceStatus::of(&i.status);
        let payment_status = match (status, payment_status(i.due_minor(), i.paid_minor)) {
            (InvoiceStatus::Void, _) => InvoicePaymentStatus::Void,
            // A draft is not due yet, whatever its amount.
            (InvoiceStatus::Draft, _) => InvoicePaymentStatus::Open,
            (_, PaymentStatus::Open) => InvoicePaymentStatus::Open,
            (_, PaymentStatus::PartiallyPaid) => InvoicePaymentStatus::PartiallyPaid,
            (_, PaymentStatus::Paid) => InvoicePaymentStatus::Paid,
        };
        InvoiceSummary {
            balance_due_minor: if status == InvoiceStatus::Void { 0 } else { i.due_minor() - i.paid_minor },
            id: i.id,
            makerspace_id: i.makerspace_id,
            member_id: i.member_id,
            number: i.number,
            status,
            payment_status,
            period_from: i.period_from,
            period_to: i.period_to,
            currency: i.currency,
            net_minor: i.net_minor,
            tax_minor: i.tax_minor,
            total_minor: i.total_minor,
            credited_minor: i.credited_minor,
            paid_minor: i.paid_minor,
            finalized_at: i.finalized_at,
            content_sha256: i.content_sha256,
            chain_sha256: i.chain_sha256,
            voided_at: i.voided_at,
            void_reason: i.void_reason,
            created_by: i.created_by,
            created_at: i.created_at,
        }
    }
}

/// A line of an invoice or a credit note (a credit note's amounts are negative).
#[derive(Debug, Serialize, ToSchema)]
pub struct LineResponse {
    /// The charge it bills.
    pub charge_id: String,
    pub description: String,
    /// When the use happened (invoice lines), RFC 3339.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub usage_at: Option<String>,
    pub net_minor: i64,
    pub tax_rate_id: Option<String>,
    /// As decimal text (`20`, `5.5`).
    pub tax_percent: Option<String>,
    pub tax_minor: i64,
    pub total_minor: i64,
}

impl From<DocumentLine> for LineResponse {
    fn from(l: DocumentLine) -> Self {
        LineResponse {
            charge_id: l.charge_id,
            description: l.description,
            usage_at: l.usage_at,
            net_minor: l.net_minor,
            tax_rate_id: l.tax_rate_id,
            tax_percent: l.tax_percent,
            tax_minor: l.tax_minor,
            total_minor: l.total_minor,
        }
    }
}

/// A document's lines as answered, and its tax per rate.
fn lines_and_taxes(lines: Vec<DocumentLine>) -> (Vec<LineResponse>, Vec<TaxTotal>) {
    let taxes = tax_totals(&lines);
    (lines.into_iter().map(LineResponse::from).collect(), taxes)
}

/// A payment (positive) or a refund (negative) of an invoice.
#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentResponse {
    pub id: i64,
    pub invoice_id: String,
    /// `payment` or `refund`.
    pub kind: String,
    /// `cash`, `bank_transfer` or `wallet` (recorded by an admin), or `stripe` or `razorpay`
    /// (recorded from the gateway's verified webhook).
    pub method: String,
    pub amount_minor: i64,
    #[schema(pattern = "^[A-Z]{3}$")]
    pub currency: String,
    pub reference: Option<String>,
    /// The wallet's ledger row that moved the money (wallet payments and refunds).
    pub wallet_entry_id: Option<i64>,
    /// The credit note a refund comes from.
    pub credit_note_id: Option<String>,
    pub actor: String,
    pub created_at: DateTime<Utc>,
}

impl From<PaymentRecord> for PaymentResponse {
    fn from(p: PaymentRecord) -> Self {
        PaymentResponse {
            id: p.id,
            invoice_id: p.invoice_id,
            kind: p.kind,
            method: p.method,
            amount_minor: p.amount_minor,
            currency: p.currency,
            reference: p.reference,
            wallet_entry_id: p.wallet_entry_id,
            credit_note_id: p.credit_note_id,
            actor: p.actor,
            created_at: p.created_at,
        }
    }
}

/// A credit note: the correction of a finalized invoice, with its own number.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreditNoteResponse {
    pub id: String,
    pub invoice_id: String,
    pub member_id: String,
    pub number: String,
    #[schema(pattern = "^[A-Z]{3}$")]
    pub currency: String,
    /// `wallet` or `original_method`.
    pub refund_to: String,
    pub reason: String,
    /// Negative, in minor units.
    pub net_minor: i64,
    pub tax_minor: i64,
    pub total_minor: i64,
    /// What was given back: what had been paid beyond what is still due after it.
    pub refunded_minor: i64,
    pub content_sha256: String,
    pub chain_sha256: String,
    /// Present when shown with its invoice.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lines: Option<Vec<LineResponse>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub taxes: Option<Vec<TaxTotal>>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

impl CreditNoteResponse {
    pub fn new(n: CreditNoteRecord, lines: Option<Vec<CreditNoteLine>>) -> Self {
        let (lines, taxes) = match lines {
            Some(ls) => {
                let (lines, taxes) = lines_and_taxes(ls.iter().map(CreditNoteLine::document_line).collect());
                (Some(lines), Some(taxes))
            }
            None => (None, None),
        };
        CreditNoteResponse {
            taxes,
            lines,
            id: n.id,
            invoice_id: n.invoice_id,
            member_id: n.member_id,
            number: n.number,
            currency: n.currency,
            refund_to: n.refund_to,
            reason: n.reason,
            net_minor: n.net_minor,
            tax_minor: n.tax_minor,
            total_minor: n.total_minor,
            refunded_minor: n.refunded_minor,
            content_sha256: n.content_sha256,
            chain_sha256: n.chain_sha256,
            created_by: n.created_by,
            created_at: n.created_at,
        }
    }
}

/// An invoice with its lines, tax per rate, payments and credit notes.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvoiceResponse {
    #[serde(flatten)]
    pub invoice: InvoiceSummary,
    /// Oldest use first.
    pub lines: Vec<LineResponse>,
    /// Per tax rate (and percent): the lines' net and tax.
    pub taxes: Vec<TaxTotal>,
    pub payments: Vec<PaymentResponse>,
    pub credit_notes: Vec<CreditNoteResponse>,
}

impl From<InvoiceDetail> for InvoiceResponse {
    fn from(d: InvoiceDetail) -> Self {
        let (lines, taxes) = lines_and_taxes(d.lines.iter().map(InvoiceLine::document_line).collect());
        InvoiceResponse {
            taxes,
            lines,
            invoice: d.invoice.into(),
            payments: d.payments.into_iter().map(PaymentResponse::from).collect(),
            credit_notes: d.credit_notes.into_iter().map(|(n, l)| CreditNoteResponse::new(n, Some(l))).collect(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InvoicePage {
    /// Newest first.
    pub invoices: Vec<InvoiceSummary>,
    #[serde(flatten)]
    pub page: PageInfo,
}

/// The first document of the chain that does not hold.
#[derive(Debug, Serialize, ToSchema)]
pub struct BrokenDocument {
    /// `invoice` or `credit_note`.
    pub kind: String,
    pub number: String,
    pub id: String,
}

/// `GET .../billing/integrity`: `{"ok": true, "documents": n}`, or `ok: false` with the first
/// broken link and why.
#[derive(Debug, Serialize, ToSchema)]
pub struct IntegrityResponse {
    pub ok: bool,
    /// Documents checked (when the chain holds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub documents: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_broken: Option<BrokenDocument>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}
