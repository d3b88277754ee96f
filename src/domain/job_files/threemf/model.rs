//! The 3D model of a 3MF (3MF core specification, with the production extension's `p:path`
//! references that Bambu Studio and OrcaSlicer use to keep each object in its own part):
//! objects are meshes or components of other objects, and the build places objects with
//! transforms. Each model part is streamed once; a mesh is summarised (its box in its own
//! coordinates, its counts) and never held.

use std::collections::HashMap;

use quick_xml::events::{BytesStart, Event};

use super::super::stl::BoundingBox;
use super::super::AnalysisError;
use super::package::Events;

/// A 3MF transform: twelve numbers `m00 m01 m02 m10 m11 m12 m20 m21 m22 m30 m31 m32`, applied
/// to row vectors: `x' = x·m00 + y·m10 + z·m20 + m30`, and so on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Transform {
    pub m: [f64; 12],
}

impl Transform {
    pub const IDENTITY: Transform = Transform { m: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0] };

    pub fn parse(text: &str) -> Result<Transform, String> {
        let mut m = [0.0; 12];
        let mut count = 0;
        for word in text.split_ascii_whitespace() {
            let slot = m.get_mut(count).ok_or("a transform has more than twelve numbers")?;
            *slot = number(word)?;
            count += 1;
        }
        if count != 12 {
            return Err("a transform needs twelve numbers".into());
        }
        Ok(Transform { m })
    }

    pub fn apply(&self, [x, y, z]: [f64; 3]) -> [f64; 3] {
        let m = &self.m;
        [
            x * m[0] + y * m[3] + z * m[6] + m[9],
            x * m[1] + y * m[4] + z * m[7] + m[10],
            x * m[2] + y * m[5] + z * m[8] + m[11],
        ]
    }

    /// `self`, then `outer`: a component's transform, then its parent's.
    pub fn then(&self, outer: &Transform) -> Transform {
        let (a, b) = (&self.m, &outer.m);
        let mut m = [0.0; 12];
        for row in 0..4 {
            for column in 0..3 {
                let linear = (0..3).map(|k| a[row * 3 + k] * b[k * 3 + column]).sum::<f64>();
                // The translation row also picks up the outer translation.
                m[row * 3 + column] = linear + if row == 3 { b[9 + column] } else { 0.0 };
            }
        }
        Transform { m }
    }

    /// The box around a box's eight corners once transformed: exact when every axis maps to
    /// one axis (moves, scales, mirrors, quarter turns), larger than the mesh's own box
    /// otherwise (a rotated box's corners stick out further than the mesh may).
    pub fn around(&self, local: &BoundingBox) -> (BoundingBox, bool) {
        let mut result: Option<BoundingBox> = None;
        for corner in 0..8 {
            let pick = |axis: usize| if corner >> axis & 1 == 0 { local.min[axis] } else { local.max[axis] };
            let point = self.apply([pick(0), pick(1), pick(2)]);
            extend(&mut result, point);
        }
        let exact = (0..3).all(|column| (0..3).filter(|row| self.m[row * 3 + column] != 0.0).count() <= 1);
        (result.unwrap_or(*local), exact)
    }
}

pub fn extend(bounding_box: &mut Option<BoundingBox>, point: [f64; 3]) {
    match bounding_box {
        Some(bounding_box) => {
            for (axis, value) in point.into_iter().enumerate() {
                bounding_box.min[axis] = bounding_box.min[axis].min(value);
                bounding_box.max[axis] = bounding_box.max[axis].max(value);
            }
        }
        None => *bounding_box = Some(BoundingBox { min: point, max: point }),
    }
}

/// A finite decimal as 3MF writes them.
fn number(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(value) if value.is_finite() => Ok(value),
        _ => Err(format!("`{}` is not a number", short(text))),
    }
}

fn short(text: &str) -> &str {
    let end = text.char_indices().nth(24).map_or(text.len(), |(at, _)| at);
    &text[..end]
}

/// Where an object lives: a model part (`None` for the one being read) and its id there.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectRef {
    /// The part's entry name (without the leading `/` of a `p:path`).
    pub part: Option<String>,
    pub id: u64,
}

#[derive(Debug, Clone)]
pub enum Object {
    Mesh(Mesh),
    Components(Vec<(ObjectRef, Transform)>),
}

#[derive(Debug, Clone, Default)]
pub struct Mesh {
    /// In the object's own coordinates; `None` for a mesh without vertices.
    pub bounding_box: Option<BoundingBox>,
    pub vertices: u64,
    pub triangles: u64,
}

/// What one model part holds.
#[derive(Debug, Default)]
pub struct Part {
    pub objects: HashMap<u64, Object>,
    /// Only the root part has a build.
    pub build: Vec<(ObjectRef, Transform)>,
    /// Millimetres per model unit.
    pub unit_mm: f64,
    /// `<metadata name="...">text</metadata>` of the model, the few kept.
    pub application: Option<String>,
    pub title: Option<String>,
}

/// Objects and build items a part may hold: far beyond real projects, and what keeps the
/// summaries of a hostile file small.
pub const MAX_OBJECTS: usize = 100_000;

/// Text metadata longer than this is not a name or a version.
const MAX_METADATA: usize = 256;

/// Reads one model part.
pub fn read_part(events: &mut Events<'_, '_>) -> Result<Part, AnalysisError> {
    let mut reader = PartReader { part: Part { unit_mm: 1.0, ..Part::default() }, ..PartReader::default() };
    let entry = events.entry().to_string();
    let fail = |reason: String| AnalysisError::InPackage { entry: entry.clone(), reason };
    loop {
        match events.next_event()? {
            Event::Start(tag) => reader.start(&tag).map_err(fail)?,
            Event::Empty(tag) => {
                reader.start(&tag).map_err(fail)?;
                reader.end(tag.local_name().as_ref()).map_err(fail)?;
            }
            Event::End(tag) => reader.end(tag.local_name().as_ref()).map_err(fail)?,
            Event::Text(text) => {
                let text = text.xml10_content().map_err(|error| fail(format!("metadata is not text: {error}")))?;
                reader.metadata_text(&text);
            }
            // `&amp;` and `&#38;` in a title come as references of their own.
            Event::GeneralRef(reference) => {
                let character = reference.resolve_char_ref().ok().flatten();
                let name = reference.decode().map_err(|error| fail(format!("metadata is not text: {error}")))?;
                let mut utf8 = [0u8; 4];
                let text = match character {
                    Some(character) => Some(&*character.encode_utf8(&mut utf8)),
                    None => quick_xml::escape::resolve_predefined_entity(&name),
                };
                reader.metadata_text(text.unwrap_or(""));
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !reader.model_seen {
        return Err(fail("it holds no <model>".into()));
    }
    Ok(reader.part)
}

#[derive(Default)]
struct PartReader {
    part: Part,
    /// The object being read: its id, and its mesh or components once they start.
    object: Option<(u64, Option<Object>)>,
    /// A `<metadata>` being read: its name and text so far.
    metadata: Option<(String, String)>,
    in_build: bool,
    model_seen: bool,
}

impl PartReader {
    fn metadata_text(&mut self, text: &str) {
        if let Some((_, value)) = &mut self.metadata {
            if value.len() + text.len() <= MAX_METADATA {
                value.push_str(text);
            }
        }
    }

    fn start(&mut self, tag: &BytesStart<'_>) -> Result<(), String> {
        match tag.local_name().as_ref() {
            b"model" => {
                self.model_seen = true;
                if let Some(unit) = attribute(tag, b"unit")? {
                    self.part.unit_mm =
                        unit_mm(&unit).ok_or_else(|| format!("unknown model unit `{}`", short(&unit)))?;
                }
            }
            b"metadata" if self.object.is_none() => {
                self.metadata = attribute(tag, b"name")?.map(|name| (name, String::new()));
            }
            b"object" => self.object = Some((id_attribute(tag, b"id")?, None)),
            b"mesh" => {
                if let Some((_, body)) = &mut self.object {
                    *body = Some(Object::Mesh(Mesh::default()));
                }
            }
            b"vertex" => {
                let Some((_, Some(Object::Mesh(mesh)))) = &mut self.object else { return Ok(()) };
                let coordinate = |name: &[u8]| -> Result<f64, String> {
                    number(&attribute(tag, name)?.ok_or("a vertex lacks a coordinate")?)
                };
                extend(&mut mesh.bounding_box, [coordinate(b"x")?, coordinate(b"y")?, coordinate(b"z")?]);
                mesh.vertices += 1;
            }
            b"triangle" => {
                let Some((_, Some(Object::Mesh(mesh)))) = &mut self.object else { return Ok(()) };
                for corner in [b"v1".as_slice(), b"v2", b"v3"] {
                    if id_attribute(tag, corner)? >= mesh.vertices {
                        return Err("a triangle refers to a vertex that does not exist".into());
                    }
                }
                mesh.triangles += 1;
            }
            b"component" => {
                let Some((_, body)) = &mut self.object else { return Ok(()) };
                let component = (reference(tag)?, transform_attribute(tag)?);
                match body.get_or_insert_with(|| Object::Components(Vec::new())) {
                    Object::Components(components) if components.len() < MAX_OBJECTS => components.push(component),
                    Object::Components(_) => return Err(format!("an object has more than {MAX_OBJECTS} components")),
                    Object::Mesh(_) => return Err("an object is both a mesh and components".into()),
                }
            }
            b"build" => self.in_build = true,
            b"item" if self.in_build => {
                if self.part.build.len() == MAX_OBJECTS {
                    return Err(format!("the build has more than {MAX_OBJECTS} items"));
                }
                self.part.build.push((reference(tag)?, transform_attribute(tag)?));
            }
            _ => {}
        }
        Ok(())
    }

    fn end(&mut self, name: &[u8]) -> Result<(), String> {
        match name {
            b"metadata" => {
                if let Some((name, value)) = self.metadata.take() {
                    let value = value.trim().to_string();
                    match name.as_str() {
                        "Application" if !value.is_empty() => self.part.application = Some(value),
                        "Title" if !value.is_empty() => self.part.title = Some(value),
                        _ => {}
                    }
                }
            }
            b"object" => {
                if let Some((id, body)) = self.object.take() {
                    if self.part.objects.len() == MAX_OBJECTS {
                        return Err(format!("the model has more than {MAX_OBJECTS} objects"));
                    }
                    // An object with neither mesh nor components draws nothing: an empty mesh.
                    if self.part.objects.insert(id, body.unwrap_or(Object::Mesh(Mesh::default()))).is_some() {
                        return Err(format!("two objects have the id {id}"));
                    }
                }
            }
            b"build" => self.in_build = false,
            _ => {}
        }
        Ok(())
    }
}

/// An attribute's unescaped value by local name; a prefixed `p:path` is found as `path`.
pub fn attribute(tag: &BytesStart<'_>, name: &[u8]) -> Result<Option<String>, String> {
    for attribute in tag.attributes() {
        let attribute = attribute.map_err(|error| format!("malformed attribute: {error}"))?;
        if attribute.key.local_name().as_ref() == name {
            let value = attribute
                .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .map_err(|error| format!("malformed attribute value: {error}"))?;
            return Ok(Some(value.into_owned()));
        }
    }
    Ok(None)
}

/// A non-negative integer attribute (ids, vertex indices); required.
fn id_attribute(tag: &BytesStart<'_>, name: &[u8]) -> Result<u64, String> {
    let text = attribute(tag, name)?.ok_or_else(|| {
        format!(
            "a <{}> lacks its {}",
            String::from_utf8_lossy(tag.local_name().as_ref()),
            String::from_utf8_lossy(name)
        )
    })?;
    text.trim().parse().map_err(|_| format!("`{}` is not an id", short(&text)))
}

/// An `objectid` with the production extension's optional `p:path` to another part.
fn reference(tag: &BytesStart<'_>) -> Result<ObjectRef, String> {
    let id = id_attribute(tag, b"objectid")?;
    let part = attribute(tag, b"path")?.map(|path| path.trim_start_matches('/').to_string());
    Ok(ObjectRef { part, id })
}

fn transform_attribute(tag: &BytesStart<'_>) -> Result<Transform, String> {
    attribute(tag, b"transform")?.map_or(Ok(Transform::IDENTITY), |text| Transform::parse(&text))
}

fn unit_mm(unit: &str) -> Option<f64> {
    Some(match unit {
        "micron" => 0.001,
        "millimeter" => 1.0,
        "centimeter" => 10.0,
        "inch" => 25.4,
        "foot" => 304.8,
        "meter" => 1000.0,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transforms_compose_and_bound() {
        let moved = Transform::parse("1 0 0 0 1 0 0 0 1 10 20 30").unwrap();
        let doubled = Transform::parse("2 0 0 0 2 0 0 0 2 0 0 0").unwrap();
        // Move, then double: (1,1,1) -> (11,21,31) -> (22,42,62).
        assert_eq!(moved.then(&doubled).apply([1.0, 1.0, 1.0]), [22.0, 42.0, 62.0]);
        assert_eq!(doubled.then(&moved).apply([1.0, 1.0, 1.0]), [12.0, 22.0, 32.0]);
        let unit = BoundingBox { min: [0.0; 3], max: [1.0; 3] };
        let (moved_box, exact) = moved.around(&unit);
        assert!(exact);
        assert_eq!(moved_box, BoundingBox { min: [10.0, 20.0, 30.0], max: [11.0, 21.0, 31.0] });
        // A quarter turn about z is still exact; 45° is not.
        let quarter = Transform::parse("0 1 0 -1 0 0 0 0 1 0 0 0").unwrap();
        let (turned, exact) = quarter.around(&unit);
        assert!(exact);
        assert_eq!(turned, BoundingBox { min: [-1.0, 0.0, 0.0], max: [0.0, 1.0, 1.0] });
        let h = std::f64::consts::FRAC_1_SQRT_2;
        let eighth = Transform::parse(&format!("{h} {h} 0 -{h} {h} 0 0 0 1 0 0 0")).unwrap();
        assert!(!eighth.around(&unit).1);
        for bad in ["1 0 0", "1 0 0 0 1 0 0 0 1 0 0 0 0", "1 0 0 0 1 0 0 0 1 0 0 x", "1 0 0 0 1 0 0 0 1 0 0 inf"] {
            assert!(Transform::parse(bad).is_err(), "{bad}");
        }
    }
}
