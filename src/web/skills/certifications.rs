//! People's certifications (user skills): granting, listing and revoking them, and what a grant
//! checks and writes (also for an approved request): prerequisites, expiry, audit lines.

use std::collections::HashMap;

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde_json::json;

use crate::domain::ids::new_id;
use crate::domain::skills::{expiry_from, missing_prerequisites, CertificationStatus, SkillStatus};
use crate::store::skills::{
    AuditRecord, CertificationChange, SkillFilter, SkillRecord, UserSkillFilter, UserSkillRecord,
};
use crate::web::auth::Caller;
use crate::web::error::ApiError;
use crate::web::validate::optional_text;
use crate::web::AppState;

use super::audit::{audit, equipment_needing};
use super::scope::{check_user_id, decide, load_skill, sees_person, skill_not_found, spaces_for};
use super::shapes::{GrantRequest, RevokeQuery, UserSkillQuery, UserSkillResponse};

pub(super) fn required_reason(force: bool, reason: Option<String>) -> Result<Option<String>, ApiError> {
    let reason = optional_text("reason", reason, 1000)?;
    if force && reason.is_none() {
        return Err(ApiError::Validation("a forced grant needs a reason".into()));
    }
    Ok(reason)
}

/// A certification of `skill` for `user_id`, granted now by `by`.
pub(super) fn certification(
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

/// The prerequisite check of a grant: missing prerequisites refuse it (409 with their names)
/// unless forced; a forced grant with missing prerequisites adds an override audit line.
pub(super) async fn prerequisite_gate(
    state: &AppState,
    skill: &SkillRecord,
    user_id: &str,
    force: bool,
    reason: &Option<String>,
    by: &str,
    now: DateTime<Utc>,
) -> Result<Option<AuditRecord>, ApiError> {
    let graph = state.store.prerequisite_graph(&skill.makerspace_id).await?;
    let certs = state.store.certifications_of(&skill.makerspace_id, user_id).await?;
    let missing = missing_prerequisites(&skill.id, &certs, &graph, now);
    if missing.is_empty() {
        return Ok(None);
    }
    let names = skill_names(state, &skill.makerspace_id, &missing).await?;
    if !force {
        return Err(ApiError::conflict_with(
            format!("Missing prerequisite skills: {}", names.join(", ")),
            "missing_prerequisites",
            json!({"missing_prerequisites": names, "missing_prerequisite_ids": missing}),
        ));
    }
    Ok(Some(audit(
        skill,
        "prerequisite_override",
        user_id,
        by,
        reason.clone(),
        json!({"missing_prerequisites": names, "missing_prerequisite_ids": missing}),
        now,
    )))
}

async fn skill_names(state: &AppState, space: &str, ids: &[String]) -> Result<Vec<String>, ApiError> {
    let skills = space_skills(state, space).await?;
    Ok(ids.iter().map(|id| skills.get(id).map(|s| s.name.clone()).unwrap_or_else(|| id.clone())).collect())
}

async fn space_skills(state: &AppState, space: &str) -> Result<HashMap<String, SkillRecord>, ApiError> {
    let skills =
        state.store.list_skills(&SkillFilter { makerspace_id: Some(space.to_string()), ..Default::default() }).await?;
    Ok(skills.into_iter().map(|s| (s.id.clone(), s)).collect())
}

#[utoipa::path(post, path = "/api/v1/skills/user-skills", tag = "skills", request_body = GrantRequest,
    responses((status = 201, body = UserSkillResponse), (status = 403, body = crate::web::ErrorBody),
              (status = 404, body = crate::web::ErrorBody),
              (status = 409, description = "missing_prerequisites, with missing_prerequisites", body = crate::web::ErrorBody),
              (status = 422, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn grant(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    body: web::Json<GrantRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let skill = load_skill(&state, &caller, &body.skill_id, true).await?;
    check_user_id(&body.user_id)?;
    let status = body.status.unwrap_or(CertificationStatus::Certified);
    if !matches!(status, CertificationStatus::Certified | CertificationStatus::Pending) {
        return Err(ApiError::Validation("status of a grant is certified or pending; revoke to revoke".into()));
    }
    if skill.status == SkillStatus::Inactive && status == CertificationStatus::Certified {
        return Err(ApiError::Validation("this skill is inactive".into()));
    }
    let quiz_score = optional_text("quiz_score", body.quiz_score, 10)?;
    let notes = optional_text("notes", body.notes, 2000)?;
    let force = body.force.unwrap_or(false);
    let reason = required_reason(force, body.reason)?;
    let now = Utc::now();
    let mut change = CertificationChange::default();
    if status == CertificationStatus::Certified {
        if let Some(line) =
            prerequisite_gate(&state, &skill, &body.user_id, force, &reason, &caller.user_id, now).await?
        {
            change.audit.push(line);
        }
    }
    let record = certification(&skill, &body.user_id, status, &caller.user_id, notes, quiz_score, now);
    change.audit.push(audit(
        &skill,
        if status == CertificationStatus::Certified { "skill_granted" } else { "skill_pending" },
        &body.user_id,
        &caller.user_id,
        reason,
        json!({"status": status, "quiz_score": record.quiz_score, "expires_at": record.expires_at, "forced": force,
               "equipment_authorized": equipment_needing(&state, &skill).await?}),
        now,
    ));
    change.user_skills.push(record);
    let ids = state.store.apply_certification_change(&change).await?;
    let id = ids.into_iter().next().ok_or(ApiError::Internal)?;
    let stored = state.store.get_user_skill(&id).await?.ok_or(ApiError::Internal)?;
    Ok(HttpResponse::Created().json(UserSkillResponse::new(stored, &skill, now)))
}

#[utoipa::path(get, path = "/api/v1/skills/user-skills", tag = "skills", params(UserSkillQuery),
    responses((status = 200, body = [UserSkillResponse]), (status = 404, body = crate::web::ErrorBody),
              (status = 422, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_user_skills(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    query: web::Query<UserSkillQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let now = Utc::now();
    let mut out = Vec::new();
    for space in spaces_for(&state, &caller, query.makerspace_id.as_deref()).await? {
        let rows = state
            .store
            .list_user_skills(&UserSkillFilter {
                makerspace_id: Some(space.clone()),
                user_id: query.user_id.clone(),
                skill_id: query.skill_id.clone(),
            })
            .await?;
        if rows.is_empty() {
            continue;
        }
        let skills = space_skills(&state, &space).await?;
        out.extend(
            rows.into_iter()
                .filter(|u| sees_person(&caller, &space, &u.user_id))
                .filter_map(|u| skills.get(&u.skill_id).map(|s| UserSkillResponse::new(u, s, now)))
                .filter(|u| query.status.is_none_or(|s| s == u.status)),
        );
    }
    Ok(HttpResponse::Ok().json(out))
}

#[utoipa::path(post, path = "/api/v1/skills/user-skills/{user_skill_id}/revoke", tag = "skills",
    params(("user_skill_id" = String, Path), RevokeQuery),
    responses((status = 200, body = UserSkillResponse), (status = 403, body = crate::web::ErrorBody),
              (status = 404, body = crate::web::ErrorBody), (status = 409, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn revoke(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<String>,
    query: web::Query<RevokeQuery>,
) -> Result<HttpResponse, ApiError> {
    let not_found = || ApiError::not_found("user skill");
    let mut record = state.store.get_user_skill(&path.into_inner()).await?.ok_or_else(not_found)?;
    decide(caller.can_manage_space(&record.makerspace_id), not_found)?;
    let skill = state.store.get_skill(&record.skill_id).await?.ok_or_else(skill_not_found)?;
    if record.status == CertificationStatus::Revoked {
        return Err(ApiError::Conflict {
            detail: "this skill is already revoked".into(),
            error_type: "already_revoked",
        });
    }
    let reason = optional_text("reason", query.into_inner().reason, 1000)?;
    let now = Utc::now();
    let previous = record.status;
    record.status = CertificationStatus::Revoked;
    record.updated_at = now;
    let change = CertificationChange {
        audit: vec![audit(
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
    state.store.apply_certification_change(&change).await?;
    // A session on a machine that needs the revoked skill ends at once.
    crate::web::kiosk::end_sessions_of(
        &state,
        &record.makerspace_id,
        &record.user_id,
        Some(&record.skill_id),
        "skill_revoked",
    )
    .await;
    Ok(HttpResponse::Ok().json(UserSkillResponse::new(record, &skill, now)))
}
