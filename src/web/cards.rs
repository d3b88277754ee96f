//! `/api/v1/makerspaces/{id}/members/{member_id}/cards`: RFID/NFC cards of a member, and the
//! front-desk lookup of a card, over HTTP ([`crate::services::cards`] holds the rules).

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::members::MemberStatus;
use crate::services::cards;
use crate::store::cards::CardRecord;
use crate::web::auth::Caller;
use crate::web::error::ApiError;
use crate::web::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct CardResponse {
    pub id: String,
    pub member_id: String,
    pub label: Option<String>,
    /// The last characters of the UID (the UID itself is never stored).
    pub uid_hint: String,
    pub created_at: DateTime<Utc>,
}

impl From<CardRecord> for CardResponse {
    fn from(c: CardRecord) -> Self {
        CardResponse {
            id: c.id,
            member_id: c.member_id,
            label: c.label,
            uid_hint: c.uid_hint,
            created_at: c.created_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CardCreate {
    /// The card's UID as a reader prints it (`04:A2:1B:C3` or `04a21bc3`).
    #[schema(pattern = "^[-: \\t]*([A-Za-z0-9][-: \\t]*){4,64}$")]
    pub uid: String,
    #[schema(max_length = 100, pattern = r"^\P{Cc}*$")]
    pub label: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CardLookup {
    #[schema(pattern = "^[-: \\t]*([A-Za-z0-9][-: \\t]*){4,64}$")]
    pub uid: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CardLookupResult {
    /// Whether the card opens anything now: it is enrolled and its member is active.
    pub valid: bool,
    /// `unknown_card`, `member_suspended`, `member_expired`, `member_pending` when not valid.
    pub reason: Option<String>,
    pub member_id: Option<String>,
    pub member_name: Option<String>,
    pub member_status: Option<MemberStatus>,
}

#[utoipa::path(post, path = "/api/v1/makerspaces/{makerspace_id}/members/{member_id}/cards", tag = "cards",
    params(("makerspace_id" = String, Path), ("member_id" = String, Path)), request_body = CardCreate,
    responses((status = 201, body = CardResponse), (status = 403, body = crate::web::ErrorBody),
              (status = 404, body = crate::web::ErrorBody), (status = 409, body = crate::web::ErrorBody),
              (status = 422, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn create(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<(String, String)>,
    body: web::Json<CardCreate>,
) -> Result<HttpResponse, ApiError> {
    let (space_id, member_id) = path.into_inner();
    let body = body.into_inner();
    let card = cards::enroll(&state, &caller, &space_id, &member_id, &body.uid, body.label).await?;
    Ok(HttpResponse::Created().json(CardResponse::from(card)))
}

#[utoipa::path(get, path = "/api/v1/makerspaces/{makerspace_id}/members/{member_id}/cards", tag = "cards",
    params(("makerspace_id" = String, Path), ("member_id" = String, Path)),
    responses((status = 200, body = [CardResponse]), (status = 403, body = crate::web::ErrorBody),
              (status = 404, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (space_id, member_id) = path.into_inner();
    let cards = cards::list(&state, &caller, &space_id, &member_id).await?;
    Ok(HttpResponse::Ok().json(cards.into_iter().map(CardResponse::from).collect::<Vec<_>>()))
}

#[utoipa::path(delete, path = "/api/v1/makerspaces/{makerspace_id}/members/{member_id}/cards/{card_id}", tag = "cards",
    params(("makerspace_id" = String, Path), ("member_id" = String, Path), ("card_id" = String, Path)),
    responses((status = 204), (status = 403, body = crate::web::ErrorBody), (status = 404, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (space_id, member_id, card_id) = path.into_inner();
    cards::remove(&state, &caller, &space_id, &member_id, &card_id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Whose card is this, and does it work now? (For the front desk; kiosks get their own API.)
#[utoipa::path(post, path = "/api/v1/makerspaces/{makerspace_id}/cards/lookup", tag = "cards",
    params(("makerspace_id" = String, Path)), request_body = CardLookup,
    responses((status = 200, body = CardLookupResult), (status = 403, body = crate::web::ErrorBody),
              (status = 404, body = crate::web::ErrorBody), (status = 422, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn lookup(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<String>,
    body: web::Json<CardLookup>,
) -> Result<HttpResponse, ApiError> {
    let status = cards::lookup(&state, &caller, &path.into_inner(), &body.uid).await?;
    let (valid, reason) = (status.valid(), status.reason());
    let (member_id, member_name, member_status) = match status.member {
        Some((id, name, status)) => (Some(id), Some(name), Some(status)),
        None => (None, None, None),
    };
    Ok(HttpResponse::Ok().json(CardLookupResult { valid, reason, member_id, member_name, member_status }))
}
