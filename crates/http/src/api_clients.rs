//! `/api/v1/api-clients`: credentials for partner agencies' machines and import scripts.

use actix_web::http::header;
use actix_web::{HttpResponse, delete, get, post, web};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use tavana_domain::FieldError;
use tavana_domain::id::{ApiClientId, OrganisationId};
use tavana_domain::organisation::{ApiClient, parse_name, parse_scopes};
use tavana_persistence::api_clients::{self, NewApiClient};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::password::{hash_secret, random_secret};
use crate::auth::{Auth, perm};
use crate::error::{ApiError, Problem};
use crate::pagination::{self, Page};
use crate::{AppState, with_db};

pub fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(list)
        .service(create)
        .service(read)
        .service(revoke);
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiClientResponse {
    pub id: Uuid,
    /// Public identifier, sent with the secret in the client-credentials grant.
    pub client_id: String,
    pub name: String,
    pub organisation_id: Uuid,
    #[schema(example = json!(["registry:read", "reports:read"]))]
    pub scopes: Vec<String>,
    /// Last day the client may get tokens: the end of the MoU.
    pub expires_on: NaiveDate,
    pub active: bool,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<ApiClient> for ApiClientResponse {
    fn from(client: ApiClient) -> Self {
        Self {
            id: client.id.as_uuid(),
            client_id: client.client_id,
            name: client.name,
            organisation_id: client.organisation_id.as_uuid(),
            scopes: client
                .scopes
                .iter()
                .map(|s| s.as_str().to_owned())
                .collect(),
            expires_on: client.expires_on,
            active: client.active,
            version: client.version,
            created_at: client.created_at.and_utc(),
            updated_at: client.updated_at.and_utc(),
        }
    }
}

/// The new client and its secret. The secret is shown this once and stored only as a hash.
// Not `Debug`: no log shows a secret.
#[derive(Serialize, ToSchema)]
pub struct CreatedApiClient {
    #[serde(flatten)]
    pub client: ApiClientResponse,
    pub client_secret: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiClientRequest {
    #[schema(example = "Jahad Daneshgahi survey sync")]
    pub name: String,
    pub organisation_id: Uuid,
    /// Any of `registry:read`, `registry:write`, `imports:write`, `reports:read`.
    pub scopes: Vec<String>,
    /// The last day of the MoU; must not be in the past.
    pub expires_on: NaiveDate,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListApiClientsQuery {
    pub organisation_id: Option<Uuid>,
    /// Page size, 1–200 (default 50).
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// List API clients (never their secrets).
#[utoipa::path(
    tag = "api-clients",
    security(("bearer" = [])),
    params(ListApiClientsQuery),
    responses((status = 200, description = "One page of clients", body = Page<ApiClientResponse>)),
)]
#[get("/api-clients")]
pub async fn list(
    _auth: Auth<perm::ApiClientManage>,
    state: web::Data<AppState>,
    query: web::Query<ListApiClientsQuery>,
) -> Result<web::Json<Page<ApiClientResponse>>, ApiError> {
    let query = query.into_inner();
    let limit = pagination::limit(query.limit)?;
    let after: Option<ApiClientId> = query
        .cursor
        .as_deref()
        .map(pagination::decode_cursor)
        .transpose()?;
    let org = query.organisation_id.map(OrganisationId::from);
    let (items, more) = with_db(&state, move |c| api_clients::list(c, org, after, limit)).await?;
    let next_cursor = pagination::next_cursor(more, items.last().map(|c| c.id.to_string()));
    Ok(web::Json(Page {
        items: items.into_iter().map(Into::into).collect(),
        next_cursor,
    }))
}

/// Read one API client.
#[utoipa::path(
    tag = "api-clients",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The client's id")),
    responses(
        (status = 200, description = "The client", body = ApiClientResponse),
        (status = 404, description = "No such client", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[get("/api-clients/{id}")]
pub async fn read(
    _auth: Auth<perm::ApiClientManage>,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<web::Json<ApiClientResponse>, ApiError> {
    let id = ApiClientId::from(id.into_inner());
    let client = with_db(&state, move |c| api_clients::get(c, id)).await?;
    Ok(web::Json(client.into()))
}

/// Create an API client. The answer holds the secret; it cannot be shown again.
#[utoipa::path(
    tag = "api-clients",
    security(("bearer" = [])),
    request_body = CreateApiClientRequest,
    responses(
        (status = 201, description = "Created; keep the secret", body = CreatedApiClient),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[post("/api-clients")]
pub async fn create(
    auth: Auth<perm::ApiClientManage>,
    state: web::Data<AppState>,
    body: web::Json<CreateApiClientRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let name = parse_name("name", &body.name)?;
    let scopes = parse_scopes("scopes", &body.scopes)?;
    if scopes.is_empty() {
        return Err(FieldError::new("scopes", "required", "grant at least one scope").into());
    }
    if body.expires_on < Utc::now().date_naive() {
        return Err(FieldError::new("expires_on", "in_past", "must be today or later").into());
    }
    let secret = random_secret().map_err(ApiError::internal)?;
    let id_bytes = random_secret().map_err(ApiError::internal)?;
    let new = NewApiClient {
        client_id: format!("tvn_{}", &id_bytes[..20]),
        name,
        secret_hash: hash_secret(&secret),
        scopes,
        organisation_id: body.organisation_id.into(),
        expires_on: body.expires_on,
    };
    let context = auth.audit();
    let client = with_db(&state, move |c| api_clients::create(c, &context, new)).await?;
    Ok(HttpResponse::Created()
        .insert_header((
            header::LOCATION,
            format!("/api/v1/api-clients/{}", client.id),
        ))
        .json(CreatedApiClient {
            client: client.into(),
            client_secret: secret,
        }))
}

/// Revoke an API client: it gets no new tokens, and those it holds are refused from now on.
#[utoipa::path(
    tag = "api-clients",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The client's id")),
    responses(
        (status = 200, description = "Revoked", body = ApiClientResponse),
        (status = 404, description = "No such client", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[delete("/api-clients/{id}")]
pub async fn revoke(
    auth: Auth<perm::ApiClientManage>,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<web::Json<ApiClientResponse>, ApiError> {
    let id = ApiClientId::from(id.into_inner());
    let context = auth.audit();
    let client = with_db(&state, move |c| api_clients::revoke(c, &context, id)).await?;
    Ok(web::Json(client.into()))
}
