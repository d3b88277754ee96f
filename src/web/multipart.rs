//! Reading multipart bodies (file uploads): what a body that cannot be read answers.

use actix_multipart::MultipartError;

use crate::web::error::ApiError;

/// A multipart body that is not one is 415; one that breaks off or is malformed is 400.
pub fn multipart_error(err: MultipartError) -> ApiError {
    match err {
        MultipartError::ContentTypeMissing
        | MultipartError::ContentTypeParse
        | MultipartError::ContentTypeIncompatible
        | MultipartError::BoundaryMissing => {
            ApiError::UnsupportedMediaType("send multipart/form-data with the file in the part `file`".into())
        }
        other => ApiError::BadRequest(format!("the multipart body cannot be read: {other}")),
    }
}
