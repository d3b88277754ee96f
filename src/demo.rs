//! `--demo`: a demo makerspace that shows the whole floor: machines, and simulated machines
//! that publish real MQTT telemetry through the broker; a dozen members with cards, skills and
//! certifications (one member lacks the laser's); a registered kiosk; today's bookings (one
//! in progress, some awaiting approval), a skill request and a waitlist entry. So a newcomer
//! sees a live dashboard at once, and can unlock a machine at the kiosk page with a demo card.
//!
//! Seeding is idempotent: everything has a fixed id and is written only when missing, so a
//! restart with the same data folder neither fails nor duplicates anything (today's bookings
//! are added once per day).

mod bookings;
mod people;
mod simulator;

use chrono::Utc;
use serde_json::json;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::Secret;
use crate::domain::devices::{hash_device_token, kiosk_token};
use crate::domain::equipment::{AdminStatus, Connection, EquipmentType};
use crate::domain::ids::new_id;
use crate::domain::mqtt_access;
use crate::protocols::mqtt::BrokerAddress;
use crate::store::equipment::EquipmentRecord;
use crate::store::kiosks::KioskRecord;
use crate::store::makerspaces::MakerspaceRecord;
use crate::store::mqtt_credentials::MqttCredentialRecord;
use crate::store::{Store, StoreError};

pub use people::DEMO_CARDS;

pub const DEMO_SPACE: &str = "demo";
/// The user id of the demo makerspace's admin (the dashboard's demo token).
pub const DEMO_ADMIN: &str = "demo-admin";
/// The machine the printed kiosk URL is fixed to: the laser, which needs a certification.
pub const KIOSK_MACHINE: &str = "demo-laser-1";

/// How a demo machine behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Behaviour {
    /// Prints on its own, in cycles (a print farm's printer).
    Cycles,
    /// Idle until a member unlocks it at the kiosk; then it cuts, until it is locked.
    OnSession,
}

struct DemoMachine {
    id: &'static str,
    name: &'static str,
    kind: EquipmentType,
    behaviour: Behaviour,
    requires_approval: bool,
}

const MACHINES: [DemoMachine; 6] = [
    machine("demo-prusa-1", "Prusa MK4 #1", EquipmentType::Printer3d, Behaviour::Cycles, false),
    machine("demo-prusa-2", "Prusa MK4 #2", EquipmentType::Printer3d, Behaviour::Cycles, false),
    machine("demo-bambu-1", "Bambu X1C", EquipmentType::Printer3d, Behaviour::Cycles, false),
    machine("demo-form-1", "Formlabs Form 3", EquipmentType::SlaPrinter, Behaviour::Cycles, false),
    machine("demo-laser-1", "Glowforge Pro", EquipmentType::LaserCutter, Behaviour::OnSession, false),
    machine("demo-cnc-1", "Shapeoko 4", EquipmentType::CncMachine, Behaviour::OnSession, true),
];

const fn machine(
    id: &'static str,
    name: &'static str,
    kind: EquipmentType,
    behaviour: Behaviour,
    requires_approval: bool,
) -> DemoMachine {
    DemoMachine { id, name, kind, behaviour, requires_approval }
}

/// What the demo hands to the running application (which mints the demo admin's token,
/// the dashboard's "Use demo token", for [`DEMO_ADMIN`]).
pub struct Demo {
    /// The demo kiosk's device token.
    pub kiosk_token: String,
    /// The simulated machines, until shutdown.
    pub simulators: JoinHandle<()>,
}

impl Demo {
    /// The kiosk page for the demo kiosk, fixed to the laser, under `base` (the public URL).
    pub fn kiosk_url(&self, base: &str) -> String {
        format!("{}/kiosk?machine={KIOSK_MACHINE}#device={}", base.trim_end_matches('/'), self.kiosk_token)
    }

    /// Logs where to go once the server is up: the kiosk page and the demo cards.
    pub fn announce(&self, public_url: &str) {
        tracing::info!("demo kiosk (the laser): {}", self.kiosk_url(public_url));
        for m in &DEMO_CARDS {
            tracing::info!(
                "demo card {} {} {}{}",
                m.card_uid,
                m.first_name,
                m.last_name,
                if m.note.is_empty() { String::new() } else { format!(" ({})", m.note) }
            );
        }
    }
}

/// Creates whatever of the demo makerspace is missing, and starts the simulators.
/// `card_key` is the key of card UID hashes; the kiosk's token is derived from it, so that it
/// stays the same across restarts.
pub async fn seed(
    store: &Store,
    card_key: &Secret,
    broker: &BrokerAddress,
    shutdown: CancellationToken,
) -> Result<Demo, StoreError> {
    let now = Utc::now();
    if store.get_makerspace(DEMO_SPACE).await?.is_none() {
        store
            .insert_makerspace(&MakerspaceRecord {
                id: DEMO_SPACE.into(),
                name: "Demo Makerspace".into(),
                description: Some("Simulated machines publishing live telemetry".into()),
                location: Some("Workshop floor".into()),
                timezone: "UTC".into(),
                currency: "USD".into(),
                settings: json!({}),
                created_at: now,
                updated_at: now,
            })
            .await?;
    }
    for m in &MACHINES {
        if store.get_equipment(m.id).await?.is_none() {
            store
                .insert_equipment(&EquipmentRecord {
                    id: m.id.into(),
                    makerspace_id: DEMO_SPACE.into(),
                    name: m.name.into(),
                    kind: m.kind,
                    admin_status: AdminStatus::Available,
                    location: Some("Demo floor".into()),
                    specifications: json!({}),
                    skill_requirements: vec![],
                    hourly_rate: Some(5.0),
                    maintenance_schedule: None,
                    connection: Connection::Mqtt,
                    heartbeat_timeout_s: 10,
                    requires_approval: m.requires_approval,
                    auto_clear: false,
                    created_at: now,
                    updated_at: now,
                })
                .await?;
        }
    }
    people::seed(store, card_key, now).await?;
    bookings::seed(store, now).await?;
    let kiosk_token = seed_kiosk(store, card_key, now).await?;
    let logins = issue_device_logins(store, now).await?;
    let simulators = tokio::spawn(simulator::run(broker.clone(), logins, shutdown));
    Ok(Demo { kiosk_token, simulators })
}

/// Fresh MQTT credentials for every simulated machine, issued as an admin would issue them
/// for a real one (the previous start's are revoked).
async fn issue_device_logins(
    store: &Store,
    now: chrono::DateTime<Utc>,
) -> Result<Vec<simulator::DeviceLogin>, StoreError> {
    let mut logins = Vec::new();
    for m in &MACHINES {
        let password = mqtt_access::new_password(&rand::random());
        let username = mqtt_access::username_of(m.id);
        store
            .replace_mqtt_credential(&MqttCredentialRecord {
                id: new_id(),
                makerspace_id: DEMO_SPACE.into(),
                equipment_id: m.id.into(),
                username: username.clone(),
                password_hash: mqtt_access::hash_password(&password, &rand::random()),
                created_by: DEMO_ADMIN.into(),
                created_at: now,
                revoked_at: None,
            })
            .await?;
        logins.push(simulator::DeviceLogin { machine_id: m.id, username, password });
    }
    Ok(logins)
}

/// The demo kiosk's device token: derived from the card key (an HMAC, which does not reveal
/// the key), so the same kiosk URL works after a restart.
pub fn demo_kiosk_token(card_key: &Secret) -> String {
    kiosk_token(&people::keyed_bytes(card_key, "makrcave demo kiosk"))
}

/// The demo kiosk, serving every demo machine.
async fn seed_kiosk(store: &Store, card_key: &Secret, now: chrono::DateTime<Utc>) -> Result<String, StoreError> {
    let token = demo_kiosk_token(card_key);
    let token_hash = hash_device_token(&token);
    if store.kiosk_by_token_hash(&token_hash).await?.is_none() {
        // A revoked demo kiosk stays revoked (its token is taken): that is a conflict.
        let inserted = store
            .insert_kiosk(&KioskRecord {
                id: new_id(),
                makerspace_id: DEMO_SPACE.into(),
                name: "Demo kiosk (laser corner)".into(),
                token_hash,
                equipment_ids: vec![],
                created_by: DEMO_ADMIN.into(),
                created_at: now,
                revoked_at: None,
                any_card_locks: false,
            })
            .await;
        if let Err(StoreError::Conflict) = inserted {
            tracing::warn!("the demo kiosk was revoked: register a kiosk to use the kiosk page");
        }
        existing_is_fine(inserted)?;
    }
    Ok(token)
}

/// Treats "already there" as done: a second start finds what the first one wrote.
fn existing_is_fine(result: Result<(), StoreError>) -> Result<(), StoreError> {
    match result {
        Err(StoreError::Conflict) => Ok(()),
        other => other,
    }
}
