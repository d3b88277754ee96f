//! makrcave-bridge as a library: the binary wires these modules together.

pub mod controller;
pub mod sim;
