-- Persons and their household memberships. A person's current household, role and neighbourhood
-- are kept on the row (for scope and the derived "woman head of household"); the memberships
-- table is the history: every join, move and change of role, with dates.

CREATE TABLE persons (
    id                    TEXT PRIMARY KEY,
    national_id           TEXT NOT NULL UNIQUE CHECK (length(national_id) = 10),
    first_name            TEXT NOT NULL CHECK (length(first_name) > 0),
    last_name             TEXT NOT NULL CHECK (length(last_name) > 0),
    first_name_normalised TEXT NOT NULL,
    last_name_normalised  TEXT NOT NULL,
    birth_date            DATE NOT NULL,
    sex                   TEXT NOT NULL CHECK (sex IN ('female', 'male')),
    mobile                TEXT CHECK (mobile IS NULL OR length(mobile) = 11),
    education             TEXT CHECK (education IS NULL OR education IN ('none', 'literacy',
                              'primary', 'lower_secondary', 'diploma', 'associate', 'bachelor',
                              'master', 'doctorate')),
    household_id          TEXT REFERENCES households (id),
    household_role        TEXT CHECK (household_role IS NULL OR household_role IN ('head',
                              'spouse', 'child', 'other')),
    neighbourhood_id      TEXT REFERENCES areas (id),
    -- Set when a reviewer merged this record into another one (the survivor).
    merged_into           TEXT REFERENCES persons (id),
    version               BIGINT NOT NULL DEFAULT 1 CHECK (version > 0),
    created_at            TIMESTAMP NOT NULL,
    updated_at            TIMESTAMP NOT NULL,
    CHECK ((household_id IS NULL) = (household_role IS NULL)),
    CHECK ((household_id IS NULL) = (neighbourhood_id IS NULL))
);
CREATE INDEX persons_neighbourhood_id_idx ON persons (neighbourhood_id, id);
CREATE INDEX persons_household_id_idx ON persons (household_id);
CREATE INDEX persons_name_idx ON persons (last_name_normalised, first_name_normalised);
-- Lists filtered by sex and role (women heads of household) in id order, without a sort.
CREATE INDEX persons_sex_role_id_idx ON persons (sex, household_role, id);
-- A household has at most one head.
CREATE UNIQUE INDEX persons_one_head_idx ON persons (household_id) WHERE household_role = 'head';

CREATE TABLE household_memberships (
    id           TEXT PRIMARY KEY,
    person_id    TEXT NOT NULL REFERENCES persons (id),
    household_id TEXT NOT NULL REFERENCES households (id),
    role         TEXT NOT NULL CHECK (role IN ('head', 'spouse', 'child', 'other')),
    started_on   DATE NOT NULL,
    ended_on     DATE,
    reason       TEXT,
    recorded_at  TIMESTAMP NOT NULL,
    CHECK (ended_on IS NULL OR ended_on >= started_on)
);
CREATE INDEX household_memberships_person_id_idx ON household_memberships (person_id, started_on);
CREATE INDEX household_memberships_household_id_idx ON household_memberships (household_id, started_on);
-- Possible duplicates found on registration, for a reviewer to dismiss or merge.
CREATE TABLE duplicate_candidates (
    person_id        TEXT NOT NULL REFERENCES persons (id),
    candidate_id     TEXT NOT NULL REFERENCES persons (id),
    neighbourhood_id TEXT REFERENCES areas (id),
    status           TEXT NOT NULL CHECK (status IN ('open', 'dismissed', 'merged')),
    detected_at      TIMESTAMP NOT NULL,
    reviewed_by      TEXT,
    reviewed_at      TIMESTAMP,
    PRIMARY KEY (person_id, candidate_id),
    CHECK (person_id <> candidate_id)
);
CREATE INDEX duplicate_candidates_status_idx ON duplicate_candidates (status, neighbourhood_id);

-- At most one open membership per person.
CREATE UNIQUE INDEX household_memberships_open_idx ON household_memberships (person_id) WHERE ended_on IS NULL;
