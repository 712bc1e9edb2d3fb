//! Probes, metrics, CORS, and what happens when the database goes away and comes back.

use std::time::Duration;

use serde_json::{Value, json};

use crate::backend_tests;
use crate::helpers::{Backend, TestApp, problem, test_settings};

backend_tests!(
    live_and_ready_answer_ok,
    metrics_count_requests_per_route_and_status,
    docs_and_spec_are_served,
);

async fn live_and_ready_answer_ok(app: TestApp) {
    for path in ["/health/live", "/health/ready"] {
        let response = app.get(path).await;
        assert_eq!(response.status(), 200, "{path}");
        let body: Value = response.json().await.expect("json");
        assert_eq!(body, json!({"status": "ok"}));
    }
}

async fn metrics_count_requests_per_route_and_status(app: TestApp) {
    let id = "01936b2e-0000-7000-8000-000000000000";
    for _ in 0..3 {
        app.get(&format!("/api/v1/areas/{id}")).await;
    }
    app.get("/health/ready").await;
    let response = app.get("/metrics").await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .is_ok_and(|t| t.starts_with("application/openmetrics-text"))
    );
    let text = response.text().await.expect("text");
    assert!(
        text.contains(
            r#"tavana_http_requests_total{method="GET",route="/api/v1/areas/{id}",status="404"} 3"#
        ),
        "{text}"
    );
    assert!(text.contains(
        r#"tavana_http_requests_total{method="GET",route="/health/ready",status="200"} 1"#
    ));
    assert!(text.contains("tavana_http_request_duration_seconds_bucket"));
    assert!(text.contains("tavana_db_pool_connections"));
    // Raw paths (with ids) never become labels.
    assert!(!text.contains(id));
}

async fn docs_and_spec_are_served(app: TestApp) {
    let response = app.get("/docs").await;
    assert!(response.status().is_redirection());
    let response = app.get("/docs/").await;
    assert_eq!(response.status(), 200);
    let html = response.text().await.expect("html");
    assert!(html.contains("swagger"), "Swagger UI page");
    let spec: Value = app
        .get("/api-docs/openapi.json")
        .await
        .json()
        .await
        .expect("spec");
    assert_eq!(
        spec,
        serde_json::to_value(tavana_http::openapi()).expect("spec json")
    );
}

/// PostgreSQL only: the test's database refuses connections for a while, then comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_outage_gives_503_and_the_service_recovers() {
    let Some(app) = TestApp::spawn(Backend::Postgres).await else {
        return;
    };
    let name = app.postgres_database().expect("postgres").to_owned();
    assert_eq!(app.get("/health/ready").await.status(), 200);

    app.postgres_admin(&format!(
        "ALTER DATABASE {name} ALLOW_CONNECTIONS false;
         SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE datname = '{name}';"
    ));
    let response = app.get("/health/ready").await;
    assert!(response.headers().contains_key("retry-after"));
    let body = problem(response, 503).await;
    assert_eq!(body["type"], "urn:tavana:problem:unavailable");
    assert!(
        !body.to_string().contains(&name),
        "no internals in the answer"
    );
    problem(app.get("/api/v1/areas").await, 503).await;
    assert_eq!(app.get("/health/live").await.status(), 200, "still alive");

    app.postgres_admin(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"));
    let mut status = 0;
    for _ in 0..20 {
        status = app.get("/health/ready").await.status().as_u16();
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(status, 200, "ready again once the database is back");
    assert_eq!(app.get("/api/v1/areas").await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_allows_configured_origins_only() {
    let settings = tavana_http::Settings {
        cors_origins: vec!["https://app.tavana.example".to_owned()],
        ..test_settings()
    };
    let app = TestApp::spawn_with(Backend::Sqlite, settings)
        .await
        .expect("sqlite app");

    let response = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/api/v1/areas"))
        .bearer_auth(&app.admin_token)
        .header("origin", "https://app.tavana.example")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type,idempotency-key,content-encoding",
        )
        .send()
        .await
        .expect("sent");
    assert!(response.status().is_success());
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "https://app.tavana.example"
    );

    let response = app
        .client
        .get(app.url("/api/v1/areas"))
        .bearer_auth(&app.admin_token)
        .header("origin", "https://app.tavana.example")
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);
    let exposed = response.headers()["access-control-expose-headers"]
        .to_str()
        .expect("ascii")
        .to_ascii_lowercase();
    assert!(exposed.contains("x-request-id") && exposed.contains("etag"));

    let response = app
        .client
        .get(app.url("/api/v1/areas"))
        .bearer_auth(&app.admin_token)
        .header("origin", "https://evil.example")
        .send()
        .await
        .expect("sent");
    // Answered, but without the header a browser needs to hand the answer to that page.
    assert!(
        !response
            .headers()
            .contains_key("access-control-allow-origin")
    );
    let response = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/api/v1/areas"))
        .bearer_auth(&app.admin_token)
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .expect("sent");
    assert!(
        !response
            .headers()
            .contains_key("access-control-allow-origin")
    );
    assert!(response.status().is_client_error());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_configured_origins_no_cors_headers_are_sent() {
    let app = TestApp::spawn(Backend::Sqlite).await.expect("sqlite app");
    let response = app
        .client
        .get(app.url("/api/v1/areas"))
        .bearer_auth(&app.admin_token)
        .header("origin", "https://elsewhere.example")
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);
    assert!(
        !response
            .headers()
            .contains_key("access-control-allow-origin")
    );
}

/// With a limit of 5 requests a minute: the sixth of one caller is refused, another caller and
/// the probes are not.
async fn rate_limit_refuses_a_busy_caller_only(backend: Backend) {
    let settings = tavana_http::Settings {
        rate_limit_per_minute: 5,
        ..test_settings()
    };
    let Some(app) = TestApp::spawn_with(backend, settings).await else {
        return;
    };
    for _ in 0..5 {
        assert_eq!(app.get("/api/v1/areas").await.status(), 200);
    }
    let response = app.get("/api/v1/areas").await;
    assert!(response.headers().contains_key("retry-after"));
    let body = problem(response, 429).await;
    assert_eq!(body["type"], "urn:tavana:problem:too-many-requests");

    let other = app.mint(tavana_domain::access::Role::Auditor).await;
    let response = app
        .client
        .get(app.url("/api/v1/areas"))
        .bearer_auth(&other)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200, "another caller has its own count");
    for _ in 0..10 {
        assert_eq!(
            app.get("/health/ready").await.status(),
            200,
            "probes are not limited"
        );
    }
}

/// Behind a trusted proxy a caller is the address the proxy appended to `X-Forwarded-For`, the
/// last one: what the client wrote before it, or in `Forwarded`, does not make it another caller.
async fn a_trusted_proxy_names_the_caller_by_the_address_it_appended(backend: Backend) {
    let mut settings = tavana_http::Settings {
        rate_limit_per_minute: 3,
        ..test_settings()
    };
    settings.login.trust_forwarded = true;
    let Some(app) = TestApp::spawn_with(backend, settings).await else {
        return;
    };
    let from = |claimed: u32, proxy_saw: &str| {
        app.client
            .get(app.url("/api/v1/areas"))
            .header("forwarded", format!("for=192.0.2.{claimed}"))
            .header(
                "x-forwarded-for",
                format!("203.0.113.{claimed}, {proxy_saw}"),
            )
            .send()
    };
    for claimed in 1..=3 {
        assert_eq!(
            from(claimed, "198.51.100.7").await.expect("sent").status(),
            401
        );
    }
    let response = from(4, "198.51.100.7").await.expect("sent");
    problem(response, 429).await;
    // Another address the proxy saw is another caller.
    assert_eq!(from(5, "198.51.100.8").await.expect("sent").status(), 401);
    // Any case of the scheme names the token's subject, as authentication reads it.
    let token = app.mint(tavana_domain::access::Role::Auditor).await;
    for _ in 0..3 {
        let response = app
            .client
            .get(app.url("/api/v1/areas"))
            .header("authorization", format!("BEARER {token}"))
            .header("x-forwarded-for", "198.51.100.7")
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trusted_proxy_sqlite() {
    a_trusted_proxy_names_the_caller_by_the_address_it_appended(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trusted_proxy_postgres() {
    a_trusted_proxy_names_the_caller_by_the_address_it_appended(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_sqlite() {
    rate_limit_refuses_a_busy_caller_only(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_postgres() {
    rate_limit_refuses_a_busy_caller_only(Backend::Postgres).await;
}
