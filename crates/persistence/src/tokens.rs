//! Refresh tokens (rotated on every use, families revoked on reuse) and failed-login records.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use tavana_domain::id::UserId;

use crate::audit::{self, AuditContext, Event};
use crate::db::DbConnection;
use crate::error::StoreError;
use crate::schema::{login_failures, refresh_tokens, users};
use crate::tx::{lock, write_transaction};

#[derive(Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = refresh_tokens)]
struct RefreshTokenRow {
    id: String,
    token_hash: String,
    family_id: String,
    user_id: String,
    issued_at: NaiveDateTime,
    expires_at: NaiveDateTime,
    used_at: Option<NaiveDateTime>,
    revoked_at: Option<NaiveDateTime>,
}

/// Stores a new refresh token (its hash) in `family_id`.
pub fn issue(
    conn: &mut DbConnection,
    user_id: UserId,
    family_id: &str,
    token_hash: &str,
    expires_at: NaiveDateTime,
) -> Result<(), StoreError> {
    let row = RefreshTokenRow {
        id: uuid::Uuid::now_v7().to_string(),
        token_hash: token_hash.to_owned(),
        family_id: family_id.to_owned(),
        user_id: user_id.to_string(),
        issued_at: crate::now(),
        expires_at,
        used_at: None,
        revoked_at: None,
    };
    diesel::insert_into(refresh_tokens::table)
        .values(&row)
        .execute(conn)?;
    Ok(())
}

/// What presenting a refresh token led to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// The token was valid; it is now used and `new_hash` replaces it in the same family.
    Rotated { user_id: UserId, family_id: String },
    /// The token had been used already: somebody replayed it. Its whole family is now revoked.
    Reused { user_id: UserId },
    /// Unknown, expired or revoked.
    Invalid,
}

/// After a successful login against `checked_hash`: stores the first refresh token of a new
/// family, clears the username's failed attempts (and prunes everybody's old ones), and records
/// the login. Returns false, and starts nothing, when the user's password changed or the user was
/// deactivated since the password was checked: those end every session under the same lock
/// (`revoke_user`), and a session started after them would outlive them.
#[allow(clippy::too_many_arguments)]
pub fn start_session(
    conn: &mut DbConnection,
    context: &AuditContext,
    user_id: UserId,
    checked_hash: &str,
    username: &str,
    token_hash: &str,
    expires_at: NaiveDateTime,
    prune_before: NaiveDateTime,
) -> Result<bool, StoreError> {
    write_transaction(conn, |conn| {
        lock(conn, &format!("sessions:{user_id}"))?;
        let now: Option<(String, bool)> = users::table
            .find(user_id.to_string())
            .select((users::password_hash, users::active))
            .first(conn)
            .optional()?;
        if now != Some((checked_hash.to_owned(), true)) {
            return Ok(false);
        }
        let family_id = uuid::Uuid::now_v7().to_string();
        issue(conn, user_id, &family_id, token_hash, expires_at)?;
        clear_failures(conn, username, prune_before)?;
        audit::append(
            conn,
            context,
            Event {
                action: "auth.login",
                entity: "user",
                entity_id: Some(user_id.to_string()),
                before: None,
                after: None,
            },
        )?;
        Ok(true)
    })
}

/// Uses `token_hash` once and stores `new_hash` in its place. A reuse is recorded in the audit log.
pub fn rotate(
    conn: &mut DbConnection,
    context: &AuditContext,
    token_hash: &str,
    new_hash: &str,
    new_expires_at: NaiveDateTime,
) -> Result<Rotation, StoreError> {
    write_transaction(conn, |conn| {
        let now = crate::now();
        let Some(token) = refresh_tokens::table
            .filter(refresh_tokens::token_hash.eq(token_hash))
            .select(RefreshTokenRow::as_select())
            .first::<RefreshTokenRow>(conn)
            .optional()?
        else {
            return Ok(Rotation::Invalid);
        };
        let user_id: UserId = token
            .user_id
            .parse()
            .map_err(|_| StoreError::Internal("refresh_tokens: bad user id".to_owned()))?;
        // One user's session changes (rotation, logout, revocation) happen one at a time; read the
        // token again under the lock, so a revocation committed meanwhile is seen.
        lock(conn, &format!("sessions:{user_id}"))?;
        let token: RefreshTokenRow = refresh_tokens::table
            .find(&token.id)
            .select(RefreshTokenRow::as_select())
            .first(conn)?;
        if token.revoked_at.is_some() || token.expires_at <= now {
            return Ok(Rotation::Invalid);
        }
        let reused = |conn: &mut DbConnection| -> Result<Rotation, StoreError> {
            revoke_family(conn, &token.family_id)?;
            audit::append(
                conn,
                context,
                Event {
                    action: "auth.refresh_reuse",
                    entity: "user",
                    entity_id: Some(user_id.to_string()),
                    before: None,
                    after: Some(serde_json::json!({"revoked_family": token.family_id})),
                },
            )?;
            Ok(Rotation::Reused { user_id })
        };
        if token.used_at.is_some() {
            return reused(conn);
        }
        // Only one of two concurrent uses of the same token can flip `used_at`.
        let marked = diesel::update(
            refresh_tokens::table
                .find(&token.id)
                .filter(refresh_tokens::used_at.is_null())
                .filter(refresh_tokens::revoked_at.is_null()),
        )
        .set(refresh_tokens::used_at.eq(now))
        .execute(conn)?;
        if marked == 0 {
            return reused(conn);
        }
        issue(conn, user_id, &token.family_id, new_hash, new_expires_at)?;
        Ok(Rotation::Rotated {
            user_id,
            family_id: token.family_id,
        })
    })
}

fn revoke_family(conn: &mut DbConnection, family_id: &str) -> Result<(), StoreError> {
    diesel::update(
        refresh_tokens::table
            .filter(refresh_tokens::family_id.eq(family_id))
            .filter(refresh_tokens::revoked_at.is_null()),
    )
    .set(refresh_tokens::revoked_at.eq(crate::now()))
    .execute(conn)?;
    Ok(())
}

/// Revokes the family of `token_hash` (logout). Returns the user, or `None` for an unknown token.
pub fn revoke_by_token(
    conn: &mut DbConnection,
    context: &AuditContext,
    token_hash: &str,
) -> Result<Option<UserId>, StoreError> {
    write_transaction(conn, |conn| {
        let found: Option<(String, String)> = refresh_tokens::table
            .filter(refresh_tokens::token_hash.eq(token_hash))
            .select((refresh_tokens::family_id, refresh_tokens::user_id))
            .first(conn)
            .optional()?;
        let Some((family_id, user_id)) = found else {
            return Ok(None);
        };
        lock(conn, &format!("sessions:{user_id}"))?;
        revoke_family(conn, &family_id)?;
        audit::append(
            conn,
            context,
            Event {
                action: "auth.logout",
                entity: "user",
                entity_id: Some(user_id.clone()),
                before: None,
                after: None,
            },
        )?;
        Ok(user_id.parse().ok())
    })
}

/// Revokes every refresh token of a user (deactivation, password change). Call it inside the
/// transaction that makes the change.
pub fn revoke_user(conn: &mut DbConnection, user_id: UserId) -> Result<(), StoreError> {
    lock(conn, &format!("sessions:{user_id}"))?;
    diesel::update(
        refresh_tokens::table
            .filter(refresh_tokens::user_id.eq(user_id.to_string()))
            .filter(refresh_tokens::revoked_at.is_null()),
    )
    .set(refresh_tokens::revoked_at.eq(crate::now()))
    .execute(conn)?;
    Ok(())
}

/// Failed logins since `since` for this username and from this address, and the oldest of them
/// (which tells when the window frees up).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureCounts {
    pub by_username: i64,
    pub by_address: i64,
    pub oldest_username: Option<NaiveDateTime>,
    pub oldest_address: Option<NaiveDateTime>,
}

pub fn failures_since(
    conn: &mut DbConnection,
    username: &str,
    address: &str,
    since: NaiveDateTime,
) -> Result<FailureCounts, StoreError> {
    let recent = login_failures::table.filter(login_failures::at.gt(since));
    let (by_username, oldest_username): (i64, Option<NaiveDateTime>) = recent
        .filter(login_failures::username.eq(username))
        .select((
            diesel::dsl::count_star(),
            diesel::dsl::min(login_failures::at),
        ))
        .first(conn)?;
    let (by_address, oldest_address): (i64, Option<NaiveDateTime>) = recent
        .filter(login_failures::address.eq(address))
        .select((
            diesel::dsl::count_star(),
            diesel::dsl::min(login_failures::at),
        ))
        .first(conn)?;
    Ok(FailureCounts {
        by_username,
        by_address,
        oldest_username,
        oldest_address,
    })
}

pub fn record_failure(
    conn: &mut DbConnection,
    username: &str,
    address: &str,
) -> Result<(), StoreError> {
    diesel::insert_into(login_failures::table)
        .values((
            login_failures::id.eq(uuid::Uuid::now_v7().to_string()),
            login_failures::username.eq(username),
            login_failures::address.eq(address),
            login_failures::at.eq(crate::now()),
        ))
        .execute(conn)?;
    Ok(())
}

/// A successful login clears the username's failures; old rows of everybody are pruned.
pub fn clear_failures(
    conn: &mut DbConnection,
    username: &str,
    older_than: NaiveDateTime,
) -> Result<(), StoreError> {
    diesel::delete(
        login_failures::table.filter(
            login_failures::username
                .eq(username)
                .or(login_failures::at.lt(older_than)),
        ),
    )
    .execute(conn)?;
    Ok(())
}
