//! The configuration: upstream's defaults, names as `zun.conf` spells them,
//! and what `validate` refuses.

use serde::Deserialize;
use serde::de::value::{Error as DeError, MapDeserializer, StrDeserializer};
use zun_scheduler::{Filter, Policy, PolicyError, Strategy};

#[test]
fn defaults_are_upstreams() {
    let p = Policy::default();
    // zun/conf/scheduler.py: enabled_filters.
    let names: Vec<&str> = p.enabled_filters.iter().map(|f| f.name()).collect();
    assert_eq!(
        names,
        ["AvailabilityZoneFilter", "ComputeFilter", "RuntimeFilter"]
    );
    // zun/conf/compute.py: initial_*_allocation_ratio and reserved_host_*.
    assert_eq!(p.cpu_allocation_ratio, 16.0);
    assert_eq!(p.ram_allocation_ratio, 1.5);
    assert_eq!(p.disk_allocation_ratio, 1.0);
    assert_eq!(p.reserved_host_cpus, 0.0);
    assert_eq!(p.reserved_host_memory_mb, 512);
    assert_eq!(p.reserved_host_disk_mb, 0);
    // zun/conf/availability_zone.py.
    assert_eq!(p.default_availability_zone, "nova");
    assert_eq!(p.default_schedule_zone, None);
    // Nova's weigher multipliers.
    assert_eq!(p.weigher, Strategy::Spread);
    assert_eq!(
        (
            p.cpu_weight_multiplier,
            p.ram_weight_multiplier,
            p.disk_weight_multiplier
        ),
        (1.0, 1.0, 1.0)
    );
    assert_eq!(p.validate(), Ok(()));
}

fn filter(name: &str) -> Result<Filter, String> {
    Filter::deserialize(StrDeserializer::<DeError>::new(name)).map_err(|e| e.to_string())
}

#[test]
fn filters_are_named_as_upstream_classes() {
    for (name, expected) in [
        ("AvailabilityZoneFilter", Filter::AvailabilityZone),
        ("ComputeFilter", Filter::Compute),
        ("RuntimeFilter", Filter::Runtime),
        ("LabelFilter", Filter::Label),
        ("SameHostFilter", Filter::SameHost),
        ("DifferentHostFilter", Filter::DifferentHost),
    ] {
        assert_eq!(filter(name), Ok(expected));
        assert_eq!(expected.name(), name);
        assert_eq!(expected.to_string(), name);
    }
    // Capacity is always checked, so upstream's deprecated capacity filters
    // are refused rather than silently meaning nothing; so are filters not
    // built yet.
    for name in [
        "CPUFilter",
        "RamFilter",
        "DiskFilter",
        "CpuSetFilter",
        "computefilter",
        "",
    ] {
        let err = filter(name).err().unwrap_or_default();
        assert!(
            err.starts_with(&format!("unknown variant `{name}`")),
            "{name}: {err}"
        );
    }
}

#[test]
fn strategies_are_lowercase() {
    let parse = |s| Strategy::deserialize(StrDeserializer::<DeError>::new(s)).ok();
    assert_eq!(parse("spread"), Some(Strategy::Spread));
    assert_eq!(parse("pack"), Some(Strategy::Pack));
    assert_eq!(parse("Pack"), None);
}

#[test]
fn an_empty_section_is_the_default_and_unknown_options_are_refused() {
    let empty = MapDeserializer::<_, DeError>::new(std::iter::empty::<(&str, &str)>());
    assert_eq!(Policy::deserialize(empty), Ok(Policy::default()));

    let one =
        MapDeserializer::<_, DeError>::new([("default_availability_zone", "az9")].into_iter());
    assert_eq!(
        Policy::deserialize(one),
        Ok(Policy {
            default_availability_zone: "az9".into(),
            ..Policy::default()
        })
    );

    let typo = MapDeserializer::<_, DeError>::new([("cpu_ratio", "2")].into_iter());
    let err = Policy::deserialize(typo)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.starts_with("unknown field `cpu_ratio`"), "{err}");
}

#[test]
fn validate_refuses_unusable_numbers_and_duplicate_filters() {
    type Edit = fn(&mut Policy);
    let cases: &[(Edit, Option<&str>)] = &[
        (|_| {}, None),
        (|p| p.cpu_allocation_ratio = 0.5, None),
        (|p| p.enabled_filters.clear(), None),
        (|p| p.cpu_weight_multiplier = 0.0, None),
        (|p| p.reserved_host_cpus = 2.0, None),
        (
            |p| p.cpu_allocation_ratio = 0.0,
            Some("[scheduler] cpu_allocation_ratio = 0: must be a finite number greater than 0"),
        ),
        (
            |p| p.ram_allocation_ratio = -1.5,
            Some("[scheduler] ram_allocation_ratio = -1.5: must be a finite number greater than 0"),
        ),
        (
            |p| p.disk_allocation_ratio = f64::NAN,
            Some("[scheduler] disk_allocation_ratio = NaN: must be a finite number greater than 0"),
        ),
        (
            |p| p.cpu_allocation_ratio = f64::INFINITY,
            Some("[scheduler] cpu_allocation_ratio = inf: must be a finite number greater than 0"),
        ),
        (
            |p| p.reserved_host_cpus = -1.0,
            Some("[scheduler] reserved_host_cpus = -1: must be a finite number, 0 or more"),
        ),
        (
            |p| p.ram_weight_multiplier = -1.0,
            Some("[scheduler] ram_weight_multiplier = -1: must be a finite number, 0 or more"),
        ),
        (
            |p| p.disk_weight_multiplier = f64::NAN,
            Some("[scheduler] disk_weight_multiplier = NaN: must be a finite number, 0 or more"),
        ),
        (
            |p| p.enabled_filters.push(Filter::Compute),
            Some("[scheduler] enabled_filters lists ComputeFilter twice"),
        ),
    ];
    for (i, (edit, expected)) in cases.iter().enumerate() {
        let mut p = Policy::default();
        edit(&mut p);
        assert_eq!(
            p.validate().err().map(|e| e.to_string()).as_deref(),
            *expected,
            "case {i}"
        );
    }
    let mut p = Policy::default();
    p.enabled_filters.push(Filter::Runtime);
    assert_eq!(
        p.validate(),
        Err(PolicyError::DuplicateFilter(Filter::Runtime))
    );
}
