-- Security groups of the built-in networks. The twin of
-- migrations/sqlite/0007_security_groups.sql: identity ids, and text in the
-- "C" collation (see 0001).

CREATE TABLE security_groups (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    uuid TEXT COLLATE "C" NOT NULL UNIQUE,
    project_id TEXT COLLATE "C" NOT NULL,
    name TEXT COLLATE "C" NOT NULL,
    description TEXT COLLATE "C" NOT NULL,
    rules TEXT COLLATE "C" NOT NULL,
    -- The container whose exposed ports the group opens: removed with it.
    container_uuid TEXT COLLATE "C",
    created_at TEXT COLLATE "C" NOT NULL,
    UNIQUE (project_id, name)
);

CREATE INDEX ix_security_groups_container_uuid ON security_groups (container_uuid);
CREATE INDEX ix_network_ports_project_id ON network_ports (project_id);
