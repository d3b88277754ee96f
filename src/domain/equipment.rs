//! What a piece of equipment is (kind, connection, admin status), independent of storage.

use crate::domain::validate::{check_chars, Lines};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::secrets::{DataKey, SecretError, SecretValue, ACCESS_CODE, API_KEY, MASK};

/// Equipment kinds from the product documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum EquipmentType {
    #[serde(rename = "3d_printer")]
    Printer3d,
    #[serde(rename = "sla_printer")]
    SlaPrinter,
    #[serde(rename = "laser_cutter")]
    LaserCutter,
    #[serde(rename = "cnc_machine")]
    CncMachine,
    #[serde(rename = "workstation")]
    Workstation,
    #[serde(rename = "tool")]
    Tool,
}

impl EquipmentType {
    pub const ALL: [EquipmentType; 6] =
        [Self::Printer3d, Self::SlaPrinter, Self::LaserCutter, Self::CncMachine, Self::Workstation, Self::Tool];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Printer3d => "3d_printer",
            Self::SlaPrinter => "sla_printer",
            Self::LaserCutter => "laser_cutter",
            Self::CncMachine => "cnc_machine",
            Self::Workstation => "workstation",
            Self::Tool => "tool",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// The availability an admin sets. Everything finer (printing, paused, offline) is live state
/// owned by the machine's actor; this only says whether the machine is taken out of service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum AdminStatus {
    #[default]
    Available,
    Maintenance,
}

impl AdminStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Available => "available",
            Self::Maintenance => "maintenance",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "available" => Some(Self::Available),
            "maintenance" => Some(Self::Maintenance),
            _ => None,
        }
    }
}

/// The longest hold of a plug's power sensing: beyond an hour, "running" would lag too far
/// behind the machine to be of use.
pub const MAX_RUNNING_AFTER_S: f64 = 3600.0;

/// How a machine talks to us. Stored with the equipment; its secret fields (named from
/// [`super::secrets::SECRET_FIELDS`]) are sealed at rest and never leave through the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, Default)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Connection {
    /// The generic `makrcave/{space}/{machine}/...` topics (makrcave-bridge, custom firmware).
    #[default]
    Mqtt,
    /// A Tasmota smart plug: `cmnd/{topic}/POWER`, `tele/{topic}/SENSOR`, ...
    Tasmota {
        topic: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        running_above_w: Option<f64>,
        /// Seconds the power must stay above (or below) `running_above_w` before the machine
        /// counts as running (or no longer) [default: 5].
        #[serde(default, skip_serializing_if = "Option::is_none")]
        running_after_s: Option<f64>,
    },
    /// A Shelly Gen1 plug: `shellies/{device_id}/relay/0/...`.
    ShellyGen1 {
        device_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        running_above_w: Option<f64>,
        /// Seconds the power must stay above (or below) `running_above_w` before the machine
        /// counts as running (or no longer) [default: 5].
        #[serde(default, skip_serializing_if = "Option::is_none")]
        running_after_s: Option<f64>,
    },
    /// A Shelly Gen2 plug, spoken to by RPC over MQTT.
    ShellyGen2 {
        device_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        running_above_w: Option<f64>,
        /// Seconds the power must stay above (or below) `running_above_w` before the machine
        /// counts as running (or no longer) [default: 5].
        #[serde(default, skip_serializing_if = "Option::is_none")]
        running_after_s: Option<f64>,
    },
    /// A Bambu Lab printer in LAN mode: makrcave connects to the printer's own MQTT broker
    /// (TLS, user `bblp`) and follows `device/{serial}/report`. The printer's certificate is
    /// checked against `ca_file` (with the serial as its name) or pinned by
    /// `fingerprint_sha256`: exactly one of the two.
    Bambu {
        /// The printer's address on the LAN.
        host: String,
        /// The printer's MQTT port [default: 8883].
        #[serde(default = "default_bambu_port")]
        #[schema(default = 8883, minimum = 1)]
        port: u16,
        /// The printer's FTPS port (implicit TLS), where files to print are uploaded
        /// [default: 990].
        #[serde(default = "default_bambu_ftps_port")]
        #[schema(default = 990, minimum = 1)]
        ftps_port: u16,
        serial: String,
        /// The printer's LAN access code (write only: responses mask it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(value_type = Option<String>)]
        access_code: Option<SecretValue>,
        /// A PEM file on the server with the CA that issued the printer's certificate (Bambu's
        /// own CA).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ca_file: Option<String>,
        /// The SHA-256 of the printer's certificate (DER), 64 hex digits (colons allowed).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fingerprint_sha256: Option<String>,
    },
    /// An OctoPrint instance reached over its REST API and push socket.
    Octoprint {
        url: String,
        /// OctoPrint's API key (write only: responses mask it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(value_type = Option<String>)]
        api_key: Option<SecretValue>,
        /// Connect OctoPrint to its printer (with OctoPrint's own saved port and baud rate)
        /// when OctoPrint is up and its printer is not connected.
        #[serde(default = "default_true")]
        auto_connect: bool,
    },
}

fn default_true() -> bool {
    true
}

#[cfg(test)]
impl Connection {
    /// A Bambu printer checked by a pinned fingerprint, for tests that need any one.
    pub fn bambu_example() -> Connection {
        Connection::Bambu {
            host: "192.0.2.7".into(),
            port: BAMBU_PORT,
            ftps_port: BAMBU_FTPS_PORT,
            serial: "01S".into(),
            access_code: None,
            ca_file: None,
            fingerprint_sha256: Some("00".repeat(32)),
        }
    }
}

/// Bambu printers' MQTT over TLS.
pub const BAMBU_PORT: u16 = 8883;

fn default_bambu_port() -> u16 {
    BAMBU_PORT
}

/// Bambu printers' storage: FTPS with implicit TLS.
pub const BAMBU_FTPS_PORT: u16 = 990;

fn default_bambu_ftps_port() -> u16 {
    BAMBU_FTPS_PORT
}

/// A SHA-256 fingerprint as people copy it: 64 hex digits, or 32 pairs separated by colons
/// (as `openssl x509 -fingerprint` prints it). The API schema says the same.
pub const FINGERPRINT_PATTERN: &str = "^([0-9A-Fa-f]{64}|[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){31})$";

/// The 32 bytes of a fingerprint written as [`FINGERPRINT_PATTERN`] says.
pub fn parse_fingerprint(text: &str) -> Option<[u8; 32]> {
    let hex: String = match text.len() {
        64 => text.to_string(),
        95 if text.char_indices().all(|(i, c)| (i % 3 == 2) == (c == ':')) => text.replace(':', ""),
        _ => return None,
    };
    if !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

impl Connection {
    /// The secret fields of this kind of connection, by name: the only place that says which
    /// field of which kind is a secret; sealing, opening and masking all go through it.
    fn secrets_mut(&mut self) -> Vec<(&'static str, &mut Option<SecretValue>)> {
        match self {
            Self::Octoprint { api_key, .. } => vec![(API_KEY, api_key)],
            Self::Bambu { access_code, .. } => vec![(ACCESS_CODE, access_code)],
            Self::Mqtt | Self::Tasmota { .. } | Self::ShellyGen1 { .. } | Self::ShellyGen2 { .. } => Vec::new(),
        }
    }

    /// The clear value of the secret `field` (one of [`super::secrets::SECRET_FIELDS`]), or
    /// `None` when this connection has no such secret. The one way to read a secret: code that
    /// talks to a machine (the OctoPrint adapter, Bambu's MQTT login) calls this with the data
    /// key. A value sealed with another key is an error, never garbage.
    pub fn secret(&self, key: &DataKey, field: &str) -> Result<Option<String>, SecretError> {
        let mut copy = self.clone();
        let value = copy.secrets_mut().into_iter().find(|(name, _)| *name == field).and_then(|(_, v)| v.take());
        value.map(|v| key.open(field, &v)).transpose()
    }

    /// Checks that every sealed secret of this connection opens with `key`.
    pub fn check_key(&self, key: &DataKey) -> Result<(), SecretError> {
        let mut copy = self.clone();
        for (name, value) in copy.secrets_mut() {
            if let Some(value) = value {
                key.open(name, value)?;
            }
        }
        Ok(())
    }

    /// The same connection with every clear secret sealed under `key`, as it is stored.
    /// Secrets already sealed stay as they are.
    pub fn sealed(&self, key: &DataKey) -> Connection {
        let mut out = self.clone();
        for (name, value) in out.secrets_mut() {
            if let Some(SecretValue::Clear(clear)) = value {
                *value = Some(key.seal(name, clear));
            }
        }
        out
    }

    /// The same connection with its secrets masked, for API responses.
    pub fn redacted(&self) -> Connection {
        let mut out = self.clone();
        for (_, value) in out.secrets_mut() {
            if value.is_some() {
                *value = Some(SecretValue::Clear(MASK.to_string()));
            }
        }
        out
    }

    /// A client's new settings where a secret it sent back masked (as it read it) keeps the
    /// value `old` has for that field.
    pub fn keep_masked(mut self, old: &Connection) -> Connection {
        let mut old = old.clone();
        let mut old_secrets = old.secrets_mut();
        for (name, value) in self.secrets_mut() {
            if matches!(value, Some(SecretValue::Clear(v)) if v == MASK) {
                *value = old_secrets.iter_mut().find(|(n, _)| *n == name).and_then(|(_, v)| v.take());
            }
        }
        self
    }

    /// Checks the settings a client sent, with a sentence for the client when they are wrong.
    pub fn validate(&self) -> Result<(), String> {
        // Names become MQTT topics and log fields: no wildcards, no control characters.
        let one_line = |field: &str, value: &str| {
            check_chars(&format!("connection.{field}"), value, Lines::One).map_err(|e| e.to_string())
        };
        let non_empty = |field: &str, value: &str| {
            if value.trim().is_empty() || value.contains(['+', '#']) {
                Err(format!("connection.{field} must be a non-empty name without MQTT wildcards"))
            } else {
                one_line(field, value)
            }
        };
        let threshold = |w: &Option<f64>| match w {
            Some(w) if !w.is_finite() || *w < 0.0 => {
                Err("connection.running_above_w must be a non-negative number".to_string())
            }
            _ => Ok(()),
        };
        let hold = |s: &Option<f64>| match s {
            Some(s) if !s.is_finite() || !(0.0..=MAX_RUNNING_AFTER_S).contains(s) => {
                Err(format!("connection.running_after_s must be between 0 and {MAX_RUNNING_AFTER_S} seconds"))
            }
            _ => Ok(()),
        };
        // Clients send secrets in clear; the sealed form is ours alone.
        let mut copy = self.clone();
        if let Some((name, _)) = copy.secrets_mut().into_iter().find(|(_, v)| v.as_ref().is_some_and(|v| !v.is_clear()))
        {
            return Err(format!("connection.{name} must be a string"));
        }
        match self {
            Self::Mqtt => Ok(()),
            Self::Tasmota { topic, running_above_w, running_after_s } => {
                non_empty("topic", topic)?;
                threshold(running_above_w)?;
                hold(running_after_s)
            }
            Self::ShellyGen1 { device_id, running_above_w, running_after_s }
            | Self::ShellyGen2 { device_id, running_above_w, running_after_s } => {
                non_empty("device_id", device_id)?;
                threshold(running_above_w)?;
                hold(running_after_s)
            }
            Self::Bambu { host, port, ftps_port, serial, ca_file, fingerprint_sha256, .. } => {
                non_empty("serial", serial)?;
                one_line("host", host)?;
                if host.trim().is_empty() || host.contains(['/', ' ']) || !host.is_ascii() {
                    return Err("connection.host must be a host name or an IP address".into());
                }
                if *port == 0 {
                    return Err("connection.port must be between 1 and 65535".into());
                }
                if *ftps_port == 0 {
                    return Err("connection.ftps_port must be between 1 and 65535".into());
                }
                match (ca_file, fingerprint_sha256) {
                    (Some(file), None) => {
                        one_line("ca_file", file)?;
                        if file.trim().is_empty() {
                            return Err("connection.ca_file must name a PEM file".into());
                        }
                        Ok(())
                    }
                    (None, Some(print)) => match parse_fingerprint(print) {
                        Some(_) => Ok(()),
                        None => Err("connection.fingerprint_sha256 must be 64 hex digits (colons allowed)".into()),
                    },
                    _ => Err("connection needs exactly one of ca_file and fingerprint_sha256: the printer's certificate is always checked".into()),
                }
            }
            // The URL parser drops tabs and line feeds silently: refuse them before it does.
            // The document calls it a URI (RFC 3986: ASCII only); the parser would also take an
            // IRI and store it as given, so an international host name is spelled in punycode.
            Self::Octoprint { url, .. } => {
                one_line("url", url)?;
                if !url.is_ascii() {
                    return Err("connection.url must be ASCII (an international host name in punycode)".into());
                }
                match url::Url::parse(url) {
                    Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(()),
                    _ => Err("connection.url must be an http:// or https:// URL".to_string()),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_names_and_urls_refuse_control_characters() {
        let tasmota =
            Connection::Tasmota { topic: "laser1\nstat".into(), running_above_w: None, running_after_s: None };
        assert!(tasmota.validate().is_err());
        let shelly =
            Connection::ShellyGen1 { device_id: "plug\u{1b}[2J".into(), running_above_w: None, running_after_s: None };
        assert!(shelly.validate().is_err());
        // The URL parser would drop the tab and accept the rest.
        let octoprint =
            Connection::Octoprint { url: "http://printer\t.local:5000".into(), api_key: None, auto_connect: true };
        assert!(octoprint.validate().is_err());
        let octoprint = Connection::Octoprint { url: "https://ľĵgÁ".into(), api_key: None, auto_connect: true };
        assert!(octoprint.validate().is_err(), "a URI is ASCII");
        let octoprint =
            Connection::Octoprint { url: "http://printer.local:5000".into(), api_key: None, auto_connect: true };
        assert!(octoprint.validate().is_ok());
    }

    #[test]
    fn connection_kinds_parse_from_the_documented_json() {
        let c: Connection = serde_json::from_str(r#"{"kind":"tasmota","topic":"laser1","running_above_w":50}"#)
            .expect("valid tasmota connection");
        assert_eq!(
            c,
            Connection::Tasmota { topic: "laser1".into(), running_above_w: Some(50.0), running_after_s: None }
        );
        let c: Connection = serde_json::from_str(r#"{"kind":"mqtt"}"#).expect("valid mqtt connection");
        assert_eq!(c, Connection::Mqtt);
        assert!(serde_json::from_str::<Connection>(r#"{"kind":"zigbee"}"#).is_err());
        assert!(serde_json::from_str::<Connection>(r#"{"kind":"tasmota"}"#).is_err());
    }

    #[test]
    fn a_bambu_connection_checks_the_printer_one_way_exactly() {
        let print = "AB".repeat(32);
        let mut c: Connection = serde_json::from_str(&format!(
            r#"{{"kind":"bambu","host":"192.0.2.7","serial":"01P00A123","access_code":"12345678","fingerprint_sha256":"{print}"}}"#
        ))
        .expect("valid bambu connection");
        let Connection::Bambu { port, ftps_port, .. } = &c else { panic!("bambu") };
        assert_eq!((*port, *ftps_port), (8883, 990), "the default ports");
        assert!(c.validate().is_ok());
        let bambu = |ca: Option<&str>, fp: Option<&str>| Connection::Bambu {
            host: "printer.lan".into(),
            port: 8883,
            ftps_port: 990,
            serial: "01P00A123".into(),
            access_code: None,
            ca_file: ca.map(str::to_string),
            fingerprint_sha256: fp.map(str::to_string),
        };
        assert!(bambu(None, None).validate().is_err(), "no way to check the printer");
        assert!(bambu(Some("/ca.pem"), Some(&print)).validate().is_err(), "two ways");
        assert!(bambu(Some("/ca.pem"), None).validate().is_ok());
        let Connection::Bambu { ftps_port, .. } = &mut c else { panic!("bambu") };
        *ftps_port = 0;
        assert!(c.validate().is_err(), "port 0 for FTPS");
        assert!(bambu(None, Some("abcd")).validate().is_err(), "too short");
        let colons: Vec<String> = (0..32).map(|_| "0f".to_string()).collect();
        assert!(bambu(None, Some(&colons.join(":"))).validate().is_ok());
        assert_eq!(parse_fingerprint(&colons.join(":")), Some([0x0f; 32]));
        assert_eq!(parse_fingerprint(&"zz".repeat(32)), None);
        assert_eq!(parse_fingerprint(&format!("{}::", "0f".repeat(31))), None, "colons only between pairs");
        assert_eq!(parse_fingerprint(&format!("+{}", "f".repeat(63))), None, "hex digits only");
    }

    /// One connection of every kind, each secret set to a value that names its field.
    fn every_kind() -> Vec<Connection> {
        vec![
            Connection::Mqtt,
            Connection::Tasmota { topic: "t".into(), running_above_w: Some(5.0), running_after_s: Some(1.0) },
            Connection::ShellyGen1 { device_id: "s1".into(), running_above_w: Some(5.0), running_after_s: Some(1.0) },
            Connection::ShellyGen2 { device_id: "s2".into(), running_above_w: Some(5.0), running_after_s: Some(1.0) },
            Connection::Bambu {
                host: "192.0.2.7".into(),
                port: BAMBU_PORT,
                ftps_port: BAMBU_FTPS_PORT,
                serial: "01S".into(),
                access_code: Some("SECRET-access_code".into()),
                ca_file: Some("/etc/makrcave/bambu-ca.pem".into()),
                fingerprint_sha256: None,
            },
            Connection::Octoprint {
                url: "http://p1:5000".into(),
                api_key: Some("SECRET-api_key".into()),
                auto_connect: true,
            },
        ]
    }

    #[test]
    fn secrets_are_redacted() {
        for c in every_kind() {
            let shown = serde_json::to_string(&c.redacted()).expect("serializes");
            assert!(!shown.contains("SECRET"), "{shown}");
        }
        let c =
            Connection::Octoprint { url: "http://p1:5000".into(), api_key: Some("SECRET".into()), auto_connect: true };
        assert_eq!(serde_json::to_value(c.redacted()).expect("serializes")["api_key"], MASK);
    }

    #[test]
    fn every_field_named_as_a_secret_is_sealed() {
        use crate::domain::secrets::SECRET_FIELDS;
        let key = DataKey::derive("test data key 0123456789");
        for c in every_kind() {
            let clear = serde_json::to_value(&c).expect("serializes");
            let sealed = serde_json::to_value(c.sealed(&key)).expect("serializes");
            for (field, value) in clear.as_object().expect("an object") {
                if SECRET_FIELDS.contains(&field.as_str()) {
                    assert_eq!(sealed[field]["enc"].as_str().map(|e| e.starts_with("v1:")), Some(true), "{sealed}");
                    assert_eq!(c.sealed(&key).secret(&key, field), Ok(value.as_str().map(String::from)));
                } else {
                    assert_eq!(&sealed[field], value, "{field} is not a secret");
                }
            }
            assert!(!sealed.to_string().contains("SECRET"), "{sealed}");
            // Sealing twice changes nothing more, and the stored form reads back.
            let stored: Connection = serde_json::from_value(sealed).expect("reads back");
            assert_eq!(stored.sealed(&key), stored);
            assert_eq!(stored.check_key(&key), Ok(()));
        }
    }

    #[test]
    fn a_secret_is_read_with_the_key_that_sealed_it() {
        let key = DataKey::derive("test data key 0123456789");
        let c =
            Connection::Octoprint { url: "http://p:5000".into(), api_key: Some("K-123".into()), auto_connect: true };
        // A value stored before sealing reads as it is.
        assert_eq!(c.secret(&key, API_KEY), Ok(Some("K-123".into())));
        let sealed = c.sealed(&key);
        assert_eq!(sealed.secret(&key, API_KEY), Ok(Some("K-123".into())));
        assert_eq!(sealed.secret(&key, ACCESS_CODE), Ok(None));
        let wrong = DataKey::derive("another data key 0123456789");
        assert_eq!(sealed.secret(&wrong, API_KEY), Err(SecretError::WrongKey(API_KEY.into())));
        assert_eq!(sealed.check_key(&wrong), Err(SecretError::WrongKey(API_KEY.into())));
    }

    #[test]
    fn a_masked_secret_sent_back_keeps_the_stored_one() {
        let key = DataKey::derive("test data key 0123456789");
        let old =
            Connection::Octoprint { url: "http://p:5000".into(), api_key: Some("K-1".into()), auto_connect: true }
                .sealed(&key);
        let sent =
            Connection::Octoprint { url: "http://q:5000".into(), api_key: Some(MASK.into()), auto_connect: true };
        let kept = sent.keep_masked(&old);
        assert_eq!(kept.secret(&key, API_KEY), Ok(Some("K-1".into())));
        let sent =
            Connection::Octoprint { url: "http://q:5000".into(), api_key: Some("K-2".into()), auto_connect: true };
        assert_eq!(sent.keep_masked(&old).secret(&key, API_KEY), Ok(Some("K-2".into())));
        // A client cannot hand in a sealed value of its own.
        assert!(old.validate().is_err());
    }

    #[test]
    fn validation_rejects_wildcards_and_bad_urls() {
        assert!(Connection::Tasmota { topic: "a/#".into(), running_above_w: None, running_after_s: None }
            .validate()
            .is_err());
        assert!(Connection::Octoprint { url: "ftp://x".into(), api_key: None, auto_connect: true }.validate().is_err());
        assert!(Connection::Octoprint { url: "http://x:5000".into(), api_key: None, auto_connect: true }
            .validate()
            .is_ok());
        assert!(Connection::ShellyGen1 { device_id: "s".into(), running_above_w: Some(-1.0), running_after_s: None }
            .validate()
            .is_err());
        let slow =
            Connection::ShellyGen2 { device_id: "s".into(), running_above_w: Some(5.0), running_after_s: Some(3601.0) };
        assert!(slow.validate().is_err());
    }

    #[test]
    fn type_names_round_trip() {
        for t in EquipmentType::ALL {
            assert_eq!(EquipmentType::parse(t.as_str()), Some(t));
            assert_eq!(serde_json::to_value(t).expect("serializes"), t.as_str());
        }
    }
}
