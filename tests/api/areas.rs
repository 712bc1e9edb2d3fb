//! `/api/v1/areas`: the first real table, exercised on both backends.

use serde_json::{Value, json};

use crate::backend_tests;
use crate::helpers::{TestApp, problem};

backend_tests!(
    creates_a_hierarchy_and_reads_it_back,
    unknown_area_is_404,
    duplicate_code_is_409,
    parent_must_exist_and_be_one_level_up,
    lists_page_by_cursor_and_filter,
    creates_replay_under_an_idempotency_key,
);

async fn create(app: &TestApp, level: &str, parent: Option<&str>, code: &str) -> Value {
    let response = app
        .post_json(
            "/api/v1/areas",
            &json!({"level": level, "parent_id": parent, "code": code, "name_fa": format!("ناحیه {code}"), "name_en": format!("Area {code}")}),
        )
        .await;
    assert_eq!(response.status(), 201, "create {code}");
    response.json().await.expect("area json")
}

async fn creates_a_hierarchy_and_reads_it_back(app: TestApp) {
    let response = app
        .post_json(
            "/api/v1/areas",
            &json!({"level": "province", "code": " khr ", "name_fa": "خراسان رضوی", "name_en": "Khorasan Razavi"}),
        )
        .await;
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert_eq!(response.headers()["etag"], "\"1\"");
    let province: Value = response.json().await.expect("json");
    assert_eq!(province["code"], "KHR", "codes are trimmed and upper-cased");
    assert_eq!(province["name_fa"], "خراسان رضوی");
    assert_eq!(province["parent_id"], Value::Null);
    assert_eq!(province["version"], 1);
    assert_eq!(
        location,
        format!("/api/v1/areas/{}", province["id"].as_str().expect("id"))
    );

    let city = create(&app, "city", province["id"].as_str(), "MSH").await;
    let district = create(&app, "district", city["id"].as_str(), "MSH-D05").await;
    let neighbourhood = create(
        &app,
        "neighbourhood",
        district["id"].as_str(),
        "MSH-D05-N12",
    )
    .await;

    let response = app.get(&location).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["etag"], "\"1\"");
    let read: Value = response.json().await.expect("json");
    assert_eq!(read, province, "read returns what create returned");

    let path = format!(
        "/api/v1/areas/{}",
        neighbourhood["id"].as_str().expect("id")
    );
    let read: Value = app.get(&path).await.json().await.expect("json");
    assert_eq!(read["level"], "neighbourhood");
    assert_eq!(read["parent_id"], district["id"]);
    assert!(
        read["created_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
}

async fn unknown_area_is_404(app: TestApp) {
    let body = problem(
        app.get("/api/v1/areas/01936b2e-0000-7000-8000-000000000000")
            .await,
        404,
    )
    .await;
    assert_eq!(body["type"], "urn:tavana:problem:not-found");
}

async fn duplicate_code_is_409(app: TestApp) {
    create(&app, "province", None, "KHR").await;
    let response = app
        .post_json(
            "/api/v1/areas",
            &json!({"level": "province", "code": "khr", "name_fa": "دوباره", "name_en": "Again"}),
        )
        .await;
    let body = problem(response, 409).await;
    assert!(body["detail"].as_str().is_some_and(|d| d.contains("KHR")));
}

async fn parent_must_exist_and_be_one_level_up(app: TestApp) {
    let province = create(&app, "province", None, "KHR").await;
    let response = app
        .post_json(
            "/api/v1/areas",
            &json!({"level": "district", "parent_id": province["id"], "code": "D1", "name_fa": "منطقه ۱", "name_en": "District 1"}),
        )
        .await;
    let body = problem(response, 422).await;
    assert_eq!(body["errors"][0]["field"], "parent_id");
    assert_eq!(body["errors"][0]["code"], "wrong_level");

    let response = app
        .post_json(
            "/api/v1/areas",
            &json!({"level": "city", "parent_id": "01936b2e-0000-7000-8000-000000000000", "code": "MSH", "name_fa": "مشهد", "name_en": "Mashhad"}),
        )
        .await;
    let body = problem(response, 422).await;
    assert_eq!(body["errors"][0]["code"], "not_found");
}

async fn lists_page_by_cursor_and_filter(app: TestApp) {
    let province = create(&app, "province", None, "KHR").await;
    let mut cities = Vec::new();
    for i in 0..5 {
        let city = create(&app, "city", province["id"].as_str(), &format!("C{i}")).await;
        cities.push(city["code"].as_str().expect("code").to_owned());
    }

    let mut seen = Vec::new();
    let mut path = "/api/v1/areas?level=city&limit=2".to_owned();
    loop {
        let page: Value = app.get(&path).await.json().await.expect("page");
        let items = page["items"].as_array().expect("items");
        assert!(items.len() <= 2);
        seen.extend(
            items
                .iter()
                .map(|a| a["code"].as_str().expect("code").to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/v1/areas?level=city&limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, cities, "every city once, in creation order");

    let province_id = province["id"].as_str().expect("id");
    let page: Value = app
        .get(&format!("/api/v1/areas?parent_id={province_id}"))
        .await
        .json()
        .await
        .expect("page");
    assert_eq!(page["items"].as_array().map(Vec::len), Some(5));
    let page: Value = app
        .get("/api/v1/areas?level=province")
        .await
        .json()
        .await
        .expect("page");
    assert_eq!(page["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(page["next_cursor"], Value::Null);
}

/// Areas, organisations and users replay under an Idempotency-Key, with the same ETag.
async fn creates_replay_under_an_idempotency_key(app: TestApp) {
    for (path, body) in [
        (
            "/api/v1/areas",
            json!({"level": "province", "code": "KHR", "name_fa": "خراسان", "name_en": "Khorasan"}),
        ),
        (
            "/api/v1/organisations",
            json!({"name": "Labour office", "kind": "labour_office"}),
        ),
    ] {
        let send = || {
            app.client
                .post(app.url(path))
                .bearer_auth(&app.admin_token)
                .header("idempotency-key", format!("setup-{path}"))
                .json(&body)
                .send()
        };
        let first = send().await.expect("sent");
        assert_eq!(first.status(), 201, "{path}");
        assert_eq!(first.headers()["etag"], "\"1\"");
        let again = send().await.expect("sent");
        assert_eq!(again.status(), 201, "{path}: replayed, not a 409");
        assert_eq!(again.headers()["idempotent-replayed"], "true");
        assert_eq!(again.headers()["etag"], "\"1\"");
        assert_eq!(again.headers()["location"], first.headers()["location"]);
    }
    let org: Value = app
        .get("/api/v1/organisations")
        .await
        .json()
        .await
        .expect("page");
    let user = json!({"username": "pm.one", "display_name": "PM", "password": "a long enough password",
                      "role": "programme_manager", "organisation_id": org["items"][0]["id"]});
    let send = || {
        app.client
            .post(app.url("/api/v1/users"))
            .bearer_auth(&app.admin_token)
            .header("idempotency-key", "user-1")
            .json(&user)
            .send()
    };
    assert_eq!(send().await.expect("sent").status(), 201);
    let replay = send().await.expect("sent");
    assert_eq!(replay.status(), 201);
    let text = replay.text().await.expect("body");
    assert!(!text.contains("a long enough password"), "{text}");
}
