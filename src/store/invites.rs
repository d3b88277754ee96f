//! Invitations to join a makerspace. Only a hash of each token is stored.

use chrono::{DateTime, Utc};

use super::members::{insert_activity, Activity, MemberRecord};
use super::{with_pool, with_writer, Store, StoreError};
use crate::domain::members::MemberRole;

/// Where an invitation stands. `expired` is derived from `expires_at` for pending ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InviteStatus {
    Pending,
    Accepted,
    Cancelled,
}

impl InviteStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Accepted => "accepted",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(Self::Pending),
            "accepted" => Some(Self::Accepted),
            "cancelled" => Some(Self::Cancelled),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct InviteRecord {
    pub id: String,
    pub makerspace_id: String,
    pub email: String,
    pub role: MemberRole,
    pub plan_id: Option<String>,
    pub message: Option<String>,
    pub token_hash: String,
    pub status: InviteStatus,
    pub invited_by: String,
    pub expires_at: DateTime<Utc>,
    pub sent_count: i64,
    pub accepted_at: Option<DateTime<Utc>>,
    pub accepted_by: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct InviteRow {
    id: String,
    makerspace_id: String,
    email: String,
    role: String,
    plan_id: Option<String>,
    message: Option<String>,
    token_hash: String,
    status: String,
    invited_by: String,
    expires_at: DateTime<Utc>,
    sent_count: i64,
    accepted_at: Option<DateTime<Utc>>,
    accepted_by: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<InviteRow> for InviteRecord {
    type Error = StoreError;
    fn try_from(r: InviteRow) -> Result<Self, StoreError> {
        Ok(InviteRecord {
            role: MemberRole::parse(&r.role)
                .ok_or_else(|| StoreError::Corrupt(format!("member_invites.role {:?}", r.role)))?,
            status: InviteStatus::parse(&r.status)
                .ok_or_else(|| StoreError::Corrupt(format!("member_invites.status {:?}", r.status)))?,
            id: r.id,
            makerspace_id: r.makerspace_id,
            email: r.email,
            plan_id: r.plan_id,
            message: r.message,
            token_hash: r.token_hash,
            invited_by: r.invited_by,
            expires_at: r.expires_at,
            sent_count: r.sent_count,
            accepted_at: r.accepted_at,
            accepted_by: r.accepted_by,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

const SELECT: &str = "SELECT id, makerspace_id, email, role, plan_id, message, token_hash, status, invited_by, \
     expires_at, sent_count, accepted_at, accepted_by, created_at, updated_at FROM member_invites";

impl Store {
    pub async fn insert_invite(&self, i: &InviteRecord) -> Result<(), StoreError> {
        with_writer!(self, pool => {
            sqlx::query(
                "INSERT INTO member_invites (id, makerspace_id, email, role, plan_id, message, token_hash, status,
                 invited_by, expires_at, sent_count, accepted_at, accepted_by, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
            )
            .bind(&i.id).bind(&i.makerspace_id).bind(&i.email).bind(i.role.as_str()).bind(&i.plan_id)
            .bind(&i.message).bind(&i.token_hash).bind(i.status.as_str()).bind(&i.invited_by).bind(i.expires_at)
            .bind(i.sent_count).bind(i.accepted_at).bind(&i.accepted_by).bind(i.created_at).bind(i.updated_at)
            .execute(pool)
            .await
            .map_err(StoreError::from_write)?;
        });
        Ok(())
    }

    pub async fn get_invite(&self, makerspace_id: &str, id: &str) -> Result<Option<InviteRecord>, StoreError> {
        let sql = format!("{SELECT} WHERE makerspace_id = $1 AND id = $2");
        let row: Option<InviteRow> = with_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(makerspace_id).bind(id).fetch_optional(pool).await?
        });
        row.map(InviteRecord::try_from).transpose()
    }

    pub async fn find_invite_by_token_hash(&self, token_hash: &str) -> Result<Option<InviteRecord>, StoreError> {
        let sql = format!("{SELECT} WHERE token_hash = $1");
        let row: Option<InviteRow> = with_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(token_hash).fetch_optional(pool).await?
        });
        row.map(InviteRecord::try_from).transpose()
    }

    /// Invitations of a makerspace, newest first, optionally of one status.
    pub async fn list_invites(
        &self,
        makerspace_id: &str,
        status: Option<InviteStatus>,
    ) -> Result<Vec<InviteRecord>, StoreError> {
        let sql = match status {
            Some(_) => format!("{SELECT} WHERE makerspace_id = $1 AND status = $2 ORDER BY created_at DESC, id"),
            None => format!("{SELECT} WHERE makerspace_id = $1 ORDER BY created_at DESC, id"),
        };
        let rows: Vec<InviteRow> = with_pool!(self, pool => {
            let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(makerspace_id);
            if let Some(s) = status {
                q = q.bind(s.as_str());
            }
            q.fetch_all(pool).await?
        });
        rows.into_iter().map(InviteRecord::try_from).collect()
    }

    /// A pending invitation to this email in this makerspace, if any.
    pub async fn pending_invite_for(
        &self,
        makerspace_id: &str,
        email: &str,
    ) -> Result<Option<InviteRecord>, StoreError> {
        let sql =
            format!("{SELECT} WHERE makerspace_id = $1 AND email = $2 AND status = 'pending' ORDER BY created_at DESC");
        let row: Option<InviteRow> = with_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(makerspace_id).bind(email).fetch_optional(pool).await?
        });
        row.map(InviteRecord::try_from).transpose()
    }

    /// Replaces a pending invitation's token and expiry (resend); false if it is no longer
    /// pending.
    pub async fn renew_invite(
        &self,
        id: &str,
        token_hash: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let now = Utc::now();
        let affected = with_writer!(self, pool => {
            sqlx::query(
                "UPDATE member_invites SET token_hash = $2, expires_at = $3, sent_count = sent_count + 1, updated_at = $4
                 WHERE id = $1 AND status = 'pending'",
            )
            .bind(id).bind(token_hash).bind(expires_at).bind(now)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(affected > 0)
    }

    /// Cancels a pending invitation; false if it is no longer pending.
    pub async fn cancel_invite(&self, id: &str) -> Result<bool, StoreError> {
        let now = Utc::now();
        let affected = with_writer!(self, pool => {
            sqlx::query("UPDATE member_invites SET status = 'cancelled', updated_at = $2 WHERE id = $1 AND status = 'pending'")
                .bind(id)
                .bind(now)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(affected > 0)
    }

    /// Accepts an invitation: marks it used and creates the membership in one transaction.
    /// Two people racing with the same token: exactly one wins; the other gets `Ok(false)`.
    /// A membership that already exists is a `Conflict` and the invitation stays pending.
    pub async fn accept_invite(
        &self,
        invite_id: &str,
        member: &MemberRecord,
        activity: &Activity,
    ) -> Result<bool, StoreError> {
        let now = member.created_at;
        let accepted = with_writer!(self, pool => {
            let mut tx = pool.begin().await?;
            let claimed = sqlx::query(
                "UPDATE member_invites SET status = 'accepted', accepted_at = $2, accepted_by = $3, updated_at = $2
                 WHERE id = $1 AND status = 'pending' AND expires_at > $2",
            )
            .bind(invite_id)
            .bind(now)
            .bind(&member.user_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if claimed == 0 {
                false
            } else {
                sqlx::query(
                    "INSERT INTO members (id, makerspace_id, user_id, email, first_name, last_name, phone, role, status,
                     plan_id, start_date, end_date, suspension_reason, notes, created_at, updated_at, deleted_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
                )
                .bind(&member.id).bind(&member.makerspace_id).bind(&member.user_id).bind(&member.email)
                .bind(&member.first_name).bind(&member.last_name).bind(&member.phone).bind(member.role.as_str())
                .bind(member.status.as_str()).bind(&member.plan_id).bind(member.start_date).bind(member.end_date)
                .bind(&member.suspension_reason).bind(&member.notes).bind(member.created_at).bind(member.updated_at)
                .bind(member.deleted_at)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from_write)?;
                insert_activity!(&mut *tx, activity);
                tx.commit().await?;
                true
            }
        });
        self.cache.clear_memberships();
        Ok(accepted)
    }
}
