//! What an uploaded job file is and what it holds, read from its bytes alone (issue 12,
//! "Intake"): the type sniffed from the content (never the name), then its analysis. Pure: no
//! I/O of its own, and never a panic on bad input (every parser is fuzzed with proptest).
//!
//! - STL (`StlAnalyzer`): triangle count, bounding box, volume; binary and ASCII.
//! - G-code (`GcodeAnalyzer`): the slicer's header (time, filament grams and length, material,
//!   nozzle) as PrusaSlicer, OrcaSlicer, Bambu Studio and Cura write it.
//! - SVG (`SvgAnalyzer`): page size and the length of everything drawn, for lasers.
//! - 3MF (`threemf::analyze`): bounding box and triangles over the build, the slicer, Bambu
//!   Studio / OrcaSlicer plates with their estimates, whether it was sliced.
//!
//! STL, G-code and SVG are streamed: the upload handler feeds each analyzer the chunks it
//! streams to storage (`feed`, then `finish`), so a 100 MB upload is never held whole in
//! memory. A 3MF is a ZIP, whose directory is at its end, so it is analysed from a reader
//! that seeks (the stored upload's temporary file), with bounded unpacking.

pub mod facts;
pub mod gcode;
mod lines;
pub mod stl;
pub mod svg;
pub mod threemf;

pub use gcode::{GcodeAnalysis, GcodeAnalyzer, Slicer};
pub use stl::{BoundingBox, StlAnalysis, StlAnalyzer};
pub use svg::{ElementCounts, SvgAnalysis, SvgAnalyzer};
pub use threemf::{Application, Plate, PlateFilament, PrintSettings, ThreeMfAnalysis};

/// The kinds of files a job may be made from. Anything else is refused (415).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileKind {
    Gcode,
    StlBinary,
    StlAscii,
    ThreeMf,
    Svg,
}

/// Why a file of a known kind cannot be analysed (422 at the edge). Never a panic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnalysisError {
    #[error("the file ends early: {0}")]
    Truncated(&'static str),
    #[error("the file declares {declared} triangles but holds {found}")]
    CountMismatch { declared: u64, found: u64 },
    #[error("triangle {triangle} has a coordinate that is not a finite number")]
    NonFiniteCoordinate { triangle: u64 },
    #[error("line {line}: {reason}")]
    Malformed { line: u64, reason: &'static str },
    #[error("line {line} is longer than {max} bytes")]
    LineTooLong { line: u64, max: usize },
    #[error("the file is not a readable ZIP package: {0}")]
    NotAnArchive(String),
    #[error("the package has {entries} entries, more than the {max} accepted")]
    TooManyEntries { entries: usize, max: usize },
    #[error("{entry} cannot be read: {reason}")]
    UnsupportedEntry { entry: String, reason: &'static str },
    #[error("{what} unpacks to more than {limit} bytes")]
    TooLarge { what: String, limit: u64 },
    #[error("the package has no {0}")]
    MissingEntry(String),
    /// Something wrong inside one entry of a package: its XML, or what it refers to.
    #[error("{entry}: {reason}")]
    InPackage { entry: String, reason: String },
}

/// How many bytes of the start of a file `sniff` wants to see: enough for a binary STL's
/// header, a few ASCII facets, an SVG's prolog and a slicer's first lines.
pub const SNIFF_LEN: usize = 8 * 1024;

/// The kind of a file from its first bytes (`head`, ideally `SNIFF_LEN` of them, fewer when
/// the file is shorter) and its total length. `None` is "not a file we take".
pub fn sniff(head: &[u8], total_len: u64) -> Option<FileKind> {
    // A 3MF is a ZIP package; its insides are checked when it is analysed.
    if head.starts_with(b"PK\x03\x04") {
        return Some(FileKind::ThreeMf);
    }
    // Binary before ASCII: many binary headers begin with "solid" too, but only a binary file's
    // length matches the triangle count it declares.
    if is_binary_stl(head, total_len) {
        return Some(FileKind::StlBinary);
    }
    if is_ascii_stl(head) {
        return Some(FileKind::StlAscii);
    }
    if is_svg(head) {
        return Some(FileKind::Svg);
    }
    if is_gcode(head, total_len) {
        return Some(FileKind::Gcode);
    }
    None
}

fn is_binary_stl(head: &[u8], total_len: u64) -> bool {
    let Some(count) = head.get(80..84) else { return false };
    let count = u64::from(u32::from_le_bytes([count[0], count[1], count[2], count[3]]));
    84 + 50 * count == total_len
}

fn is_ascii_stl(head: &[u8]) -> bool {
    let text = skip_whitespace(head);
    let starts_solid = text.len() > 5 && text.starts_with(b"solid") && text[5].is_ascii_whitespace();
    starts_solid && contains(text, b"facet") && contains(text, b"vertex")
}

/// An SVG: after an optional BOM, XML declaration, comments and doctype, the root is `<svg`.
fn is_svg(head: &[u8]) -> bool {
    let mut rest = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    loop {
        rest = skip_whitespace(rest);
        let skip_to = if rest.starts_with(b"<?") {
            b"?>".as_slice()
        } else if rest.starts_with(b"<!--") {
            b"-->".as_slice()
        } else if rest.starts_with(b"<!") {
            // A doctype with an internal subset ends at "]>", a plain one at ">".
            match (find(rest, b"["), find(rest, b">")) {
                (Some(bracket), Some(close)) if bracket < close => b"]>".as_slice(),
                _ => b">".as_slice(),
            }
        } else {
            break;
        };
        match find(rest, skip_to) {
            Some(at) => rest = &rest[at + skip_to.len()..],
            None => return false,
        }
    }
    rest.len() > 4 && rest.starts_with(b"<svg") && (rest[4].is_ascii_whitespace() || rest[4] == b'>')
}

/// G-code: printable text whose every non-blank line is a comment, a command (`G1 X2`,
/// `N10 M104 S200*33`, `T0`) or a firmware macro in capitals (Klipper's `PRINT_START`), with
/// at least one command or a slicer's signature. Strict, so prose and binary are refused.
fn is_gcode(head: &[u8], total_len: u64) -> bool {
    if head.iter().any(|&b| b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r')) {
        return false;
    }
    let text = match std::str::from_utf8(head) {
        Ok(text) => text,
        // The head may cut a multi-byte character in two; anything else is not text.
        Err(error) if error.error_len().is_none() => match std::str::from_utf8(&head[..error.valid_up_to()]) {
            Ok(text) => text,
            Err(_) => return false,
        },
        Err(_) => return false,
    };
    let mut lines: Vec<&str> = text.lines().collect();
    // The head's last line may be cut; judge only whole lines then.
    if (head.len() as u64) < total_len && !text.ends_with('\n') {
        lines.pop();
    }
    let (mut commands, mut signed) = (0usize, false);
    for line in lines.iter().map(|line| line.trim()).filter(|line| !line.is_empty()) {
        if let Some(comment) = line.strip_prefix(';') {
            signed |= gcode::slicer_signature(comment);
        } else if is_command(line) {
            commands += 1;
        } else if !(is_macro(line) || line == "%") {
            return false;
        }
    }
    commands > 0 || signed
}

/// `G1 X10`, `g28`, `M104 S200`, `T1`, `N12 G1 X0*85`, `G1X10Y10`.
fn is_command(line: &str) -> bool {
    let bytes = line.as_bytes();
    let mut at = 0;
    if matches!(bytes.first(), Some(b'N' | b'n')) {
        let digits = bytes[1..].iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            return false;
        }
        at = 1 + digits;
        at += bytes[at..].iter().take_while(|b| **b == b' ').count();
    }
    if !matches!(bytes.get(at), Some(b'G' | b'M' | b'T' | b'g' | b'm' | b't')) {
        return false;
    }
    at += 1;
    let digits = bytes[at..].iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 {
        return false;
    }
    at += digits;
    // A subcode: `G29.1`.
    if bytes.get(at) == Some(&b'.') {
        at += 1 + bytes[at + 1..].iter().take_while(|b| b.is_ascii_digit()).count();
    }
    match bytes.get(at) {
        None => true,
        Some(b) => b.is_ascii_whitespace() || b.is_ascii_alphabetic() || matches!(b, b';' | b'*'),
    }
}

/// A firmware macro as slicers emit for Klipper: `PRINT_START`, `SET_PRINT_STATS_INFO TOTAL_LAYER=5`.
fn is_macro(line: &str) -> bool {
    let name = line.split_whitespace().next().unwrap_or("");
    name.len() >= 2
        && name.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        && name.as_bytes()[0].is_ascii_uppercase()
}

fn skip_whitespace(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().take_while(|b| b.is_ascii_whitespace()).count();
    &bytes[start..]
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|window| window == needle)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    find(haystack, needle).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn binary_header(count: u32, header_text: &[u8]) -> Vec<u8> {
        let mut file = vec![0u8; 80];
        file[..header_text.len()].copy_from_slice(header_text);
        file.extend_from_slice(&count.to_le_bytes());
        file.resize(84 + 50 * count as usize, 0);
        file
    }

    #[test]
    fn zip_is_3mf() {
        assert_eq!(sniff(b"PK\x03\x04\x14\x00\x00\x00", 1000), Some(FileKind::ThreeMf));
    }

    #[test]
    fn binary_stl_wins_over_a_header_saying_solid() {
        let file = binary_header(2, b"solid facet vertex exported by a CAD tool");
        assert_eq!(sniff(&file, file.len() as u64), Some(FileKind::StlBinary));
        // A binary header whose count does not match the length is not a binary STL, and
        // with nothing but zeros after "solid" and no facets it is not ASCII either.
        let file = binary_header(2, b"solid part");
        assert_eq!(sniff(&file, file.len() as u64 + 1), None);
    }

    #[test]
    fn ascii_stl_needs_facets() {
        let text = b"  solid cube\n  facet normal 0 0 1\n    outer loop\n      vertex 0 0 0\n";
        assert_eq!(sniff(text, 10_000), Some(FileKind::StlAscii));
        assert_eq!(sniff(b"solid ground for an argument\n", 29), None);
        assert_eq!(sniff(b"solidarity facet vertex", 23), None);
    }

    #[test]
    fn svg_after_prolog_comments_and_doctype() {
        let svg = b"\xEF\xBB\xBF<?xml version=\"1.0\"?>\n<!-- made by hand -->\n<!DOCTYPE svg PUBLIC \"-//W3C//DTD SVG 1.1//EN\" \"x.dtd\" [ <!ENTITY a \"b\"> ]>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"10mm\"/>";
        assert_eq!(sniff(svg, svg.len() as u64), Some(FileKind::Svg));
        assert_eq!(sniff(b"<svg>", 5), Some(FileKind::Svg));
        assert_eq!(sniff(b"<?xml version=\"1.0\"?><html>", 27), None);
        assert_eq!(sniff(b"<svgfoo>", 8), None);
        assert_eq!(sniff(b"<!-- never closed <svg>", 23), None);
    }

    #[test]
    fn gcode_by_its_lines() {
        let prusa = b"; generated by PrusaSlicer 2.7.1+win64 on 2024-01-01 at 10:00:00 UTC\n\n; external perimeters extrusion width = 0.45mm\n\nM73 P0 R62\nM201 X1000 Y1000\nG28 ; home\nG1 X10.5 Y20 F3000\nPRINT_START EXTRUDER=215\nT0\n";
        assert_eq!(sniff(prusa, prusa.len() as u64), Some(FileKind::Gcode));
        assert_eq!(sniff(b"N10 G1X10Y10*85\ng29.1\n%\n", 24), Some(FileKind::Gcode));
        // Only comments: taken when a slicer signed them (a long thumbnail block can fill the head).
        let header = b"; HEADER_BLOCK_START\n; BambuStudio 01.08.04.51\n; thumbnail begin 300x300 12345\n; iVBORw0KGgo";
        assert_eq!(sniff(header, 1_000_000), Some(FileKind::Gcode));
        assert_eq!(sniff(b"; just a note\n; another\n", 24), None);
        assert_eq!(sniff(b"Hello world\nG1 X1\n", 18), None);
        assert_eq!(sniff(b"Good morning\n", 13), None);
        assert_eq!(sniff(b"G1 X1\n\x00\x01\x02", 9), None);
        assert_eq!(sniff(b"", 0), None);
        // A head cut inside a line or a character still reads: the cut line is not judged.
        assert_eq!(sniff("G1 X1\nG1 X2 ; é".as_bytes().split_at(15).0, 100), Some(FileKind::Gcode));
        assert_eq!(sniff(b"G1 X1\nHello wor", 100), Some(FileKind::Gcode));
        assert_eq!(sniff(b"G1 X1\nHello world", 17), None, "the whole file: its last line is judged");
    }

    proptest! {
        #[test]
        fn sniff_never_panics(head in proptest::collection::vec(any::<u8>(), 0..300), extra in 0u64..1000) {
            let _ = sniff(&head, head.len() as u64 + extra);
        }

        #[test]
        fn random_bytes_are_rarely_anything(head in proptest::collection::vec(128u8.., 100..300)) {
            // High bytes only: no text, no ZIP magic, no binary STL (too short for its count).
            prop_assert_eq!(sniff(&head, head.len() as u64 + 1), None);
        }
    }
}
