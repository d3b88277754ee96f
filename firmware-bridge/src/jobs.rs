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

/// Fetches a `start` command's file into the spool folder and checks it; returns its path.
pub async fn fetch_job_file(server: &ServerClient, spool: &Path, job: &StartJob) -> Result<PathBuf, DownloadError> {
    tokio::fs::create_dir_all(spool).await?;
    let dest = spool.join(format!("{}.job", job.job_id));
    server.download(&job.url, &dest, &job.sha256, job.size).await?;
    Ok(dest)
}
