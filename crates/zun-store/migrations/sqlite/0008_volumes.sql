-- Volumes of the `mounts` API. A volume serves one container at a time
-- (`container_uuid`, claimed in the container's insert and released in its
-- delete); a local volume's data lives on `host`, where the containers
-- that mount it are placed. `auto_remove` volumes (a `size` mount) go with
-- their container's row.

CREATE TABLE volumes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid TEXT NOT NULL UNIQUE,
    name TEXT,
    project_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    driver TEXT NOT NULL,
    host TEXT,
    size_gib BIGINT NOT NULL,
    auto_remove BOOLEAN NOT NULL,
    container_uuid TEXT,
    created_at TEXT NOT NULL,
    UNIQUE (project_id, name)
);

CREATE INDEX ix_volumes_container_uuid ON volumes (container_uuid);
CREATE INDEX ix_volumes_host ON volumes (host);
