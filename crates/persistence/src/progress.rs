//! Progress toward a programme's target, from the per-day counts every transition keeps
//! (`enrolment_stages`, `progress_counts`), and baseline statistics from the latest assessments.

use std::collections::HashMap;

use chrono::NaiveDate;
use diesel::prelude::*;
use diesel::upsert::excluded;
use tavana_domain::assessment::EmploymentStatus;
use tavana_domain::enrolment::EnrolmentState;
use tavana_domain::id::ProgrammeId;
use tavana_domain::progress::FunnelStage;

use crate::db::DbConnection;
use crate::error::StoreError;
use crate::programmes::Programme;
use crate::schema::{
    areas, assessments, employment_outcomes, enrolment_stages, enrolments, organisation_areas,
    organisations, persons, progress_counts,
};
use crate::scope::{Scope, assigned_to};

/// Notes the first time an enrolment enters `state`, and counts it for its day. Runs inside the
/// transition's transaction.
pub(crate) fn record_stage(
    conn: &mut DbConnection,
    enrolment: &str,
    programme: &str,
    neighbourhood: &str,
    state: EnrolmentState,
    on: NaiveDate,
) -> Result<(), StoreError> {
    let stage = (
        enrolment_stages::enrolment_id.eq(enrolment),
        enrolment_stages::stage.eq(state.as_str()),
        enrolment_stages::first_on.eq(on),
        enrolment_stages::programme_id.eq(programme),
        enrolment_stages::neighbourhood_id.eq(neighbourhood),
    );
    let count = (
        progress_counts::programme_id.eq(programme),
        progress_counts::neighbourhood_id.eq(neighbourhood),
        progress_counts::stage.eq(state.as_str()),
        progress_counts::day.eq(on),
        progress_counts::households.eq(1_i64),
    );
    // Upserts do not go through the two-backend connection: one statement per backend. The
    // increment is a single atomic statement, so concurrent transitions never lose a count.
    let first_time = match conn {
        DbConnection::Pg(pg) => diesel::insert_into(enrolment_stages::table)
            .values(stage)
            .on_conflict_do_nothing()
            .execute(pg)?,
        DbConnection::Sqlite(sqlite) => diesel::insert_into(enrolment_stages::table)
            .values(stage)
            .on_conflict_do_nothing()
            .execute(sqlite)?,
    };
    if first_time == 0 {
        return Ok(());
    }
    let key = (
        progress_counts::programme_id,
        progress_counts::neighbourhood_id,
        progress_counts::stage,
        progress_counts::day,
    );
    let bump = progress_counts::households
        .eq(progress_counts::households + excluded(progress_counts::households));
    match conn {
        DbConnection::Pg(pg) => diesel::insert_into(progress_counts::table)
            .values(count)
            .on_conflict(key)
            .do_update()
            .set(bump)
            .execute(pg)?,
        DbConnection::Sqlite(sqlite) => diesel::insert_into(progress_counts::table)
            .values(count)
            .on_conflict(key)
            .do_update()
            .set(bump)
            .execute(sqlite)?,
    };
    Ok(())
}

/// Households that first reached a stage in a neighbourhood on a day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reached {
    pub neighbourhood_id: String,
    pub stage: FunnelStage,
    pub day: NaiveDate,
    pub households: i64,
}

/// A facilitation office and the neighbourhoods it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Office {
    pub id: String,
    pub name: String,
    pub neighbourhoods: Vec<String>,
}

/// Everything the progress report is computed from.
#[derive(Debug, Clone)]
pub struct ProgressData {
    pub programme: Programme,
    /// Up to `as_of`, in the caller's neighbourhoods.
    pub reached: Vec<Reached>,
    /// (id, Persian name, English name) of the neighbourhoods in the caller's scope.
    pub neighbourhoods: Vec<(String, String, String)>,
    pub offices: Vec<Office>,
}

/// Reads what the progress report of `programme` as of `as_of` needs, in the caller's scope and,
/// for a partner, in its MoU's neighbourhoods (`mou`; `None` when the MoU covers every one).
pub fn data(
    conn: &mut DbConnection,
    scope: &Scope,
    mou: Option<&[String]>,
    programme: ProgrammeId,
    as_of: NaiveDate,
) -> Result<ProgressData, StoreError> {
    let programme = crate::programmes::get(conn, programme)?;
    let key = programme.id.to_string();
    let counted_states: Vec<&str> = FunnelStage::ALL
        .iter()
        .filter(|s| **s != FunnelStage::EmployedVerified)
        .map(|s| s.state().as_str())
        .collect();
    let mut counts = progress_counts::table
        .filter(progress_counts::programme_id.eq(&key))
        .filter(progress_counts::day.le(as_of))
        .filter(progress_counts::stage.eq_any(counted_states))
        .select((
            progress_counts::neighbourhood_id,
            progress_counts::stage,
            progress_counts::day,
            progress_counts::households,
        ))
        .into_boxed();
    if let Scope::UserAreas(user) = scope {
        counts = counts.filter(progress_counts::neighbourhood_id.eq_any(assigned_to(*user)));
    }
    if let Some(ids) = mou {
        counts = counts.filter(progress_counts::neighbourhood_id.eq_any(ids));
    }
    let rows: Vec<(String, String, NaiveDate, i64)> = counts.load(conn)?;
    let mut reached = Vec::with_capacity(rows.len());
    for (neighbourhood_id, stage, day, households) in rows {
        let state: EnrolmentState = stage
            .parse()
            .map_err(|_| StoreError::Internal(format!("progress_counts: bad stage {stage}")))?;
        if let Some(stage) = FunnelStage::of_state(state) {
            reached.push(Reached {
                neighbourhood_id,
                stage,
                day,
                households,
            });
        }
    }
    reached.extend(employed_verified(conn, scope, mou, &key, as_of)?);

    let mut hoods = areas::table
        .filter(areas::level.eq("neighbourhood"))
        .select((areas::id, areas::name_fa, areas::name_en))
        .order(areas::code.asc())
        .into_boxed();
    if let Scope::UserAreas(user) = scope {
        hoods = hoods.filter(areas::id.eq_any(assigned_to(*user)));
    }
    if let Some(ids) = mou {
        hoods = hoods.filter(areas::id.eq_any(ids));
    }
    let neighbourhoods: Vec<(String, String, String)> = hoods.load(conn)?;
    let coverage: Vec<(String, String, String)> = organisation_areas::table
        .inner_join(
            organisations::table.on(organisations::id.eq(organisation_areas::organisation_id)),
        )
        .filter(organisations::kind.eq("facilitation_office"))
        .select((
            organisations::id,
            organisations::name,
            organisation_areas::area_id,
        ))
        .order((organisations::name.asc(), organisation_areas::area_id.asc()))
        .load(conn)?;
    let visible: Vec<&String> = neighbourhoods.iter().map(|(id, _, _)| id).collect();
    let mut offices: Vec<Office> = Vec::new();
    for (id, name, area) in coverage {
        if !visible.contains(&&area) {
            continue;
        }
        match offices.iter_mut().find(|o| o.id == id) {
            Some(office) => office.neighbourhoods.push(area),
            None => offices.push(Office {
                id,
                name,
                neighbourhoods: vec![area],
            }),
        }
    }
    Ok(ProgressData {
        programme,
        reached,
        neighbourhoods,
        offices,
    })
}

/// Households that reached `employed` with an employment outcome of a member verified: counted
/// on the later of the two days.
fn employed_verified(
    conn: &mut DbConnection,
    scope: &Scope,
    mou: Option<&[String]>,
    programme: &str,
    as_of: NaiveDate,
) -> Result<Vec<Reached>, StoreError> {
    let mut query = enrolment_stages::table
        .inner_join(enrolments::table)
        .inner_join(
            persons::table.on(persons::household_id.eq(enrolments::household_id.nullable())),
        )
        .inner_join(employment_outcomes::table.on(employment_outcomes::person_id.eq(persons::id)))
        .filter(enrolment_stages::programme_id.eq(programme))
        .filter(enrolment_stages::stage.eq(EnrolmentState::Employed.as_str()))
        .filter(enrolment_stages::first_on.le(as_of))
        .filter(employment_outcomes::verified_on.le(as_of))
        .select((
            enrolment_stages::enrolment_id,
            enrolment_stages::neighbourhood_id,
            enrolment_stages::first_on,
            employment_outcomes::verified_on,
        ))
        .into_boxed();
    if let Scope::UserAreas(user) = scope {
        query = query.filter(enrolment_stages::neighbourhood_id.eq_any(assigned_to(*user)));
    }
    if let Some(ids) = mou {
        query = query.filter(enrolment_stages::neighbourhood_id.eq_any(ids));
    }
    let rows: Vec<(String, String, NaiveDate, Option<NaiveDate>)> = query.load(conn)?;
    // Per enrolment: the first verification, and the day both held.
    let mut first: HashMap<String, (String, NaiveDate)> = HashMap::new();
    for (enrolment, neighbourhood, employed_on, verified_on) in rows {
        let Some(verified_on) = verified_on else {
            continue;
        };
        let day = employed_on.max(verified_on);
        first
            .entry(enrolment)
            .and_modify(|(_, d)| *d = (*d).min(day))
            .or_insert((neighbourhood, day));
    }
    Ok(first
        .into_values()
        .map(|(neighbourhood_id, day)| Reached {
            neighbourhood_id,
            stage: FunnelStage::EmployedVerified,
            day,
            households: 1,
        })
        .collect())
}

/// Baseline figures of one neighbourhood, from each person's latest assessment.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NeighbourhoodStatistics {
    pub neighbourhood_id: String,
    /// People with an assessment.
    pub assessed: i64,
    /// In the labour force (employed or unemployed).
    pub labour_force: i64,
    pub unemployed: i64,
    pub insured: i64,
    /// Receiving at least one welfare service.
    pub welfare: i64,
}

/// Per neighbourhood in scope (and in a partner's MoU, `mou`, as `data`), from the latest
/// assessment of each person on or before `as_of`.
pub fn statistics(
    conn: &mut DbConnection,
    scope: &Scope,
    mou: Option<&[String]>,
    as_of: NaiveDate,
) -> Result<Vec<NeighbourhoodStatistics>, StoreError> {
    let mut query = assessments::table
        .filter(assessments::assessed_on.le(as_of))
        .filter(assessments::neighbourhood_id.is_not_null())
        .select((
            assessments::person_id,
            assessments::neighbourhood_id,
            assessments::assessed_on,
            assessments::id,
            assessments::employment_status,
            assessments::social_insurance,
            assessments::welfare_services,
        ))
        .into_boxed();
    type Row = (
        String,
        Option<String>,
        NaiveDate,
        String,
        String,
        bool,
        String,
    );
    // Each person's latest assessment (by day, then id), judged over all of hers before the scope
    // is applied: one made since in another neighbourhood takes her out of this one's figures,
    // whoever reads them.
    let later = diesel::alias!(assessments as later);
    query = query.filter(diesel::dsl::not(diesel::dsl::exists(
        later
            .filter(
                later
                    .field(assessments::person_id)
                    .eq(assessments::person_id),
            )
            .filter(later.field(assessments::assessed_on).le(as_of))
            .filter(
                later
                    .field(assessments::assessed_on)
                    .gt(assessments::assessed_on)
                    .or(later
                        .field(assessments::assessed_on)
                        .eq(assessments::assessed_on)
                        .and(later.field(assessments::id).gt(assessments::id))),
            ),
    )));
    if let Scope::UserAreas(user) = scope {
        query = query.filter(assessments::neighbourhood_id.eq_any(assigned_to(*user).nullable()));
    }
    if let Some(ids) = mou {
        query = query.filter(assessments::neighbourhood_id.eq_any(ids));
    }
    let latest: Vec<Row> = query.load(conn)?;
    let mut by_hood: HashMap<String, NeighbourhoodStatistics> = HashMap::new();
    for (_, hood, _, _, status, insured, welfare) in latest {
        let Some(hood) = hood else { continue };
        let line = by_hood
            .entry(hood.clone())
            .or_insert_with(|| NeighbourhoodStatistics {
                neighbourhood_id: hood,
                ..NeighbourhoodStatistics::default()
            });
        line.assessed += 1;
        match status.parse::<EmploymentStatus>() {
            Ok(EmploymentStatus::Employed) => line.labour_force += 1,
            Ok(EmploymentStatus::Unemployed) => {
                line.labour_force += 1;
                line.unemployed += 1;
            }
            Ok(EmploymentStatus::NotInLabourForce) => {}
            Err(_) => {
                return Err(StoreError::Internal(format!(
                    "bad employment status {status}"
                )));
            }
        }
        if insured {
            line.insured += 1;
        }
        if !welfare.trim().is_empty() && welfare.trim() != "none" {
            line.welfare += 1;
        }
    }
    let mut out: Vec<NeighbourhoodStatistics> = by_hood.into_values().collect();
    out.sort_by(|a, b| a.neighbourhood_id.cmp(&b.neighbourhood_id));
    Ok(out)
}
