//! Joining by invitation: a makerspace_admin invites an email with a role; the invitee,
//! signed in, accepts with the token from the email and becomes a member (with a welcome
//! email). Tokens are single use, expire (7 days by default), and only their SHA-256 is
//! stored. Limiting guesses per client address is the web layer's (it knows the address).

use crate::logging::escaped;
use chrono::{DateTime, Utc};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::domain::access::Principal;
use crate::domain::ids::new_id;
use crate::domain::members::{normalize_email, MemberRole, MemberStatus};
use crate::domain::validate::{check_chars, check_len, optional_multiline, optional_text, Invalid, Lines};
use crate::notify::email::Email;
use crate::store::invites::{InviteRecord, InviteStatus};
use crate::store::members::MemberRecord;
use crate::store::StoreError;

use super::access::{people_of, AccessError};
use super::members::{activity, announce, check_plan, MemberError};
use super::Services;

#[derive(Debug, thiserror::Error)]
pub enum InviteError {
    #[error(transparent)]
    Access(#[from] AccessError),
    #[error(transparent)]
    Member(#[from] MemberError),
    #[error("invitation not found")]
    NotFound,
    #[error("no invitation with this code")]
    UnknownToken,
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error("this email already belongs to a member")]
    EmailIsMember { existing_member_id: String },
    #[error("an invitation to this email is pending: resend it instead")]
    Pending { existing_invite_id: String },
    #[error("you are already a member of this makerspace")]
    AlreadyMember { existing_member_id: String },
    /// The invitation cannot be used (or changed) any more.
    #[error("{}", .0.sentence())]
    Unusable(Unusable),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why an invitation cannot be used now, or changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unusable {
    Used,
    Cancelled,
    Expired,
    /// Only a pending invitation can be resent.
    NotPendingToResend,
    /// Only a pending invitation can be cancelled.
    NotPendingToCancel,
}

impl Unusable {
    pub fn sentence(self) -> &'static str {
        match self {
            Unusable::Used => "this invitation was already used",
            Unusable::Cancelled => "this invitation was cancelled",
            Unusable::Expired => "this invitation has expired: ask for a new one",
            Unusable::NotPendingToResend => "only a pending invitation can be resent",
            Unusable::NotPendingToCancel => "only a pending invitation can be cancelled",
        }
    }
}

/// What an invitation is now: pending, accepted, cancelled or expired.
pub fn invite_status(i: &InviteRecord, now: DateTime<Utc>) -> &'static str {
    match i.status {
        InviteStatus::Pending if i.expires_at <= now => "expired",
        other => other.as_str(),
    }
}

/// A fresh token (256 random bits, hex) and the hash that is stored.
fn new_token() -> (String, String) {
    let bytes: [u8; 32] = rand::random();
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let hash = hash_token(&token);
    (token, hash)
}

fn hash_token(token: &str) -> String {
    Sha256::digest(token.trim().as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The name of a space for emails and answers (its id if it is gone).
pub async fn space_name(svc: &Services, space_id: &str) -> Result<String, StoreError> {
    Ok(svc.store.get_makerspace(space_id).await?.map(|s| s.name).unwrap_or_else(|| space_id.to_string()))
}

/// Sends the invitation email; whether it reached the mail server.
async fn send_invitation(svc: &Services, invite: &InviteRecord, token: &str, space_name: &str) -> bool {
    let link = format!("{}/?invite={token}", svc.settings.public_url);
    let note = invite.message.as_deref().map(|m| format!("\n\nA note from them: {m}\n")).unwrap_or_default();
    let expires = invite.expires_at.format("%Y-%m-%d %H:%M UTC");
    let text = format!(
        "Hello,\n\nYou are invited to join {space_name} on makrcave as {role}.{note}\n\nAccept the invitation here (sign in first): {link}\n\nOr use this invitation code: {token}\n\nThe invitation is valid until {expires}.\n",
        role = invite.role.as_str(),
    );
    let html = format!(
        "<p>Hello,</p><p>You are invited to join <strong>{space}</strong> on makrcave as {role}.</p>{note}<p><a href=\"{link}\">Accept the invitation</a> (sign in first).</p><p>Invitation code: <code>{token}</code><br>Valid until {expires}.</p>",
        space = html_escape(space_name),
        role = invite.role.as_str(),
        note = invite.message.as_deref().map(|m| format!("<blockquote>{}</blockquote>", html_escape(m))).unwrap_or_default(),
    );
    let email = Email {
        to: invite.email.clone(),
        subject: format!("You're invited to join {space_name}"),
        text,
        html: Some(html),
    };
    match svc.mailer.send(&email).await {
        Ok(()) => true,
        Err(err) => {
            tracing::warn!(error = %escaped(&err), invite = ?invite.id, "invitation email not sent");
            false
        }
    }
}

/// An invitation asked for by an admin.
pub struct Invitation {
    pub email: String,
    pub role: Option<MemberRole>,
    pub plan_id: Option<String>,
    pub message: Option<String>,
}

/// Invites an email to the space and sends the invitation. Returns the invitation and
/// whether the email reached the mail server.
pub async fn invite(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
    asked: Invitation,
) -> Result<(InviteRecord, bool), InviteError> {
    people_of(svc, caller, space_id, true).await?;
    let email = normalize_email(&asked.email).map_err(Invalid)?;
    if let Some(plan) = &asked.plan_id {
        check_plan(svc, space_id, plan).await?;
    }
    if let Some(existing) = svc.store.find_member_by_email(space_id, &email).await? {
        return Err(InviteError::EmailIsMember { existing_member_id: existing.id });
    }
    if let Some(pending) = svc.store.pending_invite_for(space_id, &email).await? {
        if pending.expires_at > Utc::now() {
            return Err(InviteError::Pending { existing_invite_id: pending.id });
        }
    }
    let now = Utc::now();
    let (token, token_hash) = new_token();
    let invite = InviteRecord {
        id: new_id(),
        makerspace_id: space_id.to_string(),
        email,
        role: asked.role.unwrap_or(MemberRole::Member),
        plan_id: asked.plan_id,
        message: optional_multiline("message", asked.message, 2000)?,
        token_hash,
        status: InviteStatus::Pending,
        invited_by: caller.user_id.clone(),
        expires_at: now + chrono::Duration::days(i64::from(svc.settings.invite_ttl_days)),
        sent_count: 1,
        accepted_at: None,
        accepted_by: None,
        created_at: now,
        updated_at: now,
    };
    svc.store.insert_invite(&invite).await?;
    let sent = send_invitation(svc, &invite, &token, &space_name(svc, space_id).await?).await;
    Ok((invite, sent))
}

/// Sends a pending invitation again with a new token: the old link stops working, and the
/// expiry starts again.
pub async fn resend(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
    invite_id: &str,
) -> Result<(InviteRecord, bool), InviteError> {
    people_of(svc, caller, space_id, true).await?;
    svc.store.get_invite(space_id, invite_id).await?.ok_or(InviteError::NotFound)?;
    let (token, token_hash) = new_token();
    let expires_at = Utc::now() + chrono::Duration::days(i64::from(svc.settings.invite_ttl_days));
    if !svc.store.renew_invite(invite_id, &token_hash, expires_at).await? {
        return Err(InviteError::Unusable(Unusable::NotPendingToResend));
    }
    let invite = svc.store.get_invite(space_id, invite_id).await?.ok_or(InviteError::NotFound)?;
    let sent = send_invitation(svc, &invite, &token, &space_name(svc, space_id).await?).await;
    Ok((invite, sent))
}

/// Cancels a pending invitation.
pub async fn cancel(svc: &Services, caller: &Principal, space_id: &str, invite_id: &str) -> Result<(), InviteError> {
    people_of(svc, caller, space_id, true).await?;
    svc.store.get_invite(space_id, invite_id).await?.ok_or(InviteError::NotFound)?;
    if svc.store.cancel_invite(invite_id).await? {
        Ok(())
    } else {
        Err(InviteError::Unusable(Unusable::NotPendingToCancel))
    }
}

/// Finds a usable invitation by token, or says why not.
async fn usable_invite(svc: &Services, token: &str) -> Result<InviteRecord, InviteError> {
    let invite = svc.store.find_invite_by_token_hash(&hash_token(token)).await?.ok_or(InviteError::UnknownToken)?;
    match unusable(&invite) {
        None => Ok(invite),
        Some(why) => Err(InviteError::Unusable(why)),
    }
}

/// Why an invitation cannot be used now, if it cannot.
fn unusable(invite: &InviteRecord) -> Option<Unusable> {
    match invite_status(invite, Utc::now()) {
        "pending" => None,
        "accepted" => Some(Unusable::Used),
        "cancelled" => Some(Unusable::Cancelled),
        _ => Some(Unusable::Expired),
    }
}

/// Checks an invitation code (before sign-in); `user_id`, when given, is told if it is
/// already a member. Returns the invitation.
pub async fn validate(svc: &Services, token: &str, user_id: Option<&str>) -> Result<InviteRecord, InviteError> {
    let invite = usable_invite(svc, token).await?;
    if let Some(user) = user_id {
        if let Some(existing) = svc.store.find_member_by_user(&invite.makerspace_id, user).await? {
            return Err(InviteError::AlreadyMember { existing_member_id: existing.id });
        }
    }
    Ok(invite)
}

/// How the invitee wants to be shown (defaults from the invited email).
#[derive(Debug, Default)]
pub struct Acceptance {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub phone: Option<String>,
}

/// The signed-in caller accepts an invitation and becomes an active member with its role
/// and plan; a welcome email goes out in the background.
pub async fn accept(
    svc: &Services,
    caller: &Principal,
    token: &str,
    acceptance: Acceptance,
) -> Result<MemberRecord, InviteError> {
    let invite = usable_invite(svc, token).await?;
    if let Some(existing) = svc.store.find_member_by_user(&invite.makerspace_id, &caller.user_id).await? {
        return Err(InviteError::AlreadyMember { existing_member_id: existing.id });
    }
    let local_part = invite.email.split('@').next().unwrap_or_default().to_string();
    let first_name = acceptance.first_name.unwrap_or(local_part);
    check_len("first_name", &first_name, 100)?;
    let last_name = acceptance.last_name.unwrap_or_default();
    // May be empty (a single name), but is a name all the same.
    if last_name.chars().count() > 100 {
        return Err(Invalid::new("last_name must be at most 100 characters").into());
    }
    check_chars("last_name", &last_name, Lines::One)?;
    let now = Utc::now();
    let member = MemberRecord {
        id: new_id(),
        makerspace_id: invite.makerspace_id.clone(),
        user_id: Some(caller.user_id.clone()),
        email: invite.email.clone(),
        first_name: first_name.trim().to_string(),
        last_name: last_name.trim().to_string(),
        phone: optional_text("phone", acceptance.phone, 40)?,
        role: invite.role,
        status: MemberStatus::Active,
        plan_id: invite.plan_id.clone(),
        start_date: now.date_naive(),
        end_date: None,
        suspension_reason: None,
        notes: None,
        created_at: now,
        updated_at: now,
        deleted_at: None,
    };
    let line = activity(
        &member,
        "joined",
        &caller.user_id,
        json!({ "invite_id": invite.id, "invited_by": invite.invited_by }),
    );
    match svc.store.accept_invite(&invite.id, &member, &line).await {
        Ok(true) => {}
        // Someone used it (or it expired, or was cancelled) between our check and the write.
        Ok(false) => {
            let now_stored = svc.store.get_invite(&invite.makerspace_id, &invite.id).await?;
            let why = now_stored.as_ref().and_then(unusable).unwrap_or(Unusable::Used);
            return Err(InviteError::Unusable(why));
        }
        Err(StoreError::Conflict) => {
            let existing = svc.store.find_member_by_email(&invite.makerspace_id, &invite.email).await?;
            return Err(InviteError::AlreadyMember { existing_member_id: existing.map(|e| e.id).unwrap_or_default() });
        }
        Err(other) => return Err(other.into()),
    }
    announce(svc, &member, false);
    welcome(svc, &member).await?;
    Ok(member)
}

/// Sends the welcome email in the background: the new member need not wait for the mail
/// server, and a failure is only logged.
async fn welcome(svc: &Services, member: &MemberRecord) -> Result<(), StoreError> {
    let name = space_name(svc, &member.makerspace_id).await?;
    let email = Email {
        to: member.email.clone(),
        subject: format!("Welcome to {name}"),
        text: format!(
            "Hello {},\n\nYou are now a member of {name} on makrcave. See you on the shop floor!\n\n{}/\n",
            member.first_name, svc.settings.public_url
        ),
        html: None,
    };
    let mailer = svc.mailer.clone();
    tokio::spawn(async move {
        if let Err(err) = mailer.send(&email).await {
            tracing::warn!(error = %escaped(&err), "welcome email not sent");
        }
    });
    Ok(())
}
