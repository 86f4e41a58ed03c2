-- Quotas (reference §7.5, §7.6, §10). Identical to the SQLite migration: the
-- statements are portable. A limit of -1 means unlimited.

-- Per-project limits; a project without a row for a resource falls back to
-- the quota class `default`, then to the configured default.
CREATE TABLE quotas (
    project_id TEXT NOT NULL,
    resource TEXT NOT NULL,
    hard_limit BIGINT NOT NULL,
    PRIMARY KEY (project_id, resource)
);

-- Per-class limits; the class `default` overrides the configured defaults
-- for every project.
CREATE TABLE quota_classes (
    class_name TEXT NOT NULL,
    resource TEXT NOT NULL,
    hard_limit BIGINT NOT NULL,
    PRIMARY KEY (class_name, resource)
);
