//! Emails caught by a real SMTP server (aiosmtpd).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use makrcave::config::Secret;
use makrcave::notify::email::{Email, MailError, Mailer};
use makrcave::Settings;

use crate::common::{eventually, free_port};
use crate::mailbox::{header, headers, parts, SmtpServer};

fn settings(data_dir: &Path, smtp_url: Option<String>) -> Settings {
    let mut settings = Settings::defaults();
    settings.data_dir = data_dir.to_path_buf();
    settings.smtp_url = smtp_url.map(Secret::new);
    settings.mail_from = "Makerspace <hello@makrcave.test>".into();
    settings
}

#[actix_web::test]
async fn mail_sent_through_smtp_reaches_the_server() {
    let server = SmtpServer::start().await;
    let data = tempfile::tempdir().expect("temp dir");
    let mailer = Mailer::from_settings(&settings(data.path(), Some(format!("smtp://127.0.0.1:{}", server.port))))
        .expect("an SMTP mailer");
    assert_eq!(mailer.kind(), "smtp");

    let token = format!("tok-{}", uuid::Uuid::new_v4().simple());
    let email = Email {
        to: "Ada Lovelace <ada@example.org>".into(),
        subject: "Your makrcave invitation".into(),
        text: format!("Hello Ada,\n\naccept your invitation: http://makrcave.test/invite/{token}\n"),
        html: Some(format!("<p>Hello Ada,</p><p><a href=\"http://makrcave.test/invite/{token}\">Accept</a></p>")),
    };
    mailer.send(&email).await.expect("the server accepts the email");

    let received = eventually(Duration::from_secs(10), "the server has the message", || {
        let received = server.received();
        async move { (!received.is_empty()).then_some(received) }
    })
    .await;
    assert_eq!(received.len(), 1);
    let (envelope, message) = &received[0];
    assert_eq!(envelope["mail_from"], "hello@makrcave.test");
    assert_eq!(envelope["rcpt_tos"], serde_json::json!(["ada@example.org"]));

    let h = headers(message);
    assert_eq!(header(&h, "from"), "Makerspace <hello@makrcave.test>");
    assert_eq!(header(&h, "to"), "\"Ada Lovelace\" <ada@example.org>");
    assert_eq!(header(&h, "subject"), "Your makrcave invitation");
    assert!(header(&h, "content-type").starts_with("multipart/alternative"));

    let parts = parts(message);
    assert_eq!(parts.len(), 2, "{parts:?}");
    let (text_type, text) = &parts[0];
    assert!(text_type.starts_with("text/plain"), "{text_type}");
    assert!(text.contains(&format!("http://makrcave.test/invite/{token}")), "{text}");
    let (html_type, html) = &parts[1];
    assert!(html_type.starts_with("text/html"), "{html_type}");
    assert!(html.contains(&format!("<a href=\"http://makrcave.test/invite/{token}\">Accept</a>")), "{html}");

    // A plain text email is one text/plain part.
    let plain = Email { html: None, text: format!("welcome {token}"), ..email };
    mailer.send(&plain).await.expect("the server accepts the second email");
    let received = eventually(Duration::from_secs(10), "the server has both messages", || {
        let received = server.received();
        async move { (received.len() == 2).then_some(received) }
    })
    .await;
    let message = &received[1].1;
    assert!(header(&headers(message), "content-type").starts_with("text/plain"));
    assert!(message.contains(&format!("welcome {token}")), "{message}");
    assert!(!data.path().join("outbox").exists(), "with SMTP nothing goes to the outbox");
}

#[actix_web::test]
async fn without_smtp_mail_lands_in_the_outbox() {
    let data = tempfile::tempdir().expect("temp dir");
    let mailer = Mailer::from_settings(&settings(data.path(), None)).expect("an outbox mailer");
    assert_eq!(mailer.kind(), "outbox");

    let token = format!("tok-{}", uuid::Uuid::new_v4().simple());
    let email = Email {
        to: "grace@example.org".into(),
        subject: "Welcome to the makerspace".into(),
        text: format!("Your link: http://makrcave.test/invite/{token}"),
        html: Some(format!("<a href=\"http://makrcave.test/invite/{token}\">link</a>")),
    };
    mailer.send(&email).await.expect("written to the outbox");

    let outbox = data.path().join("outbox");
    let files: Vec<PathBuf> =
        std::fs::read_dir(&outbox).expect("the outbox was created").map(|e| e.expect("outbox entry").path()).collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(files[0].extension().and_then(|e| e.to_str()), Some("eml"));
    let message = std::fs::read_to_string(&files[0]).expect("read the .eml");
    let h = headers(&message);
    assert_eq!(header(&h, "from"), "Makerspace <hello@makrcave.test>");
    assert_eq!(header(&h, "to"), "grace@example.org");
    assert_eq!(header(&h, "subject"), "Welcome to the makerspace");
    let parts = parts(&message);
    assert_eq!(parts.len(), 2, "{parts:?}");
    assert!(parts[0].0.starts_with("text/plain") && parts[0].1.contains(&token), "{parts:?}");
    assert!(parts[1].0.starts_with("text/html") && parts[1].1.contains(&token), "{parts:?}");
}

#[actix_web::test]
async fn an_unreachable_smtp_server_is_an_error_not_a_hang() {
    let data = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let url = format!("smtp://mailer:hunter2-{port}@127.0.0.1:{port}");
    let mailer = Mailer::from_settings(&settings(data.path(), Some(url))).expect("an SMTP mailer");
    let email =
        Email { to: "ada@example.org".into(), subject: "Nobody listens".into(), text: "lost".into(), html: None };
    let started = Instant::now();
    let err = mailer.send(&email).await.expect_err("nobody listens on the port");
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    assert!(matches!(err, MailError::Send { .. }), "{err:?}");
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains(&format!("hunter2-{port}")), "the password leaked: {shown}");
    assert!(!data.path().join("outbox").exists(), "a failed send does not fall back to the outbox");
}
