ALTER TABLE import_jobs DROP COLUMN line_done;
