-- Security groups of the built-in networks. A group's rules are kept as
-- one JSON array (Neutron's rule shape): they are read and written with
-- their group, never alone. A container names its groups in its own body.

CREATE TABLE security_groups (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid TEXT NOT NULL UNIQUE,
    project_id TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    rules TEXT NOT NULL,
    -- The container whose exposed ports the group opens: removed with it.
    container_uuid TEXT,
    created_at TEXT NOT NULL,
    UNIQUE (project_id, name)
);

CREATE INDEX ix_security_groups_container_uuid ON security_groups (container_uuid);
CREATE INDEX ix_network_ports_project_id ON network_ports (project_id);
