//! Low-stock alerts. An alert is written in the transaction of the stock row that took the
//! item's level down across its minimum ([`follow_minimum`], called by
//! `Store::change_stock`), so a crossing and its alert are one fact; the partial unique index
//! keeps at most one live alert per item whatever the concurrency.

use chrono::{DateTime, Utc};
use sqlx::QueryBuilder;

use super::inventory::decode;
use super::{with_pool, Store, StoreError};
use crate::domain::inventory::{Quantity, Unit};
use crate::domain::purchasing::AlertStatus;

#[derive(Debug, Clone, PartialEq)]
pub struct AlertRecord {
    pub id: String,
    pub makerspace_id: String,
    pub item_id: String,
    /// The stock log row that crossed the minimum.
    pub usage_id: i64,
    pub level_at_alert: Quantity,
    pub min_stock_level: Quantity,
    pub status: AlertStatus,
    pub purchase_order_id: Option<String>,
    pub raised_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
}

/// An alert with what a reader needs of its item.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertView {
    pub alert: AlertRecord,
    pub item_name: String,
    pub unit: Unit,
    pub current_stock: Quantity,
    pub reorder_quantity: Quantity,
}

#[derive(sqlx::FromRow)]
struct AlertRow {
    id: String,
    makerspace_id: String,
    item_id: String,
    usage_id: i64,
    level_at_alert: i64,
    min_stock_level: i64,
    status: String,
    purchase_order_id: Option<String>,
    raised_at: DateTime<Utc>,
    closed_at: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
struct AlertViewRow {
    #[sqlx(flatten)]
    alert: AlertRow,
    item_name: String,
    unit: String,
    current_stock: i64,
    reorder_quantity: i64,
}

impl TryFrom<AlertRow> for AlertRecord {
    type Error = StoreError;
    fn try_from(r: AlertRow) -> Result<Self, StoreError> {
        Ok(AlertRecord {
            status: decode("stock_alerts.status", &r.status)?,
            id: r.id,
            makerspace_id: r.makerspace_id,
            item_id: r.item_id,
            usage_id: r.usage_id,
            level_at_alert: Quantity(r.level_at_alert),
            min_stock_level: Quantity(r.min_stock_level),
            purchase_order_id: r.purchase_order_id,
            raised_at: r.raised_at,
            closed_at: r.closed_at,
        })
    }
}

impl TryFrom<AlertViewRow> for AlertView {
    type Error = StoreError;
    fn try_from(r: AlertViewRow) -> Result<Self, StoreError> {
        Ok(AlertView {
            unit: decode("inventory_items.unit", &r.unit)?,
            alert: r.alert.try_into()?,
            item_name: r.item_name,
            current_stock: Quantity(r.current_stock),
            reorder_quantity: Quantity(r.reorder_quantity),
        })
    }
}

const SELECT_VIEW: &str = "SELECT a.id, a.makerspace_id, a.item_id, a.usage_id, a.level_at_alert, a.min_stock_level, \
     a.status, a.purchase_order_id, a.raised_at, a.closed_at, i.name AS item_name, i.unit, i.current_stock, \
     i.reorder_quantity FROM stock_alerts a JOIN inventory_items i ON i.id = a.item_id";

/// Which alerts a listing shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertFilter {
    /// Open and ordered: the items that are low now.
    Live,
    Only(AlertStatus),
}

fn push_alert_filter<DB: sqlx::Database>(q: &mut QueryBuilder<DB>, makerspace_id: &str, filter: AlertFilter)
where
    for<'t> String: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    q.push(" WHERE a.makerspace_id = ").push_bind(makerspace_id.to_string());
    match filter {
        AlertFilter::Live => q.push(" AND a.status <> 'closed'"),
        AlertFilter::Only(status) => q.push(" AND a.status = ").push_bind(status.as_str().to_string()),
    };
}

/// Keeps an item's alerts in step with a stock row written in the same transaction (a macro:
/// the executor's type differs per database): a row that takes the level down across the
/// minimum raises an alert, unless one is live already; a row that adds stock and leaves the
/// level above the minimum closes the live one. Gives the alert raised, if any.
macro_rules! follow_minimum {
    ($tx:expr, $usage:expr, $before:expr, $min:expr) => {{
        let usage: &$crate::store::inventory::UsageRecord = $usage;
        let (before, min): ($crate::domain::inventory::Quantity, $crate::domain::inventory::Quantity) = ($before, $min);
        let after = usage.level_after;
        let mut raised = None;
        if $crate::domain::inventory::crossed_minimum(before, after, min) {
            let id = $crate::domain::ids::new_id();
            // A live alert already there (the partial unique index) means this crossing is
            // covered by it: nothing more is raised.
            let inserted: Option<(String,)> = sqlx::query_as(
                "INSERT INTO stock_alerts (id, makerspace_id, item_id, usage_id, level_at_alert, min_stock_level,
                 status, raised_at) VALUES ($1, $2, $3, $4, $5, $6, 'open', $7)
                 ON CONFLICT (item_id) WHERE status <> 'closed' DO NOTHING RETURNING id",
            )
            .bind(&id)
            .bind(&usage.makerspace_id)
            .bind(&usage.item_id)
            .bind(usage.id)
            .bind(after.0)
            .bind(min.0)
            .bind(usage.at)
            .fetch_optional(&mut *$tx)
            .await?;
            raised = inserted.map(|_| $crate::store::stock_alerts::AlertRecord {
                id,
                makerspace_id: usage.makerspace_id.clone(),
                item_id: usage.item_id.clone(),
                usage_id: usage.id,
                level_at_alert: after,
                min_stock_level: min,
                status: $crate::domain::purchasing::AlertStatus::Open,
                purchase_order_id: None,
                raised_at: usage.at,
                closed_at: None,
            });
        } else if usage.delta.is_positive() && after > min {
            sqlx::query(
                "UPDATE stock_alerts SET status = 'closed', closed_at = $2 WHERE item_id = $1 AND status <> 'closed'",
            )
            .bind(&usage.item_id)
            .bind(usage.at)
            .execute(&mut *$tx)
            .await?;
        }
        raised
    }};
}
pub(crate) use follow_minimum;

impl Store {
    /// One page of a makerspace's alerts, newest first, and the number of matches.
    pub async fn list_alerts(
        &self,
        makerspace_id: &str,
        filter: AlertFilter,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<AlertView>, i64), StoreError> {
        let (rows, total): (Vec<AlertViewRow>, i64) = with_pool!(self, pool => {
            let mut page = QueryBuilder::new(SELECT_VIEW);
            push_alert_filter(&mut page, makerspace_id, filter);
            page.push(" ORDER BY a.raised_at DESC, a.id LIMIT ").push_bind(limit).push(" OFFSET ").push_bind(offset);
            let rows = page.build_query_as().fetch_all(pool).await?;
            let mut count = QueryBuilder::new("SELECT COUNT(*) FROM stock_alerts a");
            push_alert_filter(&mut count, makerspace_id, filter);
            let total: (i64,) = count.build_query_as().fetch_one(pool).await?;
            (rows, total.0)
        });
        let alerts = rows.into_iter().map(AlertView::try_from).collect::<Result<_, _>>()?;
        Ok((alerts, total))
    }

    /// Alerts of a makerspace by id (those that exist; any status).
    pub async fn alerts_by_id(&self, makerspace_id: &str, ids: &[String]) -> Result<Vec<AlertView>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<AlertViewRow> = with_pool!(self, pool => {
            let mut q = QueryBuilder::new(SELECT_VIEW);
            q.push(" WHERE a.makerspace_id = ").push_bind(makerspace_id.to_string()).push(" AND a.id IN (");
            let mut list = q.separated(", ");
            for id in ids {
                list.push_bind(id.clone());
            }
            q.push(")");
            q.build_query_as().fetch_all(pool).await?
        });
        rows.into_iter().map(AlertView::try_from).collect()
    }

    /// The alerts a purchase order took, any status.
    pub async fn alerts_of_order(&self, purchase_order_id: &str) -> Result<Vec<AlertRecord>, StoreError> {
        let rows: Vec<AlertRow> = with_pool!(self, pool => {
            sqlx::query_as(
                "SELECT id, makerspace_id, item_id, usage_id, level_at_alert, min_stock_level, status,
                 purchase_order_id, raised_at, closed_at FROM stock_alerts WHERE purchase_order_id = $1 ORDER BY raised_at, id",
            )
            .bind(purchase_order_id)
            .fetch_all(pool)
            .await?
        });
        rows.into_iter().map(AlertRecord::try_from).collect()
    }
}
