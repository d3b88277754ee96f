//! The test harness: the real application on port 0 with a fresh database and a real broker.
//!
//! The environment picks the services (scripts/test sets them; plain `cargo test` uses the
//! zero-configuration ones):
//! - `MAKRCAVE_TEST_DATABASE=sqlite|postgres`; with postgres, `MAKRCAVE_TEST_PG_URL` is an
//!   admin URL of a running server, and each test gets its own database, dropped afterwards.
//! - `MAKRCAVE_TEST_BROKER=embedded|mosquitto`; with mosquitto, each test starts its own
//!   Mosquitto on a free port (`MOSQUITTO_BIN` or `mosquitto` on the PATH).
//!
//! A service that is asked for and missing makes the test fail, never skip.

#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

use makrcave::config::MosquittoFiles;
use makrcave::domain::access::Role;
use makrcave::domain::mqtt_access::SERVICE_USERNAME;
use makrcave::protocols::mqtt::BrokerAddress;
use makrcave::web::auth::JwtKeys;
use makrcave::{Application, Settings};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::{json, Value};
use sqlx::Connection;

pub const SECRET: &str = "integration-test-secret-0123456789";

/// The Python of the test virtualenv (PyJWT, cryptography, aiosmtpd), made by scripts/test.
pub fn python() -> PathBuf {
    let path = std::env::var("MAKRCAVE_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-venv/bin/python"));
    assert!(
        path.exists(),
        "this test needs the test virtualenv at {}: run scripts/test (or scripts/test-venv) first",
        path.display()
    );
    path
}

/// The invitation code of the newest email in the application's outbox (no SMTP configured).
pub fn latest_invite_token(t: &TestApp) -> String {
    let outbox = t.data_dir.path().join("outbox");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&outbox)
        .unwrap_or_else(|e| panic!("no outbox at {}: {e}", outbox.display()))
        .map(|e| e.expect("outbox entry").path())
        .collect();
    files.sort();
    let newest = files.last().expect("an email in the outbox");
    invite_token_in(&std::fs::read_to_string(newest).expect("read the email"))
}

/// The invitation code in an email (the link carries it as `invite=`). Bodies are
/// quoted-printable: soft line breaks and the escaped `=` are undone first.
pub fn invite_token_in(message: &str) -> String {
    let text = message.replace("=\r\n", "").replace("=\n", "").replace("=3D", "=");
    let start = text.find("invite=").expect("an invitation link in the email") + "invite=".len();
    let token: String = text[start..].chars().take_while(|c| c.is_ascii_hexdigit()).collect();
    assert_eq!(token.len(), 64, "a 256-bit invitation code in the link");
    token
}

/// A port nobody listens on right now.
pub use crate::spawn::free_port;

/// Polls `check` until it yields a value or `timeout` passes (then panics with `what`).
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A Mosquitto broker of our own, on a free port, stopped on drop.
pub struct Mosquitto {
    pub port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl Mosquitto {
    pub fn start() -> Mosquitto {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut broker = Mosquitto { port: free_port(), child: None, dir };
        broker.launch();
        broker
    }

    /// The password and ACL files makrcave keeps for this broker, and its pid file.
    pub fn files(&self) -> MosquittoFiles {
        MosquittoFiles {
            password_file: self.dir.path().join("passwd"),
            acl_file: self.dir.path().join("acl"),
            pid_file: Some(self.dir.path().join("mosquitto.pid")),
        }
    }

    /// Mosquitto as makrcave expects to find it in production: no anonymous clients, and
    /// password and ACL files that makrcave writes (empty until it starts).
    fn launch(&mut self) {
        let config = self.dir.path().join("mosquitto.conf");
        let files = self.files();
        for file in [&files.password_file, &files.acl_file] {
            if !file.exists() {
                std::fs::write(file, "").expect("create an empty Mosquitto file");
            }
        }
        std::fs::write(
            &config,
            format!(
                "listener {} 127.0.0.1\nallow_anonymous false\npassword_file {}\nacl_file {}\npersistence false\n\
                 log_dest stderr\nlog_type error\n",
                self.port,
                files.password_file.display(),
                files.acl_file.display(),
            ),
        )
        .expect("write mosquitto.conf");
        let child = crate::spawn::mosquitto(&config, &[self.port]);
        // What Debian's service does with `pid_file`: makrcave signals this process to reload.
        std::fs::write(files.pid_file.as_ref().expect("pid file"), child.id().to_string()).expect("write pid file");
        self.child = Some(child);
    }

    /// Kills the broker (every client is disconnected at once).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Which services the suite runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseKind {
    Sqlite,
    Postgres,
}

pub fn database_kind() -> DatabaseKind {
    match std::env::var("MAKRCAVE_TEST_DATABASE").as_deref() {
        Err(_) | Ok("sqlite") => DatabaseKind::Sqlite,
        Ok("postgres") => DatabaseKind::Postgres,
        Ok(other) => panic!("MAKRCAVE_TEST_DATABASE must be sqlite or postgres, not {other:?}"),
    }
}

pub fn uses_mosquitto() -> bool {
    match std::env::var("MAKRCAVE_TEST_BROKER").as_deref() {
        Err(_) | Ok("embedded") => false,
        Ok("mosquitto") => true,
        Ok(other) => panic!("MAKRCAVE_TEST_BROKER must be embedded or mosquitto, not {other:?}"),
    }
}

/// A database for one test.
pub struct TestDatabase {
    pub url: String,
    /// For PostgreSQL: the admin URL and the name to drop afterwards.
    postgres: Option<(String, String)>,
}

impl TestDatabase {
    pub async fn create(data_dir: &std::path::Path) -> TestDatabase {
        match database_kind() {
            DatabaseKind::Sqlite => {
                TestDatabase { url: format!("sqlite://{}", data_dir.join("makrcave.db").display()), postgres: None }
            }
            DatabaseKind::Postgres => {
                let admin = std::env::var("MAKRCAVE_TEST_PG_URL")
                    .expect("MAKRCAVE_TEST_DATABASE=postgres needs MAKRCAVE_TEST_PG_URL (scripts/test sets it)");
                let name = format!("t_{}", uuid::Uuid::new_v4().simple());
                let mut conn = sqlx::PgConnection::connect(&admin).await.expect("connect to the test PostgreSQL");
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut conn)
                    .await
                    .expect("create test database");
                let mut url = url::Url::parse(&admin).expect("admin url");
                url.set_path(&name);
                TestDatabase { url: url.to_string(), postgres: Some((admin, name)) }
            }
        }
    }

    pub async fn drop_database(&self) {
        if let Some((admin, name)) = &self.postgres {
            if let Ok(mut conn) = sqlx::PgConnection::connect(admin).await {
                let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
                    .execute(&mut conn)
                    .await;
            }
        }
    }
}

/// Options of a test application.
#[derive(Default, Clone)]
pub struct TestOptions {
    pub heartbeat_timeout_s: Option<u64>,
    pub ws_send_timeout_ms: Option<u64>,
    /// Use this broker URL instead of the suite's choice.
    pub mqtt_url: Option<String>,
    /// The files of that broker, for makrcave to keep (a test's own [`Mosquitto::files`]).
    pub mosquitto_files: Option<MosquittoFiles>,
    pub jwks_url: Option<String>,
    pub jwt_issuer: Option<String>,
    pub jwt_audience: Option<String>,
    pub smtp_url: Option<String>,
    pub auth_rate_limit: Option<u32>,
    pub csv_max_bytes: Option<usize>,
    /// `serve --demo`: the demo makerspace, its people and simulated machines.
    pub demo: bool,
    /// `--data-key` [default: generated into the test's data folder].
    pub data_key: Option<String>,
    /// `--store-url`: the MakrX Store orders are sent to [default: none].
    pub store_url: Option<String>,
    /// Changes any other setting, last (connection caps, the kiosks' guessing limits, ...).
    pub adjust: Option<fn(&mut Settings)>,
}

/// A running makrcave with everything a test needs to talk to it.
pub struct TestApp {
    pub app: Option<Application>,
    pub base: String,
    pub mqtt: SocketAddr,
    pub http: reqwest::Client,
    pub keys: JwtKeys,
    pub data_dir: tempfile::TempDir,
    pub database: TestDatabase,
    pub mosquitto: Option<Mosquitto>,
    pub options: TestOptions,
    /// Set by [`TestApp::go_away`]: makrcave comes back on these HTTP and MQTT addresses.
    kept_addresses: Option<(SocketAddr, SocketAddr)>,
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(TestOptions::default()).await
    }

    pub async fn spawn_with(options: TestOptions) -> TestApp {
        makrcave::install_crypto_provider();
        let data_dir = tempfile::tempdir().expect("temp dir");
        let database = TestDatabase::create(data_dir.path()).await;
        let mosquitto = (options.mqtt_url.is_none() && uses_mosquitto()).then(Mosquitto::start);
        let mqtt_url = options.mqtt_url.clone().or_else(|| mosquitto.as_ref().map(Mosquitto::url));
        let mut test = TestApp {
            app: None,
            base: String::new(),
            mqtt: "127.0.0.1:1".parse().expect("addr"),
            http: reqwest::Client::new(),
            keys: JwtKeys::hs256(&makrcave::config::Secret::new(SECRET)),
            data_dir,
            database,
            mosquitto,
            options,
            kept_addresses: None,
        };
        test.start(mqtt_url).await;
        test
    }

    fn settings(&self, mqtt_url: Option<String>) -> Settings {
        let mut s = Settings::defaults();
        s.http = "127.0.0.1:0".parse().expect("addr");
        s.mqtt_listen = "127.0.0.1:0".parse().expect("addr");
        if let Some((http, mqtt)) = self.kept_addresses {
            (s.http, s.mqtt_listen) = (http, mqtt);
        }
        s.data_dir = self.data_dir.path().to_path_buf();
        s.database_url = self.database.url.clone();
        s.mqtt_broker = mqtt_url.map(|u| BrokerAddress::parse(&u).expect("broker url"));
        s.mosquitto = self.options.mosquitto_files.clone().or_else(|| self.mosquitto.as_ref().map(Mosquitto::files));
        s.jwt_secret = Some(makrcave::config::Secret::new(SECRET));
        s.heartbeat_timeout_s = self.options.heartbeat_timeout_s.unwrap_or(30);
        s.ws_send_timeout_ms = self.options.ws_send_timeout_ms.unwrap_or(5_000);
        s.http_workers = 1;
        s.jwks_url = self.options.jwks_url.clone();
        s.jwt_issuer = self.options.jwt_issuer.clone();
        s.jwt_audience = self.options.jwt_audience.clone();
        s.smtp_url = self.options.smtp_url.clone().map(makrcave::config::Secret::new);
        s.auth_rate_limit = self.options.auth_rate_limit.unwrap_or(1000);
        if let Some(limit) = self.options.csv_max_bytes {
            s.csv_max_bytes = limit;
        }
        s.actor_threads = 2;
        s.demo = self.options.demo;
        s.data_key = self.options.data_key.clone().map(makrcave::config::Secret::new);
        s.store_url = self.options.store_url.clone();
        if let Some(adjust) = self.options.adjust {
            adjust(&mut s);
        }
        s
    }

    async fn start(&mut self, mqtt_url: Option<String>) {
        self.try_start(mqtt_url).await.expect("makrcave starts");
    }

    async fn try_start(&mut self, mqtt_url: Option<String>) -> Result<(), makrcave::app::StartError> {
        let app = Application::build(self.settings(mqtt_url)).await?;
        self.base = format!("http://{}", app.http_addr());
        self.mqtt = app.mqtt_addr();
        let status = app.state().mqtt.clone();
        self.app = Some(app);
        eventually(Duration::from_secs(10), "makrcave's MQTT link to connect", || {
            let connected = status.is_connected();
            async move { connected.then_some(()) }
        })
        .await;
        Ok(())
    }

    /// Stops makrcave gracefully and starts it again on the same database and broker.
    pub async fn restart(&mut self) {
        self.try_restart().await.expect("makrcave starts again");
    }

    /// As [`TestApp::restart`], for a test of what stops makrcave from starting (with the
    /// current `options`); after an error nothing runs.
    pub async fn try_restart(&mut self) -> Result<(), makrcave::app::StartError> {
        if let Some(app) = self.app.take() {
            app.stop().await;
        }
        let mqtt_url = self.options.mqtt_url.clone().or_else(|| self.mosquitto.as_ref().map(Mosquitto::url));
        self.try_start(mqtt_url).await
    }

    /// Stops makrcave, and the test's Mosquitto if it has one: to its machines and devices the
    /// server is gone. [`TestApp::come_back`] starts both again, on the same addresses.
    pub async fn go_away(&mut self) {
        let http = self.base.trim_start_matches("http://").parse().expect("makrcave's address");
        self.kept_addresses = Some((http, self.mqtt));
        if let Some(app) = self.app.take() {
            app.stop().await;
        }
        if let Some(broker) = self.mosquitto.as_mut() {
            broker.stop();
        }
    }

    /// Starts what [`TestApp::go_away`] stopped, on the same database and addresses.
    pub async fn come_back(&mut self) {
        if let Some(broker) = self.mosquitto.as_mut() {
            broker.restart();
        }
        let mqtt_url = self.options.mqtt_url.clone().or_else(|| self.mosquitto.as_ref().map(Mosquitto::url));
        self.start(mqtt_url).await;
    }

    pub fn app(&self) -> &Application {
        self.app.as_ref().expect("the application is running")
    }

    pub async fn stop(mut self) {
        if let Some(app) = self.app.take() {
            app.stop().await;
        }
        self.database.drop_database().await;
    }

    pub fn token(&self, sub: &str, role: Role, spaces: &[&str]) -> String {
        self.token_for(sub, role, spaces, chrono::Duration::hours(1))
    }

    /// A token valid for `ttl`.
    pub fn token_for(&self, sub: &str, role: Role, spaces: &[&str], ttl: chrono::Duration) -> String {
        let spaces: Vec<String> = spaces.iter().map(|s| s.to_string()).collect();
        self.keys.mint(sub, &[role], &spaces, ttl)
    }

    pub fn super_admin(&self) -> String {
        self.token("root", Role::SuperAdmin, &[])
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let mut req = self.http.get(self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        read(req.send().await.expect("GET")).await
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.http.request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        read(req.send().await.expect("request")).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, Some(token), Some(body)).await
    }

    pub async fn put(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::PUT, path, Some(token), Some(body)).await
    }

    pub async fn delete(&self, path: &str, token: &str) -> (u16, Value) {
        self.send(reqwest::Method::DELETE, path, Some(token), None).await
    }

    /// Creates a makerspace as super_admin.
    pub async fn makerspace(&self, id: &str) {
        let (status, body) = self.post("/api/v1/makerspaces", &self.super_admin(), json!({"id": id, "name": id})).await;
        assert_eq!(status, 201, "create makerspace: {body}");
    }

    /// Creates a machine as super_admin.
    pub async fn machine(&self, space: &str, id: &str, extra: Value) -> Value {
        let mut body = json!({"id": id, "name": format!("Machine {id}"), "type": "3d_printer"});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        let (status, created) =
            self.post(&format!("/api/v1/makerspaces/{space}/equipment"), &self.super_admin(), body).await;
        assert_eq!(status, 201, "create equipment: {created}");
        created
    }

    /// The live state of a machine from the REST API.
    pub async fn state(&self, space: &str, id: &str) -> Value {
        let (status, body) =
            self.get(&format!("/api/v1/makerspaces/{space}/equipment/{id}/state"), Some(&self.super_admin())).await;
        assert_eq!(status, 200, "state of {id}: {body}");
        body
    }

    /// Waits until a machine's live state satisfies `check`.
    pub async fn wait_state(&self, space: &str, id: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
        eventually(Duration::from_secs(10), what, || async {
            let s = self.state(space, id).await;
            check(&s).then_some(s)
        })
        .await
    }

    /// makrcave's own MQTT account (it may publish and read every topic).
    pub fn service_login(&self) -> (String, String) {
        let password = self.app().state().settings.mqtt_service_password().expect("service password");
        (SERVICE_USERNAME.to_string(), password.expose().to_string())
    }

    /// A connected MQTT publisher on the broker makrcave uses, with makrcave's own account.
    pub async fn publisher(&self) -> Publisher {
        Publisher::connect(self.mqtt, self.service_login()).await
    }

    /// Issues MQTT credentials for a machine, as its makerspace's admin does.
    pub async fn device_login(&self, space: &str, machine: &str) -> (String, String) {
        let admin = self.token("device-admin", Role::MakerspaceAdmin, &[space]);
        let (status, body) = self
            .post(&format!("/api/v1/makerspaces/{space}/equipment/{machine}/mqtt-credentials"), &admin, json!(null))
            .await;
        assert_eq!(status, 201, "{body}");
        let field = |name: &str| body[name].as_str().expect("credential field").to_string();
        (field("username"), field("password"))
    }

    /// The value of a Prometheus counter (summed over series matching `labels`).
    pub async fn metric(&self, name: &str, labels: &str) -> f64 {
        let text = self.http.get(self.url("/metrics")).send().await.expect("metrics").text().await.expect("text");
        text.lines()
            .filter(|l| l.starts_with(name) && l.contains(labels))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

async fn read(res: reqwest::Response) -> (u16, Value) {
    let status = res.status().as_u16();
    let text = res.text().await.expect("body");
    let body = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
    (status, body)
}

/// An MQTT client that publishes like a machine would.
pub struct Publisher {
    pub client: AsyncClient,
    driver: tokio::task::JoinHandle<()>,
}

impl Publisher {
    pub async fn connect(addr: SocketAddr, login: (String, String)) -> Publisher {
        Self::connect_with(addr, login, |_| {}).await
    }

    pub async fn connect_with(
        addr: SocketAddr,
        (username, password): (String, String),
        configure: impl FnOnce(&mut MqttOptions),
    ) -> Publisher {
        let id = format!("test-{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
        let mut options = MqttOptions::new(id, addr.ip().to_string(), addr.port());
        options.set_keep_alive(Duration::from_secs(5));
        options.set_max_packet_size(128 * 1024, 128 * 1024);
        options.set_credentials(username, password);
        configure(&mut options);
        let (client, mut eventloop) = AsyncClient::new(options, 10_000);
        let (tx, rx) = tokio::sync::oneshot::channel();
        let driver = tokio::spawn(async move {
            let mut tx = Some(tx);
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        if let Some(tx) = tx.take() {
                            let _ = tx.send(());
                        }
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), rx).await.expect("MQTT connect in time").expect("connack");
        Publisher { client, driver }
    }

    pub async fn publish(&self, topic: &str, payload: impl Into<Vec<u8>>) {
        self.client.publish(topic, QoS::AtLeastOnce, false, payload.into()).await.expect("publish");
    }

    pub async fn publish_retained(&self, topic: &str, payload: impl Into<Vec<u8>>) {
        self.client.publish(topic, QoS::AtLeastOnce, true, payload.into()).await.expect("publish");
    }

    pub async fn telemetry(&self, space: &str, machine: &str, payload: Value) {
        self.publish(&format!("makrcave/{space}/{machine}/telemetry"), payload.to_string()).await;
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// A WebSocket client of makrcave.
pub type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens the WebSocket with `token`, subscribes to `space` and waits for its snapshot.
pub async fn open_space_ws(t: &TestApp, token: &str, space: &str) -> Socket {
    use futures_util::SinkExt;
    let url = format!("ws://{}/api/v1/ws?token={token}", t.app().http_addr());
    let mut ws = tokio_tungstenite::connect_async(url).await.expect("websocket connects").0;
    let subscribe = json!({"type": "subscribe", "makerspace_id": space}).to_string();
    ws.send(tokio_tungstenite::tungstenite::Message::text(subscribe)).await.expect("send");
    ws_until(&mut ws, |m| m["type"] == "snapshot").await;
    ws
}

/// Reads messages until one satisfies `check`, within 60 s in all: a machine that keeps
/// reporting (OctoPrint's telemetry) must not keep a failing wait alive forever.
pub async fn ws_until(ws: &mut Socket, check: impl Fn(&Value) -> bool) -> Value {
    use futures_util::StreamExt;
    let wait = async {
        loop {
            let msg = ws.next().await.expect("stream open").expect("no error");
            if let tokio_tungstenite::tungstenite::Message::Text(text) = msg {
                let v: Value = serde_json::from_str(&text).expect("json");
                if check(&v) {
                    return v;
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), wait).await.expect("the awaited message within 60 s")
}
