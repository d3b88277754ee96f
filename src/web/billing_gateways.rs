//! Payment gateways over HTTP ([`crate::services::billing_gateways`]): a space's Stripe and
//! Razorpay accounts (`/billing/gateways`), checkouts for an invoice, Razorpay's payment
//! signature, and the webhooks. The webhooks carry no token: the signature under the space's
//! webhook secret is the proof, and a refused delivery is 400 (the gateway retries).

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{json, Map, Value};
use utoipa::{OpenApi, ToSchema};

use crate::domain::billing::gateways::GatewayKind;
use crate::services::billing_gateways::{
    self, CheckoutRequest, GatewayView, RazorpayAccountRequest, RazorpayPaymentRequest, StripeAccountRequest,
    WebhookDelivery,
};
use crate::store::billing_gateways::CheckoutRecord;
use crate::web::auth::Caller;
use crate::web::csv_io::read_limited;
use crate::web::error::ApiError;
use crate::web::validate::from_object;
use crate::web::AppState;

/// The largest webhook body read: gateways' events are a few kilobytes.
const MAX_WEBHOOK_BYTES: usize = 256 * 1024;

#[derive(OpenApi)]
#[openapi(
    paths(
        list,
        put_stripe,
        put_razorpay,
        remove_stripe,
        remove_razorpay,
        checkout,
        razorpay_payment,
        stripe_webhook,
        razorpay_webhook
    ),
    components(schemas(
        GatewayKind,
        GatewayView,
        StripeAccountRequest,
        RazorpayAccountRequest,
        CheckoutRequest,
        CheckoutResponse,
        RazorpayPaymentRequest,
        WebhookAnswer
    ))
)]
pub struct GatewaysApi;

pub fn routes(cfg: &mut web::ServiceConfig) {
    let base = "/makerspaces/{makerspace_id}/billing";
    cfg.route(&format!("{base}/gateways"), web::get().to(list))
        .service(
            web::resource(format!("{base}/gateways/stripe"))
                .route(web::put().to(put_stripe))
                .route(web::delete().to(remove_stripe)),
        )
        .service(
            web::resource(format!("{base}/gateways/razorpay"))
                .route(web::put().to(put_razorpay))
                .route(web::delete().to(remove_razorpay)),
        )
        .route(&format!("{base}/invoices/{{invoice_id}}/checkouts"), web::post().to(checkout))
        .route(&format!("{base}/checkouts/{{checkout_id}}/razorpay-payment"), web::post().to(razorpay_payment))
        .route(&format!("{base}/webhooks/stripe"), web::post().to(stripe_webhook))
        .route(&format!("{base}/webhooks/razorpay"), web::post().to(razorpay_webhook));
}

/// A checkout opened: where the member pays.
#[derive(Debug, Serialize, ToSchema)]
pub struct CheckoutResponse {
    pub id: String,
    pub gateway: GatewayKind,
    pub invoice_id: String,
    /// The gateway's id: a Checkout Session (`cs_…`) or a Razorpay order (`order_…`).
    pub external_id: String,
    /// Stripe's payment page. Razorpay has none: its checkout script is opened with
    /// `key_id` and the order id (`external_id`).
    pub url: Option<String>,
    /// Razorpay's key id (public).
    pub key_id: Option<String>,
    /// What is due, in minor units.
    pub amount_minor: i64,
    #[schema(pattern = "^[A-Z]{3}$")]
    pub currency: String,
    pub created_at: DateTime<Utc>,
}

impl CheckoutResponse {
    fn new(c: CheckoutRecord, key_id: Option<String>) -> CheckoutResponse {
        CheckoutResponse {
            gateway: GatewayKind::parse(&c.gateway).unwrap_or(GatewayKind::Stripe),
            id: c.id,
            invoice_id: c.invoice_id,
            external_id: c.external_id,
            url: c.url,
            key_id,
            amount_minor: c.amount_minor,
            currency: c.currency,
            created_at: c.created_at,
        }
    }
}

/// What a webhook delivery changed.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookAnswer {
    pub received: bool,
    /// `paid`, `paid_and_credited` (beyond what was due, to the member's wallet), `credited`,
    /// `duplicate` (this event was received before), `duplicate_payment` (another event
    /// recorded this payment), `currency_mismatch` (recorded, applied to nothing) or `ignored`.
    pub outcome: String,
}

#[utoipa::path(get, path = "/api/v1/makerspaces/{makerspace_id}/billing/gateways", tag = "billing",
    params(("makerspace_id" = String, Path)),
    responses((status = 200, description = "The space's gateway accounts, secrets masked, with the webhook URL to give each gateway", body = [GatewayView]),
              (status = 403, body = crate::web::ErrorBody), (status = 404, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(billing_gateways::list(&state, &caller, &path.into_inner()).await?))
}

#[utoipa::path(put, path = "/api/v1/makerspaces/{makerspace_id}/billing/gateways/stripe", tag = "billing",
    params(("makerspace_id" = String, Path)),
    request_body = StripeAccountRequest,
    responses((status = 200, description = "Stored; secrets sealed at rest and masked here", body = GatewayView),
              (status = 403, body = crate::web::ErrorBody), (status = 404, body = crate::web::ErrorBody),
              (status = 422, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn put_stripe(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<String>,
    body: web::Json<Map<String, Value>>,
) -> Result<HttpResponse, ApiError> {
    let request: StripeAccountRequest = from_object(&body)?;
    let view = billing_gateways::put(&state, &caller, &path.into_inner(), GatewayKind::Stripe, request.into()).await?;
    Ok(HttpResponse::Ok().json(view))
}

#[utoipa::path(put, path = "/api/v1/makerspaces/{makerspace_id}/billing/gateways/razorpay", tag = "billing",
    params(("makerspace_id" = String, Path)),
    request_body = RazorpayAccountRequest,
    responses((status = 200, description = "Stored; secrets sealed at rest and masked here", body = GatewayView),
              (status = 403, body = crate::web::ErrorBody), (status = 404, body = crate::web::ErrorBody),
              (status = 422, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn put_razorpay(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<String>,
    body: web::Json<Map<String, Value>>,
) -> Result<HttpResponse, ApiError> {
    let request: RazorpayAccountRequest = from_object(&body)?;
    let view =
        billing_gateways::put(&state, &caller, &path.into_inner(), GatewayKind::Razorpay, request.into()).await?;
    Ok(HttpResponse::Ok().json(view))
}

#[utoipa::path(delete, path = "/api/v1/makerspaces/{makerspace_id}/billing/gateways/stripe", tag = "billing",
    params(("makerspace_id" = String, Path)),
    responses((status = 204, description = "Off (or off already): no checkout is opened and no webhook accepted"),
              (status = 403, body = crate::web::ErrorBody), (status = 404, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn remove_stripe(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    billing_gateways::remove(&state, &caller, &path.into_inner(), GatewayKind::Stripe).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(delete, path = "/api/v1/makerspaces/{makerspace_id}/billing/gateways/razorpay", tag = "billing",
    params(("makerspace_id" = String, Path)),
    responses((status = 204, description = "Off (or off already): no checkout is opened and no webhook accepted"),
              (status = 403, body = crate::web::ErrorBody), (status = 404, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn remove_razorpay(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    billing_gateways::remove(&state, &caller, &path.into_inner(), GatewayKind::Razorpay).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(post, path = "/api/v1/makerspaces/{makerspace_id}/billing/invoices/{invoice_id}/checkouts", tag = "billing",
    params(("makerspace_id" = String, Path), ("invoice_id" = String, Path)),
    request_body = CheckoutRequest,
    responses((status = 201, description = "A checkout for what the invoice still owes; it is marked paid by the gateway's webhook", body = CheckoutResponse),
              (status = 403, body = crate::web::ErrorBody),
              (status = 404, description = "No such invoice (or another member's)", body = crate::web::ErrorBody),
              (status = 409, description = "invoice_not_finalized, invoice_void, nothing_due, gateway_not_configured", body = crate::web::ErrorBody),
              (status = 422, body = crate::web::ErrorBody),
              (status = 502, description = "gateway_unreachable, gateway_refused", body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn checkout(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<(String, String)>,
    body: web::Json<Map<String, Value>>,
) -> Result<HttpResponse, ApiError> {
    let (space, invoice) = path.into_inner();
    let request: CheckoutRequest = from_object(&body)?;
    let (record, key_id) = billing_gateways::checkout(&state, &caller, &space, &invoice, request).await?;
    Ok(HttpResponse::Created().json(CheckoutResponse::new(record, key_id)))
}

#[utoipa::path(post, path = "/api/v1/makerspaces/{makerspace_id}/billing/checkouts/{checkout_id}/razorpay-payment", tag = "billing",
    params(("makerspace_id" = String, Path), ("checkout_id" = String, Path)),
    request_body = RazorpayPaymentRequest,
    responses((status = 200, description = "The payment signature is Razorpay's: the payment is genuine (the webhook records it)", body = CheckoutResponse),
              (status = 400, description = "invalid_signature", body = crate::web::ErrorBody),
              (status = 403, body = crate::web::ErrorBody), (status = 404, body = crate::web::ErrorBody),
              (status = 409, description = "not_a_razorpay_checkout", body = crate::web::ErrorBody),
              (status = 422, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn razorpay_payment(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<(String, String)>,
    body: web::Json<Map<String, Value>>,
) -> Result<HttpResponse, ApiError> {
    let (space, checkout_id) = path.into_inner();
    let request: RazorpayPaymentRequest = from_object(&body)?;
    let record = billing_gateways::check_razorpay_payment(&state, &caller, &space, &checkout_id, request).await?;
    Ok(HttpResponse::Ok().json(CheckoutResponse::new(record, None)))
}

fn header<'r>(req: &'r HttpRequest, name: &str) -> Option<&'r str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

async fn webhook(
    req: HttpRequest,
    state: web::Data<AppState>,
    space: String,
    kind: GatewayKind,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = read_limited(payload, MAX_WEBHOOK_BYTES).await?;
    let signature = match kind {
        GatewayKind::Stripe => header(&req, "Stripe-Signature"),
        GatewayKind::Razorpay => header(&req, "X-Razorpay-Signature"),
    };
    let delivery = WebhookDelivery { body: &body, signature, event_id: header(&req, "X-Razorpay-Event-Id") };
    let outcome = billing_gateways::webhook(&state, &space, kind, delivery).await?;
    Ok(HttpResponse::Ok().json(json!(WebhookAnswer { received: true, outcome: outcome.as_str().to_string() })))
}

#[utoipa::path(post, path = "/api/v1/makerspaces/{makerspace_id}/billing/webhooks/stripe", tag = "billing",
    params(("makerspace_id" = String, Path),
           ("Stripe-Signature" = String, Header, description = "t=<unix seconds>,v1=<HMAC-SHA256 of `t.body` under the webhook's signing secret>")),
    request_body(content = Value, description = "A Stripe event, as Stripe sends it (read as raw bytes: the signature covers them)", content_type = "application/json"),
    responses((status = 200, description = "Verified and recorded once per event id; money is recorded once per Checkout Session", body = WebhookAnswer),
              (status = 400, description = "invalid_signature, signature_expired (older than the tolerance), malformed_event", body = crate::web::ErrorBody),
              (status = 404, description = "No such makerspace, or no Stripe account in it", body = crate::web::ErrorBody),
              (status = 413, body = crate::web::ErrorBody)))]
pub async fn stripe_webhook(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    webhook(req, state, path.into_inner(), GatewayKind::Stripe, payload).await
}

#[utoipa::path(post, path = "/api/v1/makerspaces/{makerspace_id}/billing/webhooks/razorpay", tag = "billing",
    params(("makerspace_id" = String, Path),
           ("X-Razorpay-Signature" = String, Header, description = "Hex HMAC-SHA256 of the body under the webhook's secret"),
           ("X-Razorpay-Event-Id" = Option<String>, Header, description = "The event's id, the same on every retry")),
    request_body(content = Value, description = "A Razorpay event, as Razorpay sends it (read as raw bytes: the signature covers them)", content_type = "application/json"),
    responses((status = 200, description = "Verified and recorded once per event id; money is recorded once per Razorpay payment", body = WebhookAnswer),
              (status = 400, description = "invalid_signature, signature_expired (created_at older than the tolerance), malformed_event", body = crate::web::ErrorBody),
              (status = 404, description = "No such makerspace, or no Razorpay account in it", body = crate::web::ErrorBody),
              (status = 413, body = crate::web::ErrorBody)))]
pub async fn razorpay_webhook(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    webhook(req, state, path.into_inner(), GatewayKind::Razorpay, payload).await
}
