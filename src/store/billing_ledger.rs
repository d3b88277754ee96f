//! Billing's ledger: charges (one per source), the credit wallet's append-only rows, and the
//! idempotency keys of money writes.
//!
//! Concurrency: every write that reads a member's balance or plan credits first locks that
//! member's row of `billing_member_locks` (FOR UPDATE on PostgreSQL; SQLite has one writer
//! connection, so its transactions already run one at a time), so two payments never both
//! see the same balance. A key is claimed first, in the write's transaction: a concurrent
//! retry waits on the key's row (PostgreSQL) and then answers the first request's result.

use chrono::{DateTime, Utc};
use sqlx::QueryBuilder;

use super::billing_sql::{balance_in, claim_key, insert_wallet_entry, lock_member, set_key_result};
use super::{with_pool, with_writer, Store, StoreError};

/// A stored charge. `detail` is JSON text (the figures and the rounding rule as data).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ChargeRecord {
    pub id: String,
    pub makerspace_id: String,
    pub member_id: String,
    pub source: String,
    pub kind: String,
    pub description: String,
    pub equipment_id: Option<String>,
    pub equipment_type: Option<String>,
    pub usage_at: DateTime<Utc>,
    pub included_minutes: i64,
    pub detail: String,
    pub rounding_rule: String,
    pub currency: String,
    pub net_minor: i64,
    pub tax_rate_id: Option<String>,
    pub tax_percent: Option<String>,
    pub tax_minor: i64,
    pub total_minor: i64,
    pub status: String,
    pub invoice_id: Option<String>,
    pub reason: Option<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    /// Filled by reads: the wallet row that paid it, if any.
    #[sqlx(default)]
    pub paid_by_wallet_entry: Option<i64>,
}

const CHARGE_COLUMNS: &str = "c.id, c.makerspace_id, c.member_id, c.source, c.kind, c.description, c.equipment_id, \
     c.equipment_type, c.usage_at, c.included_minutes, c.detail, c.rounding_rule, c.currency, c.net_minor, \
     c.tax_rate_id, c.tax_percent, c.tax_minor, c.total_minor, c.status, c.invoice_id, c.reason, c.created_by, \
     c.created_at, (SELECT w.id FROM billing_wallet_entries w WHERE w.charge_id = c.id AND w.kind = 'charge_payment') \
     AS paid_by_wallet_entry";

/// A row of a member's wallet.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct WalletEntry {
    pub id: i64,
    pub makerspace_id: String,
    pub member_id: String,
    pub kind: String,
    pub amount_minor: i64,
    pub currency: String,
    pub charge_id: Option<String>,
    pub reason: Option<String>,
    pub actor: String,
    pub idempotency_key: Option<String>,
    pub created_at: DateTime<Utc>,
}

const WALLET_COLUMNS: &str = "id, makerspace_id, member_id, kind, amount_minor, currency, charge_id, reason, actor, \
     idempotency_key, created_at";

/// A money write's idempotency key and the fingerprint of its request.
#[derive(Debug, Clone)]
pub struct IdemKey {
    pub key: String,
    pub request_hash: String,
}

/// What became of a keyed write.
#[derive(Debug, Clone, PartialEq)]
pub enum Keyed<T> {
    Done(T),
    /// The key was used before by the same request: its result.
    Replayed(T),
    /// The key was used before by another request.
    KeyReused,
    /// The wallet holds less than the write takes out.
    Insufficient {
        balance: i64,
    },
    /// The charge to pay is not open, or was paid already.
    NotPayable,
    /// No such charge in the space.
    NoCharge,
}

/// A new wallet row.
#[derive(Debug, Clone)]
pub struct NewWalletEntry {
    pub makerspace_id: String,
    pub member_id: String,
    pub kind: &'static str,
    pub amount_minor: i64,
    pub currency: String,
    pub charge_id: Option<String>,
    pub reason: Option<String>,
    pub actor: String,
    pub at: DateTime<Utc>,
}

/// The plan credits a usage charge may draw on: `included` minutes on `equipment_type`
/// per period `[from, to)`.
#[derive(Debug, Clone)]
pub struct CreditWindow {
    pub equipment_type: String,
    pub included: i64,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

/// Filters and page of a charge listing.
#[derive(Debug, Clone, Default)]
pub struct ChargeFilter {
    pub member_id: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub status: Option<String>,
    pub limit: i64,
    pub offset: i64,
}

macro_rules! insert_charge {
    ($tx:ident, $c:expr) => {{
        let c: &ChargeRecord = $c;
        sqlx::query(
            "INSERT INTO billing_charges (id, makerspace_id, member_id, source, kind, description, equipment_id,
             equipment_type, usage_at, included_minutes, detail, rounding_rule, currency, net_minor, tax_rate_id,
             tax_percent, tax_minor, total_minor, status, invoice_id, reason, created_by, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23)",
        )
        .bind(&c.id).bind(&c.makerspace_id).bind(&c.member_id).bind(&c.source).bind(&c.kind).bind(&c.description)
        .bind(&c.equipment_id).bind(&c.equipment_type).bind(c.usage_at).bind(c.included_minutes).bind(&c.detail)
        .bind(&c.rounding_rule).bind(&c.currency).bind(c.net_minor).bind(&c.tax_rate_id).bind(&c.tax_percent)
        .bind(c.tax_minor).bind(c.total_minor).bind(&c.status).bind(&c.invoice_id).bind(&c.reason)
        .bind(&c.created_by).bind(c.created_at)
        .execute(&mut *$tx)
        .await
        .map_err(StoreError::from_write)?;
    }};
}

/// The charge of a source, read in a transaction.
macro_rules! charge_by {
    ($tx:ident, $space:expr, $column:literal, $value:expr) => {{
        let sql =
            format!("SELECT {CHARGE_COLUMNS} FROM billing_charges c WHERE c.makerspace_id = $1 AND c.{} = $2", $column);
        let found: Option<ChargeRecord> =
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind($space).bind($value).fetch_optional(&mut *$tx).await?;
        found
    }};
}

macro_rules! wallet_entry_by_id {
    ($tx:ident, $id:expr) => {{
        let sql = format!("SELECT {WALLET_COLUMNS} FROM billing_wallet_entries WHERE id = $1");
        let found: WalletEntry = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind($id).fetch_one(&mut *$tx).await?;
        found
    }};
}

/// The id in a key's stored result (`wallet:17`, `charge:abc`).
fn result_id<'a>(result: &'a str, prefix: &str) -> Result<&'a str, StoreError> {
    result
        .strip_prefix(prefix)
        .ok_or_else(|| StoreError::Corrupt(format!("billing_idempotency_keys.result {result:?} is no {prefix}")))
}

fn wallet_id(result: &str) -> Result<i64, StoreError> {
    result_id(result, "wallet:")?.parse().map_err(|_| StoreError::Corrupt(format!("wallet result {result:?}")))
}

impl Store {
    /// Makes the charge of a usage source once: a source charged before answers its charge
    /// (`Replayed`). `make` gets the plan minutes still free in `credit`'s period (0 without a
    /// plan) and builds the charge; it runs with the member locked, so two charges of one
    /// member never both use the same free minutes. `session_id` is marked charged.
    pub async fn charge_usage_once<F>(
        &self,
        makerspace_id: &str,
        member_id: &str,
        source: &str,
        credit: Option<&CreditWindow>,
        session_id: Option<&str>,
        make: F,
    ) -> Result<Keyed<ChargeRecord>, StoreError>
    where
        F: FnOnce(i64) -> Result<ChargeRecord, StoreError>,
    {
        let postgres = self.kind() == "postgres";
        with_writer!(self, pool => {
            let mut tx = pool.begin().await?;
            lock_member!(tx, makerspace_id, member_id, postgres);
            let earlier = charge_by!(tx, makerspace_id, "source", source);
            let outcome = match earlier {
                Some(charge) => Keyed::Replayed(charge),
                None => {
                    let available = match credit {
                        None => 0,
                        Some(window) => {
                            let (used,): (i64,) = sqlx::query_as(
                                "SELECT CAST(COALESCE(SUM(included_minutes), 0) AS BIGINT) FROM billing_charges
                                 WHERE makerspace_id = $1 AND member_id = $2 AND equipment_type = $3
                                 AND usage_at >= $4 AND usage_at < $5 AND status <> 'void'",
                            )
                            .bind(makerspace_id)
                            .bind(member_id)
                            .bind(&window.equipment_type)
                            .bind(window.from)
                            .bind(window.to)
                            .fetch_one(&mut *tx)
                            .await?;
                            (window.included - used).max(0)
                        }
                    };
                    let charge = make(available)?;
                    insert_charge!(tx, &charge);
                    Keyed::Done(charge)
                }
            };
            if let Some(id) = session_id {
                sqlx::query("UPDATE usage_sessions SET charged = TRUE WHERE id = $1").bind(id).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(outcome)
        })
    }

    /// Marks a session charged without a charge (nobody to charge it to).
    pub async fn skip_session_charge(&self, session_id: &str) -> Result<(), StoreError> {
        with_writer!(self, pool => {
            sqlx::query("UPDATE usage_sessions SET charged = TRUE WHERE id = $1").bind(session_id).execute(pool).await?;
        });
        Ok(())
    }

    /// Ended sessions waiting for their charge, oldest first.
    pub async fn sessions_to_charge(&self, limit: i64) -> Result<Vec<UnchargedSession>, StoreError> {
        let rows = with_pool!(self, pool => {
            sqlx::query_as(
                "SELECT id, makerspace_id, equipment_id, user_id, member_id, started_at, ended_at, busy_minutes
                 FROM usage_sessions WHERE charged = FALSE ORDER BY ended_at LIMIT $1",
            )
            .bind(limit)
            .fetch_all(pool)
            .await?
        });
        Ok(rows)
    }

    /// An admin's manual charge or discount line, once per idempotency key.
    pub async fn insert_manual_charge(
        &self,
        charge: &ChargeRecord,
        key: &IdemKey,
    ) -> Result<Keyed<ChargeRecord>, StoreError> {
        with_writer!(self, pool => {
            let mut tx = pool.begin().await?;
            if let Some((hash, result)) = claim_key!(tx, &charge.makerspace_id, key, charge.created_at) {
                if hash != key.request_hash {
                    return Ok(Keyed::KeyReused);
                }
                let id = result_id(&result, "charge:")?;
                let first = charge_by!(tx, &charge.makerspace_id, "id", id)
                    .ok_or_else(|| StoreError::Corrupt(format!("idempotency result {result:?} is gone")))?;
                return Ok(Keyed::Replayed(first));
            }
            insert_charge!(tx, charge);
            set_key_result!(tx, &charge.makerspace_id, key, format!("charge:{}", charge.id));
            tx.commit().await?;
            Ok(Keyed::Done(charge.clone()))
        })
    }

    /// Appends a wallet row (a top-up, a refund, an adjustment), once per key. A row that
    /// takes money out may not leave the balance below zero.
    pub async fn append_wallet(&self, entry: &NewWalletEntry, key: &IdemKey) -> Result<Keyed<WalletEntry>, StoreError> {
        let postgres = self.kind() == "postgres";
        let space = entry.makerspace_id.as_str();
        with_writer!(self, pool => {
            let mut tx = pool.begin().await?;
            if let Some((hash, result)) = claim_key!(tx, space, key, entry.at) {
                if hash != key.request_hash {
                    return Ok(Keyed::KeyReused);
                }
                return Ok(Keyed::Replayed(wallet_entry_by_id!(tx, wallet_id(&result)?)));
            }
            lock_member!(tx, space, &entry.member_id, postgres);
            if entry.amount_minor < 0 {
                let balance = balance_in!(tx, space, &entry.member_id);
                if balance + entry.amount_minor < 0 {
                    return Ok(Keyed::Insufficient { balance });
                }
            }
            let row = insert_wallet_entry!(tx, entry, Some(key.key.as_str()));
            set_key_result!(tx, space, key, format!("wallet:{}", row.id));
            tx.commit().await?;
            Ok(Keyed::Done(row))
        })
    }

    /// Pays an open charge from its member's wallet, once per key and once per charge; never
    /// below a zero balance.
    pub async fn pay_from_wallet(
        &self,
        makerspace_id: &str,
        charge_id: &str,
        actor: &str,
        key: &IdemKey,
        at: DateTime<Utc>,
    ) -> Result<Keyed<WalletEntry>, StoreError> {
        let postgres = self.kind() == "postgres";
        with_writer!(self, pool => {
            let mut tx = pool.begin().await?;
            if let Some((hash, result)) = claim_key!(tx, makerspace_id, key, at) {
                if hash != key.request_hash {
                    return Ok(Keyed::KeyReused);
                }
                return Ok(Keyed::Replayed(wallet_entry_by_id!(tx, wallet_id(&result)?)));
            }
            let Some(charge) = charge_by!(tx, makerspace_id, "id", charge_id) else { return Ok(Keyed::NoCharge) };
            lock_member!(tx, makerspace_id, &charge.member_id, postgres);
            // Read again under the lock: a payment that committed meanwhile shows now.
            let paid: Option<(i64,)> = sqlx::query_as(
                "SELECT id FROM billing_wallet_entries WHERE charge_id = $1 AND kind = 'charge_payment'",
            )
            .bind(charge_id)
            .fetch_optional(&mut *tx)
            .await?;
            if paid.is_some() || charge.status == "void" || charge.total_minor <= 0 {
                return Ok(Keyed::NotPayable);
            }
            let balance = balance_in!(tx, makerspace_id, &charge.member_id);
            if balance < charge.total_minor {
                return Ok(Keyed::Insufficient { balance });
            }
            let entry = NewWalletEntry {
                makerspace_id: makerspace_id.to_string(),
                member_id: charge.member_id.clone(),
                kind: "charge_payment",
                amount_minor: -charge.total_minor,
                currency: charge.currency.clone(),
                charge_id: Some(charge.id.clone()),
                reason: None,
                actor: actor.to_string(),
                at,
            };
            let row = insert_wallet_entry!(tx, &entry, Some(key.key.as_str()));
            set_key_result!(tx, makerspace_id, key, format!("wallet:{}", row.id));
            tx.commit().await?;
            Ok(Keyed::Done(row))
        })
    }

    /// A member's balance: the sum of their wallet's rows.
    pub async fn wallet_balance(&self, makerspace_id: &str, member_id: &str) -> Result<i64, StoreError> {
        let (balance,): (i64,) = with_pool!(self, pool => {
            sqlx::query_as(
                "SELECT CAST(COALESCE(SUM(amount_minor), 0) AS BIGINT) FROM billing_wallet_entries
                 WHERE makerspace_id = $1 AND member_id = $2",
            )
            .bind(makerspace_id)
            .bind(member_id)
            .fetch_one(pool)
            .await?
        });
        Ok(balance)
    }

    /// A page of a member's wallet, newest first, and the number of rows in all.
    pub async fn wallet_entries(
        &self,
        makerspace_id: &str,
        member_id: &str,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<WalletEntry>, i64), StoreError> {
        let sql = format!(
            "SELECT {WALLET_COLUMNS} FROM billing_wallet_entries WHERE makerspace_id = $1 AND member_id = $2
             ORDER BY id DESC LIMIT $3 OFFSET $4"
        );
        with_pool!(self, pool => {
            let rows: Vec<WalletEntry> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(makerspace_id).bind(member_id).bind(limit).bind(offset).fetch_all(pool).await?;
            let (total,): (i64,) = sqlx::query_as(
                "SELECT COUNT(*) FROM billing_wallet_entries WHERE makerspace_id = $1 AND member_id = $2",
            )
            .bind(makerspace_id).bind(member_id).fetch_one(pool).await?;
            Ok((rows, total))
        })
    }

    /// A charge of a space.
    pub async fn get_charge(&self, makerspace_id: &str, id: &str) -> Result<Option<ChargeRecord>, StoreError> {
        let sql = format!("SELECT {CHARGE_COLUMNS} FROM billing_charges c WHERE c.makerspace_id = $1 AND c.id = $2");
        let row = with_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(makerspace_id).bind(id).fetch_optional(pool).await?
        });
        Ok(row)
    }

    /// A page of a space's charges, newest use first, and how many match in all.
    pub async fn list_charges(
        &self,
        makerspace_id: &str,
        filter: &ChargeFilter,
    ) -> Result<(Vec<ChargeRecord>, i64), StoreError> {
        fn filters<DB: sqlx::Database>(q: &mut QueryBuilder<DB>, space: &str, f: &ChargeFilter)
        where
            for<'t> String: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
            for<'t> DateTime<Utc>: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
        {
            q.push(" WHERE c.makerspace_id = ").push_bind(space.to_string());
            if let Some(member) = &f.member_id {
                q.push(" AND c.member_id = ").push_bind(member.clone());
            }
            if let Some(from) = f.from {
                q.push(" AND c.usage_at >= ").push_bind(from);
            }
            if let Some(to) = f.to {
                q.push(" AND c.usage_at < ").push_bind(to);
            }
            if let Some(status) = &f.status {
                q.push(" AND c.status = ").push_bind(status.clone());
            }
        }
        with_pool!(self, pool => {
            let mut q = QueryBuilder::new(format!("SELECT {CHARGE_COLUMNS} FROM billing_charges c"));
            filters(&mut q, makerspace_id, filter);
            q.push(" ORDER BY c.usage_at DESC, c.id DESC LIMIT ").push_bind(filter.limit);
            q.push(" OFFSET ").push_bind(filter.offset);
            let rows: Vec<ChargeRecord> = q.build_query_as().fetch_all(pool).await?;
            let mut count = QueryBuilder::new("SELECT COUNT(*) FROM billing_charges c");
            filters(&mut count, makerspace_id, filter);
            let (total,): (i64,) = count.build_query_as().fetch_one(pool).await?;
            Ok((rows, total))
        })
    }
}

/// An ended session not charged yet.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct UnchargedSession {
    pub id: String,
    pub makerspace_id: String,
    pub equipment_id: String,
    pub user_id: String,
    pub member_id: Option<String>,
    pub started_at: DateTime<Utc>,
    pub ended_at: DateTime<Utc>,
    pub busy_minutes: Option<f64>,
}
