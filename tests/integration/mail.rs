//! Emails caught by a real SMTP server (aiosmtpd).
