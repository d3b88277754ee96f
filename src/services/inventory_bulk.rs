//! Many items at once. A bulk update, issue or retirement is all or nothing: every entry is
//! checked first, then all are written in one transaction ([`crate::store::Store::write_batch`],
//! the same statements and rules as the single-item paths), and the answer reports on each
//! entry, whether the batch was applied or refused. Imported items are created here too, one
//! row of a file at a time, and a space's items are read whole for an export.

use std::collections::HashMap;

use chrono::Utc;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::domain::access::Principal;
use crate::domain::ids::new_id;
use crate::domain::inventory::Quantity;
use crate::domain::validate::Invalid;
use crate::store::inventory::{BatchOutcome, BatchWrite, ItemQuery, ItemRecord, ItemSort, StockChange};

use super::access::space_for;
use super::inventory::{self as items, InventoryError, ItemUpdate};
use super::stock::{self, DeductReason, DeductRequest, Moved, StockError};
use super::Services;

/// Most entries one batch may carry: one transaction holds every one of their items' locks.
pub const MAX_BULK_ITEMS: usize = 500;

/// `POST .../inventory/bulk`: one operation over many items.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(tag = "operation", rename_all = "snake_case", deny_unknown_fields)]
pub enum BulkRequest {
    /// Change fields of each item; what an entry leaves out stays.
    Update {
        #[schema(min_items = 1, max_items = 500)]
        items: Vec<BulkUpdate>,
    },
    /// Hand stock out: a deduct with reason `issued` of each item.
    Issue {
        #[schema(min_items = 1, max_items = 500)]
        items: Vec<BulkIssue>,
    },
    /// Retire each item (its log stays).
    Delete {
        #[schema(min_items = 1, max_items = 500)]
        items: Vec<BulkDelete>,
    },
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkUpdate {
    #[schema(pattern = "^[a-z0-9][a-z0-9-]{0,63}$")]
    pub item_id: String,
    pub changes: ItemUpdate,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkIssue {
    #[schema(pattern = "^[a-z0-9][a-z0-9-]{0,63}$")]
    pub item_id: String,
    /// How much, in the item's unit (at most three decimals).
    #[schema(value_type = f64, minimum = 0.001, maximum = 100_000_000, multiple_of = 0.001)]
    pub quantity: Quantity,
    /// Per item, as for a deduct: the batch sent again with the same keys changes nothing.
    #[schema(min_length = 1, max_length = 200, pattern = r"^[\x21-\x7e]+$")]
    pub idempotency_key: Option<String>,
    #[schema(max_length = 1000, pattern = r"^[^\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]*$")]
    pub note: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkDelete {
    #[schema(pattern = "^[a-z0-9][a-z0-9-]{0,63}$")]
    pub item_id: String,
}

/// What was done to one entry of an applied batch.
#[derive(Debug)]
pub enum Done {
    /// The item as stored after the batch.
    Updated(ItemRecord),
    /// The stock move (`replayed` when its key was taken before).
    Issued(Moved),
    Deleted,
}

/// Why one entry stopped a batch.
#[derive(Debug)]
pub enum EntryFailure {
    /// Its input breaks a rule (an item's fields, a quantity, a key).
    Invalid(Invalid),
    /// Its item came earlier in the batch (at this index): an update or a retirement names an
    /// item once.
    Repeated { first: usize },
    /// No such live item in the makerspace.
    NotFound,
    /// Not enough stock for the issue (the item does not allow a negative level).
    Insufficient { level: Quantity, requested: Quantity },
}

impl EntryFailure {
    /// Whether the request itself is wrong (rather than the stock it meets).
    pub fn is_invalid_input(&self) -> bool {
        matches!(self, Self::Invalid(_) | Self::Repeated { .. })
    }
}

/// One entry of a refused batch: what was wrong with it, or nothing (it would have been
/// applied but for the others).
#[derive(Debug)]
pub struct Refused {
    pub item_id: String,
    pub failure: Option<EntryFailure>,
}

#[derive(Debug, thiserror::Error)]
pub enum BulkError {
    #[error(transparent)]
    Inventory(#[from] InventoryError),
    /// Nothing was written: at least one entry failed.
    #[error("nothing was applied: {} of {} entries failed", failed_count(.0), .0.len())]
    Rejected(Vec<Refused>),
}

fn failed_count(entries: &[Refused]) -> usize {
    entries.iter().filter(|e| e.failure.is_some()).count()
}

impl From<Invalid> for BulkError {
    fn from(e: Invalid) -> Self {
        BulkError::Inventory(e.into())
    }
}

impl From<crate::store::StoreError> for BulkError {
    fn from(e: crate::store::StoreError) -> Self {
        BulkError::Inventory(e.into())
    }
}

/// An applied batch: each entry's item and what was done, in the request's order.
#[derive(Debug)]
pub struct Applied {
    pub currency: String,
    pub entries: Vec<(String, Done)>,
}

/// Applies a bulk request for one of the space's admins, all or nothing.
pub async fn bulk(svc: &Services, caller: &Principal, space_id: &str, body: BulkRequest) -> Result<Applied, BulkError> {
    let currency = importer(svc, caller, space_id).await?;
    let count = match &body {
        BulkRequest::Update { items } => items.len(),
        BulkRequest::Issue { items } => items.len(),
        BulkRequest::Delete { items } => items.len(),
    };
    if count == 0 || count > MAX_BULK_ITEMS {
        return Err(Invalid(format!("name 1 to {MAX_BULK_ITEMS} items")).into());
    }
    let checked = check(svc, caller, space_id, body).await?;
    if checked.iter().any(|(_, write)| write.is_err()) {
        return Err(BulkError::Rejected(
            checked.into_iter().map(|(item_id, write)| Refused { item_id, failure: write.err() }).collect(),
        ));
    }
    let (ids, writes): (Vec<String>, Vec<BatchWrite>) =
        checked.into_iter().filter_map(|(id, write)| write.ok().map(|w| (id, w))).unzip();
    let batch = svc.store.write_batch(space_id, &writes).await?;
    if batch.committed {
        // The low-stock alerts the batch's issues raised stand now: the space's admins hear of
        // them as of a single deduct's.
        for outcome in &batch.outcomes {
            if let BatchOutcome::Moved(moved) = outcome {
                stock::announce(svc, moved).await;
            }
        }
    }
    let settled = writes.iter().zip(batch.outcomes).map(|(write, outcome)| settle(write, outcome));
    if !batch.committed {
        return Err(BulkError::Rejected(
            ids.into_iter().zip(settled).map(|(item_id, done)| Refused { item_id, failure: done.err() }).collect(),
        ));
    }
    let mut entries = Vec::with_capacity(ids.len());
    for (item_id, done) in ids.into_iter().zip(settled) {
        let done = match done {
            // The level may have moved since the update was checked: report what is stored.
            Ok(Done::Updated(item)) => match svc.store.get_item(space_id, &item.id).await? {
                Some(stored) => Done::Updated(stored),
                None => Done::Updated(item),
            },
            Ok(done) => done,
            Err(failure) => {
                // A committed batch has no failed write (`BatchOutcome::stands`).
                tracing::error!(?failure, item_id, "a committed batch reported a failed write");
                return Err(InventoryError::Store(crate::store::StoreError::Corrupt("batch outcome".into())).into());
            }
        };
        entries.push((item_id, done));
    }
    Ok(Applied { currency, entries })
}

/// Every entry as the write to make, or why it cannot be made; nothing is written here.
async fn check(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
    body: BulkRequest,
) -> Result<Vec<(String, Result<BatchWrite, EntryFailure>)>, BulkError> {
    let now = Utc::now();
    let mut first_at: HashMap<String, usize> = HashMap::new();
    // An update or a retirement names an item once: a second change of the same item in one
    // batch is more likely a mistake than a wish.
    let mut once = |index: usize, item_id: &str| match first_at.get(item_id) {
        Some(first) => Err(EntryFailure::Repeated { first: *first }),
        None => {
            first_at.insert(item_id.to_string(), index);
            Ok(())
        }
    };
    let mut out = Vec::new();
    match body {
        BulkRequest::Update { items } => {
            for (index, entry) in items.into_iter().enumerate() {
                let write = match once(index, &entry.item_id) {
                    Err(repeated) => Err(repeated),
                    Ok(()) => match svc.store.get_item(space_id, &entry.item_id).await? {
                        None => Err(EntryFailure::NotFound),
                        Some(mut item) => items::apply_update(&mut item, entry.changes, now)
                            .map(|()| BatchWrite::Update(item))
                            .map_err(EntryFailure::Invalid),
                    },
                };
                out.push((entry.item_id, write));
            }
        }
        BulkRequest::Issue { items } => {
            // The same item may be issued twice (to two people): the second sees the first.
            for entry in items {
                let request = DeductRequest {
                    quantity: entry.quantity,
                    reason: Some(DeductReason::Issued),
                    job_id: None,
                    idempotency_key: entry.idempotency_key,
                    note: entry.note,
                };
                let write = stock::deduct_change(caller, space_id, &entry.item_id, request)
                    .map(BatchWrite::Move)
                    .map_err(EntryFailure::Invalid);
                out.push((entry.item_id, write));
            }
        }
        BulkRequest::Delete { items } => {
            for (index, entry) in items.into_iter().enumerate() {
                let write = once(index, &entry.item_id)
                    .map(|()| BatchWrite::Retire { item_id: entry.item_id.clone(), at: now });
                out.push((entry.item_id, write));
            }
        }
    }
    Ok(out)
}

/// What the store's outcome of one write means.
fn settle(write: &BatchWrite, outcome: BatchOutcome) -> Result<Done, EntryFailure> {
    match (write, outcome) {
        (BatchWrite::Move(change), BatchOutcome::Moved(outcome)) => moved(change, *outcome),
        (BatchWrite::Update(item), BatchOutcome::Updated) => Ok(Done::Updated(item.clone())),
        (BatchWrite::Retire { .. }, BatchOutcome::Retired) => Ok(Done::Deleted),
        // No such live item (the store answers each write in its own kind: no other pair comes).
        _ => Err(EntryFailure::NotFound),
    }
}

fn moved(change: &StockChange, outcome: crate::store::inventory::StockOutcome) -> Result<Done, EntryFailure> {
    match stock::settle(change, outcome) {
        Ok(moved) => Ok(Done::Issued(moved)),
        Err(StockError::Insufficient { level, requested }) => Err(EntryFailure::Insufficient { level, requested }),
        // A bulk issue names no spool: the item as a whole is what is missing.
        Err(StockError::Inventory(_) | StockError::SpoolNotFound) => Err(EntryFailure::NotFound),
    }
}

/// The space's currency, for one of its admins (who writes its items, in bulk or by import).
pub async fn importer(svc: &Services, caller: &Principal, space_id: &str) -> Result<String, InventoryError> {
    Ok(space_for(svc, caller.can_manage_space(space_id), space_id).await?.currency)
}

/// Stores one imported item, checked as a created one, with its opening stock through the
/// log. Its id is kept when it is free; an id of a live item of this space is a duplicate
/// (importing a file twice creates nothing twice); an id that another item holds (another
/// space's, whose export this may be, or a retired one) gives way to a new id.
pub async fn import_item(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
    body: items::ItemCreate,
) -> Result<ItemRecord, InventoryError> {
    if let Some(id) = &body.id {
        if svc.store.get_item(space_id, id).await?.is_some() {
            return Err(InventoryError::Duplicate);
        }
    }
    let (mut item, mut opening) = items::new_item(space_id, &caller.user_id, body, Utc::now())?;
    if let Some(change) = opening.as_mut() {
        change.note = Some("opening stock (import)".into());
    }
    match items::insert(svc, &item, opening.as_ref()).await {
        Err(InventoryError::Duplicate) => {
            item.id = new_id();
            if let Some(change) = opening.as_mut() {
                change.item_id = item.id.clone();
            }
            items::insert(svc, &item, opening.as_ref()).await?;
        }
        other => other?,
    }
    Ok(item)
}

/// Every live item of a space, by name, and the space's currency, for the people who may export it: its admins and the
/// platform's, as for the member export (the list is readable by members page by page; a
/// file of everything, with suppliers and costs, is an administrator's tool).
pub async fn export(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
) -> Result<(Vec<ItemRecord>, String), InventoryError> {
    let currency = space_for(svc, caller.can_read_members(space_id), space_id).await?.currency;
    let everything = ItemQuery {
        search: None,
        category: None,
        supplier_kind: None,
        low_stock: None,
        location: None,
        sort: ItemSort::Name,
        descending: false,
        // One statement, so that the file is one consistent reading of the stock.
        limit: i64::MAX,
        offset: 0,
    };
    Ok((svc.store.list_items(space_id, &everything).await?.0, currency))
}
