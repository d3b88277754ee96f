//! Small input checks shared by handlers; each failure is a 422 with a sentence.

use crate::web::error::ApiError;

/// A required text field: not blank, at most `max` characters.
pub fn check_len(field: &str, value: &str, max: usize) -> Result<(), ApiError> {
    if is_blank(value) {
        return Err(ApiError::Validation(format!("{field} must not be empty")));
    }
    if value.chars().count() > max {
        return Err(ApiError::Validation(format!("{field} must be at most {max} characters")));
    }
    Ok(())
}

/// An optional text field: blank becomes absent, otherwise at most `max` characters.
pub fn optional_text(field: &str, value: Option<String>, max: usize) -> Result<Option<String>, ApiError> {
    match value {
        Some(v) if is_blank(&v) => Ok(None),
        Some(v) => {
            check_len(field, &v, max)?;
            Ok(Some(v))
        }
        None => Ok(None),
    }
}

/// A JSON field that must be an object.
pub fn check_object(field: &str, value: &serde_json::Value) -> Result<(), ApiError> {
    if value.is_object() {
        Ok(())
    } else {
        Err(ApiError::Validation(format!("{field} must be a JSON object")))
    }
}

/// The documented pattern of a required text field: at least one character that is not
/// white space (see [`is_blank`]).
pub const NOT_BLANK: &str = r"\S";

/// True when a text holds nothing but white space: Unicode's White_Space and the ASCII
/// separators U+001C..U+001F, which JSON Schema tools (Python's `\s`) count as white space too.
pub fn is_blank(value: &str) -> bool {
    value.chars().all(|c| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c))
}

/// An optional integer that JSON may also spell as a number with a zero fraction (`2.0`), as
/// JSON Schema's `integer` allows; other fractions and out-of-range values are refused.
pub fn whole_number<'de, D>(deserializer: D) -> Result<Option<i64>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    use serde::de::Error;
    use serde::Deserialize;
    let Some(number) = Option::<serde_json::Number>::deserialize(deserializer)? else {
        return Ok(None);
    };
    if let Some(n) = number.as_i64() {
        return Ok(Some(n));
    }
    match number.as_f64() {
        // Both bounds are exact in f64; i64::MAX is not, so the upper bound is exclusive.
        Some(f) if f.fract() == 0.0 && (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&f) => {
            Ok(Some(f as i64))
        }
        _ => Err(D::Error::custom(format!("invalid value: {number}, expected a whole number"))),
    }
}

/// Rewrites numbers with a zero fraction (`2.0`) as integers in a JSON value and the values
/// it holds, so that integer fields read from it (the booking rules of a makerspace's
/// settings) accept what JSON Schema's `integer` allows.
pub fn whole_numbers(value: Option<&mut serde_json::Value>) {
    use serde_json::Value;
    match value {
        Some(Value::Number(n)) if n.as_i64().is_none() && n.as_u64().is_none() => {
            if let Some(f) = n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15) {
                *n = serde_json::Number::from(f as i64);
            }
        }
        Some(Value::Object(map)) => map.values_mut().for_each(|v| whole_numbers(Some(v))),
        Some(Value::Array(items)) => items.iter_mut().for_each(|v| whole_numbers(Some(v))),
        _ => {}
    }
}
