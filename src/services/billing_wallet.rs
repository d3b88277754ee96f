//! The credit wallet (issue 14): a member's append-only ledger (top-ups, charges paid from
//! it, refunds, admins' adjustments with a reason) whose sum is the balance, and prepaid mode
//! at the kiosk. Every write takes an idempotency key (see `crate::store::billing_ledger`
//! for how concurrent writes of one member are kept apart).

use chrono::{SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::access::{Decision, Principal};
use crate::domain::validate::{optional_text, Invalid};
use crate::store::billing_ledger::{IdemKey, Keyed, NewWalletEntry, WalletEntry};
use crate::store::members::MemberRecord;
use crate::store::StoreError;

use super::access::space_for;
use super::billing::{scope_of, BillingError, Scope};
use super::Services;

/// The largest top-up or adjustment, in minor units.
pub const MAX_WALLET_AMOUNT: i64 = 100_000_000;

/// A member's wallet: its balance and a page of its rows.
#[derive(Debug)]
pub struct Wallet {
    pub member_id: String,
    pub currency: String,
    pub balance_minor: i64,
    pub entries: Vec<WalletEntry>,
    pub total: i64,
}

/// The member of the path, for the member themselves and the space's admins (and the
/// platform's readers); another person of the space does not see it (404).
async fn own_or_admin(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
    member_id: &str,
) -> Result<MemberRecord, BillingError> {
    let member = match scope_of(svc, caller, space_id).await? {
        Scope::All => svc.store.get_member(space_id, member_id).await?,
        Scope::Own(me) => me.map(|m| *m).filter(|m| m.id == member_id),
    };
    member.ok_or(BillingError::NotFound("member"))
}

pub async fn wallet(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
    member_id: &str,
    limit: i64,
    offset: i64,
) -> Result<Wallet, BillingError> {
    let member = own_or_admin(svc, caller, space_id, member_id).await?;
    let space = svc.store.get_makerspace(space_id).await?.ok_or(BillingError::NotFound("makerspace"))?;
    let balance_minor = svc.store.wallet_balance(space_id, &member.id).await?;
    let (entries, total) = svc.store.wallet_entries(space_id, &member.id, limit, offset).await?;
    Ok(Wallet { member_id: member.id, currency: space.currency, balance_minor, entries, total })
}

/// `POST .../wallet/top-ups`: money put in (at the desk, by transfer).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TopUpRequest {
    /// In minor units of the space's currency.
    #[schema(minimum = 1, maximum = 100_000_000)]
    #[serde(deserialize_with = "crate::domain::validate::required_whole_number")]
    pub amount_minor: i64,
    #[schema(max_length = 500, pattern = r"^[^\x00-\x1f\x7f-\x9f\u2028\u2029]*$")]
    pub reason: Option<String>,
}

/// `POST .../wallet/adjustments`: an admin's correction, either way, with its reason. It may
/// not take the balance below zero.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdjustmentRequest {
    /// Signed, in minor units: positive credits the member, negative takes back; not 0.
    #[schema(minimum = -100_000_000, maximum = 100_000_000)]
    #[serde(deserialize_with = "crate::domain::validate::required_whole_number")]
    pub amount_minor: i64,
    #[schema(min_length = 1, max_length = 500, pattern = r"\S")]
    pub reason: String,
}

/// A wallet write's result: its row, and whether it was written before (a retried key).
pub type Written = (WalletEntry, bool);

fn settle(outcome: Keyed<WalletEntry>, needed: i64) -> Result<Written, BillingError> {
    match outcome {
        Keyed::Done(entry) => Ok((entry, false)),
        Keyed::Replayed(entry) => Ok((entry, true)),
        Keyed::KeyReused => Err(BillingError::KeyReused),
        Keyed::Insufficient { balance } => Err(BillingError::InsufficientCredit { balance, needed }),
        Keyed::NotPayable => Err(BillingError::NotPayable),
        Keyed::NoCharge => Err(BillingError::NotFound("charge")),
    }
}

/// A row to append: its kind, signed amount and reason.
struct Movement {
    kind: &'static str,
    amount_minor: i64,
    reason: Option<String>,
}

async fn append(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
    member_id: &str,
    movement: Movement,
    key: &IdemKey,
) -> Result<Written, BillingError> {
    let Movement { kind, amount_minor, reason } = movement;
    let space = space_for(svc, caller.can_manage_space(space_id), space_id).await?;
    let member = svc.store.get_member(space_id, member_id).await?.ok_or(BillingError::NotFound("member"))?;
    let entry = NewWalletEntry {
        makerspace_id: space.id,
        member_id: member.id,
        kind,
        amount_minor,
        currency: space.currency,
        charge_id: None,
        reason,
        actor: caller.user_id.clone(),
        at: Utc::now().trunc_subsecs(6),
    };
    settle(svc.store.append_wallet(&entry, key).await?, -amount_minor)
}

pub async fn top_up(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
    member_id: &str,
    request: TopUpRequest,
    key: &IdemKey,
) -> Result<Written, BillingError> {
    if !(1..=MAX_WALLET_AMOUNT).contains(&request.amount_minor) {
        return Err(Invalid::new(format!("amount_minor is 1 to {MAX_WALLET_AMOUNT}")).into());
    }
    let reason = optional_text("reason", request.reason, 500)?;
    let movement = Movement { kind: "top_up", amount_minor: request.amount_minor, reason };
    append(svc, caller, space_id, member_id, movement, key).await
}

pub async fn adjust(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
    member_id: &str,
    request: AdjustmentRequest,
    key: &IdemKey,
) -> Result<Written, BillingError> {
    if request.amount_minor == 0 || request.amount_minor.abs() > MAX_WALLET_AMOUNT {
        return Err(Invalid::new(format!("amount_minor is -{MAX_WALLET_AMOUNT} to {MAX_WALLET_AMOUNT}, not 0")).into());
    }
    let reason = optional_text("reason", Some(request.reason), 500)?
        .ok_or_else(|| Invalid::new("an adjustment says why: reason must not be blank"))?;
    let movement = Movement { kind: "adjustment", amount_minor: request.amount_minor, reason: Some(reason) };
    append(svc, caller, space_id, member_id, movement, key).await
}

/// Pays a charge from its member's wallet: the member themselves or the space's admins.
pub async fn pay_charge(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
    charge_id: &str,
    key: &IdemKey,
) -> Result<Written, BillingError> {
    space_for(svc, caller.can_read_space(space_id), space_id).await?;
    let charge = svc.store.get_charge(space_id, charge_id).await?.ok_or(BillingError::NotFound("charge"))?;
    let allowed = match caller.can_manage_space(space_id) {
        Decision::Allow => true,
        _ => svc.store.find_member_by_user(space_id, &caller.user_id).await?.is_some_and(|m| m.id == charge.member_id),
    };
    if !allowed {
        // The platform's `admin` reads every charge but pays none; others do not see it.
        return Err(match caller.can_read_members(space_id) {
            Decision::Allow => BillingError::Access(super::access::AccessError::Forbidden(
                "only the member or the space's admins pay a charge".into(),
            )),
            _ => BillingError::NotFound("charge"),
        });
    }
    let outcome =
        svc.store.pay_from_wallet(space_id, charge_id, &caller.user_id, key, Utc::now().trunc_subsecs(6)).await?;
    settle(outcome, charge.total_minor)
}

/// Prepaid mode at the kiosk: `Some(balance)` when the space is in prepaid mode and the
/// member's balance is below its minimum (the unlock is refused with `insufficient_credit`).
pub async fn prepaid_shortfall(svc: &Services, space_id: &str, member_id: &str) -> Result<Option<i64>, StoreError> {
    let Some(settings) = svc.store.billing_settings(space_id).await? else { return Ok(None) };
    if !settings.prepaid {
        return Ok(None);
    }
    let balance = svc.store.wallet_balance(space_id, member_id).await?;
    Ok((balance < settings.prepaid_minimum_minor).then_some(balance))
}
