//! Billing's workflows, first slice (issue 14): a space's billing settings and machine
//! prices, charges made from use (ended sessions by the sweep, ended jobs by production), the
//! charge listing, and admins' manual charges and discounts. The wallet is
//! [`super::billing_wallet`]; the rules are `crate::domain::billing`.
//!
//! Sessions are charged off the actors' path: the state writer stores an ended session with
//! `charged = false` in its batch, and [`charge_ended_sessions`] (run by the sweeper every
//! second) charges each one. A session's charge has the source `session:{id}`, unique in the
//! database, so a session re-reported after a restart or a retry is charged once.

use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::domain::access::{Decision, Principal};
use crate::domain::billing::price::TooLarge;
use crate::domain::billing::{
    credit_period, session_charge, with_tax, BillingSettings, JobChargePolicy, MachinePrice, SessionUse,
};
use crate::domain::ids::new_id;
use crate::domain::pricing::{Quality, QuoteInput, Quotes};
use crate::domain::validate::{check_len, optional_text, Invalid};
use crate::store::billing_ledger::{ChargeFilter, ChargeRecord, CreditWindow, IdemKey, Keyed, UnchargedSession};
use crate::store::jobs::JobRecord;
use crate::store::members::MemberRecord;
use crate::store::StoreError;

use super::access::{space_for, AccessError};
use super::Services;

/// Sessions charged per sweep round: a backlog (after a restart) is worked off over rounds.
const SESSIONS_PER_ROUND: i64 = 200;

#[derive(Debug, thiserror::Error)]
pub enum BillingError {
    #[error(transparent)]
    Access(#[from] AccessError),
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("this Idempotency-Key was used for another request")]
    KeyReused,
    #[error("insufficient credit: the wallet holds {balance}, {needed} is needed")]
    InsufficientCredit { balance: i64, needed: i64 },
    #[error("this charge cannot be paid: it was paid already, is void, or is not an amount due")]
    NotPayable,
    #[error("the amount is too large to compute")]
    TooLarge,
    /// A rule of invoices refused the request (409 with this `error_type`).
    #[error("{detail}")]
    Refused { error_type: &'static str, detail: String },
    /// A webhook delivery that is not the gateway's (400 with this `error_type`).
    #[error("{detail}")]
    Webhook { error_type: &'static str, detail: String },
    /// A gateway could not be reached or refused makrcave's call (502).
    #[error("{detail}")]
    Gateway { error_type: &'static str, detail: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<TooLarge> for BillingError {
    fn from(_: TooLarge) -> BillingError {
        BillingError::TooLarge
    }
}

/// The fingerprint of a money write: the operation, the ids in its path, and its body, so
/// that a key sent again with another request is told apart from a retry.
pub fn idem_key(key: &str, operation: &str, body: &serde_json::Value) -> Result<IdemKey, Invalid> {
    let key = key.trim();
    if key.is_empty() || key.len() > 200 || !key.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err(Invalid::new("Idempotency-Key is 1 to 200 printable ASCII characters"));
    }
    let digest = Sha256::digest(format!("{operation}\n{body}").as_bytes());
    Ok(IdemKey { key: key.to_string(), request_hash: digest.iter().map(|b| format!("{b:02x}")).collect() })
}

/// A space's billing settings, for people of the space.
pub async fn settings(svc: &Services, caller: &Principal, space_id: &str) -> Result<BillingSettings, BillingError> {
    space_for(svc, caller.can_read_space(space_id), space_id).await?;
    svc.store.billing_settings(space_id).await?.ok_or(BillingError::NotFound("makerspace"))
}

/// Replaces a space's settings, for its admins.
pub async fn put_settings(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
    settings: BillingSettings,
) -> Result<BillingSettings, BillingError> {
    space_for(svc, caller.can_manage_space(space_id), space_id).await?;
    settings.check()?;
    svc.store.put_billing_settings(space_id, &settings, &caller.user_id, Utc::now().trunc_subsecs(6)).await?;
    Ok(settings)
}

/// A machine's price as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct PriceView {
    pub equipment_id: String,
    /// ISO 4217, the space's: rates in its major unit, fees in its minor unit.
    #[schema(pattern = "^[A-Z]{3}$")]
    pub currency: String,
    /// True while the machine has no price: its use is free.
    pub default: bool,
    /// What one use costs (what `PUT` takes).
    pub price: MachinePrice,
}

async fn machine_in(svc: &Services, space_id: &str, equipment_id: &str) -> Result<(), BillingError> {
    match svc.store.get_equipment(equipment_id).await? {
        Some(e) if e.makerspace_id == space_id => Ok(()),
        _ => Err(BillingError::NotFound("equipment")),
    }
}

/// A machine's price, for people of the space.
pub async fn price(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
    equipment_id: &str,
) -> Result<PriceView, BillingError> {
    let space = space_for(svc, caller.can_read_space(space_id), space_id).await?;
    machine_in(svc, space_id, equipment_id).await?;
    let stored = svc.store.equipment_price(equipment_id).await?;
    Ok(PriceView {
        equipment_id: equipment_id.to_string(),
        currency: space.currency,
        default: stored.is_none(),
        price: stored.unwrap_or_else(|| MachinePrice::hourly(crate::domain::pricing::Rate::ZERO)),
    })
}

/// Replaces a machine's price, for the space's admins. Its tax rate must be one of the
/// space's.
pub async fn put_price(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
    equipment_id: &str,
    price: MachinePrice,
) -> Result<PriceView, BillingError> {
    let space = space_for(svc, caller.can_manage_space(space_id), space_id).await?;
    machine_in(svc, space_id, equipment_id).await?;
    price.check()?;
    if let Some(tax) = &price.tax_rate_id {
        let settings = svc.store.billing_settings(space_id).await?.ok_or(BillingError::NotFound("makerspace"))?;
        if settings.tax_rate(tax).is_none() {
            return Err(Invalid::new(format!("tax_rate_id {tax:?} is not one of the space's tax rates")).into());
        }
    }
    let at = Utc::now().trunc_subsecs(6);
    if !svc.store.put_equipment_price(space_id, equipment_id, &price, &caller.user_id, at).await? {
        return Err(BillingError::NotFound("equipment"));
    }
    Ok(PriceView { equipment_id: equipment_id.to_string(), currency: space.currency, default: false, price })
}

/// Who a caller is among the space's charges: everything for its admins and the platform's
/// readers, or one member's own (`None` member: a person of the space who is no member, and
/// has no charges).
pub enum Scope {
    All,
    Own(Option<Box<MemberRecord>>),
}

pub async fn scope_of(svc: &Services, caller: &Principal, space_id: &str) -> Result<Scope, BillingError> {
    space_for(svc, caller.can_read_space(space_id), space_id).await?;
    if caller.can_read_members(space_id) == Decision::Allow {
        return Ok(Scope::All);
    }
    Ok(Scope::Own(svc.store.find_member_by_user(space_id, &caller.user_id).await?.map(Box::new)))
}

/// A page of charges: admins filter as they like; a member sees only their own.
pub async fn charges(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
    mut filter: ChargeFilter,
) -> Result<(Vec<ChargeRecord>, i64), BillingError> {
    if !narrow_to_own(scope_of(svc, caller, space_id).await?, &mut filter.member_id) {
        return Ok((Vec::new(), 0));
    }
    Ok(svc.store.list_charges(space_id, &filter).await?)
}

/// Narrows a listing's member filter to what the caller may see: `false` when that is
/// nothing (a member filtering on someone else, or a person of the space who is no member).
pub fn narrow_to_own(scope: Scope, member_filter: &mut Option<String>) -> bool {
    match scope {
        Scope::All => true,
        Scope::Own(None) => false,
        Scope::Own(Some(me)) => {
            if member_filter.as_ref().is_some_and(|m| *m != me.id) {
                return false;
            }
            *member_filter = Some(me.id);
            true
        }
    }
}

/// Kinds of a line an admin adds by hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ManualKind {
    /// An amount due (a lost key card, a consumable): positive.
    Manual,
    /// A reduction: its amount is taken off (stored negative).
    Discount,
}

/// `POST .../billing/charges`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ManualChargeRequest {
    #[schema(min_length = 1, max_length = 64)]
    pub member_id: String,
    #[schema(value_type = String, example = "manual")]
    #[serde(with = "manual_kind_text")]
    pub kind: ManualKind,
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub description: String,
    /// Net, in minor units of the space's currency, before tax; a discount's amount is
    /// written positive and taken off.
    #[schema(minimum = 1, maximum = 100_000_000)]
    #[serde(deserialize_with = "crate::domain::validate::required_whole_number")]
    pub amount_minor: i64,
    #[schema(max_length = 64)]
    pub tax_rate_id: Option<String>,
    /// Why it is added (kept with the line).
    #[schema(min_length = 1, max_length = 500, pattern = r"\S")]
    pub reason: String,
}

mod manual_kind_text {
    use super::ManualKind;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(kind: &ManualKind, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(match kind {
            ManualKind::Manual => "manual",
            ManualKind::Discount => "discount",
        })
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<ManualKind, D::Error> {
        ManualKind::deserialize(d)
    }
}

/// An admin's manual charge or discount line, once per idempotency key.
pub async fn add_manual_charge(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
    request: ManualChargeRequest,
    key: &IdemKey,
) -> Result<(ChargeRecord, bool), BillingError> {
    space_for(svc, caller.can_manage_space(space_id), space_id).await?;
    check_len("description", &request.description, 200)?;
    let reason = optional_text("reason", Some(request.reason.clone()), 500)?
        .ok_or_else(|| Invalid::new("reason must not be blank"))?;
    if !(1..=crate::domain::billing::price::MAX_FEE_MINOR).contains(&request.amount_minor) {
        return Err(Invalid::new("amount_minor is 1 to 100000000").into());
    }
    svc.store.get_member(space_id, &request.member_id).await?.ok_or(BillingError::NotFound("member"))?;
    let settings = svc.store.billing_settings(space_id).await?.ok_or(BillingError::NotFound("makerspace"))?;
    let tax = match &request.tax_rate_id {
        None => None,
        Some(id) => Some(
            settings
                .tax_rate(id)
                .cloned()
                .ok_or_else(|| Invalid::new(format!("tax_rate_id {id:?} is not one of the space's tax rates")))?,
        ),
    };
    let (kind, net) = match request.kind {
        ManualKind::Manual => ("manual", request.amount_minor),
        ManualKind::Discount => ("discount", -request.amount_minor),
    };
    let tax_minor = with_tax(net, tax.as_ref().map(|t| t.percent))?;
    let now = Utc::now().trunc_subsecs(6);
    let id = new_id();
    let charge = ChargeRecord {
        source: format!("manual:{id}"),
        id,
        makerspace_id: space_id.to_string(),
        member_id: request.member_id.clone(),
        kind: kind.to_string(),
        description: request.description.trim().to_string(),
        equipment_id: None,
        equipment_type: None,
        usage_at: now,
        included_minutes: 0,
        detail: "{}".into(),
        rounding_rule: "an amount in minor units, as given; tax rounded once, half away from zero".into(),
        currency: settings.currency.clone(),
        net_minor: net,
        tax_rate_id: tax.as_ref().map(|t| t.id.clone()),
        tax_percent: tax.as_ref().map(|t| t.percent.to_string()),
        tax_minor,
        total_minor: net + tax_minor,
        status: "open".into(),
        invoice_id: None,
        reason: Some(reason),
        created_by: caller.user_id.clone(),
        created_at: now,
        paid_by_wallet_entry: None,
    };
    match svc.store.insert_manual_charge(&charge, key).await? {
        Keyed::Done(c) => Ok((c, false)),
        Keyed::Replayed(c) => Ok((c, true)),
        Keyed::KeyReused => Err(BillingError::KeyReused),
        _ => Err(BillingError::NotPayable),
    }
}

/// The member a use is charged to: the session's own member, else the person's membership
/// of the space.
async fn member_of(
    svc: &Services,
    space_id: &str,
    member_id: Option<&str>,
    user_id: &str,
) -> Result<Option<MemberRecord>, StoreError> {
    if let Some(id) = member_id {
        if let Some(member) = svc.store.get_member(space_id, id).await? {
            return Ok(Some(member));
        }
    }
    svc.store.find_member_by_user(space_id, user_id).await
}

/// The plan credits a member may use on a kind of machine at `at`.
async fn credit_window(
    svc: &Services,
    member: &MemberRecord,
    equipment_type: &str,
    at: DateTime<Utc>,
) -> Result<Option<CreditWindow>, StoreError> {
    let Some(plan_id) = &member.plan_id else { return Ok(None) };
    let Some((plan, _)) = svc.store.get_plan(&member.makerspace_id, plan_id).await? else { return Ok(None) };
    let Some(line) = plan.included_minutes.iter().find(|l| l.equipment_type.as_str() == equipment_type) else {
        return Ok(None);
    };
    let (from, to) = credit_period(plan.billing_period, at);
    Ok(Some(CreditWindow { equipment_type: equipment_type.to_string(), included: line.minutes, from, to }))
}

/// Charges the ended sessions stored since the last round. Returns how many were charged.
pub async fn charge_ended_sessions(svc: &Services) -> Result<usize, BillingError> {
    let pending = svc.store.sessions_to_charge(SESSIONS_PER_ROUND).await?;
    let mut charged = 0;
    for session in pending {
        match charge_session(svc, &session).await {
            Ok(true) => charged += 1,
            Ok(false) => {}
            // One session that cannot be charged must not hold the others back; it stays
            // pending and is tried again next round.
            Err(err) => tracing::warn!(session_id = %session.id, error = %err, "a session could not be charged"),
        }
    }
    Ok(charged)
}

/// Charges one ended session to its member, once (its source is `session:{id}`).
pub async fn charge_session(svc: &Services, session: &UnchargedSession) -> Result<bool, BillingError> {
    let space = &session.makerspace_id;
    let member = member_of(svc, space, session.member_id.as_deref(), &session.user_id).await?;
    let equipment = svc.store.get_equipment(&session.equipment_id).await?;
    let (Some(member), Some(equipment)) = (member, equipment) else {
        tracing::info!(session_id = %session.id, "a session with no member or machine left is not charged");
        svc.store.skip_session_charge(&session.id).await?;
        return Ok(false);
    };
    let Some(price) = svc.store.equipment_price(&equipment.id).await? else {
        svc.store.skip_session_charge(&session.id).await?;
        return Ok(false);
    };
    let settings = svc.store.billing_settings(space).await?.ok_or(BillingError::NotFound("makerspace"))?;
    let tax = price.tax_rate_id.as_deref().and_then(|id| settings.tax_rate(id)).cloned();
    let equipment_type = equipment.kind.as_str();
    let credit = credit_window(svc, &member, equipment_type, session.ended_at).await?;
    // Every started second counts: a tap-and-lock of half a second is a started unit.
    let seconds = ((session.ended_at - session.started_at).num_milliseconds().max(0) + 999) / 1000;
    let busy_seconds = (session.busy_minutes.unwrap_or(0.0) * 60.0).round() as i64;
    let source = format!("session:{}", session.id);
    let make = |available: i64| -> Result<ChargeRecord, StoreError> {
        let used = SessionUse { seconds, busy_seconds, included_available: available };
        let figures = session_charge(&price, &settings.currency, used)
            .map_err(|_| StoreError::Corrupt(format!("session {} is too large to charge", session.id)))?;
        let tax_minor = with_tax(figures.net_minor, tax.as_ref().map(|t| t.percent))
            .map_err(|_| StoreError::Corrupt(format!("session {} is too large to tax", session.id)))?;
        let now = Utc::now().trunc_subsecs(6);
        Ok(ChargeRecord {
            id: new_id(),
            makerspace_id: space.clone(),
            member_id: member.id.clone(),
            source: source.clone(),
            kind: "session".into(),
            description: format!("{} - {} min", equipment.name, figures.billed_minutes),
            equipment_id: Some(equipment.id.clone()),
            equipment_type: Some(equipment_type.to_string()),
            usage_at: session.ended_at.trunc_subsecs(6),
            included_minutes: figures.included_minutes,
            detail: serde_json::to_string(&figures).expect("a charge's figures are plain data"),
            rounding_rule: figures.rule.clone(),
            currency: settings.currency.clone(),
            net_minor: figures.net_minor,
            tax_rate_id: tax.as_ref().map(|t| t.id.clone()),
            tax_percent: tax.as_ref().map(|t| t.percent.to_string()),
            tax_minor,
            total_minor: figures.net_minor + tax_minor,
            status: "open".into(),
            invoice_id: None,
            reason: None,
            created_by: "system".into(),
            created_at: now,
            paid_by_wallet_entry: None,
        })
    };
    let outcome =
        svc.store.charge_usage_once(space, &member.id, &source, credit.as_ref(), Some(&session.id), make).await?;
    Ok(matches!(outcome, Keyed::Done(_)))
}

/// Charges a job that reached its end (done, cancelled, or failed for good), once (its source
/// is `job:{id}`): its chosen quote or what it used, per the space's policy. A job that did
/// not finish is charged what it used: its grams in proportion to its progress, and its time.
pub async fn charge_job(svc: &Services, job: &JobRecord) -> Result<bool, BillingError> {
    let space = &job.makerspace_id;
    let Some(member) = member_of(svc, space, None, &job.owner_id).await? else { return Ok(false) };
    let settings = svc.store.billing_settings(space).await?.ok_or(BillingError::NotFound("makerspace"))?;
    let finished = job.status == crate::domain::job_lifecycle::JobStatus::Done;
    let chosen: Option<crate::domain::pricing::QuoteOption> =
        job.chosen_quote.clone().and_then(|q| serde_json::from_value(q).ok());
    let material = chosen.as_ref().and_then(|q| q.material.clone()).or_else(|| job.requirements.material.clone());
    let ended = job.finished_at.unwrap_or_else(Utc::now);
    let time_s = job.started_at.map(|s| (ended - s).num_seconds().max(0)).unwrap_or(0);
    let share = if finished { 1.0 } else { job.progress.unwrap_or(0.0).clamp(0.0, 100.0) / 100.0 };
    let grams = job.grams.map(|g| crate::domain::inventory::Quantity((g.0 as f64 * share).round() as i64));
    let (how, net) = match (settings.job_charge_policy, &chosen) {
        (JobChargePolicy::Quote, Some(q)) if finished => ("the chosen quote".to_string(), q.total_minor),
        _ => {
            let input = QuoteInput {
                equipment_type: job.equipment_type,
                volume_cm3: None,
                grams,
                time_s: Some(time_s),
                material: material.clone(),
                cut_length_mm: None,
            };
            let quotes: Quotes = match super::pricing::quote(svc, space, &input).await {
                Ok(q) => q,
                Err(err) => {
                    tracing::warn!(job_id = %job.id, error = %err, "a job's use could not be priced: not charged");
                    return Ok(false);
                }
            };
            let Some(option) = quotes.option(material.as_deref(), Quality::AsSliced).or(quotes.options.first()) else {
                return Ok(false);
            };
            (format!("{time_s} s of machine time and the grams used, priced with the price table"), option.total_minor)
        }
    };
    let price = match &job.equipment_id {
        Some(id) => svc.store.equipment_price(id).await?,
        None => None,
    };
    let tax = price.and_then(|p| p.tax_rate_id).and_then(|id| settings.tax_rate(&id).cloned());
    let tax_minor = with_tax(net, tax.as_ref().map(|t| t.percent))?;
    let source = format!("job:{}", job.id);
    let now = Utc::now().trunc_subsecs(6);
    let detail = serde_json::json!({
        "policy": settings.job_charge_policy.as_str(), "status": job.status, "time_s": time_s,
        "grams": grams.map(|g| g.to_text()), "material": material,
    });
    let charge = ChargeRecord {
        id: new_id(),
        makerspace_id: space.clone(),
        member_id: member.id.clone(),
        source: source.clone(),
        kind: "job".into(),
        description: format!("Job {} ({})", job.file_name, job.status.as_str()),
        equipment_id: job.equipment_id.clone(),
        equipment_type: Some(job.equipment_type.as_str().to_string()),
        usage_at: ended.trunc_subsecs(6),
        included_minutes: 0,
        detail: detail.to_string(),
        rounding_rule: format!("{how}; each line rounded once to minor units, half away from zero"),
        currency: settings.currency.clone(),
        net_minor: net,
        tax_rate_id: tax.as_ref().map(|t| t.id.clone()),
        tax_percent: tax.as_ref().map(|t| t.percent.to_string()),
        tax_minor,
        total_minor: net + tax_minor,
        status: "open".into(),
        invoice_id: None,
        reason: None,
        created_by: "system".into(),
        created_at: now,
        paid_by_wallet_entry: None,
    };
    let outcome = svc.store.charge_usage_once(space, &member.id, &source, None, None, |_| Ok(charge)).await?;
    Ok(matches!(outcome, Keyed::Done(_)))
}
