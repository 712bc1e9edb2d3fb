//! `/api/v1/programmes`: the programmes households are enrolled in, and their targets.

use actix_web::{HttpRequest, HttpResponse, get, patch, post, web};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use tavana_domain::calendar::to_jalali;
use tavana_domain::enrolment::EnrolmentState;
use tavana_domain::id::ProgrammeId;
use tavana_domain::{FieldError, ValidationErrors};
use tavana_persistence::programmes::{self, NewProgramme, Programme, ProgrammeChanges};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::{Auth, perm};
use crate::conventions::{etag, if_match, present};
use crate::enrolments::EnrolmentStateDto;
use crate::error::{ApiError, Problem};
use crate::{AppState, with_db};

pub fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(list)
        .service(read)
        .service(create)
        .service(update);
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StageTarget {
    pub stage: EnrolmentStateDto,
    pub target: i32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProgrammeResponse {
    pub id: Uuid,
    #[schema(example = "WHH-1398")]
    pub code: String,
    #[schema(example = "بانوان سرپرست خانوار ۱۳۹۸")]
    pub name_fa: String,
    #[schema(example = "Women heads of household 1398")]
    pub name_en: String,
    #[schema(example = 1398)]
    pub jalali_year: i32,
    pub area_id: Option<String>,
    /// Households the programme aims to reach.
    #[schema(example = 600)]
    pub target_households: Option<i32>,
    pub starts_on: NaiveDate,
    pub ends_on: NaiveDate,
    pub starts_on_jalali: Option<String>,
    pub ends_on_jalali: Option<String>,
    pub targets: Vec<StageTarget>,
    /// Partner organisations taking part.
    pub partners: Vec<String>,
    /// Whether issuing a home-business permit moves the household's enrolment to `permitted`.
    pub advance_on_permit: bool,
    /// At most this many supporters active at once in one neighbourhood.
    pub supporters_per_neighbourhood: i32,
    /// Whether a disbursed micro-loan moves the household's enrolment to `financed`.
    pub advance_on_loan: bool,
    pub version: i64,
}

impl From<Programme> for ProgrammeResponse {
    fn from(p: Programme) -> Self {
        Self {
            id: p.id.as_uuid(),
            code: p.code,
            name_fa: p.name_fa,
            name_en: p.name_en,
            jalali_year: p.jalali_year,
            area_id: p.area_id,
            target_households: p.target_households,
            starts_on_jalali: to_jalali(p.starts_on).map(|j| j.to_string()),
            ends_on_jalali: to_jalali(p.ends_on).map(|j| j.to_string()),
            starts_on: p.starts_on,
            ends_on: p.ends_on,
            targets: p
                .targets
                .into_iter()
                .map(|(stage, target)| StageTarget {
                    stage: stage.into(),
                    target,
                })
                .collect(),
            partners: p.partners,
            advance_on_permit: p.advance_on_permit,
            supporters_per_neighbourhood: p.supporters_per_neighbourhood,
            advance_on_loan: p.advance_on_loan,
            version: p.version,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListProgrammesQuery {
    /// Only programmes of this Jalali year.
    pub year: Option<i32>,
}

/// List programmes.
#[utoipa::path(
    tag = "programmes",
    security(("bearer" = [])),
    params(ListProgrammesQuery),
    responses((status = 200, description = "Programmes", body = Vec<ProgrammeResponse>)),
)]
#[get("/programmes")]
pub async fn list(
    _auth: Auth<perm::ProgrammeRead>,
    state: web::Data<AppState>,
    query: web::Query<ListProgrammesQuery>,
) -> Result<web::Json<Vec<ProgrammeResponse>>, ApiError> {
    let year = query.into_inner().year;
    let found = with_db(&state, move |c| programmes::list(c, year)).await?;
    Ok(web::Json(found.into_iter().map(Into::into).collect()))
}

/// Read one programme.
#[utoipa::path(
    tag = "programmes",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The programme's id")),
    responses(
        (status = 200, description = "The programme", body = ProgrammeResponse),
        (status = 404, description = "No such programme", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[get("/programmes/{id}")]
pub async fn read(
    _auth: Auth<perm::ProgrammeRead>,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<web::Json<ProgrammeResponse>, ApiError> {
    let id = ProgrammeId::from(id.into_inner());
    let programme = with_db(&state, move |c| programmes::get(c, id)).await?;
    Ok(web::Json(programme.into()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProgrammeRequest {
    /// Unique, e.g. `WHH-1399`.
    pub code: String,
    pub name_fa: String,
    pub name_en: String,
    /// The programme year runs from Nowruz to Nowruz of this Jalali year.
    #[schema(example = 1399)]
    pub jalali_year: i32,
    pub area_id: Option<Uuid>,
    pub target_households: Option<i32>,
    #[serde(default)]
    pub targets: Vec<StageTarget>,
    /// Partner organisations.
    #[serde(default)]
    pub partners: Vec<Uuid>,
    /// Whether issuing a home-business permit moves the household's enrolment to `permitted`
    /// (default true).
    pub advance_on_permit: Option<bool>,
    /// At most this many supporters active at once in one neighbourhood (default 2).
    pub supporters_per_neighbourhood: Option<i32>,
    /// Default true: a disbursed micro-loan moves the household's enrolment to `financed`.
    pub advance_on_loan: Option<bool>,
}

/// Fields to change; absent fields stay; `target_households: null` clears it. Lists replace.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateProgrammeRequest {
    pub name_fa: Option<String>,
    pub name_en: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i32>)]
    pub target_households: Option<Option<i32>>,
    pub targets: Option<Vec<StageTarget>>,
    pub partners: Option<Vec<Uuid>>,
    pub advance_on_permit: Option<bool>,
    pub supporters_per_neighbourhood: Option<i32>,
    pub advance_on_loan: Option<bool>,
}

fn check_supporters(errors: &mut ValidationErrors, limit: Option<i32>) {
    if limit.is_some_and(|n| !(1..=10).contains(&n)) {
        errors.push(tavana_domain::FieldError::new(
            "supporters_per_neighbourhood",
            "out_of_range",
            "between 1 and 10 supporters per neighbourhood",
        ));
    }
}

fn check_targets(
    errors: &mut ValidationErrors,
    targets: &[StageTarget],
) -> Vec<(EnrolmentState, i32)> {
    let mut checked: Vec<(EnrolmentState, i32)> = Vec::new();
    for target in targets {
        let stage: EnrolmentState = target.stage.into();
        if !EnrolmentState::FUNNEL.contains(&stage) {
            errors.push(FieldError::new(
                "targets",
                "not_a_stage",
                format!("{stage} is not a stage of the funnel"),
            ));
        } else if target.target <= 0 {
            errors.push(FieldError::new(
                "targets",
                "range",
                "a target is a positive number",
            ));
        } else if checked.iter().any(|(s, _)| *s == stage) {
            errors.push(FieldError::new(
                "targets",
                "repeated",
                format!("{stage} is listed twice"),
            ));
        } else {
            checked.push((stage, target.target));
        }
    }
    checked
}

fn check_households(errors: &mut ValidationErrors, target: Option<i32>) {
    if target.is_some_and(|t| t <= 0) {
        errors.push(FieldError::new(
            "target_households",
            "range",
            "must be positive",
        ));
    }
}

/// Create a programme for a Jalali year, with its targets and partners.
#[utoipa::path(
    tag = "programmes",
    security(("bearer" = [])),
    request_body = CreateProgrammeRequest,
    responses(
        (status = 201, description = "Created", body = ProgrammeResponse),
        (status = 409, description = "The code is taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[post("/programmes")]
pub async fn create(
    auth: Auth<perm::ProgrammeWrite>,
    state: web::Data<AppState>,
    body: web::Json<CreateProgrammeRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let mut errors = ValidationErrors::default();
    let code = errors.check(tavana_domain::area::AreaCode::parse("code", &body.code));
    let name_fa = errors.check(tavana_domain::organisation::parse_name(
        "name_fa",
        &body.name_fa,
    ));
    let name_en = errors.check(tavana_domain::organisation::parse_name(
        "name_en",
        &body.name_en,
    ));
    let year = tavana_domain::calendar::jalali_year(body.jalali_year)
        .filter(|_| (1390..=1450).contains(&body.jalali_year));
    if year.is_none() {
        errors.push(FieldError::new(
            "jalali_year",
            "range",
            "must be a Jalali year between 1390 and 1450",
        ));
    }
    check_households(&mut errors, body.target_households);
    check_supporters(&mut errors, body.supporters_per_neighbourhood);
    let targets = check_targets(&mut errors, &body.targets);
    errors.clone().into_result()?;
    let (Some(code), Some(name_fa), Some(name_en), Some((starts_on, ends_on))) =
        (code, name_fa, name_en, year)
    else {
        return Err(errors.into());
    };
    let new = NewProgramme {
        code: code.as_str().to_owned(),
        name_fa,
        name_en,
        jalali_year: body.jalali_year,
        starts_on,
        ends_on,
        area_id: body.area_id.map(|a| a.to_string()),
        target_households: body.target_households,
        targets,
        partners: body.partners.iter().map(Uuid::to_string).collect(),
        advance_on_permit: body.advance_on_permit.unwrap_or(true),
        supporters_per_neighbourhood: body.supporters_per_neighbourhood.unwrap_or(2),
        advance_on_loan: body.advance_on_loan.unwrap_or(true),
    };
    let context = auth.audit();
    let programme = with_db(&state, move |c| programmes::create(c, &context, new)).await?;
    Ok(HttpResponse::Created()
        .insert_header((
            actix_web::http::header::LOCATION,
            format!("/api/v1/programmes/{}", programme.id),
        ))
        .insert_header(etag(programme.version))
        .json(ProgrammeResponse::from(programme)))
}

/// Change a programme's names, household target, stage targets or partners. Honours `If-Match`.
#[utoipa::path(
    tag = "programmes",
    security(("bearer" = [])),
    params(
        ("id" = Uuid, Path, description = "The programme's id"),
        ("If-Match" = Option<String>, Header, description = "The ETag last read; refused with 412 if it changed since"),
    ),
    request_body = UpdateProgrammeRequest,
    responses(
        (status = 200, description = "Updated", body = ProgrammeResponse),
        (status = 404, description = "No such programme", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "Changed since the ETag was read", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[patch("/programmes/{id}")]
pub async fn update(
    auth: Auth<perm::ProgrammeWrite>,
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<Uuid>,
    body: web::Json<UpdateProgrammeRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = ProgrammeId::from(id.into_inner());
    let expected = if_match(&req)?;
    let body = body.into_inner();
    let mut errors = ValidationErrors::default();
    let name_fa = body
        .name_fa
        .as_deref()
        .and_then(|n| errors.check(tavana_domain::organisation::parse_name("name_fa", n)));
    let name_en = body
        .name_en
        .as_deref()
        .and_then(|n| errors.check(tavana_domain::organisation::parse_name("name_en", n)));
    if let Some(target) = body.target_households {
        check_households(&mut errors, target);
    }
    check_supporters(&mut errors, body.supporters_per_neighbourhood);
    let targets = body
        .targets
        .as_deref()
        .map(|t| check_targets(&mut errors, t));
    errors.into_result()?;
    let changes = ProgrammeChanges {
        name_fa,
        name_en,
        target_households: body.target_households,
        targets,
        partners: body
            .partners
            .map(|p| p.iter().map(Uuid::to_string).collect()),
        advance_on_permit: body.advance_on_permit,
        supporters_per_neighbourhood: body.supporters_per_neighbourhood,
        advance_on_loan: body.advance_on_loan,
    };
    let context = auth.audit();
    let programme = with_db(&state, move |c| {
        programmes::update(c, &context, id, expected, changes)
    })
    .await?;
    Ok(HttpResponse::Ok()
        .insert_header(etag(programme.version))
        .json(ProgrammeResponse::from(programme)))
}
