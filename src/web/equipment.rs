//! `/api/v1/makerspaces/{id}/equipment`: the machines of a makerspace and their live state.
//! Members read; the space's makerspace_admin (or a super_admin) creates, edits and deletes.
//! Every change reaches the machine's actor: started on create, reconfigured on edit,
//! stopped on delete.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::actors::machine::MachineView;
use crate::domain::equipment::{AdminStatus, Connection, EquipmentType};
use crate::domain::ids::{new_id, validate_id};
use crate::domain::machine::MachineState;
use crate::services::access::space_for;
use crate::services::{machines, sessions};
use crate::store::equipment::EquipmentRecord;
use crate::web::auth::Caller;
use crate::web::error::ApiError;
use crate::web::validate::{check_amount, check_len, check_object, dedup, optional_text};
use crate::web::AppState;

/// Longest heartbeat timeout (a day): beyond that "offline" would mean nothing.
const MAX_HEARTBEAT_TIMEOUT_S: i64 = 86_400;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EquipmentCreate {
    /// Optional client-chosen id (`[a-z0-9][a-z0-9-]{0,63}`, e.g. `eq-laser-001`).
    #[schema(pattern = "^[a-z0-9][a-z0-9-]{0,63}$")]
    pub id: Option<String>,
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub name: String,
    #[serde(rename = "type")]
    pub kind: EquipmentType,
    /// `available` (default) or `maintenance`.
    pub status: Option<AdminStatus>,
    #[schema(max_length = 500, pattern = r"^\P{Cc}*$")]
    pub location: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub specifications: Option<serde_json::Value>,
    /// Skill ids of the makerspace a member must hold to use the machine (repeats are
    /// dropped).
    #[schema(max_items = 100)]
    pub skill_requirements: Option<Vec<String>>,
    /// In the makerspace's currency (major unit), 0 to 100 000.
    #[schema(minimum = 0.0, maximum = 100000.0)]
    pub hourly_rate: Option<f64>,
    #[schema(max_length = 500, pattern = r"^\P{Cc}*$")]
    pub maintenance_schedule: Option<String>,
    /// How the machine talks to makrcave [default: {"kind": "mqtt"}].
    pub connection: Option<Connection>,
    /// Seconds of silence before the machine is shown offline [default: server setting].
    #[schema(minimum = 1, maximum = 86400)]
    #[serde(default, deserialize_with = "crate::web::validate::whole_number")]
    pub heartbeat_timeout_s: Option<i64>,
    /// Bookings stay pending until a makerspace_admin approves them [default: false].
    pub requires_approval: Option<bool>,
    /// The machine clears its own bed (belt printer, plate changer): a finished job does not
    /// wait for a person to confirm it [default: false].
    pub auto_clear: Option<bool>,
}

/// Fields to change; absent fields stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EquipmentUpdate {
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub name: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<EquipmentType>,
    /// `available` or `maintenance`.
    pub status: Option<AdminStatus>,
    #[schema(max_length = 500, pattern = r"^\P{Cc}*$")]
    pub location: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub specifications: Option<serde_json::Value>,
    /// Skill ids of the makerspace (repeats are dropped).
    #[schema(max_items = 100)]
    pub skill_requirements: Option<Vec<String>>,
    /// In the makerspace's currency (major unit), 0 to 100 000.
    #[schema(minimum = 0.0, maximum = 100000.0)]
    pub hourly_rate: Option<f64>,
    #[schema(max_length = 500, pattern = r"^\P{Cc}*$")]
    pub maintenance_schedule: Option<String>,
    pub connection: Option<Connection>,
    #[schema(minimum = 1, maximum = 86400)]
    #[serde(default, deserialize_with = "crate::web::validate::whole_number")]
    pub heartbeat_timeout_s: Option<i64>,
    pub requires_approval: Option<bool>,
    pub auto_clear: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EquipmentResponse {
    pub id: String,
    pub makerspace_id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: EquipmentType,
    /// The documents' coarse status: available, in_use, maintenance, offline.
    pub status: String,
    /// The live state from the machine's actor.
    pub live_state: MachineState,
    pub is_available: bool,
    pub location: Option<String>,
    pub specifications: serde_json::Value,
    pub skill_requirements: Vec<String>,
    pub hourly_rate: Option<f64>,
    pub maintenance_schedule: Option<String>,
    /// Connection settings, secrets masked.
    pub connection: Connection,
    pub heartbeat_timeout_s: i64,
    /// Bookings stay pending until a makerspace_admin approves them.
    pub requires_approval: bool,
    /// The machine clears its own bed: no `awaiting_clear` after a job.
    pub auto_clear: bool,
    pub last_heard: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl EquipmentResponse {
    fn new(record: EquipmentRecord, live: Option<&MachineView>) -> Self {
        let live_state = live.map(|v| v.state).unwrap_or(match record.admin_status {
            AdminStatus::Maintenance => MachineState::Maintenance,
            AdminStatus::Available => MachineState::Offline,
        });
        EquipmentResponse {
            status: live_state.document_status().to_string(),
            live_state,
            is_available: live_state == MachineState::Idle,
            last_heard: live.and_then(|v| v.last_heard),
            connection: record.connection.redacted(),
            id: record.id,
            makerspace_id: record.makerspace_id,
            name: record.name,
            kind: record.kind,
            location: record.location,
            specifications: record.specifications,
            skill_requirements: record.skill_requirements,
            hourly_rate: record.hourly_rate,
            maintenance_schedule: record.maintenance_schedule,
            heartbeat_timeout_s: record.heartbeat_timeout_s,
            requires_approval: record.requires_approval,
            auto_clear: record.auto_clear,
            created_at: record.created_at,
            updated_at: record.updated_at,
        }
    }
}

/// The statuses an equipment listing filters on (the documents' statuses and the live
/// states), for the document.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum EquipmentStatusFilter {
    Available,
    InUse,
    Maintenance,
    Offline,
    Idle,
    Reserved,
    Running,
    Paused,
    Error,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// A document status (available, in_use, maintenance, offline) or a live state (idle,
    /// running, paused, error, ...).
    #[param(inline, value_type = Option<EquipmentStatusFilter>)]
    pub status: Option<String>,
    /// Equipment type, e.g. `3d_printer`.
    #[serde(rename = "type")]
    pub kind: Option<EquipmentType>,
}

fn check_rate(rate: Option<f64>) -> Result<(), ApiError> {
    Ok(rate.map_or(Ok(()), |r| check_amount("hourly_rate", r))?)
}

fn check_heartbeat(seconds: i64) -> Result<(), ApiError> {
    if (1..=MAX_HEARTBEAT_TIMEOUT_S).contains(&seconds) {
        Ok(())
    } else {
        Err(ApiError::Validation(format!("heartbeat_timeout_s must be between 1 and {MAX_HEARTBEAT_TIMEOUT_S}")))
    }
}

/// The skill requirements asked for, without repeats, each a skill of the space.
async fn check_skills(state: &AppState, space_id: &str, skills: Vec<String>) -> Result<Vec<String>, ApiError> {
    if skills.len() > 100 {
        return Err(ApiError::Validation("at most 100 skill requirements".into()));
    }
    skills.iter().try_for_each(|s| check_len("skill_requirements[]", s, 100))?;
    let skills = dedup(skills);
    machines::check_skill_requirements(state, space_id, &skills).await?;
    Ok(skills)
}

fn check_connection(connection: &Connection) -> Result<(), ApiError> {
    connection.validate().map_err(ApiError::Validation)
}

#[utoipa::path(post, path = "/api/v1/makerspaces/{makerspace_id}/equipment", tag = "equipment",
    params(("makerspace_id" = String, Path)), request_body = EquipmentCreate,
    responses((status = 201, body = EquipmentResponse), (status = 403, body = crate::web::ErrorBody),
              (status = 404, body = crate::web::ErrorBody), (status = 409, body = crate::web::ErrorBody),
              (status = 422, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn create(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<String>,
    body: web::Json<EquipmentCreate>,
) -> Result<HttpResponse, ApiError> {
    let space_id = path.into_inner();
    space_for(&state, caller.can_manage_space(&space_id), &space_id).await?;
    let body = body.into_inner();
    let id = match body.id {
        Some(id) => {
            validate_id(&id).map_err(|e| ApiError::Validation(format!("id: {e}")))?;
            id
        }
        None => new_id(),
    };
    check_len("name", &body.name, 200)?;
    check_rate(body.hourly_rate)?;
    let specifications = body.specifications.unwrap_or_else(|| serde_json::json!({}));
    check_object("specifications", &specifications)?;
    let skill_requirements = check_skills(&state, &space_id, body.skill_requirements.unwrap_or_default()).await?;
    let connection = body.connection.unwrap_or_default();
    check_connection(&connection)?;
    let heartbeat_timeout_s = body.heartbeat_timeout_s.unwrap_or(state.settings.heartbeat_timeout_s as i64);
    check_heartbeat(heartbeat_timeout_s)?;
    let now = Utc::now();
    let record = EquipmentRecord {
        id,
        makerspace_id: space_id,
        name: body.name.trim().to_string(),
        kind: body.kind,
        admin_status: body.status.unwrap_or_default(),
        location: optional_text("location", body.location, 500)?,
        specifications,
        skill_requirements,
        hourly_rate: body.hourly_rate,
        maintenance_schedule: optional_text("maintenance_schedule", body.maintenance_schedule, 500)?,
        connection,
        heartbeat_timeout_s,
        requires_approval: body.requires_approval.unwrap_or(false),
        auto_clear: body.auto_clear.unwrap_or(false),
        created_at: now,
        updated_at: now,
    };
    let view = machines::add(&state, &record).await?;
    Ok(HttpResponse::Created().json(EquipmentResponse::new(record, view.as_ref())))
}

#[utoipa::path(get, path = "/api/v1/makerspaces/{makerspace_id}/equipment", tag = "equipment",
    params(("makerspace_id" = String, Path), ListQuery),
    responses((status = 200, body = [EquipmentResponse]), (status = 404, body = crate::web::ErrorBody),
              (status = 422, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<String>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let space_id = path.into_inner();
    // Read first: an outsider learns nothing about the space, not even that a filter is wrong.
    let (records, views) = machines::list(&state, caller.can_read_space(&space_id), &space_id, query.kind).await?;
    let status_filter = match query.status.as_deref() {
        None => None,
        Some(s) if MachineState::parse(s).is_some() || ["available", "in_use", "offline"].contains(&s) => Some(s),
        Some(s) => return Err(ApiError::Validation(format!("unknown status {s:?}"))),
    };
    let out: Vec<EquipmentResponse> = records
        .into_iter()
        .map(|r| {
            let view = views.get(&r.id);
            EquipmentResponse::new(r, view)
        })
        .filter(|e| status_filter.is_none_or(|s| e.status == s || e.live_state.as_str() == s))
        .collect();
    Ok(HttpResponse::Ok().json(out))
}

#[utoipa::path(get, path = "/api/v1/makerspaces/{makerspace_id}/equipment/{equipment_id}", tag = "equipment",
    params(("makerspace_id" = String, Path), ("equipment_id" = String, Path)),
    responses((status = 200, body = EquipmentResponse), (status = 404, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn get(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (space_id, equipment_id) = path.into_inner();
    let (record, view) = machines::get(&state, caller.can_read_space(&space_id), &space_id, &equipment_id).await?;
    Ok(HttpResponse::Ok().json(EquipmentResponse::new(record, view.as_ref())))
}

#[utoipa::path(get, path = "/api/v1/makerspaces/{makerspace_id}/equipment/{equipment_id}/state", tag = "equipment",
    params(("makerspace_id" = String, Path), ("equipment_id" = String, Path)),
    responses((status = 200, body = MachineView), (status = 404, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn live_state(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (space_id, equipment_id) = path.into_inner();
    Ok(HttpResponse::Ok()
        .json(machines::live_state(&state, caller.can_read_space(&space_id), &space_id, &equipment_id).await?))
}

#[utoipa::path(put, path = "/api/v1/makerspaces/{makerspace_id}/equipment/{equipment_id}", tag = "equipment",
    params(("makerspace_id" = String, Path), ("equipment_id" = String, Path)), request_body = EquipmentUpdate,
    responses((status = 200, body = EquipmentResponse), (status = 403, body = crate::web::ErrorBody),
              (status = 404, body = crate::web::ErrorBody), (status = 422, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn update(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<(String, String)>,
    body: web::Json<EquipmentUpdate>,
) -> Result<HttpResponse, ApiError> {
    let (space_id, equipment_id) = path.into_inner();
    space_for(&state, caller.can_manage_space(&space_id), &space_id).await?;
    let mut record = machines::load(&state, &space_id, &equipment_id).await?;
    let body = body.into_inner();
    if let Some(name) = body.name {
        check_len("name", &name, 200)?;
        record.name = name.trim().to_string();
    }
    if let Some(kind) = body.kind {
        record.kind = kind;
    }
    if let Some(status) = body.status {
        record.admin_status = status;
    }
    if body.location.is_some() {
        record.location = optional_text("location", body.location, 500)?;
    }
    if let Some(specs) = body.specifications {
        check_object("specifications", &specs)?;
        record.specifications = specs;
    }
    if let Some(skills) = body.skill_requirements {
        record.skill_requirements = check_skills(&state, &space_id, skills).await?;
    }
    if body.hourly_rate.is_some() {
        check_rate(body.hourly_rate)?;
        record.hourly_rate = body.hourly_rate;
    }
    if body.maintenance_schedule.is_some() {
        record.maintenance_schedule = optional_text("maintenance_schedule", body.maintenance_schedule, 500)?;
    }
    if let Some(connection) = body.connection {
        check_connection(&connection)?;
        // A client that read a masked secret and sends it back unchanged keeps the stored one.
        record.connection = connection.keep_masked(&record.connection);
    }
    if let Some(seconds) = body.heartbeat_timeout_s {
        check_heartbeat(seconds)?;
        record.heartbeat_timeout_s = seconds;
    }
    if let Some(approval) = body.requires_approval {
        record.requires_approval = approval;
    }
    if let Some(auto_clear) = body.auto_clear {
        record.auto_clear = auto_clear;
    }
    record.updated_at = Utc::now();
    let view = machines::reconfigure(&state, &record).await?;
    Ok(HttpResponse::Ok().json(EquipmentResponse::new(record, view.as_ref())))
}

#[utoipa::path(delete, path = "/api/v1/makerspaces/{makerspace_id}/equipment/{equipment_id}", tag = "equipment",
    params(("makerspace_id" = String, Path), ("equipment_id" = String, Path)),
    responses((status = 204), (status = 403, body = crate::web::ErrorBody), (status = 404, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (space_id, equipment_id) = path.into_inner();
    machines::remove(&state, caller.can_manage_space(&space_id), &space_id, &equipment_id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Ends the session on a machine from a dashboard: the member whose session it is, or the
/// makerspace's admins.
#[utoipa::path(post, path = "/api/v1/makerspaces/{makerspace_id}/equipment/{equipment_id}/lock", tag = "equipment",
    params(("makerspace_id" = String, Path), ("equipment_id" = String, Path)),
    responses((status = 200, body = crate::store::machine_states::EndedSession), (status = 403, body = crate::web::ErrorBody),
              (status = 404, body = crate::web::ErrorBody), (status = 409, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn lock(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (space_id, equipment_id) = path.into_inner();
    Ok(HttpResponse::Ok().json(sessions::lock_from_dashboard(&state, &caller, &space_id, &equipment_id).await?))
}
