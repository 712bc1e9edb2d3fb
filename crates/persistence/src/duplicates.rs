//! Possible duplicates: persons with the same normalised name and birth year in the same
//! district, queued for a reviewer who dismisses the pair or merges the two records.

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use serde_json::json;
use tavana_domain::FieldError;
use tavana_domain::id::PersonId;
use tavana_domain::person::Person;

use crate::audit::{self, AuditContext, Event};
use crate::changes::Op;
use crate::db::DbConnection;
use crate::error::StoreError;
use crate::schema::{
    assessments, consents, duplicate_candidates, employment_outcomes, household_memberships,
    persons, user_areas,
};
use crate::scope::Scope;
use crate::tx::{RowLock, write_transaction};
use tavana_domain::partner::Resource;

/// One pair awaiting (or past) review.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = duplicate_candidates)]
pub struct Candidate {
    pub person_id: String,
    pub candidate_id: String,
    pub neighbourhood_id: Option<String>,
    pub status: String,
    pub detected_at: NaiveDateTime,
    pub reviewed_by: Option<String>,
    pub reviewed_at: Option<NaiveDateTime>,
}

/// Queues `candidates` as possible duplicates of a newly registered `person`.
pub fn queue(
    conn: &mut DbConnection,
    person: &Person,
    candidates: &[PersonId],
) -> Result<(), StoreError> {
    for candidate in candidates {
        diesel::insert_into(duplicate_candidates::table)
            .values((
                duplicate_candidates::person_id.eq(person.id.to_string()),
                duplicate_candidates::candidate_id.eq(candidate.to_string()),
                duplicate_candidates::neighbourhood_id
                    .eq(person.neighbourhood_id.map(|n| n.to_string())),
                duplicate_candidates::status.eq("open"),
                duplicate_candidates::detected_at.eq(crate::now()),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// Pairs with `status`, oldest first, where the newly registered person is in the caller's scope.
pub fn list(
    conn: &mut DbConnection,
    scope: &Scope,
    status: &str,
    limit: usize,
) -> Result<Vec<Candidate>, StoreError> {
    let mut query = duplicate_candidates::table
        .filter(duplicate_candidates::status.eq(status.to_owned()))
        .select(Candidate::as_select())
        .into_boxed();
    if let Scope::UserAreas(user) = scope {
        query = query.filter(
            duplicate_candidates::neighbourhood_id.eq_any(
                user_areas::table
                    .filter(user_areas::user_id.eq(user.to_string()))
                    .select(user_areas::area_id.nullable()),
            ),
        );
    }
    let fetch = i64::try_from(limit).unwrap_or(i64::MAX);
    Ok(query
        .order((
            duplicate_candidates::detected_at.asc(),
            duplicate_candidates::person_id.asc(),
        ))
        .limit(fetch)
        .load(conn)?)
}

/// Marks the pair of `a` and `b` with `status`, if it is in one of the statuses `from`.
fn close_pair(
    conn: &mut DbConnection,
    context: &AuditContext,
    a: PersonId,
    b: PersonId,
    from: &[&str],
    status: &str,
) -> Result<usize, StoreError> {
    let (a, b) = (a.to_string(), b.to_string());
    Ok(diesel::update(
        duplicate_candidates::table
            .filter(duplicate_candidates::status.eq_any(from))
            .filter(
                duplicate_candidates::person_id
                    .eq(&a)
                    .and(duplicate_candidates::candidate_id.eq(&b))
                    .or(duplicate_candidates::person_id
                        .eq(&b)
                        .and(duplicate_candidates::candidate_id.eq(&a))),
            ),
    )
    .set((
        duplicate_candidates::status.eq(status),
        duplicate_candidates::reviewed_by.eq(context.actor.id()),
        duplicate_candidates::reviewed_at.eq(crate::now()),
    ))
    .execute(conn)?)
}

/// Records that two persons are not the same.
pub fn dismiss(
    conn: &mut DbConnection,
    context: &AuditContext,
    scope: &Scope,
    person: PersonId,
    candidate: PersonId,
) -> Result<(), StoreError> {
    write_transaction(conn, |conn| {
        crate::persons::get(conn, scope, person)?;
        crate::persons::get(conn, scope, candidate)?;
        if close_pair(conn, context, person, candidate, &["open"], "dismissed")? == 0 {
            return Err(StoreError::NotFound);
        }
        audit::append(
            conn,
            context,
            Event {
                action: "person.duplicate_dismiss",
                entity: "person",
                entity_id: Some(person.to_string()),
                before: None,
                after: Some(json!({"not_the_same_as": candidate.to_string()})),
            },
        )
    })
}

/// Merges `from` into `into`: every consent, assessment, outcome and household membership of
/// `from` becomes `into`'s, `from` leaves its household and points at `into`. Nothing is deleted.
pub fn merge(
    conn: &mut DbConnection,
    context: &AuditContext,
    scope: &Scope,
    into: PersonId,
    from: PersonId,
    on: NaiveDate,
) -> Result<Person, StoreError> {
    write_transaction(conn, |conn| {
        if into == from {
            return Err(FieldError::new(
                "from",
                "same_person",
                "a person cannot be merged into itself",
            )
            .into());
        }
        // Read once both rows are locked: two merges of the same persons at once (A into B beside
        // B into A, or B into A beside B into C) would otherwise each find both unmerged, and both
        // commit. `Update`, so that it also waits for what is being added to either record (see
        // `persons::get_to_add_to`) and moves it along.
        crate::tx::lock_rows(
            conn,
            "persons",
            &[into.to_string(), from.to_string()],
            RowLock::Update,
        )?;
        let survivor = crate::persons::get(conn, scope, into)?;
        let merged = crate::persons::get(conn, scope, from)?;
        if survivor.merged_into.is_some() || merged.merged_into.is_some() {
            return Err(StoreError::Conflict(
                "one of the two records is merged already".to_owned(),
            ));
        }
        let (into_id, from_id) = (into.to_string(), from.to_string());
        let moved_consents =
            diesel::update(consents::table.filter(consents::person_id.eq(&from_id)))
                .set(consents::person_id.eq(&into_id))
                .execute(conn)?;
        let moved_assessments =
            diesel::update(assessments::table.filter(assessments::person_id.eq(&from_id)))
                .set(assessments::person_id.eq(&into_id))
                .execute(conn)
                .map_err(|e| match StoreError::from(e) {
                    StoreError::Conflict(_) => StoreError::Conflict(
                        "both persons have a baseline assessment; record one as a follow-up first"
                            .to_owned(),
                    ),
                    other => other,
                })?;
        let moved_outcomes = diesel::update(
            employment_outcomes::table.filter(employment_outcomes::person_id.eq(&from_id)),
        )
        .set(employment_outcomes::person_id.eq(&into_id))
        .execute(conn)?;
        // The merged record's current stay ends; its whole history becomes the survivor's.
        crate::persons::end_open_membership(
            conn,
            from,
            on,
            Some(format!("merged into {into_id}")),
        )?;
        let moved_memberships = diesel::update(
            household_memberships::table.filter(household_memberships::person_id.eq(&from_id)),
        )
        .set(household_memberships::person_id.eq(&into_id))
        .execute(conn)?;
        diesel::update(persons::table.find(&from_id))
            .set((
                persons::household_id.eq(None::<String>),
                persons::household_role.eq(None::<String>),
                persons::neighbourhood_id.eq(None::<String>),
                persons::merged_into.eq(&into_id),
                persons::version.eq(persons::version + 1),
                persons::updated_at.eq(crate::now()),
            ))
            .execute(conn)?;
        // Records merged into this one before now point at the survivor: a merged record answers
        // with the one it was merged into (a national ID looked up, an import's row), one step.
        let repointed = diesel::update(persons::table.filter(persons::merged_into.eq(&from_id)))
            .set((
                persons::merged_into.eq(&into_id),
                persons::version.eq(persons::version + 1),
                persons::updated_at.eq(crate::now()),
            ))
            .execute(conn)?;
        // A pair dismissed before is merged all the same: the reviewer thought again.
        close_pair(conn, context, into, from, &["open", "dismissed"], "merged")?;
        crate::changes::record(conn, context, Resource::Persons, &from_id, Op::Deleted)?;
        // The survivor gains the merged record's consents, assessments and history: what partners
        // see of her, her households and their enrolments may change.
        let households: Vec<String> = [survivor.household_id, merged.household_id]
            .into_iter()
            .flatten()
            .map(|h| h.to_string())
            .collect();
        crate::changes::visibility_changed(conn, context, &into_id, &households)?;
        audit::append(
            conn,
            context,
            Event {
                action: "person.merge",
                entity: "person",
                entity_id: Some(into_id.clone()),
                before: Some(json!({"merged": from_id, "national_id": merged.national_id})),
                after: Some(json!({
                    "into": into_id,
                    "moved": {"consents": moved_consents, "assessments": moved_assessments,
                              "outcomes": moved_outcomes, "memberships": moved_memberships,
                              "merged_records": repointed},
                })),
            },
        )?;
        crate::persons::get(conn, scope, into)
    })
}
