//! The HTTP side against a tiny real HTTP server standing in for makrcave (the lead's
//! end-to-end test runs against a real makrcave): the kiosk calls with the device token,
//! unreachable versus refused, job files checked by size and SHA-256, and a whole bridge
//! whose taps unlock and lock through the server and whose `start` hands a verified file to
//! the controller (or reports `job_failed`).

mod bridge_support;

use std::time::Duration;

use bridge_support::{free_port, BridgeUnderTest, FakeServer, Mosquitto, Observer, SeenRequest};
use makrcave_bridge::allowlist::hex;
use makrcave_bridge::jobs::JobAction;
use makrcave_bridge::server::{DownloadError, ServerClient, ServerError};
use rumqttc::QoS;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tokio_serial::{SerialPort, SerialStream};

const WITHIN: Duration = Duration::from_secs(20);
const GCODE: &[u8] = b"G21\nG90\nM3 S1000\nG1 X10 Y10 F600\nM5\n";

fn sha(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// makrcave as the contract describes it, for a device token "token".
fn makrcave(request: &SeenRequest) -> (u16, Vec<u8>) {
    if request.authorization.as_deref() != Some("Bearer token") {
        return (401, br#"{"error_type":"unauthorized"}"#.to_vec());
    }
    let body: Value = serde_json::from_str(&request.body).unwrap_or(Value::Null);
    let reply = match (request.method.as_str(), request.path.as_str()) {
        ("POST", "/api/v1/kiosk/unlock") if body["card_uid"] == "04A1B2C3" => {
            json!({"granted": true, "session_id": "s-42"})
        }
        ("POST", "/api/v1/kiosk/unlock") => json!({"granted": false, "reason": "unknown_card"}),
        ("POST", "/api/v1/kiosk/lock") => json!({"locked": true}),
        ("GET", "/api/v1/kiosk/machines") => json!([]),
        ("GET", "/api/v1/kiosk/jobs/j1/file") => return (200, GCODE.to_vec()),
        _ => return (404, b"{}".to_vec()),
    };
    (200, reply.to_string().into_bytes())
}

fn client(url: &str, token: &str) -> ServerClient {
    ServerClient::new(url, token, "eq-laser-001", Duration::from_secs(5)).unwrap()
}

#[tokio::test]
async fn kiosk_calls_carry_the_token_and_the_contracts_body() {
    let server = FakeServer::start(makrcave).await;
    let reply = client(&server.url, "token").unlock("04A1B2C3").await.unwrap();
    assert!(reply.granted);
    assert_eq!(reply.session_id.as_deref(), Some("s-42"));
    let refused = client(&server.url, "token").unlock("CAFEBABE").await.unwrap();
    assert_eq!((refused.granted, refused.reason.as_deref()), (false, Some("unknown_card")));
    assert!(client(&server.url, "token").lock(Some("04A1B2C3")).await.unwrap().locked);
    let seen = server.requests();
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].path, "/api/v1/kiosk/unlock");
    let body: Value = serde_json::from_str(&seen[0].body).unwrap();
    assert_eq!(body, json!({"equipment_id": "eq-laser-001", "card_uid": "04A1B2C3"}));
}

#[tokio::test]
async fn a_refusal_is_not_unreachable() {
    let server = FakeServer::start(makrcave).await;
    let err = client(&server.url, "wrong").unlock("04A1B2C3").await.unwrap_err();
    assert!(matches!(err, ServerError::Unauthorized));
    assert!(!err.is_unreachable());
    assert!(matches!(client(&server.url, "wrong").machines().await, Err(ServerError::Unauthorized)));
    let closed = format!("http://127.0.0.1:{}", free_port());
    let err = client(&closed, "token").unlock("04A1B2C3").await.unwrap_err();
    assert!(err.is_unreachable(), "{err}");
}

#[tokio::test]
async fn job_files_are_checked_before_anything_uses_them() {
    let server = FakeServer::start(makrcave).await;
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.job");
    let path = "/api/v1/kiosk/jobs/j1/file";
    client(&server.url, "token").download(path, &good, &sha(GCODE), GCODE.len() as u64).await.unwrap();
    assert_eq!(std::fs::read(&good).unwrap(), GCODE);

    let bad_hash = dir.path().join("bad-hash.job");
    let err = client(&server.url, "token").download(path, &bad_hash, &"0".repeat(64), GCODE.len() as u64).await;
    assert!(matches!(err, Err(DownloadError::Hash { .. })));
    let bad_size = dir.path().join("bad-size.job");
    let err = client(&server.url, "token").download(path, &bad_size, &sha(GCODE), 10).await;
    assert!(matches!(err, Err(DownloadError::Size { .. })));
    // Nothing half-checked is left for a controller to pick up.
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, vec![std::ffi::OsString::from("good.job")]);
}

#[tokio::test]
async fn taps_unlock_and_lock_through_makrcave() {
    let broker = Mosquitto::start().await;
    let server = FakeServer::start(makrcave).await;
    let (mut master, slave) = SerialStream::pair().unwrap();
    let path = slave.name().unwrap();
    drop(slave); // it holds the port's lock; the bridge opens the path
    let extra = format!("[card]\nkind = \"serial\"\nport = \"{path}\"\n");
    let bridge =
        BridgeUnderTest::start_full(tempfile::tempdir().unwrap(), &server.url, &broker, "eq-online", 600, &extra).await;
    bridge.wait_relay("off", WITHIN).await;
    master.write_all(b"CAFEBABE\n").await.unwrap();
    bridge_support::wait_for("the refused unlock", WITHIN, || (server.requests().len() == 1).then_some(())).await;
    master.write_all(b"04A1B2C3\n").await.unwrap();
    bridge.wait_relay("on", WITHIN).await;
    master.write_all(b"04A1B2C3\n").await.unwrap();
    bridge.wait_relay("off", WITHIN).await;
    let paths: Vec<String> = server.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(paths, ["/api/v1/kiosk/unlock", "/api/v1/kiosk/unlock", "/api/v1/kiosk/lock"]);
    bridge.stop().await;
}

#[tokio::test]
async fn start_hands_a_verified_file_to_the_controller_or_reports_job_failed() {
    let broker = Mosquitto::start().await;
    let mut observer = Observer::connect(broker.port, "observer-start").await;
    let server = FakeServer::start(makrcave).await;
    let mut bridge =
        BridgeUnderTest::start_full(tempfile::tempdir().unwrap(), &server.url, &broker, "eq-start", 600, "").await;
    // Its first telemetry follows its SUBSCRIBE to cmd.
    observer.next_matching("eq-start/telemetry", WITHIN, |_| true).await;
    let cmd = "makrcave/ms-1/eq-start/cmd";
    let start = |sha: String| {
        json!({"action": "start", "job_id": "j1", "file": "part.gcode", "url": "/api/v1/kiosk/jobs/j1/file",
               "sha256": sha, "size": GCODE.len()})
        .to_string()
    };
    observer.client.publish(cmd, QoS::AtLeastOnce, false, start(sha(GCODE))).await.unwrap();
    let action = tokio::time::timeout(WITHIN, bridge.controller.actions.recv()).await.unwrap().unwrap();
    let JobAction::Start { job_id, file } = action else { panic!("expected a start, got {action:?}") };
    assert_eq!(job_id, "j1");
    assert_eq!(std::fs::read(&file).unwrap(), GCODE);

    observer.client.publish(cmd, QoS::AtLeastOnce, false, start("f".repeat(64))).await.unwrap();
    let failed = observer.next_matching("eq-start/event", WITHIN, |p| p.contains("job_failed")).await;
    let failed: Value = serde_json::from_str(&failed).unwrap();
    assert_eq!(failed["job_id"], "j1");
    assert!(failed["reason"].as_str().unwrap().contains("sha256"), "{failed}");

    observer.client.publish(cmd, QoS::AtLeastOnce, false, r#"{"action":"pause"}"#).await.unwrap();
    let action = tokio::time::timeout(WITHIN, bridge.controller.actions.recv()).await.unwrap().unwrap();
    assert_eq!(action, JobAction::Pause);
    bridge.stop().await;
}
