//! The simulated machines: each publishes telemetry every second through the broker, as a
//! real machine would. Printers print on their own in cycles (a print farm); the laser and
//! the CNC wait for a member: they listen to their command topic, and once unlocked at the
//! kiosk they run a job until they are locked again. So the simulation never fights with
//! sessions: a kiosk unlock shows as `in_use`, then `running` while the job cuts.

use std::collections::HashMap;
use std::time::Duration;

use chrono::Utc;
use rumqttc::{AsyncClient, Event, Packet, QoS};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Behaviour, DEMO_SPACE, MACHINES};
use crate::domain::equipment::EquipmentType;
use crate::protocols::mqtt::BrokerAddress;

/// How often each simulated machine reports.
const REPORT_EVERY: Duration = Duration::from_secs(1);
/// Seconds between an unlock and the start of the job (the member sets up the material).
const SETUP_S: u64 = 8;
/// Seconds a job of an unlocked machine runs.
const JOB_S: u64 = 90;

/// A demo machine's MQTT login: each simulated machine connects as its own device, with the
/// credentials the demo issued for it, and may only use its own topics.
pub(super) struct DeviceLogin {
    pub machine_id: &'static str,
    pub username: String,
    pub password: String,
}

/// Publishes telemetry for every demo machine until shutdown.
pub(super) async fn run(broker: BrokerAddress, logins: Vec<DeviceLogin>, shutdown: CancellationToken) {
    let (commands_in, mut commands) = mpsc::channel::<(String, bool)>(64);
    let mut clients = HashMap::new();
    let mut drivers = Vec::new();
    for login in logins {
        let mut device = broker.clone();
        device.credentials = Some((login.username, login.password));
        let options = device.options(&format!("demo-{}", login.machine_id));
        let (client, eventloop) = AsyncClient::new(options, 64);
        drivers.push(tokio::spawn(drive(client.clone(), eventloop, login.machine_id, commands_in.clone())));
        clients.insert(login.machine_id, client);
    }
    let mut tick: u64 = 0;
    // Machine id -> the tick it was unlocked at.
    let mut unlocked: HashMap<String, u64> = HashMap::new();
    let mut interval = tokio::time::interval(REPORT_EVERY);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            Some((id, on)) = commands.recv() => {
                if on {
                    unlocked.entry(id).or_insert(tick);
                } else {
                    unlocked.remove(&id);
                }
                continue;
            }
            _ = interval.tick() => {}
        }
        for (i, m) in MACHINES.iter().enumerate() {
            let Some(client) = clients.get(m.id) else { continue };
            let payload = match m.behaviour {
                Behaviour::Cycles => cycling_report(m.kind, tick + i as u64 * 37),
                Behaviour::OnSession => session_report(m.kind, unlocked.get(m.id).map(|at| tick - at)),
            };
            let topic = format!("makrcave/{DEMO_SPACE}/{}/telemetry", m.id);
            let _ = client.try_publish(topic, QoS::AtMostOnce, false, payload.to_string());
        }
        tick += 1;
    }
    for client in clients.values() {
        let _ = client.try_disconnect();
    }
    for driver in drivers {
        driver.abort();
    }
}

/// Keeps one machine's connection: rumqttc needs its event loop polled to connect and send;
/// after an error the next poll reconnects (with a clean session: subscribe again on every
/// connection).
async fn drive(
    client: AsyncClient,
    mut eventloop: rumqttc::EventLoop,
    machine_id: &'static str,
    commands: mpsc::Sender<(String, bool)>,
) {
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                let _ = client.try_subscribe(format!("makrcave/{DEMO_SPACE}/{machine_id}/cmd"), QoS::AtLeastOnce);
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                if let Some(command) = parse_command(&p.topic, &p.payload) {
                    let _ = commands.try_send(command);
                }
            }
            Ok(_) => {}
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

/// `(machine id, unlocked?)` from a command to a demo machine.
fn parse_command(topic: &str, payload: &[u8]) -> Option<(String, bool)> {
    let id = topic.strip_prefix(&format!("makrcave/{DEMO_SPACE}/"))?.strip_suffix("/cmd")?;
    let body: serde_json::Value = serde_json::from_slice(payload).ok()?;
    match body["action"].as_str()? {
        "unlock" => Some((id.to_string(), true)),
        "lock" => Some((id.to_string(), false)),
        _ => None,
    }
}

/// A machine that works only for a member: idle while locked; once unlocked, idle while the
/// member sets up, then a job runs, then idle again until it is locked.
fn session_report(kind: EquipmentType, unlocked_for: Option<u64>) -> serde_json::Value {
    let ts = Utc::now().to_rfc3339();
    let running = unlocked_for.filter(|s| (SETUP_S..SETUP_S + JOB_S).contains(s));
    let file = if kind == EquipmentType::LaserCutter { "name-tags.svg" } else { "bracket.nc" };
    let (busy_w, idle_w) = if kind == EquipmentType::LaserCutter { (420.0, 12.0) } else { (900.0, 15.0) };
    match running {
        Some(s) => {
            let progress = ((s - SETUP_S) as f64 / JOB_S as f64 * 1000.0).round() / 10.0;
            json!({
                "state": "running",
                "job": {"file": file, "progress": progress, "remaining_s": SETUP_S + JOB_S - s},
                "power_w": busy_w,
                "ts": ts,
            })
        }
        None => json!({"state": "idle", "job": null, "power_w": idle_w, "ts": ts}),
    }
}

/// One report of a printer of the farm at time step `t`: printers cycle through heating,
/// printing and a pause.
fn cycling_report(kind: EquipmentType, t: u64) -> serde_json::Value {
    let cycle = t % 240;
    let ts = Utc::now().to_rfc3339();
    if kind == EquipmentType::SlaPrinter {
        let printing = (20..200).contains(&cycle);
        let progress = printing.then(|| ((cycle - 20) as f64 / 180.0 * 1000.0).round() / 10.0);
        return json!({
            "state": if printing { "printing" } else { "idle" },
            "job": progress.map(|p| json!({"file": "miniatures.form", "progress": p, "remaining_s": ((100.0 - p) * 40.0) as i64})),
            "temps": {"chamber": if printing { 31.0 } else { 24.0 }},
            "power_w": if printing { 90.0 } else { 8.0 },
            "ts": ts,
        });
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_to_demo_machines_are_understood() {
        let unlock = br#"{"action":"unlock","session_id":"s1","until":null}"#;
        assert_eq!(parse_command("makrcave/demo/demo-laser-1/cmd", unlock), Some(("demo-laser-1".into(), true)));
        assert_eq!(
            parse_command("makrcave/demo/demo-laser-1/cmd", br#"{"action":"lock"}"#),
            Some(("demo-laser-1".into(), false))
        );
        assert_eq!(parse_command("makrcave/other/x/cmd", unlock), None);
        assert_eq!(parse_command("makrcave/demo/x/cmd", b"not json"), None);
    }

    #[test]
    fn an_unlocked_machine_runs_a_job_after_setup_and_idles_when_done() {
        let state = |s| session_report(EquipmentType::LaserCutter, s)["state"].clone();
        assert_eq!(state(None), "idle");
        assert_eq!(state(Some(0)), "idle");
        assert_eq!(state(Some(SETUP_S)), "running");
        assert_eq!(state(Some(SETUP_S + JOB_S)), "idle");
        assert_eq!(session_report(EquipmentType::LaserCutter, Some(SETUP_S))["job"]["progress"], 0.0);
        assert_eq!(session_report(EquipmentType::LaserCutter, None)["job"], serde_json::Value::Null);
    }
}
