//! `/api/v1/makerspaces/{id}/equipment/{eq_id}/mqtt-credentials`: the credentials a machine
//! connects to the MQTT broker with. The space's makerspace_admin (or a super_admin) issues
//! them (the password is shown once; issuing again replaces them) and revokes them (the
//! device is disconnected at once).

use actix_web::{web, HttpResponse};

use crate::services::broker_access::{self, IssuedCredentials};
use crate::web::auth::Caller;
use crate::web::error::ApiError;
use crate::web::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/makerspaces/{makerspace_id}/equipment/{equipment_id}/mqtt-credentials")
            .route(web::post().to(issue_mqtt_credentials))
            .route(web::delete().to(revoke_mqtt_credentials)),
    );
}

/// Issues MQTT credentials for a machine that talks MQTT (generic topics or a smart plug).
/// The answer holds the password, this once, and the topics the device may use; the
/// machine's previous credentials stop working and its connections are closed.
#[utoipa::path(post, path = "/api/v1/makerspaces/{makerspace_id}/equipment/{equipment_id}/mqtt-credentials",
    tag = "equipment",
    params(("makerspace_id" = String, Path), ("equipment_id" = String, Path)),
    responses((status = 201, body = IssuedCredentials), (status = 403, body = crate::web::ErrorBody),
              (status = 404, body = crate::web::ErrorBody),
              (status = 409, description = "The machine does not use makrcave's broker (Bambu, OctoPrint)",
               body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn issue_mqtt_credentials(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (space_id, equipment_id) = path.into_inner();
    let issued =
        broker_access::issue(&state, caller.can_manage_space(&space_id), &space_id, &equipment_id, &caller.user_id)
            .await?;
    Ok(HttpResponse::Created().json(issued))
}

/// Revokes a machine's MQTT credentials: its device is disconnected and cannot connect again.
/// Idempotent: 204 also when the machine had none.
#[utoipa::path(delete, path = "/api/v1/makerspaces/{makerspace_id}/equipment/{equipment_id}/mqtt-credentials",
    tag = "equipment",
    params(("makerspace_id" = String, Path), ("equipment_id" = String, Path)),
    responses((status = 204), (status = 403, body = crate::web::ErrorBody),
              (status = 404, description = "No such machine", body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn revoke_mqtt_credentials(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (space_id, equipment_id) = path.into_inner();
    broker_access::revoke(&state, caller.can_manage_space(&space_id), &space_id, &equipment_id).await?;
    Ok(HttpResponse::NoContent().finish())
}
