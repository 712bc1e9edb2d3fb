-- Every kind of import, and the role of whoever started a job. SQLite cannot change a CHECK:
-- the two tables are rebuilt (errors first pointing at the new jobs table, whose rename then
-- carries the reference along).

CREATE TABLE import_jobs_new (
    id              TEXT PRIMARY KEY,
    kind            TEXT NOT NULL CHECK (kind IN ('households', 'persons', 'assessments', 'enrolments', 'attendance', 'purchases')),
    mode            TEXT NOT NULL CHECK (mode IN ('validate', 'commit')),
    atomicity       TEXT NOT NULL CHECK (atomicity IN ('all', 'rows')),
    format          TEXT NOT NULL CHECK (format IN ('csv', 'jsonl')),
    state           TEXT NOT NULL CHECK (state IN ('running', 'completed', 'failed', 'interrupted')),
    -- Who started it: the idempotency principal (`user:…` or `client:…`).
    principal       TEXT NOT NULL,
    actor_kind      TEXT NOT NULL,
    actor_id        TEXT,
    -- The caller's scope: a user whose neighbourhoods limit the import, or none for all.
    scope_user      TEXT,
    idempotency_key TEXT,
    checksum        TEXT NOT NULL,
    file_path       TEXT NOT NULL,
    -- Data rows read and committed so far; a resumed job skips the first `rows_done`.
    rows_read       BIGINT NOT NULL DEFAULT 0,
    rows_done       BIGINT NOT NULL DEFAULT 0,
    created         BIGINT NOT NULL DEFAULT 0,
    updated         BIGINT NOT NULL DEFAULT 0,
    unchanged       BIGINT NOT NULL DEFAULT 0,
    failed          BIGINT NOT NULL DEFAULT 0,
    message         TEXT,
    created_at      TIMESTAMP NOT NULL,
    updated_at      TIMESTAMP NOT NULL,
    finished_at     TIMESTAMP,
    -- The role of the user who started it: a trainer's or a supporter's rows are checked as theirs.
    actor_role      TEXT
);
INSERT INTO import_jobs_new (id, kind, mode, atomicity, format, state, principal, actor_kind, actor_id, scope_user, idempotency_key, checksum, file_path, rows_read, rows_done, created, updated, unchanged, failed, message, created_at, updated_at, finished_at)
    SELECT id, kind, mode, atomicity, format, state, principal, actor_kind, actor_id, scope_user, idempotency_key, checksum, file_path, rows_read, rows_done, created, updated, unchanged, failed, message, created_at, updated_at, finished_at FROM import_jobs;
CREATE TABLE import_errors_new (
    job_id   TEXT NOT NULL REFERENCES import_jobs_new (id),
    row_no   BIGINT NOT NULL,
    seq      INTEGER NOT NULL,
    col      TEXT,
    code     TEXT NOT NULL,
    message  TEXT NOT NULL,
    PRIMARY KEY (job_id, row_no, seq)
);
INSERT INTO import_errors_new SELECT * FROM import_errors;
DROP TABLE import_errors;
DROP TABLE import_jobs;
ALTER TABLE import_jobs_new RENAME TO import_jobs;
ALTER TABLE import_errors_new RENAME TO import_errors;
CREATE UNIQUE INDEX import_jobs_key_idx ON import_jobs (principal, idempotency_key);
CREATE INDEX import_jobs_checksum_idx ON import_jobs (kind, checksum);

-- Purchases imported from a supporter's own book carry its order number, imported once.
ALTER TABLE purchases ADD COLUMN reference TEXT;
CREATE UNIQUE INDEX purchases_reference_idx ON purchases (supporter_id, reference) WHERE reference IS NOT NULL;

-- Possible duplicates (same names, born the same year) are looked up by a range on the birth
-- date; this index serves the name search as well.
CREATE INDEX persons_duplicate_idx ON persons (last_name_normalised, first_name_normalised, birth_date);
DROP INDEX persons_name_idx;
