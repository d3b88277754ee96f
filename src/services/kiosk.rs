//! The shop-floor kiosk: a registered device unlocks a machine for a member's card, or says
//! in a stable code why not, and locks it at the end.
//!
//! The decision, in order: the card belongs to an active member of the kiosk's makerspace;
//! the member holds every skill the machine needs; the machine is online and not in
//! maintenance, in error or someone else's session; and either the member holds the booking
//! in progress (which is checked in) or the machine is free for walk-up until its next
//! booking. A grant starts the session in the machine's actor, which switches the machine on
//! in its own protocol. Every attempt, granted or not, is written to the floor's audit log.
//!
//! A lock ends a session only for the session's own card or an admin's card (an active
//! makerspace_admin of the space), unless the kiosk is set to "any card locks"; the audit
//! row keeps who presented the card apart from whose session it was. A kiosk that sees too
//! many unknown cards is slowed down ([`super::kiosk_guard`]): its card requests are refused
//! until the backoff ends.

use crate::logging::escaped;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::actors::machine::MachineView;
use crate::domain::access::Principal;
use crate::domain::booking::{ReservationKind, ReservationStatus};
use crate::domain::cards::{hash_uid, normalize_uid, uid_hint};
use crate::domain::devices::{hash_device_token, kiosk_token};
use crate::domain::ids::new_id;
use crate::domain::machine::Session;
use crate::domain::members::{effective_status, MemberRole, MemberStatus};
use crate::domain::validate::{check_len, dedup, Invalid};
use crate::store::equipment::EquipmentRecord;
use crate::store::kiosks::{KioskAttempt, KioskRecord};
use crate::store::machine_states::EndedSession;
use crate::store::members::MemberRecord;
use crate::store::reservations::ReservationFilter;
use crate::store::StoreError;

use super::access::{people_of, AccessError};
use super::gate::{self, GateError};
use super::{bookings, kiosk_guard, Services};

#[derive(Debug, thiserror::Error)]
pub enum KioskError {
    #[error(transparent)]
    Access(#[from] AccessError),
    #[error("{0}")]
    Unauthenticated(&'static str),
    #[error("equipment not found")]
    UnknownEquipment,
    #[error("kiosk not found")]
    UnknownKiosk,
    /// No job of one of this kiosk's machines, in flight, has this id.
    #[error("job not found")]
    UnknownJob,
    #[error("this kiosk does not serve that machine")]
    NotServed,
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// The answer would not be in the floor's audit log.
    #[error("the audit log could not be written")]
    AuditUnavailable,
    /// The kiosk saw too many unknown cards: it is slowed down for a while.
    #[error("too many unknown cards at this kiosk; try again in {} s", retry_after.as_secs().max(1))]
    SlowedDown { retry_after: std::time::Duration },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Registers a kiosk of the space, for every machine or the listed ones. Returns the kiosk
/// and its device token, which is shown this once: only its hash is kept.
pub async fn register(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
    name: &str,
    equipment_ids: Vec<String>,
    any_card_locks: bool,
) -> Result<(KioskRecord, String), KioskError> {
    people_of(svc, caller, space_id, true).await?;
    check_len("name", name, 100)?;
    let equipment_ids = dedup(equipment_ids);
    for id in &equipment_ids {
        match svc.store.get_equipment(id).await? {
            Some(e) if e.makerspace_id == space_id => {}
            _ => return Err(Invalid(format!("unknown machine {id:?} in this makerspace")).into()),
        }
    }
    let token = kiosk_token(&rand::random());
    let kiosk = KioskRecord {
        id: new_id(),
        makerspace_id: space_id.to_string(),
        name: name.trim().to_string(),
        token_hash: hash_device_token(&token),
        equipment_ids,
        created_by: caller.user_id.clone(),
        created_at: Utc::now(),
        revoked_at: None,
        any_card_locks,
    };
    svc.store.insert_kiosk(&kiosk).await?;
    Ok((kiosk, token))
}

/// An admin sets whether any card locks at a kiosk of the space.
pub async fn set_any_card_locks(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
    kiosk_id: &str,
    any_card_locks: bool,
) -> Result<KioskRecord, KioskError> {
    people_of(svc, caller, space_id, true).await?;
    svc.store.set_kiosk_any_card_locks(space_id, kiosk_id, any_card_locks).await?.ok_or(KioskError::UnknownKiosk)
}

/// Refuses card requests while the kiosk is slowed down.
fn not_slowed(svc: &Services, kiosk: &KioskRecord) -> Result<(), KioskError> {
    svc.kiosk_guards.check(&kiosk.id).map_err(|retry_after| KioskError::SlowedDown { retry_after })
}

/// The member a card belongs to in the kiosk's space; an unknown card counts against the
/// kiosk (see [`kiosk_guard`]).
async fn card_holder(
    svc: &Services,
    kiosk: &KioskRecord,
    equipment_id: &str,
    uid: &str,
) -> Result<Option<MemberRecord>, KioskError> {
    let hash = hash_uid(svc.card_key.expose().as_bytes(), uid);
    let member = svc.store.member_by_card(&kiosk.makerspace_id, &hash).await?;
    match member {
        None => kiosk_guard::unknown_card(svc, kiosk, equipment_id),
        Some(_) => super::bridges::learn_card(svc, &kiosk.makerspace_id, uid).await,
    }
    Ok(member)
}

/// Revokes a kiosk: its token stops working at once.
pub async fn revoke(svc: &Services, caller: &Principal, space_id: &str, kiosk_id: &str) -> Result<(), KioskError> {
    people_of(svc, caller, space_id, true).await?;
    if svc.store.revoke_kiosk(space_id, kiosk_id).await? {
        Ok(())
    } else {
        Err(KioskError::UnknownKiosk)
    }
}

/// The kiosk a device token belongs to (not a revoked one).
pub async fn authenticate(svc: &Services, token: Option<&str>) -> Result<KioskRecord, KioskError> {
    let token = token.ok_or(KioskError::Unauthenticated("a kiosk sends its device token as a Bearer token"))?;
    svc.store
        .kiosk_by_token_hash(&hash_device_token(token))
        .await?
        .ok_or(KioskError::Unauthenticated("unknown or revoked kiosk token"))
}

/// The machines this kiosk serves, with their live state (for the kiosk page's picker).
pub async fn machines(svc: &Services, kiosk: &KioskRecord) -> Vec<MachineView> {
    let only: Option<std::collections::HashSet<String>> =
        (!kiosk.equipment_ids.is_empty()).then(|| kiosk.equipment_ids.iter().cloned().collect());
    svc.fleet.views(&kiosk.makerspace_id, only.as_ref()).await
}

/// The answer to a card tapped to unlock.
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
    /// The member's name, on a grant only.
    pub member_name: Option<String>,
}

fn denied(reason: &str) -> UnlockAnswer {
    UnlockAnswer { granted: false, reason: reason.to_string(), ..Default::default() }
}

/// The machine must be one this kiosk serves.
async fn served_equipment(
    svc: &Services,
    kiosk: &KioskRecord,
    equipment_id: &str,
) -> Result<EquipmentRecord, KioskError> {
    let equipment = match svc.store.get_equipment(equipment_id).await? {
        Some(e) if e.makerspace_id == kiosk.makerspace_id => e,
        _ => return Err(KioskError::UnknownEquipment),
    };
    if !kiosk.equipment_ids.is_empty() && !kiosk.equipment_ids.contains(&equipment.id) {
        return Err(KioskError::NotServed);
    }
    Ok(equipment)
}

/// A card tapped at the kiosk to unlock a machine: the decision (see the module
/// documentation for its order), written to the floor's audit log before it is answered.
pub async fn unlock(
    svc: &Services,
    kiosk: &KioskRecord,
    equipment_id: &str,
    card_uid: &str,
) -> Result<UnlockAnswer, KioskError> {
    let equipment = served_equipment(svc, kiosk, equipment_id).await?;
    let uid = normalize_uid(card_uid).map_err(Invalid)?;
    not_slowed(svc, kiosk)?;
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
        presenter_member_id: None,
        presenter_user_id: None,
    };
    let answer = decide(svc, kiosk, &equipment, &uid, now, &mut attempt).await?;
    attempt.granted = answer.granted;
    attempt.reason = answer.reason.clone();
    attempt.session_id = answer.session_id.clone();
    if let Err(err) = record(svc, attempt).await {
        // No unlock without its line in the audit log: the machine was switched on for this
        // session, so it is switched off again before the kiosk hears of the failure.
        if let Some(session_id) = answer.session_id {
            let undone = svc
                .fleet
                .lock(&kiosk.makerspace_id, &equipment.id, Some(session_id), "system", "audit_unavailable")
                .await;
            tracing::error!(equipment_id = ?equipment.id, locked_again = undone.is_ok(),
                "kiosk unlock not written to the audit log: the machine is locked again");
        }
        return Err(err);
    }
    Ok(answer)
}

/// Writes an attempt to the floor's audit log; the answer waits until it is stored, in the
/// state writer's next batch (with the session the attempt started or ended).
async fn record(svc: &Services, attempt: KioskAttempt) -> Result<(), KioskError> {
    if crate::actors::state_writer::store_attempt(&svc.journal, attempt).await {
        Ok(())
    } else {
        Err(KioskError::AuditUnavailable)
    }
}

/// The unlock decision (see the module documentation for the order).
async fn decide(
    svc: &Services,
    kiosk: &KioskRecord,
    equipment: &EquipmentRecord,
    uid: &str,
    now: DateTime<Utc>,
    attempt: &mut KioskAttempt,
) -> Result<UnlockAnswer, KioskError> {
    let space = &kiosk.makerspace_id;
    let Some(member) = card_holder(svc, kiosk, &equipment.id, uid).await? else { return Ok(denied("unknown_card")) };
    attempt.member_id = Some(member.id.clone());
    attempt.user_id = member.user_id.clone();
    // At an unlock the presenter is the member whose session it would be.
    attempt.presenter_member_id = Some(member.id.clone());
    attempt.presenter_user_id = member.user_id.clone();
    match effective_status(member.status, member.end_date, now.date_naive()) {
        MemberStatus::Active => {}
        other => return Ok(denied(&format!("member_{}", other.as_str()))),
    }
    // Skills are held by the member's identity; a member without one has none.
    let user_id = member.user_id.clone().unwrap_or_else(|| format!("member:{}", member.id));
    match gate::require_access_as(svc, equipment, &user_id, MemberStatus::Active, now).await {
        Ok(()) => {}
        Err(GateError::Refused { error_type, missing_skills, .. }) => {
            return Ok(UnlockAnswer { missing_skills, ..denied(error_type) })
        }
        Err(GateError::UnknownEquipment) => return Err(KioskError::UnknownEquipment),
        Err(GateError::Store(err)) => return Err(err.into()),
    }
    // The booking in progress, and the next one.
    let bookings = svc
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
        Some(_) => return Ok(denied("reserved_by_other")),
        None => (None, holding.iter().filter(|r| r.start_at > now).map(|r| r.start_at).min()),
    };
    // Prepaid mode comes last, after the skill and booking checks: a member refused for a
    // skill or a booking hears that (a top-up would not help), and the balance (a sum over
    // the ledger) is read only for an unlock that would otherwise be granted.
    if super::billing_wallet::prepaid_shortfall(svc, space, &member.id).await?.is_some() {
        return Ok(denied("insufficient_credit"));
    }
    let session =
        Session { id: new_id(), user_id: user_id.clone(), member_id: Some(member.id.clone()), started_at: now, until };
    let session = match svc.fleet.unlock(space, &equipment.id, session).await {
        Ok(s) => s,
        Err(refusal) => return Ok(denied(refusal.code())),
    };
    // The booking is checked in by the unlock; renew-on-use skills are renewed.
    if let Some(r) = reservation.as_ref().filter(|r| r.status == ReservationStatus::Confirmed) {
        if let Err(err) = bookings::check_in_by_unlock(svc, r, now).await {
            tracing::warn!(error = %escaped(&err), reservation = ?r.id, "kiosk unlock could not check the booking in");
        }
    }
    if let Err(err) = gate::record_use(svc, equipment, &user_id, now).await {
        tracing::warn!(error = %escaped(&err), "certified use not recorded");
    }
    Ok(UnlockAnswer {
        granted: true,
        reason: "granted".into(),
        missing_skills: Vec::new(),
        reservation_id: reservation.map(|r| r.id),
        session_id: Some(session.id),
        until: session.until,
        // Only a grant names the member: a denial on a shared screen tells a passer-by nothing
        // about whose card it was.
        member_name: Some(format!("{} {}", member.first_name, member.last_name).trim().to_string()),
    })
}

/// The answer to a lock at the kiosk.
#[derive(Debug, Serialize, ToSchema)]
pub struct LockAnswer {
    pub locked: bool,
    /// `locked`, or why not: `not_in_use` (no session), `card_required` (this kiosk needs a
    /// card to lock), `not_your_session` (the card is neither the session's nor an admin's).
    pub reason: String,
    pub session: Option<EndedSession>,
}

/// The answer to a bed confirmation at the kiosk.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClearAnswer {
    pub cleared: bool,
    /// `cleared`, or why not: `unknown_card`, `not_awaiting_clear` (the machine does not wait
    /// for its bed).
    pub reason: String,
    /// Who confirmed it (the card holder's user id, or `member:{id}` for a member without an
    /// account) and when, the job whose end left the bed to clear.
    pub confirmation: Option<super::bed_clear::BedCleared>,
}

/// Whether the card's holder may end this session: it is theirs, or they are an active
/// admin of the space.
fn may_end(holder: &MemberRecord, session: &crate::domain::machine::Session) -> bool {
    let own = session.member_id.as_deref() == Some(holder.id.as_str())
        || holder.user_id.as_deref() == Some(session.user_id.as_str());
    let admin = holder.role == MemberRole::MakerspaceAdmin
        && effective_status(holder.status, holder.end_date, Utc::now().date_naive()) == MemberStatus::Active;
    own || admin
}

/// Locks a machine at the kiosk with the card of whoever locks (see the module documentation
/// for whose card may), written to the floor's audit log before it is answered.
pub async fn lock(
    svc: &Services,
    kiosk: &KioskRecord,
    equipment_id: &str,
    card_uid: Option<&str>,
) -> Result<LockAnswer, KioskError> {
    let equipment = served_equipment(svc, kiosk, equipment_id).await?;
    let uid = card_uid.map(normalize_uid).transpose().map_err(Invalid)?;
    let holder = match &uid {
        Some(uid) => {
            not_slowed(svc, kiosk)?;
            card_holder(svc, kiosk, &equipment.id, uid).await?
        }
        None => None,
    };
    let session = svc.fleet.view(&kiosk.makerspace_id, &equipment.id).await.ok().and_then(|v| v.session);
    let refusal = match (&session, &holder) {
        (None, _) => Some("not_in_use"),
        (Some(_), _) if kiosk.any_card_locks => None,
        (Some(_), None) if uid.is_none() => Some("card_required"),
        (Some(s), Some(h)) if may_end(h, s) => None,
        (Some(_), _) => Some("not_your_session"),
    };
    let answer = match (refusal, &session) {
        (None, Some(s)) => {
            let ended_by = format!("kiosk:{}", kiosk.id);
            match svc.fleet.lock(&kiosk.makerspace_id, &equipment.id, Some(s.id.clone()), &ended_by, "locked").await {
                Ok(ended) => LockAnswer { locked: true, reason: "locked".into(), session: Some(ended) },
                Err(_) => LockAnswer { locked: false, reason: "not_in_use".into(), session: None },
            }
        }
        (refusal, _) => LockAnswer { locked: false, reason: refusal.unwrap_or("not_in_use").into(), session: None },
    };
    // The session's member, whether or not it ended: the audit log says whose session the
    // card was presented against.
    let target = answer.session.as_ref().map(|e| &e.session).or(session.as_ref());
    record(
        svc,
        KioskAttempt {
            makerspace_id: kiosk.makerspace_id.clone(),
            kiosk_id: kiosk.id.clone(),
            equipment_id: equipment.id.clone(),
            card_hint: uid.as_deref().map(uid_hint),
            member_id: target.and_then(|s| s.member_id.clone()),
            user_id: target.map(|s| s.user_id.clone()),
            action: "lock".into(),
            granted: answer.locked,
            reason: answer.reason.clone(),
            session_id: target.map(|s| s.id.clone()),
            at: Utc::now(),
            presenter_member_id: holder.as_ref().map(|h| h.id.clone()),
            presenter_user_id: holder.as_ref().and_then(|h| h.user_id.clone()),
        },
    )
    .await?;
    Ok(answer)
}

/// A person at the machine confirms at the kiosk, with their card, that its bed is clear (the
/// card says who: any known card of the space may, as on the dashboard). Written to the
/// floor's audit log (`action` `clear`) before it is answered.
pub async fn clear_bed(
    svc: &Services,
    kiosk: &KioskRecord,
    equipment_id: &str,
    card_uid: &str,
) -> Result<ClearAnswer, KioskError> {
    let equipment = served_equipment(svc, kiosk, equipment_id).await?;
    let uid = normalize_uid(card_uid).map_err(Invalid)?;
    not_slowed(svc, kiosk)?;
    let holder = card_holder(svc, kiosk, &equipment.id, &uid).await?;
    let answer = match &holder {
        None => ClearAnswer { cleared: false, reason: "unknown_card".into(), confirmation: None },
        Some(member) => {
            let by = member.user_id.clone().unwrap_or_else(|| format!("member:{}", member.id));
            match super::bed_clear::confirm(svc, &kiosk.makerspace_id, &equipment.id, &by).await {
                Ok(done) => ClearAnswer { cleared: true, reason: "cleared".into(), confirmation: Some(done) },
                Err(super::bed_clear::BedClearError::NotWaiting) => {
                    ClearAnswer { cleared: false, reason: "not_awaiting_clear".into(), confirmation: None }
                }
                Err(super::bed_clear::BedClearError::UnknownEquipment) => return Err(KioskError::UnknownEquipment),
                Err(super::bed_clear::BedClearError::Store(e)) => return Err(e.into()),
                Err(super::bed_clear::BedClearError::Access(e)) => return Err(e.into()),
            }
        }
    };
    record(
        svc,
        KioskAttempt {
            makerspace_id: kiosk.makerspace_id.clone(),
            kiosk_id: kiosk.id.clone(),
            equipment_id: equipment.id.clone(),
            card_hint: Some(uid_hint(&uid)),
            member_id: holder.as_ref().map(|h| h.id.clone()),
            user_id: holder.as_ref().and_then(|h| h.user_id.clone()),
            action: "clear".into(),
            granted: answer.cleared,
            reason: answer.reason.clone(),
            session_id: None,
            at: Utc::now(),
            presenter_member_id: holder.as_ref().map(|h| h.id.clone()),
            presenter_user_id: holder.as_ref().and_then(|h| h.user_id.clone()),
        },
    )
    .await?;
    Ok(answer)
}
