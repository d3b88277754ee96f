//! `/api/v1/makerspaces/{id}/members`: the people of a makerspace.
//!
//! Platform admins read; the space's makerspace_admin (or a super_admin) manages. Every
//! change is written with an activity line in the same transaction, and announced on the
//! WebSocket as a `member` message (without personal contact data).

use std::collections::BTreeMap;
use std::sync::Arc;

use actix_web::{web, HttpResponse};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use crate::domain::access::Principal;
use crate::domain::ids::new_id;
use crate::domain::members::{effective_status, grants_access, normalize_email, MemberRole, MemberStatus};
use crate::store::members::{Activity, MemberQuery, MemberRecord, MemberSort};
use crate::web::auth::Caller;
use crate::web::error::ApiError;
use crate::web::makerspaces::load_for;
use crate::web::validate::{check_len, optional_text};
use crate::web::AppState;

/// Largest page of a member listing.
const MAX_PAGE_SIZE: i64 = 200;
/// Most members one bulk operation may name.
const MAX_BULK: usize = 500;

#[derive(Debug, Serialize, ToSchema)]
pub struct MemberResponse {
    pub id: String,
    pub makerspace_id: String,
    pub user_id: Option<String>,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub full_name: String,
    pub phone: Option<String>,
    pub role: MemberRole,
    /// What counts today (an active membership past its end date is `expired`).
    pub status: MemberStatus,
    pub plan_id: Option<String>,
    pub start_date: NaiveDate,
    pub end_date: Option<NaiveDate>,
    pub suspension_reason: Option<String>,
    pub notes: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl MemberResponse {
    pub fn new(m: MemberRecord) -> Self {
        let status = effective_status(m.status, m.end_date, Utc::now().date_naive());
        MemberResponse {
            full_name: full_name(&m),
            status,
            id: m.id,
            makerspace_id: m.makerspace_id,
            user_id: m.user_id,
            email: m.email,
            first_name: m.first_name,
            last_name: m.last_name,
            phone: m.phone,
            role: m.role,
            plan_id: m.plan_id,
            start_date: m.start_date,
            end_date: m.end_date,
            suspension_reason: m.suspension_reason,
            notes: m.notes,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

fn full_name(m: &MemberRecord) -> String {
    format!("{} {}", m.first_name, m.last_name).trim().to_string()
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberCreate {
    #[schema(format = Email, max_length = 254)]
    pub email: String,
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    pub first_name: String,
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    pub last_name: String,
    #[schema(max_length = 40)]
    pub phone: Option<String>,
    /// member (default), service_provider or makerspace_admin.
    pub role: Option<MemberRole>,
    /// active (default) or pending.
    pub status: Option<MemberStatus>,
    #[schema(pattern = "^[a-z0-9][a-z0-9-]{0,63}$")]
    pub plan_id: Option<String>,
    /// Default: today.
    pub start_date: Option<NaiveDate>,
    pub end_date: Option<NaiveDate>,
    /// The person's identity (JWT `sub`), when known.
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub user_id: Option<String>,
    #[schema(max_length = 5000)]
    pub notes: Option<String>,
}

/// Fields to change; absent fields stay. Status changes go through suspend and reactivate.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberUpdate {
    #[schema(format = Email, max_length = 254)]
    pub email: Option<String>,
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    pub first_name: Option<String>,
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    pub last_name: Option<String>,
    #[schema(max_length = 40)]
    pub phone: Option<String>,
    pub role: Option<MemberRole>,
    #[schema(pattern = "^[a-z0-9][a-z0-9-]{0,63}$")]
    pub plan_id: Option<String>,
    pub start_date: Option<NaiveDate>,
    pub end_date: Option<NaiveDate>,
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub user_id: Option<String>,
    #[schema(max_length = 5000)]
    pub notes: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct MemberListQuery {
    /// Part of a name or email, any case.
    #[param(max_length = 200)]
    pub search: Option<String>,
    pub status: Option<MemberStatus>,
    pub role: Option<MemberRole>,
    pub plan_id: Option<String>,
    /// name, email, created_at, start_date, end_date or status; `-` in front for descending.
    #[param(inline, value_type = Option<MemberSortKey>)]
    pub sort: Option<String>,
    /// From 1.
    #[param(minimum = 1, maximum = 9_223_372_036_854_775_807_i64)]
    pub page: Option<i64>,
    /// 1 to 200 [default: 50].
    #[param(minimum = 1, maximum = 200)]
    pub page_size: Option<i64>,
}

/// The sort keys of a member listing (`-` in front: descending), for the document.
#[derive(ToSchema)]
#[allow(dead_code)]
pub enum MemberSortKey {
    #[schema(rename = "name")]
    Name,
    #[schema(rename = "-name")]
    NameDesc,
    #[schema(rename = "email")]
    Email,
    #[schema(rename = "-email")]
    EmailDesc,
    #[schema(rename = "created_at")]
    CreatedAt,
    #[schema(rename = "-created_at")]
    CreatedAtDesc,
    #[schema(rename = "start_date")]
    StartDate,
    #[schema(rename = "-start_date")]
    StartDateDesc,
    #[schema(rename = "end_date")]
    EndDate,
    #[schema(rename = "-end_date")]
    EndDateDesc,
    #[schema(rename = "status")]
    Status,
    #[schema(rename = "-status")]
    StatusDesc,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MemberPage {
    pub members: Vec<MemberResponse>,
    pub total: i64,
    pub page: i64,
    pub page_size: i64,
    pub pages: i64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SuspendRequest {
    #[schema(min_length = 1, max_length = 1000, pattern = r"\S")]
    pub reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ActivityResponse {
    pub action: String,
    pub actor: String,
    pub details: serde_json::Value,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PlanCount {
    pub plan_id: Option<String>,
    pub plan_name: Option<String>,
    pub members: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MemberStatistics {
    pub total: i64,
    pub by_status: BTreeMap<String, i64>,
    pub by_role: BTreeMap<String, i64>,
    pub by_plan: Vec<PlanCount>,
    pub joined_last_30_days: i64,
    pub expiring_next_30_days: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BulkOperation {
    Suspend,
    Reactivate,
    ChangePlan,
    Delete,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkRequest {
    pub operation: BulkOperation,
    #[schema(min_items = 1, max_items = 500)]
    pub member_ids: Vec<String>,
    /// Required for suspend (1 to 1000 characters); ignored otherwise.
    pub reason: Option<String>,
    /// Required for change_plan (`null` takes members off any plan); ignored otherwise.
    pub plan_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BulkFailure {
    pub member_id: String,
    pub reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BulkResult {
    pub succeeded: Vec<String>,
    pub failed: Vec<BulkFailure>,
}

/// Checks that the caller may read (or manage) members of the space, and that it exists.
pub async fn authorize(state: &AppState, caller: &Principal, space_id: &str, manage: bool) -> Result<(), ApiError> {
    let decision = if manage { caller.can_manage_members(space_id) } else { caller.can_read_members(space_id) };
    load_for(state, decision, space_id).await.map(|_| ())
}

/// Loads a live member of the space, or 404.
pub async fn load_member(state: &AppState, space_id: &str, member_id: &str) -> Result<MemberRecord, ApiError> {
    state.store.get_member(space_id, member_id).await?.ok_or_else(|| ApiError::not_found("member"))
}

/// Checks that a plan belongs to the makerspace (422 otherwise: the request is wrong).
pub async fn check_plan(state: &AppState, space_id: &str, plan_id: &str) -> Result<(), ApiError> {
    match state.store.get_plan(space_id, plan_id).await? {
        Some((plan, _)) if plan.is_active => Ok(()),
        Some(_) => Err(ApiError::Validation(format!("plan {plan_id:?} is no longer offered"))),
        None => Err(ApiError::Validation(format!("unknown plan {plan_id:?} in this makerspace"))),
    }
}

pub fn activity(member: &MemberRecord, action: &str, actor: &str, details: serde_json::Value) -> Activity {
    Activity {
        member_id: member.id.clone(),
        makerspace_id: member.makerspace_id.clone(),
        action: action.to_string(),
        actor: actor.to_string(),
        details,
        at: Utc::now(),
    }
}

/// Tells WebSocket clients of the space that a member changed (no email or phone: every
/// member of the space may be watching).
pub fn announce(state: &AppState, m: &MemberRecord, removed: bool) {
    let status = effective_status(m.status, m.end_date, Utc::now().date_naive());
    let message = json!({
        "type": "member",
        "member": {
            "member_id": m.id, "makerspace_id": m.makerspace_id, "user_id": m.user_id, "name": full_name(m),
            "role": m.role, "status": status, "removed": removed,
        }
    });
    state.hub.publish_event(&m.makerspace_id, &Arc::from(message.to_string()));
}

fn check_dates(start: NaiveDate, end: Option<NaiveDate>) -> Result<(), ApiError> {
    match end {
        Some(end) if end < start => Err(ApiError::Validation("end_date must not be before start_date".into())),
        _ => Ok(()),
    }
}

fn check_user_id(user_id: &Option<String>) -> Result<(), ApiError> {
    match user_id {
        Some(u) => check_len("user_id", u, 200),
        None => Ok(()),
    }
}

/// Turns a store conflict on insert/update into the duplicate answer, with the existing id.
async fn duplicate(state: &AppState, m: &MemberRecord) -> ApiError {
    let by_email = state.store.find_member_by_email(&m.makerspace_id, &m.email).await.ok().flatten();
    let existing = match (by_email, &m.user_id) {
        (Some(e), _) if e.id != m.id => Some(e),
        (_, Some(user)) => state.store.find_member_by_user(&m.makerspace_id, user).await.ok().flatten(),
        _ => None,
    };
    ApiError::conflict_with(
        "this person is already a member of the makerspace",
        "duplicate_member",
        json!({ "existing_member_id": existing.map(|e| e.id) }),
    )
}

/// Validates a new member and builds its record (shared with CSV import and invites).
pub async fn new_member(state: &AppState, space_id: &str, body: MemberCreate) -> Result<MemberRecord, ApiError> {
    let email = normalize_email(&body.email).map_err(ApiError::Validation)?;
    check_len("first_name", &body.first_name, 100)?;
    check_len("last_name", &body.last_name, 100)?;
    if let Some(plan) = &body.plan_id {
        check_plan(state, space_id, plan).await?;
    }
    let status = body.status.unwrap_or(MemberStatus::Active);
    if !matches!(status, MemberStatus::Active | MemberStatus::Pending) {
        return Err(ApiError::Validation("a new member is active or pending".into()));
    }
    let start_date = body.start_date.unwrap_or_else(|| Utc::now().date_naive());
    check_dates(start_date, body.end_date)?;
    check_user_id(&body.user_id)?;
    let now = Utc::now();
    Ok(MemberRecord {
        id: new_id(),
        makerspace_id: space_id.to_string(),
        user_id: body.user_id,
        email,
        first_name: body.first_name.trim().to_string(),
        last_name: body.last_name.trim().to_string(),
        phone: optional_text("phone", body.phone, 40)?,
        role: body.role.unwrap_or(MemberRole::Member),
        status,
        plan_id: body.plan_id,
        start_date,
        end_date: body.end_date,
        suspension_reason: None,
        notes: optional_text("notes", body.notes, 5000)?,
        created_at: now,
        updated_at: now,
        deleted_at: None,
    })
}

/// Stores a new member (409 with the existing member's id for a duplicate).
pub async fn insert(state: &AppState, member: &MemberRecord, action: &str, actor: &str) -> Result<(), ApiError> {
    let line = activity(member, action, actor, json!({ "role": member.role, "plan_id": member.plan_id }));
    match state.store.insert_member(member, &line).await {
        Ok(()) => {
            announce(state, member, false);
            Ok(())
        }
        Err(crate::store::StoreError::Conflict) => Err(duplicate(state, member).await),
        Err(other) => Err(other.into()),
    }
}

#[utoipa::path(post, path = "/api/v1/makerspaces/{makerspace_id}/members", tag = "members",
    params(("makerspace_id" = String, Path)), request_body = MemberCreate,
    responses((status = 201, body = MemberResponse), (status = 403, body = crate::web::ErrorBody),
              (status = 404, body = crate::web::ErrorBody), (status = 409, body = crate::web::ErrorBody),
              (status = 422, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn create(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<String>,
    body: web::Json<MemberCreate>,
) -> Result<HttpResponse, ApiError> {
    let space_id = path.into_inner();
    authorize(&state, &caller, &space_id, true).await?;
    let member = new_member(&state, &space_id, body.into_inner()).await?;
    insert(&state, &member, "created", &caller.user_id).await?;
    Ok(HttpResponse::Created().json(MemberResponse::new(member)))
}

#[utoipa::path(get, path = "/api/v1/makerspaces/{makerspace_id}/members", tag = "members",
    params(("makerspace_id" = String, Path), MemberListQuery),
    responses((status = 200, body = MemberPage), (status = 403, body = crate::web::ErrorBody),
              (status = 404, body = crate::web::ErrorBody), (status = 422, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<String>,
    query: web::Query<MemberListQuery>,
) -> Result<HttpResponse, ApiError> {
    let space_id = path.into_inner();
    authorize(&state, &caller, &space_id, false).await?;
    let q = query.into_inner();
    let (sort, descending) = match q.sort.as_deref() {
        None => (MemberSort::Name, false),
        Some(s) => {
            let (desc, key) = s.strip_prefix('-').map_or((false, s), |k| (true, k));
            (MemberSort::parse(key).ok_or_else(|| ApiError::Validation(format!("cannot sort by {key:?}")))?, desc)
        }
    };
    let page = q.page.unwrap_or(1);
    let page_size = q.page_size.unwrap_or(50);
    if page < 1 || !(1..=MAX_PAGE_SIZE).contains(&page_size) {
        return Err(ApiError::Validation(format!("page starts at 1; page_size is 1 to {MAX_PAGE_SIZE}")));
    }
    let search = q.search.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    if search.as_ref().is_some_and(|s| s.chars().count() > 200) {
        return Err(ApiError::Validation("search is at most 200 characters".into()));
    }
    let query = MemberQuery {
        search,
        status: q.status,
        role: q.role,
        plan_id: q.plan_id,
        sort,
        descending,
        limit: page_size,
        offset: (page - 1).saturating_mul(page_size),
        today: Utc::now().date_naive(),
    };
    let (members, total) = state.store.list_members(&space_id, &query).await?;
    Ok(HttpResponse::Ok().json(MemberPage {
        members: members.into_iter().map(MemberResponse::new).collect(),
        total,
        page,
        page_size,
        pages: (total + page_size - 1) / page_size,
    }))
}

#[utoipa::path(get, path = "/api/v1/makerspaces/{makerspace_id}/members/{member_id}", tag = "members",
    params(("makerspace_id" = String, Path), ("member_id" = String, Path)),
    responses((status = 200, body = MemberResponse), (status = 403, body = crate::web::ErrorBody),
              (status = 404, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn get(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (space_id, member_id) = path.into_inner();
    authorize(&state, &caller, &space_id, false).await?;
    Ok(HttpResponse::Ok().json(MemberResponse::new(load_member(&state, &space_id, &member_id).await?)))
}

#[utoipa::path(put, path = "/api/v1/makerspaces/{makerspace_id}/members/{member_id}", tag = "members",
    params(("makerspace_id" = String, Path), ("member_id" = String, Path)), request_body = MemberUpdate,
    responses((status = 200, body = MemberResponse), (status = 403, body = crate::web::ErrorBody),
              (status = 404, body = crate::web::ErrorBody), (status = 409, body = crate::web::ErrorBody),
              (status = 422, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn update(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<(String, String)>,
    body: web::Json<MemberUpdate>,
) -> Result<HttpResponse, ApiError> {
    let (space_id, member_id) = path.into_inner();
    authorize(&state, &caller, &space_id, true).await?;
    let mut m = load_member(&state, &space_id, &member_id).await?;
    let body = body.into_inner();
    let mut changed = serde_json::Map::new();
    if let Some(email) = body.email {
        m.email = normalize_email(&email).map_err(ApiError::Validation)?;
        changed.insert("email".into(), json!(m.email));
    }
    if let Some(first) = body.first_name {
        check_len("first_name", &first, 100)?;
        m.first_name = first.trim().to_string();
        changed.insert("first_name".into(), json!(m.first_name));
    }
    if let Some(last) = body.last_name {
        check_len("last_name", &last, 100)?;
        m.last_name = last.trim().to_string();
        changed.insert("last_name".into(), json!(m.last_name));
    }
    if body.phone.is_some() {
        m.phone = optional_text("phone", body.phone, 40)?;
        changed.insert("phone".into(), json!(m.phone));
    }
    if let Some(role) = body.role {
        m.role = role;
        changed.insert("role".into(), json!(role));
    }
    if let Some(plan) = body.plan_id {
        check_plan(&state, &space_id, &plan).await?;
        m.plan_id = Some(plan);
        changed.insert("plan_id".into(), json!(m.plan_id));
    }
    if let Some(start) = body.start_date {
        m.start_date = start;
        changed.insert("start_date".into(), json!(start));
    }
    if body.end_date.is_some() {
        m.end_date = body.end_date;
        changed.insert("end_date".into(), json!(m.end_date));
    }
    check_dates(m.start_date, m.end_date)?;
    if body.user_id.is_some() {
        check_user_id(&body.user_id)?;
        m.user_id = body.user_id;
        changed.insert("user_id".into(), json!(m.user_id));
    }
    if body.notes.is_some() {
        m.notes = optional_text("notes", body.notes, 5000)?;
        changed.insert("notes".into(), json!(true));
    }
    m.updated_at = Utc::now();
    save(&state, &m, activity(&m, "updated", &caller.user_id, serde_json::Value::Object(changed))).await?;
    Ok(HttpResponse::Ok().json(MemberResponse::new(m)))
}

/// Writes a member back (404 if it vanished meanwhile, 409 on a duplicate) and announces it.
pub async fn save(state: &AppState, m: &MemberRecord, line: Activity) -> Result<(), ApiError> {
    match state.store.update_member(m, &line).await {
        Ok(true) => {
            announce(state, m, m.deleted_at.is_some());
            // A member who may no longer use the space loses the machines they have unlocked.
            let status = effective_status(m.status, m.end_date, Utc::now().date_naive());
            if let (Some(user), true) = (&m.user_id, m.deleted_at.is_some() || !grants_access(status)) {
                let reason = if m.deleted_at.is_some() {
                    "member_removed".to_string()
                } else {
                    format!("member_{}", status.as_str())
                };
                crate::web::kiosk::end_sessions_of(state, &m.makerspace_id, user, None, &reason).await;
            }
            Ok(())
        }
        Ok(false) => Err(ApiError::not_found("member")),
        Err(crate::store::StoreError::Conflict) => Err(duplicate(state, m).await),
        Err(other) => Err(other.into()),
    }
}

/// The status changes: shared by the single and the bulk endpoints.
fn suspend_record(m: &mut MemberRecord, reason: &str) -> Result<(), String> {
    if m.status == MemberStatus::Suspended {
        return Err("already suspended".into());
    }
    m.status = MemberStatus::Suspended;
    m.suspension_reason = Some(reason.to_string());
    m.updated_at = Utc::now();
    Ok(())
}

fn reactivate_record(m: &mut MemberRecord) -> Result<(), String> {
    if m.status == MemberStatus::Active {
        return Err("already active".into());
    }
    m.status = MemberStatus::Active;
    m.suspension_reason = None;
    m.updated_at = Utc::now();
    Ok(())
}

#[utoipa::path(post, path = "/api/v1/makerspaces/{makerspace_id}/members/{member_id}/suspend", tag = "members",
    params(("makerspace_id" = String, Path), ("member_id" = String, Path)), request_body = SuspendRequest,
    responses((status = 200, body = MemberResponse), (status = 403, body = crate::web::ErrorBody),
              (status = 404, body = crate::web::ErrorBody), (status = 409, body = crate::web::ErrorBody),
              (status = 422, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn suspend(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<(String, String)>,
    body: web::Json<SuspendRequest>,
) -> Result<HttpResponse, ApiError> {
    let (space_id, member_id) = path.into_inner();
    authorize(&state, &caller, &space_id, true).await?;
    check_len("reason", &body.reason, 1000)?;
    let mut m = load_member(&state, &space_id, &member_id).await?;
    suspend_record(&mut m, body.reason.trim())
        .map_err(|why| ApiError::Conflict { detail: format!("member is {why}"), error_type: "invalid_status" })?;
    save(&state, &m, activity(&m, "suspended", &caller.user_id, json!({ "reason": body.reason.trim() }))).await?;
    Ok(HttpResponse::Ok().json(MemberResponse::new(m)))
}

#[utoipa::path(post, path = "/api/v1/makerspaces/{makerspace_id}/members/{member_id}/reactivate", tag = "members",
    params(("makerspace_id" = String, Path), ("member_id" = String, Path)),
    responses((status = 200, body = MemberResponse), (status = 403, body = crate::web::ErrorBody),
              (status = 404, body = crate::web::ErrorBody), (status = 409, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn reactivate(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (space_id, member_id) = path.into_inner();
    authorize(&state, &caller, &space_id, true).await?;
    let mut m = load_member(&state, &space_id, &member_id).await?;
    reactivate_record(&mut m)
        .map_err(|why| ApiError::Conflict { detail: format!("member is {why}"), error_type: "invalid_status" })?;
    save(&state, &m, activity(&m, "reactivated", &caller.user_id, json!({}))).await?;
    Ok(HttpResponse::Ok().json(MemberResponse::new(m)))
}

#[utoipa::path(delete, path = "/api/v1/makerspaces/{makerspace_id}/members/{member_id}", tag = "members",
    params(("makerspace_id" = String, Path), ("member_id" = String, Path)),
    responses((status = 204), (status = 403, body = crate::web::ErrorBody), (status = 404, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (space_id, member_id) = path.into_inner();
    authorize(&state, &caller, &space_id, true).await?;
    let mut m = load_member(&state, &space_id, &member_id).await?;
    m.deleted_at = Some(Utc::now());
    m.updated_at = Utc::now();
    save(&state, &m, activity(&m, "deleted", &caller.user_id, json!({}))).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(get, path = "/api/v1/makerspaces/{makerspace_id}/members/{member_id}/activities", tag = "members",
    params(("makerspace_id" = String, Path), ("member_id" = String, Path)),
    responses((status = 200, body = [ActivityResponse]), (status = 403, body = crate::web::ErrorBody),
              (status = 404, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn activities(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (space_id, member_id) = path.into_inner();
    authorize(&state, &caller, &space_id, false).await?;
    load_member(&state, &space_id, &member_id).await?;
    let lines = state.store.member_activities(&member_id).await?;
    let out: Vec<ActivityResponse> = lines
        .into_iter()
        .map(|a| ActivityResponse { action: a.action, actor: a.actor, details: a.details, at: a.at })
        .collect();
    Ok(HttpResponse::Ok().json(out))
}

#[utoipa::path(get, path = "/api/v1/makerspaces/{makerspace_id}/members/analytics/statistics", tag = "members",
    params(("makerspace_id" = String, Path)),
    responses((status = 200, body = MemberStatistics), (status = 403, body = crate::web::ErrorBody),
              (status = 404, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn statistics(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let space_id = path.into_inner();
    authorize(&state, &caller, &space_id, false).await?;
    let members = state.store.all_members(&space_id).await?;
    let plans = state.store.list_plans(&space_id).await?;
    let today = Utc::now().date_naive();
    let month_ago = Utc::now() - chrono::Duration::days(30);
    let in_a_month = today + chrono::Duration::days(30);
    let mut by_status: BTreeMap<String, i64> =
        crate::domain::members::MemberStatus::ALL.iter().map(|s| (s.as_str().to_string(), 0)).collect();
    let mut by_role: BTreeMap<String, i64> = BTreeMap::new();
    let mut by_plan: BTreeMap<Option<String>, i64> = BTreeMap::new();
    let (mut joined, mut expiring) = (0, 0);
    for m in &members {
        let status = effective_status(m.status, m.end_date, today);
        *by_status.entry(status.as_str().to_string()).or_default() += 1;
        *by_role.entry(m.role.as_str().to_string()).or_default() += 1;
        *by_plan.entry(m.plan_id.clone()).or_default() += 1;
        if m.created_at >= month_ago {
            joined += 1;
        }
        if status == MemberStatus::Active && m.end_date.is_some_and(|end| end <= in_a_month) {
            expiring += 1;
        }
    }
    let plan_name = |id: &Option<String>| {
        id.as_ref().and_then(|id| plans.iter().find(|(p, _)| &p.id == id).map(|(p, _)| p.name.clone()))
    };
    Ok(HttpResponse::Ok().json(MemberStatistics {
        total: members.len() as i64,
        by_status,
        by_role,
        by_plan: by_plan
            .into_iter()
            .map(|(id, n)| PlanCount { plan_name: plan_name(&id), plan_id: id, members: n })
            .collect(),
        joined_last_30_days: joined,
        expiring_next_30_days: expiring,
    }))
}

#[utoipa::path(post, path = "/api/v1/makerspaces/{makerspace_id}/members/bulk-operations", tag = "members",
    params(("makerspace_id" = String, Path)), request_body = BulkRequest,
    responses((status = 200, body = BulkResult), (status = 403, body = crate::web::ErrorBody),
              (status = 404, body = crate::web::ErrorBody), (status = 422, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn bulk(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<String>,
    body: web::Json<BulkRequest>,
) -> Result<HttpResponse, ApiError> {
    let space_id = path.into_inner();
    authorize(&state, &caller, &space_id, true).await?;
    let body = body.into_inner();
    if body.member_ids.is_empty() || body.member_ids.len() > MAX_BULK {
        return Err(ApiError::Validation(format!("name 1 to {MAX_BULK} member_ids")));
    }
    // The whole request is checked before any member changes.
    let reason = match body.operation {
        BulkOperation::Suspend => {
            let reason = body.reason.as_deref().unwrap_or_default();
            check_len("reason", reason, 1000)?;
            Some(reason.trim().to_string())
        }
        _ => None,
    };
    if body.operation == BulkOperation::ChangePlan {
        if let Some(plan) = &body.plan_id {
            check_plan(&state, &space_id, plan).await?;
        }
    }
    let mut result = BulkResult { succeeded: Vec::new(), failed: Vec::new() };
    let mut seen = std::collections::HashSet::new();
    for member_id in body.member_ids {
        if !seen.insert(member_id.clone()) {
            continue;
        }
        let fail = |reason: String| BulkFailure { member_id: member_id.clone(), reason };
        let mut m = match state.store.get_member(&space_id, &member_id).await? {
            Some(m) => m,
            None => {
                result.failed.push(fail("member not found".into()));
                continue;
            }
        };
        let (outcome, action, details) = match body.operation {
            BulkOperation::Suspend => {
                let reason = reason.clone().unwrap_or_default();
                (suspend_record(&mut m, &reason), "suspended", json!({ "reason": reason, "bulk": true }))
            }
            BulkOperation::Reactivate => (reactivate_record(&mut m), "reactivated", json!({ "bulk": true })),
            BulkOperation::ChangePlan => {
                m.plan_id = body.plan_id.clone();
                m.updated_at = Utc::now();
                (Ok(()), "plan_changed", json!({ "plan_id": body.plan_id, "bulk": true }))
            }
            BulkOperation::Delete => {
                m.deleted_at = Some(Utc::now());
                m.updated_at = Utc::now();
                (Ok(()), "deleted", json!({ "bulk": true }))
            }
        };
        if let Err(why) = outcome {
            result.failed.push(fail(why));
            continue;
        }
        match save(&state, &m, activity(&m, action, &caller.user_id, details)).await {
            Ok(()) => result.succeeded.push(member_id),
            Err(e) => result.failed.push(fail(e.to_string())),
        }
    }
    Ok(HttpResponse::Ok().json(result))
}
