//! A simulated GRBL 1.1 controller.
//!
//! As the real one: a 128-byte serial RX buffer (a byte that arrives when it is full is lost,
//! and here recorded as an overflow), one `ok` per line after it "executes" (a configurable
//! delay), real-time `?` (status report with MPos, Bf and FS), `!` (feed hold, reported as
//! `Hold:0`), `~` (resume), 0x9E (spindle stop, in a hold only) and 0x18 (soft reset: buffers
//! flushed, spindle off, the welcome banner again). In alarm, G-code lines get `error:9`
//! until `$X`. Tests can inject an alarm or an unasked reset.

use std::collections::VecDeque;
use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_serial::SerialStream;

use super::{command, word, Shared, SimTask};

const BANNER: &str = "\r\nGrbl 1.1h ['$' for help]\r\n";

#[derive(Debug, Clone)]
pub struct GrblSimConfig {
    pub rx_buffer: usize,
    /// How long each line takes to execute.
    pub line_delay: Duration,
}

impl Default for GrblSimConfig {
    fn default() -> Self {
        GrblSimConfig { rx_buffer: 128, line_delay: Duration::from_millis(1) }
    }
}

/// What the simulator saw, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum GrblSimEvent {
    Executed(String),
    FeedHold,
    CycleStart,
    SpindleStop,
    /// A soft reset (0x18); `spindle_on` says whether the spindle or laser was still on.
    Reset {
        spindle_on: bool,
    },
    /// A byte arrived with the RX buffer full.
    Overflow,
}

#[derive(Debug, Default)]
struct Record {
    log: Vec<GrblSimEvent>,
    max_rx_used: usize,
    status_queries: usize,
    spindle_on: bool,
}

enum Control {
    Alarm(u16),
    PowerCycle,
}

/// A running simulated GRBL; dropping it stops it.
pub struct GrblSim {
    inner: SimTask<Record, Control>,
}

/// Starts the simulator on a new pty (needs a tokio runtime).
pub fn spawn(config: GrblSimConfig) -> std::io::Result<GrblSim> {
    let inner = SimTask::spawn(|port, record, control| Machine::new(config, record).run(port, control))?;
    Ok(GrblSim { inner })
}

impl GrblSim {
    /// The device path to open, as `/dev/ttyUSB0` would be.
    pub fn path(&self) -> &Path {
        self.inner.path()
    }

    /// The lines executed, in order.
    pub fn executed(&self) -> Vec<String> {
        self.log()
            .into_iter()
            .filter_map(|e| if let GrblSimEvent::Executed(line) = e { Some(line) } else { None })
            .collect()
    }

    pub fn log(&self) -> Vec<GrblSimEvent> {
        self.inner.record.lock().log.clone()
    }

    pub fn overflowed(&self) -> bool {
        self.log().contains(&GrblSimEvent::Overflow)
    }

    /// The most bytes the RX buffer ever held.
    pub fn max_rx_used(&self) -> usize {
        self.inner.record.lock().max_rx_used
    }

    /// How many `?` arrived.
    pub fn status_queries(&self) -> usize {
        self.inner.record.lock().status_queries
    }

    pub fn spindle_on(&self) -> bool {
        self.inner.record.lock().spindle_on
    }

    /// GRBL raises `ALARM:code` (a hard limit, say): it stops and flushes its buffer.
    pub fn inject_alarm(&self, code: u16) {
        self.inner.send(Control::Alarm(code));
    }

    /// The board resets on its own (a brown-out): buffers lost, the banner again.
    pub fn power_cycle(&self) {
        self.inner.send(Control::PowerCycle);
    }
}

struct Machine {
    config: GrblSimConfig,
    record: Shared<Record>,
    rx: VecDeque<u8>,
    executing: Option<(String, Instant)>,
    hold: bool,
    alarm: bool,
    position: [f64; 3],
    feed: f64,
    speed: f64,
    output: Vec<u8>,
}

impl Machine {
    fn new(config: GrblSimConfig, record: Shared<Record>) -> Self {
        Machine {
            config,
            record,
            rx: VecDeque::new(),
            executing: None,
            hold: false,
            alarm: false,
            position: [0.0; 3],
            feed: 0.0,
            speed: 0.0,
            output: Vec::new(),
        }
    }

    async fn run(mut self, mut port: SerialStream, mut control: mpsc::UnboundedReceiver<Control>) {
        let mut buffer = [0u8; 256];
        loop {
            let deadline = self.executing.as_ref().filter(|_| !self.hold).map(|(_, at)| *at);
            tokio::select! {
                read = port.read(&mut buffer) => match read {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buffer[..n].iter().for_each(|&b| self.byte(b)),
                },
                _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => self.finish_line(),
                Some(control) = control.recv() => match control {
                    Control::Alarm(code) => {
                        self.flush();
                        self.alarm = true;
                        self.say(&format!("ALARM:{code}\r\n[MSG:Reset to continue]\r\n"));
                    }
                    Control::PowerCycle => {
                        self.flush();
                        self.say(BANNER);
                    }
                },
            }
            self.start_next_line();
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
    }

    fn log(&self, event: GrblSimEvent) {
        self.record.lock().log.push(event);
    }

    fn set_spindle(&self, on: bool) {
        self.record.lock().spindle_on = on;
    }

    /// What a reset and an alarm share: buffers flushed, motion and spindle stopped.
    fn flush(&mut self) {
        self.rx.clear();
        self.executing = None;
        self.hold = false;
        self.set_spindle(false);
    }

    fn byte(&mut self, byte: u8) {
        match byte {
            b'?' => {
                self.record.lock().status_queries += 1;
                let report = self.status();
                self.say(&report);
            }
            b'!' => {
                if self.executing.is_some() || self.rx.contains(&b'\n') {
                    self.hold = true;
                }
                self.log(GrblSimEvent::FeedHold);
            }
            b'~' => {
                self.hold = false;
                self.log(GrblSimEvent::CycleStart);
            }
            0x18 => {
                let spindle_on = self.record.lock().spindle_on;
                self.log(GrblSimEvent::Reset { spindle_on });
                self.flush();
                self.say(BANNER);
            }
            0x9E => {
                if self.hold {
                    self.set_spindle(false);
                    self.log(GrblSimEvent::SpindleStop);
                }
            }
            b'\r' => {}
            b if b >= 0x80 => {}
            b => {
                if self.rx.len() >= self.config.rx_buffer {
                    self.log(GrblSimEvent::Overflow);
                    return;
                }
                self.rx.push_back(b);
                let used = self.rx.len();
                let mut record = self.record.lock();
                record.max_rx_used = record.max_rx_used.max(used);
            }
        }
    }

    fn status(&self) -> String {
        let state = if self.alarm {
            "Alarm"
        } else if self.hold {
            "Hold:0"
        } else if self.executing.is_some() || self.rx.contains(&b'\n') {
            "Run"
        } else {
            "Idle"
        };
        let [x, y, z] = self.position;
        let free = self.config.rx_buffer.saturating_sub(self.rx.len());
        let speed = if self.record.lock().spindle_on { self.speed } else { 0.0 };
        format!("<{state}|MPos:{x:.3},{y:.3},{z:.3}|Bf:15,{free}|FS:{:.0},{speed:.0}>\r\n", self.feed)
    }

    fn start_next_line(&mut self) {
        while self.executing.is_none() && !self.hold {
            let Some(end) = self.rx.iter().position(|&b| b == b'\n') else { return };
            let bytes: Vec<u8> = self.rx.drain(..=end).collect();
            let line = String::from_utf8_lossy(&bytes).trim().to_string();
            if line.is_empty() {
                continue;
            }
            if line.starts_with('$') {
                if line.eq_ignore_ascii_case("$X") {
                    self.alarm = false;
                    self.say("[MSG:Caution: Unlocked]\r\n");
                }
                self.say("ok\r\n");
            } else if self.alarm {
                self.say("error:9\r\n");
            } else {
                self.executing = Some((line, Instant::now() + self.config.line_delay));
            }
        }
    }

    fn finish_line(&mut self) {
        let Some((line, _)) = self.executing.take() else { return };
        match command(&line).as_str() {
            "M3" | "M4" => self.set_spindle(true),
            "M5" => self.set_spindle(false),
            _ => {}
        }
        for (axis, letter) in ['X', 'Y', 'Z'].into_iter().enumerate() {
            if let Some(value) = word(&line, letter) {
                self.position[axis] = value;
            }
        }
        self.feed = word(&line, 'F').unwrap_or(self.feed);
        self.speed = word(&line, 'S').unwrap_or(self.speed);
        self.log(GrblSimEvent::Executed(line));
        self.say("ok\r\n");
    }
}
