//! Payments, voiding, credit notes, and the integrity check.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{Map, Value};

use super::shapes::{BrokenDocument, CreditNoteResponse, IntegrityResponse, InvoiceResponse, PaymentResponse};
use crate::services::billing_invoices;
use crate::services::billing_settlement::{self, CreditNoteRequest, PaymentRequest, VoidRequest};
use crate::web::auth::Caller;
use crate::web::error::ApiError;
use crate::web::idempotency::{created, money_write};
use crate::web::validate::from_object;
use crate::web::AppState;

#[utoipa::path(post, path = "/api/v1/makerspaces/{makerspace_id}/billing/invoices/{invoice_id}/payments", tag = "billing",
    params(("makerspace_id" = String, Path), ("invoice_id" = String, Path),
           ("Idempotency-Key" = String, Header, pattern = r"^[!-~]{1,200}$", description = "Required: 1 to 200 printable ASCII characters; a retry with the same key and body answers the first result")),
    request_body = PaymentRequest,
    responses((status = 201, description = "The payment row (a wallet payment is also a row of the member's wallet)", body = PaymentResponse),
              (status = 400, description = "idempotency_key_required", body = crate::web::ErrorBody),
              (status = 403, body = crate::web::ErrorBody), (status = 404, body = crate::web::ErrorBody),
              (status = 409, description = "overpayment (more than is still due), insufficient_credit (wallet), invoice_not_finalized, invoice_void, idempotency_key_reused", body = crate::web::ErrorBody),
              (status = 422, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn pay(
    req: HttpRequest,
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<(String, String)>,
    body: web::Json<Map<String, Value>>,
) -> Result<HttpResponse, ApiError> {
    let (space, invoice) = path.into_inner();
    let (request, key): (PaymentRequest, _) =
        money_write(&req, &format!("payment {space} {invoice}"), body.into_inner())?;
    let (payment, replayed) = billing_settlement::pay(&state, &caller, &space, &invoice, request, &key).await?;
    Ok(created(PaymentResponse::from(payment), replayed))
}

#[utoipa::path(post, path = "/api/v1/makerspaces/{makerspace_id}/billing/invoices/{invoice_id}/void", tag = "billing",
    params(("makerspace_id" = String, Path), ("invoice_id" = String, Path)),
    request_body = VoidRequest,
    responses((status = 200, description = "Void; its charges are void with it", body = InvoiceResponse),
              (status = 403, body = crate::web::ErrorBody), (status = 404, body = crate::web::ErrorBody),
              (status = 409, description = "invoice_not_finalized, invoice_void, invoice_has_payments (issue a credit note instead), invoice_has_credit_notes", body = crate::web::ErrorBody),
              (status = 422, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn void(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<(String, String)>,
    body: web::Json<Map<String, Value>>,
) -> Result<HttpResponse, ApiError> {
    let (space, invoice) = path.into_inner();
    let request: VoidRequest = from_object(&body)?;
    billing_settlement::void(&state, &caller, &space, &invoice, request).await?;
    let detail = billing_invoices::get(&state, &caller, &space, &invoice).await?;
    Ok(HttpResponse::Ok().json(InvoiceResponse::from(detail)))
}

#[utoipa::path(post, path = "/api/v1/makerspaces/{makerspace_id}/billing/invoices/{invoice_id}/credit-notes", tag = "billing",
    params(("makerspace_id" = String, Path), ("invoice_id" = String, Path),
           ("Idempotency-Key" = String, Header, pattern = r"^[!-~]{1,200}$", description = "Required: 1 to 200 printable ASCII characters; a retry with the same key and body answers the first result")),
    request_body = CreditNoteRequest,
    responses((status = 201, description = "The credit note, numbered in its own series; the invoice's GET lists it", body = CreditNoteResponse),
              (status = 400, description = "idempotency_key_required", body = crate::web::ErrorBody),
              (status = 403, body = crate::web::ErrorBody), (status = 404, body = crate::web::ErrorBody),
              (status = 409, description = "already_credited (a line, or every line, was credited before), invoice_not_finalized, invoice_void, idempotency_key_reused", body = crate::web::ErrorBody),
              (status = 422, description = "A charge id that is no line of the invoice, listed twice, or an empty list", body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn credit_note(
    req: HttpRequest,
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<(String, String)>,
    body: web::Json<Map<String, Value>>,
) -> Result<HttpResponse, ApiError> {
    let (space, invoice) = path.into_inner();
    let (request, key): (CreditNoteRequest, _) =
        money_write(&req, &format!("credit-note {space} {invoice}"), body.into_inner())?;
    let (note, replayed) = billing_settlement::credit_note(&state, &caller, &space, &invoice, request, &key).await?;
    Ok(created(CreditNoteResponse::new(note, None), replayed))
}

#[utoipa::path(get, path = "/api/v1/makerspaces/{makerspace_id}/billing/integrity", tag = "billing",
    params(("makerspace_id" = String, Path)),
    responses((status = 200, description = "The chain of finalized invoices and credit notes, recomputed", body = IntegrityResponse),
              (status = 403, body = crate::web::ErrorBody), (status = 404, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn integrity(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let answer = match billing_settlement::integrity(&state, &caller, &path.into_inner()).await? {
        Ok(n) => IntegrityResponse { ok: true, documents: Some(n), first_broken: None, reason: None },
        Err(broken) => IntegrityResponse {
            ok: false,
            documents: None,
            first_broken: Some(BrokenDocument { kind: broken.kind.to_string(), number: broken.number, id: broken.id }),
            reason: Some(broken.reason),
        },
    };
    Ok(HttpResponse::Ok().json(answer))
}
