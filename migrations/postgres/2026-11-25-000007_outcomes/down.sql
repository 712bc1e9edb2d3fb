DROP TABLE outcome_follow_ups;
DROP TABLE employment_outcomes;
