//! Training: courses, cohorts with capacity and a waitlist, idempotent attendance, the 80% rule,
//! certificates, who may record what, and sensitive courses.

use serde_json::{Value, json};
use tavana_domain::access::Role;

use crate::backend_tests;
use crate::helpers::{TestApp, problem};
use crate::households::{facilitator_token, two_neighbourhoods};

backend_tests!(
    capacity_is_enforced_and_the_waitlist_is_promoted_in_order,
    attendance_is_idempotent_and_completion_follows_the_80_percent_rule,
    only_the_cohorts_trainer_or_its_facilitators_record_attendance,
    sensitive_courses_are_aggregates_for_partners_and_audited_for_staff,
);

const PASSWORD: &str = "a long enough password";
const FIRST_NAMES: [&str; 10] = [
    "مریم",
    "زهرا",
    "فاطمه",
    "سارا",
    "لیلا",
    "نرگس",
    "مهسا",
    "الهام",
    "شیما",
    "رویا",
];

/// A valid national ID built from `n` (the check digit computed as GLOSSARY.md says).
pub fn national_id(n: u32) -> String {
    let body = format!("{:09}", 100_000_000 + n);
    let sum: u32 = body
        .chars()
        .zip((2..=10).rev())
        .map(|(c, w)| c.to_digit(10).unwrap_or(0) * w)
        .sum();
    let r = sum % 11;
    format!("{body}{}", if r < 2 { r } else { 11 - r })
}

pub fn id(value: &Value) -> &str {
    value["id"].as_str().expect("id")
}

pub async fn created(response: reqwest::Response) -> Value {
    let status = response.status();
    let body: Value = response.json().await.expect("json");
    assert_eq!(status, 201, "{body}");
    body
}

/// A woman heading her own household in `neighbourhood`, born on `birth_date`.
pub async fn person(app: &TestApp, neighbourhood: &Value, n: u32, birth_date: &str) -> Value {
    let household = created(
        app.post_json(
            "/api/v1/households",
            &json!({"neighbourhood_id": neighbourhood["id"], "address": format!("کوچه {n}")}),
        )
        .await,
    )
    .await;
    created(
        app.post_json(
            "/api/v1/persons",
            &json!({"national_id": national_id(n), "first_name": FIRST_NAMES[n as usize % FIRST_NAMES.len()], "last_name": "احمدی",
                    "birth_date": birth_date, "sex": "female", "household_id": household["id"],
                    "household_role": "head", "member_since": "1390-01-01"}),
        )
        .await,
    )
    .await
}

pub async fn course(app: &TestApp, category: &str) -> Value {
    created(
        app.post_json(
            "/api/v1/courses",
            &json!({"category": category, "title_fa": "خیاطی", "title_en": "Tailoring",
                    "hours": 40, "provider_kind": "training_provider"}),
        )
        .await,
    )
    .await
}

pub async fn provider(app: &TestApp, name: &str) -> Value {
    created(
        app.post_json(
            "/api/v1/organisations",
            &json!({"name": name, "kind": "training_provider"}),
        )
        .await,
    )
    .await
}

pub async fn cohort(
    app: &TestApp,
    course: &Value,
    provider: &Value,
    neighbourhood: &Value,
    capacity: i32,
    trainer: Option<&str>,
) -> Value {
    created(
        app.post_json(
            "/api/v1/cohorts",
            &json!({"course_id": course["id"], "provider_id": provider["id"],
                    "neighbourhood_id": neighbourhood["id"], "venue": "سرای محله",
                    "capacity": capacity, "starts_on": "1403-07-01", "ends_on": "1403-09-30",
                    "trainer_id": trainer}),
        )
        .await,
    )
    .await
}

pub async fn register(app: &TestApp, cohort: &Value, person: &Value) -> Value {
    created(
        app.post_json(
            &format!("/api/v1/cohorts/{}/registrations", id(cohort)),
            &json!({"person_id": person["id"]}),
        )
        .await,
    )
    .await
}

pub async fn session(app: &TestApp, cohort: &Value, held_on: &str) -> Value {
    created(
        app.post_json(
            &format!("/api/v1/cohorts/{}/sessions", id(cohort)),
            &json!({"held_on": held_on}),
        )
        .await,
    )
    .await
}

pub async fn mark_as(
    app: &TestApp,
    token: &str,
    session: &Value,
    marks: &[(&Value, &str)],
) -> reqwest::Response {
    let marks: Vec<Value> = marks
        .iter()
        .map(|(p, m)| json!({"person_id": p["id"], "mark": m}))
        .collect();
    app.client
        .put(app.url(&format!("/api/v1/sessions/{}/attendance", id(session))))
        .bearer_auth(token)
        .json(&json!({"marks": marks}))
        .send()
        .await
        .expect("sent")
}

pub async fn close(app: &TestApp, cohort: &Value, on: &str) -> reqwest::Response {
    app.post_json(
        &format!("/api/v1/cohorts/{}/close", id(cohort)),
        &json!({"on": on}),
    )
    .await
}

/// A person who completed a technical & vocational course (for permit eligibility).
pub async fn completed_technical_course(app: &TestApp, neighbourhood: &Value, person: &Value) {
    let person_id = id(person);
    let username = format!("trainer.{}", &person_id[person_id.len() - 12..]);
    let facilitator = facilitator_token(app, &username, neighbourhood).await;
    let (course, provider) = (
        course(app, "technical_vocational").await,
        provider(app, &format!("آموزشگاه {username}")).await,
    );
    let cohort = cohort(app, &course, &provider, neighbourhood, 5, None).await;
    register(app, &cohort, person).await;
    let session = session(app, &cohort, "1403-07-02").await;
    let response = mark_as(app, &facilitator, &session, &[(person, "present")]).await;
    assert_eq!(response.status(), 200);
    assert_eq!(close(app, &cohort, "1403-09-30").await.status(), 200);
}

async fn withdraw(app: &TestApp, cohort: &Value, registration: &Value) -> reqwest::Response {
    app.post_json(
        &format!(
            "/api/v1/cohorts/{}/registrations/{}/withdraw",
            id(cohort),
            id(registration)
        ),
        &json!({}),
    )
    .await
}

/// How many audit events of `action` there are.
pub async fn audit_count(app: &TestApp, action: &str) -> usize {
    let page: Value = app
        .get(&format!("/api/v1/audit?action={action}&limit=200"))
        .await
        .json()
        .await
        .expect("json");
    page["items"].as_array().map(Vec::len).unwrap_or(0)
}

/// The training figures of `course`, as `token` sees them.
async fn course_figures(app: &TestApp, token: &str, course: &Value) -> Value {
    let figures: Value = app
        .get_as(token, "/api/v1/training/statistics")
        .await
        .json()
        .await
        .expect("json");
    figures["courses"]
        .as_array()
        .expect("courses")
        .iter()
        .find(|c| c["course_id"] == course["id"])
        .expect("the course")
        .clone()
}

async fn capacity_is_enforced_and_the_waitlist_is_promoted_in_order(app: TestApp) {
    let (n1, _) = two_neighbourhoods(&app).await;
    let (course, provider) = (
        course(&app, "technical_vocational").await,
        provider(&app, "آموزشگاه فنی").await,
    );
    let cohort = cohort(&app, &course, &provider, &n1, 2, None).await;
    let mut people = Vec::new();
    for n in 1..=4 {
        people.push(person(&app, &n1, n, "1370-01-01").await);
    }
    let mut registrations = Vec::new();
    for p in &people {
        registrations.push(register(&app, &cohort, p).await);
    }
    let statuses: Vec<&str> = registrations
        .iter()
        .map(|r| r["status"].as_str().expect("status"))
        .collect();
    assert_eq!(
        statuses,
        ["registered", "registered", "waitlisted", "waitlisted"]
    );

    // The same person twice: 409 naming the registration.
    let again = app
        .post_json(
            &format!("/api/v1/cohorts/{}/registrations", id(&cohort)),
            &json!({"person_id": people[0]["id"]}),
        )
        .await;
    let body = problem(again, 409).await;
    assert_eq!(body["existing_id"], registrations[0]["id"]);

    // A replayed Idempotency-Key answers the first response and registers nobody twice.
    let fifth = person(&app, &n1, 5, "1370-01-01").await;
    let send = || {
        app.client
            .post(app.url(&format!("/api/v1/cohorts/{}/registrations", id(&cohort))))
            .bearer_auth(&app.admin_token)
            .header("idempotency-key", "register-fifth")
            .json(&json!({"person_id": fifth["id"]}))
            .send()
    };
    let first: Value = send().await.expect("sent").json().await.expect("json");
    let replay = send().await.expect("sent");
    assert_eq!(replay.status(), 201);
    assert_eq!(replay.json::<Value>().await.expect("json"), first);
    assert_eq!(first["status"], "waitlisted");
    assert_eq!(first["position"], 5);

    // A seated person withdraws: the first on the waitlist (position 3) gets the seat.
    let answer: Value = withdraw(&app, &cohort, &registrations[1])
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(answer["withdrawn"]["status"], "withdrawn");
    assert_eq!(answer["promoted"]["id"], registrations[2]["id"]);
    assert_eq!(answer["promoted"]["status"], "registered");
    // Withdrawing from the waitlist frees no seat and promotes nobody.
    let answer: Value = withdraw(&app, &cohort, &registrations[3])
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(answer["promoted"], Value::Null);
    problem(withdraw(&app, &cohort, &registrations[3]).await, 409).await;

    let list: Value = app
        .get(&format!("/api/v1/cohorts/{}/registrations", id(&cohort)))
        .await
        .json()
        .await
        .expect("json");
    let statuses: Vec<&str> = list
        .as_array()
        .expect("list")
        .iter()
        .map(|r| r["status"].as_str().expect("status"))
        .collect();
    assert_eq!(
        statuses,
        [
            "registered",
            "withdrawn",
            "registered",
            "withdrawn",
            "waitlisted"
        ]
    );
    // Capacity still holds: two seated.
    assert_eq!(statuses.iter().filter(|s| **s == "registered").count(), 2);
}

async fn attendance_is_idempotent_and_completion_follows_the_80_percent_rule(app: TestApp) {
    let (n1, _) = two_neighbourhoods(&app).await;
    let facilitator = facilitator_token(&app, "fatemeh", &n1).await;
    let (course, provider) = (
        course(&app, "technical_vocational").await,
        provider(&app, "آموزشگاه فنی").await,
    );
    let cohort = cohort(&app, &course, &provider, &n1, 10, None).await;
    let mut people = Vec::new();
    for n in 1..=4 {
        let p = person(&app, &n1, n, "1370-01-01").await;
        register(&app, &cohort, &p).await;
        people.push(p);
    }
    let (a, b, c, d) = (&people[0], &people[1], &people[2], &people[3]);
    // Five sessions. a: 4 present, 1 absent (80%: completes).
    // b: 3 present, 1 absent, 1 excused (3 of 4 = 75%: does not).
    // c: 4 present, 1 excused (4 of 4: completes). d: 3 present, 2 unmarked (60%: does not).
    let sheets = [
        [
            (a, "present"),
            (b, "present"),
            (c, "present"),
            (d, "present"),
        ],
        [
            (a, "present"),
            (b, "present"),
            (c, "present"),
            (d, "present"),
        ],
        [
            (a, "present"),
            (b, "present"),
            (c, "present"),
            (d, "present"),
        ],
        [(a, "present"), (b, "absent"), (c, "present"), (d, "absent")],
        [(a, "absent"), (b, "excused"), (c, "excused"), (d, "absent")],
    ];
    let mut sessions = Vec::new();
    for (day, sheet) in sheets.iter().enumerate() {
        let session = session(&app, &cohort, &format!("1403-07-{:02}", day + 10)).await;
        let marks: Vec<(&Value, &str)> = sheet.iter().map(|(p, m)| (*p, *m)).collect();
        let response = mark_as(&app, &facilitator, &session, &marks).await;
        assert_eq!(response.status(), 200);
        sessions.push((session, marks));
    }
    // d's last two marks are taken back to "no mark": only seated people, only valid marks.
    // Sending the same sheet again changes nothing (no new audit event, same marks).
    let before = audit_count(&app, "attendance.record").await;
    let (first_session, first_marks) = &sessions[0];
    let again: Value = mark_as(&app, &facilitator, first_session, first_marks)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(again["marks"].as_array().map(Vec::len), Some(4));
    assert_eq!(audit_count(&app, "attendance.record").await, before);
    // Correcting a mark is allowed and counted once.
    let fixed = mark_as(&app, &facilitator, first_session, &[(d, "absent")]).await;
    assert_eq!(fixed.status(), 200);
    let fixed = mark_as(&app, &facilitator, first_session, &[(d, "present")]).await;
    assert_eq!(fixed.status(), 200);
    assert_eq!(audit_count(&app, "attendance.record").await, before + 2);

    // Someone without a seat cannot be marked.
    let stranger = person(&app, &n1, 9, "1370-01-01").await;
    let refused = mark_as(&app, &facilitator, first_session, &[(&stranger, "present")]).await;
    let body = problem(refused, 422).await;
    assert_eq!(body["errors"][0]["field"], "marks[0].person_id");

    let list: Value = app
        .get(&format!("/api/v1/cohorts/{}/registrations", id(&cohort)))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(list[0]["attendance"]["percent"], 80);
    assert_eq!(list[1]["attendance"]["percent"], 75);
    assert_eq!(list[2]["attendance"]["percent"], 100);
    assert_eq!(list[3]["attendance"]["percent"], 60);

    // A session planned after the closing day is no absence for anyone.
    session(&app, &cohort, "1403-09-25").await;
    let closed = close(&app, &cohort, "1403-09-20").await;
    assert_eq!(closed.status(), 200);
    let closed: Value = closed.json().await.expect("json");
    assert_eq!(closed["cohort"]["state"], "closed");
    let outcome: Vec<(&str, Option<&str>)> = closed["registrations"]
        .as_array()
        .expect("registrations")
        .iter()
        .map(|r| {
            (
                r["status"].as_str().expect("status"),
                r["certificate_number"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        outcome,
        [
            ("completed", Some("TC-1403-000001")),
            ("not_completed", None),
            ("completed", Some("TC-1403-000002")),
            ("not_completed", None),
        ]
    );
    // Closed is final.
    problem(close(&app, &cohort, "1403-09-30").await, 409).await;
    problem(
        mark_as(&app, &facilitator, first_session, &[(a, "absent")]).await,
        409,
    )
    .await;

    // The person's training history shows the certificate.
    let history: Value = app
        .get(&format!("/api/v1/persons/{}/training", id(a)))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(history[0]["registration"]["status"], "completed");
    assert_eq!(
        history[0]["registration"]["certificate_number"],
        "TC-1403-000001"
    );
    assert_eq!(history[0]["course"]["id"], course["id"]);
    assert_eq!(history[0]["attendance"]["present"], 4);
}

async fn only_the_cohorts_trainer_or_its_facilitators_record_attendance(app: TestApp) {
    let (n1, n2) = two_neighbourhoods(&app).await;
    let area = |n: &Value| n["id"].as_str().expect("id").parse().expect("area id");
    let trainer = app
        .create_user("maryam.trainer", Role::Trainer, PASSWORD, vec![area(&n1)])
        .await;
    app.create_user("other.trainer", Role::Trainer, PASSWORD, vec![area(&n1)])
        .await;
    let token = |username: &'static str| {
        let login = app.login(username, PASSWORD);
        async move {
            let tokens: Value = login.await.json().await.expect("tokens");
            tokens["access_token"].as_str().expect("token").to_owned()
        }
    };
    let (own, other) = (token("maryam.trainer").await, token("other.trainer").await);
    let outsider = facilitator_token(&app, "outsider", &n2).await;
    let (course, provider) = (
        course(&app, "technical_vocational").await,
        provider(&app, "آموزشگاه فنی").await,
    );
    let trainer_id = trainer.id.to_string();
    let cohort = cohort(&app, &course, &provider, &n1, 5, Some(&trainer_id)).await;
    let p = person(&app, &n1, 1, "1370-01-01").await;
    register(&app, &cohort, &p).await;
    let session = session(&app, &cohort, "1403-07-05").await;

    // Another trainer of the same neighbourhood sees the cohort but may not mark it.
    assert_eq!(
        app.get_as(&other, &format!("/api/v1/cohorts/{}", id(&cohort)))
            .await
            .status(),
        200
    );
    problem(
        mark_as(&app, &other, &session, &[(&p, "present")]).await,
        403,
    )
    .await;
    // A facilitator of another neighbourhood does not see it at all.
    problem(
        mark_as(&app, &outsider, &session, &[(&p, "present")]).await,
        404,
    )
    .await;
    problem(
        app.get_as(&outsider, &format!("/api/v1/cohorts/{}", id(&cohort)))
            .await,
        404,
    )
    .await;
    problem(
        app.get_as(&outsider, &format!("/api/v1/persons/{}/training", id(&p)))
            .await,
        404,
    )
    .await;
    let listed: Value = app
        .get_as(&outsider, "/api/v1/cohorts")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(0));
    // Nor is it in the outsider's figures.
    let line = course_figures(&app, &outsider, &course).await;
    assert_eq!(
        (line["cohorts"].clone(), line["registered"].clone()),
        (json!(0), json!(0))
    );
    // The cohort's own trainer may.
    let response = mark_as(&app, &own, &session, &[(&p, "present")]).await;
    assert_eq!(response.status(), 200);
    // The person moves to n2: the facilitator there sees her, but not her training in n1.
    let elsewhere = created(
        app.post_json(
            "/api/v1/households",
            &json!({"neighbourhood_id": n2["id"], "address": "کوچه نسترن"}),
        )
        .await,
    )
    .await;
    let moved = app
        .post_json(
            &format!("/api/v1/persons/{}/move", id(&p)),
            &json!({"household_id": elsewhere["id"], "household_role": "head", "on": "1403-08-01"}),
        )
        .await;
    assert_eq!(moved.status(), 200);
    let history: Value = app
        .get_as(&outsider, &format!("/api/v1/persons/{}/training", id(&p)))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(history, json!([]));
    let all: Value = app
        .get(&format!("/api/v1/persons/{}/training", id(&p)))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(all.as_array().map(Vec::len), Some(1));
    // A trainer of another neighbourhood cannot be given the cohort (they could not see it).
    let far = app
        .create_user("far.trainer", Role::Trainer, PASSWORD, vec![area(&n2)])
        .await;
    let response = app
        .post_json(
            "/api/v1/cohorts",
            &json!({"course_id": course["id"], "provider_id": provider["id"],
                    "neighbourhood_id": n1["id"], "venue": "x", "capacity": 3,
                    "starts_on": "1403-07-01", "ends_on": "1403-07-30",
                    "trainer_id": far.id.to_string()}),
        )
        .await;
    let body = problem(response, 422).await;
    assert_eq!(body["errors"][0]["code"], "outside_neighbourhood");
    // A trainer id that is not a trainer is refused when the cohort is made.
    let response = app
        .post_json(
            "/api/v1/cohorts",
            &json!({"course_id": course["id"], "provider_id": provider["id"],
                    "neighbourhood_id": n1["id"], "venue": "x", "capacity": 3,
                    "starts_on": "1403-07-01", "ends_on": "1403-07-30",
                    "trainer_id": p["id"]}),
        )
        .await;
    let body = problem(response, 422).await;
    assert_eq!(body["errors"][0]["field"], "trainer_id");
}

async fn sensitive_courses_are_aggregates_for_partners_and_audited_for_staff(app: TestApp) {
    let (n1, n2) = two_neighbourhoods(&app).await;
    let course = created(
        app.post_json(
            "/api/v1/courses",
            &json!({"category": "addiction_prevention", "title_fa": "پیشگیری از اعتیاد",
                    "title_en": "Addiction prevention", "hours": 12,
                    "provider_kind": "counselling_centre", "sensitive": false}),
        )
        .await,
    )
    .await;
    assert_eq!(course["sensitive"], true);
    let centre = created(
        app.post_json(
            "/api/v1/organisations",
            &json!({"name": "مرکز مشاوره", "kind": "counselling_centre"}),
        )
        .await,
    )
    .await;
    // A provider of the wrong kind is refused.
    let wrong = provider(&app, "آموزشگاه فنی").await;
    let response = app
        .post_json(
            "/api/v1/cohorts",
            &json!({"course_id": course["id"], "provider_id": wrong["id"],
                    "neighbourhood_id": n1["id"], "venue": "x", "capacity": 3,
                    "starts_on": "1403-07-01", "ends_on": "1403-07-30"}),
        )
        .await;
    assert_eq!(
        problem(response, 422).await["errors"][0]["field"],
        "provider_id"
    );
    let cohort = cohort(&app, &course, &centre, &n1, 5, None).await;
    let p = person(&app, &n1, 1, "1370-01-01").await;
    register(&app, &cohort, &p).await;

    // Partners: no individual registrations, attendance or history; aggregates only.
    let partner = app.mint(Role::Partner).await;
    for path in [
        format!("/api/v1/cohorts/{}/registrations", id(&cohort)),
        format!("/api/v1/persons/{}/training", id(&p)),
        "/api/v1/cohorts".to_owned(),
    ] {
        problem(app.get_as(&partner, &path).await, 403).await;
    }
    // Its aggregates, while its organisation's MoU is in force.
    let (org, partner) = crate::partners::partner(&app, &crate::partners::study_policy()).await;
    let line = course_figures(&app, &partner, &course).await;
    assert_eq!(line["sensitive"], true);
    assert_eq!(line["cohorts"], 1);
    // One person: a cell under 5, suppressed for partners; staff see it.
    assert_eq!(line["registered"], Value::Null);
    let staff_line = course_figures(&app, &app.admin_token, &course).await;
    assert_eq!(staff_line["registered"], 1);
    let figures = app
        .get_as(&partner, "/api/v1/training/statistics")
        .await
        .text()
        .await
        .expect("text");
    assert!(!figures.contains(id(&p)), "no person is named");
    // A partner whose MoU covers another neighbourhood counts no cohort of n1.
    let mut policy = crate::partners::study_policy();
    policy["areas"] = json!([n2["id"]]);
    crate::partners::set_policy(&app, &org, &policy).await;
    assert_eq!(course_figures(&app, &partner, &course).await["cohorts"], 0);

    // Staff reads of who attended are written to the audit log.
    assert_eq!(audit_count(&app, "training.sensitive_read").await, 0);
    let list = app
        .get(&format!("/api/v1/cohorts/{}/registrations", id(&cohort)))
        .await;
    assert_eq!(list.status(), 200);
    assert_eq!(audit_count(&app, "training.sensitive_read").await, 1);
    let history = app
        .get(&format!("/api/v1/persons/{}/training", id(&p)))
        .await;
    assert_eq!(history.status(), 200);
    assert_eq!(audit_count(&app, "training.sensitive_read").await, 2);
    let session = session(&app, &cohort, "1403-07-03").await;
    let marks = app
        .get(&format!("/api/v1/sessions/{}/attendance", id(&session)))
        .await;
    assert_eq!(marks.status(), 200);
    assert_eq!(audit_count(&app, "training.sensitive_read").await, 3);
}
