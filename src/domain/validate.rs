//! Small input checks shared by every entry point: each failure is an [`Invalid`] with a
//! sentence the caller can act on (the web layer answers it as 422). What is stored must be
//! safe to show later in a log line, a CSV cell, a terminal or a page: texts without control
//! characters ([`check_len`], [`optional_text`], [`optional_multiline`]), amounts of money
//! within bounds ([`check_amount`]), lists without repeats ([`dedup`]). The OpenAPI document
//! states the same rules ([`LINE`], [`MULTI_LINE`], [`NOT_BLANK_LINE`], [`MAX_AMOUNT`]).

/// Input that breaks a rule the server enforces.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

impl Invalid {
    pub fn new(sentence: impl Into<String>) -> Invalid {
        Invalid(sentence.into())
    }
}

/// What a text may hold besides printable characters. Names, labels and reasons are one
/// line; descriptions, notes, messages and a booking's purpose are meant to span lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lines {
    /// No control character at all.
    One,
    /// Line feeds and tabs (what a text area gives); no other control character, not even a
    /// carriage return (a browser's text area already sends bare line feeds).
    Many,
}

/// True for a character no stored text may hold (in texts of [`Lines::Many`], line feed and
/// tab excepted): Unicode's control characters (C0, DEL and C1, those `char::is_control`
/// names), which forge log lines, move terminal cursors and break CSV rows, and the line and
/// paragraph separators U+2028 and U+2029, which some viewers and JavaScript treat as line
/// breaks. [`LINE`] and [`MULTI_LINE`] spell the same sets as patterns.
pub fn is_refused_char(c: char, lines: Lines) -> bool {
    let allowed = lines == Lines::Many && (c == '\n' || c == '\t');
    !allowed && (c.is_control() || c == '\u{2028}' || c == '\u{2029}')
}

/// Refuses a text with a character that [`is_refused_char`] names, saying where it is.
pub fn check_chars(field: &str, value: &str, lines: Lines) -> Result<(), Invalid> {
    match value.chars().position(|c| is_refused_char(c, lines)) {
        None => Ok(()),
        Some(at) => {
            let allowed = if lines == Lines::Many { " other than a line feed or a tab" } else { "" };
            Err(Invalid(format!("{field} must not contain a control character{allowed} (one at character {})", at + 1)))
        }
    }
}

/// A required one-line text field: not blank, at most `max` characters, no control character.
pub fn check_len(field: &str, value: &str, max: usize) -> Result<(), Invalid> {
    check_text(field, value, max, Lines::One)
}

/// A required text field: not blank, at most `max` characters, only the control characters
/// `lines` allows.
pub fn check_text(field: &str, value: &str, max: usize, lines: Lines) -> Result<(), Invalid> {
    if is_blank(value) {
        return Err(Invalid(format!("{field} must not be empty")));
    }
    if value.chars().count() > max {
        return Err(Invalid(format!("{field} must be at most {max} characters")));
    }
    check_chars(field, value, lines)
}

/// An optional one-line text field: blank becomes absent, otherwise at most `max` characters
/// and no control character.
pub fn optional_text(field: &str, value: Option<String>, max: usize) -> Result<Option<String>, Invalid> {
    optional(field, value, max, Lines::One)
}

/// An optional text of several lines (a description, notes, a message, a purpose): blank
/// becomes absent, otherwise at most `max` characters; line feeds and tabs are kept.
pub fn optional_multiline(field: &str, value: Option<String>, max: usize) -> Result<Option<String>, Invalid> {
    optional(field, value, max, Lines::Many)
}

fn optional(field: &str, value: Option<String>, max: usize, lines: Lines) -> Result<Option<String>, Invalid> {
    match value {
        Some(v) if is_blank(&v) => Ok(None),
        Some(v) => {
            check_text(field, &v, max, lines)?;
            Ok(Some(v))
        }
        None => Ok(None),
    }
}

/// The characters [`is_refused_char`] refuses in a one-line text, as the inside of a class
/// of a regular expression (ECMA, Python and Rust read it alike), for patterns built on it.
pub const REFUSED_IN_LINE: &str = r"\x00-\x1f\x7f-\x9f\u2028\u2029";

/// The documented pattern of an optional one-line text: no character that
/// [`is_refused_char`] refuses (the class reads alike in ECMA, Python and Rust).
pub const LINE: &str = r"^[^\x00-\x1f\x7f-\x9f\u2028\u2029]*$";
/// The documented pattern of an optional text of several lines: line feed (`\x0a`) and tab
/// (`\x09`) allowed.
pub const MULTI_LINE: &str = r"^[^\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]*$";
/// The documented pattern of a required one-line text: no refused character, and at least
/// one that is not white space either ([`NOT_BLANK`], whose other members are refused
/// already).
pub const NOT_BLANK_LINE: &str = concat!(
    r"^[^\x00-\x1f\x7f-\x9f\u2028\u2029]*",
    r"[^\x00-\x1f\x7f-\x9f\u2028\u2029 \xa0\u1680\u2000-\u200a\u202f\u205f\u3000]",
    r"[^\x00-\x1f\x7f-\x9f\u2028\u2029]*$"
);

/// A list given in a request without its repeats, in the order given (the first of each
/// wins): naming a skill, a machine or a member twice means the same as naming it once.
pub fn dedup(items: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    items.into_iter().filter(|item| seen.insert(item.clone())).collect()
}

/// Largest amount of money a rate or a price may be, in the currency's major unit
/// (100 000.00, that is 10 000 000 minor units of a two-decimal currency): far above any
/// makerspace's hourly rate or plan, far below where an f64 loses cents or a sum overflows.
pub const MAX_AMOUNT: f64 = 100_000.0;

/// A rate or a price: a finite number from 0 to [`MAX_AMOUNT`].
pub fn check_amount(field: &str, value: f64) -> Result<(), Invalid> {
    if value.is_finite() && (0.0..=MAX_AMOUNT).contains(&value) {
        Ok(())
    } else {
        Err(Invalid(format!("{field} must be a number from 0 to {MAX_AMOUNT}")))
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

/// A required integer, read as [`whole_number`] reads one (`2.0` too).
pub fn required_whole_number<'de, D>(deserializer: D) -> Result<i64, D::Error>
where
    D: serde::Deserializer<'de>,
{
    use serde::de::Error;
    whole_number(deserializer)?.ok_or_else(|| D::Error::custom("invalid value: null, expected a whole number"))
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

    #[test]
    fn texts_refuse_control_characters() {
        for bad in ["a\nb", "a\rb", "\u{1b}[31mred", "nul\0", "a\u{85}b", "a\u{2028}b", "del\u{7f}", "tab\tname"] {
            assert!(check_len("name", bad, 100).is_err(), "{bad:?}");
            assert!(optional_text("name", Some(bad.into()), 100).is_err(), "{bad:?}");
        }
        let refused = check_len("name", "Ada\nINFO forged", 100).expect_err("a line feed in a name");
        assert_eq!(refused.0, "name must not contain a control character (one at character 4)");
        // Several lines: line feeds and tabs, nothing else.
        let notes = "first line\n\tindented\nthird";
        assert_eq!(optional_multiline("notes", Some(notes.into()), 100), Ok(Some(notes.into())));
        for bad in ["a\r\nb", "\u{1b}[2J", "bell\u{7}", "a\u{2029}b"] {
            assert!(optional_multiline("notes", Some(bad.into()), 100).is_err(), "{bad:?}");
        }
        // Printable text of any script stays, as do white space characters inside.
        for good in ["Zoë Ångström", "李小龙", "Laser\u{a0}60 W", "\u{200f}שלום"] {
            assert!(check_len("name", good, 100).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn the_documented_patterns_refuse_what_the_checks_refuse() {
        // The pattern's classes (`[^...]`, none nested), in order.
        let class = |pattern: &'static str, index: usize| {
            let classes: Vec<&str> = pattern
                .match_indices("[^")
                .map(|(at, _)| &pattern[at..=at + pattern[at..].find(']').expect("a closed class")])
                .collect();
            regex_lite_class(classes[index])
        };
        let (line, many) = (class(LINE, 0), class(MULTI_LINE, 0));
        let (around, required) = (class(NOT_BLANK_LINE, 0), class(NOT_BLANK_LINE, 1));
        assert_eq!(NOT_BLANK_LINE.matches("[^").count(), 3);
        assert_eq!(LINE, format!("^[^{REFUSED_IN_LINE}]*$"));
        for c in (0..=0x10FFFF).filter_map(char::from_u32) {
            let u = c as u32;
            assert_eq!(line(c), !is_refused_char(c, Lines::One), "LINE U+{u:04X}");
            assert_eq!(around(c), !is_refused_char(c, Lines::One), "NOT_BLANK_LINE U+{u:04X}");
            assert_eq!(many(c), !is_refused_char(c, Lines::Many), "MULTI_LINE U+{u:04X}");
            assert_eq!(required(c), !is_refused_char(c, Lines::One) && !is_blank(&c.to_string()), "U+{u:04X}");
        }
    }

    #[test]
    fn lists_lose_their_repeats_in_order_and_amounts_are_bounded() {
        let list = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(dedup(list(&["b", "a", "b", "c", "a"])), list(&["b", "a", "c"]));
        assert_eq!(dedup(Vec::new()), Vec::<String>::new());
        assert!(check_amount("hourly_rate", 0.0).is_ok());
        assert!(check_amount("hourly_rate", 12.5).is_ok());
        assert!(check_amount("price", MAX_AMOUNT).is_ok());
        for bad in [-0.01, MAX_AMOUNT + 0.01, 1e300, f64::NAN, f64::INFINITY] {
            assert!(check_amount("price", bad).is_err(), "{bad}");
        }
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
