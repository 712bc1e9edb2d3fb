-- The neighbourhoods each facilitation office covers.
CREATE TABLE organisation_areas (
    organisation_id TEXT NOT NULL REFERENCES organisations (id),
    area_id         TEXT NOT NULL REFERENCES areas (id),
    PRIMARY KEY (organisation_id, area_id)
);
CREATE INDEX organisation_areas_area_id_idx ON organisation_areas (area_id);
