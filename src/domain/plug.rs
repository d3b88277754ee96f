//! What a smart plug (Tasmota, Shelly Gen1, Shelly Gen2/Gen3) tells about the machine behind
//! it, once its protocol is parsed (`crate::protocols::plugs`), and the settings that turn its
//! power draw into the machine's `running` state.

use std::time::Duration;

use super::busy::DEFAULT_RUNNING_AFTER;
use super::equipment::{Connection, MAX_RUNNING_AFTER_S};

/// One report of a plug.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PlugReading {
    /// The plug's availability topic (its last will): reachable or not.
    Availability(bool),
    /// Its relay and power, each when the message carries it.
    Status { relay_on: Option<bool>, power_w: Option<f64> },
}

/// When the machine behind a plug counts as running.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PowerSensing {
    /// Drawing more than this (watts)...
    pub running_above_w: f64,
    /// ...for this long.
    pub running_after: Duration,
}

impl PowerSensing {
    /// The sensing a connection asks for: only plugs with a `running_above_w` have one.
    pub fn of(connection: &Connection) -> Option<PowerSensing> {
        let (above, after) = match connection {
            Connection::Tasmota { running_above_w, running_after_s, .. }
            | Connection::ShellyGen1 { running_above_w, running_after_s, .. }
            | Connection::ShellyGen2 { running_above_w, running_after_s, .. } => (*running_above_w, *running_after_s),
            Connection::Mqtt | Connection::Bambu { .. } | Connection::Octoprint { .. } => (None, None),
        };
        Some(PowerSensing {
            running_above_w: above?,
            // Validated when stored (0 to an hour); a value from before is clamped, not a panic.
            running_after: after.map_or(DEFAULT_RUNNING_AFTER, |s| {
                Duration::try_from_secs_f64(s.clamp(0.0, MAX_RUNNING_AFTER_S)).unwrap_or(DEFAULT_RUNNING_AFTER)
            }),
        })
    }

    /// The power the machine draws as far as sensing goes: a relay that is off feeds nothing.
    pub fn effective_power(relay_on: Option<bool>, power_w: Option<f64>) -> Option<f64> {
        match relay_on {
            Some(false) => Some(0.0),
            _ => power_w,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sensing_needs_a_threshold_and_defaults_its_hold() {
        let plug =
            |above, after| Connection::Tasmota { topic: "t".into(), running_above_w: above, running_after_s: after };
        assert_eq!(PowerSensing::of(&plug(None, Some(1.0))), None);
        assert_eq!(
            PowerSensing::of(&plug(Some(50.0), None)),
            Some(PowerSensing { running_above_w: 50.0, running_after: DEFAULT_RUNNING_AFTER })
        );
        let gen2 =
            Connection::ShellyGen2 { device_id: "d".into(), running_above_w: Some(5.0), running_after_s: Some(1.5) };
        assert_eq!(PowerSensing::of(&gen2).map(|s| s.running_after), Some(Duration::from_millis(1500)));
        assert_eq!(PowerSensing::of(&Connection::Mqtt), None);
    }

    #[test]
    fn a_switched_off_relay_draws_nothing() {
        assert_eq!(PowerSensing::effective_power(Some(false), Some(120.0)), Some(0.0));
        assert_eq!(PowerSensing::effective_power(Some(true), Some(120.0)), Some(120.0));
        assert_eq!(PowerSensing::effective_power(None, None), None);
    }
}
