//! The WebSocket: snapshot then changes, scoping, and slow clients.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use makrcave::domain::access::Role;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::common::{eventually, TestApp, TestOptions};

const TOO_SLOW: &str = "reason=\"too_slow\"";

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn open(t: &TestApp, token: &str) -> Socket {
    let url = format!("ws://{}/api/v1/ws?token={token}", t.app().http_addr());
    tokio_tungstenite::connect_async(url).await.expect("websocket connects").0
}

async fn send(ws: &mut Socket, msg: Value) {
    ws.send(Message::text(msg.to_string())).await.expect("send");
}

/// The next JSON text message, skipping pings.
async fn next_json(ws: &mut Socket) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("a message in time");
        match msg.expect("stream open").expect("no error") {
            Message::Text(text) => return serde_json::from_str(&text).expect("json"),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected message {other:?}"),
        }
    }
}

/// The server's close frame, skipping whatever comes before it; a connection dropped without
/// one fails the test.
async fn next_close(ws: &mut Socket) -> tokio_tungstenite::tungstenite::protocol::CloseFrame {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(15), ws.next()).await.expect("closed in time");
        match msg {
            Some(Ok(Message::Close(frame))) => return frame.expect("a close frame with a code"),
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
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
    let ids: Vec<&str> =
        snapshot["machines"].as_array().expect("machines").iter().filter_map(|m| m["equipment_id"].as_str()).collect();
    assert_eq!(ids, vec!["m1", "m2"]);

    let p = t.publisher().await;
    p.telemetry("a", "m2", json!({"state": "printing", "job": {"progress": 33}})).await;
    let m = until_machine(&mut ws, |m| m["equipment_id"] == "m2" && m["state"] == "running").await;
    assert_eq!(m["job"]["progress"], 33.0);

    // An equipment edit is a change too.
    t.put("/api/v1/makerspaces/a/equipment/m1", &t.super_admin(), json!({"status": "maintenance"})).await;
    until_machine(&mut ws, |m| m["equipment_id"] == "m1" && m["state"] == "maintenance").await;

    // Subscribing to some machines only.
    let mut only = open(&t, &member).await;
    send(&mut only, json!({"type": "subscribe", "makerspace_id": "a", "equipment_ids": ["m1"]})).await;
    let snap = next_json(&mut only).await;
    assert_eq!(snap["machines"].as_array().map(Vec::len), Some(1));
    p.telemetry("a", "m2", json!({"job": {"progress": 34}})).await;
    p.telemetry("a", "m1", json!({"power_w": 5})).await;
    let m = until_machine(&mut only, |_| true).await;
    assert_eq!(m["equipment_id"], "m1", "m2 is not sent to a client watching m1 only");

    // Deleting a machine tells the dashboards.
    let (status, _) = t.delete("/api/v1/makerspaces/a/equipment/m2", &t.super_admin()).await;
    assert_eq!(status, 204);
    loop {
        let msg = next_json(&mut ws).await;
        if msg["type"] == "machine_removed" {
            assert_eq!(msg["equipment_id"], "m2");
            break;
        }
    }

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
    let (mut stuck, _) = tokio_tungstenite::client_async(format!("ws://{addr}/api/v1/ws?token={token}"), stream)
        .await
        .expect("handshake");
    stuck.send(Message::text(json!({"type": "subscribe", "makerspace_id": "a"}).to_string())).await.expect("send");

    let mut fast = open(&t, &token).await;
    send(&mut fast, json!({"type": "subscribe", "makerspace_id": "a"})).await;
    assert_eq!(next_json(&mut fast).await["type"], "snapshot");

    let disconnects_before = t.metric("makrcave_ws_server_disconnects_total", TOO_SLOW).await;
    let p = t.publisher().await;
    // The fast client records the latest value it saw for each machine.
    let seen = Arc::new(Mutex::new(vec![-1.0; MACHINES]));
    let reader = {
        let seen = seen.clone();
        tokio::spawn(async move {
            loop {
                let m = until_machine(&mut fast, |_| true).await;
                let i: usize = m["equipment_id"].as_str().and_then(|id| id[1..].parse().ok()).expect("machine index");
                seen.lock().expect("lock")[i] = m["power_w"].as_f64().unwrap_or(-1.0);
            }
        })
    };
    // Rounds of large updates (a padded file name) until the stuck client's buffers are full
    // and the server gives up on it.
    let padding = "x".repeat(2000);
    let round = AtomicU64::new(0);
    let publish_round = |value: u64| {
        let (p, padding) = (&p, &padding);
        async move {
            for i in 0..MACHINES {
                let update = json!({"state": "running", "power_w": value, "job": {"file": padding}});
                p.telemetry("a", &format!("m{i}"), update).await;
            }
        }
    };
    eventually(Duration::from_secs(60), "the stuck client to be disconnected as too slow", || async {
        publish_round(round.fetch_add(1, Ordering::Relaxed)).await;
        (t.metric("makrcave_ws_server_disconnects_total", TOO_SLOW).await > disconnects_before).then_some(())
    })
    .await;
    // All along the fast client was served: it sees the final round of every machine.
    let last = round.load(Ordering::Relaxed);
    publish_round(last).await;
    eventually(Duration::from_secs(10), "the fast client to see the final update of every machine", || async {
        let seen = seen.lock().expect("lock").clone();
        seen.iter().all(|v| *v == last as f64).then_some(())
    })
    .await;
    assert!(!reader.is_finished(), "the fast client is still connected");
    reader.abort();
    drop(stuck);
    t.stop().await;
}

/// A socket closes when its token expires, with close code 4001, so that a dashboard knows to
/// sign in again instead of reconnecting with the same token.
#[actix_web::test]
async fn a_socket_closes_with_4001_when_its_token_expires() {
    let t = TestApp::spawn().await;
    t.makerspace("a").await;
    let short = t.token_for("max", Role::Member, &["a"], chrono::Duration::seconds(2));
    let mut ws = open(&t, &short).await;
    send(&mut ws, json!({"type": "subscribe", "makerspace_id": "a"})).await;
    assert_eq!(next_json(&mut ws).await["type"], "snapshot");
    let close = next_close(&mut ws).await;
    assert_eq!(u16::from(close.code), 4001, "{close:?}");
    assert!(close.reason.contains("expired"), "{close:?}");
}

/// Every subscribe checks the membership again: a member suspended after the socket opened
/// can no longer subscribe to the space.
#[actix_web::test]
async fn a_subscribe_checks_the_membership_again() {
    let t = TestApp::spawn().await;
    t.makerspace("a").await;
    let root = t.super_admin();
    let (status, member) = t
        .post(
            "/api/v1/makerspaces/a/members",
            &root,
            json!({"email": "sam@example.org", "first_name": "Sam", "last_name": "S", "user_id": "sam"}),
        )
        .await;
    assert_eq!(status, 201, "{member}");
    let sam = t.token("sam", Role::Member, &[]);
    let mut ws = open(&t, &sam).await;
    send(&mut ws, json!({"type": "subscribe", "makerspace_id": "a"})).await;
    assert_eq!(next_json(&mut ws).await["type"], "snapshot", "a member subscribes");
    let id = member["id"].as_str().expect("member id");
    let (status, _) =
        t.post(&format!("/api/v1/makerspaces/a/members/{id}/suspend"), &root, json!({"reason": "x"})).await;
    assert_eq!(status, 200);
    send(&mut ws, json!({"type": "subscribe", "makerspace_id": "a"})).await;
    // The suspension also ends the subscription it had (an `unsubscribed` message, tested below).
    let answer = loop {
        let msg = next_json(&mut ws).await;
        if msg["type"] != "member" && msg["type"] != "unsubscribed" {
            break msg;
        }
    };
    assert_eq!(
        (answer["type"].as_str(), answer["error_type"].as_str()),
        (Some("error"), Some("not_found")),
        "{answer}"
    );
}

/// A message over the limit (64 KiB) gets a close frame with 1009, not a dropped connection.
#[actix_web::test]
async fn a_message_over_the_limit_is_closed_with_1009() {
    let t = TestApp::spawn().await;
    let mut ws = open(&t, &t.super_admin()).await;
    let huge = format!("{{\"type\":\"ping\",\"pad\":\"{}\"}}", "x".repeat(70 * 1024));
    ws.send(Message::text(huge)).await.expect("send");
    let close = next_close(&mut ws).await;
    assert_eq!(u16::from(close.code), 1009, "{close:?}");
}

/// Adds a member with a user id; returns the member id.
async fn member(t: &TestApp, space: &str, user: &str, extra: Value) -> String {
    let mut body =
        json!({"email": format!("{user}@example.org"), "first_name": user, "last_name": "M", "user_id": user});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    let (status, m) = t.post(&format!("/api/v1/makerspaces/{space}/members"), &t.super_admin(), body).await;
    assert_eq!(status, 201, "{m}");
    m["id"].as_str().expect("member id").to_string()
}

/// Opens a socket for `user` (a token naming no space: the membership alone lets them in) and
/// subscribes to `space`.
async fn watching(t: &TestApp, user: &str, space: &str) -> Socket {
    let mut ws = open(t, &t.token(user, Role::Member, &[])).await;
    send(&mut ws, json!({"type": "subscribe", "makerspace_id": space})).await;
    assert_eq!(next_json(&mut ws).await["type"], "snapshot", "{user} subscribes to {space}");
    ws
}

/// The next message that is not about members or machines (which may come in between).
async fn next_other(ws: &mut Socket) -> Value {
    loop {
        let msg = next_json(ws).await;
        if msg["type"] != "member" && msg["type"] != "machine" {
            return msg;
        }
    }
}

/// A suspension, a removal or an ended membership ends that person's subscriptions to the
/// space at once, with a message saying why; the socket stays open, other people's
/// subscriptions and the person's other spaces are untouched.
#[actix_web::test]
async fn losing_a_membership_ends_the_persons_subscriptions_at_once() {
    let t = TestApp::spawn().await;
    t.makerspace("a").await;
    t.makerspace("b").await;
    t.machine("a", "m1", json!({})).await;
    t.machine("b", "m9", json!({})).await;
    let root = t.super_admin();
    let sam = member(&t, "a", "sam", json!({})).await;
    member(&t, "b", "sam", json!({})).await;
    let rem = member(&t, "a", "rem", json!({})).await;
    let eli = member(&t, "a", "eli", json!({"start_date": "2020-01-01"})).await;
    member(&t, "a", "ola", json!({})).await;
    let mut sam_ws = watching(&t, "sam", "a").await;
    send(&mut sam_ws, json!({"type": "subscribe", "makerspace_id": "b"})).await;
    assert_eq!(next_other(&mut sam_ws).await["type"], "snapshot");
    let mut rem_ws = watching(&t, "rem", "a").await;
    let mut eli_ws = watching(&t, "eli", "a").await;
    let mut ola_ws = watching(&t, "ola", "a").await;
    let hub = t.app().state().hub.clone();
    assert_eq!(hub.subscriber_count(), 5);

    // Suspended: the subscription ends before the request is answered.
    let (status, _) =
        t.post(&format!("/api/v1/makerspaces/a/members/{sam}/suspend"), &root, json!({"reason": "x"})).await;
    assert_eq!(status, 200);
    assert_eq!(hub.subscriber_count(), 4, "sam's subscription to a is gone at once");
    let told = next_other(&mut sam_ws).await;
    assert_eq!(told, json!({"type": "unsubscribed", "makerspace_id": "a", "reason": "membership_suspended"}));
    // Machines of a reach ola, not sam; sam's other space still reaches sam.
    let p = t.publisher().await;
    p.telemetry("a", "m1", json!({"power_w": 7})).await;
    until_machine(&mut ola_ws, |m| m["power_w"] == 7.0).await;
    p.telemetry("b", "m9", json!({"power_w": 9})).await;
    let seen = until_machine(&mut sam_ws, |_| true).await;
    assert_eq!(seen["equipment_id"], "m9", "nothing of a after the unsubscribed message: {seen}");
    send(&mut sam_ws, json!({"type": "ping"})).await;
    assert_eq!(next_other(&mut sam_ws).await["type"], "pong", "the socket stays open");

    // Removed.
    let (status, _) = t.delete(&format!("/api/v1/makerspaces/a/members/{rem}"), &root).await;
    assert_eq!(status, 204);
    let told = next_other(&mut rem_ws).await;
    assert_eq!(told, json!({"type": "unsubscribed", "makerspace_id": "a", "reason": "membership_removed"}));

    // Ended: the membership's end date is now in the past.
    let yesterday = (chrono::Utc::now() - chrono::Duration::days(1)).date_naive().to_string();
    let (status, body) =
        t.put(&format!("/api/v1/makerspaces/a/members/{eli}"), &root, json!({"end_date": yesterday})).await;
    assert_eq!(status, 200, "{body}");
    let told = next_other(&mut eli_ws).await;
    assert_eq!(told, json!({"type": "unsubscribed", "makerspace_id": "a", "reason": "membership_ended"}));
    assert_eq!(hub.subscriber_count(), 2, "ola's subscription to a and sam's to b are left");

    // Reactivated, sam may subscribe again.
    let (status, _) = t.post(&format!("/api/v1/makerspaces/a/members/{sam}/reactivate"), &root, json!({})).await;
    assert_eq!(status, 200);
    send(&mut sam_ws, json!({"type": "subscribe", "makerspace_id": "a"})).await;
    assert_eq!(next_other(&mut sam_ws).await["type"], "snapshot");
    t.stop().await;
}

/// Connects from a chosen loopback address (all of 127.0.0.0/8 is this machine).
type Refusal = (u16, Value, Option<String>);
type PlainSocket = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

async fn connect_from(t: &TestApp, from: &str, token: &str) -> Result<PlainSocket, Refusal> {
    let addr = t.app().http_addr();
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.bind(format!("{from}:0").parse().expect("address")).expect("bind the source address");
    let stream = socket.connect(addr).await.expect("connect");
    match tokio_tungstenite::client_async(format!("ws://{addr}/api/v1/ws?token={token}"), stream).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => {
            let retry = res.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_string);
            let body = res.body().as_deref().map(|b| serde_json::from_slice(b).expect("a JSON body"));
            Err((res.status().as_u16(), body.unwrap_or(Value::Null), retry))
        }
        Err(other) => panic!("unexpected WebSocket error {other}"),
    }
}

/// Connections are capped per identity, per client address and in total: past a cap the
/// upgrade is answered 429 with the error shape and `Retry-After`, and a closed socket gives
/// its place back.
#[actix_web::test]
async fn connections_are_capped_per_identity_per_address_and_in_total() {
    let t = TestApp::spawn_with(TestOptions {
        adjust: Some(|s| {
            s.ws_max_per_identity = 2;
            s.ws_max_per_address = 3;
            s.ws_max_connections = 4;
        }),
        ..Default::default()
    })
    .await;
    let who = |name: &str| t.token(name, Role::SuperAdmin, &[]);
    let refused = |outcome: Result<PlainSocket, Refusal>, error_type: &str| match outcome {
        Err((status, body, retry)) => {
            assert_eq!((status, body["error_type"].as_str()), (429, Some(error_type)), "{body}");
            assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()), "{body}");
            assert_eq!(retry.as_deref(), Some("10"));
        }
        Ok(_) => panic!("expected 429 {error_type}"),
    };
    let ada_1 = connect_from(&t, "127.0.0.1", &who("ada")).await.expect("ada's first");
    let _ada_2 = connect_from(&t, "127.0.0.1", &who("ada")).await.expect("ada's second");
    refused(connect_from(&t, "127.0.0.2", &who("ada")).await, "too_many_connections");
    let _bob = connect_from(&t, "127.0.0.1", &who("bob")).await.expect("bob, third from the address");
    refused(connect_from(&t, "127.0.0.1", &who("cy")).await, "too_many_connections");
    let _cy = connect_from(&t, "127.0.0.2", &who("cy")).await.expect("cy from another address");
    refused(connect_from(&t, "127.0.0.3", &who("dee")).await, "too_many_connections");
    assert_eq!(t.app().state().ws_limits.open(), 4);
    assert!(t.metric("makrcave_ws_refused_total", "cap=\"total\"").await >= 1.0);

    // A socket that closes gives its place back.
    drop(ada_1);
    eventually(Duration::from_secs(10), "the closed socket's place to be free", || async {
        connect_from(&t, "127.0.0.3", &who("dee")).await.ok()
    })
    .await;
    t.stop().await;
}
