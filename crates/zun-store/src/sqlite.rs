//! SQLite backend.
//!
//! Each container is one row holding the whole record as JSON (`body`) plus
//! copies of the fields that lists filter and sort on, extracted on every
//! write. Writes run in `BEGIN IMMEDIATE` transactions (so concurrent writers
//! queue on SQLite's busy handler instead of failing on a lock upgrade) and
//! compare-and-swap on a per-row `revision`, retried a bounded number of
//! times. Times are stored as fixed-width RFC 3339 text in UTC with
//! microseconds, so text order is time order.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SubsecRound, Utc};
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Sqlite, SqliteConnection, SqlitePool, Transaction};
use tokio::sync::Notify;
use zun_types::{ApiError, Container};

use crate::{
    ActionRecord, EventRecord, ListQuery, Mutation, NewAction, Placement, QuotaLimits, QuotaUsage,
    SortDir, Store, StoreError, WebsocketGrant, round_cpu,
};

mod catalog;
mod hosts;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// Runs the migrations, tolerating another process (an API and an agent
/// started together) migrating the same file at the same moment: each
/// migration commits atomically with its bookkeeping row, so the loser's
/// transaction rolls back and its retry finds the work done.
async fn migrate(pool: &SqlitePool) -> Result<(), StoreError> {
    const ATTEMPTS: u32 = 50;
    let mut attempt = 1;
    loop {
        match MIGRATOR.run(pool).await {
            Ok(()) => return Ok(()),
            Err(err) if attempt < ATTEMPTS => {
                tracing::debug!(error = %err, attempt, "migration raced another process; retrying");
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(err) => return Err(err.into()),
        }
    }
}

/// How many times a write is retried after losing a compare-and-swap or
/// finding the database busy.
const MAX_WRITE_ATTEMPTS: u32 = 50;
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_CONNECTIONS: u32 = 8;

/// Starts a write transaction holding SQLite's write lock from the start, so
/// a read-then-write never has to upgrade (which fails immediately when
/// another writer got there first, busy timeout or not).
const BEGIN_WRITE: &str = "BEGIN IMMEDIATE";

const INSERT_CONTAINER: &str = "INSERT INTO containers (uuid, revision, body, name, project_id, \
     user_id, image, status, task_state, host, memory, cpu, disk, auto_remove, created_at, \
     updated_at, registry_id) VALUES (?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

const UPDATE_CONTAINER: &str = "UPDATE containers SET revision = revision + 1, body = ?, \
     name = ?, project_id = ?, user_id = ?, image = ?, status = ?, task_state = ?, host = ?, \
     memory = ?, cpu = ?, disk = ?, auto_remove = ?, created_at = ?, updated_at = ?, \
     registry_id = ? WHERE uuid = ? AND revision = ?";

const ACTION_COLUMNS: &str = "id, container_uuid, request_id, action, user_id, project_id, host, \
     params, start_time, finish_time, message";

/// The SQLite-backed [`Store`]. Cheap to clone; clones share the pool and
/// the work notifier.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    work: Arc<Notify>,
    /// Test hook: this many upcoming compare-and-swaps are made to fail.
    #[cfg(test)]
    forced_conflicts: Arc<std::sync::atomic::AtomicU32>,
}

impl SqliteStore {
    /// Wakes every current waiter and leaves a permit for a worker that is
    /// busy right now, so a write made while it works is not missed until
    /// its next timeout.
    fn wake_workers(&self) {
        self.work.notify_waiters();
        self.work.notify_one();
    }

    /// Opens (creating it if missing) the database at `path` and brings its
    /// schema up to date.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        // Two processes opening a new file at once (an API and an agent
        // started together) contend for the lock that switching to WAL
        // needs, which the busy timeout does not cover: retry the open.
        let mut attempt = 0;
        loop {
            attempt += 1;
            let opened = async {
                let pool = SqlitePoolOptions::new()
                    .max_connections(MAX_CONNECTIONS)
                    .connect_with(options.clone())
                    .await?;
                Self::with_pool(pool).await
            };
            match opened.await {
                Err(StoreError::Database(err)) if is_busy(&err) && attempt < MAX_WRITE_ATTEMPTS => {
                    tracing::debug!(error = %err, attempt, "store busy while opening; retrying");
                    backoff(attempt).await;
                }
                other => return other,
            }
        }
    }

    /// A private in-memory database, for tests. It lives on a single pooled
    /// connection that is never recycled, so concurrent callers queue.
    pub async fn open_in_memory() -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::new()
            .in_memory(true)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await?;
        Self::with_pool(pool).await
    }

    async fn with_pool(pool: SqlitePool) -> Result<Self, StoreError> {
        migrate(&pool).await?;
        Ok(Self {
            pool,
            work: Arc::new(Notify::new()),
            #[cfg(test)]
            forced_conflicts: Arc::default(),
        })
    }

    /// Closes every pooled connection (checkpointing the WAL).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// One attempt at an update. `Ok(None)` means the compare-and-swap lost
    /// and nothing was written.
    async fn try_update(
        &self,
        uuid: &str,
        mutate: Mutation<'_>,
        action: Option<&NewAction>,
        limits: Option<&QuotaLimits>,
    ) -> Result<Option<(Container, Option<ActionRecord>)>, StoreError> {
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await?;
        let row: Option<(String, i64)> =
            sqlx::query_as("SELECT body, revision FROM containers WHERE uuid = ?")
                .bind(uuid)
                .fetch_optional(&mut *tx)
                .await?;
        let Some((body, revision)) = row else {
            return Err(StoreError::NotFound(uuid.to_owned()));
        };
        let mut container: Container = serde_json::from_str(&body)?;
        // Dropping `tx` on any early return rolls it back.
        mutate(&mut container).map_err(StoreError::Rejected)?;
        container.uuid = uuid.to_owned();
        container.updated_at = Some(now());
        if let Some(limits) = limits {
            // The project's other containers plus this one as mutated.
            let others = usage_in(&mut tx, &container.project_id, Some(uuid)).await?;
            limits
                .check(&others.with(&container))
                .map_err(StoreError::Rejected)?;
        }
        let body = serde_json::to_string(&container)?;
        let expected = self.expected_revision(revision);
        let updated = bind_columns(sqlx::query(UPDATE_CONTAINER), &container, body)
            .bind(uuid)
            .bind(expected)
            .execute(&mut *tx)
            .await?;
        if updated.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(None);
        }
        let record = match action {
            Some(action) => Some(insert_action(&mut tx, uuid, action).await?),
            None => None,
        };
        tx.commit().await?;
        Ok(Some((container, record)))
    }

    #[cfg(not(test))]
    fn expected_revision(&self, revision: i64) -> i64 {
        revision
    }

    #[cfg(test)]
    fn expected_revision(&self, revision: i64) -> i64 {
        use std::sync::atomic::Ordering;
        let forced = self
            .forced_conflicts
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        if forced.is_ok() { -1 } else { revision }
    }

    async fn try_insert(
        &self,
        container: &Container,
        action: &NewAction,
        limits: Option<&QuotaLimits>,
        placement: Option<&Placement<'_>>,
    ) -> Result<ActionRecord, StoreError> {
        let body = serde_json::to_string(container)?;
        // The write lock is held from here, so no other insert can count
        // the same usage, or claim the same host, before this one commits.
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await?;
        if let (Some(placement), Some(host)) = (placement, &container.host) {
            let view = hosts::host_view_in(&mut tx, host)
                .await?
                .ok_or_else(|| StoreError::NoRoom(format!("host {host} has no compute node")))?;
            (placement.fits)(&view.state(Utc::now(), placement.down_after))
                .map_err(StoreError::NoRoom)?;
        }
        if let Some(limits) = limits {
            let usage = usage_in(&mut tx, &container.project_id, None).await?;
            limits
                .check(&usage.with(container))
                .map_err(StoreError::Rejected)?;
        }
        bind_columns(
            sqlx::query(INSERT_CONTAINER).bind(&container.uuid),
            container,
            body,
        )
        .execute(&mut *tx)
        .await?;
        let record = insert_action(&mut tx, &container.uuid, action).await?;
        tx.commit().await?;
        Ok(record)
    }

    async fn fetch_containers(
        &self,
        mut query: QueryBuilder<'_, Sqlite>,
    ) -> Result<Vec<Container>, StoreError> {
        let bodies: Vec<String> = query.build_query_scalar().fetch_all(&self.pool).await?;
        decode_all(&bodies)
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn insert_placed_container(
        &self,
        container: &Container,
        action: &NewAction,
        limits: Option<&QuotaLimits>,
        placement: Option<&Placement<'_>>,
    ) -> Result<ActionRecord, StoreError> {
        let mut attempt = 0;
        let record = loop {
            attempt += 1;
            match self.try_insert(container, action, limits, placement).await {
                Err(StoreError::Database(err)) if is_busy(&err) && attempt < MAX_WRITE_ATTEMPTS => {
                    let uuid = &container.uuid;
                    tracing::debug!(%uuid, error = %err, "database busy, retrying insert");
                    backoff(attempt).await;
                }
                other => break other?,
            }
        };
        self.wake_workers();
        Ok(record)
    }

    async fn get_container(&self, uuid: &str) -> Result<Option<Container>, StoreError> {
        let body: Option<String> = sqlx::query_scalar("SELECT body FROM containers WHERE uuid = ?")
            .bind(uuid)
            .fetch_optional(&self.pool)
            .await?;
        Ok(body.map(|body| serde_json::from_str(&body)).transpose()?)
    }

    async fn find_containers_by_name(
        &self,
        name: &str,
        project_id: Option<&str>,
    ) -> Result<Vec<Container>, StoreError> {
        let mut query = QueryBuilder::new("SELECT body FROM containers WHERE name = ");
        query.push_bind(name);
        if let Some(project_id) = project_id {
            query.push(" AND project_id = ").push_bind(project_id);
        }
        query.push(" ORDER BY id");
        self.fetch_containers(query).await
    }

    async fn list_containers(&self, query: &ListQuery) -> Result<Vec<Container>, StoreError> {
        let Some((key_c, key_m)) = sort_expressions(&query.sort_key) else {
            return Err(StoreError::Rejected(ApiError::invalid(format!(
                "Invalid sort key: {}",
                query.sort_key
            ))));
        };
        // One read transaction: the marker lookup and the page see the same
        // snapshot.
        let mut tx = self.pool.begin().await?;
        let marker_id = match &query.marker {
            None => None,
            Some(marker) => {
                let mut lookup = QueryBuilder::new("SELECT id FROM containers WHERE uuid = ");
                lookup.push_bind(marker.as_str());
                if let Some(project_id) = &query.project_id {
                    lookup
                        .push(" AND project_id = ")
                        .push_bind(project_id.as_str());
                }
                let id: Option<i64> = lookup.build_query_scalar().fetch_optional(&mut *tx).await?;
                match id {
                    Some(id) => Some(id),
                    None => return Err(StoreError::MarkerNotFound(marker.clone())),
                }
            }
        };

        let mut sql = QueryBuilder::new("SELECT c.body FROM containers c WHERE 1 = 1");
        if let Some(project_id) = &query.project_id {
            sql.push(" AND c.project_id = ")
                .push_bind(project_id.as_str());
        }
        for (key, value) in &query.filters {
            match filter_column(key) {
                Some(Filter::Text(column)) => {
                    sql.push(" AND ")
                        .push(column)
                        .push(" = ")
                        .push_bind(value.as_str());
                }
                Some(Filter::Bool(column)) => match parse_bool(value) {
                    Some(flag) => {
                        sql.push(" AND ").push(column).push(" = ").push_bind(flag);
                    }
                    // Not a boolean: nothing can match.
                    None => {
                        sql.push(" AND 1 = 0");
                    }
                },
                None => {
                    return Err(StoreError::Rejected(ApiError::invalid(format!(
                        "Invalid filter: {key}"
                    ))));
                }
            }
        }
        let (cmp, dir) = match query.sort_dir {
            SortDir::Asc => (" > ", " ASC"),
            SortDir::Desc => (" < ", " DESC"),
        };
        if let Some(marker_id) = marker_id {
            // Keyset: rows strictly after the marker in (key, id) order.
            sql.push(" AND (")
                .push(key_c)
                .push(cmp)
                .push("(SELECT ")
                .push(key_m)
                .push(" FROM containers m WHERE m.id = ")
                .push_bind(marker_id)
                .push(") OR (")
                .push(key_c)
                .push(" = (SELECT ")
                .push(key_m)
                .push(" FROM containers m WHERE m.id = ")
                .push_bind(marker_id)
                .push(") AND c.id")
                .push(cmp)
                .push_bind(marker_id)
                .push("))");
        }
        sql.push(" ORDER BY ")
            .push(key_c)
            .push(dir)
            .push(", c.id")
            .push(dir);
        sql.push(" LIMIT ").push_bind(i64::from(query.limit));
        let bodies: Vec<String> = sql.build_query_scalar().fetch_all(&mut *tx).await?;
        tx.commit().await?;
        decode_all(&bodies)
    }

    async fn containers_on_host(&self, host: &str) -> Result<Vec<Container>, StoreError> {
        let mut query = QueryBuilder::new("SELECT body FROM containers WHERE host = ");
        query.push_bind(host).push(" ORDER BY id");
        self.fetch_containers(query).await
    }

    async fn update_container_checked(
        &self,
        uuid: &str,
        mutate: Mutation<'_>,
        action: Option<&NewAction>,
        limits: Option<&QuotaLimits>,
    ) -> Result<(Container, Option<ActionRecord>), StoreError> {
        for attempt in 1..=MAX_WRITE_ATTEMPTS {
            match self.try_update(uuid, mutate, action, limits).await {
                Ok(Some(result)) => {
                    if result.1.is_some() {
                        self.wake_workers();
                    }
                    return Ok(result);
                }
                Ok(None) => {
                    tracing::debug!(%uuid, attempt, "concurrent update won, retrying");
                }
                Err(StoreError::Database(err)) if is_busy(&err) => {
                    tracing::debug!(%uuid, attempt, error = %err, "database busy, retrying update");
                    backoff(attempt).await;
                }
                Err(err) => return Err(err),
            }
        }
        Err(StoreError::Database(sqlx::Error::Protocol(format!(
            "update of container {uuid} gave up after {MAX_WRITE_ATTEMPTS} conflicting attempts"
        ))))
    }

    async fn delete_container(&self, uuid: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM containers WHERE uuid = ?")
            .bind(uuid)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Newest first, as upstream lists them.
    async fn list_actions(&self, container_uuid: &str) -> Result<Vec<ActionRecord>, StoreError> {
        let rows: Vec<ActionRow> = sqlx::query_as(&format!(
            "SELECT {ACTION_COLUMNS} FROM container_actions WHERE container_uuid = ? \
             ORDER BY start_time DESC, id DESC"
        ))
        .bind(container_uuid)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(ActionRecord::try_from).collect()
    }

    async fn get_action(
        &self,
        container_uuid: &str,
        request_id: &str,
    ) -> Result<Option<(ActionRecord, Vec<EventRecord>)>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let row: Option<ActionRow> = sqlx::query_as(&format!(
            "SELECT {ACTION_COLUMNS} FROM container_actions \
             WHERE container_uuid = ? AND request_id = ? ORDER BY id DESC LIMIT 1"
        ))
        .bind(container_uuid)
        .bind(request_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let events: Vec<EventRow> = sqlx::query_as(
            "SELECT event, start_time, finish_time, result, traceback FROM action_events \
             WHERE action_id = ? ORDER BY start_time, id",
        )
        .bind(row.id)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let events = events
            .into_iter()
            .map(EventRecord::try_from)
            .collect::<Result<_, _>>()?;
        Ok(Some((ActionRecord::try_from(row)?, events)))
    }

    async fn pending_actions(&self, host: &str) -> Result<Vec<ActionRecord>, StoreError> {
        let rows: Vec<ActionRow> = sqlx::query_as(&format!(
            "SELECT {ACTION_COLUMNS} FROM container_actions \
             WHERE host = ? AND finish_time IS NULL ORDER BY id"
        ))
        .bind(host)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(ActionRecord::try_from).collect()
    }

    async fn start_event(&self, action_id: i64, event: &str) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await?;
        // The agent may redo an action after a crash: reuse the open event.
        let open: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM action_events WHERE action_id = ? AND event = ? \
             AND finish_time IS NULL ORDER BY id DESC LIMIT 1",
        )
        .bind(action_id)
        .bind(event)
        .fetch_optional(&mut *tx)
        .await?;
        if open.is_none() {
            sqlx::query(
                "INSERT INTO action_events (action_id, event, start_time) VALUES (?, ?, ?)",
            )
            .bind(action_id)
            .bind(event)
            .bind(format_time(&now()))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn finish_event(
        &self,
        action_id: i64,
        event: &str,
        result: &str,
        traceback: Option<&str>,
    ) -> Result<(), StoreError> {
        let finished = format_time(&now());
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await?;
        let latest: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM action_events WHERE action_id = ? AND event = ? \
             ORDER BY id DESC LIMIT 1",
        )
        .bind(action_id)
        .bind(event)
        .fetch_optional(&mut *tx)
        .await?;
        match latest {
            Some(id) => {
                sqlx::query(
                    "UPDATE action_events SET finish_time = ?, result = ?, traceback = ? \
                     WHERE id = ?",
                )
                .bind(&finished)
                .bind(result)
                .bind(traceback)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            }
            None => {
                sqlx::query(
                    "INSERT INTO action_events \
                     (action_id, event, start_time, finish_time, result, traceback) \
                     VALUES (?, ?, ?, ?, ?, ?)",
                )
                .bind(action_id)
                .bind(event)
                .bind(&finished)
                .bind(&finished)
                .bind(result)
                .bind(traceback)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn finish_action(&self, action_id: i64, message: Option<&str>) -> Result<(), StoreError> {
        sqlx::query("UPDATE container_actions SET finish_time = ?, message = ? WHERE id = ?")
            .bind(format_time(&now()))
            .bind(message)
            .bind(action_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn project_quotas(&self, project_id: &str) -> Result<BTreeMap<String, i64>, StoreError> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT resource, hard_limit FROM quotas WHERE project_id = ?")
                .bind(project_id)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().collect())
    }

    async fn set_project_quota(
        &self,
        project_id: &str,
        resource: &str,
        limit: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO quotas (project_id, resource, hard_limit) VALUES (?, ?, ?) \
             ON CONFLICT (project_id, resource) DO UPDATE SET hard_limit = excluded.hard_limit",
        )
        .bind(project_id)
        .bind(resource)
        .bind(limit)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn delete_project_quotas(&self, project_id: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM quotas WHERE project_id = ?")
            .bind(project_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn quota_class(&self, class: &str) -> Result<BTreeMap<String, i64>, StoreError> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT resource, hard_limit FROM quota_classes WHERE class_name = ?")
                .bind(class)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().collect())
    }

    async fn set_quota_class(
        &self,
        class: &str,
        resource: &str,
        limit: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO quota_classes (class_name, resource, hard_limit) VALUES (?, ?, ?) \
             ON CONFLICT (class_name, resource) DO UPDATE SET hard_limit = excluded.hard_limit",
        )
        .bind(class)
        .bind(resource)
        .bind(limit)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn usage(&self, project_id: &str) -> Result<QuotaUsage, StoreError> {
        let mut conn = self.pool.acquire().await?;
        usage_in(&mut conn, project_id, None).await
    }

    async fn insert_websocket_grant(
        &self,
        token_sha256: &str,
        grant: &WebsocketGrant,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await?;
        sqlx::query("DELETE FROM websocket_grants WHERE expires_at < ?")
            .bind(Utc::now().timestamp())
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO websocket_grants \
             (token_sha256, container_uuid, project_id, exec_id, expires_at) \
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(token_sha256)
        .bind(&grant.container_uuid)
        .bind(&grant.project_id)
        .bind(&grant.exec_id)
        .bind(grant.expires_at.timestamp())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn take_websocket_grant(
        &self,
        token_sha256: &str,
    ) -> Result<Option<WebsocketGrant>, StoreError> {
        let row: Option<(String, String, Option<String>, i64)> = sqlx::query_as(
            "DELETE FROM websocket_grants WHERE token_sha256 = ? \
             RETURNING container_uuid, project_id, exec_id, expires_at",
        )
        .bind(token_sha256)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(
            |(container_uuid, project_id, exec_id, expires_at)| WebsocketGrant {
                container_uuid,
                project_id,
                exec_id,
                // An out-of-range stamp reads as already expired.
                expires_at: DateTime::from_timestamp(expires_at, 0).unwrap_or(DateTime::UNIX_EPOCH),
            },
        ))
    }

    async fn wait_for_work(&self, timeout: Duration) {
        let notified = self.work.notified();
        // Timing out is the normal idle path; the caller re-polls either way.
        let _ = tokio::time::timeout(timeout, notified).await;
    }
}

type SqliteQuery<'q> = sqlx::query::Query<'q, Sqlite, SqliteArguments<'q>>;

/// Binds `body` and the extracted columns, in the order both
/// [`INSERT_CONTAINER`] and [`UPDATE_CONTAINER`] list them.
fn bind_columns<'q>(query: SqliteQuery<'q>, c: &'q Container, body: String) -> SqliteQuery<'q> {
    query
        .bind(body)
        .bind(&c.name)
        .bind(&c.project_id)
        .bind(&c.user_id)
        .bind(&c.image)
        .bind(c.status.as_str())
        .bind(c.task_state.map(|t| t.as_str()))
        .bind(&c.host)
        .bind(&c.memory)
        .bind(c.cpu)
        .bind(c.disk)
        .bind(c.auto_remove)
        .bind(format_time(&c.created_at))
        .bind(c.updated_at.as_ref().map(format_time))
        .bind(&c.registry_id)
}

/// The usage of `project_id` on `conn` (inside the caller's transaction
/// when it has one), leaving out the container `except` when given. Memory
/// is stored as a decimal string of MiB.
async fn usage_in(
    conn: &mut SqliteConnection,
    project_id: &str,
    except: Option<&str>,
) -> Result<QuotaUsage, StoreError> {
    let mut query = QueryBuilder::new(
        "SELECT COUNT(*), CAST(COALESCE(SUM(cpu), 0) AS DOUBLE PRECISION), \
         COALESCE(SUM(CAST(memory AS BIGINT)), 0), COALESCE(SUM(disk), 0) \
         FROM containers WHERE project_id = ",
    );
    query.push_bind(project_id);
    if let Some(uuid) = except {
        query.push(" AND uuid <> ").push_bind(uuid);
    }
    let (containers, cpu, memory, disk): (i64, f64, i64, i64) =
        query.build_query_as().fetch_one(&mut *conn).await?;
    Ok(QuotaUsage {
        containers,
        cpu: round_cpu(cpu),
        memory,
        disk,
    })
}

async fn insert_action(
    tx: &mut Transaction<'static, Sqlite>,
    container_uuid: &str,
    action: &NewAction,
) -> Result<ActionRecord, StoreError> {
    let start_time = now();
    let params = serde_json::to_string(&action.params)?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO container_actions \
         (container_uuid, request_id, action, user_id, project_id, host, params, start_time) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(container_uuid)
    .bind(&action.request_id)
    .bind(&action.action)
    .bind(&action.user_id)
    .bind(&action.project_id)
    .bind(&action.host)
    .bind(params)
    .bind(format_time(&start_time))
    .fetch_one(&mut **tx)
    .await?;
    Ok(ActionRecord {
        id,
        container_uuid: container_uuid.to_owned(),
        request_id: action.request_id.clone(),
        action: action.action.clone(),
        user_id: action.user_id.clone(),
        project_id: action.project_id.clone(),
        host: action.host.clone(),
        params: action.params.clone(),
        start_time,
        finish_time: None,
        message: None,
    })
}

/// The sort expression for `key` over aliases `c` (the page) and `m` (the
/// marker row). NULLs become a sentinel below every real value so that the
/// keyset comparison is total.
fn sort_expressions(key: &str) -> Option<(&'static str, &'static str)> {
    Some(match key {
        "id" => ("c.id", "m.id"),
        "uuid" => ("c.uuid", "m.uuid"),
        "name" => ("c.name", "m.name"),
        "project_id" => ("c.project_id", "m.project_id"),
        "user_id" => ("c.user_id", "m.user_id"),
        "image" => ("c.image", "m.image"),
        "status" => ("c.status", "m.status"),
        "task_state" => ("COALESCE(c.task_state, '')", "COALESCE(m.task_state, '')"),
        "host" => ("COALESCE(c.host, '')", "COALESCE(m.host, '')"),
        "memory" => ("COALESCE(c.memory, '')", "COALESCE(m.memory, '')"),
        "cpu" => ("COALESCE(c.cpu, -1.0)", "COALESCE(m.cpu, -1.0)"),
        "disk" => ("c.disk", "m.disk"),
        "auto_remove" => ("c.auto_remove", "m.auto_remove"),
        "created_at" => ("c.created_at", "m.created_at"),
        "updated_at" => ("COALESCE(c.updated_at, '')", "COALESCE(m.updated_at, '')"),
        _ => return None,
    })
}

enum Filter {
    Text(&'static str),
    Bool(&'static str),
}

fn filter_column(key: &str) -> Option<Filter> {
    Some(match key {
        "name" => Filter::Text("c.name"),
        "image" => Filter::Text("c.image"),
        "project_id" => Filter::Text("c.project_id"),
        "user_id" => Filter::Text("c.user_id"),
        "memory" => Filter::Text("c.memory"),
        "host" => Filter::Text("c.host"),
        "task_state" => Filter::Text("c.task_state"),
        "status" => Filter::Text("c.status"),
        "auto_remove" => Filter::Bool("c.auto_remove"),
        _ => return None,
    })
}

fn parse_bool(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

/// SQLITE_BUSY or SQLITE_LOCKED (any extended code): the write may succeed
/// if tried again.
fn is_busy(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(db) => db
            .code()
            .and_then(|code| code.parse::<i32>().ok())
            .is_some_and(|code| matches!(code & 0xff, 5 | 6)),
        _ => false,
    }
}

async fn backoff(attempt: u32) {
    tokio::time::sleep(Duration::from_millis(u64::from(attempt.min(10)) * 10)).await;
}

/// Now, at the precision the database keeps.
fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

fn format_time(time: &DateTime<Utc>) -> String {
    time.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

fn parse_time(text: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(text)
        .map(|time| time.with_timezone(&Utc))
        .map_err(|err| StoreError::Database(sqlx::Error::Decode(Box::new(err))))
}

fn decode_all(bodies: &[String]) -> Result<Vec<Container>, StoreError> {
    bodies
        .iter()
        .map(|body| Ok(serde_json::from_str(body)?))
        .collect()
}

#[derive(sqlx::FromRow)]
struct ActionRow {
    id: i64,
    container_uuid: String,
    request_id: String,
    action: String,
    user_id: String,
    project_id: String,
    host: Option<String>,
    params: String,
    start_time: String,
    finish_time: Option<String>,
    message: Option<String>,
}

impl TryFrom<ActionRow> for ActionRecord {
    type Error = StoreError;

    fn try_from(row: ActionRow) -> Result<Self, StoreError> {
        Ok(Self {
            id: row.id,
            container_uuid: row.container_uuid,
            request_id: row.request_id,
            action: row.action,
            user_id: row.user_id,
            project_id: row.project_id,
            host: row.host,
            params: serde_json::from_str(&row.params)?,
            start_time: parse_time(&row.start_time)?,
            finish_time: row.finish_time.as_deref().map(parse_time).transpose()?,
            message: row.message,
        })
    }
}

#[derive(sqlx::FromRow)]
struct EventRow {
    event: String,
    start_time: String,
    finish_time: Option<String>,
    result: Option<String>,
    traceback: Option<String>,
}

impl TryFrom<EventRow> for EventRecord {
    type Error = StoreError;

    fn try_from(row: EventRow) -> Result<Self, StoreError> {
        Ok(Self {
            event: row.event,
            start_time: parse_time(&row.start_time)?,
            finish_time: row.finish_time.as_deref().map(parse_time).transpose()?,
            result: row.result,
            traceback: row.traceback,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use std::cmp::Ordering;
    use std::collections::{BTreeMap, HashSet};
    use std::path::PathBuf;
    use std::sync::atomic::Ordering as AtomicOrdering;

    use chrono::TimeZone;
    use zun_types::container::DesiredState;
    use zun_types::{ContainerStatus, TaskState};

    use super::*;
    use crate::{FILTER_KEYS, SORT_KEYS};

    /// A directory removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> Self {
            let path = std::env::temp_dir().join(format!("zun-store-{}", uuid::Uuid::new_v4()));
            std::fs::create_dir_all(&path).unwrap();
            Self(path)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn base_time() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 3, 1, 12, 0, 0).unwrap()
    }

    pub(crate) fn container(i: usize, project: &str) -> Container {
        let statuses = ContainerStatus::ALL;
        Container {
            uuid: uuid::Uuid::new_v4().to_string(),
            name: format!("c{}", i % 7),
            project_id: project.to_owned(),
            user_id: ["u1", "u2", "u3"][i % 3].to_owned(),
            image: ["nginx", "busybox", "alpine", "redis"][i % 4].to_owned(),
            image_driver: Some("docker".into()),
            image_pull_policy: None,
            command: Some(vec!["sleep".into(), "1000".into()]),
            entrypoint: None,
            cpu: match i % 6 {
                0 => None,
                _ => Some([0.5, 1.0, 2.0][i % 3]),
            },
            cpu_policy: None,
            memory: match i % 5 {
                0 => None,
                _ => Some(["512", "1024", "64"][i % 3].to_owned()),
            },
            disk: (i % 4) as i64 * 10,
            workdir: None,
            environment: BTreeMap::from([("A".to_owned(), i.to_string())]),
            labels: BTreeMap::new(),
            hostname: None,
            restart_policy: None,
            interactive: false,
            tty: false,
            auto_remove: i % 2 != 1,
            auto_heal: false,
            privileged: false,
            runtime: None,
            healthcheck: None,
            security_groups: None,
            exposed_ports: None,
            hints: None,
            availability_zone: None,
            registry_id: None,
            host: match i % 4 {
                0 => None,
                _ => Some(format!("host{}", i % 3)),
            },
            status: statuses[i % 5],
            status_reason: None,
            status_detail: None,
            task_state: match i % 3 {
                0 => None,
                1 => Some(TaskState::ImagePulling),
                _ => Some(TaskState::ContainerStarting),
            },
            desired_state: DesiredState::Running,
            container_id: None,
            ports: None,
            addresses: None,
            created_at: base_time() + chrono::Duration::minutes((i % 9) as i64),
            updated_at: if i % 3 == 1 {
                None
            } else {
                Some(base_time() + chrono::Duration::seconds((i * 7 % 11) as i64))
            },
        }
    }

    pub(crate) fn new_action(action: &str, host: Option<&str>) -> NewAction {
        NewAction {
            request_id: format!("req-{}", uuid::Uuid::new_v4()),
            action: action.to_owned(),
            user_id: "u1".into(),
            project_id: "p1".into(),
            host: host.map(str::to_owned),
            params: serde_json::json!({"timeout": 10}),
        }
    }

    fn query(project: Option<&str>, sort_key: &str, sort_dir: SortDir) -> ListQuery {
        ListQuery {
            project_id: project.map(str::to_owned),
            filters: Vec::new(),
            limit: 1000,
            marker: None,
            sort_key: sort_key.to_owned(),
            sort_dir,
        }
    }

    async fn revision(store: &SqliteStore, uuid: &str) -> i64 {
        sqlx::query_scalar("SELECT revision FROM containers WHERE uuid = ?")
            .bind(uuid)
            .fetch_one(&store.pool)
            .await
            .unwrap()
    }

    /// Inserts `n` containers in `p1` and `m` in `p2`, sequentially, so the
    /// row id of element k is k + 1.
    async fn populate(store: &SqliteStore, n: usize, m: usize) -> Vec<Container> {
        let mut all = Vec::new();
        for i in 0..n + m {
            let project = if i < n { "p1" } else { "p2" };
            let c = container(i, project);
            store
                .insert_container(&c, &new_action("create", c.host.as_deref()), None)
                .await
                .unwrap();
            all.push(c);
        }
        all
    }

    #[derive(PartialEq, PartialOrd)]
    enum Key {
        I(i64),
        F(f64),
        S(String),
    }

    fn key_of(c: &Container, id: i64, key: &str) -> Key {
        match key {
            "id" => Key::I(id),
            "uuid" => Key::S(c.uuid.clone()),
            "name" => Key::S(c.name.clone()),
            "project_id" => Key::S(c.project_id.clone()),
            "user_id" => Key::S(c.user_id.clone()),
            "image" => Key::S(c.image.clone()),
            "status" => Key::S(c.status.as_str().to_owned()),
            "task_state" => Key::S(c.task_state.map(|t| t.as_str()).unwrap_or("").to_owned()),
            "host" => Key::S(c.host.clone().unwrap_or_default()),
            "memory" => Key::S(c.memory.clone().unwrap_or_default()),
            "cpu" => Key::F(c.cpu.unwrap_or(-1.0)),
            "disk" => Key::I(c.disk),
            "auto_remove" => Key::I(i64::from(c.auto_remove)),
            "created_at" => Key::S(format_time(&c.created_at)),
            "updated_at" => Key::S(c.updated_at.as_ref().map(format_time).unwrap_or_default()),
            other => panic!("no model for sort key {other}"),
        }
    }

    /// The expected order of `all` (row id = index + 1) in the model.
    fn expected(all: &[Container], project: Option<&str>, key: &str, dir: SortDir) -> Vec<String> {
        let mut rows: Vec<(Key, i64, &Container)> = all
            .iter()
            .enumerate()
            .filter(|(_, c)| project.is_none_or(|p| c.project_id == p))
            .map(|(i, c)| (key_of(c, i as i64 + 1, key), i as i64 + 1, c))
            .collect();
        rows.sort_by(|a, b| {
            a.0.partial_cmp(&b.0)
                .unwrap_or(Ordering::Equal)
                .then_with(|| a.1.cmp(&b.1))
        });
        if dir == SortDir::Desc {
            rows.reverse();
        }
        rows.into_iter().map(|(_, _, c)| c.uuid.clone()).collect()
    }

    fn uuids(containers: &[Container]) -> Vec<String> {
        containers.iter().map(|c| c.uuid.clone()).collect()
    }

    #[tokio::test]
    async fn websocket_grants_work_once_and_expired_ones_are_purged() {
        let store = SqliteStore::open_in_memory().await.unwrap();
        let grant = WebsocketGrant {
            container_uuid: "c1".into(),
            project_id: "p1".into(),
            exec_id: Some("e1".into()),
            expires_at: DateTime::from_timestamp(Utc::now().timestamp() + 60, 0).unwrap(),
        };
        store
            .insert_websocket_grant("hash-a", &grant)
            .await
            .unwrap();
        assert_eq!(store.take_websocket_grant("hash-b").await.unwrap(), None);
        assert_eq!(
            store.take_websocket_grant("hash-a").await.unwrap(),
            Some(grant.clone())
        );
        assert_eq!(store.take_websocket_grant("hash-a").await.unwrap(), None);

        let expired = WebsocketGrant {
            exec_id: None,
            expires_at: DateTime::from_timestamp(Utc::now().timestamp() - 1, 0).unwrap(),
            ..grant.clone()
        };
        store.insert_websocket_grant("old", &expired).await.unwrap();
        // Recording another grant purges the expired one.
        store.insert_websocket_grant("new", &grant).await.unwrap();
        assert_eq!(store.take_websocket_grant("old").await.unwrap(), None);
        assert!(store.take_websocket_grant("new").await.unwrap().is_some());
    }

    #[tokio::test]
    async fn round_trip() {
        let store = SqliteStore::open_in_memory().await.unwrap();
        let c = container(1, "p1");
        let action = new_action("create", Some("host1"));
        let record = store.insert_container(&c, &action, None).await.unwrap();
        assert_eq!(record.container_uuid, c.uuid);
        assert_eq!(record.request_id, action.request_id);
        assert_eq!(record.params, action.params);
        assert_eq!(record.host.as_deref(), Some("host1"));
        assert!(record.finish_time.is_none());

        assert_eq!(store.get_container(&c.uuid).await.unwrap(), Some(c.clone()));
        assert_eq!(store.get_container("nope").await.unwrap(), None);
        assert_eq!(
            store.list_actions(&c.uuid).await.unwrap(),
            vec![record.clone()]
        );

        let found = store
            .find_containers_by_name(&c.name, Some("p1"))
            .await
            .unwrap();
        assert_eq!(found, vec![c.clone()]);
        assert!(
            store
                .find_containers_by_name(&c.name, Some("p2"))
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            store
                .find_containers_by_name(&c.name, None)
                .await
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            store.containers_on_host("host1").await.unwrap(),
            vec![c.clone()]
        );
        assert!(store.containers_on_host("host2").await.unwrap().is_empty());

        // Duplicate uuid: a database error, and no stray action is recorded.
        let dup = store
            .insert_container(&c, &new_action("create", None), None)
            .await;
        assert!(matches!(dup, Err(StoreError::Database(_))), "{dup:?}");
        assert_eq!(store.list_actions(&c.uuid).await.unwrap().len(), 1);

        assert!(store.delete_container(&c.uuid).await.unwrap());
        assert!(!store.delete_container(&c.uuid).await.unwrap());
        assert_eq!(store.get_container(&c.uuid).await.unwrap(), None);
        // The action log survives the container.
        assert_eq!(store.list_actions(&c.uuid).await.unwrap(), vec![record]);
    }

    #[tokio::test]
    async fn open_file_persists_and_uses_wal() {
        let dir = TempDir::new();
        let path = dir.0.join("zun.db");
        let c = container(2, "p1");
        {
            let store = SqliteStore::open(&path).await.unwrap();
            let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
                .fetch_one(&store.pool)
                .await
                .unwrap();
            assert_eq!(mode, "wal");
            let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
                .fetch_one(&store.pool)
                .await
                .unwrap();
            assert_eq!(fk, 1);
            store
                .insert_container(&c, &new_action("create", None), None)
                .await
                .unwrap();
            store.close().await;
        }
        assert!(path.exists());
        let store = SqliteStore::open(&path).await.unwrap();
        assert_eq!(store.get_container(&c.uuid).await.unwrap(), Some(c));
    }

    #[tokio::test]
    async fn pagination_over_every_sort_key() {
        let store = SqliteStore::open_in_memory().await.unwrap();
        let all = populate(&store, 23, 6).await;
        for project in [Some("p1"), None] {
            for key in SORT_KEYS {
                for dir in [SortDir::Asc, SortDir::Desc] {
                    let want = expected(&all, project, key, dir);
                    let full = store
                        .list_containers(&query(project, key, dir))
                        .await
                        .unwrap();
                    assert_eq!(
                        uuids(&full),
                        want,
                        "full list by {key} {dir:?} in {project:?}"
                    );
                    for limit in [1, 4, 5] {
                        let mut got = Vec::new();
                        let mut q = query(project, key, dir);
                        q.limit = limit;
                        for _ in 0..=want.len() {
                            let page = store.list_containers(&q).await.unwrap();
                            assert!(page.len() <= limit as usize);
                            let Some(last) = page.last() else { break };
                            q.marker = Some(last.uuid.clone());
                            got.extend(uuids(&page));
                        }
                        assert_eq!(
                            got, want,
                            "pages of {limit} by {key} {dir:?} in {project:?}"
                        );
                    }
                }
            }
        }
    }

    #[tokio::test]
    async fn markers_and_bad_keys() {
        let store = SqliteStore::open_in_memory().await.unwrap();
        let all = populate(&store, 3, 2).await;
        let mut q = query(Some("p1"), "created_at", SortDir::Asc);
        q.marker = Some(uuid::Uuid::new_v4().to_string());
        assert!(matches!(
            store.list_containers(&q).await,
            Err(StoreError::MarkerNotFound(_))
        ));
        // A marker from another project is not visible in this scope...
        q.marker = Some(all[4].uuid.clone());
        assert!(matches!(
            store.list_containers(&q).await,
            Err(StoreError::MarkerNotFound(_))
        ));
        // ...but is across all projects.
        q.project_id = None;
        assert!(store.list_containers(&q).await.is_ok());

        let mut q = query(None, "body", SortDir::Asc);
        assert!(matches!(
            store.list_containers(&q).await,
            Err(StoreError::Rejected(_))
        ));
        q.sort_key = "id".into();
        q.filters = vec![("body".into(), "x".into())];
        assert!(matches!(
            store.list_containers(&q).await,
            Err(StoreError::Rejected(_))
        ));
        q.filters = vec![("name' OR 1=1 --".into(), "x".into())];
        assert!(matches!(
            store.list_containers(&q).await,
            Err(StoreError::Rejected(_))
        ));

        q.filters.clear();
        q.limit = 2;
        assert_eq!(store.list_containers(&q).await.unwrap().len(), 2);
        q.limit = 0;
        assert!(store.list_containers(&q).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn filters_and_project_scope() {
        let store = SqliteStore::open_in_memory().await.unwrap();
        let all = populate(&store, 20, 8).await;

        let check = |filters: Vec<(&str, &str)>, project: Option<&str>| {
            let store = store.clone();
            let all = all.clone();
            let filters: Vec<(String, String)> = filters
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
            let project = project.map(str::to_owned);
            async move {
                let mut q = query(project.as_deref(), "id", SortDir::Asc);
                q.filters = filters.clone();
                let got = uuids(&store.list_containers(&q).await.unwrap());
                let want: Vec<String> = all
                    .iter()
                    .filter(|c| project.as_deref().is_none_or(|p| c.project_id == p))
                    .filter(|c| {
                        filters.iter().all(|(k, v)| match k.as_str() {
                            "name" => &c.name == v,
                            "image" => &c.image == v,
                            "project_id" => &c.project_id == v,
                            "user_id" => &c.user_id == v,
                            "memory" => c.memory.as_ref() == Some(v),
                            "host" => c.host.as_ref() == Some(v),
                            "task_state" => c.task_state.map(|t| t.as_str()) == Some(v.as_str()),
                            "status" => c.status.as_str() == v,
                            "auto_remove" => parse_bool(v) == Some(c.auto_remove),
                            other => panic!("unknown filter {other}"),
                        })
                    })
                    .map(|c| c.uuid.clone())
                    .collect();
                assert_eq!(got, want, "filters {filters:?} in {project:?}");
                got.len()
            }
        };

        assert_eq!(check(vec![], Some("p1")).await, 20);
        assert_eq!(check(vec![], Some("p2")).await, 8);
        assert_eq!(check(vec![], Some("p3")).await, 0);
        assert_eq!(check(vec![], None).await, 28);
        assert!(check(vec![("name", "c3")], Some("p1")).await > 0);
        assert!(
            check(vec![("name", "c3")], None).await > check(vec![("name", "c3")], Some("p1")).await
        );
        assert!(check(vec![("image", "redis")], None).await > 0);
        assert!(check(vec![("user_id", "u2")], Some("p2")).await > 0);
        assert!(check(vec![("memory", "1024")], None).await > 0);
        assert!(check(vec![("host", "host1")], None).await > 0);
        assert!(check(vec![("task_state", "image_pulling")], None).await > 0);
        assert!(check(vec![("status", "Running")], None).await > 0);
        assert_eq!(check(vec![("project_id", "p2")], Some("p1")).await, 0);
        assert_eq!(check(vec![("project_id", "p2")], None).await, 8);
        let trues = check(vec![("auto_remove", "true")], None).await;
        assert_eq!(trues, 14);
        assert_eq!(check(vec![("auto_remove", "True")], None).await, trues);
        assert_eq!(check(vec![("auto_remove", "1")], None).await, trues);
        assert_eq!(
            check(vec![("auto_remove", "false")], None).await,
            28 - trues
        );
        assert_eq!(
            check(vec![("auto_remove", "False")], None).await,
            28 - trues
        );
        assert_eq!(check(vec![("auto_remove", "0")], None).await, 28 - trues);
        assert_eq!(check(vec![("auto_remove", "maybe")], None).await, 0);
        assert!(
            check(
                vec![
                    ("image", "nginx"),
                    ("auto_remove", "true"),
                    ("user_id", "u1")
                ],
                None
            )
            .await
                > 0
        );
        assert_eq!(check(vec![("status", "running")], None).await, 0);
        // Every declared filter key is accepted.
        for key in FILTER_KEYS {
            check(vec![(key, "x")], None).await;
        }
    }

    #[tokio::test]
    async fn update_applies_and_records_action() {
        let store = SqliteStore::open_in_memory().await.unwrap();
        let c = container(3, "p1");
        store
            .insert_container(&c, &new_action("create", Some("host0")), None)
            .await
            .unwrap();
        assert_eq!(revision(&store, &c.uuid).await, 1);

        let before = Utc::now();
        let action = new_action("start", Some("host9"));
        let (updated, record) = store
            .update_container(
                &c.uuid,
                &|c: &mut Container| {
                    c.status = ContainerStatus::Running;
                    c.task_state = Some(TaskState::ContainerStarting);
                    c.host = Some("host9".into());
                    c.uuid = "must-not-change".into();
                    Ok(())
                },
                Some(&action),
            )
            .await
            .unwrap();
        let record = record.unwrap();
        assert_eq!(updated.uuid, c.uuid);
        assert_eq!(updated.status, ContainerStatus::Running);
        assert!(updated.updated_at.unwrap() >= before.trunc_subsecs(6));
        assert_eq!(record.action, "start");
        assert_eq!(
            store.get_container(&c.uuid).await.unwrap(),
            Some(updated.clone())
        );
        assert_eq!(revision(&store, &c.uuid).await, 2);
        // Newest first.
        let actions = store.list_actions(&c.uuid).await.unwrap();
        assert_eq!(actions.len(), 2);
        assert_eq!(actions[0], record);
        assert_eq!(actions[1].action, "create");

        // The extracted columns follow the body.
        assert_eq!(
            store.containers_on_host("host9").await.unwrap(),
            vec![updated.clone()]
        );
        let mut q = query(None, "id", SortDir::Asc);
        q.filters = vec![
            ("status".into(), "Running".into()),
            ("task_state".into(), "container_starting".into()),
        ];
        assert_eq!(store.list_containers(&q).await.unwrap(), vec![updated]);

        // Without an action nothing is recorded.
        let (_, none) = store
            .update_container(
                &c.uuid,
                &|c: &mut Container| {
                    c.task_state = None;
                    Ok(())
                },
                None,
            )
            .await
            .unwrap();
        assert!(none.is_none());
        assert_eq!(store.list_actions(&c.uuid).await.unwrap().len(), 2);
        assert_eq!(revision(&store, &c.uuid).await, 3);

        let missing = store
            .update_container("nope", &|_: &mut Container| Ok(()), None)
            .await;
        assert!(matches!(missing, Err(StoreError::NotFound(ref u)) if u == "nope"));
    }

    #[tokio::test]
    async fn rejected_update_leaves_row_untouched() {
        let store = SqliteStore::open_in_memory().await.unwrap();
        let c = container(4, "p1");
        store
            .insert_container(&c, &new_action("create", Some("h")), None)
            .await
            .unwrap();
        let err = store
            .update_container(
                &c.uuid,
                &|c: &mut Container| {
                    c.status = ContainerStatus::Deleting;
                    c.name = "changed".into();
                    Err(ApiError::conflict(
                        "Cannot stop container in Creating state",
                    ))
                },
                Some(&new_action("stop", Some("h"))),
            )
            .await;
        match err {
            Err(StoreError::Rejected(e)) => {
                assert_eq!(e.status, 409);
                assert_eq!(e.detail, "Cannot stop container in Creating state");
            }
            other => panic!("expected Rejected, got {other:?}"),
        }
        assert_eq!(store.get_container(&c.uuid).await.unwrap(), Some(c.clone()));
        assert_eq!(revision(&store, &c.uuid).await, 1);
        assert_eq!(store.list_actions(&c.uuid).await.unwrap().len(), 1);
        assert_eq!(store.pending_actions("h").await.unwrap().len(), 1);
        // The store still works afterwards (the transaction was released).
        store
            .update_container(&c.uuid, &|_: &mut Container| Ok(()), None)
            .await
            .unwrap();
        assert_eq!(revision(&store, &c.uuid).await, 2);
    }

    #[tokio::test]
    async fn lost_compare_and_swap_is_retried_then_bounded() {
        let store = SqliteStore::open_in_memory().await.unwrap();
        let c = container(5, "p1");
        store
            .insert_container(&c, &new_action("create", Some("h")), None)
            .await
            .unwrap();
        let push = |c: &mut Container| {
            let n = c.labels.len();
            c.labels.insert(format!("k{n}"), "v".into());
            Ok(())
        };

        store.forced_conflicts.store(3, AtomicOrdering::SeqCst);
        let (updated, record) = store
            .update_container(&c.uuid, &push, Some(&new_action("stop", Some("h"))))
            .await
            .unwrap();
        assert_eq!(store.forced_conflicts.load(AtomicOrdering::SeqCst), 0);
        assert_eq!(updated.labels.len(), 1, "the mutation lands once");
        assert!(record.is_some());
        assert_eq!(revision(&store, &c.uuid).await, 2);
        assert_eq!(store.list_actions(&c.uuid).await.unwrap().len(), 2);

        store.forced_conflicts.store(1000, AtomicOrdering::SeqCst);
        let err = store
            .update_container(&c.uuid, &push, Some(&new_action("kill", Some("h"))))
            .await;
        assert!(matches!(err, Err(StoreError::Database(_))), "{err:?}");
        store.forced_conflicts.store(0, AtomicOrdering::SeqCst);
        assert_eq!(store.get_container(&c.uuid).await.unwrap(), Some(updated));
        assert_eq!(revision(&store, &c.uuid).await, 2);
        assert_eq!(store.list_actions(&c.uuid).await.unwrap().len(), 2);
    }

    async fn concurrent_writers(store: SqliteStore) {
        // 50 concurrent inserts.
        let mut tasks = Vec::new();
        for i in 0..50 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let c = container(i, "p1");
                store
                    .insert_container(&c, &new_action("create", Some("h")), None)
                    .await
                    .map(|_| c.uuid)
            }));
        }
        let mut inserted = HashSet::new();
        for task in tasks {
            inserted.insert(task.await.unwrap().unwrap());
        }
        assert_eq!(inserted.len(), 50);
        let listed = store
            .list_containers(&query(None, "id", SortDir::Asc))
            .await
            .unwrap();
        assert_eq!(listed.len(), 50);
        assert_eq!(store.pending_actions("h").await.unwrap().len(), 50);

        // 50 concurrent read-modify-writes of one row: none may be lost.
        let target = listed[0].uuid.clone();
        let mut tasks = Vec::new();
        for i in 0..50 {
            let store = store.clone();
            let target = target.clone();
            tasks.push(tokio::spawn(async move {
                let mutate = move |c: &mut Container| {
                    let n: u32 = c
                        .labels
                        .get("counter")
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                    c.labels.insert("counter".into(), (n + 1).to_string());
                    c.labels.insert(format!("writer{i}"), "yes".into());
                    Ok(())
                };
                store
                    .update_container(&target, &mutate, Some(&new_action("update", Some("h"))))
                    .await
            }));
        }
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        let after = store.get_container(&target).await.unwrap().unwrap();
        assert_eq!(after.labels.get("counter").map(String::as_str), Some("50"));
        assert_eq!(after.labels.len(), 51);
        assert_eq!(revision(&store, &target).await, 51);
        assert_eq!(store.list_actions(&target).await.unwrap().len(), 51);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_writers_on_file() {
        let dir = TempDir::new();
        let store = SqliteStore::open(&dir.0.join("zun.db")).await.unwrap();
        concurrent_writers(store.clone()).await;
        store.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_writers_in_memory() {
        concurrent_writers(SqliteStore::open_in_memory().await.unwrap()).await;
    }

    /// A container of `project` holding exactly these resources.
    fn sized(project: &str, cpu: Option<f64>, memory: Option<&str>, disk: i64) -> Container {
        let mut c = container(1, project);
        c.cpu = cpu;
        c.memory = memory.map(str::to_owned);
        c.disk = disk;
        c
    }

    fn limits(containers: i64, cpu: i64, memory: i64, disk: i64) -> QuotaLimits {
        QuotaLimits {
            containers,
            cpu,
            memory,
            disk,
        }
    }

    async fn count_rows(store: &SqliteStore, project: &str) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM containers WHERE project_id = ?")
            .bind(project)
            .fetch_one(&store.pool)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn quota_rows_and_limit_resolution() {
        let store = SqliteStore::open_in_memory().await.unwrap();
        assert!(store.project_quotas("p1").await.unwrap().is_empty());
        assert!(store.quota_class("default").await.unwrap().is_empty());
        let defaults = QuotaLimits::UPSTREAM_DEFAULTS;
        let resolve = async |project: &str| {
            defaults
                .overridden_by(&store.quota_class(crate::DEFAULT_QUOTA_CLASS).await.unwrap())
                .overridden_by(&store.project_quotas(project).await.unwrap())
        };
        assert_eq!(resolve("p1").await, limits(40, 20, 51200, 100));

        // The class `default` overrides the configured defaults for all.
        store.set_quota_class("default", "cpu", 8).await.unwrap();
        store.set_quota_class("gold", "cpu", 64).await.unwrap();
        assert_eq!(resolve("p1").await, limits(40, 8, 51200, 100));
        assert_eq!(resolve("p2").await, limits(40, 8, 51200, 100));
        assert_eq!(
            store.quota_class("gold").await.unwrap(),
            BTreeMap::from([("cpu".to_owned(), 64)])
        );

        // A project row overrides both; setting again replaces it.
        store.set_project_quota("p1", "cpu", 2).await.unwrap();
        store
            .set_project_quota("p1", "containers", 5)
            .await
            .unwrap();
        store
            .set_project_quota("p1", "containers", -1)
            .await
            .unwrap();
        assert_eq!(
            store.project_quotas("p1").await.unwrap(),
            BTreeMap::from([("containers".to_owned(), -1), ("cpu".to_owned(), 2)])
        );
        assert_eq!(resolve("p1").await, limits(-1, 2, 51200, 100));
        assert_eq!(resolve("p2").await, limits(40, 8, 51200, 100));

        // Deleting reverts the project to the defaults, and only it.
        store.set_project_quota("p2", "disk", 7).await.unwrap();
        store.delete_project_quotas("p1").await.unwrap();
        store.delete_project_quotas("nobody").await.unwrap();
        assert!(store.project_quotas("p1").await.unwrap().is_empty());
        assert_eq!(resolve("p1").await, limits(40, 8, 51200, 100));
        assert_eq!(resolve("p2").await, limits(40, 8, 51200, 7));
        store.set_quota_class("default", "cpu", 30).await.unwrap();
        assert_eq!(resolve("p1").await.cpu, 30);
    }

    #[tokio::test]
    async fn usage_sums_the_project() {
        let store = SqliteStore::open_in_memory().await.unwrap();
        assert_eq!(store.usage("p1").await.unwrap(), QuotaUsage::default());
        for c in [
            sized("p1", Some(0.1), Some("512"), 10),
            sized("p1", Some(0.2), Some("64"), 0),
            sized("p1", None, None, 5),
            sized("p2", Some(4.0), Some("4096"), 100),
        ] {
            store
                .insert_container(&c, &new_action("create", None), None)
                .await
                .unwrap();
        }
        let usage = store.usage("p1").await.unwrap();
        assert_eq!(
            usage,
            QuotaUsage {
                containers: 3,
                cpu: 0.3,
                memory: 576,
                disk: 15
            }
        );
        assert_eq!(store.usage("p2").await.unwrap().memory, 4096);
    }

    #[tokio::test]
    async fn insert_over_quota_is_refused_and_writes_nothing() {
        let store = SqliteStore::open_in_memory().await.unwrap();
        let quota = limits(2, 3, 1024, -1);
        for _ in 0..2 {
            let c = sized("p1", Some(1.0), Some("256"), 50);
            store
                .insert_container(&c, &new_action("create", Some("h")), Some(&quota))
                .await
                .unwrap();
        }
        let third = sized("p1", Some(1.0), Some("256"), 50);
        let err = store
            .insert_container(&third, &new_action("create", Some("h")), Some(&quota))
            .await;
        match err {
            Err(StoreError::Rejected(e)) => {
                assert_eq!(e.status, 403);
                assert_eq!(e.code, "over-quota");
                assert_eq!(e.detail, "Quota exceeded for resources: ['containers']");
            }
            other => panic!("expected over-quota, got {other:?}"),
        }
        assert_eq!(store.get_container(&third.uuid).await.unwrap(), None);
        assert!(store.list_actions(&third.uuid).await.unwrap().is_empty());
        assert_eq!(store.pending_actions("h").await.unwrap().len(), 2);

        // Every exceeded resource is named, sorted as upstream sorts them.
        let quota = limits(2, 2, 600, 120);
        let big = sized("p1", Some(0.5), Some("100"), 30);
        let err = store
            .insert_container(&big, &new_action("create", None), Some(&quota))
            .await;
        match err {
            Err(StoreError::Rejected(e)) => assert_eq!(
                e.detail,
                "Quota exceeded for resources: ['containers', 'cpu', 'disk', 'memory']"
            ),
            other => panic!("expected over-quota, got {other:?}"),
        }
        // Exactly at a limit is allowed; other projects do not count.
        let fits = sized("p1", Some(1.0), Some("512"), 0);
        store
            .insert_container(
                &fits,
                &new_action("create", None),
                Some(&limits(3, 3, 1024, 100)),
            )
            .await
            .unwrap();
        let zero = limits(0, 0, 0, 0);
        let err = store
            .insert_container(
                &sized("p2", None, None, 0),
                &new_action("create", None),
                Some(&zero),
            )
            .await;
        assert!(
            matches!(err, Err(StoreError::Rejected(ref e)) if e.detail.ends_with("['containers']")),
            "{err:?}"
        );
        store
            .insert_container(
                &sized("p2", Some(16.0), Some("8192"), 160),
                &new_action("create", None),
                Some(&QuotaLimits::UNLIMITED),
            )
            .await
            .unwrap();
        assert_eq!(count_rows(&store, "p1").await, 3);
        assert_eq!(count_rows(&store, "p2").await, 1);
    }

    #[tokio::test]
    async fn checked_update_counts_the_new_resources() {
        let store = SqliteStore::open_in_memory().await.unwrap();
        let quota = limits(10, 4, 2048, -1);
        let a = sized("p1", Some(1.0), Some("512"), 0);
        let b = sized("p1", Some(2.0), Some("512"), 0);
        for c in [&a, &b] {
            store
                .insert_container(c, &new_action("create", None), Some(&quota))
                .await
                .unwrap();
        }
        let set = |cpu: f64, memory: &'static str| {
            move |c: &mut Container| {
                c.cpu = Some(cpu);
                c.memory = Some(memory.to_owned());
                Ok(())
            }
        };
        // 2 + 1.5 = 3.5 cpus and 512 + 1536 MiB: within.
        let (grown, _) = store
            .update_container_checked(&a.uuid, &set(1.5, "1536"), None, Some(&quota))
            .await
            .unwrap();
        assert_eq!(grown.cpu, Some(1.5));
        // 2 + 2.5 = 4.5 cpus: over; the row keeps its values.
        let err = store
            .update_container_checked(
                &a.uuid,
                &set(2.5, "1536"),
                Some(&new_action("update", None)),
                Some(&quota),
            )
            .await;
        match err {
            Err(StoreError::Rejected(e)) => {
                assert_eq!(e.status, 403);
                assert_eq!(e.detail, "Quota exceeded for resources: ['cpu']");
            }
            other => panic!("expected over-quota, got {other:?}"),
        }
        let stored = store.get_container(&a.uuid).await.unwrap().unwrap();
        assert_eq!(stored, grown);
        assert_eq!(store.list_actions(&a.uuid).await.unwrap().len(), 1);
        let err = store
            .update_container_checked(&a.uuid, &set(1.0, "1537"), None, Some(&quota))
            .await;
        assert!(
            matches!(err, Err(StoreError::Rejected(ref e)) if e.detail.ends_with("['memory']")),
            "{err:?}"
        );
        // Without limits nothing is checked.
        store
            .update_container(&a.uuid, &set(8.0, "4096"), None)
            .await
            .unwrap();
        assert_eq!(store.usage("p1").await.unwrap().cpu, 10.0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_creates_never_overshoot_a_quota() {
        let dir = TempDir::new();
        let store = SqliteStore::open(&dir.0.join("zun.db")).await.unwrap();
        let quota = limits(3, -1, -1, -1);
        let barrier = Arc::new(tokio::sync::Barrier::new(20));
        let mut tasks = Vec::new();
        for i in 0..20 {
            let store = store.clone();
            let barrier = barrier.clone();
            tasks.push(tokio::spawn(async move {
                let c = container(i, "p1");
                barrier.wait().await;
                store
                    .insert_container(&c, &new_action("create", Some("h")), Some(&quota))
                    .await
            }));
        }
        let (mut accepted, mut refused) = (0, 0);
        for task in tasks {
            match task.await.unwrap() {
                Ok(_) => accepted += 1,
                Err(StoreError::Rejected(e)) => {
                    assert_eq!(e.code, "over-quota");
                    assert_eq!(e.detail, "Quota exceeded for resources: ['containers']");
                    refused += 1;
                }
                Err(other) => panic!("unexpected error {other:?}"),
            }
        }
        assert_eq!((accepted, refused), (3, 17));
        assert_eq!(count_rows(&store, "p1").await, 3);
        assert_eq!(store.pending_actions("h").await.unwrap().len(), 3);
        assert_eq!(store.usage("p1").await.unwrap().containers, 3);
        store.close().await;
    }

    #[tokio::test]
    async fn pending_actions_lifecycle() {
        let store = SqliteStore::open_in_memory().await.unwrap();
        let a = container(1, "p1");
        let b = container(2, "p1");
        let create_a = store
            .insert_container(&a, &new_action("create", Some("h1")), None)
            .await
            .unwrap();
        let create_b = store
            .insert_container(&b, &new_action("create", Some("h2")), None)
            .await
            .unwrap();
        let (_, stop_a) = store
            .update_container(
                &a.uuid,
                &|_: &mut Container| Ok(()),
                Some(&new_action("stop", Some("h1"))),
            )
            .await
            .unwrap();
        let stop_a = stop_a.unwrap();

        assert_eq!(
            store.pending_actions("h1").await.unwrap(),
            vec![create_a.clone(), stop_a.clone()]
        );
        assert_eq!(
            store.pending_actions("h2").await.unwrap(),
            vec![create_b.clone()]
        );
        assert!(store.pending_actions("h3").await.unwrap().is_empty());

        store.finish_action(create_a.id, None).await.unwrap();
        assert_eq!(
            store.pending_actions("h1").await.unwrap(),
            vec![stop_a.clone()]
        );
        store.finish_action(stop_a.id, Some("Error")).await.unwrap();
        assert!(store.pending_actions("h1").await.unwrap().is_empty());
        assert_eq!(store.pending_actions("h2").await.unwrap(), vec![create_b]);

        let actions = store.list_actions(&a.uuid).await.unwrap();
        assert_eq!(actions.len(), 2);
        assert_eq!(actions[0].id, stop_a.id);
        assert_eq!(actions[0].message.as_deref(), Some("Error"));
        assert!(actions[0].finish_time.unwrap() >= actions[0].start_time);
        assert_eq!(actions[1].id, create_a.id);
        assert_eq!(actions[1].message, None);
        assert!(actions[1].finish_time.is_some());
        assert_eq!(actions[1].params, serde_json::json!({"timeout": 10}));
    }

    #[tokio::test]
    async fn events() {
        let store = SqliteStore::open_in_memory().await.unwrap();
        let c = container(1, "p1");
        let action = new_action("create", Some("h"));
        let record = store.insert_container(&c, &action, None).await.unwrap();

        let (got, events) = store
            .get_action(&c.uuid, &action.request_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, record);
        assert!(events.is_empty());
        assert!(
            store
                .get_action(&c.uuid, "req-unknown")
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            store
                .get_action("other", &action.request_id)
                .await
                .unwrap()
                .is_none()
        );

        let event = "compute__do_container_create";
        store.start_event(record.id, event).await.unwrap();
        // Redone after a crash: the open event is reused.
        store.start_event(record.id, event).await.unwrap();
        let (_, events) = store
            .get_action(&c.uuid, &action.request_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].event, event);
        assert!(events[0].finish_time.is_none() && events[0].result.is_none());

        store
            .finish_event(record.id, event, "Error", Some("boom"))
            .await
            .unwrap();
        let (_, events) = store
            .get_action(&c.uuid, &action.request_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].result.as_deref(), Some("Error"));
        assert_eq!(events[0].traceback.as_deref(), Some("boom"));
        assert!(events[0].finish_time.unwrap() >= events[0].start_time);

        // A finished event is not reused; the next finish closes the new one.
        store.start_event(record.id, event).await.unwrap();
        store
            .finish_event(record.id, event, "Success", None)
            .await
            .unwrap();
        // Finishing an event never started records it.
        store
            .finish_event(record.id, "compute__other", "Success", None)
            .await
            .unwrap();
        let (_, events) = store
            .get_action(&c.uuid, &action.request_id)
            .await
            .unwrap()
            .unwrap();
        let summary: Vec<(&str, Option<&str>)> = events
            .iter()
            .map(|e| (e.event.as_str(), e.result.as_deref()))
            .collect();
        assert_eq!(
            summary,
            vec![
                (event, Some("Error")),
                (event, Some("Success")),
                ("compute__other", Some("Success"))
            ]
        );
        assert!(
            events
                .windows(2)
                .all(|w| w[0].start_time <= w[1].start_time)
        );
        assert_eq!(events[1].traceback, None);

        // Events belong to an existing action.
        assert!(store.start_event(record.id + 100, event).await.is_err());
    }

    #[tokio::test]
    async fn wait_for_work_wakes_on_new_actions() {
        let store = SqliteStore::open_in_memory().await.unwrap();

        let started = std::time::Instant::now();
        store.wait_for_work(Duration::from_millis(100)).await;
        assert!(started.elapsed() >= Duration::from_millis(90));

        let waiter = {
            let store = store.clone();
            tokio::spawn(async move {
                let started = std::time::Instant::now();
                store.wait_for_work(Duration::from_secs(30)).await;
                started.elapsed()
            })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        let c = container(1, "p1");
        store
            .insert_container(&c, &new_action("create", Some("h")), None)
            .await
            .unwrap();
        let waited = tokio::time::timeout(Duration::from_secs(10), waiter)
            .await
            .unwrap()
            .unwrap();
        assert!(waited < Duration::from_secs(10), "woke after {waited:?}");

        // An update with an action wakes waiters too.
        let waiter = {
            let store = store.clone();
            tokio::spawn(async move { store.wait_for_work(Duration::from_secs(30)).await })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        store
            .update_container(
                &c.uuid,
                &|_: &mut Container| Ok(()),
                Some(&new_action("stop", Some("h"))),
            )
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(10), waiter)
            .await
            .unwrap()
            .unwrap();
    }

    #[test]
    fn times_are_fixed_width_and_round_trip() {
        let early = Utc.with_ymd_and_hms(2024, 1, 2, 3, 4, 5).unwrap();
        let late = early + chrono::Duration::microseconds(6);
        let later = early + chrono::Duration::seconds(30);
        assert_eq!(format_time(&early), "2024-01-02T03:04:05.000000Z");
        assert_eq!(format_time(&late), "2024-01-02T03:04:05.000006Z");
        assert!(format_time(&early) < format_time(&late));
        assert!(format_time(&late) < format_time(&later));
        assert_eq!(parse_time(&format_time(&late)).unwrap(), late);
        assert!(parse_time("yesterday").is_err());
        let n = now();
        assert_eq!(parse_time(&format_time(&n)).unwrap(), n);
    }

    #[test]
    fn booleans() {
        for v in ["true", "True", "TRUE", "1"] {
            assert_eq!(parse_bool(v), Some(true), "{v}");
        }
        for v in ["false", "False", "0"] {
            assert_eq!(parse_bool(v), Some(false), "{v}");
        }
        assert_eq!(parse_bool("yes please"), None);
    }

    #[test]
    fn every_sort_and_filter_key_maps_to_a_column() {
        for key in SORT_KEYS {
            assert!(sort_expressions(key).is_some(), "{key}");
        }
        for key in FILTER_KEYS {
            assert!(filter_column(key).is_some(), "{key}");
        }
        assert!(sort_expressions("body").is_none());
        assert!(filter_column("revision").is_none());
    }
}
