-- Compute services and their nodes (reference §7.2-7.4). The twin of
-- migrations/sqlite/0005_hosts.sql: identity ids, and text in the "C"
-- collation (see 0001).

CREATE TABLE services (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    host TEXT COLLATE "C" NOT NULL,
    binary_name TEXT COLLATE "C" NOT NULL,
    disabled BOOLEAN NOT NULL,
    disabled_reason TEXT,
    forced_down BOOLEAN NOT NULL,
    report_count BIGINT NOT NULL,
    availability_zone TEXT COLLATE "C",
    last_seen_up TEXT COLLATE "C",
    created_at TEXT COLLATE "C" NOT NULL,
    updated_at TEXT COLLATE "C",
    UNIQUE (host, binary_name)
);

-- One per compute host: what it offers (the whole record as JSON). What it
-- holds is not stored: it is the sum of the containers placed on it, so a
-- claim is the container row itself and can never drift from it.
CREATE TABLE compute_nodes (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    uuid TEXT COLLATE "C" NOT NULL UNIQUE,
    hostname TEXT COLLATE "C" NOT NULL UNIQUE,
    body TEXT NOT NULL,
    created_at TEXT COLLATE "C" NOT NULL,
    updated_at TEXT COLLATE "C"
);
