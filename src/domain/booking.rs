//! Booking rules: what a reservation is, when two overlap, and the per-makerspace rules
//! (longest booking, how far ahead, minimum gap, check-in window, no-show release).
//!
//! Intervals are half-open, `[start, end)`: a booking that ends at 10:00 and one that starts
//! at 10:00 do not overlap.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Where a reservation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReservationStatus {
    /// Awaiting a makerspace_admin's approval (equipment that requires approval).
    Pending,
    Confirmed,
    /// The member checked in: the booking is active.
    CheckedIn,
    Completed,
    Cancelled,
    Rejected,
    /// Not checked in by the end of the check-in window: released.
    NoShow,
}

impl ReservationStatus {
    pub const ALL: [ReservationStatus; 7] = [
        Self::Pending,
        Self::Confirmed,
        Self::CheckedIn,
        Self::Completed,
        Self::Cancelled,
        Self::Rejected,
        Self::NoShow,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Confirmed => "confirmed",
            Self::CheckedIn => "checked_in",
            Self::Completed => "completed",
            Self::Cancelled => "cancelled",
            Self::Rejected => "rejected",
            Self::NoShow => "no_show",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// Whether a booking in this status holds its machine (no other may overlap it).
    pub fn holds_slot(self) -> bool {
        matches!(self, Self::Confirmed | Self::CheckedIn)
    }

    /// Whether the booking may still be cancelled.
    pub fn cancellable(self) -> bool {
        matches!(self, Self::Pending | Self::Confirmed)
    }
}

/// What a reservation is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum ReservationKind {
    /// A member's booking.
    #[default]
    Booking,
    /// A maintenance window: blocks the machine like a booking; only admins create it.
    Maintenance,
}

impl ReservationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Booking => "booking",
            Self::Maintenance => "maintenance",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "booking" => Some(Self::Booking),
            "maintenance" => Some(Self::Maintenance),
            _ => None,
        }
    }
}

/// Whether `[a_start, a_end)` and `[b_start, b_end)` share an instant.
pub fn overlaps<T: PartialOrd>(a_start: T, a_end: T, b_start: T, b_end: T) -> bool {
    a_start < b_end && b_start < a_end
}

/// A makerspace's booking rules, kept in its settings under `"booking"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct BookingRules {
    /// Longest booking, in hours [default: 8].
    pub max_hours: u32,
    /// How far ahead a booking may start, in days [default: 30].
    pub max_days_ahead: u32,
    /// Minutes that must stay free between two bookings of one machine [default: 0].
    pub min_gap_minutes: u32,
    /// Minutes either side of the start in which a member checks in [default: 15]; a booking
    /// not checked in by the end of the window is released as a no-show.
    pub check_in_window_minutes: u32,
}

impl Default for BookingRules {
    fn default() -> Self {
        BookingRules { max_hours: 8, max_days_ahead: 30, min_gap_minutes: 0, check_in_window_minutes: 15 }
    }
}

/// Why a booking request breaks the rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleViolation {
    #[error("end must be after start")]
    EmptyInterval,
    #[error("a booking cannot start in the past")]
    InThePast,
    #[error("a booking may last at most {0} hours")]
    TooLong(u32),
    #[error("a booking may start at most {0} days ahead")]
    TooFarAhead(u32),
}

impl BookingRules {
    /// The rules of a makerspace from its settings object (defaults for what is missing).
    pub fn from_settings(settings: &serde_json::Value) -> Result<BookingRules, String> {
        let rules = match settings.get("booking") {
            None | Some(serde_json::Value::Null) => BookingRules::default(),
            Some(value) => serde_json::from_value(value.clone()).map_err(|e| format!("settings.booking: {e}"))?,
        };
        rules.validate()?;
        Ok(rules)
    }

    /// Checks the ranges, with a sentence for the client.
    pub fn validate(&self) -> Result<(), String> {
        let check = |name: &str, value: u32, min: u32, max: u32| {
            if (min..=max).contains(&value) {
                Ok(())
            } else {
                Err(format!("settings.booking.{name} must be between {min} and {max}"))
            }
        };
        check("max_hours", self.max_hours, 1, 24 * 31)?;
        check("max_days_ahead", self.max_days_ahead, 1, 3 * 366)?;
        check("min_gap_minutes", self.min_gap_minutes, 0, 24 * 60)?;
        check("check_in_window_minutes", self.check_in_window_minutes, 0, 24 * 60)
    }

    /// Checks a booking request against the rules. Maintenance windows (by admins) are not
    /// bound by the length and horizon rules.
    pub fn check_request(
        &self,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        now: DateTime<Utc>,
        kind: ReservationKind,
    ) -> Result<(), RuleViolation> {
        if end <= start {
            return Err(RuleViolation::EmptyInterval);
        }
        // A minute of slack for clocks and the request's own travel time.
        if start < now - Duration::minutes(1) {
            return Err(RuleViolation::InThePast);
        }
        if kind == ReservationKind::Maintenance {
            return Ok(());
        }
        if end - start > Duration::hours(i64::from(self.max_hours)) {
            return Err(RuleViolation::TooLong(self.max_hours));
        }
        if start > now + Duration::days(i64::from(self.max_days_ahead)) {
            return Err(RuleViolation::TooFarAhead(self.max_days_ahead));
        }
        Ok(())
    }

    /// The interval no other holding booking may touch: the booking widened by the gap.
    pub fn guarded(&self, start: DateTime<Utc>, end: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
        let gap = Duration::minutes(i64::from(self.min_gap_minutes));
        (start - gap, end + gap)
    }

    /// When check-in opens and closes for a booking: the window around its start, never
    /// past its end.
    pub fn check_in_window(&self, start: DateTime<Utc>, end: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
        let w = Duration::minutes(i64::from(self.check_in_window_minutes));
        (start - w, (start + w).min(end))
    }

    /// Whether a booking may be checked in at `now`.
    pub fn can_check_in(
        &self,
        status: ReservationStatus,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> bool {
        let (from, until) = self.check_in_window(start, end);
        status == ReservationStatus::Confirmed && from <= now && now <= until
    }

    /// Whether a booking is a no-show at `now`: confirmed and its check-in window is over.
    pub fn is_no_show(
        &self,
        status: ReservationStatus,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> bool {
        let (_, until) = self.check_in_window(start, end);
        status == ReservationStatus::Confirmed && now > until
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(minutes: i64) -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp(1_800_000_000, 0).expect("valid instant") + Duration::minutes(minutes)
    }

    #[test]
    fn touching_bookings_do_not_overlap() {
        assert!(!overlaps(at(0), at(60), at(60), at(120)));
        assert!(!overlaps(at(60), at(120), at(0), at(60)));
        assert!(overlaps(at(0), at(61), at(60), at(120)));
        assert!(overlaps(at(10), at(20), at(0), at(120)));
    }

    #[test]
    fn rules_come_from_settings_with_defaults() {
        assert_eq!(BookingRules::from_settings(&serde_json::json!({})), Ok(BookingRules::default()));
        let r = BookingRules::from_settings(&serde_json::json!({"booking": {"max_hours": 2}})).expect("valid");
        assert_eq!(r.max_hours, 2);
        assert_eq!(r.check_in_window_minutes, 15);
        assert!(BookingRules::from_settings(&serde_json::json!({"booking": {"max_hours": 0}})).is_err());
        assert!(BookingRules::from_settings(&serde_json::json!({"booking": {"nope": 1}})).is_err());
        assert!(BookingRules::from_settings(&serde_json::json!({"booking": {"max_hours": -1}})).is_err());
    }

    #[test]
    fn requests_are_checked_against_the_rules() {
        let r = BookingRules::default();
        let now = at(0);
        let k = ReservationKind::Booking;
        assert_eq!(r.check_request(at(10), at(10), now, k), Err(RuleViolation::EmptyInterval));
        assert_eq!(r.check_request(at(-10), at(10), now, k), Err(RuleViolation::InThePast));
        assert_eq!(r.check_request(at(10), at(10 + 8 * 60 + 1), now, k), Err(RuleViolation::TooLong(8)));
        assert_eq!(r.check_request(at(10), at(10 + 8 * 60), now, k), Ok(()));
        assert_eq!(
            r.check_request(at(31 * 24 * 60), at(31 * 24 * 60 + 5), now, k),
            Err(RuleViolation::TooFarAhead(30))
        );
        assert_eq!(r.check_request(at(10), at(10 + 48 * 60), now, ReservationKind::Maintenance), Ok(()));
    }

    #[test]
    fn check_in_window_is_around_the_start() {
        let r = BookingRules::default();
        let c = ReservationStatus::Confirmed;
        assert!(!r.can_check_in(c, at(60), at(120), at(44)));
        assert!(r.can_check_in(c, at(60), at(120), at(45)));
        assert!(r.can_check_in(c, at(60), at(120), at(75)));
        assert!(!r.can_check_in(c, at(60), at(120), at(76)));
        assert!(r.is_no_show(c, at(60), at(120), at(76)));
        assert!(!r.is_no_show(ReservationStatus::CheckedIn, at(60), at(120), at(76)));
        // A booking shorter than the window: the window closes at its end.
        assert_eq!(r.check_in_window(at(60), at(65)).1, at(65));
    }

    proptest! {
        #[test]
        fn overlap_means_a_shared_minute(a in 0i64..50, la in 1i64..20, b in 0i64..50, lb in 1i64..20) {
            let shared = (a..a + la).any(|m| (b..b + lb).contains(&m));
            prop_assert_eq!(overlaps(at(a), at(a + la), at(b), at(b + lb)), shared);
            prop_assert_eq!(overlaps(a, a + la, b, b + lb), overlaps(b, b + lb, a, a + la));
        }

        #[test]
        fn guarded_intervals_keep_the_gap(gap in 0u32..120, a in 0i64..500, la in 1i64..200, b in 0i64..500, lb in 1i64..200) {
            let r = BookingRules { min_gap_minutes: gap, ..BookingRules::default() };
            let (gs, ge) = r.guarded(at(a), at(a + la));
            if !overlaps(gs, ge, at(b), at(b + lb)) {
                // Disjoint from the guarded interval: at least `gap` minutes apart.
                let apart = if b >= a + la { b - (a + la) } else { a - (b + lb) };
                prop_assert!(apart >= i64::from(gap));
            }
        }

        #[test]
        fn check_in_and_no_show_never_both(window in 0u32..60, len in 1i64..300, now in -200i64..400) {
            let r = BookingRules { check_in_window_minutes: window, ..BookingRules::default() };
            let c = ReservationStatus::Confirmed;
            let (s, e, n) = (at(0), at(len), at(now));
            prop_assert!(!(r.can_check_in(c, s, e, n) && r.is_no_show(c, s, e, n)));
            // Once a no-show, always a no-show.
            if r.is_no_show(c, s, e, n) {
                prop_assert!(r.is_no_show(c, s, e, n + Duration::minutes(1)));
            }
        }

        #[test]
        fn valid_settings_round_trip(h in 1u32..700, d in 1u32..1000, g in 0u32..1440, w in 0u32..1440) {
            let rules = BookingRules { max_hours: h, max_days_ahead: d, min_gap_minutes: g, check_in_window_minutes: w };
            let settings = serde_json::json!({ "booking": rules });
            prop_assert_eq!(BookingRules::from_settings(&settings), Ok(rules));
        }
    }
}
