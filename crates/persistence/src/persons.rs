//! The `persons` table and household memberships. Every query takes the caller's [`Scope`].

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use serde_json::json;
use tavana_domain::FieldError;
use tavana_domain::id::{AreaId, HouseholdId, PersonId};
use tavana_domain::person::{Education, HouseholdRole, NewPerson, Person, PersonName, Sex};

use crate::audit::{self, AuditContext, Event};
use crate::changes::Op;
use crate::db::{DbConnection, MultiBackend};
use crate::error::StoreError;
use crate::households::escape_like;
use crate::schema::{areas, enrolments, household_memberships, persons, user_areas};
use crate::scope::Scope;
use crate::tx::{RowLock, lock_rows, write_transaction};
use tavana_domain::partner::Resource;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = persons)]
// Every column is written, a missing value as NULL: rows can be sent by COPY (imports).
#[diesel(treat_none_as_default_value = false)]
pub(crate) struct PersonRow {
    pub(crate) id: String,
    pub(crate) national_id: String,
    pub(crate) first_name: String,
    pub(crate) last_name: String,
    pub(crate) first_name_normalised: String,
    pub(crate) last_name_normalised: String,
    pub(crate) birth_date: NaiveDate,
    pub(crate) sex: String,
    pub(crate) mobile: Option<String>,
    pub(crate) education: Option<String>,
    pub(crate) household_id: Option<String>,
    pub(crate) household_role: Option<String>,
    pub(crate) neighbourhood_id: Option<String>,
    pub(crate) merged_into: Option<String>,
    pub(crate) version: i64,
    pub(crate) created_at: NaiveDateTime,
    pub(crate) updated_at: NaiveDateTime,
}

fn to_person(row: PersonRow) -> Result<Person, StoreError> {
    let corrupt = |what: &str| StoreError::Internal(format!("persons row {}: bad {what}", row.id));
    Ok(Person {
        id: row.id.parse().map_err(|_| corrupt("id"))?,
        sex: row.sex.parse().map_err(|_| corrupt("sex"))?,
        education: row
            .education
            .as_deref()
            .map(str::parse)
            .transpose()
            .map_err(|_| corrupt("education"))?,
        household_id: row
            .household_id
            .as_deref()
            .map(str::parse)
            .transpose()
            .map_err(|_| corrupt("household_id"))?,
        household_role: row
            .household_role
            .as_deref()
            .map(str::parse)
            .transpose()
            .map_err(|_| corrupt("household_role"))?,
        neighbourhood_id: row
            .neighbourhood_id
            .as_deref()
            .map(str::parse)
            .transpose()
            .map_err(|_| corrupt("neighbourhood_id"))?,
        merged_into: row
            .merged_into
            .as_deref()
            .map(str::parse)
            .transpose()
            .map_err(|_| corrupt("merged_into"))?,
        national_id: row.national_id,
        first_name: row.first_name,
        last_name: row.last_name,
        birth_date: row.birth_date,
        mobile: row.mobile,
        version: row.version,
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}

/// What the audit log keeps of a person.
fn snapshot(person: &Person) -> serde_json::Value {
    json!({
        "id": person.id.to_string(),
        "national_id": person.national_id,
        "first_name": person.first_name,
        "last_name": person.last_name,
        "birth_date": person.birth_date.to_string(),
        "sex": person.sex.as_str(),
        "mobile": person.mobile,
        "education": person.education.map(Education::as_str),
        "household_id": person.household_id.map(|h| h.to_string()),
        "household_role": person.household_role.map(HouseholdRole::as_str),
        "version": person.version,
    })
}

fn scoped<'a>(scope: &Scope) -> persons::BoxedQuery<'a, MultiBackend> {
    let mut query = persons::table.into_boxed();
    if let Scope::UserAreas(user) = scope {
        query = query.filter(
            persons::neighbourhood_id.eq_any(
                user_areas::table
                    .filter(user_areas::user_id.eq(user.to_string()))
                    .select(user_areas::area_id.nullable()),
            ),
        );
    }
    query
}

fn existing_with_national_id(
    conn: &mut DbConnection,
    national_id: &str,
) -> Result<Option<String>, StoreError> {
    let found: Option<(String, Option<String>)> = persons::table
        .filter(persons::national_id.eq(national_id))
        .select((persons::id, persons::merged_into))
        .first(conn)
        .optional()?;
    // A merged record answers with the person it was merged into.
    Ok(found.map(|(id, merged_into)| merged_into.unwrap_or(id)))
}

fn national_id_taken(existing: String) -> StoreError {
    StoreError::Exists {
        message: "a person with this national ID is registered already".to_owned(),
        existing,
    }
}

fn head_of(conn: &mut DbConnection, household: &str) -> Result<Option<String>, StoreError> {
    Ok(persons::table
        .filter(persons::household_id.eq(household))
        .filter(persons::household_role.eq(HouseholdRole::Head.as_str()))
        .select(persons::id)
        .first(conn)
        .optional()?)
}

/// Registers a person as a member of a household in the caller's scope.
pub fn create(
    conn: &mut DbConnection,
    context: &AuditContext,
    scope: &Scope,
    new: NewPerson,
) -> Result<Person, StoreError> {
    write_transaction(conn, |conn| {
        let household = match crate::households::get(conn, scope, new.household_id) {
            Ok(household) => household,
            Err(StoreError::NotFound) => {
                return Err(FieldError::new(
                    "household_id",
                    "not_found",
                    "no such household in your scope",
                )
                .into());
            }
            Err(other) => return Err(other),
        };
        if let Some(existing) = existing_with_national_id(conn, new.national_id.as_str())? {
            return Err(national_id_taken(existing));
        }
        let household_id = household.id.to_string();
        if new.household_role == HouseholdRole::Head
            && let Some(head) = head_of(conn, &household_id)?
        {
            return Err(StoreError::Exists {
                message: "the household has a head already; change it with POST /api/v1/households/{id}/head".to_owned(),
                existing: head,
            });
        }
        let now = crate::now();
        let row = PersonRow {
            id: PersonId::generate().to_string(),
            national_id: new.national_id.as_str().to_owned(),
            first_name: new.first_name.written,
            last_name: new.last_name.written,
            first_name_normalised: new.first_name.normalised,
            last_name_normalised: new.last_name.normalised,
            birth_date: new.birth_date,
            sex: new.sex.as_str().to_owned(),
            mobile: new.mobile.map(|m| m.to_string()),
            education: new.education.map(|e| e.as_str().to_owned()),
            household_id: Some(household_id.clone()),
            household_role: Some(new.household_role.as_str().to_owned()),
            neighbourhood_id: Some(household.neighbourhood_id.to_string()),
            merged_into: None,
            version: 1,
            created_at: now,
            updated_at: now,
        };
        let inserted: PersonRow = match diesel::insert_into(persons::table)
            .values(&row)
            .returning(persons::all_columns)
            .get_result(conn)
        {
            Ok(row) => row,
            // A concurrent registration of the same national ID won the race.
            Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {
                return Err(StoreError::Conflict(
                    "a person with this national ID or the household's head was registered at the same time; retry".to_owned(),
                ));
            }
            Err(other) => return Err(other.into()),
        };
        diesel::insert_into(household_memberships::table)
            .values((
                household_memberships::id.eq(uuid::Uuid::now_v7().to_string()),
                household_memberships::person_id.eq(&inserted.id),
                household_memberships::household_id.eq(&household_id),
                household_memberships::role.eq(new.household_role.as_str()),
                household_memberships::started_on.eq(new.member_since),
                household_memberships::recorded_at.eq(now),
            ))
            .execute(conn)?;
        let person = to_person(inserted)?;
        crate::changes::record_created(
            conn,
            context,
            Resource::Persons,
            Event {
                action: "person.create",
                entity: "person",
                entity_id: Some(person.id.to_string()),
                before: None,
                after: Some(snapshot(&person)),
            },
        )?;
        Ok(person)
    })
}

pub fn get(conn: &mut DbConnection, scope: &Scope, id: PersonId) -> Result<Person, StoreError> {
    // Two queries of fixed shape rather than a boxed one: fixed shapes are prepared once per
    // connection and cached. The scope is part of the query either way.
    let by_id = persons::table
        .find(id.to_string())
        .select(PersonRow::as_select());
    let row: PersonRow = match scope {
        Scope::All => by_id.get_result(conn)?,
        // A correlated EXISTS probes the (user, area) key once; `IN (subquery)` would build the
        // user's area list on every read.
        Scope::UserAreas(user) => by_id
            .filter(diesel::dsl::exists(
                user_areas::table
                    .filter(user_areas::user_id.eq(user.to_string()))
                    .filter(user_areas::area_id.nullable().eq(persons::neighbourhood_id)),
            ))
            .get_result(conn)?,
    };
    to_person(row)
}

/// The person, as `get`, for a write that adds to her record (a consent, an assessment, an
/// outcome). Her row is locked first as a foreign-key check locks it, which a merge's lock waits
/// for (and the other way round): what is added while she is merged away would stay with the
/// merged record, unseen by the survivor. A merged record takes nothing more.
pub(crate) fn get_to_add_to(
    conn: &mut DbConnection,
    scope: &Scope,
    id: PersonId,
) -> Result<Person, StoreError> {
    lock_rows(conn, "persons", &[id.to_string()], RowLock::KeyShare)?;
    let person = get(conn, scope, id)?;
    if person.merged_into.is_some() {
        return Err(merged_away());
    }
    Ok(person)
}

/// The refusal of a write to a merged record. The survivor is not named: the caller may not be
/// allowed to see her; reading the merged record by id names her to those who are.
fn merged_away() -> StoreError {
    StoreError::Conflict(
        "this record was merged into another; read it by id for the remaining person, and write there"
            .to_owned(),
    )
}

/// Locks the household's row, then its members' rows in id order (PostgreSQL): a change of its
/// members (a split, a change of head) reads them after. A move locks the households, then the
/// person; a merge locks the persons only.
fn lock_household(conn: &mut DbConnection, household: HouseholdId) -> Result<(), StoreError> {
    let household = household.to_string();
    lock_rows(
        conn,
        "households",
        std::slice::from_ref(&household),
        RowLock::NoKeyUpdate,
    )?;
    if let DbConnection::Pg(pg) = conn {
        persons::table
            .filter(persons::household_id.eq(&household))
            .order(persons::id)
            .select(persons::id)
            .for_no_key_update()
            .load::<String>(pg)?;
    }
    Ok(())
}

#[derive(Debug, Clone, Default)]
pub struct PersonFilter {
    pub neighbourhood_id: Option<AreaId>,
    pub household_id: Option<HouseholdId>,
    pub sex: Option<Sex>,
    /// `Some(true)`: only women heads of household; `Some(false)`: everybody else.
    pub woman_head: Option<bool>,
    /// Normalised text found in the first name, the last name or "first last".
    pub name: Option<String>,
    /// Exact, normalised national ID.
    pub national_id: Option<String>,
    /// Only members of households enrolled in this programme …
    pub programme_id: Option<tavana_domain::id::ProgrammeId>,
    /// … whose enrolment is in this state (with or without a programme).
    pub enrolment_state: Option<tavana_domain::enrolment::EnrolmentState>,
}

pub fn list(
    conn: &mut DbConnection,
    scope: &Scope,
    filter: &PersonFilter,
    after: Option<PersonId>,
    limit: usize,
) -> Result<(Vec<Person>, bool), StoreError> {
    // Records merged into another are not listed; they stay readable by id.
    let mut query = scoped(scope)
        .filter(persons::merged_into.is_null())
        .select(PersonRow::as_select());
    if let Some(neighbourhood) = filter.neighbourhood_id {
        query = query.filter(persons::neighbourhood_id.eq(neighbourhood.to_string()));
    }
    if let Some(household) = filter.household_id {
        query = query.filter(persons::household_id.eq(household.to_string()));
    }
    if let Some(sex) = filter.sex {
        query = query.filter(persons::sex.eq(sex.as_str()));
    }
    match filter.woman_head {
        Some(true) => {
            // Literals, not bound values: only then may the planners read the partial index of
            // women heads (a bound value could be anything).
            query = query.filter(diesel::dsl::sql::<diesel::sql_types::Bool>(
                "persons.sex = 'female' AND persons.household_role = 'head'",
            ));
        }
        Some(false) => {
            query = query.filter(
                persons::sex
                    .ne(Sex::Female.as_str())
                    .or(persons::household_role.is_null())
                    .or(persons::household_role.ne(HouseholdRole::Head.as_str())),
            );
        }
        None => {}
    }
    if let Some(name) = &filter.name {
        let pattern = format!("%{}%", escape_like(name));
        query = query.filter(
            persons::first_name_normalised
                .like(pattern.clone())
                .escape('\\')
                .or(persons::last_name_normalised
                    .like(pattern.clone())
                    .escape('\\'))
                .or(persons::first_name_normalised
                    .concat(" ")
                    .concat(persons::last_name_normalised)
                    .like(pattern)
                    .escape('\\')),
        );
    }
    if let Some(national_id) = &filter.national_id {
        query = query.filter(persons::national_id.eq(national_id.clone()));
    }
    // Subqueries of fixed shape (boxed subqueries do not go through the two-backend connection).
    let enrolled = enrolments::table.select(enrolments::household_id.nullable());
    query = match (filter.programme_id, filter.enrolment_state) {
        (Some(programme), Some(state)) => query.filter(
            persons::household_id.eq_any(
                enrolled
                    .filter(enrolments::programme_id.eq(programme.to_string()))
                    .filter(enrolments::state.eq(state.as_str())),
            ),
        ),
        (Some(programme), None) => query.filter(
            persons::household_id
                .eq_any(enrolled.filter(enrolments::programme_id.eq(programme.to_string()))),
        ),
        (None, Some(state)) => query.filter(
            persons::household_id.eq_any(enrolled.filter(enrolments::state.eq(state.as_str()))),
        ),
        (None, None) => query,
    };
    if let Some(after) = after {
        query = query.filter(persons::id.gt(after.to_string()));
    }
    let rows: Vec<PersonRow> = query
        .order(persons::id.asc())
        .limit(crate::page::fetch(limit))
        .load(conn)?;
    let (rows, more) = crate::page::split(rows, limit);
    let list = rows.into_iter().map(to_person).collect::<Result<_, _>>()?;
    Ok((list, more))
}

/// Persons who may be the same as `person`: the same normalised first and last name, born the same
/// year, living in the same district.
pub fn possible_duplicates(
    conn: &mut DbConnection,
    person: &Person,
) -> Result<Vec<PersonId>, StoreError> {
    use chrono::Datelike;
    let Some(neighbourhood) = person.neighbourhood_id else {
        return Ok(Vec::new());
    };
    let district: Option<Option<String>> = areas::table
        .find(neighbourhood.to_string())
        .select(areas::parent_id)
        .first(conn)
        .optional()?;
    let Some(Some(district)) = district else {
        return Ok(Vec::new());
    };
    let (first, last) = (
        tavana_domain::text::normalise(&person.first_name),
        tavana_domain::text::normalise(&person.last_name),
    );
    let year = person.birth_date.year();
    let (Some(from), Some(to)) = (
        NaiveDate::from_ymd_opt(year, 1, 1),
        NaiveDate::from_ymd_opt(year, 12, 31),
    ) else {
        return Ok(Vec::new());
    };
    let neighbourhoods = areas::table
        .filter(areas::parent_id.eq(district))
        .select(areas::id);
    let ids: Vec<String> = persons::table
        .filter(persons::neighbourhood_id.eq_any(neighbourhoods.nullable()))
        .filter(persons::first_name_normalised.eq(first))
        .filter(persons::last_name_normalised.eq(last))
        .filter(persons::birth_date.between(from, to))
        .filter(persons::id.ne(person.id.to_string()))
        .select(persons::id)
        .order(persons::id.asc())
        .limit(20)
        .load(conn)?;
    ids.iter()
        .map(|id| {
            id.parse()
                .map_err(|_| StoreError::Internal(format!("persons: bad id {id}")))
        })
        .collect()
}

/// Changes to a person's own data; `None` keeps a field, `Some(None)` clears an optional one.
#[derive(Debug, Clone, Default)]
pub struct PersonChanges {
    pub first_name: Option<PersonName>,
    pub last_name: Option<PersonName>,
    pub birth_date: Option<NaiveDate>,
    pub sex: Option<Sex>,
    pub mobile: Option<Option<String>>,
    pub education: Option<Option<Education>>,
}

pub fn update(
    conn: &mut DbConnection,
    context: &AuditContext,
    scope: &Scope,
    id: PersonId,
    expected_version: Option<i64>,
    changes: PersonChanges,
) -> Result<Person, StoreError> {
    write_transaction(conn, |conn| {
        let before = get(conn, scope, id)?;
        if let Some(expected) = expected_version
            && expected != before.version
        {
            return Err(StoreError::VersionMismatch {
                current: before.version,
            });
        }
        let first = changes.first_name.unwrap_or_else(|| PersonName {
            normalised: tavana_domain::text::normalise(&before.first_name),
            written: before.first_name.clone(),
        });
        let last = changes.last_name.unwrap_or_else(|| PersonName {
            normalised: tavana_domain::text::normalise(&before.last_name),
            written: before.last_name.clone(),
        });
        let updated = diesel::update(
            persons::table
                .find(id.to_string())
                .filter(persons::version.eq(before.version)),
        )
        .set((
            persons::first_name.eq(first.written),
            persons::first_name_normalised.eq(first.normalised),
            persons::last_name.eq(last.written),
            persons::last_name_normalised.eq(last.normalised),
            persons::birth_date.eq(changes.birth_date.unwrap_or(before.birth_date)),
            persons::sex.eq(changes.sex.unwrap_or(before.sex).as_str()),
            persons::mobile.eq(changes.mobile.unwrap_or_else(|| before.mobile.clone())),
            persons::education.eq(changes
                .education
                .unwrap_or(before.education)
                .map(Education::as_str)),
            persons::version.eq(before.version + 1),
            persons::updated_at.eq(crate::now()),
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
            Resource::Persons,
            &id.to_string(),
            Op::Updated,
        )?;
        audit::append(
            conn,
            context,
            Event {
                action: "person.update",
                entity: "person",
                entity_id: Some(id.to_string()),
                before: Some(snapshot(&before)),
                after: Some(snapshot(&after)),
            },
        )?;
        Ok(after)
    })
}

/// One stay of a person in a household.
#[derive(Debug, Clone, PartialEq, Eq, Queryable)]
pub struct Membership {
    pub household_id: String,
    pub role: String,
    pub started_on: NaiveDate,
    pub ended_on: Option<NaiveDate>,
    pub reason: Option<String>,
}

/// A person's household history, oldest first.
pub fn memberships(
    conn: &mut DbConnection,
    scope: &Scope,
    id: PersonId,
) -> Result<Vec<Membership>, StoreError> {
    get(conn, scope, id)?;
    Ok(household_memberships::table
        .filter(household_memberships::person_id.eq(id.to_string()))
        .select((
            household_memberships::household_id,
            household_memberships::role,
            household_memberships::started_on,
            household_memberships::ended_on,
            household_memberships::reason,
        ))
        .order((
            household_memberships::started_on.asc(),
            household_memberships::recorded_at.asc(),
        ))
        .load(conn)?)
}

/// Moves a person to another household (in scope) with a role, from `on`: the open membership
/// ends, a new one starts, and the person's current household changes. Moving the head out leaves
/// the old household without one.
/// Where a person moves, as what, from when and why.
#[derive(Debug, Clone)]
pub struct Move {
    pub household: HouseholdId,
    pub role: HouseholdRole,
    pub on: NaiveDate,
    pub reason: Option<String>,
}

pub fn move_to(
    conn: &mut DbConnection,
    context: &AuditContext,
    scope: &Scope,
    id: PersonId,
    to: Move,
) -> Result<Person, StoreError> {
    let Move {
        household: target,
        role,
        on,
        reason,
    } = to;
    write_transaction(conn, |conn| {
        let current = get(conn, scope, id)?;
        // The household left and the one joined, under their rows' locks, then the person's (see
        // `split`); she is read again once they are held.
        let households: Vec<String> = current
            .household_id
            .into_iter()
            .chain([target])
            .map(|h| h.to_string())
            .collect();
        lock_rows(conn, "households", &households, RowLock::NoKeyUpdate)?;
        lock_rows(conn, "persons", &[id.to_string()], RowLock::NoKeyUpdate)?;
        let before = get(conn, scope, id)?;
        if before.merged_into.is_some() {
            return Err(merged_away());
        }
        if before.household_id != current.household_id {
            return Err(StoreError::Conflict(
                "the person moved to another household meanwhile; read the person again".to_owned(),
            ));
        }
        let household = match crate::households::get(conn, scope, target) {
            Ok(household) => household,
            Err(StoreError::NotFound) => {
                return Err(FieldError::new(
                    "household_id",
                    "not_found",
                    "no such household in your scope",
                )
                .into());
            }
            Err(other) => return Err(other),
        };
        if role == HouseholdRole::Head
            && let Some(head) = head_of(conn, &household.id.to_string())?
            && head != id.to_string()
        {
            return Err(StoreError::Exists {
                message: "that household has a head already; change it with POST /api/v1/households/{id}/head".to_owned(),
                existing: head,
            });
        }
        end_open_membership(conn, id, on, reason.clone())?;
        start_membership(conn, id, household.id, role, on, reason)?;
        let touched = set_current(
            conn,
            id,
            Some((household.id, role, household.neighbourhood_id)),
        )?;
        crate::changes::visibility_changed(conn, context, &id.to_string(), &touched)?;
        let after = get(conn, scope, id).or_else(|_| get(conn, &Scope::All, id))?;
        audit::append(
            conn,
            context,
            Event {
                action: "person.move",
                entity: "person",
                entity_id: Some(id.to_string()),
                before: Some(snapshot(&before)),
                after: Some(snapshot(&after)),
            },
        )?;
        Ok(after)
    })
}

pub(crate) fn end_open_membership(
    conn: &mut DbConnection,
    id: PersonId,
    on: NaiveDate,
    reason: Option<String>,
) -> Result<(), StoreError> {
    let open: Option<NaiveDate> = household_memberships::table
        .filter(household_memberships::person_id.eq(id.to_string()))
        .filter(household_memberships::ended_on.is_null())
        .select(household_memberships::started_on)
        .first(conn)
        .optional()?;
    if let Some(started) = open
        && on < started
    {
        return Err(FieldError::new(
            "on",
            "before_start",
            format!("the current membership started on {started}"),
        )
        .into());
    }
    diesel::update(
        household_memberships::table
            .filter(household_memberships::person_id.eq(id.to_string()))
            .filter(household_memberships::ended_on.is_null()),
    )
    .set((
        household_memberships::ended_on.eq(on),
        household_memberships::reason.eq(reason),
    ))
    .execute(conn)?;
    Ok(())
}

fn start_membership(
    conn: &mut DbConnection,
    id: PersonId,
    household: HouseholdId,
    role: HouseholdRole,
    on: NaiveDate,
    reason: Option<String>,
) -> Result<(), StoreError> {
    diesel::insert_into(household_memberships::table)
        .values((
            household_memberships::id.eq(uuid::Uuid::now_v7().to_string()),
            household_memberships::person_id.eq(id.to_string()),
            household_memberships::household_id.eq(household.to_string()),
            household_memberships::role.eq(role.as_str()),
            household_memberships::started_on.eq(on),
            household_memberships::reason.eq(reason),
            household_memberships::recorded_at.eq(crate::now()),
        ))
        .execute(conn)?;
    Ok(())
}

/// Sets the person's current household and role. Returns the households left and joined, for
/// `changes::visibility_changed`, which the caller runs once every row of its change is written:
/// it takes the audit log's order lock, which writers take last (see `enrolments::move_row`).
fn set_current(
    conn: &mut DbConnection,
    id: PersonId,
    current: Option<(HouseholdId, HouseholdRole, AreaId)>,
) -> Result<Vec<String>, StoreError> {
    let (household, role, neighbourhood) = match current {
        Some((h, r, n)) => (Some(h.to_string()), Some(r.as_str()), Some(n.to_string())),
        None => (None, None, None),
    };
    let before: Option<String> = persons::table
        .find(id.to_string())
        .select(persons::household_id)
        .first::<Option<String>>(conn)
        .optional()?
        .flatten();
    diesel::update(persons::table.find(id.to_string()))
        .set((
            persons::household_id.eq(&household),
            persons::household_role.eq(role),
            persons::neighbourhood_id.eq(neighbourhood),
            persons::version.eq(persons::version + 1),
            persons::updated_at.eq(crate::now()),
        ))
        .execute(conn)
        .map_err(|e| match e {
            DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
                StoreError::Conflict("the household has a head already".to_owned())
            }
            other => other.into(),
        })?;
    // Moves, heads changing and splits all pass here. The households left and joined may gain or
    // lose their head, and with it what partners see of them.
    Ok(before.into_iter().chain(household).collect())
}

/// Makes `new_head` (a member of the household) its head from `on`; the previous head, if any,
/// becomes `previous_head_role`. Both changes are recorded in the membership history.
pub fn change_head(
    conn: &mut DbConnection,
    context: &AuditContext,
    scope: &Scope,
    household: HouseholdId,
    new_head: PersonId,
    previous_head_role: HouseholdRole,
    on: NaiveDate,
) -> Result<(), StoreError> {
    write_transaction(conn, |conn| {
        // A household's members change under its row's lock and theirs (see `split`).
        lock_household(conn, household)?;
        let household = crate::households::get(conn, scope, household)?;
        let household_id = household.id.to_string();
        let person = get(conn, scope, new_head)?;
        if person.household_id != Some(household.id) {
            return Err(FieldError::new(
                "person_id",
                "not_a_member",
                "the person is not a member of this household",
            )
            .into());
        }
        if person.household_role == Some(HouseholdRole::Head) {
            return Ok(());
        }
        if previous_head_role == HouseholdRole::Head {
            return Err(FieldError::new(
                "previous_head_role",
                "invalid",
                "the previous head needs another role",
            )
            .into());
        }
        let old_head = head_of(conn, &household_id)?;
        let reason = Some("change of head".to_owned());
        // Told to the changes feed once both persons' rows are written.
        let mut touched = Vec::new();
        // The old head steps down first, so that the one-head rule holds at every statement.
        if let Some(old) = &old_head {
            let old: PersonId = old
                .parse()
                .map_err(|_| StoreError::Internal("persons: bad id".to_owned()))?;
            end_open_membership(conn, old, on, reason.clone())?;
            start_membership(
                conn,
                old,
                household.id,
                previous_head_role,
                on,
                reason.clone(),
            )?;
            let households = set_current(
                conn,
                old,
                Some((household.id, previous_head_role, household.neighbourhood_id)),
            )?;
            touched.push((old, households));
        }
        end_open_membership(conn, new_head, on, reason.clone())?;
        start_membership(
            conn,
            new_head,
            household.id,
            HouseholdRole::Head,
            on,
            reason,
        )?;
        let households = set_current(
            conn,
            new_head,
            Some((
                household.id,
                HouseholdRole::Head,
                household.neighbourhood_id,
            )),
        )?;
        touched.push((new_head, households));
        for (person, households) in &touched {
            crate::changes::visibility_changed(conn, context, &person.to_string(), households)?;
        }
        crate::changes::record(
            conn,
            context,
            Resource::Households,
            &household_id,
            Op::Updated,
        )?;
        audit::append(
            conn,
            context,
            Event {
                action: "household.change_head",
                entity: "household",
                entity_id: Some(household_id),
                before: Some(json!({"head": old_head})),
                after: Some(
                    json!({"head": new_head.to_string(), "previous_head_role": previous_head_role.as_str(), "on": on.to_string()}),
                ),
            },
        )
    })
}

/// Splits a household: the given members (one of them its head) move into a new household at
/// `address` in the same neighbourhood, from `on`. The history of every member records the move.
/// The new household of a split and who goes there, as what, from when.
#[derive(Debug, Clone)]
pub struct Split {
    pub address: tavana_domain::household::Address,
    pub postal_code: Option<String>,
    pub members: Vec<(PersonId, HouseholdRole)>,
    pub on: NaiveDate,
}

pub fn split(
    conn: &mut DbConnection,
    context: &AuditContext,
    scope: &Scope,
    from: HouseholdId,
    split: Split,
) -> Result<tavana_domain::household::Household, StoreError> {
    let Split {
        address,
        postal_code,
        members,
        on,
    } = split;
    write_transaction(conn, |conn| {
        // Its members are read and counted under the locks of the household's row and then of
        // theirs, which every change of them takes in that order (a move, a change of head,
        // another split; a merge locks the persons): two splits at once each counted members the
        // other took away, and left nobody.
        lock_household(conn, from)?;
        let source = crate::households::get(conn, scope, from)?;
        let heads = members
            .iter()
            .filter(|(_, role)| *role == HouseholdRole::Head)
            .count();
        if heads != 1 {
            return Err(FieldError::new(
                "members",
                "one_head",
                "exactly one of the members must be the new household's head",
            )
            .into());
        }
        let mut seen = Vec::new();
        for (person, _) in &members {
            if seen.contains(person) {
                return Err(
                    FieldError::new("members", "repeated", "a person is listed twice").into(),
                );
            }
            seen.push(*person);
            let member = get(conn, scope, *person)?;
            if member.household_id != Some(source.id) {
                return Err(FieldError::new(
                    "members",
                    "not_a_member",
                    format!("{person} is not a member of this household"),
                )
                .into());
            }
        }
        let remaining: i64 = persons::table
            .filter(persons::household_id.eq(source.id.to_string()))
            .count()
            .get_result(conn)?;
        if usize::try_from(remaining).unwrap_or(0) <= members.len() {
            return Err(FieldError::new(
                "members",
                "nobody_left",
                "at least one member must stay in the household",
            )
            .into());
        }
        let new = tavana_domain::household::NewHousehold {
            neighbourhood_id: source.neighbourhood_id,
            address,
            postal_code,
        };
        // Every row first, then the records (they take the audit log's order lock).
        let created = crate::households::insert(conn, scope, new)?;
        let reason = Some(format!("split from household {}", source.id));
        let mut touched = Vec::new();
        for (person, role) in &members {
            end_open_membership(conn, *person, on, reason.clone())?;
            start_membership(conn, *person, created.id, *role, on, reason.clone())?;
            let households = set_current(
                conn,
                *person,
                Some((created.id, *role, created.neighbourhood_id)),
            )?;
            touched.push((*person, households));
        }
        crate::households::record_created(conn, context, &created)?;
        for (person, households) in &touched {
            crate::changes::visibility_changed(conn, context, &person.to_string(), households)?;
        }
        crate::changes::record(
            conn,
            context,
            Resource::Households,
            &source.id.to_string(),
            Op::Updated,
        )?;
        audit::append(
            conn,
            context,
            Event {
                action: "household.split",
                entity: "household",
                entity_id: Some(source.id.to_string()),
                before: None,
                after: Some(json!({
                    "new_household": created.id.to_string(),
                    "members": members.iter().map(|(p, r)| json!({"person_id": p.to_string(), "role": r.as_str()})).collect::<Vec<_>>(),
                    "on": on.to_string(),
                })),
            },
        )?;
        Ok(created)
    })
}
