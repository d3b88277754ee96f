//! A job file from upload to storage: streamed into a temporary file (hashed and measured on
//! the way, refused past the size limit), its kind sniffed from its first bytes, analysed by
//! reading it back in chunks, then stored under its SHA-256. Memory stays a few chunks
//! whatever the file's size; the temporary file is removed whatever happens.

use std::io::{Read, Seek, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::domain::job_files::facts::{kind_name, FileFacts};
use crate::domain::job_files::{
    sniff, threemf, AnalysisError, FileKind, GcodeAnalyzer, StlAnalyzer, SvgAnalyzer, SNIFF_LEN,
};
use crate::store::files::FilesError;
use crate::store::jobs::JobFileRecord;

use super::Services;

/// How much of the file is read back at a time for its analysis.
const ANALYSIS_CHUNK: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error("the file is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("the file is empty")]
    Empty,
    #[error("this is not a file makrcave takes: G-code, STL (binary or ASCII), 3MF or SVG (read from its content, not its name)")]
    UnsupportedType,
    #[error("the {kind} file cannot be read: {reason}")]
    Malformed { kind: &'static str, reason: AnalysisError },
    #[error("cannot keep the upload: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Files(#[from] FilesError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// An upload being received: its bytes go to a temporary file as they come.
pub struct Upload {
    file: tempfile::NamedTempFile,
    hasher: Sha256,
    size: u64,
    limit: u64,
    /// The first bytes, for sniffing.
    head: Vec<u8>,
}

/// A received upload, stored and analysed.
#[derive(Debug, Clone)]
pub struct StoredFile {
    pub record: JobFileRecord,
    pub kind: FileKind,
    pub facts: FileFacts,
}

impl Upload {
    /// A new upload into the data folder's `uploads/` (the same disk as the files, so nothing
    /// large ever passes through memory or `/tmp`).
    pub fn begin(svc: &Services) -> Result<Upload, IntakeError> {
        let folder = svc.settings.data_dir.join("uploads");
        std::fs::create_dir_all(&folder)?;
        Ok(Upload {
            file: tempfile::NamedTempFile::new_in(folder)?,
            hasher: Sha256::new(),
            size: 0,
            limit: svc.settings.upload_max_bytes,
            head: Vec::with_capacity(SNIFF_LEN),
        })
    }

    /// Appends a chunk as it arrives; past the limit the upload is refused (and dropped).
    pub fn write(&mut self, chunk: &[u8]) -> Result<(), IntakeError> {
        self.size += chunk.len() as u64;
        if self.size > self.limit {
            return Err(IntakeError::TooLarge { limit: self.limit });
        }
        if self.head.len() < SNIFF_LEN {
            let take = (SNIFF_LEN - self.head.len()).min(chunk.len());
            self.head.extend_from_slice(&chunk[..take]);
        }
        self.hasher.update(chunk);
        self.file.write_all(chunk)?;
        Ok(())
    }

    /// Sniffs, analyses and stores the file (a file already stored is not stored twice).
    pub async fn finish(self, svc: &Services) -> Result<StoredFile, IntakeError> {
        let Upload { mut file, hasher, size, head, .. } = self;
        if size == 0 {
            return Err(IntakeError::Empty);
        }
        file.flush()?;
        let kind = sniff(&head, size).ok_or(IntakeError::UnsupportedType)?;
        let sha256 = format!("{:x}", hasher.finalize());
        // Reading 200 MB back is blocking work: off the async workers.
        let path = file.path().to_path_buf();
        let facts = tokio::task::spawn_blocking(move || analyse(&path, kind))
            .await
            .map_err(|e| IntakeError::Io(std::io::Error::other(e)))??;
        svc.files.put_file(&sha256, file.path()).await?;
        let record = JobFileRecord {
            sha256,
            kind: kind_name(kind).into(),
            size_bytes: size as i64,
            analysis: serde_json::to_value(&facts).unwrap_or_default(),
            created_at: chrono::Utc::now(),
        };
        svc.store.insert_job_file(&record).await?;
        Ok(StoredFile { record, kind, facts })
    }
}

/// Reads the file at `path` back and analyses it as `kind`.
fn analyse(path: &Path, kind: FileKind) -> Result<FileFacts, IntakeError> {
    let mut file = std::fs::File::open(path)?;
    file.rewind()?;
    let malformed = |reason| IntakeError::Malformed { kind: kind_name(kind), reason };
    match kind {
        FileKind::StlBinary | FileKind::StlAscii => {
            let mut analyzer = StlAnalyzer::for_kind(kind).ok_or(IntakeError::UnsupportedType)?;
            feed_chunks(&mut file, |chunk| analyzer.feed(chunk).map_err(malformed))?;
            let stl = analyzer.finish().map_err(malformed)?;
            Ok(FileFacts::of_stl(kind, &stl))
        }
        FileKind::Gcode => {
            let mut analyzer = GcodeAnalyzer::default();
            feed_chunks(&mut file, |chunk| analyzer.feed(chunk).map_err(malformed))?;
            Ok(FileFacts::of_gcode(&analyzer.finish().map_err(malformed)?))
        }
        FileKind::Svg => {
            let mut analyzer = SvgAnalyzer::new();
            feed_chunks(&mut file, |chunk| analyzer.feed(chunk).map_err(malformed))?;
            Ok(FileFacts::of_svg(&analyzer.finish().map_err(malformed)?))
        }
        // A ZIP package is read from its end (the central directory): the file, not a stream.
        FileKind::ThreeMf => {
            let package = threemf::analyze(std::io::BufReader::new(file)).map_err(malformed)?;
            Ok(FileFacts::of_3mf(&package))
        }
    }
}

fn feed_chunks(
    file: &mut std::fs::File,
    mut feed: impl FnMut(&[u8]) -> Result<(), IntakeError>,
) -> Result<(), IntakeError> {
    let mut buffer = vec![0u8; ANALYSIS_CHUNK];
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            return Ok(());
        }
        feed(&buffer[..read])?;
    }
}
