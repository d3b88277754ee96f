//! What a Bambu printer reports, read into makrcave's terms. Pure, unit tested on the
//! documented shapes: an X1 sends full `push_status` objects, a P1 or A1 sends deltas that
//! carry only what changed, so every report is merged into the last known state first
//! ([`PrinterState::merge`]) and everything is read from the merged state.

use serde_json::{Map, Value};

use crate::domain::jobs::JobEvent;
pub use crate::domain::machine::Tray;
use crate::domain::machine::{JobProgress, Loadout, MachineState, TelemetryUpdate, Temperatures};

/// `print_error` of a print stopped on request (DESIGN.md: a cancel sets it with `FAILED`).
const CANCELLED: u32 = 0x0300_400C;

/// The printer's last known `print` object, built up from full reports and deltas.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PrinterState {
    print: Map<String, Value>,
}

/// A Health Management System entry, readable: `0300_0100_0001_0007` as Bambu's wiki names
/// them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HmsError {
    pub code: String,
    /// 1 fatal, 2 serious, 3 common, 4 info.
    pub severity: u8,
}

impl PrinterState {
    /// Merges one report. Objects merge field by field (a delta carries only what changed);
    /// anything else replaces the old value. Reports without a `print` object (replies to
    /// other requests, `info`, `system`) change nothing here.
    pub fn merge(&mut self, report: &Value) -> bool {
        let Some(print) = report.get("print").and_then(Value::as_object) else {
            return false;
        };
        merge_into(&mut self.print, print);
        true
    }

    fn str(&self, key: &str) -> Option<&str> {
        self.print.get(key).and_then(Value::as_str)
    }

    /// Numbers arrive as numbers or as strings, depending on the firmware and the field.
    fn number(&self, key: &str) -> Option<f64> {
        number(self.print.get(key)?)
    }

    /// `gcode_state`: IDLE, PREPARE, SLICING, RUNNING, PAUSE, FINISH, FAILED.
    pub fn gcode_state(&self) -> Option<&str> {
        self.str("gcode_state")
    }

    /// The machine's state as makrcave names it. HMS errors of severity fatal or serious make
    /// it `error` whatever the job does.
    pub fn machine_state(&self) -> Option<MachineState> {
        if self.hms_errors().iter().any(|e| matches!(e.severity, 1 | 2)) {
            return Some(MachineState::Error);
        }
        Some(match self.gcode_state()? {
            "PREPARE" | "SLICING" | "RUNNING" => MachineState::Running,
            "PAUSE" => MachineState::Paused,
            "FAILED" if self.cancelled() => MachineState::Idle,
            "FAILED" => MachineState::Error,
            _ => MachineState::Idle,
        })
    }

    /// The state, job and temperatures, as telemetry for the machine's actor.
    pub fn telemetry(&self) -> TelemetryUpdate {
        let running = matches!(self.machine_state(), Some(MachineState::Running | MachineState::Paused));
        let job = running.then(|| JobProgress {
            id: self.str("task_id").filter(|id| !id.is_empty() && *id != "0").map(str::to_string),
            file: self
                .str("subtask_name")
                .or_else(|| self.str("gcode_file"))
                .filter(|f| !f.is_empty())
                .map(str::to_string),
            progress: self.number("mc_percent").map(|p| p.clamp(0.0, 100.0)),
            // Minutes on the printer.
            remaining_s: self.number("mc_remaining_time").map(|m| (m * 60.0).round() as i64),
        });
        TelemetryUpdate {
            state: self.machine_state(),
            job: Some(job),
            temps: Some(Temperatures {
                nozzle: self.number("nozzle_temper"),
                nozzle_target: self.number("nozzle_target_temper"),
                bed: self.number("bed_temper"),
                bed_target: self.number("bed_target_temper"),
                chamber: self.number("chamber_temper"),
            }),
            power_w: None,
            relay_on: None,
            reported_at: None,
            error: self.error(),
            loadout: Some(Box::new(Loadout { nozzle_diameter_mm: self.nozzle_diameter(), trays: self.trays() })),
        }
    }

    /// Why the printer is in error, readable, when it is: its serious HMS entries, else the
    /// failed print's code. Sent with every report so that the reason stays while the error
    /// lasts (a report in error without a reason would clear it).
    fn error(&self) -> Option<String> {
        let serious: Vec<String> = self
            .hms_errors()
            .into_iter()
            .filter(|e| matches!(e.severity, 1 | 2))
            .map(|e| format!("HMS {} ({})", e.code, if e.severity == 1 { "fatal" } else { "serious" }))
            .collect();
        if !serious.is_empty() {
            return Some(serious.join(", "));
        }
        (self.gcode_state() == Some("FAILED") && !self.cancelled()).then(|| self.failure_reason())
    }

    /// A stopped print ends `FAILED` with this `print_error`: a cancel, not a failure.
    fn cancelled(&self) -> bool {
        self.number("print_error") == Some(f64::from(CANCELLED))
    }

    /// A failed print's reason: the printer's own `print_error` code when it gives one.
    fn failure_reason(&self) -> String {
        match self.number("print_error") {
            Some(code) if code > 0.0 => format!("print error {:08X}", code as u64),
            _ => "the printer reported the print failed".to_string(),
        }
    }

    /// The printer's current HMS entries, readable.
    pub fn hms_errors(&self) -> Vec<HmsError> {
        let Some(entries) = self.print.get("hms").and_then(Value::as_array) else { return Vec::new() };
        entries
            .iter()
            .filter_map(|entry| {
                let attr = number(entry.get("attr")?)? as u64;
                let code = number(entry.get("code")?)? as u64;
                Some(HmsError {
                    code: format!("{:04X}_{:04X}_{:04X}_{:04X}", attr >> 16, attr & 0xFFFF, code >> 16, code & 0xFFFF),
                    // The severity is the code's upper word (0: unknown).
                    severity: u8::try_from(code >> 16).unwrap_or(0),
                })
            })
            .collect()
    }

    /// The nozzle's diameter in millimetres.
    pub fn nozzle_diameter(&self) -> Option<f64> {
        self.number("nozzle_diameter")
    }

    /// The loaded filaments: every AMS tray, then the external spool holder.
    pub fn trays(&self) -> Vec<Tray> {
        let ams = self.print.get("ams");
        let active = ams.and_then(|a| a.get("tray_now")).and_then(number).map(|t| t as u64);
        let mut trays = Vec::new();
        let units = ams.and_then(|a| a.get("ams")).and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        for unit in units {
            let Some(unit_id) = unit.get("id").and_then(number).map(|n| n as u64) else { continue };
            let slots = unit.get("tray").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
            for tray in slots {
                let Some(tray_id) = tray.get("id").and_then(number).map(|n| n as u64) else { continue };
                trays.push(read_tray(format!("{unit_id}-{tray_id}"), tray, active == Some(unit_id * 4 + tray_id)));
            }
        }
        if let Some(external) = self.print.get("vt_tray") {
            // 254 (or 255 on some firmware) is the external spool in `tray_now`.
            trays.push(read_tray("external".into(), external, matches!(active, Some(254 | 255))));
        }
        trays
    }
}

fn read_tray(slot: String, tray: &Value, active: bool) -> Tray {
    let text = |key: &str| tray.get(key).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string);
    Tray {
        slot,
        material: text("tray_type"),
        color: text("tray_color"),
        // -1 means unknown (a spool without RFID).
        remain_percent: tray.get("remain").and_then(number).filter(|r| (0.0..=100.0).contains(r)).map(|r| r as u8),
        active,
    }
}

fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|n: &f64| n.is_finite())
}

fn merge_into(target: &mut Map<String, Value>, delta: &Map<String, Value>) {
    for (key, value) in delta {
        match (target.get_mut(key), value) {
            (Some(Value::Object(old)), Value::Object(new)) => merge_into(old, new),
            _ => {
                target.insert(key.clone(), value.clone());
            }
        }
    }
}

/// The job event a change of `gcode_state` means (`None`: none). `reason` is read for a
/// failure (`print_error`, the printer's own code, when it gives one).
pub fn job_event(before: Option<&str>, after: &str, state: &PrinterState) -> Option<JobEvent> {
    if before == Some(after) {
        return None;
    }
    let file = state.str("subtask_name").or_else(|| state.str("gcode_file")).filter(|f| !f.is_empty());
    match (before, after) {
        (Some("PAUSE"), "RUNNING") => Some(JobEvent::JobResumed),
        (Some("PREPARE" | "SLICING"), "RUNNING") => None,
        (_, "PREPARE" | "SLICING" | "RUNNING") => Some(JobEvent::JobStarted { file: file.map(str::to_string) }),
        (_, "PAUSE") => Some(JobEvent::JobPaused),
        (_, "FINISH") => Some(JobEvent::JobFinished),
        (_, "FAILED") if state.cancelled() => Some(JobEvent::JobCancelled),
        (_, "FAILED") => Some(JobEvent::JobFailed { reason: state.failure_reason() }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// An X1's full report (abridged), with the newlines the X1 puts in its JSON.
    const X1_FULL: &str = "{\n  \"print\": {\n    \"command\": \"push_status\",\n    \"sequence_id\": \"2021\",\n    \
        \"gcode_state\": \"RUNNING\",\n    \"mc_percent\": 37,\n    \"mc_remaining_time\": 42,\n    \
        \"subtask_name\": \"benchy\",\n    \"gcode_file\": \"/data/Metadata/plate_1.gcode\",\n    \
        \"task_id\": \"512345678\",\n    \"nozzle_temper\": 219.8,\n    \"nozzle_target_temper\": 220,\n    \
        \"bed_temper\": 55.1,\n    \"bed_target_temper\": 55,\n    \"chamber_temper\": 31,\n    \
        \"nozzle_diameter\": \"0.4\",\n    \"hms\": [],\n    \"ams\": {\"ams\": [{\"id\": \"0\", \"humidity\": \"4\", \"tray\": [\n      \
        {\"id\": \"0\", \"tray_type\": \"PLA\", \"tray_color\": \"FFFFFFFF\", \"remain\": 80},\n      \
        {\"id\": \"1\", \"tray_type\": \"PETG\", \"tray_color\": \"000000FF\", \"remain\": -1},\n      \
        {\"id\": \"2\"},\n      {\"id\": \"3\", \"tray_type\": \"PLA\", \"tray_color\": \"FF0000FF\", \"remain\": 15}]}],\n    \
        \"tray_now\": \"1\"},\n    \"vt_tray\": {\"id\": \"254\", \"tray_type\": \"TPU\", \"tray_color\": \"00FF00FF\", \"remain\": 0}\n  }\n}";

    fn x1() -> PrinterState {
        let mut state = PrinterState::default();
        assert!(state.merge(&serde_json::from_str(X1_FULL).expect("json")));
        state
    }

    #[test]
    fn a_full_report_gives_state_job_and_temperatures() {
        let update = x1().telemetry();
        assert_eq!(update.state, Some(MachineState::Running));
        let job = update.job.flatten().expect("a job");
        assert_eq!(job.file.as_deref(), Some("benchy"));
        assert_eq!(job.progress, Some(37.0));
        assert_eq!(job.remaining_s, Some(42 * 60), "minutes on the printer");
        assert_eq!(job.id.as_deref(), Some("512345678"));
        let temps = update.temps.expect("temps");
        assert_eq!((temps.nozzle, temps.bed_target, temps.chamber), (Some(219.8), Some(55.0), Some(31.0)));
    }

    #[test]
    fn deltas_merge_into_the_last_state() {
        let mut state = x1();
        // A P1-style delta: only what changed.
        state.merge(&json!({"print": {"mc_percent": 38, "nozzle_temper": 220.1, "sequence_id": "2022"}}));
        let update = state.telemetry();
        assert_eq!(update.job.flatten().and_then(|j| j.progress), Some(38.0));
        assert_eq!(update.temps.and_then(|t| t.bed), Some(55.1), "unchanged fields stay");
        // A delta of a nested object changes only its fields.
        state.merge(&json!({"print": {"ams": {"tray_now": "3"}}}));
        assert_eq!(state.trays().iter().filter(|t| t.active).map(|t| t.slot.as_str()).collect::<Vec<_>>(), ["0-3"]);
        // Reports of other kinds leave it alone.
        assert!(!state.merge(&json!({"info": {"command": "get_version"}})));
        state.merge(&json!({"print": {"gcode_state": "FINISH"}}));
        let update = state.telemetry();
        assert_eq!(update.state, Some(MachineState::Idle));
        assert_eq!(update.job, Some(None), "a finished printer has no job");
    }

    #[test]
    fn trays_and_nozzle_are_the_loaded_materials() {
        let state = x1();
        assert_eq!(state.nozzle_diameter(), Some(0.4));
        let trays = state.trays();
        assert_eq!(trays.len(), 5);
        assert_eq!(
            trays[0],
            Tray {
                slot: "0-0".into(),
                material: Some("PLA".into()),
                color: Some("FFFFFFFF".into()),
                remain_percent: Some(80),
                active: false
            }
        );
        assert_eq!((trays[1].remain_percent, trays[1].active), (None, true), "-1: unknown; tray_now 1");
        assert_eq!(trays[2].material, None, "an empty tray");
        assert_eq!(trays[4].slot, "external");
        assert_eq!(trays[4].material.as_deref(), Some("TPU"));
    }

    #[test]
    fn hms_entries_are_readable_and_serious_ones_mean_error() {
        let mut state = x1();
        state.merge(&json!({"print": {"hms": [{"attr": 0x0300_0100, "code": 0x0002_0007}]}}));
        assert_eq!(state.hms_errors(), [HmsError { code: "0300_0100_0002_0007".into(), severity: 2 }]);
        assert_eq!(state.machine_state(), Some(MachineState::Error));
        assert_eq!(state.telemetry().error.as_deref(), Some("HMS 0300_0100_0002_0007 (serious)"));
        state.merge(&json!({"print": {"hms": [{"attr": 0x0C00_0300, "code": 0x0004_0001}]}}));
        assert_eq!(state.machine_state(), Some(MachineState::Running), "an info entry does not stop anything");
        state.merge(&json!({"print": {"hms": []}}));
        assert!(state.hms_errors().is_empty(), "an empty list clears them");
    }

    #[test]
    fn state_changes_are_job_events() {
        let state = x1();
        assert_eq!(
            job_event(Some("IDLE"), "PREPARE", &state),
            Some(JobEvent::JobStarted { file: Some("benchy".into()) })
        );
        assert_eq!(job_event(Some("PREPARE"), "RUNNING", &state), None, "one start, not two");
        assert_eq!(job_event(Some("RUNNING"), "PAUSE", &state), Some(JobEvent::JobPaused));
        assert_eq!(job_event(Some("PAUSE"), "RUNNING", &state), Some(JobEvent::JobResumed));
        assert_eq!(job_event(Some("RUNNING"), "FINISH", &state), Some(JobEvent::JobFinished));
        assert_eq!(job_event(Some("RUNNING"), "RUNNING", &state), None);
        let mut failed = state.clone();
        failed.merge(&json!({"print": {"print_error": 0x0300_4001}}));
        assert_eq!(
            job_event(Some("RUNNING"), "FAILED", &failed),
            Some(JobEvent::JobFailed { reason: "print error 03004001".into() })
        );
        let mut stopped = state.clone();
        stopped.merge(&json!({"print": {"print_error": 50348044, "gcode_state": "FAILED"}}));
        assert_eq!(job_event(Some("RUNNING"), "FAILED", &stopped), Some(JobEvent::JobCancelled), "0300400C: stopped");
        assert_eq!((stopped.machine_state(), stopped.telemetry().error), (Some(MachineState::Idle), None));
        failed.merge(&json!({"print": {"gcode_state": "FAILED"}}));
        let update = failed.telemetry();
        assert_eq!(
            (update.state, update.error.as_deref()),
            (Some(MachineState::Error), Some("print error 03004001")),
            "the reason stays with the state"
        );
        assert_eq!(state.telemetry().error, None, "a running printer has none");
        assert_eq!(job_event(None, "IDLE", &state), None, "the first report of an idle printer");
    }
}
