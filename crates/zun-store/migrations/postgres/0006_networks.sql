-- The built-in container networks (IPAM). The twin of
-- migrations/sqlite/0006_networks.sql: identity ids, and text in the "C"
-- collation (see 0001). Addresses and CIDRs are text ("10.128.16.2",
-- "10.128.16.0/20"), as on SQLite.

CREATE TABLE networks (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    uuid TEXT COLLATE "C" NOT NULL UNIQUE,
    name TEXT COLLATE "C" NOT NULL,
    project_id TEXT COLLATE "C" NOT NULL,
    subnet_uuid TEXT COLLATE "C" NOT NULL UNIQUE,
    cidr TEXT COLLATE "C" NOT NULL,
    gateway TEXT COLLATE "C" NOT NULL,
    -- The subnet's index in its pool, also the VXLAN id: unique, so no two
    -- networks share a subnet or a segment.
    vni BIGINT NOT NULL UNIQUE,
    created_at TEXT COLLATE "C" NOT NULL,
    UNIQUE (project_id, name)
);

-- A port lives as long as its container (deleted with the container's
-- row); no foreign key to containers, so a port may be allocated before
-- its container is stored.
CREATE TABLE network_ports (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    uuid TEXT COLLATE "C" NOT NULL UNIQUE,
    network_uuid TEXT COLLATE "C" NOT NULL REFERENCES networks (uuid),
    container_uuid TEXT COLLATE "C" NOT NULL,
    project_id TEXT COLLATE "C" NOT NULL,
    host TEXT COLLATE "C",
    ip_address TEXT COLLATE "C" NOT NULL,
    mac_address TEXT COLLATE "C" NOT NULL,
    created_at TEXT COLLATE "C" NOT NULL,
    -- The last word against handing one address out twice.
    UNIQUE (network_uuid, ip_address),
    UNIQUE (container_uuid, network_uuid)
);

CREATE INDEX ix_network_ports_host ON network_ports (host);
CREATE INDEX ix_network_ports_container_uuid ON network_ports (container_uuid);
