//! `/api/v1/makerspaces/{id}/billing/...` and a machine's price: billing settings, prices and
//! charges over HTTP ([`crate::services::billing`]). The wallet is [`super::billing_wallet`].
//!
//! A machine's price has its own resource (`.../equipment/{eq}/price`) rather than fields of
//! the equipment record: it is written by other people at other times (whoever keeps the
//! price list), and a charge must read it without the machine's connection secrets.
//!
//! Money writes take an `Idempotency-Key` header: the same key with the same request answers
//! the first result (with `Idempotent-Replayed: true`); with another request, 409.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::domain::billing::{BillingSettings, BillingUnit, IncludedMinutes, JobChargePolicy, MachinePrice, TaxRate};
use crate::services::billing::{self, ManualChargeRequest, ManualKind, PriceView};
use crate::store::billing_ledger::{ChargeFilter, ChargeRecord};
use crate::web::auth::Caller;
use crate::web::error::ApiError;
use crate::web::idempotency::{created, money_write};
use crate::web::paging::{Page, PageInfo};
use crate::web::validate::from_object;
use crate::web::AppState;

#[derive(OpenApi)]
#[openapi(
    paths(get_settings, put_settings, get_price, put_price, list_charges, create_charge),
    components(schemas(
        BillingSettings,
        TaxRate,
        JobChargePolicy,
        MachinePrice,
        BillingUnit,
        PriceView,
        ChargeResponse,
        ChargePage,
        ChargeStatus,
        ManualChargeRequest,
        ManualKind,
        IncludedMinutes
    ))
)]
pub struct BillingApi;

/// Registers the routes (inside `/api/v1`).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/makerspaces/{makerspace_id}/billing/settings")
            .route(web::get().to(get_settings))
            .route(web::put().to(put_settings)),
    )
    .service(
        web::resource("/makerspaces/{makerspace_id}/equipment/{equipment_id}/price")
            .route(web::get().to(get_price))
            .route(web::put().to(put_price)),
    )
    .service(
        web::resource("/makerspaces/{makerspace_id}/billing/charges")
            .route(web::get().to(list_charges))
            .route(web::post().to(create_charge)),
    );
}

#[utoipa::path(get, path = "/api/v1/makerspaces/{makerspace_id}/billing/settings", tag = "billing",
    params(("makerspace_id" = String, Path)),
    responses((status = 200, description = "The space's settings (the defaults until its admins write them)", body = BillingSettings),
              (status = 403, body = crate::web::ErrorBody), (status = 404, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_settings(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(billing::settings(&state, &caller, &path.into_inner()).await?))
}

#[utoipa::path(put, path = "/api/v1/makerspaces/{makerspace_id}/billing/settings", tag = "billing",
    params(("makerspace_id" = String, Path)), request_body = BillingSettings,
    responses((status = 200, body = BillingSettings), (status = 403, body = crate::web::ErrorBody),
              (status = 404, body = crate::web::ErrorBody),
              (status = 422, description = "A currency that is not three capital letters, a tax rate listed twice or out of 0 to 100", body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn put_settings(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<String>,
    body: web::Json<Map<String, Value>>,
) -> Result<HttpResponse, ApiError> {
    let settings: BillingSettings = from_object(&body)?;
    Ok(HttpResponse::Ok().json(billing::put_settings(&state, &caller, &path.into_inner(), settings).await?))
}

#[utoipa::path(get, path = "/api/v1/makerspaces/{makerspace_id}/equipment/{equipment_id}/price", tag = "billing",
    params(("makerspace_id" = String, Path), ("equipment_id" = String, Path)),
    responses((status = 200, description = "The machine's price (`default: true` and free until one is written)", body = PriceView),
              (status = 403, body = crate::web::ErrorBody), (status = 404, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_price(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (space, equipment) = path.into_inner();
    Ok(HttpResponse::Ok().json(billing::price(&state, &caller, &space, &equipment).await?))
}

#[utoipa::path(put, path = "/api/v1/makerspaces/{makerspace_id}/equipment/{equipment_id}/price", tag = "billing",
    params(("makerspace_id" = String, Path), ("equipment_id" = String, Path)), request_body = MachinePrice,
    responses((status = 200, body = PriceView), (status = 403, body = crate::web::ErrorBody),
              (status = 404, body = crate::web::ErrorBody),
              (status = 422, description = "A rate or fee out of range, or a tax rate the space does not have", body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn put_price(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<(String, String)>,
    body: web::Json<Map<String, Value>>,
) -> Result<HttpResponse, ApiError> {
    let (space, equipment) = path.into_inner();
    let price: MachinePrice = from_object(&body)?;
    Ok(HttpResponse::Ok().json(billing::put_price(&state, &caller, &space, &equipment, price).await?))
}

/// Where a charge is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChargeStatus {
    /// Not on an invoice yet.
    Open,
    Invoiced,
    Void,
}

impl ChargeStatus {
    fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Invoiced => "invoiced",
            Self::Void => "void",
        }
    }
}

/// A charge: what a member owes for one use (a session, a job) or an admin's line.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChargeResponse {
    pub id: String,
    pub makerspace_id: String,
    pub member_id: String,
    /// `session:{id}`, `job:{id}`, `manual:{id}` or `plan:{plan}:{member}:{period start}` (the
    /// monthly run's plan fees): one charge per source.
    pub source: String,
    /// `session`, `job`, `manual`, `discount` or `plan_fee`.
    pub kind: String,
    pub description: String,
    pub equipment_id: Option<String>,
    pub equipment_type: Option<String>,
    /// When the use happened.
    pub usage_at: DateTime<Utc>,
    /// Plan minutes this charge used before money.
    pub included_minutes: i64,
    /// The figures and the rounding rule as data (a session: seconds, billed, busy, idle and
    /// included minutes, the exact amount before rounding).
    #[schema(value_type = Object)]
    pub detail: Value,
    /// The rounding rule in words.
    pub rounding_rule: String,
    #[schema(pattern = "^[A-Z]{3}$")]
    pub currency: String,
    /// Before tax, in minor units (negative for a discount).
    pub net_minor: i64,
    pub tax_rate_id: Option<String>,
    /// The tax percent applied, as decimal text (`20`, `5.5`).
    pub tax_percent: Option<String>,
    pub tax_minor: i64,
    pub total_minor: i64,
    pub status: ChargeStatus,
    pub invoice_id: Option<String>,
    /// Why an admin added it.
    pub reason: Option<String>,
    /// True once paid from the member's wallet.
    pub paid_from_wallet: bool,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

impl From<ChargeRecord> for ChargeResponse {
    fn from(c: ChargeRecord) -> Self {
        ChargeResponse {
            detail: serde_json::from_str(&c.detail).unwrap_or(Value::Null),
            status: match c.status.as_str() {
                "invoiced" => ChargeStatus::Invoiced,
                "void" => ChargeStatus::Void,
                _ => ChargeStatus::Open,
            },
            paid_from_wallet: c.paid_by_wallet_entry.is_some(),
            id: c.id,
            makerspace_id: c.makerspace_id,
            member_id: c.member_id,
            source: c.source,
            kind: c.kind,
            description: c.description,
            equipment_id: c.equipment_id,
            equipment_type: c.equipment_type,
            usage_at: c.usage_at,
            included_minutes: c.included_minutes,
            rounding_rule: c.rounding_rule,
            currency: c.currency,
            net_minor: c.net_minor,
            tax_rate_id: c.tax_rate_id,
            tax_percent: c.tax_percent,
            tax_minor: c.tax_minor,
            total_minor: c.total_minor,
            invoice_id: c.invoice_id,
            reason: c.reason,
            created_by: c.created_by,
            created_at: c.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChargePage {
    /// Newest use first.
    pub charges: Vec<ChargeResponse>,
    #[serde(flatten)]
    pub page: PageInfo,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ChargeQuery {
    /// Only this member's (a member sees only their own whatever this says).
    #[param(min_length = 1, max_length = 64)]
    pub member_id: Option<String>,
    /// Uses at or after this instant.
    pub from: Option<DateTime<Utc>>,
    /// Uses before this instant.
    pub to: Option<DateTime<Utc>>,
    pub status: Option<ChargeStatus>,
    /// From 1.
    #[param(minimum = 1, maximum = 9_223_372_036_854_775_807_i64)]
    pub page: Option<i64>,
    /// 1 to 200 [default: 50].
    #[param(minimum = 1, maximum = 200)]
    pub page_size: Option<i64>,
}

#[utoipa::path(get, path = "/api/v1/makerspaces/{makerspace_id}/billing/charges", tag = "billing",
    params(("makerspace_id" = String, Path), ChargeQuery),
    responses((status = 200, description = "Admins see every charge; a member only their own", body = ChargePage),
              (status = 403, body = crate::web::ErrorBody), (status = 404, body = crate::web::ErrorBody),
              (status = 422, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_charges(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<String>,
    query: web::Query<ChargeQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let page = Page::of(q.page, q.page_size)?;
    if q.member_id.as_ref().is_some_and(|m| m.is_empty() || m.len() > 64) {
        return Err(ApiError::Validation("member_id is 1 to 64 characters".into()));
    }
    let filter = ChargeFilter {
        member_id: q.member_id,
        from: q.from,
        to: q.to,
        status: q.status.map(|s| s.as_str().to_string()),
        limit: page.limit(),
        offset: page.offset(),
    };
    let (charges, total) = billing::charges(&state, &caller, &path.into_inner(), filter).await?;
    Ok(HttpResponse::Ok().json(ChargePage {
        charges: charges.into_iter().map(ChargeResponse::from).collect(),
        page: PageInfo::new(page, total),
    }))
}

#[utoipa::path(post, path = "/api/v1/makerspaces/{makerspace_id}/billing/charges", tag = "billing",
    params(("makerspace_id" = String, Path),
           ("Idempotency-Key" = String, Header, pattern = r"^[!-~]{1,200}$", description = "Required: 1 to 200 printable ASCII characters; a retry with the same key and body answers the first result")),
    request_body = ManualChargeRequest,
    responses((status = 201, description = "Added (or, for a repeated key and body, the line added the first time)", body = ChargeResponse),
              (status = 400, description = "idempotency_key_required", body = crate::web::ErrorBody),
              (status = 403, body = crate::web::ErrorBody), (status = 404, body = crate::web::ErrorBody),
              (status = 409, description = "idempotency_key_reused: the key was used for another request", body = crate::web::ErrorBody),
              (status = 422, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_charge(
    req: HttpRequest,
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<String>,
    body: web::Json<Map<String, Value>>,
) -> Result<HttpResponse, ApiError> {
    let space = path.into_inner();
    let (request, key): (ManualChargeRequest, _) = money_write(&req, &format!("charge {space}"), body.into_inner())?;
    let (charge, replayed) = billing::add_manual_charge(&state, &caller, &space, request, &key).await?;
    Ok(created(ChargeResponse::from(charge), replayed))
}
