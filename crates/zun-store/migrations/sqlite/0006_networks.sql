-- The built-in container networks (IPAM): one network (with one IPv4
-- subnet) per project and name, and the ports holding containers'
-- addresses on them. Portable SQL apart from the SQLite-only AUTOINCREMENT
-- ids. Addresses and CIDRs are text ("10.128.16.2", "10.128.16.0/20").

CREATE TABLE networks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    project_id TEXT NOT NULL,
    subnet_uuid TEXT NOT NULL UNIQUE,
    cidr TEXT NOT NULL,
    gateway TEXT NOT NULL,
    -- The subnet's index in its pool, also the VXLAN id: unique, so no two
    -- networks share a subnet or a segment.
    vni BIGINT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    UNIQUE (project_id, name)
);

-- A port lives as long as its container (deleted with the container's
-- row); no foreign key to containers, so a port may be allocated before
-- its container is stored.
CREATE TABLE network_ports (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid TEXT NOT NULL UNIQUE,
    network_uuid TEXT NOT NULL REFERENCES networks (uuid),
    container_uuid TEXT NOT NULL,
    project_id TEXT NOT NULL,
    host TEXT,
    ip_address TEXT NOT NULL,
    mac_address TEXT NOT NULL,
    created_at TEXT NOT NULL,
    -- The last word against handing one address out twice.
    UNIQUE (network_uuid, ip_address),
    UNIQUE (container_uuid, network_uuid)
);

CREATE INDEX ix_network_ports_host ON network_ports (host);
CREATE INDEX ix_network_ports_container_uuid ON network_ports (container_uuid);
