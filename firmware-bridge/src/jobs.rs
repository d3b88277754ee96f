//! The seam between the bridge's run loop and the serial controller (wired by `main`): jobs
//! go out as `JobAction`s; whether a job runs and the controller's telemetry come back as
//! watch channels. A bridge without a controller keeps the defaults: never a job, no telemetry.

use std::path::{Path, PathBuf};

use tokio::sync::{mpsc, watch};

use crate::command::StartJob;
use crate::server::{DownloadError, ServerClient};

/// What the run loop asks of the controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobAction {
    /// Stream this (downloaded and verified) file.
    Start {
        job_id: String,
        file: PathBuf,
    },
    Pause,
    Resume,
    Cancel,
}

/// The run loop's end of the seam.
#[derive(Debug)]
pub struct JobSeam {
    pub actions: mpsc::Sender<JobAction>,
    /// True while the controller runs a job: power is never cut then (until the grace time).
    pub job_running: watch::Receiver<bool>,
    /// The controller's latest telemetry (a JSON object of DESIGN.md's generic fields); the run
    /// loop adds `relay` and `dropped` and publishes it.
    pub telemetry: watch::Receiver<serde_json::Value>,
}

/// The controller's end of the seam, for the wiring in `main` (and the tests).
#[derive(Debug)]
pub struct ControllerSide {
    pub actions: mpsc::Receiver<JobAction>,
    pub job_running: watch::Sender<bool>,
    pub telemetry: watch::Sender<serde_json::Value>,
}

/// A connected pair of seam ends.
pub fn seam() -> (JobSeam, ControllerSide) {
    let (actions_tx, actions_rx) = mpsc::channel(16);
    let (running_tx, running_rx) = watch::channel(false);
    let (telemetry_tx, telemetry_rx) = watch::channel(serde_json::json!({}));
    (
        JobSeam { actions: actions_tx, job_running: running_rx, telemetry: telemetry_rx },
        ControllerSide { actions: actions_rx, job_running: running_tx, telemetry: telemetry_tx },
    )
}

/// Fetches a `start` command's file into the spool folder and checks it; returns its path,
/// `{spool}/{job_id}/{file}`: the controller names the job by its file's name. Files of earlier
/// jobs are removed first (one job runs at a time; a file still being streamed stays readable
/// through its open handle).
pub async fn fetch_job_file(server: &ServerClient, spool: &Path, job: &StartJob) -> Result<PathBuf, DownloadError> {
    match tokio::fs::remove_dir_all(spool).await {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => return Err(err.into()),
        _ => {}
    }
    let folder = spool.join(safe_name(&job.job_id, "job"));
    tokio::fs::create_dir_all(&folder).await?;
    let dest = folder.join(safe_name(&job.file, "job.gcode"));
    server.download(&job.url, &dest, &job.sha256, job.size).await?;
    Ok(dest)
}

/// A name from makrcave made safe as one path component: its last `/` part, with anything but
/// letters, digits, `.`, `-` and `_` replaced by `_` (`fallback` when nothing is left, or for
/// `.` and `..`).
fn safe_name(name: &str, fallback: &str) -> String {
    let last = name.rsplit(['/', '\\']).next().unwrap_or("");
    let safe: String =
        last.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') { c } else { '_' }).collect();
    if safe.is_empty() || safe.chars().all(|c| c == '.') {
        fallback.to_string()
    } else {
        safe
    }
}

#[cfg(test)]
mod tests {
    use super::safe_name;

    #[test]
    fn names_from_makrcave_stay_one_path_component() {
        assert_eq!(safe_name("bracket.gcode", "x"), "bracket.gcode");
        assert_eq!(safe_name("../../etc/passwd", "x"), "passwd");
        assert_eq!(safe_name("a b/c d.nc", "x"), "c_d.nc");
        assert_eq!(safe_name("..", "x"), "x");
        assert_eq!(safe_name("", "x"), "x");
        assert_eq!(safe_name("dir\\évier.gcode", "x"), "_vier.gcode");
    }
}
