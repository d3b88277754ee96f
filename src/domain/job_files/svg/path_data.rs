//! SVG path data (`d`) and point lists (`points`), read byte by byte as they stream and drawn
//! into a `Pen` at once: only the number being read (at most `MAX_NUMBER` bytes) and the
//! current command's arguments are held, so a `d` of many megabytes costs no memory.
//!
//! The grammar is SVG's: commands M L H V C S Q T A Z in both cases, numbers with optional
//! sign, fraction and exponent that may run together (`1.5.5` is 1.5 and .5, `1-2` is 1 and
//! -2), arc flags that need no separator (`a5 5 0 1010 10`), a repeated command implied by
//! more numbers (after a moveto, linetos). Anything else is an error: SVG renders a path up
//! to its first error, but a cut file that is half read is not one to quote.

use super::geometry::{quadratic_to_cubic, Point};
use super::pen::Pen;

/// Longer numbers are not coordinates anyone wrote: 64 bytes hold any float's digits.
const MAX_NUMBER: usize = 64;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A path's `d`.
    PathData,
    /// A polyline's or polygon's `points`: numbers only, closed at the end for a polygon.
    Points { closed: bool },
}

pub struct PathData {
    source: Source,
    number: Number,
    /// The command whose arguments are being read (upper case), and whether it is relative.
    command: Option<(u8, bool)>,
    args: [f64; 7],
    count: usize,
    /// A moveto was seen: nothing may be drawn before one.
    started: bool,
    current: Point,
    subpath_start: Point,
    /// The second control point of the previous segment when it was a cubic (for `S`), or its
    /// control point when it was a quadratic (for `T`).
    previous_control: Option<(Point, Curve)>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Curve {
    Cubic,
    Quadratic,
}

impl PathData {
    pub fn new(source: Source) -> PathData {
        PathData {
            source,
            number: Number::default(),
            // A point list is a moveto and linetos without the letters.
            command: match source {
                Source::PathData => None,
                Source::Points { .. } => Some((b'M', false)),
            },
            args: [0.0; 7],
            count: 0,
            started: false,
            current: [0.0; 2],
            subpath_start: [0.0; 2],
            previous_control: None,
        }
    }

    pub fn feed(&mut self, bytes: &[u8], pen: &mut Pen) -> Result<(), &'static str> {
        for &byte in bytes {
            if !self.number.is_empty() {
                if self.number.continues_with(byte)? {
                    continue;
                }
                let value = self.number.take()?;
                self.argument(value, pen)?;
            }
            self.fresh(byte, pen)?;
        }
        Ok(())
    }

    pub fn finish(mut self, pen: &mut Pen) -> Result<(), &'static str> {
        if !self.number.is_empty() {
            let value = self.number.take()?;
            self.argument(value, pen)?;
        }
        if self.count != 0 {
            return Err(match self.source {
                Source::PathData => "a path command is missing numbers",
                Source::Points { .. } => "a point list has an odd count of numbers",
            });
        }
        if let Source::Points { closed: true } = self.source {
            if self.started {
                pen.line(self.current, self.subpath_start);
            }
        }
        Ok(())
    }

    /// A byte that does not continue a number.
    fn fresh(&mut self, byte: u8, pen: &mut Pen) -> Result<(), &'static str> {
        match byte {
            b' ' | b'\t' | b'\n' | b'\r' | b'\x0c' | b',' => Ok(()),
            b'0' | b'1' if self.expects_flag() => self.argument(f64::from(byte - b'0'), pen),
            _ if self.expects_flag() && (byte.is_ascii_digit() || matches!(byte, b'.' | b'+' | b'-')) => {
                Err("an arc flag must be 0 or 1")
            }
            b'0'..=b'9' | b'.' | b'+' | b'-' => self.number.start(byte),
            b'A'..=b'Z' | b'a'..=b'z' if self.source == Source::PathData => self.command_letter(byte, pen),
            _ => Err(match self.source {
                Source::PathData => "path data holds a character that is neither a command nor a number",
                Source::Points { .. } => "a point list holds a character that is not a number",
            }),
        }
    }

    fn expects_flag(&self) -> bool {
        matches!(self.command, Some((b'A', _))) && matches!(self.count, 3 | 4)
    }

    fn command_letter(&mut self, letter: u8, pen: &mut Pen) -> Result<(), &'static str> {
        let upper = letter.to_ascii_uppercase();
        if arity(upper).is_none() {
            return Err("path data holds an unknown command letter");
        }
        if self.count != 0 {
            return Err("a path command is missing numbers");
        }
        if !self.started && upper != b'M' {
            return Err("path data must begin with a moveto (M)");
        }
        self.command = Some((upper, letter.is_ascii_lowercase()));
        if upper == b'Z' {
            self.close(pen);
        }
        Ok(())
    }

    fn argument(&mut self, value: f64, pen: &mut Pen) -> Result<(), &'static str> {
        let Some((command, relative)) = self.command else {
            return Err("path data holds numbers without a command");
        };
        let arity = arity(command).unwrap_or(0);
        if arity == 0 {
            return Err("numbers follow a closepath (Z) without a command");
        }
        self.args[self.count] = value;
        self.count += 1;
        if self.count == arity {
            self.count = 0;
            self.segment(command, relative, pen);
        }
        Ok(())
    }

    fn segment(&mut self, command: u8, relative: bool, pen: &mut Pen) {
        let a = self.args;
        let origin = if relative { self.current } else { [0.0; 2] };
        let point = |x: f64, y: f64| [origin[0] + x, origin[1] + y];
        let from = self.current;
        let mut control = None;
        match command {
            b'M' => {
                self.started = true;
                self.current = point(a[0], a[1]);
                self.subpath_start = self.current;
                // More pairs after a moveto are linetos, relative if it was.
                self.command = Some((b'L', relative));
            }
            b'L' => self.line_to(point(a[0], a[1]), pen),
            b'H' => self.line_to([origin[0] + a[0], from[1]], pen),
            b'V' => self.line_to([from[0], origin[1] + a[0]], pen),
            b'C' | b'S' => {
                let (first, rest) =
                    if command == b'C' { (point(a[0], a[1]), 2) } else { (self.reflected(Curve::Cubic), 0) };
                let (second, end) = (point(a[rest], a[rest + 1]), point(a[rest + 2], a[rest + 3]));
                pen.cubic([from, first, second, end]);
                self.current = end;
                control = Some((second, Curve::Cubic));
            }
            b'Q' | b'T' => {
                let (handle, rest) =
                    if command == b'Q' { (point(a[0], a[1]), 2) } else { (self.reflected(Curve::Quadratic), 0) };
                let end = point(a[rest], a[rest + 1]);
                pen.cubic(quadratic_to_cubic(from, handle, end));
                self.current = end;
                control = Some((handle, Curve::Quadratic));
            }
            b'A' => {
                let end = point(a[5], a[6]);
                pen.arc(from, [a[0], a[1]], a[2], a[3] != 0.0, a[4] != 0.0, end);
                self.current = end;
            }
            _ => {}
        }
        self.previous_control = control;
    }

    fn line_to(&mut self, to: Point, pen: &mut Pen) {
        pen.line(self.current, to);
        self.current = to;
    }

    fn close(&mut self, pen: &mut Pen) {
        pen.line(self.current, self.subpath_start);
        self.current = self.subpath_start;
        self.previous_control = None;
    }

    /// The first control point of `S` or `T`: the previous one mirrored through the current
    /// point when the previous segment was of the same kind, else the current point.
    fn reflected(&self, kind: Curve) -> Point {
        match self.previous_control {
            Some((control, previous)) if previous == kind => {
                [2.0 * self.current[0] - control[0], 2.0 * self.current[1] - control[1]]
            }
            _ => self.current,
        }
    }
}

/// The numbers of a short attribute (`viewBox`, a transform's arguments), with the grammar of
/// path data; at most `max` of them.
pub fn numbers(text: &[u8], max: usize) -> Result<Vec<f64>, &'static str> {
    let mut found = Vec::new();
    let mut number = Number::default();
    // A space after the end takes the last number.
    for &byte in text.iter().chain(b" ") {
        if !number.is_empty() {
            if number.continues_with(byte)? {
                continue;
            }
            if found.len() == max {
                return Err("a list holds too many numbers");
            }
            found.push(number.take()?);
        }
        match byte {
            b' ' | b'\t' | b'\n' | b'\r' | b'\x0c' | b',' => {}
            b'0'..=b'9' | b'.' | b'+' | b'-' => number.start(byte)?,
            _ => return Err("a list of numbers holds something else"),
        }
    }
    Ok(found)
}

fn arity(command: u8) -> Option<usize> {
    match command {
        b'Z' => Some(0),
        b'H' | b'V' => Some(1),
        b'M' | b'L' | b'T' => Some(2),
        b'S' | b'Q' => Some(4),
        b'C' => Some(6),
        b'A' => Some(7),
        _ => None,
    }
}

/// The text of the number being read, and where in its grammar it is.
struct Number {
    text: [u8; MAX_NUMBER],
    len: usize,
    dot: bool,
    exponent: bool,
    digits: bool,
    exponent_digits: bool,
}

impl Default for Number {
    fn default() -> Number {
        Number { text: [0; MAX_NUMBER], len: 0, dot: false, exponent: false, digits: false, exponent_digits: false }
    }
}

impl Number {
    fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn start(&mut self, byte: u8) -> Result<(), &'static str> {
        *self = Number::default();
        self.push(byte)
    }

    /// Whether `byte` belongs to this number (then it is taken).
    fn continues_with(&mut self, byte: u8) -> Result<bool, &'static str> {
        let fits = match byte {
            b'0'..=b'9' => true,
            b'.' => !self.dot && !self.exponent,
            b'e' | b'E' => self.digits && !self.exponent,
            b'+' | b'-' => matches!(self.text[self.len - 1], b'e' | b'E'),
            _ => false,
        };
        if fits {
            self.push(byte)?;
        }
        Ok(fits)
    }

    fn push(&mut self, byte: u8) -> Result<(), &'static str> {
        if self.len == MAX_NUMBER {
            return Err("a number is longer than 64 characters");
        }
        match byte {
            b'0'..=b'9' if self.exponent => self.exponent_digits = true,
            b'0'..=b'9' => self.digits = true,
            b'.' => self.dot = true,
            b'e' | b'E' => self.exponent = true,
            _ => {}
        }
        self.text[self.len] = byte;
        self.len += 1;
        Ok(())
    }

    fn take(&mut self) -> Result<f64, &'static str> {
        let complete = self.digits && (!self.exponent || self.exponent_digits);
        let text = std::str::from_utf8(&self.text[..self.len]).unwrap_or("");
        let value = if complete { text.parse::<f64>().ok() } else { None };
        self.len = 0;
        match value {
            Some(value) if value.is_finite() => Ok(value),
            Some(_) => Err("a number is out of range"),
            None => Err("a number is incomplete"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::geometry::Matrix;
    use super::*;
    use std::f64::consts::PI;

    pub(crate) fn length(source: Source, text: &str) -> Result<f64, &'static str> {
        let mut pen = Pen::exact(Matrix::IDENTITY);
        let mut data = PathData::new(source);
        data.feed(text.as_bytes(), &mut pen)?;
        data.finish(&mut pen)?;
        Ok(pen.finish(None).unwrap())
    }

    fn path(text: &str) -> f64 {
        length(Source::PathData, text).unwrap()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-6 * b.abs().max(1.0)
    }

    #[test]
    fn lines_absolute_and_relative() {
        assert!(close(path("M0 0 L10 0 L10 10 Z"), 10.0 + 10.0 + 200f64.sqrt()));
        assert!(close(path("m5,5 h10 v10 h-10 z"), 40.0));
        assert!(close(path("M0 0 H10 V10 H0 V0"), 40.0));
        // Pairs after a moveto are linetos, relative after a relative one.
        assert!(close(path("m0 0 10 0 0 10"), 20.0));
        assert!(close(path("M0 0 10 0 10 10"), 20.0));
        // Two subpaths, the second moved to without drawing.
        assert!(close(path("M0 0 L3 4 M100 100 l0 5"), 10.0));
        assert_eq!(path(""), 0.0);
        assert_eq!(path("M10 10"), 0.0);
    }

    #[test]
    fn numbers_run_together() {
        assert!(close(path("M0,0L1.5.5"), (1.5f64 * 1.5 + 0.25).sqrt()));
        assert!(close(path("M0 0l3-4"), 5.0));
        assert!(close(path("M0 0l3e1-4E+1"), 50.0));
        assert!(close(path("M0 0l+.3e1 -.4e1"), 5.0));
    }

    #[test]
    fn curves() {
        // A straight cubic and quadratic are their chords.
        assert!(close(path("M0 0 C1 0 2 0 3 0"), 3.0));
        assert!(close(path("M0 0 Q5 0 10 0 T20 0"), 20.0));
        // S mirrors the previous cubic's handle: a symmetric S-curve, twice one C.
        let one = path("M0 0 C0 10 10 10 10 0");
        assert!(close(path("M0 0 C0 10 10 10 10 0 S20 -10 20 0"), 2.0 * one));
        assert!(close(path("M0 0 c0 10 10 10 10 0 s10 -10 10 0"), 2.0 * one));
        // T after a non-quadratic uses the current point as its control: a straight line.
        assert!(close(path("M0 0 L10 0 T20 0"), 20.0));
    }

    #[test]
    fn arcs() {
        // A circle of radius 5 from two half arcs, flags written without separators.
        assert!(close(path("M0 5 a5 5 0 1010 0 a5 5 0 10-10 0"), 10.0 * PI));
        assert!(close(path("M0 5 A5 5 0 1 1 10 5 A5 5 0 1 1 0 5"), 10.0 * PI));
        // A zero radius is a straight line.
        assert!(close(path("M0 0 A0 5 0 0 1 3 4"), 5.0));
    }

    #[test]
    fn points() {
        assert!(close(length(Source::Points { closed: false }, "0,0 10,0 10,10").unwrap(), 20.0));
        assert!(close(length(Source::Points { closed: true }, " 0,0 10,0 10,10 ").unwrap(), 20.0 + 200f64.sqrt()));
        assert!(length(Source::Points { closed: true }, "0,0 10").is_err());
        assert!(length(Source::Points { closed: false }, "0,0 L10,10").is_err());
        assert_eq!(length(Source::Points { closed: true }, "").unwrap(), 0.0);
    }

    #[test]
    fn errors() {
        for bad in [
            "L10 10",
            "M0 0 L10",
            "M0 0 X10 10",
            "M0 0 L10 10 Z 5 5",
            "M0 0 A5 5 0 2 0 10 10",
            "M0 0 L1e 2",
            "M0 0 L1e999 0",
            "M0 0 L10 10 #",
            "10 10",
            "M0 0 L.",
        ] {
            assert!(length(Source::PathData, bad).is_err(), "{bad}");
        }
        let long = format!("M0 0 L{} 0", "1".repeat(65));
        assert_eq!(length(Source::PathData, &long), Err("a number is longer than 64 characters"));
    }

    #[test]
    fn number_lists() {
        assert_eq!(numbers(b" 0,0 100.5 -2e1", 4).unwrap(), vec![0.0, 0.0, 100.5, -20.0]);
        assert_eq!(numbers(b"1-2.5.5", 4).unwrap(), vec![1.0, -2.5, 0.5]);
        assert!(numbers(b"1 2 3", 2).is_err());
        assert!(numbers(b"1 px", 2).is_err());
        assert_eq!(numbers(b"", 2).unwrap(), Vec::<f64>::new());
    }

    #[test]
    fn streamed_in_pieces_is_the_same() {
        let text = "M0 5 a5 5 0 1010 0 c1.5.5-2e1 3 4 5s6 7 8 9q1 2 3 4t5 6h-7.25v3Z";
        let whole = path(text);
        for size in 1..text.len() {
            let mut pen = Pen::exact(Matrix::IDENTITY);
            let mut data = PathData::new(Source::PathData);
            for piece in text.as_bytes().chunks(size) {
                data.feed(piece, &mut pen).unwrap();
            }
            data.finish(&mut pen).unwrap();
            assert_eq!(pen.finish(None).unwrap(), whole, "pieces of {size}");
        }
    }
}
