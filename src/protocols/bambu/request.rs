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

/// Longer names are refused: the printer's storage is a FAT or exFAT card (255 at most) and
/// its screen shows a few dozen characters.
const MAX_NAME: usize = 200;

impl PrintFile {
    /// What a file is to the printer, by its name: a sliced 3MF project (`.3mf`; Bambu Studio
    /// exports a sliced plate as `NAME.gcode.3mf`) prints its first plate, `.gcode` prints as
    /// it is. The name becomes an FTP command's argument and part of a request, so a name
    /// with a slash or a control character is refused, as is any other kind of file.
    pub fn from_name(name: &str) -> Result<PrintFile, String> {
        if name.is_empty() || name.len() > MAX_NAME || name.contains('/') || name.chars().any(char::is_control) {
            return Err(format!(
                "{name:?} cannot be a file name on the printer (1 to {MAX_NAME} bytes, no slash, no control character)"
            ));
        }
        let lower = name.to_ascii_lowercase();
        if lower.ends_with(".3mf") {
            Ok(PrintFile::Project { name: name.to_string(), plate: 1 })
        } else if lower.ends_with(".gcode") {
            Ok(PrintFile::Gcode { name: name.to_string() })
        } else {
            Err(format!("a Bambu printer prints a sliced .3mf or a .gcode file, not {name:?}"))
        }
    }

    /// The file's name on the printer's storage.
    pub fn name(&self) -> &str {
        match self {
            Self::Project { name, .. } | Self::Gcode { name } => name,
        }
    }

    /// The request that prints it.
    pub fn command(&self) -> &'static str {
        match self {
            Self::Project { .. } => "project_file",
            Self::Gcode { .. } => "gcode_file",
        }
    }
}

/// The job's name as the printer shows it: the file's name without `.gcode.3mf` or `.3mf`.
fn subtask_name(name: &str) -> &str {
    let lower = name.to_ascii_lowercase();
    let cut = [".gcode.3mf", ".3mf"].iter().find(|ext| lower.ends_with(*ext)).map_or(0, |ext| ext.len());
    &name[..name.len() - cut]
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

/// Starts a file already uploaded to the root of the printer's storage (its SD card): a
/// project by an `ftp:///NAME` URL, G-code by its path on the card (DESIGN.md).
pub fn print(file: &PrintFile, sequence_id: u64) -> Value {
    match file {
        PrintFile::Project { name, plate } => json!({"print": {
            "sequence_id": sequence_id.to_string(),
            "command": "project_file",
            "param": format!("Metadata/plate_{plate}.gcode"),
            "subtask_name": subtask_name(name),
            "url": format!("ftp:///{name}"),
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
            "param": format!("/sdcard/{name}"),
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
        assert_eq!(
            job(&JobCommand::Start { file: "x.3mf".into(), fetch: None }, 11),
            None,
            "a start is an upload first"
        );
        let project = print(&PrintFile::Project { name: "benchy.3mf".into(), plate: 1 }, 12);
        assert_eq!(project["print"]["command"], "project_file");
        assert_eq!(project["print"]["param"], "Metadata/plate_1.gcode");
        assert_eq!(project["print"]["url"], "ftp:///benchy.3mf");
        assert_eq!(project["print"]["subtask_name"], "benchy");
        assert_eq!(project["print"]["sequence_id"], "12");
        assert_eq!(
            print(&PrintFile::Gcode { name: "cube.gcode".into() }, 13),
            json!({"print": {"sequence_id": "13", "command": "gcode_file", "param": "/sdcard/cube.gcode"}})
        );
    }

    #[test]
    fn a_file_prints_by_its_kind_and_other_names_are_refused() {
        let project = PrintFile::from_name("Benchy.gcode.3MF").expect("a sliced project");
        assert_eq!(project, PrintFile::Project { name: "Benchy.gcode.3MF".into(), plate: 1 });
        assert_eq!((project.name(), project.command()), ("Benchy.gcode.3MF", "project_file"));
        assert_eq!(print(&project, 1)["print"]["subtask_name"], "Benchy");
        let gcode = PrintFile::from_name("cube.gcode").expect("G-code");
        assert_eq!((gcode.name(), gcode.command()), ("cube.gcode", "gcode_file"));
        let refused = PrintFile::from_name("part.stl").expect_err("not sliced");
        assert!(refused.contains(".3mf or a .gcode"), "{refused}");
        for name in ["", "a\r\nDELE x.gcode", "dir/x.gcode", "tab\t.3mf"] {
            assert!(PrintFile::from_name(name).is_err(), "{name:?}");
        }
        assert!(PrintFile::from_name(&format!("{}.3mf", "x".repeat(MAX_NAME))).is_err(), "too long");
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
