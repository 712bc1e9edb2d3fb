-- Consent, programmes with their targets, and the enrolment of households with the full history
-- of their transitions (so "how many were enrolled on day D" can be answered).

CREATE TABLE consents (
    id                  TEXT PRIMARY KEY,
    person_id           TEXT NOT NULL REFERENCES persons (id),
    purpose             TEXT NOT NULL CHECK (purpose IN ('programme', 'research')),
    share_with_partners BOOLEAN NOT NULL,
    given_on            DATE NOT NULL,
    recorded_by         TEXT,
    recorded_at         TIMESTAMP NOT NULL,
    withdrawn_on        DATE,
    withdrawn_by        TEXT,
    withdrawal_reason   TEXT,
    CHECK (withdrawn_on IS NULL OR withdrawn_on >= given_on)
);
CREATE INDEX consents_person_id_idx ON consents (person_id, purpose);

CREATE TABLE programmes (
    id                TEXT PRIMARY KEY,
    code              TEXT NOT NULL UNIQUE,
    name_fa           TEXT NOT NULL,
    name_en           TEXT NOT NULL,
    jalali_year       INTEGER NOT NULL CHECK (jalali_year BETWEEN 1300 AND 1500),
    area_id           TEXT REFERENCES areas (id),
    target_households INTEGER CHECK (target_households IS NULL OR target_households > 0),
    starts_on         DATE NOT NULL,
    ends_on           DATE NOT NULL,
    version           BIGINT NOT NULL DEFAULT 1 CHECK (version > 0),
    created_at        TIMESTAMP NOT NULL,
    updated_at        TIMESTAMP NOT NULL,
    CHECK (ends_on >= starts_on)
);

CREATE TABLE programme_targets (
    programme_id TEXT NOT NULL REFERENCES programmes (id),
    stage        TEXT NOT NULL CHECK (stage IN ('identified', 'assessed', 'enrolled',
                     'in_training', 'permitted', 'financed', 'employed', 'graduated')),
    target       INTEGER NOT NULL CHECK (target > 0),
    PRIMARY KEY (programme_id, stage)
);

CREATE TABLE programme_partners (
    programme_id    TEXT NOT NULL REFERENCES programmes (id),
    organisation_id TEXT NOT NULL REFERENCES organisations (id),
    PRIMARY KEY (programme_id, organisation_id)
);

-- The programmes of the article, for year 1398 (2019-03-21 .. 2020-03-19).
INSERT INTO programmes (id, code, name_fa, name_en, jalali_year, target_households, starts_on, ends_on, created_at, updated_at)
VALUES
    ('0169a6c0-0000-7000-8000-000000000001', 'WHH-1398', 'بانوان سرپرست خانوار ۱۳۹۸',
     'Women heads of household 1398', 1398, 600, '2019-03-21', '2020-03-19',
     '2019-03-21 00:00:00', '2019-03-21 00:00:00'),
    ('0169a6c0-0000-7000-8000-000000000002', 'SHP-1398', 'پیشگیری از آسیب‌های اجتماعی',
     'Social-harm prevention', 1398, NULL, '2019-03-21', '2020-03-19',
     '2019-03-21 00:00:00', '2019-03-21 00:00:00'),
    ('0169a6c0-0000-7000-8000-000000000003', 'EEM-1398', 'کارآفرینی و اشتغال',
     'Entrepreneurship and employment', 1398, NULL, '2019-03-21', '2020-03-19',
     '2019-03-21 00:00:00', '2019-03-21 00:00:00');
INSERT INTO programme_targets (programme_id, stage, target) VALUES
    ('0169a6c0-0000-7000-8000-000000000001', 'identified', 600),
    ('0169a6c0-0000-7000-8000-000000000001', 'enrolled', 600),
    ('0169a6c0-0000-7000-8000-000000000001', 'employed', 600);

CREATE TABLE enrolments (
    id               TEXT PRIMARY KEY,
    programme_id     TEXT NOT NULL REFERENCES programmes (id),
    household_id     TEXT NOT NULL REFERENCES households (id),
    neighbourhood_id TEXT NOT NULL REFERENCES areas (id),
    state            TEXT NOT NULL CHECK (state IN ('identified', 'assessed', 'enrolled',
                         'in_training', 'permitted', 'financed', 'employed', 'graduated',
                         'paused', 'exited')),
    state_since      DATE NOT NULL,
    -- The state held before a pause, to resume to.
    resume_to        TEXT CHECK (resume_to IS NULL OR resume_to IN ('identified', 'assessed',
                         'enrolled', 'in_training', 'permitted', 'financed', 'employed')),
    version          BIGINT NOT NULL DEFAULT 1 CHECK (version > 0),
    created_at       TIMESTAMP NOT NULL,
    updated_at       TIMESTAMP NOT NULL,
    UNIQUE (programme_id, household_id),
    CHECK ((state = 'paused') = (resume_to IS NOT NULL))
);
CREATE INDEX enrolments_programme_state_idx ON enrolments (programme_id, state);
CREATE INDEX enrolments_neighbourhood_id_idx ON enrolments (neighbourhood_id, id);

CREATE TABLE enrolment_transitions (
    id           TEXT PRIMARY KEY,
    enrolment_id TEXT NOT NULL REFERENCES enrolments (id),
    seq          INTEGER NOT NULL CHECK (seq > 0),
    from_state   TEXT,
    to_state     TEXT NOT NULL,
    effective_on DATE NOT NULL,
    reason       TEXT,
    actor_kind   TEXT NOT NULL,
    actor_id     TEXT,
    recorded_at  TIMESTAMP NOT NULL,
    UNIQUE (enrolment_id, seq)
);
CREATE INDEX enrolment_transitions_effective_on_idx ON enrolment_transitions (effective_on);
