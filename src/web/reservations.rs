//! `/api/v1/makerspaces/{id}/reservations` and `/equipment/available`: the reservation
//! book over HTTP. The workflows (who may book what, approvals, check-in, the waitlist's
//! offers) are [`crate::services::bookings`]'.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::domain::booking::{ReservationKind, ReservationStatus};
use crate::domain::equipment::EquipmentType;
use crate::services::bookings::{self, HistoryLine, ReservationCreate, ReservationResponse};
use crate::store::reservations::ReservationFilter;
use crate::web::auth::Caller;
use crate::web::error::ApiError;
use crate::web::AppState;

#[derive(OpenApi)]
#[openapi(
    paths(create, list, get, cancel, approve, reject, check_in, available),
    components(schemas(
        ReservationResponse,
        ReservationCreate,
        RejectRequest,
        AvailableMachine,
        ReservationStatus,
        ReservationKind,
        HistoryLine
    ))
)]
pub struct ReservationsApi;

/// Registers the routes (inside `/api/v1`). `equipment/available` comes before the
/// equipment resources so that `available` is not taken for an equipment id.
pub fn routes(cfg: &mut web::ServiceConfig) {
    const BASE: &str = "/makerspaces/{makerspace_id}";
    let path = |rest: &str| format!("{BASE}{rest}");
    cfg.route(&path("/equipment/available"), web::get().to(available))
        .service(web::resource(path("/reservations")).route(web::post().to(create)).route(web::get().to(list)))
        .route(&path("/reservations/{reservation_id}"), web::get().to(get))
        .route(&path("/reservations/{reservation_id}/cancel"), web::post().to(cancel))
        .route(&path("/reservations/{reservation_id}/approve"), web::post().to(approve))
        .route(&path("/reservations/{reservation_id}/reject"), web::post().to(reject))
        .route(&path("/reservations/{reservation_id}/check-in"), web::post().to(check_in));
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectRequest {
    #[schema(max_length = 1000, pattern = r"^\P{Cc}*$")]
    pub reason: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub equipment_id: Option<String>,
    /// Whose bookings (`me` for the caller's own).
    pub user_id: Option<String>,
    pub status: Option<ReservationStatus>,
    /// Only bookings that end after this instant.
    pub from: Option<DateTime<Utc>>,
    /// Only bookings that start before this instant.
    pub to: Option<DateTime<Utc>>,
    /// 1 to 1000 [default: 200].
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AvailableQuery {
    /// Start of the window [default: now].
    pub start: Option<DateTime<Utc>>,
    /// End of the window [default: an hour after the start].
    pub end: Option<DateTime<Utc>>,
    #[serde(rename = "type")]
    pub kind: Option<EquipmentType>,
}

/// A machine free for the whole asked window.
#[derive(Debug, Serialize, ToSchema)]
pub struct AvailableMachine {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: EquipmentType,
    pub location: Option<String>,
    pub hourly_rate: Option<f64>,
    pub requires_approval: bool,
    pub skill_requirements: Vec<String>,
}

#[utoipa::path(post, path = "/api/v1/makerspaces/{makerspace_id}/reservations", tag = "reservations",
    params(("makerspace_id" = String, Path)), request_body = ReservationCreate,
    responses((status = 201, body = ReservationResponse), (status = 403, body = crate::web::ErrorBody),
              (status = 404, body = crate::web::ErrorBody), (status = 409, body = crate::web::ErrorBody),
              (status = 422, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn create(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<String>,
    body: web::Json<ReservationCreate>,
) -> Result<HttpResponse, ApiError> {
    let record = bookings::book(&state, &caller, &path.into_inner(), body.into_inner()).await?;
    Ok(HttpResponse::Created().json(ReservationResponse::from(record)))
}

#[utoipa::path(get, path = "/api/v1/makerspaces/{makerspace_id}/reservations", tag = "reservations",
    params(("makerspace_id" = String, Path), ListQuery),
    responses((status = 200, body = [ReservationResponse]), (status = 404, body = crate::web::ErrorBody),
              (status = 422, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<String>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let limit = q.limit.unwrap_or(200);
    let user_id = match q.user_id {
        Some(u) if u == "me" => Some(caller.user_id.clone()),
        other => other,
    };
    let filter =
        ReservationFilter { equipment_id: q.equipment_id, user_id, status: q.status, from: q.from, to: q.to, limit };
    let rows = bookings::list(&state, &caller, &path.into_inner(), &filter).await?;
    Ok(HttpResponse::Ok().json(rows.into_iter().map(ReservationResponse::from).collect::<Vec<_>>()))
}

#[utoipa::path(get, path = "/api/v1/makerspaces/{makerspace_id}/reservations/{reservation_id}", tag = "reservations",
    params(("makerspace_id" = String, Path), ("reservation_id" = String, Path)),
    responses((status = 200, body = ReservationResponse), (status = 404, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn get(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (space_id, id) = path.into_inner();
    let (r, history) = bookings::get(&state, &caller, &space_id, &id).await?;
    let mut out = ReservationResponse::from(r);
    out.history =
        Some(history.into_iter().map(|h| HistoryLine { action: h.action, actor: h.actor, at: h.at }).collect());
    Ok(HttpResponse::Ok().json(out))
}

#[utoipa::path(post, path = "/api/v1/makerspaces/{makerspace_id}/reservations/{reservation_id}/cancel",
    tag = "reservations", params(("makerspace_id" = String, Path), ("reservation_id" = String, Path)),
    responses((status = 200, body = ReservationResponse), (status = 403, body = crate::web::ErrorBody),
              (status = 404, body = crate::web::ErrorBody), (status = 409, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn cancel(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (space_id, id) = path.into_inner();
    Ok(HttpResponse::Ok().json(ReservationResponse::from(bookings::cancel(&state, &caller, &space_id, &id).await?)))
}

#[utoipa::path(post, path = "/api/v1/makerspaces/{makerspace_id}/reservations/{reservation_id}/approve",
    tag = "reservations", params(("makerspace_id" = String, Path), ("reservation_id" = String, Path)),
    responses((status = 200, body = ReservationResponse), (status = 403, body = crate::web::ErrorBody),
              (status = 404, body = crate::web::ErrorBody), (status = 409, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn approve(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (space_id, id) = path.into_inner();
    Ok(HttpResponse::Ok().json(ReservationResponse::from(bookings::approve(&state, &caller, &space_id, &id).await?)))
}

#[utoipa::path(post, path = "/api/v1/makerspaces/{makerspace_id}/reservations/{reservation_id}/reject",
    tag = "reservations", params(("makerspace_id" = String, Path), ("reservation_id" = String, Path)),
    request_body(content = RejectRequest, description = "optional"),
    responses((status = 200, body = ReservationResponse), (status = 403, body = crate::web::ErrorBody),
              (status = 404, body = crate::web::ErrorBody), (status = 409, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn reject(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<(String, String)>,
    body: Option<web::Json<RejectRequest>>,
) -> Result<HttpResponse, ApiError> {
    let (space_id, id) = path.into_inner();
    let reason = body.and_then(|b| b.into_inner().reason);
    let r = bookings::reject(&state, &caller, &space_id, &id, reason).await?;
    Ok(HttpResponse::Ok().json(ReservationResponse::from(r)))
}

#[utoipa::path(post, path = "/api/v1/makerspaces/{makerspace_id}/reservations/{reservation_id}/check-in",
    tag = "reservations", params(("makerspace_id" = String, Path), ("reservation_id" = String, Path)),
    responses((status = 200, body = ReservationResponse), (status = 403, body = crate::web::ErrorBody),
              (status = 404, body = crate::web::ErrorBody), (status = 409, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn check_in(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (space_id, id) = path.into_inner();
    Ok(HttpResponse::Ok().json(ReservationResponse::from(bookings::check_in(&state, &caller, &space_id, &id).await?)))
}

#[utoipa::path(get, path = "/api/v1/makerspaces/{makerspace_id}/equipment/available", tag = "reservations",
    params(("makerspace_id" = String, Path), AvailableQuery),
    responses((status = 200, body = [AvailableMachine]), (status = 404, body = crate::web::ErrorBody),
              (status = 422, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn available(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<String>,
    query: web::Query<AvailableQuery>,
) -> Result<HttpResponse, ApiError> {
    let start = query.start.unwrap_or_else(Utc::now);
    let end = query.end.unwrap_or(start + chrono::Duration::hours(1));
    let machines = bookings::available(&state, &caller, &path.into_inner(), (start, end), query.kind).await?;
    let out: Vec<AvailableMachine> = machines
        .into_iter()
        .map(|m| AvailableMachine {
            id: m.id,
            name: m.name,
            kind: m.kind,
            location: m.location,
            hourly_rate: m.hourly_rate,
            requires_approval: m.requires_approval,
            skill_requirements: m.skill_requirements,
        })
        .collect();
    Ok(HttpResponse::Ok().json(out))
}
