-- Private registries (reference §7.7) and images pulled through the API
-- (§7.1). Portable SQL apart from the SQLite-only AUTOINCREMENT ids.

CREATE TABLE registries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid TEXT NOT NULL UNIQUE,
    name TEXT,
    domain TEXT NOT NULL,
    username TEXT,
    -- AES-256-GCM under the service's key, bound to uuid (zun-secrets);
    -- never the plain text.
    password_sealed TEXT,
    project_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT
);

CREATE INDEX ix_registries_project_id ON registries (project_id);
CREATE INDEX ix_registries_name ON registries (name);

CREATE TABLE images (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid TEXT NOT NULL UNIQUE,
    image_id TEXT,
    repo TEXT NOT NULL,
    tag TEXT NOT NULL,
    size TEXT,
    host TEXT NOT NULL,
    project_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    -- 'pulling' or 'deleting' while the host's agent has work to do.
    task TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT
);

CREATE INDEX ix_images_host_task ON images (host, task);

-- The registry a container pulls from (its uuid), so a registry in use
-- cannot be deleted.
ALTER TABLE containers ADD COLUMN registry_id TEXT;
CREATE INDEX ix_containers_registry_id ON containers (registry_id);
