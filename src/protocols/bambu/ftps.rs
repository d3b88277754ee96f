//! Files to a Bambu printer's storage (its SD card), before a print request names them: FTPS
//! with implicit TLS (port 990), passive mode, user `bblp` and the access code (DESIGN.md).
//!
//! The printer's certificate is checked exactly as for its broker ([`super::tls`]). X1
//! printers refuse a data connection that does not resume the control connection's TLS
//! session, so both connections use one rustls configuration whose session cache is new for
//! each upload: the data connection can resume that control connection's session and no other.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::Resumption;
use suppaftp::tokio::{AsyncRustlsConnector, AsyncRustlsFtpStream};
use suppaftp::tokio_rustls::TlsConnector;
use suppaftp::types::{FileType, Response};
use suppaftp::{FtpError, Status};

use super::tls::{self, Trust};
use super::USER;

/// An upload that has not finished within this long is given up: a 100 MB G-code file at
/// the ~200 KB/s of a printer on weak Wi-Fi takes about eight minutes.
pub const UPLOAD_TIMEOUT: Duration = Duration::from_secs(600);
/// Sessions kept per upload: the control connection's tickets (TLS 1.3 servers send two).
const SESSIONS: usize = 4;

/// One printer's storage. Holds the access code: no `Debug`, and it never leaves the task
/// that follows the printer.
pub struct Storage {
    pub host: String,
    pub port: u16,
    pub access_code: String,
    pub serial: String,
    pub trust: Trust,
}

/// What an upload was doing when it failed, for the reason given to the person.
#[derive(Debug, Clone, Copy)]
enum Step {
    Connect,
    Login,
    Prepare,
    Send,
}

impl Storage {
    /// Uploads the file at `path` as `name` to the root of the printer's storage, within
    /// [`UPLOAD_TIMEOUT`]. The error is a sentence for the person who asked for the print.
    pub async fn upload(&self, path: &Path, name: &str) -> Result<(), String> {
        let mut file =
            tokio::fs::File::open(path).await.map_err(|e| format!("cannot read the file to print {path:?}: {e}"))?;
        let transfer = async {
            let mut ftp = self.open().await?;
            ftp.put_file(name, &mut file).await.map_err(|e| reason(Step::Send, e))?;
            // The file is stored once `put_file` has read the server's 226; a failed goodbye
            // changes nothing.
            let _ = ftp.quit().await;
            Ok(())
        };
        tokio::time::timeout(UPLOAD_TIMEOUT, transfer).await.unwrap_or_else(|_| {
            Err(format!("the printer's storage did not take the file within {} s", UPLOAD_TIMEOUT.as_secs()))
        })
    }

    /// A logged-in control connection, ready for a binary upload with protected data.
    async fn open(&self) -> Result<AsyncRustlsFtpStream, String> {
        let mut config = tls::client_config(&self.trust, &self.serial)?;
        config.resumption = Resumption::in_memory_sessions(SESSIONS);
        let connector = AsyncRustlsConnector::from(TlsConnector::from(Arc::new(config)));
        // The host is the name given to TLS for both connections, which is what keys the
        // session cache; the certificate check itself looks for the serial.
        let mut ftp =
            AsyncRustlsFtpStream::connect_secure_implicit((self.host.as_str(), self.port), connector, &self.host)
                .await
                .map_err(|e| reason(Step::Connect, e))?;
        ftp.login(USER, self.access_code.as_str()).await.map_err(|e| reason(Step::Login, e))?;
        // Implicit TLS covers the control connection only; these two protect the data.
        ftp.custom_command("PBSZ 0", &[Status::CommandOk]).await.map_err(|e| reason(Step::Prepare, e))?;
        ftp.custom_command("PROT P", &[Status::CommandOk]).await.map_err(|e| reason(Step::Prepare, e))?;
        // ASCII, the default, would rewrite line ends inside a 3MF (a zip file).
        ftp.transfer_type(FileType::Binary).await.map_err(|e| reason(Step::Prepare, e))?;
        // The data connection goes to the address dialled, whatever address the passive
        // reply names: a printer behind NAT names one we cannot reach, and no other host
        // should receive the file.
        ftp.set_passive_nat_workaround(true);
        Ok(ftp)
    }
}

/// The server's reply on one line, its code included, without control characters.
fn said(response: &Response) -> String {
    let text = String::from_utf8_lossy(&response.body);
    let words: Vec<&str> = text.split_whitespace().collect();
    words.join(" ").chars().filter(|c| !c.is_control()).collect()
}

/// A failed step as a sentence; the server's own words are kept.
fn reason(step: Step, error: FtpError) -> String {
    let what = match step {
        Step::Connect => "connecting",
        Step::Login => "logging in",
        Step::Prepare => "preparing the upload",
        Step::Send => "sending the file",
    };
    match (step, &error) {
        (Step::Login, FtpError::UnexpectedResponse(r)) if r.status == Status::NotLoggedIn => {
            format!("the printer's storage refused the access code ({})", said(r))
        }
        (_, FtpError::UnexpectedResponse(r)) => format!("the printer's storage answered {:?} while {what}", said(r)),
        (_, FtpError::SecureError(e)) => format!("TLS with the printer's storage failed while {what}: {e}"),
        (_, FtpError::ConnectionError(e)) => format!("the printer's storage could not be reached while {what}: {e}"),
        _ => format!("the printer's storage failed while {what}: {error}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_read_as_sentences() {
        let refused =
            FtpError::UnexpectedResponse(Response::new(Status::NotLoggedIn, b"530 Login incorrect.\r\n".to_vec()));
        assert_eq!(
            reason(Step::Login, refused),
            "the printer's storage refused the access code (530 Login incorrect.)"
        );
        let full =
            FtpError::UnexpectedResponse(Response::new(Status::ExceededStorage, b"552-Disk\r\n552 full\x1b".to_vec()));
        assert_eq!(
            reason(Step::Send, full),
            "the printer's storage answered \"552-Disk 552 full\" while sending the file"
        );
        let tls = FtpError::SecureError("invalid peer certificate: UnknownIssuer".into());
        assert!(reason(Step::Connect, tls).contains("TLS with the printer's storage failed while connecting"));
    }

    #[tokio::test]
    async fn a_missing_file_is_refused_before_any_connection() {
        let storage = Storage {
            host: "192.0.2.7".into(),
            port: 990,
            access_code: "12345678".into(),
            serial: "01S".into(),
            trust: Trust::Fingerprint([0; 32]),
        };
        let error = storage.upload(Path::new("/nonexistent/benchy.3mf"), "benchy.3mf").await.expect_err("no file");
        assert!(error.starts_with("cannot read the file to print"), "{error}");
    }
}
