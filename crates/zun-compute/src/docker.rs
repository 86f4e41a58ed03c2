//! Docker Engine driver: the reference [`Runtime`], spoken over the engine's
//! local unix socket with `bollard`.
//!
//! The link between the store and the engine is the engine-side name
//! `zun-<uuid>` (as upstream). Every container this driver creates also
//! carries the labels `zun.uuid=<uuid>` and `zun.host=<host>`, so that several
//! agents sharing one engine (or a host renamed) do not adopt each other's
//! containers; containers without a `zun.host` label (made by upstream Zun)
//! are still recognised by name.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use bollard::auth::DockerCredentials;
use bollard::errors::Error as EngineError;
use bollard::models::CreateImageInfo;
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, ContainerState, ContainerStateStatusEnum,
    ContainerSummary, ContainerSummaryStateEnum, ContainerUpdateBody, EventMessage, HealthConfig,
    HostConfig, HostConfigLogConfig, Mount as EngineMount, MountTypeEnum, RestartPolicy,
    RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, EventsOptions, ImportImageOptions,
    InspectContainerOptions, KillContainerOptions, ListContainersOptions, LogsOptions,
    RemoveContainerOptions, RemoveImageOptions, RestartContainerOptions, StartContainerOptions,
    StopContainerOptions,
};
use bollard::{API_DEFAULT_VERSION, Docker};
use chrono::{DateTime, TimeDelta, Utc};
use futures_util::stream::{self, BoxStream, StreamExt};
use zun_types::Container;
use zun_types::image::ImageRef;

use crate::exec::TailBuffer;
use crate::runtime::{
    EngineState, Hardening, HostFacts, HostMount, ImageInfo, LogOptions, Observed, PullError,
    RegistryAuth, Runtime, RuntimeError, RuntimeEvent, Sandbox,
};

/// Prefix of every engine-side container name this service manages.
pub const NAME_PREFIX: &str = "zun-";
/// Label carrying the Zun uuid of the container.
pub const LABEL_UUID: &str = "zun.uuid";
/// Label carrying the name of the compute host that created the container.
pub const LABEL_HOST: &str = "zun.host";

/// Prefix of the OCI runtime wrappers that start a container in the network
/// driver's namespace: the engine must know `zun-runc`
/// (`dockerd --add-runtime zun-runc=/path/to/zun-runc`).
pub const NETNS_RUNTIME_PREFIX: &str = "zun-";
/// The OCI runtime a container gets when it names none.
pub const DEFAULT_OCI_RUNTIME: &str = "runc";

/// Most of a container's log one `logs` request returns (the end of it).
pub const MAX_LOG_BYTES: usize = 32 * 1024 * 1024;
/// Read/write timeout of one engine request (not of a stream's body).
const REQUEST_TIMEOUT_SECS: u64 = 120;
/// How many containers `list` inspects at once when it meets new ones.
const LIST_INSPECT_CONCURRENCY: usize = 16;

/// The Docker Engine behind one unix socket, seen by the agent of `host`.
pub struct DockerRuntime {
    docker: Docker,
    host: String,
    /// Exposed ports by engine id. They are fixed at create, but the list
    /// summary only shows them while a container runs, so `list` keeps what
    /// it learned from one inspect per container here.
    ports: Mutex<HashMap<String, Vec<u16>>>,
    hardening: Hardening,
}

impl std::fmt::Debug for DockerRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerRuntime")
            .field("host", &self.host)
            .field("api_version", &self.docker.client_version().to_string())
            .finish()
    }
}

impl DockerRuntime {
    /// Connects to the engine at `socket_path` (`/var/run/docker.sock` or
    /// `unix:///...`) and negotiates the API version down to what the engine
    /// speaks (Docker 20.10 is API 1.41; bollard defaults to a newer one).
    /// `host` is this agent's host name, written into the `zun.host` label.
    pub async fn connect(socket_path: &str, host: &str) -> Result<Self, RuntimeError> {
        let docker =
            Docker::connect_with_unix(socket_path, REQUEST_TIMEOUT_SECS, API_DEFAULT_VERSION)
                .map_err(|e| {
                    RuntimeError::Unavailable(format!("cannot connect to {socket_path}: {e}"))
                })?;
        let docker = docker.negotiate_version().await.map_err(|e| {
            RuntimeError::Unavailable(format!("cannot reach the engine at {socket_path}: {e}"))
        })?;
        Ok(Self {
            docker,
            host: host.to_owned(),
            ports: Mutex::new(HashMap::new()),
            hardening: Hardening::default(),
        })
    }

    /// Creates containers with `hardening` instead of the defaults.
    pub fn with_hardening(mut self, hardening: Hardening) -> Self {
        self.hardening = hardening;
        self
    }

    /// Loads the images of a `docker save` tarball into the engine (for
    /// hosts without a registry); returns the references it loaded. The
    /// file is streamed, never held whole in memory.
    pub async fn import_images(
        &self,
        tarball: tokio::fs::File,
    ) -> Result<Vec<String>, RuntimeError> {
        use tokio::io::AsyncReadExt;
        let chunks = stream::unfold(Some(tarball), |file| async move {
            let mut file = file?;
            let mut buffer = vec![0_u8; 256 * 1024];
            match file.read(&mut buffer).await {
                Ok(0) => None,
                Ok(n) => {
                    buffer.truncate(n);
                    Some((bytes::Bytes::from(buffer), Some(file)))
                }
                Err(err) => {
                    tracing::warn!(error = %err, "reading the image tarball failed");
                    None
                }
            }
        });
        let mut loaded = Vec::new();
        let mut answers = self.docker.import_image_stream(
            ImportImageOptions {
                quiet: true,
                ..Default::default()
            },
            chunks,
            None,
        );
        while let Some(answer) = answers.next().await {
            let answer = answer.map_err(map_err)?;
            if let Some(error) = answer.error_detail.and_then(|d| d.message) {
                return Err(RuntimeError::Rejected(error));
            }
            if let Some(line) = answer.stream {
                for reference in line
                    .lines()
                    .filter_map(|l| l.strip_prefix("Loaded image: "))
                {
                    loaded.push(reference.trim().to_owned());
                }
                for id in line
                    .lines()
                    .filter_map(|l| l.strip_prefix("Loaded image ID: "))
                {
                    loaded.push(id.trim().to_owned());
                }
            }
        }
        Ok(loaded)
    }

    /// The host name written into the `zun.host` label.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The underlying client, for engine facts outside the [`Runtime`]
    /// trait (the resource tracker's `info`, for instance).
    pub fn client(&self) -> &Docker {
        &self.docker
    }

    /// A client whose request timeout covers an operation that may itself
    /// wait `wait_secs` inside the engine (stop, restart).
    fn client_waiting(&self, wait_secs: Option<u64>) -> Docker {
        let extra = wait_secs.unwrap_or(10);
        self.docker.clone().with_timeout(Duration::from_secs(
            REQUEST_TIMEOUT_SECS.saturating_add(extra),
        ))
    }

    async fn inspect_raw(
        &self,
        name: &str,
    ) -> Result<Option<ContainerInspectResponse>, RuntimeError> {
        match self
            .docker
            .inspect_container(name, None::<InspectContainerOptions>)
            .await
        {
            Ok(info) => Ok(Some(info)),
            Err(e) if status_of(&e) == Some(404) => Ok(None),
            Err(e) => Err(map_err(e)),
        }
    }

    fn remember_ports(&self, id: &str, ports: &[u16]) {
        if let Ok(mut cache) = self.ports.lock() {
            cache.insert(id.to_owned(), ports.to_vec());
        }
    }

    /// Whether a container carrying `labels` belongs to this host: its
    /// `zun.host` label names this host, or it has none.
    fn is_ours(&self, labels: Option<&HashMap<String, String>>) -> bool {
        labels
            .and_then(|l| l.get(LABEL_HOST))
            .is_none_or(|h| *h == self.host)
    }
}

#[async_trait]
impl Runtime for DockerRuntime {
    async fn host_facts(&self) -> Result<HostFacts, RuntimeError> {
        let info = self.docker.info().await.map_err(map_err)?;
        let labels = info
            .labels
            .unwrap_or_default()
            .into_iter()
            .filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
            .collect();
        let mut runtimes: Vec<String> = info.runtimes.unwrap_or_default().into_keys().collect();
        runtimes.sort();
        let disk_total = info
            .docker_root_dir
            .as_deref()
            .and_then(|dir| rustix::fs::statvfs(dir).ok())
            .map_or(0, |fs| {
                let bytes = fs.f_blocks.saturating_mul(fs.f_frsize);
                i64::try_from(bytes >> 30).unwrap_or(i64::MAX)
            });
        Ok(HostFacts {
            cpus: info.ncpu.unwrap_or(0) as f64,
            mem_total: info.mem_total.unwrap_or(0) >> 20,
            disk_total,
            runtimes,
            labels,
            architecture: info.architecture,
            os_type: info.os_type,
            os: info.operating_system,
            kernel_version: info.kernel_version,
        })
    }

    async fn image(&self, reference: &str) -> Result<Option<ImageInfo>, RuntimeError> {
        match self.docker.inspect_image(reference).await {
            Ok(image) => Ok(Some(ImageInfo {
                id: image.id.unwrap_or_default(),
                size: image.size.unwrap_or(0),
                repo_tags: image.repo_tags.unwrap_or_default(),
            })),
            Err(e) if status_of(&e) == Some(404) => Ok(None),
            Err(e) => Err(map_err(e)),
        }
    }

    async fn pull(
        &self,
        reference: &str,
        auth: Option<&RegistryAuth>,
        progress: &(dyn Fn(String) + Send + Sync),
    ) -> Result<(), PullError> {
        let (from_image, tag) = match ImageRef::parse(reference) {
            Ok(parsed) if parsed.digest.is_none() => {
                (parsed.repository(), Some(parsed.tag_or_latest().to_owned()))
            }
            _ => (reference.to_owned(), None),
        };
        let options = CreateImageOptions {
            from_image: Some(from_image),
            tag,
            ..Default::default()
        };
        let credentials = auth.map(|a| DockerCredentials {
            username: Some(a.username.clone()),
            password: Some(a.password.clone()),
            serveraddress: Some(a.server.clone()),
            ..Default::default()
        });
        // The pull is only done (or failed, as an `error` line) when the
        // engine closes the progress stream.
        let mut layers = LayerProgress::default();
        let mut stream = self.docker.create_image(Some(options), None, credentials);
        while let Some(item) = stream.next().await {
            let info = item.map_err(pull_error)?;
            if let Some(summary) = layers.record(&info) {
                progress(summary);
            }
        }
        Ok(())
    }

    async fn remove_image(&self, reference: &str) -> Result<(), RuntimeError> {
        match self
            .docker
            .remove_image(reference, None::<RemoveImageOptions>, None)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if status_of(&e) == Some(404) => Ok(()),
            Err(e) => Err(map_err(e)),
        }
    }

    async fn create(
        &self,
        container: &Container,
        image: &str,
        sandbox: Sandbox<'_>,
        mounts: &[HostMount],
    ) -> Result<String, RuntimeError> {
        let name = container.engine_name();
        let body = create_body(
            container,
            image,
            &self.host,
            sandbox,
            mounts,
            &self.hardening,
        )?;
        let ports = exposed_port_numbers(body.exposed_ports.as_ref());
        // Creating first and resolving a name conflict by inspecting keeps the
        // common path to one request; the conflict means an earlier attempt
        // (maybe by a previous agent process) already created it.
        let options = CreateContainerOptions {
            name: Some(name.clone()),
            platform: String::new(),
        };
        let id = match self.docker.create_container(Some(options), body).await {
            Ok(response) => {
                for warning in response.warnings.iter().filter(|w| !w.is_empty()) {
                    tracing::warn!(container = %name, "engine: {warning}");
                }
                response.id
            }
            Err(e) if status_of(&e) == Some(409) => match self.inspect_raw(&name).await? {
                Some(info) => info.id.unwrap_or_default(),
                None => return Err(map_err(e)),
            },
            Err(e) => return Err(map_err(e)),
        };
        self.remember_ports(&id, &ports);
        link_sandbox(&id, sandbox)?;
        Ok(id)
    }

    async fn join_sandbox(&self, name: &str, sandbox: Sandbox<'_>) -> Result<(), RuntimeError> {
        match self.inspect_raw(name).await?.and_then(|info| info.id) {
            Some(id) => link_sandbox(&id, sandbox),
            None => Err(RuntimeError::NotFound(format!("No such container: {name}"))),
        }
    }

    async fn start(&self, name: &str) -> Result<(), RuntimeError> {
        // 304 (already running) is a success for bollard.
        self.docker
            .start_container(name, None::<StartContainerOptions>)
            .await
            .map_err(map_err)
    }

    async fn stop(&self, name: &str, timeout_secs: Option<u64>) -> Result<(), RuntimeError> {
        let options = StopContainerOptions {
            t: timeout_secs.map(clamp_i32),
            signal: None,
        };
        // 304 (already stopped) is a success for bollard.
        self.client_waiting(timeout_secs)
            .stop_container(name, Some(options))
            .await
            .map_err(map_err)
    }

    async fn restart(&self, name: &str, timeout_secs: Option<u64>) -> Result<(), RuntimeError> {
        let options = RestartContainerOptions {
            t: timeout_secs.map(clamp_i32),
            signal: None,
        };
        self.client_waiting(timeout_secs)
            .restart_container(name, Some(options))
            .await
            .map_err(map_err)
    }

    async fn pause(&self, name: &str) -> Result<(), RuntimeError> {
        match self.docker.pause_container(name).await {
            Err(e) if refused_with(&e, "is already paused") => Ok(()),
            other => other.map_err(map_err),
        }
    }

    async fn unpause(&self, name: &str) -> Result<(), RuntimeError> {
        // "not paused" means what was asked already holds.
        match self.docker.unpause_container(name).await {
            Err(e) if refused_with(&e, "is not paused") => Ok(()),
            other => other.map_err(map_err),
        }
    }

    async fn kill(&self, name: &str, signal: Option<&str>) -> Result<(), RuntimeError> {
        let signal = signal.unwrap_or("SIGKILL");
        let options = KillContainerOptions {
            signal: signal.to_owned(),
        };
        match self.docker.kill_container(name, Some(options)).await {
            // Killing a container that is not running already holds for
            // SIGKILL; for any other signal the caller wanted it delivered.
            Err(e) if refused_with(&e, "is not running") && is_sigkill(signal) => Ok(()),
            other => other.map_err(map_err),
        }
    }

    async fn remove(&self, name: &str) -> Result<(), RuntimeError> {
        let options = RemoveContainerOptions {
            force: true,
            v: true,
            link: false,
        };
        let engine_id = self.inspect_raw(name).await?.and_then(|info| info.id);
        // The port cache is pruned by the next `list`.
        match self.docker.remove_container(name, Some(options)).await {
            Err(e) if status_of(&e) == Some(404) => {}
            Err(e) if refused_with(&e, "already in progress") => {}
            other => other.map_err(map_err)?,
        }
        if let Some(id) = engine_id {
            unlink_namespaces(&id);
        }
        Ok(())
    }

    async fn update(
        &self,
        name: &str,
        cpu: Option<f64>,
        memory_mib: Option<i64>,
    ) -> Result<(), RuntimeError> {
        let mut body = ContainerUpdateBody::default();
        if let Some(cpu) = cpu {
            let (nano_cpus, shares) = cpu_limits(cpu)?;
            body.nano_cpus = Some(nano_cpus);
            body.cpu_shares = Some(shares);
        }
        if let Some(mib) = memory_mib {
            let bytes = mib_to_bytes(mib)?;
            body.memory = Some(bytes);
            // The engine refuses a memory limit above the current swap limit
            // unless both change together. Twice the memory is what the
            // engine itself sets at create, so a resized container behaves
            // like one created with the new size. (Upstream sets -1, unlimited
            // swap, which lets a container escape its memory limit.)
            body.memory_swap = Some(bytes.saturating_mul(2));
        }
        if body == ContainerUpdateBody::default() {
            return Ok(());
        }
        self.docker
            .update_container(name, body)
            .await
            .map_err(map_err)
    }

    async fn inspect(&self, name: &str) -> Result<Option<Observed>, RuntimeError> {
        let Some(info) = self.inspect_raw(name).await? else {
            return Ok(None);
        };
        let observed = observed_from_inspect(&info, Utc::now());
        self.remember_ports(&observed.engine_id, &observed.ports);
        Ok(Some(observed))
    }

    /// One list request; the summary gives the state and the engine's own
    /// status text, from which `status_detail` and `exit_code` are derived in
    /// the same format `inspect` uses. `error`, `started_at` and
    /// `finished_at` are not in the summary and are `None` here: `inspect`
    /// the container for them. Exposed ports are learned by one inspect per
    /// container the first time it is listed, then cached.
    async fn list(&self) -> Result<Vec<Observed>, RuntimeError> {
        prune_netns_links();
        let options = ListContainersOptions {
            all: true,
            filters: Some(HashMap::from([(
                "name".to_owned(),
                vec![NAME_PREFIX.to_owned()],
            )])),
            ..Default::default()
        };
        let summaries = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(map_err)?;
        let mut observed: Vec<Observed> = summaries
            .iter()
            .filter(|s| self.is_ours(s.labels.as_ref()))
            .filter_map(observed_from_summary)
            .collect();

        let unknown: Vec<String> = {
            let cache = self
                .ports
                .lock()
                .map_err(|_| RuntimeError::Unavailable("port cache poisoned".to_owned()))?;
            observed
                .iter()
                .filter(|o| !cache.contains_key(&o.engine_id))
                .map(|o| o.engine_id.clone())
                .collect()
        };
        let learned: Vec<(String, Option<Vec<u16>>)> = stream::iter(unknown)
            .map(|id| async move {
                let ports = match self
                    .docker
                    .inspect_container(&id, None::<InspectContainerOptions>)
                    .await
                {
                    Ok(info) => Some(exposed_port_numbers(
                        info.config.as_ref().and_then(|c| c.exposed_ports.as_ref()),
                    )),
                    // Gone since the list, or the engine hiccuped: fall back
                    // to what the summary showed, and retry next time.
                    Err(_) => None,
                };
                (id, ports)
            })
            .buffer_unordered(LIST_INSPECT_CONCURRENCY)
            .collect()
            .await;

        let live: HashSet<&str> = observed.iter().map(|o| o.engine_id.as_str()).collect();
        let mut cache = self
            .ports
            .lock()
            .map_err(|_| RuntimeError::Unavailable("port cache poisoned".to_owned()))?;
        for (id, ports) in learned {
            if let Some(ports) = ports {
                cache.insert(id, ports);
            }
        }
        cache.retain(|id, _| live.contains(id.as_str()));
        for o in &mut observed {
            if let Some(ports) = cache.get(&o.engine_id) {
                o.ports.clone_from(ports);
            }
        }
        Ok(observed)
    }

    async fn logs(&self, name: &str, options: &LogOptions) -> Result<String, RuntimeError> {
        // Neither stream chosen means the caller kept the defaults: both,
        // as upstream's API defaults are (the engine would refuse none).
        let (stdout, stderr) = if options.stdout || options.stderr {
            (options.stdout, options.stderr)
        } else {
            (true, true)
        };
        let query = LogsOptions {
            follow: false,
            stdout,
            stderr,
            since: options
                .since
                .map_or(0, |s| i32::try_from(s.max(0)).unwrap_or(i32::MAX)),
            until: 0,
            timestamps: options.timestamps,
            tail: options
                .tail
                .map_or_else(|| "all".to_owned(), |n| n.to_string()),
        };
        // The answer is one JSON string: only the end of a huge log is kept
        // (saying how much was left out), so memory stays bounded.
        let mut out = TailBuffer::new(MAX_LOG_BYTES);
        let mut frames = self.docker.logs(name, Some(query));
        while let Some(frame) = frames.next().await {
            let frame = frame.map_err(map_err)?;
            out.push(frame.as_ref());
        }
        Ok(out.into_text())
    }

    fn events(&self) -> BoxStream<'static, Result<RuntimeEvent, RuntimeError>> {
        // `since` = now, so events between this call and the moment the
        // stream is first polled (and the request really sent) are replayed
        // by the engine instead of lost.
        let now = Utc::now();
        let options = EventsOptions {
            since: Some(format!(
                "{}.{:09}",
                now.timestamp(),
                now.timestamp_subsec_nanos()
            )),
            until: None,
            filters: Some(HashMap::from([(
                "type".to_owned(),
                vec!["container".to_owned()],
            )])),
        };
        let host = self.host.clone();
        self.docker
            .events(Some(options))
            // End the stream after the first error: the caller re-subscribes.
            .scan(false, |failed, item| {
                let next = if *failed {
                    None
                } else {
                    *failed = item.is_err();
                    Some(item)
                };
                futures_util::future::ready(next)
            })
            .filter_map(move |item| {
                let event = match item {
                    Ok(message) => runtime_event(message, &host).map(Ok),
                    Err(e) => Some(Err(map_err(e))),
                };
                futures_util::future::ready(event)
            })
            .boxed()
    }
}

// ---- errors ---------------------------------------------------------------

/// The HTTP status of an engine error response, if it is one.
pub(crate) fn status_of(err: &EngineError) -> Option<u16> {
    match err {
        EngineError::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

/// An engine refusal whose message contains `needle`. The status is not
/// checked: Docker 20.10 answers some of these conflicts with a 500 (unpause
/// of a container that is not paused).
pub(crate) fn refused_with(err: &EngineError, needle: &str) -> bool {
    matches!(
        err,
        EngineError::DockerResponseServerError { status_code, message }
            if *status_code >= 400 && message.contains(needle)
    )
}

/// 404 → NotFound; any engine answer with a message → Rejected with it (it
/// is what the user sees as status_reason); no answer → Unavailable.
pub(crate) fn map_err(err: EngineError) -> RuntimeError {
    match err {
        EngineError::DockerResponseServerError {
            status_code: 404,
            message,
        } => RuntimeError::NotFound(message),
        EngineError::DockerResponseServerError {
            status_code,
            message,
        } => {
            let message = message.trim();
            if message.is_empty() {
                RuntimeError::Unavailable(format!("engine answered HTTP {status_code}"))
            } else {
                RuntimeError::Rejected(message.to_owned())
            }
        }
        EngineError::DockerStreamError { error } => RuntimeError::Rejected(error),
        other => RuntimeError::Unavailable(other.to_string()),
    }
}

/// A failed pull, told apart by the engine's message: Docker reports every
/// registry failure as a 500 (or an `error` line of the progress stream)
/// whose text is the only signal, as the docker CLI also shows it.
fn pull_error(err: EngineError) -> PullError {
    match err {
        EngineError::DockerResponseServerError {
            status_code,
            message,
        } if status_code != 404 || !message.trim().is_empty() => {
            classify_pull_failure(message.trim().to_owned())
        }
        EngineError::DockerStreamError { error } => classify_pull_failure(error),
        other => PullError::Engine(map_err(other)),
    }
}

fn classify_pull_failure(message: String) -> PullError {
    let text = message.to_ascii_lowercase();
    let any = |needles: &[&str]| needles.iter().any(|n| text.contains(n));
    if any(&[
        "unauthorized",
        "no basic auth credentials",
        "authentication required",
        "access denied",
        "denied:",
        "forbidden",
    ]) {
        PullError::Denied(message)
    } else if any(&["manifest unknown", "not found", "name unknown"]) {
        PullError::NotFound(message)
    } else if any(&[
        "dial tcp",
        "proxyconnect",
        "no such host",
        "connection refused",
        "network is unreachable",
        "i/o timeout",
        "tls handshake timeout",
        "context deadline exceeded",
        "server misbehaving",
        "connection reset",
    ]) {
        PullError::Unreachable(message)
    } else {
        PullError::Failed(message)
    }
}

/// Counts the layers of a pull from the engine's progress lines.
#[derive(Debug, Default)]
struct LayerProgress {
    layers: HashSet<String>,
    done: HashSet<String>,
}

impl LayerProgress {
    /// Records one progress line; returns a new summary when the counts
    /// changed.
    fn record(&mut self, info: &CreateImageInfo) -> Option<String> {
        let (Some(id), Some(status)) = (&info.id, &info.status) else {
            return None;
        };
        let before = (self.layers.len(), self.done.len());
        match status.as_str() {
            "Pulling fs layer" | "Waiting" => {
                self.layers.insert(id.clone());
            }
            "Pull complete" | "Already exists" => {
                self.layers.insert(id.clone());
                self.done.insert(id.clone());
            }
            _ => {}
        }
        let after = (self.layers.len(), self.done.len());
        (after != before).then(|| format!("{} of {} layers done", after.1, after.0))
    }
}

fn is_sigkill(signal: &str) -> bool {
    let s = signal.trim().to_ascii_uppercase();
    matches!(s.as_str(), "SIGKILL" | "KILL" | "9")
}

fn clamp_i32(v: u64) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

// ---- create mapping -------------------------------------------------------

/// Docker's `ExposedPorts`: `{"80/tcp": {}}`.
type PortSet = HashMap<String, HashMap<(), ()>>;

/// cpu (in CPUs) → (`NanoCpus`, `CpuShares`).
///
/// Upstream maps cpu only to the soft weight `CpuShares = 1024 * cpu`, so a
/// container asking for 1 CPU may use the whole host when it is idle and its
/// share only under contention. We set a HARD limit as well (`NanoCpus`), so
/// a tenant gets at most what was asked for, as users expect and as
/// Kubernetes limits behave, and keep the shares so that relative weighting
/// under contention matches upstream.
pub(crate) fn cpu_limits(cpu: f64) -> Result<(i64, i64), RuntimeError> {
    if !cpu.is_finite() || cpu <= 0.0 {
        return Err(RuntimeError::Rejected(format!(
            "Invalid cpu value {cpu}: must be a positive number"
        )));
    }
    // Float to int `as` saturates; both stay far below i64::MAX for any
    // cpu count the API accepts.
    let nano = (cpu * 1e9).round() as i64;
    // Upstream truncates (`int(1024 * cpu)`); the engine's floor is 2.
    let shares = ((1024.0 * cpu) as i64).max(2);
    Ok((nano, shares))
}

pub(crate) fn mib_to_bytes(mib: i64) -> Result<i64, RuntimeError> {
    if mib <= 0 {
        return Err(RuntimeError::Rejected(format!(
            "Invalid memory value {mib}: must be a positive number of MiB"
        )));
    }
    mib.checked_mul(1024 * 1024)
        .ok_or_else(|| RuntimeError::Rejected(format!("Invalid memory value {mib}: too large")))
}

fn restart_policy(
    policy: &zun_types::container::RestartPolicy,
) -> Result<RestartPolicy, RuntimeError> {
    let name = match policy.name.trim() {
        "" | "no" => RestartPolicyNameEnum::NO,
        "always" => RestartPolicyNameEnum::ALWAYS,
        "on-failure" => RestartPolicyNameEnum::ON_FAILURE,
        "unless-stopped" => RestartPolicyNameEnum::UNLESS_STOPPED,
        other => {
            return Err(RuntimeError::Rejected(format!(
                "Invalid restart policy name {other:?}"
            )));
        }
    };
    let count = policy.maximum_retry_count.trim();
    let count = if count.is_empty() {
        0
    } else {
        count
            .parse::<i64>()
            .map_err(|_| RuntimeError::Rejected(format!("Invalid MaximumRetryCount {count:?}")))?
    };
    Ok(RestartPolicy {
        name: Some(name),
        maximum_retry_count: Some(count),
    })
}

/// A JSON number or numeric string.
fn json_number(v: &serde_json::Value) -> Option<f64> {
    match v {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Zun seconds → Docker nanoseconds.
fn seconds_to_ns(field: &str, v: Option<&serde_json::Value>) -> Result<Option<i64>, RuntimeError> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    match json_number(v) {
        Some(secs) if secs.is_finite() && secs >= 0.0 => Ok(Some((secs * 1e9).round() as i64)),
        _ => Err(RuntimeError::Rejected(format!(
            "Invalid healthcheck {field} {v}: must be a non-negative number of seconds"
        ))),
    }
}

/// Upstream's `{test|cmd, interval, retries, timeout}` (seconds) → Docker's
/// HealthConfig (nanoseconds). A string test runs in the shell (`CMD-SHELL`);
/// an array runs as is (`CMD`) unless it already names its form.
fn health_config(value: &serde_json::Value) -> Result<Option<HealthConfig>, RuntimeError> {
    let obj = match value {
        serde_json::Value::Null => return Ok(None),
        serde_json::Value::Object(obj) if obj.is_empty() => return Ok(None),
        serde_json::Value::Object(obj) => obj,
        other => {
            return Err(RuntimeError::Rejected(format!(
                "Invalid healthcheck {other}: must be an object"
            )));
        }
    };
    let test = match obj.get("test").or_else(|| obj.get("cmd")) {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) if s.trim().is_empty() => None,
        Some(serde_json::Value::String(s)) => Some(vec!["CMD-SHELL".to_owned(), s.clone()]),
        Some(serde_json::Value::Array(items)) => {
            let words = items
                .iter()
                .map(|i| match i {
                    serde_json::Value::String(s) => Ok(s.clone()),
                    other => Err(RuntimeError::Rejected(format!(
                        "Invalid healthcheck test item {other}: must be a string"
                    ))),
                })
                .collect::<Result<Vec<_>, _>>()?;
            match words.first().map(String::as_str) {
                None => None,
                Some("CMD" | "CMD-SHELL" | "NONE") => Some(words),
                Some(_) => Some(std::iter::once("CMD".to_owned()).chain(words).collect()),
            }
        }
        Some(other) => {
            return Err(RuntimeError::Rejected(format!(
                "Invalid healthcheck test {other}: must be a string or an array"
            )));
        }
    };
    let retries = match obj.get("retries").filter(|v| !v.is_null()) {
        None => None,
        Some(v) => match json_number(v) {
            Some(n) if n >= 0.0 && n.fract() == 0.0 => Some(n as i64),
            _ => {
                return Err(RuntimeError::Rejected(format!(
                    "Invalid healthcheck retries {v}: must be a non-negative integer"
                )));
            }
        },
    };
    Ok(Some(HealthConfig {
        test,
        interval: seconds_to_ns("interval", obj.get("interval"))?,
        timeout: seconds_to_ns("timeout", obj.get("timeout"))?,
        retries,
        ..Default::default()
    }))
}

/// `{"80/tcp": {}, "53": {}}` → Docker's ExposedPorts (`"53/tcp"`).
fn exposed_ports(value: &serde_json::Value) -> Result<Option<PortSet>, RuntimeError> {
    let obj = match value {
        serde_json::Value::Null => return Ok(None),
        serde_json::Value::Object(obj) => obj,
        other => {
            return Err(RuntimeError::Rejected(format!(
                "Invalid exposed_ports {other}: must be an object"
            )));
        }
    };
    let mut ports = HashMap::new();
    for key in obj.keys() {
        let (port, proto) = match key.split_once('/') {
            Some((port, proto)) => (port.trim(), proto.trim().to_ascii_lowercase()),
            None => (key.trim(), "tcp".to_owned()),
        };
        let port: u16 = port
            .parse()
            .map_err(|_| RuntimeError::Rejected(format!("Invalid exposed port {key:?}")))?;
        if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
            return Err(RuntimeError::Rejected(format!(
                "value {proto} is an invalid protocol"
            )));
        }
        ports.insert(format!("{port}/{proto}"), HashMap::new());
    }
    Ok((!ports.is_empty()).then_some(ports))
}

/// The port numbers of Docker ExposedPorts keys, sorted and deduplicated.
pub(crate) fn exposed_port_numbers(ports: Option<&PortSet>) -> Vec<u16> {
    let mut out: Vec<u16> = ports
        .into_iter()
        .flat_map(|m| m.keys())
        .filter_map(|k| k.split('/').next().and_then(|p| p.parse().ok()))
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// The engine create body for a Zun container record (upstream's
/// `DockerDriver.create` mapping). On a network, the
/// container runs through the `zun-` wrapper of its OCI runtime (which
/// puts it into the driver's namespace: see `zun-runc`) with the engine's
/// own networking disabled, and gets the network's files.
pub(crate) fn create_body(
    c: &Container,
    image: &str,
    host: &str,
    sandbox: Sandbox<'_>,
    mounts: &[HostMount],
    hardening: &Hardening,
) -> Result<ContainerCreateBody, RuntimeError> {
    let network = sandbox.network;
    let mut labels: HashMap<String, String> = c
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    labels.insert(LABEL_UUID.to_owned(), c.uuid.clone());
    labels.insert(LABEL_HOST.to_owned(), host.to_owned());

    let env: Vec<String> = c
        .environment
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();

    let mut host_config = HostConfig {
        privileged: Some(c.privileged),
        auto_remove: Some(c.auto_remove),
        pids_limit: hardening.pids_limit,
        security_opt: hardening
            .no_new_privileges
            .then(|| vec!["no-new-privileges:true".to_owned()]),
        ..Default::default()
    };
    let runtime = c.runtime.as_deref().filter(|r| !r.is_empty());
    if network.is_some() || sandbox.ipc.is_some() {
        host_config.runtime = Some(format!(
            "{NETNS_RUNTIME_PREFIX}{}",
            runtime.unwrap_or(DEFAULT_OCI_RUNTIME)
        ));
    } else if let Some(runtime) = runtime {
        host_config.runtime = Some(runtime.to_owned());
    }
    if !c.privileged && !hardening.drop_capabilities.is_empty() {
        host_config.cap_drop = Some(hardening.drop_capabilities.clone());
        if network.is_some()
            && hardening
                .drop_capabilities
                .iter()
                .any(|cap| cap.trim_start_matches("CAP_") == "NET_RAW")
        {
            // `ping` without raw sockets: ICMP echo sockets for every
            // group, in the container's own network namespace only.
            host_config.sysctls = Some(HashMap::from([(
                "net.ipv4.ping_group_range".to_owned(),
                "0 2147483647".to_owned(),
            )]));
        }
    }
    if let Some(size) = &hardening.log_max_size {
        host_config.log_config = Some(HostConfigLogConfig {
            typ: Some("json-file".to_owned()),
            config: Some(HashMap::from([
                ("max-size".to_owned(), size.clone()),
                (
                    "max-file".to_owned(),
                    hardening.log_max_files.max(1).to_string(),
                ),
            ])),
        });
    }
    if sandbox.ipc.is_some() {
        // An IPC namespace of its own, whose path the wrapper replaces with
        // the capsule's.
        host_config.ipc_mode = Some("private".to_owned());
    }
    if let Some(network) = network {
        host_config.network_mode = Some("none".to_owned());
        host_config.binds = Some(
            network
                .files
                .iter()
                .map(|(source, target)| format!("{}:{target}:ro", source.display()))
                .collect(),
        );
    }
    if !mounts.is_empty() {
        // Structured mounts, not `Binds` text: a destination may hold a
        // colon, and a missing source must fail rather than be made empty.
        host_config.mounts = Some(
            mounts
                .iter()
                .map(|m| EngineMount {
                    target: Some(m.target.clone()),
                    source: Some(m.source.to_string_lossy().into_owned()),
                    typ: Some(MountTypeEnum::BIND),
                    read_only: Some(m.read_only),
                    ..Default::default()
                })
                .collect(),
        );
    }
    if let Some(cpu) = c.cpu {
        let (nano_cpus, shares) = cpu_limits(cpu)?;
        host_config.nano_cpus = Some(nano_cpus);
        host_config.cpu_shares = Some(shares);
    }
    if let Some(memory) = c.memory.as_deref().map(str::trim).filter(|m| !m.is_empty()) {
        let mib: i64 = memory.parse().map_err(|_| {
            RuntimeError::Rejected(format!("Invalid memory value {memory:?}: must be MiB"))
        })?;
        host_config.memory = Some(mib_to_bytes(mib)?);
    }
    if let Some(policy) = &c.restart_policy {
        host_config.restart_policy = Some(restart_policy(policy)?);
    }

    Ok(ContainerCreateBody {
        image: Some(image.to_owned()),
        cmd: c.command.clone(),
        entrypoint: c.entrypoint.clone(),
        env: (!env.is_empty()).then_some(env),
        working_dir: c.workdir.clone().filter(|w| !w.is_empty()),
        labels: Some(labels),
        hostname: c.hostname.clone().filter(|h| !h.is_empty()),
        tty: Some(c.tty),
        open_stdin: Some(c.interactive),
        attach_stdin: Some(c.interactive),
        stdin_once: Some(false),
        healthcheck: match &c.healthcheck {
            Some(h) => health_config(h)?,
            None => None,
        },
        exposed_ports: match &c.exposed_ports {
            Some(p) => exposed_ports(p)?,
            None => None,
        },
        network_disabled: network.map(|_| true),
        host_config: Some(host_config),
        ..Default::default()
    })
}

// ---- network namespaces ---------------------------------------------------

/// Tells the `zun-runc` wrapper which namespaces engine container `id`
/// runs in (before its first start; kept across restarts).
fn link_sandbox(id: &str, sandbox: Sandbox<'_>) -> Result<(), RuntimeError> {
    if let Some(network) = sandbox.network {
        link_namespace(zun_runc::ENGINE_NETNS_DIR, id, &network.netns)?;
    }
    if let Some(ipc) = sandbox.ipc {
        link_namespace(zun_runc::ENGINE_IPCNS_DIR, id, ipc)?;
    }
    Ok(())
}

fn link_namespace(dir: &str, id: &str, netns: &std::path::Path) -> Result<(), RuntimeError> {
    let dir = std::path::Path::new(dir);
    let failed = |e: std::io::Error| {
        RuntimeError::Unavailable(format!("cannot link {id} to {}: {e}", netns.display()))
    };
    std::fs::create_dir_all(dir).map_err(failed)?;
    let link = zun_runc::link_path(dir, id);
    if std::fs::read_link(&link).is_ok_and(|target| target == netns) {
        return Ok(());
    }
    match std::fs::remove_file(&link) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(failed(e)),
    }
    std::os::unix::fs::symlink(netns, &link).map_err(failed)
}

fn unlink_namespaces(id: &str) {
    for (dir, _) in zun_runc::ENGINE_LINKS {
        let link = zun_runc::link_path(std::path::Path::new(dir), id);
        if let Err(e) = std::fs::remove_file(&link)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(link = %link.display(), error = %e, "removing a namespace link failed");
        }
    }
}

/// Removes links whose namespace is gone (containers the engine removed by
/// itself, `auto_remove`): a link to nothing serves no one.
fn prune_netns_links() {
    for (dir, _) in zun_runc::ENGINE_LINKS {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if std::fs::read_link(&path).is_ok() && !path.exists() {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
}

// ---- observation ----------------------------------------------------------

/// The uuid in an engine name `/zun-<uuid>` (or `zun-<uuid>`), if it is one.
pub(crate) fn uuid_of_name(name: &str) -> Option<&str> {
    let uuid = name
        .strip_prefix('/')
        .unwrap_or(name)
        .strip_prefix(NAME_PREFIX)?;
    is_uuid_like(uuid).then_some(uuid)
}

/// The canonical 8-4-4-4-12 hex form.
fn is_uuid_like(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, ch)| match i {
            8 | 13 | 18 | 23 => ch == '-',
            _ => ch.is_ascii_hexdigit(),
        })
}

/// Docker's timestamps; its zero time (`0001-01-01T00:00:00Z`) means never.
fn parse_engine_time(s: Option<&str>) -> Option<DateTime<Utc>> {
    let t = DateTime::parse_from_rfc3339(s?).ok()?.with_timezone(&Utc);
    (t.timestamp() > 0).then_some(t)
}

/// Upstream's age text: the largest unit only, "3 days", "2 hours",
/// "5 mins", "12 seconds".
fn format_age(age: TimeDelta) -> String {
    let secs = age.num_seconds().max(0);
    let (days, hours, mins) = (secs / 86_400, secs % 86_400 / 3_600, secs % 3_600 / 60);
    if days > 0 {
        format!("{days} days")
    } else if hours > 0 {
        format!("{hours} hours")
    } else if mins > 0 {
        format!("{mins} mins")
    } else {
        format!("{} seconds", secs % 60)
    }
}

fn engine_state(state: &ContainerState) -> EngineState {
    let flag = |f: Option<bool>| f.unwrap_or(false);
    if flag(state.paused) {
        EngineState::Paused
    } else if flag(state.restarting) {
        EngineState::Restarting
    } else if flag(state.running) {
        EngineState::Running
    } else if flag(state.dead) {
        EngineState::Dead
    } else {
        match state.status {
            Some(ContainerStateStatusEnum::REMOVING) => EngineState::Removing,
            Some(ContainerStateStatusEnum::EXITED) => EngineState::Exited,
            Some(ContainerStateStatusEnum::DEAD) => EngineState::Dead,
            Some(ContainerStateStatusEnum::RUNNING) => EngineState::Running,
            Some(ContainerStateStatusEnum::PAUSED) => EngineState::Paused,
            Some(ContainerStateStatusEnum::RESTARTING) => EngineState::Restarting,
            Some(ContainerStateStatusEnum::CREATED | ContainerStateStatusEnum::EMPTY) | None => {
                EngineState::Created
            }
        }
    }
}

/// `status_detail` as upstream's docker driver builds it
/// (`_populate_container_state`): "Up 5 mins", "Up 3 hours (paused)",
/// "Exited(0) 8 mins ago " (sic, trailing space), "Exited(1) 2 days ago
/// (error)", "Created", "Restarting", "Dead".
pub(crate) fn status_detail(
    state: EngineState,
    exit_code: i64,
    error: Option<&str>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> String {
    let ago = |t: Option<DateTime<Utc>>| t.map(|t| format_age(now - t));
    if error.is_some() {
        return match ago(finished_at) {
            Some(age) => format!("Exited({exit_code}) {age} ago (error)"),
            None => format!("Exited({exit_code}) (error)"),
        };
    }
    match state {
        EngineState::Paused => format!("Up {} (paused)", ago(started_at).unwrap_or_default()),
        EngineState::Restarting => "Restarting".to_owned(),
        EngineState::Running => format!("Up {}", ago(started_at).unwrap_or_default()),
        EngineState::Dead => "Dead".to_owned(),
        EngineState::Created | EngineState::Exited | EngineState::Removing => {
            match (started_at, ago(finished_at)) {
                (None, _) => "Created".to_owned(),
                (Some(_), Some(age)) => format!("Exited({exit_code}) {age} ago "),
                (Some(_), None) => format!("Exited({exit_code})"),
            }
        }
    }
}

/// The exit code is reported for containers that are not running.
pub(crate) fn reports_exit_code(state: EngineState) -> bool {
    matches!(
        state,
        EngineState::Exited | EngineState::Dead | EngineState::Removing | EngineState::Restarting
    )
}

fn observed_from_inspect(info: &ContainerInspectResponse, now: DateTime<Utc>) -> Observed {
    let name = info.name.as_deref().unwrap_or_default();
    let uuid = uuid_of_name(name).map(str::to_owned).unwrap_or_else(|| {
        name.trim_start_matches('/')
            .trim_start_matches(NAME_PREFIX)
            .to_owned()
    });
    let default_state = ContainerState::default();
    let st = info.state.as_ref().unwrap_or(&default_state);
    let state = engine_state(st);
    let exit_code = st.exit_code.unwrap_or(0);
    let error = st
        .error
        .as_deref()
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(str::to_owned);
    let started_at = parse_engine_time(st.started_at.as_deref());
    let finished_at = parse_engine_time(st.finished_at.as_deref());
    Observed {
        engine_id: info.id.clone().unwrap_or_default(),
        uuid,
        state,
        status_detail: status_detail(
            state,
            exit_code,
            error.as_deref(),
            started_at,
            finished_at,
            now,
        ),
        exit_code: (reports_exit_code(state) || error.is_some()).then_some(exit_code),
        error,
        oom_killed: st.oom_killed.unwrap_or(false),
        ports: exposed_port_numbers(info.config.as_ref().and_then(|c| c.exposed_ports.as_ref())),
        started_at,
        finished_at,
    }
}

fn summary_state(state: Option<&ContainerSummaryStateEnum>) -> EngineState {
    match state {
        Some(ContainerSummaryStateEnum::RUNNING) => EngineState::Running,
        Some(ContainerSummaryStateEnum::PAUSED) => EngineState::Paused,
        Some(ContainerSummaryStateEnum::RESTARTING) => EngineState::Restarting,
        Some(ContainerSummaryStateEnum::EXITED) => EngineState::Exited,
        Some(ContainerSummaryStateEnum::REMOVING) => EngineState::Removing,
        Some(ContainerSummaryStateEnum::DEAD) => EngineState::Dead,
        Some(ContainerSummaryStateEnum::CREATED | ContainerSummaryStateEnum::EMPTY) | None => {
            EngineState::Created
        }
    }
}

/// Seconds of a Docker human duration (go-units `HumanDuration`): "Less
/// than a second", "About a minute", "5 minutes", "About an hour", "3 hours",
/// "4 days", "2 weeks", "3 months", "2 years".
fn parse_human_duration(text: &str) -> Option<i64> {
    let text = text.trim();
    match text {
        "Less than a second" => return Some(0),
        "About a minute" => return Some(60),
        "About an hour" => return Some(3_600),
        _ => {}
    }
    let (n, unit) = text.split_once(' ')?;
    let n: i64 = n.parse().ok()?;
    let unit_secs = match unit.trim_end_matches('s') {
        "second" => 1,
        "minute" => 60,
        "hour" => 3_600,
        "day" => 86_400,
        "week" => 7 * 86_400,
        "month" => 30 * 86_400,
        "year" => 365 * 86_400,
        _ => return None,
    };
    n.checked_mul(unit_secs)
}

fn age_text(docker_duration: &str) -> String {
    parse_human_duration(docker_duration).map_or_else(
        || docker_duration.trim().to_owned(),
        |secs| format_age(TimeDelta::seconds(secs)),
    )
}

/// `"(137) 5 minutes ago"` → (137, "5 minutes").
fn code_and_age(rest: &str) -> Option<(i64, &str)> {
    let rest = rest.trim_start().strip_prefix('(')?;
    let (code, rest) = rest.split_once(')')?;
    let code = code.trim().parse().ok()?;
    let age = rest.trim().strip_suffix("ago").unwrap_or(rest).trim();
    Some((code, age))
}

/// `status_detail` and exit code from the list summary's `Status` text
/// ("Up 5 minutes (Paused)", "Exited (0) 8 minutes ago", ...), in the same
/// format as [`status_detail`].
fn detail_from_summary(state: EngineState, status: &str) -> (String, Option<i64>) {
    let status = status.trim();
    if let Some(rest) = status.strip_prefix("Up ") {
        // Drop "(Paused)", "(healthy)", "(health: starting)" suffixes.
        let duration = rest.split(" (").next().unwrap_or(rest);
        let age = age_text(duration);
        let detail = if state == EngineState::Paused {
            format!("Up {age} (paused)")
        } else {
            format!("Up {age}")
        };
        return (detail, None);
    }
    if let Some(rest) = status.strip_prefix("Exited") {
        return match code_and_age(rest) {
            Some((code, age)) => (format!("Exited({code}) {} ago ", age_text(age)), Some(code)),
            None => (status.to_owned(), None),
        };
    }
    if let Some(rest) = status.strip_prefix("Restarting") {
        return ("Restarting".to_owned(), code_and_age(rest).map(|(c, _)| c));
    }
    match status {
        "Created" | "" if state == EngineState::Created => ("Created".to_owned(), None),
        "Dead" => ("Dead".to_owned(), None),
        "Removal In Progress" => ("Removing".to_owned(), None),
        other => (other.to_owned(), None),
    }
}

fn observed_from_summary(s: &ContainerSummary) -> Option<Observed> {
    let uuid = s
        .names
        .as_ref()?
        .iter()
        .find_map(|n| uuid_of_name(n))?
        .to_owned();
    let state = summary_state(s.state.as_ref());
    let (status_detail, exit_code) =
        detail_from_summary(state, s.status.as_deref().unwrap_or_default());
    let mut ports: Vec<u16> = s.ports.iter().flatten().map(|p| p.private_port).collect();
    ports.sort_unstable();
    ports.dedup();
    Some(Observed {
        engine_id: s.id.clone()?,
        uuid,
        state,
        status_detail,
        exit_code,
        error: None,
        oom_killed: false,
        ports,
        started_at: None,
        finished_at: None,
    })
}

/// A managed container's event, or `None` for everything else.
fn runtime_event(message: EventMessage, host: &str) -> Option<RuntimeEvent> {
    let action = message.action?;
    let attributes = message.actor?.attributes?;
    let uuid = attributes.get("name")?.strip_prefix(NAME_PREFIX)?;
    if !is_uuid_like(uuid) {
        return None;
    }
    if attributes.get(LABEL_HOST).is_some_and(|h| h != host) {
        return None;
    }
    Some(RuntimeEvent {
        uuid: uuid.to_owned(),
        action,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_failures_are_told_apart() {
        let kind = |m: &str| match classify_pull_failure(m.to_owned()) {
            PullError::Unreachable(_) => "unreachable",
            PullError::Denied(_) => "denied",
            PullError::NotFound(_) => "not found",
            PullError::Failed(_) => "failed",
            PullError::Engine(_) => "engine",
        };
        assert_eq!(
            kind(
                r#"Get "http://127.0.0.1:5098/v2/": dial tcp 127.0.0.1:5098: connect: connection refused"#
            ),
            "unreachable"
        );
        assert_eq!(
            kind(
                r#"Get "https://registry-1.docker.io/v2/": proxyconnect tcp: dial tcp 127.0.0.1:9: connect: connection refused"#
            ),
            "unreachable"
        );
        assert_eq!(
            kind("Get \"https://r.example/v2/\": dial tcp: lookup r.example: no such host"),
            "unreachable"
        );
        assert_eq!(
            kind("Get \"https://r.example/v2/\": net/http: TLS handshake timeout"),
            "unreachable"
        );
        assert_eq!(
            kind(
                r#"Head "http://127.0.0.1:5099/v2/private/box/manifests/1.0": no basic auth credentials"#
            ),
            "denied"
        );
        assert_eq!(
            kind(
                r#"Head "http://127.0.0.1:5099/v2/private/box/manifests/1.0": unauthorized: authentication required"#
            ),
            "denied"
        );
        assert_eq!(
            kind(
                "pull access denied for someone/thing, repository does not exist or may require 'docker login': denied: requested access to the resource is denied"
            ),
            "denied"
        );
        assert_eq!(
            kind(
                "manifest for 127.0.0.1:5099/private/box:9.9 not found: manifest unknown: manifest unknown"
            ),
            "not found"
        );
        assert_eq!(kind("invalid reference format"), "failed");
    }

    #[test]
    fn layer_progress_counts_layers() {
        let info = |id: &str, status: &str| CreateImageInfo {
            id: Some(id.to_owned()),
            status: Some(status.to_owned()),
            ..Default::default()
        };
        let mut layers = LayerProgress::default();
        assert_eq!(
            layers.record(&info("1.0", "Pulling from private/box")),
            None
        );
        assert_eq!(
            layers.record(&info("a", "Pulling fs layer")),
            Some("0 of 1 layers done".into())
        );
        assert_eq!(
            layers.record(&info("b", "Pulling fs layer")),
            Some("0 of 2 layers done".into())
        );
        assert_eq!(layers.record(&info("a", "Downloading")), None);
        assert_eq!(
            layers.record(&info("a", "Pull complete")),
            Some("1 of 2 layers done".into())
        );
        assert_eq!(
            layers.record(&info("b", "Already exists")),
            Some("2 of 2 layers done".into())
        );
    }

    #[test]
    fn age_and_detail_formats() {
        let now = Utc::now();
        assert_eq!(format_age(TimeDelta::seconds(0)), "0 seconds");
        assert_eq!(format_age(TimeDelta::seconds(59)), "59 seconds");
        assert_eq!(format_age(TimeDelta::seconds(5 * 60 + 3)), "5 mins");
        assert_eq!(format_age(TimeDelta::seconds(3 * 3600 + 70)), "3 hours");
        assert_eq!(format_age(TimeDelta::seconds(2 * 86_400 + 5)), "2 days");
        assert_eq!(format_age(TimeDelta::seconds(-5)), "0 seconds");
        let five_min_ago = Some(now - TimeDelta::seconds(300));
        let eight_min_ago = Some(now - TimeDelta::seconds(480));
        assert_eq!(
            status_detail(EngineState::Running, 0, None, five_min_ago, None, now),
            "Up 5 mins"
        );
        assert_eq!(
            status_detail(EngineState::Paused, 0, None, five_min_ago, None, now),
            "Up 5 mins (paused)"
        );
        assert_eq!(
            status_detail(
                EngineState::Exited,
                0,
                None,
                five_min_ago,
                eight_min_ago,
                now
            ),
            "Exited(0) 8 mins ago "
        );
        assert_eq!(
            status_detail(EngineState::Created, 0, None, None, None, now),
            "Created"
        );
        assert_eq!(
            status_detail(
                EngineState::Created,
                127,
                Some("exec failed"),
                None,
                None,
                now
            ),
            "Exited(127) (error)"
        );
        assert_eq!(
            status_detail(EngineState::Restarting, 1, None, None, None, now),
            "Restarting"
        );
        assert_eq!(
            status_detail(EngineState::Dead, 1, None, None, None, now),
            "Dead"
        );
    }

    #[test]
    fn summary_status_text() {
        assert_eq!(
            detail_from_summary(EngineState::Running, "Up 5 minutes"),
            ("Up 5 mins".to_owned(), None)
        );
        assert_eq!(
            detail_from_summary(EngineState::Running, "Up About an hour (healthy)"),
            ("Up 1 hours".to_owned(), None)
        );
        assert_eq!(
            detail_from_summary(EngineState::Paused, "Up Less than a second (Paused)"),
            ("Up 0 seconds (paused)".to_owned(), None)
        );
        assert_eq!(
            detail_from_summary(EngineState::Exited, "Exited (137) 8 minutes ago"),
            ("Exited(137) 8 mins ago ".to_owned(), Some(137))
        );
        assert_eq!(
            detail_from_summary(EngineState::Exited, "Exited (0) 2 weeks ago"),
            ("Exited(0) 14 days ago ".to_owned(), Some(0))
        );
        assert_eq!(
            detail_from_summary(EngineState::Restarting, "Restarting (1) 3 seconds ago"),
            ("Restarting".to_owned(), Some(1))
        );
        assert_eq!(
            detail_from_summary(EngineState::Created, "Created"),
            ("Created".to_owned(), None)
        );
    }

    #[test]
    fn engine_times() {
        assert_eq!(parse_engine_time(Some("0001-01-01T00:00:00Z")), None);
        assert!(parse_engine_time(Some("2024-05-01T10:00:00.123456789Z")).is_some());
        assert_eq!(parse_engine_time(None), None);
    }

    #[test]
    fn healthcheck_mapping() {
        let h = health_config(&serde_json::json!({
            "test": "stat /etc/passwd", "interval": 5, "retries": "3", "timeout": 1.5
        }))
        .ok()
        .flatten();
        assert_eq!(
            h,
            Some(HealthConfig {
                test: Some(vec!["CMD-SHELL".into(), "stat /etc/passwd".into()]),
                interval: Some(5_000_000_000),
                timeout: Some(1_500_000_000),
                retries: Some(3),
                ..Default::default()
            })
        );
        let h = health_config(&serde_json::json!({"cmd": ["true"]}))
            .ok()
            .flatten()
            .and_then(|h| h.test);
        assert_eq!(h, Some(vec!["CMD".to_owned(), "true".to_owned()]));
        assert!(health_config(&serde_json::json!({"interval": -1})).is_err());
    }

    #[test]
    fn names_and_events() {
        let uuid = "0b0e8f5e-4a3c-4c1a-9d1e-2f3a4b5c6d7e";
        assert_eq!(uuid_of_name(&format!("/zun-{uuid}")), Some(uuid));
        assert_eq!(uuid_of_name("/zun-web"), None);
        assert_eq!(uuid_of_name("/other"), None);
        let event = |name: &str, host: Option<&str>| EventMessage {
            action: Some("start".into()),
            actor: Some(bollard::models::EventActor {
                id: Some("abc".into()),
                attributes: Some(
                    [("name".to_owned(), name.to_owned())]
                        .into_iter()
                        .chain(host.map(|h| (LABEL_HOST.to_owned(), h.to_owned())))
                        .collect(),
                ),
            }),
            ..Default::default()
        };
        assert_eq!(
            runtime_event(event(&format!("zun-{uuid}"), Some("h1")), "h1"),
            Some(RuntimeEvent {
                uuid: uuid.into(),
                action: "start".into()
            })
        );
        assert_eq!(
            runtime_event(event(&format!("zun-{uuid}"), Some("h2")), "h1"),
            None
        );
        assert!(runtime_event(event(&format!("zun-{uuid}"), None), "h1").is_some());
        assert_eq!(runtime_event(event("web", None), "h1"), None);
    }

    #[test]
    fn cpu_and_memory() {
        assert_eq!(cpu_limits(1.0).ok(), Some((1_000_000_000, 1024)));
        assert_eq!(cpu_limits(0.1).ok(), Some((100_000_000, 102)));
        assert!(cpu_limits(0.0).is_err());
        assert_eq!(mib_to_bytes(512).ok(), Some(512 * 1024 * 1024));
        assert!(mib_to_bytes(-1).is_err());
    }
}
