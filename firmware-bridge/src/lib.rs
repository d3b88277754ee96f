//! makrcave-bridge as a library: the binary and the tests build the same pieces.
//!
//! `bridge` puts them together: the run loop (`app`) and the machine's serial `controller`.

pub mod allowlist;
pub mod app;
pub mod bridge;
pub mod card;
pub mod check;
pub mod command;
pub mod config;
pub mod controller;
pub mod indicator;
pub mod jobs;
pub mod link;
pub mod queue;
pub mod relay;
pub mod server;
pub mod session;
/// Simulated GRBL and Marlin controllers on pseudo-terminals, for tests and trying the bridge
/// without a machine.
pub mod sim;
