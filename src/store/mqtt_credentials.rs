//! Machines' MQTT credentials: one live credential per machine, revoked rows kept.

use chrono::{DateTime, Utc};

use super::{with_pool, with_writer, Store, StoreError};

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct MqttCredentialRecord {
    pub id: String,
    pub makerspace_id: String,
    pub equipment_id: String,
    pub username: String,
    /// Mosquitto's `$7$` format.
    pub password_hash: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

const SELECT: &str = "SELECT id, makerspace_id, equipment_id, username, password_hash, created_by, created_at, \
                      revoked_at FROM mqtt_credentials";

impl Store {
    /// Stores a machine's new credential and revokes the one it had, in one transaction.
    pub async fn replace_mqtt_credential(&self, c: &MqttCredentialRecord) -> Result<(), StoreError> {
        with_writer!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query("UPDATE mqtt_credentials SET revoked_at = $2 WHERE equipment_id = $1 AND revoked_at IS NULL")
                .bind(&c.equipment_id)
                .bind(c.created_at)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO mqtt_credentials (id, makerspace_id, equipment_id, username, password_hash, created_by,
                 created_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&c.id).bind(&c.makerspace_id).bind(&c.equipment_id).bind(&c.username).bind(&c.password_hash)
            .bind(&c.created_by).bind(c.created_at).bind(c.revoked_at)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from_write)?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Revokes a machine's live credential; false if it had none.
    pub async fn revoke_mqtt_credential(&self, makerspace_id: &str, equipment_id: &str) -> Result<bool, StoreError> {
        let now = Utc::now();
        let affected = with_writer!(self, pool => {
            sqlx::query(
                "UPDATE mqtt_credentials SET revoked_at = $3
                 WHERE makerspace_id = $1 AND equipment_id = $2 AND revoked_at IS NULL",
            )
            .bind(makerspace_id)
            .bind(equipment_id)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(affected > 0)
    }

    /// The live credential of a username (every device connect asks).
    pub async fn live_mqtt_credential(&self, username: &str) -> Result<Option<MqttCredentialRecord>, StoreError> {
        let sql = format!("{SELECT} WHERE username = $1 AND revoked_at IS NULL");
        Ok(with_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(username).fetch_optional(pool).await?
        }))
    }

    /// Every live credential (to write an external Mosquitto's password and ACL files).
    pub async fn live_mqtt_credentials(&self) -> Result<Vec<MqttCredentialRecord>, StoreError> {
        let sql = format!("{SELECT} WHERE revoked_at IS NULL ORDER BY username");
        Ok(with_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_all(pool).await?
        }))
    }
}
