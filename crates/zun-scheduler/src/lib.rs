//! The filter scheduler: which compute hosts can take a container, best
//! first. A pure library over a snapshot of host states, with no IO, so the
//! API can rank hosts outside any transaction and the store can re-check the
//! chosen host with the same code inside the transaction that claims its
//! resources: two API processes then never over-commit a host.
//!
//! Upstream Zun filters hosts with `[scheduler] enabled_filters` after the
//! Placement service has kept only the hosts with room for the request
//! (`(total - reserved) × allocation_ratio`). There is no Placement here yet,
//! so that capacity check is always applied, with upstream's ratios and
//! reserved amounts. Upstream has no weighers; ours rank the survivors as
//! Nova's do (free CPU, RAM and disk, normalised over the candidates), to
//! spread or to pack.

pub mod check;
pub mod host;
pub mod policy;
pub mod select;

pub use check::{Check, Rejection, Resource, fits};
pub use host::{HostState, Request, label_hint};
pub use policy::{Filter, Policy, PolicyError, Strategy};
pub use select::{Elimination, NoValidHost, STATUS_REASON, select};
