//! Tavana's HTTP API: actix-web application, one module per resource, problem+json errors and the
//! OpenAPI document. Handlers are thin: extract → authorise → call persistence inside
//! `web::block` → map to a response DTO.

// First: its macros are used by the modules below.
#[macro_use]
pub mod conventions;

pub mod api_clients;
pub mod areas;
pub mod assessments;
pub mod audit;
pub mod auth;
pub mod cohorts;
pub mod consents;
pub mod courses;
pub mod dispatcher;
pub mod enrolments;
pub mod error;
pub mod health;
pub mod households;
pub mod idempotency;
pub mod imports;
pub mod loans;
pub mod metrics;
pub mod observe;
pub mod openapi;
pub mod organisations;
pub mod outcomes;
pub mod pagination;
pub mod partners;
pub mod permits;
pub mod persons;
pub mod programmes;
pub mod progress;
pub mod rate_limit;
pub mod research;
pub mod server;
pub mod supporters;
pub mod users;
pub mod webhooks;

use actix_web::web;
use tavana_persistence::{Database, DbConnection, StoreError};

pub use error::ApiError;
pub use server::{Settings, build, check_cors_origin, openapi};

/// What every handler shares.
pub struct AppState {
    pub db: Database,
    /// Signs and checks access tokens.
    pub tokens: auth::jwt::TokenKeys,
    pub login: auth::handlers::LoginPolicy,
    /// Requests per caller per minute; 0 turns the limit off.
    pub rate_limit_per_minute: u32,
    /// Lookups per client address per minute of the public permit verification.
    pub public_rate_limit_per_minute: u32,
    /// Years a home-business permit (and each renewal) is valid.
    pub permit_validity_years: u32,
    /// Where uploaded import files are kept until their job is done.
    pub import_dir: std::path::PathBuf,
    /// Webhook delivery (the URL rule is checked by the handlers).
    pub webhooks: dispatcher::WebhookSettings,
}

/// Runs `work` with a pooled connection on the blocking thread pool, so that database I/O never
/// stalls the async workers.
pub async fn with_db<T, F>(state: &AppState, work: F) -> Result<T, ApiError>
where
    F: FnOnce(&mut DbConnection) -> Result<T, StoreError> + Send + 'static,
    T: Send + 'static,
{
    let db = state.db.clone();
    web::block(move || {
        let mut conn = db.get()?;
        work(&mut conn)
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::from)
}
