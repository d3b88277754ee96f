//! The relay through its command path (commands that write to a file the test reads) in a
//! whole bridge on a real Mosquitto: unlock and lock from `cmd`, the session's `until`
//! enforced locally, never a cut while a job runs, until the grace time.

mod bridge_support;

use std::time::Duration;

use bridge_support::{BridgeUnderTest, Mosquitto, Observer};
use chrono::Utc;
use rumqttc::QoS;
use serde_json::{json, Value};

const WITHIN: Duration = Duration::from_secs(20);

/// Waits until the bridge has subscribed to `cmd` (its first telemetry follows the SUBSCRIBE
/// on the same connection), then sends `command`.
async fn send_when_ready(observer: &mut Observer, equipment: &str, command: Value) {
    observer.next_matching(&format!("{equipment}/telemetry"), WITHIN, |_| true).await;
    send(observer, equipment, command).await;
}

async fn send(observer: &Observer, equipment: &str, command: Value) {
    let topic = format!("makrcave/ms-1/{equipment}/cmd");
    observer.client.publish(topic, QoS::AtLeastOnce, false, command.to_string()).await.unwrap();
}

fn relay_of(payload: &str) -> Option<bool> {
    serde_json::from_str::<Value>(payload).ok()?["relay"].as_bool()
}

#[tokio::test]
async fn unlock_switches_on_and_the_sessions_end_locks_without_the_server() {
    let broker = Mosquitto::start().await;
    let mut observer = Observer::connect(broker.port, "observer-until").await;
    let bridge = BridgeUnderTest::start(&broker, "eq-until", 600, "").await;
    bridge.wait_relay("off", WITHIN).await; // switched off at start
    let until = Utc::now() + chrono::Duration::seconds(2);
    send_when_ready(&mut observer, "eq-until", json!({"action": "unlock", "session_id": "s1", "until": until})).await;
    bridge.wait_relay("on", WITHIN).await;
    observer.next_matching("eq-until/telemetry", WITHIN, |p| relay_of(p) == Some(true)).await;

    // makrcave says nothing more: the bridge locks on its own when `until` passes.
    bridge.wait_relay("off", WITHIN).await;
    assert!(Utc::now() >= until, "locked before the session's end");
    observer.next_matching("eq-until/telemetry", WITHIN, |p| relay_of(p) == Some(false)).await;
    bridge.stop().await;
}

#[tokio::test]
async fn a_lock_command_switches_off() {
    let broker = Mosquitto::start().await;
    let mut observer = Observer::connect(broker.port, "observer-lock").await;
    let bridge = BridgeUnderTest::start(&broker, "eq-lock", 600, "").await;
    send_when_ready(&mut observer, "eq-lock", json!({"action": "unlock", "session_id": "s1"})).await;
    bridge.wait_relay("on", WITHIN).await;
    send(&observer, "eq-lock", json!({"action": "lock", "session_id": "s1"})).await;
    bridge.wait_relay("off", WITHIN).await;
    bridge.stop().await;
}

#[tokio::test]
async fn a_running_job_keeps_the_power_on_past_the_sessions_end_until_it_ends() {
    let broker = Mosquitto::start().await;
    let mut observer = Observer::connect(broker.port, "observer-job").await;
    let bridge = BridgeUnderTest::start(&broker, "eq-job", 600, "").await;
    bridge.controller.job_running.send_replace(true);
    let until = Utc::now() + chrono::Duration::seconds(1);
    send_when_ready(&mut observer, "eq-job", json!({"action": "unlock", "session_id": "s1", "until": until})).await;
    bridge.wait_relay("on", WITHIN).await;

    // A heartbeat stamped well after the session's end still reports the relay on.
    let later = until + chrono::Duration::milliseconds(1500);
    let payload = observer
        .next_matching("eq-job/telemetry", WITHIN, |p| {
            let value: Value = serde_json::from_str(p).unwrap();
            value["ts"].as_str().and_then(|ts| ts.parse::<chrono::DateTime<Utc>>().ok()).is_some_and(|ts| ts > later)
        })
        .await;
    assert_eq!(relay_of(&payload), Some(true));
    assert_eq!(bridge.relay().as_deref(), Some("on"));

    // The job ends: the power goes at once (long before the 600 s grace).
    bridge.controller.job_running.send_replace(false);
    bridge.wait_relay("off", Duration::from_secs(5)).await;
    bridge.stop().await;
}

#[tokio::test]
async fn the_grace_time_cuts_a_job_that_does_not_end() {
    let broker = Mosquitto::start().await;
    let mut observer = Observer::connect(broker.port, "observer-grace").await;
    let grace = 2;
    let bridge = BridgeUnderTest::start(&broker, "eq-grace", grace, "").await;
    bridge.controller.job_running.send_replace(true);
    let until = Utc::now() + chrono::Duration::seconds(1);
    send_when_ready(&mut observer, "eq-grace", json!({"action": "unlock", "session_id": "s1", "until": until})).await;
    bridge.wait_relay("on", WITHIN).await;
    bridge.wait_relay("off", WITHIN).await;
    assert!(Utc::now() >= until + chrono::Duration::seconds(grace as i64), "cut before the grace time was up");
    bridge.stop().await;
}
