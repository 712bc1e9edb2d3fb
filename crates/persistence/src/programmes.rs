//! The `programmes` table and their targets per stage.

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use tavana_domain::enrolment::EnrolmentState;
use tavana_domain::id::ProgrammeId;

use crate::db::DbConnection;
use crate::error::StoreError;
use crate::schema::{programme_targets, programmes};

/// A programme as stored, with its targets per stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Programme {
    pub id: ProgrammeId,
    pub code: String,
    pub name_fa: String,
    pub name_en: String,
    pub jalali_year: i32,
    pub area_id: Option<String>,
    pub target_households: Option<i32>,
    pub starts_on: NaiveDate,
    pub ends_on: NaiveDate,
    pub targets: Vec<(EnrolmentState, i32)>,
    pub version: i64,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = programmes)]
struct ProgrammeRow {
    id: String,
    code: String,
    name_fa: String,
    name_en: String,
    jalali_year: i32,
    area_id: Option<String>,
    target_households: Option<i32>,
    starts_on: NaiveDate,
    ends_on: NaiveDate,
    version: i64,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

fn with_targets(conn: &mut DbConnection, row: ProgrammeRow) -> Result<Programme, StoreError> {
    let targets: Vec<(String, i32)> = programme_targets::table
        .filter(programme_targets::programme_id.eq(&row.id))
        .select((programme_targets::stage, programme_targets::target))
        .load(conn)?;
    let mut targets = targets
        .into_iter()
        .map(|(stage, target)| {
            stage
                .parse::<EnrolmentState>()
                .map(|s| (s, target))
                .map_err(|e| StoreError::Internal(e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    targets.sort();
    Ok(Programme {
        id: row
            .id
            .parse()
            .map_err(|_| StoreError::Internal(format!("programmes: bad id {}", row.id)))?,
        code: row.code,
        name_fa: row.name_fa,
        name_en: row.name_en,
        jalali_year: row.jalali_year,
        area_id: row.area_id,
        target_households: row.target_households,
        starts_on: row.starts_on,
        ends_on: row.ends_on,
        targets,
        version: row.version,
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}

pub fn get(conn: &mut DbConnection, id: ProgrammeId) -> Result<Programme, StoreError> {
    let row: ProgrammeRow = programmes::table
        .find(id.to_string())
        .select(ProgrammeRow::as_select())
        .first(conn)?;
    with_targets(conn, row)
}

/// Every programme (there are a handful), by year and code.
pub fn list(
    conn: &mut DbConnection,
    jalali_year: Option<i32>,
) -> Result<Vec<Programme>, StoreError> {
    let mut query = programmes::table
        .select(ProgrammeRow::as_select())
        .into_boxed();
    if let Some(year) = jalali_year {
        query = query.filter(programmes::jalali_year.eq(year));
    }
    let rows: Vec<ProgrammeRow> = query
        .order((programmes::jalali_year.desc(), programmes::code.asc()))
        .load(conn)?;
    rows.into_iter()
        .map(|row| with_targets(conn, row))
        .collect()
}
