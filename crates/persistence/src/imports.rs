//! Batch imports: jobs, their rows applied in batches with the API's rules, and their errors.
//!
//! Crash safety: with atomicity `rows`, each batch commits together with the job's counters
//! (`rows_done`), so a job stopped mid-way resumes after its last committed batch and applies no
//! row twice. With atomicity `all` (and in `validate` mode) the whole file is one transaction:
//! a stop leaves nothing written and the job re-runs from the start.

use std::collections::{HashMap, HashSet};

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use serde_json::json;
use tavana_domain::FieldError;
use tavana_domain::id::UserId;
use tavana_domain::import::{Atomicity, ImportFormat, ImportKind, ImportMode, JobState};
use tavana_domain::person::{HouseholdRole, NewPerson};

use crate::audit::{self, Actor, AuditContext, Event};
use crate::db::{Database, DbConnection};
use crate::error::StoreError;
use crate::persons::PersonRow;
use crate::schema::{household_memberships, households, import_errors, import_jobs, persons};
use crate::scope::{Scope, assigned_to};
use crate::tx::write_transaction;

/// Rows applied per transaction.
pub const BATCH: usize = 5000;
/// Errors kept per job; beyond this they are counted, not stored.
pub const MAX_STORED_ERRORS: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = import_jobs)]
pub struct Job {
    pub id: String,
    pub kind: String,
    pub mode: String,
    pub atomicity: String,
    pub format: String,
    pub state: String,
    pub principal: String,
    pub actor_kind: String,
    pub actor_id: Option<String>,
    pub scope_user: Option<String>,
    pub idempotency_key: Option<String>,
    pub checksum: String,
    pub file_path: String,
    pub rows_read: i64,
    pub rows_done: i64,
    pub created: i64,
    pub updated: i64,
    pub unchanged: i64,
    pub failed: i64,
    pub message: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub finished_at: Option<NaiveDateTime>,
}

impl Job {
    fn parse<T: std::str::FromStr>(&self, value: &str) -> Result<T, StoreError> {
        value
            .parse()
            .map_err(|_| StoreError::Internal(format!("import_jobs row {}: bad {value}", self.id)))
    }
    pub fn mode(&self) -> Result<ImportMode, StoreError> {
        self.parse(&self.mode)
    }
    pub fn atomicity(&self) -> Result<Atomicity, StoreError> {
        self.parse(&self.atomicity)
    }
    pub fn kind(&self) -> Result<ImportKind, StoreError> {
        self.parse(&self.kind)
    }
    pub fn format(&self) -> Result<ImportFormat, StoreError> {
        self.parse(&self.format)
    }
    pub fn state(&self) -> Result<JobState, StoreError> {
        self.parse(&self.state)
    }
    fn scope(&self) -> Result<Scope, StoreError> {
        self.scope_user
            .as_deref()
            .map(|u| u.parse::<UserId>().map(Scope::UserAreas))
            .transpose()
            .map_err(|_| StoreError::Internal(format!("import_jobs row {}: bad scope", self.id)))
            .map(|s| s.unwrap_or(Scope::All))
    }
    fn context(&self) -> AuditContext {
        AuditContext {
            actor: match (self.actor_kind.as_str(), &self.actor_id) {
                ("user", Some(id)) => Actor::User(id.clone()),
                ("client", Some(id)) => Actor::Client(id.clone()),
                _ => Actor::System,
            },
            request_id: None,
        }
    }
}

/// One refused row (or the file itself, row 0).
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = import_errors)]
pub struct RowError {
    pub job_id: String,
    pub row_no: i64,
    pub seq: i32,
    pub col: Option<String>,
    pub code: String,
    pub message: String,
}

/// A job as requested.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub id: String,
    pub kind: ImportKind,
    pub mode: ImportMode,
    pub atomicity: Atomicity,
    pub format: ImportFormat,
    pub principal: String,
    pub context: AuditContext,
    pub scope: Scope,
    pub idempotency_key: Option<String>,
    pub checksum: String,
    pub file_path: String,
}

/// Starts a job, unless this is a repeat: the same idempotency key of the same caller, or a
/// committed import of the same file (checksum) and kind. Then the earlier job is returned.
pub fn start(conn: &mut DbConnection, new: NewJob) -> Result<(Job, bool), StoreError> {
    write_transaction(conn, |conn| {
        crate::tx::lock(conn, &format!("import:{}", new.checksum))?;
        if let Some(key) = &new.idempotency_key {
            let earlier: Option<Job> = import_jobs::table
                .filter(import_jobs::principal.eq(&new.principal))
                .filter(import_jobs::idempotency_key.eq(key))
                .select(Job::as_select())
                .first(conn)
                .optional()?;
            if let Some(job) = earlier {
                return Ok((job, false));
            }
        }
        if new.mode == ImportMode::Commit {
            let earlier: Option<Job> = import_jobs::table
                .filter(import_jobs::kind.eq(new.kind.as_str()))
                .filter(import_jobs::checksum.eq(&new.checksum))
                .filter(import_jobs::mode.eq(ImportMode::Commit.as_str()))
                .filter(import_jobs::state.ne(JobState::Failed.as_str()))
                .select(Job::as_select())
                .first(conn)
                .optional()?;
            if let Some(job) = earlier {
                return Ok((job, false));
            }
        }
        let now = crate::now();
        let job = Job {
            id: new.id,
            kind: new.kind.as_str().to_owned(),
            mode: new.mode.as_str().to_owned(),
            atomicity: new.atomicity.as_str().to_owned(),
            format: new.format.as_str().to_owned(),
            state: JobState::Running.as_str().to_owned(),
            principal: new.principal,
            actor_kind: new.context.actor.kind().to_owned(),
            actor_id: new.context.actor.id(),
            scope_user: match new.scope {
                Scope::All => None,
                Scope::UserAreas(user) => Some(user.to_string()),
            },
            idempotency_key: new.idempotency_key,
            checksum: new.checksum,
            file_path: new.file_path,
            rows_read: 0,
            rows_done: 0,
            created: 0,
            updated: 0,
            unchanged: 0,
            failed: 0,
            message: None,
            created_at: now,
            updated_at: now,
            finished_at: None,
        };
        diesel::insert_into(import_jobs::table)
            .values(&job)
            .execute(conn)?;
        Ok((job, true))
    })
}

pub fn get(conn: &mut DbConnection, id: &str) -> Result<Job, StoreError> {
    Ok(import_jobs::table
        .find(id)
        .select(Job::as_select())
        .first(conn)?)
}

pub fn errors(conn: &mut DbConnection, id: &str, limit: i64) -> Result<Vec<RowError>, StoreError> {
    Ok(import_errors::table
        .filter(import_errors::job_id.eq(id))
        .select(RowError::as_select())
        .order((import_errors::row_no.asc(), import_errors::seq.asc()))
        .limit(limit)
        .load(conn)?)
}

/// Jobs that were running when the service stopped: now `interrupted`, to be resumed.
pub fn mark_interrupted(conn: &mut DbConnection) -> Result<usize, StoreError> {
    Ok(
        diesel::update(
            import_jobs::table.filter(import_jobs::state.eq(JobState::Running.as_str())),
        )
        .set((
            import_jobs::state.eq(JobState::Interrupted.as_str()),
            import_jobs::updated_at.eq(crate::now()),
        ))
        .execute(conn)?,
    )
}

/// Makes an interrupted job runnable again; returns it.
pub fn resume(conn: &mut DbConnection, id: &str) -> Result<Job, StoreError> {
    write_transaction(conn, |conn| {
        let job = get(conn, id)?;
        if job.state()? != JobState::Interrupted {
            return Err(StoreError::Conflict(format!(
                "only an interrupted job can be resumed; this one is {}",
                job.state
            )));
        }
        diesel::update(import_jobs::table.find(id))
            .set((
                import_jobs::state.eq(JobState::Running.as_str()),
                import_jobs::updated_at.eq(crate::now()),
            ))
            .execute(conn)?;
        get(conn, id)
    })
}

/// One data row of the file: its number (the header is row 1 in a CSV, the first line row 1 in
/// JSON Lines) and its values by column, or why it could not be read.
#[derive(Debug, Clone)]
pub struct Row {
    pub number: i64,
    pub values: Result<HashMap<&'static str, String>, FieldError>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    read: i64,
    created: i64,
    updated: i64,
    unchanged: i64,
    failed: i64,
}

/// Runs a job over its rows (the ones after `rows_done` when resuming) and records the outcome.
/// A failure of the file itself (`file_error`, e.g. an unknown column) fails the job at once.
pub fn run(
    db: &Database,
    job_id: &str,
    rows: &mut dyn Iterator<Item = Result<Row, StoreError>>,
    today: NaiveDate,
) -> Result<Job, StoreError> {
    let mut conn = db.get()?;
    let job = get(&mut conn, job_id)?;
    let (mode, atomicity) = (job.mode()?, job.atomicity()?);
    let scope = job.scope()?;
    let context = job.context();
    let mut tally = Tally {
        read: job.rows_done,
        created: job.created,
        updated: job.updated,
        unchanged: job.unchanged,
        failed: job.failed,
    };
    // National IDs are ten digits: kept as numbers, a million of them take about 40 MB.
    let mut seen: HashMap<u64, i64> = HashMap::new();
    let mut kept: Vec<RowError> = Vec::new();
    let one_transaction = mode == ImportMode::Validate || atomicity == Atomicity::All;
    let resume_after = if one_transaction { 0 } else { job.rows_done };
    if one_transaction {
        tally = Tally::default();
    }

    let mut batches = Batches {
        rows,
        skip: resume_after,
        position: 0,
        seen: &mut seen,
        today,
    };
    let outcome = if one_transaction {
        let mut inner = tally;
        let mut errors = Vec::new();
        let result = write_transaction(&mut conn, |conn| {
            while let Some(batch) = batches.next_batch()? {
                apply(conn, &scope, batch, &mut inner, &mut errors, &job.id)?;
            }
            if mode == ImportMode::Validate || inner.failed > 0 {
                // Nothing may stay: roll back, keeping the tally.
                return Err(StoreError::Conflict(ROLLBACK.to_owned()));
            }
            Ok(())
        });
        tally = inner;
        kept = errors;
        match result {
            Ok(()) => Ok(()),
            Err(StoreError::Conflict(message)) if message == ROLLBACK => Ok(()),
            Err(other) => Err(other),
        }
    } else {
        let mut result = Ok(());
        loop {
            let batch = match batches.next_batch() {
                Ok(Some(batch)) => batch,
                Ok(None) => break,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            };
            let mut inner = tally;
            let step = write_transaction(&mut conn, |conn| {
                let mut errors = Vec::new();
                apply(conn, &scope, batch, &mut inner, &mut errors, &job.id)?;
                store_errors(conn, &errors, kept.len())?;
                save_progress(conn, &job.id, &inner)?;
                Ok(errors)
            });
            match step {
                Ok(errors) => {
                    tally = inner;
                    kept.extend(
                        errors
                            .into_iter()
                            .take(MAX_STORED_ERRORS.saturating_sub(kept.len())),
                    );
                }
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        result
    };
    if let Err(error) = outcome {
        // Leave the job resumable (rows) or re-runnable (all); say what happened.
        let _ = diesel::update(import_jobs::table.find(&job.id))
            .set((
                import_jobs::state.eq(JobState::Interrupted.as_str()),
                import_jobs::message.eq(error.to_string()),
                import_jobs::updated_at.eq(crate::now()),
            ))
            .execute(&mut conn);
        return Err(error);
    }
    if mode == ImportMode::Commit && atomicity == Atomicity::All && tally.failed > 0 {
        // Rolled back: the counts say what was written, which is nothing.
        (tally.created, tally.updated, tally.unchanged) = (0, 0, 0);
    }
    write_transaction(&mut conn, |conn| {
        if one_transaction {
            store_errors(conn, &kept, 0)?;
        }
        let wrote = mode == ImportMode::Commit && (tally.created + tally.updated) > 0;
        let message = match (mode, atomicity) {
            (ImportMode::Validate, _) => "validated; nothing was written".to_owned(),
            (ImportMode::Commit, Atomicity::All) if tally.failed > 0 => format!(
                "nothing was written: {} rows failed and atomicity is `all`",
                tally.failed
            ),
            _ => "done".to_owned(),
        };
        diesel::update(import_jobs::table.find(&job.id))
            .set((
                import_jobs::state.eq(JobState::Completed.as_str()),
                import_jobs::rows_read.eq(tally.read),
                import_jobs::rows_done.eq(tally.read),
                import_jobs::created.eq(tally.created),
                import_jobs::updated.eq(tally.updated),
                import_jobs::unchanged.eq(tally.unchanged),
                import_jobs::failed.eq(tally.failed),
                import_jobs::message.eq(message),
                import_jobs::updated_at.eq(crate::now()),
                import_jobs::finished_at.eq(Some(crate::now())),
            ))
            .execute(conn)?;
        if wrote {
            audit::append(
                conn,
                &context,
                Event {
                    action: "import.commit",
                    entity: "import_job",
                    entity_id: Some(job.id.clone()),
                    before: None,
                    after: Some(json!({
                        "kind": job.kind, "atomicity": job.atomicity, "checksum": job.checksum,
                        "rows": tally.read, "created": tally.created, "updated": tally.updated,
                        "unchanged": tally.unchanged, "failed": tally.failed,
                    })),
                },
            )?;
        }
        get(conn, &job.id)
    })
}

/// Records a job that failed before any row: a bad header, an empty file.
pub fn fail(
    conn: &mut DbConnection,
    job_id: &str,
    problems: &[FieldError],
) -> Result<Job, StoreError> {
    write_transaction(conn, |conn| {
        let errors: Vec<RowError> = problems
            .iter()
            .enumerate()
            .map(|(i, e)| RowError {
                job_id: job_id.to_owned(),
                row_no: 0,
                seq: i32::try_from(i).unwrap_or(i32::MAX),
                col: Some(e.field.clone()),
                code: e.code.to_owned(),
                message: e.message.clone(),
            })
            .collect();
        store_errors(conn, &errors, 0)?;
        diesel::update(import_jobs::table.find(job_id))
            .set((
                import_jobs::state.eq(JobState::Failed.as_str()),
                import_jobs::message.eq(problems
                    .first()
                    .map(|e| e.message.clone())
                    .unwrap_or_else(|| "the file cannot be imported".to_owned())),
                import_jobs::updated_at.eq(crate::now()),
                import_jobs::finished_at.eq(Some(crate::now())),
            ))
            .execute(conn)?;
        get(conn, job_id)
    })
}

const ROLLBACK: &str = "import rolled back on purpose";

fn store_errors(
    conn: &mut DbConnection,
    errors: &[RowError],
    already: usize,
) -> Result<(), StoreError> {
    let room = MAX_STORED_ERRORS.saturating_sub(already);
    bulk_insert!(conn, import_errors::table, errors[..errors.len().min(room)]);
    Ok(())
}

fn save_progress(conn: &mut DbConnection, job: &str, tally: &Tally) -> Result<(), StoreError> {
    diesel::update(import_jobs::table.find(job))
        .set((
            import_jobs::rows_read.eq(tally.read),
            import_jobs::rows_done.eq(tally.read),
            import_jobs::created.eq(tally.created),
            import_jobs::updated.eq(tally.updated),
            import_jobs::unchanged.eq(tally.unchanged),
            import_jobs::failed.eq(tally.failed),
            import_jobs::updated_at.eq(crate::now()),
        ))
        .execute(conn)?;
    Ok(())
}

/// A parsed row, or its errors.
type Parsed = (i64, Result<NewPerson, Vec<FieldError>>);

/// Reads rows in batches, parses them, and reports repeats within the file.
struct Batches<'a> {
    rows: &'a mut dyn Iterator<Item = Result<Row, StoreError>>,
    /// Data rows applied before (a resumed job): read again only to find repeats.
    skip: i64,
    position: i64,
    seen: &'a mut HashMap<u64, i64>,
    today: NaiveDate,
}

impl Batches<'_> {
    /// The next batch; an error reading the file ends the job (it stays resumable).
    fn next_batch(&mut self) -> Result<Option<Vec<Parsed>>, StoreError> {
        let mut batch = Vec::with_capacity(BATCH);
        for row in &mut *self.rows {
            let row = row?;
            let parsed = match row.values {
                Err(e) => Err(vec![e]),
                Ok(values) => {
                    let get = |name: &str| values.get(name).cloned();
                    tavana_domain::import::parse_person(&get, self.today).map_err(|e| e.0)
                }
            };
            // Repeats are found across the whole file, resumed part included.
            let parsed = match parsed {
                Ok(person) => {
                    let key: u64 = person.national_id.as_str().parse().unwrap_or_default();
                    match self.seen.get(&key) {
                        Some(first) if *first != row.number => Err(vec![FieldError::new(
                            "national_id",
                            "duplicate_row",
                            format!(
                                "this national ID is in row {first} already; a row is applied once"
                            ),
                        )]),
                        _ => {
                            self.seen.insert(key, row.number);
                            Ok(person)
                        }
                    }
                }
                Err(e) => Err(e),
            };
            self.position += 1;
            if self.position <= self.skip {
                continue;
            }
            batch.push((row.number, parsed));
            if batch.len() == BATCH {
                break;
            }
        }
        Ok((!batch.is_empty()).then_some(batch))
    }
}

fn row_errors(job: &str, row: i64, errors: Vec<FieldError>) -> Vec<RowError> {
    errors
        .into_iter()
        .enumerate()
        .map(|(i, e)| RowError {
            job_id: job.to_owned(),
            row_no: row,
            seq: i32::try_from(i).unwrap_or(i32::MAX),
            col: Some(e.field),
            code: e.code.to_owned(),
            message: e.message,
        })
        .collect()
}

/// Applies one batch of person rows with the API's rules: a known national ID updates that person
/// (their household stays: moving is an explicit action), a new one registers them.
fn apply(
    conn: &mut DbConnection,
    scope: &Scope,
    batch: Vec<Parsed>,
    tally: &mut Tally,
    errors: &mut Vec<RowError>,
    job: &str,
) -> Result<(), StoreError> {
    let good: Vec<&NewPerson> = batch.iter().filter_map(|(_, p)| p.as_ref().ok()).collect();
    let household_ids: Vec<String> = good
        .iter()
        .map(|p| p.household_id.to_string())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let query = households::table
        .filter(households::id.eq_any(&household_ids))
        .select((households::id, households::neighbourhood_id));
    let places: HashMap<String, String> = match scope {
        Scope::All => query.load::<(String, String)>(conn)?,
        Scope::UserAreas(user) => query
            .filter(households::neighbourhood_id.eq_any(assigned_to(*user)))
            .load::<(String, String)>(conn)?,
    }
    .into_iter()
    .collect();
    let national_ids: Vec<String> = good
        .iter()
        .map(|p| p.national_id.as_str().to_owned())
        .collect();
    let existing: HashMap<String, PersonRow> = persons::table
        .filter(persons::national_id.eq_any(&national_ids))
        .select(PersonRow::as_select())
        .load::<PersonRow>(conn)?
        .into_iter()
        .map(|p| (p.national_id.clone(), p))
        .collect();
    // Heads only matter for rows that bring one. The role is a literal, not a bound value, so
    // that the planner can use the partial index of heads instead of every member's row.
    let head_households: Vec<String> = good
        .iter()
        .filter(|p| p.household_role == HouseholdRole::Head)
        .map(|p| p.household_id.to_string())
        .collect();
    let mut with_head: HashSet<String> = if head_households.is_empty() {
        HashSet::new()
    } else {
        persons::table
            .filter(persons::household_id.eq_any(&head_households))
            .filter(diesel::dsl::sql::<diesel::sql_types::Bool>(
                "persons.household_role = 'head'",
            ))
            .select(persons::household_id)
            .load::<Option<String>>(conn)?
            .into_iter()
            .flatten()
            .collect()
    };
    let now = crate::now();
    let mut new_rows = Vec::new();
    let mut memberships = Vec::new();
    for (number, parsed) in batch {
        tally.read += 1;
        let person = match parsed {
            Ok(person) => person,
            Err(e) => {
                tally.failed += 1;
                errors.extend(row_errors(job, number, e));
                continue;
            }
        };
        let household = person.household_id.to_string();
        let Some(neighbourhood) = places.get(&household) else {
            tally.failed += 1;
            errors.extend(row_errors(
                job,
                number,
                vec![FieldError::new(
                    "household_id",
                    "not_found",
                    "no such household in your scope",
                )],
            ));
            continue;
        };
        let written = |p: &NewPerson| {
            (
                p.first_name.written.clone(),
                p.last_name.written.clone(),
                p.birth_date,
                p.sex.as_str().to_owned(),
                p.mobile.as_ref().map(|m| m.to_string()),
                p.education.map(|e| e.as_str().to_owned()),
            )
        };
        if let Some(current) = existing.get(person.national_id.as_str()) {
            if current.household_id.as_deref() != Some(household.as_str())
                || current.household_role.as_deref() != Some(person.household_role.as_str())
            {
                tally.failed += 1;
                errors.extend(row_errors(job, number, vec![FieldError::new(
                    "household_id",
                    "household_differs",
                    "this person is registered in another household or role; moving a member is an explicit action (POST /api/v1/persons/{id}/move)",
                )]));
                continue;
            }
            let now_values = written(&person);
            let stored = (
                current.first_name.clone(),
                current.last_name.clone(),
                current.birth_date,
                current.sex.clone(),
                current.mobile.clone(),
                current.education.clone(),
            );
            if now_values == stored {
                tally.unchanged += 1;
                continue;
            }
            diesel::update(persons::table.find(&current.id))
                .set((
                    persons::first_name.eq(&person.first_name.written),
                    persons::last_name.eq(&person.last_name.written),
                    persons::first_name_normalised.eq(&person.first_name.normalised),
                    persons::last_name_normalised.eq(&person.last_name.normalised),
                    persons::birth_date.eq(person.birth_date),
                    persons::sex.eq(person.sex.as_str()),
                    persons::mobile.eq(person.mobile.as_ref().map(|m| m.to_string())),
                    persons::education.eq(person.education.map(|e| e.as_str())),
                    persons::version.eq(current.version + 1),
                    persons::updated_at.eq(now),
                ))
                .execute(conn)?;
            tally.updated += 1;
            continue;
        }
        if person.household_role == HouseholdRole::Head && !with_head.insert(household.clone()) {
            tally.failed += 1;
            errors.extend(row_errors(
                job,
                number,
                vec![FieldError::new(
                    "household_role",
                    "head_exists",
                    "the household has a head already",
                )],
            ));
            continue;
        }
        let id = uuid::Uuid::now_v7().to_string();
        memberships.push((
            household_memberships::id.eq(uuid::Uuid::now_v7().to_string()),
            household_memberships::person_id.eq(id.clone()),
            household_memberships::household_id.eq(household.clone()),
            household_memberships::role.eq(person.household_role.as_str()),
            household_memberships::started_on.eq(person.member_since),
            household_memberships::recorded_at.eq(now),
        ));
        new_rows.push(PersonRow {
            id,
            national_id: person.national_id.as_str().to_owned(),
            first_name: person.first_name.written.clone(),
            last_name: person.last_name.written.clone(),
            first_name_normalised: person.first_name.normalised.clone(),
            last_name_normalised: person.last_name.normalised.clone(),
            birth_date: person.birth_date,
            sex: person.sex.as_str().to_owned(),
            mobile: person.mobile.as_ref().map(|m| m.to_string()),
            education: person.education.map(|e| e.as_str().to_owned()),
            household_id: Some(household),
            household_role: Some(person.household_role.as_str().to_owned()),
            neighbourhood_id: Some(neighbourhood.clone()),
            merged_into: None,
            version: 1,
            created_at: now,
            updated_at: now,
        });
        tally.created += 1;
    }
    bulk_insert!(conn, persons::table, new_rows);
    bulk_insert!(conn, household_memberships::table, memberships);
    Ok(())
}
