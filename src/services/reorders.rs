//! Low stock and reordering: the alerts an item's crossing of its minimum raises, and the
//! error every reorder workflow answers with. An alert is raised by the store in the very
//! transaction of the stock row that crossed ([`crate::store::stock_alerts`]); what follows it
//! happens here, after the commit: the space's live feed hears `stock_alert`, and its admins get
//! a mail. Purchase orders are [`super::purchase_orders`]', their receipts
//! [`super::purchase_receipts`]'.
//!
//! Who sees alerts: the people of the space. That an item is low is no secret from them (the
//! item list shows `low_stock` to members already), and the members at the machines are the
//! ones who plan their prints around a spool running out. Orders, with suppliers and money,
//! are for the space's admins.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use crate::domain::access::Principal;
use crate::domain::inventory::{Quantity, Unit};
use crate::domain::members::{effective_status, MemberRole, MemberStatus};
use crate::domain::purchasing::{AlertStatus, InvalidTransition};
use crate::domain::validate::Invalid;
use crate::logging::escaped;
use crate::notify::email::Email;
use crate::store::inventory::ItemRecord;
use crate::store::stock_alerts::{AlertFilter, AlertRecord, AlertView};
use crate::store::StoreError;

use super::access::{space_for, AccessError};
use super::stock::StockError;
use super::Services;

/// Why a reorder workflow did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ReorderError {
    #[error(transparent)]
    Access(#[from] AccessError),
    #[error("purchase order not found")]
    NotFound,
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error("a purchase order with this id already exists")]
    Duplicate,
    #[error("alert {alert_id} is not open: it is ordered already or closed")]
    AlertNotOpen { alert_id: String },
    #[error(transparent)]
    InvalidStatus(#[from] InvalidTransition),
    #[error("line {line_id} has {} outstanding; {} cannot be received", outstanding.to_text(), requested.to_text())]
    OverReceipt { line_id: String, outstanding: Quantity, requested: Quantity },
    #[error("another receipt or cancel of this purchase order is being written; try again in a moment")]
    Busy,
    #[error(transparent)]
    Stock(#[from] StockError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The space, for a caller who may read its alerts (its people and the platform's admins).
pub(super) async fn for_alert_reader(svc: &Services, caller: &Principal, space_id: &str) -> Result<(), AccessError> {
    space_for(svc, caller.can_read_space(space_id), space_id).await.map(drop)
}

/// The space's currency, for a caller who may read its purchase orders (its admins and the
/// platform's).
pub(super) async fn for_order_reader(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
) -> Result<String, AccessError> {
    Ok(space_for(svc, caller.can_read_members(space_id), space_id).await?.currency)
}

/// The space's currency, for a caller who may write its purchase orders (its admins and
/// super_admin).
pub(super) async fn for_order_writer(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
) -> Result<String, AccessError> {
    Ok(space_for(svc, caller.can_manage_space(space_id), space_id).await?.currency)
}

/// A low-stock alert with what a reader needs of its item.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AlertResponse {
    pub id: String,
    pub makerspace_id: String,
    pub item_id: String,
    pub item_name: String,
    pub unit: Unit,
    pub status: AlertStatus,
    /// The level right after the stock move that crossed the minimum, in the item's unit.
    #[schema(value_type = f64)]
    pub level_at_alert: Quantity,
    /// The item's minimum then.
    #[schema(value_type = f64)]
    pub min_stock_level: Quantity,
    /// The item's level now.
    #[schema(value_type = f64)]
    pub current_stock: Quantity,
    /// What an order for it asks for unless told otherwise.
    #[schema(value_type = f64)]
    pub reorder_quantity: Quantity,
    /// The stock log row that crossed the minimum.
    pub usage_id: i64,
    /// The purchase order that took it (ordered; kept once closed).
    pub purchase_order_id: Option<String>,
    pub raised_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
}

impl From<AlertView> for AlertResponse {
    fn from(v: AlertView) -> Self {
        let a = v.alert;
        AlertResponse {
            id: a.id,
            makerspace_id: a.makerspace_id,
            item_id: a.item_id,
            item_name: v.item_name,
            unit: v.unit,
            status: a.status,
            level_at_alert: a.level_at_alert,
            min_stock_level: a.min_stock_level,
            current_stock: v.current_stock,
            reorder_quantity: v.reorder_quantity,
            usage_id: a.usage_id,
            purchase_order_id: a.purchase_order_id,
            raised_at: a.raised_at,
            closed_at: a.closed_at,
        }
    }
}

/// A page of the space's alerts, newest first.
pub async fn list_alerts(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
    filter: AlertFilter,
    limit: i64,
    offset: i64,
) -> Result<(Vec<AlertView>, i64), ReorderError> {
    for_alert_reader(svc, caller, space_id).await?;
    Ok(svc.store.list_alerts(space_id, filter, limit, offset).await?)
}

/// What follows a raised alert, once its stock row is committed: the space's live feed hears
/// it at once, and its admins are mailed in the background (a mail server that is slow or down
/// never holds up the stock move; a failure is logged).
pub async fn alert_raised(svc: &Services, alert: AlertRecord) {
    let item = match svc.store.get_item(&alert.makerspace_id, &alert.item_id).await {
        Ok(Some(item)) => item,
        Ok(None) => return,
        Err(err) => {
            tracing::warn!(error = ?err, alert = ?alert.id, "a stock alert was raised but its item could not be read");
            return;
        }
    };
    let view = AlertView {
        item_name: item.name.clone(),
        unit: item.unit,
        current_stock: item.current_stock,
        reorder_quantity: item.reorder_quantity,
        alert,
    };
    let response = AlertResponse::from(view);
    tracing::info!(makerspace_id = ?response.makerspace_id, item_id = ?response.item_id, alert = ?response.id,
        level = %response.level_at_alert.to_text(), "stock fell to its minimum: alert raised");
    let message = json!({"type": "stock_alert", "makerspace_id": response.makerspace_id, "alert": response});
    svc.hub.publish_event(&response.makerspace_id, &Arc::from(message.to_string()));
    let svc = svc.clone();
    tokio::spawn(async move {
        if let Err(err) = mail_admins(&svc, &response, &item).await {
            tracing::warn!(error = ?err, alert = ?response.id, "the admins' low-stock mail was not sent");
        }
    });
}

/// Mails each active makerspace_admin of the space about the alert.
async fn mail_admins(svc: &Services, alert: &AlertResponse, item: &ItemRecord) -> Result<(), StoreError> {
    let today = Utc::now().date_naive();
    let mut admins: Vec<String> = svc
        .store
        .all_members(&alert.makerspace_id)
        .await?
        .into_iter()
        .filter(|m| {
            m.role == MemberRole::MakerspaceAdmin
                && effective_status(m.status, m.end_date, today) == MemberStatus::Active
        })
        .map(|m| m.email)
        .collect();
    admins.sort();
    admins.dedup();
    if admins.is_empty() {
        return Ok(());
    }
    let space = super::invites::space_name(svc, &alert.makerspace_id).await?;
    let unit = serde_json::to_value(item.unit).ok().and_then(|u| u.as_str().map(str::to_string)).unwrap_or_default();
    let subject = format!("Low stock at {space}: {}", item.name);
    let reorder = if item.reorder_quantity.is_positive() {
        format!("An order from the alert asks for {} {unit}.", item.reorder_quantity.to_text())
    } else {
        "The item has no reorder quantity: say how much when you order it.".to_string()
    };
    let text = format!(
        "Hello,\n\n{name} is down to {level} {unit} at {space} (its minimum is {min} {unit}).\n{reorder}\n\n\
         Open alerts and purchase orders: {url}/\n",
        name = item.name,
        level = alert.level_at_alert.to_text(),
        min = alert.min_stock_level.to_text(),
        url = svc.settings.public_url,
    );
    for to in admins {
        let email = Email { to, subject: subject.clone(), text: text.clone(), html: None };
        if let Err(err) = svc.mailer.send(&email).await {
            tracing::warn!(error = %escaped(&err), alert = ?alert.id, "a low-stock mail was not sent");
        }
    }
    Ok(())
}
