//! `GET /api/v1/ws`: live machine state for dashboards.
//!
//! Client messages: `{"type":"subscribe","makerspace_id":"...","equipment_ids":[...]}` (ids
//! optional: the whole space), `{"type":"unsubscribe","makerspace_id":"..."}`,
//! `{"type":"ping"}`. Server messages: `snapshot`, `machine`, `error`, `pong`.
//!
//! Every subscribe checks the caller's memberships again, and the socket closes with code 4001
//! when the caller's token expires. A person who loses the space (suspended, removed, the
//! membership ended) gets `{"type":"unsubscribed","makerspace_id","reason"}` and hears no more
//! of it: the member workflows tell the hub at once, and each connection checks its
//! subscriptions again at every ping, which also catches an end date passing.
//!
//! Connections are capped per identity, per client address and in total ([`limits`]): past a
//! cap the upgrade is answered 429, before any handshake.
//!
//! One task per connection reads the client, drains its hub mailbox (coalesced updates) and
//! pings. A send that cannot complete within the configured timeout means the client cannot
//! keep up: it is closed with a reason rather than allowed to hold anything back.

pub mod limits;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::{AggregatedMessage, CloseCode, CloseReason, Session};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use crate::actors::hub::{Drained, Subscriber};
use crate::actors::machine::MachineView;
use crate::domain::access::Principal;
use crate::logging::escaped;
use crate::metrics::{WS_CLIENTS, WS_DISCONNECTS, WS_REFUSED};
use crate::services::live::{self, Standing};
use crate::web::auth::authenticate;
use crate::web::error::ApiError;
use crate::web::AppState;

/// How often the server pings.
const PING_INTERVAL: Duration = Duration::from_secs(10);
/// A client silent for this long (no pong, no message) is dropped.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest message a client may send.
const MAX_CLIENT_FRAME: usize = 64 * 1024;
/// The close code when the caller's token expires (an application code, 4000–4999): the
/// dashboard signs in again.
const TOKEN_EXPIRED: u16 = 4001;
/// What a client refused by a connection cap is told to wait before it tries again: caps
/// free up when other sockets close, which no timer predicts.
const CAP_RETRY_AFTER_S: u64 = 10;

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ClientMessage {
    Subscribe { makerspace_id: String, equipment_ids: Option<Vec<String>> },
    Unsubscribe { makerspace_id: String },
    Ping,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ServerMessage<'a> {
    /// `admin`: the subscriber administers the space (the dashboard shows admin-only
    /// buttons, such as a queued job's priority, to them).
    Snapshot {
        makerspace_id: &'a str,
        admin: bool,
        machines: Vec<MachineView>,
    },
    Unsubscribed {
        makerspace_id: &'a str,
    },
    Error {
        error_type: &'a str,
        detail: String,
    },
    Pong,
}

impl ServerMessage<'_> {
    fn to_text(&self) -> String {
        // Plain data always serializes.
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[utoipa::path(get, path = "/api/v1/ws", tag = "live",
    params(("token" = Option<String>, Query, description = "JWT, for clients that cannot send an Authorization header")),
    responses((status = 101, description = "WebSocket: see the README for the messages"),
              (status = 401, body = crate::web::ErrorBody),
              (status = 429, body = crate::web::ErrorBody, description = "Too many open connections for this person, this client address or the server (`too_many_connections`)")),
    security(("bearer" = [])))]
pub async fn connect(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, actix_web::Error> {
    let caller = authenticate(&req, true).await?;
    // The place is taken before the handshake and given back when the socket's task ends
    // (or here, if the upgrade fails).
    let address = req.peer_addr().map(|a| a.ip()).unwrap_or(std::net::Ipv4Addr::UNSPECIFIED.into());
    let admission = state.ws_limits.admit(&caller.user_id, address).map_err(|cap| {
        metrics::counter!(WS_REFUSED, "cap" => cap.as_str()).increment(1);
        let which = match cap {
            limits::Cap::Identity => "for this person",
            limits::Cap::Address => "from this address",
            limits::Cap::Total => "on this server",
        };
        ApiError::Throttled {
            detail: format!("too many open WebSocket connections {which}; close one or try again later"),
            error_type: "too_many_connections",
            retry_after_s: CAP_RETRY_AFTER_S,
        }
    })?;
    // Errors are JSON, this one too (actix-ws answers an empty 400).
    let (response, session, stream) = actix_ws::handle(&req, body)
        .map_err(|e| crate::web::error::ApiError::BadRequest(format!("not a WebSocket upgrade request: {e}")))?;
    let stream =
        stream.max_frame_size(MAX_CLIENT_FRAME).aggregate_continuations().max_continuation_size(MAX_CLIENT_FRAME);
    let state = state.into_inner();
    actix_web::rt::spawn(async move {
        let _admission = admission;
        metrics::gauge!(WS_CLIENTS).increment(1.0);
        let subscriber = state.hub.subscriber(&caller.user_id, caller.reads_every_space());
        let outcome = serve(&state, &caller, &subscriber, session.clone(), stream).await;
        state.hub.unsubscribe_all(&subscriber);
        metrics::gauge!(WS_CLIENTS).decrement(1.0);
        if let Some((reason, code, text)) = outcome {
            metrics::counter!(WS_DISCONNECTS, "reason" => reason).increment(1);
            tracing::info!(user = ?caller.user_id, reason, "closing WebSocket client");
            // The close frame may not fit either if the client is stuck; do not wait for it.
            let close = session.close(Some(CloseReason { code, description: Some(text.into()) }));
            let _ = tokio::time::timeout(Duration::from_millis(200), close).await;
        }
    });
    Ok(response)
}

/// Runs one connection; returns why the server closes it, or `None` if the client left.
async fn serve(
    state: &AppState,
    caller: &Principal,
    subscriber: &Arc<Subscriber>,
    mut session: Session,
    mut stream: actix_ws::AggregatedMessageStream,
) -> Option<(&'static str, CloseCode, &'static str)> {
    let send_timeout = Duration::from_millis(state.settings.ws_send_timeout_ms);
    let too_slow = Some(("too_slow", CloseCode::Policy, "client too slow: cannot keep up with updates"));
    let mut last_seen = Instant::now();
    let mut ping = tokio::time::interval(PING_INTERVAL);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let expiry = token_expiry(caller);
    tokio::pin!(expiry);
    loop {
        tokio::select! {
            _ = &mut expiry => {
                return Some(("token_expired", CloseCode::Other(TOKEN_EXPIRED), "token expired: sign in again"));
            }
            incoming = stream.next() => {
                last_seen = Instant::now();
                let text = match incoming {
                    Some(Err(err)) if too_large(&err) => {
                        return Some(("message_too_large", CloseCode::Size, "message too large (64 KiB at most)"));
                    }
                    None | Some(Err(_)) | Some(Ok(AggregatedMessage::Close(_))) => return None,
                    Some(Ok(AggregatedMessage::Ping(bytes))) => {
                        if session.pong(&bytes).await.is_err() { return None; }
                        continue;
                    }
                    Some(Ok(AggregatedMessage::Text(text))) => text,
                    Some(Ok(_)) => continue,
                };
                let reply = handle_client_message(state, caller, subscriber, &text).await;
                if let Some(reply) = reply {
                    match tokio::time::timeout(send_timeout, session.text(reply)).await {
                        Ok(Ok(())) => {}
                        Ok(Err(_)) => return None,
                        Err(_) => return too_slow,
                    }
                }
            }
            _ = subscriber.ready() => {
                let messages = match subscriber.drain() {
                    Drained::Messages(m) => m,
                    Drained::TooSlow => return too_slow,
                };
                for message in messages {
                    match tokio::time::timeout(send_timeout, session.text(message.as_ref())).await {
                        Ok(Ok(())) => {}
                        Ok(Err(_)) => return None,
                        Err(_) => return too_slow,
                    }
                }
            }
            _ = ping.tick() => {
                if last_seen.elapsed() > CLIENT_TIMEOUT {
                    return Some(("heartbeat_timeout", CloseCode::Away, "no answer to pings"));
                }
                for message in recheck(state, caller, subscriber).await {
                    match tokio::time::timeout(send_timeout, session.text(message.as_ref())).await {
                        Ok(Ok(())) => {}
                        Ok(Err(_)) => return None,
                        Err(_) => return too_slow,
                    }
                }
                match tokio::time::timeout(send_timeout, session.ping(b"makrcave")).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => return None,
                    Err(_) => return too_slow,
                }
            }
        }
    }
}

/// Checks each subscription of the connection against the memberships as they are now: one
/// the person may no longer watch ends (with the message saying why, returned for sending);
/// admin-only events follow a role change. Catches what no workflow announces, such as a
/// membership's end date passing.
async fn recheck(state: &AppState, caller: &Principal, subscriber: &Arc<Subscriber>) -> Vec<Arc<str>> {
    let mut out = Vec::new();
    for space in subscriber.makerspaces() {
        match live::standing(state, caller, &space).await {
            Ok(Standing::Denied(reason)) => {
                if state.hub.unsubscribe(subscriber, &space) {
                    out.push(live::unsubscribed(&space, reason));
                }
            }
            Ok(Standing::Watcher { admin }) => {
                if subscriber.watching(&space).is_some_and(|was| was != admin) {
                    state.hub.set_admin(subscriber, &space, admin);
                }
            }
            // The store is away: keep the subscription until it can be checked.
            Err(err) => tracing::warn!(error = %escaped(&err), "WebSocket subscriptions not checked again"),
        }
    }
    out
}

/// Whether a read failed because the client sent more than [`MAX_CLIENT_FRAME`]: one frame too
/// large, or continuations that add up to too much.
fn too_large(err: &actix_ws::ProtocolError) -> bool {
    match err {
        actix_ws::ProtocolError::Overflow => true,
        actix_ws::ProtocolError::Io(io) => io.to_string().contains("maximum continuation size"),
        _ => false,
    }
}

/// Waits until the caller's token expires (forever for a token without an expiry).
async fn token_expiry(caller: &Principal) {
    match caller.expires_at {
        Some(at) => tokio::time::sleep((at - chrono::Utc::now()).to_std().unwrap_or_default()).await,
        None => std::future::pending().await,
    }
}

/// Answers one client message (subscribe, unsubscribe, ping); `None` when nothing to say.
async fn handle_client_message(
    state: &AppState,
    caller: &Principal,
    subscriber: &Arc<Subscriber>,
    text: &str,
) -> Option<String> {
    let message: ClientMessage = match serde_json::from_str(text) {
        Ok(m) => m,
        Err(e) => {
            return Some(
                ServerMessage::Error { error_type: "bad_message", detail: format!("not a valid message: {e}") }
                    .to_text(),
            )
        }
    };
    match message {
        ClientMessage::Subscribe { makerspace_id, equipment_ids } => {
            // Memberships are read again, as for every REST request: a suspension since the
            // socket opened counts.
            let admin = match live::standing(state, caller, &makerspace_id).await {
                Ok(Standing::Watcher { admin }) => admin,
                Ok(Standing::Denied(_)) => return Some(not_found().to_text()),
                Err(err) => {
                    let api = ApiError::from(err);
                    return Some(ServerMessage::Error { error_type: "unavailable", detail: api.to_string() }.to_text());
                }
            };
            match state.store.get_makerspace(&makerspace_id).await {
                Ok(Some(_)) => {}
                Ok(None) => return Some(not_found().to_text()),
                Err(err) => {
                    let api = ApiError::from(err);
                    return Some(ServerMessage::Error { error_type: "unavailable", detail: api.to_string() }.to_text());
                }
            }
            let filter: Option<HashSet<String>> = equipment_ids.map(|ids| ids.into_iter().collect());
            // Subscribe before the snapshot: an update racing with it is then sent after the
            // snapshot (at worst a duplicate), never lost.
            state.hub.subscribe(subscriber, &makerspace_id, filter.clone(), admin);
            let machines = state.fleet.views(&makerspace_id, filter.as_ref()).await;
            Some(ServerMessage::Snapshot { makerspace_id: &makerspace_id, admin, machines }.to_text())
        }
        ClientMessage::Unsubscribe { makerspace_id } => {
            state.hub.unsubscribe(subscriber, &makerspace_id);
            Some(ServerMessage::Unsubscribed { makerspace_id: &makerspace_id }.to_text())
        }
        ClientMessage::Ping => Some(ServerMessage::Pong.to_text()),
    }
}

fn not_found() -> ServerMessage<'static> {
    ServerMessage::Error { error_type: "not_found", detail: "makerspace not found".into() }
}
