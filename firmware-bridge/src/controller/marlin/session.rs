//! Marlin streaming as a state machine without I/O.
//!
//! Every line the bridge sends is numbered and checksummed (`N<n> <line>*<xor>`), starting
//! with `N0 M110 N0` (line numbers restart at 0), and waits for its `ok` before the next goes:
//! one line in flight, as OctoPrint and Pronterface do by default. That keeps resends simple
//! (Marlin answers each bad line with `Error:…`, `Resend: N` and an `ok` that acknowledges
//! nothing) at a small cost in speed over a serial line. The lines sent are kept (a bounded
//! history) so a `Resend: N` sends N and everything after it again.
//!
//! `echo:busy: processing` says a long command (G28, M109) still runs: it restarts the
//! `response_timeout`. Temperatures come from `M155 S<n>` auto-reports; a printer that does
//! not auto-report (no temperature line in three intervals, or `Unknown command` for M155)
//! is polled with `M105` on each tick instead, through the same numbered flow.
//!
//! Pause stops sending; the printer finishes the line in flight and waits with its heaters
//! on, so resume continues where it stopped. (`M25` pauses an SD-card print, not a host
//! stream, so it is not sent.) Cancel stops sending, sends `M108` at once when a line is in
//! flight (it breaks an `M109`/`M190` heat-up wait), then `M104 S0` and `M140 S0` (heaters off)
//! and `M107` (fan off); the job ends when the printer acknowledged them. At the end of the
//! file the bridge sends `M400` (wait for the moves to finish) and the job finishes on its `ok`.
//!
//! A `start` line is a printer reset: numbering starts over and a running job fails. An
//! `Error:` that is not about line numbers or checksums (thermal runaway, `kill()`) is an
//! alarm: the job fails and the printer is in error until it restarts.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::parse::{parse_line, parse_m73, MarlinLine, ProgressHint, TempReport};
use crate::controller::error::ControllerError;
use crate::controller::gcode::{clean_line, marlin_numbered};
use crate::controller::session::{self, check_can_start, Action, JobSpec, Outcome, Session};
use crate::controller::telemetry::{ControllerEvent, MachineState, Telemetry, Temps};

/// Lines in flight at once (see the module documentation).
const WINDOW: usize = 1;
/// Lines kept for resends; Marlin only asks for the last few.
const HISTORY: usize = 64;

#[derive(Debug, Clone)]
struct Numbered {
    number: u32,
    /// The line as sent, with number, checksum and newline.
    wire: Vec<u8>,
    /// The command without number and checksum.
    command: String,
    /// The file position after this line; `None` for the bridge's own commands.
    end_offset: Option<u64>,
    hint: Option<ProgressHint>,
}

/// Marlin's stop has no steps of its own: it waits for the queued commands' answers.
type Job = session::Job<()>;
type Stage = session::Stage<()>;

#[derive(Debug, Clone, Copy, PartialEq)]
enum AutoReport {
    /// `M155` sent at `since`; no report yet.
    Unknown {
        since: Instant,
    },
    Working,
    /// Poll with `M105`.
    Unsupported,
}

/// Marlin's side of a connection.
#[derive(Debug)]
pub struct MarlinSession {
    response_timeout: Duration,
    temperature_interval: Duration,
    connected: bool,
    /// `M110 N0` was acknowledged: numbering is in step with the printer.
    ready: bool,
    next_number: u32,
    history: VecDeque<Numbered>,
    in_flight: VecDeque<Numbered>,
    /// The bridge's own commands, sent before job lines.
    host_queue: VecDeque<String>,
    resend_queue: VecDeque<Numbered>,
    /// `ok`s that acknowledge nothing (the one after each `Resend:`).
    swallow_oks: u32,
    /// When the printer was last heard while a line was in flight (for `response_timeout`).
    waiting_since: Instant,
    autoreport: AutoReport,
    temps: Temps,
    /// A fatal `Error:` until the printer restarts.
    fault: Option<String>,
    /// `SD printing byte a/b` with a < b: the printer prints from its own card.
    sd_printing: bool,
    job: Option<Job>,
}

impl MarlinSession {
    /// `response_timeout`: how long a line may wait for its `ok` with no sign of life (busy
    /// messages restart it). `temperature_interval`: the auto-report interval (whole seconds).
    pub fn new(response_timeout: Duration, temperature_interval: Duration, now: Instant) -> Self {
        MarlinSession {
            response_timeout,
            temperature_interval: temperature_interval.max(Duration::from_secs(1)),
            connected: false,
            ready: false,
            next_number: 0,
            history: VecDeque::new(),
            in_flight: VecDeque::new(),
            host_queue: VecDeque::new(),
            resend_queue: VecDeque::new(),
            swallow_oks: 0,
            waiting_since: now,
            autoreport: AutoReport::Unsupported,
            temps: Temps::default(),
            fault: None,
            sd_printing: false,
            job: None,
        }
    }

    /// Starts numbering over: `M110 N0`, then the temperature auto-report.
    fn initialize(&mut self, now: Instant, out: &mut Vec<Action>) {
        self.ready = false;
        self.next_number = 0;
        self.history.clear();
        self.in_flight.clear();
        self.resend_queue.clear();
        self.host_queue.clear();
        self.swallow_oks = 0;
        self.host_queue.push_back("M110 N0".into());
        self.host_queue.push_back(format!("M155 S{}", self.temperature_interval.as_secs()));
        self.autoreport = AutoReport::Unknown { since: now };
        self.pump(now, out);
    }

    fn idle_flow(&self) -> bool {
        self.in_flight.is_empty() && self.resend_queue.is_empty() && self.host_queue.is_empty() && self.swallow_oks == 0
    }

    fn send(
        &mut self,
        command: &str,
        end_offset: Option<u64>,
        hint: Option<ProgressHint>,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        let mut wire = marlin_numbered(self.next_number, command).into_bytes();
        wire.push(b'\n');
        let line = Numbered { number: self.next_number, wire, command: command.to_string(), end_offset, hint };
        self.next_number = self.next_number.wrapping_add(1);
        if self.history.len() == HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(line.clone());
        self.transmit(line, now, out);
    }

    fn transmit(&mut self, line: Numbered, now: Instant, out: &mut Vec<Action>) {
        if self.in_flight.is_empty() {
            self.waiting_since = now;
        }
        out.push(Action::Write(line.wire.clone()));
        self.in_flight.push_back(line);
    }

    /// Sends resends, then the bridge's commands, while the window has room.
    fn pump(&mut self, now: Instant, out: &mut Vec<Action>) {
        while self.connected && self.swallow_oks == 0 && self.in_flight.len() < WINDOW {
            if let Some(line) = self.resend_queue.pop_front() {
                self.transmit(line, now, out);
            } else if let Some(command) = self.host_queue.pop_front() {
                self.send(&command, None, None, now, out);
            } else {
                break;
            }
        }
        self.maybe_end_job(out);
    }

    fn maybe_end_job(&mut self, out: &mut Vec<Action>) {
        if !self.idle_flow() {
            return;
        }
        let outcome = match self.job.as_ref().map(|j| &j.stage) {
            Some(Stage::Draining) => None,
            Some(Stage::Stopping { outcome, .. }) => Some(outcome.clone()),
            _ => return,
        };
        self.end_job(outcome, out);
    }

    fn end_job(&mut self, outcome: Option<Outcome>, out: &mut Vec<Action>) {
        if let Some(job) = self.job.take() {
            job.end(outcome, out);
        }
    }

    fn acknowledged(&mut self, now: Instant, out: &mut Vec<Action>) {
        if self.swallow_oks > 0 {
            self.swallow_oks -= 1;
        } else if let Some(line) = self.in_flight.pop_front() {
            if line.number == 0 && line.command.starts_with("M110") {
                self.ready = true;
            }
            if let Some(job) = self.job.as_mut() {
                if let Some(hint) = line.hint {
                    job.progress.hint(hint.percent, hint.remaining_minutes.map(|m| m.saturating_mul(60)), out);
                }
                if let Some(offset) = line.end_offset {
                    job.progress.acknowledged(offset, out);
                }
            }
        }
        self.waiting_since = now;
        self.pump(now, out);
    }

    fn resend(&mut self, number: u32, now: Instant, out: &mut Vec<Action>) {
        let Some(first) = self.history.iter().position(|l| l.number == number) else {
            tracing::warn!(number, "printer asked for a line the bridge no longer has; renumbering");
            if self.job.is_some() {
                self.end_job(
                    Some(Outcome::Failed(format!("the printer asked to resend line {number}, which is gone"))),
                    out,
                );
            }
            self.initialize(now, out);
            return;
        };
        tracing::info!(number, "printer asked for a resend");
        self.resend_queue = self.history.iter().skip(first).cloned().collect();
        self.in_flight.clear();
        self.swallow_oks += 1;
    }

    /// Ends a job by stopping to send and turning heaters and fan off.
    fn make_safe(&mut self, outcome: Outcome, now: Instant, out: &mut Vec<Action>) {
        let Some(job) = self.job.as_mut() else { return };
        job.stage = Stage::Stopping { outcome, step: () };
        self.host_queue.clear();
        if !self.in_flight.is_empty() {
            // Past the window on purpose: it must reach the printer while a heat-up blocks.
            self.send("M108", None, None, now, out);
        }
        self.host_queue.extend(["M104 S0", "M140 S0", "M107"].map(String::from));
        self.pump(now, out);
    }

    fn update_temps(&mut self, report: TempReport) {
        let temps = &mut self.temps;
        for (field, value) in [
            (&mut temps.nozzle, report.nozzle),
            (&mut temps.nozzle_target, report.nozzle_target),
            (&mut temps.bed, report.bed),
            (&mut temps.bed_target, report.bed_target),
            (&mut temps.chamber, report.chamber),
        ] {
            if value.is_some() {
                *field = value;
            }
        }
    }
}

impl Session for MarlinSession {
    fn connected(&mut self, now: Instant, out: &mut Vec<Action>) {
        self.connected = true;
        self.fault = None;
        self.initialize(now, out);
    }

    fn disconnected(&mut self, reason: &str, out: &mut Vec<Action>) {
        self.connected = false;
        self.ready = false;
        self.in_flight.clear();
        self.resend_queue.clear();
        self.host_queue.clear();
        if self.job.is_some() {
            self.end_job(Some(Outcome::Failed(format!("serial port lost: {reason}"))), out);
        }
    }

    fn received(&mut self, line: &[u8], now: Instant, out: &mut Vec<Action>) {
        if !self.in_flight.is_empty() {
            self.waiting_since = now;
        }
        match parse_line(line) {
            MarlinLine::Ok { temps, .. } => {
                if let Some(temps) = temps {
                    self.update_temps(temps);
                }
                self.acknowledged(now, out);
            }
            MarlinLine::Temperatures(temps) => {
                self.update_temps(temps);
                if matches!(self.autoreport, AutoReport::Unknown { .. }) {
                    self.autoreport = AutoReport::Working;
                }
            }
            MarlinLine::Busy(what) => tracing::debug!(%what, "printer busy"),
            MarlinLine::Resend { line } => self.resend(line, now, out),
            MarlinLine::Error { text, communication: true } => tracing::debug!(%text, "printer saw a bad line"),
            MarlinLine::Error { text, communication: false } => {
                tracing::warn!(%text, "printer error");
                out.push(Action::Event(ControllerEvent::Alarm { code: "Error".into(), text: text.clone() }));
                self.fault = Some(text.clone());
                if self.job.is_some() {
                    self.end_job(Some(Outcome::Failed(format!("Error:{text}"))), out);
                }
                self.host_queue.clear();
                self.resend_queue.clear();
            }
            MarlinLine::SdProgress { done, total } => self.sd_printing = done < total,
            MarlinLine::NotSdPrinting => self.sd_printing = false,
            MarlinLine::Start => {
                tracing::info!("printer (re)started");
                self.fault = None;
                if self.job.is_some() {
                    self.end_job(Some(Outcome::Failed("the printer reset during the job ('start' seen)".into())), out);
                }
                self.initialize(now, out);
            }
            MarlinLine::Echo(text) => {
                if text.contains("Unknown command") && text.contains("M155") {
                    self.autoreport = AutoReport::Unsupported;
                }
                tracing::debug!(%text, "printer echo");
            }
            MarlinLine::Other(text) => tracing::debug!(%text, "printer said"),
        }
    }

    fn tick(&mut self, now: Instant, out: &mut Vec<Action>) {
        if !self.connected {
            return;
        }
        if !self.in_flight.is_empty() && now.duration_since(self.waiting_since) > self.response_timeout {
            let reason = format!("no answer from the printer for {:?}", self.response_timeout);
            tracing::warn!(%reason);
            if self.job.is_some() {
                self.end_job(Some(Outcome::Failed(reason)), out);
            }
            self.initialize(now, out);
            return;
        }
        if let AutoReport::Unknown { since } = self.autoreport {
            if now.duration_since(since) > self.temperature_interval * 3 {
                tracing::info!("no temperature auto-report; polling M105");
                self.autoreport = AutoReport::Unsupported;
            }
        }
        let polled = self.host_queue.iter().chain(self.in_flight.iter().map(|l| &l.command)).any(|c| c == "M105");
        if self.autoreport == AutoReport::Unsupported && self.ready && !polled {
            self.host_queue.push_back("M105".into());
            self.pump(now, out);
        }
    }

    fn can_start(&self) -> Result<(), ControllerError> {
        check_can_start(self.connected, self.job.as_ref(), self.fault.as_ref())?;
        if self.sd_printing {
            return Err(ControllerError::Busy("the printer prints from its SD card".into()));
        }
        if !self.ready {
            return Err(ControllerError::NotReady);
        }
        Ok(())
    }

    fn start_job(&mut self, job: JobSpec, _now: Instant, out: &mut Vec<Action>) -> Result<(), ControllerError> {
        self.can_start()?;
        self.job = Some(Job::start(job, out));
        Ok(())
    }

    fn pause(&mut self, out: &mut Vec<Action>) -> Result<(), ControllerError> {
        self.job.as_mut().ok_or(ControllerError::NoJob)?.pause(out)?;
        Ok(())
    }

    fn resume(&mut self, out: &mut Vec<Action>) -> Result<(), ControllerError> {
        self.job.as_mut().ok_or(ControllerError::NoJob)?.resume(out)?;
        self.maybe_end_job(out);
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
        clean_line(raw, false)
    }

    fn offer_line(&mut self, line: &str, end_offset: u64, now: Instant, out: &mut Vec<Action>) -> bool {
        if !self.connected || !self.idle_flow() {
            return false;
        }
        self.send(line, Some(end_offset), parse_m73(line), now, out);
        true
    }

    fn file_ended(&mut self, now: Instant, out: &mut Vec<Action>) {
        if let Some(job) = self.job.as_mut() {
            if matches!(job.stage, Stage::Streaming) {
                job.stage = Stage::Draining;
                self.host_queue.push_back("M400".into());
                self.pump(now, out);
            }
        }
    }

    fn telemetry(&self) -> Telemetry {
        let idle = if self.sd_printing { MachineState::Running } else { MachineState::Idle };
        // Until numbering is set up (`M110` answered) the printer takes no job: offline.
        session::telemetry(
            self.connected && self.ready,
            self.fault.is_some(),
            self.job.as_ref(),
            idle,
            self.temps.clone(),
        )
    }

    fn job_running(&self) -> bool {
        self.job.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::telemetry::JobEvent;

    fn writes(out: &[Action]) -> Vec<String> {
        out.iter()
            .filter_map(|a| {
                if let Action::Write(b) = a {
                    Some(String::from_utf8_lossy(b).trim_end().to_string())
                } else {
                    None
                }
            })
            .collect()
    }

    fn job_events(out: &[Action]) -> Vec<JobEvent> {
        out.iter()
            .filter_map(|a| if let Action::Event(ControllerEvent::Job(e)) = a { Some(e.clone()) } else { None })
            .collect()
    }

    /// A connected session with numbering and auto-report set up (lines 0 and 1 answered).
    fn ready() -> (MarlinSession, Instant, Vec<Action>) {
        let now = Instant::now();
        let mut s = MarlinSession::new(Duration::from_secs(5), Duration::from_secs(2), now);
        let mut out = Vec::new();
        s.connected(now, &mut out);
        assert_eq!(writes(&out), vec!["N0 M110 N0*125"]);
        s.received(b"ok", now, &mut out);
        assert_eq!(writes(&out)[1], marlin_numbered(1, "M155 S2"));
        s.received(b"ok", now, &mut out);
        s.received(b" T:21.0 /0.0 B:20.5 /0.0 @:0 B@:0", now, &mut out);
        out.clear();
        (s, now, out)
    }

    fn spec() -> JobSpec {
        JobSpec { id: "p1".into(), file: "benchy.gcode".into(), total_bytes: 100 }
    }

    #[test]
    fn streams_one_numbered_line_at_a_time_and_finishes_after_m400() {
        let (mut s, now, mut out) = ready();
        s.start_job(spec(), now, &mut out).unwrap();
        assert!(s.offer_line("G28", 10, now, &mut out));
        assert!(!s.offer_line("G1 X1", 20, now, &mut out), "one line in flight");
        s.received(b"ok", now, &mut out);
        assert!(s.offer_line("G1 X1", 100, now, &mut out));
        s.file_ended(now, &mut out);
        s.received(b"ok", now, &mut out);
        assert!(s.job_running(), "M400 not acknowledged yet");
        s.received(b"ok", now, &mut out);
        assert!(!s.job_running());
        assert_eq!(
            writes(&out),
            vec![marlin_numbered(2, "G28"), marlin_numbered(3, "G1 X1"), marlin_numbered(4, "M400")]
        );
        assert_eq!(job_events(&out).last(), Some(&JobEvent::Finished));
    }

    #[test]
    fn resends_from_the_asked_line_and_ignores_the_ok_after_the_request() {
        let (mut s, now, mut out) = ready();
        s.start_job(spec(), now, &mut out).unwrap();
        assert!(s.offer_line("G1 X1", 10, now, &mut out));
        s.received(b"Error:checksum mismatch, Last Line: 1", now, &mut out);
        s.received(b"Resend: 2", now, &mut out);
        s.received(b"ok", now, &mut out);
        assert_eq!(writes(&out), vec![marlin_numbered(2, "G1 X1"), marlin_numbered(2, "G1 X1")]);
        assert!(!s.offer_line("G1 X2", 20, now, &mut out), "the resent line is in flight");
        s.received(b"ok", now, &mut out);
        assert!(s.offer_line("G1 X2", 20, now, &mut out));
        assert_eq!(writes(&out)[2], marlin_numbered(3, "G1 X2"));
        assert!(out.iter().all(|a| !matches!(a, Action::Event(ControllerEvent::Alarm { .. }))));
    }

    #[test]
    fn busy_messages_keep_the_line_alive_past_the_timeout() {
        let (mut s, now, mut out) = ready();
        s.start_job(spec(), now, &mut out).unwrap();
        assert!(s.offer_line("G28", 10, now, &mut out));
        for second in 1..=12 {
            let t = now + Duration::from_secs(second);
            s.received(b"echo:busy: processing", t, &mut out);
            s.tick(t, &mut out);
        }
        assert!(s.job_running());
        s.tick(now + Duration::from_secs(18), &mut out);
        assert!(matches!(job_events(&out).last(), Some(JobEvent::Failed { reason }) if reason.contains("no answer")));
    }

    #[test]
    fn temperatures_come_from_auto_reports_and_ok_answers() {
        let (mut s, now, mut out) = ready();
        assert_eq!(s.telemetry().temps.nozzle, Some(21.0));
        s.received(b"T:180.0 /210.0 B:55.0 /60.0 @:127 B@:80", now, &mut out);
        let temps = s.telemetry().temps;
        assert_eq!(
            (temps.nozzle, temps.nozzle_target, temps.bed, temps.bed_target),
            (Some(180.0), Some(210.0), Some(55.0), Some(60.0))
        );
    }

    #[test]
    fn polls_m105_when_the_printer_does_not_auto_report() {
        let now = Instant::now();
        let mut s = MarlinSession::new(Duration::from_secs(5), Duration::from_secs(1), now);
        let mut out = Vec::new();
        s.connected(now, &mut out);
        s.received(b"ok", now, &mut out);
        s.received(b"echo:Unknown command: \"M155 S1\"", now, &mut out);
        s.received(b"ok", now, &mut out);
        out.clear();
        s.tick(now, &mut out);
        assert_eq!(writes(&out), vec![marlin_numbered(2, "M105")]);
        s.tick(now, &mut out);
        assert_eq!(writes(&out).len(), 1, "one poll at a time");
        s.received(b"ok T:200.0 /200.0 B:60.0 /60.0 @:0 B@:0", now, &mut out);
        assert_eq!(s.telemetry().temps.nozzle, Some(200.0));
    }

    #[test]
    fn cancel_breaks_a_heat_up_then_turns_heaters_and_fan_off() {
        let (mut s, now, mut out) = ready();
        s.start_job(spec(), now, &mut out).unwrap();
        assert!(s.offer_line("M109 S210", 10, now, &mut out));
        s.cancel(now, &mut out).unwrap();
        assert!(!s.wants_line());
        for _ in 0..4 {
            s.received(b"ok", now, &mut out);
        }
        assert!(s.job_running(), "M107 still in flight");
        s.received(b"ok", now, &mut out);
        assert!(!s.job_running());
        let sent: Vec<String> = writes(&out);
        assert_eq!(
            sent,
            ["M109 S210", "M108", "M104 S0", "M140 S0", "M107"]
                .iter()
                .enumerate()
                .map(|(i, c)| marlin_numbered(2 + i as u32, c))
                .collect::<Vec<_>>()
        );
        assert_eq!(job_events(&out).last(), Some(&JobEvent::Cancelled));
    }

    #[test]
    fn a_fatal_error_is_an_alarm_and_a_start_is_a_reset() {
        let (mut s, now, mut out) = ready();
        s.start_job(spec(), now, &mut out).unwrap();
        s.received(b"Error:Thermal Runaway, system stopped! Heater_ID: 0", now, &mut out);
        assert!(out.contains(&Action::Event(ControllerEvent::Alarm {
            code: "Error".into(),
            text: "Thermal Runaway, system stopped! Heater_ID: 0".into()
        })));
        assert!(matches!(job_events(&out).last(), Some(JobEvent::Failed { .. })));
        assert_eq!(s.telemetry().state, MachineState::Error);
        assert!(matches!(s.can_start(), Err(ControllerError::Alarm(_))));
        s.received(b"start", now, &mut out);
        assert_eq!(s.telemetry().state, MachineState::Offline, "not ready before numbering starts over");
        assert_eq!(s.can_start(), Err(ControllerError::NotReady));
        s.received(b"ok", now, &mut out);
        assert_eq!(s.telemetry().state, MachineState::Idle);
        assert_eq!(s.can_start(), Ok(()));
    }

    #[test]
    fn progress_follows_m73_lines_when_the_file_has_them() {
        let (mut s, now, mut out) = ready();
        s.start_job(JobSpec { id: "p".into(), file: "f".into(), total_bytes: 1000 }, now, &mut out).unwrap();
        assert!(s.offer_line("M73 P40 R12", 12, now, &mut out));
        s.received(b"ok", now, &mut out);
        let job = s.telemetry().job.unwrap();
        assert_eq!((job.progress, job.remaining_s), (40.0, Some(720)));
    }
}
