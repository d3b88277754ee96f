//! The live part of makrcave: one supervised actor per machine ([`machine`]), the fleet that
//! starts, stops and finds them ([`fleet`]), the writer that persists their transitions
//! ([`state_writer`]), the hub that fans their changes out to WebSocket clients ([`hub`]), and the job router
//! that sends queued jobs to capable, free machines ([`router`]).

pub mod fleet;
pub mod hub;
pub mod machine;
pub mod router;
pub mod state_writer;
