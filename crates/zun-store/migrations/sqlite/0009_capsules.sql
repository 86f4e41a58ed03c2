-- Capsules (Zun's pods) and their members are rows of `containers`, as
-- upstream keeps them: `kind` says which, and a member names its capsule.
-- Both are set once, at insert.

ALTER TABLE containers ADD COLUMN kind TEXT NOT NULL DEFAULT 'container';
ALTER TABLE containers ADD COLUMN capsule_uuid TEXT;

CREATE INDEX ix_containers_capsule_uuid ON containers (capsule_uuid);
CREATE INDEX ix_containers_kind ON containers (kind);
