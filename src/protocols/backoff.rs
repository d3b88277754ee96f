//! Waits between attempts to reach a machine's own service (OctoPrint, a Bambu printer's
//! broker): doubling from a short first wait up to a cap,
//! each with random jitter, so that a farm whose OctoPrints all went down together (a power
//! cut, a network switch) does not come back as one burst of requests.

use std::time::Duration;

use rand::Rng;

/// The first wait after a lost connection: short, a restart of OctoPrint takes seconds.
pub const FIRST: Duration = Duration::from_millis(500);
/// The longest wait while OctoPrint is unreachable.
pub const CAP: Duration = Duration::from_secs(30);
/// The wait after OctoPrint refused the API key: a person must fix the key, and retrying
/// sooner would only fill OctoPrint's log with failed logins.
pub const REFUSED: Duration = Duration::from_secs(300);
/// Each wait is drawn from ±this fraction around its nominal value.
const JITTER: f64 = 0.25;

/// The waits between attempts while OctoPrint is unreachable.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { next: FIRST }
    }
}

impl Backoff {
    /// The next wait (jittered); the one after is twice as long, up to [`CAP`].
    pub fn next_wait(&mut self) -> Duration {
        let nominal = self.next;
        self.next = (self.next * 2).min(CAP);
        jittered(nominal)
    }

    /// After a connection that worked: the next loss starts from [`FIRST`] again.
    pub fn reset(&mut self) {
        self.next = FIRST;
    }
}

/// `nominal` moved by a random amount within ±[`JITTER`].
pub fn jittered(nominal: Duration) -> Duration {
    let factor = rand::rng().random_range((1.0 - JITTER)..=(1.0 + JITTER));
    nominal.mul_f64(factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_cap_with_jitter_and_reset() {
        let mut backoff = Backoff::default();
        let waits: Vec<Duration> = (0..10).map(|_| backoff.next_wait()).collect();
        let mut nominal = FIRST;
        for wait in &waits {
            assert!(
                *wait >= nominal.mul_f64(1.0 - JITTER) && *wait <= nominal.mul_f64(1.0 + JITTER),
                "{wait:?} around {nominal:?}"
            );
            nominal = (nominal * 2).min(CAP);
        }
        assert!(waits[9] >= CAP.mul_f64(1.0 - JITTER));
        backoff.reset();
        assert!(backoff.next_wait() <= FIRST.mul_f64(1.0 + JITTER));
        let spread: std::collections::HashSet<Duration> = (0..20).map(|_| jittered(CAP)).collect();
        assert!(spread.len() > 1, "two printers do not wait the same");
    }
}
