//! `makrcave-bridge check`: tries every outside thing the configuration names (serial ports,
//! GPIO lines, relay commands, the broker, the server, the allowlist key, the state folder) and
//! says, one line each, what works and what is wrong. Nothing is switched.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rumqttc::{AsyncClient, ConnectReturnCode, ConnectionError, Event, Packet};

use crate::allowlist::AllowlistKey;
use crate::config::{CardConfig, Config, GpioLine, MqttEndpoint, RelayKind};
use crate::link::mqtt_options;
use crate::server::{ServerClient, ServerError};

/// How long the broker has to answer CONNECT.
const BROKER_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckLine {
    pub name: String,
    /// What works, or what is wrong.
    pub outcome: Result<String, String>,
}

impl std::fmt::Display for CheckLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.outcome {
            Ok(detail) => write!(f, "OK    {}: {detail}", self.name),
            Err(problem) => write!(f, "FAIL  {}: {problem}", self.name),
        }
    }
}

fn line(name: &str, outcome: Result<String, String>) -> CheckLine {
    CheckLine { name: name.to_string(), outcome }
}

/// Runs every check the configuration calls for.
pub async fn run_checks(config: &Config) -> Vec<CheckLine> {
    let mut lines = Vec::new();
    if let Some(port) = &config.controller.port {
        lines.push(line("controller serial port", check_serial(port, config.controller.baud)));
    }
    match &config.card {
        CardConfig::Serial { port, baud } => lines.push(line("card reader", check_serial(port, *baud))),
        CardConfig::Evdev { device } => lines.push(line("card reader", check_readable(device))),
        CardConfig::None => {}
    }
    match &config.relay.kind {
        RelayKind::Gpio { chip, line: offset, active_low } => {
            let gpio = GpioLine { chip: chip.clone(), line: *offset, active_low: *active_low };
            lines.push(line("relay", check_gpio(&gpio)));
        }
        RelayKind::Command { on, off } => {
            lines.push(line("relay on command", check_command(on)));
            lines.push(line("relay off command", check_command(off)));
        }
        RelayKind::None => lines.push(line("relay", Ok("none configured".into()))),
    }
    if let Some(gpio) = &config.indicator.gpio {
        lines.push(line("indicator", check_gpio(gpio)));
    }
    if let Some(gpio) = &config.button.bed_clear {
        lines.push(line("bed-clear button", check_gpio(gpio)));
    }
    lines.push(line("broker", check_broker(&config.mqtt.url).await));
    lines.push(line("server", check_server(config).await));
    if let Some(key) = &config.offline.public_key {
        lines.push(line("allowlist key", AllowlistKey::parse(key).map(|_| "parses".into()).map_err(|e| e.to_string())));
    }
    lines.push(line("state folder", check_state_dir(&config.queue.dir)));
    lines
}

fn check_serial(port: &str, baud: u32) -> Result<String, String> {
    tokio_serial::SerialStream::open(&tokio_serial::new(port, baud))
        .map(|_| format!("{port} opens at {baud} baud"))
        .map_err(|e| format!("cannot open {port}: {e}"))
}

fn check_readable(path: &Path) -> Result<String, String> {
    std::fs::File::open(path)
        .map(|_| format!("{} opens", path.display()))
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// The chip exists and the line is free to take (asked without taking it: no switching).
fn check_gpio(gpio: &GpioLine) -> Result<String, String> {
    let chip = gpiocdev::chip::Chip::from_path(&gpio.chip).map_err(|e| format!("{}: {e}", gpio.chip.display()))?;
    let info = chip.line_info(gpio.line).map_err(|e| format!("line {} on {}: {e}", gpio.line, gpio.chip.display()))?;
    if info.used {
        return Err(format!("line {} on {} is in use by \"{}\"", gpio.line, gpio.chip.display(), info.consumer));
    }
    Ok(format!("line {} on {} is free", gpio.line, gpio.chip.display()))
}

/// The program exists and is executable (found on PATH when it has no slash).
fn check_command(argv: &[String]) -> Result<String, String> {
    let program = argv.first().ok_or("empty command")?;
    let path = if program.contains('/') {
        Some(PathBuf::from(program))
    } else {
        std::env::var_os("PATH")
            .and_then(|paths| std::env::split_paths(&paths).map(|dir| dir.join(program)).find(|p| p.is_file()))
    };
    let path = path.ok_or_else(|| format!("{program} is not on PATH"))?;
    let meta = std::fs::metadata(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
        return Err(format!("{} is not an executable file", path.display()));
    }
    Ok(format!("{} is executable", path.display()))
}

async fn check_broker(url: &str) -> Result<String, String> {
    let endpoint = MqttEndpoint::parse(url)?;
    // Its own client id: the bridge's would kick a running bridge off the broker.
    let client_id = format!("makrcave-bridge-check-{}", std::process::id());
    let (_client, mut eventloop) = AsyncClient::new(mqtt_options(&endpoint, &client_id, Duration::from_secs(5)), 4);
    let answer = tokio::time::timeout(BROKER_TIMEOUT, async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => return Ok(ack.code),
                Ok(_) => {}
                Err(ConnectionError::ConnectionRefused(code)) => return Ok(code),
                Err(err) => return Err(err.to_string()),
            }
        }
    })
    .await;
    let where_ = format!("{}:{}", endpoint.host, endpoint.port);
    match answer {
        Err(_) => Err(format!("{where_}: no CONNACK within {} s", BROKER_TIMEOUT.as_secs())),
        Ok(Err(err)) => Err(format!("{where_}: {err}")),
        Ok(Ok(ConnectReturnCode::Success)) => Ok(format!("{where_} accepts the bridge's login")),
        Ok(Ok(ConnectReturnCode::BadUserNamePassword | ConnectReturnCode::NotAuthorized)) => {
            Err(format!("{where_}: bad credentials (check user:pass in mqtt.url)"))
        }
        Ok(Ok(code)) => Err(format!("{where_}: connection refused ({code:?})")),
    }
}

async fn check_server(config: &Config) -> Result<String, String> {
    let server = ServerClient::new(
        &config.server.url,
        &config.server.device_token,
        &config.machine.equipment_id,
        config.http_timeout(),
    )
    .map_err(|e| e.to_string())?;
    match server.machines().await {
        Ok(()) => Ok(format!("{} accepts the device token", config.server.url)),
        Err(ServerError::Unauthorized) => Err(format!("{}: the device token is refused (401)", config.server.url)),
        Err(err) => Err(format!("{}: {err}", config.server.url)),
    }
}

fn check_state_dir(dir: &Path) -> Result<String, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let probe = dir.join(".check");
    std::fs::write(&probe, b"ok").map_err(|e| format!("{} is not writable: {e}", dir.display()))?;
    let _ = std::fs::remove_file(&probe);
    Ok(format!("{} is writable", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_found_and_checked() {
        assert!(check_command(&["sh".to_string()]).is_ok());
        assert!(check_command(&["/bin/sh".to_string(), "-c".to_string()]).is_ok());
        assert!(check_command(&["no-such-program-here".to_string()]).is_err());
        assert!(check_command(&[concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml").to_string()]).is_err());
        assert!(check_command(&[]).is_err());
    }

    #[test]
    fn lines_say_ok_or_fail() {
        assert_eq!(line("relay", Ok("fine".into())).to_string(), "OK    relay: fine");
        assert_eq!(line("relay", Err("gone".into())).to_string(), "FAIL  relay: gone");
    }
}
