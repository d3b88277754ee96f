//! The on-disk queue of telemetry and events waiting for the broker: bounded, in order, and
//! safe across a power cut.
//!
//! Layout in the state folder:
//! - `queue.<generation>.log`: records appended and fsynced one by one. A record is
//!   `[length u32 LE][crc32 u32 LE][kind u8][payload]`; the checksum covers kind and payload,
//!   so a record torn by a power cut is found on reopen and dropped with everything after it.
//! - `queue.head`: where the first record not yet acknowledged by the broker starts, the
//!   log's generation and how many records were dropped because the queue was full
//!   (written as a temporary file, fsynced, renamed: it is always the old or the new one).
//!
//! Acknowledged records are not erased in place: the head moves past them. When the dead
//! prefix grows as large as the bound, the live records are copied to the next generation's
//! log, the head file is switched to it, and the old log is removed. A crash in between
//! leaves the head on the old, complete log; the unused new log is removed on reopen.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// Bytes before a record's kind and payload: length and checksum.
const HEADER: usize = 8;
/// The head file: generation u64, offset u64, dropped u64, crc32 of those 24 bytes.
const HEAD_LEN: usize = 28;
const HEAD_FILE: &str = "queue.head";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    Telemetry,
    Event,
}

impl RecordKind {
    fn to_byte(self) -> u8 {
        match self {
            RecordKind::Telemetry => 1,
            RecordKind::Event => 2,
        }
    }

    fn from_byte(byte: u8) -> Option<RecordKind> {
        match byte {
            1 => Some(RecordKind::Telemetry),
            2 => Some(RecordKind::Event),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub kind: RecordKind,
    pub payload: Vec<u8>,
}

impl Record {
    /// Bytes the record takes in the log.
    fn stored_len(&self) -> u64 {
        (HEADER + 1 + self.payload.len()) as u64
    }

    fn encode(&self) -> Vec<u8> {
        let mut body = Vec::with_capacity(1 + self.payload.len());
        body.push(self.kind.to_byte());
        body.extend_from_slice(&self.payload);
        let mut out = Vec::with_capacity(HEADER + body.len());
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
        out.extend_from_slice(&body);
        out
    }
}

/// Decodes records from the start of `bytes`; stops at the first incomplete or corrupt one.
/// Returns the records and how many bytes they cover (the rest is a torn tail).
pub fn decode_records(bytes: &[u8]) -> (Vec<Record>, usize) {
    let mut records = Vec::new();
    let mut at = 0usize;
    while let Some(header) = bytes.get(at..at + HEADER) {
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        let Some(body) = at.checked_add(HEADER + len).and_then(|end| bytes.get(at + HEADER..end)) else {
            break;
        };
        if len == 0 || crc32fast::hash(body) != crc {
            break;
        }
        let Some(kind) = RecordKind::from_byte(body[0]) else {
            break;
        };
        records.push(Record { kind, payload: body[1..].to_vec() });
        at += HEADER + len;
    }
    (records, at)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Head {
    generation: u64,
    offset: u64,
    dropped: u64,
}

impl Head {
    fn encode(&self) -> [u8; HEAD_LEN] {
        let mut out = [0u8; HEAD_LEN];
        out[0..8].copy_from_slice(&self.generation.to_le_bytes());
        out[8..16].copy_from_slice(&self.offset.to_le_bytes());
        out[16..24].copy_from_slice(&self.dropped.to_le_bytes());
        let crc = crc32fast::hash(&out[0..24]);
        out[24..28].copy_from_slice(&crc.to_le_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Option<Head> {
        if bytes.len() != HEAD_LEN {
            return None;
        }
        let u64_at = |i: usize| bytes.get(i..i + 8).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes);
        let crc = bytes.get(24..28).and_then(|b| b.try_into().ok()).map(u32::from_le_bytes)?;
        if crc32fast::hash(&bytes[0..24]) != crc {
            return None;
        }
        Some(Head { generation: u64_at(0)?, offset: u64_at(8)?, dropped: u64_at(16)? })
    }
}

/// The queue; one owner at a time (the MQTT link wraps it in a mutex).
#[derive(Debug)]
pub struct DiskQueue {
    dir: PathBuf,
    head: Head,
    log: File,
    /// Bytes in the log file, dead prefix included.
    log_len: u64,
    /// The live records, oldest first (at most `max_bytes` of them, so memory is bounded too).
    records: VecDeque<Record>,
    live_bytes: u64,
    max_bytes: u64,
}

fn log_path(dir: &Path, generation: u64) -> PathBuf {
    dir.join(format!("queue.{generation}.log"))
}

/// Writes `bytes` to `path` so that a crash leaves the old or the new content, never a mix.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    {
        let mut file = File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    // The rename itself is durable only once the folder is synced.
    File::open(dir)?.sync_all()
}

impl DiskQueue {
    /// Opens (or creates) the queue in `dir`, dropping a torn last record.
    pub fn open(dir: &Path, max_bytes: u64) -> io::Result<DiskQueue> {
        fs::create_dir_all(dir)?;
        let head = match fs::read(dir.join(HEAD_FILE)) {
            Ok(bytes) => Head::decode(&bytes).unwrap_or_else(|| {
                tracing::warn!("queue head file is corrupt; replaying the log from its start");
                Head::default()
            }),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Head::default(),
            Err(err) => return Err(err),
        };
        remove_other_generations(dir, head.generation)?;
        let path = log_path(dir, head.generation);
        let mut log = OpenOptions::new().create(true).read(true).append(true).open(&path)?;
        let mut bytes = Vec::new();
        log.read_to_end(&mut bytes)?;
        let mut head = head;
        if head.offset > bytes.len() as u64 {
            tracing::warn!(offset = head.offset, len = bytes.len(), "queue head past the log's end; replaying all");
            head.offset = 0;
        }
        let (records, valid) = decode_records(&bytes[head.offset as usize..]);
        let log_len = head.offset + valid as u64;
        if log_len < bytes.len() as u64 {
            tracing::warn!(torn_bytes = bytes.len() as u64 - log_len, "queue: dropping a torn last record");
            log.set_len(log_len)?;
            log.sync_all()?;
        }
        let live_bytes = records.iter().map(Record::stored_len).sum();
        let queue =
            DiskQueue { dir: dir.to_path_buf(), head, log, log_len, records: records.into(), live_bytes, max_bytes };
        queue.write_head()?;
        Ok(queue)
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Records dropped, since the queue was created, because it was full.
    pub fn dropped(&self) -> u64 {
        self.head.dropped
    }

    pub fn front(&self) -> Option<&Record> {
        self.records.front()
    }

    /// Appends a record (durably: it is on disk when this returns), dropping the oldest while
    /// the queue would exceed its bound.
    pub fn push(&mut self, kind: RecordKind, payload: &[u8]) -> io::Result<()> {
        let record = Record { kind, payload: payload.to_vec() };
        let size = record.stored_len();
        if size > self.max_bytes {
            self.head.dropped += 1;
            tracing::warn!(size, "queue: a record larger than the whole queue is dropped");
            return self.write_head();
        }
        let mut dropped_now = 0;
        while self.live_bytes + size > self.max_bytes {
            let Some(oldest) = self.records.pop_front() else { break };
            self.advance_head(oldest.stored_len());
            dropped_now += 1;
        }
        if dropped_now > 0 {
            self.head.dropped += dropped_now;
            tracing::warn!(dropped_now, total = self.head.dropped, "queue full: dropped the oldest records");
            self.write_head()?;
        }
        if self.head.offset >= self.max_bytes {
            self.compact()?;
        }
        self.log.write_all(&record.encode())?;
        self.log.sync_data()?;
        self.log_len += size;
        self.live_bytes += size;
        self.records.push_back(record);
        Ok(())
    }

    /// Removes the oldest record (once the broker acknowledged it).
    pub fn pop_front(&mut self) -> io::Result<Option<Record>> {
        let Some(record) = self.records.pop_front() else { return Ok(None) };
        self.advance_head(record.stored_len());
        self.write_head()?;
        Ok(Some(record))
    }

    fn advance_head(&mut self, by: u64) {
        self.head.offset += by;
        self.live_bytes -= by;
    }

    fn write_head(&self) -> io::Result<()> {
        write_atomically(&self.dir.join(HEAD_FILE), &self.head.encode())
    }

    /// Copies the live records to the next generation's log and switches to it.
    fn compact(&mut self) -> io::Result<()> {
        let generation = self.head.generation + 1;
        let path = log_path(&self.dir, generation);
        let mut bytes = Vec::with_capacity(self.live_bytes as usize);
        for record in &self.records {
            bytes.extend_from_slice(&record.encode());
        }
        {
            let mut file = File::create(&path)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
        }
        let old = log_path(&self.dir, self.head.generation);
        self.head = Head { generation, offset: 0, dropped: self.head.dropped };
        self.write_head()?;
        self.log = OpenOptions::new().read(true).append(true).open(&path)?;
        self.log_len = bytes.len() as u64;
        fs::remove_file(old)
    }
}

/// Removes logs of other generations: left by a compaction a crash interrupted.
fn remove_other_generations(dir: &Path, keep: u64) -> io::Result<()> {
    let keep_name = format!("queue.{keep}.log");
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name.starts_with("queue.") && name.ends_with(".log") && name != keep_name {
            fs::remove_file(dir.join(&name))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn record(kind: RecordKind, text: &str) -> Record {
        Record { kind, payload: text.as_bytes().to_vec() }
    }

    #[test]
    fn records_round_trip_and_a_torn_tail_is_cut() {
        let a = record(RecordKind::Telemetry, r#"{"relay":true}"#);
        let b = record(RecordKind::Event, r#"{"event":"job_started"}"#);
        let mut bytes = a.encode();
        bytes.extend(b.encode());
        let full = bytes.len();
        let (records, valid) = decode_records(&bytes);
        assert_eq!(records, vec![a.clone(), b]);
        assert_eq!(valid, full);
        bytes.truncate(full - 3);
        let (records, valid) = decode_records(&bytes);
        assert_eq!(records, vec![a.clone()]);
        assert_eq!(valid, a.encode().len());
    }

    #[test]
    fn a_flipped_bit_ends_the_log() {
        let a = record(RecordKind::Event, "{}");
        let mut bytes = a.encode();
        bytes.extend(a.encode());
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert_eq!(decode_records(&bytes).0.len(), 1);
    }

    #[test]
    fn head_round_trips_and_rejects_corruption() {
        let head = Head { generation: 3, offset: 99, dropped: 7 };
        assert_eq!(Head::decode(&head.encode()), Some(head));
        let mut bytes = head.encode();
        bytes[9] ^= 0xff;
        assert_eq!(Head::decode(&bytes), None);
        assert_eq!(Head::decode(&bytes[..5]), None);
    }

    proptest! {
        #[test]
        fn decoding_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let (_, valid) = decode_records(&bytes);
            prop_assert!(valid <= bytes.len());
            let _ = Head::decode(&bytes);
        }
    }
}
