//! What makrcave-bridge calls besides the kiosk's unlock, lock and clear (a bridge is a kiosk
//! device and uses its token): the signed offline allowlist and the files of jobs sent to its
//! machine. Admins read the public key bridges verify allowlists with.

use actix_web::{http::header, web, HttpResponse};
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

use crate::domain::allowlist::SignedAllowlist;
use crate::services::access::people_of;
use crate::services::bridges;
use crate::web::auth::{Caller, Kiosk};
use crate::web::error::ApiError;
use crate::web::AppState;

#[derive(OpenApi)]
#[openapi(paths(allowlist, job_file, allowlist_key))]
pub struct BridgesApi;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/kiosk/allowlist", web::get().to(allowlist))
        .route("/kiosk/jobs/{job_id}/file", web::get().to(job_file))
        .route("/makerspaces/{makerspace_id}/allowlist-key", web::get().to(allowlist_key));
}

/// The cards allowed on this device's machines while makrcave cannot be reached, signed with
/// the makerspace's Ed25519 key. The payload is base64 JSON: `version`, `makerspace_id`,
/// `kiosk_id`, `issued_at`, `expires_at`, `card_key` (base64; a card is named by the lowercase
/// hex HMAC-SHA256 of its normalized UID under it) and `entries` (`card`, `member_id`,
/// `equipment_ids`, `expires_at`).
#[utoipa::path(get, path = "/api/v1/kiosk/allowlist", tag = "kiosk",
    responses((status = 200, body = SignedAllowlist), (status = 401, body = crate::web::ErrorBody)),
    security(("device" = [])))]
pub async fn allowlist(state: web::Data<AppState>, Kiosk(kiosk): Kiosk) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(bridges::allowlist(&state, &kiosk).await?))
}

/// The file of a job sent to one of this device's machines (a bridge fetches it when told to
/// start the job), streamed. Its SHA-256 is the `ETag`.
#[utoipa::path(get, path = "/api/v1/kiosk/jobs/{job_id}/file", tag = "kiosk",
    params(("job_id" = String, Path)),
    responses((status = 200, content_type = "application/octet-stream", body = Vec<u8>, description = "The file's bytes"),
              (status = 401, body = crate::web::ErrorBody),
              (status = 404, body = crate::web::ErrorBody, description = "No job of this device's machines on its way or running has this id")),
    security(("device" = [])))]
pub async fn job_file(
    state: web::Data<AppState>,
    Kiosk(kiosk): Kiosk,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let job = bridges::job_for_device(&state, &kiosk, &path.into_inner()).await?;
    let (size, bytes) = state.files.read(&job.file_sha256).await.map_err(|e| {
        tracing::error!(job_id = %job.id, error = %e, "a job's file cannot be read from storage");
        ApiError::Internal
    })?;
    Ok(HttpResponse::Ok()
        .content_type("application/octet-stream")
        .insert_header((header::ETAG, format!("\"{}\"", job.file_sha256)))
        .no_chunking(size)
        .streaming(bytes))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AllowlistKey {
    /// Always `ed25519`.
    pub algorithm: &'static str,
    /// Base64 of the 32-byte public key: the `public_key` of a bridge's configuration.
    pub public_key: String,
}

/// The key the makerspace's bridges verify their offline allowlists with (admins, to set up a
/// bridge).
#[utoipa::path(get, path = "/api/v1/makerspaces/{makerspace_id}/allowlist-key", tag = "kiosk",
    params(("makerspace_id" = String, Path)),
    responses((status = 200, body = AllowlistKey), (status = 403, body = crate::web::ErrorBody),
              (status = 404, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn allowlist_key(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let space_id = path.into_inner();
    people_of(&state, &caller, &space_id, true).await?;
    Ok(HttpResponse::Ok()
        .json(AllowlistKey { algorithm: "ed25519", public_key: bridges::public_key(&state, &space_id) }))
}
