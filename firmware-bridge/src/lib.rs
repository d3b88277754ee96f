//! makrcave-bridge as a library: the binary and the tests build the same pieces.

pub mod allowlist;
pub mod app;
pub mod card;
pub mod check;
pub mod command;
pub mod config;
pub mod indicator;
pub mod jobs;
pub mod link;
pub mod queue;
pub mod relay;
pub mod server;
pub mod session;
