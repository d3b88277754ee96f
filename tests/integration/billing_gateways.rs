//! Billing, gateways: a checkout opened with Stripe or Razorpay for what an invoice owes, and
//! the webhook that marks it paid, once. Webhook payloads are signed with the gateways' own
//! Python libraries (`stripe`, `razorpay` in the test virtualenv). No gateway is reachable
//! from here: their APIs are played by an HTTP server on a free port that answers the
//! documented shapes (a Checkout Session, an order) and checks the credentials as they do.

use std::process::Command;
use std::sync::{Arc, Mutex};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use base64::Engine;
use makrcave::domain::access::Role;
use serde_json::{json, Value};

use crate::billing::{add_member, keyed, S};
use crate::billing_invoices::{base, charge, draft, finalize, invoice, space};
use crate::common::{python, TestApp};

const STRIPE_KEY: &str = "sk_test_makrcave";
const STRIPE_WHSEC: &str = "whsec_makrcave_test";
const RZP_KEY_ID: &str = "rzp_test_makrcave";
const RZP_KEY_SECRET: &str = "rzp_key_secret";
const RZP_WEBHOOK_SECRET: &str = "rzp_webhook_secret";

/// One request the played gateway received: path, Authorization, Idempotency-Key, body.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    authorization: String,
    idempotency_key: String,
    body: String,
}

/// Stripe's and Razorpay's APIs, played: `POST /v1/checkout/sessions` (form-encoded, Bearer
/// secret key) answers a Checkout Session; `POST /v1/orders` (JSON, Basic key id and secret)
/// answers an order; wrong credentials get each one's 401 error body.
struct PlayedGateway {
    url: String,
    received: Arc<Mutex<Vec<Received>>>,
    _server: actix_web::dev::ServerHandle,
}

impl PlayedGateway {
    async fn start() -> PlayedGateway {
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let kept = received.clone();
        let server = HttpServer::new(move || {
            let kept = kept.clone();
            App::new().default_service(web::to(move |request: HttpRequest, body: web::Bytes| {
                let kept = kept.clone();
                async move {
                    let header =
                        |name| request.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
                    let body = String::from_utf8(body.to_vec()).expect("UTF-8 body");
                    let mut all = kept.lock().expect("kept");
                    all.push(Received {
                        path: request.path().to_string(),
                        authorization: header("authorization"),
                        idempotency_key: header("idempotency-key"),
                        body: body.clone(),
                    });
                    let n = all.len();
                    drop(all);
                    answer(request.path(), &header("authorization"), &body, n)
                }
            }))
        })
        .workers(1)
        .bind(("127.0.0.1", 0))
        .expect("bind the played gateway");
        let url = format!("http://{}", server.addrs()[0]);
        let server = server.run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        PlayedGateway { url, received, _server: handle }
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().expect("kept").clone()
    }
}

fn answer(path: &str, authorization: &str, body: &str, n: usize) -> HttpResponse {
    match path {
        "/v1/checkout/sessions" => {
            if authorization != format!("Bearer {STRIPE_KEY}") {
                return HttpResponse::Unauthorized().json(json!({"error": {"type": "invalid_request_error",
                    "message": "Invalid API Key provided: sk_wrong"}}));
            }
            let form: std::collections::HashMap<String, String> =
                url::form_urlencoded::parse(body.as_bytes()).into_owned().collect();
            let id = format!("cs_test_{n}");
            HttpResponse::Ok().json(json!({
                "id": id, "object": "checkout.session", "mode": "payment", "status": "open",
                "payment_status": "unpaid", "url": format!("https://checkout.stripe.com/c/pay/{id}"),
                "client_reference_id": form.get("client_reference_id"),
                "currency": form.get("line_items[0][price_data][currency]"),
                "amount_total": form.get("line_items[0][price_data][unit_amount]").and_then(|a| a.parse::<i64>().ok()),
            }))
        }
        "/v1/orders" => {
            let expected = base64::engine::general_purpose::STANDARD.encode(format!("{RZP_KEY_ID}:{RZP_KEY_SECRET}"));
            if authorization != format!("Basic {expected}") {
                return HttpResponse::Unauthorized()
                    .json(json!({"error": {"code": "BAD_REQUEST_ERROR", "description": "Authentication failed"}}));
            }
            let order: Value = serde_json::from_str(body).expect("a JSON order");
            HttpResponse::Ok().json(json!({
                "id": format!("order_test_{n}"), "entity": "order", "amount": order["amount"], "amount_paid": 0,
                "amount_due": order["amount"], "currency": order["currency"], "receipt": order["receipt"],
                "status": "created", "attempts": 0, "notes": order["notes"], "created_at": chrono::Utc::now().timestamp(),
            }))
        }
        _ => HttpResponse::NotFound().json(json!({"error": {"message": "Unrecognized request URL"}})),
    }
}

/// Runs a Python script of the test virtualenv with arguments; its printed line.
fn python_line(script: &str, args: &[&str]) -> String {
    let out = Command::new(python()).arg("-c").arg(script).args(args).output().expect("run python");
    assert!(out.status.success(), "python failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("UTF-8").trim().to_string()
}

/// A `Stripe-Signature` header made by stripe-python's own signing code.
fn stripe_signature(payload: &str, secret: &str, t: i64) -> String {
    let script = "import sys, stripe\n\
        payload, secret, t = sys.argv[1], sys.argv[2], sys.argv[3]\n\
        sig = stripe.WebhookSignature._compute_signature('%s.%s' % (t, payload), secret)\n\
        header = 't=%s,v1=%s' % (t, sig)\n\
        stripe.WebhookSignature.verify_header(payload, header, secret, tolerance=None)\n\
        print(header)";
    python_line(script, &[payload, secret, &t.to_string()])
}

/// An `X-Razorpay-Signature` that razorpay-python's `verify_webhook_signature` accepts.
fn razorpay_webhook_signature(body: &str, secret: &str) -> String {
    let script = "import sys, hmac, hashlib, razorpay\n\
        body, secret = sys.argv[1], sys.argv[2]\n\
        sig = hmac.new(secret.encode(), body.encode(), hashlib.sha256).hexdigest()\n\
        razorpay.Utility(None).verify_webhook_signature(body, sig, secret)\n\
        print(sig)";
    python_line(script, &[body, secret])
}

/// Razorpay checkout's payment signature, checked by razorpay-python's
/// `verify_payment_signature`.
fn razorpay_payment_signature(order_id: &str, payment_id: &str) -> String {
    let script = "import sys, hmac, hashlib, razorpay\n\
        order, payment, key_id, secret = sys.argv[1:5]\n\
        sig = hmac.new(secret.encode(), ('%s|%s' % (order, payment)).encode(), hashlib.sha256).hexdigest()\n\
        client = razorpay.Client(auth=(key_id, secret))\n\
        assert client.utility.verify_payment_signature({'razorpay_order_id': order, 'razorpay_payment_id': payment, 'razorpay_signature': sig})\n\
        print(sig)";
    python_line(script, &[order_id, payment_id, RZP_KEY_ID, RZP_KEY_SECRET])
}

/// POSTs a webhook delivery with its headers: status and body.
async fn deliver(t: &TestApp, gateway: &str, body: &str, headers: &[(&str, &str)]) -> (u16, Value) {
    let mut req = t
        .http
        .post(t.url(&format!("{}/webhooks/{gateway}", base())))
        .header("Content-Type", "application/json; charset=utf-8")
        .body(body.to_string());
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let res = req.send().await.expect("webhook delivery");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// A finalized invoice of 10.00 + 20% VAT for a new member: (member id, invoice id).
async fn finalized_invoice(t: &TestApp, admin: &str, user: &str, card: &str) -> (String, String) {
    let member = add_member(t, user, card, None).await;
    charge(t, admin, &member, 1000, true).await;
    let d = draft(t, admin, &member).await;
    let id = d["id"].as_str().expect("id").to_string();
    let (status, f) = finalize(t, admin, &id, &format!("fin-{id}")).await;
    assert_eq!(status, 201, "{f}");
    assert_eq!(f["total_minor"], 1200, "{f}");
    (member, id)
}

fn stripe_completed(event_id: &str, session: &str, amount: i64) -> String {
    json!({"id": event_id, "object": "event", "type": "checkout.session.completed", "created": chrono::Utc::now().timestamp(),
        "data": {"object": {"id": session, "object": "checkout.session", "payment_status": "paid", "status": "complete",
            "amount_total": amount, "currency": "eur", "payment_intent": format!("pi_{session}")}}})
    .to_string()
}

async fn payments_of(t: &TestApp, admin: &str, invoice_id: &str) -> (Value, Vec<Value>) {
    let (status, inv) = invoice(t, admin, invoice_id).await;
    assert_eq!(status, 200, "{inv}");
    let payments = inv["payments"].as_array().expect("payments").clone();
    (inv, payments)
}

#[actix_web::test]
async fn a_stripe_checkout_is_paid_once_by_its_signed_webhook_and_forged_or_old_deliveries_are_refused() {
    let gateway = PlayedGateway::start().await;
    let t = TestApp::spawn().await;
    let admin = space(&t).await;
    let (_ada, inv) = finalized_invoice(&t, &admin, "ada", "04:AD:A2:01").await;
    add_member(&t, "bob", "04:B0:B2:01", None).await;
    let as_ada = t.token("ada", Role::Member, &[S]);
    let as_bob = t.token("bob", Role::Member, &[S]);
    let checkouts = format!("{}/invoices/{inv}/checkouts", base());

    // Off until a key is set: no checkout, no webhook, nothing called.
    let (status, body) = t.post(&checkouts, &as_ada, json!({"gateway": "stripe"})).await;
    assert_eq!((status, body["error_type"].as_str()), (409, Some("gateway_not_configured")), "{body}");
    let (status, _) = deliver(&t, "stripe", "{}", &[("Stripe-Signature", "t=1,v1=00")]).await;
    assert_eq!(status, 404);
    assert!(gateway.received().is_empty());

    // A wrong key: the gateway's refusal is a 502 that says so; nothing is stored.
    let account = json!({"secret_key": "sk_wrong", "webhook_secret": STRIPE_WHSEC, "api_url": gateway.url});
    let (status, view) = t.put(&format!("{}/gateways/stripe", base()), &admin, account).await;
    assert_eq!(status, 200, "{view}");
    let (status, body) = t.post(&checkouts, &as_ada, json!({"gateway": "stripe"})).await;
    assert_eq!((status, body["error_type"].as_str()), (502, Some("gateway_refused")), "{body}");
    assert!(body["detail"].as_str().unwrap().contains("Invalid API Key"), "{body}");

    // The right key; the webhook secret sent back masked keeps the stored one.
    let account = json!({"secret_key": STRIPE_KEY, "webhook_secret": "********", "api_url": gateway.url});
    let (status, view) = t.put(&format!("{}/gateways/stripe", base()), &admin, account).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!((view["secret_key"].as_str(), view["webhook_secret"].as_str()), (Some("********"), Some("********")));
    assert!(view["webhook_url"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/api/v1/makerspaces/{S}/billing/webhooks/stripe")));
    let (status, listed) = t.get(&format!("{}/gateways", base()), Some(&admin)).await;
    assert_eq!((status, listed.as_array().map(Vec::len)), (200, Some(1)), "{listed}");
    assert!(!listed.to_string().contains(STRIPE_KEY) && !listed.to_string().contains(STRIPE_WHSEC), "{listed}");
    let (status, _) = t.get(&format!("{}/gateways", base()), Some(&as_ada)).await;
    assert_eq!(status, 403, "only admins see the accounts");

    // Bob cannot pay Ada's invoice; Ada opens a checkout for the 12.00 due.
    let (status, _) = t.post(&checkouts, &as_bob, json!({"gateway": "stripe"})).await;
    assert_eq!(status, 404);
    let (status, opened) = t.post(&checkouts, &as_ada, json!({"gateway": "stripe"})).await;
    assert_eq!(status, 201, "{opened}");
    assert_eq!((opened["amount_minor"].as_i64(), opened["currency"].as_str()), (Some(1200), Some("EUR")), "{opened}");
    let session = opened["external_id"].as_str().expect("session id").to_string();
    assert!(opened["url"].as_str().unwrap().starts_with("https://checkout.stripe.com/"), "{opened}");
    let sent = gateway.received().last().cloned().expect("a Checkout Session request");
    assert_eq!((sent.path.as_str(), sent.authorization.as_str()), ("/v1/checkout/sessions", "Bearer sk_test_makrcave"));
    assert_eq!(sent.idempotency_key, opened["id"].as_str().unwrap(), "the checkout's id is Stripe's idempotency key");
    let form: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(sent.body.as_bytes()).into_owned().collect();
    assert_eq!(form["mode"], "payment");
    assert_eq!(form["client_reference_id"], inv);
    assert_eq!(
        (form["line_items[0][price_data][currency]"].as_str(), form["line_items[0][price_data][unit_amount]"].as_str()),
        ("eur", "1200")
    );
    assert!(form["success_url"].contains(&inv), "{form:?}");

    // Forged, altered and old deliveries change nothing.
    let now = chrono::Utc::now().timestamp();
    let payload = stripe_completed("evt_1", &session, 1200);
    let signed = stripe_signature(&payload, STRIPE_WHSEC, now);
    let tampered = payload.replace("1200", "120000");
    let (status, body) = deliver(&t, "stripe", &tampered, &[("Stripe-Signature", &signed)]).await;
    assert_eq!((status, body["error_type"].as_str()), (400, Some("invalid_signature")), "{body}");
    let wrong_secret = stripe_signature(&payload, "whsec_not_ours", now);
    let (status, body) = deliver(&t, "stripe", &payload, &[("Stripe-Signature", &wrong_secret)]).await;
    assert_eq!((status, body["error_type"].as_str()), (400, Some("invalid_signature")), "{body}");
    let old = stripe_signature(&payload, STRIPE_WHSEC, now - 301);
    let (status, body) = deliver(&t, "stripe", &payload, &[("Stripe-Signature", &old)]).await;
    assert_eq!((status, body["error_type"].as_str()), (400, Some("signature_expired")), "{body}");
    let (status, body) = deliver(&t, "stripe", &payload, &[]).await;
    assert_eq!((status, body["error_type"].as_str()), (400, Some("invalid_signature")), "{body}");
    let (inv_now, payments) = payments_of(&t, &admin, &inv).await;
    assert!(payments.is_empty() && inv_now["payment_status"] == "open", "{inv_now}");

    // The genuine delivery pays the invoice; its redelivery and a second event about the same
    // session change nothing.
    let (status, body) = deliver(&t, "stripe", &payload, &[("Stripe-Signature", &signed)]).await;
    assert_eq!((status, body["outcome"].as_str()), (200, Some("paid")), "{body}");
    let (status, body) = deliver(&t, "stripe", &payload, &[("Stripe-Signature", &signed)]).await;
    assert_eq!((status, body["outcome"].as_str()), (200, Some("duplicate")), "{body}");
    let late = payload
        .replace("evt_1", "evt_2")
        .replace("checkout.session.completed", "checkout.session.async_payment_succeeded");
    let late_signed = stripe_signature(&late, STRIPE_WHSEC, now);
    let (status, body) = deliver(&t, "stripe", &late, &[("Stripe-Signature", &late_signed)]).await;
    assert_eq!((status, body["outcome"].as_str()), (200, Some("duplicate_payment")), "{body}");
    let (inv_now, payments) = payments_of(&t, &admin, &inv).await;
    assert_eq!(inv_now["payment_status"], "paid", "{inv_now}");
    assert_eq!(payments.len(), 1, "{payments:?}");
    assert_eq!((payments[0]["method"].as_str(), payments[0]["amount_minor"].as_i64()), (Some("stripe"), Some(1200)));
    assert_eq!(payments[0]["reference"], format!("pi_{session}"));

    // Events makrcave does not act on are acknowledged; a paid invoice opens no checkout.
    let other = json!({"id": "evt_3", "type": "customer.created", "data": {"object": {"id": "cus_1"}}}).to_string();
    let other_signed = stripe_signature(&other, STRIPE_WHSEC, now);
    let (status, body) = deliver(&t, "stripe", &other, &[("Stripe-Signature", &other_signed)]).await;
    assert_eq!((status, body["outcome"].as_str()), (200, Some("ignored")), "{body}");
    let (status, body) = t.post(&checkouts, &as_ada, json!({"gateway": "stripe"})).await;
    assert_eq!((status, body["error_type"].as_str()), (409, Some("nothing_due")), "{body}");

    // Turned off: webhooks are no longer accepted.
    let (status, _) = t.delete(&format!("{}/gateways/stripe", base()), &admin).await;
    assert_eq!(status, 204);
    let (status, _) = deliver(&t, "stripe", &payload, &[("Stripe-Signature", &signed)]).await;
    assert_eq!(status, 404);
    t.stop().await;
}

#[actix_web::test]
async fn a_razorpay_order_is_paid_by_its_webhook_and_money_beyond_what_is_due_goes_to_the_wallet() {
    let gateway = PlayedGateway::start().await;
    let t = TestApp::spawn().await;
    let admin = space(&t).await;
    let (ada, inv) = finalized_invoice(&t, &admin, "ada", "04:AD:A3:01").await;
    let as_ada = t.token("ada", Role::Member, &[S]);
    let account = json!({"key_id": RZP_KEY_ID, "key_secret": RZP_KEY_SECRET, "webhook_secret": RZP_WEBHOOK_SECRET,
        "api_url": gateway.url, "webhook_tolerance_s": 3600});
    let (status, view) = t.put(&format!("{}/gateways/razorpay", base()), &admin, account).await;
    assert_eq!((status, view["key_id"].as_str()), (200, Some(RZP_KEY_ID)), "{view}");

    let (status, opened) =
        t.post(&format!("{}/invoices/{inv}/checkouts", base()), &as_ada, json!({"gateway": "razorpay"})).await;
    assert_eq!(status, 201, "{opened}");
    let order = opened["external_id"].as_str().expect("order id").to_string();
    assert_eq!(
        (opened["key_id"].as_str(), opened["amount_minor"].as_i64()),
        (Some(RZP_KEY_ID), Some(1200)),
        "{opened}"
    );
    let sent = gateway.received().last().cloned().expect("an order request");
    assert_eq!(sent.path, "/v1/orders");
    let body: Value = serde_json::from_str(&sent.body).expect("JSON");
    assert_eq!((body["amount"].as_i64(), body["currency"].as_str()), (Some(1200), Some("EUR")), "{body}");
    assert_eq!(body["notes"]["invoice_id"], inv.as_str());

    // The browser's proof of payment: Razorpay's payment signature verifies; a wrong one not.
    let confirm = format!("{}/checkouts/{}/razorpay-payment", base(), opened["id"].as_str().unwrap());
    let signature = razorpay_payment_signature(&order, "pay_test_1");
    let (status, body) = t
        .post(
            &confirm,
            &as_ada,
            json!({"razorpay_payment_id": "pay_test_1", "razorpay_order_id": order, "razorpay_signature": signature}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) =
        t.post(&confirm, &as_ada, json!({"razorpay_payment_id": "pay_test_2", "razorpay_signature": signature})).await;
    assert_eq!((status, body["error_type"].as_str()), (400, Some("invalid_signature")), "{body}");
    let (_, payments) = payments_of(&t, &admin, &inv).await;
    assert!(payments.is_empty(), "the browser's word records no money: {payments:?}");

    // Meanwhile 5.00 is paid in cash at the desk.
    let (status, cash) = keyed(
        &t,
        &format!("{}/invoices/{inv}/payments", base()),
        &admin,
        "cash-1",
        json!({"method": "cash", "amount_minor": 500}),
    )
    .await;
    assert_eq!(status, 201, "{cash}");

    let now = chrono::Utc::now().timestamp();
    let captured = |event: &str, created: i64| {
        json!({"entity": "event", "account_id": "acc_test", "event": event, "contains": ["payment"], "created_at": created,
            "payload": {"payment": {"entity": {"id": "pay_test_1", "entity": "payment", "amount": 1200, "currency": "EUR",
                "status": "captured", "order_id": order, "method": "upi", "captured": true}}}})
        .to_string()
    };
    let payload = captured("payment.captured", now);
    let signed = razorpay_webhook_signature(&payload, RZP_WEBHOOK_SECRET);

    // Altered, foreign and stale deliveries are refused.
    let (status, body) = deliver(
        &t,
        "razorpay",
        &payload.replace("1200", "9900"),
        &[("X-Razorpay-Signature", &signed), ("X-Razorpay-Event-Id", "evt_rzp_1")],
    )
    .await;
    assert_eq!((status, body["error_type"].as_str()), (400, Some("invalid_signature")), "{body}");
    let foreign = razorpay_webhook_signature(&payload, "another_webhook_secret");
    let (status, body) = deliver(&t, "razorpay", &payload, &[("X-Razorpay-Signature", &foreign)]).await;
    assert_eq!((status, body["error_type"].as_str()), (400, Some("invalid_signature")), "{body}");
    let stale = captured("payment.captured", now - 3601);
    let stale_signed = razorpay_webhook_signature(&stale, RZP_WEBHOOK_SECRET);
    let (status, body) = deliver(&t, "razorpay", &stale, &[("X-Razorpay-Signature", &stale_signed)]).await;
    assert_eq!((status, body["error_type"].as_str()), (400, Some("signature_expired")), "{body}");

    // The genuine capture pays the 7.00 still due; the 5.00 beyond it is Ada's credit.
    let headers = [("X-Razorpay-Signature", signed.as_str()), ("X-Razorpay-Event-Id", "evt_rzp_1")];
    let (status, body) = deliver(&t, "razorpay", &payload, &headers).await;
    assert_eq!((status, body["outcome"].as_str()), (200, Some("paid_and_credited")), "{body}");
    let (status, body) = deliver(&t, "razorpay", &payload, &headers).await;
    assert_eq!((status, body["outcome"].as_str()), (200, Some("duplicate")), "{body}");
    // `order.paid` names the same payment: nothing more.
    let paid = captured("order.paid", now);
    let paid_signed = razorpay_webhook_signature(&paid, RZP_WEBHOOK_SECRET);
    let (status, body) =
        deliver(&t, "razorpay", &paid, &[("X-Razorpay-Signature", &paid_signed), ("X-Razorpay-Event-Id", "evt_rzp_2")])
            .await;
    assert_eq!((status, body["outcome"].as_str()), (200, Some("duplicate_payment")), "{body}");

    let (inv_now, payments) = payments_of(&t, &admin, &inv).await;
    assert_eq!(inv_now["payment_status"], "paid", "{inv_now}");
    let methods: Vec<(&str, i64)> =
        payments.iter().map(|p| (p["method"].as_str().unwrap(), p["amount_minor"].as_i64().unwrap())).collect();
    assert_eq!(methods, vec![("cash", 500), ("razorpay", 700)]);
    let (status, wallet) = t.get(&format!("/api/v1/makerspaces/{S}/members/{ada}/wallet"), Some(&admin)).await;
    assert_eq!(status, 200, "{wallet}");
    assert_eq!(wallet["balance_minor"], 500, "{wallet}");
    t.stop().await;
}
