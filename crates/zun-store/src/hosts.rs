//! Compute services and nodes: who is there, what each host offers, and
//! what is placed on it.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use zun_scheduler::HostState;

use crate::StoreError;

/// The binary name compute agents register under, as upstream's.
pub const COMPUTE_BINARY: &str = "zun-compute";

/// One service row (reference §7.3).
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceRecord {
    pub id: i64,
    pub host: String,
    pub binary: String,
    pub disabled: bool,
    pub disabled_reason: Option<String>,
    pub forced_down: bool,
    pub report_count: i64,
    pub availability_zone: Option<String>,
    pub last_seen_up: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: Option<DateTime<Utc>>,
}

impl ServiceRecord {
    /// Upstream's `service_is_up`: not forced down, and a heartbeat (or, before
    /// the first, the last update or the creation) within `down_after`.
    pub fn is_up(&self, now: DateTime<Utc>, down_after: Duration) -> bool {
        let last = self
            .last_seen_up
            .or(self.updated_at)
            .unwrap_or(self.created_at);
        let age = (now - last).to_std().unwrap_or_default();
        !self.forced_down && age <= down_after
    }
}

/// What an operator changes on a service.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServiceChange {
    /// Disabled, and the reason given (enable clears it).
    pub disabled: Option<(bool, Option<String>)>,
    pub forced_down: Option<bool>,
}

/// What one compute host offers, as its agent reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComputeNode {
    pub uuid: String,
    pub hostname: String,
    pub cpus: f64,
    /// MiB.
    pub mem_total: i64,
    /// GiB.
    pub disk_total: i64,
    pub disk_quota_supported: bool,
    pub runtimes: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub architecture: Option<String>,
    pub os_type: Option<String>,
    pub os: Option<String>,
    pub kernel_version: Option<String>,
    pub enable_cpu_pinning: bool,
    /// Base URL of the host's agent endpoint (`http://addr:port`), which
    /// the API calls for logs, exec, attach and the other streams. Absent
    /// in rows written before agents served one.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// The host's address on the network between hosts, where the other
    /// hosts send its containers' traffic (VXLAN); absent when the host's
    /// networks do not span hosts.
    #[serde(default)]
    pub overlay_address: Option<String>,
}

/// What the containers placed on a host hold (containers in `Error` hold
/// nothing: the engine has no container for them).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct NodeUsage {
    pub cpu_used: f64,
    /// MiB.
    pub mem_used: i64,
    /// GiB.
    pub disk_used: i64,
    pub total_containers: i64,
}

/// A compute node with its service and what is placed on it.
#[derive(Debug, Clone, PartialEq)]
pub struct HostView {
    pub node: ComputeNode,
    pub usage: NodeUsage,
    /// `None` when the service row was deleted.
    pub service: Option<ServiceRecord>,
}

impl HostView {
    /// The scheduler's snapshot of this host.
    pub fn state(&self, now: DateTime<Utc>, down_after: Duration) -> HostState {
        let service = self.service.as_ref();
        HostState {
            uuid: self.node.uuid.clone(),
            hostname: self.node.hostname.clone(),
            disabled: service.is_none_or(|s| s.disabled),
            up: service.is_some_and(|s| s.is_up(now, down_after)),
            availability_zone: service
                .and_then(|s| s.availability_zone.clone())
                .unwrap_or_default(),
            runtimes: self.node.runtimes.clone(),
            cpus: self.node.cpus,
            cpu_used: self.usage.cpu_used,
            mem_total: self.node.mem_total,
            mem_used: self.usage.mem_used,
            disk_total: self.node.disk_total,
            disk_used: self.usage.disk_used,
            labels: self.node.labels.clone(),
            total_containers: self.usage.total_containers,
        }
    }
}

/// The check a placed insert makes on its host inside its transaction.
pub struct Placement<'a> {
    /// A service not heard from for this long is down.
    pub down_after: Duration,
    /// Whether the host, as it is inside the transaction, can take the
    /// container; the error says why not.
    pub fits: &'a (dyn Fn(&HostState) -> Result<(), String> + Send + Sync),
}

impl std::fmt::Debug for Placement<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Placement")
            .field("down_after", &self.down_after)
            .finish_non_exhaustive()
    }
}

#[async_trait]
pub trait HostStore: Send + Sync {
    /// A heartbeat: creates the service row on first report, then records
    /// `last_seen_up` and counts the report. Returns the row.
    async fn report_service(
        &self,
        host: &str,
        binary: &str,
        availability_zone: Option<&str>,
    ) -> Result<ServiceRecord, StoreError>;

    async fn list_services(&self) -> Result<Vec<ServiceRecord>, StoreError>;

    /// Applies an operator's change; `None` when there is no such service.
    async fn update_service(
        &self,
        host: &str,
        binary: &str,
        change: &ServiceChange,
    ) -> Result<Option<ServiceRecord>, StoreError>;

    /// Removes the service (and, for a compute service, its node). Returns
    /// whether it existed.
    async fn delete_service(&self, host: &str, binary: &str) -> Result<bool, StoreError>;

    /// Records what a host offers, keeping the uuid its node already has.
    async fn upsert_compute_node(&self, node: &ComputeNode) -> Result<ComputeNode, StoreError>;

    /// Every compute node with its service and usage, by hostname.
    async fn list_hosts(&self) -> Result<Vec<HostView>, StoreError>;

    /// One node by uuid or hostname.
    async fn get_host(&self, ident: &str) -> Result<Option<HostView>, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::ComputeNode;

    #[test]
    fn nodes_recorded_before_endpoints_still_parse() {
        let old = r#"{"uuid": "u", "hostname": "h", "cpus": 2.0, "mem_total": 1024,
            "disk_total": 10, "disk_quota_supported": false, "runtimes": ["runc"],
            "labels": {}, "architecture": null, "os_type": null, "os": null,
            "kernel_version": null, "enable_cpu_pinning": false}"#;
        let node: ComputeNode = serde_json::from_str(old).expect("old row");
        assert_eq!(node.endpoint, None);
        assert_eq!(node.overlay_address, None);
    }
}
