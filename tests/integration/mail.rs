//! Emails caught by a real SMTP server (aiosmtpd).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use makrcave::config::Secret;
use makrcave::notify::email::{Email, MailError, Mailer};
use makrcave::Settings;

use crate::common::{eventually, free_port, python};

/// An SMTP server that keeps every message it accepts: `NNNN.json` (the envelope), then
/// `NNNN.eml` (the message as received), the latter renamed into place when complete.
const SMTP_SERVER: &str = r#"
import json, os, sys, threading
from aiosmtpd.controller import Controller

port, out = int(sys.argv[1]), sys.argv[2]

class Keep:
    def __init__(self):
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        name = os.path.join(out, "%04d" % self.count)
        with open(name + ".json", "w") as f:
            json.dump({"mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos}, f)
        with open(name + ".partial", "wb") as f:
            f.write(envelope.original_content)
        os.rename(name + ".partial", name + ".eml")
        return "250 Message accepted for delivery"

controller = Controller(Keep(), hostname="127.0.0.1", port=port)
controller.start()
print("listening", flush=True)
threading.Event().wait()
"#;

/// aiosmtpd on a free port, killed on drop.
struct SmtpServer {
    port: u16,
    child: Child,
    dir: tempfile::TempDir,
}

impl SmtpServer {
    async fn start() -> SmtpServer {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(dir.path().join("mail")).expect("create the mail folder");
        let stderr = std::fs::File::create(dir.path().join("stderr.log")).expect("create the server log");
        let port = free_port();
        let child = Command::new(python())
            .arg("-c")
            .arg(SMTP_SERVER)
            .arg(port.to_string())
            .arg(dir.path().join("mail"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start the SMTP server (aiosmtpd)");
        let mut server = SmtpServer { port, child, dir };
        let log = server.dir.path().join("stderr.log");
        eventually(Duration::from_secs(15), "the SMTP server accepts connections", || {
            let exited = server.child.try_wait().expect("poll the SMTP server");
            let log = log.clone();
            async move {
                if let Some(status) = exited {
                    panic!("the SMTP server exited ({status}): {}", std::fs::read_to_string(&log).unwrap_or_default());
                }
                tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok().map(|_| ())
            }
        })
        .await;
        server
    }

    fn mail_dir(&self) -> PathBuf {
        self.dir.path().join("mail")
    }

    /// The messages received so far, as (envelope JSON, raw message) in order of arrival.
    fn received(&self) -> Vec<(serde_json::Value, String)> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(self.mail_dir())
            .expect("read the mail folder")
            .map(|e| e.expect("mail folder entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "eml"))
            .collect();
        names.sort();
        names
            .into_iter()
            .map(|eml| {
                let envelope = std::fs::read_to_string(eml.with_extension("json")).expect("read the envelope");
                let message = std::fs::read_to_string(&eml).expect("read the message");
                (serde_json::from_str(&envelope).expect("envelope JSON"), message)
            })
            .collect()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn settings(data_dir: &Path, smtp_url: Option<String>) -> Settings {
    let mut settings = Settings::defaults();
    settings.data_dir = data_dir.to_path_buf();
    settings.smtp_url = smtp_url.map(Secret::new);
    settings.mail_from = "Makerspace <hello@makrcave.test>".into();
    settings
}

/// The header block of a message, unfolded: (lower-case name, value) pairs.
fn headers(message: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in message.lines() {
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            out.last_mut().expect("a folded line follows a header").1.push_str(line);
        } else {
            let (name, value) = line.split_once(':').expect("a header line");
            out.push((name.to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    out
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> &'a str {
    headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str()).unwrap_or_else(|| panic!("no {name} header"))
}

/// The body of each MIME part of a multipart message, keyed by its content type.
fn parts(message: &str) -> Vec<(String, String)> {
    let content_type = header(&headers(message), "content-type").to_string();
    let boundary = content_type
        .split(';')
        .find_map(|p| p.trim().strip_prefix("boundary="))
        .expect("a multipart boundary")
        .trim_matches('"')
        .to_string();
    let normalized = message.replace("\r\n", "\n");
    normalized
        .split(&format!("--{boundary}"))
        .skip(1)
        .filter(|part| !part.starts_with("--"))
        .map(|part| {
            let part = part.trim_start_matches('\n');
            let (head, body) = part.split_once("\n\n").expect("a part has headers and a body");
            let part_headers = headers(head);
            let kind = header(&part_headers, "content-type").to_string();
            let encoding =
                part_headers.iter().find(|(n, _)| n == "content-transfer-encoding").map_or("7bit", |(_, v)| v.as_str());
            (kind, decode(encoding, body.trim_end()))
        })
        .collect()
}

/// A part's body as text, per its Content-Transfer-Encoding (lettre uses quoted-printable for
/// long lines).
fn decode(encoding: &str, body: &str) -> String {
    match encoding.to_ascii_lowercase().as_str() {
        "7bit" | "8bit" => body.to_string(),
        "quoted-printable" => {
            let joined = body.replace("=\n", "");
            let bytes = joined.as_bytes();
            let mut out = Vec::with_capacity(bytes.len());
            let mut i = 0;
            while i < bytes.len() {
                let escaped = (bytes[i] == b'=' && i + 2 < bytes.len())
                    .then(|| std::str::from_utf8(&bytes[i + 1..i + 3]).ok())
                    .flatten()
                    .and_then(|hex| u8::from_str_radix(hex, 16).ok());
                match escaped {
                    Some(byte) => {
                        out.push(byte);
                        i += 3;
                    }
                    None => {
                        out.push(bytes[i]);
                        i += 1;
                    }
                }
            }
            String::from_utf8(out).expect("UTF-8 text")
        }
        other => panic!("unexpected Content-Transfer-Encoding {other}"),
    }
}

#[actix_web::test]
async fn mail_sent_through_smtp_reaches_the_server() {
    let server = SmtpServer::start().await;
    let data = tempfile::tempdir().expect("temp dir");
    let mailer = Mailer::from_settings(&settings(data.path(), Some(format!("smtp://127.0.0.1:{}", server.port))))
        .expect("an SMTP mailer");
    assert_eq!(mailer.kind(), "smtp");

    let token = format!("tok-{}", uuid::Uuid::new_v4().simple());
    let email = Email {
        to: "Ada Lovelace <ada@example.org>".into(),
        subject: "Your makrcave invitation".into(),
        text: format!("Hello Ada,\n\naccept your invitation: http://makrcave.test/invite/{token}\n"),
        html: Some(format!("<p>Hello Ada,</p><p><a href=\"http://makrcave.test/invite/{token}\">Accept</a></p>")),
    };
    mailer.send(&email).await.expect("the server accepts the email");

    let received = eventually(Duration::from_secs(10), "the server has the message", || {
        let received = server.received();
        async move { (!received.is_empty()).then_some(received) }
    })
    .await;
    assert_eq!(received.len(), 1);
    let (envelope, message) = &received[0];
    assert_eq!(envelope["mail_from"], "hello@makrcave.test");
    assert_eq!(envelope["rcpt_tos"], serde_json::json!(["ada@example.org"]));

    let h = headers(message);
    assert_eq!(header(&h, "from"), "Makerspace <hello@makrcave.test>");
    assert_eq!(header(&h, "to"), "\"Ada Lovelace\" <ada@example.org>");
    assert_eq!(header(&h, "subject"), "Your makrcave invitation");
    assert!(header(&h, "content-type").starts_with("multipart/alternative"));

    let parts = parts(message);
    assert_eq!(parts.len(), 2, "{parts:?}");
    let (text_type, text) = &parts[0];
    assert!(text_type.starts_with("text/plain"), "{text_type}");
    assert!(text.contains(&format!("http://makrcave.test/invite/{token}")), "{text}");
    let (html_type, html) = &parts[1];
    assert!(html_type.starts_with("text/html"), "{html_type}");
    assert!(html.contains(&format!("<a href=\"http://makrcave.test/invite/{token}\">Accept</a>")), "{html}");

    // A plain text email is one text/plain part.
    let plain = Email { html: None, text: format!("welcome {token}"), ..email };
    mailer.send(&plain).await.expect("the server accepts the second email");
    let received = eventually(Duration::from_secs(10), "the server has both messages", || {
        let received = server.received();
        async move { (received.len() == 2).then_some(received) }
    })
    .await;
    let message = &received[1].1;
    assert!(header(&headers(message), "content-type").starts_with("text/plain"));
    assert!(message.contains(&format!("welcome {token}")), "{message}");
    assert!(!data.path().join("outbox").exists(), "with SMTP nothing goes to the outbox");
}

#[actix_web::test]
async fn without_smtp_mail_lands_in_the_outbox() {
    let data = tempfile::tempdir().expect("temp dir");
    let mailer = Mailer::from_settings(&settings(data.path(), None)).expect("an outbox mailer");
    assert_eq!(mailer.kind(), "outbox");

    let token = format!("tok-{}", uuid::Uuid::new_v4().simple());
    let email = Email {
        to: "grace@example.org".into(),
        subject: "Welcome to the makerspace".into(),
        text: format!("Your link: http://makrcave.test/invite/{token}"),
        html: Some(format!("<a href=\"http://makrcave.test/invite/{token}\">link</a>")),
    };
    mailer.send(&email).await.expect("written to the outbox");

    let outbox = data.path().join("outbox");
    let files: Vec<PathBuf> =
        std::fs::read_dir(&outbox).expect("the outbox was created").map(|e| e.expect("outbox entry").path()).collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(files[0].extension().and_then(|e| e.to_str()), Some("eml"));
    let message = std::fs::read_to_string(&files[0]).expect("read the .eml");
    let h = headers(&message);
    assert_eq!(header(&h, "from"), "Makerspace <hello@makrcave.test>");
    assert_eq!(header(&h, "to"), "grace@example.org");
    assert_eq!(header(&h, "subject"), "Welcome to the makerspace");
    let parts = parts(&message);
    assert_eq!(parts.len(), 2, "{parts:?}");
    assert!(parts[0].0.starts_with("text/plain") && parts[0].1.contains(&token), "{parts:?}");
    assert!(parts[1].0.starts_with("text/html") && parts[1].1.contains(&token), "{parts:?}");
}

#[actix_web::test]
async fn an_unreachable_smtp_server_is_an_error_not_a_hang() {
    let data = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let url = format!("smtp://mailer:hunter2-{port}@127.0.0.1:{port}");
    let mailer = Mailer::from_settings(&settings(data.path(), Some(url))).expect("an SMTP mailer");
    let email =
        Email { to: "ada@example.org".into(), subject: "Nobody listens".into(), text: "lost".into(), html: None };
    let started = Instant::now();
    let err = mailer.send(&email).await.expect_err("nobody listens on the port");
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    assert!(matches!(err, MailError::Send { .. }), "{err:?}");
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains(&format!("hunter2-{port}")), "the password leaked: {shown}");
    assert!(!data.path().join("outbox").exists(), "a failed send does not fall back to the outbox");
}
