//! The skill gate on the hot path, called by bookings and the kiosk as well as by the access
//! checks: may this person use this machine at this instant (membership, and every required
//! skill with its prerequisites certified and unexpired), and the renewal of certifications
//! on a certified use. The rules are the domain's ([`crate::domain::skills::check_access`]);
//! a refusal is a [`GateError`].

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use crate::domain::members::{effective_status, MemberStatus};
use crate::domain::skills::{check_access, expiry_from, AccessDecision, MembershipProblem};
use crate::store::cache::SkillCatalog;
use crate::store::equipment::EquipmentRecord;
use crate::store::skills::{AuditRecord, CertificationChange, UserSkillFilter};
use crate::store::StoreError;

use super::Services;

#[derive(Debug, thiserror::Error)]
pub enum GateError {
    /// The person may not use the machine: `insufficient_skills` (naming every missing skill)
    /// or `membership_inactive`.
    #[error("{detail}")]
    Refused { detail: String, error_type: &'static str, missing_skills: Vec<String> },
    #[error("equipment not found")]
    UnknownEquipment,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What the gate says about one person and one machine.
#[derive(Debug, Serialize, ToSchema)]
pub struct EquipmentAccess {
    pub equipment_id: String,
    pub equipment_name: String,
    pub makerspace_id: String,
    pub can_access: bool,
    /// Names of the needed skills the person holds.
    pub user_skills: Vec<String>,
    /// Names of every needed skill (required, and their prerequisites) not certified and
    /// unexpired at the instant checked.
    pub missing_skills: Vec<String>,
    pub missing_skill_ids: Vec<String>,
    /// False when the person's membership does not grant access.
    pub membership_ok: bool,
    pub reason: String,
}

/// What one makerspace's gate needs besides the person: its skills and prerequisite graph
/// (from the store's catalog cache).
pub struct SpaceRules(Arc<SkillCatalog>);

impl std::ops::Deref for SpaceRules {
    type Target = SkillCatalog;
    fn deref(&self) -> &SkillCatalog {
        &self.0
    }
}

impl SpaceRules {
    pub async fn load(svc: &Services, space: &str) -> Result<SpaceRules, StoreError> {
        Ok(SpaceRules(svc.store.skill_catalog(space).await?))
    }

    pub fn name(&self, id: &str) -> String {
        self.skills.get(id).map(|s| s.name.clone()).unwrap_or_else(|| id.to_string())
    }
}

/// The person's effective membership status in a makerspace at `at` (`None`: not a member).
async fn member_status(
    svc: &Services,
    space: &str,
    user_id: &str,
    at: DateTime<Utc>,
) -> Result<Option<MemberStatus>, StoreError> {
    // The person's memberships are cached (every authenticated request reads them too).
    let memberships = svc.store.memberships_of(user_id).await?;
    Ok(memberships.iter().find(|m| m.makerspace_id == space).map(|m| {
        effective_status(MemberStatus::parse(&m.status).unwrap_or(MemberStatus::Pending), m.end_date, at.date_naive())
    }))
}

/// Runs the gate for one machine.
pub async fn evaluate(
    svc: &Services,
    rules: &SpaceRules,
    equipment: &EquipmentRecord,
    user_id: &str,
    at: DateTime<Utc>,
) -> Result<(AccessDecision, EquipmentAccess), StoreError> {
    evaluate_vouched(svc, rules, equipment, user_id, false, at).await
}

/// The gate for one machine; `vouched`: the identity provider's token says the person
/// belongs to the makerspace, which counts as an active membership when our database has
/// none (a database membership, suspended say, always wins).
async fn evaluate_vouched(
    svc: &Services,
    rules: &SpaceRules,
    equipment: &EquipmentRecord,
    user_id: &str,
    vouched: bool,
    at: DateTime<Utc>,
) -> Result<(AccessDecision, EquipmentAccess), StoreError> {
    let member =
        member_status(svc, &equipment.makerspace_id, user_id, at).await?.or(vouched.then_some(MemberStatus::Active));
    evaluate_with(svc, rules, equipment, user_id, member, at).await
}

/// The gate for one machine, for a person whose membership status is already known.
async fn evaluate_with(
    svc: &Services,
    rules: &SpaceRules,
    equipment: &EquipmentRecord,
    user_id: &str,
    member: Option<MemberStatus>,
    at: DateTime<Utc>,
) -> Result<(AccessDecision, EquipmentAccess), StoreError> {
    let certs = svc.store.certifications_of(&equipment.makerspace_id, user_id).await?;
    let decision = check_access(member, &certs, &equipment.skill_requirements, &rules.graph, at);
    let missing_skills: Vec<String> = decision.missing.iter().map(|id| rules.name(id)).collect();
    let reason = match decision.membership {
        Err(MembershipProblem::NotAMember) => "Not a member of this makerspace".to_string(),
        Err(MembershipProblem::Inactive(status)) => format!("Membership is {}", status.as_str()),
        Ok(()) if missing_skills.is_empty() => "All required skills are certified".to_string(),
        Ok(()) => format!("Missing required skills: {}", missing_skills.join(", ")),
    };
    let access = EquipmentAccess {
        equipment_id: equipment.id.clone(),
        equipment_name: equipment.name.clone(),
        makerspace_id: equipment.makerspace_id.clone(),
        can_access: decision.allowed(),
        user_skills: decision.held.iter().map(|id| rules.name(id)).collect(),
        missing_skills,
        missing_skill_ids: decision.missing.clone(),
        membership_ok: decision.membership.is_ok(),
        reason,
    };
    Ok((decision, access))
}

fn refusal(decision: &AccessDecision, access: &EquipmentAccess) -> GateError {
    let error_type = if decision.membership.is_ok() { "insufficient_skills" } else { "membership_inactive" };
    GateError::Refused { detail: access.reason.clone(), error_type, missing_skills: access.missing_skills.clone() }
}

/// The gate for booking or using a machine at `at`, without renewing anything: `Ok` or the
/// refusal naming every missing skill. `vouched` as for [`evaluate_vouched`].
pub async fn require_access(
    svc: &Services,
    equipment: &EquipmentRecord,
    user_id: &str,
    vouched: bool,
    at: DateTime<Utc>,
) -> Result<(), GateError> {
    let rules = SpaceRules::load(svc, &equipment.makerspace_id).await?;
    let (decision, access) = evaluate_vouched(svc, &rules, equipment, user_id, vouched, at).await?;
    if decision.allowed() {
        Ok(())
    } else {
        Err(refusal(&decision, &access))
    }
}

/// As [`require_access`], for a member whose effective status the caller already read (the
/// kiosk, from the card's member), which saves the gate a lookup.
pub async fn require_access_as(
    svc: &Services,
    equipment: &EquipmentRecord,
    user_id: &str,
    member: MemberStatus,
    at: DateTime<Utc>,
) -> Result<(), GateError> {
    let rules = SpaceRules::load(svc, &equipment.makerspace_id).await?;
    let (decision, access) = evaluate_with(svc, &rules, equipment, user_id, Some(member), at).await?;
    if decision.allowed() {
        Ok(())
    } else {
        Err(refusal(&decision, &access))
    }
}

/// Until when a member (whose effective status the caller read) may use a machine, as far as
/// the gate knows at `at`: `None` when not now, else the earliest expiry of the certifications
/// the machine needs (`Some(None)`: none of them expires). For bridges' offline allowlists.
pub async fn allowed_until(
    svc: &Services,
    rules: &SpaceRules,
    equipment: &EquipmentRecord,
    user_id: &str,
    member: MemberStatus,
    at: DateTime<Utc>,
) -> Result<Option<Option<DateTime<Utc>>>, StoreError> {
    let (decision, _) = evaluate_with(svc, rules, equipment, user_id, Some(member), at).await?;
    if !decision.allowed() {
        return Ok(None);
    }
    let certs = svc.store.certifications_of(&equipment.makerspace_id, user_id).await?;
    let ends = certs.iter().filter(|c| decision.held.contains(&c.skill_id)).filter_map(|c| c.expires_at);
    Ok(Some(ends.min()))
}

/// The machines of `machines` a person may use at `at` (for availability listings).
pub async fn usable_by(
    svc: &Services,
    makerspace_id: &str,
    machines: Vec<EquipmentRecord>,
    user_id: &str,
    vouched: bool,
    at: DateTime<Utc>,
) -> Result<Vec<EquipmentRecord>, StoreError> {
    let rules = SpaceRules::load(svc, makerspace_id).await?;
    let mut out = Vec::with_capacity(machines.len());
    for machine in machines {
        if evaluate_vouched(svc, &rules, &machine, user_id, vouched, at).await?.0.allowed() {
            out.push(machine);
        }
    }
    Ok(out)
}

/// What a certified use did.
#[derive(Debug, Serialize, ToSchema)]
pub struct CertifiedUse {
    pub access: EquipmentAccess,
    /// Certifications extended by this use: skill id and new expiry.
    pub renewed: Vec<(String, DateTime<Utc>)>,
}

/// A person starts using a machine at `at`: the gate decides (`insufficient_skills` with
/// every missing skill, or `membership_inactive`), and each of the machine's required skills
/// whose `renew_on_use` is set has its certification extended to `at` + its validity (never
/// shortened). Writes an audit line per renewal.
pub async fn record_certified_use(
    svc: &Services,
    equipment_id: &str,
    user_id: &str,
    at: DateTime<Utc>,
) -> Result<CertifiedUse, GateError> {
    let equipment = svc.store.get_equipment(equipment_id).await?.ok_or(GateError::UnknownEquipment)?;
    let rules = SpaceRules::load(svc, &equipment.makerspace_id).await?;
    let (decision, access) = evaluate(svc, &rules, &equipment, user_id, at).await?;
    if !decision.allowed() {
        return Err(refusal(&decision, &access));
    }
    let renewed = renew_on_use(svc, &rules, &equipment, user_id, at).await?;
    Ok(CertifiedUse { access, renewed })
}

/// Extends, for a use of `equipment` at `at` that the gate already allowed, each required
/// certification whose skill renews on use, to `at` + its validity (never shortened). Writes
/// an audit line per renewal. Returns the renewed skills and their new expiry.
async fn renew_on_use(
    svc: &Services,
    rules: &SpaceRules,
    equipment: &EquipmentRecord,
    user_id: &str,
    at: DateTime<Utc>,
) -> Result<Vec<(String, DateTime<Utc>)>, StoreError> {
    // Nothing to do (and no query) unless one of the machine's skills renews on use.
    let renewing = equipment.skill_requirements.iter().any(|id| rules.skills.get(id).is_some_and(|s| s.renew_on_use));
    if !renewing {
        return Ok(Vec::new());
    }
    let held = svc
        .store
        .list_user_skills(&UserSkillFilter {
            makerspace_id: Some(equipment.makerspace_id.clone()),
            user_id: Some(user_id.to_string()),
            skill_id: None,
        })
        .await?;
    let mut change = CertificationChange::default();
    let mut renewed = Vec::new();
    for mut u in held {
        let Some(skill) = rules.skills.get(&u.skill_id) else { continue };
        if !skill.renew_on_use || !equipment.skill_requirements.contains(&u.skill_id) {
            continue;
        }
        let Some(new_expiry) = expiry_from(at, skill.validity_days) else { continue };
        if u.expires_at.is_some_and(|current| current >= new_expiry) {
            continue;
        }
        change.audit.push(AuditRecord::for_skill(
            skill,
            "renewed_on_use",
            user_id,
            user_id,
            None,
            json!({"equipment_id": equipment.id, "previous_expires_at": u.expires_at, "expires_at": new_expiry}),
            at,
        ));
        u.expires_at = Some(new_expiry);
        u.updated_at = Utc::now();
        renewed.push((u.skill_id.clone(), new_expiry));
        change.user_skills.push(u);
    }
    if !change.user_skills.is_empty() {
        svc.store.apply_certification_change(&change).await?;
    }
    Ok(renewed)
}

/// After a granted unlock: renews what the use renews (the gate was checked before the
/// unlock, with [`require_access_as`]).
pub async fn record_use(
    svc: &Services,
    equipment: &EquipmentRecord,
    user_id: &str,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let rules = SpaceRules::load(svc, &equipment.makerspace_id).await?;
    renew_on_use(svc, &rules, equipment, user_id, at).await.map(|_| ())
}
