//! `/api/v1/audit`: the audit log, for auditors and administrators.

use actix_web::{get, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tavana_persistence::audit::{self, AuditFilter, AuditRow};
use utoipa::{IntoParams, ToSchema};

use tavana_domain::access::mask_identifiers;
use tavana_domain::calendar::parse_date;

use crate::auth::{Auth, perm};
use crate::error::ApiError;
use crate::pagination::{self, Page};
use crate::{AppState, with_db};

pub fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(list);
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntryResponse {
    /// Position in the chain, from 1.
    pub seq: i64,
    pub at: DateTime<Utc>,
    /// `user`, `client` or `system`.
    pub actor_kind: String,
    pub actor_id: Option<String>,
    #[schema(example = "user.create")]
    pub action: String,
    pub entity: String,
    pub entity_id: Option<String>,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
    pub request_id: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

impl From<AuditRow> for AuditEntryResponse {
    fn from(row: AuditRow) -> Self {
        let parse = |text: Option<String>| text.and_then(|t| serde_json::from_str(&t).ok());
        Self {
            seq: row.seq,
            at: row.at.and_utc(),
            actor_kind: row.actor_kind,
            actor_id: row.actor_id,
            action: row.action,
            entity: row.entity,
            entity_id: row.entity_id,
            before: parse(row.before_json),
            after: parse(row.after_json),
            request_id: row.request_id,
            prev_hash: row.prev_hash,
            hash: row.hash,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListAuditQuery {
    /// A user's id or an API client's `client_id`.
    pub actor_id: Option<String>,
    /// `area`, `user`, `organisation`, `api_client`, …
    pub entity: Option<String>,
    pub entity_id: Option<String>,
    /// e.g. `user.create`, `auth.login`.
    pub action: Option<String>,
    /// From this day (inclusive, UTC), Gregorian or Jalali.
    pub from: Option<String>,
    /// Up to this day (inclusive, UTC), Gregorian or Jalali.
    pub to: Option<String>,
    /// Page size, 1–200 (default 50).
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// The audit log, newest first.
///
/// A person's identifiers (national ID, mobile number) in the entries' `before` and `after` are
/// masked, but for their last four characters, for callers who see them masked in `/persons`
/// (auditors).
#[utoipa::path(
    tag = "audit",
    security(("bearer" = [])),
    params(ListAuditQuery),
    responses((status = 200, description = "One page of entries", body = Page<AuditEntryResponse>)),
)]
#[get("/audit")]
pub async fn list(
    auth: Auth<perm::AuditRead>,
    state: web::Data<AppState>,
    query: web::Query<ListAuditQuery>,
) -> Result<web::Json<Page<AuditEntryResponse>>, ApiError> {
    let query = query.into_inner();
    let limit = pagination::limit(query.limit)?;
    let before: Option<i64> = query
        .cursor
        .as_deref()
        .map(pagination::decode_cursor)
        .transpose()?;
    let filter = AuditFilter {
        actor_id: query.actor_id,
        entity: query.entity,
        entity_id: query.entity_id,
        action: query.action,
        from: query
            .from
            .as_deref()
            .map(|d| parse_date("from", d))
            .transpose()?
            .and_then(|d| d.and_hms_opt(0, 0, 0)),
        to: query
            .to
            .as_deref()
            .map(|d| parse_date("to", d))
            .transpose()?
            .and_then(|d| d.succ_opt())
            .and_then(|d| d.and_hms_opt(0, 0, 0)),
    };
    let (items, more) = with_db(&state, move |c| audit::list(c, &filter, before, limit)).await?;
    let next_cursor = pagination::next_cursor(more, items.last().map(|r| r.seq.to_string()));
    Ok(web::Json(Page {
        items: items
            .into_iter()
            .map(|row| {
                let mut entry = AuditEntryResponse::from(row);
                if !auth.sees_identifiers() {
                    entry.before.iter_mut().for_each(mask_identifiers);
                    entry.after.iter_mut().for_each(mask_identifiers);
                }
                entry
            })
            .collect(),
        next_cursor,
    }))
}
