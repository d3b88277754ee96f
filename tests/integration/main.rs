//! Integration tests: the real program, with a real broker and a real database.
//! One test binary (one link step) for the whole suite.

mod api;
mod architecture;
mod bambu;
mod bambu_printer;
mod browser;
mod common;
mod demo;
mod input;
mod inventory;
mod inventory_bulk;
mod invites;
mod jobs;
mod jwks;
mod kiosk;
mod live;
mod mail;
mod mailbox;
mod members;
mod mqtt_auth;
mod mqtt_link;
mod octoprint;
mod octoprint_server;
mod ops;
mod pages;
mod plugs;
mod reorders;
mod reservations;
mod reserved;
mod roles;
mod secrets;
mod sessions;
mod skills;
mod spools;
mod waitlist;
mod websocket;
