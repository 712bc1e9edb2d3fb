DROP TABLE duplicate_candidates;
DROP TABLE household_memberships;
DROP TABLE persons;
