CREATE INDEX persons_name_idx ON persons (last_name_normalised, first_name_normalised);
DROP INDEX persons_duplicate_idx;
DROP INDEX purchases_reference_idx;
ALTER TABLE purchases DROP COLUMN reference;
-- The jobs of the new kinds go; the column stays (SQLite keeps the wider CHECK on the way down).
DELETE FROM import_errors WHERE job_id IN (SELECT id FROM import_jobs WHERE kind <> 'persons');
DELETE FROM import_jobs WHERE kind <> 'persons';
