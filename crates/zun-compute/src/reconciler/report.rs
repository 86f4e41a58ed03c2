//! The host's heartbeat: its service row (so the API knows it is up) and its
//! compute node (what it offers, for the scheduler).

use std::sync::Arc;

use zun_store::{COMPUTE_BINARY, ComputeNode};

use super::Agent;
use crate::runtime::HostFacts;

impl Agent {
    pub(super) async fn report_periodically(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.config.report_interval);
        tick.tick().await;
        loop {
            tick.tick().await;
            self.report().await;
        }
    }

    /// Records what the host offers (when the engine answers) and a
    /// heartbeat (always: the agent is alive even when its engine is not,
    /// and its containers' statuses say the rest). [`Agent::run`] does it
    /// first; a process serving the API beside its agent calls it before
    /// listening, so the scheduler sees the host from the first request.
    pub async fn report(&self) {
        match self.runtime.host_facts().await {
            Ok(facts) => {
                let node = self.node(facts);
                if let Err(err) = self.store.upsert_compute_node(&node).await {
                    tracing::warn!(error = %err, "recording the compute node failed");
                }
            }
            Err(err) => tracing::warn!(error = %err, "reading the host's facts failed"),
        }
        let zone = self.config.availability_zone.as_deref();
        if let Err(err) = self
            .store
            .report_service(&self.config.host, COMPUTE_BINARY, zone)
            .await
        {
            tracing::warn!(error = %err, "heartbeat failed");
        }
    }

    fn node(&self, facts: HostFacts) -> ComputeNode {
        let advertise = &self.config.advertise;
        ComputeNode {
            // The store keeps the uuid the node already has.
            uuid: uuid::Uuid::new_v4().to_string(),
            hostname: self.config.host.clone(),
            cpus: advertise.cpus.unwrap_or(facts.cpus),
            mem_total: advertise.memory.unwrap_or(facts.mem_total),
            disk_total: advertise.disk.unwrap_or(facts.disk_total),
            disk_quota_supported: false,
            runtimes: facts.runtimes,
            labels: facts.labels,
            architecture: facts.architecture,
            os_type: facts.os_type,
            os: facts.os,
            kernel_version: facts.kernel_version,
            enable_cpu_pinning: false,
            endpoint: self.config.endpoint.clone(),
            overlay_address: self.config.overlay_address.clone(),
        }
    }
}
