//! The monthly run's reads and its log: members on a plan, members with open charges in a
//! month, and the months each space's run completed.

use chrono::{DateTime, NaiveDate, Utc};

use super::{with_pool, with_writer, Store, StoreError};

/// A membership on a plan, as the run reads it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct PlanMembership {
    pub member_id: String,
    pub plan_id: String,
    pub status: String,
    pub start_date: NaiveDate,
    pub end_date: Option<NaiveDate>,
}

impl Store {
    /// The space's members (not deleted) that have a plan.
    pub async fn plan_memberships(&self, space: &str) -> Result<Vec<PlanMembership>, StoreError> {
        with_pool!(self, pool => Ok(sqlx::query_as(
            "SELECT id AS member_id, plan_id, status, start_date, end_date FROM members
             WHERE makerspace_id = $1 AND plan_id IS NOT NULL AND deleted_at IS NULL ORDER BY id",
        )
        .bind(space).fetch_all(pool).await?))
    }

    /// Members with open charges used in `[from, to)`.
    pub async fn members_with_open_charges(
        &self,
        space: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError> {
        let rows: Vec<(String,)> = with_pool!(self, pool => sqlx::query_as(
            "SELECT DISTINCT member_id FROM billing_charges
             WHERE makerspace_id = $1 AND status = 'open' AND usage_at >= $2 AND usage_at < $3 ORDER BY member_id",
        )
        .bind(space).bind(from).bind(to).fetch_all(pool).await?);
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    /// Spaces whose monthly run is on and has not completed `month` yet.
    pub async fn spaces_due_a_run(&self, month: NaiveDate) -> Result<Vec<String>, StoreError> {
        let rows: Vec<(String,)> = with_pool!(self, pool => sqlx::query_as(
            "SELECT s.makerspace_id FROM billing_settings s WHERE s.monthly_run = TRUE AND NOT EXISTS
             (SELECT 1 FROM billing_runs r WHERE r.makerspace_id = s.makerspace_id AND r.month = $1)
             ORDER BY s.makerspace_id",
        )
        .bind(month.format("%Y-%m-%d").to_string()).fetch_all(pool).await?);
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    /// Notes that a space's run of `month` completed (the first completion is kept).
    pub async fn record_run(
        &self,
        space: &str,
        month: NaiveDate,
        plan_fees: i64,
        invoices: i64,
        by: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        with_writer!(self, pool => {
            sqlx::query(
                "INSERT INTO billing_runs (makerspace_id, month, plan_fees, invoices, ran_by, ran_at)
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            )
            .bind(space).bind(month.format("%Y-%m-%d").to_string()).bind(plan_fees).bind(invoices).bind(by).bind(at)
            .execute(pool)
            .await?;
        });
        Ok(())
    }
}
