//! Volumes of the `mounts` API (`zun_types::volume`). A container's insert
//! claims the volumes it mounts (or inserts the ones it makes) in the same
//! transaction, and its delete releases them, removing those made for it:
//! a volume never serves two containers, and none outlives its claim
//! unnoticed.

use async_trait::async_trait;
use zun_types::volume::VolumeRecord;

use crate::StoreError;

#[async_trait]
pub trait VolumeStore: Send + Sync {
    async fn get_volume(&self, uuid: &str) -> Result<Option<VolumeRecord>, StoreError>;

    /// The volume of `project_id` named `name`, if any (names are unique in
    /// a project).
    async fn find_volume(
        &self,
        project_id: &str,
        name: &str,
    ) -> Result<Option<VolumeRecord>, StoreError>;

    /// Every volume whose data is on `host`.
    async fn volumes_on_host(&self, host: &str) -> Result<Vec<VolumeRecord>, StoreError>;
}
