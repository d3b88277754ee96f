//! Input checks shared by handlers. The checks themselves are the domain's
//! ([`crate::domain::validate`]), so that services and handlers enforce the same rules; an
//! [`Invalid`] becomes a 422 through `From<Invalid> for ApiError`.

pub use crate::domain::validate::{
    check_amount, check_len, check_object, dedup, is_blank, optional_multiline, optional_text, settings_section,
    whole_number, whole_numbers, Invalid, LINE, MAX_AMOUNT, MULTI_LINE, NOT_BLANK, NOT_BLANK_LINE, REFUSED_IN_LINE,
};

/// A body read as a JSON object first: serde also reads a struct from an array of its fields
/// in order, which no document here allows.
pub fn from_object<T: serde::de::DeserializeOwned>(
    body: &serde_json::Map<String, serde_json::Value>,
) -> Result<T, crate::web::error::ApiError> {
    serde_json::from_value(serde_json::Value::Object(body.clone()))
        .map_err(|e| crate::web::error::ApiError::Validation(e.to_string()))
}
