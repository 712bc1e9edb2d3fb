//! `/api/v1/auth/*` and `/api/v1/me`: tokens for users and API clients, refresh, logout, and a
//! user's own account.

use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, get, post, put, web};
use chrono::{NaiveDate, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use tavana_domain::access::Role;
use tavana_domain::id::OrganisationId;
use tavana_domain::organisation::{check_password, parse_username};
use tavana_persistence::tokens::{self, Rotation};
use tavana_persistence::{Actor, AuditContext, api_clients, partner_policies, users};
use utoipa::ToSchema;

use super::password::{gated, hash_password, hash_secret, random_secret, verify_password};
use super::{Caller, Principal};
use crate::error::{ApiError, Problem};
use crate::observe::RequestId;
use crate::users::UserResponse;
use crate::{AppState, with_db};

pub fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(token)
        .service(refresh)
        .service(logout)
        .service(me)
        .service(change_password);
}

/// How logins are throttled and how long tokens live.
#[derive(Debug, Clone)]
pub struct LoginPolicy {
    pub refresh_ttl: Duration,
    /// Failed attempts are counted over this window.
    pub window: Duration,
    /// Failures for one username within the window before 429.
    pub max_failures_per_username: i64,
    /// Failures from one address within the window before 429.
    pub max_failures_per_address: i64,
    /// From this many failures on, each attempt is delayed a little more.
    pub slow_down_after: i64,
    /// Take the client address from the last entry of `X-Forwarded-For` (only behind a proxy that
    /// appends it; otherwise clients could choose their own address).
    pub trust_forwarded: bool,
}

impl Default for LoginPolicy {
    fn default() -> Self {
        Self {
            refresh_ttl: Duration::from_secs(30 * 24 * 3600),
            window: Duration::from_secs(15 * 60),
            max_failures_per_username: 5,
            max_failures_per_address: 50,
            slow_down_after: 3,
            trust_forwarded: false,
        }
    }
}

/// A token request: the password grant for people, client credentials for machines.
#[derive(Deserialize, ToSchema)]
#[serde(tag = "grant_type", rename_all = "snake_case", deny_unknown_fields)]
pub enum TokenRequest {
    Password {
        username: String,
        password: String,
    },
    ClientCredentials {
        client_id: String,
        client_secret: String,
    },
}

#[derive(Serialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    #[schema(example = "Bearer")]
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// Opaque, single use: exchange it at `/api/v1/auth/refresh`. Users only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// The granted scopes, space-separated. API clients only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    pub current_password: String,
    /// At least 12 characters, not the username.
    pub new_password: String,
}

/// A token answer; like every answer it says `Cache-Control: no-store` (`server.rs`).
fn token_answer(body: TokenResponse) -> HttpResponse {
    HttpResponse::Ok().json(body)
}

fn invalid_credentials() -> ApiError {
    ApiError::Unauthorized("invalid credentials".to_owned())
}

fn request_id(req: &HttpRequest) -> Option<String> {
    use actix_web::HttpMessage;
    req.extensions().get::<RequestId>().map(|r| r.0.clone())
}

fn now() -> NaiveDateTime {
    Utc::now().naive_utc()
}

fn after(duration: Duration) -> NaiveDateTime {
    now() + chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::zero())
}

/// Counts an attempt for `key` from `address` before the credentials are checked, so that
/// parallel guesses cannot slip past the limit; then refuses (429) or slows it down according to
/// the attempts in the window. A successful attempt clears the key's count ([`clear_attempts`]).
async fn begin_attempt(
    state: &web::Data<AppState>,
    key: &str,
    address: &str,
) -> Result<(), ApiError> {
    let policy = state.login.clone();
    let window = chrono::Duration::from_std(policy.window).unwrap_or(chrono::Duration::minutes(15));
    let since = now() - window;
    let (key_owned, address_owned) = (key.to_owned(), address.to_owned());
    let counts = with_db(state, move |c| {
        tokens::record_failure(c, &key_owned, &address_owned)?;
        tokens::failures_since(c, &key_owned, &address_owned, since)
    })
    .await?;
    // The counts include this attempt.
    let mut oldest = None;
    if counts.by_username > policy.max_failures_per_username {
        oldest = counts.oldest_username;
    }
    if counts.by_address > policy.max_failures_per_address {
        oldest = oldest.max(counts.oldest_address);
    }
    if let Some(oldest) = oldest {
        let free_at = oldest + window;
        let retry = (free_at - now()).num_seconds().max(1);
        return Err(ApiError::TooManyRequests(retry.unsigned_abs()));
    }
    let earlier = counts.by_username.max(counts.by_address) - 1;
    if earlier >= policy.slow_down_after {
        let steps = u32::try_from(earlier - policy.slow_down_after + 1).unwrap_or(u32::MAX);
        let delay = Duration::from_millis(250)
            .saturating_mul(steps)
            .min(Duration::from_secs(2));
        tokio::time::sleep(delay).await;
    }
    Ok(())
}

async fn clear_attempts(state: &web::Data<AppState>, key: &str) -> Result<(), ApiError> {
    let key = key.to_owned();
    let window =
        chrono::Duration::from_std(state.login.window).unwrap_or(chrono::Duration::minutes(15));
    let prune_before = now() - window;
    with_db(state, move |c| {
        tokens::clear_failures(c, &key, prune_before)
    })
    .await
}

async fn password_grant(
    state: web::Data<AppState>,
    req: &HttpRequest,
    address: String,
    username: String,
    password: String,
) -> Result<HttpResponse, ApiError> {
    // A malformed username is treated like an unknown one: same work, same answer.
    let username = parse_username(&username).unwrap_or_else(|_| username.trim().to_lowercase());
    begin_attempt(&state, &username, &address).await?;

    let lookup = username.clone();
    let credentials = with_db(&state, move |c| users::credentials(c, &lookup)).await?;
    let (credentials, verified) = gated(move || {
        let verified = verify_password(
            &password,
            credentials.as_ref().map(|(_, hash)| hash.as_str()),
        );
        (credentials, verified)
    })
    .await?;
    let (user, checked_hash) = match credentials {
        Some((user, hash)) if verified && user.active => (user, hash),
        _ => return Err(invalid_credentials()),
    };
    let ttl = user_ttl(&state, &user).await?;

    let refresh_token = random_secret().map_err(ApiError::internal)?;
    let context = AuditContext {
        actor: Actor::User(user.id.to_string()),
        request_id: request_id(req),
        batched: false,
    };
    let (hash, expires) = (hash_secret(&refresh_token), after(state.login.refresh_ttl));
    let window =
        chrono::Duration::from_std(state.login.window).unwrap_or(chrono::Duration::minutes(15));
    let prune_before = now() - window;
    let (user_id, name) = (user.id, username.clone());
    let started = with_db(&state, move |c| {
        tokens::start_session(
            c,
            &context,
            user_id,
            &checked_hash,
            &name,
            &hash,
            expires,
            prune_before,
        )
    })
    .await?;
    // The password changed, or the user was deactivated, while it was checked.
    if !started {
        return Err(invalid_credentials());
    }
    Ok(token_answer(user_token(
        &state,
        &user,
        Some(refresh_token),
        ttl,
    )?))
}

/// The last day a partner organisation's tokens may reach: its MoU data policy's end (`None`
/// when it has none; its reads are refused then anyway). Refused while a policy it has is not in
/// force.
async fn mou_last_day(
    state: &AppState,
    organisation: OrganisationId,
    today: NaiveDate,
) -> Result<Option<NaiveDate>, ApiError> {
    let policy = with_db(state, move |c| partner_policies::get(c, organisation)).await?;
    match policy {
        None => Ok(None),
        Some(policy) if !policy.in_force_on(today) => Err(ApiError::Forbidden(format!(
            "the MoU data policy of the caller's organisation is in force from {} to {}",
            policy.starts_on, policy.ends_on
        ))),
        Some(policy) => Ok(Some(policy.ends_on)),
    }
}

/// How long an access token lives: the configured time, but never past the end of `last_day`.
fn ttl_until(state: &AppState, last_day: Option<NaiveDate>) -> Duration {
    let Some(last_day) = last_day else {
        return state.tokens.access_ttl;
    };
    let left = last_day
        .succ_opt()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| (t - now()).num_seconds().max(1).unsigned_abs())
        .unwrap_or(1);
    state.tokens.access_ttl.min(Duration::from_secs(left))
}

/// A user's access-token lifetime: a partner agency's user is held to its MoU as its clients are.
async fn user_ttl(
    state: &AppState,
    user: &tavana_domain::organisation::User,
) -> Result<Duration, ApiError> {
    if user.role != Role::Partner {
        return Ok(state.tokens.access_ttl);
    }
    let last_day = mou_last_day(state, user.organisation_id, Utc::now().date_naive()).await?;
    Ok(ttl_until(state, last_day))
}

fn user_token(
    state: &AppState,
    user: &tavana_domain::organisation::User,
    refresh_token: Option<String>,
    ttl: Duration,
) -> Result<TokenResponse, ApiError> {
    let access_token = state
        .tokens
        .issue(
            user.id.to_string(),
            Some(user.role.as_str().to_owned()),
            user.organisation_id.to_string(),
            None,
            ttl,
        )
        .map_err(ApiError::internal)?;
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: ttl.as_secs(),
        refresh_token,
        scope: None,
    })
}

async fn client_credentials_grant(
    state: web::Data<AppState>,
    address: String,
    client_id: String,
    client_secret: String,
) -> Result<HttpResponse, ApiError> {
    let key = format!("client:{}", client_id.trim());
    begin_attempt(&state, &key, &address).await?;
    let lookup = client_id.trim().to_owned();
    let found = with_db(&state, move |c| api_clients::credentials(c, &lookup)).await?;
    let presented = hash_secret(&client_secret);
    let today = Utc::now().date_naive();
    let client = match found {
        Some((client, stored))
            if constant_time_eq(&presented, &stored)
                && client.active
                && client.expires_on >= today =>
        {
            client
        }
        _ => return Err(invalid_credentials()),
    };
    // A partner's MoU data policy bounds its clients too: none after its end.
    let mou = mou_last_day(&state, client.organisation_id, today).await?;
    clear_attempts(&state, &key).await?;
    // The token never outlives the MoU: it expires at the end of the client's last day at most.
    let last_day = mou.map_or(client.expires_on, |end| end.min(client.expires_on));
    let ttl = ttl_until(&state, Some(last_day));
    let scope = client
        .scopes
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    let access_token = state
        .tokens
        .issue(
            client.client_id.clone(),
            None,
            client.organisation_id.to_string(),
            Some(scope.clone()),
            ttl,
        )
        .map_err(ApiError::internal)?;
    Ok(token_answer(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: ttl.as_secs(),
        refresh_token: None,
        scope: Some(scope),
    }))
}

/// Compares two hex digests without stopping at the first difference.
fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0_u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The client's address for login throttling and the rate limit: the peer, or — behind a
/// trusted reverse proxy (`TAVANA_TRUST_FORWARDED`) — the last address in `X-Forwarded-For`, the
/// one the proxy appended. Entries before it, and `Forwarded`, are what the client chose to send;
/// so is anything unreadable there, and then the peer (the proxy) is taken.
pub(crate) fn client_address(state: &AppState, req: &HttpRequest) -> String {
    let appended = || {
        let last = req.headers().get_all("x-forwarded-for").next_back()?;
        let entry = last.as_bytes().rsplit(|b| *b == b',').next()?;
        std::str::from_utf8(entry)
            .ok()?
            .trim()
            .parse::<std::net::IpAddr>()
            .ok()
    };
    if state.login.trust_forwarded
        && let Some(address) = appended()
    {
        return address.to_string();
    }
    req.peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Get an access token: `password` grant for staff, `client_credentials` for API clients.
///
/// Wrong credentials and unknown accounts get the same 401 after the same work. Repeated failures
/// for a username (or from one address) are slowed down, then refused with 429 and `Retry-After`.
#[utoipa::path(
    tag = "auth",
    request_body = TokenRequest,
    responses(
        (status = 200, description = "Tokens issued", body = TokenResponse),
        (status = 401, description = "Invalid credentials", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Unknown grant type or missing fields", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed attempts; see Retry-After", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[post("/auth/token")]
pub async fn token(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<TokenRequest>,
) -> Result<HttpResponse, ApiError> {
    let address = client_address(&state, &req);
    match body.into_inner() {
        TokenRequest::Password { username, password } => {
            password_grant(state, &req, address, username, password).await
        }
        TokenRequest::ClientCredentials {
            client_id,
            client_secret,
        } => client_credentials_grant(state, address, client_id, client_secret).await,
    }
}

/// Exchange a refresh token for new tokens. Each refresh token works once; presenting a used one
/// again revokes every token of that login.
#[utoipa::path(
    tag = "auth",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "New tokens", body = TokenResponse),
        (status = 401, description = "Unknown, expired, revoked or reused refresh token", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[post("/auth/refresh")]
pub async fn refresh(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<RefreshRequest>,
) -> Result<HttpResponse, ApiError> {
    let presented = hash_secret(&body.refresh_token);
    let next = random_secret().map_err(ApiError::internal)?;
    let (next_hash, expires) = (hash_secret(&next), after(state.login.refresh_ttl));
    let context = AuditContext {
        actor: Actor::System,
        request_id: request_id(&req),
        batched: false,
    };
    let rotation = with_db(&state, move |c| {
        tokens::rotate(c, &context, &presented, &next_hash, expires)
    })
    .await?;
    let user_id = match rotation {
        Rotation::Rotated { user_id, .. } => user_id,
        Rotation::Reused { user_id } => {
            tracing::warn!(user_id = %user_id, "refresh token reused; its family is revoked");
            return Err(ApiError::Unauthorized(
                "this refresh token was already used; every session of this login is revoked"
                    .to_owned(),
            ));
        }
        Rotation::Invalid => {
            return Err(ApiError::Unauthorized(
                "the refresh token is invalid or expired".to_owned(),
            ));
        }
    };
    let user = with_db(&state, move |c| users::get(c, user_id)).await?;
    if !user.active {
        return Err(ApiError::Unauthorized("the account is disabled".to_owned()));
    }
    let ttl = user_ttl(&state, &user).await?;
    Ok(token_answer(user_token(&state, &user, Some(next), ttl)?))
}

/// Log out: revokes the refresh token and every token of the same login. Always 204, so the answer
/// says nothing about the token.
#[utoipa::path(
    tag = "auth",
    request_body = RefreshRequest,
    responses((status = 204, description = "Logged out")),
)]
#[post("/auth/logout")]
pub async fn logout(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<RefreshRequest>,
) -> Result<HttpResponse, ApiError> {
    let presented = hash_secret(&body.refresh_token);
    let context = AuditContext {
        actor: Actor::System,
        request_id: request_id(&req),
        batched: false,
    };
    with_db(&state, move |c| {
        tokens::revoke_by_token(c, &context, &presented)
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The calling user's own account.
#[utoipa::path(
    tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's account", body = UserResponse),
        (status = 401, description = "No valid access token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "API clients have no account", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[get("/me")]
pub async fn me(
    state: web::Data<AppState>,
    caller: Caller,
) -> Result<web::Json<UserResponse>, ApiError> {
    let id = caller
        .user_id()
        .ok_or_else(|| ApiError::Forbidden("API clients have no user account".to_owned()))?;
    let user = with_db(&state, move |c| users::get(c, id)).await?;
    Ok(web::Json(user.into()))
}

/// Change the calling user's password. Ends the user's other sessions (refresh tokens).
#[utoipa::path(
    tag = "auth",
    security(("bearer" = [])),
    request_body = ChangePasswordRequest,
    responses(
        (status = 204, description = "Changed"),
        (status = 401, description = "No valid access token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Wrong current password, or an API client", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The new password breaks the policy", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[put("/me/password")]
pub async fn change_password(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    body: web::Json<ChangePasswordRequest>,
) -> Result<HttpResponse, ApiError> {
    let Principal::User { id, .. } = caller.principal else {
        return Err(ApiError::Forbidden(
            "API clients have no password".to_owned(),
        ));
    };
    let body = body.into_inner();
    let user = with_db(&state, move |c| users::get(c, id)).await?;
    check_password("new_password", &body.new_password, &user.username)?;
    // Guessing the current password with a stolen access token is throttled like a login.
    let key = format!("password-change:{id}");
    begin_attempt(&state, &key, &client_address(&state, &req)).await?;
    let username = user.username.clone();
    let credentials = with_db(&state, move |c| users::credentials(c, &username)).await?;
    let checked_hash = credentials.as_ref().map(|(_, h)| h.clone());
    let current = body.current_password;
    let verified =
        gated(move || verify_password(&current, credentials.as_ref().map(|(_, h)| h.as_str())))
            .await?;
    let wrong = || ApiError::Forbidden("the current password is wrong".to_owned());
    let Some(checked_hash) = checked_hash.filter(|_| verified) else {
        return Err(wrong());
    };
    clear_attempts(&state, &key).await?;
    let new_password = body.new_password;
    let new_hash = gated(move || hash_password(&new_password))
        .await?
        .map_err(ApiError::internal)?;
    let context = caller.audit();
    let changed = with_db(&state, move |c| {
        users::set_password(c, &context, id, &checked_hash, &new_hash)
    })
    .await?;
    // Another change came first: the password given is no longer the current one.
    if !changed {
        return Err(wrong());
    }
    Ok(HttpResponse::NoContent().finish())
}
