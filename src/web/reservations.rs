//! `/api/v1/makerspaces/{id}/reservations`: the reservation book. Members of a space book
//! machines for themselves; makerspace_admins (and super_admins) book for anyone, block
//! maintenance windows, approve and reject; the owner or an admin cancels and checks in;
//! platform `admin`s only read. Every change is pushed on the WebSocket as a `reservation`
//! message; a freed slot is offered to the first member waiting for it (`waitlist_offer`).
//! Every change of a holding booking is also told to the machine's actor, which shows
//! `reserved` while a booking is in progress and nobody uses the machine.
//!
//! Two confirmed or checked-in bookings of one machine never overlap: see
//! [`crate::store::reservations`] for how each database guarantees it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, HttpResponse};
use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::domain::access::{Decision, Principal};
use crate::domain::booking::{BookingRules, ReservationKind, ReservationStatus};
use crate::domain::equipment::{AdminStatus, EquipmentType};
use crate::domain::ids::new_id;
use crate::domain::machine::{HoldKind, ReservationHold};
use crate::store::equipment::{EquipmentFilter, EquipmentRecord};
use crate::store::makerspaces::MakerspaceRecord;
use crate::store::reservations::{BookOutcome, ReservationEvent, ReservationFilter, ReservationRecord};
use crate::web::auth::Caller;
use crate::web::error::ApiError;
use crate::web::makerspaces::load_for;
use crate::web::validate::optional_text;
use crate::web::waitlist;
use crate::web::AppState;

/// How often the no-show sweep runs.
const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// How often the machine actors are told again about the bookings starting within
/// [`FEED_AHEAD`]. Bookings are told to their machine when they change; this catches up with
/// those made far ahead (an actor keeps only its nearest ones) and is how actors learn
/// the book at start.
const FEED_EVERY: Duration = Duration::from_secs(5 * 60);
/// How far ahead the feed looks: well beyond [`FEED_EVERY`], so that every booking is known
/// to its machine long before it starts.
const FEED_AHEAD: chrono::Duration = chrono::Duration::hours(1);
/// Most bookings one feed sends (all machines together).
const FEED_LIMIT: i64 = 50_000;
/// Largest page of a listing.
const MAX_LIMIT: i64 = 1000;

#[derive(OpenApi)]
#[openapi(
    paths(
        create,
        list,
        get,
        cancel,
        approve,
        reject,
        check_in,
        available,
        waitlist::waitlist_join,
        waitlist::waitlist_list,
        waitlist::waitlist_leave
    ),
    components(schemas(
        ReservationResponse,
        ReservationCreate,
        RejectRequest,
        AvailableMachine,
        waitlist::WaitlistJoin,
        waitlist::WaitlistResponse,
        waitlist::WaitlistStatus,
        ReservationStatus,
        ReservationKind,
        HistoryLine
    ))
)]
pub struct ReservationsApi;

/// Registers the routes (inside `/api/v1`). `equipment/available` comes before the
/// equipment resources so that `available` is not taken for an equipment id.
pub fn routes(cfg: &mut web::ServiceConfig) {
    const BASE: &str = "/makerspaces/{makerspace_id}";
    let path = |rest: &str| format!("{BASE}{rest}");
    cfg.route(&path("/equipment/available"), web::get().to(available))
        .service(web::resource(path("/reservations")).route(web::post().to(create)).route(web::get().to(list)))
        .route(&path("/reservations/{reservation_id}"), web::get().to(get))
        .route(&path("/reservations/{reservation_id}/cancel"), web::post().to(cancel))
        .route(&path("/reservations/{reservation_id}/approve"), web::post().to(approve))
        .route(&path("/reservations/{reservation_id}/reject"), web::post().to(reject))
        .route(&path("/reservations/{reservation_id}/check-in"), web::post().to(check_in))
        .service(
            web::resource(path("/waitlist"))
                .route(web::post().to(waitlist::waitlist_join))
                .route(web::get().to(waitlist::waitlist_list)),
        )
        .route(&path("/waitlist/{entry_id}"), web::delete().to(waitlist::waitlist_leave));
}

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

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReservationCreate {
    #[schema(pattern = "^[a-z0-9][a-z0-9-]{0,63}$")]
    pub equipment_id: String,
    /// RFC 3339; seconds and beyond are kept, fractions dropped.
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    #[schema(max_length = 1000)]
    pub purpose: Option<String>,
    /// For whom (makerspace_admins only) [default: the caller].
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub user_id: Option<String>,
    /// `maintenance` blocks the machine (makerspace_admins only) [default: booking].
    pub kind: Option<ReservationKind>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectRequest {
    #[schema(max_length = 1000)]
    pub reason: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub equipment_id: Option<String>,
    /// Whose bookings (`me` for the caller's own).
    pub user_id: Option<String>,
    pub status: Option<ReservationStatus>,
    /// Only bookings that end after this instant.
    pub from: Option<DateTime<Utc>>,
    /// Only bookings that start before this instant.
    pub to: Option<DateTime<Utc>>,
    /// 1 to 1000 [default: 200].
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AvailableQuery {
    /// Start of the window [default: now].
    pub start: Option<DateTime<Utc>>,
    /// End of the window [default: an hour after the start].
    pub end: Option<DateTime<Utc>>,
    #[serde(rename = "type")]
    pub kind: Option<EquipmentType>,
}

/// A machine free for the whole asked window.
#[derive(Debug, Serialize, ToSchema)]
pub struct AvailableMachine {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: EquipmentType,
    pub location: Option<String>,
    pub hourly_rate: Option<f64>,
    pub requires_approval: bool,
    pub skill_requirements: Vec<String>,
}

/// What the caller may do in the space's reservation book.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Standing {
    /// Platform admin: reads only.
    Reader,
    /// A person of the space: books for themselves.
    Booker,
    /// makerspace_admin or super_admin: everything.
    Manager,
}

/// Loads the space (404 for outsiders) and says what the caller may do in it.
pub(crate) async fn standing(
    state: &AppState,
    caller: &Principal,
    space_id: &str,
) -> Result<(MakerspaceRecord, Standing), ApiError> {
    let space = load_for(state, caller.can_read_space(space_id), space_id).await?;
    let standing = if caller.can_manage_space(space_id) == Decision::Allow {
        Standing::Manager
    } else if caller.memberships.contains_key(space_id) || caller.makerspaces.contains(space_id) {
        Standing::Booker
    } else {
        Standing::Reader
    };
    Ok((space, standing))
}

pub(crate) fn forbidden(what: &str) -> ApiError {
    ApiError::Forbidden(format!("your role does not allow you to {what} in this makerspace"))
}

/// The space's booking rules; rules stored before validation existed fall back to defaults.
pub(crate) fn rules_of(space: &MakerspaceRecord) -> BookingRules {
    BookingRules::from_settings(&space.settings).unwrap_or_else(|e| {
        tracing::warn!(makerspace = %space.id, error = %e, "invalid booking rules; using the defaults");
        BookingRules::default()
    })
}

pub(crate) async fn load_equipment(
    state: &AppState,
    space_id: &str,
    equipment_id: &str,
) -> Result<EquipmentRecord, ApiError> {
    match state.store.get_equipment(equipment_id).await? {
        Some(e) if e.makerspace_id == space_id => Ok(e),
        _ => Err(ApiError::not_found("equipment")),
    }
}

async fn load_reservation(state: &AppState, space_id: &str, id: &str) -> Result<ReservationRecord, ApiError> {
    state.store.get_reservation(space_id, id).await?.ok_or_else(|| ApiError::not_found("reservation"))
}

/// The booked interval, whole seconds.
pub(crate) fn interval(start: DateTime<Utc>, end: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    (start.trunc_subsecs(0), end.trunc_subsecs(0))
}

pub(crate) fn check_user(user_id: &str) -> Result<(), ApiError> {
    // Characters, not bytes, as the document's maxLength counts them.
    crate::web::validate::check_len("user_id", user_id, 200)
}

/// The 409 for a booking that collides with others.
fn conflict(conflicts: &[ReservationRecord]) -> ApiError {
    let list: Vec<serde_json::Value> = conflicts
        .iter()
        .map(|c| {
            json!({"id": c.id, "equipment_id": c.equipment_id, "kind": c.kind, "status": c.status,
                   "start": c.start_at, "end": c.end_at})
        })
        .collect();
    ApiError::conflict_with(
        "the machine is already booked in this window",
        "reservation_conflict",
        json!({ "conflicting_reservations": list }),
    )
}

fn invalid_status(r: &ReservationRecord, what: &str) -> ApiError {
    ApiError::Conflict {
        detail: format!(
            "a {} {} cannot be {what}",
            r.status.as_str(),
            if r.kind == ReservationKind::Maintenance { "maintenance window" } else { "reservation" }
        ),
        error_type: "invalid_status",
    }
}

/// Pushes a reservation change to the space's WebSocket clients, and tells the machine's
/// actor about it.
fn announce(state: &AppState, r: &ReservationRecord) {
    let message = json!({ "type": "reservation", "reservation": ReservationResponse::from(r.clone()) });
    state.hub.publish_event(&r.makerspace_id, &Arc::from(message.to_string()));
    tell_machine(state, r);
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
fn tell_machine(state: &AppState, r: &ReservationRecord) {
    match r.status {
        s if s.holds_slot() => state.fleet.reserve(&r.makerspace_id, &r.equipment_id, hold_of(r)),
        ReservationStatus::Pending => {}
        _ => state.fleet.unreserve(&r.makerspace_id, &r.equipment_id, &r.id, r.end_at),
    }
}

/// Tells every machine about its holding bookings that have not ended and start within
/// [`FEED_AHEAD`] of `now`.
pub async fn feed_fleet(state: &AppState, now: DateTime<Utc>) -> Result<usize, ApiError> {
    let bookings = state.store.holding_between(now, now + FEED_AHEAD, FEED_LIMIT).await?;
    for r in &bookings {
        state.fleet.reserve(&r.makerspace_id, &r.equipment_id, hold_of(r));
    }
    Ok(bookings.len())
}

/// Writes a status change; 409 when the reservation changed meanwhile or now collides.
pub(crate) async fn apply(
    state: &AppState,
    r: &ReservationRecord,
    from: &[ReservationStatus],
    rules: &BookingRules,
    action: &str,
    actor: &str,
) -> Result<(), ApiError> {
    match state.store.transition_reservation(r, from, rules.guarded(r.start_at, r.end_at), action, actor).await? {
        BookOutcome::Done => {
            announce(state, r);
            Ok(())
        }
        BookOutcome::Conflict(c) => Err(conflict(&c)),
        BookOutcome::Stale => Err(ApiError::Conflict {
            detail: "the reservation changed meanwhile; read it again".into(),
            error_type: "invalid_status",
        }),
    }
}

#[utoipa::path(post, path = "/api/v1/makerspaces/{makerspace_id}/reservations", tag = "reservations",
    params(("makerspace_id" = String, Path)), request_body = ReservationCreate,
    responses((status = 201, body = ReservationResponse), (status = 403, body = crate::web::ErrorBody),
              (status = 404, body = crate::web::ErrorBody), (status = 409, body = crate::web::ErrorBody),
              (status = 422, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn create(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<String>,
    body: web::Json<ReservationCreate>,
) -> Result<HttpResponse, ApiError> {
    let space_id = path.into_inner();
    let (space, standing) = standing(&state, &caller, &space_id).await?;
    if standing == Standing::Reader {
        return Err(forbidden("book machines"));
    }
    let body = body.into_inner();
    let kind = body.kind.unwrap_or_default();
    let user_id = match body.user_id {
        Some(u) if u != caller.user_id && standing != Standing::Manager => {
            return Err(forbidden("book for someone else"))
        }
        Some(u) => {
            check_user(&u)?;
            u
        }
        None => caller.user_id.clone(),
    };
    if kind == ReservationKind::Maintenance && standing != Standing::Manager {
        return Err(forbidden("block maintenance windows"));
    }
    let purpose = optional_text("purpose", body.purpose, 1000)?;
    let (start, end) = interval(body.start, body.end);
    let rules = rules_of(&space);
    let now = Utc::now();
    rules.check_request(start, end, now, kind).map_err(|e| ApiError::Validation(e.to_string()))?;
    let equipment = load_equipment(&state, &space_id, &body.equipment_id).await?;
    if equipment.admin_status == AdminStatus::Maintenance && kind == ReservationKind::Booking {
        return Err(ApiError::Conflict {
            detail: "the machine is out of service for maintenance".into(),
            error_type: "equipment_unavailable",
        });
    }
    // The skill gate: the booked person must hold every skill the machine needs (a maintenance
    // window books nobody). Membership is vouched for by the caller's own token, or by the
    // makerspace admin booking for someone; a membership in our database always wins.
    if kind == ReservationKind::Booking {
        let vouched = user_id == caller.user_id || standing == Standing::Manager;
        crate::web::skills::require_access(&state, &equipment, &user_id, vouched, start).await?;
    }
    let status = if equipment.requires_approval && standing != Standing::Manager && kind == ReservationKind::Booking {
        ReservationStatus::Pending
    } else {
        ReservationStatus::Confirmed
    };
    let record = ReservationRecord {
        id: new_id(),
        makerspace_id: space_id,
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
    if let Err(conflicts) = state.store.create_reservation(&record, rules.guarded(start, end)).await? {
        return Err(conflict(&conflicts));
    }
    announce(&state, &record);
    waitlist::booked(&state, &record, &rules).await;
    Ok(HttpResponse::Created().json(ReservationResponse::from(record)))
}

#[utoipa::path(get, path = "/api/v1/makerspaces/{makerspace_id}/reservations", tag = "reservations",
    params(("makerspace_id" = String, Path), ListQuery),
    responses((status = 200, body = [ReservationResponse]), (status = 404, body = crate::web::ErrorBody),
              (status = 422, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<String>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let space_id = path.into_inner();
    standing(&state, &caller, &space_id).await?;
    let q = query.into_inner();
    let limit = q.limit.unwrap_or(200);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::Validation(format!("limit is 1 to {MAX_LIMIT}")));
    }
    if let (Some(from), Some(to)) = (q.from, q.to) {
        if to <= from {
            return Err(ApiError::Validation("to must be after from".into()));
        }
    }
    let user_id = match q.user_id {
        Some(u) if u == "me" => Some(caller.user_id.clone()),
        other => other,
    };
    let filter =
        ReservationFilter { equipment_id: q.equipment_id, user_id, status: q.status, from: q.from, to: q.to, limit };
    let rows = state.store.list_reservations(&space_id, &filter).await?;
    Ok(HttpResponse::Ok().json(rows.into_iter().map(ReservationResponse::from).collect::<Vec<_>>()))
}

#[utoipa::path(get, path = "/api/v1/makerspaces/{makerspace_id}/reservations/{reservation_id}", tag = "reservations",
    params(("makerspace_id" = String, Path), ("reservation_id" = String, Path)),
    responses((status = 200, body = ReservationResponse), (status = 404, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn get(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (space_id, id) = path.into_inner();
    standing(&state, &caller, &space_id).await?;
    let r = load_reservation(&state, &space_id, &id).await?;
    let history: Vec<ReservationEvent> = state.store.reservation_events(&r.id).await?;
    let mut out = ReservationResponse::from(r);
    out.history =
        Some(history.into_iter().map(|h| HistoryLine { action: h.action, actor: h.actor, at: h.at }).collect());
    Ok(HttpResponse::Ok().json(out))
}

/// Loads a reservation the caller may act on as its owner or as a manager.
async fn owned(
    state: &AppState,
    caller: &Principal,
    space_id: &str,
    id: &str,
    what: &str,
) -> Result<(MakerspaceRecord, ReservationRecord), ApiError> {
    let (space, standing) = standing(state, caller, space_id).await?;
    let r = load_reservation(state, space_id, id).await?;
    let mine = standing == Standing::Booker && r.user_id == caller.user_id && r.kind == ReservationKind::Booking;
    if standing != Standing::Manager && !mine {
        return Err(forbidden(what));
    }
    Ok((space, r))
}

#[utoipa::path(post, path = "/api/v1/makerspaces/{makerspace_id}/reservations/{reservation_id}/cancel",
    tag = "reservations", params(("makerspace_id" = String, Path), ("reservation_id" = String, Path)),
    responses((status = 200, body = ReservationResponse), (status = 403, body = crate::web::ErrorBody),
              (status = 404, body = crate::web::ErrorBody), (status = 409, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn cancel(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (space_id, id) = path.into_inner();
    let (space, mut r) = owned(&state, &caller, &space_id, &id, "cancel this reservation").await?;
    if !r.status.cancellable() {
        return Err(invalid_status(&r, "cancelled"));
    }
    let from = r.status;
    r.status = ReservationStatus::Cancelled;
    r.decided_by = Some(caller.user_id.clone());
    r.updated_at = Utc::now();
    let rules = rules_of(&space);
    apply(&state, &r, &[from], &rules, "cancelled", &caller.user_id).await?;
    if from.holds_slot() {
        waitlist::offer_freed(&state, &r, &rules).await;
    }
    Ok(HttpResponse::Ok().json(ReservationResponse::from(r)))
}

#[utoipa::path(post, path = "/api/v1/makerspaces/{makerspace_id}/reservations/{reservation_id}/approve",
    tag = "reservations", params(("makerspace_id" = String, Path), ("reservation_id" = String, Path)),
    responses((status = 200, body = ReservationResponse), (status = 403, body = crate::web::ErrorBody),
              (status = 404, body = crate::web::ErrorBody), (status = 409, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn approve(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (space_id, id) = path.into_inner();
    let (space, standing) = standing(&state, &caller, &space_id).await?;
    if standing != Standing::Manager {
        return Err(forbidden("approve reservations"));
    }
    let mut r = load_reservation(&state, &space_id, &id).await?;
    if r.status != ReservationStatus::Pending {
        return Err(invalid_status(&r, "approved"));
    }
    if r.end_at <= Utc::now() {
        return Err(ApiError::Conflict { detail: "the reservation is over".into(), error_type: "invalid_status" });
    }
    r.status = ReservationStatus::Confirmed;
    r.decided_by = Some(caller.user_id.clone());
    r.updated_at = Utc::now();
    let rules = rules_of(&space);
    apply(&state, &r, &[ReservationStatus::Pending], &rules, "approved", &caller.user_id).await?;
    waitlist::booked(&state, &r, &rules).await;
    Ok(HttpResponse::Ok().json(ReservationResponse::from(r)))
}

#[utoipa::path(post, path = "/api/v1/makerspaces/{makerspace_id}/reservations/{reservation_id}/reject",
    tag = "reservations", params(("makerspace_id" = String, Path), ("reservation_id" = String, Path)),
    request_body(content = RejectRequest, description = "optional"),
    responses((status = 200, body = ReservationResponse), (status = 403, body = crate::web::ErrorBody),
              (status = 404, body = crate::web::ErrorBody), (status = 409, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn reject(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<(String, String)>,
    body: Option<web::Json<RejectRequest>>,
) -> Result<HttpResponse, ApiError> {
    let (space_id, id) = path.into_inner();
    let (space, standing) = standing(&state, &caller, &space_id).await?;
    if standing != Standing::Manager {
        return Err(forbidden("reject reservations"));
    }
    let reason = optional_text("reason", body.and_then(|b| b.into_inner().reason), 1000)?;
    let mut r = load_reservation(&state, &space_id, &id).await?;
    if r.status != ReservationStatus::Pending {
        return Err(invalid_status(&r, "rejected"));
    }
    r.status = ReservationStatus::Rejected;
    r.decided_by = Some(caller.user_id.clone());
    r.reason = reason;
    r.updated_at = Utc::now();
    apply(&state, &r, &[ReservationStatus::Pending], &rules_of(&space), "rejected", &caller.user_id).await?;
    Ok(HttpResponse::Ok().json(ReservationResponse::from(r)))
}

#[utoipa::path(post, path = "/api/v1/makerspaces/{makerspace_id}/reservations/{reservation_id}/check-in",
    tag = "reservations", params(("makerspace_id" = String, Path), ("reservation_id" = String, Path)),
    responses((status = 200, body = ReservationResponse), (status = 403, body = crate::web::ErrorBody),
              (status = 404, body = crate::web::ErrorBody), (status = 409, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn check_in(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (space_id, id) = path.into_inner();
    let (space, mut r) = owned(&state, &caller, &space_id, &id, "check in this reservation").await?;
    if r.status != ReservationStatus::Confirmed || r.kind == ReservationKind::Maintenance {
        return Err(invalid_status(&r, "checked in"));
    }
    let rules = rules_of(&space);
    let now = Utc::now();
    if !rules.can_check_in(r.status, r.start_at, r.end_at, now) {
        let (opens, closes) = rules.check_in_window(r.start_at, r.end_at);
        return Err(ApiError::conflict_with(
            "check-in is open only around the start of the booking",
            "outside_check_in_window",
            json!({ "check_in_opens_at": opens, "check_in_closes_at": closes }),
        ));
    }
    r.status = ReservationStatus::CheckedIn;
    r.checked_in_at = Some(now);
    r.updated_at = now;
    apply(&state, &r, &[ReservationStatus::Confirmed], &rules, "checked_in", &caller.user_id).await?;
    Ok(HttpResponse::Ok().json(ReservationResponse::from(r)))
}

#[utoipa::path(get, path = "/api/v1/makerspaces/{makerspace_id}/equipment/available", tag = "reservations",
    params(("makerspace_id" = String, Path), AvailableQuery),
    responses((status = 200, body = [AvailableMachine]), (status = 404, body = crate::web::ErrorBody),
              (status = 422, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn available(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<String>,
    query: web::Query<AvailableQuery>,
) -> Result<HttpResponse, ApiError> {
    let space_id = path.into_inner();
    let (space, standing_now) = standing(&state, &caller, &space_id).await?;
    let standing_is_manager = standing_now == Standing::Manager;
    let start = query.start.unwrap_or_else(Utc::now);
    let (start, end) = interval(start, query.end.unwrap_or(start + chrono::Duration::hours(1)));
    if end <= start {
        return Err(ApiError::Validation("end must be after start".into()));
    }
    let (from, to) = rules_of(&space).guarded(start, end);
    let busy: HashSet<String> = state.store.busy_equipment(&space_id, from, to).await?.into_iter().collect();
    let machines = state
        .store
        .list_equipment(&EquipmentFilter { makerspace_id: Some(space_id.clone()), kind: query.kind })
        .await?;
    let free: Vec<_> =
        machines.into_iter().filter(|m| m.admin_status == AdminStatus::Available && !busy.contains(&m.id)).collect();
    // Managers see every free machine; anyone else those they hold the skills for.
    let usable = if standing_is_manager {
        free
    } else {
        crate::web::skills::usable_by(&state, &space_id, free, &caller.user_id, true, start).await?
    };
    let out: Vec<AvailableMachine> = usable
        .into_iter()
        .map(|m| AvailableMachine {
            id: m.id,
            name: m.name,
            kind: m.kind,
            location: m.location,
            hourly_rate: m.hourly_rate,
            requires_approval: m.requires_approval,
            skill_requirements: m.skill_requirements,
        })
        .collect();
    Ok(HttpResponse::Ok().json(out))
}

/// One pass of the sweep: confirmed bookings whose check-in window is over are released as
/// no-shows (and their slot offered to the waitlist); checked-in bookings that have ended
/// are completed.
pub async fn sweep(state: &AppState, now: DateTime<Utc>) -> Result<usize, ApiError> {
    let due = state.store.reservations_due(now).await?;
    let mut rules: HashMap<String, BookingRules> = HashMap::new();
    let mut changed = 0;
    for mut r in due {
        let space_rules = match rules.get(&r.makerspace_id) {
            Some(found) => *found,
            None => {
                let found = match state.store.get_makerspace(&r.makerspace_id).await? {
                    Some(space) => rules_of(&space),
                    None => continue,
                };
                rules.insert(r.makerspace_id.clone(), found);
                found
            }
        };
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
        if state.store.transition_reservation(&r, &[from], guard, action, "system").await? == BookOutcome::Done {
            changed += 1;
            announce(state, &r);
            if to == ReservationStatus::NoShow {
                tracing::info!(reservation = %r.id, equipment = %r.equipment_id, user = %r.user_id, "no-show: booking released");
                waitlist::offer_freed(state, &r, &space_rules).await;
            }
        }
    }
    Ok(changed)
}

/// Runs until `stop` is cancelled: tells the machines about the bookings starting soon (at
/// once, then every [`FEED_EVERY`]), and every [`SWEEP_EVERY`] runs the no-show sweep and
/// expires waitlist offers not taken in time.
pub fn spawn_sweeper(state: web::Data<AppState>, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut fed_at: Option<std::time::Instant> = None;
        loop {
            if fed_at.is_none_or(|at| at.elapsed() >= FEED_EVERY) {
                match feed_fleet(&state, Utc::now()).await {
                    Ok(_) => fed_at = Some(std::time::Instant::now()),
                    Err(e) => tracing::warn!(error = %e, "bookings not told to the machines"),
                }
            }
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(SWEEP_EVERY) => {
                    if let Err(e) = sweep(&state, Utc::now()).await {
                        tracing::warn!(error = %e, "reservation sweep failed");
                    }
                    if let Err(e) = waitlist::expire_offers(&state, Utc::now()).await {
                        tracing::warn!(error = %e, "waitlist offer sweep failed");
                    }
                }
            }
        }
    })
}
