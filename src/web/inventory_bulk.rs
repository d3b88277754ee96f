//! `POST /api/v1/makerspaces/{id}/inventory/bulk`: one update, issue or retirement over many
//! items, all or nothing ([`crate::services::inventory_bulk`]), with a report on every entry.

use actix_web::{web, HttpResponse};
use serde::Serialize;
use serde_json::json;
use utoipa::{OpenApi, ToSchema};

use crate::domain::inventory::Quantity;
use crate::services::inventory::ItemResponse;
use crate::services::inventory_bulk::{
    self, BulkDelete, BulkError, BulkIssue, BulkRequest, BulkUpdate, Done, EntryFailure, Refused,
};
use crate::services::stock::UsageResponse;
use crate::web::auth::Caller;
use crate::web::error::ApiError;
use crate::web::AppState;

#[derive(OpenApi)]
#[openapi(
    paths(bulk),
    components(schemas(
        BulkRequest,
        BulkUpdate,
        BulkIssue,
        BulkDelete,
        BulkResponse,
        BulkRejected,
        EntryReport,
        EntryStatus,
        EntryErrorType
    ))
)]
pub struct InventoryBulkApi;

/// Registers the route (inside `/api/v1`), before `inventory/{item_id}` would take `bulk`
/// for an item's id.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/makerspaces/{makerspace_id}/inventory/bulk", web::post().to(bulk));
}

/// What became of one entry.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EntryStatus {
    /// Written by this request.
    Applied,
    /// An issue whose idempotency key was taken before: its first row, nothing new.
    Replayed,
    /// This entry stopped the batch (`error_type`, `detail`).
    Failed,
    /// Nothing wrong with this entry, but the batch was refused for another.
    NotApplied,
}

/// Why an entry failed.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EntryErrorType {
    /// Its input breaks a rule (an item's fields, a quantity, a key).
    ValidationError,
    /// An update or a retirement names an item that an earlier entry names.
    RepeatedItem,
    /// No such live item in the makerspace.
    NotFound,
    /// The item holds less than the issue takes (`current_stock`, `requested`).
    InsufficientStock,
}

/// The report on one entry of the request's `items`.
#[derive(Debug, Serialize, ToSchema)]
pub struct EntryReport {
    /// The entry's place in `items`, from 0.
    pub index: usize,
    pub item_id: String,
    pub status: EntryStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_type: Option<EntryErrorType>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// An update: the item as stored after the batch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item: Option<ItemResponse>,
    /// An issue: the level after it (for a replay: after the first one). An issue refused for
    /// insufficient stock: the level it met.
    #[schema(value_type = Option<f64>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_stock: Option<Quantity>,
    /// An issue refused for insufficient stock: what it asked.
    #[schema(value_type = Option<f64>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requested: Option<Quantity>,
    /// An issue: the row of the item's log.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<UsageResponse>,
}

impl EntryReport {
    fn new(index: usize, item_id: String, status: EntryStatus) -> EntryReport {
        EntryReport {
            index,
            item_id,
            status,
            error_type: None,
            detail: None,
            item: None,
            current_stock: None,
            requested: None,
            usage: None,
        }
    }

    fn done(index: usize, item_id: String, done: Done, currency: &str) -> EntryReport {
        match done {
            Done::Updated(item) => EntryReport {
                item: Some(ItemResponse::new(item, currency)),
                ..Self::new(index, item_id, EntryStatus::Applied)
            },
            Done::Issued(moved) => {
                let status = if moved.replayed { EntryStatus::Replayed } else { EntryStatus::Applied };
                EntryReport {
                    current_stock: Some(moved.usage.level_after),
                    usage: Some(moved.usage.into()),
                    ..Self::new(index, item_id, status)
                }
            }
            Done::Deleted => Self::new(index, item_id, EntryStatus::Applied),
        }
    }

    fn refused(index: usize, entry: Refused) -> EntryReport {
        let Some(failure) = entry.failure else {
            return Self::new(index, entry.item_id, EntryStatus::NotApplied);
        };
        let mut report = Self::new(index, entry.item_id, EntryStatus::Failed);
        let (error_type, detail) = match failure {
            EntryFailure::Invalid(why) => (EntryErrorType::ValidationError, why.0),
            EntryFailure::Repeated { first } => {
                (EntryErrorType::RepeatedItem, format!("the item is named earlier in items (at {first})"))
            }
            EntryFailure::NotFound => (EntryErrorType::NotFound, "inventory item not found".into()),
            EntryFailure::Insufficient { level, requested } => {
                report.current_stock = Some(level);
                report.requested = Some(requested);
                let detail = format!("insufficient stock: {} in stock, {} asked", level.to_text(), requested.to_text());
                (EntryErrorType::InsufficientStock, detail)
            }
        };
        EntryReport { error_type: Some(error_type), detail: Some(detail), ..report }
    }
}

/// An applied batch.
#[derive(Debug, Serialize, ToSchema)]
pub struct BulkResponse {
    /// Entries written by this request.
    pub applied: usize,
    /// Issues whose idempotency key was taken before (nothing new written for them).
    pub replayed: usize,
    /// One report per entry, in the request's order.
    pub results: Vec<EntryReport>,
}

/// A refused batch: nothing of it was written.
#[derive(Debug, Serialize, ToSchema)]
pub struct BulkRejected {
    pub detail: String,
    pub status_code: u16,
    /// `bulk_rejected` (or `validation_error` for a body of the wrong shape, without `results`).
    pub error_type: String,
    /// One report per entry, in the request's order: the ones that failed and why, and the
    /// others `not_applied`.
    pub results: Option<Vec<EntryReport>>,
}

impl From<BulkError> for ApiError {
    fn from(err: BulkError) -> ApiError {
        let detail = err.to_string();
        match err {
            BulkError::Inventory(e) => e.into(),
            BulkError::Rejected(entries) => {
                // The request itself is wrong (422) or it meets stock that does not allow it
                // (409: missing items, too little stock), as the single-item paths tell apart.
                let invalid = entries.iter().any(|e| e.failure.as_ref().is_some_and(EntryFailure::is_invalid_input));
                let results: Vec<EntryReport> =
                    entries.into_iter().enumerate().map(|(i, e)| EntryReport::refused(i, e)).collect();
                ApiError::refused_with(
                    if invalid { 422 } else { 409 },
                    detail,
                    "bulk_rejected",
                    json!({ "results": results }),
                )
            }
        }
    }
}

#[utoipa::path(post, path = "/api/v1/makerspaces/{makerspace_id}/inventory/bulk", tag = "inventory",
    params(("makerspace_id" = String, Path)), request_body = BulkRequest,
    responses((status = 200, description = "Every entry applied (or replayed)", body = BulkResponse),
              (status = 403, body = crate::web::ErrorBody), (status = 404, body = crate::web::ErrorBody),
              (status = 409, description = "bulk_rejected: an item is not in the makerspace or holds too little; nothing applied", body = BulkRejected),
              (status = 422, description = "bulk_rejected: an entry breaks a rule, or names an item twice; nothing applied", body = BulkRejected)),
    security(("bearer" = [])))]
pub async fn bulk(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<String>,
    body: web::Json<BulkRequest>,
) -> Result<HttpResponse, ApiError> {
    let applied = inventory_bulk::bulk(&state, &caller, &path.into_inner(), body.into_inner()).await?;
    let results: Vec<EntryReport> = applied
        .entries
        .into_iter()
        .enumerate()
        .map(|(i, (item_id, done))| EntryReport::done(i, item_id, done, &applied.currency))
        .collect();
    let count = |status: fn(&EntryStatus) -> bool| results.iter().filter(|r| status(&r.status)).count();
    Ok(HttpResponse::Ok().json(BulkResponse {
        applied: count(|s| matches!(s, EntryStatus::Applied)),
        replayed: count(|s| matches!(s, EntryStatus::Replayed)),
        results,
    }))
}
