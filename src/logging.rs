//! The log's format, and how values from outside reach it. A log line must stay one line
//! that says only what makrcave wrote: a value that came from a request, a token, a card
//! reader or an MQTT topic (a name, a user id, a topic, an error quoting any of them) is
//! logged escaped, so that a line feed or a terminal escape sequence in it cannot forge
//! another line or recolour the operator's terminal.
//!
//! Two ways, both escaping: `field = ?value` (Debug: a quoted, escaped string) for values
//! given as they are, and `field = %escaped(&value)` for values whose Display text may
//! quote input (errors). Never `%value` or a value inside the message text.

use std::fmt::{self, Display, Write as _};

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

/// A value whose Display text is written with its control characters (and the Unicode line
/// and paragraph separators) escaped as `\n`, `\u{1b}`, ...; everything else as it is.
pub struct Escaped<T>(T);

/// Wraps a value for a log field: see [`Escaped`].
pub fn escaped<T: Display>(value: T) -> Escaped<T> {
    Escaped(value)
}

impl<T: Display> Display for Escaped<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.to_string().chars() {
            if c.is_control() || c == '\u{2028}' || c == '\u{2029}' {
                write!(f, "{}", c.escape_default())?;
            } else {
                f.write_char(c)?;
            }
        }
        Ok(())
    }
}

/// The process's subscriber: `filter` (the `--log` setting; the default when it does not
/// parse), lines written to `writer`, colours only when `ansi` (a terminal).
pub fn subscriber<W>(filter: &str, writer: W, ansi: bool) -> impl tracing::Subscriber + Send + Sync + 'static
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new(crate::config::DEFAULT_LOG));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer).with_ansi(ansi).finish()
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Lines the subscriber wrote, kept for the test to read.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("not poisoned").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for Captured {
        type Writer = Captured;
        fn make_writer(&'w self) -> Captured {
            self.clone()
        }
    }

    #[test]
    fn values_with_line_feeds_and_escape_sequences_log_on_one_line() {
        let out = Captured::default();
        let forged = "mallory\n2026-12-01T00:00:00Z  INFO makrcave: granted to \x1b[31madmin\x1b[0m\u{2028}";
        let error = format!("unknown machine {forged}");
        tracing::subscriber::with_default(subscriber("info", out.clone(), false), || {
            tracing::info!(user = ?forged, error = %escaped(&error), "closing WebSocket client");
        });
        let text = String::from_utf8(out.0.lock().expect("not poisoned").clone()).expect("UTF-8");
        assert_eq!(text.matches('\n').count(), 1, "one line: {text:?}");
        assert!(text.ends_with('\n'));
        assert!(!text.contains('\x1b') && !text.contains('\u{2028}'), "{text:?}");
        assert!(
            text.contains(r#"user="mallory\n2026-12-01T00:00:00Z  INFO makrcave: granted to \u{1b}[31madmin"#),
            "{text:?}"
        );
        assert!(text.contains(r"error=unknown machine mallory\n2026"), "{text:?}");
        assert!(text.contains(r"\u{1b}[0m\u{2028}"), "{text:?}");
    }

    #[test]
    fn escaped_leaves_printable_text_alone() {
        assert_eq!(escaped("Zoë Ångström, 李").to_string(), "Zoë Ångström, 李");
        assert_eq!(escaped("a\tb\r\n\u{0}").to_string(), r"a\tb\r\n\u{0}");
    }
}
