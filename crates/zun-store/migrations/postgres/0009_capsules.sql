-- Capsules and their members. The twin of migrations/sqlite/0009_capsules.sql:
-- text in the "C" collation (see 0001).

ALTER TABLE containers ADD COLUMN kind TEXT COLLATE "C" NOT NULL DEFAULT 'container';
ALTER TABLE containers ADD COLUMN capsule_uuid TEXT COLLATE "C";

CREATE INDEX ix_containers_capsule_uuid ON containers (capsule_uuid);
CREATE INDEX ix_containers_kind ON containers (kind);
