//! PostgreSQL backend, for several hosts (DESIGN decision 3).
//!
//! Why this shape: the two backends differ in how writes are made safe, not
//! in what they store. SQLite takes its one write lock (`BEGIN IMMEDIATE`);
//! here transactions run at READ COMMITTED and serialize only where they
//! must: the container row by its compare-and-swap on `revision`, the
//! placements on a host and a project's quota by transaction-scoped
//! advisory locks, a registry's deletion by an advisory lock that container
//! writes referencing it take shared. Everything else (statements with
//! `$N` placeholders, row structs, list builders, sort and filter maps, time format) is in `crate::sql` and
//! used by both, so each backend is only its transactions. A generic
//! `Store<DB>` would have replaced those few differing lines with a wall of
//! sqlx trait bounds, and `sqlx::Any` cannot express advisory locks or
//! LISTEN; so the method bodies are written once per backend.
//!
//! Agents in other processes learn of new work by LISTEN/NOTIFY on one
//! channel; the NOTIFY is sent inside the transaction that writes the
//! action or the image task, so it is delivered only if that commits.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use sqlx::{PgConnection, PgPool, Postgres};
use tokio::task::JoinHandle;
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

pub(crate) static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// How many times a write is retried after losing a compare-and-swap, a
/// serialization failure or a deadlock.
const MAX_WRITE_ATTEMPTS: u32 = 50;
const MAX_CONNECTIONS: u32 = 10;

/// The one channel every agent listens on; the payload names the host that
/// has new work (a wake-up only: its agent re-reads its work from the
/// tables).
const CHANNEL: &str = "zun_work";
const NOTIFY: &str = "SELECT pg_notify('zun_work', $1)";

/// Advisory lock classes (first key of the two-key form), so the hashed
/// second keys of different kinds never meet (a collision within a kind
/// only serialises more than needed). A transaction taking several takes
/// them in one order: the host ([`HOST_LOCK`], placed inserts and node
/// upserts), then the project ([`QUOTA_LOCK`]), then registries shared
/// ([`REGISTRY_LOCK`]); `delete_registry` takes only its registry's; a
/// network's creation takes [`VNI_LOCK`] alone and a port's allocation its
/// network's [`PORT_LOCK`] alone. So no two transactions can wait on each
/// other's advisory locks in a cycle.
const QUOTA_LOCK: i32 = 1;
const REGISTRY_LOCK: i32 = 2;
const HOST_LOCK: i32 = 3;
/// One key for every network ([`VNI_KEY`]): vnis are unique across all.
const VNI_LOCK: i32 = 4;
const VNI_KEY: &str = "vni";
/// Keyed on a network's uuid.
const PORT_LOCK: i32 = 5;
const LOCK: &str = "SELECT pg_advisory_xact_lock($1, hashtext($2))";
const LOCK_SHARED: &str = "SELECT pg_advisory_xact_lock_shared($1, hashtext($2))";

/// Reads in one snapshot (a list's marker lookup and its page).
const BEGIN_SNAPSHOT: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY";

/// The leading integer of `memory`, as SQLite's lenient CAST reads it
/// (text without one is NULL here, 0 there: the same to SUM).
const MEMORY_MIB: &str = r"CAST(substring(memory from '^\s*([-+]?[0-9]+)') AS BIGINT)";

/// Aborts the notification relay when the last clone of the store goes.
#[derive(Debug)]
struct RelayTask(JoinHandle<()>);

impl Drop for RelayTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The PostgreSQL-backed [`Store`]. Cheap to clone; clones share the pool,
/// the work notifier and the listening connection.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    work: Arc<WorkSignal>,
    _relay: Arc<RelayTask>,
    /// Test hook: this many upcoming compare-and-swaps are made to fail.
    #[cfg(test)]
    pub(crate) forced_conflicts: Arc<std::sync::atomic::AtomicU32>,
}

impl PgStore {
    /// Connects to `url` (`postgres://user:password@host:port/database`)
    /// and brings the schema up to date.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(PgConnectOptions::from_str(url)?).await
    }

    /// [`PgStore::connect`] with options already parsed.
    pub async fn connect_with(options: PgConnectOptions) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .connect_with(options)
            .await?;
        // sqlx holds a session advisory lock (keyed on the database) for the
        // whole run, so processes starting together migrate one after the
        // other and the later ones find nothing to do.
        MIGRATOR.run(&pool).await?;
        let work = Arc::new(WorkSignal::default());
        // Listening before returning: work committed after `connect`
        // returns is never missed by this process.
        let listener = listen(&pool).await?;
        let relay = tokio::spawn(relay(pool.clone(), listener, work.clone()));
        Ok(Self {
            pool,
            work,
            _relay: Arc::new(RelayTask(relay)),
            #[cfg(test)]
            forced_conflicts: Arc::default(),
        })
    }

    /// Closes every pooled connection, the listening one included.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    #[cfg(test)]
    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Wakes this process's agent of `host` (every agent for `None`).
    fn wake_workers(&self, host: Option<&str>) {
        self.work.wake(host);
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
        let mut tx = self.pool.begin().await?;
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
            lock(&mut tx, QUOTA_LOCK, &container.project_id).await?;
            // The project's other containers plus this one as mutated.
            let others = usage_in(&mut tx, &container.project_id, Some(uuid)).await?;
            limits
                .check(&others.with(&container))
                .map_err(StoreError::Rejected)?;
        }
        lock_registry_shared(&mut tx, &container).await?;
        let body = serde_json::to_string(&container)?;
        let expected = self.expected_revision(revision);
        // Under READ COMMITTED a concurrent writer's UPDATE makes this one
        // wait, then re-check the WHERE against the committed row: the
        // revision no longer matches and nothing is written.
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
        let mut tx = self.pool.begin().await?;
        if let (Some(placement), Some(host)) = (placement, &container.host) {
            // Held to commit, and taken before the host is read: the read
            // (a new snapshot per statement at READ COMMITTED) sees every
            // placement on this host that committed before, from any
            // process, and none can commit until this one has.
            lock(&mut tx, HOST_LOCK, host).await?;
            let view = hosts::host_view_in(&mut tx, host).await?;
            sql::check_placement(placement, host, view)?;
        }
        if let Some(limits) = limits.filter(|l| !l.is_unlimited()) {
            // Held to commit: no other write of this project can count the
            // same usage before this insert is visible.
            lock(&mut tx, QUOTA_LOCK, &container.project_id).await?;
            let usage = usage_in(&mut tx, &container.project_id, None).await?;
            limits
                .check(&usage.with(container))
                .map_err(StoreError::Rejected)?;
        }
        lock_registry_shared(&mut tx, container).await?;
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
        conn: &mut PgConnection,
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
            .fetch_optional(&mut *conn)
            .await?;
        id.map(Some)
            .ok_or_else(|| StoreError::MarkerNotFound(marker.to_owned()))
    }
}

#[async_trait]
impl Store for PgStore {
    async fn insert_placed_group(
        &self,
        container: &Container,
        members: &[Container],
        action: &NewAction,
        limits: Option<&QuotaLimits>,
        placement: Option<&Placement<'_>>,
    ) -> Result<ActionRecord, StoreError> {
        let what = format!("insert of container {}", container.uuid);
        let record = retrying(&what, || async {
            self.try_insert(container, members, action, limits, placement)
                .await
                .map(Some)
        })
        .await?;
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
        let mut tx = self.pool.begin_with(BEGIN_SNAPSHOT).await?;
        let marker_id = Self::marker_id(
            &mut tx,
            "containers",
            query.marker.as_deref(),
            query.project_id.as_deref(),
        )
        .await?;
        let mut page = sql::container_page::<Postgres>(query, marker_id)?;
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
        let what = format!("update of container {uuid}");
        let result = retrying(&what, || self.try_update(uuid, mutate, action, limits)).await?;
        if let Some(record) = &result.1 {
            self.wake_workers(record.host.as_deref());
        }
        Ok(result)
    }

    async fn delete_container(&self, uuid: &str) -> Result<bool, StoreError> {
        // One transaction: a crash cannot leave the ports of a deleted
        // container holding their addresses, nor its exposed ports' group,
        // nor its volumes claimed.
        let mut tx = self.pool.begin().await?;
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
        let mut tx = self.pool.begin_with(BEGIN_SNAPSHOT).await?;
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
        let mut tx = self.pool.begin().await?;
        lock_action(&mut tx, action_id).await?;
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
        let mut tx = self.pool.begin().await?;
        lock_action(&mut tx, action_id).await?;
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
        let mut tx = self.pool.begin().await?;
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
        // DELETE ... RETURNING: of two concurrent takers, one deletes the
        // row and the other finds nothing.
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

/// Wakes every current waiter and leaves a permit for a worker that is busy
/// right now, so work that arrives while it works is not missed until its
/// next timeout.
async fn listen(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

/// Turns notifications on [`CHANNEL`] (from any process, this one
/// included) into wake-ups of this process's waiters, until the pool
/// closes. A lost connection is replaced; notifications sent while it was
/// down are lost, so the waiters are woken to re-read their work, and the
/// agents' periodic re-poll covers anything else.
async fn relay(pool: PgPool, mut listener: PgListener, work: Arc<WorkSignal>) {
    let mut failures: u32 = 0;
    loop {
        match listener.try_recv().await {
            Ok(Some(notification)) => {
                failures = 0;
                let host = notification.payload();
                work.wake((!host.is_empty()).then_some(host));
            }
            // The connection dropped; sqlx reconnects and re-LISTENs on the
            // next call.
            Ok(None) => {
                tracing::warn!("store notification connection lost; reconnecting");
                work.wake(None);
            }
            Err(sqlx::Error::PoolClosed) => return,
            Err(err) => {
                failures = failures.saturating_add(1);
                tracing::warn!(error = %err, failures, "store notification connection failed");
                backoff(failures).await;
                // Errors other than a dropped socket leave sqlx's listener
                // on its broken connection: start over with a new one.
                match listen(&pool).await {
                    Ok(fresh) => {
                        listener = fresh;
                        work.wake(None);
                    }
                    Err(sqlx::Error::PoolClosed) => return,
                    Err(err) => tracing::warn!(error = %err, "store notifications not resumed yet"),
                }
            }
        }
    }
}

/// Runs `attempt` until it neither loses a compare-and-swap (`Ok(None)`)
/// nor fails with a serialization failure or a deadlock, at most
/// [`MAX_WRITE_ATTEMPTS`] times.
async fn retrying<T, F, Fut>(what: &str, mut attempt: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>, StoreError>>,
{
    for n in 1..=MAX_WRITE_ATTEMPTS {
        match attempt().await {
            Ok(Some(done)) => return Ok(done),
            Ok(None) => tracing::debug!(what, n, "concurrent update won, retrying"),
            Err(StoreError::Database(err)) if is_retryable(&err) => {
                tracing::debug!(what, n, error = %err, "transaction conflict, retrying");
                backoff(n).await;
            }
            Err(err) => return Err(err),
        }
    }
    Err(StoreError::Database(sqlx::Error::Protocol(format!(
        "{what} gave up after {MAX_WRITE_ATTEMPTS} conflicting attempts"
    ))))
}

/// serialization_failure or deadlock_detected: the transaction was rolled
/// back and may succeed if run again.
fn is_retryable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(db) => matches!(db.code().as_deref(), Some("40001" | "40P01")),
        _ => false,
    }
}

async fn backoff(attempt: u32) {
    tokio::time::sleep(Duration::from_millis(u64::from(attempt.min(10)) * 10)).await;
}

/// Takes the exclusive advisory lock `(class, key)` until the transaction
/// ends.
async fn lock(conn: &mut PgConnection, class: i32, key: &str) -> Result<(), StoreError> {
    sqlx::query(LOCK)
        .bind(class)
        .bind(key)
        .execute(conn)
        .await?;
    Ok(())
}

/// A container write referencing a registry holds that registry's lock
/// shared to commit, so `delete_registry` (exclusive) either sees the
/// committed reference or makes the write wait until the registry is gone.
async fn lock_registry_shared(
    conn: &mut PgConnection,
    container: &Container,
) -> Result<(), StoreError> {
    if let Some(registry) = &container.registry_id {
        sqlx::query(LOCK_SHARED)
            .bind(REGISTRY_LOCK)
            .bind(registry)
            .execute(conn)
            .await?;
    }
    Ok(())
}

/// Serializes the event writes of one action (the read of its open event
/// and the write that follows), as SQLite's write lock does.
async fn lock_action(conn: &mut PgConnection, action_id: i64) -> Result<(), StoreError> {
    sqlx::query("SELECT id FROM container_actions WHERE id = $1 FOR UPDATE")
        .bind(action_id)
        .execute(conn)
        .await?;
    Ok(())
}

async fn usage_in(
    conn: &mut PgConnection,
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

/// Inserts the action and queues the wake-up of every agent, both part of
/// the caller's transaction.
async fn insert_action(
    conn: &mut PgConnection,
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
        .fetch_one(&mut *conn)
        .await?;
    sqlx::query(NOTIFY)
        .bind(action.host.as_deref().unwrap_or_default())
        .execute(&mut *conn)
        .await?;
    Ok(sql::action_record(id, container_uuid, action, start_time))
}
