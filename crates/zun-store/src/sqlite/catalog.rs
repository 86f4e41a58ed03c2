//! Registries and images on SQLite.

use async_trait::async_trait;
use sqlx::{QueryBuilder, Sqlite};
use zun_types::ApiError;
use zun_types::image::{Image, ImageTask, Registry};

use super::{BEGIN_WRITE, SqliteStore, format_time, parse_time};
use crate::{ImageListQuery, ImageStore, RegistryListQuery, RegistryStore, SortDir, StoreError};

const REGISTRY_COLUMNS: &str = "uuid, name, domain, username, password_sealed, project_id, \
     user_id, created_at, updated_at";

const IMAGE_COLUMNS: &str = "uuid, image_id, repo, tag, size, host, project_id, user_id, task, \
     created_at, updated_at";

#[derive(sqlx::FromRow)]
struct RegistryRow {
    uuid: String,
    name: Option<String>,
    domain: String,
    username: Option<String>,
    password_sealed: Option<String>,
    project_id: String,
    user_id: String,
    created_at: String,
    updated_at: Option<String>,
}

impl TryFrom<RegistryRow> for Registry {
    type Error = StoreError;

    fn try_from(row: RegistryRow) -> Result<Self, StoreError> {
        Ok(Self {
            uuid: row.uuid,
            name: row.name,
            domain: row.domain,
            username: row.username,
            password_sealed: row.password_sealed,
            project_id: row.project_id,
            user_id: row.user_id,
            created_at: parse_time(&row.created_at)?,
            updated_at: row.updated_at.as_deref().map(parse_time).transpose()?,
        })
    }
}

#[derive(sqlx::FromRow)]
struct ImageRow {
    uuid: String,
    image_id: Option<String>,
    repo: String,
    tag: String,
    size: Option<String>,
    host: String,
    project_id: String,
    user_id: String,
    task: Option<String>,
    created_at: String,
    updated_at: Option<String>,
}

impl TryFrom<ImageRow> for Image {
    type Error = StoreError;

    fn try_from(row: ImageRow) -> Result<Self, StoreError> {
        Ok(Self {
            uuid: row.uuid,
            image_id: row.image_id,
            repo: row.repo,
            tag: row.tag,
            size: row.size,
            host: row.host,
            project_id: row.project_id,
            user_id: row.user_id,
            task: row.task.as_deref().and_then(ImageTask::parse),
            created_at: parse_time(&row.created_at)?,
            updated_at: row.updated_at.as_deref().map(parse_time).transpose()?,
        })
    }
}

fn convert<R, T: TryFrom<R, Error = StoreError>>(rows: Vec<R>) -> Result<Vec<T>, StoreError> {
    rows.into_iter().map(T::try_from).collect()
}

/// A sortable column of `table`, as an expression over the page's alias
/// `c`; nullable columns read as '' so the keyset comparison is total.
fn sort_column(key: &str, allowed: &[&str], nullable: &[&str]) -> Option<String> {
    allowed.contains(&key).then(|| {
        if nullable.contains(&key) {
            format!("COALESCE(c.{key}, '')")
        } else {
            format!("c.{key}")
        }
    })
}

/// Appends the keyset condition (rows strictly after the marker row in
/// (sort column, id) order), the ordering and the limit. `column` is over
/// alias `c`; the marker row is read from `table` as alias `m`.
fn push_page(
    sql: &mut QueryBuilder<'_, Sqlite>,
    table: &str,
    column: &str,
    marker_id: Option<i64>,
    dir: SortDir,
    limit: u32,
) {
    let (cmp, order) = match dir {
        SortDir::Asc => (" > ", " ASC"),
        SortDir::Desc => (" < ", " DESC"),
    };
    if let Some(marker_id) = marker_id {
        let of_marker = column.replace("c.", "m.");
        let marker_value = format!("(SELECT {of_marker} FROM {table} m WHERE m.id = ");
        sql.push(" AND (")
            .push(column)
            .push(cmp)
            .push(&marker_value)
            .push_bind(marker_id)
            .push(") OR (")
            .push(column)
            .push(" = ")
            .push(&marker_value)
            .push_bind(marker_id)
            .push(") AND c.id")
            .push(cmp)
            .push_bind(marker_id)
            .push("))");
    }
    sql.push(" ORDER BY ")
        .push(column)
        .push(order)
        .push(", c.id")
        .push(order)
        .push(" LIMIT ")
        .push_bind(i64::from(limit));
}

fn invalid_sort_key(key: &str) -> StoreError {
    StoreError::Rejected(ApiError::invalid(format!("Invalid sort key: {key}")))
}

#[async_trait]
impl RegistryStore for SqliteStore {
    async fn insert_registry(&self, r: &Registry) -> Result<(), StoreError> {
        sqlx::query(&format!(
            "INSERT INTO registries ({REGISTRY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ))
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
        let row: Option<RegistryRow> = sqlx::query_as(&format!(
            "SELECT {REGISTRY_COLUMNS} FROM registries WHERE uuid = ?"
        ))
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
        let mut sql = QueryBuilder::new(format!(
            "SELECT {REGISTRY_COLUMNS} FROM registries WHERE name = "
        ));
        sql.push_bind(name);
        if let Some(project_id) = project_id {
            sql.push(" AND project_id = ").push_bind(project_id);
        }
        sql.push(" ORDER BY id");
        convert(
            sql.build_query_as::<RegistryRow>()
                .fetch_all(&self.pool)
                .await?,
        )
    }

    async fn list_registries(
        &self,
        query: &RegistryListQuery,
    ) -> Result<Vec<Registry>, StoreError> {
        let column = sort_column(
            &query.sort_key,
            crate::REGISTRY_SORT_KEYS,
            &["name", "username", "updated_at"],
        )
        .ok_or_else(|| invalid_sort_key(&query.sort_key))?;
        let mut tx = self.pool.begin().await?;
        let marker_id = match &query.marker {
            None => None,
            Some(marker) => {
                let mut lookup = QueryBuilder::new("SELECT id FROM registries WHERE uuid = ");
                lookup.push_bind(marker.as_str());
                if let Some(project_id) = &query.project_id {
                    lookup
                        .push(" AND project_id = ")
                        .push_bind(project_id.as_str());
                }
                let id: Option<i64> = lookup.build_query_scalar().fetch_optional(&mut *tx).await?;
                Some(id.ok_or_else(|| StoreError::MarkerNotFound(marker.clone()))?)
            }
        };
        let columns = REGISTRY_COLUMNS.replace(", ", ", c.");
        let mut sql =
            QueryBuilder::new(format!("SELECT c.{columns} FROM registries c WHERE 1 = 1"));
        if let Some(project_id) = &query.project_id {
            sql.push(" AND c.project_id = ")
                .push_bind(project_id.as_str());
        }
        for (key, value) in &query.filters {
            if !crate::REGISTRY_FILTER_KEYS.contains(&key.as_str()) {
                return Err(StoreError::Rejected(ApiError::invalid(format!(
                    "Invalid filter: {key}"
                ))));
            }
            // The key is one of the fixed column names checked above.
            sql.push(format!(" AND c.{key} = "))
                .push_bind(value.as_str());
        }
        push_page(
            &mut sql,
            "registries",
            &column,
            marker_id,
            query.sort_dir,
            query.limit,
        );
        let rows = sql
            .build_query_as::<RegistryRow>()
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        convert(rows)
    }

    async fn update_registry(&self, r: &Registry) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE registries SET name = ?, domain = ?, username = ?, password_sealed = ?, \
             updated_at = ? WHERE uuid = ?",
        )
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
        // Holding the write lock, no container can start using it between
        // the check and the delete.
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await?;
        let in_use: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM containers WHERE registry_id = ? LIMIT 1")
                .bind(uuid)
                .fetch_optional(&mut *tx)
                .await?;
        if in_use.is_some() {
            return Err(StoreError::Rejected(ApiError::conflict(format!(
                "Failed to delete registry {uuid} since it is in use."
            ))));
        }
        let done = sqlx::query("DELETE FROM registries WHERE uuid = ?")
            .bind(uuid)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }
}

#[async_trait]
impl ImageStore for SqliteStore {
    async fn insert_image(&self, i: &Image) -> Result<(), StoreError> {
        sqlx::query(&format!(
            "INSERT INTO images ({IMAGE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ))
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
        .execute(&self.pool)
        .await?;
        if i.task.is_some() {
            self.wake_workers();
        }
        Ok(())
    }

    async fn get_image(&self, uuid: &str) -> Result<Option<Image>, StoreError> {
        let row: Option<ImageRow> = sqlx::query_as(&format!(
            "SELECT {IMAGE_COLUMNS} FROM images WHERE uuid = ?"
        ))
        .bind(uuid)
        .fetch_optional(&self.pool)
        .await?;
        row.map(Image::try_from).transpose()
    }

    async fn list_images(&self, query: &ImageListQuery) -> Result<Vec<Image>, StoreError> {
        let column = sort_column(
            &query.sort_key,
            crate::IMAGE_SORT_KEYS,
            &["image_id", "size", "updated_at"],
        )
        .ok_or_else(|| invalid_sort_key(&query.sort_key))?;
        let mut tx = self.pool.begin().await?;
        let marker_id = match &query.marker {
            None => None,
            Some(marker) => {
                let id: Option<i64> = sqlx::query_scalar("SELECT id FROM images WHERE uuid = ?")
                    .bind(marker)
                    .fetch_optional(&mut *tx)
                    .await?;
                Some(id.ok_or_else(|| StoreError::MarkerNotFound(marker.clone()))?)
            }
        };
        let columns = IMAGE_COLUMNS.replace(", ", ", c.");
        let mut sql = QueryBuilder::new(format!("SELECT c.{columns} FROM images c WHERE 1 = 1"));
        push_page(
            &mut sql,
            "images",
            &column,
            marker_id,
            query.sort_dir,
            query.limit,
        );
        let rows = sql.build_query_as::<ImageRow>().fetch_all(&mut *tx).await?;
        tx.commit().await?;
        convert(rows)
    }

    async fn image_tasks(&self, host: &str) -> Result<Vec<Image>, StoreError> {
        let rows: Vec<ImageRow> = sqlx::query_as(&format!(
            "SELECT {IMAGE_COLUMNS} FROM images WHERE host = ? AND task IS NOT NULL ORDER BY id"
        ))
        .bind(host)
        .fetch_all(&self.pool)
        .await?;
        convert(rows)
    }

    async fn update_image_if(
        &self,
        i: &Image,
        expected_task: Option<ImageTask>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE images SET image_id = ?, repo = ?, tag = ?, size = ?, task = ?, \
             updated_at = ? WHERE uuid = ? AND task IS ?",
        )
        .bind(&i.image_id)
        .bind(&i.repo)
        .bind(&i.tag)
        .bind(&i.size)
        .bind(i.task.map(ImageTask::as_str))
        .bind(i.updated_at.as_ref().map(format_time))
        .bind(&i.uuid)
        .bind(expected_task.map(ImageTask::as_str))
        .execute(&self.pool)
        .await?;
        if done.rows_affected() > 0 && i.task.is_some() {
            self.wake_workers();
        }
        Ok(done.rows_affected() > 0)
    }

    async fn delete_image(&self, uuid: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM images WHERE uuid = ?")
            .bind(uuid)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use chrono::{Duration, SubsecRound, Utc};

    use super::*;
    use crate::Store;
    use crate::sqlite::tests::{container, new_action};

    fn registry(i: usize, project: &str) -> Registry {
        Registry {
            uuid: uuid::Uuid::new_v4().to_string(),
            name: (!i.is_multiple_of(4)).then(|| format!("reg{}", i % 3)),
            domain: format!("registry{}.example.com:5000", i % 2),
            username: Some(format!("user{}", i % 5)),
            password_sealed: Some(format!("v1:sealed-{i}")),
            project_id: project.to_owned(),
            user_id: format!("u{}", i % 2),
            created_at: Utc::now().trunc_subsecs(6) + Duration::seconds((i % 7) as i64),
            updated_at: None,
        }
    }

    fn image(i: usize, host: &str, task: Option<ImageTask>) -> Image {
        Image {
            uuid: uuid::Uuid::new_v4().to_string(),
            image_id: None,
            repo: format!("repo{}", i % 3),
            tag: "latest".into(),
            size: None,
            host: host.to_owned(),
            project_id: "p1".into(),
            user_id: "u1".into(),
            task,
            created_at: Utc::now().trunc_subsecs(6),
            updated_at: None,
        }
    }

    fn registry_query(
        project: Option<&str>,
        key: &str,
        dir: SortDir,
        limit: u32,
    ) -> RegistryListQuery {
        RegistryListQuery {
            project_id: project.map(str::to_owned),
            filters: Vec::new(),
            limit,
            marker: None,
            sort_key: key.to_owned(),
            sort_dir: dir,
        }
    }

    #[tokio::test]
    async fn registries_round_trip_and_pages_cover_every_row_once() {
        let store = SqliteStore::open_in_memory().await.unwrap();
        let mut all = Vec::new();
        for i in 0..23 {
            let r = registry(i, ["p1", "p2"][i % 2]);
            store.insert_registry(&r).await.unwrap();
            all.push(r);
        }
        assert_eq!(
            store.get_registry(&all[3].uuid).await.unwrap().as_ref(),
            Some(&all[3])
        );
        assert_eq!(store.get_registry("nope").await.unwrap(), None);
        for key in crate::REGISTRY_SORT_KEYS {
            for dir in [SortDir::Asc, SortDir::Desc] {
                let mut query = registry_query(Some("p1"), key, dir, 5);
                let mut seen = Vec::new();
                loop {
                    let page = store.list_registries(&query).await.unwrap();
                    seen.extend(page.iter().map(|r| r.uuid.clone()));
                    match page.last() {
                        Some(last) if page.len() == 5 => query.marker = Some(last.uuid.clone()),
                        _ => break,
                    }
                }
                let mut expected: Vec<String> = all
                    .iter()
                    .filter(|r| r.project_id == "p1")
                    .map(|r| r.uuid.clone())
                    .collect();
                assert_eq!(seen.len(), expected.len(), "{key} {dir:?}");
                seen.sort();
                expected.sort();
                assert_eq!(seen, expected, "{key} {dir:?}");
            }
        }
        let mut by_name = registry_query(None, "id", SortDir::Asc, 100);
        by_name.filters = vec![
            ("name".into(), "reg1".into()),
            ("project_id".into(), "p2".into()),
        ];
        let found = store.list_registries(&by_name).await.unwrap();
        assert!(!found.is_empty());
        assert!(
            found
                .iter()
                .all(|r| r.name.as_deref() == Some("reg1") && r.project_id == "p2")
        );
        assert_eq!(
            store
                .find_registries_by_name("reg1", Some("p2"))
                .await
                .unwrap()
                .len(),
            found.len()
        );
        let mut bad = registry_query(None, "password_sealed", SortDir::Asc, 5);
        assert!(matches!(
            store.list_registries(&bad).await,
            Err(StoreError::Rejected(_))
        ));
        bad.sort_key = "id".into();
        bad.filters = vec![("password_sealed".into(), "x".into())];
        assert!(matches!(
            store.list_registries(&bad).await,
            Err(StoreError::Rejected(_))
        ));
        bad.filters.clear();
        bad.marker = Some("missing".into());
        assert!(matches!(
            store.list_registries(&bad).await,
            Err(StoreError::MarkerNotFound(_))
        ));
    }

    #[tokio::test]
    async fn a_registry_in_use_cannot_be_deleted() {
        let store = SqliteStore::open_in_memory().await.unwrap();
        let r = registry(1, "p1");
        store.insert_registry(&r).await.unwrap();
        let mut c = container(1, "p1");
        c.registry_id = Some(r.uuid.clone());
        store
            .insert_container(&c, &new_action("create", None), None)
            .await
            .unwrap();
        let err = store.delete_registry(&r.uuid).await.unwrap_err();
        assert!(matches!(err, StoreError::Rejected(e) if e.status == 409));
        assert!(store.delete_container(&c.uuid).await.unwrap());
        assert!(store.delete_registry(&r.uuid).await.unwrap());
        assert!(!store.delete_registry(&r.uuid).await.unwrap());
        let mut gone = r.clone();
        gone.name = Some("renamed".into());
        assert!(!store.update_registry(&gone).await.unwrap());
    }

    #[tokio::test]
    async fn image_tasks_are_per_host_and_updates_are_conditional() {
        let store = SqliteStore::open_in_memory().await.unwrap();
        let pulling = image(0, "h1", Some(ImageTask::Pulling));
        let done = image(1, "h1", None);
        let other_host = image(2, "h2", Some(ImageTask::Pulling));
        for i in [&pulling, &done, &other_host] {
            store.insert_image(i).await.unwrap();
        }
        let tasks = store.image_tasks("h1").await.unwrap();
        assert_eq!(tasks, vec![pulling.clone()]);
        // A delete asked for during the pull...
        let mut deleting = pulling.clone();
        deleting.task = Some(ImageTask::Deleting);
        assert!(
            store
                .update_image_if(&deleting, Some(ImageTask::Pulling))
                .await
                .unwrap()
        );
        // ...is not overwritten by the pull finishing.
        let mut pulled = pulling.clone();
        pulled.task = None;
        pulled.image_id = Some("sha256:abc".into());
        assert!(
            !store
                .update_image_if(&pulled, Some(ImageTask::Pulling))
                .await
                .unwrap()
        );
        assert_eq!(
            store.get_image(&pulling.uuid).await.unwrap().unwrap().task,
            Some(ImageTask::Deleting)
        );
        let mut query = ImageListQuery {
            limit: 2,
            marker: None,
            sort_key: "repo".into(),
            sort_dir: SortDir::Desc,
        };
        let first = store.list_images(&query).await.unwrap();
        assert_eq!(first.len(), 2);
        query.marker = Some(first[1].uuid.clone());
        let second = store.list_images(&query).await.unwrap();
        assert_eq!(second.len(), 1);
        assert!(store.delete_image(&pulling.uuid).await.unwrap());
        assert!(store.get_image(&pulling.uuid).await.unwrap().is_none());
    }
}
