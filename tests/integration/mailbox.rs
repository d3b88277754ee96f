//! A real SMTP server (aiosmtpd from the test virtualenv) that keeps what it receives, and
//! the small MIME reading the tests need.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

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
pub struct SmtpServer {
    pub port: u16,
    child: Child,
    dir: tempfile::TempDir,
}

impl SmtpServer {
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    pub async fn start() -> SmtpServer {
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

    pub fn mail_dir(&self) -> PathBuf {
        self.dir.path().join("mail")
    }

    /// The messages received so far, as (envelope JSON, raw message) in order of arrival.
    pub fn received(&self) -> Vec<(serde_json::Value, String)> {
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

/// The header block of a message, unfolded: (lower-case name, value) pairs.
pub fn headers(message: &str) -> Vec<(String, String)> {
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

pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> &'a str {
    headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str()).unwrap_or_else(|| panic!("no {name} header"))
}

/// The body of each MIME part of a multipart message, keyed by its content type.
pub fn parts(message: &str) -> Vec<(String, String)> {
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
pub fn decode(encoding: &str, body: &str) -> String {
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
