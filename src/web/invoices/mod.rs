//! `/api/v1/makerspaces/{id}/billing/invoices` and `.../billing/integrity`: invoices, their
//! payments and credit notes, and the integrity chain over HTTP
//! ([`crate::services::billing_invoices`], [`crate::services::billing_settlement`]).
//!
//! Layout: `drafts` (make, list, read, change and finalize invoices), `settlement`
//! (payments, voiding, credit notes, the integrity check), `pdf` (an invoice as a PDF),
//! `shapes` (the answers' bodies).
//! Money writes take an `Idempotency-Key` header, as the rest of billing.

use actix_web::web;
use utoipa::OpenApi;

mod drafts;
mod pdf;
mod settlement;
mod shapes;

use crate::domain::billing::documents::TaxTotal;
use crate::services::billing_invoices::InvoiceRequest;
use crate::services::billing_runs::{RunReport, RunRequest};
use crate::services::billing_settlement::{CreditNoteRequest, PaymentMethod, PaymentRequest, RefundTo, VoidRequest};
use shapes::{
    BrokenDocument, CreditNoteResponse, IntegrityResponse, InvoicePage, InvoicePaymentStatus, InvoiceResponse,
    InvoiceStatus, InvoiceSummary, LineResponse, PaymentResponse,
};

#[derive(OpenApi)]
#[openapi(
    paths(
        drafts::create,
        drafts::list,
        drafts::get,
        pdf::pdf,
        drafts::remove_line,
        drafts::finalize,
        drafts::run,
        settlement::pay,
        settlement::void,
        settlement::credit_note,
        settlement::integrity
    ),
    components(schemas(
        InvoiceRequest,
        InvoiceStatus,
        InvoicePaymentStatus,
        InvoiceSummary,
        InvoiceResponse,
        InvoicePage,
        LineResponse,
        TaxTotal,
        PaymentRequest,
        PaymentMethod,
        PaymentResponse,
        VoidRequest,
        CreditNoteRequest,
        RefundTo,
        CreditNoteResponse,
        IntegrityResponse,
        BrokenDocument,
        RunRequest,
        RunReport,
        pdf::PdfFile
    ))
)]
pub struct InvoicesApi;

/// Registers the routes (inside `/api/v1`).
pub fn routes(cfg: &mut web::ServiceConfig) {
    let base = "/makerspaces/{makerspace_id}/billing/invoices";
    cfg.service(web::resource(base).route(web::get().to(drafts::list)).route(web::post().to(drafts::create)))
        // Before `{invoice_id}`, which would take `{id}.pdf` as an id.
        .route(&format!("{base}/{{invoice_id}}.pdf"), web::get().to(pdf::pdf))
        .route(&format!("{base}/{{invoice_id}}"), web::get().to(drafts::get))
        .route(&format!("{base}/{{invoice_id}}/lines/{{charge_id}}/remove"), web::post().to(drafts::remove_line))
        .route(&format!("{base}/{{invoice_id}}/finalize"), web::post().to(drafts::finalize))
        .route(&format!("{base}/{{invoice_id}}/payments"), web::post().to(settlement::pay))
        .route(&format!("{base}/{{invoice_id}}/void"), web::post().to(settlement::void))
        .route(&format!("{base}/{{invoice_id}}/credit-notes"), web::post().to(settlement::credit_note))
        .route("/makerspaces/{makerspace_id}/billing/integrity", web::get().to(settlement::integrity))
        .route("/makerspaces/{makerspace_id}/billing/runs", web::post().to(drafts::run));
}
