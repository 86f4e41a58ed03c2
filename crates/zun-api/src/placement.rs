//! Where a new container goes (DESIGN decision 7): the filter scheduler
//! ranks the hosts from a snapshot, outside any transaction; the store
//! then claims the best host inside the insert's transaction, checking the
//! same `fits` against the host as it is at that moment, and the next host
//! is tried when another API process got there first. When no host can take
//! it, the container is recorded in `Error` with upstream's reason, as
//! upstream's API does (the create still answers 202).
//!
//! The snapshot is kept for up to [`SNAPSHOT_MAX_AGE`] and charged with
//! each placement this process makes (as Nova's host manager does), so a
//! create costs a rank over the hosts in memory instead of a read of every
//! node and of every container's claim; the claim inside the transaction
//! keeps it exact, and a host found full is re-read at once.

use std::collections::BTreeSet;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::Value;
use zun_scheduler::{HostState, Policy, Request, fits, label_hint, select};
use zun_store::{ActionRecord, NewAction, Placement, QuotaLimits, Store, StoreError};
use zun_types::{ApiError, Container, ContainerStatus};

use crate::error::Error;

/// How many ranked hosts a create tries before giving up on a race.
const MAX_CLAIM_ATTEMPTS: usize = 5;

/// How long a snapshot of the hosts serves before it is read again.
pub const SNAPSHOT_MAX_AGE: Duration = Duration::from_secs(1);

/// This API process's view of the hosts, between reads of the store.
#[derive(Debug, Default)]
pub struct HostCache {
    snapshot: Mutex<Option<(Instant, Vec<HostState>)>>,
}

impl HostCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(Instant, Vec<HostState>)>> {
        self.snapshot.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The hosts `request` may go to, best first (by hostname), from a
    /// snapshot no older than [`SNAPSHOT_MAX_AGE`]. "No host" is only
    /// answered from a snapshot read for this request: a kept one may miss
    /// room freed since.
    async fn rank(
        &self,
        store: &dyn Store,
        settings: &SchedulerSettings,
        request: &Request,
    ) -> Result<Result<Vec<String>, zun_scheduler::NoValidHost>, Error> {
        let kept = self
            .lock()
            .as_ref()
            .is_some_and(|(read, _)| read.elapsed() < SNAPSHOT_MAX_AGE);
        if kept {
            let ranked = self.select(request, settings);
            if ranked.is_ok() {
                return Ok(ranked);
            }
        }
        let now = Utc::now();
        let states: Vec<HostState> = store
            .list_hosts()
            .await?
            .iter()
            .map(|h| h.state(now, settings.down_after))
            .collect();
        *self.lock() = Some((Instant::now(), states));
        Ok(self.select(request, settings))
    }

    fn select(
        &self,
        request: &Request,
        settings: &SchedulerSettings,
    ) -> Result<Vec<String>, zun_scheduler::NoValidHost> {
        let guard = self.lock();
        let states = guard.as_ref().map_or(&[][..], |(_, s)| s.as_slice());
        select(states, request, &settings.policy).map(|ranked| {
            ranked
                .into_iter()
                .map(|i| states[i].hostname.clone())
                .collect()
        })
    }

    /// Charges a placement this process made to the snapshot.
    fn charge(&self, host: &str, request: &Request) {
        if let Some((_, states)) = self.lock().as_mut()
            && let Some(state) = states.iter_mut().find(|s| s.hostname == host)
        {
            state.consume(request);
        }
    }

    /// Forgets the snapshot: the next create reads the hosts again.
    fn invalidate(&self) {
        *self.lock() = None;
    }
}

/// The scheduler's configuration and when a silent host counts as down.
#[derive(Debug, Clone)]
pub struct SchedulerSettings {
    pub policy: Policy,
    /// Upstream's `service_down_time`.
    pub down_after: Duration,
}

/// The one host a container must go to, if any: the admin's requested
/// host, the host holding its volumes' data.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Pins<'a> {
    pub requested_host: Option<&'a str>,
    pub volume_host: Option<&'a str>,
}

/// What the container asks of a host.
async fn request_of(store: &dyn Store, c: &Container, pins: Pins<'_>) -> Result<Request, Error> {
    let mut request = Request {
        cpu: c.cpu.unwrap_or(0.0),
        memory: c
            .memory
            .as_deref()
            .and_then(|m| m.trim().parse().ok())
            .unwrap_or(0),
        disk: c.disk,
        runtime: c.runtime.clone(),
        availability_zone: c.availability_zone.clone(),
        requested_host: pins.requested_host.map(str::to_owned),
        volume_host: pins.volume_host.map(str::to_owned),
        ..Request::default()
    };
    let Some(Value::Object(hints)) = &c.hints else {
        return Ok(request);
    };
    for (key, value) in hints {
        if let (Some(label), Value::String(v)) = (label_hint(key), value) {
            request.labels.insert(label.to_owned(), v.clone());
        }
    }
    // `same_host` / `different_host` name containers (a uuid or a list).
    let named = |value: Option<&Value>| -> Vec<String> {
        match value {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        }
    };
    let hosts_of = async |uuids: Vec<String>| -> Result<BTreeSet<String>, Error> {
        let mut hosts = BTreeSet::new();
        for uuid in uuids {
            if let Some(other) = store.get_container(&uuid).await?
                && let Some(host) = other.host
            {
                hosts.insert(host);
            }
        }
        Ok(hosts)
    };
    if hints.contains_key("same_host") {
        request.same_host = Some(hosts_of(named(hints.get("same_host"))).await?);
    }
    request.different_host = hosts_of(named(hints.get("different_host"))).await?;
    Ok(request)
}

/// Places `container` (on the host `pins` name, if any) and records it
/// with `action`, its quota checked in the same transaction; a capsule's
/// `members` go with it, to the same host. On return the records' `host`
/// (and status, when no host could take them) are what was stored.
pub(crate) async fn place_and_insert(
    state: &crate::ApiState,
    container: &mut Container,
    members: &mut [Container],
    pins: Pins<'_>,
    mut action: NewAction,
    limits: &QuotaLimits,
) -> Result<ActionRecord, Error> {
    let store = state.store.as_ref();
    let settings = &state.scheduler;
    let cache = &state.host_cache;
    let request = request_of(store, container, pins).await?;
    let policy = &settings.policy;
    let check = |host: &HostState| fits(host, &request, policy).map_err(|r| r.to_string());
    let placement = Placement {
        down_after: settings.down_after,
        fits: &check,
    };
    match cache.rank(store, settings, &request).await? {
        Ok(ranked) => {
            for host in ranked.into_iter().take(MAX_CLAIM_ATTEMPTS) {
                container.host = Some(host.clone());
                for member in members.iter_mut() {
                    member.host = Some(host.clone());
                }
                action.host = Some(host.clone());
                match store
                    .insert_placed_group(
                        container,
                        members,
                        &action,
                        Some(limits),
                        Some(&placement),
                    )
                    .await
                {
                    Ok(record) => {
                        cache.charge(&host, &request);
                        return Ok(record);
                    }
                    Err(StoreError::NoRoom(reason)) => {
                        // Another process placed there meanwhile.
                        cache.invalidate();
                        tracing::debug!(uuid = %container.uuid, %host, %reason, "host taken meanwhile; trying the next");
                    }
                    Err(other) => return Err(other.into()),
                }
            }
            tracing::info!(uuid = %container.uuid, "every ranked host filled up meanwhile");
        }
        Err(no_host) => {
            tracing::info!(uuid = %container.uuid, reason = %no_host, "no valid host");
        }
    }
    insert_unplaced(store, container, members, action, limits).await
}

/// Records a container (or capsule) no host could take: `Error`,
/// upstream's reason, and its create action finished as failed.
async fn insert_unplaced(
    store: &dyn Store,
    container: &mut Container,
    members: &mut [Container],
    mut action: NewAction,
    limits: &QuotaLimits,
) -> Result<ActionRecord, Error> {
    for record in std::iter::once(&mut *container).chain(members.iter_mut()) {
        record.host = None;
        record.status = ContainerStatus::Error;
        record.status_reason = Some(zun_scheduler::STATUS_REASON.to_owned());
    }
    action.host = None;
    let record = store
        .insert_placed_group(container, members, &action, Some(limits), None)
        .await?;
    store.finish_action(record.id, Some("Error")).await?;
    Ok(record)
}

/// 404 unless `host` is a known compute host.
pub(crate) async fn check_requested_host(store: &dyn Store, host: &str) -> Result<(), Error> {
    match store.get_host(host).await? {
        Some(_) => Ok(()),
        None => Err(Error(ApiError::new(
            404,
            "requested-host-not-found",
            format!("Requested host {host} could not be found."),
        ))),
    }
}

/// Whether the service of `host` is up (a container without a host has
/// none to wait for).
pub(crate) async fn host_is_up(
    store: &dyn Store,
    settings: &SchedulerSettings,
    host: &str,
) -> Result<bool, Error> {
    Ok(store.get_host(host).await?.is_some_and(|view| {
        view.service
            .is_some_and(|s| s.is_up(Utc::now(), settings.down_after))
    }))
}
