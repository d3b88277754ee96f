//! The task that follows one OctoPrint machine: checks that OctoPrint is up and takes the
//! key, logs in passively, connects the printer if asked to, then watches the push socket and
//! delivers what changes to the machine's actor. Between sessions it waits with backoff and
//! jitter (the machine shows `offline`), or, when the key is refused, for a long while (the
//! machine shows `error` with the reason). Job commands from the actor are carried out over
//! REST and answered, in a session or not.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Recipient;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as SocketError, Message, Utf8Bytes};
use tokio_util::sync::CancellationToken;

use super::push::{self, Push, Tracker};
use super::rest::{self, Api, CallError};
use crate::actors::machine::Report;
use crate::domain::jobs::{JobCommand, JobRefusal};
use crate::domain::machine::{Input, MachineState};
use crate::logging::escaped;
use crate::metrics::OCTOPRINT_SESSIONS;
use crate::protocols::adapter::{self, AdapterCommand, AdapterReceiver, Between, SessionEnd as Ended};
use crate::protocols::backoff::Backoff;

/// How often the push socket is pinged: OctoPrint sends `current` only while a printer is
/// connected, so a quiet socket is not yet a dead one.
const KEEPALIVE: Duration = Duration::from_secs(10);
/// Nothing at all (no frame, no pong) for this long: the connection is dead.
const SILENCE: Duration = Duration::from_secs(30);
/// How often a printer OctoPrint has not connected is connected again (with `auto_connect`):
/// often enough to notice a printer switched on, rarely enough not to hammer a port.
const PRINTER_RETRY: Duration = Duration::from_secs(60);
/// The push socket's read buffer. tungstenite's default, 128 KiB, is zeroed to its full size
/// before every read, so each followed printer kept 128 KiB resident and every frame cost a
/// 128 KiB memset. OctoPrint's `current` frames are 1–3 KiB; a larger frame (a `history` with
/// a long temperature history) still arrives whole: the buffer grows to a frame's length.
const SOCKET_READ_BUFFER: usize = 8 * 1024;

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// OctoPrint's push socket, read so that a large frame does not stay in its read buffer.
///
/// tungstenite reads frames into one buffer and hands each text out as a view of it. Once no
/// view is left, the buffer takes its whole allocation back and keeps it. OctoPrint's first
/// `history` frame carries up to half an hour of temperatures and the terminal's backlog
/// (tens to hundreds of KiB), so every followed printer would keep that much for as long as
/// it is followed. Holding the last text until the next one is read leaves the buffer no
/// allocation to take back: when it runs out of room it starts a new one of its configured
/// size, and the large one is freed with the frames it holds.
struct PushSocket {
    socket: Socket,
    last_text: Option<Utf8Bytes>,
}

impl PushSocket {
    /// Opens OctoPrint's push socket.
    async fn open(url: &url::Url) -> Result<PushSocket, CallError> {
        let config = WebSocketConfig::default().read_buffer_size(SOCKET_READ_BUFFER);
        let (socket, _) = tokio_tungstenite::connect_async_with_config(url.as_str(), Some(config), false)
            .await
            .map_err(|e| CallError::Unreachable(format!("push socket: {e}")))?;
        Ok(PushSocket { socket, last_text: None })
    }

    /// The next frame; `None` once the socket is closed. Cancel-safe, like the stream's `next`.
    async fn next(&mut self) -> Option<Result<Message, SocketError>> {
        let frame = self.socket.next().await;
        if let Some(Ok(Message::Text(text))) = &frame {
            // A clone is a reference count; the text before is let go only now.
            self.last_text = Some(text.clone());
        }
        frame
    }

    async fn send(&mut self, message: Message) -> Result<(), SocketError> {
        self.socket.send(message).await
    }

    async fn close(&mut self) {
        let _ = self.socket.close(None).await;
    }
}

/// One OctoPrint machine's client task.
pub struct Client {
    pub(super) equipment_id: Arc<str>,
    /// The instance's API, or why there is none (no key, a key that cannot be opened).
    pub(super) api: Result<Api, String>,
    pub(super) auto_connect: bool,
    pub(super) actor: Recipient<Report>,
    pub(super) commands: AdapterReceiver,
    pub(super) cancel: CancellationToken,
}

impl Client {
    /// Follows the machine until it is cancelled or its actor is gone.
    pub async fn run(mut self) {
        let mut between = Between::new("OctoPrint", OCTOPRINT_SESSIONS, self.equipment_id.clone());
        loop {
            let ended = self.session(&mut between.backoff, &mut between.shown_offline).await;
            if !between.after(ended, &self.actor, &mut self.commands, &self.cancel).await {
                return;
            }
        }
    }

    async fn deliver(&self, input: Input) -> Result<(), Ended> {
        adapter::report(&self.actor, input).await
    }

    /// One connection to OctoPrint, from the first call to the socket's end.
    async fn session(&mut self, backoff: &mut Backoff, shown_offline: &mut bool) -> Ended {
        let api = match &self.api {
            Ok(api) => api.clone(),
            Err(reason) => return Ended::Refused(reason.clone(), "unusable_key"),
        };
        let auto_connect = self.auto_connect;
        let equipment_id = self.equipment_id.clone();
        // Boxed, as every rarely taken path of the loop below: the task is held for as long as
        // its printer is followed, and sized by its largest state.
        let opening = Box::pin(async {
            api.version().await?;
            let auth = api.login().await?;
            let printer = api.printer().await?;
            if printer.is_none() && auto_connect {
                tracing::info!(?equipment_id, "OctoPrint has no printer connected: connecting it");
                if let Err(e) = api.connect_printer().await {
                    tracing::warn!(?equipment_id, error = %escaped(&e), "OctoPrint did not connect its printer");
                }
            }
            let socket = PushSocket::open(&rest::socket_url(api.base())).await?;
            Ok::<_, CallError>((auth, socket, printer.is_none()))
        });
        let (auth, mut socket, mut printer_closed) = tokio::select! {
            _ = self.cancel.cancelled() => return Ended::Cancelled,
            opened = opening => match opened {
                Ok(opened) => opened,
                Err(e @ CallError::Forbidden(_)) => return Ended::Refused(e.to_string(), "forbidden"),
                Err(e) => return Ended::Unreachable(e.to_string()),
            },
        };
        let hello = [
            json!({"auth": auth}),
            json!({"subscribe": {"state": {"logs": false, "messages": false}, "events": true, "plugins": false}}),
        ];
        for message in hello {
            if let Err(e) = socket.send(Message::text(message.to_string())).await {
                return Ended::Unreachable(format!("push socket: {e}"));
            }
        }
        tracing::info!(equipment_id = ?self.equipment_id, "following OctoPrint");
        backoff.reset();
        *shown_offline = false;
        let mut tracker = Tracker::default();
        let mut keepalive = tokio::time::interval(KEEPALIVE);
        keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_frame = Instant::now();
        let mut last_printer_connect = Instant::now();
        // Made once for the session: made anew in every turn of the loop, it would register
        // with the token again for every frame.
        let cancelled = self.cancel.clone().cancelled_owned();
        tokio::pin!(cancelled);
        loop {
            tokio::select! {
                _ = &mut cancelled => {
                    socket.close().await;
                    return Ended::Cancelled;
                }
                frame = socket.next() => {
                    last_frame = Instant::now();
                    match frame {
                        Some(Ok(Message::Text(text))) => match push::parse(&text) {
                            Push::Current(update) => {
                                printer_closed = update.state == Some(MachineState::Offline);
                                if let Some(update) = tracker.changed(update) {
                                    if let Err(gone) = self.deliver(Input::Telemetry(update)).await {
                                        return gone;
                                    }
                                }
                            }
                            Push::Job(event) => {
                                if let Err(gone) = self.deliver(Input::Job(event)).await {
                                    return gone;
                                }
                            }
                            Push::Other => {}
                            Push::Malformed => {
                                tracing::debug!(equipment_id = ?self.equipment_id, "malformed OctoPrint push frame dropped");
                            }
                        },
                        Some(Ok(_)) => {}
                        Some(Err(e)) => return Ended::Unreachable(format!("push socket: {e}")),
                        None => return Ended::Unreachable("OctoPrint closed the push socket".into()),
                    }
                }
                command = self.commands.recv() => match command {
                    Some(AdapterCommand { command, reply }) => {
                        let answer = Box::pin(self.execute(&api, command, &mut tracker)).await;
                        let _ = reply.send(answer);
                    }
                    None => return Ended::ActorGone,
                },
                _ = keepalive.tick() => {
                    if last_frame.elapsed() > SILENCE {
                        return Ended::Unreachable("no answer on the push socket".into());
                    }
                    // Unchanged frames are dropped above; the printer is still heard.
                    if last_frame.elapsed() < KEEPALIVE {
                        if let Err(gone) = self.deliver(Input::Heard).await {
                            return gone;
                        }
                    }
                    if let Err(e) = socket.send(Message::Ping(Default::default())).await {
                        return Ended::Unreachable(format!("push socket: {e}"));
                    }
                    if printer_closed && self.auto_connect && last_printer_connect.elapsed() >= PRINTER_RETRY {
                        last_printer_connect = Instant::now();
                        if let Err(e) = Box::pin(api.connect_printer()).await {
                            tracing::warn!(equipment_id = ?self.equipment_id, error = %escaped(&e), "OctoPrint did not connect its printer");
                        }
                    }
                }
            }
        }
    }

    /// Carries out a job command over REST.
    async fn execute(&self, api: &Api, command: JobCommand, tracker: &mut Tracker) -> Result<(), JobRefusal> {
        match command {
            JobCommand::Start { file, .. } => {
                let path = Path::new(&file);
                let name = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .ok_or_else(|| JobRefusal::Rejected(format!("{file:?} does not name a file")))?;
                api.upload_and_print(name, path).await
            }
            JobCommand::Refresh => {
                let printer = api.printer().await.map_err(|e| e.refusal())?;
                let job = api.job().await.map_err(|e| e.refusal())?;
                let update = rest::report(printer.as_ref(), &job);
                // A full report asked for is delivered whatever it says; later frames compare
                // with it. The answer waits until the actor has taken it.
                tracker.reset();
                tracker.changed(update.clone());
                self.actor.send(Report(Input::Telemetry(update))).await.map_err(|_| JobRefusal::Offline)
            }
            other => {
                let body = rest::job_command_body(&other).expect("pause, resume and cancel have a body");
                api.job_command(body).await.map_err(|e| e.refusal())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame far larger than the read buffer arrives whole, and the frames after it too.
    #[tokio::test]
    async fn frames_larger_than_the_read_buffer_arrive_whole() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url =
            url::Url::parse(&format!("ws://{}/sockjs/websocket", listener.local_addr().expect("addr"))).expect("url");
        let history = format!(r#"{{"history": {{"logs": ["{}"]}}}}"#, "x".repeat(20 * SOCKET_READ_BUFFER));
        let sent = [history, r#"{"current": {}}"#.to_string()];
        let frames = sent.clone();
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.expect("accept");
            let mut socket = tokio_tungstenite::accept_async(stream).await.expect("handshake");
            for frame in frames {
                socket.send(Message::text(frame)).await.expect("send");
            }
        });
        let mut socket = PushSocket::open(&url).await.expect("connects");
        for expected in sent {
            match socket.next().await {
                Some(Ok(Message::Text(text))) => assert_eq!(text.as_str(), expected),
                other => panic!("not the frame sent: {other:?}"),
            }
        }
        server.await.expect("server");
    }

    /// OctoPrint's first frame on a socket (`history`) can be hundreds of KiB. Once later
    /// frames are read, the client keeps no more than a read buffer or two of its configured
    /// size, not the large frame's.
    #[test]
    fn a_large_frame_is_not_kept_once_later_frames_are_read() {
        const LARGE: usize = 512 * 1024;
        const SMALL: usize = 2 * 1024;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("non-blocking");
        let url =
            url::Url::parse(&format!("ws://{}/sockjs/websocket", listener.local_addr().expect("addr"))).expect("url");
        // The server on a thread of its own, so that this thread holds only the client's memory.
        let server = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let (stream, _) = listener.accept().await.expect("accept");
                let mut socket = tokio_tungstenite::accept_async(stream).await.expect("handshake");
                socket.send(Message::text("h".repeat(LARGE))).await.expect("send");
                for i in 0..40 {
                    socket.send(Message::text(format!("{i:02}{}", "c".repeat(SMALL)))).await.expect("send");
                }
                // Until the client closes.
                while let Some(Ok(_)) = socket.next().await {}
            });
        });
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let kept = runtime.block_on(async {
            let before = crate::held_memory::held_by_this_thread();
            let mut socket = PushSocket::open(&url).await.expect("connects");
            match socket.next().await {
                Some(Ok(Message::Text(text))) => assert_eq!(text.len(), LARGE),
                other => panic!("not the large frame: {other:?}"),
            }
            for i in 0..40 {
                match socket.next().await {
                    Some(Ok(Message::Text(text))) => assert!(text.starts_with(&format!("{i:02}"))),
                    other => panic!("not frame {i}: {other:?}"),
                }
            }
            let kept = crate::held_memory::held_by_this_thread() - before;
            socket.close().await;
            kept
        });
        server.join().expect("server");
        assert!(kept < 64 * 1024, "the client keeps {kept} bytes after a frame of {LARGE}");
    }
}
