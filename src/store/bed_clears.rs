//! Who confirmed a machine's bed clear after a job, and when: appended, never rewritten.

use chrono::{DateTime, Utc};

use super::{with_writer, Store, StoreError};

/// One confirmation.
#[derive(Debug, Clone, PartialEq)]
pub struct BedClearRecord {
    pub equipment_id: String,
    pub makerspace_id: String,
    /// The job whose end made the machine wait, when known.
    pub job_id: Option<String>,
    pub cleared_by: String,
    pub cleared_at: DateTime<Utc>,
}

impl Store {
    pub async fn insert_bed_clear(&self, clear: &BedClearRecord) -> Result<(), StoreError> {
        with_writer!(self, pool => {
            sqlx::query(
                "INSERT INTO bed_clears (equipment_id, makerspace_id, job_id, cleared_by, cleared_at)
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&clear.equipment_id)
            .bind(&clear.makerspace_id)
            .bind(&clear.job_id)
            .bind(&clear.cleared_by)
            .bind(clear.cleared_at)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// The job that ran last on a machine (the one whose end left its bed to clear).
    pub async fn last_job_on(&self, equipment_id: &str) -> Result<Option<String>, StoreError> {
        let row: Option<(String,)> = super::with_pool!(self, pool => {
            sqlx::query_as(
                "SELECT id FROM jobs WHERE equipment_id = $1 AND started_at IS NOT NULL
                 ORDER BY started_at DESC, id LIMIT 1",
            )
            .bind(equipment_id)
            .fetch_optional(pool)
            .await?
        });
        Ok(row.map(|(id,)| id))
    }
}
