//! `GET .../billing/export` (the accounting journal as CSV) and `GET .../billing/revenue`
//! (revenue by month, machine or material, as JSON or CSV) over HTTP
//! ([`crate::services::billing_exports`]). Amounts in CSV are decimal text in the currency's
//! unit (`12.50`, JPY `1250`); text cells a spreadsheet would run as formulas are made inert
//! ([`crate::web::csv_io`]).

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::domain::billing::accounting::{AccountingSettings, JournalColumn, TaxAccount};
use crate::domain::billing::journal::{minor_text, JournalRow, Period};
use crate::domain::billing::revenue::{RevenueBy, RevenueRow};
use crate::domain::currency::minor_digits;
use crate::services::billing_exports::{self, RevenueReport};
use crate::web::auth::Caller;
use crate::web::csv_io::{attachment, inert_cell};
use crate::web::error::ApiError;
use crate::web::AppState;

#[derive(OpenApi)]
#[openapi(
    paths(export, revenue),
    components(schemas(
        AccountingSettings,
        TaxAccount,
        JournalColumn,
        RevenueBy,
        RevenueFormat,
        RevenueResponse,
        RevenueRow
    ))
)]
pub struct BillingExportsApi;

/// Registers the routes (inside `/api/v1`).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/makerspaces/{makerspace_id}/billing/export", web::get().to(export))
        .route("/makerspaces/{makerspace_id}/billing/revenue", web::get().to(revenue));
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    /// The period's start, inclusive: a date (`2026-11-01`, midnight UTC) or an RFC 3339
    /// instant [default: the first day of this month].
    #[param(max_length = 40)]
    pub from: Option<String>,
    /// The period's end, exclusive, after `from` and at most 1830 days from it [default: the
    /// first day of next month].
    #[param(max_length = 40)]
    pub to: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/makerspaces/{makerspace_id}/billing/export", tag = "billing",
    params(("makerspace_id" = String, Path), ExportQuery),
    responses((status = 200, description = "The accounting journal of the period as CSV (an attachment): one balanced double entry per finalized invoice, credit note, void, payment and refund dated in it, in the order date, document, line; the columns and accounts of the space's `accounting` settings (see the README's Billing)", content_type = "text/csv", body = String),
              (status = 403, body = crate::web::ErrorBody), (status = 404, body = crate::web::ErrorBody),
              (status = 422, description = "A bound that is no date or RFC 3339 instant, `to` not after `from`, or a period over 1830 days", body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn export(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<String>,
    query: web::Query<ExportQuery>,
) -> Result<HttpResponse, ApiError> {
    let space = path.into_inner();
    let q = query.into_inner();
    let export = billing_exports::journal(&state, &caller, &space, q.from.as_deref(), q.to.as_deref()).await?;
    let columns = &export.settings.accounting.columns;
    let mut out = csv::Writer::from_writer(Vec::new());
    out.write_record(columns.iter().map(|c| c.name())).map_err(|_| ApiError::Internal)?;
    for row in &export.rows {
        out.write_record(columns.iter().map(|c| journal_cell(row, *c))).map_err(|_| ApiError::Internal)?;
    }
    let body = out.into_inner().map_err(|_| ApiError::Internal)?;
    let (from, to) = (Period::bound_text(export.period.from), Period::bound_text(export.period.to));
    Ok(attachment(body, &format!("journal-{space}-{from}-{to}.csv")))
}

/// One cell of a journal row: amounts and dates as they are, text made inert.
fn journal_cell(row: &JournalRow, column: JournalColumn) -> String {
    let text = |value: &str| inert_cell(value).into_owned();
    let amount = |minor: i64| minor_text(minor, minor_digits(&row.currency));
    match column {
        JournalColumn::Date => row.at.format("%Y-%m-%d").to_string(),
        JournalColumn::Journal => text(&row.journal),
        JournalColumn::Account => text(&row.account),
        JournalColumn::DocumentNumber => text(&row.document_number),
        JournalColumn::Label => text(&row.label),
        JournalColumn::Debit => amount(row.debit_minor),
        JournalColumn::Credit => amount(row.credit_minor),
        JournalColumn::Currency => row.currency.clone(),
        JournalColumn::MemberId => text(&row.member_id),
        JournalColumn::MemberName => text(&row.member_name),
        JournalColumn::Entry => row.entry.as_str().to_string(),
    }
}

/// How the revenue is answered (else by the `Accept` header: `text/csv` for CSV).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RevenueFormat {
    Json,
    Csv,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RevenueQuery {
    /// As the export's: a date or an RFC 3339 instant, inclusive [default: the first day of
    /// this month].
    #[param(max_length = 40)]
    pub from: Option<String>,
    /// Exclusive, after `from`, at most 1830 days from it [default: the first day of next month].
    #[param(max_length = 40)]
    pub to: Option<String>,
    /// [default: month]
    pub by: Option<RevenueBy>,
    /// `csv` or `json`; without it, CSV when `Accept` names `text/csv`.
    pub format: Option<RevenueFormat>,
}

/// Revenue of a period: finalized invoices (not void) less credit notes, per group.
#[derive(Debug, Serialize, ToSchema)]
pub struct RevenueResponse {
    /// ISO 4217, the space's; documents in another currency are not counted.
    #[schema(pattern = "^[A-Z]{3}$")]
    pub currency: String,
    /// In key order; lines without a machine or material last, with key null and label `unknown`.
    pub rows: Vec<RevenueRow>,
}

const REVENUE_COLUMNS: [&str; 7] = ["key", "label", "net_minor", "tax_minor", "total_minor", "documents", "currency"];

fn revenue_csv(report: &RevenueReport) -> Result<Vec<u8>, ApiError> {
    let mut out = csv::Writer::from_writer(Vec::new());
    out.write_record(REVENUE_COLUMNS).map_err(|_| ApiError::Internal)?;
    for r in &report.rows {
        let cells = [
            inert_cell(r.key.as_deref().unwrap_or_default()).into_owned(),
            inert_cell(&r.label).into_owned(),
            r.net_minor.to_string(),
            r.tax_minor.to_string(),
            r.total_minor.to_string(),
            r.documents.to_string(),
            report.currency.clone(),
        ];
        out.write_record(cells).map_err(|_| ApiError::Internal)?;
    }
    out.into_inner().map_err(|_| ApiError::Internal)
}

#[utoipa::path(get, path = "/api/v1/makerspaces/{makerspace_id}/billing/revenue", tag = "billing",
    params(("makerspace_id" = String, Path), RevenueQuery),
    responses((status = 200, description = "Revenue of the period per month, machine or material: as JSON, or as CSV (an attachment, columns key, label, net_minor, tax_minor, total_minor, documents, currency) with `format=csv` or `Accept: text/csv`",
               content((RevenueResponse = "application/json"), (String = "text/csv"))),
              (status = 403, body = crate::web::ErrorBody), (status = 404, body = crate::web::ErrorBody),
              (status = 422, description = "A bound that is no date or RFC 3339 instant, `to` not after `from`, or a period over 1830 days", body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn revenue(
    req: HttpRequest,
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<String>,
    query: web::Query<RevenueQuery>,
) -> Result<HttpResponse, ApiError> {
    let space = path.into_inner();
    let q = query.into_inner();
    let by = q.by.unwrap_or(RevenueBy::Month);
    let report = billing_exports::revenue(&state, &caller, &space, q.from.as_deref(), q.to.as_deref(), by).await?;
    let wants_csv = match q.format {
        Some(format) => format == RevenueFormat::Csv,
        None => req
            .headers()
            .get("accept")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|accept| accept.to_ascii_lowercase().contains("text/csv")),
    };
    if wants_csv {
        let (from, to) = (Period::bound_text(report.period.from), Period::bound_text(report.period.to));
        let by = serde_json::to_value(by).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
        return Ok(attachment(revenue_csv(&report)?, &format!("revenue-{space}-{by}-{from}-{to}.csv")));
    }
    Ok(HttpResponse::Ok().json(RevenueResponse { currency: report.currency, rows: report.rows }))
}
