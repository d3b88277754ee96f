//! A queued job's priority, changed by a person. The new priority and a transition
//! `queued -> queued` whose reason says who changed it from what to what are written in one
//! transaction, so the job's history (append-only) holds every change. Only a queued job
//! changes: the status is checked in that transaction, as [`Store::move_job`] does.

use chrono::{DateTime, Utc};
use sqlx::QueryBuilder;

use super::jobs::{JobRecord, JobRow, INSERT_TRANSITION, JOB_COLUMNS};
use super::{with_writer, Store, StoreError};
use crate::domain::job_lifecycle::JobStatus;

/// A change of a queued job's priority.
#[derive(Debug, Clone, PartialEq)]
pub struct PriorityChange {
    pub job_id: String,
    pub priority: i32,
    /// Who changed it (a user id).
    pub actor: String,
    pub at: DateTime<Utc>,
}

/// The reason written into the job's history.
fn reason(from: i32, to: i32, actor: &str) -> String {
    format!("priority {from} → {to} by {actor}")
}

impl Store {
    /// Sets the priority of a job that is still queued and appends the transition saying so.
    /// `None`: the job is not queued any more (or does not exist); nothing is written. The
    /// same priority again writes nothing and answers the job as it is.
    pub async fn set_job_priority(&self, change: &PriorityChange) -> Result<Option<JobRecord>, StoreError> {
        let lock = if self.kind() == "postgres" { " FOR UPDATE" } else { "" };
        let queued = JobStatus::Queued.as_str();
        let job: Option<JobRecord> = with_writer!(self, pool => {
            let mut tx = pool.begin().await?;
            // Its status and priority now, locked until the change commits (SQLite has one
            // writer).
            let current: Option<(String, i32)> =
                sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT status, priority FROM jobs WHERE id = $1{lock}")))
                    .bind(&change.job_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            let Some((status, from)) = current else { return Ok(None) };
            if status != queued {
                return Ok(None);
            }
            let mut update = QueryBuilder::new("UPDATE jobs SET priority = ");
            update.push_bind(change.priority);
            if from != change.priority {
                update.push(", updated_at = ").push_bind(change.at);
            }
            update.push(" WHERE id = ").push_bind(change.job_id.clone());
            update.push(format!(" RETURNING {JOB_COLUMNS}"));
            let row: JobRow = update.build_query_as().fetch_one(&mut *tx).await?;
            let job = JobRecord::try_from(row)?;
            if from != change.priority {
                sqlx::query(INSERT_TRANSITION)
                    .bind(&change.job_id)
                    .bind(&job.makerspace_id)
                    .bind(queued)
                    .bind(queued)
                    .bind(&job.equipment_id)
                    .bind(&change.actor)
                    .bind(reason(from, change.priority, &change.actor))
                    .bind(change.at)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Some(job)
        });
        Ok(job)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reason_names_both_priorities_and_the_person() {
        assert_eq!(reason(0, 5, "boss"), "priority 0 → 5 by boss");
        assert_eq!(reason(3, -2, "ann"), "priority 3 → -2 by ann");
    }
}
