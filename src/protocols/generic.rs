//! The generic MQTT schema (DESIGN.md): topics and payloads, parsed into domain inputs.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer};

use crate::domain::jobs::JobEvent;
use crate::domain::machine::{JobProgress, MachineState, TelemetryUpdate, Temperatures};

/// The first level of every generic topic.
pub const ROOT: &str = "makrcave";
/// Subscriptions that carry machine reports into makrcave.
pub const TELEMETRY_FILTER: &str = "makrcave/+/+/telemetry";
pub const STATUS_FILTER: &str = "makrcave/+/+/status";
pub const EVENT_FILTER: &str = "makrcave/+/+/event";

/// The last level of a generic topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Telemetry,
    Status,
    Event,
    Cmd,
}

/// A parsed generic topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Topic<'a> {
    pub makerspace_id: &'a str,
    pub equipment_id: &'a str,
    pub channel: Channel,
}

/// Why a message was dropped; the label is the `reason` of the dropped-messages metric.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("topic is not makrcave/{{makerspace}}/{{equipment}}/{{channel}}")]
    BadTopic,
    #[error("payload is not JSON: {0}")]
    MalformedJson(String),
    #[error("payload has a wrong type or value: {0}")]
    InvalidValue(String),
    #[error("unknown machine state {0:?}")]
    UnknownState(String),
    #[error("status must be 'online' or 'offline'")]
    BadStatus,
}

impl ParseError {
    pub fn reason(&self) -> &'static str {
        match self {
            Self::BadTopic => "bad_topic",
            Self::MalformedJson(_) => "malformed_json",
            Self::InvalidValue(_) => "invalid_value",
            Self::UnknownState(_) => "unknown_state",
            Self::BadStatus => "bad_status",
        }
    }
}

/// Splits `makrcave/{makerspace_id}/{equipment_id}/{channel}`.
pub fn parse_topic(topic: &str) -> Result<Topic<'_>, ParseError> {
    let mut parts = topic.split('/');
    let (Some(ROOT), Some(space), Some(machine), Some(channel), None) =
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ParseError::BadTopic);
    };
    if space.is_empty() || machine.is_empty() {
        return Err(ParseError::BadTopic);
    }
    let channel = match channel {
        "telemetry" => Channel::Telemetry,
        "status" => Channel::Status,
        "event" => Channel::Event,
        "cmd" => Channel::Cmd,
        _ => return Err(ParseError::BadTopic),
    };
    Ok(Topic { makerspace_id: space, equipment_id: machine, channel })
}

/// The topic a machine's commands are published on.
pub fn command_topic(makerspace_id: &str, equipment_id: &str) -> String {
    format!("{ROOT}/{makerspace_id}/{equipment_id}/cmd")
}

/// The JSON of a telemetry message; every field optional.
#[derive(Deserialize)]
struct TelemetryPayload {
    #[serde(default)]
    state: Option<String>,
    /// Absent: unchanged; `null`: no job.
    #[serde(default, deserialize_with = "present")]
    job: Option<Option<JobProgress>>,
    #[serde(default)]
    temps: Option<Temperatures>,
    #[serde(default)]
    power_w: Option<f64>,
    /// The bridge's relay (or enable line), as it last set it.
    #[serde(default)]
    relay: Option<bool>,
    #[serde(default)]
    ts: Option<DateTime<Utc>>,
}

/// Tells a present `null` (Some(None)) from an absent field (None, through `default`).
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Parses a telemetry payload.
pub fn parse_telemetry(payload: &[u8]) -> Result<TelemetryUpdate, ParseError> {
    let parsed: TelemetryPayload = serde_json::from_slice(payload).map_err(|e| {
        if e.is_data() {
            ParseError::InvalidValue(e.to_string())
        } else {
            ParseError::MalformedJson(e.to_string())
        }
    })?;
    let state = match parsed.state {
        None => None,
        Some(s) => Some(MachineState::from_report(&s).ok_or(ParseError::UnknownState(s))?),
    };
    if let Some(Some(job)) = &parsed.job {
        if job.progress.is_some_and(|p| !(0.0..=100.0).contains(&p)) {
            return Err(ParseError::InvalidValue("job.progress must be between 0 and 100".into()));
        }
        if job.remaining_s.is_some_and(|r| r < 0) {
            return Err(ParseError::InvalidValue("job.remaining_s must not be negative".into()));
        }
    }
    if let Some(t) = &parsed.temps {
        let readings = [t.nozzle, t.nozzle_target, t.bed, t.bed_target, t.chamber];
        if readings.iter().flatten().any(|v| !v.is_finite() || !(-273.15..=2000.0).contains(v)) {
            return Err(ParseError::InvalidValue("temperatures must be plausible °C values".into()));
        }
    }
    if parsed.power_w.is_some_and(|p| !p.is_finite() || p < 0.0) {
        return Err(ParseError::InvalidValue("power_w must be a non-negative number".into()));
    }
    Ok(TelemetryUpdate {
        state,
        job: parsed.job,
        temps: parsed.temps,
        power_w: parsed.power_w,
        relay_on: parsed.relay,
        reported_at: parsed.ts,
        error: None,
        loadout: None,
    })
}

/// An event a machine (or its bridge) reports.
#[derive(Debug, Clone, PartialEq)]
pub enum MachineEvent {
    /// The member ended the session at the machine (the bridge's button, a card tap out).
    Lock,
    /// The job's lifecycle: `{"event":"job_started","file":...}`, `job_progress` with
    /// `progress` (0-100), `job_paused`, `job_resumed`, `job_finished`, `job_failed` with
    /// `reason`, `job_cancelled`.
    Job(JobEvent),
    /// A card tap the machine's bridge decided while makrcave was away.
    OfflineTap(OfflineTap),
    /// Anything else (alarms, ...): handled by later features, counted for now.
    Other(String),
}

/// A tap a bridge decided while makrcave was away (`{"event":"offline_tap",...}` on its
/// machine's event topic, replayed from its disk queue).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct OfflineTap {
    /// Made by the bridge: the same tap replayed twice is recorded once.
    pub id: String,
    pub card_uid: String,
    pub action: String,
    pub granted: bool,
    pub reason: String,
    pub at: DateTime<Utc>,
}

#[derive(Deserialize)]
struct EventPayload {
    event: String,
}

/// Parses an event payload: `{"event": "lock", ...}`.
pub fn parse_event(payload: &[u8]) -> Result<MachineEvent, ParseError> {
    let parsed: EventPayload = serde_json::from_slice(payload).map_err(|e| {
        if e.is_data() {
            ParseError::InvalidValue(e.to_string())
        } else {
            ParseError::MalformedJson(e.to_string())
        }
    })?;
    Ok(match parsed.event.as_str() {
        "lock" => MachineEvent::Lock,
        "offline_tap" => MachineEvent::OfflineTap(
            serde_json::from_slice(payload).map_err(|e| ParseError::InvalidValue(e.to_string()))?,
        ),
        name if name.starts_with("job_") => {
            let event: JobEvent =
                serde_json::from_slice(payload).map_err(|e| ParseError::InvalidValue(e.to_string()))?;
            if let JobEvent::JobProgress { progress } = event {
                if !(0.0..=100.0).contains(&progress) {
                    return Err(ParseError::InvalidValue(format!("progress {progress} is not within 0-100")));
                }
            }
            MachineEvent::Job(event)
        }
        other => MachineEvent::Other(other.to_string()),
    })
}

/// Parses a status payload: `online` or `offline` (plain or as a JSON string).
pub fn parse_status(payload: &[u8]) -> Result<bool, ParseError> {
    let text = std::str::from_utf8(payload).map_err(|_| ParseError::BadStatus)?;
    match text.trim().trim_matches('"').to_ascii_lowercase().as_str() {
        "online" => Ok(true),
        "offline" => Ok(false),
        _ => Err(ParseError::BadStatus),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn topics() {
        let t = parse_topic("makrcave/space-1/eq-laser-001/telemetry").expect("valid topic");
        assert_eq!(t, Topic { makerspace_id: "space-1", equipment_id: "eq-laser-001", channel: Channel::Telemetry });
        assert_eq!(parse_topic("makrcave/a/b/status").map(|t| t.channel), Ok(Channel::Status));
        for bad in
            ["makrcave/a/b", "makrcave/a/b/c/telemetry", "other/a/b/telemetry", "makrcave//b/status", "makrcave/a/b/x"]
        {
            assert_eq!(parse_topic(bad), Err(ParseError::BadTopic), "{bad}");
        }
        assert_eq!(command_topic("a", "b"), "makrcave/a/b/cmd");
    }

    #[test]
    fn full_telemetry() {
        let t = parse_telemetry(
            br#"{"state":"printing","job":{"id":"j1","file":"benchy.gcode","progress":42.5,"remaining_s":600},
                 "temps":{"nozzle":210.1,"nozzle_target":210,"bed":60,"bed_target":60},"power_w":130,
                 "ts":"2026-11-21T10:00:00Z"}"#,
        )
        .expect("valid telemetry");
        assert_eq!(t.state, Some(MachineState::Running));
        assert_eq!(t.job.as_ref().and_then(|j| j.as_ref()).and_then(|j| j.progress), Some(42.5));
        assert_eq!(t.temps.and_then(|t| t.nozzle), Some(210.1));
        assert_eq!(t.power_w, Some(130.0));
        assert!(t.reported_at.is_some());
    }

    #[test]
    fn absent_and_null_job_differ() {
        assert_eq!(parse_telemetry(b"{}").expect("empty is valid").job, None);
        assert_eq!(parse_telemetry(br#"{"job":null}"#).expect("null job is valid").job, Some(None));
    }

    #[test]
    fn bad_payloads_say_why() {
        assert_eq!(parse_telemetry(b"{not json").map_err(|e| e.reason()), Err("malformed_json"));
        assert_eq!(parse_telemetry(br#"{"power_w":"lots"}"#).map_err(|e| e.reason()), Err("invalid_value"));
        assert_eq!(parse_telemetry(br#"{"state":"dancing"}"#).map_err(|e| e.reason()), Err("unknown_state"));
        assert_eq!(parse_telemetry(br#"{"job":{"progress":140}}"#).map_err(|e| e.reason()), Err("invalid_value"));
        assert_eq!(parse_telemetry(br#"{"temps":{"bed":1e9}}"#).map_err(|e| e.reason()), Err("invalid_value"));
        assert_eq!(parse_telemetry(br#"[1,2]"#).map_err(|e| e.reason()), Err("invalid_value"));
    }

    #[test]
    fn events() {
        assert_eq!(parse_event(br#"{"event":"lock","card":"04A1"}"#), Ok(MachineEvent::Lock));
        assert_eq!(parse_event(br#"{"event":"alarm"}"#), Ok(MachineEvent::Other("alarm".into())));
        assert_eq!(
            parse_event(br#"{"event":"job_started","file":"benchy.gcode"}"#),
            Ok(MachineEvent::Job(JobEvent::JobStarted { file: Some("benchy.gcode".into()) }))
        );
        assert_eq!(
            parse_event(br#"{"event":"job_failed","reason":"filament runout"}"#),
            Ok(MachineEvent::Job(JobEvent::JobFailed { reason: "filament runout".into() }))
        );
        assert_eq!(
            parse_event(br#"{"event":"job_progress","progress":42.5}"#),
            Ok(MachineEvent::Job(JobEvent::JobProgress { progress: 42.5 }))
        );
        assert_eq!(
            parse_event(br#"{"event":"job_progress","progress":420}"#).map_err(|e| e.reason()),
            Err("invalid_value")
        );
        assert_eq!(
            parse_event(br#"{"event":"job_failed"}"#).map_err(|e| e.reason()),
            Err("invalid_value"),
            "a failure names its reason"
        );
        assert_eq!(parse_event(br#"{"event":"job_teleported"}"#).map_err(|e| e.reason()), Err("invalid_value"));
        assert_eq!(parse_event(b"lock").map_err(|e| e.reason()), Err("malformed_json"));
        assert_eq!(parse_event(br#"{"kind":"lock"}"#).map_err(|e| e.reason()), Err("invalid_value"));
    }

    #[test]
    fn status_payloads() {
        assert_eq!(parse_status(b"online"), Ok(true));
        assert_eq!(parse_status(b"\"offline\"\n"), Ok(false));
        assert_eq!(parse_status(b"Online"), Ok(true));
        assert_eq!(parse_status(b"maybe"), Err(ParseError::BadStatus));
        assert_eq!(parse_status(&[0xff, 0xfe]), Err(ParseError::BadStatus));
    }

    proptest! {
        #[test]
        fn parsing_never_panics(payload in proptest::collection::vec(any::<u8>(), 0..256), topic in "\\PC{0,40}") {
            let _ = parse_telemetry(&payload);
            let _ = parse_status(&payload);
            let _ = parse_topic(&topic);
        }
    }
}
