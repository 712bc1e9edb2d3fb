-- Training: the course catalogue, cohorts held by a provider in a neighbourhood, their sessions,
-- registrations (with a waitlist) and attendance. Plus numbered series (certificates, permits).

CREATE TABLE courses (
    id            TEXT PRIMARY KEY,
    category      TEXT NOT NULL CHECK (category IN ('life_skills', 'addiction_prevention',
                      'divorce_prevention', 'addiction_awareness', 'business_entrepreneurship',
                      'labour_law', 'social_security', 'technical_vocational')),
    title_fa      TEXT NOT NULL,
    title_en      TEXT NOT NULL,
    hours         INTEGER NOT NULL CHECK (hours > 0),
    provider_kind TEXT NOT NULL,
    sensitive     BOOLEAN NOT NULL,
    version       BIGINT NOT NULL DEFAULT 1 CHECK (version > 0),
    created_at    TIMESTAMP NOT NULL,
    updated_at    TIMESTAMP NOT NULL,
    CHECK (sensitive OR category NOT IN ('addiction_prevention', 'divorce_prevention',
                                         'addiction_awareness'))
);

CREATE TABLE cohorts (
    id               TEXT PRIMARY KEY,
    course_id        TEXT NOT NULL REFERENCES courses (id),
    provider_id      TEXT NOT NULL REFERENCES organisations (id),
    neighbourhood_id TEXT NOT NULL REFERENCES areas (id),
    venue            TEXT NOT NULL,
    capacity         INTEGER NOT NULL CHECK (capacity > 0),
    starts_on        DATE NOT NULL,
    ends_on          DATE NOT NULL,
    trainer_id       TEXT REFERENCES users (id),
    state            TEXT NOT NULL CHECK (state IN ('open', 'closed')),
    version          BIGINT NOT NULL DEFAULT 1 CHECK (version > 0),
    created_at       TIMESTAMP NOT NULL,
    updated_at       TIMESTAMP NOT NULL,
    CHECK (ends_on >= starts_on)
);
CREATE INDEX cohorts_neighbourhood_id_idx ON cohorts (neighbourhood_id, id);
CREATE INDEX cohorts_course_id_idx ON cohorts (course_id);

CREATE TABLE cohort_sessions (
    id         TEXT PRIMARY KEY,
    cohort_id  TEXT NOT NULL REFERENCES cohorts (id),
    held_on    DATE NOT NULL,
    topic      TEXT,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX cohort_sessions_cohort_id_idx ON cohort_sessions (cohort_id, held_on);

CREATE TABLE registrations (
    id                 TEXT PRIMARY KEY,
    cohort_id          TEXT NOT NULL REFERENCES cohorts (id),
    person_id          TEXT NOT NULL REFERENCES persons (id),
    status             TEXT NOT NULL CHECK (status IN ('registered', 'waitlisted', 'withdrawn',
                           'completed', 'not_completed')),
    -- Order of arrival within the cohort; the waitlist is promoted in this order.
    position           BIGINT NOT NULL,
    certificate_number TEXT UNIQUE,
    completed_on       DATE,
    registered_at      TIMESTAMP NOT NULL,
    updated_at         TIMESTAMP NOT NULL,
    UNIQUE (cohort_id, person_id),
    UNIQUE (cohort_id, position),
    CHECK ((status = 'completed') = (certificate_number IS NOT NULL))
);
CREATE INDEX registrations_person_id_idx ON registrations (person_id);

CREATE TABLE attendance (
    session_id  TEXT NOT NULL REFERENCES cohort_sessions (id),
    person_id   TEXT NOT NULL REFERENCES persons (id),
    mark        TEXT NOT NULL CHECK (mark IN ('present', 'absent', 'excused')),
    recorded_by TEXT,
    recorded_at TIMESTAMP NOT NULL,
    PRIMARY KEY (session_id, person_id)
);

-- Numbered series ("certificate:1403", "permit:1403"): the next number is taken inside the
-- transaction that uses it, so two issuers never get the same one.
CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value BIGINT NOT NULL CHECK (value >= 0)
);
