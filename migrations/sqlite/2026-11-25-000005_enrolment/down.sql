DROP TABLE enrolment_transitions;
DROP TABLE enrolments;
DROP TABLE programme_partners;
DROP TABLE programme_targets;
DROP TABLE programmes;
DROP TABLE consents;
