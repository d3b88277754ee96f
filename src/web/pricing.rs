//! `/api/v1/makerspaces/{id}/price-table` and `/quotes`: a makerspace's prices over HTTP
//! ([`crate::services::pricing`]).

use actix_web::{web, HttpResponse};
use serde_json::{Map, Value};
use utoipa::OpenApi;

use crate::domain::pricing::{
    LaserRates, MachineRates, MaterialPrice, PriceTableSpec, PrinterRates, PrinterType, Quality, QualityFactors,
    QuoteInput, QuoteOption, Quotes, TimeRate,
};
use crate::services::pricing::{self, PriceTableView};
use crate::web::auth::Caller;
use crate::web::error::ApiError;
use crate::web::validate::from_object;
use crate::web::AppState;

#[derive(OpenApi)]
#[openapi(
    paths(get_table, put_table, preview),
    components(schemas(
        PriceTableView,
        PriceTableSpec,
        MaterialPrice,
        PrinterType,
        MachineRates,
        PrinterRates,
        LaserRates,
        TimeRate,
        QualityFactors,
        QuoteInput,
        Quotes,
        QuoteOption,
        Quality
    ))
)]
pub struct PricingApi;

/// Registers the routes (inside `/api/v1`).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/makerspaces/{makerspace_id}/price-table")
            .route(web::get().to(get_table))
            .route(web::put().to(put_table)),
    )
    .route("/makerspaces/{makerspace_id}/quotes", web::post().to(preview));
}

#[utoipa::path(get, path = "/api/v1/makerspaces/{makerspace_id}/price-table", tag = "pricing",
    params(("makerspace_id" = String, Path)),
    responses((status = 200, description = "The space's table, or the default one (`default: true`) until its admins write their own", body = PriceTableView),
              (status = 403, body = crate::web::ErrorBody), (status = 404, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_table(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let view = pricing::table(&state, &caller, &path.into_inner()).await?;
    Ok(HttpResponse::Ok().json(view))
}

#[utoipa::path(put, path = "/api/v1/makerspaces/{makerspace_id}/price-table", tag = "pricing",
    params(("makerspace_id" = String, Path)), request_body = PriceTableSpec,
    responses((status = 200, body = PriceTableView), (status = 403, body = crate::web::ErrorBody),
              (status = 404, body = crate::web::ErrorBody),
              (status = 422, description = "A material named twice (whatever the case), or without exactly one of price_per_gram and price_per_cm3", body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn put_table(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<String>,
    body: web::Json<Map<String, Value>>,
) -> Result<HttpResponse, ApiError> {
    let spec: PriceTableSpec = from_object(&body)?;
    let view = pricing::replace(&state, &caller, &path.into_inner(), spec).await?;
    Ok(HttpResponse::Ok().json(view))
}

#[utoipa::path(post, path = "/api/v1/makerspaces/{makerspace_id}/quotes", tag = "pricing",
    params(("makerspace_id" = String, Path)), request_body = QuoteInput,
    responses((status = 200, description = "The options of the job, priced with the space's table", body = Quotes),
              (status = 403, body = crate::web::ErrorBody), (status = 404, body = crate::web::ErrorBody),
              (status = 422, description = "not_priced: the table has no rates for the machine; no_material: it lists no material for the printer; missing_figures: the input lacks what the machine is priced from (a print: volume_cm3, or grams and time_s; a laser: cut_length_mm or time_s; CNC: time_s)", body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn preview(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<String>,
    body: web::Json<Map<String, Value>>,
) -> Result<HttpResponse, ApiError> {
    let input: QuoteInput = from_object(&body)?;
    let quotes = pricing::preview(&state, &caller, &path.into_inner(), &input).await?;
    Ok(HttpResponse::Ok().json(quotes))
}
