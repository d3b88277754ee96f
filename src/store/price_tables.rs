//! Makerspaces' price tables: one row per space, the checked table as JSON, replaced whole.

use chrono::{DateTime, Utc};

use super::{json_column, to_json_text, with_pool, with_writer, Store, StoreError};
use crate::domain::pricing::PriceTable;

#[derive(Debug, Clone, PartialEq)]
pub struct PriceTableRecord {
    pub makerspace_id: String,
    pub table: PriceTable,
    pub updated_at: DateTime<Utc>,
    /// The admin who wrote it.
    pub updated_by: String,
}

#[derive(sqlx::FromRow)]
struct PriceTableRow {
    makerspace_id: String,
    price_table: String,
    updated_at: DateTime<Utc>,
    updated_by: String,
}

impl TryFrom<PriceTableRow> for PriceTableRecord {
    type Error = StoreError;
    fn try_from(row: PriceTableRow) -> Result<Self, StoreError> {
        Ok(PriceTableRecord {
            // Reading the table checks it again (`PriceTable` is only made by its checks).
            table: json_column("price_tables.price_table", &row.price_table)?,
            makerspace_id: row.makerspace_id,
            updated_at: row.updated_at,
            updated_by: row.updated_by,
        })
    }
}

impl Store {
    /// The space's own table, if its admins wrote one.
    pub async fn get_price_table(&self, makerspace_id: &str) -> Result<Option<PriceTableRecord>, StoreError> {
        let row: Option<PriceTableRow> = with_pool!(self, pool => {
            sqlx::query_as(
                "SELECT makerspace_id, price_table, updated_at, updated_by FROM price_tables WHERE makerspace_id = $1",
            )
            .bind(makerspace_id)
            .fetch_optional(pool)
            .await?
        });
        row.map(PriceTableRecord::try_from).transpose()
    }

    /// Writes the space's table, replacing the one before (the space must exist).
    pub async fn put_price_table(&self, record: &PriceTableRecord) -> Result<(), StoreError> {
        let table = to_json_text(&record.table);
        with_writer!(self, pool => {
            sqlx::query(
                "INSERT INTO price_tables (makerspace_id, price_table, updated_at, updated_by) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (makerspace_id) DO UPDATE SET price_table = excluded.price_table,
                 updated_at = excluded.updated_at, updated_by = excluded.updated_by",
            )
            .bind(&record.makerspace_id)
            .bind(&table)
            .bind(record.updated_at)
            .bind(&record.updated_by)
            .execute(pool)
            .await?;
        });
        Ok(())
    }
}
