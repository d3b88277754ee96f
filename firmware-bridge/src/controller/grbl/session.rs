//! GRBL streaming as a state machine without I/O.
//!
//! Flow control is GRBL's character-counting protocol: the bytes of the lines sent and not yet
//! answered (`ok` or `error:n`, one answer per line, oldest first), newlines included, never
//! exceed the controller's RX buffer (128 bytes on an Arduino). Real-time commands (`?`, `!`,
//! `~`, 0x18, 0x9E) are single bytes GRBL takes out of the stream at once: they are outside
//! the count.
//!
//! Ending a job early (cancel, `error:n`, a file that cannot be read) stops the machine:
//! - Nothing queued and GRBL idle: send `M5` (spindle/laser off, the documented way) and wait
//!   for its `ok`, then soft reset (0x18).
//! - Otherwise `M5` would only run after every queued move, so: feed hold `!` (motion
//!   decelerates under control, so GRBL keeps its position and no ALARM:3 follows the reset),
//!   wait for `Hold:0` (hold complete), send 0x9E (spindle stop override, which GRBL 1.1 only
//!   accepts in a hold: the spindle or laser goes off now), then soft reset 0x18, which flushes
//!   the buffers (GRBL's reset also turns spindle and coolant off).
//! - Every wait has a deadline (`hold_timeout`): when it passes, reset anyway.
//!
//! The job ends when the welcome banner after the reset arrives (or its deadline passes).
//! A banner seen while a job streams is a reset we did not ask for: the job fails. An
//! `ALARM:n` fails the job at once (GRBL already stopped and flushed its buffer).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::parse::{alarm_text, error_text, parse_line, GrblLine, GrblState};
use crate::controller::error::ControllerError;
use crate::controller::gcode::clean_line;
use crate::controller::session::{self, check_can_start, Action, JobSpec, Outcome, Session};
use crate::controller::telemetry::{ControllerEvent, MachineState, Telemetry, Temps};

/// The real-time status query.
pub const STATUS_QUERY: u8 = b'?';
pub const FEED_HOLD: u8 = b'!';
pub const CYCLE_START: u8 = b'~';
pub const SOFT_RESET: u8 = 0x18;
/// Spindle stop override: toggles the spindle off, only in a hold.
pub const SPINDLE_STOP: u8 = 0x9E;

/// A line GRBL holds in its RX buffer until it answers it.
#[derive(Debug, Clone)]
struct Sent {
    /// Bytes counted against the RX buffer (the line and its newline).
    bytes: usize,
    text: String,
    /// The file position after this line; `None` for lines the bridge adds (M5).
    end_offset: Option<u64>,
}

/// What a stop waits for, and until when.
#[derive(Debug, Clone, Copy, PartialEq)]
struct StopStep {
    waiting_for: Awaiting,
    deadline: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Awaiting {
    M5Answer,
    Hold,
    Banner,
}

type Job = session::Job<StopStep>;
type Stage = session::Stage<StopStep>;

/// GRBL's side of a connection.
#[derive(Debug)]
pub struct GrblSession {
    rx_buffer: usize,
    hold_timeout: Duration,
    connected: bool,
    in_flight: VecDeque<Sent>,
    in_flight_bytes: usize,
    /// The state of the last status report; `None` until one arrives after (re)connecting.
    status: Option<GrblState>,
    /// Set by `ALARM:n`, cleared by a status report in another state.
    alarm: Option<String>,
    job: Option<Job>,
}

impl GrblSession {
    /// `rx_buffer`: GRBL's serial RX buffer (128 on an Arduino Uno build). `hold_timeout`:
    /// how long a cancel waits for each step before it resets anyway.
    pub fn new(rx_buffer: usize, hold_timeout: Duration) -> Self {
        GrblSession {
            rx_buffer: rx_buffer.max(2),
            hold_timeout,
            connected: false,
            in_flight: VecDeque::new(),
            in_flight_bytes: 0,
            status: None,
            alarm: None,
            job: None,
        }
    }

    /// Bytes sent and not yet answered (never above the RX buffer).
    pub fn in_flight_bytes(&self) -> usize {
        self.in_flight_bytes
    }

    fn send_line(&mut self, text: &str, end_offset: Option<u64>, out: &mut Vec<Action>) {
        let mut bytes = Vec::with_capacity(text.len() + 1);
        bytes.extend_from_slice(text.as_bytes());
        bytes.push(b'\n');
        self.in_flight_bytes += bytes.len();
        self.in_flight.push_back(Sent { bytes: bytes.len(), text: text.to_string(), end_offset });
        out.push(Action::Write(bytes));
    }

    fn forget_in_flight(&mut self) {
        self.in_flight.clear();
        self.in_flight_bytes = 0;
    }

    fn answered(&mut self, error: Option<u16>, now: Instant, out: &mut Vec<Action>) {
        let Some(sent) = self.in_flight.pop_front() else {
            tracing::debug!("GRBL answered a line the bridge did not send");
            return;
        };
        self.in_flight_bytes = self.in_flight_bytes.saturating_sub(sent.bytes);
        let Some(job) = self.job.as_mut() else { return };
        if let Stage::Stopping { step, .. } = &job.stage {
            if step.waiting_for == Awaiting::M5Answer && sent.end_offset.is_none() {
                self.reset(now, out);
            }
            return;
        }
        match (error, sent.end_offset) {
            (Some(code), _) => {
                let reason = format!("error:{code} ({}) on line '{}'", error_text(code), sent.text);
                tracing::warn!(%reason, "GRBL refused a job line");
                self.make_safe(Outcome::Failed(reason), now, out);
            }
            (None, Some(offset)) => job.progress.acknowledged(offset, out),
            (None, None) => {}
        }
    }

    /// Stops the machine and ends the job with `outcome` (see the module documentation).
    fn make_safe(&mut self, outcome: Outcome, now: Instant, out: &mut Vec<Action>) {
        let deadline = now + self.hold_timeout;
        let paused = matches!(self.job.as_ref().map(|j| &j.stage), Some(Stage::Paused { .. }));
        let waiting_for = if self.in_flight.is_empty() && !paused && self.status == Some(GrblState::Idle) {
            self.send_line("M5", None, out);
            Awaiting::M5Answer
        } else {
            out.push(Action::Write(vec![FEED_HOLD, STATUS_QUERY]));
            Awaiting::Hold
        };
        if let Some(job) = self.job.as_mut() {
            job.stage = Stage::Stopping { outcome, step: StopStep { waiting_for, deadline } };
        }
    }

    fn reset(&mut self, now: Instant, out: &mut Vec<Action>) {
        out.push(Action::Write(vec![SOFT_RESET]));
        let deadline = now + self.hold_timeout;
        if let Some(Job { stage: Stage::Stopping { step, .. }, .. }) = self.job.as_mut() {
            *step = StopStep { waiting_for: Awaiting::Banner, deadline };
        }
    }

    fn end_job(&mut self, outcome: Option<Outcome>, out: &mut Vec<Action>) {
        if let Some(job) = self.job.take() {
            job.end(outcome, out);
        }
    }

    fn status_report(&mut self, state: GrblState, now: Instant, out: &mut Vec<Action>) {
        if state != GrblState::Alarm {
            self.alarm = None;
        }
        let in_flight_empty = self.in_flight.is_empty();
        if let Some(job) = self.job.as_ref() {
            let awaiting_hold =
                matches!(&job.stage, Stage::Stopping { step, .. } if step.waiting_for == Awaiting::Hold);
            match (&job.stage, &state) {
                (Stage::Draining, GrblState::Idle) if in_flight_empty => self.end_job(None, out),
                (_, GrblState::Hold(Some(0))) if awaiting_hold => {
                    out.push(Action::Write(vec![SPINDLE_STOP]));
                    self.reset(now, out);
                }
                (_, GrblState::Idle) if awaiting_hold => self.reset(now, out),
                _ => {}
            }
        }
        self.status = Some(state);
    }
}

impl Session for GrblSession {
    fn connected(&mut self, _now: Instant, _out: &mut Vec<Action>) {
        // Nothing to send: the first `?` tells the state. A reset here would stop a job that
        // a bridge restart left running.
        self.connected = true;
        self.status = None;
        self.forget_in_flight();
    }

    fn disconnected(&mut self, reason: &str, out: &mut Vec<Action>) {
        self.connected = false;
        self.status = None;
        self.forget_in_flight();
        if self.job.is_some() {
            self.end_job(Some(Outcome::Failed(format!("serial port lost: {reason}"))), out);
        }
    }

    fn received(&mut self, line: &[u8], now: Instant, out: &mut Vec<Action>) {
        match parse_line(line) {
            GrblLine::Ok => self.answered(None, now, out),
            GrblLine::Error { code } => self.answered(Some(code), now, out),
            GrblLine::Alarm { code } => {
                let (code, text) = (format!("ALARM:{code}"), alarm_text(code).to_string());
                tracing::warn!(%code, %text, "GRBL alarm");
                self.alarm = Some(format!("{code} {text}"));
                self.status = Some(GrblState::Alarm);
                // GRBL halted and flushed its RX buffer: nothing sent will be answered.
                self.forget_in_flight();
                out.push(Action::Event(ControllerEvent::Alarm { code: code.clone(), text: text.clone() }));
                if self.job.is_some() {
                    self.end_job(Some(Outcome::Failed(format!("{code} {text}"))), out);
                }
            }
            GrblLine::Status(report) => self.status_report(report.state, now, out),
            GrblLine::Welcome { version } => {
                tracing::info!(%version, "GRBL (re)started");
                self.forget_in_flight();
                self.status = None;
                match self.job.as_ref().map(|j| &j.stage) {
                    Some(Stage::Stopping { outcome, step }) if step.waiting_for == Awaiting::Banner => {
                        let outcome = outcome.clone();
                        self.end_job(Some(outcome), out);
                    }
                    Some(_) => {
                        let reason = "the controller reset during the job (welcome banner seen)".to_string();
                        self.end_job(Some(Outcome::Failed(reason)), out);
                    }
                    None => {}
                }
            }
            GrblLine::Message(message) => tracing::info!(%message, "GRBL message"),
            other => tracing::debug!(?other, "GRBL said"),
        }
    }

    fn tick(&mut self, now: Instant, out: &mut Vec<Action>) {
        if !self.connected {
            return;
        }
        out.push(Action::Write(vec![STATUS_QUERY]));
        let Some(Job { stage: Stage::Stopping { outcome, step }, .. }) = self.job.as_ref() else { return };
        if now < step.deadline {
            return;
        }
        match step.waiting_for {
            Awaiting::M5Answer | Awaiting::Hold => {
                tracing::warn!(step = ?step.waiting_for, "GRBL did not answer in time; resetting anyway");
                self.reset(now, out);
            }
            Awaiting::Banner => {
                tracing::warn!("no welcome banner after the reset; ending the job anyway");
                let outcome = outcome.clone();
                self.forget_in_flight();
                self.end_job(Some(outcome), out);
            }
        }
    }

    fn can_start(&self) -> Result<(), ControllerError> {
        check_can_start(self.connected, self.job.as_ref(), self.alarm.as_ref())?;
        match &self.status {
            None => Err(ControllerError::NotReady),
            Some(GrblState::Idle) => Ok(()),
            Some(GrblState::Alarm) => Err(ControllerError::Alarm("Alarm state".into())),
            Some(other) => Err(ControllerError::Busy(format!("GRBL is in state {other:?}"))),
        }
    }

    fn start_job(&mut self, job: JobSpec, _now: Instant, out: &mut Vec<Action>) -> Result<(), ControllerError> {
        self.can_start()?;
        self.job = Some(Job::start(job, out));
        Ok(())
    }

    fn pause(&mut self, out: &mut Vec<Action>) -> Result<(), ControllerError> {
        let job = self.job.as_mut().ok_or(ControllerError::NoJob)?;
        if job.pause(out)? {
            out.push(Action::Write(vec![FEED_HOLD]));
        }
        Ok(())
    }

    fn resume(&mut self, out: &mut Vec<Action>) -> Result<(), ControllerError> {
        self.job.as_mut().ok_or(ControllerError::NoJob)?.resume(out)?;
        out.push(Action::Write(vec![CYCLE_START]));
        Ok(())
    }

    fn stopping(&self) -> Option<bool> {
        self.job.as_ref().map(Job::is_stopping)
    }

    fn stop(&mut self, outcome: Outcome, now: Instant, out: &mut Vec<Action>) {
        self.make_safe(outcome, now, out);
    }

    fn wants_line(&self) -> bool {
        self.job.as_ref().is_some_and(Job::wants_line)
    }

    fn clean_line(&self, raw: &str) -> Option<String> {
        clean_line(raw, true)
    }

    fn offer_line(&mut self, line: &str, end_offset: u64, now: Instant, out: &mut Vec<Action>) -> bool {
        let bytes = line.len() + 1;
        if bytes > self.rx_buffer {
            let reason = format!("a line of {bytes} bytes does not fit GRBL's {}-byte buffer", self.rx_buffer);
            self.make_safe(Outcome::Failed(reason), now, out);
            return true;
        }
        if self.in_flight_bytes + bytes > self.rx_buffer {
            return false;
        }
        self.send_line(line, Some(end_offset), out);
        true
    }

    fn file_ended(&mut self, _now: Instant, _out: &mut Vec<Action>) {
        if let Some(job) = self.job.as_mut() {
            if matches!(job.stage, Stage::Streaming) {
                job.stage = Stage::Draining;
            }
        }
    }

    fn telemetry(&self) -> Telemetry {
        let fault = self.alarm.is_some() || self.status == Some(GrblState::Alarm);
        let idle = match self.status {
            Some(GrblState::Run | GrblState::Jog | GrblState::Home) => MachineState::Running,
            Some(GrblState::Hold(_) | GrblState::Door(_)) => MachineState::Paused,
            _ => MachineState::Idle,
        };
        // Until GRBL answers a status query makrcave cannot know what the machine does: offline.
        session::telemetry(self.connected && self.status.is_some(), fault, self.job.as_ref(), idle, Temps::default())
    }

    fn job_running(&self) -> bool {
        self.job.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::telemetry::JobEvent;

    fn session() -> (GrblSession, Instant) {
        let now = Instant::now();
        let mut s = GrblSession::new(128, Duration::from_secs(2));
        let mut out = Vec::new();
        s.connected(now, &mut out);
        s.received(b"<Idle|MPos:0.000,0.000,0.000|FS:0,0>", now, &mut out);
        (s, now)
    }

    fn spec(total_bytes: u64) -> JobSpec {
        JobSpec { id: "j1".into(), file: "cut.nc".into(), total_bytes }
    }

    fn writes(out: &[Action]) -> Vec<Vec<u8>> {
        out.iter().filter_map(|a| if let Action::Write(b) = a { Some(b.clone()) } else { None }).collect()
    }

    fn job_events(out: &[Action]) -> Vec<JobEvent> {
        out.iter()
            .filter_map(|a| if let Action::Event(ControllerEvent::Job(e)) = a { Some(e.clone()) } else { None })
            .collect()
    }

    #[test]
    fn counts_characters_against_the_rx_buffer() {
        let (mut s, now) = session();
        let mut out = Vec::new();
        s.start_job(spec(1000), now, &mut out).unwrap();
        let line = "G1 X10.000 Y20.000 F1000"; // 25 bytes with the newline
        let mut sent = 0;
        while s.offer_line(line, 100, now, &mut out) {
            sent += 1;
        }
        assert_eq!(sent, 5, "5 x 25 = 125 bytes fit, a sixth would make 150");
        assert_eq!(s.in_flight_bytes(), 125);
        s.received(b"ok", now, &mut out);
        assert_eq!(s.in_flight_bytes(), 100);
        assert!(s.offer_line(line, 200, now, &mut out));
        assert!(!s.offer_line(line, 200, now, &mut out));
    }

    #[test]
    fn finishes_after_the_last_answer_and_an_idle_report() {
        let (mut s, now) = session();
        let mut out = Vec::new();
        s.start_job(spec(10), now, &mut out).unwrap();
        assert!(s.offer_line("G0 X1", 10, now, &mut out));
        s.file_ended(now, &mut out);
        s.received(b"<Run|MPos:0,0,0>", now, &mut out);
        s.received(b"ok", now, &mut out);
        assert!(s.job_running(), "the move may still run after its ok");
        s.received(b"<Idle|MPos:1,0,0>", now, &mut out);
        assert!(!s.job_running());
        assert_eq!(
            job_events(&out),
            vec![
                JobEvent::Started { file: "cut.nc".into() },
                JobEvent::Progress { progress: 100.0 },
                JobEvent::Finished
            ]
        );
    }

    #[test]
    fn cancel_with_queued_moves_holds_stops_the_spindle_then_resets() {
        let (mut s, now) = session();
        let mut out = Vec::new();
        s.start_job(spec(100), now, &mut out).unwrap();
        assert!(s.offer_line("M3 S1000", 9, now, &mut out));
        out.clear();
        s.cancel(now, &mut out).unwrap();
        assert_eq!(writes(&out), vec![vec![FEED_HOLD, STATUS_QUERY]]);
        s.received(b"<Hold:1|MPos:0,0,0>", now, &mut out);
        assert_eq!(writes(&out).len(), 1, "still decelerating");
        s.received(b"<Hold:0|MPos:0,0,0>", now, &mut out);
        assert_eq!(writes(&out)[1..], [vec![SPINDLE_STOP], vec![SOFT_RESET]]);
        assert!(s.job_running());
        s.received(b"Grbl 1.1h ['$' for help]", now, &mut out);
        assert!(!s.job_running());
        assert_eq!(job_events(&out), vec![JobEvent::Cancelled]);
    }

    #[test]
    fn cancel_with_nothing_queued_sends_m5_first() {
        let (mut s, now) = session();
        let mut out = Vec::new();
        s.start_job(spec(100), now, &mut out).unwrap();
        out.clear();
        s.cancel(now, &mut out).unwrap();
        assert_eq!(writes(&out), vec![b"M5\n".to_vec()]);
        s.received(b"ok", now, &mut out);
        assert_eq!(writes(&out)[1], vec![SOFT_RESET]);
    }

    #[test]
    fn cancel_resets_anyway_when_the_hold_never_completes() {
        let (mut s, now) = session();
        let mut out = Vec::new();
        s.start_job(spec(100), now, &mut out).unwrap();
        assert!(s.offer_line("G1 X1", 6, now, &mut out));
        s.cancel(now, &mut out).unwrap();
        out.clear();
        s.tick(now + Duration::from_secs(3), &mut out);
        assert_eq!(writes(&out), vec![vec![STATUS_QUERY], vec![SOFT_RESET]]);
        s.tick(now + Duration::from_secs(6), &mut out);
        assert_eq!(job_events(&out), vec![JobEvent::Cancelled]);
    }

    #[test]
    fn an_unasked_reset_fails_the_job() {
        let (mut s, now) = session();
        let mut out = Vec::new();
        s.start_job(spec(100), now, &mut out).unwrap();
        assert!(s.offer_line("G1 X1", 6, now, &mut out));
        s.received(b"Grbl 1.1h ['$' for help]", now, &mut out);
        assert!(matches!(job_events(&out).last(), Some(JobEvent::Failed { reason }) if reason.contains("reset")));
        assert_eq!(s.in_flight_bytes(), 0);
    }

    #[test]
    fn an_alarm_is_an_event_fails_the_job_and_blocks_the_next() {
        let (mut s, now) = session();
        let mut out = Vec::new();
        s.start_job(spec(100), now, &mut out).unwrap();
        s.received(b"ALARM:1", now, &mut out);
        assert!(out.contains(&Action::Event(ControllerEvent::Alarm {
            code: "ALARM:1".into(),
            text: "Hard limit triggered".into()
        })));
        assert!(matches!(job_events(&out).last(), Some(JobEvent::Failed { .. })));
        assert_eq!(s.telemetry().state, MachineState::Error);
        assert!(matches!(s.start_job(spec(1), now, &mut out), Err(ControllerError::Alarm(_))));
        s.received(b"<Idle|MPos:0,0,0>", now, &mut out);
        assert_eq!(s.telemetry().state, MachineState::Idle);
    }

    #[test]
    fn an_error_answer_stops_the_job_as_failed() {
        let (mut s, now) = session();
        let mut out = Vec::new();
        s.start_job(spec(100), now, &mut out).unwrap();
        assert!(s.offer_line("G5 X1", 6, now, &mut out));
        assert!(s.offer_line("G1 X2", 12, now, &mut out));
        s.received(b"error:20", now, &mut out);
        assert!(!s.wants_line());
        s.received(b"<Hold:0|MPos:0,0,0>", now, &mut out);
        s.received(b"Grbl 1.1h ['$' for help]", now, &mut out);
        assert!(
            matches!(job_events(&out).last(), Some(JobEvent::Failed { reason }) if reason.contains("error:20 (Unsupported command) on line 'G5 X1'"))
        );
    }

    #[test]
    fn pause_and_resume_are_feed_hold_and_cycle_start() {
        let (mut s, now) = session();
        let mut out = Vec::new();
        s.start_job(spec(100), now, &mut out).unwrap();
        out.clear();
        s.pause(&mut out).unwrap();
        assert!(!s.wants_line());
        assert_eq!(s.telemetry().state, MachineState::Paused);
        s.resume(&mut out).unwrap();
        assert!(s.wants_line());
        assert_eq!(writes(&out), vec![vec![FEED_HOLD], vec![CYCLE_START]]);
        assert_eq!(s.resume(&mut out), Err(ControllerError::NotPaused));
    }

    #[test]
    fn refuses_to_start_offline_busy_or_before_a_status() {
        let now = Instant::now();
        let mut s = GrblSession::new(128, Duration::from_secs(1));
        let mut out = Vec::new();
        assert_eq!(s.can_start(), Err(ControllerError::Offline));
        s.connected(now, &mut out);
        assert_eq!(s.can_start(), Err(ControllerError::NotReady));
        s.received(b"<Run|MPos:0,0,0>", now, &mut out);
        assert!(matches!(s.can_start(), Err(ControllerError::Busy(_))));
    }

    #[test]
    fn a_line_longer_than_the_buffer_fails_the_job_instead_of_waiting_forever() {
        let (mut s, now) = session();
        let mut out = Vec::new();
        s.start_job(spec(100), now, &mut out).unwrap();
        assert!(s.offer_line(&"G1".repeat(100), 200, now, &mut out));
        assert!(!s.wants_line());
    }
}
