//! When a machine behind a smart plug is busy, from its power draw, and how long it was busy.
//!
//! - [`PowerHold`]: the machine is `running` once its power has stayed above the connection's
//!   `running_above_w` for `running_after_s`, and stops running once it has stayed below for
//!   as long. The hold works both ways so that one spike (a laser's pulse, a heater's cycle)
//!   does not flap the state. Time is passed in, never read.
//! - [`BusyClock`]: the time a machine spent `running` since a point (a session's start), so
//!   that a session's usage record says how much of it the machine actually worked.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The hold when the connection does not set `running_after_s`.
pub const DEFAULT_RUNNING_AFTER: Duration = Duration::from_secs(5);

/// What the machine's power says, after the hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing changes.
    Stay,
    /// The machine now runs (`true`) or stops running (`false`).
    Flip(bool),
    /// The power crossed the threshold; ask again at this time.
    WaitUntil(DateTime<Utc>),
}

/// The pending crossing of the threshold of one machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PowerHold {
    /// The side the readings have been on (`true`: above) since when, while that differs
    /// from the machine's state.
    crossed: Option<(bool, DateTime<Utc>)>,
}

impl PowerHold {
    /// Takes a power reading. `running` is the machine's state now.
    pub fn reading(
        &mut self,
        running: bool,
        power_w: f64,
        threshold_w: f64,
        hold: Duration,
        now: DateTime<Utc>,
    ) -> Verdict {
        let above = power_w > threshold_w;
        if above == running {
            self.crossed = None;
            return Verdict::Stay;
        }
        match self.crossed {
            Some((side, _)) if side == above => {}
            _ => self.crossed = Some((above, now)),
        }
        self.check(running, hold, now)
    }

    /// Decides a pending crossing at `now` (a timer set for [`Verdict::WaitUntil`] fired).
    pub fn check(&mut self, running: bool, hold: Duration, now: DateTime<Utc>) -> Verdict {
        let Some((side, since)) = self.crossed.filter(|(side, _)| *side != running) else {
            self.crossed = None;
            return Verdict::Stay;
        };
        let due = since + chrono::Duration::from_std(hold).unwrap_or(chrono::Duration::MAX);
        if now >= due {
            self.crossed = None;
            Verdict::Flip(side)
        } else {
            Verdict::WaitUntil(due)
        }
    }

    /// Forgets a pending crossing (the machine went away: its readings say nothing now).
    pub fn reset(&mut self) {
        self.crossed = None;
    }
}

/// Time spent running since a start, kept with the live state so that a restart of
/// makrcave keeps the busy time of the session in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct BusyClock {
    /// Whole running spells since the start, in milliseconds.
    #[serde(default)]
    busy_ms: i64,
    /// When the spell in progress began, if the machine runs now.
    #[serde(default)]
    running_since: Option<DateTime<Utc>>,
}

impl BusyClock {
    /// A clock that starts counting at `now` (a session starts), already running or not.
    pub fn starting(running: bool, now: DateTime<Utc>) -> Self {
        BusyClock { busy_ms: 0, running_since: running.then_some(now) }
    }

    /// Notes whether the machine runs after a change at `now`.
    pub fn observe(&mut self, running: bool, now: DateTime<Utc>) {
        match (running, self.running_since) {
            (true, None) => self.running_since = Some(now),
            (false, Some(since)) => {
                self.busy_ms += (now - since).num_milliseconds().max(0);
                self.running_since = None;
            }
            _ => {}
        }
    }

    /// The busy time until `now`.
    pub fn total(&self, now: DateTime<Utc>) -> chrono::Duration {
        let spell = self.running_since.map_or(0, |since| (now - since).num_milliseconds().max(0));
        chrono::Duration::milliseconds(self.busy_ms + spell)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).expect("a valid time")
    }

    const HOLD: Duration = Duration::from_secs(5);

    #[test]
    fn power_held_above_the_threshold_makes_the_machine_run() {
        let mut hold = PowerHold::default();
        assert_eq!(hold.reading(false, 10.0, 50.0, HOLD, at(0)), Verdict::Stay);
        assert_eq!(hold.reading(false, 120.0, 50.0, HOLD, at(1)), Verdict::WaitUntil(at(6)));
        // Later readings above keep the first crossing's time.
        assert_eq!(hold.reading(false, 130.0, 50.0, HOLD, at(3)), Verdict::WaitUntil(at(6)));
        assert_eq!(hold.check(false, HOLD, at(5)), Verdict::WaitUntil(at(6)));
        assert_eq!(hold.check(false, HOLD, at(6)), Verdict::Flip(true));
        // Decided: nothing pending any more.
        assert_eq!(hold.check(true, HOLD, at(7)), Verdict::Stay);
        assert_eq!(hold.reading(true, 125.0, 50.0, HOLD, at(8)), Verdict::Stay);
    }

    #[test]
    fn one_spike_does_not_flap() {
        let mut hold = PowerHold::default();
        assert_eq!(hold.reading(false, 900.0, 50.0, HOLD, at(0)), Verdict::WaitUntil(at(5)));
        assert_eq!(hold.reading(false, 3.0, 50.0, HOLD, at(2)), Verdict::Stay);
        assert_eq!(hold.check(false, HOLD, at(5)), Verdict::Stay, "the spike is forgotten");
        // Running, one dip below does not stop it either; a new crossing starts the hold again.
        assert_eq!(hold.reading(true, 0.0, 50.0, HOLD, at(10)), Verdict::WaitUntil(at(15)));
        assert_eq!(hold.reading(true, 80.0, 50.0, HOLD, at(11)), Verdict::Stay);
        assert_eq!(hold.reading(true, 0.0, 50.0, HOLD, at(12)), Verdict::WaitUntil(at(17)));
        assert_eq!(hold.reading(true, 0.0, 50.0, HOLD, at(17)), Verdict::Flip(false));
    }

    #[test]
    fn the_threshold_itself_is_not_above_it_and_no_hold_decides_at_once() {
        let mut hold = PowerHold::default();
        assert_eq!(hold.reading(false, 50.0, 50.0, HOLD, at(0)), Verdict::Stay);
        assert_eq!(hold.reading(false, 50.1, 50.0, Duration::ZERO, at(0)), Verdict::Flip(true));
        hold.reading(true, 0.0, 50.0, HOLD, at(1));
        hold.reset();
        assert_eq!(hold.check(true, HOLD, at(9)), Verdict::Stay, "a reset forgets the crossing");
    }

    #[test]
    fn busy_time_counts_running_spells_only() {
        let mut clock = BusyClock::starting(false, at(0));
        clock.observe(false, at(10));
        clock.observe(true, at(60));
        clock.observe(true, at(90));
        clock.observe(false, at(180));
        assert_eq!(clock.total(at(600)), chrono::Duration::seconds(120));
        clock.observe(true, at(600));
        assert_eq!(clock.total(at(630)), chrono::Duration::seconds(150), "the spell in progress counts");
        let running_at_start = BusyClock::starting(true, at(1000));
        assert_eq!(running_at_start.total(at(1060)), chrono::Duration::seconds(60));
    }

    proptest! {
        #[test]
        fn busy_time_never_exceeds_the_time_elapsed(flips in proptest::collection::vec((0i64..100, any::<bool>()), 0..40)) {
            let mut clock = BusyClock::starting(false, at(0));
            let mut now = 0;
            for (step, running) in flips {
                now += step;
                clock.observe(running, at(now));
            }
            let total = clock.total(at(now + 1));
            prop_assert!(total >= chrono::Duration::zero());
            prop_assert!(total <= chrono::Duration::seconds(now + 1));
        }

        #[test]
        fn a_verdict_to_wait_is_always_in_the_future(readings in proptest::collection::vec((0i64..10, 0.0f64..200.0), 0..40)) {
            let mut hold = PowerHold::default();
            let mut running = false;
            let mut now = 0;
            for (step, power) in readings {
                now += step;
                match hold.reading(running, power, 100.0, HOLD, at(now)) {
                    Verdict::Flip(to) => { prop_assert_ne!(to, running); running = to; }
                    Verdict::WaitUntil(due) => prop_assert!(due > at(now)),
                    Verdict::Stay => {}
                }
            }
        }
    }
}
