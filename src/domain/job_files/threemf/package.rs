//! The ZIP package of a 3MF, opened with guards: a package is an upload, so its entries'
//! declared sizes are not trusted and what is unpacked is counted as it is read.
//!
//! Only the entries the analysis needs are ever unpacked (the models and a few small
//! configs, never the plates' G-code or thumbnails), each through `Package::open`, which
//! refuses encrypted entries and unsupported compression with a clear error and stops a
//! read past its entry's limit or past the package's total.

use std::io::{self, BufRead, BufReader, Read, Seek};

use super::super::AnalysisError;

/// Packages with more entries are not slicer projects: a 3MF of fifty plates with their
/// thumbnails and a hundred object files has well under a thousand.
pub const MAX_ENTRIES: usize = 10_000;
/// A model part's XML, unpacked. A mesh costs roughly 100 bytes of XML per triangle, so this
/// takes meshes of about ten million triangles, well past what a printer can be sent.
pub const MAX_MODEL_BYTES: u64 = 1 << 30;
/// A slicer's config entry, unpacked: they are kilobytes; a project's settings JSON is a few
/// hundred.
pub const MAX_CONFIG_BYTES: u64 = 16 << 20;
/// Everything unpacked from one package, all entries together: a zip bomb of many entries
/// each under its own limit stops here.
pub const MAX_TOTAL_BYTES: u64 = 2 << 30;
/// One XML event (a tag with its attributes, or a text run) held at once. 3MF tags are short
/// (a vertex is three numbers); a longer one is a hostile file, refused rather than buffered.
pub const MAX_XML_EVENT: usize = 1 << 20;

pub struct Package<R: Read + Seek> {
    archive: zip::ZipArchive<R>,
    /// Unpacked so far, over all entries.
    unpacked: u64,
}

impl<R: Read + Seek> Package<R> {
    pub fn new(reader: R) -> Result<Package<R>, AnalysisError> {
        let archive = zip::ZipArchive::new(reader).map_err(|error| archive_error(&error))?;
        if archive.len() > MAX_ENTRIES {
            return Err(AnalysisError::TooManyEntries { entries: archive.len(), max: MAX_ENTRIES });
        }
        Ok(Package { archive, unpacked: 0 })
    }

    pub fn has(&self, name: &str) -> bool {
        self.archive.index_for_name(name).is_some()
    }

    /// The entry names, in the package's order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.archive.file_names()
    }

    /// Reads entry `name` (if the package has it) through `read`, which gets the unpacked bytes
    /// as a buffered reader that fails once `limit` bytes (or the package's total) are passed,
    /// and whose buffered events `Events::next_event` bounds.
    pub fn read<T>(
        &mut self,
        name: &str,
        limit: u64,
        read: impl FnOnce(&mut Unpacked<'_>) -> Result<T, AnalysisError>,
    ) -> Result<Option<T>, AnalysisError> {
        let Some(index) = self.archive.index_for_name(name) else { return Ok(None) };
        let entry = self.archive.by_index(index).map_err(|error| match error {
            zip::result::ZipError::UnsupportedArchive(zip::result::ZipError::PASSWORD_REQUIRED) => {
                AnalysisError::UnsupportedEntry { entry: name.to_string(), reason: "it is encrypted" }
            }
            zip::result::ZipError::UnsupportedArchive(_) => {
                AnalysisError::UnsupportedEntry { entry: name.to_string(), reason: "its compression is not supported" }
            }
            other => archive_error(&other),
        })?;
        let room = MAX_TOTAL_BYTES.saturating_sub(self.unpacked);
        let (limit, limited_by_total) = if room < limit { (room, true) } else { (limit, false) };
        let mut unpacked = Unpacked {
            reader: BufReader::new(Counted { inner: Box::new(entry), read: 0, limit }),
            name,
            limit: if limited_by_total { MAX_TOTAL_BYTES } else { limit },
            limited_by_total,
        };
        let result = read(&mut unpacked);
        self.unpacked += unpacked.reader.get_ref().read;
        result.map(Some)
    }
}

/// An entry being unpacked.
pub struct Unpacked<'a> {
    /// The entry's reader is boxed so that `Unpacked` is one type whatever the package's reader.
    reader: BufReader<Counted<Box<dyn Read + 'a>>>,
    name: &'a str,
    /// For the error message: the limit that applies.
    limit: u64,
    limited_by_total: bool,
}

impl<'a> Unpacked<'a> {
    pub fn name(&self) -> &str {
        self.name
    }

    /// The whole entry, for small configs read at once.
    pub fn read_all(&mut self) -> Result<Vec<u8>, AnalysisError> {
        let mut bytes = Vec::new();
        self.reader.read_to_end(&mut bytes).map_err(|error| self.io_error(&error))?;
        Ok(bytes)
    }

    /// Turns a read failure into the analysis error that says why.
    pub fn io_error(&self, error: &io::Error) -> AnalysisError {
        if error.get_ref().is_some_and(|inner| inner.is::<LimitPassed>()) {
            let what = if self.limited_by_total {
                "the package's unpacked entries".to_string()
            } else {
                self.name.to_string()
            };
            return AnalysisError::TooLarge { what, limit: self.limit };
        }
        AnalysisError::InPackage { entry: self.name.to_string(), reason: format!("it cannot be unpacked: {error}") }
    }

    /// An XML reader over the entry.
    pub fn xml(&mut self) -> Events<'_, 'a> {
        Events {
            reader: quick_xml::Reader::from_reader(EventBounded { inner: self, since_event: 0 }),
            buffer: Vec::new(),
        }
    }
}

/// Bytes read so far, and a hard stop at the limit: the entry's declared size is not trusted.
struct Counted<R> {
    inner: R,
    read: u64,
    limit: u64,
}

#[derive(Debug)]
struct LimitPassed;

impl std::fmt::Display for LimitPassed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the entry unpacks to more than its limit")
    }
}

impl std::error::Error for LimitPassed {}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // One byte more than the limit may be read, to tell "exactly at" from "past".
        let room = (self.limit + 1).saturating_sub(self.read);
        let take = buf.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        let count = self.inner.read(&mut buf[..take])?;
        self.read += count as u64;
        if self.read > self.limit {
            return Err(io::Error::other(LimitPassed));
        }
        Ok(count)
    }
}

/// A buffered reader that refuses to feed one XML event more than `MAX_XML_EVENT` bytes:
/// quick-xml gathers a whole tag into its buffer before it returns it.
struct EventBounded<'u, 'a> {
    inner: &'u mut Unpacked<'a>,
    since_event: usize,
}

#[derive(Debug)]
struct EventTooLong;

impl std::fmt::Display for EventTooLong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an XML tag or text is longer than 1 MiB")
    }
}

impl std::error::Error for EventTooLong {}

impl Read for EventBounded<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let count = available.len().min(buf.len());
        buf[..count].copy_from_slice(&available[..count]);
        self.consume(count);
        Ok(count)
    }
}

impl BufRead for EventBounded<'_, '_> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.since_event > MAX_XML_EVENT {
            return Err(io::Error::other(EventTooLong));
        }
        self.inner.reader.fill_buf()
    }

    fn consume(&mut self, amount: usize) {
        self.since_event += amount;
        self.inner.reader.consume(amount);
    }
}

/// XML events of one entry, each at most `MAX_XML_EVENT` bytes.
pub struct Events<'u, 'a> {
    reader: quick_xml::Reader<EventBounded<'u, 'a>>,
    buffer: Vec<u8>,
}

impl Events<'_, '_> {
    /// The next event; `Eof` at the end. Errors name the entry and, for XML errors, where.
    pub fn next_event(&mut self) -> Result<quick_xml::events::Event<'_>, AnalysisError> {
        self.buffer.clear();
        self.reader.get_mut().since_event = 0;
        let reader = &mut self.reader;
        match reader.read_event_into(&mut self.buffer) {
            Ok(event) => Ok(event),
            Err(error) => {
                let position = reader.error_position();
                let unpacked = &reader.get_ref().inner;
                Err(match &error {
                    quick_xml::Error::Io(io) if io.get_ref().is_some_and(|inner| inner.is::<EventTooLong>()) => {
                        AnalysisError::InPackage { entry: unpacked.name.to_string(), reason: EventTooLong.to_string() }
                    }
                    quick_xml::Error::Io(io) => unpacked.io_error(io),
                    _ => AnalysisError::InPackage {
                        entry: unpacked.name.to_string(),
                        reason: format!("malformed XML near byte {position}: {error}"),
                    },
                })
            }
        }
    }

    /// The entry's name, for errors raised by the caller.
    pub fn entry(&self) -> &str {
        self.reader.get_ref().inner.name
    }
}

fn archive_error(error: &zip::result::ZipError) -> AnalysisError {
    AnalysisError::NotAnArchive(error.to_string())
}
