//! The bookings one machine knows about, and which of them is in progress.
//!
//! A machine's actor is told about each holding booking of its machine (confirmed or checked
//! in) and about each release (cancelled, rejected, no-show, completed). From them it derives
//! the booking in progress at any instant and when that next changes. Messages may arrive
//! out of order (a periodic re-telling of the book races with a cancellation), so a release
//! is remembered until the booking would have ended: a release is final, and a later
//! `reserve` of the same booking is stale.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::domain::machine::ReservationHold;

/// How many upcoming bookings are kept (the nearest ones): only the next one matters, and the
/// reservation book tells the machine again about the others as they come near.
pub const MAX_HOLDS: usize = 32;
/// How many releases are remembered at most (until their booking's end).
pub const MAX_RELEASED: usize = 4096;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Holds {
    /// Bookings that have not ended, by start (then id), at most [`MAX_HOLDS`].
    upcoming: Vec<ReservationHold>,
    /// Released bookings and when they would have ended.
    released: HashMap<String, DateTime<Utc>>,
}

impl Holds {
    /// Takes a holding booking, new or with changed times. Ignored when it has ended, was
    /// released, or is farther than the [`MAX_HOLDS`] nearest.
    pub fn reserve(&mut self, hold: ReservationHold, now: DateTime<Utc>) {
        if hold.end <= now || self.released.contains_key(&hold.id) {
            return;
        }
        self.upcoming.retain(|h| h.id != hold.id);
        let at = self.upcoming.partition_point(|h| (h.start, &h.id) < (hold.start, &hold.id));
        self.upcoming.insert(at, hold);
        self.upcoming.truncate(MAX_HOLDS);
    }

    /// Forgets a booking for good; `end` is when it would have ended.
    pub fn release(&mut self, id: &str, end: DateTime<Utc>, now: DateTime<Utc>) {
        self.upcoming.retain(|h| h.id != id);
        if end <= now {
            return;
        }
        self.released.retain(|_, until| *until > now);
        if self.released.len() >= MAX_RELEASED {
            // The one that ends first is the least likely to be told about again.
            if let Some(first) = self.released.iter().min_by_key(|(_, until)| **until).map(|(id, _)| id.clone()) {
                self.released.remove(&first);
            }
        }
        self.released.insert(id.to_string(), end);
    }

    /// Drops what has ended by `now`.
    pub fn prune(&mut self, now: DateTime<Utc>) {
        self.upcoming.retain(|h| h.end > now);
        self.released.retain(|_, until| *until > now);
    }

    /// The booking in progress at `now` (`start <= now < end`); the earliest if several.
    pub fn current(&self, now: DateTime<Utc>) -> Option<&ReservationHold> {
        self.upcoming.iter().find(|h| h.start <= now && now < h.end)
    }

    /// When the booking in progress may next change after `now`: the nearest future start or
    /// end of a known booking.
    pub fn next_change(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.upcoming.iter().flat_map(|h| [h.start, h.end]).filter(|t| *t > now).min()
    }

    pub fn len(&self) -> usize {
        self.upcoming.len()
    }

    pub fn is_empty(&self) -> bool {
        self.upcoming.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::machine::HoldKind;
    use chrono::Duration;
    use proptest::prelude::*;

    fn at(minutes: i64) -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp(1_800_000_000, 0).expect("valid instant") + Duration::minutes(minutes)
    }

    fn hold(id: &str, start: i64, end: i64) -> ReservationHold {
        ReservationHold { id: id.into(), user_id: "u".into(), kind: HoldKind::Booking, start: at(start), end: at(end) }
    }

    #[test]
    fn the_booking_in_progress_is_the_one_whose_interval_holds_now() {
        let mut h = Holds::default();
        h.reserve(hold("b", 60, 120), at(0));
        h.reserve(hold("a", 10, 60), at(0));
        assert_eq!(h.current(at(0)), None);
        assert_eq!(h.next_change(at(0)), Some(at(10)));
        assert_eq!(h.current(at(10)).map(|c| c.id.as_str()), Some("a"));
        assert_eq!(h.next_change(at(10)), Some(at(60)));
        // Touching bookings: the next one takes over at the same instant.
        assert_eq!(h.current(at(60)).map(|c| c.id.as_str()), Some("b"));
        assert_eq!(h.next_change(at(60)), Some(at(120)));
        assert_eq!(h.current(at(120)), None);
        assert_eq!(h.next_change(at(120)), None);
        h.prune(at(120));
        assert!(h.is_empty());
    }

    #[test]
    fn changed_times_replace_the_old_ones() {
        let mut h = Holds::default();
        h.reserve(hold("a", 10, 60), at(0));
        h.reserve(hold("a", 30, 40), at(0));
        assert_eq!(h.len(), 1);
        assert_eq!(h.current(at(20)), None);
        assert_eq!(h.current(at(35)).map(|c| c.id.as_str()), Some("a"));
    }

    #[test]
    fn a_release_is_final_until_the_booking_would_have_ended() {
        let mut h = Holds::default();
        h.reserve(hold("a", 10, 60), at(0));
        h.release("a", at(60), at(20));
        assert_eq!(h.current(at(20)), None);
        // A re-telling of the book that read it before the cancellation arrives late.
        h.reserve(hold("a", 10, 60), at(21));
        assert_eq!(h.current(at(21)), None);
        // Ended bookings are not taken either way.
        h.reserve(hold("old", 0, 5), at(21));
        assert!(h.is_empty());
    }

    #[test]
    fn only_the_nearest_bookings_are_kept() {
        let mut h = Holds::default();
        for i in 0..(MAX_HOLDS as i64 + 10) {
            h.reserve(hold(&format!("b{i:03}"), 100 - i, 101 - i), at(0));
        }
        assert_eq!(h.len(), MAX_HOLDS);
        assert_eq!(h.next_change(at(0)), Some(at(100 - (MAX_HOLDS as i64 + 9))), "the nearest is kept");
    }

    proptest! {
        /// Whatever the order of reserves and releases, the booking in progress is a known,
        /// unreleased booking whose interval holds the instant, and no change is due before
        /// `next_change`.
        #[test]
        fn current_is_consistent_with_next_change(
            ops in proptest::collection::vec((0u8..3, 0i64..6, 0i64..100, 1i64..50), 0..40),
            probe in 0i64..160,
        ) {
            let mut h = Holds::default();
            let mut released = std::collections::HashSet::new();
            for (op, id, start, len) in ops {
                let id = format!("r{id}");
                match op {
                    0 | 1 => h.reserve(hold(&id, start, start + len), at(0)),
                    _ => {
                        h.release(&id, at(1000), at(0));
                        released.insert(id);
                    }
                }
            }
            let now = at(probe);
            if let Some(c) = h.current(now) {
                prop_assert!(c.start <= now && now < c.end);
                prop_assert!(!released.contains(&c.id));
            }
            if let Some(next) = h.next_change(now) {
                prop_assert!(next > now);
                let before = next - Duration::seconds(1);
                if before > now {
                    prop_assert_eq!(h.current(before).map(|c| c.id.clone()), h.current(now).map(|c| c.id.clone()));
                }
            } else {
                prop_assert_eq!(h.current(now + Duration::days(1)), None);
            }
        }
    }
}
