//! Per machine, the queued jobs it could make (those that fit it statically), kept in serving
//! order so that a machine that becomes free finds its job without scanning the queue: the
//! first entry of the highest priority level, from the owner after the one served last, is the
//! answer unless a booking of the machine is in that job's window.

use std::cmp::Reverse;
use std::collections::BTreeSet;
use std::ops::Bound;

use super::fairness::{OwnerRank, Rotation};

/// The router's own key for a queued job (ids are strings; this is small and `Copy`).
pub type JobKey = u64;

/// A job in a machine's index. The field order is the serving order within a priority level
/// before the rotation is applied: by owner, then first come, first served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Entry {
    pub priority: Reverse<i32>,
    pub owner: OwnerRank,
    pub sequence: u64,
    pub job: JobKey,
}

impl Entry {
    fn level_start(priority: Reverse<i32>, owner: OwnerRank) -> Self {
        Self { priority, owner, sequence: 0, job: 0 }
    }

    fn level_end(priority: Reverse<i32>, owner: OwnerRank) -> Self {
        Self { priority, owner, sequence: u64::MAX, job: JobKey::MAX }
    }
}

#[derive(Debug, Clone, Default)]
pub struct MachineIndex {
    entries: BTreeSet<Entry>,
}

impl MachineIndex {
    pub fn insert(&mut self, entry: Entry) {
        self.entries.insert(entry);
    }

    pub fn remove(&mut self, entry: &Entry) {
        self.entries.remove(entry);
    }

    pub fn contains(&self, entry: &Entry) -> bool {
        self.entries.contains(entry)
    }

    /// Empties the index, returning what it held.
    pub fn take(&mut self) -> BTreeSet<Entry> {
        std::mem::take(&mut self.entries)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The first job in serving order that `accept` takes: the highest priority level first;
    /// within a level the owners after the one served last, then from the first owner round to
    /// it; within an owner by sequence.
    pub fn first_served(&self, rotation: &Rotation, mut accept: impl FnMut(&Entry) -> bool) -> Option<Entry> {
        let mut level = self.entries.first()?.priority;
        loop {
            let Reverse(priority) = level;
            let found = match rotation.last_served(priority) {
                None => self.first_in(level, 0, OwnerRank::MAX, &mut accept),
                Some(last) => last
                    .checked_add(1)
                    .and_then(|next| self.first_in(level, next, OwnerRank::MAX, &mut accept))
                    .or_else(|| self.first_in(level, 0, last, &mut accept)),
            };
            if found.is_some() {
                return found;
            }
            let after_level = (Bound::Excluded(Entry::level_end(level, OwnerRank::MAX)), Bound::Unbounded);
            level = self.entries.range(after_level).next()?.priority;
        }
    }

    /// The first accepted entry of a level among owners `from..=to`.
    fn first_in(
        &self,
        level: Reverse<i32>,
        from: OwnerRank,
        to: OwnerRank,
        accept: &mut impl FnMut(&Entry) -> bool,
    ) -> Option<Entry> {
        self.entries
            .range(Entry::level_start(level, from)..=Entry::level_end(level, to))
            .find(|entry| accept(entry))
            .copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(priority: i32, owner: OwnerRank, sequence: u64) -> Entry {
        Entry { priority: Reverse(priority), owner, sequence, job: sequence }
    }

    #[test]
    fn serves_the_highest_level_then_the_owner_after_the_last_served() {
        let mut index = MachineIndex::default();
        for e in [entry(0, 0, 1), entry(0, 1, 2), entry(0, 2, 3), entry(5, 1, 9), entry(5, 1, 8)] {
            index.insert(e);
        }
        let mut rotation = Rotation::default();
        assert_eq!(index.first_served(&rotation, |_| true), Some(entry(5, 1, 8)), "priority 5, oldest first");
        rotation.served(5, 1);
        assert_eq!(index.first_served(&rotation, |_| true), Some(entry(5, 1, 8)), "the only owner there");
        rotation.served(0, 1);
        assert_eq!(index.first_served(&rotation, |e| e.priority == Reverse(0)), Some(entry(0, 2, 3)));
        rotation.served(0, 2);
        assert_eq!(index.first_served(&rotation, |e| e.priority == Reverse(0)), Some(entry(0, 0, 1)), "wraps");
        assert_eq!(index.first_served(&rotation, |e| e.sequence == 2), Some(entry(0, 1, 2)));
        assert_eq!(index.first_served(&rotation, |_| false), None);
        rotation.served(0, OwnerRank::MAX);
        assert_eq!(index.first_served(&rotation, |e| e.priority == Reverse(0)), Some(entry(0, 0, 1)));
    }
}
