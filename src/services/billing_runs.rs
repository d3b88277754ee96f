//! The monthly run (issue 14): for one makerspace and one calendar month (UTC), the plan
//! fees of the periods that start in the month become charges, then each member's open
//! charges used in the month become an invoice, finalized. Admins start it for a month
//! (`POST .../billing/runs`); with `monthly_run` on in the billing settings, the sweeper runs
//! the month before on the first days of each month.
//!
//! Every step is keyed by the month: a plan fee's source names the member, the plan and the
//! period; a draft and its finalization have idempotency keys named after the month and the
//! member. A run repeated (by an admin, after a crash, or by the automatic run) makes nothing
//! twice. A charge that arrives after its month's run (a session ended at 23:59 and charged
//! a second later) stays open for the next invoice an admin makes.

use chrono::{DateTime, NaiveDate, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::access::Principal;
use crate::domain::billing::credits::midnight;
use crate::domain::billing::runs::{month_before, next_month, parse_month, period_starts};
use crate::domain::ids::new_id;
use crate::domain::members::{effective_status, BillingPeriod, MemberStatus};
use crate::domain::validate::Invalid;
use crate::store::billing_invoices::{DocWrite, NewDraft, Refusal};
use crate::store::billing_ledger::{ChargeRecord, IdemKey, Keyed};
use crate::store::billing_runs::PlanMembership;

use super::access::space_for;
use super::billing::BillingError;
use super::Services;

/// How often the sweeper looks for a month to run.
pub const LOOK_EVERY: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// `POST .../billing/runs`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    /// The calendar month (UTC) to bill, `YYYY-MM`; not one that has not ended.
    #[schema(pattern = r"^[0-9]{4}-(0[1-9]|1[0-2])$")]
    pub month: String,
}

/// What a run did.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RunReport {
    /// `YYYY-MM`.
    pub month: String,
    /// Plan fee charges made by this run (0 when an earlier run made them).
    pub plan_fees: usize,
    /// The invoices this run made and finalized (a run repeated finds every charge of the
    /// month invoiced already, and makes none).
    pub invoices: Vec<String>,
}

fn run_key(month: NaiveDate, step: &str, member: &str) -> IdemKey {
    IdemKey { key: format!("run:{}:{step}:{member}", month.format("%Y-%m")), request_hash: format!("run {step}") }
}

/// An admin's run of a month that has ended.
pub async fn run_for(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
    request: RunRequest,
) -> Result<RunReport, BillingError> {
    space_for(svc, caller.can_manage_space(space_id), space_id).await?;
    let month = parse_month(&request.month).ok_or_else(|| Invalid::new("month is YYYY-MM"))?;
    if next_month(month) > Utc::now().date_naive() {
        return Err(BillingError::Refused {
            error_type: "month_not_over",
            detail: format!("{} has not ended: its usage is not all in yet", request.month),
        });
    }
    run_month(svc, space_id, month, &caller.user_id).await
}

/// Runs every space's month before `now` that is due (monthly run on, not done yet).
pub async fn run_due(svc: &Services, now: DateTime<Utc>) -> Result<usize, BillingError> {
    let month = month_before(now.date_naive());
    let spaces = svc.store.spaces_due_a_run(month).await?;
    for space in &spaces {
        let report = run_month(svc, space, month, "billing-run").await?;
        tracing::info!(makerspace_id = %space, month = %report.month, plan_fees = report.plan_fees,
            invoices = report.invoices.len(), "monthly billing run done");
    }
    Ok(spaces.len())
}

/// Runs `month` for a space: plan fees, then invoices, finalized.
pub async fn run_month(
    svc: &Services,
    space_id: &str,
    month: NaiveDate,
    actor: &str,
) -> Result<RunReport, BillingError> {
    let settings = svc.store.billing_settings(space_id).await?.ok_or(BillingError::NotFound("makerspace"))?;
    let plan_fees = charge_plan_fees(svc, space_id, month, &settings.currency, actor).await?;
    let (from, to) = (midnight(month), midnight(next_month(month)));
    let mut invoices = Vec::new();
    for member_id in svc.store.members_with_open_charges(space_id, from, to).await? {
        let draft = NewDraft {
            id: new_id(),
            makerspace_id: space_id.to_string(),
            member_id: member_id.clone(),
            period_from: month,
            period_to: next_month(month).pred_opt().unwrap_or(month),
            from,
            to,
            currency: settings.currency.clone(),
            created_by: actor.to_string(),
            at: Utc::now().trunc_subsecs(6),
        };
        let invoice = match svc.store.create_invoice_draft(&draft, &run_key(month, "draft", &member_id)).await? {
            Keyed::Done(invoice) | Keyed::Replayed(invoice) => invoice,
            _ => return Err(BillingError::KeyReused),
        };
        let key = run_key(month, "finalize", &member_id);
        let at = Utc::now().trunc_subsecs(6);
        match svc.store.finalize_invoice(space_id, &invoice.id, &settings.invoice_number_pattern, &key, at).await? {
            DocWrite::Done(_) | DocWrite::Replayed(_) => invoices.push(invoice.id),
            // Emptied or finalized by an admin meanwhile: nothing for the run to do.
            DocWrite::Refused(Refusal::Empty | Refusal::NotDraft(_)) => {}
            DocWrite::Refused(refusal) => return Err(super::billing_invoices::refused(refusal)),
            DocWrite::KeyReused => return Err(BillingError::KeyReused),
        }
    }
    svc.store
        .record_run(space_id, month, plan_fees as i64, invoices.len() as i64, actor, Utc::now().trunc_subsecs(6))
        .await?;
    Ok(RunReport { month: month.format("%Y-%m").to_string(), plan_fees, invoices })
}

/// Whether a membership pays for a period starting on `day`: on the books that day, and not
/// suspended or cancelled now.
fn pays_on(m: &PlanMembership, day: NaiveDate) -> bool {
    let Some(status) = MemberStatus::parse(&m.status) else { return false };
    let on_the_books = m.start_date <= day && m.end_date.is_none_or(|end| end >= day);
    on_the_books && effective_status(status, m.end_date, day) == MemberStatus::Active
}

/// Makes the month's plan fee charges, once per member, plan and period: how many were new.
async fn charge_plan_fees(
    svc: &Services,
    space_id: &str,
    month: NaiveDate,
    currency: &str,
    actor: &str,
) -> Result<usize, BillingError> {
    let plans = svc.store.list_plans(space_id).await?;
    let mut made = 0;
    for membership in svc.store.plan_memberships(space_id).await? {
        let Some((plan, _)) = plans.iter().find(|(p, _)| p.id == membership.plan_id) else { continue };
        if plan.fee_minor <= 0 {
            continue;
        }
        let starts = match plan.billing_period {
            // A one-time fee is due once, in the first run after the membership starts.
            BillingPeriod::OneTime => vec![month.max(membership.start_date)],
            period => period_starts(period, month),
        };
        for start in starts.into_iter().filter(|day| *day < next_month(month) && pays_on(&membership, *day)) {
            let source = match plan.billing_period {
                BillingPeriod::OneTime => format!("plan:{}:{}:once", plan.id, membership.member_id),
                _ => format!("plan:{}:{}:{start}", plan.id, membership.member_id),
            };
            let now = Utc::now().trunc_subsecs(6);
            let charge = ChargeRecord {
                id: new_id(),
                makerspace_id: space_id.to_string(),
                member_id: membership.member_id.clone(),
                source: source.clone(),
                kind: "plan_fee".into(),
                description: format!("{} ({}, from {start})", plan.name, plan.billing_period.as_str()),
                equipment_id: None,
                equipment_type: None,
                usage_at: midnight(start),
                included_minutes: 0,
                detail: serde_json::json!({"plan_id": plan.id, "period": plan.billing_period.as_str(), "from": start})
                    .to_string(),
                rounding_rule: "the plan's fee in minor units, as set; no tax".into(),
                currency: currency.to_string(),
                net_minor: plan.fee_minor,
                tax_rate_id: None,
                tax_percent: None,
                tax_minor: 0,
                total_minor: plan.fee_minor,
                status: "open".into(),
                invoice_id: None,
                reason: None,
                created_by: actor.to_string(),
                created_at: now,
                paid_by_wallet_entry: None,
            };
            let outcome = svc
                .store
                .charge_usage_once(space_id, &membership.member_id, &source, None, None, |_| Ok(charge))
                .await?;
            if matches!(outcome, Keyed::Done(_)) {
                made += 1;
            }
        }
    }
    Ok(made)
}
