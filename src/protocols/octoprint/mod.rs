//! OctoPrint (`{"kind":"octoprint","url","api_key","auto_connect"}`): one client task per
//! machine follows the printer over OctoPrint's push socket and carries out job commands over
//! its REST API (DESIGN.md, "OctoPrint").
//!
//! - [`push`]: push frames, parsed into telemetry and job events (pure);
//! - [`rest`]: the REST calls and what their answers mean (pure parsing, thin I/O);
//! - [`backoff`]: the waits between attempts;
//! - `client`: the task itself.

mod client;
pub mod push;
pub mod rest;

use std::future::Future;
use std::sync::Arc;

use actix::Recipient;
use tokio_util::sync::CancellationToken;

use crate::actors::machine::Report;
use crate::domain::equipment::Connection;
use crate::domain::secrets::{DataKey, API_KEY};
use crate::protocols::adapter::AdapterReceiver;

/// The task that follows an OctoPrint machine, reporting to `actor` and taking `commands`,
/// until `cancel` (or until the actor is gone); `None` for a connection of another kind.
/// The API key is opened here with the data key and lives only inside the task.
pub fn follow(
    equipment_id: &str,
    connection: &Connection,
    key: &DataKey,
    http: Result<reqwest::Client, String>,
    actor: Recipient<Report>,
    commands: AdapterReceiver,
    cancel: CancellationToken,
) -> Option<impl Future<Output = ()> + Send + 'static> {
    let Connection::Octoprint { url, auto_connect, .. } = connection else {
        return None;
    };
    let api_key = match connection.secret(key, API_KEY) {
        Ok(Some(k)) if !k.is_empty() => Ok(k),
        Ok(_) => Err("no API key is configured for this OctoPrint".to_string()),
        Err(e) => Err(e.to_string()),
    };
    let api = api_key.and_then(|k| Ok(rest::Api::new(http?, rest::base_url(url)?, k)));
    let client = client::Client {
        equipment_id: Arc::from(equipment_id),
        api,
        auto_connect: *auto_connect,
        actor,
        commands,
        cancel,
    };
    Some(client.run())
}

/// How long a connection to an OctoPrint outlives its last call.
const POOL_IDLE: std::time::Duration = std::time::Duration::from_secs(5);

/// The HTTP client the OctoPrint machines of one fleet share. A client holds the system's root
/// certificates (parsed when it is built, a few hundred KiB) and a connection pool keyed by
/// host, so one per printer would cost each printer a copy of the roots for nothing.
pub fn http_client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        // One printer is one host: a single kept-alive connection per host is all the calls need.
        .pool_max_idle_per_host(1)
        // A printer's calls come in bursts (a session's opening, a command, a refresh). Kept
        // for reqwest's default 90 s after each, a connection would cost every printer its
        // buffers and task while nothing is called.
        .pool_idle_timeout(POOL_IDLE)
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))
}
