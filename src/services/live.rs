//! Who may watch a makerspace's live feed (the WebSocket), and what a person hears when they
//! lose it. The hub ([`crate::actors::hub`]) does the fan-out; this decides, from the same
//! memberships as REST, read fresh each time.
//!
//! A person loses a space's feed the moment their membership stops granting access: the
//! member workflows call [`membership_lost`] when they suspend, remove or end a membership,
//! and a connection checks its subscriptions again now and then ([`standing`]), which catches
//! what no workflow announces (an end date passing at midnight, a role changed).

use std::sync::Arc;

use chrono::Utc;
use serde_json::json;

use crate::domain::access::{Decision, Principal};
use crate::domain::members::{effective_status, MemberStatus};
use crate::store::StoreError;

use super::access::add_memberships;
use super::Services;

/// A caller's standing in a makerspace's live feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// May watch; `admin`: administers the space (admin-only events such as kiosk alerts).
    Watcher { admin: bool },
    /// May not watch (any more), and why: `membership_suspended`, `membership_ended`,
    /// `membership_pending` or `membership_removed`.
    Denied(&'static str),
}

/// The caller's standing in the space now, with memberships read again (not the ones their
/// connection started with).
pub async fn standing(svc: &Services, caller: &Principal, space_id: &str) -> Result<Standing, StoreError> {
    let mut now = caller.clone();
    now.memberships.clear();
    add_memberships(svc, &mut now).await?;
    if now.can_read_space(space_id) != Decision::Allow {
        return Ok(Standing::Denied(lost_reason(svc, &caller.user_id, space_id).await?));
    }
    Ok(Standing::Watcher { admin: now.can_manage_space(space_id) == Decision::Allow })
}

/// Why a person has no access to a space, from their membership there.
async fn lost_reason(svc: &Services, user_id: &str, space_id: &str) -> Result<&'static str, StoreError> {
    let rows = svc.store.memberships_of(user_id).await?;
    let Some(row) = rows.iter().find(|r| r.makerspace_id == space_id) else { return Ok("membership_removed") };
    let status = MemberStatus::parse(&row.status).unwrap_or(MemberStatus::Pending);
    Ok(reason(effective_status(status, row.end_date, Utc::now().date_naive()), false))
}

/// The reason a membership in this state (or removed) gives for taking the feed away.
pub fn reason(effective: MemberStatus, removed: bool) -> &'static str {
    match (removed, effective) {
        (true, _) => "membership_removed",
        (false, MemberStatus::Suspended) => "membership_suspended",
        (false, MemberStatus::Expired) => "membership_ended",
        (false, MemberStatus::Pending) => "membership_pending",
        // An active membership takes nothing away; a caller asking anyway lost it otherwise.
        (false, MemberStatus::Active) => "membership_removed",
    }
}

/// The message a client gets when the server ends its subscription to a space.
pub fn unsubscribed(space_id: &str, reason: &str) -> Arc<str> {
    Arc::from(json!({"type": "unsubscribed", "makerspace_id": space_id, "reason": reason}).to_string())
}

/// A person lost a makerspace: each of their subscriptions to its feed ends now, with a
/// message saying why. Returns how many ended.
pub fn membership_lost(svc: &Services, space_id: &str, user_id: &str, reason: &str) -> usize {
    let ended = svc.hub.revoke(space_id, user_id, &unsubscribed(space_id, reason));
    if ended > 0 {
        tracing::info!(makerspace_id = space_id, user_id, reason, subscriptions = ended, "live feed taken away");
    }
    ended
}
