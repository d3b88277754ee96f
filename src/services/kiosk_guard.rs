//! Kiosks resist card guessing: each kiosk's unknown cards are counted
//! ([`crate::domain::guessing`] has the rules), a kiosk that saw too many is slowed down, and
//! the space's admins get an alert on the live feed when that begins.
//!
//! The counts live in memory, per kiosk: a restart forgets them, which only gives a guesser
//! the few cards of one window back.

use std::time::{Duration, Instant};

use chrono::Utc;
use dashmap::DashMap;
use serde_json::json;

use crate::domain::guessing::{Backoff, Guard, KioskGuardSettings};
use crate::store::kiosks::KioskRecord;

use super::Services;

/// Every kiosk's guard, by kiosk id.
pub struct KioskGuards {
    settings: KioskGuardSettings,
    guards: DashMap<String, Guard>,
}

impl KioskGuards {
    pub fn new(settings: KioskGuardSettings) -> KioskGuards {
        KioskGuards { settings, guards: DashMap::new() }
    }

    /// `Err(wait)` while the kiosk is slowed down.
    pub fn check(&self, kiosk_id: &str) -> Result<(), Duration> {
        self.guards.get(kiosk_id).map_or(Ok(()), |g| g.check(Instant::now()))
    }

    fn unknown_card(&self, kiosk_id: &str) -> Option<Backoff> {
        self.guards.entry(kiosk_id.to_string()).or_default().unknown_card(&self.settings, Instant::now())
    }
}

/// Counts an unknown card presented at the kiosk; if it slows the kiosk down, the space's
/// admins are told on the live feed (`kiosk_alert`).
pub fn unknown_card(svc: &Services, kiosk: &KioskRecord, equipment_id: &str) {
    let Some(backoff) = svc.kiosk_guards.unknown_card(&kiosk.id) else { return };
    let until = Utc::now() + chrono::Duration::from_std(backoff.duration).unwrap_or_default();
    tracing::warn!(kiosk_id = ?kiosk.id, unknown_cards = backoff.unknown_cards,
        backoff_s = backoff.duration.as_secs(), "kiosk slowed down: too many unknown cards");
    let alert = json!({
        "type": "kiosk_alert",
        "reason": "unknown_cards",
        "makerspace_id": kiosk.makerspace_id,
        "kiosk_id": kiosk.id,
        "kiosk_name": kiosk.name,
        "equipment_id": equipment_id,
        "unknown_cards": backoff.unknown_cards,
        "window_s": svc.kiosk_guards.settings.window.as_secs(),
        "backoff_s": backoff.duration.as_secs(),
        "until": until,
    });
    svc.hub.publish_admin_event(&kiosk.makerspace_id, &std::sync::Arc::from(alert.to_string()));
}
