//! Adds up the length a shape draws, in millimetres, as its segments arrive.
//!
//! A shape's own `transform` attribute may come after its `d` or `points` in the tag, and those
//! are measured while they stream (they can be megabytes; they are never held). So while the
//! own transform is not known, the pen keeps two sums: the length under the parent's transform
//! alone (right if no own transform follows), and the local length sorted by direction into
//! `DIRECTIONS` bins over a half turn. A linear map stretches every piece of one direction by
//! the same factor, so the bins give the length under any transform that turns up later, to
//! within the bins' width: exact for translations, rotations and uniform scales, and within
//! about 0.1% for a 2:1 stretch or a skew.

use super::geometry::{arc_to_centre, cubic_length, distance, Matrix, Point};

/// Bins over half a turn (a direction and its opposite stretch alike): 0.18° each, centred
/// on 0° and 90° so that the sides of rectangles, the commonest lines, are measured exactly.
const DIRECTIONS: usize = 1024;

pub struct Pen {
    /// Local coordinates to millimetres, assuming no own transform follows.
    transform: Matrix,
    length_mm: f64,
    /// Local length by direction, while an own transform may still follow.
    by_direction: Option<Box<[f64; DIRECTIONS]>>,
}

impl Pen {
    /// For a shape whose whole transform is known.
    pub fn exact(transform: Matrix) -> Pen {
        Pen { transform, length_mm: 0.0, by_direction: None }
    }

    /// For a shape whose own transform may still follow its geometry.
    pub fn before_own_transform(parent: Matrix) -> Pen {
        Pen { transform: parent, length_mm: 0.0, by_direction: Some(Box::new([0.0; DIRECTIONS])) }
    }

    pub fn line(&mut self, from: Point, to: Point) {
        let (m, n) = (self.transform.apply(from), self.transform.apply(to));
        self.length_mm += distance(m, n);
        if let Some(bins) = &mut self.by_direction {
            add_by_direction(bins, from, to, distance(from, to));
        }
    }

    pub fn cubic(&mut self, curve: [Point; 4]) {
        let transformed = curve.map(|point| self.transform.apply(point));
        let mut length = 0.0;
        cubic_length(transformed, &mut |_, _, piece| length += piece);
        self.length_mm += length;
        if let Some(bins) = &mut self.by_direction {
            cubic_length(curve, &mut |from, to, piece| add_by_direction(bins, from, to, piece));
        }
    }

    /// An SVG arc command from `from`; a zero radius draws a line, equal endpoints nothing.
    pub fn arc(&mut self, from: Point, radii: Point, rotation_degrees: f64, large_arc: bool, sweep: bool, to: Point) {
        match arc_to_centre(from, radii, rotation_degrees, large_arc, sweep, to) {
            Some((ellipse, start, delta)) => ellipse.arc_as_cubics(start, delta, &mut |cubic| self.cubic(cubic)),
            None if from != to => self.line(from, to),
            None => {}
        }
    }

    /// The length in millimetres, given the shape's own transform when it was read after the
    /// pen was made (an exact pen already has it). `None` when the figures overflow
    /// (coordinates near the limits of a float).
    pub fn finish(self, own: Option<&Matrix>) -> Option<f64> {
        let length = match (own, self.by_direction) {
            (Some(own), Some(bins)) => {
                let whole = self.transform.then(own);
                let step = std::f64::consts::PI / DIRECTIONS as f64;
                bins.iter()
                    .enumerate()
                    .filter(|(_, length)| **length > 0.0)
                    .map(|(bin, length)| {
                        let (sin, cos) = (bin as f64 * step).sin_cos();
                        let [x, y] = whole.apply_vector([cos, sin]);
                        length * x.hypot(y)
                    })
                    .sum()
            }
            // No own transform after all, or an exact pen (which knew it from the start).
            _ => self.length_mm,
        };
        length.is_finite().then_some(length)
    }
}

fn add_by_direction(bins: &mut [f64; DIRECTIONS], from: Point, to: Point, length: f64) {
    if length <= 0.0 || !length.is_finite() {
        return;
    }
    let mut angle = (to[1] - from[1]).atan2(to[0] - from[0]);
    if angle < 0.0 {
        angle += std::f64::consts::PI;
    }
    // Nearest centre; just under a half turn wraps to 0°, the same direction.
    let bin = ((angle / std::f64::consts::PI) * DIRECTIONS as f64).round() as usize;
    bins[bin % DIRECTIONS] += length;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn square(pen: &mut Pen) {
        let corners = [[0.0, 0.0], [10.0, 0.0], [10.0, 10.0], [0.0, 10.0], [0.0, 0.0]];
        for pair in corners.windows(2) {
            pen.line(pair[0], pair[1]);
        }
    }

    #[test]
    fn a_late_transform_stretches_by_direction() {
        let own = Matrix::scale(2.0, 1.0);
        let mut late = Pen::before_own_transform(Matrix::IDENTITY);
        square(&mut late);
        let mut known = Pen::exact(own);
        square(&mut known);
        assert!((late.finish(Some(&own)).unwrap() - 60.0).abs() < 1e-9);
        assert!((known.finish(None).unwrap() - 60.0).abs() < 1e-9);
        // With no own transform the parent's measure stands.
        let mut plain = Pen::before_own_transform(Matrix::scale(3.0, 3.0));
        square(&mut plain);
        assert!((plain.finish(None).unwrap() - 120.0).abs() < 1e-9);
    }

    #[test]
    fn a_late_skew_on_a_circle_is_close() {
        let own = Matrix::skew_x(30.0).then(&Matrix::scale(1.0, 2.0));
        let mut late = Pen::before_own_transform(Matrix::IDENTITY);
        late.arc([0.0, 0.0], [5.0, 5.0], 0.0, false, true, [10.0, 0.0]);
        late.arc([10.0, 0.0], [5.0, 5.0], 0.0, false, true, [0.0, 0.0]);
        let mut known = Pen::exact(own);
        known.arc([0.0, 0.0], [5.0, 5.0], 0.0, false, true, [10.0, 0.0]);
        known.arc([10.0, 0.0], [5.0, 5.0], 0.0, false, true, [0.0, 0.0]);
        let (late, known) = (late.finish(Some(&own)).unwrap(), known.finish(None).unwrap());
        assert!((late - known).abs() < 1e-3 * known, "{late} against {known}");
    }
}
