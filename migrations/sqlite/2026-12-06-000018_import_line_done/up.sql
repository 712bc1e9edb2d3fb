-- The line of the last row a job in `rows` mode committed: a resumed job goes on after it. Counting
-- rows instead (`rows_done`) would skip the wrong rows if the reader's rules for which lines are
-- rows changed between the stop and the resume (a row of empty cells, once a row, is now passed
-- over like a blank line). Empty for jobs stopped before it was recorded: they go on by count.
ALTER TABLE import_jobs ADD COLUMN line_done BIGINT;
