//! The pages shipped inside the binary: the live dashboard (its Floor and Today views) and the
//! kiosk (plain HTML, CSS and JavaScript, no CDN, no build step).

use actix_web::{web, HttpResponse};

use crate::web::error::ApiError;
use crate::web::AppState;

const DASHBOARD_HTML: &str = include_str!("static/dashboard.html");
const DASHBOARD_JS: &str = include_str!("static/dashboard.js");
const TODAY_JS: &str = include_str!("static/today.js");
const STYLE_CSS: &str = include_str!("static/style.css");
const KIOSK_HTML: &str = include_str!("static/kiosk.html");
const KIOSK_JS: &str = include_str!("static/kiosk.js");

pub async fn dashboard() -> HttpResponse {
    HttpResponse::Ok().content_type("text/html; charset=utf-8").body(DASHBOARD_HTML)
}

/// The shop-floor kiosk page (a tablet beside the machines, with a USB card reader).
pub async fn kiosk() -> HttpResponse {
    HttpResponse::Ok().content_type("text/html; charset=utf-8").body(KIOSK_HTML)
}

pub async fn asset(path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let (body, content_type) = match path.as_str() {
        "dashboard.js" => (DASHBOARD_JS, "text/javascript; charset=utf-8"),
        "today.js" => (TODAY_JS, "text/javascript; charset=utf-8"),
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
