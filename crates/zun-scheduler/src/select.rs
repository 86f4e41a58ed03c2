//! Choosing among hosts: every host goes through [`fits`](crate::fits)
//! once, and the survivors are ranked by the weighers.

use std::fmt;

use crate::check::{Check, Resource, assess, checks};
use crate::host::{HostState, Request};
use crate::policy::{Policy, Strategy};

/// The container's `status_reason` when no host can take it: upstream's API
/// stores it with status `Error` and still answers the create with 202.
pub const STATUS_REASON: &str = "There are not enough hosts available.";

/// How many hosts one check removed, as upstream logs each filter's
/// `(start, end)` when filtering leaves nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Elimination {
    pub check: Check,
    /// Hosts still in the running before and after this check.
    pub start: usize,
    pub end: usize,
    /// Why the first of them (in the order given) was refused.
    pub first_reason: String,
}

/// No host can take the request. The message is for logs; the user sees
/// [`STATUS_REASON`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("No valid host was found. {}", Summary(self))]
pub struct NoValidHost {
    /// Hosts considered.
    pub hosts: usize,
    /// The checks that removed at least one host, in the order they run.
    pub eliminations: Vec<Elimination>,
}

impl NoValidHost {
    /// What the container's `status_reason` says, as upstream words it.
    pub fn status_reason(&self) -> &'static str {
        STATUS_REASON
    }
}

struct Summary<'a>(&'a NoValidHost);

impl fmt::Display for Summary<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.hosts == 0 {
            return f.write_str("There are no compute hosts.");
        }
        write!(f, "{} host(s) considered", self.0.hosts)?;
        for e in &self.0.eliminations {
            write!(
                f,
                "; {}: (start: {}, end: {}) first: {}",
                e.check, e.start, e.end, e.first_reason
            )?;
        }
        Ok(())
    }
}

/// The hosts that can take `request`, as indices into `hosts`, best first.
/// One pass of the checks over every host, one pass of the weighers over
/// the survivors, then a sort of the survivors; ties between equal weights
/// go (spread) to fewer containers or (pack) to more, then by hostname and
/// uuid, so the order never depends on the order of `hosts`.
pub fn select(
    hosts: &[HostState],
    request: &Request,
    policy: &Policy,
) -> Result<Vec<usize>, NoValidHost> {
    let order: Vec<Check> = checks(policy).collect();
    let mut removed: Vec<(usize, Option<String>)> = vec![(0, None); order.len()];
    let mut candidates = Vec::with_capacity(hosts.len());
    for (index, host) in hosts.iter().enumerate() {
        match assess(host, request, policy) {
            Ok(free) => candidates.push((index, free)),
            Err(rejection) => {
                let slot = order
                    .iter()
                    .position(|c| *c == rejection.check)
                    .and_then(|i| removed.get_mut(i));
                if let Some((count, first)) = slot {
                    *count += 1;
                    first.get_or_insert(rejection.reason);
                }
            }
        }
    }
    if candidates.is_empty() {
        let mut start = hosts.len();
        let eliminations = order
            .into_iter()
            .zip(removed)
            .filter_map(|(check, (count, first))| {
                let e = Elimination {
                    check,
                    start,
                    end: start - count,
                    first_reason: first?,
                };
                start = e.end;
                Some(e)
            })
            .collect();
        return Err(NoValidHost {
            hosts: hosts.len(),
            eliminations,
        });
    }
    Ok(rank(hosts, &candidates, policy))
}

/// Nova's weighing: each resource's free amount is normalised to 0..=1 over
/// the candidates (all equal: 0), multiplied by its multiplier and summed.
/// Spread puts the highest sum first, pack the lowest.
fn rank(hosts: &[HostState], candidates: &[(usize, [i64; 3])], policy: &Policy) -> Vec<usize> {
    let mut multipliers = [0.0; 3];
    multipliers[Resource::Cpu.index()] = policy.cpu_weight_multiplier;
    multipliers[Resource::Memory.index()] = policy.ram_weight_multiplier;
    multipliers[Resource::Disk.index()] = policy.disk_weight_multiplier;
    let (mut low, mut high) = ([i64::MAX; 3], [i64::MIN; 3]);
    for (_, free) in candidates {
        for r in 0..3 {
            low[r] = low[r].min(free[r]);
            high[r] = high[r].max(free[r]);
        }
    }
    let mut weighed: Vec<(f64, &HostState, usize)> = candidates
        .iter()
        .filter_map(|(index, free)| {
            let weight: f64 = (0..3)
                .map(|r| {
                    let span = high[r].saturating_sub(low[r]);
                    if span == 0 {
                        0.0
                    } else {
                        multipliers[r] * free[r].saturating_sub(low[r]) as f64 / span as f64
                    }
                })
                .sum();
            // `+ 0.0` turns -0.0 into 0.0, which `total_cmp` would order apart.
            Some((weight + 0.0, hosts.get(*index)?, *index))
        })
        .collect();
    weighed.sort_unstable_by(|(wa, a, ia), (wb, b, ib)| {
        let heavier_first = wb.total_cmp(wa);
        let fewer_first = a.total_containers.cmp(&b.total_containers);
        let preferred = match policy.weigher {
            Strategy::Spread => heavier_first.then(fewer_first),
            Strategy::Pack => heavier_first.reverse().then(fewer_first.reverse()),
        };
        preferred
            .then_with(|| a.hostname.cmp(&b.hostname))
            .then_with(|| a.uuid.cmp(&b.uuid))
            .then_with(|| ia.cmp(ib))
    });
    weighed.into_iter().map(|(_, _, index)| index).collect()
}
