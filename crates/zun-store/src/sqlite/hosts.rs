//! Compute services and nodes on SQLite.

use async_trait::async_trait;
use chrono::Utc;
use sqlx::SqliteConnection;

use super::{BEGIN_WRITE, SqliteStore, format_time, parse_time};
use crate::{
    COMPUTE_BINARY, ComputeNode, HostStore, HostView, NodeUsage, ServiceChange, ServiceRecord,
    StoreError,
};

const SERVICE_COLUMNS: &str = "id, host, binary_name, disabled, disabled_reason, forced_down, \
     report_count, availability_zone, last_seen_up, created_at, updated_at";

#[derive(sqlx::FromRow)]
struct ServiceRow {
    id: i64,
    host: String,
    #[sqlx(rename = "binary_name")]
    binary: String,
    disabled: bool,
    disabled_reason: Option<String>,
    forced_down: bool,
    report_count: i64,
    availability_zone: Option<String>,
    last_seen_up: Option<String>,
    created_at: String,
    updated_at: Option<String>,
}

impl TryFrom<ServiceRow> for ServiceRecord {
    type Error = StoreError;

    fn try_from(row: ServiceRow) -> Result<Self, StoreError> {
        Ok(Self {
            id: row.id,
            host: row.host,
            binary: row.binary,
            disabled: row.disabled,
            disabled_reason: row.disabled_reason,
            forced_down: row.forced_down,
            report_count: row.report_count,
            availability_zone: row.availability_zone,
            last_seen_up: row.last_seen_up.as_deref().map(parse_time).transpose()?,
            created_at: parse_time(&row.created_at)?,
            updated_at: row.updated_at.as_deref().map(parse_time).transpose()?,
        })
    }
}

/// What the containers on each host hold; containers in `Error` hold
/// nothing (the engine has no container for them).
const USAGE_SQL: &str = "SELECT host, COALESCE(SUM(cpu), 0.0), \
     COALESCE(SUM(CAST(COALESCE(memory, '0') AS INTEGER)), 0), COALESCE(SUM(disk), 0), COUNT(*) \
     FROM containers WHERE host IS NOT NULL AND status <> 'Error'";

type UsageRow = (String, f64, i64, i64, i64);

fn usage_of(row: UsageRow) -> NodeUsage {
    NodeUsage {
        cpu_used: crate::round_cpu(row.1),
        mem_used: row.2,
        disk_used: row.3,
        total_containers: row.4,
    }
}

async fn service_in(
    conn: &mut SqliteConnection,
    host: &str,
    binary: &str,
) -> Result<Option<ServiceRecord>, StoreError> {
    let row: Option<ServiceRow> = sqlx::query_as(&format!(
        "SELECT {SERVICE_COLUMNS} FROM services WHERE host = ? AND binary_name = ?"
    ))
    .bind(host)
    .bind(binary)
    .fetch_optional(conn)
    .await?;
    row.map(ServiceRecord::try_from).transpose()
}

/// One host (by uuid or hostname) as it is on `conn`, inside the caller's
/// transaction when it has one.
pub(super) async fn host_view_in(
    conn: &mut SqliteConnection,
    ident: &str,
) -> Result<Option<HostView>, StoreError> {
    let body: Option<String> =
        sqlx::query_scalar("SELECT body FROM compute_nodes WHERE uuid = ? OR hostname = ?")
            .bind(ident)
            .bind(ident)
            .fetch_optional(&mut *conn)
            .await?;
    let Some(body) = body else {
        return Ok(None);
    };
    let node: ComputeNode = serde_json::from_str(&body)?;
    let usage: Option<UsageRow> =
        sqlx::query_as(&format!("{USAGE_SQL} AND host = ? GROUP BY host"))
            .bind(&node.hostname)
            .fetch_optional(&mut *conn)
            .await?;
    let service = service_in(conn, &node.hostname, COMPUTE_BINARY).await?;
    Ok(Some(HostView {
        usage: usage.map(usage_of).unwrap_or_default(),
        node,
        service,
    }))
}

#[async_trait]
impl HostStore for SqliteStore {
    async fn report_service(
        &self,
        host: &str,
        binary: &str,
        availability_zone: Option<&str>,
    ) -> Result<ServiceRecord, StoreError> {
        let now = format_time(&Utc::now());
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await?;
        sqlx::query(
            "INSERT INTO services (host, binary_name, disabled, forced_down, report_count, \
             availability_zone, last_seen_up, created_at) VALUES (?, ?, FALSE, FALSE, 1, ?, ?, ?) \
             ON CONFLICT (host, binary_name) DO UPDATE SET report_count = report_count + 1, \
             availability_zone = excluded.availability_zone, last_seen_up = excluded.last_seen_up, \
             updated_at = excluded.last_seen_up",
        )
        .bind(host)
        .bind(binary)
        .bind(availability_zone)
        .bind(&now)
        .bind(&now)
        .execute(&mut *tx)
        .await?;
        let row = service_in(&mut tx, host, binary).await?;
        tx.commit().await?;
        row.ok_or_else(|| StoreError::NotFound(format!("service {host}/{binary}")))
    }

    async fn list_services(&self) -> Result<Vec<ServiceRecord>, StoreError> {
        let rows: Vec<ServiceRow> = sqlx::query_as(&format!(
            "SELECT {SERVICE_COLUMNS} FROM services ORDER BY id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(ServiceRecord::try_from).collect()
    }

    async fn update_service(
        &self,
        host: &str,
        binary: &str,
        change: &ServiceChange,
    ) -> Result<Option<ServiceRecord>, StoreError> {
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await?;
        let now = format_time(&Utc::now());
        if let Some((disabled, reason)) = &change.disabled {
            sqlx::query(
                "UPDATE services SET disabled = ?, disabled_reason = ?, updated_at = ? \
                 WHERE host = ? AND binary_name = ?",
            )
            .bind(disabled)
            .bind(reason)
            .bind(&now)
            .bind(host)
            .bind(binary)
            .execute(&mut *tx)
            .await?;
        }
        if let Some(forced_down) = change.forced_down {
            sqlx::query(
                "UPDATE services SET forced_down = ?, updated_at = ? WHERE host = ? AND binary_name = ?",
            )
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
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await?;
        let done = sqlx::query("DELETE FROM services WHERE host = ? AND binary_name = ?")
            .bind(host)
            .bind(binary)
            .execute(&mut *tx)
            .await?;
        if binary == COMPUTE_BINARY {
            sqlx::query("DELETE FROM compute_nodes WHERE hostname = ?")
                .bind(host)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    async fn upsert_compute_node(&self, node: &ComputeNode) -> Result<ComputeNode, StoreError> {
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await?;
        let existing: Option<String> =
            sqlx::query_scalar("SELECT uuid FROM compute_nodes WHERE hostname = ?")
                .bind(&node.hostname)
                .fetch_optional(&mut *tx)
                .await?;
        let mut node = node.clone();
        let now = format_time(&Utc::now());
        match existing {
            Some(uuid) => {
                node.uuid = uuid;
                sqlx::query("UPDATE compute_nodes SET body = ?, updated_at = ? WHERE uuid = ?")
                    .bind(serde_json::to_string(&node)?)
                    .bind(&now)
                    .bind(&node.uuid)
                    .execute(&mut *tx)
                    .await?;
            }
            None => {
                sqlx::query(
                    "INSERT INTO compute_nodes (uuid, hostname, body, created_at) \
                     VALUES (?, ?, ?, ?)",
                )
                .bind(&node.uuid)
                .bind(&node.hostname)
                .bind(serde_json::to_string(&node)?)
                .bind(&now)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(node)
    }

    async fn list_hosts(&self) -> Result<Vec<HostView>, StoreError> {
        // One snapshot: nodes, services and usage read in one transaction.
        let mut tx = self.pool.begin().await?;
        let bodies: Vec<String> =
            sqlx::query_scalar("SELECT body FROM compute_nodes ORDER BY hostname")
                .fetch_all(&mut *tx)
                .await?;
        let usage: Vec<UsageRow> = sqlx::query_as(&format!("{USAGE_SQL} GROUP BY host"))
            .fetch_all(&mut *tx)
            .await?;
        let services: Vec<ServiceRow> = sqlx::query_as(&format!(
            "SELECT {SERVICE_COLUMNS} FROM services WHERE binary_name = ?"
        ))
        .bind(COMPUTE_BINARY)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let mut usage: std::collections::HashMap<String, NodeUsage> = usage
            .into_iter()
            .map(|row| (row.0.clone(), usage_of(row)))
            .collect();
        let mut services: std::collections::HashMap<String, ServiceRecord> = services
            .into_iter()
            .map(|row| ServiceRecord::try_from(row).map(|s| (s.host.clone(), s)))
            .collect::<Result<_, _>>()?;
        bodies
            .iter()
            .map(|body| {
                let node: ComputeNode = serde_json::from_str(body)?;
                Ok(HostView {
                    usage: usage.remove(&node.hostname).unwrap_or_default(),
                    service: services.remove(&node.hostname),
                    node,
                })
            })
            .collect()
    }

    async fn get_host(&self, ident: &str) -> Result<Option<HostView>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        host_view_in(&mut conn, ident).await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::sqlite::tests::{container, new_action};
    use crate::{Placement, Store};

    fn node(hostname: &str, cpus: f64) -> ComputeNode {
        ComputeNode {
            uuid: uuid::Uuid::new_v4().to_string(),
            hostname: hostname.into(),
            cpus,
            mem_total: 4096,
            disk_total: 100,
            disk_quota_supported: false,
            runtimes: vec!["runc".into()],
            labels: Default::default(),
            architecture: Some("x86_64".into()),
            os_type: Some("linux".into()),
            os: Some("Debian".into()),
            kernel_version: Some("6.1".into()),
            enable_cpu_pinning: false,
        }
    }

    #[tokio::test]
    async fn services_heartbeat_and_change() {
        let store = SqliteStore::open_in_memory().await.unwrap();
        let first = store
            .report_service("h1", COMPUTE_BINARY, Some("az1"))
            .await
            .unwrap();
        assert_eq!(first.report_count, 1);
        let second = store
            .report_service("h1", COMPUTE_BINARY, Some("az1"))
            .await
            .unwrap();
        assert_eq!((second.id, second.report_count), (first.id, 2));
        assert!(second.is_up(Utc::now(), Duration::from_secs(60)));
        assert!(!second.is_up(
            Utc::now() + chrono::Duration::seconds(61),
            Duration::from_secs(60)
        ));
        let change = ServiceChange {
            disabled: Some((true, Some("maintenance".into()))),
            forced_down: Some(true),
        };
        let changed = store
            .update_service("h1", COMPUTE_BINARY, &change)
            .await
            .unwrap()
            .unwrap();
        assert!(changed.disabled && changed.forced_down);
        assert_eq!(changed.disabled_reason.as_deref(), Some("maintenance"));
        assert!(
            !changed.is_up(Utc::now(), Duration::from_secs(60)),
            "forced down"
        );
        assert!(
            store
                .update_service("nope", COMPUTE_BINARY, &change)
                .await
                .unwrap()
                .is_none()
        );
        store.upsert_compute_node(&node("h1", 2.0)).await.unwrap();
        assert!(store.delete_service("h1", COMPUTE_BINARY).await.unwrap());
        assert!(store.list_services().await.unwrap().is_empty());
        assert!(
            store.get_host("h1").await.unwrap().is_none(),
            "its node went too"
        );
    }

    #[tokio::test]
    async fn nodes_keep_their_uuid_and_count_what_is_placed() {
        let store = SqliteStore::open_in_memory().await.unwrap();
        let first = store.upsert_compute_node(&node("h1", 2.0)).await.unwrap();
        let again = store.upsert_compute_node(&node("h1", 4.0)).await.unwrap();
        assert_eq!(again.uuid, first.uuid);
        store
            .report_service("h1", COMPUTE_BINARY, None)
            .await
            .unwrap();
        for (i, status) in [(1, "Running"), (2, "Stopped"), (3, "Error")] {
            let mut c = container(i, "p1");
            c.host = Some("h1".into());
            c.cpu = Some(0.5);
            c.memory = Some("256".into());
            c.disk = 1;
            c.status = match status {
                "Running" => zun_types::ContainerStatus::Running,
                "Stopped" => zun_types::ContainerStatus::Stopped,
                _ => zun_types::ContainerStatus::Error,
            };
            store
                .insert_container(&c, &new_action("create", Some("h1")), None)
                .await
                .unwrap();
        }
        let view = store.get_host(&first.uuid).await.unwrap().unwrap();
        assert_eq!(view.node.cpus, 4.0);
        assert_eq!(
            view.usage,
            NodeUsage {
                cpu_used: 1.0,
                mem_used: 512,
                disk_used: 2,
                total_containers: 2
            },
            "Error containers hold nothing"
        );
        let listed = store.list_hosts().await.unwrap();
        assert_eq!(listed, vec![view]);
    }

    #[tokio::test]
    async fn placed_inserts_never_over_commit_a_host() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("zun.sqlite"))
            .await
            .unwrap();
        store.upsert_compute_node(&node("h1", 3.0)).await.unwrap();
        store
            .report_service("h1", COMPUTE_BINARY, None)
            .await
            .unwrap();
        // Room for three containers of 1 cpu.
        let fits = |host: &zun_scheduler::HostState| {
            if host.up && host.cpu_used + 1.0 <= host.cpus {
                Ok(())
            } else {
                Err(format!("{} is full", host.hostname))
            }
        };
        let mut tasks = Vec::new();
        for i in 0..20 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let mut c = container(i, "p1");
                c.host = Some("h1".into());
                c.cpu = Some(1.0);
                c.status = zun_types::ContainerStatus::Creating;
                let placement = Placement {
                    down_after: Duration::from_secs(60),
                    fits: &fits,
                };
                store
                    .insert_placed_container(
                        &c,
                        &new_action("create", Some("h1")),
                        None,
                        Some(&placement),
                    )
                    .await
            }));
        }
        let mut placed = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(_) => placed += 1,
                Err(StoreError::NoRoom(reason)) => assert_eq!(reason, "h1 is full"),
                Err(other) => panic!("{other}"),
            }
        }
        assert_eq!(placed, 3);
        let missing = Placement {
            down_after: Duration::from_secs(60),
            fits: &fits,
        };
        let mut c = container(99, "p1");
        c.host = Some("ghost".into());
        let err = store
            .insert_placed_container(
                &c,
                &new_action("create", Some("ghost")),
                None,
                Some(&missing),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::NoRoom(_)), "{err}");
    }
}
