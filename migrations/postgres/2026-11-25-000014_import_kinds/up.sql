-- Every kind of import, and the role of whoever started a job.
ALTER TABLE import_jobs DROP CONSTRAINT import_jobs_kind_check;
ALTER TABLE import_jobs ADD CONSTRAINT import_jobs_kind_check CHECK (kind IN ('households', 'persons', 'assessments', 'enrolments', 'attendance', 'purchases'));
-- The role of the user who started it: a trainer's or a supporter's rows are checked as theirs.
ALTER TABLE import_jobs ADD COLUMN actor_role TEXT;

-- Purchases imported from a supporter's own book carry its order number, imported once.
ALTER TABLE purchases ADD COLUMN reference TEXT;
CREATE UNIQUE INDEX purchases_reference_idx ON purchases (supporter_id, reference) WHERE reference IS NOT NULL;

-- Possible duplicates (same names, born the same year) are looked up by a range on the birth
-- date; this index serves the name search as well.
CREATE INDEX persons_duplicate_idx ON persons (last_name_normalised, first_name_normalised, birth_date);
DROP INDEX persons_name_idx;
