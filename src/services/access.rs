//! Authorization of a caller in a makerspace. The rules themselves are the domain's
//! ([`crate::domain::access`]); this turns a decision into a loaded makerspace or an
//! [`AccessError`]: another space's things are "not found" (nobody learns they exist), a
//! role that does not allow an action in one's own space is "forbidden".

use crate::domain::access::{Decision, Principal};
use crate::domain::members::{effective_status, grants_access, MemberRole, MemberStatus};
use crate::domain::validate::Invalid;
use crate::store::makerspaces::MakerspaceRecord;
use crate::store::StoreError;

use super::Services;

#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Forbidden(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The refusal for an action the caller's role does not allow in the space.
pub fn forbidden_to(what: &str) -> AccessError {
    AccessError::Forbidden(format!("your role does not allow you to {what} in this makerspace"))
}

/// Loads a makerspace the caller may act on, with the not-found/forbidden answer otherwise.
pub async fn space_for(svc: &Services, decision: Decision, id: &str) -> Result<MakerspaceRecord, AccessError> {
    match decision {
        Decision::NotFound => return Err(AccessError::NotFound("makerspace")),
        Decision::Forbidden => {
            // Only reveal "forbidden" for something that exists.
            return match svc.store.get_makerspace(id).await? {
                Some(_) => Err(AccessError::Forbidden("your role does not allow this in this makerspace".into())),
                None => Err(AccessError::NotFound("makerspace")),
            };
        }
        Decision::Allow => {}
    }
    svc.store.get_makerspace(id).await?.ok_or(AccessError::NotFound("makerspace"))
}

/// Checks that the caller may read (or manage) the people of the space, and that it exists.
pub async fn people_of(svc: &Services, caller: &Principal, space_id: &str, manage: bool) -> Result<(), AccessError> {
    let decision = if manage { caller.can_manage_members(space_id) } else { caller.can_read_members(space_id) };
    space_for(svc, decision, space_id).await.map(|_| ())
}

/// What the caller may do in the space's reservation book.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Platform admin: reads only.
    Reader,
    /// A person of the space: books for themselves.
    Booker,
    /// makerspace_admin or super_admin: everything.
    Manager,
}

/// Loads the space (not found for outsiders) and says what the caller may do in it.
pub async fn standing(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
) -> Result<(MakerspaceRecord, Standing), AccessError> {
    let space = space_for(svc, caller.can_read_space(space_id), space_id).await?;
    let standing = if caller.can_manage_space(space_id) == Decision::Allow {
        Standing::Manager
    } else if caller.memberships.contains_key(space_id) || caller.makerspaces.contains(space_id) {
        Standing::Booker
    } else {
        Standing::Reader
    };
    Ok((space, standing))
}

/// Adds the caller's memberships from our database. An active membership gives its role in
/// its makerspace; a suspended, expired or pending one takes the makerspace away, even if
/// the token names it, so that a suspension works at once.
pub async fn add_memberships(svc: &Services, principal: &mut Principal) -> Result<(), StoreError> {
    let today = chrono::Utc::now().date_naive();
    for row in svc.store.memberships_of(&principal.user_id).await?.iter() {
        let status = MemberStatus::parse(&row.status).unwrap_or(MemberStatus::Pending);
        let role = MemberRole::parse(&row.role).map(MemberRole::access_role);
        match role {
            Some(role) if grants_access(effective_status(status, row.end_date, today)) => {
                principal.memberships.insert(row.makerspace_id.clone(), role);
            }
            _ => {
                principal.makerspaces.remove(&row.makerspace_id);
            }
        }
    }
    Ok(())
}

/// Checks that a booking, a waitlist entry or a certification names a person of the space.
/// Naming someone else takes a membership there in our database (whatever its status: the
/// skill gate and the kiosk judge the status): a name that is nobody's in the space would
/// hold a machine or give rights to someone the space does not know. Naming oneself takes
/// nothing more than the standing that let the caller act in the space (their token or
/// membership, or a super_admin's platform role).
pub async fn require_member<E>(svc: &Services, caller: &Principal, space_id: &str, user_id: &str) -> Result<(), E>
where
    E: From<Invalid> + From<StoreError>,
{
    if user_id == caller.user_id || svc.store.memberships_of(user_id).await?.iter().any(|m| m.makerspace_id == space_id)
    {
        Ok(())
    } else {
        Err(Invalid(format!("user_id: {user_id:?} is not a member of this makerspace")).into())
    }
}
