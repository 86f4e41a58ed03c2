//! What the scheduler reads: a snapshot of one compute host, and what one
//! container asks for.

use std::collections::{BTreeMap, BTreeSet};

/// One compute host as the store reads it from its compute node and service
/// rows. The scheduler never reads clocks, so `up` is decided by the caller
/// (a recent heartbeat and not forced down, as upstream's `service_is_up`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostState {
    /// The compute node's uuid (upstream's resource provider uuid).
    pub uuid: String,
    pub hostname: String,
    /// The service was disabled by an operator.
    pub disabled: bool,
    pub up: bool,
    /// Empty means the policy's `default_availability_zone`, as upstream.
    pub availability_zone: String,
    /// The container runtimes the host's engine offers (`runc`, `kata`...).
    pub runtimes: Vec<String>,
    /// Logical CPUs of the host.
    pub cpus: f64,
    /// The sum of the `cpu` of the containers placed on the host.
    pub cpu_used: f64,
    /// MiB.
    pub mem_total: i64,
    /// MiB: the sum of the `memory` of the containers placed on the host.
    pub mem_used: i64,
    /// GiB.
    pub disk_total: i64,
    /// GiB: the sum of the `disk` of the containers placed on the host.
    pub disk_used: i64,
    /// The engine's daemon labels, matched by `LabelFilter`.
    pub labels: BTreeMap<String, String>,
    /// Containers placed on the host; breaks ties between equal weights.
    pub total_containers: i64,
}

impl HostState {
    /// Charges `request` to this snapshot as a claim on the host would, so
    /// several requests can be placed one after another from one snapshot
    /// (upstream's `consume_from_request`).
    pub fn consume(&mut self, request: &Request) {
        self.cpu_used += request.cpu;
        self.mem_used = self.mem_used.saturating_add(request.memory);
        self.disk_used = self.disk_used.saturating_add(request.disk);
        self.total_containers = self.total_containers.saturating_add(1);
    }
}

/// What one container asks of its host. Amounts of zero ask for nothing of
/// that resource (upstream charges disk only when the user gave one).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Request {
    /// CPUs, fractions allowed: charged exactly, since the engine enforces
    /// them as a fractional limit (upstream's Placement charged `ceil(cpu)`).
    pub cpu: f64,
    /// MiB.
    pub memory: i64,
    /// GiB.
    pub disk: i64,
    /// `None` or empty: any runtime.
    pub runtime: Option<String>,
    /// `None` or empty: the policy's `default_schedule_zone`, if any.
    pub availability_zone: Option<String>,
    /// The admin-only `host` of microversion 1.39: only this host may be
    /// chosen, and it must still pass every check.
    pub requested_host: Option<String>,
    /// The host holding the local volumes the container mounts: their data
    /// lives there, so only that host may be chosen.
    pub volume_host: Option<String>,
    /// The `label:<key>` scheduler hints, prefix removed (see [`label_hint`]).
    pub labels: BTreeMap<String, String>,
    /// The `same_host` hint resolved by the caller to the hosts of the
    /// containers it names: the container must land on one of them. `None`
    /// when the hint is absent; an empty set (named containers have no
    /// host) leaves no host.
    pub same_host: Option<BTreeSet<String>>,
    /// The `different_host` hint resolved by the caller to the hosts of the
    /// containers it names: the container must land on none of them.
    pub different_host: BTreeSet<String>,
}

/// The label a scheduler hint's key asks for, if it is a label hint
/// (`label:<key>`), as upstream's `LabelFilter` reads the `hints` object.
pub fn label_hint(key: &str) -> Option<&str> {
    key.strip_prefix("label:")
}
