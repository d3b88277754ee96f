//! The access-check endpoints: what the gate says about one machine or every machine for a
//! person (the caller, or someone whose space's members the caller reads), at an instant.

use actix_web::{web, HttpResponse};
use chrono::Utc;

use crate::domain::access::{Decision, Principal};
use crate::web::auth::Caller;
use crate::web::error::ApiError;
use crate::web::AppState;

use super::shapes::{AccessCheckResponse, AccessQuery, AccessSummary, BulkAccessQuery, BulkAccessResponse};
use crate::services::gate::{evaluate, SpaceRules};
use crate::services::skills::{check_user_id, decide, space_equipment, spaces_for, SkillError};

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
    let equipment = state.store.get_equipment(&path.into_inner()).await?.ok_or(ApiError::not_found("equipment"))?;
    decide(caller.can_read_space(&equipment.makerspace_id), SkillError::NotFound("equipment"))?;
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
