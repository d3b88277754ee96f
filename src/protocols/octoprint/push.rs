//! OctoPrint's push socket (`/sockjs/websocket`), parsed: `current` and `history` frames
//! become telemetry, `event` frames become job lifecycle events. Pure; the shapes in the
//! tests are frames of OctoPrint 1.11.8 with its virtual printer.
//!
//! OctoPrint sends `current` twice a second whether or not anything changed, and sends its
//! temperatures only every other second or so (an empty `temps` list in between). A
//! [`Tracker`] keeps what was last delivered, so that only a change reaches the machine's
//! actor (and so its WebSocket clients).

use serde::Deserialize;
use serde_json::Value;

use crate::domain::jobs::JobEvent;
use crate::domain::machine::{JobProgress, MachineState, TelemetryUpdate, Temperatures};

/// What one push frame means for the machine.
#[derive(Debug, Clone, PartialEq)]
pub enum Push {
    /// The printer's full state (`current`, or `history` right after the socket opens).
    Current(TelemetryUpdate),
    /// A job lifecycle event.
    Job(JobEvent),
    /// Anything else (`connected`, `timelapse`, events that are not about the job, ...).
    Other,
    /// Not JSON, or not an object: counted and dropped.
    Malformed,
}

/// OctoPrint's printer state: `state` of `current` and of `/api/printer`.
#[derive(Debug, Default, Deserialize)]
pub struct PrinterState {
    #[serde(default)]
    pub text: String,
    #[serde(default)]
    pub flags: Flags,
    #[serde(default)]
    pub error: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Flags {
    pub operational: bool,
    pub printing: bool,
    pub cancelling: bool,
    pub pausing: bool,
    pub resuming: bool,
    pub finishing: bool,
    #[serde(rename = "closedOrError")]
    pub closed_or_error: bool,
    pub error: bool,
    pub paused: bool,
}

/// `job.file` of `current` and of `/api/job`.
#[derive(Debug, Default, Deserialize)]
pub struct JobInfo {
    #[serde(default)]
    pub file: FileInfo,
}

#[derive(Debug, Default, Deserialize)]
pub struct FileInfo {
    pub name: Option<String>,
}

/// `progress` of `current` and of `/api/job`.
#[derive(Debug, Default, Deserialize)]
pub struct Progress {
    pub completion: Option<f64>,
    #[serde(rename = "printTimeLeft")]
    pub print_time_left: Option<f64>,
}

/// One reading of a heater: `{"actual": 21.3, "target": 0.0}`.
#[derive(Debug, Default, Deserialize, Clone, Copy)]
pub struct Heater {
    pub actual: Option<f64>,
    pub target: Option<f64>,
}

/// The heaters of one reading (`temps[]` of `current`, `temperature` of `/api/printer`).
#[derive(Debug, Default, Deserialize)]
pub struct Heaters {
    pub tool0: Option<Heater>,
    pub bed: Option<Heater>,
    pub chamber: Option<Heater>,
}

impl Heaters {
    pub fn temperatures(&self) -> Temperatures {
        Temperatures {
            nozzle: self.tool0.and_then(|h| h.actual),
            nozzle_target: self.tool0.and_then(|h| h.target),
            bed: self.bed.and_then(|h| h.actual),
            bed_target: self.bed.and_then(|h| h.target),
            chamber: self.chamber.and_then(|h| h.actual),
        }
    }
}

/// Why a printer that OctoPrint has not connected is shown in error.
pub const NOT_CONNECTED: &str = "OctoPrint is not connected to its printer";

/// The machine state and error reason of an OctoPrint printer state. A printer OctoPrint has
/// not connected (closed) reports `offline`, which the domain shows as `error` (OctoPrint
/// itself answers); one still connecting, likewise, until it is operational.
pub fn machine_state(state: &PrinterState) -> (MachineState, Option<String>) {
    let f = &state.flags;
    let reason = |fallback: &str| {
        let text = state.error.as_deref().map(str::trim).filter(|e| !e.is_empty());
        Some(text.unwrap_or(fallback).to_string())
    };
    if f.error {
        (MachineState::Error, reason(&state.text))
    } else if f.closed_or_error {
        (MachineState::Offline, Some(NOT_CONNECTED.to_string()))
    } else if f.paused || f.pausing {
        (MachineState::Paused, None)
    } else if f.printing || f.resuming || f.cancelling || f.finishing {
        (MachineState::Running, None)
    } else if f.operational {
        (MachineState::Idle, None)
    } else {
        (MachineState::Error, Some(format!("OctoPrint is connecting to its printer ({})", state.text)))
    }
}

/// Telemetry from OctoPrint's state, job and progress (and a temperature reading, if any).
pub fn telemetry(
    state: &PrinterState,
    job: &JobInfo,
    progress: &Progress,
    temps: Option<Temperatures>,
) -> TelemetryUpdate {
    let (machine_state, error) = machine_state(state);
    // A file stays selected after its print ends: only a print in progress is a job.
    let job = match machine_state {
        MachineState::Running | MachineState::Paused => Some(JobProgress {
            id: None,
            file: job.file.name.clone(),
            progress: progress.completion.map(|c| c.clamp(0.0, 100.0)),
            remaining_s: progress.print_time_left.map(|s| s.round() as i64),
        }),
        _ => None,
    };
    TelemetryUpdate { state: Some(machine_state), job: Some(job), temps, error, ..TelemetryUpdate::default() }
}

#[derive(Debug, Deserialize)]
struct CurrentFrame {
    #[serde(default)]
    state: PrinterState,
    #[serde(default)]
    job: JobInfo,
    #[serde(default)]
    progress: Progress,
    #[serde(default)]
    temps: Vec<Heaters>,
}

/// One frame of the push socket. Only what makrcave reads is built: the rest of a `current`
/// frame (logs, markings, busy files, offsets, ...) is skipped as it is parsed, not built into
/// a tree of values first (twice a second for every printer followed).
#[derive(Debug, Deserialize)]
struct Frame {
    current: Option<CurrentFrame>,
    history: Option<CurrentFrame>,
    event: Option<EventFrame>,
}

#[derive(Debug, Deserialize)]
struct EventFrame {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    payload: Value,
}

/// Parses one frame of the push socket.
pub fn parse(text: &str) -> Push {
    // Not JSON, not an object, or a `current`, `history` or `event` of the wrong shape.
    let Ok(frame) = serde_json::from_str::<Frame>(text) else {
        return Push::Malformed;
    };
    if let Some(c) = frame.current.or(frame.history) {
        let temps = c.temps.last().map(Heaters::temperatures);
        return Push::Current(telemetry(&c.state, &c.job, &c.progress, temps));
    }
    if let Some(e) = frame.event {
        return job_event(&e.kind, &e.payload).map_or(Push::Other, Push::Job);
    }
    Push::Other
}

/// The job event an OctoPrint event means, if it is one.
pub fn job_event(kind: &str, payload: &Value) -> Option<JobEvent> {
    let text = |field: &str| payload.get(field).and_then(Value::as_str).map(str::to_string);
    match kind {
        "PrintStarted" => Some(JobEvent::JobStarted { file: text("name") }),
        "PrintPaused" => Some(JobEvent::JobPaused),
        "PrintResumed" => Some(JobEvent::JobResumed),
        "PrintDone" => Some(JobEvent::JobFinished),
        "PrintCancelled" => Some(JobEvent::JobCancelled),
        // OctoPrint follows every PrintCancelled with a PrintFailed of reason "cancelled":
        // the cancel was already told.
        "PrintFailed" => match text("reason").as_deref() {
            Some("cancelled") => None,
            Some("error") | None => Some(JobEvent::JobFailed { reason: "the printer reported an error".into() }),
            Some(other) => Some(JobEvent::JobFailed { reason: other.to_string() }),
        },
        _ => None,
    }
}

/// What was last delivered to the machine's actor, so that an unchanged frame is not.
#[derive(Debug, Default)]
pub struct Tracker {
    last: Option<TelemetryUpdate>,
}

impl Tracker {
    /// The telemetry to deliver for `update`, or `None` when it changes nothing: a frame
    /// without temperatures keeps the last ones (OctoPrint sends them only now and then).
    pub fn changed(&mut self, mut update: TelemetryUpdate) -> Option<TelemetryUpdate> {
        let mut merged = update.clone();
        match (&self.last, update.temps) {
            (Some(last), None) => merged.temps = last.temps,
            (Some(last), Some(temps)) => {
                let mut all = last.temps.unwrap_or_default();
                all.merge(&temps);
                merged.temps = Some(all);
            }
            (None, _) => {}
        }
        if self.last.as_ref() == Some(&merged) {
            return None;
        }
        if self.last.as_ref().is_some_and(|last| last.temps == merged.temps) {
            // Only what changed goes on; the actor keeps the temperatures it has.
            update.temps = None;
        }
        self.last = Some(merged);
        Some(update)
    }

    /// Forgets what was delivered: the next frame goes through (a new session, a refresh).
    pub fn reset(&mut self) {
        self.last = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDLE: &str = r#"{"current": {"state": {"text": "Operational", "flags": {"operational": true, "printing": false, "cancelling": false, "pausing": false, "resuming": false, "finishing": false, "closedOrError": false, "error": false, "paused": false, "ready": true, "sdReady": true}, "error": ""}, "job": {"file": {"name": null, "path": null, "size": null, "origin": null, "date": null}, "estimatedPrintTime": null, "lastPrintTime": null, "filament": {"length": null, "volume": null}, "user": null}, "currentZ": null, "progress": {"completion": null, "filepos": null, "printTime": null, "printTimeLeft": null, "printTimeLeftOrigin": null}, "offsets": {}, "resends": {"count": 0, "transmitted": 8, "ratio": 0}, "serverTime": 1796146289.0400114, "temps": [], "busyFiles": [], "markings": [{"type": "connected", "label": "Connected", "time": 1796146284.0266643}], "logs": [], "messages": []}}"#;

    const PRINTING: &str = r#"{"current": {"state": {"text": "Printing", "flags": {"operational": true, "printing": true, "cancelling": false, "pausing": false, "resuming": false, "finishing": false, "closedOrError": false, "error": false, "paused": false, "ready": false, "sdReady": true}, "error": ""}, "job": {"file": {"name": "cube.gcode", "path": "cube.gcode", "display": "cube.gcode", "origin": "local", "size": 25092, "date": 1796146291}, "estimatedPrintTime": null, "averagePrintTime": null, "lastPrintTime": null, "filament": null, "user": "tester"}, "currentZ": null, "progress": {"completion": 51.07604017216643, "filepos": 12816, "printTime": 7, "printTimeLeft": 7, "printTimeLeftOrigin": "linear"}, "offsets": {}, "resends": {"count": 0, "transmitted": 780, "ratio": 0}, "serverTime": 1796146298.566189, "temps": [{"time": 1796146298, "tool0": {"actual": 90.97, "target": 200.0}, "bed": {"actual": 59.99, "target": 60.0}, "chamber": {"actual": null, "target": null}}], "busyFiles": [{"origin": "local", "path": "cube.gcode"}], "markings": [], "logs": [], "messages": []}}"#;

    const CLOSED: &str = r#"{"current": {"state": {"text": "Offline", "flags": {"operational": false, "printing": false, "cancelling": false, "pausing": false, "resuming": false, "finishing": false, "closedOrError": true, "error": false, "paused": false, "ready": false, "sdReady": false}, "error": ""}, "job": {"file": {"name": null}}, "progress": {"completion": null}, "temps": []}}"#;

    fn current(text: &str) -> TelemetryUpdate {
        match parse(text) {
            Push::Current(update) => update,
            other => panic!("not a current frame: {other:?}"),
        }
    }

    #[test]
    fn an_idle_printer_is_idle_without_a_job() {
        let t = current(IDLE);
        assert_eq!(t.state, Some(MachineState::Idle));
        assert_eq!(t.job, Some(None));
        assert_eq!((t.temps, t.error), (None, None));
    }

    #[test]
    fn a_printing_printer_reports_its_file_progress_and_temperatures() {
        let t = current(PRINTING);
        assert_eq!(t.state, Some(MachineState::Running));
        let job = t.job.flatten().expect("a job");
        assert_eq!(job.file.as_deref(), Some("cube.gcode"));
        assert!((job.progress.expect("progress") - 51.076).abs() < 0.01);
        assert_eq!(job.remaining_s, Some(7));
        let temps = t.temps.expect("temperatures");
        assert_eq!((temps.nozzle, temps.nozzle_target), (Some(90.97), Some(200.0)));
        assert_eq!((temps.bed, temps.bed_target, temps.chamber), (Some(59.99), Some(60.0), None));
    }

    #[test]
    fn a_printer_octoprint_has_not_connected_says_so() {
        let t = current(CLOSED);
        assert_eq!((t.state, t.error.as_deref()), (Some(MachineState::Offline), Some(NOT_CONNECTED)));
        let history = CLOSED.replacen("current", "history", 1);
        assert_eq!(current(&history), t, "the history frame after connecting has the same shape");
        let error = CLOSED
            .replace(r#""error": false"#, r#""error": true"#)
            .replace(r#""error": """#, r#""error": "Too many consecutive timeouts""#);
        let t = current(&error);
        assert_eq!((t.state, t.error.as_deref()), (Some(MachineState::Error), Some("Too many consecutive timeouts")));
    }

    #[test]
    fn print_events_become_job_events() {
        let ev = |text: &str| parse(text);
        assert_eq!(
            ev(
                r#"{"event": {"type": "PrintStarted", "payload": {"name": "cube.gcode", "path": "cube.gcode", "origin": "local", "size": 25092, "owner": "tester", "user": "tester"}}}"#
            ),
            Push::Job(JobEvent::JobStarted { file: Some("cube.gcode".into()) })
        );
        assert_eq!(
            ev(
                r#"{"event": {"type": "PrintPaused", "payload": {"name": "cube.gcode", "position": {"z": 0.0}, "fileposition": 3419, "progress": 13}}}"#
            ),
            Push::Job(JobEvent::JobPaused)
        );
        assert_eq!(
            ev(r#"{"event": {"type": "PrintResumed", "payload": {"name": "cube.gcode"}}}"#),
            Push::Job(JobEvent::JobResumed)
        );
        assert_eq!(
            ev(r#"{"event": {"type": "PrintDone", "payload": {"name": "cube.gcode", "time": 15.2}}}"#),
            Push::Job(JobEvent::JobFinished)
        );
        assert_eq!(
            ev(r#"{"event": {"type": "PrintCancelled", "payload": {"name": "cube.gcode"}}}"#),
            Push::Job(JobEvent::JobCancelled)
        );
        assert_eq!(
            ev(
                r#"{"event": {"type": "PrintFailed", "payload": {"name": "cube.gcode", "progress": 27, "time": 4.0, "reason": "cancelled"}}}"#
            ),
            Push::Other,
            "a cancel is told once"
        );
        assert_eq!(
            ev(r#"{"event": {"type": "PrintFailed", "payload": {"name": "cube.gcode", "reason": "error"}}}"#),
            Push::Job(JobEvent::JobFailed { reason: "the printer reported an error".into() })
        );
        assert_eq!(
            ev(r#"{"event": {"type": "PrinterStateChanged", "payload": {"state_id": "PRINTING"}}}"#),
            Push::Other
        );
        assert_eq!(ev(r#"{"event": {"type": "Home", "payload": null}}"#), Push::Other);
        assert_eq!(ev(r#"{"connected": {"version": "1.11.8"}}"#), Push::Other);
        assert_eq!(ev("not json"), Push::Malformed);
        assert_eq!(ev(r#"{"current": {"state": 3}}"#), Push::Malformed);
        assert_eq!(ev(r#"{"event": {"payload": {}}}"#), Push::Malformed, "an event without its type");
        assert_eq!(ev(r#"["current"]"#), Push::Malformed);
    }

    #[test]
    fn an_unchanged_frame_is_not_delivered() {
        let mut tracker = Tracker::default();
        assert!(tracker.changed(current(IDLE)).is_some(), "the first frame always goes");
        assert_eq!(tracker.changed(current(IDLE)), None);
        let printing = current(PRINTING);
        assert_eq!(tracker.changed(printing.clone()), Some(printing.clone()));
        // The next frame without temperatures changes nothing else: nothing to deliver.
        let without_temps = current(&PRINTING.replace(
            r#""temps": [{"time": 1796146298, "tool0": {"actual": 90.97, "target": 200.0}, "bed": {"actual": 59.99, "target": 60.0}, "chamber": {"actual": null, "target": null}}]"#,
            r#""temps": []"#,
        ));
        assert_eq!(without_temps.temps, None);
        assert_eq!(tracker.changed(without_temps.clone()), None);
        // The same temperatures again with new progress: the progress goes, the temperatures not.
        let moved = current(&PRINTING.replace("51.07604017216643", "53.3"));
        let delivered = tracker.changed(moved).expect("progress changed");
        assert_eq!(delivered.temps, None);
        assert_eq!(delivered.job.flatten().and_then(|j| j.progress), Some(53.3));
        tracker.reset();
        assert!(tracker.changed(without_temps).is_some(), "after a reset the next frame goes");
    }
}
