//! Home-business permits: applications and their review steps, issued permits with validity
//! periods, actions on them, and monitoring visits. Every query takes the caller's [`Scope`];
//! only the public lookup by number does not, and it returns no personal data.

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use serde_json::json;
use tavana_domain::FieldError;
use tavana_domain::enrolment::EnrolmentState;
use tavana_domain::id::{PermitApplicationId, PermitId, PersonId};
use tavana_domain::permit::{
    self, ApplicationState, Check, Facts, PermitAction, PermitState, StepError, after_action,
    allowed_actions, eligibility, permit_number, renewal_period, state_on,
};
use tavana_domain::training::CourseCategory;

use crate::audit::{self, AuditContext, Event};
use crate::db::{DbConnection, MultiBackend};
use crate::error::StoreError;
use crate::schema::{
    business_activities, enrolments, permit_application_steps, permit_applications, permit_periods,
    permit_visits, permits,
};
use crate::scope::{Scope, assigned_to};
use crate::tx::{lock, write_transaction};

/// One activity of the catalogue.
#[derive(Debug, Clone, PartialEq, Eq, Queryable)]
pub struct Activity {
    pub code: String,
    pub name_fa: String,
    pub name_en: String,
}

pub fn activities(conn: &mut DbConnection) -> Result<Vec<Activity>, StoreError> {
    Ok(business_activities::table
        .select((
            business_activities::code,
            business_activities::name_fa,
            business_activities::name_en,
        ))
        .order(business_activities::code.asc())
        .load(conn)?)
}

fn activity(conn: &mut DbConnection, code: &str) -> Result<Activity, StoreError> {
    Ok(business_activities::table
        .find(code)
        .select((
            business_activities::code,
            business_activities::name_fa,
            business_activities::name_en,
        ))
        .first(conn)?)
}

#[derive(Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = permit_applications)]
struct ApplicationRow {
    id: String,
    person_id: String,
    neighbourhood_id: String,
    activity: String,
    address: String,
    state: String,
    applied_on: NaiveDate,
    permit_id: Option<String>,
    version: i64,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

/// One step of an application's review.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = permit_application_steps)]
pub struct Step {
    pub application_id: String,
    pub seq: i32,
    pub from_state: Option<String>,
    pub to_state: String,
    pub effective_on: NaiveDate,
    pub notes: Option<String>,
    pub actor_id: Option<String>,
    pub recorded_at: NaiveDateTime,
}

/// An application with its steps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Application {
    pub id: PermitApplicationId,
    pub person_id: PersonId,
    pub neighbourhood_id: String,
    pub activity: String,
    pub address: String,
    pub state: ApplicationState,
    pub applied_on: NaiveDate,
    pub permit_id: Option<String>,
    pub steps: Vec<Step>,
    pub version: i64,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

fn to_application(conn: &mut DbConnection, row: ApplicationRow) -> Result<Application, StoreError> {
    let corrupt = |what: &str| {
        StoreError::Internal(format!("permit_applications row {}: bad {what}", row.id))
    };
    let steps = permit_application_steps::table
        .filter(permit_application_steps::application_id.eq(&row.id))
        .select(Step::as_select())
        .order(permit_application_steps::seq.asc())
        .load(conn)?;
    Ok(Application {
        id: row.id.parse().map_err(|_| corrupt("id"))?,
        person_id: row.person_id.parse().map_err(|_| corrupt("person_id"))?,
        neighbourhood_id: row.neighbourhood_id,
        activity: row.activity,
        address: row.address,
        state: row.state.parse().map_err(|_| corrupt("state"))?,
        applied_on: row.applied_on,
        permit_id: row.permit_id,
        steps,
        version: row.version,
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}

fn scoped_applications<'a>(scope: &Scope) -> permit_applications::BoxedQuery<'a, MultiBackend> {
    let mut query = permit_applications::table.into_boxed();
    if let Scope::UserAreas(user) = scope {
        query = query.filter(permit_applications::neighbourhood_id.eq_any(assigned_to(*user)));
    }
    query
}

/// A home-business permit.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = permits)]
pub struct Permit {
    pub id: String,
    pub number: String,
    pub application_id: String,
    pub person_id: String,
    pub neighbourhood_id: String,
    pub activity: String,
    /// As stored: issued, suspended or revoked. See [`Permit::state_on`].
    pub state: String,
    pub state_reason: Option<String>,
    pub issued_on: NaiveDate,
    pub valid_from: NaiveDate,
    pub valid_until: NaiveDate,
    pub version: i64,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

impl Permit {
    pub fn stored_state(&self) -> Result<PermitState, StoreError> {
        self.state
            .parse()
            .map_err(|_| StoreError::Internal(format!("permits row {}: bad state", self.id)))
    }

    /// The state on `day`, expiry included.
    pub fn state_on(&self, day: NaiveDate) -> Result<PermitState, StoreError> {
        Ok(state_on(self.stored_state()?, self.valid_until, day))
    }
}

fn scoped_permits<'a>(scope: &Scope) -> permits::BoxedQuery<'a, MultiBackend> {
    let mut query = permits::table.into_boxed();
    if let Scope::UserAreas(user) = scope {
        query = query.filter(permits::neighbourhood_id.eq_any(assigned_to(*user)));
    }
    query
}

/// An application as submitted.
#[derive(Debug, Clone)]
pub struct NewApplication {
    pub person_id: PersonId,
    pub activity: String,
    pub address: String,
    pub applied_on: NaiveDate,
}

/// The answer to an application: made, or refused with every rule explained.
#[derive(Debug, Clone)]
pub enum ApplyOutcome {
    Submitted(Application, Vec<Check>),
    Ineligible(Vec<Check>),
}

/// States from which a household counts as enrolled for a permit.
pub(crate) const ENROLLED_OR_FURTHER: [EnrolmentState; 6] = [
    EnrolmentState::Enrolled,
    EnrolmentState::InTraining,
    EnrolmentState::Permitted,
    EnrolmentState::Financed,
    EnrolmentState::Employed,
    EnrolmentState::Graduated,
];

/// The number of an issued or suspended, unexpired permit of `person` for `activity` on `on`,
/// other than the permit `except`.
fn active_permit(
    conn: &mut DbConnection,
    person: &str,
    activity: &str,
    on: NaiveDate,
    except: Option<&str>,
) -> Result<Option<String>, StoreError> {
    Ok(permits::table
        .filter(permits::person_id.eq(person))
        .filter(permits::activity.eq(activity))
        .filter(permits::id.ne(except.unwrap_or_default()))
        .filter(permits::state.eq_any([
            PermitState::Issued.as_str(),
            PermitState::Suspended.as_str(),
        ]))
        .filter(permits::valid_until.ge(on))
        .select(permits::number)
        .first(conn)
        .optional()?)
}

/// Applies for a permit if the person is eligible; otherwise explains each rule.
pub fn apply(
    conn: &mut DbConnection,
    context: &AuditContext,
    scope: &Scope,
    new: NewApplication,
) -> Result<ApplyOutcome, StoreError> {
    write_transaction(conn, |conn| {
        let person = match crate::persons::get(conn, scope, new.person_id) {
            Err(StoreError::NotFound) => {
                return Err(FieldError::new(
                    "person_id",
                    "not_found",
                    "no such person in your scope",
                )
                .into());
            }
            other => other?,
        };
        let (Some(household), Some(neighbourhood)) = (person.household_id, person.neighbourhood_id)
        else {
            return Err(FieldError::new(
                "person_id",
                "no_household",
                "the person belongs to no household, so to no neighbourhood",
            )
            .into());
        };
        if let Err(StoreError::NotFound) = activity(conn, &new.activity) {
            return Err(FieldError::new(
                "activity",
                "unknown",
                "not an activity of the catalogue (GET /api/v1/permit-activities)",
            )
            .into());
        }
        let person_key = new.person_id.to_string();
        lock(conn, &format!("permits:{person_key}"))?;
        let enrolled: i64 = enrolments::table
            .filter(enrolments::household_id.eq(household.to_string()))
            .filter(enrolments::state.eq_any(ENROLLED_OR_FURTHER.map(|s| s.as_str())))
            .count()
            .get_result(conn)?;
        let facts = Facts {
            birth_date: person.birth_date,
            on: new.applied_on,
            enrolled: enrolled > 0,
            completed_technical_course: crate::cohorts::has_completed(
                conn,
                new.person_id,
                CourseCategory::TechnicalVocational,
            )?,
            active_permit: active_permit(conn, &person_key, &new.activity, new.applied_on, None)?,
        };
        let checks = eligibility(&facts);
        if checks.iter().any(|c| !c.passed) {
            return Ok(ApplyOutcome::Ineligible(checks));
        }
        let open: Option<String> = permit_applications::table
            .filter(permit_applications::person_id.eq(&person_key))
            .filter(permit_applications::activity.eq(&new.activity))
            .filter(permit_applications::state.ne_all([
                ApplicationState::Issued.as_str(),
                ApplicationState::Rejected.as_str(),
            ]))
            .select(permit_applications::id)
            .first(conn)
            .optional()?;
        if let Some(existing) = open {
            return Err(StoreError::Exists {
                message: "an application for this activity is under review already".to_owned(),
                existing,
            });
        }
        let now = crate::now();
        let id = PermitApplicationId::generate().to_string();
        diesel::insert_into(permit_applications::table)
            .values(ApplicationRow {
                id: id.clone(),
                person_id: person_key,
                neighbourhood_id: neighbourhood.to_string(),
                activity: new.activity,
                address: new.address,
                state: ApplicationState::Submitted.as_str().to_owned(),
                applied_on: new.applied_on,
                permit_id: None,
                version: 1,
                created_at: now,
                updated_at: now,
            })
            .execute(conn)?;
        record_step(
            conn,
            context,
            &id,
            1,
            None,
            ApplicationState::Submitted,
            new.applied_on,
            None,
        )?;
        let application = get_application(conn, scope, id.parse().map_err(|_| bad_id())?)?;
        audit::append(
            conn,
            context,
            Event {
                action: "permit_application.create",
                entity: "permit_application",
                entity_id: Some(id),
                before: None,
                after: Some(json!({
                    "person_id": application.person_id.to_string(),
                    "activity": application.activity,
                    "state": application.state.as_str(),
                })),
            },
        )?;
        Ok(ApplyOutcome::Submitted(application, checks))
    })
}

fn bad_id() -> StoreError {
    StoreError::Internal("generated id does not parse".to_owned())
}

#[allow(clippy::too_many_arguments)]
fn record_step(
    conn: &mut DbConnection,
    context: &AuditContext,
    application: &str,
    seq: i32,
    from: Option<ApplicationState>,
    to: ApplicationState,
    on: NaiveDate,
    notes: Option<String>,
) -> Result<(), StoreError> {
    diesel::insert_into(permit_application_steps::table)
        .values(Step {
            application_id: application.to_owned(),
            seq,
            from_state: from.map(|s| s.as_str().to_owned()),
            to_state: to.as_str().to_owned(),
            effective_on: on,
            notes,
            actor_id: context.actor.id(),
            recorded_at: crate::now(),
        })
        .execute(conn)?;
    Ok(())
}

pub fn get_application(
    conn: &mut DbConnection,
    scope: &Scope,
    id: PermitApplicationId,
) -> Result<Application, StoreError> {
    let row = scoped_applications(scope)
        .filter(permit_applications::id.eq(id.to_string()))
        .select(ApplicationRow::as_select())
        .first(conn)?;
    to_application(conn, row)
}

#[derive(Debug, Clone, Default)]
pub struct ApplicationFilter {
    pub person_id: Option<PersonId>,
    pub state: Option<ApplicationState>,
}

pub fn list_applications(
    conn: &mut DbConnection,
    scope: &Scope,
    filter: &ApplicationFilter,
    after: Option<PermitApplicationId>,
    limit: usize,
) -> Result<(Vec<Application>, bool), StoreError> {
    let mut query = scoped_applications(scope).select(ApplicationRow::as_select());
    if let Some(person) = filter.person_id {
        query = query.filter(permit_applications::person_id.eq(person.to_string()));
    }
    if let Some(state) = filter.state {
        query = query.filter(permit_applications::state.eq(state.as_str()));
    }
    if let Some(after) = after {
        query = query.filter(permit_applications::id.gt(after.to_string()));
    }
    let rows: Vec<ApplicationRow> = query
        .order(permit_applications::id.asc())
        .limit(crate::page::fetch(limit))
        .load(conn)?;
    let (rows, more) = crate::page::split(rows, limit);
    let list = rows
        .into_iter()
        .map(|row| to_application(conn, row))
        .collect::<Result<_, _>>()?;
    Ok((list, more))
}

/// A review step done, or refused by the workflow's rules.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // one per request, moved once
pub enum StepOutcome {
    /// The application after the step, the permit if the step issued one, and the enrolments the
    /// permit moved to `permitted`.
    Done {
        application: Application,
        permit: Option<Permit>,
        enrolments_moved: Vec<String>,
    },
    Refused(StepError),
}

/// Moves an application one step. `issued` creates the permit, numbered in the Jalali year of
/// `on` and valid for `validity_years`, and moves the household's enrolments to `permitted` in
/// programmes whose rules say so.
#[allow(clippy::too_many_arguments)]
pub fn step(
    conn: &mut DbConnection,
    context: &AuditContext,
    scope: &Scope,
    id: PermitApplicationId,
    expected_version: Option<i64>,
    to: ApplicationState,
    on: NaiveDate,
    notes: Option<String>,
    validity_years: u32,
) -> Result<StepOutcome, StoreError> {
    write_transaction(conn, |conn| {
        let before = get_application(conn, scope, id)?;
        if let Some(expected) = expected_version
            && expected != before.version
        {
            return Err(StoreError::VersionMismatch {
                current: before.version,
            });
        }
        if let Err(refusal) = permit::check_step(before.state, to, notes.as_deref()) {
            return Ok(StepOutcome::Refused(refusal));
        }
        let previous_on = before
            .steps
            .last()
            .map_or(before.applied_on, |s| s.effective_on);
        if on < previous_on {
            return Err(FieldError::new(
                "on",
                "before_previous",
                format!("a step cannot be dated before the previous one ({previous_on})"),
            )
            .into());
        }
        let key = id.to_string();
        let updated = diesel::update(
            permit_applications::table
                .find(&key)
                .filter(permit_applications::version.eq(before.version)),
        )
        .set((
            permit_applications::state.eq(to.as_str()),
            permit_applications::version.eq(before.version + 1),
            permit_applications::updated_at.eq(crate::now()),
        ))
        .execute(conn)?;
        if updated == 0 {
            return Err(StoreError::VersionMismatch {
                current: before.version + 1,
            });
        }
        let seq = before.steps.last().map_or(0, |s| s.seq) + 1;
        record_step(conn, context, &key, seq, Some(before.state), to, on, notes)?;
        let (permit, enrolments_moved) = if to == ApplicationState::Issued {
            let (permit, moved) = issue(conn, context, &before, on, validity_years)?;
            (Some(permit), moved)
        } else {
            (None, Vec::new())
        };
        let application = get_application(conn, scope, id)?;
        audit::append(
            conn,
            context,
            Event {
                action: "permit_application.step",
                entity: "permit_application",
                entity_id: Some(key),
                before: Some(json!({"state": before.state.as_str()})),
                after: Some(json!({
                    "state": application.state.as_str(),
                    "permit": permit.as_ref().map(|p| p.number.clone()),
                })),
            },
        )?;
        Ok(StepOutcome::Done {
            application,
            permit,
            enrolments_moved,
        })
    })
}

fn issue(
    conn: &mut DbConnection,
    context: &AuditContext,
    application: &Application,
    on: NaiveDate,
    validity_years: u32,
) -> Result<(Permit, Vec<String>), StoreError> {
    let person = application.person_id.to_string();
    // Two applications for the same activity must not both end in a permit.
    lock(conn, &format!("permits:{person}"))?;
    if let Some(number) = active_permit(conn, &person, &application.activity, on, None)? {
        return Err(StoreError::Conflict(format!(
            "permit {number} for this activity is still active"
        )));
    }
    let year = tavana_domain::calendar::to_jalali(on)
        .map(|j| j.year)
        .ok_or_else(|| FieldError::new("on", "out_of_range", "no Jalali date for this day"))?;
    let serial = crate::counters::next(conn, &format!("permit:{year}"))?;
    let now = crate::now();
    let permit = Permit {
        id: PermitId::generate().to_string(),
        number: permit_number(year, serial),
        application_id: application.id.to_string(),
        person_id: person,
        neighbourhood_id: application.neighbourhood_id.clone(),
        activity: application.activity.clone(),
        state: PermitState::Issued.as_str().to_owned(),
        state_reason: None,
        issued_on: on,
        valid_from: on,
        valid_until: permit::valid_until(on, validity_years),
        version: 1,
        created_at: now,
        updated_at: now,
    };
    diesel::insert_into(permits::table)
        .values(&permit)
        .execute(conn)?;
    add_period(conn, context, &permit.id, 1, on, permit.valid_until)?;
    diesel::update(permit_applications::table.find(application.id.to_string()))
        .set(permit_applications::permit_id.eq(&permit.id))
        .execute(conn)?;
    // The enrolments' rows before the audit log's order lock (see `enrolments::move_row`); their
    // records after the permit's, as the permit moves them.
    let moved = crate::enrolments::advance_household(
        conn,
        context,
        application.person_id,
        EnrolmentState::Permitted,
        on,
        format!("home-business permit {} issued", permit.number),
    )?;
    audit::append(
        conn,
        context,
        Event {
            action: "permit.issue",
            entity: "permit",
            entity_id: Some(permit.id.clone()),
            before: None,
            after: Some(permit_snapshot(&permit)),
        },
    )?;
    let moved = moved.record(conn, context)?;
    Ok((permit, moved))
}

fn add_period(
    conn: &mut DbConnection,
    context: &AuditContext,
    permit: &str,
    seq: i32,
    from: NaiveDate,
    until: NaiveDate,
) -> Result<(), StoreError> {
    diesel::insert_into(permit_periods::table)
        .values((
            permit_periods::permit_id.eq(permit),
            permit_periods::seq.eq(seq),
            permit_periods::valid_from.eq(from),
            permit_periods::valid_until.eq(until),
            permit_periods::recorded_by.eq(context.actor.id()),
            permit_periods::recorded_at.eq(crate::now()),
        ))
        .execute(conn)?;
    Ok(())
}

fn permit_snapshot(p: &Permit) -> serde_json::Value {
    json!({
        "number": p.number,
        "person_id": p.person_id,
        "activity": p.activity,
        "state": p.state,
        "valid_from": p.valid_from.to_string(),
        "valid_until": p.valid_until.to_string(),
        "version": p.version,
    })
}

pub fn get(conn: &mut DbConnection, scope: &Scope, id: PermitId) -> Result<Permit, StoreError> {
    Ok(scoped_permits(scope)
        .filter(permits::id.eq(id.to_string()))
        .select(Permit::as_select())
        .first(conn)?)
}

#[derive(Debug, Clone, Default)]
pub struct PermitFilter {
    pub person_id: Option<PersonId>,
    pub activity: Option<String>,
}

pub fn list(
    conn: &mut DbConnection,
    scope: &Scope,
    filter: &PermitFilter,
    after: Option<PermitId>,
    limit: usize,
) -> Result<(Vec<Permit>, bool), StoreError> {
    let mut query = scoped_permits(scope).select(Permit::as_select());
    if let Some(person) = filter.person_id {
        query = query.filter(permits::person_id.eq(person.to_string()));
    }
    if let Some(activity) = &filter.activity {
        query = query.filter(permits::activity.eq(activity.clone()));
    }
    if let Some(after) = after {
        query = query.filter(permits::id.gt(after.to_string()));
    }
    let rows: Vec<Permit> = query
        .order(permits::id.asc())
        .limit(crate::page::fetch(limit))
        .load(conn)?;
    Ok(crate::page::split(rows, limit))
}

/// What the public may know of a permit: no holder, no address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicPermit {
    pub number: String,
    pub activity: Activity,
    pub state: PermitState,
    pub valid_from: NaiveDate,
    pub valid_until: NaiveDate,
}

/// The public lookup by number, as of `today`.
pub fn verify(
    conn: &mut DbConnection,
    number: &str,
    today: NaiveDate,
) -> Result<PublicPermit, StoreError> {
    let permit: Permit = permits::table
        .filter(permits::number.eq(number))
        .select(Permit::as_select())
        .first(conn)?;
    Ok(PublicPermit {
        state: permit.state_on(today)?,
        activity: activity(conn, &permit.activity)?,
        number: permit.number,
        valid_from: permit.valid_from,
        valid_until: permit.valid_until,
    })
}

/// An action refused by the rules, with the allowed ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionRefused {
    pub state: PermitState,
    pub allowed: Vec<PermitAction>,
}

/// Suspends, reinstates, revokes or renews a permit on `today`. Suspending and revoking need a
/// reason. Honours `expected_version`.
#[allow(clippy::too_many_arguments)]
pub fn act(
    conn: &mut DbConnection,
    context: &AuditContext,
    scope: &Scope,
    id: PermitId,
    expected_version: Option<i64>,
    action: PermitAction,
    reason: Option<String>,
    today: NaiveDate,
    validity_years: u32,
) -> Result<Result<Permit, ActionRefused>, StoreError> {
    write_transaction(conn, |conn| {
        let before = get(conn, scope, id)?;
        if let Some(expected) = expected_version
            && expected != before.version
        {
            return Err(StoreError::VersionMismatch {
                current: before.version,
            });
        }
        let stored = before.stored_state()?;
        let allowed = allowed_actions(stored, today > before.valid_until);
        if !allowed.contains(&action) {
            return Ok(Err(ActionRefused {
                state: before.state_on(today)?,
                allowed: allowed.to_vec(),
            }));
        }
        if matches!(action, PermitAction::Suspend | PermitAction::Revoke) && reason.is_none() {
            return Err(FieldError::new("reason", "required", "say why").into());
        }
        let key = id.to_string();
        let (from, until) = if action == PermitAction::Renew {
            // An expired permit renewed while a newer one for the activity is in force would make
            // two: refused, as issuing is, under the same lock.
            lock(conn, &format!("permits:{}", before.person_id))?;
            if let Some(number) =
                active_permit(conn, &before.person_id, &before.activity, today, Some(&key))?
            {
                return Err(StoreError::Conflict(format!(
                    "the person holds permit {number} for this activity, in force"
                )));
            }
            let (from, until) = renewal_period(before.valid_until, today, validity_years);
            let last: Option<i32> = permit_periods::table
                .filter(permit_periods::permit_id.eq(&key))
                .select(diesel::dsl::max(permit_periods::seq))
                .first(conn)?;
            add_period(conn, context, &key, last.unwrap_or(0) + 1, from, until)?;
            // Contiguous with the current period: the permit stays valid from its first day. After
            // a lapse, it is valid again from the renewal.
            let contiguous = before.valid_until.succ_opt() == Some(from);
            (if contiguous { before.valid_from } else { from }, until)
        } else {
            (before.valid_from, before.valid_until)
        };
        let updated = diesel::update(
            permits::table
                .find(&key)
                .filter(permits::version.eq(before.version)),
        )
        .set((
            permits::state.eq(after_action(stored, action).as_str()),
            permits::state_reason.eq(reason.or_else(|| before.state_reason.clone())),
            permits::valid_from.eq(from),
            permits::valid_until.eq(until),
            permits::version.eq(before.version + 1),
            permits::updated_at.eq(crate::now()),
        ))
        .execute(conn)?;
        if updated == 0 {
            return Err(StoreError::VersionMismatch {
                current: before.version + 1,
            });
        }
        let after = get(conn, scope, id)?;
        audit::append(
            conn,
            context,
            Event {
                action: match action {
                    PermitAction::Suspend => "permit.suspend",
                    PermitAction::Reinstate => "permit.reinstate",
                    PermitAction::Revoke => "permit.revoke",
                    PermitAction::Renew => "permit.renew",
                },
                entity: "permit",
                entity_id: Some(key),
                before: Some(permit_snapshot(&before)),
                after: Some(permit_snapshot(&after)),
            },
        )?;
        Ok(Ok(after))
    })
}

/// A validity period of a permit.
#[derive(Debug, Clone, PartialEq, Eq, Queryable)]
pub struct Period {
    pub seq: i32,
    pub valid_from: NaiveDate,
    pub valid_until: NaiveDate,
}

pub fn periods(
    conn: &mut DbConnection,
    scope: &Scope,
    id: PermitId,
) -> Result<Vec<Period>, StoreError> {
    get(conn, scope, id)?;
    Ok(permit_periods::table
        .filter(permit_periods::permit_id.eq(id.to_string()))
        .select((
            permit_periods::seq,
            permit_periods::valid_from,
            permit_periods::valid_until,
        ))
        .order(permit_periods::seq.asc())
        .load(conn)?)
}

/// A monitoring visit.
#[derive(Debug, Clone, PartialEq, Eq, Queryable)]
pub struct Visit {
    pub id: String,
    pub visited_on: NaiveDate,
    pub notes: String,
    pub recorded_by: Option<String>,
    pub recorded_at: NaiveDateTime,
}

pub fn add_visit(
    conn: &mut DbConnection,
    context: &AuditContext,
    scope: &Scope,
    id: PermitId,
    visited_on: NaiveDate,
    notes: String,
) -> Result<Visit, StoreError> {
    write_transaction(conn, |conn| {
        let permit = get(conn, scope, id)?;
        if visited_on < permit.issued_on {
            return Err(FieldError::new(
                "visited_on",
                "before_issue",
                format!("the permit was issued on {}", permit.issued_on),
            )
            .into());
        }
        let visit = Visit {
            id: uuid::Uuid::now_v7().to_string(),
            visited_on,
            notes,
            recorded_by: context.actor.id(),
            recorded_at: crate::now(),
        };
        diesel::insert_into(permit_visits::table)
            .values((
                permit_visits::id.eq(&visit.id),
                permit_visits::permit_id.eq(&permit.id),
                permit_visits::visited_on.eq(visit.visited_on),
                permit_visits::notes.eq(&visit.notes),
                permit_visits::recorded_by.eq(&visit.recorded_by),
                permit_visits::recorded_at.eq(visit.recorded_at),
            ))
            .execute(conn)?;
        audit::append(
            conn,
            context,
            Event {
                action: "permit.visit",
                entity: "permit",
                entity_id: Some(permit.id),
                before: None,
                after: Some(json!({"visit_id": visit.id, "visited_on": visited_on.to_string()})),
            },
        )?;
        Ok(visit)
    })
}

pub fn visits(
    conn: &mut DbConnection,
    scope: &Scope,
    id: PermitId,
) -> Result<Vec<Visit>, StoreError> {
    get(conn, scope, id)?;
    Ok(permit_visits::table
        .filter(permit_visits::permit_id.eq(id.to_string()))
        .select((
            permit_visits::id,
            permit_visits::visited_on,
            permit_visits::notes,
            permit_visits::recorded_by,
            permit_visits::recorded_at,
        ))
        .order((permit_visits::visited_on.asc(), permit_visits::id.asc()))
        .load(conn)?)
}
