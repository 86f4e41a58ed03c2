//! The scheduler's configuration, with upstream's option names and defaults
//! (`zun/conf/scheduler.py`, `zun/conf/compute.py`,
//! `zun/conf/availability_zone.py`), so it reads as a `[scheduler]` section.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A filter an operator may enable, named as upstream's class (or Nova's,
/// for the affinity hints upstream accepts but never enforced).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Filter {
    /// The requested (or default) availability zone is the host's.
    #[serde(rename = "AvailabilityZoneFilter")]
    AvailabilityZone,
    /// The host's service is enabled and up.
    #[serde(rename = "ComputeFilter")]
    Compute,
    /// The host offers the requested runtime.
    #[serde(rename = "RuntimeFilter")]
    Runtime,
    /// The host's engine labels match every `label:<key>` hint.
    #[serde(rename = "LabelFilter")]
    Label,
    /// The host holds one of the containers of the `same_host` hint.
    #[serde(rename = "SameHostFilter")]
    SameHost,
    /// The host holds none of the containers of the `different_host` hint.
    #[serde(rename = "DifferentHostFilter")]
    DifferentHost,
}

impl Filter {
    /// The name used in `enabled_filters`.
    pub const fn name(self) -> &'static str {
        match self {
            Filter::AvailabilityZone => "AvailabilityZoneFilter",
            Filter::Compute => "ComputeFilter",
            Filter::Runtime => "RuntimeFilter",
            Filter::Label => "LabelFilter",
            Filter::SameHost => "SameHostFilter",
            Filter::DifferentHost => "DifferentHostFilter",
        }
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How candidates are ranked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// Most free resources first: load spreads over the hosts.
    #[default]
    Spread,
    /// Least free resources first: hosts fill up one by one, leaving others
    /// empty for large containers or for maintenance.
    Pack,
}

/// Everything the scheduler is configured with. Ratios and reserved amounts
/// are the same for every host (upstream reads them from each compute
/// host's own configuration into Placement).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Policy {
    /// Filters in the order they run. Capacity is always checked after them.
    pub enabled_filters: Vec<Filter>,
    pub cpu_allocation_ratio: f64,
    pub ram_allocation_ratio: f64,
    pub disk_allocation_ratio: f64,
    /// CPUs kept for the host's own processes.
    pub reserved_host_cpus: f64,
    /// MiB kept for the host's own processes.
    pub reserved_host_memory_mb: u64,
    /// MiB of disk kept for the host, rounded up to whole GiB as upstream.
    pub reserved_host_disk_mb: u64,
    /// The zone of a host that reports none.
    pub default_availability_zone: String,
    /// The zone of a request that names none; `None`: any zone.
    pub default_schedule_zone: Option<String>,
    pub weigher: Strategy,
    /// Relative weights of free CPU, RAM and disk in the ranking (Nova's
    /// multipliers; the sign comes from `weigher`). Zero ignores a resource.
    pub cpu_weight_multiplier: f64,
    pub ram_weight_multiplier: f64,
    pub disk_weight_multiplier: f64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            enabled_filters: vec![Filter::AvailabilityZone, Filter::Compute, Filter::Runtime],
            cpu_allocation_ratio: 16.0,
            ram_allocation_ratio: 1.5,
            disk_allocation_ratio: 1.0,
            reserved_host_cpus: 0.0,
            reserved_host_memory_mb: 512,
            reserved_host_disk_mb: 0,
            default_availability_zone: "nova".to_owned(),
            default_schedule_zone: None,
            weigher: Strategy::Spread,
            cpu_weight_multiplier: 1.0,
            ram_weight_multiplier: 1.0,
            disk_weight_multiplier: 1.0,
        }
    }
}

/// A configuration the scheduler refuses at start-up rather than schedule
/// with wrongly.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PolicyError {
    #[error("[scheduler] {name} = {value}: must be a finite number greater than 0")]
    Ratio { name: &'static str, value: f64 },
    #[error("[scheduler] {name} = {value}: must be a finite number, 0 or more")]
    Negative { name: &'static str, value: f64 },
    #[error("[scheduler] enabled_filters lists {0} twice")]
    DuplicateFilter(Filter),
}

impl Policy {
    /// Checks what serde cannot: ratios and multipliers are usable numbers
    /// and no filter is listed twice.
    pub fn validate(&self) -> Result<(), PolicyError> {
        for (name, value) in [
            ("cpu_allocation_ratio", self.cpu_allocation_ratio),
            ("ram_allocation_ratio", self.ram_allocation_ratio),
            ("disk_allocation_ratio", self.disk_allocation_ratio),
        ] {
            if !(value.is_finite() && value > 0.0) {
                return Err(PolicyError::Ratio { name, value });
            }
        }
        for (name, value) in [
            ("reserved_host_cpus", self.reserved_host_cpus),
            ("cpu_weight_multiplier", self.cpu_weight_multiplier),
            ("ram_weight_multiplier", self.ram_weight_multiplier),
            ("disk_weight_multiplier", self.disk_weight_multiplier),
        ] {
            if !(value.is_finite() && value >= 0.0) {
                return Err(PolicyError::Negative { name, value });
            }
        }
        for (i, filter) in self.enabled_filters.iter().enumerate() {
            if self.enabled_filters[..i].contains(filter) {
                return Err(PolicyError::DuplicateFilter(*filter));
            }
        }
        Ok(())
    }
}
