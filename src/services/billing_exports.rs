//! Billing's exports (issue 14): a period's accounting journal (double entry, from finalized
//! documents and payments, with the space's accounts) and its revenue by month, machine or
//! material. For those who read the space's money: its admins and the platform's readers.
//! The rules are `crate::domain::billing::{journal, revenue}`; the reads
//! `crate::store::billing_exports`.

use chrono::{Datelike, Months, NaiveDate, Utc};

use crate::domain::access::Principal;
use crate::domain::billing::journal::{journal as journal_rows, JournalRow, Period};
use crate::domain::billing::revenue::{revenue as group_revenue, RevenueBy, RevenueRow};
use crate::domain::billing::BillingSettings;
use crate::domain::validate::Invalid;

use super::access::space_for;
use super::billing::BillingError;
use super::Services;

/// A period's journal and the settings it was written with (its columns and currency).
#[derive(Debug)]
pub struct JournalExport {
    pub period: Period,
    pub settings: BillingSettings,
    pub rows: Vec<JournalRow>,
}

/// A period's revenue in the space's currency.
#[derive(Debug)]
pub struct RevenueReport {
    pub period: Period,
    pub currency: String,
    pub rows: Vec<RevenueRow>,
}

/// The period a query names; without bounds, the current month (UTC): `from` its first day,
/// `to` the next month's.
fn period_of(from: Option<&str>, to: Option<&str>) -> Result<Period, Invalid> {
    let today = Utc::now().date_naive();
    let first = NaiveDate::from_ymd_opt(today.year(), today.month(), 1).expect("the first of a month exists");
    let next = first.checked_add_months(Months::new(1)).expect("next month exists");
    let from = from.map(str::to_string).unwrap_or_else(|| first.to_string());
    let to = to.map(str::to_string).unwrap_or_else(|| next.to_string());
    Period::parse(&from, &to)
}

/// The accounting journal of `[from, to)`.
pub async fn journal(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
    from: Option<&str>,
    to: Option<&str>,
) -> Result<JournalExport, BillingError> {
    space_for(svc, caller.can_read_members(space_id), space_id).await?;
    let period = period_of(from, to)?;
    let settings = svc.store.billing_settings(space_id).await?.ok_or(BillingError::NotFound("makerspace"))?;
    let documents = svc.store.journal_documents(space_id, &period).await?;
    let payments = svc.store.journal_payments(space_id, &period).await?;
    let rows = journal_rows(&period, &documents, &payments, &settings.accounting);
    Ok(JournalExport { period, settings, rows })
}

/// Revenue of `[from, to)`: finalized invoices less credit notes, grouped `by`.
pub async fn revenue(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
    from: Option<&str>,
    to: Option<&str>,
    by: RevenueBy,
) -> Result<RevenueReport, BillingError> {
    let space = space_for(svc, caller.can_read_members(space_id), space_id).await?;
    let period = period_of(from, to)?;
    let lines = svc.store.revenue_lines(space_id, &period, &space.currency).await?;
    Ok(RevenueReport { period, currency: space.currency, rows: group_revenue(&lines, by) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_bounds_the_period_is_this_month() {
        let p = period_of(None, None).unwrap();
        assert!(p.contains(Utc::now()));
        assert_eq!((p.from.day(), p.to.day()), (1, 1));
        assert!(period_of(Some("nonsense"), None).is_err());
    }
}
