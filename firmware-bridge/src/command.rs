//! The commands makrcave sends on a machine's `cmd` topic (bridge-contract.md, "MQTT"), parsed
//! without I/O. Anything else is an error the link logs, counts and ignores.

use chrono::{DateTime, Utc};
use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Command {
    Unlock {
        #[serde(default)]
        session_id: Option<String>,
        #[serde(default)]
        until: Option<DateTime<Utc>>,
    },
    Lock {
        #[serde(default)]
        session_id: Option<String>,
    },
    Start(StartJob),
    Pause,
    Resume,
    Cancel,
    /// Publish a full telemetry now.
    Refresh,
}

/// A job to fetch from makrcave and run.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct StartJob {
    pub job_id: String,
    pub file: String,
    /// A path on makrcave (`/api/v1/kiosk/jobs/{id}/file`), fetched with the device token.
    pub url: String,
    /// Lowercase hex SHA-256 of the file.
    pub sha256: String,
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("not a command: {0}")]
    Malformed(String),
}

impl Command {
    pub fn parse(bytes: &[u8]) -> Result<Command, CommandError> {
        let command: Command = serde_json::from_slice(bytes).map_err(|err| CommandError::Malformed(err.to_string()))?;
        if let Command::Start(job) = &command {
            // The job's file name and id become a path in the spool folder: no separators.
            let safe = |s: &str| !s.is_empty() && !s.contains(['/', '\\', '\0']) && s != "." && s != "..";
            if !safe(&job.job_id) || !job.url.starts_with('/') || job.sha256.len() != 64 {
                return Err(CommandError::Malformed("start: bad job_id, url or sha256".to_string()));
            }
        }
        Ok(command)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn contract_commands_parse() {
        assert_eq!(
            Command::parse(br#"{"action":"unlock","session_id":"s1","until":"2026-11-21T18:00:00Z"}"#).unwrap(),
            Command::Unlock { session_id: Some("s1".into()), until: Some("2026-11-21T18:00:00Z".parse().unwrap()) }
        );
        assert_eq!(
            Command::parse(br#"{"action":"unlock","session_id":"s1"}"#).unwrap(),
            Command::Unlock { session_id: Some("s1".into()), until: None }
        );
        assert_eq!(
            Command::parse(br#"{"action":"lock","session_id":"s1"}"#).unwrap(),
            Command::Lock { session_id: Some("s1".into()) }
        );
        let sha = "a".repeat(64);
        let start = format!(
            r#"{{"action":"start","job_id":"j1","file":"part.gcode","url":"/api/v1/kiosk/jobs/j1/file","sha256":"{sha}","size":12345}}"#
        );
        assert_eq!(
            Command::parse(start.as_bytes()).unwrap(),
            Command::Start(StartJob {
                job_id: "j1".into(),
                file: "part.gcode".into(),
                url: "/api/v1/kiosk/jobs/j1/file".into(),
                sha256: sha,
                size: 12345
            })
        );
        for (text, command) in [
            (r#"{"action":"pause"}"#, Command::Pause),
            (r#"{"action":"resume"}"#, Command::Resume),
            (r#"{"action":"cancel"}"#, Command::Cancel),
            (r#"{"action":"refresh"}"#, Command::Refresh),
        ] {
            assert_eq!(Command::parse(text.as_bytes()).unwrap(), command);
        }
    }

    #[test]
    fn unknown_and_malformed_are_errors() {
        for text in [
            r#"{"action":"explode"}"#,
            r#"{"session_id":"s1"}"#,
            "not json",
            r#"{"action":"unlock","until":"tomorrow"}"#,
            r#"{"action":"start","job_id":"../etc","file":"f","url":"/x","sha256":"aa","size":1}"#,
        ] {
            assert!(Command::parse(text.as_bytes()).is_err(), "{text}");
        }
    }

    proptest! {
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = Command::parse(&bytes);
        }
    }
}
