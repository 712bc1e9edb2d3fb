-- Home-business supporters, the producers linked to them, products, the funds ledger and
-- purchase orders. Money is integer rials throughout.

-- At most this many supporters active at once in one neighbourhood, per programme.
ALTER TABLE programmes ADD COLUMN supporters_per_neighbourhood INTEGER NOT NULL DEFAULT 2
    CHECK (supporters_per_neighbourhood > 0);

CREATE TABLE supporters (
    id               TEXT PRIMARY KEY,
    -- The account that acts for the supporter (role `supporter`).
    user_id          TEXT NOT NULL REFERENCES users (id),
    -- Who the supporter is: a person or an organisation.
    person_id        TEXT REFERENCES persons (id),
    organisation_id  TEXT REFERENCES organisations (id),
    programme_id     TEXT NOT NULL REFERENCES programmes (id),
    neighbourhood_id TEXT NOT NULL REFERENCES areas (id),
    starts_on        DATE NOT NULL,
    ends_on          DATE,
    created_at       TIMESTAMP NOT NULL,
    CHECK ((person_id IS NULL) <> (organisation_id IS NULL)),
    CHECK (ends_on IS NULL OR ends_on >= starts_on)
);
CREATE INDEX supporters_neighbourhood_id_idx ON supporters (neighbourhood_id, programme_id);
CREATE INDEX supporters_user_id_idx ON supporters (user_id);

-- The balance of each supporter: the sum of their ledger, kept in the same transaction as every
-- entry. The CHECK is the database's own guarantee that no interleaving can overdraw it.
CREATE TABLE supporter_balances (
    supporter_id TEXT PRIMARY KEY REFERENCES supporters (id),
    balance      BIGINT NOT NULL CHECK (balance >= 0)
);

CREATE TABLE producer_links (
    supporter_id TEXT NOT NULL REFERENCES supporters (id),
    person_id    TEXT NOT NULL REFERENCES persons (id),
    linked_on    DATE NOT NULL,
    linked_by    TEXT,
    PRIMARY KEY (supporter_id, person_id)
);
CREATE INDEX producer_links_person_id_idx ON producer_links (person_id);

CREATE TABLE products (
    id              TEXT PRIMARY KEY,
    person_id       TEXT NOT NULL REFERENCES persons (id),
    kind            TEXT NOT NULL CHECK (kind IN ('product', 'raw_material')),
    name            TEXT NOT NULL,
    unit            TEXT NOT NULL,
    reference_price BIGINT NOT NULL CHECK (reference_price > 0),
    created_at      TIMESTAMP NOT NULL
);
CREATE INDEX products_person_id_idx ON products (person_id);

CREATE TABLE purchases (
    id             TEXT PRIMARY KEY,
    supporter_id   TEXT NOT NULL REFERENCES supporters (id),
    producer_id    TEXT NOT NULL REFERENCES persons (id),
    state          TEXT NOT NULL CHECK (state IN ('ordered', 'received', 'paid', 'cancelled')),
    total          BIGINT NOT NULL CHECK (total > 0),
    ordered_on     DATE NOT NULL,
    received_on    DATE,
    paid_on        DATE,
    cancelled_on   DATE,
    cancel_reason  TEXT,
    version        BIGINT NOT NULL DEFAULT 1 CHECK (version > 0),
    created_at     TIMESTAMP NOT NULL,
    updated_at     TIMESTAMP NOT NULL
);
CREATE INDEX purchases_supporter_id_idx ON purchases (supporter_id, ordered_on);
CREATE INDEX purchases_producer_id_idx ON purchases (producer_id, ordered_on);

CREATE TABLE purchase_lines (
    purchase_id TEXT NOT NULL REFERENCES purchases (id),
    line_no     INTEGER NOT NULL CHECK (line_no > 0),
    product_id  TEXT REFERENCES products (id),
    kind        TEXT NOT NULL CHECK (kind IN ('product', 'raw_material')),
    description TEXT NOT NULL,
    quantity    BIGINT NOT NULL CHECK (quantity > 0),
    unit_price  BIGINT NOT NULL CHECK (unit_price > 0),
    amount      BIGINT NOT NULL CHECK (amount = quantity * unit_price),
    PRIMARY KEY (purchase_id, line_no)
);

-- Append-only: rows are inserted, never updated or deleted.
CREATE TABLE ledger_entries (
    id           TEXT PRIMARY KEY,
    supporter_id TEXT NOT NULL REFERENCES supporters (id),
    kind         TEXT NOT NULL CHECK (kind IN ('allocation', 'purchase', 'reversal', 'adjustment')),
    amount       BIGINT NOT NULL CHECK (amount <> 0),
    purchase_id  TEXT REFERENCES purchases (id),
    effective_on DATE NOT NULL,
    note         TEXT,
    recorded_by  TEXT,
    recorded_at  TIMESTAMP NOT NULL,
    CHECK ((kind = 'allocation' AND amount > 0) OR (kind = 'purchase' AND amount < 0)
        OR (kind = 'reversal' AND amount > 0) OR kind = 'adjustment'),
    CHECK ((kind IN ('purchase', 'reversal')) = (purchase_id IS NOT NULL))
);
CREATE INDEX ledger_entries_supporter_id_idx ON ledger_entries (supporter_id, effective_on);
-- One reversal per purchase at most.
CREATE UNIQUE INDEX ledger_entries_one_reversal_idx ON ledger_entries (purchase_id, kind);
