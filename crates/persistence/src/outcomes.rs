//! The `employment_outcomes` table and the follow-ups of each outcome.

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use serde_json::json;
use tavana_domain::FieldError;
use tavana_domain::id::{OutcomeId, PersonId};
use tavana_domain::outcome::{
    Evidence, FOLLOW_UP_MONTHS, FollowUp, Outcome, OutcomeKind, can_verify, follow_up_due,
};

use crate::audit::{self, AuditContext, Event};
use crate::db::DbConnection;
use crate::error::StoreError;
use crate::schema::{employment_outcomes, outcome_follow_ups, persons, user_areas};
use crate::scope::Scope;
use crate::tx::write_transaction;

#[derive(Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = employment_outcomes)]
pub(crate) struct OutcomeRow {
    pub(crate) id: String,
    pub(crate) person_id: String,
    pub(crate) neighbourhood_id: Option<String>,
    pub(crate) kind: String,
    pub(crate) started_on: NaiveDate,
    pub(crate) evidence: String,
    pub(crate) evidence_reference: Option<String>,
    pub(crate) recorded_by: Option<String>,
    pub(crate) verified_by: Option<String>,
    pub(crate) verified_on: Option<NaiveDate>,
    pub(crate) version: i64,
    pub(crate) created_at: NaiveDateTime,
}

#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = outcome_follow_ups)]
struct FollowUpRow {
    months: i32,
    due_on: NaiveDate,
    done_on: Option<NaiveDate>,
    still_employed: Option<bool>,
    notes: Option<String>,
}

fn with_follow_ups(conn: &mut DbConnection, row: OutcomeRow) -> Result<Outcome, StoreError> {
    let corrupt = |what: &str| {
        StoreError::Internal(format!("employment_outcomes row {}: bad {what}", row.id))
    };
    let follow_ups: Vec<FollowUpRow> = outcome_follow_ups::table
        .filter(outcome_follow_ups::outcome_id.eq(&row.id))
        .select(FollowUpRow::as_select())
        .order(outcome_follow_ups::months.asc())
        .load(conn)?;
    Ok(Outcome {
        id: row.id.parse().map_err(|_| corrupt("id"))?,
        person_id: row.person_id.parse().map_err(|_| corrupt("person_id"))?,
        kind: row.kind.parse().map_err(|_| corrupt("kind"))?,
        started_on: row.started_on,
        evidence: row.evidence.parse().map_err(|_| corrupt("evidence"))?,
        evidence_reference: row.evidence_reference,
        recorded_by: row.recorded_by,
        verified_by: row.verified_by,
        verified_on: row.verified_on,
        follow_ups: follow_ups
            .into_iter()
            .map(|f| FollowUp {
                months: u32::try_from(f.months).unwrap_or(0),
                due_on: f.due_on,
                done_on: f.done_on,
                still_employed: f.still_employed,
                notes: f.notes,
            })
            .collect(),
        version: row.version,
        created_at: row.created_at,
    })
}

fn snapshot(outcome: &Outcome) -> serde_json::Value {
    json!({
        "id": outcome.id.to_string(),
        "person_id": outcome.person_id.to_string(),
        "kind": outcome.kind.as_str(),
        "started_on": outcome.started_on.to_string(),
        "evidence": outcome.evidence.as_str(),
        "verified_by": outcome.verified_by,
        "verified_on": outcome.verified_on.map(|d| d.to_string()),
    })
}

#[derive(Debug, Clone)]
pub struct NewOutcome {
    pub kind: OutcomeKind,
    pub started_on: NaiveDate,
    pub evidence: Evidence,
    pub evidence_reference: Option<String>,
}

/// Records an outcome of a person in scope, with its three follow-ups due.
pub fn record(
    conn: &mut DbConnection,
    context: &AuditContext,
    scope: &Scope,
    person: PersonId,
    new: NewOutcome,
) -> Result<Outcome, StoreError> {
    write_transaction(conn, |conn| {
        let subject = crate::persons::get_to_add_to(conn, scope, person)?;
        let row = OutcomeRow {
            id: OutcomeId::generate().to_string(),
            person_id: person.to_string(),
            neighbourhood_id: subject.neighbourhood_id.map(|n| n.to_string()),
            kind: new.kind.as_str().to_owned(),
            started_on: new.started_on,
            evidence: new.evidence.as_str().to_owned(),
            evidence_reference: new.evidence_reference,
            recorded_by: context.actor.id(),
            verified_by: None,
            verified_on: None,
            version: 1,
            created_at: crate::now(),
        };
        let inserted: OutcomeRow = diesel::insert_into(employment_outcomes::table)
            .values(&row)
            .returning(employment_outcomes::all_columns)
            .get_result(conn)?;
        for months in FOLLOW_UP_MONTHS {
            let due = follow_up_due(new.started_on, months)
                .ok_or_else(|| FieldError::new("started_on", "invalid", "too far in the future"))?;
            diesel::insert_into(outcome_follow_ups::table)
                .values((
                    outcome_follow_ups::outcome_id.eq(&inserted.id),
                    outcome_follow_ups::months.eq(i32::try_from(months).unwrap_or(0)),
                    outcome_follow_ups::due_on.eq(due),
                ))
                .execute(conn)?;
        }
        let outcome = with_follow_ups(conn, inserted)?;
        audit::append(
            conn,
            context,
            Event {
                action: "outcome.record",
                entity: "outcome",
                entity_id: Some(outcome.id.to_string()),
                before: None,
                after: Some(snapshot(&outcome)),
            },
        )?;
        Ok(outcome)
    })
}

pub fn get(conn: &mut DbConnection, scope: &Scope, id: OutcomeId) -> Result<Outcome, StoreError> {
    let mut query = employment_outcomes::table
        .filter(employment_outcomes::id.eq(id.to_string()))
        .select(OutcomeRow::as_select())
        .into_boxed();
    if let Scope::UserAreas(user) = scope {
        // Where the person lives now, as her record and its list of outcomes: after a move her
        // new neighbourhood's facilitator follows the outcome up, and the old one sees it no more.
        let areas = user_areas::table
            .filter(user_areas::user_id.eq(user.to_string()))
            .select(user_areas::area_id.nullable());
        query = query.filter(
            employment_outcomes::person_id.eq_any(
                persons::table
                    .filter(persons::neighbourhood_id.eq_any(areas))
                    .select(persons::id),
            ),
        );
    }
    let row: OutcomeRow = query.first(conn)?;
    with_follow_ups(conn, row)
}

/// A person's outcomes, oldest first.
pub fn list(
    conn: &mut DbConnection,
    scope: &Scope,
    person: PersonId,
) -> Result<Vec<Outcome>, StoreError> {
    crate::persons::get(conn, scope, person)?;
    let rows: Vec<OutcomeRow> = employment_outcomes::table
        .filter(employment_outcomes::person_id.eq(person.to_string()))
        .select(OutcomeRow::as_select())
        .order(employment_outcomes::started_on.asc())
        .load(conn)?;
    rows.into_iter()
        .map(|row| with_follow_ups(conn, row))
        .collect()
}

/// Verifies an outcome's evidence. Not by whoever recorded it; not twice.
pub fn verify(
    conn: &mut DbConnection,
    context: &AuditContext,
    scope: &Scope,
    id: OutcomeId,
    on: NaiveDate,
) -> Result<Outcome, StoreError> {
    write_transaction(conn, |conn| {
        let before = get(conn, scope, id)?;
        let verifier = context.actor.id().unwrap_or_default();
        if before.is_verified() {
            return Err(StoreError::Conflict(
                "the outcome is verified already".to_owned(),
            ));
        }
        if !can_verify(before.recorded_by.as_deref(), &verifier) {
            return Err(StoreError::Conflict(
                "an outcome is verified by someone other than who recorded it".to_owned(),
            ));
        }
        if on < before.started_on {
            return Err(FieldError::new(
                "on",
                "before_start",
                "must not be before the work started",
            )
            .into());
        }
        let verified = diesel::update(
            employment_outcomes::table
                .find(id.to_string())
                .filter(employment_outcomes::verified_on.is_null()),
        )
        .set((
            employment_outcomes::verified_by.eq(&verifier),
            employment_outcomes::verified_on.eq(on),
            employment_outcomes::version.eq(before.version + 1),
        ))
        .execute(conn)?;
        // Verified by another meanwhile (read above before that one committed).
        if verified == 0 {
            return Err(StoreError::Conflict(
                "the outcome is verified already".to_owned(),
            ));
        }
        let after = get(conn, scope, id)?;
        audit::append(
            conn,
            context,
            Event {
                action: "outcome.verify",
                entity: "outcome",
                entity_id: Some(id.to_string()),
                before: Some(snapshot(&before)),
                after: Some(snapshot(&after)),
            },
        )?;
        Ok(after)
    })
}

/// Records the follow-up due `months` after the start.
#[allow(clippy::too_many_arguments)]
pub fn follow_up(
    conn: &mut DbConnection,
    context: &AuditContext,
    scope: &Scope,
    id: OutcomeId,
    months: u32,
    done_on: NaiveDate,
    still_employed: bool,
    notes: Option<String>,
) -> Result<Outcome, StoreError> {
    write_transaction(conn, |conn| {
        let before = get(conn, scope, id)?;
        let Some(due) = before.follow_ups.iter().find(|f| f.months == months) else {
            return Err(StoreError::NotFound);
        };
        if due.done_on.is_some() {
            return Err(StoreError::Conflict(
                "this follow-up is recorded already".to_owned(),
            ));
        }
        if done_on < before.started_on {
            return Err(FieldError::new(
                "done_on",
                "before_start",
                "must not be before the work started",
            )
            .into());
        }
        let recorded = diesel::update(
            outcome_follow_ups::table
                .filter(outcome_follow_ups::outcome_id.eq(id.to_string()))
                .filter(outcome_follow_ups::months.eq(i32::try_from(months).unwrap_or(0)))
                .filter(outcome_follow_ups::done_on.is_null()),
        )
        .set((
            outcome_follow_ups::done_on.eq(done_on),
            outcome_follow_ups::still_employed.eq(still_employed),
            outcome_follow_ups::notes.eq(notes),
            outcome_follow_ups::recorded_by.eq(context.actor.id()),
        ))
        .execute(conn)?;
        // Recorded by another meanwhile: theirs stays.
        if recorded == 0 {
            return Err(StoreError::Conflict(
                "this follow-up is recorded already".to_owned(),
            ));
        }
        let after = get(conn, scope, id)?;
        audit::append(
            conn,
            context,
            Event {
                action: "outcome.follow_up",
                entity: "outcome",
                entity_id: Some(id.to_string()),
                before: None,
                after: Some(
                    json!({"months": months, "done_on": done_on.to_string(), "still_employed": still_employed}),
                ),
            },
        )?;
        Ok(after)
    })
}
