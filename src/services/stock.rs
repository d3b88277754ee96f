//! Stock moves: deducts, receipts and counts, each one row appended to the item's log with
//! its reason and cause, idempotent by key. Every entry point goes through [`apply`]: the
//! REST endpoints here, and what comes next (a job's grams charged to its printer's spool,
//! a purchase order received).

use chrono::Utc;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::access::Principal;
use crate::domain::inventory::{delta_for, CauseKind, Quantity, StockRefusal, UsageReason, MAX_UNITS};
use crate::domain::validate::{check_len, optional_multiline, Invalid};
use crate::store::inventory::{Movement, StockChange, StockOutcome, UsageRecord};

use super::inventory::{self as items, InventoryError};
use super::Services;

/// A finished job's grams charged to its printer's spool (the job router's entry point; it
/// lives with the spools).
pub use super::spools::charge_job;

/// Why a stock move did not happen.
#[derive(Debug, thiserror::Error)]
pub enum StockError {
    #[error(transparent)]
    Inventory(#[from] InventoryError),
    #[error("insufficient stock: {} in stock, {} asked", level.to_text(), requested.to_text())]
    Insufficient { level: Quantity, requested: Quantity },
    #[error("spool not found")]
    SpoolNotFound,
}

impl From<crate::store::StoreError> for StockError {
    fn from(e: crate::store::StoreError) -> Self {
        StockError::Inventory(e.into())
    }
}

impl From<Invalid> for StockError {
    fn from(e: Invalid) -> Self {
        StockError::Inventory(e.into())
    }
}

/// The result of a stock move: the log's row, and whether it was written now or before.
#[derive(Debug, Clone, PartialEq)]
pub struct Moved {
    pub usage: UsageRecord,
    /// A request with this idempotency key was taken before: this is its row.
    pub replayed: bool,
}

/// Writes one move, whoever asks. A retried key answers with its first row; a move that
/// would leave less than nothing (on an item that does not allow it) is refused.
pub async fn apply(svc: &Services, change: StockChange) -> Result<Moved, StockError> {
    let outcome = svc.store.change_stock(&change).await?;
    announce(svc, &outcome).await;
    settle(&change, outcome)
}

/// Tells the space's admins of the low-stock alert a committed move raised (one move, or each
/// of a committed batch's).
pub async fn announce(svc: &Services, outcome: &StockOutcome) {
    if let StockOutcome::Applied { alert: Some(alert), .. } = outcome {
        super::reorders::alert_raised(svc, alert.clone()).await;
    }
}

/// What the store's outcome of a move means for whoever asked, one move or a batch's.
pub fn settle(change: &StockChange, outcome: StockOutcome) -> Result<Moved, StockError> {
    let requested = match change.movement {
        Movement::By(delta) => Quantity(-delta.0),
        Movement::To(level) | Movement::SpoolTo(level) => level,
    };
    match outcome {
        StockOutcome::Applied { usage, .. } => Ok(Moved { usage, replayed: false }),
        StockOutcome::Replayed(usage) => Ok(Moved { usage, replayed: true }),
        StockOutcome::Refused(StockRefusal::Insufficient { level }) => {
            Err(StockError::Insufficient { level, requested })
        }
        StockOutcome::NoItem => Err(InventoryError::NotFound.into()),
        StockOutcome::NoSpool => Err(StockError::SpoolNotFound),
    }
}

/// Why stock goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeductReason {
    Issued,
    UsedByJob,
    UsedBySession,
    Damaged,
}

impl From<DeductReason> for UsageReason {
    fn from(r: DeductReason) -> Self {
        match r {
            DeductReason::Issued => UsageReason::Issued,
            DeductReason::UsedByJob => UsageReason::UsedByJob,
            DeductReason::UsedBySession => UsageReason::UsedBySession,
            DeductReason::Damaged => UsageReason::Damaged,
        }
    }
}

/// Why stock comes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReceiveReason {
    Received,
    Returned,
}

/// `POST .../inventory/{item_id}/deduct`, as the product documents give it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeductRequest {
    /// How much, in the item's unit (at most three decimals).
    #[schema(value_type = f64, minimum = 0.001, maximum = 100_000_000, multiple_of = 0.001)]
    pub quantity: Quantity,
    /// [default: issued]
    pub reason: Option<DeductReason>,
    /// The job that used it.
    #[schema(min_length = 1, max_length = 200, pattern = r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")]
    pub job_id: Option<String>,
    /// Sent again with the same key, the deduct answers as the first time and changes nothing.
    #[schema(min_length = 1, max_length = 200, pattern = r"^[\x21-\x7e]+$")]
    pub idempotency_key: Option<String>,
    #[schema(max_length = 1000, pattern = r"^[^\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]*$")]
    pub note: Option<String>,
}

/// `POST .../receive`: a delivery (or something given back).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReceiveRequest {
    #[schema(value_type = f64, minimum = 0.001, maximum = 100_000_000, multiple_of = 0.001)]
    pub quantity: Quantity,
    /// [default: received]
    pub reason: Option<ReceiveReason>,
    #[schema(min_length = 1, max_length = 200, pattern = r"^[\x21-\x7e]+$")]
    pub idempotency_key: Option<String>,
    #[schema(max_length = 1000, pattern = r"^[^\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]*$")]
    pub note: Option<String>,
}

/// `POST .../adjust`: a stock count sets the level; the row holds the difference.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdjustRequest {
    /// What was counted, in the item's unit.
    #[schema(value_type = f64, minimum = 0, maximum = 100_000_000, multiple_of = 0.001)]
    pub counted: Quantity,
    #[schema(min_length = 1, max_length = 200, pattern = r"^[\x21-\x7e]+$")]
    pub idempotency_key: Option<String>,
    #[schema(max_length = 1000, pattern = r"^[^\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]*$")]
    pub note: Option<String>,
}

/// One row of an item's stock log.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageResponse {
    pub id: i64,
    pub item_id: String,
    /// Signed, in the item's unit: positive in, negative out.
    #[schema(value_type = f64)]
    pub delta: Quantity,
    /// The level right after this row.
    #[schema(value_type = f64)]
    pub level_after: Quantity,
    pub reason: UsageReason,
    pub cause_kind: CauseKind,
    /// The job, session or member it was for.
    pub cause_id: Option<String>,
    /// Who wrote it (a user id, or `system`).
    pub actor: String,
    pub note: Option<String>,
    pub idempotency_key: Option<String>,
    pub at: chrono::DateTime<Utc>,
    /// The spool of the filament the row was drawn from or counted on.
    pub spool_id: Option<String>,
}

impl From<UsageRecord> for UsageResponse {
    fn from(r: UsageRecord) -> Self {
        UsageResponse {
            id: r.id,
            item_id: r.item_id,
            delta: r.delta,
            level_after: r.level_after,
            reason: r.reason,
            cause_kind: r.cause_kind,
            cause_id: r.cause_id,
            actor: r.actor,
            note: r.note,
            idempotency_key: r.idempotency_key,
            at: r.at,
            spool_id: r.spool_id,
        }
    }
}

/// The answer to a deduct, a receipt or a count.
#[derive(Debug, Serialize, ToSchema)]
pub struct StockResponse {
    pub success: bool,
    /// The level after this move (for a replay: after the first one).
    #[schema(value_type = f64)]
    pub new_stock: Quantity,
    /// True when the idempotency key was seen before and nothing changed now.
    pub replayed: bool,
    pub usage: UsageResponse,
}

impl From<Moved> for StockResponse {
    fn from(m: Moved) -> Self {
        StockResponse { success: true, new_stock: m.usage.level_after, replayed: m.replayed, usage: m.usage.into() }
    }
}

fn check_quantity(field: &str, quantity: Quantity) -> Result<Quantity, Invalid> {
    if quantity > Quantity::from_units(MAX_UNITS) {
        return Err(Invalid(format!("{field} must be at most {MAX_UNITS}")));
    }
    Ok(quantity)
}

pub(crate) fn check_key(key: Option<String>) -> Result<Option<String>, Invalid> {
    if let Some(key) = &key {
        check_len("idempotency_key", key, 200)?;
        if !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Invalid::new("idempotency_key must be printable ASCII without spaces"));
        }
    }
    Ok(key)
}

/// A change the caller asks for in a space they manage.
async fn by_admin(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
    item_id: &str,
    movement: Movement,
    reason: UsageReason,
) -> Result<StockChange, StockError> {
    // The item must be one of the space's (404 otherwise) and the caller one of its admins.
    items::load(svc, caller, space_id, item_id, true).await?;
    Ok(admin_change(caller, space_id, item_id, movement, reason))
}

/// A change by one of the space's admins, caused by them.
fn admin_change(
    caller: &Principal,
    space_id: &str,
    item_id: &str,
    movement: Movement,
    reason: UsageReason,
) -> StockChange {
    StockChange {
        makerspace_id: space_id.to_string(),
        item_id: item_id.to_string(),
        movement,
        reason,
        cause_kind: CauseKind::Admin,
        cause_id: Some(caller.user_id.clone()),
        actor: caller.user_id.clone(),
        note: None,
        idempotency_key: None,
        at: Utc::now(),
        spool_id: None,
    }
}

pub async fn deduct(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
    item_id: &str,
    body: DeductRequest,
) -> Result<Moved, StockError> {
    let change = deduct_change(caller, space_id, item_id, body)?;
    items::load(svc, caller, space_id, item_id, true).await?;
    apply(svc, change).await
}

/// A deduct by one of the space's admins as the change to write, checked; neither the item
/// nor the caller's right is looked at here.
pub fn deduct_change(
    caller: &Principal,
    space_id: &str,
    item_id: &str,
    body: DeductRequest,
) -> Result<StockChange, Invalid> {
    let reason = UsageReason::from(body.reason.unwrap_or(DeductReason::Issued));
    let delta = delta_for(reason, check_quantity("quantity", body.quantity)?)?;
    let mut change = admin_change(caller, space_id, item_id, Movement::By(delta), reason);
    if let Some(job) = body.job_id {
        check_len("job_id", &job, 200)?;
        change.cause_kind = CauseKind::Job;
        change.cause_id = Some(job);
    }
    change.note = optional_multiline("note", body.note, 1000)?;
    change.idempotency_key = check_key(body.idempotency_key)?;
    Ok(change)
}

pub async fn receive(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
    item_id: &str,
    body: ReceiveRequest,
) -> Result<Moved, StockError> {
    let reason = match body.reason.unwrap_or(ReceiveReason::Received) {
        ReceiveReason::Received => UsageReason::Received,
        ReceiveReason::Returned => UsageReason::Returned,
    };
    let delta = delta_for(reason, check_quantity("quantity", body.quantity)?)?;
    let mut change = by_admin(svc, caller, space_id, item_id, Movement::By(delta), reason).await?;
    change.note = optional_multiline("note", body.note, 1000)?;
    change.idempotency_key = check_key(body.idempotency_key)?;
    apply(svc, change).await
}

pub async fn adjust(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
    item_id: &str,
    body: AdjustRequest,
) -> Result<Moved, StockError> {
    if body.counted.0 < 0 {
        return Err(Invalid::new("counted must be 0 or more").into());
    }
    let counted = check_quantity("counted", body.counted)?;
    let mut change = by_admin(svc, caller, space_id, item_id, Movement::To(counted), UsageReason::Adjusted).await?;
    change.note = optional_multiline("note", body.note, 1000)?;
    change.idempotency_key = check_key(body.idempotency_key)?;
    apply(svc, change).await
}

/// A page of an item's log, newest first, for the space's admins and the platform's.
pub async fn usage(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
    item_id: &str,
    limit: i64,
    offset: i64,
) -> Result<(Vec<UsageRecord>, i64), StockError> {
    items::check_log_reader(svc, caller, space_id).await?;
    svc.store.get_item(space_id, item_id).await?.ok_or(InventoryError::NotFound)?;
    Ok(svc.store.item_usage(item_id, limit, offset).await?)
}
