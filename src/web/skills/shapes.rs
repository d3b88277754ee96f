//! The request and response shapes of the skill endpoints (bodies and query strings), as the
//! OpenAPI document names them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::domain::skills::{
    effective_certification_status, CertificationStatus, Prerequisites, RequestStatus, SkillLevel, SkillStatus,
};
use crate::store::equipment::EquipmentRecord;
use crate::store::skills::{SkillRecord, SkillRequestRecord, UserSkillRecord};

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
    pub(super) fn new(s: SkillRecord, graph: &Prerequisites, equipment: &[EquipmentRecord]) -> Self {
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
    #[schema(pattern = "^[a-z0-9][a-z0-9-]{0,63}$")]
    pub id: Option<String>,
    #[schema(min_length = 1, max_length = 100, pattern = "^[A-Za-z0-9 -]*[A-Za-z0-9-][A-Za-z0-9 -]*$")]
    pub name: String,
    #[schema(min_length = 1, max_length = 50, pattern = r"\S")]
    pub category: String,
    pub level: SkillLevel,
    #[schema(max_length = 1000, pattern = r"^[\P{Cc}\t\n]*$")]
    pub description: Option<String>,
    #[schema(pattern = "^[a-z0-9][a-z0-9-]{0,63}$")]
    pub makerspace_id: String,
    /// `active` (default) or `inactive`.
    pub status: Option<SkillStatus>,
    /// Skills to hold before this one can be granted (repeats are dropped).
    #[schema(max_items = 50)]
    pub prerequisite_ids: Option<Vec<String>>,
    /// Equipment of the space that needs this skill (repeats are dropped).
    #[schema(max_items = 200)]
    pub equipment_ids: Option<Vec<String>>,
    /// 1 to 3650 [default: 365].
    #[schema(minimum = 1, maximum = 3650)]
    #[serde(default, deserialize_with = "crate::web::validate::whole_number")]
    pub certification_validity_days: Option<i64>,
    /// [default: false]
    pub renew_on_use: Option<bool>,
}

/// Fields to change; absent fields stay. `prerequisite_ids` replaces the list;
/// `equipment_ids` adds the skill to more equipment.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SkillUpdate {
    #[schema(min_length = 1, max_length = 100, pattern = "^[A-Za-z0-9 -]*[A-Za-z0-9-][A-Za-z0-9 -]*$")]
    pub name: Option<String>,
    #[schema(min_length = 1, max_length = 50, pattern = r"\S")]
    pub category: Option<String>,
    pub level: Option<SkillLevel>,
    #[schema(max_length = 1000, pattern = r"^[\P{Cc}\t\n]*$")]
    pub description: Option<String>,
    pub status: Option<SkillStatus>,
    /// Repeats are dropped.
    #[schema(max_items = 50)]
    pub prerequisite_ids: Option<Vec<String>>,
    /// Repeats are dropped.
    #[schema(max_items = 200)]
    pub equipment_ids: Option<Vec<String>>,
    #[schema(minimum = 1, maximum = 3650)]
    #[serde(default, deserialize_with = "crate::web::validate::whole_number")]
    pub certification_validity_days: Option<i64>,
    pub renew_on_use: Option<bool>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
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
    pub(super) fn new(u: UserSkillRecord, skill: &SkillRecord, now: DateTime<Utc>) -> Self {
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
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub user_id: String,
    #[schema(pattern = "^[a-z0-9][a-z0-9-]{0,63}$")]
    pub skill_id: String,
    /// `certified` (default) or `pending`.
    pub status: Option<CertificationStatus>,
    #[schema(max_length = 2000, pattern = r"^[\P{Cc}\t\n]*$")]
    pub notes: Option<String>,
    /// At most 10 characters, e.g. `95%`.
    #[schema(max_length = 10, pattern = r"^\P{Cc}*$")]
    pub quiz_score: Option<String>,
    /// Grant although prerequisites are not certified (an override, audited).
    pub force: Option<bool>,
    /// Why: required with `force`.
    #[schema(max_length = 1000, pattern = r"^\P{Cc}*$")]
    pub reason: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UserSkillQuery {
    pub user_id: Option<String>,
    pub status: Option<CertificationStatus>,
    pub makerspace_id: Option<String>,
    pub skill_id: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RevokeQuery {
    #[param(max_length = 1000, pattern = r"^\P{Cc}*$")]
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
    pub(super) fn new(r: SkillRequestRecord, user_skill_id: Option<String>) -> Self {
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
    #[schema(pattern = "^[a-z0-9][a-z0-9-]{0,63}$")]
    pub skill_id: String,
    #[schema(max_length = 2000, pattern = r"^\P{Cc}*$")]
    pub reason: Option<String>,
    #[schema(max_length = 2000, pattern = r"^[\P{Cc}\t\n]*$")]
    pub notes: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SkillRequestDecision {
    /// `approved` or `rejected`.
    pub status: RequestStatus,
    #[schema(max_length = 2000, pattern = r"^[\P{Cc}\t\n]*$")]
    pub notes: Option<String>,
    /// Approve although prerequisites are not certified (an override, audited).
    pub force: Option<bool>,
    /// Why: required with `force`.
    #[schema(max_length = 1000, pattern = r"^\P{Cc}*$")]
    pub reason: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RequestListQuery {
    pub makerspace_id: Option<String>,
    pub user_id: Option<String>,
    pub status: Option<RequestStatus>,
}

pub use crate::services::gate::EquipmentAccess;

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
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AccessQuery {
    /// Whose access [default: the caller].
    #[param(min_length = 1, max_length = 200, pattern = r"\S")]
    pub user_id: Option<String>,
    /// The instant to judge, RFC 3339 [default: now].
    pub at: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct BulkAccessQuery {
    #[param(min_length = 1, max_length = 200, pattern = r"\S")]
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
#[into_params(parameter_in = Query)]
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
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    pub makerspace_id: Option<String>,
    pub user_id: Option<String>,
    pub skill_id: Option<String>,
    /// skill_granted, skill_pending, skill_revoked, prerequisite_override, request_approved,
    /// request_rejected, renewed_on_use.
    pub action: Option<String>,
}
