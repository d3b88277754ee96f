//! Members of makerspaces and their activity log.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::QueryBuilder;

use super::{json_column, with_pool, with_writer, Store, StoreError};
use crate::domain::members::{MemberRole, MemberStatus};

/// Inserts an activity line inside a transaction (a macro: the executor type differs per
/// database).
macro_rules! insert_activity {
    ($executor:expr, $activity:expr) => {{
        let a: &$crate::store::members::Activity = $activity;
        sqlx::query(
            "INSERT INTO member_activities (member_id, makerspace_id, action, actor, details, at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&a.member_id)
        .bind(&a.makerspace_id)
        .bind(&a.action)
        .bind(&a.actor)
        .bind($crate::store::to_json_text(&a.details))
        .bind(a.at)
        .execute($executor)
        .await?;
    }};
}
pub(crate) use insert_activity;

#[derive(Debug, Clone, PartialEq)]
pub struct MemberRecord {
    pub id: String,
    pub makerspace_id: String,
    pub user_id: Option<String>,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub phone: Option<String>,
    pub role: MemberRole,
    /// As stored; see [`crate::domain::members::effective_status`] for what counts.
    pub status: MemberStatus,
    pub plan_id: Option<String>,
    pub start_date: NaiveDate,
    pub end_date: Option<NaiveDate>,
    pub suspension_reason: Option<String>,
    pub notes: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
struct MemberRow {
    id: String,
    makerspace_id: String,
    user_id: Option<String>,
    email: String,
    first_name: String,
    last_name: String,
    phone: Option<String>,
    role: String,
    status: String,
    plan_id: Option<String>,
    start_date: NaiveDate,
    end_date: Option<NaiveDate>,
    suspension_reason: Option<String>,
    notes: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    deleted_at: Option<DateTime<Utc>>,
}

impl TryFrom<MemberRow> for MemberRecord {
    type Error = StoreError;
    fn try_from(r: MemberRow) -> Result<Self, StoreError> {
        Ok(MemberRecord {
            role: MemberRole::parse(&r.role)
                .ok_or_else(|| StoreError::Corrupt(format!("members.role {:?}", r.role)))?,
            status: MemberStatus::parse(&r.status)
                .ok_or_else(|| StoreError::Corrupt(format!("members.status {:?}", r.status)))?,
            id: r.id,
            makerspace_id: r.makerspace_id,
            user_id: r.user_id,
            email: r.email,
            first_name: r.first_name,
            last_name: r.last_name,
            phone: r.phone,
            plan_id: r.plan_id,
            start_date: r.start_date,
            end_date: r.end_date,
            suspension_reason: r.suspension_reason,
            notes: r.notes,
            created_at: r.created_at,
            updated_at: r.updated_at,
            deleted_at: r.deleted_at,
        })
    }
}

const SELECT: &str = "SELECT id, makerspace_id, user_id, email, first_name, last_name, phone, role, status, plan_id, \
     start_date, end_date, suspension_reason, notes, created_at, updated_at, deleted_at FROM members";

/// One line of a member's activity log.
#[derive(Debug, Clone, PartialEq)]
pub struct Activity {
    pub member_id: String,
    pub makerspace_id: String,
    /// What happened: created, updated, suspended, reactivated, deleted, card_added, ...
    pub action: String,
    /// Who did it (a user id, or "system").
    pub actor: String,
    pub details: serde_json::Value,
    pub at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct ActivityRow {
    member_id: String,
    makerspace_id: String,
    action: String,
    actor: String,
    details: String,
    at: DateTime<Utc>,
}

/// Sort orders of a member listing (column, descending).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberSort {
    Name,
    Email,
    CreatedAt,
    StartDate,
    EndDate,
    Status,
}

impl MemberSort {
    pub fn parse(s: &str) -> Option<MemberSort> {
        Some(match s {
            "name" => Self::Name,
            "email" => Self::Email,
            "created_at" => Self::CreatedAt,
            "start_date" => Self::StartDate,
            "end_date" => Self::EndDate,
            "status" => Self::Status,
            _ => return None,
        })
    }

    fn columns(self) -> &'static str {
        match self {
            Self::Name => "lower(last_name), lower(first_name)",
            Self::Email => "email",
            Self::CreatedAt => "created_at",
            Self::StartDate => "start_date",
            Self::EndDate => "end_date",
            Self::Status => "status",
        }
    }
}

/// Filters, order and page of a member listing.
#[derive(Debug, Clone)]
pub struct MemberQuery {
    pub search: Option<String>,
    pub status: Option<MemberStatus>,
    pub role: Option<MemberRole>,
    pub plan_id: Option<String>,
    pub sort: MemberSort,
    pub descending: bool,
    pub limit: i64,
    pub offset: i64,
    /// The day statuses are evaluated on (active past the end date is expired).
    pub today: NaiveDate,
}

/// A membership as the authorization layer sees it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct MembershipRow {
    pub member_id: String,
    pub makerspace_id: String,
    pub makerspace_name: String,
    pub role: String,
    pub status: String,
    pub end_date: Option<NaiveDate>,
    pub plan_id: Option<String>,
}

/// Adds the filters of a listing to a query (shared by the page and the count).
fn push_filters<DB: sqlx::Database>(q: &mut QueryBuilder<DB>, makerspace_id: &str, query: &MemberQuery)
where
    for<'t> String: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    for<'t> NaiveDate: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    q.push(" WHERE deleted_at IS NULL AND makerspace_id = ").push_bind(makerspace_id.to_string());
    if let Some(search) = &query.search {
        let pattern =
            format!("%{}%", search.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_"));
        q.push(" AND (lower(first_name || ' ' || last_name) LIKE ")
            .push_bind(pattern.clone())
            .push(" ESCAPE '\\' OR lower(email) LIKE ")
            .push_bind(pattern)
            .push(" ESCAPE '\\')");
    }
    match query.status {
        None => {}
        Some(MemberStatus::Active) => {
            q.push(" AND status = 'active' AND (end_date IS NULL OR end_date >= ").push_bind(query.today).push(")");
        }
        Some(MemberStatus::Expired) => {
            q.push(" AND (status = 'expired' OR (status = 'active' AND end_date < ").push_bind(query.today).push("))");
        }
        Some(other) => {
            q.push(" AND status = ").push_bind(other.as_str().to_string());
        }
    }
    if let Some(role) = query.role {
        q.push(" AND role = ").push_bind(role.as_str().to_string());
    }
    if let Some(plan) = &query.plan_id {
        q.push(" AND plan_id = ").push_bind(plan.clone());
    }
}

impl Store {
    /// Stores a new member with its first activity line, atomically. A second live member
    /// with the same email or identity in the makerspace is a `Conflict`.
    pub async fn insert_member(&self, m: &MemberRecord, activity: &Activity) -> Result<(), StoreError> {
        with_writer!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO members (id, makerspace_id, user_id, email, first_name, last_name, phone, role, status,
                 plan_id, start_date, end_date, suspension_reason, notes, created_at, updated_at, deleted_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
            )
            .bind(&m.id).bind(&m.makerspace_id).bind(&m.user_id).bind(&m.email).bind(&m.first_name)
            .bind(&m.last_name).bind(&m.phone).bind(m.role.as_str()).bind(m.status.as_str()).bind(&m.plan_id)
            .bind(m.start_date).bind(m.end_date).bind(&m.suspension_reason).bind(&m.notes)
            .bind(m.created_at).bind(m.updated_at).bind(m.deleted_at)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from_write)?;
            insert_activity!(&mut *tx, activity);
            tx.commit().await?;
        });
        self.cache.clear_memberships();
        Ok(())
    }

    /// Writes every field of a member, with an activity line, atomically.
    pub async fn update_member(&self, m: &MemberRecord, activity: &Activity) -> Result<bool, StoreError> {
        let affected = with_writer!(self, pool => {
            let mut tx = pool.begin().await?;
            let affected = sqlx::query(
                "UPDATE members SET user_id = $2, email = $3, first_name = $4, last_name = $5, phone = $6, role = $7,
                 status = $8, plan_id = $9, start_date = $10, end_date = $11, suspension_reason = $12, notes = $13,
                 updated_at = $14, deleted_at = $15 WHERE id = $1 AND deleted_at IS NULL",
            )
            .bind(&m.id).bind(&m.user_id).bind(&m.email).bind(&m.first_name).bind(&m.last_name).bind(&m.phone)
            .bind(m.role.as_str()).bind(m.status.as_str()).bind(&m.plan_id).bind(m.start_date).bind(m.end_date)
            .bind(&m.suspension_reason).bind(&m.notes).bind(m.updated_at).bind(m.deleted_at)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from_write)?
            .rows_affected();
            if affected > 0 {
                insert_activity!(&mut *tx, activity);
                if m.deleted_at.is_some() {
                    // A removed member's cards stop working with the membership.
                    sqlx::query("DELETE FROM member_cards WHERE member_id = $1").bind(&m.id).execute(&mut *tx).await?;
                }
            }
            tx.commit().await?;
            affected
        });
        self.cache.clear_memberships();
        Ok(affected > 0)
    }

    /// A live (not deleted) member of a makerspace.
    pub async fn get_member(&self, makerspace_id: &str, id: &str) -> Result<Option<MemberRecord>, StoreError> {
        let sql = format!("{SELECT} WHERE makerspace_id = $1 AND id = $2 AND deleted_at IS NULL");
        let row: Option<MemberRow> = with_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(makerspace_id).bind(id).fetch_optional(pool).await?
        });
        row.map(MemberRecord::try_from).transpose()
    }

    /// The live member holding the card with this UID hash in a makerspace: the kiosk's
    /// lookup, in one query.
    pub async fn member_by_card(
        &self,
        makerspace_id: &str,
        uid_hash: &str,
    ) -> Result<Option<MemberRecord>, StoreError> {
        let sql = format!(
            "{SELECT} WHERE makerspace_id = $1 AND deleted_at IS NULL
             AND id = (SELECT member_id FROM member_cards WHERE makerspace_id = $1 AND uid_hash = $2)"
        );
        let row: Option<MemberRow> = with_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(makerspace_id).bind(uid_hash).fetch_optional(pool).await?
        });
        row.map(MemberRecord::try_from).transpose()
    }

    pub async fn find_member_by_email(
        &self,
        makerspace_id: &str,
        email: &str,
    ) -> Result<Option<MemberRecord>, StoreError> {
        let sql = format!("{SELECT} WHERE makerspace_id = $1 AND email = $2 AND deleted_at IS NULL");
        let row: Option<MemberRow> = with_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(makerspace_id).bind(email).fetch_optional(pool).await?
        });
        row.map(MemberRecord::try_from).transpose()
    }

    pub async fn find_member_by_user(
        &self,
        makerspace_id: &str,
        user_id: &str,
    ) -> Result<Option<MemberRecord>, StoreError> {
        let sql = format!("{SELECT} WHERE makerspace_id = $1 AND user_id = $2 AND deleted_at IS NULL");
        let row: Option<MemberRow> = with_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(makerspace_id).bind(user_id).fetch_optional(pool).await?
        });
        row.map(MemberRecord::try_from).transpose()
    }

    /// One page of a member listing and the total number of matches.
    pub async fn list_members(
        &self,
        makerspace_id: &str,
        query: &MemberQuery,
    ) -> Result<(Vec<MemberRecord>, i64), StoreError> {
        let (rows, total): (Vec<MemberRow>, i64) = with_pool!(self, pool => {
            let mut page = QueryBuilder::new(SELECT);
            push_filters(&mut page, makerspace_id, query);
            let direction = if query.descending { " DESC" } else { " ASC" };
            page.push(" ORDER BY ");
            for (i, column) in query.sort.columns().split(", ").enumerate() {
                if i > 0 {
                    page.push(", ");
                }
                page.push(column).push(direction);
            }
            page.push(", id").push(" LIMIT ").push_bind(query.limit).push(" OFFSET ").push_bind(query.offset);
            let rows = page.build_query_as().fetch_all(pool).await?;
            let mut count = QueryBuilder::new("SELECT COUNT(*) FROM members");
            push_filters(&mut count, makerspace_id, query);
            let total: (i64,) = count.build_query_as().fetch_one(pool).await?;
            (rows, total.0)
        });
        let members = rows.into_iter().map(MemberRecord::try_from).collect::<Result<_, _>>()?;
        Ok((members, total))
    }

    /// Every live member of a makerspace (statistics, export).
    pub async fn all_members(&self, makerspace_id: &str) -> Result<Vec<MemberRecord>, StoreError> {
        let sql = format!(
            "{SELECT} WHERE makerspace_id = $1 AND deleted_at IS NULL ORDER BY lower(last_name), lower(first_name), id"
        );
        let rows: Vec<MemberRow> = with_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(makerspace_id).fetch_all(pool).await?
        });
        rows.into_iter().map(MemberRecord::try_from).collect()
    }

    /// A member's activity log, oldest first.
    pub async fn member_activities(&self, member_id: &str) -> Result<Vec<Activity>, StoreError> {
        let rows: Vec<ActivityRow> = with_pool!(self, pool => {
            sqlx::query_as(
                "SELECT member_id, makerspace_id, action, actor, details, at FROM member_activities
                 WHERE member_id = $1 ORDER BY id",
            )
            .bind(member_id)
            .fetch_all(pool)
            .await?
        });
        rows.into_iter()
            .map(|r| {
                Ok(Activity {
                    details: json_column("member_activities.details", &r.details)?,
                    member_id: r.member_id,
                    makerspace_id: r.makerspace_id,
                    action: r.action,
                    actor: r.actor,
                    at: r.at,
                })
            })
            .collect()
    }

    /// Every live membership of an identity, with its makerspace's name.
    pub async fn memberships_of(&self, user_id: &str) -> Result<Arc<Vec<MembershipRow>>, StoreError> {
        let key = user_id.to_string();
        let rows = self
            .cache
            .get_or_load(&self.cache.memberships, &key, async {
                let rows: Vec<MembershipRow> = with_pool!(self, pool => {
                    sqlx::query_as(
                        "SELECT m.id AS member_id, m.makerspace_id, s.name AS makerspace_name, m.role, m.status,
                         m.end_date, m.plan_id FROM members m JOIN makerspaces s ON s.id = m.makerspace_id
                         WHERE m.user_id = $1 AND m.deleted_at IS NULL ORDER BY s.name, s.id",
                    )
                    .bind(user_id)
                    .fetch_all(pool)
                    .await?
                });
                Ok(Some(Arc::new(rows)))
            })
            .await?;
        Ok(rows.unwrap_or_default())
    }
}
