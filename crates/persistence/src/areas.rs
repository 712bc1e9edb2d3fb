//! The `areas` table: the hierarchy every other record hangs from.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use tavana_domain::area::{Area, AreaLevel, NewArea, check_parent};
use tavana_domain::id::AreaId;

use crate::audit::{self, AuditContext, Event};
use crate::db::DbConnection;
use crate::error::StoreError;
use crate::schema::areas;
use crate::tx::write_transaction;

#[derive(Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = areas)]
pub(crate) struct AreaRow {
    pub(crate) id: String,
    pub(crate) parent_id: Option<String>,
    pub(crate) level: String,
    pub(crate) code: String,
    pub(crate) name_fa: String,
    pub(crate) name_en: String,
    pub(crate) version: i64,
    pub(crate) created_at: NaiveDateTime,
    pub(crate) updated_at: NaiveDateTime,
}

impl TryFrom<AreaRow> for Area {
    type Error = StoreError;

    fn try_from(row: AreaRow) -> Result<Self, StoreError> {
        let corrupt =
            |what: &str| StoreError::Internal(format!("areas row {}: bad {what}", row.id));
        Ok(Area {
            id: row.id.parse().map_err(|_| corrupt("id"))?,
            parent_id: row
                .parent_id
                .as_deref()
                .map(str::parse)
                .transpose()
                .map_err(|_| corrupt("parent_id"))?,
            level: row.level.parse().map_err(|_| corrupt("level"))?,
            code: row.code,
            name_fa: row.name_fa,
            name_en: row.name_en,
            version: row.version,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

/// Filters of the area list; `None` means "any".
#[derive(Debug, Clone, Default)]
pub struct AreaFilter {
    pub level: Option<AreaLevel>,
    pub parent_id: Option<AreaId>,
}

/// Creates an area under an existing parent of the right level.
pub fn create(
    conn: &mut DbConnection,
    context: &AuditContext,
    new: NewArea,
) -> Result<Area, StoreError> {
    write_transaction(conn, |conn| {
        if let Some(parent_id) = new.parent_id {
            let parent_level: Option<String> = areas::table
                .find(parent_id.to_string())
                .select(areas::level)
                .first(conn)
                .optional()?;
            let parent_level = parent_level
                .map(|level| level.parse::<AreaLevel>())
                .transpose()
                .map_err(|e| StoreError::Internal(e.to_string()))?;
            check_parent(new.level, parent_level)?;
        }
        let now = crate::now();
        let row = AreaRow {
            id: AreaId::generate().to_string(),
            parent_id: new.parent_id.map(|id| id.to_string()),
            level: new.level.as_str().to_owned(),
            code: new.code.as_str().to_owned(),
            name_fa: new.name_fa.as_str().to_owned(),
            name_en: new.name_en.as_str().to_owned(),
            version: 1,
            created_at: now,
            updated_at: now,
        };
        // The UNIQUE constraint on `code` decides races between two creators.
        let inserted: AreaRow = diesel::insert_into(areas::table)
            .values(&row)
            .returning(areas::all_columns)
            .get_result(conn)
            .map_err(|e| match e {
                DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
                    StoreError::Conflict(format!(
                        "an area with code {} already exists",
                        new.code.as_str()
                    ))
                }
                other => other.into(),
            })?;
        let area = Area::try_from(inserted)?;
        audit::append(
            conn,
            context,
            Event {
                action: "area.create",
                entity: "area",
                entity_id: Some(area.id.to_string()),
                before: None,
                after: Some(serde_json::json!({
                    "id": area.id.to_string(),
                    "parent_id": area.parent_id.map(|p| p.to_string()),
                    "level": area.level.as_str(),
                    "code": area.code,
                    "name_fa": area.name_fa,
                    "name_en": area.name_en,
                })),
            },
        )?;
        Ok(area)
    })
}

pub fn get(conn: &mut DbConnection, id: AreaId) -> Result<Area, StoreError> {
    areas::table
        .find(id.to_string())
        .select(AreaRow::as_select())
        .first::<AreaRow>(conn)?
        .try_into()
}

/// One page of areas in id (creation) order after `after`, plus whether more follow.
pub fn list(
    conn: &mut DbConnection,
    filter: &AreaFilter,
    after: Option<AreaId>,
    limit: usize,
) -> Result<(Vec<Area>, bool), StoreError> {
    let mut query = areas::table.select(AreaRow::as_select()).into_boxed();
    if let Some(level) = filter.level {
        query = query.filter(areas::level.eq(level.as_str()));
    }
    if let Some(parent_id) = filter.parent_id {
        query = query.filter(areas::parent_id.eq(parent_id.to_string()));
    }
    if let Some(after) = after {
        query = query.filter(areas::id.gt(after.to_string()));
    }
    // One extra row tells whether there is a next page.
    let rows: Vec<AreaRow> = query
        .order(areas::id.asc())
        .limit(crate::page::fetch(limit))
        .load(conn)?;
    let (rows, more) = crate::page::split(rows, limit);
    let areas = rows
        .into_iter()
        .map(Area::try_from)
        .collect::<Result<_, _>>()?;
    Ok((areas, more))
}

/// (id, Persian name, English name) of every neighbourhood, for labelling reports.
pub fn neighbourhood_names(
    conn: &mut DbConnection,
) -> Result<Vec<(String, String, String)>, StoreError> {
    Ok(areas::table
        .filter(areas::level.eq("neighbourhood"))
        .select((areas::id, areas::name_fa, areas::name_en))
        .order(areas::code.asc())
        .load(conn)?)
}
