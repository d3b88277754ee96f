//! Card readers: a keyboard wedge (an input device that types the UID and Enter, read as raw
//! `input_event` structs from `/dev/input/eventN`, no extra crate) or a serial reader that
//! writes one UID per line. Both decode in pure assemblers; the readers around them only
//! move bytes and reopen the device when it goes away (a USB reader unplugged).

use std::path::PathBuf;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

use crate::config::CardConfig;

/// A UID longer than this is noise (a reader spewing garbage), not a card.
const MAX_UID_LEN: usize = 64;
/// Pause before reopening a reader that failed, so a missing device does not spin.
const REOPEN_DELAY: Duration = Duration::from_secs(2);

/// Turns a serial reader's bytes into UIDs: one per line (`\n` or `\r`), trimmed; blank,
/// overlong or non-text lines are dropped.
#[derive(Debug, Default)]
pub struct LineAssembler {
    line: Vec<u8>,
    overflowed: bool,
}

impl LineAssembler {
    pub fn push(&mut self, byte: u8) -> Option<String> {
        if byte == b'\n' || byte == b'\r' {
            let line = std::mem::take(&mut self.line);
            let overflowed = std::mem::take(&mut self.overflowed);
            let text = String::from_utf8(line).ok()?;
            let uid = text.trim();
            return (!overflowed && !uid.is_empty() && uid.chars().all(|c| c.is_ascii_graphic() || c == ' '))
                .then(|| uid.to_string());
        }
        if self.line.len() >= MAX_UID_LEN {
            self.overflowed = true;
        } else {
            self.line.push(byte);
        }
        None
    }
}

/// One `struct input_event`: a `struct timeval` (two C longs) then type, code and value.
pub const INPUT_EVENT_SIZE: usize = 2 * std::mem::size_of::<std::ffi::c_long>() + 8;
const EV_KEY: u16 = 1;
const KEY_PRESSED: i32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputEvent {
    pub kind: u16,
    pub code: u16,
    pub value: i32,
}

/// Decodes one native-endian `input_event` (the timestamp is skipped).
pub fn decode_input_event(bytes: &[u8; INPUT_EVENT_SIZE]) -> InputEvent {
    let at = INPUT_EVENT_SIZE - 8;
    InputEvent {
        kind: u16::from_ne_bytes([bytes[at], bytes[at + 1]]),
        code: u16::from_ne_bytes([bytes[at + 2], bytes[at + 3]]),
        value: i32::from_ne_bytes([bytes[at + 4], bytes[at + 5], bytes[at + 6], bytes[at + 7]]),
    }
}

/// The character a key types, for the keys a reader uses: digits (main row and keypad) and
/// letters (hex UIDs and readers that type other alphabets). Linux `input-event-codes.h`.
fn key_char(code: u16) -> Option<char> {
    const ROW_DIGITS: [(u16, char); 10] =
        [(2, '1'), (3, '2'), (4, '3'), (5, '4'), (6, '5'), (7, '6'), (8, '7'), (9, '8'), (10, '9'), (11, '0')];
    const KEYPAD_DIGITS: [(u16, char); 10] =
        [(79, '1'), (80, '2'), (81, '3'), (75, '4'), (76, '5'), (77, '6'), (71, '7'), (72, '8'), (73, '9'), (82, '0')];
    const LETTERS: [(u16, char); 26] = [
        (30, 'A'),
        (48, 'B'),
        (46, 'C'),
        (32, 'D'),
        (18, 'E'),
        (33, 'F'),
        (34, 'G'),
        (35, 'H'),
        (23, 'I'),
        (36, 'J'),
        (37, 'K'),
        (38, 'L'),
        (50, 'M'),
        (49, 'N'),
        (24, 'O'),
        (25, 'P'),
        (16, 'Q'),
        (19, 'R'),
        (31, 'S'),
        (20, 'T'),
        (22, 'U'),
        (47, 'V'),
        (17, 'W'),
        (45, 'X'),
        (21, 'Y'),
        (44, 'Z'),
    ];
    ROW_DIGITS.iter().chain(&KEYPAD_DIGITS).chain(&LETTERS).find(|(c, _)| *c == code).map(|(_, ch)| *ch)
}

const KEY_ENTER: u16 = 28;
const KEY_KPENTER: u16 = 96;

/// Turns key presses into UIDs: characters until Enter.
#[derive(Debug, Default)]
pub struct KeyAssembler {
    uid: String,
}

impl KeyAssembler {
    pub fn push(&mut self, event: InputEvent) -> Option<String> {
        if event.kind != EV_KEY || event.value != KEY_PRESSED {
            return None;
        }
        if event.code == KEY_ENTER || event.code == KEY_KPENTER {
            let uid = std::mem::take(&mut self.uid);
            return (!uid.is_empty() && uid.len() <= MAX_UID_LEN).then_some(uid);
        }
        if let Some(ch) = key_char(event.code) {
            // Past the limit keep counting (so the line is refused) without growing.
            if self.uid.len() <= MAX_UID_LEN {
                self.uid.push(ch);
            }
        }
        None
    }
}

/// Starts the configured reader; taps (UIDs as read) arrive on the channel. `None` for no reader.
/// The device is opened before this returns (when it can be), so nothing typed after the
/// bridge started is lost to the flush a serial port gets when it is opened.
/// A running card reader: its taps, and its task (which ends, and lets go of the device, once
/// `taps` is dropped).
pub struct CardReader {
    pub taps: mpsc::Receiver<String>,
    pub task: tokio::task::JoinHandle<()>,
}

impl CardReader {
    /// Stops reading and waits until the device is released (a restarted bridge opens it
    /// again at once: serial ports are opened exclusively).
    pub async fn stop(self) {
        drop(self.taps);
        let _ = self.task.await;
    }
}

pub fn spawn_reader(config: &CardConfig) -> Option<CardReader> {
    match config.clone() {
        CardConfig::None => None,
        CardConfig::Serial { port, baud } => Some(spawn_with(move || open_serial(&port, baud), read_serial)),
        CardConfig::Evdev { device } => Some(spawn_with(move || open_evdev(&device), read_evdev)),
    }
}

/// Opens now, then reads in a task until the channel closes, reopening after a failure.
fn spawn_with<S, O, R, Fut>(mut open: O, read: R) -> CardReader
where
    S: Send + 'static,
    O: FnMut() -> std::io::Result<S> + Send + 'static,
    R: Fn(S, mpsc::Sender<String>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = std::io::Result<()>> + Send,
{
    let (tx, rx) = mpsc::channel(16);
    let mut first = Some(open());
    let task = tokio::spawn(async move {
        while !tx.is_closed() {
            let result = match first.take().unwrap_or_else(&mut open) {
                // The reader stops (and lets go of the device) as soon as the bridge does, not
                // at the next card.
                Ok(source) => tokio::select! {
                    result = read(source, tx.clone()) => result,
                    () = tx.closed() => return,
                },
                Err(err) => Err(err),
            };
            match result {
                Ok(()) => return,
                Err(err) => tracing::warn!(error = %err, "card reader failed; reopening"),
            }
            tokio::select! {
                () = tokio::time::sleep(REOPEN_DELAY) => {}
                () = tx.closed() => return,
            }
        }
    });
    CardReader { taps: rx, task }
}

fn open_serial(port: &str, baud: u32) -> std::io::Result<tokio_serial::SerialStream> {
    let stream = tokio_serial::SerialStream::open(&tokio_serial::new(port, baud)).map_err(std::io::Error::from)?;
    tracing::info!(port, "serial card reader open");
    Ok(stream)
}

async fn read_serial(mut stream: tokio_serial::SerialStream, tx: mpsc::Sender<String>) -> std::io::Result<()> {
    let mut assembler = LineAssembler::default();
    let mut buf = [0u8; 256];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "reader closed"));
        }
        for uid in buf[..n].iter().filter_map(|b| assembler.push(*b)) {
            if tx.send(uid).await.is_err() {
                return Ok(());
            }
        }
    }
}

fn open_evdev(device: &PathBuf) -> std::io::Result<tokio::fs::File> {
    let file = std::fs::File::open(device)?;
    tracing::info!(device = %device.display(), "keyboard-wedge card reader open");
    Ok(tokio::fs::File::from_std(file))
}

async fn read_evdev(mut file: tokio::fs::File, tx: mpsc::Sender<String>) -> std::io::Result<()> {
    let mut assembler = KeyAssembler::default();
    let mut event = [0u8; INPUT_EVENT_SIZE];
    loop {
        file.read_exact(&mut event).await?;
        if let Some(uid) = assembler.push(decode_input_event(&event)) {
            if tx.send(uid).await.is_err() {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn feed(assembler: &mut LineAssembler, bytes: &[u8]) -> Vec<String> {
        bytes.iter().filter_map(|b| assembler.push(*b)).collect()
    }

    #[test]
    fn serial_lines_become_uids() {
        let mut a = LineAssembler::default();
        assert_eq!(feed(&mut a, b"04A1B2C3\r\n\r\n04:a1:b2:c4\n"), vec!["04A1B2C3", "04:a1:b2:c4"]);
        assert_eq!(feed(&mut a, b"04A1"), Vec::<String>::new());
        assert_eq!(feed(&mut a, b"B2C3\n"), vec!["04A1B2C3"]);
        assert_eq!(feed(&mut a, &[0xff, 0xfe, b'\n']), Vec::<String>::new());
        let long = vec![b'A'; 200];
        assert_eq!(feed(&mut a, &long), Vec::<String>::new());
        assert_eq!(feed(&mut a, b"\n04A1B2C3\n"), vec!["04A1B2C3"]);
    }

    fn raw_event(kind: u16, code: u16, value: i32) -> [u8; INPUT_EVENT_SIZE] {
        let mut bytes = [0u8; INPUT_EVENT_SIZE];
        // A real timestamp, to show it is skipped.
        bytes[..4].copy_from_slice(&1_700_000_000u32.to_ne_bytes());
        let at = INPUT_EVENT_SIZE - 8;
        bytes[at..at + 2].copy_from_slice(&kind.to_ne_bytes());
        bytes[at + 2..at + 4].copy_from_slice(&code.to_ne_bytes());
        bytes[at + 4..].copy_from_slice(&value.to_ne_bytes());
        bytes
    }

    #[test]
    fn a_keyboard_wedge_types_a_uid() {
        // What a wedge sends for "0A1": press/release pairs with SYN reports between them.
        const EV_SYN: u16 = 0;
        let mut events = Vec::new();
        for code in [11u16, 30, 2, KEY_ENTER] {
            events.push(raw_event(EV_KEY, code, 1));
            events.push(raw_event(EV_SYN, 0, 0));
            events.push(raw_event(EV_KEY, code, 0));
            events.push(raw_event(EV_SYN, 0, 0));
        }
        let mut a = KeyAssembler::default();
        let uids: Vec<String> = events.iter().filter_map(|e| a.push(decode_input_event(e))).collect();
        assert_eq!(uids, vec!["0A1"]);
        // Enter alone is no tap; autorepeat (value 2) adds nothing.
        assert_eq!(a.push(decode_input_event(&raw_event(EV_KEY, KEY_ENTER, 1))), None);
        assert_eq!(a.push(decode_input_event(&raw_event(EV_KEY, 2, 2))), None);
    }

    proptest! {
        #[test]
        fn readers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut lines = LineAssembler::default();
            let mut keys = KeyAssembler::default();
            for b in &bytes {
                let _ = lines.push(*b);
            }
            for chunk in bytes.chunks_exact(INPUT_EVENT_SIZE) {
                let mut event = [0u8; INPUT_EVENT_SIZE];
                event.copy_from_slice(chunk);
                let _ = keys.push(decode_input_event(&event));
            }
        }
    }
}
