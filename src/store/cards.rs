//! RFID/NFC cards of members. UIDs are stored as keyed hashes only.

use chrono::{DateTime, Utc};

use super::members::{insert_activity, Activity};
use super::{with_pool, with_writer, Store, StoreError};

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct CardRecord {
    pub id: String,
    pub makerspace_id: String,
    pub member_id: String,
    pub uid_hash: String,
    pub uid_hint: String,
    pub label: Option<String>,
    pub created_at: DateTime<Utc>,
    /// The card's name in bridges' offline allowlists (`domain::allowlist`), known once the
    /// server has seen the UID since bridges came.
    pub offline_hash: Option<String>,
}

impl Store {
    /// Enrols a card; the same card twice in a makerspace is a `Conflict`.
    pub async fn insert_card(&self, card: &CardRecord, activity: &Activity) -> Result<(), StoreError> {
        with_writer!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO member_cards (id, makerspace_id, member_id, uid_hash, uid_hint, label, created_at, offline_hash)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&card.id).bind(&card.makerspace_id).bind(&card.member_id).bind(&card.uid_hash)
            .bind(&card.uid_hint).bind(&card.label).bind(card.created_at).bind(&card.offline_hash)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from_write)?;
            insert_activity!(&mut *tx, activity);
            tx.commit().await?;
        });
        Ok(())
    }

    pub async fn list_cards(&self, member_id: &str) -> Result<Vec<CardRecord>, StoreError> {
        let rows = with_pool!(self, pool => {
            sqlx::query_as(
                "SELECT id, makerspace_id, member_id, uid_hash, uid_hint, label, created_at, offline_hash FROM member_cards
                 WHERE member_id = $1 ORDER BY created_at, id",
            )
            .bind(member_id)
            .fetch_all(pool)
            .await?
        });
        Ok(rows)
    }

    pub async fn delete_card(&self, member_id: &str, card_id: &str, activity: &Activity) -> Result<bool, StoreError> {
        let affected = with_writer!(self, pool => {
            let mut tx = pool.begin().await?;
            let affected = sqlx::query("DELETE FROM member_cards WHERE member_id = $1 AND id = $2")
                .bind(member_id)
                .bind(card_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if affected > 0 {
                insert_activity!(&mut *tx, activity);
            }
            tx.commit().await?;
            affected
        });
        Ok(affected > 0)
    }

    /// The card with this UID hash in a makerspace (the kiosk's lookup).
    pub async fn find_card(&self, makerspace_id: &str, uid_hash: &str) -> Result<Option<CardRecord>, StoreError> {
        let row = with_pool!(self, pool => {
            sqlx::query_as(
                "SELECT id, makerspace_id, member_id, uid_hash, uid_hint, label, created_at, offline_hash FROM member_cards
                 WHERE makerspace_id = $1 AND uid_hash = $2",
            )
            .bind(makerspace_id)
            .bind(uid_hash)
            .fetch_optional(pool)
            .await?
        });
        Ok(row)
    }

    /// Remembers a card's offline allowlist name the first time the server sees its UID
    /// (a tap); later taps write nothing.
    pub async fn learn_offline_hash(
        &self,
        makerspace_id: &str,
        uid_hash: &str,
        offline_hash: &str,
    ) -> Result<(), StoreError> {
        with_writer!(self, pool => {
            sqlx::query(
                "UPDATE member_cards SET offline_hash = $3
                 WHERE makerspace_id = $1 AND uid_hash = $2 AND offline_hash IS NULL",
            )
            .bind(makerspace_id)
            .bind(uid_hash)
            .bind(offline_hash)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// The cards of a makerspace that bridges can recognise offline: (member id, offline hash).
    pub async fn offline_cards(&self, makerspace_id: &str) -> Result<Vec<(String, String)>, StoreError> {
        let rows = with_pool!(self, pool => {
            sqlx::query_as(
                "SELECT member_id, offline_hash FROM member_cards
                 WHERE makerspace_id = $1 AND offline_hash IS NOT NULL ORDER BY member_id, id",
            )
            .bind(makerspace_id)
            .fetch_all(pool)
            .await?
        });
        Ok(rows)
    }
}
