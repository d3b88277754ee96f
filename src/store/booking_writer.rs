//! The booking writer: new reservations are written in batches (group commit).
//!
//! Under a burst of bookings the database's per-statement and per-commit costs, not the
//! check itself, set the pace, and on SQLite (one writer at a time) so does handing the write
//! connection from one request's task to the next. This task owns the queue instead: it
//! takes every booking waiting and writes them together. Each booking is still checked for
//! overlaps, and sees the ones before it in the batch.
//! - SQLite: one `BEGIN IMMEDIATE` transaction on the write connection, a single conditional
//!   insert per booking (`book_in!`), one commit.
//! - PostgreSQL: one call of `book_reservations` (migration 0010) with the batch as JSON;
//!   it takes each machine's lock and returns, per booking, the bookings in its way. Two
//!   batches may be under way at once.
//!
//! A lone booking is written on its own (SQLite: the one statement; PostgreSQL:
//! `book_reservation`), and a batch that fails as a whole is written again one by one, so
//! that one bad booking cannot fail the others.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgPool, SqlitePool};
use tokio::sync::{mpsc, oneshot, Mutex};

use super::reservations::{bind_booking, book_in, ReservationRecord, ReservationRow};
use super::{Db, StoreError};

/// Bookings that may wait for the writer.
const QUEUE_CAPACITY: usize = 1024;
/// Most bookings written together.
const MAX_BATCH: usize = 64;

/// What became of a booking.
#[derive(Debug)]
pub(super) enum Booked {
    Written,
    /// Not written: these holding bookings are in the way (PostgreSQL names them).
    InTheWay(Vec<ReservationRecord>),
    /// Not written: a holding booking is in the way (SQLite; the caller reads which).
    Refused,
}

/// One new reservation to write unless a holding booking overlaps `guard`.
pub(super) struct BookingJob {
    pub record: ReservationRecord,
    pub guard: (DateTime<Utc>, DateTime<Utc>),
    pub booked: oneshot::Sender<Result<Booked, StoreError>>,
}

pub(super) type BookingQueue = mpsc::Sender<BookingJob>;

/// Batches PostgreSQL works on at once. A batch runs in one server process (one core), so
/// two keep a second core busy; batches of different machines do not wait for each other,
/// those of one machine wait for its lock.
const POSTGRES_WRITERS: usize = 2;

/// Starts the writer (SQLite: one, as SQLite writes one at a time; PostgreSQL:
/// [`POSTGRES_WRITERS`]). It ends when the store's last copy is dropped.
pub(super) fn spawn(db: Db) -> BookingQueue {
    let (queue, jobs_in) = mpsc::channel::<BookingJob>(QUEUE_CAPACITY);
    let writers = match db {
        Db::Sqlite(_) => 1,
        Db::Postgres(_) => POSTGRES_WRITERS,
    };
    let jobs_in = Arc::new(Mutex::new(jobs_in));
    for _ in 0..writers {
        let (db, jobs_in) = (db.clone(), jobs_in.clone());
        tokio::spawn(async move {
            let mut jobs = Vec::with_capacity(MAX_BATCH);
            loop {
                // One writer takes what is waiting; the others wait for the next ones.
                if jobs_in.lock().await.recv_many(&mut jobs, MAX_BATCH).await == 0 {
                    break;
                }
                write(&db, &mut jobs).await;
            }
        });
    }
    queue
}

/// Writes the jobs and answers each (emptying `jobs`).
async fn write(db: &Db, jobs: &mut Vec<BookingJob>) {
    if jobs.len() > 1 {
        let batch = match db {
            Db::Sqlite(sqlite) => sqlite_batch(&sqlite.writes, jobs).await,
            Db::Postgres(pool) => postgres_batch(pool, jobs).await,
        };
        match batch {
            Ok(outcomes) => {
                for (job, outcome) in jobs.drain(..).zip(outcomes) {
                    let _ = job.booked.send(outcome);
                }
            }
            Err(err) => {
                tracing::warn!(error = ?err, bookings = jobs.len(), "booking batch failed; writing them one by one")
            }
        }
    }
    // A lone booking, or a batch that failed as a whole.
    for job in jobs.drain(..) {
        let outcome = match db {
            Db::Sqlite(sqlite) => sqlite_one(&sqlite.writes, &job.record, job.guard).await,
            Db::Postgres(pool) => postgres_one(pool, &job.record, job.guard).await,
        };
        let _ = job.booked.send(outcome);
    }
}

/// One booking on SQLite, as a single statement.
async fn sqlite_one<'e, E>(
    executor: E,
    r: &ReservationRecord,
    guard: (DateTime<Utc>, DateTime<Utc>),
) -> Result<Booked, StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::Sqlite>,
{
    Ok(if book_in!(executor, r, guard) { Booked::Written } else { Booked::Refused })
}

/// The jobs in one SQLite transaction. `Err` when the transaction fails as a whole (nothing
/// is written).
async fn sqlite_batch(writes: &SqlitePool, jobs: &[BookingJob]) -> Result<Vec<Result<Booked, StoreError>>, StoreError> {
    let mut tx = writes.begin_with("BEGIN IMMEDIATE").await?;
    let mut outcomes = Vec::with_capacity(jobs.len());
    for job in jobs {
        match sqlite_one(&mut *tx, &job.record, job.guard).await {
            // A taken id fails its own statement only; the transaction goes on.
            Err(StoreError::Conflict) => outcomes.push(Err(StoreError::Conflict)),
            Err(other) => return Err(other),
            Ok(booked) => outcomes.push(Ok(booked)),
        }
    }
    tx.commit().await?;
    Ok(outcomes)
}

/// One booking on PostgreSQL: `book_reservation` (migration 0008).
async fn postgres_one(
    pool: &PgPool,
    r: &ReservationRecord,
    guard: (DateTime<Utc>, DateTime<Utc>),
) -> Result<Booked, StoreError> {
    let query = sqlx::query_as(
        "SELECT id, makerspace_id, equipment_id, user_id, kind, status, start_at, end_at, purpose, created_by,
         decided_by, reason, checked_in_at, created_at, updated_at
         FROM book_reservation($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
    );
    let rows: Vec<ReservationRow> =
        bind_booking!(query, r, guard).fetch_all(pool).await.map_err(StoreError::from_write)?;
    in_the_way(rows)
}

fn in_the_way(rows: Vec<ReservationRow>) -> Result<Booked, StoreError> {
    if rows.is_empty() {
        return Ok(Booked::Written);
    }
    Ok(Booked::InTheWay(rows.into_iter().map(ReservationRecord::try_from).collect::<Result<_, _>>()?))
}

/// A booking as `book_reservations` reads it.
#[derive(Serialize)]
struct BatchBooking<'a> {
    id: &'a str,
    makerspace_id: &'a str,
    equipment_id: &'a str,
    user_id: &'a str,
    kind: &'a str,
    status: &'a str,
    start_at: DateTime<Utc>,
    end_at: DateTime<Utc>,
    purpose: Option<&'a str>,
    created_by: &'a str,
    decided_by: Option<&'a str>,
    reason: Option<&'a str>,
    checked_in_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    guard_from: DateTime<Utc>,
    guard_to: DateTime<Utc>,
}

/// The jobs in one call of `book_reservations` (migration 0010). `Err` when the call fails as
/// a whole (nothing is written).
async fn postgres_batch(pool: &PgPool, jobs: &[BookingJob]) -> Result<Vec<Result<Booked, StoreError>>, StoreError> {
    let batch: Vec<BatchBooking> = jobs
        .iter()
        .map(|job| {
            let r = &job.record;
            BatchBooking {
                id: &r.id,
                makerspace_id: &r.makerspace_id,
                equipment_id: &r.equipment_id,
                user_id: &r.user_id,
                kind: r.kind.as_str(),
                status: r.status.as_str(),
                start_at: r.start_at,
                end_at: r.end_at,
                purpose: r.purpose.as_deref(),
                created_by: &r.created_by,
                decided_by: r.decided_by.as_deref(),
                reason: r.reason.as_deref(),
                checked_in_at: r.checked_in_at,
                created_at: r.created_at,
                updated_at: r.updated_at,
                guard_from: job.guard.0,
                guard_to: job.guard.1,
            }
        })
        .collect();
    let rows: Vec<(String, Option<sqlx::types::Json<Vec<ReservationRow>>>)> =
        sqlx::query_as("SELECT for_id, conflicts FROM book_reservations($1)")
            .bind(sqlx::types::Json(&batch))
            .fetch_all(pool)
            .await
            .map_err(StoreError::from_write)?;
    let mut by_id: std::collections::HashMap<String, Option<Vec<ReservationRow>>> =
        rows.into_iter().map(|(id, conflicts)| (id, conflicts.map(|c| c.0))).collect();
    Ok(jobs
        .iter()
        .map(|job| match by_id.remove(&job.record.id) {
            Some(conflicts) => in_the_way(conflicts.unwrap_or_default()),
            None => Err(StoreError::Corrupt(format!("book_reservations skipped {}", job.record.id))),
        })
        .collect())
}
