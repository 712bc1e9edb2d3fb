//! The changes feed: every create, update and delete of a shared record (persons, households,
//! enrolments, assessments) gets a number in commit order, and partners read them after a cursor,
//! each with the record as it is now and as their MoU data policy shapes it.
//!
//! Commit order: a writer takes the audit log's lock (`audit::order_lock`) before it numbers a
//! change and holds it until commit, so no transaction can commit number N+1 while N is still
//! open. A reader that has seen N has therefore seen everything before it: paging by `seq` misses
//! nothing and repeats nothing, whatever the concurrency. On SQLite writers are serial anyway.
//!
//! Visibility is judged when the feed is read: a record the reader may not see now (merged away,
//! consent withdrawn, moved out of the partner's areas) comes as `deleted` with no data, so a copy
//! kept from the feed drops it.

use std::collections::{HashMap, HashSet};

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use serde_json::{Map, Value, json};
use tavana_domain::id::OrganisationId;
use tavana_domain::partner::{Policy, Resource};

use crate::assessments::AssessmentRow;
use crate::audit::AuditContext;
use crate::db::DbConnection;
use crate::enrolments::EnrolmentRow;
use crate::error::StoreError;
use crate::households::HouseholdRow;
use crate::persons::PersonRow;
use crate::schema::{areas, assessments, changes, consents, enrolments, households, persons};

/// What happened to the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Created,
    Updated,
    Deleted,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Created => "created",
            Op::Updated => "updated",
            Op::Deleted => "deleted",
        }
    }
}

/// Numbers the creation of a shared record and audits it (`event`, whose `entity_id` is the
/// record's): how every create of one ends, last, as both take the order lock.
pub(crate) fn record_created(
    conn: &mut DbConnection,
    context: &AuditContext,
    resource: Resource,
    event: crate::audit::Event<'_>,
) -> Result<(), StoreError> {
    let id = event.entity_id.clone().ok_or_else(|| {
        StoreError::Internal("a created record's event names no record".to_owned())
    })?;
    record(conn, context, resource, &id, Op::Created)?;
    crate::audit::append(conn, context, event)
}

/// Numbers a change of one record; call it inside the transaction that makes the change.
pub fn record(
    conn: &mut DbConnection,
    context: &AuditContext,
    resource: Resource,
    id: &str,
    op: Op,
) -> Result<(), StoreError> {
    record_many(conn, context, resource, &[id.to_owned()], op)
}

/// Numbers changes of many records (an import's batch): PostgreSQL's by one `COPY`, SQLite's by
/// one prepared insert a row (`copy_insert!`).
///
/// An import's writes (`context.batched`) on PostgreSQL are numbered when its transaction ends
/// (`number_pending`): they wait in the connection's temporary `pending_changes` meanwhile, so
/// that the lock ordering the feed (and the audit log) is held for that moment only, not for a
/// whole batch, nor a whole file in one transaction (a `validate` run never takes it).
pub fn record_many(
    conn: &mut DbConnection,
    context: &AuditContext,
    resource: Resource,
    ids: &[String],
    op: Op,
) -> Result<(), StoreError> {
    use diesel::sql_types::{Array, Text};
    if ids.is_empty() {
        return Ok(());
    }
    if let (true, DbConnection::Pg(pg)) = (context.batched, &mut *conn) {
        diesel::sql_query(
            "INSERT INTO pending_changes (entity, entity_id, op)
             SELECT $1, id, $2 FROM unnest($3::text[]) WITH ORDINALITY AS t (id, n)
             ORDER BY n",
        )
        .bind::<Text, _>(resource.entity())
        .bind::<Text, _>(op.as_str())
        .bind::<Array<Text>, _>(ids)
        .execute(pg)?;
        return Ok(());
    }
    crate::audit::order_lock(conn)?;
    let now = crate::now();
    let rows: Vec<_> = ids
        .iter()
        .map(|id| {
            (
                changes::entity.eq(resource.entity()),
                changes::entity_id.eq(id.as_str()),
                changes::op.eq(op.as_str()),
                changes::changed_at.eq(now),
            )
        })
        .collect();
    copy_insert!(conn, changes::table, rows);
    Ok(())
}

/// Sets up an import's PostgreSQL connection for `record_many`'s pending changes.
pub(crate) fn prepare_pending(conn: &mut DbConnection) -> Result<(), StoreError> {
    use diesel::connection::SimpleConnection;
    if let DbConnection::Pg(pg) = conn {
        pg.batch_execute(
            "CREATE TEMPORARY TABLE IF NOT EXISTS pending_changes (
                 n          BIGSERIAL,
                 entity     TEXT NOT NULL,
                 entity_id  TEXT NOT NULL,
                 op         TEXT NOT NULL
             ) ON COMMIT DELETE ROWS",
        )?;
    }
    Ok(())
}

/// Numbers an import's pending changes, in the order they were made, as of now (so that the
/// feed's times follow its numbers); call it last in the transaction that made them. Nothing to
/// do on SQLite, where they were numbered as they were made, nor when none wait (then the lock
/// is not taken).
pub(crate) fn number_pending(conn: &mut DbConnection) -> Result<(), StoreError> {
    use diesel::sql_types::{Bool, Timestamp};
    #[derive(QueryableByName)]
    struct Waiting {
        #[diesel(sql_type = Bool)]
        waiting: bool,
    }
    let DbConnection::Pg(pg) = conn else {
        return Ok(());
    };
    let Waiting { waiting } =
        diesel::sql_query("SELECT EXISTS (SELECT 1 FROM pending_changes) AS waiting")
            .get_result(pg)?;
    if !waiting {
        return Ok(());
    }
    crate::audit::order_lock(conn)?;
    if let DbConnection::Pg(pg) = conn {
        diesel::sql_query(
            "INSERT INTO changes (entity, entity_id, op, changed_at)
             SELECT entity, entity_id, op, $1 FROM pending_changes ORDER BY n",
        )
        .bind::<Timestamp, _>(crate::now())
        .execute(pg)?;
        diesel::sql_query("DELETE FROM pending_changes").execute(pg)?;
    }
    Ok(())
}

/// Numbers a creation for every shared record that has no change yet (demo data, loaded in
/// bulk), households first so that a copy built from the feed meets a household before its
/// members.
pub(crate) fn record_existing(conn: &mut DbConnection) -> Result<(), StoreError> {
    use diesel::sql_types::Timestamp;
    crate::audit::order_lock(conn)?;
    let now = crate::now();
    for (entity, table) in [
        ("household", "households"),
        ("person", "persons"),
        ("enrolment", "enrolments"),
        ("assessment", "assessments"),
    ] {
        let statement = |placeholder: &str| {
            format!(
                "INSERT INTO changes (entity, entity_id, op, changed_at)
                 SELECT '{entity}', t.id, 'created', {placeholder} FROM {table} t
                 WHERE NOT EXISTS (SELECT 1 FROM changes c
                                   WHERE c.entity = '{entity}' AND c.entity_id = t.id)
                 ORDER BY t.id"
            )
        };
        match conn {
            DbConnection::Pg(pg) => diesel::sql_query(statement("$1"))
                .bind::<Timestamp, _>(now)
                .execute(pg)?,
            DbConnection::Sqlite(sqlite) => diesel::sql_query(statement("?"))
                .bind::<Timestamp, _>(now)
                .execute(sqlite)?,
        };
    }
    Ok(())
}

/// A person's consent changed: what partners may see of them changed too.
pub fn consent_changed(
    conn: &mut DbConnection,
    context: &AuditContext,
    person: &str,
) -> Result<(), StoreError> {
    let headed: Vec<String> = persons::table
        .filter(persons::id.eq(person))
        .select(persons::household_id)
        .load::<Option<String>>(conn)?
        .into_iter()
        .flatten()
        .collect();
    visibility_changed(conn, context, person, &headed)
}

/// What partners may see around a person changed (consent, household, role, a merge): the
/// person, their assessments (seen through them), and the given households with their
/// enrolments (seen through their head) are numbered again, so that a copy kept from the feed
/// gains or drops them.
pub fn visibility_changed(
    conn: &mut DbConnection,
    context: &AuditContext,
    person: &str,
    households: &[String],
) -> Result<(), StoreError> {
    record(conn, context, Resource::Persons, person, Op::Updated)?;
    let assessed: Vec<String> = assessments::table
        .filter(assessments::person_id.eq(person))
        .select(assessments::id)
        .load(conn)?;
    record_many(conn, context, Resource::Assessments, &assessed, Op::Updated)?;
    let mut households = households.to_vec();
    households.sort();
    households.dedup();
    record_many(
        conn,
        context,
        Resource::Households,
        &households,
        Op::Updated,
    )?;
    let enrolled: Vec<String> = enrolments::table
        .filter(enrolments::household_id.eq_any(&households))
        .select(enrolments::id)
        .load(conn)?;
    record_many(conn, context, Resource::Enrolments, &enrolled, Op::Updated)
}

/// Who reads shared records: staff see them whole; a partner sees them under its policy.
#[derive(Debug, Clone)]
pub enum Viewer {
    Staff,
    Partner(PartnerView),
}

#[derive(Debug, Clone)]
pub struct PartnerView {
    pub organisation_id: OrganisationId,
    pub policy: Policy,
    /// The neighbourhoods of the MoU's areas; `None` when it covers the whole programme.
    pub neighbourhoods: Option<Vec<String>>,
    /// The day consents are judged on.
    pub today: NaiveDate,
}

impl PartnerView {
    /// A partner organisation's view, refused when it has no MoU data policy in force today.
    pub fn of(
        conn: &mut DbConnection,
        organisation: OrganisationId,
        today: NaiveDate,
    ) -> Result<PartnerView, StoreError> {
        let policy = crate::partner_policies::get(conn, organisation)?.ok_or_else(|| {
            StoreError::Forbidden(
                "the caller's organisation has no MoU data policy; partners read nothing without one"
                    .to_owned(),
            )
        })?;
        if !policy.in_force_on(today) {
            return Err(StoreError::Forbidden(format!(
                "the MoU data policy of the caller's organisation is in force from {} to {}",
                policy.starts_on, policy.ends_on
            )));
        }
        Ok(PartnerView {
            organisation_id: organisation,
            neighbourhoods: covered_neighbourhoods(conn, &policy)?,
            policy,
            today,
        })
    }
}

impl Viewer {
    /// A partner organisation's view, refused when it has no MoU data policy in force today.
    pub fn partner(
        conn: &mut DbConnection,
        organisation: OrganisationId,
        today: NaiveDate,
    ) -> Result<Viewer, StoreError> {
        PartnerView::of(conn, organisation, today).map(Viewer::Partner)
    }

    /// The resources this viewer may read.
    pub fn readable(&self) -> Vec<Resource> {
        match self {
            Viewer::Staff => Resource::ALL.to_vec(),
            Viewer::Partner(p) => p.policy.resources.iter().copied().collect(),
        }
    }
}

/// The neighbourhoods of the MoU's areas (at any level, with all below them).
fn covered_neighbourhoods(
    conn: &mut DbConnection,
    policy: &Policy,
) -> Result<Option<Vec<String>>, StoreError> {
    let covered: HashSet<String> = policy.areas.iter().map(ToString::to_string).collect();
    if covered.is_empty() {
        return Ok(None);
    }
    // Areas are a few hundred rows: walk the tree in memory.
    let all: Vec<(String, Option<String>, String)> = areas::table
        .select((areas::id, areas::parent_id, areas::level))
        .load(conn)?;
    let parent: HashMap<String, String> = all
        .iter()
        .filter_map(|(id, p, _)| p.clone().map(|p| (id.clone(), p)))
        .collect();
    let under = |id: &String| {
        let mut at = Some(id);
        while let Some(id) = at {
            if covered.contains(id) {
                return true;
            }
            at = parent.get(id);
        }
        false
    };
    let neighbourhoods = all
        .iter()
        .filter(|(id, _, level)| level == "neighbourhood" && under(id))
        .map(|(id, _, _)| id.clone())
        .collect();
    Ok(Some(neighbourhoods))
}

/// One entry of the feed.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub seq: i64,
    pub resource: Resource,
    pub id: String,
    pub op: Op,
    pub changed_at: NaiveDateTime,
    /// The record as the viewer may see it now; `None` when deleted or no longer visible.
    pub data: Option<Map<String, Value>>,
    /// The creation of a record the viewer may not see now: not shown at all. Had it been
    /// visible since, the change that hid it comes later and is shown as a deletion.
    pub hidden: bool,
}

/// The changes after `after` of the given resources (all the viewer may read when empty), in
/// commit order, at most `limit`.
pub fn feed(
    conn: &mut DbConnection,
    viewer: &Viewer,
    after: i64,
    resources: &[Resource],
    limit: i64,
) -> Result<Vec<Change>, StoreError> {
    let readable = viewer.readable();
    if let Some(refused) = resources.iter().find(|r| !readable.contains(r)) {
        return Err(StoreError::Forbidden(format!(
            "the caller's MoU data policy does not cover {refused}"
        )));
    }
    let wanted: Vec<&str> = if resources.is_empty() {
        readable.iter().map(|r| r.entity()).collect()
    } else {
        resources.iter().map(|r| r.entity()).collect()
    };
    let rows: Vec<(i64, String, String, String, NaiveDateTime)> = changes::table
        .filter(changes::seq.gt(after))
        .filter(changes::entity.eq_any(&wanted))
        .order(changes::seq.asc())
        .limit(limit)
        .select((
            changes::seq,
            changes::entity,
            changes::entity_id,
            changes::op,
            changes::changed_at,
        ))
        .load(conn)?;
    let mut ids: HashMap<Resource, Vec<String>> = HashMap::new();
    for (_, entity, id, _, _) in &rows {
        if let Some(resource) = Resource::from_entity(entity) {
            ids.entry(resource).or_default().push(id.clone());
        }
    }
    let mut found: HashMap<(Resource, String), Map<String, Value>> = HashMap::new();
    for (resource, ids) in ids {
        for (id, record) in records(conn, viewer, resource, &ids)? {
            found.insert((resource, id), record);
        }
    }
    rows.into_iter()
        .map(|(seq, entity, id, op, changed_at)| {
            let resource = Resource::from_entity(&entity)
                .ok_or_else(|| StoreError::Internal(format!("changes row {seq}: bad entity")))?;
            let op = match op.as_str() {
                "created" => Op::Created,
                "updated" => Op::Updated,
                "deleted" => Op::Deleted,
                _ => return Err(StoreError::Internal(format!("changes row {seq}: bad op"))),
            };
            let data = match op {
                Op::Deleted => None,
                _ => found.get(&(resource, id.clone())).cloned(),
            };
            let hidden = op == Op::Created && data.is_none();
            let op = if data.is_none() { Op::Deleted } else { op };
            Ok(Change {
                seq,
                resource,
                id,
                op,
                changed_at,
                data,
                hidden,
            })
        })
        .collect()
}

/// The last number given, for a client starting from now.
pub fn last_seq(conn: &mut DbConnection) -> Result<i64, StoreError> {
    Ok(changes::table
        .select(diesel::dsl::max(changes::seq))
        .first::<Option<i64>>(conn)?
        .unwrap_or(0))
}

/// The records with these ids the viewer may see now, shaped by its policy.
pub fn records(
    conn: &mut DbConnection,
    viewer: &Viewer,
    resource: Resource,
    ids: &[String],
) -> Result<HashMap<String, Map<String, Value>>, StoreError> {
    let mut out = HashMap::new();
    for chunk in ids.chunks(1000) {
        let unique: Vec<String> = chunk
            .iter()
            .cloned()
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let loaded = match resource {
            Resource::Persons => load_persons(conn, viewer, &unique)?,
            Resource::Households => load_households(conn, viewer, &unique)?,
            Resource::Enrolments => load_enrolments(conn, viewer, &unique)?,
            Resource::Assessments => load_assessments(conn, viewer, &unique)?,
        };
        for (id, record) in loaded {
            let record = match viewer {
                Viewer::Staff => record,
                Viewer::Partner(p) => p.policy.shape(record),
            };
            out.insert(id, record);
        }
    }
    Ok(out)
}

/// A record and its id.
type Keyed = (String, Map<String, Value>);

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// The people whose consent to share with partners is in force on `day`, as a subquery.
#[diesel::dsl::auto_type]
pub(crate) fn sharing_on(day: NaiveDate) -> _ {
    consents::table
        .filter(consents::share_with_partners.eq(true))
        .filter(consents::given_on.le(day))
        .filter(
            consents::withdrawn_on
                .is_null()
                .or(consents::withdrawn_on.gt(day)),
        )
        .select(consents::person_id)
}

/// Of these persons, the ids the viewer may see: not merged away, and for a partner, sharing
/// consent in force and living in its areas.
fn visible_persons(
    conn: &mut DbConnection,
    viewer: &Viewer,
    ids: &[String],
) -> Result<Vec<PersonRow>, StoreError> {
    let query = persons::table
        .filter(persons::id.eq_any(ids))
        .filter(persons::merged_into.is_null())
        .select(PersonRow::as_select());
    let Viewer::Partner(p) = viewer else {
        return Ok(query.load(conn)?);
    };
    let query = query.filter(persons::id.eq_any(sharing_on(p.today)));
    Ok(match &p.neighbourhoods {
        None => query.load(conn)?,
        Some(areas) => query
            .filter(persons::neighbourhood_id.eq_any(areas))
            .load(conn)?,
    })
}

fn load_persons(
    conn: &mut DbConnection,
    viewer: &Viewer,
    ids: &[String],
) -> Result<Vec<Keyed>, StoreError> {
    Ok(visible_persons(conn, viewer, ids)?
        .into_iter()
        .map(|p| {
            let record = object(json!({
                "id": p.id,
                "national_id": p.national_id,
                "first_name": p.first_name,
                "last_name": p.last_name,
                "birth_date": p.birth_date,
                "sex": p.sex,
                "mobile": p.mobile,
                "education": p.education,
                "household_id": p.household_id,
                "household_role": p.household_role,
                "neighbourhood_id": p.neighbourhood_id,
                "version": p.version,
                "updated_at": p.updated_at,
            }));
            (p.id, record)
        })
        .collect())
}

/// Of these households, the ones the viewer may see; for a partner, those whose head consents
/// and which lie in its areas.
fn visible_households(
    conn: &mut DbConnection,
    viewer: &Viewer,
    ids: &[String],
) -> Result<Vec<(HouseholdRow, Option<String>)>, StoreError> {
    let rows: Vec<HouseholdRow> = households::table
        .filter(households::id.eq_any(ids))
        .select(HouseholdRow::as_select())
        .load(conn)?;
    let heads: Vec<(Option<String>, String)> = persons::table
        .filter(persons::household_id.eq_any(ids))
        .filter(persons::household_role.eq("head"))
        .select((persons::household_id, persons::id))
        .load(conn)?;
    let heads: HashMap<String, String> = heads
        .into_iter()
        .filter_map(|(h, p)| h.map(|h| (h, p)))
        .collect();
    let Viewer::Partner(_) = viewer else {
        return Ok(rows
            .into_iter()
            .map(|h| {
                let head = heads.get(&h.id).cloned();
                (h, head)
            })
            .collect());
    };
    let head_ids: Vec<String> = heads.values().cloned().collect();
    let shown: HashSet<String> = visible_persons(conn, viewer, &head_ids)?
        .into_iter()
        .map(|p| p.id)
        .collect();
    Ok(rows
        .into_iter()
        .filter_map(|h| {
            let head = heads.get(&h.id).filter(|p| shown.contains(*p)).cloned();
            head.map(|head| (h, Some(head)))
        })
        .collect())
}

fn load_households(
    conn: &mut DbConnection,
    viewer: &Viewer,
    ids: &[String],
) -> Result<Vec<Keyed>, StoreError> {
    Ok(visible_households(conn, viewer, ids)?
        .into_iter()
        .map(|(h, head)| {
            let record = object(json!({
                "id": h.id,
                "neighbourhood_id": h.neighbourhood_id,
                "address": h.address,
                "postal_code": h.postal_code,
                "head_person_id": head,
                "version": h.version,
                "updated_at": h.updated_at,
            }));
            (h.id, record)
        })
        .collect())
}

fn load_enrolments(
    conn: &mut DbConnection,
    viewer: &Viewer,
    ids: &[String],
) -> Result<Vec<Keyed>, StoreError> {
    let rows: Vec<EnrolmentRow> = enrolments::table
        .filter(enrolments::id.eq_any(ids))
        .select(EnrolmentRow::as_select())
        .load(conn)?;
    let households: Vec<String> = rows.iter().map(|e| e.household_id.clone()).collect();
    let shown: HashSet<String> = visible_households(conn, viewer, &households)?
        .into_iter()
        .map(|(h, _)| h.id)
        .collect();
    Ok(rows
        .into_iter()
        .filter(|e| shown.contains(&e.household_id))
        .map(|e| {
            let record = object(json!({
                "id": e.id,
                "programme_id": e.programme_id,
                "household_id": e.household_id,
                "neighbourhood_id": e.neighbourhood_id,
                "state": e.state,
                "state_since": e.state_since,
                "version": e.version,
                "updated_at": e.updated_at,
            }));
            (e.id, record)
        })
        .collect())
}

fn load_assessments(
    conn: &mut DbConnection,
    viewer: &Viewer,
    ids: &[String],
) -> Result<Vec<Keyed>, StoreError> {
    let rows: Vec<AssessmentRow> = assessments::table
        .filter(assessments::id.eq_any(ids))
        .select(AssessmentRow::as_select())
        .load(conn)?;
    let people: Vec<String> = rows.iter().map(|a| a.person_id.clone()).collect();
    let shown: HashSet<String> = visible_persons(conn, viewer, &people)?
        .into_iter()
        .map(|p| p.id)
        .collect();
    Ok(rows
        .into_iter()
        .filter(|a| shown.contains(&a.person_id))
        .map(|a| {
            let record = object(json!({
                "id": a.id,
                "person_id": a.person_id,
                "neighbourhood_id": a.neighbourhood_id,
                "kind": a.kind,
                "assessed_on": a.assessed_on,
                "employment_status": a.employment_status,
                "income_band": a.income_band,
                "social_insurance": a.social_insurance,
                "welfare_services": a.welfare_services,
                "skills": a.skills,
                "disability": a.disability,
                "dependants": a.dependants,
                "created_at": a.created_at,
            }));
            (a.id, record)
        })
        .collect())
}
