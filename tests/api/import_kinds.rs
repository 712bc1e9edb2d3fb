//! Imports of households, assessments, enrolments, attendance and purchases: each row through the
//! API's own rules and error codes, matched by its natural key (created, updated, unchanged),
//! who may import which kind, one audit event per job, and possible duplicates of persons.

use serde_json::{Value, json};
use tavana_domain::access::Role;

use crate::auth::{client_grant, create_client, token_of};
use crate::backend_tests;
use crate::helpers::{TestApp, get_json, problem};
use crate::households::{area, facilitator_token, two_neighbourhoods};
use crate::imports::{household, imported, imported_while_written, upload_as};
use crate::supporters::{self, WHH, allocate, balance, fixture, ledger, login};
use crate::training::{
    audit_count, cohort, course, created, id, national_id, person, provider, register, session,
};

backend_tests!(
    households_are_matched_by_postal_code_and_checked_like_the_api,
    assessments_are_matched_by_person_kind_and_day_and_never_rewritten,
    enrolments_are_created_and_moved_one_transition_at_a_time,
    an_enrolment_created_while_its_row_is_imported_is_found,
    attendance_is_imported_by_the_cohorts_own_trainer_or_facilitator,
    purchases_are_charged_once_per_reference,
    api_clients_import_what_their_mou_lets_them_submit,
    a_committed_import_is_audited_once_as_a_whole,
    imported_persons_are_queued_as_possible_duplicates,
    atomicity_all_writes_nothing_when_a_row_fails,
);

const PASSWORD: &str = "a long enough password";
const HOUSEHOLDS: &str = "neighbourhood_id,address,postal_code";
pub(crate) const ASSESSMENTS: &str = "national_id,kind,assessed_on,employment_status,income_band,social_insurance,welfare_services,skills,disability,dependants";
pub(crate) const ENROLMENTS: &str = "household_id,programme_id,state,effective_on,reason";
pub(crate) const ATTENDANCE: &str = "session_id,national_id,mark";
pub(crate) const PURCHASES: &str = "reference,supporter_id,producer_national_id,ordered_on,item_kind,description,quantity,unit_price";

/// Commits `rows` (CSV lines after `header`) of `kind` as `token`, good rows kept.
pub(crate) async fn commit(
    app: &TestApp,
    token: &str,
    kind: &str,
    header: &str,
    rows: &[String],
) -> Value {
    imported(
        app,
        token,
        &format!("kind={kind}&mode=commit&atomicity=rows"),
        format!("{header}\n{}\n", rows.join("\n")),
    )
    .await
}

/// The same file with CRLF line ends: the same rows, another checksum, so that it is imported
/// again instead of answered with the earlier job. Errors still name the rows' lines.
pub(crate) async fn commit_again(
    app: &TestApp,
    token: &str,
    kind: &str,
    header: &str,
    rows: &[String],
) -> Value {
    imported(
        app,
        token,
        &format!("kind={kind}&mode=commit&atomicity=rows"),
        format!("{header}\r\n{}\r\n", rows.join("\r\n")),
    )
    .await
}

/// (read, created, updated, unchanged, failed) of a finished job.
pub(crate) fn counts(job: &Value) -> [i64; 5] {
    assert_eq!(job["state"], "completed", "{job}");
    ["read", "created", "updated", "unchanged", "failed"]
        .map(|k| job[k].as_i64().unwrap_or_else(|| panic!("{k} in {job}")))
}

/// (row, column, code) of each error of a job.
pub(crate) fn row_errors(job: &Value) -> Vec<(i64, String, String)> {
    job["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| {
            (
                e["row"].as_i64().expect("row"),
                e["column"].as_str().unwrap_or_default().to_owned(),
                e["code"].as_str().expect("code").to_owned(),
            )
        })
        .collect()
}

pub(crate) fn error(row: i64, column: &str, code: &str) -> (i64, String, String) {
    (row, column.to_owned(), code.to_owned())
}

/// `text` with its ASCII digits written as Persian ones.
fn persian(text: &str) -> String {
    text.chars()
        .map(|c| match c.to_digit(10) {
            Some(d) => char::from_u32(0x06F0 + d).unwrap_or(c),
            None => c,
        })
        .collect()
}

/// The households of a neighbourhood, as the API lists them.
async fn households_of(app: &TestApp, neighbourhood: &Value) -> Vec<Value> {
    let page = get_json(
        app,
        &format!("/api/v1/households?neighbourhood_id={}", id(neighbourhood)),
    )
    .await;
    page["items"].as_array().expect("items").clone()
}

/// Every audit event (the tests stay under one page).
async fn audit_total(app: &TestApp) -> usize {
    let page = get_json(app, "/api/v1/audit?limit=200").await;
    let items = page["items"].as_array().expect("items").len();
    assert!(items < 200, "more than one page of audit events");
    items
}

async fn households_are_matched_by_postal_code_and_checked_like_the_api(app: TestApp) {
    let (n1, n2) = two_neighbourhoods(&app).await;
    let facilitator = facilitator_token(&app, "fatemeh", &n1).await;
    let (n1_id, n2_id) = (id(&n1).to_owned(), id(&n2).to_owned());

    let first = [format!("{n1_id},کوچه یاس پلاک ۱,1234567890")];
    let job = commit(&app, &facilitator, "households", HOUSEHOLDS, &first).await;
    assert_eq!(counts(&job), [1, 1, 0, 0, 0], "{job}");
    let listed = households_of(&app, &n1).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["address"], "کوچه یاس پلاک ۱");
    assert_eq!(listed[0]["postal_code"], "1234567890");

    // The same postal code (in Persian digits) with another address: that household, updated.
    let moved = [format!("{n1_id},کوچه نرگس پلاک ۲,{}", persian("1234567890"))];
    let job = commit(&app, &facilitator, "households", HOUSEHOLDS, &moved).await;
    assert_eq!(counts(&job), [1, 0, 1, 0, 0], "{job}");
    let listed = households_of(&app, &n1).await;
    assert_eq!(listed.len(), 1, "updated, not registered again");
    assert_eq!(listed[0]["address"], "کوچه نرگس پلاک ۲");
    assert_eq!(listed[0]["version"], 2);

    // The identical row again: unchanged.
    let job = commit_again(&app, &facilitator, "households", HOUSEHOLDS, &moved).await;
    assert_eq!(counts(&job), [1, 0, 0, 1, 0], "{job}");
    assert_eq!(households_of(&app, &n1).await[0]["version"], 2);

    // The API's own code for a bad postal code.
    let api = problem(
        app.client
            .post(app.url("/api/v1/households"))
            .bearer_auth(&facilitator)
            .json(
                &json!({"neighbourhood_id": n1_id, "address": "کوچه بید", "postal_code": "12345"}),
            )
            .send()
            .await
            .expect("sent"),
        422,
    )
    .await;
    assert_eq!(api["errors"][0]["field"], "postal_code");
    let api_code = api["errors"][0]["code"].as_str().expect("code").to_owned();

    let rows = [
        format!("{n1_id},کوچه لاله,2222222222"),
        // The same postal code twice in one file: the second row is a repeat.
        format!("{n1_id},کوچه سوسن,{}", persian("2222222222")),
        // A neighbourhood outside the facilitator's scope.
        format!("{n2_id},کوچه سرو,3333333333"),
        format!("{n1_id},کوچه بید,12345"),
    ];
    let job = commit(&app, &facilitator, "households", HOUSEHOLDS, &rows).await;
    assert_eq!(counts(&job), [4, 1, 0, 0, 3], "{job}");
    assert_eq!(
        row_errors(&job),
        [
            error(3, "postal_code", "duplicate_row"),
            error(4, "neighbourhood_id", "not_found"),
            error(5, "postal_code", &api_code),
        ]
    );
    assert_eq!(households_of(&app, &n1).await.len(), 2);
    assert!(households_of(&app, &n2).await.is_empty());

    // An administrator's row with a known postal code in another neighbourhood is refused, not
    // moved.
    let other = [format!("{n2_id},کوچه یاس,2222222222")];
    let job = commit(&app, &app.admin_token, "households", HOUSEHOLDS, &other).await;
    assert_eq!(counts(&job), [1, 0, 0, 0, 1], "{job}");
    assert_eq!(
        row_errors(&job),
        [error(2, "neighbourhood_id", "household_differs")]
    );

    // A household registered without a postal code is found by its address and given one.
    let plain = created(
        app.post_json(
            "/api/v1/households",
            &json!({"neighbourhood_id": n1_id, "address": "کوچه اقاقیا"}),
        )
        .await,
    )
    .await;
    let rows = [format!("{n1_id},کوچه اقاقیا,5555555555")];
    let job = commit(&app, &facilitator, "households", HOUSEHOLDS, &rows).await;
    assert_eq!(counts(&job), [1, 0, 1, 0, 0], "{job}");
    let found = get_json(&app, &format!("/api/v1/households/{}", id(&plain))).await;
    assert_eq!(found["postal_code"], "5555555555");
    assert_eq!(households_of(&app, &n1).await.len(), 3);

    // One home in one file, once without its postal code and once with it, in either order: the
    // second row is the same household, so a repeat, reported on the address it was found by.
    // Two codes at one address are two homes.
    let rows = [
        format!("{n1_id},کوچه شب‌بو,"),
        format!("{n1_id},کوچه شب‌بو,6666666666"),
        format!("{n1_id},کوچه نسترن,7777777777"),
        format!("{n1_id},کوچه نسترن,"),
        // Not a repeat of the row before, which is not applied: another flat.
        format!("{n1_id},کوچه نسترن,8888888888"),
    ];
    let job = commit(&app, &facilitator, "households", HOUSEHOLDS, &rows).await;
    assert_eq!(counts(&job), [5, 3, 0, 0, 2], "{job}");
    assert_eq!(
        row_errors(&job),
        [
            error(3, "address", "duplicate_row"),
            error(5, "address", "duplicate_row"),
        ]
    );
    assert_eq!(households_of(&app, &n1).await.len(), 6);
}

/// An assessment row: `answers` are employment status, income band and social insurance.
fn assessment(national_id: &str, kind: &str, on: &str, answers: &str, services: &str) -> String {
    format!("{national_id},{kind},{on},{answers},{services},خیاطی,false,2")
}

async fn assessments_are_matched_by_person_kind_and_day_and_never_rewritten(app: TestApp) {
    let (n1, n2) = two_neighbourhoods(&app).await;
    let facilitator = facilitator_token(&app, "fatemeh", &n1).await;
    let p = person(&app, &n1, 1, "1370-01-01").await;
    let q = person(&app, &n1, 2, "1370-01-01").await;
    person(&app, &n2, 3, "1370-01-01").await;
    let answers = "unemployed,under_20m,false";

    let rows = [
        // Persian digits in the national ID and the (Jalali) day.
        assessment(
            &persian(&national_id(1)),
            "baseline",
            &persian("1403-02-10"),
            answers,
            "relief_committee;cash_subsidy",
        ),
        // A follow-up without a baseline.
        assessment(&national_id(2), "follow_up", "1403-03-01", answers, ""),
        // A person of another neighbourhood.
        assessment(&national_id(3), "baseline", "1403-03-01", answers, ""),
    ];
    let job = commit(&app, &facilitator, "assessments", ASSESSMENTS, &rows).await;
    assert_eq!(counts(&job), [3, 1, 0, 0, 2], "{job}");
    // The API's own code for a follow-up without a baseline.
    let api = problem(
        app.post_json(
            &format!("/api/v1/persons/{}/assessments", id(&q)),
            &json!({"kind": "follow_up", "assessed_on": "1403-03-01", "employment_status": "unemployed",
                    "income_band": "under_20m", "social_insurance": false}),
        )
        .await,
        422,
    )
    .await;
    let (api_field, api_code) = (
        api["errors"][0]["field"].as_str().expect("field"),
        api["errors"][0]["code"].as_str().expect("code"),
    );
    assert_eq!(api_code, "baseline_missing");
    assert_eq!(
        row_errors(&job),
        [
            error(3, api_field, api_code),
            error(4, "national_id", "not_found"),
        ]
    );
    let recorded = get_json(&app, &format!("/api/v1/persons/{}/assessments", id(&p))).await;
    let recorded = recorded.as_array().expect("assessments");
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0]["kind"], "baseline");
    assert_eq!(recorded[0]["assessed_on_jalali"], "1403-02-10");
    assert_eq!(
        recorded[0]["welfare_services"],
        json!(["relief_committee", "cash_subsidy"])
    );
    assert_eq!(recorded[0]["dependants"], 2);

    // Again, the services in another order and the day in Latin digits: unchanged.
    let again = [assessment(
        &national_id(1),
        "baseline",
        "1403-02-10",
        answers,
        "cash_subsidy relief_committee",
    )];
    let job = commit(&app, &facilitator, "assessments", ASSESSMENTS, &again).await;
    assert_eq!(counts(&job), [1, 0, 0, 1, 0], "{job}");

    let rows = [
        // The same person, kind and day with other answers: not rewritten.
        assessment(
            &national_id(1),
            "baseline",
            "1403-02-10",
            "employed,20m_to_50m,true",
            "",
        ),
        // A follow-up dated before the baseline.
        assessment(&national_id(1), "follow_up", "1403-01-15", answers, ""),
        assessment(&national_id(1), "follow_up", "1403-06-01", answers, ""),
    ];
    let job = commit(&app, &facilitator, "assessments", ASSESSMENTS, &rows).await;
    assert_eq!(counts(&job), [3, 1, 0, 0, 2], "{job}");
    assert_eq!(
        row_errors(&job),
        [
            error(2, "assessed_on", "assessment_differs"),
            error(3, "assessed_on", "before_baseline"),
        ]
    );
    let recorded = get_json(&app, &format!("/api/v1/persons/{}/assessments", id(&p))).await;
    let recorded = recorded.as_array().expect("assessments");
    assert_eq!(recorded.len(), 2);
    let baseline = recorded
        .iter()
        .find(|a| a["kind"] == "baseline")
        .expect("baseline");
    assert_eq!(baseline["employment_status"], "unemployed");

    // A record merged into another (a duplicate) answers with the one it was merged into.
    let twin = person(&app, &n1, 4, "1370-01-01").await;
    let response = app
        .post_json(
            &format!("/api/v1/persons/{}/merge", id(&q)),
            &json!({"from": twin["id"]}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let rows = [assessment(
        &national_id(4),
        "baseline",
        "1403-04-01",
        answers,
        "",
    )];
    let job = commit(&app, &facilitator, "assessments", ASSESSMENTS, &rows).await;
    assert_eq!(counts(&job), [1, 1, 0, 0, 0], "{job}");
    let path = |p: &Value| format!("/api/v1/persons/{}/assessments", id(p));
    assert_eq!(
        get_json(&app, &path(&q)).await.as_array().map(Vec::len),
        Some(1)
    );
    assert_eq!(
        get_json(&app, &path(&twin)).await.as_array().map(Vec::len),
        Some(0)
    );
}

async fn enrolments_are_created_and_moved_one_transition_at_a_time(app: TestApp) {
    let (n1, n2) = two_neighbourhoods(&app).await;
    let facilitator = facilitator_token(&app, "fatemeh", &n1).await;
    let (h1, h2, h3) = (
        household(&app, &n1).await,
        household(&app, &n1).await,
        household(&app, &n2).await,
    );
    let enrolment_of = |household: &str| {
        let path = format!("/api/v1/enrolments?household_id={household}&programme_id={WHH}");
        let app = &app;
        async move {
            let page = get_json(app, &path).await;
            let items = page["items"].as_array().expect("items").clone();
            assert!(items.len() <= 1);
            items.into_iter().next()
        }
    };

    let rows = [
        format!("{h1},{WHH},,1398-01-15,"),
        format!("{h2},{WHH},assessed,۱۳۹۸-۰۱-۱۵,بازدید"),
        format!("{h3},{WHH},,1398-01-15,"),
    ];
    let job = commit(&app, &facilitator, "enrolments", ENROLMENTS, &rows).await;
    assert_eq!(counts(&job), [3, 2, 0, 0, 1], "{job}");
    assert_eq!(row_errors(&job), [error(4, "household_id", "not_found")]);
    let e1 = enrolment_of(&h1).await.expect("enrolled");
    assert_eq!(e1["state"], "identified");
    assert_eq!(
        enrolment_of(&h2).await.expect("enrolled")["state"],
        "assessed"
    );
    assert!(enrolment_of(&h3).await.is_none());

    let rows = [
        format!("{h1},{WHH},assessed,1398-02-01,ارزیابی"),
        // identified → assessed → employed skips the path.
        format!("{h2},{WHH},employed,1398-02-01,"),
    ];
    let job = commit(&app, &facilitator, "enrolments", ENROLMENTS, &rows).await;
    assert_eq!(counts(&job), [2, 0, 1, 0, 1], "{job}");
    assert_eq!(
        row_errors(&job),
        [error(3, "state", "transition-not-allowed")]
    );
    assert_eq!(
        enrolment_of(&h1).await.expect("enrolled")["state"],
        "assessed"
    );
    assert_eq!(
        enrolment_of(&h2).await.expect("enrolled")["state"],
        "assessed"
    );
    let history = get_json(&app, &format!("/api/v1/enrolments/{}/transitions", id(&e1))).await;
    assert_eq!(history.to_string().matches("\"assessed\"").count(), 1);

    // The same rows again: unchanged; a transition dated before the last one is refused.
    let rows = [
        format!("{h1},{WHH},assessed,1398-02-01,ارزیابی"),
        format!("{h2},{WHH},paused,1398-01-01,"),
    ];
    let job = commit_again(&app, &facilitator, "enrolments", ENROLMENTS, &rows).await;
    assert_eq!(counts(&job), [2, 0, 0, 1, 1], "{job}");
    assert_eq!(
        row_errors(&job),
        [error(3, "effective_on", "before_previous")]
    );
    assert_eq!(
        enrolment_of(&h2).await.expect("enrolled")["state"],
        "assessed"
    );

    // The first file again, with no state for the enrolments that moved on: they stay.
    let rows = [
        format!("{h1},{WHH},,1398-01-15,"),
        format!("{h2},{WHH},,1398-01-15,"),
    ];
    let job = commit(&app, &facilitator, "enrolments", ENROLMENTS, &rows).await;
    assert_eq!(counts(&job), [2, 0, 0, 2, 0], "{job}");
    assert_eq!(
        enrolment_of(&h1).await.expect("enrolled")["state"],
        "assessed"
    );
}

/// An enrolment created (through the API, say) while its row is imported, after the row looked
/// for it: on PostgreSQL the row's insert fails on the unique index; tried again, the row finds
/// the enrolment and leaves it as it is, as the next upload would.
async fn an_enrolment_created_while_its_row_is_imported_is_found(app: TestApp) {
    let (n1, _) = two_neighbourhoods(&app).await;
    let h = household(&app, &n1).await;
    let meanwhile = format!(
        "INSERT INTO enrolments (id, programme_id, household_id, neighbourhood_id, state,
             state_since, version, created_at, updated_at)
         VALUES ('{}', '{WHH}', '{h}', '{}', 'identified', '2019-04-04', 1,
             '2026-01-01 00:00:00', '2026-01-01 00:00:00')",
        uuid::Uuid::now_v7(),
        id(&n1)
    );
    let job = imported_while_written(
        &app,
        meanwhile,
        "kind=enrolments&mode=commit&atomicity=rows",
        format!("{ENROLMENTS}\n{h},{WHH},,1398-01-15,\n"),
    )
    .await;
    assert_eq!(counts(&job), [1, 0, 0, 1, 0], "{job}");
    let path = format!("/api/v1/enrolments?household_id={h}&programme_id={WHH}");
    let page = get_json(&app, &path).await;
    assert_eq!(page["items"].as_array().map(Vec::len), Some(1), "{page}");
}

async fn attendance_is_imported_by_the_cohorts_own_trainer_or_facilitator(app: TestApp) {
    let (n1, n2) = two_neighbourhoods(&app).await;
    let own = app
        .create_user(
            "maryam.trainer",
            Role::Trainer,
            PASSWORD,
            vec![supporters::area(&n1)],
        )
        .await;
    let other = app
        .create_user(
            "other.trainer",
            Role::Trainer,
            PASSWORD,
            vec![supporters::area(&n1)],
        )
        .await;
    let own_token = login(&app, "maryam.trainer").await;
    let (course, provider) = (
        course(&app, "technical_vocational").await,
        provider(&app, "آموزشگاه فنی").await,
    );
    let (own_id, other_id) = (own.id.to_string(), other.id.to_string());
    let mine = cohort(&app, &course, &provider, &n1, 5, Some(&own_id)).await;
    let theirs = cohort(&app, &course, &provider, &n1, 5, Some(&other_id)).await;
    let p1 = person(&app, &n1, 1, "1370-01-01").await;
    let p2 = person(&app, &n1, 2, "1370-01-01").await;
    person(&app, &n1, 3, "1370-01-01").await;
    // Seated in a cohort of n1 though she lives in n2: the cohort's trainer marks her, as the
    // API lets them.
    let p4 = person(&app, &n2, 4, "1370-01-01").await;
    for (c, p) in [(&mine, &p1), (&mine, &p2), (&theirs, &p1), (&mine, &p4)] {
        register(&app, c, p).await;
    }
    let s1 = session(&app, &mine, "1403-07-05").await;
    let s2 = session(&app, &theirs, "1403-07-05").await;
    let (s1, s2) = (id(&s1).to_owned(), id(&s2).to_owned());
    let marks = |session: &str| {
        let path = format!("/api/v1/sessions/{session}/attendance");
        let app = &app;
        async move {
            let sheet = get_json(app, &path).await;
            let mut marks: Vec<(String, String)> = sheet["marks"]
                .as_array()
                .expect("marks")
                .iter()
                .map(|m| {
                    (
                        m["person_id"].as_str().expect("person").to_owned(),
                        m["mark"].as_str().expect("mark").to_owned(),
                    )
                })
                .collect();
            marks.sort();
            marks
        }
    };
    let sorted = |mut pairs: Vec<(String, String)>| {
        pairs.sort();
        pairs
    };

    let rows = [
        format!("{s1},{},present", national_id(1)),
        format!("{s1},{},absent", persian(&national_id(2))),
        // No seat in the cohort.
        format!("{s1},{},present", national_id(3)),
        // Another trainer's cohort.
        format!("{s2},{},present", national_id(1)),
        format!("{s1},{},present", national_id(4)),
        // Another trainer's cohort, someone with no seat: refused the same, before any seat
        // is looked for (it tells nothing of who attends).
        format!("{s2},{},present", national_id(3)),
    ];
    let job = commit(&app, &own_token, "attendance", ATTENDANCE, &rows).await;
    assert_eq!(counts(&job), [6, 3, 0, 0, 3], "{job}");
    assert_eq!(
        row_errors(&job),
        [
            error(4, "national_id", "not_registered"),
            error(5, "row", "forbidden"),
            error(7, "row", "forbidden"),
        ]
    );
    let p1_id = id(&p1).to_owned();
    let p2_id = id(&p2).to_owned();
    let p4_id = id(&p4).to_owned();
    assert_eq!(
        marks(&s1).await,
        sorted(vec![
            (p1_id.clone(), "present".to_owned()),
            (p2_id.clone(), "absent".to_owned()),
            (p4_id.clone(), "present".to_owned()),
        ])
    );
    assert!(marks(&s2).await.is_empty());

    // A corrected mark is updated, the same one unchanged.
    let rows = [
        format!("{s1},{},present", national_id(1)),
        format!("{s1},{},excused", national_id(2)),
    ];
    let job = commit(&app, &own_token, "attendance", ATTENDANCE, &rows).await;
    assert_eq!(counts(&job), [2, 0, 1, 1, 0], "{job}");
    assert_eq!(
        marks(&s1).await,
        sorted(vec![
            (p1_id.clone(), "present".to_owned()),
            (p2_id, "excused".to_owned()),
            (p4_id, "present".to_owned()),
        ])
    );

    // Facilitators of the neighbourhood record attendance too, for any of its cohorts.
    let facilitator = facilitator_token(&app, "fatemeh", &n1).await;
    let rows = [format!("{s2},{},absent", national_id(1))];
    let job = commit(&app, &facilitator, "attendance", ATTENDANCE, &rows).await;
    assert_eq!(counts(&job), [1, 1, 0, 0, 0], "{job}");
    assert_eq!(marks(&s2).await, [(p1_id, "absent".to_owned())]);

    // Programme managers and administrators do not record attendance: not by import either.
    for role in [Role::ProgrammeManager, Role::Admin] {
        let token = app.mint(role).await;
        let body = format!("{ATTENDANCE}\n{s1},{},absent\n", national_id(1));
        problem(
            upload_as(
                &app,
                &token,
                "kind=attendance&mode=commit",
                "text/csv",
                body,
                None,
            )
            .await,
            403,
        )
        .await;
    }
}

async fn purchases_are_charged_once_per_reference(app: TestApp) {
    let f = fixture(&app).await;
    let officer = f.officer.clone();
    supporters::producer(&app, &officer, &f.n1, 2).await;
    allocate(&app, &f, 1_000_000).await;
    let supporter = id(&f.supporter).to_owned();
    let producer = national_id(1);
    let order = |reference: &str, producer: &str, quantity: i64, unit_price: i64| {
        format!(
            "{reference},{supporter},{producer},2026-01-15,product,روسری دوخته,{quantity},{unit_price}"
        )
    };
    let purchases_path = format!("/api/v1/supporters/{supporter}/purchases");

    let rows = [
        order("PO-1", &producer, 2, 150_000),
        // A permit holder of the neighbourhood not linked to the supporter.
        order("PO-2", &national_id(2), 1, 1000),
        // More than is left after PO-1.
        order("PO-3", &producer, 1, 900_000),
    ];
    let job = commit(&app, &f.token, "purchases", PURCHASES, &rows).await;
    assert_eq!(counts(&job), [3, 1, 0, 0, 2], "{job}");
    assert_eq!(
        row_errors(&job),
        [
            error(3, "producer_national_id", "not_linked"),
            error(4, "row", "insufficient-funds"),
        ]
    );
    assert_eq!(balance(&app, &f.supporter).await, 700_000);
    let kinds: Vec<(String, i64)> = ledger(&app, &f.supporter).await["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().expect("kind").to_owned(),
                e["amount"].as_i64().expect("amount"),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("allocation".to_owned(), 1_000_000),
            ("purchase".to_owned(), -300_000)
        ]
    );
    assert_eq!(
        get_json(&app, &purchases_path)
            .await
            .as_array()
            .map(Vec::len),
        Some(1)
    );

    // The same order again: unchanged, charged once.
    let job = commit_again(&app, &f.token, "purchases", PURCHASES, &rows[..1]).await;
    assert_eq!(counts(&job), [1, 0, 0, 1, 0], "{job}");
    // A supporter's id is read as an id: in capitals it is the same supporter, and a value that
    // is none (kept whole, it would be held with the file's keys) is refused as such. A long
    // value repeated in an error's message is cut.
    let rows = [
        order("PO-1", &producer, 2, 150_000).replace(&supporter, &supporter.to_uppercase()),
        order("PO-6", &producer, 1, 10).replace(&supporter, &"x".repeat(5000)),
        order("PO-7", &producer, 1, 10).replace(",product,", &format!(",{},", "y".repeat(5000))),
    ];
    let job = commit(&app, &f.token, "purchases", PURCHASES, &rows).await;
    assert_eq!(counts(&job), [3, 0, 0, 1, 2], "{job}");
    assert_eq!(
        row_errors(&job),
        [
            error(3, "supporter_id", "format"),
            error(4, "item_kind", "unknown")
        ]
    );
    let message = job["errors"][1]["message"].as_str().expect("message");
    assert!(
        message.starts_with("unknown") && message.chars().count() <= 301,
        "{message}"
    );
    // The same reference for another order: refused.
    let job = commit(
        &app,
        &f.token,
        "purchases",
        PURCHASES,
        &[order("PO-1", &producer, 3, 150_000)],
    )
    .await;
    assert_eq!(counts(&job), [1, 0, 0, 0, 1], "{job}");
    assert_eq!(row_errors(&job), [error(2, "reference", "reference_used")]);
    // Another order of the same total (one at 300,000 instead of two at 150,000) is another order.
    let job = commit(
        &app,
        &f.token,
        "purchases",
        PURCHASES,
        &[order("PO-1", &producer, 1, 300_000)],
    )
    .await;
    assert_eq!(row_errors(&job), [error(2, "reference", "reference_used")]);
    assert_eq!(balance(&app, &f.supporter).await, 700_000);
    assert_eq!(
        get_json(&app, &purchases_path)
            .await
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    // Written once, as the job.
    assert_eq!(audit_count(&app, "purchase.create").await, 0);
    // Atomicity `all`: a good order and one over the balance, and nothing is charged.
    let body = format!(
        "{PURCHASES}\n{}\n{}\n",
        order("PO-4", &producer, 1, 100_000),
        order("PO-5", &producer, 1, 5_000_000)
    );
    let job = imported(
        &app,
        &f.token,
        "kind=purchases&mode=commit&atomicity=all",
        body,
    )
    .await;
    assert_eq!(counts(&job), [2, 0, 0, 0, 1], "{job}");
    assert_eq!(row_errors(&job), [error(3, "row", "insufficient-funds")]);
    assert_eq!(balance(&app, &f.supporter).await, 700_000);
    assert_eq!(
        get_json(&app, &purchases_path)
            .await
            .as_array()
            .map(Vec::len),
        Some(1)
    );

    // Only supporters buy: programme managers and administrators may not import purchases.
    for token in [f.pm.clone(), app.admin_token.clone()] {
        let body = format!("{PURCHASES}\n{}\n", order("PO-9", &producer, 1, 10));
        problem(
            upload_as(
                &app,
                &token,
                "kind=purchases&mode=commit",
                "text/csv",
                body,
                None,
            )
            .await,
            403,
        )
        .await;
    }
    assert_eq!(balance(&app, &f.supporter).await, 700_000);
}

/// An API client imports what its organisation's MoU data policy lets it submit, with the rules
/// of `/partner/...`: households in the MoU's areas, assessments of persons it may see. Nothing
/// else, and nothing without a policy in force.
async fn api_clients_import_what_their_mou_lets_them_submit(app: TestApp) {
    use crate::partners::{household_with_head, set_policy, study_policy};
    let (n1, n2) = two_neighbourhoods(&app).await;
    // Importing needs `registry:write` too, as `/partner/...` does.
    let importer = create_client(&app, &["imports:write"]).await;
    let org = &importer["organisation_id"]
        .as_str()
        .expect("organisation")
        .to_owned();
    let token_of_client = |client: Value| {
        let app = &app;
        async move {
            let grant = client_grant(
                app,
                client["client_id"].as_str().expect("client id"),
                client["client_secret"].as_str().expect("secret"),
            )
            .await;
            token_of(grant).await["access_token"]
                .as_str()
                .expect("token")
                .to_owned()
        }
    };
    let client = created(
        app.post_json(
            "/api/v1/api-clients",
            &json!({"name": "Field study", "organisation_id": org,
                    "scopes": ["imports:write", "registry:write"], "expires_on": "2099-12-31"}),
        )
        .await,
    )
    .await;
    let client_id = client["client_id"].as_str().expect("client id").to_owned();
    let importer_token = token_of_client(importer.clone()).await;
    let token = &token_of_client(client).await;
    let refused_to = |token: &str, kind: &'static str, header: &'static str| {
        let (app, token) = (&app, token.to_owned());
        async move {
            problem(
                upload_as(
                    app,
                    &token,
                    &format!("kind={kind}&mode=validate"),
                    "text/csv",
                    format!("{header}\n"),
                    None,
                )
                .await,
                403,
            )
            .await
        }
    };
    let refused = |kind: &'static str, header: &'static str| refused_to(token, kind, header);
    let home = |hood: &Value, address: &str, postal_code: &str| {
        format!("{},{address},{postal_code}", id(hood))
    };

    // No MoU data policy: nothing; with one that lets it submit nothing: nothing either.
    refused("households", HOUSEHOLDS).await;
    set_policy(&app, org, &study_policy()).await;
    let body = refused("households", HOUSEHOLDS).await;
    assert!(
        body.to_string().contains("does not let it submit"),
        "{body}"
    );

    let mut policy = study_policy();
    policy["writes"] = json!(["households", "assessments"]);
    policy["areas"] = json!([n1["id"]]);
    set_policy(&app, org, &policy).await;
    refused_to(&importer_token, "households", HOUSEHOLDS).await;
    // Households in the MoU's areas only.
    let rows = [
        home(&n1, "کوچه یاس", "1234567890"),
        home(&n2, "کوچه نرگس", "2234567890"),
    ];
    let job = commit(&app, token, "households", HOUSEHOLDS, &rows).await;
    assert_eq!(counts(&job), [2, 1, 0, 0, 1], "{job}");
    assert_eq!(
        row_errors(&job),
        [error(3, "neighbourhood_id", "outside_mou")]
    );
    assert_eq!(households_of(&app, &n1).await.len(), 1);
    assert_eq!(households_of(&app, &n2).await.len(), 0);
    // A partner's row is matched with no registered household (it may not read them): the same
    // row in another file registers another, as `/partner/households` does.
    let job = commit(&app, token, "households", HOUSEHOLDS, &rows[..1]).await;
    assert_eq!(counts(&job), [1, 1, 0, 0, 0], "{job}");
    assert_eq!(households_of(&app, &n1).await.len(), 2);

    // A file names persons by national ID: not for a partner whose policy withholds them.
    let body = refused("assessments", ASSESSMENTS).await;
    assert!(
        body.to_string().contains("withholds national IDs"),
        "{body}"
    );
    policy["withheld"] = json!(["birth_date", "address", "mobile"]);
    set_policy(&app, org, &policy).await;
    // Assessments of persons it may see (consent, the MoU's areas); the others are not found.
    let (_, shares) = household_with_head(&app, &n1, 600, true).await;
    let (_, keeps) = household_with_head(&app, &n1, 601, false).await;
    let (_, far) = household_with_head(&app, &n2, 602, true).await;
    let answers = "unemployed,under_20m,false";
    let rows = [shares.clone(), keeps, far].map(|p| {
        assessment(
            p["national_id"].as_str().expect("national id"),
            "baseline",
            "1403-02-10",
            answers,
            "",
        )
    });
    let job = commit(&app, token, "assessments", ASSESSMENTS, &rows).await;
    assert_eq!(counts(&job), [3, 1, 0, 0, 2], "{job}");
    assert_eq!(
        row_errors(&job),
        [
            error(3, "national_id", "not_found"),
            error(4, "national_id", "not_found")
        ]
    );
    let path = format!(
        "/api/v1/persons/{}/assessments",
        shares["id"].as_str().expect("id")
    );
    assert_eq!(
        get_json(&app, &path).await.as_array().map(Vec::len),
        Some(1)
    );

    // Persons, enrolments, attendance and purchases are staff's own.
    for (kind, header) in [
        ("persons", crate::imports::HEADER),
        ("enrolments", ENROLMENTS),
        ("attendance", ATTENDANCE),
        ("purchases", PURCHASES),
    ] {
        let body = refused(kind, header).await;
        assert!(
            body["detail"]
                .as_str()
                .is_some_and(|d| d.contains("recorded by staff")),
            "{body}"
        );
    }

    // The runner checks the policy and the client as they stand when the job runs (a resumed
    // job too): a refused job is stopped with the reason, to be resumed once it is allowed again.
    let refused_run = |checksum: &'static str| {
        let (db, client_id) = (app.db.clone(), client_id.clone());
        tokio::task::spawn_blocking(move || {
            use tavana_domain::import::{Atomicity, ImportFormat, ImportKind, ImportMode};
            use tavana_persistence::imports::{self, NewJob};
            use tavana_persistence::{Actor, AuditContext, Scope};
            let mut conn = db.get().expect("connection");
            let (job, _) = imports::start(
                &mut conn,
                NewJob {
                    id: uuid::Uuid::now_v7().to_string(),
                    kind: ImportKind::Households,
                    mode: ImportMode::Commit,
                    atomicity: Atomicity::Rows,
                    format: ImportFormat::Csv,
                    principal: format!("client:{client_id}"),
                    context: AuditContext {
                        actor: Actor::Client(client_id),
                        request_id: None,
                        batched: false,
                    },
                    scope: Scope::All,
                    role: None,
                    idempotency_key: None,
                    checksum: checksum.to_owned(),
                    file_path: String::new(),
                },
            )
            .expect("job");
            drop(conn);
            let today = chrono::Utc::now().date_naive();
            let ran = imports::run(&db, &job.id, &mut std::iter::empty(), today);
            assert!(
                matches!(ran, Err(tavana_persistence::StoreError::Forbidden(_))),
                "{ran:?}"
            );
            let mut conn = db.get().expect("connection");
            let job = imports::get(&mut conn, &job.id).expect("job");
            assert_eq!(job.state, "interrupted");
            job.message.unwrap_or_default()
        })
    };
    policy["writes"] = json!(["assessments"]);
    set_policy(&app, org, &policy).await;
    let why = refused_run("started before the policy changed")
        .await
        .expect("joined");
    assert!(why.contains("does not let it submit"), "{why}");
    policy["writes"] = json!(["households", "assessments"]);
    set_policy(&app, org, &policy).await;
    {
        use diesel::{ExpressionMethods, QueryDsl, RunQueryDsl};
        use tavana_persistence::schema::api_clients;
        let mut conn = app.db.get().expect("connection");
        diesel::update(api_clients::table.filter(api_clients::client_id.eq(&client_id)))
            .set(api_clients::scopes.eq("imports:write"))
            .execute(&mut *conn)
            .expect("scopes changed");
    }
    let why = refused_run("started before the scopes changed")
        .await
        .expect("joined");
    assert!(why.contains("registry:write"), "{why}");

    // A client without `imports:write` imports nothing.
    let reader = created(
        app.post_json(
            "/api/v1/api-clients",
            &json!({"name": "Registry reader", "organisation_id": org,
                    "scopes": ["registry:read"], "expires_on": "2099-12-31"}),
        )
        .await,
    )
    .await;
    let tokens = token_of(
        client_grant(
            &app,
            reader["client_id"].as_str().expect("client id"),
            reader["client_secret"].as_str().expect("secret"),
        )
        .await,
    )
    .await;
    problem(
        upload_as(
            &app,
            tokens["access_token"].as_str().expect("token"),
            "kind=assessments&mode=validate",
            "text/csv",
            format!("{ASSESSMENTS}\n"),
            None,
        )
        .await,
        403,
    )
    .await;
}

async fn a_committed_import_is_audited_once_as_a_whole(app: TestApp) {
    let (n1, _) = two_neighbourhoods(&app).await;
    let n1_id = id(&n1).to_owned();
    let before = audit_total(&app).await;

    let rows = [
        format!("{n1_id},کوچه ۱,1111111111"),
        format!("{n1_id},کوچه ۲,2222222222"),
        format!("{n1_id},کوچه ۳,3333333333"),
    ];
    let job = commit(&app, &app.admin_token, "households", HOUSEHOLDS, &rows).await;
    assert_eq!(counts(&job), [3, 3, 0, 0, 0], "{job}");
    assert_eq!(audit_count(&app, "import.commit").await, 1);
    assert_eq!(audit_count(&app, "household.create").await, 0);
    assert_eq!(audit_total(&app).await, before + 1);
    let event = &get_json(&app, "/api/v1/audit?action=import.commit").await["items"][0];
    assert_eq!(event["entity_id"], job["id"], "{event}");

    // Updates and enrolments with transitions: again one event per job.
    let households = households_of(&app, &n1).await;
    let mut rows: Vec<String> = households
        .iter()
        .map(|h| format!("{},{WHH},assessed,1398-01-15,", id(h)))
        .collect();
    let job = commit(&app, &app.admin_token, "enrolments", ENROLMENTS, &rows).await;
    assert_eq!(counts(&job), [3, 3, 0, 0, 0], "{job}");
    let renamed = [format!("{n1_id},کوچه ۱ پلاک ۹,1111111111")];
    let job = commit(&app, &app.admin_token, "households", HOUSEHOLDS, &renamed).await;
    assert_eq!(counts(&job), [1, 0, 1, 0, 0], "{job}");
    assert_eq!(audit_count(&app, "import.commit").await, 3);
    for action in [
        "enrolment.create",
        "enrolment.transition",
        "household.update",
    ] {
        assert_eq!(audit_count(&app, action).await, 0, "{action}");
    }
    assert_eq!(audit_total(&app).await, before + 3);

    // A job that wrote nothing (all rows unchanged) is not an event.
    rows.truncate(2);
    let job = commit_again(&app, &app.admin_token, "enrolments", ENROLMENTS, &rows).await;
    assert_eq!(counts(&job), [2, 0, 0, 2, 0], "{job}");
    assert_eq!(audit_total(&app).await, before + 3);
}

async fn imported_persons_are_queued_as_possible_duplicates(app: TestApp) {
    let province = area(&app, "province", None, "KHR").await;
    let city = area(&app, "city", Some(&province), "MSH").await;
    let district = area(&app, "district", Some(&city), "D5").await;
    let n1 = area(&app, "neighbourhood", Some(&district), "D5-N1").await;
    let n2 = area(&app, "neighbourhood", Some(&district), "D5-N2").await;
    let elsewhere = area(&app, "district", Some(&city), "D6").await;
    let n3 = area(&app, "neighbourhood", Some(&elsewhere), "D6-N1").await;
    // Registered through the API before the import.
    let earlier = created(
        app.post_json(
            "/api/v1/persons",
            &json!({"national_id": national_id(1), "first_name": "رقیه", "last_name": "قاسمی",
                    "birth_date": "1981-04-01", "sex": "female",
                    "household_id": household(&app, &n1).await, "household_role": "head"}),
        )
        .await,
    )
    .await;
    let (h1, h2, h3, h4) = (
        household(&app, &n1).await,
        household(&app, &n2).await,
        household(&app, &n3).await,
        household(&app, &n1).await,
    );
    let header = "national_id,first_name,last_name,birth_date,sex,household_id,household_role";
    let rows = [
        // The same names (in Arabic letters), born the same (Gregorian) year, in the same district,
        // as the API compares them.
        format!("{},رقيه,قاسمي,1981-07-23,female,{h1},head", national_id(2)),
        format!("{},رقیه,قاسمی,1981-12-20,female,{h2},head", national_id(3)),
        // In another district.
        format!("{},رقیه,قاسمی,1981-04-01,female,{h3},head", national_id(4)),
        // Born another year.
        format!("{},رقیه,قاسمی,1982-01-05,female,{h4},head", national_id(5)),
    ];
    let job = commit(&app, &app.admin_token, "persons", header, &rows).await;
    assert_eq!(counts(&job), [4, 4, 0, 0, 0], "{job}");

    let mut ids = vec![id(&earlier).to_owned()];
    for n in 2..=5 {
        let page = get_json(
            &app,
            &format!("/api/v1/persons?national_id={}", national_id(n)),
        )
        .await;
        ids.push(id(&page["items"][0]).to_owned());
    }
    let pair = |a: usize, b: usize| {
        let mut pair = [ids[a].clone(), ids[b].clone()];
        pair.sort();
        pair
    };
    let open = get_json(&app, "/api/v1/duplicates").await;
    let mut pairs: Vec<[String; 2]> = open
        .as_array()
        .expect("pairs")
        .iter()
        .map(|d| {
            let mut pair = [
                d["person_id"].as_str().expect("person").to_owned(),
                d["candidate_id"].as_str().expect("candidate").to_owned(),
            ];
            pair.sort();
            pair
        })
        .collect();
    pairs.sort();
    let mut expected = vec![pair(1, 0), pair(2, 0), pair(2, 1)];
    expected.sort();
    assert_eq!(pairs, expected, "{open}");
    // The newly imported person is the one flagged.
    assert!(
        open.as_array()
            .expect("pairs")
            .iter()
            .all(|d| d["person_id"] != earlier["id"]),
        "{open}"
    );
}

async fn atomicity_all_writes_nothing_when_a_row_fails(app: TestApp) {
    let (n1, _) = two_neighbourhoods(&app).await;
    let n1_id = id(&n1).to_owned();
    let h = household(&app, &n1).await;
    let body = format!(
        "{HOUSEHOLDS}\n{n1_id},کوچه ۱,1111111111\n{n1_id},کوچه ۲,2222222222\n{n1_id},کوچه ۳,12\n"
    );
    let job = imported(
        &app,
        &app.admin_token,
        "kind=households&mode=commit&atomicity=all",
        body,
    )
    .await;
    assert_eq!(counts(&job), [3, 0, 0, 0, 1], "{job}");
    assert!(
        job["message"]
            .as_str()
            .is_some_and(|m| m.contains("nothing was written")),
        "{job}"
    );
    assert_eq!(row_errors(&job), [error(4, "postal_code", "format")]);
    assert_eq!(
        households_of(&app, &n1).await.len(),
        1,
        "only the one made before"
    );

    // An enrolment made and moved in the same file is rolled back with the rest.
    let body = format!(
        "{ENROLMENTS}\n{h},{WHH},assessed,1398-01-15,\n{h},01936b2e-0000-7000-8000-000000000000,,1398-01-15,\n"
    );
    let job = imported(
        &app,
        &app.admin_token,
        "kind=enrolments&mode=commit&atomicity=all",
        body,
    )
    .await;
    assert_eq!(counts(&job), [2, 0, 0, 0, 1], "{job}");
    assert_eq!(row_errors(&job), [error(3, "programme_id", "not_found")]);
    let page = get_json(&app, &format!("/api/v1/enrolments?household_id={h}")).await;
    assert_eq!(page["items"], json!([]));
    assert_eq!(audit_count(&app, "import.commit").await, 0);
}
