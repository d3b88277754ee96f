//! Money writes over HTTP: each takes an `Idempotency-Key` header (fingerprinted with the
//! operation and its body), and answers a replay as it answered the first time, marked
//! `Idempotent-Replayed: true`. Shared by the billing handlers.

use actix_web::{HttpRequest, HttpResponse};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::services::billing;
use crate::store::billing_ledger::IdemKey;
use crate::web::error::ApiError;

/// A money write's request: its body read as `T` (a JSON object) and its idempotency key,
/// fingerprinted with `operation` and the body.
pub fn money_write<T: serde::de::DeserializeOwned>(
    req: &HttpRequest,
    operation: &str,
    body: Map<String, Value>,
) -> Result<(T, IdemKey), ApiError> {
    let request = crate::web::validate::from_object(&body)?;
    Ok((request, idempotency_key(req, operation, &Value::Object(body))?))
}

/// The request's `Idempotency-Key`, fingerprinted with the operation and its body.
pub fn idempotency_key(req: &HttpRequest, operation: &str, body: &Value) -> Result<IdemKey, ApiError> {
    let Some(key) = req.headers().get("Idempotency-Key") else {
        return Err(ApiError::Refused {
            status: 400,
            detail: "money writes take an Idempotency-Key header".into(),
            error_type: "idempotency_key_required",
        });
    };
    let key = key.to_str().map_err(|_| ApiError::Validation("Idempotency-Key is printable ASCII".into()))?;
    Ok(billing::idem_key(key, operation, body)?)
}

/// A money write's answer: 201 the first time, the same with `Idempotent-Replayed: true` after.
pub fn created<T: Serialize>(value: T, replayed: bool) -> HttpResponse {
    HttpResponse::Created().insert_header(("Idempotent-Replayed", replayed.to_string())).json(value)
}
