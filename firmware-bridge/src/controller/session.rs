//! What the I/O driver asks of a protocol: a state machine without I/O. The driver feeds it
//! lines from the port, ticks, commands and lines from the job file; the machine answers
//! with bytes to write and events to report.

use std::time::Instant;

use super::error::ControllerError;
use super::telemetry::{ControllerEvent, JobEvent, JobTelemetry, MachineState, Telemetry, Temps};

/// What a protocol state machine wants done.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Write(Vec<u8>),
    Event(ControllerEvent),
}

/// A job to stream: its id and name (for the events) and its size (for the progress).
#[derive(Debug, Clone, PartialEq)]
pub struct JobSpec {
    pub id: String,
    pub file: String,
    pub total_bytes: u64,
}

/// How a job ends when it does not run to the end.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Cancelled,
    Failed(String),
}

impl Outcome {
    pub fn event(self) -> JobEvent {
        match self {
            Outcome::Cancelled => JobEvent::Cancelled,
            Outcome::Failed(reason) => JobEvent::Failed { reason },
        }
    }
}

/// A protocol (GRBL, Marlin) as a pure state machine.
pub trait Session: Send {
    fn connected(&mut self, now: Instant, out: &mut Vec<Action>);
    /// The port is gone: a running job fails (what the controller still does is unknown).
    fn disconnected(&mut self, reason: &str, out: &mut Vec<Action>);
    fn received(&mut self, line: &[u8], now: Instant, out: &mut Vec<Action>);
    /// Called every poll interval: status polls and deadlines.
    fn tick(&mut self, now: Instant, out: &mut Vec<Action>);
    /// Whether a job may start now (checked before the file is opened).
    fn can_start(&self) -> Result<(), ControllerError>;
    fn start_job(&mut self, job: JobSpec, now: Instant, out: &mut Vec<Action>) -> Result<(), ControllerError>;
    fn pause(&mut self, out: &mut Vec<Action>) -> Result<(), ControllerError>;
    fn resume(&mut self, out: &mut Vec<Action>) -> Result<(), ControllerError>;
    /// `None` without a job; else whether it is already stopping.
    fn stopping(&self) -> Option<bool>;
    /// Makes the machine safe and ends the job with `outcome` (at once or once it is safe).
    fn stop(&mut self, outcome: Outcome, now: Instant, out: &mut Vec<Action>);

    fn cancel(&mut self, now: Instant, out: &mut Vec<Action>) -> Result<(), ControllerError> {
        match self.stopping() {
            None => Err(ControllerError::NoJob),
            Some(true) => Err(ControllerError::Stopping),
            Some(false) => {
                self.stop(Outcome::Cancelled, now, out);
                Ok(())
            }
        }
    }

    /// Ends the job as failed for a reason outside the protocol (the file cannot be read).
    fn fail_job(&mut self, reason: String, now: Instant, out: &mut Vec<Action>) {
        if self.stopping() == Some(false) {
            self.stop(Outcome::Failed(reason), now, out);
        }
    }
    /// The job streams and wants its next line from the file.
    fn wants_line(&self) -> bool;
    /// The file line as it goes to the controller, `None` when nothing is left to send.
    fn clean_line(&self, raw: &str) -> Option<String>;
    /// Sends a cleaned job line if the flow control lets it go now; `false` = offer it again
    /// later. `end_offset` is the file position after the line (for the progress).
    fn offer_line(&mut self, line: &str, end_offset: u64, now: Instant, out: &mut Vec<Action>) -> bool;
    /// The file has no more lines.
    fn file_ended(&mut self, now: Instant, out: &mut Vec<Action>);
    fn telemetry(&self) -> Telemetry;
    /// True while a job streams, is paused, or is being stopped.
    fn job_running(&self) -> bool;
}

/// A job's progress, shared by both protocols: the file position the controller acknowledged,
/// and a progress event on every whole percent (not on every line: a file has millions).
#[derive(Debug, Clone, PartialEq)]
pub struct JobProgress {
    pub spec: JobSpec,
    acked_offset: u64,
    /// Set by `M73 P` lines in the file, which know better than the byte position.
    hinted_percent: Option<f64>,
    remaining_s: Option<u64>,
    last_reported_percent: u8,
}

impl JobProgress {
    pub fn new(spec: JobSpec) -> Self {
        JobProgress { spec, acked_offset: 0, hinted_percent: None, remaining_s: None, last_reported_percent: 0 }
    }

    /// 0-100, one decimal.
    pub fn percent(&self) -> f64 {
        let raw = match (self.hinted_percent, self.spec.total_bytes) {
            (Some(percent), _) => percent,
            (None, 0) => 0.0,
            (None, total) => self.acked_offset.min(total) as f64 * 100.0 / total as f64,
        };
        (raw.clamp(0.0, 100.0) * 10.0).floor() / 10.0
    }

    /// The controller acknowledged the file up to `offset`; a progress event when a whole
    /// percent was passed.
    pub fn acknowledged(&mut self, offset: u64, out: &mut Vec<Action>) {
        self.acked_offset = self.acked_offset.max(offset);
        self.report(out);
    }

    pub fn hint(&mut self, percent: Option<f64>, remaining_s: Option<u64>, out: &mut Vec<Action>) {
        if percent.is_some() {
            self.hinted_percent = percent;
        }
        if remaining_s.is_some() {
            self.remaining_s = remaining_s;
        }
        self.report(out);
    }

    /// The file ran to the end: report 100 if it was not reported yet.
    pub fn complete(&mut self, out: &mut Vec<Action>) {
        self.hinted_percent = Some(100.0);
        self.remaining_s = Some(0);
        self.report(out);
    }

    fn report(&mut self, out: &mut Vec<Action>) {
        let percent = self.percent();
        let whole = percent.floor() as u8;
        if whole > self.last_reported_percent {
            self.last_reported_percent = whole;
            out.push(Action::Event(ControllerEvent::Job(JobEvent::Progress { progress: percent })));
        }
    }

    pub fn telemetry(&self) -> JobTelemetry {
        JobTelemetry {
            id: self.spec.id.clone(),
            file: self.spec.file.clone(),
            progress: self.percent(),
            remaining_s: self.remaining_s,
        }
    }
}

/// Where a job is, for both protocols; `S` is the protocol's own step while stopping.
#[derive(Debug, Clone, PartialEq)]
pub enum Stage<S> {
    Streaming,
    /// Every line is read from the file; waiting for the controller to finish them.
    Draining,
    /// `draining` says where resume goes back to.
    Paused {
        draining: bool,
    },
    /// Ending early: the machine is being made safe, then the job ends with `outcome`.
    Stopping {
        outcome: Outcome,
        step: S,
    },
}

/// A running job: its progress and stage.
#[derive(Debug)]
pub struct Job<S> {
    pub progress: JobProgress,
    pub stage: Stage<S>,
}

impl<S> Job<S> {
    /// Starts a job: the `job_started` event.
    pub fn start(spec: JobSpec, out: &mut Vec<Action>) -> Self {
        out.push(event(JobEvent::Started { file: spec.file.clone() }));
        Job { progress: JobProgress::new(spec), stage: Stage::Streaming }
    }

    /// Pauses; `Ok(false)` when it was paused already (nothing to send).
    pub fn pause(&mut self, out: &mut Vec<Action>) -> Result<bool, ControllerError> {
        let draining = match self.stage {
            Stage::Streaming => false,
            Stage::Draining => true,
            Stage::Paused { .. } => return Ok(false),
            Stage::Stopping { .. } => return Err(ControllerError::Stopping),
        };
        self.stage = Stage::Paused { draining };
        out.push(event(JobEvent::Paused));
        Ok(true)
    }

    pub fn resume(&mut self, out: &mut Vec<Action>) -> Result<(), ControllerError> {
        let Stage::Paused { draining } = self.stage else { return Err(ControllerError::NotPaused) };
        self.stage = if draining { Stage::Draining } else { Stage::Streaming };
        out.push(event(JobEvent::Resumed));
        Ok(())
    }

    pub fn is_stopping(&self) -> bool {
        matches!(self.stage, Stage::Stopping { .. })
    }

    pub fn wants_line(&self) -> bool {
        matches!(self.stage, Stage::Streaming)
    }

    pub fn state(&self) -> MachineState {
        match self.stage {
            Stage::Paused { .. } => MachineState::Paused,
            _ => MachineState::Running,
        }
    }

    /// Ends the job: finished (`None`) or with `outcome`.
    pub fn end(mut self, outcome: Option<Outcome>, out: &mut Vec<Action>) {
        match outcome {
            None => {
                self.progress.complete(out);
                tracing::info!(job = %self.progress.spec.id, "job finished");
                out.push(event(JobEvent::Finished));
            }
            Some(outcome) => {
                tracing::info!(job = %self.progress.spec.id, ?outcome, "job ended early");
                out.push(event(outcome.event()));
            }
        }
    }
}

/// The checks both protocols make before a job starts.
pub fn check_can_start<S>(
    connected: bool,
    job: Option<&Job<S>>,
    fault: Option<&String>,
) -> Result<(), ControllerError> {
    if !connected {
        return Err(ControllerError::Offline);
    }
    if job.is_some() {
        return Err(ControllerError::Busy("a job is running".into()));
    }
    if let Some(fault) = fault {
        return Err(ControllerError::Alarm(fault.clone()));
    }
    Ok(())
}

/// The telemetry both protocols report: the job's state wins over the controller's.
pub fn telemetry<S>(connected: bool, fault: bool, job: Option<&Job<S>>, idle: MachineState, temps: Temps) -> Telemetry {
    let state = match (connected, fault, job) {
        (false, _, _) => MachineState::Offline,
        (true, true, _) => MachineState::Error,
        (true, false, Some(job)) => job.state(),
        (true, false, None) => idle,
    };
    Telemetry { state, job: job.map(|j| j.progress.telemetry()), temps, power_w: None, relay: None, ts: None }
}

pub fn event(event: JobEvent) -> Action {
    Action::Event(ControllerEvent::Job(event))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress_events(out: &[Action]) -> Vec<f64> {
        out.iter()
            .filter_map(|a| match a {
                Action::Event(ControllerEvent::Job(JobEvent::Progress { progress })) => Some(*progress),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn reports_each_whole_percent_once() {
        let mut job = JobProgress::new(JobSpec { id: "j".into(), file: "f".into(), total_bytes: 1000 });
        let mut out = Vec::new();
        job.acknowledged(5, &mut out);
        job.acknowledged(10, &mut out);
        job.acknowledged(11, &mut out);
        job.acknowledged(255, &mut out);
        assert_eq!(progress_events(&out), vec![1.0, 25.5]);
        job.complete(&mut out);
        assert_eq!(progress_events(&out), vec![1.0, 25.5, 100.0]);
        assert_eq!(job.telemetry().remaining_s, Some(0));
    }

    #[test]
    fn an_empty_file_never_divides_by_zero() {
        let mut job = JobProgress::new(JobSpec { id: "j".into(), file: "f".into(), total_bytes: 0 });
        let mut out = Vec::new();
        job.acknowledged(10, &mut out);
        assert_eq!(job.percent(), 0.0);
        job.hint(Some(50.0), Some(120), &mut out);
        assert_eq!((job.percent(), job.telemetry().remaining_s), (50.0, Some(120)));
    }
}
