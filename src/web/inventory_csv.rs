//! CSV export and import of a makerspace's inventory items.
//!
//! The export has a header row and one live item a row ([`COLUMNS`]). Quantities are exact
//! decimals in the item's unit (`212.345`), never rounded through a float; numbers (and ids and
//! enum values) are written as they are, even a negative level (`-5`), since a spreadsheet
//! reads a number as a number, not as a formula; text cells that a spreadsheet would run as a
//! formula get a leading `'` ([`crate::web::csv_io`]), as in the member export.
//!
//! The import takes such a file (`name`, `category` and `unit` required, every other column
//! optional, `'` before a formula-like cell removed again) and creates one item per row, as
//! `POST .../inventory` would, its `current_stock` the first row of its log. It creates and
//! never updates (as the member import): a row whose `id` is a live item of the space is
//! rejected, so importing a file twice creates nothing twice; an `id` that another item holds
//! (another makerspace's, whose export this may be) gives way to a new id. Each row is checked
//! and stored on its own: the answer lists every rejected row with its line and reason, and
//! nothing of a rejected row is stored.

use std::collections::HashSet;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

use crate::domain::inventory::Quantity;
use crate::services::inventory::{Filament, InventoryError, ItemCreate, Supplier};
use crate::services::inventory_bulk;
use crate::store::inventory::ItemRecord;
use crate::web::auth::Caller;
use crate::web::csv_io::{attachment, inert_cell, ImportFile};
use crate::web::error::ApiError;
use crate::web::AppState;

#[derive(OpenApi)]
#[openapi(paths(export, import), components(schemas(ItemImportResult, RejectedItemRow)))]
pub struct InventoryCsvApi;

/// Registers the routes (inside `/api/v1`), before `inventory/{item_id}` would take `export`
/// and `import` for items' ids.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/makerspaces/{makerspace_id}/inventory/export", web::get().to(export))
        .route("/makerspaces/{makerspace_id}/inventory/import", web::post().to(import));
}

/// The export's columns, which the import reads back.
pub const COLUMNS: [&str; 20] = [
    "id",
    "name",
    "category",
    "unit",
    "current_stock",
    "min_stock_level",
    "reorder_quantity",
    "location",
    "supplier_kind",
    "supplier_sku",
    "supplier_name",
    "supplier_url",
    "unit_cost_minor",
    "material",
    "color",
    "diameter_mm",
    "density_g_cm3",
    "allow_negative",
    // The makerspace's, in which unit_cost_minor counts: an import into a space of another
    // currency refuses a cost rather than change its meaning.
    "currency",
    // The free attributes, as a JSON object.
    "attributes",
];

/// The columns an import must have.
const REQUIRED: [&str; 3] = ["name", "category", "unit"];

#[derive(Debug, Serialize, ToSchema)]
pub struct RejectedItemRow {
    /// Line in the file (the header is line 1).
    pub line: u64,
    pub id: Option<String>,
    pub name: Option<String>,
    pub reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ItemImportResult {
    pub created: usize,
    /// The new items' ids, in the file's order.
    pub created_ids: Vec<String>,
    pub rejected: Vec<RejectedItemRow>,
}

/// An enum value as the API spells it (`filament`, `g`).
fn spelled<T: Serialize>(value: T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

/// A stored number of thousandths (a diameter in micrometres) as its exact decimal.
fn thousandths(value: Option<i64>) -> String {
    value.map(|v| Quantity(v).to_text()).unwrap_or_default()
}

/// One item as the export's row: numbers as they are, text made inert.
fn row_of(item: ItemRecord, currency: &str) -> [String; 20] {
    let text = |value: Option<&str>| inert_cell(value.unwrap_or_default()).into_owned();
    let filament = item.filament.as_ref();
    [
        item.id.clone(),
        text(Some(&item.name)),
        spelled(item.category),
        spelled(item.unit),
        item.current_stock.to_text(),
        item.min_stock_level.to_text(),
        item.reorder_quantity.to_text(),
        text(item.location.as_deref()),
        item.supplier.kind.clone(),
        text(item.supplier.sku.as_deref()),
        text(item.supplier.name.as_deref()),
        text(item.supplier.url.as_deref()),
        item.unit_cost_minor.map(|c| c.to_string()).unwrap_or_default(),
        text(filament.map(|f| f.material.as_str())),
        filament.and_then(|f| f.color_hex.as_ref()).map(|c| format!("#{c}")).unwrap_or_default(),
        thousandths(filament.and_then(|f| f.diameter_um)),
        thousandths(filament.and_then(|f| f.density_mg_cm3)),
        item.allow_negative.to_string(),
        if item.unit_cost_minor.is_some() { currency.to_string() } else { String::new() },
        text(Some(&item.attributes.to_string())),
    ]
}

#[utoipa::path(get, path = "/api/v1/makerspaces/{makerspace_id}/inventory/export", tag = "inventory",
    params(("makerspace_id" = String, Path)),
    responses((status = 200, description = "CSV of every live item (see the README's Inventory)", content_type = "text/csv", body = String),
              (status = 403, body = crate::web::ErrorBody), (status = 404, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn export(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let space_id = path.into_inner();
    let (items, currency) = inventory_bulk::export(&state, &caller, &space_id).await?;
    let mut out = csv::Writer::from_writer(Vec::new());
    let fail = |_| ApiError::Internal;
    out.write_record(COLUMNS).map_err(fail)?;
    for item in items {
        out.write_record(row_of(item, &currency)).map_err(fail)?;
    }
    let body = out.into_inner().map_err(|_| ApiError::Internal)?;
    Ok(attachment(body, &format!("inventory-{space_id}.csv")))
}

/// One row of an import file.
struct Row<'a> {
    file: &'a ImportFile,
    record: &'a csv::StringRecord,
}

impl Row<'_> {
    /// A cell as imported; none when it is empty (or the file has no such column).
    fn cell(&self, column: &str) -> Option<&str> {
        Some(self.file.cell(self.record, column)).filter(|c| !c.is_empty())
    }

    fn text(&self, column: &str) -> Option<String> {
        self.cell(column).map(str::to_string)
    }

    fn quantity(&self, column: &str) -> Result<Option<Quantity>, String> {
        self.cell(column)
            .map(|c| {
                Quantity::parse(c).ok_or_else(|| format!("{column} {c:?} is not a number with at most three decimals"))
            })
            .transpose()
    }

    fn spelled<T: serde::de::DeserializeOwned>(&self, column: &str) -> Result<Option<T>, String> {
        self.cell(column)
            .map(|c| {
                serde_json::from_value(serde_json::Value::String(c.to_string()))
                    .map_err(|_| format!("unknown {column} {c:?}"))
            })
            .transpose()
    }

    fn required<T: serde::de::DeserializeOwned>(&self, column: &str) -> Result<T, String> {
        self.spelled(column)?.ok_or_else(|| format!("{column} is required"))
    }

    /// The row as a create request; `currency` is the makerspace's.
    fn item(&self, currency: &str) -> Result<ItemCreate, String> {
        let unit_cost_minor = self
            .cell("unit_cost_minor")
            .map(|c| c.parse::<i64>().map_err(|_| format!("unit_cost_minor {c:?} is not a whole number")))
            .transpose()?;
        if let (Some(_), Some(theirs)) = (unit_cost_minor, self.cell("currency")) {
            if !theirs.eq_ignore_ascii_case(currency) {
                return Err(format!("unit_cost_minor is in {theirs}, and this makerspace counts in {currency}"));
            }
        }
        let allow_negative = match self.cell("allow_negative").map(str::to_ascii_lowercase).as_deref() {
            None => None,
            Some("true") => Some(true),
            Some("false") => Some(false),
            Some(other) => return Err(format!("allow_negative {other:?} is neither true nor false")),
        };
        let attributes = self
            .cell("attributes")
            .map(|c| serde_json::from_str(c).map_err(|_| "attributes is not a JSON object".to_string()))
            .transpose()?;
        Ok(ItemCreate {
            id: self.text("id"),
            name: self.text("name").unwrap_or_default(),
            category: self.required("category")?,
            unit: self.required("unit")?,
            current_stock: self.quantity("current_stock")?,
            min_stock_level: self.quantity("min_stock_level")?,
            reorder_quantity: self.quantity("reorder_quantity")?,
            allow_negative,
            location: self.text("location"),
            supplier: self.supplier()?,
            unit_cost_minor,
            filament: self.filament()?,
            attributes,
        })
    }

    fn supplier(&self) -> Result<Option<Supplier>, String> {
        let (sku, name, url) = (self.text("supplier_sku"), self.text("supplier_name"), self.text("supplier_url"));
        match self.cell("supplier_kind") {
            None if sku.is_none() && name.is_none() && url.is_none() => Ok(None),
            None => Err("supplier_kind (makrx_store or external) is required with a supplier".into()),
            Some("makrx_store") => match (sku, name.or(url)) {
                (Some(sku), None) => Ok(Some(Supplier::MakrxStore { sku })),
                (None, _) => Err("supplier_sku is required for the makrx_store".into()),
                (Some(_), Some(_)) => Err("supplier_name and supplier_url are for an external supplier".into()),
            },
            Some("external") => match name {
                Some(name) => Ok(Some(Supplier::External { name, url, sku })),
                None => Err("supplier_name is required for an external supplier".into()),
            },
            Some(other) => Err(format!("unknown supplier_kind {other:?} (makrx_store or external)")),
        }
    }

    fn filament(&self) -> Result<Option<Filament>, String> {
        let color = self.text("color");
        let diameter_mm = self.quantity("diameter_mm")?.map(Quantity::as_units);
        let density_g_cm3 = self.quantity("density_g_cm3")?.map(Quantity::as_units);
        match self.text("material") {
            Some(material) => Ok(Some(Filament { material, color, diameter_mm, density_g_cm3 })),
            None if color.is_none() && diameter_mm.is_none() && density_g_cm3.is_none() => Ok(None),
            None => Err("filament details (color, diameter_mm, density_g_cm3) need a material".into()),
        }
    }
}

#[utoipa::path(post, path = "/api/v1/makerspaces/{makerspace_id}/inventory/import", tag = "inventory",
    params(("makerspace_id" = String, Path)),
    request_body(content = String, content_type = "text/csv", description = "Header row (name, category, unit required; the export's columns), then one item a row"),
    responses((status = 200, body = ItemImportResult), (status = 403, body = crate::web::ErrorBody),
              (status = 404, body = crate::web::ErrorBody), (status = 413, body = crate::web::ErrorBody),
              (status = 415, body = crate::web::ErrorBody), (status = 422, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn import(
    req: HttpRequest,
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let space_id = path.into_inner();
    let currency = inventory_bulk::importer(&state, &caller, &space_id).await?;
    let file = ImportFile::read(&req, payload, state.settings.csv_max_bytes, "items", &COLUMNS, &REQUIRED).await?;
    let mut result = ItemImportResult { created: 0, created_ids: Vec::new(), rejected: Vec::new() };
    let mut ids_in_file = HashSet::new();
    for (line, record) in &file.rows {
        let line = *line;
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let reason = format!("malformed row: {e}");
                result.rejected.push(RejectedItemRow { line, id: None, name: None, reason });
                continue;
            }
        };
        let row = Row { file: &file, record };
        let reject = |reason: String| RejectedItemRow { line, id: row.text("id"), name: row.text("name"), reason };
        if let Some(id) = row.cell("id") {
            if !ids_in_file.insert(id.to_string()) {
                result.rejected.push(reject("the same id appears earlier in the file".into()));
                continue;
            }
        }
        let create = match row.item(&currency) {
            Ok(create) => create,
            Err(reason) => {
                result.rejected.push(reject(reason));
                continue;
            }
        };
        match inventory_bulk::import_item(&state, &caller, &space_id, create).await {
            Ok(item) => {
                result.created += 1;
                result.created_ids.push(item.id);
            }
            Err(InventoryError::Invalid(why)) => result.rejected.push(reject(why.0)),
            Err(InventoryError::Duplicate) => {
                result.rejected.push(reject("an item with this id is already in the makerspace".into()))
            }
            Err(other) => return Err(other.into()),
        }
    }
    Ok(HttpResponse::Ok().json(result))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::inventory::{FilamentRecord, SupplierRecord};
    use chrono::Utc;

    fn record() -> ItemRecord {
        ItemRecord {
            id: "pla".into(),
            makerspace_id: "s".into(),
            name: "=HYPERLINK(\"http://evil\")".into(),
            category: crate::domain::inventory::Category::Filament,
            unit: crate::domain::inventory::Unit::Grams,
            current_stock: Quantity(-5_000),
            min_stock_level: Quantity(250_500),
            reorder_quantity: Quantity(1_000_000),
            allow_negative: true,
            location: Some("@shelf".into()),
            supplier: SupplierRecord { kind: "makrx_store".into(), sku: Some("FIL-1".into()), name: None, url: None },
            unit_cost_minor: Some(3),
            filament: Some(FilamentRecord {
                material: "PLA".into(),
                color_hex: Some("1A1A1A".into()),
                diameter_um: Some(1_750),
                density_mg_cm3: Some(1_240),
            }),
            attributes: serde_json::json!({"brand": "x"}),
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    #[test]
    fn a_row_reads_back_as_the_item_it_was_written_from() {
        let cells = row_of(record(), "EUR");
        assert_eq!(cells[1], "'=HYPERLINK(\"http://evil\")", "a formula is written as text");
        assert_eq!(cells[4], "-5", "a number is written as a number");
        assert_eq!(cells[7], "'@shelf");
        assert_eq!((cells[15].as_str(), cells[16].as_str()), ("1.75", "1.24"));
        let file = ImportFile { headers: COLUMNS.iter().map(|c| c.to_string()).collect(), rows: Vec::new() };
        let written = csv::StringRecord::from(cells.to_vec());
        let create = Row { file: &file, record: &written }.item("EUR").unwrap();
        assert_eq!(create.name, "=HYPERLINK(\"http://evil\")");
        assert_eq!(create.location.as_deref(), Some("@shelf"));
        assert_eq!(
            (create.current_stock, create.min_stock_level, create.reorder_quantity),
            (Some(Quantity(-5_000)), Some(Quantity(250_500)), Some(Quantity(1_000_000)))
        );
        assert_eq!(create.supplier, Some(Supplier::MakrxStore { sku: "FIL-1".into() }));
        let filament = create.filament.unwrap();
        assert_eq!((filament.diameter_mm, filament.density_g_cm3), (Some(1.75), Some(1.24)));
        assert_eq!(create.attributes, Some(serde_json::json!({"brand": "x"})));
        // A cost counted in another currency is not taken as this space's.
        let refused = Row { file: &file, record: &written }.item("USD");
        assert!(refused.is_err_and(|why| why.contains("EUR")));
    }
}
