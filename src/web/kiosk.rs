//! The shop-floor kiosk: a registered device unlocks a machine for a member's card, or says
//! in a stable code why not, and locks it at the end.
//!
//! The decision, in order: the card belongs to an active member of the kiosk's makerspace;
//! the member holds every skill the machine needs; the machine is online and not in
//! maintenance, in error or someone else's session; and either the member holds the booking
//! in progress (which is checked in) or the machine is free for walk-up until its next
//! booking. A grant starts the session in the machine's actor, which switches the machine on
//! in its own protocol. Every attempt, granted or not, is written to the floor's audit log.

use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::{OpenApi, ToSchema};

use crate::domain::booking::{ReservationKind, ReservationStatus};
use crate::domain::cards::{hash_uid, normalize_uid, uid_hint};
use crate::domain::ids::new_id;
use crate::domain::machine::Session;
use crate::domain::members::{effective_status, MemberStatus};
use crate::store::kiosks::{KioskAttempt, KioskRecord};
use crate::store::machine_states::EndedSession;
use crate::store::reservations::ReservationFilter;
use crate::web::auth::{bearer_token, Caller};
use crate::web::error::ApiError;
use crate::web::members::authorize;
use crate::web::skills::GateError;
use crate::web::validate::check_len;
use crate::web::AppState;

/// Device tokens start with this, so that they are told apart from JWTs at a glance.
const TOKEN_PREFIX: &str = "mk_kiosk_";

#[derive(OpenApi)]
#[openapi(paths(register, list, revoke, unlock, lock, attempts, machines))]
pub struct KioskApi;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/makerspaces/{makerspace_id}/kiosks").route(web::post().to(register)).route(web::get().to(list)),
    )
    .route("/makerspaces/{makerspace_id}/kiosks/{kiosk_id}", web::delete().to(revoke))
    .route("/makerspaces/{makerspace_id}/kiosk-attempts", web::get().to(attempts))
    .route("/kiosk/machines", web::get().to(machines))
    .route("/kiosk/unlock", web::post().to(unlock))
    .route("/kiosk/lock", web::post().to(lock));
}

fn hash_token(token: &str) -> String {
    Sha256::digest(token.trim().as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KioskCreate {
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    pub name: String,
    /// The machines it may unlock [default: every machine of the makerspace].
    pub equipment_ids: Option<Vec<String>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KioskResponse {
    pub id: String,
    pub makerspace_id: String,
    pub name: String,
    pub equipment_ids: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// The device token: shown this once, at registration; only its hash is kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

impl KioskResponse {
    fn new(k: KioskRecord, token: Option<String>) -> Self {
        KioskResponse {
            id: k.id,
            makerspace_id: k.makerspace_id,
            name: k.name,
            equipment_ids: k.equipment_ids,
            created_at: k.created_at,
            revoked_at: k.revoked_at,
            token,
        }
    }
}

#[utoipa::path(post, path = "/api/v1/makerspaces/{makerspace_id}/kiosks", tag = "kiosk",
    params(("makerspace_id" = String, Path)), request_body = KioskCreate,
    responses((status = 201, body = KioskResponse), (status = 403, body = crate::web::ErrorBody),
              (status = 404, body = crate::web::ErrorBody), (status = 422, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn register(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<String>,
    body: web::Json<KioskCreate>,
) -> Result<HttpResponse, ApiError> {
    let space_id = path.into_inner();
    authorize(&state, &caller, &space_id, true).await?;
    let body = body.into_inner();
    check_len("name", &body.name, 100)?;
    let equipment_ids = body.equipment_ids.unwrap_or_default();
    for id in &equipment_ids {
        match state.store.get_equipment(id).await? {
            Some(e) if e.makerspace_id == space_id => {}
            _ => return Err(ApiError::Validation(format!("unknown machine {id:?} in this makerspace"))),
        }
    }
    let bytes: [u8; 32] = rand::random();
    let token = format!("{TOKEN_PREFIX}{}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>());
    let kiosk = KioskRecord {
        id: new_id(),
        makerspace_id: space_id,
        name: body.name.trim().to_string(),
        token_hash: hash_token(&token),
        equipment_ids,
        created_by: caller.user_id.clone(),
        created_at: Utc::now(),
        revoked_at: None,
    };
    state.store.insert_kiosk(&kiosk).await?;
    Ok(HttpResponse::Created().json(KioskResponse::new(kiosk, Some(token))))
}

#[utoipa::path(get, path = "/api/v1/makerspaces/{makerspace_id}/kiosks", tag = "kiosk",
    params(("makerspace_id" = String, Path)),
    responses((status = 200, body = [KioskResponse]), (status = 403, body = crate::web::ErrorBody),
              (status = 404, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let space_id = path.into_inner();
    authorize(&state, &caller, &space_id, false).await?;
    let kiosks = state.store.list_kiosks(&space_id).await?;
    Ok(HttpResponse::Ok().json(kiosks.into_iter().map(|k| KioskResponse::new(k, None)).collect::<Vec<_>>()))
}

#[utoipa::path(delete, path = "/api/v1/makerspaces/{makerspace_id}/kiosks/{kiosk_id}", tag = "kiosk",
    params(("makerspace_id" = String, Path), ("kiosk_id" = String, Path)),
    responses((status = 204), (status = 403, body = crate::web::ErrorBody), (status = 404, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn revoke(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (space_id, kiosk_id) = path.into_inner();
    authorize(&state, &caller, &space_id, true).await?;
    if state.store.revoke_kiosk(&space_id, &kiosk_id).await? {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::not_found("kiosk"))
    }
}

#[utoipa::path(get, path = "/api/v1/makerspaces/{makerspace_id}/kiosk-attempts", tag = "kiosk",
    params(("makerspace_id" = String, Path)),
    responses((status = 200, body = [AttemptResponse]), (status = 403, body = crate::web::ErrorBody),
              (status = 404, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn attempts(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let space_id = path.into_inner();
    authorize(&state, &caller, &space_id, false).await?;
    let rows = state.store.kiosk_attempts(&space_id, 500).await?;
    Ok(HttpResponse::Ok().json(rows.into_iter().map(AttemptResponse::from).collect::<Vec<_>>()))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptResponse {
    pub kiosk_id: String,
    pub equipment_id: String,
    pub card_hint: Option<String>,
    pub member_id: Option<String>,
    pub user_id: Option<String>,
    pub action: String,
    pub granted: bool,
    pub reason: String,
    pub session_id: Option<String>,
    pub at: DateTime<Utc>,
}

impl From<KioskAttempt> for AttemptResponse {
    fn from(a: KioskAttempt) -> Self {
        AttemptResponse {
            kiosk_id: a.kiosk_id,
            equipment_id: a.equipment_id,
            card_hint: a.card_hint,
            member_id: a.member_id,
            user_id: a.user_id,
            action: a.action,
            granted: a.granted,
            reason: a.reason,
            session_id: a.session_id,
            at: a.at,
        }
    }
}

/// The kiosk making a request, from its device token.
pub struct Kiosk(pub KioskRecord);

impl FromRequest for Kiosk {
    type Error = ApiError;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Kiosk, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let token = bearer_token(req, false);
        Box::pin(async move {
            let state = state.ok_or(ApiError::Internal)?;
            let token = token
                .ok_or_else(|| ApiError::Unauthorized("a kiosk sends its device token as a Bearer token".into()))?;
            match state.store.kiosk_by_token_hash(&hash_token(&token)).await? {
                Some(kiosk) => Ok(Kiosk(kiosk)),
                None => Err(ApiError::Unauthorized("unknown or revoked kiosk token".into())),
            }
        })
    }
}

/// The machines this kiosk serves, with their live state (for the kiosk page's picker).
#[utoipa::path(get, path = "/api/v1/kiosk/machines", tag = "kiosk",
    responses((status = 200, body = [crate::actors::machine::MachineView]), (status = 401, body = crate::web::ErrorBody)),
    security(("device" = [])))]
pub async fn machines(state: web::Data<AppState>, Kiosk(kiosk): Kiosk) -> Result<HttpResponse, ApiError> {
    let only: Option<std::collections::HashSet<String>> =
        (!kiosk.equipment_ids.is_empty()).then(|| kiosk.equipment_ids.iter().cloned().collect());
    let views = state.fleet.views(&kiosk.makerspace_id, only.as_ref()).await;
    Ok(HttpResponse::Ok().json(views))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UnlockRequest {
    pub equipment_id: String,
    /// The card's UID as the reader typed it.
    pub card_uid: String,
}

#[derive(Debug, Serialize, ToSchema, Default)]
pub struct UnlockAnswer {
    pub granted: bool,
    /// `granted`, or why not: unknown_card, member_suspended, member_expired, member_pending,
    /// insufficient_skills, maintenance, machine_offline, machine_error, machine_busy,
    /// reserved_by_other.
    pub reason: String,
    pub missing_skills: Vec<String>,
    pub reservation_id: Option<String>,
    pub session_id: Option<String>,
    /// When the session ends (the booking's end, or the next booking's start).
    pub until: Option<DateTime<Utc>>,
    pub member_name: Option<String>,
}

fn denied(reason: &str) -> UnlockAnswer {
    UnlockAnswer { granted: false, reason: reason.to_string(), ..Default::default() }
}

/// The machine must be one this kiosk serves.
async fn served_equipment(
    state: &AppState,
    kiosk: &KioskRecord,
    equipment_id: &str,
) -> Result<crate::store::equipment::EquipmentRecord, ApiError> {
    let equipment = match state.store.get_equipment(equipment_id).await? {
        Some(e) if e.makerspace_id == kiosk.makerspace_id => e,
        _ => return Err(ApiError::not_found("equipment")),
    };
    if !kiosk.equipment_ids.is_empty() && !kiosk.equipment_ids.contains(&equipment.id) {
        return Err(ApiError::Forbidden("this kiosk does not serve that machine".into()));
    }
    Ok(equipment)
}

#[utoipa::path(post, path = "/api/v1/kiosk/unlock", tag = "kiosk", request_body = UnlockRequest,
    responses((status = 200, body = UnlockAnswer, description = "A decision: granted or the reason why not"),
              (status = 401, body = crate::web::ErrorBody), (status = 404, body = crate::web::ErrorBody),
              (status = 422, body = crate::web::ErrorBody)),
    security(("device" = [])))]
pub async fn unlock(
    state: web::Data<AppState>,
    Kiosk(kiosk): Kiosk,
    body: web::Json<UnlockRequest>,
) -> Result<HttpResponse, ApiError> {
    let equipment = served_equipment(&state, &kiosk, &body.equipment_id).await?;
    let uid = normalize_uid(&body.card_uid).map_err(ApiError::Validation)?;
    let now = Utc::now();
    let mut attempt = KioskAttempt {
        makerspace_id: kiosk.makerspace_id.clone(),
        kiosk_id: kiosk.id.clone(),
        equipment_id: equipment.id.clone(),
        card_hint: Some(uid_hint(&uid)),
        member_id: None,
        user_id: None,
        action: "unlock".into(),
        granted: false,
        reason: String::new(),
        session_id: None,
        at: now,
    };
    let answer = decide(&state, &kiosk, &equipment, &uid, now, &mut attempt).await?;
    attempt.granted = answer.granted;
    attempt.reason = answer.reason.clone();
    attempt.session_id = answer.session_id.clone();
    record(&state, attempt).await?;
    Ok(HttpResponse::Ok().json(answer))
}

/// Writes an attempt to the floor's audit log; the answer waits until it is stored, in the
/// state writer's next batch (with the session the attempt started or ended).
async fn record(state: &AppState, attempt: KioskAttempt) -> Result<(), ApiError> {
    if crate::actors::state_writer::store_attempt(&state.journal, attempt).await {
        Ok(())
    } else {
        Err(ApiError::Unavailable("the audit log could not be written".into()))
    }
}

/// The unlock decision (see the module documentation for the order).
async fn decide(
    state: &AppState,
    kiosk: &KioskRecord,
    equipment: &crate::store::equipment::EquipmentRecord,
    uid: &str,
    now: DateTime<Utc>,
    attempt: &mut KioskAttempt,
) -> Result<UnlockAnswer, ApiError> {
    let space = &kiosk.makerspace_id;
    let hash = hash_uid(state.card_key.expose().as_bytes(), uid);
    let Some(member) = state.store.member_by_card(space, &hash).await? else { return Ok(denied("unknown_card")) };
    attempt.member_id = Some(member.id.clone());
    attempt.user_id = member.user_id.clone();
    let member_name = Some(format!("{} {}", member.first_name, member.last_name).trim().to_string());
    match effective_status(member.status, member.end_date, now.date_naive()) {
        MemberStatus::Active => {}
        other => return Ok(UnlockAnswer { member_name, ..denied(&format!("member_{}", other.as_str())) }),
    }
    // Skills are held by the member's identity; a member without one has none.
    let user_id = member.user_id.clone().unwrap_or_else(|| format!("member:{}", member.id));
    match crate::web::skills::require_access_as(state, equipment, &user_id, MemberStatus::Active, now).await {
        Ok(()) => {}
        Err(GateError::Refused { error_type, missing_skills, .. }) => {
            return Ok(UnlockAnswer { missing_skills, member_name, ..denied(error_type) })
        }
        Err(GateError::Api(err)) => return Err(err),
    }
    // The booking in progress, and the next one.
    let bookings = state
        .store
        .list_reservations(
            space,
            &ReservationFilter {
                equipment_id: Some(equipment.id.clone()),
                from: Some(now),
                to: Some(now + chrono::Duration::days(60)),
                limit: 50,
                ..Default::default()
            },
        )
        .await?;
    let holding: Vec<_> = bookings.into_iter().filter(|r| r.status.holds_slot()).collect();
    let current = holding.iter().find(|r| r.start_at <= now && now < r.end_at);
    let (reservation, until) = match current {
        Some(r) if r.user_id == user_id && r.kind == ReservationKind::Booking => (Some(r.clone()), Some(r.end_at)),
        Some(_) => return Ok(UnlockAnswer { member_name, ..denied("reserved_by_other") }),
        None => (None, holding.iter().filter(|r| r.start_at > now).map(|r| r.start_at).min()),
    };
    let session =
        Session { id: new_id(), user_id: user_id.clone(), member_id: Some(member.id.clone()), started_at: now, until };
    let session = match state.fleet.unlock(space, &equipment.id, session).await {
        Ok(s) => s,
        Err(refusal) => return Ok(UnlockAnswer { member_name, ..denied(refusal.code()) }),
    };
    // The booking is checked in by the unlock; renew-on-use skills are renewed.
    if let Some(mut r) = reservation.clone().filter(|r| r.status == ReservationStatus::Confirmed) {
        let space_record = state.store.get_makerspace(space).await?.ok_or_else(|| ApiError::not_found("makerspace"))?;
        let rules = crate::web::reservations::rules_of(&space_record);
        r.status = ReservationStatus::CheckedIn;
        r.checked_in_at = Some(now);
        r.updated_at = now;
        if let Err(err) =
            crate::web::reservations::apply(state, &r, &[ReservationStatus::Confirmed], &rules, "checked_in", "kiosk")
                .await
        {
            tracing::warn!(error = %err, reservation = %r.id, "kiosk unlock could not check the booking in");
        }
    }
    if let Err(err) = crate::web::skills::record_use(state, equipment, &user_id, now).await {
        tracing::warn!(error = %err, "certified use not recorded");
    }
    Ok(UnlockAnswer {
        granted: true,
        reason: "granted".into(),
        missing_skills: Vec::new(),
        reservation_id: reservation.map(|r| r.id),
        session_id: Some(session.id),
        until: session.until,
        member_name,
    })
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LockRequest {
    pub equipment_id: String,
    /// The card of whoever locks (optional: a kiosk may lock a machine left unlocked).
    pub card_uid: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LockAnswer {
    pub locked: bool,
    /// `locked`, or `not_in_use`.
    pub reason: String,
    pub session: Option<EndedSession>,
}

#[utoipa::path(post, path = "/api/v1/kiosk/lock", tag = "kiosk", request_body = LockRequest,
    responses((status = 200, body = LockAnswer), (status = 401, body = crate::web::ErrorBody),
              (status = 404, body = crate::web::ErrorBody)),
    security(("device" = [])))]
pub async fn lock(
    state: web::Data<AppState>,
    Kiosk(kiosk): Kiosk,
    body: web::Json<LockRequest>,
) -> Result<HttpResponse, ApiError> {
    let equipment = served_equipment(&state, &kiosk, &body.equipment_id).await?;
    let hint = match &body.card_uid {
        Some(uid) => Some(uid_hint(&normalize_uid(uid).map_err(ApiError::Validation)?)),
        None => None,
    };
    let ended_by = format!("kiosk:{}", kiosk.id);
    let outcome = state.fleet.lock(&kiosk.makerspace_id, &equipment.id, None, &ended_by, "locked").await;
    let answer = match outcome {
        Ok(ended) => LockAnswer { locked: true, reason: "locked".into(), session: Some(ended) },
        Err(_) => LockAnswer { locked: false, reason: "not_in_use".into(), session: None },
    };
    record(
        &state,
        KioskAttempt {
            makerspace_id: kiosk.makerspace_id.clone(),
            kiosk_id: kiosk.id.clone(),
            equipment_id: equipment.id.clone(),
            card_hint: hint,
            member_id: answer.session.as_ref().and_then(|s| s.session.member_id.clone()),
            user_id: answer.session.as_ref().map(|s| s.session.user_id.clone()),
            action: "lock".into(),
            granted: answer.locked,
            reason: answer.reason.clone(),
            session_id: answer.session.as_ref().map(|s| s.session.id.clone()),
            at: Utc::now(),
        },
    )
    .await?;
    Ok(HttpResponse::Ok().json(answer))
}

/// Ends the sessions a person has in a makerspace: all of them (a suspension), or those on
/// machines that need `skill` (a revoked certification).
pub async fn end_sessions_of(state: &AppState, makerspace_id: &str, user_id: &str, skill: Option<&str>, reason: &str) {
    for view in state.fleet.views(makerspace_id, None).await {
        let Some(session) = view.session.as_ref().filter(|s| s.user_id == user_id) else { continue };
        if let Some(skill) = skill {
            let needs = state.store.get_equipment(&view.equipment_id).await.ok().flatten();
            if !needs.is_some_and(|e| e.skill_requirements.iter().any(|s| s == skill)) {
                continue;
            }
        }
        tracing::info!(equipment_id = %view.equipment_id, session_id = %session.id, reason, "ending a session");
        let _ = state.fleet.lock(makerspace_id, &view.equipment_id, Some(session.id.clone()), "system", reason).await;
    }
}
