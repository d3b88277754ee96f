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
/// white space ([`is_blank`]). The class is spelled out because `\s` means different sets in
/// ECMA, Python and Rust regular expressions; these are Unicode's White_Space characters,
/// those `str::trim` removes.
pub const NOT_BLANK: &str = r"[^\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]";

/// True when a text holds nothing but white space (Unicode's White_Space, as `str::trim`).
pub fn is_blank(value: &str) -> bool {
    value.chars().all(char::is_whitespace)
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

/// An optional section of a settings object (`settings.booking`): absent, `null` or an
/// object, whose whole numbers spelled as floats become integers (see [`whole_numbers`]).
pub fn settings_section(settings: &mut serde_json::Value, section: &str) -> Result<(), Invalid> {
    match settings.get_mut(section) {
        None | Some(serde_json::Value::Null) => Ok(()),
        Some(value @ serde_json::Value::Object(_)) => {
            whole_numbers(Some(value));
            Ok(())
        }
        Some(_) => Err(Invalid(format!("settings.{section} must be a JSON object"))),
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

    #[derive(serde::Deserialize)]
    struct Whole {
        #[serde(default, deserialize_with = "whole_number")]
        n: Option<i64>,
    }

    fn whole(json: &str) -> Result<Option<i64>, serde_json::Error> {
        serde_json::from_str::<Whole>(json).map(|w| w.n)
    }

    #[test]
    fn whole_numbers_may_be_spelled_as_floats() {
        assert_eq!(whole(r#"{"n": 2}"#).ok(), Some(Some(2)));
        assert_eq!(whole(r#"{"n": 2.0}"#).ok(), Some(Some(2)));
        assert_eq!(whole(r#"{"n": -9e3}"#).ok(), Some(Some(-9000)));
        assert_eq!(whole(r#"{"n": null}"#).ok(), Some(None));
        assert_eq!(whole("{}").ok(), Some(None));
        assert!(whole(r#"{"n": 2.5}"#).is_err());
        assert!(whole(r#"{"n": 1e300}"#).is_err());
        assert!(whole(r#"{"n": "2"}"#).is_err());
        let mut settings = serde_json::json!({"booking": {"max_hours": 4.0, "min_gap_minutes": 1.5}});
        assert!(settings_section(&mut settings, "booking").is_ok());
        assert_eq!(settings["booking"]["max_hours"], serde_json::json!(4));
        assert_eq!(settings["booking"]["min_gap_minutes"], serde_json::json!(1.5));
        assert!(settings_section(&mut serde_json::json!({"booking": []}), "booking").is_err());
        assert!(settings_section(&mut serde_json::json!({"booking": null}), "booking").is_ok());
        assert!(settings_section(&mut serde_json::json!({}), "booking").is_ok());
    }

    #[test]
    fn blank_is_what_the_documented_pattern_excludes() {
        let matches = regex_lite_class(NOT_BLANK);
        for c in (0..=0x10FFFF).filter_map(char::from_u32) {
            assert_eq!(is_blank(&c.to_string()), !matches(c), "U+{:04X}", c as u32);
        }
        assert!(is_blank("") && is_blank(" \t\u{a0}\u{3000}") && !is_blank(" x "));
    }

    /// The negated class `[^...]` of [`NOT_BLANK`] as a predicate: true for a character that
    /// the pattern matches.
    fn regex_lite_class(class: &str) -> impl Fn(char) -> bool {
        let inner = class.strip_prefix("[^").and_then(|c| c.strip_suffix(']')).expect("a negated class");
        let unescape = |s: &str| -> char {
            match s {
                r"\t" => '\t',
                r"\r" => '\r',
                _ if s.starts_with(r"\x") || s.starts_with(r"\u") => {
                    char::from_u32(u32::from_str_radix(&s[2..], 16).expect("hex")).expect("char")
                }
                _ => s.chars().next().expect("a character"),
            }
        };
        // Tokens: escapes (\t, \r, \xHH, \uHHHH) or single characters; `a-b` is a range.
        let mut tokens: Vec<char> = Vec::new();
        let mut rest = inner;
        while !rest.is_empty() {
            let len = if rest.starts_with(r"\x") {
                4
            } else if rest.starts_with(r"\u") {
                6
            } else if rest.starts_with('\\') {
                2
            } else {
                rest.chars().next().map(char::len_utf8).unwrap_or(1)
            };
            tokens.push(if rest[..len] == *"-" { '\u{0}' } else { unescape(&rest[..len]) });
            rest = &rest[len..];
        }
        let mut ranges: Vec<(char, char)> = Vec::new();
        let mut i = 0;
        while i < tokens.len() {
            if i + 2 < tokens.len() && tokens[i + 1] == '\u{0}' {
                ranges.push((tokens[i], tokens[i + 2]));
                i += 3;
            } else {
                ranges.push((tokens[i], tokens[i]));
                i += 1;
            }
        }
        move |c| !ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&c))
    }
}
