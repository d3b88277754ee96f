//! Job commands from people: pause, resume or cancel a machine's job. The machine's admins
//! may, and so may the member whose session it is (jobs of their own come with the job
//! router). The machine's actor decides whether its protocol and its state allow the command
//! and sends it in the machine's own format; the machine's reports then move its state.

use crate::domain::access::{Decision, Principal};
use crate::domain::jobs::{JobCommand, JobRefusal};

use super::access::{space_for, AccessError};
use super::Services;

#[derive(Debug, thiserror::Error)]
pub enum JobControlError {
    #[error(transparent)]
    Access(#[from] AccessError),
    #[error("equipment not found")]
    UnknownEquipment,
    #[error("only the makerspace's admins and the member using the machine may control its job")]
    NotYours,
    #[error(transparent)]
    Refused(#[from] JobRefusal),
}

/// Sends `command` to the machine if the caller may and the machine can take it.
pub async fn control(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
    equipment_id: &str,
    command: JobCommand,
) -> Result<(), JobControlError> {
    space_for(svc, caller.can_read_space(space_id), space_id).await?;
    let view = svc.fleet.view(space_id, equipment_id).await.map_err(|_| JobControlError::UnknownEquipment)?;
    let manager = caller.can_manage_space(space_id) == Decision::Allow;
    let owner = view.session.as_ref().is_some_and(|s| s.user_id == caller.user_id);
    if !manager && !owner {
        return Err(JobControlError::NotYours);
    }
    svc.fleet.control(space_id, equipment_id, command).await.map_err(|_| JobControlError::UnknownEquipment)??;
    Ok(())
}
