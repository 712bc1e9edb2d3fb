//! Employment outcomes: work with evidence, verified by someone else, followed up at 3, 6 and 12
//! months.

use actix_web::{HttpResponse, get, post, web};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use tavana_domain::calendar::to_jalali;
use tavana_domain::id::{OutcomeId, PersonId};
use tavana_domain::outcome::{Evidence, FollowUp, Outcome, OutcomeKind};
use tavana_persistence::idempotency;
use tavana_persistence::outcomes::{self, NewOutcome};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::{Auth, perm};
use crate::conventions::{day_or_today, optional_text};
use crate::error::{ApiError, Problem};
use crate::idempotency::{IdempotencyKey, created, respond};
use crate::{AppState, with_db};

pub fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(list)
        .service(record)
        .service(verify)
        .service(follow_up);
}

api_enum!(
    /// The kind of work.
    OutcomeKindDto => OutcomeKind {
        HomeBusiness => "home_business",
        WageJob => "wage_job",
        SelfEmployed => "self_employed",
        Cooperative => "cooperative",
    }
);

api_enum!(
    /// What shows the work is real.
    EvidenceDto => Evidence {
        SocialInsurance => "social_insurance",
        PermitAndSales => "permit_and_sales",
        EmployerLetter => "employer_letter",
    }
);

#[derive(Debug, Serialize, ToSchema)]
pub struct FollowUpResponse {
    /// 3, 6 or 12.
    pub months: u32,
    pub due_on: NaiveDate,
    pub due_on_jalali: Option<String>,
    pub done_on: Option<NaiveDate>,
    pub still_employed: Option<bool>,
    pub notes: Option<String>,
}

impl From<FollowUp> for FollowUpResponse {
    fn from(f: FollowUp) -> Self {
        Self {
            months: f.months,
            due_on_jalali: to_jalali(f.due_on).map(|j| j.to_string()),
            due_on: f.due_on,
            done_on: f.done_on,
            still_employed: f.still_employed,
            notes: f.notes,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OutcomeResponse {
    pub id: Uuid,
    pub person_id: Uuid,
    pub kind: OutcomeKindDto,
    pub started_on: NaiveDate,
    pub started_on_jalali: Option<String>,
    pub evidence: EvidenceDto,
    pub evidence_reference: Option<String>,
    pub recorded_by: Option<String>,
    /// Counted as employment only once verified.
    pub verified: bool,
    pub verified_by: Option<String>,
    pub verified_on: Option<NaiveDate>,
    pub follow_ups: Vec<FollowUpResponse>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
}

impl From<Outcome> for OutcomeResponse {
    fn from(o: Outcome) -> Self {
        Self {
            verified: o.is_verified(),
            id: o.id.as_uuid(),
            person_id: o.person_id.as_uuid(),
            kind: o.kind.into(),
            started_on_jalali: to_jalali(o.started_on).map(|j| j.to_string()),
            started_on: o.started_on,
            evidence: o.evidence.into(),
            evidence_reference: o.evidence_reference,
            recorded_by: o.recorded_by,
            verified_by: o.verified_by,
            verified_on: o.verified_on,
            follow_ups: o.follow_ups.into_iter().map(Into::into).collect(),
            version: o.version,
            created_at: o.created_at.and_utc(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordOutcomeRequest {
    pub kind: OutcomeKindDto,
    /// When the work started, Gregorian or Jalali.
    pub started_on: String,
    pub evidence: EvidenceDto,
    /// The insurance number, permit number or letter reference.
    pub evidence_reference: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyOutcomeRequest {
    /// Default: today.
    pub on: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FollowUpRequest {
    /// Default: today.
    pub done_on: Option<String>,
    pub still_employed: bool,
    pub notes: Option<String>,
}

/// A day not in the future (Gregorian or Jalali), or today.
fn past_day(field: &str, input: Option<&str>) -> Result<NaiveDate, ApiError> {
    let date = day_or_today(field, input)?;
    if date > Utc::now().date_naive() {
        return Err(tavana_domain::FieldError::new(
            field,
            "in_future",
            "must not be in the future",
        )
        .into());
    }
    Ok(date)
}

/// A person's employment outcomes with their follow-ups.
#[utoipa::path(
    tag = "persons",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The person's id")),
    responses(
        (status = 200, description = "Outcomes", body = Vec<OutcomeResponse>),
        (status = 404, description = "No such person in the caller's scope", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[get("/persons/{id}/outcomes")]
pub async fn list(
    auth: Auth<perm::PersonRead>,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<web::Json<Vec<OutcomeResponse>>, ApiError> {
    let person = PersonId::from(id.into_inner());
    let scope = auth.scope();
    let found = with_db(&state, move |c| outcomes::list(c, &scope, person)).await?;
    Ok(web::Json(found.into_iter().map(Into::into).collect()))
}

/// Record that a person started work, with its evidence. Follow-ups fall due at 3, 6 and 12
/// months.
#[utoipa::path(
    tag = "persons",
    security(("bearer" = [])),
    params(
        ("id" = Uuid, Path, description = "The person's id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Retrying with the same key and body returns the first answer and records nothing twice"),
    ),
    request_body = RecordOutcomeRequest,
    responses(
        (status = 201, description = "Recorded", body = OutcomeResponse),
        (status = 404, description = "No such person in the caller's scope", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The person's record was merged into another (read it by id for the remaining person)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[post("/persons/{id}/outcomes")]
pub async fn record(
    auth: Auth<perm::PersonWrite>,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    key: IdempotencyKey,
    body: web::Json<RecordOutcomeRequest>,
) -> Result<HttpResponse, ApiError> {
    let person = PersonId::from(id.into_inner());
    let body = body.into_inner();
    let request = key.request(
        &auth,
        &format!("POST /api/v1/persons/{person}/outcomes"),
        &body,
    )?;
    let new = NewOutcome {
        kind: body.kind.into(),
        started_on: past_day("started_on", Some(&body.started_on))?,
        evidence: body.evidence.into(),
        evidence_reference: optional_text(body.evidence_reference),
    };
    let (context, scope) = (auth.audit(), auth.scope());
    let location = format!("/api/v1/persons/{person}/outcomes");
    let render = move |o: &Outcome| created(location.clone(), &OutcomeResponse::from(o.clone()));
    let stored = render.clone();
    let result = with_db(&state, move |c| {
        idempotency::run(
            c,
            request.as_ref(),
            |c| outcomes::record(c, &context, &scope, person, new),
            stored,
        )
    })
    .await?;
    respond(result, render)
}

/// Verify an outcome's evidence (programme managers). Only verified outcomes count as employment;
/// whoever recorded an outcome does not verify it.
#[utoipa::path(
    tag = "persons",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The outcome's id")),
    request_body = VerifyOutcomeRequest,
    responses(
        (status = 200, description = "Verified", body = OutcomeResponse),
        (status = 404, description = "No such outcome in the caller's scope", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Verified already, or the caller recorded it", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[post("/outcomes/{id}/verify")]
pub async fn verify(
    auth: Auth<perm::OutcomeVerify>,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    body: web::Json<VerifyOutcomeRequest>,
) -> Result<web::Json<OutcomeResponse>, ApiError> {
    let id = OutcomeId::from(id.into_inner());
    let on = past_day("on", body.into_inner().on.as_deref())?;
    let (context, scope) = (auth.audit(), auth.scope());
    let outcome = with_db(&state, move |c| {
        outcomes::verify(c, &context, &scope, id, on)
    })
    .await?;
    Ok(web::Json(outcome.into()))
}

/// Record the follow-up due `months` (3, 6 or 12) after the start.
#[utoipa::path(
    tag = "persons",
    security(("bearer" = [])),
    params(
        ("id" = Uuid, Path, description = "The outcome's id"),
        ("months" = u32, Path, description = "3, 6 or 12"),
    ),
    request_body = FollowUpRequest,
    responses(
        (status = 200, description = "Recorded", body = OutcomeResponse),
        (status = 404, description = "No such outcome or follow-up in the caller's scope", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Recorded already", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[post("/outcomes/{id}/follow-ups/{months}")]
pub async fn follow_up(
    auth: Auth<perm::PersonWrite>,
    state: web::Data<AppState>,
    path: web::Path<(Uuid, u32)>,
    body: web::Json<FollowUpRequest>,
) -> Result<web::Json<OutcomeResponse>, ApiError> {
    let (id, months) = path.into_inner();
    let id = OutcomeId::from(id);
    let body = body.into_inner();
    let done_on = past_day("done_on", body.done_on.as_deref())?;
    let notes = optional_text(body.notes);
    let (context, scope) = (auth.audit(), auth.scope());
    let outcome = with_db(&state, move |c| {
        outcomes::follow_up(
            c,
            &context,
            &scope,
            id,
            months,
            done_on,
            body.still_employed,
            notes,
        )
    })
    .await?;
    Ok(web::Json(outcome.into()))
}
