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
    if value.trim().is_empty() {
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
        Some(v) if v.trim().is_empty() => Ok(None),
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
