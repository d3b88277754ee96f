//! How a kiosk resists card guessing: after `unknown_cards` unknown cards within `window`, the
//! kiosk is slowed down for a backoff; each further backoff (the guessing goes on after one
//! ended) lasts twice as long, up to `backoff_max`; a quiet spell (no unknown card for
//! `backoff_max` plus `window`) starts afresh. A known card neither counts nor resets
//! anything: a guesser holding one valid card must not be able to clear the count with it.
//!
//! Pure: the caller passes the time, so the rules are tested without waiting.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The settings (from the configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KioskGuardSettings {
    /// Unknown cards within `window` that slow a kiosk down.
    pub unknown_cards: u32,
    pub window: Duration,
    /// The first backoff.
    pub backoff: Duration,
    /// The longest backoff.
    pub backoff_max: Duration,
}

/// One kiosk's guard.
#[derive(Debug, Default, Clone)]
pub struct Guard {
    /// When the recent unknown cards were presented (those within the window, at most
    /// `unknown_cards` of them).
    unknown: VecDeque<Instant>,
    /// Backoffs so far in this run of guessing: the next one is `backoff * 2^strikes`.
    strikes: u32,
    /// The end of the current backoff.
    until: Option<Instant>,
    /// The last unknown card: a quiet spell of `backoff_max` after it forgets the strikes.
    last_unknown: Option<Instant>,
}

/// A backoff that just began: what the kiosk's admins are told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Unknown cards that caused it (within the window).
    pub unknown_cards: u32,
    pub duration: Duration,
}

impl Guard {
    /// `Err(wait)` while the kiosk is slowed down.
    pub fn check(&self, now: Instant) -> Result<(), Duration> {
        match self.until {
            Some(until) if until > now => Err(until - now),
            _ => Ok(()),
        }
    }

    /// Counts an unknown card; returns the backoff it starts, if it is the one too many.
    pub fn unknown_card(&mut self, settings: &KioskGuardSettings, now: Instant) -> Option<Backoff> {
        if self.last_unknown.is_some_and(|last| now.duration_since(last) >= settings.backoff_max + settings.window) {
            self.strikes = 0;
        }
        self.last_unknown = Some(now);
        while self.unknown.front().is_some_and(|&at| now.duration_since(at) >= settings.window) {
            self.unknown.pop_front();
        }
        self.unknown.push_back(now);
        if (self.unknown.len() as u64) < u64::from(settings.unknown_cards) {
            return None;
        }
        let factor = 2u32.checked_pow(self.strikes).unwrap_or(u32::MAX);
        let duration = settings.backoff.checked_mul(factor).unwrap_or(settings.backoff_max).min(settings.backoff_max);
        self.strikes = self.strikes.saturating_add(1);
        self.until = Some(now + duration);
        let unknown_cards = self.unknown.len() as u32;
        self.unknown.clear();
        Some(Backoff { unknown_cards, duration })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: KioskGuardSettings = KioskGuardSettings {
        unknown_cards: 3,
        window: Duration::from_secs(60),
        backoff: Duration::from_secs(10),
        backoff_max: Duration::from_secs(35),
    };

    fn at(start: Instant, s: u64) -> Instant {
        start + Duration::from_secs(s)
    }

    #[test]
    fn too_many_unknown_cards_in_the_window_slow_the_kiosk_down() {
        let t0 = Instant::now();
        let mut g = Guard::default();
        assert_eq!(g.unknown_card(&S, at(t0, 0)), None);
        assert_eq!(g.unknown_card(&S, at(t0, 1)), None);
        let backoff = g.unknown_card(&S, at(t0, 2)).expect("the third starts a backoff");
        assert_eq!(backoff, Backoff { unknown_cards: 3, duration: Duration::from_secs(10) });
        assert_eq!(g.check(at(t0, 5)), Err(Duration::from_secs(7)));
        assert_eq!(g.check(at(t0, 12)), Ok(()));
    }

    #[test]
    fn unknown_cards_spread_beyond_the_window_never_add_up() {
        let t0 = Instant::now();
        let mut g = Guard::default();
        for i in 0..10 {
            assert_eq!(g.unknown_card(&S, at(t0, i * 31)), None, "card {i}");
        }
        assert_eq!(g.check(at(t0, 400)), Ok(()));
    }

    #[test]
    fn each_further_backoff_doubles_up_to_the_cap() {
        let t0 = Instant::now();
        let mut g = Guard::default();
        let mut now = 0;
        let mut durations = Vec::new();
        for _ in 0..4 {
            let mut started = None;
            while started.is_none() {
                started = g.unknown_card(&S, at(t0, now));
                now += 1;
            }
            let d = started.expect("a backoff").duration;
            durations.push(d.as_secs());
            now += d.as_secs();
        }
        assert_eq!(durations, vec![10, 20, 35, 35]);
        assert_eq!(g.check(at(t0, now)), Ok(()), "over after its time");
    }

    #[test]
    fn a_long_quiet_spell_forgets_the_strikes() {
        let t0 = Instant::now();
        let mut g = Guard::default();
        for i in 0..3 {
            g.unknown_card(&S, at(t0, i));
        }
        for i in 0..3 {
            g.unknown_card(&S, at(t0, 1000 + i));
        }
        assert_eq!(g.check(at(t0, 1002)), Err(Duration::from_secs(10)), "not doubled after a quiet hour");
    }
}
