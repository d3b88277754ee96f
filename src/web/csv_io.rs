//! What every CSV export and import shares: cells a spreadsheet would run as formulas are
//! written as text and read back as they were; an import is `text/csv` of a bounded size (415,
//! 413 before anything is parsed) and rows (422 before anything is stored), with a known
//! header; an export is an attachment.

use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;

use crate::web::error::ApiError;

/// Most rows one import may carry (with the byte limit, keeps one request bounded).
const MAX_ROWS: usize = 10_000;

/// The first characters that make a spreadsheet read a cell as a formula (`=`, `+`, `-`, `@`)
/// or that some spreadsheets strip before doing so (a tab, a carriage return).
const FORMULA_STARTS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// Whether a cell, once the `'`s before it are taken away, starts like a formula. A text that
/// itself starts with `'` before such a character is escaped too, so that reading a cell back
/// ([`imported_cell`]) is the exact inverse of writing it ([`inert_cell`]).
fn formula_like(cell: &str) -> bool {
    cell.trim_start_matches('\'').starts_with(FORMULA_STARTS)
}

/// A text cell as an export writes it: text that a spreadsheet would take for a formula (CSV
/// injection) gets a leading `'`, which spreadsheets show as text and do not display.
pub fn inert_cell(cell: &str) -> std::borrow::Cow<'_, str> {
    if formula_like(cell) {
        format!("'{cell}").into()
    } else {
        cell.into()
    }
}

/// A cell as an import reads it: the `'` that an export put before a formula-like text is
/// removed again, so that an exported file imports as what was exported.
fn imported_cell(cell: &str) -> &str {
    match cell.strip_prefix('\'') {
        Some(rest) if formula_like(rest) => rest,
        _ => cell,
    }
}

/// An import file, read whole before anything of it is stored (so that a file over the row
/// limit stores nothing): its lower-cased column names, and each row with its line.
pub struct ImportFile {
    pub headers: Vec<String>,
    pub rows: Vec<(u64, Result<csv::StringRecord, csv::Error>)>,
}

impl ImportFile {
    /// Reads an import: `text/csv` (415 otherwise) of at most `limit` bytes (413 beyond, read
    /// no further), whose header names only `known` columns and every `required` one, of at
    /// most [`MAX_ROWS`] rows (422 otherwise). Cells are trimmed.
    pub async fn read(
        req: &HttpRequest,
        payload: web::Payload,
        limit: usize,
        what: &str,
        known: &[&str],
        required: &[&str],
    ) -> Result<ImportFile, ApiError> {
        let content_type = req.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
        if !content_type.starts_with("text/csv") {
            return Err(ApiError::UnsupportedMediaType(format!("send the {what} as text/csv")));
        }
        let body = read_limited(payload, limit).await?;
        let mut reader = csv::ReaderBuilder::new().flexible(false).trim(csv::Trim::All).from_reader(body.as_slice());
        let headers = header_of(&mut reader, known, required)?;
        let rows: Vec<_> = reader
            .records()
            .enumerate()
            .map(|(index, record)| {
                let position = match &record {
                    Ok(r) => r.position(),
                    Err(e) => e.position(),
                };
                // The header is line 1; a quoted cell may span lines, which the position counts.
                (position.map_or(index as u64 + 2, |p| p.line()), record)
            })
            .collect();
        if rows.len() > MAX_ROWS {
            return Err(ApiError::Validation(format!("at most {MAX_ROWS} rows per import")));
        }
        Ok(ImportFile { headers, rows })
    }

    /// A row's cell by column name, with the export's `'` before formula-like text removed
    /// (empty when the file has no such column).
    pub fn cell<'r>(&self, record: &'r csv::StringRecord, column: &str) -> &'r str {
        let cell = self.headers.iter().position(|h| h == column).and_then(|i| record.get(i)).unwrap_or_default();
        imported_cell(cell)
    }
}

/// Reads the body up to `limit` bytes (413 beyond, before anything is parsed or stored).
pub(crate) async fn read_limited(mut payload: web::Payload, limit: usize) -> Result<Vec<u8>, ApiError> {
    let mut body = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| ApiError::BadRequest("the body could not be read".into()))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The lower-cased names of an import's header row; each must be one of `known` and the
/// `required` ones must be there (422 otherwise).
fn header_of<R: std::io::Read>(
    reader: &mut csv::Reader<R>,
    known: &[&str],
    required: &[&str],
) -> Result<Vec<String>, ApiError> {
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| ApiError::Validation(format!("the header row cannot be read: {e}")))?
        .iter()
        .map(|h| h.to_ascii_lowercase())
        .collect();
    for column in required {
        if !headers.iter().any(|h| h == column) {
            return Err(ApiError::Validation(format!("the header row must name the column {column:?}")));
        }
    }
    if let Some(unknown) = headers.iter().find(|h| !known.contains(&h.as_str())) {
        return Err(ApiError::Validation(format!("unknown column {unknown:?}; columns are {}", known.join(", "))));
    }
    Ok(headers)
}

/// An export's file, for a browser to save as `filename`.
pub fn attachment(body: Vec<u8>, filename: &str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header(("Content-Disposition", format!("attachment; filename=\"{filename}\"")))
        .body(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_like_cells_are_exported_as_text_and_imported_back() {
        for cell in ["=HYPERLINK(\"http://x\")", "+1 555 0100", "-2+3", "@SUM(A1)", "\tx", "\r=1", "'=1", "''@x"] {
            let exported = inert_cell(cell);
            assert_eq!(exported, format!("'{cell}"));
            assert_eq!(imported_cell(&exported), cell);
        }
        for cell in ["Ada", "", "'quoted'", "a=b", "ada@example.org", "'", "''"] {
            assert_eq!(inert_cell(cell), cell);
            assert_eq!(imported_cell(cell), cell);
        }
    }
}
