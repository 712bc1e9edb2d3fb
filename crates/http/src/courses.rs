//! `/api/v1/courses`: the training catalogue.

use actix_web::{HttpResponse, get, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tavana_domain::id::CourseId;
use tavana_domain::training::{Course, CourseCategory, NewCourse};
use tavana_persistence::{courses, idempotency};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::{Auth, perm};
use crate::conventions::etag;
use crate::error::{ApiError, Problem};
use crate::idempotency::{IdempotencyKey, created, respond};
use crate::organisations::OrganisationKindDto;
use crate::pagination::{self, Page};
use crate::{AppState, with_db};

pub fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(list).service(create).service(read);
}

api_enum!(
    /// The article's course categories. Addiction and divorce courses are sensitive.
    CourseCategoryDto => CourseCategory {
        LifeSkills => "life_skills",
        AddictionPrevention => "addiction_prevention",
        DivorcePrevention => "divorce_prevention",
        AddictionAwareness => "addiction_awareness",
        BusinessEntrepreneurship => "business_entrepreneurship",
        LabourLaw => "labour_law",
        SocialSecurity => "social_security",
        TechnicalVocational => "technical_vocational",
    }
);

#[derive(Debug, Serialize, ToSchema)]
pub struct CourseResponse {
    pub id: Uuid,
    pub category: CourseCategoryDto,
    #[schema(example = "خیاطی مقدماتی")]
    pub title_fa: String,
    #[schema(example = "Introductory tailoring")]
    pub title_en: String,
    pub hours: i32,
    /// The kind of organisation that may run it.
    pub provider_kind: OrganisationKindDto,
    /// Individual attendance is shown only to staff, and every such read is audited.
    pub sensitive: bool,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Course> for CourseResponse {
    fn from(c: Course) -> Self {
        Self {
            id: c.id.as_uuid(),
            category: c.category.into(),
            title_fa: c.title_fa,
            title_en: c.title_en,
            hours: c.hours,
            provider_kind: c.provider_kind.into(),
            sensitive: c.sensitive,
            version: c.version,
            created_at: c.created_at.and_utc(),
            updated_at: c.updated_at.and_utc(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCourseRequest {
    pub category: CourseCategoryDto,
    pub title_fa: String,
    pub title_en: String,
    pub hours: i32,
    pub provider_kind: OrganisationKindDto,
    /// Addiction and divorce courses are sensitive whatever this says.
    #[serde(default)]
    pub sensitive: bool,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListCoursesQuery {
    pub category: Option<CourseCategoryDto>,
    /// Page size, 1–200 (default 50).
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// The course catalogue.
#[utoipa::path(
    tag = "training",
    security(("bearer" = [])),
    params(ListCoursesQuery),
    responses((status = 200, description = "One page of courses", body = Page<CourseResponse>)),
)]
#[get("/courses")]
pub async fn list(
    _auth: Auth<perm::CourseRead>,
    state: web::Data<AppState>,
    query: web::Query<ListCoursesQuery>,
) -> Result<web::Json<Page<CourseResponse>>, ApiError> {
    let query = query.into_inner();
    let limit = pagination::limit(query.limit)?;
    let after: Option<CourseId> = query
        .cursor
        .as_deref()
        .map(pagination::decode_cursor)
        .transpose()?;
    let category = query.category.map(Into::into);
    let (items, more) = with_db(&state, move |c| courses::list(c, category, after, limit)).await?;
    let next_cursor = pagination::next_cursor(more, items.last().map(|c| c.id.to_string()));
    Ok(web::Json(Page {
        items: items.into_iter().map(Into::into).collect(),
        next_cursor,
    }))
}

/// Read one course.
#[utoipa::path(
    tag = "training",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The course's id")),
    responses(
        (status = 200, description = "The course", body = CourseResponse),
        (status = 404, description = "No such course", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[get("/courses/{id}")]
pub async fn read(
    _auth: Auth<perm::CourseRead>,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let id = CourseId::from(id.into_inner());
    let course = with_db(&state, move |c| courses::get(c, id)).await?;
    Ok(HttpResponse::Ok()
        .insert_header(etag(course.version))
        .json(CourseResponse::from(course)))
}

/// Add a course to the catalogue (administrators, programme managers).
#[utoipa::path(
    tag = "training",
    security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Retrying with the same key and body returns the first answer and creates nothing")),
    request_body = CreateCourseRequest,
    responses(
        (status = 201, description = "Created", body = CourseResponse),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[post("/courses")]
pub async fn create(
    auth: Auth<perm::CourseWrite>,
    state: web::Data<AppState>,
    key: IdempotencyKey,
    body: web::Json<CreateCourseRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let request = key.request(&auth, "POST /api/v1/courses", &body)?;
    let new = NewCourse {
        category: body.category.into(),
        title_fa: body.title_fa,
        title_en: body.title_en,
        hours: body.hours,
        provider_kind: body.provider_kind.into(),
        sensitive: body.sensitive,
    }
    .validate()?;
    let context = auth.audit();
    let render = |c: &Course| {
        created(
            format!("/api/v1/courses/{}", c.id),
            &CourseResponse::from(c.clone()),
        )
    };
    let outcome = with_db(&state, move |c| {
        idempotency::run(
            c,
            request.as_ref(),
            |c| courses::create(c, &context, new),
            render,
        )
    })
    .await?;
    respond(outcome, render)
}
