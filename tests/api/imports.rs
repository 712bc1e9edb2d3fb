//! Batch imports: files with the usual troubles, both atomicity modes, validation, idempotent
//! re-runs, JSON Lines, scope, and resuming after an interruption.

use serde_json::{Value, json};
use tavana_domain::access::Role;
use tavana_domain::import::{Atomicity, ImportFormat, ImportKind, ImportMode};
use tavana_persistence::imports::{self, NewJob, Row};
use tavana_persistence::{AuditContext, Scope, StoreError};

use crate::backend_tests;
use crate::helpers::{TestApp, get_json, problem};
use crate::households::{facilitator_token, two_neighbourhoods};
use crate::training::{created, id, national_id, person};

backend_tests!(
    a_csv_with_bom_crlf_persian_digits_and_arabic_letters_is_imported,
    a_csv_with_lone_cr_line_ends_is_numbered_by_line,
    bad_rows_are_reported_and_atomicity_decides_what_is_written,
    headers_and_empty_files_are_checked,
    validation_writes_nothing_and_a_rerun_imports_nothing_twice,
    an_update_by_import_leaves_what_the_row_does_not_give,
    a_person_changed_while_imported_is_not_overwritten,
    a_users_job_runs_with_the_users_rights_as_they_are_now,
    a_job_left_running_by_a_runner_that_is_gone_is_resumed,
    an_upload_of_a_stopped_jobs_file_resumes_it_from_the_new_copy,
    a_second_head_is_refused_as_the_api_refuses_it,
    a_person_registered_while_her_row_is_imported_is_found_not_a_stop,
    a_merged_record_is_not_updated_by_its_national_id,
    json_lines_are_imported_and_scope_applies,
    files_as_spreadsheets_save_them_are_read_as_meant,
    files_sent_compressed_or_in_another_charset,
    json_lines_keys_are_read_as_csv_headers_are,
    a_start_removes_spooled_files_no_job_needs,
    a_job_in_one_transaction_shows_how_far_it_has_read,
    a_resumed_job_goes_on_after_the_line_it_reached,
    an_interrupted_import_resumes_without_duplicates,
    a_stop_inside_a_transaction_of_several_batches_keeps_the_batches_before_it,
    repeats_are_found_after_the_keys_move_out_of_memory,
    a_job_whose_file_is_gone_is_interrupted_not_left_running,
    on_sqlite_an_import_waits_for_the_one_running,
    a_job_running_in_another_process_is_left_to_it,
    a_runner_whose_job_is_marked_interrupted_stops_writing_nothing,
    a_job_waiting_for_its_turn_is_left_to_its_runner,
    a_runner_that_panics_gives_its_run_lock_back,
    a_resumed_job_keeps_no_more_errors_than_the_limit,
    an_import_in_one_transaction_lets_the_apis_writes_go_on,
    a_resumed_job_of_the_command_line_leaves_its_file,
    an_interrupted_all_or_nothing_import_runs_again_from_the_start,
);

pub const HEADER: &str =
    "national_id,first_name,last_name,birth_date,sex,household_id,household_role";

pub async fn household(app: &TestApp, neighbourhood: &Value) -> String {
    created(
        app.post_json(
            "/api/v1/households",
            &json!({"neighbourhood_id": neighbourhood["id"], "address": "کوچه یاس"}),
        )
        .await,
    )
    .await["id"]
        .as_str()
        .expect("id")
        .to_owned()
}

pub async fn upload_as(
    app: &TestApp,
    token: &str,
    query: &str,
    content_type: &str,
    body: impl Into<reqwest::Body>,
    key: Option<&str>,
) -> reqwest::Response {
    let mut request = app
        .client
        .post(app.url(&format!("/api/v1/imports?{query}")))
        .bearer_auth(token)
        .header("content-type", content_type)
        .body(body);
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    request.send().await.expect("sent")
}

async fn upload(app: &TestApp, query: &str, body: String) -> Value {
    imported(app, &app.admin_token, query, body).await
}

/// Uploads a CSV file as `token`, expects a new job (202) and waits for it to finish.
pub async fn imported(app: &TestApp, token: &str, query: &str, body: String) -> Value {
    let response = upload_as(app, token, query, "text/csv", body, None).await;
    let status = response.status();
    let location = response
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .map(str::to_owned);
    let job: Value = response.json().await.expect("job");
    assert_eq!(status, 202, "{job}");
    let id = job["id"].as_str().expect("id");
    // Where to follow it, and where its errors are.
    assert_eq!(location, Some(format!("/api/v1/imports/{id}")));
    assert_eq!(job["errors_url"], format!("/api/v1/imports/{id}/errors"));
    finished(app, token, id).await
}

/// Starts a job as an administrator (202) and returns its id, without waiting for it.
async fn started(
    app: &TestApp,
    query: &str,
    content_type: &str,
    body: impl Into<reqwest::Body>,
) -> String {
    let response = upload_as(app, &app.admin_token, query, content_type, body, None).await;
    assert_eq!(response.status(), 202);
    response.json::<Value>().await.expect("job")["id"]
        .as_str()
        .expect("id")
        .to_owned()
}

/// Resumes the job as an administrator (202) and waits for it to end.
async fn resumed(app: &TestApp, id: &str) -> Value {
    let response = app
        .post_json(&format!("/api/v1/imports/{id}/resume"), &json!({}))
        .await;
    assert_eq!(response.status(), 202);
    finished(app, &app.admin_token, id).await
}

/// The job as its administrator reads it.
async fn job_of(app: &TestApp, id: &str) -> Value {
    app.get(&format!("/api/v1/imports/{id}"))
        .await
        .json()
        .await
        .expect("job")
}

/// `rows`, then a read error: the file goes while the job reads it.
fn then_the_disk_goes(
    rows: impl Iterator<Item = Result<Row, StoreError>>,
) -> impl Iterator<Item = Result<Row, StoreError>> {
    rows.chain(std::iter::once(Err(StoreError::Unavailable(
        "the disk went away".to_owned(),
    ))))
}

/// Polls the job until it is no longer running.
pub async fn finished(app: &TestApp, token: &str, id: &str) -> Value {
    for _ in 0..200 {
        let job: Value = app
            .client
            .get(app.url(&format!("/api/v1/imports/{id}")))
            .bearer_auth(token)
            .send()
            .await
            .expect("sent")
            .json()
            .await
            .expect("job");
        if job["state"] != "running" {
            return job;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the import did not finish");
}

async fn count(app: &TestApp, query: &str) -> usize {
    let page: Value = app
        .get(&format!("/api/v1/persons?limit=200&{query}"))
        .await
        .json()
        .await
        .expect("page");
    page["items"].as_array().map_or(0, Vec::len)
}

fn codes(job: &Value) -> Vec<(i64, String)> {
    job["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| {
            (
                e["row"].as_i64().expect("row"),
                e["code"].as_str().expect("code").to_owned(),
            )
        })
        .collect()
}

async fn a_csv_with_bom_crlf_persian_digits_and_arabic_letters_is_imported(app: TestApp) {
    let (n1, _) = two_neighbourhoods(&app).await;
    let h = household(&app, &n1).await;
    // A byte-order mark, CRLF line ends, Persian and Arabic-Indic digits, Arabic ي and ك.
    let body = format!(
        "\u{feff}{HEADER}\r\n۰۴۹۹۳۷۰۸۹۹,علي,كريمي,١٣٦٠-٠١-٠١,female,{h},head\r\n{},مريم,كاظمي,1365-02-03,female,{h},child\r\n",
        national_id(7)
    );
    let job = upload(&app, "kind=persons&mode=commit&atomicity=rows", body).await;
    assert_eq!(job["state"], "completed", "{job}");
    assert_eq!(
        (
            job["read"].clone(),
            job["created"].clone(),
            job["failed"].clone()
        ),
        (json!(2), json!(2), json!(0))
    );
    let found: Value = app
        .get("/api/v1/persons?national_id=0499370899")
        .await
        .json()
        .await
        .expect("page");
    let person = &found["items"][0];
    assert_eq!(person["first_name"], "علي");
    assert_eq!(person["birth_date"], "1981-03-21");
    assert_eq!(person["woman_head"], true);
    // Found with Persian letters as well.
    assert_eq!(count(&app, "name=علی").await, 1);
    assert_eq!(count(&app, "name=کاظمی").await, 1);
    // The job is audited once.
    let audit: Value = app
        .get("/api/v1/audit?action=import.commit")
        .await
        .json()
        .await
        .expect("audit");
    assert_eq!(audit["items"].as_array().map(Vec::len), Some(1));
}

/// Lone CRs (old Mac files) end lines as LF and CRLF do: each row has its own line number, so a
/// repeated row is found and named with the row it repeats.
async fn a_csv_with_lone_cr_line_ends_is_numbered_by_line(app: TestApp) {
    let (n1, _) = two_neighbourhoods(&app).await;
    let h = household(&app, &n1).await;
    let body = format!(
        "{HEADER}\r{},زهرا,احمدی,1360-01-01,female,{h},head\r\
         {},زهرا,احمدی,1360-01-01,female,{h},head\r\
         1234567890,سارا,احمدی,1360-01-01,female,{h},child\r",
        national_id(30),
        national_id(30),
    );
    let job = upload(&app, "kind=persons&mode=commit&atomicity=rows", body).await;
    assert_eq!(
        (job["created"].as_i64(), job["failed"].as_i64()),
        (Some(1), Some(2))
    );
    assert_eq!(
        codes(&job),
        [
            (3, "duplicate_row".to_owned()),
            (4, "check_digit".to_owned())
        ]
    );
    assert!(
        job["errors"][0]["message"]
            .as_str()
            .expect("message")
            .contains("row 2 already"),
        "{job}"
    );
}

async fn bad_rows_are_reported_and_atomicity_decides_what_is_written(app: TestApp) {
    let (n1, _) = two_neighbourhoods(&app).await;
    let h = household(&app, &n1).await;
    let missing = "01936b2e-0000-7000-8000-000000000000";
    let rows = |first: u32| {
        format!(
            "{HEADER}\n{},زهرا,احمدی,1360-01-01,female,{h},head\n\
             1234567890,سارا,احمدی,1360-01-01,female,{h},child\n\
             {},زهرا,احمدی,1360-01-01,female,{h},head\n\
             {},,احمدی,1360-01-01,female,{h},child\n\
             {},لیلا,احمدی,1360-01-01,female,{missing},child\n\
             {},نرگس,احمدی,1360-01-01,female,{h},other,extra\n\
             {},فا\u{0}طمه,احمدی,1360-01-01,female,{h},other\n",
            national_id(first),
            national_id(first),
            national_id(first + 1),
            national_id(first + 2),
            national_id(first + 3),
            national_id(first + 4),
        )
    };
    // `all`: one bad row and nothing is written.
    let job = upload(&app, "kind=persons&mode=commit&atomicity=all", rows(10)).await;
    assert_eq!(job["state"], "completed");
    assert_eq!(job["created"], 0);
    assert_eq!(job["failed"], 6);
    assert!(
        job["message"]
            .as_str()
            .expect("message")
            .contains("nothing was written")
    );
    assert_eq!(count(&app, "").await, 0);

    // `rows`: the good row is written, the others reported with their line and code. The same
    // file is a new job: the one that was rolled back imported nothing.
    let job = upload(&app, "kind=persons&mode=commit&atomicity=rows", rows(10)).await;
    assert_eq!(job["created"], 1);
    assert_eq!(job["failed"], 6);
    assert_eq!(
        codes(&job),
        [
            (3, "check_digit".to_owned()),
            (4, "duplicate_row".to_owned()),
            (5, "required".to_owned()),
            (6, "not_found".to_owned()),
            (7, "field_count".to_owned()),
            // A NUL character, refused as the API refuses it (PostgreSQL cannot store it).
            (8, "nul_character".to_owned()),
        ]
    );
    assert_eq!(job["errors"][0]["column"], "national_id");
    assert_eq!(job["errors"][5]["column"], "first_name");
    assert_eq!(count(&app, "").await, 1);
    let csv = app
        .get(&format!(
            "/api/v1/imports/{}/errors",
            job["id"].as_str().expect("id")
        ))
        .await
        .text()
        .await
        .expect("csv");
    let lines: Vec<&str> = csv.trim_start_matches('\u{feff}').lines().collect();
    assert_eq!(lines[0], "row,column,code,message");
    assert_eq!(lines.len(), 7);
    assert!(
        lines[2].starts_with("4,national_id,duplicate_row,"),
        "{csv}"
    );
}

async fn headers_and_empty_files_are_checked(app: TestApp) {
    // A quote never closed would make the rest of the file one row, held in memory: the row
    // stops at 1 MiB with its error, and the rows before it are imported.
    let (n1, _) = two_neighbourhoods(&app).await;
    let h = household(&app, &n1).await;
    let endless = format!(
        "{HEADER}\n{},زهرا,احمدی,1360-01-01,female,{h},head\n{},\"علی\n{}\n",
        national_id(1),
        national_id(2),
        "ی".repeat(600_000)
    );
    let job = upload(&app, "kind=persons&mode=commit&atomicity=rows", endless).await;
    assert_eq!(job["state"], "completed", "{job}");
    assert_eq!(
        (job["created"].clone(), job["failed"].clone()),
        (json!(1), json!(1))
    );
    assert_eq!(codes(&job), [(3, "too_long".to_owned())]);
    // A column named like a formula is named in the errors CSV as text, not run by a spreadsheet.
    let formula = upload(
        &app,
        "kind=persons&mode=validate",
        format!("{HEADER},=1+2\n"),
    )
    .await;
    assert_eq!(codes(&formula), [(0, "unknown_column".to_owned())]);
    let csv = app
        .get(&format!(
            "/api/v1/imports/{}/errors",
            formula["id"].as_str().expect("id")
        ))
        .await
        .text()
        .await
        .expect("csv");
    assert!(csv.contains("\n0,'=1+2,unknown_column,"), "{csv}");
    let unknown = upload(
        &app,
        "kind=persons&mode=validate",
        format!("{HEADER},favourite_colour\n"),
    )
    .await;
    assert_eq!(unknown["state"], "failed");
    assert_eq!(codes(&unknown), [(0, "unknown_column".to_owned())]);
    assert!(
        unknown["errors"][0]["message"]
            .as_str()
            .expect("message")
            .contains("favourite_colour")
    );
    let missing = upload(
        &app,
        "kind=persons&mode=validate",
        "national_id,first_name\n0499370899,زهرا\n".to_owned(),
    )
    .await;
    assert_eq!(missing["state"], "failed");
    // Each required column the header lacks, by name.
    let named: Vec<(String, String)> = missing["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| {
            let text = |k: &str| e[k].as_str().unwrap_or_default().to_owned();
            (text("code"), text("column"))
        })
        .collect();
    let required = [
        "last_name",
        "birth_date",
        "sex",
        "household_id",
        "household_role",
    ];
    assert_eq!(
        named,
        required.map(|c| ("missing_column".to_owned(), c.to_owned())),
        "{missing}"
    );
    let empty = upload(&app, "kind=persons&mode=validate", String::new()).await;
    assert_eq!(empty["state"], "failed");
    assert_eq!(codes(&empty), [(0, "empty_file".to_owned())]);
    let header_only = upload(&app, "kind=persons&mode=commit", format!("{HEADER}\r\n")).await;
    assert_eq!(header_only["state"], "completed");
    assert_eq!(header_only["read"], 0);
    // JSON Lines: an empty file is refused alike; a byte-order mark is read past.
    let id = started(
        &app,
        "kind=persons&mode=validate",
        "application/x-ndjson",
        String::new(),
    )
    .await;
    let empty = finished(&app, &app.admin_token, &id).await;
    assert_eq!(codes(&empty), [(0, "empty_file".to_owned())]);
    let id = started(
        &app,
        "kind=persons&mode=validate",
        "application/x-ndjson",
        format!("\u{feff}{}\n", json!({"national_id": national_id(1)})),
    )
    .await;
    let bom = finished(&app, &app.admin_token, &id).await;
    // The row is read (its missing values are its errors), not refused as not JSON.
    assert_eq!(bom["read"], 1);
    assert!(
        codes(&bom)
            .iter()
            .all(|(row, code)| *row == 1 && code == "required"),
        "{bom}"
    );
    // Neither CSV nor JSON Lines.
    let refused = upload_as(
        &app,
        &app.admin_token,
        "kind=persons&mode=commit",
        "application/pdf",
        "x".to_owned(),
        None,
    )
    .await;
    problem(refused, 415).await;
    problem(
        upload_as(
            &app,
            &app.admin_token,
            "kind=cars&mode=commit",
            "text/csv",
            String::new(),
            None,
        )
        .await,
        400,
    )
    .await;
}

/// As `PATCH /persons/{id}`, an import's update leaves an optional field the row does not give
/// (no column, an empty cell) as it is.
async fn an_update_by_import_leaves_what_the_row_does_not_give(app: TestApp) {
    let (n1, _) = two_neighbourhoods(&app).await;
    let h = household(&app, &n1).await;
    let registered: Value = created(
        app.post_json(
            "/api/v1/persons",
            &json!({"national_id": national_id(1), "first_name": "زهرا", "last_name": "احمدی",
                    "birth_date": "1360-01-01", "sex": "female", "household_id": h,
                    "household_role": "head", "mobile": "09121234567", "education": "diploma"}),
        )
        .await,
    )
    .await;
    let path = format!("/api/v1/persons/{}", registered["id"].as_str().expect("id"));
    let row = |first: &str| {
        format!(
            "{},{first},احمدی,1360-01-01,female,{h},head",
            national_id(1)
        )
    };
    // The required columns only.
    let job = upload(
        &app,
        "kind=persons&mode=commit",
        format!("{HEADER}\n{}\n", row("زهره")),
    )
    .await;
    assert_eq!(job["updated"], 1, "{job}");
    let person = get_json(&app, &path).await;
    assert_eq!(
        (
            &person["first_name"],
            &person["mobile"],
            &person["education"]
        ),
        (&json!("زهره"), &json!("09121234567"), &json!("diploma"))
    );
    // An empty mobile is not given either; a new education is written.
    let job = upload(
        &app,
        "kind=persons&mode=commit",
        format!("{HEADER},mobile,education\n{},,bachelor\n", row("زهره")),
    )
    .await;
    assert_eq!(job["updated"], 1, "{job}");
    let person = get_json(&app, &path).await;
    assert_eq!(
        (&person["mobile"], &person["education"]),
        (&json!("09121234567"), &json!("bachelor"))
    );
    // What it gives and what is stored agree: unchanged.
    let job = upload(
        &app,
        "kind=persons&mode=commit",
        format!("{HEADER},education\n{},bachelor\n", row("زهره")),
    )
    .await;
    assert_eq!(
        (job["updated"].clone(), job["unchanged"].clone()),
        (json!(0), json!(1)),
        "{job}"
    );
}

/// A person row writes only the version it read: a change made between the import's read and
/// its write (here by a trigger on the row before it, standing in for a `PATCH` at that moment)
/// is kept, and the row is reported as `conflict`, not written over it.
async fn a_person_changed_while_imported_is_not_overwritten(app: TestApp) {
    let (n1, _) = two_neighbourhoods(&app).await;
    let h = household(&app, &n1).await;
    let mut ids = Vec::new();
    for (n, role) in [(1, "head"), (2, "child")] {
        let person = created(
            app.post_json(
                "/api/v1/persons",
                &json!({"national_id": national_id(n), "first_name": "زهرا", "last_name": "احمدی",
                        "birth_date": "1360-01-01", "sex": "female", "household_id": h,
                        "household_role": role}),
            )
            .await,
        )
        .await;
        ids.push(person["id"].as_str().expect("id").to_owned());
    }
    let (first, second) = (&ids[0], &ids[1]);
    let meanwhile = format!(
        "UPDATE persons SET first_name = 'ساره', version = version + 1 WHERE id = '{second}'"
    );
    let trigger = if app.db.backend_name() == "postgres" {
        format!(
            "CREATE FUNCTION meanwhile() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN {meanwhile}; RETURN NULL; END $$;
             CREATE TRIGGER meanwhile AFTER UPDATE ON persons FOR EACH ROW
             WHEN (NEW.id = '{first}') EXECUTE FUNCTION meanwhile();"
        )
    } else {
        format!(
            "CREATE TRIGGER meanwhile AFTER UPDATE ON persons WHEN NEW.id = '{first}'
             BEGIN {meanwhile}; END;"
        )
    };
    execute(&app, trigger).await;
    let row =
        |n: u32, role: &str| format!("{},مریم,احمدی,1360-01-01,female,{h},{role}", national_id(n));
    let job = upload(
        &app,
        "kind=persons&mode=commit&atomicity=rows",
        format!("{HEADER}\n{}\n{}\n", row(1, "head"), row(2, "child")),
    )
    .await;
    assert_eq!(job["updated"], 1, "{job}");
    assert_eq!(codes(&job), [(3, "conflict".to_owned())]);
    let kept = get_json(&app, &format!("/api/v1/persons/{}", ids[1])).await;
    assert_eq!(
        (&kept["first_name"], &kept["version"]),
        (&json!("ساره"), &json!(2))
    );
}

/// A second head of a household is refused with the API's code (`POST /persons` answers 409
/// `exists`), whether the first one is registered already or comes earlier in the file.
async fn a_second_head_is_refused_as_the_api_refuses_it(app: TestApp) {
    let (n1, _) = two_neighbourhoods(&app).await;
    let (h1, h2) = (household(&app, &n1).await, household(&app, &n1).await);
    let head =
        |n: u32, h: &str| format!("{},زهرا,احمدی,1360-01-01,female,{h},head", national_id(n));
    let job = upload(
        &app,
        "kind=persons&mode=commit&atomicity=rows",
        format!("{HEADER}\n{}\n{}\n", head(1, &h1), head(2, &h1)),
    )
    .await;
    assert_eq!(codes(&job), [(3, "exists".to_owned())]);
    assert_eq!(job["errors"][0]["column"], "household_role");
    let job = upload(
        &app,
        "kind=persons&mode=commit&atomicity=rows",
        format!("{HEADER}\n{}\n{}\n", head(3, &h1), head(4, &h2)),
    )
    .await;
    assert_eq!(codes(&job), [(2, "exists".to_owned())]);
    assert_eq!(job["created"], 1);
}

/// A person registered (through the API, say) while an import of her row runs, after the import
/// looked for her: on PostgreSQL the import's insert waits for that registration's transaction
/// and then fails on the unique index. The batch is tried again and finds her registered, as the
/// next upload would; the job is not stopped. (On SQLite the import waits for the write lock
/// before it looks, and finds her the first time.)
async fn a_person_registered_while_her_row_is_imported_is_found_not_a_stop(app: TestApp) {
    let (n1, _) = two_neighbourhoods(&app).await;
    let h = household(&app, &n1).await;
    let row = |n: u32| format!("{},زهرا,احمدی,1360-01-01,female,{h},child", national_id(n));
    // 1360-01-01 is 1981-03-21: the same person as the file's row.
    let register = format!(
        "INSERT INTO persons (id, national_id, first_name, last_name, first_name_normalised,
             last_name_normalised, birth_date, sex, household_id, household_role,
             neighbourhood_id, version, created_at, updated_at)
         VALUES ('{}', '{}', 'زهرا', 'احمدی', 'زهرا', 'احمدی', '1981-03-21', 'female', '{h}',
             'child', '{}', 1, '2026-01-01 00:00:00', '2026-01-01 00:00:00')",
        uuid::Uuid::now_v7(),
        national_id(2),
        id(&n1)
    );
    let job = imported_while_written(
        &app,
        register,
        "kind=persons&mode=commit&atomicity=rows",
        format!("{HEADER}\n{}\n{}\n{}\n", row(1), row(2), row(3)),
    )
    .await;
    assert_eq!(job["state"], "completed", "{job}");
    assert_eq!(
        ["read", "created", "updated", "unchanged", "failed"].map(|k| job[k].as_i64()),
        [3, 2, 0, 1, 0].map(Some),
        "{job}"
    );
    assert_eq!(
        count(&app, &format!("national_id={}", national_id(2))).await,
        1
    );
    assert_eq!(count(&app, &format!("household_id={h}")).await, 3);
}

/// Starts a job as an administrator while `sql` is written on another connection, in a
/// transaction held open until the job waits for it (on PostgreSQL, where the job's reads do not
/// see it and its write waits on the unique index; on SQLite, where the job waits for the write
/// lock before it reads, for 300 ms); then the job's end.
pub(crate) async fn imported_while_written(
    app: &TestApp,
    sql: String,
    query: &str,
    body: String,
) -> Value {
    let postgres = app.db.backend_name() == "postgres";
    let (written, is_written) = std::sync::mpsc::channel();
    let (commit, to_commit) = std::sync::mpsc::channel::<()>();
    let db = app.db.clone();
    let writer = std::thread::spawn(move || {
        let mut conn = db.get().expect("connection");
        let begin = if postgres { "BEGIN" } else { "BEGIN IMMEDIATE" };
        run_sql(&mut conn, &format!("{begin}; {sql}"));
        let pid = match &mut *conn {
            tavana_persistence::DbConnection::Pg(pg) => backend_count(pg, "pg_backend_pid()"),
            tavana_persistence::DbConnection::Sqlite(_) => 0,
        };
        written.send(pid).expect("told");
        if postgres {
            to_commit.recv().expect("told to commit");
        } else {
            // The upload's own write waits for this lock too: the transaction ends by itself.
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
        run_sql(&mut conn, "COMMIT");
    });
    let writer_pid = is_written.recv().expect("written");

    let job_id = started(app, query, "text/csv", body).await;
    if postgres {
        // Until the job waits for the transaction (and not any other session on the server).
        let db = app.db.clone();
        let waiting = move || {
            let mut conn = db.get().expect("connection");
            let tavana_persistence::DbConnection::Pg(pg) = &mut *conn else {
                unreachable!("postgres")
            };
            backend_count(
                pg,
                &format!(
                    "(SELECT count(*) FROM pg_stat_activity WHERE {writer_pid} = ANY(pg_blocking_pids(pid)))"
                ),
            )
        };
        let mut tries = 0;
        while tokio::task::spawn_blocking(waiting.clone())
            .await
            .expect("joined")
            == 0
        {
            tries += 1;
            assert!(tries < 400, "the job never waited for the transaction");
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        commit.send(()).expect("told");
    }
    writer.join().expect("written");

    finished(app, &app.admin_token, &job_id).await
}

/// A number the server computes (`expression`, an integer).
fn backend_count(pg: &mut diesel::PgConnection, expression: &str) -> i64 {
    use diesel::RunQueryDsl;
    diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(&format!(
        "({expression})::bigint"
    )))
    .get_result(pg)
    .unwrap_or_else(|e| panic!("{expression}: {e}"))
}

async fn a_merged_record_is_not_updated_by_its_national_id(app: TestApp) {
    let (n1, _) = two_neighbourhoods(&app).await;
    let (kept, twin) = (
        person(&app, &n1, 1, "1360-01-01").await,
        person(&app, &n1, 2, "1360-01-01").await,
    );
    let merged = app
        .post_json(
            &format!("/api/v1/persons/{}/merge", id(&kept)),
            &json!({"from": twin["id"]}),
        )
        .await;
    assert_eq!(merged.status(), 200);
    // The API refuses the merged record's national ID and names the person it went into.
    let again = app
        .post_json(
            "/api/v1/persons",
            &json!({"national_id": national_id(2), "first_name": "زهرا", "last_name": "احمدی",
                    "birth_date": "1360-01-01", "sex": "female", "household_id": kept["household_id"],
                    "household_role": "other", "member_since": "1390-01-01"}),
        )
        .await;
    let again = problem(again, 409).await;
    assert_eq!(again["existing_id"], kept["id"], "{again}");
    // So does the import, in the row: not "another household", and nothing written.
    let job = upload(
        &app,
        "kind=persons&mode=commit&atomicity=rows",
        format!(
            "{HEADER}\n{},مریم,احمدی,1361-01-01,female,{},other\n",
            national_id(2),
            kept["household_id"].as_str().expect("household")
        ),
    )
    .await;
    assert_eq!(codes(&job), [(2, "exists".to_owned())], "{job}");
    assert_eq!(job["errors"][0]["column"], "national_id");
    let message = job["errors"][0]["message"].as_str().expect("message");
    assert!(message.contains(id(&kept)), "{message}");
    let twin_now = get_json(&app, &format!("/api/v1/persons/{}", id(&twin))).await;
    assert_eq!(twin_now["first_name"], twin["first_name"]);
}

async fn validation_writes_nothing_and_a_rerun_imports_nothing_twice(app: TestApp) {
    let (n1, _) = two_neighbourhoods(&app).await;
    let h = household(&app, &n1).await;
    let file = |last: &str| {
        format!(
            "{HEADER}\n{},زهرا,{last},1360-01-01,female,{h},head\n{},علی,احمدی,1385-01-01,male,{h},child\n",
            national_id(1),
            national_id(2)
        )
    };
    let validated = upload(&app, "kind=persons&mode=validate", file("احمدی")).await;
    assert_eq!(validated["created"], 2);
    assert_eq!(validated["message"], "validated; nothing was written");
    assert_eq!(count(&app, "").await, 0);

    let first = upload(&app, "kind=persons&mode=commit", file("احمدی")).await;
    assert_eq!(first["created"], 2);
    // The same file again: the earlier job, nothing imported twice.
    let again = upload_as(
        &app,
        &app.admin_token,
        "kind=persons&mode=commit",
        "text/csv",
        file("احمدی"),
        None,
    )
    .await;
    assert_eq!(again.status(), 200);
    assert_eq!(again.json::<Value>().await.expect("job")["id"], first["id"]);
    assert_eq!(count(&app, "").await, 2);
    // The same Idempotency-Key: the first job for the same file; another file with it is refused.
    let keyed = upload_as(
        &app,
        &app.admin_token,
        "kind=persons&mode=commit",
        "text/csv",
        file("کریمی"),
        Some("import-1"),
    )
    .await;
    assert_eq!(keyed.status(), 202);
    let keyed: Value = keyed.json().await.expect("job");
    let keyed = finished(&app, &app.admin_token, keyed["id"].as_str().expect("id")).await;
    // Matched by national ID: one updated, one unchanged.
    assert_eq!(
        (
            keyed["created"].clone(),
            keyed["updated"].clone(),
            keyed["unchanged"].clone()
        ),
        (json!(0), json!(1), json!(1))
    );
    let replay = upload_as(
        &app,
        &app.admin_token,
        "kind=persons&mode=commit",
        "text/csv",
        file("کریمی"),
        Some("import-1"),
    )
    .await;
    assert_eq!(replay.status(), 200);
    assert_eq!(
        replay.json::<Value>().await.expect("job")["id"],
        keyed["id"]
    );
    for (query, body) in [
        ("kind=persons&mode=commit", file("رضایی")),
        ("kind=persons&mode=validate", file("کریمی")),
        ("kind=persons&mode=commit&atomicity=rows", file("کریمی")),
    ] {
        let reused = upload_as(
            &app,
            &app.admin_token,
            query,
            "text/csv",
            body,
            Some("import-1"),
        )
        .await;
        let refused = problem(reused, 422).await;
        assert_eq!(refused["errors"][0]["code"], "reused", "{refused}");
    }
    assert_eq!(count(&app, "name=کریمی").await, 1);
    assert_eq!(count(&app, "name=رضایی").await, 0);
}

async fn json_lines_are_imported_and_scope_applies(app: TestApp) {
    let (n1, n2) = two_neighbourhoods(&app).await;
    let h1 = household(&app, &n1).await;
    let h2 = household(&app, &n2).await;
    let body = [
        json!({"national_id": national_id(1), "first_name": "زهرا", "last_name": "احمدی", "birth_date": "1360-01-01", "sex": "female", "household_id": h2, "household_role": "head"}).to_string(),
        String::new(),
        json!({"national_id": national_id(2), "first_name": "سارا", "last_name": "احمدی", "birth_date": "1360-01-01", "sex": "female", "household_id": h1, "household_role": "head"}).to_string(),
        json!({"national_id": national_id(3), "nickname": "x"}).to_string(),
        "not json".to_owned(),
        // A list or an object is not a value: the API refuses one in its body too.
        json!({"national_id": national_id(5), "first_name": {"given": "زهرا"}, "last_name": "احمدی", "birth_date": "1360-01-01", "sex": "female", "household_id": h2, "household_role": "other"}).to_string(),
    ]
    .join("\n")
    .into_bytes();
    // A line that is not UTF-8 is its row's error, and the rows after it are read (CRLF too).
    let mut body = body;
    body.extend_from_slice(b"\n{\"national_id\": \"\xff\"}\r\n");
    body.extend_from_slice(
        json!({"national_id": national_id(4), "first_name": "مریم", "last_name": "احمدی", "birth_date": "1360-01-01", "sex": "female", "household_id": h2, "household_role": "other"}).to_string().as_bytes(),
    );
    body.extend_from_slice(b"\r\n");
    // A facilitator of n2 imports: the household of n1 is not theirs.
    let facilitator = facilitator_token(&app, "fatemeh", &n2).await;
    let response = upload_as(
        &app,
        &facilitator,
        "kind=persons&mode=commit&atomicity=rows",
        "application/x-ndjson",
        body,
        None,
    )
    .await;
    assert_eq!(response.status(), 202);
    let job: Value = response.json().await.expect("job");
    let job = finished(&app, &facilitator, job["id"].as_str().expect("id")).await;
    assert_eq!(job["created"], 2, "{job}");
    assert_eq!(
        codes(&job),
        [
            (3, "not_found".to_owned()),
            (4, "unknown_column".to_owned()),
            (5, "json".to_owned()),
            (6, "format".to_owned()),
            (7, "encoding".to_owned()),
        ]
    );
    // Another caller does not see the job nor its errors; partners may not import.
    let other = facilitator_token(&app, "other", &n2).await;
    let path = format!("/api/v1/imports/{}", job["id"].as_str().expect("id"));
    for path in [path.clone(), format!("{path}/errors")] {
        problem(app.get_as(&other, &path).await, 404).await;
    }
    // Its owner reads its errors.
    let response = app.get_as(&facilitator, &format!("{path}/errors")).await;
    assert_eq!(response.status(), 200);
    let csv = response.text().await.expect("csv");
    assert_eq!(csv.lines().count(), 6, "{csv}");
    let partner = app.mint(Role::Partner).await;
    problem(
        upload_as(
            &app,
            &partner,
            "kind=persons&mode=commit",
            "text/csv",
            String::new(),
            None,
        )
        .await,
        403,
    )
    .await;
}

/// What Excel writes: an empty column after the last one used, rows of empty cells where rows
/// were cleared, and (saved as plain "CSV" on a Persian Windows) text in the Windows Arabic code
/// page instead of UTF-8.
async fn files_as_spreadsheets_save_them_are_read_as_meant(app: TestApp) {
    let (n1, _) = two_neighbourhoods(&app).await;
    let h = household(&app, &n1).await;
    // A cleared row before the header, too.
    let mut body = format!(
        ",,,\r\n{HEADER},\r\n{},زهرا,احمدی,1360-01-01,female,{h},head,\r\n,,,,,,,\r\n\
         {},سارا,احمدی,1360-01-01,female,{h},child,lost\r\n , ,,,,,,\r\n{},",
        national_id(40),
        national_id(41),
        national_id(42),
    )
    .into_bytes();
    // «زهرا» and «احمدی» in Windows-1256.
    body.extend_from_slice(b"\xd2\xe5\xd1\xc7,\xc7\xcd\xe3\xcf\xed");
    body.extend_from_slice(format!(",1360-01-01,female,{h},child,\r\n").as_bytes());
    let id = started(
        &app,
        "kind=persons&mode=commit&atomicity=rows",
        "text/csv",
        body,
    )
    .await;
    let job = finished(&app, &app.admin_token, &id).await;
    // The rows of empty cells are passed over as blank lines: not read, not failed.
    assert_eq!(
        (
            job["read"].as_i64(),
            job["created"].as_i64(),
            job["failed"].as_i64()
        ),
        (Some(3), Some(1), Some(2)),
        "{job}"
    );
    assert_eq!(
        codes(&job),
        [(5, "unknown_column".to_owned()), (7, "encoding".to_owned())]
    );
    // A value under no name is not dropped unseen; the encoding is named with its column.
    assert_eq!(job["errors"][0]["column"], "column 8");
    assert_eq!(job["errors"][1]["column"], "first_name");
    assert!(
        job["errors"][1]["message"]
            .as_str()
            .is_some_and(|m| m.contains("CSV UTF-8")),
        "{job}"
    );
}

/// A file may come compressed (`Content-Encoding`), and is then the same file as uncompressed;
/// one declared in a character set other than UTF-8 is refused before it is read, as is one
/// that says it is larger than the limit.
async fn files_sent_compressed_or_in_another_charset(app: TestApp) {
    use std::io::Write as _;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let (n1, _) = two_neighbourhoods(&app).await;
    let h = household(&app, &n1).await;
    let file = format!(
        "{HEADER}\n{},زهرا,احمدی,1360-01-01,female,{h},head\n",
        national_id(50)
    );
    let gzip = |text: &str| {
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gzip.write_all(text.as_bytes()).expect("compressed");
        gzip.finish().expect("compressed")
    };
    let query = "kind=persons&mode=commit&atomicity=rows";
    let sent = |content_type: &'static str, encoding: &'static str, body: Vec<u8>| {
        app.client
            .post(app.url(&format!("/api/v1/imports?{query}")))
            .bearer_auth(&app.admin_token)
            .header("content-type", content_type)
            .header("content-encoding", encoding)
            .body(body)
            .send()
    };
    let response = sent("text/csv; charset=UTF-8", "gzip", gzip(&file))
        .await
        .expect("sent");
    assert_eq!(response.status(), 202);
    let job: Value = response.json().await.expect("job");
    let id = job["id"].as_str().expect("id").to_owned();
    let job = finished(&app, &app.admin_token, &id).await;
    assert_eq!(
        (job["created"].as_i64(), job["failed"].as_i64()),
        (Some(1), Some(0)),
        "{job}"
    );
    // The same file sent as it is: the job that imported it, nothing twice.
    let again = upload_as(
        &app,
        &app.admin_token,
        query,
        "text/csv",
        file.clone(),
        None,
    )
    .await;
    assert_eq!(again.status(), 200);
    assert_eq!(again.json::<Value>().await.expect("job")["id"], id.as_str());
    assert_eq!(count(&app, "").await, 1);

    for content_type in [
        "text/csv; charset=windows-1256",
        "text/csv;charset=\"cp1256\"",
    ] {
        let refused = upload_as(
            &app,
            &app.admin_token,
            query,
            content_type,
            file.clone(),
            None,
        )
        .await;
        let body = problem(refused, 415).await;
        assert!(
            body["detail"].as_str().is_some_and(|d| d.contains("UTF-8")),
            "{body}"
        );
    }
    // ASCII is UTF-8: the same file again, imported already.
    let ascii = upload_as(
        &app,
        &app.admin_token,
        query,
        "text/csv; charset=US-ASCII",
        file.clone(),
        None,
    )
    .await;
    assert_eq!(ascii.status(), 200);
    for encoding in ["compress", "br"] {
        problem(
            sent("text/csv", encoding, file.clone().into_bytes())
                .await
                .expect("sent"),
            415,
        )
        .await;
    }
    // A compressed file cut short is refused, not imported as a shorter file.
    let other = format!(
        "{HEADER}\n{},سارا,احمدی,1360-01-01,female,{h},child\n",
        national_id(51)
    );
    let mut cut = gzip(&other);
    cut.truncate(cut.len() / 2);
    let refused = problem(sent("text/csv", "gzip", cut).await.expect("sent"), 400).await;
    assert!(
        refused["detail"]
            .as_str()
            .is_some_and(|d| d.contains("cannot be unpacked")),
        "{refused}"
    );
    assert_eq!(count(&app, "").await, 1);

    // A file of 3 GiB is refused on its length, before a byte of it is sent.
    let address = app.address.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connected");
    let head = format!(
        "POST /api/v1/imports?{query} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: text/csv\r\nContent-Length: 3221225472\r\n\r\n",
        app.admin_token
    );
    stream.write_all(head.as_bytes()).await.expect("sent");
    let mut answer = vec![0; 12];
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_exact(&mut answer),
    )
    .await
    .expect("answered without the body")
    .expect("read");
    assert_eq!(String::from_utf8_lossy(&answer), "HTTP/1.1 413");
}

/// JSON Lines keys are read as CSV headers are (in any case, spaces trimmed), and a key given
/// twice in one object is refused as a repeated CSV column is, not read as its last value.
async fn json_lines_keys_are_read_as_csv_headers_are(app: TestApp) {
    let (n1, _) = two_neighbourhoods(&app).await;
    let h = household(&app, &n1).await;
    let body = [
        json!({"National_ID": national_id(60), " first_name ": "زهرا", "LAST_NAME": "احمدی", "birth_date": "1360-01-01", "sex": "female", "household_id": h, "household_role": "head"}).to_string(),
        format!(
            r#"{{"national_id": "{}", "national_id": "{}", "first_name": "سارا", "last_name": "احمدی", "birth_date": "1360-01-01", "sex": "female", "household_id": "{h}", "household_role": "child"}}"#,
            national_id(61),
            national_id(62)
        ),
        "[1, 2]".to_owned(),
    ]
    .join("\n");
    let query = "kind=persons&mode=commit&atomicity=rows";
    let id = started(&app, query, "application/x-ndjson", body).await;
    let job = finished(&app, &app.admin_token, &id).await;
    assert_eq!(job["created"], 1, "{job}");
    assert_eq!(
        codes(&job),
        [(2, "repeated_column".to_owned()), (3, "json".to_owned())]
    );
    assert_eq!(job["errors"][0]["column"], "national_id");
    assert_eq!(count(&app, "").await, 1);
}

async fn an_interrupted_import_resumes_without_duplicates(app: TestApp) {
    interrupted_and_resumed(app, None).await;
}

/// The stop comes while a transaction that holds the first batch reads the second: the first is
/// committed all the same (SQLite's transactions take batches for two seconds).
async fn a_stop_inside_a_transaction_of_several_batches_keeps_the_batches_before_it(app: TestApp) {
    interrupted_and_resumed(app, Some(std::time::Duration::from_secs(600))).await;
}

/// Imports a batch and a part, stops while reading the part, and resumes. `hold`: how long one
/// transaction takes batches (`imports::Tuning`); `None` for the service's own measure.
async fn interrupted_and_resumed(app: TestApp, hold: Option<std::time::Duration>) {
    let (n1, _) = two_neighbourhoods(&app).await;
    let h = household(&app, &n1).await;
    // One batch and a part: the stop comes while the second batch is being read.
    let batch = u32::try_from(imports::BATCH).expect("batch");
    let (total, stop_at) = (batch + 1000, batch + 700);
    let rows: Vec<String> = (1..=total)
        .map(|n| format!("{},زهرا,احمدی,1360-01-01,female,{h},other", national_id(n)))
        .collect();
    let dir = std::env::temp_dir().join("tavana-test-imports");
    std::fs::create_dir_all(&dir).expect("folder");
    let id = uuid::Uuid::now_v7().to_string();
    let path = dir.join(format!("{id}.csv"));
    std::fs::write(&path, format!("{HEADER}\n{}\n", rows.join("\n"))).expect("file");

    // The service stops while reading the second batch: the first had committed.
    let db = app.db.clone();
    let job_id = id.clone();
    let file = path.to_string_lossy().into_owned();
    let h2 = h.clone();
    let stopped = tokio::task::spawn_blocking(move || {
        start_job(&db, &job_id, file);
        let mut rows =
            then_the_disk_goes((1..=stop_at).map(|n| person_row(i64::from(n) + 1, n, &h2)));
        run_today(
            &db,
            &job_id,
            &mut rows,
            imports::Tuning {
                hold,
                ..Default::default()
            },
        )
    })
    .await
    .expect("joined");
    assert!(stopped.is_err());
    let job = job_of(&app, &id).await;
    assert_eq!(job["state"], "interrupted");
    assert_eq!(job["read"], batch);
    assert_eq!(job["created"], batch);
    // What it wrote is audited as it stops, whether or not it is ever resumed.
    let events = get_json(&app, "/api/v1/audit?action=import.interrupted").await;
    assert_eq!(
        events["items"].as_array().map(Vec::len),
        Some(1),
        "{events}"
    );
    assert_eq!(events["items"][0]["entity_id"], id.as_str());
    assert_eq!(events["items"][0]["after"]["created"], batch);

    // Resumed (by an administrator), it goes on after the first batch and ends with each row once.
    // Of resumes sent at once, one runs the job; the others find it running.
    let (resume, empty) = (format!("/api/v1/imports/{id}/resume"), json!({}));
    let resumes =
        futures_util::future::join_all((0..4).map(|_| app.post_json(&resume, &empty))).await;
    let mut statuses: Vec<u16> = resumes.iter().map(|r| r.status().as_u16()).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, [202, 409, 409, 409]);
    let job = finished(&app, &app.admin_token, &id).await;
    assert_eq!(job["state"], "completed", "{job}");
    assert_eq!(job["read"], total);
    assert_eq!(job["created"], total);
    assert_eq!(job["failed"], 0);
    assert_eq!(crate::training::audit_count(&app, "import.commit").await, 1);
    // Done with, the spooled copy goes.
    let since = std::time::Instant::now();
    while path.exists() {
        assert!(
            since.elapsed() < std::time::Duration::from_secs(10),
            "spooled copy left"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let mut listed = 0;
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/persons?limit=200&cursor={c}"),
            None => "/api/v1/persons?limit=200".to_owned(),
        };
        let page: Value = app.get(&path).await.json().await.expect("page");
        listed += page["items"].as_array().map_or(0, Vec::len);
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(listed, total as usize);
    // A completed job cannot be resumed.
    problem(
        app.post_json(&format!("/api/v1/imports/{id}/resume"), &json!({}))
            .await,
        409,
    )
    .await;
}

/// A job of `tavana import` reads the administrator's own file: resumed through the API, it
/// leaves that file where it is (only an upload's spooled copy is the service's to remove).
async fn a_resumed_job_of_the_command_line_leaves_its_file(app: TestApp) {
    let (n1, _) = two_neighbourhoods(&app).await;
    let h = household(&app, &n1).await;
    let folder = tempfile::tempdir().expect("folder");
    let path = folder.path().join("register.csv");
    let row = |n: u32| format!("{},زهرا,احمدی,1360-01-01,female,{h},other", national_id(n));
    std::fs::write(&path, format!("{HEADER}\n{}\n{}\n", row(1), row(2))).expect("file");
    let id = uuid::Uuid::now_v7().to_string();
    let (db, job_id, file) = (
        app.db.clone(),
        id.clone(),
        path.to_string_lossy().into_owned(),
    );
    let stopped = tokio::task::spawn_blocking(move || {
        start_job(&db, &job_id, file);
        run_today(
            &db,
            &job_id,
            &mut then_the_disk_goes(std::iter::empty()),
            Default::default(),
        )
    })
    .await
    .expect("joined");
    assert!(stopped.is_err());
    let response = app
        .post_json(&format!("/api/v1/imports/{id}/resume"), &json!({}))
        .await;
    assert_eq!(response.status(), 202);
    let job = finished(&app, &app.admin_token, &id).await;
    assert_eq!(job["created"], 2, "{job}");
    // A removal would follow the job's end at once.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(path.exists());
}

/// A user's job runs with the user's rights as they stand when it runs (a resumed job too), not
/// as they were at the upload, as the API judges each request: a programme manager made a
/// facilitator since imports only into her neighbourhoods; made a trainer (who may not write
/// persons), or deactivated, her job is stopped with the reason, and she may not resume it.
async fn a_users_job_runs_with_the_users_rights_as_they_are_now(app: TestApp) {
    let (n1, n2) = two_neighbourhoods(&app).await;
    let (h1, h2) = (household(&app, &n1).await, household(&app, &n2).await);
    let password = "a long enough password";
    let area = n1["id"].as_str().expect("id").parse().expect("area id");
    let user = app
        .create_user("maryam", Role::Facilitator, password, vec![area])
        .await
        .id
        .to_string();
    // Started while she was a programme manager (city-wide), as the upload records it.
    let start = |id: &str| {
        let mut conn = app.db.get().expect("connection");
        imports::start(
            &mut conn,
            users_job(id, &user, Role::ProgrammeManager, "unread"),
        )
        .expect("job");
    };
    let run = |id: &str, rows: Vec<Result<Row, StoreError>>| {
        let (db, id) = (app.db.clone(), id.to_owned());
        tokio::task::spawn_blocking(move || {
            run_today(&db, &id, &mut rows.into_iter(), Default::default())
        })
    };

    // Her job, run with a row of hers: stopped, nothing written, the reason given.
    let refused_as = async |id: &str, why: &str| {
        let refused = run(id, vec![person_row(2, 3, &h1)]).await.expect("joined");
        assert!(
            matches!(refused, Err(StoreError::Forbidden(_))),
            "{refused:?}"
        );
        let job = job_of(&app, id).await;
        assert_eq!(
            (&job["state"], &job["created"]),
            (&json!("interrupted"), &json!(0))
        );
        assert!(
            job["message"].as_str().is_some_and(|m| m.contains(why)),
            "{job}"
        );
    };

    // Now a facilitator of the first neighbourhood: the second's household is out of her scope.
    let first = uuid::Uuid::now_v7().to_string();
    start(&first);
    let job = run(&first, vec![person_row(2, 1, &h1), person_row(3, 2, &h2)])
        .await
        .expect("joined")
        .expect("ran");
    assert_eq!((job.created, job.failed), (1, 1));
    assert_eq!(
        codes(&job_of(&app, &first).await),
        [(3, "not_found".to_owned())]
    );

    // Now a trainer: her job is stopped, and she may not resume it.
    execute(
        &app,
        format!("UPDATE users SET role = 'trainer' WHERE id = '{user}'"),
    )
    .await;
    let second = uuid::Uuid::now_v7().to_string();
    start(&second);
    refused_as(&second, "now trainer").await;
    let tokens: Value = app
        .login("maryam", password)
        .await
        .json()
        .await
        .expect("tokens");
    let trainer = tokens["access_token"].as_str().expect("token");
    let response = app
        .client
        .post(app.url(&format!("/api/v1/imports/{second}/resume")))
        .bearer_auth(trainer)
        .send()
        .await
        .expect("sent");
    problem(response, 403).await;
    // An administrator may resume anyone's job, of rows she may not write herself: it runs as
    // whoever started it (here it finds no file, and stops again).
    let attendance = uuid::Uuid::now_v7().to_string();
    {
        let mut conn = app.db.get().expect("connection");
        imports::start(
            &mut conn,
            NewJob {
                kind: ImportKind::Attendance,
                ..users_job(&attendance, &user, Role::Trainer, "/nonexistent/sheet.csv")
            },
        )
        .expect("job");
        assert!(imports::stopped(&mut conn, &attendance, "the server stopped").expect("marked"));
    }
    // Another user (not an administrator) may not resume her job: 404, and it stays as it was.
    let before = job_of(&app, &attendance).await;
    let other = facilitator_token(&app, "other", &n1).await;
    let response = app
        .client
        .post(app.url(&format!("/api/v1/imports/{attendance}/resume")))
        .bearer_auth(&other)
        .send()
        .await
        .expect("sent");
    problem(response, 404).await;
    assert_eq!(job_of(&app, &attendance).await, before);
    assert_eq!(before["state"], "interrupted", "{before}");
    let response = app
        .post_json(&format!("/api/v1/imports/{attendance}/resume"), &json!({}))
        .await;
    assert_eq!(response.status(), 202);
    let job = finished(&app, &app.admin_token, &attendance).await;
    assert_eq!(job["state"], "interrupted", "{job}");

    // A facilitator again but deactivated: still stopped.
    let no = if app.db.backend_name() == "postgres" {
        "false"
    } else {
        "0"
    };
    execute(
        &app,
        format!("UPDATE users SET role = 'facilitator', active = {no} WHERE id = '{user}'"),
    )
    .await;
    {
        let mut conn = app.db.get().expect("connection");
        imports::resume(&mut conn, &second, None).expect("resumed");
    }
    refused_as(&second, "no longer active").await;
}

/// Sets job `id` running (or last touched) long ago, as one whose runner stopped and could not
/// record it (the database was away then).
async fn aged(app: &TestApp, id: &str) {
    execute(
        app,
        format!("UPDATE import_jobs SET updated_at = '2000-01-01 00:00:00' WHERE id = '{id}'"),
    )
    .await;
}

/// Runs `sql` on the test's database, whichever backend it is.
async fn execute(app: &TestApp, sql: String) {
    let db = app.db.clone();
    tokio::task::spawn_blocking(move || run_sql(&mut db.get().expect("connection"), &sql))
        .await
        .expect("joined");
}

fn run_sql(conn: &mut tavana_persistence::DbConnection, sql: &str) {
    use diesel::connection::SimpleConnection;
    match conn {
        tavana_persistence::DbConnection::Sqlite(c) => c.batch_execute(sql),
        tavana_persistence::DbConnection::Pg(c) => c.batch_execute(sql),
    }
    .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// A job left `running` by a runner that stopped without recording it (the database was away
/// as it stopped) is resumed: it holds no run lock. One set running a moment ago is left to the
/// runner it was handed to, and one whose runner holds its lock is that runner's, however old.
async fn a_job_left_running_by_a_runner_that_is_gone_is_resumed(app: TestApp) {
    let (n1, _) = two_neighbourhoods(&app).await;
    let h = household(&app, &n1).await;
    let folder = tempfile::tempdir().expect("folder");
    let path = folder.path().join("register.csv");
    let row = |n: u32| format!("{},زهرا,احمدی,1360-01-01,female,{h},other", national_id(n));
    std::fs::write(&path, format!("{HEADER}\n{}\n{}\n", row(11), row(12))).expect("file");
    let resume = |id: &str| {
        app.client
            .post(app.url(&format!("/api/v1/imports/{id}/resume")))
            .bearer_auth(&app.admin_token)
            .send()
    };

    let left = uuid::Uuid::now_v7().to_string();
    start_job(&app.db, &left, path.to_string_lossy().into_owned());
    problem(resume(&left).await.expect("sent"), 409).await;
    aged(&app, &left).await;
    // Of resumes sent at once, one takes it: to the others it is running, a moment ago.
    let resumes = futures_util::future::join_all((0..4).map(|_| resume(&left))).await;
    let mut statuses: Vec<u16> = resumes
        .iter()
        .map(|r| r.as_ref().expect("sent").status().as_u16())
        .collect();
    statuses.sort_unstable();
    assert_eq!(statuses, [202, 409, 409, 409]);
    let job = finished(&app, &app.admin_token, &left).await;
    assert_eq!(
        (&job["state"], &job["created"]),
        (&json!("completed"), &json!(2)),
        "{job}"
    );

    let held = uuid::Uuid::now_v7().to_string();
    start_job(&app.db, &held, String::new());
    let (runner, go_on) = paused_runner(&app, &held, &h, 1);
    aged(&app, &held).await;
    problem(resume(&held).await.expect("sent"), 409).await;
    go_on.send(()).expect("going on");
    let job = runner.join().expect("runner").expect("ran");
    assert_eq!((job.state.as_str(), job.created), ("completed", 1));
}

/// The same file uploaded again, of a job that stopped before its end, resumes that job from the
/// new copy: the first copy may be lost (on another replica's disk, say), and `POST …/resume`
/// cannot bring it back. Each row is written once, and the copy the job read before goes. Only
/// a job asked as the upload asks is resumed: one in `rows` mode is not continued for an upload
/// in `all` mode, which would have nothing written if a row failed.
async fn an_upload_of_a_stopped_jobs_file_resumes_it_from_the_new_copy(app: TestApp) {
    use sha2::Digest;
    let (n1, _) = two_neighbourhoods(&app).await;
    let h = household(&app, &n1).await;
    let row = |n: u32| format!("{},زهرا,احمدی,1360-01-01,female,{h},other", national_id(n));
    let file = format!("{HEADER}\n{}\n{}\n", row(1), row(2));
    let password = "a long enough password";
    let user = app
        .create_user("zahra", Role::Admin, password, vec![])
        .await
        .id
        .to_string();
    let tokens: Value = app
        .login("zahra", password)
        .await
        .json()
        .await
        .expect("tokens");
    let token = tokens["access_token"].as_str().expect("token").to_owned();
    let spool = crate::helpers::test_settings().import_dir;
    std::fs::create_dir_all(&spool).expect("spool");
    // Started, then stopped, with its copy of the file; `key` with an Idempotency-Key.
    let stopped_job = |file: &str, copy: &std::path::Path, key: Option<&str>| {
        let id = uuid::Uuid::now_v7().to_string();
        let mut conn = app.db.get().expect("connection");
        imports::start(
            &mut conn,
            NewJob {
                idempotency_key: key.map(str::to_owned),
                checksum: hex::encode(sha2::Sha256::digest(file.as_bytes())),
                ..users_job(&id, &user, Role::Admin, &copy.to_string_lossy())
            },
        )
        .expect("job");
        assert!(imports::stopped(&mut conn, &id, "the replica stopped").expect("stopped"));
        id
    };
    let lost = stopped_job(
        &file,
        std::path::Path::new("/nonexistent/replica/copy.csv"),
        None,
    );
    // Resumed as it is, it cannot read its file.
    let response = app
        .client
        .post(app.url(&format!("/api/v1/imports/{lost}/resume")))
        .bearer_auth(&token)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 202);
    let job = finished(&app, &token, &lost).await;
    assert_eq!(
        (&job["state"], &job["created"]),
        (&json!("interrupted"), &json!(0))
    );
    // Sent again for all or nothing, it is not this job: answered as it is.
    let rows = "kind=persons&mode=commit&atomicity=rows";
    let all = "kind=persons&mode=commit&atomicity=all";
    let response = upload_as(&app, &token, all, "text/csv", file.clone(), None).await;
    assert_eq!(response.status(), 200);
    let job: Value = response.json().await.expect("job");
    assert_eq!(
        (&job["id"], &job["state"]),
        (&json!(lost), &json!("interrupted"))
    );
    // Sent again as it was asked, the file resumes it.
    let response = upload_as(&app, &token, rows, "text/csv", file.clone(), None).await;
    assert_eq!(response.status(), 202);
    let again: Value = response.json().await.expect("job");
    assert_eq!(again["id"], lost.as_str());
    let job = finished(&app, &token, &lost).await;
    assert_eq!(
        (&job["state"], &job["created"]),
        (&json!("completed"), &json!(2)),
        "{job}"
    );
    // And once more: done, nothing twice.
    let response = upload_as(&app, &token, rows, "text/csv", file.clone(), None).await;
    assert_eq!(response.status(), 200);
    let job: Value = response.json().await.expect("job");
    assert_eq!((&job["id"], &job["created"]), (&json!(lost), &json!(2)));

    // By its Idempotency-Key, a job of another file whose spooled copy is still here: resumed
    // from the new copy, and the old one goes (the job reads the new one).
    let file = format!("{HEADER}\n{}\n{}\n", row(3), row(4));
    let old_copy = spool.join(format!("{}.csv", uuid::Uuid::now_v7()));
    std::fs::write(&old_copy, &file).expect("old copy");
    let keyed = stopped_job(&file, &old_copy, Some("import-of-monday"));
    let key = Some("import-of-monday");
    let response = upload_as(&app, &token, rows, "text/csv", file, key).await;
    assert_eq!(response.status(), 202);
    let job = finished(&app, &token, &keyed).await;
    assert_eq!(
        (&job["state"], &job["created"]),
        (&json!("completed"), &json!(2)),
        "{job}"
    );
    assert!(!old_copy.exists());
}

/// A new job of `user` (started when they had `role`) in `rows` mode of the person file at
/// `file`, as the API records one.
fn users_job(id: &str, user: &str, role: Role, file: &str) -> NewJob {
    NewJob {
        id: id.to_owned(),
        kind: ImportKind::Persons,
        mode: ImportMode::Commit,
        atomicity: Atomicity::Rows,
        format: ImportFormat::Csv,
        principal: format!("user:{user}"),
        context: AuditContext {
            actor: tavana_persistence::Actor::User(user.to_owned()),
            request_id: None,
            batched: false,
        },
        scope: Scope::All,
        role: Some(role),
        idempotency_key: None,
        checksum: format!("checksum of {id}"),
        file_path: file.to_owned(),
    }
}

/// A job in `rows` mode of the person file at `file`, started as the API starts one.
fn start_job(db: &tavana_persistence::Database, id: &str, file: String) {
    start_job_with(db, id, file, Atomicity::Rows);
}

fn start_job_with(db: &tavana_persistence::Database, id: &str, file: String, atomicity: Atomicity) {
    let mut conn = db.get().expect("connection");
    imports::start(
        &mut conn,
        NewJob {
            id: id.to_owned(),
            kind: ImportKind::Persons,
            mode: ImportMode::Commit,
            atomicity,
            format: ImportFormat::Csv,
            principal: "test".to_owned(),
            context: AuditContext::system(),
            scope: Scope::All,
            role: None,
            idempotency_key: None,
            checksum: format!("checksum of {id}"),
            file_path: file,
        },
    )
    .expect("job");
}

/// Row `number` of a person file: the person with national ID `n` in `household`.
fn person_row(number: i64, n: u32, household: &str) -> Result<Row, StoreError> {
    let values = [
        ("national_id", national_id(n)),
        ("first_name", "زهرا".to_owned()),
        ("last_name", "احمدی".to_owned()),
        ("birth_date", "1360-01-01".to_owned()),
        ("sex", "female".to_owned()),
        ("household_id", household.to_owned()),
        ("household_role", "other".to_owned()),
    ]
    .into_iter()
    .collect();
    Ok(Row {
        number,
        values: Ok(values),
    })
}

/// Past a number of keys the file's keys move from memory to a temporary database: a repeat of
/// a row read before the move, one read after it and one within the last batch are all found,
/// each named with its first row, and applied once.
async fn repeats_are_found_after_the_keys_move_out_of_memory(app: TestApp) {
    let (n1, _) = two_neighbourhoods(&app).await;
    let h = household(&app, &n1).await;
    let batch = u32::try_from(imports::BATCH).expect("batch");
    let distinct = batch + 300;
    let id = uuid::Uuid::now_v7().to_string();
    let db = app.db.clone();
    let job_id = id.clone();
    let h2 = h.clone();
    tokio::task::spawn_blocking(move || {
        start_job(&db, &job_id, String::new());
        // Rows are numbered as lines (the header is line 1): person n is on line n + 1.
        let repeated = [7, batch + 5, batch + 250];
        let mut rows = (1..=distinct)
            .map(|n| (n, n))
            .chain((1..).zip(repeated).map(|(i, n)| (distinct + i, n)))
            .map(|(line, n)| person_row(i64::from(line) + 1, n, &h2));
        run_today(
            &db,
            &job_id,
            &mut rows,
            imports::Tuning {
                // The first batch's keys stay in memory; the second batch moves them.
                keys_in_memory: Some(imports::BATCH),
                ..Default::default()
            },
        )
        .expect("imported")
    })
    .await
    .expect("joined");
    let job = finished(&app, &app.admin_token, &id).await;
    assert_eq!(job["state"], "completed", "{job}");
    assert_eq!(job["created"], distinct);
    assert_eq!(job["failed"], 3);
    let messages: Vec<(i64, String)> = job["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| {
            assert_eq!(e["code"], "duplicate_row", "{e}");
            (
                e["row"].as_i64().expect("row"),
                e["message"].as_str().expect("message").to_owned(),
            )
        })
        .collect();
    let line = |n: u32| i64::from(n) + 1;
    assert_eq!(
        messages,
        [7, batch + 5, batch + 250]
            .iter()
            .zip(1..)
            .map(|(n, i)| (
                line(distinct + i),
                format!(
                    "this record is in row {} already; a row is applied once",
                    line(*n)
                )
            ))
            .collect::<Vec<_>>()
    );
}

/// A job that stops before it reads a row (here its spooled file is gone when it is resumed) is
/// `interrupted` with the reason, not left `running` for ever.
async fn a_job_whose_file_is_gone_is_interrupted_not_left_running(app: TestApp) {
    let id = uuid::Uuid::now_v7().to_string();
    let gone = std::env::temp_dir().join(format!("tavana-test-{id}-gone.csv"));
    let (db, job_id) = (app.db.clone(), id.clone());
    tokio::task::spawn_blocking(move || {
        start_job(&db, &job_id, gone.to_string_lossy().into_owned());
        let mut conn = db.get().expect("connection");
        imports::stopped(&mut conn, &job_id, "the server stopped").expect("stopped");
    })
    .await
    .expect("joined");
    let job = resumed(&app, &id).await;
    assert_eq!(job["state"], "interrupted", "{job}");
    // Said so, without the server's paths.
    let message = job["message"].as_str().expect("message");
    assert!(message.contains("no longer on the server"), "{job}");
    assert!(!message.contains("gone.csv"), "{job}");
}

/// On SQLite an import, and the refusal of a file, wait while another import runs
/// (`Database::import_turn`) instead of failing on the write lock; on PostgreSQL imports run side
/// by side.
async fn on_sqlite_an_import_waits_for_the_one_running(app: TestApp) {
    let (n1, _) = two_neighbourhoods(&app).await;
    let h = household(&app, &n1).await;
    let file = format!(
        "{HEADER}\n{},زهرا,احمدی,1360-01-01,female,{h},head\n",
        national_id(1)
    );
    let db = app.db.clone();
    let (held, release) = std::sync::mpsc::channel::<()>();
    let (taken, turn_taken) = tokio::sync::oneshot::channel::<bool>();
    // Another import's turn, held until released.
    let holder = std::thread::spawn(move || {
        let turn = db.import_turn();
        let _ = taken.send(turn.is_some());
        let _ = release.recv();
    });
    let sqlite = turn_taken.await.expect("turn");
    let id = started(&app, "kind=persons&mode=commit", "text/csv", file).await;
    // A file refused for its header is recorded as failed in its turn too.
    let refused = started(
        &app,
        "kind=persons&mode=commit",
        "text/csv",
        format!("{HEADER},favourite_colour\n"),
    )
    .await;
    if sqlite {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let job = job_of(&app, &id).await;
        assert_eq!(
            (job["state"].as_str(), job["created"].as_i64()),
            (Some("running"), Some(0))
        );
        assert_eq!(job_of(&app, &refused).await["state"], "running");
    }
    let (job, refused) = if sqlite {
        held.send(()).expect("released");
        (
            finished(&app, &app.admin_token, &id).await,
            finished(&app, &app.admin_token, &refused).await,
        )
    } else {
        // Not waiting for the turn held: done while it is held.
        let jobs = (
            finished(&app, &app.admin_token, &id).await,
            finished(&app, &app.admin_token, &refused).await,
        );
        held.send(()).expect("released");
        jobs
    };
    holder.join().expect("holder");
    assert_eq!(job["state"], "completed", "{job}");
    assert_eq!(job["created"], 1);
    assert_eq!(refused["state"], "failed", "{refused}");
}

/// A service starting removes the spooled uploads that no job will read again (a copy left by a
/// stop during its upload, one a finished job could not remove), and keeps those of interrupted
/// jobs, those still being written, and files not named as uploads.
async fn a_start_removes_spooled_files_no_job_needs(app: TestApp) {
    let spool = tempfile::tempdir().expect("folder");
    let file = |name: &str, hours_ago: u64| {
        let path = spool.path().join(name);
        let written = std::fs::File::create(&path).expect("file");
        written
            .set_modified(
                std::time::SystemTime::now() - std::time::Duration::from_secs(hours_ago * 3600),
            )
            .expect("dated");
        path.to_string_lossy().into_owned()
    };
    let upload = |extension: &str| format!("{}.{extension}", uuid::Uuid::now_v7());
    let (orphan, of_finished, of_stopped, arriving, other) = (
        upload("csv"),
        upload("jsonl"),
        upload("csv"),
        upload("csv"),
        "notes.csv",
    );
    file(&orphan, 2);
    file(other, 2);
    file(&arriving, 0);
    let (finished_job, stopped_job) = (
        uuid::Uuid::now_v7().to_string(),
        uuid::Uuid::now_v7().to_string(),
    );
    let db = app.db.clone();
    let (finished_file, stopped_file) = (file(&of_finished, 2), file(&of_stopped, 2));
    tokio::task::spawn_blocking(move || {
        start_job(&db, &finished_job, finished_file);
        run_today(
            &db,
            &finished_job,
            &mut std::iter::empty(),
            Default::default(),
        )
        .expect("finished");
        // Running when the service stopped: interrupted as the new one starts, to be resumed.
        start_job(&db, &stopped_job, stopped_file);
    })
    .await
    .expect("jobs");

    let settings = tavana_http::Settings {
        import_dir: spool.path().to_owned(),
        ..crate::helpers::test_settings()
    };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let started = tavana_http::build(app.db.clone(), settings, listener).expect("server");
    let handle = started.handle();
    tokio::spawn(started);
    let mut left: Vec<String> = std::fs::read_dir(spool.path())
        .expect("folder")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    let mut kept = vec![of_stopped, arriving, other.to_owned()];
    kept.sort();
    assert_eq!(left, kept);
    handle.stop(false).await;
}

/// An upload that breaks off, and a file sent again that was imported already, leave nothing in
/// the spool folder; a job's own spooled copy goes when it is done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spooled_uploads_are_removed_when_no_job_needs_them() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let spool = tempfile::tempdir().expect("folder");
    let settings = tavana_http::Settings {
        import_dir: spool.path().to_owned(),
        ..crate::helpers::test_settings()
    };
    let app = TestApp::spawn_with(crate::helpers::Backend::Sqlite, settings)
        .await
        .expect("sqlite app");
    let spooled = || {
        std::fs::read_dir(spool.path())
            .map(|entries| entries.count())
            .unwrap_or(0)
    };
    let left_empty = || async {
        for _ in 0..100 {
            if spooled() == 0 {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        false
    };

    // The client says 100,000 bytes, sends a few and goes.
    let mut stream = tokio::net::TcpStream::connect(app.address.trim_start_matches("http://"))
        .await
        .expect("connected");
    let head = format!(
        "POST /api/v1/imports?kind=persons&mode=commit HTTP/1.1\r\nHost: tavana\r\n\
         Authorization: Bearer {}\r\nContent-Type: text/csv\r\nContent-Length: 100000\r\n\r\n\
         {HEADER}\n",
        app.admin_token
    );
    stream.write_all(head.as_bytes()).await.expect("sent");
    stream.shutdown().await.expect("closed");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    assert!(left_empty().await, "the broken-off upload's copy stays");

    let (n1, _) = two_neighbourhoods(&app).await;
    let h = household(&app, &n1).await;
    let file = format!(
        "{HEADER}\n{},زهرا,احمدی,1360-01-01,female,{h},head\n",
        national_id(1)
    );
    let job = upload(&app, "kind=persons&mode=commit", file.clone()).await;
    assert_eq!(job["created"], 1);
    let again = upload_as(
        &app,
        &app.admin_token,
        "kind=persons&mode=commit",
        "text/csv",
        file,
        None,
    )
    .await;
    assert_eq!(again.status(), 200);
    assert!(
        left_empty().await,
        "a copy stays after the import and its repeat"
    );
}

/// Runs job `id` over `rows` as of today, with `tuning`.
fn run_today(
    db: &tavana_persistence::Database,
    id: &str,
    rows: &mut dyn Iterator<Item = Result<Row, StoreError>>,
    tuning: imports::Tuning,
) -> Result<imports::Job, StoreError> {
    imports::run_tuned(db, id, rows, chrono::Utc::now().date_naive(), tuning)
}

/// A runner of job `id` that reads `rows` person rows of household `h`, then waits (a slow upload,
/// a large file) until told to go on; returned once it waits.
fn paused_runner(
    app: &TestApp,
    id: &str,
    h: &str,
    rows: u32,
) -> (
    std::thread::JoinHandle<Result<imports::Job, StoreError>>,
    std::sync::mpsc::Sender<()>,
) {
    let (db, job_id, h) = (app.db.clone(), id.to_owned(), h.to_owned());
    let (reading, paused) = std::sync::mpsc::channel::<()>();
    let (go_on, wait) = std::sync::mpsc::channel::<()>();
    let runner = std::thread::spawn(move || {
        let mut waited = false;
        let read = (1..=rows).map(|n| person_row(i64::from(n) + 1, n, &h));
        let mut rows = read.chain(std::iter::from_fn(|| {
            if !std::mem::replace(&mut waited, true) {
                let _ = reading.send(());
                let _ = wait.recv();
            }
            None
        }));
        run_today(&db, &job_id, &mut rows, Default::default())
    });
    paused.recv().expect("runner reading");
    (runner, go_on)
}

/// A job's runner holds the job's run lock (PostgreSQL: an advisory lock; SQLite: a locked file
/// beside the database): a service starting meanwhile (a replica, a restart beside
/// `tavana import`) does not take the job for interrupted, and no second runner starts on it.
async fn a_job_running_in_another_process_is_left_to_it(app: TestApp) {
    let (n1, _) = two_neighbourhoods(&app).await;
    let h = household(&app, &n1).await;
    let postgres = app.db.backend_name() == "postgres";
    let id = uuid::Uuid::now_v7().to_string();
    start_job(&app.db, &id, String::new());
    let (runner, go_on) = paused_runner(&app, &id, &h, 1);
    let db = app.db.clone();
    let job_id = id.clone();
    let (marked, second) = tokio::task::spawn_blocking(move || {
        let mut conn = db.get().expect("connection");
        let marked = imports::mark_interrupted(&mut conn).expect("checked");
        let recorded =
            imports::stopped(&mut conn, &job_id, "a service that starts").expect("checked");
        // A second runner (on SQLite it would wait for the process's import turn: not tried).
        let second =
            postgres.then(|| run_today(&db, &job_id, &mut std::iter::empty(), Default::default()));
        (marked + usize::from(recorded), second)
    })
    .await
    .expect("joined");
    assert_eq!(marked, 0);
    if postgres {
        assert!(
            matches!(second, Some(Err(StoreError::Conflict(_)))),
            "{second:?}"
        );
    }
    let job = job_of(&app, &id).await;
    assert_eq!(job["state"], "running");
    go_on.send(()).expect("going on");
    let job = runner.join().expect("runner").expect("ran");
    assert_eq!((job.state.as_str(), job.created), ("completed", 1));
    if !postgres {
        // The lock file beside the database goes with the lock.
        assert_eq!(lock_files(&app), Vec::<String>::new());
    }
    // Its runner gone, a job left running is taken for interrupted.
    let db = app.db.clone();
    let marked = tokio::task::spawn_blocking(move || {
        let mut conn = db.get().expect("connection");
        let stale = uuid::Uuid::now_v7().to_string();
        start_job(&db, &stale, String::new());
        imports::mark_interrupted(&mut conn).expect("checked")
    })
    .await
    .expect("joined");
    assert_eq!(marked, 1);
}

/// A runner whose job was marked interrupted under it (by hand, say) stops at its next commit
/// without recording its batch, whose rows are rolled back: whoever resumes the job applies them.
async fn a_runner_whose_job_is_marked_interrupted_stops_writing_nothing(app: TestApp) {
    use diesel::{ExpressionMethods, QueryDsl, RunQueryDsl};
    use tavana_persistence::schema::import_jobs;
    let (n1, _) = two_neighbourhoods(&app).await;
    let h = household(&app, &n1).await;
    let id = uuid::Uuid::now_v7().to_string();
    start_job(&app.db, &id, String::new());
    let (runner, go_on) = paused_runner(&app, &id, &h, 1);
    let (db, job_id) = (app.db.clone(), id.clone());
    tokio::task::spawn_blocking(move || {
        let mut conn = db.get().expect("connection");
        diesel::update(import_jobs::table.find(&job_id))
            .set(import_jobs::state.eq("interrupted"))
            .execute(&mut *conn)
            .expect("marked");
    })
    .await
    .expect("joined");
    go_on.send(()).expect("going on");
    let ran = runner.join().expect("runner");
    assert!(matches!(ran, Err(StoreError::Conflict(_))), "{ran:?}");
    assert_eq!(count(&app, "").await, 0);
    let job = job_of(&app, &id).await;
    assert_eq!(job["state"], "interrupted");
}

/// On SQLite imports take turns in a process; a job waiting for its turn holds its run lock
/// already, so a service starting meanwhile does not take it for interrupted either.
async fn a_job_waiting_for_its_turn_is_left_to_its_runner(app: TestApp) {
    let (n1, _) = two_neighbourhoods(&app).await;
    let h = household(&app, &n1).await;
    let postgres = app.db.backend_name() == "postgres";
    let (first, second) = (
        uuid::Uuid::now_v7().to_string(),
        uuid::Uuid::now_v7().to_string(),
    );
    start_job(&app.db, &first, String::new());
    start_job(&app.db, &second, String::new());
    let (running, go_on) = paused_runner(&app, &first, &h, 1);
    let (db, job_id) = (app.db.clone(), second.clone());
    let mut waiting = Some(std::thread::spawn(move || {
        run_today(&db, &job_id, &mut std::iter::empty(), Default::default())
    }));
    if postgres {
        // No turns on PostgreSQL: the second job runs at once.
        let second = waiting.take().expect("second runner").join();
        second.expect("second runner").expect("ran");
    } else {
        // Its lock file shows the second runner holds its lock, waiting for the turn.
        let lock = sqlite_folder(&app).join(format!("tavana.db-import-{second}.lock"));
        let since = std::time::Instant::now();
        while !lock.exists() {
            assert!(
                since.elapsed() < std::time::Duration::from_secs(10),
                "no lock"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
    let db = app.db.clone();
    let marked = tokio::task::spawn_blocking(move || {
        let mut conn = db.get().expect("connection");
        imports::mark_interrupted(&mut conn).expect("checked")
    })
    .await
    .expect("joined");
    assert_eq!(marked, 0);
    go_on.send(()).expect("going on");
    let job = running.join().expect("first runner").expect("ran");
    assert_eq!((job.state.as_str(), job.created), ("completed", 1));
    if let Some(waiting) = waiting {
        let job = waiting.join().expect("second runner").expect("ran");
        assert_eq!(job.state, "completed");
    }
}

/// A job keeps at most `MAX_STORED_ERRORS` errors (the others are counted in `failed`), those
/// stored before it was interrupted included.
async fn a_resumed_job_keeps_no_more_errors_than_the_limit(app: TestApp) {
    use diesel::{ExpressionMethods, QueryDsl, RunQueryDsl};
    use tavana_persistence::schema::import_errors;
    let limit = u32::try_from(imports::MAX_STORED_ERRORS).expect("limit");
    let (total, stop_at) = (limit + 2_000, limit + 500);
    // Rows of a household that does not exist: each one refused.
    let nowhere = uuid::Uuid::now_v7().to_string();
    let id = uuid::Uuid::now_v7().to_string();
    start_job(&app.db, &id, String::new());
    let (db, job_id) = (app.db.clone(), id.clone());
    let (failed, stored) = tokio::task::spawn_blocking(move || {
        let rows = |last: u32| (1..=last).map(|n| person_row(i64::from(n) + 1, n, &nowhere));
        let tuning = imports::Tuning {
            hold: Some(std::time::Duration::ZERO),
            ..Default::default()
        };
        let stopped = run_today(&db, &job_id, &mut then_the_disk_goes(rows(stop_at)), tuning);
        assert!(stopped.is_err(), "{stopped:?}");
        let mut conn = db.get().expect("connection");
        imports::resume(&mut conn, &job_id, None).expect("resumed");
        drop(conn);
        let job = run_today(&db, &job_id, &mut rows(total), tuning).expect("ran");
        let mut conn = db.get().expect("connection");
        let stored: i64 = import_errors::table
            .filter(import_errors::job_id.eq(&job_id))
            .count()
            .get_result(&mut *conn)
            .expect("counted");
        (job.failed, stored)
    })
    .await
    .expect("joined");
    assert_eq!(failed, i64::from(total));
    assert_eq!(stored, i64::from(limit));
}

/// On PostgreSQL an import numbers its changes as its transaction ends: a job in one transaction
/// (`all`, `validate`) does not hold the lock that orders the feed and the audit log while it
/// runs, so the API's audited writes go on meanwhile, and the feed still numbers in commit order.
/// (On SQLite such a job holds the database's one write lock, as the README says.)
/// A job in one transaction (atomicity `all`) cannot record its progress in its row before its
/// end; the service running it shows how far it has read all the same.
async fn a_job_in_one_transaction_shows_how_far_it_has_read(app: TestApp) {
    let (n1, _) = two_neighbourhoods(&app).await;
    let h = household(&app, &n1).await;
    let id = uuid::Uuid::now_v7().to_string();
    start_job_with(&app.db, &id, String::new(), Atomicity::All);
    let batch = i64::try_from(imports::BATCH).expect("batch");
    let (runner, go_on) = paused_runner(&app, &id, &h, u32::try_from(batch).expect("batch"));
    let job = job_of(&app, &id).await;
    assert_eq!(
        (
            job["state"].as_str(),
            job["read"].as_i64(),
            job["created"].as_i64()
        ),
        (Some("running"), Some(batch), Some(0)),
        "{job}"
    );
    go_on.send(()).expect("going on");
    let mut done = runner.join().expect("runner").expect("ran");
    let job = job_of(&app, &id).await;
    assert_eq!(
        (
            job["state"].as_str(),
            job["read"].as_i64(),
            job["created"].as_i64()
        ),
        (Some("completed"), Some(batch), Some(batch)),
        "{job}"
    );
    // Nothing of it is kept once it ended: a run of it again would show its own counts.
    done.state = "running".to_owned();
    done.rows_read = 0;
    assert_eq!(imports::live(done).rows_read, 0);
}

/// A resumed job goes on after the line of the last row it committed, not after as many rows as
/// it had read: the rows the reader returns may have changed meanwhile. Here the rows of empty
/// cells on lines 3 and 4, which a reader before this session counted as rows (failed ones), so
/// that a job stopped after line 4 had 3 rows done.
async fn a_resumed_job_goes_on_after_the_line_it_reached(app: TestApp) {
    let (n1, _) = two_neighbourhoods(&app).await;
    let h = household(&app, &n1).await;
    let row = |n| {
        format!(
            "{},زهرا,احمدی,1360-01-01,female,{h},other\n",
            national_id(n)
        )
    };
    let dir = tempfile::tempdir().expect("folder");
    let file = dir.path().join("persons.csv");
    // Lines 3 and 4: rows of empty cells.
    let text = [
        &format!("{HEADER}\n"),
        &row(70),
        ",,,,,,\n,,,,,,\n",
        &row(71),
        &row(72),
    ]
    .concat();
    std::fs::write(&file, text).expect("file");
    let id = uuid::Uuid::now_v7().to_string();
    start_job(&app.db, &id, file.to_string_lossy().into_owned());
    execute(
        &app,
        format!(
            "UPDATE import_jobs SET state = 'interrupted', rows_done = 3, line_done = 4 \
             WHERE id = '{id}'"
        ),
    )
    .await;
    let job = resumed(&app, &id).await;
    assert_eq!(
        (job["state"].as_str(), job["created"].as_i64()),
        (Some("completed"), Some(2)),
        "{job}"
    );
    for (n, imported) in [(70, 0), (71, 1), (72, 1)] {
        assert_eq!(
            count(&app, &format!("national_id={}", national_id(n))).await,
            imported
        );
    }
}

async fn an_import_in_one_transaction_lets_the_apis_writes_go_on(app: TestApp) {
    use diesel::{ExpressionMethods, QueryDsl, RunQueryDsl};
    use tavana_persistence::schema::changes;
    if app.db.backend_name() != "postgres" {
        return;
    }
    let (n1, _) = two_neighbourhoods(&app).await;
    let h = household(&app, &n1).await;
    let id = uuid::Uuid::now_v7().to_string();
    start_job_with(&app.db, &id, String::new(), Atomicity::All);
    // A whole batch applied (its changes made), the runner waits for the next.
    let batch = u32::try_from(imports::BATCH).expect("batch");
    let (runner, go_on) = paused_runner(&app, &id, &h, batch);
    let written = tokio::time::timeout(std::time::Duration::from_secs(10), household(&app, &n1))
        .await
        .expect("an audited write while the import runs");
    go_on.send(()).expect("going on");
    let job = runner.join().expect("runner").expect("ran");
    assert_eq!(
        (job.state.as_str(), job.created),
        ("completed", i64::from(batch))
    );
    let db = app.db.clone();
    // Numbered and stamped when the job commits, after the household: the feed's times follow
    // its numbers.
    let (household, first_person) = tokio::task::spawn_blocking(move || {
        let mut conn = db.get().expect("connection");
        let household: (i64, chrono::NaiveDateTime) = changes::table
            .filter(changes::entity_id.eq(&written))
            .select((changes::seq, changes::changed_at))
            .first(&mut *conn)
            .expect("household's change");
        let person: (i64, chrono::NaiveDateTime) = changes::table
            .filter(changes::entity.eq("person"))
            .order(changes::seq.asc())
            .select((changes::seq, changes::changed_at))
            .first(&mut *conn)
            .expect("persons' changes");
        (household, person)
    })
    .await
    .expect("joined");
    assert!(
        household.0 < first_person.0,
        "{household:?} {first_person:?}"
    );
    assert!(
        household.1 <= first_person.1,
        "{household:?} {first_person:?}"
    );
}

/// A runner that panics (a bug in a kind, say) gives its run lock back as it unwinds (SQLite: the
/// lock file's guard; PostgreSQL: `run_kind` unlocks, and the pool drops a connection handed back
/// by a panicking thread, which ends its locks too), and its batch is rolled back: the job is then
/// taken for interrupted and resumed by another runner, as after any other stop.
async fn a_runner_that_panics_gives_its_run_lock_back(app: TestApp) {
    let (n1, _) = two_neighbourhoods(&app).await;
    let h = household(&app, &n1).await;
    let postgres = app.db.backend_name() == "postgres";
    let id = uuid::Uuid::now_v7().to_string();
    // In one transaction: a whole batch is written in it when the runner panics.
    start_job_with(&app.db, &id, String::new(), Atomicity::All);
    let batch = u32::try_from(imports::BATCH).expect("batch");
    let rows = move |h: String| (1..=batch).map(move |n| person_row(i64::from(n) + 1, n, &h));
    let (db, job_id, row_household) = (app.db.clone(), id.clone(), h.clone());
    let panicked = std::thread::spawn(move || {
        let mut rows = rows(row_household).chain(std::iter::from_fn(|| {
            panic!("a bug while reading the second batch")
        }));
        run_today(&db, &job_id, &mut rows, Default::default())
    })
    .join();
    assert!(panicked.is_err(), "the runner did not panic");
    if !postgres {
        assert_eq!(lock_files(&app), Vec::<String>::new());
    }
    assert_eq!(count(&app, "").await, 0, "the batch was not rolled back");
    let (db, job_id) = (app.db.clone(), id.clone());
    // A connection left in the panicking runner's transaction would make this wait (PostgreSQL,
    // on the rows it holds) or fail (SQLite's write lock).
    let resume = tokio::task::spawn_blocking(move || {
        let mut conn = db.get().expect("connection");
        // Its lock free, the job is recorded as stopped, then resumed and run again.
        let recorded =
            imports::stopped(&mut conn, &job_id, "its runner panicked").expect("checked");
        imports::resume(&mut conn, &job_id, None).expect("resumed");
        drop(conn);
        (
            recorded,
            run_today(&db, &job_id, &mut rows(h), Default::default()),
        )
    });
    let resumed = tokio::time::timeout(std::time::Duration::from_secs(60), resume)
        .await
        .expect("in time")
        .expect("joined");
    assert!(resumed.0, "the job was not free to be marked interrupted");
    let job = resumed.1.expect("ran");
    assert_eq!(
        (job.state.as_str(), job.created),
        ("completed", i64::from(batch))
    );
}

/// The import lock files beside a test's SQLite database.
fn lock_files(app: &TestApp) -> Vec<String> {
    std::fs::read_dir(sqlite_folder(app))
        .expect("folder")
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.contains("-import-"))
        .collect()
}

/// The folder of a test's SQLite database.
fn sqlite_folder(app: &TestApp) -> std::path::PathBuf {
    use diesel::RunQueryDsl;
    use tavana_persistence::DbConnection;
    #[derive(diesel::QueryableByName)]
    struct DatabaseFile {
        #[diesel(sql_type = diesel::sql_types::Text)]
        file: String,
    }
    let mut conn = app.db.get().expect("connection");
    let DbConnection::Sqlite(sqlite) = &mut *conn else {
        panic!("not SQLite");
    };
    let database: DatabaseFile =
        diesel::sql_query("SELECT file FROM pragma_database_list WHERE name = 'main'")
            .get_result(sqlite)
            .expect("database file");
    std::path::Path::new(&database.file)
        .parent()
        .expect("folder")
        .to_owned()
}

/// A job in atomicity `all` that stops wrote nothing; resumed, it reads the whole file again.
async fn an_interrupted_all_or_nothing_import_runs_again_from_the_start(app: TestApp) {
    let (n1, _) = two_neighbourhoods(&app).await;
    let h = household(&app, &n1).await;
    let rows: Vec<String> = (1..=3)
        .map(|n| format!("{},زهرا,احمدی,1360-01-01,female,{h},other", national_id(n)))
        .collect();
    let id = uuid::Uuid::now_v7().to_string();
    let path = std::env::temp_dir().join(format!("tavana-test-{id}.csv"));
    std::fs::write(&path, format!("{HEADER}\n{}\n", rows.join("\n"))).expect("file");
    let (db, job_id, file) = (
        app.db.clone(),
        id.clone(),
        path.to_string_lossy().into_owned(),
    );
    let stopped = tokio::task::spawn_blocking(move || {
        start_job_with(&db, &job_id, file, Atomicity::All);
        let mut rows = then_the_disk_goes([person_row(2, 1, &h), person_row(3, 2, &h)].into_iter());
        run_today(&db, &job_id, &mut rows, Default::default())
    })
    .await
    .expect("joined");
    assert!(stopped.is_err());
    let job = job_of(&app, &id).await;
    assert_eq!(job["state"], "interrupted");
    assert_eq!(count(&app, "").await, 0);

    let job = resumed(&app, &id).await;
    assert_eq!(job["state"], "completed", "{job}");
    assert_eq!(
        (job["read"].as_i64(), job["created"].as_i64()),
        (Some(3), Some(3))
    );
    assert_eq!(count(&app, "").await, 3);
}

/// An import whose batch deadlocks with another writer (each holds a person the other updates
/// next) and is the one PostgreSQL gives up tries its batch again once the other went on, instead
/// of stopping the job. The other writer waits 10 s before it looks for a deadlock, so the
/// import, which waits first, is the one given up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_given_up_in_a_deadlock_tries_its_batch_again() {
    let Some(app) = TestApp::spawn(crate::helpers::Backend::Postgres).await else {
        return;
    };
    let (n1, _) = two_neighbourhoods(&app).await;
    let (first, second) = (
        person(&app, &n1, 1, "1360-01-01").await,
        person(&app, &n1, 2, "1361-01-01").await,
    );
    let row = |p: &Value, birth: &str| {
        format!(
            "{},{},احمدی,{birth},female,{},head,09151234567",
            p["national_id"].as_str().expect("national id"),
            p["first_name"].as_str().expect("name"),
            p["household_id"].as_str().expect("household"),
        )
    };
    let file = format!(
        "{HEADER},mobile\n{}\n{}\n",
        row(&first, "1360-01-01"),
        row(&second, "1361-01-01")
    );
    let touch = |p: &Value| {
        format!(
            "UPDATE persons SET updated_at = updated_at WHERE id = '{}'",
            id(p)
        )
    };
    let (ran, response) = crate::helpers::holding(
        &app,
        format!("SET LOCAL deadlock_timeout = '10s'; {}", touch(&second)),
        crate::helpers::Then::Run(touch(&first)),
        app.client
            .post(app.url("/api/v1/imports?kind=persons&mode=commit&atomicity=rows"))
            .bearer_auth(&app.admin_token)
            .header("content-type", "text/csv")
            .body(file),
    )
    .await;
    assert!(
        ran,
        "the other writer went on once the import gave its rows back"
    );
    assert_eq!(response.status(), 202);
    let job: Value = response.json().await.expect("job");
    let job = finished(&app, &app.admin_token, job["id"].as_str().expect("id")).await;
    assert_eq!(job["state"], "completed", "{job}");
    assert_eq!(
        ["read", "updated", "failed"].map(|k| job[k].as_i64()),
        [2, 2, 0].map(Some),
        "{job}"
    );
}
