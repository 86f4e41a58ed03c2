//! The store is the source of truth (DESIGN decision 2). The API writes
//! desired state and an action record in one transaction; agents read the
//! pending actions of their host and write back what the engine reports.

mod catalog;
mod hosts;
mod networks;
mod postgres;
mod sql;
mod sqlite;
#[cfg(test)]
mod tests;
mod volumes;
mod work;

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use zun_types::container::RecordKind;
use zun_types::{ApiError, Container};

pub use catalog::{
    IMAGE_SORT_KEYS, ImageListQuery, ImageStore, REGISTRY_FILTER_KEYS, REGISTRY_SORT_KEYS,
    RegistryListQuery, RegistryStore,
};
pub use hosts::{
    COMPUTE_BINARY, ComputeNode, HostStore, HostView, NodeUsage, Placement, ServiceChange,
    ServiceRecord,
};
pub use networks::{NetworkRecord, NetworkStore, PortRecord, SecurityGroupRecord};
pub use postgres::PgStore;
pub use sqlite::SqliteStore;
pub use volumes::VolumeStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("container {0} not found")]
    NotFound(String),
    #[error("marker {0} not found")]
    MarkerNotFound(String),
    /// The mutation refused the change (for example an invalid state); the
    /// error is the one the user should see.
    #[error("rejected: {0}")]
    Rejected(ApiError),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration error: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("corrupt record: {0}")]
    Corrupt(#[from] serde_json::Error),
    /// A placed insert found its host unable to take the container.
    #[error("no room on the host: {0}")]
    NoRoom(String),
    /// An address pool or a subnet has nothing left to hand out.
    #[error("{0}")]
    Exhausted(String),
}

/// Columns a list may be sorted by (upstream allows any DB column; these are
/// ours). Anything else is a 400 at the API.
pub const SORT_KEYS: &[&str] = &[
    "id",
    "uuid",
    "name",
    "project_id",
    "user_id",
    "image",
    "status",
    "task_state",
    "host",
    "memory",
    "cpu",
    "disk",
    "auto_remove",
    "created_at",
    "updated_at",
];

/// Exact-match filters accepted by the container list (reference §4.1).
pub const FILTER_KEYS: &[&str] = &[
    "name",
    "image",
    "project_id",
    "user_id",
    "memory",
    "host",
    "task_state",
    "status",
    "auto_remove",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortDir {
    Asc,
    Desc,
}

#[derive(Debug, Clone)]
pub struct ListQuery {
    /// `None` lists every project (admin with `all_projects`).
    pub project_id: Option<String>,
    /// (column from [`FILTER_KEYS`], exact value).
    pub filters: Vec<(String, String)>,
    pub limit: u32,
    /// uuid of the last row of the previous page.
    pub marker: Option<String>,
    /// A column from [`SORT_KEYS`]; `id` is always the secondary key.
    pub sort_key: String,
    pub sort_dir: SortDir,
    /// Containers or capsules (members are listed only through their capsule).
    pub kind: RecordKind,
}

impl ListQuery {
    /// Every container of one project, oldest first, in one page.
    pub fn whole_project(project_id: &str) -> Self {
        Self {
            project_id: Some(project_id.to_owned()),
            filters: Vec::new(),
            limit: u32::MAX,
            marker: None,
            sort_key: "id".to_owned(),
            sort_dir: SortDir::Asc,
            kind: RecordKind::Container,
        }
    }
}

/// A request recorded against a container: the user's action log and, while
/// `finish_time` is unset, work the container's host still has to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionRecord {
    pub id: i64,
    pub container_uuid: String,
    pub request_id: String,
    pub action: String,
    pub user_id: String,
    pub project_id: String,
    pub host: Option<String>,
    /// Action arguments (stop timeout, kill signal, ...).
    pub params: serde_json::Value,
    pub start_time: DateTime<Utc>,
    pub finish_time: Option<DateTime<Utc>>,
    /// `None` on success, `"Error"` on failure, as upstream.
    pub message: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NewAction {
    pub request_id: String,
    pub action: String,
    pub user_id: String,
    pub project_id: String,
    pub host: Option<String>,
    pub params: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    pub event: String,
    pub start_time: DateTime<Utc>,
    pub finish_time: Option<DateTime<Utc>>,
    /// `"Success"` or `"Error"` once finished.
    pub result: Option<String>,
    pub traceback: Option<String>,
}

/// The quota class whose rows override the configured defaults for every
/// project (reference §7.6).
pub const DEFAULT_QUOTA_CLASS: &str = "default";

/// Hard limits of one project (reference §10): containers (count), cpu
/// (vCPUs), memory (MiB), disk (GiB). A negative limit (-1) is unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaLimits {
    pub containers: i64,
    pub cpu: i64,
    pub memory: i64,
    pub disk: i64,
}

impl QuotaLimits {
    /// No limit on anything.
    pub const UNLIMITED: Self = Self {
        containers: -1,
        cpu: -1,
        memory: -1,
        disk: -1,
    };

    /// Upstream's `[quota]` defaults.
    pub const UPSTREAM_DEFAULTS: Self = Self {
        containers: 40,
        cpu: 20,
        memory: 50 * 1024,
        disk: 100,
    };

    /// Whether no limit applies at all: then nothing needs counting.
    pub fn is_unlimited(&self) -> bool {
        [self.containers, self.cpu, self.memory, self.disk]
            .iter()
            .all(|limit| *limit < 0)
    }

    /// The limit of `resource` (`containers`, `cpu`, `memory`, `disk`).
    pub fn get(&self, resource: &str) -> Option<i64> {
        match resource {
            "containers" => Some(self.containers),
            "cpu" => Some(self.cpu),
            "memory" => Some(self.memory),
            "disk" => Some(self.disk),
            _ => None,
        }
    }

    /// `self` with each row (resource → limit) replacing its resource's
    /// limit; rows naming no known resource are ignored. This is how limits
    /// resolve: project rows over class `default` rows over the configured
    /// defaults.
    pub fn overridden_by(mut self, rows: &BTreeMap<String, i64>) -> Self {
        for (resource, &limit) in rows {
            match resource.as_str() {
                "containers" => self.containers = limit,
                "cpu" => self.cpu = limit,
                "memory" => self.memory = limit,
                "disk" => self.disk = limit,
                _ => {}
            }
        }
        self
    }

    /// The resources `usage` exceeds, sorted by name as upstream lists
    /// them (containers, cpu, disk, memory). Negative limits never are.
    pub fn exceeded_by(&self, usage: &QuotaUsage) -> Vec<&'static str> {
        let mut over = Vec::new();
        if self.containers >= 0 && usage.containers > self.containers {
            over.push("containers");
        }
        if self.cpu >= 0 && cpu_exceeds(usage.cpu, self.cpu) {
            over.push("cpu");
        }
        if self.disk >= 0 && usage.disk > self.disk {
            over.push("disk");
        }
        if self.memory >= 0 && usage.memory > self.memory {
            over.push("memory");
        }
        over
    }

    /// 403 `over-quota` naming every resource `usage` exceeds.
    pub fn check(&self, usage: &QuotaUsage) -> Result<(), ApiError> {
        let over = self.exceeded_by(usage);
        if over.is_empty() {
            Ok(())
        } else {
            Err(ApiError::over_quota(&over))
        }
    }
}

/// Whether a (fractional) cpu total is over an integer limit, ignoring
/// floating-point noise as upstream's `is_less_than` does.
fn cpu_exceeds(total: f64, limit: i64) -> bool {
    let limit = limit as f64;
    total > limit && (total - limit) > 1e-9 * total.abs().max(limit.abs())
}

/// Rounds a cpu total to 3 decimal places, as upstream counts it.
pub fn round_cpu(total: f64) -> f64 {
    (total * 1000.0).round() / 1000.0
}

/// What a project's containers hold: their number and the sums of their
/// cpu (rounded to 3 dp), memory (MiB) and disk (GiB).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct QuotaUsage {
    pub containers: i64,
    pub cpu: f64,
    pub memory: i64,
    pub disk: i64,
}

impl QuotaUsage {
    /// This usage with `container` counted too.
    pub fn with(self, container: &Container) -> Self {
        let memory = container
            .memory
            .as_deref()
            .and_then(|m| m.trim().parse::<i64>().ok())
            .unwrap_or(0);
        Self {
            containers: self.containers.saturating_add(1),
            cpu: round_cpu(self.cpu + container.cpu.unwrap_or(0.0)),
            memory: self.memory.saturating_add(memory),
            disk: self.disk.saturating_add(container.disk),
        }
    }
}

/// What a websocket token lets its bearer reach: one container of one
/// project (its main process, or one exec instance), until `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebsocketGrant {
    pub container_uuid: String,
    pub project_id: String,
    /// `None` for an attach.
    pub exec_id: Option<String>,
    pub expires_at: DateTime<Utc>,
}

/// A change to one container, applied atomically. It may run more than once
/// when a concurrent writer wins, so it must only look at its argument.
pub type Mutation<'a> = &'a (dyn Fn(&mut Container) -> Result<(), ApiError> + Send + Sync);

/// Everything the service keeps: containers, their action log, quotas and
/// websocket grants here; registries, images, hosts, networks and volumes
/// in their own traits.
#[async_trait]
pub trait Store:
    RegistryStore + ImageStore + HostStore + NetworkStore + VolumeStore + Send + Sync + 'static
{
    /// Inserts the container and its first action in one transaction. With
    /// `limits`, the same transaction first counts the project's usage and
    /// refuses ([`StoreError::Rejected`] with a 403 `over-quota`, nothing
    /// written) when that usage plus this container exceeds any limit; the
    /// check and the insert are atomic, so concurrent creates cannot
    /// overshoot a quota together.
    async fn insert_container(
        &self,
        container: &Container,
        action: &NewAction,
        limits: Option<&QuotaLimits>,
    ) -> Result<ActionRecord, StoreError> {
        self.insert_placed_container(container, action, limits, None)
            .await
    }

    /// [`Store::insert_container`] that, with `placement`, also claims the
    /// container's host in the same transaction: the host as it is then
    /// (its node, service and the containers already on it) must pass
    /// `placement.fits`, else [`StoreError::NoRoom`] and nothing written.
    /// Concurrent placements on one host are serialised, so none
    /// over-commits it.
    async fn insert_placed_container(
        &self,
        container: &Container,
        action: &NewAction,
        limits: Option<&QuotaLimits>,
        placement: Option<&Placement<'_>>,
    ) -> Result<ActionRecord, StoreError> {
        self.insert_placed_group(container, &[], action, limits, placement)
            .await
    }

    /// [`Store::insert_placed_container`] of a capsule with its `members`,
    /// all in one transaction: the capsule's row is the one placed, checked
    /// and claiming volumes; the members are inserted beside it.
    async fn insert_placed_group(
        &self,
        container: &Container,
        members: &[Container],
        action: &NewAction,
        limits: Option<&QuotaLimits>,
        placement: Option<&Placement<'_>>,
    ) -> Result<ActionRecord, StoreError>;

    /// A capsule's members, in insert order (init containers first).
    async fn capsule_members(&self, capsule_uuid: &str) -> Result<Vec<Container>, StoreError>;

    async fn get_container(&self, uuid: &str) -> Result<Option<Container>, StoreError>;

    /// Containers named `name`, in `project_id` when given.
    async fn find_containers_by_name(
        &self,
        name: &str,
        project_id: Option<&str>,
    ) -> Result<Vec<Container>, StoreError>;

    async fn list_containers(&self, query: &ListQuery) -> Result<Vec<Container>, StoreError>;

    /// Every container placed on `host`.
    async fn containers_on_host(&self, host: &str) -> Result<Vec<Container>, StoreError>;

    /// Applies `mutate` atomically (compare-and-swap on a revision, retried)
    /// and, in the same transaction, records `action` when given. Returns the
    /// stored result, or [`StoreError::Rejected`] with the mutation's error.
    async fn update_container(
        &self,
        uuid: &str,
        mutate: Mutation<'_>,
        action: Option<&NewAction>,
    ) -> Result<(Container, Option<ActionRecord>), StoreError> {
        self.update_container_checked(uuid, mutate, action, None)
            .await
    }

    /// [`Store::update_container`] that, with `limits`, also checks in the
    /// same transaction that the project's usage with the mutated container
    /// (its new cpu, memory, disk) stays within every limit; otherwise
    /// [`StoreError::Rejected`] with a 403 `over-quota` and nothing written.
    async fn update_container_checked(
        &self,
        uuid: &str,
        mutate: Mutation<'_>,
        action: Option<&NewAction>,
        limits: Option<&QuotaLimits>,
    ) -> Result<(Container, Option<ActionRecord>), StoreError>;

    /// Removes the row (a capsule's with its members) and, in the same
    /// transaction, its network ports (so no address outlives its
    /// container); its action log is kept. Returns whether the row existed.
    async fn delete_container(&self, uuid: &str) -> Result<bool, StoreError>;

    async fn list_actions(&self, container_uuid: &str) -> Result<Vec<ActionRecord>, StoreError>;

    async fn get_action(
        &self,
        container_uuid: &str,
        request_id: &str,
    ) -> Result<Option<(ActionRecord, Vec<EventRecord>)>, StoreError>;

    /// Unfinished actions for containers on `host`, oldest first.
    async fn pending_actions(&self, host: &str) -> Result<Vec<ActionRecord>, StoreError>;

    async fn start_event(&self, action_id: i64, event: &str) -> Result<(), StoreError>;

    async fn finish_event(
        &self,
        action_id: i64,
        event: &str,
        result: &str,
        traceback: Option<&str>,
    ) -> Result<(), StoreError>;

    /// Marks the action done; `message` is `None` on success or `"Error"`.
    async fn finish_action(&self, action_id: i64, message: Option<&str>) -> Result<(), StoreError>;

    /// The quota rows of `project_id` (resource → limit); resources without
    /// a row are absent.
    async fn project_quotas(&self, project_id: &str) -> Result<BTreeMap<String, i64>, StoreError>;

    /// Sets (creating or replacing) one quota row of `project_id`.
    async fn set_project_quota(
        &self,
        project_id: &str,
        resource: &str,
        limit: i64,
    ) -> Result<(), StoreError>;

    /// Removes every quota row of `project_id`, so it reverts to the
    /// defaults.
    async fn delete_project_quotas(&self, project_id: &str) -> Result<(), StoreError>;

    /// The rows of quota class `class` (resource → limit).
    async fn quota_class(&self, class: &str) -> Result<BTreeMap<String, i64>, StoreError>;

    /// Sets (creating or replacing) one row of quota class `class`.
    async fn set_quota_class(
        &self,
        class: &str,
        resource: &str,
        limit: i64,
    ) -> Result<(), StoreError>;

    /// What the containers of `project_id` hold now.
    async fn usage(&self, project_id: &str) -> Result<QuotaUsage, StoreError>;

    /// Records a websocket grant under the SHA-256 (hex) of its token.
    /// Expired grants are purged on the way.
    async fn insert_websocket_grant(
        &self,
        token_sha256: &str,
        grant: &WebsocketGrant,
    ) -> Result<(), StoreError>;

    /// Removes and returns the grant recorded under `token_sha256`: a token
    /// works once, whatever the caller then decides. The caller checks the
    /// expiry and what the grant is bound to.
    async fn take_websocket_grant(
        &self,
        token_sha256: &str,
    ) -> Result<Option<WebsocketGrant>, StoreError>;

    /// Resolves when new actions or image tasks may be pending for `host`,
    /// or after `timeout`. A spurious wake-up is harmless.
    async fn wait_for_work(&self, host: &str, timeout: Duration);
}
