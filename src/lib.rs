//! makrcave: the real-time shop floor of a makerspace or print farm.
//!
//! The way down is one way: [`web`] -> [`services`] -> ([`actors`], [`store`], [`protocols`])
//! -> [`domain`].
//!
//! - [`web`]: actix-web only: extract and authorize, call a service, map its result to HTTP;
//!   the WebSocket, auth, errors, pages.
//! - [`services`]: the shop floor's workflows, free of HTTP: kiosk decisions, sessions,
//!   bookings and the waitlist, the skill gate, members' lifecycle, skills. Every entry point
//!   (REST, MQTT events, timers) calls the same functions.
//! - [`actors`]: one supervised actor per machine, the fleet, the WebSocket hub, the state
//!   writer.
//! - [`protocols`]: MQTT (generic topics; later Tasmota, Shelly, Bambu) and the broker.
//! - [`store`]: SQLite and PostgreSQL persistence.
//! - [`domain`]: pure rules (machine states, access, booking, skills, ids), no I/O.
//! - [`logging`]: the log's format, and how values from outside are escaped in it.
//! - [`app`]: builds and runs all of it from [`config::Settings`] (the wiring).

pub mod actors;
pub mod app;
pub mod config;
pub mod demo;
pub mod domain;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod protocols;
pub mod services;
pub mod store;
pub mod web;

pub use app::Application;

#[cfg(test)]
mod held_memory;

/// Makes ring the process-wide rustls provider (HTTPS to JWKS and OctoPrint, PostgreSQL and
/// SMTP over TLS). rustls needs exactly one; calling this again is harmless.
pub fn install_crypto_provider() {
    // Err only means a provider is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
pub use config::Settings;
