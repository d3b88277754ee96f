//! Inventory items and their stock log. The log is appended to, never rewritten (a trigger
//! refuses updates); an item's `current_stock` is the sum of its log, written in the same
//! transaction as each row, so the two never disagree.

use chrono::{DateTime, Utc};
use sqlx::QueryBuilder;

use super::spools::{SpoolRecord, INSERT_SPOOL, SPOOL_LEVEL};
use super::stock_alerts::{follow_minimum, AlertRecord};
use super::{json_column, to_json_text, with_pool, with_writer, Store, StoreError};
use crate::domain::inventory::{check_change, Category, CauseKind, Quantity, StockRefusal, Unit, UsageReason};

/// Where an item is bought.
#[derive(Debug, Clone, PartialEq)]
pub struct SupplierRecord {
    /// `makrx_store` or `external`.
    pub kind: String,
    pub sku: Option<String>,
    pub name: Option<String>,
    pub url: Option<String>,
}

/// What a filament is made of, for matching it to jobs and to what printers report.
#[derive(Debug, Clone, PartialEq)]
pub struct FilamentRecord {
    pub material: String,
    /// `RRGGBB`.
    pub color_hex: Option<String>,
    pub diameter_um: Option<i64>,
    pub density_mg_cm3: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ItemRecord {
    pub id: String,
    pub makerspace_id: String,
    pub name: String,
    pub category: Category,
    pub unit: Unit,
    /// The sum of the item's log.
    pub current_stock: Quantity,
    pub min_stock_level: Quantity,
    pub reorder_quantity: Quantity,
    pub allow_negative: bool,
    pub location: Option<String>,
    pub supplier: SupplierRecord,
    pub unit_cost_minor: Option<i64>,
    pub filament: Option<FilamentRecord>,
    pub attributes: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct ItemRow {
    id: String,
    makerspace_id: String,
    name: String,
    category: String,
    unit: String,
    current_stock: i64,
    min_stock_level: i64,
    reorder_quantity: i64,
    allow_negative: bool,
    location: Option<String>,
    supplier_kind: String,
    supplier_sku: Option<String>,
    supplier_name: Option<String>,
    supplier_url: Option<String>,
    unit_cost_minor: Option<i64>,
    material: Option<String>,
    color_hex: Option<String>,
    diameter_um: Option<i64>,
    density_mg_cm3: Option<i64>,
    attributes: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// A stored enum value read back.
pub(super) fn decode<T: serde::de::DeserializeOwned>(column: &str, text: &str) -> Result<T, StoreError> {
    serde_json::from_value(serde_json::Value::String(text.to_string()))
        .map_err(|_| StoreError::Corrupt(format!("{column} {text:?}")))
}

/// An enum value as stored (its JSON name).
pub(super) fn encode<T: serde::Serialize>(value: T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

impl TryFrom<ItemRow> for ItemRecord {
    type Error = StoreError;
    fn try_from(r: ItemRow) -> Result<Self, StoreError> {
        Ok(ItemRecord {
            category: decode("inventory_items.category", &r.category)?,
            unit: decode("inventory_items.unit", &r.unit)?,
            attributes: json_column("inventory_items.attributes", &r.attributes)?,
            filament: r.material.map(|material| FilamentRecord {
                material,
                color_hex: r.color_hex,
                diameter_um: r.diameter_um,
                density_mg_cm3: r.density_mg_cm3,
            }),
            supplier: SupplierRecord {
                kind: r.supplier_kind,
                sku: r.supplier_sku,
                name: r.supplier_name,
                url: r.supplier_url,
            },
            id: r.id,
            makerspace_id: r.makerspace_id,
            name: r.name,
            current_stock: Quantity(r.current_stock),
            min_stock_level: Quantity(r.min_stock_level),
            reorder_quantity: Quantity(r.reorder_quantity),
            allow_negative: r.allow_negative,
            location: r.location,
            unit_cost_minor: r.unit_cost_minor,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

const SELECT_ITEM: &str = "SELECT id, makerspace_id, name, category, unit, current_stock, min_stock_level, \
     reorder_quantity, allow_negative, location, supplier_kind, supplier_sku, supplier_name, supplier_url, \
     unit_cost_minor, material, color_hex, diameter_um, density_mg_cm3, attributes, created_at, updated_at \
     FROM inventory_items";

/// One row of an item's stock log.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageRecord {
    pub id: i64,
    pub item_id: String,
    pub makerspace_id: String,
    pub delta: Quantity,
    pub level_after: Quantity,
    pub reason: UsageReason,
    pub cause_kind: CauseKind,
    pub cause_id: Option<String>,
    pub actor: String,
    pub note: Option<String>,
    pub idempotency_key: Option<String>,
    pub at: DateTime<Utc>,
    /// The spool the row was drawn from or counted on (filament only).
    pub spool_id: Option<String>,
}

#[derive(sqlx::FromRow)]
pub(super) struct UsageRow {
    id: i64,
    item_id: String,
    makerspace_id: String,
    delta: i64,
    level_after: i64,
    reason: String,
    cause_kind: String,
    cause_id: Option<String>,
    actor: String,
    note: Option<String>,
    idempotency_key: Option<String>,
    at: DateTime<Utc>,
    spool_id: Option<String>,
}

impl TryFrom<UsageRow> for UsageRecord {
    type Error = StoreError;
    fn try_from(r: UsageRow) -> Result<Self, StoreError> {
        Ok(UsageRecord {
            reason: decode("inventory_usage.reason", &r.reason)?,
            cause_kind: decode("inventory_usage.cause_kind", &r.cause_kind)?,
            id: r.id,
            item_id: r.item_id,
            makerspace_id: r.makerspace_id,
            delta: Quantity(r.delta),
            level_after: Quantity(r.level_after),
            cause_id: r.cause_id,
            actor: r.actor,
            note: r.note,
            idempotency_key: r.idempotency_key,
            at: r.at,
            spool_id: r.spool_id,
        })
    }
}

pub(super) const SELECT_USAGE: &str =
    "SELECT id, item_id, makerspace_id, delta, level_after, reason, cause_kind, cause_id, \
     actor, note, idempotency_key, at, spool_id FROM inventory_usage";

/// How a change moves the level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Movement {
    /// By this much (a deduct, a receipt).
    By(Quantity),
    /// The item to this level (a count): the row's delta is the difference.
    To(Quantity),
    /// The change's spool to this level (a weighed spool): the row's delta is the difference
    /// from the spool's sum, and moves the item's level as much.
    SpoolTo(Quantity),
}

/// A change of stock to write.
#[derive(Debug, Clone, PartialEq)]
pub struct StockChange {
    pub makerspace_id: String,
    pub item_id: String,
    pub movement: Movement,
    pub reason: UsageReason,
    pub cause_kind: CauseKind,
    pub cause_id: Option<String>,
    pub actor: String,
    pub note: Option<String>,
    /// A retried change with the same key (per item) is answered with the first one's row.
    pub idempotency_key: Option<String>,
    pub at: DateTime<Utc>,
    /// The spool of the item the change draws from or counts (its level is checked as the
    /// item's is), or `None` for the item as a whole.
    pub spool_id: Option<String>,
}

/// What became of a change of stock.
#[derive(Debug, Clone, PartialEq)]
pub enum StockOutcome {
    /// Written: the new row (its `level_after` is the new level).
    Applied {
        usage: UsageRecord,
        /// The low-stock alert this row raised, in its transaction.
        alert: Option<AlertRecord>,
    },
    /// A change with this idempotency key was written before: its row, nothing new.
    Replayed(UsageRecord),
    Refused(StockRefusal),
    /// No such live item in the makerspace.
    NoItem,
    /// The change names a spool that is not a live spool of the item.
    NoSpool,
}

/// Sort orders of an item listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemSort {
    Name,
    Category,
    CurrentStock,
    CreatedAt,
    UpdatedAt,
}

impl ItemSort {
    pub fn parse(s: &str) -> Option<ItemSort> {
        Some(match s {
            "name" => Self::Name,
            "category" => Self::Category,
            "current_stock" => Self::CurrentStock,
            "created_at" => Self::CreatedAt,
            "updated_at" => Self::UpdatedAt,
            _ => return None,
        })
    }

    fn column(self) -> &'static str {
        match self {
            Self::Name => "lower(name)",
            Self::Category => "category",
            Self::CurrentStock => "current_stock",
            Self::CreatedAt => "created_at",
            Self::UpdatedAt => "updated_at",
        }
    }
}

/// Filters, order and page of an item listing.
#[derive(Debug, Clone)]
pub struct ItemQuery {
    /// Part of the name, the SKU, the supplier's name or the material, any case.
    pub search: Option<String>,
    pub category: Option<Category>,
    pub supplier_kind: Option<String>,
    /// Only items at or below their minimum.
    pub low_stock: Option<bool>,
    pub location: Option<String>,
    pub sort: ItemSort,
    pub descending: bool,
    pub limit: i64,
    pub offset: i64,
}

fn push_item_filters<DB: sqlx::Database>(q: &mut QueryBuilder<DB>, makerspace_id: &str, query: &ItemQuery)
where
    for<'t> String: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    q.push(" WHERE deleted_at IS NULL AND makerspace_id = ").push_bind(makerspace_id.to_string());
    if let Some(search) = &query.search {
        let pattern =
            format!("%{}%", search.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_"));
        q.push(" AND (");
        for (i, column) in ["name", "supplier_sku", "supplier_name", "material"].iter().enumerate() {
            if i > 0 {
                q.push(" OR ");
            }
            q.push(format!("lower(coalesce({column}, '')) LIKE ")).push_bind(pattern.clone()).push(" ESCAPE '\\'");
        }
        q.push(")");
    }
    if let Some(category) = query.category {
        q.push(" AND category = ").push_bind(encode(category));
    }
    if let Some(kind) = &query.supplier_kind {
        q.push(" AND supplier_kind = ").push_bind(kind.clone());
    }
    match query.low_stock {
        Some(true) => {
            q.push(" AND current_stock <= min_stock_level");
        }
        Some(false) => {
            q.push(" AND current_stock > min_stock_level");
        }
        None => {}
    }
    if let Some(location) = &query.location {
        q.push(" AND location = ").push_bind(location.clone());
    }
}

/// Appends one row to an item's log inside a transaction, and gives the row back (a macro:
/// the executor's type differs per database).
macro_rules! insert_usage {
    ($executor:expr, $change:expr, $delta:expr, $after:expr) => {{
        let change: &StockChange = $change;
        let (delta, after): (Quantity, Quantity) = ($delta, $after);
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO inventory_usage (item_id, makerspace_id, delta, level_after, reason, cause_kind, cause_id,
             actor, note, idempotency_key, at, spool_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id",
        )
        .bind(&change.item_id)
        .bind(&change.makerspace_id)
        .bind(delta.0)
        .bind(after.0)
        .bind(change.reason.as_str())
        .bind(change.cause_kind.as_str())
        .bind(&change.cause_id)
        .bind(&change.actor)
        .bind(&change.note)
        .bind(&change.idempotency_key)
        .bind(change.at)
        .bind(&change.spool_id)
        .fetch_one($executor)
        .await
        .map_err(StoreError::from_write)?;
        UsageRecord {
            id,
            item_id: change.item_id.clone(),
            makerspace_id: change.makerspace_id.clone(),
            delta,
            level_after: after,
            reason: change.reason,
            cause_kind: change.cause_kind,
            cause_id: change.cause_id.clone(),
            actor: change.actor.clone(),
            note: change.note.clone(),
            idempotency_key: change.idempotency_key.clone(),
            at: change.at,
            spool_id: change.spool_id.clone(),
        }
    }};
}

/// Writes the editable fields of a live item (not its stock) on an executor: the pool for one
/// item, a batch's transaction for several. Evaluates to the rows written (0: no such live
/// item in the space).
macro_rules! update_item_on {
    ($executor:expr, $item:expr) => {{
        let item: &ItemRecord = $item;
        let (supplier, filament) = (&item.supplier, item.filament.as_ref());
        sqlx::query(
            "UPDATE inventory_items SET name = $3, category = $4, min_stock_level = $5, reorder_quantity = $6,
             allow_negative = $7, location = $8, supplier_kind = $9, supplier_sku = $10, supplier_name = $11,
             supplier_url = $12, unit_cost_minor = $13, material = $14, color_hex = $15, diameter_um = $16,
             density_mg_cm3 = $17, attributes = $18, updated_at = $19
             WHERE id = $1 AND makerspace_id = $2 AND deleted_at IS NULL",
        )
        .bind(&item.id)
        .bind(&item.makerspace_id)
        .bind(&item.name)
        .bind(encode(item.category))
        .bind(item.min_stock_level.0)
        .bind(item.reorder_quantity.0)
        .bind(item.allow_negative)
        .bind(&item.location)
        .bind(&supplier.kind)
        .bind(&supplier.sku)
        .bind(&supplier.name)
        .bind(&supplier.url)
        .bind(item.unit_cost_minor)
        .bind(filament.map(|f| f.material.clone()))
        .bind(filament.and_then(|f| f.color_hex.clone()))
        .bind(filament.and_then(|f| f.diameter_um))
        .bind(filament.and_then(|f| f.density_mg_cm3))
        .bind(to_json_text(&item.attributes))
        .bind(item.updated_at)
        .execute($executor)
        .await
        .map(|done| done.rows_affected())
        .map_err(StoreError::from_write)
    }};
}

/// Retires a live item on an executor (its log stays). Evaluates to the rows written.
macro_rules! retire_item_on {
    ($executor:expr, $makerspace_id:expr, $id:expr, $at:expr) => {{
        let at: DateTime<Utc> = $at;
        sqlx::query(
            "UPDATE inventory_items SET deleted_at = $3 WHERE id = $1 AND makerspace_id = $2 AND deleted_at IS NULL",
        )
        .bind($id)
        .bind($makerspace_id)
        .bind(at)
        .execute($executor)
        .await
        .map(|done| done.rows_affected())
        .map_err(StoreError::from)
    }};
}

/// Moves one item's stock inside the transaction `$tx`: the item's row is locked (on
/// PostgreSQL; SQLite has one writer connection, so its transactions already run one at a
/// time; every change of a spool is a change of its item, so the item's lock serializes the
/// spool's changes too), a retried key is answered with its first row, a new spool
/// (`$new_spool`, whose net weight the change receives) is registered, the level (and the
/// spool's, for a change of a spool) is checked by the domain's rule, and the row, the cached
/// level and the item's low-stock alert are written. Evaluates to the outcome; the caller
/// commits, or lets the transaction roll back.
macro_rules! change_stock_in {
    ($tx:ident, $change:expr, $new_spool:expr, $postgres:expr) => {
        async {
            let change: &StockChange = $change;
            let new_spool: Option<&SpoolRecord> = $new_spool;
            let lock = if $postgres { " FOR UPDATE" } else { "" };
            let select_item = format!(
                "SELECT current_stock, min_stock_level, allow_negative FROM inventory_items
                 WHERE id = $1 AND makerspace_id = $2 AND deleted_at IS NULL{lock}"
            );
            let select_key = format!("{SELECT_USAGE} WHERE item_id = $1 AND idempotency_key = $2");
            let item: Option<(i64, i64, bool)> = sqlx::query_as(sqlx::AssertSqlSafe(select_item))
                .bind(&change.item_id)
                .bind(&change.makerspace_id)
                .fetch_optional(&mut *$tx)
                .await?;
            let Some((level, min_stock_level, allow_negative)) = item else {
                return Ok(StockOutcome::NoItem);
            };
            if let Some(key) = &change.idempotency_key {
                let earlier: Option<UsageRow> = sqlx::query_as(sqlx::AssertSqlSafe(select_key))
                    .bind(&change.item_id)
                    .bind(key)
                    .fetch_optional(&mut *$tx)
                    .await?;
                if let Some(row) = earlier {
                    return Ok(StockOutcome::Replayed(row.try_into()?));
                }
            }
            if let Some(spool) = new_spool {
                sqlx::query(INSERT_SPOOL)
                    .bind(&spool.id)
                    .bind(&spool.makerspace_id)
                    .bind(&spool.item_id)
                    .bind(&spool.lot)
                    .bind(spool.initial_net.0)
                    .bind(spool.tare.0)
                    .bind(spool.created_at)
                    .execute(&mut *$tx)
                    .await
                    .map_err(StoreError::from_write)?;
            }
            let spool_level = match &change.spool_id {
                None => None,
                Some(spool_id) => {
                    let spool: Option<(i64,)> = sqlx::query_as(SPOOL_LEVEL)
                        .bind(spool_id)
                        .bind(&change.item_id)
                        .fetch_optional(&mut *$tx)
                        .await?;
                    let Some((spool_level,)) = spool else { return Ok(StockOutcome::NoSpool) };
                    Some(Quantity(spool_level))
                }
            };
            let before = Quantity(level);
            let delta = match (change.movement, spool_level) {
                (Movement::By(delta), _) => delta,
                (Movement::To(target), _) => Quantity(target.0 - level),
                (Movement::SpoolTo(target), Some(spool_level)) => Quantity(target.0 - spool_level.0),
                (Movement::SpoolTo(_), None) => return Ok(StockOutcome::NoSpool),
            };
            // A count sets what is there, whatever the log said; a move by a delta may not
            // take the item, nor its spool, below nothing (unless the item allows it).
            let allowed = allow_negative || !matches!(change.movement, Movement::By(_));
            let after = match check_change(before, delta, allowed) {
                Ok(after) => after,
                Err(refusal) => return Ok(StockOutcome::Refused(refusal)),
            };
            if let Some(Err(refusal)) = spool_level.map(|spool_level| check_change(spool_level, delta, allowed)) {
                return Ok(StockOutcome::Refused(refusal));
            }
            let usage = insert_usage!(&mut *$tx, change, delta, after);
            sqlx::query("UPDATE inventory_items SET current_stock = $2 WHERE id = $1")
                .bind(&change.item_id)
                .bind(after.0)
                .execute(&mut *$tx)
                .await?;
            let alert = follow_minimum!($tx, &usage, before, Quantity(min_stock_level));
            Ok::<StockOutcome, StoreError>(StockOutcome::Applied { usage, alert })
        }
        .await
    };
}

impl Store {
    /// Stores a new item with its opening stock as the first row of its log, atomically.
    pub async fn insert_item(&self, item: &ItemRecord, opening: Option<&StockChange>) -> Result<(), StoreError> {
        let (supplier, filament) = (&item.supplier, item.filament.as_ref());
        with_writer!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO inventory_items (id, makerspace_id, name, category, unit, current_stock, min_stock_level,
                 reorder_quantity, allow_negative, location, supplier_kind, supplier_sku, supplier_name, supplier_url,
                 unit_cost_minor, material, color_hex, diameter_um, density_mg_cm3, attributes, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, 0, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)",
            )
            .bind(&item.id).bind(&item.makerspace_id).bind(&item.name).bind(encode(item.category))
            .bind(encode(item.unit)).bind(item.min_stock_level.0).bind(item.reorder_quantity.0)
            .bind(item.allow_negative).bind(&item.location).bind(&supplier.kind).bind(&supplier.sku)
            .bind(&supplier.name).bind(&supplier.url).bind(item.unit_cost_minor)
            .bind(filament.map(|f| f.material.clone())).bind(filament.and_then(|f| f.color_hex.clone()))
            .bind(filament.and_then(|f| f.diameter_um)).bind(filament.and_then(|f| f.density_mg_cm3))
            .bind(to_json_text(&item.attributes)).bind(item.created_at).bind(item.updated_at)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from_write)?;
            if let Some(change) = opening {
                let Movement::To(level) = change.movement else {
                    return Err(StoreError::Corrupt("an opening stock is a level".into()));
                };
                insert_usage!(&mut *tx, change, level, level);
                sqlx::query("UPDATE inventory_items SET current_stock = $2 WHERE id = $1")
                    .bind(&item.id).bind(level.0).execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Writes the editable fields of a live item (not its stock, which only its log moves).
    pub async fn update_item(&self, item: &ItemRecord) -> Result<bool, StoreError> {
        let affected = with_writer!(self, pool => update_item_on!(pool, item)?);
        Ok(affected > 0)
    }

    /// Retires an item: it leaves listings, its log stays.
    pub async fn delete_item(&self, makerspace_id: &str, id: &str, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let affected = with_writer!(self, pool => retire_item_on!(pool, makerspace_id, id, at)?);
        Ok(affected > 0)
    }

    /// A live item of a makerspace.
    pub async fn get_item(&self, makerspace_id: &str, id: &str) -> Result<Option<ItemRecord>, StoreError> {
        let sql = format!("{SELECT_ITEM} WHERE makerspace_id = $1 AND id = $2 AND deleted_at IS NULL");
        let row: Option<ItemRow> = with_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(makerspace_id).bind(id).fetch_optional(pool).await?
        });
        row.map(ItemRecord::try_from).transpose()
    }

    /// One page of an item listing and the total number of matches.
    pub async fn list_items(
        &self,
        makerspace_id: &str,
        query: &ItemQuery,
    ) -> Result<(Vec<ItemRecord>, i64), StoreError> {
        let (rows, total): (Vec<ItemRow>, i64) = with_pool!(self, pool => {
            let mut page = QueryBuilder::new(SELECT_ITEM);
            push_item_filters(&mut page, makerspace_id, query);
            let direction = if query.descending { " DESC" } else { " ASC" };
            page.push(" ORDER BY ").push(query.sort.column()).push(direction).push(", id");
            page.push(" LIMIT ").push_bind(query.limit).push(" OFFSET ").push_bind(query.offset);
            let rows = page.build_query_as().fetch_all(pool).await?;
            let mut count = QueryBuilder::new("SELECT COUNT(*) FROM inventory_items");
            push_item_filters(&mut count, makerspace_id, query);
            let total: (i64,) = count.build_query_as().fetch_one(pool).await?;
            (rows, total.0)
        });
        let items = rows.into_iter().map(ItemRecord::try_from).collect::<Result<_, _>>()?;
        Ok((items, total))
    }

    /// Applies a change of stock: the item's row is locked, a retried key is answered with
    /// its first row, the level (and the spool's, for a change of a spool) is checked by the
    /// domain's rule, and the new row and the cached level are written in one transaction.
    pub async fn change_stock(&self, change: &StockChange) -> Result<StockOutcome, StoreError> {
        self.write_change(change, None).await
    }

    /// Registers a spool of a filament and receives its net weight into the item, as one
    /// change: `receipt` carries the spool's id. A retried key answers with the first row (and
    /// registers nothing); an id already taken is `Conflict`.
    pub async fn insert_spool(&self, spool: &SpoolRecord, receipt: &StockChange) -> Result<StockOutcome, StoreError> {
        self.write_change(receipt, Some(spool)).await
    }

    async fn write_change(
        &self,
        change: &StockChange,
        new_spool: Option<&SpoolRecord>,
    ) -> Result<StockOutcome, StoreError> {
        let postgres = self.kind() == "postgres";
        with_writer!(self, pool => {
            let mut tx = pool.begin().await?;
            let outcome = change_stock_in!(tx, change, new_spool, postgres)?;
            // Nothing else was written when the change was not applied: the rollback on drop
            // is all there is to undo.
            if matches!(outcome, StockOutcome::Applied { .. }) {
                tx.commit().await?;
            }
            Ok(outcome)
        })
    }

    /// A page of an item's log, newest first, and the number of rows in all.
    pub async fn item_usage(
        &self,
        item_id: &str,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<UsageRecord>, i64), StoreError> {
        let sql = format!("{SELECT_USAGE} WHERE item_id = $1 ORDER BY id DESC LIMIT $2 OFFSET $3");
        let (rows, total): (Vec<UsageRow>, (i64,)) = with_pool!(self, pool => {
            let rows = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(item_id).bind(limit).bind(offset)
                .fetch_all(pool).await?;
            let total = sqlx::query_as("SELECT COUNT(*) FROM inventory_usage WHERE item_id = $1")
                .bind(item_id).fetch_one(pool).await?;
            (rows, total)
        });
        let rows = rows.into_iter().map(UsageRecord::try_from).collect::<Result<_, _>>()?;
        Ok((rows, total.0))
    }

    /// The sum of an item's log (what `current_stock` caches), for checks.
    pub async fn sum_of_usage(&self, item_id: &str) -> Result<Quantity, StoreError> {
        let (sum,): (Option<i64>,) = with_pool!(self, pool => {
            sqlx::query_as("SELECT CAST(SUM(delta) AS BIGINT) FROM inventory_usage WHERE item_id = $1")
                .bind(item_id).fetch_one(pool).await?
        });
        Ok(Quantity(sum.unwrap_or(0)))
    }
}

/// One write of an all-or-nothing batch: the same statements and rules as the single-item
/// paths ([`Store::update_item`], [`Store::change_stock`], [`Store::delete_item`]).
#[derive(Debug, Clone, PartialEq)]
pub enum BatchWrite {
    /// The editable fields of a live item.
    Update(ItemRecord),
    /// A move of stock.
    Move(StockChange),
    /// Retiring a live item.
    Retire { item_id: String, at: DateTime<Utc> },
}

impl BatchWrite {
    fn item_id(&self) -> &str {
        match self {
            Self::Update(item) => &item.id,
            Self::Move(change) => &change.item_id,
            Self::Retire { item_id, .. } => item_id,
        }
    }
}

/// What became of one write of a batch.
#[derive(Debug, Clone, PartialEq)]
pub enum BatchOutcome {
    Updated,
    Retired,
    /// Boxed: a move's outcome carries its row and alert, the others nothing.
    Moved(Box<StockOutcome>),
    /// No such live item in the makerspace (an update or a retirement).
    NoItem,
}

impl BatchOutcome {
    /// Whether this write stands: a batch commits only when every one of its writes does.
    pub fn stands(&self) -> bool {
        match self {
            Self::Updated | Self::Retired => true,
            Self::Moved(outcome) => matches!(**outcome, StockOutcome::Applied { .. } | StockOutcome::Replayed(_)),
            Self::NoItem => false,
        }
    }
}

/// What became of a batch: every write's outcome in order, and whether the batch was
/// committed (every write stood) or rolled back (nothing of it is stored).
#[derive(Debug, Clone, PartialEq)]
pub struct BatchResult {
    pub outcomes: Vec<BatchOutcome>,
    pub committed: bool,
}

impl Store {
    /// Writes a batch of a makerspace's items in one transaction, all or nothing. Every write
    /// is tried, also after one that does not stand, so that the answer can name each one
    /// that failed; then the batch commits only if all stood.
    pub async fn write_batch(&self, makerspace_id: &str, writes: &[BatchWrite]) -> Result<BatchResult, StoreError> {
        let postgres = self.kind() == "postgres";
        // PostgreSQL: the batch's items are locked first, in one order (sorted ids), so that
        // two batches (or a batch and single moves) over the same items wait for each other
        // instead of deadlocking on locks taken in the order each request lists its items.
        let mut ids: Vec<&str> = writes.iter().map(BatchWrite::item_id).collect();
        ids.sort_unstable();
        ids.dedup();
        with_writer!(self, pool => {
            let mut tx = pool.begin().await?;
            if postgres {
                for id in &ids {
                    sqlx::query("SELECT 1 FROM inventory_items WHERE id = $1 AND makerspace_id = $2 FOR UPDATE")
                        .bind(*id).bind(makerspace_id)
                        .fetch_optional(&mut *tx).await?;
                }
            }
            let mut outcomes = Vec::with_capacity(writes.len());
            for write in writes {
                let outcome = match write {
                    BatchWrite::Update(item) => match update_item_on!(&mut *tx, item)? {
                        0 => BatchOutcome::NoItem,
                        _ => BatchOutcome::Updated,
                    },
                    BatchWrite::Retire { item_id, at } => match retire_item_on!(&mut *tx, makerspace_id, item_id, *at)? {
                        0 => BatchOutcome::NoItem,
                        _ => BatchOutcome::Retired,
                    },
                    BatchWrite::Move(change) => BatchOutcome::Moved(Box::new(change_stock_in!(tx, change, None, postgres)?)),
                };
                outcomes.push(outcome);
            }
            let committed = outcomes.iter().all(BatchOutcome::stands);
            if committed {
                tx.commit().await?;
            }
            Ok(BatchResult { outcomes, committed })
        })
    }

    /// The live items of a makerspace bought from the MakrX Store under one of these SKUs.
    pub async fn store_items_with_skus(
        &self,
        makerspace_id: &str,
        skus: &[String],
    ) -> Result<Vec<ItemRecord>, StoreError> {
        if skus.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<ItemRow> = with_pool!(self, pool => {
            let mut q = QueryBuilder::new(SELECT_ITEM);
            q.push(" WHERE deleted_at IS NULL AND supplier_kind = 'makrx_store' AND makerspace_id = ")
                .push_bind(makerspace_id.to_string())
                .push(" AND supplier_sku IN (");
            let mut list = q.separated(", ");
            for sku in skus {
                list.push_bind(sku.clone());
            }
            list.push_unseparated(") ORDER BY id");
            q.build_query_as().fetch_all(pool).await?
        });
        rows.into_iter().map(ItemRecord::try_from).collect()
    }
}
