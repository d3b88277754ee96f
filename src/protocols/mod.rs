//! Everything that speaks to machines. Parsing is pure (topic and payload in, domain input
//! out) and unit tested; the I/O loops around it are thin.
//!
//! - [`generic`]: the `makrcave/{space}/{machine}/...` topics of makrcave-bridge and firmware.
//! - [`mqtt`]: the MQTT link (connect, subscribe, route to actors, reconnect).
//! - [`plugs`]: Tasmota and Shelly plugs in their own topics; [`plug_routes`]: which plug is
//!   whose, and the subscriptions that follow.
//! - [`broker`]: the embedded broker used when no external one is configured.
//! - [`bambu`]: Bambu Lab printers in LAN mode (their reports and requests; the client that
//!   connects to each printer's own broker comes next).
//! - [`adapter`]: machines followed by a client task of their own, and their commands;
//!   [`octoprint`]: OctoPrint's REST API and push socket.
//! - [`gateways`]: not a machine: the payment gateways' APIs (Stripe, Razorpay), the other
//!   peers makrcave calls over HTTP.

pub mod adapter;
pub mod backoff;
pub mod bambu;
pub mod broker;
pub mod commands;
pub mod gateways;
pub mod generic;
pub mod mqtt;
pub mod octoprint;
pub mod plug_routes;
pub mod plugs;
