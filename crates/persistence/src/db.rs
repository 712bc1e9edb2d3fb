//! Connections: the backend is chosen from the URL scheme, never by trial; one pool of
//! [`DbConnection`]s serves both backends.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::r2d2::R2D2Connection;
use diesel::{Connection, PgConnection, SqliteConnection};

use crate::error::StoreError;
use crate::migrations;

/// A connection to either backend; queries written once against `crate::schema` run on both.
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Pg(PgConnection),
    Sqlite(SqliteConnection),
}

pub type Pool = r2d2::Pool<ConnectionManager>;
pub type PooledConnection = r2d2::PooledConnection<ConnectionManager>;

/// Where the data lives, parsed from `DATABASE_URL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// `postgres://…` or `postgresql://…`, passed to libpq as given.
    Postgres(String),
    /// `sqlite://PATH` or `sqlite:PATH`; a relative path is relative to the working directory.
    Sqlite(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("unsupported database URL scheme `{0}`: use postgres://… or sqlite://PATH")]
    UnknownScheme(String),
    #[error("database URL has no scheme: use postgres://… or sqlite://PATH")]
    NoScheme,
    #[error(
        "sqlite URL has no file path: use sqlite://PATH (in-memory databases are not supported)"
    )]
    NoSqlitePath,
}

impl Backend {
    pub fn from_url(url: &str) -> Result<Self, UrlError> {
        let (scheme, rest) = url.split_once(':').ok_or(UrlError::NoScheme)?;
        match scheme.to_ascii_lowercase().as_str() {
            "postgres" | "postgresql" => Ok(Backend::Postgres(url.to_owned())),
            "sqlite" => {
                let path = rest.strip_prefix("//").unwrap_or(rest);
                // Every pooled connection to `:memory:` would be a different, empty database.
                if path.is_empty() || path == ":memory:" {
                    return Err(UrlError::NoSqlitePath);
                }
                Ok(Backend::Sqlite(PathBuf::from(path)))
            }
            other => Err(UrlError::UnknownScheme(other.to_owned())),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Backend::Postgres(_) => "postgres",
            Backend::Sqlite(_) => "sqlite",
        }
    }

    /// Opens one connection, with the per-connection settings of its backend.
    pub fn connect(&self) -> Result<DbConnection, diesel::ConnectionError> {
        match self {
            Backend::Postgres(url) => PgConnection::establish(url).map(DbConnection::Pg),
            Backend::Sqlite(path) => {
                let path = path.to_string_lossy();
                let mut conn = SqliteConnection::establish(&path)?;
                // busy_timeout first: switching to WAL takes a lock another process may hold.
                conn.batch_execute(
                    "PRAGMA busy_timeout = 5000;
                     PRAGMA journal_mode = WAL;
                     PRAGMA synchronous = NORMAL;
                     PRAGMA foreign_keys = ON;",
                )
                .map_err(|e| diesel::ConnectionError::BadConnection(e.to_string()))?;
                Ok(DbConnection::Sqlite(conn))
            }
        }
    }
}

/// Hands r2d2 connections of the backend chosen from the URL (diesel's derived `establish` would
/// try each backend in turn and hide the real error).
#[derive(Debug)]
pub struct ConnectionManager {
    backend: Backend,
}

impl r2d2::ManageConnection for ConnectionManager {
    type Connection = DbConnection;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<DbConnection, Self::Error> {
        self.backend
            .connect()
            .map_err(diesel::r2d2::Error::ConnectionError)
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), Self::Error> {
        match conn {
            // A server can go away between two uses of a connection: check with a round trip.
            DbConnection::Pg(_) => conn
                .batch_execute("SELECT 1")
                .map_err(diesel::r2d2::Error::QueryError),
            // An embedded database cannot; a query per checkout would only cost time.
            DbConnection::Sqlite(_) => Ok(()),
        }
    }

    fn has_broken(&self, conn: &mut DbConnection) -> bool {
        match conn {
            DbConnection::Pg(c) => c.is_broken(),
            DbConnection::Sqlite(c) => c.is_broken(),
        }
    }
}

/// Pool settings.
#[derive(Debug, Clone)]
pub struct PoolOptions {
    pub max_size: u32,
    /// How long a request waits for a connection before the API answers 503.
    pub acquire_timeout: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            max_size: 10,
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

/// Why the database could not be opened at start-up. Each variant prints as one line.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Url(#[from] UrlError),
    #[error("cannot create the data folder {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot connect to the {backend} database: {message}")]
    Connect {
        backend: &'static str,
        message: String,
    },
    #[error("migrations failed: {0}")]
    Migrate(String),
    #[error("cannot build the connection pool: {0}")]
    Pool(String),
}

/// An open, migrated database and its pool.
#[derive(Clone)]
pub struct Database {
    pool: Pool,
    backend_name: &'static str,
    /// Taken by an import for its whole run on SQLite (see `import_turn`).
    imports: Arc<Mutex<()>>,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("backend", &self.backend_name)
            .field("pool", &self.pool.state())
            .finish()
    }
}

impl Database {
    /// Connects to `url`, applies pending migrations and builds the pool. Fails fast, with one
    /// line, when the database cannot be reached.
    pub fn open(url: &str, options: &PoolOptions) -> Result<Self, OpenError> {
        let backend = Backend::from_url(url)?;
        let mut conn = connect_once(&backend)?;
        migrations::run_pending(&mut conn).map_err(|e| OpenError::Migrate(one_line(&e)))?;
        drop(conn);
        Self::pool_only(backend, options)
    }

    /// Connects and migrates only; for `tavana migrate`. Returns the names applied.
    pub fn migrate(url: &str) -> Result<Vec<String>, OpenError> {
        let backend = Backend::from_url(url)?;
        let mut conn = connect_once(&backend)?;
        migrations::run_pending(&mut conn).map_err(|e| OpenError::Migrate(one_line(&e)))
    }

    fn pool_only(backend: Backend, options: &PoolOptions) -> Result<Self, OpenError> {
        let backend_name = backend.name();
        let pool = r2d2::Pool::builder()
            .max_size(options.max_size)
            .min_idle(Some(1))
            .connection_timeout(options.acquire_timeout)
            // Check each connection before use, so that after the database comes back the pool
            // replaces dead connections instead of handing them out.
            .test_on_check_out(true)
            .build(ConnectionManager { backend })
            .map_err(|e| OpenError::Pool(one_line(&e)))?;
        Ok(Self {
            pool,
            backend_name,
            imports: Arc::default(),
        })
    }

    /// An import's turn. On SQLite one import runs at a time: an import in `all` or `validate`
    /// mode holds the write lock for its whole file, and a second import would fail on it (and
    /// could not even record that it stopped) instead of waiting. `None` on PostgreSQL, where
    /// imports run side by side.
    pub fn import_turn(&self) -> Option<MutexGuard<'_, ()>> {
        (self.backend_name == "sqlite").then(|| {
            self.imports
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        })
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    pub fn backend_name(&self) -> &'static str {
        self.backend_name
    }

    /// A connection from the pool, or `Unavailable` when none can be had in time.
    pub fn get(&self) -> Result<PooledConnection, StoreError> {
        Ok(self.pool.get()?)
    }

    /// Open and idle connections, for the metrics.
    pub fn pool_state(&self) -> (u32, u32) {
        let state = self.pool.state();
        (state.connections, state.idle_connections)
    }

    /// A round trip to the database, for the readiness probe.
    pub fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.get()?;
        conn.batch_execute("SELECT 1").map_err(StoreError::from)
    }
}

fn connect_once(backend: &Backend) -> Result<DbConnection, OpenError> {
    if let Backend::Sqlite(path) = backend
        && let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
    {
        std::fs::create_dir_all(dir).map_err(|source| OpenError::DataDir {
            path: dir.to_owned(),
            source,
        })?;
    }
    backend.connect().map_err(|e| OpenError::Connect {
        backend: backend.name(),
        message: one_line(&e),
    })
}

/// libpq's messages span several lines; a start-up error should be one.
fn one_line(error: &dyn std::fmt::Display) -> String {
    error
        .to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_comes_from_the_scheme() {
        assert_eq!(
            Backend::from_url("sqlite://./data/tavana.db"),
            Ok(Backend::Sqlite(PathBuf::from("./data/tavana.db")))
        );
        assert_eq!(
            Backend::from_url("sqlite:///var/lib/tavana.db"),
            Ok(Backend::Sqlite(PathBuf::from("/var/lib/tavana.db")))
        );
        assert_eq!(
            Backend::from_url("sqlite:data.db"),
            Ok(Backend::Sqlite(PathBuf::from("data.db")))
        );
        assert!(matches!(
            Backend::from_url("postgres://u@h/db"),
            Ok(Backend::Postgres(_))
        ));
        assert!(matches!(
            Backend::from_url("postgresql://u@h/db"),
            Ok(Backend::Postgres(_))
        ));
    }

    #[test]
    fn unknown_or_missing_schemes_are_refused() {
        assert_eq!(
            Backend::from_url("mysql://h/db"),
            Err(UrlError::UnknownScheme("mysql".into()))
        );
        assert_eq!(Backend::from_url("tavana.db"), Err(UrlError::NoScheme));
        assert_eq!(
            Backend::from_url("sqlite::memory:"),
            Err(UrlError::NoSqlitePath)
        );
        assert_eq!(Backend::from_url("sqlite://"), Err(UrlError::NoSqlitePath));
    }

    /// `.cargo/config.toml` builds the bundled SQLite with `SQLITE_ENABLE_QPSG`; without it every
    /// query with a bound `LIMIT` is re-prepared on each execution (see the comment there).
    #[test]
    fn sqlite_is_built_with_a_stable_query_planner() {
        use diesel::RunQueryDsl;
        use diesel::dsl::sql;
        use diesel::sql_types::Integer;
        let mut conn = SqliteConnection::establish(":memory:").expect("in-memory SQLite");
        let used: i32 = diesel::select(sql::<Integer>("sqlite_compileoption_used('ENABLE_QPSG')"))
            .get_result(&mut conn)
            .expect("compile option query");
        assert_eq!(
            used, 1,
            "build SQLite with LIBSQLITE3_FLAGS=-DSQLITE_ENABLE_QPSG"
        );
    }

    #[test]
    fn multi_line_messages_become_one_line() {
        assert_eq!(one_line(&"could not\n  connect\n"), "could not connect");
    }
}
