DROP TABLE progress_counts;
DROP TABLE enrolment_stages;
