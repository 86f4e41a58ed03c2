//! Compute services and nodes on PostgreSQL. The statements and rows are
//! shared with SQLite (`crate::sql`). A service heartbeat is one atomic
//! upsert; a node's upsert and every placement on a host hold the host's
//! advisory lock ([`HOST_LOCK`]), so they serialise per host whatever
//! process or connection they come from.

use async_trait::async_trait;
use sqlx::PgConnection;

use super::{BEGIN_SNAPSHOT, HOST_LOCK, MEMORY_MIB, PgStore, lock};
use crate::sql::{self, ServiceRow, UsageRow, format_time, now};
use crate::{
    COMPUTE_BINARY, ComputeNode, HostStore, HostView, ServiceChange, ServiceRecord, StoreError,
};

async fn service_in(
    conn: &mut PgConnection,
    host: &str,
    binary: &str,
) -> Result<Option<ServiceRecord>, StoreError> {
    let row: Option<ServiceRow> = sqlx::query_as(&sql::service_sql())
        .bind(host)
        .bind(binary)
        .fetch_optional(conn)
        .await?;
    row.map(ServiceRecord::try_from).transpose()
}

/// One host (by uuid or hostname) as it is on `conn`, inside the caller's
/// transaction when it has one. At READ COMMITTED each statement sees what
/// was committed before it started: a caller holding the host's lock sees
/// every placement that released it.
pub(super) async fn host_view_in(
    conn: &mut PgConnection,
    ident: &str,
) -> Result<Option<HostView>, StoreError> {
    let body: Option<String> = sqlx::query_scalar(sql::NODE_BODY)
        .bind(ident)
        .fetch_optional(&mut *conn)
        .await?;
    let Some(body) = body else {
        return Ok(None);
    };
    let node: ComputeNode = serde_json::from_str(&body)?;
    let usage: Option<UsageRow> = sqlx::query_as(&sql::host_usage_sql(MEMORY_MIB, true))
        .bind(&node.hostname)
        .fetch_optional(&mut *conn)
        .await?;
    let service: Option<ServiceRow> = sqlx::query_as(&sql::service_sql())
        .bind(&node.hostname)
        .bind(COMPUTE_BINARY)
        .fetch_optional(&mut *conn)
        .await?;
    sql::host_view(&body, usage, service).map(Some)
}

#[async_trait]
impl HostStore for PgStore {
    async fn report_service(
        &self,
        host: &str,
        binary: &str,
        availability_zone: Option<&str>,
    ) -> Result<ServiceRecord, StoreError> {
        let mut tx = self.pool.begin().await?;
        // INSERT ... ON CONFLICT is atomic here: of two first reports, one
        // inserts and the other waits for it, then counts.
        sqlx::query(sql::REPORT_SERVICE)
            .bind(host)
            .bind(binary)
            .bind(availability_zone)
            .bind(format_time(&now()))
            .execute(&mut *tx)
            .await?;
        let row = service_in(&mut tx, host, binary).await?;
        tx.commit().await?;
        row.ok_or_else(|| StoreError::NotFound(format!("service {host}/{binary}")))
    }

    async fn list_services(&self) -> Result<Vec<ServiceRecord>, StoreError> {
        let rows: Vec<ServiceRow> = sqlx::query_as(&sql::list_services_sql())
            .fetch_all(&self.pool)
            .await?;
        sql::convert(rows)
    }

    async fn update_service(
        &self,
        host: &str,
        binary: &str,
        change: &ServiceChange,
    ) -> Result<Option<ServiceRecord>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let now = format_time(&now());
        if let Some((disabled, reason)) = &change.disabled {
            sqlx::query(sql::SET_SERVICE_DISABLED)
                .bind(disabled)
                .bind(reason)
                .bind(&now)
                .bind(host)
                .bind(binary)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(forced_down) = change.forced_down {
            sqlx::query(sql::SET_SERVICE_FORCED_DOWN)
                .bind(forced_down)
                .bind(&now)
                .bind(host)
                .bind(binary)
                .execute(&mut *tx)
                .await?;
        }
        let row = service_in(&mut tx, host, binary).await?;
        tx.commit().await?;
        Ok(row)
    }

    async fn delete_service(&self, host: &str, binary: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(sql::DELETE_SERVICE)
            .bind(host)
            .bind(binary)
            .execute(&mut *tx)
            .await?;
        if binary == COMPUTE_BINARY {
            sqlx::query(sql::DELETE_NODE)
                .bind(host)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    async fn upsert_compute_node(&self, node: &ComputeNode) -> Result<ComputeNode, StoreError> {
        let mut tx = self.pool.begin().await?;
        // The read of the uuid and the write that follows, one at a time
        // per host: two first reports cannot both insert.
        lock(&mut tx, HOST_LOCK, &node.hostname).await?;
        let existing: Option<String> = sqlx::query_scalar(sql::NODE_UUID)
            .bind(&node.hostname)
            .fetch_optional(&mut *tx)
            .await?;
        let found = existing.is_some();
        let node = sql::keep_uuid(node, existing);
        let body = serde_json::to_string(&node)?;
        let now = format_time(&now());
        if found {
            sqlx::query(sql::UPDATE_NODE)
                .bind(body)
                .bind(now)
                .bind(&node.uuid)
                .execute(&mut *tx)
                .await?;
        } else {
            sqlx::query(sql::INSERT_NODE)
                .bind(&node.uuid)
                .bind(&node.hostname)
                .bind(body)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(node)
    }

    async fn list_hosts(&self) -> Result<Vec<HostView>, StoreError> {
        // One snapshot: nodes, services and usage read in one transaction.
        let mut tx = self.pool.begin_with(BEGIN_SNAPSHOT).await?;
        let bodies: Vec<String> = sqlx::query_scalar(sql::NODE_BODIES)
            .fetch_all(&mut *tx)
            .await?;
        let usage: Vec<UsageRow> = sqlx::query_as(&sql::host_usage_sql(MEMORY_MIB, false))
            .fetch_all(&mut *tx)
            .await?;
        let services: Vec<ServiceRow> = sqlx::query_as(&sql::services_of_binary_sql())
            .bind(COMPUTE_BINARY)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        sql::host_views(&bodies, usage, services)
    }

    async fn get_host(&self, ident: &str) -> Result<Option<HostView>, StoreError> {
        let mut tx = self.pool.begin_with(BEGIN_SNAPSHOT).await?;
        let view = host_view_in(&mut tx, ident).await?;
        tx.commit().await?;
        Ok(view)
    }
}
