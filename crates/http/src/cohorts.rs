//! `/api/v1/cohorts` and `/api/v1/sessions`: courses held in a neighbourhood, their sessions,
//! registrations with a waitlist, attendance and completion; plus a person's training history and
//! the aggregate figures partners may see.

use actix_web::{HttpRequest, HttpResponse, get, post, put, web};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use tavana_domain::id::{
    AreaId, CohortId, CourseId, OrganisationId, PersonId, RegistrationId, SessionId, UserId,
};
use tavana_domain::training::{
    AttendanceCount, AttendanceMark, Cohort, CohortState, Registration, RegistrationStatus,
    validate_cohort,
};
use tavana_persistence::cohorts::{
    self, CohortFilter, CourseFigures, Mark, NewCohort, Recorder, Session, TrainingRecord,
};
use tavana_persistence::idempotency;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::{Auth, perm};
use crate::conventions::{day_or_today, etag, if_match, optional_text};
use crate::courses::{CourseCategoryDto, CourseResponse};
use crate::error::{ApiError, Problem};
use crate::idempotency::{IdempotencyKey, created, respond};
use crate::pagination::{self, Page};
use crate::{AppState, with_db};

pub fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(list)
        .service(create)
        .service(read)
        .service(close)
        .service(list_sessions)
        .service(add_session)
        .service(list_registrations)
        .service(register)
        .service(withdraw)
        .service(read_attendance)
        .service(record_attendance)
        .service(history)
        .service(statistics);
}

api_enum!(
    /// Whether a cohort still takes registrations and attendance.
    CohortStateDto => CohortState { Open => "open", Closed => "closed" }
);

api_enum!(
    /// A person's place in a cohort.
    RegistrationStatusDto => RegistrationStatus {
        Registered => "registered",
        Waitlisted => "waitlisted",
        Withdrawn => "withdrawn",
        Completed => "completed",
        NotCompleted => "not_completed",
    }
);

api_enum!(
    /// One person at one session. Excused absences are left out of the completion count.
    AttendanceMarkDto => AttendanceMark { Present => "present", Absent => "absent", Excused => "excused" }
);

#[derive(Debug, Serialize, ToSchema)]
pub struct CohortResponse {
    pub id: Uuid,
    pub course_id: Uuid,
    pub provider_id: Uuid,
    pub neighbourhood_id: Uuid,
    pub venue: String,
    pub capacity: i32,
    pub starts_on: NaiveDate,
    pub ends_on: NaiveDate,
    pub trainer_id: Option<Uuid>,
    pub state: CohortStateDto,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Cohort> for CohortResponse {
    fn from(c: Cohort) -> Self {
        Self {
            id: c.id.as_uuid(),
            course_id: c.course_id.as_uuid(),
            provider_id: c.provider_id.as_uuid(),
            neighbourhood_id: c.neighbourhood_id.as_uuid(),
            venue: c.venue,
            capacity: c.capacity,
            starts_on: c.starts_on,
            ends_on: c.ends_on,
            trainer_id: c.trainer_id.map(|t| t.as_uuid()),
            state: c.state.into(),
            version: c.version,
            created_at: c.created_at.and_utc(),
            updated_at: c.updated_at.and_utc(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCohortRequest {
    pub course_id: Uuid,
    /// An organisation of the kind the course names.
    pub provider_id: Uuid,
    /// A neighbourhood in the caller's scope.
    pub neighbourhood_id: Uuid,
    pub venue: String,
    pub capacity: i32,
    /// Gregorian or Jalali.
    pub starts_on: String,
    pub ends_on: String,
    /// A user with the `trainer` role: the only trainer who records this cohort's attendance.
    pub trainer_id: Option<Uuid>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListCohortsQuery {
    pub course_id: Option<Uuid>,
    pub neighbourhood_id: Option<Uuid>,
    pub state: Option<CohortStateDto>,
    /// Page size, 1–200 (default 50).
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionResponse {
    pub id: Uuid,
    pub cohort_id: Uuid,
    pub held_on: NaiveDate,
    pub topic: Option<String>,
}

impl From<Session> for SessionResponse {
    fn from(s: Session) -> Self {
        Self {
            id: s.id.as_uuid(),
            cohort_id: s.cohort_id.as_uuid(),
            held_on: s.held_on,
            topic: s.topic,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSessionRequest {
    /// A day within the cohort's dates, Gregorian or Jalali.
    pub held_on: String,
    pub topic: Option<String>,
}

/// Attendance counted for the completion rule.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttendanceSummary {
    /// Sessions held so far.
    pub sessions: u32,
    pub present: u32,
    pub excused: u32,
    /// Present / (sessions − excused), rounded down; `null` when no session counts.
    pub percent: Option<u32>,
}

impl From<AttendanceCount> for AttendanceSummary {
    fn from(c: AttendanceCount) -> Self {
        Self {
            sessions: c.sessions,
            present: c.present,
            excused: c.excused,
            percent: c.percent(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RegistrationResponse {
    pub id: Uuid,
    pub cohort_id: Uuid,
    pub person_id: Uuid,
    pub status: RegistrationStatusDto,
    /// Order of arrival; the waitlist is promoted in this order.
    pub position: i64,
    #[schema(example = "TC-1403-000045")]
    pub certificate_number: Option<String>,
    pub completed_on: Option<NaiveDate>,
    pub registered_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Present in lists: attendance so far.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attendance: Option<AttendanceSummary>,
}

impl RegistrationResponse {
    fn new(r: Registration, attendance: Option<AttendanceCount>) -> Self {
        Self {
            id: r.id.as_uuid(),
            cohort_id: r.cohort_id.as_uuid(),
            person_id: r.person_id.as_uuid(),
            status: r.status.into(),
            position: r.position,
            certificate_number: r.certificate_number,
            completed_on: r.completed_on,
            registered_at: r.registered_at.and_utc(),
            updated_at: r.updated_at.and_utc(),
            attendance: attendance.map(Into::into),
        }
    }
}

impl From<Registration> for RegistrationResponse {
    fn from(r: Registration) -> Self {
        Self::new(r, None)
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// A person in the caller's scope.
    pub person_id: Uuid,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WithdrawResponse {
    pub withdrawn: RegistrationResponse,
    /// The first person on the waitlist, who got the freed seat.
    pub promoted: Option<RegistrationResponse>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MarkDto {
    pub person_id: Uuid,
    pub mark: AttendanceMarkDto,
}

impl From<Mark> for MarkDto {
    fn from(m: Mark) -> Self {
        Self {
            person_id: m.person_id.as_uuid(),
            mark: m.mark.into(),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AttendanceSheet {
    /// Marks for seated people of the cohort. Sending the same sheet again changes nothing.
    pub marks: Vec<MarkDto>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AttendanceResponse {
    pub session_id: Uuid,
    pub marks: Vec<MarkDto>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CloseCohortRequest {
    /// The closing day (default today); certificates are numbered in its Jalali year.
    pub on: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CloseCohortResponse {
    pub cohort: CohortResponse,
    pub registrations: Vec<RegistrationResponse>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TrainingRecordResponse {
    pub registration: RegistrationResponse,
    pub cohort: CohortResponse,
    pub course: CourseResponse,
    pub attendance: AttendanceSummary,
}

impl From<TrainingRecord> for TrainingRecordResponse {
    fn from(r: TrainingRecord) -> Self {
        Self {
            registration: r.registration.into(),
            cohort: r.cohort.into(),
            course: r.course.into(),
            attendance: r.attendance.into(),
        }
    }
}

/// Figures of one course; no person is named.
#[derive(Debug, Serialize, ToSchema)]
pub struct CourseFiguresResponse {
    pub course_id: Uuid,
    pub category: CourseCategoryDto,
    pub title_fa: String,
    pub title_en: String,
    pub sensitive: bool,
    pub cohorts: i64,
    /// People counts: `null` for partners where under 5.
    pub registered: Option<i64>,
    pub waitlisted: Option<i64>,
    pub completed: Option<i64>,
    pub not_completed: Option<i64>,
}

impl CourseFiguresResponse {
    fn new(f: CourseFigures, suppress: bool) -> Self {
        let cell =
            |n: i64| (!suppress || tavana_domain::progress::shown_to_partners(n)).then_some(n);
        Self {
            course_id: f.course.id.as_uuid(),
            category: f.course.category.into(),
            title_fa: f.course.title_fa,
            title_en: f.course.title_en,
            sensitive: f.course.sensitive,
            cohorts: f.cohorts,
            registered: cell(f.registered),
            waitlisted: cell(f.waitlisted),
            completed: cell(f.completed),
            not_completed: cell(f.not_completed),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TrainingStatisticsResponse {
    pub courses: Vec<CourseFiguresResponse>,
}

/// List cohorts in the caller's neighbourhoods.
#[utoipa::path(
    tag = "training",
    security(("bearer" = [])),
    params(ListCohortsQuery),
    responses((status = 200, description = "One page of cohorts", body = Page<CohortResponse>)),
)]
#[get("/cohorts")]
pub async fn list(
    auth: Auth<perm::CohortRead>,
    state: web::Data<AppState>,
    query: web::Query<ListCohortsQuery>,
) -> Result<web::Json<Page<CohortResponse>>, ApiError> {
    let query = query.into_inner();
    let limit = pagination::limit(query.limit)?;
    let after: Option<CohortId> = query
        .cursor
        .as_deref()
        .map(pagination::decode_cursor)
        .transpose()?;
    let filter = CohortFilter {
        course_id: query.course_id.map(CourseId::from),
        neighbourhood_id: query.neighbourhood_id.map(AreaId::from),
        state: query.state.map(Into::into),
    };
    let scope = auth.scope();
    let (items, more) = with_db(&state, move |c| {
        cohorts::list(c, &scope, &filter, after, limit)
    })
    .await?;
    let next_cursor = pagination::next_cursor(more, items.last().map(|c| c.id.to_string()));
    Ok(web::Json(Page {
        items: items.into_iter().map(Into::into).collect(),
        next_cursor,
    }))
}

/// Start a cohort of a course in a neighbourhood of the caller's.
#[utoipa::path(
    tag = "training",
    security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Retrying with the same key and body returns the first answer and creates nothing")),
    request_body = CreateCohortRequest,
    responses(
        (status = 201, description = "Created", body = CohortResponse),
        (status = 422, description = "Invalid fields; unknown course, provider of the wrong kind, neighbourhood outside the caller's scope, or a trainer id that is not a trainer", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[post("/cohorts")]
pub async fn create(
    auth: Auth<perm::CohortWrite>,
    state: web::Data<AppState>,
    key: IdempotencyKey,
    body: web::Json<CreateCohortRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let request = key.request(&auth, "POST /api/v1/cohorts", &body)?;
    let starts_on = tavana_domain::calendar::parse_date("starts_on", &body.starts_on)?;
    let ends_on = tavana_domain::calendar::parse_date("ends_on", &body.ends_on)?;
    validate_cohort(&body.venue, body.capacity, starts_on, ends_on)?;
    let new = NewCohort {
        course_id: CourseId::from(body.course_id),
        provider_id: OrganisationId::from(body.provider_id),
        neighbourhood_id: AreaId::from(body.neighbourhood_id),
        venue: body.venue,
        capacity: body.capacity,
        starts_on,
        ends_on,
        trainer_id: body.trainer_id.map(UserId::from),
    };
    let (context, scope) = (auth.audit(), auth.scope());
    let render = |c: &Cohort| {
        created(
            format!("/api/v1/cohorts/{}", c.id),
            &CohortResponse::from(c.clone()),
        )
    };
    let outcome = with_db(&state, move |c| {
        idempotency::run(
            c,
            request.as_ref(),
            |c| cohorts::create(c, &context, &scope, new),
            render,
        )
    })
    .await?;
    respond(outcome, render)
}

/// Read one cohort.
#[utoipa::path(
    tag = "training",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The cohort's id")),
    responses(
        (status = 200, description = "The cohort; `ETag` carries its version", body = CohortResponse),
        (status = 404, description = "No such cohort in the caller's scope", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[get("/cohorts/{id}")]
pub async fn read(
    auth: Auth<perm::CohortRead>,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let id = CohortId::from(id.into_inner());
    let scope = auth.scope();
    let cohort = with_db(&state, move |c| cohorts::get(c, &scope, id)).await?;
    Ok(HttpResponse::Ok()
        .insert_header(etag(cohort.version))
        .json(CohortResponse::from(cohort)))
}

/// Close the cohort: everyone seated who attended at least 80% of the sessions (excused absences
/// left out) completes it and gets a certificate number; the others do not complete it.
#[utoipa::path(
    tag = "training",
    security(("bearer" = [])),
    params(
        ("id" = Uuid, Path, description = "The cohort's id"),
        ("If-Match" = Option<String>, Header, description = "The ETag last read; refused with 412 if the cohort changed since"),
    ),
    request_body = CloseCohortRequest,
    responses(
        (status = 200, description = "Closed, with every registration's outcome", body = CloseCohortResponse),
        (status = 404, description = "No such cohort in the caller's scope", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Closed already", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "Changed since the ETag was read", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[post("/cohorts/{id}/close")]
pub async fn close(
    auth: Auth<perm::CohortWrite>,
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<Uuid>,
    body: web::Json<CloseCohortRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = CohortId::from(id.into_inner());
    let expected = if_match(&req)?;
    let on = day_or_today("on", body.into_inner().on.as_deref())?;
    let (context, scope) = (auth.audit(), auth.scope());
    let (cohort, registrations) = with_db(&state, move |c| {
        cohorts::close(c, &context, &scope, id, on, expected)
    })
    .await?;
    Ok(HttpResponse::Ok()
        .insert_header(etag(cohort.version))
        .json(CloseCohortResponse {
            cohort: cohort.into(),
            registrations: registrations.into_iter().map(Into::into).collect(),
        }))
}

/// The cohort's sessions by date.
#[utoipa::path(
    tag = "training",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The cohort's id")),
    responses(
        (status = 200, description = "Sessions", body = Vec<SessionResponse>),
        (status = 404, description = "No such cohort in the caller's scope", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[get("/cohorts/{id}/sessions")]
pub async fn list_sessions(
    auth: Auth<perm::CohortRead>,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<web::Json<Vec<SessionResponse>>, ApiError> {
    let id = CohortId::from(id.into_inner());
    let scope = auth.scope();
    let sessions = with_db(&state, move |c| cohorts::sessions(c, &scope, id)).await?;
    Ok(web::Json(sessions.into_iter().map(Into::into).collect()))
}

/// Add a dated session to an open cohort.
#[utoipa::path(
    tag = "training",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The cohort's id")),
    request_body = CreateSessionRequest,
    responses(
        (status = 201, description = "Created", body = SessionResponse),
        (status = 404, description = "No such cohort in the caller's scope", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The cohort is closed", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A day outside the cohort's dates", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[post("/cohorts/{id}/sessions")]
pub async fn add_session(
    auth: Auth<perm::CohortWrite>,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    body: web::Json<CreateSessionRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = CohortId::from(id.into_inner());
    let body = body.into_inner();
    let held_on = tavana_domain::calendar::parse_date("held_on", &body.held_on)?;
    let topic = optional_text(body.topic);
    let (context, scope) = (auth.audit(), auth.scope());
    let session = with_db(&state, move |c| {
        cohorts::add_session(c, &context, &scope, id, held_on, topic)
    })
    .await?;
    Ok(HttpResponse::Created().json(SessionResponse::from(session)))
}

/// The cohort's registrations in order of arrival, with attendance so far. For a sensitive course
/// the read is audited.
#[utoipa::path(
    tag = "training",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The cohort's id")),
    responses(
        (status = 200, description = "Registrations", body = Vec<RegistrationResponse>),
        (status = 404, description = "No such cohort in the caller's scope", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[get("/cohorts/{id}/registrations")]
pub async fn list_registrations(
    auth: Auth<perm::CohortRead>,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<web::Json<Vec<RegistrationResponse>>, ApiError> {
    let id = CohortId::from(id.into_inner());
    let (context, scope) = (auth.audit(), auth.scope());
    let registrations = with_db(&state, move |c| {
        cohorts::registrations(c, &context, &scope, id)
    })
    .await?;
    Ok(web::Json(
        registrations
            .into_iter()
            .map(|(r, count)| RegistrationResponse::new(r, Some(count)))
            .collect(),
    ))
}

/// Register a person: a seat while the cohort has one, the waitlist after that.
#[utoipa::path(
    tag = "training",
    security(("bearer" = [])),
    params(
        ("id" = Uuid, Path, description = "The cohort's id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Retrying with the same key and body returns the first answer and creates nothing"),
    ),
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "Registered or waitlisted (see `status`)", body = RegistrationResponse),
        (status = 404, description = "No such cohort in the caller's scope", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The person is in the cohort already (`existing_id`), or the cohort is closed", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "No such person in the caller's scope", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[post("/cohorts/{id}/registrations")]
pub async fn register(
    auth: Auth<perm::CohortWrite>,
    state: web::Data<AppState>,
    key: IdempotencyKey,
    id: web::Path<Uuid>,
    body: web::Json<RegisterRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = CohortId::from(id.into_inner());
    let body = body.into_inner();
    let request = key.request(
        &auth,
        &format!("POST /api/v1/cohorts/{id}/registrations"),
        &body,
    )?;
    let person = PersonId::from(body.person_id);
    let (context, scope) = (auth.audit(), auth.scope());
    let render = |r: &Registration| {
        created(
            format!("/api/v1/cohorts/{}/registrations", r.cohort_id),
            &RegistrationResponse::from(r.clone()),
        )
    };
    let outcome = with_db(&state, move |c| {
        idempotency::run(
            c,
            request.as_ref(),
            |c| cohorts::register(c, &context, &scope, id, person),
            render,
        )
    })
    .await?;
    respond(outcome, render)
}

/// Withdraw a registration; a freed seat goes to the first person on the waitlist.
#[utoipa::path(
    tag = "training",
    security(("bearer" = [])),
    params(
        ("id" = Uuid, Path, description = "The cohort's id"),
        ("registration_id" = Uuid, Path, description = "The registration's id"),
    ),
    responses(
        (status = 200, description = "Withdrawn, and who was promoted", body = WithdrawResponse),
        (status = 404, description = "No such registration in a cohort of the caller's scope", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Withdrawn or final already, or the cohort is closed", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[post("/cohorts/{id}/registrations/{registration_id}/withdraw")]
pub async fn withdraw(
    auth: Auth<perm::CohortWrite>,
    state: web::Data<AppState>,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<web::Json<WithdrawResponse>, ApiError> {
    let (cohort, registration) = path.into_inner();
    let (cohort, registration) = (CohortId::from(cohort), RegistrationId::from(registration));
    let (context, scope) = (auth.audit(), auth.scope());
    let (withdrawn, promoted) = with_db(&state, move |c| {
        cohorts::withdraw(c, &context, &scope, cohort, registration)
    })
    .await?;
    Ok(web::Json(WithdrawResponse {
        withdrawn: withdrawn.into(),
        promoted: promoted.map(Into::into),
    }))
}

/// The marks of a session. For a sensitive course the read is audited.
#[utoipa::path(
    tag = "training",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The session's id")),
    responses(
        (status = 200, description = "Marks", body = AttendanceResponse),
        (status = 404, description = "No such session in a cohort of the caller's scope", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[get("/sessions/{id}/attendance")]
pub async fn read_attendance(
    auth: Auth<perm::CohortRead>,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<web::Json<AttendanceResponse>, ApiError> {
    let id = SessionId::from(id.into_inner());
    let (context, scope) = (auth.audit(), auth.scope());
    let marks = with_db(&state, move |c| {
        cohorts::attendance(c, &context, &scope, id)
    })
    .await?;
    Ok(web::Json(AttendanceResponse {
        session_id: id.as_uuid(),
        marks: marks.into_iter().map(Into::into).collect(),
    }))
}

/// Record a session's attendance sheet (the cohort's own trainer, or a facilitator of its
/// neighbourhood). Idempotent: sending the same sheet again changes nothing.
#[utoipa::path(
    tag = "training",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The session's id")),
    request_body = AttendanceSheet,
    responses(
        (status = 200, description = "Every mark of the session now", body = AttendanceResponse),
        (status = 403, description = "A trainer who does not teach this cohort", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such session in a cohort of the caller's scope", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The cohort is closed", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A person without a seat in the cohort", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[put("/sessions/{id}/attendance")]
pub async fn record_attendance(
    auth: Auth<perm::AttendanceWrite>,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    body: web::Json<AttendanceSheet>,
) -> Result<web::Json<AttendanceResponse>, ApiError> {
    let id = SessionId::from(id.into_inner());
    let marks: Vec<Mark> = body
        .into_inner()
        .marks
        .into_iter()
        .map(|m| Mark {
            person_id: PersonId::from(m.person_id),
            mark: m.mark.into(),
        })
        .collect();
    let recorder = Recorder {
        user: auth.user_id(),
        role: auth.role(),
    };
    let (context, scope) = (auth.audit(), auth.scope());
    let marks = with_db(&state, move |c| {
        cohorts::record_attendance(c, &context, &scope, recorder, id, &marks)
    })
    .await?;
    Ok(web::Json(AttendanceResponse {
        session_id: id.as_uuid(),
        marks: marks.into_iter().map(Into::into).collect(),
    }))
}

/// A person's training history: every course registered for, attendance, outcome and certificate.
/// A history showing a sensitive course is audited.
#[utoipa::path(
    tag = "training",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The person's id")),
    responses(
        (status = 200, description = "History, oldest first", body = Vec<TrainingRecordResponse>),
        (status = 404, description = "No such person in the caller's scope", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[get("/persons/{id}/training")]
pub async fn history(
    auth: Auth<perm::CohortRead>,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<web::Json<Vec<TrainingRecordResponse>>, ApiError> {
    let id = PersonId::from(id.into_inner());
    let (context, scope) = (auth.audit(), auth.scope());
    let records = with_db(&state, move |c| cohorts::history(c, &context, &scope, id)).await?;
    Ok(web::Json(records.into_iter().map(Into::into).collect()))
}

/// Per course: cohorts and registrations by status, over the caller's neighbourhoods (a partner's:
/// its MoU's areas). The only view of training partners get (while their MoU is in force); it
/// names nobody.
#[utoipa::path(
    tag = "training",
    security(("bearer" = [])),
    responses((status = 200, description = "Figures per course", body = TrainingStatisticsResponse)),
)]
#[get("/training/statistics")]
pub async fn statistics(
    auth: Auth<perm::TrainingStatistics>,
    state: web::Data<AppState>,
) -> Result<web::Json<TrainingStatisticsResponse>, ApiError> {
    // A partner reads aggregates too only while its MoU is in force, and of its areas only.
    let mou = crate::partners::mou_neighbourhoods(&state, &auth).await?;
    let scope = auth.scope();
    let figures = with_db(&state, move |c| {
        cohorts::statistics(c, &scope, mou.as_deref())
    })
    .await?;
    Ok(web::Json(TrainingStatisticsResponse {
        courses: figures
            .into_iter()
            .map(|f| CourseFiguresResponse::new(f, auth.is_partner()))
            .collect(),
    }))
}
