//! CSV export and import of members.
//!
//! Import takes `text/csv` with a header row (`email,first_name,last_name` required; `phone,
//! role,plan,start_date,end_date,user_id,status,notes` optional; `plan` is a plan's name or
//! id). Each row is checked and stored on its own: the answer lists every rejected row with
//! its line and reason, and nothing of a rejected row is stored.

use std::collections::{HashMap, HashSet};

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{NaiveDate, Utc};
use futures_util::StreamExt;
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::members::{effective_status, MemberRole, MemberStatus};
use crate::services::access::people_of;
use crate::services::members::{insert, new_member, MemberCreate, MemberError};
use crate::web::auth::Caller;
use crate::web::error::ApiError;
use crate::web::AppState;

const EXPORT_COLUMNS: [&str; 13] = [
    "id",
    "email",
    "first_name",
    "last_name",
    "phone",
    "role",
    "status",
    "plan",
    "start_date",
    "end_date",
    "user_id",
    "notes",
    "created_at",
];
/// Most rows one import may carry (with the byte limit, keeps one request bounded).
const MAX_ROWS: usize = 10_000;

#[derive(Debug, Serialize, ToSchema)]
pub struct RejectedRow {
    /// Line in the file (the header is line 1).
    pub line: u64,
    pub email: Option<String>,
    pub reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ImportResult {
    pub created: usize,
    pub created_ids: Vec<String>,
    pub rejected: Vec<RejectedRow>,
}

#[utoipa::path(get, path = "/api/v1/makerspaces/{makerspace_id}/members/export", tag = "members",
    params(("makerspace_id" = String, Path)),
    responses((status = 200, description = "CSV of every member", content_type = "text/csv"),
              (status = 403, body = crate::web::ErrorBody), (status = 404, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn export(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let space_id = path.into_inner();
    people_of(&state, &caller, &space_id, false).await?;
    let members = state.store.all_members(&space_id).await?;
    let plans: HashMap<String, String> =
        state.store.list_plans(&space_id).await?.into_iter().map(|(p, _)| (p.id, p.name)).collect();
    let today = Utc::now().date_naive();
    let mut out = csv::Writer::from_writer(Vec::new());
    let fail = |_| ApiError::Internal;
    out.write_record(EXPORT_COLUMNS).map_err(fail)?;
    for m in members {
        let plan = m.plan_id.as_ref().and_then(|id| plans.get(id)).cloned().unwrap_or_default();
        let status = effective_status(m.status, m.end_date, today);
        let cells = [
            m.id.as_str(),
            &m.email,
            &m.first_name,
            &m.last_name,
            m.phone.as_deref().unwrap_or_default(),
            m.role.as_str(),
            status.as_str(),
            &plan,
            &m.start_date.to_string(),
            &m.end_date.map(|d| d.to_string()).unwrap_or_default(),
            m.user_id.as_deref().unwrap_or_default(),
            m.notes.as_deref().unwrap_or_default(),
            &m.created_at.to_rfc3339(),
        ];
        out.write_record(cells.map(|cell| inert_cell(cell).into_owned())).map_err(fail)?;
    }
    let body = out.into_inner().map_err(|_| ApiError::Internal)?;
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header(("Content-Disposition", format!("attachment; filename=\"members-{space_id}.csv\"")))
        .body(body))
}

/// The first characters that make a spreadsheet read a cell as a formula (`=`, `+`, `-`, `@`)
/// or that some spreadsheets strip before doing so (a tab, a carriage return).
const FORMULA_STARTS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// A cell as the export writes it: text that a spreadsheet would take for a formula (CSV
/// injection) gets a leading `'`, which spreadsheets show as text and do not display.
fn inert_cell(cell: &str) -> std::borrow::Cow<'_, str> {
    if cell.starts_with(FORMULA_STARTS) {
        format!("'{cell}").into()
    } else {
        cell.into()
    }
}

/// A cell as the import reads it: the `'` that the export put before a formula-like text is
/// removed again, so that an exported file imports as what was exported.
fn imported_cell(cell: &str) -> &str {
    match cell.strip_prefix('\'') {
        Some(rest) if rest.starts_with(FORMULA_STARTS) => rest,
        _ => cell,
    }
}

/// Reads the body up to `limit` bytes (413 beyond, before anything is parsed or stored).
async fn read_limited(mut payload: web::Payload, limit: usize) -> Result<Vec<u8>, ApiError> {
    let mut body = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| ApiError::BadRequest("the body could not be read".into()))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn parse_date(column: &str, value: &str) -> Result<Option<NaiveDate>, String> {
    if value.is_empty() {
        return Ok(None);
    }
    value.parse().map(Some).map_err(|_| format!("{column} {value:?} is not a date (YYYY-MM-DD)"))
}

#[utoipa::path(post, path = "/api/v1/makerspaces/{makerspace_id}/members/import", tag = "members",
    params(("makerspace_id" = String, Path)),
    request_body(content = String, content_type = "text/csv", description = "Header row, then one member a row"),
    responses((status = 200, body = ImportResult), (status = 403, body = crate::web::ErrorBody),
              (status = 404, body = crate::web::ErrorBody), (status = 413, body = crate::web::ErrorBody),
              (status = 415, body = crate::web::ErrorBody), (status = 422, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn import(
    req: HttpRequest,
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let space_id = path.into_inner();
    people_of(&state, &caller, &space_id, true).await?;
    let content_type = req.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
    if !content_type.starts_with("text/csv") {
        return Err(ApiError::UnsupportedMediaType("send the members as text/csv".into()));
    }
    let body = read_limited(payload, state.settings.csv_max_bytes).await?;
    let mut reader = csv::ReaderBuilder::new().flexible(false).trim(csv::Trim::All).from_reader(body.as_slice());
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| ApiError::Validation(format!("the header row cannot be read: {e}")))?
        .iter()
        .map(|h| h.to_ascii_lowercase())
        .collect();
    for required in ["email", "first_name", "last_name"] {
        if !headers.iter().any(|h| h == required) {
            return Err(ApiError::Validation(format!("the header row must name the column {required:?}")));
        }
    }
    let known = [
        "email",
        "first_name",
        "last_name",
        "phone",
        "role",
        "plan",
        "start_date",
        "end_date",
        "user_id",
        "status",
        "notes",
    ];
    if let Some(unknown) = headers.iter().find(|h| !known.contains(&h.as_str())) {
        return Err(ApiError::Validation(format!("unknown column {unknown:?}; columns are {}", known.join(", "))));
    }
    let plans = state.store.list_plans(&space_id).await?;
    let plan_by_name: HashMap<String, String> = plans
        .iter()
        .map(|(p, _)| (p.name.to_lowercase(), p.id.clone()))
        .chain(plans.iter().map(|(p, _)| (p.id.clone(), p.id.clone())))
        .collect();

    let mut result = ImportResult { created: 0, created_ids: Vec::new(), rejected: Vec::new() };
    let mut emails_in_file = HashSet::new();
    for (index, record) in reader.records().enumerate() {
        let line = index as u64 + 2;
        if index >= MAX_ROWS {
            return Err(ApiError::Validation(format!("at most {MAX_ROWS} rows per import")));
        }
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                result.rejected.push(RejectedRow { line, email: None, reason: format!("malformed row: {e}") });
                continue;
            }
        };
        let field = |name: &str| {
            let cell = headers.iter().position(|h| h == name).and_then(|i| record.get(i)).unwrap_or("");
            imported_cell(cell).to_string()
        };
        let email = field("email");
        let reject =
            |reason: String| RejectedRow { line, email: Some(email.clone()).filter(|e| !e.is_empty()), reason };
        let parsed: Result<MemberCreate, String> = (|| {
            let role = match field("role").as_str() {
                "" => None,
                r => Some(MemberRole::parse(r).ok_or_else(|| format!("unknown role {r:?}"))?),
            };
            let status = match field("status").as_str() {
                "" => None,
                s => Some(MemberStatus::parse(s).ok_or_else(|| format!("unknown status {s:?}"))?),
            };
            let plan_id = match field("plan").as_str() {
                "" => None,
                p => Some(plan_by_name.get(&p.to_lowercase()).cloned().ok_or_else(|| format!("unknown plan {p:?}"))?),
            };
            let text = |name: &str| Some(field(name)).filter(|v| !v.is_empty());
            Ok(MemberCreate {
                email: email.clone(),
                first_name: field("first_name"),
                last_name: field("last_name"),
                phone: text("phone"),
                role,
                status,
                plan_id,
                start_date: parse_date("start_date", &field("start_date"))?,
                end_date: parse_date("end_date", &field("end_date"))?,
                user_id: text("user_id"),
                notes: text("notes"),
            })
        })();
        let create = match parsed {
            Ok(c) => c,
            Err(reason) => {
                result.rejected.push(reject(reason));
                continue;
            }
        };
        let member = match new_member(&state, &space_id, create).await {
            Ok(m) => m,
            Err(MemberError::Invalid(why)) => {
                result.rejected.push(reject(why.0));
                continue;
            }
            Err(other) => return Err(other.into()),
        };
        if !emails_in_file.insert(member.email.clone()) {
            result.rejected.push(reject("the same email appears earlier in the file".into()));
            continue;
        }
        match insert(&state, &member, "imported", &caller.user_id).await {
            Ok(()) => {
                result.created += 1;
                result.created_ids.push(member.id);
            }
            Err(MemberError::Duplicate { .. }) => {
                result.rejected.push(reject("already a member of the makerspace".into()))
            }
            Err(other) => return Err(other.into()),
        }
    }
    Ok(HttpResponse::Ok().json(result))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_like_cells_are_exported_as_text_and_imported_back() {
        for cell in ["=HYPERLINK(\"http://x\")", "+1 555 0100", "-2+3", "@SUM(A1)", "\tx", "\r=1"] {
            let exported = inert_cell(cell);
            assert_eq!(exported, format!("'{cell}"));
            assert_eq!(imported_cell(&exported), cell);
        }
        for cell in ["Ada", "", "'quoted'", "a=b", "ada@example.org"] {
            assert_eq!(inert_cell(cell), cell);
            assert_eq!(imported_cell(cell), cell);
        }
    }
}
