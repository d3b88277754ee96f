//! `/api/v1/makerspaces/{id}/equipment/{eq_id}/job/{pause,resume,cancel}`: a machine's job,
//! controlled from a dashboard by the space's admins or the member using the machine. The
//! answer is 202: the command is on its way; the machine's reports move its state (and each
//! job event reaches the WebSocket as `machine_event`).

use actix_web::{web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::jobs::JobCommand;
use crate::services::job_control;
use crate::web::auth::Caller;
use crate::web::error::ApiError;
use crate::web::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    let path = |action: &str| format!("/makerspaces/{{makerspace_id}}/equipment/{{equipment_id}}/job/{action}");
    cfg.route(&path("pause"), web::post().to(pause))
        .route(&path("resume"), web::post().to(resume))
        .route(&path("cancel"), web::post().to(cancel))
        .route("/makerspaces/{makerspace_id}/equipment/{equipment_id}/clear", web::post().to(clear));
}

/// Confirms the machine's bed is clear after a job: the router may send it the next one.
#[utoipa::path(post, path = "/api/v1/makerspaces/{makerspace_id}/equipment/{equipment_id}/clear", tag = "equipment",
    params(("makerspace_id" = String, Path), ("equipment_id" = String, Path)),
    responses((status = 200, description = "cleared: who and when is kept", body = crate::services::bed_clear::BedCleared),
              (status = 403, body = crate::web::ErrorBody), (status = 404, body = crate::web::ErrorBody),
              (status = 409, description = "`not_awaiting_clear`: no job ended on it since the last confirmation", body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn clear(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (space_id, equipment_id) = path.into_inner();
    Ok(HttpResponse::Ok().json(crate::services::bed_clear::clear(&state, &caller, &space_id, &equipment_id).await?))
}

/// A job command on its way to the machine.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobCommandSent {
    pub equipment_id: String,
    /// `pause`, `resume` or `cancel`.
    pub command: String,
}

async fn send(
    state: &AppState,
    caller: &crate::domain::access::Principal,
    path: web::Path<(String, String)>,
    command: JobCommand,
) -> Result<HttpResponse, ApiError> {
    let (space_id, equipment_id) = path.into_inner();
    let action = command.action().to_string();
    job_control::control(state, caller, &space_id, &equipment_id, command).await?;
    Ok(HttpResponse::Accepted().json(JobCommandSent { equipment_id, command: action }))
}

/// Pauses the machine's running job.
#[utoipa::path(post, path = "/api/v1/makerspaces/{makerspace_id}/equipment/{equipment_id}/job/pause", tag = "equipment",
    params(("makerspace_id" = String, Path), ("equipment_id" = String, Path)),
    responses((status = 202, body = JobCommandSent), (status = 403, body = crate::web::ErrorBody),
              (status = 404, body = crate::web::ErrorBody),
              (status = 409, description = "`unsupported` (the machine's connection cannot), `not_running`, `machine_offline`, `maintenance`, `machine_refused` (the machine, e.g. OctoPrint, said no)",
               body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn pause(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    send(&state, &caller, path, JobCommand::Pause).await
}

/// Resumes the machine's paused job.
#[utoipa::path(post, path = "/api/v1/makerspaces/{makerspace_id}/equipment/{equipment_id}/job/resume", tag = "equipment",
    params(("makerspace_id" = String, Path), ("equipment_id" = String, Path)),
    responses((status = 202, body = JobCommandSent), (status = 403, body = crate::web::ErrorBody),
              (status = 404, body = crate::web::ErrorBody),
              (status = 409, description = "`unsupported`, `not_paused`, `machine_offline`, `maintenance`, `machine_refused`",
               body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn resume(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    send(&state, &caller, path, JobCommand::Resume).await
}

/// Cancels the machine's job (running or paused).
#[utoipa::path(post, path = "/api/v1/makerspaces/{makerspace_id}/equipment/{equipment_id}/job/cancel", tag = "equipment",
    params(("makerspace_id" = String, Path), ("equipment_id" = String, Path)),
    responses((status = 202, body = JobCommandSent), (status = 403, body = crate::web::ErrorBody),
              (status = 404, body = crate::web::ErrorBody),
              (status = 409, description = "`unsupported`, `not_running`, `machine_offline`, `maintenance`, `machine_refused`",
               body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn cancel(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    send(&state, &caller, path, JobCommand::Cancel).await
}
