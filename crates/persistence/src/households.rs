//! The `households` table. Every query takes the caller's [`Scope`].

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde_json::json;
use tavana_domain::FieldError;
use tavana_domain::household::{Address, Household, NewHousehold};
use tavana_domain::id::{AreaId, HouseholdId};

use crate::audit::{self, AuditContext, Event};
use crate::changes::Op;
use crate::db::DbConnection;
use crate::error::StoreError;
use crate::schema::{areas, households};
use crate::scope::{Scope, assigned_to};
use crate::tx::write_transaction;
use tavana_domain::partner::Resource;

#[derive(Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = households)]
pub(crate) struct HouseholdRow {
    pub(crate) id: String,
    pub(crate) neighbourhood_id: String,
    pub(crate) address: String,
    pub(crate) address_normalised: String,
    pub(crate) postal_code: Option<String>,
    pub(crate) version: i64,
    pub(crate) created_at: NaiveDateTime,
    pub(crate) updated_at: NaiveDateTime,
}

impl TryFrom<HouseholdRow> for Household {
    type Error = StoreError;

    fn try_from(row: HouseholdRow) -> Result<Self, StoreError> {
        let corrupt =
            |what: &str| StoreError::Internal(format!("households row {}: bad {what}", row.id));
        Ok(Household {
            id: row.id.parse().map_err(|_| corrupt("id"))?,
            neighbourhood_id: row
                .neighbourhood_id
                .parse()
                .map_err(|_| corrupt("neighbourhood_id"))?,
            address: row.address,
            postal_code: row.postal_code,
            version: row.version,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

fn snapshot(household: &Household) -> serde_json::Value {
    json!({
        "id": household.id.to_string(),
        "neighbourhood_id": household.neighbourhood_id.to_string(),
        "address": household.address,
        "postal_code": household.postal_code,
        "version": household.version,
    })
}

/// The households the scope allows, as a boxed query to filter further.
fn scoped<'a>(scope: &Scope) -> households::BoxedQuery<'a, crate::db::MultiBackend> {
    let mut query = households::table.into_boxed();
    if let Scope::UserAreas(user) = scope {
        query = query.filter(households::neighbourhood_id.eq_any(assigned_to(*user)));
    }
    query
}

/// The area must be a neighbourhood the caller may work in; otherwise it is "not found".
pub(crate) fn check_neighbourhood(
    conn: &mut DbConnection,
    scope: &Scope,
    id: AreaId,
) -> Result<(), StoreError> {
    let level: Option<String> = areas::table
        .find(id.to_string())
        .select(areas::level)
        .first(conn)
        .optional()?;
    match level.as_deref() {
        Some("neighbourhood") if scope.covers(conn, id)? => Ok(()),
        Some("neighbourhood") | None => Err(FieldError::new(
            "neighbourhood_id",
            "not_found",
            "no such neighbourhood in your scope",
        )
        .into()),
        Some(other) => Err(FieldError::new(
            "neighbourhood_id",
            "wrong_level",
            format!("this must be a neighbourhood, not a {other}"),
        )
        .into()),
    }
}

pub fn create(
    conn: &mut DbConnection,
    context: &AuditContext,
    scope: &Scope,
    new: NewHousehold,
) -> Result<Household, StoreError> {
    write_transaction(conn, |conn| {
        let household = insert(conn, scope, new)?;
        record_created(conn, context, &household)?;
        Ok(household)
    })
}

/// The household's row alone: a caller that writes more rows (a split) records it with
/// `record_created` after them, as the audit log's order lock is taken last.
pub(crate) fn insert(
    conn: &mut DbConnection,
    scope: &Scope,
    new: NewHousehold,
) -> Result<Household, StoreError> {
    check_neighbourhood(conn, scope, new.neighbourhood_id)?;
    let now = crate::now();
    let row = HouseholdRow {
        id: HouseholdId::generate().to_string(),
        neighbourhood_id: new.neighbourhood_id.to_string(),
        address: new.address.written,
        address_normalised: new.address.normalised,
        postal_code: new.postal_code,
        version: 1,
        created_at: now,
        updated_at: now,
    };
    let inserted: HouseholdRow = diesel::insert_into(households::table)
        .values(&row)
        .returning(households::all_columns)
        .get_result(conn)?;
    Household::try_from(inserted)
}

/// A new household into the changes feed and the audit log.
pub(crate) fn record_created(
    conn: &mut DbConnection,
    context: &AuditContext,
    household: &Household,
) -> Result<(), StoreError> {
    crate::changes::record_created(
        conn,
        context,
        Resource::Households,
        Event {
            action: "household.create",
            entity: "household",
            entity_id: Some(household.id.to_string()),
            before: None,
            after: Some(snapshot(household)),
        },
    )
}

pub fn get(
    conn: &mut DbConnection,
    scope: &Scope,
    id: HouseholdId,
) -> Result<Household, StoreError> {
    scoped(scope)
        .filter(households::id.eq(id.to_string()))
        .select(HouseholdRow::as_select())
        .first::<HouseholdRow>(conn)?
        .try_into()
}

#[derive(Debug, Clone, Default)]
pub struct HouseholdFilter {
    pub neighbourhood_id: Option<AreaId>,
    /// Part of the normalised address.
    pub address: Option<String>,
}

pub fn list(
    conn: &mut DbConnection,
    scope: &Scope,
    filter: &HouseholdFilter,
    after: Option<HouseholdId>,
    limit: usize,
) -> Result<(Vec<Household>, bool), StoreError> {
    let mut query = scoped(scope).select(HouseholdRow::as_select());
    if let Some(neighbourhood) = filter.neighbourhood_id {
        query = query.filter(households::neighbourhood_id.eq(neighbourhood.to_string()));
    }
    if let Some(text) = &filter.address {
        query = query.filter(
            households::address_normalised
                .like(format!("%{}%", escape_like(text)))
                .escape('\\'),
        );
    }
    if let Some(after) = after {
        query = query.filter(households::id.gt(after.to_string()));
    }
    let rows: Vec<HouseholdRow> = query
        .order(households::id.asc())
        .limit(crate::page::fetch(limit))
        .load(conn)?;
    let (rows, more) = crate::page::split(rows, limit);
    let list = rows
        .into_iter()
        .map(Household::try_from)
        .collect::<Result<_, _>>()?;
    Ok((list, more))
}

/// `%`, `_` and `\` match themselves in a search.
pub fn escape_like(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Changes to a household; `None` keeps a field. `postal_code: Some(None)` clears it.
#[derive(Debug, Clone, Default)]
pub struct HouseholdChanges {
    pub address: Option<Address>,
    pub postal_code: Option<Option<String>>,
}

pub fn update(
    conn: &mut DbConnection,
    context: &AuditContext,
    scope: &Scope,
    id: HouseholdId,
    expected_version: Option<i64>,
    changes: HouseholdChanges,
) -> Result<Household, StoreError> {
    write_transaction(conn, |conn| {
        let before = get(conn, scope, id)?;
        if let Some(expected) = expected_version
            && expected != before.version
        {
            return Err(StoreError::VersionMismatch {
                current: before.version,
            });
        }
        let (address, normalised) = match changes.address {
            Some(address) => (address.written, address.normalised),
            None => (
                before.address.clone(),
                tavana_domain::text::normalise(&before.address),
            ),
        };
        let postal_code = changes
            .postal_code
            .unwrap_or_else(|| before.postal_code.clone());
        let updated = diesel::update(
            households::table
                .find(id.to_string())
                .filter(households::version.eq(before.version)),
        )
        .set((
            households::address.eq(address),
            households::address_normalised.eq(normalised),
            households::postal_code.eq(postal_code),
            households::version.eq(before.version + 1),
            households::updated_at.eq(crate::now()),
        ))
        .execute(conn)?;
        if updated == 0 {
            return Err(StoreError::VersionMismatch {
                current: before.version + 1,
            });
        }
        let after = get(conn, scope, id)?;
        crate::changes::record(
            conn,
            context,
            Resource::Households,
            &id.to_string(),
            Op::Updated,
        )?;
        audit::append(
            conn,
            context,
            Event {
                action: "household.update",
                entity: "household",
                entity_id: Some(id.to_string()),
                before: Some(snapshot(&before)),
                after: Some(snapshot(&after)),
            },
        )?;
        Ok(after)
    })
}
