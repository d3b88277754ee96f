//! Operations endpoints: health, metrics, OpenAPI.

use serde_json::json;

use crate::common::TestApp;

#[actix_web::test]
async fn health_reports_database_and_broker() {
    let t = TestApp::spawn().await;
    let (status, body) = t.get("/healthz", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ok");
    assert_eq!(body["database"], "ok");
    assert_eq!(body["mqtt"], "connected");
    let expected_db = match crate::common::database_kind() {
        crate::common::DatabaseKind::Sqlite => "sqlite",
        crate::common::DatabaseKind::Postgres => "postgres",
    };
    assert_eq!(body["database_kind"], expected_db);
    t.stop().await;
}

#[actix_web::test]
async fn metrics_are_prometheus_text() {
    let t = TestApp::spawn().await;
    t.makerspace("m").await;
    t.machine("m", "x", json!({})).await;
    let p = t.publisher().await;
    p.telemetry("m", "x", json!({"state": "idle"})).await;
    t.wait_state("m", "x", "x idle", |s| s["state"] == "idle").await;
    let text = t.http.get(t.url("/metrics")).send().await.expect("metrics").text().await.expect("text");
    for name in [
        "makrcave_mqtt_messages_in_total",
        "makrcave_http_request_duration_seconds_bucket",
        "makrcave_machines",
        "makrcave_state_transitions_total",
    ] {
        assert!(text.contains(name), "missing {name} in\n{text}");
    }
    assert!(
        text.contains("route=\"/api/v1/makerspaces/{makerspace_id}/equipment/{equipment_id}/state\""),
        "latency by route pattern"
    );
    t.stop().await;
}

#[actix_web::test]
async fn openapi_documents_every_endpoint() {
    let t = TestApp::spawn().await;
    let (status, doc) = t.get("/api/openapi.json", None).await;
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")), "{}", doc["openapi"]);
    let documented: Vec<(String, String)> = doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object().into_iter().flat_map(move |o| o.keys().map(move |m| (m.to_uppercase(), path.clone())))
        })
        .collect();
    assert!(documented.len() >= 40, "the whole API is documented: {documented:?}");
    // Every documented route is served: probing it never gives the router's "no such endpoint".
    // (tests/integration/roles.rs checks the converse: each endpoint has an access rule.)
    for (method, path) in &documented {
        let probe =
            path.split('/').map(|seg| if seg.starts_with('{') { "x" } else { seg }).collect::<Vec<_>>().join("/");
        let res = t.http.request(method.parse().expect("method"), t.url(&probe)).send().await.expect("probe");
        let body: serde_json::Value = res.json().await.unwrap_or_default();
        assert_ne!(body["detail"], "no such endpoint", "{method} {path} is documented but not served");
    }
    t.stop().await;
}
