//! A simulated Marlin printer.
//!
//! As the real one: numbered lines (`N<n> … *<xor>`) are checked: a bad checksum, a missing
//! checksum or a line number out of step gets `Error:…`, `Resend: <last+1>` and `ok`. Lines
//! are executed one by one, each followed by `ok`; homing (`G28`, `G29`) and heat-up waits
//! (`M109`, `M190`) take longer and print `echo:busy: processing` meanwhile. Heaters warm up
//! and cool down; `M105` answers `ok T:… B:…`, `M155 S<n>` auto-reports (unless turned off in
//! the config, then it is an unknown command), `M27` answers `Not SD printing`, `M108` breaks
//! a heat-up wait at once (as the emergency parser does). Tests can corrupt a line number
//! once (the checksum fails), raise a fatal error, or restart the board (`start`).

use std::collections::{HashSet, VecDeque};
use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_serial::SerialStream;

use super::{command, word, Shared, SimTask};
use crate::controller::gcode::marlin_checksum;

const AMBIENT: f64 = 21.0;
/// How often heaters change and busy messages may go out.
const TICK: Duration = Duration::from_millis(50);

#[derive(Debug, Clone)]
pub struct MarlinSimConfig {
    /// How long an ordinary line takes.
    pub line_delay: Duration,
    /// How long `G28`/`G29` take.
    pub long_move: Duration,
    /// Marlin's `busy` interval (2 s on a real printer).
    pub busy_interval: Duration,
    /// Degrees a heater gains or loses per 50 ms tick.
    pub heat_rate: f64,
    /// False: `M155` is an unknown command, the host must poll `M105`.
    pub autoreport: bool,
}

impl Default for MarlinSimConfig {
    fn default() -> Self {
        MarlinSimConfig {
            line_delay: Duration::from_millis(1),
            long_move: Duration::from_millis(300),
            busy_interval: Duration::from_millis(100),
            heat_rate: 25.0,
            autoreport: true,
        }
    }
}

#[derive(Debug, Default)]
struct Record {
    executed: Vec<String>,
    resends: usize,
    busy: usize,
    nozzle_target: f64,
    bed_target: f64,
    fan: f64,
}

enum Control {
    CorruptLine(u32),
    FatalError(String),
    Restart,
}

/// A running simulated printer; dropping it stops it.
pub struct MarlinSim {
    inner: SimTask<Record, Control>,
}

/// Starts the simulator on a new pty (needs a tokio runtime).
pub fn spawn(config: MarlinSimConfig) -> std::io::Result<MarlinSim> {
    let inner = SimTask::spawn(|port, record, control| Printer::new(config, record).run(port, control))?;
    Ok(MarlinSim { inner })
}

impl MarlinSim {
    pub fn path(&self) -> &Path {
        self.inner.path()
    }

    /// The commands executed (without line numbers and checksums), in order.
    pub fn executed(&self) -> Vec<String> {
        self.inner.record.lock().executed.clone()
    }

    /// How many `Resend:` the printer asked for.
    pub fn resends(&self) -> usize {
        self.inner.record.lock().resends
    }

    /// How many `echo:busy` it sent.
    pub fn busy_sent(&self) -> usize {
        self.inner.record.lock().busy
    }

    /// Hotend target, bed target, fan (0-255).
    pub fn heaters(&self) -> (f64, f64, f64) {
        let record = self.inner.record.lock();
        (record.nozzle_target, record.bed_target, record.fan)
    }

    /// The first time line `number` arrives, its checksum "fails" (line noise).
    pub fn corrupt_line(&self, number: u32) {
        self.inner.send(Control::CorruptLine(number));
    }

    /// `Error:<text>` and the printer halts (as after a thermal runaway).
    pub fn fatal_error(&self, text: &str) {
        self.inner.send(Control::FatalError(text.to_string()));
    }

    /// The board restarts and says `start`.
    pub fn restart(&self) {
        self.inner.send(Control::Restart);
    }
}

/// A command being executed.
struct Running {
    command: String,
    /// `None`: waits for `heater` instead of the clock.
    done_at: Option<Instant>,
    heater: Option<Heater>,
    next_busy: Instant,
}

#[derive(Clone, Copy, PartialEq)]
enum Heater {
    Nozzle,
    Bed,
}

struct Printer {
    config: MarlinSimConfig,
    record: Shared<Record>,
    partial: Vec<u8>,
    queue: VecDeque<String>,
    running: Option<Running>,
    last_line: u32,
    corrupt: HashSet<u32>,
    halted: bool,
    nozzle: f64,
    bed: f64,
    autoreport: Option<Duration>,
    next_report: Instant,
    output: Vec<u8>,
}

impl Printer {
    fn new(config: MarlinSimConfig, record: Shared<Record>) -> Self {
        Printer {
            config,
            record,
            partial: Vec::new(),
            queue: VecDeque::new(),
            running: None,
            last_line: 0,
            corrupt: HashSet::new(),
            halted: false,
            nozzle: AMBIENT,
            bed: AMBIENT,
            autoreport: None,
            next_report: Instant::now(),
            output: Vec::new(),
        }
    }

    async fn run(mut self, mut port: SerialStream, mut control: mpsc::UnboundedReceiver<Control>) {
        let mut buffer = [0u8; 256];
        let mut tick = tokio::time::interval(TICK);
        loop {
            let done_at = self.running.as_ref().and_then(|r| r.done_at);
            tokio::select! {
                read = port.read(&mut buffer) => match read {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buffer[..n].iter().for_each(|&b| self.byte(b)),
                },
                _ = tokio::time::sleep_until(done_at.unwrap_or_else(Instant::now)), if done_at.is_some() => self.finish(),
                _ = tick.tick() => self.tick(),
                Some(control) = control.recv() => self.control(control),
            }
            while self.running.is_none() && !self.halted {
                let Some(line) = self.queue.pop_front() else { break };
                self.accept(&line);
            }
            if !self.output.is_empty() {
                let output = std::mem::take(&mut self.output);
                if port.write_all(&output).await.is_err() {
                    return;
                }
            }
        }
    }

    fn say(&mut self, text: &str) {
        self.output.extend_from_slice(text.as_bytes());
        self.output.extend_from_slice(b"\n");
    }

    fn byte(&mut self, byte: u8) {
        if byte != b'\n' {
            self.partial.push(byte);
            return;
        }
        let line = String::from_utf8_lossy(&std::mem::take(&mut self.partial)).trim().to_string();
        // The emergency parser acts on M108 as it arrives, not when its turn comes.
        if line.contains("M108") {
            if let Some(running) = self.running.as_mut().filter(|r| r.done_at.is_none()) {
                running.done_at = Some(Instant::now());
            }
        }
        if !line.is_empty() {
            self.queue.push_back(line);
        }
    }

    fn control(&mut self, control: Control) {
        match control {
            Control::CorruptLine(number) => {
                self.corrupt.insert(number);
            }
            Control::FatalError(text) => {
                self.say(&format!("Error:{text}"));
                self.say("Error:Printer halted. kill() called!");
                self.halted = true;
                self.queue.clear();
                self.running = None;
            }
            Control::Restart => {
                self.halted = false;
                self.queue.clear();
                self.running = None;
                self.last_line = 0;
                self.autoreport = None;
                self.set_targets(Some(0.0), Some(0.0));
                self.say("start");
                self.say("echo:Marlin 2.1.2.4");
            }
        }
    }

    fn resend(&mut self, error: &str) {
        self.record.lock().resends += 1;
        let last = self.last_line;
        self.say(&format!("Error:{error}, Last Line: {last}"));
        self.say(&format!("Resend: {}", last + 1));
        self.say("ok");
    }

    /// Checks a line's number and checksum; executes it or asks for a resend.
    fn accept(&mut self, line: &str) {
        let Some(numbered) = line.strip_prefix('N') else {
            return self.execute(line.to_string());
        };
        let Some((body, checksum)) = numbered.rsplit_once('*') else {
            return self.resend("No Checksum with line number");
        };
        let (number, command) = body.split_once(' ').unwrap_or((body, ""));
        let number: u32 = number.parse().unwrap_or(u32::MAX);
        let corrupted = self.corrupt.remove(&number);
        if corrupted || checksum.trim().parse::<u8>().ok() != Some(marlin_checksum(&format!("N{body}"))) {
            return self.resend("checksum mismatch");
        }
        let command = command.trim().to_string();
        if command.starts_with("M110") {
            self.last_line = word(&command, 'N').map(|n| n as u32).unwrap_or(number);
        } else if number != self.last_line.wrapping_add(1) {
            return self.resend("Line Number is not Last Line Number+1");
        } else {
            self.last_line = number;
        }
        self.execute(command);
    }

    fn execute(&mut self, line: String) {
        let now = Instant::now();
        let mut done_at = Some(now + self.config.line_delay);
        let mut heater = None;
        match command(&line).as_str() {
            "G28" | "G29" => done_at = Some(now + self.config.long_move),
            "M104" => self.set_targets(word(&line, 'S'), None),
            "M140" => self.set_targets(None, word(&line, 'S')),
            "M109" => {
                self.set_targets(word(&line, 'S'), None);
                (done_at, heater) = (None, Some(Heater::Nozzle));
            }
            "M190" => {
                self.set_targets(None, word(&line, 'S'));
                (done_at, heater) = (None, Some(Heater::Bed));
            }
            "M106" => self.record.lock().fan = word(&line, 'S').unwrap_or(255.0),
            "M107" => self.record.lock().fan = 0.0,
            "M105" => done_at = Some(now),
            "M155" if !self.config.autoreport => self.say(&format!("echo:Unknown command: \"{line}\"")),
            "M155" => {
                let seconds = word(&line, 'S').unwrap_or(0.0);
                self.autoreport = (seconds > 0.0).then(|| Duration::from_secs_f64(seconds));
                self.next_report = now;
            }
            "M27" => self.say("Not SD printing"),
            _ => {}
        }
        self.running = Some(Running { command: line, done_at, heater, next_busy: now + self.config.busy_interval });
    }

    fn finish(&mut self) {
        let Some(running) = self.running.take() else { return };
        if command(&running.command) == "M105" {
            let temps = self.temperatures();
            self.say(&format!("ok {temps}"));
        } else {
            self.say("ok");
        }
        self.record.lock().executed.push(running.command);
    }

    fn set_targets(&mut self, nozzle: Option<f64>, bed: Option<f64>) {
        let mut record = self.record.lock();
        if let Some(nozzle) = nozzle {
            record.nozzle_target = nozzle;
        }
        if let Some(bed) = bed {
            record.bed_target = bed;
        }
    }

    fn temperatures(&self) -> String {
        let record = self.record.lock();
        format!(
            "T:{:.2} /{:.2} B:{:.2} /{:.2} @:0 B@:0",
            self.nozzle, record.nozzle_target, self.bed, record.bed_target
        )
    }

    fn tick(&mut self) {
        let now = Instant::now();
        let (nozzle_target, bed_target, _) = {
            let r = self.record.lock();
            (r.nozzle_target, r.bed_target, r.fan)
        };
        let rate = self.config.heat_rate;
        let approach = |current: f64, target: f64| {
            let goal = target.max(AMBIENT);
            current + (goal - current).clamp(-rate, rate)
        };
        self.nozzle = approach(self.nozzle, nozzle_target);
        self.bed = approach(self.bed, bed_target);
        if let Some(interval) = self.autoreport.filter(|_| now >= self.next_report && !self.halted) {
            self.next_report = now + interval;
            let temps = self.temperatures();
            self.say(&format!(" {temps}"));
        }
        let reached = |current: f64, target: f64| (current - target.max(AMBIENT)).abs() < 1.0;
        let (nozzle_reached, bed_reached) = (reached(self.nozzle, nozzle_target), reached(self.bed, bed_target));
        let Some(running) = self.running.as_mut() else { return };
        let heated = match running.heater {
            Some(Heater::Nozzle) => nozzle_reached,
            Some(Heater::Bed) => bed_reached,
            None => false,
        };
        if running.done_at.is_none() && heated {
            running.done_at = Some(now);
        }
        if now >= running.next_busy {
            running.next_busy = now + self.config.busy_interval;
            self.record.lock().busy += 1;
            self.say("echo:busy: processing");
        }
    }
}
