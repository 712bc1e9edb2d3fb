//! The `users` table and each user's area scope (`user_areas`).

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use serde_json::json;
use tavana_domain::access::Role;
use tavana_domain::id::{AreaId, OrganisationId, UserId};
use tavana_domain::organisation::User;

use crate::audit::{self, AuditContext, Event};
use crate::db::DbConnection;
use crate::error::StoreError;
use crate::schema::{areas, organisations, user_areas, users};
use crate::tokens;
use crate::tx::write_transaction;

#[derive(Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = users)]
struct UserRow {
    id: String,
    username: String,
    display_name: String,
    password_hash: String,
    role: String,
    organisation_id: String,
    active: bool,
    version: i64,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

fn to_user(row: UserRow, areas: Vec<AreaId>) -> Result<User, StoreError> {
    let corrupt = |what: &str| StoreError::Internal(format!("users row {}: bad {what}", row.id));
    Ok(User {
        id: row.id.parse().map_err(|_| corrupt("id"))?,
        role: row.role.parse().map_err(|_| corrupt("role"))?,
        organisation_id: row
            .organisation_id
            .parse()
            .map_err(|_| corrupt("organisation_id"))?,
        username: row.username,
        display_name: row.display_name,
        areas,
        active: row.active,
        version: row.version,
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}

/// What the audit log keeps of a user: never the password hash.
fn snapshot(user: &User) -> serde_json::Value {
    json!({
        "id": user.id.to_string(),
        "username": user.username,
        "display_name": user.display_name,
        "role": user.role.as_str(),
        "organisation_id": user.organisation_id.to_string(),
        "areas": user.areas.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "active": user.active,
        "version": user.version,
    })
}

fn areas_of(conn: &mut DbConnection, user_id: &str) -> Result<Vec<AreaId>, StoreError> {
    let ids: Vec<String> = user_areas::table
        .filter(user_areas::user_id.eq(user_id))
        .select(user_areas::area_id)
        .order(user_areas::area_id.asc())
        .load(conn)?;
    ids.iter()
        .map(|id| {
            id.parse()
                .map_err(|_| StoreError::Internal(format!("user_areas: bad area id {id}")))
        })
        .collect()
}

/// Checks that the organisation and every area exist, so the answer is a 422 naming the field
/// rather than a foreign-key error.
fn check_references(
    conn: &mut DbConnection,
    organisation_id: OrganisationId,
    role: Role,
    area_ids: &[AreaId],
) -> Result<(), StoreError> {
    let org_exists: i64 = organisations::table
        .filter(organisations::id.eq(organisation_id.to_string()))
        .count()
        .get_result(conn)?;
    if org_exists == 0 {
        return Err(tavana_domain::FieldError::new(
            "organisation_id",
            "not_found",
            "no such organisation",
        )
        .into());
    }
    let wanted: Vec<String> = area_ids.iter().map(ToString::to_string).collect();
    let mut query = areas::table.filter(areas::id.eq_any(&wanted)).into_boxed();
    // An area-scoped role works in neighbourhoods: its scope is a list of them.
    if role.is_area_scoped() {
        query = query.filter(areas::level.eq("neighbourhood"));
    }
    let found: i64 = query.count().get_result(conn)?;
    if usize::try_from(found).ok() != Some(wanted.len()) {
        let message = if role.is_area_scoped() {
            "every area must be an existing neighbourhood"
        } else {
            "one or more areas do not exist"
        };
        return Err(tavana_domain::FieldError::new("areas", "not_found", message).into());
    }
    Ok(())
}

fn set_areas(
    conn: &mut DbConnection,
    user_id: &str,
    area_ids: &[AreaId],
) -> Result<(), StoreError> {
    diesel::delete(user_areas::table.filter(user_areas::user_id.eq(user_id))).execute(conn)?;
    // One row at a time: multi-row inserts do not compile through the two-backend connection.
    for area in area_ids {
        diesel::insert_into(user_areas::table)
            .values((
                user_areas::user_id.eq(user_id),
                user_areas::area_id.eq(area.to_string()),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// A user to create. The password is already hashed.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub username: String,
    pub display_name: String,
    pub password_hash: String,
    pub role: Role,
    pub organisation_id: OrganisationId,
    pub areas: Vec<AreaId>,
}

pub fn create(
    conn: &mut DbConnection,
    context: &AuditContext,
    new: NewUser,
) -> Result<User, StoreError> {
    write_transaction(conn, |conn| {
        let mut areas = new.areas.clone();
        areas.sort();
        areas.dedup();
        check_references(conn, new.organisation_id, new.role, &areas)?;
        let now = crate::now();
        let row = UserRow {
            id: UserId::generate().to_string(),
            username: new.username.clone(),
            display_name: new.display_name,
            password_hash: new.password_hash,
            role: new.role.as_str().to_owned(),
            organisation_id: new.organisation_id.to_string(),
            active: true,
            version: 1,
            created_at: now,
            updated_at: now,
        };
        let inserted: UserRow = diesel::insert_into(users::table)
            .values(&row)
            .returning(users::all_columns)
            .get_result(conn)
            .map_err(|e| match e {
                DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
                    StoreError::Conflict(format!("the username {} is taken", new.username))
                }
                other => other.into(),
            })?;
        set_areas(conn, &inserted.id, &areas)?;
        let user = to_user(inserted, areas)?;
        audit::append(
            conn,
            context,
            Event {
                action: "user.create",
                entity: "user",
                entity_id: Some(user.id.to_string()),
                before: None,
                after: Some(snapshot(&user)),
            },
        )?;
        Ok(user)
    })
}

pub fn get(conn: &mut DbConnection, id: UserId) -> Result<User, StoreError> {
    let row: UserRow = users::table
        .find(id.to_string())
        .select(UserRow::as_select())
        .first(conn)?;
    let areas = areas_of(conn, &row.id)?;
    to_user(row, areas)
}

/// The user and their password hash, for login. `None` when no such username exists.
pub fn credentials(
    conn: &mut DbConnection,
    username: &str,
) -> Result<Option<(User, String)>, StoreError> {
    let Some(mut row) = users::table
        .filter(users::username.eq(username))
        .select(UserRow::as_select())
        .first::<UserRow>(conn)
        .optional()?
    else {
        // The same queries as for a known user, so the answer takes the same time.
        areas_of(conn, "")?;
        return Ok(None);
    };
    let hash = std::mem::take(&mut row.password_hash);
    let areas = areas_of(conn, &row.id)?;
    Ok(Some((to_user(row, areas)?, hash)))
}

/// What a user's access token rests on, as it stands now: (role, organisation, active). `None`
/// when there is no such user.
pub fn standing(
    conn: &mut DbConnection,
    id: UserId,
) -> Result<Option<(String, String, bool)>, StoreError> {
    Ok(users::table
        .find(id.to_string())
        .select((users::role, users::organisation_id, users::active))
        .first(conn)
        .optional()?)
}

pub fn count(conn: &mut DbConnection) -> Result<i64, StoreError> {
    Ok(users::table.count().get_result(conn)?)
}

#[derive(Debug, Clone, Default)]
pub struct UserFilter {
    pub role: Option<Role>,
    pub organisation_id: Option<OrganisationId>,
    pub active: Option<bool>,
}

pub fn list(
    conn: &mut DbConnection,
    filter: &UserFilter,
    after: Option<UserId>,
    limit: usize,
) -> Result<(Vec<User>, bool), StoreError> {
    let mut query = users::table.select(UserRow::as_select()).into_boxed();
    if let Some(role) = filter.role {
        query = query.filter(users::role.eq(role.as_str()));
    }
    if let Some(org) = filter.organisation_id {
        query = query.filter(users::organisation_id.eq(org.to_string()));
    }
    if let Some(active) = filter.active {
        query = query.filter(users::active.eq(active));
    }
    if let Some(after) = after {
        query = query.filter(users::id.gt(after.to_string()));
    }
    let rows: Vec<UserRow> = query
        .order(users::id.asc())
        .limit(crate::page::fetch(limit))
        .load(conn)?;
    let (rows, more) = crate::page::split(rows, limit);
    let mut result = Vec::with_capacity(rows.len());
    for row in rows {
        let areas = areas_of(conn, &row.id)?;
        result.push(to_user(row, areas)?);
    }
    Ok((result, more))
}

/// Changes an administrator may make; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct UserChanges {
    pub display_name: Option<String>,
    pub role: Option<Role>,
    pub organisation_id: Option<OrganisationId>,
    pub areas: Option<Vec<AreaId>>,
    pub active: Option<bool>,
}

/// Applies `changes` if the user is still at `expected_version`. Deactivating a user revokes
/// their refresh tokens.
pub fn update(
    conn: &mut DbConnection,
    context: &AuditContext,
    id: UserId,
    expected_version: Option<i64>,
    changes: UserChanges,
) -> Result<User, StoreError> {
    write_transaction(conn, |conn| {
        let before = get(conn, id)?;
        if let Some(expected) = expected_version
            && expected != before.version
        {
            return Err(StoreError::VersionMismatch {
                current: before.version,
            });
        }
        let organisation_id = changes.organisation_id.unwrap_or(before.organisation_id);
        let role = changes.role.unwrap_or(before.role);
        let mut areas = changes
            .areas
            .clone()
            .unwrap_or_else(|| before.areas.clone());
        areas.sort();
        areas.dedup();
        check_references(conn, organisation_id, role, &areas)?;
        let active = changes.active.unwrap_or(before.active);
        let updated = diesel::update(
            users::table
                .find(id.to_string())
                .filter(users::version.eq(before.version)),
        )
        .set((
            users::display_name.eq(changes
                .display_name
                .clone()
                .unwrap_or_else(|| before.display_name.clone())),
            users::role.eq(role.as_str()),
            users::organisation_id.eq(organisation_id.to_string()),
            users::active.eq(active),
            users::version.eq(before.version + 1),
            users::updated_at.eq(crate::now()),
        ))
        .execute(conn)?;
        // Someone else changed the user since it was read.
        if updated == 0 {
            return Err(StoreError::VersionMismatch {
                current: before.version + 1,
            });
        }
        if changes.areas.is_some() {
            set_areas(conn, &id.to_string(), &areas)?;
        }
        if !active {
            tokens::revoke_user(conn, id)?;
        }
        let after = get(conn, id)?;
        audit::append(
            conn,
            context,
            Event {
                action: "user.update",
                entity: "user",
                entity_id: Some(id.to_string()),
                before: Some(snapshot(&before)),
                after: Some(snapshot(&after)),
            },
        )?;
        Ok(after)
    })
}

/// Replaces the password hash `replaced` (the one the current password was checked against) and
/// revokes the user's refresh tokens (sessions elsewhere end). Returns false, and changes
/// nothing, when the hash is no longer `replaced`: another change came first, and the current
/// password given is no longer the current one.
pub fn set_password(
    conn: &mut DbConnection,
    context: &AuditContext,
    id: UserId,
    replaced: &str,
    password_hash: &str,
) -> Result<bool, StoreError> {
    write_transaction(conn, |conn| {
        let changed = diesel::update(
            users::table
                .find(id.to_string())
                .filter(users::password_hash.eq(replaced)),
        )
        .set((
            users::password_hash.eq(password_hash),
            users::version.eq(users::version + 1),
            users::updated_at.eq(crate::now()),
        ))
        .execute(conn)?;
        if changed == 0 {
            return Ok(false);
        }
        tokens::revoke_user(conn, id)?;
        audit::append(
            conn,
            context,
            Event {
                action: "user.password_change",
                entity: "user",
                entity_id: Some(id.to_string()),
                before: None,
                after: None,
            },
        )?;
        Ok(true)
    })
}
