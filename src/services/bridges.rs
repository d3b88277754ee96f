//! What a makrcave-bridge needs from makrcave besides the kiosk's unlock and lock: the signed
//! offline allowlist of the cards allowed on its machines, the files of the jobs sent to them,
//! and the audit rows of taps it decided while makrcave was away.
//!
//! A bridge is a kiosk device (its token, its makerspace, optionally its machines).

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use chrono::{Duration, NaiveTime, Utc};

use crate::domain::allowlist::{self, Entry, Payload, SignedAllowlist};
use crate::domain::cards::{hash_uid, normalize_uid, uid_hint};
use crate::domain::job_lifecycle::JobStatus;
use crate::domain::members::{effective_status, MemberStatus};
use crate::protocols::generic::OfflineTap;
use crate::store::equipment::{EquipmentFilter, EquipmentRecord};
use crate::store::jobs::JobRecord;
use crate::store::kiosks::{KioskAttempt, KioskRecord};
use crate::store::StoreError;

use super::gate::{self, SpaceRules};
use super::kiosk::KioskError;
use super::Services;

/// How long a list lets cards in offline. Bridges refresh it every few minutes while online;
/// a bridge that has been cut off for a day lets nobody in offline any more.
pub const LIST_VALIDITY: Duration = Duration::hours(24);

/// The machines a kiosk serves: the listed ones, or all of its makerspace.
async fn served_machines(svc: &Services, kiosk: &KioskRecord) -> Result<Vec<EquipmentRecord>, StoreError> {
    let filter = EquipmentFilter { makerspace_id: Some(kiosk.makerspace_id.clone()), kind: None };
    let all = svc.store.list_equipment(&filter).await?;
    Ok(all.into_iter().filter(|e| kiosk.equipment_ids.is_empty() || kiosk.equipment_ids.contains(&e.id)).collect())
}

/// The signed allowlist for a kiosk: every card the server can name offline (see
/// `domain::allowlist`) whose member, active now, passes the gate of at least one of its
/// machines, each until the first of: the list's expiry, the membership's end, the expiry of
/// the certifications the machine needs.
pub async fn allowlist(svc: &Services, kiosk: &KioskRecord) -> Result<SignedAllowlist, KioskError> {
    let now = Utc::now();
    let list_expires = now + LIST_VALIDITY;
    let space = &kiosk.makerspace_id;
    let machines = served_machines(svc, kiosk).await?;
    let rules = SpaceRules::load(svc, space).await?;
    let mut entries = Vec::new();
    for (member_id, card) in svc.store.offline_cards(space).await? {
        let Some(member) = svc.store.get_member(space, &member_id).await? else { continue };
        if effective_status(member.status, member.end_date, now.date_naive()) != MemberStatus::Active {
            continue;
        }
        // The membership lasts through its end date.
        let membership_ends = member.end_date.and_then(|d| d.succ_opt()).map(|d| d.and_time(NaiveTime::MIN).and_utc());
        let user_id = member.user_id.clone().unwrap_or_else(|| format!("member:{}", member.id));
        let mut equipment_ids = Vec::new();
        let mut expires_at = membership_ends.map_or(list_expires, |end| end.min(list_expires));
        for machine in &machines {
            if let Some(until) = gate::allowed_until(svc, &rules, machine, &user_id, MemberStatus::Active, now).await? {
                equipment_ids.push(machine.id.clone());
                if let Some(until) = until {
                    expires_at = expires_at.min(until);
                }
            }
        }
        if !equipment_ids.is_empty() {
            entries.push(Entry { card, member_id, equipment_ids, expires_at });
        }
    }
    let card_key = svc.card_key.expose().as_bytes();
    let payload = Payload {
        version: allowlist::VERSION,
        makerspace_id: space.clone(),
        kiosk_id: kiosk.id.clone(),
        issued_at: now,
        expires_at: list_expires,
        card_key: BASE64.encode(allowlist::allowlist_card_key(card_key, space)),
        entries,
    };
    Ok(allowlist::sign(card_key, &payload))
}

/// The public key bridges of a makerspace verify its allowlists with (base64, Ed25519).
pub fn public_key(svc: &Services, makerspace_id: &str) -> String {
    allowlist::public_key(svc.card_key.expose().as_bytes(), makerspace_id)
}

/// Remembers the offline name of a card the server just saw, so that the next allowlists
/// carry it.
pub async fn learn_card(svc: &Services, makerspace_id: &str, normalized_uid: &str) {
    let offline = offline_name(svc, makerspace_id, normalized_uid);
    let stored = hash_uid(svc.card_key.expose().as_bytes(), normalized_uid);
    if let Err(err) = svc.store.learn_offline_hash(makerspace_id, &stored, &offline).await {
        tracing::warn!(error = %err, "a card's offline allowlist name was not stored");
    }
}

/// The offline allowlist name of a card being enrolled.
pub fn offline_name(svc: &Services, makerspace_id: &str, normalized_uid: &str) -> String {
    let key = svc.card_key.expose().as_bytes();
    allowlist::offline_card_hash(&allowlist::allowlist_card_key(key, makerspace_id), normalized_uid)
}

/// The job whose file a kiosk (a bridge) may fetch: sent to, or running on, one of its
/// machines. Anything else is not found.
pub async fn job_for_device(svc: &Services, kiosk: &KioskRecord, job_id: &str) -> Result<JobRecord, KioskError> {
    let job = svc.store.get_job(&kiosk.makerspace_id, job_id).await?;
    let on_its_machine = |j: &JobRecord| {
        j.equipment_id.as_ref().is_some_and(|e| kiosk.equipment_ids.is_empty() || kiosk.equipment_ids.contains(e))
    };
    let in_flight = |j: &JobRecord| matches!(j.status, JobStatus::Sending | JobStatus::Printing | JobStatus::Paused);
    match job {
        Some(j) if on_its_machine(&j) && in_flight(&j) => Ok(j),
        _ => Err(KioskError::UnknownJob),
    }
}

/// Writes an offline tap to the floor's audit log (kiosk `bridge:{equipment}`, reason
/// `offline_{reason}`), once per tap id. Answers whether it was new.
pub async fn record_offline_tap(
    svc: &Services,
    makerspace_id: &str,
    equipment_id: &str,
    tap: &OfflineTap,
) -> Result<bool, StoreError> {
    let Ok(uid) = normalize_uid(&tap.card_uid) else { return Ok(false) };
    if !matches!(tap.action.as_str(), "unlock" | "lock") || tap.id.is_empty() || tap.id.len() > 64 {
        return Ok(false);
    }
    let member = svc.store.member_by_card(makerspace_id, &hash_uid(svc.card_key.expose().as_bytes(), &uid)).await?;
    let (member_id, user_id) = member.map(|m| (Some(m.id), m.user_id)).unwrap_or((None, None));
    let attempt = KioskAttempt {
        makerspace_id: makerspace_id.to_string(),
        kiosk_id: format!("bridge:{equipment_id}"),
        equipment_id: equipment_id.to_string(),
        card_hint: Some(uid_hint(&uid)),
        member_id: member_id.clone(),
        user_id: user_id.clone(),
        action: tap.action.clone(),
        granted: tap.granted,
        reason: format!("offline_{}", tap.reason.chars().take(40).collect::<String>()),
        session_id: None,
        at: tap.at,
        presenter_member_id: member_id,
        presenter_user_id: user_id,
    };
    svc.store.record_offline_tap(&attempt, &tap.id).await
}
