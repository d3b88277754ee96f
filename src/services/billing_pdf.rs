//! An invoice's PDF (issue 14, item 4): the invoice as its JSON GET shows it (the same
//! access: the space's admins and readers, or the member it belongs to), with the space's
//! name and the member's, drawn by the pure renderer [`crate::domain::billing::pdf`]. A
//! finalized invoice's lines and totals are its frozen ones (`billing_invoice_lines`), never
//! the charges as they are now.

use crate::domain::access::Principal;
use crate::domain::billing::documents::{payment_status, PaymentStatus};
use crate::domain::billing::pdf::{render, InvoiceSheet, SheetCreditNote, SheetPayment, SheetStatus};
use crate::store::billing_invoices::{InvoiceLine, InvoiceRecord};

use super::billing::BillingError;
use super::billing_invoices::{self, InvoiceDetail};
use super::Services;

/// A rendered invoice and the name it is downloaded under.
#[derive(Debug)]
pub struct InvoicePdf {
    pub file_name: String,
    pub bytes: Vec<u8>,
}

/// The invoice's status and payment status as the sheet shows them: a draft is not due yet,
/// a void invoice owes nothing.
fn standing(invoice: &InvoiceRecord) -> (SheetStatus, &'static str, i64) {
    let due = invoice.due_minor() - invoice.paid_minor;
    match invoice.status.as_str() {
        "void" => (SheetStatus::Void, "void", 0),
        "draft" => (SheetStatus::Draft, "open", due),
        _ => {
            let label = match payment_status(invoice.due_minor(), invoice.paid_minor) {
                PaymentStatus::Open => "open",
                PaymentStatus::PartiallyPaid => "partially_paid",
                PaymentStatus::Paid => "paid",
            };
            (SheetStatus::Finalized, label, due)
        }
    }
}

/// What the PDF shows of an invoice, its space and its member.
fn sheet(
    detail: InvoiceDetail,
    issuer: String,
    issuer_details: Vec<String>,
    member: Option<(String, String)>,
) -> InvoiceSheet {
    let InvoiceDetail { invoice, lines, payments, credit_notes } = detail;
    let (status, label, balance_due_minor) = standing(&invoice);
    let (member_name, member_email) = match member {
        Some((name, email)) => (name, Some(email)),
        // A member removed since: the invoice still names who it billed.
        None => (format!("Member {}", invoice.member_id), None),
    };
    InvoiceSheet {
        issuer,
        issuer_details,
        member_name,
        member_email,
        status,
        number: invoice.number.clone(),
        dated: invoice.finalized_at.unwrap_or(invoice.created_at),
        voided: invoice.voided_at.map(|at| (at, invoice.void_reason.clone().unwrap_or_default())),
        period_from: invoice.period_from,
        period_to: invoice.period_to,
        lines: lines.iter().map(InvoiceLine::document_line).collect(),
        net_minor: invoice.net_minor,
        tax_minor: invoice.tax_minor,
        total_minor: invoice.total_minor,
        credited_minor: invoice.credited_minor,
        paid_minor: invoice.paid_minor,
        balance_due_minor,
        payment_status: label.to_string(),
        payments: payments
            .into_iter()
            .map(|p| SheetPayment {
                at: p.created_at,
                kind: p.kind,
                method: p.method,
                reference: p.reference,
                amount_minor: p.amount_minor,
            })
            .collect(),
        credit_notes: credit_notes
            .into_iter()
            .map(|(n, _)| SheetCreditNote {
                number: n.number,
                at: n.created_at,
                reason: n.reason,
                total_minor: n.total_minor,
            })
            .collect(),
        invoice_id: invoice.id,
        currency: invoice.currency,
    }
}

/// The invoice as a PDF, for whoever may read the invoice (another member's: 404).
pub async fn invoice_pdf(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
    invoice_id: &str,
) -> Result<InvoicePdf, BillingError> {
    let detail = billing_invoices::get(svc, caller, space_id, invoice_id).await?;
    let space = svc.store.get_makerspace(space_id).await?.ok_or(BillingError::NotFound("makerspace"))?;
    let member = svc
        .store
        .get_member(space_id, &detail.invoice.member_id)
        .await?
        .map(|m| (format!("{} {}", m.first_name, m.last_name).trim().to_string(), m.email));
    let details = space.location.into_iter().filter(|l| !l.trim().is_empty()).collect();
    let sheet = sheet(detail, space.name, details, member);
    // Rendering is pure and takes a few milliseconds even for a long invoice.
    Ok(InvoicePdf { file_name: sheet.file_name(), bytes: render(&sheet) })
}
