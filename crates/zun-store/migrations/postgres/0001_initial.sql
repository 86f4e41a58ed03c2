-- Initial schema: the PostgreSQL twin of migrations/sqlite/0001_initial.sql,
-- with the same tables, columns and indexes. Differences: identity ids
-- instead of SQLite's AUTOINCREMENT, and text columns in the "C" collation
-- so that sorting (and the keyset pages built on it) is byte-wise as in
-- SQLite whatever the cluster's locale. Times are fixed-width RFC 3339 text
-- in UTC with microseconds ("2024-01-02T03:04:05.000006Z"), so text order
-- is time order.

CREATE TABLE containers (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    uuid TEXT COLLATE "C" NOT NULL UNIQUE,
    -- Bumped on every write; updates compare-and-swap on it.
    revision BIGINT NOT NULL,
    -- The whole record as JSON; the columns below are copies extracted on
    -- every write, for filtering, sorting and host lookups.
    body TEXT NOT NULL,
    name TEXT COLLATE "C" NOT NULL,
    project_id TEXT COLLATE "C" NOT NULL,
    user_id TEXT COLLATE "C" NOT NULL,
    image TEXT COLLATE "C" NOT NULL,
    status TEXT COLLATE "C" NOT NULL,
    task_state TEXT COLLATE "C",
    host TEXT COLLATE "C",
    memory TEXT COLLATE "C",
    cpu DOUBLE PRECISION,
    disk BIGINT NOT NULL,
    auto_remove BOOLEAN NOT NULL,
    created_at TEXT COLLATE "C" NOT NULL,
    updated_at TEXT COLLATE "C"
);

CREATE INDEX ix_containers_project_id ON containers (project_id);
CREATE INDEX ix_containers_name ON containers (name);
CREATE INDEX ix_containers_host ON containers (host);
CREATE INDEX ix_containers_status ON containers (status);
CREATE INDEX ix_containers_created_at ON containers (created_at);

-- The action log outlives its container (no foreign key to containers).
CREATE TABLE container_actions (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    container_uuid TEXT COLLATE "C" NOT NULL,
    request_id TEXT COLLATE "C" NOT NULL,
    action TEXT NOT NULL,
    user_id TEXT NOT NULL,
    project_id TEXT NOT NULL,
    host TEXT COLLATE "C",
    -- Action arguments as JSON.
    params TEXT NOT NULL,
    start_time TEXT COLLATE "C" NOT NULL,
    finish_time TEXT COLLATE "C",
    message TEXT
);

CREATE INDEX ix_container_actions_host_finish ON container_actions (host, finish_time);
CREATE INDEX ix_container_actions_container_uuid ON container_actions (container_uuid, request_id);

CREATE TABLE action_events (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    action_id BIGINT NOT NULL REFERENCES container_actions (id) ON DELETE CASCADE,
    event TEXT NOT NULL,
    start_time TEXT COLLATE "C" NOT NULL,
    finish_time TEXT COLLATE "C",
    result TEXT,
    traceback TEXT
);

CREATE INDEX ix_action_events_action_id ON action_events (action_id, event);
