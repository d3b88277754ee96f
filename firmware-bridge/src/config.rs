//! The bridge's configuration: one TOML file (see `makrcave-bridge.example.toml`, which documents
//! every setting), read once at start and validated into plain typed values.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Why a configuration file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} is not a valid configuration: {source}")]
    Parse { path: PathBuf, source: Box<toml::de::Error> },
    #[error("{0}")]
    Invalid(String),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub machine: MachineConfig,
    pub mqtt: MqttConfig,
    #[serde(default)]
    pub relay: RelayConfig,
    #[serde(default)]
    pub offline: OfflineConfig,
    #[serde(default)]
    pub card: CardConfig,
    #[serde(default)]
    pub button: ButtonConfig,
    #[serde(default)]
    pub indicator: IndicatorConfig,
    #[serde(default)]
    pub queue: QueueConfig,
    #[serde(default)]
    pub controller: ControllerSettings,
    #[serde(default)]
    pub telemetry: TelemetryConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// makrcave's base URL, e.g. `http://makrcave.local:8080`.
    pub url: String,
    /// The kiosk device token makrcave gave when the bridge was registered.
    pub device_token: String,
    /// Seconds an HTTP call may take before the server counts as unreachable.
    #[serde(default = "default_http_timeout_s")]
    pub timeout_s: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachineConfig {
    pub makerspace_id: String,
    pub equipment_id: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// `mqtt://[user:pass@]host[:port]`.
    pub url: String,
    /// Seconds between MQTT pings; the broker declares the bridge dead (and sends its will)
    /// after 1.5 times this without a packet.
    #[serde(default = "default_keep_alive")]
    pub keep_alive: u64,
}

// No `deny_unknown_fields` here: serde cannot combine it with `flatten`; the kind's variants
// still refuse unknown fields.
#[derive(Debug, Clone, Deserialize)]
pub struct RelayConfig {
    #[serde(flatten)]
    pub kind: RelayKind,
    /// Seconds a lock waits for a running job to end before it cuts power anyway.
    #[serde(default = "default_lock_grace_s")]
    pub lock_grace_s: u64,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig { kind: RelayKind::None, lock_grace_s: default_lock_grace_s() }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum RelayKind {
    /// A GPIO output line drives the relay (or the machine's enable input).
    Gpio {
        chip: PathBuf,
        line: u32,
        #[serde(default)]
        active_low: bool,
    },
    /// Programs switch the power (a smart plug's CLI, a script): argv, no shell.
    Command { on: Vec<String>, off: Vec<String> },
    /// No relay: the bridge only reports and reads cards.
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OfflinePolicy {
    /// With the server unreachable, every unlock is refused (the safe default).
    #[default]
    FailClosed,
    /// With the server unreachable, cards on the signed allowlist unlock.
    Allowlist,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OfflineConfig {
    #[serde(default)]
    pub policy: OfflinePolicy,
    /// The longest an offline unlock lasts, in minutes.
    #[serde(default = "default_max_unlock_minutes")]
    pub max_unlock_minutes: u64,
    /// The makerspace's allowlist key: base64 of the 32-byte Ed25519 public key.
    #[serde(default)]
    pub public_key: Option<String>,
    /// Seconds between allowlist refreshes while the server answers.
    #[serde(default = "default_refresh_s")]
    pub refresh_s: u64,
}

impl Default for OfflineConfig {
    fn default() -> Self {
        OfflineConfig {
            policy: OfflinePolicy::FailClosed,
            max_unlock_minutes: default_max_unlock_minutes(),
            public_key: None,
            refresh_s: default_refresh_s(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum CardConfig {
    /// A keyboard-wedge reader: an input device that types the UID and Enter.
    Evdev { device: PathBuf },
    /// A reader on a serial port that writes one UID per line.
    Serial {
        port: String,
        #[serde(default = "default_card_baud")]
        baud: u32,
    },
    #[default]
    None,
}

/// A GPIO line, by chip device and offset.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpioLine {
    pub chip: PathBuf,
    pub line: u32,
    #[serde(default)]
    pub active_low: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ButtonConfig {
    /// The "bed cleared" push button (an input; a press is an edge to active).
    pub bed_clear: Option<GpioLine>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndicatorConfig {
    /// An LED or buzzer that says granted (1 s on) or refused (three short blinks).
    pub gpio: Option<GpioLine>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    /// Where the on-disk queue, the last good allowlist and downloaded job files live.
    #[serde(default = "default_state_dir")]
    pub dir: PathBuf,
    /// The queue's bound; the oldest records are dropped (and counted) beyond it.
    #[serde(default = "default_queue_max_bytes")]
    pub max_bytes: u64,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig { dir: default_state_dir(), max_bytes: default_queue_max_bytes() }
    }
}

/// The serial controller's settings, handed as they are to the controller module.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ControllerSettings {
    #[serde(default)]
    pub kind: ControllerKind,
    #[serde(default)]
    pub port: Option<String>,
    #[serde(default = "default_controller_baud")]
    pub baud: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ControllerKind {
    Grbl,
    Marlin,
    #[default]
    None,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// Seconds between telemetry messages when nothing changes (a heartbeat for makrcave).
    #[serde(default = "default_heartbeat_s")]
    pub heartbeat_s: u64,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig { heartbeat_s: default_heartbeat_s() }
    }
}

fn default_http_timeout_s() -> u64 {
    5
}
fn default_keep_alive() -> u64 {
    10
}
fn default_lock_grace_s() -> u64 {
    600
}
fn default_max_unlock_minutes() -> u64 {
    120
}
fn default_refresh_s() -> u64 {
    300
}
fn default_card_baud() -> u32 {
    9600
}
fn default_controller_baud() -> u32 {
    115_200
}
fn default_state_dir() -> PathBuf {
    PathBuf::from("/var/lib/makrcave-bridge")
}
fn default_queue_max_bytes() -> u64 {
    4 * 1024 * 1024
}
fn default_heartbeat_s() -> u64 {
    10
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        Config::parse(&text).map_err(|err| match err {
            ConfigError::Parse { source, .. } => ConfigError::Parse { path: path.to_path_buf(), source },
            other => other,
        })
    }

    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text)
            .map_err(|source| ConfigError::Parse { path: PathBuf::new(), source: Box::new(source) })?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |what: &str| Err(ConfigError::Invalid(what.to_string()));
        if !(self.server.url.starts_with("http://") || self.server.url.starts_with("https://")) {
            return invalid("server.url must start with http:// or https://");
        }
        if self.machine.makerspace_id.is_empty() || self.machine.equipment_id.is_empty() {
            return invalid("machine.makerspace_id and machine.equipment_id must be set");
        }
        MqttEndpoint::parse(&self.mqtt.url).map_err(ConfigError::Invalid)?;
        if let RelayKind::Command { on, off } = &self.relay.kind {
            if on.is_empty() || off.is_empty() {
                return invalid("relay.on and relay.off must each name a program (argv list)");
            }
        }
        if self.offline.policy == OfflinePolicy::Allowlist && self.offline.public_key.is_none() {
            return invalid("offline.policy = \"allowlist\" needs offline.public_key");
        }
        if self.controller.kind != ControllerKind::None && self.controller.port.is_none() {
            return invalid("controller.port must be set for a grbl or marlin controller");
        }
        if self.queue.max_bytes < 4096 {
            return invalid("queue.max_bytes must be at least 4096");
        }
        Ok(())
    }

    pub fn http_timeout(&self) -> Duration {
        Duration::from_secs(self.server.timeout_s.max(1))
    }
}

/// A broker address from `mqtt://[user:pass@]host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttEndpoint {
    pub host: String,
    pub port: u16,
    pub credentials: Option<(String, String)>,
}

impl MqttEndpoint {
    pub fn parse(url: &str) -> Result<MqttEndpoint, String> {
        let rest = url
            .strip_prefix("mqtt://")
            .or_else(|| url.strip_prefix("tcp://"))
            .ok_or_else(|| "mqtt.url must start with mqtt://".to_string())?;
        let (credentials, host_port) = match rest.rsplit_once('@') {
            Some((c, h)) => (Some(c), h),
            None => (None, rest),
        };
        let credentials = match credentials {
            Some(c) => match c.split_once(':') {
                Some((user, pass)) => Some((user.to_string(), pass.to_string())),
                None => Some((c.to_string(), String::new())),
            },
            None => None,
        };
        let (host, port) = match host_port.rsplit_once(':') {
            Some((h, p)) => (h, p.parse::<u16>().map_err(|_| "the port in mqtt.url is not a number".to_string())?),
            None => (host_port, 1883),
        };
        if host.is_empty() {
            return Err("mqtt.url has no host".to_string());
        }
        Ok(MqttEndpoint { host: host.to_string(), port, credentials })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        [server]
        url = "http://makrcave.local:8080"
        device_token = "tok"
        [machine]
        makerspace_id = "ms"
        equipment_id = "eq-laser-001"
        [mqtt]
        url = "mqtt://bridge:secret@broker:1884"
    "#;

    #[test]
    fn a_minimal_file_gets_safe_defaults() {
        let config = Config::parse(MINIMAL).unwrap();
        assert_eq!(config.relay.kind, RelayKind::None);
        assert_eq!(config.relay.lock_grace_s, 600);
        assert_eq!(config.offline.policy, OfflinePolicy::FailClosed);
        assert_eq!(config.card, CardConfig::None);
        assert_eq!(config.controller.kind, ControllerKind::None);
    }

    #[test]
    fn the_example_file_parses() {
        let text = include_str!("../makrcave-bridge.example.toml");
        let config = Config::parse(text).unwrap();
        assert_eq!(config.machine.equipment_id, "eq-laser-001");
    }

    #[test]
    fn relay_kinds_parse() {
        let gpio = format!("{MINIMAL}\n[relay]\nkind = \"gpio\"\nchip = \"/dev/gpiochip0\"\nline = 17\n");
        let config = Config::parse(&gpio).unwrap();
        assert_eq!(config.relay.kind, RelayKind::Gpio { chip: "/dev/gpiochip0".into(), line: 17, active_low: false });
        let command = format!("{MINIMAL}\n[relay]\nkind = \"command\"\non = [\"plug\", \"on\"]\noff = [\"plug\", \"off\"]\nlock_grace_s = 5\n");
        let config = Config::parse(&command).unwrap();
        assert_eq!(config.relay.lock_grace_s, 5);
        assert!(matches!(config.relay.kind, RelayKind::Command { .. }));
    }

    #[test]
    fn allowlist_policy_needs_a_key() {
        let text = format!("{MINIMAL}\n[offline]\npolicy = \"allowlist\"\n");
        assert!(matches!(Config::parse(&text), Err(ConfigError::Invalid(_))));
    }

    #[test]
    fn mqtt_urls() {
        let endpoint = MqttEndpoint::parse("mqtt://u:p@h:1884").unwrap();
        assert_eq!(
            endpoint,
            MqttEndpoint { host: "h".into(), port: 1884, credentials: Some(("u".into(), "p".into())) }
        );
        assert_eq!(MqttEndpoint::parse("mqtt://h").unwrap().port, 1883);
        assert!(MqttEndpoint::parse("http://h").is_err());
        assert!(MqttEndpoint::parse("mqtt://h:x").is_err());
        assert!(MqttEndpoint::parse("mqtt://").is_err());
    }
}
