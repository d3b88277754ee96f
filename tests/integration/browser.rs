//! The dashboard in a real headless Chromium, driven over WebDriver (chromedriver).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use makrcave::domain::access::Role;
use serde_json::{json, Value};

use crate::common::{eventually, free_port, TestApp};

fn find(env: &str, candidates: &[&str], install_hint: &str) -> PathBuf {
    if let Ok(path) = std::env::var(env) {
        return PathBuf::from(path);
    }
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("the browser test needs {install_hint} (or set {env})"))
}

/// chromedriver on a free port, killed on drop.
struct Driver {
    child: Child,
    base: String,
    http: reqwest::Client,
    session: Option<String>,
}

impl Driver {
    async fn start() -> Driver {
        let binary = find("CHROMEDRIVER", &["/usr/bin/chromedriver"], "chromedriver (apt-get install chromium-driver)");
        let port = free_port();
        let child = Command::new(binary)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let mut driver =
            Driver { child, base: format!("http://127.0.0.1:{port}"), http: reqwest::Client::new(), session: None };
        let http = driver.http.clone();
        let status = format!("{}/status", driver.base);
        eventually(Duration::from_secs(20), "chromedriver to be ready", || {
            let (http, status) = (http.clone(), status.clone());
            async move {
                let res = http.get(status).send().await.ok()?;
                let body: Value = res.json().await.ok()?;
                body["value"]["ready"].as_bool().filter(|r| *r).map(|_| ())
            }
        })
        .await;
        let chromium = find(
            "CHROMIUM",
            &["/usr/bin/chromium", "/usr/bin/chromium-browser"],
            "chromium (apt-get install chromium)",
        );
        let profile = tempfile::tempdir().expect("profile dir").keep();
        let caps = json!({"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": chromium,
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
                     format!("--user-data-dir={}", profile.display()), "--window-size=1200,900"]
        }}}});
        let created = driver.call(reqwest::Method::POST, "/session", Some(caps)).await;
        driver.session = Some(created["sessionId"].as_str().expect("a WebDriver session").to_string());
        driver
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("WebDriver request");
        let value: Value = res.json().await.expect("WebDriver answer");
        assert!(value["value"]["error"].is_null(), "WebDriver error: {value}");
        value["value"].clone()
    }

    fn session_path(&self, rest: &str) -> String {
        format!("/session/{}{}", self.session.as_deref().expect("session"), rest)
    }

    async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, &self.session_path("/url"), Some(json!({"url": url}))).await;
    }

    async fn script(&self, script: &str) -> Value {
        self.call(
            reqwest::Method::POST,
            &self.session_path("/execute/sync"),
            Some(json!({"script": script, "args": []})),
        )
        .await
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const READ_CARD: &str = r#"
    const card = document.getElementById('machine-b1');
    if (!card) return null;
    return { state: card.dataset.state, label: card.querySelector('.state').textContent,
             progress: card.querySelector('.progress-text').textContent,
             nozzle: card.querySelector('.temps').textContent,
             live: document.getElementById('connection').textContent };
"#;

#[actix_web::test]
async fn the_dashboard_shows_a_telemetry_change_within_two_seconds() {
    let t = TestApp::spawn().await;
    t.makerspace("floor").await;
    t.machine("floor", "b1", json!({"name": "Bench printer"})).await;
    let token = t.token("viewer", Role::Member, &["floor"]);
    let driver = Driver::start().await;
    driver.goto(&format!("{}/?makerspace=floor#token={token}", t.base)).await;

    let card = eventually(Duration::from_secs(20), "the dashboard to show the machine card, live", || async {
        let card = driver.script(READ_CARD).await;
        (card["live"] == "live").then_some(card)
    })
    .await;
    assert_eq!(card["state"], "offline", "{card}");

    let p = t.publisher().await;
    let published = Instant::now();
    p.telemetry(
        "floor",
        "b1",
        json!({"state": "printing", "job": {"file": "gear.gcode", "progress": 42}, "temps": {"nozzle": 215.5}}),
    )
    .await;
    let card = eventually(Duration::from_secs(2), "the card to show the print within 2 s", || async {
        let card = driver.script(READ_CARD).await;
        (card["state"] == "running").then_some(card)
    })
    .await;
    assert!(published.elapsed() < Duration::from_secs(2));
    assert_eq!(card["label"], "Running");
    assert!(card["progress"].as_str().unwrap_or_default().starts_with("42.0%"), "{card}");
    assert!(card["nozzle"].as_str().unwrap_or_default().contains("215.5"), "{card}");
    t.stop().await;
}
