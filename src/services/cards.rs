//! Members' cards (RFID/NFC): enrolling and removing them, with a line in the member's
//! activity log, and the front desk's question "whose card is this, and does it work now?".
//! UIDs are stored as keyed hashes; a card of a member who is not active (suspended,
//! expired, pending, removed) does not work, at once.

use chrono::Utc;
use serde_json::json;

use crate::domain::access::Principal;
use crate::domain::cards::{hash_uid, normalize_uid, uid_hint};
use crate::domain::ids::new_id;
use crate::domain::members::{effective_status, grants_access, MemberStatus};
use crate::domain::validate::{optional_text, Invalid};
use crate::store::cards::CardRecord;
use crate::store::StoreError;

use super::access::{people_of, AccessError};
use super::members::{activity, load_member, MemberError};
use super::Services;

#[derive(Debug, thiserror::Error)]
pub enum CardError {
    #[error(transparent)]
    Access(#[from] AccessError),
    #[error(transparent)]
    Member(#[from] MemberError),
    #[error("card not found")]
    NotFound,
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error("this card is already enrolled in the makerspace")]
    AlreadyEnrolled,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Enrolls a card for a member of the space (admins).
pub async fn enroll(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
    member_id: &str,
    uid: &str,
    label: Option<String>,
) -> Result<CardRecord, CardError> {
    people_of(svc, caller, space_id, true).await?;
    let member = load_member(svc, space_id, member_id).await?;
    let normalized = normalize_uid(uid).map_err(Invalid)?;
    let card = CardRecord {
        id: new_id(),
        makerspace_id: space_id.to_string(),
        member_id: member_id.to_string(),
        uid_hash: hash_uid(svc.card_key.expose().as_bytes(), &normalized),
        uid_hint: uid_hint(&normalized),
        label: optional_text("label", label, 100)?,
        created_at: Utc::now(),
        offline_hash: Some(super::bridges::offline_name(svc, space_id, &normalized)),
    };
    let line =
        activity(&member, "card_added", &caller.user_id, json!({ "card_id": card.id, "uid_hint": card.uid_hint }));
    match svc.store.insert_card(&card, &line).await {
        Ok(()) => Ok(card),
        Err(StoreError::Conflict) => Err(CardError::AlreadyEnrolled),
        Err(other) => Err(other.into()),
    }
}

/// A member's cards (anyone who may read the space's people).
pub async fn list(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
    member_id: &str,
) -> Result<Vec<CardRecord>, CardError> {
    people_of(svc, caller, space_id, false).await?;
    load_member(svc, space_id, member_id).await?;
    Ok(svc.store.list_cards(member_id).await?)
}

/// Removes a member's card (admins): it stops working at once.
pub async fn remove(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
    member_id: &str,
    card_id: &str,
) -> Result<(), CardError> {
    people_of(svc, caller, space_id, true).await?;
    let member = load_member(svc, space_id, member_id).await?;
    let line = activity(&member, "card_removed", &caller.user_id, json!({ "card_id": card_id }));
    if svc.store.delete_card(member_id, card_id, &line).await? {
        Ok(())
    } else {
        Err(CardError::NotFound)
    }
}

/// What the front desk learns of a card.
pub struct CardStatus {
    /// The card's member, when the card is enrolled: id, name and effective status.
    pub member: Option<(String, String, MemberStatus)>,
}

impl CardStatus {
    /// Whether the card opens anything now: it is enrolled and its member is active.
    pub fn valid(&self) -> bool {
        self.member.as_ref().is_some_and(|(_, _, status)| grants_access(*status))
    }

    /// Why the card does not work (`unknown_card`, `member_suspended`, ...), if it does not.
    pub fn reason(&self) -> Option<String> {
        match &self.member {
            None => Some("unknown_card".into()),
            Some((_, _, status)) if !grants_access(*status) => Some(format!("member_{}", status.as_str())),
            Some(_) => None,
        }
    }
}

/// Whose card is this, and does it work now?
pub async fn lookup(svc: &Services, caller: &Principal, space_id: &str, uid: &str) -> Result<CardStatus, CardError> {
    people_of(svc, caller, space_id, false).await?;
    let normalized = normalize_uid(uid).map_err(Invalid)?;
    let hash = hash_uid(svc.card_key.expose().as_bytes(), &normalized);
    let Some(card) = svc.store.find_card(space_id, &hash).await? else { return Ok(CardStatus { member: None }) };
    let Some(member) = svc.store.get_member(space_id, &card.member_id).await? else {
        return Ok(CardStatus { member: None });
    };
    let status = effective_status(member.status, member.end_date, Utc::now().date_naive());
    let name = format!("{} {}", member.first_name, member.last_name).trim().to_string();
    Ok(CardStatus { member: Some((member.id, name, status)) })
}
