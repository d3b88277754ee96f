//! `POST /api/v1/bom/sync-inventory`: what a makerspace has and lacks of a bill of materials
//! from the MakrX Store ([`crate::services::bom`]).

use actix_web::{web, HttpResponse};
use serde_json::json;
use utoipa::OpenApi;

use crate::services::bom::{self, BomError, SkuAvailability, SyncRequest, SyncResponse, SyncTotals};
use crate::web::auth::Caller;
use crate::web::error::ApiError;
use crate::web::AppState;

#[derive(OpenApi)]
#[openapi(paths(sync_inventory), components(schemas(SyncRequest, SyncResponse, SkuAvailability, SyncTotals)))]
pub struct BomApi;

/// Registers the route (inside `/api/v1`).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/bom/sync-inventory", web::post().to(sync_inventory));
}

impl From<BomError> for ApiError {
    fn from(err: BomError) -> ApiError {
        let detail = err.to_string();
        match err {
            BomError::Access(e) => e.into(),
            BomError::Invalid(e) => e.into(),
            BomError::MixedUnits { sku, items } => {
                ApiError::conflict_with(detail, "mixed_units", json!({ "sku": sku, "items": items }))
            }
            BomError::Store(e) => e.into(),
        }
    }
}

#[utoipa::path(post, path = "/api/v1/bom/sync-inventory", tag = "inventory", request_body = SyncRequest,
    responses((status = 200, body = SyncResponse), (status = 403, body = crate::web::ErrorBody),
              (status = 404, description = "No such makerspace (or not one the caller may see)", body = crate::web::ErrorBody),
              (status = 409, description = "mixed_units: the space counts one SKU's items in different units (`sku`, `items`)", body = crate::web::ErrorBody),
              (status = 422, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn sync_inventory(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    body: web::Json<SyncRequest>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(bom::sync_inventory(&state, &caller, body.into_inner()).await?))
}
