//! SVG files for laser cutters, streamed: the page size and the total length of everything
//! drawn (what a laser cuts or scores), with elements counted. Fed chunk by chunk like the
//! STL and G-code analyzers; what is held does not grow with the file (see `xml` and
//! `path_data`: attribute values are parsed while they stream, short ones are capped at
//! `MAX_VALUE` bytes).
//!
//! Lengths are in millimetres on the page: the root's `width`/`height` (mm, cm, in, pt, pc,
//! px at 96 dpi; unitless is px) and `viewBox` give the scale from user units, and every
//! `transform` (translate, scale, rotate, skewX, skewY, matrix) on groups, nested `<svg>`
//! viewports and shapes is applied. What is not drawn is not measured: `<defs>`, `<symbol>`,
//! `<clipPath>`, `<mask>`, `<pattern>`, `<marker>` and elements of other namespaces
//! (Inkscape's, Illustrator's). What this analysis does not draw is reported rather than
//! guessed: `<use>` references (counted in `elements.uses`), text (`elements.texts`), shapes
//! sized in font units or in percent without a viewport (`unmeasured_shapes`), and a CSS
//! `transform` inside a `style` attribute (`unapplied_transforms`).

mod geometry;
mod path_data;
mod pen;
mod units;
mod xml;

use super::AnalysisError;
use geometry::{Matrix, Point};
use path_data::{PathData, Source};
use pen::Pen;
use units::{AspectRatio, Length, Viewport};
use xml::{Handler, Piece, Tokenizer};

/// Short attributes (sizes, coordinates, a viewBox, a transform list) are held whole until
/// they end; no real one comes near this, and a longer one is refused rather than held.
const MAX_VALUE: usize = 4096;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ElementCounts {
    pub paths: u64,
    pub rects: u64,
    pub circles: u64,
    pub ellipses: u64,
    pub lines: u64,
    pub polylines: u64,
    pub polygons: u64,
    pub groups: u64,
    pub texts: u64,
    pub images: u64,
    pub uses: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SvgAnalysis {
    /// The page, when the file gives it: `width`/`height`, or the `viewBox` at 96 dpi.
    pub width_mm: Option<f64>,
    pub height_mm: Option<f64>,
    /// Everything drawn (paths and basic shapes, outlines only), every transform applied.
    pub cut_length_mm: f64,
    /// Only elements that are drawn are counted (not those in `<defs>` and the like).
    pub elements: ElementCounts,
    /// Shapes whose size the file alone does not settle (font units, percentages without a
    /// viewport): not in `cut_length_mm`.
    pub unmeasured_shapes: u64,
    /// A CSS `transform` in a `style` attribute was seen; the lengths do not include it.
    pub unapplied_transforms: bool,
}

impl SvgAnalysis {
    /// Whether `cut_length_mm` covers everything drawn: no references left unexpanded, no
    /// shape unmeasured, no transform unapplied. Text is engraved, not cut, so it is not asked.
    pub fn measured_everything(&self) -> bool {
        self.elements.uses == 0 && self.unmeasured_shapes == 0 && !self.unapplied_transforms
    }
}

/// Analyses an SVG fed in chunks of any size.
pub struct SvgAnalyzer {
    tokenizer: Tokenizer,
    drawing: Drawing,
}

impl Default for SvgAnalyzer {
    fn default() -> Self {
        SvgAnalyzer::new()
    }
}

impl SvgAnalyzer {
    pub fn new() -> SvgAnalyzer {
        SvgAnalyzer { tokenizer: Tokenizer::new(), drawing: Drawing::default() }
    }

    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), AnalysisError> {
        self.tokenizer.feed(chunk, &mut self.drawing)
    }

    pub fn finish(self) -> Result<SvgAnalysis, AnalysisError> {
        self.tokenizer.finish()?;
        Ok(self.drawing.analysis)
    }
}

/// What the elements of the document mean for the drawing.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Svg,
    Group,
    Path,
    Rect,
    Circle,
    Ellipse,
    Line,
    Polyline,
    Polygon,
    Text,
    Image,
    Use,
    /// Not drawn, and neither is anything inside it.
    Hidden,
}

impl Kind {
    fn of(name: &[u8]) -> Kind {
        // Elements of other namespaces (`inkscape:`, `sodipodi:`) are not drawn; an explicit
        // `svg:` prefix is SVG.
        let local = match name.iter().position(|&b| b == b':') {
            Some(at) if &name[..at] == b"svg" => &name[at + 1..],
            Some(_) => return Kind::Hidden,
            None => name,
        };
        match local {
            b"svg" => Kind::Svg,
            b"g" | b"a" | b"switch" => Kind::Group,
            b"path" => Kind::Path,
            b"rect" => Kind::Rect,
            b"circle" => Kind::Circle,
            b"ellipse" => Kind::Ellipse,
            b"line" => Kind::Line,
            b"polyline" => Kind::Polyline,
            b"polygon" => Kind::Polygon,
            b"text" => Kind::Text,
            b"image" => Kind::Image,
            b"use" => Kind::Use,
            _ => Kind::Hidden,
        }
    }
}

/// The short attributes read, by index into `Tag::values`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Attr {
    Width,
    Height,
    ViewBox,
    PreserveAspectRatio,
    X,
    Y,
    Rx,
    Ry,
    Cx,
    Cy,
    R,
    X1,
    Y1,
    X2,
    Y2,
    Transform,
}

const ATTRIBUTES: usize = 16;

impl Attr {
    fn of(name: &[u8]) -> Option<Attr> {
        Some(match name {
            b"width" => Attr::Width,
            b"height" => Attr::Height,
            b"viewBox" => Attr::ViewBox,
            b"preserveAspectRatio" => Attr::PreserveAspectRatio,
            b"x" => Attr::X,
            b"y" => Attr::Y,
            b"rx" => Attr::Rx,
            b"ry" => Attr::Ry,
            b"cx" => Attr::Cx,
            b"cy" => Attr::Cy,
            b"r" => Attr::R,
            b"x1" => Attr::X1,
            b"y1" => Attr::Y1,
            b"x2" => Attr::X2,
            b"y2" => Attr::Y2,
            b"transform" => Attr::Transform,
            _ => return None,
        })
    }
}

/// Which way a percentage is taken: of the viewport's width, height, or its diagonal
/// normalised (`sqrt((w² + h²) / 2)`, for radii).
#[derive(Clone, Copy)]
enum Axis {
    X,
    Y,
    Diagonal,
}

/// An open element's coordinate system, for its children.
#[derive(Clone, Copy)]
struct Frame {
    /// From this element's user units to millimetres on the page.
    to_mm: Matrix,
    drawn: bool,
    /// The nearest viewport's size in user units, for percentages.
    viewport: Option<[f64; 2]>,
}

/// A start tag being read.
struct Tag {
    kind: Kind,
    values: [Option<String>; ATTRIBUTES],
    own_transform: Option<Matrix>,
    geometry: Option<Geometry>,
}

/// A path's `d` or a poly shape's `points`, measured while it streams.
struct Geometry {
    /// `None` once the attribute ended.
    data: Option<PathData>,
    pen: Pen,
    /// The pen was made before the shape's own transform was read.
    before_own_transform: bool,
}

/// Where the current attribute's value goes.
#[derive(Default)]
enum Target {
    #[default]
    Ignore,
    Short {
        attr: Attr,
        text: Vec<u8>,
        /// The value uses an entity only a doctype defines.
        unknown_entity: bool,
    },
    Geometry,
    /// A `style` attribute, searched for a CSS `transform` as it streams: how much of the
    /// word has been matched.
    Style {
        matched: usize,
    },
}

#[derive(Default)]
struct Drawing {
    frames: Vec<Frame>,
    /// `None` while reading an element that is not drawn.
    tag: Option<Tag>,
    target: Target,
    analysis: SvgAnalysis,
}

impl Drawing {
    fn parent(&self) -> Frame {
        // Above the root: millimetres are what the root's viewport makes of its user units.
        self.frames.last().copied().unwrap_or(Frame { to_mm: Matrix::IDENTITY, drawn: true, viewport: None })
    }

    fn count(&mut self, kind: Kind) {
        let counts = &mut self.analysis.elements;
        let counter = match kind {
            Kind::Path => &mut counts.paths,
            Kind::Rect => &mut counts.rects,
            Kind::Circle => &mut counts.circles,
            Kind::Ellipse => &mut counts.ellipses,
            Kind::Line => &mut counts.lines,
            Kind::Polyline => &mut counts.polylines,
            Kind::Polygon => &mut counts.polygons,
            Kind::Group => &mut counts.groups,
            Kind::Text => &mut counts.texts,
            Kind::Image => &mut counts.images,
            Kind::Use => &mut counts.uses,
            Kind::Svg | Kind::Hidden => return,
        };
        *counter += 1;
    }

    fn start_geometry(&mut self, source: Source) -> Result<Target, &'static str> {
        let parent = self.parent().to_mm;
        let Some(tag) = &mut self.tag else { return Ok(Target::Ignore) };
        if tag.geometry.is_some() {
            return Err("an attribute is given twice");
        }
        let (pen, before_own_transform) = match &tag.own_transform {
            Some(own) => (Pen::exact(parent.then(own)), false),
            None => (Pen::before_own_transform(parent), true),
        };
        tag.geometry = Some(Geometry { data: Some(PathData::new(source)), pen, before_own_transform });
        Ok(Target::Geometry)
    }

    /// The frame a drawn element makes for its children, and what it draws itself.
    fn close_start_tag(&mut self, tag: Tag) -> Result<Frame, &'static str> {
        let parent = self.parent();
        let own = tag.own_transform.unwrap_or(Matrix::IDENTITY);
        let to_mm = parent.to_mm.then(&own);
        let frame = Frame { to_mm, drawn: true, viewport: parent.viewport };
        let drawn = match tag.kind {
            Kind::Svg if self.frames.is_empty() => return self.root(&tag),
            Kind::Svg => return nested_viewport(&tag, frame),
            Kind::Path | Kind::Polyline | Kind::Polygon => tag.geometry.map(|geometry| {
                let late_own = if geometry.before_own_transform { tag.own_transform } else { None };
                (geometry.pen, late_own)
            }),
            Kind::Rect | Kind::Circle | Kind::Ellipse | Kind::Line => {
                let mut pen = Pen::exact(to_mm);
                match basic_shape(&tag, parent.viewport, &mut pen)? {
                    Drawn::Yes => Some((pen, None)),
                    Drawn::Unmeasured => {
                        self.analysis.unmeasured_shapes += 1;
                        None
                    }
                }
            }
            Kind::Group | Kind::Text | Kind::Image | Kind::Use | Kind::Hidden => None,
        };
        if let Some((pen, late_own)) = drawn {
            self.analysis.cut_length_mm += pen.finish(late_own.as_ref()).ok_or("a shape's size is out of range")?;
            if !self.analysis.cut_length_mm.is_finite() {
                return Err("the drawing's length is out of range");
            }
        }
        Ok(frame)
    }

    fn root(&mut self, tag: &Tag) -> Result<Frame, &'static str> {
        let length = |attr| tag.value(attr).map(Length::parse).transpose();
        let view_box = tag.value(Attr::ViewBox).map(units::view_box).transpose()?.flatten();
        let aspect = tag.value(Attr::PreserveAspectRatio).map(AspectRatio::parse).unwrap_or_default();
        let viewport = Viewport::root(length(Attr::Width)?, length(Attr::Height)?, view_box, aspect);
        self.analysis.width_mm = viewport.width_mm;
        self.analysis.height_mm = viewport.height_mm;
        // A transform on the root (SVG 2) acts in page pixels, outside the viewBox.
        let to_mm = match &tag.own_transform {
            Some(own) => {
                let px = Matrix::scale(units::MM_PER_PX, units::MM_PER_PX);
                let inside = Matrix::scale(viewport.to_mm.a / units::MM_PER_PX, viewport.to_mm.d / units::MM_PER_PX);
                px.then(own).then(&inside)
            }
            None => viewport.to_mm,
        };
        Ok(Frame { to_mm, drawn: true, viewport: viewport.user_size })
    }
}

impl Tag {
    fn value(&self, attr: Attr) -> Option<&str> {
        self.values[attr as usize].as_deref()
    }

    /// A coordinate or size in user units: `Ok(None)` when the file alone does not settle it.
    fn user_length(
        &self,
        attr: Attr,
        axis: Axis,
        viewport: Option<[f64; 2]>,
        default: f64,
    ) -> Result<Option<f64>, &'static str> {
        let Some(text) = self.value(attr) else { return Ok(Some(default)) };
        Ok(match Length::parse(text)? {
            Length::Px(px) => Some(px),
            Length::Percent(percent) => viewport.map(|[w, h]| {
                let base = match axis {
                    Axis::X => w,
                    Axis::Y => h,
                    Axis::Diagonal => ((w * w + h * h) / 2.0).sqrt(),
                };
                base * percent / 100.0
            }),
            Length::Unknown => None,
        })
    }
}

/// A nested `<svg>`: a viewport at `x`,`y` of `width`×`height` (100% by default), into which
/// its viewBox is fitted.
fn nested_viewport(tag: &Tag, frame: Frame) -> Result<Frame, &'static str> {
    let length = |attr, axis, default| tag.user_length(attr, axis, frame.viewport, default);
    let (x, y) = (length(Attr::X, Axis::X, 0.0)?.unwrap_or(0.0), length(Attr::Y, Axis::Y, 0.0)?.unwrap_or(0.0));
    let full = |axis: usize| frame.viewport.map_or(0.0, |size| size[axis]);
    let size = length(Attr::Width, Axis::X, full(0))?.zip(length(Attr::Height, Axis::Y, full(1))?);
    let view_box = tag.value(Attr::ViewBox).map(units::view_box).transpose()?.flatten();
    let at = frame.to_mm.then(&Matrix::translate(x, y));
    Ok(match (view_box, size) {
        (Some([vx, vy, vw, vh]), Some((w, h))) if w > 0.0 && h > 0.0 => {
            let aspect = tag.value(Attr::PreserveAspectRatio).map(AspectRatio::parse).unwrap_or_default();
            let [sx, sy] = aspect.scale([vw, vh], [w, h]);
            let inside = Matrix::scale(sx, sy).then(&Matrix::translate(-vx, -vy));
            Frame { to_mm: at.then(&inside), drawn: true, viewport: Some([vw, vh]) }
        }
        _ => Frame { to_mm: at, drawn: true, viewport: size.map(|(w, h)| [w, h]).or(frame.viewport) },
    })
}

enum Drawn {
    Yes,
    Unmeasured,
}

/// Draws a rect, circle, ellipse or line into `pen` (in its own user units). A shape of zero
/// or negative size draws nothing, as in SVG.
fn basic_shape(tag: &Tag, viewport: Option<[f64; 2]>, pen: &mut Pen) -> Result<Drawn, &'static str> {
    let length = |attr, axis, default| tag.user_length(attr, axis, viewport, default);
    // `auto` radii follow the other radius.
    let radius = |attr, axis| match tag.value(attr).map(Length::parse).transpose()? {
        None | Some(Length::Unknown) => Ok(Some(None)),
        Some(_) => length(attr, axis, 0.0).map(|value| value.map(Some)),
    };
    macro_rules! known {
        ($value:expr) => {
            match $value? {
                Some(value) => value,
                None => return Ok(Drawn::Unmeasured),
            }
        };
    }
    match tag.kind {
        Kind::Line => {
            let from = [known!(length(Attr::X1, Axis::X, 0.0)), known!(length(Attr::Y1, Axis::Y, 0.0))];
            let to = [known!(length(Attr::X2, Axis::X, 0.0)), known!(length(Attr::Y2, Axis::Y, 0.0))];
            pen.line(from, to);
        }
        Kind::Circle => {
            let centre = [known!(length(Attr::Cx, Axis::X, 0.0)), known!(length(Attr::Cy, Axis::Y, 0.0))];
            let r = known!(length(Attr::R, Axis::Diagonal, 0.0));
            ellipse(pen, centre, [r, r]);
        }
        Kind::Ellipse => {
            let centre = [known!(length(Attr::Cx, Axis::X, 0.0)), known!(length(Attr::Cy, Axis::Y, 0.0))];
            let (rx, ry) = (known!(radius(Attr::Rx, Axis::X)), known!(radius(Attr::Ry, Axis::Y)));
            if let Some((rx, ry)) = rx.or(ry).zip(ry.or(rx)) {
                ellipse(pen, centre, [rx, ry]);
            }
        }
        Kind::Rect => {
            let corner = [known!(length(Attr::X, Axis::X, 0.0)), known!(length(Attr::Y, Axis::Y, 0.0))];
            let size = [known!(length(Attr::Width, Axis::X, 0.0)), known!(length(Attr::Height, Axis::Y, 0.0))];
            let (rx, ry) = (known!(radius(Attr::Rx, Axis::X)), known!(radius(Attr::Ry, Axis::Y)));
            let radii = [rx.or(ry).unwrap_or(0.0), ry.or(rx).unwrap_or(0.0)];
            rect(pen, corner, size, radii);
        }
        _ => {}
    }
    Ok(Drawn::Yes)
}

fn ellipse(pen: &mut Pen, [cx, cy]: Point, [rx, ry]: Point) {
    if rx > 0.0 && ry > 0.0 {
        pen.arc([cx + rx, cy], [rx, ry], 0.0, false, true, [cx - rx, cy]);
        pen.arc([cx - rx, cy], [rx, ry], 0.0, false, true, [cx + rx, cy]);
    }
}

/// A rectangle with corners rounded by `radii`, each at most half the side (as SVG clamps).
fn rect(pen: &mut Pen, [x, y]: Point, [w, h]: Point, [rx, ry]: Point) {
    if w <= 0.0 || h <= 0.0 {
        return;
    }
    let (rx, ry) = (rx.clamp(0.0, w / 2.0), ry.clamp(0.0, h / 2.0));
    if rx == 0.0 || ry == 0.0 {
        let corners = [[x, y], [x + w, y], [x + w, y + h], [x, y + h], [x, y]];
        corners.windows(2).for_each(|side| pen.line(side[0], side[1]));
        return;
    }
    // Clockwise from the top left, each side then the corner after it.
    let sides = [
        ([x + rx, y], [x + w - rx, y], [x + w, y + ry]),
        ([x + w, y + ry], [x + w, y + h - ry], [x + w - rx, y + h]),
        ([x + w - rx, y + h], [x + rx, y + h], [x, y + h - ry]),
        ([x, y + h - ry], [x, y + ry], [x + rx, y]),
    ];
    for (start, end, after_corner) in sides {
        pen.line(start, end);
        pen.arc(end, [rx, ry], 0.0, false, true, after_corner);
    }
}

impl Handler for Drawing {
    fn start_element(&mut self, name: &[u8]) -> Result<(), &'static str> {
        let kind = Kind::of(name);
        // Nothing open yet: this is the root (a second root is the tokenizer's error).
        if self.frames.is_empty() && kind != Kind::Svg {
            return Err("the root element is not <svg>");
        }
        let drawn = self.parent().drawn && kind != Kind::Hidden;
        self.tag = drawn.then(|| Tag { kind, values: Default::default(), own_transform: None, geometry: None });
        if drawn {
            self.count(kind);
        }
        Ok(())
    }

    fn attribute(&mut self, name: &[u8]) -> Result<(), &'static str> {
        let Some(kind) = self.tag.as_ref().map(|tag| tag.kind) else {
            self.target = Target::Ignore;
            return Ok(());
        };
        self.target = match (kind, name) {
            (Kind::Path, b"d") => self.start_geometry(Source::PathData)?,
            (Kind::Polyline, b"points") => self.start_geometry(Source::Points { closed: false })?,
            (Kind::Polygon, b"points") => self.start_geometry(Source::Points { closed: true })?,
            (_, b"style") => Target::Style { matched: 0 },
            _ => match Attr::of(name) {
                Some(attr) => {
                    let seen = self.tag.as_ref().is_some_and(|tag| {
                        tag.values[attr as usize].is_some() || (attr == Attr::Transform && tag.own_transform.is_some())
                    });
                    if seen {
                        return Err("an attribute is given twice");
                    }
                    Target::Short { attr, text: Vec::new(), unknown_entity: false }
                }
                None => Target::Ignore,
            },
        };
        Ok(())
    }

    fn attribute_value(&mut self, piece: Piece<'_>) -> Result<(), &'static str> {
        match (&mut self.target, piece) {
            (Target::Ignore, _) | (Target::Style { .. }, Piece::UnknownEntity) => {}
            (Target::Short { unknown_entity, .. }, Piece::UnknownEntity) => *unknown_entity = true,
            (Target::Short { text, .. }, Piece::Text(piece)) => {
                if text.len() + piece.len() > MAX_VALUE {
                    return Err("an attribute read for its geometry is longer than 4096 bytes");
                }
                text.extend_from_slice(piece);
            }
            (Target::Geometry, piece) => {
                let Some(Geometry { data: Some(data), pen, .. }) =
                    self.tag.as_mut().and_then(|tag| tag.geometry.as_mut())
                else {
                    return Ok(());
                };
                match piece {
                    Piece::Text(text) => data.feed(text, pen)?,
                    Piece::UnknownEntity => return Err("path data uses an entity that is not expanded"),
                }
            }
            (Target::Style { matched }, Piece::Text(text)) => {
                // "transform" repeats none of its own beginning, so a mismatch restarts plainly.
                const WORD: &[u8] = b"transform";
                for &byte in text {
                    if *matched == WORD.len() {
                        break;
                    }
                    *matched = if byte == WORD[*matched] { *matched + 1 } else { usize::from(byte == WORD[0]) };
                }
            }
        }
        Ok(())
    }

    fn attribute_end(&mut self) -> Result<(), &'static str> {
        let Some(tag) = &mut self.tag else { return Ok(()) };
        match std::mem::take(&mut self.target) {
            Target::Ignore => {}
            Target::Style { matched } => self.analysis.unapplied_transforms |= matched == b"transform".len(),
            Target::Geometry => {
                if let Some(Geometry { data, pen, .. }) = &mut tag.geometry {
                    if let Some(data) = data.take() {
                        data.finish(pen)?;
                    }
                }
            }
            Target::Short { unknown_entity: true, .. } => {
                return Err("an attribute read for its geometry uses an entity that is not expanded")
            }
            Target::Short { attr, text, .. } => {
                let text =
                    String::from_utf8(text).map_err(|_| "an attribute read for its geometry is not UTF-8 text")?;
                if attr == Attr::Transform {
                    tag.own_transform = Some(units::transform_list(&text)?);
                } else {
                    tag.values[attr as usize] = Some(text);
                }
            }
        }
        Ok(())
    }

    fn start_tag_end(&mut self, self_closing: bool) -> Result<(), &'static str> {
        let frame = match self.tag.take() {
            Some(tag) => self.close_start_tag(tag)?,
            None => Frame { drawn: false, ..self.parent() },
        };
        if !self_closing {
            self.frames.push(frame);
        }
        Ok(())
    }

    fn end_element(&mut self) -> Result<(), &'static str> {
        self.frames.pop();
        Ok(())
    }
}

#[cfg(test)]
mod tests;
