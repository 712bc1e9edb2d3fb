DROP TABLE counters;
DROP TABLE attendance;
DROP TABLE registrations;
DROP TABLE cohort_sessions;
DROP TABLE cohorts;
DROP TABLE courses;
