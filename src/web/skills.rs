//! `/api/v1/skills`: skills, people's certifications, certification requests, the skill
//! audit log and the equipment access checks (the gate of [`crate::domain::skills`]).
//!
//! Who may do what: a makerspace_admin of the skill's space and super_admin manage skills,
//! grant, revoke and decide requests (and may force a grant past missing prerequisites, with
//! a reason); `admin` reads everything; people of the space read its skills, see their own
//! certifications, requests and audit lines, and request skills for themselves. Another
//! space's things answer 404.
//!
//! Which skills a machine needs is the equipment's `skill_requirements` list (skill ids), the
//! one source of truth: a skill's `equipment_ids` add the skill to those lists.
//!
//! The hot path (an access check, a kiosk's certified use) reads certifications from
//! [`CertificationCache`]; every write to certifications or skills invalidates it. Expiry is
//! judged at check time by the pure gate, never cached.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use dashmap::DashMap;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::domain::access::{Decision, Principal, Role};
use crate::domain::ids::{new_id, validate_id};
use crate::domain::members::{effective_status, MemberStatus};
use crate::domain::skills::{
    check_access, effective_certification_status, expiry_from, find_cycle, missing_prerequisites, with_prerequisites,
    AccessDecision, Certification, CertificationStatus, MembershipProblem, Prerequisites, RequestStatus, SkillLevel,
    SkillStatus, DEFAULT_VALIDITY_DAYS, MAX_VALIDITY_DAYS,
};
use crate::store::cache::SkillCatalog;
use crate::store::equipment::{EquipmentFilter, EquipmentRecord};
use crate::store::skills::{
    AuditFilter, AuditRecord, CertificationChange, Decision as RequestDecision, RequestFilter, SkillFilter,
    SkillRecord, SkillRequestRecord, UserSkillFilter, UserSkillRecord,
};
use crate::store::{Store, StoreError};
use crate::web::auth::Caller;
use crate::web::error::ApiError;
use crate::web::validate::{check_len, optional_text};
use crate::web::AppState;

// ---------------------------------------------------------------------------------------------
// The certification cache

/// Certifications of a person in a makerspace, for the hot path. Filled on first use;
/// invalidated on every change. A fill that raced with an invalidation is not kept.
#[derive(Default)]
pub struct CertificationCache {
    entries: DashMap<(String, String), Arc<Vec<Certification>>>,
    generation: AtomicU64,
}

impl CertificationCache {
    pub fn new() -> CertificationCache {
        CertificationCache::default()
    }

    /// The certifications of `user_id` in `makerspace_id`, from the cache or the database.
    pub async fn get(
        &self,
        store: &Store,
        makerspace_id: &str,
        user_id: &str,
    ) -> Result<Arc<Vec<Certification>>, StoreError> {
        let key = (makerspace_id.to_string(), user_id.to_string());
        if let Some(hit) = self.entries.get(&key) {
            return Ok(hit.clone());
        }
        let generation = self.generation.load(Ordering::SeqCst);
        let rows = store
            .list_user_skills(&UserSkillFilter {
                makerspace_id: Some(makerspace_id.to_string()),
                user_id: Some(user_id.to_string()),
                skill_id: None,
            })
            .await?;
        let certifications: Arc<Vec<Certification>> = Arc::new(
            rows.into_iter()
                .map(|r| Certification { skill_id: r.skill_id, status: r.status, expires_at: r.expires_at })
                .collect(),
        );
        if self.generation.load(Ordering::SeqCst) == generation {
            self.entries.insert(key, certifications.clone());
        }
        Ok(certifications)
    }

    /// Forgets one person's certifications in one makerspace.
    pub fn invalidate(&self, makerspace_id: &str, user_id: &str) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.entries.remove(&(makerspace_id.to_string(), user_id.to_string()));
    }

    /// Forgets every cached certification of a makerspace (a skill changed).
    pub fn invalidate_space(&self, makerspace_id: &str) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.entries.retain(|(space, _), _| space != makerspace_id);
    }

    /// Whether an entry is cached (for tests and metrics).
    pub fn contains(&self, makerspace_id: &str, user_id: &str) -> bool {
        self.entries.contains_key(&(makerspace_id.to_string(), user_id.to_string()))
    }
}

// ---------------------------------------------------------------------------------------------
// Shapes

#[derive(Debug, Serialize, ToSchema)]
pub struct SkillResponse {
    pub id: String,
    pub makerspace_id: String,
    pub name: String,
    pub category: String,
    pub level: SkillLevel,
    pub description: Option<String>,
    pub status: SkillStatus,
    /// Days a certification lasts.
    pub certification_validity_days: Option<i64>,
    /// A certified use of a machine that needs this skill extends the certification.
    pub renew_on_use: bool,
    pub prerequisite_ids: Vec<String>,
    /// Equipment whose `skill_requirements` name this skill.
    pub equipment_ids: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl SkillResponse {
    fn new(s: SkillRecord, graph: &Prerequisites, equipment: &[EquipmentRecord]) -> Self {
        SkillResponse {
            prerequisite_ids: graph.get(&s.id).map(|p| p.iter().cloned().collect()).unwrap_or_default(),
            equipment_ids: equipment
                .iter()
                .filter(|e| e.makerspace_id == s.makerspace_id && e.skill_requirements.contains(&s.id))
                .map(|e| e.id.clone())
                .collect(),
            id: s.id,
            makerspace_id: s.makerspace_id,
            name: s.name,
            category: s.category,
            level: s.level,
            description: s.description,
            status: s.status,
            certification_validity_days: s.validity_days,
            renew_on_use: s.renew_on_use,
            created_at: s.created_at,
            updated_at: s.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SkillCreate {
    /// Optional client-chosen id (`[a-z0-9][a-z0-9-]{0,63}`, e.g. `skill-laser-safety`).
    pub id: Option<String>,
    pub name: String,
    pub category: String,
    pub level: SkillLevel,
    pub description: Option<String>,
    pub makerspace_id: String,
    /// `active` (default) or `inactive`.
    pub status: Option<SkillStatus>,
    /// Skills to hold before this one can be granted.
    pub prerequisite_ids: Option<Vec<String>>,
    /// Equipment of the space that needs this skill.
    pub equipment_ids: Option<Vec<String>>,
    /// 1 to 3650 [default: 365].
    pub certification_validity_days: Option<i64>,
    /// [default: false]
    pub renew_on_use: Option<bool>,
}

/// Fields to change; absent fields stay. `prerequisite_ids` replaces the list;
/// `equipment_ids` adds the skill to more equipment.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SkillUpdate {
    pub name: Option<String>,
    pub category: Option<String>,
    pub level: Option<SkillLevel>,
    pub description: Option<String>,
    pub status: Option<SkillStatus>,
    pub prerequisite_ids: Option<Vec<String>>,
    pub equipment_ids: Option<Vec<String>>,
    pub certification_validity_days: Option<i64>,
    pub renew_on_use: Option<bool>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SkillListQuery {
    pub makerspace_id: Option<String>,
    pub category: Option<String>,
    pub level: Option<SkillLevel>,
    pub status: Option<SkillStatus>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserSkillResponse {
    pub id: String,
    pub user_id: String,
    pub skill_id: String,
    pub skill_name: String,
    pub skill_level: SkillLevel,
    pub category: String,
    pub makerspace_id: String,
    /// As it counts now: a certification past its expiry is `expired`.
    pub status: CertificationStatus,
    pub certified_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub certified_by: Option<String>,
    pub notes: Option<String>,
    pub quiz_score: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl UserSkillResponse {
    fn new(u: UserSkillRecord, skill: &SkillRecord, now: DateTime<Utc>) -> Self {
        UserSkillResponse {
            status: effective_certification_status(u.status, u.expires_at, now),
            skill_name: skill.name.clone(),
            skill_level: skill.level,
            category: skill.category.clone(),
            id: u.id,
            user_id: u.user_id,
            skill_id: u.skill_id,
            makerspace_id: u.makerspace_id,
            certified_at: u.certified_at,
            expires_at: u.expires_at,
            certified_by: u.certified_by,
            notes: u.notes,
            quiz_score: u.quiz_score,
            created_at: u.created_at,
            updated_at: u.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantRequest {
    pub user_id: String,
    pub skill_id: String,
    /// `certified` (default) or `pending`.
    pub status: Option<CertificationStatus>,
    pub notes: Option<String>,
    /// At most 10 characters, e.g. `95%`.
    pub quiz_score: Option<String>,
    /// Grant although prerequisites are not certified (an override, audited).
    pub force: Option<bool>,
    /// Why: required with `force`.
    pub reason: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct UserSkillQuery {
    pub user_id: Option<String>,
    pub status: Option<CertificationStatus>,
    pub makerspace_id: Option<String>,
    pub skill_id: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RevokeQuery {
    pub reason: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SkillRequestResponse {
    pub id: String,
    pub user_id: String,
    pub skill_id: String,
    pub makerspace_id: String,
    pub status: RequestStatus,
    pub reason: Option<String>,
    pub notes: Option<String>,
    pub reviewed_by: Option<String>,
    pub reviewed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The certification an approval granted.
    pub user_skill_id: Option<String>,
}

impl SkillRequestResponse {
    fn new(r: SkillRequestRecord, user_skill_id: Option<String>) -> Self {
        SkillRequestResponse {
            id: r.id,
            user_id: r.user_id,
            skill_id: r.skill_id,
            makerspace_id: r.makerspace_id,
            status: r.status,
            reason: r.reason,
            notes: r.notes,
            reviewed_by: r.reviewed_by,
            reviewed_at: r.reviewed_at,
            created_at: r.created_at,
            updated_at: r.updated_at,
            user_skill_id,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SkillRequestCreate {
    pub skill_id: String,
    pub reason: Option<String>,
    pub notes: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SkillRequestDecision {
    /// `approved` or `rejected`.
    pub status: RequestStatus,
    pub notes: Option<String>,
    /// Approve although prerequisites are not certified (an override, audited).
    pub force: Option<bool>,
    /// Why: required with `force`.
    pub reason: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RequestListQuery {
    pub makerspace_id: Option<String>,
    pub user_id: Option<String>,
    pub status: Option<RequestStatus>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EquipmentAccess {
    pub equipment_id: String,
    pub equipment_name: String,
    pub makerspace_id: String,
    pub can_access: bool,
    /// Names of the needed skills the person holds.
    pub user_skills: Vec<String>,
    /// Names of every needed skill (required, and their prerequisites) not certified and
    /// unexpired at the instant checked.
    pub missing_skills: Vec<String>,
    pub missing_skill_ids: Vec<String>,
    /// False when the person's membership does not grant access.
    pub membership_ok: bool,
    pub reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AccessCheckResponse {
    pub user_id: String,
    pub checked_at: DateTime<Utc>,
    #[serde(flatten)]
    pub access: EquipmentAccess,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AccessSummary {
    pub total_equipment: usize,
    pub accessible_equipment: usize,
    /// Percent, one decimal.
    pub access_percentage: f64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BulkAccessResponse {
    pub user_id: String,
    pub checked_at: DateTime<Utc>,
    pub equipment_access: Vec<EquipmentAccess>,
    pub summary: AccessSummary,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AccessQuery {
    /// Whose access [default: the caller].
    pub user_id: Option<String>,
    /// The instant to judge, RFC 3339 [default: now].
    pub at: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct BulkAccessQuery {
    pub user_id: Option<String>,
    /// [default: every makerspace the caller can read]
    pub makerspace_id: Option<String>,
    pub at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RequiredSkill {
    pub skill_id: String,
    /// The id itself when no such skill exists (nobody can then hold it).
    pub skill_name: String,
    pub skill_level: Option<SkillLevel>,
    pub required_level: Option<SkillLevel>,
    pub category: Option<String>,
    /// True for the equipment's own requirements; false for a prerequisite of one of them
    /// (needed as well).
    pub is_required: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EquipmentRequirements {
    pub equipment_id: String,
    pub equipment_name: String,
    pub makerspace_id: String,
    pub required_skills: Vec<RequiredSkill>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SpaceQuery {
    pub makerspace_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditResponse {
    pub id: String,
    pub makerspace_id: String,
    pub action: String,
    pub user_id: String,
    pub skill_id: Option<String>,
    pub performed_by: Option<String>,
    pub reason: Option<String>,
    pub metadata: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    pub makerspace_id: Option<String>,
    pub user_id: Option<String>,
    pub skill_id: Option<String>,
    /// skill_granted, skill_pending, skill_revoked, prerequisite_override, request_approved,
    /// request_rejected, renewed_on_use.
    pub action: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Errors of the gate

/// A refusal of the gate; as an [`ApiError`] it is 403 with the standard fields and
/// `missing_skills`.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error("{detail}")]
    Refused { detail: String, error_type: &'static str, missing_skills: Vec<String> },
    #[error(transparent)]
    Api(#[from] ApiError),
}

impl From<GateError> for ApiError {
    fn from(err: GateError) -> ApiError {
        match err {
            GateError::Refused { detail, error_type, missing_skills } => {
                ApiError::refused_with(403, detail, error_type, json!({ "missing_skills": missing_skills }))
            }
            GateError::Api(api) => api,
        }
    }
}

impl From<StoreError> for GateError {
    fn from(err: StoreError) -> GateError {
        GateError::Api(err.into())
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers

fn skill_not_found() -> ApiError {
    ApiError::Refused { status: 404, detail: "Skill not found".into(), error_type: "skill_not_found" }
}

fn forbidden() -> ApiError {
    ApiError::Forbidden("your role does not allow this in this makerspace".into())
}

/// Turns a decision into an error, naming the thing in a 404.
fn decide(decision: Decision, not_found: impl FnOnce() -> ApiError) -> Result<(), ApiError> {
    match decision {
        Decision::Allow => Ok(()),
        Decision::Forbidden => Err(forbidden()),
        Decision::NotFound => Err(not_found()),
    }
}

/// Something the space's own people do for themselves (request a skill): its members,
/// service providers and makerspace_admins, and super_admin. `admin` only reads: 403.
fn acts_in_space(caller: &Principal, space: &str) -> Decision {
    if caller.has(Role::SuperAdmin) {
        return Decision::Allow;
    }
    let mut own = caller.clone();
    own.roles.remove(&Role::Admin);
    match own.can_read_space(space) {
        Decision::Allow => Decision::Allow,
        _ => match caller.can_read_space(space) {
            Decision::Allow => Decision::Forbidden,
            other => other,
        },
    }
}

/// Whether the caller may see a person's certifications, requests and audit lines in a space.
fn sees_person(caller: &Principal, space: &str, user_id: &str) -> bool {
    (user_id == caller.user_id && caller.can_read_space(space) == Decision::Allow)
        || caller.can_read_members(space) == Decision::Allow
}

async fn load_skill(state: &AppState, caller: &Principal, id: &str, manage: bool) -> Result<SkillRecord, ApiError> {
    let skill = state.store.get_skill(id).await?.ok_or_else(skill_not_found)?;
    let decision = if manage {
        caller.can_manage_space(&skill.makerspace_id)
    } else {
        caller.can_read_space(&skill.makerspace_id)
    };
    decide(decision, skill_not_found)?;
    Ok(skill)
}

/// The makerspaces a listing covers: the one asked for (404 when the caller cannot read it),
/// or every one the caller reads.
async fn spaces_for(state: &AppState, caller: &Principal, asked: Option<&str>) -> Result<Vec<String>, ApiError> {
    match asked {
        Some(space) => {
            decide(caller.can_read_space(space), || ApiError::not_found("makerspace"))?;
            if state.store.get_makerspace(space).await?.is_none() {
                return Err(ApiError::not_found("makerspace"));
            }
            Ok(vec![space.to_string()])
        }
        None => Ok(state
            .store
            .list_makerspaces()
            .await?
            .into_iter()
            .map(|m| m.id)
            .filter(|id| caller.lists_space(id))
            .collect()),
    }
}

fn check_validity(days: i64) -> Result<(), ApiError> {
    if (1..=MAX_VALIDITY_DAYS).contains(&days) {
        Ok(())
    } else {
        Err(ApiError::Validation(format!("certification_validity_days is 1 to {MAX_VALIDITY_DAYS}")))
    }
}

/// A skill name: 1 to 100 letters, digits, spaces and dashes.
fn check_name(name: &str) -> Result<(), ApiError> {
    check_len("name", name, 100)?;
    if name.chars().all(|c| c.is_alphanumeric() || c == ' ' || c == '-') {
        Ok(())
    } else {
        Err(ApiError::Validation("name may hold only letters, digits, spaces and dashes".into()))
    }
}

/// The equipment of the skill's space that needs the skill (for audit lines).
async fn equipment_needing(state: &AppState, skill: &SkillRecord) -> Result<Vec<String>, ApiError> {
    Ok(space_equipment(state, &skill.makerspace_id)
        .await?
        .into_iter()
        .filter(|e| e.skill_requirements.contains(&skill.id))
        .map(|e| e.id)
        .collect())
}

fn check_user_id(user_id: &str) -> Result<(), ApiError> {
    check_len("user_id", user_id, 200)
}

fn required_reason(force: bool, reason: Option<String>) -> Result<Option<String>, ApiError> {
    let reason = optional_text("reason", reason, 1000)?;
    if force && reason.is_none() {
        return Err(ApiError::Validation("a forced grant needs a reason".into()));
    }
    Ok(reason)
}

/// Checks prerequisite and equipment ids of a skill: existing, in the skill's space, no cycle.
async fn check_links(
    state: &AppState,
    skill: &SkillRecord,
    prerequisites: Option<&BTreeSet<String>>,
    equipment_ids: &[String],
) -> Result<(), ApiError> {
    if let Some(prerequisites) = prerequisites {
        if prerequisites.len() > 50 {
            return Err(ApiError::Validation("at most 50 prerequisites".into()));
        }
        for p in prerequisites {
            match state.store.get_skill(p).await? {
                Some(s) if s.makerspace_id == skill.makerspace_id => {}
                _ => return Err(ApiError::Validation(format!("unknown prerequisite skill {p:?} in this makerspace"))),
            }
        }
        let graph = state.store.prerequisite_graph(&skill.makerspace_id).await?;
        if let Some(cycle) = find_cycle(&skill.id, prerequisites, &graph) {
            return Err(ApiError::Validation(format!(
                "these prerequisites would make a cycle: {}",
                cycle.join(" -> ")
            )));
        }
    }
    if equipment_ids.len() > 200 {
        return Err(ApiError::Validation("at most 200 equipment ids".into()));
    }
    for e in equipment_ids {
        match state.store.get_equipment(e).await? {
            Some(eq) if eq.makerspace_id == skill.makerspace_id => {}
            _ => return Err(ApiError::Validation(format!("unknown equipment {e:?} in this makerspace"))),
        }
    }
    Ok(())
}

fn audit(
    skill: &SkillRecord,
    action: &str,
    user_id: &str,
    by: &str,
    reason: Option<String>,
    metadata: serde_json::Value,
    at: DateTime<Utc>,
) -> AuditRecord {
    AuditRecord {
        id: new_id(),
        makerspace_id: skill.makerspace_id.clone(),
        action: action.to_string(),
        user_id: user_id.to_string(),
        skill_id: Some(skill.id.clone()),
        performed_by: Some(by.to_string()),
        reason,
        metadata,
        created_at: at,
    }
}

/// A certification of `skill` for `user_id`, granted now by `by`.
fn certification(
    skill: &SkillRecord,
    user_id: &str,
    status: CertificationStatus,
    by: &str,
    notes: Option<String>,
    quiz_score: Option<String>,
    now: DateTime<Utc>,
) -> UserSkillRecord {
    let certified = status == CertificationStatus::Certified;
    UserSkillRecord {
        id: new_id(),
        user_id: user_id.to_string(),
        skill_id: skill.id.clone(),
        makerspace_id: skill.makerspace_id.clone(),
        status,
        certified_at: certified.then_some(now),
        expires_at: if certified { expiry_from(now, skill.validity_days) } else { None },
        certified_by: Some(by.to_string()),
        notes,
        quiz_score,
        created_at: now,
        updated_at: now,
    }
}

/// The prerequisite check of a grant: missing prerequisites refuse it (409 with their names)
/// unless forced; a forced grant with missing prerequisites adds an override audit line.
async fn prerequisite_gate(
    state: &AppState,
    skill: &SkillRecord,
    user_id: &str,
    force: bool,
    reason: &Option<String>,
    by: &str,
    now: DateTime<Utc>,
) -> Result<Option<AuditRecord>, ApiError> {
    let graph = state.store.prerequisite_graph(&skill.makerspace_id).await?;
    let certs = state.certifications.get(&state.store, &skill.makerspace_id, user_id).await?;
    let missing = missing_prerequisites(&skill.id, &certs, &graph, now);
    if missing.is_empty() {
        return Ok(None);
    }
    let names = skill_names(state, &skill.makerspace_id, &missing).await?;
    if !force {
        return Err(ApiError::conflict_with(
            format!("Missing prerequisite skills: {}", names.join(", ")),
            "missing_prerequisites",
            json!({"missing_prerequisites": names, "missing_prerequisite_ids": missing}),
        ));
    }
    Ok(Some(audit(
        skill,
        "prerequisite_override",
        user_id,
        by,
        reason.clone(),
        json!({"missing_prerequisites": names, "missing_prerequisite_ids": missing}),
        now,
    )))
}

async fn skill_names(state: &AppState, space: &str, ids: &[String]) -> Result<Vec<String>, ApiError> {
    let skills = space_skills(state, space).await?;
    Ok(ids.iter().map(|id| skills.get(id).map(|s| s.name.clone()).unwrap_or_else(|| id.clone())).collect())
}

async fn space_skills(state: &AppState, space: &str) -> Result<HashMap<String, SkillRecord>, ApiError> {
    let skills =
        state.store.list_skills(&SkillFilter { makerspace_id: Some(space.to_string()), ..Default::default() }).await?;
    Ok(skills.into_iter().map(|s| (s.id.clone(), s)).collect())
}

// ---------------------------------------------------------------------------------------------
// The gate on the hot path

/// What one makerspace's gate needs besides the person: its skills and prerequisite graph
/// (from the store's catalog cache).
struct SpaceRules(Arc<SkillCatalog>);

impl std::ops::Deref for SpaceRules {
    type Target = SkillCatalog;
    fn deref(&self) -> &SkillCatalog {
        &self.0
    }
}

impl SpaceRules {
    async fn load(state: &AppState, space: &str) -> Result<SpaceRules, ApiError> {
        Ok(SpaceRules(state.store.skill_catalog(space).await?))
    }

    fn name(&self, id: &str) -> String {
        self.skills.get(id).map(|s| s.name.clone()).unwrap_or_else(|| id.to_string())
    }
}

/// The person's effective membership status in a makerspace at `at` (`None`: not a member).
async fn member_status(
    state: &AppState,
    space: &str,
    user_id: &str,
    at: DateTime<Utc>,
) -> Result<Option<MemberStatus>, ApiError> {
    Ok(state
        .store
        .find_member_by_user(space, user_id)
        .await?
        .map(|m| effective_status(m.status, m.end_date, at.date_naive())))
}

/// Runs the gate for one machine.
async fn evaluate(
    state: &AppState,
    rules: &SpaceRules,
    equipment: &EquipmentRecord,
    user_id: &str,
    at: DateTime<Utc>,
) -> Result<(AccessDecision, EquipmentAccess), ApiError> {
    evaluate_vouched(state, rules, equipment, user_id, false, at).await
}

/// The gate for one machine; `vouched`: the identity provider's token says the person
/// belongs to the makerspace, which counts as an active membership when our database has
/// none (a database membership, suspended say, always wins).
async fn evaluate_vouched(
    state: &AppState,
    rules: &SpaceRules,
    equipment: &EquipmentRecord,
    user_id: &str,
    vouched: bool,
    at: DateTime<Utc>,
) -> Result<(AccessDecision, EquipmentAccess), ApiError> {
    let member =
        member_status(state, &equipment.makerspace_id, user_id, at).await?.or(vouched.then_some(MemberStatus::Active));
    evaluate_with(state, rules, equipment, user_id, member, at).await
}

/// The gate for one machine, for a person whose membership status is already known.
async fn evaluate_with(
    state: &AppState,
    rules: &SpaceRules,
    equipment: &EquipmentRecord,
    user_id: &str,
    member: Option<MemberStatus>,
    at: DateTime<Utc>,
) -> Result<(AccessDecision, EquipmentAccess), ApiError> {
    let certs = state.certifications.get(&state.store, &equipment.makerspace_id, user_id).await?;
    let decision = check_access(member, &certs, &equipment.skill_requirements, &rules.graph, at);
    let missing_skills: Vec<String> = decision.missing.iter().map(|id| rules.name(id)).collect();
    let reason = match decision.membership {
        Err(MembershipProblem::NotAMember) => "Not a member of this makerspace".to_string(),
        Err(MembershipProblem::Inactive(status)) => format!("Membership is {}", status.as_str()),
        Ok(()) if missing_skills.is_empty() => "All required skills are certified".to_string(),
        Ok(()) => format!("Missing required skills: {}", missing_skills.join(", ")),
    };
    let access = EquipmentAccess {
        equipment_id: equipment.id.clone(),
        equipment_name: equipment.name.clone(),
        makerspace_id: equipment.makerspace_id.clone(),
        can_access: decision.allowed(),
        user_skills: decision.held.iter().map(|id| rules.name(id)).collect(),
        missing_skills,
        missing_skill_ids: decision.missing.clone(),
        membership_ok: decision.membership.is_ok(),
        reason,
    };
    Ok((decision, access))
}

fn refusal(decision: &AccessDecision, access: &EquipmentAccess) -> GateError {
    let error_type = if decision.membership.is_ok() { "insufficient_skills" } else { "membership_inactive" };
    GateError::Refused { detail: access.reason.clone(), error_type, missing_skills: access.missing_skills.clone() }
}

/// The gate for booking or using a machine at `at`, without renewing anything: `Ok` or the
/// 403 refusal naming every missing skill. `vouched` as for [`evaluate_vouched`].
pub async fn require_access(
    state: &AppState,
    equipment: &EquipmentRecord,
    user_id: &str,
    vouched: bool,
    at: DateTime<Utc>,
) -> Result<(), GateError> {
    let rules = SpaceRules::load(state, &equipment.makerspace_id).await?;
    let (decision, access) = evaluate_vouched(state, &rules, equipment, user_id, vouched, at).await?;
    if decision.allowed() {
        Ok(())
    } else {
        Err(refusal(&decision, &access))
    }
}

/// As [`require_access`], for a member whose effective status the caller already read (the
/// kiosk, from the card's member), which saves the gate a lookup.
pub async fn require_access_as(
    state: &AppState,
    equipment: &EquipmentRecord,
    user_id: &str,
    member: MemberStatus,
    at: DateTime<Utc>,
) -> Result<(), GateError> {
    let rules = SpaceRules::load(state, &equipment.makerspace_id).await?;
    let (decision, access) = evaluate_with(state, &rules, equipment, user_id, Some(member), at).await?;
    if decision.allowed() {
        Ok(())
    } else {
        Err(refusal(&decision, &access))
    }
}

/// The machines of `machines` a person may use at `at` (for availability listings).
pub async fn usable_by(
    state: &AppState,
    makerspace_id: &str,
    machines: Vec<EquipmentRecord>,
    user_id: &str,
    vouched: bool,
    at: DateTime<Utc>,
) -> Result<Vec<EquipmentRecord>, ApiError> {
    let rules = SpaceRules::load(state, makerspace_id).await?;
    let mut out = Vec::with_capacity(machines.len());
    for machine in machines {
        if evaluate_vouched(state, &rules, &machine, user_id, vouched, at).await?.0.allowed() {
            out.push(machine);
        }
    }
    Ok(out)
}

/// What a certified use did.
#[derive(Debug, Serialize, ToSchema)]
pub struct CertifiedUse {
    pub access: EquipmentAccess,
    /// Certifications extended by this use: skill id and new expiry.
    pub renewed: Vec<(String, DateTime<Utc>)>,
}

/// The kiosk's call when a person starts using a machine at `at`: the gate decides (403
/// `insufficient_skills` with every missing skill, or `membership_inactive`), and each of the
/// machine's required skills whose `renew_on_use` is set has its certification extended to
/// `at` + its validity (never shortened). Writes an audit line per renewal.
pub async fn record_certified_use(
    state: &AppState,
    equipment_id: &str,
    user_id: &str,
    at: DateTime<Utc>,
) -> Result<CertifiedUse, GateError> {
    let equipment = state.store.get_equipment(equipment_id).await?.ok_or_else(|| ApiError::not_found("equipment"))?;
    let rules = SpaceRules::load(state, &equipment.makerspace_id).await?;
    let (decision, access) = evaluate(state, &rules, &equipment, user_id, at).await?;
    if !decision.allowed() {
        return Err(refusal(&decision, &access));
    }
    let renewed = renew_on_use(state, &rules, &equipment, user_id, at).await?;
    Ok(CertifiedUse { access, renewed })
}

/// Extends, for a use of `equipment` at `at` that the gate already allowed, each required
/// certification whose skill renews on use, to `at` + its validity (never shortened). Writes
/// an audit line per renewal. Returns the renewed skills and their new expiry.
async fn renew_on_use(
    state: &AppState,
    rules: &SpaceRules,
    equipment: &EquipmentRecord,
    user_id: &str,
    at: DateTime<Utc>,
) -> Result<Vec<(String, DateTime<Utc>)>, ApiError> {
    // Nothing to do (and no query) unless one of the machine's skills renews on use.
    let renewing = equipment.skill_requirements.iter().any(|id| rules.skills.get(id).is_some_and(|s| s.renew_on_use));
    if !renewing {
        return Ok(Vec::new());
    }
    let held = state
        .store
        .list_user_skills(&UserSkillFilter {
            makerspace_id: Some(equipment.makerspace_id.clone()),
            user_id: Some(user_id.to_string()),
            skill_id: None,
        })
        .await?;
    let mut change = CertificationChange::default();
    let mut renewed = Vec::new();
    for mut u in held {
        let Some(skill) = rules.skills.get(&u.skill_id) else { continue };
        if !skill.renew_on_use || !equipment.skill_requirements.contains(&u.skill_id) {
            continue;
        }
        let Some(new_expiry) = expiry_from(at, skill.validity_days) else { continue };
        if u.expires_at.is_some_and(|current| current >= new_expiry) {
            continue;
        }
        change.audit.push(audit(
            skill,
            "renewed_on_use",
            user_id,
            user_id,
            None,
            json!({"equipment_id": equipment.id, "previous_expires_at": u.expires_at, "expires_at": new_expiry}),
            at,
        ));
        u.expires_at = Some(new_expiry);
        u.updated_at = Utc::now();
        renewed.push((u.skill_id.clone(), new_expiry));
        change.user_skills.push(u);
    }
    if !change.user_skills.is_empty() {
        state.store.apply_certification_change(&change).await?;
        state.certifications.invalidate(&equipment.makerspace_id, user_id);
    }
    Ok(renewed)
}

/// The kiosk's call after a granted unlock: renews what the use renews (the gate was
/// checked before the unlock, with [`require_access`]).
pub async fn record_use(
    state: &AppState,
    equipment: &EquipmentRecord,
    user_id: &str,
    at: DateTime<Utc>,
) -> Result<(), ApiError> {
    let rules = SpaceRules::load(state, &equipment.makerspace_id).await?;
    renew_on_use(state, &rules, equipment, user_id, at).await.map(|_| ())
}

// ---------------------------------------------------------------------------------------------
// Skills

#[utoipa::path(post, path = "/api/v1/skills", tag = "skills", request_body = SkillCreate,
    responses((status = 201, body = SkillResponse), (status = 403, body = crate::web::ErrorBody),
              (status = 404, body = crate::web::ErrorBody), (status = 409, body = crate::web::ErrorBody),
              (status = 422, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn create(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    body: web::Json<SkillCreate>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    decide(caller.can_manage_space(&body.makerspace_id), || ApiError::not_found("makerspace"))?;
    if state.store.get_makerspace(&body.makerspace_id).await?.is_none() {
        return Err(ApiError::not_found("makerspace"));
    }
    let id = match body.id {
        Some(id) => {
            validate_id(&id).map_err(|e| ApiError::Validation(format!("id: {e}")))?;
            id
        }
        None => new_id(),
    };
    check_name(&body.name)?;
    check_len("category", &body.category, 50)?;
    let validity = body.certification_validity_days.unwrap_or(DEFAULT_VALIDITY_DAYS);
    check_validity(validity)?;
    let now = Utc::now();
    let skill = SkillRecord {
        id,
        makerspace_id: body.makerspace_id,
        name: body.name.trim().to_string(),
        category: body.category.trim().to_string(),
        level: body.level,
        description: optional_text("description", body.description, 1000)?,
        status: body.status.unwrap_or(SkillStatus::Active),
        validity_days: Some(validity),
        renew_on_use: body.renew_on_use.unwrap_or(false),
        created_at: now,
        updated_at: now,
    };
    let prerequisites: BTreeSet<String> = body.prerequisite_ids.unwrap_or_default().into_iter().collect();
    let equipment_ids = body.equipment_ids.unwrap_or_default();
    check_links(&state, &skill, Some(&prerequisites), &equipment_ids).await?;
    match state.store.insert_skill(&skill, &prerequisites, &equipment_ids).await {
        Ok(()) => {}
        Err(StoreError::Conflict) => {
            return Err(ApiError::Conflict {
                detail: format!("a skill with this id or the name {:?} already exists in this makerspace", skill.name),
                error_type: "duplicate_skill",
            })
        }
        Err(StoreError::InUse) => return Err(ApiError::Validation("equipment changed meanwhile; try again".into())),
        Err(other) => return Err(other.into()),
    }
    state.certifications.invalidate_space(&skill.makerspace_id);
    let graph = state.store.prerequisite_graph(&skill.makerspace_id).await?;
    let equipment = space_equipment(&state, &skill.makerspace_id).await?;
    Ok(HttpResponse::Created().json(SkillResponse::new(skill, &graph, &equipment)))
}

async fn space_equipment(state: &AppState, space: &str) -> Result<Vec<EquipmentRecord>, ApiError> {
    Ok(state.store.list_equipment(&EquipmentFilter { makerspace_id: Some(space.to_string()), kind: None }).await?)
}

#[utoipa::path(get, path = "/api/v1/skills", tag = "skills", params(SkillListQuery),
    responses((status = 200, body = [SkillResponse]), (status = 404, body = crate::web::ErrorBody),
              (status = 422, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    query: web::Query<SkillListQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let mut out = Vec::new();
    for space in spaces_for(&state, &caller, query.makerspace_id.as_deref()).await? {
        let skills = state
            .store
            .list_skills(&SkillFilter {
                makerspace_id: Some(space.clone()),
                category: query.category.clone(),
                level: query.level,
                status: query.status,
            })
            .await?;
        if skills.is_empty() {
            continue;
        }
        let graph = state.store.prerequisite_graph(&space).await?;
        let equipment = space_equipment(&state, &space).await?;
        out.extend(skills.into_iter().map(|s| SkillResponse::new(s, &graph, &equipment)));
    }
    Ok(HttpResponse::Ok().json(out))
}

#[utoipa::path(get, path = "/api/v1/skills/{skill_id}", tag = "skills", params(("skill_id" = String, Path)),
    responses((status = 200, body = SkillResponse), (status = 404, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn get(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let skill = load_skill(&state, &caller, &path.into_inner(), false).await?;
    let graph = state.store.prerequisite_graph(&skill.makerspace_id).await?;
    let equipment = space_equipment(&state, &skill.makerspace_id).await?;
    Ok(HttpResponse::Ok().json(SkillResponse::new(skill, &graph, &equipment)))
}

#[utoipa::path(put, path = "/api/v1/skills/{skill_id}", tag = "skills", params(("skill_id" = String, Path)),
    request_body = SkillUpdate,
    responses((status = 200, body = SkillResponse), (status = 403, body = crate::web::ErrorBody),
              (status = 404, body = crate::web::ErrorBody), (status = 409, body = crate::web::ErrorBody),
              (status = 422, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn update(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<String>,
    body: web::Json<SkillUpdate>,
) -> Result<HttpResponse, ApiError> {
    let mut skill = load_skill(&state, &caller, &path.into_inner(), true).await?;
    let body = body.into_inner();
    if let Some(name) = body.name {
        check_name(&name)?;
        skill.name = name.trim().to_string();
    }
    if let Some(category) = body.category {
        check_len("category", &category, 50)?;
        skill.category = category.trim().to_string();
    }
    if let Some(level) = body.level {
        skill.level = level;
    }
    if body.description.is_some() {
        skill.description = optional_text("description", body.description, 1000)?;
    }
    if let Some(status) = body.status {
        skill.status = status;
    }
    if let Some(days) = body.certification_validity_days {
        check_validity(days)?;
        skill.validity_days = Some(days);
    }
    if let Some(renew) = body.renew_on_use {
        skill.renew_on_use = renew;
    }
    let prerequisites: Option<BTreeSet<String>> = body.prerequisite_ids.map(|p| p.into_iter().collect());
    let equipment_ids = body.equipment_ids.unwrap_or_default();
    check_links(&state, &skill, prerequisites.as_ref(), &equipment_ids).await?;
    skill.updated_at = Utc::now();
    match state.store.update_skill(&skill, prerequisites.as_ref(), &equipment_ids).await {
        Ok(true) => {}
        Ok(false) => return Err(skill_not_found()),
        Err(StoreError::Conflict) => {
            return Err(ApiError::Conflict {
                detail: format!("a skill named {:?} already exists in this makerspace", skill.name),
                error_type: "duplicate_skill",
            })
        }
        Err(StoreError::InUse) => return Err(ApiError::Validation("equipment changed meanwhile; try again".into())),
        Err(other) => return Err(other.into()),
    }
    state.certifications.invalidate_space(&skill.makerspace_id);
    let graph = state.store.prerequisite_graph(&skill.makerspace_id).await?;
    let equipment = space_equipment(&state, &skill.makerspace_id).await?;
    Ok(HttpResponse::Ok().json(SkillResponse::new(skill, &graph, &equipment)))
}

// ---------------------------------------------------------------------------------------------
// User skills

#[utoipa::path(post, path = "/api/v1/skills/user-skills", tag = "skills", request_body = GrantRequest,
    responses((status = 201, body = UserSkillResponse), (status = 403, body = crate::web::ErrorBody),
              (status = 404, body = crate::web::ErrorBody),
              (status = 409, description = "missing_prerequisites, with missing_prerequisites", body = crate::web::ErrorBody),
              (status = 422, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn grant(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    body: web::Json<GrantRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let skill = load_skill(&state, &caller, &body.skill_id, true).await?;
    check_user_id(&body.user_id)?;
    let status = body.status.unwrap_or(CertificationStatus::Certified);
    if !matches!(status, CertificationStatus::Certified | CertificationStatus::Pending) {
        return Err(ApiError::Validation("status of a grant is certified or pending; revoke to revoke".into()));
    }
    if skill.status == SkillStatus::Inactive && status == CertificationStatus::Certified {
        return Err(ApiError::Validation("this skill is inactive".into()));
    }
    let quiz_score = optional_text("quiz_score", body.quiz_score, 10)?;
    let notes = optional_text("notes", body.notes, 2000)?;
    let force = body.force.unwrap_or(false);
    let reason = required_reason(force, body.reason)?;
    let now = Utc::now();
    let mut change = CertificationChange::default();
    if status == CertificationStatus::Certified {
        if let Some(line) =
            prerequisite_gate(&state, &skill, &body.user_id, force, &reason, &caller.user_id, now).await?
        {
            change.audit.push(line);
        }
    }
    let record = certification(&skill, &body.user_id, status, &caller.user_id, notes, quiz_score, now);
    change.audit.push(audit(
        &skill,
        if status == CertificationStatus::Certified { "skill_granted" } else { "skill_pending" },
        &body.user_id,
        &caller.user_id,
        reason,
        json!({"status": status, "quiz_score": record.quiz_score, "expires_at": record.expires_at, "forced": force,
               "equipment_authorized": equipment_needing(&state, &skill).await?}),
        now,
    ));
    change.user_skills.push(record);
    let ids = state.store.apply_certification_change(&change).await?;
    state.certifications.invalidate(&skill.makerspace_id, &body.user_id);
    let id = ids.into_iter().next().ok_or(ApiError::Internal)?;
    let stored = state.store.get_user_skill(&id).await?.ok_or(ApiError::Internal)?;
    Ok(HttpResponse::Created().json(UserSkillResponse::new(stored, &skill, now)))
}

#[utoipa::path(get, path = "/api/v1/skills/user-skills", tag = "skills", params(UserSkillQuery),
    responses((status = 200, body = [UserSkillResponse]), (status = 404, body = crate::web::ErrorBody),
              (status = 422, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_user_skills(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    query: web::Query<UserSkillQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let now = Utc::now();
    let mut out = Vec::new();
    for space in spaces_for(&state, &caller, query.makerspace_id.as_deref()).await? {
        let rows = state
            .store
            .list_user_skills(&UserSkillFilter {
                makerspace_id: Some(space.clone()),
                user_id: query.user_id.clone(),
                skill_id: query.skill_id.clone(),
            })
            .await?;
        if rows.is_empty() {
            continue;
        }
        let skills = space_skills(&state, &space).await?;
        out.extend(
            rows.into_iter()
                .filter(|u| sees_person(&caller, &space, &u.user_id))
                .filter_map(|u| skills.get(&u.skill_id).map(|s| UserSkillResponse::new(u, s, now)))
                .filter(|u| query.status.is_none_or(|s| s == u.status)),
        );
    }
    Ok(HttpResponse::Ok().json(out))
}

#[utoipa::path(post, path = "/api/v1/skills/user-skills/{user_skill_id}/revoke", tag = "skills",
    params(("user_skill_id" = String, Path), RevokeQuery),
    responses((status = 200, body = UserSkillResponse), (status = 403, body = crate::web::ErrorBody),
              (status = 404, body = crate::web::ErrorBody), (status = 409, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn revoke(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<String>,
    query: web::Query<RevokeQuery>,
) -> Result<HttpResponse, ApiError> {
    let not_found = || ApiError::not_found("user skill");
    let mut record = state.store.get_user_skill(&path.into_inner()).await?.ok_or_else(not_found)?;
    decide(caller.can_manage_space(&record.makerspace_id), not_found)?;
    let skill = state.store.get_skill(&record.skill_id).await?.ok_or_else(skill_not_found)?;
    if record.status == CertificationStatus::Revoked {
        return Err(ApiError::Conflict {
            detail: "this skill is already revoked".into(),
            error_type: "already_revoked",
        });
    }
    let reason = optional_text("reason", query.into_inner().reason, 1000)?;
    let now = Utc::now();
    let previous = record.status;
    record.status = CertificationStatus::Revoked;
    record.updated_at = now;
    let change = CertificationChange {
        audit: vec![audit(
            &skill,
            "skill_revoked",
            &record.user_id,
            &caller.user_id,
            reason,
            json!({"previous_status": previous, "expires_at": record.expires_at}),
            now,
        )],
        user_skills: vec![record.clone()],
        decision: None,
    };
    state.store.apply_certification_change(&change).await?;
    state.certifications.invalidate(&record.makerspace_id, &record.user_id);
    // A session on a machine that needs the revoked skill ends at once.
    crate::web::kiosk::end_sessions_of(
        &state,
        &record.makerspace_id,
        &record.user_id,
        Some(&record.skill_id),
        "skill_revoked",
    )
    .await;
    Ok(HttpResponse::Ok().json(UserSkillResponse::new(record, &skill, now)))
}

// ---------------------------------------------------------------------------------------------
// Requests

#[utoipa::path(post, path = "/api/v1/skills/requests", tag = "skills", request_body = SkillRequestCreate,
    responses((status = 201, body = SkillRequestResponse), (status = 403, body = crate::web::ErrorBody),
              (status = 404, body = crate::web::ErrorBody),
              (status = 409, description = "request_conflict, with existing_request_id; already_certified",
               body = crate::web::ErrorBody),
              (status = 422, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn request(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    body: web::Json<SkillRequestCreate>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let skill = state.store.get_skill(&body.skill_id).await?.ok_or_else(skill_not_found)?;
    decide(acts_in_space(&caller, &skill.makerspace_id), skill_not_found)?;
    if skill.status == SkillStatus::Inactive {
        return Err(ApiError::Validation("this skill is inactive".into()));
    }
    let now = Utc::now();
    let certs = state.certifications.get(&state.store, &skill.makerspace_id, &caller.user_id).await?;
    if certs.iter().any(|c| c.skill_id == skill.id && c.valid_at(now)) {
        return Err(ApiError::Conflict {
            detail: "you already hold this skill".into(),
            error_type: "already_certified",
        });
    }
    let record = SkillRequestRecord {
        id: new_id(),
        user_id: caller.user_id.clone(),
        skill_id: skill.id.clone(),
        makerspace_id: skill.makerspace_id.clone(),
        status: RequestStatus::Pending,
        reason: optional_text("reason", body.reason, 2000)?,
        notes: optional_text("notes", body.notes, 2000)?,
        reviewed_by: None,
        reviewed_at: None,
        created_at: now,
        updated_at: now,
    };
    if let Err(existing) = state.store.insert_skill_request(&record).await? {
        return Err(ApiError::conflict_with(
            "Skill request already pending for this user",
            "request_conflict",
            json!({"existing_request_id": existing}),
        ));
    }
    Ok(HttpResponse::Created().json(SkillRequestResponse::new(record, None)))
}

#[utoipa::path(get, path = "/api/v1/skills/requests", tag = "skills", params(RequestListQuery),
    responses((status = 200, body = [SkillRequestResponse]), (status = 404, body = crate::web::ErrorBody),
              (status = 422, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_requests(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    query: web::Query<RequestListQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let mut out = Vec::new();
    for space in spaces_for(&state, &caller, query.makerspace_id.as_deref()).await? {
        let rows = state
            .store
            .list_skill_requests(&RequestFilter {
                makerspace_id: Some(space.clone()),
                user_id: query.user_id.clone(),
                status: query.status,
            })
            .await?;
        out.extend(
            rows.into_iter()
                .filter(|r| sees_person(&caller, &space, &r.user_id))
                .map(|r| SkillRequestResponse::new(r, None)),
        );
    }
    Ok(HttpResponse::Ok().json(out))
}

#[utoipa::path(put, path = "/api/v1/skills/requests/{request_id}", tag = "skills",
    params(("request_id" = String, Path)), request_body = SkillRequestDecision,
    responses((status = 200, body = SkillRequestResponse), (status = 403, body = crate::web::ErrorBody),
              (status = 404, body = crate::web::ErrorBody), (status = 409, body = crate::web::ErrorBody),
              (status = 422, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn decide_request(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<String>,
    body: web::Json<SkillRequestDecision>,
) -> Result<HttpResponse, ApiError> {
    let not_found = || ApiError::not_found("skill request");
    let mut record = state.store.get_skill_request(&path.into_inner()).await?.ok_or_else(not_found)?;
    decide(caller.can_manage_space(&record.makerspace_id), not_found)?;
    let skill = state.store.get_skill(&record.skill_id).await?.ok_or_else(skill_not_found)?;
    let body = body.into_inner();
    if body.status == RequestStatus::Pending {
        return Err(ApiError::Validation("a decision is approved or rejected".into()));
    }
    let not_pending = || ApiError::Conflict {
        detail: "this request has already been decided".into(),
        error_type: "request_not_pending",
    };
    if record.status != RequestStatus::Pending {
        return Err(not_pending());
    }
    let notes = optional_text("notes", body.notes, 2000)?;
    let force = body.force.unwrap_or(false);
    let reason = required_reason(force, body.reason)?;
    let now = Utc::now();
    let mut change = CertificationChange {
        decision: Some(RequestDecision {
            request_id: record.id.clone(),
            status: body.status,
            notes: notes.clone(),
            reviewed_by: caller.user_id.clone(),
            reviewed_at: now,
        }),
        ..Default::default()
    };
    let action = if body.status == RequestStatus::Approved { "request_approved" } else { "request_rejected" };
    if body.status == RequestStatus::Approved {
        if skill.status == SkillStatus::Inactive {
            return Err(ApiError::Validation("this skill is inactive".into()));
        }
        if let Some(line) =
            prerequisite_gate(&state, &skill, &record.user_id, force, &reason, &caller.user_id, now).await?
        {
            change.audit.push(line);
        }
        let cert = certification(
            &skill,
            &record.user_id,
            CertificationStatus::Certified,
            &caller.user_id,
            notes.clone(),
            None,
            now,
        );
        change.audit.push(audit(
            &skill,
            "skill_granted",
            &record.user_id,
            &caller.user_id,
            reason.clone(),
            json!({"request_id": record.id, "expires_at": cert.expires_at, "forced": force,
                   "equipment_authorized": equipment_needing(&state, &skill).await?}),
            now,
        ));
        change.user_skills.push(cert);
    }
    change.audit.push(audit(
        &skill,
        action,
        &record.user_id,
        &caller.user_id,
        reason,
        json!({"request_id": record.id, "notes": notes}),
        now,
    ));
    let ids = match state.store.apply_certification_change(&change).await {
        Ok(ids) => ids,
        Err(StoreError::Conflict) => return Err(not_pending()),
        Err(other) => return Err(other.into()),
    };
    state.certifications.invalidate(&skill.makerspace_id, &record.user_id);
    record.status = body.status;
    if notes.is_some() {
        record.notes = notes;
    }
    record.reviewed_by = Some(caller.user_id.clone());
    record.reviewed_at = Some(now);
    record.updated_at = now;
    Ok(HttpResponse::Ok().json(SkillRequestResponse::new(record, ids.into_iter().next())))
}

// ---------------------------------------------------------------------------------------------
// Access checks and requirements

/// The person whose access is checked: the caller, or someone else for those who read the
/// space's members.
fn target_user(caller: &Principal, space: &str, asked: Option<String>) -> Result<String, ApiError> {
    match asked {
        None => Ok(caller.user_id.clone()),
        Some(user) if user == caller.user_id => Ok(user),
        Some(user) => {
            check_user_id(&user)?;
            if caller.can_read_members(space) == Decision::Allow {
                Ok(user)
            } else {
                Err(ApiError::Forbidden("you may only check your own access".into()))
            }
        }
    }
}

#[utoipa::path(get, path = "/api/v1/skills/access/equipment/{equipment_id}", tag = "skills",
    params(("equipment_id" = String, Path), AccessQuery),
    responses((status = 200, body = AccessCheckResponse), (status = 403, body = crate::web::ErrorBody),
              (status = 404, body = crate::web::ErrorBody), (status = 422, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn check_equipment(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<String>,
    query: web::Query<AccessQuery>,
) -> Result<HttpResponse, ApiError> {
    let not_found = || ApiError::not_found("equipment");
    let equipment = state.store.get_equipment(&path.into_inner()).await?.ok_or_else(not_found)?;
    decide(caller.can_read_space(&equipment.makerspace_id), not_found)?;
    let query = query.into_inner();
    let user_id = target_user(&caller, &equipment.makerspace_id, query.user_id)?;
    let at = query.at.unwrap_or_else(Utc::now);
    let rules = SpaceRules::load(&state, &equipment.makerspace_id).await?;
    let (_, access) = evaluate(&state, &rules, &equipment, &user_id, at).await?;
    Ok(HttpResponse::Ok().json(AccessCheckResponse { user_id, checked_at: at, access }))
}

#[utoipa::path(get, path = "/api/v1/skills/access/equipment", tag = "skills", params(BulkAccessQuery),
    responses((status = 200, body = BulkAccessResponse), (status = 403, body = crate::web::ErrorBody),
              (status = 404, body = crate::web::ErrorBody), (status = 422, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn check_all_equipment(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    query: web::Query<BulkAccessQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let at = query.at.unwrap_or_else(Utc::now);
    let spaces = spaces_for(&state, &caller, query.makerspace_id.as_deref()).await?;
    let user_id = match (&query.makerspace_id, query.user_id) {
        (Some(space), asked) => target_user(&caller, space, asked)?,
        (None, None) => caller.user_id.clone(),
        (None, Some(user)) => {
            check_user_id(&user)?;
            user
        }
    };
    let mut equipment_access = Vec::new();
    for space in spaces {
        // Someone else's access: only in spaces whose members the caller reads.
        if user_id != caller.user_id && caller.can_read_members(&space) != Decision::Allow {
            continue;
        }
        let equipment = space_equipment(&state, &space).await?;
        if equipment.is_empty() {
            continue;
        }
        let rules = SpaceRules::load(&state, &space).await?;
        for e in &equipment {
            equipment_access.push(evaluate(&state, &rules, e, &user_id, at).await?.1);
        }
    }
    let total = equipment_access.len();
    let accessible = equipment_access.iter().filter(|a| a.can_access).count();
    let percentage = if total == 0 { 0.0 } else { (accessible as f64 * 1000.0 / total as f64).round() / 10.0 };
    Ok(HttpResponse::Ok().json(BulkAccessResponse {
        user_id,
        checked_at: at,
        equipment_access,
        summary: AccessSummary {
            total_equipment: total,
            accessible_equipment: accessible,
            access_percentage: percentage,
        },
    }))
}

#[utoipa::path(get, path = "/api/v1/skills/equipment-requirements", tag = "skills", params(SpaceQuery),
    responses((status = 200, body = [EquipmentRequirements]), (status = 404, body = crate::web::ErrorBody),
              (status = 422, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn equipment_requirements(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    query: web::Query<SpaceQuery>,
) -> Result<HttpResponse, ApiError> {
    let mut out = Vec::new();
    for space in spaces_for(&state, &caller, query.makerspace_id.as_deref()).await? {
        let equipment = space_equipment(&state, &space).await?;
        if equipment.is_empty() {
            continue;
        }
        let rules = SpaceRules::load(&state, &space).await?;
        for e in equipment {
            let all = with_prerequisites(&e.skill_requirements, &rules.graph);
            let mut required_skills: Vec<RequiredSkill> = all
                .into_iter()
                .map(|id| {
                    let skill = rules.skills.get(&id);
                    RequiredSkill {
                        skill_name: rules.name(&id),
                        skill_level: skill.map(|s| s.level),
                        required_level: skill.map(|s| s.level),
                        category: skill.map(|s| s.category.clone()),
                        is_required: e.skill_requirements.contains(&id),
                        skill_id: id,
                    }
                })
                .collect();
            required_skills.sort_by(|a, b| b.is_required.cmp(&a.is_required).then(a.skill_name.cmp(&b.skill_name)));
            out.push(EquipmentRequirements {
                equipment_id: e.id,
                equipment_name: e.name,
                makerspace_id: e.makerspace_id,
                required_skills,
            });
        }
    }
    Ok(HttpResponse::Ok().json(out))
}

#[utoipa::path(get, path = "/api/v1/skills/audit-logs", tag = "skills", params(AuditQuery),
    responses((status = 200, body = [AuditResponse]), (status = 404, body = crate::web::ErrorBody),
              (status = 422, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn audit_logs(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    query: web::Query<AuditQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let mut out = Vec::new();
    for space in spaces_for(&state, &caller, query.makerspace_id.as_deref()).await? {
        let rows = state
            .store
            .list_skill_audit(&AuditFilter {
                makerspace_id: Some(space.clone()),
                user_id: query.user_id.clone(),
                skill_id: query.skill_id.clone(),
                action: query.action.clone(),
            })
            .await?;
        out.extend(rows.into_iter().filter(|a| sees_person(&caller, &space, &a.user_id)).map(|a| AuditResponse {
            id: a.id,
            makerspace_id: a.makerspace_id,
            action: a.action,
            user_id: a.user_id,
            skill_id: a.skill_id,
            performed_by: a.performed_by,
            reason: a.reason,
            metadata: a.metadata,
            created_at: a.created_at,
        }));
    }
    Ok(HttpResponse::Ok().json(out))
}

// ---------------------------------------------------------------------------------------------
// Routes and document

/// Registers the skill routes inside `/api/v1`. Fixed paths come before `{skill_id}`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    for base in ["/skills", "/skills/"] {
        cfg.service(web::resource(base).route(web::post().to(create)).route(web::get().to(list)));
    }
    cfg.service(
        web::resource("/skills/user-skills").route(web::post().to(grant)).route(web::get().to(list_user_skills)),
    )
    .route("/skills/user-skills/{user_skill_id}/revoke", web::post().to(revoke))
    .service(web::resource("/skills/requests").route(web::post().to(request)).route(web::get().to(list_requests)))
    .route("/skills/requests/{request_id}", web::put().to(decide_request))
    .route("/skills/access/equipment", web::get().to(check_all_equipment))
    .route("/skills/access/equipment/{equipment_id}", web::get().to(check_equipment))
    .route("/skills/equipment-requirements", web::get().to(equipment_requirements))
    .route("/skills/audit-logs", web::get().to(audit_logs))
    .service(web::resource("/skills/{skill_id}").route(web::get().to(get)).route(web::put().to(update)));
}

#[derive(OpenApi)]
#[openapi(paths(
    create,
    list,
    get,
    update,
    grant,
    list_user_skills,
    revoke,
    request,
    list_requests,
    decide_request,
    check_equipment,
    check_all_equipment,
    equipment_requirements,
    audit_logs,
))]
pub struct SkillsApi;
