//! A queued job's priority, changed by the space's admins (a member sets their job's priority
//! when submitting it; moving it ahead of others' jobs afterwards is the admins' call). Only a
//! job not yet on a machine changes. The change is kept in the job's history, pushed on the
//! WebSocket like every job move, and the router reorders its queue.

use chrono::Utc;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::domain::access::Principal;
use crate::domain::job_lifecycle::{JobStatus, MAX_PRIORITY};
use crate::store::job_priority::PriorityChange;
use crate::store::StoreError;

use super::access::{forbidden_to, standing, AccessError, Standing};
use super::jobs::{announce, JobView};
use super::Services;

#[derive(Debug, thiserror::Error)]
pub enum PriorityError {
    #[error(transparent)]
    Access(#[from] AccessError),
    #[error("job not found")]
    NotFound,
    #[error("priority must be -{MAX_PRIORITY} to {MAX_PRIORITY}")]
    OutOfRange,
    #[error("the job is {0}: only a queued job changes priority")]
    NotQueued(&'static str),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The body of `POST .../jobs/{job_id}/priority`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PriorityRequest {
    /// Higher goes first, from -10 to 10 (the bounds of a submission).
    // Read as a whole number (`5.0` too, as JSON Schema's `integer` allows). Required: with no
    // `default`, a missing field is refused; `null` is refused as out of range.
    #[serde(deserialize_with = "crate::domain::validate::whole_number")]
    #[schema(value_type = i32, required = true, minimum = -10, maximum = 10)]
    pub priority: Option<i64>,
}

/// Gives a queued job another priority. The same priority again changes nothing.
pub async fn reprioritise(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
    job_id: &str,
    priority: Option<i64>,
) -> Result<JobView, PriorityError> {
    let (_, standing) = standing(svc, caller, space_id).await?;
    if standing != Standing::Manager {
        return Err(forbidden_to("change a job's priority").into());
    }
    let bounds = i64::from(-MAX_PRIORITY)..=i64::from(MAX_PRIORITY);
    let priority = match priority {
        // Within the bounds, so it fits an i32.
        Some(p) if bounds.contains(&p) => p as i32,
        _ => return Err(PriorityError::OutOfRange),
    };
    let job = svc.store.get_job(space_id, job_id).await?.ok_or(PriorityError::NotFound)?;
    if job.status != JobStatus::Queued {
        return Err(PriorityError::NotQueued(job.status.as_str()));
    }
    let change = PriorityChange { job_id: job.id.clone(), priority, actor: caller.user_id.clone(), at: Utc::now() };
    let Some(changed) = svc.store.set_job_priority(&change).await? else {
        // The router sent it to a machine meanwhile (or it was cancelled): say where it is.
        let now = svc.store.get_job(space_id, job_id).await?.ok_or(PriorityError::NotFound)?;
        return Err(PriorityError::NotQueued(now.status.as_str()));
    };
    if changed.priority != job.priority {
        tracing::info!(job_id = %changed.id, from = job.priority, to = priority, by = %caller.user_id,
            "job reprioritised");
        announce(svc, &changed);
        svc.router.reprioritised(&changed.id, priority);
    }
    Ok(changed.into())
}
