//! Emails: sent through SMTP, or written to an outbox folder when no SMTP server is configured.
//!
//! The SMTP URL is read by lettre ([`AsyncSmtpTransport::from_url`]):
//! - `smtp://[user:pass@]host[:port]`: plain SMTP, no TLS at all (port 25 by default);
//! - `smtp://...?tls=required`: STARTTLS, refused if the server does not offer it (port 587);
//! - `smtps://...`: implicit TLS (port 465).
//!
//! Without an SMTP URL every email becomes one RFC 5322 `.eml` file in `{data_dir}/outbox`, named
//! so that the names sort by time, and is logged (recipient and subject) so that an operator can
//! still hand an invitation link on.

use std::path::{Path, PathBuf};
use std::time::Duration;

use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::config::{Secret, Settings};

/// Longest a whole SMTP delivery (connect, TLS, authentication, data) may take.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(20);
/// Longest lettre waits for the connection or for any one SMTP command.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);
/// Folder in the data folder that takes the emails when no SMTP server is configured.
pub const OUTBOX_DIR: &str = "outbox";

/// One email to one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    /// `someone@example.org` or `Some One <someone@example.org>`.
    pub to: String,
    pub subject: String,
    /// The text/plain body (always sent).
    pub text: String,
    /// An HTML alternative of the same content; with it the email is multipart/alternative.
    pub html: Option<String>,
}

/// Where emails go.
#[derive(Debug, Clone)]
pub enum Mailer {
    /// Through an SMTP server.
    Smtp {
        /// Boxed: the transport is large next to the outbox variant.
        transport: Box<AsyncSmtpTransport<Tokio1Executor>>,
        from: Mailbox,
        /// The server as `host:port` (no credentials), for messages.
        server: String,
        /// Password of the SMTP URL, kept only to scrub it from any error text.
        password: Option<Secret>,
    },
    /// Written as `.eml` files into a folder.
    Outbox { dir: PathBuf, from: Mailbox },
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("{0:?} is not a valid email address")]
    InvalidAddress(String),
    /// The URL is shown without its password.
    #[error("invalid SMTP URL {url}: {reason}")]
    InvalidSmtpUrl { url: String, reason: String },
    #[error("the email to {to} cannot be built: {reason}")]
    Build { to: String, reason: String },
    #[error("sending the email to {to} through {server} failed: {reason}")]
    Send { to: String, server: String, reason: String },
    #[error("cannot write the email to {}: {source}", path.display())]
    Outbox { path: PathBuf, source: std::io::Error },
}

/// Whether `s` is a plain email address (`local@domain`, no display name, no spaces).
pub fn is_valid_address(s: &str) -> bool {
    s.parse::<Address>().is_ok()
}

impl Mailer {
    /// From settings: SMTP when smtp_url is set, else the folder `{data_dir}/outbox`.
    pub fn from_settings(settings: &Settings) -> Result<Mailer, MailError> {
        let from: Mailbox =
            settings.mail_from.parse().map_err(|_| MailError::InvalidAddress(settings.mail_from.clone()))?;
        match &settings.smtp_url {
            None => Ok(Mailer::Outbox { dir: settings.data_dir.join(OUTBOX_DIR), from }),
            Some(url) => Self::smtp(url, from),
        }
    }

    fn smtp(url: &Secret, from: Mailbox) -> Result<Mailer, MailError> {
        let parsed = url::Url::parse(url.expose());
        let password = parsed.as_ref().ok().and_then(|u| u.password()).map(Secret::new);
        let shown = match &parsed {
            Ok(u) => without_password(u),
            Err(_) => "(unparsable)".to_string(),
        };
        let invalid = |reason: String| MailError::InvalidSmtpUrl {
            url: shown.clone(),
            reason: scrub(&reason, password.as_ref()),
        };
        let parsed = parsed.map_err(|e| invalid(e.to_string()))?;
        let builder =
            AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose()).map_err(|e| invalid(error_chain(&e)))?;
        let transport = Box::new(builder.timeout(Some(COMMAND_TIMEOUT)).build());
        let host = parsed.host_str().unwrap_or_default();
        let server = match parsed.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_string(),
        };
        Ok(Mailer::Smtp { transport, from, server, password })
    }

    /// "smtp" or "outbox", for logs and health output.
    pub fn kind(&self) -> &'static str {
        match self {
            Mailer::Smtp { .. } => "smtp",
            Mailer::Outbox { .. } => "outbox",
        }
    }

    /// Sends the email (SMTP, at most [`SEND_TIMEOUT`]) or writes it to the outbox.
    pub async fn send(&self, email: &Email) -> Result<(), MailError> {
        match self {
            Mailer::Smtp { transport, from, server, password } => {
                let message = build_message(from, email)?;
                let failed = |reason: String| MailError::Send {
                    to: email.to.clone(),
                    server: server.clone(),
                    reason: scrub(&reason, password.as_ref()),
                };
                match tokio::time::timeout(SEND_TIMEOUT, transport.send(message)).await {
                    Ok(Ok(_response)) => {
                        tracing::info!(to = ?email.to, subject = ?email.subject, %server, "email sent");
                        Ok(())
                    }
                    Ok(Err(e)) => Err(failed(error_chain(&e))),
                    Err(_) => Err(failed(format!("no answer within {}s", SEND_TIMEOUT.as_secs()))),
                }
            }
            Mailer::Outbox { dir, from } => {
                let message = build_message(from, email)?;
                let path = write_to_outbox(dir, &message.formatted()).await?;
                tracing::info!(
                    to = ?email.to,
                    subject = ?email.subject,
                    path = %path.display(),
                    "email written to the outbox (no SMTP server configured)"
                );
                Ok(())
            }
        }
    }
}

/// The RFC 5322 message: From, To, Subject, Date, Message-ID, and a text/plain body or a
/// multipart/alternative of text and HTML.
fn build_message(from: &Mailbox, email: &Email) -> Result<Message, MailError> {
    let to: Mailbox = email.to.parse().map_err(|_| MailError::InvalidAddress(email.to.clone()))?;
    let builder = Message::builder().from(from.clone()).to(to).subject(email.subject.as_str()).message_id(None);
    let built = match &email.html {
        None => builder.singlepart(SinglePart::plain(email.text.clone())),
        Some(html) => builder.multipart(MultiPart::alternative_plain_html(email.text.clone(), html.clone())),
    };
    built.map_err(|e| MailError::Build { to: email.to.clone(), reason: e.to_string() })
}

/// Writes one `.eml` file (readable by its owner only: it may hold an invitation link) and
/// returns its path. The file appears under its final name complete or not at all.
async fn write_to_outbox(dir: &Path, content: &[u8]) -> Result<PathBuf, MailError> {
    let fail = |path: &Path| {
        let path = path.to_path_buf();
        move |source| MailError::Outbox { path, source }
    };
    let mut dirs = tokio::fs::DirBuilder::new();
    dirs.recursive(true);
    #[cfg(unix)]
    dirs.mode(0o700);
    dirs.create(dir).await.map_err(fail(dir))?;

    let name = format!("{}-{}", outbox_timestamp().format("%Y%m%dT%H%M%S%.6fZ"), uuid::Uuid::new_v4());
    let path = dir.join(format!("{name}.eml"));
    let partial = dir.join(format!(".{name}.eml.partial"));
    let mut options = tokio::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    let written = async {
        use tokio::io::AsyncWriteExt;
        let mut file = options.open(&partial).await?;
        file.write_all(content).await?;
        file.sync_all().await?;
        drop(file);
        tokio::fs::rename(&partial, &path).await
    }
    .await;
    if let Err(e) = written {
        let _ = tokio::fs::remove_file(&partial).await;
        return Err(fail(&path)(e));
    }
    Ok(path)
}

/// The current time, strictly later than the one it gave before (by a microsecond at least), so
/// that outbox file names sort in the order the emails were written.
fn outbox_timestamp() -> chrono::DateTime<chrono::Utc> {
    use std::sync::atomic::{AtomicI64, Ordering};
    static LAST_MICROS: AtomicI64 = AtomicI64::new(0);
    let now = chrono::Utc::now().timestamp_micros();
    let previous = LAST_MICROS
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |last| Some(now.max(last + 1)))
        .unwrap_or_else(|last| last);
    let micros = now.max(previous + 1);
    chrono::DateTime::from_timestamp_micros(micros).unwrap_or_else(chrono::Utc::now)
}

/// The URL as it may be shown: the password replaced.
fn without_password(url: &url::Url) -> String {
    let mut shown = url.clone();
    if shown.password().is_some() {
        // Only fails for URLs that cannot have credentials, which then have no password.
        let _ = shown.set_password(Some("********"));
    }
    shown.to_string()
}

/// The error with its sources, as lettre puts the useful part (e.g. "connection refused") there.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text
}

/// `text` with every occurrence of the password (raw and percent-decoded) replaced.
fn scrub(text: &str, password: Option<&Secret>) -> String {
    let Some(password) = password.map(Secret::expose).filter(|p| !p.is_empty()) else {
        return text.to_string();
    };
    let mut scrubbed = text.replace(password, "********");
    // Percent-decoding as lettre does it ('+' stays '+').
    let escaped = password.replace('+', "%2B").replace('&', "%26").replace('=', "%3D");
    if let Some((_, decoded)) = url::form_urlencoded::parse(format!("p={escaped}").as_bytes()).next() {
        if !decoded.is_empty() {
            scrubbed = scrubbed.replace(decoded.as_ref(), "********");
        }
    }
    scrubbed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(dir: &Path, smtp_url: Option<&str>) -> Settings {
        let mut settings = Settings::defaults();
        settings.data_dir = dir.to_path_buf();
        settings.smtp_url = smtp_url.map(Secret::new);
        settings
    }

    /// The header block of a message, unfolded, as (lower-case name, value) pairs.
    fn headers(message: &str) -> Vec<(String, String)> {
        let head = message.split("\r\n\r\n").next().expect("a header block");
        let mut out: Vec<(String, String)> = Vec::new();
        for line in head.split("\r\n") {
            if line.starts_with([' ', '\t']) {
                out.last_mut().expect("a folded line follows a header").1.push_str(line);
            } else {
                let (name, value) = line.split_once(':').expect("a header line");
                out.push((name.to_ascii_lowercase(), value.trim().to_string()));
            }
        }
        out
    }

    fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
        headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    #[test]
    fn addresses_are_validated() {
        for good in ["ada@example.org", "a.b+c@sub.example.co.uk", "x@localhost"] {
            assert!(is_valid_address(good), "{good} should be valid");
        }
        for bad in ["", "ada", "@example.org", "ada@", "ada example@x.org", "Ada <ada@example.org>", "a@b@c"] {
            assert!(!is_valid_address(bad), "{bad:?} should be invalid");
        }
    }

    #[test]
    fn the_kind_follows_the_settings() {
        let dir = tempfile::tempdir().expect("temp dir");
        let outbox = Mailer::from_settings(&settings(dir.path(), None)).expect("outbox mailer");
        assert_eq!(outbox.kind(), "outbox");
        let smtp = Mailer::from_settings(&settings(dir.path(), Some("smtp://127.0.0.1:2525"))).expect("smtp mailer");
        assert_eq!(smtp.kind(), "smtp");
        let smtps =
            Mailer::from_settings(&settings(dir.path(), Some("smtps://u:p@mail.example.org"))).expect("smtps mailer");
        assert_eq!(smtps.kind(), "smtp");
        assert!(!dir.path().join(OUTBOX_DIR).exists(), "nothing is written before the first email");
    }

    #[test]
    fn bad_settings_fail_at_start_without_showing_the_password() {
        let dir = tempfile::tempdir().expect("temp dir");
        for url in ["ftp://user:hunter2secret@mail.example.org", "smtp://user:hunter2secret@mail.example.org?tls=maybe"]
        {
            let err = Mailer::from_settings(&settings(dir.path(), Some(url))).expect_err("invalid SMTP URL");
            assert!(matches!(err, MailError::InvalidSmtpUrl { .. }), "{err:?}");
            let shown = format!("{err} {err:?}");
            assert!(!shown.contains("hunter2secret"), "{shown}");
            assert!(shown.contains("mail.example.org"), "{shown}");
        }
        let err = Mailer::from_settings(&settings(dir.path(), Some("not a url"))).expect_err("invalid SMTP URL");
        assert!(matches!(err, MailError::InvalidSmtpUrl { .. }), "{err:?}");

        let mut bad_from = settings(dir.path(), None);
        bad_from.mail_from = "makrcave".into();
        assert!(matches!(Mailer::from_settings(&bad_from), Err(MailError::InvalidAddress(_))));
    }

    #[test]
    fn outbox_names_sort_in_writing_order() {
        let stamps: Vec<String> =
            (0..1000).map(|_| outbox_timestamp().format("%Y%m%dT%H%M%S%.6fZ").to_string()).collect();
        assert!(stamps.windows(2).all(|w| w[0] < w[1]), "timestamps must strictly increase");
    }

    #[test]
    fn the_password_is_scrubbed() {
        let secret = Secret::new("p%40s+s");
        assert_eq!(scrub("bad p%40s+s and p@s+s", Some(&secret)), "bad ******** and ********");
        assert_eq!(scrub("untouched", None), "untouched");
    }

    #[tokio::test]
    async fn the_outbox_holds_one_parseable_file_per_email() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mailer = Mailer::from_settings(&settings(dir.path(), None)).expect("outbox mailer");
        let email = Email {
            to: "Ada Lovelace <ada@example.org>".into(),
            subject: "Your invitation".into(),
            text: "Join us: http://makrcave.test/invite/tok-123".into(),
            html: Some("<p>Join us: <a href=\"http://makrcave.test/invite/tok-123\">accept</a></p>".into()),
        };
        mailer.send(&email).await.expect("written to the outbox");
        mailer.send(&Email { html: None, text: "second".into(), ..email.clone() }).await.expect("written again");

        let outbox = dir.path().join(OUTBOX_DIR);
        let mut names: Vec<String> = std::fs::read_dir(&outbox)
            .expect("the outbox exists")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(names.iter().all(|n| n.ends_with(".eml") && n.len() > 20 && n.as_bytes()[8] == b'T'), "{names:?}");

        let first = std::fs::read_to_string(outbox.join(&names[0])).expect("read the first email");
        let h = headers(&first);
        assert_eq!(header(&h, "from"), Some("makrcave <noreply@localhost>"));
        assert_eq!(header(&h, "to"), Some("\"Ada Lovelace\" <ada@example.org>"));
        assert_eq!(header(&h, "subject"), Some("Your invitation"));
        assert!(header(&h, "date").is_some() && header(&h, "message-id").is_some(), "{h:?}");
        assert!(header(&h, "content-type").is_some_and(|v| v.starts_with("multipart/alternative")), "{h:?}");
        assert!(first.contains("Content-Type: text/plain") && first.contains("Content-Type: text/html"));
        assert!(first.contains("Join us: http://makrcave.test/invite/tok-123"));
        assert!(first.contains("<a href=\"http://makrcave.test/invite/tok-123\">accept</a>"));

        let second = std::fs::read_to_string(outbox.join(&names[1])).expect("read the second email");
        let h = headers(&second);
        assert!(header(&h, "content-type").is_some_and(|v| v.starts_with("text/plain")), "{h:?}");
        assert!(second.ends_with("second") || second.contains("\r\n\r\nsecond"), "{second}");

        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(outbox.join(&names[0])).expect("metadata").permissions().mode();
            assert_eq!(mode & 0o077, 0, "only the owner may read an email");
        }
    }

    #[tokio::test]
    async fn headers_cannot_be_injected_and_bad_recipients_are_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mailer = Mailer::from_settings(&settings(dir.path(), None)).expect("outbox mailer");
        let email = Email {
            to: "ada@example.org".into(),
            subject: "Hello\r\nBcc: eve@example.org".into(),
            text: "hi".into(),
            html: None,
        };
        mailer.send(&email).await.expect("written to the outbox");
        let entry = std::fs::read_dir(dir.path().join(OUTBOX_DIR))
            .expect("the outbox exists")
            .next()
            .expect("one email")
            .expect("entry");
        let text = std::fs::read_to_string(entry.path()).expect("read the email");
        assert!(header(&headers(&text), "bcc").is_none(), "{text}");

        let bad = Email { to: "not an address".into(), ..email };
        assert!(matches!(mailer.send(&bad).await, Err(MailError::InvalidAddress(_))));
    }
}
