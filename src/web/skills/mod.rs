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
//! The workflows (grants, revocations, requests, who sees what) are
//! [`crate::services::skills`]'; the gate that bookings and the kiosk call is
//! [`crate::services::gate`]. It reads certifications and skills from the store's caches
//! (`store::cache`), which every store write of certifications or skills clears. Expiry is
//! judged at check time by the pure gate, never cached.
//!
//! Layout: `catalog` (skills, their prerequisites and equipment), `certifications`
//! (grants and revocations), `requests` (people asking for a skill, and the decisions),
//! `access` (the access-check endpoints), `audit` (the audit log); `shapes` holds the
//! request and response bodies.

use actix_web::web;
use utoipa::OpenApi;

mod access;
mod audit;
mod catalog;
mod certifications;
mod requests;
mod shapes;

pub use shapes::{
    AccessCheckResponse, AccessQuery, AccessSummary, AuditQuery, AuditResponse, BulkAccessQuery, BulkAccessResponse,
    EquipmentAccess, EquipmentRequirements, GrantRequest, RequestListQuery, RequiredSkill, RevokeQuery, SkillCreate,
    SkillListQuery, SkillRequestCreate, SkillRequestDecision, SkillRequestResponse, SkillResponse, SkillUpdate,
    SpaceQuery, UserSkillQuery, UserSkillResponse,
};

/// Registers the skill routes inside `/api/v1`. Fixed paths come before `{skill_id}`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    for base in ["/skills", "/skills/"] {
        cfg.service(web::resource(base).route(web::post().to(catalog::create)).route(web::get().to(catalog::list)));
    }
    cfg.service(
        web::resource("/skills/user-skills")
            .route(web::post().to(certifications::grant))
            .route(web::get().to(certifications::list_user_skills)),
    )
    .route("/skills/user-skills/{user_skill_id}/revoke", web::post().to(certifications::revoke))
    .service(
        web::resource("/skills/requests")
            .route(web::post().to(requests::request))
            .route(web::get().to(requests::list_requests)),
    )
    .route("/skills/requests/{request_id}", web::put().to(requests::decide_request))
    .route("/skills/access/equipment", web::get().to(access::check_all_equipment))
    .route("/skills/access/equipment/{equipment_id}", web::get().to(access::check_equipment))
    .route("/skills/equipment-requirements", web::get().to(catalog::equipment_requirements))
    .route("/skills/audit-logs", web::get().to(audit::audit_logs))
    .service(
        web::resource("/skills/{skill_id}").route(web::get().to(catalog::get)).route(web::put().to(catalog::update)),
    );
}

#[derive(OpenApi)]
#[openapi(paths(
    catalog::create,
    catalog::list,
    catalog::get,
    catalog::update,
    certifications::grant,
    certifications::list_user_skills,
    certifications::revoke,
    requests::request,
    requests::list_requests,
    requests::decide_request,
    access::check_equipment,
    access::check_all_equipment,
    catalog::equipment_requirements,
    audit::audit_logs,
))]
pub struct SkillsApi;
