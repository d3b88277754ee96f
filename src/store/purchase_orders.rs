//! Purchase orders, their lines and their history. An order's row holds where it stands; every
//! change of status is also appended to its history (`purchase_order_events`, never
//! rewritten). What arrived is not kept here: it is the stock log's rows with cause
//! `purchase_order` and the order's id ([`Store::received_for_order`]).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::QueryBuilder;

use super::inventory::{decode, encode};
use super::{with_pool, with_writer, Store, StoreError};
use crate::domain::inventory::{Quantity, Unit};
use crate::domain::purchasing::OrderStatus;

#[derive(Debug, Clone, PartialEq)]
pub struct OrderRecord {
    pub id: String,
    pub makerspace_id: String,
    pub status: OrderStatus,
    /// `makrx_store` or `external`.
    pub supplier_kind: String,
    pub supplier_name: Option<String>,
    pub currency: String,
    pub note: Option<String>,
    pub created_by: String,
    pub ordered_by: Option<String>,
    pub idempotency_key: Option<String>,
    pub created_at: DateTime<Utc>,
    pub ordered_at: Option<DateTime<Utc>>,
    pub received_at: Option<DateTime<Utc>>,
    pub cancelled_at: Option<DateTime<Utc>>,
    pub store_sent_at: Option<DateTime<Utc>>,
    pub store_error: Option<String>,
}

#[derive(sqlx::FromRow)]
struct OrderRow {
    id: String,
    makerspace_id: String,
    status: String,
    supplier_kind: String,
    supplier_name: Option<String>,
    currency: String,
    note: Option<String>,
    created_by: String,
    ordered_by: Option<String>,
    idempotency_key: Option<String>,
    created_at: DateTime<Utc>,
    ordered_at: Option<DateTime<Utc>>,
    received_at: Option<DateTime<Utc>>,
    cancelled_at: Option<DateTime<Utc>>,
    store_sent_at: Option<DateTime<Utc>>,
    store_error: Option<String>,
}

impl TryFrom<OrderRow> for OrderRecord {
    type Error = StoreError;
    fn try_from(r: OrderRow) -> Result<Self, StoreError> {
        Ok(OrderRecord {
            status: decode("purchase_orders.status", &r.status)?,
            id: r.id,
            makerspace_id: r.makerspace_id,
            supplier_kind: r.supplier_kind,
            supplier_name: r.supplier_name,
            currency: r.currency,
            note: r.note,
            created_by: r.created_by,
            ordered_by: r.ordered_by,
            idempotency_key: r.idempotency_key,
            created_at: r.created_at,
            ordered_at: r.ordered_at,
            received_at: r.received_at,
            cancelled_at: r.cancelled_at,
            store_sent_at: r.store_sent_at,
            store_error: r.store_error,
        })
    }
}

const SELECT_ORDER: &str = "SELECT id, makerspace_id, status, supplier_kind, supplier_name, currency, note, \
     created_by, ordered_by, idempotency_key, created_at, ordered_at, received_at, cancelled_at, store_sent_at, \
     store_error FROM purchase_orders";

/// One line of an order: an item, how much, at what cost, as it stood when ordered.
#[derive(Debug, Clone, PartialEq)]
pub struct LineRecord {
    pub id: String,
    pub purchase_order_id: String,
    pub position: i64,
    pub item_id: String,
    pub sku: Option<String>,
    pub name: String,
    pub unit: Unit,
    pub quantity_ordered: Quantity,
    pub unit_cost_minor: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct LineRow {
    id: String,
    purchase_order_id: String,
    position: i64,
    item_id: String,
    sku: Option<String>,
    name: String,
    unit: String,
    quantity_ordered: i64,
    unit_cost_minor: Option<i64>,
}

impl TryFrom<LineRow> for LineRecord {
    type Error = StoreError;
    fn try_from(r: LineRow) -> Result<Self, StoreError> {
        Ok(LineRecord {
            unit: decode("purchase_order_lines.unit", &r.unit)?,
            id: r.id,
            purchase_order_id: r.purchase_order_id,
            position: r.position,
            item_id: r.item_id,
            sku: r.sku,
            name: r.name,
            quantity_ordered: Quantity(r.quantity_ordered),
            unit_cost_minor: r.unit_cost_minor,
        })
    }
}

const SELECT_LINE: &str = "SELECT id, purchase_order_id, position, item_id, sku, name, unit, quantity_ordered, \
     unit_cost_minor FROM purchase_order_lines";

/// One entry of an order's history.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct EventRecord {
    /// The status the order had after it.
    pub status: String,
    pub actor: String,
    /// What happened beyond the status (a receipt's key and quantities, a store's answer), as
    /// JSON text.
    pub detail: Option<String>,
    pub at: DateTime<Utc>,
}

/// A new order with its lines and the alerts it takes.
#[derive(Debug, Clone)]
pub struct NewOrder {
    pub order: OrderRecord,
    pub lines: Vec<LineRecord>,
    /// Alerts named by the request: each must be open, or nothing is written.
    pub alert_ids: Vec<String>,
    /// Items whose open alert, if any, this order takes too.
    pub item_ids: Vec<String>,
}

/// What became of a new order.
#[derive(Debug, Clone, PartialEq)]
pub enum Created {
    Created,
    /// An order with this idempotency key exists: its id.
    Replayed(String),
    /// This alert is not open (any more): nothing was written.
    AlertNotOpen(String),
}

/// A change of an order's status, applied only if the order still has `from`.
#[derive(Debug, Clone)]
pub struct StatusChange {
    pub makerspace_id: String,
    pub order_id: String,
    pub from: OrderStatus,
    pub to: OrderStatus,
    pub actor: String,
    pub detail: Option<serde_json::Value>,
    pub at: DateTime<Utc>,
    /// Cancelling: the order's alerts that are not closed are open again, for another order.
    pub reopen_alerts: bool,
    /// Receiving: the order's alerts of these items (received in full) close.
    pub close_alerts_of: Vec<String>,
}

impl Store {
    /// Stores a new order, its lines, its first history entry and the alerts it takes, in one
    /// transaction.
    pub async fn insert_order(&self, new: &NewOrder) -> Result<Created, StoreError> {
        let o = &new.order;
        if let Some(key) = &o.idempotency_key {
            if let Some(id) = self.order_by_key(&o.makerspace_id, key).await? {
                return Ok(Created::Replayed(id));
            }
        }
        // In a block of its own, so that a failed write still comes back here (a racing key).
        let written: Result<Created, StoreError> = async { with_writer!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO purchase_orders (id, makerspace_id, status, supplier_kind, supplier_name, currency, note,
                 created_by, idempotency_key, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(&o.id).bind(&o.makerspace_id).bind(o.status.as_str()).bind(&o.supplier_kind)
            .bind(&o.supplier_name).bind(&o.currency).bind(&o.note).bind(&o.created_by)
            .bind(&o.idempotency_key).bind(o.created_at)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from_write)?;
            for line in &new.lines {
                sqlx::query(
                    "INSERT INTO purchase_order_lines (id, purchase_order_id, position, item_id, sku, name, unit,
                     quantity_ordered, unit_cost_minor) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(&line.id).bind(&o.id).bind(line.position).bind(&line.item_id).bind(&line.sku)
                .bind(&line.name).bind(encode(line.unit)).bind(line.quantity_ordered.0).bind(line.unit_cost_minor)
                .execute(&mut *tx)
                .await?;
            }
            sqlx::query(
                "INSERT INTO purchase_order_events (purchase_order_id, status, actor, at) VALUES ($1, $2, $3, $4)",
            )
            .bind(&o.id).bind(o.status.as_str()).bind(&o.created_by).bind(o.created_at)
            .execute(&mut *tx)
            .await?;
            let mut refused = None;
            for alert_id in &new.alert_ids {
                let taken = sqlx::query(
                    "UPDATE stock_alerts SET status = 'ordered', purchase_order_id = $3
                     WHERE id = $1 AND makerspace_id = $2 AND status = 'open'",
                )
                .bind(alert_id).bind(&o.makerspace_id).bind(&o.id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if taken == 0 {
                    refused = Some(alert_id.clone());
                    break;
                }
            }
            if let Some(alert_id) = refused {
                // Dropping the transaction rolls it back: the order was never there.
                Ok(Created::AlertNotOpen(alert_id))
            } else {
                for item_id in &new.item_ids {
                    sqlx::query(
                        "UPDATE stock_alerts SET status = 'ordered', purchase_order_id = $2
                         WHERE item_id = $1 AND status = 'open'",
                    )
                    .bind(item_id).bind(&o.id)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(Created::Created)
            }
        }) }
        .await;
        match (written, &o.idempotency_key) {
            // The same key raced in from another request: answer with its order.
            (Err(StoreError::Conflict), Some(key)) => match self.order_by_key(&o.makerspace_id, key).await? {
                Some(id) => Ok(Created::Replayed(id)),
                None => Err(StoreError::Conflict),
            },
            (other, _) => other,
        }
    }

    /// The order made with this idempotency key, if any.
    pub async fn order_by_key(&self, makerspace_id: &str, key: &str) -> Result<Option<String>, StoreError> {
        let row: Option<(String,)> = with_pool!(self, pool => {
            sqlx::query_as("SELECT id FROM purchase_orders WHERE makerspace_id = $1 AND idempotency_key = $2")
                .bind(makerspace_id).bind(key).fetch_optional(pool).await?
        });
        Ok(row.map(|(id,)| id))
    }

    pub async fn get_order(&self, makerspace_id: &str, id: &str) -> Result<Option<OrderRecord>, StoreError> {
        let sql = format!("{SELECT_ORDER} WHERE makerspace_id = $1 AND id = $2");
        let row: Option<OrderRow> = with_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(makerspace_id).bind(id).fetch_optional(pool).await?
        });
        row.map(OrderRecord::try_from).transpose()
    }

    /// One page of a makerspace's orders, newest first, and the number of matches.
    pub async fn list_orders(
        &self,
        makerspace_id: &str,
        status: Option<OrderStatus>,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<OrderRecord>, i64), StoreError> {
        let status = status.map(|s| s.as_str().to_string());
        let (rows, total): (Vec<OrderRow>, i64) = with_pool!(self, pool => {
            let mut page = QueryBuilder::new(SELECT_ORDER);
            page.push(" WHERE makerspace_id = ").push_bind(makerspace_id.to_string());
            let mut count = QueryBuilder::new("SELECT COUNT(*) FROM purchase_orders WHERE makerspace_id = ");
            count.push_bind(makerspace_id.to_string());
            if let Some(status) = &status {
                page.push(" AND status = ").push_bind(status.clone());
                count.push(" AND status = ").push_bind(status.clone());
            }
            page.push(" ORDER BY created_at DESC, id LIMIT ").push_bind(limit).push(" OFFSET ").push_bind(offset);
            let rows = page.build_query_as().fetch_all(pool).await?;
            let total: (i64,) = count.build_query_as().fetch_one(pool).await?;
            (rows, total.0)
        });
        let orders = rows.into_iter().map(OrderRecord::try_from).collect::<Result<_, _>>()?;
        Ok((orders, total))
    }

    /// The lines of these orders, by order, each in its order.
    pub async fn order_lines(&self, order_ids: &[String]) -> Result<HashMap<String, Vec<LineRecord>>, StoreError> {
        let mut by_order: HashMap<String, Vec<LineRecord>> = HashMap::new();
        if order_ids.is_empty() {
            return Ok(by_order);
        }
        let rows: Vec<LineRow> = with_pool!(self, pool => {
            let mut q = QueryBuilder::new(SELECT_LINE);
            q.push(" WHERE purchase_order_id IN (");
            let mut list = q.separated(", ");
            for id in order_ids {
                list.push_bind(id.clone());
            }
            q.push(") ORDER BY purchase_order_id, position");
            q.build_query_as().fetch_all(pool).await?
        });
        for row in rows {
            let line = LineRecord::try_from(row)?;
            by_order.entry(line.purchase_order_id.clone()).or_default().push(line);
        }
        Ok(by_order)
    }

    /// The lines of one order, in its order.
    pub async fn lines_of_order(&self, order_id: &str) -> Result<Vec<LineRecord>, StoreError> {
        Ok(self.order_lines(&[order_id.to_string()]).await?.remove(order_id).unwrap_or_default())
    }

    /// An order's history, oldest first.
    pub async fn order_events(&self, order_id: &str) -> Result<Vec<EventRecord>, StoreError> {
        Ok(with_pool!(self, pool => {
            sqlx::query_as(
                "SELECT status, actor, detail, at FROM purchase_order_events WHERE purchase_order_id = $1 ORDER BY id",
            )
            .bind(order_id)
            .fetch_all(pool)
            .await?
        }))
    }

    /// What arrived for an order, by item: the sum of the stock log's rows it caused.
    pub async fn received_for_order(&self, order_id: &str) -> Result<HashMap<String, Quantity>, StoreError> {
        let rows: Vec<(String, Option<i64>)> = with_pool!(self, pool => {
            sqlx::query_as(
                "SELECT item_id, CAST(SUM(delta) AS BIGINT) FROM inventory_usage
                 WHERE cause_kind = 'purchase_order' AND cause_id = $1 GROUP BY item_id",
            )
            .bind(order_id)
            .fetch_all(pool)
            .await?
        });
        Ok(rows.into_iter().map(|(item, sum)| (item, Quantity(sum.unwrap_or(0)))).collect())
    }

    /// Whether the stock log holds a row with this key for any of these items (a receipt
    /// that was taken, in part at least, before).
    pub async fn usage_key_seen(&self, item_ids: &[String], key: &str) -> Result<bool, StoreError> {
        if item_ids.is_empty() {
            return Ok(false);
        }
        let (count,): (i64,) = with_pool!(self, pool => {
            let mut q = QueryBuilder::new("SELECT COUNT(*) FROM inventory_usage WHERE idempotency_key = ");
            q.push_bind(key.to_string()).push(" AND item_id IN (");
            let mut list = q.separated(", ");
            for id in item_ids {
                list.push_bind(id.clone());
            }
            q.push(")");
            q.build_query_as().fetch_one(pool).await?
        });
        Ok(count > 0)
    }

    /// Moves an order from one status to another with its history entry and its alerts, in
    /// one transaction; false when the order no longer has `from` (another request moved it).
    pub async fn change_order_status(&self, change: &StatusChange) -> Result<bool, StoreError> {
        let at = change.at;
        let when = |status: OrderStatus| (change.to == status && change.from != status).then_some(at);
        let ordered_by = (change.to == OrderStatus::Ordered).then(|| change.actor.clone());
        let detail = change.detail.as_ref().map(super::to_json_text);
        with_writer!(self, pool => {
            let mut tx = pool.begin().await?;
            let moved = sqlx::query(
                "UPDATE purchase_orders SET status = $3, ordered_at = COALESCE(ordered_at, $5),
                 ordered_by = COALESCE(ordered_by, $6), received_at = COALESCE(received_at, $7),
                 cancelled_at = COALESCE(cancelled_at, $8)
                 WHERE id = $1 AND makerspace_id = $2 AND status = $4",
            )
            .bind(&change.order_id).bind(&change.makerspace_id).bind(change.to.as_str()).bind(change.from.as_str())
            .bind(when(OrderStatus::Ordered)).bind(&ordered_by).bind(when(OrderStatus::Received))
            .bind(when(OrderStatus::Cancelled))
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if moved == 0 {
                return Ok(false);
            }
            sqlx::query(
                "INSERT INTO purchase_order_events (purchase_order_id, status, actor, detail, at)
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&change.order_id).bind(change.to.as_str()).bind(&change.actor).bind(&detail).bind(at)
            .execute(&mut *tx)
            .await?;
            if change.reopen_alerts {
                sqlx::query(
                    "UPDATE stock_alerts SET status = 'open', purchase_order_id = NULL
                     WHERE purchase_order_id = $1 AND status = 'ordered'",
                )
                .bind(&change.order_id)
                .execute(&mut *tx)
                .await?;
            }
            for item_id in &change.close_alerts_of {
                sqlx::query(
                    "UPDATE stock_alerts SET status = 'closed', closed_at = $3
                     WHERE purchase_order_id = $1 AND item_id = $2 AND status <> 'closed'",
                )
                .bind(&change.order_id).bind(item_id).bind(at)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        });
        Ok(true)
    }

    /// Records what became of sending the order to the MakrX Store: taken (`Ok`), or why not.
    pub async fn record_store_send(
        &self,
        order_id: &str,
        outcome: Result<DateTime<Utc>, String>,
    ) -> Result<(), StoreError> {
        let (sent_at, error) = match outcome {
            Ok(at) => (Some(at), None),
            Err(why) => (None, Some(why)),
        };
        with_writer!(self, pool => {
            sqlx::query("UPDATE purchase_orders SET store_sent_at = $2, store_error = $3 WHERE id = $1")
                .bind(order_id).bind(sent_at).bind(error)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Holds an order for one receipt (or cancel) until `until`: false while another holds it.
    /// A hold that was never released (a crash) lapses at its time.
    pub async fn hold_order(
        &self,
        order_id: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let held = with_writer!(self, pool => {
            sqlx::query(
                "UPDATE purchase_orders SET receiving_until = $3
                 WHERE id = $1 AND (receiving_until IS NULL OR receiving_until < $2)",
            )
            .bind(order_id).bind(now).bind(until)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(held > 0)
    }

    pub async fn release_order_hold(&self, order_id: &str) -> Result<(), StoreError> {
        with_writer!(self, pool => {
            sqlx::query("UPDATE purchase_orders SET receiving_until = NULL WHERE id = $1")
                .bind(order_id).execute(pool).await?;
        });
        Ok(())
    }
}
