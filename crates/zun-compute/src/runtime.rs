//! The container runtime a compute agent drives. One trait per backend kind
//! (DESIGN decision 6); Docker is the reference implementation.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures_util::stream::BoxStream;
use zun_types::Container;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The engine has no such container or image.
    #[error("{0}")]
    NotFound(String),
    /// The engine refused the request for a reason the user can act on
    /// (bad image, bad command, resources); the text is shown as status_reason.
    #[error("{0}")]
    Rejected(String),
    /// The engine could not be reached or answered unexpectedly.
    #[error("container engine unavailable: {0}")]
    Unavailable(String),
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

#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    pub stdout: bool,
    pub stderr: bool,
    pub timestamps: bool,
    /// `None` means all lines.
    pub tail: Option<u64>,
    /// Unix seconds.
    pub since: Option<i64>,
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
    /// Makes `image` available locally as `policy` says.
    async fn ensure_image(&self, image: &str, policy: PullPolicy) -> Result<(), RuntimeError>;

    /// Creates the engine container `zun-<uuid>` from the record, or returns
    /// the id of the one that already exists. Returns the engine id.
    async fn create(&self, container: &Container) -> Result<String, RuntimeError>;

    async fn start(&self, name: &str) -> Result<(), RuntimeError>;
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
