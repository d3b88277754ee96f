//! Smart plugs as sensors, through the suite's real broker: each plug publishes its own
//! formats as itself (with the machine's MQTT credentials), and the machine goes online and
//! offline with the plug's availability, `running` once its power has stayed above
//! `running_above_w` for `running_after_s`, back when it has stayed below, and its session's
//! usage record says how long it was busy. makrcave follows exactly its plugs' topics.

use std::time::Duration;

use chrono::Utc;
use makrcave::domain::machine::Session;
use serde_json::{json, Value};

use crate::common::{eventually, Publisher, TestApp, TestOptions};

/// Plug machines are heard from only when they report: keep the heartbeat out of the way.
async fn spawn() -> TestApp {
    let t = TestApp::spawn_with(TestOptions { heartbeat_timeout_s: Some(3600), ..Default::default() }).await;
    t.makerspace("s").await;
    t
}

/// A connected client that speaks as the plug of `machine`.
async fn plug(t: &TestApp, machine: &str) -> Publisher {
    Publisher::connect(t.mqtt, t.device_login("s", machine).await).await
}

fn session(user: &str) -> Session {
    Session {
        id: uuid::Uuid::new_v4().to_string(),
        user_id: user.into(),
        member_id: None,
        started_at: Utc::now(),
        until: None,
    }
}

fn time_of(state: &Value, field: &str) -> chrono::DateTime<Utc> {
    state[field].as_str().and_then(|s| s.parse().ok()).expect("a timestamp")
}

#[actix_web::test]
async fn a_tasmota_plug_makes_its_laser_run_and_counts_the_busy_minutes_of_the_session() {
    let t = spawn().await;
    for hold in [json!(-1), json!(3601), json!("5")] {
        let connection = json!({"kind": "tasmota", "topic": "laser1", "running_above_w": 50, "running_after_s": hold});
        let body = json!({"id": "laser", "name": "Laser", "type": "laser_cutter", "connection": connection});
        let (status, error) = t.post("/api/v1/makerspaces/s/equipment", &t.super_admin(), body).await;
        assert_eq!(status, 422, "running_after_s {hold}: {error}");
    }
    let connection = json!({"kind": "tasmota", "topic": "laser1", "running_above_w": 50, "running_after_s": 1});
    let created =
        t.machine("s", "laser", json!({"type": "laser_cutter", "hourly_rate": 30.0, "connection": connection})).await;
    assert_eq!(created["connection"]["running_after_s"], 1.0);
    let device = plug(&t, "laser").await;
    // Tasmota's last will is retained: makrcave reads it whenever it subscribed.
    device.publish_retained("tele/laser1/LWT", "Online").await;
    t.wait_state("s", "laser", "online with its plug", |s| s["state"] == "idle").await;

    let fleet = t.app().state().fleet.clone();
    fleet.unlock("s", "laser", session("ada")).await.expect("unlock");
    t.wait_state("s", "laser", "in use", |s| s["state"] == "in_use").await;

    // The plug's state and its energy meter, as Tasmota sends them.
    device.publish("stat/laser1/RESULT", r#"{"POWER":"ON"}"#).await;
    let cutting_from = Utc::now();
    let sensor = r#"{"Time":"2026-12-01T18:00:00","ENERGY":{"TotalStartTime":"2026-09-04T19:16:02","Total":3.457,
        "Yesterday":0.000,"Today":0.135,"Period":0,"Power":320,"ApparentPower":330,"ReactivePower":40,"Factor":0.97,
        "Voltage":230,"Current":1.43}}"#;
    device.publish("tele/laser1/SENSOR", sensor).await;
    let running = t.wait_state("s", "laser", "running after the hold", |s| s["state"] == "running").await;
    assert_eq!((&running["power_w"], &running["relay_on"]), (&json!(320.0), &json!(true)), "{running}");
    assert!(
        time_of(&running, "since") >= cutting_from + chrono::Duration::seconds(1),
        "not before the hold: {running}"
    );

    let idle_from = Utc::now();
    device.publish("tele/laser1/SENSOR", r#"{"Time":"2026-12-01T18:00:10","ENERGY":{"Power":4,"Voltage":230}}"#).await;
    let done = t.wait_state("s", "laser", "back in use", |s| s["state"] == "in_use").await;
    assert_eq!(done["power_w"], 4.0);
    assert!(time_of(&done, "since") >= idle_from + chrono::Duration::seconds(1), "held on the way down too: {done}");

    let ended = fleet.lock("s", "laser", None, "ada", "locked").await.expect("lock");
    assert!(ended.busy_minutes > 0.0 && ended.busy_minutes < ended.minutes, "{ended:?}");
    let stored = eventually(Duration::from_secs(5), "the usage record", || async {
        let rows = t.app().state().store.usage_sessions("laser").await.expect("read");
        rows.into_iter().next()
    })
    .await;
    assert_eq!((stored.busy_minutes, stored.minutes), (Some(ended.busy_minutes), ended.minutes));

    // The relay switched off by the lock, then the plug unplugged.
    device.publish("stat/laser1/POWER", "OFF").await;
    t.wait_state("s", "laser", "no power", |s| s["power_w"] == 0.0 && s["relay_on"] == false && s["state"] == "idle")
        .await;
    device.publish_retained("tele/laser1/LWT", "Offline").await;
    t.wait_state("s", "laser", "offline with its plug", |s| s["state"] == "offline").await;
    t.stop().await;
}

#[actix_web::test]
async fn a_shelly_gen1_plug_reports_relay_power_and_availability() {
    let t = spawn().await;
    let connection =
        json!({"kind": "shelly_gen1", "device_id": "shellyplug-s-AABBCC", "running_above_w": 20, "running_after_s": 1});
    t.machine("s", "drill", json!({"type": "tool", "connection": connection})).await;
    let device = plug(&t, "drill").await;
    device.publish_retained("shellies/shellyplug-s-AABBCC/online", "true").await;
    t.wait_state("s", "drill", "online", |s| s["state"] == "idle").await;

    device.publish("shellies/shellyplug-s-AABBCC/relay/0", "on").await;
    device.publish("shellies/shellyplug-s-AABBCC/relay/0/power", "150.5").await;
    let running = t.wait_state("s", "drill", "running", |s| s["state"] == "running").await;
    assert_eq!((&running["power_w"], &running["relay_on"]), (&json!(150.5), &json!(true)), "{running}");

    // Switched off at the plug: it draws nothing, whatever its last power report said.
    device.publish("shellies/shellyplug-s-AABBCC/relay/0", "off").await;
    let idle = t.wait_state("s", "drill", "idle again", |s| s["state"] == "idle").await;
    assert_eq!((&idle["power_w"], &idle["relay_on"]), (&json!(0.0), &json!(false)), "{idle}");

    device.publish_retained("shellies/shellyplug-s-AABBCC/online", "false").await;
    t.wait_state("s", "drill", "offline", |s| s["state"] == "offline").await;
    t.stop().await;
}

#[actix_web::test]
async fn a_shelly_gen2_plug_merges_its_notifications_and_is_followed_again_after_a_restart() {
    let mut t = spawn().await;
    let id = "shellyplusplugs-aabbcc";
    let connection = json!({"kind": "shelly_gen2", "device_id": id, "running_above_w": 100, "running_after_s": 1});
    t.machine("s", "printer", json!({"type": "3d_printer", "connection": connection})).await;
    let device = plug(&t, "printer").await;
    device.publish_retained(&format!("{id}/online"), "true").await;
    t.wait_state("s", "printer", "online", |s| s["state"] == "idle").await;

    let status = json!({"id": 0, "source": "init", "output": true, "apower": 250.4, "voltage": 231.2, "freq": 50.0,
        "current": 1.1, "aenergy": {"total": 12.5, "by_minute": [0.0, 0.0, 0.0], "minute_ts": 1_764_612_000},
        "temperature": {"tC": 41.2, "tF": 106.2}});
    device.publish(&format!("{id}/status/switch:0"), status.to_string()).await;
    t.wait_state("s", "printer", "running", |s| s["state"] == "running" && s["power_w"] == 250.4).await;

    // The plug restarts makrcave's view from scratch: it subscribes to the plug again.
    t.restart().await;
    let device = plug(&t, "printer").await;
    let notify = json!({"src": id, "dst": format!("{id}/events"), "method": "NotifyStatus",
        "params": {"ts": 1_764_612_345.12, "switch:0": {"id": 0, "apower": 1.5}}});
    device.publish(&format!("{id}/events/rpc"), notify.to_string()).await;
    t.wait_state("s", "printer", "idle after the print", |s| s["state"] == "idle" && s["power_w"] == 1.5).await;

    device.publish_retained(&format!("{id}/online"), "false").await;
    t.wait_state("s", "printer", "offline", |s| s["state"] == "offline").await;
    t.stop().await;
}

#[actix_web::test]
async fn makrcave_follows_exactly_its_plugs_topics_as_machines_change() {
    let t = spawn().await;
    let connection = json!({"kind": "tasmota", "topic": "saw1"});
    t.machine("s", "saw", json!({"type": "tool", "connection": connection})).await;
    let service = t.publisher().await;
    service.publish_retained("tele/saw1/LWT", "Online").await;
    t.wait_state("s", "saw", "online", |s| s["state"] == "idle").await;

    // The plug is renamed: makrcave reads the new topics, and no longer the old ones.
    let path = "/api/v1/makerspaces/s/equipment/saw";
    let (status, body) =
        t.put(path, &t.super_admin(), json!({"connection": {"kind": "tasmota", "topic": "saw2"}})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(t.app().state().plug_routes.topics().iter().filter(|t| t.contains("saw1")).count(), 0);
    let device = plug(&t, "saw").await;
    // Until makrcave's new subscription reaches the broker, the plug's reports fall on deaf ears.
    eventually(Duration::from_secs(10), "the renamed plug to be heard", || async {
        device.publish("tele/saw2/SENSOR", r#"{"ENERGY":{"Power":5}}"#).await;
        let s = t.state("s", "saw").await;
        (s["power_w"] == 5.0).then_some(())
    })
    .await;
    // makrcave unsubscribed from the old topics before it subscribed to the new ones.
    service.publish("tele/saw1/LWT", "Offline").await;
    service.publish("tele/saw2/SENSOR", r#"{"ENERGY":{"Power":77}}"#).await;
    let s = t.wait_state("s", "saw", "the later report", |s| s["power_w"] == 77.0).await;
    assert_eq!(s["state"], "idle", "the old topic is no longer read");

    // A plug makrcave does not know is counted and dropped (a message still in flight when
    // its machine was removed).
    let dropped = "makrcave_mqtt_messages_dropped_total";
    let before = t.metric(dropped, "reason=\"unknown_device\"").await;
    let state = t.app().state();
    makrcave::protocols::mqtt::ingest_plug(&state.fleet, &state.plug_routes, "tele/nobody/LWT", b"Online").await;
    assert_eq!(t.metric(dropped, "reason=\"unknown_device\"").await, before + 1.0);

    // Removed: its topics are dropped with it.
    let (status, _) = t.delete(path, &t.super_admin()).await;
    assert_eq!(status, 204);
    assert!(state.plug_routes.topics().is_empty());
    t.stop().await;
}
