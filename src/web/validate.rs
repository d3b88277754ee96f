//! Input checks shared by handlers. The checks themselves are the domain's
//! ([`crate::domain::validate`]), so that services and handlers enforce the same rules; an
//! [`Invalid`] becomes a 422 through `From<Invalid> for ApiError`.

pub use crate::domain::validate::{
    check_len, check_object, is_blank, optional_text, settings_section, whole_number, whole_numbers, Invalid, NOT_BLANK,
};
