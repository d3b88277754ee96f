use super::*;
use crate::domain::job_files::{sniff, FileKind};
use proptest::prelude::*;
use std::f64::consts::PI;

fn analyse(file: &[u8], chunk: usize) -> Result<SvgAnalysis, AnalysisError> {
    let mut analyzer = SvgAnalyzer::new();
    for piece in file.chunks(chunk.max(1)) {
        analyzer.feed(piece)?;
    }
    analyzer.finish()
}

/// Whole, one byte at a time and in odd chunks: the same answer, and sniffed as SVG.
fn analyse_every_way(file: &str) -> SvgAnalysis {
    assert_eq!(sniff(file.as_bytes(), file.len() as u64), Some(FileKind::Svg));
    let whole = analyse(file.as_bytes(), file.len()).unwrap();
    assert_eq!(analyse(file.as_bytes(), 1).unwrap(), whole);
    assert_eq!(analyse(file.as_bytes(), 13).unwrap(), whole);
    whole
}

fn assert_close(actual: f64, expected: f64, tolerance: f64) {
    assert!((actual - expected).abs() <= tolerance * expected.abs().max(1.0), "{actual} against {expected}");
}

/// As Inkscape saves a plain SVG: a page in mm with a matching viewBox, its own namespaces and
/// elements, shapes in `<defs>` that are not drawn, and layers as transformed groups.
const INKSCAPE: &str = r##"<?xml version="1.0" encoding="UTF-8" standalone="no"?>
<!-- Created with Inkscape (http://www.inkscape.org/) -->

<svg
   width="210mm"
   height="297mm"
   viewBox="0 0 210 297"
   version="1.1"
   id="svg1"
   inkscape:version="1.3.2 (091e20e, 2023-11-25)"
   sodipodi:docname="box.svg"
   xmlns:inkscape="http://www.inkscape.org/namespaces/inkscape"
   xmlns:sodipodi="http://sodipodi.sourceforge.net/DTD/sodipodi-0.dtd"
   xmlns="http://www.w3.org/2000/svg"
   xmlns:svg="http://www.w3.org/2000/svg">
  <sodipodi:namedview
     id="namedview1"
     pagecolor="#ffffff"
     inkscape:document-units="mm" />
  <defs
     id="defs1">
    <path id="notch" d="M 0,0 H 1000" />
    <clipPath id="clip"><rect width="5000" height="5000" /></clipPath>
  </defs>
  <g
     inkscape:label="Layer 1"
     inkscape:groupmode="layer"
     id="layer1"
     transform="translate(10,10)">
    <rect
       style="fill:none;stroke:#ff0000;stroke-width:0.1"
       id="rect1"
       width="100"
       height="50"
       x="0"
       y="0" />
    <circle
       style="fill:none;stroke:#ff0000;stroke-width:0.1"
       id="path1"
       cx="150"
       cy="25"
       r="10" />
    <path
       style="fill:none;stroke:#0000ff;stroke-width:0.1"
       d="m 20,100 h 10 v 10 h -10 z"
       id="path2" />
    <text x="20" y="150" style="font-size:4.2px">Box v2 &amp; lid</text>
  </g>
</svg>
"##;

#[test]
fn an_inkscape_drawing() {
    let analysis = analyse_every_way(INKSCAPE);
    assert_close(analysis.width_mm.unwrap(), 210.0, 1e-12);
    assert_close(analysis.height_mm.unwrap(), 297.0, 1e-12);
    assert_close(analysis.cut_length_mm, 300.0 + 20.0 * PI + 40.0, 1e-6);
    let counts = analysis.elements;
    assert_eq!((counts.rects, counts.circles, counts.paths, counts.groups, counts.texts), (1, 1, 1, 1, 1));
    assert!(analysis.measured_everything());
    assert!(!analysis.unapplied_transforms);
}

#[test]
fn page_units() {
    // Inches with a viewBox of 100 user units per inch.
    let svg = r#"<svg xmlns="http://www.w3.org/2000/svg" width="4in" height="2in" viewBox="0 0 400 200"><line x1="0" y1="0" x2="100" y2="0"/></svg>"#;
    let analysis = analyse_every_way(svg);
    assert_close(analysis.width_mm.unwrap(), 101.6, 1e-12);
    assert_close(analysis.cut_length_mm, 25.4, 1e-12);
    // No viewBox: user units are pixels at 96 dpi, unitless sizes too.
    let svg = r#"<svg width="96" height="48pt"><line x1="0" y1="0" x2="96" y2="0"/></svg>"#;
    let analysis = analyse_every_way(svg);
    assert_close(analysis.width_mm.unwrap(), 25.4, 1e-12);
    assert_close(analysis.height_mm.unwrap(), 48.0 * 25.4 / 72.0, 1e-12);
    assert_close(analysis.cut_length_mm, 25.4, 1e-12);
    // Only a viewBox (as Illustrator often saves): the page at 96 dpi.
    let svg = r#"<svg viewBox="0 0 960 480"><rect x="10" y="10" width="96" height="96"/></svg>"#;
    let analysis = analyse_every_way(svg);
    assert_close(analysis.width_mm.unwrap(), 254.0, 1e-12);
    assert_close(analysis.cut_length_mm, 4.0 * 25.4, 1e-12);
    // Shapes may carry units of their own, which are user units at 96 dpi, then scaled by the
    // viewBox like any coordinate (here one user unit is one millimetre on the page).
    let svg = r#"<svg width="100mm" height="100mm" viewBox="0 0 100 100"><rect width="1cm" height="10mm"/></svg>"#;
    assert_close(analyse_every_way(svg).cut_length_mm, 4.0 * 10.0 / (25.4 / 96.0), 1e-9);
    // Nothing that sizes the page.
    let analysis = analyse_every_way(r#"<svg width="100%"><line x2="96"/></svg>"#);
    assert_eq!((analysis.width_mm, analysis.height_mm), (None, None));
    assert_close(analysis.cut_length_mm, 25.4, 1e-12);
}

#[test]
fn transforms_are_applied_all_the_way_down() {
    let svg = r#"<svg width="100mm" height="100mm" viewBox="0 0 100 100">
        <g transform="scale(2)"><g transform="rotate(30) translate(5 5)">
            <path d="M0 0 L10 0"/>
            <path transform="scale(3, 1)" d="M0 0 L0 10"/>
            <path d="M0 0 L10 0" transform="scale(3, 1)"/>
            <polygon points="0,0 10,0 10,10" transform="skewX(45)"/>
        </g></g>
        <svg x="50" y="50" width="10" height="10" viewBox="0 0 1 1"><line x2="1"/></svg>
    </svg>"#;
    let analysis = analyse_every_way(svg);
    // 2·10, 2·10 (scaled across, drawn along), 2·30 (a transform after the path data), the
    // skewed triangle's sides 10, √2·10 and 10·√((1+1)²+1²)... all doubled, and 10 from the
    // nested viewport's tenfold viewBox.
    let skewed = 10.0 + 10.0 * 2f64.sqrt() + (20.0f64.powi(2) + 10.0f64.powi(2)).sqrt();
    assert_close(analysis.cut_length_mm, 20.0 + 20.0 + 60.0 + 2.0 * skewed + 10.0, 1e-3);
}

#[test]
fn every_path_command() {
    let path = |d: &str| {
        let svg = format!(r#"<svg viewBox="0 0 96 96" width="96px" height="96px"><path d="{d}"/></svg>"#);
        analyse_every_way(&svg).cut_length_mm / (25.4 / 96.0)
    };
    assert_close(path("M0 0 L3 4 l3 4 H12 h-6 V0 v8 Z"), 5.0 + 5.0 + 6.0 + 6.0 + 8.0 + 8.0 + 10.0, 1e-9);
    assert_close(path("M0 0 C0 0 10 0 10 0 S20 0 20 0 c0 0 5 0 5 0 s5 0 5 0"), 30.0, 1e-9);
    assert_close(path("M0 0 Q5 0 10 0 T20 0 q5 0 5 0 t5 0"), 30.0, 1e-9);
    assert_close(path("M0 5 A5 5 0 1 1 10 5 a5 5 0 1 1 -10 0"), 10.0 * PI, 1e-6);
    assert_close(path("M0 0 L10 0 M0 10 l10 0 z"), 30.0, 1e-9);
}

#[test]
fn basic_shapes() {
    let shapes = r#"<svg width="96px" height="96px" viewBox="0 0 96 96">
        <rect x="0" y="0" width="100" height="50" rx="10"/>
        <rect width="40" height="20" ry="100"/>
        <ellipse cx="0" cy="0" rx="30" ry="10"/>
        <ellipse rx="5"/>
        <polyline points="0,0 3,4 6,0"/>
        <rect width="-5" height="10"/><circle r="0"/>
    </svg>"#;
    let analysis = analyse_every_way(shapes);
    let px = 25.4 / 96.0;
    let ellipse = {
        let (a, b) = (30.0f64, 10.0f64);
        let h = ((a - b) / (a + b)).powi(2);
        PI * (a + b) * (1.0 + 3.0 * h / (10.0 + (4.0 - 3.0 * h).sqrt()))
    };
    // A rounded rect: straight sides less the corners, plus a whole circle of the corners.
    let rounded = 2.0 * 80.0 + 2.0 * 30.0 + 20.0 * PI;
    // rx follows ry (100), then each is clamped to half its side: an ellipse of 20 by 10.
    let (a, b) = (20.0f64, 10.0f64);
    let h = ((a - b) / (a + b)).powi(2);
    let clamped = PI * (a + b) * (1.0 + 3.0 * h / (10.0 + (4.0 - 3.0 * h).sqrt()));
    let expected = rounded + clamped + ellipse + 10.0 * PI + 10.0;
    assert_close(analysis.cut_length_mm / px, expected, 1e-5);
    let counts = analysis.elements;
    assert_eq!((counts.rects, counts.ellipses, counts.polylines, counts.circles), (3, 2, 1, 1));
}

#[test]
fn what_is_not_measured_is_said() {
    let svg = r##"<svg width="100mm" height="50mm" viewBox="0 0 100 50">
        <symbol id="s"><circle r="5"/></symbol>
        <use href="#s" x="10"/>
        <rect width="50%" height="50%"/>
        <circle r="1em"/>
        <rect width="10" height="10" style="transform: rotate(45deg)"/>
        <image href="photo.png" width="10" height="10"/>
    </svg>"##;
    let analysis = analyse_every_way(svg);
    // The half-size rect (50 × 25 of the viewBox) and the 10 × 10 one.
    assert_close(analysis.cut_length_mm, 150.0 + 40.0, 1e-9);
    assert_eq!((analysis.elements.uses, analysis.elements.images, analysis.elements.circles), (1, 1, 1));
    assert_eq!(analysis.unmeasured_shapes, 1);
    assert!(analysis.unapplied_transforms);
    assert!(!analysis.measured_everything());
    // Percentages without any viewport are not guessed.
    let analysis = analyse_every_way(r#"<svg><rect width="50%" height="10"/></svg>"#);
    assert_eq!((analysis.unmeasured_shapes, analysis.cut_length_mm), (1, 0.0));
}

#[test]
fn entities_and_references() {
    // Illustrator declares its namespaces as entities; a path's data may use references.
    let svg = "<?xml version=\"1.0\"?>\n<!DOCTYPE svg [ <!ENTITY ns_svg \"http://www.w3.org/2000/svg\"> ]>\n\
        <svg xmlns=\"&ns_svg;\" width=\"96px\" height=\"96px\"><path d=\"M0&#32;0&#x20;L&#51; &#x34;\"/></svg>";
    let analysis = analyse(svg.as_bytes(), 5);
    assert_close(analysis.unwrap().cut_length_mm, 5.0 * 25.4 / 96.0, 1e-12);
    let undeclared = "<svg><path d=\"M0 0 L&ten; 0\"/></svg>";
    assert_eq!(
        analyse(undeclared.as_bytes(), 7),
        Err(AnalysisError::Malformed { line: 1, reason: "path data uses an entity that is not expanded" })
    );
}

#[test]
fn malformed_files_are_errors_with_lines() {
    let cases: [(&str, &str); 9] = [
        ("<svg>\n<path d=\"M0 0 L10\"/></svg>", "a path command is missing numbers"),
        ("<svg>\n<path d=\"L10 10\"/></svg>", "path data must begin with a moveto (M)"),
        ("<svg>\n<g transform=\"spin(3)\"/></svg>", "a transform SVG does not know"),
        ("\n<html></html>", "the root element is not <svg>"),
        ("<svg>\n<rect width=\"ten\" height=\"1\"/></svg>", "a length is not a number"),
        ("<svg>\n<path d=\"M0 0\" d=\"M1 1\"/></svg>", "an attribute is given twice"),
        ("<svg\nviewBox=\"0 0 -1 1\"></svg>", "a viewBox has a negative size"),
        (
            "<svg>\n<path d=\"M0 0 L1e308 0 L-1e308 0 L1e308 0\" transform=\"scale(1e10)\"/></svg>",
            "a shape's size is out of range",
        ),
        ("<svg>\n<polygon points=\"1 2 3\"/></svg>", "a point list has an odd count of numbers"),
    ];
    for (svg, reason) in cases {
        assert_eq!(analyse(svg.as_bytes(), 5), Err(AnalysisError::Malformed { line: 2, reason }), "{svg}");
    }
    assert_eq!(analyse(b"<svg><g>", 3), Err(AnalysisError::Truncated("inside an element")));
    assert_eq!(analyse(b"", 3), Err(AnalysisError::Malformed { line: 1, reason: "the document has no root element" }));
}

#[test]
fn a_huge_path_streams_in_bounded_memory() {
    // Ten megabytes of one `d`, fed in 64 KiB chunks: nothing holds it (the tokenizer and the
    // path parser keep a number at a time), and the length adds up.
    let mut file = b"<svg width=\"96px\" height=\"96px\"><path d=\"M0 0".to_vec();
    let step = b" l1 0 l0 1 l-1 0 l0 -1";
    let repeats = 10 * 1024 * 1024 / step.len();
    for _ in 0..repeats {
        file.extend_from_slice(step);
    }
    file.extend_from_slice(b"\"/></svg>");
    let analysis = analyse(&file, 64 * 1024).unwrap();
    assert_close(analysis.cut_length_mm, 4.0 * repeats as f64 * 25.4 / 96.0, 1e-9);
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600), chunk in 1usize..64) {
        let _ = analyse(&bytes, chunk);
    }

    #[test]
    fn svg_like_text_never_panics(text in "<svg( [a-z]{1,3}=\"[-0-9a-zA-Z .,()%#&;]{0,20}\"){0,3}>(<(path|rect|g|circle|polygon) [a-z]{1,6}=\"[-0-9MLHVCSQTAZmlhvcsqtaz .,e]{0,30}\"/?>){0,6}(</g>)?</svg>") {
        let _ = analyse(text.as_bytes(), 7);
    }

    #[test]
    fn mutated_files_never_panic(cut in 0usize..2000, byte in any::<u8>(), at in 0usize..2000, chunk in 1usize..97) {
        let mut file = INKSCAPE.as_bytes().to_vec();
        let at = at % file.len();
        file[at] = byte;
        file.truncate(cut.min(file.len()));
        let _ = analyse(&file, chunk);
    }

    #[test]
    fn chunking_never_changes_the_answer(cuts in proptest::collection::vec(0usize..INKSCAPE.len(), 0..12)) {
        let mut cuts = cuts;
        cuts.sort_unstable();
        let mut analyzer = SvgAnalyzer::new();
        let mut from = 0;
        for cut in cuts.into_iter().chain([INKSCAPE.len()]) {
            analyzer.feed(&INKSCAPE.as_bytes()[from..cut]).unwrap();
            from = cut;
        }
        prop_assert_eq!(analyzer.finish().unwrap(), analyse(INKSCAPE.as_bytes(), INKSCAPE.len()).unwrap());
    }
}
