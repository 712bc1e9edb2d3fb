//! `/api/v1/enrolments`: households in programmes, moved through their states by explicit
//! transitions with a full history.

use actix_web::{HttpRequest, HttpResponse, get, post, web};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use tavana_domain::calendar::{parse_date, to_jalali};
use tavana_domain::enrolment::{Enrolment, EnrolmentState, Transition, TransitionError, state_on};
use tavana_domain::id::{AreaId, EnrolmentId, HouseholdId, ProgrammeId};
use tavana_persistence::enrolments::{self, EnrolmentFilter, TransitionOutcome};
use tavana_persistence::idempotency;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::{Auth, perm};
use crate::conventions::{day_or_today, etag, if_match, optional_text};
use crate::error::{ApiError, Problem};
use crate::idempotency::{IdempotencyKey, created, respond};
use crate::pagination::{self, Page};
use crate::{AppState, with_db};

pub fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(list)
        .service(create)
        .service(read)
        .service(history)
        .service(transition);
}

api_enum!(
    /// An enrolment's state.
    EnrolmentStateDto => EnrolmentState {
        Identified => "identified",
        Assessed => "assessed",
        Enrolled => "enrolled",
        InTraining => "in_training",
        Permitted => "permitted",
        Financed => "financed",
        Employed => "employed",
        Graduated => "graduated",
        Paused => "paused",
        Exited => "exited",
    }
);

#[derive(Debug, Serialize, ToSchema)]
pub struct EnrolmentResponse {
    pub id: Uuid,
    pub programme_id: Uuid,
    pub household_id: Uuid,
    pub neighbourhood_id: Uuid,
    pub state: EnrolmentStateDto,
    pub state_since: NaiveDate,
    #[schema(example = "1398-02-01")]
    pub state_since_jalali: Option<String>,
    /// The state before the current pause.
    pub resume_to: Option<EnrolmentStateDto>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Enrolment> for EnrolmentResponse {
    fn from(e: Enrolment) -> Self {
        Self {
            id: e.id.as_uuid(),
            programme_id: e.programme_id.as_uuid(),
            household_id: e.household_id.as_uuid(),
            neighbourhood_id: e.neighbourhood_id.as_uuid(),
            state: e.state.into(),
            state_since_jalali: to_jalali(e.state_since).map(|j| j.to_string()),
            state_since: e.state_since,
            resume_to: e.resume_to.map(Into::into),
            version: e.version,
            created_at: e.created_at.and_utc(),
            updated_at: e.updated_at.and_utc(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TransitionResponse {
    pub seq: i32,
    pub from: Option<EnrolmentStateDto>,
    pub to: EnrolmentStateDto,
    pub on: NaiveDate,
    pub on_jalali: Option<String>,
    pub reason: Option<String>,
    /// Who recorded it.
    pub actor_id: Option<String>,
    pub recorded_at: DateTime<Utc>,
}

impl From<Transition> for TransitionResponse {
    fn from(t: Transition) -> Self {
        Self {
            seq: t.seq,
            from: t.from.map(Into::into),
            to: t.to.into(),
            on_jalali: to_jalali(t.on).map(|j| j.to_string()),
            on: t.on,
            reason: t.reason,
            actor_id: t.actor_id,
            recorded_at: t.recorded_at.and_utc(),
        }
    }
}

/// The history, and the state on a past day when asked.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryResponse {
    pub transitions: Vec<TransitionResponse>,
    /// The state on `on`, when the request named a day; `null` if not yet identified then.
    pub state_on: Option<EnrolmentStateDto>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEnrolmentRequest {
    pub programme_id: Uuid,
    /// A household in the caller's scope.
    pub household_id: Uuid,
    /// The day it was identified, Gregorian or Jalali (default: today).
    pub on: Option<String>,
    pub reason: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransitionRequest {
    pub to: EnrolmentStateDto,
    /// The day it takes effect, Gregorian or Jalali (default: today).
    pub on: Option<String>,
    pub reason: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListEnrolmentsQuery {
    pub programme_id: Option<Uuid>,
    pub household_id: Option<Uuid>,
    pub neighbourhood_id: Option<Uuid>,
    pub state: Option<EnrolmentStateDto>,
    /// Page size, 1–200 (default 50).
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// A day (Gregorian or Jalali) to answer "which state was it in then".
    pub on: Option<String>,
}

/// List enrolments in the caller's neighbourhoods.
#[utoipa::path(
    tag = "enrolments",
    security(("bearer" = [])),
    params(ListEnrolmentsQuery),
    responses((status = 200, description = "One page of enrolments", body = Page<EnrolmentResponse>)),
)]
#[get("/enrolments")]
pub async fn list(
    auth: Auth<perm::EnrolmentRead>,
    state: web::Data<AppState>,
    query: web::Query<ListEnrolmentsQuery>,
) -> Result<web::Json<Page<EnrolmentResponse>>, ApiError> {
    let query = query.into_inner();
    let limit = pagination::limit(query.limit)?;
    let after: Option<EnrolmentId> = query
        .cursor
        .as_deref()
        .map(pagination::decode_cursor)
        .transpose()?;
    let filter = EnrolmentFilter {
        programme_id: query.programme_id.map(ProgrammeId::from),
        household_id: query.household_id.map(HouseholdId::from),
        neighbourhood_id: query.neighbourhood_id.map(AreaId::from),
        state: query.state.map(Into::into),
    };
    let scope = auth.scope();
    let (items, more) = with_db(&state, move |c| {
        enrolments::list(c, &scope, &filter, after, limit)
    })
    .await?;
    let next_cursor = pagination::next_cursor(more, items.last().map(|e| e.id.to_string()));
    Ok(web::Json(Page {
        items: items.into_iter().map(Into::into).collect(),
        next_cursor,
    }))
}

/// Read one enrolment.
#[utoipa::path(
    tag = "enrolments",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The enrolment's id")),
    responses(
        (status = 200, description = "The enrolment; `ETag` carries its version", body = EnrolmentResponse),
        (status = 404, description = "No such enrolment in the caller's scope", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[get("/enrolments/{id}")]
pub async fn read(
    auth: Auth<perm::EnrolmentRead>,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let id = EnrolmentId::from(id.into_inner());
    let scope = auth.scope();
    let enrolment = with_db(&state, move |c| enrolments::get(c, &scope, id)).await?;
    Ok(HttpResponse::Ok()
        .insert_header(etag(enrolment.version))
        .json(EnrolmentResponse::from(enrolment)))
}

/// Identify a household for a programme: the enrolment starts in `identified`.
#[utoipa::path(
    tag = "enrolments",
    security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Retrying with the same key and body returns the first answer and creates nothing")),
    request_body = CreateEnrolmentRequest,
    responses(
        (status = 201, description = "Created", body = EnrolmentResponse),
        (status = 409, description = "The household is in this programme already; `existing_id` names the enrolment", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, unknown programme, or a household outside the caller's scope", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[post("/enrolments")]
pub async fn create(
    auth: Auth<perm::EnrolmentWrite>,
    state: web::Data<AppState>,
    key: IdempotencyKey,
    body: web::Json<CreateEnrolmentRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let request = key.request(&auth, "POST /api/v1/enrolments", &body)?;
    let on = day_or_today("on", body.on.as_deref())?;
    let (programme, household) = (
        ProgrammeId::from(body.programme_id),
        HouseholdId::from(body.household_id),
    );
    let why = optional_text(body.reason);
    let (context, scope) = (auth.audit(), auth.scope());
    let render = |e: &Enrolment| {
        created(
            format!("/api/v1/enrolments/{}", e.id),
            &EnrolmentResponse::from(e.clone()),
        )
    };
    let outcome = with_db(&state, move |c| {
        idempotency::run(
            c,
            request.as_ref(),
            |c| enrolments::create(c, &context, &scope, programme, household, on, why),
            render,
        )
    })
    .await?;
    respond(outcome, render)
}

/// The enrolment's transitions in order, and optionally its state on a given day.
#[utoipa::path(
    tag = "enrolments",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The enrolment's id"), HistoryQuery),
    responses(
        (status = 200, description = "History", body = HistoryResponse),
        (status = 404, description = "No such enrolment in the caller's scope", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[get("/enrolments/{id}/transitions")]
pub async fn history(
    auth: Auth<perm::EnrolmentRead>,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    query: web::Query<HistoryQuery>,
) -> Result<web::Json<HistoryResponse>, ApiError> {
    let id = EnrolmentId::from(id.into_inner());
    let on = query
        .into_inner()
        .on
        .as_deref()
        .map(|d| parse_date("on", d))
        .transpose()
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let scope = auth.scope();
    let transitions = with_db(&state, move |c| enrolments::history(c, &scope, id)).await?;
    let state_then = on
        .and_then(|day| state_on(&transitions, day))
        .map(Into::into);
    Ok(web::Json(HistoryResponse {
        transitions: transitions.into_iter().map(Into::into).collect(),
        state_on: state_then,
    }))
}

/// Move the enrolment to another state. A change the rules do not allow is a 409 listing the
/// allowed ones; enrolling needs the head's programme consent. Honours `If-Match`.
#[utoipa::path(
    tag = "enrolments",
    security(("bearer" = [])),
    params(
        ("id" = Uuid, Path, description = "The enrolment's id"),
        ("If-Match" = Option<String>, Header, description = "The ETag last read; refused with 412 if the enrolment changed since"),
    ),
    request_body = TransitionRequest,
    responses(
        (status = 200, description = "Moved", body = EnrolmentResponse),
        (status = 404, description = "No such enrolment in the caller's scope", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not allowed now; `allowed` lists what is", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "Changed since the ETag was read", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, or dated before the previous transition", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[post("/enrolments/{id}/transitions")]
pub async fn transition(
    auth: Auth<perm::EnrolmentWrite>,
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<Uuid>,
    body: web::Json<TransitionRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = EnrolmentId::from(id.into_inner());
    let expected = if_match(&req)?;
    let body = body.into_inner();
    let on = day_or_today("on", body.on.as_deref())?;
    let to: EnrolmentState = body.to.into();
    let why = optional_text(body.reason);
    let (context, scope) = (auth.audit(), auth.scope());
    let step = enrolments::Step {
        id,
        expected_version: expected,
        to,
        on,
        reason: why,
    };
    let outcome = with_db(&state, move |c| {
        enrolments::transition(c, &context, &scope, step)
    })
    .await?;
    match outcome {
        TransitionOutcome::Done(enrolment) => Ok(HttpResponse::Ok()
            .insert_header(etag(enrolment.version))
            .json(EnrolmentResponse::from(enrolment))),
        TransitionOutcome::Refused(refusal) => Err(match &refusal {
            TransitionError::NotAllowed { allowed, .. } => ApiError::NotAllowed {
                message: refusal.to_string(),
                allowed: allowed.iter().map(|s| s.as_str().to_owned()).collect(),
            },
            TransitionError::ConsentRequired { .. } => ApiError::Conflict(refusal.to_string()),
            TransitionError::BeforePrevious { .. } => {
                tavana_domain::FieldError::new("on", "before_previous", refusal.to_string()).into()
            }
        }),
    }
}
