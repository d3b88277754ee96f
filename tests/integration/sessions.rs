//! Usage sessions and machine commands: unlocking publishes each machine's own power command
//! on the real broker, the machine shows `in_use` with its member, and locking (or running
//! out of time) switches it off and stores the session with its cost.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use makrcave::actors::machine::UnlockRefusal;
use makrcave::domain::machine::Session;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::json;

use crate::common::{eventually, TestApp, TestOptions};

/// Everything published on the broker, as (topic, payload).
struct Sniffer {
    seen: Arc<Mutex<Vec<(String, String)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Sniffer {
    async fn start(t: &TestApp) -> Sniffer {
        let mut options =
            MqttOptions::new(format!("sniffer-{}", uuid::Uuid::new_v4().simple()), "127.0.0.1", t.mqtt.port());
        options.set_keep_alive(Duration::from_secs(5));
        let (username, password) = t.service_login();
        options.set_credentials(username, password);
        let (client, mut eventloop) = AsyncClient::new(options, 100);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let task = {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut ready = Some(ready_tx);
                loop {
                    match eventloop.poll().await {
                        Ok(Event::Incoming(Packet::ConnAck(_))) => {
                            client.subscribe("#", QoS::AtLeastOnce).await.expect("subscribe");
                        }
                        Ok(Event::Incoming(Packet::SubAck(_))) => {
                            if let Some(tx) = ready.take() {
                                let _ = tx.send(());
                            }
                        }
                        Ok(Event::Incoming(Packet::Publish(p))) => {
                            let payload = String::from_utf8_lossy(&p.payload).to_string();
                            seen.lock().expect("lock").push((p.topic.clone(), payload));
                        }
                        Ok(_) => {}
                        Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                    }
                }
            })
        };
        tokio::time::timeout(Duration::from_secs(10), ready_rx).await.expect("subscribed in time").expect("suback");
        Sniffer { seen, task }
    }

    /// Waits for a message on `topic` and returns its payload.
    async fn wait_for(&self, topic: &str, payload_has: &str) -> String {
        eventually(Duration::from_secs(10), &format!("a message on {topic} with {payload_has}"), || async {
            let seen = self.seen.lock().expect("lock");
            seen.iter().find(|(t, p)| t == topic && p.contains(payload_has)).map(|(_, p)| p.clone())
        })
        .await
    }
}

impl Drop for Sniffer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn session(user: &str, until: Option<chrono::DateTime<chrono::Utc>>) -> Session {
    Session {
        id: uuid::Uuid::new_v4().to_string(),
        user_id: user.into(),
        member_id: None,
        started_at: chrono::Utc::now(),
        until,
    }
}

#[actix_web::test]
async fn unlocking_and_locking_speaks_each_machines_own_language() {
    let t = TestApp::spawn_with(TestOptions { heartbeat_timeout_s: Some(3600), ..Default::default() }).await;
    t.makerspace("s").await;
    t.machine("s", "gen", json!({"type": "cnc_machine"})).await;
    t.machine(
        "s",
        "tas",
        json!({"type": "laser_cutter", "hourly_rate": 12.0, "connection": {"kind": "tasmota", "topic": "laser1"}}),
    )
    .await;
    t.machine(
        "s",
        "sh1",
        json!({"type": "tool", "connection": {"kind": "shelly_gen1", "device_id": "shellyplug-s-AABBCC"}}),
    )
    .await;
    t.machine(
        "s",
        "sh2",
        json!({"type": "tool", "connection": {"kind": "shelly_gen2", "device_id": "shellyplusplugs-aabbcc"}}),
    )
    .await;
    let sniffer = Sniffer::start(&t).await;
    let p = t.publisher().await;
    for id in ["gen", "tas", "sh1", "sh2"] {
        p.publish(&format!("makrcave/s/{id}/status"), "online").await;
        t.wait_state("s", id, "online", |s| s["state"] == "idle").await;
    }
    let fleet = t.app().state().fleet.clone();

    let ada = fleet.unlock("s", "gen", session("ada", None)).await.expect("unlock gen");
    let cmd: serde_json::Value =
        serde_json::from_str(&sniffer.wait_for("makrcave/s/gen/cmd", "unlock").await).expect("json");
    assert_eq!((cmd["action"].as_str(), cmd["session_id"].as_str()), (Some("unlock"), Some(ada.id.as_str())));
    let state = t.wait_state("s", "gen", "gen in use", |s| s["state"] == "in_use").await;
    assert_eq!(state["session"]["user_id"], "ada");

    fleet.unlock("s", "tas", session("ada", None)).await.expect("unlock tas");
    assert_eq!(sniffer.wait_for("cmnd/laser1/POWER", "ON").await, "ON");
    fleet.unlock("s", "sh1", session("ada", None)).await.expect("unlock sh1");
    assert_eq!(sniffer.wait_for("shellies/shellyplug-s-AABBCC/relay/0/command", "on").await, "on");
    fleet.unlock("s", "sh2", session("ada", None)).await.expect("unlock sh2");
    let rpc: serde_json::Value =
        serde_json::from_str(&sniffer.wait_for("shellyplusplugs-aabbcc/rpc", "Switch.Set").await).expect("json");
    assert_eq!(rpc["params"], json!({"id": 0, "on": true}));

    // Someone else cannot take a machine in use; the same member unlocking again is harmless.
    assert_eq!(
        fleet.unlock("s", "tas", session("bob", None)).await,
        Err(UnlockRefusal::Busy { user_id: "ada".into() })
    );
    assert!(fleet.unlock("s", "tas", session("ada", None)).await.is_ok());

    let ended = fleet.lock("s", "tas", None, "ada", "locked").await.expect("lock tas");
    assert_eq!(sniffer.wait_for("cmnd/laser1/POWER", "OFF").await, "OFF");
    assert_eq!((ended.hourly_rate, ended.end_reason.as_str()), (Some(12.0), "locked"));
    assert!(ended.cost >= 0.0 && ended.minutes >= 0.0);
    t.wait_state("s", "tas", "tas idle again", |s| s["state"] == "idle" && s["session"].is_null()).await;
    assert!(fleet.lock("s", "tas", None, "ada", "locked").await.is_err(), "nothing left to lock");
    let stored = eventually(Duration::from_secs(5), "the usage session to be stored", || async {
        let rows = t.app().state().store.usage_sessions("tas").await.expect("read");
        (!rows.is_empty()).then_some(rows)
    })
    .await;
    assert_eq!((stored[0].user_id.as_str(), stored[0].ended_by.as_str(), stored[0].cost), ("ada", "ada", ended.cost));

    // The member locks at the machine (the bridge's button), and from a dashboard.
    fleet.unlock("s", "tas", session("ada", None)).await.expect("unlock tas again");
    p.publish("makrcave/s/tas/event", r#"{"event":"lock"}"#).await;
    t.wait_state("s", "tas", "locked by the bridge", |s| s["state"] == "idle").await;
    fleet.unlock("s", "tas", session("ada", None)).await.expect("unlock tas once more");
    let lock = "/api/v1/makerspaces/s/equipment/tas/lock";
    let (status, _) = t.post(lock, &t.token("bob", makrcave::domain::access::Role::Member, &["s"]), json!({})).await;
    assert_eq!(status, 403, "only the member using it (or an admin) locks it");
    let (status, ended) =
        t.post(lock, &t.token("ada", makrcave::domain::access::Role::Member, &["s"]), json!({})).await;
    assert_eq!((status, ended["ended_by"].as_str()), (200, Some("ada")), "{ended}");
    let (status, body) = t.post(lock, &t.token("ada", makrcave::domain::access::Role::Member, &["s"]), json!({})).await;
    assert_eq!((status, body["error_type"].as_str()), (409, Some("not_in_use")));
    let rows = eventually(Duration::from_secs(5), "three sessions of the laser stored", || async {
        let rows = t.app().state().store.usage_sessions("tas").await.expect("read");
        (rows.len() == 3).then_some(rows)
    })
    .await;
    assert_eq!(rows[1].ended_by, "bridge");

    // Offline and maintenance machines are not unlocked.
    p.publish("makrcave/s/sh1/status", "offline").await;
    fleet.lock("s", "sh1", None, "system", "test").await.expect("lock sh1");
    t.wait_state("s", "sh1", "sh1 offline", |s| s["state"] == "offline").await;
    assert_eq!(fleet.unlock("s", "sh1", session("ada", None)).await, Err(UnlockRefusal::Offline));
    t.put("/api/v1/makerspaces/s/equipment/sh2", &t.super_admin(), json!({"status": "maintenance"})).await;
    fleet.lock("s", "sh2", None, "system", "test").await.expect("lock sh2");
    t.wait_state("s", "sh2", "sh2 in maintenance", |s| s["state"] == "maintenance").await;
    assert_eq!(fleet.unlock("s", "sh2", session("ada", None)).await, Err(UnlockRefusal::Maintenance));

    // A machine deleted in the middle of a session is switched off, and the session kept.
    let (status, _) = t.delete("/api/v1/makerspaces/s/equipment/gen", &t.super_admin()).await;
    assert_eq!(status, 204);
    sniffer.wait_for("makrcave/s/gen/cmd", "\"lock\"").await;
    let rows = eventually(Duration::from_secs(5), "the removed machine's session", || async {
        let rows = t.app().state().store.usage_sessions("gen").await.expect("read");
        (!rows.is_empty()).then_some(rows)
    })
    .await;
    assert_eq!((rows[0].user_id.as_str(), rows[0].end_reason.as_str()), ("ada", "machine_removed"));
    t.stop().await;
}

#[actix_web::test]
async fn a_session_ends_by_itself_at_its_until() {
    let t = TestApp::spawn_with(TestOptions { heartbeat_timeout_s: Some(3600), ..Default::default() }).await;
    t.makerspace("s").await;
    t.machine("s", "m", json!({"hourly_rate": 6.0})).await;
    let sniffer = Sniffer::start(&t).await;
    let p = t.publisher().await;
    p.publish("makrcave/s/m/status", "online").await;
    t.wait_state("s", "m", "online", |s| s["state"] == "idle").await;
    let until = chrono::Utc::now() + chrono::Duration::milliseconds(800);
    let fleet = t.app().state().fleet.clone();
    let s = fleet.unlock("s", "m", session("kim", Some(until))).await.expect("unlock");
    let cmd: serde_json::Value =
        serde_json::from_str(&sniffer.wait_for("makrcave/s/m/cmd", "unlock").await).expect("json");
    assert!(cmd["until"].is_string(), "the machine is told until when: {cmd}");
    t.wait_state("s", "m", "the session to end at its until", |st| st["state"] == "idle").await;
    sniffer.wait_for("makrcave/s/m/cmd", "\"lock\"").await;
    let rows = eventually(Duration::from_secs(5), "the usage record", || async {
        let rows = t.app().state().store.usage_sessions("m").await.expect("read");
        (!rows.is_empty()).then_some(rows)
    })
    .await;
    assert_eq!(
        (rows[0].id.as_str(), rows[0].end_reason.as_str(), rows[0].ended_by.as_str()),
        (s.id.as_str(), "time_up", "system")
    );
    t.stop().await;
}
