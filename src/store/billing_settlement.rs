//! What happens to a finalized invoice: payments (cash, bank transfer, the wallet through
//! its ledger), voiding (only unpaid and uncorrected), credit notes (numbered in their own
//! series, chained as invoices are, refunding to the wallet or the original method), and
//! the reads of the integrity chain. Locks are taken in one order everywhere: the space's
//! chain head, then the invoice, then the member; so no two of these wait on each other.

use chrono::{DateTime, Datelike, Utc};

use super::billing_invoices::{
    invoice_content, result_id, DocWrite, InvoiceLine, InvoiceRecord, Refusal, INVOICE_COLUMNS,
};
use super::billing_ledger::{IdemKey, NewWalletEntry};
use super::billing_sql::{
    advance_chain, balance_in, claim_key, insert_wallet_entry, invoice_for_update, lock_chain, lock_member,
    next_number, set_key_result,
};
use super::{with_pool, with_writer, Store, StoreError};
use crate::domain::billing::documents::{
    chain_sha256, stamp, sums, tax_totals, DocumentContent, DocumentLine, StoredDocument,
};
use crate::domain::billing::numbering::format_number;

/// A payment (positive) or a refund (negative) of an invoice.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct PaymentRecord {
    pub id: i64,
    pub makerspace_id: String,
    pub invoice_id: String,
    pub kind: String,
    pub method: String,
    pub amount_minor: i64,
    pub currency: String,
    pub reference: Option<String>,
    pub wallet_entry_id: Option<i64>,
    pub credit_note_id: Option<String>,
    pub actor: String,
    pub created_at: DateTime<Utc>,
}

const PAYMENT_COLUMNS: &str = "id, makerspace_id, invoice_id, kind, method, amount_minor, currency, reference, \
     wallet_entry_id, credit_note_id, actor, created_at";

/// A new payment of an invoice.
#[derive(Debug, Clone)]
pub struct NewPayment {
    pub method: &'static str,
    pub amount_minor: i64,
    pub reference: Option<String>,
    pub actor: String,
    pub at: DateTime<Utc>,
}

/// A stored credit note (amounts negative).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct CreditNoteRecord {
    pub id: String,
    pub makerspace_id: String,
    pub invoice_id: String,
    pub member_id: String,
    pub number: String,
    pub currency: String,
    pub refund_to: String,
    pub reason: String,
    pub net_minor: i64,
    pub tax_minor: i64,
    pub total_minor: i64,
    pub refunded_minor: i64,
    pub chain_seq: i64,
    pub content_sha256: String,
    pub chain_sha256: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

const CREDIT_NOTE_COLUMNS: &str = "id, makerspace_id, invoice_id, member_id, number, currency, refund_to, reason, \
     net_minor, tax_minor, total_minor, refunded_minor, chain_seq, content_sha256, chain_sha256, created_by, created_at";

/// A line of a credit note.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct CreditNoteLine {
    pub charge_id: String,
    pub description: String,
    pub net_minor: i64,
    pub tax_rate_id: Option<String>,
    pub tax_percent: Option<String>,
    pub tax_minor: i64,
    pub total_minor: i64,
}

impl CreditNoteLine {
    pub fn document_line(&self) -> DocumentLine {
        DocumentLine {
            charge_id: self.charge_id.clone(),
            description: self.description.clone(),
            usage_at: None,
            net_minor: self.net_minor,
            tax_rate_id: self.tax_rate_id.clone(),
            tax_percent: self.tax_percent.clone(),
            tax_minor: self.tax_minor,
            total_minor: self.total_minor,
        }
    }
}

/// A credit note's content, as hashed.
pub fn credit_note_content(note: &CreditNoteRecord, invoice_number: &str, lines: &[CreditNoteLine]) -> DocumentContent {
    let lines: Vec<DocumentLine> = lines.iter().map(CreditNoteLine::document_line).collect();
    DocumentContent {
        kind: "credit_note",
        number: note.number.clone(),
        issued_at: stamp(note.created_at),
        invoice_number: Some(invoice_number.to_string()),
        period_from: None,
        period_to: None,
        member_id: note.member_id.clone(),
        currency: note.currency.clone(),
        taxes: tax_totals(&lines),
        lines,
        net_minor: note.net_minor,
        tax_minor: note.tax_minor,
        total_minor: note.total_minor,
    }
}

/// A credit note asked for: which lines (`None`: every line not credited yet), where a
/// refund goes, why.
#[derive(Debug, Clone)]
pub struct NewCreditNote {
    pub id: String,
    pub lines: Option<Vec<String>>,
    pub refund_to: &'static str,
    pub reason: String,
    pub pattern: String,
    pub created_by: String,
    pub at: DateTime<Utc>,
}

/// The refusal of an invoice that is not finalized.
fn not_finalized(invoice: InvoiceRecord) -> Refusal {
    Refusal::NotFinalized(invoice.status)
}

impl Store {
    /// Appends a payment of a finalized invoice, once per key; never more than is still due,
    /// and a wallet payment never takes the wallet below zero.
    pub async fn pay_invoice(
        &self,
        space: &str,
        invoice_id: &str,
        payment: &NewPayment,
        key: &IdemKey,
    ) -> Result<DocWrite<PaymentRecord>, StoreError> {
        let postgres = self.kind() == "postgres";
        with_writer!(self, pool => {
            let mut tx = pool.begin().await?;
            if let Some((hash, result)) = claim_key!(tx, space, key, payment.at) {
                if hash != key.request_hash {
                    return Ok(DocWrite::KeyReused);
                }
                let id: i64 = result_id(&result, "payment:")?
                    .parse()
                    .map_err(|_| StoreError::Corrupt(format!("payment result {result:?}")))?;
                let sql = format!("SELECT {PAYMENT_COLUMNS} FROM billing_payments WHERE id = $1");
                let first: PaymentRecord = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_one(&mut *tx).await?;
                return Ok(DocWrite::Replayed(first));
            }
            let Some(invoice) = invoice_for_update!(tx, space, invoice_id, postgres) else {
                return Ok(DocWrite::Refused(Refusal::NoInvoice));
            };
            if invoice.status != "finalized" {
                return Ok(DocWrite::Refused(not_finalized(invoice)));
            }
            let remaining = invoice.due_minor() - invoice.paid_minor;
            if payment.amount_minor > remaining {
                return Ok(DocWrite::Refused(Refusal::Overpayment { remaining }));
            }
            let mut wallet_entry = None;
            if payment.method == "wallet" {
                lock_member!(tx, space, &invoice.member_id, postgres);
                let balance = balance_in!(tx, space, &invoice.member_id);
                if balance < payment.amount_minor {
                    return Ok(DocWrite::Refused(Refusal::Insufficient { balance }));
                }
                let entry = NewWalletEntry {
                    makerspace_id: space.to_string(),
                    member_id: invoice.member_id.clone(),
                    kind: "invoice_payment",
                    amount_minor: -payment.amount_minor,
                    currency: invoice.currency.clone(),
                    charge_id: None,
                    reason: Some(format!("invoice {}", invoice.number.clone().unwrap_or_default())),
                    actor: payment.actor.clone(),
                    at: payment.at,
                };
                wallet_entry = Some(insert_wallet_entry!(tx, &entry, Some(key.key.as_str())).id);
            }
            let (id,): (i64,) = sqlx::query_as(
                "INSERT INTO billing_payments (makerspace_id, invoice_id, kind, method, amount_minor, currency, reference,
                 wallet_entry_id, credit_note_id, actor, created_at)
                 VALUES ($1, $2, 'payment', $3, $4, $5, $6, $7, NULL, $8, $9) RETURNING id",
            )
            .bind(space).bind(invoice_id).bind(payment.method).bind(payment.amount_minor).bind(&invoice.currency)
            .bind(&payment.reference).bind(wallet_entry).bind(&payment.actor).bind(payment.at)
            .fetch_one(&mut *tx)
            .await?;
            set_key_result!(tx, space, key, format!("payment:{id}"));
            tx.commit().await?;
            Ok(DocWrite::Done(PaymentRecord {
                id,
                makerspace_id: space.to_string(),
                invoice_id: invoice_id.to_string(),
                kind: "payment".into(),
                method: payment.method.to_string(),
                amount_minor: payment.amount_minor,
                currency: invoice.currency,
                reference: payment.reference.clone(),
                wallet_entry_id: wallet_entry,
                credit_note_id: None,
                actor: payment.actor.clone(),
                created_at: payment.at,
            }))
        })
    }

    /// Voids a finalized invoice that has no payment and no credit note; its charges become
    /// void with it (what was billed in error is not billed again by the next draft).
    pub async fn void_invoice(
        &self,
        space: &str,
        invoice_id: &str,
        reason: &str,
        at: DateTime<Utc>,
    ) -> Result<Option<Refusal>, StoreError> {
        let postgres = self.kind() == "postgres";
        with_writer!(self, pool => {
            let mut tx = pool.begin().await?;
            let Some(invoice) = invoice_for_update!(tx, space, invoice_id, postgres) else {
                return Ok(Some(Refusal::NoInvoice));
            };
            if invoice.status != "finalized" {
                return Ok(Some(not_finalized(invoice)));
            }
            let (payments,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM billing_payments WHERE invoice_id = $1")
                .bind(invoice_id).fetch_one(&mut *tx).await?;
            if payments > 0 {
                return Ok(Some(Refusal::HasPayments));
            }
            let (notes,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM billing_credit_notes WHERE invoice_id = $1")
                .bind(invoice_id).fetch_one(&mut *tx).await?;
            if notes > 0 {
                return Ok(Some(Refusal::HasCreditNotes));
            }
            sqlx::query("UPDATE billing_invoices SET status = 'void', voided_at = $2, void_reason = $3 WHERE id = $1")
                .bind(invoice_id).bind(at).bind(reason).execute(&mut *tx).await?;
            sqlx::query("UPDATE billing_charges SET status = 'void' WHERE invoice_id = $1")
                .bind(invoice_id).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(None)
        })
    }

    /// Issues a credit note of a finalized invoice, once per key: the chosen lines (never one
    /// credited before) negated, numbered in its series, chained; what was paid beyond what
    /// is still due afterwards is given back (to the wallet, or recorded as a refund by the
    /// last payment's method).
    pub async fn issue_credit_note(
        &self,
        space: &str,
        invoice_id: &str,
        note: &NewCreditNote,
        key: &IdemKey,
    ) -> Result<DocWrite<CreditNoteRecord>, StoreError> {
        let postgres = self.kind() == "postgres";
        with_writer!(self, pool => {
            let mut tx = pool.begin().await?;
            if let Some((hash, result)) = claim_key!(tx, space, key, note.at) {
                if hash != key.request_hash {
                    return Ok(DocWrite::KeyReused);
                }
                let id = result_id(&result, "credit_note:")?;
                let sql = format!("SELECT {CREDIT_NOTE_COLUMNS} FROM billing_credit_notes WHERE id = $1");
                let first: CreditNoteRecord =
                    sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_one(&mut *tx).await?;
                return Ok(DocWrite::Replayed(first));
            }
            let (last_seq, last_sha) = lock_chain!(tx, space, postgres);
            let Some(invoice) = invoice_for_update!(tx, space, invoice_id, postgres) else {
                return Ok(DocWrite::Refused(Refusal::NoInvoice));
            };
            if invoice.status != "finalized" {
                return Ok(DocWrite::Refused(not_finalized(invoice)));
            }
            let lines: Vec<InvoiceLine> = sqlx::query_as(
                "SELECT charge_id, description, usage_at, net_minor, tax_rate_id, tax_percent, tax_minor, total_minor
                 FROM billing_invoice_lines WHERE invoice_id = $1 ORDER BY position",
            )
            .bind(invoice_id).fetch_all(&mut *tx).await?;
            let credited: Vec<(String,)> = sqlx::query_as(
                "SELECT l.charge_id FROM billing_credit_note_lines l JOIN billing_credit_notes n ON n.id = l.credit_note_id
                 WHERE n.invoice_id = $1",
            )
            .bind(invoice_id).fetch_all(&mut *tx).await?;
            let credited: Vec<String> = credited.into_iter().map(|(id,)| id).collect();
            let chosen: Vec<&InvoiceLine> = match &note.lines {
                None => lines.iter().filter(|l| !credited.contains(&l.charge_id)).collect(),
                Some(ids) => {
                    let unknown: Vec<String> =
                        ids.iter().filter(|id| !lines.iter().any(|l| &l.charge_id == *id)).cloned().collect();
                    if !unknown.is_empty() {
                        return Ok(DocWrite::Refused(Refusal::NotOnInvoice(unknown)));
                    }
                    let again: Vec<String> = ids.iter().filter(|id| credited.contains(id)).cloned().collect();
                    if !again.is_empty() {
                        return Ok(DocWrite::Refused(Refusal::AlreadyCredited(again)));
                    }
                    lines.iter().filter(|l| ids.contains(&l.charge_id)).collect()
                }
            };
            if chosen.is_empty() {
                return Ok(DocWrite::Refused(Refusal::AlreadyCredited(Vec::new())));
            }
            let note_lines: Vec<CreditNoteLine> = chosen
                .iter()
                .map(|l| CreditNoteLine {
                    charge_id: l.charge_id.clone(),
                    description: l.description.clone(),
                    net_minor: -l.net_minor,
                    tax_rate_id: l.tax_rate_id.clone(),
                    tax_percent: l.tax_percent.clone(),
                    tax_minor: -l.tax_minor,
                    total_minor: -l.total_minor,
                })
                .collect();
            let document_lines: Vec<DocumentLine> = note_lines.iter().map(CreditNoteLine::document_line).collect();
            let (net, tax, total) = sums(&document_lines);
            // Never give back more than was paid: only what was paid beyond what is due now.
            let refund = (invoice.paid_minor - (invoice.due_minor() + total)).clamp(0, invoice.paid_minor.max(0));
            let year = note.at.year();
            let n = next_number!(tx, space, "credit_note", year);
            let invoice_number = invoice.number.clone().unwrap_or_default();
            let mut record = CreditNoteRecord {
                id: note.id.clone(),
                makerspace_id: space.to_string(),
                invoice_id: invoice_id.to_string(),
                member_id: invoice.member_id.clone(),
                number: format_number(&note.pattern, year, n),
                currency: invoice.currency.clone(),
                refund_to: note.refund_to.to_string(),
                reason: note.reason.clone(),
                net_minor: net,
                tax_minor: tax,
                total_minor: total,
                refunded_minor: refund,
                chain_seq: last_seq + 1,
                content_sha256: String::new(),
                chain_sha256: String::new(),
                created_by: note.created_by.clone(),
                created_at: note.at,
            };
            record.content_sha256 = credit_note_content(&record, &invoice_number, &note_lines).sha256();
            record.chain_sha256 = chain_sha256(&last_sha, &record.content_sha256);
            let r = &record;
            sqlx::query(
                "INSERT INTO billing_credit_notes (id, makerspace_id, invoice_id, member_id, number, currency, refund_to,
                 reason, net_minor, tax_minor, total_minor, refunded_minor, chain_seq, content_sha256, chain_sha256,
                 created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
            )
            .bind(&r.id).bind(space).bind(invoice_id).bind(&r.member_id).bind(&r.number).bind(&r.currency)
            .bind(&r.refund_to).bind(&r.reason).bind(r.net_minor).bind(r.tax_minor).bind(r.total_minor)
            .bind(r.refunded_minor).bind(r.chain_seq).bind(&r.content_sha256).bind(&r.chain_sha256)
            .bind(&r.created_by).bind(r.created_at)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from_write)?;
            for (position, line) in note_lines.iter().enumerate() {
                sqlx::query(
                    "INSERT INTO billing_credit_note_lines (credit_note_id, charge_id, position, description, net_minor,
                     tax_rate_id, tax_percent, tax_minor, total_minor) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(&r.id).bind(&line.charge_id).bind(position as i64).bind(&line.description).bind(line.net_minor)
                .bind(&line.tax_rate_id).bind(&line.tax_percent).bind(line.tax_minor).bind(line.total_minor)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from_write)?;
            }
            if refund > 0 {
                let last_method: Option<(String,)> = sqlx::query_as(
                    "SELECT method FROM billing_payments WHERE invoice_id = $1 AND kind = 'payment' ORDER BY id DESC LIMIT 1",
                )
                .bind(invoice_id).fetch_optional(&mut *tx).await?;
                let method = match note.refund_to {
                    "wallet" => "wallet".to_string(),
                    _ => last_method.map(|(m,)| m).unwrap_or_else(|| "bank_transfer".into()),
                };
                let mut wallet_entry = None;
                if method == "wallet" {
                    lock_member!(tx, space, &r.member_id, postgres);
                    let entry = NewWalletEntry {
                        makerspace_id: space.to_string(),
                        member_id: r.member_id.clone(),
                        kind: "refund",
                        amount_minor: refund,
                        currency: r.currency.clone(),
                        charge_id: None,
                        reason: Some(format!("credit note {}", r.number)),
                        actor: r.created_by.clone(),
                        at: r.created_at,
                    };
                    wallet_entry = Some(insert_wallet_entry!(tx, &entry, Some(key.key.as_str())).id);
                }
                sqlx::query(
                    "INSERT INTO billing_payments (makerspace_id, invoice_id, kind, method, amount_minor, currency,
                     reference, wallet_entry_id, credit_note_id, actor, created_at)
                     VALUES ($1, $2, 'refund', $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind(space).bind(invoice_id).bind(&method).bind(-refund).bind(&r.currency).bind(&r.number)
                .bind(wallet_entry).bind(&r.id).bind(&r.created_by).bind(r.created_at)
                .execute(&mut *tx)
                .await?;
            }
            advance_chain!(tx, space, r.chain_seq, &r.chain_sha256);
            set_key_result!(tx, space, key, format!("credit_note:{}", r.id));
            tx.commit().await?;
            Ok(DocWrite::Done(record))
        })
    }

    /// An invoice's payments and refunds, oldest first.
    pub async fn invoice_payments(&self, invoice_id: &str) -> Result<Vec<PaymentRecord>, StoreError> {
        let sql = format!("SELECT {PAYMENT_COLUMNS} FROM billing_payments WHERE invoice_id = $1 ORDER BY id");
        let rows = with_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(invoice_id).fetch_all(pool).await?
        });
        Ok(rows)
    }

    /// An invoice's credit notes with their lines, oldest first.
    pub async fn invoice_credit_notes(
        &self,
        invoice_id: &str,
    ) -> Result<Vec<(CreditNoteRecord, Vec<CreditNoteLine>)>, StoreError> {
        let sql =
            format!("SELECT {CREDIT_NOTE_COLUMNS} FROM billing_credit_notes WHERE invoice_id = $1 ORDER BY chain_seq");
        let notes: Vec<CreditNoteRecord> = with_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(invoice_id).fetch_all(pool).await?
        });
        let mut out = Vec::with_capacity(notes.len());
        for note in notes {
            let lines = self.credit_note_lines(&note.id).await?;
            out.push((note, lines));
        }
        Ok(out)
    }

    async fn credit_note_lines(&self, id: &str) -> Result<Vec<CreditNoteLine>, StoreError> {
        let rows = with_pool!(self, pool => {
            sqlx::query_as(
                "SELECT charge_id, description, net_minor, tax_rate_id, tax_percent, tax_minor, total_minor
                 FROM billing_credit_note_lines WHERE credit_note_id = $1 ORDER BY position",
            )
            .bind(id)
            .fetch_all(pool)
            .await?
        });
        Ok(rows)
    }

    /// A space's finalized documents in chain order, their content rebuilt from their stored
    /// rows, and the chain's head `(last_seq, last_sha256)`.
    pub async fn chain_documents(&self, space: &str) -> Result<(Vec<StoredDocument>, i64, String), StoreError> {
        let sql = format!(
            "SELECT {INVOICE_COLUMNS} FROM billing_invoices i WHERE i.makerspace_id = $1 AND i.chain_seq IS NOT NULL"
        );
        let invoices: Vec<InvoiceRecord> = with_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(space).fetch_all(pool).await?
        });
        let sql = format!("SELECT {CREDIT_NOTE_COLUMNS} FROM billing_credit_notes WHERE makerspace_id = $1");
        let notes: Vec<CreditNoteRecord> = with_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(space).fetch_all(pool).await?
        });
        let head: Option<(i64, String)> = with_pool!(self, pool => {
            sqlx::query_as("SELECT last_seq, last_sha256 FROM billing_chain_heads WHERE makerspace_id = $1")
                .bind(space)
                .fetch_optional(pool)
                .await?
        });
        let mut docs = Vec::with_capacity(invoices.len() + notes.len());
        for invoice in &invoices {
            let lines = self.invoice_lines(invoice).await?;
            docs.push(StoredDocument {
                kind: "invoice",
                id: invoice.id.clone(),
                number: invoice.number.clone().unwrap_or_default(),
                seq: invoice.chain_seq.unwrap_or_default(),
                content: invoice_content(invoice, &lines),
                content_sha256: invoice.content_sha256.clone().unwrap_or_default(),
                chain_sha256: invoice.chain_sha256.clone().unwrap_or_default(),
            });
        }
        for note in notes {
            let lines = self.credit_note_lines(&note.id).await?;
            let invoice_number =
                invoices.iter().find(|i| i.id == note.invoice_id).and_then(|i| i.number.clone()).unwrap_or_default();
            docs.push(StoredDocument {
                kind: "credit_note",
                id: note.id.clone(),
                number: note.number.clone(),
                seq: note.chain_seq,
                content: credit_note_content(&note, &invoice_number, &lines),
                content_sha256: note.content_sha256.clone(),
                chain_sha256: note.chain_sha256.clone(),
            });
        }
        docs.sort_by_key(|d| d.seq);
        let (last_seq, last_sha) = head.unwrap_or((0, String::new()));
        Ok((docs, last_seq, last_sha))
    }
}
