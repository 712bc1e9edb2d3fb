//! The people behind the research tables: members of a programme's enrolled households, with
//! what the tables count them by. Partners only count people whose consent to share is in force,
//! in their organisation's areas (the same rule as the changes feed).

use std::collections::{HashMap, HashSet};

use chrono::NaiveDate;
use diesel::prelude::*;
use tavana_domain::id::ProgrammeId;
use tavana_domain::partner::AgeBand;
use tavana_domain::person::age_on;
use tavana_domain::research::{HouseholdType, Subject};

use crate::changes::{Viewer, sharing_on};
use crate::db::DbConnection;
use crate::error::StoreError;
use crate::schema::{cohorts, courses, enrolments, persons, registrations};

/// A member: id, neighbourhood, birth date, sex, household.
type Member = (String, Option<String>, NaiveDate, String, Option<String>);

/// Every member of the programme's enrolled households the viewer may count: for a partner, the
/// query itself keeps only people whose sharing consent is in force, in the MoU's areas.
pub fn subjects(
    conn: &mut DbConnection,
    viewer: &Viewer,
    programme: ProgrammeId,
    as_of: NaiveDate,
) -> Result<Vec<Subject>, StoreError> {
    let enrolled: HashMap<String, String> = enrolments::table
        .filter(enrolments::programme_id.eq(programme.to_string()))
        .select((enrolments::household_id, enrolments::state))
        .load::<(String, String)>(conn)?
        .into_iter()
        .collect();
    let households: Vec<String> = enrolled.keys().cloned().collect();
    let mut members: Vec<Member> = Vec::new();
    // Who heads a household gives its type, whoever of its members may be counted.
    let mut head_sex: HashMap<String, String> = HashMap::new();
    for chunk in households.chunks(1000) {
        head_sex.extend(
            persons::table
                .filter(persons::household_id.eq_any(chunk))
                .filter(persons::household_role.eq("head"))
                .select((persons::household_id, persons::sex))
                .load::<(Option<String>, String)>(conn)?
                .into_iter()
                .filter_map(|(household, sex)| household.map(|h| (h, sex))),
        );
        let query = persons::table
            .filter(persons::household_id.eq_any(chunk))
            .filter(persons::merged_into.is_null())
            .select((
                persons::id,
                persons::neighbourhood_id,
                persons::birth_date,
                persons::sex,
                persons::household_id,
            ))
            .into_boxed();
        let query = match viewer {
            Viewer::Staff => query,
            Viewer::Partner(p) => {
                let query = query.filter(persons::id.eq_any(sharing_on(p.today)));
                match &p.neighbourhoods {
                    None => query,
                    Some(areas) => query.filter(persons::neighbourhood_id.eq_any(areas.clone())),
                }
            }
        };
        members.extend(query.load::<Member>(conn)?);
    }
    let sensitive: HashSet<String> = registrations::table
        .inner_join(cohorts::table.inner_join(courses::table))
        .filter(courses::sensitive.eq(true))
        .select(registrations::person_id)
        .distinct()
        .load::<String>(conn)?
        .into_iter()
        .collect();
    Ok(members
        .into_iter()
        .filter_map(|(id, hood, born, sex, household)| {
            let household = household?;
            Some(Subject {
                neighbourhood: hood?,
                age_band: AgeBand::of(age_on(born, as_of)),
                household_type: match head_sex.get(&household).map(String::as_str) {
                    Some("female") => HouseholdType::WomanHeaded,
                    Some(_) => HouseholdType::ManHeaded,
                    None => HouseholdType::NoHead,
                },
                stage: enrolled.get(&household).cloned().unwrap_or_default(),
                woman: sex == "female",
                in_sensitive_course: sensitive.contains(&id),
            })
        })
        .collect())
}
