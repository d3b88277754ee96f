//! The numbers of a price table (prices, rates, densities, factors): exact decimals with at
//! most [`MAX_DECIMALS`] decimals, so that no float ever rounds a price.
//!
//! Over the API they are plain JSON numbers (`0.05`). They are read from the number's text,
//! as [`crate::domain::inventory::Quantity`] reads quantities: serde_json keeps the text of an
//! integer and prints any other number as the shortest text that reads back as the same
//! double, which is the text the client wrote for every number of at most 15 significant
//! digits (every number a table may hold: at most 6 integer digits and 6 decimals). They are
//! written back the same way, through the double nearest to the decimal, whose shortest text
//! is the decimal again; whole numbers are written as integers.

use std::fmt;

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

/// Decimals a table's number may have: a millionth of a currency unit per gram is finer than
/// any price list, and keeps every number within a double's 15 exact digits.
pub const MAX_DECIMALS: u32 = 6;

/// A table's number, non-negative or not (the table's checks name the field that is out of
/// range), below a billion in size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Rate(Decimal);

/// Larger numbers are refused outright: every bound of a table is far below it, and products
/// of a few such numbers stay far inside a `Decimal`'s 28 digits.
const MAX_MAGNITUDE: Decimal = Decimal::from_parts(1_000_000_000, 0, 0, false, 0);

impl Rate {
    pub const ZERO: Rate = Rate(Decimal::ZERO);

    /// A whole number, for constants.
    pub const fn whole(units: u32) -> Rate {
        Rate(Decimal::from_parts(units, 0, 0, false, 0))
    }

    /// Tenths, for constants (`Rate::tenths(1)` is 0.1).
    pub const fn tenths(units: u32) -> Rate {
        Rate(Decimal::from_parts(units, 0, 0, false, 1))
    }

    /// Hundredths, for constants (`Rate::hundredths(124)` is 1.24).
    pub const fn hundredths(units: u32) -> Rate {
        Rate(Decimal::from_parts(units, 0, 0, false, 2))
    }

    /// A rate of `units` times 10^-`scale` (`Rate::new(5, 2)` is 0.05); `None` with more than
    /// [`MAX_DECIMALS`] decimals or a billion or more in size.
    pub fn new(units: i64, scale: u32) -> Option<Rate> {
        if scale > MAX_DECIMALS {
            return None;
        }
        Rate::exact(Decimal::new(units, scale))
    }

    /// Reads a decimal number's text (`12`, `0.05`, `1.5e-3`): at most [`MAX_DECIMALS`]
    /// decimals, less than a billion in size.
    pub fn parse(text: &str) -> Option<Rate> {
        Rate::exact(decimal_of(text)?)
    }

    fn exact(value: Decimal) -> Option<Rate> {
        let value = value.normalize();
        (value.scale() <= MAX_DECIMALS && value.abs() < MAX_MAGNITUDE).then_some(Rate(value))
    }

    /// The exact value, for arithmetic.
    pub fn value(self) -> Decimal {
        self.0
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.normalize().fmt(f)
    }
}

/// A number's text as a decimal, in plain or scientific notation (serde_json prints small
/// and large doubles as `1e-7`); `None` for text that is not a number or that a `Decimal`
/// cannot hold.
fn decimal_of(text: &str) -> Option<Decimal> {
    if text.contains(['e', 'E']) {
        Decimal::from_scientific(text).ok()
    } else {
        Decimal::from_str_exact(text).ok()
    }
}

/// A JSON number as a rate. A number with more decimals is taken at the nearest millionth
/// only when it is a hair away from it: a sum a client computed in doubles (`0.1 + 0.2`
/// prints as `0.30000000000000004`), not a seventh decimal someone meant.
fn rate_of(number: &serde_json::Number) -> Option<Rate> {
    let value = decimal_of(&number.to_string())?;
    if let Some(exact) = Rate::exact(value) {
        return Some(exact);
    }
    let nearest = value.round_dp_with_strategy(MAX_DECIMALS, RoundingStrategy::MidpointNearestEven);
    // The error of a double's arithmetic: a few units in the 16th significant digit.
    let tolerance = nearest.abs().max(Decimal::new(1, MAX_DECIMALS)) * Decimal::new(1, 12);
    ((value - nearest).abs() <= tolerance).then(|| Rate::exact(nearest)).flatten()
}

impl Serialize for Rate {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let value = self.0.normalize();
        // A whole number is written as one (`12`, as a client would write it).
        if value.scale() == 0 {
            if let Ok(whole) = i64::try_from(value) {
                return serializer.serialize_i64(whole);
            }
        }
        // Rust reads decimal text into the nearest double, and serde_json prints a double as
        // its shortest text: for at most 15 significant digits, the decimal's own text.
        let number: f64 = value.to_string().parse().map_err(serde::ser::Error::custom)?;
        serializer.serialize_f64(number)
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let number = serde_json::Number::deserialize(deserializer)?;
        rate_of(&number).ok_or_else(|| {
            D::Error::custom(format!(
                "invalid number {number}: at most {MAX_DECIMALS} decimals and less than {MAX_MAGNITUDE} in size"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(json: &str) -> Result<Rate, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn numbers_are_read_exactly_from_their_text() {
        assert_eq!(read("0.05").unwrap().value(), Decimal::new(5, 2));
        assert_eq!(read("12").unwrap().value(), Decimal::from(12));
        assert_eq!(read("1.240").unwrap(), Rate::new(124, 2).unwrap());
        assert_eq!(read("0.000001").unwrap(), Rate::new(1, 6).unwrap());
        assert_eq!(read("1e-6").unwrap(), Rate::new(1, 6).unwrap());
        assert_eq!(read("2.5e3").unwrap(), Rate::new(2500, 0).unwrap());
        assert_eq!(read("-1.5").unwrap(), Rate::new(-15, 1).unwrap());
        assert_eq!(read("999999999.999999").unwrap(), Rate::new(999_999_999_999_999, 6).unwrap());
    }

    #[test]
    fn a_doubles_arithmetic_is_taken_at_the_nearest_millionth() {
        assert_eq!(read(&(0.1_f64 + 0.2).to_string()).unwrap(), Rate::new(3, 1).unwrap());
        assert_eq!(read(&(0.000001_f64 * 3.0).to_string()).unwrap(), Rate::new(3, 6).unwrap());
    }

    #[test]
    fn too_fine_too_large_and_non_numbers_are_refused() {
        for bad in ["0.0000005", "0.1234567", "1e9", "1000000000", "1e300", "1e-300", "\"0.05\"", "null", "true"] {
            assert!(read(bad).is_err(), "{bad}");
        }
        assert_eq!(Rate::new(1, 7), None);
        assert_eq!(Rate::parse("abc"), None);
    }

    #[test]
    fn numbers_are_written_as_they_were_read() {
        for text in ["0.05", "12", "1.24", "0.000001", "123456.123456", "-3.5", "0"] {
            let rate = Rate::parse(text).unwrap();
            assert_eq!(rate.to_string(), text);
            let written = serde_json::to_string(&rate).unwrap();
            assert_eq!(read(&written).unwrap(), rate, "{written}");
            if !text.starts_with("0.0000") {
                // (serde_json writes the smallest in scientific notation, read back the same.)
                assert_eq!(written, text);
            }
        }
    }
}
