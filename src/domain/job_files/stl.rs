//! STL geometry, streamed: triangle count, bounding box and volume, for binary and ASCII
//! files. Only the running sums and an unfinished record or line are kept between chunks.
//!
//! Geometry is measured, not counted, so it is `f64` (unlike grams of stock). The volume is
//! the sum of the signed tetrahedra each triangle makes with the origin; for a closed mesh
//! that is its volume whatever the origin, and its absolute value makes inward normals harmless.

use super::lines::{Line, LineSplitter, MAX_LINE};
use super::{AnalysisError, FileKind};

/// The axis-aligned box around every vertex, in millimetres (STL has no unit; slicers take mm).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BoundingBox {
    pub min: [f64; 3],
    pub max: [f64; 3],
}

impl BoundingBox {
    /// Width, depth and height.
    pub fn size(&self) -> [f64; 3] {
        [self.max[0] - self.min[0], self.max[1] - self.min[1], self.max[2] - self.min[2]]
    }

    fn around(&mut self, vertex: [f64; 3]) {
        for (axis, value) in vertex.into_iter().enumerate() {
            self.min[axis] = self.min[axis].min(value);
            self.max[axis] = self.max[axis].max(value);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StlAnalysis {
    pub triangles: u64,
    /// `None` for a file without triangles.
    pub bounding_box: Option<BoundingBox>,
    pub volume_mm3: f64,
}

impl StlAnalysis {
    pub fn volume_cm3(&self) -> f64 {
        self.volume_mm3 / 1000.0
    }
}

/// The running sums, whichever the format.
#[derive(Default)]
struct Sums {
    triangles: u64,
    bounding_box: Option<BoundingBox>,
    /// Six times the signed volume; divided once at the end.
    six_volume: f64,
}

impl Sums {
    fn add(&mut self, [a, b, c]: [[f64; 3]; 3]) -> Result<(), AnalysisError> {
        self.triangles += 1;
        if [a, b, c].iter().flatten().any(|coordinate| !coordinate.is_finite()) {
            return Err(AnalysisError::NonFiniteCoordinate { triangle: self.triangles });
        }
        let bounding_box = self.bounding_box.get_or_insert(BoundingBox { min: a, max: a });
        for vertex in [a, b, c] {
            bounding_box.around(vertex);
        }
        // a · (b × c)
        let cross = [b[1] * c[2] - b[2] * c[1], b[2] * c[0] - b[0] * c[2], b[0] * c[1] - b[1] * c[0]];
        self.six_volume += a[0] * cross[0] + a[1] * cross[1] + a[2] * cross[2];
        Ok(())
    }

    fn finish(self) -> StlAnalysis {
        StlAnalysis {
            triangles: self.triangles,
            bounding_box: self.bounding_box,
            volume_mm3: (self.six_volume / 6.0).abs(),
        }
    }
}

/// Analyses an STL fed in chunks of any size.
pub struct StlAnalyzer {
    sums: Sums,
    format: Format,
}

enum Format {
    Binary(Binary),
    Ascii(Ascii),
}

impl StlAnalyzer {
    pub fn binary() -> StlAnalyzer {
        StlAnalyzer { sums: Sums::default(), format: Format::Binary(Binary::default()) }
    }

    pub fn ascii() -> StlAnalyzer {
        StlAnalyzer { sums: Sums::default(), format: Format::Ascii(Ascii::default()) }
    }

    /// The analyzer for a sniffed kind, `None` when the kind is not an STL.
    pub fn for_kind(kind: FileKind) -> Option<StlAnalyzer> {
        match kind {
            FileKind::StlBinary => Some(StlAnalyzer::binary()),
            FileKind::StlAscii => Some(StlAnalyzer::ascii()),
            _ => None,
        }
    }

    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), AnalysisError> {
        match &mut self.format {
            Format::Binary(binary) => binary.feed(chunk, &mut self.sums),
            Format::Ascii(ascii) => ascii.feed(chunk, &mut self.sums),
        }
    }

    pub fn finish(mut self) -> Result<StlAnalysis, AnalysisError> {
        match self.format {
            Format::Binary(binary) => binary.finish(&self.sums)?,
            Format::Ascii(ascii) => ascii.finish(&mut self.sums)?,
        }
        Ok(self.sums.finish())
    }
}

/// An 80-byte header, a little-endian u32 count, then 50 bytes per triangle: a normal (ignored:
/// slicers recompute it), three vertices of three f32, and a 2-byte attribute.
const HEADER: usize = 84;
const RECORD: usize = 50;

#[derive(Default)]
struct Binary {
    /// The header, then the unfinished record; never longer than `HEADER`.
    pending: Vec<u8>,
    declared: Option<u64>,
}

impl Binary {
    fn feed(&mut self, mut chunk: &[u8], sums: &mut Sums) -> Result<(), AnalysisError> {
        let declared = match self.declared {
            Some(declared) => declared,
            None => {
                let take = chunk.len().min(HEADER - self.pending.len());
                self.pending.extend_from_slice(&chunk[..take]);
                chunk = &chunk[take..];
                if self.pending.len() < HEADER {
                    return Ok(());
                }
                let [.., a, b, c, d] = self.pending[..] else { return Ok(()) };
                let declared = u64::from(u32::from_le_bytes([a, b, c, d]));
                self.pending.clear();
                self.declared = Some(declared);
                declared
            }
        };
        // Finish a record begun in an earlier chunk.
        if !self.pending.is_empty() {
            let take = chunk.len().min(RECORD - self.pending.len());
            self.pending.extend_from_slice(&chunk[..take]);
            chunk = &chunk[take..];
            if self.pending.len() < RECORD {
                return Ok(());
            }
            let record = std::mem::take(&mut self.pending);
            add_record(&record, declared, sums)?;
        }
        let mut records = chunk.chunks_exact(RECORD);
        for record in &mut records {
            add_record(record, declared, sums)?;
        }
        self.pending.extend_from_slice(records.remainder());
        Ok(())
    }

    fn finish(self, sums: &Sums) -> Result<(), AnalysisError> {
        let Some(declared) = self.declared else { return Err(AnalysisError::Truncated("inside the header")) };
        if !self.pending.is_empty() {
            return Err(AnalysisError::Truncated("inside a triangle"));
        }
        if sums.triangles != declared {
            return Err(AnalysisError::CountMismatch { declared, found: sums.triangles });
        }
        Ok(())
    }
}

fn add_record(record: &[u8], declared: u64, sums: &mut Sums) -> Result<(), AnalysisError> {
    // Stop at the first triangle too many rather than reading a huge file to its end.
    if sums.triangles >= declared {
        return Err(AnalysisError::CountMismatch { declared, found: sums.triangles + 1 });
    }
    let float = |at: usize| f64::from(f32::from_le_bytes([record[at], record[at + 1], record[at + 2], record[at + 3]]));
    let vertex = |at: usize| [float(at), float(at + 4), float(at + 8)];
    sums.add([vertex(12), vertex(24), vertex(36)])
}

/// `solid name`, then per facet `facet normal n n n` / `outer loop` / three `vertex x y z` /
/// `endloop` / `endfacet`, then `endsolid name`. Some tools write several solids in one file.
#[derive(Default)]
struct Ascii {
    lines: LineSplitter,
    state: AsciiState,
}

#[derive(Default)]
enum AsciiState {
    #[default]
    BeforeSolid,
    InSolid,
    InFacet,
    InLoop {
        vertices: Vec<[f64; 3]>,
    },
    LoopClosed {
        vertices: [[f64; 3]; 3],
    },
    /// After an `endsolid`: the file may end, or another solid begin.
    AfterSolid,
}

impl Ascii {
    fn feed(&mut self, chunk: &[u8], sums: &mut Sums) -> Result<(), AnalysisError> {
        let state = &mut self.state;
        self.lines.feed(chunk, |line| ascii_line(state, line, sums))
    }

    fn finish(self, sums: &mut Sums) -> Result<(), AnalysisError> {
        let Ascii { lines, mut state } = self;
        lines.finish(|line| ascii_line(&mut state, line, sums))?;
        match state {
            AsciiState::AfterSolid => Ok(()),
            AsciiState::BeforeSolid => Err(AnalysisError::Truncated("before any solid")),
            _ => Err(AnalysisError::Truncated("inside a solid")),
        }
    }
}

fn ascii_line(state: &mut AsciiState, line: Line<'_>, sums: &mut Sums) -> Result<(), AnalysisError> {
    let malformed = |reason| AnalysisError::Malformed { line: line.number, reason };
    if line.too_long {
        return Err(AnalysisError::LineTooLong { line: line.number, max: MAX_LINE });
    }
    let text = std::str::from_utf8(line.bytes).map_err(|_| malformed("not text"))?;
    let mut words = text.split_ascii_whitespace();
    let Some(keyword) = words.next() else { return Ok(()) };
    let next = match (std::mem::take(state), keyword) {
        (AsciiState::BeforeSolid | AsciiState::AfterSolid, "solid") => AsciiState::InSolid,
        (AsciiState::InSolid, "facet") => AsciiState::InFacet,
        (AsciiState::InSolid, "endsolid") => AsciiState::AfterSolid,
        (AsciiState::InFacet, "outer") if words.next() == Some("loop") => AsciiState::InLoop { vertices: Vec::new() },
        (AsciiState::InLoop { mut vertices }, "vertex") if vertices.len() < 3 => {
            let mut coordinate = || -> Result<f64, AnalysisError> {
                let word = words.next().ok_or(malformed("a vertex needs three coordinates"))?;
                // Single precision, as in binary files, so both forms of one mesh agree.
                word.parse::<f32>().map(f64::from).map_err(|_| malformed("a coordinate is not a number"))
            };
            vertices.push([coordinate()?, coordinate()?, coordinate()?]);
            AsciiState::InLoop { vertices }
        }
        (AsciiState::InLoop { vertices }, "endloop") => match <[[f64; 3]; 3]>::try_from(vertices) {
            Ok(vertices) => AsciiState::LoopClosed { vertices },
            Err(_) => return Err(malformed("a facet needs exactly three vertices")),
        },
        (AsciiState::LoopClosed { vertices }, "endfacet") => {
            sums.add(vertices)?;
            AsciiState::InSolid
        }
        _ => return Err(malformed("unexpected keyword")),
    };
    *state = next;
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The 12 triangles of an axis-aligned cube from the origin to `side`, facing outwards.
    pub(crate) fn cube(side: f32) -> Vec<[[f32; 3]; 3]> {
        let s = side;
        let corner = |i: usize| [(i & 1) as f32 * s, ((i >> 1) & 1) as f32 * s, ((i >> 2) & 1) as f32 * s];
        // Each face as four corners counter-clockwise seen from outside.
        let faces = [[0, 2, 3, 1], [4, 5, 7, 6], [0, 1, 5, 4], [2, 6, 7, 3], [0, 4, 6, 2], [1, 3, 7, 5]];
        faces
            .iter()
            .flat_map(|f| [[corner(f[0]), corner(f[1]), corner(f[2])], [corner(f[0]), corner(f[2]), corner(f[3])]])
            .collect()
    }

    pub(crate) fn binary_stl(triangles: &[[[f32; 3]; 3]]) -> Vec<u8> {
        let mut file = b"solid written by the tests as a binary STL".to_vec();
        file.resize(80, b' ');
        file.extend_from_slice(&(triangles.len() as u32).to_le_bytes());
        for triangle in triangles {
            file.extend_from_slice(&[0u8; 12]);
            for coordinate in triangle.iter().flatten() {
                file.extend_from_slice(&coordinate.to_le_bytes());
            }
            file.extend_from_slice(&[0u8; 2]);
        }
        file
    }

    pub(crate) fn ascii_stl(triangles: &[[[f32; 3]; 3]]) -> Vec<u8> {
        let mut file = String::from("solid cube\n");
        for [a, b, c] in triangles {
            file.push_str("  facet normal 0 0 0\n    outer loop\n");
            for [x, y, z] in [a, b, c] {
                file.push_str(&format!("      vertex {x:e} {y:e} {z:e}\n"));
            }
            file.push_str("    endloop\n  endfacet\n");
        }
        file.push_str("endsolid cube\n");
        file.into_bytes()
    }

    fn analyse(mut analyzer: StlAnalyzer, file: &[u8], chunk: usize) -> Result<StlAnalysis, AnalysisError> {
        for piece in file.chunks(chunk.max(1)) {
            analyzer.feed(piece)?;
        }
        analyzer.finish()
    }

    fn assert_cube(analysis: StlAnalysis) {
        assert_eq!(analysis.triangles, 12);
        assert!((analysis.volume_mm3 - 1000.0).abs() < 1e-9, "{}", analysis.volume_mm3);
        assert!((analysis.volume_cm3() - 1.0).abs() < 1e-12);
        assert_eq!(analysis.bounding_box, Some(BoundingBox { min: [0.0; 3], max: [10.0; 3] }));
    }

    #[test]
    fn binary_cube() {
        let file = binary_stl(&cube(10.0));
        assert_eq!(super::super::sniff(&file, file.len() as u64), Some(FileKind::StlBinary));
        assert_cube(analyse(StlAnalyzer::binary(), &file, file.len()).unwrap());
        assert_cube(analyse(StlAnalyzer::binary(), &file, 1).unwrap());
        assert_cube(analyse(StlAnalyzer::binary(), &file, 37).unwrap());
    }

    #[test]
    fn ascii_cube() {
        let file = ascii_stl(&cube(10.0));
        assert_eq!(super::super::sniff(&file, file.len() as u64), Some(FileKind::StlAscii));
        assert_cube(analyse(StlAnalyzer::ascii(), &file, file.len()).unwrap());
        assert_cube(analyse(StlAnalyzer::ascii(), &file, 1).unwrap());
        // Inward-facing triangles give the same volume.
        let inward: Vec<_> = cube(10.0).into_iter().map(|[a, b, c]| [a, c, b]).collect();
        assert_cube(analyse(StlAnalyzer::ascii(), &ascii_stl(&inward), 64).unwrap());
    }

    #[test]
    fn volume_does_not_depend_on_where_the_cube_is() {
        let moved: Vec<_> = cube(10.0).into_iter().map(|t| t.map(|[x, y, z]| [x + 100.0, y - 50.0, z + 3.0])).collect();
        let analysis = analyse(StlAnalyzer::binary(), &binary_stl(&moved), 1000).unwrap();
        assert!((analysis.volume_mm3 - 1000.0).abs() < 1e-6);
        assert_eq!(analysis.bounding_box, Some(BoundingBox { min: [100.0, -50.0, 3.0], max: [110.0, -40.0, 13.0] }));
    }

    #[test]
    fn empty_files_have_no_box() {
        let analysis = analyse(StlAnalyzer::binary(), &binary_stl(&[]), 10).unwrap();
        assert_eq!((analysis.triangles, analysis.bounding_box), (0, None));
        let analysis = analyse(StlAnalyzer::ascii(), b"solid empty\nendsolid empty", 10).unwrap();
        assert_eq!((analysis.triangles, analysis.bounding_box), (0, None));
    }

    #[test]
    fn broken_binary_files_are_errors() {
        let file = binary_stl(&cube(10.0));
        assert_eq!(analyse(StlAnalyzer::binary(), &file[..50], 7), Err(AnalysisError::Truncated("inside the header")));
        assert_eq!(analyse(StlAnalyzer::binary(), &file[..100], 7), Err(AnalysisError::Truncated("inside a triangle")));
        assert_eq!(
            analyse(StlAnalyzer::binary(), &file[..84 + 50 * 11], 7),
            Err(AnalysisError::CountMismatch { declared: 12, found: 11 })
        );
        let mut longer = file.clone();
        longer.extend_from_slice(&[0u8; 50]);
        assert_eq!(
            analyse(StlAnalyzer::binary(), &longer, 7),
            Err(AnalysisError::CountMismatch { declared: 12, found: 13 })
        );
        let mut nan = cube(10.0);
        nan[3][1][2] = f32::NAN;
        assert_eq!(
            analyse(StlAnalyzer::binary(), &binary_stl(&nan), 50),
            Err(AnalysisError::NonFiniteCoordinate { triangle: 4 })
        );
    }

    #[test]
    fn broken_ascii_files_are_errors() {
        let file = ascii_stl(&cube(10.0));
        // Cut after an `endloop`: a cut inside a keyword is `Malformed` instead.
        let cut = &file[..file.len() - 25];
        assert_eq!(analyse(StlAnalyzer::ascii(), cut, 5), Err(AnalysisError::Truncated("inside a solid")));
        let text = String::from_utf8(file.clone()).unwrap();
        let two_vertices = text.replacen("      vertex 1e1 0e0 0e0\n", "", 1);
        assert!(matches!(
            analyse(StlAnalyzer::ascii(), two_vertices.as_bytes(), 9),
            Err(AnalysisError::Malformed { .. })
        ));
        let word = text.replacen("vertex 0e0", "vertex zero", 1);
        assert_eq!(
            analyse(StlAnalyzer::ascii(), word.as_bytes(), 9),
            Err(AnalysisError::Malformed { line: 4, reason: "a coordinate is not a number" })
        );
        let infinite = text.replacen("vertex 0e0", "vertex inf", 1);
        assert_eq!(
            analyse(StlAnalyzer::ascii(), infinite.as_bytes(), 9),
            Err(AnalysisError::NonFiniteCoordinate { triangle: 1 })
        );
        assert!(matches!(
            analyse(StlAnalyzer::ascii(), b"facet normal 0 0 1\n", 3),
            Err(AnalysisError::Malformed { .. })
        ));
        assert_eq!(analyse(StlAnalyzer::ascii(), b"", 3), Err(AnalysisError::Truncated("before any solid")));
        let long = [b"solid x\n".as_slice(), &vec![b' '; MAX_LINE + 1]].concat();
        assert!(matches!(analyse(StlAnalyzer::ascii(), &long, 4096), Err(AnalysisError::LineTooLong { .. })));
    }

    fn triangle() -> impl Strategy<Value = [[f32; 3]; 3]> {
        let vertex = || [-1000.0f32..1000.0, -1000.0f32..1000.0, -1000.0f32..1000.0];
        [vertex(), vertex(), vertex()]
    }

    proptest! {
        #[test]
        fn analyzers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600), chunk in 1usize..64) {
            let _ = analyse(StlAnalyzer::binary(), &bytes, chunk);
            let _ = analyse(StlAnalyzer::ascii(), &bytes, chunk);
        }

        #[test]
        fn ascii_mutations_never_panic(cut in 0usize..2000, byte in any::<u8>(), at in 0usize..2000) {
            let mut file = ascii_stl(&cube(3.5));
            let at = at % file.len();
            file[at] = byte;
            file.truncate(cut.min(file.len()));
            let _ = analyse(StlAnalyzer::ascii(), &file, 7);
        }

        #[test]
        fn random_triangles_round_trip(
            triangles in proptest::collection::vec(triangle(), 1..40),
            chunk in 1usize..200,
        ) {
            let file = binary_stl(&triangles);
            prop_assert_eq!(super::super::sniff(&file, file.len() as u64), Some(FileKind::StlBinary));
            let whole = analyse(StlAnalyzer::binary(), &file, file.len()).unwrap();
            let pieces = analyse(StlAnalyzer::binary(), &file, chunk).unwrap();
            prop_assert_eq!(whole, pieces);
            prop_assert_eq!(whole.triangles, triangles.len() as u64);
            let all = || triangles.iter().flatten();
            let bounding_box = whole.bounding_box.unwrap();
            for axis in 0..3 {
                let min = all().map(|v| f64::from(v[axis])).fold(f64::INFINITY, f64::min);
                let max = all().map(|v| f64::from(v[axis])).fold(f64::NEG_INFINITY, f64::max);
                prop_assert_eq!(bounding_box.min[axis], min);
                prop_assert_eq!(bounding_box.max[axis], max);
            }
            // The same triangles in ASCII give the same count and box.
            let ascii = analyse(StlAnalyzer::ascii(), &ascii_stl(&triangles), chunk).unwrap();
            prop_assert_eq!(ascii.triangles, whole.triangles);
            prop_assert_eq!(ascii.bounding_box, whole.bounding_box);
        }
    }
}
