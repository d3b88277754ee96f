//! The waitlist: a member queues for a taken slot and is offered it (a `waitlist_offer`
//! WebSocket message) when it frees up (a cancellation or a no-show). Offers go first come
//! first, one at a time for any instant of a machine; the offered member then books the slot
//! as usual, which marks their entry `booked`. An offer not booked within
//! [`OFFER_WINDOW_MINUTES`] expires and passes to the next in line (the sweeper drives it).
//! A person queues at most once for any instant of a machine.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use crate::domain::access::Principal;
use crate::domain::booking::{BookingRules, ReservationKind};
use crate::domain::ids::new_id;
use crate::domain::validate::Invalid;
use crate::store::reservations::{ReservationRecord, WaitlistRecord};
use crate::store::StoreError;

use super::access::{require_member, standing, AccessError, Standing};
use super::bookings::{booked_person, cached_rules, interval, machine_of, rules_of, BookingError};
use super::Services;

/// How long an offered member has to book the freed slot before it passes to the next in
/// line. Long enough to see the message and book from a phone; short enough that a slot
/// soon to start is not lost to someone who is away.
pub const OFFER_WINDOW_MINUTES: i64 = 15;

#[derive(Debug, thiserror::Error)]
pub enum WaitlistError {
    #[error(transparent)]
    Access(#[from] AccessError),
    /// A check an entry shares with a booking refused it (whom it is for, the machine).
    #[error(transparent)]
    Booking(#[from] BookingError),
    #[error("your role does not allow you to {0} in this makerspace")]
    Forbidden(&'static str),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error("the slot is free: book it instead of queueing")]
    SlotAvailable,
    /// The person already waits for an overlapping slot of the machine: that entry.
    #[error("already on the waitlist for this machine at an overlapping time")]
    Duplicate(Box<WaitlistRecord>),
    #[error("{0}")]
    InvalidStatus(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A place in the queue for a slot.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitlistJoin {
    #[schema(pattern = "^[a-z0-9][a-z0-9-]{0,63}$")]
    pub equipment_id: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// For whom (makerspace_admins only) [default: the caller].
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub user_id: Option<String>,
}

/// A waitlist entry as clients see it (REST and the WebSocket's `waitlist` messages).
#[derive(Debug, Serialize, ToSchema)]
pub struct WaitlistResponse {
    pub id: String,
    pub makerspace_id: String,
    pub equipment_id: String,
    pub user_id: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// waiting; offered (the slot freed up: book it within 15 minutes); booked (the person
    /// booked it); expired (the offer was not taken in time); cancelled (left the waitlist).
    pub status: String,
    pub offered_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl From<WaitlistRecord> for WaitlistResponse {
    fn from(w: WaitlistRecord) -> Self {
        WaitlistResponse {
            id: w.id,
            makerspace_id: w.makerspace_id,
            equipment_id: w.equipment_id,
            user_id: w.user_id,
            start: w.start_at,
            end: w.end_at,
            status: w.status,
            offered_at: w.offered_at,
            created_at: w.created_at,
        }
    }
}

/// What a waitlist listing shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WaitlistStatus {
    Waiting,
    Offered,
    Booked,
    Expired,
    Cancelled,
}

impl WaitlistStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Waiting => "waiting",
            Self::Offered => "offered",
            Self::Booked => "booked",
            Self::Expired => "expired",
            Self::Cancelled => "cancelled",
        }
    }
}

/// Pushes a waitlist change (joined, left, booked, expired) to the space's WebSocket clients.
fn announce_waitlist(svc: &Services, entry: &WaitlistRecord) {
    let message = json!({ "type": "waitlist", "waitlist_entry": WaitlistResponse::from(entry.clone()) });
    svc.hub.publish_event(&entry.makerspace_id, &Arc::from(message.to_string()));
}

/// Queues the caller (or, for a manager, someone else) for a taken slot.
pub async fn join(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
    asked: WaitlistJoin,
) -> Result<WaitlistRecord, WaitlistError> {
    let (space, standing) = standing(svc, caller, space_id).await?;
    if standing == Standing::Reader {
        return Err(WaitlistError::Forbidden("join the waitlist"));
    }
    let user_id = booked_person(caller, standing, asked.user_id, "queue for someone else")?;
    require_member::<WaitlistError>(svc, caller, space_id, &user_id).await?;
    let (start, end) = interval(asked.start, asked.end);
    let rules = rules_of(&space);
    let now = Utc::now();
    rules.check_request(start, end, now, ReservationKind::Booking).map_err(|e| Invalid(e.to_string()))?;
    let equipment = machine_of(svc, space_id, &asked.equipment_id).await?;
    if svc.store.holding_overlaps(&equipment.id, "", rules.guarded(start, end)).await?.is_empty() {
        return Err(WaitlistError::SlotAvailable);
    }
    let entry = WaitlistRecord {
        id: new_id(),
        makerspace_id: space_id.to_string(),
        equipment_id: equipment.id,
        user_id,
        start_at: start,
        end_at: end,
        status: "waiting".into(),
        offered_at: None,
        created_at: now,
    };
    if let Err(existing) = svc.store.join_waitlist(&entry).await? {
        return Err(WaitlistError::Duplicate(Box::new(existing)));
    }
    announce_waitlist(svc, &entry);
    Ok(entry)
}

/// The space's waitlist: people of the space see their own entries, admins the whole queue.
/// Without a status: the live entries (waiting or offered) whose interval has not ended,
/// first come first; with one: the entries in it, past ones included, newest first.
pub async fn list(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
    status: Option<WaitlistStatus>,
) -> Result<Vec<WaitlistRecord>, WaitlistError> {
    let (_, standing) = standing(svc, caller, space_id).await?;
    let only = (standing == Standing::Booker).then_some(caller.user_id.as_str());
    Ok(match status {
        None => svc.store.list_waitlist(space_id, only).await?,
        Some(status) => svc.store.list_waitlist_in(space_id, status.as_str(), only).await?,
    })
}

/// Leaves the waitlist (the entry's person or a manager). A declined offer passes to the
/// next in line at once.
pub async fn leave(svc: &Services, caller: &Principal, space_id: &str, entry_id: &str) -> Result<(), WaitlistError> {
    let (space, standing) = standing(svc, caller, space_id).await?;
    let mut entry = svc
        .store
        .get_waitlist(space_id, entry_id)
        .await?
        .filter(|e| e.status != "cancelled")
        .ok_or(WaitlistError::NotFound("waitlist entry"))?;
    let mine = standing == Standing::Booker && entry.user_id == caller.user_id;
    if standing != Standing::Manager && !mine {
        return Err(WaitlistError::Forbidden("remove this waitlist entry"));
    }
    if entry.status != "waiting" && entry.status != "offered" {
        return Err(WaitlistError::InvalidStatus(format!("a {} waitlist entry cannot be removed", entry.status)));
    }
    if !svc.store.set_waitlist_status(&entry.id, &entry.status, "cancelled", None).await? {
        return Err(WaitlistError::InvalidStatus("the waitlist entry changed meanwhile; read it again".into()));
    }
    let was_offered = entry.status == "offered";
    entry.status = "cancelled".into();
    announce_waitlist(svc, &entry);
    if was_offered {
        let interval = (entry.start_at, entry.end_at);
        offer_interval(svc, space_id, &entry.equipment_id, interval, &rules_of(&space), Utc::now()).await;
    }
    Ok(())
}

/// A slot was freed: offers it to those waiting for it, first come first, one per part of
/// the slot.
pub(super) async fn offer_freed(svc: &Services, freed: &ReservationRecord, rules: &BookingRules) {
    offer_interval(svc, &freed.makerspace_id, &freed.equipment_id, (freed.start_at, freed.end_at), rules, Utc::now())
        .await
}

/// Offers `[start, end)` of a machine to those waiting for a part of it, first come first:
/// an entry is offered when its own slot is free (no holding booking within the space's
/// gap) and no other live offer overlaps it.
async fn offer_interval(
    svc: &Services,
    makerspace_id: &str,
    equipment_id: &str,
    (start, end): (DateTime<Utc>, DateTime<Utc>),
    rules: &BookingRules,
    now: DateTime<Utc>,
) {
    let waiting = match svc.store.waiting_for(equipment_id, start, end).await {
        Ok(w) => w,
        Err(e) => {
            tracing::error!(error = ?e, "waitlist lookup failed");
            return;
        }
    };
    for entry in waiting {
        if entry.end_at <= now {
            continue;
        }
        let guard = rules.guarded(entry.start_at, entry.end_at);
        match svc.store.holding_overlaps(&entry.equipment_id, "", guard).await {
            Ok(c) if c.is_empty() => {}
            Ok(_) => continue,
            Err(e) => {
                tracing::error!(error = ?e, "waitlist check failed");
                return;
            }
        }
        match svc.store.offer_waitlist_entry(&entry.id, now).await {
            Ok(true) => {
                let user = entry.user_id.clone();
                let mut shown = WaitlistResponse::from(entry);
                shown.status = "offered".into();
                shown.offered_at = Some(now);
                let message = json!({ "type": "waitlist_offer", "user_id": user, "waitlist_entry": shown });
                svc.hub.publish_event(makerspace_id, &Arc::from(message.to_string()));
            }
            Ok(false) => {}
            Err(e) => tracing::error!(error = ?e, "waitlist offer failed"),
        }
    }
}

/// A booking was made (or approved): the booked person's live entries for the machine that
/// overlap it are `booked`. Their offer, if they had one, is thereby taken; a part of their
/// entry's interval that the booking left free goes to the next in line. A failure here is
/// logged: the booking itself stands, and an offer left behind expires by itself.
pub(super) async fn booked(svc: &Services, r: &ReservationRecord, rules: &BookingRules) {
    if r.kind != ReservationKind::Booking || !r.status.holds_slot() {
        return;
    }
    let entries = match svc.store.mark_waitlist_booked(&r.equipment_id, &r.user_id, r.start_at, r.end_at).await {
        Ok(entries) => entries,
        Err(e) => {
            tracing::error!(error = ?e, reservation = ?r.id, "waitlist entries not marked booked");
            return;
        }
    };
    for entry in &entries {
        announce_waitlist(svc, entry);
    }
    let now = Utc::now();
    for entry in entries.iter().filter(|e| e.start_at < r.start_at || e.end_at > r.end_at) {
        offer_interval(svc, &r.makerspace_id, &r.equipment_id, (entry.start_at, entry.end_at), rules, now).await;
    }
}

/// One pass of the offer sweep: offers made more than [`OFFER_WINDOW_MINUTES`] before `now`
/// and not booked expire, and their slot is offered to the next in line. Returns how many
/// expired.
pub async fn expire_offers(svc: &Services, now: DateTime<Utc>) -> Result<usize, StoreError> {
    let stale = svc.store.stale_offers(now - chrono::Duration::minutes(OFFER_WINDOW_MINUTES)).await?;
    let mut rules: HashMap<String, BookingRules> = HashMap::new();
    let mut expired = 0;
    for mut entry in stale {
        if !svc.store.set_waitlist_status(&entry.id, "offered", "expired", None).await? {
            // Booked or left meanwhile.
            continue;
        }
        expired += 1;
        entry.status = "expired".into();
        announce_waitlist(svc, &entry);
        tracing::info!(entry = ?entry.id, equipment = ?entry.equipment_id, user = ?entry.user_id, "waitlist offer expired");
        let Some(space_rules) = cached_rules(svc, &mut rules, &entry.makerspace_id).await? else { continue };
        offer_interval(
            svc,
            &entry.makerspace_id,
            &entry.equipment_id,
            (entry.start_at, entry.end_at),
            &space_rules,
            now,
        )
        .await;
    }
    Ok(expired)
}
