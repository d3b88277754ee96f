//! Commands to machines, protocol-neutral, and their encoding into each machine's own MQTT
//! messages (DESIGN.md, "MQTT"). Pure: a command and a connection in, messages out.
//!
//! Unlock and lock switch the machine's power where makrcave controls it (a smart plug, the
//! bridge's relay); a printer reached over OctoPrint or Bambu's LAN mode has no relay, so its
//! unlock is bookkeeping only (the session) and produces no message.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::json;

use crate::domain::equipment::Connection;
use crate::domain::jobs::JobCommand;
use crate::protocols::generic::command_topic;

/// What makrcave asks a machine to do.
#[derive(Debug, Clone, PartialEq)]
pub enum MachineCommand {
    /// Power the machine for a member's session, until a time if known.
    Unlock { session_id: String, until: Option<DateTime<Utc>> },
    /// End a session: cut the power.
    Lock { session_id: String },
    /// Act on the machine's job (or ask for a full report).
    Job(JobCommand),
}

impl MachineCommand {
    pub fn action(&self) -> &'static str {
        match self {
            Self::Unlock { .. } => "unlock",
            Self::Lock { .. } => "lock",
            Self::Job(job) => job.action(),
        }
    }
}

/// Whether a machine connected as `connection` can carry out `command`. What it cannot is
/// answered `unsupported`, never dropped in silence.
/// - The generic topics (makrcave-bridge, firmware) carry every command.
/// - A smart plug switches power: unlock and lock only.
/// - OctoPrint and Bambu printers have no relay: unlock and lock are bookkeeping (the
///   session), which they support. OctoPrint's adapter carries out every job command (over
///   REST, see `crate::protocols::octoprint`), Bambu's too: a start uploads the file over FTPS
///   and then asks the printer to print it, the others are requests on the printer's own
///   broker (`crate::protocols::bambu`).
pub fn supports(connection: &Connection, command: &MachineCommand) -> bool {
    match (connection, command) {
        (_, MachineCommand::Unlock { .. } | MachineCommand::Lock { .. }) => true,
        (Connection::Mqtt | Connection::Octoprint { .. } | Connection::Bambu { .. }, MachineCommand::Job(_)) => true,
        (
            Connection::Tasmota { .. } | Connection::ShellyGen1 { .. } | Connection::ShellyGen2 { .. },
            MachineCommand::Job(_),
        ) => false,
    }
}

/// One MQTT message to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    pub topic: String,
    pub payload: Vec<u8>,
    /// Commands are sent at least once: a lost "lock" would leave a machine powered.
    pub at_least_once: bool,
}

fn message(topic: String, payload: impl Into<Vec<u8>>) -> OutgoingMessage {
    OutgoingMessage { topic, payload: payload.into(), at_least_once: true }
}

/// The messages that carry `command` to a machine connected as `connection`.
/// `rpc_id` numbers Shelly Gen2 RPC requests (any increasing number).
pub fn encode(
    makerspace_id: &str,
    equipment_id: &str,
    connection: &Connection,
    command: &MachineCommand,
    rpc_id: u64,
) -> Vec<OutgoingMessage> {
    if !supports(connection, command) {
        return Vec::new();
    }
    let on = matches!(command, MachineCommand::Unlock { .. });
    match connection {
        Connection::Mqtt => {
            let mut body = json!({ "action": command.action() });
            match command {
                MachineCommand::Unlock { session_id, until } => {
                    body["session_id"] = json!(session_id);
                    if let Some(until) = until {
                        body["until"] = json!(until.to_rfc3339_opts(SecondsFormat::Secs, true));
                    }
                }
                MachineCommand::Lock { session_id } => body["session_id"] = json!(session_id),
                MachineCommand::Job(JobCommand::Start { file, fetch }) => match fetch {
                    // A bridge fetches the file from makrcave with its device token.
                    Some(f) => {
                        body["job_id"] = json!(f.job_id);
                        body["file"] = json!(f.name);
                        body["url"] = json!(f.url());
                        body["sha256"] = json!(f.sha256);
                        body["size"] = json!(f.size);
                    }
                    None => body["file"] = json!(file),
                },
                MachineCommand::Job(_) => {}
            }
            vec![message(command_topic(makerspace_id, equipment_id), body.to_string())]
        }
        Connection::Tasmota { topic, .. } => {
            vec![message(format!("cmnd/{topic}/POWER"), if on { "ON" } else { "OFF" })]
        }
        Connection::ShellyGen1 { device_id, .. } => {
            vec![message(format!("shellies/{device_id}/relay/0/command"), if on { "on" } else { "off" })]
        }
        Connection::ShellyGen2 { device_id, .. } => {
            let rpc = json!({"id": rpc_id, "src": "makrcave", "method": "Switch.Set", "params": {"id": 0, "on": on}});
            vec![message(format!("{device_id}/rpc"), rpc.to_string())]
        }
        Connection::Bambu { .. } | Connection::Octoprint { .. } => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unlock() -> MachineCommand {
        MachineCommand::Unlock { session_id: "s1".into(), until: Some("2026-11-21T18:00:00Z".parse().expect("time")) }
    }

    fn lock() -> MachineCommand {
        MachineCommand::Lock { session_id: "s1".into() }
    }

    fn text(m: &OutgoingMessage) -> (&str, String) {
        (m.topic.as_str(), String::from_utf8(m.payload.clone()).expect("utf-8"))
    }

    #[test]
    fn job_commands_go_to_generic_machines_only() {
        let pause = MachineCommand::Job(JobCommand::Pause);
        let out = encode("space", "eq-1", &Connection::Mqtt, &pause, 1);
        assert_eq!(text(&out[0]), ("makrcave/space/eq-1/cmd", r#"{"action":"pause"}"#.to_string()));
        let start = MachineCommand::Job(JobCommand::Start { file: "benchy.gcode".into(), fetch: None });
        let out = encode("space", "eq-1", &Connection::Mqtt, &start, 1);
        assert_eq!(text(&out[0]).1, r#"{"action":"start","file":"benchy.gcode"}"#);
        let plug = Connection::Tasmota { topic: "laser1".into(), running_above_w: None, running_after_s: None };
        assert!(!supports(&plug, &pause));
        assert!(encode("space", "eq-1", &plug, &pause, 1).is_empty(), "a plug is never switched off by a pause");
        assert!(supports(&plug, &lock()));
    }

    #[test]
    fn a_bridge_gets_where_to_fetch_the_file() {
        let fetch = crate::domain::jobs::FileFetch {
            job_id: "j1".into(),
            name: "part.gcode".into(),
            sha256: "ab".repeat(32),
            size: 1234,
        };
        let start = MachineCommand::Job(JobCommand::Start { file: "part.gcode".into(), fetch: Some(fetch) });
        let out = encode("s", "m", &Connection::Mqtt, &start, 1);
        let body: serde_json::Value = serde_json::from_str(&text(&out[0]).1).expect("json");
        assert_eq!(
            body,
            json!({"action": "start", "job_id": "j1", "file": "part.gcode", "url": "/api/v1/kiosk/jobs/j1/file",
                   "sha256": "ab".repeat(32), "size": 1234})
        );
    }

    #[test]
    fn generic_machines_get_json_on_their_cmd_topic() {
        let out = encode("space", "eq-1", &Connection::Mqtt, &unlock(), 1);
        let (topic, payload) = text(&out[0]);
        assert!(out[0].at_least_once);
        assert_eq!(topic, "makrcave/space/eq-1/cmd");
        let body: serde_json::Value = serde_json::from_str(&payload).expect("json");
        assert_eq!(body, json!({"action": "unlock", "session_id": "s1", "until": "2026-11-21T18:00:00Z"}));
        let out = encode("space", "eq-1", &Connection::Mqtt, &lock(), 2);
        assert_eq!(serde_json::from_str::<serde_json::Value>(&text(&out[0]).1).expect("json")["action"], "lock");
    }

    #[test]
    fn plugs_get_their_native_power_commands() {
        let tasmota = Connection::Tasmota { topic: "laser1".into(), running_above_w: None, running_after_s: None };
        assert_eq!(text(&encode("s", "e", &tasmota, &unlock(), 1)[0]), ("cmnd/laser1/POWER", "ON".into()));
        assert_eq!(text(&encode("s", "e", &tasmota, &lock(), 1)[0]), ("cmnd/laser1/POWER", "OFF".into()));
        let gen1 = Connection::ShellyGen1 {
            device_id: "shellyplug-s-AABBCC".into(),
            running_above_w: None,
            running_after_s: None,
        };
        assert_eq!(
            text(&encode("s", "e", &gen1, &unlock(), 1)[0]),
            ("shellies/shellyplug-s-AABBCC/relay/0/command", "on".into())
        );
        assert_eq!(text(&encode("s", "e", &gen1, &lock(), 1)[0]).1, "off");
        let gen2 = Connection::ShellyGen2 {
            device_id: "shellyplusplugs-aabbcc".into(),
            running_above_w: None,
            running_after_s: None,
        };
        let out = encode("s", "e", &gen2, &unlock(), 7);
        let (topic, payload) = text(&out[0]);
        assert_eq!(topic, "shellyplusplugs-aabbcc/rpc");
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&payload).expect("json"),
            json!({"id": 7, "src": "makrcave", "method": "Switch.Set", "params": {"id": 0, "on": true}})
        );
        assert!(encode("s", "e", &gen2, &lock(), 8).iter().all(|m| m.at_least_once));
    }

    #[test]
    fn printers_without_a_relay_need_no_message() {
        let octo = Connection::Octoprint { url: "http://p:5000".into(), api_key: None, auto_connect: true };
        assert!(encode("s", "e", &octo, &unlock(), 1).is_empty());
        assert!(supports(&octo, &MachineCommand::Job(JobCommand::Pause)), "its adapter carries job commands");
        assert!(encode("s", "e", &octo, &MachineCommand::Job(JobCommand::Pause), 1).is_empty(), "not over MQTT");
        assert!(encode("s", "e", &Connection::bambu_example(), &lock(), 1).is_empty());
        let start = MachineCommand::Job(JobCommand::Start { file: "/files/benchy.3mf".into(), fetch: None });
        assert!(supports(&Connection::bambu_example(), &start), "uploaded over FTPS, then printed");
        assert!(encode("s", "e", &Connection::bambu_example(), &start, 1).is_empty(), "not over makrcave's MQTT");
    }
}
