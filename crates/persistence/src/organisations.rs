//! The `organisations` table.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use serde_json::json;
use tavana_domain::id::OrganisationId;
use tavana_domain::organisation::{Organisation, OrganisationKind};

use crate::audit::{self, AuditContext, Event};
use crate::db::DbConnection;
use crate::error::StoreError;
use crate::schema::{areas, organisation_areas, organisations};
use crate::tx::write_transaction;

#[derive(Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = organisations)]
pub(crate) struct OrganisationRow {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) kind: String,
    pub(crate) version: i64,
    pub(crate) created_at: NaiveDateTime,
    pub(crate) updated_at: NaiveDateTime,
}

impl TryFrom<OrganisationRow> for Organisation {
    type Error = StoreError;

    fn try_from(row: OrganisationRow) -> Result<Self, StoreError> {
        let corrupt =
            |what: &str| StoreError::Internal(format!("organisations row {}: bad {what}", row.id));
        Ok(Organisation {
            id: row.id.parse().map_err(|_| corrupt("id"))?,
            kind: row.kind.parse().map_err(|_| corrupt("kind"))?,
            name: row.name,
            version: row.version,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

fn snapshot(org: &Organisation) -> serde_json::Value {
    json!({"id": org.id.to_string(), "name": org.name, "kind": org.kind.as_str(), "version": org.version})
}

pub fn create(
    conn: &mut DbConnection,
    context: &AuditContext,
    name: &str,
    kind: OrganisationKind,
) -> Result<Organisation, StoreError> {
    write_transaction(conn, |conn| {
        let now = crate::now();
        let row = OrganisationRow {
            id: OrganisationId::generate().to_string(),
            name: name.to_owned(),
            kind: kind.as_str().to_owned(),
            version: 1,
            created_at: now,
            updated_at: now,
        };
        let inserted: OrganisationRow = diesel::insert_into(organisations::table)
            .values(&row)
            .returning(organisations::all_columns)
            .get_result(conn)
            .map_err(|e| match e {
                DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
                    StoreError::Conflict(format!("an organisation named {name} already exists"))
                }
                other => other.into(),
            })?;
        let org = Organisation::try_from(inserted)?;
        audit::append(
            conn,
            context,
            Event {
                action: "organisation.create",
                entity: "organisation",
                entity_id: Some(org.id.to_string()),
                before: None,
                after: Some(snapshot(&org)),
            },
        )?;
        Ok(org)
    })
}

pub fn get(conn: &mut DbConnection, id: OrganisationId) -> Result<Organisation, StoreError> {
    organisations::table
        .find(id.to_string())
        .select(OrganisationRow::as_select())
        .first::<OrganisationRow>(conn)?
        .try_into()
}

pub fn find_by_name(
    conn: &mut DbConnection,
    name: &str,
) -> Result<Option<Organisation>, StoreError> {
    organisations::table
        .filter(organisations::name.eq(name))
        .select(OrganisationRow::as_select())
        .first::<OrganisationRow>(conn)
        .optional()?
        .map(Organisation::try_from)
        .transpose()
}

pub fn list(
    conn: &mut DbConnection,
    kind: Option<OrganisationKind>,
    after: Option<OrganisationId>,
    limit: usize,
) -> Result<(Vec<Organisation>, bool), StoreError> {
    let mut query = organisations::table
        .select(OrganisationRow::as_select())
        .into_boxed();
    if let Some(kind) = kind {
        query = query.filter(organisations::kind.eq(kind.as_str()));
    }
    if let Some(after) = after {
        query = query.filter(organisations::id.gt(after.to_string()));
    }
    let rows: Vec<OrganisationRow> = query
        .order(organisations::id.asc())
        .limit(crate::page::fetch(limit))
        .load(conn)?;
    let (rows, more) = crate::page::split(rows, limit);
    let orgs = rows
        .into_iter()
        .map(Organisation::try_from)
        .collect::<Result<_, _>>()?;
    Ok((orgs, more))
}

/// Renames an organisation or corrects its kind, if it is still at `expected_version`.
pub fn update(
    conn: &mut DbConnection,
    context: &AuditContext,
    id: OrganisationId,
    expected_version: Option<i64>,
    name: Option<String>,
    kind: Option<OrganisationKind>,
) -> Result<Organisation, StoreError> {
    write_transaction(conn, |conn| {
        let before = get(conn, id)?;
        if let Some(expected) = expected_version
            && expected != before.version
        {
            return Err(StoreError::VersionMismatch {
                current: before.version,
            });
        }
        let new_name = name.unwrap_or_else(|| before.name.clone());
        let updated = diesel::update(
            organisations::table
                .find(id.to_string())
                .filter(organisations::version.eq(before.version)),
        )
        .set((
            organisations::name.eq(&new_name),
            organisations::kind.eq(kind.unwrap_or(before.kind).as_str()),
            organisations::version.eq(before.version + 1),
            organisations::updated_at.eq(crate::now()),
        ))
        .execute(conn)
        .map_err(|e| match e {
            DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
                StoreError::Conflict(format!("an organisation named {new_name} already exists"))
            }
            other => other.into(),
        })?;
        if updated == 0 {
            return Err(StoreError::VersionMismatch {
                current: before.version + 1,
            });
        }
        let after = get(conn, id)?;
        audit::append(
            conn,
            context,
            Event {
                action: "organisation.update",
                entity: "organisation",
                entity_id: Some(id.to_string()),
                before: Some(snapshot(&before)),
                after: Some(snapshot(&after)),
            },
        )?;
        Ok(after)
    })
}

/// The neighbourhoods a facilitation office covers.
pub fn coverage(conn: &mut DbConnection, id: OrganisationId) -> Result<Vec<String>, StoreError> {
    get(conn, id)?;
    Ok(organisation_areas::table
        .filter(organisation_areas::organisation_id.eq(id.to_string()))
        .select(organisation_areas::area_id)
        .order(organisation_areas::area_id.asc())
        .load(conn)?)
}

/// Replaces the neighbourhoods a facilitation office covers.
pub fn set_coverage(
    conn: &mut DbConnection,
    context: &AuditContext,
    id: OrganisationId,
    neighbourhoods: &[String],
) -> Result<Vec<String>, StoreError> {
    write_transaction(conn, |conn| {
        // Under the organisation's row lock: two replacements at once each deleted only the rows
        // they saw, and the result was both lists together.
        crate::tx::lock_rows(
            conn,
            "organisations",
            &[id.to_string()],
            crate::tx::RowLock::NoKeyUpdate,
        )?;
        let org = get(conn, id)?;
        if org.kind != OrganisationKind::FacilitationOffice {
            return Err(tavana_domain::FieldError::new(
                "areas",
                "not_a_facilitation_office",
                "only facilitation offices cover neighbourhoods",
            )
            .into());
        }
        let mut wanted = neighbourhoods.to_vec();
        wanted.sort();
        wanted.dedup();
        let found: i64 = areas::table
            .filter(areas::id.eq_any(&wanted))
            .filter(areas::level.eq("neighbourhood"))
            .count()
            .get_result(conn)?;
        if usize::try_from(found).ok() != Some(wanted.len()) {
            return Err(tavana_domain::FieldError::new(
                "areas",
                "not_found",
                "every area must be an existing neighbourhood",
            )
            .into());
        }
        let before = coverage(conn, id)?;
        diesel::delete(
            organisation_areas::table
                .filter(organisation_areas::organisation_id.eq(id.to_string())),
        )
        .execute(conn)?;
        for area in &wanted {
            diesel::insert_into(organisation_areas::table)
                .values((
                    organisation_areas::organisation_id.eq(id.to_string()),
                    organisation_areas::area_id.eq(area),
                ))
                .execute(conn)?;
        }
        audit::append(
            conn,
            context,
            Event {
                action: "organisation.coverage",
                entity: "organisation",
                entity_id: Some(id.to_string()),
                before: Some(json!({"areas": before})),
                after: Some(json!({"areas": wanted})),
            },
        )?;
        Ok(wanted)
    })
}
