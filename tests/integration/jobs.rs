//! One command interface for jobs, and the job lifecycle machines report: a machine on the
//! generic topics (as makrcave-bridge or firmware speaks them, with its own credentials)
//! reports its job, every event is stored and pushed as `machine_event`, and pause, resume and
//! cancel reach it as commands in its own format, for its admins and the member using it.

use std::time::Duration;

use makrcave::domain::access::Role;
use makrcave::domain::machine::Session;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::common::{eventually, open_space_ws, ws_until, TestApp};

/// A machine's firmware: publishes its reports and receives its commands.
pub struct Firmware {
    client: AsyncClient,
    commands: mpsc::UnboundedReceiver<Value>,
    driver: tokio::task::JoinHandle<()>,
    space: String,
    machine: String,
}

impl Firmware {
    pub async fn connect(t: &TestApp, space: &str, machine: &str) -> Firmware {
        let (username, password) = t.device_login(space, machine).await;
        let mut options = MqttOptions::new(format!("fw-{machine}"), t.mqtt.ip().to_string(), t.mqtt.port());
        options.set_keep_alive(Duration::from_secs(5));
        options.set_credentials(username, password);
        let (client, mut eventloop) = AsyncClient::new(options, 100);
        let (tx, commands) = mpsc::unbounded_channel();
        let (ready_tx, ready) = tokio::sync::oneshot::channel();
        let cmd_topic = format!("makrcave/{space}/{machine}/cmd");
        let driver = {
            let client = client.clone();
            tokio::spawn(async move {
                let mut ready_tx = Some(ready_tx);
                loop {
                    match eventloop.poll().await {
                        Ok(Event::Incoming(Packet::ConnAck(_))) => {
                            client.subscribe(cmd_topic.clone(), QoS::AtLeastOnce).await.expect("subscribe");
                        }
                        Ok(Event::Incoming(Packet::SubAck(_))) => {
                            if let Some(ready) = ready_tx.take() {
                                let _ = ready.send(());
                            }
                        }
                        Ok(Event::Incoming(Packet::Publish(p))) => {
                            let _ = tx.send(serde_json::from_slice(&p.payload).expect("a JSON command"));
                        }
                        Ok(_) => {}
                        Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                    }
                }
            })
        };
        tokio::time::timeout(Duration::from_secs(10), ready).await.expect("firmware connects").expect("subscribed");
        Firmware { client, commands, driver, space: space.into(), machine: machine.into() }
    }

    pub async fn report(&self, leaf: &str, payload: Value) {
        let topic = format!("makrcave/{}/{}/{leaf}", self.space, self.machine);
        self.client.publish(topic, QoS::AtLeastOnce, false, payload.to_string()).await.expect("publish");
    }

    pub async fn event(&self, payload: Value) {
        self.report("event", payload).await;
    }

    /// The next command makrcave sent, within 30 s (a loaded CI machine runs many tests at once).
    pub async fn next_command(&mut self) -> Value {
        tokio::time::timeout(Duration::from_secs(30), self.commands.recv())
            .await
            .expect("a command in time")
            .expect("the firmware is connected")
    }
}

impl Drop for Firmware {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

async fn state_is(t: &TestApp, machine: &str, state: &str) -> Value {
    t.wait_state("s", machine, &format!("{machine} {state}"), |s| s["state"] == state).await
}

#[actix_web::test]
async fn a_machine_reports_its_job_and_every_event_is_stored_and_pushed() {
    let t = TestApp::spawn().await;
    t.makerspace("s").await;
    t.machine("s", "m", json!({"heartbeat_timeout_s": 3600})).await;
    let admin = t.token("boss", Role::MakerspaceAdmin, &["s"]);
    let mut ws = open_space_ws(&t, &admin, "s").await;
    let firmware = Firmware::connect(&t, "s", "m").await;
    firmware.report("telemetry", json!({"state": "idle"})).await;
    state_is(&t, "m", "idle").await;

    firmware.event(json!({"event": "job_started", "file": "benchy.gcode"})).await;
    let started = ws_until(&mut ws, |m| m["type"] == "machine_event").await;
    assert_eq!(started["event"], "job_started");
    assert_eq!(started["equipment_id"], "m");
    assert_eq!(started["file"], "benchy.gcode");
    assert_eq!(started["state"], "running");
    let live = state_is(&t, "m", "running").await;
    assert_eq!(live["job"]["file"], "benchy.gcode");

    firmware.event(json!({"event": "job_progress", "progress": 40})).await;
    let progress = ws_until(&mut ws, |m| m["type"] == "machine_event").await;
    assert_eq!((progress["event"].as_str(), progress["progress"].as_f64()), (Some("job_progress"), Some(40.0)));
    firmware.event(json!({"event": "job_paused"})).await;
    assert_eq!(ws_until(&mut ws, |m| m["type"] == "machine_event").await["state"], "paused");
    firmware.event(json!({"event": "job_resumed"})).await;
    assert_eq!(ws_until(&mut ws, |m| m["type"] == "machine_event").await["state"], "running");
    firmware.event(json!({"event": "job_failed", "reason": "filament runout"})).await;
    let failed = ws_until(&mut ws, |m| m["type"] == "machine_event").await;
    assert_eq!((failed["reason"].as_str(), failed["state"].as_str()), (Some("filament runout"), Some("error")));
    let live = state_is(&t, "m", "error").await;
    assert!(live["job"].is_null(), "a failed job is over: {live}");
    // A malformed event is dropped, not stored.
    firmware.event(json!({"event": "job_progress", "progress": 500})).await;
    firmware.event(json!({"event": "job_started", "file": "second.gcode"})).await;
    assert_eq!(ws_until(&mut ws, |m| m["type"] == "machine_event").await["file"], "second.gcode");
    firmware.event(json!({"event": "job_cancelled"})).await;
    assert_eq!(ws_until(&mut ws, |m| m["type"] == "machine_event").await["event"], "job_cancelled");
    // Whatever the end, the bed waits for a person.
    state_is(&t, "m", "awaiting_clear").await;

    // Every event is in the machine's job event log, in order.
    let store = t.app().state().store.clone();
    let stored = eventually(Duration::from_secs(10), "the job events stored", || {
        let store = store.clone();
        async move {
            let events = store.job_events("m").await.expect("job events");
            (events.len() >= 7).then_some(events)
        }
    })
    .await;
    let names: Vec<&str> = stored.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(
        names,
        ["job_started", "job_progress", "job_paused", "job_resumed", "job_failed", "job_started", "job_cancelled"]
    );
    let failed: Value = serde_json::from_str(&stored[4].detail).expect("json detail");
    assert_eq!(failed["reason"], "filament runout");
    t.stop().await;
}

#[actix_web::test]
async fn pause_resume_and_cancel_reach_the_machine_for_its_admins_and_the_member_using_it() {
    let t = TestApp::spawn().await;
    t.makerspace("s").await;
    t.machine("s", "m", json!({"heartbeat_timeout_s": 3600})).await;
    let admin = t.token("boss", Role::MakerspaceAdmin, &["s"]);
    let mut firmware = Firmware::connect(&t, "s", "m").await;
    let job = |action: &str| format!("/api/v1/makerspaces/s/equipment/m/job/{action}");

    firmware.report("telemetry", json!({"state": "idle"})).await;
    state_is(&t, "m", "idle").await;
    let (status, body) = t.post(&job("pause"), &admin, json!(null)).await;
    assert_eq!((status, body["error_type"].as_str()), (409, Some("not_running")), "{body}");

    firmware.event(json!({"event": "job_started", "file": "bracket.gcode"})).await;
    state_is(&t, "m", "running").await;
    let (status, body) = t.post(&job("pause"), &admin, json!(null)).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body, json!({"equipment_id": "m", "command": "pause"}));
    assert_eq!(firmware.next_command().await, json!({"action": "pause"}));
    let (status, body) = t.post(&job("resume"), &admin, json!(null)).await;
    assert_eq!((status, body["error_type"].as_str()), (409, Some("not_paused")), "not paused until it says so");
    firmware.event(json!({"event": "job_paused"})).await;
    state_is(&t, "m", "paused").await;
    let (status, _) = t.post(&job("resume"), &admin, json!(null)).await;
    assert_eq!(status, 202);
    assert_eq!(firmware.next_command().await, json!({"action": "resume"}));

    // A member may control the job only during their own session.
    let member = t.token("ada", Role::Member, &["s"]);
    let (status, body) = t.post(&job("cancel"), &member, json!(null)).await;
    assert_eq!(status, 403, "{body}");
    let session = Session {
        id: "session-1".into(),
        user_id: "ada".into(),
        member_id: None,
        started_at: chrono::Utc::now(),
        until: None,
    };
    t.app().state().fleet.unlock("s", "m", session).await.expect("unlocked for ada");
    assert_eq!(firmware.next_command().await["action"], "unlock");
    let (status, body) = t.post(&job("cancel"), &member, json!(null)).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(firmware.next_command().await, json!({"action": "cancel"}));
    let other = t.token("ben", Role::Member, &["s"]);
    let (status, _) = t.post(&job("cancel"), &other, json!(null)).await;
    assert_eq!(status, 403, "someone else's session");
    t.stop().await;
}

#[actix_web::test]
async fn a_machine_that_cannot_take_a_command_says_so() {
    let t = TestApp::spawn().await;
    t.makerspace("s").await;
    t.machine("s", "plug", json!({"connection": {"kind": "tasmota", "topic": "laser1"}})).await;
    t.machine("s", "quiet", json!({})).await;
    let admin = t.token("boss", Role::MakerspaceAdmin, &["s"]);
    let (status, body) = t.post("/api/v1/makerspaces/s/equipment/plug/job/pause", &admin, json!(null)).await;
    assert_eq!((status, body["error_type"].as_str()), (409, Some("unsupported")), "{body}");
    let (status, body) = t.post("/api/v1/makerspaces/s/equipment/quiet/job/cancel", &admin, json!(null)).await;
    assert_eq!((status, body["error_type"].as_str()), (409, Some("machine_offline")), "{body}");
    let (status, _) = t.post("/api/v1/makerspaces/s/equipment/nope/job/cancel", &admin, json!(null)).await;
    assert_eq!(status, 404);
    t.stop().await;
}
