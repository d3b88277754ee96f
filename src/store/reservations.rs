//! The reservation book's storage: bookings, their event log and the waitlist.
//!
//! New bookings go through the booking writer (`booking_writer.rs`), which writes them in
//! batches.
//!
//! The no-overlap guarantee: a new reservation is written only if no holding booking
//! (confirmed or checked in) of the machine overlaps it, widened by the makerspace's minimum
//! gap: the check is part of the insert statement itself (`INSERT ... SELECT ... WHERE NOT
//! EXISTS`). Such writes are serialized per machine:
//! - SQLite: every write runs on the one write connection, and a single statement is atomic,
//!   so no other writer can slip in between the check and the insert. Status changes that
//!   read first use `BEGIN IMMEDIATE` transactions on that connection. The "created" line of
//!   the history is written by a trigger, inside the same statement (on PostgreSQL, by the
//!   `book_reservation` function);
//! - PostgreSQL: `pg_advisory_xact_lock` on the machine id serializes booking writes of that
//!   machine across every node (a new booking takes it inside the `book_reservation` or
//!   `book_reservations` function, so that the booking costs no round trip of its own), and the `reservations_no_overlap` exclusion constraint
//!   rejects any overlap that would get through anyway (SQLSTATE 23P01, a `Conflict`).

use chrono::{DateTime, Utc};
use sqlx::QueryBuilder;

use super::booking_writer::{Booked, BookingJob};
use super::{Store, StoreError};
use crate::domain::booking::{ReservationKind, ReservationStatus};

#[derive(Debug, Clone, PartialEq)]
pub struct ReservationRecord {
    pub id: String,
    pub makerspace_id: String,
    pub equipment_id: String,
    pub user_id: String,
    pub kind: ReservationKind,
    pub status: ReservationStatus,
    pub start_at: DateTime<Utc>,
    pub end_at: DateTime<Utc>,
    pub purpose: Option<String>,
    pub created_by: String,
    pub decided_by: Option<String>,
    pub reason: Option<String>,
    pub checked_in_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A stored reservation as the database gives it (also as JSON, from `book_reservations`).
#[derive(sqlx::FromRow, serde::Deserialize)]
pub(super) struct ReservationRow {
    id: String,
    makerspace_id: String,
    equipment_id: String,
    user_id: String,
    kind: String,
    status: String,
    start_at: DateTime<Utc>,
    end_at: DateTime<Utc>,
    purpose: Option<String>,
    created_by: String,
    decided_by: Option<String>,
    reason: Option<String>,
    checked_in_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<ReservationRow> for ReservationRecord {
    type Error = StoreError;
    fn try_from(r: ReservationRow) -> Result<Self, StoreError> {
        Ok(ReservationRecord {
            kind: ReservationKind::parse(&r.kind)
                .ok_or_else(|| StoreError::Corrupt(format!("reservations.kind {:?}", r.kind)))?,
            status: ReservationStatus::parse(&r.status)
                .ok_or_else(|| StoreError::Corrupt(format!("reservations.status {:?}", r.status)))?,
            id: r.id,
            makerspace_id: r.makerspace_id,
            equipment_id: r.equipment_id,
            user_id: r.user_id,
            start_at: r.start_at,
            end_at: r.end_at,
            purpose: r.purpose,
            created_by: r.created_by,
            decided_by: r.decided_by,
            reason: r.reason,
            checked_in_at: r.checked_in_at,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

const SELECT: &str = "SELECT id, makerspace_id, equipment_id, user_id, kind, status, start_at, end_at, purpose, \
     created_by, decided_by, reason, checked_in_at, created_at, updated_at FROM reservations";

/// Holding bookings of a machine that overlap `[$2, $3)`, except `$4`.
const CONFLICTS: &str = "SELECT id, makerspace_id, equipment_id, user_id, kind, status, start_at, end_at, purpose, \
     created_by, decided_by, reason, checked_in_at, created_at, updated_at FROM reservations \
     WHERE equipment_id = $1 AND status IN ('confirmed', 'checked_in') AND start_at < $3 AND end_at > $2 \
     AND id <> $4 ORDER BY start_at, id";

/// The outcome of a write that may collide with other bookings.
#[derive(Debug, Clone, PartialEq)]
pub enum BookOutcome {
    Done,
    /// Holding bookings that overlap the requested interval (nothing was written).
    Conflict(Vec<ReservationRecord>),
    /// The reservation was not in an expected status any more (nothing was written).
    Stale,
}

/// One line of a reservation's history.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ReservationEvent {
    pub action: String,
    pub actor: String,
    pub at: DateTime<Utc>,
}

/// Filters of a reservation listing; times select bookings overlapping `[from, to)`.
#[derive(Debug, Clone, Default)]
pub struct ReservationFilter {
    pub equipment_id: Option<String>,
    pub user_id: Option<String>,
    pub status: Option<ReservationStatus>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub limit: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WaitlistRecord {
    pub id: String,
    pub makerspace_id: String,
    pub equipment_id: String,
    pub user_id: String,
    pub start_at: DateTime<Utc>,
    pub end_at: DateTime<Utc>,
    /// waiting, offered or cancelled.
    pub status: String,
    pub offered_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct WaitlistRow {
    id: String,
    makerspace_id: String,
    equipment_id: String,
    user_id: String,
    start_at: DateTime<Utc>,
    end_at: DateTime<Utc>,
    status: String,
    offered_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
}

impl From<WaitlistRow> for WaitlistRecord {
    fn from(r: WaitlistRow) -> Self {
        WaitlistRecord {
            id: r.id,
            makerspace_id: r.makerspace_id,
            equipment_id: r.equipment_id,
            user_id: r.user_id,
            start_at: r.start_at,
            end_at: r.end_at,
            status: r.status,
            offered_at: r.offered_at,
            created_at: r.created_at,
        }
    }
}

const WAITLIST_SELECT: &str = "SELECT id, makerspace_id, equipment_id, user_id, start_at, end_at, status, \
     offered_at, created_at FROM reservation_waitlist";

/// Inserts a line of a reservation's history inside a transaction.
macro_rules! insert_event {
    ($executor:expr, $r:expr, $action:expr, $actor:expr, $at:expr) => {{
        let r: &ReservationRecord = $r;
        sqlx::query(
            "INSERT INTO reservation_events (reservation_id, makerspace_id, action, actor, at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&r.id)
        .bind(&r.makerspace_id)
        .bind($action)
        .bind($actor)
        .bind($at)
        .execute($executor)
        .await?;
    }};
}

/// The check of a write that must not collide: the holding bookings of the machine that
/// overlap the guarded interval, other than the reservation itself.
macro_rules! conflicts_in {
    ($executor:expr, $equipment_id:expr, $except_id:expr, $guard:expr) => {{
        let (from, to): (DateTime<Utc>, DateTime<Utc>) = $guard;
        let rows: Vec<ReservationRow> = sqlx::query_as(CONFLICTS)
            .bind($equipment_id)
            .bind(from)
            .bind(to)
            .bind($except_id)
            .fetch_all($executor)
            .await?;
        rows
    }};
}

/// Binds a new booking's columns as `$1`..`$15` (in the order of the table) and its guarded
/// interval as `$16`, `$17`: the parameters of `book_in!` and of the PostgreSQL functions
/// `book_reservation` and `book_reservations`.
macro_rules! bind_booking {
    ($query:expr, $r:expr, $guard:expr) => {{
        let r: &ReservationRecord = $r;
        let (from, to): (DateTime<Utc>, DateTime<Utc>) = $guard;
        $query
            .bind(&r.id)
            .bind(&r.makerspace_id)
            .bind(&r.equipment_id)
            .bind(&r.user_id)
            .bind(r.kind.as_str())
            .bind(r.status.as_str())
            .bind(r.start_at)
            .bind(r.end_at)
            .bind(&r.purpose)
            .bind(&r.created_by)
            .bind(&r.decided_by)
            .bind(&r.reason)
            .bind(r.checked_in_at)
            .bind(r.created_at)
            .bind(r.updated_at)
            .bind(from)
            .bind(to)
    }};
}
pub(super) use bind_booking;

/// Inserts a new reservation unless a holding booking of the machine overlaps the guarded
/// interval (pending requests are checked too: a request for a slot already held is
/// pointless). One statement; the trigger `reservation_created_event` writes its history line.
/// True if it was written.
macro_rules! book_in {
    ($executor:expr, $r:expr, $guard:expr) => {{
        let query = sqlx::query_as(
            "INSERT INTO reservations (id, makerspace_id, equipment_id, user_id, kind, status, start_at, end_at,
             purpose, created_by, decided_by, reason, checked_in_at, created_at, updated_at)
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15
             WHERE NOT EXISTS (SELECT 1 FROM reservations WHERE equipment_id = $3
                 AND status IN ('confirmed', 'checked_in') AND start_at < $17 AND end_at > $16 AND id <> $1)
             RETURNING id",
        );
        let written: Option<(String,)> =
            bind_booking!(query, $r, $guard).fetch_optional($executor).await.map_err(StoreError::from_write)?;
        written.is_some()
    }};
}
pub(super) use book_in;

/// Writes a reservation's new status (and decision fields) if it is still in one of the
/// expected statuses; checks collisions first when the new status holds the slot.
macro_rules! transition_in {
    ($tx:expr, $r:expr, $from:expr, $guard:expr, $action:expr, $actor:expr) => {{
        let r: &ReservationRecord = $r;
        let from: &[ReservationStatus] = $from;
        let current: Option<(String,)> =
            sqlx::query_as("SELECT status FROM reservations WHERE id = $1").bind(&r.id).fetch_optional(&mut *$tx).await?;
        let expected = current
            .and_then(|(s,)| ReservationStatus::parse(&s))
            .is_some_and(|s| from.contains(&s));
        if !expected {
            $tx.rollback().await?;
            BookOutcome::Stale
        } else {
            let rows =
                if r.status.holds_slot() { conflicts_in!(&mut *$tx, &r.equipment_id, &r.id, $guard) } else { Vec::new() };
            if !rows.is_empty() {
                $tx.rollback().await?;
                BookOutcome::Conflict(rows.into_iter().map(ReservationRecord::try_from).collect::<Result<_, _>>()?)
            } else {
                sqlx::query(
                    "UPDATE reservations SET status = $2, decided_by = $3, reason = $4, checked_in_at = $5, updated_at = $6
                     WHERE id = $1",
                )
                .bind(&r.id).bind(r.status.as_str()).bind(&r.decided_by).bind(&r.reason).bind(r.checked_in_at)
                .bind(r.updated_at)
                .execute(&mut *$tx)
                .await
                .map_err(StoreError::from_write)?;
                insert_event!(&mut *$tx, r, $action, $actor, r.updated_at);
                $tx.commit().await?;
                BookOutcome::Done
            }
        }
    }};
}

/// Key of the PostgreSQL advisory lock that serializes booking writes of one machine.
const LOCK_MACHINE: &str = "SELECT pg_advisory_xact_lock(hashtextextended('reservation:' || $1, 0))";

impl Store {
    /// Stores a new reservation if no holding booking of the machine overlaps `guard`;
    /// otherwise nothing is written and the overlapping bookings come back as `Ok(Err(..))`.
    /// Its history starts with a "created" line by `r.created_by`.
    pub async fn create_reservation(
        &self,
        r: &ReservationRecord,
        guard: (DateTime<Utc>, DateTime<Utc>),
    ) -> Result<Result<(), Vec<ReservationRecord>>, StoreError> {
        // On SQLite a refusal then reads the bookings in the way. Should they be gone by then
        // (cancelled in between), the booking is tried again.
        for _ in 0..3 {
            let (booked, answer) = tokio::sync::oneshot::channel();
            let job = BookingJob { record: r.clone(), guard, booked };
            self.bookings.send(job).await.map_err(|_| sqlx::Error::PoolClosed)?;
            match answer.await.map_err(|_| sqlx::Error::PoolClosed)? {
                Ok(Booked::Written) => return Ok(Ok(())),
                Ok(Booked::InTheWay(rows)) => return Ok(Err(rows)),
                Ok(Booked::Refused) => {
                    let rows = self.holding_overlaps(&r.equipment_id, &r.id, guard).await?;
                    if !rows.is_empty() {
                        return Ok(Err(rows));
                    }
                }
                // The exclusion constraint (PostgreSQL) caught an overlap the check did not
                // see, or the id is taken.
                Err(StoreError::Conflict) => {
                    let around = (guard.0.min(r.start_at), guard.1.max(r.end_at));
                    let rows = self.holding_overlaps(&r.equipment_id, &r.id, around).await?;
                    return if rows.is_empty() { Err(StoreError::Conflict) } else { Ok(Err(rows)) };
                }
                Err(other) => return Err(other),
            }
        }
        Err(StoreError::Conflict)
    }

    /// Moves a reservation to `r.status` (with its decision fields) if it is still in one of
    /// `from`. A move into a holding status (approval) checks for overlaps like a booking.
    pub async fn transition_reservation(
        &self,
        r: &ReservationRecord,
        from: &[ReservationStatus],
        guard: (DateTime<Utc>, DateTime<Utc>),
        action: &str,
        actor: &str,
    ) -> Result<BookOutcome, StoreError> {
        let result: Result<BookOutcome, StoreError> = async {
            Ok(match &self.db {
                super::Db::Sqlite(db) => {
                    let mut tx = db.writes.begin_with("BEGIN IMMEDIATE").await?;
                    transition_in!(tx, r, from, guard, action, actor)
                }
                super::Db::Postgres(pool) => {
                    let mut tx = pool.begin().await?;
                    sqlx::query(LOCK_MACHINE).bind(&r.equipment_id).execute(&mut *tx).await?;
                    transition_in!(tx, r, from, guard, action, actor)
                }
            })
        }
        .await;
        match result {
            Err(StoreError::Conflict) => {
                let around = (guard.0.min(r.start_at), guard.1.max(r.end_at));
                Ok(BookOutcome::Conflict(self.holding_overlaps(&r.equipment_id, &r.id, around).await?))
            }
            other => other,
        }
    }

    /// Holding bookings of a machine overlapping `guard`, other than `except_id`.
    pub async fn holding_overlaps(
        &self,
        equipment_id: &str,
        except_id: &str,
        guard: (DateTime<Utc>, DateTime<Utc>),
    ) -> Result<Vec<ReservationRecord>, StoreError> {
        let rows: Vec<ReservationRow> =
            super::with_pool!(self, pool => conflicts_in!(pool, equipment_id, except_id, guard));
        rows.into_iter().map(ReservationRecord::try_from).collect()
    }

    pub async fn get_reservation(
        &self,
        makerspace_id: &str,
        id: &str,
    ) -> Result<Option<ReservationRecord>, StoreError> {
        let sql = format!("{SELECT} WHERE makerspace_id = $1 AND id = $2");
        let row: Option<ReservationRow> = super::with_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(makerspace_id).bind(id).fetch_optional(pool).await?
        });
        row.map(ReservationRecord::try_from).transpose()
    }

    /// Reservations of a makerspace, by start time.
    pub async fn list_reservations(
        &self,
        makerspace_id: &str,
        f: &ReservationFilter,
    ) -> Result<Vec<ReservationRecord>, StoreError> {
        let rows: Vec<ReservationRow> = super::with_pool!(self, pool => {
            let mut q = QueryBuilder::new(SELECT);
            q.push(" WHERE makerspace_id = ").push_bind(makerspace_id.to_string());
            if let Some(e) = &f.equipment_id {
                q.push(" AND equipment_id = ").push_bind(e.clone());
            }
            if let Some(u) = &f.user_id {
                q.push(" AND user_id = ").push_bind(u.clone());
            }
            if let Some(s) = f.status {
                q.push(" AND status = ").push_bind(s.as_str());
            }
            if let Some(from) = f.from {
                q.push(" AND end_at > ").push_bind(from);
            }
            if let Some(to) = f.to {
                q.push(" AND start_at < ").push_bind(to);
            }
            q.push(" ORDER BY start_at, id LIMIT ").push_bind(f.limit);
            q.build_query_as().fetch_all(pool).await?
        });
        rows.into_iter().map(ReservationRecord::try_from).collect()
    }

    /// Machines of a makerspace with a holding booking overlapping `[from, to)`.
    pub async fn busy_equipment(
        &self,
        makerspace_id: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError> {
        let rows: Vec<(String,)> = super::with_pool!(self, pool => {
            sqlx::query_as(
                "SELECT DISTINCT equipment_id FROM reservations WHERE makerspace_id = $1
                 AND status IN ('confirmed', 'checked_in') AND start_at < $3 AND end_at > $2",
            )
            .bind(makerspace_id).bind(from).bind(to)
            .fetch_all(pool)
            .await?
        });
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    /// Reservations the no-show sweep must look at: confirmed bookings that have started,
    /// and checked-in bookings and maintenance windows that have ended.
    pub async fn reservations_due(&self, now: DateTime<Utc>) -> Result<Vec<ReservationRecord>, StoreError> {
        let sql = format!(
            "{SELECT} WHERE (status = 'confirmed' AND kind = 'booking' AND start_at <= $1)
             OR (status = 'confirmed' AND kind = 'maintenance' AND end_at <= $1)
             OR (status = 'checked_in' AND end_at <= $1)
             ORDER BY start_at, id LIMIT 500"
        );
        let rows: Vec<ReservationRow> = super::with_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(now).fetch_all(pool).await?
        });
        rows.into_iter().map(ReservationRecord::try_from).collect()
    }

    /// A reservation's history, oldest first.
    pub async fn reservation_events(&self, reservation_id: &str) -> Result<Vec<ReservationEvent>, StoreError> {
        let rows = super::with_pool!(self, pool => {
            sqlx::query_as("SELECT action, actor, at FROM reservation_events WHERE reservation_id = $1 ORDER BY id")
                .bind(reservation_id)
                .fetch_all(pool)
                .await?
        });
        Ok(rows)
    }

    pub async fn insert_waitlist(&self, w: &WaitlistRecord) -> Result<(), StoreError> {
        super::with_writer!(self, pool => {
            sqlx::query(
                "INSERT INTO reservation_waitlist (id, makerspace_id, equipment_id, user_id, start_at, end_at, status,
                 offered_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(&w.id).bind(&w.makerspace_id).bind(&w.equipment_id).bind(&w.user_id).bind(w.start_at)
            .bind(w.end_at).bind(&w.status).bind(w.offered_at).bind(w.created_at)
            .execute(pool)
            .await
            .map_err(StoreError::from_write)?;
        });
        Ok(())
    }

    pub async fn get_waitlist(&self, makerspace_id: &str, id: &str) -> Result<Option<WaitlistRecord>, StoreError> {
        let sql = format!("{WAITLIST_SELECT} WHERE makerspace_id = $1 AND id = $2");
        let row: Option<WaitlistRow> = super::with_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(makerspace_id).bind(id).fetch_optional(pool).await?
        });
        Ok(row.map(WaitlistRecord::from))
    }

    /// Live (waiting or offered, not yet over) waitlist entries of a makerspace, optionally
    /// of one person.
    pub async fn list_waitlist(
        &self,
        makerspace_id: &str,
        user_id: Option<&str>,
    ) -> Result<Vec<WaitlistRecord>, StoreError> {
        let rows: Vec<WaitlistRow> = super::with_pool!(self, pool => {
            let mut q = QueryBuilder::new(WAITLIST_SELECT);
            q.push(" WHERE status IN ('waiting', 'offered') AND makerspace_id = ").push_bind(makerspace_id.to_string());
            q.push(" AND end_at > ").push_bind(Utc::now());
            if let Some(u) = user_id {
                q.push(" AND user_id = ").push_bind(u.to_string());
            }
            q.push(" ORDER BY created_at, id LIMIT 1000");
            q.build_query_as().fetch_all(pool).await?
        });
        Ok(rows.into_iter().map(WaitlistRecord::from).collect())
    }

    /// Waiting entries of a machine overlapping `[from, to)`, first come first.
    pub async fn waiting_for(
        &self,
        equipment_id: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<WaitlistRecord>, StoreError> {
        let sql = format!(
            "{WAITLIST_SELECT} WHERE equipment_id = $1 AND status = 'waiting' AND start_at < $3 AND end_at > $2
             ORDER BY created_at, id"
        );
        let rows: Vec<WaitlistRow> = super::with_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(equipment_id).bind(from).bind(to).fetch_all(pool).await?
        });
        Ok(rows.into_iter().map(WaitlistRecord::from).collect())
    }

    /// Moves a waitlist entry from one status to another; false if it was not in `from`.
    pub async fn set_waitlist_status(
        &self,
        id: &str,
        from: &str,
        to: &str,
        offered_at: Option<DateTime<Utc>>,
    ) -> Result<bool, StoreError> {
        let affected = super::with_writer!(self, pool => {
            sqlx::query("UPDATE reservation_waitlist SET status = $3, offered_at = COALESCE($4, offered_at) WHERE id = $1 AND status = $2")
                .bind(id).bind(from).bind(to).bind(offered_at)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(affected > 0)
    }
}

/// Live (waiting or offered) waitlist entries of one person for a machine overlapping
/// `[$3, $4)`, oldest first.
const WAITLIST_MINE: &str = "SELECT id, makerspace_id, equipment_id, user_id, start_at, end_at, status, offered_at, \
     created_at FROM reservation_waitlist WHERE equipment_id = $1 AND user_id = $2 \
     AND status IN ('waiting', 'offered') AND start_at < $4 AND end_at > $3 ORDER BY created_at, id";

/// Key of the PostgreSQL advisory lock that serializes one person's waitlist joins for one
/// machine (the check for a duplicate and the insert).
const LOCK_WAITLIST: &str = "SELECT pg_advisory_xact_lock(hashtextextended('waitlist:' || $1 || ':' || $2, 0))";

/// Stores a new waitlist entry unless the same person already waits for (or was offered) an
/// overlapping interval of the machine; then that entry comes back and nothing is written.
macro_rules! join_in {
    ($tx:expr, $w:expr) => {{
        let w: &WaitlistRecord = $w;
        let existing: Option<WaitlistRow> = sqlx::query_as(WAITLIST_MINE)
            .bind(&w.equipment_id)
            .bind(&w.user_id)
            .bind(w.start_at)
            .bind(w.end_at)
            .fetch_optional(&mut *$tx)
            .await?;
        if existing.is_none() {
            sqlx::query(
                "INSERT INTO reservation_waitlist (id, makerspace_id, equipment_id, user_id, start_at, end_at, status,
                 offered_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(&w.id)
            .bind(&w.makerspace_id)
            .bind(&w.equipment_id)
            .bind(&w.user_id)
            .bind(w.start_at)
            .bind(w.end_at)
            .bind(&w.status)
            .bind(w.offered_at)
            .bind(w.created_at)
            .execute(&mut *$tx)
            .await
            .map_err(StoreError::from_write)?;
            $tx.commit().await?;
        } else {
            $tx.rollback().await?;
        }
        existing
    }};
}

// The waitlist's life: waiting -> offered (a slot freed up) -> booked (the person booked it)
// or expired (not booked within the offer window); waiting or offered -> cancelled (left).
impl Store {
    /// Queues a person for a slot. A person waits at most once for any instant of a machine:
    /// when a live entry of theirs overlaps, it comes back as `Ok(Err(..))` and nothing is
    /// written. Race-safe like bookings: the check and the insert share a transaction that
    /// SQLite serializes (`BEGIN IMMEDIATE`) and PostgreSQL serializes per person and machine
    /// (advisory lock), with the `reservation_waitlist_no_duplicate` exclusion constraint
    /// behind it.
    pub async fn join_waitlist(&self, w: &WaitlistRecord) -> Result<Result<(), WaitlistRecord>, StoreError> {
        let result: Result<Option<WaitlistRow>, StoreError> = async {
            Ok(match &self.db {
                super::Db::Sqlite(db) => {
                    let mut tx = db.writes.begin_with("BEGIN IMMEDIATE").await?;
                    join_in!(tx, w)
                }
                super::Db::Postgres(pool) => {
                    let mut tx = pool.begin().await?;
                    sqlx::query(LOCK_WAITLIST).bind(&w.equipment_id).bind(&w.user_id).execute(&mut *tx).await?;
                    join_in!(tx, w)
                }
            })
        }
        .await;
        match result {
            Ok(None) => Ok(Ok(())),
            Ok(Some(existing)) => Ok(Err(existing.into())),
            // The exclusion constraint (PostgreSQL) caught a duplicate the check did not see.
            Err(StoreError::Conflict) => {
                match self.live_waitlist_of(&w.equipment_id, &w.user_id, w.start_at, w.end_at).await?.into_iter().next()
                {
                    Some(existing) => Ok(Err(existing)),
                    None => Err(StoreError::Conflict),
                }
            }
            Err(other) => Err(other),
        }
    }

    /// Live entries of a person for a machine overlapping `[from, to)`, oldest first.
    pub async fn live_waitlist_of(
        &self,
        equipment_id: &str,
        user_id: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<WaitlistRecord>, StoreError> {
        let rows: Vec<WaitlistRow> = super::with_pool!(self, pool => {
            sqlx::query_as(WAITLIST_MINE).bind(equipment_id).bind(user_id).bind(from).bind(to).fetch_all(pool).await?
        });
        Ok(rows.into_iter().map(WaitlistRecord::from).collect())
    }

    /// A person booked `[from, to)` of a machine: their live entries overlapping it become
    /// `booked` (kept, for the history). Returns the entries changed.
    pub async fn mark_waitlist_booked(
        &self,
        equipment_id: &str,
        user_id: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<WaitlistRecord>, StoreError> {
        // Most bookings are made by people not on the waitlist: a read tells, and spares the
        // write connection (every booking comes here).
        let waiting: Option<(i32,)> = super::with_pool!(self, pool => {
            sqlx::query_as(
                "SELECT 1 FROM reservation_waitlist WHERE equipment_id = $1 AND user_id = $2
                 AND status IN ('waiting', 'offered') AND start_at < $4 AND end_at > $3 LIMIT 1",
            )
            .bind(equipment_id).bind(user_id).bind(from).bind(to)
            .fetch_optional(pool)
            .await?
        });
        if waiting.is_none() {
            return Ok(Vec::new());
        }
        let rows: Vec<WaitlistRow> = super::with_writer!(self, pool => {
            sqlx::query_as(
                "UPDATE reservation_waitlist SET status = 'booked' WHERE equipment_id = $1 AND user_id = $2
                 AND status IN ('waiting', 'offered') AND start_at < $4 AND end_at > $3
                 RETURNING id, makerspace_id, equipment_id, user_id, start_at, end_at, status, offered_at, created_at",
            )
            .bind(equipment_id).bind(user_id).bind(from).bind(to)
            .fetch_all(pool)
            .await?
        });
        Ok(rows.into_iter().map(WaitlistRecord::from).collect())
    }

    /// Offers a waiting entry its slot, unless it is no longer waiting or another live offer
    /// for the machine overlaps it (one offer at a time for any instant: the next in line is
    /// offered when that one is booked, left or expires). True if it was offered.
    pub async fn offer_waitlist_entry(&self, id: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let affected = super::with_writer!(self, pool => {
            sqlx::query(
                "UPDATE reservation_waitlist SET status = 'offered', offered_at = $2 WHERE id = $1 AND status = 'waiting'
                 AND NOT EXISTS (SELECT 1 FROM reservation_waitlist o WHERE o.equipment_id = reservation_waitlist.equipment_id
                 AND o.status = 'offered' AND o.start_at < reservation_waitlist.end_at
                 AND o.end_at > reservation_waitlist.start_at)",
            )
            .bind(id).bind(now)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(affected > 0)
    }

    /// Offers made at or before `cutoff` and still not booked, oldest first.
    pub async fn stale_offers(&self, cutoff: DateTime<Utc>) -> Result<Vec<WaitlistRecord>, StoreError> {
        let sql = format!(
            "{WAITLIST_SELECT} WHERE status = 'offered' AND offered_at <= $1 ORDER BY offered_at, id LIMIT 500"
        );
        let rows: Vec<WaitlistRow> = super::with_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(cutoff).fetch_all(pool).await?
        });
        Ok(rows.into_iter().map(WaitlistRecord::from).collect())
    }

    /// Waitlist entries of a makerspace in one status (any time), optionally of one person,
    /// newest first.
    pub async fn list_waitlist_in(
        &self,
        makerspace_id: &str,
        status: &str,
        user_id: Option<&str>,
    ) -> Result<Vec<WaitlistRecord>, StoreError> {
        let rows: Vec<WaitlistRow> = super::with_pool!(self, pool => {
            let mut q = QueryBuilder::new(WAITLIST_SELECT);
            q.push(" WHERE makerspace_id = ").push_bind(makerspace_id.to_string());
            q.push(" AND status = ").push_bind(status.to_string());
            if let Some(u) = user_id {
                q.push(" AND user_id = ").push_bind(u.to_string());
            }
            q.push(" ORDER BY created_at DESC, id LIMIT 1000");
            q.build_query_as().fetch_all(pool).await?
        });
        Ok(rows.into_iter().map(WaitlistRecord::from).collect())
    }

    /// Holding bookings (of every makerspace) that overlap `[from, to)`, by start: what the
    /// machine actors must know about to show `reserved`.
    pub async fn holding_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<ReservationRecord>, StoreError> {
        let sql = format!(
            "{SELECT} WHERE status IN ('confirmed', 'checked_in') AND start_at < $2 AND end_at > $1
             ORDER BY start_at, id LIMIT $3"
        );
        let rows: Vec<ReservationRow> = super::with_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(from).bind(to).bind(limit).fetch_all(pool).await?
        });
        rows.into_iter().map(ReservationRecord::try_from).collect()
    }

    /// One machine's holding bookings that overlap `[from, to)`, by start: what the job
    /// router checks a job's estimated window against.
    pub async fn holding_of(
        &self,
        equipment_id: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<(DateTime<Utc>, DateTime<Utc>)>, StoreError> {
        let rows: Vec<(DateTime<Utc>, DateTime<Utc>)> = super::with_pool!(self, pool => {
            sqlx::query_as(
                "SELECT start_at, end_at FROM reservations WHERE equipment_id = $1
                 AND status IN ('confirmed', 'checked_in') AND start_at < $3 AND end_at > $2
                 ORDER BY start_at, id LIMIT 200",
            )
            .bind(equipment_id)
            .bind(from)
            .bind(to)
            .fetch_all(pool)
            .await?
        });
        Ok(rows)
    }
}
