//! `/api/v1/organisations`: the labour office, facilitation offices, partner agencies, …

use actix_web::{HttpRequest, HttpResponse, get, patch, post, put, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tavana_domain::id::OrganisationId;
use tavana_domain::organisation::{Organisation, OrganisationKind, parse_name};
use tavana_persistence::{idempotency, organisations};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::{Auth, perm};
use crate::conventions::{etag, if_match};
use crate::error::{ApiError, Problem};
use crate::idempotency::{IdempotencyKey, created, respond};
use crate::pagination::{self, Page};
use crate::{AppState, with_db};

pub fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(list)
        .service(create)
        .service(read)
        .service(update)
        .service(coverage)
        .service(set_coverage);
}

api_enum!(
    /// The kind of organisation (GLOSSARY.md).
    OrganisationKindDto => OrganisationKind {
        LabourOffice => "labour_office",
        FacilitationOffice => "facilitation_office",
        WomensAffairsBureau => "womens_affairs_bureau",
        PartnerAgency => "partner_agency",
        CounsellingCentre => "counselling_centre",
        TrainingProvider => "training_provider",
        Ministry => "ministry",
    }
);

#[derive(Debug, Serialize, ToSchema)]
pub struct OrganisationResponse {
    pub id: Uuid,
    pub name: String,
    pub kind: OrganisationKindDto,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Organisation> for OrganisationResponse {
    fn from(org: Organisation) -> Self {
        Self {
            id: org.id.as_uuid(),
            name: org.name,
            kind: org.kind.into(),
            version: org.version,
            created_at: org.created_at.and_utc(),
            updated_at: org.updated_at.and_utc(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrganisationRequest {
    #[schema(example = "Jahad Daneshgahi, Khorasan Razavi")]
    pub name: String,
    pub kind: OrganisationKindDto,
}

/// Fields to change; absent fields stay. Send the current `version` in `If-Match`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateOrganisationRequest {
    pub name: Option<String>,
    pub kind: Option<OrganisationKindDto>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListOrganisationsQuery {
    pub kind: Option<OrganisationKindDto>,
    /// Page size, 1–200 (default 50).
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// List organisations.
#[utoipa::path(
    tag = "organisations",
    security(("bearer" = [])),
    params(ListOrganisationsQuery),
    responses((status = 200, description = "One page of organisations", body = Page<OrganisationResponse>)),
)]
#[get("/organisations")]
pub async fn list(
    _auth: Auth<perm::OrganisationRead>,
    state: web::Data<AppState>,
    query: web::Query<ListOrganisationsQuery>,
) -> Result<web::Json<Page<OrganisationResponse>>, ApiError> {
    let query = query.into_inner();
    let limit = pagination::limit(query.limit)?;
    let after: Option<OrganisationId> = query
        .cursor
        .as_deref()
        .map(pagination::decode_cursor)
        .transpose()?;
    let kind = query.kind.map(Into::into);
    let (items, more) =
        with_db(&state, move |c| organisations::list(c, kind, after, limit)).await?;
    let next_cursor = pagination::next_cursor(more, items.last().map(|o| o.id.to_string()));
    Ok(web::Json(Page {
        items: items.into_iter().map(Into::into).collect(),
        next_cursor,
    }))
}

/// Read one organisation.
#[utoipa::path(
    tag = "organisations",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The organisation's id")),
    responses(
        (status = 200, description = "The organisation; `ETag` carries its version", body = OrganisationResponse),
        (status = 404, description = "No such organisation", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[get("/organisations/{id}")]
pub async fn read(
    _auth: Auth<perm::OrganisationRead>,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let id = OrganisationId::from(id.into_inner());
    let org = with_db(&state, move |c| organisations::get(c, id)).await?;
    Ok(HttpResponse::Ok()
        .insert_header(etag(org.version))
        .json(OrganisationResponse::from(org)))
}

/// Register an organisation.
#[utoipa::path(
    tag = "organisations",
    security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Retrying with the same key and body returns the first answer and creates nothing")),
    request_body = CreateOrganisationRequest,
    responses(
        (status = 201, description = "Created", body = OrganisationResponse),
        (status = 409, description = "The name is taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[post("/organisations")]
pub async fn create(
    auth: Auth<perm::OrganisationWrite>,
    state: web::Data<AppState>,
    key: IdempotencyKey,
    body: web::Json<CreateOrganisationRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let request = key.request(&auth, "POST /api/v1/organisations", &body)?;
    let name = parse_name("name", &body.name)?;
    let kind = body.kind.into();
    let context = auth.audit();
    let render = |org: &Organisation| {
        created(
            format!("/api/v1/organisations/{}", org.id),
            &OrganisationResponse::from(org.clone()),
        )
    };
    let outcome = with_db(&state, move |c| {
        idempotency::run(
            c,
            request.as_ref(),
            |c| organisations::create(c, &context, &name, kind),
            render,
        )
    })
    .await?;
    respond(outcome, render)
}

/// Rename an organisation or correct its kind. Honours `If-Match`. Organisations are never
/// deleted: users, clients and the audit log refer to them.
#[utoipa::path(
    tag = "organisations",
    security(("bearer" = [])),
    params(
        ("id" = Uuid, Path, description = "The organisation's id"),
        ("If-Match" = Option<String>, Header, description = "The ETag last read; refused with 412 if it changed since"),
    ),
    request_body = UpdateOrganisationRequest,
    responses(
        (status = 200, description = "Updated", body = OrganisationResponse),
        (status = 404, description = "No such organisation", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The name is taken", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "Changed since the ETag was read", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[patch("/organisations/{id}")]
pub async fn update(
    auth: Auth<perm::OrganisationWrite>,
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<Uuid>,
    body: web::Json<UpdateOrganisationRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = OrganisationId::from(id.into_inner());
    let expected = if_match(&req)?;
    let body = body.into_inner();
    let name = body
        .name
        .as_deref()
        .map(|n| parse_name("name", n))
        .transpose()?;
    let kind = body.kind.map(Into::into);
    let context = auth.audit();
    let org = with_db(&state, move |c| {
        organisations::update(c, &context, id, expected, name, kind)
    })
    .await?;
    Ok(HttpResponse::Ok()
        .insert_header(etag(org.version))
        .json(OrganisationResponse::from(org)))
}

/// The neighbourhoods a facilitation office covers.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Coverage {
    pub areas: Vec<Uuid>,
}

fn to_coverage(ids: Vec<String>) -> Result<Coverage, ApiError> {
    let areas = ids
        .iter()
        .map(|id| Uuid::parse_str(id).map_err(ApiError::internal))
        .collect::<Result<_, _>>()?;
    Ok(Coverage { areas })
}

/// The neighbourhoods a facilitation office covers.
#[utoipa::path(
    tag = "organisations",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The organisation's id")),
    responses(
        (status = 200, description = "Covered neighbourhoods", body = Coverage),
        (status = 404, description = "No such organisation", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[get("/organisations/{id}/areas")]
pub async fn coverage(
    _auth: Auth<perm::OrganisationRead>,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<web::Json<Coverage>, ApiError> {
    let id = OrganisationId::from(id.into_inner());
    let ids = with_db(&state, move |c| organisations::coverage(c, id)).await?;
    Ok(web::Json(to_coverage(ids)?))
}

/// Set the neighbourhoods a facilitation office covers (administrators and programme managers).
#[utoipa::path(
    tag = "organisations",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The organisation's id")),
    request_body = Coverage,
    responses(
        (status = 200, description = "The new coverage", body = Coverage),
        (status = 404, description = "No such organisation", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not a facilitation office, or an area that is not a neighbourhood", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[put("/organisations/{id}/areas")]
pub async fn set_coverage(
    auth: Auth<perm::AreaWrite>,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    body: web::Json<Coverage>,
) -> Result<web::Json<Coverage>, ApiError> {
    let id = OrganisationId::from(id.into_inner());
    let areas: Vec<String> = body
        .into_inner()
        .areas
        .iter()
        .map(Uuid::to_string)
        .collect();
    let context = auth.audit();
    let ids = with_db(&state, move |c| {
        organisations::set_coverage(c, &context, id, &areas)
    })
    .await?;
    Ok(web::Json(to_coverage(ids)?))
}
