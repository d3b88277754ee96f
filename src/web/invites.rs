//! Invitations over HTTP: a makerspace_admin invites an email with a role; the invitee,
//! signed in, accepts with the token from the email and becomes a member (the workflow is
//! [`crate::services::invites`]'). Accept and validate are limited per client address here,
//! as anything that takes a secret guess is.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::domain::members::{effective_status, MemberRole, MemberStatus};
use crate::services::access::people_of;
use crate::services::invites::{self, Acceptance, Invitation};
use crate::services::members::MemberResponse;
use crate::store::invites::{InviteRecord, InviteStatus};
use crate::web::auth::Caller;
use crate::web::error::ApiError;
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

impl InviteResponse {
    fn new(i: InviteRecord, email_sent: Option<bool>) -> Self {
        InviteResponse {
            status: invites::invite_status(&i, Utc::now()).to_string(),
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
    #[schema(max_length = 2000, pattern = r"^[\P{Cc}\t\n]*$")]
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
    #[schema(max_length = 100, pattern = r"^\P{Cc}*$")]
    pub last_name: Option<String>,
    #[schema(max_length = 40, pattern = r"^\P{Cc}*$")]
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

fn limit(state: &AppState, req: &HttpRequest) -> Result<(), ApiError> {
    let Some(addr) = req.peer_addr() else { return Ok(()) };
    state
        .rate_limiter
        .check(addr.ip())
        .map_err(|retry| ApiError::TooManyRequests { retry_after_s: retry.as_secs().max(1) })
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
    let body = body.into_inner();
    let asked = Invitation { email: body.email, role: body.role, plan_id: body.plan_id, message: body.message };
    let (invite, sent) = invites::invite(&state, &caller, &path.into_inner(), asked).await?;
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
    people_of(&state, &caller, &space_id, false).await?;
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
    let (invite, sent) = invites::resend(&state, &caller, &space_id, &invite_id).await?;
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
    invites::cancel(&state, &caller, &space_id, &invite_id).await?;
    Ok(HttpResponse::NoContent().finish())
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
    let acceptance = Acceptance { first_name: body.first_name, last_name: body.last_name, phone: body.phone };
    let member = invites::accept(&state, &caller, &path.into_inner(), acceptance).await?;
    Ok(HttpResponse::Created().json(AcceptResponse {
        makerspace_name: invites::space_name(&state, &member.makerspace_id).await?,
        makerspace_id: member.makerspace_id.clone(),
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
    let invite = invites::validate(&state, &body.invite_token, body.user_id.as_deref()).await?;
    Ok(HttpResponse::Ok().json(ValidateResponse {
        valid: true,
        makerspace_name: invites::space_name(&state, &invite.makerspace_id).await?,
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
