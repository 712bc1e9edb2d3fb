//! Programmes, consent and enrolment: the state machine, its history, and the rules around it.

use serde_json::{Value, json};

use crate::backend_tests;
use crate::helpers::{TestApp, problem};
use crate::households::{facilitator_token, two_neighbourhoods};

backend_tests!(
    the_programmes_of_the_article_are_seeded,
    enrolment_moves_through_its_states_with_history,
    enrolling_needs_the_heads_consent,
    forbidden_transitions_list_the_allowed_ones,
    a_pause_resumes_where_it_left_off,
    enrolments_respect_scope_versions_and_idempotency,
    programmes_are_created_with_targets_and_partners,
);

const WHH: &str = "0169a6c0-0000-7000-8000-000000000001";

/// A household in `neighbourhood` headed by a woman; returns (household, head).
pub async fn household_with_head(
    app: &TestApp,
    neighbourhood: &Value,
    national_id: &str,
) -> (Value, Value) {
    let household: Value = app
        .post_json(
            "/api/v1/households",
            &json!({"neighbourhood_id": neighbourhood["id"], "address": "کوچه بهار"}),
        )
        .await
        .json()
        .await
        .expect("household");
    let response = app
        .post_json(
            "/api/v1/persons",
            &json!({"national_id": national_id, "first_name": "زینب", "last_name": "حسینی", "birth_date": "1365-01-01",
                    "sex": "female", "household_id": household["id"], "household_role": "head", "member_since": "1390-01-01"}),
        )
        .await;
    assert_eq!(response.status(), 201);
    (household, response.json().await.expect("person"))
}

async fn consent(app: &TestApp, person: &Value, given_on: &str) -> Value {
    let response = app
        .post_json(
            &format!(
                "/api/v1/persons/{}/consents",
                person["id"].as_str().expect("id")
            ),
            &json!({"purpose": "programme", "share_with_partners": false, "given_on": given_on}),
        )
        .await;
    assert_eq!(response.status(), 201);
    response.json().await.expect("consent")
}

async fn enrol(app: &TestApp, household: &Value, on: &str) -> Value {
    let response = app
        .post_json(
            "/api/v1/enrolments",
            &json!({"programme_id": WHH, "household_id": household["id"], "on": on}),
        )
        .await;
    assert_eq!(response.status(), 201);
    response.json().await.expect("enrolment")
}

async fn move_to(app: &TestApp, enrolment: &Value, to: &str, on: &str) -> reqwest::Response {
    app.post_json(
        &format!(
            "/api/v1/enrolments/{}/transitions",
            enrolment["id"].as_str().expect("id")
        ),
        &json!({"to": to, "on": on}),
    )
    .await
}

async fn the_programmes_of_the_article_are_seeded(app: TestApp) {
    let list: Value = app
        .get("/api/v1/programmes?year=1398")
        .await
        .json()
        .await
        .expect("list");
    let codes: Vec<&str> = list
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|p| p["code"].as_str())
        .collect();
    assert_eq!(codes, ["EEM-1398", "SHP-1398", "WHH-1398"]);
    let whh: Value = app
        .get(&format!("/api/v1/programmes/{WHH}"))
        .await
        .json()
        .await
        .expect("programme");
    assert_eq!(whh["target_households"], 600);
    assert_eq!(whh["starts_on"], "2019-03-21");
    assert_eq!(whh["ends_on"], "2020-03-19");
    assert_eq!(whh["starts_on_jalali"], "1398-01-01");
    assert_eq!(whh["ends_on_jalali"], "1398-12-29");
    assert_eq!(
        whh["targets"][0],
        json!({"stage": "identified", "target": 600})
    );
    problem(app.get("/api/v1/programmes?year=1398&x=1").await, 400).await;
}

async fn enrolment_moves_through_its_states_with_history(app: TestApp) {
    let (n1, _) = two_neighbourhoods(&app).await;
    let (household, head) = household_with_head(&app, &n1, "0499370899").await;
    consent(&app, &head, "1398-01-10").await;
    let enrolment = enrol(&app, &household, "1398-01-15").await;
    assert_eq!(enrolment["state"], "identified");
    assert_eq!(enrolment["state_since_jalali"], "1398-01-15");
    for (to, on) in [
        ("assessed", "1398-01-20"),
        ("enrolled", "1398-02-01"),
        ("in_training", "1398-03-01"),
        ("financed", "1398-06-01"),
        ("permitted", "1398-06-15"),
        ("employed", "1398-12-28"),
        // Across the Jalali year boundary: 1399-01-05 is 2020-03-24.
        ("graduated", "1399-01-05"),
    ] {
        let response = move_to(&app, &enrolment, to, on).await;
        assert_eq!(response.status(), 200, "{to}");
    }
    let path = format!(
        "/api/v1/enrolments/{}/transitions",
        enrolment["id"].as_str().expect("id")
    );
    let history: Value = app.get(&path).await.json().await.expect("history");
    let steps: Vec<&str> = history["transitions"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|t| t["to"].as_str())
        .collect();
    assert_eq!(
        steps,
        [
            "identified",
            "assessed",
            "enrolled",
            "in_training",
            "financed",
            "permitted",
            "employed",
            "graduated"
        ]
    );
    assert_eq!(history["transitions"][7]["on"], "2020-03-24");
    assert_eq!(history["transitions"][7]["from"], "employed");
    assert_eq!(history["state_on"], Value::Null);

    for (day, expected) in [
        ("1398-01-14", Value::Null),
        ("1398-02-15", json!("enrolled")),
        ("2019-09-01", json!("financed")),
        ("1399-02-01", json!("graduated")),
    ] {
        let answer: Value = app
            .get(&format!("{path}?on={day}"))
            .await
            .json()
            .await
            .expect("history");
        assert_eq!(answer["state_on"], expected, "state on {day}");
    }
    // Graduated is final.
    let body = problem(move_to(&app, &enrolment, "paused", "1399-02-01").await, 409).await;
    assert_eq!(body["allowed"], json!([]));
}

async fn enrolling_needs_the_heads_consent(app: TestApp) {
    let (n1, _) = two_neighbourhoods(&app).await;
    let (household, head) = household_with_head(&app, &n1, "0499370899").await;
    let enrolment = enrol(&app, &household, "1398-01-15").await;
    assert_eq!(
        move_to(&app, &enrolment, "assessed", "1398-01-20")
            .await
            .status(),
        200
    );
    let body = problem(
        move_to(&app, &enrolment, "enrolled", "1398-02-01").await,
        409,
    )
    .await;
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("consent"))
    );

    // Consent given after the day of the transition does not count for it.
    let given = consent(&app, &head, "1398-02-10").await;
    problem(
        move_to(&app, &enrolment, "enrolled", "1398-02-01").await,
        409,
    )
    .await;
    // Withdrawn consent does not count either.
    let withdraw = format!(
        "/api/v1/persons/{}/consents/{}/withdraw",
        head["id"].as_str().expect("id"),
        given["id"].as_str().expect("id")
    );
    let withdrawn: Value = app
        .post_json(
            &withdraw,
            &json!({"on": "1398-02-20", "reason": "changed her mind"}),
        )
        .await
        .json()
        .await
        .expect("consent");
    assert_eq!(withdrawn["in_force"], false);
    problem(app.post_json(&withdraw, &json!({})).await, 409).await;
    problem(
        move_to(&app, &enrolment, "enrolled", "1398-02-25").await,
        409,
    )
    .await;
    // In force on the day between: allowed.
    assert_eq!(
        move_to(&app, &enrolment, "enrolled", "1398-02-15")
            .await
            .status(),
        200
    );

    let consents: Value = app
        .get(&format!(
            "/api/v1/persons/{}/consents",
            head["id"].as_str().expect("id")
        ))
        .await
        .json()
        .await
        .expect("consents");
    assert_eq!(consents[0]["withdrawal_reason"], "changed her mind");
    assert_eq!(consents[0]["given_on_jalali"], "1398-02-10");
}

async fn forbidden_transitions_list_the_allowed_ones(app: TestApp) {
    let (n1, _) = two_neighbourhoods(&app).await;
    let (household, _) = household_with_head(&app, &n1, "0499370899").await;
    let enrolment = enrol(&app, &household, "1398-01-15").await;
    let body = problem(
        move_to(&app, &enrolment, "employed", "1398-02-01").await,
        409,
    )
    .await;
    assert_eq!(body["type"], "urn:tavana:problem:transition-not-allowed");
    assert_eq!(body["allowed"], json!(["assessed", "paused", "exited"]));
    let body = problem(
        move_to(&app, &enrolment, "assessed", "1398-01-01").await,
        422,
    )
    .await;
    assert_eq!(body["errors"][0]["code"], "before_previous");
    assert_eq!(
        move_to(&app, &enrolment, "exited", "1398-03-01")
            .await
            .status(),
        200
    );
    let body = problem(
        move_to(&app, &enrolment, "assessed", "1398-03-02").await,
        409,
    )
    .await;
    assert_eq!(body["allowed"], json!([]));
    problem(
        move_to(&app, &enrolment, "dancing", "1398-03-02").await,
        422,
    )
    .await;
}

async fn a_pause_resumes_where_it_left_off(app: TestApp) {
    let (n1, _) = two_neighbourhoods(&app).await;
    let (household, _) = household_with_head(&app, &n1, "0499370899").await;
    let enrolment = enrol(&app, &household, "1398-01-15").await;
    move_to(&app, &enrolment, "assessed", "1398-01-16").await;
    let paused: Value = move_to(&app, &enrolment, "paused", "1398-02-01")
        .await
        .json()
        .await
        .expect("enrolment");
    assert_eq!(paused["state"], "paused");
    assert_eq!(paused["resume_to"], "assessed");
    let body = problem(
        move_to(&app, &enrolment, "enrolled", "1398-03-01").await,
        409,
    )
    .await;
    assert_eq!(body["allowed"], json!(["assessed", "exited"]));
    let resumed: Value = move_to(&app, &enrolment, "assessed", "1398-03-01")
        .await
        .json()
        .await
        .expect("enrolment");
    assert_eq!(resumed["state"], "assessed");
    assert_eq!(resumed["resume_to"], Value::Null);
}

async fn enrolments_respect_scope_versions_and_idempotency(app: TestApp) {
    let (n1, n2) = two_neighbourhoods(&app).await;
    let (h1, _) = household_with_head(&app, &n1, "0499370899").await;
    let (h2, _) = household_with_head(&app, &n2, "0100000010").await;
    let theirs = enrol(&app, &h2, "1398-01-15").await;
    let body = problem(
        app.post_json(
            "/api/v1/enrolments",
            &json!({"programme_id": WHH, "household_id": h2["id"]}),
        )
        .await,
        409,
    )
    .await;
    assert_eq!(body["existing_id"], theirs["id"]);

    let token = facilitator_token(&app, "facilitator.n1", &n1).await;
    let send = |method: reqwest::Method, path: String, body: Value| {
        app.client
            .request(method, app.url(&path))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    let theirs_path = format!("/api/v1/enrolments/{}", theirs["id"].as_str().expect("id"));
    problem(
        send(reqwest::Method::GET, theirs_path.clone(), json!({}))
            .await
            .expect("sent"),
        404,
    )
    .await;
    problem(
        send(
            reqwest::Method::POST,
            format!("{theirs_path}/transitions"),
            json!({"to": "assessed"}),
        )
        .await
        .expect("sent"),
        404,
    )
    .await;
    // Nor does it read the history of another neighbourhood's enrolment.
    problem(
        send(
            reqwest::Method::GET,
            format!("{theirs_path}/transitions"),
            json!({}),
        )
        .await
        .expect("sent"),
        404,
    )
    .await;
    // The refused transition wrote nothing: still identified, one step in its history.
    let history = crate::helpers::get_json(&app, &format!("{theirs_path}/transitions")).await;
    assert_eq!(
        history["transitions"].as_array().map(Vec::len),
        Some(1),
        "{history}"
    );
    assert_eq!(history["transitions"][0]["to"], "identified");
    let body = problem(
        send(
            reqwest::Method::POST,
            "/api/v1/enrolments".into(),
            json!({"programme_id": WHH, "household_id": h2["id"]}),
        )
        .await
        .expect("sent"),
        422,
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "household_id");

    // The facilitator enrols their own household, twice with one key: one enrolment.
    let create = || {
        app.client
            .post(app.url("/api/v1/enrolments"))
            .bearer_auth(&token)
            .header("idempotency-key", "enrol-h1")
            .json(&json!({"programme_id": WHH, "household_id": h1["id"], "on": "1398-01-20"}))
            .send()
    };
    let first: Value = create()
        .await
        .expect("sent")
        .json()
        .await
        .expect("enrolment");
    let again = create().await.expect("sent");
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again: Value = again.json().await.expect("enrolment");
    assert_eq!(first, again);
    let mine: Value = send(reqwest::Method::GET, "/api/v1/enrolments".into(), json!({}))
        .await
        .expect("sent")
        .json()
        .await
        .expect("page");
    // Persons filtered by programme and enrolment state.
    let in_programme: Value = app
        .get(&format!(
            "/api/v1/persons?programme_id={WHH}&enrolment_state=identified"
        ))
        .await
        .json()
        .await
        .expect("page");
    assert_eq!(
        in_programme["items"].as_array().map(Vec::len),
        Some(2),
        "the two heads"
    );
    let none: Value = app
        .get(&format!(
            "/api/v1/persons?programme_id={WHH}&enrolment_state=employed"
        ))
        .await
        .json()
        .await
        .expect("page");
    assert_eq!(none["items"], json!([]));
    assert_eq!(mine["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(mine["items"][0]["id"], first["id"]);
    // Their own enrolment's history they do read.
    let own_history = send(
        reqwest::Method::GET,
        format!(
            "/api/v1/enrolments/{}/transitions",
            first["id"].as_str().expect("id")
        ),
        json!({}),
    )
    .await
    .expect("sent");
    assert_eq!(own_history.status(), 200);

    // Two offices act on version 1; the second is told.
    let transition_path = format!(
        "/api/v1/enrolments/{}/transitions",
        first["id"].as_str().expect("id")
    );
    let with_etag = |to: &'static str| {
        app.client
            .post(app.url(&transition_path))
            .bearer_auth(&app.admin_token)
            .header("if-match", "\"1\"")
            .json(&json!({"to": to, "on": "1398-02-01"}))
            .send()
    };
    assert_eq!(with_etag("assessed").await.expect("sent").status(), 200);
    problem(with_etag("paused").await.expect("sent"), 412).await;
}

async fn programmes_are_created_with_targets_and_partners(app: TestApp) {
    let partner: Value = app
        .post_json(
            "/api/v1/organisations",
            &json!({"name": "Jahad Daneshgahi", "kind": "partner_agency"}),
        )
        .await
        .json()
        .await
        .expect("org");
    let body = json!({
        "code": "whh-1399", "name_fa": "بانوان سرپرست خانوار ۱۳۹۹", "name_en": "Women heads of household 1399",
        "jalali_year": 1399, "target_households": 800,
        "targets": [{"stage": "enrolled", "target": 800}, {"stage": "employed", "target": 500}],
        "partners": [partner["id"]],
    });
    let response = app.post_json("/api/v1/programmes", &body).await;
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.expect("programme");
    assert_eq!(created["code"], "WHH-1399");
    assert_eq!(created["starts_on"], "2020-03-20");
    assert_eq!(created["ends_on"], "2021-03-20");
    assert_eq!(created["partners"], json!([partner["id"]]));
    assert_eq!(created["targets"].as_array().map(Vec::len), Some(2));
    problem(app.post_json("/api/v1/programmes", &body).await, 409).await;

    let mut bad = body.clone();
    bad["code"] = json!("X-1");
    bad["targets"] = json!([{"stage": "paused", "target": 5}]);
    bad["jalali_year"] = json!(1999);
    let problem_body = problem(app.post_json("/api/v1/programmes", &bad).await, 422).await;
    assert_eq!(problem_body["errors"].as_array().map(Vec::len), Some(2));

    let path = format!("/api/v1/programmes/{}", created["id"].as_str().expect("id"));
    let patch = |etag: &'static str, body: Value| {
        app.client
            .patch(app.url(&path))
            .bearer_auth(&app.admin_token)
            .header("if-match", etag)
            .json(&body)
            .send()
    };
    let updated: Value = patch("\"1\"", json!({"target_households": 900, "partners": []}))
        .await
        .expect("sent")
        .json()
        .await
        .expect("programme");
    assert_eq!(updated["target_households"], 900);
    assert_eq!(updated["partners"], json!([]));
    assert_eq!(
        updated["targets"].as_array().map(Vec::len),
        Some(2),
        "absent lists stay"
    );
    problem(
        patch("\"1\"", json!({"name_en": "x"})).await.expect("sent"),
        412,
    )
    .await;
}
