//! Persists machine state changes in order, in batches, off the actors' threads.
//!
//! Actors hand changes over through a bounded channel; the writer takes whatever has queued
//! up and stores it in one transaction, so a burst of transitions costs one commit.

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::store::machine_states::StateChange;
use crate::store::Store;

/// Changes that may wait for the writer before actors are made to wait too.
pub const QUEUE_CAPACITY: usize = 4096;
/// Most changes stored in one transaction.
const MAX_BATCH: usize = 512;

pub type StateSender = mpsc::Sender<StateChange>;

/// Starts the writer. It ends when every sender is dropped, or when `stop` is cancelled (after
/// the actors are gone), in both cases once the queue is drained.
pub fn spawn(store: Store, stop: CancellationToken) -> (StateSender, JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel::<StateChange>(QUEUE_CAPACITY);
    let task = tokio::spawn(async move {
        let mut batch = Vec::with_capacity(MAX_BATCH);
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
            if let Err(err) = store.save_state_changes(&batch).await {
                metrics::counter!(crate::metrics::STATE_PERSIST_ERRORS).increment(batch.len() as u64);
                tracing::error!(error = ?err, changes = batch.len(), "could not persist machine state changes");
            }
            batch.clear();
        }
    });
    (tx, task)
}
