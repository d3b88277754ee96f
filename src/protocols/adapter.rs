//! Machines driven by a client task of their own (OctoPrint now; Bambu and Moonraker later):
//! the task follows the machine and delivers its reports to the machine's actor, and the
//! actor hands it the job commands to carry out. Each command is answered once the machine
//! has taken or refused it, so a refusal reaches whoever gave the command.

use tokio::sync::{mpsc, oneshot};

use crate::domain::jobs::{JobCommand, JobRefusal};

/// Commands an adapter may have waiting: a person presses pause once, the router sends one
/// start at a time; more than a few waiting means the machine is not answering.
pub const COMMAND_QUEUE: usize = 8;

/// A job command for the adapter, with where its answer goes.
#[derive(Debug)]
pub struct AdapterCommand {
    pub command: JobCommand,
    pub reply: oneshot::Sender<Result<(), JobRefusal>>,
}

/// How a machine's actor reaches its adapter.
pub type AdapterSender = mpsc::Sender<AdapterCommand>;
/// Where an adapter takes its commands from.
pub type AdapterReceiver = mpsc::Receiver<AdapterCommand>;

/// A new command channel between an actor and its adapter.
pub fn channel() -> (AdapterSender, AdapterReceiver) {
    mpsc::channel(COMMAND_QUEUE)
}
