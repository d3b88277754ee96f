//! The skill catalog: creating, listing, reading and changing skills with their prerequisites
//! and the equipment that needs them, and each machine's required skills.

use std::collections::BTreeSet;

use actix_web::{web, HttpResponse};
use chrono::Utc;

use crate::domain::ids::{new_id, validate_id};
use crate::domain::skills::{find_cycle, with_prerequisites, SkillStatus, DEFAULT_VALIDITY_DAYS, MAX_VALIDITY_DAYS};
use crate::store::skills::{SkillFilter, SkillRecord};
use crate::store::StoreError;
use crate::web::auth::Caller;
use crate::web::error::ApiError;
use crate::web::validate::{check_len, dedup, optional_multiline};
use crate::web::AppState;

use super::shapes::{
    EquipmentRequirements, RequiredSkill, SkillCreate, SkillListQuery, SkillResponse, SkillUpdate, SpaceQuery,
};
use crate::services::gate::SpaceRules;
use crate::services::skills::{decide, load_skill, space_equipment, spaces_for, SkillError};

fn check_validity(days: i64) -> Result<(), ApiError> {
    if (1..=MAX_VALIDITY_DAYS).contains(&days) {
        Ok(())
    } else {
        Err(ApiError::Validation(format!("certification_validity_days is 1 to {MAX_VALIDITY_DAYS}")))
    }
}

/// A skill name: 1 to 100 ASCII letters, digits, spaces and dashes (the product documents'
/// `^[a-zA-Z0-9\s-]+$`, as the OpenAPI document states it).
fn check_name(name: &str) -> Result<(), ApiError> {
    check_len("name", name, 100)?;
    if name.chars().all(|c| c.is_ascii_alphanumeric() || c == ' ' || c == '-') {
        Ok(())
    } else {
        Err(ApiError::Validation("name may hold only letters, digits, spaces and dashes".into()))
    }
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
    decide(caller.can_manage_space(&body.makerspace_id), SkillError::NotFound("makerspace"))?;
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
        description: optional_multiline("description", body.description, 1000)?,
        status: body.status.unwrap_or(SkillStatus::Active),
        validity_days: Some(validity),
        renew_on_use: body.renew_on_use.unwrap_or(false),
        created_at: now,
        updated_at: now,
    };
    let prerequisites: BTreeSet<String> = body.prerequisite_ids.unwrap_or_default().into_iter().collect();
    let equipment_ids = dedup(body.equipment_ids.unwrap_or_default());
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
    let graph = state.store.prerequisite_graph(&skill.makerspace_id).await?;
    let equipment = space_equipment(&state, &skill.makerspace_id).await?;
    Ok(HttpResponse::Created().json(SkillResponse::new(skill, &graph, &equipment)))
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
        skill.description = optional_multiline("description", body.description, 1000)?;
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
    let equipment_ids = dedup(body.equipment_ids.unwrap_or_default());
    check_links(&state, &skill, prerequisites.as_ref(), &equipment_ids).await?;
    skill.updated_at = Utc::now();
    match state.store.update_skill(&skill, prerequisites.as_ref(), &equipment_ids).await {
        Ok(true) => {}
        Ok(false) => return Err(SkillError::SkillNotFound.into()),
        Err(StoreError::Conflict) => {
            return Err(ApiError::Conflict {
                detail: format!("a skill named {:?} already exists in this makerspace", skill.name),
                error_type: "duplicate_skill",
            })
        }
        Err(StoreError::InUse) => return Err(ApiError::Validation("equipment changed meanwhile; try again".into())),
        Err(other) => return Err(other.into()),
    }
    let graph = state.store.prerequisite_graph(&skill.makerspace_id).await?;
    let equipment = space_equipment(&state, &skill.makerspace_id).await?;
    Ok(HttpResponse::Ok().json(SkillResponse::new(skill, &graph, &equipment)))
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
