//! SQLite's booking writer: new reservations are written in batches, one transaction per
//! batch (group commit).
//!
//! SQLite has one writer at a time, so under a burst of bookings the write connection, not
//! the CPU, sets the pace: each booking on its own is a statement plus a commit, and between
//! two bookings the connection passes from one request's task to the next. This task owns
//! the queue instead: it takes every booking waiting, checks and inserts each inside one
//! `BEGIN IMMEDIATE` transaction (each insert still checks for overlaps, and sees the ones
//! before it in the batch), commits once, and then answers each. A lone booking is written
//! as a single statement, as before.

use chrono::{DateTime, Utc};
use sqlx::SqlitePool;
use tokio::sync::{mpsc, oneshot};

use super::reservations::{book_in, ReservationRecord};
use super::StoreError;

/// Writes one booking unless an overlap is in the way: true if written.
async fn book<'e, E>(
    executor: E,
    r: &ReservationRecord,
    guard: (DateTime<Utc>, DateTime<Utc>),
) -> Result<bool, StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::Sqlite>,
{
    Ok(book_in!(executor, r, guard))
}

/// Bookings that may wait for the writer.
const QUEUE_CAPACITY: usize = 1024;
/// Most bookings written in one transaction.
const MAX_BATCH: usize = 64;

/// One new reservation to write unless a holding booking overlaps `guard`.
pub(super) struct BookingJob {
    pub record: ReservationRecord,
    pub guard: (DateTime<Utc>, DateTime<Utc>),
    /// Whether it was written (false: an overlapping holding booking is in the way).
    pub written: oneshot::Sender<Result<bool, StoreError>>,
}

pub(super) type BookingQueue = mpsc::Sender<BookingJob>;

/// Starts the writer on the write pool. It ends when the store's last copy is dropped.
pub(super) fn spawn(writes: SqlitePool) -> BookingQueue {
    let (queue, mut jobs_in) = mpsc::channel::<BookingJob>(QUEUE_CAPACITY);
    tokio::spawn(async move {
        let mut jobs = Vec::with_capacity(MAX_BATCH);
        while jobs_in.recv_many(&mut jobs, MAX_BATCH).await > 0 {
            if jobs.len() > 1 {
                write_batch(&writes, &mut jobs).await;
            }
            // A lone booking, or a batch that failed as a whole: one statement each.
            for job in jobs.drain(..) {
                let written = book(&writes, &job.record, job.guard).await;
                let _ = job.written.send(written);
            }
        }
    });
    queue
}

/// Writes the jobs in one transaction and answers them (taking them out of `jobs`). When the
/// transaction fails as a whole, nothing is written and `jobs` is left as it was.
async fn write_batch(writes: &SqlitePool, jobs: &mut Vec<BookingJob>) {
    let outcome: Result<Vec<Result<bool, StoreError>>, StoreError> = async {
        let mut tx = writes.begin_with("BEGIN IMMEDIATE").await?;
        let mut results = Vec::with_capacity(jobs.len());
        for job in jobs.iter() {
            match book(&mut *tx, &job.record, job.guard).await {
                // A taken id fails its own statement only; the transaction goes on.
                Err(StoreError::Conflict) => results.push(Err(StoreError::Conflict)),
                Err(other) => return Err(other),
                Ok(written) => results.push(Ok(written)),
            }
        }
        tx.commit().await?;
        Ok(results)
    }
    .await;
    match outcome {
        Ok(results) => {
            for (job, written) in jobs.drain(..).zip(results) {
                let _ = job.written.send(written);
            }
        }
        Err(err) => {
            tracing::warn!(error = ?err, bookings = jobs.len(), "booking batch failed; writing them one by one")
        }
    }
}
