//! A membership plan's included credits: free minutes per kind of machine per period, used
//! before money (as Fab-manager's plan credits are).

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::equipment::EquipmentType;
use crate::domain::members::BillingPeriod;
use crate::domain::validate::Invalid;

/// The most free minutes one line may give: a year of minutes.
pub const MAX_INCLUDED_MINUTES: i64 = 366 * 24 * 60;

/// Free minutes on one kind of machine, per period of the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IncludedMinutes {
    pub equipment_type: EquipmentType,
    #[schema(minimum = 0, maximum = 527040)]
    #[serde(deserialize_with = "crate::domain::validate::required_whole_number")]
    pub minutes: i64,
}

/// Checks a plan's lines: each kind of machine once, minutes in range.
pub fn check_included(lines: &[IncludedMinutes]) -> Result<(), Invalid> {
    for (i, line) in lines.iter().enumerate() {
        if !(0..=MAX_INCLUDED_MINUTES).contains(&line.minutes) {
            return Err(Invalid::new(format!("included_minutes[{i}].minutes is 0 to {MAX_INCLUDED_MINUTES}")));
        }
        if lines[..i].iter().any(|l| l.equipment_type == line.equipment_type) {
            return Err(Invalid::new(format!("included_minutes lists {} twice", line.equipment_type.as_str())));
        }
    }
    Ok(())
}

/// The start of a day, UTC.
pub fn midnight(date: NaiveDate) -> DateTime<Utc> {
    Utc.from_utc_datetime(&date.and_hms_opt(0, 0, 0).expect("midnight exists"))
}

/// The period of a plan that holds `at` (UTC calendar periods: the day, the ISO week, the
/// month, the quarter, the year), as `[start, end)`. A one-time plan's credits are for the
/// whole membership: its period is all time.
pub fn credit_period(period: BillingPeriod, at: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    let day = at.date_naive();
    let first_of = |year: i32, month: u32| NaiveDate::from_ymd_opt(year, month, 1).expect("the first of a month");
    let (start, end) = match period {
        BillingPeriod::Daily => (day, day + Duration::days(1)),
        BillingPeriod::Weekly => {
            let monday = day - Duration::days(i64::from(day.weekday().num_days_from_monday()));
            (monday, monday + Duration::days(7))
        }
        BillingPeriod::Monthly => {
            let start = first_of(day.year(), day.month());
            let end =
                if day.month() == 12 { first_of(day.year() + 1, 1) } else { first_of(day.year(), day.month() + 1) };
            (start, end)
        }
        BillingPeriod::Quarterly => {
            let month = (day.month() - 1) / 3 * 3 + 1;
            let start = first_of(day.year(), month);
            let end = if month == 10 { first_of(day.year() + 1, 1) } else { first_of(day.year(), month + 3) };
            (start, end)
        }
        BillingPeriod::Yearly => (first_of(day.year(), 1), first_of(day.year() + 1, 1)),
        BillingPeriod::OneTime => return (DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC),
    };
    (midnight(start), midnight(end))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn calendar_periods_hold_their_instant() {
        let (s, e) = credit_period(BillingPeriod::Monthly, at("2026-12-15T10:00:00Z"));
        assert_eq!((s, e), (at("2026-12-01T00:00:00Z"), at("2027-01-01T00:00:00Z")));
        let (s, e) = credit_period(BillingPeriod::Yearly, at("2026-03-01T00:00:00Z"));
        assert_eq!((s, e), (at("2026-01-01T00:00:00Z"), at("2027-01-01T00:00:00Z")));
        let (s, e) = credit_period(BillingPeriod::Weekly, at("2026-12-03T23:59:00Z"));
        assert_eq!((s, e), (at("2026-11-30T00:00:00Z"), at("2026-12-07T00:00:00Z")));
        let (s, e) = credit_period(BillingPeriod::Quarterly, at("2026-11-03T00:00:00Z"));
        assert_eq!((s, e), (at("2026-10-01T00:00:00Z"), at("2027-01-01T00:00:00Z")));
    }

    #[test]
    fn a_kind_of_machine_is_listed_once() {
        let line = IncludedMinutes { equipment_type: EquipmentType::LaserCutter, minutes: 60 };
        assert!(check_included(std::slice::from_ref(&line)).is_ok());
        assert!(check_included(&[line.clone(), line]).is_err());
    }
}
