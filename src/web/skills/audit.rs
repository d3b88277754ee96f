//! The skill audit log: the lines grants, revocations, decisions and renewals write, and the
//! endpoint that reads them.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};

use crate::domain::ids::new_id;
use crate::store::skills::{AuditFilter, AuditRecord, SkillRecord};
use crate::web::auth::Caller;
use crate::web::error::ApiError;
use crate::web::AppState;

use super::catalog::space_equipment;
use super::scope::{sees_person, spaces_for};
use super::shapes::{AuditQuery, AuditResponse};

/// The equipment of the skill's space that needs the skill (for audit lines).
pub(super) async fn equipment_needing(state: &AppState, skill: &SkillRecord) -> Result<Vec<String>, ApiError> {
    Ok(space_equipment(state, &skill.makerspace_id)
        .await?
        .into_iter()
        .filter(|e| e.skill_requirements.contains(&skill.id))
        .map(|e| e.id)
        .collect())
}

pub(super) fn audit(
    skill: &SkillRecord,
    action: &str,
    user_id: &str,
    by: &str,
    reason: Option<String>,
    metadata: serde_json::Value,
    at: DateTime<Utc>,
) -> AuditRecord {
    AuditRecord {
        id: new_id(),
        makerspace_id: skill.makerspace_id.clone(),
        action: action.to_string(),
        user_id: user_id.to_string(),
        skill_id: Some(skill.id.clone()),
        performed_by: Some(by.to_string()),
        reason,
        metadata,
        created_at: at,
    }
}

#[utoipa::path(get, path = "/api/v1/skills/audit-logs", tag = "skills", params(AuditQuery),
    responses((status = 200, body = [AuditResponse]), (status = 404, body = crate::web::ErrorBody),
              (status = 422, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn audit_logs(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    query: web::Query<AuditQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let mut out = Vec::new();
    for space in spaces_for(&state, &caller, query.makerspace_id.as_deref()).await? {
        let rows = state
            .store
            .list_skill_audit(&AuditFilter {
                makerspace_id: Some(space.clone()),
                user_id: query.user_id.clone(),
                skill_id: query.skill_id.clone(),
                action: query.action.clone(),
            })
            .await?;
        out.extend(rows.into_iter().filter(|a| sees_person(&caller, &space, &a.user_id)).map(|a| AuditResponse {
            id: a.id,
            makerspace_id: a.makerspace_id,
            action: a.action,
            user_id: a.user_id,
            skill_id: a.skill_id,
            performed_by: a.performed_by,
            reason: a.reason,
            metadata: a.metadata,
            created_at: a.created_at,
        }));
    }
    Ok(HttpResponse::Ok().json(out))
}
