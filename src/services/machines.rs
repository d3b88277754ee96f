//! Machines joining and leaving the floor: every change of a machine's record reaches its
//! actor (started when added, reconfigured when edited, stopped when deleted, which ends and
//! keeps a session in progress), and its live state comes from the actor. Checking the
//! fields of a machine is the caller's (the web layer validates what it extracts). The
//! secrets of a machine's connection are sealed here, before the record is stored or handed
//! to its actor, so that they are stored (and held) only sealed.

use std::collections::HashMap;

use crate::actors::machine::MachineView;
use crate::domain::access::Decision;
use crate::domain::secrets::{DataKey, SecretError};
use crate::domain::validate::Invalid;
use crate::store::equipment::{EquipmentFilter, EquipmentRecord};
use crate::store::{Store, StoreError};

use super::access::{space_for, AccessError};
use super::{sessions, Services};

#[derive(Debug, thiserror::Error)]
pub enum MachineError {
    #[error(transparent)]
    Access(#[from] AccessError),
    #[error("equipment not found")]
    NotFound,
    #[error("equipment with id {0:?} already exists")]
    AlreadyExists(String),
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why makrcave cannot start with the configured data key.
#[derive(Debug, thiserror::Error)]
pub enum DataKeyError {
    #[error("cannot read the machines to check the data key: {0}")]
    Store(#[from] StoreError),
    #[error("the data key does not open the stored secrets of machine {equipment_id:?}: {source}")]
    WrongKey { equipment_id: String, source: SecretError },
}

/// Checks at start that the data key opens every sealed secret, so that a wrong key stops
/// makrcave with a clear reason at once rather than failing later at a machine (and secrets
/// sealed under two keys).
pub async fn check_data_key(store: &Store, key: &DataKey) -> Result<(), DataKeyError> {
    for machine in store.list_equipment(&EquipmentFilter::default()).await? {
        machine
            .connection
            .check_key(key)
            .map_err(|source| DataKeyError::WrongKey { equipment_id: machine.id.clone(), source })?;
    }
    Ok(())
}

/// The record as it is stored: its connection's clear secrets (a client's input, or a value
/// stored before secrets were sealed) sealed with the data key.
fn sealed(svc: &Services, record: &EquipmentRecord) -> EquipmentRecord {
    EquipmentRecord { connection: record.connection.sealed(&svc.data_key), ..record.clone() }
}

/// A machine of the space, or not found (also when it belongs to another space).
pub async fn load(svc: &Services, space_id: &str, equipment_id: &str) -> Result<EquipmentRecord, MachineError> {
    match svc.store.get_equipment(equipment_id).await? {
        Some(e) if e.makerspace_id == space_id => Ok(e),
        _ => Err(MachineError::NotFound),
    }
}

/// A machine the caller may see (`decision` for the space), with its live state.
pub async fn get(
    svc: &Services,
    decision: Decision,
    space_id: &str,
    equipment_id: &str,
) -> Result<(EquipmentRecord, Option<MachineView>), MachineError> {
    space_for(svc, decision, space_id).await?;
    let record = load(svc, space_id, equipment_id).await?;
    let view = svc.fleet.view(space_id, equipment_id).await.ok();
    Ok((record, view))
}

/// The live state of a machine, from its actor.
pub async fn live_state(
    svc: &Services,
    decision: Decision,
    space_id: &str,
    equipment_id: &str,
) -> Result<MachineView, MachineError> {
    space_for(svc, decision, space_id).await?;
    svc.fleet.view(space_id, equipment_id).await.map_err(|_| MachineError::NotFound)
}

/// The space's machines (of one kind, if given) with their live states.
pub async fn list(
    svc: &Services,
    decision: Decision,
    space_id: &str,
    kind: Option<crate::domain::equipment::EquipmentType>,
) -> Result<(Vec<EquipmentRecord>, HashMap<String, MachineView>), MachineError> {
    space_for(svc, decision, space_id).await?;
    let records =
        svc.store.list_equipment(&EquipmentFilter { makerspace_id: Some(space_id.to_string()), kind }).await?;
    let views = svc.fleet.views(space_id, None).await.into_iter().map(|v| (v.equipment_id.clone(), v)).collect();
    Ok((records, views))
}

/// Checks a machine's `skill_requirements`: each names a skill of the machine's own space
/// (a skill of another space, or none, could never be held there, and would lock the machine
/// for good or leak which skills another space has).
pub async fn check_skill_requirements(svc: &Services, space_id: &str, skills: &[String]) -> Result<(), MachineError> {
    if skills.is_empty() {
        return Ok(());
    }
    let catalog = svc.store.skill_catalog(space_id).await?;
    match skills.iter().find(|id| !catalog.skills.contains_key(id.as_str())) {
        Some(unknown) => {
            Err(Invalid(format!("skill_requirements: unknown skill {unknown:?} in this makerspace")).into())
        }
        None => Ok(()),
    }
}

/// Adds a checked machine to its space (the caller was authorized to manage it before its
/// fields were checked) and starts its actor. Returns its first live state.
pub async fn add(svc: &Services, record: &EquipmentRecord) -> Result<Option<MachineView>, MachineError> {
    let record = &sealed(svc, record);
    match svc.store.insert_equipment(record).await {
        Ok(()) => {}
        Err(StoreError::Conflict) => return Err(MachineError::AlreadyExists(record.id.clone())),
        Err(other) => return Err(other.into()),
    }
    svc.fleet.start(record, None);
    svc.plug_routes.follow(&record.id, &record.makerspace_id, &record.connection);
    svc.router.machine_changed(&record.makerspace_id, &record.id);
    Ok(svc.fleet.view(&record.makerspace_id, &record.id).await.ok())
}

/// Stores an edited machine and reconfigures its actor. Returns its live state.
pub async fn reconfigure(svc: &Services, record: &EquipmentRecord) -> Result<Option<MachineView>, MachineError> {
    let record = &sealed(svc, record);
    if !svc.store.update_equipment(record).await? {
        return Err(MachineError::NotFound);
    }
    svc.fleet.configure(record);
    svc.plug_routes.follow(&record.id, &record.makerspace_id, &record.connection);
    // Its device's topics follow the record (a renamed plug topic, another connection kind).
    super::broker_access::machine_changed(svc, &record.id).await;
    Ok(svc.fleet.view(&record.makerspace_id, &record.id).await.ok())
}

/// Deletes a machine (`decision`: may the caller manage the space): its actor stops.
pub async fn remove(
    svc: &Services,
    decision: Decision,
    space_id: &str,
    equipment_id: &str,
) -> Result<(), MachineError> {
    space_for(svc, decision, space_id).await?;
    load(svc, space_id, equipment_id).await?;
    if !svc.store.delete_equipment(equipment_id).await? {
        return Err(MachineError::NotFound);
    }
    sessions::machines_removed(svc, [equipment_id]);
    svc.plug_routes.forget(equipment_id);
    svc.router.machine_changed(space_id, equipment_id);
    super::broker_access::machine_changed(svc, equipment_id).await;
    Ok(())
}

/// Deletes a makerspace (`decision`: may the caller delete it) with its machines, whose
/// actors stop.
pub async fn remove_space(svc: &Services, decision: Decision, space_id: &str) -> Result<(), MachineError> {
    space_for(svc, decision, space_id).await?;
    let filter = EquipmentFilter { makerspace_id: Some(space_id.to_string()), kind: None };
    let machines = svc.store.list_equipment(&filter).await?;
    if !svc.store.delete_makerspace(space_id).await? {
        return Err(AccessError::NotFound("makerspace").into());
    }
    sessions::machines_removed(svc, machines.iter().map(|m| m.id.as_str()));
    for machine in &machines {
        svc.plug_routes.forget(&machine.id);
        svc.router.machine_changed(space_id, &machine.id);
        super::broker_access::machine_changed(svc, &machine.id).await;
    }
    Ok(())
}
