//! Builders shared by the test files.

#![allow(dead_code)] // each test file uses a different part

use std::collections::BTreeMap;

use zun_scheduler::{Filter, HostState, Policy, Request};

/// An empty, enabled, up host: 4 CPUs, 8192 MiB, 100 GiB, runtime `runc`,
/// no zone (so the default `nova`).
pub fn host(name: &str) -> HostState {
    HostState {
        uuid: format!("uuid-{name}"),
        hostname: name.to_owned(),
        disabled: false,
        up: true,
        availability_zone: String::new(),
        runtimes: vec!["runc".to_owned()],
        cpus: 4.0,
        cpu_used: 0.0,
        mem_total: 8192,
        mem_used: 0,
        disk_total: 100,
        disk_used: 0,
        labels: BTreeMap::new(),
        total_containers: 0,
    }
}

/// Upstream's defaults for a create: 1 CPU, 512 MiB, no disk.
pub fn request() -> Request {
    Request {
        cpu: 1.0,
        memory: 512,
        ..Request::default()
    }
}

/// The default policy with every filter enabled.
pub fn all_filters() -> Policy {
    Policy {
        enabled_filters: vec![
            Filter::Compute,
            Filter::AvailabilityZone,
            Filter::Runtime,
            Filter::Label,
            Filter::SameHost,
            Filter::DifferentHost,
        ],
        ..Policy::default()
    }
}

pub fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

pub fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}
