//! The HTTP side: REST under `/api/v1`, the WebSocket, operations endpoints and the pages.

pub mod auth;
pub mod billing;
pub mod billing_exports;
pub mod billing_gateways;
pub mod billing_wallet;
pub mod bom;
pub mod bridges;
pub mod cards;
pub mod csv_io;
pub mod equipment;
pub mod error;
pub mod idempotency;
pub mod inventory;
pub mod inventory_bulk;
pub mod inventory_csv;
pub mod invites;
pub mod invoices;
pub mod job_control;
pub mod job_priority;
pub mod jobs;
pub mod jwks;
pub mod kiosk;
pub mod machine_health;
pub mod makerspaces;
pub mod member_csv;
pub mod members;
pub mod mqtt_credentials;
pub mod multipart;
pub mod openapi;
pub mod ops;
pub mod pages;
pub mod paging;
pub mod plans;
pub mod pricing;
pub mod providers;
pub mod purchase_orders;
pub mod rate_limit;
pub mod reservations;
pub mod service_errors;
pub mod skills;
pub mod spools;
pub mod validate;
pub mod waitlist;
pub mod ws;

use std::sync::Arc;

use actix_web::dev::Service;
use actix_web::web;
use serde::Serialize;
use utoipa::ToSchema;

use crate::protocols::mqtt::MqttStatus;
use crate::services::Services;
use crate::web::auth::JwtKeys;

/// Largest JSON body accepted.
pub const MAX_JSON_BYTES: usize = 256 * 1024;

/// What every handler can reach: the services (whose parts, `state.store` and the like, it
/// reaches through `Deref`) and what only the web layer needs.
pub struct AppState {
    pub services: Arc<Services>,
    pub auth: Arc<JwtKeys>,
    pub mqtt: MqttStatus,
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
    /// A token for the demo makerspace, served to the dashboard only in `--demo` mode.
    pub demo_token: Option<String>,
    /// Limits guesses at invite tokens per client address.
    pub rate_limiter: rate_limit::RateLimiter,
    /// Caps on open WebSocket connections.
    pub ws_limits: ws::limits::ConnectionLimits,
}

impl std::ops::Deref for AppState {
    type Target = Services;
    fn deref(&self) -> &Services {
        &self.services
    }
}

/// The body of every error response.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub detail: String,
    pub status_code: u16,
    pub error_type: String,
}

/// Registers every route. The same function serves the binary and the tests.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::JsonConfig::default().limit(MAX_JSON_BYTES).error_handler(error::json_error))
        .app_data(web::QueryConfig::default().error_handler(error::query_error))
        .app_data(web::PathConfig::default().error_handler(error::path_error))
        .service(
            web::scope("/api/v1")
                // A method the path does not serve is 405 before any route is tried: routes
                // with a variable segment (`/equipment/{equipment_id}`) would otherwise take
                // it for an id.
                .wrap_fn(|req, srv| {
                    let call = error::check_method(req.method(), req.path()).map(|()| srv.call(req));
                    async move {
                        match call {
                            Ok(response) => response.await,
                            Err(refused) => Err(refused.into()),
                        }
                    }
                })
                .route("/ws", web::get().to(ws::connect))
                .service(
                    web::resource("/makerspaces")
                        .route(web::post().to(makerspaces::create))
                        .route(web::get().to(makerspaces::list)),
                )
                .service(
                    web::resource("/makerspaces/{makerspace_id}")
                        .route(web::get().to(makerspaces::get))
                        .route(web::put().to(makerspaces::update))
                        .route(web::delete().to(makerspaces::delete)),
                )
                .configure(reservations::routes)
                .configure(waitlist::routes)
                // Before `inventory/{item_id}`, which would take `bulk`, `export`, `import` and
                // `alerts` for items' ids.
                .configure(inventory_bulk::routes)
                .configure(inventory_csv::routes)
                .configure(purchase_orders::routes)
                .configure(inventory::routes)
                .configure(spools::routes)
                .configure(bom::routes)
                .configure(pricing::routes)
                .configure(billing::routes)
                .configure(billing_wallet::routes)
                .configure(billing_gateways::routes)
                .configure(invoices::routes)
                .configure(billing_exports::routes)
                .service(
                    web::resource("/makerspaces/{makerspace_id}/equipment")
                        .route(web::post().to(equipment::create))
                        .route(web::get().to(equipment::list)),
                )
                .service(
                    web::resource("/makerspaces/{makerspace_id}/equipment/{equipment_id}")
                        .route(web::get().to(equipment::get))
                        .route(web::put().to(equipment::update))
                        .route(web::delete().to(equipment::delete)),
                )
                .route(
                    "/makerspaces/{makerspace_id}/equipment/{equipment_id}/state",
                    web::get().to(equipment::live_state),
                )
                .route("/makerspaces/{makerspace_id}/equipment/{equipment_id}/lock", web::post().to(equipment::lock))
                .configure(mqtt_credentials::routes)
                .configure(job_control::routes)
                .configure(machine_health::routes)
                .configure(job_priority::routes)
                .configure(jobs::routes)
                .configure(providers::routes)
                .configure(member_routes)
                .configure(skills::routes)
                .configure(kiosk::routes)
                .configure(bridges::routes)
                .route("/members/invites/{token}/accept", web::post().to(invites::accept))
                .route("/invites/validate", web::post().to(invites::validate))
                .route("/user/makerspaces", web::get().to(invites::my_makerspaces))
                .route("/makerspaces/{makerspace_id}/cards/lookup", web::post().to(cards::lookup)),
        )
        .route("/api/openapi.json", web::get().to(openapi::serve))
        .route("/healthz", web::get().to(ops::healthz))
        .route("/metrics", web::get().to(ops::metrics))
        .route("/demo/token", web::get().to(pages::demo_token))
        .route("/", web::get().to(pages::dashboard))
        .route("/kiosk", web::get().to(pages::kiosk))
        .route("/static/{file}", web::get().to(pages::asset))
        .default_service(web::to(error::not_found));
}

/// Members, plans, invitations and cards of a makerspace. Fixed paths (`plans`, `invites`,
/// `export`, ...) are registered before `{member_id}` so that they are not taken for ids.
fn member_routes(cfg: &mut web::ServiceConfig) {
    const BASE: &str = "/makerspaces/{makerspace_id}/members";
    let path = |rest: &str| format!("{BASE}{rest}");
    cfg.service(web::resource(path("")).route(web::post().to(members::create)).route(web::get().to(members::list)))
        .service(web::resource(path("/plans")).route(web::post().to(plans::create)).route(web::get().to(plans::list)))
        .service(
            web::resource(path("/plans/{plan_id}"))
                .route(web::get().to(plans::get))
                .route(web::put().to(plans::update))
                .route(web::delete().to(plans::delete)),
        )
        .service(
            web::resource(path("/invites")).route(web::post().to(invites::create)).route(web::get().to(invites::list)),
        )
        .route(&path("/invites/{invite_id}/resend"), web::post().to(invites::resend))
        .route(&path("/invites/{invite_id}"), web::delete().to(invites::cancel))
        .route(&path("/analytics/statistics"), web::get().to(members::statistics))
        .route(&path("/bulk-operations"), web::post().to(members::bulk))
        .route(&path("/export"), web::get().to(member_csv::export))
        .route(&path("/import"), web::post().to(member_csv::import))
        .service(
            web::resource(path("/{member_id}"))
                .route(web::get().to(members::get))
                .route(web::put().to(members::update))
                .route(web::delete().to(members::delete)),
        )
        .route(&path("/{member_id}/suspend"), web::post().to(members::suspend))
        .route(&path("/{member_id}/reactivate"), web::post().to(members::reactivate))
        .route(&path("/{member_id}/activities"), web::get().to(members::activities))
        .service(
            web::resource(path("/{member_id}/cards"))
                .route(web::post().to(cards::create))
                .route(web::get().to(cards::list)),
        )
        .route(&path("/{member_id}/cards/{card_id}"), web::delete().to(cards::delete));
}

/// Records the latency of every request by route pattern (not raw path: ids would explode
/// the label set).
pub fn latency_middleware<S, B>(
    req: actix_web::dev::ServiceRequest,
    srv: &S,
) -> impl std::future::Future<Output = Result<actix_web::dev::ServiceResponse<B>, actix_web::Error>>
where
    S: Service<actix_web::dev::ServiceRequest, Response = actix_web::dev::ServiceResponse<B>, Error = actix_web::Error>,
{
    let started = std::time::Instant::now();
    let method = req.method().to_string();
    let route = req.match_pattern().unwrap_or_else(|| "unmatched".to_string());
    let fut = srv.call(req);
    async move {
        let res = fut.await?;
        let status = res.status().as_u16().to_string();
        metrics::histogram!(crate::metrics::HTTP_LATENCY, "method" => method, "route" => route, "status" => status)
            .record(started.elapsed().as_secs_f64());
        Ok(res)
    }
}
