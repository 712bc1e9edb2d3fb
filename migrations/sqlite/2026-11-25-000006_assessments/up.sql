-- Baseline and follow-up assessments of persons. The neighbourhood is the person's at the time of
-- the assessment, so statistics per neighbourhood do not move when a person moves later.
CREATE TABLE assessments (
    id                TEXT PRIMARY KEY,
    person_id         TEXT NOT NULL REFERENCES persons (id),
    neighbourhood_id  TEXT REFERENCES areas (id),
    kind              TEXT NOT NULL CHECK (kind IN ('baseline', 'follow_up')),
    assessed_on       DATE NOT NULL,
    employment_status TEXT NOT NULL CHECK (employment_status IN ('employed', 'unemployed',
                          'not_in_labour_force')),
    income_band       TEXT NOT NULL CHECK (income_band IN ('none', 'under_20m', '20m_to_50m',
                          '50m_to_100m', 'over_100m')),
    social_insurance  BOOLEAN NOT NULL,
    -- Space-separated welfare services, e.g. 'cash_subsidy relief_committee'.
    welfare_services  TEXT NOT NULL,
    skills            TEXT,
    disability        BOOLEAN NOT NULL,
    dependants        INTEGER NOT NULL CHECK (dependants BETWEEN 0 AND 30),
    recorded_by       TEXT,
    created_at        TIMESTAMP NOT NULL
);
CREATE INDEX assessments_person_id_idx ON assessments (person_id, assessed_on);
CREATE INDEX assessments_neighbourhood_id_idx ON assessments (neighbourhood_id, assessed_on);
-- One baseline per person.
CREATE UNIQUE INDEX assessments_one_baseline_idx ON assessments (person_id) WHERE kind = 'baseline';
