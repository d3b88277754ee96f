//! What the bridge's tests share: a real Mosquitto on a free port, an MQTT observer, a signed
//! allowlist made with a real Ed25519 key pair, and waiting for conditions with a deadline.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use makrcave_bridge::allowlist::{hex, normalize_uid, SignedAllowlist};
use ring::signature::{Ed25519KeyPair, KeyPair};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use sha2::Sha256;
use tokio::sync::mpsc;

const MOSQUITTO: &str = "/usr/sbin/mosquitto";

/// Polls `check` until it gives a value or `within` passes (then panics with `what`).
pub async fn wait_for<T>(what: &str, within: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A Mosquitto of this test only: its port, config and persistence folder.
pub struct Mosquitto {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// Anonymous logins allowed (no user is configured, so a closed broker refuses everyone).
    open: bool,
}

impl Mosquitto {
    pub async fn start() -> Mosquitto {
        Self::start_with(true).await
    }

    /// A broker that refuses every login (as with wrong credentials).
    pub async fn start_closed() -> Mosquitto {
        Self::start_with(false).await
    }

    async fn start_with(open: bool) -> Mosquitto {
        assert!(
            Path::new(MOSQUITTO).exists(),
            "{MOSQUITTO} is missing: install Debian's mosquitto package to run the bridge's tests"
        );
        let mut broker = Mosquitto { port: free_port(), dir: tempfile::tempdir().unwrap(), child: None, open };
        broker.start_again().await;
        broker
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("mosquitto.conf")
    }

    /// Starts (again, on the same port, with the sessions it saved) and waits until it accepts.
    pub async fn start_again(&mut self) {
        assert!(self.child.is_none(), "already running");
        let config = format!(
            "listener {port} 127.0.0.1\nallow_anonymous {open}\npersistence true\npersistence_location {dir}/\n\
             user root\nlog_dest stderr\n",
            port = self.port,
            open = self.open,
            dir = self.dir.path().display()
        );
        std::fs::write(self.config_path(), config).unwrap();
        let child = Command::new(MOSQUITTO)
            .arg("-c")
            .arg(self.config_path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {MOSQUITTO}: {e}"));
        self.child = Some(child);
        let port = self.port;
        wait_for("mosquitto to accept connections", Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        })
        .await;
    }

    /// Stops it cleanly (SIGTERM: it saves its sessions) and waits for it to exit.
    pub async fn stop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        let status = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap();
        assert!(status.success());
        wait_for("mosquitto to exit", Duration::from_secs(10), || child.try_wait().unwrap()).await;
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A test client that records what is published under `makrcave/#`. Its session is
/// persistent (clean session off, QoS 1), so the broker keeps its messages while it is away.
pub struct Observer {
    pub messages: mpsc::UnboundedReceiver<(String, String)>,
    pub client: AsyncClient,
    task: tokio::task::JoinHandle<()>,
}

impl Observer {
    pub async fn connect(port: u16, client_id: &str) -> Observer {
        let mut options = MqttOptions::new(client_id, "127.0.0.1", port);
        options.set_clean_session(false);
        options.set_keep_alive(Duration::from_secs(5));
        let (client, mut eventloop) = AsyncClient::new(options, 16);
        client.subscribe("makrcave/#", QoS::AtLeastOnce).await.unwrap();
        let (tx, messages) = mpsc::unbounded_channel();
        let (subscribed_tx, mut subscribed_rx) = mpsc::channel(1);
        let task = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        let _ = subscribed_tx.try_send(());
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let _ = tx.send((p.topic.clone(), String::from_utf8_lossy(&p.payload).into_owned()));
                    }
                    Ok(_) => {}
                    // The broker is away (a test stops it): try again soon.
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), subscribed_rx.recv()).await.expect("no SUBACK").unwrap();
        Observer { messages, client, task }
    }

    /// The next message on a topic ending with `suffix` that satisfies `matches`.
    pub async fn next_matching(&mut self, suffix: &str, within: Duration, matches: impl Fn(&str) -> bool) -> String {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let next = tokio::time::timeout_at(deadline, self.messages.recv()).await;
            let (topic, payload) = next.unwrap_or_else(|_| panic!("no message on *{suffix} in time")).unwrap();
            if topic.ends_with(suffix) && matches(&payload) {
                return payload;
            }
        }
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A makerspace's signing key, as makrcave holds it.
pub struct Signer {
    pair: Ed25519KeyPair,
    pub card_key: [u8; 32],
}

impl Signer {
    pub fn new() -> Signer {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let mut card_key = [0u8; 32];
        ring::rand::SecureRandom::fill(&rng, &mut card_key).unwrap();
        Signer { pair: Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap(), card_key }
    }

    pub fn public_key_base64(&self) -> String {
        STANDARD.encode(self.pair.public_key().as_ref())
    }

    /// The contract's card hash.
    pub fn card_hash(&self, uid: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.card_key).unwrap();
        mac.update(normalize_uid(uid).unwrap().as_bytes());
        hex(&mac.finalize().into_bytes())
    }

    /// Signs exactly these payload bytes, as makrcave does.
    pub fn sign_bytes(&self, payload: &[u8]) -> SignedAllowlist {
        SignedAllowlist {
            payload: STANDARD.encode(payload),
            signature: STANDARD.encode(self.pair.sign(payload).as_ref()),
        }
    }

    /// A list of `makerspace_id` issued at `issued_at`, expiring at `expires_at`, with one
    /// entry per (uid, equipment, entry expiry).
    pub fn payload(
        &self,
        makerspace_id: &str,
        issued_at: &str,
        expires_at: &str,
        entries: &[(&str, &str, &str)],
    ) -> Vec<u8> {
        let entries: Vec<_> = entries
            .iter()
            .map(|(uid, equipment, expiry)| {
                serde_json::json!({"card": self.card_hash(uid), "member_id": "m1",
                                   "equipment_ids": [equipment], "expires_at": expiry})
            })
            .collect();
        serde_json::to_vec(&serde_json::json!({
            "version": 1, "makerspace_id": makerspace_id, "kiosk_id": "k1",
            "issued_at": issued_at, "expires_at": expires_at,
            "card_key": STANDARD.encode(self.card_key), "entries": entries,
        }))
        .unwrap()
    }
}

/// A whole bridge (the run loop with its link) on a real broker, with a relay made of `sh`
/// commands that append `on`/`off` to a file, and makrcave unreachable (a closed port).
pub struct BridgeUnderTest {
    pub dir: tempfile::TempDir,
    pub relay_file: PathBuf,
    pub controller: makrcave_bridge::jobs::ControllerSide,
    pub link: makrcave_bridge::link::LinkHandle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl BridgeUnderTest {
    /// `extra` is appended to the config file (card, offline sections).
    pub async fn start(broker: &Mosquitto, equipment: &str, lock_grace_s: u64, extra: &str) -> BridgeUnderTest {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir, broker, equipment, lock_grace_s, extra).await
    }

    /// As `start`, in a state folder the test prepared (a stored allowlist, say).
    pub async fn start_in(
        dir: tempfile::TempDir,
        broker: &Mosquitto,
        equipment: &str,
        lock_grace_s: u64,
        extra: &str,
    ) -> BridgeUnderTest {
        let unreachable = format!("http://127.0.0.1:{}", free_port());
        Self::start_full(dir, &unreachable, broker, equipment, lock_grace_s, extra).await
    }

    /// As `start_in`, with makrcave at `server_url`.
    pub async fn start_full(
        dir: tempfile::TempDir,
        server_url: &str,
        broker: &Mosquitto,
        equipment: &str,
        lock_grace_s: u64,
        extra: &str,
    ) -> BridgeUnderTest {
        let relay_file = dir.path().join("relay.log");
        let switch = |word: &str| format!(r#"["sh", "-c", "echo {word} >> '{}'"]"#, relay_file.display());
        let config = format!(
            r#"
            [server]
            url = "{server_url}"
            device_token = "token"
            timeout_s = 2
            [machine]
            makerspace_id = "ms-1"
            equipment_id = "{equipment}"
            [mqtt]
            url = "{mqtt}"
            keep_alive = 5
            [relay]
            kind = "command"
            on = {on}
            off = {off}
            lock_grace_s = {lock_grace_s}
            [queue]
            dir = "{dir}"
            [telemetry]
            heartbeat_s = 1
            {extra}
            "#,
            mqtt = broker.url(),
            on = switch("on"),
            off = switch("off"),
            dir = dir.path().display(),
        );
        let config = makrcave_bridge::config::Config::parse(&config).unwrap();
        let (seam, controller) = makrcave_bridge::jobs::seam();
        let app = makrcave_bridge::app::App::build(config, seam).await.unwrap();
        let link = app.link();
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(app.run(async move {
            let _ = stopped.await;
        }));
        BridgeUnderTest { dir, relay_file, controller, link, stop: Some(stop), task }
    }

    /// The relay as the last switch command left it.
    pub fn relay(&self) -> Option<String> {
        let text = std::fs::read_to_string(&self.relay_file).ok()?;
        text.lines().last().map(str::to_string)
    }

    pub async fn wait_relay(&self, state: &str, within: Duration) {
        wait_for(&format!("relay {state}"), within, || (self.relay().as_deref() == Some(state)).then_some(())).await;
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), &mut self.task).await;
    }
}

impl Drop for BridgeUnderTest {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A request the fake makrcave received.
#[derive(Debug, Clone)]
pub struct SeenRequest {
    pub method: String,
    pub path: String,
    pub authorization: Option<String>,
    pub body: String,
}

/// The answer a handler gives: status and body (JSON or bytes).
pub type Reply = (u16, Vec<u8>);

/// A tiny real HTTP/1.1 server on a free port standing in for makrcave (one request per
/// connection). It records every request for the test to check.
pub struct FakeServer {
    pub url: String,
    pub seen: std::sync::Arc<std::sync::Mutex<Vec<SeenRequest>>>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeServer {
    pub async fn start(handler: impl Fn(&SeenRequest) -> Reply + Send + Sync + 'static) -> FakeServer {
        use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let handler = std::sync::Arc::new(handler);
        let seen_by_task = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let handler = handler.clone();
                let seen = seen_by_task.clone();
                tokio::spawn(async move {
                    let mut reader = BufReader::new(stream);
                    let mut first = String::new();
                    reader.read_line(&mut first).await.unwrap();
                    let mut parts = first.split_whitespace();
                    let method = parts.next().unwrap_or_default().to_string();
                    let path = parts.next().unwrap_or_default().to_string();
                    let (mut length, mut authorization) = (0usize, None);
                    loop {
                        let mut line = String::new();
                        reader.read_line(&mut line).await.unwrap();
                        let line = line.trim_end();
                        if line.is_empty() {
                            break;
                        }
                        let (name, value) = line.split_once(':').unwrap();
                        match name.to_ascii_lowercase().as_str() {
                            "content-length" => length = value.trim().parse().unwrap(),
                            "authorization" => authorization = Some(value.trim().to_string()),
                            _ => {}
                        }
                    }
                    let mut body = vec![0u8; length];
                    reader.read_exact(&mut body).await.unwrap();
                    let request =
                        SeenRequest { method, path, authorization, body: String::from_utf8_lossy(&body).into_owned() };
                    let (status, reply) = handler(&request);
                    seen.lock().unwrap().push(request);
                    let head = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        reply.len()
                    );
                    let mut stream = reader.into_inner();
                    stream.write_all(head.as_bytes()).await.unwrap();
                    stream.write_all(&reply).await.unwrap();
                    stream.shutdown().await.unwrap();
                });
            }
        });
        FakeServer { url, seen, task }
    }

    pub fn requests(&self) -> Vec<SeenRequest> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
