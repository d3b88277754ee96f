//! Fair sharing: round robin between owners within a priority level, so one person's fifty
//! jobs never starve another's one.
//!
//! The highest priority level with a job that fits a free machine goes first. Within a level,
//! owners take turns in a fixed circular order, starting after the owner served last at that
//! level; an owner's own jobs go first come, first served (by sequence). An owner whose jobs
//! fit no free machine just misses the turn.
//!
//! The circular order is the order in which the router first saw each owner. After a restart
//! the state is rebuilt by queueing the stored jobs in sequence order, so the order becomes
//! that of each owner's oldest queued job and the rotation starts again from the owner of the
//! oldest job: nobody is skipped, one round may favour the owners that waited longest.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap};

/// An owner's place in the circular order.
pub type OwnerRank = u32;

/// Owners the router has seen, in the order it first saw them. An owner is kept after their
/// last job leaves (a string per person who ever queued a job), so their place stays theirs.
#[derive(Debug, Clone, Default)]
pub struct Owners {
    ranks: HashMap<String, OwnerRank>,
}

impl Owners {
    /// The owner's rank, given a new one at the end of the order if they are new.
    pub fn rank(&mut self, owner_id: &str) -> OwnerRank {
        if let Some(rank) = self.ranks.get(owner_id) {
            return *rank;
        }
        // Four billion distinct owners would share the last rank: fairness between them then
        // falls back to sequence order, nothing breaks.
        let rank = OwnerRank::try_from(self.ranks.len()).unwrap_or(OwnerRank::MAX);
        self.ranks.insert(owner_id.to_string(), rank);
        rank
    }
}

/// Where a job stands in the serving order; the smallest is served first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ServeKey {
    priority: Reverse<i32>,
    /// The owners after the one served last come first (`false`), then the others.
    wrapped: bool,
    owner: OwnerRank,
    sequence: u64,
}

/// Per priority level, the owner served last: the cursor of the round robin.
#[derive(Debug, Clone, Default)]
pub struct Rotation {
    last_served: BTreeMap<i32, OwnerRank>,
}

impl Rotation {
    pub fn last_served(&self, priority: i32) -> Option<OwnerRank> {
        self.last_served.get(&priority).copied()
    }

    pub fn served(&mut self, priority: i32, owner: OwnerRank) {
        self.last_served.insert(priority, owner);
    }

    pub fn serve_key(&self, priority: i32, owner: OwnerRank, sequence: u64) -> ServeKey {
        let wrapped = self.last_served(priority).is_some_and(|last| owner <= last);
        ServeKey { priority: Reverse(priority), wrapped, owner, sequence }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_keep_the_order_they_came_in() {
        let mut owners = Owners::default();
        assert_eq!(owners.rank("bob"), 0);
        assert_eq!(owners.rank("alice"), 1);
        assert_eq!(owners.rank("bob"), 0);
    }

    #[test]
    fn the_turn_passes_to_the_next_owner_and_wraps() {
        let mut rotation = Rotation::default();
        let order = |rotation: &Rotation| {
            let mut keys: Vec<(ServeKey, OwnerRank)> =
                (0..3).map(|owner| (rotation.serve_key(0, owner, 10 - u64::from(owner)), owner)).collect();
            keys.sort();
            keys.into_iter().map(|(_, owner)| owner).collect::<Vec<_>>()
        };
        assert_eq!(order(&rotation), [0, 1, 2], "from the first owner after a restart");
        rotation.served(0, 1);
        assert_eq!(order(&rotation), [2, 0, 1]);
        rotation.served(0, 2);
        assert_eq!(order(&rotation), [0, 1, 2]);
        assert!(rotation.serve_key(1, 0, 99) < rotation.serve_key(0, 0, 0), "a higher priority first");
        assert!(rotation.serve_key(0, 0, 1) < rotation.serve_key(0, 0, 2), "an owner's older job first");
    }
}
