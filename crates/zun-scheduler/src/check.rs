//! Whether one host can take one request: the requested host, the enabled
//! filters in their configured order, then capacity. The first check that
//! refuses is the one reported.

use std::fmt;

use crate::host::{HostState, Request};
use crate::policy::{Filter, Policy};

/// A resource whose capacity is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resource {
    Cpu,
    Memory,
    Disk,
}

impl Resource {
    pub(crate) const ALL: [Resource; 3] = [Resource::Cpu, Resource::Memory, Resource::Disk];

    pub(crate) const fn index(self) -> usize {
        match self {
            Resource::Cpu => 0,
            Resource::Memory => 1,
            Resource::Disk => 2,
        }
    }

    /// An amount in the resource's internal unit, for people: CPUs are
    /// counted in billionths (the engine's `NanoCpus`) so sums stay exact.
    fn show(self, amount: i64) -> String {
        match self {
            Resource::Cpu => format!("{} CPU", amount as f64 / NANOS_PER_CPU),
            Resource::Memory => format!("{amount} MiB"),
            Resource::Disk => format!("{amount} GiB"),
        }
    }
}

/// One step of the decision, named in rejections and in the summary of
/// [`crate::NoValidHost`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Check {
    /// Upstream narrows the hosts to the requested one before filtering.
    RequestedHost,
    /// A local volume's data is on one host only.
    VolumeHost,
    Filter(Filter),
    /// Upstream leaves this to Placement, which always applies it.
    Capacity(Resource),
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Check::RequestedHost => f.write_str("requested host"),
            Check::VolumeHost => f.write_str("volume host"),
            Check::Filter(filter) => f.write_str(filter.name()),
            Check::Capacity(Resource::Cpu) => f.write_str("CPU capacity"),
            Check::Capacity(Resource::Memory) => f.write_str("memory capacity"),
            Check::Capacity(Resource::Disk) => f.write_str("disk capacity"),
        }
    }
}

/// Why a host cannot take a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{check}: {reason}")]
pub struct Rejection {
    pub check: Check,
    pub reason: String,
}

/// Whether `host` can take `request` under `policy`. Deterministic and cheap,
/// so the store can call it again on the chosen host inside the transaction
/// that claims the resources.
pub fn fits(host: &HostState, request: &Request, policy: &Policy) -> Result<(), Rejection> {
    assess(host, request, policy).map(|_| ())
}

/// The checks in the order they run.
pub(crate) fn checks(policy: &Policy) -> impl Iterator<Item = Check> + '_ {
    [Check::RequestedHost, Check::VolumeHost]
        .into_iter()
        .chain(policy.enabled_filters.iter().map(|f| Check::Filter(*f)))
        .chain(Resource::ALL.map(Check::Capacity))
}

/// [`fits`], also answering what the host has left of each resource (in the
/// units of [`Resource::show`], indexed by [`Resource::index`]), which the
/// weighers rank.
pub(crate) fn assess(
    host: &HostState,
    request: &Request,
    policy: &Policy,
) -> Result<[i64; 3], Rejection> {
    let mut free = [0; 3];
    for check in checks(policy) {
        let outcome = match check {
            Check::RequestedHost => requested_host(host, request),
            Check::VolumeHost => volume_host(host, request),
            Check::Filter(filter) => filter_passes(filter, host, request, policy),
            Check::Capacity(resource) => {
                capacity(resource, host, request, policy).map(|left| free[resource.index()] = left)
            }
        };
        outcome.map_err(|reason| Rejection { check, reason })?;
    }
    Ok(free)
}

fn nonempty(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.is_empty())
}

fn requested_host(host: &HostState, request: &Request) -> Result<(), String> {
    match nonempty(&request.requested_host) {
        Some(wanted) if wanted != host.hostname => Err(format!(
            "{} is not the requested host {wanted}",
            host.hostname
        )),
        _ => Ok(()),
    }
}

fn volume_host(host: &HostState, request: &Request) -> Result<(), String> {
    match nonempty(&request.volume_host) {
        Some(wanted) if wanted != host.hostname => Err(format!(
            "{} does not hold the container's volumes (they are on {wanted})",
            host.hostname
        )),
        _ => Ok(()),
    }
}

fn filter_passes(
    filter: Filter,
    host: &HostState,
    request: &Request,
    policy: &Policy,
) -> Result<(), String> {
    let name = &host.hostname;
    match filter {
        Filter::Compute if host.disabled => Err(format!("{name} is disabled")),
        Filter::Compute if !host.up => Err(format!(
            "{name} is down (no recent heartbeat, or forced down)"
        )),
        Filter::Compute => Ok(()),
        Filter::AvailabilityZone => {
            let Some(wanted) = nonempty(&request.availability_zone)
                .or_else(|| nonempty(&policy.default_schedule_zone))
            else {
                return Ok(());
            };
            let zone = match host.availability_zone.as_str() {
                "" => policy.default_availability_zone.as_str(),
                zone => zone,
            };
            if zone == wanted {
                Ok(())
            } else {
                Err(format!(
                    "{name} is in availability zone '{zone}', not '{wanted}'"
                ))
            }
        }
        Filter::Runtime => match nonempty(&request.runtime) {
            Some(wanted) if !host.runtimes.iter().any(|r| r == wanted) => Err(format!(
                "{name} does not offer runtime '{wanted}' (it offers: {})",
                if host.runtimes.is_empty() {
                    "none".to_owned()
                } else {
                    host.runtimes.join(", ")
                }
            )),
            _ => Ok(()),
        },
        Filter::Label => {
            for (key, wanted) in &request.labels {
                match host.labels.get(key) {
                    Some(value) if value == wanted => {}
                    Some(value) => {
                        return Err(format!(
                            "{name} has label {key}={value}, the request needs {key}={wanted}"
                        ));
                    }
                    None => {
                        return Err(format!(
                            "{name} has no label {key} (the request needs {key}={wanted})"
                        ));
                    }
                }
            }
            Ok(())
        }
        Filter::SameHost => match &request.same_host {
            Some(hosts) if !hosts.contains(name) => Err(format!(
                "{name} holds none of the containers of the same_host hint"
            )),
            _ => Ok(()),
        },
        Filter::DifferentHost if request.different_host.contains(name) => Err(format!(
            "{name} holds a container of the different_host hint"
        )),
        Filter::DifferentHost => Ok(()),
    }
}

/// CPUs are compared in billionths, the engine's own unit: decimal CPU
/// amounts summed as binary floats drift (0.1 + 0.2 > 0.3), which would turn
/// an exactly full host into an over-full one.
const NANOS_PER_CPU: f64 = 1e9;

/// `cpus` in billionths, if it is a number that fits.
fn nanos(cpus: f64) -> Option<i64> {
    let n = (cpus * NANOS_PER_CPU).round();
    (n.is_finite() && n.abs() < 9e18).then_some(n as i64)
}

/// One resource of one host, in the resource's unit.
struct Amounts {
    want: i64,
    total: i64,
    used: i64,
    reserved: i64,
    ratio: f64,
}

fn amounts(
    resource: Resource,
    host: &HostState,
    request: &Request,
    policy: &Policy,
) -> Result<Amounts, String> {
    let invalid_request = |value: &dyn fmt::Display| {
        Err(format!(
            "the request's {} {value} is not a usable amount",
            resource_field(resource)
        ))
    };
    match resource {
        Resource::Cpu => {
            let Some(want) = nanos(request.cpu).filter(|n| *n >= 0) else {
                return invalid_request(&request.cpu);
            };
            let (Some(total), Some(used)) = (nanos(host.cpus), nanos(host.cpu_used)) else {
                return Err(format!(
                    "{} reports unusable CPU figures ({} in all, {} used)",
                    host.hostname, host.cpus, host.cpu_used
                ));
            };
            Ok(Amounts {
                want,
                total,
                used,
                reserved: nanos(policy.reserved_host_cpus).unwrap_or(0),
                ratio: policy.cpu_allocation_ratio,
            })
        }
        Resource::Memory if request.memory < 0 => invalid_request(&request.memory),
        Resource::Memory => Ok(Amounts {
            want: request.memory,
            total: host.mem_total,
            used: host.mem_used,
            reserved: i64::try_from(policy.reserved_host_memory_mb).unwrap_or(i64::MAX),
            ratio: policy.ram_allocation_ratio,
        }),
        Resource::Disk if request.disk < 0 => invalid_request(&request.disk),
        Resource::Disk => Ok(Amounts {
            want: request.disk,
            total: host.disk_total,
            used: host.disk_used,
            // Upstream rounds the reserved MiB up to whole GiB.
            reserved: i64::try_from(policy.reserved_host_disk_mb.div_ceil(1024))
                .unwrap_or(i64::MAX),
            ratio: policy.disk_allocation_ratio,
        }),
    }
}

fn resource_field(resource: Resource) -> &'static str {
    match resource {
        Resource::Cpu => "cpu",
        Resource::Memory => "memory",
        Resource::Disk => "disk",
    }
}

/// Placement's rule: the request fits when `used + want <= (total -
/// reserved) × ratio`, and no single request may exceed the host's physical
/// total (Placement's `max_unit`). Answers what is left before the request.
fn capacity(
    resource: Resource,
    host: &HostState,
    request: &Request,
    policy: &Policy,
) -> Result<i64, String> {
    let a = amounts(resource, host, request, policy)?;
    // `as` saturates (and maps NaN to 0): an unusable ratio leaves no room.
    let capacity = (a.total.saturating_sub(a.reserved) as f64 * a.ratio).floor() as i64;
    let free = capacity.saturating_sub(a.used);
    if a.want == 0 {
        return Ok(free);
    }
    let name = &host.hostname;
    let show = |amount| resource.show(amount);
    if a.want > a.total {
        return Err(format!(
            "{name} has {} in all, less than the {} requested",
            show(a.total),
            show(a.want)
        ));
    }
    if a.want > free {
        return Err(format!(
            "{name} has {} free of {} ({} in all, {} reserved, allocation ratio {}); the request needs {}",
            show(free),
            show(capacity),
            show(a.total),
            show(a.reserved),
            a.ratio,
            show(a.want)
        ));
    }
    Ok(free)
}
