//! The store is the source of truth (DESIGN decision 2). The API writes
//! desired state and an action record in one transaction; agents read the
//! pending actions of their host and write back what the engine reports.

mod sqlite;

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use zun_types::{ApiError, Container};

pub use sqlite::SqliteStore;

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

/// A change to one container, applied atomically. It may run more than once
/// when a concurrent writer wins, so it must only look at its argument.
pub type Mutation<'a> = &'a (dyn Fn(&mut Container) -> Result<(), ApiError> + Send + Sync);

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Inserts the container and its first action in one transaction.
    async fn insert_container(
        &self,
        container: &Container,
        action: &NewAction,
    ) -> Result<ActionRecord, StoreError>;

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
    ) -> Result<(Container, Option<ActionRecord>), StoreError>;

    /// Removes the row; its action log is kept. Returns whether it existed.
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

    /// Resolves when new actions may be pending for some host, or after
    /// `timeout`. Wakes every waiter; a spurious wake-up is harmless.
    async fn wait_for_work(&self, timeout: Duration);
}
