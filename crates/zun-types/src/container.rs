//! The container record as the store keeps it. The API writes desired state
//! and what the user asked for; the agent writes what the engine reports.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Upstream's `ContainerStatus` (reference §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ContainerStatus {
    Error,
    Running,
    Stopped,
    Paused,
    Unknown,
    Creating,
    Created,
    Deleted,
    Deleting,
    Rebuilding,
    Dead,
    Restarting,
}

impl ContainerStatus {
    pub const ALL: [ContainerStatus; 12] = [
        Self::Error,
        Self::Running,
        Self::Stopped,
        Self::Paused,
        Self::Unknown,
        Self::Creating,
        Self::Created,
        Self::Deleted,
        Self::Deleting,
        Self::Rebuilding,
        Self::Dead,
        Self::Restarting,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Error => "Error",
            Self::Running => "Running",
            Self::Stopped => "Stopped",
            Self::Paused => "Paused",
            Self::Unknown => "Unknown",
            Self::Creating => "Creating",
            Self::Created => "Created",
            Self::Deleted => "Deleted",
            Self::Deleting => "Deleting",
            Self::Rebuilding => "Rebuilding",
            Self::Dead => "Dead",
            Self::Restarting => "Restarting",
        }
    }
}

impl fmt::Display for ContainerStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ContainerStatus {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Self::ALL.into_iter().find(|v| v.as_str() == s).ok_or(())
    }
}

/// Upstream's `task_state` values used by this service (reference §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    ImagePulling,
    ContainerCreating,
    ContainerStarting,
    ContainerDeleting,
    ContainerStopping,
    ContainerRebooting,
    ContainerPausing,
    ContainerUnpausing,
    ContainerKilling,
    ContainerRebuilding,
}

impl TaskState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ImagePulling => "image_pulling",
            Self::ContainerCreating => "container_creating",
            Self::ContainerStarting => "container_starting",
            Self::ContainerDeleting => "container_deleting",
            Self::ContainerStopping => "container_stopping",
            Self::ContainerRebooting => "container_rebooting",
            Self::ContainerPausing => "container_pausing",
            Self::ContainerUnpausing => "container_unpausing",
            Self::ContainerKilling => "container_killing",
            Self::ContainerRebuilding => "container_rebuilding",
        }
    }
}

/// `{"Name": ..., "MaximumRetryCount": ...}`, both strings on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestartPolicy {
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "MaximumRetryCount")]
    pub maximum_retry_count: String,
}

/// What the user wants the engine to hold for this container. Transient
/// statuses are derived from the gap between this and what is observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DesiredState {
    Created,
    Running,
    Stopped,
    Paused,
    Deleted,
}

/// What a row of the containers table is: a container of the container API,
/// a capsule (Zun's pod: the unit that is placed, holds the network and the
/// volumes, and has no engine container of its own), or a member of one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    #[default]
    Container,
    Capsule,
    Member,
}

impl RecordKind {
    /// The store's `kind` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Container => "container",
            Self::Capsule => "capsule",
            Self::Member => "member",
        }
    }
}

/// Where a member sits in its capsule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapsuleMember {
    pub capsule_uuid: String,
    /// An init container: runs to completion, in order, before the others.
    pub init: bool,
    /// Its position in the template's list (`initContainers` or `containers`).
    pub index: u32,
    /// The name the template gave it, if any (the record's own name is the
    /// generated `capsule-<capsule>-<name>`).
    pub template_name: Option<String>,
}

/// One container row. Field names follow upstream's object so the view is a
/// projection, not a translation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Container {
    pub uuid: String,
    pub name: String,
    pub project_id: String,
    pub user_id: String,
    pub image: String,
    pub image_driver: Option<String>,
    pub image_pull_policy: Option<String>,
    pub command: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    pub cpu: Option<f64>,
    pub cpu_policy: Option<String>,
    /// MiB as a decimal string, as upstream stores it.
    pub memory: Option<String>,
    pub disk: i64,
    pub workdir: Option<String>,
    pub environment: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    pub hostname: Option<String>,
    pub restart_policy: Option<RestartPolicy>,
    pub interactive: bool,
    pub tty: bool,
    pub auto_remove: bool,
    pub auto_heal: bool,
    pub privileged: bool,
    pub runtime: Option<String>,
    pub healthcheck: Option<serde_json::Value>,
    pub security_groups: Option<Vec<String>>,
    /// The networks asked for at create (`nets`), each resolved to a
    /// network's uuid by the API; empty: the project's default network.
    #[serde(default)]
    pub nets: Vec<crate::network::RequestedNetwork>,
    /// Volumes and injected files (`mounts`), as validated and resolved by
    /// the API.
    #[serde(default)]
    pub mounts: Vec<crate::volume::Mount>,
    pub exposed_ports: Option<serde_json::Value>,
    pub hints: Option<serde_json::Value>,
    pub availability_zone: Option<String>,
    pub registry_id: Option<String>,
    pub host: Option<String>,

    pub status: ContainerStatus,
    pub status_reason: Option<String>,
    pub status_detail: Option<String>,
    pub task_state: Option<TaskState>,
    pub desired_state: DesiredState,
    /// Engine-side id once the agent has created it.
    pub container_id: Option<String>,
    pub ports: Option<Vec<u16>>,
    pub addresses: Option<serde_json::Value>,

    pub created_at: DateTime<Utc>,
    pub updated_at: Option<DateTime<Utc>>,

    #[serde(default)]
    pub kind: RecordKind,
    /// Set on a capsule's members.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capsule: Option<CapsuleMember>,
    /// A capsule's annotations (1.38); containers have none on the wire.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Container {
    /// A record with nothing but its identity and image: no limits, no
    /// options, `Creating` on no host, to be created but not started.
    /// Callers set the rest with struct update syntax.
    pub fn new(
        uuid: impl Into<String>,
        name: impl Into<String>,
        project_id: impl Into<String>,
        user_id: impl Into<String>,
        image: impl Into<String>,
    ) -> Self {
        Self {
            uuid: uuid.into(),
            name: name.into(),
            project_id: project_id.into(),
            user_id: user_id.into(),
            image: image.into(),
            image_driver: None,
            image_pull_policy: None,
            command: None,
            entrypoint: None,
            cpu: None,
            cpu_policy: None,
            memory: None,
            disk: 0,
            workdir: None,
            environment: BTreeMap::new(),
            labels: BTreeMap::new(),
            hostname: None,
            restart_policy: None,
            interactive: false,
            tty: false,
            auto_remove: false,
            auto_heal: false,
            privileged: false,
            runtime: None,
            healthcheck: None,
            security_groups: None,
            nets: Vec::new(),
            mounts: Vec::new(),
            exposed_ports: None,
            hints: None,
            availability_zone: None,
            registry_id: None,
            host: None,
            status: ContainerStatus::Creating,
            status_reason: None,
            status_detail: None,
            task_state: None,
            desired_state: DesiredState::Created,
            container_id: None,
            ports: None,
            addresses: None,
            created_at: Utc::now(),
            updated_at: None,
            kind: RecordKind::Container,
            capsule: None,
            annotations: BTreeMap::new(),
        }
    }

    /// The engine-side name, `zun-<uuid>` as upstream names it.
    pub fn engine_name(&self) -> String {
        format!("zun-{}", self.uuid)
    }
}
