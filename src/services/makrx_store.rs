//! The MakrX Store's quick reorder: an order of items the Store sells, given as the product
//! documents' `POST /api/v1/orders/quick-reorder` payload (`bom_items[]`, `makerspace_id`,
//! `user_id`). Every order to the Store carries the payload, ready to send; when a Store URL is
//! configured (`--store-url`, off by default) ordering sends it.
//!
//! A send names the order in an `Idempotency-Key` header, so that the Store can take a retried
//! send (after a timeout, or an `order` asked again) as the same order.

use std::time::Duration;

use serde::Serialize;
use utoipa::ToSchema;

use crate::config::Settings;
use crate::domain::inventory::{Quantity, Unit};
use crate::store::purchase_orders::{LineRecord, OrderRecord};

/// The supplier kind of orders to the Store.
pub const SUPPLIER_KIND: &str = "makrx_store";
/// The Store's endpoint, below its base URL.
const QUICK_REORDER_PATH: &str = "/api/v1/orders/quick-reorder";
/// Longest a send may take, connection included: an admin waits for it.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The quick-reorder payload.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct StorePayload {
    pub bom_items: Vec<BomItem>,
    pub makerspace_id: String,
    /// Who orders: the admin who placed the order (who drafted it, while it is a draft).
    pub user_id: String,
}

/// One item to buy from the Store.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct BomItem {
    /// The Store's product code.
    pub sku: String,
    /// How much, in `unit`.
    #[schema(value_type = f64)]
    pub quantity: Quantity,
    pub unit: Unit,
    pub name: String,
    /// Expected price of one unit, in `currency`'s minor units (the makerspace's last known).
    pub unit_cost_minor: Option<i64>,
    pub currency: String,
}

/// The payload of an order to the Store (`None` for another supplier's).
pub fn payload(order: &OrderRecord, lines: &[LineRecord]) -> Option<StorePayload> {
    (order.supplier_kind == SUPPLIER_KIND).then(|| StorePayload {
        bom_items: lines
            .iter()
            .map(|l| BomItem {
                sku: l.sku.clone().unwrap_or_default(),
                quantity: l.quantity_ordered,
                unit: l.unit,
                name: l.name.clone(),
                unit_cost_minor: l.unit_cost_minor,
                currency: order.currency.clone(),
            })
            .collect(),
        makerspace_id: order.makerspace_id.clone(),
        user_id: order.ordered_by.clone().unwrap_or_else(|| order.created_by.clone()),
    })
}

/// Sends the payload to the configured Store. `Err` says why not in a sentence an admin can
/// act on (never the URL, which may carry credentials, nor the Store's body).
pub async fn send(settings: &Settings, order_id: &str, payload: &StorePayload) -> Result<(), String> {
    let Some(base) = &settings.store_url else {
        return Err("no MakrX Store is configured".into());
    };
    // reqwest is built with rustls and no crypto provider of its own: it takes the process
    // default. Installing fails harmlessly when one is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(SEND_TIMEOUT)
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
    let mut request = client
        .post(format!("{}{QUICK_REORDER_PATH}", base.trim_end_matches('/')))
        .header("Idempotency-Key", order_id)
        .json(payload);
    if let Some(token) = &settings.store_token {
        request = request.bearer_auth(token.expose());
    }
    match request.send().await {
        Ok(answer) if answer.status().is_success() => Ok(()),
        Ok(answer) => Err(format!("the MakrX Store answered {}", answer.status())),
        Err(e) if e.is_timeout() => Err(format!("the MakrX Store did not answer within {} s", SEND_TIMEOUT.as_secs())),
        Err(e) if e.is_connect() => Err("the MakrX Store cannot be reached".into()),
        Err(_) => Err("the request to the MakrX Store failed".into()),
    }
}
