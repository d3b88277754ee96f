//! Emails: sent through SMTP, or written to an outbox folder when no SMTP server is configured.
