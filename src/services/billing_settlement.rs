//! What happens to a finalized invoice (issue 14): payments by cash, bank transfer or the
//! member's wallet (never more than is due, never overdrawing the wallet), voiding an
//! unpaid invoice, credit notes (the only correction of a finalized invoice), and the
//! integrity check of the space's chain of documents. Every money write takes an
//! idempotency key; the SQL and its locks are `crate::store::billing_settlement`.

use chrono::{SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::access::Principal;
use crate::domain::billing::documents::{verify_chain, BrokenLink};
use crate::domain::ids::new_id;
use crate::domain::validate::{optional_text, Invalid};
use crate::store::billing_invoices::{DocWrite, Refusal};
use crate::store::billing_ledger::IdemKey;
use crate::store::billing_settlement::{CreditNoteRecord, NewCreditNote, NewPayment, PaymentRecord};

use super::access::space_for;
use super::billing::BillingError;
use super::billing_invoices::refused;
use super::billing_wallet::MAX_WALLET_AMOUNT;
use super::Services;

/// How a payment was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PaymentMethod {
    Cash,
    BankTransfer,
    /// Taken from the member's credit wallet (a row of its ledger).
    Wallet,
}

impl PaymentMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cash => "cash",
            Self::BankTransfer => "bank_transfer",
            Self::Wallet => "wallet",
        }
    }
}

/// `POST .../invoices/{id}/payments`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentRequest {
    pub method: PaymentMethod,
    /// In minor units of the invoice's currency; at most what is still due.
    #[schema(minimum = 1, maximum = 100_000_000)]
    #[serde(deserialize_with = "crate::domain::validate::required_whole_number")]
    pub amount_minor: i64,
    /// The bank's or the till's reference.
    #[schema(max_length = 200, pattern = r"^[^\x00-\x1f\x7f-\x9f\u2028\u2029]*$")]
    pub reference: Option<String>,
}

/// `POST .../invoices/{id}/void`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VoidRequest {
    #[schema(min_length = 1, max_length = 500, pattern = r"\S")]
    pub reason: String,
}

/// Where a credit note's refund goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RefundTo {
    /// A `refund` row of the member's wallet.
    Wallet,
    /// A refund recorded by the method of the invoice's last payment.
    OriginalMethod,
}

/// `POST .../invoices/{id}/credit-notes`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreditNoteRequest {
    /// The charge ids of the lines to credit (whole); null: every line not credited yet.
    #[schema(max_items = 1000)]
    pub lines: Option<Vec<String>>,
    pub refund_to: RefundTo,
    #[schema(min_length = 1, max_length = 500, pattern = r"\S")]
    pub reason: String,
}

fn reason_of(text: String) -> Result<String, Invalid> {
    optional_text("reason", Some(text), 500)?.ok_or_else(|| Invalid::new("reason must not be blank"))
}

/// Records a payment of a finalized invoice, once per key (admins).
pub async fn pay(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
    invoice_id: &str,
    request: PaymentRequest,
    key: &IdemKey,
) -> Result<(PaymentRecord, bool), BillingError> {
    space_for(svc, caller.can_manage_space(space_id), space_id).await?;
    if !(1..=MAX_WALLET_AMOUNT).contains(&request.amount_minor) {
        return Err(Invalid::new(format!("amount_minor is 1 to {MAX_WALLET_AMOUNT}")).into());
    }
    let reference = optional_text("reference", request.reference, 200)?;
    let payment = NewPayment {
        method: request.method.as_str(),
        amount_minor: request.amount_minor,
        reference,
        actor: caller.user_id.clone(),
        at: Utc::now().trunc_subsecs(6),
    };
    match svc.store.pay_invoice(space_id, invoice_id, &payment, key).await? {
        DocWrite::Done(p) => Ok((p, false)),
        DocWrite::Replayed(p) => Ok((p, true)),
        DocWrite::KeyReused => Err(BillingError::KeyReused),
        DocWrite::Refused(Refusal::Insufficient { balance }) => {
            Err(BillingError::InsufficientCredit { balance, needed: request.amount_minor })
        }
        DocWrite::Refused(refusal) => Err(refused(refusal)),
    }
}

/// Voids a finalized invoice that has no payment and no credit note (admins).
pub async fn void(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
    invoice_id: &str,
    request: VoidRequest,
) -> Result<(), BillingError> {
    space_for(svc, caller.can_manage_space(space_id), space_id).await?;
    let reason = reason_of(request.reason)?;
    match svc.store.void_invoice(space_id, invoice_id, &reason, Utc::now().trunc_subsecs(6)).await? {
        None => Ok(()),
        Some(refusal) => Err(refused(refusal)),
    }
}

/// Issues a credit note of a finalized invoice, once per key (admins).
pub async fn credit_note(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
    invoice_id: &str,
    request: CreditNoteRequest,
    key: &IdemKey,
) -> Result<(CreditNoteRecord, bool), BillingError> {
    space_for(svc, caller.can_manage_space(space_id), space_id).await?;
    let reason = reason_of(request.reason)?;
    if let Some(lines) = &request.lines {
        if lines.is_empty() {
            return Err(Invalid::new("lines lists at least one charge id, or is null for every line").into());
        }
        if lines.iter().enumerate().any(|(i, id)| lines[..i].contains(id)) {
            return Err(Invalid::new("lines lists a charge twice").into());
        }
    }
    let settings = svc.store.billing_settings(space_id).await?.ok_or(BillingError::NotFound("makerspace"))?;
    let note = NewCreditNote {
        id: new_id(),
        lines: request.lines,
        refund_to: match request.refund_to {
            RefundTo::Wallet => "wallet",
            RefundTo::OriginalMethod => "original_method",
        },
        reason,
        pattern: settings.credit_note_number_pattern,
        created_by: caller.user_id.clone(),
        at: Utc::now().trunc_subsecs(6),
    };
    match svc.store.issue_credit_note(space_id, invoice_id, &note, key).await? {
        DocWrite::Done(n) => Ok((n, false)),
        DocWrite::Replayed(n) => Ok((n, true)),
        DocWrite::KeyReused => Err(BillingError::KeyReused),
        DocWrite::Refused(refusal) => Err(refused(refusal)),
    }
}

/// Recomputes the space's chain of finalized invoices and credit notes (admins and the
/// platform's readers): `Ok(n)` when all `n` hold, else the first broken link.
pub async fn integrity(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
) -> Result<Result<usize, BrokenLink>, BillingError> {
    space_for(svc, caller.can_read_members(space_id), space_id).await?;
    let (docs, last_seq, last_sha) = svc.store.chain_documents(space_id).await?;
    Ok(verify_chain(&docs, last_seq, &last_sha))
}
