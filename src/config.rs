//! Configuration, in layers: defaults in code, then a TOML file (`--config`), then `MAKRCAVE_*`
//! environment variables, then command-line flags. Values are checked here, once, so the rest
//! of the program works with valid settings only.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use serde::Deserialize;

pub use crate::domain::guessing::KioskGuardSettings;
use crate::protocols::mqtt::{BrokerAddress, MqttUrlError};

pub const DEFAULT_HTTP: &str = "127.0.0.1:8080";
pub const DEFAULT_MQTT_LISTEN: &str = "127.0.0.1:1883";
pub const DEFAULT_DATA_DIR: &str = "./makrcave-data";
pub const DEFAULT_HEARTBEAT_TIMEOUT_S: u64 = 30;
pub const DEFAULT_WS_SEND_TIMEOUT_MS: u64 = 5_000;
pub const DEFAULT_LOG: &str = "info,rumqttd=off";
/// WebSocket connections one person (one token subject) may hold open: a few dashboards and
/// tabs, not a flood.
pub const DEFAULT_WS_MAX_PER_IDENTITY: usize = 8;
/// WebSocket connections from one client address (a makerspace behind one NAT has several
/// people).
pub const DEFAULT_WS_MAX_PER_ADDRESS: usize = 32;
/// WebSocket connections in all: each holds a task and its buffers.
pub const DEFAULT_WS_MAX_CONNECTIONS: usize = 10_000;
/// Unknown cards a kiosk may see within the window before it is slowed down.
pub const DEFAULT_KIOSK_UNKNOWN_CARDS: u32 = 5;
pub const DEFAULT_KIOSK_UNKNOWN_WINDOW_S: u64 = 60;
/// The first backoff of a kiosk that saw too many unknown cards; each further one doubles,
/// up to the maximum.
pub const DEFAULT_KIOSK_BACKOFF_S: u64 = 30;
pub const DEFAULT_KIOSK_BACKOFF_MAX_S: u64 = 900;
/// File in the data folder holding the generated JWT secret when none is configured.
const JWT_SECRET_FILE: &str = "jwt-secret";
/// File in the data folder holding the generated card hashing key.
const CARD_KEY_FILE: &str = "card-key";
/// File in the data folder holding the password of makrcave's own MQTT account.
const MQTT_PASSWORD_FILE: &str = "mqtt-password";
/// File in the data folder holding the generated key that seals machines' secrets at rest.
const DATA_KEY_FILE: &str = "data-key";

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
    /// With an external Mosquitto: the password_file makrcave writes (machines' credentials
    /// and its own); needs --mosquitto-acl-file too.
    #[arg(long, env = "MAKRCAVE_MOSQUITTO_PASSWORD_FILE", global = true, value_name = "FILE")]
    pub mosquitto_password_file: Option<PathBuf>,
    /// With an external Mosquitto: the acl_file makrcave writes (each machine's topics).
    #[arg(long, env = "MAKRCAVE_MOSQUITTO_ACL_FILE", global = true, value_name = "FILE")]
    pub mosquitto_acl_file: Option<PathBuf>,
    /// With an external Mosquitto: its pid file; makrcave sends it SIGHUP after writing the
    /// files, so that it reloads them (and disconnects revoked machines).
    #[arg(long, env = "MAKRCAVE_MOSQUITTO_PID_FILE", global = true, value_name = "FILE")]
    pub mosquitto_pid_file: Option<PathBuf>,
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
    /// JWKS URL for RS256/ES256 tokens, e.g. Keycloak's
    /// https://HOST/realms/REALM/protocol/openid-connect/certs [default: HS256 only].
    #[arg(long, env = "MAKRCAVE_JWKS_URL", global = true, value_name = "URL")]
    pub jwks_url: Option<String>,
    /// Required `iss` of tokens (checked when set).
    #[arg(long, env = "MAKRCAVE_JWT_ISSUER", global = true, value_name = "ISS")]
    pub jwt_issuer: Option<String>,
    /// Required `aud` of tokens (checked when set).
    #[arg(long, env = "MAKRCAVE_JWT_AUDIENCE", global = true, value_name = "AUD")]
    pub jwt_audience: Option<String>,
    /// SMTP server for emails: smtps://user:pass@host:465 (TLS), smtp://user:pass@host:587?tls=required
    /// (STARTTLS) or smtp://host:25 (plain, local relays only) [default:
    /// emails are written to DATA_DIR/outbox and logged].
    #[arg(long, env = "MAKRCAVE_SMTP_URL", global = true, value_name = "URL", hide_env_values = true)]
    pub smtp_url: Option<String>,
    /// Sender of emails [default: makrcave <noreply@localhost>].
    #[arg(long, env = "MAKRCAVE_MAIL_FROM", global = true, value_name = "ADDRESS")]
    pub mail_from: Option<String>,
    /// The address people reach makrcave at, for links in emails [default: http://HTTP_ADDR].
    #[arg(long, env = "MAKRCAVE_PUBLIC_URL", global = true, value_name = "URL")]
    pub public_url: Option<String>,
    /// Days an invitation stays valid [default: 7].
    #[arg(long, env = "MAKRCAVE_INVITE_TTL_DAYS", global = true, value_name = "DAYS")]
    pub invite_ttl_days: Option<u32>,
    /// Largest CSV file accepted by an import (members, inventory items), in bytes [default: 1048576].
    #[arg(long, env = "MAKRCAVE_CSV_MAX_BYTES", global = true, value_name = "BYTES")]
    pub csv_max_bytes: Option<usize>,
    /// Attempts per minute and client address at invite accept and validate [default: 20].
    #[arg(long, env = "MAKRCAVE_AUTH_RATE_LIMIT", global = true, value_name = "N")]
    pub auth_rate_limit: Option<u32>,
    /// WebSocket connections one person may hold open; past it the upgrade is answered 429
    /// [default: 8].
    #[arg(long, env = "MAKRCAVE_WS_MAX_PER_IDENTITY", global = true, value_name = "N")]
    pub ws_max_per_identity: Option<usize>,
    /// WebSocket connections from one client address [default: 32].
    #[arg(long, env = "MAKRCAVE_WS_MAX_PER_ADDRESS", global = true, value_name = "N")]
    pub ws_max_per_address: Option<usize>,
    /// WebSocket connections in all [default: 10000].
    #[arg(long, env = "MAKRCAVE_WS_MAX_CONNECTIONS", global = true, value_name = "N")]
    pub ws_max_connections: Option<usize>,
    /// Unknown cards within the window after which a kiosk is slowed down [default: 5].
    #[arg(long, env = "MAKRCAVE_KIOSK_UNKNOWN_CARDS", global = true, value_name = "N")]
    pub kiosk_unknown_cards: Option<u32>,
    /// The window in which unknown cards at a kiosk are counted, in seconds [default: 60].
    #[arg(long, env = "MAKRCAVE_KIOSK_UNKNOWN_WINDOW", global = true, value_name = "SECONDS")]
    pub kiosk_unknown_window: Option<u64>,
    /// A slowed kiosk's first backoff, in seconds; each further one doubles [default: 30].
    #[arg(long, env = "MAKRCAVE_KIOSK_BACKOFF", global = true, value_name = "SECONDS")]
    pub kiosk_backoff: Option<u64>,
    /// The longest backoff, in seconds [default: 900].
    #[arg(long, env = "MAKRCAVE_KIOSK_BACKOFF_MAX", global = true, value_name = "SECONDS")]
    pub kiosk_backoff_max: Option<u64>,
    /// Key for hashing card UIDs; all nodes sharing a database need the same
    /// [default: generated once and kept in the data folder].
    #[arg(long, env = "MAKRCAVE_CARD_KEY", global = true, value_name = "KEY", hide_env_values = true)]
    pub card_key: Option<String>,
    /// Key that encrypts machines' secrets (API keys, access codes) in the database; all nodes
    /// sharing a database need the same, and a lost key loses those secrets
    /// [default: generated once and kept in the data folder].
    #[arg(long, env = "MAKRCAVE_DATA_KEY", global = true, value_name = "KEY", hide_env_values = true)]
    pub data_key: Option<String>,
    /// Log filter, e.g. "info" or "makrcave=debug" [default: info,rumqttd=off].
    #[arg(long, env = "MAKRCAVE_LOG", global = true, value_name = "FILTER")]
    pub log: Option<String>,
    /// The MakrX Store's base URL: ordering a purchase order of Store items sends it there
    /// (POST /api/v1/orders/quick-reorder) [default: none, nothing is sent].
    #[arg(long, env = "MAKRCAVE_STORE_URL", global = true, value_name = "URL")]
    pub store_url: Option<String>,
    /// Bearer token for the MakrX Store's API, if it wants one.
    #[arg(long, env = "MAKRCAVE_STORE_TOKEN", global = true, value_name = "TOKEN", hide_env_values = true)]
    pub store_token: Option<String>,
    /// Where job files are stored: a folder, or s3://bucket[/prefix] with the AWS_* variables
    /// (AWS_ENDPOINT for MinIO) [default: the data folder's files/].
    #[arg(long, env = "MAKRCAVE_FILES_URL", global = true, value_name = "URL")]
    pub files_url: Option<String>,
    /// Largest job file accepted, in megabytes (10^6 bytes) [default: 200].
    #[arg(long, env = "MAKRCAVE_UPLOAD_MAX_MB", global = true, value_name = "MB")]
    pub upload_max_mb: Option<u64>,
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
    mosquitto_password_file: Option<PathBuf>,
    mosquitto_acl_file: Option<PathBuf>,
    mosquitto_pid_file: Option<PathBuf>,
    jwt_secret: Option<String>,
    heartbeat_timeout: Option<u64>,
    actor_threads: Option<usize>,
    ws_send_timeout_ms: Option<u64>,
    http_workers: Option<usize>,
    jwks_url: Option<String>,
    jwt_issuer: Option<String>,
    jwt_audience: Option<String>,
    smtp_url: Option<String>,
    mail_from: Option<String>,
    public_url: Option<String>,
    invite_ttl_days: Option<u32>,
    csv_max_bytes: Option<usize>,
    auth_rate_limit: Option<u32>,
    ws_max_per_identity: Option<usize>,
    ws_max_per_address: Option<usize>,
    ws_max_connections: Option<usize>,
    kiosk_unknown_cards: Option<u32>,
    kiosk_unknown_window: Option<u64>,
    kiosk_backoff: Option<u64>,
    kiosk_backoff_max: Option<u64>,
    card_key: Option<String>,
    data_key: Option<String>,
    log: Option<String>,
    store_url: Option<String>,
    store_token: Option<String>,
    files_url: Option<String>,
    upload_max_mb: Option<u64>,
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
    /// The files of an external Mosquitto that makrcave keeps (None: it keeps none).
    pub mosquitto: Option<MosquittoFiles>,
    /// `None`: generated and kept in the data folder (see [`Settings::jwt_secret`]).
    pub jwt_secret: Option<Secret>,
    pub heartbeat_timeout_s: u64,
    pub actor_threads: usize,
    pub ws_send_timeout_ms: u64,
    pub http_workers: usize,
    pub jwks_url: Option<String>,
    pub jwt_issuer: Option<String>,
    pub jwt_audience: Option<String>,
    pub smtp_url: Option<Secret>,
    pub mail_from: String,
    /// Base URL for links in emails, without a trailing slash.
    pub public_url: String,
    pub invite_ttl_days: u32,
    pub csv_max_bytes: usize,
    pub auth_rate_limit: u32,
    /// Caps on open WebSocket connections (see `web::ws_limits`).
    pub ws_max_per_identity: usize,
    pub ws_max_per_address: usize,
    pub ws_max_connections: usize,
    /// How kiosks resist card guessing (see `domain::guessing`).
    pub kiosk_guard: KioskGuardSettings,
    /// `None`: generated and kept in the data folder (see [`Settings::card_key`]).
    pub card_key: Option<Secret>,
    /// `None`: generated and kept in the data folder (see [`Settings::data_key`]).
    pub data_key: Option<Secret>,
    pub log: String,
    pub demo: bool,
    /// The MakrX Store's base URL (http or https, no trailing slash); `None`: orders to the
    /// Store are not sent, only given as their payload.
    pub store_url: Option<String>,
    pub store_token: Option<Secret>,
    /// Where job files are stored (see `store::files`); `None`: the data folder's `files/`.
    pub files_url: Option<String>,
    /// Largest job file accepted, in bytes.
    pub upload_max_bytes: u64,
}

/// An external Mosquitto's password and ACL files, which makrcave writes whenever a machine's
/// credentials change, and the pid file of the broker to signal so that it reloads them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MosquittoFiles {
    pub password_file: PathBuf,
    pub acl_file: PathBuf,
    pub pid_file: Option<PathBuf>,
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
        let mosquitto = match (
            args.mosquitto_password_file.clone().or(file.mosquitto_password_file),
            args.mosquitto_acl_file.clone().or(file.mosquitto_acl_file),
            args.mosquitto_pid_file.clone().or(file.mosquitto_pid_file),
        ) {
            (None, None, None) => None,
            (Some(password_file), Some(acl_file), pid_file) if mqtt_broker.is_some() => {
                Some(MosquittoFiles { password_file, acl_file, pid_file })
            }
            (Some(_), Some(_), _) => {
                return Err(ConfigError::Invalid(
                    "the Mosquitto files are for an external broker: set --mqtt-url".into(),
                ))
            }
            _ => {
                return Err(ConfigError::Invalid(
                    "--mosquitto-password-file and --mosquitto-acl-file go together".into(),
                ))
            }
        };
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
        let data_key = args.data_key.clone().or(file.data_key).map(Secret::new);
        if data_key.as_ref().is_some_and(|s| s.expose().len() < 16) {
            return Err(ConfigError::Invalid("the data key must be at least 16 characters".into()));
        }
        let http = args.http.or(file.http).unwrap_or_else(|| parse_addr(DEFAULT_HTTP));
        let jwks_url = args.jwks_url.clone().or(file.jwks_url);
        if let Some(u) = &jwks_url {
            match url::Url::parse(u) {
                Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => {}
                _ => return Err(ConfigError::Invalid(format!("the JWKS URL {u:?} must be an http(s) URL"))),
            }
        }
        let public_url = args
            .public_url
            .clone()
            .or(file.public_url)
            .unwrap_or_else(|| format!("http://{http}"))
            .trim_end_matches('/')
            .to_string();
        let ws_max_per_identity =
            args.ws_max_per_identity.or(file.ws_max_per_identity).unwrap_or(DEFAULT_WS_MAX_PER_IDENTITY);
        let ws_max_per_address =
            args.ws_max_per_address.or(file.ws_max_per_address).unwrap_or(DEFAULT_WS_MAX_PER_ADDRESS);
        let ws_max_connections =
            args.ws_max_connections.or(file.ws_max_connections).unwrap_or(DEFAULT_WS_MAX_CONNECTIONS);
        if ws_max_per_identity == 0 || ws_max_per_address == 0 || ws_max_connections == 0 {
            return Err(ConfigError::Invalid("WebSocket connection caps must be at least 1".into()));
        }
        let kiosk_guard = KioskGuardSettings {
            unknown_cards: args.kiosk_unknown_cards.or(file.kiosk_unknown_cards).unwrap_or(DEFAULT_KIOSK_UNKNOWN_CARDS),
            window: Duration::from_secs(
                args.kiosk_unknown_window.or(file.kiosk_unknown_window).unwrap_or(DEFAULT_KIOSK_UNKNOWN_WINDOW_S),
            ),
            backoff: Duration::from_secs(args.kiosk_backoff.or(file.kiosk_backoff).unwrap_or(DEFAULT_KIOSK_BACKOFF_S)),
            backoff_max: Duration::from_secs(
                args.kiosk_backoff_max.or(file.kiosk_backoff_max).unwrap_or(DEFAULT_KIOSK_BACKOFF_MAX_S),
            ),
        };
        if kiosk_guard.unknown_cards == 0 || kiosk_guard.window.is_zero() || kiosk_guard.backoff.is_zero() {
            return Err(ConfigError::Invalid(
                "kiosk unknown cards, their window and the backoff must be at least 1".into(),
            ));
        }
        if kiosk_guard.backoff_max < kiosk_guard.backoff {
            return Err(ConfigError::Invalid("the longest kiosk backoff must not be shorter than the first".into()));
        }
        let store_url = args.store_url.clone().or(file.store_url).map(|u| u.trim_end_matches('/').to_string());
        if let Some(u) = &store_url {
            match url::Url::parse(u) {
                Ok(parsed) if matches!(parsed.scheme(), "http" | "https") && parsed.host().is_some() => {}
                _ => return Err(ConfigError::Invalid("the MakrX Store URL must be an http(s) URL".into())),
            }
        }
        let files_url = args.files_url.clone().or(file.files_url);
        let upload_max_mb = args.upload_max_mb.or(file.upload_max_mb).unwrap_or(200);
        if upload_max_mb == 0 || upload_max_mb > 100_000 {
            return Err(ConfigError::Invalid("the largest upload must be 1 to 100000 MB".into()));
        }
        let invite_ttl_days = args.invite_ttl_days.or(file.invite_ttl_days).unwrap_or(7);
        if invite_ttl_days == 0 {
            return Err(ConfigError::Invalid("invitations must stay valid at least 1 day".into()));
        }
        Ok(Settings {
            http,
            jwks_url,
            jwt_issuer: args.jwt_issuer.clone().or(file.jwt_issuer),
            jwt_audience: args.jwt_audience.clone().or(file.jwt_audience),
            smtp_url: args.smtp_url.clone().or(file.smtp_url).map(Secret::new),
            mail_from: args
                .mail_from
                .clone()
                .or(file.mail_from)
                .unwrap_or_else(|| "makrcave <noreply@localhost>".into()),
            public_url,
            invite_ttl_days,
            csv_max_bytes: args.csv_max_bytes.or(file.csv_max_bytes).unwrap_or(1024 * 1024),
            auth_rate_limit: args.auth_rate_limit.or(file.auth_rate_limit).unwrap_or(20).max(1),
            ws_max_per_identity,
            ws_max_per_address,
            ws_max_connections,
            kiosk_guard,
            card_key: args.card_key.clone().or(file.card_key).map(Secret::new),
            data_key,
            data_dir,
            database_url,
            mqtt_broker,
            mosquitto,
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
            store_url,
            store_token: args.store_token.clone().or(file.store_token).map(Secret::new),
            files_url,
            upload_max_bytes: upload_max_mb * 1_000_000,
        })
    }

    /// The JWT secret: configured, or read from (and on first use written to) the data folder.
    pub fn jwt_secret(&self) -> Result<Secret, ConfigError> {
        if let Some(secret) = &self.jwt_secret {
            return Ok(secret.clone());
        }
        load_or_create_secret(&self.data_dir.join(JWT_SECRET_FILE))
    }

    /// Where job files are stored: the configured URL, or the data folder's `files/`.
    pub fn files_location(&self) -> String {
        self.files_url.clone().unwrap_or_else(|| self.data_dir.join("files").display().to_string())
    }

    /// The key for card UID hashes: configured, or read from (and on first use written to) the
    /// data folder.
    pub fn card_key(&self) -> Result<Secret, ConfigError> {
        if let Some(key) = &self.card_key {
            return Ok(key.clone());
        }
        load_or_create_secret(&self.data_dir.join(CARD_KEY_FILE))
    }

    /// The key that seals machines' secrets at rest: configured, or read from (and on first use
    /// written to) the data folder.
    pub fn data_key(&self) -> Result<Secret, ConfigError> {
        if let Some(key) = &self.data_key {
            return Ok(key.clone());
        }
        load_or_create_secret(&self.data_dir.join(DATA_KEY_FILE))
    }
}

impl Settings {
    /// The password of makrcave's own MQTT account (see
    /// [`crate::domain::mqtt_access::SERVICE_USERNAME`]): read from (and on first use written
    /// to) the data folder.
    pub fn mqtt_service_password(&self) -> Result<Secret, ConfigError> {
        load_or_create_secret(&self.data_dir.join(MQTT_PASSWORD_FILE))
    }
}

fn load_or_create_secret(path: &Path) -> Result<Secret, ConfigError> {
    let fail = |e| ConfigError::Secret(path.to_path_buf(), e);
    match std::fs::read_to_string(path) {
        Ok(text) if text.trim().len() >= 16 => return Ok(Secret::new(text.trim())),
        // Never replace a kept secret: what it protects (hashed cards, sealed machine secrets)
        // would be lost with it.
        Ok(_) => {
            return Err(ConfigError::Invalid(format!(
                "{} holds fewer than 16 characters: restore the secret it held, or remove the file to start afresh",
                path.display()
            )))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(fail(e)),
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let bytes: [u8; 32] = rand::random();
    let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    write_private(path, &secret).map_err(fail)?;
    tracing::info!(path = %path.display(), "generated a secret");
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
        assert_eq!((s.ws_max_per_identity, s.ws_max_per_address, s.ws_max_connections), (8, 32, 10_000));
        assert_eq!(s.kiosk_guard.unknown_cards, 5);
        assert_eq!(s.kiosk_guard.window, Duration::from_secs(60));
    }

    #[test]
    fn caps_and_kiosk_settings_come_from_the_file_and_flags() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("makrcave.toml");
        std::fs::write(&file, "ws_max_per_identity = 2\nkiosk_unknown_cards = 3\nkiosk_backoff = 4\n")
            .expect("write config");
        let args = SettingsArgs { config: Some(file), ws_max_connections: Some(50), ..Default::default() };
        let s = Settings::load(&args).expect("valid settings");
        assert_eq!((s.ws_max_per_identity, s.ws_max_connections), (2, 50));
        assert_eq!((s.kiosk_guard.unknown_cards, s.kiosk_guard.backoff), (3, Duration::from_secs(4)));
        let bad = SettingsArgs { kiosk_backoff: Some(1000), ..Default::default() };
        assert!(matches!(Settings::load(&bad), Err(ConfigError::Invalid(_))), "backoff above its maximum");
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
    fn mosquitto_files_go_together_and_only_with_an_external_broker() {
        let file = |name: &str| Some(PathBuf::from(name));
        let external = Some("mqtt://broker:1883".to_string());
        let both = SettingsArgs {
            mqtt_url: external.clone(),
            mosquitto_password_file: file("passwd"),
            mosquitto_acl_file: file("acl"),
            ..Default::default()
        };
        let s = Settings::load(&both).expect("valid settings");
        assert_eq!(
            s.mosquitto,
            Some(MosquittoFiles { password_file: "passwd".into(), acl_file: "acl".into(), pid_file: None })
        );
        let one = SettingsArgs { mosquitto_acl_file: None, ..both.clone() };
        assert!(matches!(Settings::load(&one), Err(ConfigError::Invalid(_))));
        let embedded = SettingsArgs { mqtt_url: None, ..both };
        assert!(matches!(Settings::load(&embedded), Err(ConfigError::Invalid(_))));
        assert_eq!(Settings::defaults().mosquitto, None);
    }

    #[test]
    fn the_store_url_is_off_by_default_and_checked() {
        assert_eq!(Settings::defaults().store_url, None);
        let args = SettingsArgs { store_url: Some("https://store.example/".into()), ..Default::default() };
        assert_eq!(Settings::load(&args).expect("valid").store_url.as_deref(), Some("https://store.example"));
        for bad in ["ftp://store.example", "store.example", "https://"] {
            let args = SettingsArgs { store_url: Some(bad.into()), ..Default::default() };
            assert!(matches!(Settings::load(&args), Err(ConfigError::Invalid(_))), "{bad}");
        }
    }

    #[test]
    fn a_damaged_secret_file_is_reported_not_replaced() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join(CARD_KEY_FILE), "short\n").expect("write");
        let args = SettingsArgs { data_dir: Some(dir.path().to_path_buf()), ..Default::default() };
        let s = Settings::load(&args).expect("valid settings");
        assert!(matches!(s.card_key(), Err(ConfigError::Invalid(_))));
        assert_eq!(std::fs::read_to_string(dir.path().join(CARD_KEY_FILE)).expect("read"), "short\n");
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

    #[test]
    fn the_data_key_is_configured_or_kept_in_the_data_folder() {
        let dir = tempfile::tempdir().expect("temp dir");
        let args = SettingsArgs { data_dir: Some(dir.path().to_path_buf()), ..Default::default() };
        let s = Settings::load(&args).expect("valid settings");
        let generated = s.data_key().expect("a generated key");
        assert_eq!(std::fs::read_to_string(dir.path().join(DATA_KEY_FILE)).expect("kept"), generated.expose());
        assert_ne!(generated, s.card_key().expect("card key"), "each key is its own");

        let file = dir.path().join("makrcave.toml");
        std::fs::write(&file, "data_key = \"from-the-file-0123456789\"\n").expect("write config");
        let from_file = SettingsArgs { config: Some(file), ..args.clone() };
        let s = Settings::load(&from_file).expect("valid settings");
        assert_eq!(s.data_key().expect("configured").expose(), "from-the-file-0123456789");
        let flag = SettingsArgs { data_key: Some("from-the-flag-0123456789".into()), ..from_file };
        assert_eq!(Settings::load(&flag).expect("valid").data_key().expect("key").expose(), "from-the-flag-0123456789");
        let short = SettingsArgs { data_key: Some("short".into()), ..args };
        assert!(matches!(Settings::load(&short), Err(ConfigError::Invalid(_))));
    }
}
