//! Filament spools: the pure rules. A spool is a sub-account of its filament item (its
//! remaining grams are the sum of the log rows that carry its id); it can be loaded in a slot
//! of a printer, weighed, and charged a job's grams. This module holds what needs no I/O:
//! slot names, what a weighing means, which loaded spool a job used, and how the trays a
//! printer reports (Bambu's AMS) match the spools registered in its slots.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::inventory::{normalize_color, Quantity};
use super::machine::Tray;
use super::validate::Invalid;

/// The longest slot name.
pub const MAX_SLOT_LEN: usize = 40;
/// The slot of a single-extruder printer.
pub const MAIN_SLOT: &str = "main";

/// A slot name: `0-1` (AMS unit 0, tray 1, as Bambu's reports name them), `external` (the
/// spool holder), `main` (a single-extruder printer), or another short name a printer uses.
/// Letters, digits, `.`, `_` and `-`, starting with a letter or a digit: safe in a log line,
/// a URL and a dashboard.
pub fn check_slot(slot: &str) -> Result<(), Invalid> {
    let mut bytes = slot.bytes();
    let first_ok = bytes.next().is_some_and(|b| b.is_ascii_alphanumeric());
    let rest_ok = bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !first_ok || !rest_ok || slot.len() > MAX_SLOT_LEN {
        return Err(Invalid(format!(
            "slot must be 1 to {MAX_SLOT_LEN} letters, digits, '.', '_' or '-' (\"0-1\", \"external\", \"main\")"
        )));
    }
    Ok(())
}

/// The filament left on a weighed spool: its gross weight less the empty spool's.
pub fn remaining_after_weighing(gross: Quantity, tare: Quantity) -> Result<Quantity, Invalid> {
    if gross < tare {
        return Err(Invalid(format!(
            "gross_g {} is less than the empty spool's weight {}: weigh the spool with its filament",
            gross.to_text(),
            tare.to_text()
        )));
    }
    Ok(Quantity(gross.0 - tare.0))
}

/// A spool loaded on a machine, as the machine's live view shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LoadedSpool {
    pub spool_id: String,
    /// The filament item the spool belongs to.
    pub item_id: String,
    pub slot: String,
    /// The filament's material (PLA, PETG, ...), from its item.
    pub material: Option<String>,
    /// `#RRGGBB`, from its item.
    pub color: Option<String>,
    /// Grams left: the sum of the spool's log rows.
    #[schema(value_type = f64)]
    pub remaining_g: Quantity,
}

/// Why no single loaded spool can be charged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoSpool {
    /// No spool loaded (in the named slot, if one was named).
    NoneLoaded { slot: Option<String> },
    /// Several are loaded and no slot was named: their slots.
    Ambiguous { slots: Vec<String> },
}

/// The spool a job drew from: the one in `slot`, or, with no slot named, the only one loaded.
pub fn pick_spool<'a>(loaded: &'a [LoadedSpool], slot: Option<&str>) -> Result<&'a LoadedSpool, NoSpool> {
    match slot {
        Some(slot) => {
            loaded.iter().find(|s| s.slot == slot).ok_or_else(|| NoSpool::NoneLoaded { slot: Some(slot.to_string()) })
        }
        None => match loaded {
            [only] => Ok(only),
            [] => Err(NoSpool::NoneLoaded { slot: None }),
            many => Err(NoSpool::Ambiguous { slots: many.iter().map(|s| s.slot.clone()).collect() }),
        },
    }
}

/// How a tray a printer reports compares with the spool registered in its slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TrayStatus {
    /// The registered spool's material and colour are what the printer reports.
    Matched,
    /// A spool is registered in the slot, but the printer reports another material or colour
    /// (or an empty tray): someone swapped spools without telling makrcave.
    Mismatch,
    /// The printer reports material in a slot where no spool is registered.
    Unregistered,
    /// Nothing reported and nothing registered.
    Empty,
}

/// One reported tray next to the spool registered in its slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TrayMatch {
    pub slot: String,
    /// What the printer reports (`tray_type`).
    pub material: Option<String>,
    /// What the printer reports, as `#RRGGBB`.
    pub color: Option<String>,
    /// The spool registered in the slot.
    pub spool_id: Option<String>,
    pub status: TrayStatus,
}

/// Matches each tray the printer reports to the spool loaded in the same slot. Materials are
/// compared without regard to case (`PLA` and `pla`); colours as `RRGGBB` (the printer's alpha
/// is ignored). A colour only one side knows (a filament recorded without colour, a tray
/// without one) does not contradict the other: only two different known colours mismatch.
pub fn match_trays(trays: &[Tray], loaded: &[LoadedSpool]) -> Vec<TrayMatch> {
    trays
        .iter()
        .map(|tray| {
            let reported_color = tray.color.as_deref().and_then(normalize_color);
            let spool = loaded.iter().find(|s| s.slot == tray.slot);
            let status = match (spool, &tray.material) {
                (None, None) => TrayStatus::Empty,
                (None, Some(_)) => TrayStatus::Unregistered,
                (Some(_), None) => TrayStatus::Mismatch,
                (Some(spool), Some(material)) => {
                    let same_material = spool.material.as_deref().is_some_and(|m| m.eq_ignore_ascii_case(material));
                    let spool_color = spool.color.as_deref().and_then(normalize_color);
                    let same_color = match (&spool_color, &reported_color) {
                        (Some(a), Some(b)) => a == b,
                        _ => true,
                    };
                    if same_material && same_color {
                        TrayStatus::Matched
                    } else {
                        TrayStatus::Mismatch
                    }
                }
            };
            TrayMatch {
                slot: tray.slot.clone(),
                material: tray.material.clone(),
                color: reported_color.map(|c| format!("#{c}")),
                spool_id: spool.map(|s| s.spool_id.clone()),
                status,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spool(id: &str, slot: &str, material: &str, color: Option<&str>) -> LoadedSpool {
        LoadedSpool {
            spool_id: id.into(),
            item_id: "pla".into(),
            slot: slot.into(),
            material: Some(material.into()),
            color: color.map(str::to_string),
            remaining_g: Quantity::from_units(800),
        }
    }

    fn tray(slot: &str, material: Option<&str>, color: Option<&str>) -> Tray {
        Tray {
            slot: slot.into(),
            material: material.map(str::to_string),
            color: color.map(str::to_string),
            remain_percent: None,
            active: false,
        }
    }

    #[test]
    fn slots_are_short_safe_names() {
        for good in ["0-1", "3-3", "external", "main", "left.e1", "T0"] {
            assert_eq!(check_slot(good), Ok(()), "{good}");
        }
        for bad in ["", "-1", "0 1", "slot/1", "é", &"a".repeat(41)] {
            assert!(check_slot(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_weighing_is_gross_less_tare() {
        let tare = Quantity::from_units(250);
        assert_eq!(remaining_after_weighing(Quantity(1_012_500), tare), Ok(Quantity(762_500)));
        assert_eq!(remaining_after_weighing(tare, tare), Ok(Quantity::ZERO));
        assert!(remaining_after_weighing(Quantity(249_999), tare).is_err());
    }

    #[test]
    fn a_job_draws_from_its_slot_or_the_only_spool() {
        let one = [spool("a", "main", "PLA", None)];
        assert_eq!(pick_spool(&one, None).map(|s| s.spool_id.as_str()), Ok("a"));
        assert_eq!(pick_spool(&one, Some("main")).map(|s| s.spool_id.as_str()), Ok("a"));
        assert_eq!(pick_spool(&one, Some("0-1")), Err(NoSpool::NoneLoaded { slot: Some("0-1".into()) }));
        assert_eq!(pick_spool(&[], None), Err(NoSpool::NoneLoaded { slot: None }));
        let two = [spool("a", "0-0", "PLA", None), spool("b", "0-1", "PETG", None)];
        assert_eq!(pick_spool(&two, Some("0-1")).map(|s| s.spool_id.as_str()), Ok("b"));
        assert_eq!(pick_spool(&two, None), Err(NoSpool::Ambiguous { slots: vec!["0-0".into(), "0-1".into()] }));
    }

    #[test]
    fn trays_match_the_spools_in_their_slots() {
        let loaded = [
            spool("black", "0-0", "PLA", Some("#1A1A1A")),
            spool("red", "0-1", "PETG", Some("#FF0000")),
            spool("blue", "0-2", "PLA", Some("#0000FF")),
            spool("ghost", "0-3", "PLA", None),
            spool("plain", "external", "TPU", None),
        ];
        let trays = [
            // Bambu sends colours as RRGGBBAA and materials in its own case.
            tray("0-0", Some("pla"), Some("1A1A1AFF")),
            tray("0-1", Some("PLA"), Some("FF0000FF")),
            tray("0-2", Some("PLA"), Some("00FF00FF")),
            tray("0-3", None, None),
            tray("1-0", Some("ABS"), Some("FFFFFFFF")),
            tray("1-1", None, None),
            tray("external", Some("TPU"), Some("123456FF")),
        ];
        let matched = match_trays(&trays, &loaded);
        let statuses: Vec<(&str, TrayStatus)> = matched.iter().map(|m| (m.slot.as_str(), m.status)).collect();
        assert_eq!(
            statuses,
            [
                ("0-0", TrayStatus::Matched),
                ("0-1", TrayStatus::Mismatch),
                ("0-2", TrayStatus::Mismatch),
                ("0-3", TrayStatus::Mismatch),
                ("1-0", TrayStatus::Unregistered),
                ("1-1", TrayStatus::Empty),
                // A filament recorded without colour does not contradict the tray's.
                ("external", TrayStatus::Matched),
            ]
        );
        assert_eq!(
            matched[0],
            TrayMatch {
                slot: "0-0".into(),
                material: Some("pla".into()),
                color: Some("#1A1A1A".into()),
                spool_id: Some("black".into()),
                status: TrayStatus::Matched,
            }
        );
        assert_eq!((matched[4].spool_id.as_deref(), matched[4].color.as_deref()), (None, Some("#FFFFFF")));
    }
}
