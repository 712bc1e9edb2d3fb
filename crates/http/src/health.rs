//! Probes and metrics for whoever runs the service.

use actix_web::{HttpResponse, get, web};
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::error::{ApiError, Problem};
use crate::metrics::Metrics;

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok` when the check passed.
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// Liveness: the process is up and answering. Never touches the database.
#[utoipa::path(
    tag = "operations",
    responses((status = 200, description = "The process is alive", body = Health)),
)]
#[get("/live")]
pub async fn live() -> web::Json<Health> {
    web::Json(Health { status: "ok" })
}

/// Readiness: the database answers a round trip. Load balancers should route only to ready
/// replicas.
#[utoipa::path(
    tag = "operations",
    responses(
        (status = 200, description = "Ready to serve", body = Health),
        (status = 503, description = "The database is unreachable", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[get("/ready")]
pub async fn ready(state: web::Data<AppState>) -> Result<web::Json<Health>, ApiError> {
    let db = state.db.clone();
    web::block(move || db.ping())
        .await
        .map_err(ApiError::internal)??;
    Ok(web::Json(Health { status: "ok" }))
}

/// Prometheus metrics in the OpenMetrics text format: requests and latencies per route and status,
/// and the database pool.
#[utoipa::path(
    tag = "operations",
    responses((status = 200, description = "Metrics", body = String, content_type = "application/openmetrics-text")),
)]
#[get("/metrics")]
pub async fn metrics(
    state: web::Data<AppState>,
    metrics: web::Data<Metrics>,
) -> Result<HttpResponse, ApiError> {
    let (connections, idle) = state.db.pool_state();
    let text = metrics
        .render(connections, idle)
        .map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(text))
}
