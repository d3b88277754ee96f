//! The demo's people: a dozen members with cards, the skills the machines need, who is
//! certified for what (Ben is not certified for the laser), and one pending skill request.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

use super::{existing_is_fine, DEMO_ADMIN, DEMO_SPACE};
use crate::config::Secret;
use crate::domain::cards::{hash_uid, normalize_uid, uid_hint};
use crate::domain::members::{MemberRole, MemberStatus};
use crate::domain::skills::{expiry_from, CertificationStatus, RequestStatus, SkillLevel, SkillStatus};
use crate::store::cards::CardRecord;
use crate::store::members::{Activity, MemberRecord};
use crate::store::skills::{CertificationChange, SkillRecord, SkillRequestRecord, UserSkillFilter, UserSkillRecord};
use crate::store::{Store, StoreError};

const PRINTING: &str = "demo-printing";
const RESIN: &str = "demo-resin";
const LASER: &str = "demo-laser-safety";
const CNC: &str = "demo-cnc";

/// The skills: id, name, category, level, the machines that need it.
const SKILLS: [(&str, &str, &str, SkillLevel, &[&str]); 4] = [
    (
        PRINTING,
        "3D printer basics",
        "Fabrication",
        SkillLevel::Beginner,
        &["demo-prusa-1", "demo-prusa-2", "demo-bambu-1"],
    ),
    (RESIN, "Resin printing safety", "Safety", SkillLevel::Intermediate, &["demo-form-1"]),
    (LASER, "Laser safety", "Safety", SkillLevel::Beginner, &["demo-laser-1"]),
    (CNC, "CNC router basics", "Machining", SkillLevel::Intermediate, &["demo-cnc-1"]),
];

/// A demo member: user id (also the end of the member id), first and last name, the card's
/// UID as a reader types it, the skills they are certified for, and what the README says of
/// them.
pub struct DemoMember {
    pub user_id: &'static str,
    pub first_name: &'static str,
    pub last_name: &'static str,
    pub card_uid: &'static str,
    skills: &'static [&'static str],
    pub note: &'static str,
}

/// The demo members and their cards.
pub const DEMO_CARDS: [DemoMember; 12] = [
    member("ada", "Ada", "Byrne", "04A1B2C3D4", &[PRINTING, LASER, CNC], "certified for the laser: unlocks it"),
    member("ben", "Ben", "Okafor", "04B5C6D7E8", &[PRINTING], "no laser safety: refused at the laser"),
    member("chloe", "Chloe", "Martin", "04C1C2C3C4", &[PRINTING, RESIN], "has the Bambu X1C booked now"),
    member("dev", "Dev", "Patel", "04D1D2D3D4", &[PRINTING, LASER], ""),
    member("elena", "Elena", "Rossi", "04E1E2E3E4", &[CNC], "her CNC booking awaits approval"),
    member("farid", "Farid", "Haddad", "04F1F2F3F4", &[PRINTING], "on the waitlist for Prusa MK4 #1"),
    member("grace", "Grace", "Kim", "0471727374", &[RESIN], ""),
    member("hugo", "Hugo", "Lindqvist", "0481828384", &[PRINTING], "asked for CNC router basics"),
    member("ines", "Ines", "Duarte", "0491929394", &[LASER], ""),
    member("jonas", "Jonas", "Weber", "04A2A3A4A5", &[PRINTING], ""),
    member("keiko", "Keiko", "Sato", "04B3B4B5B6", &[PRINTING, CNC], ""),
    member("liam", "Liam", "Walsh", "04C4C5C6C7", &[], "new member, no certification yet"),
];

const fn member(
    user_id: &'static str,
    first_name: &'static str,
    last_name: &'static str,
    card_uid: &'static str,
    skills: &'static [&'static str],
    note: &'static str,
) -> DemoMember {
    DemoMember { user_id, first_name, last_name, card_uid, skills, note }
}

/// The demo's pending skill request: who asks for which skill, and why.
const REQUEST: (&str, &str, &str) = ("hugo", CNC, "I want to mill aluminium parts for my robot arm.");

fn member_id(user_id: &str) -> String {
    format!("demo-member-{user_id}")
}

/// 32 bytes derived from the card key for `purpose` (an HMAC: they do not reveal the key).
pub(super) fn keyed_bytes(key: &Secret, purpose: &str) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.expose().as_bytes()).expect("HMAC accepts keys of any length");
    mac.update(purpose.as_bytes());
    mac.finalize().into_bytes().into()
}

pub(super) async fn seed(store: &Store, card_key: &Secret, now: DateTime<Utc>) -> Result<(), StoreError> {
    for (id, name, category, level, equipment) in SKILLS {
        if store.get_skill(id).await?.is_none() {
            let skill = SkillRecord {
                id: id.into(),
                makerspace_id: DEMO_SPACE.into(),
                name: name.into(),
                category: category.into(),
                level,
                description: Some(format!("Needed for: {}", equipment.join(", "))),
                status: SkillStatus::Active,
                validity_days: Some(365),
                renew_on_use: true,
                created_at: now,
                updated_at: now,
            };
            let equipment: Vec<String> = equipment.iter().map(|e| e.to_string()).collect();
            existing_is_fine(store.insert_skill(&skill, &BTreeSet::new(), &equipment).await)?;
        }
    }
    for m in &DEMO_CARDS {
        seed_member(store, card_key, m, now).await?;
    }
    let (user_id, skill_id, reason) = REQUEST;
    let request_id = "demo-request-1";
    if store.get_skill_request(request_id).await?.is_none() {
        let request = SkillRequestRecord {
            id: request_id.into(),
            user_id: user_id.into(),
            skill_id: skill_id.into(),
            makerspace_id: DEMO_SPACE.into(),
            status: RequestStatus::Pending,
            reason: Some(reason.into()),
            notes: None,
            reviewed_by: None,
            reviewed_at: None,
            created_at: now,
            updated_at: now,
        };
        // Err: the person already has a pending request for it, which will do.
        let _ = store.insert_skill_request(&request).await?;
    }
    Ok(())
}

async fn seed_member(store: &Store, card_key: &Secret, m: &DemoMember, now: DateTime<Utc>) -> Result<(), StoreError> {
    let id = member_id(m.user_id);
    let line = |action: &str, details: serde_json::Value| Activity {
        member_id: id.clone(),
        makerspace_id: DEMO_SPACE.into(),
        action: action.into(),
        actor: DEMO_ADMIN.into(),
        details,
        at: now,
    };
    if store.get_member(DEMO_SPACE, &id).await?.is_none() {
        let record = MemberRecord {
            id: id.clone(),
            makerspace_id: DEMO_SPACE.into(),
            user_id: Some(m.user_id.into()),
            email: format!("{}@demo.makrcave.invalid", m.user_id),
            first_name: m.first_name.into(),
            last_name: m.last_name.into(),
            phone: None,
            role: MemberRole::Member,
            status: MemberStatus::Active,
            plan_id: None,
            start_date: now.date_naive(),
            end_date: None,
            suspension_reason: None,
            notes: Some("Demo member".into()),
            created_at: now,
            updated_at: now,
            deleted_at: None,
        };
        // A member removed by an admin stays removed (their id is taken): that is fine.
        existing_is_fine(store.insert_member(&record, &line("created", json!({"source": "demo"}))).await)?;
    }
    let uid = normalize_uid(m.card_uid).map_err(StoreError::Corrupt)?;
    let uid_hash = hash_uid(card_key.expose().as_bytes(), &uid);
    if store.get_member(DEMO_SPACE, &id).await?.is_some() && store.find_card(DEMO_SPACE, &uid_hash).await?.is_none() {
        let card = CardRecord {
            id: format!("demo-card-{}", m.user_id),
            makerspace_id: DEMO_SPACE.into(),
            member_id: id.clone(),
            uid_hash,
            uid_hint: uid_hint(&uid),
            label: Some("Demo card".into()),
            created_at: now,
            offline_hash: None,
        };
        let details = json!({"card_id": card.id, "uid_hint": card.uid_hint});
        existing_is_fine(store.insert_card(&card, &line("card_added", details)).await)?;
    }
    let held = store
        .list_user_skills(&UserSkillFilter {
            makerspace_id: Some(DEMO_SPACE.into()),
            user_id: Some(m.user_id.into()),
            skill_id: None,
        })
        .await?;
    let missing: Vec<UserSkillRecord> = m
        .skills
        .iter()
        .filter(|skill| !held.iter().any(|h| h.skill_id == **skill))
        .map(|skill| UserSkillRecord {
            id: format!("demo-cert-{}-{skill}", m.user_id),
            user_id: m.user_id.into(),
            skill_id: skill.to_string(),
            makerspace_id: DEMO_SPACE.into(),
            status: CertificationStatus::Certified,
            certified_at: Some(now),
            expires_at: expiry_from(now, Some(365)),
            certified_by: Some(DEMO_ADMIN.into()),
            notes: Some("Demo certification".into()),
            quiz_score: None,
            created_at: now,
            updated_at: now,
        })
        .collect();
    if !missing.is_empty() {
        store.apply_certification_change(&CertificationChange { user_skills: missing, ..Default::default() }).await?;
    }
    Ok(())
}
