//! Currencies: how many minor units make one major unit. Amounts are integers in minor units
//! of the makerspace's currency (DESIGN.md, "Materials and money"); a rate written in major
//! units (`0.05` per gram) becomes minor units with the currency's exponent: cents for EUR,
//! whole yen for JPY, fils (thousandths) for KWD.

/// ISO 4217 currencies whose minor unit is not the hundredth (the standard's list of
/// exponents, 2024): every other code has two decimals.
const EXPONENTS: &[(&str, u32)] = &[
    ("BHD", 3),
    ("BIF", 0),
    ("CLF", 4),
    ("CLP", 0),
    ("DJF", 0),
    ("GNF", 0),
    ("IQD", 3),
    ("ISK", 0),
    ("JOD", 3),
    ("JPY", 0),
    ("KMF", 0),
    ("KRW", 0),
    ("KWD", 3),
    ("LYD", 3),
    ("OMR", 3),
    ("PYG", 0),
    ("RWF", 0),
    ("TND", 3),
    ("UGX", 0),
    ("UYI", 0),
    ("UYW", 4),
    ("VND", 0),
    ("VUV", 0),
    ("XAF", 0),
    ("XOF", 0),
    ("XPF", 0),
];

/// The number of decimals of a currency's minor unit: 2 unless ISO 4217 says otherwise.
/// Codes are the makerspace's, already checked as three capital letters; an unknown code
/// counts as two decimals, the common case.
pub fn minor_digits(currency: &str) -> u32 {
    EXPONENTS.iter().find(|(code, _)| *code == currency).map_or(2, |(_, digits)| *digits)
}

/// An amount in minor units as decimal text in major units, with the currency's own number
/// of decimals: `1234` EUR is `12.34`, `1234` JPY is `1234`, `1234` BHD is `1.234`, `-5` EUR
/// is `-0.05`. No grouping of thousands (a comma or a point would be read as the decimal
/// mark somewhere), no currency sign: callers add the code.
pub fn format_minor(amount: i64, currency: &str) -> String {
    let digits = minor_digits(currency);
    let sign = if amount < 0 { "-" } else { "" };
    let magnitude = amount.unsigned_abs();
    if digits == 0 {
        return format!("{sign}{magnitude}");
    }
    let per_major = 10_u64.pow(digits);
    format!("{sign}{}.{:0width$}", magnitude / per_major, magnitude % per_major, width = digits as usize)
}

/// [`format_minor`] followed by the currency's code: `12.34 EUR`.
pub fn format_money(amount: i64, currency: &str) -> String {
    format!("{} {currency}", format_minor(amount, currency))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_written_with_the_currency_decimals() {
        assert_eq!(format_minor(1234, "EUR"), "12.34");
        assert_eq!(format_minor(-5, "EUR"), "-0.05");
        assert_eq!(format_minor(0, "USD"), "0.00");
        assert_eq!(format_minor(1234, "JPY"), "1234");
        assert_eq!(format_minor(-1234, "JPY"), "-1234");
        assert_eq!(format_minor(1234, "BHD"), "1.234");
        assert_eq!(format_minor(7, "KWD"), "0.007");
        assert_eq!(format_minor(i64::MIN, "EUR"), "-92233720368547758.08");
        assert_eq!(format_money(150000, "INR"), "1500.00 INR");
    }

    #[test]
    fn exponents_of_common_and_unusual_currencies() {
        assert_eq!(minor_digits("EUR"), 2);
        assert_eq!(minor_digits("USD"), 2);
        assert_eq!(minor_digits("INR"), 2);
        assert_eq!(minor_digits("JPY"), 0);
        assert_eq!(minor_digits("KRW"), 0);
        assert_eq!(minor_digits("KWD"), 3);
        assert_eq!(minor_digits("TND"), 3);
        assert_eq!(minor_digits("CLF"), 4);
    }

    #[test]
    fn the_table_is_sorted_and_holds_no_two_decimal_code() {
        assert!(EXPONENTS.windows(2).all(|w| w[0].0 < w[1].0), "sorted, so a repeat shows");
        assert!(EXPONENTS.iter().all(|(_, digits)| *digits != 2));
    }
}
