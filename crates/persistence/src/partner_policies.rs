//! Partner organisations' MoU data policies: one per organisation, replaced whole, audited.

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use serde_json::{Value, json};
use tavana_domain::FieldError;
use tavana_domain::assessment::{Assessment, NewAssessment};
use tavana_domain::household::{Household, NewHousehold};
use tavana_domain::id::OrganisationId;
use tavana_domain::id::PersonId;
use tavana_domain::partner::{Policy, Resource, Withheld, join};

use crate::audit::{self, AuditContext, Event};
use crate::changes::{PartnerView, Viewer};
use crate::db::DbConnection;
use crate::error::StoreError;
use crate::schema::{areas, partner_policies};
use crate::scope::Scope;
use crate::tx::write_transaction;

#[derive(Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = partner_policies)]
struct PolicyRow {
    organisation_id: String,
    purpose: String,
    starts_on: NaiveDate,
    ends_on: NaiveDate,
    resources: String,
    withheld: String,
    writes: String,
    areas: String,
    version: i64,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

/// A stored policy with its version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPolicy {
    pub organisation_id: OrganisationId,
    pub policy: Policy,
    pub version: i64,
    pub updated_at: NaiveDateTime,
}

fn names<T: std::str::FromStr + Ord>(
    row: &str,
    text: &str,
) -> Result<std::collections::BTreeSet<T>, StoreError> {
    text.split_whitespace()
        .map(|n| {
            n.parse()
                .map_err(|_| StoreError::Internal(format!("partner_policies row {row}: bad {n}")))
        })
        .collect()
}

fn to_stored(row: PolicyRow) -> Result<StoredPolicy, StoreError> {
    let id = &row.organisation_id;
    Ok(StoredPolicy {
        organisation_id: id.parse().map_err(|_| {
            StoreError::Internal(format!("partner_policies row {id}: bad organisation"))
        })?,
        policy: Policy {
            purpose: row.purpose.clone(),
            starts_on: row.starts_on,
            ends_on: row.ends_on,
            resources: names(id, &row.resources)?,
            withheld: names(id, &row.withheld)?,
            writes: names(id, &row.writes)?,
            areas: names(id, &row.areas)?,
        },
        version: row.version,
        updated_at: row.updated_at,
    })
}

fn snapshot(policy: &Policy) -> Value {
    json!({
        "purpose": policy.purpose,
        "starts_on": policy.starts_on,
        "ends_on": policy.ends_on,
        "resources": join(&policy.resources),
        "withheld": join(&policy.withheld),
        "writes": join(&policy.writes),
        "areas": join(&policy.areas),
    })
}

/// The organisation's policy, if it has one.
pub fn find(
    conn: &mut DbConnection,
    organisation: OrganisationId,
) -> Result<Option<StoredPolicy>, StoreError> {
    partner_policies::table
        .find(organisation.to_string())
        .select(PolicyRow::as_select())
        .first(conn)
        .optional()?
        .map(to_stored)
        .transpose()
}

/// The organisation's policy itself, if it has one.
pub fn get(
    conn: &mut DbConnection,
    organisation: OrganisationId,
) -> Result<Option<Policy>, StoreError> {
    Ok(find(conn, organisation)?.map(|s| s.policy))
}

/// Sets an organisation's policy (the organisation must exist), replacing the one it had; the
/// change is audited with both versions.
pub fn put(
    conn: &mut DbConnection,
    context: &AuditContext,
    organisation: OrganisationId,
    policy: Policy,
) -> Result<StoredPolicy, StoreError> {
    policy.validate().map_err(StoreError::Invalid)?;
    write_transaction(conn, |conn| {
        // 404 for an unknown organisation.
        crate::organisations::get(conn, organisation)?;
        let wanted: Vec<String> = policy.areas.iter().map(ToString::to_string).collect();
        let found: i64 = areas::table
            .filter(areas::id.eq_any(&wanted))
            .count()
            .get_result(conn)?;
        if usize::try_from(found).ok() != Some(wanted.len()) {
            return Err(FieldError::new("areas", "not_found", "every area must exist").into());
        }
        let before = find(conn, organisation)?;
        let now = crate::now();
        let id = organisation.to_string();
        let version = before.as_ref().map_or(1, |b| b.version + 1);
        // Replaced whole; only its first creation is kept.
        let created_at: Option<NaiveDateTime> = diesel::delete(partner_policies::table.find(&id))
            .returning(partner_policies::created_at)
            .get_result(conn)
            .optional()?;
        diesel::insert_into(partner_policies::table)
            .values(PolicyRow {
                organisation_id: id.clone(),
                purpose: policy.purpose.trim().to_owned(),
                starts_on: policy.starts_on,
                ends_on: policy.ends_on,
                resources: join(&policy.resources),
                withheld: join(&policy.withheld),
                writes: join(&policy.writes),
                areas: join(&policy.areas),
                version,
                created_at: created_at.unwrap_or(now),
                updated_at: now,
            })
            .execute(conn)?;
        audit::append(
            conn,
            context,
            Event {
                action: "partner_policy.set",
                entity: "organisation",
                entity_id: Some(id),
                before: before.as_ref().map(|b| snapshot(&b.policy)),
                after: Some(snapshot(&policy)),
            },
        )?;
        find(conn, organisation)?
            .ok_or_else(|| StoreError::Internal("policy vanished after writing".to_owned()))
    })
}

/// Checks that a partner may submit `resource` under its policy.
fn may_submit(view: &PartnerView, resource: Resource) -> Result<(), StoreError> {
    if view.policy.may_write(resource) {
        Ok(())
    } else {
        Err(StoreError::Forbidden(format!(
            "the caller's MoU data policy does not let it submit {resource}"
        )))
    }
}

/// Checks that a partner may submit `resource` as a file (`POST /imports`): as `may_submit`, and
/// assessments only where its policy shows national IDs, since their rows name persons by it (a
/// partner the policy withholds them from must not learn whom an ID belongs to).
pub fn may_import(view: &PartnerView, resource: Resource) -> Result<(), StoreError> {
    may_submit(view, resource)?;
    if resource == Resource::Assessments && view.policy.withheld.contains(&Withheld::NationalId) {
        return Err(StoreError::Forbidden(
            "the caller's MoU data policy withholds national IDs, by which a file names persons: submit assessments by person id (POST /api/v1/partner/persons/{id}/assessments)"
                .to_owned(),
        ));
    }
    Ok(())
}

/// A household a partner found in the field, in one of its areas.
pub fn submit_household(
    conn: &mut DbConnection,
    context: &AuditContext,
    view: &PartnerView,
    new: NewHousehold,
) -> Result<Household, StoreError> {
    may_submit(view, Resource::Households)?;
    if view
        .neighbourhoods
        .as_ref()
        .is_some_and(|n| !n.iter().any(|id| *id == new.neighbourhood_id.to_string()))
    {
        return Err(FieldError::new(
            "neighbourhood_id",
            "outside_mou",
            "the neighbourhood is outside the areas of the caller's MoU",
        )
        .into());
    }
    crate::households::create(conn, context, &Scope::All, new)
}

/// An assessment a partner made of a person it may see (consent and areas, as in the feed);
/// anyone else is not found.
pub fn submit_assessment(
    conn: &mut DbConnection,
    context: &AuditContext,
    view: &PartnerView,
    person: PersonId,
    new: NewAssessment,
) -> Result<Assessment, StoreError> {
    may_submit(view, Resource::Assessments)?;
    let viewer = Viewer::Partner(view.clone());
    let visible = crate::changes::records(conn, &viewer, Resource::Persons, &[person.to_string()])?;
    if visible.is_empty() {
        return Err(StoreError::NotFound);
    }
    crate::assessments::record(conn, context, &Scope::All, person, new)
}
