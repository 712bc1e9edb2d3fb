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

use crate::changes::Viewer;
use crate::db::DbConnection;
use crate::error::StoreError;
use crate::schema::{cohorts, consents, courses, enrolments, persons, registrations};

/// A member: id, neighbourhood, birth date, sex, household, role.
type Member = (
    String,
    Option<String>,
    NaiveDate,
    String,
    Option<String>,
    Option<String>,
);

/// Every member of the programme's enrolled households the viewer may count.
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
    for chunk in households.chunks(1000) {
        members.extend(
            persons::table
                .filter(persons::household_id.eq_any(chunk))
                .filter(persons::merged_into.is_null())
                .select((
                    persons::id,
                    persons::neighbourhood_id,
                    persons::birth_date,
                    persons::sex,
                    persons::household_id,
                    persons::household_role,
                ))
                .load::<Member>(conn)?,
        );
    }
    let head_sex: HashMap<&str, &str> = members
        .iter()
        .filter(|m| m.5.as_deref() == Some("head"))
        .filter_map(|m| m.4.as_deref().map(|h| (h, m.3.as_str())))
        .collect();
    let sensitive: HashSet<String> = registrations::table
        .inner_join(cohorts::table.inner_join(courses::table))
        .filter(courses::sensitive.eq(true))
        .select(registrations::person_id)
        .distinct()
        .load::<String>(conn)?
        .into_iter()
        .collect();
    let (consenting, areas): (Option<HashSet<String>>, Option<HashSet<String>>) = match viewer {
        Viewer::Staff => (None, None),
        Viewer::Partner(p) => (
            Some(
                consents::table
                    .filter(consents::share_with_partners.eq(true))
                    .filter(consents::given_on.le(p.today))
                    .filter(
                        consents::withdrawn_on
                            .is_null()
                            .or(consents::withdrawn_on.gt(p.today)),
                    )
                    .select(consents::person_id)
                    .load::<String>(conn)?
                    .into_iter()
                    .collect(),
            ),
            p.neighbourhoods.clone().map(|n| n.into_iter().collect()),
        ),
    };
    Ok(members
        .iter()
        .filter(|m| consenting.as_ref().is_none_or(|c| c.contains(&m.0)))
        .filter_map(|(id, hood, born, sex, household, _)| {
            let hood = hood.as_ref()?;
            if areas.as_ref().is_some_and(|a| !a.contains(hood)) {
                return None;
            }
            let household = household.as_deref()?;
            Some(Subject {
                neighbourhood: hood.clone(),
                age_band: AgeBand::of(age_on(*born, as_of)),
                household_type: match head_sex.get(household) {
                    Some(&"female") => HouseholdType::WomanHeaded,
                    Some(_) => HouseholdType::ManHeaded,
                    None => HouseholdType::NoHead,
                },
                stage: enrolled.get(household).cloned().unwrap_or_default(),
                woman: sex == "female",
                in_sensitive_course: sensitive.contains(id),
            })
        })
        .collect())
}
