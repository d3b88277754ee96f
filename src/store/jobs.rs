//! Jobs: their files (content-addressed), the queue (one row per copy), and each job's
//! transitions, appended to and never rewritten. A job's status only moves by a
//! compare-and-set on the status it had ([`Store::move_job`]), in the transaction that writes
//! its transition: two writers (the router and a machine's report, or two nodes) can never
//! both move it, so nothing is sent twice.

use chrono::{DateTime, Utc};
use sqlx::QueryBuilder;

use super::{json_column, to_json_text, with_pool, with_writer, Store, StoreError};
use crate::domain::equipment::EquipmentType;
use crate::domain::inventory::Quantity;
use crate::domain::job_lifecycle::{JobStatus, Requirements};

/// An uploaded file, stored once under its SHA-256.
#[derive(Debug, Clone, PartialEq)]
pub struct JobFileRecord {
    pub sha256: String,
    /// `gcode`, `stl_binary`, `stl_ascii`, `3mf`, `svg`.
    pub kind: String,
    pub size_bytes: i64,
    pub analysis: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

/// One job: one copy of a submission.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRecord {
    pub id: String,
    pub makerspace_id: String,
    pub owner_id: String,
    pub batch_id: String,
    pub copy_number: i32,
    pub copies: i32,
    pub file_sha256: String,
    pub file_name: String,
    pub equipment_type: EquipmentType,
    pub requirements: Requirements,
    pub pinned_equipment_id: Option<String>,
    pub priority: i32,
    pub status: JobStatus,
    pub equipment_id: Option<String>,
    /// Machines it failed on; it is not sent there again.
    pub avoid_equipment: Vec<String>,
    /// How many times it was sent to a machine.
    pub attempts: i32,
    pub estimated_s: Option<i64>,
    pub grams: Option<Quantity>,
    pub progress: Option<f64>,
    pub quotes: Option<serde_json::Value>,
    pub chosen_quote: Option<serde_json::Value>,
    pub wait_reasons: Option<serde_json::Value>,
    pub failure_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// One line of a job's history.
#[derive(Debug, Clone, PartialEq)]
pub struct JobTransitionRecord {
    pub from_status: Option<JobStatus>,
    pub to_status: JobStatus,
    pub equipment_id: Option<String>,
    pub actor: String,
    pub reason: Option<String>,
    pub at: DateTime<Utc>,
}

/// A move of a job from one of `from` to `to`, with what changes with it.
#[derive(Debug, Clone, PartialEq)]
pub struct JobMove {
    pub job_id: String,
    pub from: Vec<JobStatus>,
    pub to: JobStatus,
    /// `Some(Some(id))` assigns a machine, `Some(None)` clears it, `None` keeps it.
    pub equipment_id: Option<Option<String>>,
    pub actor: String,
    pub reason: Option<String>,
    pub at: DateTime<Utc>,
    /// Counts a send to a machine.
    pub count_attempt: bool,
    /// Adds a machine the job must not go to again (it failed there).
    pub avoid: Option<String>,
    pub failure_reason: Option<String>,
}

impl JobMove {
    pub fn new(job_id: &str, from: &[JobStatus], to: JobStatus, actor: &str, at: DateTime<Utc>) -> JobMove {
        JobMove {
            job_id: job_id.to_string(),
            from: from.to_vec(),
            to,
            equipment_id: None,
            actor: actor.to_string(),
            reason: None,
            at,
            count_attempt: false,
            avoid: None,
            failure_reason: None,
        }
    }
}

/// Filters of a job list; `None` is no filter.
#[derive(Debug, Clone, Default)]
pub struct JobQuery {
    pub statuses: Vec<JobStatus>,
    pub owner_id: Option<String>,
    pub equipment_id: Option<String>,
    pub limit: i64,
    pub offset: i64,
}

pub(crate) const JOB_COLUMNS: &str =
    "id, makerspace_id, owner_id, batch_id, copy_number, copies, file_sha256, file_name, \
     equipment_type, requirements, pinned_equipment_id, priority, status, equipment_id, avoid_equipment, attempts, \
     estimated_s, grams, progress, quotes, chosen_quote, wait_reasons, failure_reason, created_at, updated_at, \
     started_at, finished_at";

#[derive(sqlx::FromRow)]
pub(crate) struct JobRow {
    id: String,
    makerspace_id: String,
    owner_id: String,
    batch_id: String,
    copy_number: i32,
    copies: i32,
    file_sha256: String,
    file_name: String,
    equipment_type: String,
    requirements: String,
    pinned_equipment_id: Option<String>,
    priority: i32,
    status: String,
    equipment_id: Option<String>,
    avoid_equipment: String,
    attempts: i32,
    estimated_s: Option<i64>,
    grams: Option<i64>,
    progress: Option<f64>,
    quotes: Option<String>,
    chosen_quote: Option<String>,
    wait_reasons: Option<String>,
    failure_reason: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
}

impl TryFrom<JobRow> for JobRecord {
    type Error = StoreError;

    fn try_from(r: JobRow) -> Result<JobRecord, StoreError> {
        let optional_json = |column: &str, text: Option<String>| text.map(|t| json_column(column, &t)).transpose();
        Ok(JobRecord {
            equipment_type: EquipmentType::parse(&r.equipment_type)
                .ok_or_else(|| StoreError::Corrupt(format!("jobs.equipment_type {:?}", r.equipment_type)))?,
            status: JobStatus::parse(&r.status)
                .ok_or_else(|| StoreError::Corrupt(format!("jobs.status {:?}", r.status)))?,
            requirements: json_column("jobs.requirements", &r.requirements)?,
            avoid_equipment: json_column("jobs.avoid_equipment", &r.avoid_equipment)?,
            quotes: optional_json("jobs.quotes", r.quotes)?,
            chosen_quote: optional_json("jobs.chosen_quote", r.chosen_quote)?,
            wait_reasons: optional_json("jobs.wait_reasons", r.wait_reasons)?,
            grams: r.grams.map(Quantity),
            id: r.id,
            makerspace_id: r.makerspace_id,
            owner_id: r.owner_id,
            batch_id: r.batch_id,
            copy_number: r.copy_number,
            copies: r.copies,
            file_sha256: r.file_sha256,
            file_name: r.file_name,
            pinned_equipment_id: r.pinned_equipment_id,
            priority: r.priority,
            equipment_id: r.equipment_id,
            attempts: r.attempts,
            estimated_s: r.estimated_s,
            progress: r.progress,
            failure_reason: r.failure_reason,
            created_at: r.created_at,
            updated_at: r.updated_at,
            started_at: r.started_at,
            finished_at: r.finished_at,
        })
    }
}

#[derive(sqlx::FromRow)]
struct JobFileRow {
    sha256: String,
    kind: String,
    size_bytes: i64,
    analysis: String,
    created_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct TransitionRow {
    from_status: Option<String>,
    to_status: String,
    equipment_id: Option<String>,
    actor: String,
    reason: Option<String>,
    at: DateTime<Utc>,
}

fn parse_status(column: &str, text: &str) -> Result<JobStatus, StoreError> {
    JobStatus::parse(text).ok_or_else(|| StoreError::Corrupt(format!("{column} {text:?}")))
}

fn push_job_filters<DB: sqlx::Database>(q: &mut QueryBuilder<DB>, makerspace_id: &str, query: &JobQuery)
where
    for<'a> String: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    q.push(" WHERE makerspace_id = ").push_bind(makerspace_id.to_string());
    if !query.statuses.is_empty() {
        q.push(" AND status IN (");
        let mut list = q.separated(", ");
        for status in &query.statuses {
            list.push_bind(status.as_str().to_string());
        }
        q.push(")");
    }
    if let Some(owner) = &query.owner_id {
        q.push(" AND owner_id = ").push_bind(owner.clone());
    }
    if let Some(equipment) = &query.equipment_id {
        q.push(" AND equipment_id = ").push_bind(equipment.clone());
    }
}

pub(crate) const INSERT_TRANSITION: &str =
    "INSERT INTO job_transitions (job_id, makerspace_id, from_status, to_status, equipment_id, actor, reason, at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

/// Inserts one job and its first transition (its status, by `actor`) in the transaction `$tx`.
macro_rules! insert_job {
    ($tx:expr, $job:expr, $actor:expr) => {{
        let job: &$crate::store::jobs::JobRecord = $job;
        let actor: &str = $actor;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO jobs ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, \
             $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27)",
            $crate::store::jobs::JOB_COLUMNS
        )))
        .bind(&job.id)
        .bind(&job.makerspace_id)
        .bind(&job.owner_id)
        .bind(&job.batch_id)
        .bind(job.copy_number)
        .bind(job.copies)
        .bind(&job.file_sha256)
        .bind(&job.file_name)
        .bind(job.equipment_type.as_str())
        .bind($crate::store::to_json_text(&job.requirements))
        .bind(&job.pinned_equipment_id)
        .bind(job.priority)
        .bind(job.status.as_str())
        .bind(&job.equipment_id)
        .bind($crate::store::to_json_text(&job.avoid_equipment))
        .bind(job.attempts)
        .bind(job.estimated_s)
        .bind(job.grams.map(|g| g.0))
        .bind(job.progress)
        .bind(job.quotes.as_ref().map(to_json_text))
        .bind(job.chosen_quote.as_ref().map(to_json_text))
        .bind(job.wait_reasons.as_ref().map(to_json_text))
        .bind(&job.failure_reason)
        .bind(job.created_at)
        .bind(job.updated_at)
        .bind(job.started_at)
        .bind(job.finished_at)
        .execute(&mut *$tx)
        .await
        .map_err($crate::store::StoreError::from_write)?;
        sqlx::query($crate::store::jobs::INSERT_TRANSITION)
            .bind(&job.id)
            .bind(&job.makerspace_id)
            .bind(None::<String>)
            .bind(job.status.as_str())
            .bind(&job.equipment_id)
            .bind(actor)
            .bind(None::<String>)
            .bind(job.created_at)
            .execute(&mut *$tx)
            .await?;
    }};
}
pub(crate) use insert_job;

impl Store {
    /// Stores a file's record; a file already stored (the same bytes) keeps its first record.
    pub async fn insert_job_file(&self, file: &JobFileRecord) -> Result<(), StoreError> {
        with_writer!(self, pool => {
            sqlx::query(
                "INSERT INTO job_files (sha256, kind, size_bytes, analysis, created_at) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (sha256) DO NOTHING",
            )
            .bind(&file.sha256)
            .bind(&file.kind)
            .bind(file.size_bytes)
            .bind(to_json_text(&file.analysis))
            .bind(file.created_at)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    pub async fn get_job_file(&self, sha256: &str) -> Result<Option<JobFileRecord>, StoreError> {
        let row: Option<JobFileRow> = with_pool!(self, pool => {
            sqlx::query_as("SELECT sha256, kind, size_bytes, analysis, created_at FROM job_files WHERE sha256 = $1")
                .bind(sha256)
                .fetch_optional(pool)
                .await?
        });
        row.map(|r| {
            Ok(JobFileRecord {
                analysis: json_column("job_files.analysis", &r.analysis)?,
                sha256: r.sha256,
                kind: r.kind,
                size_bytes: r.size_bytes,
                created_at: r.created_at,
            })
        })
        .transpose()
    }

    /// Queues the copies of one submission, each with its first transition, in one
    /// transaction.
    pub async fn insert_jobs(&self, jobs: &[JobRecord], actor: &str) -> Result<(), StoreError> {
        with_writer!(self, pool => {
            let mut tx = pool.begin().await?;
            for job in jobs {
                insert_job!(tx, job, actor);
            }
            tx.commit().await?;
        });
        Ok(())
    }

    pub async fn get_job(&self, makerspace_id: &str, id: &str) -> Result<Option<JobRecord>, StoreError> {
        let row: Option<JobRow> = with_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {JOB_COLUMNS} FROM jobs WHERE makerspace_id = $1 AND id = $2")))
                .bind(makerspace_id)
                .bind(id)
                .fetch_optional(pool)
                .await?
        });
        row.map(JobRecord::try_from).transpose()
    }

    /// A page of a makerspace's jobs, newest first, and how many match in all.
    pub async fn list_jobs(&self, makerspace_id: &str, query: &JobQuery) -> Result<(Vec<JobRecord>, i64), StoreError> {
        let (rows, total): (Vec<JobRow>, i64) = with_pool!(self, pool => {
            let mut page = QueryBuilder::new(format!("SELECT {JOB_COLUMNS} FROM jobs"));
            push_job_filters(&mut page, makerspace_id, query);
            page.push(" ORDER BY created_at DESC, id LIMIT ").push_bind(query.limit).push(" OFFSET ").push_bind(query.offset);
            let rows = page.build_query_as().fetch_all(pool).await?;
            let mut count = QueryBuilder::new("SELECT COUNT(*) FROM jobs");
            push_job_filters(&mut count, makerspace_id, query);
            let total: (i64,) = count.build_query_as().fetch_one(pool).await?;
            (rows, total.0)
        });
        let jobs = rows.into_iter().map(JobRecord::try_from).collect::<Result<_, _>>()?;
        Ok((jobs, total))
    }

    /// Every job not yet finished, in the order they were queued: what the router rebuilds its
    /// queue from when makrcave starts.
    pub async fn unfinished_jobs(&self) -> Result<Vec<JobRecord>, StoreError> {
        let rows: Vec<JobRow> = with_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {JOB_COLUMNS} FROM jobs WHERE status IN ('queued', 'assigned', 'sending', 'printing', 'paused')
                 ORDER BY created_at, id"
            )))
            .fetch_all(pool)
            .await?
        });
        rows.into_iter().map(JobRecord::try_from).collect()
    }

    /// The job last sent to a machine, whatever its status now.
    pub async fn last_job_on_machine(&self, equipment_id: &str) -> Result<Option<JobRecord>, StoreError> {
        let row: Option<JobRow> = with_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {JOB_COLUMNS} FROM jobs WHERE equipment_id = $1 ORDER BY updated_at DESC LIMIT 1"
            )))
            .bind(equipment_id)
            .fetch_optional(pool)
            .await?
        });
        row.map(JobRecord::try_from).transpose()
    }

    /// The job a machine holds now (assigned, being sent, printing or paused), if any.
    pub async fn job_on_machine(&self, equipment_id: &str) -> Result<Option<JobRecord>, StoreError> {
        let row: Option<JobRow> = with_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {JOB_COLUMNS} FROM jobs WHERE equipment_id = $1
                 AND status IN ('assigned', 'sending', 'printing', 'paused') ORDER BY updated_at DESC LIMIT 1"
            )))
            .bind(equipment_id)
            .fetch_optional(pool)
            .await?
        });
        row.map(JobRecord::try_from).transpose()
    }

    /// Moves a job if its status is still one of `change.from`, and appends the transition,
    /// in one transaction. `None`: it had moved meanwhile (or does not exist), nothing written.
    pub async fn move_job(&self, change: &JobMove) -> Result<Option<JobRecord>, StoreError> {
        let lock = if self.kind() == "postgres" { " FOR UPDATE" } else { "" };
        let row: Option<JobRow> = with_writer!(self, pool => {
            let mut tx = pool.begin().await?;
            // The status it has now, locked until the move commits (SQLite has one writer).
            let current: Option<(String, String)> =
                sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT status, avoid_equipment FROM jobs WHERE id = $1{lock}")))
                    .bind(&change.job_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            let Some((from_status, avoid_text)) = current else { return Ok(None) };
            if !change.from.iter().any(|status| status.as_str() == from_status) {
                return Ok(None);
            }
            let mut update = QueryBuilder::new("UPDATE jobs SET status = ");
            update.push_bind(change.to.as_str().to_string());
            update.push(", updated_at = ").push_bind(change.at);
            if let Some(equipment) = &change.equipment_id {
                update.push(", equipment_id = ").push_bind(equipment.clone());
            }
            if change.count_attempt {
                update.push(", attempts = attempts + 1");
            }
            if let Some(failure) = &change.failure_reason {
                update.push(", failure_reason = ").push_bind(failure.clone());
            }
            if let Some(avoid) = &change.avoid {
                let mut avoid_list: Vec<String> = json_column("jobs.avoid_equipment", &avoid_text)?;
                if !avoid_list.contains(avoid) {
                    avoid_list.push(avoid.clone());
                }
                update.push(", avoid_equipment = ").push_bind(to_json_text(&avoid_list));
            }
            match change.to {
                JobStatus::Printing => {
                    update.push(", started_at = COALESCE(started_at, ").push_bind(change.at).push(")");
                }
                JobStatus::Queued => {
                    // A job back in the queue starts afresh on its next machine.
                    update.push(", started_at = NULL, finished_at = NULL, progress = NULL");
                }
                status if status.is_final() => {
                    update.push(", finished_at = ").push_bind(change.at);
                }
                _ => {}
            }
            update.push(" WHERE id = ").push_bind(change.job_id.clone());
            update.push(format!(" RETURNING {JOB_COLUMNS}"));
            let row: JobRow = update.build_query_as().fetch_one(&mut *tx).await?;
            sqlx::query(INSERT_TRANSITION)
                .bind(&change.job_id)
                .bind(&row.makerspace_id)
                .bind(&from_status)
                .bind(change.to.as_str())
                .bind(&row.equipment_id)
                .bind(&change.actor)
                .bind(&change.reason)
                .bind(change.at)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Some(row)
        });
        row.map(JobRecord::try_from).transpose()
    }

    /// Progress reported by the machine printing a job (not a transition: not logged).
    pub async fn set_job_progress(&self, job_id: &str, progress: f64, at: DateTime<Utc>) -> Result<(), StoreError> {
        with_writer!(self, pool => {
            sqlx::query("UPDATE jobs SET progress = $1, updated_at = $2 WHERE id = $3")
                .bind(progress)
                .bind(at)
                .bind(job_id)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// The router's latest answer to "why does this job wait".
    pub async fn set_wait_reasons(&self, job_id: &str, reasons: &serde_json::Value) -> Result<(), StoreError> {
        with_writer!(self, pool => {
            sqlx::query("UPDATE jobs SET wait_reasons = $1 WHERE id = $2")
                .bind(to_json_text(reasons))
                .bind(job_id)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// A job's history, oldest first.
    pub async fn job_transitions(&self, job_id: &str) -> Result<Vec<JobTransitionRecord>, StoreError> {
        let rows: Vec<TransitionRow> = with_pool!(self, pool => {
            sqlx::query_as(
                "SELECT from_status, to_status, equipment_id, actor, reason, at FROM job_transitions
                 WHERE job_id = $1 ORDER BY id",
            )
            .bind(job_id)
            .fetch_all(pool)
            .await?
        });
        rows.into_iter()
            .map(|r| {
                Ok(JobTransitionRecord {
                    from_status: r.from_status.map(|s| parse_status("job_transitions.from_status", &s)).transpose()?,
                    to_status: parse_status("job_transitions.to_status", &r.to_status)?,
                    equipment_id: r.equipment_id,
                    actor: r.actor,
                    reason: r.reason,
                    at: r.at,
                })
            })
            .collect()
    }

    /// How many jobs failed on each machine of a makerspace since `since`.
    pub async fn job_failures_since(
        &self,
        makerspace_id: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let rows: Vec<(String, i64)> = with_pool!(self, pool => {
            sqlx::query_as(
                "SELECT equipment_id, COUNT(*) FROM job_transitions
                 WHERE makerspace_id = $1 AND to_status = 'failed' AND equipment_id IS NOT NULL AND at >= $2
                 GROUP BY equipment_id",
            )
            .bind(makerspace_id)
            .bind(since)
            .fetch_all(pool)
            .await?
        });
        Ok(rows)
    }
}
