//! The machines' failed prints of the last days, and which of them the dashboard flags for a
//! person to look at (the rule is [`crate::domain::machine_health`]'s). Failures are the
//! jobs' history: each move of a job to `failed` names the machine it failed on.

use chrono::{Duration, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::access::Principal;
use crate::domain::machine_health::{flagged, FLAG_AT_FAILURES, WINDOW_DAYS};
use crate::store::equipment::EquipmentFilter;

use super::access::{standing, AccessError};
use super::Services;

/// One machine's failed prints in the window.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct MachineHealth {
    pub equipment_id: String,
    pub name: String,
    /// Failed prints on it in the last `window_days` days.
    pub failures: i64,
    /// `failures` reached `flag_at_failures`: someone should look at the machine.
    pub flagged: bool,
}

/// Every machine of the space, with the rule that flags them.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MachineHealthReport {
    pub window_days: i64,
    pub flag_at_failures: i64,
    /// By name.
    pub machines: Vec<MachineHealth>,
}

/// The space's machines and their failures; anyone who may read the space may read it.
pub async fn report(svc: &Services, caller: &Principal, space_id: &str) -> Result<MachineHealthReport, AccessError> {
    standing(svc, caller, space_id).await?;
    let since = Utc::now() - Duration::days(WINDOW_DAYS);
    let failures: std::collections::HashMap<String, i64> =
        svc.store.job_failures_since(space_id, since).await?.into_iter().collect();
    let filter = EquipmentFilter { makerspace_id: Some(space_id.to_string()), kind: None };
    let machines = svc
        .store
        .list_equipment(&filter)
        .await?
        .into_iter()
        .map(|machine| {
            let failures = failures.get(&machine.id).copied().unwrap_or(0);
            MachineHealth { equipment_id: machine.id, name: machine.name, failures, flagged: flagged(failures) }
        })
        .collect();
    Ok(MachineHealthReport { window_days: WINDOW_DAYS, flag_at_failures: FLAG_AT_FAILURES, machines })
}
