//! Assembles the actix-web application and server.

use std::net::TcpListener;
use std::time::Duration;

use actix_cors::Cors;
use actix_web::body::BoxBody;
use actix_web::dev::{Server, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::{Condition, DefaultHeaders, from_fn};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use tavana_persistence::Database;
use utoipa::OpenApi;
use utoipa_actix_web::{AppExt, scope};
use utoipa_swagger_ui::SwaggerUi;

use crate::auth::handlers::LoginPolicy;
use crate::auth::jwt::TokenKeys;
use crate::error::{ApiError, json_error, path_error, query_error};
use crate::metrics::Metrics;
use crate::observe::{REQUEST_ID_HEADER, observe};
use crate::openapi::ApiDoc;
use crate::rate_limit::rate_limit;
use crate::{
    AppState, api_clients, areas, assessments, audit, auth, cohorts, consents, courses, enrolments,
    health, households, imports, loans, organisations, outcomes, partners, permits, persons,
    programmes, progress, research, supporters, users, webhooks,
};

/// How the HTTP side is configured.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Origins allowed to call the API from a browser (`*` for any); empty sends no CORS headers.
    pub cors_origins: Vec<String>,
    /// Largest request body accepted, in bytes.
    pub body_limit: usize,
    /// How long in-flight requests may run after SIGTERM/SIGINT.
    pub shutdown_timeout: Duration,
    /// Worker threads; `None` means one per core.
    pub workers: Option<usize>,
    /// Access-token keys and lifetime.
    pub tokens: TokenKeys,
    /// Refresh-token lifetime and login throttling.
    pub login: LoginPolicy,
    /// Requests per caller (token subject, else address) per minute; 0 turns the limit off.
    pub rate_limit_per_minute: u32,
    /// Lookups per client address per minute of the public permit verification.
    pub public_rate_limit_per_minute: u32,
    /// Years a home-business permit (and each renewal) is valid.
    pub permit_validity_years: u32,
    /// Where uploaded import files are kept until their job is done.
    pub import_dir: std::path::PathBuf,
    /// Webhook delivery: polling, retries, back-off, disabling, timeout.
    pub webhooks: crate::dispatcher::WebhookSettings,
}

impl Settings {
    /// Defaults for everything but the token keys.
    pub fn new(tokens: TokenKeys) -> Self {
        Self {
            cors_origins: Vec::new(),
            body_limit: 1024 * 1024,
            shutdown_timeout: Duration::from_secs(30),
            workers: None,
            tokens,
            login: LoginPolicy::default(),
            rate_limit_per_minute: 0,
            public_rate_limit_per_minute: 60,
            permit_validity_years: tavana_domain::permit::DEFAULT_VALIDITY_YEARS,
            import_dir: crate::imports::default_import_dir(),
            webhooks: crate::dispatcher::WebhookSettings::default(),
        }
    }
}

/// Checks one configured CORS origin: `*`, or `http(s)://host[:port]` with no path.
pub fn check_cors_origin(origin: &str) -> Result<(), String> {
    if origin == "*" {
        return Ok(());
    }
    let rest = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
        .ok_or_else(|| format!("CORS origin `{origin}` must start with http:// or https://"))?;
    if rest.is_empty() || rest.contains('/') || header::HeaderValue::from_str(origin).is_err() {
        return Err(format!(
            "CORS origin `{origin}` must be scheme://host[:port], without a path"
        ));
    }
    Ok(())
}

/// The routes, with the OpenAPI document collected from them.
fn api() -> utoipa_actix_web::UtoipaApp<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<BoxBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .service(
            scope("/health")
                .service(health::live)
                .service(health::ready),
        )
        .service(health::metrics)
        .service(
            scope("/api/v1")
                .configure(auth::handlers::routes)
                .configure(areas::routes)
                .configure(organisations::routes)
                .configure(users::routes)
                .configure(api_clients::routes)
                .configure(audit::routes)
                .configure(households::routes)
                .configure(persons::routes)
                .configure(consents::routes)
                .configure(assessments::routes)
                .configure(outcomes::routes)
                .configure(programmes::routes)
                .configure(enrolments::routes)
                .configure(courses::routes)
                .configure(cohorts::routes)
                .configure(permits::routes)
                .configure(supporters::routes)
                .configure(progress::routes)
                .configure(imports::routes)
                .configure(loans::routes)
                .configure(partners::routes)
                .configure(research::routes)
                .configure(webhooks::routes),
        )
}

/// The OpenAPI document of the service, as served at `/api-docs/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, mut doc) = api().split_for_parts();
    crate::openapi::complete(&mut doc);
    doc
}

/// Unknown paths are 404; known paths with another method are 405.
async fn fallback(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    if req.resource_map().has_resource(req.path()) {
        Err(ApiError::MethodNotAllowed)
    } else {
        Err(ApiError::NotFound)
    }
}

fn cors(origins: &[String]) -> Cors {
    let mut cors = Cors::default()
        .allowed_methods(["GET", "POST", "PUT", "PATCH", "DELETE"])
        .allowed_headers([
            header::AUTHORIZATION,
            header::ACCEPT,
            header::CONTENT_TYPE,
            // Import files sent gzip-compressed.
            header::CONTENT_ENCODING,
            header::IF_MATCH,
            header::HeaderName::from_static("idempotency-key"),
            REQUEST_ID_HEADER,
        ])
        .expose_headers([
            header::ETAG,
            header::LOCATION,
            header::RETRY_AFTER,
            REQUEST_ID_HEADER,
        ])
        .max_age(3600);
    for origin in origins {
        cors = if origin == "*" {
            cors.allow_any_origin()
        } else {
            cors.allowed_origin(origin)
        };
    }
    cors
}

/// Builds the server on `listener`. Migrations have run already (see [`Database::open`]).
pub fn build(db: Database, settings: Settings, listener: TcpListener) -> std::io::Result<Server> {
    crate::auth::password::warm_up();
    // Imports that were running when the service last stopped can be resumed now.
    match db
        .get()
        .map(|mut c| tavana_persistence::imports::mark_interrupted(&mut c))
    {
        Ok(Ok(0)) => {}
        Ok(Ok(n)) => tracing::warn!(
            jobs = n,
            "imports interrupted by the last stop; resume them"
        ),
        Ok(Err(e)) | Err(e) => tracing::warn!(error = %e, "interrupted imports not checked"),
    }
    // Then the spooled files that no job needs any more (the interrupted ones' are kept).
    match db
        .get()
        .map(|mut c| crate::imports::sweep_spool(&mut c, &settings.import_dir))
    {
        Ok(Ok(0)) => {}
        Ok(Ok(n)) => tracing::info!(files = n, "spooled uploads no job needs removed"),
        Ok(Err(e)) | Err(e) => tracing::warn!(error = %e, "spooled uploads not swept"),
    }
    let state = web::Data::new(AppState {
        db,
        tokens: settings.tokens.clone(),
        login: settings.login.clone(),
        rate_limit_per_minute: settings.rate_limit_per_minute,
        public_rate_limit_per_minute: settings.public_rate_limit_per_minute,
        permit_validity_years: settings.permit_validity_years,
        import_dir: settings.import_dir.clone(),
        webhooks: settings.webhooks.clone(),
    });
    let (dispatcher_db, dispatcher_settings) = (state.db.clone(), settings.webhooks.clone());
    // The dispatcher runs while the server does: every copy of the app factory holds `alive`,
    // and the dispatcher stops once the server (and with it the factory) is gone.
    let (alive, still_alive) = crate::dispatcher::keep_alive();
    let metrics = web::Data::new(Metrics::new());
    let shutdown_timeout = settings.shutdown_timeout.as_secs();
    let workers = settings.workers;
    let mut server = HttpServer::new(move || {
        let _alive = &alive;
        let (app, mut doc) = api().split_for_parts();
        crate::openapi::complete(&mut doc);
        let limit = settings.body_limit;
        app.app_data(state.clone())
            .app_data(metrics.clone())
            .app_data(
                web::JsonConfig::default()
                    .limit(limit)
                    .error_handler(json_error),
            )
            .app_data(web::PayloadConfig::new(limit))
            .app_data(web::QueryConfig::default().error_handler(query_error))
            .app_data(web::PathConfig::default().error_handler(path_error))
            .service(SwaggerUi::new("/docs/{_:.*}").url("/api-docs/openapi.json", doc))
            .service(web::redirect("/docs", "/docs/"))
            .default_service(web::to(fallback))
            .wrap(from_fn(crate::conventions::refuse_nul))
            .wrap(Condition::new(
                !settings.cors_origins.is_empty(),
                cors(&settings.cors_origins),
            ))
            .wrap(from_fn(rate_limit))
            .wrap(from_fn(observe))
            // Answers carry personal data: no cache (a shared office computer, a proxy) keeps
            // them, no browser guesses their type, and no link sends their address on.
            .wrap(
                DefaultHeaders::new()
                    .add((header::CACHE_CONTROL, "no-store"))
                    .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
                    .add((header::REFERRER_POLICY, "no-referrer")),
            )
    })
    .shutdown_timeout(shutdown_timeout)
    .listen(listener)?;
    if let Some(workers) = workers {
        server = server.workers(workers);
    }
    let server = server.run();
    // Its own thread and runtime: `build` may run outside any runtime (see src/main.rs).
    crate::dispatcher::start(dispatcher_db, dispatcher_settings, still_alive)?;
    Ok(server)
}
