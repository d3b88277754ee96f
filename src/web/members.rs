//! `/api/v1/makerspaces/{id}/members`: the people of a makerspace over HTTP. Platform admins
//! read; the space's makerspace_admin (or a super_admin) manages. The lifecycle and its side
//! effects are [`crate::services::members`]'.

use std::collections::BTreeMap;

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::domain::members::{effective_status, MemberRole, MemberStatus};
use crate::services::access::people_of;
use crate::services::members::{self, BulkRequest, BulkResult, MemberCreate, MemberResponse, MemberUpdate};
use crate::store::members::{MemberQuery, MemberSort};
use crate::web::auth::Caller;
use crate::web::error::ApiError;
use crate::web::paging::{search_text, sort_key, Page};
use crate::web::AppState;

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
    let member = members::create(&state, &caller, &path.into_inner(), body.into_inner()).await?;
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
    people_of(&state, &caller, &space_id, false).await?;
    let q = query.into_inner();
    let (sort, descending) = sort_key(q.sort.as_deref(), MemberSort::Name, MemberSort::parse)?;
    let page = Page::of(q.page, q.page_size)?;
    let query = MemberQuery {
        search: search_text(q.search)?,
        status: q.status,
        role: q.role,
        plan_id: q.plan_id,
        sort,
        descending,
        limit: page.limit(),
        offset: page.offset(),
        today: Utc::now().date_naive(),
    };
    let (members, total) = state.store.list_members(&space_id, &query).await?;
    Ok(HttpResponse::Ok().json(MemberPage {
        members: members.into_iter().map(MemberResponse::new).collect(),
        total,
        page: page.page,
        page_size: page.page_size,
        pages: page.pages(total),
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
    people_of(&state, &caller, &space_id, false).await?;
    Ok(HttpResponse::Ok().json(MemberResponse::new(members::load_member(&state, &space_id, &member_id).await?)))
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
    let m = members::update(&state, &caller, &space_id, &member_id, body.into_inner()).await?;
    Ok(HttpResponse::Ok().json(MemberResponse::new(m)))
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
    let m = members::suspend(&state, &caller, &space_id, &member_id, &body.reason).await?;
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
    Ok(HttpResponse::Ok().json(MemberResponse::new(members::reactivate(&state, &caller, &space_id, &member_id).await?)))
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
    members::remove(&state, &caller, &space_id, &member_id).await?;
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
    people_of(&state, &caller, &space_id, false).await?;
    members::load_member(&state, &space_id, &member_id).await?;
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
    people_of(&state, &caller, &space_id, false).await?;
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
    Ok(HttpResponse::Ok().json(members::bulk(&state, &caller, &path.into_inner(), body.into_inner()).await?))
}
