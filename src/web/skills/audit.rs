//! The skill audit log's endpoint: the lines grants, revocations, decisions and renewals
//! write (`AuditRecord::for_skill`).

use actix_web::{web, HttpResponse};

use crate::services::skills::{sees_person, spaces_for};
use crate::store::skills::AuditFilter;
use crate::web::auth::Caller;
use crate::web::error::ApiError;
use crate::web::AppState;

use super::shapes::{AuditQuery, AuditResponse};

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
