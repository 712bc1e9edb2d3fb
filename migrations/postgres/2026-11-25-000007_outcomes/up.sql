-- Employment outcomes with their evidence and verification, and their follow-ups at 3, 6 and 12
-- months.
CREATE TABLE employment_outcomes (
    id                 TEXT PRIMARY KEY,
    person_id          TEXT NOT NULL REFERENCES persons (id),
    neighbourhood_id   TEXT REFERENCES areas (id),
    kind               TEXT NOT NULL CHECK (kind IN ('home_business', 'wage_job', 'self_employed',
                           'cooperative')),
    started_on         DATE NOT NULL,
    evidence           TEXT NOT NULL CHECK (evidence IN ('social_insurance', 'permit_and_sales',
                           'employer_letter')),
    evidence_reference TEXT,
    recorded_by        TEXT,
    verified_by        TEXT,
    verified_on        DATE,
    version            BIGINT NOT NULL DEFAULT 1 CHECK (version > 0),
    created_at         TIMESTAMP NOT NULL,
    CHECK ((verified_by IS NULL) = (verified_on IS NULL))
);
CREATE INDEX employment_outcomes_person_id_idx ON employment_outcomes (person_id, started_on);
CREATE INDEX employment_outcomes_neighbourhood_id_idx ON employment_outcomes (neighbourhood_id, started_on);

CREATE TABLE outcome_follow_ups (
    outcome_id     TEXT NOT NULL REFERENCES employment_outcomes (id),
    months         INTEGER NOT NULL CHECK (months IN (3, 6, 12)),
    due_on         DATE NOT NULL,
    done_on        DATE,
    still_employed BOOLEAN,
    notes          TEXT,
    recorded_by    TEXT,
    PRIMARY KEY (outcome_id, months),
    CHECK ((done_on IS NULL) = (still_employed IS NULL))
);
CREATE INDEX outcome_follow_ups_due_on_idx ON outcome_follow_ups (due_on) ;
