//! Filament spools: registered on a filament item, loaded on printers, weighed, and charged
//! the grams of the jobs that used them.
//!
//! A spool is a sub-account of its item. Registering it receives its net weight into the item
//! as a log row carrying its id; every later move of it (a job's grams, a weighing) is a row
//! of the item's log carrying its id too, so the spool's remaining grams and the item's level
//! are both sums of the one log. Every move goes through [`stock::apply`]. After a change, the
//! machine the spool is loaded on shows it ([`refresh`]).
//!
//! People of the space read spools and loads; its makerspace_admins (and super_admin) write,
//! as for the rest of the inventory.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::access::Principal;
use crate::domain::equipment::EquipmentType;
use crate::domain::ids::{new_id, validate_id};
use crate::domain::inventory::{Category, CauseKind, Quantity, Unit, UsageReason};
use crate::domain::spools::{check_slot, pick_spool, remaining_after_weighing, LoadedSpool, NoSpool};
use crate::domain::validate::{check_len, optional_multiline, optional_text, Invalid};
use crate::store::equipment::EquipmentRecord;
use crate::store::inventory::{Movement, StockChange, StockOutcome};
use crate::store::spools::{LoadOutcome, SpoolLoad, SpoolRecord};
use crate::store::StoreError;

use super::access::{space_for, AccessError};
use super::inventory::{self as items, InventoryError};
use super::stock::{self, check_key, Moved, StockError, UsageResponse};
use super::Services;

/// The heaviest spool weight (net, tare or gross) a request may name, in grams: a hundred
/// kilograms, far beyond the largest industrial spool, so that a typo in kilograms for grams
/// is caught.
pub const MAX_SPOOL_G: i64 = 100_000;

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error(transparent)]
    Stock(#[from] StockError),
    #[error("spool not found")]
    NotFound,
    #[error("equipment not found")]
    UnknownEquipment,
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error("a spool with this id already exists")]
    Duplicate,
    #[error("{0} is not a 3D printer: spools are loaded on machines that print filament")]
    NotAPrinter(String),
    #[error("the spool is loaded on {equipment_id} (slot {slot}): unload it there first")]
    LoadedElsewhere { equipment_id: String, slot: String },
    #[error("slot {slot} of this machine holds another spool: unload it first")]
    SlotTaken { slot: String, spool_id: Option<String> },
    #[error("the spool is not loaded on this machine")]
    NotLoaded,
    #[error("no spool is loaded on this machine{}", slot.as_ref().map(|s| format!(" in slot {s}")).unwrap_or_default())]
    NoSpoolLoaded { slot: Option<String> },
    #[error("several spools are loaded on this machine (slots {}): name the slot", slots.join(", "))]
    AmbiguousSpool { slots: Vec<String> },
}

impl From<InventoryError> for SpoolError {
    fn from(e: InventoryError) -> Self {
        SpoolError::Stock(e.into())
    }
}

impl From<AccessError> for SpoolError {
    fn from(e: AccessError) -> Self {
        InventoryError::from(e).into()
    }
}

impl From<StoreError> for SpoolError {
    fn from(e: StoreError) -> Self {
        InventoryError::from(e).into()
    }
}

/// `POST .../inventory/{item_id}/spools`: a spool of a filament comes in.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SpoolCreate {
    /// Default: a new UUID.
    #[schema(pattern = "^[a-z0-9][a-z0-9-]{0,63}$")]
    pub id: Option<String>,
    /// Grams of filament on the spool as it comes (its label's net weight): received into the
    /// item as a row of its log carrying the spool's id.
    #[schema(value_type = f64, minimum = 0.001, maximum = 100_000, multiple_of = 0.001)]
    pub net_g: Quantity,
    /// Grams of the empty spool, which a weighing takes off.
    #[schema(value_type = f64, minimum = 0, maximum = 100_000, multiple_of = 0.001)]
    pub tare_g: Quantity,
    /// The manufacturer's lot (batch) number.
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    pub lot: Option<String>,
    /// Sent again with the same key, the registration answers with the first spool and
    /// changes nothing.
    #[schema(min_length = 1, max_length = 200, pattern = r"^[\x21-\x7e]+$")]
    pub idempotency_key: Option<String>,
}

/// `POST .../spools/{spool_id}/weigh`: the spool on a scale.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WeighRequest {
    /// What the scale shows, in grams: filament and spool. At least the spool's `tare_g`.
    #[schema(value_type = f64, minimum = 0, maximum = 100_000, multiple_of = 0.001)]
    pub gross_g: Quantity,
    #[schema(min_length = 1, max_length = 200, pattern = r"^[\x21-\x7e]+$")]
    pub idempotency_key: Option<String>,
    #[schema(max_length = 1000, pattern = r"^[^\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]*$")]
    pub note: Option<String>,
}

/// `POST .../equipment/{equipment_id}/spools`: a spool goes on a printer.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoadRequest {
    /// A spool of the space that is not loaded anywhere.
    #[schema(pattern = "^[a-z0-9][a-z0-9-]{0,63}$")]
    pub spool_id: String,
    /// `0-1` (AMS unit 0, tray 1), `external` (the spool holder), `main` (a single-extruder
    /// printer), or another name the printer uses.
    #[schema(min_length = 1, max_length = 40, pattern = "^[A-Za-z0-9][A-Za-z0-9._-]*$")]
    pub slot: String,
}

/// Where a spool is loaded.
#[derive(Debug, Serialize, ToSchema)]
pub struct SpoolPlace {
    pub equipment_id: String,
    pub slot: String,
    pub loaded_by: String,
    pub loaded_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SpoolResponse {
    pub id: String,
    pub makerspace_id: String,
    /// The filament item it belongs to.
    pub item_id: String,
    pub lot: Option<String>,
    /// Grams of filament it came with.
    #[schema(value_type = f64)]
    pub initial_net_g: Quantity,
    /// Grams of the empty spool.
    #[schema(value_type = f64)]
    pub tare_g: Quantity,
    /// Grams left: the sum of the spool's rows in its item's log.
    #[schema(value_type = f64)]
    pub remaining_g: Quantity,
    /// Where it is loaded, if it is.
    pub loaded: Option<SpoolPlace>,
    pub created_at: DateTime<Utc>,
}

impl From<SpoolRecord> for SpoolResponse {
    fn from(s: SpoolRecord) -> Self {
        SpoolResponse {
            id: s.id,
            makerspace_id: s.makerspace_id,
            item_id: s.item_id,
            lot: s.lot,
            initial_net_g: s.initial_net,
            tare_g: s.tare,
            remaining_g: s.remaining,
            loaded: s.load.map(|l: SpoolLoad| SpoolPlace {
                equipment_id: l.equipment_id,
                slot: l.slot,
                loaded_by: l.loaded_by,
                loaded_at: l.loaded_at,
            }),
            created_at: s.created_at,
        }
    }
}

/// The answer to a weighing.
#[derive(Debug, Serialize, ToSchema)]
pub struct WeighResponse {
    /// The spool after the weighing.
    pub spool: SpoolResponse,
    /// True when the idempotency key was seen before and nothing changed now.
    pub replayed: bool,
    /// The adjustment row written (for a replay: the first one).
    pub usage: UsageResponse,
}

fn check_grams(field: &str, grams: Quantity, positive: bool) -> Result<Quantity, Invalid> {
    let above_least = if positive { grams.is_positive() } else { grams.0 >= 0 };
    if !above_least || grams > Quantity::from_units(MAX_SPOOL_G) {
        let least = if positive { "more than 0" } else { "0 or more" };
        return Err(Invalid(format!("{field} must be {least} and at most {MAX_SPOOL_G} grams")));
    }
    Ok(grams)
}

/// Checks that the caller may read (`manage`: write) the space's spools.
async fn check_space(svc: &Services, caller: &Principal, space_id: &str, manage: bool) -> Result<(), SpoolError> {
    let decision = if manage { caller.can_manage_space(space_id) } else { caller.can_read_space(space_id) };
    space_for(svc, decision, space_id).await?;
    Ok(())
}

/// A live spool of a space the caller may read (`manage`: write).
async fn spool_of(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
    spool_id: &str,
    manage: bool,
) -> Result<SpoolRecord, SpoolError> {
    check_space(svc, caller, space_id, manage).await?;
    svc.store.get_spool(space_id, spool_id).await?.ok_or(SpoolError::NotFound)
}

/// A machine of the space (another space's machine is not found).
async fn machine_of(svc: &Services, space_id: &str, equipment_id: &str) -> Result<EquipmentRecord, SpoolError> {
    let machine = svc.store.get_equipment(equipment_id).await?;
    machine.filter(|m| m.makerspace_id == space_id).ok_or(SpoolError::UnknownEquipment)
}

/// A 3D printer of the space: spools go on machines that print filament.
async fn printer_of(svc: &Services, space_id: &str, equipment_id: &str) -> Result<(), SpoolError> {
    let machine = machine_of(svc, space_id, equipment_id).await?;
    if machine.kind != EquipmentType::Printer3d {
        return Err(SpoolError::NotAPrinter(machine.name));
    }
    Ok(())
}

/// Registers a spool of a filament item counted in grams; its net weight comes into the
/// item. Answers the spool, and whether an earlier registration with the same key was found.
pub async fn create(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
    item_id: &str,
    body: SpoolCreate,
) -> Result<(SpoolRecord, bool), SpoolError> {
    let (item, _) = items::load(svc, caller, space_id, item_id, true).await?;
    if item.category != Category::Filament || item.unit != Unit::Grams {
        return Err(Invalid::new("spools are for items of category filament counted in grams (unit g)").into());
    }
    let id = match body.id {
        Some(id) => {
            validate_id(&id).map_err(|e| Invalid(e.to_string()))?;
            id
        }
        None => new_id(),
    };
    let net = check_grams("net_g", body.net_g, true)?;
    let now = Utc::now();
    let spool = SpoolRecord {
        id: id.clone(),
        makerspace_id: space_id.to_string(),
        item_id: item_id.to_string(),
        lot: optional_text("lot", body.lot, 100)?,
        initial_net: net,
        tare: check_grams("tare_g", body.tare_g, false)?,
        created_at: now,
        retired_at: None,
        remaining: net,
        load: None,
    };
    let receipt = StockChange {
        makerspace_id: space_id.to_string(),
        item_id: item_id.to_string(),
        movement: Movement::By(net),
        reason: UsageReason::Received,
        cause_kind: CauseKind::Admin,
        cause_id: Some(caller.user_id.clone()),
        actor: caller.user_id.clone(),
        note: Some(format!("spool {id} registered")),
        idempotency_key: check_key(body.idempotency_key)?,
        at: now,
        spool_id: Some(id),
    };
    let replayed = match svc.store.insert_spool(&spool, &receipt).await {
        Err(StoreError::Conflict) => return Err(SpoolError::Duplicate),
        Ok(StockOutcome::Applied { .. }) => None,
        Ok(StockOutcome::Replayed(usage)) => Some(usage.spool_id),
        Ok(StockOutcome::NoItem) => return Err(InventoryError::NotFound.into()),
        Ok(StockOutcome::NoSpool | StockOutcome::Refused(_)) => {
            return Err(StoreError::Corrupt("a spool's receipt refused".into()).into())
        }
        Err(e) => return Err(e.into()),
    };
    // A replay answers with the spool the first registration made (the key was the item's
    // for another move: no spool to show).
    let spool_id = match &replayed {
        None => spool.id.as_str(),
        Some(Some(earlier)) => earlier.as_str(),
        Some(None) => return Err(Invalid::new("idempotency_key was used for another move of this item").into()),
    };
    let stored = svc.store.get_spool(space_id, spool_id).await?.ok_or(SpoolError::NotFound)?;
    Ok((stored, replayed.is_some()))
}

/// The live spools of an item, oldest first.
pub async fn list(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
    item_id: &str,
) -> Result<Vec<SpoolRecord>, SpoolError> {
    items::load(svc, caller, space_id, item_id, false).await?;
    Ok(svc.store.list_spools(space_id, item_id).await?)
}

pub async fn get(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
    spool_id: &str,
) -> Result<SpoolRecord, SpoolError> {
    spool_of(svc, caller, space_id, spool_id, false).await
}

/// A weighing sets the spool's remaining grams to gross less tare: an `adjusted` row whose
/// delta is the difference from the spool's sum, read in the same transaction.
pub async fn weigh(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
    spool_id: &str,
    body: WeighRequest,
) -> Result<(SpoolRecord, Moved), SpoolError> {
    let spool = spool_of(svc, caller, space_id, spool_id, true).await?;
    let remaining = remaining_after_weighing(check_grams("gross_g", body.gross_g, false)?, spool.tare)?;
    let change = StockChange {
        makerspace_id: space_id.to_string(),
        item_id: spool.item_id.clone(),
        movement: Movement::SpoolTo(remaining),
        reason: UsageReason::Adjusted,
        cause_kind: CauseKind::Admin,
        cause_id: Some(caller.user_id.clone()),
        actor: caller.user_id.clone(),
        note: optional_multiline("note", body.note, 1000)?.or_else(|| Some(format!("spool {spool_id} weighed"))),
        idempotency_key: check_key(body.idempotency_key)?,
        at: Utc::now(),
        spool_id: Some(spool_id.to_string()),
    };
    let moved = stock::apply(svc, change).await?;
    let spool = svc.store.get_spool(space_id, spool_id).await?.ok_or(SpoolError::NotFound)?;
    if let Some(load) = &spool.load {
        refresh_after_change(svc, space_id, &load.equipment_id).await;
    }
    Ok((spool, moved))
}

/// Loads a spool of the space in a slot of one of its 3D printers. Loading it again where it
/// is changes nothing (`false`: it was there already).
pub async fn load(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
    equipment_id: &str,
    body: LoadRequest,
) -> Result<(LoadedSpool, bool), SpoolError> {
    check_space(svc, caller, space_id, true).await?;
    printer_of(svc, space_id, equipment_id).await?;
    check_slot(&body.slot)?;
    validate_id(&body.spool_id).map_err(|e| Invalid(format!("spool_id: {e}")))?;
    // A spool named in the body that the space does not have is bad input, not a missing page.
    if svc.store.get_spool(space_id, &body.spool_id).await?.is_none() {
        return Err(Invalid::new("spool_id must be a spool of this makerspace").into());
    }
    let outcome =
        svc.store.load_spool(space_id, &body.spool_id, equipment_id, &body.slot, &caller.user_id, Utc::now()).await?;
    let fresh = match outcome {
        LoadOutcome::Loaded => true,
        LoadOutcome::AlreadyThere => false,
        LoadOutcome::LoadedElsewhere { equipment_id, slot } => {
            return Err(SpoolError::LoadedElsewhere { equipment_id, slot })
        }
        LoadOutcome::SlotTaken { spool_id } => return Err(SpoolError::SlotTaken { slot: body.slot, spool_id }),
    };
    let loaded = refresh(svc, space_id, equipment_id).await?;
    let spool = loaded.into_iter().find(|s| s.spool_id == body.spool_id).ok_or(SpoolError::NotLoaded)?;
    Ok((spool, fresh))
}

/// Takes a spool off a machine of the space.
pub async fn unload(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
    equipment_id: &str,
    spool_id: &str,
) -> Result<(), SpoolError> {
    check_space(svc, caller, space_id, true).await?;
    if !svc.store.unload_spool(space_id, equipment_id, spool_id).await? {
        // Not loaded there: say whether the machine itself is missing.
        machine_of(svc, space_id, equipment_id).await?;
        return Err(SpoolError::NotLoaded);
    }
    refresh_after_change(svc, space_id, equipment_id).await;
    Ok(())
}

/// The spools loaded on a machine of the space, by slot.
pub async fn loaded(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
    equipment_id: &str,
) -> Result<Vec<LoadedSpool>, SpoolError> {
    check_space(svc, caller, space_id, false).await?;
    machine_of(svc, space_id, equipment_id).await?;
    Ok(svc.store.loaded_spools(equipment_id).await?)
}

/// Charges a finished job's grams to the spool its printer drew from: the one loaded in
/// `slot`, or the only one loaded. The row's reason is `used_by_job`, its cause the job, and
/// its idempotency key is derived from the job id (and the slot when named), so a retried
/// job-end report counts once, and is answered with the first row even when the spool has
/// been unloaded since. The job router calls this when a job ends.
pub async fn charge_job(
    svc: &Services,
    space_id: &str,
    equipment_id: &str,
    job_id: &str,
    grams: Quantity,
    slot: Option<&str>,
) -> Result<Moved, SpoolError> {
    check_len("job_id", job_id, 200)?;
    if !job_id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Invalid::new("job_id must be printable ASCII without spaces").into());
    }
    if let Some(slot) = slot {
        check_slot(slot)?;
    }
    let grams = check_grams("grams", grams, true)?;
    printer_of(svc, space_id, equipment_id).await?;
    let key = match slot {
        Some(slot) => format!("job:{job_id}:{slot}"),
        None => format!("job:{job_id}"),
    };
    if let Some(usage) = svc.store.usage_by_key(space_id, &key).await? {
        return Ok(Moved { usage, replayed: true });
    }
    let loaded = svc.store.loaded_spools(equipment_id).await?;
    let spool = pick_spool(&loaded, slot).map_err(|why| match why {
        NoSpool::NoneLoaded { slot } => SpoolError::NoSpoolLoaded { slot },
        NoSpool::Ambiguous { slots } => SpoolError::AmbiguousSpool { slots },
    })?;
    let change = StockChange {
        makerspace_id: space_id.to_string(),
        item_id: spool.item_id.clone(),
        movement: Movement::By(Quantity(-grams.0)),
        reason: UsageReason::UsedByJob,
        cause_kind: CauseKind::Job,
        cause_id: Some(job_id.to_string()),
        actor: "system".into(),
        note: None,
        idempotency_key: Some(key),
        at: Utc::now(),
        spool_id: Some(spool.spool_id.clone()),
    };
    let moved = stock::apply(svc, change).await?;
    refresh_after_change(svc, space_id, equipment_id).await;
    Ok(moved)
}

/// Reads a machine's loaded spools and shows them on its live view; answers them.
pub async fn refresh(svc: &Services, space_id: &str, equipment_id: &str) -> Result<Vec<LoadedSpool>, StoreError> {
    // Taken before the read: see `Fleet::spool_generation`.
    let generation = svc.fleet.spool_generation();
    let spools = svc.store.loaded_spools(equipment_id).await?;
    svc.fleet.show_spools(space_id, equipment_id, generation, spools.clone());
    Ok(spools)
}

/// Shows a machine's spools after a committed change, which stands even when the view cannot
/// be read now (the machine's next change of spools, or a restart, shows it).
async fn refresh_after_change(svc: &Services, space_id: &str, equipment_id: &str) {
    if let Err(err) = refresh(svc, space_id, equipment_id).await {
        tracing::warn!(equipment_id, error = %err, "the machine's spools could not be read for its live view");
    }
}

/// Shows every machine's loaded spools on its live view: when makrcave starts, the actors
/// come up without them. Answers the number of machines with spools.
pub async fn feed_fleet(svc: &Services) -> Result<usize, StoreError> {
    let generation = svc.fleet.spool_generation();
    let mut by_machine: BTreeMap<(String, String), Vec<LoadedSpool>> = BTreeMap::new();
    for (space_id, equipment_id, spool) in svc.store.all_loaded_spools().await? {
        by_machine.entry((space_id, equipment_id)).or_default().push(spool);
    }
    let machines = by_machine.len();
    for ((space_id, equipment_id), spools) in by_machine {
        svc.fleet.show_spools(&space_id, &equipment_id, generation, spools);
    }
    Ok(machines)
}
