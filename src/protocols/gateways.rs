//! The payment gateways' APIs, the one call makrcave makes: open a checkout for an amount
//! due (a Stripe Checkout Session, a Razorpay order). Payments come back by webhook
//! (`crate::domain::billing::gateways` verifies and reads them). Nothing is called when a
//! space has no key for the gateway: the service refuses before this module is reached.
//!
//! Both calls carry an idempotency key (Stripe's `Idempotency-Key` header; Razorpay's
//! `receipt` is the checkout's id), so that a retried request opens one checkout.

use std::time::Duration;

use serde_json::{json, Value};

use crate::domain::billing::gateways::{stripe_amount, GatewayKind};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const CALL_TIMEOUT: Duration = Duration::from_secs(20);

/// A space's account with a gateway, secrets opened.
#[derive(Clone)]
pub struct GatewayAccount {
    pub kind: GatewayKind,
    /// Razorpay's key id (`rzp_live_…`), public: the browser's checkout needs it.
    pub key_id: Option<String>,
    /// Stripe's secret key; Razorpay's key secret.
    pub secret_key: String,
    /// The API's base URL, without a trailing slash.
    pub api_url: String,
}

impl std::fmt::Debug for GatewayAccount {
    // Debug output reaches logs: never the secret key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayAccount").field("kind", &self.kind).field("api_url", &self.api_url).finish()
    }
}

/// What a checkout asks the member to pay.
#[derive(Debug, Clone)]
pub struct CheckoutOrder {
    /// makrcave's id of the checkout: the gateway's idempotency key.
    pub checkout_id: String,
    pub makerspace_id: String,
    pub invoice_id: String,
    /// What the payment page shows (`Invoice INV-2026-00001`).
    pub description: String,
    pub amount_minor: i64,
    /// ISO 4217, capital letters.
    pub currency: String,
    /// Where Stripe sends the member back after paying, or giving up.
    pub success_url: String,
    pub cancel_url: String,
}

/// A checkout the gateway opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedCheckout {
    /// `cs_…` or `order_…`: what the webhook names.
    pub external_id: String,
    /// Stripe's hosted payment page; Razorpay's checkout is opened in the browser with the
    /// order id and the key id instead.
    pub url: Option<String>,
}

/// Why a checkout could not be opened, in a sentence an admin can act on (never a key).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    #[error("{0}")]
    Unreachable(String),
    #[error("{gateway} refused the checkout ({status}): {message}")]
    Refused { gateway: &'static str, status: u16, message: String },
}

fn client() -> Result<reqwest::Client, GatewayError> {
    // reqwest is built with rustls and no crypto provider of its own: it takes the process
    // default. Installing fails harmlessly when one is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(CALL_TIMEOUT)
        .build()
        .map_err(|e| GatewayError::Unreachable(format!("cannot build an HTTP client: {e}")))
}

/// Opens a checkout with the account's gateway.
pub async fn open_checkout(account: &GatewayAccount, order: &CheckoutOrder) -> Result<OpenedCheckout, GatewayError> {
    let gateway = account.kind.as_str();
    let request = match account.kind {
        GatewayKind::Stripe => stripe_request(account, order)?,
        GatewayKind::Razorpay => razorpay_request(account, order)?,
    };
    let answer = match request.send().await {
        Ok(answer) => answer,
        Err(e) if e.is_timeout() => {
            return Err(GatewayError::Unreachable(format!(
                "{gateway} did not answer within {} s",
                CALL_TIMEOUT.as_secs()
            )))
        }
        Err(_) => return Err(GatewayError::Unreachable(format!("{gateway} cannot be reached at its API URL"))),
    };
    let status = answer.status().as_u16();
    let body: Value = answer.json().await.unwrap_or(Value::Null);
    if !(200..300).contains(&status) {
        return Err(GatewayError::Refused { gateway, status, message: error_message(&body) });
    }
    let external_id = body
        .get("id")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
        .ok_or_else(|| GatewayError::Refused { gateway, status, message: "the answer has no checkout id".into() })?;
    Ok(OpenedCheckout {
        external_id: external_id.to_string(),
        url: body.get("url").and_then(Value::as_str).map(str::to_string),
    })
}

/// Both gateways answer errors as `{"error": {"message"|"description": …}}`.
fn error_message(body: &Value) -> String {
    let error = body.get("error");
    let message = error.and_then(|e| e.get("message").or_else(|| e.get("description"))).and_then(Value::as_str);
    message.unwrap_or("no reason given").chars().take(300).collect()
}

/// `POST /v1/checkout/sessions`, form-encoded as Stripe's API wants: one line for the
/// amount due, the invoice named in `client_reference_id` and the metadata.
fn stripe_request(account: &GatewayAccount, order: &CheckoutOrder) -> Result<reqwest::RequestBuilder, GatewayError> {
    let amount = stripe_amount(order.amount_minor, &order.currency).to_string();
    let currency = order.currency.to_ascii_lowercase();
    let form = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("mode", "payment")
        .append_pair("client_reference_id", &order.invoice_id)
        .append_pair("success_url", &order.success_url)
        .append_pair("cancel_url", &order.cancel_url)
        .append_pair("line_items[0][quantity]", "1")
        .append_pair("line_items[0][price_data][currency]", &currency)
        .append_pair("line_items[0][price_data][unit_amount]", &amount)
        .append_pair("line_items[0][price_data][product_data][name]", &order.description)
        .append_pair("metadata[makrcave_checkout_id]", &order.checkout_id)
        .append_pair("metadata[makerspace_id]", &order.makerspace_id)
        .append_pair("metadata[invoice_id]", &order.invoice_id)
        .finish();
    Ok(client()?
        .post(format!("{}/v1/checkout/sessions", account.api_url))
        .bearer_auth(&account.secret_key)
        .header("Idempotency-Key", &order.checkout_id)
        .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(form))
}

/// `POST /v1/orders` with the key id and secret (HTTP Basic); `receipt` (at most 40
/// characters) is the checkout's id, the notes name the invoice.
fn razorpay_request(account: &GatewayAccount, order: &CheckoutOrder) -> Result<reqwest::RequestBuilder, GatewayError> {
    let key_id = account.key_id.as_deref().unwrap_or_default();
    let body = json!({
        "amount": order.amount_minor,
        "currency": order.currency,
        "receipt": order.checkout_id.chars().take(40).collect::<String>(),
        "notes": {
            "makrcave_checkout_id": order.checkout_id,
            "makerspace_id": order.makerspace_id,
            "invoice_id": order.invoice_id,
            "description": order.description,
        },
    });
    Ok(client()?
        .post(format!("{}/v1/orders", account.api_url))
        .basic_auth(key_id, Some(&account.secret_key))
        .json(&body))
}
