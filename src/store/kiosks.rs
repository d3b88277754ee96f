//! Kiosks (shop-floor devices) and the log of every unlock attempt.

use chrono::{DateTime, Utc};

use super::{json_column, to_json_text, with_pool, with_writer, Store, StoreError};

#[derive(Debug, Clone, PartialEq)]
pub struct KioskRecord {
    pub id: String,
    pub makerspace_id: String,
    pub name: String,
    pub token_hash: String,
    /// Machines it may unlock; empty: all of its makerspace.
    pub equipment_ids: Vec<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// Any card (or none) ends a session at this kiosk; otherwise only the session's own
    /// card or an admin's.
    pub any_card_locks: bool,
}

#[derive(sqlx::FromRow)]
struct KioskRow {
    id: String,
    makerspace_id: String,
    name: String,
    token_hash: String,
    equipment_ids: String,
    created_by: String,
    created_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
    any_card_locks: bool,
}

impl TryFrom<KioskRow> for KioskRecord {
    type Error = StoreError;
    fn try_from(r: KioskRow) -> Result<Self, StoreError> {
        Ok(KioskRecord {
            equipment_ids: json_column("kiosks.equipment_ids", &r.equipment_ids)?,
            id: r.id,
            makerspace_id: r.makerspace_id,
            name: r.name,
            token_hash: r.token_hash,
            created_by: r.created_by,
            created_at: r.created_at,
            revoked_at: r.revoked_at,
            any_card_locks: r.any_card_locks,
        })
    }
}

const SELECT: &str = "SELECT id, makerspace_id, name, token_hash, equipment_ids, created_by, created_at, revoked_at,
     any_card_locks FROM kiosks";

/// One line of the floor's audit log.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct KioskAttempt {
    pub makerspace_id: String,
    pub kiosk_id: String,
    pub equipment_id: String,
    pub card_hint: Option<String>,
    pub member_id: Option<String>,
    pub user_id: Option<String>,
    /// `unlock` or `lock`.
    pub action: String,
    pub granted: bool,
    pub reason: String,
    pub session_id: Option<String>,
    pub at: DateTime<Utc>,
    /// The member whose card was presented, when the card is known. At an unlock it is the
    /// member above; at a lock it may be another (an admin, or anyone at an "any card locks"
    /// kiosk), while `member_id` / `user_id` stay the session's.
    pub presenter_member_id: Option<String>,
    pub presenter_user_id: Option<String>,
}

/// Inserts attempts into the floor's audit log, in one statement (stored in batches by the
/// state writer).
macro_rules! insert_attempts {
    ($executor:expr, $attempts:expr) => {{
        let attempts: &[KioskAttempt] = $attempts;
        sqlx::QueryBuilder::new(
            "INSERT INTO kiosk_attempts (makerspace_id, kiosk_id, equipment_id, card_hint, member_id, user_id, action,
             granted, reason, session_id, at, presenter_member_id, presenter_user_id) ",
        )
        .push_values(attempts, |mut row, a| {
            row.push_bind(&a.makerspace_id)
                .push_bind(&a.kiosk_id)
                .push_bind(&a.equipment_id)
                .push_bind(&a.card_hint)
                .push_bind(&a.member_id)
                .push_bind(&a.user_id)
                .push_bind(&a.action)
                .push_bind(a.granted)
                .push_bind(&a.reason)
                .push_bind(&a.session_id)
                .push_bind(a.at)
                .push_bind(&a.presenter_member_id)
                .push_bind(&a.presenter_user_id);
        })
        .build()
        .execute($executor)
        .await?;
    }};
}
pub(crate) use insert_attempts;

impl Store {
    pub async fn insert_kiosk(&self, k: &KioskRecord) -> Result<(), StoreError> {
        let equipment = to_json_text(&k.equipment_ids);
        with_writer!(self, pool => {
            sqlx::query(
                "INSERT INTO kiosks (id, makerspace_id, name, token_hash, equipment_ids, created_by, created_at, revoked_at,
                 any_card_locks) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(&k.id).bind(&k.makerspace_id).bind(&k.name).bind(&k.token_hash).bind(&equipment)
            .bind(&k.created_by).bind(k.created_at).bind(k.revoked_at).bind(k.any_card_locks)
            .execute(pool)
            .await
            .map_err(StoreError::from_write)?;
        });
        self.cache.clear();
        Ok(())
    }

    /// The kiosk holding this token, if it is not revoked (cached: every kiosk request asks).
    pub async fn kiosk_by_token_hash(&self, token_hash: &str) -> Result<Option<KioskRecord>, StoreError> {
        let key = token_hash.to_string();
        self.cache
            .get_or_load(&self.cache.kiosks, &key, async {
                let sql = format!("{SELECT} WHERE token_hash = $1 AND revoked_at IS NULL");
                let row: Option<KioskRow> = with_pool!(self, pool => {
                    sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(token_hash).fetch_optional(pool).await?
                });
                row.map(KioskRecord::try_from).transpose()
            })
            .await
    }

    pub async fn list_kiosks(&self, makerspace_id: &str) -> Result<Vec<KioskRecord>, StoreError> {
        let sql = format!("{SELECT} WHERE makerspace_id = $1 ORDER BY created_at, id");
        let rows: Vec<KioskRow> = with_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(makerspace_id).fetch_all(pool).await?
        });
        rows.into_iter().map(KioskRecord::try_from).collect()
    }

    /// Sets whether any card locks at a live kiosk; the kiosk as it is now, or `None` if
    /// there is no such live kiosk.
    pub async fn set_kiosk_any_card_locks(
        &self,
        makerspace_id: &str,
        id: &str,
        any_card_locks: bool,
    ) -> Result<Option<KioskRecord>, StoreError> {
        let affected = with_writer!(self, pool => {
            sqlx::query(
                "UPDATE kiosks SET any_card_locks = $3 WHERE makerspace_id = $1 AND id = $2 AND revoked_at IS NULL",
            )
            .bind(makerspace_id)
            .bind(id)
            .bind(any_card_locks)
            .execute(pool)
            .await?
            .rows_affected()
        });
        // The kiosk is cached by its token: the next request must see the new setting.
        self.cache.clear();
        if affected == 0 {
            return Ok(None);
        }
        let sql = format!("{SELECT} WHERE makerspace_id = $1 AND id = $2");
        let row: Option<KioskRow> = with_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(makerspace_id).bind(id).fetch_optional(pool).await?
        });
        row.map(KioskRecord::try_from).transpose()
    }

    /// Revokes a kiosk's token; false if there is no such live kiosk.
    pub async fn revoke_kiosk(&self, makerspace_id: &str, id: &str) -> Result<bool, StoreError> {
        let now = Utc::now();
        let affected = with_writer!(self, pool => {
            sqlx::query("UPDATE kiosks SET revoked_at = $3 WHERE makerspace_id = $1 AND id = $2 AND revoked_at IS NULL")
                .bind(makerspace_id)
                .bind(id)
                .bind(now)
                .execute(pool)
                .await?
                .rows_affected()
        });
        self.cache.clear();
        Ok(affected > 0)
    }

    /// The floor's audit log of a makerspace, newest first.
    pub async fn kiosk_attempts(&self, makerspace_id: &str, limit: i64) -> Result<Vec<KioskAttempt>, StoreError> {
        let rows = with_pool!(self, pool => {
            sqlx::query_as(
                "SELECT makerspace_id, kiosk_id, equipment_id, card_hint, member_id, user_id, action, granted, reason,
                 session_id, at, presenter_member_id, presenter_user_id FROM kiosk_attempts WHERE makerspace_id = $1 ORDER BY id DESC LIMIT $2",
            )
            .bind(makerspace_id)
            .bind(limit)
            .fetch_all(pool)
            .await?
        });
        Ok(rows)
    }

    /// Writes a tap a bridge decided offline to the floor's audit log, once per tap id
    /// (the bridge replays its queue after a reconnect: a tap may arrive twice). Answers
    /// whether it was new.
    pub async fn record_offline_tap(&self, attempt: &KioskAttempt, tap_id: &str) -> Result<bool, StoreError> {
        let a = attempt;
        let affected = with_writer!(self, pool => {
            sqlx::query(
                "INSERT INTO kiosk_attempts (makerspace_id, kiosk_id, equipment_id, card_hint, member_id, user_id, action,
                 granted, reason, session_id, at, presenter_member_id, presenter_user_id, offline_tap_id)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
                 ON CONFLICT (offline_tap_id) WHERE offline_tap_id IS NOT NULL DO NOTHING",
            )
            .bind(&a.makerspace_id).bind(&a.kiosk_id).bind(&a.equipment_id).bind(&a.card_hint).bind(&a.member_id)
            .bind(&a.user_id).bind(&a.action).bind(a.granted).bind(&a.reason).bind(&a.session_id).bind(a.at)
            .bind(&a.presenter_member_id).bind(&a.presenter_user_id).bind(tap_id)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(affected > 0)
    }
}
