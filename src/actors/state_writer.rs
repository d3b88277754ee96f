//! Persists the shop floor's writes in order, in batches, off the actors' threads: machine
//! state changes (with the sessions that ended) and the kiosk's audit rows.
//!
//! Actors and the kiosk hand entries over through a bounded channel; the writer takes
//! whatever has queued up and stores it in one transaction, so a burst costs one commit
//! (group commit). A kiosk answer waits for the commit that holds its audit row: entries are
//! stored in the order they were queued, so by then the session its unlock started (queued
//! by the machine's actor before the actor answered) is stored too.

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::store::kiosks::KioskAttempt;
use crate::store::machine_states::StateChange;
use crate::store::Store;

/// Entries that may wait for the writer before actors are made to wait too.
pub const QUEUE_CAPACITY: usize = 4096;
/// Most entries stored in one transaction.
const MAX_BATCH: usize = 512;

/// One thing to store. Most entries are state changes, so they are not boxed.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Entry {
    /// A machine's new state (and its transition and ended session).
    State(StateChange),
    /// A kiosk attempt for the floor's audit log; `stored` hears whether the batch that holds
    /// it was committed.
    Attempt { attempt: KioskAttempt, stored: Option<oneshot::Sender<bool>> },
}

pub type StateSender = mpsc::Sender<Entry>;

/// Queues a kiosk attempt and waits until it is stored. False when it could not be (the
/// database failed, or makrcave is shutting down).
pub async fn store_attempt(writer: &StateSender, attempt: KioskAttempt) -> bool {
    let (stored, answer) = oneshot::channel();
    if writer.send(Entry::Attempt { attempt, stored: Some(stored) }).await.is_err() {
        return false;
    }
    answer.await.unwrap_or(false)
}

/// Starts the writer. It ends when every sender is dropped, or when `stop` is cancelled (after
/// the actors are gone), in both cases once the queue is drained.
pub fn spawn(store: Store, stop: CancellationToken) -> (StateSender, JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel::<Entry>(QUEUE_CAPACITY);
    let task = tokio::spawn(async move {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        let mut changes = Vec::with_capacity(MAX_BATCH);
        let mut attempts = Vec::new();
        let mut waiting = Vec::new();
        loop {
            let received = tokio::select! {
                n = rx.recv_many(&mut batch, MAX_BATCH) => n,
                _ = stop.cancelled() => {
                    rx.close();
                    rx.recv_many(&mut batch, MAX_BATCH).await
                }
            };
            if received == 0 {
                break;
            }
            for entry in batch.drain(..) {
                match entry {
                    Entry::State(change) => changes.push(change),
                    Entry::Attempt { attempt, stored } => {
                        attempts.push(attempt);
                        waiting.extend(stored);
                    }
                }
            }
            let ok = match store.save_floor_batch(&changes, &attempts).await {
                Ok(()) => true,
                Err(err) => {
                    metrics::counter!(crate::metrics::STATE_PERSIST_ERRORS).increment(changes.len() as u64);
                    tracing::error!(error = ?err, changes = changes.len(), attempts = attempts.len(),
                        "could not persist machine state changes and kiosk attempts");
                    false
                }
            };
            for stored in waiting.drain(..) {
                let _ = stored.send(ok);
            }
            changes.clear();
            attempts.clear();
        }
    });
    (tx, task)
}
