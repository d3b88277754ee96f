//! makrcave's HTTP API as the bridge uses it (bridge-contract.md, "HTTP"): a kiosk with its
//! device token. Errors tell "unreachable" (the offline policy applies) from an answer.

use std::path::Path;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::allowlist::{hex, SignedAllowlist};

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// No answer: connection refused, timed out, or a gateway in front of makrcave saying it
    /// is down. The bridge decides on its own (offline policy).
    #[error("makrcave is unreachable: {0}")]
    Unreachable(String),
    #[error("makrcave refused the device token (401)")]
    Unauthorized,
    #[error("makrcave answered {0}")]
    Status(u16),
    #[error("makrcave's answer is not what the contract says: {0}")]
    Invalid(String),
}

impl ServerError {
    pub fn is_unreachable(&self) -> bool {
        matches!(self, ServerError::Unreachable(_))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct UnlockReply {
    pub granted: bool,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub session_id: Option<String>,
    #[serde(default)]
    pub until: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct LockReply {
    pub locked: bool,
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ClearReply {
    pub cleared: bool,
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error(transparent)]
    Server(#[from] ServerError),
    #[error("size mismatch: expected {expected} bytes, got {got}")]
    Size { expected: u64, got: u64 },
    #[error("sha256 mismatch: expected {expected}, got {got}")]
    Hash { expected: String, got: String },
    #[error("cannot write the file: {0}")]
    Io(#[from] std::io::Error),
}

#[derive(Debug, Clone)]
pub struct ServerClient {
    base: String,
    token: String,
    equipment_id: String,
    http: reqwest::Client,
}

fn classify(err: reqwest::Error) -> ServerError {
    if err.is_connect() || err.is_timeout() || err.is_request() {
        ServerError::Unreachable(err.to_string())
    } else if err.is_decode() {
        ServerError::Invalid(err.to_string())
    } else {
        ServerError::Unreachable(err.to_string())
    }
}

fn check_status(status: reqwest::StatusCode) -> Result<(), ServerError> {
    match status.as_u16() {
        200..=299 => Ok(()),
        401 => Err(ServerError::Unauthorized),
        502..=504 => Err(ServerError::Unreachable(format!("gateway answered {status}"))),
        code => Err(ServerError::Status(code)),
    }
}

impl ServerClient {
    pub fn new(base_url: &str, device_token: &str, equipment_id: &str, timeout: Duration) -> Result<Self, ServerError> {
        // reqwest is built without a TLS provider (it would pull aws-lc) and panics without
        // one: ring, the project's provider. An error only means one is installed already.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .connect_timeout(timeout)
            .timeout(timeout)
            .build()
            .map_err(|err| ServerError::Invalid(format!("HTTP client: {err}")))?;
        Ok(ServerClient {
            base: base_url.trim_end_matches('/').to_string(),
            token: device_token.to_string(),
            equipment_id: equipment_id.to_string(),
            http,
        })
    }

    async fn post<T: DeserializeOwned>(&self, path: &str, body: serde_json::Value) -> Result<T, ServerError> {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .map_err(classify)?;
        check_status(response.status())?;
        response.json().await.map_err(classify)
    }

    async fn get(&self, path: &str) -> Result<reqwest::Response, ServerError> {
        let response =
            self.http.get(format!("{}{path}", self.base)).bearer_auth(&self.token).send().await.map_err(classify)?;
        check_status(response.status())?;
        Ok(response)
    }

    pub async fn unlock(&self, card_uid: &str) -> Result<UnlockReply, ServerError> {
        self.post("/api/v1/kiosk/unlock", json!({"equipment_id": self.equipment_id, "card_uid": card_uid})).await
    }

    pub async fn lock(&self, card_uid: Option<&str>) -> Result<LockReply, ServerError> {
        self.post("/api/v1/kiosk/lock", json!({"equipment_id": self.equipment_id, "card_uid": card_uid})).await
    }

    pub async fn clear(&self, card_uid: &str) -> Result<ClearReply, ServerError> {
        self.post("/api/v1/kiosk/clear", json!({"equipment_id": self.equipment_id, "card_uid": card_uid})).await
    }

    pub async fn allowlist(&self) -> Result<SignedAllowlist, ServerError> {
        self.get("/api/v1/kiosk/allowlist").await?.json().await.map_err(classify)
    }

    /// The token check of `makrcave-bridge check`: the kiosk's machine list answers 200.
    pub async fn machines(&self) -> Result<(), ServerError> {
        self.get("/api/v1/kiosk/machines").await.map(|_| ())
    }

    /// Downloads `path` (a server path from a `start` command) into `dest`, checking size and
    /// SHA-256 as it streams; `dest` appears only once both match.
    pub async fn download(&self, path: &str, dest: &Path, sha256: &str, size: u64) -> Result<(), DownloadError> {
        let mut response = self.get(path).await?;
        let tmp = dest.with_extension("part");
        let mut file = tokio::fs::File::create(&tmp).await?;
        let mut hasher = Sha256::new();
        let mut got = 0u64;
        let result = async {
            while let Some(chunk) = response.chunk().await.map_err(classify)? {
                got += chunk.len() as u64;
                if got > size {
                    return Err(DownloadError::Size { expected: size, got });
                }
                hasher.update(&chunk);
                file.write_all(&chunk).await?;
            }
            if got != size {
                return Err(DownloadError::Size { expected: size, got });
            }
            let digest = hex(&hasher.finalize());
            if !digest.eq_ignore_ascii_case(sha256) {
                return Err(DownloadError::Hash { expected: sha256.to_string(), got: digest });
            }
            file.sync_all().await?;
            Ok(())
        }
        .await;
        match result {
            Ok(()) => Ok(tokio::fs::rename(&tmp, dest).await?),
            Err(err) => {
                let _ = tokio::fs::remove_file(&tmp).await;
                Err(err)
            }
        }
    }
}
