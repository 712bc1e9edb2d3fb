//! `/api/v1/persons/{id}/assessments`: baseline and follow-up surveys.

use actix_web::{HttpResponse, get, post, web};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use tavana_domain::assessment::{
    Assessment, AssessmentKind, EmploymentStatus, IncomeBand, NewAssessment, WelfareService,
};
use tavana_domain::calendar::{parse_date, to_jalali};
use tavana_domain::id::PersonId;
use tavana_persistence::{DbConnection, StoreError, assessments, idempotency};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::{Auth, Caller, perm};
use crate::error::{ApiError, Problem};
use crate::idempotency::{IdempotencyKey, created, respond};
use crate::{AppState, with_db};

pub fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(list).service(record);
}

api_enum!(
    /// `baseline` (once per person, first) or `follow_up`.
    AssessmentKindDto => AssessmentKind { Baseline => "baseline", FollowUp => "follow_up" }
);
api_enum!(
    /// Labour-force status.
    EmploymentStatusDto => EmploymentStatus {
        Employed => "employed", Unemployed => "unemployed", NotInLabourForce => "not_in_labour_force"
    }
);
api_enum!(
    /// Monthly household income, in rials.
    IncomeBandDto => IncomeBand {
        None => "none", Under20m => "under_20m", From20mTo50m => "20m_to_50m",
        From50mTo100m => "50m_to_100m", Over100m => "over_100m"
    }
);
api_enum!(
    /// A welfare service the household receives.
    WelfareServiceDto => WelfareService {
        ReliefCommittee => "relief_committee", WelfareOrganisation => "welfare_organisation",
        CashSubsidy => "cash_subsidy", Charity => "charity", HousingSupport => "housing_support"
    }
);

#[derive(Debug, Serialize, ToSchema)]
pub struct AssessmentResponse {
    pub id: Uuid,
    pub person_id: Uuid,
    /// The person's neighbourhood when assessed.
    pub neighbourhood_id: Option<Uuid>,
    pub kind: AssessmentKindDto,
    pub assessed_on: NaiveDate,
    pub assessed_on_jalali: Option<String>,
    pub employment_status: EmploymentStatusDto,
    pub income_band: IncomeBandDto,
    pub social_insurance: bool,
    pub welfare_services: Vec<WelfareServiceDto>,
    pub skills: Option<String>,
    pub disability: bool,
    pub dependants: i32,
    pub recorded_by: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl From<Assessment> for AssessmentResponse {
    fn from(a: Assessment) -> Self {
        Self {
            id: a.id.as_uuid(),
            person_id: a.person_id.as_uuid(),
            neighbourhood_id: a.neighbourhood_id.map(|n| n.as_uuid()),
            kind: a.kind.into(),
            assessed_on_jalali: to_jalali(a.assessed_on).map(|j| j.to_string()),
            assessed_on: a.assessed_on,
            employment_status: a.employment_status.into(),
            income_band: a.income_band.into(),
            social_insurance: a.social_insurance,
            welfare_services: a.welfare_services.into_iter().map(Into::into).collect(),
            skills: a.skills,
            disability: a.disability,
            dependants: a.dependants,
            recorded_by: a.recorded_by,
            created_at: a.created_at.and_utc(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordAssessmentRequest {
    pub kind: AssessmentKindDto,
    /// Gregorian or Jalali (default: today).
    pub assessed_on: Option<String>,
    pub employment_status: EmploymentStatusDto,
    pub income_band: IncomeBandDto,
    /// Covered by social insurance (تامین اجتماعی).
    pub social_insurance: bool,
    #[serde(default)]
    pub welfare_services: Vec<WelfareServiceDto>,
    pub skills: Option<String>,
    #[serde(default)]
    pub disability: bool,
    #[serde(default)]
    pub dependants: i32,
}

/// A person's assessments, oldest first.
#[utoipa::path(
    tag = "persons",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The person's id")),
    responses(
        (status = 200, description = "Assessments", body = Vec<AssessmentResponse>),
        (status = 404, description = "No such person in the caller's scope", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[get("/persons/{id}/assessments")]
pub async fn list(
    auth: Auth<perm::PersonRead>,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<web::Json<Vec<AssessmentResponse>>, ApiError> {
    let person = PersonId::from(id.into_inner());
    let scope = auth.scope();
    let found = with_db(&state, move |c| assessments::list(c, &scope, person)).await?;
    Ok(web::Json(found.into_iter().map(Into::into).collect()))
}

/// An assessment as submitted, checked by the domain's rules.
fn new_assessment(body: RecordAssessmentRequest) -> Result<NewAssessment, ApiError> {
    let today = Utc::now().date_naive();
    let assessed_on = match body.assessed_on.as_deref() {
        Some(text) => parse_date("assessed_on", text)?,
        None => today,
    };
    Ok(NewAssessment {
        kind: body.kind.into(),
        assessed_on,
        employment_status: body.employment_status.into(),
        income_band: body.income_band.into(),
        social_insurance: body.social_insurance,
        welfare_services: body.welfare_services.into_iter().map(Into::into).collect(),
        skills: body.skills,
        disability: body.disability,
        dependants: body.dependants,
    }
    .check(today)?)
}

/// Record a baseline (once) or follow-up assessment of a person.
#[utoipa::path(
    tag = "persons",
    security(("bearer" = [])),
    params(
        ("id" = Uuid, Path, description = "The person's id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Retrying with the same key and body returns the first answer and records nothing twice"),
    ),
    request_body = RecordAssessmentRequest,
    responses(
        (status = 201, description = "Recorded", body = AssessmentResponse),
        (status = 404, description = "No such person in the caller's scope", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The person's record was merged into another (read it by id for the remaining person), or a baseline was recorded at the same time", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, a second baseline, or a follow-up without or before the baseline", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[post("/persons/{id}/assessments")]
pub async fn record(
    auth: Auth<perm::PersonWrite>,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    key: IdempotencyKey,
    body: web::Json<RecordAssessmentRequest>,
) -> Result<HttpResponse, ApiError> {
    let person = PersonId::from(id.into_inner());
    let (context, scope) = (auth.audit(), auth.scope());
    assess(
        &auth,
        &state,
        key,
        &format!("POST /api/v1/persons/{person}/assessments"),
        person,
        body.into_inner(),
        move |c, new| assessments::record(c, &context, &scope, person, new),
    )
    .await
}

/// Records an assessment of `person` with `store` (staff with their scope, a partner under its
/// policy): the request checked by the domain's rules, made idempotent, and answered 201.
pub(crate) async fn assess<F>(
    caller: &Caller,
    state: &AppState,
    key: IdempotencyKey,
    route: &str,
    person: PersonId,
    body: RecordAssessmentRequest,
    store: F,
) -> Result<HttpResponse, ApiError>
where
    F: FnOnce(&mut DbConnection, NewAssessment) -> Result<Assessment, StoreError> + Send + 'static,
{
    let request = key.request(caller, route, &body)?;
    let new = new_assessment(body)?;
    let location = format!("/api/v1/persons/{person}/assessments");
    let render =
        move |a: &Assessment| created(location.clone(), &AssessmentResponse::from(a.clone()));
    let stored = render.clone();
    let outcome = with_db(state, move |c| {
        idempotency::run(c, request.as_ref(), |c| store(c, new), stored)
    })
    .await?;
    respond(outcome, render)
}
