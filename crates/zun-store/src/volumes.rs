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

    /// The volumes of `project_id`, oldest first.
    async fn list_volumes(&self, project_id: &str) -> Result<Vec<VolumeRecord>, StoreError>;

    /// Deletes a volume no container uses (its host's agent then removes
    /// its data); [`StoreError::Rejected`] with upstream's `VolumeInUse`
    /// when one does. False when there is no such volume.
    async fn delete_volume(&self, uuid: &str) -> Result<bool, StoreError>;
}

/// The volume statements of one backend (`$store` over `$conn`): the same
/// for SQLite and PostgreSQL but for their connection types, since the
/// claims run inside each backend's own insert and delete transactions.
macro_rules! backend_volumes {
    ($store:ty, $conn:ty) => {
        /// Inside a placed container's insert: inserts the volumes its mounts make
        /// and claims the ones they name, on its host. Anything not free refuses
        /// the whole insert.
        pub(super) async fn claim_volumes(
            conn: &mut $conn,
            container: &zun_types::Container,
        ) -> Result<(), $crate::StoreError> {
            for mount in &container.mounts {
                let zun_types::volume::Mount::Volume { volume, .. } = mount else {
                    continue;
                };
                let done = if volume.new {
                    let record = zun_types::volume::VolumeRecord::made_for(volume, container);
                    $crate::sql::bind_volume(
                        sqlx::query(&$crate::sql::insert_volume_sql()),
                        &record,
                    )
                    .execute(&mut *conn)
                    .await?
                } else {
                    sqlx::query($crate::sql::CLAIM_VOLUME)
                        .bind(&container.uuid)
                        .bind(&volume.uuid)
                        .bind(&container.project_id)
                        .bind(&container.host)
                        .execute(&mut *conn)
                        .await?
                };
                if done.rows_affected() == 0 {
                    return Err($crate::sql::volume_unavailable(volume));
                }
            }
            Ok(())
        }

        /// Inside a container's delete: removes the volumes made for it and frees
        /// the others.
        pub(super) async fn release_volumes(
            conn: &mut $conn,
            container_uuid: &str,
        ) -> Result<(), $crate::StoreError> {
            sqlx::query($crate::sql::DELETE_CONTAINER_VOLUMES)
                .bind(container_uuid)
                .execute(&mut *conn)
                .await?;
            sqlx::query($crate::sql::RELEASE_VOLUMES)
                .bind(container_uuid)
                .execute(&mut *conn)
                .await?;
            Ok(())
        }

        #[async_trait::async_trait]
        impl $crate::VolumeStore for $store {
            async fn get_volume(
                &self,
                uuid: &str,
            ) -> Result<Option<zun_types::volume::VolumeRecord>, $crate::StoreError> {
                let row: Option<$crate::sql::VolumeRow> =
                    sqlx::query_as(&$crate::sql::volume_sql())
                        .bind(uuid)
                        .fetch_optional(&self.pool)
                        .await?;
                row.map(zun_types::volume::VolumeRecord::try_from)
                    .transpose()
            }

            async fn find_volume(
                &self,
                project_id: &str,
                name: &str,
            ) -> Result<Option<zun_types::volume::VolumeRecord>, $crate::StoreError> {
                let row: Option<$crate::sql::VolumeRow> =
                    sqlx::query_as(&$crate::sql::volume_by_name_sql())
                        .bind(project_id)
                        .bind(name)
                        .fetch_optional(&self.pool)
                        .await?;
                row.map(zun_types::volume::VolumeRecord::try_from)
                    .transpose()
            }

            async fn volumes_on_host(
                &self,
                host: &str,
            ) -> Result<Vec<zun_types::volume::VolumeRecord>, $crate::StoreError> {
                let rows: Vec<$crate::sql::VolumeRow> =
                    sqlx::query_as(&$crate::sql::volumes_on_host_sql())
                        .bind(host)
                        .fetch_all(&self.pool)
                        .await?;
                $crate::sql::convert(rows)
            }

            async fn list_volumes(
                &self,
                project_id: &str,
            ) -> Result<Vec<zun_types::volume::VolumeRecord>, $crate::StoreError> {
                let rows: Vec<$crate::sql::VolumeRow> =
                    sqlx::query_as(&$crate::sql::volumes_of_project_sql())
                        .bind(project_id)
                        .fetch_all(&self.pool)
                        .await?;
                $crate::sql::convert(rows)
            }

            async fn delete_volume(&self, uuid: &str) -> Result<bool, $crate::StoreError> {
                let done = sqlx::query($crate::sql::DELETE_FREE_VOLUME)
                    .bind(uuid)
                    .execute(&self.pool)
                    .await?;
                if done.rows_affected() > 0 {
                    return Ok(true);
                }
                match self.get_volume(uuid).await? {
                    Some(_) => Err($crate::StoreError::Rejected(
                        zun_types::volume::volume_in_use(uuid),
                    )),
                    None => Ok(false),
                }
            }
        }
    };
}

pub(crate) use backend_volumes;
