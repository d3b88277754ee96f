//! A push XML tokenizer: fed chunks of any size, it hands a `Handler` element starts, their
//! attributes and element ends, and checks that the document is well formed (one root, tags
//! that nest and match, quoted attributes, closed comments, CDATA, instructions, doctype).
//!
//! Why not quick-xml here: a pull parser over a buffer holds a whole tag, and an SVG path's
//! `d` attribute can be megabytes long. This tokenizer hands attribute values on in pieces as
//! they arrive, with the five XML entities and character references decoded, so the caller
//! can parse a value while it streams. What it holds is bounded: a name of at most
//! `MAX_NAME` bytes per open element, at most `MAX_DEPTH` of them, and an entity reference.
//!
//! It does not validate names character by character nor resolve namespaces, and it does
//! not expand entities a doctype declares: a value that uses one reaches the handler as
//! `Piece::UnknownEntity`, and the handler decides whether that value mattered.

use super::super::AnalysisError;

/// Element names are short (`linearGradient` is among the longest); longer is not SVG.
pub const MAX_NAME: usize = 128;
/// Deeper nesting is not a drawing; the bound keeps the open-element stack small.
pub const MAX_DEPTH: usize = 256;
/// `&#x10FFFF;` is the longest reference we decode; a named one longer is not expanded anyway.
const MAX_ENTITY: usize = 32;

/// What the tokenizer tells its handler. A `&'static str` error is the reason; the tokenizer
/// adds the line (`AnalysisError::Malformed`).
pub trait Handler {
    fn start_element(&mut self, name: &[u8]) -> Result<(), &'static str>;
    fn attribute(&mut self, name: &[u8]) -> Result<(), &'static str>;
    fn attribute_value(&mut self, piece: Piece<'_>) -> Result<(), &'static str>;
    fn attribute_end(&mut self) -> Result<(), &'static str>;
    /// The start tag is complete; `self_closing` for `<x/>`, which gets no `end_element`.
    fn start_tag_end(&mut self, self_closing: bool) -> Result<(), &'static str>;
    fn end_element(&mut self) -> Result<(), &'static str>;
}

pub enum Piece<'a> {
    Text(&'a [u8]),
    /// A reference to an entity only a doctype could define, such as Illustrator's `&ns_svg;`.
    UnknownEntity,
}

#[derive(Default)]
pub struct Tokenizer {
    state: State,
    /// The name being read (an element's or an attribute's), or the start of a `<!` construct.
    name: Vec<u8>,
    /// The names of the open elements, outermost first.
    open: Vec<Vec<u8>>,
    entity: Vec<u8>,
    root_seen: bool,
    /// 1-based, counted as newlines pass.
    line: u64,
    /// How many bytes of a leading byte-order mark were passed; `BOM.len() + 1` once the
    /// document is past the point where one may stand.
    bom: usize,
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

#[derive(Default, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between tags.
    #[default]
    Text,
    /// After `<`.
    Open,
    /// After `<!`, collecting the bytes that tell a comment, CDATA or a doctype apart.
    Bang,
    /// Inside `<!-- -->`; how many `-` just passed.
    Comment {
        dashes: u8,
    },
    /// Inside `<![CDATA[ ]]>`; how many `]` just passed.
    Cdata {
        brackets: u8,
    },
    /// Inside `<!DOCTYPE`: the depth of `[ ]` and the quote we are inside, if any.
    Doctype {
        depth: u32,
        quote: u8,
    },
    /// Inside `<? ?>`; whether a `?` just passed.
    Instruction {
        question: bool,
    },
    StartName,
    EndName,
    AfterEndName,
    /// Inside a start tag, between attributes.
    InTag {
        space: bool,
    },
    AttributeName,
    BeforeEquals,
    BeforeValue,
    Value {
        quote: u8,
    },
    Entity {
        quote: u8,
    },
    SelfClosing,
}

impl Tokenizer {
    pub fn new() -> Tokenizer {
        Tokenizer { line: 1, ..Tokenizer::default() }
    }

    pub fn feed(&mut self, chunk: &[u8], handler: &mut impl Handler) -> Result<(), AnalysisError> {
        let mut at = 0;
        // A UTF-8 byte-order mark may open the document, and may be cut across chunks.
        while self.bom < BOM.len() && at < chunk.len() {
            if chunk[at] != BOM[self.bom] {
                if self.bom > 0 {
                    return Err(self.error("text before the root element"));
                }
                break;
            }
            self.bom += 1;
            at += 1;
        }
        if at < chunk.len() {
            self.bom = BOM.len() + 1;
        }
        while at < chunk.len() {
            // Runs of plain bytes in text and values go in one step, not byte by byte.
            let run = match self.state {
                State::Text => run_until(&chunk[at..], |b| b == b'<'),
                State::Value { quote } => run_until(&chunk[at..], |b| b == quote || b == b'&' || b == b'<'),
                _ => 0,
            };
            if run > 0 {
                let piece = &chunk[at..at + run];
                self.line += piece.iter().filter(|&&b| b == b'\n').count() as u64;
                match self.state {
                    State::Value { .. } => {
                        handler.attribute_value(Piece::Text(piece)).map_err(|reason| self.error(reason))?
                    }
                    _ if self.open.is_empty() && !piece.iter().all(u8::is_ascii_whitespace) => {
                        return Err(self.error(if self.root_seen {
                            "text after the root element"
                        } else {
                            "text before the root element"
                        }));
                    }
                    _ => {}
                }
                at += run;
                continue;
            }
            let byte = chunk[at];
            at += 1;
            if byte == b'\n' {
                self.line += 1;
            }
            self.byte(byte, handler).map_err(|reason| self.error(reason))?;
        }
        Ok(())
    }

    pub fn finish(self) -> Result<(), AnalysisError> {
        if self.state != State::Text || !self.open.is_empty() {
            return Err(AnalysisError::Truncated("inside an element"));
        }
        if !self.root_seen {
            return Err(self.error("the document has no root element"));
        }
        Ok(())
    }

    fn error(&self, reason: &'static str) -> AnalysisError {
        AnalysisError::Malformed { line: self.line, reason }
    }

    fn byte(&mut self, byte: u8, handler: &mut impl Handler) -> Result<(), &'static str> {
        self.state = match self.state {
            // Reached only on `<`: runs took every other byte.
            State::Text => State::Open,
            State::Open => match byte {
                b'!' => {
                    self.name.clear();
                    State::Bang
                }
                b'?' => State::Instruction { question: false },
                b'/' => {
                    self.name.clear();
                    State::EndName
                }
                _ if is_name_start(byte) => {
                    if self.open.is_empty() && self.root_seen {
                        return Err("a second root element");
                    }
                    self.name.clear();
                    self.name.push(byte);
                    State::StartName
                }
                _ => return Err("a `<` that opens no tag"),
            },
            State::Bang => {
                self.name.push(byte);
                match self.name.as_slice() {
                    b"--" => State::Comment { dashes: 0 },
                    b"[CDATA[" if !self.open.is_empty() => State::Cdata { brackets: 0 },
                    b"DOCTYPE" if !self.root_seen => State::Doctype { depth: 0, quote: 0 },
                    seen if b"--".starts_with(seen) || b"[CDATA[".starts_with(seen) || b"DOCTYPE".starts_with(seen) => {
                        State::Bang
                    }
                    _ => return Err("a `<!` that is not a comment, CDATA or doctype"),
                }
            }
            State::Comment { dashes } => match (byte, dashes) {
                (b'-', _) => State::Comment { dashes: dashes.saturating_add(1) },
                (b'>', 2..) => State::Text,
                _ => State::Comment { dashes: 0 },
            },
            State::Cdata { brackets } => match (byte, brackets) {
                (b']', _) => State::Cdata { brackets: brackets.saturating_add(1) },
                (b'>', 2..) => State::Text,
                _ => State::Cdata { brackets: 0 },
            },
            State::Doctype { depth, quote } => match byte {
                _ if quote != 0 => State::Doctype { depth, quote: if byte == quote { 0 } else { quote } },
                b'"' | b'\'' => State::Doctype { depth, quote: byte },
                b'[' => State::Doctype { depth: depth.saturating_add(1), quote },
                b']' => State::Doctype { depth: depth.saturating_sub(1), quote },
                b'>' if depth == 0 => State::Text,
                _ => State::Doctype { depth, quote },
            },
            State::Instruction { question } => match byte {
                b'>' if question => State::Text,
                _ => State::Instruction { question: byte == b'?' },
            },
            State::StartName => {
                if is_name_byte(byte) {
                    self.push_name(byte)?;
                    State::StartName
                } else {
                    self.open_element(handler)?;
                    self.after_name(byte, handler)?
                }
            }
            State::InTag { space } => match byte {
                _ if byte.is_ascii_whitespace() => State::InTag { space: true },
                b'>' | b'/' => self.after_name(byte, handler)?,
                _ if is_name_start(byte) && space => {
                    self.name.clear();
                    self.name.push(byte);
                    State::AttributeName
                }
                _ if is_name_start(byte) => return Err("attributes need a space between them"),
                _ => return Err("a start tag holds a character that is not an attribute"),
            },
            State::AttributeName => match byte {
                _ if is_name_byte(byte) => {
                    self.push_name(byte)?;
                    State::AttributeName
                }
                _ => {
                    handler.attribute(&self.name)?;
                    self.before_equals(byte)?
                }
            },
            State::BeforeEquals => self.before_equals(byte)?,
            State::BeforeValue => match byte {
                b'"' | b'\'' => State::Value { quote: byte },
                _ if byte.is_ascii_whitespace() => State::BeforeValue,
                _ => return Err("an attribute value is not quoted"),
            },
            State::Value { quote } => match byte {
                b'<' => return Err("an attribute value holds a `<`"),
                b'&' => {
                    self.entity.clear();
                    State::Entity { quote }
                }
                // The closing quote: the only byte a run leaves here otherwise.
                _ => {
                    handler.attribute_end()?;
                    State::InTag { space: false }
                }
            },
            State::Entity { quote } => match byte {
                b';' => {
                    let mut utf8 = [0u8; 4];
                    match decode_entity(&self.entity, &mut utf8)? {
                        Some(text) => handler.attribute_value(Piece::Text(text))?,
                        None => handler.attribute_value(Piece::UnknownEntity)?,
                    }
                    State::Value { quote }
                }
                _ if self.entity.len() < MAX_ENTITY
                    && (byte.is_ascii_alphanumeric() || matches!(byte, b'#' | b'_' | b'-' | b'.' | b':')) =>
                {
                    self.entity.push(byte);
                    State::Entity { quote }
                }
                _ => return Err("an `&` in an attribute value that starts no entity reference"),
            },
            State::SelfClosing => match byte {
                b'>' => {
                    handler.start_tag_end(true)?;
                    self.open.pop();
                    State::Text
                }
                _ => return Err("a `/` in a start tag that is not followed by `>`"),
            },
            State::EndName => match byte {
                _ if is_name_byte(byte) => {
                    self.push_name(byte)?;
                    State::EndName
                }
                _ => {
                    self.close_element(handler)?;
                    self.after_end_name(byte)?
                }
            },
            State::AfterEndName => self.after_end_name(byte)?,
        };
        Ok(())
    }

    fn push_name(&mut self, byte: u8) -> Result<(), &'static str> {
        if self.name.len() == MAX_NAME {
            return Err("a name is longer than 128 bytes");
        }
        self.name.push(byte);
        Ok(())
    }

    fn open_element(&mut self, handler: &mut impl Handler) -> Result<(), &'static str> {
        if self.open.len() == MAX_DEPTH {
            return Err("elements are nested more than 256 deep");
        }
        self.root_seen = true;
        handler.start_element(&self.name)?;
        self.open.push(std::mem::take(&mut self.name));
        Ok(())
    }

    fn close_element(&mut self, handler: &mut impl Handler) -> Result<(), &'static str> {
        match self.open.pop() {
            Some(open) if open == self.name => handler.end_element(),
            Some(_) => Err("an end tag does not match the element it closes"),
            None => Err("an end tag without a start tag"),
        }
    }

    /// After an element's name or an attribute's value: more attributes, `>` or `/>`.
    fn after_name(&mut self, byte: u8, handler: &mut impl Handler) -> Result<State, &'static str> {
        match byte {
            b'>' => {
                handler.start_tag_end(false)?;
                Ok(State::Text)
            }
            b'/' => Ok(State::SelfClosing),
            _ if byte.is_ascii_whitespace() => Ok(State::InTag { space: true }),
            _ => Err("a start tag holds a character that is not an attribute"),
        }
    }

    fn before_equals(&mut self, byte: u8) -> Result<State, &'static str> {
        match byte {
            b'=' => Ok(State::BeforeValue),
            _ if byte.is_ascii_whitespace() => Ok(State::BeforeEquals),
            _ => Err("an attribute without `=` and a value"),
        }
    }

    fn after_end_name(&mut self, byte: u8) -> Result<State, &'static str> {
        match byte {
            b'>' => Ok(State::Text),
            _ if byte.is_ascii_whitespace() => Ok(State::AfterEndName),
            _ => Err("an end tag holds more than a name"),
        }
    }
}

fn run_until(bytes: &[u8], stop: impl Fn(u8) -> bool) -> usize {
    bytes.iter().position(|&b| stop(b)).unwrap_or(bytes.len())
}

/// Letters, `_`, `:` and anything non-ASCII (names may be in any script).
fn is_name_start(byte: u8) -> bool {
    byte.is_ascii_alphabetic() || byte == b'_' || byte == b':' || byte >= 0x80
}

fn is_name_byte(byte: u8) -> bool {
    is_name_start(byte) || byte.is_ascii_digit() || byte == b'-' || byte == b'.'
}

/// The five predefined entities and character references; `None` for any other name.
fn decode_entity<'a>(name: &[u8], utf8: &'a mut [u8; 4]) -> Result<Option<&'a [u8]>, &'static str> {
    let predefined: &'static [u8] = match name {
        b"amp" => b"&",
        b"lt" => b"<",
        b"gt" => b">",
        b"quot" => b"\"",
        b"apos" => b"'",
        _ => {
            let Some(reference) = name.strip_prefix(b"#") else { return Ok(None) };
            let (digits, radix) = match reference.strip_prefix(b"x") {
                Some(hex) => (hex, 16),
                None => (reference, 10),
            };
            let code = std::str::from_utf8(digits).ok().and_then(|digits| u32::from_str_radix(digits, radix).ok());
            let Some(character) = code.and_then(char::from_u32).filter(|c| *c != '\0') else {
                return Err("a character reference names no character");
            };
            return Ok(Some(character.encode_utf8(utf8).as_bytes()));
        }
    };
    Ok(Some(predefined))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records what the tokenizer reports, as text.
    #[derive(Default)]
    struct Recorder {
        events: Vec<String>,
        value: Vec<u8>,
    }

    impl Handler for Recorder {
        fn start_element(&mut self, name: &[u8]) -> Result<(), &'static str> {
            self.events.push(format!("<{}", String::from_utf8_lossy(name)));
            Ok(())
        }
        fn attribute(&mut self, name: &[u8]) -> Result<(), &'static str> {
            self.events.push(format!("@{}", String::from_utf8_lossy(name)));
            self.value.clear();
            Ok(())
        }
        fn attribute_value(&mut self, piece: Piece<'_>) -> Result<(), &'static str> {
            match piece {
                Piece::Text(text) => self.value.extend_from_slice(text),
                Piece::UnknownEntity => self.value.extend_from_slice(b"?"),
            }
            Ok(())
        }
        fn attribute_end(&mut self) -> Result<(), &'static str> {
            self.events.push(format!("={}", String::from_utf8_lossy(&self.value)));
            Ok(())
        }
        fn start_tag_end(&mut self, self_closing: bool) -> Result<(), &'static str> {
            self.events.push(if self_closing { "/>".into() } else { ">".into() });
            Ok(())
        }
        fn end_element(&mut self) -> Result<(), &'static str> {
            self.events.push("</".into());
            Ok(())
        }
    }

    fn tokenize(document: &[u8], chunk: usize) -> Result<Vec<String>, AnalysisError> {
        let mut tokenizer = Tokenizer::new();
        let mut recorder = Recorder::default();
        for piece in document.chunks(chunk.max(1)) {
            tokenizer.feed(piece, &mut recorder)?;
        }
        tokenizer.finish()?;
        Ok(recorder.events)
    }

    const DOCUMENT: &[u8] = b"\xEF\xBB\xBF<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
        <!DOCTYPE svg PUBLIC \"-//W3C//DTD SVG 1.1//EN\" \"x.dtd\" [\n <!ENTITY ns_svg \"http://www.w3.org/2000/svg\">\n]>\n\
        <!-- a comment with -- inside and > too -->\n\
        <svg xmlns=\"&ns_svg;\" width = '10mm'>\n\
          <style><![CDATA[ path { stroke: red } ]]></style>\n\
          <path d=\"M0 0 L&#x31;0 &amp; &lt;\"/>\n\
          <svg:g></svg:g>\n\
        </svg>\n";

    #[test]
    fn a_document_in_any_chunks() {
        let expected = [
            "<svg",
            "@xmlns",
            "=?",
            "@width",
            "=10mm",
            ">",
            "<style",
            ">",
            "</",
            "<path",
            "@d",
            "=M0 0 L10 & <",
            "/>",
            "<svg:g",
            ">",
            "</",
            "</",
        ];
        for chunk in [DOCUMENT.len(), 1, 2, 7] {
            assert_eq!(tokenize(DOCUMENT, chunk).unwrap(), expected, "chunks of {chunk}");
        }
        assert_eq!(tokenize(&DOCUMENT[3..], 5).unwrap(), expected, "without the mark");
        assert!(tokenize(&DOCUMENT[1..], 5).is_err(), "half a mark");
    }

    #[test]
    fn malformed_documents_name_their_line() {
        let cases: [(&[u8], &str); 12] = [
            (b"<svg><g></svg>", "an end tag does not match the element it closes"),
            (b"<svg>\n<path d=M0/></svg>", "an attribute value is not quoted"),
            (b"<svg><path d=\"<\"/></svg>", "an attribute value holds a `<`"),
            (b"<svg></svg><svg></svg>", "a second root element"),
            (b"<svg></svg>text", "text after the root element"),
            (b"<svg a=\"1\"b=\"2\"/>", "attributes need a space between them"),
            (b"<svg a/>", "an attribute without `=` and a value"),
            (b"<svg a=\"&#0;\"/>", "a character reference names no character"),
            (b"<svg a=\"& \"/>", "an `&` in an attribute value that starts no entity reference"),
            (b"<svg><!x></svg>", "a `<!` that is not a comment, CDATA or doctype"),
            (b"</svg>", "an end tag without a start tag"),
            (b"<svg>< g/></svg>", "a `<` that opens no tag"),
        ];
        let reason = |document: &[u8]| match tokenize(document, 3) {
            Err(AnalysisError::Malformed { reason, .. }) => reason,
            other => panic!("{}: {other:?}", String::from_utf8_lossy(document)),
        };
        for (document, expected) in cases {
            assert_eq!(reason(document), expected, "{}", String::from_utf8_lossy(document));
        }
        assert_eq!(
            tokenize(b"<svg>\n\n<g a='1' b=\n\n'x\n<'/></svg>", 1),
            Err(AnalysisError::Malformed { line: 6, reason: "an attribute value holds a `<`" })
        );
        assert_eq!(tokenize(b"<svg>\n\n<g>", 1), Err(AnalysisError::Truncated("inside an element")));
        assert_eq!(tokenize(b"<svg><!-- open", 4), Err(AnalysisError::Truncated("inside an element")));
        assert_eq!(reason(b"<!-- only -->"), "the document has no root element");
        let deep = "<g>".repeat(MAX_DEPTH + 1);
        assert_eq!(reason(deep.as_bytes()), "elements are nested more than 256 deep");
        let long = format!("<{}/>", "g".repeat(MAX_NAME + 1));
        assert_eq!(reason(long.as_bytes()), "a name is longer than 128 bytes");
    }
}
