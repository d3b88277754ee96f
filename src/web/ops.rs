//! Operations: health and metrics.

use actix_web::{web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use crate::web::AppState;

#[derive(Serialize, ToSchema)]
pub struct Health {
    /// `ok` when the database and the broker are reachable, else `degraded`.
    pub status: &'static str,
    pub database: &'static str,
    pub database_kind: &'static str,
    /// `connected` or `disconnected`.
    pub mqtt: &'static str,
    /// `embedded` or `external`.
    pub mqtt_broker: &'static str,
    pub machines: usize,
    pub websocket_subscriptions: usize,
}

#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, body = Health), (status = 503, body = Health)))]
pub async fn healthz(state: web::Data<AppState>) -> HttpResponse {
    let database_ok =
        tokio::time::timeout(std::time::Duration::from_secs(2), state.store.ping()).await.is_ok_and(|r| r.is_ok());
    let mqtt_ok = state.mqtt.is_connected();
    let health = Health {
        status: if database_ok && mqtt_ok { "ok" } else { "degraded" },
        database: if database_ok { "ok" } else { "unreachable" },
        database_kind: state.store.kind(),
        mqtt: if mqtt_ok { "connected" } else { "disconnected" },
        mqtt_broker: if state.settings.mqtt_broker.is_some() { "external" } else { "embedded" },
        machines: state.fleet.len(),
        websocket_subscriptions: state.hub.subscriber_count(),
    };
    if database_ok && mqtt_ok {
        HttpResponse::Ok().json(health)
    } else {
        HttpResponse::ServiceUnavailable().json(health)
    }
}

#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain")))]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(state.metrics.render())
}
