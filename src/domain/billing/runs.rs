//! The monthly run's calendar: which plan periods start in a month (each is one fee), and
//! which month a run on a given day is for.

use chrono::{Datelike, Duration, NaiveDate};

use crate::domain::members::BillingPeriod;

/// The first day of `day`'s month.
pub fn month_of(day: NaiveDate) -> NaiveDate {
    day.with_day(1).unwrap_or(day)
}

/// The first day of the month after `month`.
pub fn next_month(month: NaiveDate) -> NaiveDate {
    let (year, m) = if month.month() == 12 { (month.year() + 1, 1) } else { (month.year(), month.month() + 1) };
    NaiveDate::from_ymd_opt(year, m, 1).unwrap_or(month)
}

/// The month the automatic run on `today` bills: the one before.
pub fn month_before(today: NaiveDate) -> NaiveDate {
    month_of(month_of(today) - Duration::days(1))
}

/// `YYYY-MM` read as its first day.
pub fn parse_month(text: &str) -> Option<NaiveDate> {
    let (year, month) = text.split_once('-')?;
    if year.len() != 4 || month.len() != 2 {
        return None;
    }
    NaiveDate::from_ymd_opt(year.parse().ok()?, month.parse().ok()?, 1)
}

/// The starts of a plan's calendar periods that fall in `month` (the periods of
/// `crate::domain::billing::credit_period`): every day, every Monday, the month, a quarter's
/// first month, January. A one-time plan has none here: its single fee is the run's to make
/// once, whatever the month.
pub fn period_starts(period: BillingPeriod, month: NaiveDate) -> Vec<NaiveDate> {
    let end = next_month(month);
    let days = month.iter_days().take_while(|d| *d < end);
    match period {
        BillingPeriod::Daily => days.collect(),
        BillingPeriod::Weekly => days.filter(|d| d.weekday() == chrono::Weekday::Mon).collect(),
        BillingPeriod::Monthly => vec![month],
        BillingPeriod::Quarterly if (month.month() - 1) % 3 == 0 => vec![month],
        BillingPeriod::Yearly if month.month() == 1 => vec![month],
        BillingPeriod::Quarterly | BillingPeriod::Yearly | BillingPeriod::OneTime => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> NaiveDate {
        text.parse().unwrap()
    }

    #[test]
    fn each_period_starts_where_its_credit_period_does() {
        let nov = day("2026-11-01");
        assert_eq!(period_starts(BillingPeriod::Monthly, nov), vec![nov]);
        assert_eq!(period_starts(BillingPeriod::Daily, nov).len(), 30);
        let mondays = period_starts(BillingPeriod::Weekly, nov);
        assert_eq!(mondays, ["2026-11-02", "2026-11-09", "2026-11-16", "2026-11-23", "2026-11-30"].map(day).to_vec());
        assert!(period_starts(BillingPeriod::Quarterly, nov).is_empty());
        assert_eq!(period_starts(BillingPeriod::Quarterly, day("2026-10-01")), vec![day("2026-10-01")]);
        assert_eq!(period_starts(BillingPeriod::Yearly, day("2027-01-01")), vec![day("2027-01-01")]);
        assert!(period_starts(BillingPeriod::OneTime, nov).is_empty());
        for start in period_starts(BillingPeriod::Weekly, nov) {
            let at = chrono::TimeZone::from_utc_datetime(&chrono::Utc, &start.and_hms_opt(12, 0, 0).unwrap());
            assert_eq!(crate::domain::billing::credit_period(BillingPeriod::Weekly, at).0.date_naive(), start);
        }
    }

    #[test]
    fn months_and_the_month_before() {
        assert_eq!(month_before(day("2027-01-01")), day("2026-12-01"));
        assert_eq!(month_before(day("2026-12-15")), day("2026-11-01"));
        assert_eq!(next_month(day("2026-12-01")), day("2027-01-01"));
        assert_eq!(parse_month("2026-11"), Some(day("2026-11-01")));
        for bad in ["2026-13", "26-11", "2026-1", "2026/11", "", "2026-11-01"] {
            assert_eq!(parse_month(bad), None, "{bad}");
        }
    }
}
