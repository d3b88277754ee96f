//! `/api/v1/makerspaces/{id}/members/plans`: membership plans. Every new makerspace starts
//! with the five default plans; a plan someone is on cannot be deleted.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::billing::credits::check_included;
use crate::domain::billing::IncludedMinutes;
use crate::domain::ids::new_id;
use crate::domain::members::BillingPeriod;
use crate::services::access::people_of;
use crate::store::plans::{fee_minor_of, PlanRecord};
use crate::web::auth::Caller;
use crate::web::error::ApiError;
use crate::web::validate::{check_amount, check_len, dedup, optional_multiline};
use crate::web::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct PlanResponse {
    pub id: String,
    pub makerspace_id: String,
    pub name: String,
    pub description: Option<String>,
    pub price: f64,
    pub billing_period: BillingPeriod,
    /// `null`: no daily limit.
    pub access_hours_per_day: Option<i64>,
    pub access_24_7: bool,
    pub features: Vec<String>,
    pub is_active: bool,
    /// `price` in minor units of the space's currency: what billing charges per period.
    pub fee_minor: i64,
    /// Free minutes per kind of machine per period, used before money.
    pub included_minutes: Vec<IncludedMinutes>,
    /// Members on this plan now.
    pub member_count: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl PlanResponse {
    fn new(p: PlanRecord, member_count: i64) -> Self {
        PlanResponse {
            id: p.id,
            makerspace_id: p.makerspace_id,
            name: p.name,
            description: p.description,
            price: p.price,
            billing_period: p.billing_period,
            access_hours_per_day: p.access_hours_per_day,
            access_24_7: p.access_24_7,
            features: p.features,
            is_active: p.is_active,
            fee_minor: p.fee_minor,
            included_minutes: p.included_minutes,
            member_count,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanCreate {
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    pub name: String,
    #[schema(max_length = 2000, pattern = r"^[\P{Cc}\t\n]*$")]
    pub description: Option<String>,
    /// In the makerspace's currency (major unit), 0 to 100 000.
    #[schema(minimum = 0.0, maximum = 100000.0)]
    pub price: f64,
    pub billing_period: BillingPeriod,
    #[schema(minimum = 1, maximum = 24)]
    #[serde(default, deserialize_with = "crate::web::validate::whole_number")]
    pub access_hours_per_day: Option<i64>,
    pub access_24_7: Option<bool>,
    /// Repeats are dropped.
    #[schema(max_items = 50)]
    pub features: Option<Vec<String>>,
    /// Free minutes per kind of machine per period (each kind once).
    #[schema(max_items = 6)]
    pub included_minutes: Option<Vec<IncludedMinutes>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanUpdate {
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    pub name: Option<String>,
    #[schema(max_length = 2000, pattern = r"^[\P{Cc}\t\n]*$")]
    pub description: Option<String>,
    /// In the makerspace's currency (major unit), 0 to 100 000.
    #[schema(minimum = 0.0, maximum = 100000.0)]
    pub price: Option<f64>,
    pub billing_period: Option<BillingPeriod>,
    #[schema(minimum = 1, maximum = 24)]
    #[serde(default, deserialize_with = "crate::web::validate::whole_number")]
    pub access_hours_per_day: Option<i64>,
    pub access_24_7: Option<bool>,
    /// Repeats are dropped.
    #[schema(max_items = 50)]
    pub features: Option<Vec<String>>,
    /// A plan no longer offered stays on its members but cannot be given to new ones.
    pub is_active: Option<bool>,
    /// Replaces the plan's included minutes (each kind of machine once).
    #[schema(max_items = 6)]
    pub included_minutes: Option<Vec<IncludedMinutes>>,
}

fn check_price(price: f64) -> Result<(), ApiError> {
    Ok(check_amount("price", price)?)
}

/// The space's currency, which a plan's fee is counted in.
async fn space_currency(state: &AppState, space_id: &str) -> Result<String, ApiError> {
    let space = state.store.get_makerspace(space_id).await?.ok_or_else(|| ApiError::not_found("makerspace"))?;
    Ok(space.currency)
}

fn check_hours(hours: Option<i64>) -> Result<(), ApiError> {
    match hours {
        Some(h) if !(1..=24).contains(&h) => Err(ApiError::Validation("access_hours_per_day is 1 to 24".into())),
        _ => Ok(()),
    }
}

/// The features asked for, without repeats.
fn check_features(features: Vec<String>) -> Result<Vec<String>, ApiError> {
    if features.len() > 50 {
        return Err(ApiError::Validation("at most 50 features".into()));
    }
    features.iter().try_for_each(|f| check_len("features[]", f, 100))?;
    Ok(dedup(features))
}

fn name_taken(name: &str) -> ApiError {
    ApiError::Conflict { detail: format!("a plan named {name:?} already exists"), error_type: "duplicate_plan" }
}

#[utoipa::path(post, path = "/api/v1/makerspaces/{makerspace_id}/members/plans", tag = "plans",
    params(("makerspace_id" = String, Path)), request_body = PlanCreate,
    responses((status = 201, body = PlanResponse), (status = 403, body = crate::web::ErrorBody),
              (status = 409, body = crate::web::ErrorBody), (status = 422, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn create(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<String>,
    body: web::Json<PlanCreate>,
) -> Result<HttpResponse, ApiError> {
    let space_id = path.into_inner();
    people_of(&state, &caller, &space_id, true).await?;
    let body = body.into_inner();
    check_len("name", &body.name, 100)?;
    check_price(body.price)?;
    check_hours(body.access_hours_per_day)?;
    let features = check_features(body.features.unwrap_or_default())?;
    let included_minutes = body.included_minutes.unwrap_or_default();
    check_included(&included_minutes)?;
    let currency = space_currency(&state, &space_id).await?;
    let now = Utc::now();
    let plan = PlanRecord {
        id: new_id(),
        makerspace_id: space_id,
        name: body.name.trim().to_string(),
        description: optional_multiline("description", body.description, 2000)?,
        price: body.price,
        billing_period: body.billing_period,
        access_hours_per_day: body.access_hours_per_day,
        access_24_7: body.access_24_7.unwrap_or(false),
        features,
        is_active: true,
        fee_minor: fee_minor_of(body.price, &currency),
        included_minutes,
        created_at: now,
        updated_at: now,
    };
    state.store.insert_plan(&plan).await.map_err(|e| match e {
        crate::store::StoreError::Conflict => name_taken(&plan.name),
        other => other.into(),
    })?;
    Ok(HttpResponse::Created().json(PlanResponse::new(plan, 0)))
}

#[utoipa::path(get, path = "/api/v1/makerspaces/{makerspace_id}/members/plans", tag = "plans",
    params(("makerspace_id" = String, Path)),
    responses((status = 200, body = [PlanResponse]), (status = 403, body = crate::web::ErrorBody),
              (status = 404, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let space_id = path.into_inner();
    people_of(&state, &caller, &space_id, false).await?;
    let plans = state.store.list_plans(&space_id).await?;
    Ok(HttpResponse::Ok().json(plans.into_iter().map(|(p, n)| PlanResponse::new(p, n)).collect::<Vec<_>>()))
}

#[utoipa::path(get, path = "/api/v1/makerspaces/{makerspace_id}/members/plans/{plan_id}", tag = "plans",
    params(("makerspace_id" = String, Path), ("plan_id" = String, Path)),
    responses((status = 200, body = PlanResponse), (status = 404, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn get(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (space_id, plan_id) = path.into_inner();
    people_of(&state, &caller, &space_id, false).await?;
    let (plan, n) = state.store.get_plan(&space_id, &plan_id).await?.ok_or_else(|| ApiError::not_found("plan"))?;
    Ok(HttpResponse::Ok().json(PlanResponse::new(plan, n)))
}

#[utoipa::path(put, path = "/api/v1/makerspaces/{makerspace_id}/members/plans/{plan_id}", tag = "plans",
    params(("makerspace_id" = String, Path), ("plan_id" = String, Path)), request_body = PlanUpdate,
    responses((status = 200, body = PlanResponse), (status = 403, body = crate::web::ErrorBody),
              (status = 404, body = crate::web::ErrorBody), (status = 409, body = crate::web::ErrorBody),
              (status = 422, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn update(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<(String, String)>,
    body: web::Json<PlanUpdate>,
) -> Result<HttpResponse, ApiError> {
    let (space_id, plan_id) = path.into_inner();
    people_of(&state, &caller, &space_id, true).await?;
    let (mut plan, n) = state.store.get_plan(&space_id, &plan_id).await?.ok_or_else(|| ApiError::not_found("plan"))?;
    let body = body.into_inner();
    if let Some(name) = body.name {
        check_len("name", &name, 100)?;
        plan.name = name.trim().to_string();
    }
    if body.description.is_some() {
        plan.description = optional_multiline("description", body.description, 2000)?;
    }
    if let Some(price) = body.price {
        check_price(price)?;
        plan.price = price;
        plan.fee_minor = fee_minor_of(price, &space_currency(&state, &space_id).await?);
    }
    if let Some(lines) = body.included_minutes {
        check_included(&lines)?;
        plan.included_minutes = lines;
    }
    if let Some(period) = body.billing_period {
        plan.billing_period = period;
    }
    if body.access_hours_per_day.is_some() {
        check_hours(body.access_hours_per_day)?;
        plan.access_hours_per_day = body.access_hours_per_day;
    }
    if let Some(all_day) = body.access_24_7 {
        plan.access_24_7 = all_day;
    }
    if let Some(features) = body.features {
        plan.features = check_features(features)?;
    }
    if let Some(active) = body.is_active {
        plan.is_active = active;
    }
    plan.updated_at = Utc::now();
    match state.store.update_plan(&plan).await {
        Ok(true) => Ok(HttpResponse::Ok().json(PlanResponse::new(plan, n))),
        Ok(false) => Err(ApiError::not_found("plan")),
        Err(crate::store::StoreError::Conflict) => Err(name_taken(&plan.name)),
        Err(other) => Err(other.into()),
    }
}

#[utoipa::path(delete, path = "/api/v1/makerspaces/{makerspace_id}/members/plans/{plan_id}", tag = "plans",
    params(("makerspace_id" = String, Path), ("plan_id" = String, Path)),
    responses((status = 204), (status = 403, body = crate::web::ErrorBody), (status = 404, body = crate::web::ErrorBody),
              (status = 409, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (space_id, plan_id) = path.into_inner();
    people_of(&state, &caller, &space_id, true).await?;
    match state.store.delete_plan(&space_id, &plan_id).await {
        Ok(true) => Ok(HttpResponse::NoContent().finish()),
        Ok(false) => Err(ApiError::not_found("plan")),
        Err(crate::store::StoreError::InUse) => Err(ApiError::Conflict {
            detail: "members or invitations use this plan: move them to another plan, or set is_active to false".into(),
            error_type: "plan_in_use",
        }),
        Err(other) => Err(other.into()),
    }
}
