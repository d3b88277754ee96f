//! Plane geometry for the SVG analysis: affine transforms, and the length of lines, cubic
//! Bézier curves and elliptical arcs once transformed.
//!
//! Every curve is measured as cubic Béziers: quadratics are raised to cubics exactly, arcs
//! become cubics of at most 22.5° (the radial error of that approximation is under 1e-7 of
//! the radius), and a cubic's length comes from adaptive subdivision. Béziers stay Béziers under an
//! affine map, so a curve is transformed by its control points and then measured: non-uniform
//! scales and skews give the right length, not a scaled one.

/// A point or a vector, `[x, y]`.
pub type Point = [f64; 2];

/// SVG's `matrix(a b c d e f)`: `x' = a·x + c·y + e`, `y' = b·x + d·y + f`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Matrix {
    pub a: f64,
    pub b: f64,
    pub c: f64,
    pub d: f64,
    pub e: f64,
    pub f: f64,
}

impl Matrix {
    pub const IDENTITY: Matrix = Matrix { a: 1.0, b: 0.0, c: 0.0, d: 1.0, e: 0.0, f: 0.0 };

    pub fn translate(tx: f64, ty: f64) -> Matrix {
        Matrix { e: tx, f: ty, ..Matrix::IDENTITY }
    }

    pub fn scale(sx: f64, sy: f64) -> Matrix {
        Matrix { a: sx, d: sy, ..Matrix::IDENTITY }
    }

    /// A rotation by `degrees`, clockwise on screen (SVG's y axis points down).
    pub fn rotate(degrees: f64) -> Matrix {
        let (sin, cos) = degrees.to_radians().sin_cos();
        Matrix { a: cos, b: sin, c: -sin, d: cos, e: 0.0, f: 0.0 }
    }

    pub fn skew_x(degrees: f64) -> Matrix {
        Matrix { c: degrees.to_radians().tan(), ..Matrix::IDENTITY }
    }

    pub fn skew_y(degrees: f64) -> Matrix {
        Matrix { b: degrees.to_radians().tan(), ..Matrix::IDENTITY }
    }

    /// `self · inner`: `inner` applies first. A child's transform is `parent.then(own)`.
    pub fn then(&self, inner: &Matrix) -> Matrix {
        Matrix {
            a: self.a * inner.a + self.c * inner.b,
            b: self.b * inner.a + self.d * inner.b,
            c: self.a * inner.c + self.c * inner.d,
            d: self.b * inner.c + self.d * inner.d,
            e: self.a * inner.e + self.c * inner.f + self.e,
            f: self.b * inner.e + self.d * inner.f + self.f,
        }
    }

    pub fn apply(&self, [x, y]: Point) -> Point {
        [self.a * x + self.c * y + self.e, self.b * x + self.d * y + self.f]
    }

    /// The linear part only: how a direction is stretched.
    pub fn apply_vector(&self, [x, y]: Point) -> Point {
        [self.a * x + self.c * y, self.b * x + self.d * y]
    }

    pub fn is_finite(&self) -> bool {
        [self.a, self.b, self.c, self.d, self.e, self.f].iter().all(|v| v.is_finite())
    }
}

pub fn distance(p: Point, q: Point) -> f64 {
    (q[0] - p[0]).hypot(q[1] - p[1])
}

/// Deeper than this a cubic is not split again: 2^10 pieces are far below a laser's kerf
/// even for a curve with a cusp, and the depth bounds the work a hostile file can ask for.
const MAX_DEPTH: u32 = 10;

/// A piece is flat enough when its control polygon is longer than its chord by at most this
/// share; the length taken, the mean of both, is then off by far less.
const FLATNESS: f64 = 1e-4;

/// The length of a cubic Bézier, by adaptive subdivision. `on_piece` sees each flat piece's
/// chord and the length credited to it, so a caller can also sort lengths by direction.
pub fn cubic_length(curve: [Point; 4], on_piece: &mut impl FnMut(Point, Point, f64)) {
    subdivide(curve, 0, on_piece);
}

fn subdivide([p0, p1, p2, p3]: [Point; 4], depth: u32, on_piece: &mut impl FnMut(Point, Point, f64)) {
    let chord = distance(p0, p3);
    let polygon = distance(p0, p1) + distance(p1, p2) + distance(p2, p3);
    if depth >= MAX_DEPTH || polygon - chord <= FLATNESS * polygon || !polygon.is_finite() {
        on_piece(p0, p3, (chord + polygon) / 2.0);
        return;
    }
    // de Casteljau at t = 1/2.
    let mid = |p: Point, q: Point| [(p[0] + q[0]) / 2.0, (p[1] + q[1]) / 2.0];
    let (p01, p12, p23) = (mid(p0, p1), mid(p1, p2), mid(p2, p3));
    let (p012, p123) = (mid(p01, p12), mid(p12, p23));
    let centre = mid(p012, p123);
    subdivide([p0, p01, p012, centre], depth + 1, on_piece);
    subdivide([centre, p123, p23, p3], depth + 1, on_piece);
}

/// A quadratic Bézier as the cubic that draws exactly the same curve.
pub fn quadratic_to_cubic(p0: Point, control: Point, p3: Point) -> [Point; 4] {
    let towards =
        |from: Point| [from[0] + 2.0 / 3.0 * (control[0] - from[0]), from[1] + 2.0 / 3.0 * (control[1] - from[1])];
    [p0, towards(p0), towards(p3), p3]
}

/// An ellipse in centre form: centre, radii, the x axis's rotation in radians.
#[derive(Debug, Clone, Copy)]
pub struct Ellipse {
    pub centre: Point,
    pub rx: f64,
    pub ry: f64,
    pub rotation: f64,
}

impl Ellipse {
    /// The point at angle `theta` (radians) of the ellipse's own parameter.
    fn at(&self, [x, y]: Point) -> Point {
        let (sin, cos) = self.rotation.sin_cos();
        let (x, y) = (self.rx * x, self.ry * y);
        [self.centre[0] + cos * x - sin * y, self.centre[1] + sin * x + cos * y]
    }

    /// The arc from angle `start` turning by `sweep` (radians, negative is the other way), as
    /// cubics of at most 22.5° each (16 for a whole turn).
    pub fn arc_as_cubics(&self, start: f64, sweep: f64, on_cubic: &mut impl FnMut([Point; 4])) {
        let pieces = (sweep.abs() / (std::f64::consts::PI / 8.0)).ceil().clamp(1.0, 16.0);
        let step = sweep / pieces;
        // The classic unit-circle approximation: handles of length 4/3·tan(step/4).
        let handle = 4.0 / 3.0 * (step / 4.0).tan();
        for piece in 0..pieces as u32 {
            let (t0, t1) = (start + step * f64::from(piece), start + step * f64::from(piece + 1));
            let (s0, c0) = t0.sin_cos();
            let (s1, c1) = t1.sin_cos();
            on_cubic([
                self.at([c0, s0]),
                self.at([c0 - handle * s0, s0 + handle * c0]),
                self.at([c1 + handle * s1, s1 - handle * c1]),
                self.at([c1, s1]),
            ]);
        }
    }
}

/// An SVG arc command in endpoint form, turned into centre form and a sweep by the SVG
/// specification's conversion (implementation notes, "elliptical arc implementation", with
/// out-of-range radii scaled up). `None` when the arc draws nothing or is a straight line:
/// equal endpoints draw nothing; a zero radius is a line, which the caller draws.
pub fn arc_to_centre(
    from: Point,
    radii: Point,
    x_axis_rotation_degrees: f64,
    large_arc: bool,
    sweep: bool,
    to: Point,
) -> Option<(Ellipse, f64, f64)> {
    if from == to {
        return None;
    }
    let (mut rx, mut ry) = (radii[0].abs(), radii[1].abs());
    if rx == 0.0 || ry == 0.0 {
        return None;
    }
    let rotation = (x_axis_rotation_degrees % 360.0).to_radians();
    let (sin, cos) = rotation.sin_cos();
    let (dx, dy) = ((from[0] - to[0]) / 2.0, (from[1] - to[1]) / 2.0);
    let x1 = cos * dx + sin * dy;
    let y1 = -sin * dx + cos * dy;
    // Radii too small to join the endpoints grow just enough.
    let lambda = (x1 * x1) / (rx * rx) + (y1 * y1) / (ry * ry);
    if lambda > 1.0 {
        rx *= lambda.sqrt();
        ry *= lambda.sqrt();
    }
    let numerator = rx * rx * ry * ry - rx * rx * y1 * y1 - ry * ry * x1 * x1;
    let denominator = rx * rx * y1 * y1 + ry * ry * x1 * x1;
    let mut coefficient = (numerator / denominator).max(0.0).sqrt();
    if !coefficient.is_finite() {
        coefficient = 0.0;
    }
    if large_arc == sweep {
        coefficient = -coefficient;
    }
    let cx1 = coefficient * rx * y1 / ry;
    let cy1 = -coefficient * ry * x1 / rx;
    let centre = [cos * cx1 - sin * cy1 + (from[0] + to[0]) / 2.0, sin * cx1 + cos * cy1 + (from[1] + to[1]) / 2.0];
    let start = ((y1 - cy1) / ry).atan2((x1 - cx1) / rx);
    let end = ((-y1 - cy1) / ry).atan2((-x1 - cx1) / rx);
    let mut delta = end - start;
    let full = std::f64::consts::TAU;
    if sweep && delta < 0.0 {
        delta += full;
    } else if !sweep && delta > 0.0 {
        delta -= full;
    }
    let ellipse = Ellipse { centre, rx, ry, rotation };
    [rx, ry, centre[0], centre[1], start, delta].iter().all(|v| v.is_finite()).then_some((ellipse, start, delta))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::PI;

    fn length(curve: [Point; 4]) -> f64 {
        let mut total = 0.0;
        cubic_length(curve, &mut |_, _, piece| total += piece);
        total
    }

    fn close(a: f64, b: f64, tolerance: f64) -> bool {
        (a - b).abs() <= tolerance * b.abs().max(1.0)
    }

    #[test]
    fn matrices_compose_inner_first() {
        let moved_then_scaled = Matrix::scale(2.0, 3.0).then(&Matrix::translate(1.0, 1.0));
        assert_eq!(moved_then_scaled.apply([0.0, 0.0]), [2.0, 3.0]);
        let quarter = Matrix::rotate(90.0).apply([1.0, 0.0]);
        assert!(close(quarter[0], 0.0, 1e-12) && close(quarter[1], 1.0, 1e-12));
        assert_eq!(Matrix::skew_x(45.0).apply_vector([0.0, 1.0])[0].round(), 1.0);
    }

    #[test]
    fn straight_cubic_is_its_chord() {
        assert!(close(length([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [3.0, 0.0]]), 3.0, 1e-12));
    }

    #[test]
    fn quarter_arcs_make_a_circle() {
        let circle = Ellipse { centre: [5.0, 5.0], rx: 10.0, ry: 10.0, rotation: 0.0 };
        let mut total = 0.0;
        circle.arc_as_cubics(0.0, 2.0 * PI, &mut |cubic| total += length(cubic));
        assert!(close(total, 20.0 * PI, 1e-5), "{total}");
    }

    #[test]
    fn ellipse_perimeter() {
        // Ramanujan's second approximation is exact to ~1e-10 here.
        let (a, b) = (30.0f64, 10.0f64);
        let h = ((a - b) / (a + b)).powi(2);
        let expected = PI * (a + b) * (1.0 + 3.0 * h / (10.0 + (4.0 - 3.0 * h).sqrt()));
        let ellipse = Ellipse { centre: [0.0, 0.0], rx: a, ry: b, rotation: 0.7 };
        let mut total = 0.0;
        ellipse.arc_as_cubics(0.3, -2.0 * PI, &mut |cubic| total += length(cubic));
        assert!(close(total, expected, 1e-5), "{total} against {expected}");
    }

    #[test]
    fn endpoint_arcs_follow_the_specification() {
        // A half circle of radius 5 from (0,0) to (10,0): centre (5,0), sweep ±π.
        let (ellipse, _, delta) = arc_to_centre([0.0, 0.0], [5.0, 5.0], 0.0, false, true, [10.0, 0.0]).unwrap();
        assert!(close(ellipse.centre[0], 5.0, 1e-12) && close(ellipse.centre[1], 0.0, 1e-12));
        assert!(close(delta, PI, 1e-12));
        // Radii too small are scaled up to the half circle.
        let (ellipse, _, _) = arc_to_centre([0.0, 0.0], [1.0, 1.0], 0.0, false, false, [10.0, 0.0]).unwrap();
        assert!(close(ellipse.rx, 5.0, 1e-12));
        // The large arc of a circle of radius 10 through two points 10 apart: 300°.
        let (_, _, delta) = arc_to_centre([0.0, 0.0], [10.0, 10.0], 0.0, true, true, [10.0, 0.0]).unwrap();
        assert!(close(delta, 5.0 * PI / 3.0, 1e-12), "{delta}");
        let (_, _, delta) = arc_to_centre([0.0, 0.0], [10.0, 10.0], 0.0, false, false, [10.0, 0.0]).unwrap();
        assert!(close(delta, -PI / 3.0, 1e-12), "{delta}");
        assert!(arc_to_centre([1.0, 1.0], [5.0, 5.0], 0.0, false, true, [1.0, 1.0]).is_none());
        assert!(arc_to_centre([0.0, 0.0], [0.0, 5.0], 0.0, false, true, [1.0, 1.0]).is_none());
    }

    #[test]
    fn a_cusp_is_bounded_work() {
        let mut pieces = 0;
        cubic_length([[0.0, 0.0], [10.0, 10.0], [0.0, 10.0], [10.0, 0.0]], &mut |_, _, _| pieces += 1);
        assert!(pieces <= 1 << MAX_DEPTH);
    }
}
