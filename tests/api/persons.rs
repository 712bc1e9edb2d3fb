//! Persons: national IDs, names as written and normalised, the derived woman head of household,
//! possible duplicates, scope, versions and household history.

use serde_json::{Value, json};

use crate::backend_tests;
use crate::helpers::{TestApp, problem};
use crate::households::{area, facilitator_token, two_neighbourhoods};

backend_tests!(
    registers_a_woman_head_of_household,
    national_ids_are_checked_and_unique,
    a_household_has_one_head,
    possible_duplicates_match_across_arabic_and_persian_letters,
    search_and_filters,
    facilitators_cannot_see_other_neighbourhoods_people,
    moving_and_changing_the_head_keep_history,
    stale_if_match_on_a_person_is_412,
    assessments_have_one_baseline_then_follow_ups,
    outcomes_are_verified_by_someone_else_and_followed_up,
    splitting_a_household_moves_members_with_history,
    auditors_see_identifiers_masked,
    duplicates_are_reviewed_dismissed_or_merged,
    a_record_merged_into_one_merged_later_answers_with_the_last,
    a_pair_dismissed_then_merged_is_marked_merged,
);

async fn household(app: &TestApp, neighbourhood: &Value) -> Value {
    let response = app
        .post_json(
            "/api/v1/households",
            &json!({"neighbourhood_id": neighbourhood["id"], "address": "کوچه گلستان"}),
        )
        .await;
    assert_eq!(response.status(), 201);
    response.json().await.expect("household")
}

fn person(
    national_id: &str,
    first: &str,
    last: &str,
    sex: &str,
    household: &Value,
    role: &str,
) -> Value {
    json!({
        "national_id": national_id, "first_name": first, "last_name": last,
        "birth_date": "1360-05-12", "sex": sex, "household_id": household["id"], "household_role": role,
    })
}

async fn create(app: &TestApp, body: &Value) -> Value {
    let response = app.post_json("/api/v1/persons", body).await;
    assert_eq!(response.status(), 201, "create person");
    response.json().await.expect("person")
}

async fn registers_a_woman_head_of_household(app: TestApp) {
    let (n1, _) = two_neighbourhoods(&app).await;
    let home = household(&app, &n1).await;
    let mut body = person("۰۴۹۹۳۷۰۸۹۹", "فاطمه", "رضايي", "female", &home, "head");
    body["mobile"] = json!("+98 915 123 4567");
    body["education"] = json!("diploma");
    let created = create(&app, &body).await;
    assert_eq!(created["national_id"], "0499370899");
    assert_eq!(created["last_name"], "رضايي", "kept as written");
    assert_eq!(created["birth_date"], "1981-08-03");
    assert_eq!(created["birth_date_jalali"], "1360-05-12");
    assert_eq!(created["mobile"], "09151234567");
    assert_eq!(created["woman_head"], true);
    assert_eq!(created["neighbourhood_id"], n1["id"]);
    assert_eq!(created["possible_duplicates"], json!([]));

    let spouse = create(
        &app,
        &person("0100000010", "علی", "رضایی", "male", &home, "spouse"),
    )
    .await;
    assert_eq!(spouse["woman_head"], false);
    let heads: Value = app
        .get("/api/v1/persons?woman_head=true")
        .await
        .json()
        .await
        .expect("page");
    assert_eq!(heads["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(heads["items"][0]["id"], created["id"]);
    let others: Value = app
        .get("/api/v1/persons?woman_head=false")
        .await
        .json()
        .await
        .expect("page");
    assert_eq!(others["items"][0]["id"], spouse["id"]);
}

async fn national_ids_are_checked_and_unique(app: TestApp) {
    let (n1, _) = two_neighbourhoods(&app).await;
    let home = household(&app, &n1).await;
    for (id, code) in [
        ("0499370898", "check_digit"),
        ("049937089", "length"),
        ("3333333333", "invalid"),
        ("04993-7O899", "format"),
    ] {
        let body = problem(
            app.post_json(
                "/api/v1/persons",
                &person(id, "زهرا", "کریمی", "female", &home, "child"),
            )
            .await,
            422,
        )
        .await;
        assert_eq!(body["errors"][0]["field"], "national_id", "{id}");
        assert_eq!(body["errors"][0]["code"], code, "{id}");
    }
    let first = create(
        &app,
        &person("0499370899", "زهرا", "کریمی", "female", &home, "child"),
    )
    .await;
    // The same ID, typed in Persian digits, is the same person.
    let body = problem(
        app.post_json(
            "/api/v1/persons",
            &person("۰۴۹۹۳۷۰۸۹۹", "زهرا", "کریمی", "female", &home, "child"),
        )
        .await,
        409,
    )
    .await;
    assert_eq!(body["existing_id"], first["id"]);
    assert_eq!(body["type"], "urn:tavana:problem:exists");
}

async fn a_household_has_one_head(app: TestApp) {
    let (n1, _) = two_neighbourhoods(&app).await;
    let home = household(&app, &n1).await;
    let head = create(
        &app,
        &person("0499370899", "مریم", "احمدی", "female", &home, "head"),
    )
    .await;
    let body = problem(
        app.post_json(
            "/api/v1/persons",
            &person("0100000010", "رضا", "احمدی", "male", &home, "head"),
        )
        .await,
        409,
    )
    .await;
    assert_eq!(body["existing_id"], head["id"]);
}

async fn possible_duplicates_match_across_arabic_and_persian_letters(app: TestApp) {
    let province = area(&app, "province", None, "KHR").await;
    let city = area(&app, "city", Some(&province), "MSH").await;
    let district = area(&app, "district", Some(&city), "D5").await;
    let n1 = area(&app, "neighbourhood", Some(&district), "D5-N1").await;
    let n2 = area(&app, "neighbourhood", Some(&district), "D5-N2").await;
    let other_district = area(&app, "district", Some(&city), "D6").await;
    let n3 = area(&app, "neighbourhood", Some(&other_district), "D6-N1").await;

    let first = create(
        &app,
        &person(
            "0499370899",
            "علي",
            "كريمي",
            "female",
            &household(&app, &n1).await,
            "head",
        ),
    )
    .await;
    // Another ID, the same name written with Persian letters, born the same year, in the same
    // district: possibly the same woman registered twice.
    let second = create(
        &app,
        &person(
            "0100000010",
            "علی",
            "کریمی",
            "female",
            &household(&app, &n2).await,
            "head",
        ),
    )
    .await;
    assert_eq!(second["possible_duplicates"], json!([first["id"]]));
    // In another district it is not flagged.
    let third = create(
        &app,
        &person(
            "0100000101",
            "علی",
            "کریمی",
            "female",
            &household(&app, &n3).await,
            "head",
        ),
    )
    .await;
    assert_eq!(third["possible_duplicates"], json!([]));
}

async fn search_and_filters(app: TestApp) {
    let (n1, n2) = two_neighbourhoods(&app).await;
    let h1 = household(&app, &n1).await;
    let h2 = household(&app, &n2).await;
    create(
        &app,
        &person("0499370899", "كبري", "موسوي", "female", &h1, "head"),
    )
    .await;
    create(
        &app,
        &person("0100000010", "حسن", "موسوی", "male", &h2, "head"),
    )
    .await;
    let page: Value = app
        .get("/api/v1/persons?name=%DA%A9%D8%A8%D8%B1%DB%8C")
        .await
        .json()
        .await
        .expect("page");
    assert_eq!(
        page["items"].as_array().map(Vec::len),
        Some(1),
        "کبری finds كبري"
    );
    let page: Value = app
        .get("/api/v1/persons?name=%D9%85%D9%88%D8%B3%D9%88%DB%8C")
        .await
        .json()
        .await
        .expect("page");
    assert_eq!(
        page["items"].as_array().map(Vec::len),
        Some(2),
        "موسوی finds both spellings"
    );
    let page: Value = app.get("/api/v1/persons?national_id=%DB%B0%DB%B1%DB%B0%DB%B0%DB%B0%DB%B0%DB%B0%DB%B0%DB%B1%DB%B0").await.json().await.expect("page");
    assert_eq!(
        page["items"][0]["first_name"], "حسن",
        "exact national ID, Persian digits"
    );
    let path = format!(
        "/api/v1/persons?neighbourhood_id={}&sex=female",
        n1["id"].as_str().expect("id")
    );
    let page: Value = app.get(&path).await.json().await.expect("page");
    assert_eq!(page["items"].as_array().map(Vec::len), Some(1));
    problem(app.get("/api/v1/persons?national_id=123").await, 400).await;
    problem(app.get("/api/v1/persons?womanhead=true").await, 400).await;
}

async fn facilitators_cannot_see_other_neighbourhoods_people(app: TestApp) {
    let (n1, n2) = two_neighbourhoods(&app).await;
    let theirs = create(
        &app,
        &person(
            "0499370899",
            "سمیه",
            "نوری",
            "female",
            &household(&app, &n2).await,
            "head",
        ),
    )
    .await;
    let mine_home = household(&app, &n1).await;
    let token = facilitator_token(&app, "facilitator.one", &n1).await;
    let path = format!("/api/v1/persons/{}", theirs["id"].as_str().expect("id"));
    // Every write on another neighbourhood's person or household is "not found" too.
    let consent = app
        .post_json(
            &format!("{path}/consents"),
            &json!({"purpose": "programme", "share_with_partners": false}),
        )
        .await;
    let consent: Value = consent.json().await.expect("consent");
    let theirs_household = format!(
        "/api/v1/households/{}",
        theirs["household_id"].as_str().expect("id")
    );
    // What an administrator reads before the refused writes, and after them.
    let as_admin = async |path: &str| -> Value {
        let response = app.get(path).await;
        assert_eq!(response.status(), 200, "{path}");
        response.json().await.expect("json")
    };
    let read_back = [
        path.clone(),
        format!("{path}/memberships"),
        format!("{path}/consents"),
        theirs_household.clone(),
    ];
    let mut before = Vec::new();
    for path in &read_back {
        before.push(as_admin(path).await);
    }
    let as_facilitator = |method: reqwest::Method, path: &str, body: Value| {
        app.client
            .request(method, app.url(path))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    let post = reqwest::Method::POST;
    for (method, path, body) in [
        (
            post.clone(),
            format!("{path}/consents"),
            json!({"purpose": "research", "share_with_partners": true}),
        ),
        (
            post.clone(),
            format!(
                "{path}/consents/{}/withdraw",
                consent["id"].as_str().expect("id")
            ),
            json!({}),
        ),
        (
            post.clone(),
            format!("{theirs_household}/head"),
            json!({"person_id": theirs["id"], "previous_head_role": "other"}),
        ),
        (
            post.clone(),
            format!("{theirs_household}/split"),
            json!({"address": "x", "members": [{"person_id": theirs["id"], "household_role": "head"}]}),
        ),
        (
            post.clone(),
            format!("{path}/move"),
            json!({"household_id": mine_home["id"], "household_role": "other"}),
        ),
        (
            reqwest::Method::PATCH,
            path.clone(),
            json!({"first_name": "سمانه", "mobile": "09121234567"}),
        ),
    ] {
        let response = as_facilitator(method, &path, body).await.expect("sent");
        problem(response, 404).await;
    }
    for path in [
        path.clone(),
        format!("{path}/memberships"),
        format!("{path}/consents"),
    ] {
        problem(app.get_as(&token, &path).await, 404).await;
    }
    // None of those writes changed her, her stays, her consents or her household.
    for (path, before) in read_back.iter().zip(&before) {
        assert_eq!(&as_admin(path).await, before, "{path}");
    }
    assert_eq!(before[0]["first_name"], "سمیه");
    assert_eq!(before[0]["mobile"], Value::Null);
    // Someone of her own neighbourhood is not moved into another neighbourhood's household.
    let mine = create(
        &app,
        &person("0100000029", "مینا", "نوری", "female", &mine_home, "head"),
    )
    .await;
    let mine_path = format!("/api/v1/persons/{}", mine["id"].as_str().expect("id"));
    let mine_before = (
        as_admin(&mine_path).await,
        as_admin(&format!("{mine_path}/memberships")).await,
    );
    let response = as_facilitator(
        post.clone(),
        &format!("{mine_path}/move"),
        json!({"household_id": theirs["household_id"], "household_role": "other"}),
    )
    .await
    .expect("sent");
    let body = problem(response, 422).await;
    assert_eq!(body["errors"][0]["field"], "household_id");
    let mine_after = (
        as_admin(&mine_path).await,
        as_admin(&format!("{mine_path}/memberships")).await,
    );
    assert_eq!(mine_after, mine_before);
    assert_eq!(mine_after.0["household_id"], mine_home["id"]);
    assert_eq!(
        mine_after.1.as_array().map(Vec::len),
        Some(1),
        "{}",
        mine_after.1
    );
    let page: Value = app
        .client
        .get(app.url("/api/v1/persons?name=%D8%B3%D9%85%DB%8C%D9%87"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("page");
    assert_eq!(page["items"], json!([]));
    // Registering someone into another neighbourhood's household is refused too.
    let elsewhere = json!({"id": theirs["household_id"]});
    let body = person("0100000010", "سارا", "نوری", "female", &elsewhere, "child");
    let response = as_facilitator(post, "/api/v1/persons", body)
        .await
        .expect("sent");
    let body = problem(response, 422).await;
    assert_eq!(body["errors"][0]["field"], "household_id");
}

async fn moving_and_changing_the_head_keep_history(app: TestApp) {
    let (n1, n2) = two_neighbourhoods(&app).await;
    let first_home = household(&app, &n1).await;
    let mut head_body = person("0499370899", "رضا", "نیکو", "male", &first_home, "head");
    head_body["member_since"] = json!("1390-01-01");
    let head = create(&app, &head_body).await;
    let mut wife_body = person(
        "0100000010",
        "نرگس",
        "نیکو",
        "female",
        &first_home,
        "spouse",
    );
    wife_body["member_since"] = json!("1390-01-01");
    let wife = create(&app, &wife_body).await;

    // The wife becomes head of the household; the husband becomes the spouse.
    let household_path = format!(
        "/api/v1/households/{}/head",
        first_home["id"].as_str().expect("id")
    );
    let response = app
        .post_json(
            &household_path,
            &json!({"person_id": wife["id"], "previous_head_role": "spouse", "on": "1398-02-01"}),
        )
        .await;
    assert_eq!(response.status(), 204);
    let wife_path = format!("/api/v1/persons/{}", wife["id"].as_str().expect("id"));
    let read: Value = app.get(&wife_path).await.json().await.expect("person");
    assert_eq!(read["household_role"], "head");
    assert_eq!(read["woman_head"], true);
    let husband: Value = app
        .get(&format!(
            "/api/v1/persons/{}",
            head["id"].as_str().expect("id")
        ))
        .await
        .json()
        .await
        .expect("person");
    assert_eq!(husband["household_role"], "spouse");

    // The husband moves to another household in another neighbourhood.
    let second_home = household(&app, &n2).await;
    let response = app
        .post_json(
            &format!("/api/v1/persons/{}/move", head["id"].as_str().expect("id")),
            &json!({"household_id": second_home["id"], "household_role": "head", "on": "2019-06-01", "reason": "separation"}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let moved: Value = response.json().await.expect("person");
    assert_eq!(moved["household_id"], second_home["id"]);
    assert_eq!(moved["neighbourhood_id"], n2["id"]);

    let history: Value = app
        .get(&format!(
            "/api/v1/persons/{}/memberships",
            head["id"].as_str().expect("id")
        ))
        .await
        .json()
        .await
        .expect("history");
    let stays: Vec<(String, String, Option<String>)> = history
        .as_array()
        .expect("list")
        .iter()
        .map(|m| {
            (
                m["role"].as_str().unwrap_or("").to_owned(),
                m["started_on"].as_str().unwrap_or("").to_owned(),
                m["ended_on"].as_str().map(str::to_owned),
            )
        })
        .collect();
    assert_eq!(stays.len(), 3, "{history}");
    assert_eq!(
        stays[1],
        (
            "spouse".into(),
            "2019-04-21".into(),
            Some("2019-06-01".into())
        )
    );
    assert_eq!(stays[2], ("head".into(), "2019-06-01".into(), None));
    assert_eq!(history[2]["household_id"], second_home["id"]);

    // A move dated before the current stay began is refused.
    let response = app
        .post_json(
            &format!("/api/v1/persons/{}/move", head["id"].as_str().expect("id")),
            &json!({"household_id": first_home["id"], "household_role": "other", "on": "2019-01-01"}),
        )
        .await;
    problem(response, 422).await;
}

async fn stale_if_match_on_a_person_is_412(app: TestApp) {
    let (n1, _) = two_neighbourhoods(&app).await;
    let created = create(
        &app,
        &person(
            "0499370899",
            "لیلا",
            "صادقی",
            "female",
            &household(&app, &n1).await,
            "head",
        ),
    )
    .await;
    let path = format!("/api/v1/persons/{}", created["id"].as_str().expect("id"));
    let patch = |etag: &'static str, body: Value| {
        app.client
            .patch(app.url(&path))
            .bearer_auth(&app.admin_token)
            .header("if-match", etag)
            .json(&body)
            .send()
    };
    let response = patch(
        "\"1\"",
        json!({"mobile": "09121234567", "education": "bachelor"}),
    )
    .await
    .expect("sent");
    assert_eq!(response.status(), 200);
    let updated: Value = response.json().await.expect("person");
    assert_eq!(updated["mobile"], "09121234567");
    problem(
        patch("\"1\"", json!({"first_name": "لیلی"}))
            .await
            .expect("sent"),
        412,
    )
    .await;
    let cleared: Value = patch("\"2\"", json!({"mobile": null}))
        .await
        .expect("sent")
        .json()
        .await
        .expect("person");
    assert_eq!(cleared["mobile"], Value::Null);
    assert_eq!(cleared["education"], "bachelor");
    let body = problem(
        patch("\"3\"", json!({"birth_date": "1500-01-01", "mobile": "12"}))
            .await
            .expect("sent"),
        422,
    )
    .await;
    assert_eq!(body["errors"].as_array().map(Vec::len), Some(2));
}

async fn assessments_have_one_baseline_then_follow_ups(app: TestApp) {
    let (n1, n2) = two_neighbourhoods(&app).await;
    let created = create(
        &app,
        &person(
            "0499370899",
            "مهری",
            "جعفری",
            "female",
            &household(&app, &n1).await,
            "head",
        ),
    )
    .await;
    let path = format!(
        "/api/v1/persons/{}/assessments",
        created["id"].as_str().expect("id")
    );
    let survey = |kind: &str, on: &str, status: &str| {
        json!({"kind": kind, "assessed_on": on, "employment_status": status, "income_band": "under_20m",
               "social_insurance": false, "welfare_services": ["relief_committee", "cash_subsidy", "relief_committee"],
               "skills": "خیاطی", "dependants": 3})
    };
    let body = problem(
        app.post_json(&path, &survey("follow_up", "1398-03-01", "employed"))
            .await,
        422,
    )
    .await;
    assert_eq!(body["errors"][0]["code"], "baseline_missing");

    let send_baseline = || {
        app.client
            .post(app.url(&path))
            .bearer_auth(&app.admin_token)
            .header("idempotency-key", "survey-2019-row-7")
            .json(&survey("baseline", "1398-02-01", "unemployed"))
            .send()
    };
    let baseline = send_baseline().await.expect("sent");
    assert_eq!(baseline.status(), 201);
    // A retried import row is answered from the first time, not refused as a second baseline.
    let replay = send_baseline().await.expect("sent");
    assert_eq!(replay.status(), 201);
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    let baseline: Value = baseline.json().await.expect("assessment");
    assert_eq!(baseline["assessed_on"], "2019-04-21");
    assert_eq!(baseline["assessed_on_jalali"], "1398-02-01");
    assert_eq!(baseline["neighbourhood_id"], n1["id"]);
    assert_eq!(
        baseline["welfare_services"],
        json!(["relief_committee", "cash_subsidy"])
    );

    let body = problem(
        app.post_json(&path, &survey("baseline", "1398-02-02", "unemployed"))
            .await,
        422,
    )
    .await;
    assert_eq!(body["errors"][0]["code"], "baseline_exists");
    let body = problem(
        app.post_json(&path, &survey("follow_up", "1398-01-01", "employed"))
            .await,
        422,
    )
    .await;
    assert_eq!(body["errors"][0]["code"], "before_baseline");
    let body = problem(app.post_json(&path, &json!({"kind": "baseline", "employment_status": "unemployed", "income_band": "none", "social_insurance": false, "dependants": 99})).await, 422).await;
    assert_eq!(body["errors"][0]["field"], "dependants");
    assert_eq!(
        app.post_json(&path, &survey("follow_up", "1398-08-01", "employed"))
            .await
            .status(),
        201
    );

    let list: Value = app.get(&path).await.json().await.expect("list");
    let statuses: Vec<&str> = list
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|a| a["employment_status"].as_str())
        .collect();
    assert_eq!(statuses, ["unemployed", "employed"]);

    // A facilitator of another neighbourhood sees nothing of it.
    let token = facilitator_token(&app, "facilitator.n2", &n2).await;
    let response = app
        .client
        .get(app.url(&path))
        .bearer_auth(&token)
        .send()
        .await
        .expect("sent");
    problem(response, 404).await;
}

async fn outcomes_are_verified_by_someone_else_and_followed_up(app: TestApp) {
    let (n1, n2) = two_neighbourhoods(&app).await;
    let created = create(
        &app,
        &person(
            "0499370899",
            "صدیقه",
            "رحیمی",
            "female",
            &household(&app, &n1).await,
            "head",
        ),
    )
    .await;
    let path = format!(
        "/api/v1/persons/{}/outcomes",
        created["id"].as_str().expect("id")
    );
    let response = app
        .post_json(&path, &json!({"kind": "home_business", "started_on": "1398-06-09", "evidence": "permit_and_sales", "evidence_reference": "HB-1398-0042"}))
        .await;
    assert_eq!(response.status(), 201);
    let outcome: Value = response.json().await.expect("outcome");
    assert_eq!(outcome["started_on"], "2019-08-31");
    assert_eq!(outcome["verified"], false);
    let due: Vec<&str> = outcome["follow_ups"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|f| f["due_on"].as_str())
        .collect();
    assert_eq!(due, ["2019-11-30", "2020-02-29", "2020-08-31"]);

    let outcome_path = format!("/api/v1/outcomes/{}", outcome["id"].as_str().expect("id"));
    // Whoever recorded it does not verify it.
    let body = problem(
        app.post_json(&format!("{outcome_path}/verify"), &json!({}))
            .await,
        409,
    )
    .await;
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("someone other"))
    );
    let manager = app
        .mint(tavana_domain::access::Role::ProgrammeManager)
        .await;
    let verify = || {
        app.client
            .post(app.url(&format!("{outcome_path}/verify")))
            .bearer_auth(&manager)
            .json(&json!({"on": "1398-07-01"}))
            .send()
    };
    let verified: Value = verify().await.expect("sent").json().await.expect("outcome");
    assert_eq!(verified["verified"], true);
    assert_eq!(verified["verified_on"], "2019-09-23");
    problem(verify().await.expect("sent"), 409).await;

    let follow = |months: u32, body: Value| {
        app.client
            .post(app.url(&format!("{outcome_path}/follow-ups/{months}")))
            .bearer_auth(&app.admin_token)
            .json(&body)
            .send()
    };
    let after: Value = follow(
        3,
        json!({"done_on": "1398-09-10", "still_employed": true, "notes": "فروش خوب"}),
    )
    .await
    .expect("sent")
    .json()
    .await
    .expect("outcome");
    assert_eq!(after["follow_ups"][0]["still_employed"], true);
    assert_eq!(after["follow_ups"][1]["done_on"], Value::Null);
    problem(
        follow(3, json!({"still_employed": false}))
            .await
            .expect("sent"),
        409,
    )
    .await;
    problem(
        follow(4, json!({"still_employed": false}))
            .await
            .expect("sent"),
        404,
    )
    .await;
    problem(
        follow(6, json!({"still_employed": true, "done_on": "2099-01-01"}))
            .await
            .expect("sent"),
        422,
    )
    .await;

    let token = facilitator_token(&app, "facilitator.elsewhere", &n2).await;
    let response = app
        .client
        .get(app.url(&path))
        .bearer_auth(&token)
        .send()
        .await
        .expect("sent");
    problem(response, 404).await;
    let follow_as = |token: String| {
        app.client
            .post(app.url(&format!("{outcome_path}/follow-ups/6")))
            .bearer_auth(token)
            .json(&json!({"still_employed": true}))
            .send()
    };
    problem(follow_as(token.clone()).await.expect("sent"), 404).await;

    // She moves to n2: n2's facilitator follows her outcome up; n1's sees it no more.
    let before = facilitator_token(&app, "facilitator.before", &n1).await;
    let moved = app
        .post_json(
            &format!("/api/v1/persons/{}/move", created["id"].as_str().expect("id")),
            &json!({"household_id": household(&app, &n2).await["id"], "household_role": "head", "reason": "moved"}),
        )
        .await;
    assert_eq!(moved.status(), 200);
    problem(follow_as(before).await.expect("sent"), 404).await;
    let followed = follow_as(token).await.expect("sent");
    assert_eq!(followed.status(), 200);
}

async fn splitting_a_household_moves_members_with_history(app: TestApp) {
    let (n1, _) = two_neighbourhoods(&app).await;
    let home = household(&app, &n1).await;
    let mut mother_body = person("0499370899", "عفت", "کاظمی", "female", &home, "head");
    mother_body["member_since"] = json!("1380-01-01");
    create(&app, &mother_body).await;
    let mut daughter_body = person("0100000010", "مینا", "کاظمی", "female", &home, "child");
    daughter_body["member_since"] = json!("1380-01-01");
    let daughter = create(&app, &daughter_body).await;
    let mut grandchild_body = person("0100000101", "نازنین", "کاظمی", "female", &home, "other");
    grandchild_body["member_since"] = json!("1380-01-01");
    let grandchild = create(&app, &grandchild_body).await;

    let path = format!(
        "/api/v1/households/{}/split",
        home["id"].as_str().expect("id")
    );
    // Two heads, or nobody left behind, are refused.
    let body = problem(app.post_json(&path, &json!({"address": "کوچه نو", "members": [
        {"person_id": daughter["id"], "household_role": "head"}, {"person_id": grandchild["id"], "household_role": "head"}]})).await, 422).await;
    assert_eq!(body["errors"][0]["code"], "one_head");

    let response = app.post_json(&path, &json!({"address": "کوچه نو، پلاک ۲", "on": "1398-05-01", "members": [
        {"person_id": daughter["id"], "household_role": "head"}, {"person_id": grandchild["id"], "household_role": "child"}]})).await;
    assert_eq!(response.status(), 201);
    let new_home: Value = response.json().await.expect("household");
    assert_eq!(new_home["neighbourhood_id"], n1["id"]);

    let daughter_now: Value = app
        .get(&format!(
            "/api/v1/persons/{}",
            daughter["id"].as_str().expect("id")
        ))
        .await
        .json()
        .await
        .expect("person");
    assert_eq!(daughter_now["household_id"], new_home["id"]);
    assert_eq!(daughter_now["woman_head"], true);
    let history: Value = app
        .get(&format!(
            "/api/v1/persons/{}/memberships",
            grandchild["id"].as_str().expect("id")
        ))
        .await
        .json()
        .await
        .expect("history");
    assert_eq!(history[0]["ended_on"], "2019-07-23");
    assert_eq!(history[1]["household_id"], new_home["id"]);
    assert_eq!(history[1]["role"], "child");
    let left: Value = app
        .get(&format!(
            "/api/v1/persons?household_id={}",
            home["id"].as_str().expect("id")
        ))
        .await
        .json()
        .await
        .expect("page");
    assert_eq!(
        left["items"].as_array().map(Vec::len),
        Some(1),
        "the mother stays"
    );

    // The mother cannot leave alone: someone must stay.
    let body = problem(
        app.post_json(
            &format!("/api/v1/households/{}/split", new_home["id"].as_str().expect("id")),
            &json!({"address": "x", "members": [{"person_id": daughter["id"], "household_role": "head"}, {"person_id": grandchild["id"], "household_role": "child"}]}),
        )
        .await,
        422,
    )
    .await;
    assert_eq!(body["errors"][0]["code"], "nobody_left");
}

async fn auditors_see_identifiers_masked(app: TestApp) {
    let (n1, _) = two_neighbourhoods(&app).await;
    let mut body = person(
        "0499370899",
        "هما",
        "طاهری",
        "female",
        &household(&app, &n1).await,
        "head",
    );
    body["mobile"] = json!("09151234567");
    let created = create(&app, &body).await;
    let auditor = app.mint(tavana_domain::access::Role::Auditor).await;
    let path = format!("/api/v1/persons/{}", created["id"].as_str().expect("id"));
    let seen: Value = app
        .client
        .get(app.url(&path))
        .bearer_auth(&auditor)
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("person");
    assert_eq!(seen["national_id"], "******0899");
    assert_eq!(seen["mobile"], "*******4567");
    assert_eq!(seen["last_name"], "طاهری");
    let page: Value = app
        .client
        .get(app.url("/api/v1/persons"))
        .bearer_auth(&auditor)
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("page");
    assert_eq!(page["items"][0]["national_id"], "******0899");
    // A programme manager sees them in full.
    let full: Value = app.get(&path).await.json().await.expect("person");
    assert_eq!(full["national_id"], "0499370899");
    // So are they in the audit log's record of her registration, for the auditor; an
    // administrator sees them in full.
    let path = format!(
        "/api/v1/audit?action=person.create&entity_id={}",
        created["id"].as_str().expect("id")
    );
    let registered = async |token: &str| -> Value {
        let response = app.get_as(token, &path).await;
        assert_eq!(response.status(), 200);
        let page: Value = response.json().await.expect("page");
        page["items"][0]["after"].clone()
    };
    let masked = registered(&auditor).await;
    assert_eq!(masked["national_id"], "******0899", "{masked}");
    assert_eq!(masked["mobile"], "*******4567");
    assert_eq!(masked["last_name"], "طاهری");
    let admin = app.mint(tavana_domain::access::Role::Admin).await;
    let whole = registered(&admin).await;
    assert_eq!(whole["national_id"], "0499370899", "{whole}");
    assert_eq!(whole["mobile"], "09151234567");
}

async fn duplicates_are_reviewed_dismissed_or_merged(app: TestApp) {
    let (n1, _) = two_neighbourhoods(&app).await;
    let h1 = household(&app, &n1).await;
    let h2 = household(&app, &n1).await;
    let h3 = household(&app, &n1).await;
    let first = create(
        &app,
        &person("0499370899", "رقیه", "قاسمي", "female", &h1, "head"),
    )
    .await;
    let second = create(
        &app,
        &person("0100000010", "رقیه", "قاسمی", "female", &h2, "head"),
    )
    .await;
    let third = create(
        &app,
        &person("0100000101", "رقيه", "قاسمی", "female", &h3, "head"),
    )
    .await;
    assert_eq!(second["possible_duplicates"], json!([first["id"]]));
    assert_eq!(
        third["possible_duplicates"].as_array().map(Vec::len),
        Some(2)
    );

    let open: Value = app
        .get("/api/v1/duplicates")
        .await
        .json()
        .await
        .expect("list");
    assert_eq!(open.as_array().map(Vec::len), Some(3), "{open}");

    // The third is somebody else.
    let response = app
        .post_json(
            "/api/v1/duplicates/dismiss",
            &json!({"person_id": third["id"], "candidate_id": first["id"]}),
        )
        .await;
    assert_eq!(response.status(), 204);
    problem(
        app.post_json(
            "/api/v1/duplicates/dismiss",
            &json!({"person_id": third["id"], "candidate_id": first["id"]}),
        )
        .await,
        404,
    )
    .await;

    // The second is the first, registered twice: merge, keeping the first.
    let consent_path = format!(
        "/api/v1/persons/{}/consents",
        second["id"].as_str().expect("id")
    );
    app.post_json(
        &consent_path,
        &json!({"purpose": "programme", "share_with_partners": true, "given_on": "1398-02-01"}),
    )
    .await;
    let merge_path = format!(
        "/api/v1/persons/{}/merge",
        first["id"].as_str().expect("id")
    );
    let body = problem(
        app.post_json(
            &merge_path,
            &json!({"from": second["id"], "on": "1398-03-01"}),
        )
        .await,
        422,
    )
    .await;
    assert_eq!(
        body["errors"][0]["code"], "before_start",
        "the stay being closed began today"
    );
    let response = app
        .post_json(&merge_path, &json!({"from": second["id"]}))
        .await;
    assert_eq!(response.status(), 200);
    let consents: Value = app
        .get(&format!(
            "/api/v1/persons/{}/consents",
            first["id"].as_str().expect("id")
        ))
        .await
        .json()
        .await
        .expect("consents");
    assert_eq!(
        consents.as_array().map(Vec::len),
        Some(1),
        "the consent moved to the remaining record"
    );
    let history: Value = app
        .get(&format!(
            "/api/v1/persons/{}/memberships",
            first["id"].as_str().expect("id")
        ))
        .await
        .json()
        .await
        .expect("history");
    assert_eq!(
        history.as_array().map(Vec::len),
        Some(2),
        "both household stays are kept"
    );

    let merged: Value = app
        .get(&format!(
            "/api/v1/persons/{}",
            second["id"].as_str().expect("id")
        ))
        .await
        .json()
        .await
        .expect("person");
    assert_eq!(merged["merged_into"], first["id"]);
    assert_eq!(merged["household_id"], Value::Null);
    // The merged record takes nothing more: what is recorded goes to the remaining person.
    crate::helpers::refused(
        app.post_json(
            &consent_path,
            &json!({"purpose": "research", "share_with_partners": false}),
        )
        .await,
        409,
        "merged into another",
    )
    .await;
    let listed: Value = app
        .get("/api/v1/persons?limit=200")
        .await
        .json()
        .await
        .expect("page");
    assert!(
        listed["items"]
            .as_array()
            .expect("items")
            .iter()
            .all(|p| p["id"] != second["id"]),
        "merged records are not listed"
    );
    // Registering the merged ID again points at the remaining person.
    let body = problem(
        app.post_json(
            "/api/v1/persons",
            &person("0100000010", "رقیه", "قاسمی", "female", &h2, "child"),
        )
        .await,
        409,
    )
    .await;
    assert_eq!(body["existing_id"], first["id"]);
    problem(
        app.post_json(&merge_path, &json!({"from": second["id"]}))
            .await,
        409,
    )
    .await;
    problem(
        app.post_json(&merge_path, &json!({"from": first["id"]}))
            .await,
        422,
    )
    .await;

    let reviewed: Value = app
        .get("/api/v1/duplicates?status=merged")
        .await
        .json()
        .await
        .expect("list");
    assert_eq!(reviewed.as_array().map(Vec::len), Some(1));
    let audit: Value = app
        .get("/api/v1/audit?action=person.merge")
        .await
        .json()
        .await
        .expect("audit");
    assert_eq!(audit["items"][0]["after"]["moved"]["consents"], 1);

    // Facilitators do not review duplicates.
    let facilitator = facilitator_token(&app, "facilitator.dup", &n1).await;
    let response = app
        .client
        .get(app.url("/api/v1/duplicates"))
        .bearer_auth(&facilitator)
        .send()
        .await
        .expect("sent");
    problem(response, 403).await;
}

/// PostgreSQL only: changing a household's head and splitting a household write every person's
/// rows before they take the audit log's order lock, as every writer takes it last. They took it
/// after the first person (or the new household), so an update of another of their persons at
/// that moment, holding her row and then asking for the lock, deadlocked with them (one of the two
/// failed with a 503).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heads_and_splits_write_their_persons_before_the_order_lock() {
    let Some(app) = crate::helpers::TestApp::spawn(crate::helpers::Backend::Postgres).await else {
        return;
    };
    let (n1, _) = two_neighbourhoods(&app).await;
    let home = household(&app, &n1).await;
    let mut members = Vec::new();
    for (national_id, name, role) in [
        ("0499370899", "رضا", "head"),
        ("0100000010", "نرگس", "spouse"),
        ("0100000101", "مینا", "child"),
    ] {
        let mut body = person(national_id, name, "نیکو", "female", &home, role);
        body["member_since"] = json!("1390-01-01");
        members.push(create(&app, &body).await);
    }
    let id = |p: &Value| p["id"].as_str().expect("id").to_owned();
    let hold = |p: &Value| {
        format!(
            "UPDATE persons SET updated_at = updated_at WHERE id = '{}'",
            id(p)
        )
    };
    let home_path = format!("/api/v1/households/{}", home["id"].as_str().expect("id"));

    // The new head's row is held: the old head steps down first.
    let (took_the_lock, response) = crate::helpers::beside_a_writer(
        &app,
        hold(&members[1]),
        app.client
            .post(app.url(&format!("{home_path}/head")))
            .bearer_auth(&app.admin_token)
            .json(&json!({"person_id": id(&members[1]), "previous_head_role": "spouse", "on": "1398-02-01"})),
    )
    .await;
    assert!(took_the_lock, "the other writer got the order lock");
    assert_eq!(response.status(), 204);

    // A member who leaves is held: the new household is made first.
    let (took_the_lock, response) = crate::helpers::beside_a_writer(
        &app,
        hold(&members[2]),
        app.client
            .post(app.url(&format!("{home_path}/split")))
            .bearer_auth(&app.admin_token)
            .json(
                &json!({"address": "کوچه نو", "on": "1398-05-01", "members": [
                {"person_id": id(&members[2]), "household_role": "head"}]}),
            ),
    )
    .await;
    assert!(took_the_lock, "the other writer got the order lock");
    assert_eq!(response.status(), 201);
}

/// Two records of one woman, each heading a household of its own in a new neighbourhood: the
/// ids of the one a merge keeps and of her twin, and the neighbourhood.
async fn twins(app: &TestApp) -> (String, String, Value) {
    let (n1, _) = two_neighbourhoods(app).await;
    let mut ids = Vec::new();
    for national_id in ["0499370899", "0100000010"] {
        let home = household(app, &n1).await;
        let record = create(
            app,
            &person(national_id, "رقیه", "قاسمی", "female", &home, "head"),
        )
        .await;
        ids.push(record["id"].as_str().expect("id").to_owned());
    }
    (ids.remove(0), ids.remove(0), n1)
}

/// What a merge of `twin` into `kept` has written when it is half-way: both persons locked as it
/// locks them, her stay ended, her record merged.
fn merging(kept: &str, twin: &str) -> String {
    format!(
        "SELECT id FROM persons WHERE id IN ('{kept}', '{twin}') ORDER BY id FOR UPDATE;
         UPDATE household_memberships SET ended_on = CURRENT_DATE
         WHERE person_id = '{twin}' AND ended_on IS NULL;
         UPDATE persons SET merged_into = '{kept}', household_id = NULL, household_role = NULL,
             neighbourhood_id = NULL, version = version + 1
         WHERE id = '{twin}'"
    )
}

/// Two merges of the same two persons at once. One, merging B into A, has written B's row and
/// not committed when a merge of A into B comes: that one waits for the first, then refuses. It
/// read both records unmerged and went on, so both committed, each record merged into the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merge_beside_a_merge_of_the_same_persons_waits_and_refuses() {
    let Some(app) = crate::helpers::TestApp::spawn(crate::helpers::Backend::Postgres).await else {
        return;
    };
    let (a, b, _) = twins(&app).await;
    let (committed, response) = crate::helpers::holding(
        &app,
        merging(&a, &b),
        crate::helpers::Then::Commit,
        app.client
            .post(app.url(&format!("/api/v1/persons/{b}/merge")))
            .bearer_auth(&app.admin_token)
            .json(&json!({"from": a})),
    )
    .await;
    assert!(committed, "the first merge committed");
    crate::helpers::refused(response, 409, "merged already").await;
    let kept = crate::helpers::get_json(&app, &format!("/api/v1/persons/{a}")).await;
    assert_eq!(kept["merged_into"], Value::Null, "A stays unmerged: {kept}");
    assert!(kept["household_id"].is_string(), "{kept}");
}

/// What is recorded once (an outcome's verification, a follow-up, a consent's withdrawal), asked
/// for while another request's record of it is written and not yet committed: the second waits
/// for the first and is refused, as it is after it. A second follow-up or withdrawal overwrote
/// the first (a later withdrawal lengthened the consent); a second verification changed nothing
/// but was answered 200 and audited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_is_recorded_once_is_refused_beside_its_first_record() {
    let Some(app) = crate::helpers::TestApp::spawn(crate::helpers::Backend::Postgres).await else {
        return;
    };
    let (n1, _) = two_neighbourhoods(&app).await;
    let her = crate::training::person(&app, &n1, 1, "1360-01-01").await;
    let path = format!("/api/v1/persons/{}", her["id"].as_str().expect("id"));
    let outcome: Value = app
        .post_json(&format!("{path}/outcomes"), &json!({"kind": "home_business", "started_on": "1398-06-09", "evidence": "permit_and_sales", "evidence_reference": "HB-1398-0042"}))
        .await
        .json()
        .await
        .expect("outcome");
    let outcome_id = outcome["id"].as_str().expect("id").to_owned();
    let consent: Value = app
        .post_json(
            &format!("{path}/consents"),
            &json!({"purpose": "programme", "share_with_partners": true, "given_on": "1398-02-01"}),
        )
        .await
        .json()
        .await
        .expect("consent");
    let consent_id = consent["id"].as_str().expect("id").to_owned();
    let manager = app
        .mint(tavana_domain::access::Role::ProgrammeManager)
        .await;
    let post = |token: &str, path: String, body: Value| {
        app.client
            .post(app.url(&path))
            .bearer_auth(token)
            .json(&body)
    };
    for (hold, request) in [
        (
            format!(
                "UPDATE employment_outcomes SET verified_on = '2019-09-23', verified_by = 'another',
                     version = version + 1 WHERE id = '{outcome_id}'"
            ),
            post(
                &manager,
                format!("/api/v1/outcomes/{outcome_id}/verify"),
                json!({"on": "1398-07-01"}),
            ),
        ),
        (
            format!(
                "UPDATE outcome_follow_ups SET done_on = '2019-12-01', still_employed = true
                 WHERE outcome_id = '{outcome_id}' AND months = 3"
            ),
            post(
                &app.admin_token,
                format!("/api/v1/outcomes/{outcome_id}/follow-ups/3"),
                json!({"done_on": "1398-09-20", "still_employed": false}),
            ),
        ),
        (
            format!(
                "UPDATE consents SET withdrawn_on = '2019-10-01', withdrawn_by = 'another'
                 WHERE id = '{consent_id}'"
            ),
            post(
                &app.admin_token,
                format!("{path}/consents/{consent_id}/withdraw"),
                json!({}),
            ),
        ),
    ] {
        let (committed, response) =
            crate::helpers::holding(&app, hold, crate::helpers::Then::Commit, request).await;
        assert!(committed, "the first record committed");
        crate::helpers::refused(response, 409, "already").await;
    }
    let outcomes: Value = app
        .get(&format!("{path}/outcomes"))
        .await
        .json()
        .await
        .expect("outcomes");
    let outcome = &outcomes[0];
    assert_eq!(outcome["verified_on"], "2019-09-23", "{outcome}");
    assert_eq!(
        outcome["follow_ups"][0]["done_on"], "2019-12-01",
        "{outcome}"
    );
    assert_eq!(
        outcome["follow_ups"][0]["still_employed"], true,
        "{outcome}"
    );
    let consents: Value = app
        .get(&format!("{path}/consents"))
        .await
        .json()
        .await
        .expect("consents");
    assert_eq!(consents[0]["withdrawn_on"], "2019-10-01", "{consents}");
}

/// Two splits of one household at once, each taking members the other leaves: the first has
/// moved its members out and not committed when the second comes. The second waits for it (every
/// change of a household's members holds the household's row first) and then finds nobody would
/// stay. Both counted three members, both committed, and the household was left with nobody.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_beside_another_split_of_its_household_leaves_somebody() {
    let Some(app) = crate::helpers::TestApp::spawn(crate::helpers::Backend::Postgres).await else {
        return;
    };
    let (n1, _) = two_neighbourhoods(&app).await;
    let (home, elsewhere) = (household(&app, &n1).await, household(&app, &n1).await);
    let mut members = Vec::new();
    for (national_id, name, role) in [
        ("0499370899", "رضا", "head"),
        ("0100000010", "نرگس", "spouse"),
        ("0100000101", "مینا", "child"),
    ] {
        members.push(
            create(
                &app,
                &person(national_id, name, "نیکو", "female", &home, role),
            )
            .await,
        );
    }
    let id = |v: &Value| v["id"].as_str().expect("id").to_owned();
    let home_id = id(&home);
    let (committed, response) = crate::helpers::holding(
        &app,
        format!(
            "UPDATE households SET updated_at = updated_at WHERE id = '{home_id}';
             UPDATE persons SET household_id = '{}' WHERE id IN ('{}', '{}')",
            id(&elsewhere),
            id(&members[0]),
            id(&members[1])
        ),
        crate::helpers::Then::Commit,
        app.client
            .post(app.url(&format!("/api/v1/households/{home_id}/split")))
            .bearer_auth(&app.admin_token)
            .json(&json!({"address": "کوچه نو", "members": [
                {"person_id": id(&members[2]), "household_role": "head"}]})),
    )
    .await;
    assert!(committed, "the first split committed");
    let body = problem(response, 422).await;
    assert_eq!(body["errors"][0]["code"], "nobody_left", "{body}");
}

/// A consent recorded for a person while a merge of her record into another is written and not
/// yet committed: it waits for the merge (which locks her row as a delete would) and is then
/// refused. It was added to the merged record, which the survivor never saw.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consent_beside_a_merge_of_its_person_waits_and_is_refused() {
    let Some(app) = crate::helpers::TestApp::spawn(crate::helpers::Backend::Postgres).await else {
        return;
    };
    let (kept, twin, _) = twins(&app).await;
    let (committed, response) = crate::helpers::holding(
        &app,
        merging(&kept, &twin),
        crate::helpers::Then::Commit,
        app.client
            .post(app.url(&format!("/api/v1/persons/{twin}/consents")))
            .bearer_auth(&app.admin_token)
            .json(&json!({"purpose": "programme", "share_with_partners": true})),
    )
    .await;
    assert!(committed, "the merge committed");
    crate::helpers::refused(response, 409, "merged into another").await;
}

/// A move of a person while another move of her is written and not yet committed (it holds the
/// household she leaves, then her row): the second waits, then finds her moved and is refused
/// (409). It moved her on from where she no longer was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_beside_another_move_of_the_person_is_refused() {
    let Some(app) = crate::helpers::TestApp::spawn(crate::helpers::Backend::Postgres).await else {
        return;
    };
    let (n1, _) = two_neighbourhoods(&app).await;
    let (home, first, second) = (
        household(&app, &n1).await,
        household(&app, &n1).await,
        household(&app, &n1).await,
    );
    let her = create(
        &app,
        &person("0499370899", "مینا", "نیکو", "female", &home, "other"),
    )
    .await;
    let id = |v: &Value| v["id"].as_str().expect("id").to_owned();
    let (committed, response) = crate::helpers::holding(
        &app,
        format!(
            "UPDATE households SET updated_at = updated_at WHERE id = '{}';
             UPDATE persons SET household_id = '{}' WHERE id = '{}'",
            id(&home),
            id(&first),
            id(&her)
        ),
        crate::helpers::Then::Commit,
        app.client
            .post(app.url(&format!("/api/v1/persons/{}/move", id(&her))))
            .bearer_auth(&app.admin_token)
            .json(
                &json!({"household_id": id(&second), "household_role": "other", "reason": "moved"}),
            ),
    )
    .await;
    assert!(committed, "the first move committed");
    crate::helpers::refused(response, 409, "moved").await;
    let now: Value = app
        .get(&format!("/api/v1/persons/{}", id(&her)))
        .await
        .json()
        .await
        .expect("person");
    assert_eq!(now["household_id"], first["id"], "{now}");
}

/// A move of a person while a merge of her record into another is written and not yet committed
/// (it locks both persons, then ends her stay): the move waits for the merge and is refused. It
/// waited for her stay instead, found it ended, opened another and put the merged record back
/// into a household.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_beside_a_merge_of_the_person_is_refused() {
    let Some(app) = crate::helpers::TestApp::spawn(crate::helpers::Backend::Postgres).await else {
        return;
    };
    let (kept, twin, n1) = twins(&app).await;
    let elsewhere = household(&app, &n1).await;
    let (committed, response) = crate::helpers::holding(
        &app,
        merging(&kept, &twin),
        crate::helpers::Then::Commit,
        app.client
            .post(app.url(&format!("/api/v1/persons/{twin}/move")))
            .bearer_auth(&app.admin_token)
            .json(&json!({"household_id": elsewhere["id"], "household_role": "head", "reason": "moved"})),
    )
    .await;
    assert!(committed, "the merge committed");
    crate::helpers::refused(response, 409, "merged into another").await;
    let merged = crate::helpers::get_json(&app, &format!("/api/v1/persons/{twin}")).await;
    assert_eq!(merged["household_id"], Value::Null, "{merged}");
}

/// A merged into B, then B into C: A answers with C, not with the merged B (registering A's
/// national ID again names C; an import's row of A would be written to C).
async fn a_record_merged_into_one_merged_later_answers_with_the_last(app: TestApp) {
    let (n1, _) = two_neighbourhoods(&app).await;
    let mut records = Vec::new();
    for national_id in ["0499370899", "0100000010", "0100000101"] {
        let home = household(&app, &n1).await;
        records.push(
            create(
                &app,
                &person(national_id, "رقیه", "قاسمی", "female", &home, "head"),
            )
            .await,
        );
    }
    let id = |v: &Value| v["id"].as_str().expect("id").to_owned();
    let (a, b, c) = (id(&records[0]), id(&records[1]), id(&records[2]));
    for (into, from) in [(&b, &a), (&c, &b)] {
        let response = app
            .post_json(
                &format!("/api/v1/persons/{into}/merge"),
                &json!({"from": from}),
            )
            .await;
        assert_eq!(response.status(), 200);
    }
    let first: Value = app
        .get(&format!("/api/v1/persons/{a}"))
        .await
        .json()
        .await
        .expect("person");
    assert_eq!(first["merged_into"], c.as_str(), "{first}");
    let home = household(&app, &n1).await;
    let body = problem(
        app.post_json(
            "/api/v1/persons",
            &person("0499370899", "رقیه", "قاسمی", "female", &home, "head"),
        )
        .await,
        409,
    )
    .await;
    assert_eq!(body["existing_id"], c.as_str(), "{body}");
}

/// A reviewer dismisses a pair, thinks again and merges the two: the pair shows as merged, not
/// as dismissed beside two merged records.
async fn a_pair_dismissed_then_merged_is_marked_merged(app: TestApp) {
    let (kept, twin, _) = twins(&app).await;
    let response = app
        .post_json(
            "/api/v1/duplicates/dismiss",
            &json!({"person_id": twin, "candidate_id": kept}),
        )
        .await;
    assert_eq!(response.status(), 204);
    let response = app
        .post_json(
            &format!("/api/v1/persons/{kept}/merge"),
            &json!({"from": twin}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let merged = crate::helpers::get_json(&app, "/api/v1/duplicates?status=merged").await;
    assert_eq!(merged.as_array().map(Vec::len), Some(1), "{merged}");
    let dismissed = crate::helpers::get_json(&app, "/api/v1/duplicates?status=dismissed").await;
    assert_eq!(dismissed, json!([]));
}
