//! Invitations: a makerspace_admin invites an email with a role; the invitee, signed in,
//! accepts with the token from the email and becomes a member. Tokens are single use, expire
//! (7 days by default), and only their SHA-256 is stored. Accept and validate are limited per
//! client address, as anything that takes a secret guess is.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};

use crate::domain::ids::new_id;
use crate::domain::members::{effective_status, normalize_email, MemberRole, MemberStatus};
use crate::notify::email::Email;
use crate::store::invites::{InviteRecord, InviteStatus};
use crate::store::members::MemberRecord;
use crate::web::auth::Caller;
use crate::web::error::ApiError;
use crate::web::members::{activity, announce, authorize, check_plan, MemberResponse};
use crate::web::validate::{check_len, optional_text};
use crate::web::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct InviteResponse {
    pub id: String,
    pub makerspace_id: String,
    pub email: String,
    pub role: MemberRole,
    pub plan_id: Option<String>,
    pub message: Option<String>,
    /// pending, accepted, cancelled or expired.
    pub status: String,
    pub invited_by: String,
    pub expires_at: DateTime<Utc>,
    /// How many times the email went out.
    pub sent_count: i64,
    pub accepted_at: Option<DateTime<Utc>>,
    pub accepted_by: Option<String>,
    pub created_at: DateTime<Utc>,
    /// Whether the last email reached the mail server (only on create and resend).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_sent: Option<bool>,
}

fn invite_status(i: &InviteRecord, now: DateTime<Utc>) -> &'static str {
    match i.status {
        InviteStatus::Pending if i.expires_at <= now => "expired",
        other => other.as_str(),
    }
}

impl InviteResponse {
    fn new(i: InviteRecord, email_sent: Option<bool>) -> Self {
        InviteResponse {
            status: invite_status(&i, Utc::now()).to_string(),
            id: i.id,
            makerspace_id: i.makerspace_id,
            email: i.email,
            role: i.role,
            plan_id: i.plan_id,
            message: i.message,
            invited_by: i.invited_by,
            expires_at: i.expires_at,
            sent_count: i.sent_count,
            accepted_at: i.accepted_at,
            accepted_by: i.accepted_by,
            created_at: i.created_at,
            email_sent,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InviteCreate {
    #[schema(format = Email, max_length = 254)]
    pub email: String,
    /// member (default), service_provider or makerspace_admin.
    pub role: Option<MemberRole>,
    #[schema(pattern = "^[a-z0-9][a-z0-9-]{0,63}$")]
    pub plan_id: Option<String>,
    /// A personal note in the email.
    #[schema(max_length = 2000)]
    pub message: Option<String>,
}

/// The statuses an invitation listing filters on, for the document.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum InviteStatusFilter {
    Pending,
    Accepted,
    Cancelled,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct InviteListQuery {
    /// pending, accepted or cancelled.
    #[param(inline, value_type = Option<InviteStatusFilter>)]
    pub status: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptRequest {
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    pub first_name: Option<String>,
    #[schema(max_length = 100)]
    pub last_name: Option<String>,
    #[schema(max_length = 40)]
    pub phone: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidateRequest {
    pub invite_token: String,
    /// When given, an identity that is already a member is told so.
    pub user_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ValidateResponse {
    pub valid: bool,
    pub makerspace_id: String,
    pub makerspace_name: String,
    pub email: String,
    pub role: MemberRole,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AcceptResponse {
    pub member: MemberResponse,
    pub makerspace_id: String,
    pub makerspace_name: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MembershipSummary {
    pub makerspace_id: String,
    pub makerspace_name: String,
    pub member_id: String,
    pub role: String,
    pub status: MemberStatus,
    pub plan_id: Option<String>,
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

fn limit(state: &AppState, req: &HttpRequest) -> Result<(), ApiError> {
    let Some(addr) = req.peer_addr() else { return Ok(()) };
    state
        .rate_limiter
        .check(addr.ip())
        .map_err(|retry| ApiError::TooManyRequests { retry_after_s: retry.as_secs().max(1) })
}

/// Sends the invitation email; whether it reached the mail server.
async fn send_invitation(state: &AppState, invite: &InviteRecord, token: &str, space_name: &str) -> bool {
    let link = format!("{}/?invite={token}", state.settings.public_url);
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
    match state.mailer.send(&email).await {
        Ok(()) => true,
        Err(err) => {
            tracing::warn!(error = %err, invite = %invite.id, "invitation email not sent");
            false
        }
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

async fn space_name(state: &AppState, space_id: &str) -> Result<String, ApiError> {
    Ok(state.store.get_makerspace(space_id).await?.map(|s| s.name).unwrap_or_else(|| space_id.to_string()))
}

#[utoipa::path(post, path = "/api/v1/makerspaces/{makerspace_id}/members/invites", tag = "invites",
    params(("makerspace_id" = String, Path)), request_body = InviteCreate,
    responses((status = 201, body = InviteResponse), (status = 403, body = crate::web::ErrorBody),
              (status = 404, body = crate::web::ErrorBody), (status = 409, body = crate::web::ErrorBody),
              (status = 422, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn create(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<String>,
    body: web::Json<InviteCreate>,
) -> Result<HttpResponse, ApiError> {
    let space_id = path.into_inner();
    authorize(&state, &caller, &space_id, true).await?;
    let body = body.into_inner();
    let email = normalize_email(&body.email).map_err(ApiError::Validation)?;
    if let Some(plan) = &body.plan_id {
        check_plan(&state, &space_id, plan).await?;
    }
    if let Some(existing) = state.store.find_member_by_email(&space_id, &email).await? {
        return Err(ApiError::conflict_with(
            "this email already belongs to a member",
            "already_member",
            json!({ "existing_member_id": existing.id }),
        ));
    }
    if let Some(pending) = state.store.pending_invite_for(&space_id, &email).await? {
        if pending.expires_at > Utc::now() {
            return Err(ApiError::conflict_with(
                "an invitation to this email is pending: resend it instead",
                "invite_pending",
                json!({ "existing_invite_id": pending.id }),
            ));
        }
    }
    let now = Utc::now();
    let (token, token_hash) = new_token();
    let invite = InviteRecord {
        id: new_id(),
        makerspace_id: space_id.clone(),
        email,
        role: body.role.unwrap_or(MemberRole::Member),
        plan_id: body.plan_id,
        message: optional_text("message", body.message, 2000)?,
        token_hash,
        status: InviteStatus::Pending,
        invited_by: caller.user_id.clone(),
        expires_at: now + chrono::Duration::days(i64::from(state.settings.invite_ttl_days)),
        sent_count: 1,
        accepted_at: None,
        accepted_by: None,
        created_at: now,
        updated_at: now,
    };
    state.store.insert_invite(&invite).await?;
    let sent = send_invitation(&state, &invite, &token, &space_name(&state, &space_id).await?).await;
    Ok(HttpResponse::Created().json(InviteResponse::new(invite, Some(sent))))
}

#[utoipa::path(get, path = "/api/v1/makerspaces/{makerspace_id}/members/invites", tag = "invites",
    params(("makerspace_id" = String, Path), InviteListQuery),
    responses((status = 200, body = [InviteResponse]), (status = 403, body = crate::web::ErrorBody),
              (status = 404, body = crate::web::ErrorBody), (status = 422, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<String>,
    query: web::Query<InviteListQuery>,
) -> Result<HttpResponse, ApiError> {
    let space_id = path.into_inner();
    authorize(&state, &caller, &space_id, false).await?;
    let status = match query.status.as_deref() {
        None => None,
        Some(s) => Some(InviteStatus::parse(s).ok_or_else(|| ApiError::Validation(format!("unknown status {s:?}")))?),
    };
    let invites = state.store.list_invites(&space_id, status).await?;
    Ok(HttpResponse::Ok().json(invites.into_iter().map(|i| InviteResponse::new(i, None)).collect::<Vec<_>>()))
}

#[utoipa::path(post, path = "/api/v1/makerspaces/{makerspace_id}/members/invites/{invite_id}/resend", tag = "invites",
    params(("makerspace_id" = String, Path), ("invite_id" = String, Path)),
    responses((status = 200, body = InviteResponse), (status = 403, body = crate::web::ErrorBody),
              (status = 404, body = crate::web::ErrorBody), (status = 409, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn resend(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (space_id, invite_id) = path.into_inner();
    authorize(&state, &caller, &space_id, true).await?;
    state.store.get_invite(&space_id, &invite_id).await?.ok_or_else(|| ApiError::not_found("invitation"))?;
    // A new token: the old link stops working, and the expiry starts again.
    let (token, token_hash) = new_token();
    let expires_at = Utc::now() + chrono::Duration::days(i64::from(state.settings.invite_ttl_days));
    if !state.store.renew_invite(&invite_id, &token_hash, expires_at).await? {
        return Err(ApiError::Conflict {
            detail: "only a pending invitation can be resent".into(),
            error_type: "invite_not_pending",
        });
    }
    let invite =
        state.store.get_invite(&space_id, &invite_id).await?.ok_or_else(|| ApiError::not_found("invitation"))?;
    let sent = send_invitation(&state, &invite, &token, &space_name(&state, &space_id).await?).await;
    Ok(HttpResponse::Ok().json(InviteResponse::new(invite, Some(sent))))
}

#[utoipa::path(delete, path = "/api/v1/makerspaces/{makerspace_id}/members/invites/{invite_id}", tag = "invites",
    params(("makerspace_id" = String, Path), ("invite_id" = String, Path)),
    responses((status = 204), (status = 403, body = crate::web::ErrorBody), (status = 404, body = crate::web::ErrorBody),
              (status = 409, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn cancel(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (space_id, invite_id) = path.into_inner();
    authorize(&state, &caller, &space_id, true).await?;
    state.store.get_invite(&space_id, &invite_id).await?.ok_or_else(|| ApiError::not_found("invitation"))?;
    if state.store.cancel_invite(&invite_id).await? {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::Conflict {
            detail: "only a pending invitation can be cancelled".into(),
            error_type: "invite_not_pending",
        })
    }
}

/// Finds a usable invitation by token, or the 404/409 that says why not.
async fn usable_invite(state: &AppState, token: &str) -> Result<InviteRecord, ApiError> {
    let invite = state
        .store
        .find_invite_by_token_hash(&hash_token(token))
        .await?
        .ok_or_else(|| ApiError::NotFound("no invitation with this code".into()))?;
    match refusal(&invite) {
        None => Ok(invite),
        Some(why) => Err(why),
    }
}

/// Why an invitation cannot be used now, if it cannot.
fn refusal(invite: &InviteRecord) -> Option<ApiError> {
    let (detail, error_type) = match invite_status(invite, Utc::now()) {
        "pending" => return None,
        "accepted" => ("this invitation was already used", "invite_used"),
        "cancelled" => ("this invitation was cancelled", "invite_cancelled"),
        _ => ("this invitation has expired: ask for a new one", "invite_expired"),
    };
    Some(ApiError::Conflict { detail: detail.into(), error_type })
}

fn already_member(member_id: &str) -> ApiError {
    ApiError::conflict_with(
        "you are already a member of this makerspace",
        "already_member",
        json!({ "existing_member_id": member_id }),
    )
}

#[utoipa::path(post, path = "/api/v1/members/invites/{token}/accept", tag = "invites",
    params(("token" = String, Path, description = "The code from the invitation email")),
    request_body(content = AcceptRequest, description = "Optional: the name to show (default: from the email)"),
    responses((status = 201, body = AcceptResponse), (status = 401, body = crate::web::ErrorBody),
              (status = 404, body = crate::web::ErrorBody), (status = 409, body = crate::web::ErrorBody),
              (status = 429, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn accept(
    req: HttpRequest,
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    limit(&state, &req)?;
    // The body is optional; when there is one it must be right (not silently ignored).
    let body: AcceptRequest = if body.iter().all(u8::is_ascii_whitespace) {
        AcceptRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            if e.is_data() {
                ApiError::Validation(e.to_string())
            } else {
                ApiError::BadRequest(format!("the body is not valid JSON: {e}"))
            }
        })?
    };
    let invite = usable_invite(&state, &path.into_inner()).await?;
    if let Some(existing) = state.store.find_member_by_user(&invite.makerspace_id, &caller.user_id).await? {
        return Err(already_member(&existing.id));
    }
    let local_part = invite.email.split('@').next().unwrap_or_default().to_string();
    let first_name = body.first_name.unwrap_or(local_part);
    check_len("first_name", &first_name, 100)?;
    let last_name = body.last_name.unwrap_or_default();
    if last_name.chars().count() > 100 {
        return Err(ApiError::Validation("last_name must be at most 100 characters".into()));
    }
    let now = Utc::now();
    let member = MemberRecord {
        id: new_id(),
        makerspace_id: invite.makerspace_id.clone(),
        user_id: Some(caller.user_id.clone()),
        email: invite.email.clone(),
        first_name: first_name.trim().to_string(),
        last_name: last_name.trim().to_string(),
        phone: optional_text("phone", body.phone, 40)?,
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
    match state.store.accept_invite(&invite.id, &member, &line).await {
        Ok(true) => {}
        // Someone used it (or it expired, or was cancelled) between our check and the write.
        Ok(false) => {
            let now_stored = state.store.get_invite(&invite.makerspace_id, &invite.id).await?;
            return Err(now_stored.as_ref().and_then(refusal).unwrap_or(ApiError::Conflict {
                detail: "this invitation was already used".into(),
                error_type: "invite_used",
            }));
        }
        Err(crate::store::StoreError::Conflict) => {
            let existing = state.store.find_member_by_email(&invite.makerspace_id, &invite.email).await?;
            return Err(already_member(&existing.map(|e| e.id).unwrap_or_default()));
        }
        Err(other) => return Err(other.into()),
    }
    announce(&state, &member, false);
    let name = space_name(&state, &invite.makerspace_id).await?;
    let welcome = Email {
        to: member.email.clone(),
        subject: format!("Welcome to {name}"),
        text: format!(
            "Hello {},\n\nYou are now a member of {name} on makrcave. See you on the shop floor!\n\n{}/\n",
            member.first_name, state.settings.public_url
        ),
        html: None,
    };
    let mailer = state.mailer.clone();
    actix_web::rt::spawn(async move {
        if let Err(err) = mailer.send(&welcome).await {
            tracing::warn!(error = %err, "welcome email not sent");
        }
    });
    Ok(HttpResponse::Created().json(AcceptResponse {
        makerspace_id: member.makerspace_id.clone(),
        makerspace_name: name,
        member: MemberResponse::new(member),
    }))
}

#[utoipa::path(post, path = "/api/v1/invites/validate", tag = "invites", request_body = ValidateRequest,
    responses((status = 200, body = ValidateResponse), (status = 404, body = crate::web::ErrorBody),
              (status = 409, body = crate::web::ErrorBody), (status = 429, body = crate::web::ErrorBody)))]
pub async fn validate(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<ValidateRequest>,
) -> Result<HttpResponse, ApiError> {
    limit(&state, &req)?;
    let invite = usable_invite(&state, &body.invite_token).await?;
    if let Some(user) = &body.user_id {
        if let Some(existing) = state.store.find_member_by_user(&invite.makerspace_id, user).await? {
            return Err(already_member(&existing.id));
        }
    }
    Ok(HttpResponse::Ok().json(ValidateResponse {
        valid: true,
        makerspace_name: space_name(&state, &invite.makerspace_id).await?,
        makerspace_id: invite.makerspace_id,
        email: invite.email,
        role: invite.role,
        expires_at: invite.expires_at,
    }))
}

#[utoipa::path(get, path = "/api/v1/user/makerspaces", tag = "invites",
    responses((status = 200, body = [MembershipSummary]), (status = 401, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn my_makerspaces(state: web::Data<AppState>, Caller(caller): Caller) -> Result<HttpResponse, ApiError> {
    let today = Utc::now().date_naive();
    let rows = state.store.memberships_of(&caller.user_id).await?;
    let out: Vec<MembershipSummary> = rows
        .iter()
        .cloned()
        .map(|r| {
            let stored = MemberStatus::parse(&r.status).unwrap_or(MemberStatus::Pending);
            MembershipSummary {
                status: effective_status(stored, r.end_date, today),
                makerspace_id: r.makerspace_id,
                makerspace_name: r.makerspace_name,
                member_id: r.member_id,
                role: r.role,
                plan_id: r.plan_id,
            }
        })
        .collect();
    Ok(HttpResponse::Ok().json(out))
}
