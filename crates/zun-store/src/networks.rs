//! The built-in container networks (IPAM): one network per project and
//! name, each with one subnet carved from a pool, and the ports holding the
//! containers' addresses on them. The address arithmetic is
//! `zun_types::network`'s; this is only what is kept.

use std::net::Ipv4Addr;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use zun_types::network::Ipv4Net;
use zun_types::security_group::Rule;

use crate::StoreError;

/// A built-in network of one project.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkRecord {
    pub uuid: String,
    pub name: String,
    pub project_id: String,
    /// The subnet's own id, shown as `subnet_id` in a container's addresses.
    pub subnet_uuid: String,
    pub cidr: Ipv4Net,
    pub gateway: Ipv4Addr,
    /// Index of the subnet in the pool it was carved from; unique across all
    /// networks; also the network's VXLAN id and names its bridge on each
    /// host.
    pub vni: i64,
    pub created_at: DateTime<Utc>,
}

/// One container's address on one network.
#[derive(Debug, Clone, PartialEq)]
pub struct PortRecord {
    pub uuid: String,
    pub network_uuid: String,
    pub container_uuid: String,
    pub project_id: String,
    /// The host the container is placed on (where the port is plumbed).
    pub host: Option<String>,
    pub ip: Ipv4Addr,
    pub mac: String,
    pub created_at: DateTime<Utc>,
}

/// A security group of the built-in networks (`zun_types::security_group`).
#[derive(Debug, Clone, PartialEq)]
pub struct SecurityGroupRecord {
    pub uuid: String,
    pub project_id: String,
    pub name: String,
    pub description: String,
    pub rules: Vec<Rule>,
    /// The container whose `exposed_ports` the group opens; the group goes
    /// with that container's row.
    pub container_uuid: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl SecurityGroupRecord {
    /// A new group of `project_id`, with fresh ids.
    pub fn new(
        project_id: &str,
        name: &str,
        description: &str,
        rules: Vec<zun_types::security_group::RuleRequest>,
        container_uuid: Option<&str>,
    ) -> Self {
        let new_id = || uuid::Uuid::new_v4().to_string();
        Self {
            uuid: new_id(),
            project_id: project_id.to_owned(),
            name: name.to_owned(),
            description: description.to_owned(),
            rules: rules.into_iter().map(|r| r.into_rule(new_id())).collect(),
            container_uuid: container_uuid.map(str::to_owned),
            created_at: crate::sql::now(),
        }
    }

    /// The project's default group, with Neutron's default rules (its
    /// members reach each other; everything may go out).
    pub fn project_default(project_id: &str) -> Self {
        let mut group = Self::new(
            project_id,
            zun_types::security_group::DEFAULT_GROUP_NAME,
            "Default security group",
            Vec::new(),
            None,
        );
        group.rules = zun_types::security_group::default_rules(&group.uuid, || {
            uuid::Uuid::new_v4().to_string()
        });
        group
    }
}

#[async_trait]
pub trait NetworkStore: Send + Sync {
    /// The project's network `name`, created when missing: it takes the
    /// lowest vni >= 1 not used by any network for which
    /// `pool.subnet(prefix, vni)` exists, cidr = that subnet, gateway = its
    /// `gateway()`, fresh uuids for network and subnet. Concurrent callers
    /// (also in other processes on PostgreSQL) all get the same single row.
    /// [`StoreError::Exhausted`] when the pool has no subnet left or the
    /// subnet has no gateway. An existing network is returned as it is,
    /// whatever `pool` and `prefix` say now.
    async fn ensure_network(
        &self,
        project_id: &str,
        name: &str,
        pool: Ipv4Net,
        prefix: u8,
    ) -> Result<NetworkRecord, StoreError>;

    async fn get_network(&self, uuid: &str) -> Result<Option<NetworkRecord>, StoreError>;

    /// Removes a network no port is on: `Ok(false)` when there is no such
    /// network, [`StoreError::Rejected`] (409) while a container is on it.
    /// Serialised with the network's allocations, so no port lands on a
    /// network being removed.
    async fn delete_network(&self, uuid: &str) -> Result<bool, StoreError>;

    /// Removes the container's port on one network (a detach); returns
    /// whether it had one.
    async fn release_port(
        &self,
        container_uuid: &str,
        network_uuid: &str,
    ) -> Result<bool, StoreError>;

    /// The project's network `ident`: by uuid, else by name.
    async fn find_network(
        &self,
        project_id: &str,
        ident: &str,
    ) -> Result<Option<NetworkRecord>, StoreError> {
        if let Some(network) = self.get_network(ident).await?
            && network.project_id == project_id
        {
            return Ok(Some(network));
        }
        Ok(self
            .list_networks(Some(project_id))
            .await?
            .into_iter()
            .find(|n| n.name == ident))
    }

    /// Networks of a project (all projects with `None`), ordered by vni.
    async fn list_networks(
        &self,
        project_id: Option<&str>,
    ) -> Result<Vec<NetworkRecord>, StoreError>;

    /// The container's port on `network`, allocated when it has none
    /// (idempotent: a second call returns the same port as it was
    /// allocated, whatever `host` and `fixed` say then, also after a
    /// crash). The network is read back from the store (its stored subnet
    /// is the one that counts); [`StoreError::NotFound`] when it is not
    /// there. `fixed`: that address, or [`StoreError::Rejected`] with a 400
    /// when it is not assignable in the subnet and a 409 when another port
    /// holds it; otherwise the lowest free assignable address
    /// ([`StoreError::Exhausted`] when none). The MAC is
    /// `zun_types::network::mac_for(ip)`. Concurrent allocations on one
    /// network never hand out one address twice: they serialise (SQLite's
    /// write lock; PostgreSQL: an advisory lock on the network), and a
    /// UNIQUE (network, address) constraint backs it. The container need
    /// not be stored yet; [`crate::Store::delete_container`] removes its
    /// ports with it.
    async fn allocate_port(
        &self,
        network: &NetworkRecord,
        container_uuid: &str,
        project_id: &str,
        host: Option<&str>,
        fixed: Option<Ipv4Addr>,
    ) -> Result<PortRecord, StoreError>;

    /// The container's ports, in allocation order.
    async fn ports_of_container(&self, container_uuid: &str)
    -> Result<Vec<PortRecord>, StoreError>;

    /// The ports plumbed on `host`, in allocation order.
    async fn ports_on_host(&self, host: &str) -> Result<Vec<PortRecord>, StoreError>;

    /// Removes the container's ports; returns how many.
    async fn release_ports(&self, container_uuid: &str) -> Result<u64, StoreError>;

    /// Who is on a network, on every host: (container name, address), in
    /// allocation order; ports of containers no longer stored are left out.
    async fn network_members(
        &self,
        network_uuid: &str,
    ) -> Result<Vec<(String, Ipv4Addr)>, StoreError>;
    /// The ports of a project's containers, on every host, in allocation
    /// order.
    async fn ports_of_project(&self, project_id: &str) -> Result<Vec<PortRecord>, StoreError>;

    /// A value that changes whenever a port is allocated or released
    /// anywhere: (how many ports there are, the highest port row id).
    async fn ports_version(&self) -> Result<(i64, i64), StoreError>;

    /// Stores a new group: [`StoreError::Rejected`] (409) when the project
    /// has a group of that name.
    async fn insert_security_group(&self, group: &SecurityGroupRecord) -> Result<(), StoreError>;

    /// The project's group named as `group` is, stored as `group` when
    /// missing;
    /// concurrent callers all get the same single row.
    async fn ensure_security_group(
        &self,
        group: &SecurityGroupRecord,
    ) -> Result<SecurityGroupRecord, StoreError> {
        let named = || async {
            Ok::<_, StoreError>(
                self.list_security_groups(Some(&group.project_id))
                    .await?
                    .into_iter()
                    .find(|g| g.name == group.name),
            )
        };
        // Read first: the group exists but once.
        if let Some(found) = named().await? {
            return Ok(found);
        }
        match self.insert_security_group(group).await {
            Ok(()) => Ok(group.clone()),
            Err(StoreError::Rejected(_)) => named()
                .await?
                .ok_or_else(|| StoreError::NotFound(format!("security group {}", group.name))),
            Err(err) => Err(err),
        }
    }

    async fn get_security_group(
        &self,
        uuid: &str,
    ) -> Result<Option<SecurityGroupRecord>, StoreError>;

    /// Groups of a project (all projects with `None`), oldest first.
    async fn list_security_groups(
        &self,
        project_id: Option<&str>,
    ) -> Result<Vec<SecurityGroupRecord>, StoreError>;

    /// Removes a group; returns whether there was one.
    async fn delete_security_group(&self, uuid: &str) -> Result<bool, StoreError>;

    /// The project's group `ident`: by uuid, else by name.
    async fn find_security_group(
        &self,
        project_id: &str,
        ident: &str,
    ) -> Result<Option<SecurityGroupRecord>, StoreError> {
        if let Some(group) = self.get_security_group(ident).await?
            && group.project_id == project_id
        {
            return Ok(Some(group));
        }
        Ok(self
            .list_security_groups(Some(project_id))
            .await?
            .into_iter()
            .find(|g| g.name == ident))
    }
}
