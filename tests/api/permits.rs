//! Home-business permits: eligibility explained, the review workflow, numbers, validity and
//! expiry, actions, monitoring visits, scope, and the public verification.

use serde_json::{Value, json};
use tavana_domain::access::Role;

use crate::backend_tests;
use crate::helpers::{TestApp, problem};
use crate::households::{facilitator_token, two_neighbourhoods};
use crate::training::{completed_technical_course, created, id, person};

backend_tests!(
    eligibility_is_explained_rule_by_rule,
    the_review_workflow_issues_a_numbered_permit_and_moves_the_enrolment,
    permit_actions_follow_the_state_and_renewal_adds_a_period,
    an_expired_permit_is_not_renewed_beside_a_newer_one_in_force,
    permit_numbers_are_unique_under_concurrent_issuance,
    expiry_is_computed_from_the_dates,
    public_verification_shows_no_personal_data_and_is_rate_limited,
    permits_respect_the_callers_scope,
);

const WHH: &str = "0169a6c0-0000-7000-8000-000000000001";

/// Enrols the person's household in "Women heads of household 1398" up to `state`.
pub async fn enrol_until(app: &TestApp, person: &Value, state: &str) -> Value {
    created(
        app.post_json(
            &format!("/api/v1/persons/{}/consents", id(person)),
            &json!({"purpose": "programme", "share_with_partners": false, "given_on": "1398-01-01"}),
        )
        .await,
    )
    .await;
    let enrolment = created(
        app.post_json(
            "/api/v1/enrolments",
            &json!({"programme_id": WHH, "household_id": person["household_id"], "on": "1398-01-02"}),
        )
        .await,
    )
    .await;
    for (to, on) in [
        ("assessed", "1398-01-03"),
        ("enrolled", "1398-01-04"),
        ("in_training", "1398-01-05"),
    ] {
        let response = app
            .post_json(
                &format!("/api/v1/enrolments/{}/transitions", id(&enrolment)),
                &json!({"to": to, "on": on}),
            )
            .await;
        assert_eq!(response.status(), 200, "{to}");
        if to == state {
            break;
        }
    }
    enrolment
}

/// An adult, enrolled person who completed a technical course.
pub async fn eligible_person(app: &TestApp, neighbourhood: &Value, n: u32) -> Value {
    let p = person(app, neighbourhood, n, "1360-01-01").await;
    enrol_until(app, &p, "in_training").await;
    completed_technical_course(app, neighbourhood, &p).await;
    p
}

pub async fn apply(app: &TestApp, person: &Value, activity: &str, on: &str) -> reqwest::Response {
    app.post_json(
        "/api/v1/permit-applications",
        &json!({"person_id": person["id"], "activity": activity, "address": "کوچه بهار، پلاک ۷", "applied_on": on}),
    )
    .await
}

async fn step_as(
    app: &TestApp,
    token: &str,
    application: &Value,
    to: &str,
    on: &str,
    notes: Option<&str>,
) -> reqwest::Response {
    app.client
        .post(app.url(&format!(
            "/api/v1/permit-applications/{}/steps",
            id(application)
        )))
        .bearer_auth(token)
        .json(&json!({"to": to, "on": on, "notes": notes}))
        .send()
        .await
        .expect("sent")
}

/// Takes a submitted application through to `approved`.
async fn approve(app: &TestApp, officer: &str, application: &Value, on: &str) {
    for (to, notes) in [
        ("under_review", None),
        ("inspected", Some("بازدید از منزل: فضای کار مناسب است")),
        ("approved", None),
    ] {
        let response = step_as(app, officer, application, to, on, notes).await;
        let status = response.status();
        let body: Value = response.json().await.expect("json");
        assert_eq!(status, 200, "{to}: {body}");
    }
}

/// Takes a submitted application through to `issued`; returns the step answer.
pub async fn issue(app: &TestApp, officer: &str, application: &Value, on: &str) -> Value {
    approve(app, officer, application, on).await;
    let response = step_as(app, officer, application, "issued", on, None).await;
    let status = response.status();
    let body: Value = response.json().await.expect("json");
    assert_eq!(status, 200, "issued: {body}");
    body
}

pub async fn act(app: &TestApp, officer: &str, permit: &Value, body: Value) -> reqwest::Response {
    app.client
        .post(app.url(&format!("/api/v1/permits/{}/actions", id(permit))))
        .bearer_auth(officer)
        .json(&body)
        .send()
        .await
        .expect("sent")
}

async fn public(app: &TestApp, number: &str) -> reqwest::Response {
    app.client
        .get(app.url(&format!("/api/v1/public/permits/{number}")))
        .send()
        .await
        .expect("sent")
}

async fn eligibility_is_explained_rule_by_rule(app: TestApp) {
    let (n1, _) = two_neighbourhoods(&app).await;
    // 17 on the day of application, not enrolled, no course.
    let young = person(&app, &n1, 1, "2007-06-01").await;
    let body = problem(apply(&app, &young, "tailoring", "2024-10-01").await, 422).await;
    let codes: Vec<(&str, &str)> = body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| {
            (
                e["field"].as_str().expect("field"),
                e["code"].as_str().expect("code"),
            )
        })
        .collect();
    assert_eq!(
        codes,
        [
            ("person_id.birth_date", "adult"),
            ("person_id.enrolment", "enrolled"),
            ("person_id.training", "technical_training"),
        ]
    );
    assert_eq!(
        body["errors"][0]["message"],
        "17 years old on 2024-10-01; at least 18 needed"
    );
    // Enrolled only up to `assessed` is not enrolled.
    let assessed = person(&app, &n1, 2, "1360-01-01").await;
    enrol_until(&app, &assessed, "assessed").await;
    let body = problem(apply(&app, &assessed, "tailoring", "2024-10-01").await, 422).await;
    assert_eq!(body["errors"][0]["code"], "enrolled");
    assert_eq!(body["errors"][1]["code"], "technical_training");

    let ready = eligible_person(&app, &n1, 3).await;
    let problem_body = problem(apply(&app, &ready, "juggling", "2024-10-01").await, 422).await;
    assert_eq!(problem_body["errors"][0]["field"], "activity");
    let applied = created(apply(&app, &ready, "tailoring", "2024-10-01").await).await;
    assert_eq!(applied["application"]["state"], "submitted");
    assert!(
        applied["eligibility"]
            .as_array()
            .expect("checks")
            .iter()
            .all(|c| c["passed"] == true)
    );
    // A second application for the same activity while the first is under way: 409.
    let body = problem(apply(&app, &ready, "tailoring", "2024-10-02").await, 409).await;
    assert_eq!(body["existing_id"], applied["application"]["id"]);
    // Once the permit is issued, another for the same activity is refused by the rule...
    let officer = app.mint(Role::PermitOfficer).await;
    issue(&app, &officer, &applied["application"], "2024-10-05").await;
    let body = problem(apply(&app, &ready, "tailoring", "2024-11-01").await, 422).await;
    assert_eq!(body["errors"][0]["code"], "no_active_permit");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .expect("message")
            .contains("KR-1403-")
    );
    // ... while another activity is fine.
    created(apply(&app, &ready, "handicrafts", "2024-11-01").await).await;
}

async fn the_review_workflow_issues_a_numbered_permit_and_moves_the_enrolment(app: TestApp) {
    let (n1, _) = two_neighbourhoods(&app).await;
    let p = eligible_person(&app, &n1, 1).await;
    let applied = created(apply(&app, &p, "tailoring", "1403-07-10").await).await;
    let application = &applied["application"];
    let officer = app.mint(Role::PermitOfficer).await;

    // Only permit officers review.
    let facilitator = facilitator_token(&app, "fatemeh", &n1).await;
    problem(
        step_as(
            &app,
            &facilitator,
            application,
            "under_review",
            "1403-07-11",
            None,
        )
        .await,
        403,
    )
    .await;
    // Out of order: 409 naming what is allowed.
    let body = problem(
        step_as(&app, &officer, application, "issued", "1403-07-11", None).await,
        409,
    )
    .await;
    assert_eq!(body["allowed"], json!(["under_review", "rejected"]));
    assert_eq!(
        step_as(
            &app,
            &officer,
            application,
            "under_review",
            "1403-07-11",
            None
        )
        .await
        .status(),
        200
    );
    // The home visit must be recorded.
    let body = problem(
        step_as(&app, &officer, application, "inspected", "1403-07-12", None).await,
        422,
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "notes");
    // Not before the previous step.
    problem(
        step_as(
            &app,
            &officer,
            application,
            "inspected",
            "1403-07-01",
            Some("x"),
        )
        .await,
        422,
    )
    .await;
    for (to, notes) in [("inspected", Some("بازدید انجام شد")), ("approved", None)] {
        let response = step_as(&app, &officer, application, to, "1403-07-12", notes).await;
        assert_eq!(response.status(), 200, "{to}");
    }
    let issued = step_as(&app, &officer, application, "issued", "1403-07-15", None).await;
    assert_eq!(issued.status(), 200);
    let issued: Value = issued.json().await.expect("json");
    let permit = &issued["permit"];
    assert_eq!(permit["number"], "KR-1403-000001");
    // 1403-07-15 is 2024-10-06; three years, less a day.
    assert_eq!(permit["valid_from"], "2024-10-06");
    assert_eq!(permit["valid_until"], "2027-10-05");
    assert_eq!(permit["state"], "issued");
    assert_eq!(issued["application"]["state"], "issued");
    assert_eq!(issued["application"]["permit_id"], permit["id"]);
    let steps: Vec<&str> = issued["application"]["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| s["to"].as_str().expect("to"))
        .collect();
    assert_eq!(
        steps,
        [
            "submitted",
            "under_review",
            "inspected",
            "approved",
            "issued"
        ]
    );
    assert_eq!(
        issued["application"]["steps"][2]["notes"],
        "بازدید انجام شد"
    );
    // The household's enrolment moved from in_training to permitted.
    let moved = issued["enrolments_moved"].as_array().expect("moved");
    assert_eq!(moved.len(), 1);
    let enrolment: Value = app
        .get(&format!(
            "/api/v1/enrolments/{}",
            moved[0].as_str().expect("id")
        ))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(enrolment["state"], "permitted");
    // The audit log shows the permit before the move it caused.
    let seq = |entries: &Value| entries["items"][0]["seq"].as_i64().expect("seq");
    let issuing = crate::helpers::get_json(&app, "/api/v1/audit?action=permit.issue").await;
    let moves = crate::helpers::get_json(
        &app,
        &format!(
            "/api/v1/audit?action=enrolment.transition&entity_id={}",
            moved[0].as_str().expect("id")
        ),
    )
    .await;
    assert_eq!(moves["items"][0]["after"]["state"], "permitted");
    assert!(seq(&issuing) < seq(&moves), "{issuing} {moves}");
    // Issued is final.
    problem(
        step_as(
            &app,
            &officer,
            application,
            "rejected",
            "1403-07-16",
            Some("late"),
        )
        .await,
        409,
    )
    .await;
    // Every step is in the audit log.
    let audit: Value = app
        .get("/api/v1/audit?action=permit_application.step")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(audit["items"].as_array().map(Vec::len), Some(4));

    // A rejection needs its reason and ends the application.
    let other = created(apply(&app, &p, "knitting", "1403-07-20").await).await;
    let other = &other["application"];
    problem(
        step_as(&app, &officer, other, "rejected", "1403-07-21", None).await,
        422,
    )
    .await;
    let rejected = step_as(
        &app,
        &officer,
        other,
        "rejected",
        "1403-07-21",
        Some("فضای کار ایمن نیست"),
    )
    .await;
    assert_eq!(rejected.status(), 200);
    problem(
        step_as(&app, &officer, other, "under_review", "1403-07-22", None).await,
        409,
    )
    .await;

    // A programme whose rules say no: the enrolment stays.
    let q = eligible_person(&app, &n1, 2).await;
    let patched = app
        .client
        .patch(app.url(&format!("/api/v1/programmes/{WHH}")))
        .bearer_auth(&app.admin_token)
        .json(&json!({"advance_on_permit": false}))
        .send()
        .await
        .expect("sent");
    assert_eq!(patched.status(), 200);
    let applied = created(apply(&app, &q, "tailoring", "1403-08-01").await).await;
    let issued = issue(&app, &officer, &applied["application"], "1403-08-05").await;
    assert_eq!(issued["enrolments_moved"], json!([]));
    assert_eq!(issued["permit"]["number"], "KR-1403-000002");
}

async fn permit_actions_follow_the_state_and_renewal_adds_a_period(app: TestApp) {
    let (n1, _) = two_neighbourhoods(&app).await;
    let p = eligible_person(&app, &n1, 1).await;
    let applied = created(apply(&app, &p, "pastry", "2025-06-01").await).await;
    let officer = app.mint(Role::PermitOfficer).await;
    let issued = issue(&app, &officer, &applied["application"], "2025-06-10").await;
    let permit = issued["permit"].clone();
    assert_eq!(permit["valid_until"], "2028-06-09");

    let body = problem(
        act(&app, &officer, &permit, json!({"action": "suspend"})).await,
        422,
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "reason");
    let suspended: Value = act(
        &app,
        &officer,
        &permit,
        json!({"action": "suspend", "reason": "شکایت مشتری"}),
    )
    .await
    .json()
    .await
    .expect("json");
    assert_eq!(suspended["state"], "suspended");
    assert_eq!(suspended["state_reason"], "شکایت مشتری");
    let body = problem(
        act(&app, &officer, &permit, json!({"action": "renew"})).await,
        409,
    )
    .await;
    assert_eq!(body["allowed"], json!(["reinstate", "revoke"]));
    let reinstated: Value = act(&app, &officer, &permit, json!({"action": "reinstate"}))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(reinstated["state"], "issued");
    // Renewed while valid: the new period follows without a gap.
    let renewed = act(&app, &officer, &permit, json!({"action": "renew"})).await;
    assert_eq!(renewed.status(), 200);
    let renewed: Value = renewed.json().await.expect("json");
    // Renewed while valid: still valid from its first day, now until the new period's end.
    assert_eq!(renewed["valid_from"], "2025-06-10");
    assert_eq!(renewed["periods"][1]["valid_from"], "2028-06-10");
    assert_eq!(renewed["valid_until"], "2031-06-09");
    assert_eq!(renewed["periods"].as_array().map(Vec::len), Some(2));
    assert_eq!(renewed["periods"][0]["valid_until"], "2028-06-09");
    // A stale If-Match is refused.
    let stale = app
        .client
        .post(app.url(&format!("/api/v1/permits/{}/actions", id(&permit))))
        .bearer_auth(&officer)
        .header("if-match", "\"1\"")
        .json(&json!({"action": "revoke", "reason": "x"}))
        .send()
        .await
        .expect("sent");
    problem(stale, 412).await;
    let revoked: Value = act(
        &app,
        &officer,
        &permit,
        json!({"action": "revoke", "reason": "فعالیت متوقف شد"}),
    )
    .await
    .json()
    .await
    .expect("json");
    assert_eq!(revoked["state"], "revoked");
    let body = problem(
        act(&app, &officer, &permit, json!({"action": "reinstate"})).await,
        409,
    )
    .await;
    assert_eq!(body["allowed"], json!([]));

    // Monitoring visits.
    let visit = app
        .client
        .post(app.url(&format!("/api/v1/permits/{}/visits", id(&permit))))
        .bearer_auth(&officer)
        .json(&json!({"visited_on": "2025-09-01", "notes": "کار ادامه دارد"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(visit.status(), 201);
    let early = app
        .client
        .post(app.url(&format!("/api/v1/permits/{}/visits", id(&permit))))
        .bearer_auth(&officer)
        .json(&json!({"visited_on": "2025-01-01", "notes": "x"}))
        .send()
        .await
        .expect("sent");
    problem(early, 422).await;
    let visits: Value = app
        .get(&format!("/api/v1/permits/{}/visits", id(&permit)))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(visits[0]["notes"], "کار ادامه دارد");
    assert_eq!(visits.as_array().map(Vec::len), Some(1));
}

async fn permit_numbers_are_unique_under_concurrent_issuance(app: TestApp) {
    let (n1, _) = two_neighbourhoods(&app).await;
    let officer = app.mint(Role::PermitOfficer).await;
    let mut approved = Vec::new();
    for n in 1..=6 {
        let p = eligible_person(&app, &n1, n).await;
        let applied = created(apply(&app, &p, "embroidery", "1403-07-10").await).await;
        let application = applied["application"].clone();
        for (to, notes) in [
            ("under_review", None),
            ("inspected", Some("ok")),
            ("approved", None),
        ] {
            let response = step_as(&app, &officer, &application, to, "1403-07-11", notes).await;
            assert_eq!(response.status(), 200);
        }
        approved.push(application);
    }
    let issues = approved
        .iter()
        .map(|a| step_as(&app, &officer, a, "issued", "1403-07-12", None));
    let answers = futures_util::future::join_all(issues).await;
    let mut numbers = Vec::new();
    for answer in answers {
        assert_eq!(answer.status(), 200);
        let body: Value = answer.json().await.expect("json");
        numbers.push(
            body["permit"]["number"]
                .as_str()
                .expect("number")
                .to_owned(),
        );
    }
    numbers.sort();
    let expected: Vec<String> = (1..=6).map(|n| format!("KR-1403-{n:06}")).collect();
    assert_eq!(numbers, expected);
}

async fn expiry_is_computed_from_the_dates(app: TestApp) {
    let (n1, _) = two_neighbourhoods(&app).await;
    let p = eligible_person(&app, &n1, 1).await;
    let officer = app.mint(Role::PermitOfficer).await;
    // Issued on 1399-01-15 (2020-04-03): valid until 2023-04-02, long past.
    let applied = created(apply(&app, &p, "tailoring", "1399-01-10").await).await;
    let issued = issue(&app, &officer, &applied["application"], "1399-01-15").await;
    let permit = &issued["permit"];
    assert_eq!(permit["number"], "KR-1399-000001");
    assert_eq!(permit["valid_until"], "2023-04-02");
    assert_eq!(permit["state"], "expired");
    let public: Value = public(&app, "KR-1399-000001")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(public["valid"], false);
    assert_eq!(public["state"], "expired");
    // An expired permit no longer blocks a new application for the activity.
    created(apply(&app, &p, "tailoring", "1403-07-01").await).await;
    // Renewing an expired permit starts the new period today.
    let renewed: Value = act(&app, &officer, permit, json!({"action": "renew"}))
        .await
        .json()
        .await
        .expect("json");
    let today = chrono::Utc::now().date_naive().to_string();
    assert_eq!(renewed["valid_from"], today);
    assert_eq!(renewed["state"], "issued");
    let public: Value = public_json(&app, "KR-1399-000001").await;
    assert_eq!(public["valid"], true);
}

async fn public_json(app: &TestApp, number: &str) -> Value {
    public(app, number).await.json().await.expect("json")
}

async fn public_verification_shows_no_personal_data_and_is_rate_limited(app: TestApp) {
    let (n1, _) = two_neighbourhoods(&app).await;
    let p = eligible_person(&app, &n1, 1).await;
    let officer = app.mint(Role::PermitOfficer).await;
    let applied = created(apply(&app, &p, "carpet_weaving", "1403-07-10").await).await;
    issue(&app, &officer, &applied["application"], "1403-07-12").await;

    // No token needed; lower case is accepted.
    let answer = public(&app, "kr-1403-000001").await;
    assert_eq!(answer.status(), 200);
    let body: Value = answer.json().await.expect("json");
    let mut fields: Vec<&str> = body
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        [
            "activity",
            "number",
            "state",
            "valid",
            "valid_from",
            "valid_until",
            "valid_until_jalali"
        ]
    );
    assert_eq!(body["valid"], true);
    assert_eq!(body["activity"]["code"], "carpet_weaving");
    let text = body.to_string();
    for private in [
        p["national_id"].as_str().expect("national id"),
        p["first_name"].as_str().expect("name"),
        p["last_name"].as_str().expect("name"),
        id(&p),
        "کوچه بهار",
    ] {
        assert!(!text.contains(private), "{private} leaked");
    }
    problem(public(&app, "KR-1403-999999").await, 404).await;
    problem(public(&app, "1 OR 1=1").await, 404).await;

    // 60 lookups a minute per address (the default); the 61st is refused. (Three were made above;
    // a minute boundary may reset the count once, so allow for it.)
    let mut refused = None;
    for attempt in 0..130 {
        let answer = public(&app, "KR-1403-000001").await;
        if answer.status() == 429 {
            refused = Some((attempt, answer));
            break;
        }
    }
    let (_, answer) = refused.expect("the lookups were limited");
    assert!(answer.headers().get("retry-after").is_some());
    problem(answer, 429).await;
}

async fn permits_respect_the_callers_scope(app: TestApp) {
    let (n1, n2) = two_neighbourhoods(&app).await;
    let p = eligible_person(&app, &n1, 1).await;
    let officer = app.mint(Role::PermitOfficer).await;
    let applied = created(apply(&app, &p, "tailoring", "1403-07-10").await).await;
    let issued = issue(&app, &officer, &applied["application"], "1403-07-12").await;
    let outsider = facilitator_token(&app, "outsider", &n2).await;
    let get = |path: String| {
        let request = app.client.get(app.url(&path)).bearer_auth(&outsider).send();
        async move { request.await.expect("sent") }
    };
    problem(
        get(format!("/api/v1/permits/{}", id(&issued["permit"]))).await,
        404,
    )
    .await;
    problem(
        get(format!(
            "/api/v1/permit-applications/{}",
            id(&applied["application"])
        ))
        .await,
        404,
    )
    .await;
    let listed: Value = get("/api/v1/permits".to_owned())
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(0));
    let refused = app
        .client
        .post(app.url("/api/v1/permit-applications"))
        .bearer_auth(&outsider)
        .json(&json!({"person_id": p["id"], "activity": "knitting", "address": "x"}))
        .send()
        .await
        .expect("sent");
    let body = problem(refused, 422).await;
    assert_eq!(body["errors"][0]["field"], "person_id");
    // An insider sees it.
    let insider = facilitator_token(&app, "insider", &n1).await;
    let seen = app
        .client
        .get(app.url(&format!("/api/v1/permits/{}", id(&issued["permit"]))))
        .bearer_auth(&insider)
        .send()
        .await
        .expect("sent");
    assert_eq!(seen.status(), 200);
}

/// PostgreSQL only: issuing a permit moves the household's enrolments before it takes the order
/// lock of the audit log and the changes feed, as every writer takes that lock last. It took the
/// lock first, so a transition of the same enrolment at that moment, which holds the row and then
/// asks for the lock, deadlocked with it (one of the two failed with a 503).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issuing_a_permit_beside_a_transition_of_its_enrolment_does_not_deadlock() {
    let Some(app) = TestApp::spawn(crate::helpers::Backend::Postgres).await else {
        return;
    };
    let (n1, _) = two_neighbourhoods(&app).await;
    let p = person(&app, &n1, 1, "1360-01-01").await;
    let enrolment = id(&enrol_until(&app, &p, "in_training").await).to_owned();
    completed_technical_course(&app, &n1, &p).await;
    let applied = created(apply(&app, &p, "tailoring", "1403-07-10").await).await;
    let application = &applied["application"];
    let officer = app.mint(Role::PermitOfficer).await;
    approve(&app, &officer, application, "1403-07-11").await;
    // A transition in the middle of its write holds the enrolment's row.
    let (took_the_lock, response) = crate::helpers::beside_a_writer(
        &app,
        format!("UPDATE enrolments SET updated_at = updated_at WHERE id = '{enrolment}'"),
        app.client
            .post(app.url(&format!(
                "/api/v1/permit-applications/{}/steps",
                id(application)
            )))
            .bearer_auth(&officer)
            .json(&json!({"to": "issued", "on": "1403-07-12"})),
    )
    .await;
    assert!(took_the_lock, "the transition got the order lock");
    let status = response.status();
    let body: Value = response.json().await.expect("json");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["enrolments_moved"], json!([enrolment]));
}

/// A permit that expired, then a new one issued for the same activity: renewing the old one
/// would make two in force, and is refused as issuing a second is.
async fn an_expired_permit_is_not_renewed_beside_a_newer_one_in_force(app: TestApp) {
    let (n1, _) = two_neighbourhoods(&app).await;
    let p = eligible_person(&app, &n1, 1).await;
    let officer = app.mint(Role::PermitOfficer).await;
    let applied = created(apply(&app, &p, "tailoring", "1399-01-10").await).await;
    let old = issue(&app, &officer, &applied["application"], "1399-01-15").await;
    assert_eq!(old["permit"]["state"], "expired");
    // Issued lately, so that it is in force for years after this test was written.
    let applied = created(apply(&app, &p, "tailoring", "1405-08-01").await).await;
    let new = issue(&app, &officer, &applied["application"], "1405-08-05").await;
    assert_eq!(new["permit"]["state"], "issued");
    crate::helpers::refused(
        act(&app, &officer, &old["permit"], json!({"action": "renew"})).await,
        409,
        new["permit"]["number"].as_str().expect("number"),
    )
    .await;
    let public: Value = public_json(&app, old["permit"]["number"].as_str().expect("number")).await;
    assert_eq!(public["state"], "expired", "the old permit stays as it was");
}
