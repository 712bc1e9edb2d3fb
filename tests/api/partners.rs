//! Partner integration: MoU data policies and the changes feed.

use std::collections::HashSet;

use serde_json::{Value, json};
use tavana_domain::access::Role;

use crate::auth::{PASSWORD, client_grant, create_client, refresh, token_of};
use crate::backend_tests;
use crate::helpers::{TestApp, problem};
use crate::households::two_neighbourhoods;
use crate::training::national_id;

backend_tests!(
    a_policy_shapes_what_a_partner_reads,
    an_mou_out_of_force_is_refused,
    the_feed_misses_nothing_under_concurrent_writes,
    research_tables_suppress_small_cells,
    a_partner_submits_what_its_policy_allows,
    a_change_of_head_changes_what_partners_see,
);

/// A partner agency with an API client (scope `registry:read`) and the given policy; returns
/// (organisation id, client token).
pub async fn partner(app: &TestApp, policy: &Value) -> (String, String) {
    partner_with(app, policy, &["registry:read", "reports:read"]).await
}

pub async fn partner_with(app: &TestApp, policy: &Value, scopes: &[&str]) -> (String, String) {
    let client = create_client(app, scopes).await;
    let org = client["organisation_id"]
        .as_str()
        .expect("organisation")
        .to_owned();
    set_policy(app, &org, policy).await;
    let token = token_of(
        client_grant(
            app,
            client["client_id"].as_str().expect("client id"),
            client["client_secret"].as_str().expect("secret"),
        )
        .await,
    )
    .await["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    (org, token)
}

pub async fn set_policy(app: &TestApp, org: &str, policy: &Value) -> Value {
    let response = app
        .client
        .put(app.url(&format!("/api/v1/organisations/{org}/policy")))
        .bearer_auth(&app.admin_token)
        .json(policy)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200, "set policy");
    response.json().await.expect("policy")
}

pub fn study_policy() -> Value {
    json!({
        "purpose": "the programme's baseline and follow-up study",
        "starts_on": "2020-01-01", "ends_on": "2099-12-31",
        "resources": ["persons", "households"],
        "withheld": ["national_id", "birth_date", "address", "mobile"],
    })
}

/// A household headed by a woman; her consent to share with partners when `shares`.
pub async fn household_with_head(
    app: &TestApp,
    neighbourhood: &Value,
    n: u32,
    shares: bool,
) -> (Value, Value) {
    let (household, head) =
        crate::enrolments::household_with_head(app, neighbourhood, &national_id(n)).await;
    if shares {
        give_consent(app, &head).await;
    }
    (household, head)
}

pub async fn give_consent(app: &TestApp, person: &Value) -> Value {
    let response = app
        .post_json(
            &format!(
                "/api/v1/persons/{}/consents",
                person["id"].as_str().expect("id")
            ),
            &json!({"purpose": "research", "share_with_partners": true, "given_on": "1400-01-01"}),
        )
        .await;
    assert_eq!(response.status(), 201);
    response.json().await.expect("consent")
}

async fn feed_as(app: &TestApp, token: &str, query: &str) -> reqwest::Response {
    app.client
        .get(app.url(&format!("/api/v1/changes{query}")))
        .bearer_auth(token)
        .send()
        .await
        .expect("sent")
}

/// Every change after `after`, page by page; returns the items and the last cursor.
async fn drain(app: &TestApp, token: &str, after: &str, extra: &str) -> (Vec<Value>, String) {
    let mut items = Vec::new();
    let mut cursor = after.to_owned();
    loop {
        let response = feed_as(app, token, &format!("?after={cursor}&limit=3{extra}")).await;
        assert_eq!(response.status(), 200);
        let page: Value = response.json().await.expect("page");
        items.extend(page["items"].as_array().expect("items").iter().cloned());
        cursor = page["next_cursor"].as_str().expect("cursor").to_owned();
        if page["has_more"] == json!(false) {
            return (items, cursor);
        }
    }
}

fn latest<'a>(items: &'a [Value], id: &Value) -> &'a Value {
    items
        .iter()
        .rev()
        .find(|c| c["id"] == *id)
        .expect("a change of the record")
}

async fn a_policy_shapes_what_a_partner_reads(app: TestApp) {
    let (east, _) = two_neighbourhoods(&app).await;
    let (org, token) = partner(&app, &study_policy()).await;

    // The policy reads back, and setting it was audited.
    let read: Value = app
        .get(&format!("/api/v1/organisations/{org}/policy"))
        .await
        .json()
        .await
        .expect("policy");
    assert_eq!(
        read["withheld"],
        json!(["national_id", "mobile", "address", "birth_date"])
    );
    assert_eq!(read["ends_on"], "2099-12-31");
    let audit: Value = app
        .get("/api/v1/audit?action=partner_policy.set")
        .await
        .json()
        .await
        .expect("audit");
    assert_eq!(audit["items"].as_array().map(Vec::len), Some(1));

    let (shared_home, shares) = household_with_head(&app, &east, 11, true).await;
    let (private_home, keeps) = household_with_head(&app, &east, 12, false).await;

    let (items, cursor) = drain(&app, &token, "0", "").await;
    let seqs: Vec<i64> = items
        .iter()
        .map(|c| c["seq"].as_i64().expect("seq"))
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order: {seqs:?}");
    // The consenting head: her record without the withheld fields, her birth year instead.
    let person = &latest(&items, &shares["id"])["data"];
    assert_eq!(person["first_name"], "زینب");
    assert_eq!(person["birth_year"], 1986);
    for field in ["national_id", "birth_date", "mobile"] {
        assert!(person.get(field).is_none(), "{field} is withheld: {person}");
    }
    let home = latest(&items, &shared_home["id"]);
    assert_eq!(home["type"], "households");
    assert_eq!(home["data"]["head_person_id"], shares["id"]);
    assert!(home["data"].get("address").is_none());
    // Without consent: nothing of her or her household, not even that they exist.
    for id in [&keeps["id"], &private_home["id"]] {
        assert!(items.iter().all(|c| c["id"] != *id), "{id} is not shown");
    }
    assert!(
        !Value::from(items.clone())
            .to_string()
            .contains(&national_id(12))
    );

    // Outside the policy: refused. Staff see records whole.
    problem(feed_as(&app, &token, "?types=enrolments").await, 403).await;
    let staff: Value = app
        .get("/api/v1/changes?types=persons")
        .await
        .json()
        .await
        .expect("feed");
    assert!(staff.to_string().contains(&national_id(12)));
    // A facilitator has no feed.
    problem(
        feed_as(&app, &app.mint(Role::Facilitator).await, "").await,
        403,
    )
    .await;

    // Consent withdrawn: the partner's next page deletes her.
    let consents: Value = app
        .get(&format!(
            "/api/v1/persons/{}/consents",
            shares["id"].as_str().expect("id")
        ))
        .await
        .json()
        .await
        .expect("consents");
    let withdraw = format!(
        "/api/v1/persons/{}/consents/{}/withdraw",
        shares["id"].as_str().expect("id"),
        consents[0]["id"].as_str().expect("id")
    );
    // Not ahead of time: sharing would end on a day no change marks.
    let ahead = problem(
        app.post_json(&withdraw, &json!({"on": "2098-01-01", "reason": "later"}))
            .await,
        422,
    )
    .await;
    assert_eq!(ahead["errors"][0]["code"], "in_future");
    let response = app
        .post_json(
            &withdraw,
            &json!({"on": "1401-01-01", "reason": "changed her mind"}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let (after, _) = drain(&app, &token, &cursor, "").await;
    for id in [&shares["id"], &shared_home["id"]] {
        assert_eq!(latest(&after, id)["op"], "deleted", "{after:?}");
    }

    // A bad policy is refused with the fields named.
    let response = app
        .client
        .put(app.url(&format!("/api/v1/organisations/{org}/policy")))
        .bearer_auth(&app.admin_token)
        .json(
            &json!({"purpose": "x", "starts_on": "2026-01-01", "ends_on": "2025-01-01",
                      "resources": ["persons"], "writes": ["persons"]}),
        )
        .send()
        .await
        .expect("sent");
    let body = problem(response, 422).await;
    assert!(body.to_string().contains("before_start") && body.to_string().contains("not_writable"));
}

async fn an_mou_out_of_force_is_refused(app: TestApp) {
    let client = create_client(&app, &["registry:read"]).await;
    let org = client["organisation_id"].as_str().expect("org").to_owned();
    let (id, secret) = (
        client["client_id"].as_str().expect("id"),
        client["client_secret"].as_str().expect("secret"),
    );
    // No policy: a token, but no data.
    let token = token_of(client_grant(&app, id, secret).await).await["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    problem(feed_as(&app, &token, "").await, 403).await;

    // In force: the feed answers.
    set_policy(&app, &org, &study_policy()).await;
    assert_eq!(feed_as(&app, &token, "").await.status(), 200);

    // Ended yesterday: no new token, and the token from before reads nothing.
    let mut ended = study_policy();
    ended["ends_on"] = json!((chrono::Utc::now().date_naive() - chrono::Days::new(1)).to_string());
    set_policy(&app, &org, &ended).await;
    problem(client_grant(&app, id, secret).await, 403).await;
    let body = problem(feed_as(&app, &token, "").await, 403).await;
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("in force"))
    );

    // Not yet started: refused as well.
    let mut later = study_policy();
    later["starts_on"] = json!("2098-01-01");
    set_policy(&app, &org, &later).await;
    problem(feed_as(&app, &token, "").await, 403).await;

    // A user of the agency (the partner role) is held to its MoU as its clients are: no login
    // and no refresh while it is out of force.
    let analyst = app
        .create_user("jahad.analyst", Role::Partner, PASSWORD, vec![])
        .await;
    let analyst_org = analyst.organisation_id.to_string();
    set_policy(&app, &analyst_org, &study_policy()).await;
    let tokens = token_of(app.login("jahad.analyst", PASSWORD).await).await;
    set_policy(&app, &analyst_org, &ended).await;
    let refused = problem(app.login("jahad.analyst", PASSWORD).await, 403).await;
    assert!(
        refused["detail"]
            .as_str()
            .is_some_and(|d| d.contains("in force"))
    );
    let used = tokens["refresh_token"].as_str().expect("refresh token");
    problem(refresh(&app, used).await, 403).await;
}

async fn the_feed_misses_nothing_under_concurrent_writes(app: TestApp) {
    let (east, west) = two_neighbourhoods(&app).await;
    let app = std::sync::Arc::new(app);
    // Writers add households in two neighbourhoods while a reader pages through the feed.
    let mut writers = Vec::new();
    for w in 0..4 {
        let app = app.clone();
        let hood = if w % 2 == 0 {
            east.clone()
        } else {
            west.clone()
        };
        writers.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for _ in 0..10 {
                let created: Value = app
                    .post_json(
                        "/api/v1/households",
                        &json!({"neighbourhood_id": hood["id"], "address": "کوچه یاس"}),
                    )
                    .await
                    .json()
                    .await
                    .expect("household");
                ids.push(created["id"].as_str().expect("id").to_owned());
            }
            ids
        }));
    }
    let reader = {
        let app = app.clone();
        tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut cursor = "0".to_owned();
            for _ in 0..200 {
                let page: Value = app
                    .get(&format!(
                        "/api/v1/changes?types=households&after={cursor}&limit=2"
                    ))
                    .await
                    .json()
                    .await
                    .expect("page");
                for item in page["items"].as_array().expect("items") {
                    seen.push((item["seq"].as_i64().expect("seq"), item["id"].clone()));
                }
                cursor = page["next_cursor"].as_str().expect("cursor").to_owned();
                tokio::task::yield_now().await;
            }
            (seen, cursor)
        })
    };
    let mut written = HashSet::new();
    for writer in writers {
        written.extend(writer.await.expect("writer"));
    }
    let (mut seen, cursor) = reader.await.expect("reader");
    let (rest, _) = drain(&app, &app.admin_token, &cursor, "&types=households").await;
    seen.extend(
        rest.iter()
            .map(|c| (c["seq"].as_i64().expect("seq"), c["id"].clone())),
    );

    let seqs: Vec<i64> = seen.iter().map(|(s, _)| *s).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "no change twice, in order"
    );
    let ids: HashSet<String> = seen
        .iter()
        .map(|(_, id)| id.as_str().expect("id").to_owned())
        .collect();
    assert_eq!(ids, written, "every household, once");
    assert_eq!(seen.len(), written.len());
}

const WHH: &str = "0169a6c0-0000-7000-8000-000000000001";

async fn enrol(app: &TestApp, household: &Value) -> Value {
    let response = app
        .post_json(
            "/api/v1/enrolments",
            &json!({"programme_id": WHH, "household_id": household["id"], "on": "1404-01-15"}),
        )
        .await;
    assert_eq!(response.status(), 201);
    response.json().await.expect("enrolment")
}

async fn research_tables_suppress_small_cells(app: TestApp) {
    let (east, west) = two_neighbourhoods(&app).await;
    // East: six enrolled women heads, five of whom share with partners. West: two.
    for n in 0..6 {
        let (home, _) = household_with_head(&app, &east, 100 + n, n < 5).await;
        enrol(&app, &home).await;
    }
    for n in 0..2 {
        let (home, _) = household_with_head(&app, &west, 200 + n, true).await;
        enrol(&app, &home).await;
    }
    // Not enrolled: not counted.
    household_with_head(&app, &east, 300, true).await;
    let path =
        format!("/api/v1/research/aggregates?programme_id={WHH}&by=neighbourhood,household_type");

    let staff: Value = app.get(&path).await.json().await.expect("tables");
    assert_eq!(staff["min_cell"], 5);
    assert_eq!(staff["suppressed_cells"], 1);
    let cell = |tables: &Value, hood: &Value| {
        tables["cells"]
            .as_array()
            .expect("cells")
            .iter()
            .find(|c| c["neighbourhood"] == hood["id"])
            .cloned()
            .expect("a cell")
    };
    let east_cell = cell(&staff, &east);
    assert_eq!(east_cell["people"], 6);
    assert_eq!(east_cell["women"], 6);
    assert_eq!(east_cell["household_type"], "woman_headed");
    assert_eq!(east_cell["in_sensitive_courses"], 0);
    let west_cell = cell(&staff, &west);
    assert_eq!(west_cell["people"], Value::Null, "two people: suppressed");
    assert_eq!(west_cell["women"], Value::Null);

    // A partner counts only those who consented: five in the east.
    let (org, token) = partner(&app, &study_policy()).await;
    let tables_as_partner = || async {
        let response = app
            .client
            .get(app.url(&path))
            .bearer_auth(&token)
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), 200);
        response.json::<Value>().await.expect("tables")
    };
    let shared = tables_as_partner().await;
    assert_eq!(cell(&shared, &east)["people"], 5);
    assert_eq!(cell(&shared, &west)["people"], Value::Null);
    // With the MoU limited to the east, the west is not counted at all.
    let mut east_only = study_policy();
    east_only["areas"] = json!([east["id"]]);
    set_policy(&app, &org, &east_only).await;
    let shared = tables_as_partner().await;
    assert_eq!(cell(&shared, &east)["people"], 5);
    assert!(
        shared["cells"]
            .as_array()
            .expect("cells")
            .iter()
            .all(|c| c["neighbourhood"] != west["id"]),
        "{shared}"
    );

    // Totals and age bands; an unknown breakdown is refused.
    let total: Value = app
        .get(&format!(
            "/api/v1/research/aggregates?programme_id={WHH}&as_of=1405-01-01"
        ))
        .await
        .json()
        .await
        .expect("total");
    assert_eq!(total["cells"][0]["people"], 8);
    let bands: Value = app
        .get(&format!(
            "/api/v1/research/aggregates?programme_id={WHH}&by=age_band&as_of=1405-01-01"
        ))
        .await
        .json()
        .await
        .expect("bands");
    assert_eq!(
        bands["cells"][0]["age_band"], "30_44",
        "born 1365, 40 in 1405"
    );
    problem(
        app.get(&format!(
            "/api/v1/research/aggregates?programme_id={WHH}&by=income"
        ))
        .await,
        400,
    )
    .await;
    // Not for facilitators.
    let response = app
        .client
        .get(app.url(&path))
        .bearer_auth(app.mint(Role::Facilitator).await)
        .send()
        .await
        .expect("sent");
    problem(response, 403).await;
}

pub(crate) async fn post_as(
    app: &TestApp,
    token: &str,
    path: &str,
    body: &Value,
) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .expect("sent")
}

async fn a_partner_submits_what_its_policy_allows(app: TestApp) {
    let (east, west) = two_neighbourhoods(&app).await;
    let (org, token) =
        partner_with(&app, &study_policy(), &["registry:read", "registry:write"]).await;
    let home = |hood: &Value| json!({"neighbourhood_id": hood["id"], "address": "کوچه نسترن ۴"});
    let assessment = json!({"kind": "baseline", "assessed_on": "1404-03-01",
        "employment_status": "unemployed", "income_band": "none", "social_insurance": false,
        "welfare_services": [], "disability": false, "dependants": 2});

    // The policy allows no writes yet.
    problem(
        post_as(&app, &token, "/api/v1/partner/households", &home(&east)).await,
        403,
    )
    .await;

    let mut writes = study_policy();
    writes["writes"] = json!(["households", "assessments"]);
    writes["areas"] = json!([east["id"]]);
    set_policy(&app, &org, &writes).await;

    // Only in the MoU's areas.
    let refused = problem(
        post_as(&app, &token, "/api/v1/partner/households", &home(&west)).await,
        422,
    )
    .await;
    assert!(refused.to_string().contains("outside_mou"));
    let response = post_as(&app, &token, "/api/v1/partner/households", &home(&east)).await;
    assert_eq!(response.status(), 201);
    let found: Value = response.json().await.expect("household");
    assert_eq!(found["neighbourhood_id"], east["id"]);

    // Assessments of people it may see; the others are not found.
    let (_, shares) = household_with_head(&app, &east, 400, true).await;
    let (_, keeps) = household_with_head(&app, &east, 401, false).await;
    let assess = |person: &Value| {
        format!(
            "/api/v1/partner/persons/{}/assessments",
            person["id"].as_str().expect("id")
        )
    };
    let response = post_as(&app, &token, &assess(&shares), &assessment).await;
    assert_eq!(response.status(), 201);
    problem(
        post_as(&app, &token, &assess(&keeps), &assessment).await,
        404,
    )
    .await;
    // The same rules as the API's own: a second baseline is refused.
    problem(
        post_as(&app, &token, &assess(&shares), &assessment).await,
        422,
    )
    .await;

    // Outside the MoU's areas the feed shows nothing either, consent or not.
    let (_, far) = household_with_head(&app, &west, 402, true).await;
    let (items, _) = drain(&app, &token, "0", "&types=persons").await;
    assert_eq!(latest(&items, &far["id"])["op"], "deleted");
    assert!(latest(&items, &shares["id"])["data"].is_object());

    // Staff use the registry's own endpoints, not these.
    problem(
        app.post_json("/api/v1/partner/households", &home(&east))
            .await,
        403,
    )
    .await;
}

async fn a_change_of_head_changes_what_partners_see(app: TestApp) {
    let (east, _) = two_neighbourhoods(&app).await;
    let mut policy = study_policy();
    policy["resources"] = json!(["persons", "households", "enrolments"]);
    let (_, token) = partner(&app, &policy).await;
    // Her head does not share: the household and its enrolment are not the partner's to see.
    let (home, _) = household_with_head(&app, &east, 500, false).await;
    let enrolment = enrol(&app, &home).await;
    let response = app
        .post_json(
            "/api/v1/persons",
            &json!({"national_id": national_id(501), "first_name": "مریم", "last_name": "حسینی",
                    "birth_date": "1375-02-02", "sex": "female", "household_id": home["id"],
                    "household_role": "other"}),
        )
        .await;
    assert_eq!(response.status(), 201);
    let daughter: Value = response.json().await.expect("person");
    give_consent(&app, &daughter).await;
    let (items, cursor) = drain(&app, &token, "0", "").await;
    assert_eq!(latest(&items, &home["id"])["op"], "deleted");
    assert_eq!(latest(&items, &enrolment["id"])["op"], "deleted");

    // She becomes the head: the household now shows through her, in the next page.
    let response = app
        .post_json(
            &format!(
                "/api/v1/households/{}/head",
                home["id"].as_str().expect("id")
            ),
            &json!({"person_id": daughter["id"], "previous_head_role": "other"}),
        )
        .await;
    assert_eq!(response.status(), 204, "head changed");
    let (after, _) = drain(&app, &token, &cursor, "").await;
    let household = latest(&after, &home["id"]);
    assert_eq!(household["op"], "updated");
    assert_eq!(household["data"]["head_person_id"], daughter["id"]);
    // Its enrolment shows through the household: numbered again, not left behind.
    let enrolled = latest(&after, &enrolment["id"]);
    assert_eq!(enrolled["op"], "updated");
    assert_eq!(enrolled["data"]["state"], "identified");
}
