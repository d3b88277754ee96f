//! Skills workflows: certifications granted and revoked, people's requests for a skill and
//! the admins' decisions, with the checks every grant makes (prerequisites, expiry) and the
//! audit lines it writes; and who may see which skill data (another space's things are not
//! found). The gate that machines apply is [`super::gate`].
//!
//! Who may do what: a makerspace_admin of the skill's space and super_admin grant, revoke and
//! decide requests (and may force a grant past missing prerequisites, with a reason);
//! `admin` reads everything; people of the space see their own certifications, requests and
//! audit lines, and request skills for themselves.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::domain::access::{Decision, Principal, Role};
use crate::domain::ids::new_id;
use crate::domain::skills::{expiry_from, missing_prerequisites, CertificationStatus, RequestStatus, SkillStatus};
use crate::domain::validate::{check_len, optional_multiline, optional_text, Invalid};
use crate::store::equipment::{EquipmentFilter, EquipmentRecord};
use crate::store::skills::{
    AuditRecord, CertificationChange, Decision as RequestDecision, SkillFilter, SkillRecord, SkillRequestRecord,
    UserSkillRecord,
};
use crate::store::StoreError;

use super::access::require_member;
use super::{sessions, Services};

#[derive(Debug, thiserror::Error)]
pub enum SkillError {
    #[error("Skill not found")]
    SkillNotFound,
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("your role does not allow this in this makerspace")]
    Forbidden,
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// A grant needs prerequisites the person does not hold: their names and ids.
    #[error("Missing prerequisite skills: {}", names.join(", "))]
    MissingPrerequisites { names: Vec<String>, ids: Vec<String> },
    #[error("this skill is already revoked")]
    AlreadyRevoked,
    #[error("you already hold this skill")]
    AlreadyCertified,
    #[error("Skill request already pending for this user")]
    RequestConflict { existing_request_id: String },
    #[error("this request has already been decided")]
    RequestNotPending,
    /// What was just written could not be read back (a bug or a database fault).
    #[error("the stored {0} could not be read back")]
    Vanished(&'static str),
    #[error(transparent)]
    Store(#[from] StoreError),
}

// ---------------------------------------------------------------------------------------------
// Scope: the caller's rights

/// Turns a decision into an error, naming the thing that is not found.
pub fn decide(decision: Decision, not_found: SkillError) -> Result<(), SkillError> {
    match decision {
        Decision::Allow => Ok(()),
        Decision::Forbidden => Err(SkillError::Forbidden),
        Decision::NotFound => Err(not_found),
    }
}

/// Whether the caller may see a person's certifications, requests and audit lines in a space.
pub fn sees_person(caller: &Principal, space: &str, user_id: &str) -> bool {
    (user_id == caller.user_id && caller.can_read_space(space) == Decision::Allow)
        || caller.can_read_members(space) == Decision::Allow
}

/// A skill within the caller's reach: readable, or manageable when `manage`.
pub async fn load_skill(svc: &Services, caller: &Principal, id: &str, manage: bool) -> Result<SkillRecord, SkillError> {
    let skill = svc.store.get_skill(id).await?.ok_or(SkillError::SkillNotFound)?;
    let decision = if manage {
        caller.can_manage_space(&skill.makerspace_id)
    } else {
        caller.can_read_space(&skill.makerspace_id)
    };
    decide(decision, SkillError::SkillNotFound)?;
    Ok(skill)
}

/// The makerspaces a listing covers: the one asked for (not found when the caller cannot
/// read it), or every one the caller reads.
pub async fn spaces_for(svc: &Services, caller: &Principal, asked: Option<&str>) -> Result<Vec<String>, SkillError> {
    match asked {
        Some(space) => {
            decide(caller.can_read_space(space), SkillError::NotFound("makerspace"))?;
            if svc.store.get_makerspace(space).await?.is_none() {
                return Err(SkillError::NotFound("makerspace"));
            }
            Ok(vec![space.to_string()])
        }
        None => Ok(svc
            .store
            .list_makerspaces()
            .await?
            .into_iter()
            .map(|m| m.id)
            .filter(|id| caller.lists_space(id))
            .collect()),
    }
}

pub fn check_user_id(user_id: &str) -> Result<(), Invalid> {
    check_len("user_id", user_id, 200)
}

/// The machines of a space.
pub async fn space_equipment(svc: &Services, space: &str) -> Result<Vec<EquipmentRecord>, StoreError> {
    svc.store.list_equipment(&EquipmentFilter { makerspace_id: Some(space.to_string()), kind: None }).await
}

/// The skills of a space by id.
pub async fn space_skills(svc: &Services, space: &str) -> Result<HashMap<String, SkillRecord>, StoreError> {
    let skills =
        svc.store.list_skills(&SkillFilter { makerspace_id: Some(space.to_string()), ..Default::default() }).await?;
    Ok(skills.into_iter().map(|s| (s.id.clone(), s)).collect())
}

/// The equipment of the skill's space that needs the skill (for audit lines).
async fn equipment_needing(svc: &Services, skill: &SkillRecord) -> Result<Vec<String>, StoreError> {
    Ok(space_equipment(svc, &skill.makerspace_id)
        .await?
        .into_iter()
        .filter(|e| e.skill_requirements.contains(&skill.id))
        .map(|e| e.id)
        .collect())
}

// ---------------------------------------------------------------------------------------------
// Grants and revocations

fn required_reason(force: bool, reason: Option<String>) -> Result<Option<String>, Invalid> {
    let reason = optional_text("reason", reason, 1000)?;
    if force && reason.is_none() {
        return Err(Invalid::new("a forced grant needs a reason"));
    }
    Ok(reason)
}

/// A certification of `skill` for `user_id`, granted now by `by`.
fn certification(
    skill: &SkillRecord,
    user_id: &str,
    status: CertificationStatus,
    by: &str,
    notes: Option<String>,
    quiz_score: Option<String>,
    now: DateTime<Utc>,
) -> UserSkillRecord {
    let certified = status == CertificationStatus::Certified;
    UserSkillRecord {
        id: new_id(),
        user_id: user_id.to_string(),
        skill_id: skill.id.clone(),
        makerspace_id: skill.makerspace_id.clone(),
        status,
        certified_at: certified.then_some(now),
        expires_at: if certified { expiry_from(now, skill.validity_days) } else { None },
        certified_by: Some(by.to_string()),
        notes,
        quiz_score,
        created_at: now,
        updated_at: now,
    }
}

/// The prerequisite check of a grant: missing prerequisites refuse it unless forced; a
/// forced grant with missing prerequisites adds an override audit line.
async fn prerequisite_gate(
    svc: &Services,
    skill: &SkillRecord,
    user_id: &str,
    force: bool,
    reason: &Option<String>,
    by: &str,
    now: DateTime<Utc>,
) -> Result<Option<AuditRecord>, SkillError> {
    let graph = svc.store.prerequisite_graph(&skill.makerspace_id).await?;
    let certs = svc.store.certifications_of(&skill.makerspace_id, user_id).await?;
    let missing = missing_prerequisites(&skill.id, &certs, &graph, now);
    if missing.is_empty() {
        return Ok(None);
    }
    let skills = space_skills(svc, &skill.makerspace_id).await?;
    let names: Vec<String> =
        missing.iter().map(|id| skills.get(id).map(|s| s.name.clone()).unwrap_or_else(|| id.clone())).collect();
    if !force {
        return Err(SkillError::MissingPrerequisites { names, ids: missing });
    }
    Ok(Some(AuditRecord::for_skill(
        skill,
        "prerequisite_override",
        user_id,
        by,
        reason.clone(),
        json!({"missing_prerequisites": names, "missing_prerequisite_ids": missing}),
        now,
    )))
}

/// A grant asked for by an admin.
pub struct Grant {
    pub skill_id: String,
    pub user_id: String,
    /// certified (default) or pending.
    pub status: Option<CertificationStatus>,
    pub quiz_score: Option<String>,
    pub notes: Option<String>,
    /// Past missing prerequisites (needs a reason).
    pub force: bool,
    pub reason: Option<String>,
}

/// Grants a certification (or records a pending one). Returns it and its skill.
pub async fn grant(
    svc: &Services,
    caller: &Principal,
    asked: Grant,
) -> Result<(UserSkillRecord, SkillRecord), SkillError> {
    let skill = load_skill(svc, caller, &asked.skill_id, true).await?;
    check_user_id(&asked.user_id)?;
    require_member::<SkillError>(svc, caller, &skill.makerspace_id, &asked.user_id).await?;
    let status = asked.status.unwrap_or(CertificationStatus::Certified);
    if !matches!(status, CertificationStatus::Certified | CertificationStatus::Pending) {
        return Err(Invalid::new("status of a grant is certified or pending; revoke to revoke").into());
    }
    if skill.status == SkillStatus::Inactive && status == CertificationStatus::Certified {
        return Err(Invalid::new("this skill is inactive").into());
    }
    let quiz_score = optional_text("quiz_score", asked.quiz_score, 10)?;
    let notes = optional_multiline("notes", asked.notes, 2000)?;
    let reason = required_reason(asked.force, asked.reason)?;
    let now = Utc::now();
    let mut change = CertificationChange::default();
    if status == CertificationStatus::Certified {
        if let Some(line) =
            prerequisite_gate(svc, &skill, &asked.user_id, asked.force, &reason, &caller.user_id, now).await?
        {
            change.audit.push(line);
        }
    }
    let record = certification(&skill, &asked.user_id, status, &caller.user_id, notes, quiz_score, now);
    change.audit.push(AuditRecord::for_skill(
        &skill,
        if status == CertificationStatus::Certified { "skill_granted" } else { "skill_pending" },
        &asked.user_id,
        &caller.user_id,
        reason,
        json!({"status": status, "quiz_score": record.quiz_score, "expires_at": record.expires_at,
               "forced": asked.force, "equipment_authorized": equipment_needing(svc, &skill).await?}),
        now,
    ));
    change.user_skills.push(record);
    let ids = svc.store.apply_certification_change(&change).await?;
    let id = ids.into_iter().next().ok_or(SkillError::Vanished("certification"))?;
    let stored = svc.store.get_user_skill(&id).await?.ok_or(SkillError::Vanished("certification"))?;
    Ok((stored, skill))
}

/// Revokes a certification; a session on a machine that needs the skill ends at once.
pub async fn revoke(
    svc: &Services,
    caller: &Principal,
    user_skill_id: &str,
    reason: Option<String>,
) -> Result<(UserSkillRecord, SkillRecord), SkillError> {
    let not_found = || SkillError::NotFound("user skill");
    let mut record = svc.store.get_user_skill(user_skill_id).await?.ok_or_else(not_found)?;
    decide(caller.can_manage_space(&record.makerspace_id), not_found())?;
    let skill = svc.store.get_skill(&record.skill_id).await?.ok_or(SkillError::SkillNotFound)?;
    if record.status == CertificationStatus::Revoked {
        return Err(SkillError::AlreadyRevoked);
    }
    let reason = optional_text("reason", reason, 1000)?;
    let now = Utc::now();
    let previous = record.status;
    record.status = CertificationStatus::Revoked;
    record.updated_at = now;
    let change = CertificationChange {
        audit: vec![AuditRecord::for_skill(
            &skill,
            "skill_revoked",
            &record.user_id,
            &caller.user_id,
            reason,
            json!({"previous_status": previous, "expires_at": record.expires_at}),
            now,
        )],
        user_skills: vec![record.clone()],
        decision: None,
    };
    svc.store.apply_certification_change(&change).await?;
    sessions::end_sessions_of(svc, &record.makerspace_id, &record.user_id, Some(&record.skill_id), "skill_revoked")
        .await;
    Ok((record, skill))
}

// ---------------------------------------------------------------------------------------------
// Requests

/// Something the space's own people do for themselves (request a skill): its members,
/// service providers and makerspace_admins, and super_admin. `admin` only reads: forbidden.
fn acts_in_space(caller: &Principal, space: &str) -> Decision {
    if caller.has(Role::SuperAdmin) {
        return Decision::Allow;
    }
    let mut own = caller.clone();
    own.roles.remove(&Role::Admin);
    match own.can_read_space(space) {
        Decision::Allow => Decision::Allow,
        _ => match caller.can_read_space(space) {
            Decision::Allow => Decision::Forbidden,
            other => other,
        },
    }
}

/// The caller asks for a skill for themselves.
pub async fn request(
    svc: &Services,
    caller: &Principal,
    skill_id: &str,
    reason: Option<String>,
    notes: Option<String>,
) -> Result<SkillRequestRecord, SkillError> {
    let skill = svc.store.get_skill(skill_id).await?.ok_or(SkillError::SkillNotFound)?;
    decide(acts_in_space(caller, &skill.makerspace_id), SkillError::SkillNotFound)?;
    if skill.status == SkillStatus::Inactive {
        return Err(Invalid::new("this skill is inactive").into());
    }
    let now = Utc::now();
    let certs = svc.store.certifications_of(&skill.makerspace_id, &caller.user_id).await?;
    if certs.iter().any(|c| c.skill_id == skill.id && c.valid_at(now)) {
        return Err(SkillError::AlreadyCertified);
    }
    let record = SkillRequestRecord {
        id: new_id(),
        user_id: caller.user_id.clone(),
        skill_id: skill.id.clone(),
        makerspace_id: skill.makerspace_id.clone(),
        status: RequestStatus::Pending,
        reason: optional_text("reason", reason, 2000)?,
        notes: optional_multiline("notes", notes, 2000)?,
        reviewed_by: None,
        reviewed_at: None,
        created_at: now,
        updated_at: now,
    };
    if let Err(existing_request_id) = svc.store.insert_skill_request(&record).await? {
        return Err(SkillError::RequestConflict { existing_request_id });
    }
    Ok(record)
}

/// An admin's decision on a request.
pub struct RequestVerdict {
    /// approved or rejected.
    pub status: RequestStatus,
    pub notes: Option<String>,
    /// Approve past missing prerequisites (needs a reason).
    pub force: bool,
    pub reason: Option<String>,
}

/// Approves (which grants the certification) or rejects a pending request. Returns the
/// request and the id of the certification an approval granted.
pub async fn decide_request(
    svc: &Services,
    caller: &Principal,
    request_id: &str,
    verdict: RequestVerdict,
) -> Result<(SkillRequestRecord, Option<String>), SkillError> {
    let not_found = || SkillError::NotFound("skill request");
    let mut record = svc.store.get_skill_request(request_id).await?.ok_or_else(not_found)?;
    decide(caller.can_manage_space(&record.makerspace_id), not_found())?;
    let skill = svc.store.get_skill(&record.skill_id).await?.ok_or(SkillError::SkillNotFound)?;
    if verdict.status == RequestStatus::Pending {
        return Err(Invalid::new("a decision is approved or rejected").into());
    }
    if record.status != RequestStatus::Pending {
        return Err(SkillError::RequestNotPending);
    }
    let notes = optional_multiline("notes", verdict.notes, 2000)?;
    let force = verdict.force;
    let reason = required_reason(force, verdict.reason)?;
    let now = Utc::now();
    let mut change = CertificationChange {
        decision: Some(RequestDecision {
            request_id: record.id.clone(),
            status: verdict.status,
            notes: notes.clone(),
            reviewed_by: caller.user_id.clone(),
            reviewed_at: now,
        }),
        ..Default::default()
    };
    let action = if verdict.status == RequestStatus::Approved { "request_approved" } else { "request_rejected" };
    if verdict.status == RequestStatus::Approved {
        if skill.status == SkillStatus::Inactive {
            return Err(Invalid::new("this skill is inactive").into());
        }
        if let Some(line) =
            prerequisite_gate(svc, &skill, &record.user_id, force, &reason, &caller.user_id, now).await?
        {
            change.audit.push(line);
        }
        let cert = certification(
            &skill,
            &record.user_id,
            CertificationStatus::Certified,
            &caller.user_id,
            notes.clone(),
            None,
            now,
        );
        change.audit.push(AuditRecord::for_skill(
            &skill,
            "skill_granted",
            &record.user_id,
            &caller.user_id,
            reason.clone(),
            json!({"request_id": record.id, "expires_at": cert.expires_at, "forced": force,
                   "equipment_authorized": equipment_needing(svc, &skill).await?}),
            now,
        ));
        change.user_skills.push(cert);
    }
    change.audit.push(AuditRecord::for_skill(
        &skill,
        action,
        &record.user_id,
        &caller.user_id,
        reason,
        json!({"request_id": record.id, "notes": notes}),
        now,
    ));
    let ids = match svc.store.apply_certification_change(&change).await {
        Ok(ids) => ids,
        Err(StoreError::Conflict) => return Err(SkillError::RequestNotPending),
        Err(other) => return Err(other.into()),
    };
    record.status = verdict.status;
    if notes.is_some() {
        record.notes = notes;
    }
    record.reviewed_by = Some(caller.user_id.clone());
    record.reviewed_at = Some(now);
    record.updated_at = now;
    Ok((record, ids.into_iter().next()))
}
