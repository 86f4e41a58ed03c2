//! SQLite backend.
//!
//! Each container is one row holding the whole record as JSON (`body`) plus
//! copies of the fields that lists filter and sort on, extracted on every
//! write. Writes run in `BEGIN IMMEDIATE` transactions (so concurrent writers
//! queue on SQLite's busy handler instead of failing on a lock upgrade) and
//! compare-and-swap on a per-row `revision`, retried a bounded number of
//! times. The statements, rows and time format are shared with the
//! PostgreSQL backend (`crate::sql`).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqliteConnection, SqlitePool, Transaction};
use zun_types::Container;

use crate::sql::{self, ActionRow, EventRow, format_time, now};
use crate::work::WorkSignal;
use crate::{
    ActionRecord, EventRecord, ListQuery, Mutation, NewAction, Placement, QuotaLimits, QuotaUsage,
    Store, StoreError, WebsocketGrant, round_cpu,
};

mod catalog;
mod hosts;
mod networks;
mod volumes;

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

/// SQLite's CAST takes the leading integer of a text ('512' or '512M' give
/// 512, text without one gives 0).
const MEMORY_MIB: &str = "CAST(memory AS BIGINT)";

/// The SQLite-backed [`Store`]. Cheap to clone; clones share the pool and
/// the work notifier.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    work: Arc<WorkSignal>,
    /// Test hook: this many upcoming compare-and-swaps are made to fail.
    #[cfg(test)]
    pub(crate) forced_conflicts: Arc<std::sync::atomic::AtomicU32>,
}

impl SqliteStore {
    /// Wakes the agent of `host` (every agent for `None`).
    fn wake_workers(&self, host: Option<&str>) {
        self.work.wake(host);
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
            work: Arc::default(),
            #[cfg(test)]
            forced_conflicts: Arc::default(),
        })
    }

    /// Closes every pooled connection (checkpointing the WAL).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    #[cfg(test)]
    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
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
        let row: Option<(String, i64)> = sqlx::query_as(sql::SELECT_FOR_UPDATE)
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
        if let Some(limits) = limits.filter(|l| !l.is_unlimited()) {
            // The project's other containers plus this one as mutated.
            let others = usage_in(&mut tx, &container.project_id, Some(uuid)).await?;
            limits
                .check(&others.with(&container))
                .map_err(StoreError::Rejected)?;
        }
        let body = serde_json::to_string(&container)?;
        let expected = self.expected_revision(revision);
        let updated = sql::bind_columns(sqlx::query(sql::UPDATE_CONTAINER), &container, body)
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
        members: &[Container],
        action: &NewAction,
        limits: Option<&QuotaLimits>,
        placement: Option<&Placement<'_>>,
    ) -> Result<ActionRecord, StoreError> {
        let body = serde_json::to_string(container)?;
        // The write lock is held from here, so no other insert can count
        // the same usage, or claim the same host, before this one commits.
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await?;
        if let (Some(placement), Some(host)) = (placement, &container.host) {
            let view = hosts::host_view_in(&mut tx, host).await?;
            sql::check_placement(placement, host, view)?;
        }
        if let Some(limits) = limits.filter(|l| !l.is_unlimited()) {
            let usage = usage_in(&mut tx, &container.project_id, None).await?;
            limits
                .check(&usage.with(container))
                .map_err(StoreError::Rejected)?;
        }
        sql::insert_container(container, body)
            .execute(&mut *tx)
            .await?;
        for member in members {
            sql::insert_container(member, serde_json::to_string(member)?)
                .execute(&mut *tx)
                .await?;
        }
        if container.host.is_some() {
            volumes::claim_volumes(&mut tx, container).await?;
        }
        let record = insert_action(&mut tx, &container.uuid, action).await?;
        tx.commit().await?;
        Ok(record)
    }

    async fn fetch_containers(
        &self,
        sql: &str,
        key: &str,
        project_id: Option<&str>,
    ) -> Result<Vec<Container>, StoreError> {
        let bodies: Vec<String> = sqlx::query_scalar(sql)
            .bind(key)
            .bind(project_id)
            .fetch_all(&self.pool)
            .await?;
        sql::decode_all(&bodies)
    }

    /// The row id of `marker` in `table` (in `project_id` when given).
    async fn marker_id(
        tx: &mut SqliteConnection,
        table: &str,
        marker: Option<&str>,
        project_id: Option<&str>,
    ) -> Result<Option<i64>, StoreError> {
        let Some(marker) = marker else {
            return Ok(None);
        };
        let id: Option<i64> = sqlx::query_scalar(&sql::marker_sql(table))
            .bind(marker)
            .bind(project_id)
            .fetch_optional(&mut *tx)
            .await?;
        id.map(Some)
            .ok_or_else(|| StoreError::MarkerNotFound(marker.to_owned()))
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn insert_placed_group(
        &self,
        container: &Container,
        members: &[Container],
        action: &NewAction,
        limits: Option<&QuotaLimits>,
        placement: Option<&Placement<'_>>,
    ) -> Result<ActionRecord, StoreError> {
        let mut attempt = 0;
        let record = loop {
            attempt += 1;
            match self
                .try_insert(container, members, action, limits, placement)
                .await
            {
                Err(StoreError::Database(err)) if is_busy(&err) && attempt < MAX_WRITE_ATTEMPTS => {
                    let uuid = &container.uuid;
                    tracing::debug!(%uuid, error = %err, "database busy, retrying insert");
                    backoff(attempt).await;
                }
                other => break other?,
            }
        };
        self.wake_workers(action.host.as_deref());
        Ok(record)
    }

    async fn get_container(&self, uuid: &str) -> Result<Option<Container>, StoreError> {
        let body: Option<String> = sqlx::query_scalar(sql::SELECT_BODY)
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
        self.fetch_containers(sql::FIND_BY_NAME, name, project_id)
            .await
    }

    async fn list_containers(&self, query: &ListQuery) -> Result<Vec<Container>, StoreError> {
        // One read transaction: the marker lookup and the page see the same
        // snapshot.
        let mut tx = self.pool.begin().await?;
        let marker_id = Self::marker_id(
            &mut tx,
            "containers",
            query.marker.as_deref(),
            query.project_id.as_deref(),
        )
        .await?;
        let mut page = sql::container_page::<Sqlite>(query, marker_id)?;
        let bodies: Vec<String> = page.build_query_scalar().fetch_all(&mut *tx).await?;
        tx.commit().await?;
        sql::decode_all(&bodies)
    }

    async fn containers_on_host(&self, host: &str) -> Result<Vec<Container>, StoreError> {
        self.fetch_containers(sql::ON_HOST, host, None).await
    }

    async fn capsule_members(&self, capsule_uuid: &str) -> Result<Vec<Container>, StoreError> {
        self.fetch_containers(sql::CAPSULE_MEMBERS, capsule_uuid, None)
            .await
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
                    if let Some(record) = &result.1 {
                        self.wake_workers(record.host.as_deref());
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
        // One transaction: a crash cannot leave the ports of a deleted
        // container holding their addresses, nor its exposed ports' group,
        // nor its volumes claimed.
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await?;
        let done = sqlx::query(sql::DELETE_CONTAINER)
            .bind(uuid)
            .execute(&mut *tx)
            .await?;
        sqlx::query(sql::RELEASE_PORTS)
            .bind(uuid)
            .execute(&mut *tx)
            .await?;
        sqlx::query(sql::DELETE_CONTAINER_SECURITY_GROUPS)
            .bind(uuid)
            .execute(&mut *tx)
            .await?;
        volumes::release_volumes(&mut tx, uuid).await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    async fn list_actions(&self, container_uuid: &str) -> Result<Vec<ActionRecord>, StoreError> {
        let rows: Vec<ActionRow> = sqlx::query_as(&sql::list_actions_sql())
            .bind(container_uuid)
            .fetch_all(&self.pool)
            .await?;
        sql::convert(rows)
    }

    async fn get_action(
        &self,
        container_uuid: &str,
        request_id: &str,
    ) -> Result<Option<(ActionRecord, Vec<EventRecord>)>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let row: Option<ActionRow> = sqlx::query_as(&sql::get_action_sql())
            .bind(container_uuid)
            .bind(request_id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let events: Vec<EventRow> = sqlx::query_as(sql::LIST_EVENTS)
            .bind(row.id)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some((ActionRecord::try_from(row)?, sql::convert(events)?)))
    }

    async fn pending_actions(&self, host: &str) -> Result<Vec<ActionRecord>, StoreError> {
        let rows: Vec<ActionRow> = sqlx::query_as(&sql::pending_actions_sql())
            .bind(host)
            .fetch_all(&self.pool)
            .await?;
        sql::convert(rows)
    }

    async fn start_event(&self, action_id: i64, event: &str) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await?;
        // The agent may redo an action after a crash: reuse the open event.
        let open: Option<i64> = sqlx::query_scalar(sql::OPEN_EVENT)
            .bind(action_id)
            .bind(event)
            .fetch_optional(&mut *tx)
            .await?;
        if open.is_none() {
            sqlx::query(sql::START_EVENT)
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
        let latest: Option<i64> = sqlx::query_scalar(sql::LATEST_EVENT)
            .bind(action_id)
            .bind(event)
            .fetch_optional(&mut *tx)
            .await?;
        match latest {
            Some(id) => sqlx::query(sql::FINISH_EVENT)
                .bind(&finished)
                .bind(result)
                .bind(traceback)
                .bind(id),
            None => sqlx::query(sql::INSERT_FINISHED_EVENT)
                .bind(action_id)
                .bind(event)
                .bind(&finished)
                .bind(result)
                .bind(traceback),
        }
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn finish_action(&self, action_id: i64, message: Option<&str>) -> Result<(), StoreError> {
        sqlx::query(sql::FINISH_ACTION)
            .bind(format_time(&now()))
            .bind(message)
            .bind(action_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn project_quotas(&self, project_id: &str) -> Result<BTreeMap<String, i64>, StoreError> {
        let rows: Vec<(String, i64)> = sqlx::query_as(sql::PROJECT_QUOTAS)
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
        sqlx::query(sql::SET_PROJECT_QUOTA)
            .bind(project_id)
            .bind(resource)
            .bind(limit)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn delete_project_quotas(&self, project_id: &str) -> Result<(), StoreError> {
        sqlx::query(sql::DELETE_PROJECT_QUOTAS)
            .bind(project_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn quota_class(&self, class: &str) -> Result<BTreeMap<String, i64>, StoreError> {
        let rows: Vec<(String, i64)> = sqlx::query_as(sql::QUOTA_CLASS)
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
        sqlx::query(sql::SET_QUOTA_CLASS)
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
        sqlx::query(sql::PURGE_GRANTS)
            .bind(Utc::now().timestamp())
            .execute(&mut *tx)
            .await?;
        sqlx::query(sql::INSERT_GRANT)
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
        let row: Option<sql::GrantRow> = sqlx::query_as(sql::TAKE_GRANT)
            .bind(token_sha256)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(sql::grant_from_row))
    }

    async fn wait_for_work(&self, host: &str, timeout: Duration) {
        self.work.wait(host, timeout).await;
    }
}

/// The usage of `project_id` on `conn` (inside the caller's transaction
/// when it has one), leaving out the container `except` when given. Memory
/// is stored as a decimal string of MiB.
async fn usage_in(
    conn: &mut SqliteConnection,
    project_id: &str,
    except: Option<&str>,
) -> Result<QuotaUsage, StoreError> {
    let (containers, cpu, memory, disk): (i64, f64, i64, i64) =
        sqlx::query_as(&sql::usage_sql(MEMORY_MIB))
            .bind(project_id)
            .bind(except)
            .fetch_one(&mut *conn)
            .await?;
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
    let id: i64 = sqlx::query_scalar(sql::INSERT_ACTION)
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
    Ok(sql::action_record(id, container_uuid, action, start_time))
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

/// Runs `attempt` again while it finds the database busy, at most
/// [`MAX_WRITE_ATTEMPTS`] times.
async fn retrying_busy<T, F, Fut>(what: &str, mut attempt: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let mut n = 0;
    loop {
        n += 1;
        match attempt().await {
            Err(StoreError::Database(err)) if is_busy(&err) && n < MAX_WRITE_ATTEMPTS => {
                tracing::debug!(what, n, error = %err, "database busy, retrying");
                backoff(n).await;
            }
            other => return other,
        }
    }
}

async fn backoff(attempt: u32) {
    tokio::time::sleep(Duration::from_millis(u64::from(attempt.min(10)) * 10)).await;
}
