DROP TABLE import_errors;
DROP TABLE import_jobs;
