//! Purchase orders: made from low-stock alerts and items, sent, cancelled, read. An order goes
//! to one supplier, is in the makerspace's currency, and freezes each line (SKU, name, unit,
//! quantity, unit cost) when it is made; its status moves only as
//! [`crate::domain::purchasing::transition`] allows, each move appended to its history. What
//! arrives is taken in by [`super::purchase_receipts`].
//!
//! The space's admins write orders; its admins and the platform's admins read them.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::access::Principal;
use crate::domain::ids::{new_id, validate_id};
use crate::domain::inventory::{Quantity, Unit, MAX_UNITS};
use crate::domain::purchasing::{
    line_amount_minor, transition, InvalidTransition, LineProgress, OrderAction, OrderStatus, MAX_ORDER_MINOR,
};
use crate::domain::validate::{optional_multiline, Invalid};
use crate::store::inventory::ItemRecord;
use crate::store::purchase_orders::{Created, LineRecord, NewOrder, OrderRecord, StatusChange};
use crate::store::StoreError;

use super::inventory::MAX_UNIT_COST_MINOR;
use super::makrx_store::{self, StorePayload};
use super::purchase_receipts;
use super::reorders::{for_order_reader, for_order_writer, ReorderError};
use super::Services;

/// Most lines (and alerts) one order may name.
pub const MAX_LINES: usize = 200;

/// `POST .../purchase-orders`: from open alerts, from items, or both (an item named by a line
/// and by an alert is one line, with the line's quantity and cost).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PurchaseOrderCreate {
    /// Default: a new UUID.
    #[schema(pattern = "^[a-z0-9][a-z0-9-]{0,63}$")]
    pub id: Option<String>,
    /// Open alerts of the space: each becomes a line for its item (the item's reorder
    /// quantity, SKU and unit cost) and `ordered`.
    #[schema(max_items = 200)]
    pub alert_ids: Option<Vec<String>>,
    #[schema(max_items = 200)]
    pub lines: Option<Vec<OrderLineRequest>>,
    #[schema(max_length = 1000, pattern = r"^[^\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]*$")]
    pub note: Option<String>,
    /// Sent again with the same key, the create answers with the order made the first time.
    #[schema(min_length = 1, max_length = 200, pattern = r"^[\x21-\x7e]+$")]
    pub idempotency_key: Option<String>,
}

/// One item to order.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderLineRequest {
    #[schema(pattern = "^[a-z0-9][a-z0-9-]{0,63}$")]
    pub item_id: String,
    /// In the item's unit [default: the item's reorder_quantity].
    #[schema(value_type = Option<f64>, minimum = 0.001, maximum = 100_000_000, multiple_of = 0.001)]
    pub quantity: Option<Quantity>,
    /// Expected cost of one unit, in minor units of the space's currency [default: the item's].
    #[schema(minimum = 0, maximum = 10_000_000_000_i64)]
    pub unit_cost_minor: Option<i64>,
}

/// Who an order goes to.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OrderSupplier {
    MakrxStore,
    External { name: String },
}

/// An amount of money.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Amount {
    /// Minor units (cents).
    pub amount_minor: i64,
    /// ISO 4217: the makerspace's when the order was made.
    pub currency: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrderLineResponse {
    pub id: String,
    pub item_id: String,
    pub sku: Option<String>,
    pub name: String,
    pub unit: Unit,
    #[schema(value_type = f64)]
    pub quantity_ordered: Quantity,
    /// The sum of the stock log's receipts for this order and item.
    #[schema(value_type = f64)]
    pub quantity_received: Quantity,
    #[schema(value_type = f64)]
    pub quantity_outstanding: Quantity,
    pub unit_cost_minor: Option<i64>,
    /// quantity_ordered × unit_cost_minor, rounded once (none without a unit cost).
    pub amount_minor: Option<i64>,
}

/// One entry of an order's history.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderEventResponse {
    pub status: OrderStatus,
    pub actor: String,
    /// A receipt's key and quantities.
    pub detail: Option<serde_json::Value>,
    pub at: DateTime<Utc>,
}

/// Whether the order reached the MakrX Store (orders to the Store only).
#[derive(Debug, Serialize, ToSchema)]
pub struct StoreSync {
    /// When the Store took the order; none: not sent (no Store configured, not ordered yet,
    /// or the send failed).
    pub sent_at: Option<DateTime<Utc>>,
    /// Why the last send failed; `POST .../order` again sends it again.
    pub error: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PurchaseOrderResponse {
    pub id: String,
    pub makerspace_id: String,
    pub status: OrderStatus,
    pub supplier: OrderSupplier,
    pub currency: String,
    pub lines: Vec<OrderLineResponse>,
    /// The sum of the lines' amounts.
    pub total: Amount,
    /// Lines without a unit cost, not in the total.
    pub unpriced_lines: usize,
    pub note: Option<String>,
    pub created_by: String,
    pub ordered_by: Option<String>,
    pub created_at: DateTime<Utc>,
    pub ordered_at: Option<DateTime<Utc>>,
    pub received_at: Option<DateTime<Utc>>,
    pub cancelled_at: Option<DateTime<Utc>>,
    /// The low-stock alerts this order took.
    pub alert_ids: Vec<String>,
    /// Every change of status, oldest first.
    pub history: Vec<OrderEventResponse>,
    /// For an order to the MakrX Store: its quick-reorder payload.
    pub store_payload: Option<StorePayload>,
    pub store_sync: Option<StoreSync>,
    /// True when the idempotency key was seen before: this is the order made then.
    pub replayed: bool,
}

/// An order in a listing.
#[derive(Debug, Serialize, ToSchema)]
pub struct PurchaseOrderSummary {
    pub id: String,
    pub status: OrderStatus,
    pub supplier: OrderSupplier,
    pub line_count: usize,
    pub total: Amount,
    pub unpriced_lines: usize,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub ordered_at: Option<DateTime<Utc>>,
    pub received_at: Option<DateTime<Utc>>,
    pub cancelled_at: Option<DateTime<Utc>>,
}

fn supplier_of(order: &OrderRecord) -> OrderSupplier {
    if order.supplier_kind == makrx_store::SUPPLIER_KIND {
        OrderSupplier::MakrxStore
    } else {
        OrderSupplier::External { name: order.supplier_name.clone().unwrap_or_default() }
    }
}

/// The total of priced lines and the number of unpriced ones.
fn total_of(order: &OrderRecord, lines: &[LineRecord]) -> (Amount, usize) {
    let amounts: Vec<Option<i64>> =
        lines.iter().map(|l| l.unit_cost_minor.and_then(|c| line_amount_minor(l.quantity_ordered, c))).collect();
    let amount_minor = amounts.iter().flatten().sum();
    (Amount { amount_minor, currency: order.currency.clone() }, amounts.iter().filter(|a| a.is_none()).count())
}

impl PurchaseOrderSummary {
    fn new(order: OrderRecord, lines: &[LineRecord]) -> Self {
        let (total, unpriced_lines) = total_of(&order, lines);
        PurchaseOrderSummary {
            supplier: supplier_of(&order),
            line_count: lines.len(),
            total,
            unpriced_lines,
            id: order.id,
            status: order.status,
            created_by: order.created_by,
            created_at: order.created_at,
            ordered_at: order.ordered_at,
            received_at: order.received_at,
            cancelled_at: order.cancelled_at,
        }
    }
}

/// An order with its lines, what arrived of each, its alerts and its history.
pub(super) async fn view(
    svc: &Services,
    order: OrderRecord,
    replayed: bool,
) -> Result<PurchaseOrderResponse, StoreError> {
    let lines = svc.store.lines_of_order(&order.id).await?;
    let received = svc.store.received_for_order(&order.id).await?;
    let alert_ids = svc.store.alerts_of_order(&order.id).await?.into_iter().map(|a| a.id).collect();
    let history = svc
        .store
        .order_events(&order.id)
        .await?
        .into_iter()
        .map(|e| {
            let status = serde_json::from_value(serde_json::Value::String(e.status.clone()))
                .map_err(|_| StoreError::Corrupt(format!("purchase_order_events.status {:?}", e.status)))?;
            let detail = e.detail.as_deref().and_then(|d| serde_json::from_str(d).ok());
            Ok(OrderEventResponse { status, actor: e.actor, detail, at: e.at })
        })
        .collect::<Result<_, StoreError>>()?;
    let (total, unpriced_lines) = total_of(&order, &lines);
    let store_payload = makrx_store::payload(&order, &lines);
    let store_sync =
        store_payload.is_some().then(|| StoreSync { sent_at: order.store_sent_at, error: order.store_error.clone() });
    Ok(PurchaseOrderResponse {
        lines: lines
            .into_iter()
            .map(|l| {
                let progress = LineProgress {
                    ordered: l.quantity_ordered,
                    received: received.get(&l.item_id).copied().unwrap_or_default(),
                };
                OrderLineResponse {
                    amount_minor: l.unit_cost_minor.and_then(|c| line_amount_minor(l.quantity_ordered, c)),
                    quantity_received: progress.received,
                    quantity_outstanding: progress.outstanding(),
                    id: l.id,
                    item_id: l.item_id,
                    sku: l.sku,
                    name: l.name,
                    unit: l.unit,
                    quantity_ordered: l.quantity_ordered,
                    unit_cost_minor: l.unit_cost_minor,
                }
            })
            .collect(),
        supplier: supplier_of(&order),
        total,
        unpriced_lines,
        alert_ids,
        history,
        store_payload,
        store_sync,
        replayed,
        id: order.id,
        makerspace_id: order.makerspace_id,
        status: order.status,
        currency: order.currency,
        note: order.note,
        created_by: order.created_by,
        ordered_by: order.ordered_by,
        created_at: order.created_at,
        ordered_at: order.ordered_at,
        received_at: order.received_at,
        cancelled_at: order.cancelled_at,
    })
}

/// The supplier of an item, as an order groups lines: the Store, or an external supplier by
/// its name.
fn supplier_key(item: &ItemRecord) -> (String, Option<String>) {
    if item.supplier.kind == makrx_store::SUPPLIER_KIND {
        (item.supplier.kind.clone(), None)
    } else {
        (item.supplier.kind.clone(), item.supplier.name.clone())
    }
}

/// Keeps the first of each repeated id, in order (naming a thing twice means naming it once).
fn first_of_each(ids: Vec<String>) -> Vec<String> {
    let mut seen = HashSet::new();
    ids.into_iter().filter(|id| seen.insert(id.clone())).collect()
}

fn check_key(key: Option<String>) -> Result<Option<String>, Invalid> {
    match key {
        Some(k) if k.is_empty() || k.len() > 200 || !k.bytes().all(|b| b.is_ascii_graphic()) => {
            Err(Invalid::new("idempotency_key must be 1 to 200 printable ASCII characters without spaces"))
        }
        other => Ok(other),
    }
}

/// A line to write, from an item and what the request says of it.
fn line_for(item: &ItemRecord, position: usize, request: Option<&OrderLineRequest>) -> Result<LineRecord, Invalid> {
    let quantity = request.and_then(|r| r.quantity).unwrap_or(item.reorder_quantity);
    if !quantity.is_positive() {
        return Err(Invalid(format!(
            "item {} has no reorder_quantity: give the line's quantity (more than 0)",
            item.id
        )));
    }
    if quantity > Quantity::from_units(MAX_UNITS) {
        return Err(Invalid(format!("quantity must be at most {MAX_UNITS}")));
    }
    let unit_cost_minor = request.and_then(|r| r.unit_cost_minor).or(item.unit_cost_minor);
    if unit_cost_minor.is_some_and(|c| !(0..=MAX_UNIT_COST_MINOR).contains(&c)) {
        return Err(Invalid(format!("unit_cost_minor must be from 0 to {MAX_UNIT_COST_MINOR}")));
    }
    if unit_cost_minor.is_some_and(|c| line_amount_minor(quantity, c).is_none()) {
        return Err(Invalid(format!("the line of item {} comes to more than {MAX_ORDER_MINOR} minor units", item.id)));
    }
    Ok(LineRecord {
        id: new_id(),
        purchase_order_id: String::new(),
        position: position as i64,
        item_id: item.id.clone(),
        sku: item.supplier.sku.clone(),
        name: item.name.clone(),
        unit: item.unit,
        quantity_ordered: quantity,
        unit_cost_minor,
    })
}

pub async fn create(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
    body: PurchaseOrderCreate,
) -> Result<PurchaseOrderResponse, ReorderError> {
    let currency = for_order_writer(svc, caller, space_id).await?;
    let id = match body.id {
        Some(id) => {
            validate_id(&id).map_err(|e| Invalid(e.to_string()))?;
            id
        }
        None => new_id(),
    };
    let idempotency_key = check_key(body.idempotency_key)?;
    // A retried create answers as the first time, before anything it names is checked again
    // (its alerts are the order's by now).
    if let Some(key) = &idempotency_key {
        if let Some(existing) = svc.store.order_by_key(space_id, key).await? {
            let order = load(svc, space_id, &existing).await?;
            return Ok(view(svc, order, true).await?);
        }
    }
    let note = optional_multiline("note", body.note, 1000)?;
    let alert_ids = first_of_each(body.alert_ids.unwrap_or_default());
    let requested = body.lines.unwrap_or_default();
    if alert_ids.len() > MAX_LINES || requested.len() > MAX_LINES {
        return Err(Invalid(format!("at most {MAX_LINES} alerts and {MAX_LINES} lines")).into());
    }
    // The items, in the order named: the alerts' first, then the lines'.
    let alerts = svc.store.alerts_by_id(space_id, &alert_ids).await?;
    if let Some(missing) = alert_ids.iter().find(|id| !alerts.iter().any(|a| &a.alert.id == *id)) {
        return Err(Invalid(format!("alert {missing} is not an alert of this makerspace")).into());
    }
    if let Some(taken) = alerts.iter().find(|a| a.alert.status != crate::domain::purchasing::AlertStatus::Open) {
        return Err(ReorderError::AlertNotOpen { alert_id: taken.alert.id.clone() });
    }
    let mut by_item: HashMap<&str, &OrderLineRequest> = HashMap::new();
    for line in &requested {
        if by_item.insert(&line.item_id, line).is_some() {
            return Err(Invalid(format!("item {} is named by two lines: one line per item", line.item_id)).into());
        }
    }
    let mut item_ids: Vec<String> = Vec::new();
    for id in alert_ids
        .iter()
        .map(|a| alerts.iter().find(|v| &v.alert.id == a).map(|v| v.alert.item_id.clone()).unwrap_or_default())
    {
        item_ids.push(id);
    }
    item_ids.extend(requested.iter().map(|l| l.item_id.clone()));
    let item_ids = first_of_each(item_ids);
    if item_ids.is_empty() {
        return Err(Invalid::new("an order needs at least one line: name alert_ids or lines").into());
    }
    if item_ids.len() > MAX_LINES {
        return Err(Invalid(format!("at most {MAX_LINES} lines")).into());
    }
    let mut lines = Vec::with_capacity(item_ids.len());
    let mut supplier: Option<(String, Option<String>)> = None;
    for (position, item_id) in item_ids.iter().enumerate() {
        let item = svc
            .store
            .get_item(space_id, item_id)
            .await?
            .ok_or_else(|| Invalid(format!("item {item_id} is not an inventory item of this makerspace")))?;
        let key = supplier_key(&item);
        match &supplier {
            None => supplier = Some(key),
            Some(first) if *first != key => {
                return Err(Invalid(format!(
                    "an order goes to one supplier: item {} is bought from another one than item {}",
                    item.id, item_ids[0]
                ))
                .into())
            }
            Some(_) => {}
        }
        lines.push(line_for(&item, position, by_item.get(item_id.as_str()).copied())?);
    }
    let total: i64 =
        lines.iter().filter_map(|l| l.unit_cost_minor.and_then(|c| line_amount_minor(l.quantity_ordered, c))).sum();
    if total > MAX_ORDER_MINOR {
        return Err(Invalid(format!("an order comes to at most {MAX_ORDER_MINOR} minor units")).into());
    }
    let (supplier_kind, supplier_name) = supplier.unwrap_or_default();
    let order = OrderRecord {
        id,
        makerspace_id: space_id.to_string(),
        status: OrderStatus::Draft,
        supplier_kind,
        supplier_name,
        currency,
        note,
        created_by: caller.user_id.clone(),
        ordered_by: None,
        idempotency_key,
        created_at: Utc::now(),
        ordered_at: None,
        received_at: None,
        cancelled_at: None,
        store_sent_at: None,
        store_error: None,
    };
    let new = NewOrder { order: order.clone(), lines, alert_ids, item_ids };
    match svc.store.insert_order(&new).await {
        Ok(Created::Created) => Ok(view(svc, order, false).await?),
        Ok(Created::Replayed(existing)) => {
            let order = load(svc, space_id, &existing).await?;
            Ok(view(svc, order, true).await?)
        }
        Ok(Created::AlertNotOpen(alert_id)) => Err(ReorderError::AlertNotOpen { alert_id }),
        Err(StoreError::Conflict) => Err(ReorderError::Duplicate),
        Err(e) => Err(e.into()),
    }
}

/// An order of the space.
pub(super) async fn load(svc: &Services, space_id: &str, order_id: &str) -> Result<OrderRecord, ReorderError> {
    svc.store.get_order(space_id, order_id).await?.ok_or(ReorderError::NotFound)
}

/// A page of the space's orders, newest first.
pub async fn list(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
    status: Option<OrderStatus>,
    limit: i64,
    offset: i64,
) -> Result<(Vec<PurchaseOrderSummary>, i64), ReorderError> {
    for_order_reader(svc, caller, space_id).await?;
    let (orders, total) = svc.store.list_orders(space_id, status, limit, offset).await?;
    let ids: Vec<String> = orders.iter().map(|o| o.id.clone()).collect();
    let lines = svc.store.order_lines(&ids).await?;
    let summaries =
        orders.into_iter().map(|o| PurchaseOrderSummary::new(o.clone(), lines.get(&o.id).map_or(&[], Vec::as_slice)));
    Ok((summaries.collect(), total))
}

pub async fn get(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
    order_id: &str,
) -> Result<PurchaseOrderResponse, ReorderError> {
    for_order_reader(svc, caller, space_id).await?;
    let order = load(svc, space_id, order_id).await?;
    Ok(view(svc, order, false).await?)
}

/// Moves an order by `action` from the status it was read with; another request that moved it
/// meanwhile makes this one an invalid transition from where it is now.
async fn move_order(
    svc: &Services,
    caller: &Principal,
    order: &OrderRecord,
    action: OrderAction,
    reopen_alerts: bool,
) -> Result<(), ReorderError> {
    let to = transition(order.status, action)?;
    let change = StatusChange {
        makerspace_id: order.makerspace_id.clone(),
        order_id: order.id.clone(),
        from: order.status,
        to,
        actor: caller.user_id.clone(),
        detail: None,
        at: Utc::now(),
        reopen_alerts,
        close_alerts_of: Vec::new(),
    };
    if !svc.store.change_order_status(&change).await? {
        let now = load(svc, &order.makerspace_id, &order.id).await?;
        return Err(InvalidTransition { status: now.status, action }.into());
    }
    Ok(())
}

/// `draft -> ordered`. An order to the MakrX Store is sent when a Store is configured; a send
/// that fails leaves the order ordered with the reason in `store_sync.error`, and ordering it
/// again sends it again.
pub async fn order(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
    order_id: &str,
) -> Result<PurchaseOrderResponse, ReorderError> {
    for_order_writer(svc, caller, space_id).await?;
    let order = load(svc, space_id, order_id).await?;
    let to_store = order.supplier_kind == makrx_store::SUPPLIER_KIND && svc.settings.store_url.is_some();
    let resend = order.status == OrderStatus::Ordered && to_store && order.store_sent_at.is_none();
    if !resend {
        move_order(svc, caller, &order, OrderAction::Order, false).await?;
    }
    if to_store {
        let order = load(svc, space_id, order_id).await?;
        let lines = svc.store.lines_of_order(&order.id).await?;
        if let Some(payload) = makrx_store::payload(&order, &lines) {
            let sent = makrx_store::send(&svc.settings, &order.id, &payload).await.map(|()| Utc::now());
            if let Err(why) = &sent {
                tracing::warn!(purchase_order = ?order.id, reason = %why, "the order did not reach the MakrX Store");
            }
            svc.store.record_store_send(&order.id, sent).await?;
        }
    }
    let order = load(svc, space_id, order_id).await?;
    Ok(view(svc, order, false).await?)
}

/// `draft | ordered -> cancelled`; the alerts it took are open again. It waits for no receipt:
/// an order being received is answered `purchase_order_busy`.
pub async fn cancel(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
    order_id: &str,
) -> Result<PurchaseOrderResponse, ReorderError> {
    for_order_writer(svc, caller, space_id).await?;
    let order = load(svc, space_id, order_id).await?;
    let now = Utc::now();
    if !svc.store.hold_order(&order.id, now, now + purchase_receipts::HOLD).await? {
        return Err(ReorderError::Busy);
    }
    // Read again under the hold: a receipt that just ended may have moved it.
    let moved = match load(svc, space_id, order_id).await {
        Ok(order) => move_order(svc, caller, &order, OrderAction::Cancel, true).await,
        Err(e) => Err(e),
    };
    purchase_receipts::release(svc, &order.id).await;
    moved?;
    let order = load(svc, space_id, order_id).await?;
    Ok(view(svc, order, false).await?)
}
