//! The outermost middleware: gives every request an id, a tracing span and metrics, and turns any
//! error response that is not yet a problem document (router, CORS, payload limits) into one.

use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, web};
use tracing::Instrument;

use crate::error::{PROBLEM_JSON, problem, problem_response};
use crate::metrics::Metrics;

pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The id of the request being handled on this task, if any.
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// The request's id, for handlers that want it.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// A client-chosen id is kept when it is short and plain, so it can be logged safely; otherwise
/// the service makes one.
fn request_id_from(req: &ServiceRequest) -> String {
    req.headers()
        .get(&REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 128
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        })
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string())
}

pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let started = Instant::now();
    let request_id = request_id_from(&req);
    req.extensions_mut().insert(RequestId(request_id.clone()));
    let metrics = req.app_data::<web::Data<Metrics>>().cloned();
    let method = req.method().to_string();
    // The path, never the query string: queries may carry personal data (names, national IDs).
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        method = %method,
        path = %req.path(),
    );

    let id = request_id.clone();
    async move {
        let result = REQUEST_ID.scope(id.clone(), next.call(req)).await;
        // Handlers and our middlewares answer errors as responses; an `Err` here has no request
        // left to answer with, so actix renders it. Count it and pass it on.
        let response = match result {
            Ok(response) => response.map_into_boxed_body(),
            Err(error) => {
                let status = error.as_response_error().status_code();
                if let Some(metrics) = &metrics {
                    metrics.observe(&method, "unmatched", status.as_u16(), started.elapsed());
                }
                tracing::warn!(status = status.as_u16(), error = %error, "request failed");
                return Err(error);
            }
        };
        let mut response = REQUEST_ID.sync_scope(id.clone(), || into_problem(response));
        if let Ok(value) = HeaderValue::from_str(&id) {
            response.headers_mut().insert(REQUEST_ID_HEADER, value);
        }

        let status = response.status();
        let route = response
            .request()
            .match_pattern()
            .unwrap_or_else(|| "unmatched".to_owned());
        let elapsed = started.elapsed();
        if let Some(metrics) = metrics {
            metrics.observe(&method, &route, status.as_u16(), elapsed);
        }
        tracing::info!(
            status = status.as_u16(),
            route = %route,
            latency_ms = elapsed.as_secs_f64() * 1000.0,
            "request finished"
        );
        Ok(response)
    }
    .instrument(span)
    .await
}

/// Rewrites an error response that is not a problem document yet, keeping its status and headers
/// (`Allow`, `Retry-After`, …).
fn into_problem(response: ServiceResponse<BoxBody>) -> ServiceResponse<BoxBody> {
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
        return response;
    }
    let detail = if status.is_server_error() {
        None
    } else {
        response.response().error().map(ToString::to_string)
    };
    let slug = match status {
        StatusCode::NOT_FOUND => "not-found",
        StatusCode::METHOD_NOT_ALLOWED => "method-not-allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "payload-too-large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported-media-type",
        s if s.is_server_error() => "internal",
        _ => "bad-request",
    };
    if status.is_server_error() {
        tracing::error!(
            cause = ?response.response().error().map(ToString::to_string),
            "error response from outside the handlers"
        );
    }
    let (request, old) = response.into_parts();
    let mut new = problem_response(status, &problem(status, slug, detail));
    for (name, value) in old.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            new.headers_mut().insert(name.clone(), value.clone());
        }
    }
    ServiceResponse::new(request, new)
}
