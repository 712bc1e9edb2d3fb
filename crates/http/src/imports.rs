//! `/api/v1/imports`: batch imports of CSV or JSON Lines files. The body is streamed to a spool
//! file (never held in memory) while its SHA-256 is computed; a background task then applies the
//! rows in batches (see `tavana_persistence::imports`) and the job can be followed, its errors
//! downloaded as CSV, and an interrupted job resumed.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tavana_domain::FieldError;
use tavana_domain::access::{Action, Role};
use tavana_domain::import::{
    Atomicity, ImportFormat, ImportKind, ImportMode, JobState, check_header, columns,
};
use tavana_persistence::imports::{self, Job, NewJob, Row, RowError};
use tavana_persistence::partner_policies;
use tavana_persistence::{Database, DbConnection, StoreError};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::{Auth, Caller, Principal, perm};
use crate::conventions::csv_response;
use crate::error::{ApiError, Problem};
use crate::idempotency::IdempotencyKey;
use crate::{AppState, with_db};

pub fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(create)
        .service(read)
        .service(errors_csv)
        .service(resume);
}

api_enum!(
    /// What the file holds.
    ImportKindDto => ImportKind {
        Households => "households",
        Persons => "persons",
        Assessments => "assessments",
        Enrolments => "enrolments",
        Attendance => "attendance",
        Purchases => "purchases",
    }
);
api_enum!(
    /// `validate` checks every row and writes nothing; `commit` writes.
    ImportModeDto => ImportMode { Validate => "validate", Commit => "commit" }
);
api_enum!(
    /// `all`: nothing is written if any row fails; `rows`: good rows are written.
    AtomicityDto => Atomicity { All => "all", Rows => "rows" }
);

/// The largest file accepted: 2 GiB.
const MAX_FILE: u64 = 2 * 1024 * 1024 * 1024;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ImportQuery {
    pub kind: ImportKindDto,
    pub mode: ImportModeDto,
    /// Default `all`.
    pub atomicity: Option<AtomicityDto>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ImportErrorResponse {
    /// CSV: the line of the row (the header is line 1); JSON Lines: the line; 0 for the file.
    pub row: i64,
    pub column: Option<String>,
    pub code: String,
    pub message: String,
}

impl From<RowError> for ImportErrorResponse {
    fn from(e: RowError) -> Self {
        Self {
            row: e.row_no,
            column: e.col,
            code: e.code,
            message: e.message,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ImportJobResponse {
    pub id: String,
    pub kind: String,
    pub mode: String,
    pub atomicity: String,
    pub format: String,
    /// `running`, `completed`, `failed` (the file itself was refused) or `interrupted`.
    pub state: String,
    /// SHA-256 of the file.
    pub checksum: String,
    /// Rows read so far. A `validate` run or a job in atomicity `all` is one transaction: while
    /// it runs, `read` and `failed` grow (when asked of the replica running it), and the other
    /// counts come at its end.
    pub read: i64,
    pub created: i64,
    pub updated: i64,
    pub unchanged: i64,
    pub failed: i64,
    pub message: Option<String>,
    /// The first 100 errors, in row order. The first 10,000 are kept, at `errors_url` as CSV;
    /// `failed` counts every failed row, those past them too.
    pub errors: Vec<ImportErrorResponse>,
    pub errors_url: String,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

fn response(job: Job, errors: Vec<RowError>) -> ImportJobResponse {
    let job = imports::live(job);
    ImportJobResponse {
        errors_url: format!("/api/v1/imports/{}/errors", job.id),
        id: job.id,
        kind: job.kind,
        mode: job.mode,
        atomicity: job.atomicity,
        format: job.format,
        state: job.state,
        checksum: job.checksum,
        read: job.rows_read,
        created: job.created,
        updated: job.updated,
        unchanged: job.unchanged,
        failed: job.failed,
        message: job.message,
        errors: errors.into_iter().map(Into::into).collect(),
        created_at: job.created_at.and_utc(),
        finished_at: job.finished_at.map(|t| t.and_utc()),
    }
}

fn principal(caller: &Caller) -> String {
    match &caller.principal {
        Principal::User { id, .. } => format!("user:{id}"),
        Principal::Client { client_id, .. } => format!("client:{client_id}"),
    }
}

fn too_large() -> ApiError {
    ApiError::PayloadTooLarge("an import file is at most 2 GiB".to_owned())
}

/// Whether the file is sent gzip-compressed (`Content-Encoding: gzip`). Another encoding is
/// refused: its bytes would be read as the file.
fn gzipped(req: &HttpRequest) -> Result<bool, ApiError> {
    let Some(value) = req.headers().get(header::CONTENT_ENCODING) else {
        return Ok(false);
    };
    match value
        .to_str()
        .map(|v| v.trim().to_ascii_lowercase())
        .as_deref()
    {
        Ok("identity") => Ok(false),
        Ok("gzip" | "x-gzip") => Ok(true),
        _ => Err(ApiError::UnsupportedMediaType(
            "send the file as it is, or compressed with gzip".to_owned(),
        )),
    }
}

/// An upload's bytes on their way to its spooled copy: unpacked if sent gzip-compressed, then
/// counted, hashed and written. Unpacked by a decoder that writes its output in pieces of 32 KiB,
/// so that the size is checked as the file grows: a small compressed file can fill neither the
/// memory nor the disk.
enum Unpack {
    Plain(Spooled),
    Gzip(Box<flate2::write::MultiGzDecoder<Spooled>>),
}

/// The spooled copy as it is written.
struct Spooled {
    file: File,
    hasher: Sha256,
    size: u64,
    cap: u64,
}

/// An upload past its size cap (`MAX_FILE`, unpacked).
#[derive(Debug)]
struct OverCap;

impl std::fmt::Display for OverCap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the file is larger than allowed")
    }
}

impl std::error::Error for OverCap {}

impl Spooled {
    fn new(file: File, cap: u64) -> Self {
        Self {
            file,
            hasher: Sha256::new(),
            size: 0,
            cap,
        }
    }
}

impl Write for Spooled {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.size += buf.len() as u64;
        if self.size > self.cap {
            return Err(std::io::Error::other(OverCap));
        }
        self.hasher.update(buf);
        self.file.write_all(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

impl Unpack {
    fn new(spooled: Spooled, gzip: bool) -> Self {
        if gzip {
            Unpack::Gzip(Box::new(flate2::write::MultiGzDecoder::new(spooled)))
        } else {
            Unpack::Plain(spooled)
        }
    }

    fn feed(&mut self, bytes: &[u8]) -> Result<(), ApiError> {
        match self {
            Unpack::Plain(spooled) => spooled.write_all(bytes),
            Unpack::Gzip(decoder) => decoder.write_all(bytes),
        }
        .map_err(unpack_error)
    }

    /// The copy, once the compressed file is known to be whole (its checksum read and matched).
    fn finish(self) -> Result<Spooled, ApiError> {
        match self {
            Unpack::Plain(spooled) => Ok(spooled),
            Unpack::Gzip(decoder) => decoder.finish().map_err(unpack_error),
        }
    }
}

fn unpack_error(error: std::io::Error) -> ApiError {
    if error.get_ref().is_some_and(|e| e.is::<OverCap>()) {
        too_large()
    } else if matches!(
        error.kind(),
        // A body cut short within its compressed data, or empty, ends the stream unfinished.
        std::io::ErrorKind::InvalidInput
            | std::io::ErrorKind::InvalidData
            | std::io::ErrorKind::UnexpectedEof
    ) || error
        .get_ref()
        .is_some_and(|e| e.is::<flate2::DecompressError>())
    {
        ApiError::BadRequest(format!(
            "the compressed file cannot be unpacked (cut short, or not gzip): {error}"
        ))
    } else {
        spool_error(error)
    }
}

/// Makes the spool folder, and a spooled file in it, readable by the service's user alone: the
/// files hold national IDs and mobiles, and an interrupted job's stays. (A folder that already
/// exists keeps its mode: it may be one the service does not own alone.)
fn spool_file(dir: &Path, name: &str) -> std::io::Result<(PathBuf, File)> {
    let mut folder = std::fs::DirBuilder::new();
    folder.recursive(true);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        folder.mode(0o700);
        options.mode(0o600);
    }
    folder.create(dir)?;
    let path = dir.join(name);
    let file = options.open(&path)?;
    Ok((path, file))
}

/// A failure to keep the spooled copy: a full disk (or quota) is the server's, not the file's.
fn spool_error(error: std::io::Error) -> ApiError {
    match error.kind() {
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => {
            ApiError::InsufficientStorage(format!("spooling an upload: {error}"))
        }
        _ => ApiError::internal(error),
    }
}

/// Bytes of an upload handed to a blocking thread at a time: the worker only waits for them.
const SPOOL_PIECE: usize = 256 * 1024;

fn format_of(req: &HttpRequest) -> Result<ImportFormat, ApiError> {
    let header = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let mut parts = header.split(';').map(str::trim);
    let content_type = parts.next().unwrap_or("");
    // Files are read as UTF-8; one declared in another character set (Windows Arabic, say)
    // would be read as garbage row after row.
    if let Some(charset) = parts.find_map(|p| p.strip_prefix("charset=")) {
        let charset = charset.trim_matches('"');
        if !matches!(charset, "utf-8" | "utf8" | "us-ascii") {
            return Err(ApiError::UnsupportedMediaType(format!(
                "import files are read as UTF-8, not {charset}; save the file as UTF-8 (in Excel: \"CSV UTF-8\")"
            )));
        }
    }
    match content_type {
        "text/csv" => Ok(ImportFormat::Csv),
        "application/x-ndjson" | "application/jsonl" | "application/jsonlines" => {
            Ok(ImportFormat::Jsonl)
        }
        _ => Err(ApiError::UnsupportedMediaType(
            "send the file as text/csv or application/x-ndjson (JSON Lines)".to_owned(),
        )),
    }
}

/// Start an import. The body is the file: `text/csv` (UTF-8, with or without a byte-order mark,
/// CRLF, LF or CR line ends, a header row naming the columns) or `application/x-ndjson` (one JSON
/// object per line, keys as the column names). It is streamed, never held in memory; a row
/// longer than 1 MiB is refused as `too_long` (in a CSV file, where that is most likely a quote
/// never closed, the file is not read past it). It may be sent gzip-compressed
/// (`Content-Encoding: gzip`), and is then the same file as sent plain (one cut short is a 400);
/// another character set than UTF-8 in `Content-Type` is a 415, and a value that is not UTF-8 is
/// its row's `encoding` error. Column names and keys are read in any case; a column with no name
/// (the empty ones a spreadsheet adds at the end) is passed over while its cells are empty, and a
/// row of empty cells is passed over as a blank line is. A key twice in one object is
/// `repeated_column`.
///
/// Every rule of the kind's own endpoint applies to each row, with its error codes: a field's
/// error has the field's code (`check_digit`, `length`, …), and a row the endpoint would refuse
/// as a whole has the slug of the problem type it would answer with (`exists`, `conflict`,
/// `forbidden`, `not-found`, `insufficient-funds`; in column `row`, or `state` for an enrolment's
/// `transition-not-allowed` and its missing consent's `conflict`). A reference to another record
/// that is not there or not usable is its column's error (`not_found`, `not_linked`,
/// `not_registered`, …). The caller must be allowed that endpoint too. API clients (with
/// `registry:write` as well) import households and assessments where their organisation's MoU
/// data policy lets them submit these, as `/partner/...` submits them: households in the MoU's
/// areas (`outside_mou`), assessments of persons the partner may see (the others `not_found`;
/// and only where the policy does not withhold national IDs, by which rows name persons), each
/// row a new record, never matched with those registered (which the partner may not read).
///
/// A row matching an existing record by its natural key updates it (or leaves it unchanged); the
/// same record twice in one file is reported as `duplicate_row` on the column it was matched by
/// (a household's `postal_code` or `address`), not applied twice. Dates are Gregorian or Jalali,
/// digits in any script; the columns are listed at the end. By kind:
///
/// - `households`: matched by postal code, or else by the address in the neighbourhood.
/// - `persons`: matched by national ID; a person's household is not changed by an import (moving
///   is an explicit action). New persons with the same names and birth year in the district are
///   queued as possible duplicates.
/// - `assessments`: matched by person, kind and day; never rewritten.
/// - `enrolments`: matched by household and programme. Without a `state`, a new enrolment starts
///   `identified` and one that exists stays as it is.
/// - `attendance`: matched by session and person.
/// - `purchases`: one line per order, matched by supporter and reference; charged to the
///   supporter's funds like `POST /purchases`.
///
/// The same `Idempotency-Key`, or the caller's committed import of the same file for the same
/// kind, answers with the earlier job and imports nothing again; if that job stopped before its
/// end and was asked in the same mode, atomicity and format, it is resumed from this upload
/// (202), as `POST /imports/{id}/resume` would resume it.
#[utoipa::path(
    tag = "imports",
    security(("bearer" = [])),
    params(ImportQuery, ("Idempotency-Key" = Option<String>, Header, description = "Retrying with the same key and file answers with the first job; the key with another file, kind, mode, atomicity or format is a 422 (`reused`)")),
    request_body(content = String, content_type = "text/csv", description = "The file (or application/x-ndjson)"),
    responses(
        (status = 202, description = "Started; follow it at `Location`", body = ImportJobResponse),
        (status = 200, description = "The same key or file was imported already: the earlier job", body = ImportJobResponse),
        (status = 400, description = "Malformed request: a bad query string; or the upload broke off, or a compressed file cannot be unpacked (cut short, or not gzip)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The caller may not use the kind's own endpoint; for an API client: no `registry:write`, or its MoU data policy is not in force or does not let it submit these records", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The `Idempotency-Key` was used for a different request", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Larger than 2 GiB unpacked: refused before it is sent if its `Content-Length` says so (not compressed), else once 2 GiB have been read or unpacked", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Neither CSV nor JSON Lines, a character set other than UTF-8, or a `Content-Encoding` other than gzip", body = Problem, content_type = "application/problem+json"),
        (status = 507, description = "The server's disk is full: nothing of the file was kept and nothing imported. Not worth retrying at once; the operators are told", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[post("/imports")]
pub async fn create(
    auth: Auth<perm::ImportWrite>,
    state: web::Data<AppState>,
    req: HttpRequest,
    key: IdempotencyKey,
    query: web::Query<ImportQuery>,
    mut body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let kind: ImportKind = query.kind.into();
    // An import writes what the API's own endpoint writes: the caller must be allowed that too.
    match &auth.principal {
        Principal::User { .. } => auth.require(kind.action())?,
        // A partner's system submits what its MoU data policy lets it, as through `/partner/...`;
        // the runner checks the policy again, and each row's areas and persons.
        Principal::Client { .. } => {
            let Some(resource) = kind.partner_resource() else {
                return Err(ApiError::Forbidden(format!(
                    "API clients import households and assessments under their MoU data policy; {kind} are recorded by staff"
                )));
            };
            auth.require(Action::PartnerSubmit)?;
            let view = crate::partners::partner_view(&state, &auth).await?;
            partner_policies::may_import(&view, resource)?;
        }
    }
    let format = format_of(&req)?;
    let gzip = gzipped(&req)?;
    // A file that says it is too large is refused before it is sent (a compressed one is
    // measured as it is unpacked).
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if !gzip && declared.is_some_and(|length| length > MAX_FILE) {
        return Err(too_large());
    }
    let id = Uuid::now_v7().to_string();
    let (path, file) =
        spool_file(&state.import_dir, &format!("{id}.{}", format.as_str())).map_err(spool_error)?;
    let spool = Spool {
        path: path.clone(),
        kept: false,
    };
    // Unpacking, hashing and writing take a blocking thread, not the worker's. The spooled copy,
    // its size and its checksum are the file's own: sent once compressed and once not, it is one
    // file.
    let mut unpack = Unpack::new(Spooled::new(file, MAX_FILE), gzip);
    let mut piece = Vec::with_capacity(SPOOL_PIECE);
    loop {
        let chunk = body.next().await;
        if let Some(chunk) = &chunk {
            let chunk = chunk
                .as_ref()
                .map_err(|e| ApiError::BadRequest(format!("the upload broke off: {e}")))?;
            piece.extend_from_slice(chunk);
            if piece.len() < SPOOL_PIECE {
                continue;
            }
        }
        let bytes = std::mem::replace(&mut piece, Vec::with_capacity(SPOOL_PIECE));
        unpack = web::block(move || {
            unpack.feed(&bytes)?;
            Ok::<_, ApiError>(unpack)
        })
        .await
        .map_err(ApiError::internal)??;
        if chunk.is_none() {
            break;
        }
    }
    let spooled = web::block(move || {
        let spooled = unpack.finish()?;
        spooled.file.sync_all().map_err(spool_error)?;
        Ok::<_, ApiError>(spooled)
    })
    .await
    .map_err(ApiError::internal)??;
    let new = NewJob {
        id: id.clone(),
        kind,
        mode: query.mode.into(),
        atomicity: query.atomicity.map_or(Atomicity::All, Into::into),
        format,
        principal: principal(&auth),
        context: auth.audit(),
        scope: auth.scope(),
        role: auth.role(),
        idempotency_key: key.0.clone(),
        checksum: hex::encode(spooled.hasher.finalize()),
        file_path: path.to_string_lossy().into_owned(),
    };
    // The job owns the spooled copy once it is started, even if this request goes no further;
    // else the copy goes with the closure.
    let spool_dir = state.import_dir.clone();
    let asked = (new.mode, new.atomicity, new.format);
    let (job, fresh) = with_db(&state, move |c| {
        // The whole guard moves here (a closure would take only the field it sets).
        let mut spool = spool;
        let started = match imports::start(c, new)? {
            (earlier, false) => again(c, earlier, asked, &spool.path, &spool_dir)?,
            fresh => fresh,
        };
        spool.kept = started.1;
        Ok::<_, StoreError>(started)
    })
    .await?;
    if !fresh {
        let job_id = job.id.clone();
        let errors = with_db(&state, move |c| imports::errors(c, &job_id, 100)).await?;
        return Ok(HttpResponse::Ok()
            .insert_header((header::LOCATION, format!("/api/v1/imports/{}", job.id)))
            .json(response(job, errors)));
    }
    spawn(state.db.clone(), job.clone(), &state.import_dir);
    Ok(HttpResponse::Accepted()
        .insert_header((header::LOCATION, format!("/api/v1/imports/{}", job.id)))
        .json(response(job, Vec::new())))
}

/// The same file (or key) again, of a job that stopped before its end (interrupted, or left
/// running by a runner that is gone) and was asked as this upload asks (mode, atomicity,
/// format): the job is resumed from this upload's copy, as `tavana import` resumes from the file
/// it is given, so that a file whose first copy is lost (another replica's disk) can still be
/// imported, once. The copy it read before goes. A job that ended, that runs elsewhere, or that
/// was asked otherwise (resuming a job in `rows` mode for an upload in `all` mode would write
/// part of the file) is answered as it is. `(job, true)`: resumed, and the copy is its.
fn again(
    conn: &mut DbConnection,
    earlier: Job,
    asked: (ImportMode, Atomicity, ImportFormat),
    copy: &Path,
    spool: &Path,
) -> Result<(Job, bool), StoreError> {
    let stopped = matches!(earlier.state()?, JobState::Interrupted | JobState::Running);
    if !stopped || earlier.asked()? != asked {
        return Ok((earlier, false));
    }
    let file = copy.to_string_lossy();
    let (job, before) = match imports::resume_from(conn, &earlier.id, &file) {
        Ok(resumed) => resumed,
        Err(StoreError::Conflict(_)) => return Ok((imports::get(conn, &earlier.id)?, false)),
        Err(other) => return Err(other),
    };
    let before = Path::new(&before);
    if before.starts_with(spool)
        && before != copy
        && let Err(error) = std::fs::remove_file(before)
        && error.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(job = %job.id, error = %error, "earlier spooled copy not removed");
    }
    Ok((job, true))
}

/// The spooled copy of an upload, removed when the request ends before a job owns it: the upload
/// broke off or was too large, the disk or the database failed, or the file was imported already.
struct Spool {
    path: PathBuf,
    kept: bool,
}

impl Drop for Spool {
    fn drop(&mut self) {
        if !self.kept
            && let Err(error) = std::fs::remove_file(&self.path)
        {
            tracing::warn!(path = %self.path.display(), error = %error, "spooled upload not removed");
        }
    }
}

/// Runs the job in the background. Whatever stops it before its end (the file cannot be opened,
/// the database is gone, a panic) leaves it `interrupted` with the reason, never `running`.
fn spawn(db: Database, job: Job, spool: &Path) {
    // Only an upload's spooled copy is the service's to remove: a job of `tavana import` (resumed
    // here) reads the administrator's own file.
    let spooled = Path::new(&job.file_path).starts_with(spool);
    actix_web::rt::spawn(async move {
        let id = job.id.clone();
        let runner = db.clone();
        let ran = actix_web::rt::task::spawn_blocking(move || {
            let ran = run_file(&runner, &job, Utc::now().date_naive());
            // Done with: the spooled copy goes (here, not after the await, which a stopping
            // server does not reach). An interrupted job keeps it to resume from.
            if ran.is_ok()
                && spooled
                && let Err(error) = std::fs::remove_file(&job.file_path)
            {
                tracing::warn!(job = %job.id, error = %error, "spool file not removed");
            }
            ran
        })
        .await;
        let why = match ran {
            Ok(Ok(_)) => return,
            Ok(Err(error)) => {
                tracing::warn!(job = %id, error = %error, "import stopped");
                error.for_clients()
            }
            Err(_) => {
                tracing::warn!(job = %id, "import stopped by a panic");
                "the import stopped unexpectedly".to_owned()
            }
        };
        let recorded = actix_web::rt::task::spawn_blocking(move || {
            // On SQLite after the import running now: it may hold the write lock for long.
            let _turn = db.import_turn();
            let mut conn = db.get()?;
            imports::stopped(&mut conn, &id, &why)
        })
        .await;
        if !matches!(recorded, Ok(Ok(_))) {
            tracing::error!("an import's interruption could not be recorded");
        }
    });
}

/// Reads the job's file and applies it: the same pipeline for the API and the command line.
pub fn run_file(db: &Database, job: &Job, today: chrono::NaiveDate) -> Result<Job, StoreError> {
    let kind = job.kind()?;
    let file = File::open(&job.file_path).map_err(|e| unreadable(&job.file_path, e))?;
    // The size of the file opened, not of a path that may have gone since.
    let length = file
        .metadata()
        .map_err(|e| unreadable(&job.file_path, e))?
        .len();
    let reader = BufReader::with_capacity(256 * 1024, file);
    let mut rows: Box<dyn Iterator<Item = Result<Row, StoreError>>> = match job.format()? {
        ImportFormat::Csv => match csv_rows(kind, Lf::new(reader)) {
            Ok(rows) => Box::new(rows),
            Err(problems) => {
                let _turn = db.import_turn();
                let mut conn = db.get()?;
                return imports::fail(&mut conn, &job.id, &problems);
            }
        },
        ImportFormat::Jsonl => {
            if length == 0 {
                let _turn = db.import_turn();
                let mut conn = db.get()?;
                return imports::fail(&mut conn, &job.id, &[empty_file()]);
            }
            Box::new(jsonl_rows(kind, reader))
        }
    };
    imports::run(db, &job.id, &mut rows, today)
}

/// A job's file that cannot be opened: the job's owner is told whether it is gone, the server's
/// log where it was.
fn unreadable(path: &str, error: std::io::Error) -> StoreError {
    if error.kind() == std::io::ErrorKind::NotFound {
        StoreError::Conflict(
            "the job's file is no longer on the server; start a new job with the file".to_owned(),
        )
    } else {
        StoreError::Internal(format!("import file {path}: {error}"))
    }
}

fn empty_file() -> FieldError {
    FieldError::new(
        "file",
        "empty_file",
        "the file is empty: not even a header row",
    )
}

/// The longest row read (a CSV record, a JSON Lines line): rows are a few hundred bytes, and a
/// longer one is held whole in memory, so a file of one endless row (a CSV quote never closed)
/// would take as much memory as the file.
const MAX_ROW_BYTES: u64 = 1024 * 1024;

fn row_too_long(column: &str) -> FieldError {
    FieldError::new(
        column,
        "too_long",
        format!(
            "a row longer than {} KiB (in a CSV file, a quote that is never closed?); the file is not read past it",
            MAX_ROW_BYTES / 1024
        ),
    )
}

/// The error `Capped` stops a row with.
#[derive(Debug)]
struct TooLong;

impl std::fmt::Display for TooLong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("row too long")
    }
}

impl std::error::Error for TooLong {}

fn too_long(e: &csv::Error) -> bool {
    matches!(e.kind(), csv::ErrorKind::Io(io) if io.get_ref().is_some_and(|e| e.is::<TooLong>()))
}

/// A reader that gives no byte past `allowed` (the start of the row being read plus
/// `MAX_ROW_BYTES`, set by the CSV rows before each row): the CSV reader then fails with
/// `TooLong` instead of growing its record without end.
struct Capped<R> {
    inner: R,
    passed: u64,
    allowed: Arc<AtomicU64>,
}

impl<R: std::io::Read> std::io::Read for Capped<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let room = self
            .allowed
            .load(Ordering::Relaxed)
            .saturating_sub(self.passed);
        if room == 0 && !out.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                TooLong,
            ));
        }
        let most = usize::try_from(room).unwrap_or(usize::MAX).min(out.len());
        let given = self.inner.read(&mut out[..most])?;
        self.passed += u64::try_from(given).unwrap_or(u64::MAX);
        Ok(given)
    }
}

/// The lines of a JSON Lines file, without their LF; a line longer than `MAX_ROW_BYTES` is
/// skipped to its end without being kept, and given as `None`.
fn capped_lines(
    mut reader: impl BufRead,
) -> impl Iterator<Item = std::io::Result<Option<Vec<u8>>>> {
    let max = usize::try_from(MAX_ROW_BYTES).unwrap_or(usize::MAX);
    std::iter::from_fn(move || {
        let mut line = Vec::new();
        let (mut started, mut overlong) = (false, false);
        loop {
            let (used, ended) = {
                let buf = match reader.fill_buf() {
                    Ok(buf) => buf,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Some(Err(e)),
                };
                if buf.is_empty() {
                    return started.then(|| Ok((!overlong).then_some(line)));
                }
                started = true;
                let end = buf.iter().position(|&b| b == b'\n');
                let part = &buf[..end.unwrap_or(buf.len())];
                if !overlong && line.len() + part.len() > max {
                    overlong = true;
                    line = Vec::new();
                }
                if !overlong {
                    line.extend_from_slice(part);
                }
                (end.map_or(buf.len(), |i| i + 1), end.is_some())
            };
            reader.consume(used);
            if ended {
                return Some(Ok((!overlong).then_some(line)));
            }
        }
    })
}

fn read_error(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("reading the import file: {e}"))
}

/// The file as the CSV reader gets it: CRLF and a lone CR (the line end of old Mac files) read
/// as LF, inside quoted values too, and a last line without a line end given one. Then every row,
/// the last one too, is followed by exactly one LF, and the reader's line count after a row
/// tells the row's line (see `line_of`): the CSV reader ends a record at a lone CR but counts only
/// LFs, so CR-only files numbered every row alike.
struct Lf<R> {
    inner: R,
    /// The last byte read was a CR (passed on as LF): an LF right after it is the same line end.
    cr: bool,
    /// The last byte passed on (LF before any, so that an empty file stays empty).
    last: u8,
}

impl<R: BufRead> Lf<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            cr: false,
            last: b'\n',
        }
    }
}

impl<R: BufRead> std::io::Read for Lf<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let mut written = 0;
        while written == 0 && !out.is_empty() {
            let buf = self.inner.fill_buf()?;
            if buf.is_empty() {
                if self.last != b'\n' {
                    out[0] = b'\n';
                    written = 1;
                }
                break;
            }
            let mut used = 0;
            for &byte in buf {
                if written == out.len() {
                    break;
                }
                used += 1;
                match byte {
                    b'\n' if std::mem::take(&mut self.cr) => {}
                    b'\r' => {
                        self.cr = true;
                        out[written] = b'\n';
                        written += 1;
                    }
                    _ => {
                        self.cr = false;
                        out[written] = byte;
                        written += 1;
                    }
                }
            }
            self.inner.consume(used);
        }
        if written > 0 {
            self.last = out[written - 1];
        }
        Ok(written)
    }
}

/// The line a row starts on. The CSV reader's own position of a record is where it began reading
/// it, before any blank line it skipped; its line count once the record is read is exact: the
/// line after the row's LF (see `Lf`), less the lines inside quoted values.
fn line_of<R: std::io::Read>(csv: &csv::Reader<R>, values: &[&str]) -> i64 {
    let inside: usize = values.iter().map(|v| v.matches('\n').count()).sum();
    let after = i64::try_from(csv.position().line()).unwrap_or(i64::MAX);
    after - 1 - i64::try_from(inside).unwrap_or(0)
}

/// Whether a row holds nothing: a blank line, or a spreadsheet's row of empty cells (`,,,,`).
fn blank(record: &csv::StringRecord) -> bool {
    record
        .iter()
        .all(|v| v.trim_start_matches('\u{feff}').trim().is_empty())
}

/// The column at `index` as errors name it: its header's name, or `column N` if it has none.
fn column_name(names: &[String], index: usize) -> String {
    match names
        .get(index)
        .map(|n| n.trim_start_matches('\u{feff}').trim())
    {
        Some(name) if !name.is_empty() => name.to_lowercase(),
        _ => format!("column {}", index + 1),
    }
}

/// CSV rows by column name; the header is checked first.
fn csv_rows(
    kind: ImportKind,
    reader: impl std::io::Read + 'static,
) -> Result<impl Iterator<Item = Result<Row, StoreError>>, Vec<FieldError>> {
    let allowed = Arc::new(AtomicU64::new(MAX_ROW_BYTES));
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(Capped {
            inner: reader,
            passed: 0,
            allowed: Arc::clone(&allowed),
        });
    // The header is the first row with a name in it: rows of empty cells before it are passed
    // over, as blank lines are.
    let mut record = csv::StringRecord::new();
    let names: Vec<String> = loop {
        allowed.store(csv.position().byte() + MAX_ROW_BYTES, Ordering::Relaxed);
        match csv.read_record(&mut record) {
            Ok(false) => return Err(vec![empty_file()]),
            Ok(true) if blank(&record) => {}
            Ok(true) => break record.iter().map(str::to_owned).collect(),
            Err(e) if too_long(&e) => return Err(vec![row_too_long("file")]),
            Err(e) => {
                return Err(vec![FieldError::new(
                    "file",
                    "encoding",
                    format!("the header cannot be read: {e}"),
                )]);
            }
        }
    };
    let header = check_header(kind, &names).map_err(|e| e.0)?;
    let width = names.len();
    let mut done = false;
    Ok(std::iter::from_fn(move || {
        if done {
            return None;
        }
        let mut starts = csv.position().clone();
        allowed.store(starts.byte() + MAX_ROW_BYTES, Ordering::Relaxed);
        let mut outcome = csv.read_record(&mut record);
        // A row of empty cells (`,,,,`: a spreadsheet's cleared row) is passed over as a blank
        // line is.
        while matches!(outcome, Ok(true)) && blank(&record) {
            starts = csv.position().clone();
            allowed.store(starts.byte() + MAX_ROW_BYTES, Ordering::Relaxed);
            outcome = csv.read_record(&mut record);
        }
        match outcome {
            Ok(false) => None,
            Ok(true) => {
                let number = line_of(&csv, &record.iter().collect::<Vec<_>>());
                let values = if record.len() != width {
                    Err(FieldError::new(
                        "row",
                        "field_count",
                        format!(
                            "the row has {} fields; the header has {width}",
                            record.len()
                        ),
                    ))
                } else if let Some(lost) = header.unnamed_value(|i| record.get(i)) {
                    Err(lost)
                } else {
                    Ok(header
                        .positions
                        .iter()
                        .map(|(name, i)| (*name, record.get(*i).unwrap_or("").to_owned()))
                        .collect::<HashMap<_, _>>())
                };
                Some(Ok(Row { number, values }))
            }
            // Past it the file cannot be read row by row (an unclosed quote, most likely).
            Err(e) if too_long(&e) => {
                done = true;
                Some(Ok(Row {
                    number: i64::try_from(starts.line()).unwrap_or(i64::MAX),
                    values: Err(row_too_long("row")),
                }))
            }
            Err(e) => Some(match e.kind() {
                csv::ErrorKind::Io(_) => Err(read_error(e)),
                // Most likely the file was saved in the Windows Arabic code page (Excel's plain
                // "CSV"): say so, and name the column rather than a field number.
                csv::ErrorKind::Utf8 { err, .. } => Ok(Row {
                    number: line_of(&csv, &[]),
                    values: Err(FieldError::new(
                        column_name(&names, err.field()),
                        "encoding",
                        "this value is not UTF-8 text; save the file as UTF-8 (in Excel: \"CSV UTF-8\")",
                    )),
                }),
                _ => Ok(Row {
                    number: line_of(&csv, &[]),
                    values: Err(FieldError::new("row", "encoding", e.to_string())),
                }),
            }),
        }
    }))
}

/// JSON Lines rows: one object per line; blank lines are skipped.
fn jsonl_rows(
    kind: ImportKind,
    reader: impl BufRead + 'static,
) -> impl Iterator<Item = Result<Row, StoreError>> {
    let known = columns(kind);
    capped_lines(reader)
        .enumerate()
        .filter(|(_, line)| !matches!(line, Ok(Some(l)) if l.iter().all(u8::is_ascii_whitespace)))
        .map(move |(i, line)| {
            let number = i64::try_from(i + 1).unwrap_or(i64::MAX);
            let Some(mut line) = line.map_err(read_error)? else {
                return Ok(Row {
                    number,
                    values: Err(row_too_long("row")),
                });
            };
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            // A line that is not UTF-8 is that row's error, as in a CSV file, not the file's.
            let line = match String::from_utf8(line) {
                Ok(line) => line,
                Err(e) => {
                    return Ok(Row {
                        number,
                        values: Err(FieldError::new(
                            "row",
                            "encoding",
                            format!("the line is not UTF-8: {}", e.utf8_error()),
                        )),
                    });
                }
            };
            let values = match serde_json::from_str::<Members>(line.trim_start_matches('\u{feff}'))
            {
                Ok(Members(members)) => {
                    let mut values = HashMap::new();
                    let mut refused = None;
                    let mut named = Vec::new();
                    for (key, value) in members {
                        // Keys as CSV headers: trimmed, in any case.
                        let name = key.trim().to_lowercase();
                        let Some(column) = known.iter().find(|c| c.name == name) else {
                            let message = format!("unknown column `{key}`");
                            refused = Some(FieldError::new(name, "unknown_column", message));
                            break;
                        };
                        if named.contains(&column.name) {
                            refused = Some(FieldError::new(
                                column.name,
                                "repeated_column",
                                format!("`{}` appears twice in the object", column.name),
                            ));
                            break;
                        }
                        named.push(column.name);
                        // A value is what a CSV cell holds: text, a number, true or false.
                        let text = match value {
                            serde_json::Value::Null => continue,
                            serde_json::Value::String(s) => s,
                            serde_json::Value::Array(_) | serde_json::Value::Object(_) => {
                                refused = Some(FieldError::new(
                                    column.name,
                                    "format",
                                    "give text, a number, true or false, not a list or an object",
                                ));
                                break;
                            }
                            other => other.to_string(),
                        };
                        values.insert(column.name, text);
                    }
                    match refused {
                        Some(error) => Err(error),
                        None => Ok(values),
                    }
                }
                Err(e) if e.is_data() => Err(FieldError::new(
                    "row",
                    "json",
                    "each line must be a JSON object",
                )),
                Err(e) => Err(FieldError::new("row", "json", format!("not JSON: {e}"))),
            };
            Ok(Row { number, values })
        })
}

/// A JSON object's members in their order, a repeated key kept twice (a map of serde_json keeps
/// the last value of a repeated key, and the row would silently take it).
struct Members(Vec<(String, serde_json::Value)>);

impl<'de> Deserialize<'de> for Members {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Members;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Members, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry()? {
                    members.push(member);
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(Visit)
    }
}

/// The job, if the caller may see it: whoever started it, or an administrator.
async fn visible_job(
    auth: &Caller,
    state: &web::Data<AppState>,
    id: Uuid,
) -> Result<Job, ApiError> {
    let key = id.to_string();
    let job = with_db(state, move |c| imports::get(c, &key)).await?;
    if job.principal != principal(auth) && auth.role() != Some(Role::Admin) {
        return Err(ApiError::NotFound);
    }
    Ok(job)
}

/// The job: its state, counts and first errors.
#[utoipa::path(
    tag = "imports",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The job's id")),
    responses(
        (status = 200, description = "The job", body = ImportJobResponse),
        (status = 404, description = "No such job of the caller's", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[get("/imports/{id}")]
pub async fn read(
    auth: Auth<perm::ImportWrite>,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<web::Json<ImportJobResponse>, ApiError> {
    let job = visible_job(&auth, &state, id.into_inner()).await?;
    let key = job.id.clone();
    let errors = with_db(&state, move |c| imports::errors(c, &key, 100)).await?;
    Ok(web::Json(response(job, errors)))
}

/// The job's errors as CSV: row, column, code, message. The first 10,000 are kept; a job with more
/// failed rows (its `failed`) counts the rest without them.
#[utoipa::path(
    tag = "imports",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The job's id")),
    responses(
        (status = 200, description = "CSV", body = String, content_type = "text/csv"),
        (status = 404, description = "No such job of the caller's", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[get("/imports/{id}/errors")]
pub async fn errors_csv(
    auth: Auth<perm::ImportWrite>,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let job = visible_job(&auth, &state, id.into_inner()).await?;
    let errors = with_db(&state, move |c| {
        imports::errors(c, &job.id, imports::MAX_STORED_ERRORS as i64)
    })
    .await?;
    let rows: Vec<Vec<String>> = std::iter::once(
        ["row", "column", "code", "message"]
            .map(str::to_owned)
            .to_vec(),
    )
    .chain(errors.into_iter().map(|e| {
        vec![
            e.row_no.to_string(),
            e.col.unwrap_or_default(),
            e.code,
            e.message,
        ]
    }))
    .collect();
    csv_response(&rows)
}

/// Resume an interrupted job, or one left `running` by a runner that is gone (no process holds
/// its run lock, and it was set running over a minute ago): with atomicity `rows` it continues
/// after its last committed batch; with `all` (or in `validate` mode) it runs again from the
/// start. Nothing is applied twice. A user resumes their own job only if they may still write
/// its rows; an administrator may resume anyone's.
#[utoipa::path(
    tag = "imports",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The job's id")),
    responses(
        (status = 202, description = "Running again", body = ImportJobResponse),
        (status = 403, description = "The caller may not use the kind's own endpoint", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such job of the caller's", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not interrupted: completed, failed, or running", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[post("/imports/{id}/resume")]
pub async fn resume(
    auth: Auth<perm::ImportWrite>,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let job = visible_job(&auth, &state, id.into_inner()).await?;
    // As at the upload: a user resumes their own job only if they may write its rows. An
    // administrator may resume anyone's; the runner writes as whoever started it, with their
    // rights as they are then.
    if matches!(auth.principal, Principal::User { .. }) && job.principal == principal(&auth) {
        auth.require(job.kind()?.action())?;
    }
    let job = with_db(&state, move |c| imports::resume(c, &job.id, None)).await?;
    spawn(state.db.clone(), job.clone(), &state.import_dir);
    Ok(HttpResponse::Accepted()
        .insert_header((header::LOCATION, format!("/api/v1/imports/{}", job.id)))
        .json(response(job, Vec::new())))
}

/// How long a spooled file no job reads is left before `sweep_spool` removes it: an upload still
/// arriving (on a replica sharing the folder) is written to more recently.
const ORPHAN_AFTER: std::time::Duration = std::time::Duration::from_secs(3600);

/// Removes spooled uploads that no job will read again: a copy left by a service stopped while
/// it was uploaded, or one a finished job could not remove. They hold people's data, and
/// nothing else would remove them. Only files named as uploads are spooled (`<uuid>.csv`,
/// `<uuid>.jsonl`) are looked at, so a folder shared with other files is safe. An upload that
/// stalls for over an hour on a replica sharing the folder may lose its copy to a replica that
/// starts: its job is then interrupted, and sending the file again resumes it. Returns how many
/// went.
pub fn sweep_spool(conn: &mut DbConnection, dir: &Path) -> Result<usize, StoreError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(StoreError::Internal(format!("{}: {e}", dir.display()))),
    };
    // By name: the folder may be named differently now (relative, absolute) than when spooled.
    let in_use: std::collections::HashSet<std::ffi::OsString> = imports::files_in_use(conn)?
        .iter()
        .filter_map(|path| Path::new(path).file_name().map(ToOwned::to_owned))
        .collect();
    let mut removed = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        // As `create` names them: a UUID in its hyphenated form.
        let spooled = path.extension().is_some_and(|e| e == "csv" || e == "jsonl")
            && path
                .file_stem()
                .and_then(|stem| stem.to_str())
                .is_some_and(|stem| stem.len() == 36 && Uuid::try_parse(stem).is_ok());
        if !spooled || in_use.contains(&entry.file_name()) {
            continue;
        }
        // A clock behind the file's time keeps it (`elapsed` fails).
        let old = entry
            .metadata()
            .ok()
            .filter(std::fs::Metadata::is_file)
            .and_then(|m| m.modified().ok())
            .and_then(|written| written.elapsed().ok())
            .is_some_and(|age| age > ORPHAN_AFTER);
        if !old {
            continue;
        }
        match std::fs::remove_file(&path) {
            Ok(()) => removed += 1,
            // Another replica starting swept it first.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => {
                tracing::warn!(path = %path.display(), error = %error, "spooled upload not removed")
            }
        }
    }
    Ok(removed)
}

/// The spool folder of a database's imports, by default beside it.
pub fn default_import_dir() -> PathBuf {
    Path::new("data").join("imports")
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    /// A spooled upload and the folder made for it are the service user's alone.
    #[cfg(unix)]
    #[test]
    fn spooled_files_are_readable_by_the_service_alone() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().expect("folder");
        let dir = root.path().join("spool").join("imports");
        let (path, _) = spool_file(&dir, "a.csv").expect("spooled");
        let mode = |p: &Path| std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&dir), 0o700);
        // A second upload of the same name is refused, not written over.
        assert!(spool_file(&dir, "a.csv").is_err());
    }

    /// Spools `bytes` as one upload (gzip-compressed if `gzip`) with a cap of `cap` bytes.
    fn spooled(bytes: &[u8], gzip: bool, cap: u64) -> Result<(u64, String), ApiError> {
        let file = tempfile::tempfile().expect("file");
        let mut unpack = Unpack::new(Spooled::new(file, cap), gzip);
        for piece in bytes.chunks(1000) {
            unpack.feed(piece)?;
        }
        let spooled = unpack.finish()?;
        Ok((spooled.size, hex::encode(spooled.hasher.finalize())))
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        encoder.write_all(bytes).expect("compressed");
        encoder.finish().expect("compressed")
    }

    #[test]
    fn a_compressed_upload_is_measured_as_it_is_unpacked() {
        let file = vec![b'a'; 4 << 20];
        let packed = gzip(&file);
        // Four MiB of one letter pack into a few KiB: the cap is on what they unpack to.
        assert!(packed.len() < 20_000, "{}", packed.len());
        let plain = spooled(&file, false, 8 << 20).expect("plain");
        assert_eq!(spooled(&packed, true, 8 << 20).expect("unpacked"), plain);
        assert_eq!(plain.0, 4 << 20);
        assert!(matches!(
            spooled(&packed, true, 1 << 20),
            Err(ApiError::PayloadTooLarge(_))
        ));
        assert!(matches!(
            spooled(&file, false, 1 << 20),
            Err(ApiError::PayloadTooLarge(_))
        ));
        // A file cut short (in its data, its header, its checksum), empty, or not gzip is
        // refused, not spooled as a shorter file.
        for end in [packed.len() / 2, 5, 0, packed.len() - 4] {
            assert!(
                matches!(
                    spooled(&packed[..end], true, 8 << 20),
                    Err(ApiError::BadRequest(_))
                ),
                "cut at {end}"
            );
        }
        assert!(matches!(
            spooled(&file, true, 8 << 20),
            Err(ApiError::BadRequest(_))
        ));
    }

    #[test]
    fn a_full_disk_is_the_servers_fault_not_the_files() {
        use actix_web::ResponseError;
        // Linux's /dev/full takes no byte: each write fails as on a full disk (ENOSPC).
        for gzip in [false, true] {
            let full = File::options()
                .write(true)
                .open("/dev/full")
                .expect("/dev/full");
            let mut unpack = Unpack::new(Spooled::new(full, 8 << 20), gzip);
            let bytes = if gzip {
                super::tests::gzip(&[b'a'; 100_000])
            } else {
                vec![b'a'; 100_000]
            };
            let error = unpack.feed(&bytes).and_then(|()| unpack.finish().map(drop));
            let Err(error) = error else {
                panic!("/dev/full took the file")
            };
            assert!(
                matches!(error, ApiError::InsufficientStorage(_)),
                "gzip {gzip}: {error:?}"
            );
            assert_eq!(error.status_code().as_u16(), 507);
        }
    }

    fn read_all(reader: &mut impl Read, chunk: usize) -> String {
        let mut out = Vec::new();
        let mut buf = vec![0; chunk];
        loop {
            let n = reader.read(&mut buf).expect("read");
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn crlf_and_a_lone_cr_are_read_as_lf_whatever_the_buffer_sizes() {
        for (input, expected) in [
            (
                "h1,h2\r\na,\"b\r\nc\"\r\n\r\nx\ry\r\n",
                "h1,h2\na,\"b\nc\"\n\nx\ny\n",
            ),
            ("h1\r\na", "h1\na\n"),
            ("h1\na\r", "h1\na\n"),
            ("h1\ra\r\rb\n\r", "h1\na\n\nb\n\n"),
            ("\r\n", "\n"),
            ("", ""),
        ] {
            for capacity in 1..=8 {
                for chunk in 1..=5 {
                    let mut reader = Lf::new(BufReader::with_capacity(capacity, input.as_bytes()));
                    assert_eq!(
                        read_all(&mut reader, chunk),
                        expected,
                        "{input:?}, capacity {capacity}, chunk {chunk}"
                    );
                }
            }
        }
    }

    fn numbers(file: String) -> Vec<i64> {
        csv_rows(
            ImportKind::Households,
            Lf::new(BufReader::new(std::io::Cursor::new(file.into_bytes()))),
        )
        .expect("header")
        .map(|row| row.expect("row").number)
        .collect()
    }

    #[test]
    fn a_csv_row_past_the_cap_ends_the_file_with_its_error() {
        let endless = format!(
            "neighbourhood_id,address\na,b\nc,\"never closed\n{}\nd,e\n",
            "x".repeat(usize::try_from(MAX_ROW_BYTES).expect("fits"))
        );
        let rows: Vec<Row> = csv_rows(
            ImportKind::Households,
            Lf::new(BufReader::new(std::io::Cursor::new(endless.into_bytes()))),
        )
        .expect("header")
        .map(|row| row.expect("row"))
        .collect();
        assert_eq!(rows.len(), 2);
        assert!(rows[0].values.is_ok());
        assert_eq!(rows[1].number, 3);
        assert_eq!(rows[1].values.as_ref().map_err(|e| e.code), Err("too_long"));
        // A header that never ends is the file's error.
        let header = format!(
            "\"{}",
            "x".repeat(usize::try_from(MAX_ROW_BYTES).expect("fits"))
        );
        let refused = csv_rows(
            ImportKind::Households,
            Lf::new(BufReader::new(std::io::Cursor::new(header.into_bytes()))),
        )
        .err()
        .expect("refused");
        assert_eq!(refused[0].code, "too_long");
    }

    #[test]
    fn a_json_line_past_the_cap_is_skipped_and_reported() {
        let max = usize::try_from(MAX_ROW_BYTES).expect("fits");
        let file = format!("{{}}\n{}\n{}\n\nlast", "x".repeat(max + 1), "y".repeat(max));
        for capacity in [7, 8 * 1024, 4 * max] {
            let lines: Vec<Option<usize>> =
                capped_lines(BufReader::with_capacity(capacity, file.as_bytes()))
                    .map(|line| line.expect("read").map(|l| l.len()))
                    .collect();
            assert_eq!(
                lines,
                [Some(2), None, Some(max), Some(0), Some(4)],
                "capacity {capacity}"
            );
        }
    }

    #[test]
    fn rows_are_numbered_by_the_line_they_start_on() {
        for end in ["\n", "\r\n", "\r"] {
            let lines = [
                "neighbourhood_id,address",
                "a,b",
                "",
                "c,\"two",
                "lines\"",
                "",
                "",
                "e,f",
            ];
            // With a line end after the last row or without.
            assert_eq!(numbers(lines.join(end) + end), [2, 4, 8], "{end:?}");
            assert_eq!(numbers(lines.join(end)), [2, 4, 8], "{end:?}");
        }
    }
}
