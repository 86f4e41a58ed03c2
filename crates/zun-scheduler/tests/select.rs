//! `select`: which hosts come back, in which order, and what `NoValidHost`
//! says when none does.

mod common;

use common::{host, request, strings};
use zun_scheduler::{
    Check, Elimination, Filter, HostState, NoValidHost, Policy, Request, Resource, STATUS_REASON,
    Strategy, select,
};

fn names(hosts: &[HostState], picked: &[usize]) -> Vec<String> {
    picked
        .iter()
        .filter_map(|i| hosts.get(*i))
        .map(|h| h.hostname.clone())
        .collect()
}

fn ranked(hosts: &[HostState], r: &Request, p: &Policy) -> Vec<String> {
    match select(hosts, r, p) {
        Ok(picked) => names(hosts, &picked),
        Err(e) => panic!("unexpected: {e}"),
    }
}

/// Hosts that differ only in used memory, `(name, mem_used)`.
fn by_memory(used: &[(&str, i64)]) -> Vec<HostState> {
    used.iter()
        .map(|(name, mem)| HostState {
            mem_used: *mem,
            ..host(name)
        })
        .collect()
}

fn policy(weigher: Strategy) -> Policy {
    Policy {
        weigher,
        ..Policy::default()
    }
}

#[test]
fn no_hosts() {
    let err = select(&[], &request(), &Policy::default());
    let expected = NoValidHost {
        hosts: 0,
        eliminations: vec![],
    };
    assert_eq!(err, Err(expected.clone()));
    assert_eq!(
        expected.to_string(),
        "No valid host was found. There are no compute hosts."
    );
    assert_eq!(
        expected.status_reason(),
        "There are not enough hosts available."
    );
    assert_eq!(STATUS_REASON, "There are not enough hosts available.");
}

#[test]
fn no_valid_host_counts_what_each_check_removed() {
    let hosts = vec![
        HostState {
            disabled: true,
            ..host("a")
        },
        HostState {
            availability_zone: "az2".into(),
            ..host("b")
        },
        HostState {
            up: false,
            ..host("c")
        },
        HostState {
            mem_used: 11_500,
            ..host("d")
        },
        HostState {
            runtimes: strings(&["kata"]),
            ..host("e")
        },
        HostState {
            mem_used: 11_200,
            ..host("f")
        },
    ];
    let r = Request {
        availability_zone: Some("nova".into()),
        runtime: Some("runc".into()),
        ..request()
    };
    let err = select(&hosts, &r, &Policy::default());
    let e = |check, start, end, first: &str| Elimination {
        check,
        start,
        end,
        first_reason: first.to_owned(),
    };
    let expected = NoValidHost {
        hosts: 6,
        eliminations: vec![
            e(
                Check::Filter(Filter::AvailabilityZone),
                6,
                5,
                "b is in availability zone 'az2', not 'nova'",
            ),
            e(Check::Filter(Filter::Compute), 5, 3, "a is disabled"),
            e(
                Check::Filter(Filter::Runtime),
                3,
                2,
                "e does not offer runtime 'runc' (it offers: kata)",
            ),
            e(
                Check::Capacity(Resource::Memory),
                2,
                0,
                "d has 20 MiB free of 11520 MiB (8192 MiB in all, 512 MiB reserved, allocation ratio 1.5); \
                 the request needs 512 MiB",
            ),
        ],
    };
    assert_eq!(err, Err(expected.clone()));
    assert_eq!(
        expected.to_string(),
        "No valid host was found. 6 host(s) considered; \
         AvailabilityZoneFilter: (start: 6, end: 5) first: b is in availability zone 'az2', not 'nova'; \
         ComputeFilter: (start: 5, end: 3) first: a is disabled; \
         RuntimeFilter: (start: 3, end: 2) first: e does not offer runtime 'runc' (it offers: kata); \
         memory capacity: (start: 2, end: 0) first: d has 20 MiB free of 11520 MiB (8192 MiB in all, \
         512 MiB reserved, allocation ratio 1.5); the request needs 512 MiB"
    );
}

#[test]
fn requested_host_that_does_not_exist() {
    let hosts = by_memory(&[("a", 0), ("b", 0)]);
    let r = Request {
        requested_host: Some("zz".into()),
        ..request()
    };
    let err = select(&hosts, &r, &Policy::default());
    assert_eq!(
        err,
        Err(NoValidHost {
            hosts: 2,
            eliminations: vec![Elimination {
                check: Check::RequestedHost,
                start: 2,
                end: 0,
                first_reason: "a is not the requested host zz".into(),
            }],
        })
    );
}

#[test]
fn candidates_are_indices_of_the_hosts_that_fit() {
    let hosts = vec![
        HostState {
            disabled: true,
            ..host("a")
        },
        HostState {
            mem_used: 1000,
            ..host("b")
        },
        HostState {
            up: false,
            ..host("c")
        },
        HostState {
            mem_used: 3000,
            ..host("d")
        },
        HostState {
            mem_used: 2000,
            ..host("e")
        },
    ];
    assert_eq!(
        select(&hosts, &request(), &policy(Strategy::Spread)),
        Ok(vec![1, 4, 3])
    );
    assert_eq!(
        select(&hosts, &request(), &policy(Strategy::Pack)),
        Ok(vec![3, 4, 1])
    );
}

#[test]
fn requested_host_narrows_to_that_host() {
    let hosts = by_memory(&[("a", 0), ("b", 5000), ("c", 0)]);
    let r = Request {
        requested_host: Some("b".into()),
        ..request()
    };
    assert_eq!(select(&hosts, &r, &Policy::default()), Ok(vec![1]));
}

#[test]
fn spread_puts_most_free_first_and_pack_least_free_first() {
    let hosts = by_memory(&[("a", 4000), ("b", 0), ("c", 8000), ("d", 2000)]);
    assert_eq!(
        ranked(&hosts, &request(), &policy(Strategy::Spread)),
        ["b", "d", "a", "c"]
    );
    assert_eq!(
        ranked(&hosts, &request(), &policy(Strategy::Pack)),
        ["c", "a", "d", "b"]
    );
}

#[test]
fn free_is_counted_under_the_ratios_not_in_raw_totals() {
    // Free CPU is the capacity under the ratio (16) minus use: a (4 CPUs, 2
    // used) and b (8 CPUs, 66 used) both have 62 free and tie; c has 61.
    let a = HostState {
        cpu_used: 2.0,
        ..host("a")
    };
    let b = HostState {
        cpus: 8.0,
        cpu_used: 66.0,
        ..host("b")
    };
    let c = HostState {
        cpu_used: 3.0,
        ..host("c")
    };
    let hosts = vec![c, b, a];
    assert_eq!(
        ranked(&hosts, &request(), &policy(Strategy::Spread)),
        ["a", "b", "c"]
    );
    assert_eq!(
        ranked(&hosts, &request(), &policy(Strategy::Pack)),
        ["c", "a", "b"]
    );
}

#[test]
fn multipliers_weigh_resources() {
    // x has more CPU free, y more memory, z more disk.
    let x = HostState {
        mem_used: 4000,
        disk_used: 50,
        ..host("x")
    };
    let y = HostState {
        cpu_used: 32.0,
        disk_used: 50,
        ..host("y")
    };
    let z = HostState {
        cpu_used: 32.0,
        mem_used: 4000,
        ..host("z")
    };
    let hosts = vec![x, y, z];
    let weigh = |cpu, ram, disk| Policy {
        cpu_weight_multiplier: cpu,
        ram_weight_multiplier: ram,
        disk_weight_multiplier: disk,
        ..Policy::default()
    };
    assert_eq!(ranked(&hosts, &request(), &weigh(1.0, 0.0, 0.0))[0], "x");
    assert_eq!(ranked(&hosts, &request(), &weigh(0.0, 1.0, 0.0))[0], "y");
    assert_eq!(ranked(&hosts, &request(), &weigh(0.0, 0.0, 1.0))[0], "z");
    assert_eq!(
        ranked(&hosts, &request(), &weigh(1.0, 2.0, 0.0)),
        ["y", "x", "z"]
    );
    assert_eq!(
        ranked(&hosts, &request(), &weigh(2.0, 1.0, 3.0)),
        ["z", "x", "y"]
    );
    // All equal: a three-way tie, broken by hostname.
    assert_eq!(
        ranked(&hosts, &request(), &weigh(1.0, 1.0, 1.0)),
        ["x", "y", "z"]
    );
    assert_eq!(
        ranked(&hosts, &request(), &weigh(0.0, 0.0, 0.0)),
        ["x", "y", "z"]
    );
}

#[test]
fn weights_are_normalised_over_the_candidates() {
    // Memory spans 8000 MiB and CPU spans 1 CPU among the candidates: both
    // count the same once normalised, so p (most memory) and q (most CPU)
    // tie; the host refused for its runtime does not widen the span.
    let p = HostState {
        cpu_used: 1.0,
        ..host("p")
    };
    let q = HostState {
        mem_used: 8000,
        ..host("q")
    };
    let refused = HostState {
        runtimes: vec![],
        cpu_used: 60.0,
        ..host("a-refused")
    };
    let hosts = vec![q, refused, p];
    let r = Request {
        runtime: Some("runc".into()),
        ..request()
    };
    assert_eq!(select(&hosts, &r, &Policy::default()), Ok(vec![2, 0]));
    let more_cpu = Policy {
        cpu_weight_multiplier: 1.01,
        ..Policy::default()
    };
    assert_eq!(select(&hosts, &r, &more_cpu), Ok(vec![0, 2]));
}

#[test]
fn ties_go_to_fewer_containers_when_spreading_and_more_when_packing() {
    let hosts = vec![
        HostState {
            total_containers: 1,
            ..host("c")
        },
        HostState {
            total_containers: 2,
            ..host("a")
        },
        HostState {
            total_containers: 0,
            ..host("b")
        },
        HostState {
            total_containers: 0,
            ..host("d")
        },
    ];
    assert_eq!(
        ranked(&hosts, &request(), &policy(Strategy::Spread)),
        ["b", "d", "c", "a"]
    );
    assert_eq!(
        ranked(&hosts, &request(), &policy(Strategy::Pack)),
        ["a", "c", "b", "d"]
    );
}

#[test]
fn full_ties_are_broken_by_hostname_then_uuid_then_position() {
    let hosts = vec![
        HostState {
            uuid: "2".into(),
            ..host("b")
        },
        host("c"),
        HostState {
            uuid: "1".into(),
            ..host("b")
        },
        host("a"),
        HostState {
            uuid: "1".into(),
            ..host("b")
        },
    ];
    for weigher in [Strategy::Spread, Strategy::Pack] {
        assert_eq!(
            select(&hosts, &request(), &policy(weigher)),
            Ok(vec![3, 2, 4, 0, 1])
        );
    }
}

#[test]
fn the_ranking_does_not_depend_on_the_order_of_hosts() {
    let mut hosts = by_memory(&[
        ("a", 10),
        ("b", 500),
        ("c", 10),
        ("d", 7000),
        ("e", 500),
        ("f", 0),
    ]);
    let before = ranked(&hosts, &request(), &Policy::default());
    hosts.reverse();
    assert_eq!(ranked(&hosts, &request(), &Policy::default()), before);
    hosts.rotate_left(2);
    assert_eq!(ranked(&hosts, &request(), &Policy::default()), before);
    assert_eq!(before, ["f", "a", "c", "b", "e", "d"]);
}

#[test]
fn consume_charges_a_request_like_a_claim() {
    let mut h = host("a");
    let r = Request {
        cpu: 0.25,
        memory: 300,
        disk: 7,
        ..request()
    };
    h.consume(&r);
    h.consume(&r);
    assert_eq!(
        (h.cpu_used, h.mem_used, h.disk_used, h.total_containers),
        (0.5, 600, 14, 2)
    );
}

#[test]
fn spreading_fills_hosts_evenly_and_packing_fills_one_first() {
    let r = Request {
        cpu: 0.5,
        memory: 1024,
        ..request()
    };
    let place = |weigher| {
        let mut hosts = by_memory(&[("a", 0), ("b", 0), ("c", 0)]);
        let mut order = Vec::new();
        for _ in 0..6 {
            let Ok(picked) = select(&hosts, &r, &policy(weigher)) else {
                break;
            };
            let Some(&best) = picked.first() else { break };
            order.push(hosts[best].hostname.clone());
            hosts[best].consume(&r);
        }
        order
    };
    assert_eq!(place(Strategy::Spread), ["a", "b", "c", "a", "b", "c"]);
    assert_eq!(place(Strategy::Pack), ["a", "a", "a", "a", "a", "a"]);
}
