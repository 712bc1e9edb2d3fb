//! Batch imports: jobs, their rows applied in batches with the API's rules, and their errors.
//!
//! Crash safety: with atomicity `rows`, each batch commits together with the job's counters
//! (`rows_done`, and `line_done`, the line of its last row), so a job stopped mid-way resumes
//! after its last committed batch and applies no row twice. With atomicity `all` (and in
//! `validate` mode) the whole file is one transaction: a stop leaves nothing written and the job
//! re-runs from the start.

use std::collections::{HashMap, HashSet};
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use serde_json::json;
use tavana_domain::access::{ClientScope, Role, role_allows};
use tavana_domain::assessment::AssessmentKind;
use tavana_domain::enrolment::{EnrolmentState, TransitionError};
use tavana_domain::household::NewHousehold;
use tavana_domain::id::{EnrolmentId, HouseholdId, PersonId, ProgrammeId, SessionId, UserId};
use tavana_domain::import::{
    self, Atomicity, ImportFormat, ImportKind, ImportMode, ImportedAssessment, ImportedEnrolment,
    ImportedMark, ImportedPurchase, JobState,
};
use tavana_domain::national_id::NationalId;
use tavana_domain::person::{HouseholdRole, NewPerson};
use tavana_domain::{FieldError, ValidationErrors};

use crate::assessments::AssessmentRow;
use crate::audit::{self, Actor, AuditContext, Event};
use crate::changes::{Op, PartnerView};
use crate::cohorts::{Mark, Recorder};
use crate::db::{Database, DbConnection, MultiBackend};
use crate::enrolments::TransitionOutcome;
use crate::error::StoreError;
use crate::households::HouseholdChanges;
use crate::import_keys::{KeyUse, Repeat, RowKeys, Seen};
use crate::persons::PersonRow;
use crate::purchases::{NewLine, NewPurchase};
use crate::schema::{
    api_clients, assessments, attendance, enrolments, household_memberships, households,
    import_errors, import_jobs, persons, producer_links, purchase_lines, purchases, registrations,
};
use crate::scope::{Scope, assigned_to};
use crate::supporters::Access;
use crate::tx::write_transaction;
use tavana_domain::partner::Resource;

/// Keys looked up in one `IN (…)`. From about 1,000 values SQLite's planner (with statistics
/// from when the table was small, or none) scans all of `persons` instead of probing the index
/// once per value: at 500,000 persons that made the lookups a fifth of the import.
const LOOKUP_CHUNK: usize = 500;

/// Rows read, checked and written per transaction; memory grows with it (about 1.5 KB a person
/// row). 5,000 → 10,000 took the SQLite person import from 13,800 to 16,400 rows/s at 500,000
/// rows, and 25,000 gained 5% more for 14 MB more memory. On SQLite a transaction may take
/// several (`HOLD_WRITE_LOCK`).
pub const BATCH: usize = 10_000;
/// A batch ends early once its rows hold this much text: rows may be up to 1 MiB each (a long
/// `reason` or `description`), and 10,000 of those would be held at once.
const MAX_BATCH_BYTES: usize = 16 * 1024 * 1024;
/// The longest message, and column name, stored with a row's error: a message may repeat the
/// row's value (an unknown name), and a JSON Lines key is a column name, each up to a row long.
const MAX_MESSAGE_CHARS: usize = 300;
const MAX_COLUMN_CHARS: usize = 64;
/// On SQLite a transaction of an import in `rows` mode takes batches until it has held the write
/// lock this long. Each commit writes every page its rows changed, and the index on names and
/// birth date takes random pages, most of them on every commit; fewer commits write less. At
/// 1,000,000 rows: a batch a commit 10,245 rows/s, five batches 12,464, two seconds' worth 11,642
/// (runs vary by about 10%). Two seconds keeps an API write that waits for the lock inside the
/// busy timeout (5 s). PostgreSQL writes a row's changes as it goes, and commits a
/// batch at a time.
const HOLD_WRITE_LOCK: Duration = Duration::from_secs(2);
/// How long a job set `running` is left to the runner it was handed to before a resume may
/// take it for stopped (if no runner holds its run lock): a runner takes the lock within moments.
const STALE_AFTER: chrono::TimeDelta = chrono::TimeDelta::seconds(60);
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
    pub actor_role: Option<String>,
    /// The line of the last row committed (atomicity `rows`); a resumed job goes on after it.
    pub line_done: Option<i64>,
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
    /// How the job was asked to run: a job is resumed for a file sent again only if asked the
    /// same (a job in `rows` mode continued for an upload in `all` mode would write part of it).
    pub fn asked(&self) -> Result<(ImportMode, Atomicity, ImportFormat), StoreError> {
        Ok((self.mode()?, self.atomicity()?, self.format()?))
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
    /// The job's own audit context: its one event is written with this.
    fn context(&self) -> AuditContext {
        AuditContext {
            actor: match (self.actor_kind.as_str(), &self.actor_id) {
                ("user", Some(id)) => Actor::User(id.clone()),
                ("client", Some(id)) => Actor::Client(id.clone()),
                _ => Actor::System,
            },
            request_id: None,
            batched: false,
        }
    }

    /// Who the rows are written for, with the same checks as the API's own endpoints.
    fn runner(&self) -> Result<Runner, StoreError> {
        let bad =
            |what: &str| StoreError::Internal(format!("import_jobs row {}: bad {what}", self.id));
        Ok(Runner {
            job: self.id.clone(),
            scope: self.scope()?,
            context: AuditContext {
                batched: true,
                ..self.context()
            },
            role: self
                .actor_role
                .as_deref()
                .map(str::parse::<Role>)
                .transpose()
                .map_err(|_| bad("role"))?,
            user: match (self.actor_kind.as_str(), &self.actor_id) {
                ("user", Some(id)) => Some(id.parse().map_err(|_| bad("actor"))?),
                _ => None,
            },
            partner: None,
        })
    }

    /// The role and scope a user's job runs with, as they stand when the job runs (a resumed
    /// job too), not as at the upload: refused when the user is no longer active or their role
    /// may no longer write these records, as the API refuses such a user's requests (a job may run
    /// days after its upload). `None` for a job that is not a stored user's (an API client's,
    /// `tavana import`'s).
    fn user_now(&self, conn: &mut DbConnection) -> Result<Option<(Role, Scope)>, StoreError> {
        let ("user", Some(user)) = (self.actor_kind.as_str(), &self.actor_id) else {
            return Ok(None);
        };
        let id: UserId = user
            .parse()
            .map_err(|_| StoreError::Internal(format!("import_jobs row {}: bad actor", self.id)))?;
        // Users are never deleted and the API serves stored users only, so a job's user is known;
        // one that is not (a job from before that rule) runs as it was started.
        let Some((role, _, active)) = crate::users::standing(conn, id)? else {
            return Ok(None);
        };
        if !active {
            return Err(StoreError::Forbidden(format!(
                "user {user} who started the job is no longer active"
            )));
        }
        let role: Role = role
            .parse()
            .map_err(|_| StoreError::Internal(format!("users row {user}: bad role")))?;
        let action = self.kind()?.action();
        if !role_allows(role, action) {
            return Err(StoreError::Forbidden(format!(
                "user {user} is now {role} and may not {action}"
            )));
        }
        let scope = if role.is_area_scoped() {
            Scope::UserAreas(id)
        } else {
            Scope::All
        };
        Ok(Some((role, scope)))
    }

    /// The MoU data policy an API client's job runs under, as it stands when the job runs (a
    /// resumed job too): refused when the client is no longer active, the MoU is not in force,
    /// or it does not let the partner submit these records.
    fn partner(
        &self,
        conn: &mut DbConnection,
        today: NaiveDate,
    ) -> Result<Option<PartnerView>, StoreError> {
        let ("client", Some(client)) = (self.actor_kind.as_str(), &self.actor_id) else {
            return Ok(None);
        };
        let found: Option<(String, String)> = api_clients::table
            .filter(api_clients::client_id.eq(client))
            .filter(api_clients::active.eq(true))
            .filter(api_clients::expires_on.ge(today))
            .select((api_clients::organisation_id, api_clients::scopes))
            .first(conn)
            .optional()?;
        let (organisation, scopes) = found.ok_or_else(|| {
            StoreError::Forbidden(format!("API client {client} is no longer active"))
        })?;
        // As at the upload: importing, and submitting to the registry.
        for needed in [ClientScope::ImportsWrite, ClientScope::RegistryWrite] {
            if !scopes.split_whitespace().any(|s| s == needed.as_str()) {
                return Err(StoreError::Forbidden(format!(
                    "API client {client} no longer has the scope {}",
                    needed.as_str()
                )));
            }
        }
        let organisation = organisation
            .parse()
            .map_err(|_| StoreError::Internal(format!("api_clients {client}: bad organisation")))?;
        let view = PartnerView::of(conn, organisation, today)?;
        let kind = self.kind()?;
        let resource = kind
            .partner_resource()
            .ok_or_else(|| StoreError::Forbidden(format!("API clients do not import {kind}")))?;
        crate::partner_policies::may_import(&view, resource)?;
        Ok(Some(view))
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
    /// The role of a user starting it; none for an API client.
    pub role: Option<Role>,
    pub idempotency_key: Option<String>,
    pub checksum: String,
    pub file_path: String,
}

/// Starts a job, unless this is a repeat: the same idempotency key of the same caller (with
/// another file or kind, mode, atomicity or format, refused as `reused`), or the
/// same caller's import of the same file (checksum) and kind in `commit` mode that did not fail
/// and was not rolled back (atomicity `all` with a failed row wrote nothing: the file may be sent
/// again once its rows are put right elsewhere, or with atomicity `rows`). Then the earlier job is
/// returned.
pub fn start(conn: &mut DbConnection, new: NewJob) -> Result<(Job, bool), StoreError> {
    write_transaction(conn, |conn| {
        // The key first, then the file: two requests with one key wait for each other whatever
        // their files, and answer 422 rather than collide on the key's unique index.
        if let Some(key) = &new.idempotency_key {
            crate::tx::lock(conn, &format!("import-key:{}:{key}", new.principal))?;
        }
        crate::tx::lock(conn, &format!("import:{}", new.checksum))?;
        if let Some(key) = &new.idempotency_key {
            let earlier: Option<Job> = import_jobs::table
                .filter(import_jobs::principal.eq(&new.principal))
                .filter(import_jobs::idempotency_key.eq(key))
                .select(Job::as_select())
                .first(conn)
                .optional()?;
            if let Some(job) = earlier {
                // As every create's `Idempotency-Key`: the same request again gets the first
                // answer; another request (another file, kind, mode, …) with it is refused.
                let same = job.kind == new.kind.as_str()
                    && job.mode == new.mode.as_str()
                    && job.atomicity == new.atomicity.as_str()
                    && job.format == new.format.as_str()
                    && job.checksum == new.checksum;
                if !same {
                    return Err(FieldError::new(
                        "Idempotency-Key",
                        "reused",
                        "this key was used for a different request",
                    )
                    .into());
                }
                return Ok((job, false));
            }
        }
        if new.mode == ImportMode::Commit {
            // The same caller's: another caller's job is not theirs to see, and their scope
            // may differ (their rows would match by natural keys anyway).
            let earlier: Option<Job> = import_jobs::table
                .filter(import_jobs::principal.eq(&new.principal))
                .filter(import_jobs::kind.eq(new.kind.as_str()))
                .filter(import_jobs::checksum.eq(&new.checksum))
                .filter(import_jobs::mode.eq(ImportMode::Commit.as_str()))
                .filter(import_jobs::state.ne(JobState::Failed.as_str()))
                .filter(
                    import_jobs::atomicity
                        .ne(Atomicity::All.as_str())
                        .or(import_jobs::failed.eq(0))
                        .or(import_jobs::state.ne(JobState::Completed.as_str())),
                )
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
            actor_role: new.role.map(|r| r.as_str().to_owned()),
            line_done: None,
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

/// How far the jobs running here in one transaction (a `validate` run, atomicity `all`) have
/// read, and how many of those rows failed, by job: their rows cannot show it before the end,
/// as the transaction holds them (on SQLite it holds the only write lock).
static LIVE: LazyLock<Mutex<HashMap<String, (i64, i64)>>> = LazyLock::new(Mutex::default);

/// The job as it stands: for one running here in one transaction, with the rows read and failed
/// so far. (On another replica it shows 0 until its end.)
pub fn live(mut job: Job) -> Job {
    if job.state == JobState::Running.as_str()
        && let Some((read, failed)) = LIVE.lock().ok().and_then(|live| live.get(&job.id).copied())
    {
        (job.rows_read, job.failed) = (read, failed);
    }
    job
}

/// A job's entry in `LIVE`, removed when its run ends however it ends.
struct Live<'a>(&'a str);

impl Live<'_> {
    fn show(&self, tally: &Tally) {
        if let Ok(mut live) = LIVE.lock() {
            live.insert(self.0.to_owned(), (tally.read, tally.failed));
        }
    }
}

impl Drop for Live<'_> {
    fn drop(&mut self) {
        if let Ok(mut live) = LIVE.lock() {
            live.remove(self.0);
        }
    }
}

pub fn errors(conn: &mut DbConnection, id: &str, limit: i64) -> Result<Vec<RowError>, StoreError> {
    Ok(import_errors::table
        .filter(import_errors::job_id.eq(id))
        .select(RowError::as_select())
        .order((import_errors::row_no.asc(), import_errors::seq.asc()))
        .limit(limit)
        .load(conn)?)
}

/// Jobs that were running when the service stopped: now `interrupted`, to be resumed. A job
/// another process is running (a replica, `tavana import`) stays as it is: its runner holds the
/// job's run lock. A job that cannot be checked is logged, and the others are checked still.
pub fn mark_interrupted(conn: &mut DbConnection) -> Result<usize, StoreError> {
    let running: Vec<String> = import_jobs::table
        .filter(import_jobs::state.eq(JobState::Running.as_str()))
        .select(import_jobs::id)
        .load(conn)?;
    let mut marked = 0;
    for id in running {
        match stopped(conn, &id, "the service stopped while the job ran") {
            Ok(true) => marked += 1,
            Ok(false) => {}
            Err(error) => tracing::warn!(job = %id, error = %error, "import not checked"),
        }
    }
    Ok(marked)
}

/// The files of jobs that will read them again: running, or interrupted (to be resumed).
pub fn files_in_use(conn: &mut DbConnection) -> Result<Vec<String>, StoreError> {
    Ok(import_jobs::table
        .filter(
            import_jobs::state.eq_any([JobState::Running.as_str(), JobState::Interrupted.as_str()]),
        )
        .select(import_jobs::file_path)
        .load(conn)?)
}

/// Records that a running job stopped before its end, and why: it is `interrupted`, to be
/// resumed (atomicity `rows`) or run again (`all`). Returns whether it was marked: not if it
/// ended meanwhile, nor while a runner holds its run lock (it is running there).
pub fn stopped(conn: &mut DbConnection, id: &str, why: &str) -> Result<bool, StoreError> {
    stopped_before(conn, id, why, None)
}

/// `stopped`, only if the job was last set running (or recorded progress) before `before`.
fn stopped_before(
    conn: &mut DbConnection,
    id: &str,
    why: &str,
    before: Option<NaiveDateTime>,
) -> Result<bool, StoreError> {
    if let DbConnection::Sqlite(_) = conn {
        // SQLite's write lock first, then the run lock: the run lock is held for the statement
        // only, not while waiting (up to the busy timeout) for the write lock, since a runner
        // just handed the job tries it for a moment only. Given back after the commit.
        let mut held = None;
        let marked = write_transaction(conn, |conn| {
            let DbConnection::Sqlite(sqlite) = conn else {
                return Ok(false);
            };
            held = sqlite_run_lock(sqlite, id)?;
            if held.is_none() {
                return Ok(false);
            }
            mark_stopped_before(conn, id, why, before)
        });
        drop(held);
        return marked;
    }
    if !pg_run_lock(conn, id, true)? {
        return Ok(false);
    }
    let marked = mark_stopped_before(conn, id, why, before);
    if let Err(error) = pg_run_lock(conn, id, false) {
        tracing::warn!(job = %id, error = %error, "import run lock not given back");
    }
    marked
}

/// `stopped`, by the job's runner, which holds the run lock. A job in `rows` mode that wrote
/// rows before it stopped is audited then, with what it wrote so far: they are in the registry
/// whether or not the job is ever resumed (and audited again, as a whole, when it ends).
fn mark_stopped(conn: &mut DbConnection, id: &str, why: &str) -> Result<bool, StoreError> {
    mark_stopped_before(conn, id, why, None)
}

fn mark_stopped_before(
    conn: &mut DbConnection,
    id: &str,
    why: &str,
    before: Option<NaiveDateTime>,
) -> Result<bool, StoreError> {
    write_transaction(conn, |conn| {
        let stop = (
            import_jobs::state.eq(JobState::Interrupted.as_str()),
            import_jobs::message.eq(why),
            import_jobs::updated_at.eq(crate::now()),
        );
        let running = in_state(id, JobState::Running);
        // The age is checked in the statement: a job resumed meanwhile is fresh again.
        let marked = match before {
            Some(before) => diesel::update(running.filter(import_jobs::updated_at.lt(before)))
                .set(stop)
                .execute(conn)?,
            None => diesel::update(running).set(stop).execute(conn)?,
        };
        if marked == 0 {
            return Ok(false);
        }
        let job = get(conn, id)?;
        let wrote = job.mode()? == ImportMode::Commit
            && job.atomicity()? == Atomicity::Rows
            && job.created + job.updated > 0;
        if wrote {
            audit::append(
                conn,
                &job.context(),
                Event {
                    action: "import.interrupted",
                    entity: "import_job",
                    entity_id: Some(job.id.clone()),
                    before: None,
                    after: Some(json!({
                        "kind": job.kind, "atomicity": job.atomicity, "checksum": job.checksum,
                        "rows": job.rows_done, "created": job.created, "updated": job.updated,
                        "unchanged": job.unchanged, "failed": job.failed, "why": why,
                    })),
                },
            )?;
        }
        Ok(true)
    })
}

/// Takes a job's run lock on SQLite, held by the job's runner for as long as it runs (and while
/// it waits for the process's import turn) and let go if the runner's process dies: a locked
/// file beside the database (`import_lock`), given back when dropped. `None` if someone holds it,
/// in this process too.
fn sqlite_run_lock(
    sqlite: &mut diesel::SqliteConnection,
    job: &str,
) -> Result<Option<crate::import_lock::Held>, StoreError> {
    #[derive(QueryableByName)]
    struct DatabaseFile {
        #[diesel(sql_type = diesel::sql_types::Text)]
        file: String,
    }
    let database: DatabaseFile =
        diesel::sql_query("SELECT file FROM pragma_database_list WHERE name = 'main'")
            .get_result(sqlite)?;
    if database.file.is_empty() {
        return Err(StoreError::Internal(
            "imports need a database file; this SQLite database is in memory".to_owned(),
        ));
    }
    let lock = crate::import_lock::path(&database.file, job);
    crate::import_lock::take(&lock).map_err(|error| {
        StoreError::Unavailable(format!("import run lock {}: {error}", lock.display()))
    })
}

/// Takes (`true`: whether it could, without waiting) or gives back a job's run lock on
/// PostgreSQL: a session advisory lock, held by the connection that runs the job for as long as
/// it runs, and let go by PostgreSQL if that connection dies. Always `true` on SQLite, whose lock
/// is a file (`sqlite_run_lock`).
fn pg_run_lock(conn: &mut DbConnection, job: &str, take: bool) -> Result<bool, StoreError> {
    use diesel::sql_types::{Bool, Text};
    #[derive(QueryableByName)]
    struct Answer {
        #[diesel(sql_type = Bool)]
        done: bool,
    }
    let DbConnection::Pg(pg) = conn else {
        return Ok(true);
    };
    let function = if take {
        "pg_try_advisory_lock"
    } else {
        "pg_advisory_unlock"
    };
    let answer: Answer = diesel::sql_query(format!(
        "SELECT {function}(hashtextextended('import-run:' || $1, 0)) AS done"
    ))
    .bind::<Text, _>(job)
    .get_result(pg)?;
    Ok(answer.done)
}

/// Makes an interrupted job (or one left running by a runner that is gone) runnable again;
/// returns it. The state is changed only from `interrupted`, in the statement itself, so of two
/// resumes at once one runs the job. `file`: where the file is now, if not where the job read it
/// (`tavana import` given the same file again).
pub fn resume(conn: &mut DbConnection, id: &str, file: Option<&str>) -> Result<Job, StoreError> {
    resumed(conn, id, file).map(|(job, _)| job)
}

/// `resume` from another copy of the job's file (an upload of the same file again); returns the
/// job and the file it read before.
pub fn resume_from(
    conn: &mut DbConnection,
    id: &str,
    file: &str,
) -> Result<(Job, String), StoreError> {
    resumed(conn, id, Some(file))
}

fn resumed(
    conn: &mut DbConnection,
    id: &str,
    file: Option<&str>,
) -> Result<(Job, String), StoreError> {
    // A job still `running` with no runner holding its run lock stopped without its stop being
    // recorded (the database was away then): it is taken for interrupted. One with a runner is
    // left to it, and refused below; so is one set running less than `STALE_AFTER` ago (checked
    // in the statement), whose runner may not have taken its lock yet: a resume that has just
    // set it running, say.
    let job = get(conn, id)?;
    let cutoff = crate::now() - STALE_AFTER;
    if job.state()? == JobState::Running && job.updated_at < cutoff {
        stopped_before(
            conn,
            id,
            "found running with no process running it",
            Some(cutoff),
        )?;
    }
    write_transaction(conn, |conn| {
        let before = get(conn, id)?.file_path;
        let interrupted = in_state(id, JobState::Interrupted);
        let running = (
            import_jobs::state.eq(JobState::Running.as_str()),
            import_jobs::updated_at.eq(crate::now()),
        );
        let resumed = match file {
            Some(file) => diesel::update(interrupted)
                .set((running, import_jobs::file_path.eq(file)))
                .execute(conn)?,
            None => diesel::update(interrupted).set(running).execute(conn)?,
        };
        let job = get(conn, id)?;
        if resumed == 0 {
            return Err(StoreError::Conflict(format!(
                "only an interrupted job can be resumed; this one is {}",
                job.state
            )));
        }
        Ok((job, before))
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
    /// The line of the last row applied.
    line: i64,
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
    run_tuned(db, job_id, rows, today, Tuning::default())
}

/// What tests may set instead of the service's own measures.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tuning {
    /// How long a transaction of a job in `rows` mode takes batches, on either backend
    /// (`HOLD_WRITE_LOCK` on SQLite, one batch on PostgreSQL).
    pub hold: Option<Duration>,
    /// How many of the file's keys are kept in memory before they move to a temporary
    /// database (the kind's `KEYS_IN_MEMORY`).
    pub keys_in_memory: Option<usize>,
}

/// `run`, with `tuning` for tests: what a transaction of several batches keeps, and repeats
/// found once the keys have moved out of memory.
pub fn run_tuned(
    db: &Database,
    job_id: &str,
    rows: &mut dyn Iterator<Item = Result<Row, StoreError>>,
    today: NaiveDate,
    tuning: Tuning,
) -> Result<Job, StoreError> {
    // On SQLite the run lock is a file, taken before the process's import turn so that it covers
    // the wait: a service starting meanwhile leaves the job to this runner.
    let (kind, _lock) = {
        let mut conn = db.get()?;
        let lock = match &mut *conn {
            DbConnection::Sqlite(sqlite) => match patiently(|| sqlite_run_lock(sqlite, job_id))? {
                Some(held) => Some(held),
                None => return Err(run_elsewhere(job_id)),
            },
            DbConnection::Pg(_) => None,
        };
        (get(&mut conn, job_id)?.kind()?, lock)
    };
    let _turn = db.import_turn();
    match kind {
        ImportKind::Households => run_kind::<Households>(db, job_id, rows, today, tuning),
        ImportKind::Persons => run_kind::<Persons>(db, job_id, rows, today, tuning),
        ImportKind::Assessments => run_kind::<Assessments>(db, job_id, rows, today, tuning),
        ImportKind::Enrolments => run_kind::<Enrolments>(db, job_id, rows, today, tuning),
        ImportKind::Attendance => run_kind::<Attendance>(db, job_id, rows, today, tuning),
        ImportKind::Purchases => run_kind::<Purchases>(db, job_id, rows, today, tuning),
    }
}

/// Tries `take` (a job's run lock) a few times over a fifth of a second: a resume that checks
/// whether the job was left by a runner that is gone holds the lock for a moment, and the runner
/// it was just handed to must not take that for another runner.
fn patiently<T>(
    mut take: impl FnMut() -> Result<Option<T>, StoreError>,
) -> Result<Option<T>, StoreError> {
    for _ in 0..4 {
        if let Some(held) = take()? {
            return Ok(Some(held));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    take()
}

fn run_elsewhere(job: &str) -> StoreError {
    StoreError::Conflict(format!("import {job} is being run by another process"))
}

fn run_kind<K: Kind>(
    db: &Database,
    job_id: &str,
    rows: &mut dyn Iterator<Item = Result<Row, StoreError>>,
    today: NaiveDate,
    tuning: Tuning,
) -> Result<Job, StoreError> {
    let mut conn = db.get()?;
    if patiently(|| Ok(pg_run_lock(&mut conn, job_id, true)?.then_some(())))?.is_none() {
        return Err(run_elsewhere(job_id));
    }
    // PostgreSQL's run lock (held by this connection) and the settings are given back whatever
    // happens, a panic too: the pooled connection outlives the run. SQLite's is `run_tuned`'s.
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        import_settings(&mut conn, true)?;
        crate::changes::prepare_pending(&mut conn)?;
        run_on::<K>(&mut conn, job_id, rows, today, tuning)
    }));
    if let Err(error) = pg_run_lock(&mut conn, job_id, false) {
        tracing::warn!(job = %job_id, error = %error, "import run lock not given back");
    }
    if let Err(error) = import_settings(&mut conn, false) {
        tracing::warn!(error = %error, "import connection settings not reset");
    }
    let result = result.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    if let Ok(job) = &result
        && job.mode().is_ok_and(|mode| mode == ImportMode::Commit)
        && job.created + job.updated > 0
    {
        refresh_statistics(&mut conn);
    }
    result
}

fn run_on<K: Kind>(
    conn: &mut DbConnection,
    job_id: &str,
    rows: &mut dyn Iterator<Item = Result<Row, StoreError>>,
    today: NaiveDate,
    tuning: Tuning,
) -> Result<Job, StoreError> {
    let job = get(conn, job_id)?;
    if job.state()? != JobState::Running {
        return Err(StoreError::Conflict(format!(
            "import {job_id} is {}, not running",
            job.state
        )));
    }
    let (mode, atomicity) = (job.mode()?, job.atomicity()?);
    let mut runner = job.runner()?;
    // Who started the job may since have lost the right to write these rows: checked as they
    // stand now, as the API checks each request.
    let now = job
        .partner(conn, today)
        .and_then(|partner| Ok((partner, job.user_now(conn)?)));
    match now {
        Ok((partner, user)) => {
            runner.partner = partner;
            if let Some((role, scope)) = user {
                (runner.role, runner.scope) = (Some(role), scope);
            }
        }
        Err(refused) => {
            // Interrupted with the reason: resumable once the rights are given back.
            mark_stopped(conn, &job.id, &refused.for_clients())?;
            return Err(refused);
        }
    }
    let context = job.context();
    let mut tally = Tally {
        line: job.line_done.unwrap_or(0),
        read: job.rows_done,
        created: job.created,
        updated: job.updated,
        unchanged: job.unchanged,
        failed: job.failed,
    };
    let mut seen = Seen::new(tuning.keys_in_memory.unwrap_or(K::KEYS_IN_MEMORY));
    let one_transaction = mode == ImportMode::Validate || atomicity == Atomicity::All;
    // By line: the rows the reader returns may differ from those it returned before the stop.
    let resume_after = match (one_transaction, job.line_done) {
        (true, _) => Skip::Rows(0),
        (false, Some(line)) => Skip::Through(line),
        (false, None) => Skip::Rows(job.rows_done),
    };
    // The errors of a job in one transaction, stored at its end; a job in `rows` mode stores
    // them with each transaction, and counts those stored before (a resumed job's too) against
    // `MAX_STORED_ERRORS`. Beyond that they are counted in `failed`, not held in memory.
    let mut kept: Vec<RowError> = Vec::new();
    let mut stored = if one_transaction {
        0
    } else {
        stored_errors(conn, &job.id)?
    };
    let hold = tuning.hold.unwrap_or(match conn {
        DbConnection::Sqlite(_) => HOLD_WRITE_LOCK,
        DbConnection::Pg(_) => Duration::ZERO,
    });
    if one_transaction {
        tally = Tally::default();
    }

    let mut batches = Batches::<K> {
        rows,
        skip: resume_after,
        position: 0,
        last_line: 0,
        seen: &mut seen,
        today,
    };
    // Shown until the job's row shows its end, whichever way it ends.
    let live = Live(&job.id);
    // A job whose rows commit in one transaction completes in it too: its counts and its audit
    // event are written with its rows or not at all.
    let mut completed = None;
    let outcome = if one_transaction {
        let mut inner = tally;
        let mut errors = Vec::new();
        let result = write_transaction(conn, |conn| {
            while let Some(batch) = batches.next_batch()? {
                apply_batch::<K>(conn, &runner, &batch, &mut inner, &mut errors)?;
                errors.truncate(MAX_STORED_ERRORS);
                live.show(&inner);
            }
            if mode == ImportMode::Validate || inner.failed > 0 {
                // Nothing may stay: roll back, keeping the tally.
                return Err(StoreError::Conflict(ROLLBACK.to_owned()));
            }
            complete(conn, &job, &context, &inner)
        });
        tally = inner;
        kept = errors;
        match result {
            Ok(done) => {
                completed = Some(done);
                Ok(())
            }
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
            let mut unread = None;
            let step = write_transaction(conn, |conn| {
                let started = Instant::now();
                let mut errors = Vec::new();
                let room = MAX_STORED_ERRORS.saturating_sub(stored);
                apply_batch::<K>(conn, &runner, &batch, &mut inner, &mut errors)?;
                inner.line = batches.last_line;
                errors.truncate(room);
                while started.elapsed() < hold {
                    match batches.next_batch() {
                        Ok(Some(batch)) => {
                            apply_batch::<K>(conn, &runner, &batch, &mut inner, &mut errors)?;
                            inner.line = batches.last_line;
                            errors.truncate(room);
                        }
                        Ok(None) => break,
                        // The batches applied are kept; the job stops after their commit.
                        Err(e) => {
                            unread = Some(e);
                            break;
                        }
                    }
                }
                store_errors(conn, &errors, stored)?;
                save_progress(conn, &job.id, &inner)?;
                Ok(errors.len())
            });
            match step {
                Ok(written) => {
                    tally = inner;
                    stored += written;
                    if let Some(e) = unread {
                        result = Err(e);
                        break;
                    }
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
        if let Err(unrecorded) = mark_stopped(conn, &job.id, &error.for_clients()) {
            tracing::warn!(job = %job.id, error = %unrecorded, "interruption not recorded");
        }
        return Err(error);
    }
    if let Some(done) = completed {
        return Ok(done);
    }
    if mode == ImportMode::Commit && atomicity == Atomicity::All && tally.failed > 0 {
        // Rolled back: the counts say what was written, which is nothing.
        (tally.created, tally.updated, tally.unchanged) = (0, 0, 0);
    }
    write_transaction(conn, |conn| {
        if one_transaction {
            store_errors(conn, &kept, 0)?;
        }
        complete(conn, &job, &context, &tally)
    })
}

/// Marks the job completed with its counts and, if it wrote, audits it as one event.
fn complete(
    conn: &mut DbConnection,
    job: &Job,
    context: &AuditContext,
    tally: &Tally,
) -> Result<Job, StoreError> {
    let (mode, atomicity) = (job.mode()?, job.atomicity()?);
    let wrote = mode == ImportMode::Commit && (tally.created + tally.updated) > 0;
    let message = match (mode, atomicity) {
        (ImportMode::Validate, _) => "validated; nothing was written".to_owned(),
        (ImportMode::Commit, Atomicity::All) if tally.failed > 0 => format!(
            "nothing was written: {} rows failed and atomicity is `all`",
            tally.failed
        ),
        _ => "done".to_owned(),
    };
    let updated = diesel::update(in_state(&job.id, JobState::Running))
        .set((
            import_jobs::state.eq(JobState::Completed.as_str()),
            counts(tally),
            import_jobs::message.eq(message),
            import_jobs::updated_at.eq(crate::now()),
            import_jobs::finished_at.eq(Some(crate::now())),
        ))
        .execute(conn)?;
    no_longer_running(updated, &job.id)?;
    // The job's row first, then the lock that orders the feed (as `mark_stopped` takes them).
    crate::changes::number_pending(conn)?;
    if wrote {
        audit::append(
            conn,
            context,
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
}

/// SQLite's page cache for the import's connection (then back to SQLite's default, 2 MB). A batch
/// touches pages of every index of its tables; with the default 2 MB they are spilled and read
/// back through the kernel many times per batch (half the import's time in `pwrite`/`pread`
/// when profiled).
const IMPORT_CACHE_KIB: i64 = 16 * 1024;

/// Sets up the import's connection for large writes (`on`), or back as the pool's others are.
fn import_settings(conn: &mut DbConnection, on: bool) -> Result<(), StoreError> {
    use diesel::connection::SimpleConnection;
    match conn {
        DbConnection::Sqlite(sqlite) => {
            // A statement that may fail half-way keeps the pages it changes in a statement
            // journal; in a temporary file that is a write per page and statement (an eighth of
            // the import's time when profiled), in memory a copy freed when the statement ends.
            let (kib, store) = if on {
                (IMPORT_CACHE_KIB, "MEMORY")
            } else {
                (2000, "DEFAULT")
            };
            sqlite.batch_execute(&format!(
                "PRAGMA cache_size = -{kib}; PRAGMA temp_store = {store};"
            ))?;
        }
        // The possible-duplicates statement of a batch costs enough for PostgreSQL to compile it
        // (JIT) each time, which takes longer than it saves.
        DbConnection::Pg(pg) => pg.batch_execute(if on { "SET jit = off" } else { "RESET jit" })?,
    }
    Ok(())
}

/// After an import wrote rows, SQLite's statistics may describe tables a fraction of their new
/// size, and the planner would pick scans for the API's queries: `PRAGMA optimize` analyses the
/// tables that changed (sampling at most 1,000 rows per index). PostgreSQL's autovacuum analyses
/// on its own.
fn refresh_statistics(conn: &mut DbConnection) {
    use diesel::connection::SimpleConnection;
    if let DbConnection::Sqlite(sqlite) = conn
        && let Err(error) = sqlite.batch_execute("PRAGMA analysis_limit = 1000; PRAGMA optimize;")
    {
        tracing::warn!(error = %error, "statistics not refreshed after the import");
    }
}

/// Records a job that failed before any row: a bad header, an empty file.
pub fn fail(
    conn: &mut DbConnection,
    job_id: &str,
    problems: &[FieldError],
) -> Result<Job, StoreError> {
    write_transaction(conn, |conn| {
        let errors = row_errors(job_id, 0, problems.to_vec());
        store_errors(conn, &errors, 0)?;
        diesel::update(import_jobs::table.find(job_id))
            .set((
                import_jobs::state.eq(JobState::Failed.as_str()),
                import_jobs::message.eq(problems
                    .first()
                    .map(|e| clipped(e.message.clone(), MAX_MESSAGE_CHARS))
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

/// How many errors job `id` has stored.
fn stored_errors(conn: &mut DbConnection, id: &str) -> Result<usize, StoreError> {
    let count: i64 = import_errors::table
        .filter(import_errors::job_id.eq(id))
        .count()
        .get_result(conn)?;
    Ok(usize::try_from(count).unwrap_or(usize::MAX))
}

/// Job `id` while it is in `state`: updates that must not race a change of state filter on it.
/// A runner updates its job only while it is `running`: a job marked interrupted meanwhile (by
/// hand, or after a broken PostgreSQL connection let its run lock go) may be resumed by someone
/// else, so its runner stops, and the transaction that was to record its progress (with the rows
/// it wrote) is rolled back.
fn in_state(
    id: &str,
    state: JobState,
) -> diesel::dsl::Filter<
    diesel::dsl::Find<import_jobs::table, &str>,
    diesel::dsl::Eq<import_jobs::state, &'static str>,
> {
    import_jobs::table
        .find(id)
        .filter(import_jobs::state.eq(state.as_str()))
}

fn no_longer_running(updated: usize, job: &str) -> Result<(), StoreError> {
    if updated == 0 {
        return Err(StoreError::Conflict(format!(
            "import {job} was marked interrupted while it ran; resume it"
        )));
    }
    Ok(())
}

/// The counts of a job's row, as set together.
type Counts = (
    diesel::dsl::Eq<import_jobs::rows_read, i64>,
    diesel::dsl::Eq<import_jobs::rows_done, i64>,
    diesel::dsl::Eq<import_jobs::created, i64>,
    diesel::dsl::Eq<import_jobs::updated, i64>,
    diesel::dsl::Eq<import_jobs::unchanged, i64>,
    diesel::dsl::Eq<import_jobs::failed, i64>,
);

/// A job's counts as its runner records them: every row read so far is done.
fn counts(tally: &Tally) -> Counts {
    (
        import_jobs::rows_read.eq(tally.read),
        import_jobs::rows_done.eq(tally.read),
        import_jobs::created.eq(tally.created),
        import_jobs::updated.eq(tally.updated),
        import_jobs::unchanged.eq(tally.unchanged),
        import_jobs::failed.eq(tally.failed),
    )
}

fn save_progress(conn: &mut DbConnection, job: &str, tally: &Tally) -> Result<(), StoreError> {
    let updated = diesel::update(in_state(job, JobState::Running))
        .set((
            counts(tally),
            import_jobs::line_done.eq(Some(tally.line)),
            import_jobs::updated_at.eq(crate::now()),
        ))
        .execute(conn)?;
    no_longer_running(updated, job)?;
    // Last in the transaction: its changes get their numbers. The job's row first, then the
    // lock that orders the feed (as `mark_stopped` takes them).
    crate::changes::number_pending(conn)
}

/// A parsed row, or its errors.
type Parsed<T> = (i64, Result<T, Vec<FieldError>>);

/// What one kind of import does: read a row by the API's rules, name it for finding repeats, and
/// write a batch.
trait Kind {
    type Item;
    type Key: std::hash::Hash + Eq;
    /// The column a repeated row is reported on.
    const KEY_COLUMN: &'static str;
    /// Keys kept in memory before they move to a temporary database (`import_keys`): about
    /// 20 MB of keys of text.
    const KEYS_IN_MEMORY: usize = 200_000;
    fn parse(
        get: &dyn Fn(&str) -> Option<String>,
        today: NaiveDate,
    ) -> Result<Self::Item, ValidationErrors>;
    /// The record's natural key: a second row with it in the file is a repeat.
    fn key(item: &Self::Item) -> Self::Key;
    /// The keys a repeat is found by, if more than the natural key.
    fn keys(item: &Self::Item) -> Vec<(Self::Key, KeyUse)> {
        vec![(Self::key(item), KeyUse::Both)]
    }
    /// The column a row repeating an earlier one by its `key`th key (of `keys`) is reported on.
    fn repeat_column(_item: &Self::Item, _key: usize) -> &'static str {
        Self::KEY_COLUMN
    }
    fn apply(
        conn: &mut DbConnection,
        runner: &Runner,
        batch: &[Parsed<Self::Item>],
        tally: &mut Tally,
        errors: &mut Vec<RowError>,
    ) -> Result<(), StoreError>;
    /// Whether a batch that failed with `error` on PostgreSQL is tried again, besides a deadlock.
    fn tried_again(_error: &StoreError) -> bool {
        false
    }
}

/// How often a batch is tried on PostgreSQL (see `apply_batch`).
const BATCH_TRIES: u32 = 3;

/// Applies one batch. On PostgreSQL in a savepoint, tried again when the database gave the batch
/// up for another writer's sake: a deadlock with an API request or another import that locks some
/// of the same rows (persons, enrolments, progress counts…) in another order, or what the kind
/// says (`Kind::tried_again`). Rolling back to the savepoint gives back what this batch locked, the
/// other writer goes on, and the batch then reads the rows as they are. A job in one transaction
/// (`all`, `validate`) still holds what its earlier batches locked: a deadlock over those comes
/// back on each try, and stops the job as before. SQLite's writers take turns; nothing to try
/// again.
fn apply_batch<K: Kind>(
    conn: &mut DbConnection,
    runner: &Runner,
    batch: &[Parsed<K::Item>],
    tally: &mut Tally,
    errors: &mut Vec<RowError>,
) -> Result<(), StoreError> {
    if let DbConnection::Sqlite(_) = conn {
        return K::apply(conn, runner, batch, tally, errors);
    }
    let (before, kept) = (*tally, errors.len());
    let mut tries = 1;
    loop {
        match conn.transaction(|conn| K::apply(conn, runner, batch, tally, errors)) {
            Err(error)
                if tries < BATCH_TRIES && (error.is_deadlock() || K::tried_again(&error)) =>
            {
                tracing::info!(job = %runner.job, error = %error, "import batch tried again");
                tries += 1;
                *tally = before;
                errors.truncate(kept);
            }
            other => return other,
        }
    }
}

/// Who a job's rows are written for: the caller's scope and role, and an audit context that
/// leaves the recording to the job's one event.
struct Runner {
    job: String,
    scope: Scope,
    context: AuditContext,
    role: Option<Role>,
    user: Option<UserId>,
    /// An API client's job runs under its organisation's MoU data policy, as `/partner/...`.
    partner: Option<PartnerView>,
}

/// Which rows a resumed job applied before its stop.
#[derive(Debug, Clone, Copy)]
enum Skip {
    /// The rows through this line.
    Through(i64),
    /// This many rows: a job stopped before it recorded its lines.
    Rows(i64),
}

/// Reads rows in batches, parses them, and reports repeats within the file.
struct Batches<'a, K: Kind> {
    rows: &'a mut dyn Iterator<Item = Result<Row, StoreError>>,
    /// Data rows applied before (a resumed job): read again only to find repeats.
    skip: Skip,
    position: i64,
    /// The line of the last row of the batch returned last.
    last_line: i64,
    /// The row each key was first read in (a file of at most 2 GiB has fewer than 2³² lines).
    seen: &'a mut Seen<K::Key>,
    today: NaiveDate,
}

impl<K: Kind> Batches<'_, K> {
    /// The next batch; an error reading the file ends the job (it stays resumable).
    fn next_batch(&mut self) -> Result<Option<Vec<Parsed<K::Item>>>, StoreError> {
        loop {
            let mut read = Vec::with_capacity(BATCH);
            let mut bytes = 0;
            for row in &mut *self.rows {
                let row = row?;
                bytes += match &row.values {
                    Ok(values) => values.values().map(String::len).sum::<usize>(),
                    // A row that could not be read may name a key a row long.
                    Err(e) => e.field.len() + e.message.len(),
                };
                let parsed = match row.values {
                    Err(e) => Err(vec![e]),
                    Ok(values) => match values.iter().find(|(_, v)| v.contains('\0')) {
                        // As the API refuses it, whatever the column and the kind.
                        Some((column, _)) => Err(vec![tavana_domain::text::nul_character(column)]),
                        None => {
                            let get = |name: &str| values.get(name).cloned();
                            K::parse(&get, self.today).map_err(|e| e.0)
                        }
                    },
                };
                read.push((row.number, parsed));
                if read.len() == BATCH || bytes >= MAX_BATCH_BYTES {
                    break;
                }
            }
            if read.is_empty() {
                return Ok(None);
            }
            // Repeats are found across the whole file, resumed part included.
            let keys = read
                .iter()
                .filter_map(|(number, parsed)| {
                    let item = parsed.as_ref().ok()?;
                    Some(RowKeys {
                        keys: K::keys(item),
                        row: u32::try_from(*number).unwrap_or(u32::MAX),
                    })
                })
                .collect();
            let mut firsts = self.seen.check(keys)?.into_iter();
            let mut batch = Vec::with_capacity(read.len());
            for (number, parsed) in read {
                let parsed = match parsed {
                    Ok(item) => match firsts.next().flatten() {
                        Some(Repeat { row: first, key }) => Err(vec![FieldError::new(
                            K::repeat_column(&item, key),
                            "duplicate_row",
                            format!("this record is in row {first} already; a row is applied once"),
                        )]),
                        None => Ok(item),
                    },
                    Err(e) => Err(e),
                };
                self.position += 1;
                let applied = match self.skip {
                    Skip::Through(line) => number <= line,
                    Skip::Rows(rows) => self.position <= rows,
                };
                if !applied {
                    self.last_line = number;
                    batch.push((number, parsed));
                }
            }
            if !batch.is_empty() {
                return Ok(Some(batch));
            }
        }
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
            col: Some(clipped(e.field, MAX_COLUMN_CHARS)),
            code: e.code.to_owned(),
            message: clipped(e.message, MAX_MESSAGE_CHARS),
        })
        .collect()
}

/// `text` cut to `max` characters, marked with `…` where it was cut.
fn clipped(mut text: String, max: usize) -> String {
    if let Some((at, _)) = text.char_indices().nth(max) {
        text.truncate(at);
        text.push('…');
    }
    text
}

/// What a row did.
enum Outcome {
    Created,
    Updated,
    Unchanged,
}

/// A refusal of the API as the row's errors, with the codes of the API's problem types; a
/// failure of the database itself is returned as it is and stops the job.
fn refusal(error: StoreError) -> Result<Vec<FieldError>, StoreError> {
    let row = |code, message: String| vec![FieldError::new("row", code, message)];
    Ok(match error {
        StoreError::Invalid(errors) => errors.0,
        StoreError::NotFound => row("not-found", "no such record in your scope".to_owned()),
        StoreError::Forbidden(message) => row("forbidden", message),
        StoreError::Conflict(message) => row("conflict", message),
        StoreError::Exists { message, .. } => row("exists", message),
        StoreError::Overdraft { balance, amount } => row(
            "insufficient-funds",
            format!("the balance is {balance} rials; {amount} rials cannot be spent"),
        ),
        StoreError::VersionMismatch { .. } => vec![changed_meanwhile()],
        fatal @ (StoreError::Unavailable(_) | StoreError::Internal(_)) => return Err(fatal),
    })
}

/// The error of a row whose record another write changed while the row was imported.
fn changed_meanwhile() -> FieldError {
    FieldError::new(
        "row",
        "conflict",
        "the record changed while it was imported; import the row again",
    )
}

/// Applies a batch row by row through the API's own functions, each row in a savepoint: a
/// refused row leaves nothing behind and is reported with the API's error.
fn each_row<T: Clone>(
    conn: &mut DbConnection,
    runner: &Runner,
    batch: &[Parsed<T>],
    tally: &mut Tally,
    errors: &mut Vec<RowError>,
    mut one: impl FnMut(&mut DbConnection, T) -> Result<Outcome, StoreError>,
) -> Result<(), StoreError> {
    for (number, parsed) in batch {
        tally.read += 1;
        let outcome = match (parsed, &conn) {
            (Err(e), _) => Err(StoreError::Invalid(ValidationErrors(e.clone()))),
            (Ok(item), DbConnection::Sqlite(_)) => conn.transaction(|conn| one(conn, item.clone())),
            // On PostgreSQL the row's record may be written through the API after the row looked
            // for it; where a unique index holds its key (an enrolment, a purchase's reference, a
            // baseline, a seat), the row's own write then fails on it (see `Persons::tried_again`).
            // Tried once more, the row finds that record, as the next upload would. A conflict
            // is not told apart from a rule's refusal (a closed cohort), which comes out the
            // same the second time.
            (Ok(item), DbConnection::Pg(_)) => {
                match conn.transaction(|conn| one(conn, item.clone())) {
                    Err(StoreError::Conflict(_)) => {
                        conn.transaction(|conn| one(conn, item.clone()))
                    }
                    other => other,
                }
            }
        };
        match outcome {
            Ok(Outcome::Created) => tally.created += 1,
            Ok(Outcome::Updated) => tally.updated += 1,
            Ok(Outcome::Unchanged) => tally.unchanged += 1,
            Err(error) => {
                tally.failed += 1;
                errors.extend(row_errors(&runner.job, *number, refusal(error)?));
            }
        }
    }
    Ok(())
}

/// The error of a national ID that names nobody the rows may name.
fn no_person(column: &'static str) -> FieldError {
    FieldError::new(
        column,
        "not_found",
        "no person with this national ID in your scope",
    )
}

/// The person with this national ID, if in scope; otherwise the row's `column` is not found.
fn person_in_scope(
    conn: &mut DbConnection,
    scope: &Scope,
    national_id: &NationalId,
    column: &'static str,
) -> Result<PersonId, StoreError> {
    let not_found = || -> StoreError { no_person(column).into() };
    let found: Option<(String, Option<String>)> = persons::table
        .filter(persons::national_id.eq(national_id.as_str()))
        .select((persons::id, persons::merged_into))
        .first(conn)
        .optional()?;
    // A record merged into another answers with the one it was merged into, as on registration.
    let id: PersonId = found
        .map(|(id, merged_into)| merged_into.unwrap_or(id))
        .ok_or_else(not_found)?
        .parse()
        .map_err(|_| StoreError::Internal("persons: bad id".to_owned()))?;
    match crate::persons::get(conn, scope, id) {
        Ok(_) => Ok(id),
        Err(StoreError::NotFound) => Err(not_found()),
        Err(other) => Err(other),
    }
}

/// The person with this national ID seated in the cohort of `session`: `PUT
/// /sessions/{id}/attendance` marks the cohort's seats, whoever's neighbourhood they live in.
/// A session out of the caller's scope is not found, and one the caller may not mark refused,
/// before anyone is looked for in it.
fn seated_person(
    conn: &mut DbConnection,
    runner: &Runner,
    session: SessionId,
    national_id: &NationalId,
) -> Result<PersonId, StoreError> {
    let cohort = match crate::cohorts::session_in_scope(conn, &runner.scope, session) {
        Ok((_, cohort)) => cohort,
        Err(StoreError::NotFound) => {
            return Err(FieldError::new(
                "session_id",
                "not_found",
                "no such session in your scope",
            )
            .into());
        }
        Err(other) => return Err(other),
    };
    // Who may mark the cohort first, as the API checks: a seat is not shown to anyone else.
    Recorder {
        user: runner.user,
        role: runner.role,
    }
    .check(&cohort)?;
    let seated = persons::table
        .filter(
            persons::id.eq_any(
                registrations::table
                    .filter(registrations::cohort_id.eq(cohort.id.to_string()))
                    .select(registrations::person_id),
            ),
        )
        .into_boxed();
    person_among(conn, seated, national_id)?.ok_or_else(|| {
        StoreError::from(FieldError::new(
            "national_id",
            "not_registered",
            "nobody with this national ID has a seat in the session's cohort",
        ))
    })
}

/// The producer with this national ID linked to the supporter: `POST /purchases` buys from the
/// supporter's linked producers, whoever's neighbourhood they live in.
fn linked_producer(
    conn: &mut DbConnection,
    supporter: &str,
    national_id: &NationalId,
) -> Result<PersonId, StoreError> {
    let linked = persons::table
        .filter(
            persons::id.eq_any(
                producer_links::table
                    .filter(producer_links::supporter_id.eq(supporter))
                    .select(producer_links::person_id),
            ),
        )
        .into_boxed();
    person_among(conn, linked, national_id)?.ok_or_else(|| {
        StoreError::from(FieldError::new(
            "producer_national_id",
            "not_linked",
            "no producer with this national ID is linked to this supporter",
        ))
    })
}

/// The id of the person with this national ID among `persons` (narrowed to a cohort's seats, a
/// supporter's producers), if there is one.
fn person_among<'a>(
    conn: &mut DbConnection,
    persons: persons::BoxedQuery<'a, MultiBackend>,
    national_id: &'a NationalId,
) -> Result<Option<PersonId>, StoreError> {
    let id: Option<String> = persons
        .filter(persons::national_id.eq(national_id.as_str()))
        .select(persons::id)
        .first(conn)
        .optional()?;
    id.map(|id| {
        id.parse()
            .map_err(|_| StoreError::Internal("persons: bad id".to_owned()))
    })
    .transpose()
}

/// Renames the fields of an error the API reports on its own body (`producer_id`,
/// `marks[0].person_id`) to the file's columns.
fn renamed(error: StoreError, names: &[(&str, &'static str)]) -> StoreError {
    match error {
        StoreError::Invalid(mut errors) => {
            for e in &mut errors.0 {
                if let Some((_, column)) = names.iter().find(|(field, _)| *field == e.field) {
                    e.field = (*column).to_owned();
                }
            }
            StoreError::Invalid(errors)
        }
        other => other,
    }
}

struct Households;

impl Households {
    fn address(item: &NewHousehold, prefix: &str) -> String {
        format!(
            "{prefix}:{}:{}",
            item.neighbourhood_id, item.address.normalised
        )
    }
}

impl Kind for Households {
    type Item = NewHousehold;
    type Key = String;
    const KEY_COLUMN: &'static str = "postal_code";

    fn parse(
        get: &dyn Fn(&str) -> Option<String>,
        _today: NaiveDate,
    ) -> Result<NewHousehold, ValidationErrors> {
        import::parse_household(get)
    }

    fn key(item: &NewHousehold) -> String {
        match &item.postal_code {
            Some(code) => format!("postal:{code}"),
            None => Self::address(item, "address"),
        }
    }

    /// As `apply` matches: a row without a postal code is the household at its address, with a
    /// code or without; a row with one, the household with that code, or else the one at its
    /// address without a code. Two codes at one address are two homes (flats of a building).
    fn keys(item: &NewHousehold) -> Vec<(String, KeyUse)> {
        let key = (Self::key(item), KeyUse::Both);
        let coded = Self::address(item, "coded");
        match &item.postal_code {
            Some(_) => vec![
                key,
                (Self::address(item, "address"), KeyUse::Probe),
                (coded, KeyUse::Record),
            ],
            None => vec![key, (coded, KeyUse::Probe)],
        }
    }

    /// By its postal code, or else by its address.
    fn repeat_column(item: &NewHousehold, key: usize) -> &'static str {
        match (&item.postal_code, key) {
            (Some(_), 0) => "postal_code",
            _ => "address",
        }
    }

    /// A household in scope with the row's postal code, or else with its address in its
    /// neighbourhood, is updated; otherwise one is registered.
    fn apply(
        conn: &mut DbConnection,
        runner: &Runner,
        batch: &[Parsed<NewHousehold>],
        tally: &mut Tally,
        errors: &mut Vec<RowError>,
    ) -> Result<(), StoreError> {
        each_row(conn, runner, batch, tally, errors, |conn, new| {
            if let Some(view) = &runner.partner {
                // As `/partner/households`: a partner submits the households it found, in its
                // MoU's areas, and is told nothing of those registered (it may not read them).
                crate::partner_policies::submit_household(conn, &runner.context, view, new)?;
                return Ok(Outcome::Created);
            }
            let in_scope = || {
                let mut query = households::table
                    .select((
                        households::id,
                        households::neighbourhood_id,
                        households::address,
                        households::postal_code,
                    ))
                    .into_boxed();
                if let Scope::UserAreas(user) = runner.scope {
                    query = query.filter(households::neighbourhood_id.eq_any(assigned_to(user)));
                }
                // Of households registered twice (partners submit without matching), the first.
                query.order(households::id.asc())
            };
            let by_postal_code: Option<(String, String, String, Option<String>)> =
                match &new.postal_code {
                    Some(code) => in_scope()
                        .filter(households::postal_code.eq(code.clone()))
                        .first(conn)
                        .optional()?,
                    None => None,
                };
            // Else by the address, among households without a postal code (one with another
            // code at the same address is another home, e.g. a flat of the same building).
            let found = match by_postal_code {
                Some(found) => Some(found),
                None => {
                    let mut query = in_scope()
                        .filter(households::neighbourhood_id.eq(new.neighbourhood_id.to_string()))
                        .filter(households::address_normalised.eq(new.address.normalised.clone()));
                    if new.postal_code.is_some() {
                        query = query.filter(households::postal_code.is_null());
                    }
                    query.first(conn).optional()?
                }
            };
            let Some((id, neighbourhood, address, postal_code)) = found else {
                crate::households::create(conn, &runner.context, &runner.scope, new)?;
                return Ok(Outcome::Created);
            };
            if neighbourhood != new.neighbourhood_id.to_string() {
                return Err(FieldError::new(
                    "neighbourhood_id",
                    "household_differs",
                    "a household with this postal code is registered in another neighbourhood",
                )
                .into());
            }
            if address == new.address.written
                && (new.postal_code.is_none() || postal_code == new.postal_code)
            {
                return Ok(Outcome::Unchanged);
            }
            let id = id
                .parse()
                .map_err(|_| StoreError::Internal(format!("households: bad id {id}")))?;
            crate::households::update(
                conn,
                &runner.context,
                &runner.scope,
                id,
                None,
                HouseholdChanges {
                    address: Some(new.address),
                    postal_code: new.postal_code.map(Some),
                },
            )?;
            Ok(Outcome::Updated)
        })
    }
}

struct Assessments;

impl Kind for Assessments {
    type Item = ImportedAssessment;
    type Key = (String, AssessmentKind, NaiveDate);
    const KEY_COLUMN: &'static str = "assessed_on";

    fn parse(
        get: &dyn Fn(&str) -> Option<String>,
        today: NaiveDate,
    ) -> Result<ImportedAssessment, ValidationErrors> {
        import::parse_assessment(get, today)
    }

    fn key(item: &ImportedAssessment) -> Self::Key {
        (
            item.national_id.as_str().to_owned(),
            item.assessment.kind,
            item.assessment.assessed_on,
        )
    }

    /// The same person, kind and day again is unchanged; assessments are records of a visit and
    /// are not rewritten by an import.
    fn apply(
        conn: &mut DbConnection,
        runner: &Runner,
        batch: &[Parsed<ImportedAssessment>],
        tally: &mut Tally,
        errors: &mut Vec<RowError>,
    ) -> Result<(), StoreError> {
        each_row(conn, runner, batch, tally, errors, |conn, item| {
            let person = person_in_scope(conn, &runner.scope, &item.national_id, "national_id")?;
            if let Some(view) = &runner.partner {
                // As `/partner/persons/{id}/assessments`: only of persons it may see, recorded as
                // sent, never compared with answers it may not read.
                return match crate::partner_policies::submit_assessment(
                    conn,
                    &runner.context,
                    view,
                    person,
                    item.assessment,
                ) {
                    Ok(_) => Ok(Outcome::Created),
                    Err(StoreError::NotFound) => Err(no_person("national_id").into()),
                    Err(other) => Err(other),
                };
            }
            let new = item.assessment;
            let existing: Option<AssessmentRow> = assessments::table
                .filter(assessments::person_id.eq(person.to_string()))
                .filter(assessments::kind.eq(new.kind.as_str()))
                .filter(assessments::assessed_on.eq(new.assessed_on))
                .select(AssessmentRow::as_select())
                .first(conn)
                .optional()?;
            let Some(row) = existing else {
                crate::assessments::record(conn, &runner.context, &runner.scope, person, new)?;
                return Ok(Outcome::Created);
            };
            let services = new
                .welfare_services
                .iter()
                .map(|w| w.as_str())
                .collect::<Vec<_>>()
                .join(" ");
            let same = row.employment_status == new.employment_status.as_str()
                && row.income_band == new.income_band.as_str()
                && row.social_insurance == new.social_insurance
                && row.welfare_services == services
                && row.skills == new.skills
                && row.disability == new.disability
                && row.dependants == new.dependants;
            if same {
                Ok(Outcome::Unchanged)
            } else {
                Err(FieldError::new(
                    "assessed_on",
                    "assessment_differs",
                    format!(
                        "this person has a {} assessment of that day with other answers; an import does not rewrite an assessment",
                        new.kind
                    ),
                )
                .into())
            }
        })
    }
}

struct Enrolments;

impl Kind for Enrolments {
    type Item = ImportedEnrolment;
    type Key = (HouseholdId, ProgrammeId);
    const KEY_COLUMN: &'static str = "household_id";

    fn parse(
        get: &dyn Fn(&str) -> Option<String>,
        today: NaiveDate,
    ) -> Result<ImportedEnrolment, ValidationErrors> {
        import::parse_enrolment(get, today)
    }

    fn key(item: &ImportedEnrolment) -> Self::Key {
        (item.household_id, item.programme_id)
    }

    /// A household not yet in the programme is identified; then, if the row names another
    /// state, the enrolment makes that one transition by the API's rules.
    fn apply(
        conn: &mut DbConnection,
        runner: &Runner,
        batch: &[Parsed<ImportedEnrolment>],
        tally: &mut Tally,
        errors: &mut Vec<RowError>,
    ) -> Result<(), StoreError> {
        each_row(conn, runner, batch, tally, errors, |conn, item| {
            let existing: Option<(String, String)> = enrolments::table
                .filter(enrolments::programme_id.eq(item.programme_id.to_string()))
                .filter(enrolments::household_id.eq(item.household_id.to_string()))
                .select((enrolments::id, enrolments::state))
                .first(conn)
                .optional()?;
            let (id, state, created) = match existing {
                Some((id, state)) => {
                    let id: EnrolmentId = id
                        .parse()
                        .map_err(|_| StoreError::Internal(format!("enrolments: bad id {id}")))?;
                    // Out of scope reads as a household not found, as on create.
                    match crate::enrolments::get(conn, &runner.scope, id) {
                        Ok(_) => {}
                        Err(StoreError::NotFound) => {
                            return Err(FieldError::new(
                                "household_id",
                                "not_found",
                                "no such household in your scope",
                            )
                            .into());
                        }
                        Err(other) => return Err(other),
                    }
                    let state: EnrolmentState = state.parse().map_err(|_| {
                        StoreError::Internal(format!("enrolments: bad state {state}"))
                    })?;
                    (id, state, false)
                }
                None => {
                    let enrolment = crate::enrolments::create(
                        conn,
                        &runner.context,
                        &runner.scope,
                        item.programme_id,
                        item.household_id,
                        item.on,
                        item.reason.clone(),
                    )?;
                    (enrolment.id, enrolment.state, true)
                }
            };
            let unmoved = if created {
                Outcome::Created
            } else {
                Outcome::Unchanged
            };
            let Some(wanted) = item.state else {
                return Ok(unmoved);
            };
            if state == wanted {
                return Ok(unmoved);
            }
            let step = crate::enrolments::Step {
                id,
                expected_version: None,
                to: wanted,
                on: item.on,
                reason: item.reason,
            };
            let outcome =
                crate::enrolments::transition(conn, &runner.context, &runner.scope, step)?;
            match outcome {
                TransitionOutcome::Done(_) if created => Ok(Outcome::Created),
                TransitionOutcome::Done(_) => Ok(Outcome::Updated),
                TransitionOutcome::Refused(refusal) => {
                    let code = match refusal {
                        TransitionError::NotAllowed { .. } => "transition-not-allowed",
                        TransitionError::ConsentRequired { .. } => "conflict",
                        TransitionError::BeforePrevious { .. } => "before_previous",
                    };
                    let column = if code == "before_previous" {
                        "effective_on"
                    } else {
                        "state"
                    };
                    Err(FieldError::new(column, code, refusal.to_string()).into())
                }
            }
        })
    }
}

struct Attendance;

impl Kind for Attendance {
    type Item = ImportedMark;
    type Key = (SessionId, String);
    const KEY_COLUMN: &'static str = "national_id";

    fn parse(
        get: &dyn Fn(&str) -> Option<String>,
        _today: NaiveDate,
    ) -> Result<ImportedMark, ValidationErrors> {
        import::parse_attendance(get)
    }

    fn key(item: &ImportedMark) -> Self::Key {
        (item.session_id, item.national_id.as_str().to_owned())
    }

    /// A mark as `PUT /sessions/{id}/attendance` records it: only the cohort's own trainer or
    /// staff of its neighbourhood, only for seated people, never in a closed cohort.
    fn apply(
        conn: &mut DbConnection,
        runner: &Runner,
        batch: &[Parsed<ImportedMark>],
        tally: &mut Tally,
        errors: &mut Vec<RowError>,
    ) -> Result<(), StoreError> {
        each_row(conn, runner, batch, tally, errors, |conn, item| {
            let person = seated_person(conn, runner, item.session_id, &item.national_id)?;
            let current: Option<String> = attendance::table
                .find((item.session_id.to_string(), person.to_string()))
                .select(attendance::mark)
                .first(conn)
                .optional()?;
            let marks = [Mark {
                person_id: person,
                mark: item.mark,
            }];
            crate::cohorts::record_attendance(
                conn,
                &runner.context,
                &runner.scope,
                Recorder {
                    user: runner.user,
                    role: runner.role,
                },
                item.session_id,
                &marks,
            )
            .map_err(|e| match e {
                StoreError::NotFound => {
                    FieldError::new("session_id", "not_found", "no such session in your scope")
                        .into()
                }
                other => renamed(other, &[("marks[0].person_id", "national_id")]),
            })?;
            Ok(match current {
                None => Outcome::Created,
                Some(mark) if mark == item.mark.as_str() => Outcome::Unchanged,
                Some(_) => Outcome::Updated,
            })
        })
    }
}

struct Purchases;

impl Kind for Purchases {
    type Item = ImportedPurchase;
    type Key = (String, String);
    const KEY_COLUMN: &'static str = "reference";

    fn parse(
        get: &dyn Fn(&str) -> Option<String>,
        _today: NaiveDate,
    ) -> Result<ImportedPurchase, ValidationErrors> {
        import::parse_purchase(get)
    }

    fn key(item: &ImportedPurchase) -> Self::Key {
        (item.supporter_id.clone(), item.reference.clone())
    }

    /// An order as `POST /purchases` places it, charged to the supporter's funds; an order whose
    /// reference the supporter has already is unchanged if it is the same order.
    fn apply(
        conn: &mut DbConnection,
        runner: &Runner,
        batch: &[Parsed<ImportedPurchase>],
        tally: &mut Tally,
        errors: &mut Vec<RowError>,
    ) -> Result<(), StoreError> {
        let access = Access::new(runner.scope.clone(), runner.role, runner.user);
        each_row(conn, runner, batch, tally, errors, |conn, item| {
            let supporter = match crate::supporters::get(conn, &access, &item.supporter_id) {
                Err(StoreError::NotFound) => {
                    return Err(FieldError::new(
                        "supporter_id",
                        "not_found",
                        "no such supporter acting for you",
                    )
                    .into());
                }
                other => other?,
            };
            let earlier: Option<(String, String, NaiveDate)> = purchases::table
                .filter(purchases::supporter_id.eq(&supporter.id))
                .filter(purchases::reference.eq(&item.reference))
                .inner_join(persons::table.on(persons::id.eq(purchases::producer_id)))
                .select((purchases::id, persons::national_id, purchases::ordered_on))
                .first(conn)
                .optional()?;
            if let Some((earlier, earlier_producer, ordered_on)) = earlier {
                // The same order again: the same producer, day and line (a description the row
                // leaves out is not compared). Not checked again as a new order: the file may be
                // sent again after the supporter's designation has ended.
                type LineRow = (Option<String>, String, String, i64, i64);
                let lines: Vec<LineRow> = purchase_lines::table
                    .filter(purchase_lines::purchase_id.eq(&earlier))
                    .select((
                        purchase_lines::product_id,
                        purchase_lines::kind,
                        purchase_lines::description,
                        purchase_lines::quantity,
                        purchase_lines::unit_price,
                    ))
                    .load(conn)?;
                let same_line = |(product, kind, description, quantity, unit_price): &LineRow| {
                    *product == item.product_id
                        && kind == item.item_kind.as_str()
                        && item.description.as_ref().is_none_or(|d| d == description)
                        && *quantity == item.line.quantity
                        && *unit_price == item.line.unit_price
                };
                let same = earlier_producer == item.producer.as_str()
                    && ordered_on == item.ordered_on
                    && lines.len() == 1
                    && lines.iter().all(same_line);
                return if same {
                    Ok(Outcome::Unchanged)
                } else {
                    Err(FieldError::new(
                        "reference",
                        "reference_used",
                        "the supporter has an order with this reference already, with other values",
                    )
                    .into())
                };
            }
            // In the API's order: the day, then the producer.
            crate::purchases::check_day(&supporter, item.ordered_on, crate::now().date())?;
            let producer = linked_producer(conn, &supporter.id, &item.producer)?;
            let new = NewPurchase {
                supporter_id: supporter.id.clone(),
                producer_id: producer,
                ordered_on: item.ordered_on,
                lines: vec![NewLine {
                    product_id: item.product_id,
                    kind: item.item_kind,
                    description: item.description,
                    quantity: item.line.quantity,
                    unit_price: item.line.unit_price,
                }],
                reference: Some(item.reference),
            };
            crate::purchases::create(conn, &runner.context, &access, new).map_err(|e| {
                renamed(
                    e,
                    &[
                        ("producer_id", "producer_national_id"),
                        ("lines[0].product_id", "product_id"),
                        ("lines[0].description", "description"),
                        ("lines[0].quantity", "quantity"),
                        ("lines[0].unit_price", "unit_price"),
                        ("lines[0].kind", "item_kind"),
                    ],
                )
            })?;
            Ok(Outcome::Created)
        })
    }
}

struct Persons;

impl Kind for Persons {
    type Item = NewPerson;
    // The first nine digits of the national ID, which decide the tenth (the check digit). With
    // the row, 8 bytes a key: 1,800,000 of them fit the table's 2²¹ slots (19 MB), which hold
    // 1,835,008.
    type Key = u32;
    const KEY_COLUMN: &'static str = "national_id";
    const KEYS_IN_MEMORY: usize = 1_800_000;

    fn parse(
        get: &dyn Fn(&str) -> Option<String>,
        today: NaiveDate,
    ) -> Result<NewPerson, ValidationErrors> {
        import::parse_person(get, today)
    }

    fn key(item: &NewPerson) -> u32 {
        // A parsed national ID is ten ASCII digits.
        let nine = item.national_id.as_str().get(..9).unwrap_or_default();
        nine.parse().unwrap_or_default()
    }

    fn apply(
        conn: &mut DbConnection,
        runner: &Runner,
        batch: &[Parsed<NewPerson>],
        tally: &mut Tally,
        errors: &mut Vec<RowError>,
    ) -> Result<(), StoreError> {
        register_persons(conn, runner, batch, tally, errors)
    }

    /// On PostgreSQL a person of the batch (or a household's head) may be registered through the
    /// API after the batch looked for her, and the batch's insert then fails on the unique index.
    /// The API refuses only its one request; the batch is tried again, finds her registered, as
    /// the next upload of the file would.
    fn tried_again(error: &StoreError) -> bool {
        matches!(error, StoreError::Conflict(_))
    }
}

/// Applies one batch of person rows with the API's rules: a known national ID updates that person
/// (their household stays: moving is an explicit action), a new one registers them. Written in
/// bulk, not row by row: persons are the large files.
fn register_persons(
    conn: &mut DbConnection,
    runner: &Runner,
    batch: &[Parsed<NewPerson>],
    tally: &mut Tally,
    errors: &mut Vec<RowError>,
) -> Result<(), StoreError> {
    let (scope, job, context) = (&runner.scope, runner.job.as_str(), &runner.context);
    let good: Vec<&NewPerson> = batch.iter().filter_map(|(_, p)| p.as_ref().ok()).collect();
    let household_ids: Vec<String> = good
        .iter()
        .map(|p| p.household_id.to_string())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let mut places: HashMap<String, String> = HashMap::new();
    for ids in household_ids.chunks(LOOKUP_CHUNK) {
        let query = households::table
            .filter(households::id.eq_any(ids))
            .select((households::id, households::neighbourhood_id));
        places.extend(match scope {
            Scope::All => query.load::<(String, String)>(conn)?,
            Scope::UserAreas(user) => query
                .filter(households::neighbourhood_id.eq_any(assigned_to(*user)))
                .load::<(String, String)>(conn)?,
        });
    }
    let national_ids: Vec<&str> = good.iter().map(|p| p.national_id.as_str()).collect();
    let mut existing: HashMap<String, PersonRow> = HashMap::new();
    for ids in national_ids.chunks(LOOKUP_CHUNK) {
        existing.extend(
            persons::table
                .filter(persons::national_id.eq_any(ids))
                .select(PersonRow::as_select())
                .load::<PersonRow>(conn)?
                .into_iter()
                .map(|p| (p.national_id.clone(), p)),
        );
    }
    // Heads only matter for rows that bring one. The role is a literal, not a bound value, so
    // that the planner can use the partial index of heads instead of every member's row.
    let head_households: Vec<String> = good
        .iter()
        .filter(|p| p.household_role == HouseholdRole::Head)
        .map(|p| p.household_id.to_string())
        .collect();
    let mut with_head: HashSet<String> = HashSet::new();
    for ids in head_households.chunks(LOOKUP_CHUNK) {
        with_head.extend(
            persons::table
                .filter(persons::household_id.eq_any(ids))
                .filter(diesel::dsl::sql::<diesel::sql_types::Bool>(
                    "persons.household_role = 'head'",
                ))
                .select(persons::household_id)
                .load::<Option<String>>(conn)?
                .into_iter()
                .flatten(),
        );
    }
    let now = crate::now();
    let mut new_rows = Vec::new();
    let mut memberships = Vec::new();
    let mut updated_ids = Vec::new();
    'rows: for (number, parsed) in batch {
        tally.read += 1;
        // A refused row breaks out with its errors; every other path goes on to the next row.
        let refused = 'row: {
            let person = match parsed {
                Ok(person) => person,
                Err(e) => break 'row e.clone(),
            };
            let household = person.household_id.to_string();
            let Some(neighbourhood) = places.get(&household) else {
                break 'row vec![FieldError::new(
                    "household_id",
                    "not_found",
                    "no such household in your scope",
                )];
            };
            if let Some(current) = existing.get(person.national_id.as_str()) {
                // As registration through the API: a merged record is not updated; the row is told
                // the person it was merged into.
                if let Some(survivor) = &current.merged_into {
                    break 'row vec![FieldError::new(
                        "national_id",
                        "exists",
                        format!(
                            "this national ID is of a record merged into person {survivor}; update that person"
                        ),
                    )];
                }
                if current.household_id.as_deref() != Some(household.as_str())
                    || current.household_role.as_deref() != Some(person.household_role.as_str())
                {
                    break 'row vec![FieldError::new(
                        "household_id",
                        "household_differs",
                        "this person is registered in another household or role; moving a member is an explicit action (POST /api/v1/persons/{id}/move)",
                    )];
                }
                // As `PATCH /persons/{id}`: an optional field the row does not give (no column, an
                // empty cell) is left as it is, not cleared.
                let mobile = person
                    .mobile
                    .as_ref()
                    .map(|m| m.to_string())
                    .or_else(|| current.mobile.clone());
                let education = person
                    .education
                    .map(|e| e.as_str().to_owned())
                    .or_else(|| current.education.clone());
                if person.first_name.written == current.first_name
                    && person.last_name.written == current.last_name
                    && person.birth_date == current.birth_date
                    && person.sex.as_str() == current.sex
                    && mobile == current.mobile
                    && education == current.education
                {
                    tally.unchanged += 1;
                    continue 'rows;
                }
                // Only the version read above: a change made meanwhile (a PATCH) is not
                // overwritten.
                let written = diesel::update(
                    persons::table
                        .find(&current.id)
                        .filter(persons::version.eq(current.version)),
                )
                .set((
                    persons::first_name.eq(&person.first_name.written),
                    persons::last_name.eq(&person.last_name.written),
                    persons::first_name_normalised.eq(&person.first_name.normalised),
                    persons::last_name_normalised.eq(&person.last_name.normalised),
                    persons::birth_date.eq(person.birth_date),
                    persons::sex.eq(person.sex.as_str()),
                    persons::mobile.eq(mobile),
                    persons::education.eq(education),
                    persons::version.eq(current.version + 1),
                    persons::updated_at.eq(now),
                ))
                .execute(conn)?;
                if written == 0 {
                    break 'row vec![changed_meanwhile()];
                }
                updated_ids.push(current.id.clone());
                tally.updated += 1;
                continue 'rows;
            }
            if person.household_role == HouseholdRole::Head && !with_head.insert(household.clone())
            {
                break 'row vec![FieldError::new(
                    "household_role",
                    "exists",
                    "the household has a head already; change it with POST /api/v1/households/{id}/head",
                )];
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
            continue 'rows;
        };
        tally.failed += 1;
        errors.extend(row_errors(job, *number, refused));
    }
    let newcomers = Newcomers::of(&new_rows);
    copy_insert!(conn, persons::table, new_rows);
    copy_insert!(conn, household_memberships::table, memberships);
    crate::changes::record_many(conn, context, Resource::Persons, &newcomers.id, Op::Created)?;
    crate::changes::record_many(conn, context, Resource::Persons, &updated_ids, Op::Updated)?;
    queue_duplicates(conn, &newcomers, now)
}

/// What the possible-duplicates statement needs of the persons a batch registers, a column each:
/// sent with the statement (PostgreSQL arrays, a JSON array on SQLite) instead of read back from
/// `persons` by id, which PostgreSQL's planner did by scanning the whole table once per batch.
struct Newcomers {
    id: Vec<String>,
    last_name: Vec<String>,
    first_name: Vec<String>,
    birth_date: Vec<NaiveDate>,
    neighbourhood_id: Vec<String>,
}

impl Newcomers {
    fn of(rows: &[PersonRow]) -> Self {
        Self {
            id: rows.iter().map(|p| p.id.clone()).collect(),
            last_name: rows
                .iter()
                .map(|p| p.last_name_normalised.clone())
                .collect(),
            first_name: rows
                .iter()
                .map(|p| p.first_name_normalised.clone())
                .collect(),
            birth_date: rows.iter().map(|p| p.birth_date).collect(),
            // Every imported person joins a household, so has a neighbourhood.
            neighbourhood_id: rows
                .iter()
                .map(|p| p.neighbourhood_id.clone().unwrap_or_default())
                .collect(),
        }
    }
}

/// Queues the possible duplicates of newly imported persons as registration through the API
/// does (the same normalised names, born the same year, living in the same district; see
/// `persons::possible_duplicates`): one set-based statement per batch, served by the index on
/// names and birth date. Two new persons of one batch make one pair, not two.
fn queue_duplicates(
    conn: &mut DbConnection,
    new: &Newcomers,
    now: NaiveDateTime,
) -> Result<(), StoreError> {
    use diesel::sql_types::{Array, Date, Text, Timestamp};
    if new.id.is_empty() {
        return Ok(());
    }
    // At most 20 candidates for each new person, as the API lists: a file of one name over and
    // over must not queue every pair of it. The candidates of one new person come from the index
    // on names and birth date, in its order: of more than 20, these are not always the 20 first
    // registered that the API would queue, as ordering by registration would read every
    // candidate of a common name (a file of one name was quadratic). PostgreSQL needs a LATERAL
    // join to look them up per person (a correlated IN with a LIMIT would be run for every
    // pair), SQLite runs that IN per person.
    // `in_batch` is the batch's ids: of two new persons, only the later one names the other.
    let candidates = |same_year: &str, in_batch: &str| {
        format!(
            "SELECT o.id FROM persons o
             JOIN areas o_area ON o_area.id = o.neighbourhood_id
             WHERE o.last_name_normalised = new.last_name_normalised
               AND o.first_name_normalised = new.first_name_normalised
               AND {same_year}
               AND o_area.parent_id = new_area.parent_id
               AND o.id <> new.id
               AND (o.id < new.id OR NOT {in_batch})
             LIMIT 20"
        )
    };
    let insert = "INSERT INTO duplicate_candidates
                      (person_id, candidate_id, neighbourhood_id, status, detected_at)";
    match conn {
        DbConnection::Pg(pg) => {
            let candidates = candidates(
                "o.birth_date >= date_trunc('year', new.birth_date)::date
                   AND o.birth_date < (date_trunc('year', new.birth_date) + interval '1 year')::date",
                "o.id = ANY ($2)",
            );
            diesel::sql_query(format!(
                "{insert}
                 SELECT new.id, other.id, new.neighbourhood_id, 'open', $1
                 FROM unnest($2, $3, $4, $5, $6)
                     AS new (id, last_name_normalised, first_name_normalised, birth_date,
                             neighbourhood_id)
                 JOIN areas new_area ON new_area.id = new.neighbourhood_id
                 CROSS JOIN LATERAL ({candidates}) other"
            ))
            .bind::<Timestamp, _>(now)
            .bind::<Array<Text>, _>(&new.id)
            .bind::<Array<Text>, _>(&new.last_name)
            .bind::<Array<Text>, _>(&new.first_name)
            .bind::<Array<Date>, _>(&new.birth_date)
            .bind::<Array<Text>, _>(&new.neighbourhood_id)
            .execute(pg)?;
        }
        DbConnection::Sqlite(sqlite) => {
            // One JSON array of [id, last, first, birth date, neighbourhood] rows: SQLite has no
            // arrays, and a statement may bind at most 32,766 values.
            let rows = serde_json::Value::Array(
                (0..new.id.len())
                    .map(|i| {
                        json!([
                            new.id[i],
                            new.last_name[i],
                            new.first_name[i],
                            new.birth_date[i].to_string(),
                            new.neighbourhood_id[i]
                        ])
                    })
                    .collect(),
            )
            .to_string();
            // Dates are stored as YYYY-MM-DD text, so a year is a range of text.
            let candidates = candidates(
                "o.birth_date >= substr(new.birth_date, 1, 4) || '-01-01'
                   AND o.birth_date <= substr(new.birth_date, 1, 4) || '-12-31'",
                "o.id IN (SELECT id FROM new)",
            );
            diesel::sql_query(format!(
                "{insert}
                 WITH new (id, last_name_normalised, first_name_normalised, birth_date,
                           neighbourhood_id) AS MATERIALIZED (
                     SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4
                     FROM json_each(?2))
                 SELECT new.id, other.id, new.neighbourhood_id, 'open', ?1
                 FROM new
                 JOIN areas new_area ON new_area.id = new.neighbourhood_id
                 JOIN persons other ON other.id IN ({candidates})"
            ))
            .bind::<Timestamp, _>(now)
            .bind::<Text, _>(rows)
            .execute(sqlite)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clipped_text_is_cut_at_a_character_and_marked() {
        assert_eq!(clipped("abc".to_owned(), 3), "abc");
        assert_eq!(clipped("abcd".to_owned(), 3), "abc…");
        assert_eq!(clipped("زهرای".to_owned(), 4), "زهرا…");
        let long = row_errors(
            "job",
            2,
            vec![FieldError::new(
                "k".repeat(100),
                "unknown",
                "v".repeat(5000),
            )],
        );
        assert_eq!(long[0].col.as_deref().map(|c| c.chars().count()), Some(65));
        assert_eq!(long[0].message.chars().count(), MAX_MESSAGE_CHARS + 1);
    }

    /// A job is taken for stopped only if it is still as old as the caller saw it: two resumes
    /// that both read a job left running long ago, the first of which has set it running again,
    /// do not both take it (the second would stop the runner the first was just handing it to).
    #[test]
    fn a_job_is_taken_for_stopped_only_while_it_is_old() {
        let dir = tempfile::tempdir().expect("folder");
        let url = format!("sqlite://{}/tavana.db", dir.path().display());
        let db = Database::open(
            &url,
            &crate::PoolOptions {
                max_size: 2,
                acquire_timeout: Duration::from_secs(5),
            },
        )
        .expect("database");
        let mut conn = db.get().expect("connection");
        let new = NewJob {
            id: uuid::Uuid::now_v7().to_string(),
            kind: ImportKind::Persons,
            mode: ImportMode::Commit,
            atomicity: Atomicity::Rows,
            format: ImportFormat::Csv,
            principal: "test".to_owned(),
            context: AuditContext::system(),
            scope: Scope::All,
            role: None,
            idempotency_key: None,
            checksum: "checksum".to_owned(),
            file_path: "unread".to_owned(),
        };
        let (job, _) = start(&mut conn, new).expect("started");
        // A cutoff not after the moment it was set running (as a resume's, taken before another
        // resume set it running again) leaves it; a later one takes it.
        let seen = job.updated_at;
        let why = "found running with no process running it";
        assert!(!stopped_before(&mut conn, &job.id, why, Some(seen)).expect("checked"));
        assert_eq!(get(&mut conn, &job.id).expect("job").state, "running");
        let later = seen + chrono::TimeDelta::seconds(1);
        assert!(stopped_before(&mut conn, &job.id, why, Some(later)).expect("checked"));
        assert_eq!(get(&mut conn, &job.id).expect("job").state, "interrupted");
    }

    /// The sizes of the batches `rows` of enrolments are read in.
    fn batch_sizes(rows: impl Iterator<Item = Result<Row, StoreError>>) -> Vec<usize> {
        let mut rows = rows;
        let mut seen = Seen::new(100);
        let mut batches = Batches::<Enrolments> {
            rows: &mut rows,
            skip: Skip::Rows(0),
            position: 0,
            last_line: 0,
            seen: &mut seen,
            today: NaiveDate::from_ymd_opt(2026, 12, 6).expect("date"),
        };
        let mut sizes = Vec::new();
        while let Some(batch) = batches.next_batch().expect("read") {
            sizes.push(batch.len());
        }
        sizes
    }

    /// Rows of 1 MiB (a long `reason`): a batch ends at 16 MiB of them, not at 10,000 rows; so
    /// do rows that could not be read, with their errors (a JSON key a row long).
    #[test]
    fn a_batch_ends_once_its_rows_hold_enough_text() {
        let reason = "x".repeat(1024 * 1024);
        let read = (2..=41).map(|number| {
            Ok(Row {
                number,
                values: Ok([
                    ("household_id", uuid::Uuid::now_v7().to_string()),
                    ("programme_id", uuid::Uuid::now_v7().to_string()),
                    ("reason", reason.clone()),
                ]
                .into_iter()
                .collect()),
            })
        });
        assert_eq!(batch_sizes(read), [16, 16, 8]);
        let unread = (2..=41).map(|number| {
            Ok(Row {
                number,
                values: Err(FieldError::new(
                    "k".repeat(1024 * 1024),
                    "unknown_column",
                    "unknown",
                )),
            })
        });
        assert_eq!(batch_sizes(unread), [16, 16, 8]);
    }
}
