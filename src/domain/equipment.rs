//! What a piece of equipment is (kind, connection, admin status), independent of storage.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

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

/// How a machine talks to us. Stored with the equipment; secrets never leave through the API.
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
    },
    /// A Shelly Gen1 plug: `shellies/{device_id}/relay/0/...`.
    ShellyGen1 {
        device_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        running_above_w: Option<f64>,
    },
    /// A Shelly Gen2 plug, spoken to by RPC over MQTT.
    ShellyGen2 {
        device_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        running_above_w: Option<f64>,
    },
    /// A Bambu Lab printer in LAN mode (`device/{serial}/report`).
    Bambu { serial: String },
    /// An OctoPrint instance reached over its REST API and push socket.
    Octoprint {
        url: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        api_key: Option<String>,
    },
}

impl Connection {
    /// The same connection with its secrets removed, for API responses.
    pub fn redacted(&self) -> Connection {
        match self {
            Self::Octoprint { url, api_key } => {
                Self::Octoprint { url: url.clone(), api_key: api_key.as_ref().map(|_| "********".to_string()) }
            }
            other => other.clone(),
        }
    }

    /// Checks the settings a client sent, with a sentence for the client when they are wrong.
    pub fn validate(&self) -> Result<(), String> {
        let non_empty = |field: &str, value: &str| {
            if value.trim().is_empty() || value.contains(['+', '#']) {
                Err(format!("connection.{field} must be a non-empty name without MQTT wildcards"))
            } else {
                Ok(())
            }
        };
        let threshold = |w: &Option<f64>| match w {
            Some(w) if !w.is_finite() || *w < 0.0 => {
                Err("connection.running_above_w must be a non-negative number".to_string())
            }
            _ => Ok(()),
        };
        match self {
            Self::Mqtt => Ok(()),
            Self::Tasmota { topic, running_above_w } => {
                non_empty("topic", topic)?;
                threshold(running_above_w)
            }
            Self::ShellyGen1 { device_id, running_above_w } | Self::ShellyGen2 { device_id, running_above_w } => {
                non_empty("device_id", device_id)?;
                threshold(running_above_w)
            }
            Self::Bambu { serial } => non_empty("serial", serial),
            Self::Octoprint { url, .. } => match url::Url::parse(url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(()),
                _ => Err("connection.url must be an http:// or https:// URL".to_string()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_kinds_parse_from_the_documented_json() {
        let c: Connection = serde_json::from_str(r#"{"kind":"tasmota","topic":"laser1","running_above_w":50}"#)
            .expect("valid tasmota connection");
        assert_eq!(c, Connection::Tasmota { topic: "laser1".into(), running_above_w: Some(50.0) });
        let c: Connection = serde_json::from_str(r#"{"kind":"mqtt"}"#).expect("valid mqtt connection");
        assert_eq!(c, Connection::Mqtt);
        assert!(serde_json::from_str::<Connection>(r#"{"kind":"zigbee"}"#).is_err());
        assert!(serde_json::from_str::<Connection>(r#"{"kind":"tasmota"}"#).is_err());
    }

    #[test]
    fn secrets_are_redacted() {
        let c = Connection::Octoprint { url: "http://p1:5000".into(), api_key: Some("SECRET".into()) };
        let shown = serde_json::to_string(&c.redacted()).expect("serializes");
        assert!(!shown.contains("SECRET"));
    }

    #[test]
    fn validation_rejects_wildcards_and_bad_urls() {
        assert!(Connection::Tasmota { topic: "a/#".into(), running_above_w: None }.validate().is_err());
        assert!(Connection::Octoprint { url: "ftp://x".into(), api_key: None }.validate().is_err());
        assert!(Connection::Octoprint { url: "http://x:5000".into(), api_key: None }.validate().is_ok());
        assert!(Connection::ShellyGen1 { device_id: "s".into(), running_above_w: Some(-1.0) }.validate().is_err());
    }

    #[test]
    fn type_names_round_trip() {
        for t in EquipmentType::ALL {
            assert_eq!(EquipmentType::parse(t.as_str()), Some(t));
            assert_eq!(serde_json::to_value(t).expect("serializes"), t.as_str());
        }
    }
}
