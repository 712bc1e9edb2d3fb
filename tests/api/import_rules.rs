//! The API's rules applied to imported rows: the same input refused through the API's own
//! endpoint and in a file, with the same code; a row repeated within a file reported, not applied
//! twice; and the importer's scope.

use serde_json::{Value, json};

use crate::backend_tests;
use crate::enrolments::household_with_head;
use crate::helpers::{TestApp, get_json, problem};
use crate::households::{facilitator_token, two_neighbourhoods};
use crate::import_kinds::{
    ASSESSMENTS, ATTENDANCE, ENROLMENTS, PURCHASES, commit, commit_again, counts, error, row_errors,
};
use crate::imports::{HEADER, household};
use crate::partners::post_as;
use crate::permits::act;
use crate::supporters::{self, WHH, allocate, balance, fixture, link, login, supporter_of_her_own};
use crate::training::{
    close, cohort, course, created, id, mark_as, national_id, person, provider, register, session,
};

backend_tests!(
    person_rows_keep_the_apis_birth_date_rules_and_households,
    assessment_rows_keep_the_apis_rules_and_repeats_are_reported,
    enrolment_rows_need_consent_scope_and_one_row_per_enrolment,
    attendance_rows_are_refused_where_the_api_refuses_the_mark,
    purchase_rows_keep_the_apis_rules_of_supporters_producers_and_lines,
);

/// The code of the first field error of the API's 422 answer, which must be on `field`.
async fn api_code(response: reqwest::Response, field: &str) -> String {
    let body = problem(response, 422).await;
    assert_eq!(body["errors"][0]["field"], field, "{body}");
    body["errors"][0]["code"].as_str().expect("code").to_owned()
}

/// The problem type of the API's answer with `status`, without its prefix (`conflict`, …).
async fn api_problem(response: reqwest::Response, status: u16) -> String {
    let body = problem(response, status).await;
    body["type"]
        .as_str()
        .and_then(|t| t.strip_prefix("urn:tavana:problem:"))
        .expect("problem type")
        .to_owned()
}

/// The persons registered with this national ID.
async fn persons_with(app: &TestApp, national_id: &str) -> usize {
    let page = get_json(app, &format!("/api/v1/persons?national_id={national_id}")).await;
    page["items"].as_array().expect("items").len()
}

async fn person_rows_keep_the_apis_birth_date_rules_and_households(app: TestApp) {
    let (n1, _) = two_neighbourhoods(&app).await;
    let p = person(&app, &n1, 1, "1370-01-01").await;
    let own = p["household_id"].as_str().expect("household").to_owned();
    let other = household(&app, &n1).await;
    let row = |n: u32, first_name: &str, birth_date: &str, household: &str, role: &str| {
        format!(
            "{},{first_name},احمدی,{birth_date},female,{household},{role}",
            national_id(n)
        )
    };
    let through_api = |n: u32, birth_date: &str| {
        let body = json!({"national_id": national_id(n), "first_name": "مریم", "last_name": "احمدی",
                          "birth_date": birth_date, "sex": "female", "household_id": other,
                          "household_role": "head"});
        let app = &app;
        async move { app.post_json("/api/v1/persons", &body).await }
    };

    // The API's codes for a birth date in the future and one more than 120 years ago.
    let future = api_code(through_api(2, "2030-01-01").await, "birth_date").await;
    assert_eq!(future, "in_future");
    let old = api_code(through_api(3, "1900-01-01").await, "birth_date").await;
    assert_eq!(old, "too_old");

    let rows = [
        // The same two persons in a file.
        row(2, "مریم", "2030-01-01", &other, "head"),
        row(3, "مریم", "1900-01-01", &other, "head"),
        // A registered person named in another household (with a new first name): not moved,
        // not renamed.
        row(1, "زهرا", "1370-01-01", &other, "head"),
        // A good row, so that the file is read past the refused ones.
        row(4, "سارا", "1370-01-01", &other, "head"),
    ];
    let job = commit(&app, &app.admin_token, "persons", HEADER, &rows).await;
    assert_eq!(counts(&job), [4, 1, 0, 0, 3], "{job}");
    assert_eq!(
        row_errors(&job),
        [
            error(2, "birth_date", &future),
            error(3, "birth_date", &old),
            error(4, "household_id", "household_differs"),
        ]
    );
    // In her own household with another role: the same refusal (in a file of its own: a national
    // ID twice in one file is a repeat).
    let rows = [row(1, "زهرا", "1370-01-01", &own, "spouse")];
    let job = commit(&app, &app.admin_token, "persons", HEADER, &rows).await;
    assert_eq!(counts(&job), [1, 0, 0, 0, 1], "{job}");
    assert_eq!(
        row_errors(&job),
        [error(2, "household_id", "household_differs")]
    );
    assert_eq!(persons_with(&app, &national_id(2)).await, 0);
    assert_eq!(persons_with(&app, &national_id(3)).await, 0);
    assert_eq!(persons_with(&app, &national_id(4)).await, 1);
    let after = get_json(&app, &format!("/api/v1/persons/{}", id(&p))).await;
    assert_eq!(after["household_id"], p["household_id"]);
    assert_eq!(after["household_role"], "head");
    assert_eq!(after["first_name"], p["first_name"]);
    assert_eq!(after["version"], 1);
}

/// An assessment row with these answers.
fn assessment(n: u32, kind: &str, on: &str, status: &str, dependants: u32) -> String {
    format!(
        "{},{kind},{on},{status},under_20m,false,cash_subsidy,خیاطی,false,{dependants}",
        national_id(n)
    )
}

async fn assessment_rows_keep_the_apis_rules_and_repeats_are_reported(app: TestApp) {
    let (n1, _) = two_neighbourhoods(&app).await;
    let facilitator = facilitator_token(&app, "fatemeh", &n1).await;
    let p = person(&app, &n1, 1, "1370-01-01").await;
    let q = person(&app, &n1, 2, "1370-01-01").await;
    let path = |who: &Value| format!("/api/v1/persons/{}/assessments", id(who));
    let survey = |kind: &str, on: &str, dependants: u32| {
        json!({"kind": kind, "assessed_on": on, "employment_status": "unemployed",
               "income_band": "under_20m", "social_insurance": false,
               "welfare_services": ["cash_subsidy"], "skills": "خیاطی", "dependants": dependants})
    };
    created(
        post_as(
            &app,
            &facilitator,
            &path(&p),
            &survey("baseline", "1403-02-10", 2),
        )
        .await,
    )
    .await;

    // The API's codes: a second baseline, a day in the future (1410 is 2031), 31 dependants.
    let send = |body: Value| {
        let (app, token, path) = (&app, &facilitator, path(&p));
        async move { post_as(app, token, &path, &body).await }
    };
    let second = api_code(send(survey("baseline", "1403-03-01", 2)).await, "kind").await;
    assert_eq!(second, "baseline_exists");
    let ahead = api_code(
        send(survey("follow_up", "1410-01-01", 2)).await,
        "assessed_on",
    )
    .await;
    assert_eq!(ahead, "in_future");
    let many = api_code(
        send(survey("follow_up", "1403-05-01", 31)).await,
        "dependants",
    )
    .await;
    assert_eq!(many, "range");

    let rows = [
        // The same three in a file.
        assessment(1, "baseline", "1403-03-01", "unemployed", 2),
        assessment(1, "follow_up", "1410-01-01", "unemployed", 2),
        assessment(1, "follow_up", "1403-05-01", "unemployed", 31),
        // A baseline for q, then the same row again: a repeat, reported and not applied.
        assessment(2, "baseline", "1403-04-01", "employed", 1),
        assessment(2, "baseline", "1403-04-01", "employed", 1),
    ];
    let job = commit(&app, &facilitator, "assessments", ASSESSMENTS, &rows).await;
    assert_eq!(counts(&job), [5, 1, 0, 0, 4], "{job}");
    assert_eq!(
        row_errors(&job),
        [
            error(2, "kind", &second),
            error(3, "assessed_on", &ahead),
            error(4, "dependants", &many),
            error(6, "assessed_on", "duplicate_row"),
        ]
    );
    let of_p = get_json(&app, &path(&p)).await;
    let of_p = of_p.as_array().expect("assessments");
    assert_eq!(of_p.len(), 1, "{of_p:?}");
    assert_eq!(of_p[0]["assessed_on_jalali"], "1403-02-10");
    let of_q = get_json(&app, &path(&q)).await;
    let of_q = of_q.as_array().expect("assessments");
    assert_eq!(of_q.len(), 1, "{of_q:?}");
    assert_eq!(of_q[0]["employment_status"], "employed");
}

async fn enrolment_rows_need_consent_scope_and_one_row_per_enrolment(app: TestApp) {
    let (n1, n2) = two_neighbourhoods(&app).await;
    let facilitator = facilitator_token(&app, "fatemeh", &n1).await;
    // A household whose head has given no consent, and one of n2 enrolled by an administrator.
    let (h1, head) = household_with_head(&app, &n1, &national_id(1)).await;
    let (h2, _) = household_with_head(&app, &n2, &national_id(2)).await;
    let e2 = created(
        app.post_json(
            "/api/v1/enrolments",
            &json!({"programme_id": WHH, "household_id": h2["id"], "on": "1398-01-15"}),
        )
        .await,
    )
    .await;
    let (h1, h2) = (id(&h1).to_owned(), id(&h2).to_owned());
    let enrolment_of = |household: &str| {
        let path = format!("/api/v1/enrolments?household_id={household}&programme_id={WHH}");
        let app = &app;
        async move {
            let page = get_json(app, &path).await;
            let items = page["items"].as_array().expect("items").clone();
            assert_eq!(items.len(), 1, "{page}");
            items[0].clone()
        }
    };

    let rows = [
        format!("{h1},{WHH},assessed,1398-01-15,"),
        // The same household and programme again, to move on: a repeat, not applied.
        format!("{h1},{WHH},enrolled,1398-02-01,"),
        // An enrolment of a household outside the facilitator's neighbourhoods.
        format!("{h2},{WHH},assessed,1398-01-20,"),
    ];
    let job = commit(&app, &facilitator, "enrolments", ENROLMENTS, &rows).await;
    assert_eq!(counts(&job), [3, 1, 0, 0, 2], "{job}");
    assert_eq!(
        row_errors(&job),
        [
            error(3, "household_id", "duplicate_row"),
            error(4, "household_id", "not_found"),
        ]
    );
    let e1 = enrolment_of(&h1).await;
    assert_eq!(e1["state"], "assessed");
    assert_eq!(enrolment_of(&h2).await["state"], "identified");
    // The API does not show the facilitator that enrolment either.
    let moved = post_as(
        &app,
        &facilitator,
        &format!("/api/v1/enrolments/{}/transitions", id(&e2)),
        &json!({"to": "assessed", "on": "1398-01-20"}),
    )
    .await;
    assert_eq!(api_problem(moved, 404).await, "not-found");

    // Enrolling without the head's consent: the API's conflict, on the row's state.
    let enrol = [format!("{h1},{WHH},enrolled,1398-02-01,")];
    let api = api_problem(
        app.post_json(
            &format!("/api/v1/enrolments/{}/transitions", id(&e1)),
            &json!({"to": "enrolled", "on": "1398-02-01"}),
        )
        .await,
        409,
    )
    .await;
    assert_eq!(api, "conflict");
    let job = commit(&app, &facilitator, "enrolments", ENROLMENTS, &enrol).await;
    assert_eq!(counts(&job), [1, 0, 0, 0, 1], "{job}");
    assert_eq!(row_errors(&job), [error(2, "state", &api)]);
    assert_eq!(enrolment_of(&h1).await["state"], "assessed");

    // With the consent given, the same row moves it.
    created(
        app.post_json(
            &format!("/api/v1/persons/{}/consents", id(&head)),
            &json!({"purpose": "programme", "share_with_partners": false, "given_on": "1398-01-10"}),
        )
        .await,
    )
    .await;
    let job = commit_again(&app, &facilitator, "enrolments", ENROLMENTS, &enrol).await;
    assert_eq!(counts(&job), [1, 0, 1, 0, 0], "{job}");
    assert_eq!(enrolment_of(&h1).await["state"], "enrolled");
}

async fn attendance_rows_are_refused_where_the_api_refuses_the_mark(app: TestApp) {
    let (n1, n2) = two_neighbourhoods(&app).await;
    let facilitator = facilitator_token(&app, "fatemeh", &n1).await;
    let (course, provider) = (
        course(&app, "technical_vocational").await,
        provider(&app, "آموزشگاه فنی").await,
    );
    // One seat in `open`; a cohort of n2; a cohort of n1 closed after its session was set.
    let open = cohort(&app, &course, &provider, &n1, 1, None).await;
    let far = cohort(&app, &course, &provider, &n2, 5, None).await;
    let closed = cohort(&app, &course, &provider, &n1, 5, None).await;
    let p1 = person(&app, &n1, 1, "1370-01-01").await;
    let p2 = person(&app, &n1, 2, "1370-01-01").await;
    let p3 = person(&app, &n2, 3, "1370-01-01").await;
    assert_eq!(register(&app, &open, &p1).await["status"], "registered");
    assert_eq!(register(&app, &open, &p2).await["status"], "waitlisted");
    register(&app, &far, &p3).await;
    register(&app, &closed, &p1).await;
    let s_open = session(&app, &open, "1403-07-05").await;
    let s_far = session(&app, &far, "1403-07-05").await;
    let s_closed = session(&app, &closed, "1403-07-05").await;
    assert_eq!(close(&app, &closed, "1403-09-30").await.status(), 200);
    let marks = |s: &Value| {
        let path = format!("/api/v1/sessions/{}/attendance", id(s));
        let app = &app;
        async move {
            let sheet = get_json(app, &path).await;
            sheet["marks"]
                .as_array()
                .expect("marks")
                .iter()
                .map(|m| {
                    (
                        m["person_id"].as_str().expect("person").to_owned(),
                        m["mark"].as_str().expect("mark").to_owned(),
                    )
                })
                .collect::<Vec<_>>()
        }
    };

    // The API's answers to the facilitator for the same marks.
    let waitlisted = api_code(
        mark_as(&app, &facilitator, &s_open, &[(&p2, "present")]).await,
        "marks[0].person_id",
    )
    .await;
    assert_eq!(waitlisted, "not_registered");
    let outside = mark_as(&app, &facilitator, &s_far, &[(&p3, "present")]).await;
    assert_eq!(api_problem(outside, 404).await, "not-found");
    let final_sheet = api_problem(
        mark_as(&app, &facilitator, &s_closed, &[(&p1, "present")]).await,
        409,
    )
    .await;
    assert_eq!(final_sheet, "conflict");

    let row = |s: &Value, n: u32, mark: &str| format!("{},{},{mark}", id(s), national_id(n));
    let rows = [
        row(&s_open, 1, "present"),
        // The same session and person again, with another mark: a repeat, not applied.
        row(&s_open, 1, "absent"),
        // On the waitlist, not seated.
        row(&s_open, 2, "present"),
        // A session of a cohort outside the facilitator's neighbourhoods: not found, as the API
        // answers 404.
        row(&s_far, 3, "present"),
        // A session of a closed cohort: its attendance is final.
        row(&s_closed, 1, "present"),
    ];
    let job = commit(&app, &facilitator, "attendance", ATTENDANCE, &rows).await;
    assert_eq!(counts(&job), [5, 1, 0, 0, 4], "{job}");
    assert_eq!(
        row_errors(&job),
        [
            error(3, "national_id", "duplicate_row"),
            error(4, "national_id", &waitlisted),
            error(5, "session_id", "not_found"),
            error(6, "row", &final_sheet),
        ]
    );
    assert_eq!(
        marks(&s_open).await,
        [(id(&p1).to_owned(), "present".to_owned())]
    );
    assert!(marks(&s_far).await.is_empty());
    assert!(marks(&s_closed).await.is_empty());
}

/// `POST /purchases` of one line, as `token`.
async fn buy(
    app: &TestApp,
    token: &str,
    supporter: &Value,
    producer: &Value,
    ordered_on: &str,
    (quantity, unit_price): (i64, i64),
    key: &str,
) -> reqwest::Response {
    let order = json!({"supporter_id": supporter["id"], "producer_id": producer["id"],
                       "ordered_on": ordered_on,
                       "lines": [{"kind": "product", "description": "روسری دوخته",
                                  "quantity": quantity, "unit_price": unit_price}]});
    supporters::place(app, token, &order, key).await
}

async fn purchase_rows_keep_the_apis_rules_of_supporters_producers_and_lines(app: TestApp) {
    let f = fixture(&app).await;
    allocate(&app, &f, 1_000_000).await;
    // A linked producer whose permit is suspended.
    let (suspended, permit) = supporters::producer(&app, &f.officer, &f.n1, 2).await;
    assert_eq!(link(&app, &f.supporter, &suspended).await.status(), 204);
    let response = act(
        &app,
        &f.officer,
        &permit,
        json!({"action": "suspend", "reason": "بازرسی"}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let order =
        |reference: &str, supporter: &Value, n: u32, on: &str, quantity: i64, unit_price: i64| {
            format!(
                "{reference},{},{},{on},product,روسری دوخته,{quantity},{unit_price}",
                id(supporter),
                national_id(n)
            )
        };
    let purchases_of = |supporter: &Value| {
        let path = format!("/api/v1/supporters/{}/purchases", id(supporter));
        let app = &app;
        async move { get_json(app, &path).await.as_array().map(Vec::len) }
    };

    // The API's codes for the same orders, each refused on its field. A day in the future is
    // told before a producer who is not linked.
    let (token, supporter, producer) = (&f.token, &f.supporter, &f.producer);
    let (unlinked, _) = supporters::producer(&app, &f.officer, &f.n1, 4).await;
    let refused = [
        (producer, "2099-01-01", (1, 1000), "ordered_on"),
        (&suspended, "2026-01-15", (1, 1000), "producer_id"),
        (producer, "2026-01-15", (1_000_001, 1), "lines[0].quantity"),
        (producer, "2026-01-15", (1, 0), "lines[0].unit_price"),
        (&unlinked, "2099-01-01", (1, 1000), "ordered_on"),
    ];
    let mut codes = Vec::new();
    for (n, (to, on, line, field)) in refused.into_iter().enumerate() {
        let response = buy(&app, token, supporter, to, on, line, &format!("a{n}")).await;
        codes.push(api_code(response, field).await);
    }
    assert_eq!(
        codes,
        [
            "in_future",
            "no_valid_permit",
            "out_of_range",
            "out_of_range",
            "in_future"
        ]
    );
    let [ahead, no_permit, too_many, free, ahead_unlinked] = &codes[..] else {
        unreachable!("five codes")
    };
    assert_eq!(balance(&app, &f.supporter).await, 1_000_000);

    let s = &f.supporter;
    let rows = [
        order("PO-1", s, 1, "2026-01-15", 2, 150_000),
        // The same supporter and reference again, for another quantity: a repeat, charged once.
        order("PO-1", s, 1, "2026-01-15", 3, 150_000),
        order("PO-2", s, 1, "2099-01-01", 1, 1000),
        order("PO-3", s, 2, "2026-01-15", 1, 1000),
        order("PO-4", s, 1, "2026-01-15", 1_000_001, 1),
        order("PO-5", s, 1, "2026-01-15", 1, 0),
        // A reference of 64 characters is taken; one of 65 is not.
        order(&"R".repeat(64), s, 1, "2026-01-15", 1, 1000),
        order(&"R".repeat(65), s, 1, "2026-01-15", 1, 1000),
        order("PO-7", s, 4, "2099-01-01", 1, 1000),
    ];
    let job = commit(&app, &f.token, "purchases", PURCHASES, &rows).await;
    assert_eq!(counts(&job), [9, 2, 0, 0, 7], "{job}");
    assert_eq!(
        row_errors(&job),
        [
            error(3, "reference", "duplicate_row"),
            error(4, "ordered_on", ahead),
            error(5, "producer_national_id", no_permit),
            error(6, "quantity", too_many),
            error(7, "unit_price", free),
            error(9, "reference", "length"),
            error(10, "ordered_on", ahead_unlinked),
        ]
    );
    assert_eq!(
        balance(&app, &f.supporter).await,
        1_000_000 - 300_000 - 1000
    );
    assert_eq!(purchases_of(&f.supporter).await, Some(2));

    // A second supporter of the neighbourhood who is a producer herself, linked to herself.
    let (herself, own) = supporter_of_her_own(&app, &f, 3).await;
    let her_token = login(&app, "supporter.two").await;
    let own_household = api_code(
        buy(
            &app,
            &her_token,
            &herself,
            &own,
            "2026-01-15",
            (1, 1000),
            "o1",
        )
        .await,
        "producer_id",
    )
    .await;
    assert_eq!(own_household, "own_household");
    let rows = [order("O-1", &herself, 3, "2026-01-15", 1, 1000)];
    let job = commit(&app, &her_token, "purchases", PURCHASES, &rows).await;
    assert_eq!(counts(&job), [1, 0, 0, 0, 1], "{job}");
    assert_eq!(
        row_errors(&job),
        [error(2, "producer_national_id", &own_household)]
    );
    assert_eq!(purchases_of(&herself).await, Some(0));

    // The first supporter's designation ended on 2026-01-20: an order of a day she was
    // designated is refused now (she must be designated on the day and today), as by the API.
    let ended = app
        .post_json(
            &format!("/api/v1/supporters/{}/end", id(&f.supporter)),
            &json!({"ends_on": "2026-01-20"}),
        )
        .await;
    assert_eq!(ended.status(), 200);
    let inactive = api_code(
        buy(
            &app,
            token,
            supporter,
            producer,
            "2026-01-15",
            (1, 1000),
            "i1",
        )
        .await,
        "ordered_on",
    )
    .await;
    assert_eq!(inactive, "supporter_inactive");
    // The first order sent again is the same order, not a new one of an inactive supporter.
    let rows = [
        order("PO-6", s, 1, "2026-01-15", 1, 1000),
        order("PO-1", s, 1, "2026-01-15", 2, 150_000),
    ];
    let job = commit(&app, &f.token, "purchases", PURCHASES, &rows).await;
    assert_eq!(counts(&job), [2, 0, 0, 1, 1], "{job}");
    assert_eq!(row_errors(&job), [error(2, "ordered_on", &inactive)]);
    assert_eq!(
        balance(&app, &f.supporter).await,
        1_000_000 - 300_000 - 1000
    );
    assert_eq!(purchases_of(&f.supporter).await, Some(2));
}
