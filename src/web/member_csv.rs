//! CSV export and import of members.
//!
//! Import takes `text/csv` with a header row (`email,first_name,last_name` required; `phone,
//! role,plan,start_date,end_date,user_id,status,notes` optional; `plan` is a plan's name or
//! id). Each row is checked and stored on its own: the answer lists every rejected row with
//! its line and reason, and nothing of a rejected row is stored.

use std::collections::{HashMap, HashSet};

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{NaiveDate, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::members::{effective_status, MemberRole, MemberStatus};
use crate::services::access::people_of;
use crate::services::members::{insert, new_member, MemberCreate, MemberError};
use crate::web::auth::Caller;
use crate::web::csv_io::{attachment, inert_cell, ImportFile};
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
    Ok(attachment(body, &format!("members-{space_id}.csv")))
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
    let required = ["email", "first_name", "last_name"];
    let file = ImportFile::read(&req, payload, state.settings.csv_max_bytes, "members", &known, &required).await?;
    let plans = state.store.list_plans(&space_id).await?;
    let plan_by_name: HashMap<String, String> = plans
        .iter()
        .map(|(p, _)| (p.name.to_lowercase(), p.id.clone()))
        .chain(plans.iter().map(|(p, _)| (p.id.clone(), p.id.clone())))
        .collect();

    let mut result = ImportResult { created: 0, created_ids: Vec::new(), rejected: Vec::new() };
    let mut emails_in_file = HashSet::new();
    for (line, record) in &file.rows {
        let line = *line;
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                result.rejected.push(RejectedRow { line, email: None, reason: format!("malformed row: {e}") });
                continue;
            }
        };
        let field = |name: &str| file.cell(record, name).to_string();
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
