//! What makrcave keeps of a file's analysis, whatever its kind: one flat shape that the
//! router (room on the bed, material, nozzle), the quotes (volume, grams, time, cut length)
//! and the API read. Fields a kind does not have are absent.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::svg::SvgAnalysis;
use super::threemf::ThreeMfAnalysis;
use super::{FileKind, GcodeAnalysis, Slicer, StlAnalysis};
use crate::domain::inventory::Quantity;

/// The file kinds as the API names them.
pub fn kind_name(kind: FileKind) -> &'static str {
    match kind {
        FileKind::Gcode => "gcode",
        FileKind::StlBinary => "stl_binary",
        FileKind::StlAscii => "stl_ascii",
        FileKind::ThreeMf => "3mf",
        FileKind::Svg => "svg",
    }
}

pub fn kind_from_name(name: &str) -> Option<FileKind> {
    [FileKind::Gcode, FileKind::StlBinary, FileKind::StlAscii, FileKind::ThreeMf, FileKind::Svg]
        .into_iter()
        .find(|kind| kind_name(*kind) == name)
}

/// A job file's analysis.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, ToSchema)]
pub struct FileFacts {
    /// `gcode`, `stl_binary`, `stl_ascii`, `3mf` or `svg`.
    pub kind: String,
    /// Triangles of a mesh (STL, 3MF).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub triangles: Option<u64>,
    /// Width, depth and height of the part's bounding box in millimetres.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_mm: Option<[f64; 3]>,
    /// The mesh's enclosed volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_cm3: Option<f64>,
    /// The slicer that made it (`PrusaSlicer`, `OrcaSlicer`, `BambuStudio`, `Cura`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slicer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slicer_version: Option<String>,
    /// The slicer's estimate of the whole job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub print_seconds: Option<u64>,
    /// Grams of filament the slicer counted, to the milligram.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<f64>)]
    pub filament_grams: Option<Quantity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<f64>)]
    pub filament_mm: Option<Quantity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub material: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nozzle_mm: Option<f64>,
    /// A drawing's page (SVG).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_mm: Option<[f64; 2]>,
    /// The length of every path to cut or engrave (SVG).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cut_length_mm: Option<f64>,
    /// What else the kind tells (a 3MF's plates), as its analysis found it.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub detail: serde_json::Value,
}

fn slicer_name(slicer: Slicer) -> &'static str {
    match slicer {
        Slicer::PrusaSlicer => "PrusaSlicer",
        Slicer::SuperSlicer => "SuperSlicer",
        Slicer::OrcaSlicer => "OrcaSlicer",
        Slicer::BambuStudio => "BambuStudio",
        Slicer::Cura => "Cura",
    }
}

impl FileFacts {
    pub fn of_stl(kind: FileKind, stl: &StlAnalysis) -> FileFacts {
        FileFacts {
            kind: kind_name(kind).into(),
            triangles: Some(stl.triangles),
            size_mm: stl.bounding_box.map(|b| b.size()),
            volume_cm3: Some(stl.volume_cm3()),
            ..Default::default()
        }
    }

    pub fn of_gcode(gcode: &GcodeAnalysis) -> FileFacts {
        FileFacts {
            kind: kind_name(FileKind::Gcode).into(),
            slicer: gcode.slicer.map(|s| slicer_name(s).to_string()),
            slicer_version: gcode.slicer_version.clone(),
            print_seconds: gcode.print_seconds,
            filament_grams: gcode.filament_grams,
            filament_mm: gcode.filament_mm,
            material: gcode.material.clone(),
            nozzle_mm: gcode.nozzle_mm,
            ..Default::default()
        }
    }

    pub fn of_svg(svg: &SvgAnalysis) -> FileFacts {
        let e = &svg.elements;
        FileFacts {
            kind: kind_name(FileKind::Svg).into(),
            page_mm: svg.width_mm.zip(svg.height_mm).map(|(w, h)| [w, h]),
            cut_length_mm: Some(svg.cut_length_mm),
            detail: serde_json::json!({
                "elements": {
                    "paths": e.paths, "rects": e.rects, "circles": e.circles, "ellipses": e.ellipses,
                    "lines": e.lines, "polylines": e.polylines, "polygons": e.polygons, "groups": e.groups,
                    "texts": e.texts, "images": e.images, "uses": e.uses,
                },
                // Whether the length counts every shape (`<use>`, text and CSS transforms are
                // not measured).
                "measured_everything": svg.measured_everything(),
            }),
            ..Default::default()
        }
    }

    /// A 3MF: its geometry, its slicer, and its plates. The job's time, grams, material and
    /// nozzle are its first plate's (a printer makes one plate at a time).
    pub fn of_3mf(package: &ThreeMfAnalysis) -> FileFacts {
        let first = package.plates.first();
        let first_material = first
            .and_then(|p| p.filaments.iter().find_map(|f| f.material.clone()))
            .or_else(|| package.settings.as_ref().and_then(|s| s.materials.first().cloned()));
        let plates: Vec<serde_json::Value> = package
            .plates
            .iter()
            .map(|p| {
                serde_json::json!({
                    "index": p.index,
                    "name": p.name,
                    "sliced": p.gcode_entry.is_some(),
                    "objects": p.objects,
                    "print_seconds": p.print_seconds,
                    "filament_grams": p.filament_grams,
                    "nozzle_mm": p.nozzle_mm,
                    "filaments": p.filaments.iter().map(|f| serde_json::json!({
                        "slot": f.slot, "material": f.material, "color": f.colour, "grams": f.grams,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        FileFacts {
            kind: kind_name(FileKind::ThreeMf).into(),
            triangles: Some(package.triangles),
            size_mm: package.bounding_box.map(|b| b.size()),
            slicer: package.application.as_ref().and_then(|a| a.slicer).map(|s| slicer_name(s).to_string()),
            slicer_version: package.application.as_ref().and_then(|a| a.version.clone()),
            print_seconds: first.and_then(|p| p.print_seconds),
            filament_grams: first.and_then(|p| p.filament_grams),
            material: first_material,
            nozzle_mm: first.and_then(|p| p.nozzle_mm).or_else(|| package.settings.as_ref().and_then(|s| s.nozzle_mm)),
            detail: serde_json::json!({
                "sliced": package.sliced,
                "plates": plates,
                "build_items": package.build_items,
                "bounding_box_exact": package.bounding_box_exact,
                "printer_model": package.settings.as_ref().and_then(|s| s.printer_model.clone()),
            }),
            ..Default::default()
        }
    }

    /// Whether the file says how it is to be made (G-code, a sliced 3MF): its grams and time
    /// are the slicer's, not an estimate.
    pub fn is_sliced(&self) -> bool {
        self.print_seconds.is_some() || self.filament_grams.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for kind in [FileKind::Gcode, FileKind::StlBinary, FileKind::StlAscii, FileKind::ThreeMf, FileKind::Svg] {
            assert_eq!(kind_from_name(kind_name(kind)), Some(kind));
        }
        assert_eq!(kind_from_name("pdf"), None);
    }
}
