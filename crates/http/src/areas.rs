//! `/api/v1/areas`: the province → city → district → neighbourhood hierarchy.

use actix_web::{HttpResponse, get, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tavana_domain::area::{Area, AreaLevel, NewArea};
use tavana_domain::id::AreaId;
use tavana_persistence::areas::{self, AreaFilter};
use tavana_persistence::idempotency;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::{Auth, perm};
use crate::conventions::etag;
use crate::error::{ApiError, Problem};
use crate::idempotency::{IdempotencyKey, created, respond};
use crate::pagination::{self, Page};
use crate::{AppState, with_db};

pub fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(list).service(create).service(read);
}

api_enum!(
    /// Level of an area in the hierarchy.
    AreaLevelDto => AreaLevel {
        Province => "province",
        City => "city",
        District => "district",
        Neighbourhood => "neighbourhood",
    }
);

#[derive(Debug, Serialize, ToSchema)]
pub struct AreaResponse {
    pub id: Uuid,
    pub level: AreaLevelDto,
    /// The area directly above; `null` for a province.
    pub parent_id: Option<Uuid>,
    #[schema(example = "MSH-D05-N12")]
    pub code: String,
    #[schema(example = "سیدی")]
    pub name_fa: String,
    #[schema(example = "Seyyedi")]
    pub name_en: String,
    /// Increases with every change; send it back in `If-Match` to update.
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Area> for AreaResponse {
    fn from(area: Area) -> Self {
        Self {
            id: area.id.as_uuid(),
            level: area.level.into(),
            parent_id: area.parent_id.map(|id| id.as_uuid()),
            code: area.code,
            name_fa: area.name_fa,
            name_en: area.name_en,
            version: area.version,
            created_at: area.created_at.and_utc(),
            updated_at: area.updated_at.and_utc(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAreaRequest {
    pub level: AreaLevelDto,
    /// Required for all but provinces: the area one level up.
    pub parent_id: Option<Uuid>,
    /// Unique short code: Latin letters, digits and hyphens, 1–32 characters; upper-cased.
    #[schema(example = "MSH-D05-N12")]
    pub code: String,
    /// Name in Persian, as written.
    #[schema(example = "سیدی")]
    pub name_fa: String,
    #[schema(example = "Seyyedi")]
    pub name_en: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListAreasQuery {
    /// Only areas of this level.
    pub level: Option<AreaLevelDto>,
    /// Only the areas directly under this one.
    pub parent_id: Option<Uuid>,
    /// Page size, 1–200 (default 50).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// List areas, oldest first.
#[utoipa::path(
    tag = "areas",
    security(("bearer" = [])),
    params(ListAreasQuery),
    responses(
        (status = 200, description = "One page of areas", body = Page<AreaResponse>),
    ),
)]
#[get("/areas")]
pub async fn list(
    _auth: Auth<perm::AreaRead>,
    state: web::Data<AppState>,
    query: web::Query<ListAreasQuery>,
) -> Result<web::Json<Page<AreaResponse>>, ApiError> {
    let query = query.into_inner();
    let limit = pagination::limit(query.limit)?;
    let after: Option<AreaId> = query
        .cursor
        .as_deref()
        .map(pagination::decode_cursor)
        .transpose()?;
    let filter = AreaFilter {
        level: query.level.map(Into::into),
        parent_id: query.parent_id.map(AreaId::from),
    };
    let (items, more) =
        with_db(&state, move |conn| areas::list(conn, &filter, after, limit)).await?;
    let next_cursor = more
        .then(|| {
            items
                .last()
                .map(|a| pagination::encode_cursor(&a.id.to_string()))
        })
        .flatten();
    Ok(web::Json(Page {
        items: items.into_iter().map(AreaResponse::from).collect(),
        next_cursor,
    }))
}

/// Read one area.
#[utoipa::path(
    tag = "areas",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The area's id")),
    responses(
        (status = 200, description = "The area; `ETag` carries its version", body = AreaResponse),
        (status = 404, description = "No such area", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[get("/areas/{id}")]
pub async fn read(
    _auth: Auth<perm::AreaRead>,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let id = AreaId::from(id.into_inner());
    let area = with_db(&state, move |conn| areas::get(conn, id)).await?;
    Ok(HttpResponse::Ok()
        .insert_header(etag(area.version))
        .json(AreaResponse::from(area)))
}

/// Create an area under an existing parent one level up.
#[utoipa::path(
    tag = "areas",
    security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Retrying with the same key and body returns the first answer and creates nothing")),
    request_body = CreateAreaRequest,
    responses(
        (status = 201, description = "Created; `Location` points to it", body = AreaResponse),
        (status = 409, description = "An area with this code exists", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, or a parent of the wrong level", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[post("/areas")]
pub async fn create(
    auth: Auth<perm::AreaWrite>,
    state: web::Data<AppState>,
    key: IdempotencyKey,
    body: web::Json<CreateAreaRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let request = key.request(&auth, "POST /api/v1/areas", &body)?;
    let new = NewArea::parse(
        body.level.into(),
        body.parent_id.map(AreaId::from),
        &body.code,
        &body.name_fa,
        &body.name_en,
    )?;
    let context = auth.audit();
    let render = |area: &Area| {
        created(
            format!("/api/v1/areas/{}", area.id),
            &AreaResponse::from(area.clone()),
        )
    };
    let outcome = with_db(&state, move |c| {
        idempotency::run(
            c,
            request.as_ref(),
            |c| areas::create(c, &context, new),
            render,
        )
    })
    .await?;
    respond(outcome, render)
}
