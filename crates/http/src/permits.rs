//! `/api/v1/permit-applications`, `/api/v1/permits` and the public
//! `/api/v1/public/permits/{number}`: home-business permits from application to monitoring.

use actix_web::{HttpRequest, HttpResponse, get, post, web};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use tavana_domain::calendar::to_jalali;
use tavana_domain::id::{PermitApplicationId, PermitId, PersonId};
use tavana_domain::permit::{
    ApplicationState, Check, PermitAction, PermitState, Rule, StepError, looks_like_permit_number,
};
use tavana_persistence::permits::{
    self, Activity, Application, ApplicationFilter, ApplyOutcome, NewApplication, Period, Permit,
    PermitFilter, PublicPermit, Step, StepOutcome, Visit,
};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::handlers::client_address;
use crate::auth::{Auth, perm};
use crate::conventions::{day_or_today, etag, if_match, optional_text};
use crate::error::{ApiError, Problem};
use crate::pagination::{self, Page};
use crate::{AppState, with_db};

pub fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(list_activities)
        .service(list_applications)
        .service(apply)
        .service(read_application)
        .service(step)
        .service(list)
        .service(read)
        .service(act)
        .service(list_visits)
        .service(add_visit)
        .service(verify);
}

api_enum!(
    /// Where an application is in its review.
    ApplicationStateDto => ApplicationState {
        Submitted => "submitted",
        UnderReview => "under_review",
        Inspected => "inspected",
        Approved => "approved",
        Issued => "issued",
        Rejected => "rejected",
    }
);

api_enum!(
    /// A permit's state on the day asked; `expired` follows from the validity dates.
    PermitStateDto => PermitState {
        Issued => "issued", Suspended => "suspended", Revoked => "revoked", Expired => "expired"
    }
);

api_enum!(
    /// What a permit officer does to a permit.
    PermitActionDto => PermitAction {
        Suspend => "suspend", Reinstate => "reinstate", Revoke => "revoke", Renew => "renew"
    }
);

api_enum!(
    /// An eligibility rule.
    RuleDto => Rule {
        Adult => "adult",
        Enrolled => "enrolled",
        TechnicalTraining => "technical_training",
        NoActivePermit => "no_active_permit",
    }
);

#[derive(Debug, Serialize, ToSchema)]
pub struct ActivityResponse {
    #[schema(example = "tailoring")]
    pub code: String,
    #[schema(example = "خیاطی")]
    pub name_fa: String,
    #[schema(example = "Tailoring")]
    pub name_en: String,
}

impl From<Activity> for ActivityResponse {
    fn from(a: Activity) -> Self {
        Self {
            code: a.code,
            name_fa: a.name_fa,
            name_en: a.name_en,
        }
    }
}

/// One eligibility rule's verdict.
#[derive(Debug, Serialize, ToSchema)]
pub struct CheckResponse {
    pub rule: RuleDto,
    pub passed: bool,
    pub explanation: String,
}

impl From<Check> for CheckResponse {
    fn from(c: Check) -> Self {
        Self {
            rule: c.rule.into(),
            passed: c.passed,
            explanation: c.explanation,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StepResponse {
    pub seq: i32,
    pub from: Option<String>,
    pub to: String,
    pub on: NaiveDate,
    pub on_jalali: Option<String>,
    /// The home visit's notes, or the reason to reject.
    pub notes: Option<String>,
    pub actor_id: Option<String>,
    pub recorded_at: DateTime<Utc>,
}

impl From<Step> for StepResponse {
    fn from(s: Step) -> Self {
        Self {
            seq: s.seq,
            from: s.from_state,
            to: s.to_state,
            on_jalali: to_jalali(s.effective_on).map(|j| j.to_string()),
            on: s.effective_on,
            notes: s.notes,
            actor_id: s.actor_id,
            recorded_at: s.recorded_at.and_utc(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApplicationResponse {
    pub id: Uuid,
    pub person_id: Uuid,
    pub neighbourhood_id: String,
    pub activity: String,
    pub address: String,
    pub state: ApplicationStateDto,
    pub applied_on: NaiveDate,
    /// The permit, once issued.
    pub permit_id: Option<String>,
    pub steps: Vec<StepResponse>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Application> for ApplicationResponse {
    fn from(a: Application) -> Self {
        Self {
            id: a.id.as_uuid(),
            person_id: a.person_id.as_uuid(),
            neighbourhood_id: a.neighbourhood_id,
            activity: a.activity,
            address: a.address,
            state: a.state.into(),
            applied_on: a.applied_on,
            permit_id: a.permit_id,
            steps: a.steps.into_iter().map(Into::into).collect(),
            version: a.version,
            created_at: a.created_at.and_utc(),
            updated_at: a.updated_at.and_utc(),
        }
    }
}

/// A submitted application and the rules it passed.
#[derive(Debug, Serialize, ToSchema)]
pub struct AppliedResponse {
    pub application: ApplicationResponse,
    pub eligibility: Vec<CheckResponse>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplyRequest {
    /// A person in the caller's scope.
    pub person_id: Uuid,
    /// A code of `GET /api/v1/permit-activities`.
    #[schema(example = "tailoring")]
    pub activity: String,
    /// Where the business is run: the home, in the person's neighbourhood.
    pub address: String,
    /// The day of the application, Gregorian or Jalali (default today); age is counted on it.
    pub applied_on: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StepRequest {
    pub to: ApplicationStateDto,
    /// The day, Gregorian or Jalali (default today). An issued permit is valid from it and
    /// numbered in its Jalali year.
    pub on: Option<String>,
    /// Required for `inspected` (the home visit) and `rejected` (the reason).
    pub notes: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PermitResponse {
    pub id: String,
    #[schema(example = "KR-1403-000123")]
    pub number: String,
    pub application_id: String,
    pub person_id: String,
    pub neighbourhood_id: String,
    pub activity: String,
    /// The state today (`expired` once past `valid_until`).
    pub state: PermitStateDto,
    pub state_reason: Option<String>,
    pub issued_on: NaiveDate,
    pub valid_from: NaiveDate,
    pub valid_until: NaiveDate,
    pub valid_until_jalali: Option<String>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl PermitResponse {
    fn new(p: Permit, today: NaiveDate) -> Result<Self, ApiError> {
        Ok(Self {
            state: p.state_on(today)?.into(),
            id: p.id,
            number: p.number,
            application_id: p.application_id,
            person_id: p.person_id,
            neighbourhood_id: p.neighbourhood_id,
            activity: p.activity,
            state_reason: p.state_reason,
            issued_on: p.issued_on,
            valid_from: p.valid_from,
            valid_until_jalali: to_jalali(p.valid_until).map(|j| j.to_string()),
            valid_until: p.valid_until,
            version: p.version,
            created_at: p.created_at.and_utc(),
            updated_at: p.updated_at.and_utc(),
        })
    }
}

/// The answer to a step; `permit` when the step issued one.
#[derive(Debug, Serialize, ToSchema)]
pub struct StepDoneResponse {
    pub application: ApplicationResponse,
    pub permit: Option<PermitResponse>,
    /// Enrolments the permit moved to `permitted` (programmes whose rules say so).
    pub enrolments_moved: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PeriodResponse {
    pub seq: i32,
    pub valid_from: NaiveDate,
    pub valid_until: NaiveDate,
}

/// A permit with its validity periods.
#[derive(Debug, Serialize, ToSchema)]
pub struct PermitDetail {
    #[serde(flatten)]
    pub permit: PermitResponse,
    /// The first period and every renewal.
    pub periods: Vec<PeriodResponse>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionRequest {
    pub action: PermitActionDto,
    /// Required to suspend or revoke.
    pub reason: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VisitResponse {
    pub id: String,
    pub visited_on: NaiveDate,
    pub notes: String,
    pub recorded_by: Option<String>,
    pub recorded_at: DateTime<Utc>,
}

impl From<Visit> for VisitResponse {
    fn from(v: Visit) -> Self {
        Self {
            id: v.id,
            visited_on: v.visited_on,
            notes: v.notes,
            recorded_by: v.recorded_by,
            recorded_at: v.recorded_at.and_utc(),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VisitRequest {
    /// Gregorian or Jalali (default today).
    pub visited_on: Option<String>,
    pub notes: String,
}

/// What anyone may learn from a permit number: no holder, no national ID, no address.
#[derive(Debug, Serialize, ToSchema)]
pub struct PublicPermitResponse {
    pub number: String,
    /// Whether the permit may be used today.
    pub valid: bool,
    pub state: PermitStateDto,
    pub activity: ActivityResponse,
    pub valid_from: NaiveDate,
    pub valid_until: NaiveDate,
    pub valid_until_jalali: Option<String>,
}

impl From<PublicPermit> for PublicPermitResponse {
    fn from(p: PublicPermit) -> Self {
        Self {
            valid: tavana_domain::permit::is_valid(
                p.state,
                p.valid_from,
                p.valid_until,
                Utc::now().date_naive(),
            ),
            number: p.number,
            state: p.state.into(),
            activity: p.activity.into(),
            valid_from: p.valid_from,
            valid_until_jalali: to_jalali(p.valid_until).map(|j| j.to_string()),
            valid_until: p.valid_until,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListApplicationsQuery {
    pub person_id: Option<Uuid>,
    pub state: Option<ApplicationStateDto>,
    /// Page size, 1–200 (default 50).
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListPermitsQuery {
    pub person_id: Option<Uuid>,
    pub activity: Option<String>,
    /// Page size, 1–200 (default 50).
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

fn today() -> NaiveDate {
    Utc::now().date_naive()
}

/// The activities a home-business permit can be for.
#[utoipa::path(
    tag = "permits",
    security(("bearer" = [])),
    responses((status = 200, description = "The catalogue", body = Vec<ActivityResponse>)),
)]
#[get("/permit-activities")]
pub async fn list_activities(
    _auth: Auth<perm::PermitRead>,
    state: web::Data<AppState>,
) -> Result<web::Json<Vec<ActivityResponse>>, ApiError> {
    let catalogue = with_db(&state, permits::activities).await?;
    Ok(web::Json(catalogue.into_iter().map(Into::into).collect()))
}

/// Applications in the caller's neighbourhoods.
#[utoipa::path(
    tag = "permits",
    security(("bearer" = [])),
    params(ListApplicationsQuery),
    responses((status = 200, description = "One page of applications", body = Page<ApplicationResponse>)),
)]
#[get("/permit-applications")]
pub async fn list_applications(
    auth: Auth<perm::PermitRead>,
    state: web::Data<AppState>,
    query: web::Query<ListApplicationsQuery>,
) -> Result<web::Json<Page<ApplicationResponse>>, ApiError> {
    let query = query.into_inner();
    let limit = pagination::limit(query.limit)?;
    let after: Option<PermitApplicationId> = query
        .cursor
        .as_deref()
        .map(pagination::decode_cursor)
        .transpose()?;
    let filter = ApplicationFilter {
        person_id: query.person_id.map(PersonId::from),
        state: query.state.map(Into::into),
    };
    let scope = auth.scope();
    let (items, more) = with_db(&state, move |c| {
        permits::list_applications(c, &scope, &filter, after, limit)
    })
    .await?;
    let next_cursor = pagination::next_cursor(more, items.last().map(|a| a.id.to_string()));
    Ok(web::Json(Page {
        items: items.into_iter().map(Into::into).collect(),
        next_cursor,
    }))
}

/// Apply for a home-business permit. Eligibility is checked and, when it fails, explained rule by
/// rule: adult (18+), household enrolled in a programme, a completed technical & vocational
/// course, no active permit for the same activity.
#[utoipa::path(
    tag = "permits",
    security(("bearer" = [])),
    request_body = ApplyRequest,
    responses(
        (status = 201, description = "Submitted", body = AppliedResponse),
        (status = 409, description = "An application for this activity is under review (`existing_id`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not eligible: `errors` names each failed rule (`code` is the rule); or invalid fields", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[post("/permit-applications")]
pub async fn apply(
    auth: Auth<perm::PermitApply>,
    state: web::Data<AppState>,
    body: web::Json<ApplyRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let applied_on = day_or_today("applied_on", body.applied_on.as_deref())?;
    let Some(address) = optional_text(Some(body.address)) else {
        return Err(tavana_domain::FieldError::new(
            "address",
            "required",
            "say where the work is done",
        )
        .into());
    };
    let new = NewApplication {
        person_id: PersonId::from(body.person_id),
        activity: body.activity.trim().to_owned(),
        address,
        applied_on,
    };
    let (context, scope) = (auth.audit(), auth.scope());
    let outcome = with_db(&state, move |c| permits::apply(c, &context, &scope, new)).await?;
    match outcome {
        ApplyOutcome::Submitted(application, checks) => Ok(HttpResponse::Created()
            .insert_header((
                actix_web::http::header::LOCATION,
                format!("/api/v1/permit-applications/{}", application.id),
            ))
            .insert_header(etag(application.version))
            .json(AppliedResponse {
                application: application.into(),
                eligibility: checks.into_iter().map(Into::into).collect(),
            })),
        ApplyOutcome::Ineligible(checks) => {
            let mut errors = tavana_domain::ValidationErrors::default();
            for check in checks.into_iter().filter(|c| !c.passed) {
                errors.push(tavana_domain::FieldError::new(
                    check.rule.field(),
                    check.rule.as_str(),
                    check.explanation,
                ));
            }
            Err(errors.into())
        }
    }
}

/// Read one application with every step of its review.
#[utoipa::path(
    tag = "permits",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The application's id")),
    responses(
        (status = 200, description = "The application; `ETag` carries its version", body = ApplicationResponse),
        (status = 404, description = "No such application in the caller's scope", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[get("/permit-applications/{id}")]
pub async fn read_application(
    auth: Auth<perm::PermitRead>,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let id = PermitApplicationId::from(id.into_inner());
    let scope = auth.scope();
    let application = with_db(&state, move |c| permits::get_application(c, &scope, id)).await?;
    Ok(HttpResponse::Ok()
        .insert_header(etag(application.version))
        .json(ApplicationResponse::from(application)))
}

/// Move an application one step (permit officers): submitted → under_review → inspected (with
/// the home visit's notes) → approved → issued, or rejected (with the reason) before issue.
/// `issued` creates the permit. A step out of order is a 409 listing the allowed ones.
#[utoipa::path(
    tag = "permits",
    security(("bearer" = [])),
    params(
        ("id" = Uuid, Path, description = "The application's id"),
        ("If-Match" = Option<String>, Header, description = "The ETag last read; refused with 412 if the application changed since"),
    ),
    request_body = StepRequest,
    responses(
        (status = 200, description = "Done", body = StepDoneResponse),
        (status = 404, description = "No such application in the caller's scope", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not allowed now (`allowed` lists what is), or an active permit for the activity exists", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "Changed since the ETag was read", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Missing notes, or dated before the previous step", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[post("/permit-applications/{id}/steps")]
pub async fn step(
    auth: Auth<perm::PermitReview>,
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<Uuid>,
    body: web::Json<StepRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = PermitApplicationId::from(id.into_inner());
    let expected = if_match(&req)?;
    let body = body.into_inner();
    let on = day_or_today("on", body.on.as_deref())?;
    let to: ApplicationState = body.to.into();
    let notes = optional_text(body.notes);
    let years = state.permit_validity_years;
    let (context, scope) = (auth.audit(), auth.scope());
    let outcome = with_db(&state, move |c| {
        permits::step(c, &context, &scope, id, expected, to, on, notes, years)
    })
    .await?;
    match outcome {
        StepOutcome::Done {
            application,
            permit,
            enrolments_moved,
        } => Ok(HttpResponse::Ok()
            .insert_header(etag(application.version))
            .json(StepDoneResponse {
                application: application.into(),
                permit: permit
                    .map(|p| PermitResponse::new(p, today()))
                    .transpose()?,
                enrolments_moved,
            })),
        StepOutcome::Refused(refusal) => Err(match &refusal {
            StepError::NotAllowed { allowed, .. } => ApiError::NotAllowed {
                message: refusal.to_string(),
                allowed: allowed.iter().map(|s| s.as_str().to_owned()).collect(),
            },
            StepError::Missing(_) => {
                tavana_domain::FieldError::new("notes", "required", refusal.to_string()).into()
            }
        }),
    }
}

/// Permits in the caller's neighbourhoods.
#[utoipa::path(
    tag = "permits",
    security(("bearer" = [])),
    params(ListPermitsQuery),
    responses((status = 200, description = "One page of permits", body = Page<PermitResponse>)),
)]
#[get("/permits")]
pub async fn list(
    auth: Auth<perm::PermitRead>,
    state: web::Data<AppState>,
    query: web::Query<ListPermitsQuery>,
) -> Result<web::Json<Page<PermitResponse>>, ApiError> {
    let query = query.into_inner();
    let limit = pagination::limit(query.limit)?;
    let after: Option<PermitId> = query
        .cursor
        .as_deref()
        .map(pagination::decode_cursor)
        .transpose()?;
    let filter = PermitFilter {
        person_id: query.person_id.map(PersonId::from),
        activity: query.activity,
    };
    let scope = auth.scope();
    let (items, more) = with_db(&state, move |c| {
        permits::list(c, &scope, &filter, after, limit)
    })
    .await?;
    let next_cursor = pagination::next_cursor(more, items.last().map(|p| p.id.clone()));
    let today = today();
    Ok(web::Json(Page {
        items: items
            .into_iter()
            .map(|p| PermitResponse::new(p, today))
            .collect::<Result<_, _>>()?,
        next_cursor,
    }))
}

/// Read one permit with its validity periods.
#[utoipa::path(
    tag = "permits",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The permit's id")),
    responses(
        (status = 200, description = "The permit; `ETag` carries its version", body = PermitDetail),
        (status = 404, description = "No such permit in the caller's scope", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[get("/permits/{id}")]
pub async fn read(
    auth: Auth<perm::PermitRead>,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let id = PermitId::from(id.into_inner());
    let scope = auth.scope();
    let (permit, periods) = with_db(&state, move |c| {
        Ok((
            permits::get(c, &scope, id)?,
            permits::periods(c, &scope, id)?,
        ))
    })
    .await?;
    Ok(HttpResponse::Ok()
        .insert_header(etag(permit.version))
        .json(detail(permit, periods)?))
}

fn detail(permit: Permit, periods: Vec<Period>) -> Result<PermitDetail, ApiError> {
    Ok(PermitDetail {
        permit: PermitResponse::new(permit, today())?,
        periods: periods
            .into_iter()
            .map(|p| PeriodResponse {
                seq: p.seq,
                valid_from: p.valid_from,
                valid_until: p.valid_until,
            })
            .collect(),
    })
}

/// Suspend, reinstate, revoke or renew a permit (permit officers). Suspending and revoking need a
/// reason; renewing adds a validity period that follows the current one (or starts today if it
/// has expired). An action the permit's state does not allow is a 409 listing the allowed ones.
#[utoipa::path(
    tag = "permits",
    security(("bearer" = [])),
    params(
        ("id" = Uuid, Path, description = "The permit's id"),
        ("If-Match" = Option<String>, Header, description = "The ETag last read; refused with 412 if the permit changed since"),
    ),
    request_body = ActionRequest,
    responses(
        (status = 200, description = "Done", body = PermitDetail),
        (status = 404, description = "No such permit in the caller's scope", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not allowed in the permit's state (`allowed` lists what is), or a renewal while another permit for the activity is in force", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "Changed since the ETag was read", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A reason is required", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[post("/permits/{id}/actions")]
pub async fn act(
    auth: Auth<perm::PermitReview>,
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<Uuid>,
    body: web::Json<ActionRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = PermitId::from(id.into_inner());
    let expected = if_match(&req)?;
    let body = body.into_inner();
    let action: PermitAction = body.action.into();
    let reason = optional_text(body.reason);
    let years = state.permit_validity_years;
    let (context, scope) = (auth.audit(), auth.scope());
    let outcome = with_db(&state, move |c| {
        match permits::act(
            c,
            &context,
            &scope,
            id,
            expected,
            action,
            reason,
            today(),
            years,
        )? {
            Ok(permit) => Ok(Ok((permit, permits::periods(c, &scope, id)?))),
            Err(refused) => Ok(Err(refused)),
        }
    })
    .await?;
    match outcome {
        Ok((permit, periods)) => Ok(HttpResponse::Ok()
            .insert_header(etag(permit.version))
            .json(detail(permit, periods)?)),
        Err(refused) => Err(ApiError::NotAllowed {
            message: format!("a {} permit cannot be {}", refused.state, past(action)),
            allowed: refused
                .allowed
                .iter()
                .map(|a| a.as_str().to_owned())
                .collect(),
        }),
    }
}

fn past(action: PermitAction) -> &'static str {
    match action {
        PermitAction::Suspend => "suspended",
        PermitAction::Reinstate => "reinstated",
        PermitAction::Revoke => "revoked",
        PermitAction::Renew => "renewed",
    }
}

/// Monitoring visits of a permit, oldest first.
#[utoipa::path(
    tag = "permits",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The permit's id")),
    responses(
        (status = 200, description = "Visits", body = Vec<VisitResponse>),
        (status = 404, description = "No such permit in the caller's scope", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[get("/permits/{id}/visits")]
pub async fn list_visits(
    auth: Auth<perm::PermitRead>,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<web::Json<Vec<VisitResponse>>, ApiError> {
    let id = PermitId::from(id.into_inner());
    let scope = auth.scope();
    let visits = with_db(&state, move |c| permits::visits(c, &scope, id)).await?;
    Ok(web::Json(visits.into_iter().map(Into::into).collect()))
}

/// Record a monitoring visit (permit officers).
#[utoipa::path(
    tag = "permits",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The permit's id")),
    request_body = VisitRequest,
    responses(
        (status = 201, description = "Recorded", body = VisitResponse),
        (status = 404, description = "No such permit in the caller's scope", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "No notes, or a day before the permit was issued", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[post("/permits/{id}/visits")]
pub async fn add_visit(
    auth: Auth<perm::PermitReview>,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    body: web::Json<VisitRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = PermitId::from(id.into_inner());
    let body = body.into_inner();
    let visited_on = day_or_today("visited_on", body.visited_on.as_deref())?;
    let Some(notes) = optional_text(Some(body.notes)) else {
        return Err(tavana_domain::FieldError::new(
            "notes",
            "required",
            "say what the visit found",
        )
        .into());
    };
    let (context, scope) = (auth.audit(), auth.scope());
    let visit = with_db(&state, move |c| {
        permits::add_visit(c, &context, &scope, id, visited_on, notes)
    })
    .await?;
    Ok(HttpResponse::Created().json(VisitResponse::from(visit)))
}

/// Verify a permit number, without signing in: whether it is valid today, its activity, state and
/// validity dates. Never the holder's name, ID or address. Rate limited per client address.
#[utoipa::path(
    tag = "permits",
    params(("number" = String, Path, description = "The permit number, e.g. `KR-1403-000123`")),
    responses(
        (status = 200, description = "The permit's public facts", body = PublicPermitResponse),
        (status = 404, description = "No permit has this number", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many lookups from this address; `Retry-After` says when to try again", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[get("/public/permits/{number}")]
pub async fn verify(
    state: web::Data<AppState>,
    req: HttpRequest,
    number: web::Path<String>,
) -> Result<web::Json<PublicPermitResponse>, ApiError> {
    let number = number.into_inner().trim().to_ascii_uppercase();
    let key = format!("public:{}", client_address(&state, &req));
    crate::rate_limit::check(&state, key, state.public_rate_limit_per_minute).await?;
    if !looks_like_permit_number(&number) {
        return Err(ApiError::NotFound);
    }
    let permit = with_db(&state, move |c| permits::verify(c, &number, today())).await?;
    Ok(web::Json(permit.into()))
}
