-- Partner integration (issue 10): each partner organisation's MoU data policy, the changes feed
-- partners keep their copies with, and webhook endpoints with their deliveries and attempts.

CREATE TABLE partner_policies (
    organisation_id TEXT PRIMARY KEY REFERENCES organisations (id),
    purpose         TEXT NOT NULL CHECK (length(purpose) > 0),
    starts_on       DATE NOT NULL,
    ends_on         DATE NOT NULL,
    -- Space-separated names: the resources it may read, the fields withheld from them, and the
    -- resources it may submit.
    resources       TEXT NOT NULL,
    withheld        TEXT NOT NULL,
    writes          TEXT NOT NULL,
    -- Space-separated area ids (any level) the MoU covers; empty for the whole programme.
    areas           TEXT NOT NULL,
    version         BIGINT NOT NULL DEFAULT 1 CHECK (version > 0),
    created_at      TIMESTAMP NOT NULL,
    updated_at      TIMESTAMP NOT NULL,
    CHECK (ends_on >= starts_on)
);

-- One row per change of a shared record, numbered in commit order: writers take the audit log's
-- lock before they add one, so a reader never sees a later number before an earlier one.
CREATE TABLE changes (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    entity           TEXT NOT NULL CHECK (entity IN ('person', 'household', 'enrolment', 'assessment')),
    entity_id        TEXT NOT NULL,
    op               TEXT NOT NULL CHECK (op IN ('created', 'updated', 'deleted')),
    changed_at       TIMESTAMP NOT NULL
);
CREATE INDEX changes_entity_idx ON changes (entity, seq);

CREATE TABLE webhook_endpoints (
    id              TEXT PRIMARY KEY,
    organisation_id TEXT NOT NULL REFERENCES organisations (id),
    url             TEXT NOT NULL,
    -- Space-separated entity names whose changes are sent.
    event_types     TEXT NOT NULL,
    secret          TEXT NOT NULL,
    enabled         BOOLEAN NOT NULL,
    -- Deliveries that failed in a row (every attempt used); at the limit the endpoint is disabled.
    failures        INTEGER NOT NULL DEFAULT 0,
    disabled_at     TIMESTAMP,
    -- Changes up to this number have their deliveries.
    last_seq        BIGINT NOT NULL,
    version         BIGINT NOT NULL DEFAULT 1 CHECK (version > 0),
    created_at      TIMESTAMP NOT NULL,
    updated_at      TIMESTAMP NOT NULL
);
CREATE INDEX webhook_endpoints_organisation_idx ON webhook_endpoints (organisation_id);

CREATE TABLE webhook_deliveries (
    id              TEXT PRIMARY KEY,
    endpoint_id     TEXT NOT NULL REFERENCES webhook_endpoints (id),
    change_seq      BIGINT NOT NULL,
    event_type      TEXT NOT NULL,
    -- The signed body, fixed when the delivery is made so that every attempt sends the same.
    payload         TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMP,
    created_at      TIMESTAMP NOT NULL,
    delivered_at    TIMESTAMP
);
CREATE UNIQUE INDEX webhook_deliveries_change_idx ON webhook_deliveries (endpoint_id, change_seq);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (state, next_attempt_at);

CREATE TABLE webhook_attempts (
    id           TEXT PRIMARY KEY,
    delivery_id  TEXT NOT NULL REFERENCES webhook_deliveries (id),
    attempted_at TIMESTAMP NOT NULL,
    status_code  INTEGER,
    error        TEXT,
    duration_ms  BIGINT NOT NULL
);
CREATE INDEX webhook_attempts_delivery_idx ON webhook_attempts (delivery_id, attempted_at);
