CREATE INDEX persons_name_idx ON persons (last_name_normalised, first_name_normalised);
DROP INDEX persons_duplicate_idx;
DROP INDEX purchases_reference_idx;
ALTER TABLE purchases DROP COLUMN reference;
DELETE FROM import_errors WHERE job_id IN (SELECT id FROM import_jobs WHERE kind <> 'persons');
DELETE FROM import_jobs WHERE kind <> 'persons';
ALTER TABLE import_jobs DROP COLUMN actor_role;
ALTER TABLE import_jobs DROP CONSTRAINT import_jobs_kind_check;
ALTER TABLE import_jobs ADD CONSTRAINT import_jobs_kind_check CHECK (kind IN ('persons'));
