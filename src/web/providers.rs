//! Service orders and providers over HTTP: the MakrX Store (a caller with the `service` role)
//! uploads a file, routes a service order to the providers and follows it; it lists the
//! providers available; a provider's admins and service providers accept or refuse what is
//! offered to them. The workflows are [`crate::services::service_orders`]' and
//! [`crate::services::providers`]'.

use actix_multipart::Multipart;
use actix_web::{web, HttpResponse};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::domain::equipment::EquipmentType;
use crate::domain::job_files::facts::FileFacts;
use crate::domain::providers::{Capacity, ProviderRefusal, ServiceType, Unfit};
use crate::domain::routing::Misfit;
use crate::domain::service_orders::{OrderEvent, ServiceOrderStatus};
use crate::services::job_intake::Upload;
use crate::services::providers::{self, AvailableQuery, ProviderList, ProviderView, ServiceCapacity, MAX_CAPACITY};
use crate::services::service_orders::{
    self, OfferAnswerView, OfferView, OrderEventView, OrderJobView, OrderPreferences, ServiceOrderRequest,
    ServiceOrderView,
};
use crate::web::auth::Caller;
use crate::web::error::ApiError;
use crate::web::multipart::multipart_error;
use crate::web::validate::optional_text;
use crate::web::AppState;

#[derive(OpenApi)]
#[openapi(
    paths(upload, route, get_order, available, offers, accept, reject),
    components(schemas(
        FileUpload,
        UploadedFile,
        ServiceOrderRequest,
        OrderPreferences,
        ServiceOrderView,
        ServiceOrderStatus,
        OrderJobView,
        OrderEventView,
        OrderEvent,
        ServiceType,
        ProviderRefusal,
        Unfit,
        Misfit,
        NoProviderBody,
        OfferAnswer,
        OfferAnswerView,
        OfferView,
        ProviderList,
        ProviderView,
        ServiceCapacity,
        Capacity,
        EquipmentType
    ))
)]
pub struct ProvidersApi;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/jobs/upload", web::post().to(upload))
        .route("/jobs/route-service-order", web::post().to(route))
        .route("/service-orders/{service_order_id}", web::get().to(get_order))
        .route("/providers/available", web::get().to(available))
        .route("/makerspaces/{makerspace_id}/offers", web::get().to(offers))
        .route("/makerspaces/{makerspace_id}/jobs/{job_id}/accept", web::post().to(accept))
        .route("/makerspaces/{makerspace_id}/jobs/{job_id}/reject", web::post().to(reject));
}

/// The multipart form of an upload.
#[derive(ToSchema)]
#[allow(dead_code)] // Only its schema is used: the form is read part by part.
pub struct FileUpload {
    /// The file to make: G-code, STL (binary or ASCII), 3MF or SVG, recognised by its content.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

/// A stored file: what a service order names it by, and what its analysis found.
#[derive(Debug, Serialize, ToSchema)]
pub struct UploadedFile {
    /// The file's SHA-256 (lower-case hex): the service order's `file_sha256`.
    pub sha256: String,
    /// `gcode`, `stl_binary`, `stl_ascii`, `3mf` or `svg`.
    pub kind: String,
    pub size_bytes: i64,
    pub analysis: FileFacts,
}

/// The answer when no provider can make an order (422 `no_provider`).
#[derive(Serialize, ToSchema)]
#[allow(dead_code)] // Documents the error's extra field; the body is made by `ApiError`.
pub struct NoProviderBody {
    pub detail: String,
    pub status_code: u16,
    pub error_type: String,
    /// With `no_provider`: each provider, and why it is not offered the order.
    pub providers: Option<Vec<ProviderRefusal>>,
}

/// A provider's answer to an offer.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OfferAnswer {
    /// Why (kept in the order's history).
    #[schema(max_length = 500, pattern = r"^\P{Cc}*$")]
    pub reason: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AvailableParams {
    /// Only providers offering this service.
    pub service_type: Option<ServiceType>,
    /// Only providers whose location contains this text (whatever the case).
    #[param(max_length = 500, pattern = r"^\P{Cc}*$")]
    pub location: Option<String>,
    /// Only providers with at least this many free machines (of `service_type`, or of all
    /// their services).
    #[param(minimum = 0, maximum = 100000)]
    pub capacity: Option<u32>,
}

#[utoipa::path(post, path = "/api/v1/jobs/upload", tag = "service orders",
    request_body(content = FileUpload, content_type = "multipart/form-data"),
    responses((status = 201, description = "stored (once, whoever sends the same bytes) and analysed", body = UploadedFile),
              (status = 400, description = "a multipart body that cannot be read, a part other than file, or no file", body = crate::web::ErrorBody),
              (status = 403, description = "not a service", body = crate::web::ErrorBody),
              (status = 413, description = "the file is larger than the configured limit", body = crate::web::ErrorBody),
              (status = 415, description = "not multipart, or a file that is not G-code, STL, 3MF or SVG", body = crate::web::ErrorBody),
              (status = 422, description = "a malformed or truncated file", body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn upload(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    mut form: Multipart,
) -> Result<HttpResponse, ApiError> {
    // Refuse other callers before a byte of the file is stored.
    service_orders::may_upload(&caller)?;
    let mut stored = None;
    while let Some(field) = form.next().await {
        let mut field = field.map_err(multipart_error)?;
        match field.name() {
            Some("file") if stored.is_none() => {
                let mut upload = Upload::begin(&state)?;
                while let Some(chunk) = field.next().await {
                    upload.write(&chunk.map_err(multipart_error)?)?;
                }
                stored = Some(upload.finish(&state).await?);
            }
            Some(other) => {
                return Err(ApiError::BadRequest(format!("unexpected or repeated part {other:?}: send file")))
            }
            None => return Err(ApiError::BadRequest("a part without a name: send file".into())),
        }
    }
    let stored = stored.ok_or_else(|| ApiError::BadRequest("the part file is missing".into()))?;
    Ok(HttpResponse::Created().json(UploadedFile {
        sha256: stored.record.sha256,
        kind: stored.record.kind,
        size_bytes: stored.record.size_bytes,
        analysis: stored.facts,
    }))
}

#[utoipa::path(post, path = "/api/v1/jobs/route-service-order", tag = "service orders",
    request_body = ServiceOrderRequest,
    responses((status = 201, description = "stored and offered to the best capable provider", body = ServiceOrderView),
              (status = 200, description = "the same order sent again: the order as it is now", body = ServiceOrderView),
              (status = 403, description = "not a service", body = crate::web::ErrorBody),
              (status = 409, description = "conflict: this service_order_id names another request", body = crate::web::ErrorBody),
              (status = 422, description = "no_provider: no provider can make it now (each provider's reason in `providers`; nothing stored); unknown_file: no such upload; or a bad request", body = NoProviderBody)),
    security(("bearer" = [])))]
pub async fn route(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    body: web::Json<ServiceOrderRequest>,
) -> Result<HttpResponse, ApiError> {
    let (order, created) = service_orders::route(&state, &caller, body.into_inner()).await?;
    Ok(if created { HttpResponse::Created().json(order) } else { HttpResponse::Ok().json(order) })
}

#[utoipa::path(get, path = "/api/v1/service-orders/{service_order_id}", tag = "service orders",
    params(("service_order_id" = String, Path)),
    responses((status = 200, description = "the order, its jobs' statuses and its history", body = ServiceOrderView),
              (status = 403, description = "neither a service nor a platform admin", body = crate::web::ErrorBody),
              (status = 404, description = "no such order, or another service's", body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_order(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(service_orders::get(&state, &caller, &path.into_inner()).await?))
}

#[utoipa::path(get, path = "/api/v1/providers/available", tag = "service orders",
    params(AvailableParams),
    responses((status = 200, description = "the providers, with what each can make now", body = ProviderList),
              (status = 403, description = "neither a service nor a platform admin", body = crate::web::ErrorBody),
              (status = 422, description = "an unknown service type, or a bad location or capacity", body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn available(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    query: web::Query<AvailableParams>,
) -> Result<HttpResponse, ApiError> {
    let params = query.into_inner();
    if params.capacity.is_some_and(|c| c > MAX_CAPACITY) {
        return Err(ApiError::Validation(format!("capacity must be 0 to {MAX_CAPACITY}")));
    }
    let query = AvailableQuery {
        service_type: params.service_type,
        location: optional_text("location", params.location, 500)?,
        capacity: params.capacity,
    };
    Ok(HttpResponse::Ok().json(providers::available(&state, &caller, &query).await?))
}

#[utoipa::path(get, path = "/api/v1/makerspaces/{makerspace_id}/offers", tag = "service orders",
    params(("makerspace_id" = String, Path)),
    responses((status = 200, description = "the service orders offered to the space now, oldest first", body = [OfferView]),
              (status = 403, body = crate::web::ErrorBody), (status = 404, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn offers(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(service_orders::offers(&state, &caller, &path.into_inner()).await?))
}

#[utoipa::path(post, path = "/api/v1/makerspaces/{makerspace_id}/jobs/{job_id}/accept", tag = "service orders",
    params(("makerspace_id" = String, Path), ("job_id" = String, Path)),
    responses((status = 200, description = "accepted: every copy of the order joins the space's queue", body = OfferAnswerView),
              (status = 403, body = crate::web::ErrorBody), (status = 404, body = crate::web::ErrorBody),
              (status = 409, description = "not_offered: the job is not (or no longer) offered", body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn accept(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (space_id, job_id) = path.into_inner();
    Ok(HttpResponse::Ok().json(service_orders::accept(&state, &caller, &space_id, &job_id).await?))
}

#[utoipa::path(post, path = "/api/v1/makerspaces/{makerspace_id}/jobs/{job_id}/reject", tag = "service orders",
    params(("makerspace_id" = String, Path), ("job_id" = String, Path)),
    request_body(content = OfferAnswer, description = "optional"),
    responses((status = 200, description = "refused: the order goes on to the next capable provider, or is unroutable", body = OfferAnswerView),
              (status = 403, body = crate::web::ErrorBody), (status = 404, body = crate::web::ErrorBody),
              (status = 409, description = "not_offered: the job is not (or no longer) offered", body = crate::web::ErrorBody),
              (status = 422, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn reject(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<(String, String)>,
    body: Option<web::Json<OfferAnswer>>,
) -> Result<HttpResponse, ApiError> {
    let (space_id, job_id) = path.into_inner();
    let reason = body.and_then(|b| b.into_inner().reason);
    Ok(HttpResponse::Ok().json(service_orders::reject(&state, &caller, &space_id, &job_id, reason).await?))
}
