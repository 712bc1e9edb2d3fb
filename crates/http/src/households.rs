//! `/api/v1/households`: households in the neighbourhoods the caller works in.

use actix_web::{HttpRequest, HttpResponse, get, patch, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tavana_domain::household::{Address, Household, NewHousehold, parse_postal_code};
use tavana_domain::id::{AreaId, HouseholdId};
use tavana_domain::text::normalise;
use tavana_persistence::households::{self, HouseholdChanges, HouseholdFilter};
use tavana_persistence::{DbConnection, StoreError, idempotency};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::{Auth, Caller, perm};
use crate::conventions::{etag, if_match};
use crate::error::{ApiError, Problem};
use crate::idempotency::{IdempotencyKey, created, respond};
use crate::pagination::{self, Page};
use crate::{AppState, with_db};

pub fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(list)
        .service(create)
        .service(read)
        .service(update);
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HouseholdResponse {
    pub id: Uuid,
    pub neighbourhood_id: Uuid,
    /// As written.
    #[schema(example = "کوی طلاب، خیابان ۱۲، پلاک ۳")]
    pub address: String,
    #[schema(example = "9177948974")]
    pub postal_code: Option<String>,
    /// Send it back in `If-Match` to update.
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Household> for HouseholdResponse {
    fn from(household: Household) -> Self {
        Self {
            id: household.id.as_uuid(),
            neighbourhood_id: household.neighbourhood_id.as_uuid(),
            address: household.address,
            postal_code: household.postal_code,
            version: household.version,
            created_at: household.created_at.and_utc(),
            updated_at: household.updated_at.and_utc(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateHouseholdRequest {
    /// A neighbourhood the caller works in.
    pub neighbourhood_id: Uuid,
    pub address: String,
    /// Ten digits, any digit script.
    pub postal_code: Option<String>,
}

/// Fields to change; absent fields stay. `postal_code: null` clears it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateHouseholdRequest {
    pub address: Option<String>,
    #[serde(default, deserialize_with = "crate::conventions::present")]
    #[schema(value_type = Option<String>)]
    pub postal_code: Option<Option<String>>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListHouseholdsQuery {
    pub neighbourhood_id: Option<Uuid>,
    /// Part of the address; Arabic and Persian letters and digits match each other.
    pub address: Option<String>,
    /// Page size, 1–200 (default 50).
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// List households in the caller's neighbourhoods.
#[utoipa::path(
    tag = "households",
    security(("bearer" = [])),
    params(ListHouseholdsQuery),
    responses((status = 200, description = "One page of households", body = Page<HouseholdResponse>)),
)]
#[get("/households")]
pub async fn list(
    auth: Auth<perm::HouseholdRead>,
    state: web::Data<AppState>,
    query: web::Query<ListHouseholdsQuery>,
) -> Result<web::Json<Page<HouseholdResponse>>, ApiError> {
    let query = query.into_inner();
    let limit = pagination::limit(query.limit)?;
    let after: Option<HouseholdId> = query
        .cursor
        .as_deref()
        .map(pagination::decode_cursor)
        .transpose()?;
    let filter = HouseholdFilter {
        neighbourhood_id: query.neighbourhood_id.map(AreaId::from),
        address: query
            .address
            .as_deref()
            .map(normalise)
            .filter(|a| !a.is_empty()),
    };
    let scope = auth.scope();
    let (items, more) = with_db(&state, move |c| {
        households::list(c, &scope, &filter, after, limit)
    })
    .await?;
    let next_cursor = pagination::next_cursor(more, items.last().map(|h| h.id.to_string()));
    Ok(web::Json(Page {
        items: items.into_iter().map(Into::into).collect(),
        next_cursor,
    }))
}

/// Read one household. Outside the caller's neighbourhoods it does not exist (404).
#[utoipa::path(
    tag = "households",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The household's id")),
    responses(
        (status = 200, description = "The household; `ETag` carries its version", body = HouseholdResponse),
        (status = 404, description = "No such household in the caller's scope", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[get("/households/{id}")]
pub async fn read(
    auth: Auth<perm::HouseholdRead>,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let id = HouseholdId::from(id.into_inner());
    let scope = auth.scope();
    let household = with_db(&state, move |c| households::get(c, &scope, id)).await?;
    Ok(HttpResponse::Ok()
        .insert_header(etag(household.version))
        .json(HouseholdResponse::from(household)))
}

/// Register a household in a neighbourhood. Send an `Idempotency-Key` to make retries safe.
#[utoipa::path(
    tag = "households",
    security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Retrying with the same key and body returns the first answer and creates nothing")),
    request_body = CreateHouseholdRequest,
    responses(
        (status = 201, description = "Created; `Location` points to it", body = HouseholdResponse),
        (status = 422, description = "Invalid fields, a neighbourhood outside the caller's scope, or a reused Idempotency-Key", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[post("/households")]
pub async fn create(
    auth: Auth<perm::HouseholdWrite>,
    state: web::Data<AppState>,
    key: IdempotencyKey,
    body: web::Json<CreateHouseholdRequest>,
) -> Result<HttpResponse, ApiError> {
    let (context, scope) = (auth.audit(), auth.scope());
    register(
        &auth,
        &state,
        key,
        "POST /api/v1/households",
        body.into_inner(),
        move |c, new| households::create(c, &context, &scope, new),
    )
    .await
}

/// Registers a household with `store` (staff with their scope, a partner under its policy): the
/// request checked, made idempotent, and answered 201.
pub(crate) async fn register<F>(
    caller: &Caller,
    state: &AppState,
    key: IdempotencyKey,
    route: &str,
    body: CreateHouseholdRequest,
    store: F,
) -> Result<HttpResponse, ApiError>
where
    F: FnOnce(&mut DbConnection, NewHousehold) -> Result<Household, StoreError> + Send + 'static,
{
    let request = key.request(caller, route, &body)?;
    let new = NewHousehold::parse(
        body.neighbourhood_id.into(),
        &body.address,
        body.postal_code.as_deref(),
    )?;
    let render = |household: &Household| {
        created(
            format!("/api/v1/households/{}", household.id),
            &HouseholdResponse::from(household.clone()),
        )
    };
    let outcome = with_db(state, move |c| {
        idempotency::run(c, request.as_ref(), |c| store(c, new), render)
    })
    .await?;
    respond(outcome, render)
}

/// Change a household's address or postal code. Honours `If-Match`.
#[utoipa::path(
    tag = "households",
    security(("bearer" = [])),
    params(
        ("id" = Uuid, Path, description = "The household's id"),
        ("If-Match" = Option<String>, Header, description = "The ETag last read; refused with 412 if the household changed since"),
    ),
    request_body = UpdateHouseholdRequest,
    responses(
        (status = 200, description = "Updated", body = HouseholdResponse),
        (status = 404, description = "No such household in the caller's scope", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "Changed since the ETag was read", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[patch("/households/{id}")]
pub async fn update(
    auth: Auth<perm::HouseholdWrite>,
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<Uuid>,
    body: web::Json<UpdateHouseholdRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = HouseholdId::from(id.into_inner());
    let expected = if_match(&req)?;
    let body = body.into_inner();
    let changes = HouseholdChanges {
        address: body
            .address
            .as_deref()
            .map(|a| Address::parse("address", a))
            .transpose()?,
        postal_code: body
            .postal_code
            .map(|p| {
                p.as_deref()
                    .map(|p| parse_postal_code("postal_code", p))
                    .transpose()
            })
            .transpose()?,
    };
    let (context, scope) = (auth.audit(), auth.scope());
    let household = with_db(&state, move |c| {
        households::update(c, &context, &scope, id, expected, changes)
    })
    .await?;
    Ok(HttpResponse::Ok()
        .insert_header(etag(household.version))
        .json(HouseholdResponse::from(household)))
}
