//! People's certifications (user skills) over HTTP: granting, listing and revoking them. What
//! a grant checks and writes is [`crate::services::skills`]'.

use actix_web::{web, HttpResponse};
use chrono::Utc;

use crate::services::skills::{self, sees_person, space_skills, spaces_for, Grant};
use crate::store::skills::UserSkillFilter;
use crate::web::auth::Caller;
use crate::web::error::ApiError;
use crate::web::AppState;

use super::shapes::{GrantRequest, RevokeQuery, UserSkillQuery, UserSkillResponse};

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
    let asked = Grant {
        skill_id: body.skill_id,
        user_id: body.user_id,
        status: body.status,
        quiz_score: body.quiz_score,
        notes: body.notes,
        force: body.force.unwrap_or(false),
        reason: body.reason,
    };
    let (stored, skill) = skills::grant(&state, &caller, asked).await?;
    Ok(HttpResponse::Created().json(UserSkillResponse::new(stored, &skill, Utc::now())))
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
    let (record, skill) = skills::revoke(&state, &caller, &path.into_inner(), query.into_inner().reason).await?;
    Ok(HttpResponse::Ok().json(UserSkillResponse::new(record, &skill, Utc::now())))
}
