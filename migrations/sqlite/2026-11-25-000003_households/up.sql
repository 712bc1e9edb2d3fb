-- Households, each in one neighbourhood; and the stored answers of creates made with an
-- Idempotency-Key, so a retried request gets the same answer and creates nothing twice.

CREATE TABLE households (
    id                 TEXT PRIMARY KEY,
    neighbourhood_id   TEXT NOT NULL REFERENCES areas (id),
    address            TEXT NOT NULL CHECK (length(address) > 0),
    address_normalised TEXT NOT NULL,
    postal_code        TEXT CHECK (postal_code IS NULL OR length(postal_code) = 10),
    version            BIGINT NOT NULL DEFAULT 1 CHECK (version > 0),
    created_at         TIMESTAMP NOT NULL,
    updated_at         TIMESTAMP NOT NULL
);
CREATE INDEX households_neighbourhood_id_idx ON households (neighbourhood_id, id);

CREATE TABLE idempotency_keys (
    principal    TEXT NOT NULL,
    key          TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status       INTEGER NOT NULL,
    location     TEXT,
    body         TEXT NOT NULL,
    created_at   TIMESTAMP NOT NULL,
    PRIMARY KEY (principal, key)
);
CREATE INDEX idempotency_keys_created_at_idx ON idempotency_keys (created_at);
