//! Document numbers: a space's pattern (`INV-{YYYY}-{NNNNN}`) filled with the year and the
//! next number of its series. The counter itself lives in the database (one row per space,
//! series and year, taken in the finalizing transaction); this is only the text.

use crate::domain::validate::Invalid;

pub const DEFAULT_INVOICE_PATTERN: &str = "INV-{YYYY}-{NNNNN}";
pub const DEFAULT_CREDIT_NOTE_PATTERN: &str = "CN-{YYYY}-{NNNNN}";
/// The longest pattern: a number fits a printed header and a bank transfer's reference.
pub const MAX_PATTERN_LEN: usize = 40;

const YEAR: &str = "{YYYY}";
const NUMBER: &str = "{NNNNN}";

/// A pattern holds `{YYYY}` once (numbers restart each year, so the year keeps them unique)
/// and `{NNNNN}` once, and otherwise only letters, digits and `. _ / -`.
pub fn check_pattern(field: &str, pattern: &str) -> Result<(), Invalid> {
    let bad = || {
        Invalid::new(format!(
            "{field} holds {{YYYY}} and {{NNNNN}} once each, otherwise letters, digits and . _ / -, \
             at most {MAX_PATTERN_LEN} characters"
        ))
    };
    if pattern.len() > MAX_PATTERN_LEN || pattern.matches(YEAR).count() != 1 || pattern.matches(NUMBER).count() != 1 {
        return Err(bad());
    }
    let literal = pattern.replacen(YEAR, "", 1).replacen(NUMBER, "", 1);
    if !literal.bytes().all(|b| b.is_ascii_alphanumeric() || b"._/-".contains(&b)) {
        return Err(bad());
    }
    Ok(())
}

/// The number `n` of `year` in `pattern`: `{NNNNN}` is zero-padded to five digits (and grows
/// past 99999 rather than wrap).
pub fn format_number(pattern: &str, year: i32, n: i64) -> String {
    pattern.replacen(YEAR, &format!("{year:04}"), 1).replacen(NUMBER, &format!("{n:05}"), 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_fill_the_pattern() {
        assert_eq!(format_number(DEFAULT_INVOICE_PATTERN, 2026, 7), "INV-2026-00007");
        assert_eq!(format_number("{NNNNN}/{YYYY}", 2027, 123_456), "123456/2027");
    }

    #[test]
    fn patterns_are_checked() {
        for good in [DEFAULT_INVOICE_PATTERN, DEFAULT_CREDIT_NOTE_PATTERN, "MC-{YYYY}-{NNNNN}", "{NNNNN}.{YYYY}"] {
            assert!(check_pattern("p", good).is_ok(), "{good}");
        }
        for bad in
            ["INV-{NNNNN}", "{YYYY}", "{YYYY}{YYYY}{NNNNN}", "INV {YYYY}-{NNNNN}", "{YYYY}-{NNN}", "{yyyy}-{NNNNN}"]
        {
            assert!(check_pattern("p", bad).is_err(), "{bad}");
        }
        assert!(check_pattern("p", &format!("{}{{YYYY}}{{NNNNN}}", "A".repeat(30))).is_err());
    }
}
