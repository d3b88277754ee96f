//! The job queue over HTTP: a submission is multipart (the `file` streamed to storage as it
//! arrives, the `spec` a small JSON text), then lists, one job with its analysis, history and
//! why it waits, and cancels. The workflows are [`crate::services::jobs`]'.

use actix_multipart::Multipart;
use actix_web::{web, HttpResponse};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::domain::job_files::facts::FileFacts;
use crate::domain::job_lifecycle::{JobStatus, Requirements};
use crate::services::job_intake::Upload;
use crate::services::jobs::{self, JobDetail, JobFilter, JobSpec, JobTransitionView, JobView, QuoteChoice, Submission};
use crate::web::auth::Caller;
use crate::web::error::ApiError;
use crate::web::multipart::multipart_error;
use crate::web::paging::{Page, PageInfo};
use crate::web::AppState;

#[derive(OpenApi)]
#[openapi(
    paths(submit, list, get, cancel),
    components(schemas(
        JobUpload,
        JobSpec,
        QuoteChoice,
        Requirements,
        Submission,
        FileFacts,
        JobView,
        JobStatus,
        JobList,
        JobDetail,
        JobTransitionView
    ))
)]
pub struct JobsApi;

/// The longest `spec` part accepted.
const MAX_SPEC_BYTES: usize = 16 * 1024;
/// The longest file name kept (longer names are cut).
const MAX_FILE_NAME: usize = 120;

pub fn routes(cfg: &mut web::ServiceConfig) {
    const JOBS: &str = "/makerspaces/{makerspace_id}/jobs";
    cfg.service(web::resource(JOBS).route(web::post().to(submit)).route(web::get().to(list)))
        .route(&format!("{JOBS}/{{job_id}}"), web::get().to(get))
        .route(&format!("{JOBS}/{{job_id}}/cancel"), web::post().to(cancel));
}

/// The multipart form of a submission.
#[derive(ToSchema)]
#[allow(dead_code)] // Only its schema is used: the form is read part by part.
pub struct JobUpload {
    /// The file to make: G-code, STL (binary or ASCII), 3MF or SVG, recognised by its content.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    /// A JSON text (see `JobSpec`): `{"equipment_type", "requirements": {"material", "color",
    /// "nozzle_mm", "tags"}, "copies", "priority", "equipment_id", "quote": {"material",
    /// "quality"}}`, every field optional.
    #[schema(value_type = Option<String>)]
    spec: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct JobList {
    pub jobs: Vec<JobView>,
    #[serde(flatten)]
    pub page: PageInfo,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct JobListQuery {
    /// Only jobs in these statuses (comma-separated: `queued,printing`).
    #[param(
        pattern = "^(offered|queued|assigned|sending|printing|paused|done|failed|cancelled|refused)(,(offered|queued|assigned|sending|printing|paused|done|failed|cancelled|refused))*$"
    )]
    pub status: Option<String>,
    /// Only this person's jobs (a member always sees only their own).
    pub owner_id: Option<String>,
    /// Only jobs on (or last on) this machine.
    pub equipment_id: Option<String>,
    #[param(minimum = 1)]
    pub page: Option<i64>,
    #[param(minimum = 1, maximum = 200)]
    pub page_size: Option<i64>,
}

/// Keeps a file name readable and harmless: no path, no control characters, at most
/// `MAX_FILE_NAME` characters.
fn clean_file_name(name: Option<&str>) -> String {
    let base = name.and_then(|n| n.rsplit(['/', '\\']).next()).unwrap_or("");
    let cleaned: String = base.chars().filter(|c| !c.is_control()).take(MAX_FILE_NAME).collect();
    let cleaned = cleaned.trim().trim_start_matches('.').to_string();
    if cleaned.is_empty() {
        "job".into()
    } else {
        cleaned
    }
}

#[utoipa::path(post, path = "/api/v1/makerspaces/{makerspace_id}/jobs", tag = "jobs",
    params(("makerspace_id" = String, Path)),
    request_body(content = JobUpload, content_type = "multipart/form-data"),
    responses((status = 201, description = "queued: one job per copy", body = Submission),
              (status = 400, description = "a multipart body that cannot be read, a part other than file and spec, or no file", body = crate::web::ErrorBody),
              (status = 403, body = crate::web::ErrorBody), (status = 404, body = crate::web::ErrorBody),
              (status = 413, description = "the file is larger than the configured limit", body = crate::web::ErrorBody),
              (status = 415, description = "not multipart, or a file that is not G-code, STL, 3MF or SVG", body = crate::web::ErrorBody),
              (status = 422, description = "a malformed or truncated file, or a bad spec", body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn submit(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<String>,
    mut form: Multipart,
) -> Result<HttpResponse, ApiError> {
    let space_id = path.into_inner();
    // Refuse outsiders before a byte of the file is stored.
    jobs::may_submit(&state, &caller, &space_id).await?;
    let mut spec: Option<Vec<u8>> = None;
    let mut file: Option<(Upload, String)> = None;
    while let Some(field) = form.next().await {
        let mut field = field.map_err(multipart_error)?;
        match field.name() {
            Some("spec") if spec.is_none() => {
                let mut text = Vec::new();
                while let Some(chunk) = field.next().await {
                    let chunk = chunk.map_err(multipart_error)?;
                    if text.len() + chunk.len() > MAX_SPEC_BYTES {
                        return Err(ApiError::PayloadTooLarge { limit: MAX_SPEC_BYTES });
                    }
                    text.extend_from_slice(&chunk);
                }
                spec = Some(text);
            }
            Some("file") if file.is_none() => {
                let name = clean_file_name(field.content_disposition().and_then(|d| d.get_filename()));
                let mut upload = Upload::begin(&state)?;
                while let Some(chunk) = field.next().await {
                    upload.write(&chunk.map_err(multipart_error)?)?;
                }
                file = Some((upload, name));
            }
            Some(other) => {
                return Err(ApiError::BadRequest(format!("unexpected or repeated part {other:?}: send file and spec")))
            }
            None => return Err(ApiError::BadRequest("a part without a name: send file and spec".into())),
        }
    }
    let spec: JobSpec = match spec {
        None => JobSpec::default(),
        Some(text) => serde_json::from_slice(&text).map_err(|e| ApiError::Validation(format!("spec: {e}")))?,
    };
    let (upload, file_name) = file.ok_or_else(|| ApiError::BadRequest("the part file is missing".into()))?;
    let stored = upload.finish(&state).await?;
    let submission = jobs::submit(&state, &caller, &space_id, spec, file_name, stored).await?;
    Ok(HttpResponse::Created().json(submission))
}

#[utoipa::path(get, path = "/api/v1/makerspaces/{makerspace_id}/jobs", tag = "jobs",
    params(("makerspace_id" = String, Path), JobListQuery),
    responses((status = 200, body = JobList), (status = 404, body = crate::web::ErrorBody),
              (status = 422, description = "an unknown status or bad paging", body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<String>,
    query: web::Query<JobListQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let page = Page::of(q.page, q.page_size)?;
    // Exactly the documented form: statuses and commas, nothing around them.
    let statuses = match q.status.as_deref() {
        None => Vec::new(),
        Some(list) => list
            .split(',')
            .map(|s| JobStatus::parse(s).ok_or_else(|| ApiError::Validation(format!("unknown job status {s:?}"))))
            .collect::<Result<_, _>>()?,
    };
    let filter = JobFilter {
        statuses,
        owner_id: q.owner_id,
        equipment_id: q.equipment_id,
        limit: page.limit(),
        offset: page.offset(),
    };
    let (jobs, total) = jobs::list(&state, &caller, &path.into_inner(), filter).await?;
    Ok(HttpResponse::Ok().json(JobList { jobs, page: PageInfo::new(page, total) }))
}

#[utoipa::path(get, path = "/api/v1/makerspaces/{makerspace_id}/jobs/{job_id}", tag = "jobs",
    params(("makerspace_id" = String, Path), ("job_id" = String, Path)),
    responses((status = 200, description = "the job, its file's analysis, its history, and why it waits", body = JobDetail),
              (status = 404, body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn get(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (space_id, job_id) = path.into_inner();
    Ok(HttpResponse::Ok().json(jobs::get(&state, &caller, &space_id, &job_id).await?))
}

#[utoipa::path(post, path = "/api/v1/makerspaces/{makerspace_id}/jobs/{job_id}/cancel", tag = "jobs",
    params(("makerspace_id" = String, Path), ("job_id" = String, Path)),
    responses((status = 200, description = "cancelled (on its machine too, if it ran)", body = JobView),
              (status = 403, body = crate::web::ErrorBody), (status = 404, body = crate::web::ErrorBody),
              (status = 409, description = "job_finished: it ended already; or the machine refused the cancel", body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn cancel(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (space_id, job_id) = path.into_inner();
    Ok(HttpResponse::Ok().json(jobs::cancel(&state, &caller, &space_id, &job_id).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_made_harmless() {
        assert_eq!(clean_file_name(Some("../../etc/passwd")), "passwd");
        assert_eq!(clean_file_name(Some("C:\\parts\\bracket v2.stl")), "bracket v2.stl");
        assert_eq!(clean_file_name(Some("a\u{7}b\n.gcode")), "ab.gcode");
        assert_eq!(clean_file_name(Some("...")), "job");
        assert_eq!(clean_file_name(None), "job");
        assert_eq!(clean_file_name(Some(&"x".repeat(500))).len(), MAX_FILE_NAME);
    }

    #[test]
    fn the_documented_status_filter_names_every_status() {
        let params = JobListQuery::into_params(|| None);
        let status = params.iter().find(|p| p.name == "status").expect("a status parameter");
        let schema = serde_json::to_value(&status.schema).expect("a schema");
        let pattern = schema["pattern"].as_str().expect("a pattern");
        let names: Vec<&str> = JobStatus::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(pattern, format!("^({0})(,({0}))*$", names.join("|")));
    }
}
