//! The progress report and the baseline statistics, checked number by number on a small programme
//! built by hand.

use serde_json::{Value, json};
use tavana_domain::access::Role;

use crate::backend_tests;
use crate::helpers::{TestApp, problem};
use crate::households::{facilitator_token, two_neighbourhoods};
use crate::training::{created, id, person};

backend_tests!(
    the_progress_report_counts_every_stage_month_and_neighbourhood,
    progress_as_of_a_past_day_and_the_forecast,
    progress_respects_scope_and_suppresses_small_cells_for_partners,
    progress_comes_as_csv_and_svg,
    statistics_come_from_the_latest_assessments_and_hide_small_cells,
);

struct Programme {
    id: String,
    n1: Value,
    n2: Value,
}

async fn enrol(app: &TestApp, programme: &str, person: &Value, steps: &[(&str, &str)]) {
    created(
        app.post_json(
            &format!("/api/v1/persons/{}/consents", id(person)),
            &json!({"purpose": "programme", "share_with_partners": true, "given_on": "1398-01-01"}),
        )
        .await,
    )
    .await;
    let (_, identified) = steps[0];
    let enrolment = created(
        app.post_json(
            "/api/v1/enrolments",
            &json!({"programme_id": programme, "household_id": person["household_id"], "on": identified}),
        )
        .await,
    )
    .await;
    for (to, on) in &steps[1..] {
        let response = app
            .post_json(
                &format!("/api/v1/enrolments/{}/transitions", id(&enrolment)),
                &json!({"to": to, "on": on}),
            )
            .await;
        assert_eq!(response.status(), 200, "{to} on {on}");
    }
}

/// A programme for 1398 with a target of 10 households, and four households:
/// A (n1) all the way to employed in 1399 with verified evidence, B (n1) enrolled with a pause,
/// C (n1) only identified, D (n2) enrolled in Esfand and in training in Farvardin 1399.
async fn small_programme(app: &TestApp) -> Programme {
    let (n1, n2) = two_neighbourhoods(app).await;
    let programme = created(
        app.post_json(
            "/api/v1/programmes",
            &json!({"code": "TST-1398", "name_fa": "برنامه آزمایشی", "name_en": "Test programme",
                    "jalali_year": 1398, "target_households": 10}),
        )
        .await,
    )
    .await;
    let pid = id(&programme).to_owned();
    let a = person(app, &n1, 1, "1360-01-01").await;
    enrol(
        app,
        &pid,
        &a,
        &[
            ("identified", "1398-01-10"),
            ("assessed", "1398-02-01"),
            ("enrolled", "1398-03-01"),
            ("in_training", "1398-06-01"),
            ("permitted", "1398-12-20"),
            ("employed", "1399-01-05"),
        ],
    )
    .await;
    let outcome = created(
        app.post_json(
            &format!("/api/v1/persons/{}/outcomes", id(&a)),
            &json!({"kind": "home_business", "started_on": "1399-01-05", "evidence": "permit_and_sales"}),
        )
        .await,
    )
    .await;
    let verified = app
        .client
        .post(app.url(&format!("/api/v1/outcomes/{}/verify", id(&outcome))))
        .bearer_auth(app.mint(Role::ProgrammeManager).await)
        .json(&json!({"on": "1399-01-20"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(verified.status(), 200);
    let b = person(app, &n1, 2, "1360-01-01").await;
    enrol(
        app,
        &pid,
        &b,
        &[
            ("identified", "1398-01-15"),
            ("assessed", "1398-02-10"),
            ("enrolled", "1398-04-01"),
            ("paused", "1398-05-01"),
            ("enrolled", "1398-06-01"),
        ],
    )
    .await;
    let c = person(app, &n1, 3, "1360-01-01").await;
    enrol(app, &pid, &c, &[("identified", "1398-11-01")]).await;
    let d = person(app, &n2, 4, "1360-01-01").await;
    enrol(
        app,
        &pid,
        &d,
        &[
            ("identified", "1398-01-20"),
            ("assessed", "1398-03-01"),
            ("enrolled", "1398-12-25"),
            ("in_training", "1399-01-10"),
        ],
    )
    .await;
    Programme { id: pid, n1, n2 }
}

async fn progress_as(app: &TestApp, token: &str, programme: &str, query: &str) -> Value {
    let response = app
        .client
        .get(app.url(&format!("/api/v1/programmes/{programme}/progress{query}")))
        .bearer_auth(token)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);
    response.json().await.expect("json")
}

fn counts(values: [i64; 7]) -> Value {
    json!({"identified": values[0], "assessed": values[1], "enrolled": values[2],
           "trained": values[3], "permitted": values[4], "financed": values[5],
           "employed_verified": values[6]})
}

async fn the_progress_report_counts_every_stage_month_and_neighbourhood(app: TestApp) {
    let p = small_programme(&app).await;
    let report = progress_as(&app, &app.admin_token, &p.id, "?as_of=1399-02-01").await;
    assert_eq!(report["as_of"], "2020-04-20");
    assert_eq!(report["target_households"], 10);
    let stages: Vec<(&str, i64)> = report["stages"]
        .as_array()
        .expect("stages")
        .iter()
        .map(|s| {
            (
                s["stage"].as_str().expect("stage"),
                s["households"].as_i64().expect("n"),
            )
        })
        .collect();
    assert_eq!(
        stages,
        [
            ("identified", 4),
            ("assessed", 3),
            // B enrolled twice (before and after a pause) and counts once.
            ("enrolled", 3),
            ("trained", 2),
            ("permitted", 1),
            ("financed", 0),
            ("employed_verified", 1),
        ]
    );
    assert_eq!(report["stages"][2]["percent_of_target"], 30.0);
    assert_eq!(report["percent_of_target"], 30.0);
    assert_eq!(report["stages"][0]["label_fa"], "شناسایی");

    let hoods = report["by_neighbourhood"].as_array().expect("hoods");
    let of = |n: &Value| {
        hoods
            .iter()
            .find(|h| h["neighbourhood_id"] == n["id"])
            .expect("neighbourhood")["counts"]
            .clone()
    };
    assert_eq!(of(&p.n1), counts([3, 2, 2, 1, 1, 0, 1]));
    assert_eq!(of(&p.n2), counts([1, 1, 1, 1, 0, 0, 0]));

    // Burn-up by Jalali month, from Farvardin 1398 to Ordibehesht 1399.
    let months = report["months"].as_array().expect("months");
    let labels: Vec<&str> = months
        .iter()
        .map(|m| m["month"].as_str().expect("month"))
        .collect();
    assert_eq!(labels.len(), 14);
    assert_eq!(labels[0], "1398-01");
    assert_eq!(labels[11], "1398-12");
    assert_eq!(labels[12], "1399-01");
    assert_eq!(months[0]["until"], "2019-04-20");
    assert_eq!(months[0]["counts"], counts([3, 0, 0, 0, 0, 0, 0]));
    assert_eq!(months[2]["counts"], counts([3, 3, 1, 0, 0, 0, 0]));
    // Across the new year: Esfand 1398 ends 2020-03-19, Farvardin 1399 follows.
    assert_eq!(months[11]["until"], "2020-03-19");
    assert_eq!(months[11]["counts"], counts([4, 3, 3, 1, 1, 0, 0]));
    assert_eq!(months[12]["until"], "2020-04-19");
    assert_eq!(months[12]["counts"], counts([4, 3, 3, 2, 1, 0, 1]));
    assert_eq!(months[13]["until"], "2020-04-20");

    // After the programme year the forecast is the count.
    assert_eq!(
        report["forecast"],
        json!({"stage": "enrolled", "households_now": 3, "expected_at_end": 3, "target": 10, "on_track": false})
    );
    assert_eq!(report["suppressed_small_cells"], false);
}

async fn progress_as_of_a_past_day_and_the_forecast(app: TestApp) {
    let p = small_programme(&app).await;
    // 1398-05-15 (2019-08-06): B is paused; C is not yet identified.
    let report = progress_as(&app, &app.admin_token, &p.id, "?as_of=1398-05-15").await;
    let totals: Vec<i64> = report["stages"]
        .as_array()
        .expect("stages")
        .iter()
        .map(|s| s["households"].as_i64().expect("n"))
        .collect();
    assert_eq!(totals, [3, 3, 2, 0, 0, 0, 0]);
    assert_eq!(report["months"].as_array().map(Vec::len), Some(5));
    // Two enrolled in the first 139 of 365 days: 730 / 139 = 5 by the end, short of 10.
    assert_eq!(
        report["forecast"],
        json!({"stage": "enrolled", "households_now": 2, "expected_at_end": 5, "target": 10, "on_track": false})
    );
    // Before the programme began: nothing, no months.
    let early = progress_as(&app, &app.admin_token, &p.id, "?as_of=2019-01-01").await;
    assert_eq!(early["stages"][0]["households"], 0);
    assert_eq!(early["months"], json!([]));
    problem(
        app.get(&format!(
            "/api/v1/programmes/{}/progress?as_of=someday",
            p.id
        ))
        .await,
        422,
    )
    .await;
    problem(
        app.get("/api/v1/programmes/0169a6c0-0000-7000-8000-00000000ffff/progress")
            .await,
        404,
    )
    .await;
}

async fn progress_respects_scope_and_suppresses_small_cells_for_partners(app: TestApp) {
    let p = small_programme(&app).await;
    let facilitator = facilitator_token(&app, "fatemeh", &p.n2).await;
    let report = progress_as(&app, &facilitator, &p.id, "?as_of=1399-02-01").await;
    let totals: Vec<i64> = report["stages"]
        .as_array()
        .expect("stages")
        .iter()
        .map(|s| s["households"].as_i64().expect("n"))
        .collect();
    assert_eq!(totals, [1, 1, 1, 1, 0, 0, 0]);
    let hoods = report["by_neighbourhood"].as_array().expect("hoods");
    assert_eq!(hoods.len(), 1);
    assert_eq!(hoods[0]["neighbourhood_id"], p.n2["id"]);

    // A partner with no MoU in force reads no aggregates either, in any of their forms.
    let outsider = app.mint(Role::Partner).await;
    for path in [
        format!("/api/v1/programmes/{}/progress", p.id),
        format!("/api/v1/programmes/{}/progress.svg", p.id),
        "/api/v1/statistics".to_owned(),
        "/api/v1/training/statistics".to_owned(),
    ] {
        let refusal = problem(app.get_as(&outsider, &path).await, 403).await;
        assert!(refusal.to_string().contains("MoU"), "{path}: {refusal}");
    }

    // Partners: aggregates, with every neighbourhood cell under 5 households suppressed.
    let (org, partner) = crate::partners::partner(&app, &crate::partners::study_policy()).await;
    let report = progress_as(&app, &partner, &p.id, "?as_of=1399-02-01").await;
    assert_eq!(report["suppressed_small_cells"], true);
    let n1 = report["by_neighbourhood"]
        .as_array()
        .expect("hoods")
        .iter()
        .find(|h| h["neighbourhood_id"] == p.n1["id"])
        .expect("n1")
        .clone();
    assert_eq!(n1["counts"]["identified"], Value::Null);
    assert_eq!(n1["counts"]["employed_verified"], Value::Null);

    // A partner whose MoU covers n1 counts n1's households only: with two more identified there,
    // n1 has 5 of the programme's 6.
    for n in [5, 6] {
        let more = person(&app, &p.n1, n, "1360-01-01").await;
        enrol(&app, &p.id, &more, &[("identified", "1398-01-25")]).await;
    }
    let everywhere = progress_as(&app, &partner, &p.id, "?as_of=1399-02-01").await;
    assert_eq!(everywhere["stages"][0]["households"], 6);
    let mut policy = crate::partners::study_policy();
    policy["areas"] = json!([p.n1["id"]]);
    crate::partners::set_policy(&app, &org, &policy).await;
    let report = progress_as(&app, &partner, &p.id, "?as_of=1399-02-01").await;
    assert_eq!(report["stages"][0]["households"], 5);
    let hoods: Vec<&Value> = report["by_neighbourhood"]
        .as_array()
        .expect("hoods")
        .iter()
        .map(|h| &h["neighbourhood_id"])
        .collect();
    assert_eq!(hoods, [&p.n1["id"]]);
}

async fn progress_comes_as_csv_and_svg(app: TestApp) {
    let p = small_programme(&app).await;
    let get = |query: &str, accept: &str| {
        app.client
            .get(app.url(&format!("/api/v1/programmes/{}/progress{query}", p.id)))
            .bearer_auth(&app.admin_token)
            .header("accept", accept)
            .send()
    };
    let csv = get("?as_of=1399-02-01", "text/csv").await.expect("sent");
    assert_eq!(csv.status(), 200);
    assert!(
        csv.headers()["content-type"]
            .to_str()
            .expect("type")
            .starts_with("text/csv")
    );
    let text = csv.text().await.expect("text");
    let lines: Vec<&str> = text.trim_start_matches('\u{feff}').lines().collect();
    assert_eq!(
        lines[0],
        "stage,label_fa,households,target,percent_of_target"
    );
    assert_eq!(lines[1], "identified,شناسایی,4,10,40");
    assert_eq!(lines[3], "enrolled,ثبت‌نام,3,10,30");
    let months = get("?as_of=1399-02-01&table=months", "text/csv")
        .await
        .expect("sent")
        .text()
        .await
        .expect("text");
    let rows: Vec<&str> = months.lines().collect();
    assert_eq!(rows.len(), 15);
    assert_eq!(rows[13], "1399-01,2020-04-19,4,3,3,2,1,0,1");
    let hoods = get("?as_of=1399-02-01&table=neighbourhoods", "text/csv")
        .await
        .expect("sent")
        .text()
        .await
        .expect("text");
    assert!(hoods.lines().count() == 3, "{hoods}");
    problem(get("?table=nonsense", "text/csv").await.expect("sent"), 400).await;

    for response in [
        get("?as_of=1399-02-01", "image/svg+xml")
            .await
            .expect("sent"),
        app.client
            .get(app.url(&format!(
                "/api/v1/programmes/{}/progress.svg?as_of=1399-02-01",
                p.id
            )))
            .bearer_auth(&app.admin_token)
            .send()
            .await
            .expect("sent"),
    ] {
        assert_eq!(response.status(), 200);
        assert!(
            response.headers()["content-type"]
                .to_str()
                .expect("type")
                .starts_with("image/svg+xml")
        );
        let svg = response.text().await.expect("svg");
        let doc = roxmltree::Document::parse(&svg).expect("the SVG is well-formed XML");
        assert_eq!(doc.root_element().tag_name().name(), "svg");
        let target = doc
            .descendants()
            .find(|n| n.attribute("id") == Some("target-line"))
            .expect("the target line");
        assert_eq!(target.tag_name().name(), "line");
        assert!(
            doc.descendants()
                .any(|n| n.attribute("id") == Some("burn-up"))
        );
        // Persian labels, with Persian digits.
        assert!(svg.contains("هدف: ۱۰ خانوار"), "{svg}");
        assert!(svg.contains("برنامه آزمایشی"));
    }
}

async fn assess(
    app: &TestApp,
    person: &Value,
    kind: &str,
    on: &str,
    status: &str,
    insured: bool,
    welfare: &[&str],
) {
    created(
        app.post_json(
            &format!("/api/v1/persons/{}/assessments", id(person)),
            &json!({"kind": kind, "assessed_on": on, "employment_status": status, "income_band": "under_20m",
                    "social_insurance": insured, "welfare_services": welfare, "dependants": 1}),
        )
        .await,
    )
    .await;
}

async fn statistics_come_from_the_latest_assessments_and_hide_small_cells(app: TestApp) {
    let (n1, n2) = two_neighbourhoods(&app).await;
    let mut people = Vec::new();
    for n in 1..=5 {
        people.push(person(&app, &n1, n, "1360-01-01").await);
    }
    assess(
        &app,
        &people[0],
        "baseline",
        "1398-02-01",
        "unemployed",
        false,
        &["relief_committee"],
    )
    .await;
    assess(
        &app,
        &people[0],
        "follow_up",
        "1398-08-01",
        "employed",
        true,
        &["relief_committee"],
    )
    .await;
    assess(
        &app,
        &people[1],
        "baseline",
        "1398-02-01",
        "unemployed",
        true,
        &[],
    )
    .await;
    assess(
        &app,
        &people[2],
        "baseline",
        "1398-02-01",
        "employed",
        false,
        &["cash_subsidy"],
    )
    .await;
    assess(
        &app,
        &people[3],
        "baseline",
        "1398-02-01",
        "not_in_labour_force",
        false,
        &[],
    )
    .await;
    assess(
        &app,
        &people[4],
        "baseline",
        "1398-02-01",
        "unemployed",
        false,
        &[],
    )
    .await;
    for n in 6..=7 {
        let p = person(&app, &n2, n, "1360-01-01").await;
        assess(&app, &p, "baseline", "1398-02-01", "unemployed", true, &[]).await;
    }
    let get = |token: String, query: &'static str| {
        let request = app
            .client
            .get(app.url(&format!("/api/v1/statistics{query}")))
            .bearer_auth(token)
            .send();
        async move {
            let response = request.await.expect("sent");
            assert_eq!(response.status(), 200);
            response.json::<Value>().await.expect("json")
        }
    };
    let line = |body: &Value, hood: &Value| {
        body["neighbourhoods"]
            .as_array()
            .expect("lines")
            .iter()
            .find(|l| l["neighbourhood_id"] == hood["id"])
            .expect("line")
            .clone()
    };
    let now = get(app.admin_token.clone(), "").await;
    let first = line(&now, &n1);
    assert_eq!(first["assessed"], 5);
    assert_eq!(first["labour_force"], 4);
    assert_eq!(first["unemployment_rate"], 50.0);
    assert_eq!(first["social_insurance_coverage"], 40.0);
    assert_eq!(first["welfare_coverage"], 40.0);
    assert_eq!(first["suppressed"], false);
    assert_eq!(line(&now, &n2)["unemployment_rate"], 100.0);
    // Before the follow-up, the baseline counts.
    let then = get(app.admin_token.clone(), "?as_of=1398-05-01").await;
    assert_eq!(line(&then, &n1)["unemployment_rate"], 75.0);
    assert_eq!(line(&then, &n1)["social_insurance_coverage"], 20.0);

    // Partners: n1's coverage rests on 5 people and is shown, its unemployment rate on a labour
    // force of 4 and is not; n2 rests on 2 and is suppressed altogether.
    let (org, partner) = crate::partners::partner(&app, &crate::partners::study_policy()).await;
    let everywhere = get(partner.clone(), "").await;
    assert_eq!(everywhere["suppressed_small_cells"], true);
    let shown = line(&everywhere, &n1);
    assert_eq!(shown["assessed"], 5);
    assert_eq!(shown["social_insurance_coverage"], 40.0);
    assert_eq!(shown["labour_force"], Value::Null);
    assert_eq!(shown["unemployment_rate"], Value::Null);
    assert_eq!(shown["suppressed"], true);
    let small = line(&everywhere, &n2);
    assert_eq!(small["assessed"], Value::Null);
    assert_eq!(small["unemployment_rate"], Value::Null);
    assert_eq!(small["suppressed"], true);

    // A facilitator of n2 sees n2 only; so does a partner whose MoU covers n2 only.
    let facilitator = facilitator_token(&app, "fatemeh", &n2).await;
    let own = get(facilitator, "").await;
    assert_eq!(own["neighbourhoods"].as_array().map(Vec::len), Some(1));
    let mut policy = crate::partners::study_policy();
    policy["areas"] = json!([n2["id"]]);
    crate::partners::set_policy(&app, &org, &policy).await;
    let lines = get(partner, "").await["neighbourhoods"].clone();
    assert_eq!(lines.as_array().map(Vec::len), Some(1));
    assert_eq!(lines[0]["neighbourhood_id"], n2["id"]);

    let csv = app
        .client
        .get(app.url("/api/v1/statistics"))
        .bearer_auth(&app.admin_token)
        .header("accept", "text/csv")
        .send()
        .await
        .expect("sent")
        .text()
        .await
        .expect("csv");
    assert!(csv.trim_start_matches('\u{feff}').starts_with(
        "neighbourhood_id,name_fa,name_en,assessed,labour_force,unemployment_rate,social_insurance_coverage,welfare_coverage"
    ));
    assert_eq!(csv.lines().count(), 3);

    // A person counts where her latest assessment was made, for every caller: moved to n2 and
    // assessed there, the fifth person leaves n1's figures, a facilitator's of n1 too.
    let home = crate::imports::household(&app, &n2).await;
    let moved = app
        .post_json(
            &format!("/api/v1/persons/{}/move", id(&people[4])),
            &json!({"household_id": home, "household_role": "other", "on": "1398-08-15"}),
        )
        .await;
    assert_eq!(moved.status(), 200);
    assess(
        &app,
        &people[4],
        "follow_up",
        "1398-09-01",
        "employed",
        false,
        &[],
    )
    .await;
    let everyone = get(app.admin_token.clone(), "").await;
    assert_eq!(line(&everyone, &n1)["assessed"], 4);
    assert_eq!(line(&everyone, &n2)["assessed"], 3);
    let of_n1 = facilitator_token(&app, "maryam", &n1).await;
    assert_eq!(line(&get(of_n1, "").await, &n1)["assessed"], 4);
}
