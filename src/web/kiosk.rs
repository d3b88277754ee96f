//! The kiosk's HTTP side: device registration for admins, and the device API a kiosk calls
//! with its token (`/kiosk/unlock`, `/kiosk/lock`, `/kiosk/machines`). The decisions are
//! [`crate::services::kiosk`]'s.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use crate::services::access::people_of;
use crate::services::kiosk::{self, ClearAnswer, LockAnswer, UnlockAnswer};
use crate::store::kiosks::{KioskAttempt, KioskRecord};
use crate::web::auth::{Caller, Kiosk};
use crate::web::error::ApiError;
use crate::web::AppState;

#[derive(OpenApi)]
#[openapi(paths(register, list, update, revoke, unlock, lock, clear_bed, attempts, machines))]
pub struct KioskApi;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/makerspaces/{makerspace_id}/kiosks").route(web::post().to(register)).route(web::get().to(list)),
    )
    .service(
        web::resource("/makerspaces/{makerspace_id}/kiosks/{kiosk_id}")
            .route(web::put().to(update))
            .route(web::delete().to(revoke)),
    )
    .route("/makerspaces/{makerspace_id}/kiosk-attempts", web::get().to(attempts))
    .route("/kiosk/machines", web::get().to(machines))
    .route("/kiosk/unlock", web::post().to(unlock))
    .route("/kiosk/lock", web::post().to(lock))
    .route("/kiosk/clear", web::post().to(clear_bed));
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KioskCreate {
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    pub name: String,
    /// The machines it may unlock [default: every machine of the makerspace]; repeats are
    /// dropped.
    pub equipment_ids: Option<Vec<String>>,
    /// Any card (or none) ends a session at this kiosk [default: false: only the session's own
    /// card or an admin's].
    pub any_card_locks: Option<bool>,
}

/// A kiosk's settings an admin changes after registration.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KioskUpdate {
    /// Any card (or none) ends a session at this kiosk; false: only the session's own card or
    /// an admin's.
    pub any_card_locks: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KioskResponse {
    pub id: String,
    pub makerspace_id: String,
    pub name: String,
    pub equipment_ids: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// Any card (or none) ends a session at this kiosk; otherwise only the session's own card
    /// or an admin's.
    pub any_card_locks: bool,
    /// The device token: shown this once, at registration; only its hash is kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

impl KioskResponse {
    fn new(k: KioskRecord, token: Option<String>) -> Self {
        KioskResponse {
            id: k.id,
            makerspace_id: k.makerspace_id,
            name: k.name,
            equipment_ids: k.equipment_ids,
            created_at: k.created_at,
            revoked_at: k.revoked_at,
            any_card_locks: k.any_card_locks,
            token,
        }
    }
}

#[utoipa::path(post, path = "/api/v1/makerspaces/{makerspace_id}/kiosks", tag = "kiosk",
    params(("makerspace_id" = String, Path)), request_body = KioskCreate,
    responses((status = 201, body = KioskResponse), (status = 403, body = crate::web::ErrorBody),
              (status = 404, body = crate::web::ErrorBody), (status = 422, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn register(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<String>,
    body: web::Json<KioskCreate>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let (kiosk, token) = kiosk::register(
        &state,
        &caller,
        &path.into_inner(),
        &body.name,
        body.equipment_ids.unwrap_or_default(),
        body.any_card_locks.unwrap_or(false),
    )
    .await?;
    Ok(HttpResponse::Created().json(KioskResponse::new(kiosk, Some(token))))
}

#[utoipa::path(put, path = "/api/v1/makerspaces/{makerspace_id}/kiosks/{kiosk_id}", tag = "kiosk",
    params(("makerspace_id" = String, Path), ("kiosk_id" = String, Path)), request_body = KioskUpdate,
    responses((status = 200, body = KioskResponse), (status = 403, body = crate::web::ErrorBody),
              (status = 404, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn update(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<(String, String)>,
    body: web::Json<KioskUpdate>,
) -> Result<HttpResponse, ApiError> {
    let (space_id, kiosk_id) = path.into_inner();
    let kiosk = kiosk::set_any_card_locks(&state, &caller, &space_id, &kiosk_id, body.any_card_locks).await?;
    Ok(HttpResponse::Ok().json(KioskResponse::new(kiosk, None)))
}

#[utoipa::path(get, path = "/api/v1/makerspaces/{makerspace_id}/kiosks", tag = "kiosk",
    params(("makerspace_id" = String, Path)),
    responses((status = 200, body = [KioskResponse]), (status = 403, body = crate::web::ErrorBody),
              (status = 404, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let space_id = path.into_inner();
    people_of(&state, &caller, &space_id, false).await?;
    let kiosks = state.store.list_kiosks(&space_id).await?;
    Ok(HttpResponse::Ok().json(kiosks.into_iter().map(|k| KioskResponse::new(k, None)).collect::<Vec<_>>()))
}

#[utoipa::path(delete, path = "/api/v1/makerspaces/{makerspace_id}/kiosks/{kiosk_id}", tag = "kiosk",
    params(("makerspace_id" = String, Path), ("kiosk_id" = String, Path)),
    responses((status = 204), (status = 403, body = crate::web::ErrorBody), (status = 404, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn revoke(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (space_id, kiosk_id) = path.into_inner();
    kiosk::revoke(&state, &caller, &space_id, &kiosk_id).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(get, path = "/api/v1/makerspaces/{makerspace_id}/kiosk-attempts", tag = "kiosk",
    params(("makerspace_id" = String, Path)),
    responses((status = 200, body = [AttemptResponse]), (status = 403, body = crate::web::ErrorBody),
              (status = 404, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn attempts(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let space_id = path.into_inner();
    people_of(&state, &caller, &space_id, false).await?;
    let rows = state.store.kiosk_attempts(&space_id, 500).await?;
    Ok(HttpResponse::Ok().json(rows.into_iter().map(AttemptResponse::from).collect::<Vec<_>>()))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptResponse {
    pub kiosk_id: String,
    pub equipment_id: String,
    pub card_hint: Option<String>,
    /// Whose session it is (at a lock) or would be (at an unlock).
    pub member_id: Option<String>,
    pub user_id: Option<String>,
    /// Whose card was presented, when it is known (at a lock, perhaps an admin's).
    pub presenter_member_id: Option<String>,
    pub presenter_user_id: Option<String>,
    pub action: String,
    pub granted: bool,
    pub reason: String,
    pub session_id: Option<String>,
    pub at: DateTime<Utc>,
}

impl From<KioskAttempt> for AttemptResponse {
    fn from(a: KioskAttempt) -> Self {
        AttemptResponse {
            kiosk_id: a.kiosk_id,
            equipment_id: a.equipment_id,
            card_hint: a.card_hint,
            member_id: a.member_id,
            user_id: a.user_id,
            presenter_member_id: a.presenter_member_id,
            presenter_user_id: a.presenter_user_id,
            action: a.action,
            granted: a.granted,
            reason: a.reason,
            session_id: a.session_id,
            at: a.at,
        }
    }
}

/// The machines this kiosk serves, with their live state (for the kiosk page's picker).
#[utoipa::path(get, path = "/api/v1/kiosk/machines", tag = "kiosk",
    responses((status = 200, body = [crate::actors::machine::MachineView]), (status = 401, body = crate::web::ErrorBody)),
    security(("device" = [])))]
pub async fn machines(state: web::Data<AppState>, Kiosk(kiosk): Kiosk) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(kiosk::machines(&state, &kiosk).await))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UnlockRequest {
    pub equipment_id: String,
    /// The card's UID as the reader typed it.
    pub card_uid: String,
}

#[utoipa::path(post, path = "/api/v1/kiosk/unlock", tag = "kiosk", request_body = UnlockRequest,
    responses((status = 200, body = UnlockAnswer, description = "A decision: granted or the reason why not"),
              (status = 401, body = crate::web::ErrorBody), (status = 404, body = crate::web::ErrorBody),
              (status = 422, body = crate::web::ErrorBody),
              (status = 429, body = crate::web::ErrorBody, description = "The kiosk saw too many unknown cards and is slowed down (`kiosk_slowed_down`)")),
    security(("device" = [])))]
pub async fn unlock(
    state: web::Data<AppState>,
    Kiosk(kiosk): Kiosk,
    body: web::Json<UnlockRequest>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(kiosk::unlock(&state, &kiosk, &body.equipment_id, &body.card_uid).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LockRequest {
    pub equipment_id: String,
    /// The card of whoever locks: the session's own or an admin's. Optional only at a kiosk
    /// where any card locks.
    pub card_uid: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/kiosk/lock", tag = "kiosk", request_body = LockRequest,
    responses((status = 200, body = LockAnswer, description = "Locked, or the reason why not"),
              (status = 401, body = crate::web::ErrorBody), (status = 404, body = crate::web::ErrorBody),
              (status = 422, body = crate::web::ErrorBody),
              (status = 429, body = crate::web::ErrorBody, description = "The kiosk saw too many unknown cards and is slowed down (`kiosk_slowed_down`)")),
    security(("device" = [])))]
pub async fn lock(
    state: web::Data<AppState>,
    Kiosk(kiosk): Kiosk,
    body: web::Json<LockRequest>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(kiosk::lock(&state, &kiosk, &body.equipment_id, body.card_uid.as_deref()).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClearRequest {
    pub equipment_id: String,
    /// The card of whoever confirms the bed is clear (any known card of the space), as the
    /// reader typed it.
    pub card_uid: String,
}

/// A person confirms at the kiosk, with their card, that the machine's bed is clear: the
/// machine may take its next job.
#[utoipa::path(post, path = "/api/v1/kiosk/clear", tag = "kiosk", request_body = ClearRequest,
    responses((status = 200, body = ClearAnswer, description = "Cleared, or the reason why not"),
              (status = 401, body = crate::web::ErrorBody),
              (status = 403, body = crate::web::ErrorBody, description = "The kiosk does not serve this machine"),
              (status = 404, body = crate::web::ErrorBody),
              (status = 422, body = crate::web::ErrorBody),
              (status = 429, body = crate::web::ErrorBody, description = "The kiosk saw too many unknown cards and is slowed down (`kiosk_slowed_down`)")),
    security(("device" = [])))]
pub async fn clear_bed(
    state: web::Data<AppState>,
    Kiosk(kiosk): Kiosk,
    body: web::Json<ClearRequest>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(kiosk::clear_bed(&state, &kiosk, &body.equipment_id, &body.card_uid).await?))
}
