//! The reservation book. Members of a space book machines for themselves; makerspace_admins
//! (and super_admins) book for anyone, block maintenance windows, approve and reject; the
//! owner or an admin cancels and checks in; platform `admin`s only read. Every change is
//! pushed on the WebSocket as a `reservation` message; a freed slot is offered to the first
//! member waiting for it ([`super::waitlist`]). Every change of a holding booking is also
//! told to the machine's actor, which shows `reserved` while a booking is in progress and
//! nobody uses the machine.
//!
//! Two confirmed or checked-in bookings of one machine never overlap: see
//! [`crate::store::reservations`] for how each database guarantees it.

use crate::logging::escaped;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use crate::domain::access::Principal;
use crate::domain::booking::{BookingRules, ReservationKind, ReservationStatus};
use crate::domain::equipment::{AdminStatus, EquipmentType};
use crate::domain::ids::new_id;
use crate::domain::machine::{HoldKind, ReservationHold};
use crate::domain::validate::{check_len, optional_multiline, optional_text, Invalid};
use crate::store::equipment::{EquipmentFilter, EquipmentRecord};
use crate::store::makerspaces::MakerspaceRecord;
use crate::store::reservations::{BookOutcome, ReservationEvent, ReservationFilter, ReservationRecord};
use crate::store::StoreError;

use super::access::{require_member, standing, AccessError, Standing};
use super::gate::{self, GateError};
use super::{waitlist, Services};

/// How far ahead the feed looks (see [`feed_fleet`]): well beyond the sweeper's feed period,
/// so that every booking is known to its machine long before it starts.
const FEED_AHEAD: chrono::Duration = chrono::Duration::hours(1);
/// Most bookings one feed sends (all machines together).
const FEED_LIMIT: i64 = 50_000;

#[derive(Debug, thiserror::Error)]
pub enum BookingError {
    #[error(transparent)]
    Access(#[from] AccessError),
    #[error("your role does not allow you to {0} in this makerspace")]
    Forbidden(&'static str),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// The machine is booked in the window: the bookings in the way.
    #[error("the machine is already booked in this window")]
    Conflict(Vec<ReservationRecord>),
    /// The reservation is not in a state that allows the action.
    #[error("{0}")]
    InvalidStatus(String),
    #[error("the machine is out of service for maintenance")]
    EquipmentUnavailable,
    #[error("check-in is open only around the start of the booking")]
    OutsideCheckInWindow { opens: DateTime<Utc>, closes: DateTime<Utc> },
    #[error(transparent)]
    Gate(#[from] GateError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A reservation as clients see it (REST and the WebSocket's `reservation` messages).
#[derive(Debug, Serialize, ToSchema)]
pub struct ReservationResponse {
    pub id: String,
    pub makerspace_id: String,
    pub equipment_id: String,
    /// Whose booking it is.
    pub user_id: String,
    pub kind: ReservationKind,
    pub status: ReservationStatus,
    /// Start of the booked interval (inclusive).
    pub start: DateTime<Utc>,
    /// End of the booked interval (exclusive).
    pub end: DateTime<Utc>,
    pub purpose: Option<String>,
    pub created_by: String,
    /// Who approved, rejected or cancelled it.
    pub decided_by: Option<String>,
    pub reason: Option<String>,
    pub checked_in_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// What happened to it, oldest first (only on a single reservation).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<HistoryLine>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryLine {
    pub action: String,
    pub actor: String,
    pub at: DateTime<Utc>,
}

impl From<ReservationRecord> for ReservationResponse {
    fn from(r: ReservationRecord) -> Self {
        ReservationResponse {
            id: r.id,
            makerspace_id: r.makerspace_id,
            equipment_id: r.equipment_id,
            user_id: r.user_id,
            kind: r.kind,
            status: r.status,
            start: r.start_at,
            end: r.end_at,
            purpose: r.purpose,
            created_by: r.created_by,
            decided_by: r.decided_by,
            reason: r.reason,
            checked_in_at: r.checked_in_at,
            created_at: r.created_at,
            updated_at: r.updated_at,
            history: None,
        }
    }
}

/// A booking (or a maintenance window) asked for.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReservationCreate {
    #[schema(pattern = "^[a-z0-9][a-z0-9-]{0,63}$")]
    pub equipment_id: String,
    /// RFC 3339; seconds and beyond are kept, fractions dropped.
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    #[schema(max_length = 1000, pattern = r"^[\P{Cc}\t\n]*$")]
    pub purpose: Option<String>,
    /// For whom (makerspace_admins only) [default: the caller].
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub user_id: Option<String>,
    /// `maintenance` blocks the machine (makerspace_admins only) [default: booking].
    pub kind: Option<ReservationKind>,
}

/// The space's booking rules; rules stored before validation existed fall back to defaults.
pub fn rules_of(space: &MakerspaceRecord) -> BookingRules {
    BookingRules::from_settings(&space.settings).unwrap_or_else(|e| {
        tracing::warn!(makerspace = ?space.id, error = %escaped(&e), "invalid booking rules; using the defaults");
        BookingRules::default()
    })
}

/// The space's booking rules, by id, remembered in `cache` for a pass over many bookings
/// (`None`: the space is gone).
pub(super) async fn cached_rules(
    svc: &Services,
    cache: &mut HashMap<String, BookingRules>,
    space_id: &str,
) -> Result<Option<BookingRules>, StoreError> {
    if let Some(found) = cache.get(space_id) {
        return Ok(Some(*found));
    }
    let Some(space) = svc.store.get_makerspace(space_id).await? else { return Ok(None) };
    Ok(Some(*cache.entry(space_id.to_string()).or_insert(rules_of(&space))))
}

/// The booked interval, whole seconds.
pub(super) fn interval(start: DateTime<Utc>, end: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    (start.trunc_subsecs(0), end.trunc_subsecs(0))
}

/// Whom a booking or a waitlist entry is for: the caller, or (for a manager) someone else.
pub(super) fn booked_person(
    caller: &Principal,
    standing: Standing,
    asked: Option<String>,
    not_for_others: &'static str,
) -> Result<String, BookingError> {
    match asked {
        Some(u) if u != caller.user_id && standing != Standing::Manager => Err(BookingError::Forbidden(not_for_others)),
        Some(u) => {
            // Characters, not bytes, as the document's maxLength counts them.
            check_len("user_id", &u, 200)?;
            Ok(u)
        }
        None => Ok(caller.user_id.clone()),
    }
}

fn invalid_status(r: &ReservationRecord, what: &str) -> BookingError {
    BookingError::InvalidStatus(format!(
        "a {} {} cannot be {what}",
        r.status.as_str(),
        if r.kind == ReservationKind::Maintenance { "maintenance window" } else { "reservation" }
    ))
}

/// Pushes a reservation change to the space's WebSocket clients, and tells the machine's
/// actor about it.
fn announce(svc: &Services, r: &ReservationRecord) {
    let message = json!({ "type": "reservation", "reservation": ReservationResponse::from(r.clone()) });
    svc.hub.publish_event(&r.makerspace_id, &Arc::from(message.to_string()));
    tell_machine(svc, r);
    // A booking may close a machine to jobs whose window it overlaps, or open it again.
    svc.router.machine_changed(&r.makerspace_id, &r.equipment_id);
}

/// What the machine's actor knows of a holding booking.
fn hold_of(r: &ReservationRecord) -> ReservationHold {
    ReservationHold {
        id: r.id.clone(),
        user_id: r.user_id.clone(),
        kind: match r.kind {
            ReservationKind::Booking => HoldKind::Booking,
            ReservationKind::Maintenance => HoldKind::Maintenance,
        },
        start: r.start_at,
        end: r.end_at,
    }
}

/// A holding booking is (again) told to its machine; one that is over for good (cancelled,
/// rejected, released, completed) is withdrawn. A pending request does not hold the machine
/// and may still be approved: nothing to tell.
fn tell_machine(svc: &Services, r: &ReservationRecord) {
    match r.status {
        s if s.holds_slot() => svc.fleet.reserve(&r.makerspace_id, &r.equipment_id, hold_of(r)),
        ReservationStatus::Pending => {}
        _ => svc.fleet.unreserve(&r.makerspace_id, &r.equipment_id, &r.id, r.end_at),
    }
}

/// Tells every machine about its holding bookings that have not ended and start within
/// [`FEED_AHEAD`] of `now`. Returns how many were told.
pub async fn feed_fleet(svc: &Services, now: DateTime<Utc>) -> Result<usize, StoreError> {
    let bookings = svc.store.holding_between(now, now + FEED_AHEAD, FEED_LIMIT).await?;
    for r in &bookings {
        svc.fleet.reserve(&r.makerspace_id, &r.equipment_id, hold_of(r));
    }
    Ok(bookings.len())
}

/// Writes a status change; a conflict when the reservation changed meanwhile or now collides.
async fn apply(
    svc: &Services,
    r: &ReservationRecord,
    from: &[ReservationStatus],
    rules: &BookingRules,
    action: &str,
    actor: &str,
) -> Result<(), BookingError> {
    match svc.store.transition_reservation(r, from, rules.guarded(r.start_at, r.end_at), action, actor).await? {
        BookOutcome::Done => {
            announce(svc, r);
            Ok(())
        }
        BookOutcome::Conflict(c) => Err(BookingError::Conflict(c)),
        BookOutcome::Stale => {
            Err(BookingError::InvalidStatus("the reservation changed meanwhile; read it again".into()))
        }
    }
}

/// Books a machine (or blocks it for maintenance): the space's rules, the machine's service
/// status and the skill gate decide; a machine that needs approval gets a pending request
/// unless a manager books. The booked person's matching waitlist entries are marked booked.
pub async fn book(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
    asked: ReservationCreate,
) -> Result<ReservationRecord, BookingError> {
    let (space, standing) = standing(svc, caller, space_id).await?;
    if standing == Standing::Reader {
        return Err(BookingError::Forbidden("book machines"));
    }
    let kind = asked.kind.unwrap_or_default();
    let user_id = booked_person(caller, standing, asked.user_id, "book for someone else")?;
    if kind == ReservationKind::Maintenance && standing != Standing::Manager {
        return Err(BookingError::Forbidden("block maintenance windows"));
    }
    let purpose = optional_multiline("purpose", asked.purpose, 1000)?;
    // A maintenance window books nobody; a booking books a person of the space.
    if kind == ReservationKind::Booking {
        require_member::<BookingError>(svc, caller, space_id, &user_id).await?;
    }
    let (start, end) = interval(asked.start, asked.end);
    let rules = rules_of(&space);
    let now = Utc::now();
    rules.check_request(start, end, now, kind).map_err(|e| Invalid(e.to_string()))?;
    let equipment = machine_of(svc, space_id, &asked.equipment_id).await?;
    if equipment.admin_status == AdminStatus::Maintenance && kind == ReservationKind::Booking {
        return Err(BookingError::EquipmentUnavailable);
    }
    // The skill gate: the booked person must hold every skill the machine needs (a maintenance
    // window books nobody). Membership is vouched for by the caller's own token, or by the
    // makerspace admin booking for someone; a membership in our database always wins.
    if kind == ReservationKind::Booking {
        let vouched = user_id == caller.user_id || standing == Standing::Manager;
        gate::require_access(svc, &equipment, &user_id, vouched, start).await?;
    }
    let status = if equipment.requires_approval && standing != Standing::Manager && kind == ReservationKind::Booking {
        ReservationStatus::Pending
    } else {
        ReservationStatus::Confirmed
    };
    let record = ReservationRecord {
        id: new_id(),
        makerspace_id: space_id.to_string(),
        equipment_id: equipment.id,
        user_id,
        kind,
        status,
        start_at: start,
        end_at: end,
        purpose,
        created_by: caller.user_id.clone(),
        decided_by: None,
        reason: None,
        checked_in_at: None,
        created_at: now,
        updated_at: now,
    };
    if let Err(conflicts) = svc.store.create_reservation(&record, rules.guarded(start, end)).await? {
        return Err(BookingError::Conflict(conflicts));
    }
    announce(svc, &record);
    waitlist::booked(svc, &record, &rules).await;
    Ok(record)
}

/// The machine a request's body names, which must be one of the space's (422 otherwise, also
/// when it belongs to another space: a body that names nothing usable is invalid input; 404 is
/// for what the path names).
pub(super) async fn machine_of(
    svc: &Services,
    space_id: &str,
    equipment_id: &str,
) -> Result<EquipmentRecord, BookingError> {
    match svc.store.get_equipment(equipment_id).await? {
        Some(e) if e.makerspace_id == space_id => Ok(e),
        _ => Err(Invalid("equipment_id must name a machine of this makerspace".into()).into()),
    }
}

/// Largest page of a listing.
pub const MAX_LIST: i64 = 1000;

/// The space's bookings that match `filter`, for anyone who may read the space.
pub async fn list(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
    filter: &ReservationFilter,
) -> Result<Vec<ReservationRecord>, BookingError> {
    standing(svc, caller, space_id).await?;
    if !(1..=MAX_LIST).contains(&filter.limit) {
        return Err(Invalid(format!("limit is 1 to {MAX_LIST}")).into());
    }
    if let (Some(from), Some(to)) = (filter.from, filter.to) {
        if to <= from {
            return Err(Invalid::new("to must be after from").into());
        }
    }
    Ok(svc.store.list_reservations(space_id, filter).await?)
}

/// One reservation with its history, oldest first.
pub async fn get(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
    id: &str,
) -> Result<(ReservationRecord, Vec<ReservationEvent>), BookingError> {
    standing(svc, caller, space_id).await?;
    let r = load_reservation(svc, space_id, id).await?;
    let history = svc.store.reservation_events(&r.id).await?;
    Ok((r, history))
}

async fn load_reservation(svc: &Services, space_id: &str, id: &str) -> Result<ReservationRecord, BookingError> {
    svc.store.get_reservation(space_id, id).await?.ok_or(BookingError::NotFound("reservation"))
}

/// Loads a reservation the caller may act on as its owner or as a manager.
async fn owned(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
    id: &str,
    what: &'static str,
) -> Result<(MakerspaceRecord, ReservationRecord), BookingError> {
    let (space, standing) = standing(svc, caller, space_id).await?;
    let r = load_reservation(svc, space_id, id).await?;
    let mine = standing == Standing::Booker && r.user_id == caller.user_id && r.kind == ReservationKind::Booking;
    if standing != Standing::Manager && !mine {
        return Err(BookingError::Forbidden(what));
    }
    Ok((space, r))
}

/// The space, for a manager's decision.
async fn managed(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
    what: &'static str,
) -> Result<MakerspaceRecord, BookingError> {
    let (space, standing) = standing(svc, caller, space_id).await?;
    if standing != Standing::Manager {
        return Err(BookingError::Forbidden(what));
    }
    Ok(space)
}

/// Cancels a booking (its owner or a manager); a slot it held is offered to the waitlist.
pub async fn cancel(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
    id: &str,
) -> Result<ReservationRecord, BookingError> {
    let (space, mut r) = owned(svc, caller, space_id, id, "cancel this reservation").await?;
    if !r.status.cancellable() {
        return Err(invalid_status(&r, "cancelled"));
    }
    let from = r.status;
    r.status = ReservationStatus::Cancelled;
    r.decided_by = Some(caller.user_id.clone());
    r.updated_at = Utc::now();
    let rules = rules_of(&space);
    apply(svc, &r, &[from], &rules, "cancelled", &caller.user_id).await?;
    if from.holds_slot() {
        waitlist::offer_freed(svc, &r, &rules).await;
    }
    Ok(r)
}

/// Approves a pending booking (managers); it must not be over, and must still fit.
pub async fn approve(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
    id: &str,
) -> Result<ReservationRecord, BookingError> {
    let space = managed(svc, caller, space_id, "approve reservations").await?;
    let mut r = load_reservation(svc, space_id, id).await?;
    if r.status != ReservationStatus::Pending {
        return Err(invalid_status(&r, "approved"));
    }
    if r.end_at <= Utc::now() {
        return Err(BookingError::InvalidStatus("the reservation is over".into()));
    }
    r.status = ReservationStatus::Confirmed;
    r.decided_by = Some(caller.user_id.clone());
    r.updated_at = Utc::now();
    let rules = rules_of(&space);
    apply(svc, &r, &[ReservationStatus::Pending], &rules, "approved", &caller.user_id).await?;
    waitlist::booked(svc, &r, &rules).await;
    Ok(r)
}

/// Rejects a pending booking (managers), with an optional reason.
pub async fn reject(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
    id: &str,
    reason: Option<String>,
) -> Result<ReservationRecord, BookingError> {
    let space = managed(svc, caller, space_id, "reject reservations").await?;
    let reason = optional_text("reason", reason, 1000)?;
    let mut r = load_reservation(svc, space_id, id).await?;
    if r.status != ReservationStatus::Pending {
        return Err(invalid_status(&r, "rejected"));
    }
    r.status = ReservationStatus::Rejected;
    r.decided_by = Some(caller.user_id.clone());
    r.reason = reason;
    r.updated_at = Utc::now();
    apply(svc, &r, &[ReservationStatus::Pending], &rules_of(&space), "rejected", &caller.user_id).await?;
    Ok(r)
}

/// Checks a booking in (its owner or a manager), within the space's check-in window.
pub async fn check_in(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
    id: &str,
) -> Result<ReservationRecord, BookingError> {
    let (space, mut r) = owned(svc, caller, space_id, id, "check in this reservation").await?;
    if r.status != ReservationStatus::Confirmed || r.kind == ReservationKind::Maintenance {
        return Err(invalid_status(&r, "checked in"));
    }
    let rules = rules_of(&space);
    let now = Utc::now();
    if !rules.can_check_in(r.status, r.start_at, r.end_at, now) {
        let (opens, closes) = rules.check_in_window(r.start_at, r.end_at);
        return Err(BookingError::OutsideCheckInWindow { opens, closes });
    }
    r.status = ReservationStatus::CheckedIn;
    r.checked_in_at = Some(now);
    r.updated_at = now;
    apply(svc, &r, &[ReservationStatus::Confirmed], &rules, "checked_in", &caller.user_id).await?;
    Ok(r)
}

/// The kiosk unlocked the machine for the holder of this confirmed booking: it is checked in.
pub(super) async fn check_in_by_unlock(
    svc: &Services,
    booking: &ReservationRecord,
    now: DateTime<Utc>,
) -> Result<(), BookingError> {
    let space = svc.store.get_makerspace(&booking.makerspace_id).await?.ok_or(BookingError::NotFound("makerspace"))?;
    let mut r = booking.clone();
    r.status = ReservationStatus::CheckedIn;
    r.checked_in_at = Some(now);
    r.updated_at = now;
    apply(svc, &r, &[ReservationStatus::Confirmed], &rules_of(&space), "checked_in", "kiosk").await
}

/// The machines of the space free for the whole window `[start, end)` (of one type, if
/// given). Managers see every free machine; anyone else those they hold the skills for.
pub async fn available(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
    (start, end): (DateTime<Utc>, DateTime<Utc>),
    kind: Option<EquipmentType>,
) -> Result<Vec<EquipmentRecord>, BookingError> {
    let (space, standing) = standing(svc, caller, space_id).await?;
    let (start, end) = interval(start, end);
    if end <= start {
        return Err(Invalid::new("end must be after start").into());
    }
    let (from, to) = rules_of(&space).guarded(start, end);
    let busy: HashSet<String> = svc.store.busy_equipment(space_id, from, to).await?.into_iter().collect();
    let machines =
        svc.store.list_equipment(&EquipmentFilter { makerspace_id: Some(space_id.to_string()), kind }).await?;
    let free: Vec<_> =
        machines.into_iter().filter(|m| m.admin_status == AdminStatus::Available && !busy.contains(&m.id)).collect();
    if standing == Standing::Manager {
        return Ok(free);
    }
    Ok(gate::usable_by(svc, space_id, free, &caller.user_id, true, start).await?)
}

/// One pass of the sweep: confirmed bookings whose check-in window is over are released as
/// no-shows (and their slot offered to the waitlist); checked-in bookings that have ended
/// are completed, and so are maintenance windows. Returns how many changed.
pub async fn sweep(svc: &Services, now: DateTime<Utc>) -> Result<usize, StoreError> {
    let due = svc.store.reservations_due(now).await?;
    let mut rules: HashMap<String, BookingRules> = HashMap::new();
    let mut changed = 0;
    for mut r in due {
        let Some(space_rules) = cached_rules(svc, &mut rules, &r.makerspace_id).await? else { continue };
        let maintenance = r.kind == ReservationKind::Maintenance;
        let (from, to, action) = if maintenance && r.status == ReservationStatus::Confirmed && r.end_at <= now {
            // Nobody checks in to a maintenance window: it simply ends.
            (ReservationStatus::Confirmed, ReservationStatus::Completed, "completed")
        } else if !maintenance && space_rules.is_no_show(r.status, r.start_at, r.end_at, now) {
            (ReservationStatus::Confirmed, ReservationStatus::NoShow, "no_show")
        } else if r.status == ReservationStatus::CheckedIn && r.end_at <= now {
            (ReservationStatus::CheckedIn, ReservationStatus::Completed, "completed")
        } else {
            continue;
        };
        r.status = to;
        r.updated_at = now;
        let guard = space_rules.guarded(r.start_at, r.end_at);
        if svc.store.transition_reservation(&r, &[from], guard, action, "system").await? == BookOutcome::Done {
            changed += 1;
            announce(svc, &r);
            if to == ReservationStatus::NoShow {
                tracing::info!(reservation = ?r.id, equipment = ?r.equipment_id, user = ?r.user_id, "no-show: booking released");
                waitlist::offer_freed(svc, &r, &space_rules).await;
            }
        }
    }
    Ok(changed)
}
