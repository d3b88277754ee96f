//! Certification requests: people ask for a skill for themselves; a makerspace_admin approves
//! (which grants the certification) or rejects.

use actix_web::{web, HttpResponse};
use chrono::Utc;
use serde_json::json;

use crate::domain::access::{Decision, Principal, Role};
use crate::domain::ids::new_id;
use crate::domain::skills::{CertificationStatus, RequestStatus, SkillStatus};
use crate::store::skills::{CertificationChange, Decision as RequestDecision, RequestFilter, SkillRequestRecord};
use crate::store::StoreError;
use crate::web::auth::Caller;
use crate::web::error::ApiError;
use crate::web::validate::optional_text;
use crate::web::AppState;

use super::audit::{audit, equipment_needing};
use super::certifications::{certification, prerequisite_gate, required_reason};
use super::scope::{decide, sees_person, skill_not_found, spaces_for};
use super::shapes::{RequestListQuery, SkillRequestCreate, SkillRequestDecision, SkillRequestResponse};

/// Something the space's own people do for themselves (request a skill): its members,
/// service providers and makerspace_admins, and super_admin. `admin` only reads: 403.
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

#[utoipa::path(post, path = "/api/v1/skills/requests", tag = "skills", request_body = SkillRequestCreate,
    responses((status = 201, body = SkillRequestResponse), (status = 403, body = crate::web::ErrorBody),
              (status = 404, body = crate::web::ErrorBody),
              (status = 409, description = "request_conflict, with existing_request_id; already_certified",
               body = crate::web::ErrorBody),
              (status = 422, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn request(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    body: web::Json<SkillRequestCreate>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let skill = state.store.get_skill(&body.skill_id).await?.ok_or_else(skill_not_found)?;
    decide(acts_in_space(&caller, &skill.makerspace_id), skill_not_found)?;
    if skill.status == SkillStatus::Inactive {
        return Err(ApiError::Validation("this skill is inactive".into()));
    }
    let now = Utc::now();
    let certs = state.store.certifications_of(&skill.makerspace_id, &caller.user_id).await?;
    if certs.iter().any(|c| c.skill_id == skill.id && c.valid_at(now)) {
        return Err(ApiError::Conflict {
            detail: "you already hold this skill".into(),
            error_type: "already_certified",
        });
    }
    let record = SkillRequestRecord {
        id: new_id(),
        user_id: caller.user_id.clone(),
        skill_id: skill.id.clone(),
        makerspace_id: skill.makerspace_id.clone(),
        status: RequestStatus::Pending,
        reason: optional_text("reason", body.reason, 2000)?,
        notes: optional_text("notes", body.notes, 2000)?,
        reviewed_by: None,
        reviewed_at: None,
        created_at: now,
        updated_at: now,
    };
    if let Err(existing) = state.store.insert_skill_request(&record).await? {
        return Err(ApiError::conflict_with(
            "Skill request already pending for this user",
            "request_conflict",
            json!({"existing_request_id": existing}),
        ));
    }
    Ok(HttpResponse::Created().json(SkillRequestResponse::new(record, None)))
}

#[utoipa::path(get, path = "/api/v1/skills/requests", tag = "skills", params(RequestListQuery),
    responses((status = 200, body = [SkillRequestResponse]), (status = 404, body = crate::web::ErrorBody),
              (status = 422, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_requests(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    query: web::Query<RequestListQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let mut out = Vec::new();
    for space in spaces_for(&state, &caller, query.makerspace_id.as_deref()).await? {
        let rows = state
            .store
            .list_skill_requests(&RequestFilter {
                makerspace_id: Some(space.clone()),
                user_id: query.user_id.clone(),
                status: query.status,
            })
            .await?;
        out.extend(
            rows.into_iter()
                .filter(|r| sees_person(&caller, &space, &r.user_id))
                .map(|r| SkillRequestResponse::new(r, None)),
        );
    }
    Ok(HttpResponse::Ok().json(out))
}

#[utoipa::path(put, path = "/api/v1/skills/requests/{request_id}", tag = "skills",
    params(("request_id" = String, Path)), request_body = SkillRequestDecision,
    responses((status = 200, body = SkillRequestResponse), (status = 403, body = crate::web::ErrorBody),
              (status = 404, body = crate::web::ErrorBody), (status = 409, body = crate::web::ErrorBody),
              (status = 422, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn decide_request(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<String>,
    body: web::Json<SkillRequestDecision>,
) -> Result<HttpResponse, ApiError> {
    let not_found = || ApiError::not_found("skill request");
    let mut record = state.store.get_skill_request(&path.into_inner()).await?.ok_or_else(not_found)?;
    decide(caller.can_manage_space(&record.makerspace_id), not_found)?;
    let skill = state.store.get_skill(&record.skill_id).await?.ok_or_else(skill_not_found)?;
    let body = body.into_inner();
    if body.status == RequestStatus::Pending {
        return Err(ApiError::Validation("a decision is approved or rejected".into()));
    }
    let not_pending = || ApiError::Conflict {
        detail: "this request has already been decided".into(),
        error_type: "request_not_pending",
    };
    if record.status != RequestStatus::Pending {
        return Err(not_pending());
    }
    let notes = optional_text("notes", body.notes, 2000)?;
    let force = body.force.unwrap_or(false);
    let reason = required_reason(force, body.reason)?;
    let now = Utc::now();
    let mut change = CertificationChange {
        decision: Some(RequestDecision {
            request_id: record.id.clone(),
            status: body.status,
            notes: notes.clone(),
            reviewed_by: caller.user_id.clone(),
            reviewed_at: now,
        }),
        ..Default::default()
    };
    let action = if body.status == RequestStatus::Approved { "request_approved" } else { "request_rejected" };
    if body.status == RequestStatus::Approved {
        if skill.status == SkillStatus::Inactive {
            return Err(ApiError::Validation("this skill is inactive".into()));
        }
        if let Some(line) =
            prerequisite_gate(&state, &skill, &record.user_id, force, &reason, &caller.user_id, now).await?
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
        change.audit.push(audit(
            &skill,
            "skill_granted",
            &record.user_id,
            &caller.user_id,
            reason.clone(),
            json!({"request_id": record.id, "expires_at": cert.expires_at, "forced": force,
                   "equipment_authorized": equipment_needing(&state, &skill).await?}),
            now,
        ));
        change.user_skills.push(cert);
    }
    change.audit.push(audit(
        &skill,
        action,
        &record.user_id,
        &caller.user_id,
        reason,
        json!({"request_id": record.id, "notes": notes}),
        now,
    ));
    let ids = match state.store.apply_certification_change(&change).await {
        Ok(ids) => ids,
        Err(StoreError::Conflict) => return Err(not_pending()),
        Err(other) => return Err(other.into()),
    };
    record.status = body.status;
    if notes.is_some() {
        record.notes = notes;
    }
    record.reviewed_by = Some(caller.user_id.clone());
    record.reviewed_at = Some(now);
    record.updated_at = now;
    Ok(HttpResponse::Ok().json(SkillRequestResponse::new(record, ids.into_iter().next())))
}
