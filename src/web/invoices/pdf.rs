//! An invoice as a PDF download.

use actix_web::http::header::{ContentDisposition, DispositionParam, DispositionType};
use actix_web::{web, HttpResponse};
use utoipa::ToSchema;

use crate::services::billing_pdf;
use crate::web::auth::Caller;
use crate::web::error::ApiError;
use crate::web::AppState;

/// A PDF file's bytes, as the OpenAPI document names them (a binary string, not JSON).
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct PdfFile(pub Vec<u8>);

#[utoipa::path(get, path = "/api/v1/makerspaces/{makerspace_id}/billing/invoices/{invoice_id}.pdf", tag = "billing",
    params(("makerspace_id" = String, Path), ("invoice_id" = String, Path)),
    responses((status = 200, description = "The invoice as a PDF (A4), downloaded as `{number}.pdf` or `draft-{id}.pdf`: \
                 its number, dates, lines, tax per rate, totals, credit notes and payments; a finalized invoice as frozen, \
                 a draft marked DRAFT, a void one VOID",
               content_type = "application/pdf", body = PdfFile,
               headers(("Content-Disposition" = String, description = "attachment; filename=\"INV-2026-00001.pdf\""))),
              (status = 403, body = crate::web::ErrorBody),
              (status = 404, description = "No such invoice, or another member's", body = crate::web::ErrorBody)),
    security(("bearer" = [])))]
pub async fn pdf(
    state: web::Data<AppState>,
    Caller(caller): Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (space, id) = path.into_inner();
    let pdf = billing_pdf::invoice_pdf(&state, &caller, &space, &id).await?;
    let disposition = ContentDisposition {
        disposition: DispositionType::Attachment,
        parameters: vec![DispositionParam::Filename(pdf.file_name)],
    };
    let file = PdfFile(pdf.bytes);
    Ok(HttpResponse::Ok().content_type("application/pdf").insert_header(disposition).body(file.0))
}
