-- One-time credentials for the websocket of an attach or an interactive exec
-- (reference §9). Only a hash of the token is kept, so a read of the store
-- does not give access to a container; a grant is deleted when it is used.
-- Identical to the SQLite migration: the statements are portable.
CREATE TABLE websocket_grants (
    token_sha256 TEXT PRIMARY KEY NOT NULL,
    container_uuid TEXT NOT NULL,
    project_id TEXT NOT NULL,
    -- NULL for an attach; the exec instance's id for an exec.
    exec_id TEXT,
    -- Unix seconds.
    expires_at BIGINT NOT NULL
);

CREATE INDEX websocket_grants_expiry ON websocket_grants (expires_at);
