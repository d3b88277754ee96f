//! Pages and sort keys of listings, read the same way everywhere: `page` from 1,
//! `page_size` from 1 to [`MAX_PAGE_SIZE`], `sort` a key with `-` in front for descending.

use serde::Serialize;
use utoipa::ToSchema;

use crate::web::error::ApiError;

/// Largest page of a listing.
pub const MAX_PAGE_SIZE: i64 = 200;
/// The page size when none is asked for.
const DEFAULT_PAGE_SIZE: i64 = 50;

/// A page asked for, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub page: i64,
    pub page_size: i64,
}

impl Page {
    pub fn of(page: Option<i64>, page_size: Option<i64>) -> Result<Page, ApiError> {
        let page = page.unwrap_or(1);
        let page_size = page_size.unwrap_or(DEFAULT_PAGE_SIZE);
        if page < 1 || !(1..=MAX_PAGE_SIZE).contains(&page_size) {
            return Err(ApiError::Validation(format!("page starts at 1; page_size is 1 to {MAX_PAGE_SIZE}")));
        }
        Ok(Page { page, page_size })
    }

    pub fn limit(self) -> i64 {
        self.page_size
    }

    pub fn offset(self) -> i64 {
        (self.page - 1).saturating_mul(self.page_size)
    }

    /// How many pages `total` rows make.
    pub fn pages(self, total: i64) -> i64 {
        (total + self.page_size - 1) / self.page_size
    }
}

/// The paging fields of a listing's answer.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub struct PageInfo {
    pub total: i64,
    pub page: i64,
    pub page_size: i64,
    pub pages: i64,
}

impl PageInfo {
    pub fn new(page: Page, total: i64) -> PageInfo {
        PageInfo { total, page: page.page, page_size: page.page_size, pages: page.pages(total) }
    }
}

/// Reads `sort` (`key` or `-key`) with `parse`, or `default` ascending when absent.
pub fn sort_key<T>(sort: Option<&str>, default: T, parse: impl Fn(&str) -> Option<T>) -> Result<(T, bool), ApiError> {
    match sort {
        None => Ok((default, false)),
        Some(s) => {
            let (descending, key) = s.strip_prefix('-').map_or((false, s), |k| (true, k));
            let key = parse(key).ok_or_else(|| ApiError::Validation(format!("cannot sort by {key:?}")))?;
            Ok((key, descending))
        }
    }
}

/// Trims a search text; blank means none. At most 200 characters.
pub fn search_text(search: Option<String>) -> Result<Option<String>, ApiError> {
    let search = search.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    if search.as_ref().is_some_and(|s| s.chars().count() > 200) {
        return Err(ApiError::Validation("search is at most 200 characters".into()));
    }
    Ok(search)
}
