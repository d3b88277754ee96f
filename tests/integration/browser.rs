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

/// chromedriver on a free port, killed on drop (the other browser modules drive it too).
pub struct Driver {
    child: Child,
    base: String,
    http: reqwest::Client,
    session: Option<String>,
}

impl Driver {
    pub async fn start() -> Driver {
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
        // The browser's console is kept for `console()` (the pages' CSP violations land there).
        let caps = json!({"capabilities": {"alwaysMatch": {"browserName": "chrome",
            "goog:loggingPrefs": {"browser": "ALL"}, "goog:chromeOptions": {
            "binary": chromium,
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
                     format!("--user-data-dir={}", profile.display()), "--window-size=1200,900"]
        }}}});
        let created = driver.call(reqwest::Method::POST, "/session", Some(caps)).await;
        driver.session = Some(created["sessionId"].as_str().expect("a WebDriver session").to_string());
        driver
    }

    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let value = self.call_raw(method, path, body).await;
        assert!(value["value"]["error"].is_null(), "WebDriver error: {value}");
        value["value"].clone()
    }

    /// The whole answer, errors included.
    async fn call_raw(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("WebDriver request");
        res.json().await.expect("WebDriver answer")
    }

    pub fn session_path(&self, rest: &str) -> String {
        format!("/session/{}{}", self.session.as_deref().expect("session"), rest)
    }

    pub async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, &self.session_path("/url"), Some(json!({"url": url}))).await;
    }

    pub async fn script(&self, script: &str) -> Value {
        self.call(
            reqwest::Method::POST,
            &self.session_path("/execute/sync"),
            Some(json!({"script": script, "args": []})),
        )
        .await
    }
}

impl Drop for Driver {
    /// Ends the WebDriver session first, so that chromedriver quits its Chromium (killing
    /// chromedriver alone leaves the browser running), then stops chromedriver.
    fn drop(&mut self) {
        if let Some(session) = &self.session {
            delete_session(&self.base, session);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `DELETE /session/{id}` over a plain blocking socket: a drop cannot await, and the runtime
/// may already be shutting down.
fn delete_session(base: &str, session: &str) {
    use std::io::{Read, Write};
    let Some(addr) = base.strip_prefix("http://") else { return };
    let Ok(mut stream) = std::net::TcpStream::connect(addr) else { return };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let request =
        format!("DELETE /session/{session} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_ok() {
        // The answer comes once the browser has quit.
        let _ = stream.read_to_end(&mut Vec::new());
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

impl Driver {
    /// Types into whatever element has the focus, as a USB card reader does (`\u{E007}` is
    /// the WebDriver code of Enter).
    async fn type_into_focus(&self, text: &str) {
        let active = self.call(reqwest::Method::GET, &self.session_path("/element/active"), None).await;
        let id =
            active.as_object().and_then(|o| o.values().next()).and_then(|v| v.as_str()).expect("a focused element");
        self.call(
            reqwest::Method::POST,
            &self.session_path(&format!("/element/{id}/value")),
            Some(json!({"text": text})),
        )
        .await;
    }
}

const READ_KIOSK: &str = r#"
    const result = document.getElementById('result');
    return { ready: !document.getElementById('ready').hidden,
             focused: document.activeElement && document.activeElement.id,
             shown: !result.hidden, reason: result.dataset.reason || null, text: result.textContent,
             missing: [...document.querySelectorAll('#missing-skills li')].map(li => li.textContent) };
"#;

#[actix_web::test]
async fn the_kiosk_page_unlocks_for_a_tapped_card_and_names_missing_skills() {
    let t =
        TestApp::spawn_with(crate::common::TestOptions { heartbeat_timeout_s: Some(3600), ..Default::default() }).await;
    t.makerspace("shop").await;
    let root = t.super_admin();
    t.machine("shop", "laser", json!({"name": "Laser cutter", "type": "laser_cutter"})).await;
    let p = t.publisher().await;
    p.publish("makrcave/shop/laser/status", "online").await;
    t.wait_state("shop", "laser", "laser online", |s| s["state"] == "idle").await;
    let (status, _) = t
        .post(
            "/api/v1/skills",
            &root,
            json!({"id": "laser-safety", "name": "Laser safety", "category": "Safety",
            "level": "beginner", "makerspace_id": "shop", "equipment_ids": ["laser"]}),
        )
        .await;
    assert_eq!(status, 201);
    for (user, card) in [("ada", "04A1B2C3"), ("bob", "04B0B0B0")] {
        let (_, m) = t
            .post(
                "/api/v1/makerspaces/shop/members",
                &root,
                json!({"email": format!("{user}@example.org"), "first_name": user, "last_name": "K", "user_id": user}),
            )
            .await;
        let id = m["id"].as_str().expect("member id");
        let (status, _) =
            t.post(&format!("/api/v1/makerspaces/shop/members/{id}/cards"), &root, json!({"uid": card})).await;
        assert_eq!(status, 201);
    }
    let (status, _) =
        t.post("/api/v1/skills/user-skills", &root, json!({"user_id": "ada", "skill_id": "laser-safety"})).await;
    assert_eq!(status, 201);
    let (_, kiosk) = t.post("/api/v1/makerspaces/shop/kiosks", &root, json!({"name": "Laser corner"})).await;
    let device = kiosk["token"].as_str().expect("device token");

    let driver = Driver::start().await;
    driver.goto(&format!("{}/kiosk?machine=laser#device={device}", t.base)).await;
    eventually(Duration::from_secs(20), "the kiosk to wait for a card, with the input focused", || async {
        let page = driver.script(READ_KIOSK).await;
        (page["ready"] == true && page["focused"] == "card").then_some(())
    })
    .await;

    driver.type_into_focus("04A1B2C3\u{E007}").await;
    let page = eventually(Duration::from_secs(5), "the grant on screen", || async {
        let page = driver.script(READ_KIOSK).await;
        (page["shown"] == true).then_some(page)
    })
    .await;
    assert_eq!(page["reason"], "granted", "{page}");
    assert!(page["text"].as_str().unwrap_or_default().starts_with("Unlocked"), "{page}");
    t.wait_state("shop", "laser", "the laser in use by Ada", |s| {
        s["state"] == "in_use" && s["session"]["user_id"] == "ada"
    })
    .await;
    // "I'm done": the page asks for a card (only hers or an admin's locks), and hers locks.
    driver.script("document.getElementById('lock').click(); return null;").await;
    eventually(Duration::from_secs(5), "the page to ask for the card that locks", || async {
        let hint = driver.script("return document.getElementById('tap-hint').textContent;").await;
        hint.as_str().is_some_and(|h| h.contains("to lock")).then_some(())
    })
    .await;
    driver.type_into_focus("04A1B2C3\u{E007}").await;
    eventually(Duration::from_secs(5), "the lock on screen", || async {
        let page = driver.script(READ_KIOSK).await;
        page["text"].as_str().is_some_and(|t| t.starts_with("Locked")).then_some(())
    })
    .await;
    t.wait_state("shop", "laser", "the laser free again", |s| s["state"] == "idle").await;

    driver.type_into_focus("04B0B0B0\u{E007}").await;
    let page = eventually(Duration::from_secs(5), "the refusal on screen", || async {
        let page = driver.script(READ_KIOSK).await;
        (page["reason"] == "insufficient_skills").then_some(page)
    })
    .await;
    assert!(page["text"].as_str().unwrap_or_default().contains("certification"), "plain words: {page}");
    assert_eq!(page["missing"], json!(["Laser safety"]));

    // A job ends on the laser: the page asks for the bed to be cleared, and a card confirms it.
    p.publish("makrcave/shop/laser/event", json!({"event": "job_started", "file": "sign.svg"}).to_string()).await;
    p.publish("makrcave/shop/laser/event", json!({"event": "job_finished"}).to_string()).await;
    t.wait_state("shop", "laser", "the laser waiting for its bed", |s| s["state"] == "awaiting_clear").await;
    eventually(Duration::from_secs(10), "the page to ask for the bed to be cleared", || async {
        let hint = driver.script("return document.getElementById('tap-hint').textContent;").await;
        hint.as_str().is_some_and(|h| h.contains("confirm it is clear")).then_some(())
    })
    .await;
    driver.type_into_focus("04B0B0B0\u{E007}").await;
    let page = eventually(Duration::from_secs(5), "the confirmation on screen", || async {
        let page = driver.script(READ_KIOSK).await;
        (page["reason"] == "cleared").then_some(page)
    })
    .await;
    assert!(page["text"].as_str().unwrap_or_default().starts_with("Bed cleared"), "{page}");
    t.wait_state("shop", "laser", "the laser free after Bob cleared it", |s| s["state"] == "idle").await;
    let (_, attempts) = t.get("/api/v1/makerspaces/shop/kiosk-attempts", Some(&root)).await;
    assert_eq!((attempts[0]["action"].as_str(), attempts[0]["user_id"].as_str()), (Some("clear"), Some("bob")));
    t.stop().await;
}

impl Driver {
    /// Clicks the element `css` selects, as a person would (it must be visible and enabled).
    /// An element drawn again between finding and clicking it is found again.
    pub async fn click(&self, css: &str) {
        for _ in 0..3 {
            let id = self.find(css).await;
            let path = self.session_path(&format!("/element/{id}/click"));
            let answer = self.call_raw(reqwest::Method::POST, &path, Some(json!({}))).await;
            match answer["value"]["error"].as_str() {
                None => return,
                Some("stale element reference") => continue,
                Some(_) => panic!("WebDriver error: {answer}"),
            }
        }
        panic!("{css} kept being drawn again");
    }

    /// The WebDriver id of the element `css` selects (it must exist).
    pub async fn find(&self, css: &str) -> String {
        let found = self
            .call(
                reqwest::Method::POST,
                &self.session_path("/element"),
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        let id = found.as_object().and_then(|o| o.values().next()).and_then(|v| v.as_str());
        id.unwrap_or_else(|| panic!("no element {css}: {found}")).to_string()
    }
}

/// The Today view as the test sees it: the booking's block on the timeline, its row, and
/// whether it is listed among the requests to approve.
fn read_today(reservation_id: &str) -> String {
    format!(
        r#"
    const block = document.querySelector('#timeline .booking[data-reservation-id="{reservation_id}"]');
    const row = block ? block.closest('.tl-row') : document.getElementById('tl-cnc');
    return {{ visible: !document.getElementById('today').hidden,
             live: document.getElementById('connection').textContent,
             status: block ? block.dataset.status : null,
             classes: block ? block.className : null,
             who: block ? block.querySelector('.who .long').textContent : null,
             row: row ? row.dataset.equipmentId : null,
             row_state: row ? row.dataset.state : null,
             row_label: row ? row.querySelector('.state').textContent : null,
             listed: !!document.querySelector('#pending-bookings li[data-reservation-id="{reservation_id}"]'),
             inbox: document.getElementById('inbox-count').textContent }};
"#
    )
}

#[actix_web::test]
async fn the_today_view_approves_a_pending_booking_in_place() {
    let t = TestApp::spawn().await;
    t.makerspace("shop").await;
    let root = t.super_admin();
    t.machine("shop", "cnc", json!({"name": "Shapeoko", "type": "cnc_machine", "requires_approval": true})).await;
    t.machine("shop", "printer", json!({"name": "Prusa"})).await;
    let (status, member) = t
        .post(
            "/api/v1/makerspaces/shop/members",
            &root,
            json!({"email": "elena@example.org", "first_name": "Elena", "last_name": "Rossi", "user_id": "elena"}),
        )
        .await;
    assert_eq!(status, 201, "{member}");
    let start = chrono::Utc::now() + chrono::Duration::minutes(2);
    let elena = t.token("elena", Role::Member, &["shop"]);
    let (status, booking) = t
        .post(
            "/api/v1/makerspaces/shop/reservations",
            &elena,
            json!({"equipment_id": "cnc", "start": start.to_rfc3339(),
                   "end": (start + chrono::Duration::hours(1)).to_rfc3339(), "purpose": "Aluminium plate"}),
        )
        .await;
    assert_eq!((status, &booking["status"]), (201, &json!("pending")), "{booking}");
    let id = booking["id"].as_str().expect("reservation id").to_string();
    let admin = t.token("boss", Role::MakerspaceAdmin, &["shop"]);

    let driver = Driver::start().await;
    driver.goto(&format!("{}/?makerspace=shop&view=today#token={admin}", t.base)).await;
    let page = eventually(Duration::from_secs(20), "the Today view with the pending booking, live", || async {
        let page = driver.script(&read_today(&id)).await;
        let ready = page["visible"] == true && page["live"] == "live" && page["row"] == "cnc";
        (ready && page["status"] == "pending" && page["listed"] == true).then_some(page)
    })
    .await;
    assert_eq!(page["row"], "cnc", "on the CNC's row: {page}");
    assert_eq!(page["who"], "Elena Rossi", "{page}");
    assert!(page["classes"].as_str().unwrap_or_default().contains("status-pending"), "{page}");
    assert_eq!(page["inbox"], "1", "{page}");
    assert_eq!(page["row_state"], "offline", "{page}");

    // The live state beside the row follows the machine.
    let p = t.publisher().await;
    p.telemetry("shop", "cnc", json!({"state": "idle"})).await;
    eventually(Duration::from_secs(5), "the CNC's row to show it idle", || async {
        let page = driver.script(&read_today(&id)).await;
        (page["row_state"] == "idle" && page["row_label"] == "Idle").then_some(())
    })
    .await;

    driver.click(&format!("#pending-bookings li[data-reservation-id=\"{id}\"] button.approve")).await;
    let page = eventually(Duration::from_secs(10), "the booking confirmed on the timeline", || async {
        let page = driver.script(&read_today(&id)).await;
        (page["status"] == "confirmed" && page["listed"] == false).then_some(page)
    })
    .await;
    assert!(page["classes"].as_str().unwrap_or_default().contains("status-confirmed"), "{page}");
    assert_eq!(page["row"], "cnc", "{page}");
    let (_, stored) = t.get(&format!("/api/v1/makerspaces/shop/reservations/{id}"), Some(&root)).await;
    assert_eq!((&stored["status"], &stored["decided_by"]), (&json!("confirmed"), &json!("boss")), "{stored}");

    // A change made elsewhere reaches the timeline over the WebSocket: cancelled, it leaves.
    let (status, _) = t.post(&format!("/api/v1/makerspaces/shop/reservations/{id}/cancel"), &elena, json!({})).await;
    assert_eq!(status, 200);
    eventually(Duration::from_secs(10), "the cancelled booking to leave the timeline", || async {
        let page = driver.script(&read_today(&id)).await;
        page["status"].is_null().then_some(())
    })
    .await;
    t.stop().await;
}

impl Driver {
    /// The browser console's messages since the last call (chromedriver's log endpoint; the
    /// session asked for them with `goog:loggingPrefs`).
    pub async fn console(&self) -> Vec<String> {
        let log =
            self.call(reqwest::Method::POST, &self.session_path("/se/log"), Some(json!({"type": "browser"}))).await;
        let entries = log.as_array().cloned().unwrap_or_default();
        entries
            .iter()
            .map(|e| format!("{} {}", e["level"].as_str().unwrap_or("?"), e["message"].as_str().unwrap_or("?")))
            .collect()
    }
}

/// The console messages that report a Content-Security-Policy violation.
pub fn csp_violations(console: &[String]) -> Vec<&String> {
    console.iter().filter(|m| m.contains("Content Security Policy") || m.contains("Content-Security-Policy")).collect()
}

#[actix_web::test]
async fn the_dashboard_and_the_kiosk_run_under_their_policy_without_a_violation() {
    let t =
        TestApp::spawn_with(crate::common::TestOptions { heartbeat_timeout_s: Some(3600), ..Default::default() }).await;
    t.makerspace("floor").await;
    let root = t.super_admin();
    t.machine("floor", "b1", json!({"name": "Bench printer"})).await;
    let (status, member) = t
        .post(
            "/api/v1/makerspaces/floor/members",
            &root,
            json!({"email": "elena@example.org", "first_name": "Elena", "last_name": "Rossi", "user_id": "elena"}),
        )
        .await;
    assert_eq!(status, 201, "{member}");
    let start = chrono::Utc::now() + chrono::Duration::minutes(5);
    let (status, booking) = t
        .post(
            "/api/v1/makerspaces/floor/reservations",
            &t.token("elena", Role::Member, &["floor"]),
            json!({"equipment_id": "b1", "start": start.to_rfc3339(),
                   "end": (start + chrono::Duration::hours(1)).to_rfc3339(), "purpose": "Brackets"}),
        )
        .await;
    assert_eq!(status, 201, "{booking}");
    let (_, kiosk) = t.post("/api/v1/makerspaces/floor/kiosks", &root, json!({"name": "Bench"})).await;
    let device = kiosk["token"].as_str().expect("device token").to_string();
    let admin = t.token("boss", Role::MakerspaceAdmin, &["floor"]);
    let driver = Driver::start().await;

    // The Floor, signed in and live, with a print in progress (its bar is styled by script).
    driver.goto(&format!("{}/?makerspace=floor#token={admin}", t.base)).await;
    eventually(Duration::from_secs(20), "the dashboard to show the machine card, live", || async {
        let card = driver.script(READ_CARD).await;
        (card["live"] == "live").then_some(())
    })
    .await;
    let p = t.publisher().await;
    p.telemetry("floor", "b1", json!({"state": "printing", "job": {"file": "gear.gcode", "progress": 42}})).await;
    let card = eventually(Duration::from_secs(5), "the card to show the print", || async {
        let card = driver.script(READ_CARD).await;
        (card["state"] == "running").then_some(card)
    })
    .await;
    assert!(card["progress"].as_str().unwrap_or_default().starts_with("42.0%"), "{card}");
    let width = driver.script("return document.querySelector('#machine-b1 .fill').style.width").await;
    assert_eq!(width, "42%", "the script styles the bar");

    // The Today view: the booking drawn on the timeline.
    driver.goto(&format!("{}/?makerspace=floor&view=today#token={admin}", t.base)).await;
    eventually(Duration::from_secs(20), "the Today view with the booking", || async {
        let page = driver.script(&read_today(booking["id"].as_str().unwrap_or_default())).await;
        (page["visible"] == true && page["live"] == "live" && page["status"] == "confirmed").then_some(())
    })
    .await;

    // The kiosk, waiting for a card; an unknown card is answered.
    driver.goto(&format!("{}/kiosk?machine=b1#device={device}", t.base)).await;
    eventually(Duration::from_secs(20), "the kiosk to wait for a card", || async {
        let page = driver.script(READ_KIOSK).await;
        (page["ready"] == true && page["focused"] == "card").then_some(())
    })
    .await;
    driver.type_into_focus("04FFFFFF\u{E007}").await;
    eventually(Duration::from_secs(5), "the kiosk's answer", || async {
        let page = driver.script(READ_KIOSK).await;
        (page["reason"] == "unknown_card").then_some(())
    })
    .await;
    let console = driver.console().await;
    assert_eq!(csp_violations(&console), Vec::<&String>::new(), "the whole console: {console:#?}");

    // The policy is in force, and its violations do reach the console: a script injected
    // into the page does not run.
    let ran = driver
        .script(
            "const s = document.createElement('script'); s.textContent = 'window.injected = true';
             document.body.appendChild(s); return window.injected === true",
        )
        .await;
    assert_eq!(ran, false, "an inline script ran");
    let console = eventually(Duration::from_secs(5), "the refused inline script in the console", || async {
        let console = driver.console().await;
        (!csp_violations(&console).is_empty()).then_some(console)
    })
    .await;
    assert!(csp_violations(&console).iter().any(|m| m.contains("inline script")), "{console:#?}");
    t.stop().await;
}

/// What the Stock view shows of `item` and `order`.
fn read_stock(item: &str, order: &str) -> String {
    format!(
        r#"
    const row = document.querySelector('#items tr[data-item-id="{item}"]');
    const order = document.querySelector('#orders li[data-order-id="{order}"]');
    return {{ visible: !document.getElementById('stock').hidden,
             level: row ? row.querySelector('.level').textContent : null,
             low: row ? row.classList.contains('low') : null,
             alerts: document.querySelectorAll('#alerts li').length,
             order: order ? order.dataset.status : null,
             receivable: !!(order && order.querySelector('button.receive')),
             badge: document.getElementById('low-count').hidden ? null : document.getElementById('low-count').textContent,
             problem: document.getElementById('stock-error').textContent }};
"#
    )
}

#[actix_web::test]
async fn the_stock_view_takes_a_delivery_in_place() {
    let t = TestApp::spawn().await;
    t.makerspace("shop").await;
    let admin = t.token("boss", Role::MakerspaceAdmin, &["shop"]);
    let base = "/api/v1/makerspaces/shop";
    let (status, item) = t
        .post(
            &format!("{base}/inventory"),
            &admin,
            json!({"id": "pla", "name": "PLA Galaxy Black", "category": "filament", "unit": "g", "current_stock": 1000,
                   "min_stock_level": 500, "reorder_quantity": 2000,
                   "supplier": {"kind": "external", "name": "Filament Co"}, "filament": {"material": "PLA", "color": "#202020"}}),
        )
        .await;
    assert_eq!(status, 201, "{item}");
    // A job's grams take it below its minimum: one alert, which becomes an order.
    let (status, deducted) = t
        .post(&format!("{base}/inventory/pla/deduct"), &admin, json!({"quantity": 600, "reason": "used_by_job"}))
        .await;
    assert_eq!(status, 200, "{deducted}");
    let (_, alerts) = t.get(&format!("{base}/inventory/alerts"), Some(&admin)).await;
    let alert = alerts["alerts"][0]["id"].as_str().expect("an alert").to_string();
    let (status, order) = t.post(&format!("{base}/purchase-orders"), &admin, json!({"alert_ids": [alert]})).await;
    assert_eq!(status, 201, "{order}");
    let order = order["id"].as_str().expect("order id").to_string();
    let (status, ordered) = t.post(&format!("{base}/purchase-orders/{order}/order"), &admin, json!(null)).await;
    assert_eq!(status, 200, "{ordered}");

    let driver = Driver::start().await;
    driver.goto(&format!("{}/?makerspace=shop&view=stock#token={admin}", t.base)).await;
    let page = eventually(Duration::from_secs(20), "the Stock view with the low item and its order", || async {
        let page = driver.script(&read_stock("pla", &order)).await;
        (page["visible"] == true && page["order"] == "ordered" && page["receivable"] == true).then_some(page)
    })
    .await;
    assert_eq!((&page["level"], &page["low"], &page["alerts"]), (&json!("400 g"), &json!(true), &json!(1)), "{page}");
    assert_eq!(page["badge"], "1", "the tab counts what runs low: {page}");

    driver.click(&format!("#orders li[data-order-id=\"{order}\"] button.receive")).await;
    let page = eventually(Duration::from_secs(10), "the delivery taken in", || async {
        let page = driver.script(&read_stock("pla", &order)).await;
        (page["order"].is_null() && page["level"] == "2400 g").then_some(page)
    })
    .await;
    assert_eq!(
        (&page["low"], &page["alerts"], &page["badge"], &page["problem"]),
        (&json!(false), &json!(0), &json!(null), &json!("")),
        "{page}"
    );

    // What the page did is what is stored: the order received, its row in the stock log.
    let (_, stored) = t.get(&format!("{base}/purchase-orders/{order}"), Some(&admin)).await;
    assert_eq!(stored["status"], "received", "{stored}");
    let (_, log) = t.get(&format!("{base}/inventory/pla/usage"), Some(&admin)).await;
    assert_eq!(
        (&log["usage"][0]["reason"], &log["usage"][0]["cause_kind"], &log["usage"][0]["delta"]),
        (&json!("received"), &json!("purchase_order"), &json!(2000.0)),
        "{log}"
    );
    t.stop().await;
}
