//! `/api/v1/makerspaces/{id}/members/{member_id}/cards`: RFID/NFC cards of a member, and the
//! front-desk lookup of a card. UIDs are stored as keyed hashes; a card of a member who is not
//! active (suspended, expired, pending, removed) is answered as not valid at once.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use crate::domain::cards::{hash_uid, normalize_uid, uid_hint};
use crate::domain::ids::new_id;
use crate::domain::members::{effective_status, grants_access, MemberStatus};
use crate::store::cards::CardRecord;
use crate::web::auth::Caller;
use crate::web::error::ApiError;
use crate::web::members::{activity, authorize, load_member};
use crate::web::validate::optional_text;
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
    #[schema(max_length = 100)]
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

/// The stored hash of a UID, with this server's key.
pub fn card_hash(state: &AppState, uid: &str) -> Result<String, ApiError> {
    let normalized = normalize_uid(uid).map_err(ApiError::Validation)?;
    Ok(hash_uid(state.card_key.expose().as_bytes(), &normalized))
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
    authorize(&state, &caller, &space_id, true).await?;
    let member = load_member(&state, &space_id, &member_id).await?;
    let body = body.into_inner();
    let normalized = normalize_uid(&body.uid).map_err(ApiError::Validation)?;
    let card = CardRecord {
        id: new_id(),
        makerspace_id: space_id,
        member_id,
        uid_hash: hash_uid(state.card_key.expose().as_bytes(), &normalized),
        uid_hint: uid_hint(&normalized),
        label: optional_text("label", body.label, 100)?,
        created_at: Utc::now(),
    };
    let line =
        activity(&member, "card_added", &caller.user_id, json!({ "card_id": card.id, "uid_hint": card.uid_hint }));
    match state.store.insert_card(&card, &line).await {
        Ok(()) => Ok(HttpResponse::Created().json(CardResponse::from(card))),
        Err(crate::store::StoreError::Conflict) => Err(ApiError::Conflict {
            detail: "this card is already enrolled in the makerspace".into(),
            error_type: "card_already_enrolled",
        }),
        Err(other) => Err(other.into()),
    }
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
    authorize(&state, &caller, &space_id, false).await?;
    load_member(&state, &space_id, &member_id).await?;
    let cards = state.store.list_cards(&member_id).await?;
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
    authorize(&state, &caller, &space_id, true).await?;
    let member = load_member(&state, &space_id, &member_id).await?;
    let line = activity(&member, "card_removed", &caller.user_id, json!({ "card_id": card_id }));
    if state.store.delete_card(&member_id, &card_id, &line).await? {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::not_found("card"))
    }
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
    let space_id = path.into_inner();
    authorize(&state, &caller, &space_id, false).await?;
    let hash = card_hash(&state, &body.uid)?;
    let unknown = CardLookupResult {
        valid: false,
        reason: Some("unknown_card".into()),
        member_id: None,
        member_name: None,
        member_status: None,
    };
    let Some(card) = state.store.find_card(&space_id, &hash).await? else {
        return Ok(HttpResponse::Ok().json(unknown));
    };
    let Some(member) = state.store.get_member(&space_id, &card.member_id).await? else {
        return Ok(HttpResponse::Ok().json(unknown));
    };
    let status = effective_status(member.status, member.end_date, Utc::now().date_naive());
    let valid = grants_access(status);
    Ok(HttpResponse::Ok().json(CardLookupResult {
        valid,
        reason: (!valid).then(|| format!("member_{}", status.as_str())),
        member_name: Some(format!("{} {}", member.first_name, member.last_name).trim().to_string()),
        member_id: Some(member.id),
        member_status: Some(status),
    }))
}
