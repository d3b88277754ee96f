//! Members' lifecycle: joining (by an admin, a CSV import or an accepted invitation),
//! changes, suspension, reactivation, removal and bulk operations, with their side effects.
//! Every change is written with an activity line in the same transaction and announced on
//! the WebSocket as a `member` message (without personal contact data); a member who may no
//! longer use the space loses the machines they have unlocked at once.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use crate::domain::access::Principal;
use crate::domain::ids::new_id;
use crate::domain::members::{effective_status, grants_access, normalize_email, MemberRole, MemberStatus};
use crate::domain::validate::{check_len, dedup, optional_multiline, optional_text, Invalid};
use crate::store::members::{Activity, MemberRecord};
use crate::store::StoreError;

use super::access::{people_of, AccessError};
use super::{live, sessions, Services};

/// Most members one bulk operation may name.
const MAX_BULK: usize = 500;

#[derive(Debug, thiserror::Error)]
pub enum MemberError {
    #[error(transparent)]
    Access(#[from] AccessError),
    #[error("member not found")]
    NotFound,
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// The person is already a member of the space: that member's id, when found.
    #[error("this person is already a member of the makerspace")]
    Duplicate { existing_member_id: Option<String> },
    /// The member is not in a state that allows the change (already suspended, ...).
    #[error("member is {0}")]
    InvalidStatus(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MemberResponse {
    pub id: String,
    pub makerspace_id: String,
    pub user_id: Option<String>,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub full_name: String,
    pub phone: Option<String>,
    pub role: MemberRole,
    /// What counts today (an active membership past its end date is `expired`).
    pub status: MemberStatus,
    pub plan_id: Option<String>,
    pub start_date: NaiveDate,
    pub end_date: Option<NaiveDate>,
    pub suspension_reason: Option<String>,
    pub notes: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl MemberResponse {
    pub fn new(m: MemberRecord) -> Self {
        let status = effective_status(m.status, m.end_date, Utc::now().date_naive());
        MemberResponse {
            full_name: full_name(&m),
            status,
            id: m.id,
            makerspace_id: m.makerspace_id,
            user_id: m.user_id,
            email: m.email,
            first_name: m.first_name,
            last_name: m.last_name,
            phone: m.phone,
            role: m.role,
            plan_id: m.plan_id,
            start_date: m.start_date,
            end_date: m.end_date,
            suspension_reason: m.suspension_reason,
            notes: m.notes,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

pub fn full_name(m: &MemberRecord) -> String {
    format!("{} {}", m.first_name, m.last_name).trim().to_string()
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberCreate {
    #[schema(format = Email, max_length = 254)]
    pub email: String,
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    pub first_name: String,
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    pub last_name: String,
    #[schema(max_length = 40, pattern = r"^\P{Cc}*$")]
    pub phone: Option<String>,
    /// member (default), service_provider or makerspace_admin.
    pub role: Option<MemberRole>,
    /// active (default) or pending.
    pub status: Option<MemberStatus>,
    #[schema(pattern = "^[a-z0-9][a-z0-9-]{0,63}$")]
    pub plan_id: Option<String>,
    /// Default: today.
    pub start_date: Option<NaiveDate>,
    pub end_date: Option<NaiveDate>,
    /// The person's identity (JWT `sub`), when known.
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub user_id: Option<String>,
    #[schema(max_length = 5000, pattern = r"^[\P{Cc}\t\n]*$")]
    pub notes: Option<String>,
}

/// Fields to change; absent fields stay. Status changes go through suspend and reactivate.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberUpdate {
    #[schema(format = Email, max_length = 254)]
    pub email: Option<String>,
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    pub first_name: Option<String>,
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    pub last_name: Option<String>,
    #[schema(max_length = 40, pattern = r"^\P{Cc}*$")]
    pub phone: Option<String>,
    pub role: Option<MemberRole>,
    #[schema(pattern = "^[a-z0-9][a-z0-9-]{0,63}$")]
    pub plan_id: Option<String>,
    pub start_date: Option<NaiveDate>,
    pub end_date: Option<NaiveDate>,
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub user_id: Option<String>,
    #[schema(max_length = 5000, pattern = r"^[\P{Cc}\t\n]*$")]
    pub notes: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BulkOperation {
    Suspend,
    Reactivate,
    ChangePlan,
    Delete,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkRequest {
    pub operation: BulkOperation,
    /// Repeats are dropped: each member is handled once.
    #[schema(min_items = 1, max_items = 500)]
    pub member_ids: Vec<String>,
    /// Required for suspend (1 to 1000 characters); ignored otherwise.
    pub reason: Option<String>,
    /// Required for change_plan (`null` takes members off any plan); ignored otherwise.
    pub plan_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BulkFailure {
    pub member_id: String,
    pub reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BulkResult {
    pub succeeded: Vec<String>,
    pub failed: Vec<BulkFailure>,
}

/// Loads a live member of the space.
pub async fn load_member(svc: &Services, space_id: &str, member_id: &str) -> Result<MemberRecord, MemberError> {
    svc.store.get_member(space_id, member_id).await?.ok_or(MemberError::NotFound)
}

/// Checks that a plan belongs to the makerspace and is offered (the request is wrong
/// otherwise).
pub async fn check_plan(svc: &Services, space_id: &str, plan_id: &str) -> Result<(), MemberError> {
    match svc.store.get_plan(space_id, plan_id).await? {
        Some((plan, _)) if plan.is_active => Ok(()),
        Some(_) => Err(Invalid(format!("plan {plan_id:?} is no longer offered")).into()),
        None => Err(Invalid(format!("unknown plan {plan_id:?} in this makerspace")).into()),
    }
}

/// An activity line about a member.
pub fn activity(member: &MemberRecord, action: &str, actor: &str, details: serde_json::Value) -> Activity {
    Activity {
        member_id: member.id.clone(),
        makerspace_id: member.makerspace_id.clone(),
        action: action.to_string(),
        actor: actor.to_string(),
        details,
        at: Utc::now(),
    }
}

/// Tells WebSocket clients of the space that a member changed (no email or phone: every
/// member of the space may be watching).
pub fn announce(svc: &Services, m: &MemberRecord, removed: bool) {
    let status = effective_status(m.status, m.end_date, Utc::now().date_naive());
    let message = json!({
        "type": "member",
        "member": {
            "member_id": m.id, "makerspace_id": m.makerspace_id, "user_id": m.user_id, "name": full_name(m),
            "role": m.role, "status": status, "removed": removed,
        }
    });
    svc.hub.publish_event(&m.makerspace_id, &Arc::from(message.to_string()));
}

fn check_dates(start: NaiveDate, end: Option<NaiveDate>) -> Result<(), Invalid> {
    match end {
        Some(end) if end < start => Err(Invalid::new("end_date must not be before start_date")),
        _ => Ok(()),
    }
}

fn check_user_id(user_id: &Option<String>) -> Result<(), Invalid> {
    match user_id {
        Some(u) => check_len("user_id", u, 200),
        None => Ok(()),
    }
}

/// Turns a store conflict on insert/update into the duplicate answer, with the existing id.
async fn duplicate(svc: &Services, m: &MemberRecord) -> MemberError {
    let by_email = svc.store.find_member_by_email(&m.makerspace_id, &m.email).await.ok().flatten();
    let existing = match (by_email, &m.user_id) {
        (Some(e), _) if e.id != m.id => Some(e),
        (_, Some(user)) => svc.store.find_member_by_user(&m.makerspace_id, user).await.ok().flatten(),
        _ => None,
    };
    MemberError::Duplicate { existing_member_id: existing.map(|e| e.id) }
}

/// Validates a new member and builds its record (shared by create, CSV import and invites).
pub async fn new_member(svc: &Services, space_id: &str, body: MemberCreate) -> Result<MemberRecord, MemberError> {
    let email = normalize_email(&body.email).map_err(Invalid)?;
    check_len("first_name", &body.first_name, 100)?;
    check_len("last_name", &body.last_name, 100)?;
    if let Some(plan) = &body.plan_id {
        check_plan(svc, space_id, plan).await?;
    }
    let status = body.status.unwrap_or(MemberStatus::Active);
    if !matches!(status, MemberStatus::Active | MemberStatus::Pending) {
        return Err(Invalid::new("a new member is active or pending").into());
    }
    let start_date = body.start_date.unwrap_or_else(|| Utc::now().date_naive());
    check_dates(start_date, body.end_date)?;
    check_user_id(&body.user_id)?;
    let now = Utc::now();
    Ok(MemberRecord {
        id: new_id(),
        makerspace_id: space_id.to_string(),
        user_id: body.user_id,
        email,
        first_name: body.first_name.trim().to_string(),
        last_name: body.last_name.trim().to_string(),
        phone: optional_text("phone", body.phone, 40)?,
        role: body.role.unwrap_or(MemberRole::Member),
        status,
        plan_id: body.plan_id,
        start_date,
        end_date: body.end_date,
        suspension_reason: None,
        notes: optional_multiline("notes", body.notes, 5000)?,
        created_at: now,
        updated_at: now,
        deleted_at: None,
    })
}

/// Stores a new member (a duplicate names the existing member) and announces it.
pub async fn insert(svc: &Services, member: &MemberRecord, action: &str, actor: &str) -> Result<(), MemberError> {
    let line = activity(member, action, actor, json!({ "role": member.role, "plan_id": member.plan_id }));
    match svc.store.insert_member(member, &line).await {
        Ok(()) => {
            announce(svc, member, false);
            Ok(())
        }
        Err(StoreError::Conflict) => Err(duplicate(svc, member).await),
        Err(other) => Err(other.into()),
    }
}

/// An admin adds a member to the space.
pub async fn create(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
    body: MemberCreate,
) -> Result<MemberRecord, MemberError> {
    people_of(svc, caller, space_id, true).await?;
    let member = new_member(svc, space_id, body).await?;
    insert(svc, &member, "created", &caller.user_id).await?;
    Ok(member)
}

/// Writes a member back (not found if it vanished meanwhile, a duplicate names the other
/// member) and announces it. A member who may no longer use the space loses the machines
/// they have unlocked.
pub async fn save(svc: &Services, m: &MemberRecord, line: Activity) -> Result<(), MemberError> {
    match svc.store.update_member(m, &line).await {
        Ok(true) => {
            announce(svc, m, m.deleted_at.is_some());
            let status = effective_status(m.status, m.end_date, Utc::now().date_naive());
            if let (Some(user), true) = (&m.user_id, m.deleted_at.is_some() || !grants_access(status)) {
                // The live feed goes first: nothing published from here on reaches them.
                live::membership_lost(svc, &m.makerspace_id, user, live::reason(status, m.deleted_at.is_some()));
                let reason = if m.deleted_at.is_some() {
                    "member_removed".to_string()
                } else {
                    format!("member_{}", status.as_str())
                };
                sessions::end_sessions_of(svc, &m.makerspace_id, user, None, &reason).await;
            }
            Ok(())
        }
        Ok(false) => Err(MemberError::NotFound),
        Err(StoreError::Conflict) => Err(duplicate(svc, m).await),
        Err(other) => Err(other.into()),
    }
}

/// An admin changes a member; absent fields stay.
pub async fn update(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
    member_id: &str,
    body: MemberUpdate,
) -> Result<MemberRecord, MemberError> {
    people_of(svc, caller, space_id, true).await?;
    let mut m = load_member(svc, space_id, member_id).await?;
    let mut changed = serde_json::Map::new();
    if let Some(email) = body.email {
        m.email = normalize_email(&email).map_err(Invalid)?;
        changed.insert("email".into(), json!(m.email));
    }
    if let Some(first) = body.first_name {
        check_len("first_name", &first, 100)?;
        m.first_name = first.trim().to_string();
        changed.insert("first_name".into(), json!(m.first_name));
    }
    if let Some(last) = body.last_name {
        check_len("last_name", &last, 100)?;
        m.last_name = last.trim().to_string();
        changed.insert("last_name".into(), json!(m.last_name));
    }
    if body.phone.is_some() {
        m.phone = optional_text("phone", body.phone, 40)?;
        changed.insert("phone".into(), json!(m.phone));
    }
    if let Some(role) = body.role {
        m.role = role;
        changed.insert("role".into(), json!(role));
    }
    if let Some(plan) = body.plan_id {
        check_plan(svc, space_id, &plan).await?;
        m.plan_id = Some(plan);
        changed.insert("plan_id".into(), json!(m.plan_id));
    }
    if let Some(start) = body.start_date {
        m.start_date = start;
        changed.insert("start_date".into(), json!(start));
    }
    if body.end_date.is_some() {
        m.end_date = body.end_date;
        changed.insert("end_date".into(), json!(m.end_date));
    }
    check_dates(m.start_date, m.end_date)?;
    if body.user_id.is_some() {
        check_user_id(&body.user_id)?;
        m.user_id = body.user_id;
        changed.insert("user_id".into(), json!(m.user_id));
    }
    if body.notes.is_some() {
        m.notes = optional_multiline("notes", body.notes, 5000)?;
        changed.insert("notes".into(), json!(true));
    }
    m.updated_at = Utc::now();
    save(svc, &m, activity(&m, "updated", &caller.user_id, serde_json::Value::Object(changed))).await?;
    Ok(m)
}

/// The status changes: shared by the single and the bulk operations.
fn suspend_record(m: &mut MemberRecord, reason: &str) -> Result<(), String> {
    if m.status == MemberStatus::Suspended {
        return Err("already suspended".into());
    }
    m.status = MemberStatus::Suspended;
    m.suspension_reason = Some(reason.to_string());
    m.updated_at = Utc::now();
    Ok(())
}

fn reactivate_record(m: &mut MemberRecord) -> Result<(), String> {
    if m.status == MemberStatus::Active {
        return Err("already active".into());
    }
    m.status = MemberStatus::Active;
    m.suspension_reason = None;
    m.updated_at = Utc::now();
    Ok(())
}

/// Suspends a member, with a reason: their cards stop and their sessions end at once.
pub async fn suspend(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
    member_id: &str,
    reason: &str,
) -> Result<MemberRecord, MemberError> {
    people_of(svc, caller, space_id, true).await?;
    check_len("reason", reason, 1000)?;
    let mut m = load_member(svc, space_id, member_id).await?;
    suspend_record(&mut m, reason.trim()).map_err(MemberError::InvalidStatus)?;
    save(svc, &m, activity(&m, "suspended", &caller.user_id, json!({ "reason": reason.trim() }))).await?;
    Ok(m)
}

/// Reactivates a suspended (or pending, expired) member.
pub async fn reactivate(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
    member_id: &str,
) -> Result<MemberRecord, MemberError> {
    people_of(svc, caller, space_id, true).await?;
    let mut m = load_member(svc, space_id, member_id).await?;
    reactivate_record(&mut m).map_err(MemberError::InvalidStatus)?;
    save(svc, &m, activity(&m, "reactivated", &caller.user_id, json!({}))).await?;
    Ok(m)
}

/// Removes a member: kept (soft-deleted) for the audit trail; their cards are revoked and
/// their sessions end.
pub async fn remove(svc: &Services, caller: &Principal, space_id: &str, member_id: &str) -> Result<(), MemberError> {
    people_of(svc, caller, space_id, true).await?;
    let mut m = load_member(svc, space_id, member_id).await?;
    m.deleted_at = Some(Utc::now());
    m.updated_at = Utc::now();
    save(svc, &m, activity(&m, "deleted", &caller.user_id, json!({}))).await
}

/// One operation on many members. The whole request is checked before any member changes;
/// then each member succeeds or fails on its own.
pub async fn bulk(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
    body: BulkRequest,
) -> Result<BulkResult, MemberError> {
    people_of(svc, caller, space_id, true).await?;
    if body.member_ids.is_empty() || body.member_ids.len() > MAX_BULK {
        return Err(Invalid(format!("name 1 to {MAX_BULK} member_ids")).into());
    }
    let reason = match body.operation {
        BulkOperation::Suspend => {
            let reason = body.reason.as_deref().unwrap_or_default();
            check_len("reason", reason, 1000)?;
            Some(reason.trim().to_string())
        }
        _ => None,
    };
    if body.operation == BulkOperation::ChangePlan {
        if let Some(plan) = &body.plan_id {
            check_plan(svc, space_id, plan).await?;
        }
    }
    let mut result = BulkResult { succeeded: Vec::new(), failed: Vec::new() };
    for member_id in dedup(body.member_ids) {
        let fail = |reason: String| BulkFailure { member_id: member_id.clone(), reason };
        let mut m = match svc.store.get_member(space_id, &member_id).await? {
            Some(m) => m,
            None => {
                result.failed.push(fail("member not found".into()));
                continue;
            }
        };
        let (outcome, action, details) = match body.operation {
            BulkOperation::Suspend => {
                let reason = reason.clone().unwrap_or_default();
                (suspend_record(&mut m, &reason), "suspended", json!({ "reason": reason, "bulk": true }))
            }
            BulkOperation::Reactivate => (reactivate_record(&mut m), "reactivated", json!({ "bulk": true })),
            BulkOperation::ChangePlan => {
                m.plan_id = body.plan_id.clone();
                m.updated_at = Utc::now();
                (Ok(()), "plan_changed", json!({ "plan_id": body.plan_id, "bulk": true }))
            }
            BulkOperation::Delete => {
                m.deleted_at = Some(Utc::now());
                m.updated_at = Utc::now();
                (Ok(()), "deleted", json!({ "bulk": true }))
            }
        };
        if let Err(why) = outcome {
            result.failed.push(fail(why));
            continue;
        }
        match save(svc, &m, activity(&m, action, &caller.user_id, details)).await {
            Ok(()) => result.succeeded.push(member_id),
            Err(e) => result.failed.push(fail(e.to_string())),
        }
    }
    Ok(result)
}
