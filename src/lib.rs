//! makrcave: the real-time shop floor of a makerspace or print farm.
//!
//! - [`actors`]: one supervised actor per machine, the fleet, the WebSocket hub.
//! - [`protocols`]: MQTT (generic topics; later Tasmota, Shelly, Bambu) and the broker.
//! - [`web`]: REST, WebSocket, auth, errors, pages.
//! - [`domain`]: pure rules (machine states, access, ids), no I/O.
//! - [`store`]: SQLite and PostgreSQL persistence.
//! - [`app`]: builds and runs all of it from [`config::Settings`].

pub mod actors;
pub mod app;
pub mod config;
pub mod demo;
pub mod domain;
pub mod metrics;
pub mod notify;
pub mod protocols;
pub mod store;
pub mod web;

pub use app::Application;

/// Makes ring the process-wide rustls provider (HTTPS to JWKS and OctoPrint, PostgreSQL and
/// SMTP over TLS). rustls needs exactly one; calling this again is harmless.
pub fn install_crypto_provider() {
    // Err only means a provider is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
pub use config::Settings;
