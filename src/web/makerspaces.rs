//! `/api/v1/makerspaces`: create (super_admin), list (what the caller may read), get, update
//! (super_admin or the space's makerspace_admin), delete (super_admin).

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::access::Decision;
use crate::domain::ids::{new_id, validate_id};
use crate::services::access::space_for;
use crate::services::machines;
use crate::store::makerspaces::MakerspaceRecord;
use crate::web::auth::Caller;
use crate::web::error::ApiError;
use crate::web::validate::{check_len, check_object, optional_multiline, optional_text, settings_section};
use crate::web::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MakerspaceCreate {
    /// Optional client-chosen id (`[a-z0-9][a-z0-9-]{0,63}`); a UUID otherwise.
    #[schema(pattern = "^[a-z0-9][a-z0-9-]{0,63}$")]
    pub id: Option<String>,
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub name: String,
    #[schema(max_length = 5000, pattern = r"^[\P{Cc}\t\n]*$")]
    pub description: Option<String>,
    #[schema(max_length = 500, pattern = r"^\P{Cc}*$")]
    pub location: Option<String>,
    /// IANA time zone name [default: UTC].
    #[schema(max_length = 64, pattern = "^[A-Za-z0-9/_+-]+$")]
    pub timezone: Option<String>,
    /// ISO 4217 code [default: USD].
    #[schema(pattern = "^[A-Z]{3}$")]
    pub currency: Option<String>,
    /// Free-form settings object.
    #[schema(value_type = Option<Object>)]
    pub settings: Option<serde_json::Value>,
}

/// Fields to change; absent fields stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MakerspaceUpdate {
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub name: Option<String>,
    #[schema(max_length = 5000, pattern = r"^[\P{Cc}\t\n]*$")]
    pub description: Option<String>,
    #[schema(max_length = 500, pattern = r"^\P{Cc}*$")]
    pub location: Option<String>,
    #[schema(max_length = 64, pattern = "^[A-Za-z0-9/_+-]+$")]
    pub timezone: Option<String>,
    #[schema(pattern = "^[A-Z]{3}$")]
    pub currency: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub settings: Option<serde_json::Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MakerspaceResponse {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub location: Option<String>,
    pub timezone: String,
    pub currency: String,
    pub settings: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<MakerspaceRecord> for MakerspaceResponse {
    fn from(m: MakerspaceRecord) -> Self {
        MakerspaceResponse {
            id: m.id,
            name: m.name,
            description: m.description,
            location: m.location,
            timezone: m.timezone,
            currency: m.currency,
            settings: m.settings,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

fn check_currency(currency: &str) -> Result<(), ApiError> {
    if currency.len() == 3 && currency.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(())
    } else {
        Err(ApiError::Validation("currency must be a three-letter ISO 4217 code such as USD".into()))
    }
}

fn check_timezone(tz: &str) -> Result<(), ApiError> {
    check_len("timezone", tz, 64)?;
    if tz.bytes().all(|b| b.is_ascii_alphanumeric() || b"/_+-".contains(&b)) {
        Ok(())
    } else {
        Err(ApiError::Validation("timezone must be an IANA zone name such as Europe/Berlin".into()))
    }
}

/// Checks the settings sections makrcave reads: the booking rules and the provider mode.
fn check_settings(settings: &mut serde_json::Value) -> Result<(), ApiError> {
    settings_section(settings, "booking")?;
    settings_section(settings, "provider")?;
    check_object("settings", settings)?;
    crate::domain::booking::BookingRules::from_settings(settings).map_err(ApiError::Validation)?;
    crate::domain::providers::ProviderSettings::from_settings(settings).map_err(ApiError::Validation)?;
    Ok(())
}

#[utoipa::path(post, path = "/api/v1/makerspaces", tag = "makerspaces", request_body = MakerspaceCreate,
    responses((status = 201, body = MakerspaceResponse), (status = 403, body = crate::web::ErrorBody),
              (status = 409, body = crate::web::ErrorBody), (status = 422, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn create(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    body: web::Json<MakerspaceCreate>,
) -> Result<HttpResponse, ApiError> {
    if caller.can_administer_platform() != Decision::Allow {
        return Err(ApiError::Forbidden("only a super_admin creates makerspaces".into()));
    }
    let body = body.into_inner();
    let id = match body.id {
        Some(id) => {
            validate_id(&id).map_err(|e| ApiError::Validation(format!("id: {e}")))?;
            id
        }
        None => new_id(),
    };
    check_len("name", &body.name, 200)?;
    let timezone = body.timezone.unwrap_or_else(|| "UTC".into());
    check_timezone(&timezone)?;
    let currency = body.currency.unwrap_or_else(|| "USD".into());
    check_currency(&currency)?;
    let mut settings = body.settings.unwrap_or_else(|| serde_json::json!({}));
    check_settings(&mut settings)?;
    let now = Utc::now();
    let record = MakerspaceRecord {
        id,
        name: body.name.trim().to_string(),
        description: optional_multiline("description", body.description, 5000)?,
        location: optional_text("location", body.location, 500)?,
        timezone,
        currency,
        settings,
        created_at: now,
        updated_at: now,
    };
    state.store.insert_makerspace(&record).await.map_err(|e| match ApiError::from(e) {
        ApiError::Conflict { .. } => ApiError::Conflict {
            detail: format!("a makerspace with id {:?} already exists", record.id),
            error_type: "already_exists",
        },
        other => other,
    })?;
    Ok(HttpResponse::Created().json(MakerspaceResponse::from(record)))
}

#[utoipa::path(get, path = "/api/v1/makerspaces", tag = "makerspaces",
    responses((status = 200, body = [MakerspaceResponse]), (status = 401, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(state: web::Data<AppState>, Caller(caller): Caller) -> Result<HttpResponse, ApiError> {
    let all = state.store.list_makerspaces().await?;
    let visible: Vec<MakerspaceResponse> = all
        .into_iter()
        .filter(|m| caller.lists_all_spaces() || caller.lists_space(&m.id))
        .map(MakerspaceResponse::from)
        .collect();
    Ok(HttpResponse::Ok().json(visible))
}

#[utoipa::path(get, path = "/api/v1/makerspaces/{makerspace_id}", tag = "makerspaces",
    params(("makerspace_id" = String, Path)),
    responses((status = 200, body = MakerspaceResponse), (status = 404, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn get(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let record = space_for(&state, caller.can_read_space(&id), &id).await?;
    Ok(HttpResponse::Ok().json(MakerspaceResponse::from(record)))
}

#[utoipa::path(put, path = "/api/v1/makerspaces/{makerspace_id}", tag = "makerspaces",
    params(("makerspace_id" = String, Path)), request_body = MakerspaceUpdate,
    responses((status = 200, body = MakerspaceResponse), (status = 403, body = crate::web::ErrorBody),
              (status = 404, body = crate::web::ErrorBody), (status = 422, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn update(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<String>,
    body: web::Json<MakerspaceUpdate>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let mut record = space_for(&state, caller.can_manage_space(&id), &id).await?;
    let body = body.into_inner();
    if let Some(name) = body.name {
        check_len("name", &name, 200)?;
        record.name = name.trim().to_string();
    }
    if body.description.is_some() {
        record.description = optional_multiline("description", body.description, 5000)?;
    }
    if body.location.is_some() {
        record.location = optional_text("location", body.location, 500)?;
    }
    if let Some(tz) = body.timezone {
        check_timezone(&tz)?;
        record.timezone = tz;
    }
    if let Some(currency) = body.currency {
        check_currency(&currency)?;
        record.currency = currency;
    }
    if let Some(mut settings) = body.settings {
        check_settings(&mut settings)?;
        record.settings = settings;
    }
    record.updated_at = Utc::now();
    if !state.store.update_makerspace(&record).await? {
        return Err(ApiError::not_found("makerspace"));
    }
    Ok(HttpResponse::Ok().json(MakerspaceResponse::from(record)))
}

#[utoipa::path(delete, path = "/api/v1/makerspaces/{makerspace_id}", tag = "makerspaces",
    params(("makerspace_id" = String, Path)),
    responses((status = 204), (status = 403, body = crate::web::ErrorBody), (status = 404, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let decision = match caller.can_administer_platform() {
        Decision::Allow => Decision::Allow,
        _ => match caller.can_read_space(&id) {
            Decision::Allow => Decision::Forbidden,
            other => other,
        },
    };
    machines::remove_space(&state, decision, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}
