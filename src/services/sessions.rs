//! Machine sessions ending: from a dashboard (the person using the machine, or an admin),
//! from the machine's bridge (an MQTT `lock` event), and because the person may no longer
//! use the machine (suspended, removed, a needed skill revoked) or the machine is gone.
//! Starting a session is the kiosk's decision ([`super::kiosk`]). The session itself lives in
//! the machine's actor, which switches the machine off in its own protocol and stores the
//! usage record.

use crate::domain::access::{Decision, Principal};
use crate::store::machine_states::EndedSession;

use super::access::{space_for, AccessError};
use super::Services;

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Access(#[from] AccessError),
    #[error("equipment not found")]
    UnknownEquipment,
    #[error("only the member using the machine, or an admin, locks it")]
    NotYours,
    #[error("the machine has no session in progress")]
    NotInUse,
    #[error("the session ended meanwhile")]
    EndedMeanwhile,
}

/// Ends the session on a machine from a dashboard: the member whose session it is, or the
/// makerspace's admins. Returns the usage record.
pub async fn lock_from_dashboard(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
    equipment_id: &str,
) -> Result<EndedSession, SessionError> {
    space_for(svc, caller.can_read_space(space_id), space_id).await?;
    let view = svc.fleet.view(space_id, equipment_id).await.map_err(|_| SessionError::UnknownEquipment)?;
    let Some(session) = view.session else { return Err(SessionError::NotInUse) };
    let manager = caller.can_manage_space(space_id) == Decision::Allow;
    if session.user_id != caller.user_id && !manager {
        return Err(SessionError::NotYours);
    }
    svc.fleet
        .lock(space_id, equipment_id, Some(session.id), &caller.user_id, "locked")
        .await
        .map_err(|_| SessionError::EndedMeanwhile)
}

/// A machine's bridge reports that its session ended at the machine (a button, a card).
pub async fn lock_from_machine(
    svc: &Services,
    space_id: &str,
    equipment_id: &str,
) -> Result<EndedSession, SessionError> {
    svc.fleet.lock(space_id, equipment_id, None, "bridge", "locked").await.map_err(|_| SessionError::NotInUse)
}

/// Ends the sessions a person has in a makerspace: all of them (a suspension, a removal),
/// or those on machines that need `skill` (a revoked certification). `reason` is written on
/// each usage record.
pub async fn end_sessions_of(svc: &Services, makerspace_id: &str, user_id: &str, skill: Option<&str>, reason: &str) {
    for view in svc.fleet.views(makerspace_id, None).await {
        let Some(session) = view.session.as_ref().filter(|s| s.user_id == user_id) else { continue };
        if let Some(skill) = skill {
            let needs = svc.store.get_equipment(&view.equipment_id).await.ok().flatten();
            if !needs.is_some_and(|e| e.skill_requirements.iter().any(|s| s == skill)) {
                continue;
            }
        }
        tracing::info!(equipment_id = ?view.equipment_id, session_id = ?session.id, reason, "ending a session");
        let _ = svc.fleet.lock(makerspace_id, &view.equipment_id, Some(session.id.clone()), "system", reason).await;
    }
}

/// Machines deleted (one, or a whole makerspace's): their actors stop, which ends and keeps
/// any session in progress.
pub fn machines_removed<'a>(svc: &Services, equipment_ids: impl IntoIterator<Item = &'a str>) {
    for id in equipment_ids {
        svc.fleet.stop(id);
    }
}
