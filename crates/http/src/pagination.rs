//! Cursor pagination: `limit` (1–200, default 50) and an opaque `cursor`; answers are
//! `{items, next_cursor}`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ApiError;

pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 200;

/// One page of a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T: ToSchema> {
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// The page size asked for, checked against the bounds.
pub fn limit(requested: Option<u32>) -> Result<usize, ApiError> {
    match requested.unwrap_or(DEFAULT_LIMIT) {
        n @ 1..=MAX_LIMIT => Ok(n as usize),
        n => Err(ApiError::BadRequest(format!(
            "limit must be between 1 and {MAX_LIMIT}, not {n}"
        ))),
    }
}

/// Cursors wrap the last key of a page; clients must treat them as opaque.
pub fn encode_cursor(key: &str) -> String {
    URL_SAFE_NO_PAD.encode(key)
}

/// The cursor of the page after this one, when there is one.
pub fn next_cursor(more: bool, last_key: Option<String>) -> Option<String> {
    if more {
        last_key.map(|key| encode_cursor(&key))
    } else {
        None
    }
}

pub fn decode_cursor<K: std::str::FromStr>(cursor: &str) -> Result<K, ApiError> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|key| key.parse().ok())
        .ok_or_else(|| ApiError::BadRequest("invalid cursor".to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_defaults_and_bounds() {
        assert_eq!(limit(None).ok(), Some(50));
        assert_eq!(limit(Some(200)).ok(), Some(200));
        assert!(limit(Some(0)).is_err());
        assert!(limit(Some(201)).is_err());
    }

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let key = "0193a1f2-7c1e-7b4a-9d7e-3f1c2b4a5d6e";
        let decoded: uuid::Uuid = decode_cursor(&encode_cursor(key)).expect("round trip");
        assert_eq!(decoded.to_string(), key);
        assert!(decode_cursor::<uuid::Uuid>("not a cursor!").is_err());
        assert!(decode_cursor::<uuid::Uuid>(&encode_cursor("x")).is_err());
    }
}
