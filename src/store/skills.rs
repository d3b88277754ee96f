//! Skills, prerequisites, people's certifications (user skills), certification requests and
//! the skill audit log.
//!
//! Which skills a machine needs has one source of truth: the equipment record's
//! `skill_requirements` (a JSON list of skill ids). Linking a skill to equipment here
//! (`equipment_ids` of a skill) writes that list, in the same transaction as the skill.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sqlx::QueryBuilder;

use super::cache::SkillCatalog;
use super::{json_column, to_json_text, with_pool, with_writer, Store, StoreError};
use crate::domain::skills::{
    Certification, CertificationStatus, Prerequisites, RequestStatus, SkillLevel, SkillStatus,
};

#[derive(Debug, Clone, PartialEq)]
pub struct SkillRecord {
    pub id: String,
    pub makerspace_id: String,
    pub name: String,
    pub category: String,
    pub level: SkillLevel,
    pub description: Option<String>,
    pub status: SkillStatus,
    /// Days a certification lasts; `None`: it never expires.
    pub validity_days: Option<i64>,
    /// A certified use of a machine extends the certification.
    pub renew_on_use: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct SkillRow {
    id: String,
    makerspace_id: String,
    name: String,
    category: String,
    level: String,
    description: Option<String>,
    status: String,
    validity_days: Option<i64>,
    renew_on_use: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<SkillRow> for SkillRecord {
    type Error = StoreError;
    fn try_from(r: SkillRow) -> Result<Self, StoreError> {
        Ok(SkillRecord {
            level: SkillLevel::parse(&r.level)
                .ok_or_else(|| StoreError::Corrupt(format!("skills.level {:?}", r.level)))?,
            status: SkillStatus::parse(&r.status)
                .ok_or_else(|| StoreError::Corrupt(format!("skills.status {:?}", r.status)))?,
            id: r.id,
            makerspace_id: r.makerspace_id,
            name: r.name,
            category: r.category,
            description: r.description,
            validity_days: r.validity_days,
            renew_on_use: r.renew_on_use,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

const SKILL_SELECT: &str = "SELECT id, makerspace_id, name, category, level, description, status, validity_days, \
     renew_on_use, created_at, updated_at FROM skills";

/// A person's skill; `makerspace_id` is the skill's.
#[derive(Debug, Clone, PartialEq)]
pub struct UserSkillRecord {
    pub id: String,
    pub user_id: String,
    pub skill_id: String,
    pub makerspace_id: String,
    pub status: CertificationStatus,
    pub certified_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub certified_by: Option<String>,
    pub notes: Option<String>,
    pub quiz_score: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct UserSkillRow {
    id: String,
    user_id: String,
    skill_id: String,
    makerspace_id: String,
    status: String,
    certified_at: Option<DateTime<Utc>>,
    expires_at: Option<DateTime<Utc>>,
    certified_by: Option<String>,
    notes: Option<String>,
    quiz_score: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<UserSkillRow> for UserSkillRecord {
    type Error = StoreError;
    fn try_from(r: UserSkillRow) -> Result<Self, StoreError> {
        Ok(UserSkillRecord {
            status: CertificationStatus::parse(&r.status)
                .ok_or_else(|| StoreError::Corrupt(format!("user_skills.status {:?}", r.status)))?,
            id: r.id,
            user_id: r.user_id,
            skill_id: r.skill_id,
            makerspace_id: r.makerspace_id,
            certified_at: r.certified_at,
            expires_at: r.expires_at,
            certified_by: r.certified_by,
            notes: r.notes,
            quiz_score: r.quiz_score,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

const USER_SKILL_SELECT: &str = "SELECT u.id, u.user_id, u.skill_id, s.makerspace_id, u.status, u.certified_at, \
     u.expires_at, u.certified_by, u.notes, u.quiz_score, u.created_at, u.updated_at \
     FROM user_skills u JOIN skills s ON s.id = u.skill_id";

#[derive(Debug, Clone, PartialEq)]
pub struct SkillRequestRecord {
    pub id: String,
    pub user_id: String,
    pub skill_id: String,
    pub makerspace_id: String,
    pub status: RequestStatus,
    pub reason: Option<String>,
    pub notes: Option<String>,
    pub reviewed_by: Option<String>,
    pub reviewed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct RequestRow {
    id: String,
    user_id: String,
    skill_id: String,
    makerspace_id: String,
    status: String,
    reason: Option<String>,
    notes: Option<String>,
    reviewed_by: Option<String>,
    reviewed_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<RequestRow> for SkillRequestRecord {
    type Error = StoreError;
    fn try_from(r: RequestRow) -> Result<Self, StoreError> {
        Ok(SkillRequestRecord {
            status: RequestStatus::parse(&r.status)
                .ok_or_else(|| StoreError::Corrupt(format!("skill_requests.status {:?}", r.status)))?,
            id: r.id,
            user_id: r.user_id,
            skill_id: r.skill_id,
            makerspace_id: r.makerspace_id,
            reason: r.reason,
            notes: r.notes,
            reviewed_by: r.reviewed_by,
            reviewed_at: r.reviewed_at,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

const REQUEST_SELECT: &str = "SELECT r.id, r.user_id, r.skill_id, s.makerspace_id, r.status, r.reason, r.notes, \
     r.reviewed_by, r.reviewed_at, r.created_at, r.updated_at FROM skill_requests r JOIN skills s ON s.id = r.skill_id";

/// One line of the skill audit log.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    pub id: String,
    pub makerspace_id: String,
    pub action: String,
    pub user_id: String,
    pub skill_id: Option<String>,
    pub performed_by: Option<String>,
    pub reason: Option<String>,
    pub metadata: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

impl AuditRecord {
    /// A line about `skill` for `user_id`, written by `by` at `at`.
    pub fn for_skill(
        skill: &SkillRecord,
        action: &str,
        user_id: &str,
        by: &str,
        reason: Option<String>,
        metadata: serde_json::Value,
        at: DateTime<Utc>,
    ) -> AuditRecord {
        AuditRecord {
            id: crate::domain::ids::new_id(),
            makerspace_id: skill.makerspace_id.clone(),
            action: action.to_string(),
            user_id: user_id.to_string(),
            skill_id: Some(skill.id.clone()),
            performed_by: Some(by.to_string()),
            reason,
            metadata,
            created_at: at,
        }
    }
}

#[derive(sqlx::FromRow)]
struct AuditRow {
    id: String,
    makerspace_id: String,
    action: String,
    user_id: String,
    skill_id: Option<String>,
    performed_by: Option<String>,
    reason: Option<String>,
    metadata: String,
    created_at: DateTime<Utc>,
}

/// Filters of listings; `None` is "any".
#[derive(Debug, Default, Clone)]
pub struct SkillFilter {
    pub makerspace_id: Option<String>,
    pub category: Option<String>,
    pub level: Option<SkillLevel>,
    pub status: Option<SkillStatus>,
}

#[derive(Debug, Default, Clone)]
pub struct UserSkillFilter {
    pub makerspace_id: Option<String>,
    pub user_id: Option<String>,
    pub skill_id: Option<String>,
}

#[derive(Debug, Default, Clone)]
pub struct RequestFilter {
    pub makerspace_id: Option<String>,
    pub user_id: Option<String>,
    pub status: Option<RequestStatus>,
}

#[derive(Debug, Default, Clone)]
pub struct AuditFilter {
    pub makerspace_id: Option<String>,
    pub user_id: Option<String>,
    pub skill_id: Option<String>,
    pub action: Option<String>,
}

/// A request decision to store: only a request still pending is decided.
#[derive(Debug, Clone)]
pub struct Decision {
    pub request_id: String,
    pub status: RequestStatus,
    pub notes: Option<String>,
    pub reviewed_by: String,
    pub reviewed_at: DateTime<Utc>,
}

/// Changes to people's skills made together: certifications written (inserted, or updated
/// when the person already has a row for the skill), a request decided, audit lines.
#[derive(Debug, Clone, Default)]
pub struct CertificationChange {
    pub user_skills: Vec<UserSkillRecord>,
    pub decision: Option<Decision>,
    pub audit: Vec<AuditRecord>,
}

macro_rules! insert_audit {
    ($executor:expr, $a:expr) => {{
        let a: &AuditRecord = $a;
        sqlx::query(
            "INSERT INTO skill_audit_logs (id, makerspace_id, action, user_id, skill_id, performed_by, reason, metadata,
             created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&a.id)
        .bind(&a.makerspace_id)
        .bind(&a.action)
        .bind(&a.user_id)
        .bind(&a.skill_id)
        .bind(&a.performed_by)
        .bind(&a.reason)
        .bind(to_json_text(&a.metadata))
        .bind(a.created_at)
        .execute($executor)
        .await?;
    }};
}

/// Replaces a skill's prerequisites and adds it to the requirements of the given equipment.
macro_rules! link_skill {
    ($tx:expr, $skill:expr, $prerequisites:expr, $equipment:expr) => {{
        let skill: &SkillRecord = $skill;
        if let Some(prerequisites) = $prerequisites {
            let prerequisites: &BTreeSet<String> = prerequisites;
            sqlx::query("DELETE FROM skill_prerequisites WHERE skill_id = $1")
                .bind(&skill.id)
                .execute(&mut *$tx)
                .await?;
            for p in prerequisites {
                sqlx::query("INSERT INTO skill_prerequisites (skill_id, prerequisite_id) VALUES ($1, $2)")
                    .bind(&skill.id)
                    .bind(p)
                    .execute(&mut *$tx)
                    .await?;
            }
        }
        let equipment: &[String] = $equipment;
        for equipment_id in equipment {
            let row: Option<(String,)> =
                sqlx::query_as("SELECT skill_requirements FROM equipment WHERE id = $1 AND makerspace_id = $2")
                    .bind(equipment_id)
                    .bind(&skill.makerspace_id)
                    .fetch_optional(&mut *$tx)
                    .await?;
            let Some((text,)) = row else { return Err(StoreError::InUse) };
            let mut list: Vec<String> = json_column("equipment.skill_requirements", &text)?;
            if !list.contains(&skill.id) {
                list.push(skill.id.clone());
                sqlx::query("UPDATE equipment SET skill_requirements = $2, updated_at = $3 WHERE id = $1")
                    .bind(equipment_id)
                    .bind(to_json_text(&list))
                    .bind(skill.updated_at)
                    .execute(&mut *$tx)
                    .await?;
            }
        }
    }};
}

impl Store {
    /// Stores a new skill with its prerequisites and equipment links, atomically. A second
    /// skill with the same name in the space is a `Conflict`; equipment not in the space is
    /// `InUse` (the caller checks it before, this only guards races).
    pub async fn insert_skill(
        &self,
        s: &SkillRecord,
        prerequisites: &BTreeSet<String>,
        equipment_ids: &[String],
    ) -> Result<(), StoreError> {
        with_writer!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO skills (id, makerspace_id, name, category, level, description, status, validity_days,
                 renew_on_use, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .bind(&s.id).bind(&s.makerspace_id).bind(&s.name).bind(&s.category).bind(s.level.as_str())
            .bind(&s.description).bind(s.status.as_str()).bind(s.validity_days).bind(s.renew_on_use)
            .bind(s.created_at).bind(s.updated_at)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from_write)?;
            link_skill!(tx, s, Some(prerequisites), equipment_ids);
            tx.commit().await?;
        });
        self.cache.clear();
        Ok(())
    }

    /// Writes a skill's fields, and its prerequisites and equipment links when given.
    pub async fn update_skill(
        &self,
        s: &SkillRecord,
        prerequisites: Option<&BTreeSet<String>>,
        equipment_ids: &[String],
    ) -> Result<bool, StoreError> {
        let affected = with_writer!(self, pool => {
            let mut tx = pool.begin().await?;
            let affected = sqlx::query(
                "UPDATE skills SET name = $2, category = $3, level = $4, description = $5, status = $6,
                 validity_days = $7, renew_on_use = $8, updated_at = $9 WHERE id = $1",
            )
            .bind(&s.id).bind(&s.name).bind(&s.category).bind(s.level.as_str()).bind(&s.description)
            .bind(s.status.as_str()).bind(s.validity_days).bind(s.renew_on_use).bind(s.updated_at)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from_write)?
            .rows_affected();
            if affected > 0 {
                link_skill!(tx, s, prerequisites, equipment_ids);
            }
            tx.commit().await?;
            affected
        });
        self.cache.clear();
        Ok(affected > 0)
    }

    pub async fn get_skill(&self, id: &str) -> Result<Option<SkillRecord>, StoreError> {
        let sql = format!("{SKILL_SELECT} WHERE id = $1");
        let row: Option<SkillRow> = with_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await?
        });
        row.map(SkillRecord::try_from).transpose()
    }

    pub async fn list_skills(&self, filter: &SkillFilter) -> Result<Vec<SkillRecord>, StoreError> {
        let rows: Vec<SkillRow> = with_pool!(self, pool => {
            let mut q = QueryBuilder::new(SKILL_SELECT);
            q.push(" WHERE 1 = 1");
            if let Some(space) = &filter.makerspace_id {
                q.push(" AND makerspace_id = ").push_bind(space.clone());
            }
            if let Some(category) = &filter.category {
                q.push(" AND category = ").push_bind(category.clone());
            }
            if let Some(level) = filter.level {
                q.push(" AND level = ").push_bind(level.as_str());
            }
            if let Some(status) = filter.status {
                q.push(" AND status = ").push_bind(status.as_str());
            }
            q.push(" ORDER BY makerspace_id, category, name, id");
            q.build_query_as().fetch_all(pool).await?
        });
        rows.into_iter().map(SkillRecord::try_from).collect()
    }

    /// A person's certifications in a makerspace, for the gate (cached; every write of their
    /// certifications drops the entry).
    pub async fn certifications_of(
        &self,
        makerspace_id: &str,
        user_id: &str,
    ) -> Result<Arc<Vec<Certification>>, StoreError> {
        let key = (makerspace_id.to_string(), user_id.to_string());
        let certifications = self
            .cache
            .get_or_load(&self.cache.certifications, &key, async {
                let rows = self
                    .list_user_skills(&UserSkillFilter {
                        makerspace_id: Some(makerspace_id.to_string()),
                        user_id: Some(user_id.to_string()),
                        skill_id: None,
                    })
                    .await?;
                Ok(Some(Arc::new(
                    rows.into_iter()
                        .map(|r| Certification { skill_id: r.skill_id, status: r.status, expires_at: r.expires_at })
                        .collect(),
                )))
            })
            .await?;
        Ok(certifications.unwrap_or_default())
    }

    /// Whether a person's certifications are cached (for tests).
    pub fn certifications_cached(&self, makerspace_id: &str, user_id: &str) -> bool {
        self.cache.certifications.contains_key(&(makerspace_id.to_string(), user_id.to_string()))
    }

    /// A makerspace's skills and prerequisite graph, for the gate (cached).
    pub async fn skill_catalog(&self, makerspace_id: &str) -> Result<Arc<SkillCatalog>, StoreError> {
        let key = makerspace_id.to_string();
        let catalog = self
            .cache
            .get_or_load(&self.cache.skills, &key, async {
                let skills = self
                    .list_skills(&SkillFilter { makerspace_id: Some(makerspace_id.to_string()), ..Default::default() })
                    .await?;
                let graph = self.prerequisite_graph(makerspace_id).await?;
                Ok(Some(Arc::new(SkillCatalog {
                    skills: skills.into_iter().map(|s| (s.id.clone(), s)).collect(),
                    graph,
                })))
            })
            .await?;
        Ok(catalog.unwrap_or_default())
    }

    /// The prerequisite graph of a makerspace's skills.
    pub async fn prerequisite_graph(&self, makerspace_id: &str) -> Result<Prerequisites, StoreError> {
        let rows: Vec<(String, String)> = with_pool!(self, pool => {
            sqlx::query_as(
                "SELECT p.skill_id, p.prerequisite_id FROM skill_prerequisites p JOIN skills s ON s.id = p.skill_id
                 WHERE s.makerspace_id = $1",
            )
            .bind(makerspace_id)
            .fetch_all(pool)
            .await?
        });
        let mut graph = Prerequisites::new();
        for (skill, prerequisite) in rows {
            graph.entry(skill).or_default().insert(prerequisite);
        }
        Ok(graph)
    }

    pub async fn get_user_skill(&self, id: &str) -> Result<Option<UserSkillRecord>, StoreError> {
        let sql = format!("{USER_SKILL_SELECT} WHERE u.id = $1");
        let row: Option<UserSkillRow> = with_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await?
        });
        row.map(UserSkillRecord::try_from).transpose()
    }

    pub async fn list_user_skills(&self, filter: &UserSkillFilter) -> Result<Vec<UserSkillRecord>, StoreError> {
        let rows: Vec<UserSkillRow> = with_pool!(self, pool => {
            let mut q = QueryBuilder::new(USER_SKILL_SELECT);
            q.push(" WHERE 1 = 1");
            if let Some(space) = &filter.makerspace_id {
                q.push(" AND s.makerspace_id = ").push_bind(space.clone());
            }
            if let Some(user) = &filter.user_id {
                q.push(" AND u.user_id = ").push_bind(user.clone());
            }
            if let Some(skill) = &filter.skill_id {
                q.push(" AND u.skill_id = ").push_bind(skill.clone());
            }
            q.push(" ORDER BY u.user_id, s.name, u.id");
            q.build_query_as().fetch_all(pool).await?
        });
        rows.into_iter().map(UserSkillRecord::try_from).collect()
    }

    /// Writes certifications, decides a request and appends audit lines, all or nothing. A
    /// decision on a request that is no longer pending is a `Conflict` and writes nothing.
    /// Returns the ids of the written certifications (an existing row keeps its id).
    pub async fn apply_certification_change(&self, change: &CertificationChange) -> Result<Vec<String>, StoreError> {
        let ids = with_writer!(self, pool => {
            let mut tx = pool.begin().await?;
            if let Some(d) = &change.decision {
                let affected = sqlx::query(
                    "UPDATE skill_requests SET status = $2, notes = COALESCE($3, notes), reviewed_by = $4,
                     reviewed_at = $5, updated_at = $5 WHERE id = $1 AND status = 'pending'",
                )
                .bind(&d.request_id).bind(d.status.as_str()).bind(&d.notes).bind(&d.reviewed_by).bind(d.reviewed_at)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if affected == 0 {
                    return Err(StoreError::Conflict);
                }
            }
            let mut ids = Vec::with_capacity(change.user_skills.len());
            for u in &change.user_skills {
                let (id,): (String,) = sqlx::query_as(
                    "INSERT INTO user_skills (id, user_id, skill_id, status, certified_at, expires_at, certified_by,
                     notes, quiz_score, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                     ON CONFLICT (user_id, skill_id) DO UPDATE SET status = excluded.status,
                     certified_at = excluded.certified_at, expires_at = excluded.expires_at,
                     certified_by = excluded.certified_by, notes = excluded.notes, quiz_score = excluded.quiz_score,
                     updated_at = excluded.updated_at
                     RETURNING id",
                )
                .bind(&u.id).bind(&u.user_id).bind(&u.skill_id).bind(u.status.as_str()).bind(u.certified_at)
                .bind(u.expires_at).bind(&u.certified_by).bind(&u.notes).bind(&u.quiz_score).bind(u.created_at)
                .bind(u.updated_at)
                .fetch_one(&mut *tx)
                .await?;
                ids.push(id);
            }
            for a in &change.audit {
                insert_audit!(&mut *tx, a);
            }
            tx.commit().await?;
            ids
        });
        self.cache
            .clear_certifications_of(change.user_skills.iter().map(|u| (u.makerspace_id.as_str(), u.user_id.as_str())));
        Ok(ids)
    }

    /// Stores a new pending request. When the person already has a pending request for the
    /// skill, nothing is stored and its id is returned as `Err`.
    pub async fn insert_skill_request(&self, r: &SkillRequestRecord) -> Result<Result<(), String>, StoreError> {
        let inserted = with_writer!(self, pool => {
            sqlx::query(
                "INSERT INTO skill_requests (id, user_id, skill_id, status, reason, notes, reviewed_by, reviewed_at,
                 created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(&r.id).bind(&r.user_id).bind(&r.skill_id).bind(r.status.as_str()).bind(&r.reason).bind(&r.notes)
            .bind(&r.reviewed_by).bind(r.reviewed_at).bind(r.created_at).bind(r.updated_at)
            .execute(pool)
            .await
            .map(|_| ())
            .map_err(StoreError::from_write)
        });
        match inserted {
            Ok(_) => Ok(Ok(())),
            Err(StoreError::Conflict) => {
                let existing = self.pending_request(&r.user_id, &r.skill_id).await?;
                Ok(Err(existing.map(|e| e.id).unwrap_or_default()))
            }
            Err(other) => Err(other),
        }
    }

    pub async fn pending_request(
        &self,
        user_id: &str,
        skill_id: &str,
    ) -> Result<Option<SkillRequestRecord>, StoreError> {
        let sql = format!("{REQUEST_SELECT} WHERE r.user_id = $1 AND r.skill_id = $2 AND r.status = 'pending'");
        let row: Option<RequestRow> = with_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(user_id).bind(skill_id).fetch_optional(pool).await?
        });
        row.map(SkillRequestRecord::try_from).transpose()
    }

    pub async fn get_skill_request(&self, id: &str) -> Result<Option<SkillRequestRecord>, StoreError> {
        let sql = format!("{REQUEST_SELECT} WHERE r.id = $1");
        let row: Option<RequestRow> = with_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await?
        });
        row.map(SkillRequestRecord::try_from).transpose()
    }

    pub async fn list_skill_requests(&self, filter: &RequestFilter) -> Result<Vec<SkillRequestRecord>, StoreError> {
        let rows: Vec<RequestRow> = with_pool!(self, pool => {
            let mut q = QueryBuilder::new(REQUEST_SELECT);
            q.push(" WHERE 1 = 1");
            if let Some(space) = &filter.makerspace_id {
                q.push(" AND s.makerspace_id = ").push_bind(space.clone());
            }
            if let Some(user) = &filter.user_id {
                q.push(" AND r.user_id = ").push_bind(user.clone());
            }
            if let Some(status) = filter.status {
                q.push(" AND r.status = ").push_bind(status.as_str());
            }
            q.push(" ORDER BY r.created_at, r.id");
            q.build_query_as().fetch_all(pool).await?
        });
        rows.into_iter().map(SkillRequestRecord::try_from).collect()
    }

    /// The audit log, oldest first.
    pub async fn list_skill_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
        let rows: Vec<AuditRow> = with_pool!(self, pool => {
            let mut q = QueryBuilder::new(
                "SELECT id, makerspace_id, action, user_id, skill_id, performed_by, reason, metadata, created_at
                 FROM skill_audit_logs WHERE 1 = 1",
            );
            if let Some(space) = &filter.makerspace_id {
                q.push(" AND makerspace_id = ").push_bind(space.clone());
            }
            if let Some(user) = &filter.user_id {
                q.push(" AND user_id = ").push_bind(user.clone());
            }
            if let Some(skill) = &filter.skill_id {
                q.push(" AND skill_id = ").push_bind(skill.clone());
            }
            if let Some(action) = &filter.action {
                q.push(" AND action = ").push_bind(action.clone());
            }
            q.push(" ORDER BY created_at, id");
            q.build_query_as().fetch_all(pool).await?
        });
        rows.into_iter()
            .map(|r| {
                Ok(AuditRecord {
                    metadata: json_column("skill_audit_logs.metadata", &r.metadata)?,
                    id: r.id,
                    makerspace_id: r.makerspace_id,
                    action: r.action,
                    user_id: r.user_id,
                    skill_id: r.skill_id,
                    performed_by: r.performed_by,
                    reason: r.reason,
                    created_at: r.created_at,
                })
            })
            .collect()
    }
}
