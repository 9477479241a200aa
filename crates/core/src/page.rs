//! Cursor pagination: a page of items and an opaque cursor that continues after the last one.
//! Cursors encode the sort key of the last item, so pages stay stable while rows are inserted.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::problem::{FieldError, Problem};

/// Default number of items in a page.
pub const DEFAULT_LIMIT: u32 = 50;
/// Largest page a client may ask for.
pub const MAX_LIMIT: u32 = 500;

/// A page of results.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Page<T> {
    /// The items, in the order of the listing.
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// The opaque position after which a listing continues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor(pub String);

impl Cursor {
    /// Encodes a sort key as an opaque cursor.
    pub fn encode(key: &str) -> String {
        URL_SAFE_NO_PAD.encode(key.as_bytes())
    }

    /// Decodes a client-supplied cursor; garbage is a 400-class validation problem, not a 500.
    pub fn parse(raw: &str) -> Result<Self, Problem> {
        let bad = || Problem::validation(vec![FieldError::new("cursor", "is not a cursor returned by this listing")]);
        let bytes = URL_SAFE_NO_PAD.decode(raw.as_bytes()).map_err(|_| bad())?;
        let key = String::from_utf8(bytes).map_err(|_| bad())?;
        if key.is_empty() || key.len() > 512 || key.contains('\0') {
            return Err(bad());
        }
        Ok(Self(key))
    }
}

/// A validated page size (1..=500).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "u32")]
pub struct Limit(u32);

impl Default for Limit {
    fn default() -> Self {
        Self(DEFAULT_LIMIT)
    }
}

impl TryFrom<u32> for Limit {
    type Error = String;
    fn try_from(n: u32) -> Result<Self, String> {
        if (1..=MAX_LIMIT).contains(&n) { Ok(Self(n)) } else { Err(format!("limit must be between 1 and {MAX_LIMIT}")) }
    }
}

impl Limit {
    /// The page size.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` fetched rows: the extra row only says there is more.
    pub fn from_rows(mut rows: Vec<T>, limit: Limit, key: impl Fn(&T) -> String) -> Self {
        let more = rows.len() > limit.get() as usize;
        rows.truncate(limit.get() as usize);
        let next_cursor = if more { rows.last().map(|r| Cursor::encode(&key(r))) } else { None };
        Self { items: rows, next_cursor }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        let c = Cursor::encode("prd_01abc");
        assert_eq!(Cursor::parse(&c).unwrap().0, "prd_01abc");
        assert!(Cursor::parse("!!!").is_err());
        assert!(Cursor::parse("").is_err());
    }

    #[test]
    fn page_reports_more_only_when_an_extra_row_was_fetched() {
        let limit = Limit::try_from(2).unwrap();
        let p = Page::from_rows(vec![1, 2, 3], limit, |n| n.to_string());
        assert_eq!(p.items, vec![1, 2]);
        assert_eq!(Cursor::parse(p.next_cursor.as_deref().unwrap()).unwrap().0, "2");
        let p = Page::from_rows(vec![1, 2], limit, |n| n.to_string());
        assert!(p.next_cursor.is_none());
        assert!(Limit::try_from(0).is_err() && Limit::try_from(501).is_err());
    }
}
