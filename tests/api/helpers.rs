//! Spawns the whole service on a fresh database per test: SQLite always, PostgreSQL too when
//! `TAVANA_TEST_POSTGRES_URL` points at a server (CI sets it, and `TAVANA_TEST_REQUIRE_POSTGRES=1`
//! turns a missing URL into a failure instead of a skip).

use std::net::TcpListener;
use std::sync::OnceLock;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection, RunQueryDsl};
use tavana_domain::access::Role;
use tavana_domain::id::{AreaId, OrganisationId, UserId};
use tavana_domain::organisation::{OrganisationKind, User};
use tavana_http::auth::bootstrap::{CliUser, create_user};
use tavana_http::auth::jwt::TokenKeys;
use tavana_persistence::users::NewUser;
use tavana_persistence::{AuditContext, Database, PoolOptions};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs each named `async fn(TestApp)` once per backend, as `name::sqlite` and `name::postgres`.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    if let Some(app) = $crate::helpers::TestApp::spawn($crate::helpers::Backend::Sqlite).await {
                        super::$name(app).await;
                    }
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if let Some(app) = $crate::helpers::TestApp::spawn($crate::helpers::Backend::Postgres).await {
                        super::$name(app).await;
                    }
                }
            }
        )*
    };
}

/// The running service and a client for it. Dropping it stops the server and removes its database.
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub db: Database,
    pub keys: TokenKeys,
    /// A token of a stored administrator: `get` and `post_json` send it.
    pub admin_token: String,
    /// The organisation of the users `mint` stores.
    office: OrganisationId,
    handle: actix_web::dev::ServerHandle,
    cleanup: Cleanup,
}

enum Cleanup {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { admin_url: String, name: String },
}

impl TestApp {
    /// `None` when the backend is PostgreSQL and no server is configured.
    pub async fn spawn(backend: Backend) -> Option<TestApp> {
        Self::spawn_with(backend, test_settings()).await
    }

    pub async fn spawn_with(backend: Backend, settings: tavana_http::Settings) -> Option<TestApp> {
        let (database_url, cleanup) = match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temporary folder");
                let url = format!("sqlite://{}/tavana.db", dir.path().display());
                (url, Cleanup::Sqlite(dir))
            }
            Backend::Postgres => {
                let admin_url = postgres_admin_url()?;
                let name = tokio::task::spawn_blocking({
                    let admin_url = admin_url.clone();
                    move || create_postgres_database(&admin_url)
                })
                .await
                .expect("create database");
                (
                    with_database(&admin_url, &name),
                    Cleanup::Postgres { admin_url, name },
                )
            }
        };
        let keys = settings.tokens.clone();
        let db = tokio::task::spawn_blocking(move || {
            Database::open(&database_url, &test_pool_options())
        })
        .await
        .expect("open database")
        .expect("database opens and migrates");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
        let address = format!("http://{}", listener.local_addr().expect("address"));
        let server = tavana_http::build(db.clone(), settings, listener).expect("server builds");
        let handle = server.handle();
        tokio::spawn(server);
        let office = tokio::task::spawn_blocking({
            let db = db.clone();
            move || {
                let mut conn = db.get().expect("connection");
                tavana_persistence::organisations::create(
                    &mut conn,
                    &AuditContext::system(),
                    "دفتر آزمون",
                    OrganisationKind::LabourOffice,
                )
            }
        })
        .await
        .expect("joined")
        .expect("the test office")
        .id;
        let mut app = TestApp {
            db,
            keys,
            admin_token: String::new(),
            office,
            address,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            handle,
            cleanup,
        };
        app.admin_token = app.mint(Role::Admin).await;
        Some(app)
    }

    /// An access token of a new stored user with `role`, in the test office, with no
    /// neighbourhoods (an area-scoped one sees nothing) and no password to log in with.
    pub async fn mint(&self, role: Role) -> String {
        self.mint_in(role, self.office).await
    }

    /// An access token of a new stored user with `role`, in `office`, as `mint`.
    pub async fn mint_in(&self, role: Role, office: OrganisationId) -> String {
        let db = self.db.clone();
        let user = tokio::task::spawn_blocking(move || {
            let mut conn = db.get().expect("connection");
            tavana_persistence::users::create(
                &mut conn,
                &AuditContext::system(),
                NewUser {
                    username: format!(
                        "{}.{}",
                        role.as_str(),
                        UserId::generate().as_uuid().simple()
                    ),
                    display_name: format!("A {}", role.as_str()),
                    // No argon2 hash matches this: nobody logs in as a minted user.
                    password_hash: "!".to_owned(),
                    role,
                    organisation_id: office,
                    areas: Vec::new(),
                },
            )
        })
        .await
        .expect("joined")
        .expect("user stored");
        self.keys
            .issue(
                user.id.to_string(),
                Some(role.as_str().to_owned()),
                office.to_string(),
                None,
                Duration::from_secs(900),
            )
            .expect("token signs")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// GET as an administrator.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.get_as(&self.admin_token, path).await
    }

    /// GET as the caller of `token`.
    pub async fn get_as(&self, token: &str, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request is sent")
    }

    /// DELETE as an administrator.
    pub async fn delete(&self, path: &str) -> reqwest::Response {
        self.client
            .delete(self.url(path))
            .bearer_auth(&self.admin_token)
            .send()
            .await
            .expect("request is sent")
    }

    /// POST JSON as an administrator.
    pub async fn post_json(&self, path: &str, body: &serde_json::Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .bearer_auth(&self.admin_token)
            .json(body)
            .send()
            .await
            .expect("request is sent")
    }

    /// A stored user with this role and password, in a new organisation.
    pub async fn create_user(
        &self,
        username: &str,
        role: Role,
        password: &str,
        areas: Vec<AreaId>,
    ) -> User {
        let db = self.db.clone();
        let new = CliUser {
            username: username.to_owned(),
            display_name: format!("User {username}"),
            role,
            organisation: format!("Organisation of {username}"),
            organisation_kind: OrganisationKind::LabourOffice,
            areas,
            password: Some(password.to_owned()),
        };
        tokio::task::spawn_blocking(move || create_user(&db, new))
            .await
            .expect("joined")
            .expect("user created")
            .0
    }

    /// Logs in with the password grant; returns the token response.
    pub async fn login(&self, username: &str, password: &str) -> reqwest::Response {
        self.client
            .post(self.url("/api/v1/auth/token"))
            .json(&serde_json::json!({"grant_type": "password", "username": username, "password": password}))
            .send()
            .await
            .expect("request is sent")
    }

    /// Runs SQL on the PostgreSQL server's maintenance database (to make this test's database
    /// unreachable, for instance). Panics on SQLite.
    pub fn postgres_admin(&self, sql: &str) {
        let Cleanup::Postgres { admin_url, .. } = &self.cleanup else {
            panic!("postgres_admin needs the PostgreSQL backend");
        };
        let mut conn = PgConnection::establish(admin_url).expect("admin connection");
        conn.batch_execute(sql).expect("admin SQL runs");
    }

    /// This test's PostgreSQL database name.
    pub fn postgres_database(&self) -> Option<&str> {
        match &self.cleanup {
            Cleanup::Postgres { name, .. } => Some(name),
            Cleanup::Sqlite(_) => None,
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // Sends the stop command; the server future, spawned on the test runtime, carries it out.
        drop(self.handle.stop(false));
        if let Cleanup::Postgres { admin_url, name } = &self.cleanup {
            let (admin_url, name) = (admin_url.clone(), name.clone());
            // Blocking I/O must not run on the async test thread.
            let _ = std::thread::spawn(move || {
                if let Ok(mut conn) = PgConnection::establish(&admin_url) {
                    let _ =
                        conn.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
                }
            })
            .join();
        }
    }
}

pub const TEST_KEY: &[u8] = b"test-signing-key-of-at-least-32-bytes!!";

pub fn test_keys() -> TokenKeys {
    TokenKeys::new(TEST_KEY, "tavana", "tavana-api", Duration::from_secs(900))
}

pub fn test_settings() -> tavana_http::Settings {
    tavana_http::Settings {
        workers: Some(1),
        shutdown_timeout: Duration::from_secs(1),
        // Spooled files are named by job id: one folder serves every test.
        import_dir: std::env::temp_dir().join("tavana-test-imports"),
        ..tavana_http::Settings::new(test_keys())
    }
}

pub fn test_pool_options() -> PoolOptions {
    PoolOptions {
        max_size: 4,
        acquire_timeout: Duration::from_secs(1),
    }
}

/// The PostgreSQL server to test against, if any.
pub fn postgres_admin_url() -> Option<String> {
    match std::env::var("TAVANA_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            if std::env::var("TAVANA_TEST_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") {
                panic!("TAVANA_TEST_REQUIRE_POSTGRES=1 but TAVANA_TEST_POSTGRES_URL is not set");
            }
            None
        }
    }
}

/// `url` with its database name replaced by `name`.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_part = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{host_part}/{name}?{query}"),
        None => format!("{host_part}/{name}"),
    }
}

/// A new, empty PostgreSQL database (no migrations applied).
pub fn create_empty_postgres_database(admin_url: &str) -> String {
    let name = format!("tavana_test_{}", uuid::Uuid::now_v7().simple());
    let mut conn = PgConnection::establish(admin_url).expect("admin connection");
    conn.batch_execute(&format!("CREATE DATABASE {name}"))
        .expect("create database");
    name
}

pub fn drop_postgres_database(admin_url: &str, name: &str) {
    let mut conn = PgConnection::establish(admin_url).expect("admin connection");
    conn.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .expect("drop database");
}

/// A migrated database, copied from a template that is migrated once per migration set.
fn create_postgres_database(admin_url: &str) -> String {
    let template = postgres_template(admin_url);
    let name = format!("tavana_test_{}", uuid::Uuid::now_v7().simple());
    let mut conn = PgConnection::establish(admin_url).expect("admin connection");
    conn.batch_execute(&format!(
        "CREATE DATABASE {name} TEMPLATE {template} STRATEGY FILE_COPY"
    ))
    .expect("copy the template database");
    name
}

/// Name of the migrated template database. Built once per set of migrations, under an advisory
/// lock so that concurrent test processes agree; a template is renamed into place only once it is
/// complete.
fn postgres_template(admin_url: &str) -> &'static str {
    static TEMPLATE: OnceLock<String> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let name = format!("tavana_template_{:016x}", migrations_fingerprint());
        let mut conn = PgConnection::establish(admin_url).expect("admin connection");
        conn.batch_execute("SELECT pg_advisory_lock(7461766174657374)")
            .expect("lock");
        let exists: bool = diesel::select(diesel::dsl::sql::<diesel::sql_types::Bool>(&format!(
            "EXISTS (SELECT 1 FROM pg_database WHERE datname = '{name}')"
        )))
        .get_result(&mut conn)
        .expect("look for the template");
        if !exists {
            let building = format!("{name}_building");
            // One statement per call: several in one batch would run in a transaction block.
            conn.batch_execute(&format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)"))
                .expect("remove a half-built template");
            conn.batch_execute(&format!("CREATE DATABASE {building}"))
                .expect("create the template");
            Database::migrate(&with_database(admin_url, &building)).expect("migrate the template");
            conn.batch_execute(&format!("ALTER DATABASE {building} RENAME TO {name}"))
                .expect("rename the template");
        }
        conn.batch_execute("SELECT pg_advisory_unlock(7461766174657374)")
            .expect("unlock");
        name
    })
}

/// Changes whenever a PostgreSQL migration file changes.
fn migrations_fingerprint() -> u64 {
    use std::hash::{Hash, Hasher};
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/postgres");
    let mut files = Vec::new();
    for dir in std::fs::read_dir(&root).expect("migrations folder") {
        let dir = dir.expect("entry").path();
        let migration = dir.file_name().map(|n| n.to_string_lossy().into_owned());
        for file in ["up.sql", "down.sql"] {
            let content = std::fs::read(dir.join(file)).unwrap_or_default();
            files.push((migration.clone(), file, content));
        }
    }
    files.sort();
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    files.hash(&mut hasher);
    hasher.finish()
}

/// The body of a problem+json answer, after checking its media type and status.
/// `GET path` as the administrator, which must answer 200; its JSON body.
pub async fn get_json(app: &TestApp, path: &str) -> serde_json::Value {
    let response = app.get(path).await;
    assert_eq!(response.status(), 200, "GET {path}");
    response.json().await.expect("json")
}

pub async fn problem(response: reqwest::Response, status: u16) -> serde_json::Value {
    assert_eq!(
        response.status().as_u16(),
        status,
        "status of {}",
        response.url()
    );
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(content_type, "application/problem+json");
    let request_id = response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body: serde_json::Value = response.json().await.expect("problem body is JSON");
    assert_eq!(body["status"], status);
    assert!(
        body["type"]
            .as_str()
            .is_some_and(|t| t.starts_with("urn:tavana:problem:"))
    );
    assert!(body["title"].is_string());
    assert_eq!(
        body["request_id"],
        request_id.as_str(),
        "problem carries the request id"
    );
    body
}

/// A problem document with this status whose detail says `words`.
pub async fn refused(response: reqwest::Response, status: u16, words: &str) -> serde_json::Value {
    let body = problem(response, status).await;
    assert!(
        body["detail"].as_str().is_some_and(|d| d.contains(words)),
        "the detail says {words:?}: {body}"
    );
    body
}

/// What the transaction of `holding` does once the request waits for the rows it holds.
#[derive(Debug, Clone)]
pub enum Then {
    /// Runs these statements (waiting at most 5 s for a lock), then gives the rows back unchanged.
    Run(String),
    /// Commits its change.
    Commit,
}

/// PostgreSQL only: sends `request` while another transaction, in the middle of a write as the
/// API makes them, holds rows (`hold`, an UPDATE) and then, once the request waits for a lock,
/// takes the audit log's order lock (within 5 s), as every writer does last. Returns whether that
/// transaction got the lock, and the request's answer: a request that took the order lock before
/// it wrote the held rows deadlocks with it, and one of the two fails.
pub async fn beside_a_writer(
    app: &TestApp,
    hold: String,
    request: reqwest::RequestBuilder,
) -> (bool, reqwest::Response) {
    let order_lock = format!(
        "SELECT pg_advisory_xact_lock({})",
        tavana_persistence::audit::CHAIN_LOCK_KEY
    );
    holding(app, hold, Then::Run(order_lock), request).await
}

/// PostgreSQL only: sends `request` while another transaction holds rows (`hold`, an UPDATE), and
/// once the request (or the work it starts) waits for them, does `then`. Returns whether that
/// transaction did it (ran its statements, or committed), and the request's answer. Fails the
/// test if nothing waits for the held rows.
pub async fn holding(
    app: &TestApp,
    hold: String,
    then: Then,
    request: reqwest::RequestBuilder,
) -> (bool, reqwest::Response) {
    let url = with_database(
        &postgres_admin_url().expect("postgres"),
        app.postgres_database().expect("postgres"),
    );
    let (held, is_held) = std::sync::mpsc::channel();
    let (go, gone) = std::sync::mpsc::channel::<()>();
    let writer = {
        let url = url.clone();
        std::thread::spawn(move || {
            let mut conn = PgConnection::establish(&url).expect("connection");
            conn.transaction(|conn| {
                conn.batch_execute(&hold)?;
                let pid: i32 = diesel::select(diesel::dsl::sql::<diesel::sql_types::Integer>(
                    "pg_backend_pid()",
                ))
                .get_result(conn)?;
                held.send(pid).expect("told");
                gone.recv().expect("go");
                match then {
                    Then::Run(sql) => {
                        conn.batch_execute(&format!("SET LOCAL lock_timeout = '5s'; {sql}"))?;
                        // Gives the rows back unchanged.
                        Err::<(), _>(diesel::result::Error::RollbackTransaction)
                    }
                    Then::Commit => Ok(()),
                }
            })
        })
    };
    let writer_pid = is_held.recv().expect("rows held");
    let answer = tokio::spawn(request.send());
    // Until some backend, the request's, waits for this writer.
    let waits = tokio::task::spawn_blocking(move || {
        let mut conn = PgConnection::establish(&url).expect("connection");
        (0..200).any(|_| {
            let waiting: bool = diesel::select(diesel::dsl::sql::<diesel::sql_types::Bool>(&format!(
                "EXISTS (SELECT 1 FROM pg_stat_activity WHERE {writer_pid} = ANY (pg_blocking_pids(pid)))"
            )))
            .get_result(&mut conn)
            .expect("activity read");
            std::thread::sleep(Duration::from_millis(25));
            waiting
        })
    })
    .await
    .expect("watched");
    go.send(()).expect("go");
    let outcome = writer.join().expect("writer ends");
    assert!(waits, "the request waits for the held rows");
    let done = match outcome {
        Ok(()) => true,
        Err(diesel::result::Error::RollbackTransaction) => true,
        Err(_) => false,
    };
    (done, answer.await.expect("sent").expect("answered"))
}
