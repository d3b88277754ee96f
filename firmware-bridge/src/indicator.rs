//! The local signals: an LED or buzzer that says granted or refused, and the bed-clear button.

use std::sync::Arc;
use std::time::Duration;

use gpiocdev::line::{EdgeDetection, Value};
use tokio::sync::mpsc;

use crate::config::GpioLine;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Granted,
    Refused,
}

/// The on/off steps of a signal: granted is one long light, refused three short blinks, so
/// they differ for the eye and the ear alike.
pub fn pattern(signal: Signal) -> &'static [(bool, Duration)] {
    const SHORT: Duration = Duration::from_millis(150);
    const GRANTED: [(bool, Duration); 2] = [(true, Duration::from_secs(1)), (false, Duration::ZERO)];
    const REFUSED: [(bool, Duration); 6] =
        [(true, SHORT), (false, SHORT), (true, SHORT), (false, SHORT), (true, SHORT), (false, SHORT)];
    match signal {
        Signal::Granted => &GRANTED,
        Signal::Refused => &REFUSED,
    }
}

/// The indicator; without a configured line it only logs.
#[derive(Debug, Clone, Default)]
pub struct Indicator {
    line: Option<Arc<gpiocdev::Request>>,
}

impl Indicator {
    pub fn open(line: Option<&GpioLine>) -> Result<Indicator, gpiocdev::Error> {
        let Some(line) = line else { return Ok(Indicator::default()) };
        let mut builder = gpiocdev::Request::builder();
        builder.on_chip(&line.chip).with_consumer("makrcave-bridge indicator").with_line(line.line);
        if line.active_low {
            builder.as_active_low();
        }
        let request = builder.as_output(Value::Inactive).request()?;
        Ok(Indicator { line: Some(Arc::new(request)) })
    }

    /// Plays the signal in the background (the run loop does not wait for a blink).
    pub fn signal(&self, signal: Signal) {
        tracing::info!(?signal, "indicator");
        let Some(line) = self.line.clone() else { return };
        tokio::spawn(async move {
            for (on, duration) in pattern(signal) {
                let value = if *on { Value::Active } else { Value::Inactive };
                if let Err(err) = line.set_lone_value(value) {
                    tracing::warn!(error = %err, "indicator line");
                    return;
                }
                tokio::time::sleep(*duration).await;
            }
        });
    }
}

/// Debounce for the push button: contacts bounce for a few milliseconds.
const BUTTON_DEBOUNCE: Duration = Duration::from_millis(30);

/// Watches the bed-clear button; each press (edge to active) is one message. The line is read
/// on its own thread, as gpiocdev's edge events are blocking reads.
#[derive(Debug, thiserror::Error)]
pub enum ButtonError {
    #[error("GPIO: {0}")]
    Gpio(#[from] gpiocdev::Error),
    #[error("cannot start the button's thread: {0}")]
    Thread(std::io::Error),
}

pub fn watch_button(line: &GpioLine) -> Result<mpsc::Receiver<()>, ButtonError> {
    let mut builder = gpiocdev::Request::builder();
    builder
        .on_chip(&line.chip)
        .with_consumer("makrcave-bridge bed-clear")
        .with_line(line.line)
        .as_input()
        .with_edge_detection(EdgeDetection::RisingEdge)
        .with_debounce_period(BUTTON_DEBOUNCE);
    if line.active_low {
        builder.as_active_low();
    }
    let request = builder.request()?;
    let (tx, rx) = mpsc::channel(4);
    std::thread::Builder::new()
        .name("bed-clear-button".into())
        .spawn(move || loop {
            match request.read_edge_event() {
                Ok(_) => {
                    if tx.blocking_send(()).is_err() {
                        return;
                    }
                }
                Err(err) => {
                    tracing::error!(error = %err, "bed-clear button: cannot read the line; button disabled");
                    return;
                }
            }
        })
        .map_err(ButtonError::Thread)?;
    Ok(rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_end_off_and_differ() {
        for signal in [Signal::Granted, Signal::Refused] {
            assert_eq!(pattern(signal).last().map(|s| s.0), Some(false));
        }
        assert_eq!(pattern(Signal::Refused).iter().filter(|s| s.0).count(), 3);
        assert_eq!(pattern(Signal::Granted).iter().filter(|s| s.0).count(), 1);
    }
}
