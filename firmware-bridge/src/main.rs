//! makrcave-bridge: runs next to a machine (on a Raspberry Pi, say) and connects it to
//! makrcave over MQTT.
//!
//! For now it announces the machine: a retained `online` on the status topic, a retained
//! `offline` as its last will (so makrcave shows the machine offline the moment the bridge
//! loses power or network), and a heartbeat on the telemetry topic. Serial GRBL/Marlin, the
//! relay and the card reader come next.

use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use rumqttc::{AsyncClient, Event, LastWill, MqttOptions, Packet, QoS};

#[derive(Parser, Debug)]
#[command(name = "makrcave-bridge", version, about = "Connects a machine to makrcave over MQTT")]
struct Args {
    /// The broker makrcave uses: mqtt://[user:pass@]host:port.
    #[arg(long, env = "MAKRCAVE_BRIDGE_MQTT_URL", default_value = "mqtt://127.0.0.1:1883")]
    mqtt_url: String,
    /// The makerspace id the machine belongs to.
    #[arg(long, env = "MAKRCAVE_BRIDGE_MAKERSPACE")]
    makerspace: String,
    /// The machine's equipment id in makrcave.
    #[arg(long, env = "MAKRCAVE_BRIDGE_EQUIPMENT")]
    equipment: String,
    /// Seconds between heartbeats (keep it below the machine's heartbeat timeout).
    #[arg(long, env = "MAKRCAVE_BRIDGE_HEARTBEAT", default_value_t = 10)]
    heartbeat: u64,
}

fn topic(args: &Args, channel: &str) -> String {
    format!("makrcave/{}/{}/{channel}", args.makerspace, args.equipment)
}

fn options(args: &Args) -> anyhow::Result<MqttOptions> {
    let url = args.mqtt_url.strip_prefix("mqtt://").or_else(|| args.mqtt_url.strip_prefix("tcp://"));
    let url = url.context("--mqtt-url must start with mqtt://")?;
    let (credentials, host_port) = match url.rsplit_once('@') {
        Some((c, h)) => (Some(c), h),
        None => (None, url),
    };
    let (host, port) = match host_port.rsplit_once(':') {
        Some((h, p)) => (h, p.parse::<u16>().context("the port in --mqtt-url is not a number")?),
        None => (host_port, 1883),
    };
    let mut options = MqttOptions::new(format!("makrcave-bridge-{}", args.equipment), host, port);
    options.set_keep_alive(Duration::from_secs(10));
    options.set_last_will(LastWill::new(topic(args, "status"), "offline", QoS::AtLeastOnce, true));
    if let Some((user, pass)) = credentials.and_then(|c| c.split_once(':')) {
        options.set_credentials(user, pass);
    }
    Ok(options)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
    let args = Args::parse();
    let (client, mut eventloop) = AsyncClient::new(options(&args)?, 64);
    let mut heartbeat = tokio::time::interval(Duration::from_secs(args.heartbeat.max(1)));
    loop {
        tokio::select! {
            event = eventloop.poll() => match event {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    tracing::info!("connected; announcing {} online", args.equipment);
                    client.try_publish(topic(&args, "status"), QoS::AtLeastOnce, true, "online")?;
                }
                Ok(_) => {}
                Err(err) => {
                    tracing::warn!(error = %err, "MQTT connection failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            },
            _ = heartbeat.tick() => {
                let ts = chrono::Utc::now().to_rfc3339();
                let _ = client.try_publish(topic(&args, "telemetry"), QoS::AtMostOnce, false, serde_json::json!({ "ts": ts }).to_string());
            }
            _ = tokio::signal::ctrl_c() => {
                // A clean goodbye: say offline ourselves (the will is only sent on a lost connection).
                client.publish(topic(&args, "status"), QoS::AtLeastOnce, true, "offline").await?;
                client.disconnect().await?;
                for _ in 0..10 {
                    if matches!(eventloop.poll().await, Err(_) | Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect))) {
                        break;
                    }
                }
                return Ok(());
            }
        }
    }
}
