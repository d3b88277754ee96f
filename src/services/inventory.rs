//! A makerspace's inventory items: added, edited, listed and retired. People of the space
//! read what it stocks; only its makerspace_admins (and super_admin) write. Stock itself moves
//! only through the log ([`super::stock`]).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::access::Principal;
use crate::domain::ids::{new_id, validate_id};
use crate::domain::inventory::{normalize_color, Category, CauseKind, Quantity, Unit, UsageReason, MAX_UNITS};
use crate::domain::validate::{check_len, check_object, optional_text, Invalid};
use crate::store::inventory::{FilamentRecord, ItemQuery, ItemRecord, Movement, StockChange, SupplierRecord};
use crate::store::StoreError;

use super::access::{space_for, AccessError};
use super::Services;

/// Largest unit cost, in minor units (a hundred million of the currency's major unit).
pub const MAX_UNIT_COST_MINOR: i64 = 10_000_000_000;
/// Largest free-attributes object, as JSON text.
const MAX_ATTRIBUTES_BYTES: usize = 8 * 1024;
/// Paths under `/inventory/` that are not items (`GET .../inventory/alerts`, `.../export`,
/// `POST .../bulk`, `.../import`): an item may not take their names as ids, or it could not be
/// reached.
const RESERVED_IDS: &[&str] = &["alerts", "bulk", "export", "import"];

#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error(transparent)]
    Access(#[from] AccessError),
    #[error("inventory item not found")]
    NotFound,
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error("an inventory item with this id already exists")]
    Duplicate,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where an item is bought: the MakrX Store by its SKU, or another supplier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Supplier {
    MakrxStore {
        #[schema(min_length = 1, max_length = 100, pattern = r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")]
        sku: String,
    },
    External {
        #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
        name: String,
        #[schema(max_length = 500, pattern = r"^https?://[^\s]+$")]
        url: Option<String>,
        #[schema(min_length = 1, max_length = 100, pattern = r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")]
        sku: Option<String>,
    },
}

/// What a filament is: matched against jobs and against what printers report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Filament {
    /// PLA, PETG, ABS, TPU, ...
    #[schema(min_length = 1, max_length = 40, pattern = r"^[A-Za-z0-9][A-Za-z0-9 +._-]*$")]
    pub material: String,
    /// `#RRGGBB`.
    #[schema(pattern = "^#?[0-9A-Fa-f]{6}([0-9A-Fa-f]{2})?$")]
    pub color: Option<String>,
    /// 1.75 or 2.85, in millimetres.
    #[schema(minimum = 0.1, maximum = 10)]
    pub diameter_mm: Option<f64>,
    /// Grams per cubic centimetre (PLA: 1.24).
    #[schema(minimum = 0.1, maximum = 30)]
    pub density_g_cm3: Option<f64>,
}

/// The cost of one unit of an item, in the makerspace's currency.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct UnitCost {
    /// Minor units (cents).
    pub amount_minor: i64,
    /// ISO 4217, the makerspace's.
    pub currency: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ItemResponse {
    pub id: String,
    pub makerspace_id: String,
    pub name: String,
    pub category: Category,
    pub unit: Unit,
    /// In the item's unit (at most three decimals): the sum of its stock log.
    #[schema(value_type = f64)]
    pub current_stock: Quantity,
    #[schema(value_type = f64)]
    pub min_stock_level: Quantity,
    #[schema(value_type = f64)]
    pub reorder_quantity: Quantity,
    pub allow_negative: bool,
    /// At or below the minimum.
    pub low_stock: bool,
    pub location: Option<String>,
    pub supplier: Supplier,
    pub unit_cost: Option<UnitCost>,
    pub filament: Option<Filament>,
    pub attributes: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl ItemResponse {
    pub fn new(item: ItemRecord, currency: &str) -> Self {
        ItemResponse {
            low_stock: item.current_stock <= item.min_stock_level,
            supplier: supplier_of(&item.supplier),
            unit_cost: item
                .unit_cost_minor
                .map(|amount_minor| UnitCost { amount_minor, currency: currency.to_string() }),
            filament: item.filament.as_ref().map(|f| Filament {
                material: f.material.clone(),
                color: f.color_hex.as_ref().map(|c| format!("#{c}")),
                diameter_mm: f.diameter_um.map(|um| um as f64 / 1000.0),
                density_g_cm3: f.density_mg_cm3.map(|mg| mg as f64 / 1000.0),
            }),
            id: item.id,
            makerspace_id: item.makerspace_id,
            name: item.name,
            category: item.category,
            unit: item.unit,
            current_stock: item.current_stock,
            min_stock_level: item.min_stock_level,
            reorder_quantity: item.reorder_quantity,
            allow_negative: item.allow_negative,
            location: item.location,
            attributes: item.attributes,
            created_at: item.created_at,
            updated_at: item.updated_at,
        }
    }
}

fn supplier_of(record: &SupplierRecord) -> Supplier {
    if record.kind == "makrx_store" {
        Supplier::MakrxStore { sku: record.sku.clone().unwrap_or_default() }
    } else {
        Supplier::External {
            name: record.name.clone().unwrap_or_default(),
            url: record.url.clone(),
            sku: record.sku.clone(),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemCreate {
    /// Default: a new UUID.
    #[schema(pattern = "^[a-z0-9][a-z0-9-]{0,63}$")]
    pub id: Option<String>,
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub name: String,
    pub category: Category,
    pub unit: Unit,
    /// What is in stock now (the log's first row, an adjustment) [default: 0].
    #[schema(value_type = Option<f64>, minimum = 0, maximum = 100_000_000, multiple_of = 0.001)]
    pub current_stock: Option<Quantity>,
    /// At or below this level the item is low on stock [default: 0].
    #[schema(value_type = Option<f64>, minimum = 0, maximum = 100_000_000, multiple_of = 0.001)]
    pub min_stock_level: Option<Quantity>,
    /// How much to order when it is low [default: 0].
    #[schema(value_type = Option<f64>, minimum = 0, maximum = 100_000_000, multiple_of = 0.001)]
    pub reorder_quantity: Option<Quantity>,
    /// Whether stock may go below zero (an item counted after use) [default: false].
    pub allow_negative: Option<bool>,
    /// Where it is kept; blank: nowhere in particular (on an update, clears it).
    #[schema(max_length = 200, pattern = r"^[^\x00-\x1f\x7f-\x9f\u2028\u2029]*$")]
    pub location: Option<String>,
    /// [default: an external supplier named "unknown"]
    pub supplier: Option<Supplier>,
    /// Cost of one unit, in the makerspace's currency's minor units.
    #[schema(minimum = 0, maximum = 10_000_000_000_i64)]
    pub unit_cost_minor: Option<i64>,
    /// For a filament only.
    pub filament: Option<Filament>,
    /// Free attributes (a JSON object of at most 8 KiB).
    pub attributes: Option<serde_json::Value>,
}

/// The fields to change; what is absent stays. The unit and the stock are not here: the unit
/// gives the log its meaning, and stock moves only through the log.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemUpdate {
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub name: Option<String>,
    pub category: Option<Category>,
    #[schema(value_type = Option<f64>, minimum = 0, maximum = 100_000_000, multiple_of = 0.001)]
    pub min_stock_level: Option<Quantity>,
    #[schema(value_type = Option<f64>, minimum = 0, maximum = 100_000_000, multiple_of = 0.001)]
    pub reorder_quantity: Option<Quantity>,
    pub allow_negative: Option<bool>,
    /// Where it is kept; blank: nowhere in particular (on an update, clears it).
    #[schema(max_length = 200, pattern = r"^[^\x00-\x1f\x7f-\x9f\u2028\u2029]*$")]
    pub location: Option<String>,
    pub supplier: Option<Supplier>,
    #[schema(minimum = 0, maximum = 10_000_000_000_i64)]
    pub unit_cost_minor: Option<i64>,
    pub filament: Option<Filament>,
    pub attributes: Option<serde_json::Value>,
}

/// Loads the space the caller may read (`manage`: write) the inventory of.
async fn space_of(svc: &Services, caller: &Principal, space_id: &str, manage: bool) -> Result<String, InventoryError> {
    let decision = if manage { caller.can_manage_space(space_id) } else { caller.can_read_space(space_id) };
    Ok(space_for(svc, decision, space_id).await?.currency)
}

/// The caller may read the space's stock log (who took what): its admins and the platform's.
pub async fn check_log_reader(svc: &Services, caller: &Principal, space_id: &str) -> Result<(), InventoryError> {
    space_for(svc, caller.can_read_members(space_id), space_id).await?;
    Ok(())
}

/// A live item of a space the caller may read (`manage`: write), with the space's currency.
pub async fn load(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
    item_id: &str,
    manage: bool,
) -> Result<(ItemRecord, String), InventoryError> {
    let currency = space_of(svc, caller, space_id, manage).await?;
    let item = svc.store.get_item(space_id, item_id).await?.ok_or(InventoryError::NotFound)?;
    Ok((item, currency))
}

fn check_quantity(field: &str, value: Quantity) -> Result<Quantity, Invalid> {
    if value.0 < 0 || value > Quantity::from_units(MAX_UNITS) {
        return Err(Invalid(format!("{field} must be from 0 to {MAX_UNITS}")));
    }
    Ok(value)
}

fn check_supplier(supplier: Supplier) -> Result<SupplierRecord, Invalid> {
    let sku = |sku: &str| -> Result<String, Invalid> {
        check_len("supplier.sku", sku, 100)?;
        Ok(sku.trim().to_string())
    };
    Ok(match supplier {
        Supplier::MakrxStore { sku: code } => {
            SupplierRecord { kind: "makrx_store".into(), sku: Some(sku(&code)?), name: None, url: None }
        }
        Supplier::External { name, url, sku: code } => {
            check_len("supplier.name", &name, 200)?;
            if let Some(url) = &url {
                check_len("supplier.url", url, 500)?;
                let ok = (url.starts_with("https://") || url.starts_with("http://"))
                    && !url.chars().any(char::is_whitespace);
                if !ok {
                    return Err(Invalid::new("supplier.url must be an http:// or https:// address"));
                }
            }
            SupplierRecord {
                kind: "external".into(),
                sku: code.as_deref().map(sku).transpose()?,
                name: Some(name.trim().to_string()),
                url,
            }
        }
    })
}

fn check_filament(filament: Filament) -> Result<FilamentRecord, Invalid> {
    check_len("filament.material", &filament.material, 40)?;
    let color_hex = match &filament.color {
        None => None,
        Some(c) => Some(normalize_color(c).ok_or_else(|| Invalid::new("filament.color must be #RRGGBB"))?),
    };
    let thousandths = |field: &str, value: Option<f64>, range: std::ops::RangeInclusive<f64>| {
        value
            .map(|v| {
                if v.is_finite() && range.contains(&v) {
                    Ok((v * 1000.0).round() as i64)
                } else {
                    Err(Invalid(format!("filament.{field} must be from {} to {}", range.start(), range.end())))
                }
            })
            .transpose()
    };
    Ok(FilamentRecord {
        material: filament.material.trim().to_string(),
        color_hex,
        diameter_um: thousandths("diameter_mm", filament.diameter_mm, 0.1..=10.0)?,
        density_mg_cm3: thousandths("density_g_cm3", filament.density_g_cm3, 0.1..=30.0)?,
    })
}

fn check_attributes(attributes: serde_json::Value) -> Result<serde_json::Value, Invalid> {
    check_object("attributes", &attributes)?;
    if attributes.to_string().len() > MAX_ATTRIBUTES_BYTES {
        return Err(Invalid(format!("attributes must be at most {MAX_ATTRIBUTES_BYTES} bytes of JSON")));
    }
    Ok(attributes)
}

fn check_cost(cost: Option<i64>) -> Result<Option<i64>, Invalid> {
    match cost {
        Some(c) if !(0..=MAX_UNIT_COST_MINOR).contains(&c) => {
            Err(Invalid(format!("unit_cost_minor must be from 0 to {MAX_UNIT_COST_MINOR}")))
        }
        _ => Ok(cost),
    }
}

/// Filament details belong to filaments only.
fn check_kind(category: Category, filament: &Option<FilamentRecord>) -> Result<(), Invalid> {
    if filament.is_some() && category != Category::Filament {
        return Err(Invalid::new("filament details are for items of category filament"));
    }
    Ok(())
}

pub async fn create(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
    body: ItemCreate,
) -> Result<(ItemRecord, String), InventoryError> {
    let currency = space_of(svc, caller, space_id, true).await?;
    // Over the API an opening stock is never negative (its schema says so); only an import
    // restores a negative level, of an item that allows one (see `new_item`).
    check_quantity("current_stock", body.current_stock.unwrap_or_default())?;
    let (item, opening) = new_item(space_id, &caller.user_id, body, Utc::now())?;
    insert(svc, &item, opening.as_ref()).await?;
    Ok((item, currency))
}

/// A new item of the space from a create request, checked, and its opening stock as the first
/// row of its log (so that the level is the sum of the log from the start). The opening may be
/// negative only for an item that allows negative stock.
pub fn new_item(
    space_id: &str,
    actor: &str,
    body: ItemCreate,
    now: DateTime<Utc>,
) -> Result<(ItemRecord, Option<StockChange>), Invalid> {
    let id = match body.id {
        Some(id) => {
            validate_id(&id).map_err(|e| Invalid(e.to_string()))?;
            if RESERVED_IDS.contains(&id.as_str()) {
                return Err(Invalid(format!("{id:?} names a listing under /inventory: choose another id")));
            }
            id
        }
        None => new_id(),
    };
    check_len("name", &body.name, 200)?;
    let filament = body.filament.map(check_filament).transpose()?;
    check_kind(body.category, &filament)?;
    let allow_negative = body.allow_negative.unwrap_or(false);
    let opening = body.current_stock.unwrap_or_default();
    let lowest = if allow_negative { -MAX_UNITS } else { 0 };
    if opening < Quantity::from_units(lowest) || opening > Quantity::from_units(MAX_UNITS) {
        return Err(Invalid(format!("current_stock must be from {lowest} to {MAX_UNITS}")));
    }
    let item = ItemRecord {
        id,
        makerspace_id: space_id.to_string(),
        name: body.name.trim().to_string(),
        category: body.category,
        unit: body.unit,
        current_stock: opening,
        min_stock_level: check_quantity("min_stock_level", body.min_stock_level.unwrap_or_default())?,
        reorder_quantity: check_quantity("reorder_quantity", body.reorder_quantity.unwrap_or_default())?,
        allow_negative,
        location: optional_text("location", body.location, 200)?,
        supplier: match body.supplier {
            Some(s) => check_supplier(s)?,
            None => SupplierRecord { kind: "external".into(), sku: None, name: Some("unknown".into()), url: None },
        },
        unit_cost_minor: check_cost(body.unit_cost_minor)?,
        filament,
        attributes: check_attributes(body.attributes.unwrap_or_else(|| serde_json::json!({})))?,
        created_at: now,
        updated_at: now,
    };
    let opening = (opening != Quantity::ZERO).then(|| StockChange {
        makerspace_id: item.makerspace_id.clone(),
        item_id: item.id.clone(),
        movement: Movement::To(opening),
        reason: UsageReason::Adjusted,
        cause_kind: CauseKind::Admin,
        cause_id: None,
        actor: actor.to_string(),
        note: Some("opening stock".into()),
        idempotency_key: None,
        at: now,
        spool_id: None,
    });
    Ok((item, opening))
}

/// Stores a new item with its opening row; an id already taken is a duplicate.
pub async fn insert(svc: &Services, item: &ItemRecord, opening: Option<&StockChange>) -> Result<(), InventoryError> {
    match svc.store.insert_item(item, opening).await {
        Err(StoreError::Conflict) => Err(InventoryError::Duplicate),
        other => Ok(other?),
    }
}

pub async fn update(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
    item_id: &str,
    body: ItemUpdate,
) -> Result<(ItemRecord, String), InventoryError> {
    let (mut item, currency) = load(svc, caller, space_id, item_id, true).await?;
    apply_update(&mut item, body, Utc::now())?;
    if !svc.store.update_item(&item).await? {
        return Err(InventoryError::NotFound);
    }
    // The level may have moved since it was read: answer with what is stored.
    let item = svc.store.get_item(space_id, item_id).await?.ok_or(InventoryError::NotFound)?;
    Ok((item, currency))
}

/// An item with the changes of an update request, checked (nothing is stored here).
pub fn apply_update(item: &mut ItemRecord, body: ItemUpdate, now: DateTime<Utc>) -> Result<(), Invalid> {
    if let Some(name) = body.name {
        check_len("name", &name, 200)?;
        item.name = name.trim().to_string();
    }
    if let Some(category) = body.category {
        item.category = category;
    }
    if let Some(filament) = body.filament {
        item.filament = Some(check_filament(filament)?);
    }
    check_kind(item.category, &item.filament)?;
    if let Some(level) = body.min_stock_level {
        item.min_stock_level = check_quantity("min_stock_level", level)?;
    }
    if let Some(quantity) = body.reorder_quantity {
        item.reorder_quantity = check_quantity("reorder_quantity", quantity)?;
    }
    if let Some(allow) = body.allow_negative {
        item.allow_negative = allow;
    }
    if body.location.is_some() {
        item.location = optional_text("location", body.location, 200)?;
    }
    if let Some(supplier) = body.supplier {
        item.supplier = check_supplier(supplier)?;
    }
    if body.unit_cost_minor.is_some() {
        item.unit_cost_minor = check_cost(body.unit_cost_minor)?;
    }
    if let Some(attributes) = body.attributes {
        item.attributes = check_attributes(attributes)?;
    }
    item.updated_at = now;
    Ok(())
}

pub async fn delete(svc: &Services, caller: &Principal, space_id: &str, item_id: &str) -> Result<(), InventoryError> {
    space_of(svc, caller, space_id, true).await?;
    if !svc.store.delete_item(space_id, item_id, Utc::now()).await? {
        return Err(InventoryError::NotFound);
    }
    Ok(())
}

pub async fn list(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
    query: &ItemQuery,
) -> Result<(Vec<ItemRecord>, i64, String), InventoryError> {
    let currency = space_of(svc, caller, space_id, false).await?;
    let (items, total) = svc.store.list_items(space_id, query).await?;
    Ok((items, total, currency))
}
