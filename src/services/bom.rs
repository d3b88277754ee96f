//! The MakrX Store's side of a bill of materials: for a list of store SKUs and the quantity of
//! each that a project needs, what a makerspace has of each and what it lacks. Items count
//! when they are bought from the store under that SKU (`supplier.kind = makrx_store`): an
//! external supplier's SKU names that supplier's product, which may share the code by chance.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::access::Principal;
use crate::domain::inventory::{Quantity, Unit, MAX_UNITS};
use crate::domain::validate::Invalid;

use super::access::{space_for, AccessError};
use super::Services;

/// Most SKUs one request may name.
pub const MAX_SKUS: usize = 500;

#[derive(Debug, thiserror::Error)]
pub enum BomError {
    #[error(transparent)]
    Access(#[from] AccessError),
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// The space counts one SKU in different units: its levels cannot be added up.
    #[error("the items of SKU {sku:?} are counted in different units; give them one unit")]
    MixedUnits { sku: String, items: Vec<String> },
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// `POST /api/v1/bom/sync-inventory`: the SKUs a project needs, and how much of each.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SyncRequest {
    /// A makerspace the caller administers.
    #[schema(pattern = "^[a-z0-9][a-z0-9-]{0,63}$")]
    pub makerspace_id: String,
    /// MakrX Store SKUs; a SKU named twice is needed twice (the quantities add up).
    #[schema(schema_with = sku_list)]
    pub product_codes: Vec<String>,
    /// The quantity of each SKU, in the item's unit, in the order of `product_codes` (as many).
    #[schema(schema_with = quantity_list)]
    pub quantities: Vec<Quantity>,
}

/// A SKU as an item's supplier names it (`Supplier::MakrxStore`).
const SKU_PATTERN: &str = r"^[A-Za-z0-9][A-Za-z0-9._/-]*$";

/// The schema of `product_codes`: 1 to 500 SKUs.
fn sku_list() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
    let sku = ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(100))
        .pattern(Some(SKU_PATTERN));
    ArrayBuilder::new()
        .items(sku)
        .min_items(Some(1))
        .max_items(Some(MAX_SKUS))
        .description(Some("MakrX Store SKUs; a SKU named twice is needed twice (the quantities add up)."))
        .build()
}

/// The schema of `quantities`: as many exact quantities, each more than 0.
fn quantity_list() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
    let quantity = ObjectBuilder::new()
        .schema_type(Type::Number)
        .minimum(Some(0.001))
        .maximum(Some(MAX_UNITS as f64))
        .multiple_of(Some(0.001));
    ArrayBuilder::new()
        .items(quantity)
        .min_items(Some(1))
        .max_items(Some(MAX_SKUS))
        .description(Some("How much of each SKU, in its items' unit (at most three decimals), in the order of product_codes, as many."))
        .build()
}

/// What the space has of one SKU.
#[derive(Debug, Serialize, ToSchema)]
pub struct SkuAvailability {
    pub sku: String,
    #[schema(value_type = f64)]
    pub needed: Quantity,
    /// The sum of the levels of the space's live items bought under this SKU (0 for none).
    #[schema(value_type = f64)]
    pub in_stock: Quantity,
    /// What is lacking: `needed - in_stock`, and 0 when there is enough.
    #[schema(value_type = f64)]
    pub missing: Quantity,
    /// The unit of those items (none when the space has none).
    pub unit: Option<Unit>,
    /// The ids of those items.
    pub items: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SyncTotals {
    /// Distinct SKUs asked for.
    pub skus: usize,
    /// SKUs the space has enough of.
    pub available: usize,
    /// SKUs the space lacks some of.
    pub short: usize,
    /// SKUs the space has no item of at all.
    pub unknown: usize,
    /// Whether everything needed is in stock.
    pub complete: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SyncResponse {
    pub makerspace_id: String,
    /// One line per distinct SKU, in the order first asked.
    pub skus: Vec<SkuAvailability>,
    pub totals: SyncTotals,
}

/// The SKUs of a request with what each needs, repeated SKUs added up, in first-asked order.
fn needs(body: SyncRequest) -> Result<Vec<(String, Quantity)>, Invalid> {
    if body.product_codes.len() != body.quantities.len() {
        return Err(Invalid(format!(
            "product_codes and quantities must be as many ({} and {})",
            body.product_codes.len(),
            body.quantities.len()
        )));
    }
    if body.product_codes.is_empty() || body.product_codes.len() > MAX_SKUS {
        return Err(Invalid(format!("name 1 to {MAX_SKUS} product_codes")));
    }
    let mut order: Vec<(String, Quantity)> = Vec::new();
    let mut at: HashMap<String, usize> = HashMap::new();
    for (code, quantity) in body.product_codes.into_iter().zip(body.quantities) {
        let valid = code.len() <= 100
            && code.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
            && code.bytes().all(|b| b.is_ascii_alphanumeric() || b"._/-".contains(&b));
        if !valid {
            return Err(Invalid(format!(
                "product code {code:?} is not a SKU (1 to 100 letters, digits, '.', '_', '/', '-', starting with a letter or digit)"
            )));
        }
        if !quantity.is_positive() || quantity > Quantity::from_units(MAX_UNITS) {
            return Err(Invalid(format!("the quantity of {code} must be more than 0 and at most {MAX_UNITS}")));
        }
        match at.get(&code) {
            Some(&i) => order[i].1 = Quantity(order[i].1 .0 + quantity.0),
            None => {
                at.insert(code.clone(), order.len());
                order.push((code, quantity));
            }
        }
    }
    Ok(order)
}

/// What the space has and lacks of each SKU, for one of its admins.
pub async fn sync_inventory(svc: &Services, caller: &Principal, body: SyncRequest) -> Result<SyncResponse, BomError> {
    let space_id = body.makerspace_id.clone();
    space_for(svc, caller.can_manage_space(&space_id), &space_id).await?;
    let needs = needs(body)?;
    let skus: Vec<String> = needs.iter().map(|(sku, _)| sku.clone()).collect();
    let items = svc.store.store_items_with_skus(&space_id, &skus).await?;
    let mut lines = Vec::with_capacity(needs.len());
    for (sku, needed) in needs {
        let held: Vec<_> = items.iter().filter(|i| i.supplier.sku.as_deref() == Some(sku.as_str())).collect();
        let unit = held.first().map(|i| i.unit);
        if held.iter().any(|i| Some(i.unit) != unit) {
            return Err(BomError::MixedUnits { sku, items: held.iter().map(|i| i.id.clone()).collect() });
        }
        let in_stock = Quantity(held.iter().map(|i| i.current_stock.0).sum());
        lines.push(SkuAvailability {
            missing: Quantity((needed.0 - in_stock.0).max(0)),
            items: held.iter().map(|i| i.id.clone()).collect(),
            sku,
            needed,
            in_stock,
            unit,
        });
    }
    let short = lines.iter().filter(|l| l.missing.is_positive()).count();
    let totals = SyncTotals {
        skus: lines.len(),
        available: lines.len() - short,
        short,
        unknown: lines.iter().filter(|l| l.items.is_empty()).count(),
        complete: short == 0,
    };
    Ok(SyncResponse { makerspace_id: space_id, skus: lines, totals })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(codes: &[&str], quantities: &[i64]) -> SyncRequest {
        SyncRequest {
            makerspace_id: "s".into(),
            product_codes: codes.iter().map(|c| c.to_string()).collect(),
            quantities: quantities.iter().map(|q| Quantity(*q)).collect(),
        }
    }

    #[test]
    fn repeated_skus_add_up_in_first_asked_order() {
        let needs = needs(request(&["B-2", "A-1", "B-2"], &[1_500, 2_000, 250])).unwrap();
        assert_eq!(needs, vec![("B-2".to_string(), Quantity(1_750)), ("A-1".to_string(), Quantity(2_000))]);
    }

    #[test]
    fn lists_of_different_lengths_and_bad_codes_are_refused() {
        assert!(needs(request(&["A"], &[1_000, 2_000])).is_err());
        assert!(needs(request(&[], &[])).is_err());
        assert!(needs(request(&["-A"], &[1_000])).is_err());
        assert!(needs(request(&["A B"], &[1_000])).is_err());
        assert!(needs(request(&["A"], &[0])).is_err());
    }
}
