DROP TABLE organisation_areas;
