//! `Idempotency-Key` on creates: the same key with the same body gets the first answer again
//! (with `Idempotent-Replayed: true`) and creates nothing; the same key with another body is a 422.

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderName};
use actix_web::{FromRequest, HttpRequest, HttpResponse};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tavana_persistence::idempotency::{IdempotentRequest, Outcome, StoredResponse};

use crate::auth::{Caller, Principal};
use crate::error::ApiError;

pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
pub const REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// The request's `Idempotency-Key`, if it sent one: 1–255 visible ASCII characters.
#[derive(Debug, Clone)]
pub struct IdempotencyKey(pub Option<String>);

impl FromRequest for IdempotencyKey {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let result = match req.headers().get(&IDEMPOTENCY_KEY) {
            None => Ok(IdempotencyKey(None)),
            Some(value) => value
                .to_str()
                .ok()
                .map(str::trim)
                .filter(|v| (1..=255).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_graphic()))
                .map(|v| IdempotencyKey(Some(v.to_owned())))
                .ok_or_else(|| {
                    ApiError::BadRequest(
                        "Idempotency-Key must be 1–255 visible ASCII characters".to_owned(),
                    )
                }),
        };
        ready(result)
    }
}

impl IdempotencyKey {
    /// What identifies this request: the caller, the key, and a hash of the route and the body.
    pub fn request<B: Serialize>(
        &self,
        caller: &Caller,
        route: &str,
        body: &B,
    ) -> Result<Option<IdempotentRequest>, ApiError> {
        let Some(key) = &self.0 else { return Ok(None) };
        let principal = match &caller.principal {
            Principal::User { id, .. } => format!("user:{id}"),
            Principal::Client { client_id, .. } => format!("client:{client_id}"),
        };
        let body = serde_json::to_vec(body).map_err(ApiError::internal)?;
        let mut hasher = Sha256::new();
        hasher.update(route.as_bytes());
        hasher.update([0]);
        hasher.update(&body);
        Ok(Some(IdempotentRequest {
            principal,
            key: key.clone(),
            request_hash: hex::encode(hasher.finalize()),
        }))
    }
}

/// A 201 answer with its `Location`, rendered so it can also be stored.
pub fn created<T: Serialize>(
    location: String,
    body: &T,
) -> Result<StoredResponse, tavana_persistence::StoreError> {
    Ok(StoredResponse {
        status: 201,
        location: Some(location),
        body: serde_json::to_string(body)
            .map_err(|e| tavana_persistence::StoreError::Internal(e.to_string()))?,
    })
}

/// The HTTP answer of a create run under [`tavana_persistence::idempotency::run`].
pub fn respond<T>(
    outcome: Outcome<T>,
    render: impl FnOnce(&T) -> Result<StoredResponse, tavana_persistence::StoreError>,
) -> Result<HttpResponse, ApiError> {
    let (stored, replayed) = match outcome {
        Outcome::Fresh(value) => (render(&value)?, false),
        Outcome::Replayed(stored) => (stored, true),
    };
    let status = StatusCode::from_u16(stored.status).map_err(ApiError::internal)?;
    let mut response = HttpResponse::build(status);
    response.content_type("application/json");
    if let Some(location) = stored.location {
        response.insert_header((header::LOCATION, location));
    }
    if replayed {
        response.insert_header((REPLAYED, "true"));
    }
    // The created resource's version, as for a read, on the first answer and on replays alike.
    if let Some(version) = serde_json::from_str::<serde_json::Value>(&stored.body)
        .ok()
        .and_then(|body| body.get("version").and_then(serde_json::Value::as_i64))
    {
        response.insert_header(crate::conventions::etag(version));
    }
    Ok(response.body(stored.body))
}
