//! `--demo`: a demo makerspace with a few machines, and simulated machines that publish real
//! MQTT telemetry through the broker, so a newcomer sees a live dashboard at once.

use std::time::Duration;

use chrono::Utc;
use rumqttc::{AsyncClient, QoS};
use serde_json::json;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::domain::equipment::{AdminStatus, Connection, EquipmentType};
use crate::protocols::mqtt::BrokerAddress;
use crate::store::equipment::EquipmentRecord;
use crate::store::makerspaces::MakerspaceRecord;
use crate::store::{Store, StoreError};

pub const DEMO_SPACE: &str = "demo";
/// How often each simulated machine reports.
const REPORT_EVERY: Duration = Duration::from_secs(1);

const MACHINES: [(&str, &str, EquipmentType); 6] = [
    ("demo-prusa-1", "Prusa MK4 #1", EquipmentType::Printer3d),
    ("demo-prusa-2", "Prusa MK4 #2", EquipmentType::Printer3d),
    ("demo-bambu-1", "Bambu X1C", EquipmentType::Printer3d),
    ("demo-form-1", "Formlabs Form 3", EquipmentType::SlaPrinter),
    ("demo-laser-1", "Glowforge Pro", EquipmentType::LaserCutter),
    ("demo-cnc-1", "Shapeoko 4", EquipmentType::CncMachine),
];

/// Creates the demo makerspace and machines if missing, and starts the simulators. Returns
/// the simulators' task.
pub async fn seed(
    store: &Store,
    broker: &BrokerAddress,
    shutdown: CancellationToken,
) -> Result<JoinHandle<()>, StoreError> {
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
    for (id, name, kind) in MACHINES {
        if store.get_equipment(id).await?.is_none() {
            store
                .insert_equipment(&EquipmentRecord {
                    id: id.into(),
                    makerspace_id: DEMO_SPACE.into(),
                    name: name.into(),
                    kind,
                    admin_status: AdminStatus::Available,
                    location: Some("Demo floor".into()),
                    specifications: json!({}),
                    skill_requirements: vec![],
                    hourly_rate: Some(5.0),
                    maintenance_schedule: None,
                    connection: Connection::Mqtt,
                    heartbeat_timeout_s: 10,
                    requires_approval: false,
                    created_at: now,
                    updated_at: now,
                })
                .await?;
        }
    }
    Ok(tokio::spawn(simulate(broker.clone(), shutdown)))
}

/// Publishes telemetry for every demo machine until shutdown.
async fn simulate(broker: BrokerAddress, shutdown: CancellationToken) {
    let options = broker.options(&format!("makrcave-demo-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]));
    let (client, mut eventloop) = AsyncClient::new(options, 256);
    let driver = tokio::spawn(async move {
        // rumqttc needs its event loop polled to connect and send; after an error the next
        // poll reconnects.
        loop {
            if eventloop.poll().await.is_err() {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    });
    let mut tick: u64 = 0;
    let mut interval = tokio::time::interval(REPORT_EVERY);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = interval.tick() => {}
        }
        for (i, (id, _, kind)) in MACHINES.iter().enumerate() {
            let payload = simulated_report(*kind, tick + i as u64 * 37);
            let topic = format!("makrcave/{DEMO_SPACE}/{id}/telemetry");
            let _ = client.try_publish(topic, QoS::AtMostOnce, false, payload.to_string());
        }
        tick += 1;
    }
    let _ = client.try_disconnect();
    driver.abort();
}

/// One report of a simulated machine at time step `t`: printers cycle through heating,
/// printing and a pause; the laser and the CNC alternate between jobs and idle.
fn simulated_report(kind: EquipmentType, t: u64) -> serde_json::Value {
    let cycle = t % 240;
    let ts = Utc::now().to_rfc3339();
    match kind {
        EquipmentType::SlaPrinter => {
            let printing = (20..200).contains(&cycle);
            let progress = printing.then(|| ((cycle - 20) as f64 / 180.0 * 1000.0).round() / 10.0);
            json!({
                "state": if printing { "printing" } else { "idle" },
                "job": progress.map(|p| json!({"file": "miniatures.form", "progress": p, "remaining_s": ((100.0 - p) * 40.0) as i64})),
                "temps": {"chamber": if printing { 31.0 } else { 24.0 }},
                "power_w": if printing { 90.0 } else { 8.0 },
                "ts": ts,
            })
        }
        EquipmentType::Printer3d => {
            let (state, progress) = match cycle {
                0..=19 => ("idle", None),
                20..=209 => ("printing", Some((cycle - 20) as f64 / 190.0 * 100.0)),
                210..=219 => ("paused", Some(100.0)),
                _ => ("idle", None),
            };
            let heating = progress.is_some();
            json!({
                "state": state,
                "job": progress.map(|p| json!({"id": format!("job-{}", t / 240), "file": "benchy.gcode",
                    "progress": (p * 10.0).round() / 10.0, "remaining_s": ((100.0 - p) * 30.0) as i64})),
                "temps": {"nozzle": if heating { 214.0 + (t % 5) as f64 * 0.3 } else { 24.0 },
                          "nozzle_target": if heating { 215.0 } else { 0.0 },
                          "bed": if heating { 59.5 + (t % 3) as f64 * 0.2 } else { 23.0 },
                          "bed_target": if heating { 60.0 } else { 0.0 }},
                "power_w": if heating { 180.0 } else { 6.0 },
                "ts": ts,
            })
        }
        _ => {
            let running = (30..150).contains(&cycle);
            json!({
                "state": if running { "running" } else { "idle" },
                "job": if running { json!({"file": "panel.svg", "progress": ((cycle - 30) as f64 / 120.0 * 1000.0).round() / 10.0}) } else { serde_json::Value::Null },
                "power_w": if running { 420.0 } else { 12.0 },
                "ts": ts,
            })
        }
    }
}
