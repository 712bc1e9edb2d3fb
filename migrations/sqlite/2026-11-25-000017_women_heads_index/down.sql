DROP INDEX persons_women_heads_idx;
CREATE INDEX persons_sex_role_id_idx ON persons (sex, household_role, id);
