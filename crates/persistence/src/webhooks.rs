//! Webhooks: partner organisations' endpoints, the deliveries made for them from the changes feed,
//! and every attempt to send one.
//!
//! Deliveries are made in the same transaction that advances the endpoint's `last_seq` (under the
//! endpoint's lock, and backed by UNIQUE(endpoint_id, change_seq)), so a restart neither loses
//! nor repeats a delivery record. Sending is claimed with a lease (`next_attempt_at` pushed past
//! the send's timeout; `FOR UPDATE SKIP LOCKED` on PostgreSQL) and never holds a transaction open
//! across the HTTP call: two replicas never send the same attempt, and a replica that dies
//! mid-send leaves the delivery to be retried when the lease runs out.
//!
//! Every management query is scoped by [`Owner`]: a partner reaches only its organisation's
//! endpoints; another organisation's endpoint is "not found".

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use serde_json::{Value, json};
use tavana_domain::FieldError;
use tavana_domain::id::OrganisationId;
use tavana_domain::partner::Resource;

use crate::audit::{self, AuditContext, Event};
use crate::changes::{self, Viewer};
use crate::db::DbConnection;
use crate::error::StoreError;
use crate::schema::{webhook_attempts, webhook_deliveries, webhook_endpoints};
use crate::tx::{lock, write_transaction};

/// Whose endpoints a caller manages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// An administrator: every organisation's.
    Any,
    /// A partner (user or API client): its own organisation's only.
    Organisation(OrganisationId),
}

// Rows and values that hold an endpoint's secret are not `Debug`: no log shows a secret.
#[derive(Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = webhook_endpoints)]
struct EndpointRow {
    id: String,
    organisation_id: String,
    url: String,
    event_types: String,
    secret: String,
    enabled: bool,
    failures: i32,
    disabled_at: Option<NaiveDateTime>,
    last_seq: i64,
    version: i64,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

/// An endpoint as its owner sees it (never its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub id: String,
    pub organisation_id: String,
    pub url: String,
    /// The kinds of record whose changes are sent; empty means all the MoU policy allows.
    pub event_types: BTreeSet<Resource>,
    pub enabled: bool,
    /// Deliveries that failed in a row.
    pub failures: i32,
    pub disabled_at: Option<NaiveDateTime>,
    /// Changes up to this number have their deliveries.
    pub last_seq: i64,
    pub version: i64,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

fn parse_types(id: &str, text: &str) -> Result<BTreeSet<Resource>, StoreError> {
    text.split_whitespace()
        .map(|name| {
            Resource::from_entity(name).ok_or_else(|| {
                StoreError::Internal(format!("webhook_endpoints row {id}: bad event type"))
            })
        })
        .collect()
}

fn join_types(types: &BTreeSet<Resource>) -> String {
    types
        .iter()
        .map(|r| r.entity())
        .collect::<Vec<_>>()
        .join(" ")
}

impl TryFrom<EndpointRow> for Endpoint {
    type Error = StoreError;

    fn try_from(row: EndpointRow) -> Result<Self, StoreError> {
        Ok(Endpoint {
            event_types: parse_types(&row.id, &row.event_types)?,
            id: row.id,
            organisation_id: row.organisation_id,
            url: row.url,
            enabled: row.enabled,
            failures: row.failures,
            disabled_at: row.disabled_at,
            last_seq: row.last_seq,
            version: row.version,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

fn snapshot(row: &EndpointRow) -> Value {
    json!({
        "organisation_id": row.organisation_id,
        "url": row.url,
        "event_types": row.event_types,
        "enabled": row.enabled,
        "failures": row.failures,
    })
}

/// The endpoints the owner may reach, as a boxed query to filter further.
fn scoped<'a>(owner: Owner) -> webhook_endpoints::BoxedQuery<'a, crate::db::MultiBackend> {
    let query = webhook_endpoints::table.into_boxed();
    match owner {
        Owner::Any => query,
        Owner::Organisation(org) => {
            query.filter(webhook_endpoints::organisation_id.eq(org.to_string()))
        }
    }
}

fn row(conn: &mut DbConnection, owner: Owner, id: &str) -> Result<EndpointRow, StoreError> {
    Ok(scoped(owner)
        .filter(webhook_endpoints::id.eq(id.to_owned()))
        .select(EndpointRow::as_select())
        .first(conn)?)
}

/// Checks the event types against the organisation's MoU data policy (which must exist).
fn check_types(
    conn: &mut DbConnection,
    organisation: OrganisationId,
    types: &BTreeSet<Resource>,
) -> Result<(), StoreError> {
    let policy = crate::partner_policies::get(conn, organisation)?.ok_or_else(|| {
        StoreError::Forbidden(
            "the organisation has no MoU data policy; webhooks send only what one allows"
                .to_owned(),
        )
    })?;
    let mut errors = tavana_domain::ValidationErrors::default();
    for resource in types {
        if !policy.may_read(*resource) {
            errors.push(FieldError::new(
                "event_types",
                "not_in_policy",
                format!(
                    "the organisation's MoU data policy does not cover {}",
                    resource.entity()
                ),
            ));
        }
    }
    errors.into_result().map_err(StoreError::Invalid)
}

/// A new endpoint, as checked by the caller (the URL's scheme and host).
#[derive(Clone)]
pub struct NewEndpoint {
    pub organisation_id: OrganisationId,
    pub url: String,
    pub event_types: BTreeSet<Resource>,
    /// Made by the caller, returned to the client once, kept to sign with.
    pub secret: String,
}

/// Registers an endpoint. It starts from now: changes numbered before it are not sent.
pub fn create(
    conn: &mut DbConnection,
    context: &AuditContext,
    new: NewEndpoint,
) -> Result<Endpoint, StoreError> {
    write_transaction(conn, |conn| {
        if let Err(StoreError::NotFound) = crate::organisations::get(conn, new.organisation_id) {
            return Err(
                FieldError::new("organisation_id", "not_found", "no such organisation").into(),
            );
        }
        check_types(conn, new.organisation_id, &new.event_types)?;
        let now = crate::now();
        let mut row = EndpointRow {
            id: uuid::Uuid::now_v7().to_string(),
            organisation_id: new.organisation_id.to_string(),
            url: new.url,
            event_types: join_types(&new.event_types),
            secret: new.secret,
            enabled: true,
            failures: 0,
            disabled_at: None,
            last_seq: 0,
            version: 1,
            created_at: now,
            updated_at: now,
        };
        // The row (and the key-share lock on its organisation) before the audit log's order lock,
        // which writers take last; then, under that lock, where the endpoint starts: no change can
        // be numbered between reading the last and committing, so it misses nothing after.
        diesel::insert_into(webhook_endpoints::table)
            .values(&row)
            .execute(conn)?;
        crate::audit::order_lock(conn)?;
        row.last_seq = changes::last_seq(conn)?;
        diesel::update(webhook_endpoints::table.find(&row.id))
            .set(webhook_endpoints::last_seq.eq(row.last_seq))
            .execute(conn)?;
        audit::append(
            conn,
            context,
            Event {
                action: "webhook.create",
                entity: "webhook_endpoint",
                entity_id: Some(row.id.clone()),
                before: None,
                after: Some(snapshot(&row)),
            },
        )?;
        row.try_into()
    })
}

/// The owner's endpoints by id, optionally of one organisation.
pub fn list(
    conn: &mut DbConnection,
    owner: Owner,
    organisation: Option<OrganisationId>,
    after: Option<String>,
    limit: usize,
) -> Result<(Vec<Endpoint>, bool), StoreError> {
    let mut query = scoped(owner).select(EndpointRow::as_select());
    if let Some(org) = organisation {
        query = query.filter(webhook_endpoints::organisation_id.eq(org.to_string()));
    }
    if let Some(after) = after {
        query = query.filter(webhook_endpoints::id.gt(after));
    }
    let rows: Vec<EndpointRow> = query
        .order(webhook_endpoints::id.asc())
        .limit(crate::page::fetch(limit))
        .load(conn)?;
    let (rows, more) = crate::page::split(rows, limit);
    let endpoints = rows
        .into_iter()
        .map(Endpoint::try_from)
        .collect::<Result<_, _>>()?;
    Ok((endpoints, more))
}

pub fn get(conn: &mut DbConnection, owner: Owner, id: &str) -> Result<Endpoint, StoreError> {
    row(conn, owner, id)?.try_into()
}

/// What an update changes; `None` keeps the field.
#[derive(Debug, Clone, Default)]
pub struct EndpointChanges {
    pub url: Option<String>,
    pub event_types: Option<BTreeSet<Resource>>,
}

fn check_version(row: &EndpointRow, expected: Option<i64>) -> Result<(), StoreError> {
    match expected {
        Some(v) if v != row.version => Err(StoreError::VersionMismatch {
            current: row.version,
        }),
        _ => Ok(()),
    }
}

/// Changes an endpoint's URL or event types; honours the expected version.
pub fn update(
    conn: &mut DbConnection,
    context: &AuditContext,
    owner: Owner,
    id: &str,
    changes: EndpointChanges,
    expected: Option<i64>,
) -> Result<Endpoint, StoreError> {
    write_transaction(conn, |conn| {
        // Serialised with the dispatcher's writes to the same endpoint.
        lock(conn, &format!("webhook_endpoint:{id}"))?;
        let before = row(conn, owner, id)?;
        check_version(&before, expected)?;
        let mut after = before.clone();
        if let Some(url) = changes.url {
            after.url = url;
        }
        if let Some(types) = changes.event_types {
            let organisation = before.organisation_id.parse().map_err(|_| {
                StoreError::Internal(format!("webhook_endpoints row {id}: bad organisation"))
            })?;
            check_types(conn, organisation, &types)?;
            after.event_types = join_types(&types);
        }
        after.version = before.version + 1;
        after.updated_at = crate::now();
        diesel::update(webhook_endpoints::table.find(id))
            .set((
                webhook_endpoints::url.eq(&after.url),
                webhook_endpoints::event_types.eq(&after.event_types),
                webhook_endpoints::version.eq(after.version),
                webhook_endpoints::updated_at.eq(after.updated_at),
            ))
            .execute(conn)?;
        audit::append(
            conn,
            context,
            Event {
                action: "webhook.update",
                entity: "webhook_endpoint",
                entity_id: Some(id.to_owned()),
                before: Some(snapshot(&before)),
                after: Some(snapshot(&after)),
            },
        )?;
        after.try_into()
    })
}

/// Removes an endpoint with its deliveries and their attempts.
pub fn delete(
    conn: &mut DbConnection,
    context: &AuditContext,
    owner: Owner,
    id: &str,
) -> Result<(), StoreError> {
    write_transaction(conn, |conn| {
        // Serialised with the dispatcher's writes to the same endpoint.
        lock(conn, &format!("webhook_endpoint:{id}"))?;
        let before = row(conn, owner, id)?;
        let deliveries = webhook_deliveries::table
            .filter(webhook_deliveries::endpoint_id.eq(id))
            .select(webhook_deliveries::id);
        diesel::delete(
            webhook_attempts::table.filter(webhook_attempts::delivery_id.eq_any(deliveries)),
        )
        .execute(conn)?;
        diesel::delete(webhook_deliveries::table.filter(webhook_deliveries::endpoint_id.eq(id)))
            .execute(conn)?;
        diesel::delete(webhook_endpoints::table.find(id)).execute(conn)?;
        audit::append(
            conn,
            context,
            Event {
                action: "webhook.delete",
                entity: "webhook_endpoint",
                entity_id: Some(id.to_owned()),
                before: Some(snapshot(&before)),
                after: None,
            },
        )
    })
}

/// Turns an endpoint (back) on with its failure count cleared. Changes made while it was off are
/// delivered: its `last_seq` stayed where it was.
pub fn enable(
    conn: &mut DbConnection,
    context: &AuditContext,
    owner: Owner,
    id: &str,
) -> Result<Endpoint, StoreError> {
    write_transaction(conn, |conn| {
        // Serialised with the dispatcher's writes to the same endpoint.
        lock(conn, &format!("webhook_endpoint:{id}"))?;
        let before = row(conn, owner, id)?;
        let now = crate::now();
        diesel::update(webhook_endpoints::table.find(id))
            .set((
                webhook_endpoints::enabled.eq(true),
                webhook_endpoints::failures.eq(0),
                webhook_endpoints::disabled_at.eq(None::<NaiveDateTime>),
                webhook_endpoints::version.eq(before.version + 1),
                webhook_endpoints::updated_at.eq(now),
            ))
            .execute(conn)?;
        // Deliveries waiting while it was off go out now.
        diesel::update(
            webhook_deliveries::table
                .filter(webhook_deliveries::endpoint_id.eq(id))
                .filter(webhook_deliveries::state.eq("pending")),
        )
        .set(webhook_deliveries::next_attempt_at.eq(Some(now)))
        .execute(conn)?;
        let after = row(conn, owner, id)?;
        audit::append(
            conn,
            context,
            Event {
                action: "webhook.enable",
                entity: "webhook_endpoint",
                entity_id: Some(id.to_owned()),
                before: Some(snapshot(&before)),
                after: Some(snapshot(&after)),
            },
        )?;
        after.try_into()
    })
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = webhook_deliveries)]
pub struct Delivery {
    pub id: String,
    pub endpoint_id: String,
    pub change_seq: i64,
    pub event_type: String,
    /// The exact body sent (and signed).
    pub payload: String,
    pub state: String,
    /// Attempts made since the delivery was made or last replayed.
    pub attempts: i32,
    pub next_attempt_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    pub delivered_at: Option<NaiveDateTime>,
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = webhook_attempts)]
pub struct Attempt {
    pub id: String,
    pub delivery_id: String,
    pub attempted_at: NaiveDateTime,
    /// The receiver's HTTP status; none when no answer came.
    pub status_code: Option<i32>,
    /// Why it failed, when no answer came (connection refused, timeout, …).
    pub error: Option<String>,
    pub duration_ms: i64,
}

/// A delivery with all its attempts, oldest first.
pub type DeliveryWithAttempts = (Delivery, Vec<Attempt>);

/// The endpoint's deliveries, newest first, each with all its attempts (oldest first), their
/// bodies as the `viewer` may read them now (`readable_now`).
pub fn deliveries(
    conn: &mut DbConnection,
    owner: Owner,
    viewer: &Viewer,
    endpoint: &str,
    state: Option<String>,
    before: Option<String>,
    limit: usize,
) -> Result<(Vec<DeliveryWithAttempts>, bool), StoreError> {
    row(conn, owner, endpoint)?;
    let mut query = webhook_deliveries::table
        .filter(webhook_deliveries::endpoint_id.eq(endpoint.to_owned()))
        .select(Delivery::as_select())
        .into_boxed();
    if let Some(state) = state {
        query = query.filter(webhook_deliveries::state.eq(state));
    }
    if let Some(before) = before {
        query = query.filter(webhook_deliveries::id.lt(before));
    }
    let rows: Vec<Delivery> = query
        .order(webhook_deliveries::id.desc())
        .limit(crate::page::fetch(limit))
        .load(conn)?;
    let (mut rows, more) = crate::page::split(rows, limit);
    readable_now(conn, viewer, &mut rows)?;
    let ids: Vec<&str> = rows.iter().map(|d| d.id.as_str()).collect();
    let attempts: Vec<Attempt> = webhook_attempts::table
        .filter(webhook_attempts::delivery_id.eq_any(&ids))
        .select(Attempt::as_select())
        .order((
            webhook_attempts::attempted_at.asc(),
            webhook_attempts::id.asc(),
        ))
        .load(conn)?;
    let mut by_delivery: std::collections::HashMap<String, Vec<Attempt>> =
        std::collections::HashMap::new();
    for attempt in attempts {
        by_delivery
            .entry(attempt.delivery_id.clone())
            .or_default()
            .push(attempt);
    }
    Ok((
        rows.into_iter()
            .map(|d| {
                let attempts = by_delivery.remove(&d.id).unwrap_or_default();
                (d, attempts)
            })
            .collect(),
        more,
    ))
}

/// Sends a delivery again, with the same body, as soon as the dispatcher runs: it becomes pending
/// with a fresh round of attempts (earlier attempts stay on record). The endpoint must be enabled.
pub fn replay(
    conn: &mut DbConnection,
    context: &AuditContext,
    owner: Owner,
    viewer: &Viewer,
    endpoint: &str,
    delivery: &str,
) -> Result<Delivery, StoreError> {
    write_transaction(conn, |conn| {
        // Serialised with the dispatcher's writes to the same endpoint.
        lock(conn, &format!("webhook_endpoint:{endpoint}"))?;
        let endpoint_row = row(conn, owner, endpoint)?;
        let before: Delivery = webhook_deliveries::table
            .filter(webhook_deliveries::id.eq(delivery))
            .filter(webhook_deliveries::endpoint_id.eq(endpoint))
            .select(Delivery::as_select())
            .first(conn)?;
        if !endpoint_row.enabled {
            return Err(StoreError::Conflict(
                "the endpoint is disabled: enable it first".to_owned(),
            ));
        }
        diesel::update(webhook_deliveries::table.find(delivery))
            .set((
                webhook_deliveries::state.eq("pending"),
                webhook_deliveries::attempts.eq(0),
                webhook_deliveries::next_attempt_at.eq(Some(crate::now())),
                webhook_deliveries::delivered_at.eq(None::<NaiveDateTime>),
            ))
            .execute(conn)?;
        audit::append(
            conn,
            context,
            Event {
                action: "webhook.replay",
                entity: "webhook_delivery",
                entity_id: Some(delivery.to_owned()),
                before: Some(json!({"endpoint_id": endpoint, "state": before.state,
                    "attempts": before.attempts})),
                after: Some(json!({"endpoint_id": endpoint, "state": "pending"})),
            },
        )?;
        let mut replayed: Delivery = webhook_deliveries::table
            .find(delivery)
            .select(Delivery::as_select())
            .first(conn)?;
        readable_now(conn, viewer, std::slice::from_mut(&mut replayed))?;
        Ok(replayed)
    })
}

/// Stored bodies as a partner may read them today. A body keeps its record's data as sent while
/// the policy and consents in force let the partner see that record, cut to the fields the
/// policy allows now; otherwise the data is withheld (`null`). A consent withdrawn, an MoU's
/// areas or fields narrowed, withdraw what was sent from these listings too, as from the feed.
/// A body left whole is returned byte for byte, as signed.
fn readable_now(
    conn: &mut DbConnection,
    viewer: &Viewer,
    deliveries: &mut [Delivery],
) -> Result<(), StoreError> {
    let Viewer::Partner(partner) = viewer else {
        return Ok(());
    };
    let bad = || StoreError::Internal("webhook delivery with a bad body".to_owned());
    // The bodies that carry a record's data, with the delivery and the record they are of.
    let mut sent = Vec::new();
    let mut wanted: HashMap<Resource, Vec<String>> = HashMap::new();
    for (at, delivery) in deliveries.iter().enumerate() {
        let body: Value = serde_json::from_str(&delivery.payload).map_err(|_| bad())?;
        if !body["data"].is_object() {
            continue;
        }
        let resource: Resource = body["resource"]
            .as_str()
            .and_then(|r| r.parse().ok())
            .ok_or_else(bad)?;
        let record = body["record_id"].as_str().ok_or_else(bad)?.to_owned();
        wanted.entry(resource).or_default().push(record.clone());
        sent.push((at, (resource, record), body));
    }
    let readable = viewer.readable();
    let mut visible: HashSet<(Resource, String)> = HashSet::new();
    for (resource, ids) in wanted {
        if readable.contains(&resource) {
            let found = changes::records(conn, viewer, resource, &ids)?;
            visible.extend(found.into_keys().map(|id| (resource, id)));
        }
    }
    for (at, record, mut body) in sent {
        let Value::Object(data) = body["data"].take() else {
            continue;
        };
        body["data"] = if visible.contains(&record) {
            let shaped = partner.policy.shape(data.clone());
            if shaped == data {
                continue;
            }
            Value::Object(shaped)
        } else {
            Value::Null
        };
        if let Some(delivery) = deliveries.get_mut(at) {
            delivery.payload = body.to_string();
        }
    }
    Ok(())
}

// ---- The dispatcher's steps ----

/// How failed attempts are retried and when an endpoint is given up on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per delivery before it is `failed`.
    pub max_attempts: u32,
    /// The wait after the first failed attempt; doubled after each further one.
    pub backoff_base: Duration,
    /// The longest wait between attempts.
    pub backoff_cap: Duration,
    /// Failed deliveries in a row that disable the endpoint.
    pub max_failures: u32,
}

impl RetryPolicy {
    /// The wait after `attempts` failed attempts: base × 2^(attempts−1), capped.
    pub fn backoff(&self, attempts: u32) -> Duration {
        let factor = 2_u32.saturating_pow(attempts.saturating_sub(1));
        self.backoff_base
            .checked_mul(factor)
            .unwrap_or(self.backoff_cap)
            .min(self.backoff_cap)
    }
}

fn add(at: NaiveDateTime, wait: Duration) -> NaiveDateTime {
    chrono::Duration::from_std(wait)
        .ok()
        .and_then(|d| at.checked_add_signed(d))
        .unwrap_or(NaiveDateTime::MAX)
}

/// Makes the deliveries of every enabled endpoint for the changes after its `last_seq` (at most
/// `batch` per endpoint); returns how many were made. An endpoint whose organisation has no MoU
/// policy in force `today` gets none (its changes wait for the policy).
pub fn enqueue(conn: &mut DbConnection, today: NaiveDate, batch: i64) -> Result<usize, StoreError> {
    let last = changes::last_seq(conn)?;
    let waiting: Vec<String> = webhook_endpoints::table
        .filter(webhook_endpoints::enabled.eq(true))
        .filter(webhook_endpoints::last_seq.lt(last))
        .select(webhook_endpoints::id)
        .order(webhook_endpoints::id.asc())
        .load(conn)?;
    let mut made = 0;
    for id in waiting {
        match enqueue_endpoint(conn, &id, today, batch) {
            Ok(n) => made += n,
            Err(error) => tracing::warn!(endpoint = %id, %error, "webhook deliveries not made"),
        }
    }
    Ok(made)
}

/// One endpoint's step of [`enqueue`], in one transaction under the endpoint's lock.
pub fn enqueue_endpoint(
    conn: &mut DbConnection,
    id: &str,
    today: NaiveDate,
    batch: i64,
) -> Result<usize, StoreError> {
    write_transaction(conn, |conn| {
        lock(conn, &format!("webhook_endpoint:{id}"))?;
        let endpoint = row(conn, Owner::Any, id)?;
        if !endpoint.enabled {
            return Ok(0);
        }
        let organisation = endpoint.organisation_id.parse().map_err(|_| {
            StoreError::Internal(format!("webhook_endpoints row {id}: bad organisation"))
        })?;
        let viewer = match Viewer::partner(conn, organisation, today) {
            Ok(viewer) => viewer,
            Err(StoreError::Forbidden(_)) => return Ok(0),
            Err(other) => return Err(other),
        };
        let wanted = parse_types(id, &endpoint.event_types)?;
        let readable = viewer.readable();
        let resources: Vec<Resource> = wanted
            .iter()
            .copied()
            .filter(|r| readable.contains(r))
            .collect();
        if !wanted.is_empty() && resources.is_empty() {
            // Nothing it asked for is covered by the policy any more.
            return Ok(0);
        }
        // Changes are numbered in commit order: once `upto` is visible, so is every change
        // before it. A feed shorter than the batch therefore holds every change up to `upto`
        // the endpoint wants, and the others can be passed over.
        let upto = changes::last_seq(conn)?;
        let feed = changes::feed(conn, &viewer, endpoint.last_seq, &resources, batch)?;
        let complete = i64::try_from(feed.len()).unwrap_or(i64::MAX) < batch;
        let last = match feed.last().map(|c| c.seq) {
            Some(seq) if complete => seq.max(upto),
            Some(seq) => seq,
            None => upto,
        };
        if last <= endpoint.last_seq {
            return Ok(0);
        }
        let now = crate::now();
        let rows = feed
            .into_iter()
            .filter(|change| !change.hidden)
            .map(|change| {
                let delivery = uuid::Uuid::now_v7().to_string();
                let event_type = format!("{}.{}", change.resource.entity(), change.op.as_str());
                let payload = json!({
                    "id": delivery,
                    "type": event_type,
                    "seq": change.seq,
                    "resource": change.resource.as_str(),
                    "record_id": change.id,
                    "occurred_at": change.changed_at.and_utc(),
                    "data": change.data.map(Value::Object),
                })
                .to_string();
                Delivery {
                    id: delivery,
                    endpoint_id: id.to_owned(),
                    change_seq: change.seq,
                    event_type,
                    payload,
                    state: "pending".to_owned(),
                    attempts: 0,
                    next_attempt_at: Some(now),
                    created_at: now,
                    delivered_at: None,
                }
            })
            .collect::<Vec<_>>();
        let made = rows.len();
        bulk_insert!(conn, webhook_deliveries::table, rows);
        diesel::update(webhook_endpoints::table.find(id))
            .set(webhook_endpoints::last_seq.eq(last))
            .execute(conn)?;
        Ok(made)
    })
}

/// A delivery claimed for sending, with what is needed to send it.
#[derive(Clone)]
pub struct Claim {
    pub delivery_id: String,
    pub endpoint_id: String,
    pub url: String,
    pub secret: String,
    pub event_type: String,
    pub payload: String,
}

/// The query of deliveries due at `$now` whose endpoint is enabled, oldest due first.
macro_rules! due {
    ($now:expr, $limit:expr) => {
        webhook_deliveries::table
            .filter(webhook_deliveries::state.eq("pending"))
            .filter(webhook_deliveries::next_attempt_at.le($now))
            .filter(
                webhook_deliveries::endpoint_id.eq_any(
                    webhook_endpoints::table
                        .filter(webhook_endpoints::enabled.eq(true))
                        .select(webhook_endpoints::id),
                ),
            )
            .order(webhook_deliveries::next_attempt_at.asc())
            .limit($limit)
            .select(webhook_deliveries::id)
    };
}

/// Claims up to `limit` due deliveries for `lease`: no other dispatcher takes them until it runs
/// out (the sender records its attempt well before).
pub fn claim_due(
    conn: &mut DbConnection,
    lease: Duration,
    limit: i64,
) -> Result<Vec<Claim>, StoreError> {
    // A plain read first: most rounds find nothing due and need no write lock.
    let due: Vec<String> = due!(crate::now(), 1).load(conn)?;
    if due.is_empty() {
        return Ok(Vec::new());
    }
    write_transaction(conn, |conn| {
        let now = crate::now();
        let ids: Vec<String> = match conn {
            DbConnection::Pg(pg) => due!(now, limit).for_update().skip_locked().load(pg)?,
            DbConnection::Sqlite(sqlite) => due!(now, limit).load(sqlite)?,
        };
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        diesel::update(webhook_deliveries::table.filter(webhook_deliveries::id.eq_any(&ids)))
            .set(webhook_deliveries::next_attempt_at.eq(Some(add(now, lease))))
            .execute(conn)?;
        let rows: Vec<ClaimRow> = webhook_deliveries::table
            .inner_join(webhook_endpoints::table)
            .filter(webhook_deliveries::id.eq_any(&ids))
            .select((
                webhook_deliveries::id,
                webhook_deliveries::endpoint_id,
                webhook_endpoints::url,
                webhook_endpoints::secret,
                webhook_endpoints::organisation_id,
                webhook_deliveries::payload,
            ))
            .load(conn)?;
        let today = now.date();
        let mut viewers: HashMap<String, Option<Viewer>> = HashMap::new();
        let mut claims = Vec::new();
        for (delivery_id, endpoint_id, url, secret, organisation, payload) in rows {
            // The body is shaped again under the policy and consents in force now: a delivery
            // made before the MoU ended, a consent was withdrawn or a field was withheld sends
            // nothing it may no longer send.
            let Some((event_type, payload)) =
                reshape(conn, &mut viewers, &organisation, &payload, today)?
            else {
                // No policy in force: held back, not attempted, until there is one again.
                continue;
            };
            diesel::update(webhook_deliveries::table.find(&delivery_id))
                .set((
                    webhook_deliveries::event_type.eq(&event_type),
                    webhook_deliveries::payload.eq(&payload),
                ))
                .execute(conn)?;
            claims.push(Claim {
                delivery_id,
                endpoint_id,
                url,
                secret,
                event_type,
                payload,
            });
        }
        Ok(claims)
    })
}

/// A claimed delivery: id, endpoint, url, secret, organisation, stored body.
type ClaimRow = (String, String, String, String, String, String);

/// A stored body shaped again for its organisation's policy in force today: its event type and
/// body, or `None` when the organisation has no policy in force.
fn reshape(
    conn: &mut DbConnection,
    viewers: &mut HashMap<String, Option<Viewer>>,
    organisation: &str,
    payload: &str,
    today: NaiveDate,
) -> Result<Option<(String, String)>, StoreError> {
    let viewer = match viewers.get(organisation) {
        Some(viewer) => viewer.clone(),
        None => {
            let id = organisation.parse().map_err(|_| {
                StoreError::Internal(format!(
                    "webhook endpoint of bad organisation {organisation}"
                ))
            })?;
            let viewer = match Viewer::partner(conn, id, today) {
                Ok(viewer) => Some(viewer),
                Err(StoreError::Forbidden(_)) => None,
                Err(other) => return Err(other),
            };
            viewers.insert(organisation.to_owned(), viewer.clone());
            viewer
        }
    };
    let Some(viewer) = viewer else {
        return Ok(None);
    };
    let bad = || StoreError::Internal("webhook delivery with a bad body".to_owned());
    let mut body: Value = serde_json::from_str(payload).map_err(|_| bad())?;
    let resource: Resource = body["resource"]
        .as_str()
        .and_then(|r| r.parse().ok())
        .ok_or_else(bad)?;
    let record = body["record_id"].as_str().ok_or_else(bad)?.to_owned();
    let kind = body["type"].as_str().ok_or_else(bad)?.to_owned();
    let data = if kind.ends_with(".deleted") || !viewer.readable().contains(&resource) {
        None
    } else {
        changes::records(conn, &viewer, resource, std::slice::from_ref(&record))?.remove(&record)
    };
    let event_type = match &data {
        Some(_) => kind,
        None => format!("{}.deleted", resource.entity()),
    };
    body["type"] = Value::from(event_type.clone());
    body["data"] = data.map_or(Value::Null, Value::Object);
    Ok(Some((event_type, body.to_string())))
}

/// How one attempt went.
#[derive(Debug, Clone)]
pub struct AttemptOutcome {
    pub attempted_at: NaiveDateTime,
    pub status_code: Option<u16>,
    pub error: Option<String>,
    pub duration_ms: i64,
}

impl AttemptOutcome {
    pub fn succeeded(&self) -> bool {
        self.status_code.is_some_and(|s| (200..300).contains(&s))
    }
}

/// What became of the delivery after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterAttempt {
    Delivered,
    /// Retried at the given time.
    Retry(NaiveDateTime),
    /// Every attempt used; `true` when this disabled the endpoint.
    Failed {
        disabled: bool,
    },
    /// The delivery was no longer pending (replayed, or its endpoint deleted meanwhile).
    Ignored,
}

/// Records an attempt and moves the delivery on: delivered (the endpoint's failures reset),
/// retried after the back-off, or failed — which counts against the endpoint and may disable it.
pub fn record_attempt(
    conn: &mut DbConnection,
    delivery_id: &str,
    outcome: &AttemptOutcome,
    retry: &RetryPolicy,
) -> Result<AfterAttempt, StoreError> {
    write_transaction(conn, |conn| {
        let Some(endpoint_id) = webhook_deliveries::table
            .find(delivery_id)
            .select(webhook_deliveries::endpoint_id)
            .first::<String>(conn)
            .optional()?
        else {
            return Ok(AfterAttempt::Ignored);
        };
        lock(conn, &format!("webhook_endpoint:{endpoint_id}"))?;
        // Read again under the lock: a replay or an enable may have changed it meanwhile.
        let Some(delivery) = webhook_deliveries::table
            .find(delivery_id)
            .select(Delivery::as_select())
            .first(conn)
            .optional()?
        else {
            return Ok(AfterAttempt::Ignored);
        };
        diesel::insert_into(webhook_attempts::table)
            .values(Attempt {
                id: uuid::Uuid::now_v7().to_string(),
                delivery_id: delivery_id.to_owned(),
                attempted_at: outcome.attempted_at,
                status_code: outcome.status_code.map(i32::from),
                error: outcome.error.clone(),
                duration_ms: outcome.duration_ms,
            })
            .execute(conn)?;
        if delivery.state != "pending" {
            return Ok(AfterAttempt::Ignored);
        }
        let attempts = delivery.attempts.saturating_add(1);
        let now = crate::now();
        let endpoint = row(conn, Owner::Any, &delivery.endpoint_id)?;
        let target = webhook_deliveries::table.find(delivery_id);
        if outcome.succeeded() {
            diesel::update(target)
                .set((
                    webhook_deliveries::state.eq("delivered"),
                    webhook_deliveries::attempts.eq(attempts),
                    webhook_deliveries::next_attempt_at.eq(None::<NaiveDateTime>),
                    webhook_deliveries::delivered_at.eq(Some(now)),
                ))
                .execute(conn)?;
            if endpoint.failures != 0 {
                diesel::update(webhook_endpoints::table.find(&endpoint.id))
                    .set(webhook_endpoints::failures.eq(0))
                    .execute(conn)?;
            }
            return Ok(AfterAttempt::Delivered);
        }
        if u32::try_from(attempts).unwrap_or(u32::MAX) < retry.max_attempts {
            let next = add(
                now,
                retry.backoff(u32::try_from(attempts).unwrap_or(u32::MAX)),
            );
            diesel::update(target)
                .set((
                    webhook_deliveries::attempts.eq(attempts),
                    webhook_deliveries::next_attempt_at.eq(Some(next)),
                ))
                .execute(conn)?;
            return Ok(AfterAttempt::Retry(next));
        }
        diesel::update(target)
            .set((
                webhook_deliveries::state.eq("failed"),
                webhook_deliveries::attempts.eq(attempts),
                webhook_deliveries::next_attempt_at.eq(None::<NaiveDateTime>),
            ))
            .execute(conn)?;
        let failures = endpoint.failures.saturating_add(1);
        let disable =
            endpoint.enabled && u32::try_from(failures).unwrap_or(u32::MAX) >= retry.max_failures;
        if disable {
            diesel::update(webhook_endpoints::table.find(&endpoint.id))
                .set((
                    webhook_endpoints::failures.eq(failures),
                    webhook_endpoints::enabled.eq(false),
                    webhook_endpoints::disabled_at.eq(Some(now)),
                    webhook_endpoints::version.eq(endpoint.version + 1),
                    webhook_endpoints::updated_at.eq(now),
                ))
                .execute(conn)?;
            let mut after = endpoint.clone();
            after.failures = failures;
            after.enabled = false;
            audit::append(
                conn,
                &AuditContext::system(),
                Event {
                    action: "webhook.disable",
                    entity: "webhook_endpoint",
                    entity_id: Some(endpoint.id.clone()),
                    before: Some(snapshot(&endpoint)),
                    after: Some(snapshot(&after)),
                },
            )?;
        } else {
            diesel::update(webhook_endpoints::table.find(&endpoint.id))
                .set(webhook_endpoints::failures.eq(failures))
                .execute(conn)?;
        }
        Ok(AfterAttempt::Failed { disabled: disable })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_off_doubles_up_to_the_cap() {
        let retry = RetryPolicy {
            max_attempts: 6,
            backoff_base: Duration::from_secs(30),
            backoff_cap: Duration::from_secs(600),
            max_failures: 5,
        };
        let waits: Vec<u64> = (1..=7).map(|n| retry.backoff(n).as_secs()).collect();
        assert_eq!(waits, [30, 60, 120, 240, 480, 600, 600]);
        assert_eq!(retry.backoff(200), Duration::from_secs(600));
    }
}
