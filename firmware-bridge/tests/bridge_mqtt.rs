//! The MQTT link against a real Mosquitto started by each test on its own free port:
//! status online and the last will, commands from `cmd`, and telemetry and events that wait
//! on disk while the broker is away and arrive in order, exactly once, when it is back.

mod bridge_support;

use std::time::Duration;

use bridge_support::{wait_for, Mosquitto, Observer};
use makrcave_bridge::command::Command;
use makrcave_bridge::config::MqttEndpoint;
use makrcave_bridge::link::{self, LinkConfig, Topics};
use makrcave_bridge::queue::DiskQueue;
use rumqttc::QoS;
use serde_json::{json, Value};

const WITHIN: Duration = Duration::from_secs(30);

fn link_config(broker: &Mosquitto, equipment: &str) -> LinkConfig {
    LinkConfig {
        endpoint: MqttEndpoint::parse(&broker.url()).unwrap(),
        client_id: format!("makrcave-bridge-{equipment}"),
        keep_alive: Duration::from_secs(5),
        topics: Topics::new("ms-1", equipment),
    }
}

#[tokio::test]
async fn telemetry_and_events_wait_on_disk_while_the_broker_is_away_then_arrive_in_order_once() {
    let mut broker = Mosquitto::start().await;
    let mut observer = Observer::connect(broker.port, "observer-replay").await;
    let dir = tempfile::tempdir().unwrap();
    let queue = DiskQueue::open(dir.path(), 1024 * 1024).unwrap();
    let (link, _commands, _task) = link::spawn(link_config(&broker, "eq-replay"), queue);
    observer.next_matching("eq-replay/status", WITHIN, |p| p == "online").await;

    // Online: a message goes straight through.
    link.publish_telemetry(json!({"seq": 0})).await.unwrap();
    observer.next_matching("eq-replay/telemetry", WITHIN, |p| p.contains(r#""seq":0"#)).await;

    broker.stop().await;
    let connected = link.connected();
    wait_for("the link to notice the broker left", WITHIN, || (!*connected.borrow()).then_some(())).await;
    let mut expected = Vec::new();
    for i in 1..=6 {
        if i % 2 == 0 {
            link.publish_event(json!({"event": "job_progress", "progress": i})).await.unwrap();
            expected.push(("event", i));
        } else {
            link.publish_telemetry(json!({"seq": i})).await.unwrap();
            expected.push(("telemetry", i));
        }
    }
    assert_eq!(link.queued(), 6, "all six wait in the queue on disk");

    broker.start_again().await;
    wait_for("the queue to drain", WITHIN, || (link.queued() == 0).then_some(())).await;
    // A marker after the replay: anything sent twice would arrive before it.
    link.publish_event(json!({"event": "marker"})).await.unwrap();

    let mut received = Vec::new();
    loop {
        let (topic, payload) = tokio::time::timeout(WITHIN, observer.messages.recv()).await.unwrap().unwrap();
        let value: Value = match serde_json::from_str(&payload) {
            Ok(value) => value,
            Err(_) => continue, // status
        };
        if value["event"] == "marker" {
            break;
        }
        if topic.ends_with("/telemetry") {
            assert_eq!(value["dropped"], 0);
            assert!(value["ts"].is_string());
            received.push(("telemetry", value["seq"].as_i64().unwrap()));
        } else if topic.ends_with("/event") {
            received.push(("event", value["progress"].as_i64().unwrap()));
        }
    }
    assert_eq!(received, expected);
}

#[tokio::test]
async fn the_last_will_marks_the_machine_offline_when_the_connection_dies() {
    let broker = Mosquitto::start().await;
    let mut observer = Observer::connect(broker.port, "observer-will").await;
    let dir = tempfile::tempdir().unwrap();
    let (link, _commands, task) =
        link::spawn(link_config(&broker, "eq-will"), DiskQueue::open(dir.path(), 65536).unwrap());
    observer.next_matching("eq-will/status", WITHIN, |p| p == "online").await;
    let connected = link.connected();
    wait_for("connected", WITHIN, || (*connected.borrow()).then_some(())).await;

    // The process dies: its socket closes without DISCONNECT, so the broker sends the will.
    task.abort();
    observer.next_matching("eq-will/status", WITHIN, |p| p == "offline").await;

    // Retained: a dashboard connecting later sees the machine offline too.
    let mut late = Observer::connect(broker.port, "observer-late").await;
    late.next_matching("eq-will/status", WITHIN, |p| p == "offline").await;
}

#[tokio::test]
async fn a_clean_stop_says_offline_itself() {
    let broker = Mosquitto::start().await;
    let mut observer = Observer::connect(broker.port, "observer-stop").await;
    let dir = tempfile::tempdir().unwrap();
    let (link, _commands, task) =
        link::spawn(link_config(&broker, "eq-stop"), DiskQueue::open(dir.path(), 65536).unwrap());
    observer.next_matching("eq-stop/status", WITHIN, |p| p == "online").await;
    let connected = link.connected();
    wait_for("connected", WITHIN, || (*connected.borrow()).then_some(())).await;
    link.shutdown().await;
    tokio::time::timeout(WITHIN, task).await.unwrap().unwrap();
    observer.next_matching("eq-stop/status", WITHIN, |p| p == "offline").await;
}

#[tokio::test]
async fn commands_arrive_and_garbage_is_ignored() {
    let broker = Mosquitto::start().await;
    let mut observer = Observer::connect(broker.port, "observer-cmd").await;
    let dir = tempfile::tempdir().unwrap();
    let (link, mut commands, _task) =
        link::spawn(link_config(&broker, "eq-cmd"), DiskQueue::open(dir.path(), 65536).unwrap());
    observer.next_matching("eq-cmd/status", WITHIN, |p| p == "online").await;
    let connected = link.connected();
    wait_for("connected", WITHIN, || (*connected.borrow()).then_some(())).await;
    // The link subscribes right after CONNACK; a command is only sure to arrive once the
    // subscription is in place, so send until the first one comes back.
    let cmd = "makrcave/ms-1/eq-cmd/cmd";
    let first = loop {
        observer.client.publish(cmd, QoS::AtLeastOnce, false, r#"{"action":"pause"}"#).await.unwrap();
        if let Ok(Some(command)) = tokio::time::timeout(Duration::from_millis(500), commands.recv()).await {
            break command;
        }
    };
    assert_eq!(first, Command::Pause);
    while let Ok(Some(extra)) = tokio::time::timeout(Duration::from_millis(200), commands.recv()).await {
        assert_eq!(extra, Command::Pause, "only the repeated pauses may still arrive");
    }
    for payload in [
        "not json",
        r#"{"action":"self_destruct"}"#,
        r#"{"action":"unlock","session_id":"s1","until":"2026-11-21T18:00:00Z"}"#,
    ] {
        observer.client.publish(cmd, QoS::AtLeastOnce, false, payload).await.unwrap();
    }
    let next = tokio::time::timeout(WITHIN, commands.recv()).await.unwrap().unwrap();
    assert_eq!(
        next,
        Command::Unlock { session_id: Some("s1".into()), until: Some("2026-11-21T18:00:00Z".parse().unwrap()) }
    );
}
