-- What the progress report reads, kept up to date by every enrolment transition in the same
-- transaction: the first day each enrolment entered each state, and per programme, neighbourhood,
-- state and day how many households first entered it. The report then sums a few thousand rows
-- instead of walking the whole transition history.

CREATE TABLE enrolment_stages (
    enrolment_id     TEXT NOT NULL REFERENCES enrolments (id),
    stage            TEXT NOT NULL,
    first_on         DATE NOT NULL,
    programme_id     TEXT NOT NULL REFERENCES programmes (id),
    neighbourhood_id TEXT NOT NULL REFERENCES areas (id),
    PRIMARY KEY (enrolment_id, stage)
);
CREATE INDEX enrolment_stages_employed_idx ON enrolment_stages (programme_id, stage, first_on);

CREATE TABLE progress_counts (
    programme_id     TEXT NOT NULL REFERENCES programmes (id),
    neighbourhood_id TEXT NOT NULL REFERENCES areas (id),
    stage            TEXT NOT NULL,
    day              DATE NOT NULL,
    households       BIGINT NOT NULL CHECK (households > 0),
    PRIMARY KEY (programme_id, neighbourhood_id, stage, day)
);

INSERT INTO enrolment_stages (enrolment_id, stage, first_on, programme_id, neighbourhood_id)
SELECT t.enrolment_id, t.to_state, MIN(t.effective_on), e.programme_id, e.neighbourhood_id
FROM enrolment_transitions t JOIN enrolments e ON e.id = t.enrolment_id
GROUP BY t.enrolment_id, t.to_state, e.programme_id, e.neighbourhood_id;

INSERT INTO progress_counts (programme_id, neighbourhood_id, stage, day, households)
SELECT programme_id, neighbourhood_id, stage, first_on, COUNT(*)
FROM enrolment_stages
GROUP BY programme_id, neighbourhood_id, stage, first_on;
