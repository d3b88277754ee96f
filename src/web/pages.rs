//! The pages shipped inside the binary: the live dashboard (its Floor, Today, Stock, Queue and
//! Billing views) and the kiosk (plain HTML, CSS and JavaScript, no CDN, no build step).
//!
//! The pages defend themselves: they load only their own files (no inline script or style, so
//! an injected `<script>` or `onclick=` does not run), and no other site may frame them (a
//! kiosk or an admin's dashboard under someone else's page could be clicked through).

use actix_web::{web, HttpResponse};

use crate::web::error::ApiError;
use crate::web::AppState;

const DASHBOARD_HTML: &str = include_str!("static/dashboard.html");
const DASHBOARD_JS: &str = include_str!("static/dashboard.js");
const TODAY_JS: &str = include_str!("static/today.js");
const STOCK_JS: &str = include_str!("static/stock.js");
const QUEUE_JS: &str = include_str!("static/queue.js");
const BILLING_JS: &str = include_str!("static/billing.js");
const STYLE_CSS: &str = include_str!("static/style.css");
const KIOSK_HTML: &str = include_str!("static/kiosk.html");
const KIOSK_JS: &str = include_str!("static/kiosk.js");

/// The Content-Security-Policy of the pages. `'self'` covers the scripts, the stylesheet, the
/// API calls and the same-origin WebSocket; there is no inline script or style to allow (the
/// scripts set styles through the CSSOM, which the policy does not restrict). `base-uri`,
/// `form-action` and `object-src` are not covered by `default-src`, so they are set too.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

/// An HTML page with the headers that defend it (`X-Content-Type-Options` is on every answer,
/// see `app.rs`). `X-Frame-Options` says for older browsers what `frame-ancestors` says;
/// no referrer leaves a page whose address may carry an invitation code.
fn page(html: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header(("Content-Security-Policy", CONTENT_SECURITY_POLICY))
        .insert_header(("X-Frame-Options", "DENY"))
        .insert_header(("Referrer-Policy", "no-referrer"))
        .body(html)
}

pub async fn dashboard() -> HttpResponse {
    page(DASHBOARD_HTML)
}

/// The shop-floor kiosk page (a tablet beside the machines, with a USB card reader).
pub async fn kiosk() -> HttpResponse {
    page(KIOSK_HTML)
}

pub async fn asset(path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let (body, content_type) = match path.as_str() {
        "dashboard.js" => (DASHBOARD_JS, "text/javascript; charset=utf-8"),
        "today.js" => (TODAY_JS, "text/javascript; charset=utf-8"),
        "stock.js" => (STOCK_JS, "text/javascript; charset=utf-8"),
        "queue.js" => (QUEUE_JS, "text/javascript; charset=utf-8"),
        "billing.js" => (BILLING_JS, "text/javascript; charset=utf-8"),
        "kiosk.js" => (KIOSK_JS, "text/javascript; charset=utf-8"),
        "style.css" => (STYLE_CSS, "text/css; charset=utf-8"),
        _ => return Err(ApiError::not_found("file")),
    };
    Ok(HttpResponse::Ok().content_type(content_type).insert_header(("Cache-Control", "no-cache")).body(body))
}

/// In `--demo` mode, a token for the demo makerspace so that a newcomer sees it at once.
pub async fn demo_token(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    match &state.demo_token {
        Some(token) => {
            Ok(HttpResponse::Ok().json(serde_json::json!({ "token": token, "makerspace_id": crate::demo::DEMO_SPACE })))
        }
        None => Err(ApiError::NotFound("not running in demo mode".into())),
    }
}
