//! Read-through caches of the catalog: the records every kiosk decision and booking reads but
//! an admin rarely changes (machines, makerspaces and their rules, kiosks, skills and their
//! prerequisites), and what every request reads about a person (memberships, certifications).
//!
//! They live in the store so that no caller can forget to invalidate them: every store write
//! to one of these tables clears the whole catalog after it commits. People's memberships are
//! cleared by every write to the members table, and a person's certifications by every write
//! of theirs, so that a suspension or a revoked certification still counts at once. Catalog writes are rare
//! admin actions, so a full refill is cheap and "clear everything" cannot miss a dependency
//! (a skill linked to a machine rewrites that machine's requirements, say). This is coherent
//! because one makrcave process owns the database (it also owns the machine actors).
//!
//! A fill that raced with a clear is not kept: the fill remembers the generation it started
//! in, and a clear bumps the generation after the write committed. The check and the insert
//! happen under the same lock as the bump, so a stale fill cannot slip in after a clear.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use dashmap::DashMap;

use super::equipment::EquipmentRecord;
use super::kiosks::KioskRecord;
use super::makerspaces::MakerspaceRecord;
use super::members::MembershipRow;
use super::skills::SkillRecord;
use super::StoreError;
use crate::domain::skills::{Certification, Prerequisites};

/// A makerspace's skills by id, and their prerequisite graph.
#[derive(Debug, Default)]
pub struct SkillCatalog {
    pub skills: HashMap<String, SkillRecord>,
    pub graph: Prerequisites,
}

#[derive(Default)]
pub struct Catalog {
    generation: Mutex<u64>,
    pub(super) equipment: DashMap<String, EquipmentRecord>,
    pub(super) makerspaces: DashMap<String, MakerspaceRecord>,
    /// Active kiosks by token hash.
    pub(super) kiosks: DashMap<String, KioskRecord>,
    pub(super) skills: DashMap<String, Arc<SkillCatalog>>,
    /// A person's memberships by user id (an empty list too: a valid token's person).
    pub(super) memberships: DashMap<String, Arc<Vec<MembershipRow>>>,
    /// A person's certifications in a makerspace, by (makerspace id, user id): the gate's input.
    pub(super) certifications: DashMap<(String, String), Arc<Vec<Certification>>>,
}

impl Catalog {
    /// Forgets everything; called by the store after each catalog write has committed.
    pub(super) fn clear(&self) {
        let mut generation = self.generation.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        *generation += 1;
        self.equipment.clear();
        self.makerspaces.clear();
        self.kiosks.clear();
        self.skills.clear();
        self.memberships.clear();
        self.certifications.clear();
    }

    /// Forgets every cached membership; called after each write to the members table.
    pub(super) fn clear_memberships(&self) {
        let mut generation = self.generation.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        *generation += 1;
        self.memberships.clear();
    }

    /// Forgets the certifications of these (makerspace id, user id) pairs; called after each
    /// write of certifications.
    pub(super) fn clear_certifications_of<'a>(&self, people: impl IntoIterator<Item = (&'a str, &'a str)>) {
        let mut generation = self.generation.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        *generation += 1;
        for (space, user) in people {
            self.certifications.remove(&(space.to_string(), user.to_string()));
        }
    }

    fn generation(&self) -> u64 {
        *self.generation.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The cached value of `key` in `map`, or `load`'s. Absent records are not cached (an
    /// unknown id or token stays a database lookup, and guessing cannot grow the cache).
    pub(super) async fn get_or_load<K, V, F>(
        &self,
        map: &DashMap<K, V>,
        key: &K,
        load: F,
    ) -> Result<Option<V>, StoreError>
    where
        K: Eq + Hash + Clone,
        V: Clone,
        F: Future<Output = Result<Option<V>, StoreError>>,
    {
        if let Some(hit) = map.get(key) {
            return Ok(Some(hit.clone()));
        }
        let started = self.generation();
        let loaded = load.await?;
        if let Some(value) = &loaded {
            let generation = self.generation.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if *generation == started {
                map.insert(key.clone(), value.clone());
            }
        }
        Ok(loaded)
    }
}
