//! Write transactions. On SQLite a transaction that will write must take the write lock when it
//! begins (`BEGIN IMMEDIATE`): a deferred one that reads first can fail with SQLITE_BUSY when it
//! tries to write after another writer committed. PostgreSQL needs nothing special.

use diesel::Connection;
use diesel::connection::{AnsiTransactionManager, TransactionManager};

use crate::db::DbConnection;
use crate::error::StoreError;

/// Runs `work` in a transaction that holds the right to write from its first statement.
pub fn write_transaction<T, F>(conn: &mut DbConnection, work: F) -> Result<T, StoreError>
where
    F: FnOnce(&mut DbConnection) -> Result<T, StoreError>,
{
    let DbConnection::Sqlite(sqlite) = conn else {
        return conn.transaction(work);
    };
    // Inside a transaction already (one use case calling another): a savepoint will do.
    let depth = AnsiTransactionManager::transaction_manager_status_mut(sqlite)
        .transaction_depth()
        .map_err(StoreError::from)?;
    if depth.is_some() {
        return conn.transaction(work);
    }
    AnsiTransactionManager::begin_transaction_sql(sqlite, "BEGIN IMMEDIATE")?;
    let result = work(conn);
    let DbConnection::Sqlite(sqlite) = conn else {
        return Err(StoreError::Internal(
            "connection changed backend".to_owned(),
        ));
    };
    match result {
        Ok(value) => {
            AnsiTransactionManager::commit_transaction(sqlite)?;
            Ok(value)
        }
        Err(error) => {
            if let Err(rollback) = AnsiTransactionManager::rollback_transaction(sqlite) {
                tracing::error!(error = %rollback, "rollback failed");
            }
            Err(error)
        }
    }
}

/// Serialises transactions that touch the same `key` (e.g. one user's sessions) until commit. On
/// PostgreSQL a transaction-scoped advisory lock; SQLite's write transactions are serial already.
pub fn lock(conn: &mut DbConnection, key: &str) -> Result<(), StoreError> {
    use diesel::RunQueryDsl;
    use diesel::sql_types::Text;
    if let DbConnection::Pg(pg) = conn {
        diesel::sql_query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind::<Text, _>(key)
            .execute(pg)?;
    }
    Ok(())
}

/// How `lock_rows` locks: PostgreSQL's row-lock modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowLock {
    /// As a delete takes: conflicts with every other lock, a foreign-key check's too.
    Update,
    /// As an update takes: conflicts with updates, not with foreign-key checks.
    NoKeyUpdate,
    /// As a foreign-key check takes: conflicts only with `Update`.
    KeyShare,
}

/// Locks the rows of `table` (a table name of ours) with these ids until the transaction ends, in
/// id order, so that two writers locking some of the same rows cannot each hold one the other
/// waits for. PostgreSQL only: SQLite's write transactions are serial already.
pub fn lock_rows(
    conn: &mut DbConnection,
    table: &'static str,
    ids: &[String],
    mode: RowLock,
) -> Result<(), StoreError> {
    use diesel::RunQueryDsl;
    use diesel::sql_types::{Array, Text};
    let mode = match mode {
        RowLock::Update => "UPDATE",
        RowLock::NoKeyUpdate => "NO KEY UPDATE",
        RowLock::KeyShare => "KEY SHARE",
    };
    if let DbConnection::Pg(pg) = conn {
        diesel::sql_query(format!(
            "SELECT id FROM {table} WHERE id = ANY ($1) ORDER BY id FOR {mode}"
        ))
        .bind::<Array<Text>, _>(ids)
        .execute(pg)?;
    }
    Ok(())
}
