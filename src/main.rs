//! `tavana`: the command line of the service. `tavana` alone (or `tavana serve`) runs the API.

use std::io::IsTerminal;
use std::net::TcpListener;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use tavana_persistence::{Database, PoolOptions};
use tracing_subscriber::EnvFilter;

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

    /// Most database connections held open at once.
    #[arg(long, env = "TAVANA_DB_POOL_SIZE", default_value_t = 10, global = true, value_parser = clap::value_parser!(u32).range(1..=1000))]
    db_pool_size: u32,

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

fn pool_options(global: &GlobalArgs) -> PoolOptions {
    PoolOptions {
        max_size: global.db_pool_size,
        acquire_timeout: Duration::from_secs(global.db_timeout),
    }
}

/// Anything that stops the program: printed as one line on standard error.
type Failure = String;

fn serve(global: &GlobalArgs, args: ServeArgs) -> Result<(), Failure> {
    for origin in &args.cors_origins {
        tavana_http::check_cors_origin(origin)?;
    }
    let db =
        Database::open(&global.database_url, &pool_options(global)).map_err(|e| e.to_string())?;
    let listener = TcpListener::bind(&args.bind)
        .map_err(|e| format!("cannot listen on {}: {e}", args.bind))?;
    let settings = tavana_http::Settings {
        cors_origins: args.cors_origins,
        body_limit: args.body_limit,
        shutdown_timeout: Duration::from_secs(args.shutdown_timeout),
        workers: args.workers,
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
