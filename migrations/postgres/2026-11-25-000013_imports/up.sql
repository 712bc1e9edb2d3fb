-- Batch imports: one job per file, its progress (so an interrupted job can resume where its last
-- committed batch ended) and the rows it refused.

CREATE TABLE import_jobs (
    id              TEXT PRIMARY KEY,
    kind            TEXT NOT NULL CHECK (kind IN ('persons')),
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
    finished_at     TIMESTAMP
);
CREATE UNIQUE INDEX import_jobs_key_idx ON import_jobs (principal, idempotency_key);
CREATE INDEX import_jobs_checksum_idx ON import_jobs (kind, checksum);

CREATE TABLE import_errors (
    job_id   TEXT NOT NULL REFERENCES import_jobs (id),
    row_no   BIGINT NOT NULL,
    seq      INTEGER NOT NULL,
    col      TEXT,
    code     TEXT NOT NULL,
    message  TEXT NOT NULL,
    PRIMARY KEY (job_id, row_no, seq)
);
