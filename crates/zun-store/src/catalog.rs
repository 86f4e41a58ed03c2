//! Registries and images: what the store keeps besides containers.

use async_trait::async_trait;
use zun_types::image::{Image, ImageTask, Registry};

use crate::{SortDir, StoreError};

/// Columns a registry list may be sorted by.
pub const REGISTRY_SORT_KEYS: &[&str] = &[
    "id",
    "uuid",
    "name",
    "domain",
    "username",
    "project_id",
    "user_id",
    "created_at",
    "updated_at",
];

/// Exact-match filters of the registry list (reference §7.7).
pub const REGISTRY_FILTER_KEYS: &[&str] = &["name", "domain", "username", "project_id", "user_id"];

/// Columns an image list may be sorted by.
pub const IMAGE_SORT_KEYS: &[&str] = &[
    "id",
    "uuid",
    "image_id",
    "repo",
    "tag",
    "size",
    "host",
    "project_id",
    "user_id",
    "created_at",
    "updated_at",
];

#[derive(Debug, Clone)]
pub struct RegistryListQuery {
    /// `None` lists every project's registries (admin with `all_projects`).
    pub project_id: Option<String>,
    /// (column from [`REGISTRY_FILTER_KEYS`], exact value).
    pub filters: Vec<(String, String)>,
    pub limit: u32,
    /// uuid of the last row of the previous page.
    pub marker: Option<String>,
    /// A column from [`REGISTRY_SORT_KEYS`]; `id` is the secondary key.
    pub sort_key: String,
    pub sort_dir: SortDir,
}

#[derive(Debug, Clone)]
pub struct ImageListQuery {
    pub limit: u32,
    pub marker: Option<String>,
    /// A column from [`IMAGE_SORT_KEYS`]; `id` is the secondary key.
    pub sort_key: String,
    pub sort_dir: SortDir,
}

#[async_trait]
pub trait RegistryStore: Send + Sync {
    async fn insert_registry(&self, registry: &Registry) -> Result<(), StoreError>;

    async fn get_registry(&self, uuid: &str) -> Result<Option<Registry>, StoreError>;

    /// Registries named `name`, in `project_id` when given.
    async fn find_registries_by_name(
        &self,
        name: &str,
        project_id: Option<&str>,
    ) -> Result<Vec<Registry>, StoreError>;

    async fn list_registries(&self, query: &RegistryListQuery)
    -> Result<Vec<Registry>, StoreError>;

    /// Replaces the stored row's name, domain, username, sealed password
    /// and update time. Returns whether the row existed.
    async fn update_registry(&self, registry: &Registry) -> Result<bool, StoreError>;

    /// Removes the registry unless a container still uses it (then
    /// [`StoreError::Rejected`] with upstream's 409), atomically. Returns
    /// whether it existed.
    async fn delete_registry(&self, uuid: &str) -> Result<bool, StoreError>;
}

#[async_trait]
pub trait ImageStore: Send + Sync {
    /// Records an image; one with a task wakes the agents.
    async fn insert_image(&self, image: &Image) -> Result<(), StoreError>;

    async fn get_image(&self, uuid: &str) -> Result<Option<Image>, StoreError>;

    async fn list_images(&self, query: &ImageListQuery) -> Result<Vec<Image>, StoreError>;

    /// Images on `host` with a task, oldest first.
    async fn image_tasks(&self, host: &str) -> Result<Vec<Image>, StoreError>;

    /// Writes `image` over the stored row only while the stored task is
    /// still `expected_task` (so a delete asked for during a pull is not
    /// lost when the pull finishes). Returns whether it was written.
    async fn update_image_if(
        &self,
        image: &Image,
        expected_task: Option<ImageTask>,
    ) -> Result<bool, StoreError>;

    /// Removes the row. Returns whether it existed.
    async fn delete_image(&self, uuid: &str) -> Result<bool, StoreError>;
}
