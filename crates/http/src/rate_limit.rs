//! The general rate limit: at most N requests per caller per minute, counted in the database so
//! that all replicas share the count. A caller is the token's subject when a valid access token is
//! sent, otherwise the client address. Probes and metrics are never limited.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::web;
use chrono::{DurationRound, TimeDelta, Utc};
use tavana_persistence::rate_limits;

use crate::auth::handlers::client_address;
use crate::error::ApiError;
use crate::{AppState, with_db};

fn caller_key(req: &ServiceRequest, state: &AppState) -> String {
    let subject = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(crate::auth::bearer_token)
        .and_then(|token| state.tokens.verify(token).ok())
        .map(|claims| claims.sub);
    match subject {
        Some(sub) => format!("sub:{sub}"),
        None => format!("ip:{}", client_address(state, req.request())),
    }
}

/// Counts one request of `key` in the current minute; 429 (with the seconds to wait) beyond
/// `limit`.
pub async fn check(state: &AppState, key: String, limit: u32) -> Result<(), ApiError> {
    let now = Utc::now().naive_utc();
    let window = TimeDelta::minutes(1);
    let window_start = now.duration_trunc(window).unwrap_or(now);
    let hits = with_db(state, move |c| rate_limits::hit(c, &key, window_start)).await?;
    if hits > i64::from(limit) {
        let retry = (window_start + window - now).num_seconds().max(1);
        return Err(ApiError::TooManyRequests(retry.unsigned_abs()));
    }
    Ok(())
}

pub async fn rate_limit(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let limit = state.as_ref().map_or(0, |s| s.rate_limit_per_minute);
    let exempt = req.path().starts_with("/health/") || req.path() == "/metrics";
    let Some(state) = state.filter(|_| limit > 0 && !exempt) else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_boxed_body);
    };
    let key = caller_key(&req, &state);
    match check(&state, key, limit).await {
        Err(ApiError::TooManyRequests(retry)) => {
            return Ok(req.error_response(ApiError::TooManyRequests(retry)));
        }
        Ok(()) => {}
        // Fail open: an unreachable database answers 503 on its own where it matters.
        Err(error) => tracing::warn!(error = %error, "rate limit not checked"),
    }
    next.call(req)
        .await
        .map(ServiceResponse::map_into_boxed_body)
}
