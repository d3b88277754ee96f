//! A machine's price and the charge of one session of it.
//!
//! Money rules (DESIGN.md, "Materials and money"): rates are decimals in the currency's major
//! unit per hour; the session's time is first rounded to its billing unit (whole minutes),
//! split into busy and idle minutes, the plan's included minutes are taken off (busy minutes
//! first: they are the dearer ones when a busy rate is set), and what is left is priced
//! exactly in decimals, the flat fee added, and rounded **once** to whole minor units, half
//! away from zero. The minimum charge then applies, unless included minutes covered the
//! whole session (a member does not pay a minimum for time their plan already paid for).
//! Tax is computed once, on that rounded net amount ([`with_tax`]).

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::currency::minor_digits;
use crate::domain::pricing::Rate;
use crate::domain::validate::Invalid;

/// The largest rate per hour a machine may have, in major units.
pub const MAX_RATE_PER_HOUR: i64 = 100_000;
/// The largest minimum charge or flat fee, in minor units.
pub const MAX_FEE_MINOR: i64 = 100_000_000;

/// How a session's time is rounded before it is priced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BillingUnit {
    /// Every started minute counts as a minute.
    #[default]
    Minute,
    /// Every started quarter of an hour counts as 15 minutes.
    #[serde(rename = "started_15_minutes")]
    Started15Minutes,
}

impl BillingUnit {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Minute => "minute",
            Self::Started15Minutes => "started_15_minutes",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Minute, Self::Started15Minutes].into_iter().find(|u| u.as_str() == text)
    }

    /// Minutes in one unit.
    pub fn minutes(self) -> i64 {
        match self {
            Self::Minute => 1,
            Self::Started15Minutes => 15,
        }
    }

    /// The minutes billed for `seconds` of use: every started unit counts whole.
    pub fn billed_minutes(self, seconds: i64) -> i64 {
        let unit_s = self.minutes() * 60;
        (seconds.max(0) + unit_s - 1) / unit_s * self.minutes()
    }
}

/// What one machine costs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MachinePrice {
    /// Per hour, in the currency's major unit (`12.5`), at most 6 decimals.
    #[schema(value_type = f64, minimum = 0, maximum = 100000, multiple_of = 0.000001)]
    pub rate_per_hour: Rate,
    #[serde(default)]
    pub billing_unit: BillingUnit,
    /// The least a session is charged, in minor units.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 100_000_000)]
    #[serde(deserialize_with = "crate::domain::validate::required_whole_number")]
    pub minimum_minor: i64,
    /// Per hour of busy time (the machine running, from its plug or printer); null: the rate.
    #[serde(default)]
    #[schema(value_type = Option<f64>, minimum = 0, maximum = 100000, multiple_of = 0.000001)]
    pub busy_rate_per_hour: Option<Rate>,
    /// Per hour of idle time (unlocked but not running); null: the rate.
    #[serde(default)]
    #[schema(value_type = Option<f64>, minimum = 0, maximum = 100000, multiple_of = 0.000001)]
    pub idle_rate_per_hour: Option<Rate>,
    /// Added to every session, in minor units.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 100_000_000)]
    #[serde(deserialize_with = "crate::domain::validate::required_whole_number")]
    pub flat_fee_minor: i64,
    /// One of the space's tax rates; null: no tax.
    #[serde(default)]
    #[schema(max_length = 64, pattern = r"^[a-z0-9][a-z0-9-]{0,63}$")]
    pub tax_rate_id: Option<String>,
}

impl MachinePrice {
    /// A price of `rate_per_hour` and nothing else: what a machine priced before billing
    /// existed (its `hourly_rate`) is charged.
    pub fn hourly(rate_per_hour: Rate) -> MachinePrice {
        MachinePrice {
            rate_per_hour,
            billing_unit: BillingUnit::Minute,
            minimum_minor: 0,
            busy_rate_per_hour: None,
            idle_rate_per_hour: None,
            flat_fee_minor: 0,
            tax_rate_id: None,
        }
    }

    pub fn check(&self) -> Result<(), Invalid> {
        let max = Decimal::from(MAX_RATE_PER_HOUR);
        for (field, rate) in [
            ("rate_per_hour", Some(self.rate_per_hour)),
            ("busy_rate_per_hour", self.busy_rate_per_hour),
            ("idle_rate_per_hour", self.idle_rate_per_hour),
        ] {
            if let Some(rate) = rate {
                if rate.value() < Decimal::ZERO || rate.value() > max {
                    return Err(Invalid::new(format!("{field} is 0 to {MAX_RATE_PER_HOUR}")));
                }
            }
        }
        for (field, fee) in [("minimum_minor", self.minimum_minor), ("flat_fee_minor", self.flat_fee_minor)] {
            if !(0..=MAX_FEE_MINOR).contains(&fee) {
                return Err(Invalid::new(format!("{field} is 0 to {MAX_FEE_MINOR}")));
            }
        }
        Ok(())
    }
}

/// What a session used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionUse {
    /// From unlock to lock.
    pub seconds: i64,
    /// Of those, the machine was running.
    pub busy_seconds: i64,
    /// The plan's free minutes for this kind of machine still unused in the period.
    pub included_available: i64,
}

/// The charge of a session, before tax: its figures and how they were rounded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SessionCharge {
    pub billing_unit: BillingUnit,
    /// The session's length, in seconds, as measured.
    pub seconds: i64,
    /// The minutes billed: the length rounded up to the billing unit.
    pub billed_minutes: i64,
    /// Of the billed minutes, busy and idle (busy rounded up to the minute, never more than
    /// the billed minutes; the rounding of the total falls on idle time).
    pub busy_minutes: i64,
    pub idle_minutes: i64,
    /// Minutes the plan's included credits paid for.
    pub included_minutes: i64,
    /// What was priced, in minor units, before rounding (a decimal, as text).
    pub exact_minor: String,
    /// True when the minimum charge raised the amount.
    pub minimum_applied: bool,
    /// The net amount, in minor units: rounded once, half away from zero.
    pub net_minor: i64,
    /// The rule in words, as written on the charge.
    pub rule: String,
}

/// Why a charge cannot be computed: amounts out of any sensible range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the amount of this charge is too large to compute")]
pub struct TooLarge;

/// Half away from zero, to whole minor units.
fn round_minor(value: Decimal) -> Result<i64, TooLarge> {
    i64::try_from(value.round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero)).map_err(|_| TooLarge)
}

/// The charge of one session of a machine priced `price`, in `currency`.
pub fn session_charge(price: &MachinePrice, currency: &str, used: SessionUse) -> Result<SessionCharge, TooLarge> {
    let unit = price.billing_unit;
    let billed = unit.billed_minutes(used.seconds);
    let busy = BillingUnit::Minute.billed_minutes(used.busy_seconds.clamp(0, used.seconds.max(0))).min(billed);
    let idle = billed - busy;
    let included = used.included_available.clamp(0, billed);
    let free_busy = included.min(busy);
    let (paid_busy, paid_idle) = (busy - free_busy, idle - (included - free_busy));
    let busy_rate = price.busy_rate_per_hour.unwrap_or(price.rate_per_hour).value();
    let idle_rate = price.idle_rate_per_hour.unwrap_or(price.rate_per_hour).value();
    let scale = Decimal::from(10_i64.pow(minor_digits(currency)));
    // Every multiplication before the one division.
    let time = Decimal::from(paid_busy)
        .checked_mul(busy_rate)
        .and_then(|b| Decimal::from(paid_idle).checked_mul(idle_rate).and_then(|i| b.checked_add(i)))
        .and_then(|sum| sum.checked_mul(scale))
        .ok_or(TooLarge)?
        / Decimal::from(60);
    let exact = time + Decimal::from(price.flat_fee_minor);
    let rounded = round_minor(exact)?;
    let covered = billed > 0 && included == billed;
    let minimum_applied = !covered && rounded < price.minimum_minor;
    let net_minor = if minimum_applied { price.minimum_minor } else { rounded };
    let rule = format!(
        "{} s billed as {billed} min ({}); {busy} busy min at {} and {idle} idle min at {} per hour; \
         {included} min included in the plan; flat fee {}; rounded once, half away from zero{}",
        used.seconds.max(0),
        match unit {
            BillingUnit::Minute => "per started minute",
            BillingUnit::Started15Minutes => "per started 15 minutes",
        },
        busy_rate.normalize(),
        idle_rate.normalize(),
        price.flat_fee_minor,
        if minimum_applied { format!("; raised to the minimum charge {}", price.minimum_minor) } else { String::new() },
    );
    Ok(SessionCharge {
        billing_unit: unit,
        seconds: used.seconds.max(0),
        billed_minutes: billed,
        busy_minutes: busy,
        idle_minutes: idle,
        included_minutes: included,
        exact_minor: exact.normalize().to_string(),
        minimum_applied,
        net_minor,
        rule,
    })
}

/// The tax on a net amount at `percent`, rounded once (half away from zero).
pub fn with_tax(net_minor: i64, percent: Option<Rate>) -> Result<i64, TooLarge> {
    match percent {
        None => Ok(0),
        Some(p) => {
            let tax = Decimal::from(net_minor).checked_mul(p.value()).ok_or(TooLarge)? / Decimal::ONE_HUNDRED;
            round_minor(tax)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn price(rate: &str, unit: BillingUnit, minimum: i64) -> MachinePrice {
        MachinePrice { billing_unit: unit, minimum_minor: minimum, ..MachinePrice::hourly(Rate::parse(rate).unwrap()) }
    }

    fn used(seconds: i64, busy_seconds: i64, included: i64) -> SessionUse {
        SessionUse { seconds, busy_seconds, included_available: included }
    }

    #[test]
    fn started_units_count_whole() {
        assert_eq!(BillingUnit::Minute.billed_minutes(0), 0);
        assert_eq!(BillingUnit::Minute.billed_minutes(1), 1);
        assert_eq!(BillingUnit::Minute.billed_minutes(60), 1);
        assert_eq!(BillingUnit::Minute.billed_minutes(61), 2);
        assert_eq!(BillingUnit::Started15Minutes.billed_minutes(1), 15);
        assert_eq!(BillingUnit::Started15Minutes.billed_minutes(900), 15);
        assert_eq!(BillingUnit::Started15Minutes.billed_minutes(901), 30);
    }

    #[test]
    fn a_session_is_priced_once_and_rounded_once() {
        // 12.5 an hour for 7 minutes: 145.8333... cents, rounded once to 146.
        let c = session_charge(&price("12.5", BillingUnit::Minute, 0), "EUR", used(400, 0, 0)).unwrap();
        assert_eq!((c.billed_minutes, c.net_minor, c.exact_minor.as_str()), (7, 146, "145.83333333333333333333333333"));
        // The same in quarters: 15 minutes, 312.5 -> 313.
        let c = session_charge(&price("12.5", BillingUnit::Started15Minutes, 0), "EUR", used(400, 0, 0)).unwrap();
        assert_eq!((c.billed_minutes, c.net_minor), (15, 313));
        assert!(c.rule.contains("per started 15 minutes"), "{}", c.rule);
        // Yen have no minor unit: 600 an hour for 10 minutes is 100.
        let c = session_charge(&price("600", BillingUnit::Minute, 0), "JPY", used(600, 0, 0)).unwrap();
        assert_eq!(c.net_minor, 100);
    }

    #[test]
    fn busy_and_idle_rates_and_the_flat_fee() {
        let p = MachinePrice {
            busy_rate_per_hour: Some(Rate::parse("60").unwrap()),
            idle_rate_per_hour: Some(Rate::parse("6").unwrap()),
            flat_fee_minor: 50,
            ..price("30", BillingUnit::Minute, 0)
        };
        // 20 minutes, 5 of them busy: 5 at 1.00 + 15 at 0.10 + 0.50 = 7.00.
        let c = session_charge(&p, "EUR", used(1200, 300, 0)).unwrap();
        assert_eq!((c.busy_minutes, c.idle_minutes, c.net_minor), (5, 15, 700));
    }

    #[test]
    fn included_minutes_come_first_and_waive_the_minimum_when_they_cover_all() {
        let p = price("60", BillingUnit::Minute, 500);
        let c = session_charge(&p, "EUR", used(600, 0, 4)).unwrap();
        assert_eq!((c.included_minutes, c.net_minor, c.minimum_applied), (4, 600, false));
        let c = session_charge(&p, "EUR", used(600, 0, 100)).unwrap();
        assert_eq!((c.included_minutes, c.net_minor, c.minimum_applied), (10, 0, false));
        let c = session_charge(&p, "EUR", used(60, 0, 0)).unwrap();
        assert_eq!((c.net_minor, c.minimum_applied), (500, true));
    }

    #[test]
    fn tax_is_rounded_once_on_the_net() {
        assert_eq!(with_tax(146, Some(Rate::parse("20").unwrap())), Ok(29));
        assert_eq!(with_tax(125, Some(Rate::parse("5.5").unwrap())), Ok(7));
        assert_eq!(with_tax(125, None), Ok(0));
    }

    fn any_price() -> impl Strategy<Value = MachinePrice> {
        (0_i64..100_000_000, 0_u32..3, 0_i64..5000, proptest::option::of(0_i64..100_000_000), 0_i64..500).prop_map(
            |(rate, unit, minimum, busy, fee)| MachinePrice {
                rate_per_hour: Rate::new(rate, 3).unwrap(),
                billing_unit: if unit == 0 { BillingUnit::Minute } else { BillingUnit::Started15Minutes },
                minimum_minor: minimum,
                busy_rate_per_hour: busy.map(|b| Rate::new(b, 3).unwrap()),
                idle_rate_per_hour: None,
                flat_fee_minor: fee,
                tax_rate_id: None,
            },
        )
    }

    proptest! {
        #[test]
        fn never_below_the_minimum_without_credits(p in any_price(), seconds in 0_i64..400_000, busy in 0_i64..400_000) {
            let c = session_charge(&p, "EUR", used(seconds, busy, 0)).unwrap();
            prop_assert!(c.net_minor >= p.minimum_minor);
        }

        #[test]
        fn monotonic_in_minutes(p in any_price(), seconds in 0_i64..400_000, more in 0_i64..10_000, busy in 0_i64..400_000) {
            let busy = busy.min(seconds);
            let shorter = session_charge(&p, "EUR", used(seconds, busy, 0)).unwrap();
            let longer = session_charge(&p, "EUR", used(seconds + more, busy, 0)).unwrap();
            prop_assert!(longer.net_minor >= shorter.net_minor);
        }

        #[test]
        fn busy_and_idle_add_up(p in any_price(), seconds in 0_i64..400_000, busy in 0_i64..800_000, credits in 0_i64..10_000) {
            let c = session_charge(&p, "EUR", used(seconds, busy, credits)).unwrap();
            prop_assert_eq!(c.busy_minutes + c.idle_minutes, c.billed_minutes);
            prop_assert!(c.billed_minutes * 60 >= c.seconds);
            prop_assert!(c.included_minutes <= c.billed_minutes);
            prop_assert!(c.busy_minutes * 60 >= busy.min(seconds) || c.busy_minutes == c.billed_minutes);
        }

        #[test]
        fn credits_never_raise_a_charge(p in any_price(), seconds in 0_i64..400_000, credits in 0_i64..10_000) {
            let without = session_charge(&p, "EUR", used(seconds, 0, 0)).unwrap();
            let with = session_charge(&p, "EUR", used(seconds, 0, credits)).unwrap();
            prop_assert!(with.net_minor <= without.net_minor);
        }
    }
}
