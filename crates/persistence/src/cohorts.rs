//! Cohorts of a course held in a neighbourhood, with their sessions, registrations (capacity and a
//! waitlist), attendance and completion. Every query takes the caller's [`Scope`]: a cohort outside
//! the caller's neighbourhoods does not exist for them.

use std::collections::HashMap;

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use serde_json::json;
use tavana_domain::FieldError;
use tavana_domain::access::Role;
use tavana_domain::id::{
    AreaId, CohortId, CourseId, OrganisationId, PersonId, RegistrationId, SessionId, UserId,
};
use tavana_domain::training::{
    AttendanceCount, AttendanceMark, Cohort, CohortState, Course, Registration, RegistrationStatus,
    certificate_number, completes,
};

use crate::audit::{self, AuditContext, Event};
use crate::courses::{CourseRow, to_course};
use crate::db::{DbConnection, MultiBackend};
use crate::error::StoreError;
use crate::schema::{attendance, cohort_sessions, cohorts, courses, registrations};
use crate::scope::{Scope, assigned_to};
use crate::tx::{lock, write_transaction};

#[derive(Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = cohorts)]
pub(crate) struct CohortRow {
    pub(crate) id: String,
    pub(crate) course_id: String,
    pub(crate) provider_id: String,
    pub(crate) neighbourhood_id: String,
    pub(crate) venue: String,
    pub(crate) capacity: i32,
    pub(crate) starts_on: NaiveDate,
    pub(crate) ends_on: NaiveDate,
    pub(crate) trainer_id: Option<String>,
    pub(crate) state: String,
    pub(crate) version: i64,
    pub(crate) created_at: NaiveDateTime,
    pub(crate) updated_at: NaiveDateTime,
}

fn to_cohort(row: CohortRow) -> Result<Cohort, StoreError> {
    let corrupt = |what: &str| StoreError::Internal(format!("cohorts row {}: bad {what}", row.id));
    Ok(Cohort {
        id: row.id.parse().map_err(|_| corrupt("id"))?,
        course_id: row.course_id.parse().map_err(|_| corrupt("course_id"))?,
        provider_id: row
            .provider_id
            .parse()
            .map_err(|_| corrupt("provider_id"))?,
        neighbourhood_id: row
            .neighbourhood_id
            .parse()
            .map_err(|_| corrupt("neighbourhood_id"))?,
        venue: row.venue,
        capacity: row.capacity,
        starts_on: row.starts_on,
        ends_on: row.ends_on,
        trainer_id: row
            .trainer_id
            .as_deref()
            .map(str::parse)
            .transpose()
            .map_err(|_| corrupt("trainer_id"))?,
        state: row.state.parse().map_err(|_| corrupt("state"))?,
        version: row.version,
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}

#[derive(Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = registrations)]
pub(crate) struct RegistrationRow {
    pub(crate) id: String,
    pub(crate) cohort_id: String,
    pub(crate) person_id: String,
    pub(crate) status: String,
    pub(crate) position: i64,
    pub(crate) certificate_number: Option<String>,
    pub(crate) completed_on: Option<NaiveDate>,
    pub(crate) registered_at: NaiveDateTime,
    pub(crate) updated_at: NaiveDateTime,
}

fn to_registration(row: RegistrationRow) -> Result<Registration, StoreError> {
    let corrupt =
        |what: &str| StoreError::Internal(format!("registrations row {}: bad {what}", row.id));
    Ok(Registration {
        id: row.id.parse().map_err(|_| corrupt("id"))?,
        cohort_id: row.cohort_id.parse().map_err(|_| corrupt("cohort_id"))?,
        person_id: row.person_id.parse().map_err(|_| corrupt("person_id"))?,
        status: row.status.parse().map_err(|_| corrupt("status"))?,
        position: row.position,
        certificate_number: row.certificate_number,
        completed_on: row.completed_on,
        registered_at: row.registered_at,
        updated_at: row.updated_at,
    })
}

fn scoped<'a>(scope: &Scope) -> cohorts::BoxedQuery<'a, MultiBackend> {
    let mut query = cohorts::table.into_boxed();
    if let Scope::UserAreas(user) = scope {
        query = query.filter(cohorts::neighbourhood_id.eq_any(assigned_to(*user)));
    }
    query
}

/// A cohort as submitted.
#[derive(Debug, Clone)]
pub struct NewCohort {
    pub course_id: CourseId,
    pub provider_id: OrganisationId,
    pub neighbourhood_id: AreaId,
    pub venue: String,
    pub capacity: i32,
    pub starts_on: NaiveDate,
    pub ends_on: NaiveDate,
    pub trainer_id: Option<UserId>,
}

pub fn create(
    conn: &mut DbConnection,
    context: &AuditContext,
    scope: &Scope,
    new: NewCohort,
) -> Result<Cohort, StoreError> {
    write_transaction(conn, |conn| {
        let course = match crate::courses::get(conn, new.course_id) {
            Err(StoreError::NotFound) => {
                return Err(FieldError::new("course_id", "not_found", "no such course").into());
            }
            other => other?,
        };
        let provider = match crate::organisations::get(conn, new.provider_id) {
            Err(StoreError::NotFound) => {
                return Err(
                    FieldError::new("provider_id", "not_found", "no such organisation").into(),
                );
            }
            other => other?,
        };
        if provider.kind != course.provider_kind {
            return Err(FieldError::new(
                "provider_id",
                "wrong_kind",
                format!(
                    "this course is run by a {}, not a {}",
                    course.provider_kind, provider.kind
                ),
            )
            .into());
        }
        crate::households::check_neighbourhood(conn, scope, new.neighbourhood_id)?;
        if let Some(trainer) = new.trainer_id {
            match crate::users::get(conn, trainer) {
                Ok(user) if user.role == Role::Trainer && user.active => {
                    // A trainer sees only their neighbourhoods: one outside this one could not
                    // open the cohort they teach.
                    if !Scope::UserAreas(trainer).covers(conn, new.neighbourhood_id)? {
                        return Err(FieldError::new(
                            "trainer_id",
                            "outside_neighbourhood",
                            "the trainer is not assigned to this neighbourhood",
                        )
                        .into());
                    }
                }
                Ok(_) | Err(StoreError::NotFound) => {
                    return Err(FieldError::new(
                        "trainer_id",
                        "not_a_trainer",
                        "no active user with the trainer role has this id",
                    )
                    .into());
                }
                Err(other) => return Err(other),
            }
        }
        let now = crate::now();
        let row: CohortRow = diesel::insert_into(cohorts::table)
            .values(CohortRow {
                id: CohortId::generate().to_string(),
                course_id: new.course_id.to_string(),
                provider_id: new.provider_id.to_string(),
                neighbourhood_id: new.neighbourhood_id.to_string(),
                venue: new.venue.trim().to_owned(),
                capacity: new.capacity,
                starts_on: new.starts_on,
                ends_on: new.ends_on,
                trainer_id: new.trainer_id.map(|t| t.to_string()),
                state: CohortState::Open.as_str().to_owned(),
                version: 1,
                created_at: now,
                updated_at: now,
            })
            .returning(cohorts::all_columns)
            .get_result(conn)?;
        let cohort = to_cohort(row)?;
        audit::append(
            conn,
            context,
            Event {
                action: "cohort.create",
                entity: "cohort",
                entity_id: Some(cohort.id.to_string()),
                before: None,
                after: Some(json!({
                    "course_id": cohort.course_id.to_string(),
                    "neighbourhood_id": cohort.neighbourhood_id.to_string(),
                    "capacity": cohort.capacity,
                    "trainer_id": cohort.trainer_id.map(|t| t.to_string()),
                })),
            },
        )?;
        Ok(cohort)
    })
}

pub fn get(conn: &mut DbConnection, scope: &Scope, id: CohortId) -> Result<Cohort, StoreError> {
    to_cohort(
        scoped(scope)
            .filter(cohorts::id.eq(id.to_string()))
            .select(CohortRow::as_select())
            .first(conn)?,
    )
}

/// The cohort and its course.
pub fn get_with_course(
    conn: &mut DbConnection,
    scope: &Scope,
    id: CohortId,
) -> Result<(Cohort, Course), StoreError> {
    let cohort = get(conn, scope, id)?;
    let course = crate::courses::get(conn, cohort.course_id)?;
    Ok((cohort, course))
}

#[derive(Debug, Clone, Default)]
pub struct CohortFilter {
    pub course_id: Option<CourseId>,
    pub neighbourhood_id: Option<AreaId>,
    pub state: Option<CohortState>,
}

pub fn list(
    conn: &mut DbConnection,
    scope: &Scope,
    filter: &CohortFilter,
    after: Option<CohortId>,
    limit: usize,
) -> Result<(Vec<Cohort>, bool), StoreError> {
    let mut query = scoped(scope).select(CohortRow::as_select());
    if let Some(course) = filter.course_id {
        query = query.filter(cohorts::course_id.eq(course.to_string()));
    }
    if let Some(neighbourhood) = filter.neighbourhood_id {
        query = query.filter(cohorts::neighbourhood_id.eq(neighbourhood.to_string()));
    }
    if let Some(state) = filter.state {
        query = query.filter(cohorts::state.eq(state.as_str()));
    }
    if let Some(after) = after {
        query = query.filter(cohorts::id.gt(after.to_string()));
    }
    let rows: Vec<CohortRow> = query
        .order(cohorts::id.asc())
        .limit(crate::page::fetch(limit))
        .load(conn)?;
    let (rows, more) = crate::page::split(rows, limit);
    Ok((
        rows.into_iter().map(to_cohort).collect::<Result<_, _>>()?,
        more,
    ))
}

/// Who is acting on a cohort's attendance: its trainer, or staff of its neighbourhood.
#[derive(Debug, Clone, Copy)]
pub struct Recorder {
    pub user: Option<UserId>,
    pub role: Option<Role>,
}

impl Recorder {
    /// A trainer records only the cohorts they teach; facilitators any in their neighbourhoods.
    pub(crate) fn check(self, cohort: &Cohort) -> Result<(), StoreError> {
        if self.role == Some(Role::Trainer)
            && (self.user.is_none() || cohort.trainer_id != self.user)
        {
            return Err(StoreError::Forbidden(
                "only the cohort's own trainer records its attendance".to_owned(),
            ));
        }
        Ok(())
    }
}

fn open_cohort(conn: &mut DbConnection, scope: &Scope, id: CohortId) -> Result<Cohort, StoreError> {
    let cohort = get(conn, scope, id)?;
    if cohort.state == CohortState::Closed {
        return Err(StoreError::Conflict(
            "the cohort is closed; its registrations and attendance are final".to_owned(),
        ));
    }
    Ok(cohort)
}

/// One dated session of a cohort.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: SessionId,
    pub cohort_id: CohortId,
    pub held_on: NaiveDate,
    pub topic: Option<String>,
}

type SessionRow = (String, String, NaiveDate, Option<String>);

fn to_session((id, cohort_id, held_on, topic): SessionRow) -> Result<Session, StoreError> {
    let corrupt = || StoreError::Internal(format!("cohort_sessions row {id}: bad id"));
    Ok(Session {
        id: id.parse().map_err(|_| corrupt())?,
        cohort_id: cohort_id.parse().map_err(|_| corrupt())?,
        held_on,
        topic,
    })
}

const SESSION_COLUMNS: (
    cohort_sessions::id,
    cohort_sessions::cohort_id,
    cohort_sessions::held_on,
    cohort_sessions::topic,
) = (
    cohort_sessions::id,
    cohort_sessions::cohort_id,
    cohort_sessions::held_on,
    cohort_sessions::topic,
);

/// Adds a session on a day within the cohort's dates.
pub fn add_session(
    conn: &mut DbConnection,
    context: &AuditContext,
    scope: &Scope,
    cohort: CohortId,
    held_on: NaiveDate,
    topic: Option<String>,
) -> Result<Session, StoreError> {
    write_transaction(conn, |conn| {
        // Ordered with closing the cohort: no session is added to a closed one.
        lock(conn, &format!("cohort:{cohort}"))?;
        let cohort = open_cohort(conn, scope, cohort)?;
        if held_on < cohort.starts_on || held_on > cohort.ends_on {
            return Err(FieldError::new(
                "held_on",
                "outside_cohort",
                format!(
                    "the cohort runs from {} to {}",
                    cohort.starts_on, cohort.ends_on
                ),
            )
            .into());
        }
        let id = SessionId::generate().to_string();
        diesel::insert_into(cohort_sessions::table)
            .values((
                cohort_sessions::id.eq(&id),
                cohort_sessions::cohort_id.eq(cohort.id.to_string()),
                cohort_sessions::held_on.eq(held_on),
                cohort_sessions::topic.eq(&topic),
                cohort_sessions::created_at.eq(crate::now()),
            ))
            .execute(conn)?;
        audit::append(
            conn,
            context,
            Event {
                action: "cohort.session.create",
                entity: "cohort",
                entity_id: Some(cohort.id.to_string()),
                before: None,
                after: Some(json!({"session_id": id, "held_on": held_on.to_string()})),
            },
        )?;
        to_session((id, cohort.id.to_string(), held_on, topic))
    })
}

pub fn sessions(
    conn: &mut DbConnection,
    scope: &Scope,
    cohort: CohortId,
) -> Result<Vec<Session>, StoreError> {
    get(conn, scope, cohort)?;
    cohort_sessions::table
        .filter(cohort_sessions::cohort_id.eq(cohort.to_string()))
        .select(SESSION_COLUMNS)
        .order((cohort_sessions::held_on.asc(), cohort_sessions::id.asc()))
        .load::<SessionRow>(conn)?
        .into_iter()
        .map(to_session)
        .collect()
}

fn registration_by_person(
    conn: &mut DbConnection,
    cohort: CohortId,
    person: PersonId,
) -> Result<Option<RegistrationRow>, StoreError> {
    Ok(registrations::table
        .filter(registrations::cohort_id.eq(cohort.to_string()))
        .filter(registrations::person_id.eq(person.to_string()))
        .select(RegistrationRow::as_select())
        .first(conn)
        .optional()?)
}

fn seats_taken(conn: &mut DbConnection, cohort: CohortId) -> Result<i64, StoreError> {
    Ok(registrations::table
        .filter(registrations::cohort_id.eq(cohort.to_string()))
        .filter(registrations::status.eq(RegistrationStatus::Registered.as_str()))
        .count()
        .get_result(conn)?)
}

fn registration_snapshot(r: &Registration) -> serde_json::Value {
    json!({
        "cohort_id": r.cohort_id.to_string(),
        "person_id": r.person_id.to_string(),
        "status": r.status.as_str(),
        "position": r.position,
        "certificate_number": r.certificate_number,
    })
}

/// Registers a person (in the caller's scope) in an open cohort: a seat while there is one, the
/// waitlist after that.
pub fn register(
    conn: &mut DbConnection,
    context: &AuditContext,
    scope: &Scope,
    cohort: CohortId,
    person: PersonId,
) -> Result<Registration, StoreError> {
    write_transaction(conn, |conn| {
        // Registrations of one cohort are counted and numbered one at a time.
        lock(conn, &format!("cohort:{cohort}"))?;
        let cohort = open_cohort(conn, scope, cohort)?;
        match crate::persons::get(conn, scope, person) {
            Ok(_) => {}
            Err(StoreError::NotFound) => {
                return Err(FieldError::new(
                    "person_id",
                    "not_found",
                    "no such person in your scope",
                )
                .into());
            }
            Err(other) => return Err(other),
        }
        if let Some(existing) = registration_by_person(conn, cohort.id, person)? {
            return Err(StoreError::Exists {
                message: format!("the person is in this cohort already ({})", existing.status),
                existing: existing.id,
            });
        }
        let status = if seats_taken(conn, cohort.id)? < i64::from(cohort.capacity) {
            RegistrationStatus::Registered
        } else {
            RegistrationStatus::Waitlisted
        };
        let last: Option<i64> = registrations::table
            .filter(registrations::cohort_id.eq(cohort.id.to_string()))
            .select(diesel::dsl::max(registrations::position))
            .first(conn)?;
        let now = crate::now();
        let row: RegistrationRow = diesel::insert_into(registrations::table)
            .values(RegistrationRow {
                id: RegistrationId::generate().to_string(),
                cohort_id: cohort.id.to_string(),
                person_id: person.to_string(),
                status: status.as_str().to_owned(),
                position: last.unwrap_or(0) + 1,
                certificate_number: None,
                completed_on: None,
                registered_at: now,
                updated_at: now,
            })
            .returning(registrations::all_columns)
            .get_result(conn)?;
        let registration = to_registration(row)?;
        audit::append(
            conn,
            context,
            Event {
                action: "registration.create",
                entity: "registration",
                entity_id: Some(registration.id.to_string()),
                before: None,
                after: Some(registration_snapshot(&registration)),
            },
        )?;
        Ok(registration)
    })
}

fn set_status(
    conn: &mut DbConnection,
    id: &str,
    status: RegistrationStatus,
) -> Result<(), StoreError> {
    diesel::update(registrations::table.find(id))
        .set((
            registrations::status.eq(status.as_str()),
            registrations::updated_at.eq(crate::now()),
        ))
        .execute(conn)?;
    Ok(())
}

/// Withdraws a registration. A freed seat goes to the first person on the waitlist. Returns the
/// withdrawn registration and the promoted one, if any.
pub fn withdraw(
    conn: &mut DbConnection,
    context: &AuditContext,
    scope: &Scope,
    cohort: CohortId,
    registration: RegistrationId,
) -> Result<(Registration, Option<Registration>), StoreError> {
    write_transaction(conn, |conn| {
        lock(conn, &format!("cohort:{cohort}"))?;
        let cohort = open_cohort(conn, scope, cohort)?;
        let before = registrations::table
            .find(registration.to_string())
            .filter(registrations::cohort_id.eq(cohort.id.to_string()))
            .select(RegistrationRow::as_select())
            .first(conn)
            .map_err(StoreError::from)
            .and_then(to_registration)?;
        if !matches!(
            before.status,
            RegistrationStatus::Registered | RegistrationStatus::Waitlisted
        ) {
            return Err(StoreError::Conflict(format!(
                "a {} registration cannot be withdrawn",
                before.status
            )));
        }
        set_status(conn, &before.id.to_string(), RegistrationStatus::Withdrawn)?;
        let mut promoted = None;
        if before.status == RegistrationStatus::Registered
            && seats_taken(conn, cohort.id)? < i64::from(cohort.capacity)
        {
            let next: Option<RegistrationRow> = registrations::table
                .filter(registrations::cohort_id.eq(cohort.id.to_string()))
                .filter(registrations::status.eq(RegistrationStatus::Waitlisted.as_str()))
                .select(RegistrationRow::as_select())
                .order(registrations::position.asc())
                .first(conn)
                .optional()?;
            if let Some(next) = next {
                set_status(conn, &next.id, RegistrationStatus::Registered)?;
                promoted = Some(registration_row(conn, &next.id)?);
            }
        }
        let after = registration_row(conn, &before.id.to_string())?;
        audit::append(
            conn,
            context,
            Event {
                action: "registration.withdraw",
                entity: "registration",
                entity_id: Some(after.id.to_string()),
                before: Some(registration_snapshot(&before)),
                after: Some(json!({
                    "status": after.status.as_str(),
                    "promoted": promoted.as_ref().map(|p: &Registration| p.id.to_string()),
                })),
            },
        )?;
        Ok((after, promoted))
    })
}

fn registration_row(conn: &mut DbConnection, id: &str) -> Result<Registration, StoreError> {
    to_registration(
        registrations::table
            .find(id)
            .select(RegistrationRow::as_select())
            .first(conn)?,
    )
}

/// A cohort's attendance: the sessions held and each person's marks.
struct CohortAttendance {
    sessions: u32,
    by_person: HashMap<String, AttendanceCount>,
}

impl CohortAttendance {
    /// A person's count; someone never marked was absent from every session.
    fn of(&self, person: &str) -> AttendanceCount {
        self.by_person
            .get(person)
            .copied()
            .unwrap_or(AttendanceCount {
                sessions: self.sessions,
                ..AttendanceCount::default()
            })
    }
}

/// Attendance counts per person of a cohort, over its sessions so far.
/// Only sessions held on or before `until` count: sessions planned ahead are not absences.
fn counts(
    conn: &mut DbConnection,
    cohort: CohortId,
    until: NaiveDate,
) -> Result<CohortAttendance, StoreError> {
    let sessions: i64 = cohort_sessions::table
        .filter(cohort_sessions::cohort_id.eq(cohort.to_string()))
        .filter(cohort_sessions::held_on.le(until))
        .count()
        .get_result(conn)?;
    let sessions = u32::try_from(sessions).unwrap_or(u32::MAX);
    let marks: Vec<(String, String, i64)> = attendance::table
        .inner_join(cohort_sessions::table)
        .filter(cohort_sessions::cohort_id.eq(cohort.to_string()))
        .filter(cohort_sessions::held_on.le(until))
        .group_by((attendance::person_id, attendance::mark))
        .select((
            attendance::person_id,
            attendance::mark,
            diesel::dsl::count_star(),
        ))
        .load(conn)?;
    let mut by_person: HashMap<String, AttendanceCount> = HashMap::new();
    for (person, mark, n) in marks {
        let entry = by_person.entry(person).or_insert(AttendanceCount {
            sessions,
            ..AttendanceCount::default()
        });
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        match mark.parse::<AttendanceMark>() {
            Ok(AttendanceMark::Present) => entry.present = n,
            Ok(AttendanceMark::Excused) => entry.excused = n,
            Ok(AttendanceMark::Absent) => {}
            Err(_) => return Err(StoreError::Internal(format!("bad attendance mark {mark}"))),
        }
    }
    Ok(CohortAttendance {
        sessions,
        by_person,
    })
}

/// The registrations of a cohort in order of arrival, each with its attendance so far.
/// Listing a sensitive course's registrations is audited as a sensitive read.
pub fn registrations(
    conn: &mut DbConnection,
    context: &AuditContext,
    scope: &Scope,
    cohort: CohortId,
) -> Result<Vec<(Registration, AttendanceCount)>, StoreError> {
    let (_, course) = get_with_course(conn, scope, cohort)?;
    let attendance = counts(conn, cohort, crate::now().date())?;
    let rows: Vec<RegistrationRow> = registrations::table
        .filter(registrations::cohort_id.eq(cohort.to_string()))
        .select(RegistrationRow::as_select())
        .order(registrations::position.asc())
        .load(conn)?;
    let list = rows
        .into_iter()
        .map(|row| {
            let count = attendance.of(&row.person_id);
            Ok((to_registration(row)?, count))
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    if course.sensitive {
        write_transaction(conn, |conn| {
            audit_sensitive_read(conn, context, "cohort", &cohort.to_string(), list.len())
        })?;
    }
    Ok(list)
}

/// One person's mark at one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    pub person_id: PersonId,
    pub mark: AttendanceMark,
}

/// The session, its cohort and course, checked against the caller.
pub(crate) fn session_in_scope(
    conn: &mut DbConnection,
    scope: &Scope,
    session: SessionId,
) -> Result<(Session, Cohort), StoreError> {
    let row: SessionRow = cohort_sessions::table
        .find(session.to_string())
        .select(SESSION_COLUMNS)
        .first(conn)?;
    let session = to_session(row)?;
    let cohort = get(conn, scope, session.cohort_id)?;
    Ok((session, cohort))
}

/// Records marks for a session: setting a mark again to the same value changes nothing, so a
/// retried sheet is harmless. Only registered (seated) people of the cohort can be marked.
pub fn record_attendance(
    conn: &mut DbConnection,
    context: &AuditContext,
    scope: &Scope,
    recorder: Recorder,
    session: SessionId,
    marks: &[Mark],
) -> Result<Vec<Mark>, StoreError> {
    write_transaction(conn, |conn| {
        let (session, cohort) = session_in_scope(conn, scope, session)?;
        // Ordered with closing the cohort and with other sheets of it; then read it again.
        lock(conn, &format!("cohort:{}", cohort.id))?;
        let cohort = get(conn, scope, cohort.id)?;
        recorder.check(&cohort)?;
        if cohort.state == CohortState::Closed {
            return Err(StoreError::Conflict(
                "the cohort is closed; its attendance is final".to_owned(),
            ));
        }
        let seated: Vec<String> = registrations::table
            .filter(registrations::cohort_id.eq(cohort.id.to_string()))
            .filter(registrations::status.eq(RegistrationStatus::Registered.as_str()))
            .select(registrations::person_id)
            .load(conn)?;
        let mut errors = tavana_domain::ValidationErrors::default();
        for (i, mark) in marks.iter().enumerate() {
            if !seated.contains(&mark.person_id.to_string()) {
                errors.push(FieldError::new(
                    format!("marks[{i}].person_id"),
                    "not_registered",
                    "this person has no seat in the cohort",
                ));
            }
        }
        errors.into_result().map_err(StoreError::Invalid)?;
        let now = crate::now();
        let mut changed = 0;
        for mark in marks {
            let current: Option<String> = attendance::table
                .find((session.id.to_string(), mark.person_id.to_string()))
                .select(attendance::mark)
                .first(conn)
                .optional()?;
            match current {
                Some(current) if current == mark.mark.as_str() => {}
                Some(_) => {
                    diesel::update(
                        attendance::table
                            .find((session.id.to_string(), mark.person_id.to_string())),
                    )
                    .set((
                        attendance::mark.eq(mark.mark.as_str()),
                        attendance::recorded_by.eq(context.actor.id()),
                        attendance::recorded_at.eq(now),
                    ))
                    .execute(conn)?;
                    changed += 1;
                }
                None => {
                    diesel::insert_into(attendance::table)
                        .values((
                            attendance::session_id.eq(session.id.to_string()),
                            attendance::person_id.eq(mark.person_id.to_string()),
                            attendance::mark.eq(mark.mark.as_str()),
                            attendance::recorded_by.eq(context.actor.id()),
                            attendance::recorded_at.eq(now),
                        ))
                        .execute(conn)?;
                    changed += 1;
                }
            }
        }
        if changed > 0 {
            audit::append(
                conn,
                context,
                Event {
                    action: "attendance.record",
                    entity: "session",
                    entity_id: Some(session.id.to_string()),
                    before: None,
                    after: Some(json!({"cohort_id": cohort.id.to_string(), "changed": changed})),
                },
            )?;
        }
        attendance_of(conn, &session.id.to_string())
    })
}

fn attendance_of(conn: &mut DbConnection, session: &str) -> Result<Vec<Mark>, StoreError> {
    let rows: Vec<(String, String)> = attendance::table
        .filter(attendance::session_id.eq(session))
        .select((attendance::person_id, attendance::mark))
        .order(attendance::person_id.asc())
        .load(conn)?;
    rows.into_iter()
        .map(|(person, mark)| {
            Ok(Mark {
                person_id: person
                    .parse()
                    .map_err(|_| StoreError::Internal(format!("bad person id {person}")))?,
                mark: mark
                    .parse()
                    .map_err(|_| StoreError::Internal(format!("bad attendance mark {mark}")))?,
            })
        })
        .collect()
}

/// The marks of a session. Who attended an addiction or divorce course is sensitive: such a read
/// is written to the audit log, in the same transaction, before the data is returned.
pub fn attendance(
    conn: &mut DbConnection,
    context: &AuditContext,
    scope: &Scope,
    session: SessionId,
) -> Result<Vec<Mark>, StoreError> {
    let (session, cohort) = session_in_scope(conn, scope, session)?;
    let course = crate::courses::get(conn, cohort.course_id)?;
    if !course.sensitive {
        return attendance_of(conn, &session.id.to_string());
    }
    write_transaction(conn, |conn| {
        let marks = attendance_of(conn, &session.id.to_string())?;
        audit_sensitive_read(
            conn,
            context,
            "session",
            &session.id.to_string(),
            marks.len(),
        )?;
        Ok(marks)
    })
}

/// Records that someone read individual attendance of a sensitive course.
pub fn audit_sensitive_read(
    conn: &mut DbConnection,
    context: &AuditContext,
    entity: &'static str,
    entity_id: &str,
    people: usize,
) -> Result<(), StoreError> {
    audit::append(
        conn,
        context,
        Event {
            action: "training.sensitive_read",
            entity,
            entity_id: Some(entity_id.to_owned()),
            before: None,
            after: Some(json!({"people": people})),
        },
    )
}

/// Closes a cohort on `on`: each seated person who meets the completion rule is `completed` with a
/// certificate numbered in the Jalali year of `on`; the others are `not_completed`.
pub fn close(
    conn: &mut DbConnection,
    context: &AuditContext,
    scope: &Scope,
    cohort: CohortId,
    on: NaiveDate,
    expected_version: Option<i64>,
) -> Result<(Cohort, Vec<Registration>), StoreError> {
    write_transaction(conn, |conn| {
        lock(conn, &format!("cohort:{cohort}"))?;
        let before = open_cohort(conn, scope, cohort)?;
        if let Some(expected) = expected_version
            && expected != before.version
        {
            return Err(StoreError::VersionMismatch {
                current: before.version,
            });
        }
        let year = tavana_domain::calendar::to_jalali(on)
            .map(|j| j.year)
            .ok_or_else(|| FieldError::new("on", "out_of_range", "no Jalali date for this day"))?;
        let attendance = counts(conn, cohort, on)?;
        let seated: Vec<RegistrationRow> = registrations::table
            .filter(registrations::cohort_id.eq(cohort.to_string()))
            .filter(registrations::status.eq(RegistrationStatus::Registered.as_str()))
            .select(RegistrationRow::as_select())
            .order(registrations::position.asc())
            .load(conn)?;
        let now = crate::now();
        let mut completed = 0;
        for row in &seated {
            if completes(attendance.of(&row.person_id)) {
                let serial = crate::counters::next(conn, &format!("certificate:{year}"))?;
                diesel::update(registrations::table.find(&row.id))
                    .set((
                        registrations::status.eq(RegistrationStatus::Completed.as_str()),
                        registrations::certificate_number.eq(certificate_number(year, serial)),
                        registrations::completed_on.eq(on),
                        registrations::updated_at.eq(now),
                    ))
                    .execute(conn)?;
                completed += 1;
            } else {
                set_status(conn, &row.id, RegistrationStatus::NotCompleted)?;
            }
        }
        diesel::update(cohorts::table.find(cohort.to_string()))
            .set((
                cohorts::state.eq(CohortState::Closed.as_str()),
                cohorts::version.eq(before.version + 1),
                cohorts::updated_at.eq(now),
            ))
            .execute(conn)?;
        audit::append(
            conn,
            context,
            Event {
                action: "cohort.close",
                entity: "cohort",
                entity_id: Some(cohort.to_string()),
                before: Some(json!({"state": before.state.as_str()})),
                after: Some(json!({
                    "state": CohortState::Closed.as_str(),
                    "sessions": attendance.sessions,
                    "completed": completed,
                    "not_completed": seated.len() - completed,
                })),
            },
        )?;
        let after = get(conn, scope, cohort)?;
        let list = registrations::table
            .filter(registrations::cohort_id.eq(cohort.to_string()))
            .select(RegistrationRow::as_select())
            .order(registrations::position.asc())
            .load::<RegistrationRow>(conn)?
            .into_iter()
            .map(to_registration)
            .collect::<Result<_, _>>()?;
        Ok((after, list))
    })
}

/// One line of a person's training history.
#[derive(Debug, Clone)]
pub struct TrainingRecord {
    pub registration: Registration,
    pub cohort: Cohort,
    pub course: Course,
    pub attendance: AttendanceCount,
}

/// Everything a person (in the caller's scope) registered for, oldest first. A history that shows
/// a sensitive course is audited as a sensitive read.
pub fn history(
    conn: &mut DbConnection,
    context: &AuditContext,
    scope: &Scope,
    person: PersonId,
) -> Result<Vec<TrainingRecord>, StoreError> {
    crate::persons::get(conn, scope, person)?;
    let query = registrations::table
        .inner_join(cohorts::table.inner_join(courses::table))
        .filter(registrations::person_id.eq(person.to_string()))
        .select((
            RegistrationRow::as_select(),
            CohortRow::as_select(),
            CourseRow::as_select(),
        ))
        .order(registrations::registered_at.asc());
    // Only cohorts in the caller's neighbourhoods: a person who moved keeps their history
    // elsewhere out of sight.
    let rows: Vec<(RegistrationRow, CohortRow, CourseRow)> = match scope {
        Scope::All => query.load(conn)?,
        Scope::UserAreas(user) => query
            .filter(cohorts::neighbourhood_id.eq_any(assigned_to(*user)))
            .load(conn)?,
    };
    let mut records = Vec::with_capacity(rows.len());
    for (registration, cohort, course) in rows {
        let attendance = counts(
            conn,
            cohort
                .id
                .parse()
                .map_err(|_| StoreError::Internal(format!("cohorts row {}: bad id", cohort.id)))?,
            crate::now().date(),
        )?
        .of(&registration.person_id);
        records.push(TrainingRecord {
            registration: to_registration(registration)?,
            cohort: to_cohort(cohort)?,
            course: to_course(course)?,
            attendance,
        });
    }
    if records.iter().any(|r| r.course.sensitive) {
        write_transaction(conn, |conn| {
            audit_sensitive_read(conn, context, "person", &person.to_string(), 1)
        })?;
    }
    Ok(records)
}

/// Whether the person completed a course of `category` (for permit eligibility).
pub fn has_completed(
    conn: &mut DbConnection,
    person: PersonId,
    category: tavana_domain::training::CourseCategory,
) -> Result<bool, StoreError> {
    let n: i64 = registrations::table
        .inner_join(cohorts::table.inner_join(courses::table))
        .filter(registrations::person_id.eq(person.to_string()))
        .filter(registrations::status.eq(RegistrationStatus::Completed.as_str()))
        .filter(courses::category.eq(category.as_str()))
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

/// Aggregate figures of one course, never naming a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CourseFigures {
    pub course: Course,
    pub cohorts: i64,
    pub registered: i64,
    pub waitlisted: i64,
    pub completed: i64,
    pub not_completed: i64,
}

/// (course, registration status, how many)
type StatusCount = (String, String, i64);

/// Per course: cohorts and registrations by status, over the cohorts in the caller's scope and,
/// for a partner, in its MoU's neighbourhoods (`mou`; `None` when the MoU covers every one).
pub fn statistics(
    conn: &mut DbConnection,
    scope: &Scope,
    mou: Option<&[String]>,
) -> Result<Vec<CourseFigures>, StoreError> {
    let courses: Vec<CourseRow> = courses::table
        .select(CourseRow::as_select())
        .order(courses::id.asc())
        .load(conn)?;
    let mut per_course = cohorts::table
        .group_by(cohorts::course_id)
        .select((cohorts::course_id, diesel::dsl::count_star()))
        .into_boxed();
    let mut per_status = registrations::table
        .inner_join(cohorts::table)
        .group_by((cohorts::course_id, registrations::status))
        .select((
            cohorts::course_id,
            registrations::status,
            diesel::dsl::count_star(),
        ))
        .into_boxed();
    if let Scope::UserAreas(user) = scope {
        per_course = per_course.filter(cohorts::neighbourhood_id.eq_any(assigned_to(*user)));
        per_status = per_status.filter(cohorts::neighbourhood_id.eq_any(assigned_to(*user)));
    }
    if let Some(ids) = mou {
        per_course = per_course.filter(cohorts::neighbourhood_id.eq_any(ids));
        per_status = per_status.filter(cohorts::neighbourhood_id.eq_any(ids));
    }
    let cohort_counts: Vec<(String, i64)> = per_course.load(conn)?;
    let status_counts: Vec<StatusCount> = per_status.load(conn)?;
    courses
        .into_iter()
        .map(|row| {
            let id = row.id.clone();
            let by = |status: RegistrationStatus| {
                status_counts
                    .iter()
                    .filter(|(c, s, _)| *c == id && s == status.as_str())
                    .map(|(_, _, n)| *n)
                    .sum()
            };
            Ok(CourseFigures {
                cohorts: cohort_counts
                    .iter()
                    .filter(|(c, _)| *c == id)
                    .map(|(_, n)| *n)
                    .sum(),
                registered: by(RegistrationStatus::Registered),
                waitlisted: by(RegistrationStatus::Waitlisted),
                completed: by(RegistrationStatus::Completed),
                not_completed: by(RegistrationStatus::NotCompleted),
                course: to_course(row)?,
            })
        })
        .collect()
}
