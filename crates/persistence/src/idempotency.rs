//! `Idempotency-Key`: a create and the record of its answer commit in one transaction, so a
//! retried request gets the stored answer and nothing is created twice.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::DbConnection;
use crate::error::StoreError;
use crate::schema::idempotency_keys;
use crate::tx::write_transaction;

/// The key of one request: who sent it, the key they chose, and a hash of what they sent.
#[derive(Debug, Clone)]
pub struct IdempotentRequest {
    pub principal: String,
    pub key: String,
    pub request_hash: String,
}

/// An answer as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    pub location: Option<String>,
    pub body: String,
}

/// What running a create under a key gave.
#[derive(Debug)]
pub enum Outcome<T> {
    /// The first time: the create ran.
    Fresh(T),
    /// A retry with the same key and body: the first answer.
    Replayed(StoredResponse),
}

#[derive(Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = idempotency_keys)]
struct KeyRow {
    principal: String,
    key: String,
    request_hash: String,
    status: i32,
    location: Option<String>,
    body: String,
    created_at: NaiveDateTime,
}

fn stored(
    conn: &mut DbConnection,
    request: &IdempotentRequest,
) -> Result<Option<StoredResponse>, StoreError> {
    let row: Option<KeyRow> = idempotency_keys::table
        .find((&request.principal, &request.key))
        .select(KeyRow::as_select())
        .first(conn)
        .optional()?;
    let Some(row) = row else { return Ok(None) };
    if row.request_hash != request.request_hash {
        return Err(tavana_domain::FieldError::new(
            "Idempotency-Key",
            "reused",
            "this key was used for a different request",
        )
        .into());
    }
    Ok(Some(StoredResponse {
        status: u16::try_from(row.status).unwrap_or(200),
        location: row.location,
        body: row.body,
    }))
}

/// Runs `create` once per key: `render` turns its result into the answer that is stored with it.
pub fn run<T>(
    conn: &mut DbConnection,
    request: Option<&IdempotentRequest>,
    create: impl FnOnce(&mut DbConnection) -> Result<T, StoreError>,
    render: impl FnOnce(&T) -> Result<StoredResponse, StoreError>,
) -> Result<Outcome<T>, StoreError> {
    let Some(request) = request else {
        return create(conn).map(Outcome::Fresh);
    };
    let result = write_transaction(conn, |conn| {
        if let Some(previous) = stored(conn, request)? {
            return Ok(Outcome::Replayed(previous));
        }
        let value = create(conn)?;
        let response = render(&value)?;
        diesel::insert_into(idempotency_keys::table)
            .values(KeyRow {
                principal: request.principal.clone(),
                key: request.key.clone(),
                request_hash: request.request_hash.clone(),
                status: i32::from(response.status),
                location: response.location,
                body: response.body,
                created_at: crate::now(),
            })
            .execute(conn)?;
        // Keys are kept for a day; forgetting the old ones here keeps the table small without a
        // scheduler.
        prune(conn, crate::now() - chrono::Duration::hours(KEEP_HOURS))?;
        Ok(Outcome::Fresh(value))
    });
    match result {
        // Two requests with the same key raced (PostgreSQL): the loser's transaction, create
        // included, rolled back; answer with the winner's record.
        Err(StoreError::Conflict(message)) => match stored(conn, request)? {
            Some(previous) => Ok(Outcome::Replayed(previous)),
            None => Err(StoreError::Conflict(message)),
        },
        other => other,
    }
}

/// How long a key is remembered.
pub const KEEP_HOURS: i64 = 24;

/// Forgets keys older than `before`.
pub fn prune(conn: &mut DbConnection, before: NaiveDateTime) -> Result<usize, StoreError> {
    Ok(
        diesel::delete(idempotency_keys::table.filter(idempotency_keys::created_at.lt(before)))
            .execute(conn)?,
    )
}
