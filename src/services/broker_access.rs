//! Who may connect to the MQTT broker, and what each may do there.
//!
//! A machine that talks MQTT (generic firmware, a bridge, a smart plug) gets credentials from
//! its makerspace's admins: the password is shown once and only its hash is kept. What the
//! device may publish and subscribe to follows from the machine's record
//! ([`TopicRules::for_machine`]), so renaming a plug's topic moves its rights with it.
//!
//! How the broker in use learns of it:
//! - the embedded broker's gate asks [`Directory`] at every connect, and a revoked or
//!   re-issued credential cuts the device's live connections at once;
//! - an external Mosquitto gets its `password_file` and `acl_file` rewritten from the database
//!   after every change, then a SIGHUP (its pid file) so that it reloads them; Mosquitto then
//!   disconnects the clients whose credentials are gone;
//! - another external broker is configured by its operator: credentials are still issued
//!   and stored, but nothing here can enforce them.

use crate::logging::escaped;
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use serde::Serialize;
use utoipa::ToSchema;

use crate::config::{MosquittoFiles, Secret};
use crate::domain::access::Decision;
use crate::domain::ids::new_id;
use crate::domain::mqtt_access::{self, username_of, BrokerGrant, TopicRules, SERVICE_USERNAME};
use crate::protocols::broker::gate::{Authenticator, Connections};
use crate::store::mqtt_credentials::MqttCredentialRecord;
use crate::store::{Store, StoreError};

use super::access::{space_for, AccessError};
use super::machines::{self, MachineError};
use super::Services;

#[derive(Debug, thiserror::Error)]
pub enum BrokerAccessError {
    #[error(transparent)]
    Access(#[from] AccessError),
    #[error(transparent)]
    Machine(#[from] MachineError),
    #[error("this machine does not connect to makrcave's MQTT broker (its connection is {0})")]
    NotAnMqttDevice(&'static str),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A machine's new credentials, as shown (once) to the admin who asked for them.
#[derive(Debug, Serialize, ToSchema)]
pub struct IssuedCredentials {
    pub equipment_id: String,
    pub makerspace_id: String,
    pub username: String,
    /// Shown this once: only its hash is kept.
    pub password: String,
    /// What the device may publish and subscribe to.
    pub topics: TopicRules,
    pub created_at: DateTime<Utc>,
}

/// How changes to credentials reach the broker in use.
#[derive(Clone)]
pub enum BrokerAccess {
    /// The embedded broker: its gate reads the database at each connect; these are its live
    /// connections, to cut.
    Embedded(Connections),
    /// An external Mosquitto whose files makrcave keeps.
    Mosquitto(Arc<MosquittoKeeper>),
    /// An external broker configured by its operator.
    Unmanaged,
}

/// Issues new credentials for a machine (`decision`: may the caller manage the space); the
/// machine's previous credentials stop working at once.
pub async fn issue(
    svc: &Services,
    decision: Decision,
    space_id: &str,
    equipment_id: &str,
    issued_by: &str,
) -> Result<IssuedCredentials, BrokerAccessError> {
    space_for(svc, decision, space_id).await?;
    let machine = machines::load(svc, space_id, equipment_id).await?;
    let topics = TopicRules::for_machine(space_id, equipment_id, &machine.connection)
        .ok_or(BrokerAccessError::NotAnMqttDevice(connection_kind(&machine.connection)))?;
    let password = mqtt_access::new_password(&rand::random());
    let record = MqttCredentialRecord {
        id: new_id(),
        makerspace_id: space_id.to_string(),
        equipment_id: equipment_id.to_string(),
        username: username_of(equipment_id),
        password_hash: mqtt_access::hash_password(&password, &rand::random()),
        created_by: issued_by.to_string(),
        created_at: Utc::now(),
        revoked_at: None,
    };
    svc.store.replace_mqtt_credential(&record).await?;
    apply(svc, &record.username).await;
    Ok(IssuedCredentials {
        equipment_id: record.equipment_id,
        makerspace_id: record.makerspace_id,
        username: record.username,
        password,
        topics,
        created_at: record.created_at,
    })
}

/// Revokes a machine's credentials: its device is disconnected and cannot connect again.
/// Idempotent, as a DELETE is: a machine without credentials is already where this leads.
/// Returns whether there were credentials to revoke.
pub async fn revoke(
    svc: &Services,
    decision: Decision,
    space_id: &str,
    equipment_id: &str,
) -> Result<bool, BrokerAccessError> {
    space_for(svc, decision, space_id).await?;
    machines::load(svc, space_id, equipment_id).await?;
    let revoked = svc.store.revoke_mqtt_credential(space_id, equipment_id).await?;
    if revoked {
        apply(svc, &username_of(equipment_id)).await;
    }
    Ok(revoked)
}

/// A machine's record changed or it is gone: its device reconnects under the new rules (or
/// not at all).
pub async fn machine_changed(svc: &Services, equipment_id: &str) {
    apply(svc, &username_of(equipment_id)).await;
}

/// Makes the broker in use follow the database for `username`.
async fn apply(svc: &Services, username: &str) {
    match &svc.broker_access {
        BrokerAccess::Embedded(connections) => {
            connections.disconnect(username);
        }
        BrokerAccess::Mosquitto(keeper) => {
            if let Err(err) = keeper.sync(&svc.store).await {
                // The database is right; the broker's files will be on the next change or
                // start. Until then the broker still holds the previous files.
                tracing::error!(error = %escaped(&err), "cannot update Mosquitto's password and ACL files");
            }
        }
        BrokerAccess::Unmanaged => {}
    }
}

fn connection_kind(connection: &crate::domain::equipment::Connection) -> &'static str {
    use crate::domain::equipment::Connection;
    match connection {
        Connection::Mqtt => "mqtt",
        Connection::Tasmota { .. } => "tasmota",
        Connection::ShellyGen1 { .. } => "shelly_gen1",
        Connection::ShellyGen2 { .. } => "shelly_gen2",
        Connection::Bambu { .. } => "bambu",
        Connection::Octoprint { .. } => "octoprint",
    }
}

/// The grant of a machine's live credential, if `password` is its password.
async fn device_grant(store: &Store, username: &str, password: &str) -> Result<Option<BrokerGrant>, StoreError> {
    let Some(credential) = store.live_mqtt_credential(username).await? else {
        return Ok(None);
    };
    if !mqtt_access::verify_password(password, &credential.password_hash) {
        return Ok(None);
    }
    let Some(machine) = store.get_equipment(&credential.equipment_id).await? else {
        return Ok(None);
    };
    Ok(TopicRules::for_machine(&machine.makerspace_id, &machine.id, &machine.connection).map(BrokerGrant::Device))
}

/// Answers the embedded broker's gate: makrcave's own account, or a machine's credentials.
pub struct Directory {
    pub store: Store,
    pub service_password: Secret,
}

impl Authenticator for Directory {
    fn authenticate(&self, username: String, password: String) -> BoxFuture<'static, Option<BrokerGrant>> {
        let store = self.store.clone();
        let service_password = self.service_password.clone();
        Box::pin(async move {
            if username == SERVICE_USERNAME {
                return constant_time_eq(password.as_bytes(), service_password.expose().as_bytes())
                    .then_some(BrokerGrant::Service);
            }
            match device_grant(&store, &username, &password).await {
                Ok(grant) => grant,
                Err(err) => {
                    // Fail closed: a device cannot connect while its credentials cannot be read.
                    tracing::error!(error = %escaped(&err), "cannot read MQTT credentials");
                    None
                }
            }
        })
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Keeps an external Mosquitto's password and ACL files equal to the database.
pub struct MosquittoKeeper {
    files: MosquittoFiles,
    service_username: String,
    /// makrcave's own line of the password file (hashed once per start).
    service_line: String,
    /// One rewrite at a time, each from a fresh read of the database, so the last one wins.
    writing: tokio::sync::Mutex<()>,
}

#[derive(Debug, thiserror::Error)]
pub enum MosquittoError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot write {0}: {1}")]
    Write(std::path::PathBuf, std::io::Error),
    #[error("cannot signal Mosquitto (pid file {0}): {1}")]
    Signal(std::path::PathBuf, String),
}

impl MosquittoKeeper {
    pub fn new(files: MosquittoFiles, service_username: &str, service_password: &Secret) -> MosquittoKeeper {
        let hash = mqtt_access::hash_password(service_password.expose(), &rand::random());
        MosquittoKeeper {
            files,
            service_username: service_username.to_string(),
            service_line: format!("{service_username}:{hash}"),
            writing: Default::default(),
        }
    }

    /// Rewrites both files from the database, then asks Mosquitto to reload them.
    pub async fn sync(&self, store: &Store) -> Result<(), MosquittoError> {
        let _one_at_a_time = self.writing.lock().await;
        let credentials = store.live_mqtt_credentials().await?;
        let mut passwords = vec![self.service_line.clone()];
        let mut acl = vec![
            "# Written by makrcave whenever a machine's MQTT credentials change: do not edit.".to_string(),
            format!("user {}", self.service_username),
            "topic readwrite #".to_string(),
        ];
        for credential in credentials {
            let Some(machine) = store.get_equipment(&credential.equipment_id).await? else { continue };
            let Some(rules) = TopicRules::for_machine(&machine.makerspace_id, &machine.id, &machine.connection) else {
                continue;
            };
            passwords.push(format!("{}:{}", credential.username, credential.password_hash));
            acl.push(String::new());
            acl.push(format!("user {}", credential.username));
            acl.extend(rules.publish.iter().map(|t| format!("topic write {t}")));
            acl.extend(rules.subscribe.iter().map(|t| format!("topic read {t}")));
        }
        write_in_place(&self.files.password_file, &(passwords.join("\n") + "\n"))?;
        write_in_place(&self.files.acl_file, &(acl.join("\n") + "\n"))?;
        if let Some(pid_file) = &self.files.pid_file {
            reload(pid_file)?;
        }
        Ok(())
    }
}

/// Writes a file whole, in place, so that it keeps the owner, group and mode its operator
/// gave it (Mosquitto usually runs as its own user and must be able to read it). A new file is
/// readable by its owner and group only. Mosquitto reads the files only when it starts and
/// when we signal it, after this returns.
fn write_in_place(path: &Path, content: &str) -> Result<(), MosquittoError> {
    use std::io::Write;
    let fail = |e| MosquittoError::Write(path.to_path_buf(), e);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o640);
    let mut file = options.open(path).map_err(fail)?;
    file.write_all(content.as_bytes()).and_then(|()| file.sync_all()).map_err(fail)
}

/// Sends SIGHUP to the process in `pid_file`: Mosquitto reloads its password and ACL files.
fn reload(pid_file: &Path) -> Result<(), MosquittoError> {
    let fail = |why: String| MosquittoError::Signal(pid_file.to_path_buf(), why);
    let text = std::fs::read_to_string(pid_file).map_err(|e| fail(e.to_string()))?;
    let pid = text
        .trim()
        .parse::<i32>()
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .ok_or_else(|| fail(format!("{:?} is not a process id", text.trim())))?;
    rustix::process::kill_process(pid, rustix::process::Signal::HUP).map_err(|e| fail(e.to_string()))
}
