//! The certification cache of the hot path: a person's certifications in a makerspace, read
//! by the gate on every access check and certified use, dropped on every change.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use dashmap::DashMap;

use crate::domain::skills::Certification;
use crate::store::skills::UserSkillFilter;
use crate::store::{Store, StoreError};

/// Certifications of a person in a makerspace, for the hot path. Filled on first use;
/// invalidated on every change. A fill that raced with an invalidation is not kept.
#[derive(Default)]
pub struct CertificationCache {
    entries: DashMap<(String, String), Arc<Vec<Certification>>>,
    generation: AtomicU64,
}

impl CertificationCache {
    pub fn new() -> CertificationCache {
        CertificationCache::default()
    }

    /// The certifications of `user_id` in `makerspace_id`, from the cache or the database.
    pub async fn get(
        &self,
        store: &Store,
        makerspace_id: &str,
        user_id: &str,
    ) -> Result<Arc<Vec<Certification>>, StoreError> {
        let key = (makerspace_id.to_string(), user_id.to_string());
        if let Some(hit) = self.entries.get(&key) {
            return Ok(hit.clone());
        }
        let generation = self.generation.load(Ordering::SeqCst);
        let rows = store
            .list_user_skills(&UserSkillFilter {
                makerspace_id: Some(makerspace_id.to_string()),
                user_id: Some(user_id.to_string()),
                skill_id: None,
            })
            .await?;
        let certifications: Arc<Vec<Certification>> = Arc::new(
            rows.into_iter()
                .map(|r| Certification { skill_id: r.skill_id, status: r.status, expires_at: r.expires_at })
                .collect(),
        );
        if self.generation.load(Ordering::SeqCst) == generation {
            self.entries.insert(key, certifications.clone());
        }
        Ok(certifications)
    }

    /// Forgets one person's certifications in one makerspace.
    pub fn invalidate(&self, makerspace_id: &str, user_id: &str) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.entries.remove(&(makerspace_id.to_string(), user_id.to_string()));
    }

    /// Forgets every cached certification of a makerspace (a skill changed).
    pub fn invalidate_space(&self, makerspace_id: &str) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.entries.retain(|(space, _), _| space != makerspace_id);
    }

    /// Whether an entry is cached (for tests and metrics).
    pub fn contains(&self, makerspace_id: &str, user_id: &str) -> bool {
        self.entries.contains_key(&(makerspace_id.to_string(), user_id.to_string()))
    }
}
