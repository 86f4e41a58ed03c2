-- Private registries (reference §7.7) and images pulled through the API
-- (§7.1). The twin of migrations/sqlite/0004_registries_images.sql: identity
-- ids, and sortable text in the "C" collation (see 0001).

CREATE TABLE registries (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    uuid TEXT COLLATE "C" NOT NULL UNIQUE,
    name TEXT COLLATE "C",
    domain TEXT COLLATE "C" NOT NULL,
    username TEXT COLLATE "C",
    -- AES-256-GCM under the service's key, bound to uuid (zun-secrets);
    -- never the plain text.
    password_sealed TEXT,
    project_id TEXT COLLATE "C" NOT NULL,
    user_id TEXT COLLATE "C" NOT NULL,
    created_at TEXT COLLATE "C" NOT NULL,
    updated_at TEXT COLLATE "C"
);

CREATE INDEX ix_registries_project_id ON registries (project_id);
CREATE INDEX ix_registries_name ON registries (name);

CREATE TABLE images (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    uuid TEXT COLLATE "C" NOT NULL UNIQUE,
    image_id TEXT COLLATE "C",
    repo TEXT COLLATE "C" NOT NULL,
    tag TEXT COLLATE "C" NOT NULL,
    size TEXT COLLATE "C",
    host TEXT COLLATE "C" NOT NULL,
    project_id TEXT COLLATE "C" NOT NULL,
    user_id TEXT COLLATE "C" NOT NULL,
    -- 'pulling' or 'deleting' while the host's agent has work to do.
    task TEXT,
    created_at TEXT COLLATE "C" NOT NULL,
    updated_at TEXT COLLATE "C"
);

CREATE INDEX ix_images_host_task ON images (host, task);

-- The registry a container pulls from (its uuid), so a registry in use
-- cannot be deleted.
ALTER TABLE containers ADD COLUMN registry_id TEXT COLLATE "C";
CREATE INDEX ix_containers_registry_id ON containers (registry_id);
