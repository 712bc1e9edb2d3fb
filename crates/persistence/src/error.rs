//! What can go wrong in storage, sorted by what the caller should do about it.

use diesel::result::{DatabaseErrorKind, Error as DieselError};
use tavana_domain::{FieldError, ValidationErrors};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No such row, or not one the caller may see (the API answers both with 404).
    #[error("not found")]
    NotFound,
    /// The caller sees the row but may not do this to it (a trainer and another's cohort).
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The supporter's balance does not cover the amount.
    #[error("overdraft: balance {balance}, amount {amount}")]
    Overdraft { balance: i64, amount: i64 },
    /// A uniqueness or state rule held by the database refused the write.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The record exists already; `existing` is its id, so the client can go to it.
    #[error("exists: {message}")]
    Exists { message: String, existing: String },
    /// The caller's `If-Match` version is not the current one: someone else changed the row.
    #[error("version mismatch: the row is at version {current}")]
    VersionMismatch { current: i64 },
    /// Input that only the database could judge (a parent that does not exist, …).
    #[error("invalid: {0}")]
    Invalid(ValidationErrors),
    /// The database cannot be reached or went away; retrying later may succeed.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Anything else: a bug or a broken database. Logged, never shown to clients.
    #[error("database error: {0}")]
    Internal(String),
}

impl StoreError {
    /// PostgreSQL gave this transaction up to end a deadlock with another: tried again once the
    /// other went on, the same work may pass.
    pub fn is_deadlock(&self) -> bool {
        matches!(self, StoreError::Unavailable(message) if message.contains("deadlock detected"))
    }

    /// What a client may be told of this error where it is kept for them (an import job's
    /// message): an internal error's own text (SQL, file paths) or an unreachable database's
    /// (its host) is for the server's log, as in the API's answers.
    pub fn for_clients(&self) -> String {
        match self {
            StoreError::Internal(_) => {
                "an internal error stopped it; the server's log has the details".to_owned()
            }
            StoreError::Unavailable(_) => "the database was unavailable".to_owned(),
            other => other.to_string(),
        }
    }
}

impl From<FieldError> for StoreError {
    fn from(error: FieldError) -> Self {
        StoreError::Invalid(error.into())
    }
}

impl From<DieselError> for StoreError {
    fn from(error: DieselError) -> Self {
        match error {
            DieselError::NotFound => StoreError::NotFound,
            DieselError::DatabaseError(kind, info) => match kind {
                // Repositories turn the violations they expect into precise messages; any other is
                // reported without naming tables or constraints.
                DatabaseErrorKind::UniqueViolation => {
                    StoreError::Conflict("the change conflicts with an existing record".to_owned())
                }
                DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand => {
                    StoreError::Unavailable(info.message().to_owned())
                }
                // SQLite's write lock held longer than busy_timeout: busy, not broken.
                _ if is_sqlite_busy(info.message()) => {
                    StoreError::Unavailable(info.message().to_owned())
                }
                // PostgreSQL gave up on this transaction for another's sake (a serialisation
                // failure, a deadlock), or is a standby for now: the same request may succeed
                // when tried again (503 with Retry-After).
                DatabaseErrorKind::SerializationFailure
                | DatabaseErrorKind::ReadOnlyTransaction => {
                    StoreError::Unavailable(info.message().to_owned())
                }
                _ if info.message().contains("deadlock detected") => {
                    StoreError::Unavailable(info.message().to_owned())
                }
                // PostgreSQL stores no NUL character in text. Requests are refused before, by
                // `refuse_nul`; a value that reached a statement anyway is still the caller's.
                _ if info.message().contains("invalid byte sequence")
                    && info.message().contains("0x00") =>
                {
                    StoreError::Invalid(tavana_domain::text::nul_character("body").into())
                }
                _ => StoreError::Internal(format!("{kind:?}: {}", info.message())),
            },
            DieselError::BrokenTransactionManager => {
                StoreError::Unavailable("transaction manager broken".to_owned())
            }
            other => StoreError::Internal(other.to_string()),
        }
    }
}

impl From<r2d2::Error> for StoreError {
    fn from(error: r2d2::Error) -> Self {
        // r2d2 only fails to hand out a connection when none could be made in time.
        StoreError::Unavailable(error.to_string())
    }
}

fn is_sqlite_busy(message: &str) -> bool {
    message.contains("database is locked") || message.contains("database is busy")
}

#[cfg(test)]
mod tests {
    use diesel::result::DatabaseErrorInformation;

    use super::*;

    /// A database's error as diesel reports it: only the message matters here.
    struct Reported(&'static str);

    impl DatabaseErrorInformation for Reported {
        fn message(&self) -> &str {
            self.0
        }
        fn details(&self) -> Option<&str> {
            None
        }
        fn hint(&self) -> Option<&str> {
            None
        }
        fn table_name(&self) -> Option<&str> {
            None
        }
        fn column_name(&self) -> Option<&str> {
            None
        }
        fn constraint_name(&self) -> Option<&str> {
            None
        }
        fn statement_position(&self) -> Option<i32> {
            None
        }
    }

    fn from(kind: DatabaseErrorKind, message: &'static str) -> StoreError {
        DieselError::DatabaseError(kind, Box::new(Reported(message))).into()
    }

    /// What PostgreSQL gives up on for another transaction's sake may succeed when tried again
    /// (503 with Retry-After), not a 500.
    #[test]
    fn a_transaction_given_up_for_another_is_worth_retrying() {
        for error in [
            from(
                DatabaseErrorKind::SerializationFailure,
                "could not serialize access due to concurrent update",
            ),
            from(DatabaseErrorKind::Unknown, "deadlock detected"),
            from(
                DatabaseErrorKind::ReadOnlyTransaction,
                "cannot execute INSERT in a read-only transaction",
            ),
            from(DatabaseErrorKind::Unknown, "database is locked"),
        ] {
            assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
        }
        // Only a deadlock is tried again inside the transaction (an import's batch): the others
        // need a new transaction, or time.
        assert!(from(DatabaseErrorKind::Unknown, "deadlock detected").is_deadlock());
        assert!(
            !from(
                DatabaseErrorKind::SerializationFailure,
                "could not serialize access due to concurrent update",
            )
            .is_deadlock()
        );
        assert!(
            !from(
                DatabaseErrorKind::ClosedConnection,
                "server closed the connection"
            )
            .is_deadlock()
        );
        let nul = from(
            DatabaseErrorKind::Unknown,
            "invalid byte sequence for encoding \"UTF8\": 0x00",
        );
        assert!(
            matches!(&nul, StoreError::Invalid(e) if e.0[0].code == "nul_character"),
            "{nul:?}"
        );
        let broken = from(
            DatabaseErrorKind::CheckViolation,
            "violates check constraint",
        );
        assert!(matches!(broken, StoreError::Internal(_)), "{broken:?}");
    }

    /// Kept for clients (an import job's message), an internal error or an unreachable database
    /// says what happened, not its SQL, paths or hosts.
    #[test]
    fn clients_are_not_told_internal_details() {
        let internal = StoreError::Internal("import file /var/lib/tavana/x.csv: denied".to_owned());
        assert!(!internal.for_clients().contains("/var/lib"));
        let unavailable =
            StoreError::Unavailable("could not connect to db.internal:5432".to_owned());
        assert!(!unavailable.for_clients().contains("db.internal"));
        let refused = StoreError::Forbidden("the MoU has ended".to_owned());
        assert!(refused.for_clients().contains("the MoU has ended"));
    }
}
