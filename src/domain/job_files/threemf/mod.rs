//! 3MF packages: the model's bounding box and triangle count over the build, the slicer that
//! wrote it, and the plates of Bambu Studio and OrcaSlicer projects with their estimates
//! when they were sliced (a "sliced" package carries each plate's G-code).
//!
//! A 3MF is a ZIP, and ZIP needs its central directory at the end, so this takes a reader
//! that seeks (the intake keeps the upload in a temporary file); the domain stays free of I/O
//! of its own. `package` guards what is unpacked (entry count, bytes per entry and in total,
//! the length of one XML tag), `model` reads the geometry, `plates` the slicers' configs.

mod model;
mod package;
mod plates;

use std::collections::{HashMap, VecDeque};
use std::io::{Read, Seek};

use quick_xml::events::Event;

use super::gcode::Slicer;
use super::stl::BoundingBox;
use super::AnalysisError;
use model::{Object, ObjectRef, Part, Transform};
use package::{Package, MAX_CONFIG_BYTES, MAX_MODEL_BYTES};
pub use plates::{Plate, PlateFilament, PrintSettings};

#[derive(Debug, Clone, PartialEq)]
pub struct ThreeMfAnalysis {
    /// The application the model says wrote it (`<metadata name="Application">`).
    pub application: Option<Application>,
    pub title: Option<String>,
    /// Around everything the build places, in millimetres; `None` for an empty build.
    pub bounding_box: Option<BoundingBox>,
    /// `false` when an object is rotated by other than quarter turns: the box is then the
    /// one around its rotated box, which may be larger than the object (never smaller).
    pub bounding_box_exact: bool,
    /// Over the build: an object placed twice counts twice.
    pub triangles: u64,
    pub build_items: u64,
    /// Bambu Studio and OrcaSlicer projects' plates, by index; empty for other slicers.
    pub plates: Vec<Plate>,
    /// The package carries G-code for at least one plate.
    pub sliced: bool,
    /// The project's print settings, when a slicer stored them.
    pub settings: Option<PrintSettings>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Application {
    /// As written, at most 256 bytes: `BambuStudio-02.01.01.52`.
    pub text: String,
    /// The slicer when it is one we know.
    pub slicer: Option<Slicer>,
    /// The part after the name: `02.01.01.52`.
    pub version: Option<String>,
}

impl Application {
    fn parse(text: String) -> Application {
        // `Name-1.2.3`: the version starts after the last `-` that a digit follows.
        let split =
            text.match_indices('-').rev().find(|(at, _)| text[at + 1..].starts_with(|c: char| c.is_ascii_digit()));
        let (name, version) = match split {
            Some((at, _)) => (&text[..at], Some(text[at + 1..].to_string())),
            None => (text.as_str(), None),
        };
        Application { slicer: Slicer::from_name(name.trim()), version, text: text.clone() }
    }
}

/// The relationship type of a 3MF's model part, in `_rels/.rels`.
const MODEL_RELATIONSHIP: &str = "http://schemas.microsoft.com/3dmanufacturing/2013/01/3dmodel";
/// Where nearly every producer puts the model, and where to look when `_rels/.rels` is absent.
const DEFAULT_MODEL: &str = "3D/3dmodel.model";
/// Model parts one package may have: Bambu Studio writes one per object.
const MAX_PARTS: usize = 10_000;
/// Meshes the build may place in all (objects × instances × components): the walk is bounded.
const MAX_PLACED: u64 = 1_000_000;
/// Components nest; a deeper chain is a cycle or a hostile file.
const MAX_NESTING: u32 = 32;

/// Analyses a 3MF package read from `reader`.
pub fn analyze<R: Read + Seek>(reader: R) -> Result<ThreeMfAnalysis, AnalysisError> {
    let mut package = Package::new(reader)?;
    let root = root_model(&mut package)?;
    let parts = read_parts(&mut package, &root)?;
    let geometry = Geometry::of_build(&parts, &root)?;
    let root_part = &parts[&root];

    let mut plates = plates::Plates::default();
    let gcode: Vec<String> = package.names().filter(|name| name.ends_with(".gcode")).map(str::to_string).collect();
    for name in &gcode {
        plates.gcode_entry(name).map_err(|reason| AnalysisError::InPackage { entry: name.clone(), reason })?;
    }
    package.read("Metadata/model_settings.config", MAX_CONFIG_BYTES, |entry| {
        plates.read_model_settings(&mut entry.xml())
    })?;
    package.read("Metadata/slice_info.config", MAX_CONFIG_BYTES, |entry| plates.read_slice_info(&mut entry.xml()))?;
    let plates = plates.into_vec();

    let bambu = package.read("Metadata/project_settings.config", MAX_CONFIG_BYTES, |entry| {
        let json = entry.read_all()?;
        plates::project_settings(entry.name(), &json)
    })?;
    let settings = match bambu {
        Some(settings) => Some(settings),
        None => package
            .read("Metadata/Slic3r_PE.config", MAX_CONFIG_BYTES, |entry| plates::prusa_settings(&entry.read_all()?))?,
    };

    Ok(ThreeMfAnalysis {
        application: root_part.application.clone().map(Application::parse),
        title: root_part.title.clone(),
        bounding_box: geometry.bounding_box.map(|b| BoundingBox {
            min: b.min.map(|v| v * root_part.unit_mm),
            max: b.max.map(|v| v * root_part.unit_mm),
        }),
        bounding_box_exact: geometry.exact,
        triangles: geometry.triangles,
        build_items: root_part.build.len() as u64,
        sliced: plates.iter().any(|plate| plate.gcode_entry.is_some()) || !gcode.is_empty(),
        plates,
        settings,
    })
}

/// The model part `_rels/.rels` names, else the usual one.
fn root_model<R: Read + Seek>(package: &mut Package<R>) -> Result<String, AnalysisError> {
    let named = package.read("_rels/.rels", MAX_CONFIG_BYTES, |entry| {
        let mut events = entry.xml();
        let entry = events.entry().to_string();
        loop {
            match events.next_event()? {
                Event::Start(tag) | Event::Empty(tag) if tag.local_name().as_ref() == b"Relationship" => {
                    let fail = |reason: String| AnalysisError::InPackage { entry: entry.clone(), reason };
                    let kind = model::attribute(&tag, b"Type").map_err(fail)?;
                    if kind.as_deref() == Some(MODEL_RELATIONSHIP) {
                        let target = model::attribute(&tag, b"Target").map_err(fail)?;
                        return Ok(target.map(|target| target.trim_start_matches('/').to_string()));
                    }
                }
                Event::Eof => return Ok(None),
                _ => {}
            }
        }
    })?;
    let name = named.flatten().unwrap_or_else(|| DEFAULT_MODEL.to_string());
    if !package.has(&name) {
        return Err(AnalysisError::MissingEntry(name));
    }
    Ok(name)
}

/// The root part and every part its objects refer to, each read once.
fn read_parts<R: Read + Seek>(package: &mut Package<R>, root: &str) -> Result<HashMap<String, Part>, AnalysisError> {
    let mut parts = HashMap::new();
    let mut queue = VecDeque::from([root.to_string()]);
    while let Some(name) = queue.pop_front() {
        if parts.contains_key(&name) {
            continue;
        }
        if parts.len() == MAX_PARTS {
            return Err(AnalysisError::InPackage {
                entry: name,
                reason: format!("the model has more than {MAX_PARTS} parts"),
            });
        }
        let part = package
            .read(&name, MAX_MODEL_BYTES, |entry| model::read_part(&mut entry.xml()))?
            .ok_or_else(|| AnalysisError::MissingEntry(name.clone()))?;
        let referenced = part.objects.values().filter_map(|object| match object {
            Object::Components(components) => Some(components.iter().map(|(reference, _)| reference)),
            Object::Mesh(_) => None,
        });
        let items = part.build.iter().map(|(reference, _)| reference);
        for reference in referenced.flatten().chain(items) {
            if let Some(other) = &reference.part {
                if !parts.contains_key(other) && !queue.contains(other) {
                    queue.push_back(other.clone());
                }
            }
        }
        parts.insert(name, part);
    }
    Ok(parts)
}

/// The build's geometry, in model units.
struct Geometry {
    bounding_box: Option<BoundingBox>,
    exact: bool,
    triangles: u64,
    placed: u64,
}

impl Geometry {
    fn of_build(parts: &HashMap<String, Part>, root: &str) -> Result<Geometry, AnalysisError> {
        let mut geometry = Geometry { bounding_box: None, exact: true, triangles: 0, placed: 0 };
        for (reference, transform) in &parts[root].build {
            geometry.place(parts, root, reference, transform, 0)?;
        }
        Ok(geometry)
    }

    fn place(
        &mut self,
        parts: &HashMap<String, Part>,
        from: &str,
        reference: &ObjectRef,
        transform: &Transform,
        depth: u32,
    ) -> Result<(), AnalysisError> {
        let fail = |reason: String| AnalysisError::InPackage { entry: from.to_string(), reason };
        if depth > MAX_NESTING {
            return Err(fail(format!("components nest deeper than {MAX_NESTING}, or refer to themselves")));
        }
        let part_name = reference.part.as_deref().unwrap_or(from);
        let object = parts
            .get(part_name)
            .and_then(|part| part.objects.get(&reference.id))
            .ok_or_else(|| fail(format!("object {} of {part_name} does not exist", reference.id)))?;
        match object {
            Object::Mesh(mesh) => {
                self.placed += 1;
                if self.placed > MAX_PLACED {
                    return Err(fail(format!("the build places more than {MAX_PLACED} meshes")));
                }
                self.triangles = self.triangles.saturating_add(mesh.triangles);
                if let Some(local) = &mesh.bounding_box {
                    let (placed, exact) = transform.around(local);
                    self.exact &= exact;
                    model::extend(&mut self.bounding_box, placed.min);
                    model::extend(&mut self.bounding_box, placed.max);
                }
            }
            Object::Components(components) => {
                for (component, own) in components {
                    self.place(parts, part_name, component, &own.then(transform), depth + 1)?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
