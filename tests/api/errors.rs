//! Every failure answers RFC 9457 problem+json, including actix's own.

use serde_json::json;

use crate::backend_tests;
use crate::helpers::{TestApp, problem};

backend_tests!(
    malformed_json_is_400,
    wrong_json_shape_is_422,
    missing_content_type_is_415,
    unknown_route_is_404,
    wrong_method_is_405,
    oversized_body_is_413,
    bad_path_is_400,
    bad_query_is_400,
    unknown_query_parameter_is_400,
    validation_failure_is_422_with_fields,
    request_id_is_echoed_or_generated,
    no_answer_is_cached_or_sniffed,
);

/// Answers carry personal data: none may be kept by a cache, whether it succeeded or failed.
async fn no_answer_is_cached_or_sniffed(app: TestApp) {
    for response in [
        app.get("/api/v1/users").await,
        app.get("/api/v1/persons/not-an-id").await,
        app.client
            .get(app.url("/api/v1/users"))
            .send()
            .await
            .expect("sent"),
    ] {
        let headers = response.headers();
        assert_eq!(
            headers["cache-control"],
            "no-store",
            "{}",
            response.status()
        );
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers["referrer-policy"], "no-referrer");
    }
}

async fn malformed_json_is_400(app: TestApp) {
    let response = app
        .client
        .post(app.url("/api/v1/areas"))
        .bearer_auth(&app.admin_token)
        .header("content-type", "application/json")
        .body(r#"{"level": "province", "code": "#)
        .send()
        .await
        .expect("sent");
    let body = problem(response, 400).await;
    assert_eq!(body["type"], "urn:tavana:problem:bad-request");
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("malformed JSON"))
    );
}

async fn wrong_json_shape_is_422(app: TestApp) {
    let response = app
        .post_json(
            "/api/v1/areas",
            &json!({"level": "village", "code": "X", "name_fa": "x", "name_en": "x"}),
        )
        .await;
    let body = problem(response, 422).await;
    assert_eq!(body["errors"][0]["field"], "body");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("village"))
    );
}

async fn missing_content_type_is_415(app: TestApp) {
    let response = app
        .client
        .post(app.url("/api/v1/areas"))
        .bearer_auth(&app.admin_token)
        .body("{}")
        .send()
        .await
        .expect("sent");
    problem(response, 415).await;
}

async fn unknown_route_is_404(app: TestApp) {
    let body = problem(app.get("/api/v1/no-such-thing").await, 404).await;
    assert_eq!(body["type"], "urn:tavana:problem:not-found");
    problem(app.get("/").await, 404).await;
}

async fn wrong_method_is_405(app: TestApp) {
    let body = problem(app.delete("/api/v1/areas").await, 405).await;
    assert_eq!(body["type"], "urn:tavana:problem:method-not-allowed");
    let response = app
        .client
        .put(app.url("/health/live"))
        .bearer_auth(&app.admin_token)
        .send()
        .await
        .expect("sent");
    problem(response, 405).await;
}

async fn oversized_body_is_413(app: TestApp) {
    // The default limit is 1 MiB.
    let big = "x".repeat(1024 * 1024 + 1);
    let body = json!({"level": "province", "code": "BIG", "name_fa": big, "name_en": "x"});
    let body = problem(app.post_json("/api/v1/areas", &body).await, 413).await;
    assert_eq!(body["type"], "urn:tavana:problem:payload-too-large");
    // Refused from the announced length alone, without reading the body: nothing was written.
    let list: serde_json::Value = app.get("/api/v1/areas").await.json().await.expect("json");
    assert_eq!(list["items"], json!([]));
}

async fn bad_path_is_400(app: TestApp) {
    let body = problem(app.get("/api/v1/areas/not-a-uuid").await, 400).await;
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("invalid path"))
    );
}

async fn bad_query_is_400(app: TestApp) {
    problem(app.get("/api/v1/areas?limit=many").await, 400).await;
    problem(app.get("/api/v1/areas?level=village").await, 400).await;
    problem(app.get("/api/v1/areas?limit=201").await, 400).await;
    problem(app.get("/api/v1/areas?limit=0").await, 400).await;
    problem(app.get("/api/v1/areas?cursor=%25%25").await, 400).await;
}

async fn unknown_query_parameter_is_400(app: TestApp) {
    // A misspelt filter must not silently return everything.
    let body = problem(app.get("/api/v1/areas?levle=city").await, 400).await;
    assert!(body["detail"].as_str().is_some_and(|d| d.contains("levle")));
}

async fn validation_failure_is_422_with_fields(app: TestApp) {
    let response = app
        .post_json(
            "/api/v1/areas",
            &json!({"level": "city", "code": "bad code!", "name_fa": "  ", "name_en": "Mashhad"}),
        )
        .await;
    let body = problem(response, 422).await;
    assert_eq!(body["type"], "urn:tavana:problem:validation");
    let fields: Vec<(&str, &str)> = body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| {
            (
                e["field"].as_str().unwrap_or(""),
                e["code"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        fields,
        [
            ("code", "format"),
            ("name_fa", "required"),
            ("parent_id", "required")
        ]
    );
}

async fn request_id_is_echoed_or_generated(app: TestApp) {
    let response = app
        .client
        .get(app.url("/health/live"))
        .bearer_auth(&app.admin_token)
        .header("x-request-id", "import-batch-42")
        .send()
        .await
        .expect("sent");
    assert_eq!(response.headers()["x-request-id"], "import-batch-42");

    let generated = app.get("/health/live").await;
    let id = generated.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");

    // An id that could smuggle text into the logs is replaced.
    let response = app
        .client
        .get(app.url("/api/v1/nowhere"))
        .bearer_auth(&app.admin_token)
        .header("x-request-id", "a b\"c")
        .send()
        .await
        .expect("sent");
    let body = problem(response, 404).await;
    assert_ne!(body["request_id"], "a b\"c");
}
