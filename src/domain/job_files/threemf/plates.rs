//! What slicers store beside the model: Bambu Studio's and OrcaSlicer's plates
//! (`Metadata/model_settings.config`, `Metadata/slice_info.config`, `Metadata/plate_N.gcode`,
//! `Metadata/project_settings.config`) and PrusaSlicer's print config
//! (`Metadata/Slic3r_PE.config`).
//!
//! The shapes read, as Bambu Studio writes them (OrcaSlicer keeps its format):
//! - `model_settings.config`: `<config>`, then per plate `<plate>` with
//!   `<metadata key="plater_id" value="1"/>`, `plater_name`, `gcode_file`, and a
//!   `<model_instance>` per object placed on it (whose own `<metadata>` are not the plate's).
//! - `slice_info.config`, for a sliced project: per plate `<plate>` with `<metadata key=...
//!   value=...>` for `index`, `prediction` (seconds), `weight` (grams), `nozzle_diameters`, then
//!   `<object identify_id name skipped/>` and `<filament id type color used_m used_g .../>`.
//! - `project_settings.config`: JSON of the project's settings, arrays per filament
//!   (`filament_type`, `filament_colour`) and per extruder (`nozzle_diameter`), and
//!   `printer_model`.
//! - PrusaSlicer's `Slic3r_PE.config`: the same `; key = value` lines as its G-code's config
//!   block, read by the G-code analyzer.

use std::collections::BTreeMap;

use quick_xml::events::Event;

use super::super::gcode::{decimal, GcodeAnalyzer};
use super::super::AnalysisError;
use super::model::attribute;
use super::package::Events;
use crate::domain::inventory::Quantity;

/// One plate of a Bambu Studio or OrcaSlicer project.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plate {
    /// 1-based, as the slicer numbers plates.
    pub index: u32,
    pub name: Option<String>,
    /// The plate's G-code in the package (`Metadata/plate_1.gcode`) when it was sliced.
    pub gcode_entry: Option<String>,
    /// Objects placed on the plate (model instances, or sliced objects not skipped).
    pub objects: u32,
    /// The slicer's estimate for the whole plate.
    pub print_seconds: Option<u64>,
    /// All filaments together, to the thousandth of a gram.
    pub filament_grams: Option<Quantity>,
    pub nozzle_mm: Option<f64>,
    pub filaments: Vec<PlateFilament>,
}

/// A filament a sliced plate uses.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PlateFilament {
    /// The project's filament slot (1-based), which the printer maps to an AMS tray.
    pub slot: u32,
    /// `PLA`, `PETG HF`.
    pub material: Option<String>,
    /// As the slicer writes it: `#RRGGBB` or `#RRGGBBAA`.
    pub colour: Option<String>,
    pub grams: Option<Quantity>,
    pub length_mm: Option<Quantity>,
}

/// A project's print settings, where a slicer stores them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PrintSettings {
    /// Per filament slot.
    pub materials: Vec<String>,
    pub colours: Vec<String>,
    /// The first extruder's nozzle.
    pub nozzle_mm: Option<f64>,
    pub printer_model: Option<String>,
}

/// Plates hold few objects and filaments; a bound keeps a hostile config small.
const MAX_PLATES: usize = 1_000;
const MAX_FILAMENTS: usize = 256;
/// Names and colours are short; longer text is cut here (on a character boundary).
const MAX_TEXT: usize = 64;

/// Plates by index, filled from whichever configs the package has.
#[derive(Default)]
pub struct Plates {
    by_index: BTreeMap<u32, Plate>,
}

impl Plates {
    pub fn into_vec(self) -> Vec<Plate> {
        self.by_index.into_values().collect()
    }

    fn plate(&mut self, index: u32) -> Result<&mut Plate, String> {
        if !self.by_index.contains_key(&index) && self.by_index.len() == MAX_PLATES {
            return Err(format!("more than {MAX_PLATES} plates"));
        }
        Ok(self.by_index.entry(index).or_insert_with(|| Plate { index, ..Plate::default() }))
    }

    /// A plate's G-code entry, `Metadata/plate_N.gcode`, seen in the package.
    pub fn gcode_entry(&mut self, name: &str) -> Result<(), String> {
        let Some(index) = name.strip_prefix("Metadata/plate_").and_then(|rest| rest.strip_suffix(".gcode")) else {
            return Ok(());
        };
        let Ok(index) = index.parse::<u32>() else { return Ok(()) };
        self.plate(index)?.gcode_entry = Some(name.to_string());
        Ok(())
    }

    /// `Metadata/model_settings.config`.
    pub fn read_model_settings(&mut self, events: &mut Events<'_, '_>) -> Result<(), AnalysisError> {
        let entry = events.entry().to_string();
        let fail = |reason: String| AnalysisError::InPackage { entry: entry.clone(), reason };
        // The plate being read: its metadata, and how many instances it holds.
        let mut plate: Option<(BTreeMap<String, String>, u32)> = None;
        let mut in_instance = false;
        loop {
            match events.next_event()? {
                Event::Start(tag) | Event::Empty(tag) => match tag.local_name().as_ref() {
                    b"plate" => plate = Some((BTreeMap::new(), 0)),
                    b"model_instance" => {
                        if let Some((_, instances)) = &mut plate {
                            *instances += 1;
                            in_instance = true;
                        }
                    }
                    b"metadata" if !in_instance => {
                        if let Some((metadata, _)) = &mut plate {
                            key_value(&tag, metadata).map_err(fail)?;
                        }
                    }
                    _ => {}
                },
                Event::End(tag) => match tag.local_name().as_ref() {
                    b"model_instance" => in_instance = false,
                    b"plate" => {
                        let Some((metadata, instances)) = plate.take() else { continue };
                        let Some(index) = metadata.get("plater_id").and_then(|id| id.trim().parse().ok()) else {
                            continue;
                        };
                        let plate = self.plate(index).map_err(fail)?;
                        plate.name = metadata.get("plater_name").and_then(|name| text(name));
                        plate.objects = plate.objects.max(instances);
                    }
                    _ => {}
                },
                Event::Eof => return Ok(()),
                _ => {}
            }
        }
    }

    /// `Metadata/slice_info.config`.
    pub fn read_slice_info(&mut self, events: &mut Events<'_, '_>) -> Result<(), AnalysisError> {
        let entry = events.entry().to_string();
        let fail = |reason: String| AnalysisError::InPackage { entry: entry.clone(), reason };
        let mut plate: Option<(BTreeMap<String, String>, Vec<PlateFilament>, u32)> = None;
        loop {
            match events.next_event()? {
                Event::Start(tag) | Event::Empty(tag) => match tag.local_name().as_ref() {
                    b"plate" => plate = Some((BTreeMap::new(), Vec::new(), 0)),
                    b"metadata" => {
                        if let Some((metadata, _, _)) = &mut plate {
                            key_value(&tag, metadata).map_err(fail)?;
                        }
                    }
                    b"object" => {
                        if let Some((_, _, objects)) = &mut plate {
                            let skipped = attribute(&tag, b"skipped").map_err(fail)?;
                            if skipped.as_deref() != Some("true") {
                                *objects += 1;
                            }
                        }
                    }
                    b"filament" => {
                        let Some((_, filaments, _)) = &mut plate else { continue };
                        if filaments.len() == MAX_FILAMENTS {
                            return Err(fail(format!("a plate uses more than {MAX_FILAMENTS} filaments")));
                        }
                        let value = |name: &[u8]| attribute(&tag, name).map_err(fail);
                        filaments.push(PlateFilament {
                            slot: value(b"id")?.and_then(|id| id.trim().parse().ok()).unwrap_or(0),
                            material: value(b"type")?.as_deref().and_then(text),
                            colour: value(b"color")?.as_deref().and_then(text),
                            grams: value(b"used_g")?.as_deref().and_then(decimal),
                            // Metres, kept as millimetres like the G-code analysis.
                            length_mm: value(b"used_m")?
                                .as_deref()
                                .and_then(decimal)
                                .and_then(|metres| metres.0.checked_mul(1000).map(Quantity)),
                        });
                    }
                    _ => {}
                },
                Event::End(tag) if tag.local_name().as_ref() == b"plate" => {
                    let Some((metadata, filaments, objects)) = plate.take() else { continue };
                    let Some(index) = metadata.get("index").and_then(|id| id.trim().parse().ok()) else { continue };
                    let plate = self.plate(index).map_err(fail)?;
                    plate.print_seconds = metadata.get("prediction").and_then(|seconds| seconds.trim().parse().ok());
                    plate.filament_grams = metadata.get("weight").and_then(|grams| decimal(grams));
                    plate.nozzle_mm = metadata.get("nozzle_diameters").and_then(|mm| nozzle(mm));
                    plate.objects = plate.objects.max(objects);
                    plate.filaments = filaments;
                }
                Event::Eof => return Ok(()),
                _ => {}
            }
        }
    }
}

/// Bambu Studio's and OrcaSlicer's `Metadata/project_settings.config` (JSON). Fields of
/// another shape are left out rather than refused: the settings are a help, not the file.
pub fn project_settings(entry: &str, json: &[u8]) -> Result<PrintSettings, AnalysisError> {
    let settings: serde_json::Value = serde_json::from_slice(json).map_err(|error| AnalysisError::InPackage {
        entry: entry.to_string(),
        reason: format!("it is not JSON: {error}"),
    })?;
    let strings = |key: &str| -> Vec<String> {
        let values = settings.get(key).and_then(|value| value.as_array());
        values.into_iter().flatten().filter_map(|value| value.as_str().and_then(text)).take(MAX_FILAMENTS).collect()
    };
    let nozzle_mm = settings.get("nozzle_diameter").and_then(|value| match value {
        serde_json::Value::Array(values) => values.first().and_then(|first| first.as_str()).and_then(nozzle),
        serde_json::Value::String(text) => nozzle(text),
        _ => None,
    });
    Ok(PrintSettings {
        materials: strings("filament_type"),
        colours: strings("filament_colour"),
        nozzle_mm,
        printer_model: settings.get("printer_model").and_then(|value| value.as_str()).and_then(text),
    })
}

/// PrusaSlicer's `Metadata/Slic3r_PE.config`: its `; key = value` lines are its G-code's
/// config block, so the G-code analyzer reads them.
pub fn prusa_settings(config: &[u8]) -> Result<PrintSettings, AnalysisError> {
    let mut analyzer = GcodeAnalyzer::default();
    analyzer.feed(config)?;
    let analysis = analyzer.finish()?;
    Ok(PrintSettings {
        materials: analysis.material.into_iter().collect(),
        nozzle_mm: analysis.nozzle_mm,
        ..PrintSettings::default()
    })
}

/// `<metadata key="..." value="..."/>` into `into`.
fn key_value(tag: &quick_xml::events::BytesStart<'_>, into: &mut BTreeMap<String, String>) -> Result<(), String> {
    // Bounded like plates: config keys are a few dozen per plate.
    if into.len() >= 256 {
        return Ok(());
    }
    if let (Some(key), Some(value)) = (attribute(tag, b"key")?, attribute(tag, b"value")?) {
        into.insert(key, value);
    }
    Ok(())
}

/// Short text as given, cut to `MAX_TEXT` bytes on a character boundary; `None` when blank.
fn text(value: &str) -> Option<String> {
    let value = value.trim();
    let end = (0..=value.len().min(MAX_TEXT)).rev().find(|at| value.is_char_boundary(*at)).unwrap_or(0);
    (!value.is_empty()).then(|| value[..end].to_string())
}

/// The first of a list of nozzle diameters (`0.4`, `0.4,0.4`, `0.4 0.6`), in a plausible range.
fn nozzle(value: &str) -> Option<f64> {
    let first = value.split([',', ' ', ';']).find(|part| !part.trim().is_empty())?;
    first.trim().parse::<f64>().ok().filter(|mm| *mm > 0.0 && *mm <= 5.0)
}
