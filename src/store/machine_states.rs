//! The live state each machine actor persists on every transition, and the transition log.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::QueryBuilder;

use super::kiosks::{insert_attempts, KioskAttempt};
use super::{json_column, to_json_text, with_pool, with_writer, Store, StoreError};
use crate::domain::jobs::JobEvent;
use crate::domain::machine::{LiveState, Session, Transition};

/// One state change to persist: the new snapshot and, when the state changed, the event;
/// when a session ended, its usage record.
#[derive(Debug, Clone)]
pub struct StateChange {
    pub equipment_id: String,
    pub makerspace_id: String,
    pub live: LiveState,
    pub transition: Option<Transition>,
    pub ended_session: Option<EndedSession>,
    /// The job event the machine reported, stored in the job event log.
    pub job_event: Option<JobEvent>,
}

/// A finished usage session, with what it costs.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct EndedSession {
    pub session: Session,
    pub ended_at: DateTime<Utc>,
    pub minutes: f64,
    /// Of `minutes`, the time the machine was `running` (cutting, printing, or drawing more
    /// than its plug's `running_above_w`).
    pub busy_minutes: f64,
    pub hourly_rate: Option<f64>,
    pub cost: f64,
    /// Who ended it: a user id, `kiosk`, `system`.
    pub ended_by: String,
    /// Why: `locked`, `time_up`, `skill_revoked`, `member_suspended`, ...
    pub end_reason: String,
}

impl EndedSession {
    /// Ends `session` at `ended_at`, charging `hourly_rate` per started minute's share of an
    /// hour, rounded to cents.
    pub fn close(
        session: Session,
        ended_at: DateTime<Utc>,
        hourly_rate: Option<f64>,
        ended_by: &str,
        end_reason: &str,
    ) -> Self {
        let minutes = ((ended_at - session.started_at).num_milliseconds().max(0) as f64) / 60_000.0;
        let cost = hourly_rate.map_or(0.0, |rate| (minutes / 60.0 * rate * 100.0).round() / 100.0);
        EndedSession {
            session,
            ended_at,
            minutes: (minutes * 100.0).round() / 100.0,
            busy_minutes: 0.0,
            hourly_rate,
            cost,
            ended_by: ended_by.to_string(),
            end_reason: end_reason.to_string(),
        }
    }

    /// The same record with the time the machine was running during the session.
    pub fn with_busy(self, busy: chrono::Duration) -> Self {
        let busy_minutes = (busy.num_milliseconds().max(0) as f64) / 60_000.0;
        // Rounded like `minutes`, and never more than them.
        EndedSession { busy_minutes: ((busy_minutes * 100.0).round() / 100.0).min(self.minutes), ..self }
    }
}

/// A stored usage session.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct UsageRow {
    pub id: String,
    pub equipment_id: String,
    pub user_id: String,
    pub member_id: Option<String>,
    pub started_at: DateTime<Utc>,
    pub ended_at: DateTime<Utc>,
    pub minutes: f64,
    /// Unknown (`None`) for sessions stored before makrcave counted it.
    pub busy_minutes: Option<f64>,
    pub hourly_rate: Option<f64>,
    pub cost: f64,
    pub ended_by: String,
    pub end_reason: String,
}

#[derive(sqlx::FromRow)]
struct StateRow {
    equipment_id: String,
    live: String,
}

/// A row of the job event log.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct JobEventRow {
    pub equipment_id: String,
    pub event: String,
    /// The event as JSON.
    pub detail: String,
    pub at: DateTime<Utc>,
}

/// A row of the transition log.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct MachineEvent {
    pub equipment_id: String,
    pub from_state: String,
    pub to_state: String,
    pub at: DateTime<Utc>,
}

impl Store {
    /// Stores a batch of state changes and kiosk attempts in one transaction (the state
    /// writer batches under load): the latest state of each machine, then the transitions,
    /// the ended sessions and the attempts, one multi-row insert each, so that a batch costs
    /// a few statements, not a few per entry.
    pub async fn save_floor_batch(&self, changes: &[StateChange], attempts: &[KioskAttempt]) -> Result<(), StoreError> {
        let now = Utc::now();
        // A machine's later change in the batch supersedes its earlier ones.
        let mut latest: Vec<&StateChange> = Vec::with_capacity(changes.len());
        for change in changes.iter().rev() {
            if !latest.iter().any(|c| c.equipment_id == change.equipment_id) {
                latest.push(change);
            }
        }
        let transitions: Vec<(&StateChange, Transition)> =
            changes.iter().filter_map(|c| c.transition.map(|t| (c, t))).collect();
        let job_events: Vec<(&StateChange, &JobEvent)> =
            changes.iter().filter_map(|c| c.job_event.as_ref().map(|e| (c, e))).collect();
        let sessions: Vec<(&StateChange, &EndedSession)> =
            changes.iter().filter_map(|c| c.ended_session.as_ref().map(|e| (c, e))).collect();
        with_writer!(self, pool => {
            let mut tx = pool.begin().await?;
            for change in latest {
                sqlx::query(
                    "INSERT INTO machine_states (equipment_id, state, since, live, updated_at)
                     SELECT $1, $2, $3, $4, $5 WHERE EXISTS (SELECT 1 FROM equipment WHERE id = $1)
                     ON CONFLICT (equipment_id) DO UPDATE SET state = excluded.state, since = excluded.since,
                     live = excluded.live, updated_at = excluded.updated_at",
                )
                .bind(&change.equipment_id)
                .bind(change.live.state.as_str())
                .bind(change.live.since)
                .bind(to_json_text(&change.live))
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            if !transitions.is_empty() {
                QueryBuilder::new("INSERT INTO machine_events (equipment_id, makerspace_id, from_state, to_state, at) ")
                    .push_values(&transitions, |mut row, (change, t)| {
                        row.push_bind(&change.equipment_id)
                            .push_bind(&change.makerspace_id)
                            .push_bind(t.from.as_str())
                            .push_bind(t.to.as_str())
                            .push_bind(change.live.since);
                    })
                    .build()
                    .execute(&mut *tx)
                    .await?;
            }
            if !sessions.is_empty() {
                QueryBuilder::new(
                    "INSERT INTO usage_sessions (id, makerspace_id, equipment_id, user_id, member_id, started_at,
                     ended_at, minutes, busy_minutes, hourly_rate, cost, ended_by, end_reason, charged) ",
                )
                .push_values(&sessions, |mut row, (change, ended)| {
                    row.push_bind(&ended.session.id)
                        .push_bind(&change.makerspace_id)
                        .push_bind(&change.equipment_id)
                        .push_bind(&ended.session.user_id)
                        .push_bind(&ended.session.member_id)
                        .push_bind(ended.session.started_at)
                        .push_bind(ended.ended_at)
                        .push_bind(ended.minutes)
                        .push_bind(ended.busy_minutes)
                        .push_bind(ended.hourly_rate)
                        .push_bind(ended.cost)
                        .push_bind(&ended.ended_by)
                        .push_bind(&ended.end_reason)
                        // Billing's sweep charges it (services::billing): a moment later, off
                        // this batch, which stays a few statements.
                        .push_bind(false);
                })
                .push(" ON CONFLICT (id) DO NOTHING")
                .build()
                .execute(&mut *tx)
                .await?;
            }
            if !job_events.is_empty() {
                QueryBuilder::new("INSERT INTO machine_job_events (makerspace_id, equipment_id, event, detail, at) ")
                    .push_values(&job_events, |mut row, (change, event)| {
                        row.push_bind(&change.makerspace_id)
                            .push_bind(&change.equipment_id)
                            .push_bind(event.name())
                            .push_bind(to_json_text(event))
                            .push_bind(change.live.last_heard.unwrap_or(now));
                    })
                    .build()
                    .execute(&mut *tx)
                    .await?;
            }
            if !attempts.is_empty() {
                insert_attempts!(&mut *tx, attempts);
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// The last persisted state of every machine, to start actors from.
    pub async fn load_states(&self) -> Result<HashMap<String, LiveState>, StoreError> {
        let rows: Vec<StateRow> = with_pool!(self, pool => {
            sqlx::query_as("SELECT equipment_id, live FROM machine_states").fetch_all(pool).await?
        });
        rows.into_iter().map(|r| Ok((r.equipment_id, json_column("machine_states.live", &r.live)?))).collect()
    }

    pub async fn load_state(&self, equipment_id: &str) -> Result<Option<LiveState>, StoreError> {
        let row: Option<StateRow> = with_pool!(self, pool => {
            sqlx::query_as("SELECT equipment_id, live FROM machine_states WHERE equipment_id = $1")
                .bind(equipment_id)
                .fetch_optional(pool)
                .await?
        });
        row.map(|r| json_column("machine_states.live", &r.live)).transpose()
    }

    /// The usage sessions of one machine, oldest first.
    pub async fn usage_sessions(&self, equipment_id: &str) -> Result<Vec<UsageRow>, StoreError> {
        let rows = with_pool!(self, pool => {
            sqlx::query_as(
                "SELECT id, equipment_id, user_id, member_id, started_at, ended_at, minutes, busy_minutes, hourly_rate, cost,
                 ended_by, end_reason FROM usage_sessions WHERE equipment_id = $1 ORDER BY started_at, id",
            )
            .bind(equipment_id)
            .fetch_all(pool)
            .await?
        });
        Ok(rows)
    }

    /// The job event log of one machine, oldest first.
    pub async fn job_events(&self, equipment_id: &str) -> Result<Vec<JobEventRow>, StoreError> {
        let rows = with_pool!(self, pool => {
            sqlx::query_as(
                "SELECT equipment_id, event, detail, at FROM machine_job_events WHERE equipment_id = $1 ORDER BY id",
            )
            .bind(equipment_id)
            .fetch_all(pool)
            .await?
        });
        Ok(rows)
    }

    /// The transition log of one machine, oldest first.
    pub async fn machine_events(&self, equipment_id: &str) -> Result<Vec<MachineEvent>, StoreError> {
        let rows = with_pool!(self, pool => {
            sqlx::query_as(
                "SELECT equipment_id, from_state, to_state, at FROM machine_events WHERE equipment_id = $1 ORDER BY id",
            )
            .bind(equipment_id)
            .fetch_all(pool)
            .await?
        });
        Ok(rows)
    }
}
