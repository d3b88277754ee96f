//! Taking a delivery in: a purchase order's lines (some of them, or all that is outstanding)
//! become `received` rows of the stock log, through [`super::stock::apply`] like every other
//! move, with cause `purchase_order` and the order's id. The log is the one record of what
//! arrived: a line's received quantity is the sum of its rows.
//!
//! A receipt carries an idempotency key; each of its rows takes the key `po:{order}:{key}`
//! (per item, as the log's keys are), so a retried receipt, even one cut off half way, writes
//! what is missing and counts nothing twice. Receipts of one order run one at a time, across
//! nodes too: each holds the order in the database while it writes (a hold a crash leaves
//! lapses after a minute), so two deliveries cannot both take the last outstanding quantity.

use chrono::Utc;
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

use crate::domain::access::Principal;
use crate::domain::inventory::{CauseKind, Quantity, UsageReason, MAX_UNITS};
use crate::domain::purchasing::{after_receipt, transition, LineProgress, OrderAction};
use crate::domain::validate::{optional_multiline, Invalid};
use crate::store::inventory::{Movement, StockChange};
use crate::store::purchase_orders::{LineRecord, OrderRecord, StatusChange};

use super::inventory::InventoryError;
use super::purchase_orders::{load, view, PurchaseOrderResponse};
use super::reorders::{for_order_writer, ReorderError};
use super::stock::{self, StockError};
use super::Services;

/// How long a receipt (or a cancel) holds its order at most.
pub(super) const HOLD: chrono::Duration = chrono::Duration::seconds(60);

/// `POST .../purchase-orders/{po_id}/receive`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReceiveOrderRequest {
    /// Names this delivery: sent again, the receipt counts once (and completes what a cut-off
    /// try left undone).
    #[schema(min_length = 1, max_length = 200, pattern = r"^[\x21-\x7e]+$")]
    pub idempotency_key: String,
    /// The lines that arrived and how much of each; absent or empty: everything outstanding.
    #[schema(max_items = 200)]
    pub lines: Option<Vec<ReceiveLineRequest>>,
    /// Kept with each stock row [default: "purchase order {id}"].
    #[schema(max_length = 1000, pattern = r"^[^\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]*$")]
    pub note: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReceiveLineRequest {
    #[schema(pattern = "^[a-z0-9][a-z0-9-]{0,63}$")]
    pub line_id: String,
    /// In the item's unit: at most what is outstanding.
    #[schema(value_type = f64, minimum = 0.001, maximum = 100_000_000, multiple_of = 0.001)]
    pub quantity: Quantity,
}

pub async fn receive(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
    order_id: &str,
    body: ReceiveOrderRequest,
) -> Result<PurchaseOrderResponse, ReorderError> {
    for_order_writer(svc, caller, space_id).await?;
    let key = body.idempotency_key;
    if key.is_empty() || key.len() > 200 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Invalid::new("idempotency_key must be 1 to 200 printable ASCII characters without spaces").into());
    }
    let note = optional_multiline("note", body.note, 1000)?;
    let order = load(svc, space_id, order_id).await?;
    let now = Utc::now();
    if !svc.store.hold_order(&order.id, now, now + HOLD).await? {
        return Err(ReorderError::Busy);
    }
    let taken = take_in(svc, caller, &order, &key, body.lines.unwrap_or_default(), note).await;
    release(svc, &order.id).await;
    let replayed = taken?;
    let order = load(svc, space_id, order_id).await?;
    Ok(view(svc, order, replayed).await?)
}

/// The lines to take in and how much of each: those named, or all that is outstanding.
fn wanted<'a>(
    lines: &'a [LineRecord],
    progress: &[LineProgress],
    named: Vec<ReceiveLineRequest>,
) -> Result<Vec<(&'a LineRecord, LineProgress, Quantity)>, Invalid> {
    if named.is_empty() {
        return Ok(lines
            .iter()
            .zip(progress)
            .filter(|(_, p)| p.outstanding().is_positive())
            .map(|(l, p)| (l, *p, p.outstanding()))
            .collect());
    }
    if named.len() > lines.len() {
        return Err(Invalid::new("a receipt names each line of the order once at most"));
    }
    let mut out: Vec<(&LineRecord, LineProgress, Quantity)> = Vec::with_capacity(named.len());
    for request in named {
        let Some(at) = lines.iter().position(|l| l.id == request.line_id) else {
            return Err(Invalid(format!("line {} is not a line of this purchase order", request.line_id)));
        };
        if out.iter().any(|(l, _, _)| l.id == request.line_id) {
            return Err(Invalid(format!("line {} is named twice", request.line_id)));
        }
        if !request.quantity.is_positive() || request.quantity > Quantity::from_units(MAX_UNITS) {
            return Err(Invalid(format!("quantity must be more than 0 and at most {MAX_UNITS}")));
        }
        out.push((&lines[at], progress[at], request.quantity));
    }
    Ok(out)
}

/// Writes the receipt's stock rows and moves the order; true when every row was written
/// before (a retried receipt).
async fn take_in(
    svc: &Services,
    caller: &Principal,
    order: &OrderRecord,
    key: &str,
    named: Vec<ReceiveLineRequest>,
    note: Option<String>,
) -> Result<bool, ReorderError> {
    let lines = svc.store.lines_of_order(&order.id).await?;
    let stock_key = format!("po:{}:{key}", order.id);
    let item_ids: Vec<String> = lines.iter().map(|l| l.item_id.clone()).collect();
    // A receipt taken before (in part at least) goes on where it stopped, whatever the
    // order's status became.
    let retry = svc.store.usage_key_seen(&item_ids, &stock_key).await?;
    // Read while holding the order: the status cannot move under a receipt.
    let current = load(svc, &order.makerspace_id, &order.id).await?;
    if !retry {
        transition(current.status, OrderAction::Receive)?;
    }
    let progress = progress_of(svc, &order.id, &lines).await?;
    let wanted = wanted(&lines, &progress, named)?;
    if !retry {
        if let Some((line, p, quantity)) = wanted.iter().find(|(_, p, q)| *q > p.outstanding()) {
            return Err(ReorderError::OverReceipt {
                line_id: line.id.clone(),
                outstanding: p.outstanding(),
                requested: *quantity,
            });
        }
    }
    let note = note.unwrap_or_else(|| format!("purchase order {}", order.id));
    let mut written = Vec::new();
    for (line, _, quantity) in &wanted {
        let change = StockChange {
            makerspace_id: order.makerspace_id.clone(),
            item_id: line.item_id.clone(),
            spool_id: None,
            movement: Movement::By(*quantity),
            reason: UsageReason::Received,
            cause_kind: CauseKind::PurchaseOrder,
            cause_id: Some(order.id.clone()),
            actor: caller.user_id.clone(),
            note: Some(note.clone()),
            idempotency_key: Some(stock_key.clone()),
            at: Utc::now(),
        };
        let moved = stock::apply(svc, change).await.map_err(|e| match e {
            StockError::Inventory(InventoryError::NotFound) => ReorderError::Invalid(Invalid(format!(
                "item {} of line {} is no longer in the inventory: receive the other lines by line_id",
                line.item_id, line.id
            ))),
            other => other.into(),
        })?;
        if !moved.replayed {
            written.push(json!({"line_id": line.id, "item_id": line.item_id, "quantity": moved.usage.delta}));
        }
    }
    if written.is_empty() {
        return Ok(true);
    }
    let progress = progress_of(svc, &order.id, &lines).await?;
    let change = StatusChange {
        makerspace_id: order.makerspace_id.clone(),
        order_id: order.id.clone(),
        from: current.status,
        to: after_receipt(&progress),
        actor: caller.user_id.clone(),
        detail: Some(json!({"receipt": key, "lines": written})),
        at: Utc::now(),
        reopen_alerts: false,
        close_alerts_of: lines
            .iter()
            .zip(&progress)
            .filter(|(_, p)| p.is_complete())
            .map(|(l, _)| l.item_id.clone())
            .collect(),
    };
    if !svc.store.change_order_status(&change).await? {
        // Receipts and cancels hold the order, so nothing moves it meanwhile; should a hold
        // have lapsed, the rows stand, as deliveries do, and the log says so.
        tracing::warn!(purchase_order = ?order.id, "the order's status moved during a receipt");
    }
    Ok(false)
}

/// Lets the order go for the next receipt or cancel (a failure only delays them: the hold
/// lapses).
pub(super) async fn release(svc: &Services, order_id: &str) {
    if let Err(err) = svc.store.release_order_hold(order_id).await {
        tracing::warn!(error = ?err, purchase_order = ?order_id, "an order's hold was not released: it lapses");
    }
}

/// Each line's ordered and received quantities, from the stock log.
async fn progress_of(svc: &Services, order_id: &str, lines: &[LineRecord]) -> Result<Vec<LineProgress>, ReorderError> {
    let received = svc.store.received_for_order(order_id).await?;
    Ok(lines
        .iter()
        .map(|l| LineProgress {
            ordered: l.quantity_ordered,
            received: received.get(&l.item_id).copied().unwrap_or_default(),
        })
        .collect())
}
