//! Makerspaces.

use chrono::{DateTime, Utc};

use super::{json_column, to_json_text, with_pool, with_writer, Store, StoreError};

#[derive(Debug, Clone, PartialEq)]
pub struct MakerspaceRecord {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub location: Option<String>,
    pub timezone: String,
    pub currency: String,
    pub settings: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct MakerspaceRow {
    id: String,
    name: String,
    description: Option<String>,
    location: Option<String>,
    timezone: String,
    currency: String,
    settings: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<MakerspaceRow> for MakerspaceRecord {
    type Error = StoreError;
    fn try_from(r: MakerspaceRow) -> Result<Self, StoreError> {
        Ok(MakerspaceRecord {
            settings: json_column("makerspaces.settings", &r.settings)?,
            id: r.id,
            name: r.name,
            description: r.description,
            location: r.location,
            timezone: r.timezone,
            currency: r.currency,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

const COLUMNS: &str = "id, name, description, location, timezone, currency, settings, created_at, updated_at";

impl Store {
    /// Stores a new makerspace together with the default membership plans, atomically.
    pub async fn insert_makerspace(&self, m: &MakerspaceRecord) -> Result<(), StoreError> {
        let settings = to_json_text(&m.settings);
        let plans = crate::store::plans::PlanRecord::defaults(&m.id, &m.currency, m.created_at);
        with_writer!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO makerspaces (id, name, description, location, timezone, currency, settings, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(&m.id)
            .bind(&m.name)
            .bind(&m.description)
            .bind(&m.location)
            .bind(&m.timezone)
            .bind(&m.currency)
            .bind(&settings)
            .bind(m.created_at)
            .bind(m.updated_at)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from_write)?;
            for plan in &plans {
                crate::store::plans::insert_plan!(&mut *tx, plan);
            }
            tx.commit().await?;
        });
        self.cache.clear();
        Ok(())
    }

    /// A makerspace with its rules (cached: every booking and kiosk decision reads them).
    pub async fn get_makerspace(&self, id: &str) -> Result<Option<MakerspaceRecord>, StoreError> {
        let key = id.to_string();
        self.cache
            .get_or_load(&self.cache.makerspaces, &key, async {
                let sql = format!("SELECT {COLUMNS} FROM makerspaces WHERE id = $1");
                let row: Option<MakerspaceRow> = with_pool!(self, pool => {
                    sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await?
                });
                row.map(MakerspaceRecord::try_from).transpose()
            })
            .await
    }

    pub async fn list_makerspaces(&self) -> Result<Vec<MakerspaceRecord>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM makerspaces ORDER BY name, id");
        let rows: Vec<MakerspaceRow> = with_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_all(pool).await?
        });
        rows.into_iter().map(MakerspaceRecord::try_from).collect()
    }

    /// Replaces the mutable fields; returns false when the makerspace does not exist.
    pub async fn update_makerspace(&self, m: &MakerspaceRecord) -> Result<bool, StoreError> {
        let settings = to_json_text(&m.settings);
        let affected = with_writer!(self, pool => {
            sqlx::query(
                "UPDATE makerspaces SET name = $2, description = $3, location = $4, timezone = $5,
                 currency = $6, settings = $7, updated_at = $8 WHERE id = $1",
            )
            .bind(&m.id)
            .bind(&m.name)
            .bind(&m.description)
            .bind(&m.location)
            .bind(&m.timezone)
            .bind(&m.currency)
            .bind(&settings)
            .bind(m.updated_at)
            .execute(pool)
            .await?
            .rows_affected()
        });
        self.cache.clear();
        Ok(affected > 0)
    }

    /// Deletes a makerspace and (by cascade) its equipment and their states.
    pub async fn delete_makerspace(&self, id: &str) -> Result<bool, StoreError> {
        let affected = with_writer!(self, pool => {
            sqlx::query("DELETE FROM makerspaces WHERE id = $1").bind(id).execute(pool).await?.rows_affected()
        });
        self.cache.clear();
        Ok(affected > 0)
    }
}
