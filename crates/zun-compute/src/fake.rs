//! An in-memory container engine, for simulation and scale benchmarks
//! (DESIGN decision 6: a fake of each backend kind).
//!
//! [`FakeRuntime`] exists so that the project's benchmark can run a thousand
//! compute hosts with ten thousand containers in one process, each host an
//! agent over its own engine, without a thousand `dockerd`s. It is **never
//! proof that a feature works**: the Docker driver is proven against a real
//! engine (`tests/`), and the reconciler's rules by its own unit tests. What
//! this engine promises is the *contract* of [`Runtime`] as the Docker driver
//! exposes it, so an agent cannot tell the difference in anything it relies
//! on:
//!
//! - the same state rules and idempotence: create returns the existing id,
//!   stop of a stopped container and remove of a removed one succeed, pause
//!   of a stopped container and start of a paused one are refused with
//!   Docker's words;
//! - the same texts: `status_detail` is built by the Docker driver's own
//!   function, errors carry Docker's messages;
//! - a real event stream fed by every state change, in Docker's order
//!   (`kill`, `die`, `stop` for a stop), whose subscribers never hold back
//!   the engine: a subscriber that falls behind gets an error and the end of
//!   its stream, which is what tells an agent to re-list;
//! - `auto_remove` containers are removed when they exit.
//!
//! Processes are not simulated: a container runs until it is stopped (exit
//! code 0) or killed by a fatal signal (128 + the signal), never exits on its
//! own, uses no CPU or memory, and has no filesystem. Ids are derived from
//! counters, not drawn at random, so a run that makes the same calls in the
//! same order sees the same ids.
//!
//! Cost: one mutex-guarded map per engine (no global lock, no task per
//! container). Measured: about 8 KiB per subscribed engine, half of it its
//! event buffer of [`DEFAULT_EVENT_CAPACITY`] slots, and 0.3 KiB per
//! container, so the benchmark's thousand hosts and ten thousand containers
//! hold about 11 MiB.

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use futures_util::future::ready;
use futures_util::stream::{self, BoxStream, StreamExt};
use tokio::sync::broadcast;
use zun_types::Container;
use zun_types::image::ImageRef;

use crate::docker::{
    cpu_limits, create_body, exposed_port_numbers, mib_to_bytes, reports_exit_code, status_detail,
    uuid_of_name,
};
use crate::runtime::{
    Archive, ContainerIo, EngineState, HostFacts, HostMount, ImageInfo, LogOptions, Observed,
    Processes, PullError, RegistryAuth, Runtime, RuntimeError, RuntimeEvent, Sandbox, Session,
    Usage,
};

/// Events an engine buffers for its slowest subscriber. An agent reads them
/// as they come; a burst larger than this makes it re-list, which is cheap
/// for the ten-odd containers of a simulated host. Each slot costs about
/// 64 bytes, allocated up front, so it is kept small for a thousand engines.
pub const DEFAULT_EVENT_CAPACITY: usize = 64;

/// The size every image reports, in bytes (busybox's order of magnitude).
const IMAGE_SIZE: i64 = 4 * 1024 * 1024;

/// Docker refuses smaller memory limits.
const MIN_MEMORY_BYTES: i64 = 6 * 1024 * 1024;

/// The one line a started container's log holds.
const LOG_LINE: &str = "simulated container started\n";

/// Numbers engines are told apart by, so that ids differ across engines.
static ENGINES: AtomicU64 = AtomicU64::new(0);

/// How a configured pull failure shows, with the registry's words as Docker
/// reports them (so the agent classifies and explains them as it would).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullFailure {
    /// The registry cannot be reached.
    Unreachable,
    /// The registry refuses the credentials, or wants some.
    Denied,
    /// The registry has no such repository or tag.
    NotFound,
}

/// An in-memory engine standing in for one host's Docker, for simulations
/// and benchmarks only; see the [module documentation](crate::fake).
#[derive(Debug)]
pub struct FakeRuntime {
    /// Distinguishes this engine's ids from other engines'.
    number: u64,
    state: Mutex<Engine>,
    latency_nanos: AtomicU64,
    available: AtomicBool,
    events: broadcast::Sender<Signal>,
    /// What the simulated host offers.
    facts: Mutex<HostFacts>,
}

/// What a simulated host offers unless told otherwise: a large machine.
fn default_facts() -> HostFacts {
    HostFacts {
        cpus: 64.0,
        mem_total: 256 * 1024,
        disk_total: 2000,
        runtimes: vec!["runc".to_owned()],
        labels: Default::default(),
        architecture: Some("x86_64".to_owned()),
        os_type: Some("linux".to_owned()),
        os: Some("FakeRuntime".to_owned()),
        kernel_version: Some("simulated".to_owned()),
    }
}

/// What the engine holds, under one lock so that every change and its
/// events happen in one order.
#[derive(Debug, Default)]
struct Engine {
    containers: HashMap<Arc<str>, Entry>,
    /// Present images by normalised reference (`busybox:latest`).
    images: HashSet<Arc<str>>,
    execs: HashMap<String, Exec>,
    /// Creation counter of containers and execs, the source of their ids.
    sequence: u64,
    pull_failure: Option<PullFailure>,
}

/// One container; its name is the map's key.
#[derive(Debug)]
struct Entry {
    sequence: u64,
    /// Shared with the engine's image set.
    image: Arc<str>,
    state: EngineState,
    exit_code: i64,
    auto_remove: bool,
    cpu: Option<f64>,
    memory_bytes: Option<i64>,
    ports: Box<[u16]>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
}

#[derive(Debug)]
struct Exec {
    container: Arc<str>,
    output: Bytes,
    started: bool,
}

/// What travels on the event channel: a change of a named container, or
/// the engine going away (which ends every subscriber's stream).
#[derive(Debug, Clone)]
enum Signal {
    Changed(Arc<str>, &'static str),
    Down,
}

type Signals = BoxStream<'static, Result<(Arc<str>, &'static str), RuntimeError>>;

impl Default for FakeRuntime {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeRuntime {
    /// An available engine without images or containers, answering at once.
    pub fn new() -> Self {
        Self::with_event_capacity(DEFAULT_EVENT_CAPACITY)
    }

    /// An engine whose event buffer holds `capacity` events (at least one):
    /// more for one engine standing in for a large host.
    pub fn with_event_capacity(capacity: usize) -> Self {
        let (events, _) = broadcast::channel(capacity.max(1));
        Self {
            number: ENGINES.fetch_add(1, Ordering::Relaxed),
            state: Mutex::new(Engine::default()),
            latency_nanos: AtomicU64::new(0),
            available: AtomicBool::new(true),
            events,
            facts: Mutex::new(default_facts()),
        }
    }

    /// What the simulated host reports it offers.
    pub fn set_host_facts(&self, facts: HostFacts) {
        *self.facts.lock().unwrap_or_else(PoisonError::into_inner) = facts;
    }

    /// Makes `reference` present, as a `docker load` would; a malformed
    /// reference is [`RuntimeError::Invalid`].
    pub fn add_image(&self, reference: &str) -> Result<(), RuntimeError> {
        let key = normalise(reference)
            .ok_or_else(|| RuntimeError::Invalid("invalid reference format".to_owned()))?;
        self.engine().images.insert(key.into());
        Ok(())
    }

    /// Delays every later call by `latency` before it takes effect, to model
    /// a real engine's answer time. Zero (the default) answers at once.
    pub fn set_latency(&self, latency: Duration) {
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.latency_nanos.store(nanos, Ordering::Relaxed);
    }

    /// Takes the engine away (every call fails with
    /// [`RuntimeError::Unavailable`] and every event stream ends) or brings
    /// it back, with its containers as they were, as after a `dockerd`
    /// restart with live-restore.
    pub fn set_available(&self, available: bool) {
        let was = self.available.swap(available, Ordering::SeqCst);
        if was && !available {
            // No subscriber is not an error.
            let _ = self.events.send(Signal::Down);
        }
    }

    pub fn is_available(&self) -> bool {
        self.available.load(Ordering::SeqCst)
    }

    /// Makes every later pull fail as `failure` says, or succeed again.
    pub fn fail_pulls(&self, failure: Option<PullFailure>) {
        self.engine().pull_failure = failure;
    }

    /// The limits recorded for container `name`: CPUs and memory in MiB.
    /// `None` if there is no such container.
    pub fn limits(&self, name: &str) -> Option<(Option<f64>, Option<i64>)> {
        let engine = self.engine();
        let key = engine.resolve(self.number, name).ok()?;
        let entry = engine.containers.get(&key)?;
        Some((entry.cpu, entry.memory_bytes.map(|b| b / (1024 * 1024))))
    }

    fn engine(&self) -> MutexGuard<'_, Engine> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every call goes through here: the simulated latency, then the check
    /// that the engine is there.
    async fn enter(&self) -> Result<(), RuntimeError> {
        let nanos = self.latency_nanos.load(Ordering::Relaxed);
        if nanos > 0 {
            tokio::time::sleep(Duration::from_nanos(nanos)).await;
        }
        if self.is_available() {
            Ok(())
        } else {
            Err(unavailable())
        }
    }

    /// Publishes a change. Called with the engine locked, so subscribers see
    /// changes in the order they happened; never waits for a subscriber.
    fn emit(&self, name: &Arc<str>, action: &'static str) {
        // No subscriber is not an error.
        let _ = self.events.send(Signal::Changed(Arc::clone(name), action));
    }

    fn engine_id(&self, entry: &Entry) -> String {
        hex_id(self.number, entry.sequence)
    }

    fn observe(&self, name: &str, entry: &Entry, now: DateTime<Utc>) -> Observed {
        let uuid = uuid_of_name(name).unwrap_or_else(|| name.trim_start_matches("zun-"));
        Observed {
            engine_id: self.engine_id(entry),
            uuid: uuid.to_owned(),
            state: entry.state,
            status_detail: status_detail(
                entry.state,
                entry.exit_code,
                None,
                entry.started_at,
                entry.finished_at,
                now,
            ),
            exit_code: reports_exit_code(entry.state).then_some(entry.exit_code),
            error: None,
            oom_killed: false,
            ports: entry.ports.to_vec(),
            started_at: entry.started_at,
            finished_at: entry.finished_at,
        }
    }

    /// The main process ends with `exit_code`: `die`, then `stop` when a
    /// stop ended it, then, for an `auto_remove` container that is not being
    /// restarted, its removal (`destroy`), as Docker does.
    fn exit(&self, engine: &mut Engine, name: &Arc<str>, exit_code: i64, how: Exit) {
        let Some(entry) = engine.containers.get_mut(name) else {
            return;
        };
        entry.state = EngineState::Exited;
        entry.exit_code = exit_code;
        entry.finished_at = Some(Utc::now());
        let auto_remove = entry.auto_remove;
        self.emit(name, "die");
        if how != Exit::Killed {
            self.emit(name, "stop");
        }
        if auto_remove && how != Exit::Restarting {
            engine.forget(name);
            self.emit(name, "destroy");
        }
    }

    /// The main process starts (again).
    fn run(&self, engine: &mut Engine, name: &Arc<str>) {
        if let Some(entry) = engine.containers.get_mut(name) {
            entry.state = EngineState::Running;
            entry.exit_code = 0;
            entry.started_at = Some(Utc::now());
            self.emit(name, "start");
        }
    }

    /// The engine's events from `receiver` on, until the engine goes away
    /// or this subscriber falls behind (an error, then the end).
    fn signals(&self, receiver: broadcast::Receiver<Signal>) -> Signals {
        // Subscribed first, checked second: a `Down` sent after the check
        // is in the receiver.
        if !self.is_available() {
            return stream::once(ready(Err(unavailable()))).boxed();
        }
        stream::unfold(Some(receiver), |receiver| async move {
            let mut receiver = receiver?;
            match receiver.recv().await {
                Ok(Signal::Changed(name, action)) => Some((Ok((name, action)), Some(receiver))),
                Ok(Signal::Down) => Some((Err(unavailable()), None)),
                Err(broadcast::error::RecvError::Lagged(missed)) => Some((
                    Err(RuntimeError::Unavailable(format!(
                        "the event stream fell {missed} events behind; re-list"
                    ))),
                    None,
                )),
                Err(broadcast::error::RecvError::Closed) => None,
            }
        })
        .boxed()
    }

    /// A running container, by name or id, or Docker's refusal.
    fn running(engine: &Engine, number: u64, name: &str) -> Result<Arc<str>, RuntimeError> {
        let key = engine.resolve(number, name)?;
        match engine.containers.get(&key).map(|e| e.state) {
            Some(EngineState::Running | EngineState::Paused | EngineState::Restarting) => Ok(key),
            _ => Err(not_running(number, engine, &key)),
        }
    }
}

/// How a main process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Exit {
    /// By `stop`.
    Stopped,
    /// By `kill`, or by a forced `remove`.
    Killed,
    /// By `restart`, which starts it again.
    Restarting,
}

impl Engine {
    /// The key of the container `name` names: its name, or its engine id or
    /// a unique prefix of it, as Docker accepts.
    fn resolve(&self, number: u64, name: &str) -> Result<Arc<str>, RuntimeError> {
        if let Some((key, _)) = self.containers.get_key_value(name) {
            return Ok(Arc::clone(key));
        }
        let missing = || RuntimeError::NotFound(format!("No such container: {name}"));
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(missing());
        }
        let mut matches = self
            .containers
            .iter()
            .filter(|(_, e)| hex_id(number, e.sequence).starts_with(name));
        match (matches.next(), matches.next()) {
            (Some((key, _)), None) => Ok(Arc::clone(key)),
            (Some(_), Some(_)) => Err(RuntimeError::Rejected(format!(
                "multiple IDs found with provided prefix: {name}"
            ))),
            (None, _) => Err(missing()),
        }
    }

    /// Removes a container and its exec instances.
    fn forget(&mut self, name: &Arc<str>) {
        self.containers.remove(name);
        self.execs.retain(|_, exec| exec.container != *name);
    }

    fn next_sequence(&mut self) -> u64 {
        self.sequence += 1;
        self.sequence
    }

    /// The present image `reference` names: by reference, or by id.
    fn find_image(&self, reference: &str) -> Option<Arc<str>> {
        if let Some(key) = normalise(reference).and_then(|r| self.images.get(r.as_str())) {
            return Some(Arc::clone(key));
        }
        let id = reference.strip_prefix("sha256:").unwrap_or(reference);
        self.images
            .iter()
            .find(|key| image_id(key).strip_prefix("sha256:") == Some(id))
            .cloned()
    }
}

#[async_trait]
impl Runtime for FakeRuntime {
    async fn host_facts(&self) -> Result<HostFacts, RuntimeError> {
        self.enter().await?;
        Ok(self
            .facts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone())
    }

    async fn image(&self, reference: &str) -> Result<Option<ImageInfo>, RuntimeError> {
        self.enter().await?;
        Ok(self.engine().find_image(reference).map(|key| ImageInfo {
            id: image_id(&key),
            size: IMAGE_SIZE,
            repo_tags: vec![key.to_string()],
        }))
    }

    async fn pull(
        &self,
        reference: &str,
        _auth: Option<&RegistryAuth>,
        progress: &(dyn Fn(String) + Send + Sync),
    ) -> Result<(), PullError> {
        // Credentials are not checked: a refusal is simulated with
        // `fail_pulls(Some(PullFailure::Denied))`.
        self.enter().await.map_err(PullError::Engine)?;
        let Ok(parsed) = ImageRef::parse(reference) else {
            return Err(PullError::Failed("invalid reference format".to_owned()));
        };
        let key = parsed.pull_reference();
        let failure = self.engine().pull_failure;
        if let Some(failure) = failure {
            return Err(pull_error(failure, &parsed, &key));
        }
        progress("0 of 1 layers done".to_owned());
        progress("1 of 1 layers done".to_owned());
        self.engine().images.insert(key.into());
        Ok(())
    }

    async fn remove_image(&self, reference: &str) -> Result<(), RuntimeError> {
        self.enter().await?;
        let mut engine = self.engine();
        let Some(key) = engine.find_image(reference) else {
            return Ok(());
        };
        if let Some(user) = engine.containers.values().find(|e| e.image == key) {
            let container = hex_id(self.number, user.sequence);
            return Err(RuntimeError::Rejected(format!(
                "conflict: unable to remove repository reference \"{key}\" (must force) - container {} is using its referenced image {}",
                &container[..12],
                &image_id(&key)["sha256:".len().."sha256:".len() + 12],
            )));
        }
        engine.images.remove(&key);
        Ok(())
    }

    async fn create(
        &self,
        container: &Container,
        image: &str,
        sandbox: Sandbox<'_>,
        mounts: &[HostMount],
    ) -> Result<String, RuntimeError> {
        self.enter().await?;
        // The Docker driver's own mapping, for its validation and its ports.
        let body = create_body(
            container,
            image,
            "",
            sandbox,
            mounts,
            &crate::runtime::Hardening::default(),
        )?;
        let memory_bytes = body.host_config.as_ref().and_then(|h| h.memory);
        if memory_bytes.is_some_and(|m| m < MIN_MEMORY_BYTES) {
            return Err(RuntimeError::Rejected(
                "Minimum memory limit allowed is 6MB".to_owned(),
            ));
        }
        let ports = exposed_port_numbers(body.exposed_ports.as_ref());
        let name = container.engine_name();

        let mut engine = self.engine();
        if let Some(existing) = engine.containers.get(name.as_str()) {
            return Ok(self.engine_id(existing));
        }
        let reference = normalise(image)
            .ok_or_else(|| RuntimeError::Rejected("invalid reference format".to_owned()))?;
        let Some(image) = engine.images.get(reference.as_str()).cloned() else {
            return Err(RuntimeError::NotFound(format!(
                "No such image: {reference}"
            )));
        };
        let entry = Entry {
            sequence: engine.next_sequence(),
            image,
            state: EngineState::Created,
            exit_code: 0,
            auto_remove: container.auto_remove,
            cpu: container.cpu,
            memory_bytes,
            ports: ports.into_boxed_slice(),
            started_at: None,
            finished_at: None,
        };
        let id = self.engine_id(&entry);
        let name: Arc<str> = name.into();
        engine.containers.insert(Arc::clone(&name), entry);
        self.emit(&name, "create");
        Ok(id)
    }

    async fn start(&self, name: &str) -> Result<(), RuntimeError> {
        self.enter().await?;
        let mut engine = self.engine();
        let key = engine.resolve(self.number, name)?;
        match engine.containers.get(&key).map(|e| e.state) {
            Some(EngineState::Running | EngineState::Restarting) | None => Ok(()),
            Some(EngineState::Paused) => Err(RuntimeError::Rejected(
                "cannot start a paused container, try unpause instead".to_owned(),
            )),
            Some(EngineState::Dead | EngineState::Removing) => Err(RuntimeError::Rejected(
                format!("container {name} is marked for removal and cannot be started"),
            )),
            Some(EngineState::Created | EngineState::Exited) => {
                self.run(&mut engine, &key);
                Ok(())
            }
        }
    }

    async fn stop(&self, name: &str, _timeout_secs: Option<u64>) -> Result<(), RuntimeError> {
        self.enter().await?;
        let mut engine = self.engine();
        let key = engine.resolve(self.number, name)?;
        if Self::running(&engine, self.number, &key).is_ok() {
            // SIGTERM, which the simulated process obeys at once.
            self.emit(&key, "kill");
            self.exit(&mut engine, &key, 0, Exit::Stopped);
        }
        Ok(())
    }

    async fn restart(&self, name: &str, _timeout_secs: Option<u64>) -> Result<(), RuntimeError> {
        self.enter().await?;
        let mut engine = self.engine();
        let key = engine.resolve(self.number, name)?;
        match engine.containers.get(&key).map(|e| e.state) {
            Some(EngineState::Dead | EngineState::Removing) => {
                return Err(RuntimeError::Rejected(format!(
                    "container {name} is marked for removal and cannot be started"
                )));
            }
            Some(EngineState::Running | EngineState::Paused | EngineState::Restarting) => {
                self.emit(&key, "kill");
                self.exit(&mut engine, &key, 0, Exit::Restarting);
            }
            Some(EngineState::Created | EngineState::Exited) | None => {}
        }
        self.run(&mut engine, &key);
        self.emit(&key, "restart");
        Ok(())
    }

    async fn pause(&self, name: &str) -> Result<(), RuntimeError> {
        self.enter().await?;
        let mut engine = self.engine();
        let key = engine.resolve(self.number, name)?;
        match engine.containers.get_mut(&key) {
            Some(entry) if entry.state == EngineState::Running => {
                entry.state = EngineState::Paused;
                self.emit(&key, "pause");
                Ok(())
            }
            // "is already paused": what was asked already holds.
            Some(entry) if entry.state == EngineState::Paused => Ok(()),
            _ => Err(not_running(self.number, &engine, &key)),
        }
    }

    async fn unpause(&self, name: &str) -> Result<(), RuntimeError> {
        self.enter().await?;
        let mut engine = self.engine();
        let key = engine.resolve(self.number, name)?;
        // "is not paused" means what was asked already holds.
        if let Some(entry) = engine.containers.get_mut(&key)
            && entry.state == EngineState::Paused
        {
            entry.state = EngineState::Running;
            self.emit(&key, "unpause");
        }
        Ok(())
    }

    async fn kill(&self, name: &str, signal: Option<&str>) -> Result<(), RuntimeError> {
        self.enter().await?;
        let text = signal.unwrap_or("SIGKILL");
        let number = signal_number(text)
            .ok_or_else(|| RuntimeError::Rejected(format!("Invalid signal: {text}")))?;
        let mut engine = self.engine();
        let key = engine.resolve(self.number, name)?;
        if let Err(err) = Self::running(&engine, self.number, &key) {
            // Killing a container that is not running already holds for
            // SIGKILL; for any other signal the caller wanted it delivered.
            return if number == SIGKILL {
                Ok(())
            } else {
                Err(RuntimeError::Rejected(format!(
                    "Cannot kill container: {name}: {err}"
                )))
            };
        }
        self.emit(&key, "kill");
        if terminates(number) {
            self.exit(&mut engine, &key, 128 + i64::from(number), Exit::Killed);
        }
        Ok(())
    }

    async fn remove(&self, name: &str) -> Result<(), RuntimeError> {
        self.enter().await?;
        let mut engine = self.engine();
        let key = match engine.resolve(self.number, name) {
            Ok(key) => key,
            Err(RuntimeError::NotFound(_)) => return Ok(()),
            Err(err) => return Err(err),
        };
        if Self::running(&engine, self.number, &key).is_ok() {
            self.emit(&key, "kill");
            // Forced: the process is killed, and a removal follows anyway.
            self.exit(&mut engine, &key, 137, Exit::Killed);
        }
        if engine.containers.contains_key(&key) {
            engine.forget(&key);
            self.emit(&key, "destroy");
        }
        Ok(())
    }

    async fn update(
        &self,
        name: &str,
        cpu: Option<f64>,
        memory_mib: Option<i64>,
    ) -> Result<(), RuntimeError> {
        self.enter().await?;
        let mut engine = self.engine();
        let key = engine.resolve(self.number, name)?;
        if cpu.is_none() && memory_mib.is_none() {
            return Ok(());
        }
        if let Some(cpu) = cpu {
            cpu_limits(cpu)?;
        }
        let memory_bytes = memory_mib.map(mib_to_bytes).transpose()?;
        if memory_bytes.is_some_and(|m| m < MIN_MEMORY_BYTES) {
            return Err(RuntimeError::Rejected(
                "Minimum memory limit allowed is 6MB".to_owned(),
            ));
        }
        if let Some(entry) = engine.containers.get_mut(&key) {
            entry.cpu = cpu.or(entry.cpu);
            entry.memory_bytes = memory_bytes.or(entry.memory_bytes);
            self.emit(&key, "update");
        }
        Ok(())
    }

    async fn inspect(&self, name: &str) -> Result<Option<Observed>, RuntimeError> {
        self.enter().await?;
        let engine = self.engine();
        let Ok(key) = engine.resolve(self.number, name) else {
            return Ok(None);
        };
        Ok(engine
            .containers
            .get(&key)
            .map(|entry| self.observe(&key, entry, Utc::now())))
    }

    /// Newest first, as Docker lists; unlike Docker's list summary, each
    /// entry is as complete as `inspect`'s.
    async fn list(&self) -> Result<Vec<Observed>, RuntimeError> {
        self.enter().await?;
        let now = Utc::now();
        let engine = self.engine();
        let mut managed: Vec<(&Arc<str>, &Entry)> = engine
            .containers
            .iter()
            .filter(|(name, _)| uuid_of_name(name).is_some())
            .collect();
        managed.sort_unstable_by_key(|(_, e)| std::cmp::Reverse(e.sequence));
        Ok(managed
            .into_iter()
            .map(|(name, entry)| self.observe(name, entry, now))
            .collect())
    }

    /// One canned line on stdout once the container has started.
    async fn logs(&self, name: &str, options: &LogOptions) -> Result<String, RuntimeError> {
        self.enter().await?;
        let engine = self.engine();
        let key = engine.resolve(self.number, name)?;
        let started = engine.containers.get(&key).and_then(|e| e.started_at);
        let Some(started) = started else {
            return Ok(String::new());
        };
        let stdout = options.stdout || !options.stderr;
        let in_window = options.since.is_none_or(|s| started.timestamp() >= s);
        if !stdout || !in_window || options.tail == Some(0) {
            return Ok(String::new());
        }
        Ok(if options.timestamps {
            format!(
                "{} {LOG_LINE}",
                started.to_rfc3339_opts(SecondsFormat::Nanos, true)
            )
        } else {
            LOG_LINE.to_owned()
        })
    }

    fn events(&self) -> BoxStream<'static, Result<RuntimeEvent, RuntimeError>> {
        self.signals(self.events.subscribe())
            .filter_map(|item| {
                ready(match item {
                    Ok((name, action)) => uuid_of_name(&name).map(|uuid| {
                        Ok(RuntimeEvent {
                            uuid: uuid.to_owned(),
                            action: action.to_owned(),
                        })
                    }),
                    Err(err) => Some(Err(err)),
                })
            })
            .boxed()
    }
}

/// Exec runs no process: its output is the command line, echoed, and it
/// exits 0. Attach carries no bytes and ends when the container's main
/// process does. There is no filesystem: archives put are checked to be tar
/// and dropped, and no path can be read. `top` shows one process whatever
/// `ps_args` say; `stats` reports no use, with the recorded memory limit (0
/// when unlimited). Exec instances make no events.
#[async_trait]
impl ContainerIo for FakeRuntime {
    async fn exec_create(
        &self,
        name: &str,
        command: &[String],
        _interactive: bool,
    ) -> Result<String, RuntimeError> {
        self.enter().await?;
        if command.is_empty() {
            return Err(RuntimeError::Rejected(
                "No exec command specified".to_owned(),
            ));
        }
        let mut engine = self.engine();
        let key = Self::running(&engine, self.number, name)?;
        if engine.containers.get(&key).map(|e| e.state) == Some(EngineState::Paused) {
            return Err(RuntimeError::Rejected(format!(
                "Container {} is paused, unpause the container before exec",
                container_id(self.number, &engine, &key)
            )));
        }
        let id = hex_id(self.number, engine.next_sequence());
        let exec = Exec {
            container: key,
            output: Bytes::from(format!("{}\n", command.join(" "))),
            started: false,
        };
        engine.execs.insert(id.clone(), exec);
        Ok(id)
    }

    async fn exec_start(&self, exec_id: &str, _interactive: bool) -> Result<Session, RuntimeError> {
        self.enter().await?;
        let mut engine = self.engine();
        let container = match engine.execs.get(exec_id) {
            Some(exec) if exec.started => {
                return Err(RuntimeError::Rejected(format!(
                    "Error: Exec command {exec_id} has already run"
                )));
            }
            Some(exec) => Arc::clone(&exec.container),
            None => return Err(no_such_exec(exec_id)),
        };
        Self::running(&engine, self.number, &container)?;
        let exec = engine
            .execs
            .get_mut(exec_id)
            .ok_or_else(|| no_such_exec(exec_id))?;
        exec.started = true;
        Ok(Session {
            output: stream::iter([Ok(exec.output.clone())]).boxed(),
            input: Box::pin(tokio::io::sink()),
        })
    }

    async fn exec_exit_code(&self, exec_id: &str) -> Result<Option<i64>, RuntimeError> {
        self.enter().await?;
        match self.engine().execs.get(exec_id) {
            Some(exec) => Ok(exec.started.then_some(0)),
            None => Err(no_such_exec(exec_id)),
        }
    }

    async fn exec_resize(&self, exec_id: &str, _: u16, _: u16) -> Result<(), RuntimeError> {
        self.enter().await?;
        if self.engine().execs.contains_key(exec_id) {
            Ok(())
        } else {
            Err(no_such_exec(exec_id))
        }
    }

    async fn attach(&self, name: &str) -> Result<Session, RuntimeError> {
        self.enter().await?;
        let engine = self.engine();
        let key = engine.resolve(self.number, name)?;
        let input = Box::pin(tokio::io::sink());
        if Self::running(&engine, self.number, &key).is_err() {
            return Ok(Session {
                output: stream::empty().boxed(),
                input,
            });
        }
        // Subscribed under the lock: the process cannot end unseen.
        let receiver = self.events.subscribe();
        drop(engine);
        let output = self
            .signals(receiver)
            .take_while(move |item| ready(!matches!(item, Ok((n, "die" | "destroy")) if *n == key)))
            .filter_map(|item| ready(item.err().map(Err::<Bytes, _>)))
            .boxed();
        Ok(Session { output, input })
    }

    async fn resize_tty(&self, name: &str, _: u16, _: u16) -> Result<(), RuntimeError> {
        self.enter().await?;
        Self::running(&self.engine(), self.number, name).map(drop)
    }

    async fn top(&self, name: &str, _ps_args: Option<&str>) -> Result<Processes, RuntimeError> {
        self.enter().await?;
        let engine = self.engine();
        let key = Self::running(&engine, self.number, name)?;
        let started = engine
            .containers
            .get(&key)
            .and_then(|e| e.started_at)
            .map_or_else(String::new, |t| t.format("%H:%M").to_string());
        let titles = ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"];
        let process = [
            "root",
            "1",
            "0",
            "0",
            started.as_str(),
            "?",
            "00:00:00",
            "/init",
        ];
        Ok(Processes {
            titles: titles.map(str::to_owned).to_vec(),
            processes: vec![process.map(str::to_owned).to_vec()],
        })
    }

    async fn stats(&self, name: &str) -> Result<Usage, RuntimeError> {
        self.enter().await?;
        let engine = self.engine();
        let key = engine.resolve(self.number, name)?;
        let limit = engine
            .containers
            .get(&key)
            .and_then(|e| e.memory_bytes)
            .map_or(0, |m| u64::try_from(m).unwrap_or(0));
        Ok(Usage {
            memory_limit_bytes: limit,
            ..Usage::default()
        })
    }

    async fn get_archive(&self, name: &str, path: &str, _: usize) -> Result<Archive, RuntimeError> {
        self.enter().await?;
        self.engine().resolve(self.number, name)?;
        Err(RuntimeError::NotFound(format!(
            "Could not find the file {path} in container {name}"
        )))
    }

    async fn put_archive(&self, name: &str, _path: &str, tar: Bytes) -> Result<(), RuntimeError> {
        self.enter().await?;
        self.engine().resolve(self.number, name)?;
        let mut archive = tar::Archive::new(tar.as_ref());
        let entries = archive
            .entries()
            .map_err(|e| RuntimeError::Invalid(format!("Error processing tar file({e})")))?;
        for entry in entries {
            entry.map_err(|e| RuntimeError::Invalid(format!("Error processing tar file({e})")))?;
        }
        Ok(())
    }

    async fn commit(
        &self,
        name: &str,
        repository: &str,
        tag: &str,
    ) -> Result<String, RuntimeError> {
        self.enter().await?;
        let reference = if tag.is_empty() {
            repository.to_owned()
        } else {
            format!("{repository}:{tag}")
        };
        let mut engine = self.engine();
        let key = engine.resolve(self.number, name)?;
        let image = normalise(&reference)
            .ok_or_else(|| RuntimeError::Invalid("invalid reference format".to_owned()))?;
        let id = image_id(&image);
        engine.images.insert(image.into());
        // The engine pauses a running container while it copies.
        let running = engine.containers.get(&key).map(|e| e.state) == Some(EngineState::Running);
        if running {
            self.emit(&key, "pause");
        }
        self.emit(&key, "commit");
        if running {
            self.emit(&key, "unpause");
        }
        Ok(id)
    }
}

fn unavailable() -> RuntimeError {
    RuntimeError::Unavailable("the simulated engine is unavailable".to_owned())
}

fn no_such_exec(exec_id: &str) -> RuntimeError {
    RuntimeError::NotFound(format!("No such exec instance: {exec_id}"))
}

fn container_id(number: u64, engine: &Engine, key: &str) -> String {
    engine
        .containers
        .get(key)
        .map_or_else(|| key.to_owned(), |e| hex_id(number, e.sequence))
}

fn not_running(number: u64, engine: &Engine, key: &str) -> RuntimeError {
    RuntimeError::Rejected(format!(
        "Container {} is not running",
        container_id(number, engine, key)
    ))
}

/// `repo:tag` (or `repo@digest`) as the engine keys an image.
fn normalise(reference: &str) -> Option<String> {
    ImageRef::parse(reference.trim())
        .ok()
        .map(|r| r.pull_reference())
}

/// A well-mixed 64-bit value of `x` (SplitMix64), so ids look like ids.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A 64-hex-digit id, unique per (`a`, `b`) (they are its last half) and
/// varied in its first twelve digits, Docker's short id.
fn hex_id(a: u64, b: u64) -> String {
    format!("{:016x}{:016x}{a:016x}{b:016x}", mix(a ^ mix(b)), mix(b))
}

/// The id of an image, derived from its reference so it is stable.
fn image_id(reference: &str) -> String {
    let hash = |seed: u64| {
        let mut hasher = std::hash::DefaultHasher::new();
        seed.hash(&mut hasher);
        reference.hash(&mut hasher);
        hasher.finish()
    };
    format!("sha256:{}", hex_id(hash(1), hash(2)))
}

fn pull_error(failure: PullFailure, parsed: &ImageRef, reference: &str) -> PullError {
    let domain = parsed.domain.as_deref().unwrap_or("registry-1.docker.io");
    match failure {
        PullFailure::Unreachable => PullError::Unreachable(format!(
            "Get \"https://{domain}/v2/\": dial tcp: lookup {domain}: no such host"
        )),
        PullFailure::Denied => PullError::Denied(format!(
            "pull access denied for {}, repository does not exist or may require 'docker login': denied: requested access to the resource is denied",
            parsed.repository()
        )),
        PullFailure::NotFound => PullError::NotFound(format!(
            "manifest for {reference} not found: manifest unknown: manifest unknown"
        )),
    }
}

const SIGKILL: u8 = 9;

/// Linux signal names (with or without `SIG`) and numbers, as the engine
/// accepts them.
fn signal_number(text: &str) -> Option<u8> {
    let text = text.trim().to_ascii_uppercase();
    if let Ok(n) = text.parse::<u8>() {
        return (1..=64).contains(&n).then_some(n);
    }
    let name = text.strip_prefix("SIG").unwrap_or(&text);
    let names = [
        "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "BUS", "FPE", "KILL", "USR1", "SEGV", "USR2",
        "PIPE", "ALRM", "TERM", "STKFLT", "CHLD", "CONT", "STOP", "TSTP", "TTIN", "TTOU", "URG",
        "XCPU", "XFSZ", "VTALRM", "PROF", "WINCH", "IO", "PWR", "SYS",
    ];
    match name {
        "IOT" => Some(6),
        "POLL" => Some(29),
        _ => names
            .iter()
            .position(|n| *n == name)
            .and_then(|i| u8::try_from(i + 1).ok()),
    }
}

/// Whether a signal's default action ends the simulated process (all but
/// CHLD, CONT, STOP, TSTP, TTIN, TTOU, URG and WINCH).
fn terminates(signal: u8) -> bool {
    !matches!(signal, 17..=23 | 28)
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::Arc;

    use serde_json::json;
    use zun_store::{NewAction, SqliteStore, Store};
    use zun_types::{ContainerStatus, TaskState};

    use crate::reconciler::tests::{record, submit_create};
    use crate::{Agent, AgentConfig};

    const IMAGE: &str = "busybox:latest";

    fn engine_with_image() -> FakeRuntime {
        let engine = FakeRuntime::new();
        engine.add_image(IMAGE).expect("image");
        engine
    }

    async fn created(engine: &FakeRuntime) -> (Container, String) {
        let c = record("web");
        engine
            .create(&c, IMAGE, Sandbox::default(), &[])
            .await
            .expect("create");
        let name = c.engine_name();
        (c, name)
    }

    async fn state(engine: &FakeRuntime, name: &str) -> Option<EngineState> {
        engine
            .inspect(name)
            .await
            .expect("inspect")
            .map(|o| o.state)
    }

    fn rejected<T: std::fmt::Debug>(result: Result<T, RuntimeError>, text: &str) {
        match result {
            Err(RuntimeError::Rejected(why)) => assert!(why.contains(text), "{why}"),
            other => panic!("expected a refusal containing {text:?}, got {other:?}"),
        }
    }

    /// The stream's next item, or a failure if none comes in time.
    async fn next<T>(stream: &mut BoxStream<'static, T>) -> Option<T> {
        tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .expect("the stream answers in time")
    }

    /// The next `n` events, or a failure if they do not come.
    async fn next_events(
        stream: &mut BoxStream<'static, Result<RuntimeEvent, RuntimeError>>,
        n: usize,
    ) -> Vec<String> {
        let mut actions = Vec::new();
        for _ in 0..n {
            let event = next(stream)
                .await
                .expect("the stream goes on")
                .expect("an event, not an error");
            actions.push(event.action);
        }
        actions
    }

    #[tokio::test]
    async fn state_rules_are_dockers() {
        let engine = engine_with_image();
        let (_, name) = created(&engine).await;
        assert_eq!(state(&engine, &name).await, Some(EngineState::Created));
        rejected(engine.pause(&name).await, "is not running");
        engine
            .unpause(&name)
            .await
            .expect("unpause of a created one");
        engine
            .stop(&name, None)
            .await
            .expect("stop of a created one");

        engine.start(&name).await.expect("start");
        engine.start(&name).await.expect("start of a running one");
        engine.pause(&name).await.expect("pause");
        engine.pause(&name).await.expect("pause of a paused one");
        assert_eq!(state(&engine, &name).await, Some(EngineState::Paused));
        rejected(engine.start(&name).await, "try unpause instead");
        engine.unpause(&name).await.expect("unpause");
        engine
            .unpause(&name)
            .await
            .expect("unpause of a running one");
        assert_eq!(state(&engine, &name).await, Some(EngineState::Running));

        engine.kill(&name, Some("SIGWINCH")).await.expect("winch");
        assert_eq!(state(&engine, &name).await, Some(EngineState::Running));
        rejected(engine.kill(&name, Some("SIGNOPE")).await, "Invalid signal");
        engine.kill(&name, Some("15")).await.expect("term");
        let observed = engine
            .inspect(&name)
            .await
            .expect("inspect")
            .expect("there");
        assert_eq!(observed.state, EngineState::Exited);
        assert_eq!(observed.exit_code, Some(143));
        assert_eq!(observed.status_detail, "Exited(143) 0 seconds ago ");
        rejected(engine.kill(&name, Some("SIGTERM")).await, "is not running");
        engine
            .kill(&name, None)
            .await
            .expect("SIGKILL of a stopped one");
        rejected(engine.pause(&name).await, "is not running");
        engine
            .stop(&name, Some(1))
            .await
            .expect("stop of a stopped one");

        engine
            .restart(&name, None)
            .await
            .expect("restart of a stopped one");
        let observed = engine
            .inspect(&name)
            .await
            .expect("inspect")
            .expect("there");
        assert_eq!(observed.state, EngineState::Running);
        assert_eq!(observed.status_detail, "Up 0 seconds");
        assert_eq!(observed.exit_code, None);
        engine.pause(&name).await.expect("pause");
        engine
            .stop(&name, None)
            .await
            .expect("stop of a paused one");
        let observed = engine
            .inspect(&name)
            .await
            .expect("inspect")
            .expect("there");
        assert_eq!(observed.state, EngineState::Exited);
        assert_eq!(observed.exit_code, Some(0));
    }

    #[tokio::test]
    async fn calls_are_idempotent_where_dockers_are() {
        let engine = engine_with_image();
        let (c, name) = created(&engine).await;
        let again = engine
            .create(&c, IMAGE, Sandbox::default(), &[])
            .await
            .expect("create again");
        let observed = engine
            .inspect(&name)
            .await
            .expect("inspect")
            .expect("there");
        assert_eq!(again, observed.engine_id);
        assert_eq!(observed.engine_id.len(), 64);
        assert_eq!(observed.uuid, c.uuid);
        assert_eq!(engine.list().await.expect("list").len(), 1);
        // By id and by short id, as Docker accepts.
        engine.start(&again).await.expect("start by id");
        engine
            .stop(&again[..12], None)
            .await
            .expect("stop by short id");

        engine.remove(&name).await.expect("remove");
        engine.remove(&name).await.expect("remove of a removed one");
        assert_eq!(engine.inspect(&name).await.expect("inspect"), None);
        assert!(engine.list().await.expect("list").is_empty());
        for result in [
            engine.start(&name).await,
            engine.stop(&name, None).await,
            engine.pause(&name).await,
            engine.update(&name, Some(1.0), None).await,
        ] {
            assert!(
                matches!(result, Err(RuntimeError::NotFound(_))),
                "{result:?}"
            );
        }
        let other = record("other");
        assert!(matches!(
            engine
                .create(&other, "nosuch:1", Sandbox::default(), &[])
                .await,
            Err(RuntimeError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn limits_ports_and_updates_are_recorded() {
        let engine = engine_with_image();
        let c = Container {
            exposed_ports: Some(json!({"80/tcp": {}, "53/udp": {}})),
            ..record("limited")
        };
        let name = c.engine_name();
        engine
            .create(&c, "busybox", Sandbox::default(), &[])
            .await
            .expect("create");
        assert_eq!(engine.limits(&name), Some((Some(1.0), Some(512))));
        let observed = engine
            .inspect(&name)
            .await
            .expect("inspect")
            .expect("there");
        assert_eq!(observed.ports, vec![53, 80]);
        engine.update(&name, None, Some(256)).await.expect("update");
        assert_eq!(engine.limits(&name), Some((Some(1.0), Some(256))));
        rejected(engine.update(&name, Some(0.0), None).await, "Invalid cpu");
        rejected(engine.update(&name, None, Some(1)).await, "Minimum memory");
        assert_eq!(engine.limits(&name), Some((Some(1.0), Some(256))));
        let usage = engine.stats(&name).await.expect("stats");
        assert_eq!(usage.memory_limit_bytes, 256 * 1024 * 1024);
        let tiny = Container {
            memory: Some("2".into()),
            ..record("tiny")
        };
        rejected(
            engine.create(&tiny, IMAGE, Sandbox::default(), &[]).await,
            "Minimum memory",
        );
    }

    #[tokio::test]
    async fn images_are_pulled_used_and_removed() {
        let engine = FakeRuntime::new();
        assert_eq!(engine.image(IMAGE).await.expect("image"), None);
        let seen = Mutex::new(Vec::new());
        let progress = |p: String| seen.lock().expect("lock").push(p);
        assert!(matches!(
            engine.pull("Not A Reference", None, &progress).await,
            Err(PullError::Failed(_))
        ));
        engine.fail_pulls(Some(PullFailure::Denied));
        assert!(matches!(
            engine.pull("busybox", None, &progress).await,
            Err(PullError::Denied(_))
        ));
        engine.fail_pulls(None);
        engine.pull("busybox", None, &progress).await.expect("pull");
        assert_eq!(
            seen.lock().expect("lock").last().map(String::as_str),
            Some("1 of 1 layers done")
        );
        let info = engine
            .image("busybox")
            .await
            .expect("image")
            .expect("there");
        assert_eq!(info.repo_tags, vec![IMAGE.to_owned()]);
        assert_eq!(
            engine.image(&info.id).await.expect("by id").map(|i| i.id),
            Some(info.id.clone())
        );

        let (_, name) = created(&engine).await;
        rejected(
            engine.remove_image(IMAGE).await,
            "is using its referenced image",
        );
        engine.remove(&name).await.expect("remove");
        engine.remove_image(&info.id).await.expect("remove image");
        engine
            .remove_image(IMAGE)
            .await
            .expect("remove of a removed image");
        assert_eq!(engine.image(IMAGE).await.expect("image"), None);
    }

    #[tokio::test]
    async fn events_arrive_in_order() {
        let engine = engine_with_image();
        let mut events = engine.events();
        let (c, name) = created(&engine).await;
        engine.start(&name).await.expect("start");
        engine.pause(&name).await.expect("pause");
        engine.pause(&name).await.expect("pause again, no event");
        engine.unpause(&name).await.expect("unpause");
        engine.update(&name, Some(2.0), None).await.expect("update");
        engine.restart(&name, None).await.expect("restart");
        engine.stop(&name, None).await.expect("stop");
        engine
            .stop(&name, None)
            .await
            .expect("stop again, no event");
        engine.start(&name).await.expect("start");
        engine.kill(&name, None).await.expect("kill");
        engine.remove(&name).await.expect("remove");
        let expected = [
            "create", "start", "pause", "unpause", "update", "kill", "die", "stop", "start",
            "restart", "kill", "die", "stop", "start", "kill", "die", "destroy",
        ];
        assert_eq!(next_events(&mut events, expected.len()).await, expected);

        // An auto_remove container goes when it exits; every event names it.
        let auto = Container {
            auto_remove: true,
            ..record("auto")
        };
        engine
            .create(&auto, IMAGE, Sandbox::default(), &[])
            .await
            .expect("create");
        engine.start(&auto.engine_name()).await.expect("start");
        engine.stop(&auto.engine_name(), None).await.expect("stop");
        assert_eq!(
            engine.inspect(&auto.engine_name()).await.expect("inspect"),
            None
        );
        let mut uuids = HashSet::new();
        let mut actions = Vec::new();
        for _ in 0..6 {
            let event = next(&mut events).await.expect("more").expect("event");
            uuids.insert(event.uuid);
            actions.push(event.action);
        }
        assert_eq!(
            actions,
            ["create", "start", "kill", "die", "stop", "destroy"]
        );
        assert_eq!(uuids, HashSet::from([auto.uuid.clone()]));
        assert_ne!(auto.uuid, c.uuid);
    }

    #[tokio::test]
    async fn a_lagging_subscriber_never_blocks_the_engine() {
        let engine = FakeRuntime::with_event_capacity(4);
        engine.add_image(IMAGE).expect("image");
        let mut slow = engine.events();
        let (_, name) = created(&engine).await;
        for _ in 0..20 {
            // Each would block if a full buffer held writers back.
            tokio::time::timeout(Duration::from_secs(1), engine.restart(&name, None))
                .await
                .expect("not blocked")
                .expect("restart");
        }
        match next(&mut slow).await {
            Some(Err(RuntimeError::Unavailable(why))) => assert!(why.contains("behind"), "{why}"),
            other => panic!("expected a lag error, got {other:?}"),
        }
        assert!(
            next(&mut slow).await.is_none(),
            "the stream ends after a lag"
        );
        // A fresh subscriber sees what happens next.
        let mut fresh = engine.events();
        engine.stop(&name, None).await.expect("stop");
        assert_eq!(next_events(&mut fresh, 3).await, ["kill", "die", "stop"]);
    }

    #[tokio::test]
    async fn an_unavailable_engine_refuses_everything_and_ends_its_events() {
        let engine = engine_with_image();
        let (c, name) = created(&engine).await;
        engine.start(&name).await.expect("start");
        let mut events = engine.events();
        engine.set_available(false);
        assert!(!engine.is_available());
        assert!(matches!(
            next(&mut events).await,
            Some(Err(RuntimeError::Unavailable(_)))
        ));
        assert!(next(&mut events).await.is_none(), "the stream ends");
        let mut later = engine.events();
        assert!(matches!(
            next(&mut later).await,
            Some(Err(RuntimeError::Unavailable(_)))
        ));
        assert!(next(&mut later).await.is_none());

        let unavailable = |r: Result<(), RuntimeError>| {
            assert!(matches!(r, Err(RuntimeError::Unavailable(_))), "{r:?}");
        };
        unavailable(
            engine
                .create(&c, IMAGE, Sandbox::default(), &[])
                .await
                .map(drop),
        );
        unavailable(engine.start(&name).await);
        unavailable(engine.stop(&name, None).await);
        unavailable(engine.remove(&name).await);
        unavailable(engine.inspect(&name).await.map(drop));
        unavailable(engine.list().await.map(drop));
        unavailable(engine.image(IMAGE).await.map(drop));
        unavailable(engine.logs(&name, &LogOptions::default()).await.map(drop));
        unavailable(
            engine
                .exec_create(&name, &["true".into()], false)
                .await
                .map(drop),
        );
        assert!(matches!(
            engine.pull(IMAGE, None, &|_| {}).await,
            Err(PullError::Engine(RuntimeError::Unavailable(_)))
        ));

        engine.set_available(true);
        assert_eq!(state(&engine, &name).await, Some(EngineState::Running));
        let mut events = engine.events();
        engine.stop(&name, None).await.expect("stop");
        assert_eq!(next_events(&mut events, 3).await, ["kill", "die", "stop"]);
    }

    #[tokio::test]
    async fn latency_delays_every_call() {
        let engine = engine_with_image();
        engine.set_latency(Duration::from_millis(150));
        let began = std::time::Instant::now();
        engine.list().await.expect("list");
        assert!(began.elapsed() >= Duration::from_millis(150));
        engine.set_latency(Duration::ZERO);
        let began = std::time::Instant::now();
        engine.list().await.expect("list");
        assert!(began.elapsed() < Duration::from_millis(150));
    }

    #[tokio::test]
    async fn logs_and_container_io() {
        let engine = engine_with_image();
        let (_, name) = created(&engine).await;
        let all = LogOptions::default();
        assert_eq!(engine.logs(&name, &all).await.expect("logs"), "");
        rejected(
            engine.exec_create(&name, &["ls".into()], false).await,
            "is not running",
        );
        engine.start(&name).await.expect("start");
        assert_eq!(engine.logs(&name, &all).await.expect("logs"), LOG_LINE);
        let stderr_only = LogOptions {
            stderr: true,
            ..LogOptions::default()
        };
        assert_eq!(engine.logs(&name, &stderr_only).await.expect("logs"), "");

        let command = ["echo".to_owned(), "hi".to_owned()];
        let exec = engine
            .exec_create(&name, &command, false)
            .await
            .expect("exec");
        assert_eq!(engine.exec_exit_code(&exec).await.expect("code"), None);
        let session = engine.exec_start(&exec, false).await.expect("start");
        let output: Vec<Bytes> = session.output.map(|b| b.expect("bytes")).collect().await;
        assert_eq!(output, [Bytes::from("echo hi\n")]);
        assert_eq!(engine.exec_exit_code(&exec).await.expect("code"), Some(0));
        rejected(
            engine.exec_start(&exec, false).await.map(drop),
            "already run",
        );

        let top = engine.top(&name, None).await.expect("top");
        assert_eq!(top.processes.len(), 1);
        assert_eq!(top.titles.len(), top.processes[0].len());
        assert!(matches!(
            engine.get_archive(&name, "/etc", 1024).await,
            Err(RuntimeError::NotFound(_))
        ));
        assert!(matches!(
            engine
                .put_archive(&name, "/tmp", Bytes::from(vec![1_u8; 700]))
                .await,
            Err(RuntimeError::Invalid(_))
        ));
        let mut tar = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(2);
        header.set_cksum();
        tar.append_data(&mut header, "a.txt", &b"hi"[..])
            .expect("append");
        let tar = tar.into_inner().expect("tar");
        engine
            .put_archive(&name, "/tmp", Bytes::from(tar))
            .await
            .expect("put");

        let image = engine.commit(&name, "snap", "v1").await.expect("commit");
        let info = engine
            .image("snap:v1")
            .await
            .expect("image")
            .expect("there");
        assert_eq!(info.id, image);
        assert!(matches!(
            engine.commit(&name, "Bad Name", "v1").await,
            Err(RuntimeError::Invalid(_))
        ));

        let attached = engine.attach(&name).await.expect("attach");
        let ended = tokio::spawn(attached.output.count());
        engine.stop(&name, None).await.expect("stop");
        let frames = tokio::time::timeout(Duration::from_secs(5), ended)
            .await
            .expect("attach ends when the process does")
            .expect("join");
        assert_eq!(frames, 0);
        assert!(matches!(engine.exec_exit_code(&exec).await, Ok(Some(0))));
        engine.remove(&name).await.expect("remove");
        assert!(matches!(
            engine.exec_exit_code(&exec).await,
            Err(RuntimeError::NotFound(_))
        ));
    }

    /// An agent over the fake, wired as zund wires one: a container goes
    /// through create, a kill behind the agent's back, start, stop, delete.
    #[tokio::test]
    async fn an_agent_drives_the_fake_end_to_end() {
        let store = Arc::new(SqliteStore::open_in_memory().await.expect("store"));
        let engine = Arc::new(FakeRuntime::new());
        let c = record("e2e");
        let host = c.host.clone().expect("a host");
        let mut config = AgentConfig::new(host.clone());
        // Long enough that only the event stream can explain a change seen.
        config.resync_interval = Duration::from_secs(600);
        let agent = Agent::new(store.clone(), engine.clone(), None, None, config);
        let running = tokio::spawn(Arc::clone(&agent).run());

        submit_create(&store, &c).await;
        let record = wait_for(&store, &c.uuid, |c| c.status == ContainerStatus::Running).await;
        assert_eq!(
            record.container_id,
            engine
                .inspect(&c.engine_name())
                .await
                .expect("inspect")
                .map(|o| o.engine_id)
        );
        assert_eq!(
            engine.image(IMAGE).await.expect("image").map(|_| ()),
            Some(())
        );

        // Behind the agent's back: only the event tells it.
        engine.kill(&c.engine_name(), None).await.expect("kill");
        let record = wait_for(&store, &c.uuid, |c| c.status == ContainerStatus::Stopped).await;
        assert!(
            record
                .status_detail
                .is_some_and(|d| d.starts_with("Exited(137)"))
        );

        let action = |name: &str, params| NewAction {
            request_id: format!("req-{}", uuid::Uuid::new_v4()),
            action: name.into(),
            user_id: c.user_id.clone(),
            project_id: c.project_id.clone(),
            host: Some(host.clone()),
            params,
        };
        let start = |c: &mut Container| {
            c.task_state = Some(TaskState::ContainerStarting);
            Ok(())
        };
        store
            .update_container(&c.uuid, &start, Some(&action("start", json!({}))))
            .await
            .expect("start action");
        wait_for(&store, &c.uuid, |c| {
            c.status == ContainerStatus::Running && c.task_state.is_none()
        })
        .await;

        let stop = |c: &mut Container| {
            c.task_state = Some(TaskState::ContainerStopping);
            Ok(())
        };
        store
            .update_container(&c.uuid, &stop, Some(&action("stop", json!({"timeout": 1}))))
            .await
            .expect("stop action");
        wait_for(&store, &c.uuid, |c| {
            c.status == ContainerStatus::Stopped && c.task_state.is_none()
        })
        .await;
        assert_eq!(
            state(&engine, &c.engine_name()).await,
            Some(EngineState::Exited)
        );

        let delete = |c: &mut Container| {
            c.status = ContainerStatus::Deleting;
            Ok(())
        };
        let params = json!({"force": false, "stop": true});
        store
            .update_container(&c.uuid, &delete, Some(&action("delete", params)))
            .await
            .expect("delete action");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while store.get_container(&c.uuid).await.expect("read").is_some() {
            assert!(tokio::time::Instant::now() < deadline, "never deleted");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(engine.list().await.expect("list").is_empty());
        running.abort();
    }

    /// The agent's retries carry an action over an engine outage.
    #[tokio::test]
    async fn an_agent_waits_out_an_unavailable_engine() {
        let store = Arc::new(SqliteStore::open_in_memory().await.expect("store"));
        let engine = Arc::new(FakeRuntime::new());
        let c = record("outage");
        let config = AgentConfig::new(c.host.clone().expect("a host"));
        let agent = Agent::new(store.clone(), engine.clone(), None, None, config);
        let running = tokio::spawn(Arc::clone(&agent).run());

        engine.set_available(false);
        submit_create(&store, &c).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let record = store
            .get_container(&c.uuid)
            .await
            .expect("read")
            .expect("there");
        assert_eq!(record.status, ContainerStatus::Creating);
        engine.set_available(true);
        wait_for(&store, &c.uuid, |c| c.status == ContainerStatus::Running).await;
        running.abort();
    }

    async fn wait_for(
        store: &SqliteStore,
        uuid: &str,
        done: impl Fn(&Container) -> bool,
    ) -> Container {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let record = store
                .get_container(uuid)
                .await
                .expect("read")
                .expect("there");
            if done(&record) {
                return record;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "never got there: {:?} {:?} {:?}",
                record.status,
                record.task_state,
                record.status_reason
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The benchmark's shape: 1,000 engines of 10 containers each. The
    /// resident memory of the engines, then of the containers, is printed
    /// (`--nocapture`) and bounded; other tests run in the same process, so
    /// the bound is generous.
    #[tokio::test]
    async fn ten_thousand_containers_on_a_thousand_engines_stay_small() {
        let before = resident_bytes();
        let engines: Vec<FakeRuntime> = (0..1_000).map(|_| engine_with_image()).collect();
        // Subscribed, as each agent is, so the event buffers fill.
        let subscribers: Vec<_> = engines.iter().map(|e| e.events()).collect();
        let empty = resident_bytes();
        let template = record("bench");
        for engine in &engines {
            for _ in 0..10 {
                let c = Container {
                    uuid: uuid::Uuid::new_v4().to_string(),
                    ..template.clone()
                };
                engine
                    .create(&c, IMAGE, Sandbox::default(), &[])
                    .await
                    .expect("create");
                engine.start(&c.engine_name()).await.expect("start");
            }
        }
        let after = resident_bytes();
        assert_eq!(subscribers.len(), engines.len());
        for engine in &engines {
            assert_eq!(engine.list().await.expect("list").len(), 10);
        }
        if let (Some(before), Some(empty), Some(after)) = (before, empty, after) {
            let grown = after.saturating_sub(before);
            println!(
                "1,000 engines with 10,000 containers: {:.1} MiB resident; {} bytes an engine, {} bytes a container",
                grown as f64 / (1024.0 * 1024.0),
                empty.saturating_sub(before) / 1_000,
                after.saturating_sub(empty) / 10_000,
            );
            assert!(grown < 40 * 1024 * 1024, "grew by {grown} bytes");
        }
    }

    /// This process's resident set, where /proc tells it.
    fn resident_bytes() -> Option<u64> {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    }
}
