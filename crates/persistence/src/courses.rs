//! The `courses` catalogue. Reference data: every member of staff reads it, unscoped.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde_json::json;
use tavana_domain::id::CourseId;
use tavana_domain::training::{Course, CourseCategory, NewCourse};

use crate::audit::{self, AuditContext, Event};
use crate::db::DbConnection;
use crate::error::StoreError;
use crate::schema::courses;
use crate::tx::write_transaction;

#[derive(Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = courses)]
pub(crate) struct CourseRow {
    pub(crate) id: String,
    pub(crate) category: String,
    pub(crate) title_fa: String,
    pub(crate) title_en: String,
    pub(crate) hours: i32,
    pub(crate) provider_kind: String,
    pub(crate) sensitive: bool,
    pub(crate) version: i64,
    pub(crate) created_at: NaiveDateTime,
    pub(crate) updated_at: NaiveDateTime,
}

pub(crate) fn to_course(row: CourseRow) -> Result<Course, StoreError> {
    let corrupt = |what: &str| StoreError::Internal(format!("courses row {}: bad {what}", row.id));
    Ok(Course {
        id: row.id.parse().map_err(|_| corrupt("id"))?,
        category: row.category.parse().map_err(|_| corrupt("category"))?,
        title_fa: row.title_fa,
        title_en: row.title_en,
        hours: row.hours,
        provider_kind: row
            .provider_kind
            .parse()
            .map_err(|_| corrupt("provider_kind"))?,
        sensitive: row.sensitive,
        version: row.version,
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}

pub fn create(
    conn: &mut DbConnection,
    context: &AuditContext,
    new: NewCourse,
) -> Result<Course, StoreError> {
    write_transaction(conn, |conn| {
        let now = crate::now();
        let row: CourseRow = diesel::insert_into(courses::table)
            .values(CourseRow {
                id: CourseId::generate().to_string(),
                category: new.category.as_str().to_owned(),
                title_fa: new.title_fa,
                title_en: new.title_en,
                hours: new.hours,
                provider_kind: new.provider_kind.as_str().to_owned(),
                sensitive: new.sensitive,
                version: 1,
                created_at: now,
                updated_at: now,
            })
            .returning(courses::all_columns)
            .get_result(conn)?;
        let course = to_course(row)?;
        audit::append(
            conn,
            context,
            Event {
                action: "course.create",
                entity: "course",
                entity_id: Some(course.id.to_string()),
                before: None,
                after: Some(json!({
                    "category": course.category.as_str(),
                    "title_en": course.title_en,
                    "hours": course.hours,
                    "provider_kind": course.provider_kind.as_str(),
                    "sensitive": course.sensitive,
                })),
            },
        )?;
        Ok(course)
    })
}

pub fn get(conn: &mut DbConnection, id: CourseId) -> Result<Course, StoreError> {
    to_course(
        courses::table
            .find(id.to_string())
            .select(CourseRow::as_select())
            .get_result(conn)?,
    )
}

pub fn list(
    conn: &mut DbConnection,
    category: Option<CourseCategory>,
    after: Option<CourseId>,
    limit: usize,
) -> Result<(Vec<Course>, bool), StoreError> {
    let mut query = courses::table.select(CourseRow::as_select()).into_boxed();
    if let Some(category) = category {
        query = query.filter(courses::category.eq(category.as_str()));
    }
    if let Some(after) = after {
        query = query.filter(courses::id.gt(after.to_string()));
    }
    let rows: Vec<CourseRow> = query
        .order(courses::id.asc())
        .limit(crate::page::fetch(limit))
        .load(conn)?;
    let (rows, more) = crate::page::split(rows, limit);
    Ok((
        rows.into_iter().map(to_course).collect::<Result<_, _>>()?,
        more,
    ))
}
