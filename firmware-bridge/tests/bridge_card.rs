//! Card readers on real pseudo-terminals: a serial reader produces taps, and in a whole bridge
//! with makrcave unreachable a tap is decided by the offline policy and reported as an
//! `offline_tap` event on a real Mosquitto.

mod bridge_support;

use std::time::Duration;

use bridge_support::{BridgeUnderTest, Mosquitto, Observer, Signer};
use chrono::Utc;
use makrcave_bridge::allowlist::AllowlistStore;
use makrcave_bridge::config::CardConfig;
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio_serial::{SerialPort, SerialStream};

const WITHIN: Duration = Duration::from_secs(20);

/// A pty pair: the test writes on the master as a reader would; the bridge opens the slave by
/// its path. The pair's own slave handle is closed (it holds the port's exclusive lock); the
/// pty lives as long as the master.
fn pty() -> (SerialStream, String) {
    let (master, slave) = SerialStream::pair().expect("cannot open a pseudo-terminal pair");
    let path = slave.name().expect("the pty's slave has no path");
    drop(slave);
    (master, path)
}

#[tokio::test]
async fn a_serial_reader_on_a_pty_produces_taps() {
    let (mut master, path) = pty();
    let mut taps = makrcave_bridge::card::spawn_reader(&CardConfig::Serial { port: path, baud: 9600 }).unwrap().taps;
    // Readers end lines with CR LF; noise and blank lines are no taps.
    master.write_all(b"04A1B2C3\r\n\r\n\xff\xfe\n04:a1:b2:c4\n").await.unwrap();
    let first = tokio::time::timeout(WITHIN, taps.recv()).await.unwrap().unwrap();
    let second = tokio::time::timeout(WITHIN, taps.recv()).await.unwrap().unwrap();
    assert_eq!((first.as_str(), second.as_str()), ("04A1B2C3", "04:a1:b2:c4"));
}

async fn tap(master: &mut SerialStream, uid: &str) {
    master.write_all(format!("{uid}\r\n").as_bytes()).await.unwrap();
}

async fn next_offline_tap(observer: &mut Observer, equipment: &str) -> Value {
    let payload = observer.next_matching(&format!("{equipment}/event"), WITHIN, |p| p.contains("offline_tap")).await;
    serde_json::from_str(&payload).unwrap()
}

#[tokio::test]
async fn offline_an_allowlisted_card_unlocks_and_every_tap_is_reported() {
    let broker = Mosquitto::start().await;
    let mut observer = Observer::connect(broker.port, "observer-allowlist").await;
    let signer = Signer::new();
    let now = Utc::now();
    let rfc = |d: chrono::Duration| (now + d).to_rfc3339();
    let list = signer.payload(
        "ms-1",
        &rfc(chrono::Duration::minutes(-5)),
        &rfc(chrono::Duration::days(7)),
        &[("04A1B2C3", "eq-offline", &rfc(chrono::Duration::days(3)))],
    );
    let dir = tempfile::tempdir().unwrap();
    AllowlistStore::new(dir.path()).save(&signer.sign_bytes(&list)).unwrap();
    let (mut master, path) = pty();
    let extra = format!(
        "[offline]\npolicy = \"allowlist\"\npublic_key = \"{}\"\nmax_unlock_minutes = 30\n[card]\nkind = \"serial\"\nport = \"{path}\"\n",
        signer.public_key_base64()
    );
    let bridge = BridgeUnderTest::start_in(dir, &broker, "eq-offline", 600, &extra).await;
    bridge.wait_relay("off", WITHIN).await;

    tap(&mut master, "CAFEBABE").await;
    let refused = next_offline_tap(&mut observer, "eq-offline").await;
    assert_eq!(refused["card_uid"], "CAFEBABE");
    assert_eq!(refused["action"], "unlock");
    assert_eq!(refused["granted"], false);
    assert_eq!(refused["reason"], "not_allowlisted");
    assert_eq!(bridge.relay().as_deref(), Some("off"));

    tap(&mut master, "04:a1:b2:c3").await;
    let granted = next_offline_tap(&mut observer, "eq-offline").await;
    assert_eq!(granted["card_uid"], "04:a1:b2:c3", "the uid as read");
    assert_eq!(granted["granted"], true);
    assert_eq!(granted["reason"], "allowlisted");
    assert!(granted["at"].as_str().unwrap().parse::<chrono::DateTime<Utc>>().is_ok());
    assert_ne!(granted["id"], refused["id"]);
    assert!(uuid::Uuid::parse_str(granted["id"].as_str().unwrap()).is_ok());
    bridge.wait_relay("on", WITHIN).await;

    // Another card does not end it (as online: not_your_session)...
    tap(&mut master, "CAFEBABE").await;
    let other = next_offline_tap(&mut observer, "eq-offline").await;
    assert_eq!((other["action"].as_str(), other["granted"].as_bool()), (Some("lock"), Some(false)));
    assert_eq!(other["reason"], "not_your_session");
    assert_eq!(bridge.relay().as_deref(), Some("on"));
    // ...the card that unlocked does, here (makrcave knows nothing of the offline unlock).
    tap(&mut master, "04A1B2C3").await;
    let lock = next_offline_tap(&mut observer, "eq-offline").await;
    assert_eq!((lock["action"].as_str(), lock["granted"].as_bool()), (Some("lock"), Some(true)));
    assert_eq!(lock["reason"], "own_session");
    bridge.wait_relay("off", WITHIN).await;
    bridge.stop().await;
}

#[tokio::test]
async fn offline_fail_closed_refuses_every_card() {
    let broker = Mosquitto::start().await;
    let mut observer = Observer::connect(broker.port, "observer-closed").await;
    let (mut master, path) = pty();
    let extra = format!("[card]\nkind = \"serial\"\nport = \"{path}\"\n");
    let bridge = BridgeUnderTest::start(&broker, "eq-closed", 600, &extra).await;
    bridge.wait_relay("off", WITHIN).await;
    tap(&mut master, "04A1B2C3").await;
    let refused = next_offline_tap(&mut observer, "eq-closed").await;
    assert_eq!(refused["granted"], false);
    assert_eq!(refused["reason"], "fail_closed");
    assert_eq!(bridge.relay().as_deref(), Some("off"));
    bridge.stop().await;
}
