//! SQL shared by billing's ledger and its documents (invoices, payments, credit notes):
//! the member lock, idempotency keys, the wallet's balance and rows. Macros, because the same
//! text runs in a SQLite or a PostgreSQL transaction (see [`super::with_writer`]).

/// Locks a member's billing row for the rest of the transaction.
macro_rules! lock_member {
    ($tx:ident, $space:expr, $member:expr, $postgres:expr) => {{
        sqlx::query(
            "INSERT INTO billing_member_locks (makerspace_id, member_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind($space)
        .bind($member)
        .execute(&mut *$tx)
        .await?;
        if $postgres {
            sqlx::query("SELECT 1 FROM billing_member_locks WHERE makerspace_id = $1 AND member_id = $2 FOR UPDATE")
                .bind($space)
                .bind($member)
                .execute(&mut *$tx)
                .await?;
        }
    }};
}
pub(crate) use lock_member;

/// Claims an idempotency key in the transaction: evaluates to `None` when it is ours now,
/// or to the first request's `(request_hash, result)`.
macro_rules! claim_key {
    ($tx:ident, $space:expr, $key:expr, $at:expr) => {{
        let key: &$crate::store::billing_ledger::IdemKey = $key;
        let claimed = sqlx::query(
            "INSERT INTO billing_idempotency_keys (makerspace_id, key, request_hash, result, created_at)
             VALUES ($1, $2, $3, '', $4) ON CONFLICT DO NOTHING",
        )
        .bind($space)
        .bind(&key.key)
        .bind(&key.request_hash)
        .bind($at)
        .execute(&mut *$tx)
        .await?
        .rows_affected();
        if claimed == 1 {
            None
        } else {
            let first: (String, String) = sqlx::query_as(
                "SELECT request_hash, result FROM billing_idempotency_keys WHERE makerspace_id = $1 AND key = $2",
            )
            .bind($space)
            .bind(&key.key)
            .fetch_one(&mut *$tx)
            .await?;
            Some(first)
        }
    }};
}
pub(crate) use claim_key;

macro_rules! set_key_result {
    ($tx:ident, $space:expr, $key:expr, $result:expr) => {{
        sqlx::query("UPDATE billing_idempotency_keys SET result = $3 WHERE makerspace_id = $1 AND key = $2")
            .bind($space)
            .bind(&$key.key)
            .bind($result)
            .execute(&mut *$tx)
            .await?;
    }};
}
pub(crate) use set_key_result;

macro_rules! balance_in {
    ($tx:ident, $space:expr, $member:expr) => {{
        let (balance,): (i64,) = sqlx::query_as(
            "SELECT CAST(COALESCE(SUM(amount_minor), 0) AS BIGINT) FROM billing_wallet_entries
             WHERE makerspace_id = $1 AND member_id = $2",
        )
        .bind($space)
        .bind($member)
        .fetch_one(&mut *$tx)
        .await?;
        balance
    }};
}
pub(crate) use balance_in;

macro_rules! insert_wallet_entry {
    ($tx:ident, $entry:expr, $key:expr) => {{
        let e: &$crate::store::billing_ledger::NewWalletEntry = $entry;
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO billing_wallet_entries (makerspace_id, member_id, kind, amount_minor, currency, charge_id,
             reason, actor, idempotency_key, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
        )
        .bind(&e.makerspace_id)
        .bind(&e.member_id)
        .bind(e.kind)
        .bind(e.amount_minor)
        .bind(&e.currency)
        .bind(&e.charge_id)
        .bind(&e.reason)
        .bind(&e.actor)
        .bind($key)
        .bind(e.at)
        .fetch_one(&mut *$tx)
        .await
        .map_err($crate::store::StoreError::from_write)?;
        $crate::store::billing_ledger::WalletEntry {
            id,
            makerspace_id: e.makerspace_id.clone(),
            member_id: e.member_id.clone(),
            kind: e.kind.to_string(),
            amount_minor: e.amount_minor,
            currency: e.currency.clone(),
            charge_id: e.charge_id.clone(),
            reason: e.reason.clone(),
            actor: e.actor.clone(),
            idempotency_key: $key.map(str::to_string),
            created_at: e.at,
        }
    }};
}
pub(crate) use insert_wallet_entry;

/// Locks a space's chain head for the rest of the transaction (creating it for the space's
/// first document) and evaluates to its `(last_seq, last_sha256)`. Every finalization and
/// credit note takes it first, so numbers and links are given one document at a time.
macro_rules! lock_chain {
    ($tx:ident, $space:expr, $postgres:expr) => {{
        sqlx::query("INSERT INTO billing_chain_heads (makerspace_id) VALUES ($1) ON CONFLICT DO NOTHING")
            .bind($space)
            .execute(&mut *$tx)
            .await?;
        let sql = if $postgres {
            "SELECT last_seq, last_sha256 FROM billing_chain_heads WHERE makerspace_id = $1 FOR UPDATE"
        } else {
            "SELECT last_seq, last_sha256 FROM billing_chain_heads WHERE makerspace_id = $1"
        };
        let head: (i64, String) = sqlx::query_as(sql).bind($space).fetch_one(&mut *$tx).await?;
        head
    }};
}
pub(crate) use lock_chain;

/// Moves a space's chain head to its newest document.
macro_rules! advance_chain {
    ($tx:ident, $space:expr, $seq:expr, $sha:expr) => {{
        sqlx::query("UPDATE billing_chain_heads SET last_seq = $2, last_sha256 = $3 WHERE makerspace_id = $1")
            .bind($space)
            .bind($seq)
            .bind($sha)
            .execute(&mut *$tx)
            .await?;
    }};
}
pub(crate) use advance_chain;

/// The next number of a series in a year, taken in the transaction (the row stays locked to
/// its commit, so a concurrent finalization waits and then takes the number after).
macro_rules! next_number {
    ($tx:ident, $space:expr, $series:expr, $year:expr) => {{
        let (n,): (i64,) = sqlx::query_as(
            "INSERT INTO billing_number_counters (makerspace_id, series, year, last_number) VALUES ($1, $2, $3, 1)
             ON CONFLICT (makerspace_id, series, year)
             DO UPDATE SET last_number = billing_number_counters.last_number + 1 RETURNING last_number",
        )
        .bind($space)
        .bind($series)
        .bind(i64::from($year))
        .fetch_one(&mut *$tx)
        .await?;
        n
    }};
}
pub(crate) use next_number;

/// An invoice of the space read in the transaction, locked (FOR UPDATE) on PostgreSQL so
/// that a finalization, a line's removal, a payment or a credit note of it run one at a time.
macro_rules! invoice_for_update {
    ($tx:ident, $space:expr, $id:expr, $postgres:expr) => {{
        let base = format!(
            "SELECT {} FROM billing_invoices i WHERE i.makerspace_id = $1 AND i.id = $2",
            $crate::store::billing_invoices::INVOICE_COLUMNS
        );
        let sql = if $postgres { format!("{base} FOR UPDATE OF i") } else { base };
        let found: Option<$crate::store::billing_invoices::InvoiceRecord> =
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind($space).bind($id).fetch_optional(&mut *$tx).await?;
        found
    }};
}
pub(crate) use invoice_for_update;
