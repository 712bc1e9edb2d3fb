//! Micro-loans: products, eligibility explained, one or two approvers, disbursement with its
//! schedule and the enrolment moved to `financed`, idempotent repayments allocated oldest first,
//! overpayment refused, early settlement, write-off by two managers, arrears as of chosen days,
//! PAR30 on a hand-built portfolio, every forbidden transition, and scope.

use serde_json::{Value, json};
use tavana_domain::access::Role;

use crate::backend_tests;
use crate::helpers::{TestApp, problem};
use crate::households::{facilitator_token, two_neighbourhoods};
use crate::permits::{eligible_person, enrol_until};
use crate::training::{created, id, person};

backend_tests!(
    a_loan_goes_from_application_to_settlement,
    arrears_are_computed_as_of_any_day_and_par30_counts_past_30_days,
    large_loans_and_write_offs_need_two_different_managers,
    forbidden_transitions_are_refused,
    an_approved_loan_can_be_cancelled_and_the_programme_rule_decides_financed,
    eligibility_is_explained_rule_by_rule,
    early_settlement_waives_later_fees,
    facilitators_see_only_their_neighbourhoods_loans,
);

const PASSWORD: &str = "a long enough password";

/// Two programme managers (real users: approvals name them) and a facilitator of `n`.
struct Staff {
    pm: String,
    pm2: String,
    facilitator: String,
    funder: String,
}

async fn login(app: &TestApp, username: &str) -> String {
    let tokens: Value = app
        .login(username, PASSWORD)
        .await
        .json()
        .await
        .expect("tokens");
    tokens["access_token"].as_str().expect("token").to_owned()
}

async fn staff(app: &TestApp, n: &Value) -> Staff {
    let first = app
        .create_user("pm.one", Role::ProgrammeManager, PASSWORD, Vec::new())
        .await;
    app.create_user("pm.two", Role::ProgrammeManager, PASSWORD, Vec::new())
        .await;
    Staff {
        pm: login(app, "pm.one").await,
        pm2: login(app, "pm.two").await,
        facilitator: facilitator_token(app, "facilitator.loans", n).await,
        funder: first.organisation_id.to_string(),
    }
}

async fn send(
    app: &TestApp,
    token: &str,
    method: &str,
    path: &str,
    body: Value,
) -> reqwest::Response {
    let request = match method {
        "post" => app.client.post(app.url(path)).json(&body),
        _ => app.client.get(app.url(path)),
    };
    request.bearer_auth(token).send().await.expect("sent")
}

async fn ok(response: reqwest::Response) -> Value {
    let status = response.status();
    let body: Value = response.json().await.expect("json");
    assert!(status.is_success(), "{status}: {body}");
    body
}

async fn product(app: &TestApp, s: &Staff, name: &str, requirement: &str, grace: u32) -> Value {
    created(
        send(
            app,
            &s.pm,
            "post",
            "/api/v1/loan-products",
            json!({
                "name": name, "min_amount": 10_000_000, "max_amount": 100_000_000,
                "term_months": 6, "grace_months": grace, "fee_rate_bp": 400,
                "requirement": requirement, "funder_id": s.funder,
                "second_approval_above": 50_000_000,
            }),
        )
        .await,
    )
    .await
}

async fn apply(
    app: &TestApp,
    s: &Staff,
    who: &Value,
    product: &Value,
    amount: i64,
) -> reqwest::Response {
    send(
        app,
        &s.facilitator,
        "post",
        "/api/v1/loans",
        json!({"person_id": who["id"], "product_id": product["id"], "amount": amount,
               "purpose": "چرخ خیاطی و پارچه", "applied_on": "2024-12-20"}),
    )
    .await
}

async fn act(
    app: &TestApp,
    token: &str,
    loan: &Value,
    action: &str,
    body: Value,
) -> reqwest::Response {
    send(
        app,
        token,
        "post",
        &format!("/api/v1/loans/{}/{action}", id(loan)),
        body,
    )
    .await
}

async fn repay(
    app: &TestApp,
    s: &Staff,
    loan: &Value,
    key: &str,
    amount: i64,
    on: &str,
) -> reqwest::Response {
    repay_as(
        app,
        &s.facilitator,
        loan,
        Some(key),
        json!({"amount": amount, "paid_on": on}),
    )
    .await
}

/// A repayment by any caller, with or without an `Idempotency-Key`.
async fn repay_as(
    app: &TestApp,
    token: &str,
    loan: &Value,
    key: Option<&str>,
    body: Value,
) -> reqwest::Response {
    let mut request = app
        .client
        .post(app.url(&format!("/api/v1/loans/{}/repayments", id(loan))))
        .bearer_auth(token)
        .json(&body);
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    request.send().await.expect("sent")
}

async fn read(app: &TestApp, token: &str, loan: &Value, as_of: &str) -> Value {
    ok(send(
        app,
        token,
        "get",
        &format!("/api/v1/loans/{}?as_of={as_of}", id(loan)),
        Value::Null,
    )
    .await)
    .await
}

/// The person's loan of `amount`, approved and disbursed on `on`.
async fn disbursed_for(
    app: &TestApp,
    s: &Staff,
    who: &Value,
    product: &Value,
    amount: i64,
    on: &str,
) -> Value {
    let loan = created(apply(app, s, who, product, amount).await).await;
    ok(act(app, &s.pm, &loan, "approve", json!({})).await).await;
    ok(act(app, &s.pm, &loan, "disburse", json!({"disbursed_on": on})).await).await
}

/// An approved and disbursed loan of `amount` for a new eligible person of `n`.
async fn disbursed(
    app: &TestApp,
    s: &Staff,
    n: &Value,
    k: u32,
    product: &Value,
    amount: i64,
    on: &str,
) -> Value {
    let who = eligible_person(app, n, k).await;
    disbursed_for(app, s, &who, product, amount, on).await
}

fn sum(schedule: &Value, field: &str) -> i64 {
    schedule
        .as_array()
        .expect("schedule")
        .iter()
        .map(|i| i[field].as_i64().expect("amount"))
        .sum()
}

async fn a_loan_goes_from_application_to_settlement(app: TestApp) {
    let (n1, _) = two_neighbourhoods(&app).await;
    let s = staff(&app, &n1).await;
    let product = product(&app, &s, "کارگاه خانگی", "permit_or_course", 1).await;
    let who = eligible_person(&app, &n1, 1).await;
    let loan = created(apply(&app, &s, &who, &product, 12_000_000).await).await;
    assert_eq!(loan["state"], "applied");
    assert_eq!(loan["approvals_needed"], 1);

    let loan = ok(act(&app, &s.pm, &loan, "approve", json!({})).await).await;
    assert_eq!(loan["state"], "approved");
    // A body that is there is read as documented, not taken for no body: a misspelled field or
    // a form is refused, and the loan is not disbursed today instead of on the day meant.
    let misspelled = act(
        &app,
        &s.pm,
        &loan,
        "disburse",
        json!({"disbursed_at": "2025-01-01"}),
    )
    .await;
    let body = problem(misspelled, 422).await;
    assert!(body.to_string().contains("disbursed_at"), "{body}");
    let form = app
        .client
        .post(app.url(&format!("/api/v1/loans/{}/disburse", id(&loan))))
        .bearer_auth(&s.pm)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("disbursed_on=2025-01-01")
        .send()
        .await
        .expect("sent");
    problem(form, 415).await;
    assert_eq!(
        read(&app, &s.pm, &loan, "2025-01-01").await["state"],
        "approved"
    );
    let loan = ok(act(
        &app,
        &s.pm,
        &loan,
        "disburse",
        json!({"disbursed_on": "2025-01-01"}),
    )
    .await)
    .await;
    assert_eq!(loan["state"], "disbursed");
    // One fee-only grace month, then six of principal: 2,000,000 each, summing to the amount.
    let schedule = &loan["schedule"];
    assert_eq!(schedule.as_array().expect("schedule").len(), 7);
    assert_eq!(schedule[0]["principal"], 0);
    assert_eq!(schedule[0]["fee"], 40_000);
    assert_eq!(schedule[1]["principal"], 2_000_000);
    assert_eq!(sum(schedule, "principal"), 12_000_000);
    let fees = sum(schedule, "fee");
    assert_eq!(loan["balance"], 12_000_000 + fees);
    // Due on the same Jalali day of each month: disbursed 1403-10-12.
    assert_eq!(schedule[0]["due_on_jalali"], "1403-11-12");
    // The household's enrolment moved to `financed` (the programme's rule is on by default).
    let enrolments: Value = ok(app
        .get(&format!(
            "/api/v1/enrolments?household_id={}",
            who["household_id"].as_str().expect("household")
        ))
        .await)
    .await;
    assert_eq!(enrolments["items"][0]["state"], "financed", "{enrolments}");
    // And the loan shows in the progress report's funnel.
    let progress: Value = ok(app
        .get("/api/v1/programmes/0169a6c0-0000-7000-8000-000000000001/progress?as_of=2025-01-02")
        .await)
    .await;
    let financed = progress["stages"]
        .as_array()
        .expect("stages")
        .iter()
        .find(|s| s["stage"] == "financed")
        .expect("financed stage");
    assert_eq!(financed["households"], 1, "{progress}");

    // A repayment pays the first instalment's fee, then the next instalment's fee first.
    let first = repay(&app, &s, &loan, "pay-1", 100_000, "2025-02-05").await;
    assert_eq!(first.status(), 201);
    let after: Value = first.json().await.expect("json");
    assert_eq!(after["schedule"][0]["paid_fee"], 40_000);
    assert_eq!(after["schedule"][1]["paid_fee"], 40_000);
    assert_eq!(after["schedule"][1]["paid_principal"], 20_000);
    assert_eq!(after["balance"], 12_000_000 + fees - 100_000);
    // The same key again records nothing more.
    let again = repay(&app, &s, &loan, "pay-1", 100_000, "2025-02-05").await;
    assert_eq!(again.status(), 201);
    let current = read(&app, &s.pm, &loan, "2025-02-05").await;
    assert_eq!(current["balance"], 12_000_000 + fees - 100_000);
    // More than is owed is refused, with what is owed; no credit is kept.
    let owed = 12_000_000 + fees - 100_000;
    let over = problem(
        repay(&app, &s, &loan, "pay-2", owed + 1, "2025-03-01").await,
        422,
    )
    .await;
    assert_eq!(over["errors"][0]["code"], "overpayment", "{over}");
    // Paying exactly what is owed settles it.
    let settled: Value = repay(&app, &s, &loan, "pay-3", owed, "2025-03-01")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(settled["state"], "settled");
    assert_eq!(settled["balance"], 0);
    assert_eq!(settled["closed_on"], "2025-03-01");
    let closed = problem(repay(&app, &s, &loan, "pay-4", 1, "2025-03-02").await, 409).await;
    assert!(
        closed["detail"]
            .as_str()
            .expect("detail")
            .contains("settled"),
        "{closed}"
    );
    // A repayment needs a key.
    let keyless = repay_as(&app, &s.facilitator, &loan, None, json!({"amount": 1})).await;
    assert_eq!(keyless.status(), 400);
}

async fn arrears_are_computed_as_of_any_day_and_par30_counts_past_30_days(app: TestApp) {
    let (n1, _) = two_neighbourhoods(&app).await;
    let s = staff(&app, &n1).await;
    let product = product(&app, &s, "بدون تنفس", "technical_course", 0).await;
    let loan = disbursed(&app, &s, &n1, 1, &product, 12_000_000, "2025-01-01").await;
    let due = loan["schedule"][0]["due_on"]
        .as_str()
        .expect("due")
        .to_owned();
    let due_day = chrono::NaiveDate::parse_from_str(&due, "%Y-%m-%d").expect("date");
    let day = |n: i64| (due_day + chrono::Duration::days(n)).to_string();
    for (offset, days, bucket) in [
        (0, 0, Value::Null),
        (1, 1, json!("1_30")),
        (30, 30, json!("1_30")),
        (31, 31, json!("31_60")),
        (61, 61, json!("61_90")),
        (90, 90, json!("61_90")),
        (91, 91, json!("90_plus")),
    ] {
        let seen = read(&app, &s.pm, &loan, &day(offset)).await;
        // The second instalment falls due about 30 days later; arrears count from the oldest.
        assert_eq!(seen["days_past_due"], days, "as of due + {offset}: {seen}");
        assert_eq!(seen["bucket"], bucket, "as of due + {offset}");
        assert_eq!(
            seen["standing"],
            if days == 0 { "current" } else { "in_arrears" }
        );
    }
    // Paid ten days late: in arrears before the payment, current after it.
    let first = loan["schedule"][0]["total"].as_i64().expect("total");
    assert_eq!(
        repay(&app, &s, &loan, "late", first, &day(10))
            .await
            .status(),
        201
    );
    assert_eq!(read(&app, &s.pm, &loan, &day(9)).await["days_past_due"], 9);
    assert_eq!(read(&app, &s.pm, &loan, &day(10)).await["days_past_due"], 0);

    // A hand-built portfolio as of one day: this loan current, one exactly 30 days past due (not
    // at risk), one 31 days past due (at risk).
    let as_of = day(20);
    let as_of_day = due_day + chrono::Duration::days(20);
    let twenty = disbursed(&app, &s, &n1, 2, &product, 20_000_000, "2025-01-01").await;
    assert_eq!(
        read(&app, &s.pm, &twenty, &as_of).await["days_past_due"],
        20
    );
    // Disbursed so that its first instalment was due 30 and 31 days before `as_of`.
    let due_back = |days: i64| {
        let target = as_of_day - chrono::Duration::days(days);
        // One Jalali month before the due day, whatever its length: search back from 28 days.
        (28..=31)
            .map(|d| target - chrono::Duration::days(d))
            .find(|start| tavana_domain::loan::due_date(*start, 1) == Some(target))
            .expect("a disbursement day")
    };
    let exactly_30 = disbursed(
        &app,
        &s,
        &n1,
        3,
        &product,
        30_000_000,
        &due_back(30).to_string(),
    )
    .await;
    let past_31 = disbursed(
        &app,
        &s,
        &n1,
        4,
        &product,
        40_000_000,
        &due_back(31).to_string(),
    )
    .await;
    assert_eq!(
        read(&app, &s.pm, &exactly_30, &as_of).await["days_past_due"],
        30
    );
    assert_eq!(
        read(&app, &s.pm, &past_31, &as_of).await["days_past_due"],
        31
    );
    let par: Value = ok(send(
        &app,
        &s.pm,
        "get",
        &format!("/api/v1/loan-portfolio?as_of={as_of}"),
        Value::Null,
    )
    .await)
    .await;
    // Outstanding principal on `as_of`: 12M less what the first payment repaid of principal
    // (2M), 20M (its first instalment, due 20 days ago, unpaid), 30M and 40M.
    let outstanding = 10_000_000 + 20_000_000 + 30_000_000 + 40_000_000;
    assert_eq!(par["loans"], 4, "{par}");
    assert_eq!(par["total"]["outstanding"], outstanding);
    assert_eq!(par["total"]["at_risk"], 40_000_000);
    assert_eq!(par["total"]["basis_points"], 4_000);
    assert_eq!(par["by_neighbourhood"][0]["id"], n1["id"]);
    assert_eq!(par["by_neighbourhood"][0]["at_risk"], 40_000_000);
    assert_eq!(par["by_product"][0]["id"], product["id"]);
    // Before any disbursement nothing was out.
    let before: Value = ok(send(
        &app,
        &s.pm,
        "get",
        "/api/v1/loan-portfolio?as_of=2024-12-20",
        Value::Null,
    )
    .await)
    .await;
    assert_eq!(before["loans"], 0);
    assert_eq!(before["total"]["basis_points"], Value::Null);
}

async fn large_loans_and_write_offs_need_two_different_managers(app: TestApp) {
    let (n1, _) = two_neighbourhoods(&app).await;
    let s = staff(&app, &n1).await;
    let product = product(&app, &s, "بزرگ", "technical_course", 0).await;
    let who = eligible_person(&app, &n1, 1).await;
    let loan = created(apply(&app, &s, &who, &product, 60_000_000).await).await;
    assert_eq!(loan["approvals_needed"], 2);
    let once = ok(act(&app, &s.pm, &loan, "approve", json!({"note": "بررسی شد"})).await).await;
    assert_eq!(once["state"], "applied");
    assert_eq!(once["approvals"].as_array().expect("approvals").len(), 1);
    let same = problem(act(&app, &s.pm, &loan, "approve", json!({})).await, 422).await;
    assert_eq!(same["errors"][0]["code"], "same_approver");
    // The note may be left out, the body with it.
    let bodiless = app
        .client
        .post(app.url(&format!("/api/v1/loans/{}/approve", id(&loan))))
        .bearer_auth(&s.pm2)
        .send()
        .await
        .expect("sent");
    let twice = ok(bodiless).await;
    assert_eq!(twice["state"], "approved");

    let loan = ok(act(
        &app,
        &s.pm,
        &loan,
        "disburse",
        json!({"disbursed_on": "2025-01-01"}),
    )
    .await)
    .await;
    let owed = loan["balance"].as_i64().expect("balance");
    let first = ok(act(&app, &s.pm, &loan, "write-off", json!({"note": "مهاجرت"})).await).await;
    assert_eq!(first["state"], "disbursed");
    assert_eq!(first["balance"], owed);
    let same = problem(act(&app, &s.pm, &loan, "write-off", json!({})).await, 422).await;
    assert_eq!(same["errors"][0]["code"], "same_approver");
    let written = ok(act(&app, &s.pm2, &loan, "write-off", json!({})).await).await;
    assert_eq!(written["state"], "written_off");
    assert_eq!(written["balance"], 0);
    assert_eq!(written["days_past_due"], 0);
    // A written-off loan bars another.
    let again = problem(apply(&app, &s, &who, &product, 10_000_000).await, 422).await;
    assert_eq!(again["errors"][0]["code"], "no_arrears", "{again}");
    // The ledger was audited at each step.
    assert!(crate::training::audit_count(&app, "loan.write_off").await >= 2);
}

async fn forbidden_transitions_are_refused(app: TestApp) {
    let (n1, _) = two_neighbourhoods(&app).await;
    let s = staff(&app, &n1).await;
    let product = product(&app, &s, "آزمون", "technical_course", 0).await;
    let who = eligible_person(&app, &n1, 1).await;
    let applied = created(apply(&app, &s, &who, &product, 10_000_000).await).await;
    // Applied: no disbursement, repayment, settlement or write-off.
    for (action, body) in [
        ("disburse", json!({})),
        ("settle", json!({"amount": 1})),
        ("write-off", json!({})),
    ] {
        problem(act(&app, &s.pm, &applied, action, body).await, 409).await;
    }
    problem(
        repay(&app, &s, &applied, "early", 1, "2025-01-01").await,
        409,
    )
    .await;
    // A reason is required to reject.
    let no_reason = problem(
        act(&app, &s.pm, &applied, "reject", json!({"reason": " "})).await,
        422,
    )
    .await;
    assert_eq!(no_reason["errors"][0]["field"], "reason");
    let rejected = ok(act(
        &app,
        &s.pm,
        &applied,
        "reject",
        json!({"reason": "مدارک ناقص"}),
    )
    .await)
    .await;
    assert_eq!(rejected["state"], "rejected");
    for action in ["approve", "disburse", "reject"] {
        let body = if action == "reject" {
            json!({"reason": "x"})
        } else {
            json!({})
        };
        problem(act(&app, &s.pm, &applied, action, body).await, 409).await;
    }
    // Disbursed: not approved or rejected again; not disbursed before it was applied for.
    let other = eligible_person(&app, &n1, 2).await;
    let loan = created(apply(&app, &s, &other, &product, 10_000_000).await).await;
    ok(act(&app, &s.pm, &loan, "approve", json!({})).await).await;
    let early = problem(
        act(
            &app,
            &s.pm,
            &loan,
            "disburse",
            json!({"disbursed_on": "2024-12-01"}),
        )
        .await,
        422,
    )
    .await;
    assert_eq!(early["errors"][0]["field"], "disbursed_on");
    ok(act(
        &app,
        &s.pm,
        &loan,
        "disburse",
        json!({"disbursed_on": "2025-01-01"}),
    )
    .await)
    .await;
    problem(act(&app, &s.pm, &loan, "approve", json!({})).await, 409).await;
    problem(
        act(&app, &s.pm, &loan, "reject", json!({"reason": "x"})).await,
        409,
    )
    .await;
    // A repayment before the disbursement is refused.
    let before = problem(repay(&app, &s, &loan, "before", 1, "2024-12-31").await, 422).await;
    assert_eq!(before["errors"][0]["code"], "before_disbursement");
    // Roles: a facilitator neither approves nor disburses; an auditor does not repay.
    assert_eq!(
        act(&app, &s.facilitator, &loan, "write-off", json!({}))
            .await
            .status(),
        403
    );
    let auditor = app.mint(Role::Auditor).await;
    let repaid = repay_as(&app, &auditor, &loan, Some("k"), json!({"amount": 1})).await;
    assert_eq!(repaid.status(), 403);
}

async fn eligibility_is_explained_rule_by_rule(app: TestApp) {
    let (n1, _) = two_neighbourhoods(&app).await;
    let s = staff(&app, &n1).await;
    let course = product(&app, &s, "دوره", "technical_course", 0).await;
    let permit = product(&app, &s, "پروانه", "permit", 0).await;
    // Not enrolled, no course, no permit.
    let newcomer = person(&app, &n1, 1, "1360-01-01").await;
    let refused = problem(apply(&app, &s, &newcomer, &course, 10_000_000).await, 422).await;
    let codes: Vec<&str> = refused["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| e["code"].as_str().expect("code"))
        .collect();
    assert!(codes.contains(&"enrolled"), "{refused}");
    assert!(codes.contains(&"technical_training"), "{refused}");
    assert!(!codes.contains(&"no_arrears"), "{refused}");
    // Enrolled, but the product wants a permit she does not hold.
    enrol_until(&app, &newcomer, "in_training").await;
    let refused = problem(apply(&app, &s, &newcomer, &permit, 10_000_000).await, 422).await;
    assert_eq!(refused["errors"].as_array().expect("errors").len(), 1);
    assert_eq!(refused["errors"][0]["code"], "permit");
    // Outside the product's range.
    let trained = eligible_person(&app, &n1, 2).await;
    let range = problem(apply(&app, &s, &trained, &course, 5_000_000).await, 422).await;
    assert_eq!(range["errors"][0]["field"], "amount");
    // A loan in arrears bars another.
    let loan = created(apply(&app, &s, &trained, &course, 10_000_000).await).await;
    ok(act(&app, &s.pm, &loan, "approve", json!({})).await).await;
    ok(act(
        &app,
        &s.pm,
        &loan,
        "disburse",
        json!({"disbursed_on": "2025-01-01"}),
    )
    .await)
    .await;
    let again = send(
        &app,
        &s.facilitator,
        "post",
        "/api/v1/loans",
        json!({"person_id": trained["id"], "product_id": course["id"], "amount": 10_000_000,
               "purpose": "دوم", "applied_on": "2025-06-01"}),
    )
    .await;
    let refused = problem(again, 422).await;
    assert_eq!(refused["errors"][0]["code"], "no_arrears", "{refused}");
    // Dating the application back to before the arrears does not get round the rule.
    let backdated = problem(apply(&app, &s, &trained, &course, 10_000_000).await, 422).await;
    assert_eq!(backdated["errors"][0]["code"], "no_arrears", "{backdated}");
    // Nor can it be dated in the future.
    let future = send(
        &app,
        &s.facilitator,
        "post",
        "/api/v1/loans",
        json!({"person_id": trained["id"], "product_id": course["id"], "amount": 10_000_000,
               "purpose": "x", "applied_on": "2100-01-01"}),
    )
    .await;
    assert_eq!(
        problem(future, 422).await["errors"][0]["field"],
        "applied_on"
    );
}

async fn early_settlement_waives_later_fees(app: TestApp) {
    let (n1, _) = two_neighbourhoods(&app).await;
    let s = staff(&app, &n1).await;
    let product = product(&app, &s, "زودپرداخت", "technical_course", 0).await;
    let loan = disbursed(&app, &s, &n1, 1, &product, 12_000_000, "2025-01-01").await;
    let fees = sum(&loan["schedule"], "fee");
    // Before the first due day: the principal and the first month's fee; the rest is waived.
    let quote: Value = ok(send(
        &app,
        &s.pm,
        "get",
        &format!("/api/v1/loans/{}/settlement?on=2025-01-15", id(&loan)),
        Value::Null,
    )
    .await)
    .await;
    assert_eq!(quote["principal"], 12_000_000);
    assert_eq!(quote["fee"], 40_000);
    assert_eq!(quote["waived_fee"], fees - 40_000);
    assert_eq!(quote["total"], 12_040_000);
    // The amount handed over must be the quote's.
    let differs = act(
        &app,
        &s.facilitator,
        &loan,
        "settle",
        json!({"on": "2025-01-15", "amount": 12_000_000}),
    )
    .await;
    assert_eq!(
        problem(differs, 422).await["errors"][0]["code"],
        "settlement_differs"
    );
    let settled = ok(act(
        &app,
        &s.facilitator,
        &loan,
        "settle",
        json!({"on": "2025-01-15", "amount": 12_040_000}),
    )
    .await)
    .await;
    assert_eq!(settled["state"], "settled");
    assert_eq!(settled["balance"], 0);
    // Long after the schedule's last due day, a settled loan is in no arrears.
    let later = read(&app, &s.pm, &loan, "2026-01-01").await;
    assert_eq!(later["days_past_due"], 0, "{later}");
    assert_eq!(later["bucket"], Value::Null);
    problem(
        act(&app, &s.facilitator, &loan, "settle", json!({"amount": 1})).await,
        409,
    )
    .await;
}

async fn facilitators_see_only_their_neighbourhoods_loans(app: TestApp) {
    let (n1, n2) = two_neighbourhoods(&app).await;
    let s = staff(&app, &n1).await;
    let product = product(&app, &s, "محله", "technical_course", 0).await;
    let loan = disbursed(&app, &s, &n1, 1, &product, 12_000_000, "2025-01-01").await;
    let outsider = facilitator_token(&app, "facilitator.other", &n2).await;
    let path = format!("/api/v1/loans/{}", id(&loan));
    assert_eq!(
        send(&app, &outsider, "get", &path, Value::Null)
            .await
            .status(),
        404
    );
    assert_eq!(
        send(&app, &s.facilitator, "get", &path, Value::Null)
            .await
            .status(),
        200
    );
    let listed: Value = ok(send(&app, &outsider, "get", "/api/v1/loans", Value::Null).await).await;
    assert_eq!(listed.as_array().expect("list").len(), 0);
    let own: Value =
        ok(send(&app, &s.facilitator, "get", "/api/v1/loans", Value::Null).await).await;
    assert_eq!(own.as_array().expect("list").len(), 1);
    // No repayment, settlement quote or application outside the scope.
    let repaid = repay_as(
        &app,
        &outsider,
        &loan,
        Some("outside"),
        json!({"amount": 1}),
    )
    .await;
    assert_eq!(repaid.status(), 404);
    assert_eq!(
        send(
            &app,
            &outsider,
            "get",
            &format!("{path}/settlement"),
            Value::Null
        )
        .await
        .status(),
        404
    );
    let who = eligible_person(&app, &n1, 2).await;
    let foreign = send(
        &app,
        &outsider,
        "post",
        "/api/v1/loans",
        json!({"person_id": who["id"], "product_id": product["id"], "amount": 10_000_000, "purpose": "x"}),
    )
    .await;
    assert_eq!(
        problem(foreign, 422).await["errors"][0]["field"],
        "person_id"
    );
    let par: Value = ok(send(
        &app,
        &outsider,
        "get",
        "/api/v1/loan-portfolio",
        Value::Null,
    )
    .await)
    .await;
    assert_eq!(par["loans"], 0);
    // Partners see no individual loans at all.
    let partner = app.mint(Role::Partner).await;
    assert_eq!(
        send(&app, &partner, "get", "/api/v1/loans", Value::Null)
            .await
            .status(),
        403
    );
}

async fn an_approved_loan_can_be_cancelled_and_the_programme_rule_decides_financed(app: TestApp) {
    let (n1, _) = two_neighbourhoods(&app).await;
    let s = staff(&app, &n1).await;
    let product = product(&app, &s, "قاعده", "technical_course", 0).await;
    // Approved, then cancelled before the money leaves: rejected, with its reason, and closed.
    let first = eligible_person(&app, &n1, 1).await;
    let loan = created(apply(&app, &s, &first, &product, 10_000_000).await).await;
    ok(act(&app, &s.pm, &loan, "approve", json!({})).await).await;
    let cancelled = ok(act(
        &app,
        &s.pm,
        &loan,
        "reject",
        json!({"reason": "انصراف متقاضی"}),
    )
    .await)
    .await;
    assert_eq!(cancelled["state"], "rejected");
    assert_eq!(cancelled["rejection_reason"], "انصراف متقاضی");
    problem(act(&app, &s.pm, &loan, "disburse", json!({})).await, 409).await;

    // With the programme's `advance_on_loan` off, a disbursed loan leaves the enrolment alone.
    let off = app
        .client
        .patch(app.url("/api/v1/programmes/0169a6c0-0000-7000-8000-000000000001"))
        .bearer_auth(&app.admin_token)
        .json(&json!({"advance_on_loan": false}))
        .send()
        .await
        .expect("sent");
    assert_eq!(off.status(), 200);
    let second = eligible_person(&app, &n1, 2).await;
    disbursed_for(&app, &s, &second, &product, 10_000_000, "2025-01-01").await;
    let enrolments: Value = ok(app
        .get(&format!(
            "/api/v1/enrolments?household_id={}",
            second["household_id"].as_str().expect("household")
        ))
        .await)
    .await;
    assert_eq!(
        enrolments["items"][0]["state"], "in_training",
        "{enrolments}"
    );
}
