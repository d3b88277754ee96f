//! `/api/v1/makerspaces/{id}/members/{member_id}/wallet` and paying a charge from it: the
//! credit wallet over HTTP ([`crate::services::billing_wallet`]).

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::services::billing_wallet::{self, AdjustmentRequest, TopUpRequest};
use crate::store::billing_ledger::WalletEntry;
use crate::web::auth::Caller;
use crate::web::error::ApiError;
use crate::web::idempotency::{created, idempotency_key, money_write};
use crate::web::paging::{Page, PageInfo};
use crate::web::AppState;

#[derive(OpenApi)]
#[openapi(
    paths(get_wallet, top_up, adjust, pay_from_wallet),
    components(schemas(WalletResponse, WalletEntryResponse, TopUpRequest, AdjustmentRequest))
)]
pub struct WalletApi;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/makerspaces/{makerspace_id}/members/{member_id}/wallet", web::get().to(get_wallet))
        .route("/makerspaces/{makerspace_id}/members/{member_id}/wallet/top-ups", web::post().to(top_up))
        .route("/makerspaces/{makerspace_id}/members/{member_id}/wallet/adjustments", web::post().to(adjust))
        .route(
            "/makerspaces/{makerspace_id}/billing/charges/{charge_id}/pay-from-wallet",
            web::post().to(pay_from_wallet),
        );
}

/// One row of a wallet's ledger.
#[derive(Debug, Serialize, ToSchema)]
pub struct WalletEntryResponse {
    pub id: i64,
    pub member_id: String,
    /// `top_up`, `charge_payment`, `invoice_payment`, `refund` or `adjustment`.
    pub kind: String,
    /// Signed, in minor units: positive in, negative out.
    pub amount_minor: i64,
    #[schema(pattern = "^[A-Z]{3}$")]
    pub currency: String,
    /// The charge a payment paid.
    pub charge_id: Option<String>,
    pub reason: Option<String>,
    /// Who wrote it.
    pub actor: String,
    pub created_at: DateTime<Utc>,
}

impl From<WalletEntry> for WalletEntryResponse {
    fn from(e: WalletEntry) -> Self {
        WalletEntryResponse {
            id: e.id,
            member_id: e.member_id,
            kind: e.kind,
            amount_minor: e.amount_minor,
            currency: e.currency,
            charge_id: e.charge_id,
            reason: e.reason,
            actor: e.actor,
            created_at: e.created_at,
        }
    }
}

/// A member's wallet: the balance (the sum of every row) and a page of rows.
#[derive(Debug, Serialize, ToSchema)]
pub struct WalletResponse {
    pub member_id: String,
    #[schema(pattern = "^[A-Z]{3}$")]
    pub currency: String,
    pub balance_minor: i64,
    /// Newest first.
    pub entries: Vec<WalletEntryResponse>,
    #[serde(flatten)]
    pub page: PageInfo,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct WalletQuery {
    /// From 1.
    #[param(minimum = 1, maximum = 9_223_372_036_854_775_807_i64)]
    pub page: Option<i64>,
    /// 1 to 200 [default: 50].
    #[param(minimum = 1, maximum = 200)]
    pub page_size: Option<i64>,
}

#[utoipa::path(get, path = "/api/v1/makerspaces/{makerspace_id}/members/{member_id}/wallet", tag = "billing",
    params(("makerspace_id" = String, Path), ("member_id" = String, Path), WalletQuery),
    responses((status = 200, body = WalletResponse), (status = 403, body = crate::web::ErrorBody),
              (status = 404, description = "No such member, or another member's wallet", body = crate::web::ErrorBody),
              (status = 422, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_wallet(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<(String, String)>,
    query: web::Query<WalletQuery>,
) -> Result<HttpResponse, ApiError> {
    let (space, member) = path.into_inner();
    let q = query.into_inner();
    let page = Page::of(q.page, q.page_size)?;
    let wallet = billing_wallet::wallet(&state, &caller, &space, &member, page.limit(), page.offset()).await?;
    Ok(HttpResponse::Ok().json(WalletResponse {
        member_id: wallet.member_id,
        currency: wallet.currency,
        balance_minor: wallet.balance_minor,
        entries: wallet.entries.into_iter().map(WalletEntryResponse::from).collect(),
        page: PageInfo::new(page, wallet.total),
    }))
}

#[utoipa::path(post, path = "/api/v1/makerspaces/{makerspace_id}/members/{member_id}/wallet/top-ups", tag = "billing",
    params(("makerspace_id" = String, Path), ("member_id" = String, Path),
           ("Idempotency-Key" = String, Header, pattern = r"^[!-~]{1,200}$", description = "Required: 1 to 200 printable ASCII characters; a retry with the same key and body answers the first result")),
    request_body = TopUpRequest,
    responses((status = 201, body = WalletEntryResponse),
              (status = 400, description = "idempotency_key_required", body = crate::web::ErrorBody),
              (status = 403, body = crate::web::ErrorBody), (status = 404, body = crate::web::ErrorBody),
              (status = 409, description = "idempotency_key_reused", body = crate::web::ErrorBody),
              (status = 422, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn top_up(
    req: HttpRequest,
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<(String, String)>,
    body: web::Json<Map<String, Value>>,
) -> Result<HttpResponse, ApiError> {
    let (space, member) = path.into_inner();
    let (request, key): (TopUpRequest, _) = money_write(&req, &format!("top-up {space} {member}"), body.into_inner())?;
    let (entry, replayed) = billing_wallet::top_up(&state, &caller, &space, &member, request, &key).await?;
    Ok(created(WalletEntryResponse::from(entry), replayed))
}

#[utoipa::path(post, path = "/api/v1/makerspaces/{makerspace_id}/members/{member_id}/wallet/adjustments", tag = "billing",
    params(("makerspace_id" = String, Path), ("member_id" = String, Path),
           ("Idempotency-Key" = String, Header, pattern = r"^[!-~]{1,200}$", description = "Required: 1 to 200 printable ASCII characters; a retry with the same key and body answers the first result")),
    request_body = AdjustmentRequest,
    responses((status = 201, body = WalletEntryResponse),
              (status = 400, description = "idempotency_key_required", body = crate::web::ErrorBody),
              (status = 403, body = crate::web::ErrorBody), (status = 404, body = crate::web::ErrorBody),
              (status = 409, description = "idempotency_key_reused; insufficient_credit: it would take the balance below zero", body = crate::web::ErrorBody),
              (status = 422, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn adjust(
    req: HttpRequest,
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<(String, String)>,
    body: web::Json<Map<String, Value>>,
) -> Result<HttpResponse, ApiError> {
    let (space, member) = path.into_inner();
    let (request, key): (AdjustmentRequest, _) =
        money_write(&req, &format!("adjustment {space} {member}"), body.into_inner())?;
    let (entry, replayed) = billing_wallet::adjust(&state, &caller, &space, &member, request, &key).await?;
    Ok(created(WalletEntryResponse::from(entry), replayed))
}

#[utoipa::path(post, path = "/api/v1/makerspaces/{makerspace_id}/billing/charges/{charge_id}/pay-from-wallet", tag = "billing",
    params(("makerspace_id" = String, Path), ("charge_id" = String, Path),
           ("Idempotency-Key" = String, Header, pattern = r"^[!-~]{1,200}$", description = "Required: 1 to 200 printable ASCII characters; a retry with the same key answers the first result")),
    responses((status = 201, description = "The wallet row that paid the charge", body = WalletEntryResponse),
              (status = 400, description = "idempotency_key_required", body = crate::web::ErrorBody),
              (status = 403, body = crate::web::ErrorBody), (status = 404, body = crate::web::ErrorBody),
              (status = 409, description = "insufficient_credit (with balance_minor and needed_minor); charge_not_payable: paid already, void, or nothing due; idempotency_key_reused", body = crate::web::ErrorBody),
              (status = 422, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn pay_from_wallet(
    req: HttpRequest,
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (space, charge) = path.into_inner();
    let key = idempotency_key(&req, &format!("pay {space} {charge}"), &json!(null))?;
    let (entry, replayed) = billing_wallet::pay_charge(&state, &caller, &space, &charge, &key).await?;
    Ok(created(WalletEntryResponse::from(entry), replayed))
}
