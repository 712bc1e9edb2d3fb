//! `tavana`: the command line of the service. `tavana` alone (or `tavana serve`) runs the API.

use std::io::IsTerminal;
use std::net::TcpListener;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use tavana_domain::access::Role;
use tavana_domain::id::AreaId;
use tavana_domain::organisation::OrganisationKind;
use tavana_http::auth::bootstrap::CliUser;
use tavana_http::auth::handlers::LoginPolicy;
use tavana_http::auth::jwt::TokenKeys;
use tavana_persistence::audit::Verification;
use tavana_persistence::db::Backend;
use tavana_persistence::{Database, PoolOptions};
use tracing_subscriber::EnvFilter;

/// jemalloc instead of the system allocator: glibc's per-thread arenas kept about 35 MB of freed
/// memory during a large import, whose thread allocates and frees a batch at a time (peak 168 MB
/// with glibc, 148 MB with jemalloc, importing 1,000,000 persons into SQLite).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Debug, Parser)]
#[command(
    name = "tavana",
    version,
    about = "Tavana: the API of the empowerment programme for Mashhad's marginal neighbourhoods",
    long_about = "Tavana: the API of the empowerment programme for Mashhad's marginal \
neighbourhoods.\n\nWith no subcommand, runs the server (`serve`). Every option can also be set \
through the environment variable shown in brackets."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    /// Server options, used when no subcommand is given.
    #[command(flatten)]
    serve: ServeArgs,

    #[command(flatten)]
    global: GlobalArgs,
}

#[derive(Debug, Args)]
struct GlobalArgs {
    /// Database: sqlite://PATH (embedded; PATH relative to the working directory) or
    /// postgres://USER:PASSWORD@HOST:PORT/DB.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://./data/tavana.db",
        global = true,
        hide_env_values = true
    )]
    database_url: String,

    /// Most database connections held open at once [default: twice the CPU cores, at least 4].
    #[arg(long, env = "TAVANA_DB_POOL_SIZE", global = true, value_parser = clap::value_parser!(u32).range(1..=1000))]
    db_pool_size: Option<u32>,

    /// Seconds a request waits for a database connection before it is answered 503.
    #[arg(long, env = "TAVANA_DB_TIMEOUT", default_value_t = 5, global = true, value_parser = clap::value_parser!(u64).range(1..=600))]
    db_timeout: u64,

    /// Log format: `json` (one object per line, for production) or `text` (for people).
    #[arg(long, env = "TAVANA_LOG_FORMAT", value_enum, default_value_t = LogFormat::Json, global = true)]
    log_format: LogFormat,

    /// What to log, as a tracing filter (`info`, `tavana_http=debug,info`, …). `RUST_LOG` is
    /// read when this is not set.
    #[arg(long, env = "TAVANA_LOG", global = true)]
    log: Option<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Json,
    Text,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the API server (the default): migrates the database, then serves until SIGTERM/SIGINT.
    Serve(ServeArgs),
    /// Apply pending database migrations and exit.
    Migrate,
    /// Print the OpenAPI document (JSON) to standard output.
    Openapi,
    /// Create a staff account (and its organisation, if new). Prints a generated password once.
    CreateUser(CreateUserArgs),
    /// Audit-log tools.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Fill an empty database with a realistic, deterministic demo of Mashhad's margins: areas,
    /// facilitation offices, households with Persian names, persons, consents, assessments and
    /// enrolments in several states.
    DemoData(DemoDataArgs),
    /// Import a CSV or JSON Lines file straight into the database, through the same pipeline as
    /// POST /api/v1/imports (for administrators at the command line; the job is audited as the
    /// system).
    Import(ImportArgs),
}

#[derive(Debug, Args)]
struct ImportArgs {
    /// What the file holds.
    #[arg(long, value_parser = ["households", "persons", "assessments", "enrolments", "attendance", "purchases"])]
    kind: String,
    /// `validate` checks every row and writes nothing; `commit` writes.
    #[arg(long, value_parser = ["validate", "commit"])]
    mode: String,
    /// `all`: nothing is written if any row fails; `rows`: good rows are written.
    #[arg(long, default_value = "all", value_parser = ["all", "rows"])]
    atomicity: String,
    /// The file: `.csv`, or `.jsonl`/`.ndjson` for JSON Lines.
    file: std::path::PathBuf,
}

#[derive(Debug, Args)]
struct DemoDataArgs {
    /// How many households (about three persons each).
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u32).range(1..=2_000_000))]
    households: u32,
    /// The same seed gives the same data.
    #[arg(long, default_value_t = 1398)]
    seed: u64,
    /// Enrol every household and take each through the whole path with two pauses (twelve
    /// transitions each): the history the progress benchmark needs.
    #[arg(long)]
    full_history: bool,
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Check the hash chain of the audit log; report the first broken row and exit 1 if any.
    Verify,
}

#[derive(Debug, Args)]
struct CreateUserArgs {
    #[arg(long)]
    username: String,
    /// Name shown in front ends (defaults to the username).
    #[arg(long)]
    display_name: Option<String>,
    /// admin, programme_manager, facilitator, trainer, permit_officer, supporter, partner, auditor.
    #[arg(long)]
    role: String,
    /// The organisation's name; created if no organisation has it.
    #[arg(long, default_value = tavana_http::auth::bootstrap::LABOUR_OFFICE)]
    organisation: String,
    /// Kind of a new organisation: labour_office, facilitation_office, womens_affairs_bureau,
    /// partner_agency, counselling_centre, training_provider, ministry.
    #[arg(long, default_value = "labour_office")]
    organisation_kind: String,
    /// An area (id) an area-scoped role works in; repeat for several.
    #[arg(long = "area")]
    areas: Vec<String>,
    /// The password; when absent a random one is generated and printed once.
    #[arg(long, env = "TAVANA_NEW_USER_PASSWORD", hide_env_values = true)]
    password: Option<String>,
}

#[derive(Debug, Clone, Args)]
struct ServeArgs {
    /// Address and port to listen on.
    #[arg(long, env = "TAVANA_BIND", default_value = "127.0.0.1:8080")]
    bind: String,

    /// Origins a browser front end may call the API from, comma-separated
    /// (`https://app.example.org`), or `*`. None by default: no CORS headers are sent.
    #[arg(long, env = "TAVANA_CORS_ORIGINS", value_delimiter = ',')]
    cors_origins: Vec<String>,

    /// Largest request body accepted, in bytes; larger ones get 413.
    #[arg(long, env = "TAVANA_BODY_LIMIT", default_value_t = 1024 * 1024)]
    body_limit: usize,

    /// Seconds in-flight requests may take to finish after SIGTERM/SIGINT.
    #[arg(long, env = "TAVANA_SHUTDOWN_TIMEOUT", default_value_t = 30)]
    shutdown_timeout: u64,

    /// HTTP worker threads (default: one per CPU core).
    #[arg(long, env = "TAVANA_WORKERS")]
    workers: Option<usize>,

    /// Key that signs access tokens (at least 32 bytes; every replica needs the same). Required
    /// with PostgreSQL; on SQLite one is generated once and kept beside the database file.
    #[arg(long, env = "TAVANA_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,

    /// Seconds an access token is valid.
    #[arg(long, env = "TAVANA_ACCESS_TOKEN_TTL", default_value_t = 900, value_parser = clap::value_parser!(u64).range(60..=3600))]
    access_token_ttl: u64,

    /// Seconds a refresh token is valid.
    #[arg(long, env = "TAVANA_REFRESH_TOKEN_TTL", default_value_t = 30 * 24 * 3600, value_parser = clap::value_parser!(u64).range(3600..=365 * 24 * 3600))]
    refresh_token_ttl: u64,

    /// Failed logins for one username within the window before further attempts get 429.
    #[arg(long, env = "TAVANA_LOGIN_MAX_FAILURES", default_value_t = 5)]
    login_max_failures: i64,

    /// Failed logins from one address within the window before further attempts get 429.
    #[arg(
        long,
        env = "TAVANA_LOGIN_MAX_FAILURES_PER_ADDRESS",
        default_value_t = 50
    )]
    login_max_failures_per_address: i64,

    /// Seconds over which failed logins are counted.
    #[arg(long, env = "TAVANA_LOGIN_WINDOW", default_value_t = 900, value_parser = clap::value_parser!(u64).range(60..=86400))]
    login_window: u64,

    /// Take client addresses (for login throttling and the rate limit) from the last entry of
    /// `X-Forwarded-For`, the one the proxy appends. Only behind a reverse proxy that does.
    #[arg(long, env = "TAVANA_TRUST_FORWARDED")]
    trust_forwarded: bool,

    /// Requests per caller per minute (the token's subject, else the client address) before 429;
    /// 0 turns the limit off. Counted in the database, so all replicas share it.
    #[arg(long, env = "TAVANA_RATE_LIMIT", default_value_t = 0)]
    rate_limit: u32,

    /// Lookups per client address per minute of the public permit verification (no token), before
    /// 429. Counted in the database.
    #[arg(long, env = "TAVANA_PUBLIC_RATE_LIMIT", default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    public_rate_limit: u32,

    /// Years a home-business permit, and each renewal, is valid.
    #[arg(long, env = "TAVANA_PERMIT_VALIDITY_YEARS", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
    permit_validity_years: u32,

    /// Folder where uploaded import files are kept until their job is done.
    #[arg(long, env = "TAVANA_IMPORT_DIR", default_value = "data/imports")]
    import_dir: std::path::PathBuf,

    /// Milliseconds between the webhook dispatcher's rounds (new deliveries, due sends).
    #[arg(long, env = "TAVANA_WEBHOOK_POLL_MS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(10..=3_600_000))]
    webhook_poll_ms: u64,

    /// Attempts per webhook delivery before it is given up as failed.
    #[arg(long, env = "TAVANA_WEBHOOK_MAX_ATTEMPTS", default_value_t = 6, value_parser = clap::value_parser!(u32).range(1..=50))]
    webhook_max_attempts: u32,

    /// Milliseconds to wait after a failed webhook attempt; doubled after each further one
    /// (at most 6 hours).
    #[arg(long, env = "TAVANA_WEBHOOK_BACKOFF_MS", default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(1..=21_600_000))]
    webhook_backoff_ms: u64,

    /// Failed deliveries in a row after which a webhook endpoint is disabled.
    #[arg(long, env = "TAVANA_WEBHOOK_MAX_FAILURES", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    webhook_max_failures: u32,

    /// Milliseconds one webhook attempt may take before it counts as failed.
    #[arg(long, env = "TAVANA_WEBHOOK_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(100..=300_000))]
    webhook_timeout_ms: u64,

    /// Accept `http://` webhook URLs on a loopback host (127.0.0.1, localhost, [::1]); for local
    /// development only. Otherwise endpoints must be `https://`.
    #[arg(long, env = "TAVANA_WEBHOOK_ALLOW_HTTP_LOOPBACK")]
    webhook_allow_http_loopback: bool,

    /// Password of the first administrator, created when the database has no users. When not set,
    /// a random one is generated and printed once.
    #[arg(long, env = "TAVANA_ADMIN_PASSWORD", hide_env_values = true)]
    admin_password: Option<String>,
}

fn init_logging(global: &GlobalArgs) {
    let filter = global
        .log
        .as_deref()
        .map(EnvFilter::new)
        .or_else(|| EnvFilter::try_from_default_env().ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match global.log_format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .init(),
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
    }
}

/// More connections than cores only queue work inside the database: on a 2-core machine a pool of
/// 10 gave PostgreSQL reads a p99 of 250 ms, a pool of 4 one of 6 ms at the same throughput.
fn default_pool_size() -> u32 {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    u32::try_from(cores * 2).unwrap_or(u32::MAX).max(4)
}

fn pool_options(global: &GlobalArgs) -> PoolOptions {
    PoolOptions {
        max_size: global.db_pool_size.unwrap_or_else(default_pool_size),
        acquire_timeout: Duration::from_secs(global.db_timeout),
    }
}

/// Anything that stops the program: printed as one line on standard error.
type Failure = String;

fn serve(global: &GlobalArgs, args: ServeArgs) -> Result<(), Failure> {
    for origin in &args.cors_origins {
        tavana_http::check_cors_origin(origin)?;
    }
    let signing_key = signing_key(&global.database_url, args.jwt_secret.as_deref())?;
    let db =
        Database::open(&global.database_url, &pool_options(global)).map_err(|e| e.to_string())?;
    if let Some((user, password)) =
        tavana_http::auth::bootstrap::ensure_admin(&db, args.admin_password.clone())?
    {
        tracing::info!(username = %user.username, "created the first administrator");
        if let Some(password) = password {
            // Shown once, on the console only; it is stored nowhere but as an argon2id hash.
            println!(
                "\nFirst administrator created.\n  username: {}\n  password: {password}\nChange it after logging in (PUT /api/v1/me/password).\n",
                user.username
            );
        }
    }
    let listener = TcpListener::bind(&args.bind)
        .map_err(|e| format!("cannot listen on {}: {e}", args.bind))?;
    let tokens = TokenKeys::new(
        &signing_key,
        "tavana",
        "tavana-api",
        Duration::from_secs(args.access_token_ttl),
    );
    let settings = tavana_http::Settings {
        cors_origins: args.cors_origins,
        body_limit: args.body_limit,
        shutdown_timeout: Duration::from_secs(args.shutdown_timeout),
        workers: args.workers,
        login: LoginPolicy {
            refresh_ttl: Duration::from_secs(args.refresh_token_ttl),
            window: Duration::from_secs(args.login_window),
            max_failures_per_username: args.login_max_failures,
            max_failures_per_address: args.login_max_failures_per_address,
            trust_forwarded: args.trust_forwarded,
            ..LoginPolicy::default()
        },
        rate_limit_per_minute: args.rate_limit,
        public_rate_limit_per_minute: args.public_rate_limit,
        permit_validity_years: args.permit_validity_years,
        import_dir: args.import_dir.clone(),
        webhooks: tavana_http::dispatcher::WebhookSettings {
            poll: Duration::from_millis(args.webhook_poll_ms),
            max_attempts: args.webhook_max_attempts,
            backoff_base: Duration::from_millis(args.webhook_backoff_ms),
            max_failures: args.webhook_max_failures,
            timeout: Duration::from_millis(args.webhook_timeout_ms),
            allow_http_loopback: args.webhook_allow_http_loopback,
        },
        ..tavana_http::Settings::new(tokens)
    };
    let address = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or(args.bind);
    tracing::info!(
        backend = db.backend_name(),
        address = %address,
        "Tavana listening on http://{address} (docs at /docs)"
    );
    let server = tavana_http::build(db, settings, listener)
        .map_err(|e| format!("cannot start the server: {e}"))?;
    // actix-web stops on SIGTERM/SIGINT and lets in-flight requests finish.
    actix_web::rt::System::new()
        .block_on(server)
        .map_err(|e| format!("server failed: {e}"))?;
    tracing::info!("Tavana stopped");
    Ok(())
}

/// The token-signing key: configured, or on SQLite kept (and first made) beside the database.
fn signing_key(database_url: &str, configured: Option<&str>) -> Result<Vec<u8>, Failure> {
    if let Some(secret) = configured {
        return tavana_http::auth::keys::from_config(secret)
            .map_err(|e| format!("TAVANA_JWT_SECRET: {e}"));
    }
    match Backend::from_url(database_url).map_err(|e| e.to_string())? {
        Backend::Sqlite(path) => {
            let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
            std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            tavana_http::auth::keys::load_or_create(&dir.join("jwt-signing.key")).map_err(|e| e.to_string())
        }
        Backend::Postgres(_) => Err(
            "set TAVANA_JWT_SECRET (at least 32 bytes) when running on PostgreSQL: every replica must sign with the same key"
                .to_owned(),
        ),
    }
}

fn create_user(global: &GlobalArgs, args: CreateUserArgs) -> Result<(), Failure> {
    let role: Role = args
        .role
        .parse()
        .map_err(|e: tavana_domain::access::UnknownName| e.to_string())?;
    let organisation_kind: OrganisationKind = args
        .organisation_kind
        .parse()
        .map_err(|e: tavana_domain::access::UnknownName| e.to_string())?;
    let areas = args
        .areas
        .iter()
        .map(|a| {
            a.parse::<AreaId>()
                .map_err(|_| format!("--area {a} is not an area id"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let db =
        Database::open(&global.database_url, &pool_options(global)).map_err(|e| e.to_string())?;
    let (user, password) = tavana_http::auth::bootstrap::create_user(
        &db,
        CliUser {
            display_name: args.display_name.unwrap_or_else(|| args.username.clone()),
            username: args.username,
            role,
            organisation: args.organisation,
            organisation_kind,
            areas,
            password: args.password,
        },
    )?;
    println!(
        "created {} ({}) with id {}",
        user.username, user.role, user.id
    );
    if let Some(password) = password {
        println!("password: {password}");
    }
    Ok(())
}

fn parse_name<T: std::str::FromStr<Err = tavana_domain::access::UnknownName>>(
    value: &str,
) -> Result<T, Failure> {
    value
        .parse()
        .map_err(|e: tavana_domain::access::UnknownName| e.to_string())
}

fn import(global: &GlobalArgs, args: &ImportArgs) -> Result<(), Failure> {
    use sha2::Digest;
    use tavana_domain::import::JobState;
    use tavana_persistence::imports::{self, NewJob};
    let path =
        std::fs::canonicalize(&args.file).map_err(|e| format!("{}: {e}", args.file.display()))?;
    let mut file = std::fs::File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut hasher = sha2::Sha256::new();
    std::io::copy(&mut file, &mut hasher).map_err(|e| format!("{}: {e}", path.display()))?;
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_lowercase);
    let format = match extension.as_deref() {
        Some("jsonl" | "ndjson") => tavana_domain::import::ImportFormat::Jsonl,
        _ => tavana_domain::import::ImportFormat::Csv,
    };
    let db =
        Database::open(&global.database_url, &pool_options(global)).map_err(|e| e.to_string())?;
    let new = NewJob {
        id: uuid::Uuid::now_v7().to_string(),
        kind: parse_name(&args.kind)?,
        mode: parse_name(&args.mode)?,
        atomicity: parse_name(&args.atomicity)?,
        format,
        principal: "cli".to_owned(),
        context: tavana_persistence::AuditContext::system(),
        scope: tavana_persistence::Scope::All,
        role: None,
        idempotency_key: None,
        checksum: hex::encode(hasher.finalize()),
        file_path: path.to_string_lossy().into_owned(),
    };
    let file_path = new.file_path.clone();
    let asked = (new.mode, new.atomicity, new.format);
    let mut conn = db.get().map_err(|e| e.to_string())?;
    let (mut job, fresh) = imports::start(&mut conn, new).map_err(|e| e.to_string())?;
    if !fresh {
        // The same file's job: done, to be resumed, or left running by a command that was stopped.
        // One still running elsewhere holds its run lock and is left to it.
        let state = job.state().map_err(|e| e.to_string())?;
        let stale = state == JobState::Running
            && imports::stopped(
                &mut conn,
                &job.id,
                "found running with no process running it",
            )
            .map_err(|e| e.to_string())?;
        match state {
            JobState::Interrupted => {}
            JobState::Running if stale => {}
            JobState::Running => {
                return Err(format!(
                    "this file is being imported by another process as job {}",
                    job.id
                ));
            }
            JobState::Completed | JobState::Failed => {
                println!(
                    "this file was imported already as job {} ({})",
                    job.id, job.state
                );
                return Ok(());
            }
        }
        // Only as it was asked (`Job::asked`).
        if job.asked().map_err(|e| e.to_string())? != asked {
            return Err(format!(
                "this file's job {} stopped before its end; it was started with --mode {} and --atomicity {} ({}): give the same to resume it",
                job.id, job.mode, job.atomicity, job.format
            ));
        }
        println!(
            "resuming job {} of this file (atomicity {})",
            job.id, job.atomicity
        );
        job = imports::resume(&mut conn, &job.id, Some(&file_path)).map_err(|e| e.to_string())?;
    }
    drop(conn);
    let job = tavana_http::imports::run_file(&db, &job, chrono::Utc::now().date_naive())
        .map_err(|e| e.to_string())?;
    println!(
        "job {}: {}; read {}, created {}, updated {}, unchanged {}, failed {}{}",
        job.id,
        job.state,
        job.rows_read,
        job.created,
        job.updated,
        job.unchanged,
        job.failed,
        job.message
            .as_deref()
            .map(|m| format!(" ({m})"))
            .unwrap_or_default()
    );
    let mut conn = db.get().map_err(|e| e.to_string())?;
    for e in imports::errors(&mut conn, &job.id, 20).map_err(|e| e.to_string())? {
        println!(
            "  row {} {}: {} ({})",
            e.row_no,
            e.col.unwrap_or_default(),
            e.message,
            e.code
        );
    }
    if job.state == "failed" {
        return Err("the file was refused".to_owned());
    }
    // A script must be able to tell that a commit wrote nothing (`validate` writes nothing by
    // design, and `rows` writes the good rows: both succeed).
    if job.mode == "commit" && job.atomicity == "all" && job.failed > 0 {
        return Err(format!(
            "nothing was written: {} rows failed and atomicity is `all`",
            job.failed
        ));
    }
    Ok(())
}

fn audit_verify(global: &GlobalArgs) -> Result<(), Failure> {
    let db =
        Database::open(&global.database_url, &pool_options(global)).map_err(|e| e.to_string())?;
    let mut conn = db.get().map_err(|e| e.to_string())?;
    match tavana_persistence::audit::verify(&mut conn).map_err(|e| e.to_string())? {
        Verification::Intact { rows } => {
            println!("audit chain intact: {rows} rows");
            Ok(())
        }
        Verification::Broken { seq, reason } => {
            Err(format!("audit chain broken at row {seq}: {reason}"))
        }
    }
}

fn demo_data(global: &GlobalArgs, args: &DemoDataArgs) -> Result<(), Failure> {
    let db =
        Database::open(&global.database_url, &pool_options(global)).map_err(|e| e.to_string())?;
    let mut conn = db.get().map_err(|e| e.to_string())?;
    let started = std::time::Instant::now();
    let households = usize::try_from(args.households).map_err(|e| e.to_string())?;
    let summary =
        tavana_persistence::demo::load(&mut conn, households, args.seed, args.full_history)
            .map_err(|e| e.to_string())?;
    println!(
        "demo data loaded in {:.1}s: {} neighbourhoods, {} households, {} persons, {} enrolments, {} transitions",
        started.elapsed().as_secs_f64(),
        summary.neighbourhoods,
        summary.households,
        summary.persons,
        summary.enrolments,
        summary.transitions
    );
    Ok(())
}

fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Some(Command::Openapi) => {
            let json = tavana_http::openapi()
                .to_pretty_json()
                .map_err(|e| format!("cannot render the OpenAPI document: {e}"))?;
            println!("{json}");
            Ok(())
        }
        Some(Command::Migrate) => {
            init_logging(&cli.global);
            let applied = Database::migrate(&cli.global.database_url).map_err(|e| e.to_string())?;
            if applied.is_empty() {
                println!("database is up to date");
            } else {
                for version in &applied {
                    println!("applied {version}");
                }
            }
            Ok(())
        }
        Some(Command::CreateUser(args)) => {
            init_logging(&cli.global);
            create_user(&cli.global, args)
        }
        Some(Command::DemoData(args)) => {
            init_logging(&cli.global);
            demo_data(&cli.global, &args)
        }
        Some(Command::Import(args)) => {
            init_logging(&cli.global);
            import(&cli.global, &args)
        }
        Some(Command::Audit(AuditCommand::Verify)) => {
            init_logging(&cli.global);
            audit_verify(&cli.global)
        }
        Some(Command::Serve(args)) => {
            init_logging(&cli.global);
            serve(&cli.global, args)
        }
        None => {
            init_logging(&cli.global);
            serve(&cli.global, cli.serve)
        }
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("tavana: error: {message}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn no_subcommand_means_serve_with_defaults() {
        let cli = Cli::try_parse_from(["tavana"]).expect("parses");
        assert!(cli.command.is_none());
        assert_eq!(cli.serve.bind, "127.0.0.1:8080");
    }

    #[test]
    fn database_url_is_global() {
        let cli = Cli::try_parse_from(["tavana", "migrate", "--database-url", "sqlite://x.db"])
            .expect("parses");
        assert_eq!(cli.global.database_url, "sqlite://x.db");
    }
}
