-- Identity and access: organisations, staff users with their area scope, API clients of partner
-- agencies and scripts, refresh tokens, failed logins, and the hash-chained audit log.

CREATE TABLE organisations (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE CHECK (length(name) > 0),
    kind       TEXT NOT NULL CHECK (kind IN ('labour_office', 'facilitation_office',
                   'womens_affairs_bureau', 'partner_agency', 'counselling_centre',
                   'training_provider', 'ministry')),
    version    BIGINT NOT NULL DEFAULT 1 CHECK (version > 0),
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

CREATE TABLE users (
    id              TEXT PRIMARY KEY,
    username        TEXT NOT NULL UNIQUE CHECK (length(username) BETWEEN 3 AND 64),
    display_name    TEXT NOT NULL CHECK (length(display_name) > 0),
    password_hash   TEXT NOT NULL,
    role            TEXT NOT NULL CHECK (role IN ('admin', 'programme_manager', 'facilitator',
                        'trainer', 'permit_officer', 'supporter', 'partner', 'auditor')),
    organisation_id TEXT NOT NULL REFERENCES organisations (id),
    active          BOOLEAN NOT NULL DEFAULT TRUE,
    version         BIGINT NOT NULL DEFAULT 1 CHECK (version > 0),
    created_at      TIMESTAMP NOT NULL,
    updated_at      TIMESTAMP NOT NULL
);
CREATE INDEX users_organisation_id_idx ON users (organisation_id);

-- The areas an area-scoped user (facilitator, trainer, supporter) may see.
CREATE TABLE user_areas (
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    area_id TEXT NOT NULL REFERENCES areas (id),
    PRIMARY KEY (user_id, area_id)
);

CREATE TABLE api_clients (
    id              TEXT PRIMARY KEY,
    client_id       TEXT NOT NULL UNIQUE,
    name            TEXT NOT NULL CHECK (length(name) > 0),
    secret_hash     TEXT NOT NULL,
    -- Space-separated, e.g. 'registry:read reports:read'.
    scopes          TEXT NOT NULL,
    organisation_id TEXT NOT NULL REFERENCES organisations (id),
    expires_on      DATE NOT NULL,
    active          BOOLEAN NOT NULL DEFAULT TRUE,
    version         BIGINT NOT NULL DEFAULT 1 CHECK (version > 0),
    created_at      TIMESTAMP NOT NULL,
    updated_at      TIMESTAMP NOT NULL
);

-- Opaque refresh tokens, stored only as SHA-256 hashes. A token is used once; presenting a used
-- token again revokes its whole family (every token descended from the same login).
CREATE TABLE refresh_tokens (
    id         TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    family_id  TEXT NOT NULL,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    issued_at  TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    used_at    TIMESTAMP,
    revoked_at TIMESTAMP
);
CREATE INDEX refresh_tokens_family_id_idx ON refresh_tokens (family_id);

-- Failed logins, so that every replica sees the same counts.
CREATE TABLE login_failures (
    id       TEXT PRIMARY KEY,
    username TEXT NOT NULL,
    address  TEXT NOT NULL,
    at       TIMESTAMP NOT NULL
);
CREATE INDEX login_failures_username_idx ON login_failures (username, at);
CREATE INDEX login_failures_address_idx ON login_failures (address, at);

-- Requests per caller per fixed one-minute window, for the general rate limit; in the database so
-- that every replica counts the same.
CREATE TABLE rate_limit_windows (
    key          TEXT NOT NULL,
    window_start TIMESTAMP NOT NULL,
    hits         BIGINT NOT NULL CHECK (hits > 0),
    PRIMARY KEY (key, window_start)
);

-- Append-only; each row carries the hash of the previous one (`tavana audit verify`).
CREATE TABLE audit_log (
    seq         BIGINT PRIMARY KEY CHECK (seq > 0),
    at          TIMESTAMP NOT NULL,
    actor_kind  TEXT NOT NULL CHECK (actor_kind IN ('user', 'client', 'system')),
    actor_id    TEXT,
    action      TEXT NOT NULL,
    entity      TEXT NOT NULL,
    entity_id   TEXT,
    before_json TEXT,
    after_json  TEXT,
    request_id  TEXT,
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL UNIQUE
);
CREATE INDEX audit_log_entity_idx ON audit_log (entity, entity_id, seq);
CREATE INDEX audit_log_actor_idx ON audit_log (actor_id, seq);
