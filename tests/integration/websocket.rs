//! The WebSocket: snapshot then changes, scoping, and slow clients.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use makrcave::domain::access::Role;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::common::{eventually, TestApp, TestOptions};

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn open(t: &TestApp, token: &str) -> Socket {
    let url = format!("ws://{}/api/v1/ws?token={token}", t.app().http_addr());
    tokio_tungstenite::connect_async(url)
        .await
        .expect("websocket connects")
        .0
}

async fn send(ws: &mut Socket, msg: Value) {
    ws.send(Message::text(msg.to_string())).await.expect("send");
}

/// The next JSON text message, skipping pings.
async fn next_json(ws: &mut Socket) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a message in time");
        match msg.expect("stream open").expect("no error") {
            Message::Text(text) => return serde_json::from_str(&text).expect("json"),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected message {other:?}"),
        }
    }
}

/// Reads machine updates until one satisfies `check`.
async fn until_machine(ws: &mut Socket, check: impl Fn(&Value) -> bool) -> Value {
    loop {
        let msg = next_json(ws).await;
        if msg["type"] == "machine" && check(&msg["machine"]) {
            return msg["machine"].clone();
        }
    }
}

#[actix_web::test]
async fn snapshot_then_live_changes() {
    let t = TestApp::spawn().await;
    t.makerspace("a").await;
    t.machine("a", "m1", json!({})).await;
    t.machine("a", "m2", json!({})).await;
    let member = t.token("max", Role::Member, &["a"]);
    let mut ws = open(&t, &member).await;
    send(&mut ws, json!({"type": "subscribe", "makerspace_id": "a"})).await;
    let snapshot = next_json(&mut ws).await;
    assert_eq!(snapshot["type"], "snapshot", "{snapshot}");
    let ids: Vec<&str> = snapshot["machines"]
        .as_array()
        .expect("machines")
        .iter()
        .filter_map(|m| m["equipment_id"].as_str())
        .collect();
    assert_eq!(ids, vec!["m1", "m2"]);

    let p = t.publisher().await;
    p.telemetry(
        "a",
        "m2",
        json!({"state": "printing", "job": {"progress": 33}}),
    )
    .await;
    let m = until_machine(&mut ws, |m| {
        m["equipment_id"] == "m2" && m["state"] == "running"
    })
    .await;
    assert_eq!(m["job"]["progress"], 33.0);

    // An equipment edit is a change too.
    t.put(
        "/api/v1/makerspaces/a/equipment/m1",
        &t.super_admin(),
        json!({"status": "maintenance"}),
    )
    .await;
    until_machine(&mut ws, |m| {
        m["equipment_id"] == "m1" && m["state"] == "maintenance"
    })
    .await;

    // Subscribing to some machines only.
    let mut only = open(&t, &member).await;
    send(
        &mut only,
        json!({"type": "subscribe", "makerspace_id": "a", "equipment_ids": ["m1"]}),
    )
    .await;
    let snap = next_json(&mut only).await;
    assert_eq!(snap["machines"].as_array().map(Vec::len), Some(1));
    p.telemetry("a", "m2", json!({"job": {"progress": 34}}))
        .await;
    p.telemetry("a", "m1", json!({"power_w": 5})).await;
    let m = until_machine(&mut only, |_| true).await;
    assert_eq!(
        m["equipment_id"], "m1",
        "m2 is not sent to a client watching m1 only"
    );

    send(&mut ws, json!({"type": "ping"})).await;
    loop {
        let msg = next_json(&mut ws).await;
        if msg["type"] == "pong" {
            break;
        }
    }
    t.stop().await;
}

#[actix_web::test]
async fn clients_see_only_spaces_their_token_allows() {
    let t = TestApp::spawn().await;
    t.makerspace("a").await;
    t.makerspace("b").await;
    let member_a = t.token("max", Role::Member, &["a"]);
    let mut ws = open(&t, &member_a).await;
    send(&mut ws, json!({"type": "subscribe", "makerspace_id": "b"})).await;
    let answer = next_json(&mut ws).await;
    assert_eq!(answer["type"], "error");
    assert_eq!(answer["error_type"], "not_found");
    send(&mut ws, json!({"type": "launch_rockets"})).await;
    assert_eq!(next_json(&mut ws).await["error_type"], "bad_message");

    // No token, or a bad one: refused before the upgrade.
    let url = format!("ws://{}/api/v1/ws", t.app().http_addr());
    match tokio_tungstenite::connect_async(url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => {
            assert_eq!(res.status().as_u16(), 401)
        }
        other => panic!("expected 401, got {other:?}"),
    }
    t.stop().await;
}

#[actix_web::test]
async fn a_stuck_client_never_holds_back_another() {
    let t = TestApp::spawn_with(TestOptions {
        ws_send_timeout_ms: Some(500),
        heartbeat_timeout_s: Some(3600),
        ..Default::default()
    })
    .await;
    t.makerspace("a").await;
    const MACHINES: usize = 20;
    for i in 0..MACHINES {
        t.machine("a", &format!("m{i}"), json!({})).await;
    }
    let token = t.token("viewer", Role::Member, &["a"]);

    // The stuck client subscribes and then never reads again. A small receive buffer makes
    // its socket fill quickly, as a phone on a bad network would.
    let addr = t.app().http_addr();
    let stuck_socket = tokio::net::TcpSocket::new_v4().expect("socket");
    stuck_socket.set_recv_buffer_size(4096).expect("rcvbuf");
    let stream = stuck_socket.connect(addr).await.expect("connect");
    let (mut stuck, _) =
        tokio_tungstenite::client_async(format!("ws://{addr}/api/v1/ws?token={token}"), stream)
            .await
            .expect("handshake");
    stuck
        .send(Message::text(
            json!({"type": "subscribe", "makerspace_id": "a"}).to_string(),
        ))
        .await
        .expect("send");

    let mut fast = open(&t, &token).await;
    send(
        &mut fast,
        json!({"type": "subscribe", "makerspace_id": "a"}),
    )
    .await;
    assert_eq!(next_json(&mut fast).await["type"], "snapshot");

    let disconnects_before = t
        .metric(
            "makrcave_ws_server_disconnects_total",
            "reason=\"too_slow\"",
        )
        .await;
    let p = t.publisher().await;
    // A padded file name makes each update large, so the stuck client's buffers fill.
    let padding = "x".repeat(2000);
    const ROUNDS: usize = 150;
    let reader = tokio::spawn(async move {
        // The fast client must see the final update of every machine.
        let mut last = vec![-1.0; MACHINES];
        while last.iter().any(|p| *p < (ROUNDS - 1) as f64) {
            let m = until_machine(&mut fast, |_| true).await;
            let i: usize = m["equipment_id"]
                .as_str()
                .and_then(|id| id[1..].parse().ok())
                .expect("machine index");
            last[i] = m["power_w"].as_f64().unwrap_or(-1.0);
        }
        last
    });
    for round in 0..ROUNDS {
        for i in 0..MACHINES {
            p.telemetry(
                "a",
                &format!("m{i}"),
                json!({"state": "running", "power_w": round, "job": {"file": padding}}),
            )
            .await;
        }
    }
    let last = tokio::time::timeout(Duration::from_secs(30), reader)
        .await
        .expect("fast client kept up")
        .expect("reader");
    assert!(last.iter().all(|p| *p == (ROUNDS - 1) as f64), "{last:?}");

    // And the stuck one was told to go.
    eventually(
        Duration::from_secs(15),
        "the stuck client to be disconnected as too slow",
        || async {
            (t.metric(
                "makrcave_ws_server_disconnects_total",
                "reason=\"too_slow\"",
            )
            .await
                > disconnects_before)
                .then_some(())
        },
    )
    .await;
    drop(stuck);
    t.stop().await;
}
