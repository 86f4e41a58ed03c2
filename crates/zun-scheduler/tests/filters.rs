//! `fits`, one table per check: what passes, what is refused, by which check
//! and with which reason.

mod common;

use std::collections::BTreeSet;

use common::{all_filters, host, map, request, strings};
use zun_scheduler::{
    Check, Filter, HostState, Policy, Rejection, Request, Resource, fits, label_hint,
};

struct Case {
    name: &'static str,
    host: fn(&mut HostState),
    request: fn(&mut Request),
    policy: fn(&mut Policy),
    /// `None`: fits; else the check that refuses and its exact reason.
    refused: Option<(Check, &'static str)>,
}

/// Runs each case against `host("host-a")`, `request()` and `base` as the
/// case modifies them.
fn run(base: fn() -> Policy, cases: &[Case]) {
    for case in cases {
        let mut h = host("host-a");
        (case.host)(&mut h);
        let mut r = request();
        (case.request)(&mut r);
        let mut p = base();
        (case.policy)(&mut p);
        let expected = case.refused.map(|(check, reason)| Rejection {
            check,
            reason: reason.to_owned(),
        });
        assert_eq!(fits(&h, &r, &p).err(), expected, "case: {}", case.name);
    }
}

fn same(_: &mut HostState) {}
fn same_request(_: &mut Request) {}
fn same_policy(_: &mut Policy) {}

const COMPUTE: Check = Check::Filter(Filter::Compute);
const ZONE: Check = Check::Filter(Filter::AvailabilityZone);
const RUNTIME: Check = Check::Filter(Filter::Runtime);
const LABEL: Check = Check::Filter(Filter::Label);
const SAME_HOST: Check = Check::Filter(Filter::SameHost);
const DIFFERENT_HOST: Check = Check::Filter(Filter::DifferentHost);
const CPU: Check = Check::Capacity(Resource::Cpu);
const MEMORY: Check = Check::Capacity(Resource::Memory);
const DISK: Check = Check::Capacity(Resource::Disk);

#[test]
fn compute_filter() {
    run(
        Policy::default,
        &[
            Case {
                name: "enabled and up",
                host: same,
                request: same_request,
                policy: same_policy,
                refused: None,
            },
            Case {
                name: "disabled",
                host: |h| h.disabled = true,
                request: same_request,
                policy: same_policy,
                refused: Some((COMPUTE, "host-a is disabled")),
            },
            Case {
                name: "down",
                host: |h| h.up = false,
                request: same_request,
                policy: same_policy,
                refused: Some((
                    COMPUTE,
                    "host-a is down (no recent heartbeat, or forced down)",
                )),
            },
            Case {
                name: "disabled and down: disabled is said first",
                host: |h| {
                    h.disabled = true;
                    h.up = false;
                },
                request: same_request,
                policy: same_policy,
                refused: Some((COMPUTE, "host-a is disabled")),
            },
            Case {
                name: "filter not enabled",
                host: |h| {
                    h.disabled = true;
                    h.up = false;
                },
                request: same_request,
                policy: |p| p.enabled_filters.retain(|f| *f != Filter::Compute),
                refused: None,
            },
        ],
    );
}

#[test]
fn availability_zone_filter() {
    run(
        Policy::default,
        &[
            Case {
                name: "no zone asked, no default: any zone",
                host: |h| h.availability_zone = "az1".into(),
                request: same_request,
                policy: same_policy,
                refused: None,
            },
            Case {
                name: "same zone",
                host: |h| h.availability_zone = "az1".into(),
                request: |r| r.availability_zone = Some("az1".into()),
                policy: same_policy,
                refused: None,
            },
            Case {
                name: "other zone",
                host: |h| h.availability_zone = "az2".into(),
                request: |r| r.availability_zone = Some("az1".into()),
                policy: same_policy,
                refused: Some((ZONE, "host-a is in availability zone 'az2', not 'az1'")),
            },
            Case {
                name: "zones are case-sensitive",
                host: |h| h.availability_zone = "AZ1".into(),
                request: |r| r.availability_zone = Some("az1".into()),
                policy: same_policy,
                refused: Some((ZONE, "host-a is in availability zone 'AZ1', not 'az1'")),
            },
            Case {
                name: "host without zone is in the default zone",
                host: same,
                request: |r| r.availability_zone = Some("nova".into()),
                policy: same_policy,
                refused: None,
            },
            Case {
                name: "host without zone is not in another zone",
                host: same,
                request: |r| r.availability_zone = Some("az1".into()),
                policy: same_policy,
                refused: Some((ZONE, "host-a is in availability zone 'nova', not 'az1'")),
            },
            Case {
                name: "configured default availability zone",
                host: same,
                request: |r| r.availability_zone = Some("zone0".into()),
                policy: |p| p.default_availability_zone = "zone0".into(),
                refused: None,
            },
            Case {
                name: "default schedule zone applies to requests without one",
                host: |h| h.availability_zone = "az1".into(),
                request: same_request,
                policy: |p| p.default_schedule_zone = Some("az2".into()),
                refused: Some((ZONE, "host-a is in availability zone 'az1', not 'az2'")),
            },
            Case {
                name: "an empty zone asks for the default schedule zone",
                host: |h| h.availability_zone = "az1".into(),
                request: |r| r.availability_zone = Some(String::new()),
                policy: |p| p.default_schedule_zone = Some("az1".into()),
                refused: None,
            },
            Case {
                name: "the request's zone wins over the default schedule zone",
                host: |h| h.availability_zone = "az1".into(),
                request: |r| r.availability_zone = Some("az1".into()),
                policy: |p| p.default_schedule_zone = Some("az2".into()),
                refused: None,
            },
            Case {
                name: "filter not enabled",
                host: |h| h.availability_zone = "az2".into(),
                request: |r| r.availability_zone = Some("az1".into()),
                policy: |p| p.enabled_filters.retain(|f| *f != Filter::AvailabilityZone),
                refused: None,
            },
        ],
    );
}

#[test]
fn runtime_filter() {
    run(
        Policy::default,
        &[
            Case {
                name: "no runtime asked",
                host: same,
                request: same_request,
                policy: same_policy,
                refused: None,
            },
            Case {
                name: "empty runtime is none",
                host: |h| h.runtimes.clear(),
                request: |r| r.runtime = Some(String::new()),
                policy: same_policy,
                refused: None,
            },
            Case {
                name: "offered",
                host: |h| h.runtimes = strings(&["runc", "kata"]),
                request: |r| r.runtime = Some("kata".into()),
                policy: same_policy,
                refused: None,
            },
            Case {
                name: "not offered",
                host: |h| h.runtimes = strings(&["runc", "runsc"]),
                request: |r| r.runtime = Some("kata".into()),
                policy: same_policy,
                refused: Some((
                    RUNTIME,
                    "host-a does not offer runtime 'kata' (it offers: runc, runsc)",
                )),
            },
            Case {
                name: "host offers none",
                host: |h| h.runtimes.clear(),
                request: |r| r.runtime = Some("runc".into()),
                policy: same_policy,
                refused: Some((
                    RUNTIME,
                    "host-a does not offer runtime 'runc' (it offers: none)",
                )),
            },
            Case {
                name: "filter not enabled",
                host: |h| h.runtimes.clear(),
                request: |r| r.runtime = Some("runc".into()),
                policy: |p| p.enabled_filters.clear(),
                refused: None,
            },
        ],
    );
}

#[test]
fn label_filter() {
    run(
        all_filters,
        &[
            Case {
                name: "no label asked",
                host: same,
                request: same_request,
                policy: same_policy,
                refused: None,
            },
            Case {
                name: "all asked labels match, others ignored",
                host: |h| h.labels = map(&[("gpu", "a100"), ("rack", "r1"), ("ssd", "yes")]),
                request: |r| r.labels = map(&[("gpu", "a100"), ("ssd", "yes")]),
                policy: same_policy,
                refused: None,
            },
            Case {
                name: "value differs",
                host: |h| h.labels = map(&[("gpu", "v100")]),
                request: |r| r.labels = map(&[("gpu", "a100")]),
                policy: same_policy,
                refused: Some((
                    LABEL,
                    "host-a has label gpu=v100, the request needs gpu=a100",
                )),
            },
            Case {
                name: "label missing",
                host: |h| h.labels = map(&[("ssd", "yes")]),
                request: |r| r.labels = map(&[("gpu", "a100")]),
                policy: same_policy,
                refused: Some((
                    LABEL,
                    "host-a has no label gpu (the request needs gpu=a100)",
                )),
            },
            Case {
                name: "first mismatch in key order is reported",
                host: |h| h.labels = map(&[("b", "1")]),
                request: |r| r.labels = map(&[("b", "2"), ("a", "1")]),
                policy: same_policy,
                refused: Some((LABEL, "host-a has no label a (the request needs a=1)")),
            },
            Case {
                name: "values are compared exactly",
                host: |h| h.labels = map(&[("gpu", "A100")]),
                request: |r| r.labels = map(&[("gpu", "a100")]),
                policy: same_policy,
                refused: Some((
                    LABEL,
                    "host-a has label gpu=A100, the request needs gpu=a100",
                )),
            },
            Case {
                name: "not in upstream's default filters: ignored",
                host: same,
                request: |r| r.labels = map(&[("gpu", "a100")]),
                policy: |p| *p = Policy::default(),
                refused: None,
            },
        ],
    );
}

#[test]
fn label_hints_are_recognised_by_prefix() {
    assert_eq!(label_hint("label:gpu"), Some("gpu"));
    assert_eq!(label_hint("label:"), Some(""));
    assert_eq!(label_hint("gpu"), None);
    assert_eq!(label_hint("Label:gpu"), None);
    assert_eq!(label_hint("same_host"), None);
}

fn hosts(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn affinity_hint_filters() {
    run(
        all_filters,
        &[
            Case {
                name: "no hint",
                host: same,
                request: same_request,
                policy: same_policy,
                refused: None,
            },
            Case {
                name: "same_host names this host",
                host: same,
                request: |r| r.same_host = Some(hosts(&["host-b", "host-a"])),
                policy: same_policy,
                refused: None,
            },
            Case {
                name: "same_host names other hosts",
                host: same,
                request: |r| r.same_host = Some(hosts(&["host-b"])),
                policy: same_policy,
                refused: Some((
                    SAME_HOST,
                    "host-a holds none of the containers of the same_host hint",
                )),
            },
            Case {
                name: "same_host containers have no host",
                host: same,
                request: |r| r.same_host = Some(BTreeSet::new()),
                policy: same_policy,
                refused: Some((
                    SAME_HOST,
                    "host-a holds none of the containers of the same_host hint",
                )),
            },
            Case {
                name: "different_host names this host",
                host: same,
                request: |r| r.different_host = hosts(&["host-a"]),
                policy: same_policy,
                refused: Some((
                    DIFFERENT_HOST,
                    "host-a holds a container of the different_host hint",
                )),
            },
            Case {
                name: "different_host names other hosts",
                host: same,
                request: |r| r.different_host = hosts(&["host-b", "host-c"]),
                policy: same_policy,
                refused: None,
            },
            Case {
                name: "not in upstream's default filters: ignored",
                host: same,
                request: |r| {
                    r.same_host = Some(BTreeSet::new());
                    r.different_host = hosts(&["host-a"]);
                },
                policy: |p| *p = Policy::default(),
                refused: None,
            },
        ],
    );
}

#[test]
fn volume_host() {
    run(
        Policy::default,
        &[
            Case {
                name: "the volumes' host",
                host: same,
                request: |r| r.volume_host = Some("host-a".into()),
                policy: same_policy,
                refused: None,
            },
            Case {
                name: "another host",
                host: same,
                request: |r| r.volume_host = Some("host-b".into()),
                policy: same_policy,
                refused: Some((
                    Check::VolumeHost,
                    "host-a does not hold the container's volumes (they are on host-b)",
                )),
            },
            Case {
                name: "with no filter enabled, still only that host",
                host: same,
                request: |r| r.volume_host = Some("host-b".into()),
                policy: |p| p.enabled_filters.clear(),
                refused: Some((
                    Check::VolumeHost,
                    "host-a does not hold the container's volumes (they are on host-b)",
                )),
            },
            Case {
                name: "the volumes' host still goes through the filters",
                host: |h| h.up = false,
                request: |r| r.volume_host = Some("host-a".into()),
                policy: same_policy,
                refused: Some((
                    COMPUTE,
                    "host-a is down (no recent heartbeat, or forced down)",
                )),
            },
        ],
    );
}

#[test]
fn requested_host() {
    run(
        Policy::default,
        &[
            Case {
                name: "this host",
                host: same,
                request: |r| r.requested_host = Some("host-a".into()),
                policy: same_policy,
                refused: None,
            },
            Case {
                name: "another host",
                host: same,
                request: |r| r.requested_host = Some("host-b".into()),
                policy: same_policy,
                refused: Some((
                    Check::RequestedHost,
                    "host-a is not the requested host host-b",
                )),
            },
            Case {
                name: "hostnames are compared exactly",
                host: same,
                request: |r| r.requested_host = Some("HOST-A".into()),
                policy: same_policy,
                refused: Some((
                    Check::RequestedHost,
                    "host-a is not the requested host HOST-A",
                )),
            },
            Case {
                name: "empty is none",
                host: same,
                request: |r| r.requested_host = Some(String::new()),
                policy: same_policy,
                refused: None,
            },
            Case {
                name: "with no filter enabled, still only that host",
                host: same,
                request: |r| r.requested_host = Some("host-b".into()),
                policy: |p| p.enabled_filters.clear(),
                refused: Some((
                    Check::RequestedHost,
                    "host-a is not the requested host host-b",
                )),
            },
            Case {
                name: "the requested host still goes through the filters",
                host: |h| h.disabled = true,
                request: |r| r.requested_host = Some("host-a".into()),
                policy: same_policy,
                refused: Some((COMPUTE, "host-a is disabled")),
            },
            Case {
                name: "and through capacity",
                host: |h| h.mem_used = 11520,
                request: |r| r.requested_host = Some("host-a".into()),
                policy: same_policy,
                refused: Some((
                    MEMORY,
                    "host-a has 0 MiB free of 11520 MiB (8192 MiB in all, 512 MiB reserved, \
                     allocation ratio 1.5); the request needs 512 MiB",
                )),
            },
        ],
    );
}

#[test]
fn cpu_capacity() {
    run(
        Policy::default,
        &[
            Case {
                name: "exactly full under the default ratio 16",
                host: |h| h.cpu_used = 63.0,
                request: same_request,
                policy: same_policy,
                refused: None,
            },
            Case {
                name: "half a CPU short",
                host: |h| h.cpu_used = 63.5,
                request: same_request,
                policy: same_policy,
                refused: Some((
                    CPU,
                    "host-a has 0.5 CPU free of 64 CPU (4 CPU in all, 0 CPU reserved, \
                     allocation ratio 16); the request needs 1 CPU",
                )),
            },
            Case {
                name: "a billionth short",
                host: |h| h.cpu_used = 63.000_000_001,
                request: same_request,
                policy: same_policy,
                refused: Some((
                    CPU,
                    "host-a has 0.999999999 CPU free of 64 CPU (4 CPU in all, 0 CPU reserved, \
                     allocation ratio 16); the request needs 1 CPU",
                )),
            },
            Case {
                name: "ratio 1",
                host: |h| h.cpu_used = 3.5,
                request: same_request,
                policy: |p| p.cpu_allocation_ratio = 1.0,
                refused: Some((
                    CPU,
                    "host-a has 0.5 CPU free of 4 CPU (4 CPU in all, 0 CPU reserved, \
                     allocation ratio 1); the request needs 1 CPU",
                )),
            },
            Case {
                name: "fractional request fits a fractional remainder exactly",
                host: |h| h.cpu_used = 3.5,
                request: |r| r.cpu = 0.5,
                policy: |p| p.cpu_allocation_ratio = 1.0,
                refused: None,
            },
            Case {
                name: "float sums that overshoot (0.1 + 0.2 + 0.4) still leave exactly 0.3",
                host: |h| {
                    h.cpus = 1.0;
                    h.cpu_used = 0.1 + 0.2 + 0.4;
                },
                request: |r| r.cpu = 0.3,
                policy: |p| p.cpu_allocation_ratio = 1.0,
                refused: None,
            },
            Case {
                name: "a billionth more than what is left",
                host: |h| {
                    h.cpus = 1.0;
                    h.cpu_used = 0.1 + 0.2 + 0.4;
                },
                request: |r| r.cpu = 0.300_000_001,
                policy: |p| p.cpu_allocation_ratio = 1.0,
                refused: Some((
                    CPU,
                    "host-a has 0.3 CPU free of 1 CPU (1 CPU in all, 0 CPU reserved, \
                     allocation ratio 1); the request needs 0.300000001 CPU",
                )),
            },
            Case {
                name: "float sums that undershoot (0.7 + 0.1) are not a billionth short of 0.8",
                host: |h| {
                    h.cpus = 1.0;
                    h.cpu_used = 0.7 + 0.1;
                },
                request: |r| r.cpu = 0.200_000_001,
                policy: |p| p.cpu_allocation_ratio = 1.0,
                refused: Some((
                    CPU,
                    "host-a has 0.2 CPU free of 1 CPU (1 CPU in all, 0 CPU reserved, \
                     allocation ratio 1); the request needs 0.200000001 CPU",
                )),
            },
            Case {
                name: "reserved CPUs: exactly full",
                host: |h| h.cpu_used = 5.0,
                request: same_request,
                policy: |p| {
                    p.cpu_allocation_ratio = 2.0;
                    p.reserved_host_cpus = 1.0;
                },
                refused: None,
            },
            Case {
                name: "reserved CPUs come off before the ratio",
                host: |h| h.cpu_used = 5.5,
                request: same_request,
                policy: |p| {
                    p.cpu_allocation_ratio = 2.0;
                    p.reserved_host_cpus = 1.0;
                },
                refused: Some((
                    CPU,
                    "host-a has 0.5 CPU free of 6 CPU (4 CPU in all, 1 CPU reserved, \
                     allocation ratio 2); the request needs 1 CPU",
                )),
            },
            Case {
                name: "one request may take every physical CPU",
                host: same,
                request: |r| r.cpu = 4.0,
                policy: same_policy,
                refused: None,
            },
            Case {
                name: "but never more than the host has, whatever the ratio",
                host: same,
                request: |r| r.cpu = 4.001,
                policy: same_policy,
                refused: Some((
                    CPU,
                    "host-a has 4 CPU in all, less than the 4.001 CPU requested",
                )),
            },
            Case {
                name: "no CPU asked: fits an over-full host",
                host: |h| h.cpu_used = 100.0,
                request: |r| r.cpu = 0.0,
                policy: same_policy,
                refused: None,
            },
            Case {
                name: "negative request",
                host: same,
                request: |r| r.cpu = -1.0,
                policy: same_policy,
                refused: Some((CPU, "the request's cpu -1 is not a usable amount")),
            },
            Case {
                name: "NaN request",
                host: same,
                request: |r| r.cpu = f64::NAN,
                policy: same_policy,
                refused: Some((CPU, "the request's cpu NaN is not a usable amount")),
            },
            Case {
                name: "host reports NaN use",
                host: |h| h.cpu_used = f64::NAN,
                request: same_request,
                policy: same_policy,
                refused: Some((
                    CPU,
                    "host-a reports unusable CPU figures (4 in all, NaN used)",
                )),
            },
            Case {
                name: "host reports infinite CPUs",
                host: |h| h.cpus = f64::INFINITY,
                request: same_request,
                policy: same_policy,
                refused: Some((
                    CPU,
                    "host-a reports unusable CPU figures (inf in all, 0 used)",
                )),
            },
        ],
    );
}

#[test]
fn memory_capacity() {
    // Default policy: (8192 - 512 reserved) × 1.5 = 11520 MiB.
    run(
        Policy::default,
        &[
            Case {
                name: "exactly full",
                host: |h| h.mem_used = 11520 - 512,
                request: same_request,
                policy: same_policy,
                refused: None,
            },
            Case {
                name: "one MiB over",
                host: |h| h.mem_used = 11520 - 511,
                request: same_request,
                policy: same_policy,
                refused: Some((
                    MEMORY,
                    "host-a has 511 MiB free of 11520 MiB (8192 MiB in all, 512 MiB reserved, \
                     allocation ratio 1.5); the request needs 512 MiB",
                )),
            },
            Case {
                name: "ratio 1: what is left after the reserve",
                host: same,
                request: |r| r.memory = 7681,
                policy: |p| p.ram_allocation_ratio = 1.0,
                refused: Some((
                    MEMORY,
                    "host-a has 7680 MiB free of 7680 MiB (8192 MiB in all, 512 MiB reserved, \
                     allocation ratio 1); the request needs 7681 MiB",
                )),
            },
            Case {
                name: "ratio 1, no reserve: the whole host",
                host: same,
                request: |r| r.memory = 8192,
                policy: |p| {
                    p.ram_allocation_ratio = 1.0;
                    p.reserved_host_memory_mb = 0;
                },
                refused: None,
            },
            Case {
                name: "a fractional capacity: (1025 - 512) x 1.5 = 769.5 holds 769",
                host: |h| {
                    h.mem_total = 1025;
                    h.mem_used = 700;
                },
                request: |r| r.memory = 69,
                policy: same_policy,
                refused: None,
            },
            Case {
                name: "a fractional capacity rounds down",
                host: |h| {
                    h.mem_total = 1025;
                    h.mem_used = 700;
                },
                request: |r| r.memory = 70,
                policy: same_policy,
                refused: Some((
                    MEMORY,
                    "host-a has 69 MiB free of 769 MiB (1025 MiB in all, 512 MiB reserved, \
                     allocation ratio 1.5); the request needs 70 MiB",
                )),
            },
            Case {
                name: "never more than the host has",
                host: same,
                request: |r| r.memory = 8193,
                policy: same_policy,
                refused: Some((
                    MEMORY,
                    "host-a has 8192 MiB in all, less than the 8193 MiB requested",
                )),
            },
            Case {
                name: "a reserve larger than the host leaves nothing",
                host: |h| h.mem_total = 256,
                request: |r| r.memory = 1,
                policy: same_policy,
                refused: Some((
                    MEMORY,
                    "host-a has -384 MiB free of -384 MiB (256 MiB in all, 512 MiB reserved, \
                     allocation ratio 1.5); the request needs 1 MiB",
                )),
            },
            Case {
                name: "no memory asked: fits an over-full host",
                host: |h| h.mem_used = 20_000,
                request: |r| r.memory = 0,
                policy: same_policy,
                refused: None,
            },
            Case {
                name: "negative request",
                host: same,
                request: |r| r.memory = -1,
                policy: same_policy,
                refused: Some((MEMORY, "the request's memory -1 is not a usable amount")),
            },
        ],
    );
}

#[test]
fn disk_capacity() {
    run(
        Policy::default,
        &[
            Case {
                name: "no disk asked: fits a full disk (upstream charges disk only when given)",
                host: |h| h.disk_used = 100,
                request: same_request,
                policy: same_policy,
                refused: None,
            },
            Case {
                name: "exactly full under ratio 1",
                host: |h| h.disk_used = 90,
                request: |r| r.disk = 10,
                policy: same_policy,
                refused: None,
            },
            Case {
                name: "one GiB over",
                host: |h| h.disk_used = 91,
                request: |r| r.disk = 10,
                policy: same_policy,
                refused: Some((
                    DISK,
                    "host-a has 9 GiB free of 100 GiB (100 GiB in all, 0 GiB reserved, \
                     allocation ratio 1); the request needs 10 GiB",
                )),
            },
            Case {
                name: "reserved MiB round up to a whole GiB",
                host: |h| h.disk_used = 90,
                request: |r| r.disk = 10,
                policy: |p| p.reserved_host_disk_mb = 1,
                refused: Some((
                    DISK,
                    "host-a has 9 GiB free of 99 GiB (100 GiB in all, 1 GiB reserved, \
                     allocation ratio 1); the request needs 10 GiB",
                )),
            },
            Case {
                name: "1024 MiB reserved is 1 GiB",
                host: |h| h.disk_used = 89,
                request: |r| r.disk = 10,
                policy: |p| p.reserved_host_disk_mb = 1024,
                refused: None,
            },
            Case {
                name: "1025 MiB reserved is 2 GiB",
                host: |h| h.disk_used = 89,
                request: |r| r.disk = 10,
                policy: |p| p.reserved_host_disk_mb = 1025,
                refused: Some((
                    DISK,
                    "host-a has 9 GiB free of 98 GiB (100 GiB in all, 2 GiB reserved, \
                     allocation ratio 1); the request needs 10 GiB",
                )),
            },
            Case {
                name: "a disk ratio over 1 over-commits",
                host: |h| h.disk_used = 140,
                request: |r| r.disk = 10,
                policy: |p| p.disk_allocation_ratio = 1.5,
                refused: None,
            },
            Case {
                name: "a disk ratio under 1 keeps a share back",
                host: |h| h.disk_used = 45,
                request: |r| r.disk = 10,
                policy: |p| p.disk_allocation_ratio = 0.5,
                refused: Some((
                    DISK,
                    "host-a has 5 GiB free of 50 GiB (100 GiB in all, 0 GiB reserved, \
                     allocation ratio 0.5); the request needs 10 GiB",
                )),
            },
            Case {
                name: "never more than the host has",
                host: same,
                request: |r| r.disk = 101,
                policy: |p| p.disk_allocation_ratio = 4.0,
                refused: Some((
                    DISK,
                    "host-a has 100 GiB in all, less than the 101 GiB requested",
                )),
            },
            Case {
                name: "negative request",
                host: same,
                request: |r| r.disk = -5,
                policy: same_policy,
                refused: Some((DISK, "the request's disk -5 is not a usable amount")),
            },
        ],
    );
}

#[test]
fn first_refusing_check_is_reported_in_pipeline_order() {
    run(
        all_filters,
        &[
            Case {
                name: "requested host before filters",
                host: |h| h.disabled = true,
                request: |r| r.requested_host = Some("host-b".into()),
                policy: same_policy,
                refused: Some((
                    Check::RequestedHost,
                    "host-a is not the requested host host-b",
                )),
            },
            Case {
                name: "filters before capacity",
                host: |h| {
                    h.disabled = true;
                    h.mem_used = 1_000_000;
                },
                request: same_request,
                policy: same_policy,
                refused: Some((COMPUTE, "host-a is disabled")),
            },
            Case {
                name: "filters in the configured order",
                host: |h| {
                    h.disabled = true;
                    h.runtimes.clear();
                },
                request: |r| r.runtime = Some("runc".into()),
                policy: |p| p.enabled_filters = vec![Filter::Runtime, Filter::Compute],
                refused: Some((
                    RUNTIME,
                    "host-a does not offer runtime 'runc' (it offers: none)",
                )),
            },
            Case {
                name: "CPU, then memory, then disk",
                host: |h| {
                    h.cpu_used = 64.0;
                    h.mem_used = 1_000_000;
                    h.disk_used = 100;
                },
                request: |r| r.disk = 1,
                policy: same_policy,
                refused: Some((
                    CPU,
                    "host-a has 0 CPU free of 64 CPU (4 CPU in all, 0 CPU reserved, \
                     allocation ratio 16); the request needs 1 CPU",
                )),
            },
            Case {
                name: "memory before disk",
                host: |h| {
                    h.mem_used = 1_000_000;
                    h.disk_used = 100;
                },
                request: |r| r.disk = 1,
                policy: same_policy,
                refused: Some((
                    MEMORY,
                    "host-a has -988480 MiB free of 11520 MiB (8192 MiB in all, 512 MiB reserved, \
                     allocation ratio 1.5); the request needs 512 MiB",
                )),
            },
        ],
    );
}

#[test]
fn rejection_displays_check_and_reason() {
    let mut h = host("host-a");
    h.disabled = true;
    let err = fits(&h, &request(), &Policy::default()).err();
    assert_eq!(
        err.map(|e| e.to_string()),
        Some("ComputeFilter: host-a is disabled".to_owned())
    );
    let mut h = host("host-a");
    h.disk_used = 100;
    let r = Request {
        disk: 1,
        ..request()
    };
    let err = fits(&h, &r, &Policy::default()).err();
    assert_eq!(
        err.map(|e| e.to_string()),
        Some(
            "disk capacity: host-a has 0 GiB free of 100 GiB (100 GiB in all, 0 GiB reserved, \
             allocation ratio 1); the request needs 1 GiB"
                .to_owned()
        )
    );
}
