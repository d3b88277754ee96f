//! OctoPrint's REST API with `X-Api-Key`: the calls the adapter makes, and what their answers
//! mean. The key is sent only in that header, to the machine's own URL; it never appears in a
//! URL, a log line or an error.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;

use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};
use url::Url;

use super::push::{self, Heaters, JobInfo, PrinterState, Progress};
use crate::domain::jobs::{JobCommand, JobRefusal};
use crate::domain::machine::TelemetryUpdate;

/// How long an ordinary call may take: OctoPrint answers in milliseconds when it is well.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long sending a file may take (a large G-code file over a slow link).
const UPLOAD_TIMEOUT: Duration = Duration::from_secs(300);
/// The most of OctoPrint's own error text passed on in a refusal.
const MAX_REASON: usize = 200;

/// Why a call did not give what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// No answer (connection refused, timeout, DNS): OctoPrint is unreachable.
    #[error("OctoPrint is unreachable: {0}")]
    Unreachable(String),
    /// 401 or 403: the API key is wrong (or lacks a permission).
    #[error("OctoPrint refused the API key ({0})")]
    Forbidden(u16),
    /// Any other answer than the expected one, with OctoPrint's reason.
    #[error("OctoPrint answered {0}: {1}")]
    Status(u16, String),
}

impl CallError {
    /// What the person who gave a command is told.
    pub fn refusal(&self) -> JobRefusal {
        match self {
            CallError::Unreachable(_) => JobRefusal::Offline,
            other => JobRefusal::Rejected(other.to_string()),
        }
    }
}

/// An OctoPrint instance, reached with one API key.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    /// The instance's base URL, ending in `/` (OctoPrint may live under a path prefix).
    base: Url,
    api_key: String,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api").field("base", &self.base.as_str()).finish_non_exhaustive()
    }
}

/// The base URL with a trailing slash, so that joining keeps its path.
pub fn base_url(url: &str) -> Result<Url, String> {
    let mut base = Url::parse(url).map_err(|_| "the OctoPrint URL is not a valid URL".to_string())?;
    if !matches!(base.scheme(), "http" | "https") {
        return Err("the OctoPrint URL must be http:// or https://".into());
    }
    if !base.path().ends_with('/') {
        base.set_path(&format!("{}/", base.path()));
    }
    Ok(base)
}

/// The push socket's address: `ws://` (or `wss://`) `.../sockjs/websocket`.
pub fn socket_url(base: &Url) -> Url {
    let mut url = base.join("sockjs/websocket").expect("a relative path joins any http(s) URL");
    let scheme = if base.scheme() == "https" { "wss" } else { "ws" };
    url.set_scheme(scheme).expect("ws and wss are valid schemes for an http(s) URL");
    url
}

#[derive(Debug, Deserialize)]
struct Login {
    name: String,
    session: String,
}

/// What `/api/printer` answers while a printer is connected.
#[derive(Debug, Deserialize)]
struct PrinterAnswer {
    #[serde(default)]
    state: PrinterState,
    #[serde(default)]
    temperature: Heaters,
}

#[derive(Debug, Deserialize)]
struct JobAnswer {
    #[serde(default)]
    job: JobInfo,
    #[serde(default)]
    progress: Progress,
}

/// The printer's state from `/api/printer` and `/api/job` (`None` for the printer: 409, not
/// connected).
pub fn report(printer: Option<&Value>, job: &Value) -> TelemetryUpdate {
    let job: JobAnswer = serde_json::from_value(job.clone())
        .unwrap_or(JobAnswer { job: JobInfo::default(), progress: Progress::default() });
    match printer.and_then(|p| serde_json::from_value::<PrinterAnswer>(p.clone()).ok()) {
        Some(p) => push::telemetry(&p.state, &job.job, &job.progress, Some(p.temperature.temperatures())),
        None => {
            let closed = PrinterState {
                text: "Offline".into(),
                flags: push::Flags { closed_or_error: true, ..Default::default() },
                error: None,
            };
            push::telemetry(&closed, &job.job, &job.progress, None)
        }
    }
}

/// Whether an upload with `print=true` started the print (`effectivePrint`).
pub fn upload_started(answer: &Value) -> Result<(), JobRefusal> {
    match answer.get("effectivePrint").and_then(Value::as_bool) {
        Some(true) => Ok(()),
        _ => Err(JobRefusal::Rejected(
            "OctoPrint stored the file but did not start printing it (is its printer connected and idle?)".into(),
        )),
    }
}

/// The body of `POST /api/job` for a pause, resume or cancel.
pub fn job_command_body(command: &JobCommand) -> Option<Value> {
    match command {
        JobCommand::Pause => Some(json!({"command": "pause", "action": "pause"})),
        JobCommand::Resume => Some(json!({"command": "pause", "action": "resume"})),
        JobCommand::Cancel => Some(json!({"command": "cancel"})),
        JobCommand::Start { .. } | JobCommand::Refresh => None,
    }
}

/// The multipart body of `POST /api/files/local` around the file: the part head before it
/// and the `print=true` part after it. The file itself is streamed between the two.
pub fn print_upload(boundary: &str, file_name: &str) -> (String, String) {
    // Quotes and line breaks cannot be escaped in a part header: they are replaced.
    let name: String = file_name.chars().map(|c| if matches!(c, '"' | '\r' | '\n' | '\\') { '_' } else { c }).collect();
    let head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    );
    let tail =
        format!("\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"print\"\r\n\r\ntrue\r\n--{boundary}--\r\n");
    (head, tail)
}

/// OctoPrint's reason in an error answer (`{"error": "..."}`), shortened.
fn reason(body: &str) -> String {
    let text = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| body.trim().to_string());
    let mut text: String = text.chars().filter(|c| !c.is_control()).take(MAX_REASON).collect();
    if text.is_empty() {
        text = "no reason given".into();
    }
    text
}

impl Api {
    pub fn new(http: reqwest::Client, base: Url, api_key: String) -> Api {
        Api { http, base, api_key }
    }

    pub fn base(&self) -> &Url {
        &self.base
    }

    /// One call; answers the body of a success (`expect`ed status) or why not.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Payload>,
        timeout: Duration,
        expect: &[StatusCode],
    ) -> Result<String, CallError> {
        let url = self.base.join(path).expect("a relative API path joins the base URL");
        let mut request = self.http.request(method, url).header("X-Api-Key", &self.api_key).timeout(timeout);
        if let Some(payload) = body {
            request = request.header(reqwest::header::CONTENT_TYPE, payload.content_type);
            if let Some(length) = payload.length {
                // A streamed body would otherwise go chunked; OctoPrint's upload handler wants
                // its length.
                request = request.header(reqwest::header::CONTENT_LENGTH, length);
            }
            request = request.body(payload.body);
        }
        // reqwest's errors name the URL, never the headers: the key stays out of them.
        let response = request.send().await.map_err(|e| CallError::Unreachable(e.without_url().to_string()))?;
        let status = response.status();
        let text = response.text().await.map_err(|e| CallError::Unreachable(e.without_url().to_string()))?;
        if expect.contains(&status) {
            Ok(text)
        } else if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
            Err(CallError::Forbidden(status.as_u16()))
        } else {
            Err(CallError::Status(status.as_u16(), reason(&text)))
        }
    }

    async fn json_call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        expect: &[StatusCode],
    ) -> Result<Value, CallError> {
        let body = body.map(|b| Payload {
            content_type: "application/json".to_string(),
            body: b.to_string().into(),
            length: None,
        });
        let text = self.call(method, path, body, CALL_TIMEOUT, expect).await?;
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// `GET /api/version`: up (200) and the key accepted. During start-up OctoPrint answers
    /// 404 from a temporary server: only a 200 means ready.
    pub async fn version(&self) -> Result<(), CallError> {
        self.json_call(Method::GET, "api/version", None, &[StatusCode::OK]).await.map(|_| ())
    }

    /// `POST /api/login {"passive": true}`: the push socket's credentials, `name:session`.
    pub async fn login(&self) -> Result<String, CallError> {
        let answer =
            self.json_call(Method::POST, "api/login", Some(json!({"passive": true})), &[StatusCode::OK]).await?;
        // The answer also carries the API key: it is read for the two fields and dropped.
        let login: Login = serde_json::from_value(answer)
            .map_err(|_| CallError::Status(200, "the login answer has no name and session".into()))?;
        Ok(format!("{}:{}", login.name, login.session))
    }

    /// `GET /api/printer`: `None` when OctoPrint has no printer connected (409).
    pub async fn printer(&self) -> Result<Option<Value>, CallError> {
        match self.json_call(Method::GET, "api/printer", None, &[StatusCode::OK]).await {
            Ok(v) => Ok(Some(v)),
            Err(CallError::Status(409, _)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `GET /api/job`.
    pub async fn job(&self) -> Result<Value, CallError> {
        self.json_call(Method::GET, "api/job", None, &[StatusCode::OK]).await
    }

    /// `POST /api/connection {"command": "connect"}`: OctoPrint connects its printer with the
    /// port and baud rate saved in its own settings (makrcave does not know the serial port).
    pub async fn connect_printer(&self) -> Result<(), CallError> {
        let body = json!({"command": "connect"});
        self.json_call(Method::POST, "api/connection", Some(body), &[StatusCode::NO_CONTENT, StatusCode::OK])
            .await
            .map(|_| ())
    }

    /// `POST /api/job` (pause, resume, cancel).
    pub async fn job_command(&self, body: Value) -> Result<(), CallError> {
        self.json_call(Method::POST, "api/job", Some(body), &[StatusCode::NO_CONTENT, StatusCode::OK]).await.map(|_| ())
    }

    /// `POST /api/files/local` with `print=true`, the file streamed from `path` (a G-code file
    /// may be hundreds of MB: it is never held whole); checks that the print started.
    pub async fn upload_and_print(&self, file_name: &str, path: &Path) -> Result<(), JobRefusal> {
        let unreadable = |e: std::io::Error| JobRefusal::Rejected(format!("cannot read the file to print: {e}"));
        let file = tokio::fs::File::open(path).await.map_err(unreadable)?;
        let size = file.metadata().await.map_err(unreadable)?.len();
        let boundary = format!("makrcave-{}", uuid::Uuid::new_v4().simple());
        let (head, tail) = print_upload(&boundary, file_name);
        let length = head.len() as u64 + size + tail.len() as u64;
        let parts = futures_util::stream::once(async move { Ok(Bytes::from(head)) })
            .chain(tokio_util::io::ReaderStream::new(file))
            .chain(futures_util::stream::once(async move { Ok::<_, std::io::Error>(Bytes::from(tail)) }));
        let payload = Payload {
            content_type: format!("multipart/form-data; boundary={boundary}"),
            body: reqwest::Body::wrap_stream(parts),
            length: Some(length),
        };
        let text = self
            .call(
                Method::POST,
                "api/files/local",
                Some(payload),
                UPLOAD_TIMEOUT,
                &[StatusCode::CREATED, StatusCode::OK],
            )
            .await
            .map_err(|e| e.refusal())?;
        upload_started(&serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

/// A request body: its content type, the bytes or a stream, and its length when streamed.
struct Payload {
    content_type: String,
    body: reqwest::Body,
    length: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::machine::MachineState;

    #[test]
    fn urls_keep_a_path_prefix() {
        let base = base_url("http://farm.local/octoprint").expect("valid");
        assert_eq!(base.join("api/version").expect("joins").as_str(), "http://farm.local/octoprint/api/version");
        assert_eq!(socket_url(&base).as_str(), "ws://farm.local/octoprint/sockjs/websocket");
        let base = base_url("https://p1:5000").expect("valid");
        assert_eq!(socket_url(&base).as_str(), "wss://p1:5000/sockjs/websocket");
        assert!(base_url("ftp://p1").is_err());
    }

    #[test]
    fn the_upload_answer_says_whether_the_print_started() {
        let started = json!({"done": true, "effectivePrint": true, "effectiveSelect": false, "files": {"local": {"name": "cube.gcode", "origin": "local"}}});
        assert_eq!(upload_started(&started), Ok(()));
        let stored = json!({"done": true, "effectivePrint": false, "effectiveSelect": false, "files": {"local": {"name": "cube.gcode"}}});
        assert!(matches!(upload_started(&stored), Err(JobRefusal::Rejected(_))));
    }

    #[test]
    fn printer_and_job_answers_make_a_report() {
        let printer = json!({"sd": {"ready": true}, "state": {"error": "", "flags": {"cancelling": false, "closedOrError": false, "error": false, "finishing": false, "operational": true, "paused": true, "pausing": false, "printing": false, "ready": false, "resuming": false, "sdReady": true}, "text": "Paused"}, "temperature": {"tool0": {"actual": 200.1, "target": 200.0, "offset": 0}, "bed": {"actual": 60.0, "target": 60.0, "offset": 0}}});
        let job = json!({"job": {"file": {"name": "cube.gcode", "origin": "local"}}, "progress": {"completion": 13.6, "printTimeLeft": 30.2}, "state": "Paused"});
        let t = report(Some(&printer), &job);
        assert_eq!(t.state, Some(MachineState::Paused));
        let progress = t.job.flatten().expect("a job");
        assert_eq!(
            (progress.file.as_deref(), progress.progress, progress.remaining_s),
            (Some("cube.gcode"), Some(13.6), Some(30))
        );
        assert_eq!(t.temps.and_then(|t| t.nozzle), Some(200.1));
        let idle = json!({"job": {"file": {"name": null}}, "progress": {"completion": null}, "state": "Offline"});
        let t = report(None, &idle);
        assert_eq!((t.state, t.job), (Some(MachineState::Offline), Some(None)));
    }

    #[test]
    fn job_commands_have_their_documented_bodies() {
        assert_eq!(job_command_body(&JobCommand::Pause), Some(json!({"command": "pause", "action": "pause"})));
        assert_eq!(job_command_body(&JobCommand::Resume), Some(json!({"command": "pause", "action": "resume"})));
        assert_eq!(job_command_body(&JobCommand::Cancel), Some(json!({"command": "cancel"})));
        assert_eq!(job_command_body(&JobCommand::Refresh), None);
    }

    #[test]
    fn the_upload_is_one_file_and_print_true() {
        let (head, tail) = print_upload("B", "a\"b.gcode");
        let body = format!("{head}G28\n{tail}");
        assert_eq!(
            body,
            "--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a_b.gcode\"\r\nContent-Type: application/octet-stream\r\n\r\nG28\n\r\n--B\r\nContent-Disposition: form-data; name=\"print\"\r\n\r\ntrue\r\n--B--\r\n"
        );
    }

    #[test]
    fn reasons_are_short_and_plain() {
        assert_eq!(reason("{\n  \"error\": \"Printer is not operational\"\n}\n"), "Printer is not operational");
        assert_eq!(reason(&"x".repeat(1000)).len(), MAX_REASON);
        assert_eq!(reason(""), "no reason given");
    }
}
