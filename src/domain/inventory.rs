//! Inventory: what a makerspace stocks, counted exactly, and the rules of its stock log.
//!
//! Stock is never a number that is overwritten: every change is a usage row with a signed
//! delta, a reason and a cause, appended to the item's log, and the level is the sum of the
//! log (DESIGN.md, "Materials and money"). This module holds the pure part: quantities, the
//! kinds of items, which reasons add and which take away, and when a level crosses its
//! minimum (one alert per crossing, not one per deduct).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::validate::Invalid;

/// A quantity of an item, in thousandths of its unit (milligrams of filament in grams,
/// millimetres of a length in metres, thousandths of a sheet): exact integers, never floats.
///
/// Over the API a quantity is a decimal number in the item's unit with at most three
/// decimals (`12.5` grams); it is read from JSON's text, so no float rounding creeps in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Quantity(pub i64);

/// Thousandths in one unit.
const SCALE: i64 = 1000;
/// The largest quantity one request may name, in units: a hundred tonnes of filament in
/// grams. Far beyond any stock, far below where a sum of many could overflow.
pub const MAX_UNITS: i64 = 100_000_000;

impl Quantity {
    pub const ZERO: Quantity = Quantity(0);

    pub fn from_units(units: i64) -> Quantity {
        Quantity(units * SCALE)
    }

    /// Reads a decimal number's text (`12`, `12.5`, `-3.125`): at most three decimals.
    pub fn parse(text: &str) -> Option<Quantity> {
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
        let fraction = fraction.trim_end_matches('0');
        let is_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || !is_digits(whole) || !is_digits(fraction) || fraction.len() > 3 {
            return None;
        }
        let whole: i64 = whole.parse().ok().filter(|w| *w <= MAX_UNITS)?;
        let thousandths: i64 = format!("{fraction:0<3}").parse().ok()?;
        let value = whole * SCALE + thousandths;
        Some(Quantity(if negative { -value } else { value }))
    }

    /// The number a client reads: exact for every quantity (at most three decimals, and
    /// far below 2^53 thousandths).
    pub fn as_units(self) -> f64 {
        self.0 as f64 / SCALE as f64
    }

    /// The decimal text, for CSV and messages (`12.5`, `-3`).
    pub fn to_text(self) -> String {
        let sign = if self.0 < 0 { "-" } else { "" };
        let (whole, fraction) = (self.0.unsigned_abs() / SCALE as u64, self.0.unsigned_abs() % SCALE as u64);
        if fraction == 0 {
            format!("{sign}{whole}")
        } else {
            format!("{sign}{whole}.{}", format!("{fraction:03}").trim_end_matches('0'))
        }
    }

    pub fn is_positive(self) -> bool {
        self.0 > 0
    }
}

impl Serialize for Quantity {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(self.as_units())
    }
}

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let number = serde_json::Number::deserialize(deserializer)?;
        quantity_of(&number).ok_or_else(|| {
            D::Error::custom(format!(
                "invalid quantity {number}: a number of at most {MAX_UNITS} units with at most three decimals"
            ))
        })
    }
}

/// A JSON number as a quantity. serde_json keeps integers as they are written and prints
/// other numbers as the shortest text that reads back as the same double, so `12.345` is
/// read as `12.345`; a sum a client computed (`0.1 + 0.2`) that lands a hair off a
/// thousandth is taken at the nearest thousandth.
fn quantity_of(number: &serde_json::Number) -> Option<Quantity> {
    if let Some(exact) = Quantity::parse(&number.to_string()) {
        return Some(exact);
    }
    let value = number.as_f64()?;
    let thousandths = (value * SCALE as f64).round();
    let off = (value * SCALE as f64 - thousandths).abs();
    // The error of a double's arithmetic, not a fourth decimal: a few units in the last place.
    (value.is_finite() && value.abs() <= MAX_UNITS as f64 && off <= 1e-12 * thousandths.abs().max(1.0))
        .then_some(Quantity(thousandths as i64))
}

/// What kind of thing an item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Filament,
    Resin,
    Sheet,
    Component,
    Tool,
    Consumable,
}

/// The unit an item is counted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum Unit {
    #[serde(rename = "g")]
    Grams,
    #[serde(rename = "ml")]
    Millilitres,
    #[serde(rename = "sheet")]
    Sheets,
    #[serde(rename = "piece")]
    Pieces,
    #[serde(rename = "m")]
    Metres,
}

/// Why stock changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum UsageReason {
    /// A delivery came in.
    Received,
    /// Handed out to a person.
    Issued,
    /// Consumed by a print or cut job.
    UsedByJob,
    /// Consumed during a member's machine session.
    UsedBySession,
    /// A stock count or a weighed spool set the level.
    Adjusted,
    /// Broken, spoiled, lost.
    Damaged,
    /// Given back.
    Returned,
}

/// Which way a reason moves stock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    In,
    Out,
    /// Either way (a count).
    Either,
}

impl UsageReason {
    pub fn direction(self) -> Direction {
        match self {
            Self::Received | Self::Returned => Direction::In,
            Self::Issued | Self::UsedByJob | Self::UsedBySession | Self::Damaged => Direction::Out,
            Self::Adjusted => Direction::Either,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Received => "received",
            Self::Issued => "issued",
            Self::UsedByJob => "used_by_job",
            Self::UsedBySession => "used_by_session",
            Self::Adjusted => "adjusted",
            Self::Damaged => "damaged",
            Self::Returned => "returned",
        }
    }

    pub fn parse(s: &str) -> Option<UsageReason> {
        serde_json::from_value(serde_json::Value::String(s.to_string())).ok()
    }
}

/// What caused a change of stock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CauseKind {
    Job,
    Session,
    Member,
    Admin,
    PurchaseOrder,
}

impl CauseKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Job => "job",
            Self::Session => "session",
            Self::Member => "member",
            Self::Admin => "admin",
            Self::PurchaseOrder => "purchase_order",
        }
    }

    pub fn parse(s: &str) -> Option<CauseKind> {
        serde_json::from_value(serde_json::Value::String(s.to_string())).ok()
    }
}

/// The signed delta of a deduct or a receipt: `quantity` must be positive, and the reason
/// must move stock that way.
pub fn delta_for(reason: UsageReason, quantity: Quantity) -> Result<Quantity, Invalid> {
    if !quantity.is_positive() {
        return Err(Invalid::new("quantity must be more than 0"));
    }
    match reason.direction() {
        Direction::In => Ok(quantity),
        Direction::Out => Ok(Quantity(-quantity.0)),
        Direction::Either => Err(Invalid::new("an adjustment sets a counted level: use the adjust endpoint")),
    }
}

/// Why a change of stock is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StockRefusal {
    /// Taking this much would leave less than nothing, and the item does not allow it.
    Insufficient { level: Quantity },
}

/// Whether a level may move by `delta`.
pub fn check_change(level: Quantity, delta: Quantity, allow_negative: bool) -> Result<Quantity, StockRefusal> {
    let after = Quantity(level.0 + delta.0);
    if delta.0 < 0 && after.0 < 0 && !allow_negative {
        return Err(StockRefusal::Insufficient { level });
    }
    Ok(after)
}

/// True when a change took the level from above the minimum to at or below it: the one
/// moment a low-stock alert is raised. A level that was already low raises nothing more.
pub fn crossed_minimum(before: Quantity, after: Quantity, min_stock_level: Quantity) -> bool {
    before > min_stock_level && after <= min_stock_level
}

/// A colour as `#RRGGBB` (or `RRGGBB`, or with alpha `RRGGBBAA` as Bambu sends it), in the
/// canonical upper-case `RRGGBB`.
pub fn normalize_color(text: &str) -> Option<String> {
    let hex = text.strip_prefix('#').unwrap_or(text);
    let rgb = match hex.len() {
        6 => hex,
        8 => &hex[..6],
        _ => return None,
    };
    rgb.bytes().all(|b| b.is_ascii_hexdigit()).then(|| rgb.to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(text: &str) -> Quantity {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn quantities_are_exact_thousandths() {
        assert_eq!(q("12"), Quantity(12_000));
        assert_eq!(q("12.5"), Quantity(12_500));
        assert_eq!(q("0.001"), Quantity(1));
        assert_eq!(q("-3.125"), Quantity(-3_125));
        assert_eq!(q("1e3"), Quantity(1_000_000));
        // What a client's float arithmetic gives is taken at the nearest thousandth.
        assert_eq!(q(&(0.1_f64 + 0.2).to_string()), Quantity(300));
        assert_eq!(q(&(0.001_f64 * 7.0).to_string()), Quantity(7));
        for bad in ["0.0005", "12.3456", "45600615.03819431", "1e9", "100000001", "1e-7"] {
            assert!(serde_json::from_str::<Quantity>(bad).is_err(), "{bad}");
        }
        assert!(serde_json::from_str::<Quantity>("\"12\"").is_err(), "a string is not a number");
    }

    #[test]
    fn quantities_read_back_as_what_was_written() {
        for text in ["0", "12", "12.5", "0.001", "99999999.999", "-7.25"] {
            let quantity = Quantity::parse(text).unwrap();
            assert_eq!(quantity.to_text(), text);
            assert_eq!(serde_json::to_string(&quantity).unwrap().trim_end_matches(".0"), text);
        }
    }

    #[test]
    fn reasons_move_stock_their_way() {
        let five = Quantity::from_units(5);
        assert_eq!(delta_for(UsageReason::Received, five), Ok(five));
        assert_eq!(delta_for(UsageReason::UsedByJob, five), Ok(Quantity(-5_000)));
        assert!(delta_for(UsageReason::Issued, Quantity::ZERO).is_err());
        assert!(delta_for(UsageReason::Adjusted, five).is_err());
        for reason in ["received", "issued", "used_by_job", "used_by_session", "adjusted", "damaged", "returned"] {
            assert_eq!(UsageReason::parse(reason).map(UsageReason::as_str), Some(reason));
        }
    }

    #[test]
    fn stock_does_not_go_below_nothing_unless_allowed() {
        let level = Quantity::from_units(3);
        assert_eq!(check_change(level, Quantity(-3_000), false), Ok(Quantity::ZERO));
        assert_eq!(check_change(level, Quantity(-3_001), false), Err(StockRefusal::Insufficient { level }));
        assert_eq!(check_change(level, Quantity(-4_000), true), Ok(Quantity(-1_000)));
        // Receiving into a negative level is always fine.
        assert_eq!(check_change(Quantity(-1_000), Quantity(500), false), Ok(Quantity(-500)));
    }

    #[test]
    fn one_alert_per_downward_crossing() {
        let min = Quantity::from_units(10);
        assert!(crossed_minimum(Quantity::from_units(11), Quantity::from_units(10), min));
        assert!(!crossed_minimum(Quantity::from_units(10), Quantity::from_units(9), min), "already low");
        assert!(!crossed_minimum(Quantity::from_units(9), Quantity::from_units(12), min), "upwards");
        assert!(!crossed_minimum(Quantity::from_units(20), Quantity::from_units(11), min), "still above");
    }

    #[test]
    fn colours_are_canonical() {
        assert_eq!(normalize_color("#ff8800").as_deref(), Some("FF8800"));
        assert_eq!(normalize_color("000000FF").as_deref(), Some("000000"));
        assert_eq!(normalize_color("#12345"), None);
        assert_eq!(normalize_color("GGGGGG"), None);
    }
}
