//! `/api/v1/makerspaces/{id}/waitlist`: a member queues for a taken slot and is offered it
//! (a `waitlist_offer` WebSocket message) when it frees up (a cancellation or a no-show).
//! Offers go first come first; the offered member then books the slot as usual.

use std::sync::Arc;

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use crate::domain::booking::{overlaps, BookingRules, ReservationKind};
use crate::domain::ids::new_id;
use crate::store::reservations::{ReservationRecord, WaitlistRecord};
use crate::web::auth::Caller;
use crate::web::error::ApiError;
use crate::web::reservations::{check_user, forbidden, interval, load_equipment, rules_of, standing, Standing};
use crate::web::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitlistJoin {
    pub equipment_id: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// For whom (makerspace_admins only) [default: the caller].
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
    /// waiting, or offered (the slot freed up: book it).
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

/// Pushes a waitlist change (joined, left) to the space's WebSocket clients.
fn announce_waitlist(state: &AppState, entry: &WaitlistRecord) {
    let message = json!({ "type": "waitlist", "waitlist_entry": WaitlistResponse::from(entry.clone()) });
    state.hub.publish_event(&entry.makerspace_id, &Arc::from(message.to_string()));
}

/// A slot was freed: offers it to those waiting for it, first come first, one per part of
/// the slot.
pub(crate) async fn offer_freed(state: &AppState, freed: &ReservationRecord, rules: &BookingRules) {
    let waiting = match state.store.waiting_for(&freed.equipment_id, freed.start_at, freed.end_at).await {
        Ok(w) => w,
        Err(e) => {
            tracing::error!(error = ?e, "waitlist lookup failed");
            return;
        }
    };
    let mut offered: Vec<(DateTime<Utc>, DateTime<Utc>)> = Vec::new();
    for entry in waiting {
        if offered.iter().any(|(s, e)| overlaps(*s, *e, entry.start_at, entry.end_at)) {
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
        let now = Utc::now();
        match state.store.set_waitlist_status(&entry.id, "waiting", "offered", Some(now)).await {
            Ok(true) => {
                offered.push((entry.start_at, entry.end_at));
                let user = entry.user_id.clone();
                let mut shown = WaitlistResponse::from(entry);
                shown.status = "offered".into();
                shown.offered_at = Some(now);
                let message = json!({ "type": "waitlist_offer", "user_id": user, "waitlist_entry": shown });
                state.hub.publish_event(&freed.makerspace_id, &Arc::from(message.to_string()));
            }
            Ok(false) => {}
            Err(e) => tracing::error!(error = ?e, "waitlist offer failed"),
        }
    }
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
    state.store.insert_waitlist(&entry).await?;
    announce_waitlist(&state, &entry);
    Ok(HttpResponse::Created().json(WaitlistResponse::from(entry)))
}

#[utoipa::path(get, path = "/api/v1/makerspaces/{makerspace_id}/waitlist", tag = "reservations",
    params(("makerspace_id" = String, Path)),
    responses((status = 200, body = [WaitlistResponse]), (status = 404, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn waitlist_list(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let space_id = path.into_inner();
    let (_, standing) = standing(&state, &caller, &space_id).await?;
    // People of the space see their own entries; admins see the whole queue.
    let only = (standing == Standing::Booker).then_some(caller.user_id.as_str());
    let rows = state.store.list_waitlist(&space_id, only).await?;
    Ok(HttpResponse::Ok().json(rows.into_iter().map(WaitlistResponse::from).collect::<Vec<_>>()))
}

#[utoipa::path(delete, path = "/api/v1/makerspaces/{makerspace_id}/waitlist/{entry_id}", tag = "reservations",
    params(("makerspace_id" = String, Path), ("entry_id" = String, Path)),
    responses((status = 204), (status = 403, body = crate::web::ErrorBody), (status = 404, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn waitlist_leave(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (space_id, entry_id) = path.into_inner();
    let (_, standing) = standing(&state, &caller, &space_id).await?;
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
    if !state.store.set_waitlist_status(&entry.id, &entry.status, "cancelled", None).await? {
        return Err(ApiError::not_found("waitlist entry"));
    }
    entry.status = "cancelled".into();
    announce_waitlist(&state, &entry);
    Ok(HttpResponse::NoContent().finish())
}
