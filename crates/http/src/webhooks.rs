//! `/api/v1/webhooks`: partner organisations' endpoints that changes are pushed to, signed, with
//! every delivery and attempt on record. Administrators manage every organisation's endpoints; a
//! partner (user or API client with `webhooks:manage`) only its own — another's is 404.
//!
//! Each delivery is a POST of JSON (`{"id", "type": "person.updated", "seq", "resource",
//! "record_id", "occurred_at", "data"}`) with the headers `Tavana-Signature: t=<unix seconds>,
//! v1=<hex HMAC-SHA256 of "<t>.<body>" keyed with the endpoint's secret>`, `Tavana-Delivery` and
//! `Tavana-Event`. A 2xx answer delivers it; anything else is retried with exponential back-off.

use std::collections::BTreeSet;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, delete, get, patch, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tavana_domain::FieldError;
use tavana_domain::id::OrganisationId;
use tavana_domain::partner::Resource;
use tavana_persistence::webhooks::{
    self, Attempt, Delivery, Endpoint, EndpointChanges, NewEndpoint, Owner,
};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::password::random_secret;
use crate::auth::{Auth, Caller, Principal, perm};
use crate::conventions::{etag, if_match};
use crate::error::{ApiError, Problem};
use crate::pagination::{self, Page};
use crate::{AppState, with_db};

pub fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(list)
        .service(create)
        .service(read)
        .service(update)
        .service(remove)
        .service(enable)
        .service(deliveries)
        .service(replay);
}

/// Whose endpoints the caller manages: an administrator every organisation's, anyone else (a
/// partner) its own organisation's.
fn owner(caller: &Caller) -> Owner {
    match &caller.principal {
        Principal::User {
            role: tavana_domain::access::Role::Admin,
            ..
        } => Owner::Any,
        Principal::User {
            organisation_id, ..
        }
        | Principal::Client {
            organisation_id, ..
        } => Owner::Organisation(*organisation_id),
    }
}

fn organisation(caller: &Caller) -> OrganisationId {
    match &caller.principal {
        Principal::User {
            organisation_id, ..
        }
        | Principal::Client {
            organisation_id, ..
        } => *organisation_id,
    }
}

/// Checks an endpoint URL: `https://` with a host; `http://` only to a loopback host when allowed.
pub fn check_url(text: &str, allow_http_loopback: bool) -> Result<String, FieldError> {
    let text = text.trim();
    let bad = |code: &'static str, message: &str| FieldError::new("url", code, message.to_owned());
    if text.len() > 2000 {
        return Err(bad("length", "at most 2000 characters"));
    }
    let url = reqwest::Url::parse(text).map_err(|_| bad("format", "not a valid URL"))?;
    let host = url
        .host_str()
        .ok_or_else(|| bad("format", "the URL has no host"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("format", "credentials in the URL are not accepted"));
    }
    if url.fragment().is_some() {
        return Err(bad("format", "the URL may not have a fragment"));
    }
    let loopback = matches!(host, "127.0.0.1" | "localhost" | "[::1]");
    // Not the office's own network: a partner could probe it through the attempts' records.
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let internal = match bare.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(ip)) => {
            ip.is_private()
                || ip.is_loopback()
                || ip.is_link_local()
                || ip.is_unspecified()
                || ip.is_broadcast()
                || (ip.octets()[0] == 100 && (64..128).contains(&ip.octets()[1]))
        }
        Ok(std::net::IpAddr::V6(ip)) => {
            ip.is_loopback()
                || ip.is_unspecified()
                || (ip.segments()[0] & 0xfe00) == 0xfc00
                || (ip.segments()[0] & 0xffc0) == 0xfe80
                || ip.to_ipv4_mapped().is_some()
        }
        Err(_) => bare == "localhost" || bare.ends_with(".localhost"),
    };
    if internal && !(allow_http_loopback && loopback) {
        return Err(bad(
            "internal_address",
            "the URL must point to a public address, not a private, loopback or link-local one",
        ));
    }
    match url.scheme() {
        "https" => Ok(url.to_string()),
        "http" if allow_http_loopback && matches!(host, "127.0.0.1" | "localhost" | "[::1]") => {
            Ok(url.to_string())
        }
        _ => Err(bad("https_required", "the URL must start with https://")),
    }
}

/// Event types by their entity name (`person`, `household`, `enrolment`, `assessment`) or the
/// feed's plural.
fn parse_types(names: &[String]) -> Result<BTreeSet<Resource>, FieldError> {
    names
        .iter()
        .map(|name| {
            let name = name.trim();
            // The feed's plural names are taken too.
            Resource::from_entity(name)
                .or_else(|| name.parse().ok())
                .ok_or_else(|| {
                    FieldError::new(
                        "event_types",
                        "unknown_name",
                        format!("`{name}` is not one of person, household, enrolment, assessment"),
                    )
                })
        })
        .collect()
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookResponse {
    pub id: Uuid,
    pub organisation_id: Uuid,
    #[schema(example = "https://partner.example.org/tavana/events")]
    pub url: String,
    /// Entity names whose changes are sent (`person`, `household`, `enrolment`, `assessment`);
    /// empty means everything the organisation's MoU data policy allows.
    #[schema(example = json!(["person", "assessment"]))]
    pub event_types: Vec<String>,
    pub enabled: bool,
    /// Deliveries that failed in a row; at the configured limit the endpoint is disabled.
    pub failures: i32,
    pub disabled_at: Option<DateTime<Utc>>,
    /// Changes up to this feed number have their deliveries.
    pub last_seq: i64,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl TryFrom<Endpoint> for WebhookResponse {
    type Error = ApiError;

    fn try_from(e: Endpoint) -> Result<Self, ApiError> {
        Ok(Self {
            id: e.id.parse().map_err(ApiError::internal)?,
            organisation_id: e.organisation_id.parse().map_err(ApiError::internal)?,
            url: e.url,
            event_types: e
                .event_types
                .iter()
                .map(|r| r.entity().to_owned())
                .collect(),
            enabled: e.enabled,
            failures: e.failures,
            disabled_at: e.disabled_at.map(|t| t.and_utc()),
            last_seq: e.last_seq,
            version: e.version,
            created_at: e.created_at.and_utc(),
            updated_at: e.updated_at.and_utc(),
        })
    }
}

/// The new endpoint and its signing secret, shown this once.
// Not `Debug`: no log shows a secret.
#[derive(Serialize, ToSchema)]
pub struct CreatedWebhook {
    #[serde(flatten)]
    pub webhook: WebhookResponse,
    /// Key of the HMAC-SHA256 signatures; keep it, it is not shown again.
    pub secret: String,
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhookRequest {
    /// `https://` URL that deliveries are POSTed to.
    #[schema(example = "https://partner.example.org/tavana/events")]
    pub url: String,
    /// Entity names whose changes to send; empty or absent: all the MoU data policy allows.
    #[serde(default)]
    #[schema(example = json!(["person"]))]
    pub event_types: Vec<String>,
    /// The organisation the endpoint belongs to: administrators only (a partner's is its own);
    /// default the caller's.
    pub organisation_id: Option<Uuid>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateWebhookRequest {
    pub url: Option<String>,
    pub event_types: Option<Vec<String>>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListWebhooksQuery {
    /// Only this organisation's endpoints.
    pub organisation_id: Option<Uuid>,
    /// Page size, 1–200 (default 50).
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// List the caller's endpoints (an administrator's: every organisation's), never their secrets.
#[utoipa::path(
    tag = "webhooks",
    security(("bearer" = [])),
    params(ListWebhooksQuery),
    responses((status = 200, description = "One page of endpoints", body = Page<WebhookResponse>)),
)]
#[get("/webhooks")]
pub async fn list(
    auth: Auth<perm::WebhookManage>,
    state: web::Data<AppState>,
    query: web::Query<ListWebhooksQuery>,
) -> Result<web::Json<Page<WebhookResponse>>, ApiError> {
    // A partner manages its endpoints only while its MoU is in force.
    crate::partners::viewer(&state, &auth).await?;
    let query = query.into_inner();
    let limit = pagination::limit(query.limit)?;
    let after: Option<Uuid> = query
        .cursor
        .as_deref()
        .map(pagination::decode_cursor)
        .transpose()?;
    let owner = owner(&auth);
    let org = query.organisation_id.map(OrganisationId::from);
    let (items, more) = with_db(&state, move |c| {
        webhooks::list(c, owner, org, after.map(|a| a.to_string()), limit)
    })
    .await?;
    let next_cursor = pagination::next_cursor(more, items.last().map(|e| e.id.clone()));
    Ok(web::Json(Page {
        items: items
            .into_iter()
            .map(WebhookResponse::try_from)
            .collect::<Result<_, _>>()?,
        next_cursor,
    }))
}

/// Register an endpoint. It receives the changes made from now on, within the organisation's MoU
/// data policy. The answer holds the signing secret; it cannot be shown again.
#[utoipa::path(
    tag = "webhooks",
    security(("bearer" = [])),
    request_body = CreateWebhookRequest,
    responses(
        (status = 201, description = "Created; keep the secret", body = CreatedWebhook),
        (status = 403, description = "The organisation has no MoU data policy", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not an https URL, an event type the policy does not cover, or another organisation named by a partner", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[post("/webhooks")]
pub async fn create(
    auth: Auth<perm::WebhookManage>,
    state: web::Data<AppState>,
    body: web::Json<CreateWebhookRequest>,
) -> Result<HttpResponse, ApiError> {
    // A partner manages its endpoints only while its MoU is in force.
    crate::partners::viewer(&state, &auth).await?;
    let body = body.into_inner();
    let url = check_url(&body.url, state.webhooks.allow_http_loopback)?;
    let event_types = parse_types(&body.event_types)?;
    let organisation_id = match (owner(&auth), body.organisation_id) {
        (_, None) => organisation(&auth),
        (Owner::Any, Some(org)) => OrganisationId::from(org),
        (Owner::Organisation(own), Some(org)) if own.as_uuid() == org => own,
        (Owner::Organisation(_), Some(_)) => {
            return Err(FieldError::new(
                "organisation_id",
                "not_yours",
                "a partner registers endpoints for its own organisation only",
            )
            .into());
        }
    };
    // 32 random bytes.
    let secret = random_secret().map_err(ApiError::internal)?;
    let new = NewEndpoint {
        organisation_id,
        url,
        event_types,
        secret: secret.clone(),
    };
    let context = auth.audit();
    let endpoint = with_db(&state, move |c| webhooks::create(c, &context, new)).await?;
    let webhook = WebhookResponse::try_from(endpoint)?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/v1/webhooks/{}", webhook.id)))
        .insert_header(etag(webhook.version))
        .json(CreatedWebhook { webhook, secret }))
}

/// Read one endpoint.
#[utoipa::path(
    tag = "webhooks",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The endpoint's id")),
    responses(
        (status = 200, description = "The endpoint; `ETag` carries its version", body = WebhookResponse),
        (status = 404, description = "No such endpoint of the caller's organisation", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[get("/webhooks/{id}")]
pub async fn read(
    auth: Auth<perm::WebhookManage>,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    // A partner manages its endpoints only while its MoU is in force.
    crate::partners::viewer(&state, &auth).await?;
    let id = id.into_inner().to_string();
    let owner = owner(&auth);
    let endpoint = with_db(&state, move |c| webhooks::get(c, owner, &id)).await?;
    let webhook = WebhookResponse::try_from(endpoint)?;
    Ok(HttpResponse::Ok()
        .insert_header(etag(webhook.version))
        .json(webhook))
}

/// Change an endpoint's URL or event types. Honours `If-Match`.
#[utoipa::path(
    tag = "webhooks",
    security(("bearer" = [])),
    params(
        ("id" = Uuid, Path, description = "The endpoint's id"),
        ("If-Match" = Option<String>, Header, description = "The ETag last read; refused with 412 if the endpoint changed since"),
    ),
    request_body = UpdateWebhookRequest,
    responses(
        (status = 200, description = "Changed", body = WebhookResponse),
        (status = 404, description = "No such endpoint of the caller's organisation", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "Changed since the ETag was read", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not an https URL, or an event type the policy does not cover", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[patch("/webhooks/{id}")]
pub async fn update(
    auth: Auth<perm::WebhookManage>,
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<Uuid>,
    body: web::Json<UpdateWebhookRequest>,
) -> Result<HttpResponse, ApiError> {
    // A partner manages its endpoints only while its MoU is in force.
    crate::partners::viewer(&state, &auth).await?;
    let id = id.into_inner().to_string();
    let expected = if_match(&req)?;
    let body = body.into_inner();
    let changes = EndpointChanges {
        url: body
            .url
            .map(|u| check_url(&u, state.webhooks.allow_http_loopback))
            .transpose()?,
        event_types: body.event_types.map(|t| parse_types(&t)).transpose()?,
    };
    let (context, owner) = (auth.audit(), owner(&auth));
    let endpoint = with_db(&state, move |c| {
        webhooks::update(c, &context, owner, &id, changes, expected)
    })
    .await?;
    let webhook = WebhookResponse::try_from(endpoint)?;
    Ok(HttpResponse::Ok()
        .insert_header(etag(webhook.version))
        .json(webhook))
}

/// Remove an endpoint with its deliveries and their attempts.
#[utoipa::path(
    tag = "webhooks",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The endpoint's id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such endpoint of the caller's organisation", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[delete("/webhooks/{id}")]
pub async fn remove(
    auth: Auth<perm::WebhookManage>,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    // A partner manages its endpoints only while its MoU is in force.
    crate::partners::viewer(&state, &auth).await?;
    let id = id.into_inner().to_string();
    let (context, owner) = (auth.audit(), owner(&auth));
    with_db(&state, move |c| webhooks::delete(c, &context, owner, &id)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Turn an endpoint back on (after it was disabled for failing) with its failure count cleared;
/// the changes made meanwhile are delivered.
#[utoipa::path(
    tag = "webhooks",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The endpoint's id")),
    responses(
        (status = 200, description = "Enabled", body = WebhookResponse),
        (status = 404, description = "No such endpoint of the caller's organisation", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[post("/webhooks/{id}/enable")]
pub async fn enable(
    auth: Auth<perm::WebhookManage>,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    // A partner manages its endpoints only while its MoU is in force.
    crate::partners::viewer(&state, &auth).await?;
    let id = id.into_inner().to_string();
    let (context, owner) = (auth.audit(), owner(&auth));
    let endpoint = with_db(&state, move |c| webhooks::enable(c, &context, owner, &id)).await?;
    let webhook = WebhookResponse::try_from(endpoint)?;
    Ok(HttpResponse::Ok()
        .insert_header(etag(webhook.version))
        .json(webhook))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptResponse {
    pub id: Uuid,
    pub attempted_at: DateTime<Utc>,
    /// The receiver's HTTP status; absent when no answer came.
    pub status_code: Option<i32>,
    /// Why no answer came (connection refused, timeout, …).
    pub error: Option<String>,
    pub duration_ms: i64,
}

impl TryFrom<Attempt> for AttemptResponse {
    type Error = ApiError;

    fn try_from(a: Attempt) -> Result<Self, ApiError> {
        Ok(Self {
            id: a.id.parse().map_err(ApiError::internal)?,
            attempted_at: a.attempted_at.and_utc(),
            status_code: a.status_code,
            error: a.error,
            duration_ms: a.duration_ms,
        })
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryResponse {
    pub id: Uuid,
    pub webhook_id: Uuid,
    /// The feed number of the change delivered.
    pub change_seq: i64,
    /// `<entity>.<created|updated|deleted>`, e.g. `person.updated`.
    #[schema(example = "person.updated")]
    pub event_type: String,
    /// `pending`, `delivered` or `failed`.
    #[schema(example = "delivered")]
    pub state: String,
    /// Attempts since the delivery was made or last replayed.
    pub attempt_count: i32,
    /// When it is next tried, while pending.
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
    /// The body sent, exactly as signed; for a partner, as its policy and the consents in force
    /// let it read that body now: a record it may no longer see has `data: null`, a field its
    /// policy now withholds is left out (such a body no longer matches its signature).
    pub payload: String,
    /// Every attempt, oldest first.
    pub attempts: Vec<AttemptResponse>,
}

fn delivery_response(d: Delivery, attempts: Vec<Attempt>) -> Result<DeliveryResponse, ApiError> {
    Ok(DeliveryResponse {
        id: d.id.parse().map_err(ApiError::internal)?,
        webhook_id: d.endpoint_id.parse().map_err(ApiError::internal)?,
        change_seq: d.change_seq,
        event_type: d.event_type,
        state: d.state,
        attempt_count: d.attempts,
        next_attempt_at: d.next_attempt_at.map(|t| t.and_utc()),
        created_at: d.created_at.and_utc(),
        delivered_at: d.delivered_at.map(|t| t.and_utc()),
        payload: d.payload,
        attempts: attempts
            .into_iter()
            .map(AttemptResponse::try_from)
            .collect::<Result<_, _>>()?,
    })
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListDeliveriesQuery {
    /// Only deliveries in this state: `pending`, `delivered` or `failed`.
    pub state: Option<String>,
    /// Page size, 1–200 (default 50).
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// The endpoint's deliveries, newest first, each with its attempts.
#[utoipa::path(
    tag = "webhooks",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The endpoint's id"), ListDeliveriesQuery),
    responses(
        (status = 200, description = "One page of deliveries", body = Page<DeliveryResponse>),
        (status = 404, description = "No such endpoint of the caller's organisation", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[get("/webhooks/{id}/deliveries")]
pub async fn deliveries(
    auth: Auth<perm::WebhookManage>,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    query: web::Query<ListDeliveriesQuery>,
) -> Result<web::Json<Page<DeliveryResponse>>, ApiError> {
    // A partner manages its endpoints only while its MoU is in force, and reads the bodies sent
    // as its policy and the consents in force let it read them now.
    let viewer = crate::partners::viewer(&state, &auth).await?;
    let id = id.into_inner().to_string();
    let query = query.into_inner();
    let limit = pagination::limit(query.limit)?;
    if let Some(s) = &query.state
        && !matches!(s.as_str(), "pending" | "delivered" | "failed")
    {
        return Err(ApiError::BadRequest(
            "state must be pending, delivered or failed".to_owned(),
        ));
    }
    let before: Option<Uuid> = query
        .cursor
        .as_deref()
        .map(pagination::decode_cursor)
        .transpose()?;
    let owner = owner(&auth);
    let (items, more) = with_db(&state, move |c| {
        webhooks::deliveries(
            c,
            owner,
            &viewer,
            &id,
            query.state,
            before.map(|b| b.to_string()),
            limit,
        )
    })
    .await?;
    let next_cursor = pagination::next_cursor(more, items.last().map(|(d, _)| d.id.clone()));
    Ok(web::Json(Page {
        items: items
            .into_iter()
            .map(|(d, a)| delivery_response(d, a))
            .collect::<Result<_, _>>()?,
        next_cursor,
    }))
}

/// Send a delivery again, with the same body (signed afresh), with a new round of attempts.
#[utoipa::path(
    tag = "webhooks",
    security(("bearer" = [])),
    params(
        ("id" = Uuid, Path, description = "The endpoint's id"),
        ("delivery_id" = Uuid, Path, description = "The delivery's id"),
    ),
    responses(
        (status = 202, description = "Queued to be sent again", body = DeliveryResponse),
        (status = 404, description = "No such delivery of an endpoint of the caller's organisation", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The endpoint is disabled: enable it first", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[post("/webhooks/{id}/deliveries/{delivery_id}/replay")]
pub async fn replay(
    auth: Auth<perm::WebhookManage>,
    state: web::Data<AppState>,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    // A partner manages its endpoints only while its MoU is in force.
    let viewer = crate::partners::viewer(&state, &auth).await?;
    let (id, delivery) = path.into_inner();
    let (id, delivery) = (id.to_string(), delivery.to_string());
    let (context, owner) = (auth.audit(), owner(&auth));
    let delivery = with_db(&state, move |c| {
        webhooks::replay(c, &context, owner, &viewer, &id, &delivery)
    })
    .await?;
    Ok(HttpResponse::Accepted().json(delivery_response(delivery, Vec::new())?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_urls_must_be_https_or_local_http_when_allowed() {
        assert!(check_url("https://partner.example.org/hook", false).is_ok());
        for refused in [
            "http://partner.example.org/hook",
            "ftp://partner.example.org/",
            "partner.example.org",
            "https://user:pw@partner.example.org/",
            "http://127.0.0.1:8080/hook",
        ] {
            assert!(check_url(refused, false).is_err(), "{refused}");
        }
        assert!(check_url("http://127.0.0.1:8080/hook", true).is_ok());
        assert!(check_url("http://localhost/hook", true).is_ok());
        assert!(check_url("http://[::1]:9/hook", true).is_ok());
        assert!(check_url("http://10.0.0.1/hook", true).is_err());
        for internal in [
            "https://10.1.2.3/hook",
            "https://192.168.1.1/hook",
            "https://169.254.169.254/latest",
            "https://127.0.0.1/hook",
            "https://[fd00::1]/hook",
            "https://localhost/hook",
        ] {
            assert_eq!(
                check_url(internal, false).map_err(|e| e.code),
                Err("internal_address"),
                "{internal}"
            );
        }
        assert!(check_url("http://127.0.0.1.example.org/hook", true).is_err());
    }
}
