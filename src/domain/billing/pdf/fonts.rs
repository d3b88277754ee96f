//! The faces the PDFs are written in: DejaVu Sans and DejaVu Sans Bold, cut down to Latin,
//! Greek and Cyrillic (`assets/fonts/README.md`), compiled into the program so that a PDF
//! renders the same everywhere and no font is looked up at run time. Layout measures text
//! with them; the writer embeds the glyphs a document uses.

use ttf_parser::{Face, GlyphId};

const REGULAR: &[u8] = include_bytes!("../../../../assets/fonts/DejaVuSans-LGC.ttf");
const BOLD: &[u8] = include_bytes!("../../../../assets/fonts/DejaVuSans-Bold-LGC.ttf");

/// The character shown for one the faces lack (every face here has it).
const REPLACEMENT: char = '?';

/// Which face a text is set in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Style {
    Regular,
    Bold,
}

impl Style {
    pub const ALL: [Style; 2] = [Style::Regular, Style::Bold];

    fn data(self) -> &'static [u8] {
        match self {
            Self::Regular => REGULAR,
            Self::Bold => BOLD,
        }
    }

    /// The face's PostScript name, as the PDF names it (after its subset tag).
    pub fn postscript_name(self) -> &'static str {
        match self {
            Self::Regular => "DejaVuSans",
            Self::Bold => "DejaVuSans-Bold",
        }
    }

    /// The name pages use for the face in their resources.
    pub fn resource_name(self) -> &'static [u8] {
        match self {
            Self::Regular => b"F1",
            Self::Bold => b"F2",
        }
    }
}

/// A face's vertical metrics and bounding box, in thousandths of the font size (the PDF's
/// glyph space).
#[derive(Debug, Clone, Copy)]
pub struct Metrics {
    pub ascent: f32,
    pub descent: f32,
    pub cap_height: f32,
    pub bbox: [f32; 4],
}

/// One parsed face.
pub struct Font {
    face: Face<'static>,
    data: &'static [u8],
    /// Font units in an em: advances are scaled by 1000 / this.
    units_per_em: f32,
}

impl Font {
    fn load(style: Style) -> Font {
        let data = style.data();
        let face =
            Face::parse(data, 0).expect("the fonts compiled in parse (fonts_load_and_cover_the_scripts tests it)");
        let units_per_em = f32::from(face.units_per_em());
        Font { face, data, units_per_em }
    }

    /// The font file, to embed (subset).
    pub fn data(&self) -> &'static [u8] {
        self.data
    }

    /// The glyph of a character the face has (see [`Fonts::printable`]).
    pub fn glyph(&self, c: char) -> u16 {
        self.face.glyph_index(c).or_else(|| self.face.glyph_index(REPLACEMENT)).map_or(0, |g| g.0)
    }

    /// A glyph's advance in thousandths of the font size.
    pub fn advance(&self, glyph: u16) -> f32 {
        f32::from(self.face.glyph_hor_advance(GlyphId(glyph)).unwrap_or(0)) * 1000.0 / self.units_per_em
    }

    /// The width of a text at a size, in points.
    pub fn width(&self, text: &str, size: f32) -> f32 {
        text.chars().map(|c| self.advance(self.glyph(c))).sum::<f32>() * size / 1000.0
    }

    pub fn metrics(&self) -> Metrics {
        let scale = |v: i16| f32::from(v) * 1000.0 / self.units_per_em;
        let b = self.face.global_bounding_box();
        Metrics {
            ascent: scale(self.face.ascender()),
            descent: scale(self.face.descender()),
            cap_height: scale(self.face.capital_height().unwrap_or(self.face.ascender())),
            bbox: [scale(b.x_min), scale(b.y_min), scale(b.x_max), scale(b.y_max)],
        }
    }
}

/// Both faces, parsed once per document.
pub struct Fonts {
    regular: Font,
    bold: Font,
}

impl Fonts {
    pub fn load() -> Fonts {
        Fonts { regular: Font::load(Style::Regular), bold: Font::load(Style::Bold) }
    }

    pub fn get(&self, style: Style) -> &Font {
        match style {
            Style::Regular => &self.regular,
            Style::Bold => &self.bold,
        }
    }

    /// The text as it can be shown: control characters (tabs, line breaks) become spaces,
    /// characters neither face has become `?`, so that what is measured is what is drawn
    /// and what a reader extracts.
    pub fn printable(&self, text: &str) -> String {
        text.chars()
            .map(|c| match c {
                c if c.is_control() => ' ',
                c if self.regular.face.glyph_index(c).is_some() && self.bold.face.glyph_index(c).is_some() => c,
                _ => REPLACEMENT,
            })
            .collect()
    }
}
