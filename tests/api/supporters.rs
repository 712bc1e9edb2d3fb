//! Supporters, producers and purchases: money that adds up to the rial, under concurrency.

use serde_json::{Value, json};
use tavana_domain::access::Role;
use tavana_domain::id::AreaId;

use crate::backend_tests;
use crate::helpers::{Backend, TestApp, problem, test_settings};
use crate::households::{facilitator_token, two_neighbourhoods};
use crate::permits::{act, apply, eligible_person, issue};
use crate::training::{created, id, person};

backend_tests!(
    an_overdraft_is_refused_with_the_balance_and_a_cancellation_restores_it,
    a_replayed_idempotency_key_charges_once,
    purchases_only_from_linked_producers_with_valid_permits_outside_the_household,
    reports_reconcile_with_the_ledger,
    supporters_see_only_their_own_funds,
);

pub const WHH: &str = "0169a6c0-0000-7000-8000-000000000001";
const PASSWORD: &str = "a long enough password";

pub struct Fixture {
    pub n1: Value,
    pub n2: Value,
    /// The supporter's own account.
    pub token: String,
    pub supporter: Value,
    /// A producer of n1 with a valid permit, linked to the supporter.
    pub producer: Value,
    pub pm: String,
    pub officer: String,
}

pub fn area(n: &Value) -> AreaId {
    n["id"].as_str().expect("id").parse().expect("area id")
}

pub async fn login(app: &TestApp, username: &str) -> String {
    let tokens: Value = app
        .login(username, PASSWORD)
        .await
        .json()
        .await
        .expect("tokens");
    tokens["access_token"].as_str().expect("token").to_owned()
}

/// A permit holder of `neighbourhood`, permit issued 2025-06-10 (valid until 2028-06-09).
pub async fn producer(
    app: &TestApp,
    officer: &str,
    neighbourhood: &Value,
    n: u32,
) -> (Value, Value) {
    let p = eligible_person(app, neighbourhood, n).await;
    let applied = created(apply(app, &p, "tailoring", "2025-06-01").await).await;
    let issued = issue(app, officer, &applied["application"], "2025-06-10").await;
    (p, issued["permit"].clone())
}

async fn designate(
    app: &TestApp,
    username: &str,
    neighbourhood: &Value,
    n: u32,
) -> (String, Value) {
    let user = app
        .create_user(
            username,
            Role::Supporter,
            PASSWORD,
            vec![area(neighbourhood)],
        )
        .await;
    let who = person(app, neighbourhood, n, "1350-01-01").await;
    let supporter = created(
        app.post_json(
            "/api/v1/supporters",
            &json!({"user_id": user.id.to_string(), "person_id": who["id"], "programme_id": WHH,
                    "neighbourhood_id": neighbourhood["id"], "starts_on": "2025-01-01"}),
        )
        .await,
    )
    .await;
    (login(app, username).await, supporter)
}

pub(crate) async fn link(app: &TestApp, supporter: &Value, producer: &Value) -> reqwest::Response {
    app.post_json(
        &format!("/api/v1/supporters/{}/producers", id(supporter)),
        &json!({"person_id": producer["id"]}),
    )
    .await
}

/// A second supporter of n1, `supporter.two` (password `PASSWORD`), who is a producer herself
/// (eligible person `n`, with a permit), linked to herself: the supporter and the person.
pub(crate) async fn supporter_of_her_own(app: &TestApp, f: &Fixture, n: u32) -> (Value, Value) {
    let own = eligible_person(app, &f.n1, n).await;
    let applied = created(apply(app, &own, "pastry", "2025-06-01").await).await;
    issue(app, &f.officer, &applied["application"], "2025-06-10").await;
    let user = app
        .create_user(
            "supporter.two",
            Role::Supporter,
            PASSWORD,
            vec![area(&f.n1)],
        )
        .await;
    let herself = created(
        app.post_json(
            "/api/v1/supporters",
            &json!({"user_id": user.id.to_string(), "person_id": own["id"], "programme_id": WHH,
                    "neighbourhood_id": f.n1["id"], "starts_on": "2025-01-01"}),
        )
        .await,
    )
    .await;
    assert_eq!(link(app, &herself, &own).await.status(), 204);
    (herself, own)
}

pub async fn fixture(app: &TestApp) -> Fixture {
    let (n1, n2) = two_neighbourhoods(app).await;
    let officer = app.mint(Role::PermitOfficer).await;
    let (producer, _) = producer(app, &officer, &n1, 1).await;
    let (token, supporter) = designate(app, "supporter.one", &n1, 50).await;
    assert_eq!(link(app, &supporter, &producer).await.status(), 204);
    Fixture {
        n1,
        n2,
        token,
        supporter,
        producer,
        pm: app.mint(Role::ProgrammeManager).await,
        officer,
    }
}

pub async fn allocate(app: &TestApp, f: &Fixture, amount: i64) -> reqwest::Response {
    app.client
        .post(app.url(&format!(
            "/api/v1/supporters/{}/allocations",
            id(&f.supporter)
        )))
        .bearer_auth(&f.pm)
        .json(&json!({"amount": amount, "note": "تخصیص"}))
        .send()
        .await
        .expect("sent")
}

/// `POST /purchases` of `order`, as `token`, with an idempotency key.
pub(crate) async fn place(
    app: &TestApp,
    token: &str,
    order: &Value,
    key: &str,
) -> reqwest::Response {
    app.client
        .post(app.url("/api/v1/purchases"))
        .bearer_auth(token)
        .header("idempotency-key", key)
        .json(order)
        .send()
        .await
        .expect("sent")
}

async fn buy(
    app: &TestApp,
    token: &str,
    supporter: &Value,
    producer: &Value,
    amount: i64,
    key: &str,
) -> reqwest::Response {
    let order = json!({"supporter_id": supporter["id"], "producer_id": producer["id"],
                       "lines": [{"kind": "product", "description": "روسری دوخته", "quantity": 2,
                                  "unit_price": amount / 2}]});
    place(app, token, &order, key).await
}

async fn transition(
    app: &TestApp,
    token: &str,
    purchase: &Value,
    body: Value,
) -> reqwest::Response {
    app.client
        .post(app.url(&format!("/api/v1/purchases/{}/transitions", id(purchase))))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("sent")
}

async fn get_json(app: &TestApp, token: &str, path: impl AsRef<str>) -> Value {
    app.client
        .get(app.url(path.as_ref()))
        .bearer_auth(token)
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json")
}

pub async fn ledger(app: &TestApp, supporter: &Value) -> Value {
    app.get(&format!("/api/v1/supporters/{}/ledger", id(supporter)))
        .await
        .json()
        .await
        .expect("json")
}

/// The balance, checked against the sum of the entries.
pub async fn balance(app: &TestApp, supporter: &Value) -> i64 {
    let ledger = ledger(app, supporter).await;
    let sum: i64 = ledger["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["amount"].as_i64().expect("amount"))
        .sum();
    let balance = ledger["balance"].as_i64().expect("balance");
    assert_eq!(balance, sum, "the balance is the sum of the ledger");
    balance
}

async fn an_overdraft_is_refused_with_the_balance_and_a_cancellation_restores_it(app: TestApp) {
    let f = fixture(&app).await;
    let posted: Value = allocate(&app, &f, 1_000_000)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(posted["balance"], 1_000_000);
    let first = created(buy(&app, &f.token, &f.supporter, &f.producer, 600_000, "p1").await).await;
    assert_eq!(first["total"], 600_000);
    assert_eq!(first["balance"], 400_000);
    assert_eq!(first["state"], "ordered");

    let refused = buy(&app, &f.token, &f.supporter, &f.producer, 500_000, "p2").await;
    let body = problem(refused, 409).await;
    assert_eq!(body["balance"], 400_000);
    assert_eq!(body["type"], "urn:tavana:problem:insufficient-funds");
    assert_eq!(balance(&app, &f.supporter).await, 400_000);

    // Cancelling needs a reason, then restores the funds with a reversing entry.
    problem(
        transition(&app, &f.token, &first, json!({"to": "cancelled"})).await,
        422,
    )
    .await;
    let cancelled = transition(
        &app,
        &f.token,
        &first,
        json!({"to": "cancelled", "reason": "کالا آماده نشد"}),
    )
    .await;
    assert_eq!(cancelled.status(), 200);
    let cancelled: Value = cancelled.json().await.expect("json");
    assert_eq!(cancelled["state"], "cancelled");
    assert_eq!(cancelled["balance"], 1_000_000);
    let body = problem(
        transition(
            &app,
            &f.token,
            &first,
            json!({"to": "cancelled", "reason": "x"}),
        )
        .await,
        409,
    )
    .await;
    assert_eq!(body["allowed"], json!([]));
    let ledger = ledger(&app, &f.supporter).await;
    let kinds: Vec<(&str, i64)> = ledger["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().expect("kind"),
                e["amount"].as_i64().expect("amount"),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("allocation", 1_000_000),
            ("purchase", -600_000),
            ("reversal", 600_000)
        ]
    );

    // Received, then paid; paid is final.
    let second =
        created(buy(&app, &f.token, &f.supporter, &f.producer, 1_000_000, "p3").await).await;
    assert_eq!(second["balance"], 0);
    let body = problem(
        transition(&app, &f.token, &second, json!({"to": "paid"})).await,
        409,
    )
    .await;
    assert_eq!(body["allowed"], json!(["received", "cancelled"]));
    for to in ["received", "paid"] {
        let response = transition(&app, &f.token, &second, json!({"to": to})).await;
        assert_eq!(response.status(), 200, "{to}");
    }
    problem(
        transition(
            &app,
            &f.token,
            &second,
            json!({"to": "cancelled", "reason": "x"}),
        )
        .await,
        409,
    )
    .await;

    // An adjustment cannot overdraw either.
    let adjust = app
        .client
        .post(app.url(&format!(
            "/api/v1/supporters/{}/adjustments",
            id(&f.supporter)
        )))
        .bearer_auth(&f.pm)
        .json(&json!({"amount": -1, "note": "اصلاح"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(problem(adjust, 409).await["balance"], 0);
    // Only programme managers allocate; only supporters buy.
    let facilitator = facilitator_token(&app, "fatemeh", &f.n1).await;
    let allocation = app
        .client
        .post(app.url(&format!(
            "/api/v1/supporters/{}/allocations",
            id(&f.supporter)
        )))
        .bearer_auth(&facilitator)
        .json(&json!({"amount": 5}))
        .send()
        .await
        .expect("sent");
    problem(allocation, 403).await;
    problem(
        buy(&app, &facilitator, &f.supporter, &f.producer, 10, "p4").await,
        403,
    )
    .await;
    assert_eq!(balance(&app, &f.supporter).await, 0);
}

async fn a_replayed_idempotency_key_charges_once(app: TestApp) {
    let f = fixture(&app).await;
    allocate(&app, &f, 300_000).await;
    let first = buy(
        &app,
        &f.token,
        &f.supporter,
        &f.producer,
        100_000,
        "same-key",
    )
    .await;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.expect("json");
    let again = buy(
        &app,
        &f.token,
        &f.supporter,
        &f.producer,
        100_000,
        "same-key",
    )
    .await;
    assert_eq!(again.status(), 201);
    assert_eq!(again.json::<Value>().await.expect("json"), first);
    assert_eq!(balance(&app, &f.supporter).await, 200_000);
    // The same key with another body is refused.
    problem(
        buy(
            &app,
            &f.token,
            &f.supporter,
            &f.producer,
            50_000,
            "same-key",
        )
        .await,
        422,
    )
    .await;
    // No key at all: refused before anything happens.
    let unkeyed = app
        .client
        .post(app.url("/api/v1/purchases"))
        .bearer_auth(&f.token)
        .json(&json!({"supporter_id": f.supporter["id"], "producer_id": f.producer["id"],
                      "lines": [{"kind": "product", "description": "x", "quantity": 1, "unit_price": 10}]}))
        .send()
        .await
        .expect("sent");
    problem(unkeyed, 400).await;
    assert_eq!(balance(&app, &f.supporter).await, 200_000);
    let purchases: Value = app
        .get(&format!(
            "/api/v1/supporters/{}/purchases",
            id(&f.supporter)
        ))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(purchases.as_array().map(Vec::len), Some(1));
}

async fn purchases_only_from_linked_producers_with_valid_permits_outside_the_household(
    app: TestApp,
) {
    let f = fixture(&app).await;
    allocate(&app, &f, 10_000_000).await;
    // A permit holder of the neighbourhood who is not linked.
    let (unlinked, _) = producer(&app, &f.officer, &f.n1, 2).await;
    let body = problem(
        buy(&app, &f.token, &f.supporter, &unlinked, 1000, "u1").await,
        422,
    )
    .await;
    assert_eq!(body["errors"][0]["code"], "not_linked");
    // Linking needs a producer: a person without a permit is refused, and one of another
    // neighbourhood too.
    let plain = person(&app, &f.n1, 3, "1360-01-01").await;
    let body = problem(link(&app, &f.supporter, &plain).await, 422).await;
    assert_eq!(body["errors"][0]["code"], "not_a_producer");
    let (elsewhere, _) = producer(&app, &f.officer, &f.n2, 4).await;
    let body = problem(link(&app, &f.supporter, &elsewhere).await, 422).await;
    assert_eq!(body["errors"][0]["code"], "other_neighbourhood");

    // A suspended permit: linked earlier, refused now.
    let (suspended, permit) = producer(&app, &f.officer, &f.n1, 5).await;
    assert_eq!(link(&app, &f.supporter, &suspended).await.status(), 204);
    created(buy(&app, &f.token, &f.supporter, &suspended, 1000, "s1").await).await;
    let response = act(
        &app,
        &f.officer,
        &permit,
        json!({"action": "suspend", "reason": "بازرسی"}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let body = problem(
        buy(&app, &f.token, &f.supporter, &suspended, 1000, "s2").await,
        422,
    )
    .await;
    assert_eq!(body["errors"][0]["code"], "no_valid_permit");

    // An expired permit: issued in 1399 (2020-04-03), valid until 2023-04-02.
    let old = eligible_person(&app, &f.n1, 6).await;
    let applied = created(apply(&app, &old, "knitting", "1399-01-10").await).await;
    issue(&app, &f.officer, &applied["application"], "1399-01-15").await;
    let linked_then = app
        .post_json(
            &format!("/api/v1/supporters/{}/producers", id(&f.supporter)),
            &json!({"person_id": old["id"], "linked_on": "2022-01-01"}),
        )
        .await;
    assert_eq!(linked_then.status(), 204);
    let body = problem(
        buy(&app, &f.token, &f.supporter, &old, 1000, "e1").await,
        422,
    )
    .await;
    assert_eq!(body["errors"][0]["code"], "no_valid_permit");

    // The supporter's own household: the supporter is a producer herself.
    let (herself, own) = supporter_of_her_own(&app, &f, 7).await;
    let pm_alloc = app
        .client
        .post(app.url(&format!("/api/v1/supporters/{}/allocations", id(&herself))))
        .bearer_auth(&f.pm)
        .json(&json!({"amount": 5000}))
        .send()
        .await
        .expect("sent");
    assert_eq!(pm_alloc.status(), 201);
    let token = login(&app, "supporter.two").await;
    let body = problem(buy(&app, &token, &herself, &own, 1000, "o1").await, 422).await;
    assert_eq!(body["errors"][0]["code"], "own_household");

    // A third supporter for the neighbourhood is over the programme's limit of two.
    let third = app
        .create_user(
            "supporter.three",
            Role::Supporter,
            PASSWORD,
            vec![area(&f.n1)],
        )
        .await;
    let who = person(&app, &f.n1, 8, "1350-01-01").await;
    let response = app
        .post_json(
            "/api/v1/supporters",
            &json!({"user_id": third.id.to_string(), "person_id": who["id"], "programme_id": WHH,
                    "neighbourhood_id": f.n1["id"], "starts_on": "2025-01-01"}),
        )
        .await;
    problem(response, 409).await;
    // Only the one good purchase was charged.
    assert_eq!(balance(&app, &f.supporter).await, 10_000_000 - 1000);
}

async fn reports_reconcile_with_the_ledger(app: TestApp) {
    let f = fixture(&app).await;
    let (second, _) = producer(&app, &f.officer, &f.n1, 2).await;
    assert_eq!(link(&app, &f.supporter, &second).await.status(), 204);
    allocate(&app, &f, 5_000_000).await;
    allocate(&app, &f, 1_000_000).await;
    let a1 = created(buy(&app, &f.token, &f.supporter, &f.producer, 2_000_000, "r1").await).await;
    created(buy(&app, &f.token, &f.supporter, &f.producer, 1_000_000, "r2").await).await;
    created(buy(&app, &f.token, &f.supporter, &second, 800_000, "r3").await).await;
    let cancelled = created(buy(&app, &f.token, &f.supporter, &second, 400_000, "r4").await).await;
    let response = transition(
        &app,
        &f.token,
        &cancelled,
        json!({"to": "cancelled", "reason": "x"}),
    )
    .await;
    assert_eq!(response.status(), 200);
    transition(&app, &f.token, &a1, json!({"to": "received"})).await;

    let balance = balance(&app, &f.supporter).await;
    assert_eq!(balance, 6_000_000 - 3_800_000);
    let report: Value = app
        .get(&format!("/api/v1/supporters/{}/report", id(&f.supporter)))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(report["allocated"], 6_000_000);
    assert_eq!(report["spent"], 3_800_000);
    assert_eq!(report["balance"], balance);
    assert_eq!(
        report["allocated"].as_i64().expect("allocated")
            + report["adjusted"].as_i64().expect("adjusted")
            - report["spent"].as_i64().expect("spent"),
        balance
    );
    // 3,000,000 of 3,800,000 went to the first producer: more than half.
    assert_eq!(report["concentrated"], true);
    let lines = report["producers"].as_array().expect("producers");
    let first = lines
        .iter()
        .find(|l| l["person_id"] == f.producer["id"])
        .expect("first producer");
    assert_eq!(first["spent"], 3_000_000);
    assert_eq!(first["concentrated"], true);
    let other = lines
        .iter()
        .find(|l| l["person_id"] == second["id"])
        .expect("second producer");
    assert_eq!(other["spent"], 800_000);
    assert_eq!(other["concentrated"], false);

    // The producer's sales: this month, one buyer, cancelled purchases left out.
    let sales: Value = app
        .get(&format!("/api/v1/persons/{}/sales", id(&second)))
        .await
        .json()
        .await
        .expect("json");
    let month = chrono::Utc::now().date_naive().format("%Y-%m").to_string();
    assert_eq!(
        sales,
        json!([{"month": month, "supporter_id": f.supporter["id"], "purchases": 1, "amount": 800_000}])
    );

    // Per neighbourhood, the same money.
    let funds: Value = app
        .get("/api/v1/reports/neighbourhood-funds")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        funds,
        json!([{"neighbourhood_id": f.n1["id"], "supporters": 1, "allocated": 6_000_000,
                "spent": 3_800_000, "balance": balance}])
    );
    // n2 has no supporter; n1 has one.
    let gaps: Value = app
        .get(&format!(
            "/api/v1/reports/neighbourhoods-without-supporters?programme_id={WHH}"
        ))
        .await
        .json()
        .await
        .expect("json");
    let ids: Vec<&Value> = gaps
        .as_array()
        .expect("list")
        .iter()
        .map(|n| &n["id"])
        .collect();
    assert_eq!(ids, [&f.n2["id"]]);
    // A facilitator of n1 is not told about n2.
    let insider = facilitator_token(&app, "insider", &f.n1).await;
    let own_gaps = get_json(
        &app,
        &insider,
        format!("/api/v1/reports/neighbourhoods-without-supporters?programme_id={WHH}"),
    )
    .await;
    assert_eq!(own_gaps, json!([]));
    // Ending the designation opens the gap from the next day.
    let ended = app
        .post_json(
            &format!("/api/v1/supporters/{}/end", id(&f.supporter)),
            &json!({"ends_on": "2026-01-31"}),
        )
        .await;
    assert_eq!(ended.status(), 200);
    let gaps: Value = app
        .get(&format!(
            "/api/v1/reports/neighbourhoods-without-supporters?programme_id={WHH}&on=2026-02-01"
        ))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(gaps.as_array().map(Vec::len), Some(2));
    // An ended designation is never extended.
    let extended = app
        .post_json(
            &format!("/api/v1/supporters/{}/end", id(&f.supporter)),
            &json!({"ends_on": "2026-06-30"}),
        )
        .await;
    assert_eq!(
        problem(extended, 422).await["errors"][0]["code"],
        "after_end"
    );
    // Two supporters one after the other leave room for a third alongside (limit 2 at once).
    for (username, n, starts, ends) in [
        ("s.jan", 60, "2025-01-01", Some("2025-03-31")),
        ("s.apr", 61, "2025-04-01", Some("2025-06-30")),
    ] {
        let user = app
            .create_user(username, Role::Supporter, PASSWORD, vec![area(&f.n2)])
            .await;
        let who = person(&app, &f.n2, n, "1350-01-01").await;
        created(
            app.post_json(
                "/api/v1/supporters",
                &json!({"user_id": user.id.to_string(), "person_id": who["id"], "programme_id": WHH,
                        "neighbourhood_id": f.n2["id"], "starts_on": starts, "ends_on": ends}),
            )
            .await,
        )
        .await;
    }
    let user = app
        .create_user("s.open", Role::Supporter, PASSWORD, vec![area(&f.n2)])
        .await;
    let who = person(&app, &f.n2, 62, "1350-01-01").await;
    created(
        app.post_json(
            "/api/v1/supporters",
            &json!({"user_id": user.id.to_string(), "person_id": who["id"], "programme_id": WHH,
                    "neighbourhood_id": f.n2["id"], "starts_on": "2025-02-01"}),
        )
        .await,
    )
    .await;
}

async fn supporters_see_only_their_own_funds(app: TestApp) {
    let f = fixture(&app).await;
    allocate(&app, &f, 1000).await;
    let (other, _) = designate(&app, "supporter.two", &f.n1, 51).await;
    let (far, _) = designate(&app, "supporter.far", &f.n2, 52).await;
    let path = format!("/api/v1/supporters/{}/ledger", id(&f.supporter));
    for token in [&other, &far] {
        let response = app
            .client
            .get(app.url(&path))
            .bearer_auth(token)
            .send()
            .await
            .expect("sent");
        problem(response, 404).await;
        // Nor can they buy with it.
        let body = problem(
            buy(&app, token, &f.supporter, &f.producer, 10, "x").await,
            422,
        )
        .await;
        assert_eq!(body["errors"][0]["field"], "supporter_id");
    }
    let own = app
        .client
        .get(app.url(&path))
        .bearer_auth(&f.token)
        .send()
        .await
        .expect("sent");
    assert_eq!(own.status(), 200);
    // A producer's sales show another supporter only the purchases they made themselves.
    let mine = created(buy(&app, &f.token, &f.supporter, &f.producer, 600, "mine").await).await;
    // Nor can they read the purchase; the supporter who placed it can.
    let purchase_path = format!("/api/v1/purchases/{}", id(&mine));
    for token in [&other, &far] {
        problem(app.get_as(token, &purchase_path).await, 404).await;
    }
    let read = get_json(&app, &f.token, &purchase_path).await;
    assert_eq!(read["id"], mine["id"]);
    let sales = get_json(
        &app,
        &other,
        format!("/api/v1/persons/{}/sales", id(&f.producer)),
    )
    .await;
    assert_eq!(sales, json!([]));
    let funds = get_json(&app, &other, "/api/v1/reports/neighbourhood-funds").await;
    assert_eq!(funds[0]["allocated"], 0);
    // No order dated in the future.
    let later = app
        .client
        .post(app.url("/api/v1/purchases"))
        .bearer_auth(&f.token)
        .header("idempotency-key", "future")
        .json(&json!({"supporter_id": f.supporter["id"], "producer_id": f.producer["id"],
                      "ordered_on": "2199-01-01",
                      "lines": [{"kind": "product", "description": "x", "quantity": 1, "unit_price": 10}]}))
        .send()
        .await
        .expect("sent");
    assert_eq!(problem(later, 422).await["errors"][0]["code"], "in_future");
    let outsider = facilitator_token(&app, "outsider", &f.n2).await;
    let as_outsider = |path: String| {
        let request = app.client.get(app.url(&path)).bearer_auth(&outsider).send();
        async move { request.await.expect("sent") }
    };
    for path in [
        format!("/api/v1/supporters/{}", id(&f.supporter)),
        format!("/api/v1/supporters/{}/ledger", id(&f.supporter)),
        format!("/api/v1/supporters/{}/report", id(&f.supporter)),
        format!("/api/v1/persons/{}/products", id(&f.producer)),
        format!("/api/v1/persons/{}/sales", id(&f.producer)),
    ] {
        problem(as_outsider(path).await, 404).await;
    }
    let product = app
        .client
        .post(app.url(&format!("/api/v1/persons/{}/products", id(&f.producer))))
        .bearer_auth(&outsider)
        .json(&json!({"kind": "product", "name": "روسری", "unit": "عدد", "reference_price": 100}))
        .send()
        .await
        .expect("sent");
    problem(product, 404).await;
    // The funds report covers the outsider's neighbourhood only: n2's supporter, none of n1's money.
    let funds: Value = as_outsider("/api/v1/reports/neighbourhood-funds".to_owned())
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        funds,
        json!([{"neighbourhood_id": f.n2["id"], "supporters": 1, "allocated": 0, "spent": 0, "balance": 0}])
    );
}

/// 50 purchases at once against funds that cover 23 of them, on a server with four workers: 23
/// are accepted, 27 refused with 409, and the ledger adds up.
async fn concurrent_purchases_never_overdraw(backend: Backend) {
    let settings = tavana_http::Settings {
        workers: Some(4),
        ..test_settings()
    };
    let Some(app) = TestApp::spawn_with(backend, settings).await else {
        return;
    };
    let f = fixture(&app).await;
    allocate(&app, &f, 2_350_000).await;
    let attempts = (0..50).map(|i| {
        let (app, f) = (&app, &f);
        async move {
            buy(
                app,
                &f.token,
                &f.supporter,
                &f.producer,
                100_000,
                &format!("c{i}"),
            )
            .await
            .status()
            .as_u16()
        }
    });
    let statuses = futures_util::future::join_all(attempts).await;
    let accepted = statuses.iter().filter(|s| **s == 201).count();
    let refused = statuses.iter().filter(|s| **s == 409).count();
    assert_eq!((accepted, refused), (23, 27), "{statuses:?}");
    assert_eq!(balance(&app, &f.supporter).await, 50_000);
    let ledger = ledger(&app, &f.supporter).await;
    assert_eq!(ledger["entries"].as_array().map(Vec::len), Some(24));
}

mod concurrent_purchases_never_overdraw {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn sqlite() {
        super::concurrent_purchases_never_overdraw(crate::helpers::Backend::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn postgres() {
        super::concurrent_purchases_never_overdraw(crate::helpers::Backend::Postgres).await;
    }
}
