//! Metric names and the Prometheus recorder.
//!
//! The `metrics` facade has one recorder per process, so it is installed once (tests start
//! several applications in one process and share it; they assert on differences).

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// MQTT messages received, by `kind` (telemetry, status, native).
pub const MQTT_MESSAGES_IN: &str = "makrcave_mqtt_messages_in_total";
/// MQTT messages dropped, by `reason` (unknown_machine, unknown_device, malformed_json,
/// bad_topic, ...).
pub const MQTT_MESSAGES_DROPPED: &str = "makrcave_mqtt_messages_dropped_total";
/// Times the MQTT link (re)connected to its broker.
pub const MQTT_CONNECTS: &str = "makrcave_mqtt_connects_total";
/// What the embedded broker's gate refused, by `reason` (anonymous, bad_credentials,
/// protocol, will_denied, publish_denied, subscribe_denied, too_many_clients).
pub const MQTT_REFUSED: &str = "makrcave_mqtt_refused_total";
/// Whether the MQTT link is connected (1) or not (0).
pub const MQTT_CONNECTED: &str = "makrcave_mqtt_connected";
/// Messages to the job router dropped because its mailbox was full (its periodic pass
/// catches up).
pub const ROUTER_DROPPED: &str = "makrcave_router_dropped_total";
/// Jobs the router sent to machines.
pub const JOBS_STARTED: &str = "makrcave_jobs_started_total";
/// Open WebSocket connections.
pub const WS_CLIENTS: &str = "makrcave_ws_clients";
/// Active WebSocket subscriptions.
pub const WS_SUBSCRIPTIONS: &str = "makrcave_ws_subscriptions";
/// WebSocket clients closed by the server, by `reason` (too_slow, heartbeat_timeout).
pub const WS_DISCONNECTS: &str = "makrcave_ws_server_disconnects_total";
/// WebSocket upgrades refused by a connection cap, by `cap` (identity, address, total).
pub const WS_REFUSED: &str = "makrcave_ws_refused_total";
/// Machine actors restarted by their supervisor after a failure.
pub const ACTOR_RESTARTS: &str = "makrcave_actor_restarts_total";
/// Machine actors running now.
pub const MACHINES: &str = "makrcave_machines";
/// Machine state transitions, by `to`.
pub const STATE_TRANSITIONS: &str = "makrcave_state_transitions_total";
/// State changes that could not be persisted.
pub const STATE_PERSIST_ERRORS: &str = "makrcave_state_persist_errors_total";
/// Commands to machines that could not even be queued for the broker.
pub const COMMANDS_DROPPED: &str = "makrcave_commands_dropped_total";
/// Sessions of the OctoPrint adapter that ended, by `outcome` (unreachable; forbidden: the
/// API key refused; unusable_key: none configured, or one that cannot be opened): a refused
/// key must not become a storm of attempts.
pub const OCTOPRINT_SESSIONS: &str = "makrcave_octoprint_sessions_total";
/// Sessions with Bambu printers that ended, by `outcome` (unreachable; access_code: refused;
/// certificate: the printer's failed the check; tls; settings: no access code, an unreadable
/// CA file): a refusal must not become a storm of attempts.
pub const BAMBU_SESSIONS: &str = "makrcave_bambu_sessions_total";
/// Bambu reports that were not JSON, dropped.
pub const BAMBU_REPORTS_DROPPED: &str = "makrcave_bambu_reports_dropped_total";
/// HTTP request latency in seconds, by `method`, `route` and `status`.
pub const HTTP_LATENCY: &str = "makrcave_http_request_duration_seconds";

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide recorder (once) and returns the handle that renders it.
pub fn recorder() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full(HTTP_LATENCY.to_string()),
                    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5],
                )
                .expect("the bucket list is a non-empty constant")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (a host program embedding us); then
            // ours still renders what reaches it, which is nothing, and nothing breaks.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}
