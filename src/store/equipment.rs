//! Equipment records (what a machine is; its live state lives in `machine_states`).

use chrono::{DateTime, Utc};
use sqlx::QueryBuilder;

use super::{json_column, to_json_text, with_pool, with_writer, Store, StoreError};
use crate::domain::equipment::{AdminStatus, Connection, EquipmentType};

#[derive(Debug, Clone, PartialEq)]
pub struct EquipmentRecord {
    pub id: String,
    pub makerspace_id: String,
    pub name: String,
    pub kind: EquipmentType,
    pub admin_status: AdminStatus,
    pub location: Option<String>,
    pub specifications: serde_json::Value,
    pub skill_requirements: Vec<String>,
    pub hourly_rate: Option<f64>,
    pub maintenance_schedule: Option<String>,
    pub connection: Connection,
    pub heartbeat_timeout_s: i64,
    /// Bookings stay pending until a makerspace_admin approves them.
    pub requires_approval: bool,
    /// The machine clears its own bed (a belt printer, a plate changer): a finished job does
    /// not wait for a person's confirmation.
    pub auto_clear: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct EquipmentRow {
    id: String,
    makerspace_id: String,
    name: String,
    r#type: String,
    admin_status: String,
    location: Option<String>,
    specifications: String,
    skill_requirements: String,
    hourly_rate: Option<f64>,
    maintenance_schedule: Option<String>,
    connection: String,
    heartbeat_timeout_s: i64,
    requires_approval: bool,
    auto_clear: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<EquipmentRow> for EquipmentRecord {
    type Error = StoreError;
    fn try_from(r: EquipmentRow) -> Result<Self, StoreError> {
        Ok(EquipmentRecord {
            kind: EquipmentType::parse(&r.r#type)
                .ok_or_else(|| StoreError::Corrupt(format!("equipment.type {:?}", r.r#type)))?,
            admin_status: AdminStatus::parse(&r.admin_status)
                .ok_or_else(|| StoreError::Corrupt(format!("equipment.admin_status {:?}", r.admin_status)))?,
            specifications: json_column("equipment.specifications", &r.specifications)?,
            skill_requirements: json_column("equipment.skill_requirements", &r.skill_requirements)?,
            connection: json_column("equipment.connection", &r.connection)?,
            id: r.id,
            makerspace_id: r.makerspace_id,
            name: r.name,
            location: r.location,
            hourly_rate: r.hourly_rate,
            maintenance_schedule: r.maintenance_schedule,
            heartbeat_timeout_s: r.heartbeat_timeout_s,
            requires_approval: r.requires_approval,
            auto_clear: r.auto_clear,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

const SELECT: &str = "SELECT id, makerspace_id, name, type, admin_status, location, specifications, \
     skill_requirements, hourly_rate, maintenance_schedule, connection, heartbeat_timeout_s, \
     requires_approval, auto_clear, created_at, updated_at FROM equipment";

/// Filters of an equipment listing.
#[derive(Debug, Default, Clone)]
pub struct EquipmentFilter {
    pub makerspace_id: Option<String>,
    pub kind: Option<EquipmentType>,
}

impl Store {
    pub async fn insert_equipment(&self, e: &EquipmentRecord) -> Result<(), StoreError> {
        let (specs, skills, conn) =
            (to_json_text(&e.specifications), to_json_text(&e.skill_requirements), to_json_text(&e.connection));
        with_writer!(self, pool => {
            sqlx::query(
                "INSERT INTO equipment (id, makerspace_id, name, type, admin_status, location, specifications,
                 skill_requirements, hourly_rate, maintenance_schedule, connection, heartbeat_timeout_s,
                 created_at, updated_at, requires_approval, auto_clear)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
            )
            .bind(&e.id)
            .bind(&e.makerspace_id)
            .bind(&e.name)
            .bind(e.kind.as_str())
            .bind(e.admin_status.as_str())
            .bind(&e.location)
            .bind(&specs)
            .bind(&skills)
            .bind(e.hourly_rate)
            .bind(&e.maintenance_schedule)
            .bind(&conn)
            .bind(e.heartbeat_timeout_s)
            .bind(e.created_at)
            .bind(e.updated_at)
            .bind(e.requires_approval)
            .bind(e.auto_clear)
            .execute(pool)
            .await
            .map_err(StoreError::from_write)?;
        });
        self.cache.clear();
        Ok(())
    }

    /// A machine's record (cached: every booking and kiosk decision reads it).
    pub async fn get_equipment(&self, id: &str) -> Result<Option<EquipmentRecord>, StoreError> {
        let key = id.to_string();
        self.cache
            .get_or_load(&self.cache.equipment, &key, async {
                let sql = format!("{SELECT} WHERE id = $1");
                let row: Option<EquipmentRow> = with_pool!(self, pool => {
                    sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await?
                });
                row.map(EquipmentRecord::try_from).transpose()
            })
            .await
    }

    pub async fn list_equipment(&self, filter: &EquipmentFilter) -> Result<Vec<EquipmentRecord>, StoreError> {
        let rows: Vec<EquipmentRow> = with_pool!(self, pool => {
            let mut q = QueryBuilder::new(SELECT);
            q.push(" WHERE 1 = 1");
            if let Some(space) = &filter.makerspace_id {
                q.push(" AND makerspace_id = ").push_bind(space.clone());
            }
            if let Some(kind) = filter.kind {
                q.push(" AND type = ").push_bind(kind.as_str());
            }
            q.push(" ORDER BY name, id");
            q.build_query_as().fetch_all(pool).await?
        });
        rows.into_iter().map(EquipmentRecord::try_from).collect()
    }

    /// Replaces the mutable fields; returns false when the equipment does not exist.
    pub async fn update_equipment(&self, e: &EquipmentRecord) -> Result<bool, StoreError> {
        let (specs, skills, conn) =
            (to_json_text(&e.specifications), to_json_text(&e.skill_requirements), to_json_text(&e.connection));
        let affected = with_writer!(self, pool => {
            sqlx::query(
                "UPDATE equipment SET name = $2, type = $3, admin_status = $4, location = $5,
                 specifications = $6, skill_requirements = $7, hourly_rate = $8,
                 maintenance_schedule = $9, connection = $10, heartbeat_timeout_s = $11, updated_at = $12,
                 requires_approval = $13, auto_clear = $14 WHERE id = $1",
            )
            .bind(&e.id)
            .bind(&e.name)
            .bind(e.kind.as_str())
            .bind(e.admin_status.as_str())
            .bind(&e.location)
            .bind(&specs)
            .bind(&skills)
            .bind(e.hourly_rate)
            .bind(&e.maintenance_schedule)
            .bind(&conn)
            .bind(e.heartbeat_timeout_s)
            .bind(e.updated_at)
            .bind(e.requires_approval)
            .bind(e.auto_clear)
            .execute(pool)
            .await?
            .rows_affected()
        });
        self.cache.clear();
        Ok(affected > 0)
    }

    pub async fn delete_equipment(&self, id: &str) -> Result<bool, StoreError> {
        let affected = with_writer!(self, pool => {
            sqlx::query("DELETE FROM equipment WHERE id = $1").bind(id).execute(pool).await?.rows_affected()
        });
        self.cache.clear();
        Ok(affected > 0)
    }
}
