//! Tokens: both grants, refresh rotation and reuse detection, logout, every rejected-token case,
//! throttling, the user's own password, and the audit trail of writes.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use tavana_domain::access::Role;
use tavana_http::auth::jwt::{Claims, TokenKeys};

use crate::backend_tests;
use crate::helpers::{TEST_KEY, TestApp, problem};

backend_tests!(
    password_grant_gives_tokens_that_work,
    wrong_password_and_unknown_user_get_the_same_answer,
    rejected_tokens_are_401,
    refresh_rotates_and_reuse_revokes_the_family,
    logout_revokes_the_refresh_token,
    repeated_failures_are_refused_with_429,
    users_change_their_own_password,
    a_session_or_a_change_of_password_rests_on_the_hash_it_checked,
    client_credentials_grant_respects_scopes_and_revocation,
    writes_are_audited_with_actor_and_request_id,
    admins_manage_users_with_versions,
    a_token_stops_when_its_account_is_demoted_moved_or_disabled,
    audit_verify_finds_edited_and_missing_rows,
    organisations_are_renamed_with_versions,
    text_holding_a_nul_character_is_refused_on_either_database,
);

pub const PASSWORD: &str = "a long enough password";

pub async fn token_of(response: reqwest::Response) -> Value {
    assert_eq!(response.status(), 200, "token request succeeds");
    assert_eq!(response.headers()["cache-control"], "no-store");
    response.json().await.expect("token json")
}

async fn password_grant_gives_tokens_that_work(app: TestApp) {
    let user = app
        .create_user("Fatemeh.R", Role::ProgrammeManager, PASSWORD, vec![])
        .await;
    // Usernames are case-insensitive.
    let tokens = token_of(app.login("FATEMEH.r", PASSWORD).await).await;
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 900);
    assert!(
        tokens["refresh_token"]
            .as_str()
            .is_some_and(|t| t.len() >= 43)
    );
    let access = tokens["access_token"].as_str().expect("access token");

    let claims: Claims = TokenKeys::new(TEST_KEY, "tavana", "tavana-api", Duration::from_secs(900))
        .verify(access)
        .expect("our key signed it");
    assert_eq!(claims.sub, user.id.to_string());
    assert_eq!(claims.role.as_deref(), Some("programme_manager"));
    assert_eq!(claims.org, user.organisation_id.to_string());
    assert!(claims.exp > claims.iat && !claims.jti.is_empty());

    let me = app.get_as(access, "/api/v1/me").await;
    assert_eq!(me.status(), 200);
    let me: Value = me.json().await.expect("json");
    assert_eq!(me["username"], "fatemeh.r");
    let text = me.to_string();
    assert!(
        !text.contains("password") && !text.contains("argon2"),
        "{text}"
    );
}

async fn wrong_password_and_unknown_user_get_the_same_answer(app: TestApp) {
    app.create_user("maryam", Role::Auditor, PASSWORD, vec![])
        .await;
    let wrong = problem(app.login("maryam", "not the password at all").await, 401).await;
    let unknown = problem(app.login("nobody-here", PASSWORD).await, 401).await;
    for field in ["type", "title", "status", "detail"] {
        assert_eq!(wrong[field], unknown[field], "{field} is the same");
    }
    // Neither answer echoes the password.
    assert!(!wrong.to_string().contains("not the password"));
}

/// A token signed with `secret`, its claims those of a valid token changed by `edit`.
/// The claims of the test's administrator, edited and signed with `secret`.
fn forged(
    keys: &TokenKeys,
    admin_token: &str,
    secret: &[u8],
    edit: impl FnOnce(&mut Claims),
) -> String {
    let mut claims = keys.verify(admin_token).expect("valid");
    edit(&mut claims);
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    .expect("encodes")
}

async fn rejected_tokens_are_401(app: TestApp) {
    let path = "/api/v1/areas";
    let response = app.client.get(app.url(path)).send().await.expect("sent");
    assert!(
        response.headers()["www-authenticate"]
            .to_str()
            .is_ok_and(|v| v.starts_with("Bearer"))
    );
    problem(response, 401).await;

    let keys = TokenKeys::new(TEST_KEY, "tavana", "tavana-api", Duration::from_secs(900));
    let now = jsonwebtoken::get_current_timestamp();
    let valid = forged(&keys, &app.admin_token, TEST_KEY, |_| {});
    assert_eq!(
        app.get_as(&valid, path).await.status(),
        200,
        "the control token works"
    );

    let claims = keys.verify(&valid).expect("valid");
    let unsigned = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).expect("json")),
    );
    let cases = [
        ("garbage", "not.a.token".to_owned()),
        (
            "another key",
            forged(
                &keys,
                &app.admin_token,
                b"another-signing-key-of-32-bytes-or-more",
                |_| {},
            ),
        ),
        ("alg none", unsigned),
        (
            "expired",
            forged(&keys, &app.admin_token, TEST_KEY, |c| {
                c.iat = now - 7200;
                c.exp = now - 3600;
            }),
        ),
        (
            "wrong issuer",
            forged(&keys, &app.admin_token, TEST_KEY, |c| {
                c.iss = "someone-else".into()
            }),
        ),
        (
            "wrong audience",
            forged(&keys, &app.admin_token, TEST_KEY, |c| {
                c.aud = "another-api".into()
            }),
        ),
        (
            "unknown role",
            forged(&keys, &app.admin_token, TEST_KEY, |c| {
                c.role = Some("root".into())
            }),
        ),
        // Signed with the right key, for an account that does not exist.
        (
            "unknown user",
            forged(&keys, &app.admin_token, TEST_KEY, |c| {
                c.sub = uuid::Uuid::now_v7().to_string()
            }),
        ),
    ];
    for (case, token) in cases {
        let response = app.get_as(&token, path).await;
        assert_eq!(response.status(), 401, "{case}");
        problem(response, 401).await;
    }
    let response = app
        .client
        .get(app.url(path))
        .header("authorization", format!("Basic {valid}"))
        .send()
        .await
        .expect("sent");
    problem(response, 401).await;
}

pub async fn refresh(app: &TestApp, token: &str) -> reqwest::Response {
    app.client
        .post(app.url("/api/v1/auth/refresh"))
        .json(&json!({"refresh_token": token}))
        .send()
        .await
        .expect("sent")
}

async fn refresh_rotates_and_reuse_revokes_the_family(app: TestApp) {
    app.create_user("zahra", Role::PermitOfficer, PASSWORD, vec![])
        .await;
    let first = token_of(app.login("zahra", PASSWORD).await).await;
    let r1 = first["refresh_token"].as_str().expect("r1").to_owned();

    let second = token_of(refresh(&app, &r1).await).await;
    let r2 = second["refresh_token"].as_str().expect("r2").to_owned();
    assert_ne!(r1, r2, "rotated");
    assert_eq!(
        app.get_as(second["access_token"].as_str().expect("a"), "/api/v1/me")
            .await
            .status(),
        200
    );

    // r1 again: somebody replayed it. It fails, and so does r2 afterwards.
    let body = problem(refresh(&app, &r1).await, 401).await;
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("already used"))
    );
    problem(refresh(&app, &r2).await, 401).await;

    // A different login is a different family and still works.
    let third = token_of(app.login("zahra", PASSWORD).await).await;
    token_of(refresh(&app, third["refresh_token"].as_str().expect("r3")).await).await;

    problem(refresh(&app, "made-up-token").await, 401).await;
    let audit: Value = app
        .get("/api/v1/audit?action=auth.refresh_reuse")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(audit["items"].as_array().map(Vec::len), Some(1));
}

async fn logout_revokes_the_refresh_token(app: TestApp) {
    app.create_user("leila", Role::Auditor, PASSWORD, vec![])
        .await;
    let tokens = token_of(app.login("leila", PASSWORD).await).await;
    let refresh_token = tokens["refresh_token"].as_str().expect("r");
    let response = app
        .client
        .post(app.url("/api/v1/auth/logout"))
        .json(&json!({"refresh_token": refresh_token}))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 204);
    problem(refresh(&app, refresh_token).await, 401).await;
    // Unknown tokens get the same 204.
    let response = app
        .client
        .post(app.url("/api/v1/auth/logout"))
        .json(&json!({"refresh_token": "never-issued"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 204);
}

async fn repeated_failures_are_refused_with_429(app: TestApp) {
    app.create_user("sara", Role::Auditor, PASSWORD, vec![])
        .await;
    for _ in 0..5 {
        problem(app.login("sara", "wrong password, again").await, 401).await;
    }
    let response = app.login("sara", PASSWORD).await;
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .ok()
        .and_then(|v| v.parse().ok())
        .expect("Retry-After seconds");
    assert!((1..=900).contains(&retry_after), "{retry_after}");
    let body = problem(response, 429).await;
    assert_eq!(body["type"], "urn:tavana:problem:too-many-requests");
    // Another username is not locked.
    app.create_user("nasrin", Role::Auditor, PASSWORD, vec![])
        .await;
    token_of(app.login("nasrin", PASSWORD).await).await;
}

async fn users_change_their_own_password(app: TestApp) {
    app.create_user("shirin", Role::PermitOfficer, PASSWORD, vec![])
        .await;
    let tokens = token_of(app.login("shirin", PASSWORD).await).await;
    let access = tokens["access_token"].as_str().expect("a");
    let change = |current: &str, new: &str| {
        app.client
            .put(app.url("/api/v1/me/password"))
            .bearer_auth(access)
            .json(&json!({"current_password": current, "new_password": new}))
            .send()
    };
    problem(
        change("wrong current password", "a brand new password")
            .await
            .expect("sent"),
        403,
    )
    .await;
    let body = problem(change(PASSWORD, "short").await.expect("sent"), 422).await;
    assert_eq!(body["errors"][0]["field"], "new_password");
    assert_eq!(
        change(PASSWORD, "a brand new password")
            .await
            .expect("sent")
            .status(),
        204
    );

    problem(app.login("shirin", PASSWORD).await, 401).await;
    token_of(app.login("shirin", "a brand new password").await).await;
    // The sessions from before the change are over.
    problem(
        refresh(&app, tokens["refresh_token"].as_str().expect("r")).await,
        401,
    )
    .await;
}

pub async fn create_client(app: &TestApp, scopes: &[&str]) -> Value {
    let org: Value = app
        .post_json(
            "/api/v1/organisations",
            &json!({"name": "Jahad Daneshgahi", "kind": "partner_agency"}),
        )
        .await
        .json()
        .await
        .expect("org");
    let response = app
        .post_json(
            "/api/v1/api-clients",
            &json!({"name": "Survey sync", "organisation_id": org["id"], "scopes": scopes, "expires_on": "2099-12-31"}),
        )
        .await;
    assert_eq!(response.status(), 201);
    response.json().await.expect("client")
}

pub async fn client_grant(app: &TestApp, client_id: &str, secret: &str) -> reqwest::Response {
    app.client
        .post(app.url("/api/v1/auth/token"))
        .json(&json!({"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}))
        .send()
        .await
        .expect("sent")
}

async fn client_credentials_grant_respects_scopes_and_revocation(app: TestApp) {
    let client = create_client(&app, &["registry:read"]).await;
    let client_id = client["client_id"].as_str().expect("client id");
    let secret = client["client_secret"].as_str().expect("secret shown once");
    let listed: Value = app
        .get("/api/v1/api-clients")
        .await
        .json()
        .await
        .expect("list");
    assert!(
        !listed.to_string().contains(secret),
        "the secret is never shown again"
    );

    let tokens = token_of(client_grant(&app, client_id, secret).await).await;
    assert_eq!(tokens["scope"], "registry:read");
    assert!(tokens.get("refresh_token").is_none());
    let access = tokens["access_token"].as_str().expect("a");
    assert_eq!(app.get_as(access, "/api/v1/areas").await.status(), 200);
    problem(app.get_as(access, "/api/v1/users").await, 403).await;
    let response = app
        .client
        .post(app.url("/api/v1/areas"))
        .bearer_auth(access)
        .json(&json!({"level": "province", "code": "X", "name_fa": "x", "name_en": "x"}))
        .send()
        .await
        .expect("sent");
    problem(response, 403).await;

    // Past the client's last day (the MoU's end), the token it holds stops too.
    let last_day = |day: &'static str| {
        let db = app.db.clone();
        let client_id = client_id.to_owned();
        tokio::task::spawn_blocking(move || {
            use diesel::prelude::*;
            use tavana_persistence::schema::api_clients;
            let mut conn = db.get().expect("connection");
            let day: chrono::NaiveDate = day.parse().expect("day");
            diesel::update(api_clients::table.filter(api_clients::client_id.eq(client_id)))
                .set(api_clients::expires_on.eq(day))
                .execute(&mut conn)
                .expect("updated")
        })
    };
    assert_eq!(last_day("2000-01-01").await.expect("joined"), 1);
    problem(app.get_as(access, "/api/v1/areas").await, 401).await;
    last_day("2099-12-31").await.expect("joined");
    assert_eq!(app.get_as(access, "/api/v1/areas").await.status(), 200);

    problem(client_grant(&app, client_id, "wrong secret").await, 401).await;
    let id = client["id"].as_str().expect("id");
    let response = app.delete(&format!("/api/v1/api-clients/{id}")).await;
    assert_eq!(response.status(), 200);
    problem(client_grant(&app, client_id, secret).await, 401).await;
    // The token it holds stops with it, not when it expires.
    problem(app.get_as(access, "/api/v1/areas").await, 401).await;

    let response = app
        .post_json(
            "/api/v1/api-clients",
            &json!({"name": "Bad", "organisation_id": uuid::Uuid::now_v7(), "scopes": ["root"], "expires_on": "2000-01-01"}),
        )
        .await;
    let body = problem(response, 422).await;
    assert_eq!(body["errors"][0]["field"], "scopes");
}

async fn writes_are_audited_with_actor_and_request_id(app: TestApp) {
    let user = app
        .create_user("mina", Role::ProgrammeManager, PASSWORD, vec![])
        .await;
    let tokens = token_of(app.login("mina", PASSWORD).await).await;
    let response = app
        .client
        .post(app.url("/api/v1/areas"))
        .bearer_auth(tokens["access_token"].as_str().expect("a"))
        .header("x-request-id", "audit-test-1")
        .json(&json!({"level": "province", "code": "KHR", "name_fa": "خراسان رضوی", "name_en": "Khorasan Razavi"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 201);
    let area: Value = response.json().await.expect("area");

    let page: Value = app
        .get(&format!(
            "/api/v1/audit?entity=area&entity_id={}",
            area["id"].as_str().expect("id")
        ))
        .await
        .json()
        .await
        .expect("audit page");
    let entries = page["items"].as_array().expect("items");
    assert_eq!(entries.len(), 1);
    let entry = &entries[0];
    assert_eq!(entry["action"], "area.create");
    assert_eq!(entry["actor_kind"], "user");
    assert_eq!(entry["actor_id"], user.id.to_string());
    assert_eq!(entry["request_id"], "audit-test-1");
    assert_eq!(entry["after"]["code"], "KHR");
    assert_eq!(entry["hash"].as_str().map(str::len), Some(64));
    // Days as elsewhere in the API: Gregorian or Jalali, within the years it knows.
    let today = chrono::Utc::now().date_naive();
    let jalali = tavana_domain::calendar::to_jalali(today).expect("jalali");
    for from in [
        today.to_string(),
        format!("{}-{:02}-{:02}", jalali.year, jalali.month, jalali.day),
    ] {
        let path = format!("/api/v1/audit?action=area.create&from={from}&to={from}");
        let page = crate::helpers::get_json(&app, &path).await;
        assert_eq!(
            page["items"].as_array().map(Vec::len),
            Some(1),
            "{from}: {page}"
        );
    }
    let tomorrow = today.succ_opt().expect("tomorrow");
    let path = format!("/api/v1/audit?action=area.create&from={tomorrow}");
    let later = crate::helpers::get_json(&app, &path).await;
    assert_eq!(later["items"], json!([]));
    let far = crate::helpers::problem(app.get("/api/v1/audit?from=-5000-01-01").await, 422).await;
    assert_eq!(far["errors"][0]["field"], "from", "{far}");

    // The chain links every entry to the one before.
    let all: Value = app
        .get("/api/v1/audit?limit=200")
        .await
        .json()
        .await
        .expect("all");
    let items = all["items"].as_array().expect("items");
    assert!(
        items.len() >= 4,
        "user and organisation creation, login, area"
    );
    for pair in items.windows(2) {
        assert_eq!(pair[0]["prev_hash"], pair[1]["hash"]);
        assert_eq!(
            pair[0]["seq"].as_i64(),
            pair[1]["seq"].as_i64().map(|s| s + 1)
        );
    }
    let logins: Value = app
        .get("/api/v1/audit?action=auth.login")
        .await
        .json()
        .await
        .expect("logins");
    assert!(
        !logins.to_string().contains(PASSWORD),
        "passwords never reach the audit log"
    );
}

async fn admins_manage_users_with_versions(app: TestApp) {
    let org: Value = app
        .post_json(
            "/api/v1/organisations",
            &json!({"name": "Facilitation office 5", "kind": "facilitation_office"}),
        )
        .await
        .json()
        .await
        .expect("org");
    let province: Value = app
        .post_json("/api/v1/areas", &json!({"level": "province", "code": "KHR", "name_fa": "خراسان", "name_en": "Khorasan"}))
        .await
        .json()
        .await
        .expect("area");
    let neighbourhood = crate::households::neighbourhood_under(&app, &province, "N1").await;
    let new_user = |areas: Value| json!({"username": "reza", "display_name": "رضا", "password": PASSWORD, "role": "facilitator", "organisation_id": org["id"], "areas": areas});
    let body = problem(
        app.post_json("/api/v1/users", &new_user(json!([]))).await,
        422,
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "areas");
    // A facilitator's scope is a list of neighbourhoods, not a province.
    let body = problem(
        app.post_json("/api/v1/users", &new_user(json!([province["id"]])))
            .await,
        422,
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "areas");
    let response = app
        .post_json("/api/v1/users", &new_user(json!([neighbourhood["id"]])))
        .await;
    assert_eq!(response.status(), 201);
    let user: Value = response.json().await.expect("user");
    assert!(!user.to_string().contains(PASSWORD));
    problem(
        app.post_json("/api/v1/users", &new_user(json!([neighbourhood["id"]])))
            .await,
        409,
    )
    .await;

    let path = format!("/api/v1/users/{}", user["id"].as_str().expect("id"));
    let patch = |etag: &str, body: Value| {
        app.client
            .patch(app.url(&path))
            .bearer_auth(&app.admin_token)
            .header("if-match", etag)
            .json(&body)
            .send()
    };
    let response = patch("\"1\"", json!({"display_name": "رضا احمدی"}))
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["etag"], "\"2\"");
    // A second office still holding version 1 is told, not silently overwritten.
    let body = problem(
        patch("\"1\"", json!({"display_name": "Someone else"}))
            .await
            .expect("sent"),
        412,
    )
    .await;
    assert!(body["detail"].as_str().is_some_and(|d| d.contains('2')));

    token_of(app.login("reza", PASSWORD).await).await;
    let response = app.delete(&path).await;
    let deactivated: Value = response.json().await.expect("user");
    assert_eq!(deactivated["active"], false);
    problem(app.login("reza", PASSWORD).await, 401).await;
}

/// An access token stands for its account as it is now: once the account's role or organisation
/// changes, or it is disabled, the tokens it holds are refused at once, not when they expire.
async fn a_token_stops_when_its_account_is_demoted_moved_or_disabled(app: TestApp) {
    let leila = app
        .create_user("leila", Role::ProgrammeManager, PASSWORD, vec![])
        .await;
    let path = format!("/api/v1/users/{}", leila.id);
    let access = |tokens: Value| tokens["access_token"].as_str().expect("token").to_owned();
    let change = |version: i64, body: Value| {
        app.client
            .patch(app.url(&path))
            .bearer_auth(&app.admin_token)
            .header("if-match", format!("\"{version}\""))
            .json(&body)
            .send()
    };
    let manager = access(token_of(app.login("leila", PASSWORD).await).await);
    assert_eq!(app.get_as(&manager, "/api/v1/areas").await.status(), 200);
    // Another display name changes nothing the token says.
    let renamed = change(1, json!({"display_name": "لیلا"}))
        .await
        .expect("sent");
    assert_eq!(renamed.status(), 200);
    assert_eq!(app.get_as(&manager, "/api/v1/areas").await.status(), 200);

    let demoted = change(2, json!({"role": "auditor"})).await.expect("sent");
    assert_eq!(demoted.status(), 200);
    let refused = problem(app.get_as(&manager, "/api/v1/areas").await, 401).await;
    assert!(
        refused["detail"]
            .as_str()
            .is_some_and(|d| d.contains("new token")),
        "{refused}"
    );
    let auditor = access(token_of(app.login("leila", PASSWORD).await).await);
    assert_eq!(app.get_as(&auditor, "/api/v1/areas").await.status(), 200);

    let org = crate::training::created(
        app.post_json(
            "/api/v1/organisations",
            &json!({"name": "Another office", "kind": "labour_office"}),
        )
        .await,
    )
    .await;
    let moved = change(3, json!({"organisation_id": org["id"]}))
        .await
        .expect("sent");
    assert_eq!(moved.status(), 200);
    problem(app.get_as(&auditor, "/api/v1/areas").await, 401).await;

    let elsewhere = access(token_of(app.login("leila", PASSWORD).await).await);
    assert_eq!(app.get_as(&elsewhere, "/api/v1/areas").await.status(), 200);
    let disabled = app.delete(&path).await;
    assert_eq!(disabled.status(), 200);
    problem(app.get_as(&elsewhere, "/api/v1/areas").await, 401).await;
}

async fn audit_verify_finds_edited_and_missing_rows(app: TestApp) {
    use diesel::connection::SimpleConnection;
    use tavana_persistence::audit::{Verification, verify};

    for name in ["one.user", "two.user", "three.user"] {
        app.create_user(name, Role::Auditor, PASSWORD, vec![]).await;
    }
    let db = app.db.clone();
    tokio::task::spawn_blocking(move || {
        let mut conn = db.get().expect("connection");
        assert_eq!(
            verify(&mut conn).expect("verify"),
            Verification::Intact { rows: 8 }
        );

        conn.batch_execute("UPDATE audit_log SET actor_kind = 'user' WHERE seq = 4")
            .expect("tamper");
        assert!(matches!(
            verify(&mut conn).expect("verify"),
            Verification::Broken { seq: 4, .. }
        ));
        conn.batch_execute("UPDATE audit_log SET actor_kind = 'system' WHERE seq = 4")
            .expect("restore");
        assert_eq!(
            verify(&mut conn).expect("verify"),
            Verification::Intact { rows: 8 }
        );

        conn.batch_execute("DELETE FROM audit_log WHERE seq = 2")
            .expect("delete");
        match verify(&mut conn).expect("verify") {
            Verification::Broken { seq, reason } => {
                assert_eq!(seq, 2);
                assert!(reason.contains("missing"), "{reason}");
            }
            other => panic!("a deleted row goes unnoticed: {other:?}"),
        }
    })
    .await
    .expect("joined");
}

async fn organisations_are_renamed_with_versions(app: TestApp) {
    let first: Value = app
        .post_json(
            "/api/v1/organisations",
            &json!({"name": "دفتر تسهیلگری طلاب", "kind": "facilitation_office"}),
        )
        .await
        .json()
        .await
        .expect("org");
    app.post_json(
        "/api/v1/organisations",
        &json!({"name": "Jahad Daneshgahi", "kind": "partner_agency"}),
    )
    .await;
    let path = format!(
        "/api/v1/organisations/{}",
        first["id"].as_str().expect("id")
    );
    let response = app.get(&path).await;
    assert_eq!(response.headers()["etag"], "\"1\"");
    let patch = |etag: &'static str, body: Value| {
        app.client
            .patch(app.url(&path))
            .bearer_auth(&app.admin_token)
            .header("if-match", etag)
            .json(&body)
            .send()
    };
    let renamed: Value = patch("\"1\"", json!({"name": "دفتر تسهیلگری طلاب و پنج‌تن"}))
        .await
        .expect("sent")
        .json()
        .await
        .expect("org");
    assert_eq!(renamed["version"], 2);
    problem(
        patch("\"1\"", json!({"name": "Other"}))
            .await
            .expect("sent"),
        412,
    )
    .await;
    problem(
        patch("\"2\"", json!({"name": "Jahad Daneshgahi"}))
            .await
            .expect("sent"),
        409,
    )
    .await;
    problem(
        patch("\"2\"", json!({"name": "  "})).await.expect("sent"),
        422,
    )
    .await;
    let audit: Value = app
        .get("/api/v1/audit?action=organisation.update")
        .await
        .json()
        .await
        .expect("audit");
    assert_eq!(audit["items"][0]["before"]["name"], "دفتر تسهیلگری طلاب");
}

/// PostgreSQL stores no NUL character (U+0000) in text: a request holding one was a 500 there,
/// even a login before any account, and stored on SQLite. Now it is refused alike on both, before
/// any handler reads it, and nothing is written.
async fn text_holding_a_nul_character_is_refused_on_either_database(app: TestApp) {
    let refused = |response: reqwest::Response, field: &'static str| async move {
        let body = crate::helpers::problem(response, 422).await;
        assert_eq!(body["errors"][0]["code"], "nul_character", "{body}");
        assert_eq!(body["errors"][0]["field"], field, "{body}");
    };
    let login = app
        .client
        .post(app.url("/api/v1/auth/token"))
        .json(&json!({"grant_type": "password", "username": "mina\u{0}", "password": "x"}))
        .send()
        .await
        .expect("sent");
    refused(login, "body").await;
    let area = app
        .post_json(
            "/api/v1/areas",
            &json!({"level": "province", "code": "K\u{0}", "name_fa": "خراسان", "name_en": "K"}),
        )
        .await;
    refused(area, "body").await;
    refused(app.get("/api/v1/persons?name=%00").await, "url").await;
    // A backslash written before `u0000` is text, not a NUL.
    let literal = app
        .post_json(
            "/api/v1/areas",
            &json!({"level": "province", "code": "KHR", "name_fa": "خراسان", "name_en": "K \\u0000"}),
        )
        .await;
    assert_eq!(literal.status(), 201);
    let areas = crate::helpers::get_json(&app, "/api/v1/areas").await;
    let names: Vec<&Value> = areas["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|a| &a["name_en"])
        .collect();
    assert_eq!(names, [&json!("K \\u0000")], "only the area without a NUL");
    // Where a NUL reaches PostgreSQL anyway, its refusal is the caller's (422), not a 500.
    let db = app.db.clone();
    let refused = tokio::task::spawn_blocking(move || {
        use diesel::RunQueryDsl;
        let mut conn = db.get().expect("connection");
        match &mut *conn {
            tavana_persistence::DbConnection::Pg(pg) => Some(
                diesel::sql_query("SELECT $1::text")
                    .bind::<diesel::sql_types::Text, _>("a\u{0}")
                    .execute(pg)
                    .map(|_| ())
                    .map_err(tavana_persistence::StoreError::from),
            ),
            tavana_persistence::DbConnection::Sqlite(_) => None,
        }
    })
    .await
    .expect("joined");
    if let Some(refused) = refused {
        assert!(
            matches!(&refused, Err(tavana_persistence::StoreError::Invalid(e)) if e.0[0].code == "nul_character"),
            "{refused:?}"
        );
    }
}

/// A change of password mid-way when a login came: it changed the hash and holds the user's
/// sessions (as `revoke_user` does) until it commits. The login checked the old password against
/// the old hash; its session must not start after the change ended every session. It started one
/// and answered 200, and the refresh token it gave outlived the change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_beside_a_change_of_password_starts_no_session() {
    let Some(app) = TestApp::spawn(crate::helpers::Backend::Postgres).await else {
        return;
    };
    let user = app
        .create_user("shirin", Role::PermitOfficer, PASSWORD, vec![])
        .await;
    let (committed, response) = crate::helpers::holding(
        &app,
        format!(
            "UPDATE users SET password_hash = 'changed', version = version + 1 WHERE id = '{0}';
             SELECT pg_advisory_xact_lock(hashtextextended('sessions:{0}', 0))",
            user.id
        ),
        crate::helpers::Then::Commit,
        app.client
            .post(app.url("/api/v1/auth/token"))
            .json(&json!({"grant_type": "password", "username": "shirin", "password": PASSWORD})),
    )
    .await;
    assert!(committed, "the change of password committed");
    problem(response, 401).await;
    let sessions: i64 = {
        use diesel::RunQueryDsl;
        let mut conn = app.db.get().expect("connection");
        let tavana_persistence::DbConnection::Pg(pg) = &mut *conn else {
            unreachable!("postgres")
        };
        diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(&format!(
            "(SELECT count(*) FROM refresh_tokens WHERE user_id = '{}')",
            user.id
        )))
        .get_result(pg)
        .expect("count")
    };
    assert_eq!(sessions, 0, "no refresh token was stored");
}

/// Two changes of one user's password at once, both told the right current password: the one
/// that comes second finds the password changed and is refused, as a wrong current password is.
/// It overwrote the first change with its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_changes_of_password_at_once_the_second_is_refused() {
    let Some(app) = TestApp::spawn(crate::helpers::Backend::Postgres).await else {
        return;
    };
    let user = app
        .create_user("shirin", Role::PermitOfficer, PASSWORD, vec![])
        .await;
    let tokens = token_of(app.login("shirin", PASSWORD).await).await;
    let (committed, response) = crate::helpers::holding(
        &app,
        format!(
            "UPDATE users SET password_hash = 'changed', version = version + 1 WHERE id = '{}'",
            user.id
        ),
        crate::helpers::Then::Commit,
        app.client
            .put(app.url("/api/v1/me/password"))
            .bearer_auth(tokens["access_token"].as_str().expect("access"))
            .json(&json!({"current_password": PASSWORD, "new_password": "a brand new password"})),
    )
    .await;
    assert!(committed, "the first change committed");
    let body = problem(response, 403).await;
    assert_eq!(body["detail"], "the current password is wrong", "{body}");
    problem(app.login("shirin", "a brand new password").await, 401).await;
}

/// What the two tests above rely on, on either database (on SQLite, too, a change of password can
/// commit between a login's check and its session: the check reads outside the write lock): a
/// session is started only on the hash that was checked and for an active user, and a change of
/// password replaces only the hash it checked.
async fn a_session_or_a_change_of_password_rests_on_the_hash_it_checked(app: TestApp) {
    use diesel::connection::SimpleConnection;
    use tavana_persistence::{Actor, AuditContext, DbConnection, tokens, users};
    let user = app
        .create_user("shirin", Role::PermitOfficer, PASSWORD, vec![])
        .await;
    let db = app.db.clone();
    tokio::task::spawn_blocking(move || {
        let mut conn = db.get().expect("connection");
        let context = AuditContext {
            actor: Actor::User(user.id.to_string()),
            request_id: None,
            batched: false,
        };
        let (_, checked) = users::credentials(&mut conn, "shirin")
            .expect("read")
            .expect("the user");
        let later = chrono::Utc::now().naive_utc() + chrono::Duration::days(1);
        let earlier = chrono::Utc::now().naive_utc() - chrono::Duration::days(1);
        let start = |conn: &mut DbConnection, hash: &str, token: &str| {
            tokens::start_session(
                conn, &context, user.id, hash, "shirin", token, later, earlier,
            )
            .expect("ran")
        };
        assert!(
            start(&mut conn, &checked, "first"),
            "the checked hash is the user's"
        );
        assert!(
            users::set_password(&mut conn, &context, user.id, &checked, "changed").expect("ran"),
            "the first change replaces the hash it checked"
        );
        assert!(
            !users::set_password(&mut conn, &context, user.id, &checked, "again").expect("ran"),
            "a second change that checked the same hash changes nothing"
        );
        assert!(
            !start(&mut conn, &checked, "second"),
            "the old hash starts no session"
        );
        let deactivate = format!("UPDATE users SET active = false WHERE id = '{}'", user.id);
        match &mut *conn {
            DbConnection::Pg(pg) => pg.batch_execute(&deactivate),
            DbConnection::Sqlite(sqlite) => sqlite.batch_execute(&deactivate),
        }
        .expect("deactivated");
        assert!(
            !start(&mut conn, "changed", "third"),
            "an inactive user starts none"
        );
    })
    .await
    .expect("joined");
}
