//! When to cut the machine's power: pure decisions, no clock and no I/O, so every rule of
//! issue 13 (the session's `until` enforced locally, the offline unlock's expiry, never while
//! a job runs, then the grace time) is a unit test.

use chrono::{DateTime, Duration, Utc};

/// The unlock the relay is on for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Session {
    /// makrcave's session id (none for an offline unlock).
    pub session_id: Option<String>,
    /// The session's end as makrcave sent it in `unlock`.
    pub until: Option<DateTime<Utc>>,
    /// The end of an unlock decided offline from the allowlist.
    pub offline_until: Option<DateTime<Utc>>,
    /// The card (normalized UID) that unlocked offline: only it ends the session offline.
    pub offline_card: Option<String>,
    /// When a lock was asked for (a `lock` command, a tap): the grace time counts from here.
    pub lock_requested_at: Option<DateTime<Utc>>,
}

/// Why a session ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockReason {
    Requested,
    SessionEnded,
    OfflineUnlockEnded,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The session goes on.
    Keep,
    /// Cut the power now.
    LockNow(LockReason),
    /// The session is over but a job runs: cut at `cut_at` unless the job ends first.
    Wait { reason: LockReason, cut_at: DateTime<Utc> },
}

impl Session {
    /// The earliest moment the session wants to end, and why.
    pub fn end(&self) -> Option<(DateTime<Utc>, LockReason)> {
        [
            self.lock_requested_at.map(|t| (t, LockReason::Requested)),
            self.until.map(|t| (t, LockReason::SessionEnded)),
            self.offline_until.map(|t| (t, LockReason::OfflineUnlockEnded)),
        ]
        .into_iter()
        .flatten()
        .min_by_key(|(t, _)| *t)
    }

    /// The next moment `decide` may change its answer (for the run loop's timer).
    pub fn next_deadline(&self, grace: Duration) -> Option<DateTime<Utc>> {
        let (end, _) = self.end()?;
        Some(end + grace)
    }
}

/// Decides what to do with a session at `now`.
pub fn decide(session: &Session, now: DateTime<Utc>, job_running: bool, grace: Duration) -> Decision {
    let Some((end, reason)) = session.end() else {
        return Decision::Keep;
    };
    if now < end {
        return Decision::Keep;
    }
    if !job_running {
        return Decision::LockNow(reason);
    }
    let cut_at = end + grace;
    if now >= cut_at {
        Decision::LockNow(reason)
    } else {
        Decision::Wait { reason, cut_at }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    const GRACE: Duration = Duration::seconds(600);

    #[test]
    fn an_open_session_without_end_is_kept() {
        let session = Session { session_id: Some("s1".into()), ..Session::default() };
        assert_eq!(decide(&session, at(0), false, GRACE), Decision::Keep);
    }

    #[test]
    fn until_in_the_future_keeps() {
        let session = Session { until: Some(at(100)), ..Session::default() };
        assert_eq!(decide(&session, at(99), false, GRACE), Decision::Keep);
    }

    #[test]
    fn until_passed_locks_without_the_server() {
        let session = Session { until: Some(at(100)), ..Session::default() };
        assert_eq!(decide(&session, at(100), false, GRACE), Decision::LockNow(LockReason::SessionEnded));
    }

    #[test]
    fn a_running_job_delays_the_cut_up_to_the_grace_time() {
        let session = Session { until: Some(at(100)), ..Session::default() };
        assert_eq!(
            decide(&session, at(150), true, GRACE),
            Decision::Wait { reason: LockReason::SessionEnded, cut_at: at(700) }
        );
        assert_eq!(decide(&session, at(700), true, GRACE), Decision::LockNow(LockReason::SessionEnded));
        // The job ends before the grace time: cut at once.
        assert_eq!(decide(&session, at(300), false, GRACE), Decision::LockNow(LockReason::SessionEnded));
    }

    #[test]
    fn the_earliest_end_wins() {
        let session = Session { until: Some(at(500)), offline_until: Some(at(200)), ..Session::default() };
        assert_eq!(decide(&session, at(200), false, GRACE), Decision::LockNow(LockReason::OfflineUnlockEnded));
        let session = Session { until: Some(at(500)), lock_requested_at: Some(at(10)), ..Session::default() };
        assert_eq!(
            decide(&session, at(20), true, GRACE),
            Decision::Wait { reason: LockReason::Requested, cut_at: at(610) }
        );
        assert_eq!(session.next_deadline(GRACE), Some(at(610)));
    }

    #[test]
    fn zero_grace_cuts_even_during_a_job() {
        let session = Session { lock_requested_at: Some(at(0)), ..Session::default() };
        assert_eq!(decide(&session, at(0), true, Duration::zero()), Decision::LockNow(LockReason::Requested));
    }
}
