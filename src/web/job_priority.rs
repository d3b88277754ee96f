//! `POST /api/v1/makerspaces/{id}/jobs/{job_id}/priority`: the space's admins move a queued
//! job up or down the queue. The workflow is [`crate::services::job_priority`]'s.

use actix_web::{web, HttpResponse};
use utoipa::OpenApi;

use crate::services::job_priority::{self, PriorityRequest};
use crate::web::auth::Caller;
use crate::web::error::ApiError;
use crate::web::AppState;

#[derive(OpenApi)]
#[openapi(paths(set_priority), components(schemas(PriorityRequest)))]
pub struct JobPriorityApi;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/makerspaces/{makerspace_id}/jobs/{job_id}/priority", web::post().to(set_priority));
}

#[utoipa::path(post, path = "/api/v1/makerspaces/{makerspace_id}/jobs/{job_id}/priority", tag = "jobs",
    params(("makerspace_id" = String, Path), ("job_id" = String, Path)),
    request_body = PriorityRequest,
    responses((status = 200, description = "the job with its new priority (the change is in its history)", body = crate::services::jobs::JobView),
              (status = 403, description = "only the space's admins change a job's priority", body = crate::web::ErrorBody),
              (status = 404, body = crate::web::ErrorBody),
              (status = 409, description = "`job_not_queued`: the job is on a machine or finished already", body = crate::web::ErrorBody),
              (status = 422, description = "a priority outside -10..10", body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn set_priority(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<(String, String)>,
    body: web::Json<PriorityRequest>,
) -> Result<HttpResponse, ApiError> {
    let (space_id, job_id) = path.into_inner();
    let job = job_priority::reprioritise(&state, &caller, &space_id, &job_id, body.priority).await?;
    Ok(HttpResponse::Ok().json(job))
}
