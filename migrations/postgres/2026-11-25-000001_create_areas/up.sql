-- Areas: province → city → district → neighbourhood. Every other table reaches an area, so the
-- province can become the distribution key if the schema ever runs on Citus.
CREATE TABLE areas (
    id         TEXT PRIMARY KEY,
    parent_id  TEXT REFERENCES areas (id),
    level      TEXT NOT NULL CHECK (level IN ('province', 'city', 'district', 'neighbourhood')),
    code       TEXT NOT NULL UNIQUE CHECK (length(code) BETWEEN 1 AND 32),
    name_fa    TEXT NOT NULL CHECK (length(name_fa) > 0),
    name_en    TEXT NOT NULL CHECK (length(name_en) > 0),
    version    BIGINT NOT NULL DEFAULT 1 CHECK (version > 0),
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    -- Only a province stands alone.
    CHECK ((level = 'province') = (parent_id IS NULL))
);

CREATE INDEX areas_parent_id_idx ON areas (parent_id, id);
CREATE INDEX areas_level_idx ON areas (level, id);
