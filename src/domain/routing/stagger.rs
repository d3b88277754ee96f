//! Staggered starts: a farm on one circuit cannot have every printer heat at once (a printer
//! draws several times more while heating), so a makerspace may allow at most N starts within
//! any M seconds. [`StartLog`] records a makerspace's starts and says when the next is allowed,
//! so the router sets a timer instead of polling.

use std::collections::VecDeque;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::saturating_add;
use crate::domain::validate::Invalid;

/// At most `max_starts` starts within any `window_s` seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StaggerRule {
    pub max_starts: u32,
    pub window_s: u32,
}

impl StaggerRule {
    pub fn new(max_starts: u32, window_s: u32) -> Result<Self, Invalid> {
        if max_starts == 0 || window_s == 0 {
            return Err(Invalid::new("a stagger rule allows at least 1 start within at least 1 second"));
        }
        Ok(Self { max_starts, window_s })
    }

    fn window(self) -> Duration {
        Duration::seconds(i64::from(self.window_s))
    }
}

/// A makerspace's recent starts, oldest first. Only starts that still count against the rule
/// are kept: at most `max_starts` of them in practice, since no further start is allowed while
/// that many are in the window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StartLog {
    starts: VecDeque<DateTime<Utc>>,
}

impl StartLog {
    /// Records a start at `at`. Times are expected not to go backwards; one that does is kept
    /// in order all the same.
    pub fn record(&mut self, at: DateTime<Utc>) {
        let position = self.starts.partition_point(|start| *start <= at);
        self.starts.insert(position, at);
    }

    /// Forgets starts that no longer count at `now` under `rule`.
    pub fn prune(&mut self, rule: Option<StaggerRule>, now: DateTime<Utc>) {
        match rule {
            None => self.starts.clear(),
            Some(rule) => {
                while self.starts.front().is_some_and(|start| saturating_add(*start, rule.window()) <= now) {
                    self.starts.pop_front();
                }
            }
        }
    }

    /// The earliest time at or after `now` a start is allowed under `rule` (`now` itself when
    /// one is allowed now); `None` when the rule allows none at all.
    ///
    /// A start at `t` counts during `[t, t + window)`. A start at `now` is allowed when fewer
    /// than `max_starts` recorded starts count at `now`; starts recorded after `now` (a clock
    /// that went back) count as well, so the rule holds in every window even then.
    pub fn next_allowed(&self, rule: Option<StaggerRule>, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let Some(rule) = rule else { return Some(now) };
        let max = usize::try_from(rule.max_starts).unwrap_or(usize::MAX);
        if max == 0 {
            return None;
        }
        let counting = || self.starts.iter().copied().filter(|start| saturating_add(*start, rule.window()) > now);
        let count = counting().count();
        if count < max {
            return Some(now);
        }
        // Once the oldest `count - max + 1` of them stop counting, fewer than `max` are left.
        counting().nth(count - max).map(|start| saturating_add(start, rule.window()))
    }

    pub fn allows(&self, rule: Option<StaggerRule>, now: DateTime<Utc>) -> bool {
        self.next_allowed(rule, now) == Some(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::routing::test_support::at;

    #[test]
    fn at_most_n_starts_within_the_window() {
        let rule = Some(StaggerRule::new(2, 60).unwrap());
        let mut log = StartLog::default();
        assert!(log.allows(rule, at(0)));
        log.record(at(0));
        log.record(at(10));
        assert_eq!(log.next_allowed(rule, at(10)), Some(at(60)), "the first start stops counting at 60");
        assert!(!log.allows(rule, at(59)));
        assert!(log.allows(rule, at(60)));
        log.record(at(60));
        assert_eq!(log.next_allowed(rule, at(60)), Some(at(70)));
        log.prune(rule, at(65));
        assert_eq!(log.starts.len(), 2, "the start at 0 no longer counts");
    }

    #[test]
    fn no_rule_never_holds_a_start() {
        let mut log = StartLog::default();
        for second in 0..100 {
            log.record(at(second / 10));
            assert!(log.allows(None, at(second / 10)));
        }
        log.prune(None, at(10));
        assert!(log.starts.is_empty());
    }

    #[test]
    fn a_clock_that_went_back_still_counts_later_starts() {
        let rule = Some(StaggerRule::new(1, 60).unwrap());
        let mut log = StartLog::default();
        log.record(at(100));
        assert_eq!(log.next_allowed(rule, at(90)), Some(at(160)));
        log.record(at(30));
        assert_eq!(log.starts, [at(30), at(100)], "kept in order");
    }

    #[test]
    fn a_rule_allows_at_least_one_start() {
        assert!(StaggerRule::new(0, 60).is_err());
        assert!(StaggerRule::new(1, 0).is_err());
        let never = Some(StaggerRule { max_starts: 0, window_s: 60 });
        assert_eq!(StartLog::default().next_allowed(never, at(0)), None, "built without new: no panic");
    }
}
