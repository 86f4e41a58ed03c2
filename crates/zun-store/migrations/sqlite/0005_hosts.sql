-- Compute services and their nodes (reference §7.2-7.4). Portable SQL apart
-- from the SQLite-only AUTOINCREMENT ids.

CREATE TABLE services (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    host TEXT NOT NULL,
    binary_name TEXT NOT NULL,
    disabled BOOLEAN NOT NULL,
    disabled_reason TEXT,
    forced_down BOOLEAN NOT NULL,
    report_count BIGINT NOT NULL,
    availability_zone TEXT,
    last_seen_up TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT,
    UNIQUE (host, binary_name)
);

-- One per compute host: what it offers (the whole record as JSON). What it
-- holds is not stored: it is the sum of the containers placed on it, so a
-- claim is the container row itself and can never drift from it.
CREATE TABLE compute_nodes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid TEXT NOT NULL UNIQUE,
    hostname TEXT NOT NULL UNIQUE,
    body TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT
);
