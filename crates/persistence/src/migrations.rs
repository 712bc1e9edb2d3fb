//! Embedded migrations, one folder per backend with identical names.

use diesel::connection::SimpleConnection;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::db::DbConnection;

pub const POSTGRES: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");
pub const SQLITE: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");

/// Arbitrary, fixed key of the PostgreSQL advisory lock that serialises migrations, so that
/// several replicas can start at once.
const MIGRATION_LOCK_KEY: i64 = 0x7461_7661_6e61; // "tavana"

pub type MigrationError = Box<dyn std::error::Error + Send + Sync>;

/// Applies every pending migration and returns the names applied.
pub fn run_pending(conn: &mut DbConnection) -> Result<Vec<String>, MigrationError> {
    match conn {
        DbConnection::Pg(pg) => {
            pg.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})"))?;
            let result = pg
                .run_pending_migrations(POSTGRES)
                .map(|versions| versions.iter().map(ToString::to_string).collect());
            // Released on disconnect anyway; unlock explicitly so a pooled session cannot keep it.
            let unlocked =
                pg.batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})"));
            let applied = result?;
            unlocked?;
            Ok(applied)
        }
        DbConnection::Sqlite(sqlite) => Ok(sqlite
            .run_pending_migrations(SQLITE)?
            .iter()
            .map(ToString::to_string)
            .collect()),
    }
}

/// Reverts every applied migration, newest first. For the up → down → up test.
pub fn revert_all(conn: &mut DbConnection) -> Result<Vec<String>, MigrationError> {
    let reverted = match conn {
        DbConnection::Pg(pg) => pg.revert_all_migrations(POSTGRES)?,
        DbConnection::Sqlite(sqlite) => sqlite.revert_all_migrations(SQLITE)?,
    };
    Ok(reverted.iter().map(ToString::to_string).collect())
}
