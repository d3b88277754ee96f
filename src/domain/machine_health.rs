//! When a machine's failed prints call for a person to look at it. The router already keeps
//! a failed job off the machine that failed it; a machine that keeps failing others' jobs
//! (a clogged nozzle, a worn bed) is flagged on the dashboard so that someone checks it.
//!
//! The rule: at least [`FLAG_AT_FAILURES`] failed prints in the last [`WINDOW_DAYS`] days.
//! A count over a window (rather than "two in a row") forgives a bad file that failed once
//! and needs no ordering of successes and failures; it flags a machine that fails often.

/// How far back failures count.
pub const WINDOW_DAYS: i64 = 7;
/// How many failed prints in the window flag a machine.
pub const FLAG_AT_FAILURES: i64 = 3;

/// Whether a machine with this many failed prints in the window is flagged.
pub fn flagged(failures_in_window: i64) -> bool {
    failures_in_window >= FLAG_AT_FAILURES
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_failures_in_the_window_flag_a_machine() {
        assert!(!flagged(0));
        assert!(!flagged(FLAG_AT_FAILURES - 1));
        assert!(flagged(FLAG_AT_FAILURES));
        assert!(flagged(40));
    }
}
