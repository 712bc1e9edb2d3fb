//! `/api/v1/persons`: people in the registry, their household and its history.

use actix_web::{HttpRequest, HttpResponse, get, patch, post, web};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use tavana_domain::ValidationErrors;
use tavana_domain::access::mask;
use tavana_domain::calendar::to_jalali;
use tavana_domain::id::{AreaId, HouseholdId, PersonId};
use tavana_domain::mobile::Mobile;
use tavana_domain::national_id::NationalId;
use tavana_domain::person::{
    Education, HouseholdRole, NewPerson, Person, PersonInput, PersonName, Sex, parse_birth_date,
};
use tavana_domain::text::normalise;
use tavana_persistence::persons::{self, Membership, Move, PersonChanges, PersonFilter};
use tavana_persistence::{duplicates, idempotency};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::{Auth, perm};
use crate::conventions::{day_or_today, etag, if_match, optional_text, present};
use crate::error::{ApiError, Problem};
use crate::idempotency::{IdempotencyKey, created, respond};
use crate::pagination::{self, Page};
use crate::{AppState, with_db};

pub fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(list)
        .service(create)
        .service(read)
        .service(update)
        .service(history)
        .service(move_person)
        .service(change_head)
        .service(split_household)
        .service(list_duplicates)
        .service(dismiss_duplicate)
        .service(merge);
}

api_enum!(
    /// Sex as on the national ID card.
    SexDto => Sex { Female => "female", Male => "male" }
);
api_enum!(
    /// Highest level of education completed.
    EducationDto => Education { None => "none", Literacy => "literacy", Primary => "primary", LowerSecondary => "lower_secondary", Diploma => "diploma", Associate => "associate", Bachelor => "bachelor", Master => "master", Doctorate => "doctorate" }
);
api_enum!(
    /// A person's place in a household.
    HouseholdRoleDto => HouseholdRole { Head => "head", Spouse => "spouse", Child => "child", Other => "other" }
);

#[derive(Debug, Serialize, ToSchema)]
pub struct PersonResponse {
    pub id: Uuid,
    #[schema(example = "0499370899")]
    pub national_id: String,
    /// As written.
    #[schema(example = "فاطمه")]
    pub first_name: String,
    #[schema(example = "رضایی")]
    pub last_name: String,
    pub birth_date: NaiveDate,
    /// The birth date in the Jalali calendar.
    #[schema(example = "1360-05-12")]
    pub birth_date_jalali: Option<String>,
    pub sex: SexDto,
    #[schema(example = "09151234567")]
    pub mobile: Option<String>,
    pub education: Option<EducationDto>,
    pub household_id: Option<Uuid>,
    pub household_role: Option<HouseholdRoleDto>,
    pub neighbourhood_id: Option<Uuid>,
    /// Derived: a woman who is the head of her household.
    pub woman_head: bool,
    /// Set when this record was merged into another person's (the id to use instead).
    pub merged_into: Option<Uuid>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Person> for PersonResponse {
    fn from(person: Person) -> Self {
        Self {
            woman_head: person.is_woman_head(),
            id: person.id.as_uuid(),
            national_id: person.national_id,
            first_name: person.first_name,
            last_name: person.last_name,
            birth_date_jalali: to_jalali(person.birth_date).map(|j| j.to_string()),
            birth_date: person.birth_date,
            sex: person.sex.into(),
            mobile: person.mobile,
            education: person.education.map(Into::into),
            household_id: person.household_id.map(|h| h.as_uuid()),
            household_role: person.household_role.map(Into::into),
            neighbourhood_id: person.neighbourhood_id.map(|n| n.as_uuid()),
            merged_into: person.merged_into.map(|p| p.as_uuid()),
            version: person.version,
            created_at: person.created_at.and_utc(),
            updated_at: person.updated_at.and_utc(),
        }
    }
}

impl PersonResponse {
    /// The person as this caller may see it: identifiers masked for roles that do not need them.
    pub fn for_caller(person: Person, caller: &crate::auth::Caller) -> Self {
        let mut response = Self::from(person);
        if !caller.sees_identifiers() {
            response.national_id = mask(&response.national_id);
            response.mobile = response.mobile.as_deref().map(mask);
        }
        response
    }
}

/// A newly registered person and the persons who may be the same one.
#[derive(Debug, Serialize, ToSchema)]
pub struct PersonCreated {
    #[serde(flatten)]
    pub person: PersonResponse,
    /// Persons with the same normalised name and birth year in the same district.
    pub possible_duplicates: Vec<Uuid>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePersonRequest {
    /// Ten digits with a valid check digit; Persian or Arabic-Indic digits are accepted.
    #[schema(example = "۰۴۹۹۳۷۰۸۹۹")]
    pub national_id: String,
    pub first_name: String,
    pub last_name: String,
    /// `YYYY-MM-DD`, Gregorian or Jalali (years before 1700 are Jalali).
    #[schema(example = "1360-05-12")]
    pub birth_date: String,
    pub sex: SexDto,
    /// `09…`, `+989…` or `00989…`.
    pub mobile: Option<String>,
    pub education: Option<EducationDto>,
    /// A household in the caller's scope.
    pub household_id: Uuid,
    pub household_role: HouseholdRoleDto,
    /// When the person joined the household (default: today).
    pub member_since: Option<String>,
}

/// Fields to change; absent fields stay, `null` clears an optional one.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdatePersonRequest {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub birth_date: Option<String>,
    pub sex: Option<SexDto>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub mobile: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<EducationDto>)]
    pub education: Option<Option<EducationDto>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MovePersonRequest {
    /// The household the person joins (in the caller's scope).
    pub household_id: Uuid,
    pub household_role: HouseholdRoleDto,
    /// From when (default: today).
    pub on: Option<String>,
    pub reason: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeHeadRequest {
    /// A member of the household, who becomes its head.
    pub person_id: Uuid,
    /// The role the previous head takes (e.g. `spouse`).
    pub previous_head_role: HouseholdRoleDto,
    pub on: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MembershipResponse {
    pub household_id: String,
    pub role: String,
    pub started_on: NaiveDate,
    pub ended_on: Option<NaiveDate>,
    pub reason: Option<String>,
}

impl From<Membership> for MembershipResponse {
    fn from(m: Membership) -> Self {
        Self {
            household_id: m.household_id,
            role: m.role,
            started_on: m.started_on,
            ended_on: m.ended_on,
            reason: m.reason,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListPersonsQuery {
    pub neighbourhood_id: Option<Uuid>,
    pub household_id: Option<Uuid>,
    pub sex: Option<SexDto>,
    /// Only women heads of household (`true`) or only others (`false`).
    pub woman_head: Option<bool>,
    /// Part of the name; Arabic and Persian letters match each other.
    pub name: Option<String>,
    /// An exact national ID (any digit script).
    pub national_id: Option<String>,
    /// Only members of households enrolled in this programme.
    pub programme_id: Option<Uuid>,
    /// Only members of households whose enrolment is in this state.
    pub enrolment_state: Option<crate::enrolments::EnrolmentStateDto>,
    /// Page size, 1–200 (default 50).
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

fn today() -> NaiveDate {
    Utc::now().date_naive()
}

/// List persons in the caller's neighbourhoods.
#[utoipa::path(
    tag = "persons",
    security(("bearer" = [])),
    params(ListPersonsQuery),
    responses((status = 200, description = "One page of persons", body = Page<PersonResponse>)),
)]
#[get("/persons")]
pub async fn list(
    auth: Auth<perm::PersonRead>,
    state: web::Data<AppState>,
    query: web::Query<ListPersonsQuery>,
) -> Result<web::Json<Page<PersonResponse>>, ApiError> {
    let query = query.into_inner();
    let limit = pagination::limit(query.limit)?;
    let after: Option<PersonId> = query
        .cursor
        .as_deref()
        .map(pagination::decode_cursor)
        .transpose()?;
    let national_id = query
        .national_id
        .as_deref()
        .map(|n| NationalId::parse("national_id", n).map(|n| n.to_string()))
        .transpose()
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let filter = PersonFilter {
        neighbourhood_id: query.neighbourhood_id.map(AreaId::from),
        household_id: query.household_id.map(HouseholdId::from),
        sex: query.sex.map(Into::into),
        woman_head: query.woman_head,
        name: query
            .name
            .as_deref()
            .map(normalise)
            .filter(|n| !n.is_empty()),
        national_id,
        programme_id: query.programme_id.map(tavana_domain::id::ProgrammeId::from),
        enrolment_state: query.enrolment_state.map(Into::into),
    };
    let scope = auth.scope();
    let (items, more) = with_db(&state, move |c| {
        persons::list(c, &scope, &filter, after, limit)
    })
    .await?;
    let next_cursor = pagination::next_cursor(more, items.last().map(|p| p.id.to_string()));
    Ok(web::Json(Page {
        items: items
            .into_iter()
            .map(|p| PersonResponse::for_caller(p, &auth))
            .collect(),
        next_cursor,
    }))
}

/// Read one person. Outside the caller's neighbourhoods the person does not exist (404).
#[utoipa::path(
    tag = "persons",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The person's id")),
    responses(
        (status = 200, description = "The person; `ETag` carries the version", body = PersonResponse),
        (status = 404, description = "No such person in the caller's scope", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[get("/persons/{id}")]
pub async fn read(
    auth: Auth<perm::PersonRead>,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let id = PersonId::from(id.into_inner());
    let scope = auth.scope();
    let person = with_db(&state, move |c| persons::get(c, &scope, id)).await?;
    Ok(HttpResponse::Ok()
        .insert_header(etag(person.version))
        .json(PersonResponse::for_caller(person, &auth)))
}

/// Register a person as a member of a household. A national ID registered already is a 409 naming
/// the existing person; possible duplicates (same name and birth year in the district) are listed.
#[utoipa::path(
    tag = "persons",
    security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Retrying with the same key and body returns the first answer and creates nothing")),
    request_body = CreatePersonRequest,
    responses(
        (status = 201, description = "Created; `Location` points to it", body = PersonCreated),
        (status = 409, description = "The national ID is registered, or the household has a head; `existing_id` names the record", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields or a household outside the caller's scope", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[post("/persons")]
pub async fn create(
    auth: Auth<perm::PersonWrite>,
    state: web::Data<AppState>,
    key: IdempotencyKey,
    body: web::Json<CreatePersonRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let request = key.request(&auth, "POST /api/v1/persons", &body)?;
    let new = NewPerson::parse(
        PersonInput {
            national_id: &body.national_id,
            first_name: &body.first_name,
            last_name: &body.last_name,
            birth_date: &body.birth_date,
            mobile: body.mobile.as_deref(),
            member_since: body.member_since.as_deref(),
        },
        body.sex.into(),
        body.education.map(Into::into),
        body.household_id.into(),
        body.household_role.into(),
        today(),
    )?;
    let (context, scope) = (auth.audit(), auth.scope());
    let render = |(person, duplicates): &(Person, Vec<PersonId>)| {
        created(
            format!("/api/v1/persons/{}", person.id),
            &PersonCreated {
                person: person.clone().into(),
                possible_duplicates: duplicates.iter().map(PersonId::as_uuid).collect(),
            },
        )
    };
    let outcome = with_db(&state, move |c| {
        idempotency::run(
            c,
            request.as_ref(),
            |c| {
                let person = persons::create(c, &context, &scope, new)?;
                let duplicates = persons::possible_duplicates(c, &person)?;
                duplicates::queue(c, &person, &duplicates)?;
                Ok((person, duplicates))
            },
            render,
        )
    })
    .await?;
    respond(outcome, render)
}

/// Correct a person's own data. Honours `If-Match`.
#[utoipa::path(
    tag = "persons",
    security(("bearer" = [])),
    params(
        ("id" = Uuid, Path, description = "The person's id"),
        ("If-Match" = Option<String>, Header, description = "The ETag last read; refused with 412 if the person changed since"),
    ),
    request_body = UpdatePersonRequest,
    responses(
        (status = 200, description = "Updated", body = PersonResponse),
        (status = 404, description = "No such person in the caller's scope", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "Changed since the ETag was read", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[patch("/persons/{id}")]
pub async fn update(
    auth: Auth<perm::PersonWrite>,
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<Uuid>,
    body: web::Json<UpdatePersonRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = PersonId::from(id.into_inner());
    let expected = if_match(&req)?;
    let body = body.into_inner();
    let mut errors = ValidationErrors::default();
    let changes = PersonChanges {
        first_name: body
            .first_name
            .as_deref()
            .and_then(|n| errors.check(PersonName::parse("first_name", n))),
        last_name: body
            .last_name
            .as_deref()
            .and_then(|n| errors.check(PersonName::parse("last_name", n))),
        birth_date: body
            .birth_date
            .as_deref()
            .and_then(|d| errors.check(parse_birth_date("birth_date", d, today()))),
        sex: body.sex.map(Into::into),
        mobile: body.mobile.map(|m| {
            m.and_then(|m| {
                errors
                    .check(Mobile::parse("mobile", &m))
                    .map(|m| m.to_string())
            })
        }),
        education: body.education.map(|e| e.map(Into::into)),
    };
    errors.into_result()?;
    let (context, scope) = (auth.audit(), auth.scope());
    let person = with_db(&state, move |c| {
        persons::update(c, &context, &scope, id, expected, changes)
    })
    .await?;
    Ok(HttpResponse::Ok()
        .insert_header(etag(person.version))
        .json(PersonResponse::from(person)))
}

/// A person's household history, oldest first.
#[utoipa::path(
    tag = "persons",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The person's id")),
    responses(
        (status = 200, description = "Every household stay", body = Vec<MembershipResponse>),
        (status = 404, description = "No such person in the caller's scope", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[get("/persons/{id}/memberships")]
pub async fn history(
    auth: Auth<perm::PersonRead>,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<web::Json<Vec<MembershipResponse>>, ApiError> {
    let id = PersonId::from(id.into_inner());
    let scope = auth.scope();
    let stays = with_db(&state, move |c| persons::memberships(c, &scope, id)).await?;
    Ok(web::Json(stays.into_iter().map(Into::into).collect()))
}

/// Move a person to another household, with a role, from a date. The old membership ends and the
/// history keeps both.
#[utoipa::path(
    tag = "persons",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The person's id")),
    request_body = MovePersonRequest,
    responses(
        (status = 200, description = "Moved", body = PersonResponse),
        (status = 404, description = "No such person in the caller's scope", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The target household has a head already, or the person moved meanwhile", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields or a household outside the caller's scope", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[post("/persons/{id}/move")]
pub async fn move_person(
    auth: Auth<perm::PersonWrite>,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    body: web::Json<MovePersonRequest>,
) -> Result<web::Json<PersonResponse>, ApiError> {
    let id = PersonId::from(id.into_inner());
    let body = body.into_inner();
    let on = day_or_today("on", body.on.as_deref())?;
    let reason = optional_text(body.reason);
    let (context, scope) = (auth.audit(), auth.scope());
    let to = Move {
        household: HouseholdId::from(body.household_id),
        role: body.household_role.into(),
        on,
        reason,
    };
    let person = with_db(&state, move |c| {
        persons::move_to(c, &context, &scope, id, to)
    })
    .await?;
    Ok(web::Json(person.into()))
}

/// Make a member the head of the household; the previous head takes another role. Both changes
/// enter the membership history.
#[utoipa::path(
    tag = "households",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The household's id")),
    request_body = ChangeHeadRequest,
    responses(
        (status = 204, description = "Changed"),
        (status = 404, description = "No such household or person in the caller's scope", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The person is not a member, or invalid fields", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[post("/households/{id}/head")]
pub async fn change_head(
    auth: Auth<perm::HouseholdWrite>,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    body: web::Json<ChangeHeadRequest>,
) -> Result<HttpResponse, ApiError> {
    let household = HouseholdId::from(id.into_inner());
    let body = body.into_inner();
    let on = day_or_today("on", body.on.as_deref())?;
    let (context, scope) = (auth.audit(), auth.scope());
    let (person, previous) = (
        PersonId::from(body.person_id),
        body.previous_head_role.into(),
    );
    with_db(&state, move |c| {
        persons::change_head(c, &context, &scope, household, person, previous, on)
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// One member going to the new household of a split.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SplitMember {
    pub person_id: Uuid,
    pub household_role: HouseholdRoleDto,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SplitHouseholdRequest {
    /// The new household's address (same neighbourhood).
    pub address: String,
    pub postal_code: Option<String>,
    /// Who moves to the new household; exactly one as its head, and someone must stay.
    pub members: Vec<SplitMember>,
    /// From when (default: today).
    pub on: Option<String>,
}

/// Split a household: some members form a new household in the same neighbourhood. Every member's
/// history records the move.
#[utoipa::path(
    tag = "households",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The household being split")),
    request_body = SplitHouseholdRequest,
    responses(
        (status = 201, description = "The new household", body = crate::households::HouseholdResponse),
        (status = 404, description = "No such household or person in the caller's scope", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not exactly one head, a non-member, nobody left, or invalid fields", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[post("/households/{id}/split")]
pub async fn split_household(
    auth: Auth<perm::HouseholdWrite>,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    body: web::Json<SplitHouseholdRequest>,
) -> Result<HttpResponse, ApiError> {
    let household = HouseholdId::from(id.into_inner());
    let body = body.into_inner();
    let mut errors = ValidationErrors::default();
    let address = errors.check(tavana_domain::household::Address::parse(
        "address",
        &body.address,
    ));
    let postal_code = body.postal_code.as_deref().and_then(|p| {
        errors.check(tavana_domain::household::parse_postal_code(
            "postal_code",
            p,
        ))
    });
    if body.members.is_empty() {
        errors.push(tavana_domain::FieldError::new(
            "members",
            "required",
            "name who moves",
        ));
    }
    errors.clone().into_result()?;
    let Some(address) = address else {
        return Err(errors.into());
    };
    let split = persons::Split {
        address,
        postal_code,
        members: body
            .members
            .into_iter()
            .map(|m| (PersonId::from(m.person_id), m.household_role.into()))
            .collect(),
        on: day_or_today("on", body.on.as_deref())?,
    };
    let (context, scope) = (auth.audit(), auth.scope());
    let created = with_db(&state, move |c| {
        persons::split(c, &context, &scope, household, split)
    })
    .await?;
    Ok(HttpResponse::Created()
        .insert_header((
            actix_web::http::header::LOCATION,
            format!("/api/v1/households/{}", created.id),
        ))
        .json(crate::households::HouseholdResponse::from(created)))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DuplicateResponse {
    /// The person registered later.
    pub person_id: String,
    /// The person they may be the same as.
    pub candidate_id: String,
    pub neighbourhood_id: Option<String>,
    /// `open`, `dismissed` or `merged`.
    pub status: String,
    pub detected_at: DateTime<Utc>,
    pub reviewed_by: Option<String>,
    pub reviewed_at: Option<DateTime<Utc>>,
}

impl From<duplicates::Candidate> for DuplicateResponse {
    fn from(c: duplicates::Candidate) -> Self {
        Self {
            person_id: c.person_id,
            candidate_id: c.candidate_id,
            neighbourhood_id: c.neighbourhood_id,
            status: c.status,
            detected_at: c.detected_at.and_utc(),
            reviewed_by: c.reviewed_by,
            reviewed_at: c.reviewed_at.map(|t| t.and_utc()),
        }
    }
}

/// Review status of possible duplicates.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DuplicateStatusDto {
    Open,
    Dismissed,
    Merged,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListDuplicatesQuery {
    /// Default: `open`.
    pub status: Option<DuplicateStatusDto>,
    /// At most this many (1–200, default 50).
    pub limit: Option<u32>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DismissDuplicateRequest {
    pub person_id: Uuid,
    pub candidate_id: Uuid,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MergeRequest {
    /// The record merged into this one; it keeps existing, pointing here.
    pub from: Uuid,
    /// Default: today.
    pub on: Option<String>,
}

/// The review list of possible duplicates, oldest first.
#[utoipa::path(
    tag = "persons",
    security(("bearer" = [])),
    params(ListDuplicatesQuery),
    responses((status = 200, description = "Pairs to review", body = Vec<DuplicateResponse>)),
)]
#[get("/duplicates")]
pub async fn list_duplicates(
    auth: Auth<perm::DuplicateReview>,
    state: web::Data<AppState>,
    query: web::Query<ListDuplicatesQuery>,
) -> Result<web::Json<Vec<DuplicateResponse>>, ApiError> {
    let query = query.into_inner();
    let limit = pagination::limit(query.limit)?;
    let status = match query.status.unwrap_or(DuplicateStatusDto::Open) {
        DuplicateStatusDto::Open => "open",
        DuplicateStatusDto::Dismissed => "dismissed",
        DuplicateStatusDto::Merged => "merged",
    };
    let scope = auth.scope();
    let pairs = with_db(&state, move |c| duplicates::list(c, &scope, status, limit)).await?;
    Ok(web::Json(pairs.into_iter().map(Into::into).collect()))
}

/// Record that two persons flagged as possible duplicates are different people.
#[utoipa::path(
    tag = "persons",
    security(("bearer" = [])),
    request_body = DismissDuplicateRequest,
    responses(
        (status = 204, description = "Dismissed"),
        (status = 404, description = "No such open pair in the caller's scope", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[post("/duplicates/dismiss")]
pub async fn dismiss_duplicate(
    auth: Auth<perm::DuplicateReview>,
    state: web::Data<AppState>,
    body: web::Json<DismissDuplicateRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let (person, candidate) = (
        PersonId::from(body.person_id),
        PersonId::from(body.candidate_id),
    );
    let (context, scope) = (auth.audit(), auth.scope());
    with_db(&state, move |c| {
        duplicates::dismiss(c, &context, &scope, person, candidate)
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Merge another person's record into this one: consents, assessments, outcomes and household
/// history move here; the other record stays, pointing here. Audited.
#[utoipa::path(
    tag = "persons",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The person who remains")),
    request_body = MergeRequest,
    responses(
        (status = 200, description = "Merged; the remaining person", body = PersonResponse),
        (status = 404, description = "No such person in the caller's scope", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "One of them is merged already, or both have a baseline", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Merging a person into itself", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[post("/persons/{id}/merge")]
pub async fn merge(
    auth: Auth<perm::DuplicateReview>,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    body: web::Json<MergeRequest>,
) -> Result<web::Json<PersonResponse>, ApiError> {
    let into = PersonId::from(id.into_inner());
    let body = body.into_inner();
    let from = PersonId::from(body.from);
    let on = day_or_today("on", body.on.as_deref())?;
    let (context, scope) = (auth.audit(), auth.scope());
    let person = with_db(&state, move |c| {
        duplicates::merge(c, &context, &scope, into, from, on)
    })
    .await?;
    Ok(web::Json(PersonResponse::for_caller(person, &auth)))
}
