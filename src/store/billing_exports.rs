//! Reads for billing's exports: a period's finalized documents with their lines, its
//! payments, and the lines that make its revenue. Nothing here writes.
//!
//! A frozen line (`billing_invoice_lines`, `billing_credit_note_lines`) keeps its amounts
//! and tax but not where it came from (the charge's kind, machine, job material): those are
//! read by joining `billing_charges` on `charge_id`. Charges are never deleted (only a whole
//! makerspace takes them with it), and the columns read here never change after a charge is
//! made (only its status and invoice do), so the join gives what the line was frozen from.

use chrono::{DateTime, Utc};

use super::{with_pool, Store, StoreError};
use crate::domain::billing::journal::{
    DocumentKind, JournalDocument, JournalLine, JournalPayment, Period, RevenueKind,
};
use crate::domain::billing::revenue::RevenueLine;

/// The member's name as the journal shows it (empty for a member since deleted).
const MEMBER_NAME: &str =
    "COALESCE((SELECT m.first_name || ' ' || m.last_name FROM members m WHERE m.id = d.member_id), '') AS member_name";

/// Where a kind of document and its lines are, and which of them have an entry in a period
/// (`$1` the space, `[$2, $3)` the period).
struct DocumentSource {
    kind: DocumentKind,
    table: &'static str,
    issued_at: &'static str,
    voided_at: &'static str,
    in_period: &'static str,
    lines: &'static str,
    line_key: &'static str,
}

const DOCUMENT_SOURCES: [DocumentSource; 2] = [
    DocumentSource {
        kind: DocumentKind::Invoice,
        table: "billing_invoices",
        issued_at: "d.finalized_at",
        voided_at: "d.voided_at",
        // Finalized in it, or voided in it (a void invoice was finalized first).
        in_period: "d.makerspace_id = $1 AND d.status IN ('finalized', 'void') \
             AND ((d.finalized_at >= $2 AND d.finalized_at < $3) OR (d.voided_at >= $2 AND d.voided_at < $3))",
        lines: "billing_invoice_lines",
        line_key: "invoice_id",
    },
    DocumentSource {
        kind: DocumentKind::CreditNote,
        table: "billing_credit_notes",
        issued_at: "d.created_at",
        voided_at: "NULL",
        in_period: "d.makerspace_id = $1 AND d.created_at >= $2 AND d.created_at < $3",
        lines: "billing_credit_note_lines",
        line_key: "credit_note_id",
    },
];

#[derive(sqlx::FromRow)]
struct DocumentRow {
    id: String,
    number: Option<String>,
    issued_at: Option<DateTime<Utc>>,
    voided_at: Option<DateTime<Utc>>,
    member_id: String,
    member_name: String,
    currency: String,
}

#[derive(sqlx::FromRow)]
struct LineRow {
    document_id: String,
    charge_kind: Option<String>,
    net_minor: i64,
    tax_rate_id: Option<String>,
    tax_minor: i64,
}

#[derive(sqlx::FromRow)]
struct PaymentRow {
    id: i64,
    invoice_number: Option<String>,
    method: String,
    amount_minor: i64,
    created_at: DateTime<Utc>,
    member_id: String,
    member_name: String,
    currency: String,
}

#[derive(sqlx::FromRow)]
struct RevenueRow {
    document_id: String,
    at: DateTime<Utc>,
    net_minor: i64,
    tax_minor: i64,
    total_minor: i64,
    equipment_id: Option<String>,
    equipment_name: Option<String>,
    charge_kind: Option<String>,
    detail: Option<String>,
}

/// A job charge's material, from the figures it stored (`detail.material`).
fn material_of(kind: Option<&str>, detail: Option<&str>) -> Option<String> {
    if kind != Some("job") {
        return None;
    }
    let detail: serde_json::Value = serde_json::from_str(detail?).ok()?;
    detail.get("material")?.as_str().filter(|m| !m.is_empty()).map(str::to_string)
}

impl Store {
    /// The documents with an entry in `period`, each with its lines in their order.
    pub async fn journal_documents(&self, space: &str, period: &Period) -> Result<Vec<JournalDocument>, StoreError> {
        let mut docs = Vec::new();
        for src in &DOCUMENT_SOURCES {
            let DocumentSource { kind, table, issued_at, voided_at, in_period, lines, line_key } = src;
            let sql = format!(
                "SELECT d.id, d.number, {issued_at} AS issued_at, {voided_at} AS voided_at, d.member_id, \
                 {MEMBER_NAME}, d.currency FROM {table} d WHERE {in_period} ORDER BY d.id"
            );
            let rows: Vec<DocumentRow> = with_pool!(self, pool => {
                sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(space).bind(period.from).bind(period.to)
                    .fetch_all(pool).await?
            });
            let sql = format!(
                "SELECT d.id AS document_id, c.kind AS charge_kind, l.net_minor, l.tax_rate_id, l.tax_minor \
                 FROM {table} d JOIN {lines} l ON l.{line_key} = d.id LEFT JOIN billing_charges c ON c.id = l.charge_id \
                 WHERE {in_period} ORDER BY d.id, l.position"
            );
            let lines: Vec<LineRow> = with_pool!(self, pool => {
                sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(space).bind(period.from).bind(period.to)
                    .fetch_all(pool).await?
            });
            for row in rows {
                let issued_at = row
                    .issued_at
                    .ok_or_else(|| StoreError::Corrupt(format!("finalized document {} has no date", row.id)))?;
                let lines = lines
                    .iter()
                    .filter(|l| l.document_id == row.id)
                    .map(|l| JournalLine {
                        revenue: RevenueKind::of_charge(l.charge_kind.as_deref().unwrap_or_default()),
                        net_minor: l.net_minor,
                        tax_rate_id: l.tax_rate_id.clone(),
                        tax_minor: l.tax_minor,
                    })
                    .collect();
                docs.push(JournalDocument {
                    kind: *kind,
                    number: row.number.unwrap_or_default(),
                    issued_at,
                    voided_at: row.voided_at,
                    member_id: row.member_id,
                    member_name: row.member_name,
                    currency: row.currency,
                    lines,
                });
            }
        }
        Ok(docs)
    }

    /// The payments and refunds made in `period`.
    pub async fn journal_payments(&self, space: &str, period: &Period) -> Result<Vec<JournalPayment>, StoreError> {
        let sql = format!(
            "SELECT p.id, d.number AS invoice_number, p.method, p.amount_minor, p.created_at, d.member_id, \
             {MEMBER_NAME}, p.currency FROM billing_payments p JOIN billing_invoices d ON d.id = p.invoice_id \
             WHERE p.makerspace_id = $1 AND p.created_at >= $2 AND p.created_at < $3 ORDER BY p.id"
        );
        let rows: Vec<PaymentRow> = with_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(space).bind(period.from).bind(period.to).fetch_all(pool).await?
        });
        Ok(rows
            .into_iter()
            .map(|r| JournalPayment {
                id: r.id,
                invoice_number: r.invoice_number.unwrap_or_default(),
                method: r.method,
                amount_minor: r.amount_minor,
                at: r.created_at,
                member_id: r.member_id,
                member_name: r.member_name,
                currency: r.currency,
            })
            .collect())
    }

    /// The lines of revenue in `period` in `currency`: of invoices finalized in it and not
    /// void, and of credit notes issued in it (negative).
    pub async fn revenue_lines(
        &self,
        space: &str,
        period: &Period,
        currency: &str,
    ) -> Result<Vec<RevenueLine>, StoreError> {
        let source = "LEFT JOIN billing_charges c ON c.id = l.charge_id LEFT JOIN equipment e ON e.id = c.equipment_id";
        let columns = "l.net_minor, l.tax_minor, l.total_minor, c.equipment_id, e.name AS equipment_name, \
             c.kind AS charge_kind, c.detail";
        let sql = format!(
            "SELECT d.id AS document_id, d.finalized_at AS at, {columns} FROM billing_invoices d \
             JOIN billing_invoice_lines l ON l.invoice_id = d.id {source} \
             WHERE d.makerspace_id = $1 AND d.status = 'finalized' AND d.finalized_at >= $2 AND d.finalized_at < $3 \
             AND d.currency = $4 \
             UNION ALL \
             SELECT d.id AS document_id, d.created_at AS at, {columns} FROM billing_credit_notes d \
             JOIN billing_credit_note_lines l ON l.credit_note_id = d.id {source} \
             WHERE d.makerspace_id = $1 AND d.created_at >= $2 AND d.created_at < $3 AND d.currency = $4 \
             ORDER BY document_id"
        );
        let rows: Vec<RevenueRow> = with_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(space).bind(period.from).bind(period.to).bind(currency)
                .fetch_all(pool).await?
        });
        Ok(rows
            .into_iter()
            .map(|r| RevenueLine {
                material: material_of(r.charge_kind.as_deref(), r.detail.as_deref()),
                machine: r.equipment_id.map(|id| {
                    let name = r.equipment_name.unwrap_or_else(|| id.clone());
                    (id, name)
                }),
                document_id: r.document_id,
                at: r.at,
                net_minor: r.net_minor,
                tax_minor: r.tax_minor,
                total_minor: r.total_minor,
            })
            .collect())
    }
}
