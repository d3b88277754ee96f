//! Simulated controllers on pseudo-terminals, for tests: a GRBL 1.1 laser/CNC controller
//! and a Marlin printer. Each owns both ends of a pty pair, plays the firmware on the master
//! side and gives the slave's path (`/dev/pts/N`) to the code under test, which opens it as
//! it would open `/dev/ttyUSB0`. Each records what it executed, so tests can check that a
//! file arrived whole, once and in order.

pub mod grbl;
pub mod marlin;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_serial::{SerialPort, SerialStream};

/// Both ends of a pseudo-terminal.
struct Pty {
    /// The firmware's side.
    master: SerialStream,
    /// Kept open so the master never reads EIO while the code under test reopens the path.
    slave: SerialStream,
    path: PathBuf,
}

fn open_pty() -> std::io::Result<Pty> {
    let (master, slave) = SerialStream::pair().map_err(std::io::Error::other)?;
    let path = slave.name().map(PathBuf::from).ok_or_else(|| std::io::Error::other("the pty has no name"))?;
    Ok(Pty { master, slave, path })
}

/// A simulator's running task and what the handle needs: the path, the record, the control
/// channel. Dropping it stops the task.
struct SimTask<R, C> {
    path: PathBuf,
    record: Shared<R>,
    control: mpsc::UnboundedSender<C>,
    _slave: SerialStream,
    task: JoinHandle<()>,
}

impl<R: Default, C> SimTask<R, C> {
    /// Opens a pty and runs `firmware` on its master side (needs a tokio runtime).
    fn spawn<F, Fut>(firmware: F) -> std::io::Result<Self>
    where
        F: FnOnce(SerialStream, Shared<R>, mpsc::UnboundedReceiver<C>) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let pty = open_pty()?;
        let record = Shared::new();
        let (control, control_rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(firmware(pty.master, record.clone(), control_rx));
        Ok(SimTask { path: pty.path, record, control, _slave: pty.slave, task })
    }
}

impl<R, C> SimTask<R, C> {
    fn path(&self) -> &Path {
        &self.path
    }

    fn send(&self, control: C) {
        // The task only ends when the handle drops; a failed send has nobody to tell.
        let _ = self.control.send(control);
    }
}

impl<R, C> Drop for SimTask<R, C> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What a simulator recorded, shared between its task and its handle.
#[derive(Debug)]
struct Shared<T>(Arc<Mutex<T>>);

impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        Shared(Arc::clone(&self.0))
    }
}

impl<T: Default> Shared<T> {
    fn new() -> Self {
        Shared(Arc::new(Mutex::new(T::default())))
    }
}

impl<T> Shared<T> {
    /// A poisoned lock only means a test thread panicked while reading: the record is intact.
    fn lock(&self) -> MutexGuard<'_, T> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The number after `letter` in a G-code line (`S1000` in `M3 S1000`).
fn word(line: &str, letter: char) -> Option<f64> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(letter).or_else(|| w.strip_prefix(letter.to_ascii_lowercase())))
        .and_then(|v| v.parse().ok())
}

/// The command word of a line, upper-cased (`G1`, `M109`).
fn command(line: &str) -> String {
    line.split_whitespace().next().unwrap_or_default().to_ascii_uppercase()
}
