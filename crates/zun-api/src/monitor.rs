//! Keeps the API from lying about hosts that stopped reporting: the
//! containers of a compute host whose service is down (no heartbeat within
//! the down time, or forced down) are shown `Unknown`, with the reason. When
//! the host comes back, its agent's re-list writes what is true again.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use zun_store::Store;
use zun_types::{Container, ContainerStatus, view};

use crate::placement::SchedulerSettings;

/// Statuses left alone on a down host: a delete waits for the host (or an
/// admin's force delete), and `Error` already says more than `Unknown`.
fn keeps_status(status: ContainerStatus) -> bool {
    matches!(
        status,
        ContainerStatus::Unknown | ContainerStatus::Deleting | ContainerStatus::Error
    )
}

/// Runs until the task is dropped, checking every `every`.
pub async fn watch_hosts(store: Arc<dyn Store>, settings: SchedulerSettings, every: Duration) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        if let Err(err) = mark_down_hosts(store.as_ref(), &settings).await {
            tracing::warn!(error = %err, "checking for down hosts failed");
        }
    }
}

/// One pass: every container of every down host that is not already
/// `Unknown` (or waiting for a delete, or in `Error`) becomes `Unknown`.
pub async fn mark_down_hosts(
    store: &dyn Store,
    settings: &SchedulerSettings,
) -> Result<usize, zun_store::StoreError> {
    let now = Utc::now();
    let mut marked = 0;
    // The service rows say who is down; nodes and their usage are not needed.
    for service in store.list_services().await? {
        if service.binary != zun_store::COMPUTE_BINARY || service.is_up(now, settings.down_after) {
            continue;
        }
        let since = service
            .last_seen_up
            .map_or_else(|| "never".to_owned(), |t| view::action_time(&t));
        let reason = format!(
            "The compute host {} is down (last heard from: {since}); the container's state is unknown until it reports again.",
            service.host
        );
        let mut marked_here = 0;
        for container in store.containers_on_host(&service.host).await? {
            if keeps_status(container.status) {
                continue;
            }
            let reason = reason.clone();
            let mutate = move |c: &mut Container| {
                if keeps_status(c.status) {
                    return Err(zun_types::ApiError::conflict("already unknown"));
                }
                c.status = ContainerStatus::Unknown;
                c.status_reason = Some(reason.clone());
                c.task_state = None;
                Ok(())
            };
            match store.update_container(&container.uuid, &mutate, None).await {
                Ok(_) => marked_here += 1,
                Err(zun_store::StoreError::Rejected(_) | zun_store::StoreError::NotFound(_)) => {}
                Err(other) => return Err(other),
            }
        }
        if marked_here > 0 {
            tracing::warn!(host = %service.host, marked = marked_here, "compute host down: its containers are Unknown");
        }
        marked += marked_here;
    }
    Ok(marked)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeMap;

    use zun_store::{COMPUTE_BINARY, ComputeNode, HostStore, NewAction, SqliteStore, Store};
    use zun_types::container::DesiredState;

    use super::*;

    fn container(host: &str, status: ContainerStatus) -> Container {
        Container {
            cpu: Some(1.0),
            memory: Some("64".into()),
            host: Some(host.into()),
            status,
            desired_state: DesiredState::Running,
            ..Container::new(uuid::Uuid::new_v4().to_string(), "c", "p", "u", "busybox")
        }
    }

    #[tokio::test]
    async fn containers_of_a_down_host_become_unknown() {
        let store = SqliteStore::open_in_memory().await.unwrap();
        for host in ["up", "down"] {
            let node = ComputeNode {
                uuid: uuid::Uuid::new_v4().to_string(),
                hostname: host.into(),
                cpus: 4.0,
                mem_total: 4096,
                disk_total: 10,
                disk_quota_supported: false,
                runtimes: vec![],
                labels: BTreeMap::new(),
                architecture: None,
                os_type: None,
                os: None,
                kernel_version: None,
                enable_cpu_pinning: false,
                endpoint: None,
                overlay_address: None,
            };
            store.upsert_compute_node(&node).await.unwrap();
            store
                .report_service(host, COMPUTE_BINARY, None)
                .await
                .unwrap();
        }
        // The host named "down" is forced down; "up" keeps heartbeating.
        let change = zun_store::ServiceChange {
            disabled: None,
            forced_down: Some(true),
        };
        store
            .update_service("down", COMPUTE_BINARY, &change)
            .await
            .unwrap();
        let action = |host: &str| NewAction {
            request_id: "r".into(),
            action: "create".into(),
            user_id: "u".into(),
            project_id: "p".into(),
            host: Some(host.into()),
            params: serde_json::json!({}),
        };
        let mut made = Vec::new();
        for (host, status) in [
            ("down", ContainerStatus::Running),
            ("down", ContainerStatus::Stopped),
            ("down", ContainerStatus::Deleting),
            ("down", ContainerStatus::Error),
            ("up", ContainerStatus::Running),
        ] {
            let c = container(host, status);
            store
                .insert_container(&c, &action(host), None)
                .await
                .unwrap();
            made.push(c);
        }
        let settings = SchedulerSettings {
            policy: zun_scheduler::Policy::default(),
            down_after: Duration::from_secs(60),
        };
        assert_eq!(mark_down_hosts(&store, &settings).await.unwrap(), 2);
        let status = |i: usize| {
            let store = store.clone();
            let uuid = made[i].uuid.clone();
            async move { store.get_container(&uuid).await.unwrap().unwrap() }
        };
        let first = status(0).await;
        assert_eq!(first.status, ContainerStatus::Unknown);
        assert!(
            first
                .status_reason
                .unwrap()
                .contains("The compute host down is down")
        );
        assert_eq!(status(1).await.status, ContainerStatus::Unknown);
        assert_eq!(status(2).await.status, ContainerStatus::Deleting);
        assert_eq!(status(3).await.status, ContainerStatus::Error);
        assert_eq!(status(4).await.status, ContainerStatus::Running);
        // A second pass finds nothing more to mark.
        assert_eq!(mark_down_hosts(&store, &settings).await.unwrap(), 0);
    }
}
