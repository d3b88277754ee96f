//! Smart plugs in their own MQTT formats (DESIGN.md, "Machines in their own protocols"): which
//! topics a plug's machine needs, and each message parsed into a [`PlugReading`]. Pure: topic
//! and payload in, reading out.
//!
//! - Tasmota: `tele/{t}/LWT` (`Online`/`Offline`), `stat/{t}/POWER` (`ON`/`OFF`),
//!   `stat/{t}/RESULT` and `tele/{t}/STATE` (`{"POWER":"ON",...}`), `tele/{t}/SENSOR`
//!   (`{"ENERGY":{"Power":123,...}}`).
//! - Shelly Gen1: `shellies/{id}/online` (`true`/`false`), `shellies/{id}/relay/0`
//!   (`on`/`off`/`overpower`), `shellies/{id}/relay/0/power` (watts as text).
//! - Shelly Gen2/Gen3: `{id}/online` (`true`/`false`), `{id}/status/switch:0`
//!   (`{"output":true,"apower":12.3,...}`), `{id}/events/rpc` (`NotifyStatus` and
//!   `NotifyFullStatus` carry the parts of `switch:0` that changed).

use serde::Deserialize;
use serde_json::Value;

use crate::domain::equipment::Connection;
use crate::domain::plug::PlugReading;
use crate::protocols::generic::ParseError;

/// A plug, as its topics name it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Device {
    /// A Tasmota plug by its MQTT topic.
    Tasmota(String),
    ShellyGen1(String),
    ShellyGen2(String),
}

impl Device {
    /// The plug a machine's connection goes through, if it is one.
    pub fn of(connection: &Connection) -> Option<Device> {
        match connection {
            Connection::Tasmota { topic, .. } => Some(Device::Tasmota(topic.clone())),
            Connection::ShellyGen1 { device_id, .. } => Some(Device::ShellyGen1(device_id.clone())),
            Connection::ShellyGen2 { device_id, .. } => Some(Device::ShellyGen2(device_id.clone())),
            Connection::Mqtt | Connection::Bambu { .. } | Connection::Octoprint { .. } => None,
        }
    }

    /// Exactly the topics makrcave reads from this plug.
    pub fn topics(&self) -> Vec<String> {
        match self {
            Device::Tasmota(t) => ["tele/{}/LWT", "stat/{}/POWER", "stat/{}/RESULT", "tele/{}/STATE", "tele/{}/SENSOR"]
                .iter()
                .map(|p| p.replace("{}", t))
                .collect(),
            Device::ShellyGen1(id) => vec![
                format!("shellies/{id}/online"),
                format!("shellies/{id}/relay/0"),
                format!("shellies/{id}/relay/0/power"),
            ],
            Device::ShellyGen2(id) => {
                vec![format!("{id}/online"), format!("{id}/status/switch:0"), format!("{id}/events/rpc")]
            }
        }
    }
}

/// What a plug topic carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Channel {
    TasmotaLwt,
    TasmotaPower,
    /// `stat/{t}/RESULT` and `tele/{t}/STATE`: JSON with a `POWER` field.
    TasmotaPowerJson,
    TasmotaSensor,
    Gen1Online,
    Gen1Relay,
    Gen1Power,
    Gen2Online,
    Gen2Switch,
    Gen2Events,
}

/// The plug and channel of a topic. Tasmota's `tele/`/`stat/` and Gen1's `shellies/` prefixes
/// are tried first: a Gen2 device id is its model and MAC (`shellyplusplugs-aabbcc`), never
/// one of those words.
fn parse_topic(topic: &str) -> Option<(Device, Channel)> {
    let parts: Vec<&str> = topic.split('/').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return None;
    }
    let tasmota = |t: &str, channel| Some((Device::Tasmota(t.to_string()), channel));
    let gen1 = |id: &str, channel| Some((Device::ShellyGen1(id.to_string()), channel));
    let gen2 = |id: &str, channel| Some((Device::ShellyGen2(id.to_string()), channel));
    match parts.as_slice() {
        ["tele", t, "LWT"] => tasmota(t, Channel::TasmotaLwt),
        ["tele", t, "STATE"] => tasmota(t, Channel::TasmotaPowerJson),
        ["tele", t, "SENSOR"] => tasmota(t, Channel::TasmotaSensor),
        ["stat", t, "POWER"] => tasmota(t, Channel::TasmotaPower),
        ["stat", t, "RESULT"] => tasmota(t, Channel::TasmotaPowerJson),
        ["tele" | "stat", ..] => None,
        ["shellies", id, "online"] => gen1(id, Channel::Gen1Online),
        ["shellies", id, "relay", "0"] => gen1(id, Channel::Gen1Relay),
        ["shellies", id, "relay", "0", "power"] => gen1(id, Channel::Gen1Power),
        ["shellies", ..] => None,
        [id, "online"] => gen2(id, Channel::Gen2Online),
        [id, "status", "switch:0"] => gen2(id, Channel::Gen2Switch),
        [id, "events", "rpc"] => gen2(id, Channel::Gen2Events),
        _ => None,
    }
}

/// The plug a topic belongs to, if it is one of the plug topics makrcave reads.
pub fn device_of(topic: &str) -> Option<Device> {
    parse_topic(topic).map(|(device, _)| device)
}

/// Parses one plug message. `Ok(None)`: a well-formed message that says nothing makrcave
/// uses (a `RESULT` of another command, an RPC notification of another component).
pub fn parse(topic: &str, payload: &[u8]) -> Result<Option<PlugReading>, ParseError> {
    let (_, channel) = parse_topic(topic).ok_or(ParseError::BadTopic)?;
    let text = || std::str::from_utf8(payload).map(str::trim).map_err(|_| ParseError::BadStatus);
    let status = |relay_on: Option<bool>, power_w: Option<f64>| {
        (relay_on.is_some() || power_w.is_some()).then_some(PlugReading::Status { relay_on, power_w })
    };
    match channel {
        Channel::TasmotaLwt => match text()? {
            "Online" => Ok(Some(PlugReading::Availability(true))),
            "Offline" => Ok(Some(PlugReading::Availability(false))),
            _ => Err(ParseError::BadStatus),
        },
        Channel::Gen1Online | Channel::Gen2Online => match text()? {
            "true" => Ok(Some(PlugReading::Availability(true))),
            "false" => Ok(Some(PlugReading::Availability(false))),
            _ => Err(ParseError::BadStatus),
        },
        Channel::TasmotaPower => Ok(status(Some(tasmota_switch(text()?)?), None)),
        Channel::TasmotaPowerJson => {
            let json: Value = json(payload)?;
            let relay = json.get("POWER").or_else(|| json.get("POWER1"));
            match relay {
                None => Ok(None),
                Some(Value::String(s)) => Ok(status(Some(tasmota_switch(s)?), None)),
                Some(other) => Err(ParseError::InvalidValue(format!("POWER must be ON or OFF, not {other}"))),
            }
        }
        Channel::TasmotaSensor => {
            let sensor: TasmotaSensor = typed(payload)?;
            let power = sensor.energy.and_then(|e| e.power).map(watts).transpose()?;
            Ok(status(None, power))
        }
        Channel::Gen1Relay => match text()? {
            "on" => Ok(status(Some(true), None)),
            // The plug cut the power itself: the relay is off.
            "off" | "overpower" => Ok(status(Some(false), None)),
            _ => Err(ParseError::BadStatus),
        },
        Channel::Gen1Power => {
            let power: f64 = text()?
                .trim_matches('"')
                .parse()
                .map_err(|_| ParseError::InvalidValue("relay/0/power must be a number of watts".into()))?;
            Ok(status(None, Some(watts(power)?)))
        }
        Channel::Gen2Switch => {
            let switch: Gen2Switch = typed(payload)?;
            Ok(status(switch.output, switch.apower.map(watts).transpose()?))
        }
        Channel::Gen2Events => {
            let event: Gen2Event = typed(payload)?;
            if !matches!(event.method.as_str(), "NotifyStatus" | "NotifyFullStatus") {
                return Ok(None);
            }
            let Some(switch) = event.params.and_then(|p| p.switch0) else { return Ok(None) };
            Ok(status(switch.output, switch.apower.map(watts).transpose()?))
        }
    }
}

fn tasmota_switch(value: &str) -> Result<bool, ParseError> {
    match value {
        "ON" => Ok(true),
        "OFF" => Ok(false),
        _ => Err(ParseError::InvalidValue(format!("POWER must be ON or OFF, not {value:?}"))),
    }
}

fn watts(power: f64) -> Result<f64, ParseError> {
    if power.is_finite() && power >= 0.0 {
        Ok(power)
    } else {
        Err(ParseError::InvalidValue("power must be a non-negative number of watts".into()))
    }
}

fn json(payload: &[u8]) -> Result<Value, ParseError> {
    serde_json::from_slice(payload).map_err(|e| ParseError::MalformedJson(e.to_string()))
}

fn typed<T: for<'de> Deserialize<'de>>(payload: &[u8]) -> Result<T, ParseError> {
    serde_json::from_slice(payload).map_err(|e| {
        if e.is_data() {
            ParseError::InvalidValue(e.to_string())
        } else {
            ParseError::MalformedJson(e.to_string())
        }
    })
}

#[derive(Deserialize)]
struct TasmotaSensor {
    #[serde(rename = "ENERGY")]
    energy: Option<TasmotaEnergy>,
}

#[derive(Deserialize)]
struct TasmotaEnergy {
    #[serde(rename = "Power")]
    power: Option<f64>,
}

#[derive(Deserialize)]
struct Gen2Switch {
    output: Option<bool>,
    apower: Option<f64>,
}

#[derive(Deserialize)]
struct Gen2Event {
    method: String,
    params: Option<Gen2Params>,
}

#[derive(Deserialize)]
struct Gen2Params {
    #[serde(rename = "switch:0")]
    switch0: Option<Gen2Switch>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn status(relay_on: Option<bool>, power_w: Option<f64>) -> Result<Option<PlugReading>, ParseError> {
        Ok(Some(PlugReading::Status { relay_on, power_w }))
    }

    #[test]
    fn each_plug_needs_exactly_its_own_topics() {
        let tasmota =
            Device::of(&Connection::Tasmota { topic: "laser1".into(), running_above_w: None, running_after_s: None });
        assert_eq!(
            tasmota.map(|d| d.topics()),
            Some(vec![
                "tele/laser1/LWT".to_string(),
                "stat/laser1/POWER".into(),
                "stat/laser1/RESULT".into(),
                "tele/laser1/STATE".into(),
                "tele/laser1/SENSOR".into()
            ])
        );
        assert_eq!(Device::of(&Connection::Mqtt), None);
        for device in [
            Device::Tasmota("laser1".into()),
            Device::ShellyGen1("shellyplug-s-AABBCC".into()),
            Device::ShellyGen2("shellyplusplugs-aabbcc".into()),
        ] {
            for topic in device.topics() {
                assert_eq!(device_of(&topic), Some(device.clone()), "{topic}");
            }
        }
        assert_eq!(device_of("tele/laser1/INFO1"), None);
        assert_eq!(device_of("shellies/x/relay/1"), None);
        assert_eq!(device_of("makrcave/s/m/telemetry"), None);
        assert_eq!(device_of("tele//LWT"), None);
    }

    #[test]
    fn tasmota_payloads() {
        assert_eq!(parse("tele/laser1/LWT", b"Online"), Ok(Some(PlugReading::Availability(true))));
        assert_eq!(parse("tele/laser1/LWT", b"Offline"), Ok(Some(PlugReading::Availability(false))));
        assert_eq!(parse("stat/laser1/POWER", b"ON"), status(Some(true), None));
        assert_eq!(parse("stat/laser1/POWER", b"OFF"), status(Some(false), None));
        assert_eq!(parse("stat/laser1/RESULT", br#"{"POWER":"OFF"}"#), status(Some(false), None));
        assert_eq!(parse("stat/laser1/RESULT", br#"{"TelePeriod":10}"#), Ok(None));
        let state = br#"{"Time":"2020-10-25T16:45:38","Uptime":"0T00:13:30","UptimeSec":810,"Heap":27,
            "SleepMode":"Dynamic","Sleep":50,"LoadAvg":19,"MqttCount":1,"POWER":"ON","Wifi":{"AP":1,"SSId":"x",
            "BSSId":"30:23:00:00:00:20","Channel":10,"RSSI":86,"Signal":-57,"LinkCount":1,"Downtime":"0T00:00:05"}}"#;
        assert_eq!(parse("tele/laser1/STATE", state), status(Some(true), None));
        let sensor = br#"{"Time":"2020-10-25T16:45:38","ENERGY":{"TotalStartTime":"2020-09-04T19:16:02",
            "Total":3.457,"Yesterday":0.000,"Today":0.135,"Period":0,"Power":123,"ApparentPower":130,
            "ReactivePower":40,"Factor":0.95,"Voltage":230,"Current":0.563}}"#;
        assert_eq!(parse("tele/laser1/SENSOR", sensor), status(None, Some(123.0)));
        // A SENSOR without an energy meter (a temperature probe) says nothing of power.
        assert_eq!(parse("tele/laser1/SENSOR", br#"{"Time":"x","DS18B20":{"Temperature":21.5}}"#), Ok(None));
    }

    #[test]
    fn shelly_gen1_payloads() {
        let id = "shellies/shellyplug-s-AABBCC";
        assert_eq!(parse(&format!("{id}/online"), b"true"), Ok(Some(PlugReading::Availability(true))));
        assert_eq!(parse(&format!("{id}/online"), b"false"), Ok(Some(PlugReading::Availability(false))));
        assert_eq!(parse(&format!("{id}/relay/0"), b"on"), status(Some(true), None));
        assert_eq!(parse(&format!("{id}/relay/0"), b"overpower"), status(Some(false), None));
        assert_eq!(parse(&format!("{id}/relay/0/power"), b"123.45"), status(None, Some(123.45)));
        assert_eq!(parse(&format!("{id}/relay/0/power"), b"0"), status(None, Some(0.0)));
    }

    #[test]
    fn shelly_gen2_payloads() {
        let id = "shellyplusplugs-aabbcc";
        assert_eq!(parse(&format!("{id}/online"), b"true"), Ok(Some(PlugReading::Availability(true))));
        let switch = br#"{"id":0,"source":"init","output":true,"apower":12.3,"voltage":230.1,"freq":50.0,
            "current":0.105,"aenergy":{"total":1.234,"by_minute":[0.0,0.0,0.0],"minute_ts":1654511700},
            "temperature":{"tC":38.5,"tF":101.3}}"#;
        assert_eq!(parse(&format!("{id}/status/switch:0"), switch), status(Some(true), Some(12.3)));
        // Notifications carry only what changed.
        let notify = br#"{"src":"shellyplusplugs-aabbcc","dst":"shellyplusplugs-aabbcc/events","method":"NotifyStatus",
            "params":{"ts":1734476334.51,"switch:0":{"id":0,"apower":310.6}}}"#;
        assert_eq!(parse(&format!("{id}/events/rpc"), notify), status(None, Some(310.6)));
        let toggled = br#"{"src":"x","dst":"x/events","method":"NotifyStatus",
            "params":{"ts":1734476334.51,"switch:0":{"id":0,"output":false,"source":"button"}}}"#;
        assert_eq!(parse(&format!("{id}/events/rpc"), toggled), status(Some(false), None));
        let other = br#"{"src":"x","dst":"x/events","method":"NotifyStatus","params":{"ts":1.0,"sys":{"uptime":5}}}"#;
        assert_eq!(parse(&format!("{id}/events/rpc"), other), Ok(None));
        let event = br#"{"src":"x","dst":"x/events","method":"NotifyEvent","params":{"ts":1.0,"events":[]}}"#;
        assert_eq!(parse(&format!("{id}/events/rpc"), event), Ok(None));
    }

    #[test]
    fn bad_payloads_say_why() {
        let reason = |topic: &str, payload: &[u8]| parse(topic, payload).map_err(|e| e.reason());
        assert_eq!(reason("tele/t/LWT", b"online"), Err("bad_status"));
        assert_eq!(reason("stat/t/POWER", b"TOGGLE"), Err("invalid_value"));
        assert_eq!(reason("tele/t/SENSOR", b"{"), Err("malformed_json"));
        assert_eq!(reason("tele/t/SENSOR", br#"{"ENERGY":{"Power":-5}}"#), Err("invalid_value"));
        assert_eq!(reason("shellies/s/relay/0/power", b"lots"), Err("invalid_value"));
        assert_eq!(reason("d/status/switch:0", br#"{"output":"yes"}"#), Err("invalid_value"));
        assert_eq!(reason("d/online", b"maybe"), Err("bad_status"));
        assert_eq!(reason("somewhere/else", b""), Err("bad_topic"));
    }

    proptest! {
        #[test]
        fn parsing_never_panics(payload in proptest::collection::vec(any::<u8>(), 0..256), topic in "\\PC{0,40}") {
            let _ = parse(&topic, &payload);
            for topic in ["tele/t/SENSOR", "stat/t/RESULT", "shellies/s/relay/0/power", "d/events/rpc", "d/online"] {
                let _ = parse(topic, &payload);
            }
        }
    }
}
