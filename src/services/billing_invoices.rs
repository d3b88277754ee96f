//! Invoices (issue 14): a draft collects a member's open charges of a period; only a draft
//! changes (a line put back to open); finalizing numbers it (the space's pattern, the next
//! number of its year, no gaps) and freezes it. Members see their own invoices; the space's
//! admins make and finalize them. The SQL and its locking are `crate::store::billing_invoices`.

use chrono::{Duration, NaiveDate, SubsecRound, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::access::Principal;
use crate::domain::ids::new_id;
use crate::domain::validate::Invalid;
use crate::store::billing_invoices::{DocWrite, InvoiceFilter, InvoiceLine, InvoiceRecord, NewDraft, Refusal};
use crate::store::billing_ledger::{IdemKey, Keyed};
use crate::store::billing_settlement::{CreditNoteLine, CreditNoteRecord, PaymentRecord};

use super::access::space_for;
use super::billing::{narrow_to_own, scope_of, BillingError, Scope};
use super::Services;

/// `POST .../billing/invoices`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InvoiceRequest {
    #[schema(min_length = 1, max_length = 64)]
    pub member_id: String,
    /// The first day of the period (UTC), inclusive.
    pub period_from: NaiveDate,
    /// The last day of the period (UTC), inclusive; not before `period_from`.
    pub period_to: NaiveDate,
}

/// An invoice with everything shown with it.
#[derive(Debug)]
pub struct InvoiceDetail {
    pub invoice: InvoiceRecord,
    pub lines: Vec<InvoiceLine>,
    pub payments: Vec<PaymentRecord>,
    pub credit_notes: Vec<(CreditNoteRecord, Vec<CreditNoteLine>)>,
}

/// The refusal of a document write, as the API says it.
pub fn refused(refusal: Refusal) -> BillingError {
    let conflict = |error_type: &'static str, detail: String| BillingError::Refused { error_type, detail };
    match refusal {
        Refusal::NoInvoice => BillingError::NotFound("invoice"),
        Refusal::NoLine => BillingError::NotFound("line"),
        Refusal::NotDraft(status) if status == "void" => conflict("invoice_void", "the invoice is void".into()),
        Refusal::NotDraft(_) => conflict(
            "invoice_finalized",
            "the invoice is finalized: only a draft changes; correct it with a credit note".into(),
        ),
        Refusal::NotFinalized(status) if status == "void" => conflict("invoice_void", "the invoice is void".into()),
        Refusal::NotFinalized(_) => {
            conflict("invoice_not_finalized", "the invoice is a draft: finalize it first".into())
        }
        Refusal::Empty => conflict("invoice_empty", "the draft has no lines: there is nothing to finalize".into()),
        Refusal::Overpayment { remaining } => {
            conflict("overpayment", format!("the payment is more than the {remaining} still due"))
        }
        Refusal::Insufficient { balance } => BillingError::InsufficientCredit { balance, needed: 0 },
        Refusal::HasPayments => conflict(
            "invoice_has_payments",
            "the invoice has payments: it cannot be voided; issue a credit note instead".into(),
        ),
        Refusal::HasCreditNotes => {
            conflict("invoice_has_credit_notes", "the invoice has credit notes: it cannot be voided".into())
        }
        Refusal::AlreadyCredited(lines) if lines.is_empty() => {
            conflict("already_credited", "every line of the invoice was credited already".into())
        }
        Refusal::AlreadyCredited(lines) => {
            conflict("already_credited", format!("these lines were credited already: {}", lines.join(", ")))
        }
        Refusal::NotOnInvoice(lines) => {
            Invalid::new(format!("these are no lines of the invoice: {}", lines.join(", "))).into()
        }
    }
}

/// Makes a draft of the member's open charges in the period, once per key (admins).
pub async fn create(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
    request: InvoiceRequest,
    key: &IdemKey,
) -> Result<(InvoiceRecord, bool), BillingError> {
    let space = space_for(svc, caller.can_manage_space(space_id), space_id).await?;
    if request.period_to < request.period_from {
        return Err(Invalid::new("period_to is not before period_from").into());
    }
    let midnight = |d: NaiveDate| Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).expect("midnight exists"));
    let to = request
        .period_to
        .checked_add_signed(Duration::days(1))
        .ok_or_else(|| Invalid::new("period_to is too far in the future"))?;
    let member = svc.store.get_member(space_id, &request.member_id).await?.ok_or(BillingError::NotFound("member"))?;
    let draft = NewDraft {
        id: new_id(),
        makerspace_id: space.id,
        member_id: member.id,
        period_from: request.period_from,
        period_to: request.period_to,
        from: midnight(request.period_from),
        to: midnight(to),
        currency: space.currency,
        created_by: caller.user_id.clone(),
        at: Utc::now().trunc_subsecs(6),
    };
    match svc.store.create_invoice_draft(&draft, key).await? {
        Keyed::Done(invoice) => Ok((invoice, false)),
        Keyed::Replayed(invoice) => Ok((invoice, true)),
        _ => Err(BillingError::KeyReused),
    }
}

/// A page of invoices: admins filter as they like; a member sees only their own.
pub async fn list(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
    mut filter: InvoiceFilter,
) -> Result<(Vec<InvoiceRecord>, i64), BillingError> {
    if !narrow_to_own(scope_of(svc, caller, space_id).await?, &mut filter.member_id) {
        return Ok((Vec::new(), 0));
    }
    Ok(svc.store.list_invoices(space_id, &filter).await?)
}

/// One invoice with its lines, payments and credit notes: the member's own, or any for the
/// space's admins and the platform's readers (another member: 404).
pub async fn get(svc: &Services, caller: &Principal, space_id: &str, id: &str) -> Result<InvoiceDetail, BillingError> {
    let scope = scope_of(svc, caller, space_id).await?;
    let invoice = svc.store.get_invoice(space_id, id).await?.ok_or(BillingError::NotFound("invoice"))?;
    let visible = match &scope {
        Scope::All => true,
        Scope::Own(me) => me.as_ref().is_some_and(|m| m.id == invoice.member_id),
    };
    if !visible {
        return Err(BillingError::NotFound("invoice"));
    }
    let lines = svc.store.invoice_lines(&invoice).await?;
    let payments = svc.store.invoice_payments(&invoice.id).await?;
    let credit_notes = svc.store.invoice_credit_notes(&invoice.id).await?;
    Ok(InvoiceDetail { invoice, lines, payments, credit_notes })
}

/// Puts a charge of a draft back to open (admins).
pub async fn remove_line(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
    invoice_id: &str,
    charge_id: &str,
) -> Result<InvoiceDetail, BillingError> {
    space_for(svc, caller.can_manage_space(space_id), space_id).await?;
    if let Some(refusal) = svc.store.remove_invoice_line(space_id, invoice_id, charge_id).await? {
        return Err(refused(refusal));
    }
    get(svc, caller, space_id, invoice_id).await
}

/// Finalizes a draft, once per key (admins): its number, frozen lines and chain link.
pub async fn finalize(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
    invoice_id: &str,
    key: &IdemKey,
) -> Result<(InvoiceDetail, bool), BillingError> {
    space_for(svc, caller.can_manage_space(space_id), space_id).await?;
    let settings = svc.store.billing_settings(space_id).await?.ok_or(BillingError::NotFound("makerspace"))?;
    let at = Utc::now().trunc_subsecs(6);
    let replayed =
        match svc.store.finalize_invoice(space_id, invoice_id, &settings.invoice_number_pattern, key, at).await? {
            DocWrite::Done(_) => false,
            DocWrite::Replayed(_) => true,
            DocWrite::KeyReused => return Err(BillingError::KeyReused),
            DocWrite::Refused(refusal) => return Err(refused(refusal)),
        };
    Ok((get(svc, caller, space_id, invoice_id).await?, replayed))
}
