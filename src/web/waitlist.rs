//! `/api/v1/makerspaces/{id}/waitlist`: a member queues for a taken slot and is offered it
//! (a `waitlist_offer` WebSocket message) when it frees up (a cancellation or a no-show).
//! Offers go first come first, one at a time for any instant of a machine; the offered
//! member then books the slot as usual, which marks their entry `booked`. An offer not
//! booked within [`OFFER_WINDOW_MINUTES`] expires and passes to the next in line (the
//! reservation sweep drives it). A person queues at most once for any instant of a machine.

use std::collections::HashMap;
use std::sync::Arc;

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use crate::domain::booking::{BookingRules, ReservationKind};
use crate::domain::ids::new_id;
use crate::store::reservations::{ReservationRecord, WaitlistRecord};
use crate::web::auth::Caller;
use crate::web::error::ApiError;
use crate::web::reservations::{check_user, forbidden, interval, load_equipment, rules_of, standing, Standing};
use crate::web::AppState;

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
    fn as_str(self) -> &'static str {
        match self {
            Self::Waiting => "waiting",
            Self::Offered => "offered",
            Self::Booked => "booked",
            Self::Expired => "expired",
            Self::Cancelled => "cancelled",
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct WaitlistQuery {
    /// Entries in this status, past ones included, newest first [default: the live ones,
    /// waiting or offered, whose interval has not ended, first come first].
    pub status: Option<WaitlistStatus>,
}

/// How long an offered member has to book the freed slot before it passes to the next in
/// line. Long enough to see the message and book from a phone; short enough that a slot
/// soon to start is not lost to someone who is away.
pub const OFFER_WINDOW_MINUTES: i64 = 15;

/// Pushes a waitlist change (joined, left, booked, expired) to the space's WebSocket clients.
fn announce_waitlist(state: &AppState, entry: &WaitlistRecord) {
    let message = json!({ "type": "waitlist", "waitlist_entry": WaitlistResponse::from(entry.clone()) });
    state.hub.publish_event(&entry.makerspace_id, &Arc::from(message.to_string()));
}

/// A slot was freed: offers it to those waiting for it, first come first, one per part of
/// the slot.
pub(crate) async fn offer_freed(state: &AppState, freed: &ReservationRecord, rules: &BookingRules) {
    offer_interval(state, &freed.makerspace_id, &freed.equipment_id, (freed.start_at, freed.end_at), rules, Utc::now())
        .await
}

/// Offers `[start, end)` of a machine to those waiting for a part of it, first come first:
/// an entry is offered when its own slot is free (no holding booking within the space's
/// gap) and no other live offer overlaps it.
async fn offer_interval(
    state: &AppState,
    makerspace_id: &str,
    equipment_id: &str,
    (start, end): (DateTime<Utc>, DateTime<Utc>),
    rules: &BookingRules,
    now: DateTime<Utc>,
) {
    let waiting = match state.store.waiting_for(equipment_id, start, end).await {
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
        match state.store.holding_overlaps(&entry.equipment_id, "", guard).await {
            Ok(c) if c.is_empty() => {}
            Ok(_) => continue,
            Err(e) => {
                tracing::error!(error = ?e, "waitlist check failed");
                return;
            }
        }
        match state.store.offer_waitlist_entry(&entry.id, now).await {
            Ok(true) => {
                let user = entry.user_id.clone();
                let mut shown = WaitlistResponse::from(entry);
                shown.status = "offered".into();
                shown.offered_at = Some(now);
                let message = json!({ "type": "waitlist_offer", "user_id": user, "waitlist_entry": shown });
                state.hub.publish_event(makerspace_id, &Arc::from(message.to_string()));
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
pub(crate) async fn booked(state: &AppState, r: &ReservationRecord, rules: &BookingRules) {
    if r.kind != ReservationKind::Booking || !r.status.holds_slot() {
        return;
    }
    let entries = match state.store.mark_waitlist_booked(&r.equipment_id, &r.user_id, r.start_at, r.end_at).await {
        Ok(entries) => entries,
        Err(e) => {
            tracing::error!(error = ?e, reservation = %r.id, "waitlist entries not marked booked");
            return;
        }
    };
    for entry in &entries {
        announce_waitlist(state, entry);
    }
    let now = Utc::now();
    for entry in entries.iter().filter(|e| e.start_at < r.start_at || e.end_at > r.end_at) {
        offer_interval(state, &r.makerspace_id, &r.equipment_id, (entry.start_at, entry.end_at), rules, now).await;
    }
}

/// One pass of the offer sweep: offers made more than [`OFFER_WINDOW_MINUTES`] before `now`
/// and not booked expire, and their slot is offered to the next in line. Returns how many
/// expired.
pub async fn expire_offers(state: &AppState, now: DateTime<Utc>) -> Result<usize, ApiError> {
    let stale = state.store.stale_offers(now - chrono::Duration::minutes(OFFER_WINDOW_MINUTES)).await?;
    let mut rules: HashMap<String, BookingRules> = HashMap::new();
    let mut expired = 0;
    for mut entry in stale {
        if !state.store.set_waitlist_status(&entry.id, "offered", "expired", None).await? {
            // Booked or left meanwhile.
            continue;
        }
        expired += 1;
        entry.status = "expired".into();
        announce_waitlist(state, &entry);
        tracing::info!(entry = %entry.id, equipment = %entry.equipment_id, user = %entry.user_id, "waitlist offer expired");
        let space_rules = match rules.get(&entry.makerspace_id) {
            Some(found) => *found,
            None => match state.store.get_makerspace(&entry.makerspace_id).await? {
                Some(space) => *rules.entry(entry.makerspace_id.clone()).or_insert(rules_of(&space)),
                None => continue,
            },
        };
        offer_interval(
            state,
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

#[utoipa::path(post, path = "/api/v1/makerspaces/{makerspace_id}/waitlist", tag = "reservations",
    params(("makerspace_id" = String, Path)), request_body = WaitlistJoin,
    responses((status = 201, body = WaitlistResponse), (status = 403, body = crate::web::ErrorBody),
              (status = 404, body = crate::web::ErrorBody), (status = 409, body = crate::web::ErrorBody),
              (status = 422, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn waitlist_join(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<String>,
    body: web::Json<WaitlistJoin>,
) -> Result<HttpResponse, ApiError> {
    let space_id = path.into_inner();
    let (space, standing) = standing(&state, &caller, &space_id).await?;
    if standing == Standing::Reader {
        return Err(forbidden("join the waitlist"));
    }
    let body = body.into_inner();
    let user_id = match body.user_id {
        Some(u) if u != caller.user_id && standing != Standing::Manager => {
            return Err(forbidden("queue for someone else"))
        }
        Some(u) => {
            check_user(&u)?;
            u
        }
        None => caller.user_id.clone(),
    };
    let (start, end) = interval(body.start, body.end);
    let rules = rules_of(&space);
    let now = Utc::now();
    rules.check_request(start, end, now, ReservationKind::Booking).map_err(|e| ApiError::Validation(e.to_string()))?;
    let equipment = load_equipment(&state, &space_id, &body.equipment_id).await?;
    if state.store.holding_overlaps(&equipment.id, "", rules.guarded(start, end)).await?.is_empty() {
        return Err(ApiError::Conflict {
            detail: "the slot is free: book it instead of queueing".into(),
            error_type: "slot_available",
        });
    }
    let entry = WaitlistRecord {
        id: new_id(),
        makerspace_id: space_id,
        equipment_id: equipment.id,
        user_id,
        start_at: start,
        end_at: end,
        status: "waiting".into(),
        offered_at: None,
        created_at: now,
    };
    if let Err(existing) = state.store.join_waitlist(&entry).await? {
        return Err(ApiError::conflict_with(
            "already on the waitlist for this machine at an overlapping time",
            "waitlist_duplicate",
            json!({ "existing_entry_id": existing.id, "existing_entry": WaitlistResponse::from(existing) }),
        ));
    }
    announce_waitlist(&state, &entry);
    Ok(HttpResponse::Created().json(WaitlistResponse::from(entry)))
}

#[utoipa::path(get, path = "/api/v1/makerspaces/{makerspace_id}/waitlist", tag = "reservations",
    params(("makerspace_id" = String, Path), WaitlistQuery),
    responses((status = 200, body = [WaitlistResponse]), (status = 404, body = crate::web::ErrorBody),
              (status = 422, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn waitlist_list(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<String>,
    query: web::Query<WaitlistQuery>,
) -> Result<HttpResponse, ApiError> {
    let space_id = path.into_inner();
    let (_, standing) = standing(&state, &caller, &space_id).await?;
    // People of the space see their own entries; admins see the whole queue.
    let only = (standing == Standing::Booker).then_some(caller.user_id.as_str());
    let rows = match query.into_inner().status {
        None => state.store.list_waitlist(&space_id, only).await?,
        Some(status) => state.store.list_waitlist_in(&space_id, status.as_str(), only).await?,
    };
    Ok(HttpResponse::Ok().json(rows.into_iter().map(WaitlistResponse::from).collect::<Vec<_>>()))
}

#[utoipa::path(delete, path = "/api/v1/makerspaces/{makerspace_id}/waitlist/{entry_id}", tag = "reservations",
    params(("makerspace_id" = String, Path), ("entry_id" = String, Path)),
    responses((status = 204), (status = 403, body = crate::web::ErrorBody), (status = 404, body = crate::web::ErrorBody),
              (status = 409, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn waitlist_leave(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (space_id, entry_id) = path.into_inner();
    let (space, standing) = standing(&state, &caller, &space_id).await?;
    let mut entry = state
        .store
        .get_waitlist(&space_id, &entry_id)
        .await?
        .filter(|e| e.status != "cancelled")
        .ok_or_else(|| ApiError::not_found("waitlist entry"))?;
    let mine = standing == Standing::Booker && entry.user_id == caller.user_id;
    if standing != Standing::Manager && !mine {
        return Err(forbidden("remove this waitlist entry"));
    }
    if entry.status != "waiting" && entry.status != "offered" {
        return Err(ApiError::Conflict {
            detail: format!("a {} waitlist entry cannot be removed", entry.status),
            error_type: "invalid_status",
        });
    }
    if !state.store.set_waitlist_status(&entry.id, &entry.status, "cancelled", None).await? {
        return Err(ApiError::Conflict {
            detail: "the waitlist entry changed meanwhile; read it again".into(),
            error_type: "invalid_status",
        });
    }
    let was_offered = entry.status == "offered";
    entry.status = "cancelled".into();
    announce_waitlist(&state, &entry);
    if was_offered {
        // A declined offer passes to the next in line at once.
        let interval = (entry.start_at, entry.end_at);
        offer_interval(&state, &space_id, &entry.equipment_id, interval, &rules_of(&space), Utc::now()).await;
    }
    Ok(HttpResponse::NoContent().finish())
}
