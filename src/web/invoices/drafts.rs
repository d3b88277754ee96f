//! Making, reading, changing and finalizing invoices.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use utoipa::IntoParams;

use super::shapes::{InvoicePage, InvoiceResponse, InvoiceStatus, InvoiceSummary};
use crate::services::billing_invoices::{self, InvoiceRequest};
use crate::services::billing_runs::{self, RunReport, RunRequest};
use crate::store::billing_invoices::InvoiceFilter;
use crate::web::auth::Caller;
use crate::web::error::ApiError;
use crate::web::idempotency::{created, idempotency_key, money_write};
use crate::web::paging::{Page, PageInfo};
use crate::web::AppState;

#[utoipa::path(post, path = "/api/v1/makerspaces/{makerspace_id}/billing/invoices", tag = "billing",
    params(("makerspace_id" = String, Path),
           ("Idempotency-Key" = String, Header, pattern = r"^[!-~]{1,200}$", description = "Required: 1 to 200 printable ASCII characters; a retry with the same key and body answers the first result")),
    request_body = InvoiceRequest,
    responses((status = 201, description = "A draft holding the member's open charges of the period (it may hold none)", body = InvoiceResponse),
              (status = 400, description = "idempotency_key_required", body = crate::web::ErrorBody),
              (status = 403, body = crate::web::ErrorBody), (status = 404, description = "No such member", body = crate::web::ErrorBody),
              (status = 409, description = "idempotency_key_reused", body = crate::web::ErrorBody),
              (status = 422, description = "period_to before period_from", body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn create(
    req: HttpRequest,
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<String>,
    body: web::Json<Map<String, Value>>,
) -> Result<HttpResponse, ApiError> {
    let space = path.into_inner();
    let (request, key): (InvoiceRequest, _) = money_write(&req, &format!("invoice {space}"), body.into_inner())?;
    let (invoice, replayed) = billing_invoices::create(&state, &caller, &space, request, &key).await?;
    let detail = billing_invoices::get(&state, &caller, &space, &invoice.id).await?;
    Ok(created(InvoiceResponse::from(detail), replayed))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct InvoiceQuery {
    /// Only this member's (a member sees only their own whatever this says).
    #[param(min_length = 1, max_length = 64)]
    pub member_id: Option<String>,
    pub status: Option<InvoiceStatus>,
    /// From 1.
    #[param(minimum = 1, maximum = 9_223_372_036_854_775_807_i64)]
    pub page: Option<i64>,
    /// 1 to 200 [default: 50].
    #[param(minimum = 1, maximum = 200)]
    pub page_size: Option<i64>,
}

#[utoipa::path(get, path = "/api/v1/makerspaces/{makerspace_id}/billing/invoices", tag = "billing",
    params(("makerspace_id" = String, Path), InvoiceQuery),
    responses((status = 200, description = "Admins see every invoice; a member only their own", body = InvoicePage),
              (status = 403, body = crate::web::ErrorBody), (status = 404, body = crate::web::ErrorBody),
              (status = 422, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<String>,
    query: web::Query<InvoiceQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let page = Page::of(q.page, q.page_size)?;
    if q.member_id.as_ref().is_some_and(|m| m.is_empty() || m.len() > 64) {
        return Err(ApiError::Validation("member_id is 1 to 64 characters".into()));
    }
    let filter = InvoiceFilter {
        member_id: q.member_id,
        status: q.status.map(|s| s.as_str().to_string()),
        limit: page.limit(),
        offset: page.offset(),
    };
    let (invoices, total) = billing_invoices::list(&state, &caller, &path.into_inner(), filter).await?;
    Ok(HttpResponse::Ok().json(InvoicePage {
        invoices: invoices.into_iter().map(InvoiceSummary::from).collect(),
        page: PageInfo::new(page, total),
    }))
}

#[utoipa::path(get, path = "/api/v1/makerspaces/{makerspace_id}/billing/invoices/{invoice_id}", tag = "billing",
    params(("makerspace_id" = String, Path), ("invoice_id" = String, Path)),
    responses((status = 200, description = "The invoice, its lines, tax per rate, payments and credit notes", body = InvoiceResponse),
              (status = 403, body = crate::web::ErrorBody),
              (status = 404, description = "No such invoice, or another member's", body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn get(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (space, id) = path.into_inner();
    let detail = billing_invoices::get(&state, &caller, &space, &id).await?;
    Ok(HttpResponse::Ok().json(InvoiceResponse::from(detail)))
}

#[utoipa::path(post, path = "/api/v1/makerspaces/{makerspace_id}/billing/invoices/{invoice_id}/lines/{charge_id}/remove", tag = "billing",
    params(("makerspace_id" = String, Path), ("invoice_id" = String, Path), ("charge_id" = String, Path)),
    responses((status = 200, description = "The draft without the line; the charge is open again", body = InvoiceResponse),
              (status = 403, body = crate::web::ErrorBody),
              (status = 404, description = "No such invoice, or the charge is not on it", body = crate::web::ErrorBody),
              (status = 409, description = "invoice_finalized (only a draft changes), invoice_void", body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn remove_line(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (space, invoice, charge) = path.into_inner();
    let detail = billing_invoices::remove_line(&state, &caller, &space, &invoice, &charge).await?;
    Ok(HttpResponse::Ok().json(InvoiceResponse::from(detail)))
}

#[utoipa::path(post, path = "/api/v1/makerspaces/{makerspace_id}/billing/invoices/{invoice_id}/finalize", tag = "billing",
    params(("makerspace_id" = String, Path), ("invoice_id" = String, Path),
           ("Idempotency-Key" = String, Header, pattern = r"^[!-~]{1,200}$", description = "Required: 1 to 200 printable ASCII characters; a retry with the same key answers the first result")),
    responses((status = 201, description = "Finalized: numbered, its lines and taxes frozen, linked into the integrity chain", body = InvoiceResponse),
              (status = 400, description = "idempotency_key_required", body = crate::web::ErrorBody),
              (status = 403, body = crate::web::ErrorBody), (status = 404, body = crate::web::ErrorBody),
              (status = 409, description = "invoice_finalized, invoice_void, invoice_empty (a draft without lines), idempotency_key_reused", body = crate::web::ErrorBody),
              (status = 422, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn finalize(
    req: HttpRequest,
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (space, invoice) = path.into_inner();
    let key = idempotency_key(&req, &format!("finalize {space} {invoice}"), &json!(null))?;
    let (detail, replayed) = billing_invoices::finalize(&state, &caller, &space, &invoice, &key).await?;
    Ok(created(InvoiceResponse::from(detail), replayed))
}

#[utoipa::path(post, path = "/api/v1/makerspaces/{makerspace_id}/billing/runs", tag = "billing",
    params(("makerspace_id" = String, Path)),
    request_body = RunRequest,
    responses((status = 200, description = "The month's plan fees charged and each member's open charges of the month invoiced and finalized; a run repeated makes nothing twice", body = RunReport),
              (status = 403, body = crate::web::ErrorBody), (status = 404, body = crate::web::ErrorBody),
              (status = 409, description = "month_not_over: the month has not ended", body = crate::web::ErrorBody),
              (status = 422, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn run(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<String>,
    body: web::Json<Map<String, Value>>,
) -> Result<HttpResponse, ApiError> {
    let request: RunRequest = crate::web::validate::from_object(&body)?;
    let report = billing_runs::run_for(&state, &caller, &path.into_inner(), request).await?;
    Ok(HttpResponse::Ok().json(report))
}
