//! Payment gateways (issue 14): a space's Stripe and Razorpay accounts, checkouts for what a
//! finalized invoice still owes, and the webhooks that record the money.
//!
//! All payment methods meet in one place, the invoice's payments: cash, bank transfer and
//! the wallet are recorded by an admin (`super::billing_settlement::pay`); a gateway's
//! payment is recorded only from its verified webhook, once per event and once per payment,
//! never from the browser's word. Without a key for a gateway, makrcave calls nothing.

use chrono::{SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::access::{Decision, Principal};
use crate::domain::billing::gateways::{
    razorpay_age_check, razorpay_event, razorpay_payment_signature_ok, stripe_event, verify_razorpay, verify_stripe,
    GatewayKind, SignatureError, WebhookEvent,
};
use crate::domain::ids::new_id;
use crate::domain::secrets::{SecretValue, MASK};
use crate::domain::validate::Invalid;
use crate::protocols::gateways::{open_checkout, CheckoutOrder, GatewayAccount, GatewayError};
use crate::store::billing_gateways::{CheckoutRecord, EventOutcome, GatewayEventRecord, GatewayRow, ReceivedPayment};

use super::access::{space_for, AccessError};
use super::billing::BillingError;
use super::billing_invoices;
use super::Services;

/// Stripe's API, unless a space names another (a local mock in tests).
pub const STRIPE_API: &str = "https://api.stripe.com";
/// Razorpay's API.
pub const RAZORPAY_API: &str = "https://api.razorpay.com";

/// The documented form of an API URL: https, or http to this host only (a mock, a tunnel),
/// so that a key never crosses a network in clear.
pub const API_URL_PATTERN: &str = r"^(https://[!-~]+|http://(localhost|127\.0\.0\.1|\[::1\])(:[0-9]{1,5})?(/[!-~]*)?)$";

/// `PUT .../billing/gateways/stripe`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StripeAccountRequest {
    /// The secret key (`sk_live_…`) or a restricted key allowed to write Checkout Sessions.
    /// `********` keeps the stored one.
    #[schema(pattern = r"^[!-~]{1,255}$")]
    pub secret_key: String,
    /// The webhook endpoint's signing secret (`whsec_…`). `********` keeps the stored one.
    #[schema(pattern = r"^[!-~]{1,255}$")]
    pub webhook_secret: String,
    /// Default `https://api.stripe.com`.
    #[schema(
        max_length = 300,
        pattern = r"^(https://[!-~]+|http://(localhost|127\.0\.0\.1|\[::1\])(:[0-9]{1,5})?(/[!-~]*)?)$"
    )]
    pub api_url: Option<String>,
    /// How old a signed delivery may be, in seconds. Default 300 (Stripe's libraries' own).
    #[schema(minimum = 1, maximum = 604_800)]
    #[serde(default, deserialize_with = "crate::domain::validate::whole_number")]
    pub webhook_tolerance_s: Option<i64>,
}

/// `PUT .../billing/gateways/razorpay`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RazorpayAccountRequest {
    /// The key id (`rzp_live_…`): public, the browser's checkout is opened with it.
    #[schema(pattern = r"^[!-~]{1,255}$")]
    pub key_id: String,
    /// The key secret. `********` keeps the stored one.
    #[schema(pattern = r"^[!-~]{1,255}$")]
    pub key_secret: String,
    /// The secret set on the webhook in Razorpay's dashboard. `********` keeps the stored one.
    #[schema(pattern = r"^[!-~]{1,255}$")]
    pub webhook_secret: String,
    /// Default `https://api.razorpay.com`.
    #[schema(
        max_length = 300,
        pattern = r"^(https://[!-~]+|http://(localhost|127\.0\.0\.1|\[::1\])(:[0-9]{1,5})?(/[!-~]*)?)$"
    )]
    pub api_url: Option<String>,
    /// How old an event may be (by its `created_at`), in seconds. Default 93 600: Razorpay
    /// retries a failed delivery for 24 hours with its original body.
    #[schema(minimum = 1, maximum = 604_800)]
    #[serde(default, deserialize_with = "crate::domain::validate::whole_number")]
    pub webhook_tolerance_s: Option<i64>,
}

/// A space's account with a gateway as stored: secrets sealed with the data key.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredAccount {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key_id: Option<String>,
    secret_key: SecretValue,
    webhook_secret: SecretValue,
    api_url: String,
    webhook_tolerance_s: i64,
}

/// The associated data of each sealed field: a sealed webhook secret cannot pass for a key.
const SECRET_KEY_FIELD: &str = "gateway.secret_key";
const WEBHOOK_SECRET_FIELD: &str = "gateway.webhook_secret";

/// A space's account with a gateway, as the API shows it: never a secret.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GatewayView {
    pub gateway: GatewayKind,
    /// Razorpay's key id (public).
    pub key_id: Option<String>,
    /// Always `********`.
    pub secret_key: String,
    /// Always `********`.
    pub webhook_secret: String,
    pub api_url: String,
    pub webhook_tolerance_s: i64,
    /// The URL to give the gateway's dashboard for this space's webhook.
    pub webhook_url: String,
    pub updated_by: String,
    pub updated_at: chrono::DateTime<Utc>,
}

/// `POST .../billing/invoices/{invoice_id}/checkouts`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckoutRequest {
    pub gateway: GatewayKind,
}

/// `POST .../billing/checkouts/{checkout_id}/razorpay-payment`: what Razorpay's checkout
/// handed the browser after a payment.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RazorpayPaymentRequest {
    #[schema(pattern = r"^[!-~]{1,255}$")]
    pub razorpay_payment_id: String,
    /// The order's id, if the browser sends it: it must be the checkout's.
    #[schema(pattern = r"^[!-~]{1,255}$")]
    pub razorpay_order_id: Option<String>,
    #[schema(pattern = r"^[!-~]{1,255}$")]
    pub razorpay_signature: String,
}

fn check_secret(field: &str, value: &str) -> Result<(), Invalid> {
    if value.is_empty() || value.len() > 255 || !value.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err(Invalid::new(format!("{field} is 1 to 255 printable ASCII characters without spaces")));
    }
    Ok(())
}

/// The check [`API_URL_PATTERN`] documents.
fn check_api_url(url: &str) -> Result<(), Invalid> {
    let printable = |s: &str| s.bytes().all(|b| (0x21..=0x7e).contains(&b));
    let loopback = |rest: &str| {
        ["localhost", "127.0.0.1", "[::1]"].iter().any(|host| {
            rest.strip_prefix(host).is_some_and(|tail| {
                let (port, path) = tail.split_at(tail.find('/').unwrap_or(tail.len()));
                let port_ok = port.is_empty()
                    || port
                        .strip_prefix(':')
                        .is_some_and(|p| (1..=5).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()));
                port_ok && printable(path)
            })
        })
    };
    let ok = url.len() <= 300
        && match (url.strip_prefix("https://"), url.strip_prefix("http://")) {
            (Some(rest), _) => !rest.is_empty() && printable(rest),
            (_, Some(rest)) => loopback(rest),
            _ => false,
        };
    if ok {
        Ok(())
    } else {
        Err(Invalid::new("api_url is an https URL (or http to localhost), at most 300 characters"))
    }
}

fn check_tolerance(value: Option<i64>, kind: GatewayKind) -> Result<i64, Invalid> {
    match value {
        None => Ok(kind.default_tolerance_s()),
        Some(s) if (1..=604_800).contains(&s) => Ok(s),
        Some(_) => Err(Invalid::new("webhook_tolerance_s is 1 to 604800 seconds")),
    }
}

/// A secret as sent: the mask keeps the stored one (a client echoes what GET showed).
fn sealed_secret(
    svc: &Services,
    field: &str,
    name: &str,
    sent: &str,
    stored: Option<&SecretValue>,
) -> Result<SecretValue, Invalid> {
    if sent == MASK {
        return stored.cloned().ok_or_else(|| Invalid::new(format!("{name} is required: none is stored yet")));
    }
    check_secret(name, sent)?;
    Ok(svc.data_key.seal(field, sent))
}

fn view(svc: &Services, space_id: &str, kind: GatewayKind, row: &GatewayRow) -> Result<GatewayView, BillingError> {
    let stored = stored_account(row)?;
    Ok(GatewayView {
        gateway: kind,
        key_id: stored.key_id,
        secret_key: MASK.into(),
        webhook_secret: MASK.into(),
        api_url: stored.api_url,
        webhook_tolerance_s: stored.webhook_tolerance_s,
        webhook_url: format!(
            "{}/api/v1/makerspaces/{space_id}/billing/webhooks/{}",
            svc.settings.public_url.trim_end_matches('/'),
            kind.as_str()
        ),
        updated_by: row.updated_by.clone(),
        updated_at: row.updated_at,
    })
}

fn stored_account(row: &GatewayRow) -> Result<StoredAccount, BillingError> {
    serde_json::from_str(&row.settings)
        .map_err(|e| BillingError::Store(crate::store::StoreError::Corrupt(format!("billing_gateways.settings: {e}"))))
}

/// A space's gateway accounts, for its admins.
pub async fn list(svc: &Services, caller: &Principal, space_id: &str) -> Result<Vec<GatewayView>, BillingError> {
    space_for(svc, caller.can_manage_space(space_id), space_id).await?;
    let rows = svc.store.gateways(space_id).await?;
    rows.iter().filter_map(|row| GatewayKind::parse(&row.gateway).map(|kind| view(svc, space_id, kind, row))).collect()
}

/// What an admin sends for one gateway, whichever it is.
pub struct AccountInput {
    pub key_id: Option<String>,
    pub secret_key: String,
    pub webhook_secret: String,
    pub api_url: Option<String>,
    pub webhook_tolerance_s: Option<i64>,
}

impl From<StripeAccountRequest> for AccountInput {
    fn from(r: StripeAccountRequest) -> AccountInput {
        AccountInput {
            key_id: None,
            secret_key: r.secret_key,
            webhook_secret: r.webhook_secret,
            api_url: r.api_url,
            webhook_tolerance_s: r.webhook_tolerance_s,
        }
    }
}

impl From<RazorpayAccountRequest> for AccountInput {
    fn from(r: RazorpayAccountRequest) -> AccountInput {
        AccountInput {
            key_id: Some(r.key_id),
            secret_key: r.key_secret,
            webhook_secret: r.webhook_secret,
            api_url: r.api_url,
            webhook_tolerance_s: r.webhook_tolerance_s,
        }
    }
}

/// Writes a space's account with a gateway (admins): secrets sealed at rest.
pub async fn put(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
    kind: GatewayKind,
    input: AccountInput,
) -> Result<GatewayView, BillingError> {
    space_for(svc, caller.can_manage_space(space_id), space_id).await?;
    let before = match svc.store.gateway(space_id, kind.as_str()).await? {
        Some(row) => Some(stored_account(&row)?),
        None => None,
    };
    if let Some(key_id) = &input.key_id {
        check_secret("key_id", key_id)?;
    }
    let api_url = match input.api_url {
        Some(url) => {
            check_api_url(&url)?;
            url.trim_end_matches('/').to_string()
        }
        None => match kind {
            GatewayKind::Stripe => STRIPE_API.to_string(),
            GatewayKind::Razorpay => RAZORPAY_API.to_string(),
        },
    };
    let stored = StoredAccount {
        key_id: input.key_id,
        secret_key: sealed_secret(
            svc,
            SECRET_KEY_FIELD,
            if kind == GatewayKind::Razorpay { "key_secret" } else { "secret_key" },
            &input.secret_key,
            before.as_ref().map(|b| &b.secret_key),
        )?,
        webhook_secret: sealed_secret(
            svc,
            WEBHOOK_SECRET_FIELD,
            "webhook_secret",
            &input.webhook_secret,
            before.as_ref().map(|b| &b.webhook_secret),
        )?,
        api_url,
        webhook_tolerance_s: check_tolerance(input.webhook_tolerance_s, kind)?,
    };
    let row = GatewayRow {
        gateway: kind.as_str().to_string(),
        settings: crate::store::to_json_text(&stored),
        updated_by: caller.user_id.clone(),
        updated_at: Utc::now().trunc_subsecs(6),
    };
    svc.store.put_gateway(space_id, &row).await?;
    view(svc, space_id, kind, &row)
}

/// Turns a gateway off for a space (admins): no checkout is opened and no webhook accepted.
/// Turning off what is off is no error (the state asked for holds).
pub async fn remove(svc: &Services, caller: &Principal, space_id: &str, kind: GatewayKind) -> Result<(), BillingError> {
    space_for(svc, caller.can_manage_space(space_id), space_id).await?;
    svc.store.delete_gateway(space_id, kind.as_str()).await?;
    Ok(())
}

/// A space's account, secrets opened; `None` when the space has none with this gateway.
async fn account(
    svc: &Services,
    space_id: &str,
    kind: GatewayKind,
) -> Result<Option<(GatewayAccount, String, i64)>, BillingError> {
    let Some(row) = svc.store.gateway(space_id, kind.as_str()).await? else { return Ok(None) };
    let stored = stored_account(&row)?;
    let open = |field, value: &SecretValue| {
        svc.data_key
            .open(field, value)
            .map_err(|e| BillingError::Store(crate::store::StoreError::Corrupt(e.to_string())))
    };
    let account = GatewayAccount {
        kind,
        key_id: stored.key_id.clone(),
        secret_key: open(SECRET_KEY_FIELD, &stored.secret_key)?,
        api_url: stored.api_url.clone(),
    };
    let webhook_secret = open(WEBHOOK_SECRET_FIELD, &stored.webhook_secret)?;
    Ok(Some((account, webhook_secret, stored.webhook_tolerance_s)))
}

/// The invoice, when the caller may pay it: its member, or the space's admins. The platform's
/// `admin` reads every invoice but pays none (403); others do not see it (404).
async fn payer_of(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
    invoice_id: &str,
) -> Result<billing_invoices::InvoiceDetail, BillingError> {
    let detail = billing_invoices::get(svc, caller, space_id, invoice_id).await?;
    let allowed = caller.can_manage_space(space_id) == Decision::Allow
        || svc
            .store
            .find_member_by_user(space_id, &caller.user_id)
            .await?
            .is_some_and(|m| m.id == detail.invoice.member_id);
    if !allowed {
        return Err(BillingError::Access(AccessError::Forbidden(
            "only the member or the space's admins pay an invoice".into(),
        )));
    }
    Ok(detail)
}

/// Opens a checkout for what a finalized invoice still owes (its admins, or its member).
pub async fn checkout(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
    invoice_id: &str,
    request: CheckoutRequest,
) -> Result<(CheckoutRecord, Option<String>), BillingError> {
    let detail = payer_of(svc, caller, space_id, invoice_id).await?;
    let invoice = &detail.invoice;
    let conflict = |error_type, detail: String| BillingError::Refused { error_type, detail };
    match invoice.status.as_str() {
        "finalized" => {}
        "void" => return Err(conflict("invoice_void", "the invoice is void".into())),
        _ => return Err(conflict("invoice_not_finalized", "the invoice is a draft: finalize it first".into())),
    }
    let due = invoice.due_minor() - invoice.paid_minor;
    if due <= 0 {
        return Err(conflict("nothing_due", "the invoice is paid: nothing is due".into()));
    }
    let kind = request.gateway;
    let Some((account, _, _)) = account(svc, space_id, kind).await? else {
        return Err(conflict(
            "gateway_not_configured",
            format!(
                "this makerspace has no {} account: an admin sets it with PUT .../billing/gateways/{}",
                kind.as_str(),
                kind.as_str()
            ),
        ));
    };
    let checkout_id = new_id();
    let number = invoice.number.clone().unwrap_or_default();
    let back = |outcome: &str| {
        format!("{}/?billing={outcome}&invoice={}", svc.settings.public_url.trim_end_matches('/'), invoice.id)
    };
    let order = CheckoutOrder {
        checkout_id: checkout_id.clone(),
        makerspace_id: space_id.to_string(),
        invoice_id: invoice.id.clone(),
        description: format!("Invoice {number}"),
        amount_minor: due,
        currency: invoice.currency.clone(),
        success_url: back("paid"),
        cancel_url: back("cancelled"),
    };
    let opened = open_checkout(&account, &order).await.map_err(|e| match e {
        GatewayError::Unreachable(detail) => BillingError::Gateway { error_type: "gateway_unreachable", detail },
        refused @ GatewayError::Refused { .. } => {
            BillingError::Gateway { error_type: "gateway_refused", detail: refused.to_string() }
        }
    })?;
    let record = CheckoutRecord {
        id: checkout_id,
        makerspace_id: space_id.to_string(),
        invoice_id: invoice.id.clone(),
        gateway: kind.as_str().to_string(),
        external_id: opened.external_id,
        amount_minor: due,
        currency: invoice.currency.clone(),
        url: opened.url,
        created_by: caller.user_id.clone(),
        created_at: Utc::now().trunc_subsecs(6),
    };
    svc.store.insert_checkout(&record).await?;
    Ok((record, account.key_id))
}

/// What a webhook delivery brought.
#[derive(Debug, Clone)]
pub struct WebhookDelivery<'a> {
    pub body: &'a [u8],
    /// `Stripe-Signature` or `X-Razorpay-Signature`.
    pub signature: Option<&'a str>,
    /// `X-Razorpay-Event-Id`.
    pub event_id: Option<&'a str>,
}

fn refused_delivery(error: SignatureError) -> BillingError {
    let error_type = match error {
        SignatureError::Expired { .. } => "signature_expired",
        _ => "invalid_signature",
    };
    BillingError::Webhook { error_type, detail: error.to_string() }
}

/// A webhook delivery (no caller: the signature under the space's webhook secret is the
/// proof). Answers what it changed; a refused delivery changes nothing.
pub async fn webhook(
    svc: &Services,
    space_id: &str,
    kind: GatewayKind,
    delivery: WebhookDelivery<'_>,
) -> Result<EventOutcome, BillingError> {
    let Some((_, secret, tolerance_s)) = account(svc, space_id, kind).await? else {
        return Err(BillingError::NotFound("gateway"));
    };
    let now_s = Utc::now().timestamp();
    let malformed = |detail: String| BillingError::Webhook { error_type: "malformed_event", detail };
    let event: WebhookEvent = match kind {
        GatewayKind::Stripe => {
            verify_stripe(delivery.signature, delivery.body, &secret, now_s, tolerance_s).map_err(refused_delivery)?;
            stripe_event(delivery.body).map_err(malformed)?
        }
        GatewayKind::Razorpay => {
            verify_razorpay(delivery.signature, delivery.body, &secret).map_err(refused_delivery)?;
            let event = razorpay_event(delivery.event_id, delivery.body).map_err(malformed)?;
            razorpay_age_check(&event, now_s, tolerance_s).map_err(refused_delivery)?;
            event
        }
    };
    let checkout = match &event.payment {
        Some(p) => svc.store.checkout_by_external(space_id, kind.as_str(), &p.checkout_ref).await?,
        None => None,
    };
    let received = match (&event.payment, &checkout) {
        (Some(p), Some(c)) => Some(ReceivedPayment {
            checkout: c,
            payment_ref: &p.payment_ref,
            reference: &p.reference,
            amount_minor: p.amount_minor,
            currency: &p.currency,
        }),
        // Money for a checkout makrcave did not open (another app on the same account).
        _ => None,
    };
    let record = GatewayEventRecord {
        gateway: kind.as_str(),
        event_id: &event.id,
        event_type: &event.event_type,
        at: Utc::now().trunc_subsecs(6),
    };
    let outcome = svc.store.record_gateway_event(space_id, &record, received.as_ref()).await?;
    if let (EventOutcome::Paid { paid_minor, credited_minor }, Some(c)) = (outcome, &checkout) {
        tracing::info!(gateway = kind.as_str(), invoice_id = %c.invoice_id, paid_minor, credited_minor, "gateway payment recorded");
    }
    Ok(outcome)
}

/// Checks Razorpay's payment signature that the browser received (its admins, or its
/// member): the answer tells the page that the payment is genuine; the invoice is marked
/// paid by the webhook, not by this.
pub async fn check_razorpay_payment(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
    checkout_id: &str,
    request: RazorpayPaymentRequest,
) -> Result<CheckoutRecord, BillingError> {
    space_for(svc, caller.can_read_space(space_id), space_id).await?;
    let checkout = svc.store.checkout(space_id, checkout_id).await?.ok_or(BillingError::NotFound("checkout"))?;
    // Who may pay the invoice may show its payment: another member's is not found.
    payer_of(svc, caller, space_id, &checkout.invoice_id).await?;
    if checkout.gateway != GatewayKind::Razorpay.as_str() {
        return Err(BillingError::Refused {
            error_type: "not_a_razorpay_checkout",
            detail: "this checkout is not Razorpay's".into(),
        });
    }
    let Some((account, _, _)) = account(svc, space_id, GatewayKind::Razorpay).await? else {
        return Err(BillingError::NotFound("gateway"));
    };
    let order_matches = request.razorpay_order_id.as_deref().is_none_or(|o| o == checkout.external_id);
    let genuine = order_matches
        && razorpay_payment_signature_ok(
            &checkout.external_id,
            &request.razorpay_payment_id,
            &request.razorpay_signature,
            &account.secret_key,
        );
    if !genuine {
        return Err(refused_delivery(SignatureError::Mismatch));
    }
    Ok(checkout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_urls_are_https_or_http_to_this_host() {
        for good in [
            "https://api.stripe.com",
            "https://x",
            "http://127.0.0.1:8080",
            "http://localhost",
            "http://localhost/v",
            "http://[::1]:9/api",
        ] {
            assert!(check_api_url(good).is_ok(), "{good}");
        }
        for bad in [
            "http://api.stripe.com",
            "ftp://x",
            "https://",
            "https://a b",
            "http://127.0.0.1:",
            "http://localhost:123456",
            "http://localhost.evil.com",
        ] {
            assert!(check_api_url(bad).is_err(), "{bad}");
        }
    }
}
