//! Bambu Lab printers in LAN mode: each printer runs its own MQTT broker (TLS on 8883, user
//! `bblp`, the LAN access code as password), reports on `device/{serial}/report` and takes
//! requests on `device/{serial}/request` (DESIGN.md, "Machines in their own protocols").
//!
//! - [`report`]: pure: partial reports merged into the last full state, and what makrcave
//!   reads from it (state, job, temperatures, HMS errors, AMS trays and nozzle, job events).
//! - [`request`]: pure: the requests makrcave sends, numbered so that replies can be matched.

pub mod report;
pub mod request;
