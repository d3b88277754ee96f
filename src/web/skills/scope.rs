//! What every endpoint of the module shares: the caller's rights turned into errors (another
//! space's things answer 404), loading a skill within the caller's reach, the makerspaces a
//! listing covers, and whose lines a caller may see.

use crate::domain::access::{Decision, Principal};
use crate::store::skills::SkillRecord;
use crate::web::error::ApiError;
use crate::web::validate::check_len;
use crate::web::AppState;

pub(super) fn skill_not_found() -> ApiError {
    ApiError::Refused { status: 404, detail: "Skill not found".into(), error_type: "skill_not_found" }
}

fn forbidden() -> ApiError {
    ApiError::Forbidden("your role does not allow this in this makerspace".into())
}

/// Turns a decision into an error, naming the thing in a 404.
pub(super) fn decide(decision: Decision, not_found: impl FnOnce() -> ApiError) -> Result<(), ApiError> {
    match decision {
        Decision::Allow => Ok(()),
        Decision::Forbidden => Err(forbidden()),
        Decision::NotFound => Err(not_found()),
    }
}

/// Whether the caller may see a person's certifications, requests and audit lines in a space.
pub(super) fn sees_person(caller: &Principal, space: &str, user_id: &str) -> bool {
    (user_id == caller.user_id && caller.can_read_space(space) == Decision::Allow)
        || caller.can_read_members(space) == Decision::Allow
}

pub(super) async fn load_skill(
    state: &AppState,
    caller: &Principal,
    id: &str,
    manage: bool,
) -> Result<SkillRecord, ApiError> {
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
pub(super) async fn spaces_for(
    state: &AppState,
    caller: &Principal,
    asked: Option<&str>,
) -> Result<Vec<String>, ApiError> {
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

pub(super) fn check_user_id(user_id: &str) -> Result<(), ApiError> {
    check_len("user_id", user_id, 200)
}
