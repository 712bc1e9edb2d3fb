//! The `enrolments` table and its transition history. Every query takes the caller's [`Scope`].

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use serde_json::json;
use tavana_domain::FieldError;
use tavana_domain::enrolment::{
    Enrolment, EnrolmentState, Transition, TransitionContext, TransitionError, allowed_transitions,
    check_transition,
};
use tavana_domain::id::{AreaId, EnrolmentId, HouseholdId, PersonId, ProgrammeId};

use crate::audit::{self, AuditContext, Event};
use crate::changes::Op;
use crate::db::{DbConnection, MultiBackend};
use crate::error::StoreError;
use crate::schema::{enrolment_transitions, enrolments, persons, programmes};
use crate::scope::{Scope, assigned_to};
use crate::tx::write_transaction;
use tavana_domain::partner::Resource;

#[derive(Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = enrolments)]
pub(crate) struct EnrolmentRow {
    pub(crate) id: String,
    pub(crate) programme_id: String,
    pub(crate) household_id: String,
    pub(crate) neighbourhood_id: String,
    pub(crate) state: String,
    pub(crate) state_since: NaiveDate,
    pub(crate) resume_to: Option<String>,
    pub(crate) version: i64,
    pub(crate) created_at: NaiveDateTime,
    pub(crate) updated_at: NaiveDateTime,
}

fn to_enrolment(row: EnrolmentRow) -> Result<Enrolment, StoreError> {
    let corrupt =
        |what: &str| StoreError::Internal(format!("enrolments row {}: bad {what}", row.id));
    Ok(Enrolment {
        id: row.id.parse().map_err(|_| corrupt("id"))?,
        programme_id: row
            .programme_id
            .parse()
            .map_err(|_| corrupt("programme_id"))?,
        household_id: row
            .household_id
            .parse()
            .map_err(|_| corrupt("household_id"))?,
        neighbourhood_id: row
            .neighbourhood_id
            .parse()
            .map_err(|_| corrupt("neighbourhood_id"))?,
        state: row.state.parse().map_err(|_| corrupt("state"))?,
        state_since: row.state_since,
        resume_to: row
            .resume_to
            .as_deref()
            .map(str::parse)
            .transpose()
            .map_err(|_| corrupt("resume_to"))?,
        version: row.version,
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}

#[derive(Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = enrolment_transitions)]
pub(crate) struct TransitionRow {
    pub(crate) id: String,
    pub(crate) enrolment_id: String,
    pub(crate) seq: i32,
    pub(crate) from_state: Option<String>,
    pub(crate) to_state: String,
    pub(crate) effective_on: NaiveDate,
    pub(crate) reason: Option<String>,
    pub(crate) actor_kind: String,
    pub(crate) actor_id: Option<String>,
    pub(crate) recorded_at: NaiveDateTime,
}

fn to_transition(row: TransitionRow) -> Result<Transition, StoreError> {
    let corrupt = |what: &str| {
        StoreError::Internal(format!("enrolment_transitions row {}: bad {what}", row.id))
    };
    Ok(Transition {
        seq: row.seq,
        from: row
            .from_state
            .as_deref()
            .map(str::parse)
            .transpose()
            .map_err(|_| corrupt("from_state"))?,
        to: row.to_state.parse().map_err(|_| corrupt("to_state"))?,
        on: row.effective_on,
        reason: row.reason,
        actor_id: row.actor_id,
        recorded_at: row.recorded_at,
    })
}

fn snapshot(enrolment: &Enrolment) -> serde_json::Value {
    json!({
        "id": enrolment.id.to_string(),
        "programme_id": enrolment.programme_id.to_string(),
        "household_id": enrolment.household_id.to_string(),
        "state": enrolment.state.as_str(),
        "state_since": enrolment.state_since.to_string(),
        "version": enrolment.version,
    })
}

fn scoped<'a>(scope: &Scope) -> enrolments::BoxedQuery<'a, MultiBackend> {
    let mut query = enrolments::table.into_boxed();
    if let Scope::UserAreas(user) = scope {
        query = query.filter(enrolments::neighbourhood_id.eq_any(assigned_to(*user)));
    }
    query
}

#[allow(clippy::too_many_arguments)]
fn record_transition(
    conn: &mut DbConnection,
    context: &AuditContext,
    enrolment: &str,
    // (programme, neighbourhood) of the enrolment, for the progress counts.
    place: (&str, &str),
    seq: i32,
    from: Option<EnrolmentState>,
    to: EnrolmentState,
    on: NaiveDate,
    reason: Option<String>,
) -> Result<(), StoreError> {
    diesel::insert_into(enrolment_transitions::table)
        .values(TransitionRow {
            id: uuid::Uuid::now_v7().to_string(),
            enrolment_id: enrolment.to_owned(),
            seq,
            from_state: from.map(|s| s.as_str().to_owned()),
            to_state: to.as_str().to_owned(),
            effective_on: on,
            reason,
            actor_kind: context.actor.kind().to_owned(),
            actor_id: context.actor.id(),
            recorded_at: crate::now(),
        })
        .execute(conn)?;
    crate::progress::record_stage(conn, enrolment, place.0, place.1, to, on)
}

/// Identifies a household (in scope) for a programme, from `on`.
pub fn create(
    conn: &mut DbConnection,
    context: &AuditContext,
    scope: &Scope,
    programme: ProgrammeId,
    household: HouseholdId,
    on: NaiveDate,
    reason: Option<String>,
) -> Result<Enrolment, StoreError> {
    write_transaction(conn, |conn| {
        let household = match crate::households::get(conn, scope, household) {
            Ok(household) => household,
            Err(StoreError::NotFound) => {
                return Err(FieldError::new(
                    "household_id",
                    "not_found",
                    "no such household in your scope",
                )
                .into());
            }
            Err(other) => return Err(other),
        };
        match crate::programmes::get(conn, programme) {
            Ok(_) => {}
            Err(StoreError::NotFound) => {
                return Err(
                    FieldError::new("programme_id", "not_found", "no such programme").into(),
                );
            }
            Err(other) => return Err(other),
        }
        let existing: Option<String> = enrolments::table
            .filter(enrolments::programme_id.eq(programme.to_string()))
            .filter(enrolments::household_id.eq(household.id.to_string()))
            .select(enrolments::id)
            .first(conn)
            .optional()?;
        if let Some(existing) = existing {
            return Err(StoreError::Exists {
                message: "the household is enrolled in this programme already".to_owned(),
                existing,
            });
        }
        let now = crate::now();
        let row = EnrolmentRow {
            id: EnrolmentId::generate().to_string(),
            programme_id: programme.to_string(),
            household_id: household.id.to_string(),
            neighbourhood_id: household.neighbourhood_id.to_string(),
            state: EnrolmentState::Identified.as_str().to_owned(),
            state_since: on,
            resume_to: None,
            version: 1,
            created_at: now,
            updated_at: now,
        };
        let inserted: EnrolmentRow = diesel::insert_into(enrolments::table)
            .values(&row)
            .returning(enrolments::all_columns)
            .get_result(conn)
            .map_err(|e| match e {
                DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
                    StoreError::Conflict(
                        "the household was enrolled in this programme at the same time".to_owned(),
                    )
                }
                other => other.into(),
            })?;
        record_transition(
            conn,
            context,
            &inserted.id,
            (&inserted.programme_id, &inserted.neighbourhood_id),
            1,
            None,
            EnrolmentState::Identified,
            on,
            reason,
        )?;
        let enrolment = to_enrolment(inserted)?;
        crate::changes::record_created(
            conn,
            context,
            Resource::Enrolments,
            Event {
                action: "enrolment.create",
                entity: "enrolment",
                entity_id: Some(enrolment.id.to_string()),
                before: None,
                after: Some(snapshot(&enrolment)),
            },
        )?;
        Ok(enrolment)
    })
}

pub fn get(
    conn: &mut DbConnection,
    scope: &Scope,
    id: EnrolmentId,
) -> Result<Enrolment, StoreError> {
    to_enrolment(
        scoped(scope)
            .filter(enrolments::id.eq(id.to_string()))
            .select(EnrolmentRow::as_select())
            .first(conn)?,
    )
}

#[derive(Debug, Clone, Default)]
pub struct EnrolmentFilter {
    pub programme_id: Option<ProgrammeId>,
    pub household_id: Option<HouseholdId>,
    pub neighbourhood_id: Option<AreaId>,
    pub state: Option<EnrolmentState>,
}

pub fn list(
    conn: &mut DbConnection,
    scope: &Scope,
    filter: &EnrolmentFilter,
    after: Option<EnrolmentId>,
    limit: usize,
) -> Result<(Vec<Enrolment>, bool), StoreError> {
    let mut query = scoped(scope).select(EnrolmentRow::as_select());
    if let Some(programme) = filter.programme_id {
        query = query.filter(enrolments::programme_id.eq(programme.to_string()));
    }
    if let Some(household) = filter.household_id {
        query = query.filter(enrolments::household_id.eq(household.to_string()));
    }
    if let Some(neighbourhood) = filter.neighbourhood_id {
        query = query.filter(enrolments::neighbourhood_id.eq(neighbourhood.to_string()));
    }
    if let Some(state) = filter.state {
        query = query.filter(enrolments::state.eq(state.as_str()));
    }
    if let Some(after) = after {
        query = query.filter(enrolments::id.gt(after.to_string()));
    }
    let rows: Vec<EnrolmentRow> = query
        .order(enrolments::id.asc())
        .limit(crate::page::fetch(limit))
        .load(conn)?;
    let (rows, more) = crate::page::split(rows, limit);
    let list = rows
        .into_iter()
        .map(to_enrolment)
        .collect::<Result<_, _>>()?;
    Ok((list, more))
}

/// Every transition of an enrolment, in order.
pub fn history(
    conn: &mut DbConnection,
    scope: &Scope,
    id: EnrolmentId,
) -> Result<Vec<Transition>, StoreError> {
    get(conn, scope, id)?;
    enrolment_transitions::table
        .filter(enrolment_transitions::enrolment_id.eq(id.to_string()))
        .select(TransitionRow::as_select())
        .order(enrolment_transitions::seq.asc())
        .load::<TransitionRow>(conn)?
        .into_iter()
        .map(to_transition)
        .collect()
}

/// A transition refused by the rules: the caller gets the reason and, where it applies, the
/// states that are allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransitionOutcome {
    Done(Enrolment),
    Refused(TransitionError),
}

/// A move of one enrolment: to `to` from `on`, if its version is still `expected_version` (when
/// given).
#[derive(Debug, Clone)]
pub struct Step {
    pub id: EnrolmentId,
    pub expected_version: Option<i64>,
    pub to: EnrolmentState,
    pub on: NaiveDate,
    pub reason: Option<String>,
}

/// Takes the enrolment one `step`, if the rules allow it.
pub fn transition(
    conn: &mut DbConnection,
    context: &AuditContext,
    scope: &Scope,
    step: Step,
) -> Result<TransitionOutcome, StoreError> {
    write_transaction(conn, |conn| match move_row(conn, context, scope, step)? {
        Err(refusal) => Ok(TransitionOutcome::Refused(refusal)),
        Ok(before) => Ok(TransitionOutcome::Done(record_move(
            conn, context, scope, &before,
        )?)),
    })
}

/// The rows of a transition: the enrolment, its history and the progress counts. Returns the
/// enrolment as it was, for `record_move`. Kept apart from the recording so that a caller moving
/// several enrolments locks all their rows before it takes the order lock (`audit::order_lock`,
/// held until commit): a transaction that waits for a row while holding it can deadlock with one
/// that holds the row and waits for the lock, which every writer takes last.
fn move_row(
    conn: &mut DbConnection,
    context: &AuditContext,
    scope: &Scope,
    step: Step,
) -> Result<Result<Enrolment, TransitionError>, StoreError> {
    let Step {
        id,
        expected_version,
        to,
        on,
        reason,
    } = step;
    let before = get(conn, scope, id)?;
    if let Some(expected) = expected_version
        && expected != before.version
    {
        return Err(StoreError::VersionMismatch {
            current: before.version,
        });
    }
    let head_consents = crate::consents::head_consents_on(conn, before.household_id, on)?;
    let last_seq: Option<i32> = enrolment_transitions::table
        .filter(enrolment_transitions::enrolment_id.eq(id.to_string()))
        .select(diesel::dsl::max(enrolment_transitions::seq))
        .first(conn)?;
    let checked = check_transition(
        before.state,
        to,
        on,
        TransitionContext {
            resume_to: before.resume_to,
            head_consents,
            previous_on: before.state_since,
        },
    );
    if let Err(refusal) = checked {
        return Ok(Err(refusal));
    }
    let resume_to = (to == EnrolmentState::Paused).then(|| before.state.as_str());
    let updated = diesel::update(
        enrolments::table
            .find(id.to_string())
            .filter(enrolments::version.eq(before.version)),
    )
    .set((
        enrolments::state.eq(to.as_str()),
        enrolments::state_since.eq(on),
        enrolments::resume_to.eq(resume_to),
        enrolments::version.eq(before.version + 1),
        enrolments::updated_at.eq(crate::now()),
    ))
    .execute(conn)?;
    if updated == 0 {
        return Err(StoreError::VersionMismatch {
            current: before.version + 1,
        });
    }
    record_transition(
        conn,
        context,
        &id.to_string(),
        (
            &before.programme_id.to_string(),
            &before.neighbourhood_id.to_string(),
        ),
        last_seq.unwrap_or(0) + 1,
        Some(before.state),
        to,
        on,
        reason,
    )?;
    Ok(Ok(before))
}

/// A moved enrolment into the changes feed and the audit log (these take the order lock);
/// returns it as it is now.
fn record_move(
    conn: &mut DbConnection,
    context: &AuditContext,
    scope: &Scope,
    before: &Enrolment,
) -> Result<Enrolment, StoreError> {
    let after = get(conn, scope, before.id)?;
    let id = before.id.to_string();
    crate::changes::record(conn, context, Resource::Enrolments, &id, Op::Updated)?;
    audit::append(
        conn,
        context,
        Event {
            action: "enrolment.transition",
            entity: "enrolment",
            entity_id: Some(id),
            before: Some(snapshot(before)),
            after: Some(snapshot(&after)),
        },
    )?;
    Ok(after)
}

/// Moves the person's household to `to` (`permitted` on a permit, `financed` on a loan) in every
/// programme whose rules say so, where the enrolment's state allows it; the others are left as
/// they are. Writes their rows only: the caller records them (`Moved::record`) once it has written
/// all of its own rows, as the records take the order lock (see `move_row`).
pub(crate) fn advance_household(
    conn: &mut DbConnection,
    context: &AuditContext,
    person: PersonId,
    to: EnrolmentState,
    on: NaiveDate,
    reason: String,
) -> Result<Moved, StoreError> {
    let household: Option<Option<String>> = persons::table
        .find(person.to_string())
        .select(persons::household_id)
        .first(conn)
        .optional()?;
    let Some(Some(household)) = household else {
        return Ok(Moved(Vec::new()));
    };
    let query = enrolments::table
        .inner_join(programmes::table)
        .filter(enrolments::household_id.eq(&household))
        // By programme: two of these lock the progress counts (one row per programme, neighbourhood,
        // stage and day, shared by households) in one order, and a household's enrolments too
        // (one a programme).
        .order((enrolments::programme_id, enrolments::id))
        .select((enrolments::id, enrolments::state));
    let candidates: Vec<(String, String)> = match to {
        EnrolmentState::Permitted => query
            .filter(programmes::advance_on_permit.eq(true))
            .load(conn)?,
        EnrolmentState::Financed => query
            .filter(programmes::advance_on_loan.eq(true))
            .load(conn)?,
        _ => return Ok(Moved(Vec::new())),
    };
    let mut moved = Vec::new();
    for (id, state) in candidates {
        let state: EnrolmentState = state
            .parse()
            .map_err(|_| StoreError::Internal(format!("enrolments row {id}: bad state")))?;
        if !allowed_transitions(state, None).contains(&to) {
            continue;
        }
        let enrolment: EnrolmentId = id
            .parse()
            .map_err(|_| StoreError::Internal(format!("enrolments row {id}: bad id")))?;
        let step = Step {
            id: enrolment,
            expected_version: None,
            to,
            on,
            reason: Some(reason.clone()),
        };
        if let Ok(before) = move_row(conn, context, &Scope::All, step)? {
            moved.push(before);
        }
    }
    Ok(Moved(moved))
}

/// Enrolments whose rows `advance_household` moved, still to be recorded (`record`).
#[must_use = "moved enrolments are recorded with `record`"]
pub(crate) struct Moved(Vec<Enrolment>);

impl Moved {
    /// Records every move (changes feed and audit log; see `move_row`); returns their ids.
    pub(crate) fn record(
        self,
        conn: &mut DbConnection,
        context: &AuditContext,
    ) -> Result<Vec<String>, StoreError> {
        for before in &self.0 {
            record_move(conn, context, &Scope::All, before)?;
        }
        Ok(self.0.iter().map(|e| e.id.to_string()).collect())
    }
}
