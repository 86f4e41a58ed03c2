//! The agent's control loop (DESIGN decision 2).
//!
//! Work arrives as unfinished action records for this host. Each container's
//! actions run one at a time, in order; different containers run in
//! parallel. Every runtime call is idempotent, so an agent that dies part way
//! simply redoes the unfinished action when it comes back. Each action has a
//! deadline counted from when the user asked; past it the action fails and
//! the container goes to Error, so nothing stays transient forever.
//!
//! Between actions, the engine's event stream and a periodic re-list keep
//! each container's status true, report containers removed behind the
//! service's back, and remove engine containers the store does not know.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::Utc;
use futures_util::StreamExt;
use serde_json::Value;
use tokio::sync::Notify;
use zun_store::{ActionRecord, Store, StoreError};
use zun_types::container::{DesiredState, RecordKind};
use zun_types::{ApiError, Container, ContainerStatus};

use zun_secrets::SecretKey;

use zun_network::{NetworkDriver, NetworkError};
use zun_types::network::RequestedNetwork;

use crate::runtime::{EngineState, Observed, Runtime, RuntimeError, Sandbox};
use crate::sandbox::{CapsuleNamespaces, HostNamespaces};

/// Where each host's agent keeps its capsules' shared namespaces.
const CAPSULE_NAMESPACES_DIR: &str = "/run/zun/capsules";

mod capsules;
mod images;
mod report;
mod volumes;

pub use images::{may_use_local_copy, needs_pull, pull_policy};
pub use volumes::Volumes;

#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// This host's name; containers whose `host` is this are ours.
    pub host: String,
    /// How often the whole host is re-listed, in case an event was missed.
    pub resync_interval: Duration,
    /// How often the network driver is asked whether security groups
    /// gained or lost members elsewhere (a cheap check of the store).
    pub member_refresh_interval: Duration,
    /// Deadline of a create from the user's request, not counting the image
    /// pull, which has its own bound.
    pub create_deadline: Duration,
    /// Deadline of every other action, on top of any stop timeout it carries.
    pub action_deadline: Duration,
    /// Bound of one image pull.
    pub pull_timeout: Duration,
    /// Opens the registry passwords in the store; without it, containers
    /// of registries with a password cannot be created on this host.
    pub secrets: Option<SecretKey>,
    /// The availability zone this host's service reports.
    pub availability_zone: Option<String>,
    /// How often the service heartbeats and the node reports what it offers.
    pub report_interval: Duration,
    /// How long the agent waits for a wake-up before looking for work
    /// anyway (writes in this process, and PostgreSQL notifications, wake
    /// it at once; another process's SQLite writes only reach it this way).
    pub idle_poll: Duration,
    /// What the node offers instead of what the engine reports (an
    /// operator keeping part of the host for itself).
    pub advertise: Advertised,
    /// Where this host's agent endpoint answers; recorded in its compute
    /// node for the API.
    pub endpoint: Option<String>,
    /// This host's address between hosts, recorded in its compute node so
    /// the other hosts' network drivers send it its networks' traffic.
    pub overlay_address: Option<String>,
}

/// Overrides of what a compute node offers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Advertised {
    pub cpus: Option<f64>,
    /// MiB.
    pub memory: Option<i64>,
    /// GiB.
    pub disk: Option<i64>,
}

impl AgentConfig {
    pub fn new(host: impl Into<String>) -> Self {
        Self {
            host: host.into(),
            resync_interval: Duration::from_secs(10),
            member_refresh_interval: Duration::from_secs(1),
            create_deadline: Duration::from_secs(120),
            action_deadline: Duration::from_secs(60),
            pull_timeout: Duration::from_secs(600),
            secrets: None,
            availability_zone: None,
            report_interval: Duration::from_secs(10),
            idle_poll: Duration::from_secs(1),
            advertise: Advertised::default(),
            endpoint: None,
            overlay_address: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum WorkError {
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("network: {0}")]
    Network(#[from] NetworkError),
    #[error("volume: {0}")]
    Volume(#[from] zun_volume::VolumeError),
    #[error("capsule namespaces: {0}")]
    Sandbox(#[from] crate::sandbox::SandboxError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    TimedOut(String),
}

/// One host's agent.
pub struct Agent {
    store: Arc<dyn Store>,
    runtime: Arc<dyn Runtime>,
    /// Gives containers their network; without one they get none.
    network: Option<Arc<dyn NetworkDriver>>,
    /// Mounts containers' volumes and files; without, containers with
    /// mounts cannot be created on this host.
    volumes: Option<Volumes>,
    /// What capsules' members share besides the network.
    namespaces: Arc<dyn CapsuleNamespaces>,
    config: AgentConfig,
    /// Containers whose actions are being worked on right now.
    busy: Mutex<Busy>,
    /// Wakes the dispatcher when a container's worker finishes.
    idle: Notify,
}

/// What is being worked on, and which of it the engine reported a change
/// for meanwhile: the worker's own view may predate that change (a kill
/// right after a start), so it is looked at again once the work is done
/// instead of waiting for the next resync.
#[derive(Debug, Default)]
struct Busy {
    working: HashSet<String>,
    changed_meanwhile: HashSet<String>,
}

impl Busy {
    fn contains(&self, key: &str) -> bool {
        self.working.contains(key)
    }

    /// Claims `key`; false when it is already being worked on.
    fn insert(&mut self, key: String) -> bool {
        self.working.insert(key)
    }

    /// Whether `key` is being worked on; if so the change is remembered.
    fn note_change(&mut self, key: &str) -> bool {
        if !self.working.contains(key) {
            return false;
        }
        self.changed_meanwhile.insert(key.to_owned());
        true
    }

    /// Ends the work on `key`; true when the engine reported a change of it
    /// meanwhile.
    fn release(&mut self, key: &str) -> bool {
        self.working.remove(key);
        self.changed_meanwhile.remove(key)
    }
}

fn ignore_rejection(
    result: Result<(Container, Option<ActionRecord>), StoreError>,
) -> Result<(), StoreError> {
    match result {
        Ok(_) | Err(StoreError::Rejected(_)) | Err(StoreError::NotFound(_)) => Ok(()),
        Err(other) => Err(other),
    }
}

/// Maps what the engine reports onto upstream's statuses.
pub fn observed_status(state: EngineState) -> ContainerStatus {
    match state {
        EngineState::Created => ContainerStatus::Created,
        EngineState::Running => ContainerStatus::Running,
        EngineState::Paused => ContainerStatus::Paused,
        EngineState::Restarting => ContainerStatus::Restarting,
        EngineState::Exited | EngineState::Removing => ContainerStatus::Stopped,
        EngineState::Dead => ContainerStatus::Dead,
    }
}

/// Writes an observation into a record; returns whether anything changed.
fn apply_observed(c: &mut Container, o: &Observed) -> bool {
    let before = (
        c.status,
        c.status_detail.clone(),
        c.status_reason.clone(),
        c.ports.clone(),
        c.container_id.clone(),
        c.task_state,
    );
    c.status = observed_status(o.state);
    c.status_detail = Some(o.status_detail.clone());
    c.ports = Some(o.ports.clone());
    c.container_id = Some(o.engine_id.clone());
    c.task_state = None;
    if c.status == ContainerStatus::Running {
        c.status_reason = None;
    } else if o.oom_killed {
        c.status_reason = Some(oom_reason(c.memory.as_deref()));
    }
    before
        != (
            c.status,
            c.status_detail.clone(),
            c.status_reason.clone(),
            c.ports.clone(),
            c.container_id.clone(),
            c.task_state,
        )
}

/// Why a container the kernel killed for its memory ended.
pub fn oom_reason(memory_mib: Option<&str>) -> String {
    match memory_mib.map(str::trim).filter(|m| !m.is_empty()) {
        Some(mib) => {
            format!("OOM-killed: the container used all of its memory limit ({mib} MiB)")
        }
        None => "OOM-killed: the host ran out of memory".to_owned(),
    }
}

/// What to do about a record whose engine container is missing.
fn missing_from_engine(c: &mut Container) -> bool {
    let was = (c.status, c.status_reason.clone());
    if c.auto_remove {
        c.status = ContainerStatus::Deleted;
        c.status_reason = None;
    } else {
        c.status = ContainerStatus::Error;
        c.status_reason = Some(format!(
            "No such container: {}: it was removed outside the container service",
            c.engine_name()
        ));
    }
    c.status_detail = None;
    c.task_state = None;
    was != (c.status, c.status_reason.clone())
}

/// Restart policies under which the engine would have brought the
/// container back, so a container removed behind our back is re-created.
/// Records what a create left in the engine: its id, its addresses (when
/// it has a network) and what the engine shows of it.
fn created_as(
    engine_id: String,
    addresses: Option<Value>,
    observed: Option<Observed>,
) -> impl Fn(&mut Container) -> Result<(), ApiError> + Send + Sync {
    move |c: &mut Container| {
        c.container_id = Some(engine_id.clone());
        if addresses.is_some() {
            c.addresses.clone_from(&addresses);
        }
        // Whatever the pull said is over.
        c.status_reason = None;
        match &observed {
            Some(o) => {
                apply_observed(c, o);
            }
            None => {
                missing_from_engine(c);
            }
        }
        Ok(())
    }
}

fn restarts_on_its_own(c: &Container) -> bool {
    matches!(
        c.restart_policy.as_ref().map(|p| p.name.as_str()),
        Some("always" | "unless-stopped")
    ) && c.desired_state == DesiredState::Running
}

impl Agent {
    pub fn new(
        store: Arc<dyn Store>,
        runtime: Arc<dyn Runtime>,
        network: Option<Arc<dyn NetworkDriver>>,
        volumes: Option<Volumes>,
        config: AgentConfig,
    ) -> Arc<Self> {
        let namespaces = Arc::new(HostNamespaces::new(
            std::path::Path::new(CAPSULE_NAMESPACES_DIR).join(&config.host),
        ));
        Arc::new(Self {
            store,
            runtime,
            network,
            volumes,
            namespaces,
            config,
            busy: Mutex::new(Busy::default()),
            idle: Notify::new(),
        })
    }

    pub fn runtime(&self) -> &Arc<dyn Runtime> {
        &self.runtime
    }

    fn busy(&self) -> std::sync::MutexGuard<'_, Busy> {
        self.busy.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs until the task is dropped: dispatch, events and periodic resync.
    pub async fn run(self: Arc<Self>) {
        tracing::info!(host = %self.config.host, "compute agent starting");
        // Registered before anything else, so the scheduler sees the host.
        self.report().await;
        let reports = tokio::spawn(Arc::clone(&self).report_periodically());
        if let Some(network) = &self.network {
            match network.prepare_host().await {
                Ok(()) => self.restore_networks().await,
                Err(err) => {
                    tracing::error!(error = %err, "preparing the host's networking failed; creates will fail until it works")
                }
            }
        }
        self.restore_mounts().await;
        if let Err(err) = self.resync().await {
            tracing::warn!(error = %err, "initial resync failed; retrying on the timer");
        }
        let events = tokio::spawn(Arc::clone(&self).follow_events());
        let timer = tokio::spawn(Arc::clone(&self).resync_periodically());
        let members = tokio::spawn(Arc::clone(&self).refresh_members_periodically());
        self.dispatch_forever().await;
        events.abort();
        timer.abort();
        members.abort();
        reports.abort();
    }

    async fn dispatch_forever(self: &Arc<Self>) {
        loop {
            if let Err(err) = self.dispatch().await {
                tracing::warn!(error = %err, "reading pending actions failed");
            }
            tokio::select! {
                () = self.store.wait_for_work(&self.config.host, self.config.idle_poll) => {}
                () = self.idle.notified() => {}
            }
        }
    }

    /// Starts a worker for every container with pending actions that has
    /// none running, and for every image with a task.
    async fn dispatch(self: &Arc<Self>) -> Result<(), StoreError> {
        self.dispatch_image_tasks().await?;
        let pending = self.store.pending_actions(&self.config.host).await?;
        let mut by_container: HashMap<String, Vec<ActionRecord>> = HashMap::new();
        for action in pending {
            by_container
                .entry(action.container_uuid.clone())
                .or_default()
                .push(action);
        }
        for (uuid, actions) in by_container {
            if !self.busy().insert(uuid.clone()) {
                continue;
            }
            let agent = Arc::clone(self);
            tokio::spawn(async move {
                for action in actions {
                    agent.perform(action).await;
                }
                if agent.busy().release(&uuid) {
                    agent.observe_change(&uuid).await;
                }
                agent.idle.notify_one();
            });
        }
        Ok(())
    }

    fn deadline_of(&self, action: &ActionRecord) -> Duration {
        if action.action == "create" {
            return self.config.create_deadline;
        }
        let stop_timeout = action
            .params
            .get("timeout")
            .and_then(Value::as_u64)
            .unwrap_or(10);
        self.config.action_deadline + Duration::from_secs(stop_timeout)
    }

    /// Performs one action to completion or failure, and records the outcome.
    async fn perform(&self, action: ActionRecord) {
        let event = format!("compute__do_container_{}", action.action);
        let deadline = self.deadline_of(&action);
        let elapsed = (Utc::now() - action.start_time)
            .to_std()
            .unwrap_or_default();
        // Deletes always proceed: removing is safe and is what the user wants.
        let remaining = if action.action == "delete" {
            deadline.max(Duration::from_secs(30))
        } else {
            deadline.saturating_sub(elapsed)
        };
        if let Err(err) = self.store.start_event(action.id, &event).await {
            tracing::warn!(error = %err, "recording event start failed");
        }
        let timed_out = || {
            WorkError::TimedOut(format!(
                "{} did not finish within {} s",
                action.action,
                deadline.as_secs()
            ))
        };
        let outcome = if action.action == "create" {
            // The image pull has its own bound; the rest of the create gets
            // what is left of the deadline.
            self.create(&action, remaining, timed_out).await
        } else {
            tokio::time::timeout(remaining, self.execute(&action))
                .await
                .unwrap_or_else(|_| Err(timed_out()))
        };
        let (result, message, traceback) = match &outcome {
            Ok(()) => ("Success", None, None),
            Err(err) => ("Error", Some("Error"), Some(err.to_string())),
        };
        if let Err(err) = &outcome {
            tracing::warn!(uuid = %action.container_uuid, action = %action.action, error = %err, "action failed");
            // A network or security group change that fails leaves the
            // container running as it was; the action log says why.
            let leaves_it_be = matches!(
                action.action.as_str(),
                "network_attach"
                    | "network_detach"
                    | "add_security_group"
                    | "remove_security_group"
            );
            if leaves_it_be {
                let uuid = action.container_uuid.clone();
                let clear = |c: &mut Container| {
                    c.task_state = None;
                    Ok(())
                };
                if let Err(store_err) =
                    ignore_rejection(self.store.update_container(&uuid, &clear, None).await)
                {
                    tracing::warn!(error = %store_err, "clearing the task state failed");
                }
            } else if let Err(store_err) =
                self.fail(&action.container_uuid, &action.action, err).await
            {
                tracing::warn!(error = %store_err, "recording the failure failed");
            }
        }
        let record = async {
            self.store
                .finish_event(action.id, &event, result, traceback.as_deref())
                .await?;
            self.store.finish_action(action.id, message).await
        };
        if let Err(err) = record.await {
            tracing::warn!(error = %err, "recording action result failed");
        }
    }

    /// Puts the container in Error with a reason a user can act on, and for
    /// a failed create removes whatever the engine was left holding.
    async fn fail(&self, uuid: &str, action: &str, err: &WorkError) -> Result<(), StoreError> {
        let failed_create = action == "create";
        let reason = match err {
            WorkError::Runtime(e) => e.to_string(),
            WorkError::Network(e) => format!("Network setup failed: {e}"),
            WorkError::Volume(e) => format!("Volume setup failed: {e}"),
            WorkError::Sandbox(e) => format!("Capsule setup failed: {e}"),
            WorkError::TimedOut(text) => text.clone(),
            WorkError::Store(_) => "Unexpected exception occurred.".into(),
        };
        if failed_create
            && let Some(capsule) = self.store.get_container(uuid).await?
            && capsule.kind == RecordKind::Capsule
        {
            self.discard_capsule(&capsule, &reason).await;
        }
        if failed_create {
            let name = format!("zun-{uuid}");
            if let Err(remove_err) = self.runtime.remove(&name).await {
                tracing::warn!(%name, error = %remove_err, "cleaning up a failed create");
            }
            if let Some(network) = &self.network
                && let Err(detach_err) = network.detach(uuid).await
            {
                tracing::warn!(%uuid, error = %detach_err, "releasing the network of a failed create");
            }
            if let Some(container) = self.store.get_container(uuid).await?
                && let Err(release_err) = self.release_mounts(&container).await
            {
                tracing::warn!(%uuid, error = %release_err, "releasing the mounts of a failed create");
            }
        }
        let mutate = move |c: &mut Container| {
            c.status = ContainerStatus::Error;
            c.status_reason = Some(reason.clone());
            c.task_state = None;
            if failed_create {
                c.addresses = None;
            }
            Ok(())
        };
        ignore_rejection(self.store.update_container(uuid, &mutate, None).await)
    }

    /// Retries a runtime call while the engine is unreachable (restarting),
    /// within the caller's deadline.
    async fn retrying<T, F, Fut>(&self, mut call: F) -> Result<T, RuntimeError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, RuntimeError>>,
    {
        let mut delay = Duration::from_millis(100);
        loop {
            match call().await {
                Err(RuntimeError::Unavailable(msg)) => {
                    tracing::debug!(%msg, "engine unavailable; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
                other => return other,
            }
        }
    }

    async fn execute(&self, action: &ActionRecord) -> Result<(), WorkError> {
        let Some(container) = self.store.get_container(&action.container_uuid).await? else {
            // Deleted meanwhile; nothing left to do.
            return Ok(());
        };
        let name = container.engine_name();
        let rt = &self.runtime;
        let timeout = action.params.get("timeout").and_then(Value::as_u64);
        match action.action.as_str() {
            "start" => {
                self.restore_network(&container).await?;
                self.prepare_mounts(&container).await?;
                self.retrying(|| rt.start(&name)).await?;
            }
            "stop" => self.retrying(|| rt.stop(&name, timeout)).await?,
            "reboot" => {
                self.restore_network(&container).await?;
                self.prepare_mounts(&container).await?;
                self.retrying(|| rt.restart(&name, timeout)).await?;
            }
            "pause" => self.retrying(|| rt.pause(&name)).await?,
            "unpause" => self.retrying(|| rt.unpause(&name)).await?,
            "kill" => {
                let signal = action.params.get("signal").and_then(Value::as_str);
                self.retrying(|| rt.kill(&name, signal)).await?;
            }
            "update" => {
                let cpu = action.params.get("cpu").and_then(Value::as_f64);
                let memory = action.params.get("memory").and_then(Value::as_i64);
                self.retrying(|| rt.update(&name, cpu, memory)).await?;
            }
            "network_attach" | "network_detach" => {
                let Some(network) = &self.network else {
                    return Err(WorkError::Network(NetworkError::Unsupported(
                        "this host gives containers no network".into(),
                    )));
                };
                let addresses = if action.action == "network_attach" {
                    let requested: RequestedNetwork = serde_json::from_value(action.params.clone())
                        .map_err(|e| {
                            WorkError::Network(NetworkError::Unsupported(format!(
                                "bad network request: {e}"
                            )))
                        })?;
                    network.attach_network(&container, &requested).await?
                } else {
                    let name = action
                        .params
                        .get("network")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    network.detach_network(&container, name).await?
                };
                let mutate = move |c: &mut Container| {
                    c.addresses = Some(addresses.clone());
                    c.task_state = None;
                    Ok(())
                };
                ignore_rejection(
                    self.store
                        .update_container(&container.uuid, &mutate, None)
                        .await,
                )?;
                return Ok(());
            }
            "add_security_group" | "remove_security_group" => {
                // The API wrote the container's new groups with the action.
                if let Some(network) = &self.network {
                    network.apply_security_groups(&container).await?;
                }
                return Ok(());
            }
            "rebuild" => {
                // A new engine container from the (maybe new) image takes
                // the old one's place in the same network namespace, so the
                // container keeps its uuid, name and addresses.
                self.retrying(|| rt.remove(&name)).await?;
                let image = self.prepare_image(&container).await?;
                let run = container.desired_state == DesiredState::Running;
                return self.create_from(&container, &image, run).await;
            }
            "delete" if container.kind == RecordKind::Capsule => {
                return self.delete_capsule(&container).await;
            }
            "delete" => {
                let stop = action
                    .params
                    .get("stop")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                if stop {
                    match self.retrying(|| rt.stop(&name, Some(10))).await {
                        Ok(()) | Err(RuntimeError::NotFound(_)) => {}
                        Err(err) => return Err(err.into()),
                    }
                }
                self.retrying(|| rt.remove(&name)).await?;
                if let Some(network) = &self.network {
                    network.detach(&container.uuid).await?;
                }
                self.release_mounts(&container).await?;
                self.store.delete_container(&container.uuid).await?;
                tracing::info!(uuid = %container.uuid, "container deleted");
                return Ok(());
            }
            other => {
                return Err(WorkError::Runtime(RuntimeError::Rejected(format!(
                    "unknown action {other}"
                ))));
            }
        }
        self.refresh(&container.uuid, &name).await
    }

    /// Makes a container's network again when its namespace is gone (the
    /// host rebooted: everything under /run went), and points its engine
    /// container at the new namespace; the addresses are the stored ones.
    async fn restore_network(&self, container: &Container) -> Result<(), WorkError> {
        let Some(network) = &self.network else {
            return Ok(());
        };
        if container.kind != RecordKind::Container
            || container.container_id.is_none()
            || network.is_attached(&container.uuid)
        {
            return Ok(());
        }
        tracing::info!(uuid = %container.uuid, "restoring the container's network");
        let attachment = network.attach(container).await?;
        let name = container.engine_name();
        let sandbox = Sandbox {
            network: Some(&attachment),
            ipc: None,
        };
        self.retrying(|| self.runtime.join_sandbox(&name, sandbox))
            .await?;
        Ok(())
    }

    /// Containers of this host whose network is gone get it back, so the
    /// engine's own restarts (restart policies) find it.
    async fn restore_networks(&self) {
        let Ok(records) = self.store.containers_on_host(&self.config.host).await else {
            return;
        };
        for c in records.iter().filter(|c| {
            !matches!(
                c.status,
                ContainerStatus::Deleting | ContainerStatus::Creating
            )
        }) {
            let restored = if c.kind == RecordKind::Capsule {
                self.restore_capsule(c).await
            } else {
                self.restore_network(c).await
            };
            if let Err(err) = restored {
                tracing::warn!(uuid = %c.uuid, error = %err, "restoring a network failed");
            }
        }
    }

    /// Containers of this host get their mounts back (a reboot unmounted
    /// their volumes), so the engine's own restarts find them.
    async fn restore_mounts(&self) {
        let Ok(records) = self.store.containers_on_host(&self.config.host).await else {
            return;
        };
        for c in records.iter().filter(|c| {
            !c.mounts.is_empty()
                && !matches!(
                    c.status,
                    ContainerStatus::Deleting | ContainerStatus::Creating | ContainerStatus::Error
                )
        }) {
            if let Err(err) = self.prepare_mounts(c).await {
                tracing::warn!(uuid = %c.uuid, error = %err, "restoring a container's mounts failed");
            }
        }
    }

    /// Performs a create: the image as its pull policy says (bounded by the
    /// pull timeout), then create, start and inspect within `remaining`.
    async fn create(
        &self,
        action: &ActionRecord,
        remaining: Duration,
        timed_out: impl FnOnce() -> WorkError,
    ) -> Result<(), WorkError> {
        let Some(container) = self.store.get_container(&action.container_uuid).await? else {
            // Deleted meanwhile; nothing left to do.
            return Ok(());
        };
        if container.kind == RecordKind::Capsule {
            // Its members' pulls count against the capsule's deadline.
            return tokio::time::timeout(remaining, self.create_capsule(&container))
                .await
                .unwrap_or_else(|_| Err(timed_out()));
        }
        let run = action
            .params
            .get("run")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let image = self.prepare_image(&container).await?;
        tokio::time::timeout(remaining, self.create_from(&container, &image, run))
            .await
            .unwrap_or_else(|_| Err(timed_out()))
    }

    async fn create_from(
        &self,
        container: &Container,
        image: &str,
        run: bool,
    ) -> Result<(), WorkError> {
        let rt = &self.runtime;
        let name = container.engine_name();
        let began = std::time::Instant::now();
        let attachment = match &self.network {
            Some(network) => Some(network.attach(container).await?),
            None => None,
        };
        let mounts = self.prepare_mounts(container).await?;
        let attached = began.elapsed();
        let engine_id = self
            .retrying(|| {
                let sandbox = Sandbox {
                    network: attachment.as_ref(),
                    ipc: None,
                };
                rt.create(container, image, sandbox, &mounts)
            })
            .await?;
        let created = began.elapsed();
        let addresses = attachment.map(|a| a.addresses);
        if run {
            self.retrying(|| rt.start(&name)).await?;
        }
        let started = began.elapsed();
        let observed = self.retrying(|| rt.inspect(&name)).await?;
        let inspected = began.elapsed();
        self.store
            .update_container(
                &container.uuid,
                &created_as(engine_id, addresses, observed),
                None,
            )
            .await?;
        tracing::debug!(
            uuid = %container.uuid,
            network_ms = attached.as_millis(),
            create_ms = (created - attached).as_millis(),
            start_ms = (started - created).as_millis(),
            inspect_ms = (inspected - started).as_millis(),
            record_ms = (began.elapsed() - inspected).as_millis(),
            "container created"
        );
        Ok(())
    }

    /// Reads one container from the engine and writes what is true.
    async fn refresh(&self, uuid: &str, name: &str) -> Result<(), WorkError> {
        let observed = self.retrying(|| self.runtime.inspect(name)).await?;
        self.record_observation(uuid, observed.as_ref(), true)
            .await?;
        Ok(())
    }

    /// Writes an observation when it changes the record, unless an action is
    /// in flight for it (then the action's own result wins). `after_action`
    /// says no action is in flight, so a task state left on the record is
    /// stale and is cleared.
    async fn record_observation(
        &self,
        uuid: &str,
        observed: Option<&Observed>,
        after_action: bool,
    ) -> Result<(), StoreError> {
        let observed = observed.cloned();
        let mutate = move |c: &mut Container| {
            if !after_action && c.task_state.is_some() {
                return Err(ApiError::conflict("an action is in progress"));
            }
            if matches!(
                c.status,
                ContainerStatus::Deleting | ContainerStatus::Creating
            ) && !after_action
            {
                return Err(ApiError::conflict("a create or delete is in progress"));
            }
            let changed = match &observed {
                Some(o) => apply_observed(c, o),
                None if c.container_id.is_some() => missing_from_engine(c),
                None => false,
            };
            if changed {
                Ok(())
            } else {
                Err(ApiError::conflict("unchanged"))
            }
        };
        ignore_rejection(self.store.update_container(uuid, &mutate, None).await)
    }

    async fn follow_events(self: Arc<Self>) {
        loop {
            let mut stream = self.runtime.events();
            while let Some(item) = stream.next().await {
                match item {
                    Ok(event) => {
                        if self.busy().note_change(&event.uuid) {
                            continue;
                        }
                        self.observe_change(&event.uuid).await;
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "engine event stream failed");
                        break;
                    }
                }
            }
            // The stream ended: the engine restarted or went away. Re-list
            // once it answers again so nothing seen meanwhile is lost.
            tokio::time::sleep(Duration::from_secs(1)).await;
            if let Err(err) = self.resync().await {
                tracing::debug!(error = %err, "resync after event stream loss failed");
            }
        }
    }

    /// Records what the engine now says of a container it reported a change of.
    async fn observe_change(&self, uuid: &str) {
        match self.runtime.inspect(&format!("zun-{uuid}")).await {
            Ok(observed) => {
                if let Err(err) = self.observe_one(uuid, observed.as_ref()).await {
                    tracing::warn!(error = %err, "recording an engine event failed");
                }
            }
            Err(err) => tracing::debug!(error = %err, "inspect after event failed"),
        }
    }

    async fn observe_one(&self, uuid: &str, observed: Option<&Observed>) -> Result<(), WorkError> {
        let Some(container) = self.store.get_container(uuid).await? else {
            return Ok(());
        };
        if container.host.as_deref() != Some(self.config.host.as_str()) {
            return Ok(());
        }
        // A member's capsule being created or deleted owns it meanwhile.
        if let Some(link) = &container.capsule
            && self.busy().contains(&link.capsule_uuid)
        {
            return Ok(());
        }
        if observed.is_none() && restarts_on_its_own(&container) {
            return self.recreate(&container).await;
        }
        self.record_observation(uuid, observed, false).await?;
        if let Some(link) = &container.capsule
            && !self.busy().contains(&link.capsule_uuid)
        {
            self.refresh_capsule(&link.capsule_uuid, false).await?;
        }
        Ok(())
    }

    async fn recreate(&self, container: &Container) -> Result<(), WorkError> {
        tracing::info!(uuid = %container.uuid, "re-creating a container removed outside the service, as its restart policy says");
        let uuid = container.uuid.clone();
        if !self.busy().insert(uuid.clone()) {
            return Ok(());
        }
        let result = async {
            if container.kind == RecordKind::Member {
                return self.recreate_member(container).await;
            }
            let image = self.prepare_image(container).await?;
            self.create_from(container, &image, true).await
        }
        .await;
        // A change reported meanwhile is left to the next resync: looking
        // at it here could recurse into another re-create.
        self.busy().release(&uuid);
        result
    }

    async fn resync_periodically(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.config.resync_interval);
        tick.tick().await;
        loop {
            tick.tick().await;
            if let Err(err) = self.resync().await {
                tracing::warn!(error = %err, "periodic resync failed");
            }
        }
    }

    /// Keeps security group members current between resyncs: a container
    /// on another host is admitted by this host's rules within about a
    /// second, not a resync interval.
    async fn refresh_members_periodically(self: Arc<Self>) {
        let Some(network) = self.network.clone() else {
            return;
        };
        let mut tick = tokio::time::interval(self.config.member_refresh_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(err) = network.refresh_members().await {
                tracing::warn!(error = %err, "refreshing security group members failed");
            }
        }
    }

    /// Compares the whole host with the store: fixes statuses, reports
    /// containers gone from the engine, and removes engine containers the
    /// store does not know.
    async fn resync(&self) -> Result<(), WorkError> {
        let engine = self.runtime.list().await?;
        let records = self.store.containers_on_host(&self.config.host).await?;
        let pending: HashSet<String> = self
            .store
            .pending_actions(&self.config.host)
            .await?
            .into_iter()
            .map(|a| a.container_uuid)
            .collect();
        let known: HashSet<&str> = records.iter().map(|c| c.uuid.as_str()).collect();
        let by_uuid: HashMap<&str, &Observed> =
            engine.iter().map(|o| (o.uuid.as_str(), o)).collect();

        for orphan in engine.iter().filter(|o| !known.contains(o.uuid.as_str())) {
            if self.busy().contains(&orphan.uuid) {
                continue;
            }
            // Re-check: the row may have been written after we listed.
            if self.store.get_container(&orphan.uuid).await?.is_some() {
                continue;
            }
            tracing::info!(uuid = %orphan.uuid, "removing an engine container the store does not know");
            if let Err(err) = self.runtime.remove(&format!("zun-{}", orphan.uuid)).await {
                tracing::warn!(uuid = %orphan.uuid, error = %err, "removing orphan failed");
            }
        }

        for record in &records {
            if pending.contains(&record.uuid) || self.busy().contains(&record.uuid) {
                continue;
            }
            // A capsule has no engine container: its members tell its
            // status (below). A member belongs to its capsule's create or
            // delete while one is under way.
            if record.kind == RecordKind::Capsule {
                continue;
            }
            if let Some(link) = &record.capsule
                && (pending.contains(&link.capsule_uuid)
                    || self.busy().contains(&link.capsule_uuid))
            {
                continue;
            }
            let observed = by_uuid.get(record.uuid.as_str()).copied();
            if observed.is_none() && record.status == ContainerStatus::Creating {
                // Its create action finished without a container: a crash
                // between the two writes. Upstream's wording.
                let mutate = |c: &mut Container| {
                    c.status = ContainerStatus::Error;
                    c.status_reason = Some("Container failed to create correctly".into());
                    c.task_state = None;
                    Ok(())
                };
                ignore_rejection(
                    self.store
                        .update_container(&record.uuid, &mutate, None)
                        .await,
                )?;
                continue;
            }
            if observed.is_none() && restarts_on_its_own(record) && record.container_id.is_some() {
                self.recreate(record).await?;
                continue;
            }
            // No action is pending, so any task state left is stale.
            self.record_observation(&record.uuid, observed, true)
                .await?;
        }
        for capsule in records.iter().filter(|c| c.kind == RecordKind::Capsule) {
            if pending.contains(&capsule.uuid) || self.busy().contains(&capsule.uuid) {
                continue;
            }
            if !matches!(
                capsule.status,
                ContainerStatus::Error | ContainerStatus::Unknown
            ) && let Err(err) = self.restore_capsule(capsule).await
            {
                tracing::warn!(uuid = %capsule.uuid, error = %err, "restoring a capsule's namespaces failed");
            }
            self.refresh_capsule(&capsule.uuid, false).await?;
        }
        self.collect_capsule_garbage(&known).await;
        if let Some(network) = &self.network {
            match network.collect_garbage(&records).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(containers = n, "removed leftover network objects"),
                Err(err) => tracing::warn!(error = %err, "collecting network garbage failed"),
            }
        }
        match self.collect_volume_garbage().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, "removed leftover volumes and files"),
            Err(err) => tracing::warn!(error = %err, "collecting volume garbage failed"),
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    //! The reconciler's rules against an in-memory runtime. The Docker
    //! driver itself is proven against a real engine in tests/.

    use std::collections::BTreeMap;

    use async_trait::async_trait;
    use futures_util::stream::{self, BoxStream};
    use serde_json::json;
    use zun_store::{NewAction, SqliteStore};

    use super::*;
    use crate::runtime::{HostFacts, ImageInfo, LogOptions, PullError, RegistryAuth, RuntimeEvent};

    #[derive(Default)]
    pub(crate) struct FakeEngine {
        pub(crate) containers: Mutex<BTreeMap<String, EngineState>>,
        /// Makes `start` refuse, as an engine does for a bad command.
        pub(crate) refuse_start: bool,
        /// Makes `create` hang, as a stuck engine would.
        pub(crate) hang_create: bool,
        /// Makes every pull fail as when the registry cannot be reached.
        pub(crate) registry_unreachable: bool,
        /// Every pull asked for: reference and credentials.
        pub(crate) pulls: Mutex<Vec<(String, Option<RegistryAuth>)>>,
        /// The image reference of every create.
        pub(crate) created_from: Mutex<Vec<String>>,
    }

    impl FakeEngine {
        fn state(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, EngineState>> {
            self.containers
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
        }

        fn set(&self, name: &str, state: EngineState) -> Result<(), RuntimeError> {
            match self.state().get_mut(name) {
                Some(s) => {
                    *s = state;
                    Ok(())
                }
                None => Err(RuntimeError::NotFound(format!("No such container: {name}"))),
            }
        }
    }

    fn observed(name: &str, state: EngineState) -> Observed {
        Observed {
            engine_id: format!("id-{name}"),
            uuid: name.trim_start_matches("zun-").to_string(),
            state,
            status_detail: format!("{state:?}"),
            exit_code: None,
            error: None,
            oom_killed: false,
            ports: vec![],
            started_at: None,
            finished_at: None,
        }
    }

    #[async_trait]
    impl Runtime for FakeEngine {
        async fn host_facts(&self) -> Result<HostFacts, RuntimeError> {
            Ok(HostFacts {
                cpus: 4.0,
                mem_total: 8192,
                disk_total: 100,
                ..HostFacts::default()
            })
        }
        async fn image(&self, _: &str) -> Result<Option<ImageInfo>, RuntimeError> {
            Ok(Some(ImageInfo {
                id: "sha256:fake".into(),
                size: 1,
                repo_tags: vec![],
            }))
        }
        async fn pull(
            &self,
            reference: &str,
            auth: Option<&RegistryAuth>,
            _: &(dyn Fn(String) + Send + Sync),
        ) -> Result<(), PullError> {
            self.pulls
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push((reference.to_owned(), auth.cloned()));
            if self.registry_unreachable {
                return Err(PullError::Unreachable(
                    "dial tcp: connection refused".into(),
                ));
            }
            Ok(())
        }
        async fn remove_image(&self, _: &str) -> Result<(), RuntimeError> {
            Ok(())
        }
        async fn create(
            &self,
            c: &Container,
            image: &str,
            _: crate::runtime::Sandbox<'_>,
            _: &[crate::runtime::HostMount],
        ) -> Result<String, RuntimeError> {
            self.created_from
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(image.to_owned());
            if self.hang_create {
                std::future::pending::<()>().await;
            }
            self.state()
                .entry(c.engine_name())
                .or_insert(EngineState::Created);
            Ok(format!("id-{}", c.engine_name()))
        }
        async fn start(&self, name: &str) -> Result<(), RuntimeError> {
            if self.refuse_start {
                return Err(RuntimeError::Rejected(
                    "exec: \"nosuch\": executable file not found".into(),
                ));
            }
            self.set(name, EngineState::Running)
        }
        async fn stop(&self, name: &str, _: Option<u64>) -> Result<(), RuntimeError> {
            self.set(name, EngineState::Exited)
        }
        async fn restart(&self, name: &str, _: Option<u64>) -> Result<(), RuntimeError> {
            self.set(name, EngineState::Running)
        }
        async fn pause(&self, name: &str) -> Result<(), RuntimeError> {
            self.set(name, EngineState::Paused)
        }
        async fn unpause(&self, name: &str) -> Result<(), RuntimeError> {
            self.set(name, EngineState::Running)
        }
        async fn kill(&self, name: &str, _: Option<&str>) -> Result<(), RuntimeError> {
            self.set(name, EngineState::Exited)
        }
        async fn remove(&self, name: &str) -> Result<(), RuntimeError> {
            self.state().remove(name);
            Ok(())
        }
        async fn update(
            &self,
            _: &str,
            _: Option<f64>,
            _: Option<i64>,
        ) -> Result<(), RuntimeError> {
            Ok(())
        }
        async fn inspect(&self, name: &str) -> Result<Option<Observed>, RuntimeError> {
            Ok(self.state().get(name).map(|s| observed(name, *s)))
        }
        async fn list(&self) -> Result<Vec<Observed>, RuntimeError> {
            Ok(self.state().iter().map(|(n, s)| observed(n, *s)).collect())
        }
        async fn logs(&self, _: &str, _: &LogOptions) -> Result<String, RuntimeError> {
            Ok(String::new())
        }
        fn events(&self) -> BoxStream<'static, Result<RuntimeEvent, RuntimeError>> {
            Box::pin(stream::pending())
        }
    }

    const HOST: &str = "host-a";

    pub(crate) fn record(name: &str) -> Container {
        Container {
            image_driver: Some("docker".into()),
            cpu: Some(1.0),
            memory: Some("512".into()),
            host: Some(HOST.into()),
            desired_state: DesiredState::Running,
            ..Container::new(uuid::Uuid::new_v4().to_string(), name, "p", "u", "busybox")
        }
    }

    fn create_action(run: bool) -> NewAction {
        NewAction {
            request_id: format!("req-{}", uuid::Uuid::new_v4()),
            action: "create".into(),
            user_id: "u".into(),
            project_id: "p".into(),
            host: Some(HOST.into()),
            params: json!({ "run": run }),
        }
    }

    async fn setup(engine: FakeEngine) -> (Arc<Agent>, Arc<SqliteStore>, Arc<FakeEngine>) {
        setup_with(engine, None).await
    }

    pub(crate) async fn setup_with(
        engine: FakeEngine,
        secrets: Option<zun_secrets::SecretKey>,
    ) -> (Arc<Agent>, Arc<SqliteStore>, Arc<FakeEngine>) {
        let store = Arc::new(
            SqliteStore::open_in_memory()
                .await
                .expect("in-memory store"),
        );
        let engine = Arc::new(engine);
        let mut config = AgentConfig::new(HOST);
        config.create_deadline = Duration::from_millis(300);
        config.secrets = secrets;
        let agent = Agent::new(store.clone(), engine.clone(), None, None, config);
        (agent, store, engine)
    }

    /// Records a `run=true` create, as the API does.
    pub(crate) async fn submit_create(store: &SqliteStore, c: &Container) -> ActionRecord {
        store
            .insert_container(c, &create_action(true), None)
            .await
            .expect("insert")
    }

    /// Runs every pending action to completion, as the dispatcher would.
    pub(crate) async fn drain(agent: &Agent, store: &SqliteStore) {
        for action in store.pending_actions(HOST).await.expect("pending") {
            agent.perform(action).await;
        }
    }

    pub(crate) async fn status_of(
        store: &SqliteStore,
        uuid: &str,
    ) -> (ContainerStatus, Option<String>) {
        let c = store
            .get_container(uuid)
            .await
            .expect("read")
            .expect("exists");
        (c.status, c.status_reason)
    }

    #[tokio::test]
    async fn create_with_run_ends_running_and_records_success() {
        let (agent, store, engine) = setup(FakeEngine::default()).await;
        let c = record("web");
        let action = submit_create(&store, &c).await;
        drain(&agent, &store).await;
        assert_eq!(status_of(&store, &c.uuid).await.0, ContainerStatus::Running);
        assert_eq!(
            engine.state().get(&c.engine_name()),
            Some(&EngineState::Running)
        );
        let (done, events) = store
            .get_action(&c.uuid, &action.request_id)
            .await
            .expect("read")
            .expect("exists");
        assert!(done.finish_time.is_some());
        assert_eq!(done.message, None);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].event, "compute__do_container_create");
        assert_eq!(events[0].result.as_deref(), Some("Success"));
        assert!(
            store
                .pending_actions(HOST)
                .await
                .expect("pending")
                .is_empty()
        );
    }

    #[tokio::test]
    async fn failed_start_goes_to_error_and_leaves_no_engine_container() {
        let (agent, store, engine) = setup(FakeEngine {
            refuse_start: true,
            ..FakeEngine::default()
        })
        .await;
        let c = record("bad");
        let action = submit_create(&store, &c).await;
        drain(&agent, &store).await;
        let (status, reason) = status_of(&store, &c.uuid).await;
        assert_eq!(status, ContainerStatus::Error);
        assert!(
            reason
                .unwrap_or_default()
                .contains("executable file not found")
        );
        assert!(
            engine.state().is_empty(),
            "the failed create left an engine container"
        );
        let (done, _) = store
            .get_action(&c.uuid, &action.request_id)
            .await
            .expect("read")
            .expect("exists");
        assert_eq!(done.message.as_deref(), Some("Error"));
    }

    #[tokio::test]
    async fn a_create_that_hangs_past_its_deadline_goes_to_error() {
        let (agent, store, _) = setup(FakeEngine {
            hang_create: true,
            ..FakeEngine::default()
        })
        .await;
        let c = record("slow");
        submit_create(&store, &c).await;
        drain(&agent, &store).await;
        let (status, reason) = status_of(&store, &c.uuid).await;
        assert_eq!(status, ContainerStatus::Error);
        assert!(reason.unwrap_or_default().contains("did not finish within"));
        assert!(
            store
                .pending_actions(HOST)
                .await
                .expect("pending")
                .is_empty()
        );
    }

    #[tokio::test]
    async fn redoing_a_create_after_a_crash_reuses_the_engine_container() {
        let (agent, store, engine) = setup(FakeEngine::default()).await;
        let c = record("again");
        submit_create(&store, &c).await;
        // The previous agent created it and died before starting it.
        engine.state().insert(c.engine_name(), EngineState::Created);
        drain(&agent, &store).await;
        assert_eq!(status_of(&store, &c.uuid).await.0, ContainerStatus::Running);
        assert_eq!(engine.state().len(), 1);
    }

    #[test]
    fn a_change_reported_during_work_is_kept_for_when_the_work_ends() {
        let mut busy = Busy::default();
        assert!(!busy.note_change("idle"), "nothing works on it: look now");
        assert!(busy.insert("c".into()));
        assert!(!busy.insert("c".into()), "one worker at a time");
        assert!(busy.note_change("c"));
        assert!(busy.contains("c"));
        assert!(busy.release("c"), "the change is looked at after the work");
        assert!(!busy.contains("c"));
        assert!(busy.insert("c".into()));
        assert!(!busy.release("c"), "a change is reported once");
    }

    #[tokio::test]
    async fn resync_removes_orphans_and_reports_vanished_containers() {
        let (agent, store, engine) = setup(FakeEngine::default()).await;
        let kept = record("kept");
        let vanished = record("vanished");
        let auto = Container {
            auto_remove: true,
            ..record("auto")
        };
        let restarting = Container {
            restart_policy: Some(zun_types::RestartPolicy {
                name: "always".into(),
                maximum_retry_count: "0".into(),
            }),
            ..record("phoenix")
        };
        for c in [&kept, &vanished, &auto, &restarting] {
            submit_create(&store, c).await;
        }
        drain(&agent, &store).await;
        engine
            .state()
            .insert("zun-orphan".into(), EngineState::Running);
        for c in [&vanished, &auto, &restarting] {
            engine.state().remove(&c.engine_name());
        }
        agent.resync().await.expect("resync");

        assert!(
            !engine.state().contains_key("zun-orphan"),
            "orphan not removed"
        );
        assert_eq!(
            status_of(&store, &kept.uuid).await.0,
            ContainerStatus::Running
        );
        let (status, reason) = status_of(&store, &vanished.uuid).await;
        assert_eq!(status, ContainerStatus::Error);
        assert!(
            reason
                .unwrap_or_default()
                .contains("removed outside the container service")
        );
        assert_eq!(
            status_of(&store, &auto.uuid).await.0,
            ContainerStatus::Deleted
        );
        assert_eq!(
            status_of(&store, &restarting.uuid).await.0,
            ContainerStatus::Running
        );
        assert_eq!(
            engine.state().get(&restarting.engine_name()),
            Some(&EngineState::Running)
        );
    }

    #[tokio::test]
    async fn observations_do_not_overwrite_an_action_in_flight() {
        let (agent, store, _) = setup(FakeEngine::default()).await;
        let c = record("busy");
        submit_create(&store, &c).await;
        drain(&agent, &store).await;
        let reboot = |c: &mut Container| {
            c.status = ContainerStatus::Restarting;
            c.task_state = Some(zun_types::TaskState::ContainerRebooting);
            Ok(())
        };
        store
            .update_container(&c.uuid, &reboot, None)
            .await
            .expect("update");
        let running = observed(&c.engine_name(), EngineState::Running);
        agent
            .record_observation(&c.uuid, Some(&running), false)
            .await
            .expect("observe");
        assert_eq!(
            status_of(&store, &c.uuid).await.0,
            ContainerStatus::Restarting
        );
    }

    #[tokio::test]
    async fn delete_removes_engine_container_then_row() {
        let (agent, store, engine) = setup(FakeEngine::default()).await;
        let c = record("gone");
        submit_create(&store, &c).await;
        drain(&agent, &store).await;
        let delete = NewAction {
            action: "delete".into(),
            params: json!({ "force": true, "stop": false }),
            ..create_action(false)
        };
        let mark = |c: &mut Container| {
            c.status = ContainerStatus::Deleting;
            Ok(())
        };
        store
            .update_container(&c.uuid, &mark, Some(&delete))
            .await
            .expect("update");
        drain(&agent, &store).await;
        assert!(store.get_container(&c.uuid).await.expect("read").is_none());
        assert!(engine.state().is_empty());
    }

    #[test]
    fn every_engine_state_maps_to_a_status() {
        use EngineState::*;
        let expected = [
            (Created, ContainerStatus::Created),
            (Running, ContainerStatus::Running),
            (Paused, ContainerStatus::Paused),
            (Restarting, ContainerStatus::Restarting),
            (Exited, ContainerStatus::Stopped),
            (Dead, ContainerStatus::Dead),
            (Removing, ContainerStatus::Stopped),
        ];
        for (state, status) in expected {
            assert_eq!(observed_status(state), status, "{state:?}");
        }
    }
}
