//! The `assessments` table.

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use serde_json::json;
use tavana_domain::assessment::{
    Assessment, AssessmentKind, NewAssessment, WelfareService, check_order,
};
use tavana_domain::id::{AssessmentId, PersonId};

use crate::audit::{AuditContext, Event};
use crate::db::DbConnection;
use crate::error::StoreError;
use crate::schema::assessments;
use crate::scope::Scope;
use crate::tx::write_transaction;
use tavana_domain::partner::Resource;

#[derive(Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = assessments)]
pub(crate) struct AssessmentRow {
    pub(crate) id: String,
    pub(crate) person_id: String,
    pub(crate) neighbourhood_id: Option<String>,
    pub(crate) kind: String,
    pub(crate) assessed_on: NaiveDate,
    pub(crate) employment_status: String,
    pub(crate) income_band: String,
    pub(crate) social_insurance: bool,
    pub(crate) welfare_services: String,
    pub(crate) skills: Option<String>,
    pub(crate) disability: bool,
    pub(crate) dependants: i32,
    pub(crate) recorded_by: Option<String>,
    pub(crate) created_at: NaiveDateTime,
}

fn to_assessment(row: AssessmentRow) -> Result<Assessment, StoreError> {
    let corrupt =
        |what: &str| StoreError::Internal(format!("assessments row {}: bad {what}", row.id));
    Ok(Assessment {
        id: row.id.parse().map_err(|_| corrupt("id"))?,
        person_id: row.person_id.parse().map_err(|_| corrupt("person_id"))?,
        neighbourhood_id: row
            .neighbourhood_id
            .as_deref()
            .map(str::parse)
            .transpose()
            .map_err(|_| corrupt("neighbourhood_id"))?,
        kind: row.kind.parse().map_err(|_| corrupt("kind"))?,
        assessed_on: row.assessed_on,
        employment_status: row
            .employment_status
            .parse()
            .map_err(|_| corrupt("employment_status"))?,
        income_band: row
            .income_band
            .parse()
            .map_err(|_| corrupt("income_band"))?,
        social_insurance: row.social_insurance,
        welfare_services: row
            .welfare_services
            .split_whitespace()
            .map(str::parse::<WelfareService>)
            .collect::<Result<_, _>>()
            .map_err(|_| corrupt("welfare_services"))?,
        skills: row.skills,
        disability: row.disability,
        dependants: row.dependants,
        recorded_by: row.recorded_by,
        created_at: row.created_at,
    })
}

/// Records an assessment of a person in scope: one baseline, then follow-ups after it.
pub fn record(
    conn: &mut DbConnection,
    context: &AuditContext,
    scope: &Scope,
    person: PersonId,
    new: NewAssessment,
) -> Result<Assessment, StoreError> {
    write_transaction(conn, |conn| {
        let subject = crate::persons::get_to_add_to(conn, scope, person)?;
        let baseline_on: Option<NaiveDate> = assessments::table
            .filter(assessments::person_id.eq(person.to_string()))
            .filter(assessments::kind.eq(AssessmentKind::Baseline.as_str()))
            .select(assessments::assessed_on)
            .first(conn)
            .optional()?;
        check_order(new.kind, new.assessed_on, baseline_on)?;
        let row = AssessmentRow {
            id: AssessmentId::generate().to_string(),
            person_id: person.to_string(),
            neighbourhood_id: subject.neighbourhood_id.map(|n| n.to_string()),
            kind: new.kind.as_str().to_owned(),
            assessed_on: new.assessed_on,
            employment_status: new.employment_status.as_str().to_owned(),
            income_band: new.income_band.as_str().to_owned(),
            social_insurance: new.social_insurance,
            welfare_services: new
                .welfare_services
                .iter()
                .map(|w| w.as_str())
                .collect::<Vec<_>>()
                .join(" "),
            skills: new.skills,
            disability: new.disability,
            dependants: new.dependants,
            recorded_by: context.actor.id(),
            created_at: crate::now(),
        };
        let inserted: AssessmentRow = diesel::insert_into(assessments::table)
            .values(&row)
            .returning(assessments::all_columns)
            .get_result(conn)
            .map_err(|e| match e {
                DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
                    StoreError::Conflict(
                        "a baseline assessment was recorded at the same time".to_owned(),
                    )
                }
                other => other.into(),
            })?;
        let assessment = to_assessment(inserted)?;
        crate::changes::record_created(
            conn,
            context,
            Resource::Assessments,
            Event {
                action: "assessment.record",
                entity: "assessment",
                entity_id: Some(assessment.id.to_string()),
                before: None,
                after: Some(json!({
                    "person_id": person.to_string(),
                    "kind": assessment.kind.as_str(),
                    "assessed_on": assessment.assessed_on.to_string(),
                    "employment_status": assessment.employment_status.as_str(),
                })),
            },
        )?;
        Ok(assessment)
    })
}

/// A person's assessments, oldest first.
pub fn list(
    conn: &mut DbConnection,
    scope: &Scope,
    person: PersonId,
) -> Result<Vec<Assessment>, StoreError> {
    crate::persons::get(conn, scope, person)?;
    assessments::table
        .filter(assessments::person_id.eq(person.to_string()))
        .select(AssessmentRow::as_select())
        .order((
            assessments::assessed_on.asc(),
            assessments::created_at.asc(),
        ))
        .load::<AssessmentRow>(conn)?
        .into_iter()
        .map(to_assessment)
        .collect()
}
