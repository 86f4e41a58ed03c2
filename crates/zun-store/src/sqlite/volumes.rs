//! Volumes on SQLite; the statements and rows are shared (`crate::sql`).

use async_trait::async_trait;
use sqlx::SqliteConnection;
use zun_types::Container;
use zun_types::volume::{Mount, VolumeRecord};

use super::SqliteStore;
use crate::sql::{self, VolumeRow};
use crate::{StoreError, VolumeStore};

/// Inside a placed container's insert: inserts the volumes its mounts make
/// and claims the ones they name, on its host. Anything not free refuses
/// the whole insert.
pub(super) async fn claim_volumes(
    conn: &mut SqliteConnection,
    container: &Container,
) -> Result<(), StoreError> {
    for mount in &container.mounts {
        let Mount::Volume { volume, .. } = mount else {
            continue;
        };
        let done = if volume.new {
            let record = VolumeRecord::made_for(volume, container);
            sql::bind_volume(sqlx::query(&sql::insert_volume_sql()), &record)
                .execute(&mut *conn)
                .await?
        } else {
            sqlx::query(sql::CLAIM_VOLUME)
                .bind(&container.uuid)
                .bind(&volume.uuid)
                .bind(&container.project_id)
                .bind(&container.host)
                .execute(&mut *conn)
                .await?
        };
        if done.rows_affected() == 0 {
            return Err(sql::volume_unavailable(volume));
        }
    }
    Ok(())
}

/// Inside a container's delete: removes the volumes made for it and frees
/// the others.
pub(super) async fn release_volumes(
    conn: &mut SqliteConnection,
    container_uuid: &str,
) -> Result<(), StoreError> {
    sqlx::query(sql::DELETE_CONTAINER_VOLUMES)
        .bind(container_uuid)
        .execute(&mut *conn)
        .await?;
    sqlx::query(sql::RELEASE_VOLUMES)
        .bind(container_uuid)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

#[async_trait]
impl VolumeStore for SqliteStore {
    async fn get_volume(&self, uuid: &str) -> Result<Option<VolumeRecord>, StoreError> {
        let row: Option<VolumeRow> = sqlx::query_as(&sql::volume_sql())
            .bind(uuid)
            .fetch_optional(&self.pool)
            .await?;
        row.map(VolumeRecord::try_from).transpose()
    }

    async fn find_volume(
        &self,
        project_id: &str,
        name: &str,
    ) -> Result<Option<VolumeRecord>, StoreError> {
        let row: Option<VolumeRow> = sqlx::query_as(&sql::volume_by_name_sql())
            .bind(project_id)
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.map(VolumeRecord::try_from).transpose()
    }

    async fn volumes_on_host(&self, host: &str) -> Result<Vec<VolumeRecord>, StoreError> {
        let rows: Vec<VolumeRow> = sqlx::query_as(&sql::volumes_on_host_sql())
            .bind(host)
            .fetch_all(&self.pool)
            .await?;
        sql::convert(rows)
    }
}
