//! Service orders: the order, its offered jobs in the provider's queue, and its history, each
//! change written in one transaction. A decision on an offer (accepted, refused, lapsed) is a
//! compare-and-set on the order's `round` ([`Store::decide_offer`]): an answer and a timeout,
//! or two nodes, can never both act on one offer, so no job is queued twice and no order is
//! offered twice.

use chrono::{DateTime, Utc};
use sqlx::QueryBuilder;

use super::jobs::{insert_job, JobRecord, JobRow, INSERT_TRANSITION, JOB_COLUMNS};
use super::{json_column, to_json_text, with_pool, with_writer, Store, StoreError};
use crate::domain::equipment::EquipmentType;
use crate::domain::job_lifecycle::JobStatus;
use crate::domain::service_orders::{OrderEvent, ServiceOrderStatus};

/// A service order as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceOrderRecord {
    /// The Store's service_order_id.
    pub id: String,
    /// The service that sent it; it owns the order's jobs.
    pub caller_id: String,
    /// The request as understood: a resend must say the same.
    pub request: serde_json::Value,
    pub status: ServiceOrderStatus,
    /// The provider it is offered to or was accepted by.
    pub makerspace_id: Option<String>,
    pub batch_id: Option<String>,
    pub job_ids: Vec<String>,
    /// Providers that refused it or let an offer lapse.
    pub tried: Vec<String>,
    /// The current offer's number (1 for the first).
    pub round: i32,
    pub offered_at: Option<DateTime<Utc>>,
    pub offer_timeout_s: Option<i64>,
    pub offer_expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One line of an order's history.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceOrderEventRecord {
    pub round: i32,
    pub event: OrderEvent,
    pub makerspace_id: Option<String>,
    pub actor: String,
    pub reason: Option<String>,
    pub at: DateTime<Utc>,
}

/// An offer to a provider: the order's jobs in its queue, `offered`, one per copy.
#[derive(Debug, Clone, PartialEq)]
pub struct Offer {
    pub makerspace_id: String,
    pub batch_id: String,
    pub jobs: Vec<JobRecord>,
    pub timeout_s: i64,
    pub expires_at: DateTime<Utc>,
}

/// What becomes of the current offer.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The provider accepted: its jobs join its queue.
    Accepted,
    /// The provider refused (`Refused`) or let the time pass (`TimedOut`): its jobs are
    /// refused, and the order is offered to `next`, or is unroutable without one.
    Passed { event: OrderEvent, next: Option<Offer> },
}

/// A decision on the offer of round `round` of an order.
#[derive(Debug, Clone, PartialEq)]
pub struct OfferDecision {
    pub order_id: String,
    pub round: i32,
    pub outcome: Outcome,
    pub actor: String,
    pub reason: Option<String>,
    pub at: DateTime<Utc>,
}

const ORDER_COLUMNS: &str = "id, caller_id, request, status, makerspace_id, batch_id, job_ids, tried, round, \
     offered_at, offer_timeout_s, offer_expires_at, created_at, updated_at";

#[derive(sqlx::FromRow)]
struct OrderRow {
    id: String,
    caller_id: String,
    request: String,
    status: String,
    makerspace_id: Option<String>,
    batch_id: Option<String>,
    job_ids: String,
    tried: String,
    round: i32,
    offered_at: Option<DateTime<Utc>>,
    offer_timeout_s: Option<i64>,
    offer_expires_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<OrderRow> for ServiceOrderRecord {
    type Error = StoreError;

    fn try_from(r: OrderRow) -> Result<Self, StoreError> {
        Ok(ServiceOrderRecord {
            request: json_column("service_orders.request", &r.request)?,
            status: ServiceOrderStatus::parse(&r.status)
                .ok_or_else(|| StoreError::Corrupt(format!("service_orders.status {:?}", r.status)))?,
            job_ids: json_column("service_orders.job_ids", &r.job_ids)?,
            tried: json_column("service_orders.tried", &r.tried)?,
            id: r.id,
            caller_id: r.caller_id,
            makerspace_id: r.makerspace_id,
            batch_id: r.batch_id,
            round: r.round,
            offered_at: r.offered_at,
            offer_timeout_s: r.offer_timeout_s,
            offer_expires_at: r.offer_expires_at,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

#[derive(sqlx::FromRow)]
struct EventRow {
    round: i32,
    event: String,
    makerspace_id: Option<String>,
    actor: String,
    reason: Option<String>,
    at: DateTime<Utc>,
}

const INSERT_EVENT: &str =
    "INSERT INTO service_order_events (service_order_id, round, event, makerspace_id, actor, reason, at)
     VALUES ($1, $2, $3, $4, $5, $6, $7)";

/// Appends a line to an order's history in the transaction `$tx`.
macro_rules! order_event {
    ($tx:expr, $order:expr, $round:expr, $event:expr, $space:expr, $actor:expr, $reason:expr, $at:expr) => {
        sqlx::query(INSERT_EVENT)
            .bind($order)
            .bind($round)
            .bind($event.as_str())
            .bind($space)
            .bind($actor)
            .bind($reason)
            .bind($at)
            .execute(&mut *$tx)
            .await?
    };
}

/// Moves the offered jobs of a batch to `to` in the transaction `$tx`, each with its
/// transition; evaluates to the moved jobs.
macro_rules! move_offered_batch {
    ($tx:expr, $batch:expr, $to:expr, $decision:expr) => {{
        let decision: &OfferDecision = $decision;
        let to: JobStatus = $to;
        let mut update = QueryBuilder::new("UPDATE jobs SET status = ");
        update.push_bind(to.as_str().to_string()).push(", updated_at = ").push_bind(decision.at);
        if to.is_final() {
            update.push(", finished_at = ").push_bind(decision.at);
        }
        update.push(" WHERE batch_id = ").push_bind($batch.to_string());
        update.push(" AND status = 'offered'");
        update.push(format!(" RETURNING {JOB_COLUMNS}"));
        let rows: Vec<JobRow> = update.build_query_as().fetch_all(&mut *$tx).await?;
        let jobs = rows.into_iter().map(JobRecord::try_from).collect::<Result<Vec<_>, _>>()?;
        for job in &jobs {
            sqlx::query(INSERT_TRANSITION)
                .bind(&job.id)
                .bind(&job.makerspace_id)
                .bind(JobStatus::Offered.as_str())
                .bind(to.as_str())
                .bind(None::<String>)
                .bind(&decision.actor)
                .bind(&decision.reason)
                .bind(decision.at)
                .execute(&mut *$tx)
                .await?;
        }
        jobs
    }};
}

impl Store {
    /// Stores a new order with its first offer (its jobs and their transitions, its history's
    /// first line) in one transaction. `Conflict`: an order with this id exists already.
    pub async fn insert_service_order(&self, order: &ServiceOrderRecord, offer: &Offer) -> Result<(), StoreError> {
        with_writer!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO service_orders ({ORDER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
            )))
            .bind(&order.id)
            .bind(&order.caller_id)
            .bind(to_json_text(&order.request))
            .bind(order.status.as_str())
            .bind(&order.makerspace_id)
            .bind(&order.batch_id)
            .bind(to_json_text(&order.job_ids))
            .bind(to_json_text(&order.tried))
            .bind(order.round)
            .bind(order.offered_at)
            .bind(order.offer_timeout_s)
            .bind(order.offer_expires_at)
            .bind(order.created_at)
            .bind(order.updated_at)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from_write)?;
            for job in &offer.jobs {
                insert_job!(tx, job, &order.caller_id);
            }
            order_event!(tx, &order.id, order.round, OrderEvent::Offered, Some(&offer.makerspace_id),
                &order.caller_id, None::<String>, order.created_at);
            tx.commit().await?;
        });
        Ok(())
    }

    pub async fn get_service_order(&self, id: &str) -> Result<Option<ServiceOrderRecord>, StoreError> {
        let row: Option<OrderRow> = with_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {ORDER_COLUMNS} FROM service_orders WHERE id = $1")))
                .bind(id)
                .fetch_optional(pool)
                .await?
        });
        row.map(ServiceOrderRecord::try_from).transpose()
    }

    /// The order whose current jobs in a makerspace are the batch `batch_id`.
    pub async fn service_order_of_batch(
        &self,
        makerspace_id: &str,
        batch_id: &str,
    ) -> Result<Option<ServiceOrderRecord>, StoreError> {
        let row: Option<OrderRow> = with_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {ORDER_COLUMNS} FROM service_orders WHERE batch_id = $1 AND makerspace_id = $2"
            )))
            .bind(batch_id)
            .bind(makerspace_id)
            .fetch_optional(pool)
            .await?
        });
        row.map(ServiceOrderRecord::try_from).transpose()
    }

    /// An order's history, oldest first.
    pub async fn service_order_events(&self, id: &str) -> Result<Vec<ServiceOrderEventRecord>, StoreError> {
        let rows: Vec<EventRow> = with_pool!(self, pool => {
            sqlx::query_as(
                "SELECT round, event, makerspace_id, actor, reason, at FROM service_order_events
                 WHERE service_order_id = $1 ORDER BY id",
            )
            .bind(id)
            .fetch_all(pool)
            .await?
        });
        rows.into_iter()
            .map(|r| {
                Ok(ServiceOrderEventRecord {
                    event: OrderEvent::parse(&r.event)
                        .ok_or_else(|| StoreError::Corrupt(format!("service_order_events.event {:?}", r.event)))?,
                    round: r.round,
                    makerspace_id: r.makerspace_id,
                    actor: r.actor,
                    reason: r.reason,
                    at: r.at,
                })
            })
            .collect()
    }

    /// The orders offered to a makerspace now, oldest offer first.
    pub async fn offers_to(&self, makerspace_id: &str) -> Result<Vec<ServiceOrderRecord>, StoreError> {
        let rows: Vec<OrderRow> = with_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {ORDER_COLUMNS} FROM service_orders WHERE status = 'offered' AND makerspace_id = $1
                 ORDER BY offered_at, id"
            )))
            .bind(makerspace_id)
            .fetch_all(pool)
            .await?
        });
        rows.into_iter().map(ServiceOrderRecord::try_from).collect()
    }

    /// Orders whose current offer was not answered by `now`, oldest deadline first.
    pub async fn lapsed_offers(&self, now: DateTime<Utc>, limit: i64) -> Result<Vec<ServiceOrderRecord>, StoreError> {
        let rows: Vec<OrderRow> = with_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {ORDER_COLUMNS} FROM service_orders WHERE status = 'offered' AND offer_expires_at <= $1
                 ORDER BY offer_expires_at, id LIMIT $2"
            )))
            .bind(now)
            .bind(limit)
            .fetch_all(pool)
            .await?
        });
        rows.into_iter().map(ServiceOrderRecord::try_from).collect()
    }

    /// How many jobs of each machine type wait in a makerspace's queue.
    pub async fn queued_jobs_by_type(&self, makerspace_id: &str) -> Result<Vec<(EquipmentType, i64)>, StoreError> {
        let rows: Vec<(String, i64)> = with_pool!(self, pool => {
            sqlx::query_as(
                "SELECT equipment_type, COUNT(*) FROM jobs WHERE makerspace_id = $1 AND status = 'queued'
                 GROUP BY equipment_type",
            )
            .bind(makerspace_id)
            .fetch_all(pool)
            .await?
        });
        Ok(rows.into_iter().filter_map(|(kind, n)| EquipmentType::parse(&kind).map(|kind| (kind, n))).collect())
    }

    /// Decides the offer of round `decision.round`, if it is still the order's open offer:
    /// moves the offered jobs (accepted: `queued`; otherwise `refused`), makes the next offer
    /// or marks the order unroutable, and appends the history, in one transaction. `None`: the
    /// offer was decided meanwhile (or the order does not exist), nothing written. Otherwise
    /// the order as it is now and the jobs moved (those of the next offer are the decision's).
    pub async fn decide_offer(
        &self,
        decision: &OfferDecision,
    ) -> Result<Option<(ServiceOrderRecord, Vec<JobRecord>)>, StoreError> {
        let lock = if self.kind() == "postgres" { " FOR UPDATE" } else { "" };
        let outcome: Option<(OrderRow, Vec<JobRecord>)> = with_writer!(self, pool => {
            let mut tx = pool.begin().await?;
            // The order as it is, locked until the decision commits (SQLite has one writer).
            let current: Option<OrderRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {ORDER_COLUMNS} FROM service_orders WHERE id = $1{lock}"
            )))
            .bind(&decision.order_id)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(current) = current else { return Ok(None) };
            if current.status != ServiceOrderStatus::Offered.as_str() || current.round != decision.round {
                return Ok(None);
            }
            let current = ServiceOrderRecord::try_from(current)?;
            let batch = current.batch_id.clone().unwrap_or_default();
            let (to, event) = match &decision.outcome {
                Outcome::Accepted => (JobStatus::Queued, OrderEvent::Accepted),
                Outcome::Passed { event, .. } => (JobStatus::Refused, *event),
            };
            let moved = move_offered_batch!(tx, batch, to, decision);
            order_event!(tx, &current.id, current.round, event, &current.makerspace_id, &decision.actor,
                &decision.reason, decision.at);
            let mut update = QueryBuilder::new("UPDATE service_orders SET updated_at = ");
            update.push_bind(decision.at);
            match &decision.outcome {
                Outcome::Accepted => {
                    update.push(", status = 'accepted', offer_expires_at = NULL");
                }
                Outcome::Passed { next, .. } => {
                    let mut tried = current.tried.clone();
                    if let Some(space) = &current.makerspace_id {
                        if !tried.contains(space) {
                            tried.push(space.clone());
                        }
                    }
                    update.push(", tried = ").push_bind(to_json_text(&tried));
                    match next {
                        Some(offer) => {
                            let round = current.round + 1;
                            let job_ids: Vec<&str> = offer.jobs.iter().map(|j| j.id.as_str()).collect();
                            update.push(", round = ").push_bind(round);
                            update.push(", makerspace_id = ").push_bind(offer.makerspace_id.clone());
                            update.push(", batch_id = ").push_bind(offer.batch_id.clone());
                            update.push(", job_ids = ").push_bind(to_json_text(&job_ids));
                            update.push(", offered_at = ").push_bind(decision.at);
                            update.push(", offer_timeout_s = ").push_bind(offer.timeout_s);
                            update.push(", offer_expires_at = ").push_bind(offer.expires_at);
                            for job in &offer.jobs {
                                insert_job!(tx, job, &current.caller_id);
                            }
                            order_event!(tx, &current.id, round, OrderEvent::Offered, Some(&offer.makerspace_id),
                                &decision.actor, None::<String>, decision.at);
                        }
                        None => {
                            update.push(", status = 'unroutable', makerspace_id = NULL, batch_id = NULL");
                            update.push(", job_ids = '[]', offer_expires_at = NULL");
                            order_event!(tx, &current.id, current.round, OrderEvent::Unroutable, None::<String>,
                                &decision.actor, Some("no capable provider is left"), decision.at);
                        }
                    }
                }
            }
            update.push(" WHERE id = ").push_bind(current.id.clone());
            update.push(format!(" RETURNING {ORDER_COLUMNS}"));
            let row: OrderRow = update.build_query_as().fetch_one(&mut *tx).await?;
            tx.commit().await?;
            Some((row, moved))
        });
        let Some((row, moved)) = outcome else { return Ok(None) };
        Ok(Some((ServiceOrderRecord::try_from(row)?, moved)))
    }
}
