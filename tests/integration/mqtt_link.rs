//! The MQTT link against a real Mosquitto that goes away and comes back.

use std::time::Duration;

use serde_json::json;

use crate::common::{eventually, Mosquitto, TestApp, TestOptions};

#[actix_web::test]
async fn reconnects_and_resubscribes_when_mosquitto_comes_back() {
    // This test always uses Mosquitto: it has to stop and restart the broker.
    let mut broker = Mosquitto::start();
    let t = TestApp::spawn_with(TestOptions {
        mqtt_url: Some(broker.url()),
        mosquitto_files: Some(broker.files()),
        heartbeat_timeout_s: Some(3600),
        ..Default::default()
    })
    .await;
    t.makerspace("s").await;
    t.machine("s", "m", json!({})).await;
    let p = t.publisher().await;
    p.telemetry("s", "m", json!({"state": "running", "job": {"progress": 1}})).await;
    t.wait_state("s", "m", "first telemetry", |s| s["job"]["progress"] == 1.0).await;

    broker.stop();
    let status = t.app().state().mqtt.clone();
    eventually(Duration::from_secs(10), "makrcave to notice the broker is gone", || {
        let connected = status.is_connected();
        async move { (!connected).then_some(()) }
    })
    .await;
    let (code, health) = t.get("/healthz", None).await;
    assert_eq!(code, 503, "{health}");
    assert_eq!(health["mqtt"], "disconnected");

    broker.restart();
    eventually(Duration::from_secs(15), "makrcave to reconnect", || {
        let connected = status.is_connected();
        async move { connected.then_some(()) }
    })
    .await;
    // A new machine connection after the restart; makrcave must have subscribed again.
    let p = t.publisher().await;
    eventually(Duration::from_secs(10), "telemetry after the broker restart", || async {
        p.telemetry("s", "m", json!({"job": {"progress": 2}})).await;
        let s = t.state("s", "m").await;
        (s["job"]["progress"] == 2.0).then_some(())
    })
    .await;
    let (code, _) = t.get("/healthz", None).await;
    assert_eq!(code, 200);
    t.stop().await;
}
