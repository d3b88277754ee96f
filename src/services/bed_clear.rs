//! The bed-clear step: a machine that ended a job waits (`awaiting_clear`) until a person at
//! the machine confirms its bed or plate is clear, so no print is sent onto a part left
//! behind. Any person of the space may confirm (it is a fact seen at the machine, not a
//! permission); who and when is kept. Machines set `auto_clear` (belt printers, plate
//! changers) never wait.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::access::Principal;
use crate::store::bed_clears::BedClearRecord;
use crate::store::StoreError;

use super::access::{forbidden_to, standing, AccessError, Standing};
use super::Services;

#[derive(Debug, thiserror::Error)]
pub enum BedClearError {
    #[error(transparent)]
    Access(#[from] AccessError),
    #[error("equipment not found")]
    UnknownEquipment,
    #[error("the machine is not waiting for its bed to be cleared")]
    NotWaiting,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A confirmation, as the API answers it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BedCleared {
    pub equipment_id: String,
    /// The job whose end left the bed to clear, when known.
    pub job_id: Option<String>,
    pub cleared_by: String,
    pub cleared_at: DateTime<Utc>,
}

/// A person confirms the machine's bed is clear: the machine may take its next job.
pub async fn clear(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
    equipment_id: &str,
) -> Result<BedCleared, BedClearError> {
    let (_, standing) = standing(svc, caller, space_id).await?;
    if standing == Standing::Reader {
        return Err(forbidden_to("confirm a bed is clear").into());
    }
    confirm(svc, space_id, equipment_id, &caller.user_id).await
}

/// Confirms the machine's bed is clear for `cleared_by` (a person's user id, or a kiosk's
/// card holder), who is kept with the time.
pub async fn confirm(
    svc: &Services,
    space_id: &str,
    equipment_id: &str,
    cleared_by: &str,
) -> Result<BedCleared, BedClearError> {
    let waiting = svc.fleet.clear_bed(space_id, equipment_id).await.map_err(|_| BedClearError::UnknownEquipment)?;
    if !waiting {
        return Err(BedClearError::NotWaiting);
    }
    let record = BedClearRecord {
        equipment_id: equipment_id.to_string(),
        makerspace_id: space_id.to_string(),
        job_id: svc.store.last_job_on(equipment_id).await?,
        cleared_by: cleared_by.to_string(),
        cleared_at: Utc::now(),
    };
    svc.store.insert_bed_clear(&record).await?;
    tracing::info!(equipment_id = %equipment_id, cleared_by, "bed cleared");
    Ok(BedCleared {
        equipment_id: record.equipment_id,
        job_id: record.job_id,
        cleared_by: record.cleared_by,
        cleared_at: record.cleared_at,
    })
}
