//! The built-in networks' IPAM on PostgreSQL. The statements and rows are
//! shared with SQLite (`crate::sql`). A network's creation holds
//! [`VNI_LOCK`] and a port's allocation its network's [`PORT_LOCK`] from
//! before they read what is taken until they commit, so they serialise
//! whatever process or connection they come from; at READ COMMITTED each
//! read after the lock sees every creation or allocation that released it.

use std::net::Ipv4Addr;

use async_trait::async_trait;
use sqlx::PgConnection;
use zun_types::network::Ipv4Net;

use super::{PORT_LOCK, PgStore, VNI_KEY, VNI_LOCK, lock, retrying};
use crate::sql::{self, NetworkRow, PortRow, SecurityGroupRow};
use crate::{NetworkRecord, NetworkStore, PortRecord, SecurityGroupRecord, StoreError};

async fn network_by_name(
    conn: &mut PgConnection,
    project_id: &str,
    name: &str,
) -> Result<Option<NetworkRecord>, StoreError> {
    let row: Option<NetworkRow> = sqlx::query_as(&sql::network_by_name_sql())
        .bind(project_id)
        .bind(name)
        .fetch_optional(conn)
        .await?;
    row.map(NetworkRecord::try_from).transpose()
}

async fn network_in(
    conn: &mut PgConnection,
    uuid: &str,
) -> Result<Option<NetworkRecord>, StoreError> {
    let row: Option<NetworkRow> = sqlx::query_as(&sql::network_sql())
        .bind(uuid)
        .fetch_optional(conn)
        .await?;
    row.map(NetworkRecord::try_from).transpose()
}

async fn port_in(
    conn: &mut PgConnection,
    container_uuid: &str,
    network_uuid: &str,
) -> Result<Option<PortRecord>, StoreError> {
    let row: Option<PortRow> = sqlx::query_as(&sql::port_sql())
        .bind(container_uuid)
        .bind(network_uuid)
        .fetch_optional(conn)
        .await?;
    row.map(PortRecord::try_from).transpose()
}

impl PgStore {
    async fn try_ensure_network(
        &self,
        project_id: &str,
        name: &str,
        pool: Ipv4Net,
        prefix: u8,
    ) -> Result<NetworkRecord, StoreError> {
        // Most calls find the network: no lock for them.
        let mut conn = self.pool.acquire().await?;
        if let Some(network) = network_by_name(&mut conn, project_id, name).await? {
            return Ok(network);
        }
        drop(conn);
        let mut tx = self.pool.begin().await?;
        lock(&mut tx, VNI_LOCK, VNI_KEY).await?;
        // Again under the lock: a concurrent caller may have created it.
        if let Some(network) = network_by_name(&mut tx, project_id, name).await? {
            return Ok(network);
        }
        let taken: Vec<i64> = sqlx::query_scalar(sql::NETWORK_VNIS)
            .fetch_all(&mut *tx)
            .await?;
        let network = sql::new_network(project_id, name, pool, prefix, &taken)?;
        sql::bind_network(sqlx::query(&sql::insert_network_sql()), &network)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(network)
    }

    async fn try_allocate_port(
        &self,
        network_uuid: &str,
        container_uuid: &str,
        project_id: &str,
        host: Option<&str>,
        fixed: Option<Ipv4Addr>,
    ) -> Result<PortRecord, StoreError> {
        let mut tx = self.pool.begin().await?;
        lock(&mut tx, PORT_LOCK, network_uuid).await?;
        if let Some(port) = port_in(&mut tx, container_uuid, network_uuid).await? {
            return Ok(port);
        }
        let network = network_in(&mut tx, network_uuid)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("network {network_uuid}")))?;
        let used: Vec<String> = sqlx::query_scalar(sql::PORT_ADDRESSES)
            .bind(network_uuid)
            .fetch_all(&mut *tx)
            .await?;
        let ip = sql::choose_address(&network, fixed, &sql::parse_addresses(&used)?)?;
        let port = sql::new_port(&network, container_uuid, project_id, host, ip);
        sql::bind_port(sqlx::query(&sql::insert_port_sql()), &port)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(port)
    }
}

#[async_trait]
impl NetworkStore for PgStore {
    async fn ensure_network(
        &self,
        project_id: &str,
        name: &str,
        pool: Ipv4Net,
        prefix: u8,
    ) -> Result<NetworkRecord, StoreError> {
        let what = format!("network {name} of project {project_id}");
        retrying(&what, || async {
            self.try_ensure_network(project_id, name, pool, prefix)
                .await
                .map(Some)
        })
        .await
    }

    async fn get_network(&self, uuid: &str) -> Result<Option<NetworkRecord>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        network_in(&mut conn, uuid).await
    }

    async fn delete_network(&self, uuid: &str) -> Result<bool, StoreError> {
        retrying(&format!("network {uuid}"), || async {
            let mut tx = self.pool.begin().await?;
            // The allocations' lock: no port lands on it meanwhile.
            lock(&mut tx, PORT_LOCK, uuid).await?;
            let ports: i64 = sqlx::query_scalar(sql::PORTS_ON_NETWORK)
                .bind(uuid)
                .fetch_one(&mut *tx)
                .await?;
            if ports > 0 {
                return Err(sql::network_in_use(uuid, ports));
            }
            let done = sqlx::query(sql::DELETE_NETWORK)
                .bind(uuid)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(Some(done.rows_affected() > 0))
        })
        .await
    }

    async fn network_members(
        &self,
        network_uuid: &str,
    ) -> Result<Vec<(String, Ipv4Addr)>, StoreError> {
        let rows: Vec<(String, String)> = sqlx::query_as(sql::NETWORK_MEMBERS)
            .bind(network_uuid)
            .fetch_all(&self.pool)
            .await?;
        sql::members(rows)
    }

    async fn release_port(
        &self,
        container_uuid: &str,
        network_uuid: &str,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(sql::RELEASE_PORT)
            .bind(container_uuid)
            .bind(network_uuid)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn list_networks(
        &self,
        project_id: Option<&str>,
    ) -> Result<Vec<NetworkRecord>, StoreError> {
        let rows: Vec<NetworkRow> = sqlx::query_as(&sql::list_networks_sql())
            .bind(project_id)
            .fetch_all(&self.pool)
            .await?;
        sql::convert(rows)
    }

    async fn allocate_port(
        &self,
        network: &NetworkRecord,
        container_uuid: &str,
        project_id: &str,
        host: Option<&str>,
        fixed: Option<Ipv4Addr>,
    ) -> Result<PortRecord, StoreError> {
        let what = format!(
            "port of container {container_uuid} on network {}",
            network.uuid
        );
        retrying(&what, || async {
            self.try_allocate_port(&network.uuid, container_uuid, project_id, host, fixed)
                .await
                .map(Some)
        })
        .await
    }

    async fn ports_of_container(
        &self,
        container_uuid: &str,
    ) -> Result<Vec<PortRecord>, StoreError> {
        let rows: Vec<PortRow> = sqlx::query_as(&sql::ports_of_container_sql())
            .bind(container_uuid)
            .fetch_all(&self.pool)
            .await?;
        sql::convert(rows)
    }

    async fn ports_on_host(&self, host: &str) -> Result<Vec<PortRecord>, StoreError> {
        let rows: Vec<PortRow> = sqlx::query_as(&sql::ports_on_host_sql())
            .bind(host)
            .fetch_all(&self.pool)
            .await?;
        sql::convert(rows)
    }

    async fn release_ports(&self, container_uuid: &str) -> Result<u64, StoreError> {
        let done = sqlx::query(sql::RELEASE_PORTS)
            .bind(container_uuid)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
    async fn ports_of_project(&self, project_id: &str) -> Result<Vec<PortRecord>, StoreError> {
        let rows: Vec<PortRow> = sqlx::query_as(&sql::ports_of_project_sql())
            .bind(project_id)
            .fetch_all(&self.pool)
            .await?;
        sql::convert(rows)
    }

    async fn ports_version(&self) -> Result<(i64, i64), StoreError> {
        Ok(sqlx::query_as(sql::PORTS_VERSION)
            .fetch_one(&self.pool)
            .await?)
    }

    async fn insert_security_group(&self, group: &SecurityGroupRecord) -> Result<(), StoreError> {
        let done = sql::bind_security_group(sqlx::query(&sql::insert_security_group_sql()), group)?
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(sql::security_group_exists(&group.name));
        }
        Ok(())
    }

    async fn get_security_group(
        &self,
        uuid: &str,
    ) -> Result<Option<SecurityGroupRecord>, StoreError> {
        let row: Option<SecurityGroupRow> = sqlx::query_as(&sql::security_group_sql())
            .bind(uuid)
            .fetch_optional(&self.pool)
            .await?;
        row.map(SecurityGroupRecord::try_from).transpose()
    }

    async fn list_security_groups(
        &self,
        project_id: Option<&str>,
    ) -> Result<Vec<SecurityGroupRecord>, StoreError> {
        let rows: Vec<SecurityGroupRow> = sqlx::query_as(&sql::list_security_groups_sql())
            .bind(project_id)
            .fetch_all(&self.pool)
            .await?;
        sql::convert(rows)
    }

    async fn delete_security_group(&self, uuid: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(sql::DELETE_SECURITY_GROUP)
            .bind(uuid)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}
