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
    for host in store.list_hosts().await? {
        let Some(service) = &host.service else {
            continue;
        };
        if service.is_up(now, settings.down_after) {
            continue;
        }
        let since = service
            .last_seen_up
            .map_or_else(|| "never".to_owned(), |t| view::action_time(&t));
        let reason = format!(
            "The compute host {} is down (last heard from: {since}); the container's state is unknown until it reports again.",
            host.node.hostname
        );
        for container in store.containers_on_host(&host.node.hostname).await? {
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
                Ok(_) => marked += 1,
                Err(zun_store::StoreError::Rejected(_) | zun_store::StoreError::NotFound(_)) => {}
                Err(other) => return Err(other),
            }
        }
        if marked > 0 {
            tracing::warn!(host = %host.node.hostname, marked, "compute host down: its containers are Unknown");
        }
    }
    Ok(marked)
}
