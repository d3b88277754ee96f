//! Invitations, end to end: the email is caught by a real SMTP server and its link followed.
//! Memberships then decide access, and the floor (WebSocket) hears of member changes.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use makrcave::domain::access::Role;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::common::{eventually, invite_token_in, TestApp, TestOptions};
use crate::mailbox::{decode, header, headers, parts, SmtpServer};

/// Waits for the n-th email the SMTP server received; returns (To, Subject, text part).
async fn nth_email(server: &SmtpServer, n: usize) -> (String, String, String) {
    let (_, message) = eventually(Duration::from_secs(10), "the email to reach the SMTP server", || async {
        server.received().into_iter().nth(n - 1)
    })
    .await;
    let h = headers(&message);
    let text = if header(&h, "content-type").starts_with("multipart/") {
        parts(&message)
            .into_iter()
            .find(|(kind, _)| kind.starts_with("text/plain"))
            .map(|(_, body)| body)
            .unwrap_or_else(|| panic!("no text part in {message}"))
    } else {
        let encoding = h.iter().find(|(n, _)| n == "content-transfer-encoding").map_or("7bit", |(_, v)| v.as_str());
        let body = message.replace("\r\n", "\n");
        decode(encoding, body.split_once("\n\n").map_or("", |(_, b)| b).trim_end())
    };
    (header(&h, "to").to_string(), header(&h, "subject").to_string(), text)
}

#[actix_web::test]
async fn an_invitee_follows_the_emailed_link_and_becomes_a_member() {
    let smtp = SmtpServer::start().await;
    let t = TestApp::spawn_with(TestOptions { smtp_url: Some(smtp.url()), ..Default::default() }).await;
    t.makerspace("fablab").await;
    let admin = t.token("boss", Role::MakerspaceAdmin, &["fablab"]);
    let (_, plans) = t.get("/api/v1/makerspaces/fablab/members/plans", Some(&admin)).await;
    let student =
        plans.as_array().expect("plans").iter().find(|p| p["name"] == "Student").expect("student")["id"].clone();

    let (status, invite) = t
        .post(
            "/api/v1/makerspaces/fablab/members/invites",
            &admin,
            json!({"email": "Newbie@Example.org", "role": "member", "plan_id": student, "message": "See you Tuesday!"}),
        )
        .await;
    assert_eq!(status, 201, "{invite}");
    assert_eq!((invite["status"].as_str(), invite["email_sent"].as_bool()), (Some("pending"), Some(true)));
    assert!(!invite.to_string().contains("token"), "the API never shows the token");
    let (to, subject, text) = nth_email(&smtp, 1).await;
    assert_eq!(to, "newbie@example.org");
    assert!(subject.contains("fablab"), "{subject}");
    assert!(text.contains("See you Tuesday!"), "{text}");
    let token = invite_token_in(&text);

    // The org site validates the code before sign-in.
    let (status, valid) =
        t.send(reqwest::Method::POST, "/api/v1/invites/validate", None, Some(json!({"invite_token": token}))).await;
    assert_eq!(status, 200, "{valid}");
    assert_eq!(
        (valid["makerspace_id"].as_str(), valid["email"].as_str()),
        (Some("fablab"), Some("newbie@example.org"))
    );

    // The invitee signs in (a token with no roles and no makerspace) and accepts.
    let newbie = t.token("newbie-sub", Role::StoreCustomer, &[]);
    let (status, _) = t.get("/api/v1/makerspaces/fablab", Some(&newbie)).await;
    assert_eq!(status, 404, "not a member yet");
    let accept = format!("/api/v1/members/invites/{token}/accept");
    let (status, _) = t.send(reqwest::Method::POST, &accept, None, None).await;
    assert_eq!(status, 401, "accepting needs a signed-in invitee");
    let (status, _) = t.post(&accept, &newbie, json!({"first_name": 42})).await;
    assert_eq!(status, 422, "a wrong body is refused, and the code stays usable");
    let (status, joined) = t.post(&accept, &newbie, json!({"first_name": "New", "last_name": "Bie"})).await;
    assert_eq!(status, 201, "{joined}");
    assert_eq!(joined["member"]["user_id"], "newbie-sub");
    assert_eq!(joined["member"]["plan_id"], student);
    assert_eq!(joined["makerspace_id"], "fablab");
    let (_, welcome, _) = nth_email(&smtp, 2).await;
    assert!(welcome.starts_with("Welcome"), "{welcome}");

    // The membership from our database now opens the makerspace to them.
    let (status, _) = t.get("/api/v1/makerspaces/fablab/equipment", Some(&newbie)).await;
    assert_eq!(status, 200);
    let (_, mine) = t.get("/api/v1/user/makerspaces", Some(&newbie)).await;
    assert_eq!(
        (mine[0]["makerspace_id"].as_str(), mine[0]["role"].as_str(), mine[0]["status"].as_str()),
        (Some("fablab"), Some("member"), Some("active"))
    );

    // Single use.
    let (status, again) = t.post(&accept, &t.token("someone-else", Role::Member, &[]), json!({})).await;
    assert_eq!((status, again["error_type"].as_str()), (409, Some("invite_used")));
    let (_, listed) = t.get("/api/v1/makerspaces/fablab/members/invites", Some(&admin)).await;
    assert_eq!(
        (listed[0]["status"].as_str(), listed[0]["accepted_by"].as_str()),
        (Some("accepted"), Some("newbie-sub"))
    );
    let (_, log) = t
        .get(
            &format!("/api/v1/makerspaces/fablab/members/{}/activities", joined["member"]["id"].as_str().expect("id")),
            Some(&admin),
        )
        .await;
    assert_eq!(log[0]["action"], "joined");
    t.stop().await;
}

#[actix_web::test]
async fn cancelled_expired_resent_and_unknown_codes_get_clear_answers() {
    let t = TestApp::spawn().await;
    t.makerspace("s").await;
    let admin = t.token("boss", Role::MakerspaceAdmin, &["s"]);
    let invites = "/api/v1/makerspaces/s/members/invites";
    let invitee = t.token("who", Role::Member, &[]);
    let accept = |token: String| {
        let (t, invitee) = (&t, &invitee);
        async move { t.post(&format!("/api/v1/members/invites/{token}/accept"), invitee, json!({})).await }
    };

    let (_, first) = t.post(invites, &admin, json!({"email": "a@example.org"})).await;
    let first_token = crate::common::latest_invite_token(&t);
    let (status, dup) = t.post(invites, &admin, json!({"email": "A@example.org"})).await;
    assert_eq!((status, dup["error_type"].as_str()), (409, Some("invite_pending")));
    assert_eq!(dup["existing_invite_id"], first["id"]);
    // Resending replaces the code: the old one stops working.
    let (status, resent) =
        t.post(&format!("{invites}/{}/resend", first["id"].as_str().expect("id")), &admin, json!({})).await;
    assert_eq!((status, resent["sent_count"].as_i64()), (200, Some(2)));
    let new_token = crate::common::latest_invite_token(&t);
    assert_ne!(first_token, new_token);
    assert_eq!(accept(first_token).await.0, 404);
    // Cancelled.
    let (status, _) = t.delete(&format!("{invites}/{}", first["id"].as_str().expect("id")), &admin).await;
    assert_eq!(status, 204);
    let (status, body) = accept(new_token.clone()).await;
    assert_eq!((status, body["error_type"].as_str()), (409, Some("invite_cancelled")));
    let (status, _) = t.delete(&format!("{invites}/{}", first["id"].as_str().expect("id")), &admin).await;
    assert_eq!(status, 409, "only a pending invitation can be cancelled");

    // Expired: the store's clock says so (the invitation is moved into the past directly).
    let (_, second) = t.post(invites, &admin, json!({"email": "b@example.org"})).await;
    let second_token = crate::common::latest_invite_token(&t);
    let store = &t.app().state().store;
    let mut record = store.get_invite("s", second["id"].as_str().expect("id")).await.expect("read").expect("invite");
    record.expires_at = chrono::Utc::now() - chrono::Duration::minutes(1);
    store.renew_invite(&record.id, &record.token_hash, record.expires_at).await.expect("age it");
    let (status, body) = accept(second_token.clone()).await;
    assert_eq!((status, body["error_type"].as_str()), (409, Some("invite_expired")));
    let (status, body) = t
        .send(reqwest::Method::POST, "/api/v1/invites/validate", None, Some(json!({"invite_token": second_token})))
        .await;
    assert_eq!((status, body["error_type"].as_str()), (409, Some("invite_expired")));
    let (status, _) = accept("0".repeat(64)).await;
    assert_eq!(status, 404);
    // Bad input.
    let (status, _) = t.post(invites, &admin, json!({"email": "not an email"})).await;
    assert_eq!(status, 422);
    let (status, _) = t.post(invites, &admin, json!({"email": "c@example.org", "plan_id": "nope"})).await;
    assert_eq!(status, 422);
    t.stop().await;
}

#[actix_web::test]
async fn guessing_codes_is_rate_limited_per_address() {
    let t = TestApp::spawn_with(TestOptions { auth_rate_limit: Some(5), ..Default::default() }).await;
    let mut statuses = Vec::new();
    for _ in 0..7 {
        let (status, body) = t
            .send(reqwest::Method::POST, "/api/v1/invites/validate", None, Some(json!({"invite_token": "guess"})))
            .await;
        statuses.push(status);
        if status == 429 {
            assert_eq!(body["error_type"], "rate_limited");
            assert!(body["retry_after_s"].as_u64().is_some_and(|s| s > 0 && s <= 60));
        }
    }
    assert_eq!(statuses, vec![404, 404, 404, 404, 404, 429, 429]);
    t.stop().await;
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next JSON message of a WebSocket.
async fn next(ws: &mut Socket) -> Value {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a message")
            .expect("open")
            .expect("ok")
        {
            Message::Text(text) => return serde_json::from_str(&text).expect("json"),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[actix_web::test]
async fn a_suspension_takes_the_makerspace_away_at_once_and_the_floor_hears_of_it() {
    let t = TestApp::spawn().await;
    t.makerspace("s").await;
    let root = t.super_admin();
    let (_, m) = t
        .post(
            "/api/v1/makerspaces/s/members",
            &root,
            json!({"email": "kim@example.org", "first_name": "Kim", "last_name": "Lee", "user_id": "kim-sub"}),
        )
        .await;
    let member_id = m["id"].as_str().expect("id").to_string();
    // Kim's token names no makerspace: the membership alone lets Kim in.
    let kim = t.token("kim-sub", Role::Member, &[]);
    let (status, _) = t.get("/api/v1/makerspaces/s/equipment", Some(&kim)).await;
    assert_eq!(status, 200);

    let watcher = t.token("watcher", Role::Member, &["s"]);
    let url = format!("ws://{}/api/v1/ws?token={watcher}", t.app().http_addr());
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.expect("ws");
    ws.send(Message::text(json!({"type": "subscribe", "makerspace_id": "s"}).to_string())).await.expect("send");
    assert_eq!(next(&mut ws).await["type"], "snapshot");

    let (status, _) =
        t.post(&format!("/api/v1/makerspaces/s/members/{member_id}/suspend"), &root, json!({"reason": "safety"})).await;
    assert_eq!(status, 200);
    let msg = next(&mut ws).await;
    assert_eq!(msg["type"], "member", "{msg}");
    assert_eq!(
        (msg["member"]["member_id"].as_str(), msg["member"]["status"].as_str()),
        (Some(member_id.as_str()), Some("suspended"))
    );
    assert!(msg["member"].get("email").is_none(), "no contact data on the floor");
    let (status, _) = t.get("/api/v1/makerspaces/s/equipment", Some(&kim)).await;
    assert_eq!(status, 404, "suspended: the space is gone for Kim at once");
    // Even a token that names the space does not help while suspended.
    let (status, _) = t.get("/api/v1/makerspaces/s/equipment", Some(&t.token("kim-sub", Role::Member, &["s"]))).await;
    assert_eq!(status, 404);
    let (_, mine) = t.get("/api/v1/user/makerspaces", Some(&kim)).await;
    assert_eq!(mine[0]["status"], "suspended");

    let (status, _) = t.post(&format!("/api/v1/makerspaces/s/members/{member_id}/reactivate"), &root, json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(next(&mut ws).await["member"]["status"], "active");
    let (status, _) = t.get("/api/v1/makerspaces/s/equipment", Some(&kim)).await;
    assert_eq!(status, 200);
    // An expired membership closes the space too.
    let (status, _) = t
        .put(
            &format!("/api/v1/makerspaces/s/members/{member_id}"),
            &root,
            json!({"start_date": "2020-01-01", "end_date": "2021-01-01"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(next(&mut ws).await["member"]["status"], "expired");
    let (status, _) = t.get("/api/v1/makerspaces/s/equipment", Some(&kim)).await;
    assert_eq!(status, 404);
    t.stop().await;
}
