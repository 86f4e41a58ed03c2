//! The container runtime a compute agent drives. One trait per backend kind
//! (DESIGN decision 6); Docker is the reference implementation.

use std::path::Path;
use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::stream::BoxStream;
use tokio::io::AsyncWrite;
pub use zun_network::Attachment;
use zun_types::Container;
pub use zun_types::host::{LogOptions, PathStat, Processes, Usage};
pub use zun_volume::HostMount;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The engine has no such container or image.
    #[error("{0}")]
    NotFound(String),
    /// The engine refused the request for a reason the user can act on
    /// (bad image, bad command, resources); the text is shown as status_reason.
    #[error("{0}")]
    Rejected(String),
    /// The request itself is wrong (a path that is not a directory, a
    /// malformed repository name): the caller's fault, shown as a 400.
    #[error("{0}")]
    Invalid(String),
    /// The engine could not be reached or answered unexpectedly.
    #[error("container engine unavailable: {0}")]
    Unavailable(String),
}

/// What every container of a host gets, whatever its record says: the
/// operator's defence against tenants' code (DESIGN decision 11).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hardening {
    /// The most processes and threads a container may have at once, so a
    /// fork bomb stops inside it; `None`: the engine's default (none).
    pub pids_limit: Option<i64>,
    /// `no-new-privileges`: no process in the container gains privileges
    /// through setuid binaries or file capabilities.
    pub no_new_privileges: bool,
    /// Capabilities taken from the engine's default set (privileged
    /// containers, which an admin policy allows, keep all).
    pub drop_capabilities: Vec<String>,
    /// The engine's log of a container is rotated at this size
    /// (`10m`, Docker's units) and keeps `log_max_files` files; `None`:
    /// the engine's default (unbounded).
    pub log_max_size: Option<String>,
    pub log_max_files: u32,
}

impl Hardening {
    /// A bound well above what real workloads use (threads count too: a
    /// JVM runs hundreds), far below what would starve the host.
    pub const DEFAULT_PIDS_LIMIT: i64 = 4096;

    /// From Docker's default set, what a tenant's workload does not need
    /// and an attacker would: raw packets (forged frames, ARP tricks),
    /// device nodes, the host's audit log, file capabilities.
    pub const DEFAULT_DROPPED_CAPABILITIES: [&str; 4] =
        ["NET_RAW", "MKNOD", "AUDIT_WRITE", "SETFCAP"];

    /// A container's log is at most 3 × 10 MiB on the host.
    pub const DEFAULT_LOG_MAX_SIZE: &str = "10m";
    pub const DEFAULT_LOG_MAX_FILES: u32 = 3;
}

impl Default for Hardening {
    fn default() -> Self {
        Self {
            pids_limit: Some(Self::DEFAULT_PIDS_LIMIT),
            no_new_privileges: true,
            drop_capabilities: Self::DEFAULT_DROPPED_CAPABILITIES
                .map(str::to_owned)
                .to_vec(),
            log_max_size: Some(Self::DEFAULT_LOG_MAX_SIZE.to_owned()),
            log_max_files: Self::DEFAULT_LOG_MAX_FILES,
        }
    }
}

/// The namespaces a container joins instead of making its own.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sandbox<'a> {
    /// The network namespace the network driver made (for the container,
    /// or for its capsule), with the files it gives.
    pub network: Option<&'a Attachment>,
    /// Its capsule's IPC namespace, which the capsule's members share.
    pub ipc: Option<&'a Path>,
}

/// What the engine holds for one managed container.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    pub engine_id: String,
    /// uuid of the Zun container, from the engine-side name `zun-<uuid>`.
    pub uuid: String,
    pub state: EngineState,
    /// Upstream's `status_detail` text: "Up 5 mins", "Exited(0) 8 mins ago", ...
    pub status_detail: String,
    pub exit_code: Option<i64>,
    /// Error text the engine reported for the last start attempt, if any.
    pub error: Option<String>,
    /// The kernel killed it for going over its memory limit.
    pub oom_killed: bool,
    pub ports: Vec<u16>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineState {
    Created,
    Running,
    Paused,
    Restarting,
    /// Exited after having run, or stopped.
    Exited,
    Dead,
    /// Being removed by the engine (auto_remove).
    Removing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

/// Credentials for one registry, as the engine takes them for a pull.
#[derive(Clone, PartialEq, Eq)]
pub struct RegistryAuth {
    /// The registry's domain (`127.0.0.1:5000`).
    pub server: String,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryAuth")
            .field("server", &self.server)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// Why a pull failed, as far as the engine's answer tells.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// The registry could not be reached (no route, refused, DNS, timeout).
    #[error("{0}")]
    Unreachable(String),
    /// The registry refused the credentials, or wants some.
    #[error("{0}")]
    Denied(String),
    /// No such repository or tag.
    #[error("{0}")]
    NotFound(String),
    /// Any other failure the engine reported.
    #[error("{0}")]
    Failed(String),
    /// The engine itself could not be reached.
    #[error(transparent)]
    Engine(RuntimeError),
}

/// What a host's engine says about the host, for its compute node.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HostFacts {
    pub cpus: f64,
    /// MiB.
    pub mem_total: i64,
    /// GiB of the filesystem holding the engine's data.
    pub disk_total: i64,
    pub runtimes: Vec<String>,
    /// The engine's daemon labels (`key=value`).
    pub labels: std::collections::BTreeMap<String, String>,
    pub architecture: Option<String>,
    pub os_type: Option<String>,
    pub os: Option<String>,
    pub kernel_version: Option<String>,
}

/// What the engine holds of one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    pub id: String,
    /// Bytes.
    pub size: i64,
    pub repo_tags: Vec<String>,
}

/// A change seen on the engine's event stream for a managed container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeEvent {
    pub uuid: String,
    /// Engine action: "start", "die", "destroy", "pause", ...
    pub action: String,
}

/// Every method is idempotent where the engine allows it: creating a
/// container that already exists returns the existing one, stopping a
/// stopped container or removing a removed one succeeds. This is what lets
/// a restarted agent simply redo unfinished work.
#[async_trait]
pub trait Runtime: Send + Sync + 'static {
    /// What the host offers, as the engine reports it.
    async fn host_facts(&self) -> Result<HostFacts, RuntimeError>;

    /// The local image `reference` names, if the engine has it.
    async fn image(&self, reference: &str) -> Result<Option<ImageInfo>, RuntimeError>;

    /// Pulls `reference` (`repo:tag` or `repo@digest`). `progress` is called
    /// with a short human-readable summary as the pull advances.
    async fn pull(
        &self,
        reference: &str,
        auth: Option<&RegistryAuth>,
        progress: &(dyn Fn(String) + Send + Sync),
    ) -> Result<(), PullError>;

    /// Removes a local image (by reference or id); succeeds if it is gone.
    /// An image a container still uses is [`RuntimeError::Rejected`].
    async fn remove_image(&self, reference: &str) -> Result<(), RuntimeError>;

    /// Creates the engine container `zun-<uuid>` from the record and the
    /// resolved `image` reference, or returns the id of the one that already
    /// exists. Returns the engine id. With `sandbox.network`, the container
    /// runs in the network namespace the network driver made for it (or
    /// for its capsule) and gets its files; without, in an empty namespace
    /// of its own. `mounts` are the host paths of its volumes and injected
    /// files.
    async fn create(
        &self,
        container: &Container,
        image: &str,
        sandbox: Sandbox<'_>,
        mounts: &[HostMount],
    ) -> Result<String, RuntimeError>;

    async fn start(&self, name: &str) -> Result<(), RuntimeError>;

    /// Makes the next start of the existing container `name` run in
    /// `sandbox`'s namespaces, made anew (after the host rebooted, say).
    /// Runtimes that hold on to the paths given at create need nothing.
    async fn join_sandbox(&self, _name: &str, _sandbox: Sandbox<'_>) -> Result<(), RuntimeError> {
        Ok(())
    }
    async fn stop(&self, name: &str, timeout_secs: Option<u64>) -> Result<(), RuntimeError>;
    async fn restart(&self, name: &str, timeout_secs: Option<u64>) -> Result<(), RuntimeError>;
    async fn pause(&self, name: &str) -> Result<(), RuntimeError>;
    async fn unpause(&self, name: &str) -> Result<(), RuntimeError>;
    /// `signal` as the engine accepts it ("SIGKILL", "9", ...); `None` = SIGKILL.
    async fn kill(&self, name: &str, signal: Option<&str>) -> Result<(), RuntimeError>;
    /// Forcefully removes the container; succeeds if it is already gone.
    async fn remove(&self, name: &str) -> Result<(), RuntimeError>;
    /// Live update of limits; cpu in CPUs, memory in MiB.
    async fn update(
        &self,
        name: &str,
        cpu: Option<f64>,
        memory_mib: Option<i64>,
    ) -> Result<(), RuntimeError>;

    async fn inspect(&self, name: &str) -> Result<Option<Observed>, RuntimeError>;
    /// Every engine container this service manages (name `zun-<uuid>`).
    async fn list(&self) -> Result<Vec<Observed>, RuntimeError>;
    async fn logs(&self, name: &str, options: &LogOptions) -> Result<String, RuntimeError>;

    /// The engine's event stream for managed containers. Ends or errors when
    /// the engine goes away; the caller re-subscribes and re-lists.
    fn events(&self) -> BoxStream<'static, Result<RuntimeEvent, RuntimeError>>;
}

/// A bidirectional byte stream into a running process (an exec instance or
/// the container's main process): what the terminal shows, and its input.
/// Dropping it closes the engine connection, which ends the stream (and
/// closes the process's stdin).
pub struct Session {
    /// Output as the engine sends it; with a tty, stdout and stderr are one.
    pub output: BoxStream<'static, Result<Bytes, RuntimeError>>,
    pub input: Pin<Box<dyn AsyncWrite + Send>>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").finish_non_exhaustive()
    }
}

/// A tar archive of a path inside a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Archive {
    pub stat: PathStat,
    pub tar: Bytes,
}

/// Operations that move bytes in or out of one container: exec, attach, tty
/// sizes, processes, resource use, file archives and commit. Separate from
/// [`Runtime`] because the reconciler needs none of them.
#[async_trait]
pub trait ContainerIo: Send + Sync + 'static {
    /// Creates an exec instance of `command` in the running container
    /// `name`; `interactive` gives it stdin and a tty. Returns its id.
    async fn exec_create(
        &self,
        name: &str,
        command: &[String],
        interactive: bool,
    ) -> Result<String, RuntimeError>;
    /// Starts the exec instance and connects to it.
    async fn exec_start(&self, exec_id: &str, interactive: bool) -> Result<Session, RuntimeError>;
    /// The exit code once the exec'd process has ended; `None` while it runs.
    async fn exec_exit_code(&self, exec_id: &str) -> Result<Option<i64>, RuntimeError>;
    async fn exec_resize(&self, exec_id: &str, height: u16, width: u16)
    -> Result<(), RuntimeError>;

    /// Connects to the container's main process (stdin, stdout, stderr);
    /// only what it writes from now on is sent.
    async fn attach(&self, name: &str) -> Result<Session, RuntimeError>;
    /// Resizes the container's own tty.
    async fn resize_tty(&self, name: &str, height: u16, width: u16) -> Result<(), RuntimeError>;

    /// `ps` in the container; `ps_args` as `docker top` takes them.
    async fn top(&self, name: &str, ps_args: Option<&str>) -> Result<Processes, RuntimeError>;
    /// One sample of resource use (the CPU figure over the engine's last
    /// sampling interval).
    async fn stats(&self, name: &str) -> Result<Usage, RuntimeError>;

    /// A tar of `path`. Fails with `Rejected` when the tar would exceed
    /// `max_bytes` (the caller holds it in memory), `NotFound` when the
    /// path does not exist.
    async fn get_archive(
        &self,
        name: &str,
        path: &str,
        max_bytes: usize,
    ) -> Result<Archive, RuntimeError>;
    /// Extracts the tar `tar` into the directory `path`.
    async fn put_archive(&self, name: &str, path: &str, tar: Bytes) -> Result<(), RuntimeError>;

    /// Commits the container's filesystem as image `repository:tag` on this
    /// host (pausing it while the engine copies). Returns the image id.
    async fn commit(&self, name: &str, repository: &str, tag: &str)
    -> Result<String, RuntimeError>;
}
