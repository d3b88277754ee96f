//! `GET /api/v1/makerspaces/{id}/jobs/machine-health`: each machine's failed prints of the
//! last days and whether the dashboard flags it. The figures are
//! [`crate::services::machine_health`]'s.

use actix_web::{web, HttpResponse};
use utoipa::OpenApi;

use crate::services::machine_health::{self, MachineHealth, MachineHealthReport};
use crate::web::auth::Caller;
use crate::web::error::ApiError;
use crate::web::AppState;

#[derive(OpenApi)]
#[openapi(paths(report), components(schemas(MachineHealth, MachineHealthReport)))]
pub struct MachineHealthApi;

/// Registered before `jobs/{job_id}`, which would take `machine-health` for a job's id.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/makerspaces/{makerspace_id}/jobs/machine-health", web::get().to(report));
}

#[utoipa::path(get, path = "/api/v1/makerspaces/{makerspace_id}/jobs/machine-health", tag = "jobs",
    params(("makerspace_id" = String, Path)),
    responses((status = 200, description = "every machine of the space with its failed prints in the window; `flagged` when they reach `flag_at_failures`", body = MachineHealthReport),
              (status = 404, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn report(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(machine_health::report(&state, &caller, &path.into_inner()).await?))
}
