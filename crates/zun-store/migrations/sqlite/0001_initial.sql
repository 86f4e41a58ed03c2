-- Initial schema. Types are chosen to carry over to PostgreSQL unchanged
-- except for the SQLite-only `INTEGER PRIMARY KEY AUTOINCREMENT` ids
-- (BIGSERIAL / GENERATED ... AS IDENTITY there). Times are fixed-width
-- RFC 3339 text in UTC with microseconds ("2024-01-02T03:04:05.000006Z"),
-- so text order is time order.

CREATE TABLE containers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid TEXT NOT NULL UNIQUE,
    -- Bumped on every write; updates compare-and-swap on it.
    revision BIGINT NOT NULL,
    -- The whole record as JSON; the columns below are copies extracted on
    -- every write, for filtering, sorting and host lookups.
    body TEXT NOT NULL,
    name TEXT NOT NULL,
    project_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    image TEXT NOT NULL,
    status TEXT NOT NULL,
    task_state TEXT,
    host TEXT,
    memory TEXT,
    cpu DOUBLE PRECISION,
    disk BIGINT NOT NULL,
    auto_remove BOOLEAN NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT
);

CREATE INDEX ix_containers_project_id ON containers (project_id);
CREATE INDEX ix_containers_name ON containers (name);
CREATE INDEX ix_containers_host ON containers (host);
CREATE INDEX ix_containers_status ON containers (status);
CREATE INDEX ix_containers_created_at ON containers (created_at);

-- The action log outlives its container (no foreign key to containers).
CREATE TABLE container_actions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    container_uuid TEXT NOT NULL,
    request_id TEXT NOT NULL,
    action TEXT NOT NULL,
    user_id TEXT NOT NULL,
    project_id TEXT NOT NULL,
    host TEXT,
    -- Action arguments as JSON.
    params TEXT NOT NULL,
    start_time TEXT NOT NULL,
    finish_time TEXT,
    message TEXT
);

CREATE INDEX ix_container_actions_host_finish ON container_actions (host, finish_time);
CREATE INDEX ix_container_actions_container_uuid ON container_actions (container_uuid, request_id);

CREATE TABLE action_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    action_id BIGINT NOT NULL REFERENCES container_actions (id) ON DELETE CASCADE,
    event TEXT NOT NULL,
    start_time TEXT NOT NULL,
    finish_time TEXT,
    result TEXT,
    traceback TEXT
);

CREATE INDEX ix_action_events_action_id ON action_events (action_id, event);
