//! The `api_clients` table: machine accounts of partner agencies and scripts.

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use serde_json::json;
use tavana_domain::access::ClientScope;
use tavana_domain::id::{ApiClientId, OrganisationId};
use tavana_domain::organisation::ApiClient;

use crate::audit::{self, AuditContext, Event};
use crate::db::DbConnection;
use crate::error::StoreError;
use crate::schema::{api_clients, organisations};
use crate::tx::write_transaction;

#[derive(Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = api_clients)]
struct ApiClientRow {
    id: String,
    client_id: String,
    name: String,
    secret_hash: String,
    scopes: String,
    organisation_id: String,
    expires_on: NaiveDate,
    active: bool,
    version: i64,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

fn to_client(row: ApiClientRow) -> Result<ApiClient, StoreError> {
    let corrupt =
        |what: &str| StoreError::Internal(format!("api_clients row {}: bad {what}", row.id));
    let scopes = row
        .scopes
        .split_whitespace()
        .map(str::parse::<ClientScope>)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| corrupt("scopes"))?;
    Ok(ApiClient {
        id: row.id.parse().map_err(|_| corrupt("id"))?,
        organisation_id: row
            .organisation_id
            .parse()
            .map_err(|_| corrupt("organisation_id"))?,
        client_id: row.client_id,
        name: row.name,
        scopes,
        expires_on: row.expires_on,
        active: row.active,
        version: row.version,
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}

/// What the audit log keeps of a client: never the secret's hash.
fn snapshot(client: &ApiClient) -> serde_json::Value {
    json!({
        "id": client.id.to_string(),
        "client_id": client.client_id,
        "name": client.name,
        "organisation_id": client.organisation_id.to_string(),
        "scopes": client.scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        "expires_on": client.expires_on.to_string(),
        "active": client.active,
    })
}

#[derive(Debug, Clone)]
pub struct NewApiClient {
    pub client_id: String,
    pub name: String,
    pub secret_hash: String,
    pub scopes: Vec<ClientScope>,
    pub organisation_id: OrganisationId,
    pub expires_on: NaiveDate,
}

pub fn create(
    conn: &mut DbConnection,
    context: &AuditContext,
    new: NewApiClient,
) -> Result<ApiClient, StoreError> {
    write_transaction(conn, |conn| {
        let org_exists: i64 = organisations::table
            .filter(organisations::id.eq(new.organisation_id.to_string()))
            .count()
            .get_result(conn)?;
        if org_exists == 0 {
            return Err(tavana_domain::FieldError::new(
                "organisation_id",
                "not_found",
                "no such organisation",
            )
            .into());
        }
        let now = crate::now();
        let row = ApiClientRow {
            id: ApiClientId::generate().to_string(),
            client_id: new.client_id,
            name: new.name,
            secret_hash: new.secret_hash,
            scopes: new
                .scopes
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(" "),
            organisation_id: new.organisation_id.to_string(),
            expires_on: new.expires_on,
            active: true,
            version: 1,
            created_at: now,
            updated_at: now,
        };
        let inserted: ApiClientRow = diesel::insert_into(api_clients::table)
            .values(&row)
            .returning(api_clients::all_columns)
            .get_result(conn)?;
        let client = to_client(inserted)?;
        audit::append(
            conn,
            context,
            Event {
                action: "api_client.create",
                entity: "api_client",
                entity_id: Some(client.id.to_string()),
                before: None,
                after: Some(snapshot(&client)),
            },
        )?;
        Ok(client)
    })
}

/// What a client's access token rests on, as it stands now: (organisation, active, last day).
/// `None` when there is no such client.
pub fn standing(
    conn: &mut DbConnection,
    client_id: &str,
) -> Result<Option<(String, bool, NaiveDate)>, StoreError> {
    Ok(api_clients::table
        .filter(api_clients::client_id.eq(client_id))
        .select((
            api_clients::organisation_id,
            api_clients::active,
            api_clients::expires_on,
        ))
        .first(conn)
        .optional()?)
}

pub fn get(conn: &mut DbConnection, id: ApiClientId) -> Result<ApiClient, StoreError> {
    to_client(
        api_clients::table
            .find(id.to_string())
            .select(ApiClientRow::as_select())
            .first(conn)?,
    )
}

/// The client and its secret's hash, for the client-credentials grant.
pub fn credentials(
    conn: &mut DbConnection,
    client_id: &str,
) -> Result<Option<(ApiClient, String)>, StoreError> {
    let Some(mut row) = api_clients::table
        .filter(api_clients::client_id.eq(client_id))
        .select(ApiClientRow::as_select())
        .first::<ApiClientRow>(conn)
        .optional()?
    else {
        return Ok(None);
    };
    let hash = std::mem::take(&mut row.secret_hash);
    Ok(Some((to_client(row)?, hash)))
}

pub fn list(
    conn: &mut DbConnection,
    organisation_id: Option<OrganisationId>,
    after: Option<ApiClientId>,
    limit: usize,
) -> Result<(Vec<ApiClient>, bool), StoreError> {
    let mut query = api_clients::table
        .select(ApiClientRow::as_select())
        .into_boxed();
    if let Some(org) = organisation_id {
        query = query.filter(api_clients::organisation_id.eq(org.to_string()));
    }
    if let Some(after) = after {
        query = query.filter(api_clients::id.gt(after.to_string()));
    }
    let rows: Vec<ApiClientRow> = query
        .order(api_clients::id.asc())
        .limit(crate::page::fetch(limit))
        .load(conn)?;
    let (rows, more) = crate::page::split(rows, limit);
    let clients = rows.into_iter().map(to_client).collect::<Result<_, _>>()?;
    Ok((clients, more))
}

/// Revokes a client for good: its tokens stop working at their expiry, new ones are refused.
pub fn revoke(
    conn: &mut DbConnection,
    context: &AuditContext,
    id: ApiClientId,
) -> Result<ApiClient, StoreError> {
    write_transaction(conn, |conn| {
        let before = get(conn, id)?;
        diesel::update(api_clients::table.find(id.to_string()))
            .set((
                api_clients::active.eq(false),
                api_clients::version.eq(before.version + 1),
                api_clients::updated_at.eq(crate::now()),
            ))
            .execute(conn)?;
        let after = get(conn, id)?;
        audit::append(
            conn,
            context,
            Event {
                action: "api_client.revoke",
                entity: "api_client",
                entity_id: Some(id.to_string()),
                before: Some(snapshot(&before)),
                after: Some(snapshot(&after)),
            },
        )?;
        Ok(after)
    })
}
