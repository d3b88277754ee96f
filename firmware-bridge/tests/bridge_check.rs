//! `makrcave-bridge check` and `--help`, run as the real binary against a real Mosquitto and a
//! tiny HTTP server: one line per check, and the exit code says whether anything is wrong.

mod bridge_support;

use std::time::Duration;

use bridge_support::{FakeServer, Mosquitto, SeenRequest};

fn makrcave(request: &SeenRequest) -> (u16, Vec<u8>) {
    match (request.path.as_str(), request.authorization.as_deref()) {
        ("/api/v1/kiosk/machines", Some("Bearer token")) => (200, b"[]".to_vec()),
        _ => (401, b"{}".to_vec()),
    }
}

async fn check(config: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bridge.toml");
    let config = config.replace("STATE_DIR", &dir.path().join("state").display().to_string());
    std::fs::write(&path, config).unwrap();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_makrcave-bridge"))
        .arg("check")
        .arg("--config")
        .arg(&path)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(30), output).await.unwrap().unwrap();
    (output.status.code().unwrap_or(-1), String::from_utf8(output.stdout).unwrap())
}

fn config(server: &str, token: &str, mqtt: &str, relay_on: &str) -> String {
    format!(
        r#"
        [server]
        url = "{server}"
        device_token = "{token}"
        [machine]
        makerspace_id = "ms-1"
        equipment_id = "eq-check"
        [mqtt]
        url = "{mqtt}"
        [relay]
        kind = "command"
        on = ["{relay_on}"]
        off = ["true"]
        [offline]
        public_key = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
        [queue]
        dir = "STATE_DIR"
        "#
    )
}

#[tokio::test]
async fn a_good_setup_passes_every_check() {
    let broker = Mosquitto::start().await;
    let server = FakeServer::start(makrcave).await;
    let (code, out) = check(&config(&server.url, "token", &broker.url(), "true")).await;
    assert_eq!(code, 0, "{out}");
    for name in ["relay on command", "relay off command", "broker", "server", "allowlist key", "state folder"] {
        assert!(out.lines().any(|l| l.starts_with("OK") && l.contains(name)), "no OK for {name}:\n{out}");
    }
}

#[tokio::test]
async fn every_problem_gets_its_line_and_a_failing_exit_code() {
    let broker = Mosquitto::start_closed().await;
    let server = FakeServer::start(makrcave).await;
    let (code, out) = check(&config(&server.url, "stale-token", &broker.url(), "/no/such/relay-on")).await;
    assert_eq!(code, 1, "{out}");
    let line = |name: &str| out.lines().find(|l| l.contains(name)).unwrap_or_else(|| panic!("no {name}:\n{out}"));
    assert!(line("relay on command").starts_with("FAIL"), "{out}");
    assert!(line("relay off command").starts_with("OK"), "{out}");
    assert!(line("broker").contains("bad credentials"), "{out}");
    assert!(line("server").contains("token is refused"), "{out}");
}

#[tokio::test]
async fn help_lists_the_actions() {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_makrcave-bridge")).arg("--help").output();
    let output = tokio::time::timeout(Duration::from_secs(30), output).await.unwrap().unwrap();
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(output.status.success());
    assert!(text.contains("check") && text.contains("run") && text.contains("--config"), "{text}");
}
