//! The I/O loop around a protocol state machine: the serial port (opened again with backoff
//! when it fails), the job file (read line by line, never whole), the poll timer, commands.

use std::path::Path;
use std::time::{Duration, Instant};

use tokio::fs::File;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, watch};
use tokio::time::MissedTickBehavior;
use tokio_serial::SerialPortBuilderExt;

use super::grbl::session::GrblSession;
use super::marlin::session::MarlinSession;
use super::session::{Action, JobSpec, Session};
use super::{Command, ControllerConfig, ControllerError, ControllerEvent, ControllerKind, Telemetry};

/// A line from the controller longer than this is noise (GRBL's longest is ~100 bytes,
/// Marlin's a few hundred): it is dropped rather than grown without bound.
const MAX_REPLY_LINE: usize = 1024;
/// A G-code line longer than this fails the job rather than being read whole into memory.
const MAX_FILE_LINE: u64 = 4096;
/// The first wait before reopening a failed port.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);

/// Why the connection loop ended.
enum Ended {
    /// Every handle was dropped.
    Shutdown,
    Lost(String),
}

/// The job file, read one line at a time; `pending` is a cleaned line the flow control has
/// not let go yet.
struct JobFile {
    reader: BufReader<File>,
    offset: u64,
    pending: Option<(String, u64)>,
}

impl JobFile {
    /// The next raw line and the file position after it; `None` at the end of the file.
    async fn next_line(&mut self) -> std::io::Result<Option<(String, u64)>> {
        let mut bytes = Vec::new();
        let read = (&mut self.reader).take(MAX_FILE_LINE).read_until(b'\n', &mut bytes).await?;
        if read == 0 {
            return Ok(None);
        }
        if read as u64 == MAX_FILE_LINE && bytes.last() != Some(&b'\n') {
            return Err(std::io::Error::other(format!("a line is longer than {MAX_FILE_LINE} bytes")));
        }
        self.offset += read as u64;
        Ok(Some((String::from_utf8_lossy(&bytes).into_owned(), self.offset)))
    }
}

pub(super) struct Driver {
    config: ControllerConfig,
    session: Box<dyn Session>,
    commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<ControllerEvent>,
    telemetry: watch::Sender<Telemetry>,
    running: watch::Sender<bool>,
    job_file: Option<JobFile>,
    /// Bytes and events the state machine asked for, applied after each step.
    out: Vec<Action>,
}

impl Driver {
    pub(super) fn new(
        config: ControllerConfig,
        commands: mpsc::Receiver<Command>,
        events: mpsc::Sender<ControllerEvent>,
        telemetry: watch::Sender<Telemetry>,
        running: watch::Sender<bool>,
    ) -> Self {
        let session: Box<dyn Session> = match config.kind {
            ControllerKind::Grbl => Box::new(GrblSession::new(config.rx_buffer_bytes, config.hold_timeout)),
            ControllerKind::Marlin => {
                Box::new(MarlinSession::new(config.response_timeout, config.temperature_interval, Instant::now()))
            }
        };
        Driver { config, session, commands, events, telemetry, running, job_file: None, out: Vec::new() }
    }

    pub(super) async fn run(mut self) {
        let mut backoff = FIRST_BACKOFF;
        let mut reported_down = false;
        loop {
            match open(&self.config.port, self.config.baud) {
                Ok(port) => {
                    tracing::info!(port = %self.config.port.display(), "serial port open");
                    backoff = FIRST_BACKOFF;
                    self.emit(ControllerEvent::Connected).await;
                    match self.serve(port).await {
                        Ended::Shutdown => return,
                        Ended::Lost(reason) => {
                            tracing::warn!(%reason, "serial port lost");
                            self.job_file = None;
                            self.session.disconnected(&reason, &mut self.out);
                            self.flush_events().await;
                            self.publish().await;
                            self.emit(ControllerEvent::Disconnected { reason }).await;
                            reported_down = true;
                        }
                    }
                }
                Err(err) => {
                    if !reported_down {
                        tracing::warn!(port = %self.config.port.display(), error = %err, "cannot open the serial port; retrying");
                        self.emit(ControllerEvent::Disconnected { reason: err.to_string() }).await;
                        self.publish().await;
                        reported_down = true;
                    }
                }
            }
            if !self.wait_offline(backoff).await {
                return;
            }
            backoff = (backoff * 2).min(self.config.reconnect_max.max(FIRST_BACKOFF));
        }
    }

    /// Answers commands (they are refused: offline) until `backoff` passed; false on shutdown.
    async fn wait_offline(&mut self, backoff: Duration) -> bool {
        let retry = tokio::time::sleep(backoff);
        tokio::pin!(retry);
        loop {
            tokio::select! {
                _ = &mut retry => return true,
                command = self.commands.recv() => match command {
                    None => return false,
                    Some(command) => {
                        self.command(command).await;
                        self.flush_events().await;
                    }
                },
            }
        }
    }

    async fn serve(&mut self, port: tokio_serial::SerialStream) -> Ended {
        let (mut reader, mut writer) = tokio::io::split(port);
        let mut tick = tokio::time::interval(self.config.poll_interval.max(Duration::from_millis(10)));
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut buffer = [0u8; 512];
        let mut line = Vec::with_capacity(128);
        let mut overlong = false;
        self.session.connected(Instant::now(), &mut self.out);
        loop {
            if let Err(err) = self.step(&mut writer).await {
                return Ended::Lost(err.to_string());
            }
            tokio::select! {
                read = reader.read(&mut buffer) => match read {
                    Ok(0) => return Ended::Lost("the port closed".into()),
                    Ok(n) => {
                        let now = Instant::now();
                        for &byte in &buffer[..n] {
                            match byte {
                                b'\n' => {
                                    if !overlong {
                                        self.session.received(&line, now, &mut self.out);
                                    }
                                    line.clear();
                                    overlong = false;
                                }
                                _ if line.len() >= MAX_REPLY_LINE => overlong = true,
                                _ => line.push(byte),
                            }
                        }
                    }
                    Err(err) => return Ended::Lost(err.to_string()),
                },
                _ = tick.tick() => self.session.tick(Instant::now(), &mut self.out),
                command = self.commands.recv() => match command {
                    None => return Ended::Shutdown,
                    Some(command) => self.command(command).await,
                },
            }
        }
    }

    /// After each input: feed job lines the flow control lets go, write, report.
    async fn step(&mut self, writer: &mut (impl AsyncWrite + Unpin)) -> std::io::Result<()> {
        self.feed_job_lines().await;
        let mut bytes = Vec::new();
        for action in std::mem::take(&mut self.out) {
            match action {
                Action::Write(chunk) => bytes.extend_from_slice(&chunk),
                Action::Event(event) => self.emit(event).await,
            }
        }
        if !bytes.is_empty() {
            writer.write_all(&bytes).await?;
            writer.flush().await?;
        }
        self.publish().await;
        Ok(())
    }

    async fn feed_job_lines(&mut self) {
        while self.session.wants_line() {
            let Some(file) = self.job_file.as_mut() else { break };
            let now = Instant::now();
            if file.pending.is_none() {
                match file.next_line().await {
                    Ok(Some((raw, end_offset))) => {
                        file.pending = self.session.clean_line(&raw).map(|line| (line, end_offset));
                        continue;
                    }
                    Ok(None) => {
                        self.job_file = None;
                        self.session.file_ended(now, &mut self.out);
                        break;
                    }
                    Err(err) => {
                        self.job_file = None;
                        self.session.fail_job(format!("cannot read the job file: {err}"), now, &mut self.out);
                        break;
                    }
                }
            }
            let Some((line, end_offset)) = &file.pending else { continue };
            if !self.session.offer_line(line, *end_offset, now, &mut self.out) {
                break;
            }
            file.pending = None;
        }
        if !self.session.job_running() {
            self.job_file = None;
        }
    }

    async fn command(&mut self, command: Command) {
        let now = Instant::now();
        let (result, reply) = match command {
            Command::Start { job_id, file, reply } => (self.start(job_id, &file, now).await, reply),
            Command::Pause { reply } => (self.session.pause(&mut self.out), reply),
            Command::Resume { reply } => (self.session.resume(&mut self.out), reply),
            Command::Cancel { reply } => (self.session.cancel(now, &mut self.out), reply),
        };
        // Before the answer: whoever started a job sees `job_running` true at once.
        self.publish_running();
        let _ = reply.send(result);
    }

    async fn start(&mut self, job_id: String, path: &Path, now: Instant) -> Result<(), ControllerError> {
        self.session.can_start()?;
        let file = File::open(path).await.map_err(|e| ControllerError::File(e.to_string()))?;
        let total_bytes = file.metadata().await.map_err(|e| ControllerError::File(e.to_string()))?.len();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        tracing::info!(job = %job_id, file = %path.display(), total_bytes, "job starts");
        self.session.start_job(JobSpec { id: job_id, file: name, total_bytes }, now, &mut self.out)?;
        self.job_file = Some(JobFile { reader: BufReader::new(file), offset: 0, pending: None });
        Ok(())
    }

    async fn flush_events(&mut self) {
        for action in std::mem::take(&mut self.out) {
            if let Action::Event(event) = action {
                self.emit(event).await;
            }
        }
    }

    async fn emit(&mut self, event: ControllerEvent) {
        // A closed receiver means nobody listens any more; the controller still runs.
        let _ = self.events.send(event).await;
    }

    fn publish_running(&mut self) {
        let running = self.session.job_running();
        self.running.send_if_modified(|old| std::mem::replace(old, running) != running);
    }

    /// Publishes the telemetry when it changed, and the job-running flag.
    async fn publish(&mut self) {
        self.publish_running();
        let mut telemetry = self.session.telemetry();
        if telemetry.differs_from(&self.telemetry.borrow()) {
            telemetry.ts = Some(chrono::Utc::now());
            self.telemetry.send_replace(telemetry.clone());
            self.emit(ControllerEvent::Telemetry(telemetry)).await;
        }
    }
}

fn open(port: &Path, baud: u32) -> tokio_serial::Result<tokio_serial::SerialStream> {
    tokio_serial::new(port.to_string_lossy(), baud).open_native_async()
}
