//! The one error shape of the API: `{"detail", "status_code", "error_type", ...extra}`.
//! Causes go to the log; clients get a sentence and a stable `error_type`.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use serde_json::{json, Map, Value};

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{detail}")]
    Conflict { detail: String, error_type: &'static str },
    /// A conflict with fields that help the client (`existing_member_id`, ...).
    #[error("{detail}")]
    ConflictWith { detail: String, error_type: &'static str, extra: Map<String, Value> },
    /// A 4xx other than the common ones, with its own error type (403 `insufficient_role`...).
    #[error("{detail}")]
    Refused { status: u16, detail: String, error_type: &'static str },
    /// Such a 4xx with fields that help the client (`missing_skills`, ...).
    #[error("{detail}")]
    RefusedWith { status: u16, detail: String, error_type: &'static str, extra: Map<String, Value> },
    #[error("too many attempts; try again in {retry_after_s} s")]
    TooManyRequests { retry_after_s: u64 },
    /// A 429 of its own type and sentence (a connection cap, a slowed-down kiosk).
    #[error("{detail}")]
    Throttled { detail: String, error_type: &'static str, retry_after_s: u64 },
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    Validation(String),
    #[error("{0}")]
    Unavailable(String),
    /// The path exists but does not answer this method; `allow` lists the methods it does.
    #[error("{method} is not allowed here; allowed: {allow}")]
    MethodNotAllowed { method: String, allow: String },
    #[error("internal error")]
    Internal,
}

impl ApiError {
    pub fn not_found(what: &str) -> ApiError {
        ApiError::NotFound(format!("{what} not found"))
    }

    /// A 4xx of its own type with extra fields for the client.
    pub fn refused_with(status: u16, detail: impl Into<String>, error_type: &'static str, extra: Value) -> ApiError {
        let extra = match extra {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        ApiError::RefusedWith { status, detail: detail.into(), error_type, extra }
    }

    /// A conflict with extra fields for the client.
    pub fn conflict_with(detail: impl Into<String>, error_type: &'static str, extra: Value) -> ApiError {
        let extra = match extra {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        ApiError::ConflictWith { detail: detail.into(), error_type, extra }
    }

    fn error_type(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "bad_request",
            Self::Unauthorized(_) => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::Conflict { error_type, .. } | Self::ConflictWith { error_type, .. } => error_type,
            Self::Refused { error_type, .. } | Self::RefusedWith { error_type, .. } => error_type,
            Self::TooManyRequests { .. } => "rate_limited",
            Self::Throttled { error_type, .. } => error_type,
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::Validation(_) => "validation_error",
            Self::Unavailable(_) => "service_unavailable",
            Self::MethodNotAllowed { .. } => "method_not_allowed",
            Self::Internal => "internal_error",
        }
    }

    /// Fields added to the body next to `detail`.
    fn extra(&self) -> Map<String, Value> {
        match self {
            Self::PayloadTooLarge { limit } => Map::from_iter([("max_bytes".to_string(), json!(limit))]),
            Self::ConflictWith { extra, .. } | Self::RefusedWith { extra, .. } => extra.clone(),
            Self::TooManyRequests { retry_after_s } | Self::Throttled { retry_after_s, .. } => {
                Map::from_iter([("retry_after_s".to_string(), json!(retry_after_s))])
            }
            _ => Map::new(),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict { .. } | Self::ConflictWith { .. } => StatusCode::CONFLICT,
            Self::Refused { status, .. } | Self::RefusedWith { status, .. } => {
                StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_REQUEST)
            }
            Self::TooManyRequests { .. } | Self::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let mut body = self.extra();
        body.insert("detail".into(), json!(self.to_string()));
        body.insert("status_code".into(), json!(status.as_u16()));
        body.insert("error_type".into(), json!(self.error_type()));
        let mut response = HttpResponse::build(status);
        if status == StatusCode::UNAUTHORIZED {
            response.insert_header(("WWW-Authenticate", "Bearer"));
        }
        if let Self::TooManyRequests { retry_after_s } | Self::Throttled { retry_after_s, .. } = self {
            response.insert_header(("Retry-After", retry_after_s.to_string()));
        }
        if let Self::MethodNotAllowed { allow, .. } = self {
            response.insert_header(("Allow", allow.as_str()));
        }
        response.json(Value::Object(body))
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> ApiError {
        match err {
            StoreError::Conflict => ApiError::Conflict {
                detail: "a record with this id already exists".into(),
                error_type: "already_exists",
            },
            StoreError::Database(sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed) => {
                tracing::error!(error = ?err, "database unavailable");
                ApiError::Unavailable("the database is unavailable; try again shortly".into())
            }
            other => {
                tracing::error!(error = ?other, "storage error");
                ApiError::Internal
            }
        }
    }
}

impl From<crate::domain::validate::Invalid> for ApiError {
    fn from(err: crate::domain::validate::Invalid) -> ApiError {
        ApiError::Validation(err.0)
    }
}

/// JSON body errors: 415 without a JSON content type, 413 too large, 400 not JSON, 422 JSON
/// of the wrong shape.
pub fn json_error(err: actix_web::error::JsonPayloadError, _: &HttpRequest) -> actix_web::Error {
    use actix_web::error::JsonPayloadError as E;
    let api = match &err {
        E::ContentType => {
            ApiError::UnsupportedMediaType("the body must be JSON (Content-Type: application/json)".into())
        }
        E::OverflowKnownLength { limit, .. } | E::Overflow { limit } => ApiError::PayloadTooLarge { limit: *limit },
        E::Deserialize(e) if e.is_data() => ApiError::Validation(e.to_string()),
        E::Deserialize(e) => ApiError::BadRequest(format!("the body is not valid JSON: {e}")),
        _ => ApiError::BadRequest("the body could not be read".into()),
    };
    api.into()
}

/// Query string errors (a filter with an unknown value, say) are 422.
pub fn query_error(err: actix_web::error::QueryPayloadError, _: &HttpRequest) -> actix_web::Error {
    ApiError::Validation(format!("invalid query parameters: {err}")).into()
}

/// Path parameters that do not parse.
pub fn path_error(err: actix_web::error::PathError, _: &HttpRequest) -> actix_web::Error {
    ApiError::NotFound(format!("no such resource: {err}")).into()
}

/// 405 with the methods the path serves, when the path is served but not for this method.
pub fn check_method(method: &actix_web::http::Method, path: &str) -> Result<(), ApiError> {
    match crate::web::openapi::allowed_methods(path) {
        Some(allowed) if !allowed.iter().any(|m| m == method.as_str()) => {
            Err(ApiError::MethodNotAllowed { method: method.to_string(), allow: allowed.join(", ") })
        }
        _ => Ok(()),
    }
}

/// Unknown routes: 405 for a known path asked with another method, 404 otherwise.
pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    check_method(req.method(), req.path())?;
    Err(ApiError::NotFound("no such endpoint".into()))
}
