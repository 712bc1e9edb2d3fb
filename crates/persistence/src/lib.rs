//! Tavana's storage: one diesel schema over PostgreSQL and SQLite, the connection pool, embedded
//! migrations, and one repository module per resource. Each repository function is one use case in
//! one transaction, and it is where the caller's access scope is enforced.

/// Inserts `rows` in statements of 500: multi-row inserts do not go through the two-backend
/// connection, so each backend gets its own statement.
macro_rules! bulk_insert {
    ($conn:expr, $table:expr, $rows:expr) => {{
        for chunk in $rows.chunks(500) {
            match $conn {
                DbConnection::Pg(pg) => diesel::insert_into($table).values(chunk).execute(pg)?,
                DbConnection::Sqlite(sqlite) => {
                    diesel::insert_into($table).values(chunk).execute(sqlite)?
                }
            };
        }
    }};
}

/// Inserts many rows of a big write (an import): PostgreSQL through one binary `COPY`, SQLite one
/// row a statement, the statement prepared once and reused, as SQLite's own bulk path does.
/// Statements of many rows (up to its 32,766 bound values) were parsed anew each time, with
/// buffers of a megabyte: 1,000,000 persons took 73.9 s and 155 MB that way, 67.6 s and 130 MB
/// this way. COPY needs every value bound (no `DEFAULT`).
macro_rules! copy_insert {
    ($conn:expr, $table:expr, $rows:expr) => {{
        match $conn {
            DbConnection::Pg(pg) => {
                if !$rows.is_empty() {
                    diesel::copy_from($table)
                        .from_insertable($rows)
                        .execute(pg)?;
                }
            }
            DbConnection::Sqlite(sqlite) => {
                for row in $rows.iter() {
                    diesel::insert_into($table).values(row).execute(sqlite)?;
                }
            }
        };
    }};
}

pub mod api_clients;
pub mod areas;
pub mod assessments;
pub mod audit;
pub mod changes;
pub mod cohorts;
pub mod consents;
pub mod counters;
pub mod courses;
pub mod db;
pub mod demo;
pub mod duplicates;
pub mod enrolments;
pub mod error;
pub mod households;
pub mod idempotency;
mod import_keys;
mod import_lock;
pub mod imports;
pub mod loans;
pub mod migrations;
pub mod organisations;
pub mod outcomes;
mod page;
pub mod partner_policies;
pub mod permits;
pub mod persons;
pub mod programmes;
pub mod progress;
pub mod purchases;
pub mod rate_limits;
pub mod research;
pub mod schema;
pub mod scope;
pub mod supporters;
pub mod tokens;
pub mod tx;
pub mod users;
pub mod webhooks;

pub use audit::{Actor, AuditContext};
pub use db::{Backend, Database, DbConnection, Pool, PoolOptions};
pub use error::StoreError;
pub use scope::Scope;
pub use tx::write_transaction;

/// The current UTC time as stored: microsecond precision, which both backends keep exactly.
pub(crate) fn now() -> chrono::NaiveDateTime {
    use chrono::SubsecRound;
    chrono::Utc::now().naive_utc().trunc_subsecs(6)
}
