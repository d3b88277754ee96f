//! Invoices: drafts that collect a member's open charges, a line put back, finalizing (the
//! next number of the space and year, lines and taxes frozen into `billing_invoice_lines`,
//! the integrity chain's next link), and their reads. Payments, voiding and credit notes are
//! [`super::billing_settlement`].
//!
//! Concurrency: a draft takes charges with one `UPDATE ... WHERE status = 'open'`, so two
//! drafts never take the same charge (and `billing_invoice_lines` has a unique index on the
//! charge). Finalizing locks the space's chain head, then the invoice (FOR UPDATE on
//! PostgreSQL; SQLite's single writer runs transactions one at a time): numbers and links
//! are given one document at a time, with no gaps, and a line cannot leave an invoice being
//! finalized.

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use sqlx::QueryBuilder;

use super::billing_ledger::{IdemKey, Keyed};
use super::billing_sql::{
    advance_chain, claim_key, invoice_for_update, lock_chain, lock_member, next_number, set_key_result,
};
use super::{with_pool, with_writer, Store, StoreError};
use crate::domain::billing::documents::{chain_sha256, stamp, sums, tax_totals, DocumentContent, DocumentLine};
use crate::domain::billing::numbering::format_number;

/// A stored invoice. A draft's totals are summed from its charges; a finalized one's are
/// frozen. `paid_minor` (payments less refunds) and `credited_minor` (its credit notes'
/// totals, negative) are summed by reads.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct InvoiceRecord {
    pub id: String,
    pub makerspace_id: String,
    pub member_id: String,
    pub period_from: NaiveDate,
    pub period_to: NaiveDate,
    pub currency: String,
    pub status: String,
    pub number: Option<String>,
    pub finalized_at: Option<DateTime<Utc>>,
    pub net_minor: i64,
    pub tax_minor: i64,
    pub total_minor: i64,
    pub chain_seq: Option<i64>,
    pub content_sha256: Option<String>,
    pub chain_sha256: Option<String>,
    pub voided_at: Option<DateTime<Utc>>,
    pub void_reason: Option<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub paid_minor: i64,
    pub credited_minor: i64,
}

impl InvoiceRecord {
    /// What is still owed for it: its total less its credit notes.
    pub fn due_minor(&self) -> i64 {
        self.total_minor + self.credited_minor
    }
}

/// The columns of [`InvoiceRecord`] from `billing_invoices i`.
pub const INVOICE_COLUMNS: &str = "i.id, i.makerspace_id, i.member_id, i.period_from, i.period_to, i.currency, \
     i.status, i.number, i.finalized_at, \
     CASE WHEN i.status = 'draft' THEN (SELECT CAST(COALESCE(SUM(c.net_minor), 0) AS BIGINT) FROM billing_charges c WHERE c.invoice_id = i.id) ELSE i.net_minor END AS net_minor, \
     CASE WHEN i.status = 'draft' THEN (SELECT CAST(COALESCE(SUM(c.tax_minor), 0) AS BIGINT) FROM billing_charges c WHERE c.invoice_id = i.id) ELSE i.tax_minor END AS tax_minor, \
     CASE WHEN i.status = 'draft' THEN (SELECT CAST(COALESCE(SUM(c.total_minor), 0) AS BIGINT) FROM billing_charges c WHERE c.invoice_id = i.id) ELSE i.total_minor END AS total_minor, \
     i.chain_seq, i.content_sha256, i.chain_sha256, i.voided_at, i.void_reason, i.created_by, i.created_at, \
     (SELECT CAST(COALESCE(SUM(p.amount_minor), 0) AS BIGINT) FROM billing_payments p WHERE p.invoice_id = i.id) AS paid_minor, \
     (SELECT CAST(COALESCE(SUM(n.total_minor), 0) AS BIGINT) FROM billing_credit_notes n WHERE n.invoice_id = i.id) AS credited_minor";

/// A line of an invoice: a draft's from its charges, a finalized one's as frozen.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct InvoiceLine {
    pub charge_id: String,
    pub description: String,
    pub usage_at: DateTime<Utc>,
    pub net_minor: i64,
    pub tax_rate_id: Option<String>,
    pub tax_percent: Option<String>,
    pub tax_minor: i64,
    pub total_minor: i64,
}

impl InvoiceLine {
    pub fn document_line(&self) -> DocumentLine {
        DocumentLine {
            charge_id: self.charge_id.clone(),
            description: self.description.clone(),
            usage_at: Some(stamp(self.usage_at)),
            net_minor: self.net_minor,
            tax_rate_id: self.tax_rate_id.clone(),
            tax_percent: self.tax_percent.clone(),
            tax_minor: self.tax_minor,
            total_minor: self.total_minor,
        }
    }
}

/// A finalized invoice's content, as hashed: its frozen lines and its stored totals.
pub fn invoice_content(invoice: &InvoiceRecord, lines: &[InvoiceLine]) -> DocumentContent {
    let lines: Vec<DocumentLine> = lines.iter().map(InvoiceLine::document_line).collect();
    DocumentContent {
        kind: "invoice",
        number: invoice.number.clone().unwrap_or_default(),
        issued_at: invoice.finalized_at.map(stamp).unwrap_or_default(),
        invoice_number: None,
        period_from: Some(invoice.period_from.to_string()),
        period_to: Some(invoice.period_to.to_string()),
        member_id: invoice.member_id.clone(),
        currency: invoice.currency.clone(),
        taxes: tax_totals(&lines),
        lines,
        net_minor: invoice.net_minor,
        tax_minor: invoice.tax_minor,
        total_minor: invoice.total_minor,
    }
}

const CHARGE_LINE_COLUMNS: &str =
    "id AS charge_id, description, usage_at, net_minor, tax_rate_id, tax_percent, tax_minor, total_minor";
const FROZEN_LINE_COLUMNS: &str =
    "charge_id, description, usage_at, net_minor, tax_rate_id, tax_percent, tax_minor, total_minor";

/// Why a document write was refused.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    NoInvoice,
    /// The invoice is not a draft (its status).
    NotDraft(String),
    /// The invoice is not finalized (its status).
    NotFinalized(String),
    NoLine,
    Empty,
    /// More than is still due.
    Overpayment {
        remaining: i64,
    },
    Insufficient {
        balance: i64,
    },
    HasPayments,
    HasCreditNotes,
    /// These lines were credited before (or nothing is left to credit).
    AlreadyCredited(Vec<String>),
    /// These charge ids are no lines of the invoice.
    NotOnInvoice(Vec<String>),
}

/// What became of a document write.
#[derive(Debug, Clone, PartialEq)]
pub enum DocWrite<T> {
    Done(T),
    Replayed(T),
    KeyReused,
    Refused(Refusal),
}

/// A new draft: who, which period (`[from, to)` as instants, the dates as written).
#[derive(Debug, Clone)]
pub struct NewDraft {
    pub id: String,
    pub makerspace_id: String,
    pub member_id: String,
    pub period_from: NaiveDate,
    pub period_to: NaiveDate,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub currency: String,
    pub created_by: String,
    pub at: DateTime<Utc>,
}

/// Filters and page of an invoice listing.
#[derive(Debug, Clone, Default)]
pub struct InvoiceFilter {
    pub member_id: Option<String>,
    pub status: Option<String>,
    pub limit: i64,
    pub offset: i64,
}

/// The invoice a key's stored result names (`invoice:{id}`).
pub(super) fn result_id<'a>(result: &'a str, prefix: &str) -> Result<&'a str, StoreError> {
    result
        .strip_prefix(prefix)
        .ok_or_else(|| StoreError::Corrupt(format!("billing_idempotency_keys.result {result:?} is no {prefix}")))
}

impl Store {
    /// Makes a draft holding the member's open charges of the period, once per key. A charge
    /// paid from the wallet already is not billed again.
    pub async fn create_invoice_draft(
        &self,
        draft: &NewDraft,
        key: &IdemKey,
    ) -> Result<Keyed<InvoiceRecord>, StoreError> {
        let postgres = self.kind() == "postgres";
        let space = draft.makerspace_id.as_str();
        let id = with_writer!(self, pool => {
            let mut tx = pool.begin().await?;
            if let Some((hash, result)) = claim_key!(tx, space, key, draft.at) {
                if hash != key.request_hash {
                    return Ok(Keyed::KeyReused);
                }
                let id = result_id(&result, "invoice:")?.to_string();
                drop(tx);
                let first = self.get_invoice(space, &id).await?
                    .ok_or_else(|| StoreError::Corrupt(format!("idempotency result {result:?} is gone")))?;
                return Ok(Keyed::Replayed(first));
            }
            lock_member!(tx, space, &draft.member_id, postgres);
            sqlx::query(
                "INSERT INTO billing_invoices (id, makerspace_id, member_id, period_from, period_to, currency, status,
                 created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, 'draft', $7, $8)",
            )
            .bind(&draft.id).bind(space).bind(&draft.member_id).bind(draft.period_from).bind(draft.period_to)
            .bind(&draft.currency).bind(&draft.created_by).bind(draft.at)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from_write)?;
            sqlx::query(
                "UPDATE billing_charges SET status = 'invoiced', invoice_id = $1
                 WHERE makerspace_id = $2 AND member_id = $3 AND status = 'open' AND invoice_id IS NULL
                 AND usage_at >= $4 AND usage_at < $5 AND currency = $6
                 AND NOT EXISTS (SELECT 1 FROM billing_wallet_entries w
                                 WHERE w.charge_id = billing_charges.id AND w.kind = 'charge_payment')",
            )
            .bind(&draft.id).bind(space).bind(&draft.member_id).bind(draft.from).bind(draft.to).bind(&draft.currency)
            .execute(&mut *tx)
            .await?;
            set_key_result!(tx, space, key, format!("invoice:{}", draft.id));
            tx.commit().await?;
            draft.id.clone()
        });
        let made =
            self.get_invoice(space, &id).await?.ok_or_else(|| StoreError::Corrupt(format!("invoice {id} is gone")))?;
        Ok(Keyed::Done(made))
    }

    /// Puts a charge of a draft back to open.
    pub async fn remove_invoice_line(
        &self,
        space: &str,
        invoice_id: &str,
        charge_id: &str,
    ) -> Result<Option<Refusal>, StoreError> {
        let postgres = self.kind() == "postgres";
        with_writer!(self, pool => {
            let mut tx = pool.begin().await?;
            let Some(invoice) = invoice_for_update!(tx, space, invoice_id, postgres) else {
                return Ok(Some(Refusal::NoInvoice));
            };
            if invoice.status != "draft" {
                return Ok(Some(Refusal::NotDraft(invoice.status)));
            }
            let moved = sqlx::query(
                "UPDATE billing_charges SET status = 'open', invoice_id = NULL
                 WHERE makerspace_id = $1 AND id = $2 AND invoice_id = $3 AND status = 'invoiced'",
            )
            .bind(space).bind(charge_id).bind(invoice_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if moved == 0 {
                return Ok(Some(Refusal::NoLine));
            }
            tx.commit().await?;
            Ok(None)
        })
    }

    /// Finalizes a draft, once per key: the next number of `pattern` in the year of `at`, its
    /// lines and totals frozen, its content hashed and linked into the space's chain.
    pub async fn finalize_invoice(
        &self,
        space: &str,
        invoice_id: &str,
        pattern: &str,
        key: &IdemKey,
        at: DateTime<Utc>,
    ) -> Result<DocWrite<InvoiceRecord>, StoreError> {
        let postgres = self.kind() == "postgres";
        let done = with_writer!(self, pool => {
            let mut tx = pool.begin().await?;
            if let Some((hash, result)) = claim_key!(tx, space, key, at) {
                if hash != key.request_hash {
                    return Ok(DocWrite::KeyReused);
                }
                let id = result_id(&result, "invoice:")?.to_string();
                drop(tx);
                let first = self.get_invoice(space, &id).await?
                    .ok_or_else(|| StoreError::Corrupt(format!("idempotency result {result:?} is gone")))?;
                return Ok(DocWrite::Replayed(first));
            }
            let (last_seq, last_sha) = lock_chain!(tx, space, postgres);
            let Some(mut invoice) = invoice_for_update!(tx, space, invoice_id, postgres) else {
                return Ok(DocWrite::Refused(Refusal::NoInvoice));
            };
            if invoice.status != "draft" {
                return Ok(DocWrite::Refused(Refusal::NotDraft(invoice.status)));
            }
            let sql = format!(
                "SELECT {CHARGE_LINE_COLUMNS} FROM billing_charges WHERE invoice_id = $1 ORDER BY usage_at, id"
            );
            let lines: Vec<InvoiceLine> =
                sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(invoice_id).fetch_all(&mut *tx).await?;
            if lines.is_empty() {
                return Ok(DocWrite::Refused(Refusal::Empty));
            }
            let n = next_number!(tx, space, "invoice", at.year());
            let document_lines: Vec<DocumentLine> = lines.iter().map(InvoiceLine::document_line).collect();
            (invoice.net_minor, invoice.tax_minor, invoice.total_minor) = sums(&document_lines);
            invoice.number = Some(format_number(pattern, at.year(), n));
            invoice.finalized_at = Some(at);
            invoice.status = "finalized".into();
            let content = invoice_content(&invoice, &lines);
            let content_sha = content.sha256();
            let chain_sha = chain_sha256(&last_sha, &content_sha);
            let seq = last_seq + 1;
            for (position, line) in lines.iter().enumerate() {
                sqlx::query(
                    "INSERT INTO billing_invoice_lines (invoice_id, charge_id, position, description, usage_at,
                     net_minor, tax_rate_id, tax_percent, tax_minor, total_minor)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind(invoice_id).bind(&line.charge_id).bind(position as i64).bind(&line.description)
                .bind(line.usage_at).bind(line.net_minor).bind(&line.tax_rate_id).bind(&line.tax_percent)
                .bind(line.tax_minor).bind(line.total_minor)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from_write)?;
            }
            sqlx::query(
                "UPDATE billing_invoices SET status = 'finalized', number = $2, finalized_at = $3, net_minor = $4,
                 tax_minor = $5, total_minor = $6, chain_seq = $7, content_sha256 = $8, chain_sha256 = $9
                 WHERE id = $1",
            )
            .bind(invoice_id).bind(&invoice.number).bind(at).bind(invoice.net_minor).bind(invoice.tax_minor)
            .bind(invoice.total_minor).bind(seq).bind(&content_sha).bind(&chain_sha)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from_write)?;
            advance_chain!(tx, space, seq, &chain_sha);
            set_key_result!(tx, space, key, format!("invoice:{invoice_id}"));
            tx.commit().await?;
            invoice_id.to_string()
        });
        let invoice = self
            .get_invoice(space, &done)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("invoice {done} is gone")))?;
        Ok(DocWrite::Done(invoice))
    }

    pub async fn get_invoice(&self, space: &str, id: &str) -> Result<Option<InvoiceRecord>, StoreError> {
        let sql = format!("SELECT {INVOICE_COLUMNS} FROM billing_invoices i WHERE i.makerspace_id = $1 AND i.id = $2");
        let row = with_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(space).bind(id).fetch_optional(pool).await?
        });
        Ok(row)
    }

    /// An invoice's lines: a draft's charges as they are now, a finalized one's as frozen.
    pub async fn invoice_lines(&self, invoice: &InvoiceRecord) -> Result<Vec<InvoiceLine>, StoreError> {
        let sql = if invoice.status == "draft" {
            format!("SELECT {CHARGE_LINE_COLUMNS} FROM billing_charges WHERE invoice_id = $1 ORDER BY usage_at, id")
        } else {
            format!("SELECT {FROZEN_LINE_COLUMNS} FROM billing_invoice_lines WHERE invoice_id = $1 ORDER BY position")
        };
        let rows = with_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(&invoice.id).fetch_all(pool).await?
        });
        Ok(rows)
    }

    /// A page of a space's invoices, newest first, and how many match in all.
    pub async fn list_invoices(
        &self,
        space: &str,
        filter: &InvoiceFilter,
    ) -> Result<(Vec<InvoiceRecord>, i64), StoreError> {
        fn filters<DB: sqlx::Database>(q: &mut QueryBuilder<DB>, space: &str, f: &InvoiceFilter)
        where
            for<'t> String: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
        {
            q.push(" WHERE i.makerspace_id = ").push_bind(space.to_string());
            if let Some(member) = &f.member_id {
                q.push(" AND i.member_id = ").push_bind(member.clone());
            }
            if let Some(status) = &f.status {
                q.push(" AND i.status = ").push_bind(status.clone());
            }
        }
        with_pool!(self, pool => {
            let mut q = QueryBuilder::new(format!("SELECT {INVOICE_COLUMNS} FROM billing_invoices i"));
            filters(&mut q, space, filter);
            q.push(" ORDER BY i.created_at DESC, i.id DESC LIMIT ").push_bind(filter.limit);
            q.push(" OFFSET ").push_bind(filter.offset);
            let rows: Vec<InvoiceRecord> = q.build_query_as().fetch_all(pool).await?;
            let mut count = QueryBuilder::new("SELECT COUNT(*) FROM billing_invoices i");
            filters(&mut count, space, filter);
            let (total,): (i64,) = count.build_query_as().fetch_one(pool).await?;
            Ok((rows, total))
        })
    }
}
