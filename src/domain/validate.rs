//! Small input checks shared by every entry point: each failure is an [`Invalid`] with a
//! sentence the caller can act on (the web layer answers it as 422).

/// Input that breaks a rule the server enforces.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

impl Invalid {
    pub fn new(sentence: impl Into<String>) -> Invalid {
        Invalid(sentence.into())
    }
}

/// A required text field: not blank, at most `max` characters.
pub fn check_len(field: &str, value: &str, max: usize) -> Result<(), Invalid> {
    if is_blank(value) {
        return Err(Invalid(format!("{field} must not be empty")));
    }
    if value.chars().count() > max {
        return Err(Invalid(format!("{field} must be at most {max} characters")));
    }
    Ok(())
}

/// An optional text field: blank becomes absent, otherwise at most `max` characters.
pub fn optional_text(field: &str, value: Option<String>, max: usize) -> Result<Option<String>, Invalid> {
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
pub fn check_object(field: &str, value: &serde_json::Value) -> Result<(), Invalid> {
    if value.is_object() {
        Ok(())
    } else {
        Err(Invalid(format!("{field} must be a JSON object")))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts() {
        assert_eq!(check_len("name", "  ", 5), Err(Invalid("name must not be empty".into())));
        assert!(check_len("name", "abcdef", 5).is_err());
        assert_eq!(optional_text("notes", Some(" ".into()), 5), Ok(None));
        assert_eq!(optional_text("notes", Some("ok".into()), 5), Ok(Some("ok".into())));
        assert!(check_object("settings", &serde_json::json!([])).is_err());
    }
}
