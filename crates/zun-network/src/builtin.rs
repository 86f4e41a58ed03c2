//! The built-in driver, the embedded default: one network per project on a
//! Linux bridge on each host, addresses allocated in the store (so every
//! API and agent process agrees), a veth pair into the container's own
//! namespace, and the nftables rules of [`crate::rules`].

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use serde_json::Value;
use zun_store::{ListQuery, NetworkRecord, PortRecord, SecurityGroupRecord, Store};
use zun_types::Container;
use zun_types::network::{Address, Ipv4Net, RequestedNetwork, addresses_value};
use zun_types::security_group::Rule;

use crate::command::{HostShell, already_exists, missing, unless_missing};
use crate::rules::{self, bridge_name, port_name, vxlan_name};
use crate::{Attachment, NETNS_DIR, NetworkDriver, NetworkError, netns_name};

pub use zun_types::network::DEFAULT_NETWORK_NAME;

#[derive(Debug, Clone)]
pub struct BuiltinConfig {
    /// This agent's host; its ports are recorded against it.
    pub host: String,
    /// Where every network's subnet is carved from. All processes must
    /// agree on it (a network keeps the subnet it was given).
    pub pool: Ipv4Net,
    /// Length of each network's subnet.
    pub subnet_prefix: u8,
    /// A named namespace holding this host's bridges, when several
    /// simulated hosts share one machine; None: the agent's own namespace.
    pub host_netns: Option<String>,
    /// Per-container files (resolv.conf, hosts), under
    /// `<dir>/<host>/<uuid>/`; a container's directory is made before
    /// anything else of its network, and marks what this host must clean.
    pub state_dir: PathBuf,
    /// The host's resolver configuration, whose reachable servers
    /// containers use.
    pub host_resolv_conf: PathBuf,
    /// This host's address on the network between hosts. With it, each
    /// network spans every host that has one (VXLAN, the network's vni as
    /// its id, flooding to the other hosts' addresses found in their
    /// compute nodes); without it, each host's copy of a network is a
    /// segment of its own.
    pub overlay_address: Option<Ipv4Addr>,
    /// MTU of bridges, VXLAN devices and containers' interfaces (room for
    /// VXLAN's 50 bytes on a 1500-byte underlay by default).
    pub mtu: u32,
}

impl BuiltinConfig {
    pub const DEFAULT_POOL: &str = "10.128.0.0/9";
    pub const DEFAULT_SUBNET_PREFIX: u8 = 20;

    pub fn new(host: impl Into<String>) -> Self {
        Self {
            host: host.into(),
            pool: Ipv4Net::new(Ipv4Addr::new(10, 128, 0, 0), 9)
                .unwrap_or_else(|| unreachable!("a /9 is a valid prefix")),
            subnet_prefix: Self::DEFAULT_SUBNET_PREFIX,
            host_netns: None,
            state_dir: PathBuf::from("/run/zun/net"),
            host_resolv_conf: PathBuf::from("/etc/resolv.conf"),
            overlay_address: None,
            mtu: 1450,
        }
    }
}

pub struct BuiltinDriver {
    store: Arc<dyn Store>,
    config: BuiltinConfig,
    shell: HostShell,
    /// Each project's network, once looked up (networks are never renumbered).
    networks: Mutex<HashMap<String, NetworkRecord>>,
    /// Subnets whose bridge (and VXLAN device) is known to be ready on this
    /// host since the last `prepare_host`.
    bridges: tokio::sync::Mutex<HashSet<Ipv4Net>>,
    /// The hosts file last written for each container, so a refresh
    /// rewrites only what changed.
    names_written: Mutex<HashMap<String, String>>,
    /// Groups whose member set this agent filled from the store since it
    /// started (and since the last removal of a container): a new member
    /// is then one element, not a read of the whole project.
    filled_sets: Mutex<HashMap<String, String>>,
    /// The store's ports version (count, highest id) the filled sets were
    /// last read at.
    members_version: Mutex<Option<(i64, i64)>>,
    /// Each project's default group (project -> uuid).
    default_groups: Mutex<HashMap<String, String>>,
    /// Held shared while containers' ports are plumbed, secured or
    /// removed, and exclusively while the garbage collection compares the
    /// host's links and nftables entries: a listing taken in the middle of
    /// a plumb sees an entry whose link is not made yet (or was just made
    /// anew), and removing it would cut that container off until the next
    /// collection.
    plumbing: tokio::sync::RwLock<()>,
}

/// A container's own address and names, in its state directory.
const OWN_NAMES: &str = "names";

impl std::fmt::Debug for BuiltinDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuiltinDriver")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl BuiltinDriver {
    pub fn new(store: Arc<dyn Store>, config: BuiltinConfig) -> Self {
        let shell = HostShell {
            netns: config.host_netns.clone(),
        };
        Self {
            store,
            config,
            shell,
            networks: Mutex::new(HashMap::new()),
            bridges: tokio::sync::Mutex::new(HashSet::new()),
            names_written: Mutex::new(HashMap::new()),
            filled_sets: Mutex::new(HashMap::new()),
            members_version: Mutex::new(None),
            plumbing: tokio::sync::RwLock::new(()),
            default_groups: Mutex::new(HashMap::new()),
        }
    }

    fn host_dir(&self) -> PathBuf {
        self.config.state_dir.join(&self.config.host)
    }

    fn container_dir(&self, uuid: &str) -> PathBuf {
        self.host_dir().join(uuid)
    }

    fn netns_path(uuid: &str) -> PathBuf {
        Path::new(NETNS_DIR).join(netns_name(uuid))
    }

    async fn project_network(&self, project_id: &str) -> Result<NetworkRecord, NetworkError> {
        let cached = self
            .networks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(project_id)
            .cloned();
        if let Some(network) = cached {
            return Ok(network);
        }
        let network = self
            .store
            .ensure_network(
                project_id,
                DEFAULT_NETWORK_NAME,
                self.config.pool,
                self.config.subnet_prefix,
            )
            .await?;
        self.networks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(project_id.to_owned(), network.clone());
        Ok(network)
    }

    /// Makes the network's bridge with its gateway on this host (and its
    /// VXLAN device, flooding to the other hosts), once.
    async fn ensure_bridge(&self, network: &NetworkRecord) -> Result<String, NetworkError> {
        let bridge = bridge_name(network.cidr);
        let mut ready = self.bridges.lock().await;
        if ready.contains(&network.cidr) {
            return Ok(bridge);
        }
        let missing = self
            .shell
            .ip(&["link", "show", "dev", &bridge], None)
            .await
            .is_err();
        let batch = rules::bridge_batch(
            &bridge,
            missing,
            network.gateway,
            network.cidr,
            self.config.mtu,
        );
        self.shell.ip(&["-batch", "-"], Some(&batch)).await?;
        self.shell.nft(&rules::bridge_element(&bridge)).await?;
        if let Some(local) = self.config.overlay_address {
            let vxlan = vxlan_name(network.cidr);
            if self
                .shell
                .ip(&["link", "show", "dev", &vxlan], None)
                .await
                .is_err()
            {
                let batch =
                    rules::vxlan_batch(&vxlan, network.vni, local, &bridge, self.config.mtu);
                self.shell.ip(&["-batch", "-"], Some(&batch)).await?;
            }
            let peers = self.peers().await?;
            self.flood_to(&vxlan, &peers).await?;
        }
        ready.insert(network.cidr);
        tracing::info!(%bridge, cidr = %network.cidr, "network bridge ready");
        Ok(bridge)
    }

    /// The other hosts' overlay addresses, from their compute nodes.
    async fn peers(&self) -> Result<Vec<Ipv4Addr>, NetworkError> {
        let mut peers: Vec<Ipv4Addr> = self
            .store
            .list_hosts()
            .await?
            .into_iter()
            .filter(|h| h.node.hostname != self.config.host)
            .filter_map(|h| h.node.overlay_address?.parse().ok())
            .filter(|a| Some(*a) != self.config.overlay_address)
            .collect();
        peers.sort_unstable();
        peers.dedup();
        Ok(peers)
    }

    /// Makes `vxlan` flood to exactly `peers`.
    async fn flood_to(&self, vxlan: &str, peers: &[Ipv4Addr]) -> Result<(), NetworkError> {
        let fdb = self
            .shell
            .run("bridge", &["fdb", "show", "dev", vxlan], None)
            .await?;
        let current = rules::flood_peers(&fdb);
        let mut batch = String::new();
        for peer in peers.iter().filter(|p| !current.contains(p)) {
            batch.push_str(&rules::flood_entry("append", vxlan, *peer));
        }
        for gone in current.iter().filter(|p| !peers.contains(p)) {
            batch.push_str(&rules::flood_entry("del", vxlan, *gone));
        }
        if !batch.is_empty() {
            self.shell
                .run("bridge", &["-batch", "-"], Some(&batch))
                .await?;
            tracing::info!(%vxlan, ?peers, "overlay peers updated");
        }
        Ok(())
    }

    /// Makes the container's namespace unless it exists; returns whether
    /// it made it (a new namespace holds nothing yet, which saves looking).
    async fn ensure_netns(&self, uuid: &str) -> Result<bool, NetworkError> {
        if Self::netns_path(uuid).exists() {
            return Ok(false);
        }
        match self.shell.netns_add(&netns_name(uuid)).await {
            Ok(()) => Ok(true),
            Err(err) if already_exists(&err) => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// Whether the port's address is on an interface of the namespace.
    async fn plumbed(&self, uuid: &str, port: &PortRecord) -> bool {
        match self
            .shell
            .ip_in(&netns_name(uuid), &["-o", "-4", "addr", "show"], None)
            .await
        {
            Ok(out) => out.contains(&format!(" {}/", port.ip)),
            Err(_) => false,
        }
    }

    /// The first `ethN` not taken in the container's namespace.
    async fn free_interface(&self, uuid: &str) -> Result<String, NetworkError> {
        let links = self
            .shell
            .ip_in(&netns_name(uuid), &["-o", "link", "show"], None)
            .await?;
        let taken: HashSet<&str> = links
            .lines()
            .filter_map(|line| line.split(": ").nth(1))
            .map(|name| name.split('@').next().unwrap_or(name))
            .collect();
        Ok((0..)
            .map(|n| format!("eth{n}"))
            .find(|name| !taken.contains(name.as_str()))
            .unwrap_or_else(|| "eth0".to_owned()))
    }

    /// Plumbs one port into the container's namespace: a veth from the
    /// network's bridge, named `ethN` inside, with the port's MAC and
    /// address (and the default route, for the container's first port).
    /// A port already carrying its address is kept as it is (its container
    /// may be running); an earlier attempt's half-made veth is replaced.
    async fn plumb(
        &self,
        uuid: &str,
        network: &NetworkRecord,
        port: &PortRecord,
        bridge: &str,
        primary: bool,
    ) -> Result<(), NetworkError> {
        let netns = netns_name(uuid);
        let host_port = port_name(&port.uuid);
        // A namespace made just now holds nothing: no need to look (the
        // common create path is then four commands).
        let fresh = self.ensure_netns(uuid).await?;
        if !fresh && self.plumbed(uuid, port).await {
            // Re-attach the host end, in case its bridge was made anew.
            self.shell
                .ip(&["link", "set", &host_port, "master", bridge, "up"], None)
                .await?;
        } else {
            let mut inside = if fresh {
                "eth0".to_owned()
            } else {
                self.free_interface(uuid).await?
            };
            let batch_for = |inside: &str| {
                rules::port_host_batch(
                    &netns,
                    &host_port,
                    inside,
                    bridge,
                    &port.mac,
                    self.config.mtu,
                )
            };
            if let Err(err) = self
                .shell
                .ip(&["-batch", "-"], Some(&batch_for(&inside)))
                .await
            {
                if !already_exists(&err) {
                    return Err(err);
                }
                // An earlier attempt's half-made veth: replace it.
                self.unplumb_port(port).await?;
                inside = self.free_interface(uuid).await?;
                self.shell
                    .ip(&["-batch", "-"], Some(&batch_for(&inside)))
                    .await?;
            }
            let batch = rules::port_inside_batch(
                &inside,
                port.ip,
                network.cidr,
                primary.then_some(network.gateway),
            );
            self.shell
                .ip_in(&netns, &["-batch", "-"], Some(&batch))
                .await?;
        }
        self.shell
            .nft(&rules::port_element("add", &host_port, &port.mac, port.ip))
            .await
    }

    /// Removes one port's security rules, veth and anti-spoofing entry.
    async fn unplumb_port(&self, port: &PortRecord) -> Result<(), NetworkError> {
        self.unsecure(port.ip).await?;
        let host_port = port_name(&port.uuid);
        let element = rules::port_element("delete", &host_port, &port.mac, port.ip);
        unless_missing(self.shell.nft(&element).await)?;
        unless_missing(self.shell.ip(&["link", "del", &host_port], None).await)
    }

    /// Removes the container's ports (host ends first: a namespace a
    /// process still holds outlives its name, and its veths with it) and
    /// its namespace.
    async fn unplumb(&self, uuid: &str, ports: &[PortRecord]) -> Result<(), NetworkError> {
        for port in ports {
            self.unplumb_port(port).await?;
        }
        if Self::netns_path(uuid).exists() {
            unless_missing(self.shell.netns_del(&netns_name(uuid)).await)?;
        }
        Ok(())
    }

    /// The network a request names, among the project's: by uuid, or by
    /// name (the default network is made on first use).
    async fn resolve(
        &self,
        project_id: &str,
        requested: Option<&str>,
    ) -> Result<NetworkRecord, NetworkError> {
        let name = requested.unwrap_or(DEFAULT_NETWORK_NAME);
        if name == DEFAULT_NETWORK_NAME {
            return self.project_network(project_id).await;
        }
        self.store
            .find_network(project_id, name)
            .await?
            .ok_or_else(|| NetworkError::NotFound(name.to_owned()))
    }

    /// Allocates the container's port on `network` and plumbs it, with its
    /// security groups' rules.
    async fn connect(
        &self,
        container: &Container,
        network: &NetworkRecord,
        fixed: Option<Ipv4Addr>,
        primary: bool,
    ) -> Result<PortRecord, NetworkError> {
        let port = self
            .store
            .allocate_port(
                network,
                &container.uuid,
                &container.project_id,
                Some(&self.config.host),
                fixed,
            )
            .await?;
        let bridge = self.ensure_bridge(network).await?;
        if let Err(err) = self
            .plumb(&container.uuid, network, &port, &bridge, primary)
            .await
        {
            if !missing(&err) {
                return Err(err);
            }
            // The bridge went away behind our back: make it again.
            self.bridges.lock().await.remove(&network.cidr);
            let bridge = self.ensure_bridge(network).await?;
            self.plumb(&container.uuid, network, &port, &bridge, primary)
                .await?;
        }
        let script = self
            .security_script(&[container], std::slice::from_ref(&port), false)
            .await?;
        if let Err(err) = self.shell.nft(&script).await {
            // The sets it was to fill may not exist: fill them anew next time.
            self.filled_sets().clear();
            return Err(err);
        }
        Ok(port)
    }

    /// The view's `addresses` of the container's ports.
    async fn addresses(&self, container_uuid: &str) -> Result<Value, NetworkError> {
        let mut out = Vec::new();
        for port in self.store.ports_of_container(container_uuid).await? {
            let Some(network) = self.store.get_network(&port.network_uuid).await? else {
                continue;
            };
            out.push(Address {
                network_id: network.uuid,
                port_id: port.uuid,
                subnet_id: network.subnet_uuid,
                ip: port.ip,
                preserve_on_delete: false,
            });
        }
        Ok(addresses_value(&out))
    }

    /// Writes the container's resolv.conf and hosts files.
    async fn write_files(
        &self,
        container: &Container,
        port: &PortRecord,
    ) -> Result<Vec<(PathBuf, String)>, NetworkError> {
        let dir = self.container_dir(&container.uuid);
        let io = |e: std::io::Error| NetworkError::Io(format!("{}: {e}", dir.display()));
        let host_resolv = tokio::fs::read_to_string(&self.config.host_resolv_conf)
            .await
            .unwrap_or_default();
        let resolv = dir.join("resolv.conf");
        tokio::fs::write(&resolv, rules::resolv_conf(&host_resolv))
            .await
            .map_err(io)?;
        let mut names = vec![container.name.as_str()];
        if let Some(hostname) = container.hostname.as_deref() {
            names.push(hostname);
        }
        // Kept for the later rewrites of the hosts file (`refresh_names`).
        tokio::fs::write(
            dir.join(OWN_NAMES),
            format!("{} {}\n", port.ip, names.join(" ")),
        )
        .await
        .map_err(io)?;
        let members = self.members_of(&container.uuid).await?;
        let hosts = dir.join("hosts");
        let text = rules::hosts_file(port.ip, &names, &members);
        tokio::fs::write(&hosts, &text).await.map_err(io)?;
        self.names_written
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(container.uuid.clone(), text);
        Ok(vec![
            (resolv, "/etc/resolv.conf".to_owned()),
            (hosts, "/etc/hosts".to_owned()),
        ])
    }

    /// The other containers on the networks of container `uuid`.
    async fn members_of(&self, uuid: &str) -> Result<Vec<(String, Ipv4Addr)>, NetworkError> {
        // A container has one port per network (a store constraint).
        let mut members = Vec::new();
        for port in self.store.ports_of_container(uuid).await? {
            members.extend(self.store.network_members(&port.network_uuid).await?);
        }
        Ok(members)
    }

    /// Rewrites the hosts files of this host's containers whose networks
    /// gained or lost a container since their last write (in place: the
    /// engine binds the file itself into the container).
    async fn refresh_names(&self) -> Result<(), NetworkError> {
        let mut by_network: HashMap<String, Vec<String>> = HashMap::new();
        for port in self.store.ports_on_host(&self.config.host).await? {
            by_network
                .entry(port.network_uuid)
                .or_default()
                .push(port.container_uuid);
        }
        let mut members: HashMap<String, Vec<(String, Ipv4Addr)>> = HashMap::new();
        for (network, containers) in &by_network {
            let on_it = self.store.network_members(network).await?;
            for uuid in containers {
                members
                    .entry(uuid.clone())
                    .or_default()
                    .extend(on_it.iter().cloned());
            }
        }
        for (uuid, members) in members {
            let dir = self.container_dir(&uuid);
            let Ok(own) = tokio::fs::read_to_string(dir.join(OWN_NAMES)).await else {
                continue; // not attached yet: its attach writes the file
            };
            let mut words = own.split_whitespace();
            let Some(ip) = words.next().and_then(|w| w.parse().ok()) else {
                continue;
            };
            let names: Vec<&str> = words.collect();
            let text = rules::hosts_file(ip, &names, &members);
            let unchanged = self
                .names_written
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(&uuid)
                .is_some_and(|written| *written == text);
            if unchanged {
                continue;
            }
            let path = dir.join("hosts");
            tokio::fs::write(&path, &text)
                .await
                .map_err(|e| NetworkError::Io(format!("{}: {e}", path.display())))?;
            self.names_written
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(uuid, text);
        }
        Ok(())
    }

    /// Removes everything of container `uuid` from this host and the store.
    /// Writes every member set this agent has filled anew from the store:
    /// flushed, then its members.
    async fn rewrite_filled_sets(&self) -> Result<(), NetworkError> {
        let mut by_project: HashMap<String, Vec<String>> = HashMap::new();
        for (set, project) in self.filled_sets().iter() {
            by_project
                .entry(project.clone())
                .or_default()
                .push(set.clone());
        }
        let mut script = String::new();
        for (project, sets) in by_project {
            let default = self.default_group(&project).await?;
            let members = self.group_members(&project, &default).await?;
            for set in sets {
                let of_set = members.get(&set).map(Vec::as_slice).unwrap_or_default();
                script.push_str(&rules::group_set_batch(&set, of_set, true));
            }
        }
        if !script.is_empty() {
            self.shell.nft(&script).await?;
        }
        Ok(())
    }

    async fn remove_all(&self, uuid: &str) -> Result<(), NetworkError> {
        let ports = self.store.ports_of_container(uuid).await?;
        self.unplumb(uuid, &ports).await?;
        let dir = self.container_dir(uuid);
        match tokio::fs::remove_dir_all(&dir).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(NetworkError::Io(format!("{}: {e}", dir.display()))),
        }
        self.store.release_ports(uuid).await?;
        // Its addresses may be in member sets: they are written anew now,
        // so a next container given the same address does not inherit its
        // groups. A member another create added after the store was read
        // for this is flushed with them: the next member refresh writes
        // the sets again.
        self.rewrite_filled_sets().await?;
        *self
            .members_version
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
        self.names_written
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(uuid);
        Ok(())
    }

    /// The elements of one of the service's nftables sets.
    async fn set_elements(
        &self,
        family: &str,
        set: &str,
    ) -> Result<Vec<rules::ListedElement>, NetworkError> {
        let listed = self
            .shell
            .run("nft", &["-j", "list", "set", family, "zun", set], None)
            .await?;
        rules::listed_elements(&listed).map_err(|e| NetworkError::Io(format!("nft's listing: {e}")))
    }

    /// Removes the security rules of the container address `ip` (each
    /// step alone when some are already gone).
    async fn unsecure(&self, ip: Ipv4Addr) -> Result<(), NetworkError> {
        let script = rules::security_removal(ip);
        match self.shell.nft(&script).await {
            Err(err) if missing(&err) => {
                for line in script.lines() {
                    unless_missing(self.shell.nft(line).await)?;
                }
                Ok(())
            }
            other => other,
        }
    }

    /// The uuid of the project's default group, made on first use (it is
    /// never deleted, so it is looked up once).
    async fn default_group(&self, project_id: &str) -> Result<String, NetworkError> {
        if let Some(uuid) = self.default_groups().get(project_id) {
            return Ok(uuid.clone());
        }
        let group = self
            .store
            .ensure_security_group(&SecurityGroupRecord::project_default(project_id))
            .await?;
        self.default_groups()
            .insert(project_id.to_owned(), group.uuid.clone());
        Ok(group.uuid)
    }

    fn default_groups(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.default_groups
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn filled_sets(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.filled_sets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The nft script making the security rules of `containers` (their
    /// `ports` on this host) what the store says now, with the member sets
    /// those rules name: every set read anew from the store with
    /// `refresh`, else only sets this agent has not filled yet, the
    /// containers' own addresses being added to the others. A container in
    /// no group is in its project's default group, as a Neutron port is.
    async fn security_script(
        &self,
        containers: &[&Container],
        ports: &[PortRecord],
        refresh: bool,
    ) -> Result<String, NetworkError> {
        let projects: BTreeSet<&str> = containers.iter().map(|c| c.project_id.as_str()).collect();
        let mut script = String::new();
        for project in projects {
            let default = self.default_group(project).await?;
            let groups: HashMap<String, SecurityGroupRecord> = self
                .store
                .list_security_groups(Some(project))
                .await?
                .into_iter()
                .map(|g| (g.uuid.clone(), g))
                .collect();
            let mut named = BTreeSet::new();
            let mut joined: Vec<(&str, Ipv4Addr)> = Vec::new();
            let mut chains = String::new();
            for container in containers.iter().filter(|c| c.project_id == project) {
                let own = groups_of(container, &default);
                let rules: Vec<&Rule> = own
                    .iter()
                    .filter_map(|id| groups.get(*id))
                    .flat_map(|g| &g.rules)
                    .collect();
                named.extend(rules.iter().filter_map(|r| r.remote_group_id.clone()));
                for port in ports.iter().filter(|p| p.container_uuid == container.uuid) {
                    joined.extend(own.iter().map(|g| (*g, port.ip)));
                    chains.push_str(&rules::security_batch(port.ip, rules.iter().copied()));
                }
            }
            let (to_fill, known): (Vec<String>, Vec<String>) = {
                let filled = self.filled_sets();
                named
                    .into_iter()
                    .partition(|set| refresh || !filled.contains_key(set))
            };
            // A set filled by a create whose transaction has not run yet
            // must exist before a rule names it.
            for set in &known {
                script.push_str(&rules::group_set_declaration(set));
            }
            if !to_fill.is_empty() {
                let members = self.group_members(project, &default).await?;
                for set in &to_fill {
                    let of_set = members.get(set).map(Vec::as_slice).unwrap_or_default();
                    script.push_str(&rules::group_set_batch(set, of_set, refresh));
                }
            }
            {
                let mut filled = self.filled_sets();
                for (set, ip) in joined {
                    if filled.contains_key(set) && !to_fill.iter().any(|s| s == set) {
                        script.push_str(&rules::group_member(set, ip));
                    }
                }
                filled.extend(to_fill.into_iter().map(|set| (set, project.to_owned())));
            }
            script.push_str(&chains);
        }
        Ok(script)
    }

    /// The addresses of each group's members in a project, on every host.
    async fn group_members(
        &self,
        project_id: &str,
        default_group: &str,
    ) -> Result<HashMap<String, Vec<Ipv4Addr>>, NetworkError> {
        let query = ListQuery::whole_project(project_id);
        let containers: HashMap<String, Container> = self
            .store
            .list_containers(&query)
            .await?
            .into_iter()
            .map(|c| (c.uuid.clone(), c))
            .collect();
        let mut members: HashMap<String, Vec<Ipv4Addr>> = HashMap::new();
        for port in self.store.ports_of_project(project_id).await? {
            let Some(container) = containers.get(&port.container_uuid) else {
                continue;
            };
            for group in groups_of(container, default_group) {
                members.entry(group.to_owned()).or_default().push(port.ip);
            }
        }
        Ok(members)
    }

    /// The addresses the security maps hold.
    async fn secured_addresses(&self) -> Result<Vec<Ipv4Addr>, NetworkError> {
        let listing = self
            .shell
            .run(
                "nft",
                &["-j", "list", "map", "inet", "zun", "ingress"],
                None,
            )
            .await?;
        rules::mapped_addresses(&listing)
            .map_err(|e| NetworkError::Io(format!("nft's listing: {e}")))
    }

    /// The names of the links of the host's namespace.
    async fn link_names(&self) -> Result<HashSet<String>, NetworkError> {
        let listing = self.shell.ip(&["-j", "link", "show"], None).await?;
        rules::link_names(&listing).map_err(|e| NetworkError::Io(format!("ip's link listing: {e}")))
    }

    /// Anti-spoofing entries whose port no longer exists on this host. A
    /// link dump taken while links come and go may skip some (the kernel
    /// only flags it as interrupted), and several agents may share the
    /// namespace, so an entry missing from the dump is looked up by name
    /// before it counts as stale. Also returns the addresses of the entries
    /// kept.
    async fn stale_port_elements(
        &self,
        present: &HashSet<String>,
    ) -> Result<(Vec<(String, String, Ipv4Addr)>, HashSet<Ipv4Addr>), NetworkError> {
        let mut stale = Vec::new();
        let mut kept = HashSet::new();
        for element in self.set_elements("bridge", "ports").await? {
            let [port, mac, ip] = element.key.as_slice() else {
                continue;
            };
            let (Some(port), Some(mac), Some(ip)) = (
                port.as_str(),
                mac.as_str(),
                ip.as_str().and_then(|i| i.parse::<Ipv4Addr>().ok()),
            ) else {
                continue;
            };
            if present.contains(port) || self.link_exists(port).await? {
                kept.insert(ip);
            } else {
                stale.push((port.to_owned(), mac.to_owned(), ip));
            }
        }
        Ok((stale, kept))
    }

    async fn link_exists(&self, name: &str) -> Result<bool, NetworkError> {
        match self.shell.ip(&["link", "show", "dev", name], None).await {
            Ok(_) => Ok(true),
            Err(err) if missing(&err) => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// Deletes stale anti-spoofing entries one by one (another agent
    /// sharing the namespace may delete one first), and puts back any whose
    /// link was made again meanwhile: a port being plumbed anew under the
    /// same name (after a reboot took its namespace) added its entry,
    /// found it there, and would otherwise lose it to this deletion.
    async fn remove_stale_port_elements(
        &self,
        stale: &[(String, String, Ipv4Addr)],
    ) -> Result<(), NetworkError> {
        for (port, mac, ip) in stale {
            unless_missing(
                self.shell
                    .nft(&rules::port_element("delete", port, mac, *ip))
                    .await,
            )?;
            if self.link_exists(port).await? {
                self.shell
                    .nft(&rules::port_element("add", port, mac, *ip))
                    .await?;
            }
        }
        Ok(())
    }
}

#[async_trait]
impl NetworkDriver for BuiltinDriver {
    async fn prepare_host(&self) -> Result<(), NetworkError> {
        self.shell
            .run("sysctl", &["-qw", "net.ipv4.ip_forward=1"], None)
            .await?;
        self.shell.nft(&rules::host_ruleset()).await?;
        self.bridges.lock().await.clear();
        self.filled_sets().clear();
        Ok(())
    }

    fn is_attached(&self, uuid: &str) -> bool {
        Self::netns_path(uuid).exists() && self.container_dir(uuid).exists()
    }

    async fn attach(&self, container: &Container) -> Result<Attachment, NetworkError> {
        let _plumbing = self.plumbing.read().await;
        let dir = self.container_dir(&container.uuid);
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| NetworkError::Io(format!("{}: {e}", dir.display())))?;
        let requested: Vec<RequestedNetwork> = if container.nets.is_empty() {
            vec![RequestedNetwork::default()]
        } else {
            container.nets.clone()
        };
        let mut primary = None;
        for (i, net) in requested.iter().enumerate() {
            if net.port.is_some() {
                return Err(NetworkError::Unsupported(
                    "ports cannot be chosen with the built-in network driver".into(),
                ));
            }
            let network = self
                .resolve(&container.project_id, net.network.as_deref())
                .await?;
            let port = self
                .connect(container, &network, net.v4_fixed_ip, i == 0)
                .await?;
            primary.get_or_insert(port);
        }
        let Some(primary) = primary else {
            return Err(NetworkError::Unsupported("no network to attach".into()));
        };
        let files = self.write_files(container, &primary).await?;
        Ok(Attachment {
            netns: Self::netns_path(&container.uuid),
            addresses: self.addresses(&container.uuid).await?,
            files,
        })
    }

    async fn attach_network(
        &self,
        container: &Container,
        requested: &RequestedNetwork,
    ) -> Result<Value, NetworkError> {
        let _plumbing = self.plumbing.read().await;
        if requested.port.is_some() {
            return Err(NetworkError::Unsupported(
                "ports cannot be chosen with the built-in network driver".into(),
            ));
        }
        let network = self
            .resolve(&container.project_id, requested.network.as_deref())
            .await?;
        let first = self
            .store
            .ports_of_container(&container.uuid)
            .await?
            .is_empty();
        self.connect(container, &network, requested.v4_fixed_ip, first)
            .await?;
        self.addresses(&container.uuid).await
    }

    async fn detach_network(
        &self,
        container: &Container,
        network: &str,
    ) -> Result<Value, NetworkError> {
        let _plumbing = self.plumbing.read().await;
        let network = self.resolve(&container.project_id, Some(network)).await?;
        let ports = self.store.ports_of_container(&container.uuid).await?;
        for port in ports.iter().filter(|p| p.network_uuid == network.uuid) {
            self.unplumb_port(port).await?;
        }
        self.store
            .release_port(&container.uuid, &network.uuid)
            .await?;
        self.addresses(&container.uuid).await
    }

    async fn apply_security_groups(&self, container: &Container) -> Result<(), NetworkError> {
        let _plumbing = self.plumbing.read().await;
        let ports = self.store.ports_of_container(&container.uuid).await?;
        // Its old groups' member sets must lose it: read them all anew.
        let script = self.security_script(&[container], &ports, true).await?;
        if script.is_empty() {
            return Ok(());
        }
        self.shell.nft(&script).await
    }

    async fn refresh_members(&self) -> Result<(), NetworkError> {
        let version = self.store.ports_version().await?;
        if *self
            .members_version
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            == Some(version)
        {
            return Ok(());
        }
        self.rewrite_filled_sets().await?;
        // Read before the sets: a port added meanwhile changes the version
        // again, and the next call reads the sets anew.
        *self
            .members_version
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(version);
        Ok(())
    }

    async fn detach(&self, container_uuid: &str) -> Result<(), NetworkError> {
        let _plumbing = self.plumbing.read().await;
        self.remove_all(container_uuid).await
    }

    async fn collect_garbage(&self, live: &[Container]) -> Result<usize, NetworkError> {
        let live_uuids: HashSet<String> = live.iter().map(|c| c.uuid.clone()).collect();
        // What this host made: its containers' directories (made first) and
        // the ports recorded against it. Another agent's objects on the same
        // machine are never candidates.
        let mut candidates: HashSet<String> = HashSet::new();
        let host_dir = self.host_dir();
        let mut entries = match tokio::fs::read_dir(&host_dir).await {
            Ok(entries) => Some(entries),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(NetworkError::Io(format!("{}: {e}", host_dir.display()))),
        };
        while let Some(dir) = entries.as_mut() {
            let Ok(Some(entry)) = dir.next_entry().await else {
                break;
            };
            candidates.insert(entry.file_name().to_string_lossy().into_owned());
        }
        for port in self.store.ports_on_host(&self.config.host).await? {
            candidates.insert(port.container_uuid);
        }
        let mut removed = 0;
        for uuid in candidates.difference(&live_uuids) {
            // Written after the caller listed: keep it.
            if self.store.get_container(uuid).await?.is_some() {
                continue;
            }
            tracing::info!(%uuid, "removing the network of a container the store no longer has");
            self.remove_all(uuid).await?;
            removed += 1;
        }
        let _plumbing = self.plumbing.write().await;
        // Listed before the anti-spoofing entries: a port gets its entry
        // before its security rules, so rules listed here whose address
        // has no entry below belong to no port.
        let secured = self.secured_addresses().await?;
        let present = self.link_names().await?;
        let (stale, guarded) = self.stale_port_elements(&present).await?;
        self.remove_stale_port_elements(&stale).await?;
        let ports = self.store.ports_on_host(&self.config.host).await?;
        // Entries are otherwise only added when a port is plumbed: one lost
        // to a race (another agent's collection in the same namespace
        // crossing a re-plumb) would cut its container off for good.
        // Adding an entry that is there changes nothing.
        let plumbed: Vec<PortRecord> = ports
            .into_iter()
            .filter(|port| present.contains(&port_name(&port.uuid)))
            .collect();
        let script: String = plumbed
            .iter()
            .map(|port| rules::port_element("add", &port_name(&port.uuid), &port.mac, port.ip))
            .collect();
        if !script.is_empty() {
            self.shell.nft(&script).await?;
        }
        let held: HashSet<Ipv4Addr> = plumbed.iter().map(|p| p.ip).collect();
        for ip in secured {
            if !guarded.contains(&ip) && !held.contains(&ip) {
                self.unsecure(ip).await?;
            }
        }
        // Groups change, and their members come and go on every host: the
        // rules of this host's containers follow.
        let here: Vec<&Container> = live
            .iter()
            .filter(|c| c.host.as_deref() == Some(self.config.host.as_str()))
            .collect();
        let script = self.security_script(&here, &plumbed, true).await?;
        if !script.is_empty() {
            self.shell.nft(&script).await?;
        }
        // Containers come and go on this host and others: names follow.
        self.refresh_names().await?;
        // Hosts come and go: each network floods to the hosts there are now.
        if self.config.overlay_address.is_some() {
            let subnets: Vec<Ipv4Net> = self.bridges.lock().await.iter().copied().collect();
            if !subnets.is_empty() {
                let peers = self.peers().await?;
                for subnet in subnets {
                    self.flood_to(&vxlan_name(subnet), &peers).await?;
                }
            }
        }
        Ok(removed)
    }
}

/// The groups a container is in: the ones it names (none after the last
/// is removed: it then accepts nothing), or its project's default group.
fn groups_of<'a>(container: &'a Container, default_group: &'a str) -> Vec<&'a str> {
    match container.security_groups.as_deref() {
        Some(groups) => groups.iter().map(String::as_str).collect(),
        None => vec![default_group],
    }
}
