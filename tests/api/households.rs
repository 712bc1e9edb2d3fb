//! Households: scope (a facilitator outside the neighbourhood gets 404), versions, idempotent
//! creates and Persian-aware search.

use serde_json::{Value, json};
use tavana_domain::access::Role;
use tavana_domain::id::AreaId;

use crate::backend_tests;
use crate::helpers::{TestApp, problem};

backend_tests!(
    facilitators_see_only_their_neighbourhoods,
    stale_if_match_is_412,
    idempotency_key_replays_and_never_creates_twice,
    search_matches_arabic_and_persian_letters,
    households_belong_to_neighbourhoods,
    a_new_assignment_applies_to_the_next_request,
    facilitation_offices_cover_neighbourhoods,
);

const PASSWORD: &str = "a long enough password";

pub async fn area(app: &TestApp, level: &str, parent: Option<&Value>, code: &str) -> Value {
    let response = app
        .post_json(
            "/api/v1/areas",
            &json!({"level": level, "parent_id": parent.map(|p| p["id"].clone()), "code": code, "name_fa": format!("محله {code}"), "name_en": code}),
        )
        .await;
    assert_eq!(response.status(), 201, "area {code}");
    response.json().await.expect("area")
}

/// A neighbourhood (with its city and district) under `province`.
pub async fn neighbourhood_under(app: &TestApp, province: &Value, code: &str) -> Value {
    let city = area(app, "city", Some(province), &format!("{code}-C")).await;
    let district = area(app, "district", Some(&city), &format!("{code}-D")).await;
    area(app, "neighbourhood", Some(&district), code).await
}

/// Two neighbourhoods, N1 and N2.
pub async fn two_neighbourhoods(app: &TestApp) -> (Value, Value) {
    let province = area(app, "province", None, "KHR").await;
    (
        neighbourhood_under(app, &province, "N1").await,
        neighbourhood_under(app, &province, "N2").await,
    )
}

fn area_id(area: &Value) -> AreaId {
    area["id"]
        .as_str()
        .and_then(|id| id.parse().ok())
        .expect("area id")
}

pub async fn facilitator_token(app: &TestApp, username: &str, neighbourhood: &Value) -> String {
    app.create_user(
        username,
        Role::Facilitator,
        PASSWORD,
        vec![area_id(neighbourhood)],
    )
    .await;
    let tokens: Value = app
        .login(username, PASSWORD)
        .await
        .json()
        .await
        .expect("tokens");
    tokens["access_token"].as_str().expect("token").to_owned()
}

async fn create_as(app: &TestApp, token: &str, body: &Value) -> reqwest::Response {
    app.client
        .post(app.url("/api/v1/households"))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .expect("sent")
}

async fn facilitators_see_only_their_neighbourhoods(app: TestApp) {
    let (n1, n2) = two_neighbourhoods(&app).await;
    let token = facilitator_token(&app, "facilitator.n1", &n1).await;

    let mine = create_as(
        &app,
        &token,
        &json!({"neighbourhood_id": n1["id"], "address": "کوچه ۱"}),
    )
    .await;
    assert_eq!(mine.status(), 201);
    let mine: Value = mine.json().await.expect("household");
    let body = problem(
        create_as(
            &app,
            &token,
            &json!({"neighbourhood_id": n2["id"], "address": "کوچه ۲"}),
        )
        .await,
        422,
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "neighbourhood_id");

    let theirs: Value = app
        .post_json(
            "/api/v1/households",
            &json!({"neighbourhood_id": n2["id"], "address": "کوچه ۲"}),
        )
        .await
        .json()
        .await
        .expect("household");
    let theirs_path = format!("/api/v1/households/{}", theirs["id"].as_str().expect("id"));

    // Another neighbourhood's household, read by id: not found, exactly like a missing one.
    let outside = problem(app.get_as(&token, &theirs_path).await, 404).await;
    let missing = problem(
        app.get_as(
            &token,
            "/api/v1/households/01936b2e-0000-7000-8000-000000000000",
        )
        .await,
        404,
    )
    .await;
    assert_eq!(outside["detail"], missing["detail"]);
    let response = app
        .client
        .patch(app.url(&theirs_path))
        .bearer_auth(&token)
        .json(&json!({"address": "changed"}))
        .send()
        .await
        .expect("sent");
    problem(response, 404).await;

    // Lists, with or without a filter naming the other neighbourhood, hold only their own.
    let page: Value = app
        .get_as(&token, "/api/v1/households")
        .await
        .json()
        .await
        .expect("page");
    let ids: Vec<&Value> = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|h| &h["id"])
        .collect();
    assert_eq!(ids, [&mine["id"]]);
    let filtered: Value = app
        .get_as(
            &token,
            &format!(
                "/api/v1/households?neighbourhood_id={}",
                n2["id"].as_str().expect("id")
            ),
        )
        .await
        .json()
        .await
        .expect("page");
    assert_eq!(filtered["items"], json!([]));

    // A programme manager sees both.
    let all: Value = app
        .get("/api/v1/households")
        .await
        .json()
        .await
        .expect("page");
    assert_eq!(all["items"].as_array().map(Vec::len), Some(2));
}

async fn stale_if_match_is_412(app: TestApp) {
    let (n1, _) = two_neighbourhoods(&app).await;
    let created: Value = app
        .post_json("/api/v1/households", &json!({"neighbourhood_id": n1["id"], "address": "خیابان اول", "postal_code": "۹۱۷۷۹۴۸۹۷۴"}))
        .await
        .json()
        .await
        .expect("household");
    assert_eq!(created["postal_code"], "9177948974");
    let path = format!("/api/v1/households/{}", created["id"].as_str().expect("id"));
    let patch = |etag: &'static str, body: Value| {
        app.client
            .patch(app.url(&path))
            .bearer_auth(&app.admin_token)
            .header("if-match", etag)
            .json(&body)
            .send()
    };
    // Two offices read version 1; the first to write wins, the second is told.
    let first = patch("\"1\"", json!({"address": "خیابان دوم"}))
        .await
        .expect("sent");
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["etag"], "\"2\"");
    let second = patch("\"1\"", json!({"address": "خیابان سوم"}))
        .await
        .expect("sent");
    problem(second, 412).await;
    let read: Value = app.get(&path).await.json().await.expect("household");
    assert_eq!(read["address"], "خیابان دوم");

    let cleared = patch("\"2\"", json!({"postal_code": null}))
        .await
        .expect("sent");
    let cleared: Value = cleared.json().await.expect("household");
    assert_eq!(cleared["postal_code"], Value::Null);
    assert_eq!(cleared["address"], "خیابان دوم", "absent fields stay");
    problem(
        patch("\"3\"", json!({"postal_code": "123"}))
            .await
            .expect("sent"),
        422,
    )
    .await;
    problem(patch("not-an-etag", json!({})).await.expect("sent"), 400).await;
}

async fn idempotency_key_replays_and_never_creates_twice(app: TestApp) {
    let (n1, _) = two_neighbourhoods(&app).await;
    let body = json!({"neighbourhood_id": n1["id"], "address": "کوچه ۵"});
    let send = |key: &'static str, body: Value| {
        app.client
            .post(app.url("/api/v1/households"))
            .bearer_auth(&app.admin_token)
            .header("idempotency-key", key)
            .json(&body)
            .send()
    };
    let first = send("import-7-row-12", body.clone()).await.expect("sent");
    assert_eq!(first.status(), 201);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let location = first.headers()["location"].clone();
    let first: Value = first.json().await.expect("json");

    let again = send("import-7-row-12", body.clone()).await.expect("sent");
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.headers()["location"], location);
    let again: Value = again.json().await.expect("json");
    assert_eq!(again, first, "the same answer");

    let other = send(
        "import-7-row-12",
        json!({"neighbourhood_id": n1["id"], "address": "کوچه ۶"}),
    )
    .await
    .expect("sent");
    let problem_body = problem(other, 422).await;
    assert_eq!(problem_body["errors"][0]["code"], "reused");

    let page: Value = app
        .get("/api/v1/households")
        .await
        .json()
        .await
        .expect("page");
    assert_eq!(
        page["items"].as_array().map(Vec::len),
        Some(1),
        "created once"
    );

    // Concurrent retries of one key still create one household.
    let body2 = json!({"neighbourhood_id": n1["id"], "address": "کوچه ۹"});
    let (a, b) = tokio::join!(
        send("race-key", body2.clone()),
        send("race-key", body2.clone())
    );
    let (a, b) = (a.expect("sent"), b.expect("sent"));
    assert_eq!((a.status().as_u16(), b.status().as_u16()), (201, 201));
    let page: Value = app
        .get("/api/v1/households")
        .await
        .json()
        .await
        .expect("page");
    assert_eq!(page["items"].as_array().map(Vec::len), Some(2));
}

async fn search_matches_arabic_and_persian_letters(app: TestApp) {
    let (n1, _) = two_neighbourhoods(&app).await;
    // Written with Arabic yeh and kaf.
    app.post_json(
        "/api/v1/households",
        &json!({"neighbourhood_id": n1["id"], "address": "كوي مهدي، پلاك ۱۲"}),
    )
    .await;
    app.post_json(
        "/api/v1/households",
        &json!({"neighbourhood_id": n1["id"], "address": "بلوار توس"}),
    )
    .await;
    // Searched with Persian letters and ASCII digits.
    let page: Value = app
        .get("/api/v1/households?address=%DA%A9%D9%88%DB%8C%20%D9%85%D9%87%D8%AF%DB%8C")
        .await
        .json()
        .await
        .expect("page");
    let items = page["items"].as_array().expect("items");
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["address"], "كوي مهدي، پلاك ۱۲", "shown as written");
    let page: Value = app
        .get("/api/v1/households?address=%D9%BE%D9%84%D8%A7%DA%A9%2012")
        .await
        .json()
        .await
        .expect("page");
    assert_eq!(
        page["items"].as_array().map(Vec::len),
        Some(1),
        "پلاک 12 finds پلاك ۱۲"
    );
    let page: Value = app
        .get("/api/v1/households?address=%25")
        .await
        .json()
        .await
        .expect("page");
    assert_eq!(page["items"], json!([]), "% is a character, not a wildcard");
}

async fn households_belong_to_neighbourhoods(app: TestApp) {
    let province = area(&app, "province", None, "KHR").await;
    let body = problem(
        app.post_json(
            "/api/v1/households",
            &json!({"neighbourhood_id": province["id"], "address": "x"}),
        )
        .await,
        422,
    )
    .await;
    assert_eq!(body["errors"][0]["code"], "wrong_level");
    let body = problem(
        app.post_json(
            "/api/v1/households",
            &json!({"neighbourhood_id": province["id"], "address": " ", "postal_code": "12"}),
        )
        .await,
        422,
    )
    .await;
    assert_eq!(body["errors"].as_array().map(Vec::len), Some(2));
}

/// Scope is read from the user's assignments by each query, so moving a facilitator to another
/// neighbourhood takes effect at once, even for a token issued before.
async fn a_new_assignment_applies_to_the_next_request(app: TestApp) {
    let (n1, n2) = two_neighbourhoods(&app).await;
    let h1: Value = app
        .post_json(
            "/api/v1/households",
            &json!({"neighbourhood_id": n1["id"], "address": "یک"}),
        )
        .await
        .json()
        .await
        .expect("household");
    let h2: Value = app
        .post_json(
            "/api/v1/households",
            &json!({"neighbourhood_id": n2["id"], "address": "دو"}),
        )
        .await
        .json()
        .await
        .expect("household");
    let token = facilitator_token(&app, "moving.facilitator", &n1).await;
    let me: Value = app
        .get_as(&token, "/api/v1/me")
        .await
        .json()
        .await
        .expect("me");
    let path = |h: &Value| format!("/api/v1/households/{}", h["id"].as_str().expect("id"));
    assert_eq!(app.get_as(&token, &path(&h1)).await.status(), 200);
    assert_eq!(app.get_as(&token, &path(&h2)).await.status(), 404);

    let response = app
        .client
        .patch(app.url(&format!("/api/v1/users/{}", me["id"].as_str().expect("id"))))
        .bearer_auth(&app.admin_token)
        .json(&json!({"areas": [n2["id"]]}))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);
    assert_eq!(
        app.get_as(&token, &path(&h1)).await.status(),
        404,
        "no longer theirs"
    );
    assert_eq!(
        app.get_as(&token, &path(&h2)).await.status(),
        200,
        "theirs now"
    );
}

/// A new facilitation office.
async fn office(app: &TestApp) -> Value {
    app.post_json(
        "/api/v1/organisations",
        &json!({"name": "دفتر تسهیلگری ۱", "kind": "facilitation_office"}),
    )
    .await
    .json()
    .await
    .expect("org")
}

async fn facilitation_offices_cover_neighbourhoods(app: TestApp) {
    let (n1, n2) = two_neighbourhoods(&app).await;
    let office = office(&app).await;
    let bureau: Value = app
        .post_json(
            "/api/v1/organisations",
            &json!({"name": "امور بانوان", "kind": "womens_affairs_bureau"}),
        )
        .await
        .json()
        .await
        .expect("org");
    let path = format!(
        "/api/v1/organisations/{}/areas",
        office["id"].as_str().expect("id")
    );
    let put = |path: String, body: Value| {
        app.client
            .put(app.url(&path))
            .bearer_auth(&app.admin_token)
            .json(&body)
            .send()
    };
    let set: Value = put(
        path.clone(),
        json!({"areas": [n1["id"], n2["id"], n1["id"]]}),
    )
    .await
    .expect("sent")
    .json()
    .await
    .expect("coverage");
    assert_eq!(set["areas"].as_array().map(Vec::len), Some(2));
    let read: Value = app.get(&path).await.json().await.expect("coverage");
    assert_eq!(read, set);
    let province: Value = app
        .get("/api/v1/areas?level=province")
        .await
        .json()
        .await
        .expect("page");
    let body = problem(
        put(path.clone(), json!({"areas": [province["items"][0]["id"]]}))
            .await
            .expect("sent"),
        422,
    )
    .await;
    assert_eq!(body["errors"][0]["code"], "not_found");
    let bureau_path = format!(
        "/api/v1/organisations/{}/areas",
        bureau["id"].as_str().expect("id")
    );
    let body = problem(
        put(bureau_path, json!({"areas": [n1["id"]]}))
            .await
            .expect("sent"),
        422,
    )
    .await;
    assert_eq!(body["errors"][0]["code"], "not_a_facilitation_office");
    // A facilitator does not redraw the map.
    let token = facilitator_token(&app, "facilitator.map", &n1).await;
    let response = app
        .client
        .put(app.url(&path))
        .bearer_auth(&token)
        .json(&json!({"areas": []}))
        .send()
        .await
        .expect("sent");
    problem(response, 403).await;
}

/// Two replacements of an office's coverage at once: the first has replaced the rows and not
/// committed when the second comes. The second waits for it and then replaces its rows too. Each
/// deleted only the rows it saw, and the office was left covering both lists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coverage_replaced_beside_another_replacement_is_the_second_list() {
    let Some(app) = TestApp::spawn(crate::helpers::Backend::Postgres).await else {
        return;
    };
    let (n1, n2) = two_neighbourhoods(&app).await;
    let office = office(&app).await;
    let (office, n1, n2) = [&office, &n1, &n2]
        .map(|v| v["id"].as_str().expect("id").to_owned())
        .into();
    let path = format!("/api/v1/organisations/{office}/areas");
    let first = app
        .client
        .put(app.url(&path))
        .bearer_auth(&app.admin_token)
        .json(&json!({"areas": [n1]}))
        .send()
        .await
        .expect("sent");
    assert_eq!(first.status(), 200);
    let (committed, response) = crate::helpers::holding(
        &app,
        format!(
            "UPDATE organisations SET updated_at = updated_at WHERE id = '{office}';
             DELETE FROM organisation_areas WHERE organisation_id = '{office}';
             INSERT INTO organisation_areas (organisation_id, area_id) VALUES ('{office}', '{n1}')"
        ),
        crate::helpers::Then::Commit,
        app.client
            .put(app.url(&path))
            .bearer_auth(&app.admin_token)
            .json(&json!({"areas": [n2]})),
    )
    .await;
    assert!(committed, "the first replacement committed");
    assert_eq!(response.status(), 200);
    let read: Value = app.get(&path).await.json().await.expect("coverage");
    assert_eq!(read["areas"], json!([n2]), "{read}");
}
