//! `/api/v1/persons/{id}/consents`: what a person agreed to; enrolment needs the head's consent.

use actix_web::{HttpResponse, get, post, web};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use tavana_domain::calendar::to_jalali;
use tavana_domain::consent::{Consent, ConsentPurpose};
use tavana_domain::id::{ConsentId, PersonId};
use tavana_persistence::consents::{self, NewConsent};
use tavana_persistence::idempotency;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::{Auth, perm};
use crate::conventions::{day_or_today, optional_text};
use crate::error::{ApiError, Problem};
use crate::idempotency::{IdempotencyKey, created, respond};
use crate::{AppState, with_db};

pub fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(list).service(record).service(withdraw);
}

api_enum!(
    /// What the consent is for: `programme` (needed to enrol) or `research` (the partners' study).
    ConsentPurposeDto => ConsentPurpose {
        Programme => "programme",
        Research => "research",
    }
);

#[derive(Debug, Serialize, ToSchema)]
pub struct ConsentResponse {
    pub id: Uuid,
    pub person_id: Uuid,
    pub purpose: ConsentPurposeDto,
    /// Whether partner agencies may see the person's data.
    pub share_with_partners: bool,
    pub given_on: NaiveDate,
    #[schema(example = "1398-01-15")]
    pub given_on_jalali: Option<String>,
    /// The user who recorded it.
    pub recorded_by: Option<String>,
    pub recorded_at: DateTime<Utc>,
    pub withdrawn_on: Option<NaiveDate>,
    pub withdrawal_reason: Option<String>,
    /// In force today.
    pub in_force: bool,
}

impl From<Consent> for ConsentResponse {
    fn from(c: Consent) -> Self {
        Self {
            in_force: c.in_force_on(Utc::now().date_naive()),
            id: c.id.as_uuid(),
            person_id: c.person_id.as_uuid(),
            purpose: c.purpose.into(),
            share_with_partners: c.share_with_partners,
            given_on_jalali: to_jalali(c.given_on).map(|j| j.to_string()),
            given_on: c.given_on,
            recorded_by: c.recorded_by,
            recorded_at: c.recorded_at.and_utc(),
            withdrawn_on: c.withdrawn_on,
            withdrawal_reason: c.withdrawal_reason,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordConsentRequest {
    pub purpose: ConsentPurposeDto,
    pub share_with_partners: bool,
    /// The day it was given, Gregorian or Jalali (default: today).
    pub given_on: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WithdrawConsentRequest {
    /// From when (default: today).
    pub on: Option<String>,
    pub reason: Option<String>,
}

/// A person's consents, oldest first.
#[utoipa::path(
    tag = "persons",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The person's id")),
    responses(
        (status = 200, description = "Consents", body = Vec<ConsentResponse>),
        (status = 404, description = "No such person in the caller's scope", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[get("/persons/{id}/consents")]
pub async fn list(
    auth: Auth<perm::PersonRead>,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<web::Json<Vec<ConsentResponse>>, ApiError> {
    let person = PersonId::from(id.into_inner());
    let scope = auth.scope();
    let found = with_db(&state, move |c| consents::list(c, &scope, person)).await?;
    Ok(web::Json(found.into_iter().map(Into::into).collect()))
}

/// Record a consent the person gave.
#[utoipa::path(
    tag = "persons",
    security(("bearer" = [])),
    params(
        ("id" = Uuid, Path, description = "The person's id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Retrying with the same key and body returns the first answer and records nothing twice"),
    ),
    request_body = RecordConsentRequest,
    responses(
        (status = 201, description = "Recorded", body = ConsentResponse),
        (status = 404, description = "No such person in the caller's scope", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The person's record was merged into another (read it by id for the remaining person)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[post("/persons/{id}/consents")]
pub async fn record(
    auth: Auth<perm::PersonWrite>,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    key: IdempotencyKey,
    body: web::Json<RecordConsentRequest>,
) -> Result<HttpResponse, ApiError> {
    let person = PersonId::from(id.into_inner());
    let body = body.into_inner();
    let request = key.request(
        &auth,
        &format!("POST /api/v1/persons/{person}/consents"),
        &body,
    )?;
    let given_on = day_or_today("given_on", body.given_on.as_deref())?;
    if given_on > Utc::now().date_naive() {
        return Err(tavana_domain::FieldError::new(
            "given_on",
            "in_future",
            "must not be in the future",
        )
        .into());
    }
    let new = NewConsent {
        purpose: body.purpose.into(),
        share_with_partners: body.share_with_partners,
        given_on,
    };
    let (context, scope) = (auth.audit(), auth.scope());
    let location = format!("/api/v1/persons/{person}/consents");
    let render =
        move |consent: &Consent| created(location.clone(), &ConsentResponse::from(consent.clone()));
    let stored = render.clone();
    let outcome = with_db(&state, move |c| {
        idempotency::run(
            c,
            request.as_ref(),
            |c| consents::record(c, &context, &scope, person, new),
            stored,
        )
    })
    .await?;
    respond(outcome, render)
}

/// Withdraw a consent. Enrolment steps that need it are refused from that day on.
#[utoipa::path(
    tag = "persons",
    security(("bearer" = [])),
    params(
        ("id" = Uuid, Path, description = "The person's id"),
        ("consent_id" = Uuid, Path, description = "The consent's id"),
    ),
    request_body = WithdrawConsentRequest,
    responses(
        (status = 200, description = "Withdrawn", body = ConsentResponse),
        (status = 404, description = "No such person or consent in the caller's scope", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Withdrawn already", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A date before the consent was given, or after today", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[post("/persons/{id}/consents/{consent_id}/withdraw")]
pub async fn withdraw(
    auth: Auth<perm::PersonWrite>,
    state: web::Data<AppState>,
    path: web::Path<(Uuid, Uuid)>,
    body: web::Json<WithdrawConsentRequest>,
) -> Result<web::Json<ConsentResponse>, ApiError> {
    let (person, consent) = path.into_inner();
    let (person, consent) = (PersonId::from(person), ConsentId::from(consent));
    let body = body.into_inner();
    let on = day_or_today("on", body.on.as_deref())?;
    // A withdrawal takes effect when it is recorded: one dated ahead would end sharing on a day
    // no write marks, and partners' copies would never hear of it.
    if on > chrono::Utc::now().date_naive() {
        return Err(tavana_domain::FieldError::new(
            "on",
            "in_future",
            "a consent is withdrawn on or before the day it is recorded",
        )
        .into());
    }
    let reason = optional_text(body.reason);
    let (context, scope) = (auth.audit(), auth.scope());
    let withdrawn = with_db(&state, move |c| {
        consents::withdraw(c, &context, &scope, person, consent, on, reason)
    })
    .await?;
    Ok(web::Json(withdrawn.into()))
}
