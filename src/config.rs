//! Configuration, in layers: defaults in code, then a TOML file (`--config`), then `MAKRCAVE_*`
//! environment variables, then command-line flags. Values are checked here, once, so the rest
//! of the program works with valid settings only.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::Args;
use serde::Deserialize;

use crate::protocols::mqtt::{BrokerAddress, MqttUrlError};

pub const DEFAULT_HTTP: &str = "127.0.0.1:8080";
pub const DEFAULT_MQTT_LISTEN: &str = "127.0.0.1:1883";
pub const DEFAULT_DATA_DIR: &str = "./makrcave-data";
pub const DEFAULT_HEARTBEAT_TIMEOUT_S: u64 = 30;
pub const DEFAULT_WS_SEND_TIMEOUT_MS: u64 = 5_000;
pub const DEFAULT_LOG: &str = "info,rumqttd=off";
/// File in the data folder holding the generated JWT secret when none is configured.
const JWT_SECRET_FILE: &str = "jwt-secret";

/// The options every command shares; each may also come from the environment or the file.
#[derive(Debug, Clone, Default, Args)]
pub struct SettingsArgs {
    /// TOML file with any of the settings below (keys as the flags, with '_' for '-').
    #[arg(long, env = "MAKRCAVE_CONFIG", global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// HTTP and WebSocket listen address [default: 127.0.0.1:8080].
    #[arg(long, env = "MAKRCAVE_HTTP", global = true, value_name = "ADDR")]
    pub http: Option<SocketAddr>,
    /// Folder for the SQLite database and generated secrets [default: ./makrcave-data].
    #[arg(long, env = "MAKRCAVE_DATA_DIR", global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// sqlite://FILE or postgres://USER:PASS@HOST/DB [default: SQLite in the data folder].
    #[arg(long, env = "MAKRCAVE_DATABASE_URL", global = true, value_name = "URL")]
    pub database_url: Option<String>,
    /// External broker, mqtt://[user:pass@]host:port; disables the embedded broker.
    #[arg(long, env = "MAKRCAVE_MQTT_URL", global = true, value_name = "URL")]
    pub mqtt_url: Option<String>,
    /// Listen address of the embedded MQTT broker [default: 127.0.0.1:1883].
    #[arg(long, env = "MAKRCAVE_MQTT_LISTEN", global = true, value_name = "ADDR")]
    pub mqtt_listen: Option<SocketAddr>,
    /// HS256 secret for JWTs [default: generated once and kept in the data folder].
    #[arg(long, env = "MAKRCAVE_JWT_SECRET", global = true, value_name = "SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// Seconds of silence after which a machine is offline, unless its equipment sets its
    /// own [default: 30].
    #[arg(long, env = "MAKRCAVE_HEARTBEAT_TIMEOUT", global = true, value_name = "SECONDS")]
    pub heartbeat_timeout: Option<u64>,
    /// Threads running machine actors [default: number of CPUs].
    #[arg(long, env = "MAKRCAVE_ACTOR_THREADS", global = true, value_name = "N")]
    pub actor_threads: Option<usize>,
    /// A WebSocket client that cannot take a message for this long is disconnected
    /// [default: 5000].
    #[arg(long, env = "MAKRCAVE_WS_SEND_TIMEOUT_MS", global = true, value_name = "MS")]
    pub ws_send_timeout_ms: Option<u64>,
    /// Threads serving HTTP and WebSocket clients [default: number of CPUs].
    #[arg(long, env = "MAKRCAVE_HTTP_WORKERS", global = true, value_name = "N")]
    pub http_workers: Option<usize>,
    /// Log filter, e.g. "info" or "makrcave=debug" [default: info,rumqttd=off].
    #[arg(long, env = "MAKRCAVE_LOG", global = true, value_name = "FILTER")]
    pub log: Option<String>,
}

/// The same settings as they may appear in the TOML file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    http: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    mqtt_url: Option<String>,
    mqtt_listen: Option<SocketAddr>,
    jwt_secret: Option<String>,
    heartbeat_timeout: Option<u64>,
    actor_threads: Option<usize>,
    ws_send_timeout_ms: Option<u64>,
    http_workers: Option<usize>,
    log: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {0}: {1}")]
    ReadFile(PathBuf, std::io::Error),
    #[error("config file {0} is not valid: {1}")]
    ParseFile(PathBuf, toml::de::Error),
    #[error(transparent)]
    MqttUrl(#[from] MqttUrlError),
    #[error("{0}")]
    Invalid(String),
    #[error("cannot keep the generated JWT secret in {0}: {1}")]
    Secret(PathBuf, std::io::Error),
}

/// A secret that never shows in logs or debug output.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(********)")
    }
}

/// Validated settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub http: SocketAddr,
    pub data_dir: PathBuf,
    pub database_url: String,
    /// `None`: run the embedded broker on `mqtt_listen`.
    pub mqtt_broker: Option<BrokerAddress>,
    pub mqtt_listen: SocketAddr,
    /// `None`: generated and kept in the data folder (see [`Settings::jwt_secret`]).
    pub jwt_secret: Option<Secret>,
    pub heartbeat_timeout_s: u64,
    pub actor_threads: usize,
    pub ws_send_timeout_ms: u64,
    pub http_workers: usize,
    pub log: String,
    pub demo: bool,
}

impl Settings {
    /// Defaults only: what `makrcave serve` uses with no configuration.
    pub fn defaults() -> Settings {
        Settings::load(&SettingsArgs::default()).expect("the built-in defaults are valid")
    }

    /// Merges file, environment and flags (clap has merged the last two) over the defaults.
    pub fn load(args: &SettingsArgs) -> Result<Settings, ConfigError> {
        let file = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| ConfigError::ReadFile(path.clone(), e))?;
                toml::from_str(&text).map_err(|e| ConfigError::ParseFile(path.clone(), e))?
            }
            None => FileSettings::default(),
        };
        let parse_addr = |s: &str| s.parse::<SocketAddr>().expect("built-in addresses are valid");
        let data_dir = args.data_dir.clone().or(file.data_dir).unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let database_url = args
            .database_url
            .clone()
            .or(file.database_url)
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("makrcave.db").display()));
        let mqtt_broker = args.mqtt_url.clone().or(file.mqtt_url).map(|u| BrokerAddress::parse(&u)).transpose()?;
        let heartbeat_timeout_s =
            args.heartbeat_timeout.or(file.heartbeat_timeout).unwrap_or(DEFAULT_HEARTBEAT_TIMEOUT_S);
        if heartbeat_timeout_s == 0 {
            return Err(ConfigError::Invalid("heartbeat timeout must be at least 1 second".into()));
        }
        let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        let actor_threads = args.actor_threads.or(file.actor_threads).unwrap_or(cpus);
        let http_workers = args.http_workers.or(file.http_workers).unwrap_or(cpus);
        if actor_threads == 0 || http_workers == 0 {
            return Err(ConfigError::Invalid("actor threads and HTTP workers must be at least 1".into()));
        }
        let jwt_secret = args.jwt_secret.clone().or(file.jwt_secret).map(Secret::new);
        if jwt_secret.as_ref().is_some_and(|s| s.expose().len() < 16) {
            return Err(ConfigError::Invalid("the JWT secret must be at least 16 characters".into()));
        }
        Ok(Settings {
            http: args.http.or(file.http).unwrap_or_else(|| parse_addr(DEFAULT_HTTP)),
            data_dir,
            database_url,
            mqtt_broker,
            mqtt_listen: args.mqtt_listen.or(file.mqtt_listen).unwrap_or_else(|| parse_addr(DEFAULT_MQTT_LISTEN)),
            jwt_secret,
            heartbeat_timeout_s,
            actor_threads,
            ws_send_timeout_ms: args
                .ws_send_timeout_ms
                .or(file.ws_send_timeout_ms)
                .unwrap_or(DEFAULT_WS_SEND_TIMEOUT_MS),
            http_workers,
            log: args.log.clone().or(file.log).unwrap_or_else(|| DEFAULT_LOG.to_string()),
            demo: false,
        })
    }

    /// The JWT secret: configured, or read from (and on first use written to) the data folder.
    pub fn jwt_secret(&self) -> Result<Secret, ConfigError> {
        if let Some(secret) = &self.jwt_secret {
            return Ok(secret.clone());
        }
        load_or_create_secret(&self.data_dir.join(JWT_SECRET_FILE))
    }
}

fn load_or_create_secret(path: &Path) -> Result<Secret, ConfigError> {
    let fail = |e| ConfigError::Secret(path.to_path_buf(), e);
    match std::fs::read_to_string(path) {
        Ok(text) if text.trim().len() >= 16 => return Ok(Secret::new(text.trim())),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(fail(e)),
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let bytes: [u8; 32] = rand::random();
    let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    write_private(path, &secret).map_err(fail)?;
    tracing::info!(path = %path.display(), "generated a JWT secret");
    Ok(Secret::new(secret))
}

/// Writes a file only its owner can read.
fn write_private(path: &Path, content: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(content.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_work_on_one_machine() {
        let s = Settings::defaults();
        assert_eq!(s.http.to_string(), DEFAULT_HTTP);
        assert_eq!(s.mqtt_listen.to_string(), DEFAULT_MQTT_LISTEN);
        assert!(s.mqtt_broker.is_none());
        assert!(s.database_url.starts_with("sqlite://"));
        assert_eq!(s.heartbeat_timeout_s, 30);
    }

    #[test]
    fn flags_override_the_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("makrcave.toml");
        std::fs::write(&file, "http = \"127.0.0.1:9000\"\nheartbeat_timeout = 7\nmqtt_url = \"mqtt://b:1884\"\n")
            .expect("write config");
        let args = SettingsArgs { config: Some(file.clone()), heartbeat_timeout: Some(9), ..Default::default() };
        let s = Settings::load(&args).expect("valid settings");
        assert_eq!(s.http.to_string(), "127.0.0.1:9000");
        assert_eq!(s.heartbeat_timeout_s, 9);
        assert_eq!(s.mqtt_broker.map(|b| b.port), Some(1884));
        std::fs::write(&file, "htp = \"x\"\n").expect("write config");
        assert!(matches!(Settings::load(&args), Err(ConfigError::ParseFile(..))));
    }

    #[test]
    fn a_generated_secret_is_kept() {
        let dir = tempfile::tempdir().expect("temp dir");
        let args = SettingsArgs { data_dir: Some(dir.path().to_path_buf()), ..Default::default() };
        let s = Settings::load(&args).expect("valid settings");
        let first = s.jwt_secret().expect("secret");
        assert_eq!(s.jwt_secret().expect("secret"), first);
        assert!(!format!("{first:?}").contains(first.expose()));
    }
}
