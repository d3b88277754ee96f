//! GRBL 1.1 (lasers, CNC): the response parser and the streaming state machine.

pub mod parse;
pub mod session;
