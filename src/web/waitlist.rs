//! `/api/v1/makerspaces/{id}/waitlist`: queueing for a taken slot over HTTP. Offers, their
//! expiry and the queue's rules are [`crate::services::waitlist`]'s.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use utoipa::{IntoParams, OpenApi};

use crate::services::waitlist::{self, WaitlistJoin, WaitlistResponse, WaitlistStatus};
use crate::web::auth::Caller;
use crate::web::error::ApiError;
use crate::web::AppState;

#[derive(OpenApi)]
#[openapi(
    paths(waitlist_join, waitlist_list, waitlist_leave),
    components(schemas(WaitlistJoin, WaitlistResponse, WaitlistStatus))
)]
pub struct WaitlistApi;

/// Registers the routes (inside `/api/v1`).
pub fn routes(cfg: &mut web::ServiceConfig) {
    const BASE: &str = "/makerspaces/{makerspace_id}";
    cfg.service(
        web::resource(format!("{BASE}/waitlist"))
            .route(web::post().to(waitlist_join))
            .route(web::get().to(waitlist_list)),
    )
    .route(&format!("{BASE}/waitlist/{{entry_id}}"), web::delete().to(waitlist_leave));
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct WaitlistQuery {
    /// Entries in this status, past ones included, newest first [default: the live ones,
    /// waiting or offered, whose interval has not ended, first come first].
    pub status: Option<WaitlistStatus>,
}

#[utoipa::path(post, path = "/api/v1/makerspaces/{makerspace_id}/waitlist", tag = "reservations",
    params(("makerspace_id" = String, Path)), request_body = WaitlistJoin,
    responses((status = 201, body = WaitlistResponse), (status = 403, body = crate::web::ErrorBody),
              (status = 404, body = crate::web::ErrorBody), (status = 409, body = crate::web::ErrorBody),
              (status = 422, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn waitlist_join(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<String>,
    body: web::Json<WaitlistJoin>,
) -> Result<HttpResponse, ApiError> {
    let entry = waitlist::join(&state, &caller, &path.into_inner(), body.into_inner()).await?;
    Ok(HttpResponse::Created().json(WaitlistResponse::from(entry)))
}

#[utoipa::path(get, path = "/api/v1/makerspaces/{makerspace_id}/waitlist", tag = "reservations",
    params(("makerspace_id" = String, Path), WaitlistQuery),
    responses((status = 200, body = [WaitlistResponse]), (status = 404, body = crate::web::ErrorBody),
              (status = 422, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn waitlist_list(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<String>,
    query: web::Query<WaitlistQuery>,
) -> Result<HttpResponse, ApiError> {
    let rows = waitlist::list(&state, &caller, &path.into_inner(), query.into_inner().status).await?;
    Ok(HttpResponse::Ok().json(rows.into_iter().map(WaitlistResponse::from).collect::<Vec<_>>()))
}

#[utoipa::path(delete, path = "/api/v1/makerspaces/{makerspace_id}/waitlist/{entry_id}", tag = "reservations",
    params(("makerspace_id" = String, Path), ("entry_id" = String, Path)),
    responses((status = 204), (status = 403, body = crate::web::ErrorBody), (status = 404, body = crate::web::ErrorBody),
              (status = 409, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn waitlist_leave(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (space_id, entry_id) = path.into_inner();
    waitlist::leave(&state, &caller, &space_id, &entry_id).await?;
    Ok(HttpResponse::NoContent().finish())
}
