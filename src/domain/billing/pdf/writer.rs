//! Pages as a PDF file. Each face is embedded as a CIDFontType2 (Identity-H, two bytes a
//! glyph) holding only the glyphs the document uses (`subsetter`), with its widths and a
//! ToUnicode map from each glyph back to its character: without that map, readers show the
//! text but cannot copy or extract it (`pdftotext` gives nothing). Streams are deflated.

use std::collections::BTreeMap;
use std::io::Write;

use flate2::write::ZlibEncoder;
use flate2::Compression;
use pdf_writer::types::{CidFontType, FontFlags, SystemInfo};
use pdf_writer::{Content, Filter, Finish, Name, Pdf, Rect, Ref, Str, TextStr};
use subsetter::GlyphRemapper;

use super::fonts::{Font, Fonts, Style};
use super::layout::{Ink, Item, Page, PAGE_HEIGHT, PAGE_WIDTH};

/// Hands out the numbers of indirect objects.
struct Refs(i32);

impl Refs {
    fn next(&mut self) -> Ref {
        self.0 += 1;
        Ref::new(self.0)
    }
}

fn deflate(data: &[u8]) -> Vec<u8> {
    let mut encoder = ZlibEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(data).expect("writing into a Vec cannot fail");
    encoder.finish().expect("writing into a Vec cannot fail")
}

/// The glyphs of one face that a document uses, renumbered for its subset, and the
/// character each stands for.
struct UsedGlyphs {
    remapper: GlyphRemapper,
    /// New glyph id to its character (the first seen, for glyphs shared by characters).
    chars: BTreeMap<u16, char>,
}

impl UsedGlyphs {
    fn new() -> UsedGlyphs {
        UsedGlyphs { remapper: GlyphRemapper::new(), chars: BTreeMap::new() }
    }

    /// The text as the subset's glyph ids, two bytes each (Identity-H).
    fn encode(&mut self, font: &Font, text: &str) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(text.len() * 2);
        for c in text.chars() {
            let glyph = self.remapper.remap(font.glyph(c));
            self.chars.entry(glyph).or_insert(c);
            bytes.extend_from_slice(&glyph.to_be_bytes());
        }
        bytes
    }
}

fn ink(content: &mut Content, ink: Ink) {
    match ink {
        Ink::Black => content.set_fill_gray(0.0),
        Ink::Grey => content.set_fill_gray(0.45),
        Ink::Red => content.set_fill_rgb(0.75, 0.05, 0.05),
    };
}

/// A page's content stream.
fn content_of(page: &Page, fonts: &Fonts, used: &mut BTreeMap<Style, UsedGlyphs>) -> Vec<u8> {
    let mut content = Content::new();
    content.set_stroke_gray(0.6).set_line_width(0.6);
    for item in &page.items {
        match item {
            Item::Text(t) => {
                let glyphs = used.entry(t.style).or_insert_with(UsedGlyphs::new);
                let bytes = glyphs.encode(fonts.get(t.style), &t.text);
                ink(&mut content, t.ink);
                content.begin_text();
                content.set_font(Name(t.style.resource_name()), t.size);
                content.next_line(t.x, t.y);
                content.show(Str(&bytes));
                content.end_text();
            }
            Item::Rule { x1, x2, y } => {
                content.move_to(*x1, *y).line_to(*x2, *y).stroke();
            }
        }
    }
    content.finish().into_vec()
}

/// Writes one face: the Type0 font pages refer to, its CID font, descriptor, subset and
/// ToUnicode map.
fn write_font(pdf: &mut Pdf, refs: &mut Refs, font_ref: Ref, style: Style, font: &Font, used: &UsedGlyphs) {
    let (cid_ref, descriptor_ref, file_ref, cmap_ref) = (refs.next(), refs.next(), refs.next(), refs.next());
    // A subset's name is a tag of six capitals, '+', the face's name (PDF 9.6.4).
    let tag = match style {
        Style::Regular => "MKRCVA",
        Style::Bold => "MKRCVB",
    };
    let base_font = format!("{tag}+{}", style.postscript_name());
    let system = SystemInfo { registry: Str(b"Adobe"), ordering: Str(b"Identity"), supplement: 0 };

    pdf.type0_font(font_ref)
        .base_font(Name(base_font.as_bytes()))
        .encoding_predefined(Name(b"Identity-H"))
        .descendant_font(cid_ref)
        .to_unicode(cmap_ref);

    let widths: Vec<f32> = used.remapper.remapped_gids().map(|g| font.advance(g)).collect();
    let mut cid = pdf.cid_font(cid_ref);
    cid.subtype(CidFontType::Type2)
        .base_font(Name(base_font.as_bytes()))
        .system_info(system)
        .font_descriptor(descriptor_ref)
        .cid_to_gid_map_predefined(Name(b"Identity"));
    cid.widths().consecutive(0, widths);
    cid.finish();

    let m = font.metrics();
    pdf.font_descriptor(descriptor_ref)
        .name(Name(base_font.as_bytes()))
        .flags(FontFlags::SYMBOLIC)
        .bbox(Rect::new(m.bbox[0], m.bbox[1], m.bbox[2], m.bbox[3]))
        .italic_angle(0.0)
        .ascent(m.ascent)
        .descent(m.descent)
        .cap_height(m.cap_height)
        .stem_v(if style == Style::Bold { 140.0 } else { 80.0 })
        .font_file2(file_ref);

    let subset = subsetter::subset(font.data(), 0, &used.remapper)
        .expect("the fonts compiled in can be subset (the unit tests render every glyph they map)");
    let packed = deflate(&subset);
    pdf.stream(file_ref, &packed)
        .filter(Filter::FlateDecode)
        .pair(Name(b"Length1"), i32::try_from(subset.len()).expect("a subset is far below 2 GB"));

    let mut cmap = pdf_writer::types::UnicodeCmap::new(Name(b"Custom"), system);
    for (glyph, c) in &used.chars {
        cmap.pair(*glyph, *c);
    }
    let cmap = deflate(&cmap.finish());
    pdf.cmap(cmap_ref, &cmap).filter(Filter::FlateDecode);
}

/// The PDF of these pages.
pub fn write(pages: &[Page], fonts: &Fonts, title: &str) -> Vec<u8> {
    let mut pdf = Pdf::new();
    let mut refs = Refs(0);
    let (catalog_ref, tree_ref, info_ref) = (refs.next(), refs.next(), refs.next());
    let font_refs: Vec<(Style, Ref)> = Style::ALL.iter().map(|s| (*s, refs.next())).collect();

    pdf.catalog(catalog_ref).pages(tree_ref);
    pdf.document_info(info_ref).title(TextStr(title)).producer(TextStr("makrcave"));

    let mut used: BTreeMap<Style, UsedGlyphs> = Style::ALL.iter().map(|s| (*s, UsedGlyphs::new())).collect();
    let mut page_refs = Vec::with_capacity(pages.len());
    for page in pages {
        let (page_ref, content_ref) = (refs.next(), refs.next());
        page_refs.push(page_ref);
        let mut p = pdf.page(page_ref);
        p.media_box(Rect::new(0.0, 0.0, PAGE_WIDTH, PAGE_HEIGHT)).parent(tree_ref).contents(content_ref);
        let mut resources = p.resources();
        let mut names = resources.fonts();
        for (style, font_ref) in &font_refs {
            names.pair(Name(style.resource_name()), *font_ref);
        }
        names.finish();
        resources.finish();
        p.finish();
        let content = deflate(&content_of(page, fonts, &mut used));
        pdf.stream(content_ref, &content).filter(Filter::FlateDecode);
    }
    let count = i32::try_from(page_refs.len()).expect("an invoice has far fewer pages than 2^31");
    pdf.pages(tree_ref).kids(page_refs).count(count);

    for (style, font_ref) in &font_refs {
        write_font(&mut pdf, &mut refs, *font_ref, *style, fonts.get(*style), &used[style]);
    }
    pdf.finish()
}
