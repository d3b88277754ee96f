//! Bambu Lab printers in LAN mode: each printer runs its own MQTT broker (TLS on 8883, user
//! `bblp`, the LAN access code as password), reports on `device/{serial}/report` and takes
//! requests on `device/{serial}/request`; files to print go to its storage over FTPS first
//! (DESIGN.md, "Machines in their own protocols").
//!
//! - [`report`]: pure: partial reports merged into the last full state, and what makrcave
//!   reads from it (state, job, temperatures, HMS errors, AMS trays and nozzle, job events).
//! - [`request`]: pure: the requests makrcave sends, numbered so that replies can be matched.
//! - [`tls`]: how the printer's certificate is checked (a CA file or a pinned fingerprint).
//! - `ftps`: files to print, uploaded to the printer's storage.
//! - `client`: the task that follows one printer.

mod client;
mod ftps;
pub mod report;
pub mod request;
pub mod tls;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use actix::Recipient;
use rumqttc::{MqttOptions, TlsConfiguration, Transport};
use tokio_util::sync::CancellationToken;

pub use client::REPLY_TIMEOUT;

use crate::actors::machine::Report;
use crate::domain::equipment::{parse_fingerprint, Connection};
use crate::domain::secrets::{DataKey, ACCESS_CODE};
use crate::protocols::adapter::AdapterReceiver;

/// The user every Bambu printer's broker and storage take in LAN mode.
const USER: &str = "bblp";
/// MQTT keep-alive with the printer: a printer switched off is noticed within two of these.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The task that follows a Bambu printer, reporting to `actor` and taking `commands`, until
/// `cancel` (or until the actor is gone); `None` for a connection of another kind. The access
/// code is opened here with the data key and lives only inside the task: the password of the
/// printer's broker and of its storage.
pub fn follow(
    equipment_id: &str,
    connection: &Connection,
    key: &DataKey,
    actor: Recipient<Report>,
    commands: AdapterReceiver,
    cancel: CancellationToken,
) -> Option<impl Future<Output = ()> + Send + 'static> {
    let Connection::Bambu { host, port, ftps_port, serial, ca_file, fingerprint_sha256, .. } = connection else {
        return None;
    };
    let reach = (|| {
        let code = match connection.secret(key, ACCESS_CODE) {
            Ok(Some(code)) if !code.is_empty() => code,
            Ok(_) => return Err("no access code is configured for this printer".to_string()),
            Err(e) => return Err(e.to_string()),
        };
        let trust = match (ca_file, fingerprint_sha256.as_deref().map(parse_fingerprint)) {
            (Some(file), None) => tls::Trust::CaFile(file.clone()),
            (None, Some(Some(print))) => tls::Trust::Fingerprint(print),
            _ => return Err("the connection names no valid way to check the printer's certificate".to_string()),
        };
        let config = tls::client_config(&trust, serial)?;
        let mut options = MqttOptions::new(format!("makrcave-{equipment_id}"), host.clone(), *port);
        options.set_credentials(USER, code.clone());
        options.set_keep_alive(KEEP_ALIVE);
        options.set_clean_session(true);
        options.set_max_packet_size(client::MAX_PACKET_BYTES, client::MAX_PACKET_BYTES);
        options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(Arc::new(config))));
        let storage =
            ftps::Storage { host: host.clone(), port: *ftps_port, access_code: code, serial: serial.clone(), trust };
        Ok(client::Reach { mqtt: options, storage: Arc::new(storage) })
    })();
    let client = client::Client {
        equipment_id: Arc::from(equipment_id),
        serial: serial.clone(),
        reach,
        actor,
        commands,
        cancel,
    };
    Some(client.run())
}
