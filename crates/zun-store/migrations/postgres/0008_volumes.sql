-- Volumes of the `mounts` API. The twin of migrations/sqlite/0008_volumes.sql:
-- identity ids, and text in the "C" collation (see 0001).

CREATE TABLE volumes (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    uuid TEXT COLLATE "C" NOT NULL UNIQUE,
    name TEXT COLLATE "C",
    project_id TEXT COLLATE "C" NOT NULL,
    user_id TEXT COLLATE "C" NOT NULL,
    driver TEXT COLLATE "C" NOT NULL,
    host TEXT COLLATE "C",
    size_gib BIGINT NOT NULL,
    auto_remove BOOLEAN NOT NULL,
    container_uuid TEXT COLLATE "C",
    created_at TEXT COLLATE "C" NOT NULL,
    UNIQUE (project_id, name)
);

CREATE INDEX ix_volumes_container_uuid ON volumes (container_uuid);
CREATE INDEX ix_volumes_host ON volumes (host);
