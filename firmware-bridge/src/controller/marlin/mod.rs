//! Marlin (printers): the response parser and the streaming state machine.

pub mod parse;
pub mod session;
