DROP TABLE permit_visits;
DROP TABLE permit_periods;
DROP TABLE permits;
DROP TABLE permit_application_steps;
DROP TABLE permit_applications;
ALTER TABLE programmes DROP COLUMN advance_on_permit;
DROP TABLE business_activities;
