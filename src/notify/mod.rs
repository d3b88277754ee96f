//! Notifications to people: emails (SMTP or an outbox folder).

pub mod email;
