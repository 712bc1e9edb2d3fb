//! The one error type of the API and its RFC 9457 `application/problem+json` rendering.
//!
//! Every failure — a handler's, an extractor's, the router's, a middleware's — leaves the service
//! as a [`Problem`]. A 500 or 503 logs its cause and tells the client only the request id.

use actix_web::error::{JsonPayloadError, PathError, PayloadError, QueryPayloadError};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use serde::Serialize;
use tavana_domain::{FieldError, ValidationErrors};
use tavana_persistence::StoreError;
use utoipa::ToSchema;

use crate::observe::current_request_id;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// An RFC 9457 problem document.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "type": "urn:tavana:problem:validation",
    "title": "Unprocessable Content",
    "status": 422,
    "detail": "the request has 1 invalid field",
    "request_id": "0193a1f2-7c1e-7b4a-9d7e-3f1c2b4a5d6e",
    "errors": [{"field": "code", "code": "format", "message": "may hold only Latin letters, digits and hyphens"}]
}))]
pub struct Problem {
    /// A URI naming the kind of problem; stable, for programs to branch on.
    #[serde(rename = "type")]
    pub kind: String,
    /// The status's short, human-readable summary.
    pub title: String,
    pub status: u16,
    /// What went wrong with this request, for people. Absent on 500.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The id of the request, also sent as `X-Request-Id`; quote it when reporting a problem.
    pub request_id: String,
    /// Each broken input rule, on 422.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<ProblemField>,
    /// On a 409 because the record exists already: the existing record's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub existing_id: Option<String>,
    /// On a 409 for a state change the rules forbid: the changes that are allowed now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed: Option<Vec<String>>,
    /// On a 409 because the funds do not cover the amount: the balance, in rials.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub balance: Option<i64>,
}

/// One invalid input field.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProblemField {
    /// The field's name, as in the request (`body` when the body as a whole is wrong).
    pub field: String,
    /// A stable, machine-readable code such as `required`, `length` or `format`.
    pub code: String,
    pub message: String,
}

impl From<FieldError> for ProblemField {
    fn from(error: FieldError) -> Self {
        Self {
            field: error.field,
            code: error.code.to_owned(),
            message: error.message,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Malformed request: bad JSON syntax, bad query string, bad path segment.
    #[error("{0}")]
    BadRequest(String),
    /// Well-formed but invalid input.
    #[error("the request has invalid fields")]
    Validation(Vec<ProblemField>),
    /// No valid credentials. Answered with `WWW-Authenticate: Bearer`.
    #[error("{0}")]
    Unauthorized(String),
    /// Authenticated, but the caller's role or scopes do not allow the action.
    #[error("{0}")]
    Forbidden(String),
    /// `If-Match` names a version that is no longer current.
    #[error("the resource changed: it is now at version {0}")]
    PreconditionFailed(i64),
    /// Too many attempts; retry after the given number of seconds.
    #[error("too many attempts; retry in {0} seconds")]
    TooManyRequests(u64),
    /// No such resource, or one outside the caller's scope.
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("{0}")]
    Conflict(String),
    /// A state change the rules forbid now; the answer lists the allowed ones.
    #[error("{message}")]
    NotAllowed {
        message: String,
        allowed: Vec<String>,
    },
    /// The money is not there: the answer gives the balance.
    #[error("the balance is {balance} rials; {amount} rials cannot be spent")]
    Overdraft { balance: i64, amount: i64 },
    /// The record exists already: the answer names it.
    #[error("{message}")]
    Exists {
        message: String,
        existing_id: String,
    },
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The database is unreachable. The cause is logged, not shown.
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// The server's disk is full: nothing of the request was kept. The cause is logged, not
    /// shown; it needs an operator, so it is not a 503 a client would retry in seconds.
    #[error("insufficient storage: {0}")]
    InsufficientStorage(String),
    /// A bug or a broken dependency. The cause is logged, not shown.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        ApiError::Internal(cause.to_string())
    }

    fn slug(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad-request",
            ApiError::Validation(_) => "validation",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::PreconditionFailed(_) => "precondition-failed",
            ApiError::TooManyRequests(_) => "too-many-requests",
            ApiError::NotFound => "not-found",
            ApiError::MethodNotAllowed => "method-not-allowed",
            ApiError::Conflict(_) => "conflict",
            ApiError::Exists { .. } => "exists",
            ApiError::Overdraft { .. } => "insufficient-funds",
            ApiError::NotAllowed { .. } => "transition-not-allowed",
            ApiError::PayloadTooLarge(_) => "payload-too-large",
            ApiError::UnsupportedMediaType(_) => "unsupported-media-type",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::InsufficientStorage(_) => "insufficient-storage",
            ApiError::Internal(_) => "internal",
        }
    }

    fn detail(&self) -> Option<String> {
        match self {
            ApiError::Validation(errors) => Some(match errors.len() {
                1 => "the request has 1 invalid field".to_owned(),
                n => format!("the request has {n} invalid fields"),
            }),
            ApiError::NotFound => Some("no such resource".to_owned()),
            ApiError::MethodNotAllowed => {
                Some("this resource does not support the request's method".to_owned())
            }
            ApiError::Unavailable(_) => Some("the database is unavailable; retry later".to_owned()),
            ApiError::InsufficientStorage(_) => Some(
                "the server has no room to keep the file now; nothing was kept or imported"
                    .to_owned(),
            ),
            ApiError::Internal(_) => None,
            other => Some(other.to_string()),
        }
    }
}

/// The problem document for `status`, with the current request's id.
pub fn problem(status: StatusCode, slug: &str, detail: Option<String>) -> Problem {
    Problem {
        kind: format!("urn:tavana:problem:{slug}"),
        title: status.canonical_reason().unwrap_or("Error").to_owned(),
        status: status.as_u16(),
        detail,
        request_id: current_request_id().unwrap_or_default(),
        errors: Vec::new(),
        existing_id: None,
        allowed: None,
        balance: None,
    }
}

pub fn problem_response(status: StatusCode, body: &Problem) -> HttpResponse {
    let mut response = HttpResponse::build(status);
    response.insert_header((header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON)));
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response.insert_header((header::RETRY_AFTER, HeaderValue::from_static("5")));
    }
    match serde_json::to_vec(body) {
        Ok(bytes) => response.body(bytes),
        Err(_) => response.finish(),
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            ApiError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_)
            | ApiError::Exists { .. }
            | ApiError::NotAllowed { .. }
            | ApiError::Overdraft { .. } => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::InsufficientStorage(_) => StatusCode::INSUFFICIENT_STORAGE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            ApiError::Internal(cause) => tracing::error!(cause = %cause, "internal error"),
            ApiError::InsufficientStorage(cause) => {
                tracing::error!(cause = %cause, "no room on disk")
            }
            ApiError::Unavailable(cause) => tracing::warn!(cause = %cause, "database unavailable"),
            _ => {}
        }
        let status = self.status_code();
        let mut body = problem(status, self.slug(), self.detail());
        if let ApiError::NotAllowed { allowed, .. } = self {
            body.allowed = Some(allowed.clone());
        }
        if let ApiError::Exists { existing_id, .. } = self {
            body.existing_id = Some(existing_id.clone());
        }
        if let ApiError::Overdraft { balance, .. } = self {
            body.balance = Some(*balance);
        }
        if let ApiError::Validation(errors) = self {
            body.errors = errors
                .iter()
                .map(|e| ProblemField {
                    field: e.field.clone(),
                    code: e.code.clone(),
                    message: e.message.clone(),
                })
                .collect();
        }
        let mut response = problem_response(status, &body);
        match self {
            ApiError::Unauthorized(_) => {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"tavana\""),
                );
            }
            ApiError::TooManyRequests(seconds) => {
                if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
                    response.headers_mut().insert(header::RETRY_AFTER, value);
                }
            }
            _ => {}
        }
        response
    }
}

impl From<ValidationErrors> for ApiError {
    fn from(errors: ValidationErrors) -> Self {
        ApiError::Validation(errors.0.into_iter().map(ProblemField::from).collect())
    }
}

impl From<FieldError> for ApiError {
    fn from(error: FieldError) -> Self {
        ApiError::Validation(vec![error.into()])
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound => ApiError::NotFound,
            StoreError::Conflict(message) => ApiError::Conflict(message),
            StoreError::Forbidden(message) => ApiError::Forbidden(message),
            StoreError::Overdraft { balance, amount } => ApiError::Overdraft { balance, amount },
            StoreError::Exists { message, existing } => ApiError::Exists {
                message,
                existing_id: existing,
            },
            StoreError::VersionMismatch { current } => ApiError::PreconditionFailed(current),
            StoreError::Invalid(errors) => errors.into(),
            StoreError::Unavailable(cause) => ApiError::Unavailable(cause),
            StoreError::Internal(cause) => ApiError::Internal(cause),
        }
    }
}

/// Maps actix's JSON extractor failures: broken syntax is 400, well-formed JSON of the wrong shape
/// is 422, an oversized body 413, a wrong content type 415.
pub fn json_error(error: JsonPayloadError, _req: &HttpRequest) -> actix_web::Error {
    let api = match error {
        JsonPayloadError::OverflowKnownLength { limit, .. }
        | JsonPayloadError::Overflow { limit } => {
            ApiError::PayloadTooLarge(format!("the body is larger than {limit} bytes"))
        }
        JsonPayloadError::ContentType => {
            ApiError::UnsupportedMediaType("send the body as application/json".to_owned())
        }
        JsonPayloadError::Deserialize(e) if e.is_data() => {
            ApiError::Validation(vec![ProblemField {
                field: "body".to_owned(),
                code: "invalid_type".to_owned(),
                message: e.to_string(),
            }])
        }
        JsonPayloadError::Deserialize(e) => ApiError::BadRequest(format!("malformed JSON: {e}")),
        JsonPayloadError::Payload(PayloadError::Overflow) => {
            ApiError::PayloadTooLarge("the body is too large".to_owned())
        }
        JsonPayloadError::Payload(e) => ApiError::BadRequest(format!("cannot read the body: {e}")),
        other => ApiError::BadRequest(other.to_string()),
    };
    api.into()
}

pub fn query_error(error: QueryPayloadError, _req: &HttpRequest) -> actix_web::Error {
    ApiError::BadRequest(format!("invalid query string: {error}")).into()
}

pub fn path_error(error: PathError, _req: &HttpRequest) -> actix_web::Error {
    ApiError::BadRequest(format!("invalid path: {error}")).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::to_bytes;

    async fn body_of(error: ApiError) -> (StatusCode, serde_json::Value) {
        let response = error.error_response();
        let status = response.status();
        let bytes = to_bytes(response.into_body()).await.expect("body");
        (
            status,
            serde_json::from_slice(&bytes).expect("problem json"),
        )
    }

    #[actix_web::test]
    async fn internal_errors_hide_their_cause() {
        let (status, body) = body_of(ApiError::internal("password=hunter2 at db.rs:42")).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!body.to_string().contains("hunter2"), "{body}");
        assert!(body.get("detail").is_none());
        assert_eq!(body["type"], "urn:tavana:problem:internal");
    }

    #[actix_web::test]
    async fn unavailable_hides_its_cause_and_asks_to_retry() {
        let response =
            ApiError::Unavailable("connection refused to 10.0.0.5".into()).error_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(response.headers().contains_key(header::RETRY_AFTER));
        let bytes = to_bytes(response.into_body()).await.expect("body");
        assert!(!String::from_utf8_lossy(&bytes).contains("10.0.0.5"));
    }

    #[actix_web::test]
    async fn validation_lists_fields() {
        let errors = ValidationErrors(vec![FieldError::new("code", "format", "bad")]);
        let (status, body) = body_of(errors.into()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(body["errors"][0]["field"], "code");
        assert_eq!(body["errors"][0]["code"], "format");
    }
}
