//! The `programmes` table and their targets per stage.

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use tavana_domain::enrolment::EnrolmentState;
use tavana_domain::id::ProgrammeId;

use crate::audit::{self, AuditContext, Event};
use crate::db::DbConnection;
use crate::error::StoreError;
use crate::schema::{areas, organisations, programme_partners, programme_targets, programmes};
use crate::tx::write_transaction;

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
    /// Partner organisations taking part.
    pub partners: Vec<String>,
    /// Whether issuing a home-business permit moves the household's enrolment to `permitted`.
    pub advance_on_permit: bool,
    /// At most this many supporters active at once in one neighbourhood.
    pub supporters_per_neighbourhood: i32,
    pub advance_on_loan: bool,
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
    advance_on_permit: bool,
    supporters_per_neighbourhood: i32,
    advance_on_loan: bool,
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
    let partners: Vec<String> = programme_partners::table
        .filter(programme_partners::programme_id.eq(&row.id))
        .select(programme_partners::organisation_id)
        .order(programme_partners::organisation_id.asc())
        .load(conn)?;
    Ok(Programme {
        partners,
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
        advance_on_permit: row.advance_on_permit,
        supporters_per_neighbourhood: row.supporters_per_neighbourhood,
        advance_on_loan: row.advance_on_loan,
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

/// A programme to create.
#[derive(Debug, Clone)]
pub struct NewProgramme {
    pub code: String,
    pub name_fa: String,
    pub name_en: String,
    pub jalali_year: i32,
    pub starts_on: NaiveDate,
    pub ends_on: NaiveDate,
    pub area_id: Option<String>,
    pub target_households: Option<i32>,
    pub targets: Vec<(EnrolmentState, i32)>,
    pub partners: Vec<String>,
    pub advance_on_permit: bool,
    pub supporters_per_neighbourhood: i32,
    pub advance_on_loan: bool,
}

/// Changes; `None` keeps a field.
#[derive(Debug, Clone, Default)]
pub struct ProgrammeChanges {
    pub name_fa: Option<String>,
    pub name_en: Option<String>,
    pub target_households: Option<Option<i32>>,
    pub targets: Option<Vec<(EnrolmentState, i32)>>,
    pub partners: Option<Vec<String>>,
    pub advance_on_permit: Option<bool>,
    pub supporters_per_neighbourhood: Option<i32>,
    pub advance_on_loan: Option<bool>,
}

fn snapshot(p: &Programme) -> serde_json::Value {
    serde_json::json!({
        "code": p.code, "name_fa": p.name_fa, "name_en": p.name_en, "jalali_year": p.jalali_year,
        "target_households": p.target_households,
        "targets": p.targets.iter().map(|(s, t)| serde_json::json!({"stage": s.as_str(), "target": t})).collect::<Vec<_>>(),
        "partners": p.partners,
        "advance_on_permit": p.advance_on_permit,
        "supporters_per_neighbourhood": p.supporters_per_neighbourhood,
        "advance_on_loan": p.advance_on_loan,
    })
}

fn set_targets(
    conn: &mut DbConnection,
    id: &str,
    targets: &[(EnrolmentState, i32)],
) -> Result<(), StoreError> {
    diesel::delete(programme_targets::table.filter(programme_targets::programme_id.eq(id)))
        .execute(conn)?;
    for (stage, target) in targets {
        diesel::insert_into(programme_targets::table)
            .values((
                programme_targets::programme_id.eq(id),
                programme_targets::stage.eq(stage.as_str()),
                programme_targets::target.eq(target),
            ))
            .execute(conn)?;
    }
    Ok(())
}

fn set_partners(conn: &mut DbConnection, id: &str, partners: &[String]) -> Result<(), StoreError> {
    let mut partners = partners.to_vec();
    partners.sort();
    partners.dedup();
    let found: i64 = organisations::table
        .filter(organisations::id.eq_any(&partners))
        .count()
        .get_result(conn)?;
    if usize::try_from(found).ok() != Some(partners.len()) {
        return Err(tavana_domain::FieldError::new(
            "partners",
            "not_found",
            "every partner must be an existing organisation",
        )
        .into());
    }
    diesel::delete(programme_partners::table.filter(programme_partners::programme_id.eq(id)))
        .execute(conn)?;
    for partner in &partners {
        diesel::insert_into(programme_partners::table)
            .values((
                programme_partners::programme_id.eq(id),
                programme_partners::organisation_id.eq(partner),
            ))
            .execute(conn)?;
    }
    Ok(())
}

pub fn create(
    conn: &mut DbConnection,
    context: &AuditContext,
    new: NewProgramme,
) -> Result<Programme, StoreError> {
    write_transaction(conn, |conn| {
        let taken: i64 = programmes::table
            .filter(programmes::code.eq(&new.code))
            .count()
            .get_result(conn)?;
        if taken > 0 {
            return Err(StoreError::Conflict(format!(
                "a programme with code {} exists",
                new.code
            )));
        }
        if let Some(area) = &new.area_id {
            let found: i64 = areas::table
                .filter(areas::id.eq(area))
                .count()
                .get_result(conn)?;
            if found == 0 {
                return Err(
                    tavana_domain::FieldError::new("area_id", "not_found", "no such area").into(),
                );
            }
        }
        let id = ProgrammeId::generate().to_string();
        let now = crate::now();
        diesel::insert_into(programmes::table)
            .values((
                programmes::id.eq(&id),
                programmes::code.eq(&new.code),
                programmes::name_fa.eq(&new.name_fa),
                programmes::name_en.eq(&new.name_en),
                programmes::jalali_year.eq(new.jalali_year),
                programmes::area_id.eq(&new.area_id),
                programmes::target_households.eq(new.target_households),
                programmes::starts_on.eq(new.starts_on),
                programmes::ends_on.eq(new.ends_on),
                programmes::advance_on_permit.eq(new.advance_on_permit),
                programmes::supporters_per_neighbourhood.eq(new.supporters_per_neighbourhood),
                programmes::advance_on_loan.eq(new.advance_on_loan),
                programmes::version.eq(1_i64),
                programmes::created_at.eq(now),
                programmes::updated_at.eq(now),
            ))
            .execute(conn)?;
        set_targets(conn, &id, &new.targets)?;
        set_partners(conn, &id, &new.partners)?;
        let programme = get(
            conn,
            id.parse()
                .map_err(|_| StoreError::Internal("programme id".to_owned()))?,
        )?;
        audit::append(
            conn,
            context,
            Event {
                action: "programme.create",
                entity: "programme",
                entity_id: Some(id),
                before: None,
                after: Some(snapshot(&programme)),
            },
        )?;
        Ok(programme)
    })
}

pub fn update(
    conn: &mut DbConnection,
    context: &AuditContext,
    id: ProgrammeId,
    expected_version: Option<i64>,
    changes: ProgrammeChanges,
) -> Result<Programme, StoreError> {
    write_transaction(conn, |conn| {
        let before = get(conn, id)?;
        if let Some(expected) = expected_version
            && expected != before.version
        {
            return Err(StoreError::VersionMismatch {
                current: before.version,
            });
        }
        let key = id.to_string();
        let updated = diesel::update(
            programmes::table
                .find(&key)
                .filter(programmes::version.eq(before.version)),
        )
        .set((
            programmes::name_fa.eq(changes
                .name_fa
                .clone()
                .unwrap_or_else(|| before.name_fa.clone())),
            programmes::name_en.eq(changes
                .name_en
                .clone()
                .unwrap_or_else(|| before.name_en.clone())),
            programmes::target_households.eq(changes
                .target_households
                .unwrap_or(before.target_households)),
            programmes::advance_on_permit.eq(changes
                .advance_on_permit
                .unwrap_or(before.advance_on_permit)),
            programmes::supporters_per_neighbourhood.eq(changes
                .supporters_per_neighbourhood
                .unwrap_or(before.supporters_per_neighbourhood)),
            programmes::advance_on_loan
                .eq(changes.advance_on_loan.unwrap_or(before.advance_on_loan)),
            programmes::version.eq(before.version + 1),
            programmes::updated_at.eq(crate::now()),
        ))
        .execute(conn)?;
        if updated == 0 {
            return Err(StoreError::VersionMismatch {
                current: before.version + 1,
            });
        }
        if let Some(targets) = &changes.targets {
            set_targets(conn, &key, targets)?;
        }
        if let Some(partners) = &changes.partners {
            set_partners(conn, &key, partners)?;
        }
        let after = get(conn, id)?;
        audit::append(
            conn,
            context,
            Event {
                action: "programme.update",
                entity: "programme",
                entity_id: Some(key),
                before: Some(snapshot(&before)),
                after: Some(snapshot(&after)),
            },
        )?;
        Ok(after)
    })
}
