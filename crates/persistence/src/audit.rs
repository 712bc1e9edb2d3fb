//! The audit log: append-only, each row chained to the previous one by a SHA-256 hash, so that an
//! edited or deleted row is detected by [`verify`].

use chrono::NaiveDateTime;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::db::DbConnection;
use crate::error::StoreError;
use crate::schema::audit_log;

/// The hash a chain starts from.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Key of the PostgreSQL transaction lock that orders appends (public for the tests that hold it).
pub const CHAIN_LOCK_KEY: i64 = 0x6175_6469_7400; // "audit"

/// Who acted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    User(String),
    Client(String),
    /// The service itself or an administrator at the command line.
    System,
}

impl Actor {
    pub fn kind(&self) -> &'static str {
        match self {
            Actor::User(_) => "user",
            Actor::Client(_) => "client",
            Actor::System => "system",
        }
    }

    pub fn id(&self) -> Option<String> {
        match self {
            Actor::User(id) | Actor::Client(id) => Some(id.clone()),
            Actor::System => None,
        }
    }
}

/// Who is writing and in which request; passed to every repository function that writes.
#[derive(Debug, Clone)]
pub struct AuditContext {
    pub actor: Actor,
    pub request_id: Option<String>,
    /// Writes of an import job: the job is audited once, as a whole, instead of row by row.
    pub batched: bool,
}

impl AuditContext {
    pub fn system() -> Self {
        Self {
            actor: Actor::System,
            request_id: None,
            batched: false,
        }
    }
}

/// One event to record.
#[derive(Debug, Clone)]
pub struct Event<'a> {
    pub action: &'a str,
    pub entity: &'a str,
    pub entity_id: Option<String>,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = audit_log)]
pub struct AuditRow {
    pub seq: i64,
    pub at: NaiveDateTime,
    pub actor_kind: String,
    pub actor_id: Option<String>,
    pub action: String,
    pub entity: String,
    pub entity_id: Option<String>,
    pub before_json: Option<String>,
    pub after_json: Option<String>,
    pub request_id: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

impl AuditRow {
    /// The hash of this row's content and its predecessor's hash. Every field is length-prefixed,
    /// so no two different rows hash the same text.
    pub fn compute_hash(&self) -> String {
        let mut hasher = Sha256::new();
        let at = self.at.format("%Y-%m-%dT%H:%M:%S%.6f").to_string();
        let seq = self.seq.to_string();
        let fields: [Option<&str>; 11] = [
            Some(&seq),
            Some(&at),
            Some(&self.actor_kind),
            self.actor_id.as_deref(),
            Some(&self.action),
            Some(&self.entity),
            self.entity_id.as_deref(),
            self.before_json.as_deref(),
            self.after_json.as_deref(),
            self.request_id.as_deref(),
            Some(&self.prev_hash),
        ];
        for field in fields {
            match field {
                Some(text) => hasher.update(format!("{}:{text};", text.len())),
                None => hasher.update("-;"),
            }
        }
        hex::encode(hasher.finalize())
    }
}

/// Orders appends (and the changes feed, which uses the same lock): on PostgreSQL a
/// transaction-scoped lock held until commit, so numbers are taken in commit order; on SQLite the
/// write transaction (BEGIN IMMEDIATE) already excludes other writers.
///
/// Take it last: write every row of the change first, then record it. A transaction that writes
/// a row after taking it can deadlock with one that wrote that row first and now waits for it
/// (`enrolments::move_row`, `persons::set_current`, `households::insert` keep rows and records
/// apart for this; the tests' `beside_a_writer` checks the writers that change several records).
/// A row the transaction itself inserted may still be written after it: nobody else can see it.
pub(crate) fn order_lock(conn: &mut DbConnection) -> Result<(), StoreError> {
    if let DbConnection::Pg(pg) = conn {
        pg.batch_execute(&format!("SELECT pg_advisory_xact_lock({CHAIN_LOCK_KEY})"))?;
    }
    Ok(())
}

/// Appends one event. Call it inside the transaction that makes the change, so the change and its
/// record commit or fail together.
pub fn append(
    conn: &mut DbConnection,
    context: &AuditContext,
    event: Event<'_>,
) -> Result<(), StoreError> {
    if context.batched {
        return Ok(());
    }
    order_lock(conn)?;
    let last: Option<(i64, String)> = audit_log::table
        .select((audit_log::seq, audit_log::hash))
        .order(audit_log::seq.desc())
        .first(conn)
        .optional()?;
    let (seq, prev_hash) = match last {
        Some((seq, hash)) => (seq + 1, hash),
        None => (1, GENESIS.to_owned()),
    };
    let mut row = AuditRow {
        seq,
        at: crate::now(),
        actor_kind: context.actor.kind().to_owned(),
        actor_id: context.actor.id(),
        action: event.action.to_owned(),
        entity: event.entity.to_owned(),
        entity_id: event.entity_id,
        before_json: event.before.map(|v| v.to_string()),
        after_json: event.after.map(|v| v.to_string()),
        request_id: context.request_id.clone(),
        prev_hash,
        hash: String::new(),
    };
    row.hash = row.compute_hash();
    diesel::insert_into(audit_log::table)
        .values(&row)
        .execute(conn)?;
    Ok(())
}

/// Filters of the audit list.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor_id: Option<String>,
    pub entity: Option<String>,
    pub entity_id: Option<String>,
    pub action: Option<String>,
    pub from: Option<NaiveDateTime>,
    pub to: Option<NaiveDateTime>,
}

/// One page of the log, newest first, before `before_seq`.
pub fn list(
    conn: &mut DbConnection,
    filter: &AuditFilter,
    before_seq: Option<i64>,
    limit: usize,
) -> Result<(Vec<AuditRow>, bool), StoreError> {
    let mut query = audit_log::table.select(AuditRow::as_select()).into_boxed();
    if let Some(actor_id) = &filter.actor_id {
        query = query.filter(audit_log::actor_id.eq(actor_id.clone()));
    }
    if let Some(entity) = &filter.entity {
        query = query.filter(audit_log::entity.eq(entity.clone()));
    }
    if let Some(entity_id) = &filter.entity_id {
        query = query.filter(audit_log::entity_id.eq(entity_id.clone()));
    }
    if let Some(action) = &filter.action {
        query = query.filter(audit_log::action.eq(action.clone()));
    }
    if let Some(from) = filter.from {
        query = query.filter(audit_log::at.ge(from));
    }
    if let Some(to) = filter.to {
        query = query.filter(audit_log::at.lt(to));
    }
    if let Some(before) = before_seq {
        query = query.filter(audit_log::seq.lt(before));
    }
    let rows: Vec<AuditRow> = query
        .order(audit_log::seq.desc())
        .limit(crate::page::fetch(limit))
        .load(conn)?;
    let (rows, more) = crate::page::split(rows, limit);
    Ok((rows, more))
}

/// The outcome of checking the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verification {
    /// Every row links to its predecessor and hashes to what it claims.
    Intact { rows: u64 },
    /// The first row that does not.
    Broken { seq: i64, reason: String },
}

/// Walks the whole chain in order, in batches, and reports the first broken row.
pub fn verify(conn: &mut DbConnection) -> Result<Verification, StoreError> {
    const BATCH: i64 = 1000;
    let mut expected_prev = GENESIS.to_owned();
    let mut expected_seq = 1_i64;
    let mut rows_seen = 0_u64;
    loop {
        let rows: Vec<AuditRow> = audit_log::table
            .select(AuditRow::as_select())
            .filter(audit_log::seq.ge(expected_seq))
            .order(audit_log::seq.asc())
            .limit(BATCH)
            .load(conn)?;
        if rows.is_empty() {
            return Ok(Verification::Intact { rows: rows_seen });
        }
        for row in &rows {
            if row.seq != expected_seq {
                return Ok(Verification::Broken {
                    seq: expected_seq,
                    reason: format!("row {expected_seq} is missing (next is {})", row.seq),
                });
            }
            if row.prev_hash != expected_prev {
                return Ok(Verification::Broken {
                    seq: row.seq,
                    reason: "does not link to the previous row".to_owned(),
                });
            }
            if row.compute_hash() != row.hash {
                return Ok(Verification::Broken {
                    seq: row.seq,
                    reason: "its content does not match its hash (edited)".to_owned(),
                });
            }
            expected_prev = row.hash.clone();
            expected_seq += 1;
            rows_seen += 1;
        }
    }
}
