//! Membership plans.

use chrono::{DateTime, Utc};

use super::{json_column, to_json_text, with_pool, with_writer, Store, StoreError};
use crate::domain::billing::IncludedMinutes;
use crate::domain::members::{BillingPeriod, DEFAULT_PLANS};

#[derive(Debug, Clone, PartialEq)]
pub struct PlanRecord {
    pub id: String,
    pub makerspace_id: String,
    pub name: String,
    pub description: Option<String>,
    pub price: f64,
    pub billing_period: BillingPeriod,
    pub access_hours_per_day: Option<i64>,
    pub access_24_7: bool,
    pub features: Vec<String>,
    pub is_active: bool,
    /// The plan's fee in minor units of the space's currency: `price` as billing charges it.
    pub fee_minor: i64,
    /// Free minutes per kind of machine per period, used before money.
    pub included_minutes: Vec<IncludedMinutes>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A price in major units as whole minor units of `currency` (half away from zero).
pub fn fee_minor_of(price: f64, currency: &str) -> i64 {
    (price * 10_f64.powi(crate::domain::currency::minor_digits(currency) as i32)).round() as i64
}

impl PlanRecord {
    /// The five default plans for a new makerspace.
    pub fn defaults(makerspace_id: &str, currency: &str, now: DateTime<Utc>) -> Vec<PlanRecord> {
        DEFAULT_PLANS
            .iter()
            .map(|p| PlanRecord {
                id: crate::domain::ids::new_id(),
                makerspace_id: makerspace_id.to_string(),
                name: p.name.to_string(),
                description: Some(p.description.to_string()),
                price: p.price,
                billing_period: p.period,
                access_hours_per_day: p.access_hours_per_day.map(i64::from),
                access_24_7: p.access_24_7,
                features: p.features.iter().map(|f| f.to_string()).collect(),
                is_active: true,
                fee_minor: fee_minor_of(p.price, currency),
                included_minutes: Vec::new(),
                created_at: now,
                updated_at: now,
            })
            .collect()
    }
}

#[derive(sqlx::FromRow)]
struct PlanRow {
    id: String,
    makerspace_id: String,
    name: String,
    description: Option<String>,
    price: f64,
    billing_period: String,
    access_hours_per_day: Option<i64>,
    access_24_7: bool,
    features: String,
    is_active: bool,
    fee_minor: i64,
    included_minutes: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    member_count: i64,
}

const SELECT: &str = "SELECT p.id, p.makerspace_id, p.name, p.description, p.price, p.billing_period, \
     p.access_hours_per_day, p.access_24_7, p.features, p.is_active, p.fee_minor, p.included_minutes, \
     p.created_at, p.updated_at, \
     (SELECT COUNT(*) FROM members m WHERE m.plan_id = p.id AND m.deleted_at IS NULL) AS member_count \
     FROM membership_plans p";

fn from_row(r: PlanRow) -> Result<(PlanRecord, i64), StoreError> {
    Ok((
        PlanRecord {
            billing_period: BillingPeriod::parse(&r.billing_period).ok_or_else(|| {
                StoreError::Corrupt(format!("membership_plans.billing_period {:?}", r.billing_period))
            })?,
            features: json_column("membership_plans.features", &r.features)?,
            included_minutes: json_column("membership_plans.included_minutes", &r.included_minutes)?,
            fee_minor: r.fee_minor,
            id: r.id,
            makerspace_id: r.makerspace_id,
            name: r.name,
            description: r.description,
            price: r.price,
            access_hours_per_day: r.access_hours_per_day,
            access_24_7: r.access_24_7,
            is_active: r.is_active,
            created_at: r.created_at,
            updated_at: r.updated_at,
        },
        r.member_count,
    ))
}

/// Inserts a plan with whatever executor it is given (a pool or a transaction).
macro_rules! insert_plan {
    ($executor:expr, $plan:expr) => {{
        let p: &$crate::store::plans::PlanRecord = $plan;
        sqlx::query(
            "INSERT INTO membership_plans (id, makerspace_id, name, description, price, billing_period,
             access_hours_per_day, access_24_7, features, is_active, created_at, updated_at, fee_minor, included_minutes)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(&p.id)
        .bind(&p.makerspace_id)
        .bind(&p.name)
        .bind(&p.description)
        .bind(p.price)
        .bind(p.billing_period.as_str())
        .bind(p.access_hours_per_day)
        .bind(p.access_24_7)
        .bind($crate::store::to_json_text(&p.features))
        .bind(p.is_active)
        .bind(p.created_at)
        .bind(p.updated_at)
        .bind(p.fee_minor)
        .bind($crate::store::to_json_text(&p.included_minutes))
        .execute($executor)
        .await
        .map_err(StoreError::from_write)?;
    }};
}
pub(crate) use insert_plan;

impl Store {
    pub async fn insert_plan(&self, plan: &PlanRecord) -> Result<(), StoreError> {
        with_writer!(self, pool => insert_plan!(pool, plan));
        Ok(())
    }

    /// A plan of a makerspace with the number of live members on it.
    pub async fn get_plan(&self, makerspace_id: &str, id: &str) -> Result<Option<(PlanRecord, i64)>, StoreError> {
        let sql = format!("{SELECT} WHERE p.makerspace_id = $1 AND p.id = $2");
        let row: Option<PlanRow> = with_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(makerspace_id).bind(id).fetch_optional(pool).await?
        });
        row.map(from_row).transpose()
    }

    pub async fn list_plans(&self, makerspace_id: &str) -> Result<Vec<(PlanRecord, i64)>, StoreError> {
        let sql = format!("{SELECT} WHERE p.makerspace_id = $1 ORDER BY p.price, p.name");
        let rows: Vec<PlanRow> = with_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(makerspace_id).fetch_all(pool).await?
        });
        rows.into_iter().map(from_row).collect()
    }

    pub async fn update_plan(&self, p: &PlanRecord) -> Result<bool, StoreError> {
        let features = to_json_text(&p.features);
        let affected = with_writer!(self, pool => {
            sqlx::query(
                "UPDATE membership_plans SET name = $2, description = $3, price = $4, billing_period = $5,
                 access_hours_per_day = $6, access_24_7 = $7, features = $8, is_active = $9, updated_at = $10,
                 fee_minor = $11, included_minutes = $12
                 WHERE id = $1",
            )
            .bind(&p.id).bind(&p.name).bind(&p.description).bind(p.price).bind(p.billing_period.as_str())
            .bind(p.access_hours_per_day).bind(p.access_24_7).bind(&features).bind(p.is_active).bind(p.updated_at)
            .bind(p.fee_minor).bind(to_json_text(&p.included_minutes))
            .execute(pool)
            .await
            .map_err(StoreError::from_write)?
            .rows_affected()
        });
        Ok(affected > 0)
    }

    /// Deletes a plan nobody is on (members, deleted ones included, or pending invitations):
    /// `InUse` otherwise, and nothing changes.
    pub async fn delete_plan(&self, makerspace_id: &str, id: &str) -> Result<bool, StoreError> {
        let outcome = with_writer!(self, pool => {
            let mut tx = pool.begin().await?;
            let users: (i64,) = sqlx::query_as(
                "SELECT (SELECT COUNT(*) FROM members WHERE plan_id = $1)
                      + (SELECT COUNT(*) FROM member_invites WHERE plan_id = $1)",
            )
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
            if users.0 > 0 {
                Err(StoreError::InUse)
            } else {
                let affected = sqlx::query("DELETE FROM membership_plans WHERE makerspace_id = $1 AND id = $2")
                    .bind(makerspace_id)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                tx.commit().await?;
                Ok(affected > 0)
            }
        });
        outcome
    }
}
