//! Persistence. One code path for SQLite (the zero-configuration default) and PostgreSQL
//! (production): a small enum over the two pools, and a macro that expands the same query
//! text for each. sqlx's `Any` driver cannot bind chrono types, hence the enum.

pub mod bed_clears;
pub mod billing;
pub mod billing_exports;
pub mod billing_gateways;
pub mod billing_invoices;
pub mod billing_ledger;
pub mod billing_runs;
pub mod billing_settlement;
mod billing_sql;
mod booking_writer;
pub mod cache;
pub mod cards;
pub mod equipment;
pub mod files;
pub mod inventory;
pub mod invites;
pub mod job_priority;
pub mod jobs;
pub mod kiosks;
pub mod machine_states;
pub mod makerspaces;
pub mod members;
pub mod mqtt_credentials;
pub mod plans;
pub mod price_tables;
pub mod purchase_orders;
pub mod reservations;
pub mod service_orders;
pub mod skills;
pub mod spools;
pub mod stock_alerts;

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

/// Read connections to a SQLite file (the write connection is extra).
const SQLITE_READERS: u32 = 8;

/// Errors of the storage layer. The web layer maps them to status codes; the cause chain
/// goes to the log only.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("a record with this id already exists")]
    Conflict,
    #[error("the record is still in use")]
    InUse,
    #[error("unsupported database url {0:?}: use sqlite://... or postgres://...")]
    UnsupportedUrl(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("database error")]
    Database(#[from] sqlx::Error),
    #[error("migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl StoreError {
    /// Maps a unique-key violation (and PostgreSQL's exclusion violation, SQLSTATE 23P01: an
    /// overlapping booking) to `Conflict`, everything else stays a database error.
    fn from_write(err: sqlx::Error) -> StoreError {
        match &err {
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict,
            sqlx::Error::Database(db) if db.code().as_deref() == Some("23P01") => StoreError::Conflict,
            _ => StoreError::Database(err),
        }
    }
}

/// The database in use, with the read-through caches its own writes keep coherent.
#[derive(Clone)]
pub struct Store {
    db: Db,
    cache: std::sync::Arc<cache::Catalog>,
    /// New bookings, written in batches (see `booking_writer`).
    bookings: booking_writer::BookingQueue,
}

#[derive(Clone)]
enum Db {
    Sqlite(SqliteDb),
    Postgres(PgPool),
}

/// SQLite allows one writer at a time. Every write goes through a single connection, so
/// writers queue fairly in tokio instead of polling SQLite's busy handler (which sleeps
/// 1, 2, 5, 10... ms between tries and made the tail latency); reads use a pool of their
/// own and never wait for the writer (WAL).
#[derive(Clone)]
struct SqliteDb {
    reads: SqlitePool,
    writes: SqlitePool,
}

/// Runs the same read query code against whichever pool is in use. The body is compiled once
/// per database, so placeholders must be `$1, $2, ...` (both drivers accept them) and types
/// must be ones both drivers encode.
macro_rules! with_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.db {
            $crate::store::Db::Sqlite(db) => {
                let $pool = &db.reads;
                $body
            }
            $crate::store::Db::Postgres($pool) => $body,
        }
    };
}
pub(crate) use with_pool;

/// As [`with_pool`], for code that writes: on SQLite it runs on the one write connection.
macro_rules! with_writer {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.db {
            $crate::store::Db::Sqlite(db) => {
                let $pool = &db.writes;
                $body
            }
            $crate::store::Db::Postgres($pool) => $body,
        }
    };
}
pub(crate) use with_writer;

impl Store {
    /// Connects and applies migrations. A SQLite file (and its folder) is created if missing
    /// and opened in WAL mode so that readers never wait for the writer.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        let db = if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(5));
            if let Some(dir) = std::path::Path::new(options.get_filename()).parent() {
                if !dir.as_os_str().is_empty() {
                    std::fs::create_dir_all(dir).map_err(|e| StoreError::Database(sqlx::Error::Io(e)))?;
                }
            }
            let writes = SqlitePoolOptions::new()
                .max_connections(1)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options.clone())
                .await?;
            sqlx::migrate!("migrations/sqlite").run(&writes).await?;
            let reads = SqlitePoolOptions::new()
                .max_connections(SQLITE_READERS)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options)
                .await?;
            Db::Sqlite(SqliteDb { reads, writes })
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let options = PgConnectOptions::from_str(url)?;
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options)
                .await?;
            sqlx::migrate!("migrations/postgres").run(&pool).await?;
            Db::Postgres(pool)
        } else {
            return Err(StoreError::UnsupportedUrl(url.to_string()));
        };
        let bookings = booking_writer::spawn(db.clone());
        Ok(Store { db, cache: Default::default(), bookings })
    }

    /// Which database this is, for logs and health output.
    pub fn kind(&self) -> &'static str {
        match self.db {
            Db::Sqlite(_) => "sqlite",
            Db::Postgres(_) => "postgres",
        }
    }

    /// A round trip to the database, for health checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        with_pool!(self, pool => {
            sqlx::query("SELECT 1").execute(pool).await?;
        });
        Ok(())
    }

    pub async fn close(&self) {
        match &self.db {
            Db::Sqlite(db) => {
                db.reads.close().await;
                db.writes.close().await;
            }
            Db::Postgres(pool) => pool.close().await,
        }
    }
}

/// Decodes a JSON text column, naming the column when the data is bad.
fn json_column<T: serde::de::DeserializeOwned>(column: &str, text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
}

/// Encodes a value for a JSON text column.
pub(crate) fn to_json_text<T: serde::Serialize>(value: &T) -> String {
    // Serializing our own plain data types to a String cannot fail (no maps with non-string
    // keys, no I/O), so an empty object is only a theoretical fallback.
    serde_json::to_string(value).unwrap_or_else(|_| "{}".to_string())
}
