//! What a controller reports to makrcave, in the shapes of the MQTT contract: the generic
//! telemetry (`telemetry` topic) and the job and alarm events (`event` topic).

use chrono::{DateTime, Utc};
use serde::Serialize;

/// The machine's state as makrcave's generic telemetry names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MachineState {
    /// The serial port is closed or gone.
    Offline,
    Idle,
    Running,
    Paused,
    /// An alarm (GRBL `ALARM:n`, Marlin `Error:`) that a person must clear.
    Error,
}

/// The job part of the telemetry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobTelemetry {
    pub id: String,
    pub file: String,
    /// 0-100.
    pub progress: f64,
    /// Only when the file says it (Marlin `M73 R`): an estimate from the byte position would lie.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remaining_s: Option<u64>,
}

/// Temperatures in °C; every field is optional, as in the contract.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Temps {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nozzle: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nozzle_target: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bed: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bed_target: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chamber: Option<f64>,
}

impl Temps {
    pub fn is_empty(&self) -> bool {
        *self == Temps::default()
    }
}

/// The controller's share of the `telemetry` message. `power_w` and `relay` are the bridge's
/// (a plug or the relay), so the bridge adds them; they stay out when unset.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Telemetry {
    pub state: MachineState,
    /// Serialized as `null` when no job runs, so makrcave clears the job it showed.
    pub job: Option<JobTelemetry>,
    #[serde(skip_serializing_if = "Temps::is_empty")]
    pub temps: Temps,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub power_w: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relay: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ts: Option<DateTime<Utc>>,
}

impl Telemetry {
    /// What makrcave sees before the port opens.
    pub fn offline() -> Self {
        Telemetry {
            state: MachineState::Offline,
            job: None,
            temps: Temps::default(),
            power_w: None,
            relay: None,
            ts: None,
        }
    }

    /// True when the two differ in anything but the time stamp (publish only then).
    pub fn differs_from(&self, other: &Telemetry) -> bool {
        self.state != other.state || self.job != other.job || self.temps != other.temps
    }
}

/// Job lifecycle events, serialized exactly as the contract's `event` messages.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event")]
pub enum JobEvent {
    #[serde(rename = "job_started")]
    Started { file: String },
    #[serde(rename = "job_progress")]
    Progress { progress: f64 },
    #[serde(rename = "job_paused")]
    Paused,
    #[serde(rename = "job_resumed")]
    Resumed,
    #[serde(rename = "job_finished")]
    Finished,
    #[serde(rename = "job_failed")]
    Failed { reason: String },
    #[serde(rename = "job_cancelled")]
    Cancelled,
}

/// Everything a controller tells the rest of the bridge.
#[derive(Debug, Clone, PartialEq)]
pub enum ControllerEvent {
    /// The telemetry changed (also readable at any time from `ControllerHandle::telemetry`).
    Telemetry(Telemetry),
    Job(JobEvent),
    /// `{"event":"alarm","code":"ALARM:1","text":"Hard limit triggered"}`.
    Alarm {
        code: String,
        text: String,
    },
    /// The serial port opened.
    Connected,
    /// The serial port failed or could not be opened; the controller retries with backoff.
    Disconnected {
        reason: String,
    },
}

impl ControllerEvent {
    /// The payload for the `event` topic, for the events that go there (job and alarm).
    pub fn event_json(&self) -> Option<serde_json::Value> {
        match self {
            ControllerEvent::Job(job) => serde_json::to_value(job).ok(),
            ControllerEvent::Alarm { code, text } => {
                Some(serde_json::json!({ "event": "alarm", "code": code, "text": text }))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn job_events_serialize_as_the_contract_says() {
        let cases = [
            (JobEvent::Started { file: "part.gcode".into() }, json!({"event":"job_started","file":"part.gcode"})),
            (JobEvent::Progress { progress: 42.5 }, json!({"event":"job_progress","progress":42.5})),
            (JobEvent::Paused, json!({"event":"job_paused"})),
            (JobEvent::Resumed, json!({"event":"job_resumed"})),
            (JobEvent::Finished, json!({"event":"job_finished"})),
            (JobEvent::Failed { reason: "ALARM:1".into() }, json!({"event":"job_failed","reason":"ALARM:1"})),
            (JobEvent::Cancelled, json!({"event":"job_cancelled"})),
        ];
        for (event, expected) in cases {
            assert_eq!(ControllerEvent::Job(event).event_json(), Some(expected));
        }
    }

    #[test]
    fn an_alarm_serializes_as_the_contract_says() {
        let alarm = ControllerEvent::Alarm { code: "ALARM:1".into(), text: "Hard limit triggered".into() };
        assert_eq!(alarm.event_json(), Some(json!({"event":"alarm","code":"ALARM:1","text":"Hard limit triggered"})));
        assert_eq!(ControllerEvent::Connected.event_json(), None);
    }

    #[test]
    fn telemetry_serializes_with_a_null_job_and_without_unknown_fields() {
        let mut telemetry = Telemetry::offline();
        telemetry.state = MachineState::Idle;
        assert_eq!(serde_json::to_value(&telemetry).unwrap(), json!({"state":"idle","job":null}));
        telemetry.state = MachineState::Running;
        telemetry.job =
            Some(JobTelemetry { id: "j1".into(), file: "a.gcode".into(), progress: 12.0, remaining_s: Some(60) });
        telemetry.temps.nozzle = Some(210.0);
        telemetry.temps.nozzle_target = Some(210.0);
        assert_eq!(
            serde_json::to_value(&telemetry).unwrap(),
            json!({"state":"running","job":{"id":"j1","file":"a.gcode","progress":12.0,"remaining_s":60},
                   "temps":{"nozzle":210.0,"nozzle_target":210.0}})
        );
    }
}
