//! Registries and images on PostgreSQL.

use async_trait::async_trait;
use sqlx::Postgres;
use zun_types::ApiError;
use zun_types::image::{Image, ImageTask, Registry};

use super::{BEGIN_SNAPSHOT, LOCK, NOTIFY, PgStore, REGISTRY_LOCK};
use crate::sql::{self, ImageRow, RegistryRow, format_time};
use crate::{ImageListQuery, ImageStore, RegistryListQuery, RegistryStore, StoreError};

#[async_trait]
impl RegistryStore for PgStore {
    async fn insert_registry(&self, r: &Registry) -> Result<(), StoreError> {
        sqlx::query(&sql::insert_registry_sql())
            .bind(&r.uuid)
            .bind(&r.name)
            .bind(&r.domain)
            .bind(&r.username)
            .bind(&r.password_sealed)
            .bind(&r.project_id)
            .bind(&r.user_id)
            .bind(format_time(&r.created_at))
            .bind(r.updated_at.as_ref().map(format_time))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn get_registry(&self, uuid: &str) -> Result<Option<Registry>, StoreError> {
        let row: Option<RegistryRow> = sqlx::query_as(&sql::get_registry_sql())
            .bind(uuid)
            .fetch_optional(&self.pool)
            .await?;
        row.map(Registry::try_from).transpose()
    }

    async fn find_registries_by_name(
        &self,
        name: &str,
        project_id: Option<&str>,
    ) -> Result<Vec<Registry>, StoreError> {
        let rows: Vec<RegistryRow> = sqlx::query_as(&sql::find_registries_sql())
            .bind(name)
            .bind(project_id)
            .fetch_all(&self.pool)
            .await?;
        sql::convert(rows)
    }

    async fn list_registries(
        &self,
        query: &RegistryListQuery,
    ) -> Result<Vec<Registry>, StoreError> {
        let mut tx = self.pool.begin_with(BEGIN_SNAPSHOT).await?;
        let marker_id = Self::marker_id(
            &mut tx,
            "registries",
            query.marker.as_deref(),
            query.project_id.as_deref(),
        )
        .await?;
        let mut page = sql::registry_page::<Postgres>(query, marker_id)?;
        let rows = page
            .build_query_as::<RegistryRow>()
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        sql::convert(rows)
    }

    async fn update_registry(&self, r: &Registry) -> Result<bool, StoreError> {
        let done = sqlx::query(sql::UPDATE_REGISTRY)
            .bind(&r.name)
            .bind(&r.domain)
            .bind(&r.username)
            .bind(&r.password_sealed)
            .bind(r.updated_at.as_ref().map(format_time))
            .bind(&r.uuid)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_registry(&self, uuid: &str) -> Result<bool, StoreError> {
        // Container writes that reference the registry hold its lock
        // shared: with it exclusive, none can start using the registry
        // between the check and the delete, and one that committed before
        // is seen by the check (READ COMMITTED reads the latest commit).
        let mut tx = self.pool.begin().await?;
        sqlx::query(LOCK)
            .bind(REGISTRY_LOCK)
            .bind(uuid)
            .execute(&mut *tx)
            .await?;
        let in_use: Option<i64> = sqlx::query_scalar(sql::REGISTRY_IN_USE)
            .bind(uuid)
            .fetch_optional(&mut *tx)
            .await?;
        if in_use.is_some() {
            return Err(StoreError::Rejected(ApiError::conflict(format!(
                "Failed to delete registry {uuid} since it is in use."
            ))));
        }
        let done = sqlx::query(sql::DELETE_REGISTRY)
            .bind(uuid)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }
}

#[async_trait]
impl ImageStore for PgStore {
    async fn insert_image(&self, i: &Image) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(&sql::insert_image_sql())
            .bind(&i.uuid)
            .bind(&i.image_id)
            .bind(&i.repo)
            .bind(&i.tag)
            .bind(&i.size)
            .bind(&i.host)
            .bind(&i.project_id)
            .bind(&i.user_id)
            .bind(i.task.map(ImageTask::as_str))
            .bind(format_time(&i.created_at))
            .bind(i.updated_at.as_ref().map(format_time))
            .execute(&mut *tx)
            .await?;
        if i.task.is_some() {
            // Sent on commit only, to the agents of every process.
            sqlx::query(NOTIFY).bind(&i.host).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        if i.task.is_some() {
            self.wake_workers(Some(&i.host));
        }
        Ok(())
    }

    async fn get_image(&self, uuid: &str) -> Result<Option<Image>, StoreError> {
        let row: Option<ImageRow> = sqlx::query_as(&sql::get_image_sql())
            .bind(uuid)
            .fetch_optional(&self.pool)
            .await?;
        row.map(Image::try_from).transpose()
    }

    async fn list_images(&self, query: &ImageListQuery) -> Result<Vec<Image>, StoreError> {
        let mut tx = self.pool.begin_with(BEGIN_SNAPSHOT).await?;
        let marker_id = Self::marker_id(&mut tx, "images", query.marker.as_deref(), None).await?;
        let mut page = sql::image_page::<Postgres>(query, marker_id)?;
        let rows = page
            .build_query_as::<ImageRow>()
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        sql::convert(rows)
    }

    async fn image_tasks(&self, host: &str) -> Result<Vec<Image>, StoreError> {
        let rows: Vec<ImageRow> = sqlx::query_as(&sql::image_tasks_sql())
            .bind(host)
            .fetch_all(&self.pool)
            .await?;
        sql::convert(rows)
    }

    async fn update_image_if(
        &self,
        i: &Image,
        expected_task: Option<ImageTask>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(sql::UPDATE_IMAGE_IF)
            .bind(&i.image_id)
            .bind(&i.repo)
            .bind(&i.tag)
            .bind(&i.size)
            .bind(i.task.map(ImageTask::as_str))
            .bind(i.updated_at.as_ref().map(format_time))
            .bind(&i.uuid)
            .bind(expected_task.map(ImageTask::as_str))
            .execute(&mut *tx)
            .await?;
        let wake = done.rows_affected() > 0 && i.task.is_some();
        if wake {
            sqlx::query(NOTIFY).bind(&i.host).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        if wake {
            self.wake_workers(Some(&i.host));
        }
        Ok(done.rows_affected() > 0)
    }

    async fn delete_image(&self, uuid: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(sql::DELETE_IMAGE)
            .bind(uuid)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}
