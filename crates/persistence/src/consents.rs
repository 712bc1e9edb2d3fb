//! The `consents` table.

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use serde_json::json;
use tavana_domain::FieldError;
use tavana_domain::consent::{Consent, ConsentPurpose};
use tavana_domain::id::{ConsentId, HouseholdId, PersonId};
use tavana_domain::person::HouseholdRole;

use crate::audit::{self, AuditContext, Event};
use crate::db::DbConnection;
use crate::error::StoreError;
use crate::schema::{consents, persons};
use crate::scope::Scope;
use crate::tx::write_transaction;

#[derive(Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = consents)]
pub(crate) struct ConsentRow {
    pub(crate) id: String,
    pub(crate) person_id: String,
    pub(crate) purpose: String,
    pub(crate) share_with_partners: bool,
    pub(crate) given_on: NaiveDate,
    pub(crate) recorded_by: Option<String>,
    pub(crate) recorded_at: NaiveDateTime,
    pub(crate) withdrawn_on: Option<NaiveDate>,
    pub(crate) withdrawn_by: Option<String>,
    pub(crate) withdrawal_reason: Option<String>,
}

fn to_consent(row: ConsentRow) -> Result<Consent, StoreError> {
    let corrupt = |what: &str| StoreError::Internal(format!("consents row {}: bad {what}", row.id));
    Ok(Consent {
        id: row.id.parse().map_err(|_| corrupt("id"))?,
        person_id: row.person_id.parse().map_err(|_| corrupt("person_id"))?,
        purpose: row.purpose.parse().map_err(|_| corrupt("purpose"))?,
        share_with_partners: row.share_with_partners,
        given_on: row.given_on,
        recorded_by: row.recorded_by,
        recorded_at: row.recorded_at,
        withdrawn_on: row.withdrawn_on,
        withdrawal_reason: row.withdrawal_reason,
    })
}

fn snapshot(consent: &Consent) -> serde_json::Value {
    json!({
        "id": consent.id.to_string(),
        "person_id": consent.person_id.to_string(),
        "purpose": consent.purpose.as_str(),
        "share_with_partners": consent.share_with_partners,
        "given_on": consent.given_on.to_string(),
        "withdrawn_on": consent.withdrawn_on.map(|d| d.to_string()),
    })
}

/// What was agreed, by whom it was recorded.
#[derive(Debug, Clone)]
pub struct NewConsent {
    pub purpose: ConsentPurpose,
    pub share_with_partners: bool,
    pub given_on: NaiveDate,
}

pub fn record(
    conn: &mut DbConnection,
    context: &AuditContext,
    scope: &Scope,
    person: PersonId,
    new: NewConsent,
) -> Result<Consent, StoreError> {
    write_transaction(conn, |conn| {
        crate::persons::get_to_add_to(conn, scope, person)?;
        let row = ConsentRow {
            id: ConsentId::generate().to_string(),
            person_id: person.to_string(),
            purpose: new.purpose.as_str().to_owned(),
            share_with_partners: new.share_with_partners,
            given_on: new.given_on,
            recorded_by: context.actor.id(),
            recorded_at: crate::now(),
            withdrawn_on: None,
            withdrawn_by: None,
            withdrawal_reason: None,
        };
        let inserted: ConsentRow = diesel::insert_into(consents::table)
            .values(&row)
            .returning(consents::all_columns)
            .get_result(conn)?;
        let consent = to_consent(inserted)?;
        crate::changes::consent_changed(conn, context, &consent.person_id.to_string())?;
        audit::append(
            conn,
            context,
            Event {
                action: "consent.record",
                entity: "consent",
                entity_id: Some(consent.id.to_string()),
                before: None,
                after: Some(snapshot(&consent)),
            },
        )?;
        Ok(consent)
    })
}

pub fn list(
    conn: &mut DbConnection,
    scope: &Scope,
    person: PersonId,
) -> Result<Vec<Consent>, StoreError> {
    crate::persons::get(conn, scope, person)?;
    consents::table
        .filter(consents::person_id.eq(person.to_string()))
        .select(ConsentRow::as_select())
        .order(consents::recorded_at.asc())
        .load::<ConsentRow>(conn)?
        .into_iter()
        .map(to_consent)
        .collect()
}

/// Withdraws a consent from `on`. Refused for a consent withdrawn already.
pub fn withdraw(
    conn: &mut DbConnection,
    context: &AuditContext,
    scope: &Scope,
    person: PersonId,
    id: ConsentId,
    on: NaiveDate,
    reason: Option<String>,
) -> Result<Consent, StoreError> {
    write_transaction(conn, |conn| {
        crate::persons::get(conn, scope, person)?;
        let before = to_consent(
            consents::table
                .find(id.to_string())
                .filter(consents::person_id.eq(person.to_string()))
                .select(ConsentRow::as_select())
                .first(conn)?,
        )?;
        if before.withdrawn_on.is_some() {
            return Err(StoreError::Conflict(
                "the consent is withdrawn already".to_owned(),
            ));
        }
        if on < before.given_on {
            return Err(FieldError::new(
                "on",
                "before_given",
                "must not be before the consent was given",
            )
            .into());
        }
        let withdrawn = diesel::update(
            consents::table
                .find(id.to_string())
                .filter(consents::withdrawn_on.is_null()),
        )
        .set((
            consents::withdrawn_on.eq(on),
            consents::withdrawn_by.eq(context.actor.id()),
            consents::withdrawal_reason.eq(reason),
        ))
        .execute(conn)?;
        // Withdrawn by another meanwhile: that date stays, a later one would lengthen the consent.
        if withdrawn == 0 {
            return Err(StoreError::Conflict(
                "the consent is withdrawn already".to_owned(),
            ));
        }
        let after = to_consent(
            consents::table
                .find(id.to_string())
                .select(ConsentRow::as_select())
                .first(conn)?,
        )?;
        crate::changes::consent_changed(conn, context, &after.person_id.to_string())?;
        audit::append(
            conn,
            context,
            Event {
                action: "consent.withdraw",
                entity: "consent",
                entity_id: Some(id.to_string()),
                before: Some(snapshot(&before)),
                after: Some(snapshot(&after)),
            },
        )?;
        Ok(after)
    })
}

/// Whether the current head of `household` has consent to the programme in force on `day`.
pub fn head_consents_on(
    conn: &mut DbConnection,
    household: HouseholdId,
    day: NaiveDate,
) -> Result<bool, StoreError> {
    let head: Option<String> = persons::table
        .filter(persons::household_id.eq(household.to_string()))
        .filter(persons::household_role.eq(HouseholdRole::Head.as_str()))
        .select(persons::id)
        .first(conn)
        .optional()?;
    let Some(head) = head else { return Ok(false) };
    let count: i64 = consents::table
        .filter(consents::person_id.eq(head))
        .filter(consents::purpose.eq(ConsentPurpose::Programme.as_str()))
        .filter(consents::given_on.le(day))
        .filter(
            consents::withdrawn_on
                .is_null()
                .or(consents::withdrawn_on.gt(day)),
        )
        .count()
        .get_result(conn)?;
    Ok(count > 0)
}
