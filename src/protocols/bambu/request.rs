//! What makrcave asks a Bambu printer, on `device/{serial}/request`, and how it reads the
//! replies. Every request carries a `sequence_id`; the printer echoes it in its reply on the
//! report topic with `result` (`success` or not) and a `reason`, so each reply is matched to
//! its request and a refusal is reported, not ignored.

use serde_json::{json, Value};

use crate::domain::jobs::JobCommand;

/// Where a file sent over FTPS lands on the printer's storage, and how to print it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrintFile {
    /// A sliced 3MF project: `project_file` with its plate.
    Project { name: String, plate: u32 },
    /// Plain G-code: `gcode_file`.
    Gcode { name: String },
}

/// The full state, asked for on connect and after a silence (P1 printers: at most every five
/// minutes, the caller's rate limit).
pub fn pushall(sequence_id: u64) -> Value {
    json!({"pushing": {"sequence_id": sequence_id.to_string(), "command": "pushall", "version": 1, "push_target": 1}})
}

/// A job command as a request; `None` for commands that are not a request (a start is an
/// upload first: see [`print`]; refresh is [`pushall`]).
pub fn job(command: &JobCommand, sequence_id: u64) -> Option<Value> {
    let name = match command {
        JobCommand::Pause => "pause",
        JobCommand::Resume => "resume",
        JobCommand::Cancel => "stop",
        JobCommand::Refresh => return Some(pushall(sequence_id)),
        JobCommand::Start { .. } => return None,
    };
    Some(json!({"print": {"sequence_id": sequence_id.to_string(), "command": name, "param": ""}}))
}

/// Starts a file already uploaded to the printer's storage (`ftp://` root).
pub fn print(file: &PrintFile, sequence_id: u64) -> Value {
    match file {
        PrintFile::Project { name, plate } => json!({"print": {
            "sequence_id": sequence_id.to_string(),
            "command": "project_file",
            "param": format!("Metadata/plate_{plate}.gcode"),
            "subtask_name": name,
            "url": format!("ftp://{name}"),
            "bed_type": "auto",
            "timelapse": false,
            "bed_leveling": true,
            "flow_cali": false,
            "vibration_cali": true,
            "layer_inspect": false,
            "use_ams": false,
        }}),
        PrintFile::Gcode { name } => json!({"print": {
            "sequence_id": sequence_id.to_string(),
            "command": "gcode_file",
            "param": name,
        }}),
    }
}

/// A reply to one of our requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub sequence_id: u64,
    pub command: String,
    /// `Ok` for `success`; the printer's reason otherwise.
    pub outcome: Result<(), String>,
}

/// The reply in a report, if it is one: a `print` object with a `result` and our numeric
/// `sequence_id` (status pushes carry a `sequence_id` but no `result`).
pub fn reply(report: &Value) -> Option<Reply> {
    let print = report.get("print")?;
    let result = print.get("result")?.as_str()?;
    let sequence_id = match print.get("sequence_id")? {
        Value::String(s) => s.parse().ok()?,
        Value::Number(n) => n.as_u64()?,
        _ => return None,
    };
    let command = print.get("command").and_then(Value::as_str).unwrap_or_default().to_string();
    let outcome = if result.eq_ignore_ascii_case("success") {
        Ok(())
    } else {
        let reason = print.get("reason").and_then(Value::as_str).filter(|r| !r.is_empty()).unwrap_or(result);
        Err(reason.to_string())
    };
    Some(Reply { sequence_id, command, outcome })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_have_the_documented_shapes() {
        assert_eq!(
            pushall(7),
            json!({"pushing": {"sequence_id": "7", "command": "pushall", "version": 1, "push_target": 1}})
        );
        assert_eq!(
            job(&JobCommand::Cancel, 8),
            Some(json!({"print": {"sequence_id": "8", "command": "stop", "param": ""}}))
        );
        assert_eq!(job(&JobCommand::Pause, 9).expect("pause")["print"]["command"], "pause");
        assert_eq!(job(&JobCommand::Refresh, 10).expect("refresh")["pushing"]["command"], "pushall");
        assert_eq!(job(&JobCommand::Start { file: "x.3mf".into() }, 11), None, "a start is an upload first");
        let project = print(&PrintFile::Project { name: "benchy.3mf".into(), plate: 1 }, 12);
        assert_eq!(project["print"]["command"], "project_file");
        assert_eq!(project["print"]["param"], "Metadata/plate_1.gcode");
        assert_eq!(project["print"]["url"], "ftp://benchy.3mf");
        assert_eq!(print(&PrintFile::Gcode { name: "cube.gcode".into() }, 13)["print"]["command"], "gcode_file");
    }

    #[test]
    fn replies_are_matched_and_refusals_kept() {
        let ok = json!({"print": {"command": "pause", "sequence_id": "9", "result": "success", "reason": ""}});
        assert_eq!(reply(&ok), Some(Reply { sequence_id: 9, command: "pause".into(), outcome: Ok(()) }));
        let refused = json!({"print": {"command": "project_file", "sequence_id": "12", "result": "failed", "reason": "SD card not inserted"}});
        assert_eq!(reply(&refused).map(|r| r.outcome), Some(Err("SD card not inserted".into())));
        let push = json!({"print": {"command": "push_status", "sequence_id": "2021", "gcode_state": "RUNNING"}});
        assert_eq!(reply(&push), None, "a status push is not a reply");
    }
}
