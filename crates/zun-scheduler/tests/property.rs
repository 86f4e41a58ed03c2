//! Properties over many generated clusters (a seeded generator, so a failure
//! reproduces): `select` answers exactly the hosts `fits` accepts, and
//! placing requests one after another never takes a host past its capacity,
//! checked against an independent integer model of the capacity rule.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashSet};

use common::strings;
use zun_scheduler::{Check, Filter, HostState, Policy, Request, Strategy, fits, select};

/// SplitMix64: small, fast, and the same sequence on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// Ratios as halves, so the model computes capacities in integers.
const RATIO_HALVES: [i64; 5] = [1, 2, 3, 4, 32];

struct Knobs {
    cpu_ratio: i64,
    ram_ratio: i64,
    disk_ratio: i64,
    reserved_cpus: i64,
    reserved_mem: i64,
    reserved_disk_mb: u64,
}

impl Knobs {
    fn random(rng: &mut Rng) -> Knobs {
        Knobs {
            cpu_ratio: rng.pick(&RATIO_HALVES),
            ram_ratio: rng.pick(&RATIO_HALVES),
            disk_ratio: rng.pick(&RATIO_HALVES),
            reserved_cpus: rng.pick(&[0, 1]),
            reserved_mem: rng.pick(&[0, 256, 512]),
            reserved_disk_mb: rng.pick(&[0, 1000, 1024, 2048]),
        }
    }

    fn policy(&self, rng: &mut Rng) -> Policy {
        let mut filters = vec![
            Filter::AvailabilityZone,
            Filter::Compute,
            Filter::Runtime,
            Filter::Label,
            Filter::SameHost,
            Filter::DifferentHost,
        ];
        filters.retain(|_| rng.chance(70));
        for i in (1..filters.len()).rev() {
            filters.swap(i, rng.below(i as u64 + 1) as usize);
        }
        let (cpu, ram, disk) = if rng.chance(30) {
            (0.0, 1.0, 0.0)
        } else {
            (
                rng.pick(&[0.0, 1.0, 2.5]),
                rng.pick(&[0.0, 1.0, 2.5]),
                rng.pick(&[0.0, 1.0, 2.5]),
            )
        };
        Policy {
            enabled_filters: filters,
            cpu_allocation_ratio: self.cpu_ratio as f64 / 2.0,
            ram_allocation_ratio: self.ram_ratio as f64 / 2.0,
            disk_allocation_ratio: self.disk_ratio as f64 / 2.0,
            reserved_host_cpus: self.reserved_cpus as f64,
            reserved_host_memory_mb: self.reserved_mem as u64,
            reserved_host_disk_mb: self.reserved_disk_mb,
            default_availability_zone: "nova".into(),
            default_schedule_zone: if rng.chance(20) {
                Some("az1".into())
            } else {
                None
            },
            weigher: if rng.chance(50) {
                Strategy::Spread
            } else {
                Strategy::Pack
            },
            cpu_weight_multiplier: cpu,
            ram_weight_multiplier: ram,
            disk_weight_multiplier: disk,
        }
    }
}

/// One host's resources in exact integers: CPUs in thousandths.
#[derive(Clone)]
struct Model {
    cpus: i64,
    cpu_used: i64,
    mem_total: i64,
    mem_used: i64,
    disk_total: i64,
    disk_used: i64,
}

/// `(total - reserved) × halves / 2`, rounded down.
fn capacity(total: i64, reserved: i64, halves: i64) -> i64 {
    ((total - reserved) * halves).div_euclid(2)
}

impl Model {
    /// Capacity and use of CPU (thousandths), memory and disk.
    fn resources(&self, k: &Knobs) -> [(i64, i64, i64); 3] {
        let reserved_disk = (k.reserved_disk_mb as i64 + 1023) / 1024;
        [
            (
                self.cpus,
                capacity(self.cpus, k.reserved_cpus * 1000, k.cpu_ratio),
                self.cpu_used,
            ),
            (
                self.mem_total,
                capacity(self.mem_total, k.reserved_mem, k.ram_ratio),
                self.mem_used,
            ),
            (
                self.disk_total,
                capacity(self.disk_total, reserved_disk, k.disk_ratio),
                self.disk_used,
            ),
        ]
    }

    fn room_for(&self, want: [i64; 3], k: &Knobs) -> bool {
        self.resources(k)
            .iter()
            .zip(want)
            .all(|((total, cap, used), want)| want == 0 || (want <= *total && used + want <= *cap))
    }

    fn free_memory(&self, k: &Knobs) -> i64 {
        let (_, cap, used) = self.resources(k)[1];
        cap - used
    }

    fn host(&self, name: &str) -> HostState {
        HostState {
            uuid: format!("uuid-{name}"),
            hostname: name.to_owned(),
            disabled: false,
            up: true,
            availability_zone: String::new(),
            runtimes: strings(&["runc"]),
            cpus: self.cpus as f64 / 1000.0,
            cpu_used: self.cpu_used as f64 / 1000.0,
            mem_total: self.mem_total,
            mem_used: self.mem_used,
            disk_total: self.disk_total,
            disk_used: self.disk_used,
            labels: BTreeMap::new(),
            total_containers: 0,
        }
    }
}

/// A host whose use is anywhere from empty to over its capacity.
fn random_model(rng: &mut Rng) -> Model {
    let cpus = rng.pick(&[1, 2, 4, 8]) * 1000;
    let mem_total = rng.pick(&[512, 1024, 2048, 8192]);
    let disk_total = rng.pick(&[0, 10, 100]);
    Model {
        cpus,
        cpu_used: rng.below(cpus as u64 * 20) as i64,
        mem_total,
        mem_used: rng.below(mem_total as u64 * 2) as i64,
        disk_total,
        disk_used: rng.below(disk_total as u64 * 2) as i64,
    }
}

fn random_want(rng: &mut Rng) -> [i64; 3] {
    [
        rng.pick(&[0, 1, 100, 250, 500, 1000, 1500, 4000]),
        rng.pick(&[0, 1, 128, 512, 1000, 4096]),
        rng.pick(&[0, 1, 5, 10]),
    ]
}

fn request_for(want: [i64; 3]) -> Request {
    Request {
        cpu: want[0] as f64 / 1000.0,
        memory: want[1],
        disk: want[2],
        ..Request::default()
    }
}

const ZONES: [&str; 4] = ["", "nova", "az1", "az2"];
const RUNTIMES: [&str; 3] = ["runc", "kata", "runsc"];

#[test]
fn select_answers_exactly_the_hosts_that_fit() {
    let mut rng = Rng(0x5EED_0001);
    let (mut some_placed, mut some_refused) = (0, 0);
    for round in 0..600 {
        let knobs = Knobs::random(&mut rng);
        let policy = knobs.policy(&mut rng);
        let n = rng.below(40) as usize;
        let models: Vec<Model> = (0..n).map(|_| random_model(&mut rng)).collect();
        let hosts: Vec<HostState> = models
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let mut h = m.host(&format!("h{i:02}"));
                h.uuid = format!("{:016x}", rng.next());
                h.disabled = rng.chance(10);
                h.up = !rng.chance(10);
                h.availability_zone = rng.pick(&ZONES).to_owned();
                h.runtimes = RUNTIMES
                    .iter()
                    .filter(|_| rng.chance(60))
                    .map(|s| (*s).to_owned())
                    .collect();
                if rng.chance(50) {
                    h.labels
                        .insert("gpu".into(), rng.pick(&["a100", "v100"]).into());
                }
                h.total_containers = rng.below(5) as i64;
                h
            })
            .collect();
        let names: Vec<String> = hosts.iter().map(|h| h.hostname.clone()).collect();
        let some_names = |rng: &mut Rng| -> BTreeSet<String> {
            names.iter().filter(|_| rng.chance(30)).cloned().collect()
        };
        let want = random_want(&mut rng);
        let request = Request {
            runtime: rng.chance(40).then(|| rng.pick(&RUNTIMES).to_owned()),
            availability_zone: rng.chance(40).then(|| rng.pick(&ZONES).to_owned()),
            requested_host: if rng.chance(10) && n > 0 {
                Some(names[rng.below(n as u64) as usize].clone())
            } else if rng.chance(3) {
                Some("nowhere".into())
            } else {
                None
            },
            labels: if rng.chance(30) {
                [("gpu".to_owned(), rng.pick(&["a100", "v100"]).to_owned())].into()
            } else {
                BTreeMap::new()
            },
            same_host: rng.chance(20).then(|| some_names(&mut rng)),
            different_host: if rng.chance(20) {
                some_names(&mut rng)
            } else {
                BTreeSet::new()
            },
            ..request_for(want)
        };

        let verdicts: Vec<_> = hosts.iter().map(|h| fits(h, &request, &policy)).collect();
        let fitting: Vec<usize> = (0..n).filter(|i| verdicts[*i].is_ok()).collect();
        match select(&hosts, &request, &policy) {
            Ok(picked) => {
                some_placed += 1;
                let mut sorted = picked.clone();
                sorted.sort_unstable();
                assert_eq!(sorted, fitting, "round {round}");
                // Deterministic, whatever the order of the hosts.
                let mut reversed = hosts.clone();
                reversed.reverse();
                let again = select(&reversed, &request, &policy).unwrap_or_default();
                let again: Vec<usize> = again.iter().map(|i| n - 1 - i).collect();
                assert_eq!(again, picked, "round {round}: order depends on input order");
                // Ranked by free memory alone when only memory weighs.
                let (cpu, ram, disk) = (
                    policy.cpu_weight_multiplier,
                    policy.ram_weight_multiplier,
                    policy.disk_weight_multiplier,
                );
                if cpu == 0.0 && disk == 0.0 && ram > 0.0 {
                    for pair in picked.windows(2) {
                        let (a, b) = (
                            models[pair[0]].free_memory(&knobs),
                            models[pair[1]].free_memory(&knobs),
                        );
                        match policy.weigher {
                            Strategy::Spread => {
                                assert!(a >= b, "round {round}: spread ranked {a} before {b}")
                            }
                            Strategy::Pack => {
                                assert!(a <= b, "round {round}: pack ranked {a} before {b}")
                            }
                        }
                    }
                }
            }
            Err(none) => {
                some_refused += 1;
                assert!(
                    fitting.is_empty(),
                    "round {round}: {fitting:?} fit, yet {none}"
                );
                assert_eq!(none.hosts, n);
                let mut expected_start = n;
                for e in &none.eliminations {
                    assert_eq!(e.start, expected_start, "round {round}: {none}");
                    assert!(
                        e.end < e.start,
                        "round {round}: an elimination removed nothing"
                    );
                    expected_start = e.end;
                    let refused: Vec<usize> = (0..n)
                        .filter(|i| verdicts[*i].as_ref().err().map(|r| r.check) == Some(e.check))
                        .collect();
                    assert_eq!(refused.len(), e.start - e.end, "round {round}: {}", e.check);
                    let first = refused.first().and_then(|i| verdicts[*i].as_ref().err());
                    assert_eq!(
                        first.map(|r| r.reason.as_str()),
                        Some(e.first_reason.as_str())
                    );
                }
                assert_eq!(
                    expected_start, 0,
                    "round {round}: eliminations do not add up to {n}"
                );
                let named: HashSet<Check> = none.eliminations.iter().map(|e| e.check).collect();
                assert_eq!(
                    named.len(),
                    none.eliminations.len(),
                    "round {round}: a check named twice"
                );
            }
        }
    }
    assert!(
        some_placed > 100 && some_refused > 100,
        "placed {some_placed}, refused {some_refused}"
    );
}

#[test]
fn greedy_placement_never_exceeds_capacity_and_never_refuses_a_fit() {
    let mut rng = Rng(0x5EED_0002);
    let (mut placed, mut refused, mut filled_exactly) = (0, 0, 0);
    for round in 0..300 {
        let knobs = Knobs::random(&mut rng);
        // Every filter passes these hosts and requests: only capacity decides.
        let policy = Policy {
            default_schedule_zone: None,
            ..knobs.policy(&mut rng)
        };
        let n = 1 + rng.below(8) as usize;
        // Start within capacity (unless reserves leave less than none), so
        // any excess would be the scheduler's.
        let mut models: Vec<Model> = (0..n)
            .map(|_| {
                let mut m = random_model(&mut rng);
                let [cpu, mem, disk] = m.resources(&knobs).map(|(_, cap, _)| cap.max(0) as u64);
                m.cpu_used = rng.below(cpu + 1) as i64;
                m.mem_used = rng.below(mem + 1) as i64;
                m.disk_used = rng.below(disk + 1) as i64;
                m
            })
            .collect();
        let mut hosts: Vec<HostState> = models
            .iter()
            .enumerate()
            .map(|(i, m)| m.host(&format!("h{i}")))
            .collect();
        let initial: Vec<_> = models.iter().map(|m| m.resources(&knobs)).collect();
        for step in 0..60 {
            let want = random_want(&mut rng);
            let request = request_for(want);
            let with_room: Vec<usize> = (0..n)
                .filter(|i| models[*i].room_for(want, &knobs))
                .collect();
            match select(&hosts, &request, &policy) {
                Ok(picked) => {
                    let mut sorted = picked.clone();
                    sorted.sort_unstable();
                    assert_eq!(sorted, with_room, "round {round} step {step}: {want:?}");
                    let best = picked[0];
                    assert_eq!(fits(&hosts[best], &request, &policy), Ok(()));
                    hosts[best].consume(&request);
                    let m = &mut models[best];
                    m.cpu_used += want[0];
                    m.mem_used += want[1];
                    m.disk_used += want[2];
                    placed += 1;
                    let exact = m
                        .resources(&knobs)
                        .iter()
                        .zip(want)
                        .any(|((_, cap, used), w)| w > 0 && used == cap);
                    filled_exactly += usize::from(exact);
                }
                Err(none) => {
                    assert!(
                        with_room.is_empty(),
                        "round {round} step {step}: {with_room:?} had room, yet {none}"
                    );
                    refused += 1;
                }
            }
            for (i, m) in models.iter().enumerate() {
                for (r, (_, cap, used)) in m.resources(&knobs).iter().enumerate() {
                    let untouched = *used == initial[i][r].2;
                    assert!(
                        used <= cap || untouched,
                        "round {round} step {step}: host {i} resource {r}: {used} > {cap}"
                    );
                }
                let drift = (hosts[i].cpu_used * 1000.0 - m.cpu_used as f64).abs();
                assert!(drift < 1e-6, "round {round}: cpu_used drifted by {drift}");
            }
        }
    }
    assert!(
        placed > 1000 && refused > 1000,
        "placed {placed}, refused {refused}"
    );
    assert!(
        filled_exactly > 50,
        "only {filled_exactly} placements filled a resource exactly"
    );
}
