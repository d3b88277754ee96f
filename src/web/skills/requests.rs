//! Certification requests over HTTP: people ask for a skill for themselves; a
//! makerspace_admin approves (which grants the certification) or rejects. The workflow is
//! [`crate::services::skills`]'.

use actix_web::{web, HttpResponse};

use crate::services::skills::{self, sees_person, spaces_for, RequestVerdict};
use crate::store::skills::RequestFilter;
use crate::web::auth::Caller;
use crate::web::error::ApiError;
use crate::web::AppState;

use super::shapes::{RequestListQuery, SkillRequestCreate, SkillRequestDecision, SkillRequestResponse};

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
    let record = skills::request(&state, &caller, &body.skill_id, body.reason, body.notes).await?;
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
    let body = body.into_inner();
    let verdict = RequestVerdict {
        status: body.status,
        notes: body.notes,
        force: body.force.unwrap_or(false),
        reason: body.reason,
    };
    let (record, granted) = skills::decide_request(&state, &caller, &path.into_inner(), verdict).await?;
    Ok(HttpResponse::Ok().json(SkillRequestResponse::new(record, granted)))
}
