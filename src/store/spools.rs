//! Filament spools and where they are loaded. A spool's remaining grams are never stored: they
//! are the sum of the log rows that carry its id (`inventory_usage.spool_id`), read with the
//! spool. Its stock moves go through the item's log ([`Store::change_stock`],
//! [`Store::insert_spool`]); this module keeps the spools themselves and their loads.

use chrono::{DateTime, Utc};

use super::inventory::{UsageRecord, UsageRow, SELECT_USAGE};
use super::{with_pool, with_writer, Store, StoreError};
use crate::domain::inventory::Quantity;
use crate::domain::spools::LoadedSpool;

/// A spool of a filament item.
#[derive(Debug, Clone, PartialEq)]
pub struct SpoolRecord {
    pub id: String,
    pub makerspace_id: String,
    pub item_id: String,
    pub lot: Option<String>,
    /// The filament on the spool when it came in.
    pub initial_net: Quantity,
    /// The empty spool's weight.
    pub tare: Quantity,
    pub created_at: DateTime<Utc>,
    pub retired_at: Option<DateTime<Utc>>,
    /// The sum of the spool's log rows (read, never written).
    pub remaining: Quantity,
    /// Where it is loaded, if it is.
    pub load: Option<SpoolLoad>,
}

/// A spool in a slot of a machine.
#[derive(Debug, Clone, PartialEq)]
pub struct SpoolLoad {
    pub equipment_id: String,
    pub slot: String,
    pub loaded_by: String,
    pub loaded_at: DateTime<Utc>,
}

/// What became of loading a spool.
#[derive(Debug, Clone, PartialEq)]
pub enum LoadOutcome {
    Loaded,
    /// It was already in that slot: nothing changed.
    AlreadyThere,
    /// It is loaded somewhere else (one place per spool).
    LoadedElsewhere {
        equipment_id: String,
        slot: String,
    },
    /// Another spool holds the slot (`None`: it was unloaded meanwhile; try again).
    SlotTaken {
        spool_id: Option<String>,
    },
}

/// Stores a new spool (inside a change of stock, see [`Store::insert_spool`]).
pub(super) const INSERT_SPOOL: &str =
    "INSERT INTO spools (id, makerspace_id, item_id, lot, initial_net, tare, created_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7)";

/// The remaining thousandths of a live spool of an item (`$1` spool, `$2` item): no row when
/// the spool is not one.
pub(super) const SPOOL_LEVEL: &str =
    "SELECT CAST(COALESCE((SELECT SUM(u.delta) FROM inventory_usage u WHERE u.spool_id = s.id), 0) AS BIGINT)
     FROM spools s WHERE s.id = $1 AND s.item_id = $2 AND s.retired_at IS NULL";

const SELECT_SPOOL: &str = "SELECT s.id, s.makerspace_id, s.item_id, s.lot, s.initial_net, s.tare, s.created_at, \
     s.retired_at, CAST(COALESCE((SELECT SUM(u.delta) FROM inventory_usage u WHERE u.spool_id = s.id), 0) AS BIGINT) \
     AS remaining, l.equipment_id, l.slot, l.loaded_by, l.loaded_at \
     FROM spools s LEFT JOIN spool_loads l ON l.spool_id = s.id";

#[derive(sqlx::FromRow)]
struct SpoolRow {
    id: String,
    makerspace_id: String,
    item_id: String,
    lot: Option<String>,
    initial_net: i64,
    tare: i64,
    created_at: DateTime<Utc>,
    retired_at: Option<DateTime<Utc>>,
    remaining: i64,
    equipment_id: Option<String>,
    slot: Option<String>,
    loaded_by: Option<String>,
    loaded_at: Option<DateTime<Utc>>,
}

impl From<SpoolRow> for SpoolRecord {
    fn from(r: SpoolRow) -> Self {
        let load = match (r.equipment_id, r.slot, r.loaded_by, r.loaded_at) {
            (Some(equipment_id), Some(slot), Some(loaded_by), Some(loaded_at)) => {
                Some(SpoolLoad { equipment_id, slot, loaded_by, loaded_at })
            }
            _ => None,
        };
        SpoolRecord {
            id: r.id,
            makerspace_id: r.makerspace_id,
            item_id: r.item_id,
            lot: r.lot,
            initial_net: Quantity(r.initial_net),
            tare: Quantity(r.tare),
            created_at: r.created_at,
            retired_at: r.retired_at,
            remaining: Quantity(r.remaining),
            load,
        }
    }
}

/// The spools loaded on machines, with their filament's material and colour.
const SELECT_LOADED: &str = "SELECT l.makerspace_id, l.equipment_id, l.spool_id, s.item_id, l.slot, i.material, \
     i.color_hex, CAST(COALESCE((SELECT SUM(u.delta) FROM inventory_usage u WHERE u.spool_id = s.id), 0) AS BIGINT) \
     AS remaining FROM spool_loads l JOIN spools s ON s.id = l.spool_id JOIN inventory_items i ON i.id = s.item_id";

#[derive(sqlx::FromRow)]
struct LoadedRow {
    makerspace_id: String,
    equipment_id: String,
    spool_id: String,
    item_id: String,
    slot: String,
    material: Option<String>,
    color_hex: Option<String>,
    remaining: i64,
}

impl From<LoadedRow> for LoadedSpool {
    fn from(r: LoadedRow) -> Self {
        LoadedSpool {
            spool_id: r.spool_id,
            item_id: r.item_id,
            slot: r.slot,
            material: r.material,
            color: r.color_hex.map(|c| format!("#{c}")),
            remaining_g: Quantity(r.remaining),
        }
    }
}

impl Store {
    /// A live spool of a makerspace, with its remaining grams and its load.
    pub async fn get_spool(&self, makerspace_id: &str, id: &str) -> Result<Option<SpoolRecord>, StoreError> {
        let sql = format!("{SELECT_SPOOL} WHERE s.makerspace_id = $1 AND s.id = $2 AND s.retired_at IS NULL");
        let row: Option<SpoolRow> = with_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(makerspace_id).bind(id).fetch_optional(pool).await?
        });
        Ok(row.map(SpoolRecord::from))
    }

    /// The live spools of an item, oldest first (the one to use up first).
    pub async fn list_spools(&self, makerspace_id: &str, item_id: &str) -> Result<Vec<SpoolRecord>, StoreError> {
        let sql = format!(
            "{SELECT_SPOOL} WHERE s.makerspace_id = $1 AND s.item_id = $2 AND s.retired_at IS NULL
             ORDER BY s.created_at, s.id"
        );
        let rows: Vec<SpoolRow> = with_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(makerspace_id).bind(item_id).fetch_all(pool).await?
        });
        Ok(rows.into_iter().map(SpoolRecord::from).collect())
    }

    /// Loads a spool in a slot of a machine. The keys decide: a spool is in one place, a slot
    /// holds one spool; on a conflict the loads are read to say which.
    pub async fn load_spool(
        &self,
        makerspace_id: &str,
        spool_id: &str,
        equipment_id: &str,
        slot: &str,
        by: &str,
        at: DateTime<Utc>,
    ) -> Result<LoadOutcome, StoreError> {
        let inserted = with_writer!(self, pool => {
            sqlx::query(
                "INSERT INTO spool_loads (spool_id, makerspace_id, equipment_id, slot, loaded_by, loaded_at)
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(spool_id).bind(makerspace_id).bind(equipment_id).bind(slot).bind(by).bind(at)
            .execute(pool)
            .await
            .map(|done| done.rows_affected())
            .map_err(StoreError::from_write)
        });
        match inserted {
            Ok(_) => return Ok(LoadOutcome::Loaded),
            Err(StoreError::Conflict) => {}
            Err(e) => return Err(e),
        }
        let (this, occupant): (Option<(String, String)>, Option<(String,)>) = with_writer!(self, pool => {
            let this = sqlx::query_as("SELECT equipment_id, slot FROM spool_loads WHERE spool_id = $1")
                .bind(spool_id).fetch_optional(pool).await?;
            let occupant = sqlx::query_as("SELECT spool_id FROM spool_loads WHERE equipment_id = $1 AND slot = $2")
                .bind(equipment_id).bind(slot).fetch_optional(pool).await?;
            (this, occupant)
        });
        Ok(match this {
            Some((e, s)) if e == equipment_id && s == slot => LoadOutcome::AlreadyThere,
            Some((equipment_id, slot)) => LoadOutcome::LoadedElsewhere { equipment_id, slot },
            None => LoadOutcome::SlotTaken { spool_id: occupant.map(|(id,)| id) },
        })
    }

    /// Takes a spool off a machine; false when it was not loaded there.
    pub async fn unload_spool(
        &self,
        makerspace_id: &str,
        equipment_id: &str,
        spool_id: &str,
    ) -> Result<bool, StoreError> {
        let affected = with_writer!(self, pool => {
            sqlx::query("DELETE FROM spool_loads WHERE spool_id = $1 AND equipment_id = $2 AND makerspace_id = $3")
                .bind(spool_id).bind(equipment_id).bind(makerspace_id)
                .execute(pool).await?.rows_affected()
        });
        Ok(affected > 0)
    }

    /// The spools loaded on a machine, by slot.
    pub async fn loaded_spools(&self, equipment_id: &str) -> Result<Vec<LoadedSpool>, StoreError> {
        let sql = format!("{SELECT_LOADED} WHERE l.equipment_id = $1 ORDER BY l.slot");
        let rows: Vec<LoadedRow> = with_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(equipment_id).fetch_all(pool).await?
        });
        Ok(rows.into_iter().map(LoadedSpool::from).collect())
    }

    /// The row of a makerspace's log written with an idempotency key, whichever its item: a
    /// job's charge is found again even after its spool left the machine.
    pub async fn usage_by_key(&self, makerspace_id: &str, key: &str) -> Result<Option<UsageRecord>, StoreError> {
        let sql = format!("{SELECT_USAGE} WHERE makerspace_id = $1 AND idempotency_key = $2 ORDER BY id LIMIT 1");
        let row: Option<UsageRow> = with_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(makerspace_id).bind(key).fetch_optional(pool).await?
        });
        row.map(UsageRecord::try_from).transpose()
    }

    /// Every loaded spool, as `(makerspace_id, equipment_id, spool)` ordered by machine and
    /// slot: what the machines' actors show when makrcave starts.
    pub async fn all_loaded_spools(&self) -> Result<Vec<(String, String, LoadedSpool)>, StoreError> {
        let sql = format!("{SELECT_LOADED} ORDER BY l.equipment_id, l.slot");
        let rows: Vec<LoadedRow> = with_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_all(pool).await?
        });
        Ok(rows.into_iter().map(|r| (r.makerspace_id.clone(), r.equipment_id.clone(), LoadedSpool::from(r))).collect())
    }
}
