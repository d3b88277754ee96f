//! Filament spools over HTTP: registered on a filament item, weighed, loaded on a printer and
//! unloaded. The workflows are [`crate::services::spools`]'s.

use actix_web::{web, HttpResponse};
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

use crate::domain::spools::{LoadedSpool, TrayMatch, TrayStatus};
use crate::services::spools::{self, LoadRequest, SpoolCreate, SpoolPlace, SpoolResponse, WeighRequest, WeighResponse};
use crate::services::stock::UsageResponse;
use crate::web::auth::Caller;
use crate::web::error::ApiError;
use crate::web::AppState;

#[derive(OpenApi)]
#[openapi(
    paths(create, list, get, weigh, load, loaded, unload),
    components(schemas(
        SpoolCreate,
        SpoolResponse,
        SpoolPlace,
        SpoolList,
        WeighRequest,
        WeighResponse,
        UsageResponse,
        LoadRequest,
        LoadedSpool,
        LoadedSpoolList,
        TrayMatch,
        TrayStatus
    ))
)]
pub struct SpoolsApi;

/// Registers the routes (inside `/api/v1`).
pub fn routes(cfg: &mut web::ServiceConfig) {
    const SPACE: &str = "/makerspaces/{makerspace_id}";
    cfg.service(
        web::resource(format!("{SPACE}/inventory/{{item_id}}/spools"))
            .route(web::post().to(create))
            .route(web::get().to(list)),
    )
    .route(&format!("{SPACE}/spools/{{spool_id}}"), web::get().to(get))
    .route(&format!("{SPACE}/spools/{{spool_id}}/weigh"), web::post().to(weigh))
    .service(
        web::resource(format!("{SPACE}/equipment/{{equipment_id}}/spools"))
            .route(web::post().to(load))
            .route(web::get().to(loaded)),
    )
    .route(&format!("{SPACE}/equipment/{{equipment_id}}/spools/{{spool_id}}"), web::delete().to(unload));
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SpoolList {
    /// The item's live spools, oldest first.
    pub spools: Vec<SpoolResponse>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LoadedSpoolList {
    /// The spools loaded on the machine, by slot.
    pub spools: Vec<LoadedSpool>,
}

#[utoipa::path(post, path = "/api/v1/makerspaces/{makerspace_id}/inventory/{item_id}/spools", tag = "inventory",
    params(("makerspace_id" = String, Path), ("item_id" = String, Path)), request_body = SpoolCreate,
    responses((status = 201, description = "registered (or, for a repeated idempotency_key, the spool registered the first time)", body = SpoolResponse),
              (status = 403, body = crate::web::ErrorBody), (status = 404, body = crate::web::ErrorBody),
              (status = 409, description = "duplicate_spool: a spool with this id exists", body = crate::web::ErrorBody),
              (status = 422, description = "the item is not a filament counted in grams, or a bad field", body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn create(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<(String, String)>,
    body: web::Json<SpoolCreate>,
) -> Result<HttpResponse, ApiError> {
    let (space_id, item_id) = path.into_inner();
    let (spool, _replayed) = spools::create(&state, &caller, &space_id, &item_id, body.into_inner()).await?;
    Ok(HttpResponse::Created().json(SpoolResponse::from(spool)))
}

#[utoipa::path(get, path = "/api/v1/makerspaces/{makerspace_id}/inventory/{item_id}/spools", tag = "inventory",
    params(("makerspace_id" = String, Path), ("item_id" = String, Path)),
    responses((status = 200, body = SpoolList), (status = 403, body = crate::web::ErrorBody),
              (status = 404, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (space_id, item_id) = path.into_inner();
    let found = spools::list(&state, &caller, &space_id, &item_id).await?;
    Ok(HttpResponse::Ok().json(SpoolList { spools: found.into_iter().map(SpoolResponse::from).collect() }))
}

#[utoipa::path(get, path = "/api/v1/makerspaces/{makerspace_id}/spools/{spool_id}", tag = "inventory",
    params(("makerspace_id" = String, Path), ("spool_id" = String, Path)),
    responses((status = 200, body = SpoolResponse), (status = 403, body = crate::web::ErrorBody),
              (status = 404, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn get(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (space_id, spool_id) = path.into_inner();
    let spool = spools::get(&state, &caller, &space_id, &spool_id).await?;
    Ok(HttpResponse::Ok().json(SpoolResponse::from(spool)))
}

#[utoipa::path(post, path = "/api/v1/makerspaces/{makerspace_id}/spools/{spool_id}/weigh", tag = "inventory",
    params(("makerspace_id" = String, Path), ("spool_id" = String, Path)), request_body = WeighRequest,
    responses((status = 200, body = WeighResponse), (status = 403, body = crate::web::ErrorBody),
              (status = 404, body = crate::web::ErrorBody),
              (status = 422, description = "gross_g is less than the spool's tare_g, or a bad field", body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn weigh(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<(String, String)>,
    body: web::Json<WeighRequest>,
) -> Result<HttpResponse, ApiError> {
    let (space_id, spool_id) = path.into_inner();
    let (spool, moved) = spools::weigh(&state, &caller, &space_id, &spool_id, body.into_inner()).await?;
    Ok(HttpResponse::Ok().json(WeighResponse {
        spool: spool.into(),
        replayed: moved.replayed,
        usage: moved.usage.into(),
    }))
}

#[utoipa::path(post, path = "/api/v1/makerspaces/{makerspace_id}/equipment/{equipment_id}/spools", tag = "equipment",
    params(("makerspace_id" = String, Path), ("equipment_id" = String, Path)), request_body = LoadRequest,
    responses((status = 201, description = "loaded", body = LoadedSpool),
              (status = 200, description = "the spool was in this slot already", body = LoadedSpool),
              (status = 403, body = crate::web::ErrorBody), (status = 404, body = crate::web::ErrorBody),
              (status = 409, description = "slot_taken (with the slot and the spool in it), spool_loaded_elsewhere (with its equipment_id and slot), not_a_printer", body = crate::web::ErrorBody),
              (status = 422, description = "spool_id is not a spool of the makerspace, or a bad field", body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn load(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<(String, String)>,
    body: web::Json<LoadRequest>,
) -> Result<HttpResponse, ApiError> {
    let (space_id, equipment_id) = path.into_inner();
    let (spool, fresh) = spools::load(&state, &caller, &space_id, &equipment_id, body.into_inner()).await?;
    Ok(if fresh { HttpResponse::Created() } else { HttpResponse::Ok() }.json(spool))
}

#[utoipa::path(get, path = "/api/v1/makerspaces/{makerspace_id}/equipment/{equipment_id}/spools", tag = "equipment",
    params(("makerspace_id" = String, Path), ("equipment_id" = String, Path)),
    responses((status = 200, body = LoadedSpoolList), (status = 403, body = crate::web::ErrorBody),
              (status = 404, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn loaded(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (space_id, equipment_id) = path.into_inner();
    let found = spools::loaded(&state, &caller, &space_id, &equipment_id).await?;
    Ok(HttpResponse::Ok().json(LoadedSpoolList { spools: found }))
}

#[utoipa::path(delete, path = "/api/v1/makerspaces/{makerspace_id}/equipment/{equipment_id}/spools/{spool_id}", tag = "equipment",
    params(("makerspace_id" = String, Path), ("equipment_id" = String, Path), ("spool_id" = String, Path)),
    responses((status = 204, description = "unloaded"), (status = 403, body = crate::web::ErrorBody),
              (status = 404, description = "no such machine, or the spool is not loaded on it", body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn unload(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (space_id, equipment_id, spool_id) = path.into_inner();
    spools::unload(&state, &caller, &space_id, &equipment_id, &spool_id).await?;
    Ok(HttpResponse::NoContent().finish())
}
