//! Webhooks against a local test receiver: signatures a receiver can verify, retries with
//! back-off recorded per attempt, disabling and re-enabling, replay, no duplicate deliveries
//! across instances, and endpoints scoped to their organisation.

use std::collections::{BTreeSet, HashMap};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tavana_domain::access::Role;
use tavana_domain::id::OrganisationId;
use tavana_domain::partner::{Policy, Resource, Withheld};

use crate::helpers::{Backend, TestApp, get_json, problem, test_settings};
use crate::households::two_neighbourhoods;

macro_rules! webhook_tests {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    if let Some(app) = super::spawn($crate::helpers::Backend::Sqlite).await {
                        super::$name(app).await;
                    }
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if let Some(app) = super::spawn($crate::helpers::Backend::Postgres).await {
                        super::$name(app).await;
                    }
                }
            }
        )*
    };
}

webhook_tests!(
    deliveries_are_signed_with_the_documented_recipe,
    failing_deliveries_are_retried_with_back_off_then_the_endpoint_is_disabled,
    an_unreachable_receiver_is_a_failed_attempt,
    deliveries_are_made_once_across_instances,
    endpoints_belong_to_their_organisation,
    deliveries_follow_the_mou_and_consent_in_force,
);

/// Fast rounds and retries, and http:// to the local receiver allowed.
fn settings() -> tavana_http::Settings {
    let mut settings = test_settings();
    settings.webhooks = tavana_http::dispatcher::WebhookSettings {
        poll: Duration::from_millis(50),
        max_attempts: 3,
        backoff_base: Duration::from_millis(150),
        max_failures: 2,
        timeout: Duration::from_secs(2),
        allow_http_loopback: true,
    };
    settings
}

async fn spawn(backend: Backend) -> Option<TestApp> {
    TestApp::spawn_with(backend, settings()).await
}

// ---- The test receiver ----

#[derive(Debug, Clone)]
struct Received {
    headers: HashMap<String, String>,
    body: String,
    at: DateTime<Utc>,
}

#[derive(Default)]
struct Inbox {
    received: Mutex<Vec<Received>>,
    /// Requests still to answer with 500 before answering 200.
    failures_left: AtomicUsize,
}

/// An HTTP server on 127.0.0.1 that records every request and answers 500 while told to fail.
struct Receiver {
    url: String,
    inbox: Arc<Inbox>,
    handle: actix_web::dev::ServerHandle,
}

async fn record(req: HttpRequest, body: web::Bytes, inbox: web::Data<Inbox>) -> HttpResponse {
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                v.to_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    inbox.received.lock().expect("inbox lock").push(Received {
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
        at: Utc::now(),
    });
    let failing = inbox
        .failures_left
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if failing {
        HttpResponse::InternalServerError().body("try later")
    } else {
        HttpResponse::NoContent().finish()
    }
}

impl Receiver {
    async fn start() -> Receiver {
        let inbox = Arc::new(Inbox::default());
        let data = web::Data::from(inbox.clone());
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!(
            "http://{}/hooks/tavana",
            listener.local_addr().expect("addr")
        );
        let server = actix_web::HttpServer::new(move || {
            actix_web::App::new()
                .app_data(data.clone())
                .default_service(web::to(record))
        })
        .workers(1)
        .listen(listener)
        .expect("listen")
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Receiver { url, inbox, handle }
    }

    fn fail_next(&self, n: usize) {
        self.inbox.failures_left.store(n, Ordering::SeqCst);
    }

    fn received(&self) -> Vec<Received> {
        self.inbox.received.lock().expect("inbox lock").clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

// ---- Partners, policies, records ----

struct Partner {
    organisation_id: String,
    token: String,
}

/// A partner agency with an MoU policy in force (persons and households, national ids withheld)
/// and a token of one of its users.
async fn partner(app: &TestApp, name: &str) -> Partner {
    let organisation: Value = app
        .post_json(
            "/api/v1/organisations",
            &json!({"name": name, "kind": "partner_agency"}),
        )
        .await
        .json()
        .await
        .expect("organisation");
    let organisation_id = organisation["id"].as_str().expect("id").to_owned();
    let id: OrganisationId = organisation_id.parse().expect("organisation id");
    set_policy(app, id, "2099-12-31").await;
    let token = app.mint_in(Role::Partner, id).await;
    Partner {
        organisation_id,
        token,
    }
}

/// Gives the organisation its MoU policy (persons and households, national ids withheld), in
/// force from 2020 to `ends_on`.
async fn set_policy(app: &TestApp, id: OrganisationId, ends_on: &str) {
    set_policy_withholding(app, id, ends_on, [Withheld::NationalId].into()).await;
}

/// `set_policy`, withholding `withheld`.
async fn set_policy_withholding(
    app: &TestApp,
    id: OrganisationId,
    ends_on: &str,
    withheld: BTreeSet<Withheld>,
) {
    let db = app.db.clone();
    let ends_on = ends_on.parse().expect("date");
    tokio::task::spawn_blocking(move || {
        let mut conn = db.get().expect("connection");
        tavana_persistence::partner_policies::put(
            &mut conn,
            &tavana_persistence::AuditContext::system(),
            id,
            Policy {
                purpose: "the programme's study".to_owned(),
                starts_on: "2020-01-01".parse().expect("date"),
                ends_on,
                resources: [Resource::Persons, Resource::Households].into(),
                withheld,
                writes: BTreeSet::new(),
                areas: BTreeSet::new(),
            },
        )
    })
    .await
    .expect("joined")
    .expect("policy set");
}

/// A household headed by a woman who shares her data with partners; returns her id.
async fn consenting_person(app: &TestApp, national_id: &str) -> String {
    let (n1, _) = two_neighbourhoods(app).await;
    let (_, person) = crate::enrolments::household_with_head(app, &n1, national_id).await;
    let id = person["id"].as_str().expect("id").to_owned();
    share(app, &id).await;
    id
}

/// Records a consent to share with partners: one `person.updated` change.
async fn share(app: &TestApp, person: &str) {
    let response = app
        .post_json(
            &format!("/api/v1/persons/{person}/consents"),
            &json!({"purpose": "research", "share_with_partners": true}),
        )
        .await;
    assert_eq!(response.status(), 201);
}

async fn send(
    app: &TestApp,
    method: reqwest::Method,
    token: &str,
    path: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let mut request = app.client.request(method, app.url(path)).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.expect("sent")
}

/// Registers an endpoint for `person` changes as the partner; returns (endpoint, secret).
async fn register(app: &TestApp, partner: &Partner, url: &str) -> (Value, String) {
    let response = send(
        app,
        reqwest::Method::POST,
        &partner.token,
        "/api/v1/webhooks",
        Some(json!({"url": url, "event_types": ["person"]})),
    )
    .await;
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.expect("endpoint");
    let secret = created["secret"].as_str().expect("secret").to_owned();
    assert_eq!(secret.len(), 43, "32 random bytes");
    (created, secret)
}

async fn deliveries(app: &TestApp, endpoint: &Value) -> Vec<Value> {
    deliveries_as(app, &app.admin_token, endpoint).await
}

/// The endpoint's deliveries as the caller of `token` reads them.
async fn deliveries_as(app: &TestApp, token: &str, endpoint: &Value) -> Vec<Value> {
    let path = format!(
        "/api/v1/webhooks/{}/deliveries?limit=200",
        endpoint["id"].as_str().expect("id")
    );
    let response = send(app, reqwest::Method::GET, token, &path, None).await;
    assert_eq!(response.status(), 200, "GET {path}");
    let page: Value = response.json().await.expect("page");
    page["items"].as_array().expect("items").clone()
}

/// The body of the delivery listed with `event_type`.
fn listed_body(listed: &[Value], event_type: &str) -> (String, Value) {
    let delivery = listed
        .iter()
        .find(|d| d["event_type"] == event_type)
        .unwrap_or_else(|| panic!("a {event_type} delivery in {listed:?}"));
    let body = delivery["payload"].as_str().expect("payload");
    let id = delivery["id"].as_str().expect("id").to_owned();
    (id, serde_json::from_str(body).expect("body"))
}

/// Waits (up to 20 s) until `check` holds.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..400 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

fn time(value: &Value) -> DateTime<Utc> {
    value
        .as_str()
        .expect("time")
        .parse()
        .expect("RFC 3339 time")
}

// ---- Tests ----

async fn deliveries_are_signed_with_the_documented_recipe(app: TestApp) {
    let receiver = Receiver::start().await;
    let partner = partner(&app, "Jahad Daneshgahi").await;
    let person = consenting_person(&app, "0012345679").await;
    let (endpoint, secret) = register(&app, &partner, &receiver.url).await;
    assert_eq!(endpoint["enabled"], true);
    assert_eq!(endpoint["event_types"], json!(["person"]));
    // The secret is shown once: never in reads.
    let read = get_json(
        &app,
        &format!("/api/v1/webhooks/{}", endpoint["id"].as_str().expect("id")),
    )
    .await;
    assert!(read.get("secret").is_none());
    assert!(!read.to_string().contains(&secret));

    // Changes from before the endpoint are not sent; this one is.
    share(&app, &person).await;
    eventually("one delivery", || async { !receiver.received().is_empty() }).await;
    // Nothing else comes (households are not asked for).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let received = receiver.received();
    assert_eq!(received.len(), 1);
    let request = &received[0];
    assert_eq!(request.headers["content-type"], "application/json");
    assert_eq!(request.headers["tavana-event"], "person.updated");

    // The documented recipe: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`.
    let signature = &request.headers["tavana-signature"];
    let parts: HashMap<&str, &str> = signature
        .split(',')
        .filter_map(|p| p.split_once('='))
        .collect();
    let t: i64 = parts["t"].parse().expect("t is a number");
    assert!(
        (Utc::now().timestamp() - t).abs() < 60,
        "the timestamp is recent"
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(format!("{t}.{}", request.body).as_bytes());
    let expected = hex::encode(mac.finalize().into_bytes());
    assert_eq!(parts["v1"], expected);
    assert_eq!(
        parts["v1"],
        tavana_domain::partner::sign(&secret, t, request.body.as_bytes())
    );
    // The guide's own Python recipe, as published, accepts it and refuses a changed body.
    assert!(guide_recipe_verifies(&secret, signature, &request.body));
    assert!(!guide_recipe_verifies(
        &secret,
        signature,
        &request.body.replace("زینب", "مریم")
    ));
    // Another secret does not verify.
    assert_ne!(
        parts["v1"],
        tavana_domain::partner::sign("not the secret", t, request.body.as_bytes())
    );

    let body: Value = serde_json::from_str(&request.body).expect("JSON body");
    assert_eq!(request.headers["tavana-delivery"], body["id"]);
    assert_eq!(body["type"], "person.updated");
    assert_eq!(body["resource"], "persons");
    assert_eq!(body["record_id"], person.as_str());
    assert!(body["seq"].as_i64().is_some_and(|s| s > 0));
    time(&body["occurred_at"]);
    // Shaped by the MoU policy: the national id is withheld.
    assert_eq!(body["data"]["id"], person.as_str());
    assert_eq!(body["data"]["first_name"], "زینب");
    assert!(body["data"].get("national_id").is_none());

    // On record: delivered at the first attempt, with the body exactly as signed.
    eventually("the delivery recorded", || async {
        deliveries(&app, &endpoint).await[0]["state"] == "delivered"
    })
    .await;
    let recorded = deliveries(&app, &endpoint).await;
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0]["id"], body["id"]);
    assert_eq!(recorded[0]["payload"], request.body.as_str());
    assert_eq!(recorded[0]["attempt_count"], 1);
    assert_eq!(recorded[0]["attempts"][0]["status_code"], 204);
}

async fn failing_deliveries_are_retried_with_back_off_then_the_endpoint_is_disabled(app: TestApp) {
    let receiver = Receiver::start().await;
    receiver.fail_next(usize::MAX);
    let partner = partner(&app, "Jahad Daneshgahi").await;
    let person = consenting_person(&app, "0012345679").await;
    let (endpoint, _) = register(&app, &partner, &receiver.url).await;
    let path = format!("/api/v1/webhooks/{}", endpoint["id"].as_str().expect("id"));
    // Two changes, two deliveries, each failing three times: two failures in a row disable it.
    share(&app, &person).await;
    share(&app, &person).await;
    eventually("the endpoint disabled", || async {
        get_json(&app, &path).await["enabled"] == false
    })
    .await;
    let disabled = get_json(&app, &path).await;
    assert_eq!(disabled["failures"], 2);
    assert!(disabled["disabled_at"].is_string());
    let failed = deliveries(&app, &endpoint).await;
    assert_eq!(failed.len(), 2);
    for delivery in &failed {
        assert_eq!(delivery["state"], "failed");
        assert_eq!(delivery["attempt_count"], 3);
        let attempts = delivery["attempts"].as_array().expect("attempts");
        assert_eq!(attempts.len(), 3, "one record per attempt");
        assert!(attempts.iter().all(|a| a["status_code"] == 500));
        // Back-off: 150 ms after the first failure, 300 ms after the second.
        let at: Vec<DateTime<Utc>> = attempts.iter().map(|a| time(&a["attempted_at"])).collect();
        assert!(
            at[1] - at[0] >= chrono::Duration::milliseconds(150),
            "{at:?}"
        );
        assert!(
            at[2] - at[1] >= chrono::Duration::milliseconds(300),
            "{at:?}"
        );
    }
    assert_eq!(receiver.received().len(), 6);
    // Disabled: a new change is not sent, a replay is refused until it is enabled.
    share(&app, &person).await;
    let replay_path = format!(
        "{path}/deliveries/{}/replay",
        failed[0]["id"].as_str().expect("id")
    );
    problem(
        send(
            &app,
            reqwest::Method::POST,
            &partner.token,
            &replay_path,
            None,
        )
        .await,
        409,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.received().len(), 6);

    // The owner enables it: failures cleared; the change made meanwhile is delivered.
    receiver.fail_next(0);
    let response = send(
        &app,
        reqwest::Method::POST,
        &partner.token,
        &format!("{path}/enable"),
        None,
    )
    .await;
    assert_eq!(response.status(), 200);
    let enabled: Value = response.json().await.expect("endpoint");
    assert_eq!(enabled["enabled"], true);
    assert_eq!(enabled["failures"], 0);
    assert!(enabled["disabled_at"].is_null());
    eventually("the change made while disabled", || async {
        receiver.received().len() == 7
    })
    .await;

    // Replay sends the very same body again, with a new round of attempts on record.
    let original = receiver
        .received()
        .into_iter()
        .find(|r| r.headers["tavana-delivery"] == failed[0]["id"])
        .expect("sent before");
    let response = send(
        &app,
        reqwest::Method::POST,
        &partner.token,
        &replay_path,
        None,
    )
    .await;
    assert_eq!(response.status(), 202);
    let replayed: Value = response.json().await.expect("delivery");
    assert_eq!(replayed["state"], "pending");
    eventually("the replay", || async { receiver.received().len() == 8 }).await;
    let again = receiver.received().pop().expect("replay received");
    assert_eq!(again.body, original.body);
    assert_eq!(again.headers["tavana-delivery"], failed[0]["id"]);
    assert!(again.at > original.at);
    eventually("the replay recorded", || async {
        deliveries(&app, &endpoint)
            .await
            .iter()
            .any(|d| d["id"] == failed[0]["id"] && d["state"] == "delivered")
    })
    .await;
    let after = deliveries(&app, &endpoint).await;
    let replayed = after
        .iter()
        .find(|d| d["id"] == failed[0]["id"])
        .expect("replayed delivery");
    assert_eq!(replayed["attempts"].as_array().map(Vec::len), Some(4));
    assert_eq!(replayed["attempts"][3]["status_code"], 204);
    assert_eq!(replayed["payload"], original.body.as_str());
    // Enabling, disabling and replaying are audited.
    let audit = get_json(&app, "/api/v1/audit?limit=200").await;
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for action in [
        "webhook.create",
        "webhook.disable",
        "webhook.enable",
        "webhook.replay",
    ] {
        assert!(actions.contains(&action), "{action} audited: {actions:?}");
    }
}

async fn an_unreachable_receiver_is_a_failed_attempt(app: TestApp) {
    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr")
    };
    let partner = partner(&app, "Jahad Daneshgahi").await;
    let person = consenting_person(&app, "0012345679").await;
    let (endpoint, _) = register(&app, &partner, &format!("http://{closed}/hook")).await;
    share(&app, &person).await;
    eventually("a failed attempt", || async {
        deliveries(&app, &endpoint)
            .await
            .first()
            .is_some_and(|d| d["attempts"].as_array().is_some_and(|a| !a.is_empty()))
    })
    .await;
    let attempt = &deliveries(&app, &endpoint).await[0]["attempts"][0];
    assert!(attempt["status_code"].is_null());
    assert!(
        attempt["error"]
            .as_str()
            .is_some_and(|e| e.contains("connect")),
        "{attempt}"
    );
}

async fn deliveries_are_made_once_across_instances(app: TestApp) {
    let receiver = Receiver::start().await;
    let partner = partner(&app, "Jahad Daneshgahi").await;
    let person = consenting_person(&app, "0012345679").await;
    let (endpoint, _) = register(&app, &partner, &receiver.url).await;
    share(&app, &person).await;
    eventually("the first delivery", || async {
        receiver.received().len() == 1
    })
    .await;
    // A second instance of the service on the same database (a restart, or another replica):
    // both dispatchers run from here on.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let second = tavana_http::build(app.db.clone(), settings(), listener).expect("second server");
    let second_handle = second.handle();
    tokio::spawn(second);
    for _ in 0..5 {
        share(&app, &person).await;
    }
    // And the dispatcher's step run by hand, too, while they work.
    let db = app.db.clone();
    let made_by_hand = tokio::task::spawn_blocking(move || {
        let mut conn = db.get().expect("connection");
        let today = Utc::now().date_naive();
        (0..3)
            .map(|_| tavana_persistence::webhooks::enqueue(&mut conn, today, 500).expect("enqueue"))
            .sum::<usize>()
    })
    .await
    .expect("joined");
    assert!(made_by_hand <= 5);
    eventually("six deliveries", || async {
        let all = deliveries(&app, &endpoint).await;
        all.len() == 6 && all.iter().all(|d| d["state"] == "delivered")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let all = deliveries(&app, &endpoint).await;
    assert_eq!(all.len(), 6, "one delivery per change");
    let seqs: BTreeSet<i64> = all
        .iter()
        .filter_map(|d| d["change_seq"].as_i64())
        .collect();
    assert_eq!(seqs.len(), 6);
    // Each sent once: no attempt was made twice by the two dispatchers.
    assert!(all.iter().all(|d| d["attempt_count"] == 1));
    let received = receiver.received();
    let ids: BTreeSet<&str> = received
        .iter()
        .map(|r| r.headers["tavana-delivery"].as_str())
        .collect();
    assert_eq!(received.len(), 6, "no delivery sent twice");
    assert_eq!(ids.len(), 6);
    // Nothing is left to make.
    let db = app.db.clone();
    let more = tokio::task::spawn_blocking(move || {
        let mut conn = db.get().expect("connection");
        tavana_persistence::webhooks::enqueue(&mut conn, Utc::now().date_naive(), 500)
    })
    .await
    .expect("joined")
    .expect("enqueue");
    assert_eq!(more, 0);
    second_handle.stop(false).await;
}

async fn endpoints_belong_to_their_organisation(app: TestApp) {
    let receiver = Receiver::start().await;
    let ours = partner(&app, "Jahad Daneshgahi").await;
    let theirs = partner(&app, "Counselling centre").await;
    let (endpoint, _) = register(&app, &ours, &receiver.url).await;
    let id = endpoint["id"].as_str().expect("id");
    assert_eq!(endpoint["organisation_id"], ours.organisation_id.as_str());
    let path = format!("/api/v1/webhooks/{id}");
    let delivery = "01936b2e-0000-7000-8000-000000000009";
    // Another partner neither sees nor manages it.
    for (method, path, body) in [
        (reqwest::Method::GET, path.clone(), None),
        (
            reqwest::Method::PATCH,
            path.clone(),
            Some(json!({"event_types": []})),
        ),
        (reqwest::Method::DELETE, path.clone(), None),
        (reqwest::Method::POST, format!("{path}/enable"), None),
        (reqwest::Method::GET, format!("{path}/deliveries"), None),
        (
            reqwest::Method::POST,
            format!("{path}/deliveries/{delivery}/replay"),
            None,
        ),
    ] {
        problem(send(&app, method, &theirs.token, &path, body).await, 404).await;
    }
    let list_as = |token: String| {
        let app = &app;
        async move {
            let response = send(app, reqwest::Method::GET, &token, "/api/v1/webhooks", None).await;
            assert_eq!(response.status(), 200);
            response.json::<Value>().await.expect("list")
        }
    };
    assert_eq!(list_as(theirs.token.clone()).await["items"], json!([]));
    assert_eq!(list_as(ours.token.clone()).await["items"][0]["id"], id);
    // An administrator sees every organisation's.
    assert_eq!(
        get_json(&app, "/api/v1/webhooks").await["items"][0]["id"],
        id
    );
    // A partner cannot register one for another organisation.
    let response = send(
        &app,
        reqwest::Method::POST,
        &theirs.token,
        "/api/v1/webhooks",
        Some(json!({"url": receiver.url, "organisation_id": ours.organisation_id})),
    )
    .await;
    assert_eq!(
        problem(response, 422).await["errors"][0]["code"],
        "not_yours"
    );
    // Roles without the action get 403.
    for role in [Role::Facilitator, Role::Auditor, Role::ProgrammeManager] {
        let token = app.mint(role).await;
        problem(
            send(&app, reqwest::Method::GET, &token, &path, None).await,
            403,
        )
        .await;
    }

    // URLs: https, or http to loopback only when allowed (as in these tests); nothing else.
    for (url, code) in [
        ("http://partner.example.org/hook", "https_required"),
        ("http://10.0.0.1/hook", "internal_address"),
        ("https://169.254.169.254/latest", "internal_address"),
        ("ftp://partner.example.org/hook", "https_required"),
        ("partner.example.org/hook", "format"),
    ] {
        let response = send(
            &app,
            reqwest::Method::POST,
            &ours.token,
            "/api/v1/webhooks",
            Some(json!({"url": url})),
        )
        .await;
        let body = problem(response, 422).await;
        assert_eq!(body["errors"][0]["field"], "url", "{url}");
        assert_eq!(body["errors"][0]["code"], code, "{url}");
    }
    // Event types within the policy only; an organisation without a policy gets none.
    let response = send(
        &app,
        reqwest::Method::POST,
        &ours.token,
        "/api/v1/webhooks",
        Some(json!({"url": "https://partner.example.org/hook", "event_types": ["enrolment"]})),
    )
    .await;
    assert_eq!(
        problem(response, 422).await["errors"][0]["code"],
        "not_in_policy"
    );
    let response = send(
        &app,
        reqwest::Method::POST,
        &ours.token,
        "/api/v1/webhooks",
        Some(json!({"url": "https://partner.example.org/hook", "event_types": ["people"]})),
    )
    .await;
    assert_eq!(
        problem(response, 422).await["errors"][0]["code"],
        "unknown_name"
    );
    let stranger = app.mint(Role::Partner).await;
    let response = send(
        &app,
        reqwest::Method::POST,
        &stranger,
        "/api/v1/webhooks",
        Some(json!({"url": "https://partner.example.org/hook"})),
    )
    .await;
    assert!(matches!(response.status().as_u16(), 403 | 422));

    // The owner updates it (honouring If-Match) and removes it.
    let response = app
        .client
        .patch(app.url(&path))
        .bearer_auth(&ours.token)
        .header("If-Match", "\"7\"")
        .json(&json!({"event_types": []}))
        .send()
        .await
        .expect("sent");
    problem(response, 412).await;
    let response = app
        .client
        .patch(app.url(&path))
        .bearer_auth(&ours.token)
        .header("If-Match", "\"1\"")
        .json(&json!({"event_types": [], "url": "https://partner.example.org/v2"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);
    let updated: Value = response.json().await.expect("endpoint");
    assert_eq!(updated["event_types"], json!([]));
    assert_eq!(updated["url"], "https://partner.example.org/v2");
    assert_eq!(updated["version"], 2);
    let response = send(&app, reqwest::Method::DELETE, &ours.token, &path, None).await;
    assert_eq!(response.status(), 204);
    problem(
        send(&app, reqwest::Method::GET, &ours.token, &path, None).await,
        404,
    )
    .await;
}

async fn deliveries_follow_the_mou_and_consent_in_force(app: TestApp) {
    let receiver = Receiver::start().await;
    let partner = partner(&app, "Jahad Daneshgahi").await;
    let organisation: OrganisationId = partner.organisation_id.parse().expect("id");
    let person = consenting_person(&app, "0012345679").await;
    let (endpoint, _) = register(&app, &partner, &receiver.url).await;

    // The MoU ended yesterday: nothing is sent, and the partner manages nothing.
    let yesterday = (Utc::now().date_naive() - chrono::Days::new(1)).to_string();
    set_policy(&app, organisation, &yesterday).await;
    share(&app, &person).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        receiver.received().is_empty(),
        "nothing after the MoU's end"
    );
    let response = send(
        &app,
        reqwest::Method::GET,
        &partner.token,
        "/api/v1/webhooks",
        None,
    )
    .await;
    problem(response, 403).await;

    // Renewed: what changed meanwhile is delivered, shaped by the policy.
    set_policy(&app, organisation, "2099-12-31").await;
    eventually("the change made meanwhile", || async {
        !receiver.received().is_empty()
    })
    .await;
    let sent = receiver.received()[0].body.clone();
    let first: Value = serde_json::from_str(&sent).expect("body");
    assert_eq!(first["type"], "person.updated");
    assert!(first["data"].get("national_id").is_none());
    // Listed for the partner byte for byte as sent (and signed) while it may see her.
    let listed = deliveries_as(&app, &partner.token, &endpoint).await;
    assert!(
        listed.iter().any(|d| d["payload"] == sent.as_str()),
        "{listed:?}"
    );
    // Its policy narrowed since (names withheld too): the listing leaves her names out.
    let withheld = [Withheld::NationalId, Withheld::Names].into();
    set_policy_withholding(&app, organisation, "2099-12-31", withheld).await;
    let listed = deliveries_as(&app, &partner.token, &endpoint).await;
    let (_, narrowed) = listed_body(&listed, "person.updated");
    assert!(narrowed["data"].get("first_name").is_none(), "{narrowed}");
    assert!(narrowed["data"].get("last_name").is_none(), "{narrowed}");
    assert_eq!(narrowed["data"]["birth_date"], first["data"]["birth_date"]);

    // Consent withdrawn: the partner is told to delete her, with no data.
    let consents = get_json(&app, &format!("/api/v1/persons/{person}/consents")).await;
    for consent in consents.as_array().expect("consents") {
        let response = app
            .post_json(
                &format!(
                    "/api/v1/persons/{person}/consents/{}/withdraw",
                    consent["id"].as_str().expect("id")
                ),
                &json!({"on": Utc::now().date_naive().to_string(), "reason": "changed her mind"}),
            )
            .await;
        assert_eq!(response.status(), 200);
    }
    eventually("the deletion", || async {
        receiver
            .received()
            .iter()
            .any(|r| r.body.contains("person.deleted"))
    })
    .await;
    let deleted = receiver
        .received()
        .into_iter()
        .map(|r| serde_json::from_str::<Value>(&r.body).expect("body"))
        .find(|b| b["type"] == "person.deleted")
        .expect("a deletion");
    assert_eq!(deleted["record_id"], person.as_str());
    assert_eq!(deleted["data"], Value::Null);
    assert_eq!(endpoint["enabled"], true);

    // Nor is what was sent of her before readable in the partner's listing of deliveries (the
    // office still sees what was sent), or in the answer to a replay.
    let listed = deliveries_as(&app, &partner.token, &endpoint).await;
    let (updated, body) = listed_body(&listed, "person.updated");
    assert_eq!(body["record_id"], person.as_str());
    assert_eq!(body["data"], Value::Null, "{body}");
    let (_, seen_by_office) = listed_body(&deliveries(&app, &endpoint).await, "person.updated");
    assert!(seen_by_office["data"].is_object(), "{seen_by_office}");
    let replay = format!(
        "/api/v1/webhooks/{}/deliveries/{updated}/replay",
        endpoint["id"].as_str().expect("id")
    );
    let replayed = send(&app, reqwest::Method::POST, &partner.token, &replay, None).await;
    assert_eq!(replayed.status(), 202);
    let replayed: Value = replayed.json().await.expect("delivery");
    let body: Value =
        serde_json::from_str(replayed["payload"].as_str().expect("payload")).expect("body");
    assert_eq!(body["data"], Value::Null, "{body}");
}

/// Runs the `verify` function of docs/partner-integration.md, exactly as published there, with
/// python3 (as a partner would).
fn guide_recipe_verifies(secret: &str, header: &str, body: &str) -> bool {
    let guide = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/partner-integration.md"
    ))
    .expect("the guide");
    let recipe = guide
        .split("```python")
        .map(|block| block.split("```").next().unwrap_or_default())
        .find(|block| block.contains("def verify("))
        .expect("the guide's verify recipe");
    let script = format!(
        "{recipe}\nimport sys\nsecret, header, body = sys.argv[1], sys.argv[2], open(sys.argv[3], 'rb').read()\nprint(verify(secret, header, body))\n"
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let body_path = dir.path().join("body");
    std::fs::write(&body_path, body.as_bytes()).expect("body written");
    let output = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(secret)
        .arg(header)
        .arg(&body_path)
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim() == "True"
}

/// PostgreSQL only: registering an endpoint writes its row, which locks its organisation's row
/// against a change of key, before it takes the audit log's order lock, as every writer takes it
/// last. It took the lock first, so renaming the organisation at that moment, holding its row and
/// then asking for the lock, deadlocked with it (one of the two failed with a 503).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registering_an_endpoint_beside_a_rename_of_its_organisation_does_not_deadlock() {
    let Some(app) = spawn(Backend::Postgres).await else {
        return;
    };
    let partner = partner(&app, "Jahad Daneshgahi").await;
    // A rename changes a unique column, so it locks the row against the key-share lock of the
    // endpoint's foreign key (an update of another column would not).
    let (took_the_lock, response) = crate::helpers::beside_a_writer(
        &app,
        format!(
            "UPDATE organisations SET name = name || ' (renamed)' WHERE id = '{}'",
            partner.organisation_id
        ),
        app.client
            .post(app.url("/api/v1/webhooks"))
            .bearer_auth(&partner.token)
            .json(&json!({"url": "http://127.0.0.1:9/hook", "event_types": ["person"]})),
    )
    .await;
    assert!(took_the_lock, "the rename got the order lock");
    assert_eq!(response.status(), 201);
}
