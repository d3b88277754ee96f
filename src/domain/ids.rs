//! Identifiers. Clients may choose readable ids (`eq-laser-001`); otherwise we mint a UUID.

/// Longest id a client may choose: one leading character and up to 63 more.
const MAX_ID_LEN: usize = 64;

/// Why a client-chosen id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("id must not be empty")]
    Empty,
    #[error("id must be at most {MAX_ID_LEN} characters")]
    TooLong,
    #[error("id must start with a lowercase letter or digit and contain only lowercase letters, digits and '-'")]
    BadCharacters,
}

/// Checks an id against `[a-z0-9][a-z0-9-]{0,63}`. Ids appear in MQTT topics and URLs, so
/// nothing that needs escaping in either may get in.
pub fn validate_id(id: &str) -> Result<(), IdError> {
    let bytes = id.as_bytes();
    let Some(first) = bytes.first() else {
        return Err(IdError::Empty);
    };
    if bytes.len() > MAX_ID_LEN {
        return Err(IdError::TooLong);
    }
    let lower_or_digit = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !lower_or_digit(first) || !bytes.iter().all(|b| lower_or_digit(b) || *b == b'-') {
        return Err(IdError::BadCharacters);
    }
    Ok(())
}

/// A fresh server-chosen id (a UUID v4, which itself satisfies [`validate_id`]).
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_document_style_ids() {
        assert_eq!(validate_id("eq-laser-001"), Ok(()));
        assert_eq!(validate_id("0"), Ok(()));
        assert_eq!(validate_id(&new_id()), Ok(()));
    }

    #[test]
    fn refuses_bad_ids() {
        assert_eq!(validate_id(""), Err(IdError::Empty));
        assert_eq!(validate_id("-lead"), Err(IdError::BadCharacters));
        assert_eq!(validate_id("Upper"), Err(IdError::BadCharacters));
        assert_eq!(validate_id("a/b"), Err(IdError::BadCharacters));
        assert_eq!(validate_id("a+#"), Err(IdError::BadCharacters));
        assert_eq!(validate_id(&"a".repeat(65)), Err(IdError::TooLong));
        assert_eq!(validate_id(&"a".repeat(64)), Ok(()));
    }

    proptest! {
        #[test]
        fn valid_ids_are_safe_in_topics_and_paths(id in "\\PC{0,80}") {
            if validate_id(&id).is_ok() {
                prop_assert!(!id.contains(['/', '+', '#', '?', '%', ' ']));
                prop_assert!(!id.is_empty() && id.len() <= 64);
            }
        }
    }
}
