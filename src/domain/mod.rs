//! Pure rules of the shop floor. Nothing here does I/O or knows about actix, sqlx or an MQTT client:
//! plain types and functions, tested with unit and property tests.

pub mod access;
/// The signed offline allowlist bridges keep for when makrcave cannot be reached.
pub mod allowlist;
pub mod billing;
pub mod booking;
pub mod busy;
pub mod cards;
pub mod currency;
pub mod devices;
pub mod equipment;
pub mod guessing;
pub mod holds;
pub mod ids;
pub mod inventory;
/// Uploaded job files: their kind sniffed from the content, and streamed STL and G-code analysis.
pub mod job_files;
pub mod job_lifecycle;
pub mod jobs;
pub mod machine;
pub mod machine_health;
pub mod members;
pub mod mqtt_access;
pub mod plug;
pub mod pricing;
/// Makerspaces in service-provider mode, and which of them a service order is offered to.
pub mod providers;
pub mod purchasing;
/// The job router's decisions: which queued job goes to which machine, and why a job waits.
pub mod routing;
pub mod secrets;
/// A service order's statuses and history.
pub mod service_orders;
pub mod skills;
pub mod spools;
pub mod validate;
