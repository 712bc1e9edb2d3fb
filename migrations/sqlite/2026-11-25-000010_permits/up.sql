-- Home-based-business permits: the activity catalogue, applications with their reviewed steps,
-- permits with validity periods and monitoring visits.

CREATE TABLE business_activities (
    code    TEXT PRIMARY KEY,
    name_fa TEXT NOT NULL,
    name_en TEXT NOT NULL
);
INSERT INTO business_activities (code, name_fa, name_en) VALUES
    ('tailoring', 'خیاطی', 'Tailoring'),
    ('handicrafts', 'صنایع دستی', 'Handicrafts'),
    ('carpet_weaving', 'قالی‌بافی و گلیم‌بافی', 'Carpet and rug weaving'),
    ('food_preparation', 'تهیه و بسته‌بندی غذا', 'Food preparation'),
    ('pastry', 'شیرینی‌پزی', 'Pastry and confectionery'),
    ('embroidery', 'سوزن‌دوزی', 'Embroidery'),
    ('knitting', 'بافتنی', 'Knitting');

-- Whether issuing a permit moves the household's enrolment in the programme to `permitted`.
ALTER TABLE programmes ADD COLUMN advance_on_permit BOOLEAN NOT NULL DEFAULT TRUE;

CREATE TABLE permit_applications (
    id               TEXT PRIMARY KEY,
    person_id        TEXT NOT NULL REFERENCES persons (id),
    neighbourhood_id TEXT NOT NULL REFERENCES areas (id),
    activity         TEXT NOT NULL REFERENCES business_activities (code),
    address          TEXT NOT NULL,
    state            TEXT NOT NULL CHECK (state IN ('submitted', 'under_review', 'inspected',
                         'approved', 'issued', 'rejected')),
    applied_on       DATE NOT NULL,
    permit_id        TEXT,
    version          BIGINT NOT NULL DEFAULT 1 CHECK (version > 0),
    created_at       TIMESTAMP NOT NULL,
    updated_at       TIMESTAMP NOT NULL
);
CREATE INDEX permit_applications_neighbourhood_id_idx ON permit_applications (neighbourhood_id, id);
CREATE INDEX permit_applications_person_id_idx ON permit_applications (person_id);

-- Every step of the review: who, when, and the notes (the home visit, the reason to reject).
CREATE TABLE permit_application_steps (
    application_id TEXT NOT NULL REFERENCES permit_applications (id),
    seq            INTEGER NOT NULL CHECK (seq > 0),
    from_state     TEXT,
    to_state       TEXT NOT NULL,
    effective_on   DATE NOT NULL,
    notes          TEXT,
    actor_id       TEXT,
    recorded_at    TIMESTAMP NOT NULL,
    PRIMARY KEY (application_id, seq)
);

CREATE TABLE permits (
    id               TEXT PRIMARY KEY,
    number           TEXT NOT NULL UNIQUE,
    application_id   TEXT NOT NULL UNIQUE REFERENCES permit_applications (id),
    person_id        TEXT NOT NULL REFERENCES persons (id),
    neighbourhood_id TEXT NOT NULL REFERENCES areas (id),
    activity         TEXT NOT NULL REFERENCES business_activities (code),
    -- `expired` is never stored: it follows from valid_until.
    state            TEXT NOT NULL CHECK (state IN ('issued', 'suspended', 'revoked')),
    state_reason     TEXT,
    issued_on        DATE NOT NULL,
    valid_from       DATE NOT NULL,
    valid_until      DATE NOT NULL,
    version          BIGINT NOT NULL DEFAULT 1 CHECK (version > 0),
    created_at       TIMESTAMP NOT NULL,
    updated_at       TIMESTAMP NOT NULL,
    CHECK (valid_until >= valid_from)
);
CREATE INDEX permits_person_id_idx ON permits (person_id, activity);
CREATE INDEX permits_neighbourhood_id_idx ON permits (neighbourhood_id, id);

CREATE TABLE permit_periods (
    permit_id   TEXT NOT NULL REFERENCES permits (id),
    seq         INTEGER NOT NULL CHECK (seq > 0),
    valid_from  DATE NOT NULL,
    valid_until DATE NOT NULL,
    recorded_by TEXT,
    recorded_at TIMESTAMP NOT NULL,
    PRIMARY KEY (permit_id, seq)
);

CREATE TABLE permit_visits (
    id          TEXT PRIMARY KEY,
    permit_id   TEXT NOT NULL REFERENCES permits (id),
    visited_on  DATE NOT NULL,
    notes       TEXT NOT NULL,
    recorded_by TEXT,
    recorded_at TIMESTAMP NOT NULL
);
CREATE INDEX permit_visits_permit_id_idx ON permit_visits (permit_id, visited_on);
