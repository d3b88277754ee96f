//! SVG's short attribute values: lengths with units, `viewBox`, `preserveAspectRatio` and
//! transform lists, and the root viewport they make: the page in millimetres and the scale
//! from user units to millimetres.

use super::geometry::Matrix;
use super::path_data::numbers;

/// CSS pixels are 1/96 inch, and user units without a viewBox are pixels.
pub const MM_PER_PX: f64 = 25.4 / 96.0;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Length {
    /// In CSS pixels (user units without a viewBox).
    Px(f64),
    /// Of the viewport's size.
    Percent(f64),
    /// Relative to a font (`em`, `ex`) or `auto`: nothing a file alone settles.
    Unknown,
}

impl Length {
    pub fn parse(text: &str) -> Result<Length, &'static str> {
        let text = text.trim();
        if text == "auto" {
            return Ok(Length::Unknown);
        }
        // The unit is the trailing letters (`mm`, `em`) or `%`; an exponent is followed by digits.
        let split = text.len() - text.bytes().rev().take_while(|b| b.is_ascii_alphabetic() || *b == b'%').count();
        let (number, unit) = text.split_at(split);
        let value = match numbers(number.as_bytes(), 1)?.as_slice() {
            [value] => *value,
            _ => return Err("a length is not a number"),
        };
        let px_per = |mm: f64| Ok(Length::Px(value * mm / MM_PER_PX));
        match unit {
            "" | "px" => Ok(Length::Px(value)),
            "mm" => px_per(1.0),
            "cm" => px_per(10.0),
            "in" => Ok(Length::Px(value * 96.0)),
            "pt" => Ok(Length::Px(value * 96.0 / 72.0)),
            "pc" => Ok(Length::Px(value * 16.0)),
            "%" => Ok(Length::Percent(value)),
            "em" | "ex" => Ok(Length::Unknown),
            _ => Err("a length has a unit SVG does not know"),
        }
    }
}

/// `min-x min-y width height`; `None` for a zero size, which disables rendering.
pub fn view_box(text: &str) -> Result<Option<[f64; 4]>, &'static str> {
    match numbers(text.as_bytes(), 4)?.as_slice() {
        &[x, y, width, height] if width >= 0.0 && height >= 0.0 => {
            Ok((width > 0.0 && height > 0.0).then_some([x, y, width, height]))
        }
        [_, _, _, _] => Err("a viewBox has a negative size"),
        _ => Err("a viewBox needs four numbers"),
    }
}

/// How a viewBox fills its viewport: uniformly to fit (the default, `meet`), uniformly to
/// cover (`slice`), or stretched (`none`). Alignment moves, it does not scale, so it is not kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AspectRatio {
    #[default]
    Meet,
    Slice,
    Stretch,
}

impl AspectRatio {
    pub fn parse(text: &str) -> AspectRatio {
        let mut words = text.split_ascii_whitespace();
        match (words.next(), words.next()) {
            (Some("none"), _) => AspectRatio::Stretch,
            (_, Some("slice")) => AspectRatio::Slice,
            _ => AspectRatio::Meet,
        }
    }

    /// The scale from a viewBox of `from` to a viewport of `to`.
    pub fn scale(self, from: [f64; 2], to: [f64; 2]) -> [f64; 2] {
        let (sx, sy) = (to[0] / from[0], to[1] / from[1]);
        match self {
            AspectRatio::Stretch => [sx, sy],
            AspectRatio::Meet => [sx.min(sy); 2],
            AspectRatio::Slice => [sx.max(sy); 2],
        }
    }
}

/// A transform list: `translate(10) rotate(45 5 5) matrix(1,0,0,1,0,0)`, applied left to right
/// as nested coordinate systems.
pub fn transform_list(text: &str) -> Result<Matrix, &'static str> {
    let mut result = Matrix::IDENTITY;
    let mut rest = text.trim_start_matches(|c: char| c.is_ascii_whitespace() || c == ',');
    while !rest.is_empty() {
        let open = rest.find('(').ok_or("a transform without its arguments")?;
        let close = rest.find(')').ok_or("a transform's arguments are not closed")?;
        if close < open {
            return Err("a transform's arguments are not closed");
        }
        let name = rest[..open].trim_end();
        let arguments = numbers(&rest.as_bytes()[open + 1..close], 6)?;
        let one = match (name, arguments.as_slice()) {
            ("matrix", &[a, b, c, d, e, f]) => Matrix { a, b, c, d, e, f },
            ("translate", &[tx]) => Matrix::translate(tx, 0.0),
            ("translate", &[tx, ty]) => Matrix::translate(tx, ty),
            ("scale", &[s]) => Matrix::scale(s, s),
            ("scale", &[sx, sy]) => Matrix::scale(sx, sy),
            ("rotate", &[degrees]) => Matrix::rotate(degrees),
            ("rotate", &[degrees, cx, cy]) => {
                Matrix::translate(cx, cy).then(&Matrix::rotate(degrees)).then(&Matrix::translate(-cx, -cy))
            }
            ("skewX", &[degrees]) => Matrix::skew_x(degrees),
            ("skewY", &[degrees]) => Matrix::skew_y(degrees),
            ("matrix" | "translate" | "scale" | "rotate" | "skewX" | "skewY", _) => {
                return Err("a transform has the wrong count of numbers")
            }
            _ => return Err("a transform SVG does not know"),
        };
        result = result.then(&one);
        rest = rest[close + 1..].trim_start_matches(|c: char| c.is_ascii_whitespace() || c == ',');
    }
    if !result.is_finite() {
        return Err("a transform is out of range");
    }
    Ok(result)
}

/// The root `<svg>`'s page and coordinate system.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Viewport {
    pub width_mm: Option<f64>,
    pub height_mm: Option<f64>,
    /// From user units to millimetres.
    pub to_mm: Matrix,
    /// The size in user units that percentages refer to, when known.
    pub user_size: Option<[f64; 2]>,
}

impl Viewport {
    /// From the root's `width`, `height`, `viewBox` and `preserveAspectRatio`. A size given in
    /// percent or font units is not a page size; the viewBox stands in for it then, at 96 dpi.
    pub fn root(
        width: Option<Length>,
        height: Option<Length>,
        view_box: Option<[f64; 4]>,
        aspect: AspectRatio,
    ) -> Viewport {
        let absolute_mm = |length: Option<Length>| match length {
            Some(Length::Px(px)) if px > 0.0 => Some(px * MM_PER_PX),
            _ => None,
        };
        let (width_mm, height_mm) = match (absolute_mm(width), absolute_mm(height), view_box) {
            (Some(w), Some(h), _) => (Some(w), Some(h)),
            // One side given: the other follows the viewBox's proportions.
            (Some(w), None, Some([_, _, vw, vh])) => (Some(w), Some(w * vh / vw)),
            (None, Some(h), Some([_, _, vw, vh])) => (Some(h * vw / vh), Some(h)),
            (None, None, Some([_, _, vw, vh])) => (Some(vw * MM_PER_PX), Some(vh * MM_PER_PX)),
            (w, h, None) => (w, h),
        };
        match (view_box, width_mm, height_mm) {
            (Some([_, _, vw, vh]), Some(w), Some(h)) => {
                let [sx, sy] = aspect.scale([vw, vh], [w, h]);
                Viewport { width_mm, height_mm, to_mm: Matrix::scale(sx, sy), user_size: Some([vw, vh]) }
            }
            _ => {
                let user_size = width_mm.zip(height_mm).map(|(w, h)| [w / MM_PER_PX, h / MM_PER_PX]);
                Viewport { width_mm, height_mm, to_mm: Matrix::scale(MM_PER_PX, MM_PER_PX), user_size }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn px(mm: f64) -> Length {
        Length::Px(mm / MM_PER_PX)
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9 * b.abs().max(1.0)
    }

    #[test]
    fn lengths_in_every_unit() {
        let mm = |text: &str| match Length::parse(text).unwrap() {
            Length::Px(px) => px * MM_PER_PX,
            other => panic!("{text}: {other:?}"),
        };
        assert!(close(mm("10mm"), 10.0));
        assert!(close(mm(" 2.5cm "), 25.0));
        assert!(close(mm("1in"), 25.4));
        assert!(close(mm("72pt"), 25.4));
        assert!(close(mm("6pc"), 25.4));
        assert!(close(mm("96px"), 25.4));
        assert!(close(mm("96"), 25.4));
        assert!(close(mm("9.6e1"), 25.4));
        assert!(close(mm("1e1mm"), 10.0));
        assert_eq!(Length::parse("50%").unwrap(), Length::Percent(50.0));
        assert_eq!(Length::parse("2em").unwrap(), Length::Unknown);
        assert_eq!(Length::parse("1.5ex").unwrap(), Length::Unknown);
        assert_eq!(Length::parse("auto").unwrap(), Length::Unknown);
        for bad in ["", "mm", "10 mm x", "10furlongs", "1e", "--1"] {
            assert!(Length::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn view_boxes() {
        assert_eq!(view_box("0 0 100 50").unwrap(), Some([0.0, 0.0, 100.0, 50.0]));
        assert_eq!(view_box("-5,-5,10,10").unwrap(), Some([-5.0, -5.0, 10.0, 10.0]));
        assert_eq!(view_box("0 0 0 10").unwrap(), None);
        assert!(view_box("0 0 -1 10").is_err());
        assert!(view_box("0 0 10").is_err());
    }

    #[test]
    fn transforms() {
        let m = transform_list("translate(10, 20) scale(2)").unwrap();
        assert_eq!(m.apply([1.0, 1.0]), [12.0, 22.0]);
        let m = transform_list("rotate(90 10 10)").unwrap();
        let p = m.apply([20.0, 10.0]);
        assert!(close(p[0], 10.0) && close(p[1], 20.0), "{p:?}");
        let m = transform_list(" matrix(1 0 0 1 5 6),skewX(0) ").unwrap();
        assert_eq!(m.apply([0.0, 0.0]), [5.0, 6.0]);
        assert_eq!(transform_list("").unwrap(), Matrix::IDENTITY);
        for bad in
            ["translate", "scale(1,2,3)", "spin(4)", "translate(1))(", "rotate(1e308) scale(1e308 1e308) scale(1e308)"]
        {
            assert!(transform_list(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn root_viewports() {
        // Width and height in mm with a viewBox: user units scale to them.
        let v = Viewport::root(Some(px(200.0)), Some(px(100.0)), Some([0.0, 0.0, 20.0, 10.0]), AspectRatio::Meet);
        assert_eq!((v.width_mm.map(f64::round), v.height_mm.map(f64::round)), (Some(200.0), Some(100.0)));
        assert!(close(v.to_mm.a, 10.0) && close(v.to_mm.d, 10.0));
        // A viewBox of other proportions: uniform, the smaller scale, unless stretched.
        let v = Viewport::root(Some(px(200.0)), Some(px(100.0)), Some([0.0, 0.0, 10.0, 10.0]), AspectRatio::Meet);
        assert!(close(v.to_mm.a, 10.0) && close(v.to_mm.d, 10.0));
        let v = Viewport::root(Some(px(200.0)), Some(px(100.0)), Some([0.0, 0.0, 10.0, 10.0]), AspectRatio::Stretch);
        assert!(close(v.to_mm.a, 20.0) && close(v.to_mm.d, 10.0));
        // Only a viewBox: its size at 96 dpi.
        let v = Viewport::root(None, None, Some([0.0, 0.0, 96.0, 48.0]), AspectRatio::Meet);
        assert!(close(v.width_mm.unwrap(), 25.4) && close(v.height_mm.unwrap(), 12.7));
        // One side and a viewBox: the other side from its proportions.
        let v = Viewport::root(Some(px(100.0)), None, Some([0.0, 0.0, 4.0, 2.0]), AspectRatio::Meet);
        assert!(close(v.height_mm.unwrap(), 50.0));
        // Percentages and nothing else: no page, pixels as user units.
        let v = Viewport::root(Some(Length::Percent(100.0)), None, None, AspectRatio::Meet);
        assert_eq!((v.width_mm, v.height_mm, v.user_size), (None, None, None));
        assert!(close(v.to_mm.a, MM_PER_PX));
    }
}
