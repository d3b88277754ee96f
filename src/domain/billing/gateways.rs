//! Payment gateways' webhooks, the pure part: verifying a delivery's signature (Stripe's
//! `Stripe-Signature`, Razorpay's `X-Razorpay-Signature`, Razorpay's payment signature) and
//! reading the event as the one thing makrcave acts on: money received for a checkout it
//! opened. The HTTP calls to the gateways are `crate::protocols::gateways`; the workflow is
//! `crate::services::billing_gateways`.
//!
//! Signatures are HMAC-SHA256 compared in constant time (`Mac::verify_slice`). A Stripe
//! signature covers `{t}.{body}`, so an old delivery replayed is refused by its timestamp; a
//! Razorpay signature covers the body only, whose `created_at` is checked instead. Replays
//! within the tolerance change nothing either: events are acted on once per id, and money
//! once per payment.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;
use utoipa::ToSchema;

type HmacSha256 = Hmac<Sha256>;

/// A payment gateway makrcave opens checkouts with. Cash, bank transfer and the wallet are
/// recorded by an admin (`crate::services::billing_settlement::PaymentMethod`); a gateway's
/// payment is recorded only from its verified webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GatewayKind {
    /// Stripe Checkout Sessions; webhook `checkout.session.completed`.
    Stripe,
    /// Razorpay orders (cards, UPI, netbanking); webhooks `payment.captured` and `order.paid`.
    Razorpay,
}

impl GatewayKind {
    pub const ALL: [GatewayKind; 2] = [GatewayKind::Stripe, GatewayKind::Razorpay];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stripe => "stripe",
            Self::Razorpay => "razorpay",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.as_str() == text)
    }

    /// How old a delivery may be, by default: Stripe's own libraries allow 300 s between
    /// its signed timestamp and now. Razorpay signs no delivery time and retries a failed
    /// delivery with the original body for up to 24 hours, so its bound is the event's
    /// `created_at` plus those 24 hours and a margin.
    pub fn default_tolerance_s(self) -> i64 {
        match self {
            Self::Stripe => 300,
            Self::Razorpay => 26 * 3600,
        }
    }
}

/// Why a webhook delivery is refused (the answer is 400: the gateway retries, an attacker
/// learns nothing).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the {0} header is missing")]
    Missing(&'static str),
    #[error("the {0} header is malformed")]
    Malformed(&'static str),
    #[error("the signature does not match the body")]
    Mismatch,
    #[error("the event is {age_s} s old, more than the tolerance of {tolerance_s} s")]
    Expired { age_s: i64, tolerance_s: i64 },
}

fn mac(secret: &str) -> HmacSha256 {
    HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC accepts keys of any length")
}

fn hex_bytes(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 || !text.is_ascii() {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok()).collect()
}

/// Lowercase hex of an HMAC-SHA256.
pub fn hmac_hex(secret: &str, parts: &[&[u8]]) -> String {
    let mut m = mac(secret);
    parts.iter().for_each(|p| m.update(p));
    m.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

fn age_check(signed_at: i64, now_s: i64, tolerance_s: i64) -> Result<(), SignatureError> {
    let age_s = now_s - signed_at;
    if age_s > tolerance_s {
        return Err(SignatureError::Expired { age_s, tolerance_s });
    }
    Ok(())
}

/// Verifies a Stripe delivery: `Stripe-Signature: t=<unix seconds>,v1=<hex>[,v1=…]`, where a
/// `v1` is HMAC-SHA256 of `{t}.{body}` under the endpoint's signing secret (`whsec_…`, used
/// as it is). Any matching `v1` will do (Stripe sends two while a secret is rolled). Then the
/// timestamp must be at most `tolerance_s` old. Answers the signed timestamp.
pub fn verify_stripe(
    header: Option<&str>,
    body: &[u8],
    secret: &str,
    now_s: i64,
    tolerance_s: i64,
) -> Result<i64, SignatureError> {
    const NAME: &str = "Stripe-Signature";
    let header = header.ok_or(SignatureError::Missing(NAME))?;
    let mut timestamp: Option<&str> = None;
    let mut signatures = Vec::new();
    for item in header.split(',') {
        match item.trim().split_once('=') {
            Some(("t", t)) => timestamp = Some(t),
            Some(("v1", sig)) => signatures.push(sig),
            _ => {}
        }
    }
    let t_text = timestamp.ok_or(SignatureError::Malformed(NAME))?;
    let t: i64 = t_text.parse().map_err(|_| SignatureError::Malformed(NAME))?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed(NAME));
    }
    let mut signed = mac(secret);
    signed.update(t_text.as_bytes());
    signed.update(b".");
    signed.update(body);
    let matches = signatures.iter().filter_map(|s| hex_bytes(s)).any(|sig| signed.clone().verify_slice(&sig).is_ok());
    if !matches {
        return Err(SignatureError::Mismatch);
    }
    age_check(t, now_s, tolerance_s)?;
    Ok(t)
}

/// Verifies a Razorpay delivery: `X-Razorpay-Signature` is the hex HMAC-SHA256 of the body
/// under the webhook's secret.
pub fn verify_razorpay(header: Option<&str>, body: &[u8], secret: &str) -> Result<(), SignatureError> {
    const NAME: &str = "X-Razorpay-Signature";
    let header = header.ok_or(SignatureError::Missing(NAME))?;
    let sig = hex_bytes(header.trim()).ok_or(SignatureError::Malformed(NAME))?;
    let mut signed = mac(secret);
    signed.update(body);
    signed.verify_slice(&sig).map_err(|_| SignatureError::Mismatch)
}

/// True when `signature` is Razorpay's payment signature of an order's payment: the hex
/// HMAC-SHA256 of `{order_id}|{payment_id}` under the account's key secret (what Razorpay's
/// checkout hands the browser after a payment).
pub fn razorpay_payment_signature_ok(order_id: &str, payment_id: &str, signature: &str, key_secret: &str) -> bool {
    let Some(sig) = hex_bytes(signature.trim()) else { return false };
    let mut signed = mac(key_secret);
    signed.update(order_id.as_bytes());
    signed.update(b"|");
    signed.update(payment_id.as_bytes());
    signed.verify_slice(&sig).is_ok()
}

/// A verified delivery, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEvent {
    /// The gateway's event id: redeliveries carry the same one.
    pub id: String,
    /// `checkout.session.completed`, `payment.captured`, …
    pub event_type: String,
    /// When the gateway made the event, in unix seconds.
    pub created_s: Option<i64>,
    /// Money received, when the event says so.
    pub payment: Option<GatewayPayment>,
}

/// Money a gateway received for a checkout makrcave opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayPayment {
    /// The checkout it pays: a Checkout Session id (`cs_…`) or a Razorpay order id (`order_…`).
    pub checkout_ref: String,
    /// The money received, once: Stripe's Checkout Session (one payment per session, whether
    /// it arrives as `completed` or later as `async_payment_succeeded`), Razorpay's payment id
    /// (`payment.captured` and `order.paid` both name it). The payment's idempotency key.
    pub payment_ref: String,
    /// What an accountant looks up at the gateway: the PaymentIntent (`pi_…`) or the payment.
    pub reference: String,
    /// In the currency's minor units as makrcave counts them (ISO 4217).
    pub amount_minor: i64,
    /// Capital letters.
    pub currency: String,
}

fn text<'a>(value: &'a Value, pointer: &str) -> Option<&'a str> {
    value.pointer(pointer).and_then(Value::as_str).filter(|s| !s.is_empty())
}

fn malformed(what: &str) -> String {
    format!("the event has no {what}")
}

/// Stripe counts a few currencies differently from ISO 4217: ISK has no minor unit in ISO but
/// is sent to Stripe in two decimals ("special cases" of Stripe's currency guide).
pub fn stripe_amount(amount_minor: i64, currency: &str) -> i64 {
    if currency.eq_ignore_ascii_case("ISK") {
        amount_minor * 100
    } else {
        amount_minor
    }
}

fn from_stripe_amount(amount: i64, currency: &str) -> i64 {
    if currency.eq_ignore_ascii_case("ISK") {
        amount / 100
    } else {
        amount
    }
}

/// Reads a verified Stripe event. A Checkout Session is paid by `checkout.session.completed`
/// with `payment_status` `paid`, or later by `checkout.session.async_payment_succeeded`
/// (bank debits); other events are read but carry no payment.
pub fn stripe_event(body: &[u8]) -> Result<WebhookEvent, String> {
    let event: Value = serde_json::from_slice(body).map_err(|e| format!("the event is not JSON: {e}"))?;
    let id = text(&event, "/id").ok_or_else(|| malformed("id"))?.to_string();
    let event_type = text(&event, "/type").ok_or_else(|| malformed("type"))?.to_string();
    let created_s = event.get("created").and_then(Value::as_i64);
    let session = event.pointer("/data/object").ok_or_else(|| malformed("data.object"))?;
    let paid = match event_type.as_str() {
        "checkout.session.completed" => text(session, "/payment_status") == Some("paid"),
        "checkout.session.async_payment_succeeded" => true,
        _ => false,
    };
    let payment = if paid {
        let session_id = text(session, "/id").ok_or_else(|| malformed("session id"))?;
        let currency = text(session, "/currency").ok_or_else(|| malformed("currency"))?.to_ascii_uppercase();
        let amount = session.get("amount_total").and_then(Value::as_i64).ok_or_else(|| malformed("amount_total"))?;
        Some(GatewayPayment {
            checkout_ref: session_id.to_string(),
            payment_ref: session_id.to_string(),
            reference: text(session, "/payment_intent").unwrap_or(session_id).to_string(),
            amount_minor: from_stripe_amount(amount, &currency),
            currency,
        })
    } else {
        None
    };
    Ok(WebhookEvent { id, event_type, created_s, payment })
}

/// Reads a verified Razorpay event. Its id is the `X-Razorpay-Event-Id` header (the same on
/// every retry); without one, the body's SHA-256 stands in (a redelivery is the same body).
/// `payment.captured` and `order.paid` carry a captured payment of an order.
pub fn razorpay_event(event_id: Option<&str>, body: &[u8]) -> Result<WebhookEvent, String> {
    let event: Value = serde_json::from_slice(body).map_err(|e| format!("the event is not JSON: {e}"))?;
    let event_type = text(&event, "/event").ok_or_else(|| malformed("event"))?.to_string();
    let id = match event_id.map(str::trim).filter(|s| !s.is_empty()) {
        Some(id) => id.to_string(),
        None => format!("sha256:{}", super::documents::sha256_hex(body)),
    };
    let created_s = event.get("created_at").and_then(Value::as_i64);
    let payment = match event_type.as_str() {
        "payment.captured" | "order.paid" => {
            let entity = event.pointer("/payload/payment/entity").ok_or_else(|| malformed("payment"))?;
            if text(entity, "/status") != Some("captured") {
                None
            } else {
                let payment_id = text(entity, "/id").ok_or_else(|| malformed("payment id"))?;
                let order_id = text(entity, "/order_id").ok_or_else(|| malformed("order_id"))?;
                Some(GatewayPayment {
                    checkout_ref: order_id.to_string(),
                    payment_ref: payment_id.to_string(),
                    reference: payment_id.to_string(),
                    amount_minor: entity.get("amount").and_then(Value::as_i64).ok_or_else(|| malformed("amount"))?,
                    currency: text(entity, "/currency").ok_or_else(|| malformed("currency"))?.to_ascii_uppercase(),
                })
            }
        }
        _ => None,
    };
    Ok(WebhookEvent { id, event_type, created_s, payment })
}

/// A Razorpay event older than the tolerance (by its `created_at`) is refused; one without
/// `created_at` is not a Razorpay event.
pub fn razorpay_age_check(event: &WebhookEvent, now_s: i64, tolerance_s: i64) -> Result<(), SignatureError> {
    let created = event.created_s.ok_or(SignatureError::Malformed("created_at"))?;
    age_check(created, now_s, tolerance_s)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_test_secret";

    fn stripe_header(t: i64, body: &str, secret: &str) -> String {
        format!("t={t},v1={}", hmac_hex(secret, &[t.to_string().as_bytes(), b".", body.as_bytes()]))
    }

    #[test]
    fn a_stripe_signature_of_the_body_within_the_tolerance_verifies() {
        let body = r#"{"id":"evt_1"}"#;
        let header = stripe_header(1_000, body, SECRET);
        assert_eq!(verify_stripe(Some(&header), body.as_bytes(), SECRET, 1_100, 300), Ok(1_000));
        // A second v1 (a secret being rolled) that matches is enough.
        let two = format!("t=1000,v1={},v0=zz,{}", "ab".repeat(32), header.split_once(',').unwrap().1);
        assert_eq!(verify_stripe(Some(&two), body.as_bytes(), SECRET, 1_100, 300), Ok(1_000));
    }

    #[test]
    fn stripe_refuses_a_tampered_body_a_wrong_secret_an_old_delivery_and_garbage() {
        let body = r#"{"id":"evt_1","amount":100}"#;
        let header = stripe_header(1_000, body, SECRET);
        let tampered = body.replace("100", "900");
        assert_eq!(
            verify_stripe(Some(&header), tampered.as_bytes(), SECRET, 1_000, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_stripe(Some(&header), body.as_bytes(), "whsec_other", 1_000, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_stripe(Some(&header), body.as_bytes(), SECRET, 1_301, 300),
            Err(SignatureError::Expired { age_s: 301, tolerance_s: 300 })
        );
        // The timestamp is signed: moving it breaks the signature.
        let moved = header.replace("t=1000", "t=1200");
        assert_eq!(verify_stripe(Some(&moved), body.as_bytes(), SECRET, 1_300, 300), Err(SignatureError::Mismatch));
        for bad in ["", "t=abc,v1=00", "v1=00", "t=1000", "t=1000,v1=xyz"] {
            assert!(verify_stripe(Some(bad), body.as_bytes(), SECRET, 1_000, 300).is_err(), "{bad:?}");
        }
        assert_eq!(
            verify_stripe(None, body.as_bytes(), SECRET, 1_000, 300),
            Err(SignatureError::Missing("Stripe-Signature"))
        );
    }

    #[test]
    fn razorpay_signatures_cover_the_body_and_the_order_and_payment() {
        let body = br#"{"event":"payment.captured"}"#;
        let sig = hmac_hex("rzp_secret", &[body]);
        assert_eq!(verify_razorpay(Some(&sig), body, "rzp_secret"), Ok(()));
        assert_eq!(verify_razorpay(Some(&sig), b"{}", "rzp_secret"), Err(SignatureError::Mismatch));
        assert_eq!(verify_razorpay(Some(&sig), body, "other"), Err(SignatureError::Mismatch));
        assert!(verify_razorpay(Some("not hex"), body, "rzp_secret").is_err());
        let pay = hmac_hex("key_secret", &[b"order_1|pay_1"]);
        assert!(razorpay_payment_signature_ok("order_1", "pay_1", &pay, "key_secret"));
        assert!(!razorpay_payment_signature_ok("order_1", "pay_2", &pay, "key_secret"));
        assert!(!razorpay_payment_signature_ok("order_1", "pay_1", &pay, "other"));
    }

    #[test]
    fn a_completed_paid_checkout_session_is_a_payment_and_other_events_are_not() {
        let paid = br#"{"id":"evt_1","type":"checkout.session.completed","created":5,"data":{"object":
            {"id":"cs_1","payment_status":"paid","amount_total":1250,"currency":"eur","payment_intent":"pi_1"}}}"#;
        let event = stripe_event(paid).unwrap();
        assert_eq!(
            event.payment,
            Some(GatewayPayment {
                checkout_ref: "cs_1".into(),
                payment_ref: "cs_1".into(),
                reference: "pi_1".into(),
                amount_minor: 1250,
                currency: "EUR".into()
            })
        );
        let unpaid = br#"{"id":"evt_2","type":"checkout.session.completed","data":{"object":
            {"id":"cs_1","payment_status":"unpaid","amount_total":1250,"currency":"eur"}}}"#;
        assert_eq!(stripe_event(unpaid).unwrap().payment, None);
        let other = br#"{"id":"evt_3","type":"customer.created","data":{"object":{"id":"cus_1"}}}"#;
        assert_eq!(stripe_event(other).unwrap().payment, None);
        assert!(stripe_event(b"[]").is_err());
        assert!(stripe_event(b"not json").is_err());
        let isk = br#"{"id":"evt_4","type":"checkout.session.async_payment_succeeded","data":{"object":
            {"id":"cs_2","amount_total":150000,"currency":"isk"}}}"#;
        assert_eq!(stripe_event(isk).unwrap().payment.unwrap().amount_minor, 1500);
        assert_eq!(stripe_amount(1500, "ISK"), 150_000);
        assert_eq!(stripe_amount(1500, "JPY"), 1500);
    }

    #[test]
    fn a_captured_razorpay_payment_names_its_order_and_the_event_id_falls_back_to_the_body() {
        let body = br#"{"entity":"event","event":"payment.captured","created_at":100,"payload":{"payment":{"entity":
            {"id":"pay_1","order_id":"order_1","amount":50000,"currency":"INR","status":"captured"}}}}"#;
        let event = razorpay_event(Some("evt_rzp_1"), body).unwrap();
        assert_eq!(event.id, "evt_rzp_1");
        let payment = event.payment.clone().unwrap();
        assert_eq!((payment.checkout_ref.as_str(), payment.payment_ref.as_str()), ("order_1", "pay_1"));
        assert_eq!((payment.amount_minor, payment.currency.as_str()), (50_000, "INR"));
        assert_eq!(razorpay_age_check(&event, 200, 100), Ok(()));
        assert!(razorpay_age_check(&event, 201, 100).is_err());
        let anonymous = razorpay_event(None, body).unwrap();
        assert!(anonymous.id.starts_with("sha256:"));
        assert_eq!(anonymous.id, razorpay_event(Some(" "), body).unwrap().id);
        let failed = br#"{"event":"payment.failed","created_at":1,"payload":{"payment":{"entity":{"id":"pay_2"}}}}"#;
        assert_eq!(razorpay_event(None, failed).unwrap().payment, None);
    }
}
