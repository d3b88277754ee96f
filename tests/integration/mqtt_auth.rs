//! The broker lets no one in unasked: against the suite's real broker (the embedded one, or
//! Mosquitto with the password and ACL files makrcave writes), an anonymous client is
//! refused, a device keeps to its own machine's topics, and a revoked device is cut off.

use std::time::Duration;

use rumqttc::{AsyncClient, ConnectReturnCode, ConnectionError, Event, MqttOptions, Packet, QoS, SubscribeReasonCode};
use serde_json::json;
use tokio::sync::mpsc;

use crate::common::TestApp;

/// What a test client saw, in order.
#[derive(Debug)]
enum Seen {
    Connected,
    Refused(ConnectReturnCode),
    SubAck(Vec<SubscribeReasonCode>),
    Message(String),
    // The reason is for failure messages.
    Disconnected(#[allow(dead_code)] String),
}

/// An MQTT client whose every event the test reads in order. It does not reconnect.
struct Client {
    client: AsyncClient,
    seen: mpsc::UnboundedReceiver<Seen>,
    driver: tokio::task::JoinHandle<()>,
}

impl Client {
    fn start(t: &TestApp, login: Option<(String, String)>) -> Client {
        let mut options = MqttOptions::new(
            format!("auth-test-{}", &uuid::Uuid::new_v4().simple().to_string()[..10]),
            t.mqtt.ip().to_string(),
            t.mqtt.port(),
        );
        options.set_keep_alive(Duration::from_secs(5));
        if let Some((username, password)) = login {
            options.set_credentials(username, password);
        }
        let (client, mut eventloop) = AsyncClient::new(options, 100);
        let (tx, seen) = mpsc::unbounded_channel();
        let driver = tokio::spawn(async move {
            loop {
                let event = match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => Seen::Connected,
                    Ok(Event::Incoming(Packet::SubAck(ack))) => Seen::SubAck(ack.return_codes),
                    Ok(Event::Incoming(Packet::Publish(p))) => Seen::Message(p.topic),
                    Ok(_) => continue,
                    Err(ConnectionError::ConnectionRefused(code)) => Seen::Refused(code),
                    Err(other) => Seen::Disconnected(other.to_string()),
                };
                let stop = matches!(event, Seen::Refused(_) | Seen::Disconnected(_));
                if tx.send(event).is_err() || stop {
                    return;
                }
            }
        });
        Client { client, seen, driver }
    }

    async fn next(&mut self) -> Seen {
        tokio::time::timeout(Duration::from_secs(10), self.seen.recv())
            .await
            .expect("an MQTT event in time")
            .expect("the client's driver is running")
    }

    /// A client that is connected (or the test fails with what happened instead).
    async fn connected(t: &TestApp, login: (String, String)) -> Client {
        let mut client = Client::start(t, Some(login));
        match client.next().await {
            Seen::Connected => client,
            other => panic!("expected to connect, got {other:?}"),
        }
    }

    async fn subscribe(&mut self, filter: &str) -> Vec<SubscribeReasonCode> {
        self.client.subscribe(filter, QoS::AtLeastOnce).await.expect("subscribe");
        match self.next().await {
            Seen::SubAck(codes) => codes,
            other => panic!("expected a SUBACK for {filter}, got {other:?}"),
        }
    }

    /// The topics of the messages received until (and with) one on `topic`.
    async fn messages_until(&mut self, topic: &str) -> Vec<String> {
        let mut topics = Vec::new();
        loop {
            match self.next().await {
                Seen::Message(t) => {
                    let last = t == topic;
                    topics.push(t);
                    if last {
                        return topics;
                    }
                }
                other => panic!("expected messages up to {topic}, got {other:?}"),
            }
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

fn refused(seen: &Seen) -> bool {
    matches!(seen, Seen::Refused(ConnectReturnCode::NotAuthorized | ConnectReturnCode::BadUserNamePassword))
}

#[actix_web::test]
async fn anonymous_clients_and_wrong_passwords_are_refused() {
    let t = TestApp::spawn().await;
    t.makerspace("s").await;
    t.machine("s", "m", json!({})).await;
    let (username, password) = t.device_login("s", "m").await;

    let mut anonymous = Client::start(&t, None);
    let seen = anonymous.next().await;
    assert!(refused(&seen), "an anonymous client is refused, got {seen:?}");

    let mut wrong = Client::start(&t, Some((username.clone(), format!("{password}x"))));
    let seen = wrong.next().await;
    assert!(refused(&seen), "a wrong password is refused, got {seen:?}");

    let mut unknown = Client::start(&t, Some(("eq-nobody".into(), password.clone())));
    let seen = unknown.next().await;
    assert!(refused(&seen), "an unknown username is refused, got {seen:?}");

    Client::connected(&t, (username, password)).await;
    t.stop().await;
}

#[actix_web::test]
async fn a_device_cannot_speak_for_another_machine_nor_read_its_commands() {
    let t = TestApp::spawn().await;
    t.makerspace("s").await;
    t.machine("s", "a", json!({"heartbeat_timeout_s": 3600})).await;
    t.machine("s", "b", json!({"heartbeat_timeout_s": 3600})).await;
    let mut device = Client::connected(&t, t.device_login("s", "a").await).await;
    let mut spy = Client::connected(&t, t.service_login()).await;
    assert_eq!(spy.subscribe("makrcave/#").await, [SubscribeReasonCode::Success(QoS::AtLeastOnce)]);

    // Publishing as machine b: status, event and telemetry never reach anyone.
    for (leaf, payload) in [
        ("status", "offline".to_string()),
        ("event", json!({"type": "lock"}).to_string()),
        ("telemetry", json!({"state": "running"}).to_string()),
    ] {
        device.client.publish(format!("makrcave/s/b/{leaf}"), QoS::AtLeastOnce, false, payload).await.expect("publish");
    }
    // Its own telemetry goes through, after the refused ones (one connection keeps order).
    device
        .client
        .publish("makrcave/s/a/telemetry", QoS::AtLeastOnce, false, json!({"state": "running"}).to_string())
        .await
        .expect("publish");
    let delivered = spy.messages_until("makrcave/s/a/telemetry").await;
    assert_eq!(delivered, ["makrcave/s/a/telemetry"], "only the device's own topic was delivered");
    t.wait_state("s", "a", "a running", |s| s["state"] == "running").await;
    let (_, b) = t.get("/api/v1/makerspaces/s/equipment/b/state", Some(&t.super_admin())).await;
    assert_ne!(b["state"], "running", "machine b is not moved by another device: {b}");

    // Subscribing to b's commands, directly or by a wildcard, gets nothing of b's: the
    // embedded broker answers the SUBSCRIBE with a failure code, Mosquitto's acl_file accepts
    // it and never delivers (its read rule is checked per message). Its own works.
    device.subscribe("makrcave/s/b/cmd").await;
    device.subscribe("makrcave/s/+/cmd").await;
    let codes = device.subscribe("makrcave/s/a/cmd").await;
    assert_eq!(codes, [SubscribeReasonCode::Success(QoS::AtLeastOnce)], "its own commands");
    // makrcave sends b a command, then a: the device receives only its own (b's would come
    // first: one publisher, one subscriber, one order).
    let commander = t.publisher().await;
    commander.publish("makrcave/s/b/cmd", json!({"action": "lock"}).to_string()).await;
    commander.publish("makrcave/s/a/cmd", json!({"action": "lock"}).to_string()).await;
    let received = device.messages_until("makrcave/s/a/cmd").await;
    assert!(received.iter().all(|topic| topic == "makrcave/s/a/cmd"), "b's command reached a's device: {received:?}");
    t.stop().await;
}

#[actix_web::test]
async fn a_revoked_device_is_cut_off_and_cannot_come_back() {
    let t = TestApp::spawn().await;
    t.makerspace("s").await;
    t.machine("s", "m", json!({})).await;
    let login = t.device_login("s", "m").await;
    let mut device = Client::connected(&t, login.clone()).await;

    let admin = t.super_admin();
    let (status, body) = t.delete("/api/v1/makerspaces/s/equipment/m/mqtt-credentials", &admin).await;
    assert_eq!(status, 204, "{body}");
    match device.next().await {
        Seen::Disconnected(_) => {}
        other => panic!("the revoked device is disconnected at once, got {other:?}"),
    }
    let mut again = Client::start(&t, Some(login.clone()));
    let seen = again.next().await;
    assert!(refused(&seen), "its credentials no longer open the broker, got {seen:?}");
    let (status, _) = t.delete("/api/v1/makerspaces/s/equipment/m/mqtt-credentials", &admin).await;
    assert_eq!(status, 204, "revoking again changes nothing, as a DELETE should");
    let (status, _) = t.delete("/api/v1/makerspaces/s/equipment/nope/mqtt-credentials", &admin).await;
    assert_eq!(status, 404, "no such machine");

    // Issuing new credentials replaces the old ones, and disconnects whoever used them.
    let first = t.device_login("s", "m").await;
    let mut holder = Client::connected(&t, first.clone()).await;
    let second = t.device_login("s", "m").await;
    assert_eq!(first.0, second.0, "the username stays the machine's");
    assert_ne!(first.1, second.1, "a new password");
    assert!(matches!(holder.next().await, Seen::Disconnected(_)), "the old password's connection is closed");
    let mut stale = Client::start(&t, Some(first));
    let seen = stale.next().await;
    assert!(refused(&seen), "the old password is refused, got {seen:?}");
    Client::connected(&t, second).await;
    t.stop().await;
}

#[actix_web::test]
async fn credentials_are_only_for_machines_on_the_broker_and_only_for_admins() {
    let t = TestApp::spawn().await;
    t.makerspace("s").await;
    t.machine("s", "plug", json!({"connection": {"kind": "tasmota", "topic": "laser1"}})).await;
    t.machine("s", "octo", json!({"connection": {"kind": "octoprint", "url": "http://printer:5000"}})).await;
    let admin = t.super_admin();
    let (status, plug) = t.post("/api/v1/makerspaces/s/equipment/plug/mqtt-credentials", &admin, json!(null)).await;
    assert_eq!(status, 201, "{plug}");
    assert_eq!(plug["topics"]["publish"], json!(["tele/laser1/#", "stat/laser1/#"]));
    assert_eq!(plug["topics"]["subscribe"], json!(["cmnd/laser1/#"]));
    let (status, body) = t.post("/api/v1/makerspaces/s/equipment/octo/mqtt-credentials", &admin, json!(null)).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error_type"], "not_an_mqtt_device");
    let member = t.token("someone", makrcave::domain::access::Role::Member, &["s"]);
    let (status, _) = t.post("/api/v1/makerspaces/s/equipment/plug/mqtt-credentials", &member, json!(null)).await;
    assert_eq!(status, 403);
    let (status, _) = t.post("/api/v1/makerspaces/s/equipment/nope/mqtt-credentials", &admin, json!(null)).await;
    assert_eq!(status, 404);

    // The plug keeps to its own prefix: another plug's topics are refused.
    let login = |field: &str| plug[field].as_str().expect("credential field").to_string();
    let mut device = Client::connected(&t, (login("username"), login("password"))).await;
    let mut spy = Client::connected(&t, t.service_login()).await;
    assert_eq!(spy.subscribe("#").await, [SubscribeReasonCode::Success(QoS::AtLeastOnce)]);
    for topic in ["tele/laser2/SENSOR", "stat/laser2/POWER", "cmnd/laser1/POWER", "tele/laser1/SENSOR"] {
        device.client.publish(topic, QoS::AtLeastOnce, false, "{}").await.expect("publish");
    }
    assert_eq!(spy.messages_until("tele/laser1/SENSOR").await, ["tele/laser1/SENSOR"]);
    device.subscribe("cmnd/laser2/#").await;
    assert_eq!(device.subscribe("cmnd/laser1/#").await, [SubscribeReasonCode::Success(QoS::AtLeastOnce)]);
    let commander = t.publisher().await;
    commander.publish("cmnd/laser2/POWER", "ON").await;
    commander.publish("cmnd/laser1/POWER", "ON").await;
    assert_eq!(device.messages_until("cmnd/laser1/POWER").await, ["cmnd/laser1/POWER"]);
    t.stop().await;
}
