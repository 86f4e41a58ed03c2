//! Capsules on this host. A capsule's create is one action: its sandbox
//! (the network driver's namespace for the capsule's uuid, an IPC
//! namespace and a `/dev/shm`), its volumes, then its init containers one
//! by one, each to a clean exit, then its containers together. Each member
//! is an engine container of its own (`zun-<member uuid>`) joined to the
//! sandbox, so the engine applies each one's restart policy. The capsule's
//! status is derived from its members' (`state::capsule_status`) whenever
//! one of them is observed and at every resync.

use std::time::Duration;

use futures_util::future::join_all;
use zun_types::container::{DesiredState, RecordKind};
use zun_types::state::capsule_status;
use zun_types::{Container, ContainerStatus};

use super::{Agent, WorkError, created_as, ignore_rejection};
use crate::runtime::{Attachment, EngineState, HostMount, RuntimeError, Sandbox};
use crate::sandbox::SharedNamespaces;

/// How often an init container is looked at while it runs.
const INIT_POLL: Duration = Duration::from_millis(100);

/// What a member joins.
struct CapsuleSandbox {
    network: Option<Attachment>,
    shared: SharedNamespaces,
}

impl CapsuleSandbox {
    fn sandbox(&self) -> Sandbox<'_> {
        Sandbox {
            network: self.network.as_ref(),
            ipc: Some(&self.shared.ipc),
        }
    }
}

fn display_name(member: &Container) -> String {
    member
        .capsule
        .as_ref()
        .and_then(|m| m.template_name.clone())
        .unwrap_or_else(|| member.name.clone())
}

impl Agent {
    /// The capsule's namespaces, made unless they exist.
    async fn capsule_sandbox(&self, capsule: &Container) -> Result<CapsuleSandbox, WorkError> {
        let network = match &self.network {
            Some(network) => Some(network.attach(capsule).await?),
            None => None,
        };
        let shared = self.namespaces.ensure(&capsule.uuid).await?;
        Ok(CapsuleSandbox { network, shared })
    }

    /// Creates (or finds) a member's engine container in the sandbox.
    async fn create_member(
        &self,
        member: &Container,
        sandbox: &CapsuleSandbox,
    ) -> Result<String, WorkError> {
        let image = self.prepare_image(member).await?;
        let mut mounts = self.prepare_mounts(member).await?;
        mounts.push(HostMount {
            source: sandbox.shared.shm.clone(),
            target: "/dev/shm".into(),
            read_only: false,
        });
        let id = self
            .retrying(|| {
                self.runtime
                    .create(member, &image, sandbox.sandbox(), &mounts)
            })
            .await?;
        Ok(id)
    }

    /// Writes what the engine holds of a member after its create; it
    /// shows the capsule's addresses, which it shares.
    async fn record_member(
        &self,
        member: &Container,
        engine_id: &str,
        sandbox: &CapsuleSandbox,
    ) -> Result<(), WorkError> {
        let name = member.engine_name();
        let observed = self.retrying(|| self.runtime.inspect(&name)).await?;
        let addresses = sandbox.network.as_ref().map(|n| n.addresses.clone());
        self.store
            .update_container(
                &member.uuid,
                &created_as(engine_id.to_owned(), addresses, observed),
                None,
            )
            .await?;
        Ok(())
    }

    /// Runs an init container to its end; an exit other than 0 fails the
    /// capsule, naming it. One that already ended well (a redone create)
    /// is not run again.
    async fn run_init(
        &self,
        member: &Container,
        sandbox: &CapsuleSandbox,
    ) -> Result<(), WorkError> {
        let name = member.engine_name();
        let engine_id = self.create_member(member, sandbox).await?;
        let mut started = false;
        loop {
            let observed = self.retrying(|| self.runtime.inspect(&name)).await?;
            let Some(observed) = observed else {
                return Err(WorkError::Runtime(RuntimeError::Rejected(format!(
                    "init container {} vanished from the engine",
                    display_name(member)
                ))));
            };
            match observed.state {
                EngineState::Created if !started => {
                    self.retrying(|| self.runtime.start(&name)).await?;
                    started = true;
                }
                EngineState::Exited | EngineState::Dead => {
                    self.record_member(member, &engine_id, sandbox).await?;
                    let code = observed.exit_code.unwrap_or(-1);
                    if code == 0 && observed.state == EngineState::Exited {
                        return Ok(());
                    }
                    let reason = observed
                        .error
                        .filter(|e| !e.is_empty())
                        .unwrap_or_else(|| format!("exited with code {code}"));
                    return Err(WorkError::Runtime(RuntimeError::Rejected(format!(
                        "init container {} failed: {reason}",
                        display_name(member)
                    ))));
                }
                _ => {
                    // Started earlier (by a previous agent, or just now).
                    started = true;
                    tokio::time::sleep(INIT_POLL).await;
                }
            }
        }
    }

    /// Creates and starts one of the capsule's containers.
    async fn start_member(
        &self,
        member: &Container,
        sandbox: &CapsuleSandbox,
    ) -> Result<(), WorkError> {
        let name = member.engine_name();
        let engine_id = self.create_member(member, sandbox).await?;
        self.retrying(|| self.runtime.start(&name)).await?;
        self.record_member(member, &engine_id, sandbox).await
    }

    /// Performs a capsule's create.
    pub(super) async fn create_capsule(&self, capsule: &Container) -> Result<(), WorkError> {
        let members = self.store.capsule_members(&capsule.uuid).await?;
        let sandbox = self.capsule_sandbox(capsule).await?;
        // Volumes are attached once, for the capsule; members bind them.
        self.prepare_mounts(capsule).await?;
        if let Some(network) = &sandbox.network {
            let addresses = network.addresses.clone();
            let mutate = move |c: &mut Container| {
                c.addresses = Some(addresses.clone());
                Ok(())
            };
            self.store
                .update_container(&capsule.uuid, &mutate, None)
                .await?;
        }
        let is_init = |m: &&Container| m.capsule.as_ref().is_some_and(|link| link.init);
        let mut inits: Vec<&Container> = members.iter().filter(is_init).collect();
        inits.sort_by_key(|m| m.capsule.as_ref().map(|link| link.index));
        for init in inits {
            self.run_init(init, &sandbox).await?;
        }
        let regular: Vec<&Container> = members.iter().filter(|m| !is_init(m)).collect();
        let started = join_all(regular.iter().map(|m| self.start_member(m, &sandbox))).await;
        for (member, result) in regular.iter().zip(started) {
            if let Err(err) = result {
                let reason = format!("container {} failed: {err}", display_name(member));
                return Err(WorkError::Runtime(RuntimeError::Rejected(reason)));
            }
        }
        self.refresh_capsule(&capsule.uuid, true).await?;
        tracing::info!(uuid = %capsule.uuid, members = members.len(), "capsule created");
        Ok(())
    }

    /// Removes what a capsule's failed create made: its members' engine
    /// containers (each member shows the capsule's failure) and its
    /// namespaces. The network and volumes go as for any failed create.
    pub(super) async fn discard_capsule(&self, capsule: &Container, reason: &str) {
        let members = match self.store.capsule_members(&capsule.uuid).await {
            Ok(members) => members,
            Err(err) => {
                tracing::warn!(uuid = %capsule.uuid, error = %err, "listing a failed capsule's members");
                Vec::new()
            }
        };
        for member in &members {
            if let Err(err) = self.runtime.remove(&member.engine_name()).await {
                tracing::warn!(uuid = %member.uuid, error = %err, "removing a failed capsule's member");
            }
            let reason = reason.to_owned();
            let mutate = move |c: &mut Container| {
                if c.status != ContainerStatus::Error {
                    c.status = ContainerStatus::Error;
                    c.status_reason = Some(format!("The capsule failed: {reason}"));
                }
                c.task_state = None;
                Ok(())
            };
            if let Err(err) = ignore_rejection(
                self.store
                    .update_container(&member.uuid, &mutate, None)
                    .await,
            ) {
                tracing::warn!(uuid = %member.uuid, error = %err, "recording a failed capsule's member");
            }
        }
        if let Err(err) = self.namespaces.remove(&capsule.uuid).await {
            tracing::warn!(uuid = %capsule.uuid, error = %err, "removing a failed capsule's namespaces");
        }
    }

    /// Performs a capsule's delete: its members, its sandbox, its volumes,
    /// then its rows.
    pub(super) async fn delete_capsule(&self, capsule: &Container) -> Result<(), WorkError> {
        let members = self.store.capsule_members(&capsule.uuid).await?;
        let removed = join_all(members.iter().map(|m| {
            let name = m.engine_name();
            async move { self.retrying(|| self.runtime.remove(&name)).await }
        }))
        .await;
        for result in removed {
            result?;
        }
        if let Some(network) = &self.network {
            network.detach(&capsule.uuid).await?;
        }
        self.namespaces.remove(&capsule.uuid).await?;
        self.release_mounts(capsule).await?;
        self.store.delete_container(&capsule.uuid).await?;
        tracing::info!(uuid = %capsule.uuid, "capsule deleted");
        Ok(())
    }

    /// Writes the capsule's status as its members give it, unless an
    /// action is in flight for it (`after_action`: its own create is what
    /// asks).
    pub(super) async fn refresh_capsule(
        &self,
        uuid: &str,
        after_action: bool,
    ) -> Result<(), WorkError> {
        let members = self.store.capsule_members(uuid).await?;
        let (status, reason) = capsule_status(&members.iter().collect::<Vec<_>>());
        let mutate = move |c: &mut Container| {
            if !after_action
                && (c.task_state.is_some()
                    || matches!(
                        c.status,
                        ContainerStatus::Creating | ContainerStatus::Deleting
                    ))
            {
                return Err(zun_types::ApiError::conflict("an action is in progress"));
            }
            // A failure already recorded keeps the reason that says why.
            let still_failed =
                c.status == ContainerStatus::Error && status == ContainerStatus::Error;
            if still_failed || (c.status == status && c.status_reason == reason) {
                return Err(zun_types::ApiError::conflict("unchanged"));
            }
            c.status = status;
            c.status_reason.clone_from(&reason);
            c.task_state = None;
            Ok(())
        };
        ignore_rejection(self.store.update_container(uuid, &mutate, None).await)?;
        Ok(())
    }

    /// Brings back a capsule's sandbox when it is gone (the host
    /// rebooted, or someone removed it) and points its members' engine
    /// containers at it, so their restarts find it. Members still running
    /// in the lost namespaces are restarted into the new ones, so the
    /// capsule is one sandbox again.
    pub(super) async fn restore_capsule(&self, capsule: &Container) -> Result<(), WorkError> {
        let network_gone = self
            .network
            .as_ref()
            .is_some_and(|n| !n.is_attached(&capsule.uuid));
        if !network_gone && self.namespaces.is_ready(&capsule.uuid).await {
            return Ok(());
        }
        tracing::info!(uuid = %capsule.uuid, "restoring the capsule's namespaces");
        let sandbox = self.capsule_sandbox(capsule).await?;
        let members = self.store.capsule_members(&capsule.uuid).await?;
        let rejoined = join_all(
            members
                .iter()
                .filter(|m| m.container_id.is_some())
                .map(|member| self.rejoin(member, &sandbox)),
        )
        .await;
        rejoined.into_iter().collect()
    }

    /// Points one member at the (new) sandbox; a member still running in
    /// the old namespaces is restarted into it.
    async fn rejoin(&self, member: &Container, sandbox: &CapsuleSandbox) -> Result<(), WorkError> {
        let name = member.engine_name();
        self.retrying(|| self.runtime.join_sandbox(&name, sandbox.sandbox()))
            .await?;
        let running = self
            .retrying(|| self.runtime.inspect(&name))
            .await?
            .is_some_and(|o| matches!(o.state, EngineState::Running | EngineState::Paused));
        if running {
            tracing::info!(uuid = %member.uuid, "restarting a member into its capsule's new namespaces");
            self.retrying(|| self.runtime.restart(&name, Some(10)))
                .await?;
        }
        Ok(())
    }

    /// A member removed behind the service's back that its restart policy
    /// would have brought back is made again in its capsule's sandbox.
    pub(super) async fn recreate_member(&self, member: &Container) -> Result<(), WorkError> {
        let Some(link) = &member.capsule else {
            return Ok(());
        };
        let Some(capsule) = self.store.get_container(&link.capsule_uuid).await? else {
            return Ok(());
        };
        if capsule.kind != RecordKind::Capsule
            || capsule.status == ContainerStatus::Deleting
            || capsule.desired_state == DesiredState::Deleted
        {
            return Ok(());
        }
        let sandbox = self.capsule_sandbox(&capsule).await?;
        self.start_member(member, &sandbox).await?;
        self.refresh_capsule(&capsule.uuid, false).await
    }

    /// Removes the namespaces of capsules the store no longer has.
    pub(super) async fn collect_capsule_garbage(&self, known: &std::collections::HashSet<&str>) {
        for uuid in self.namespaces.present().await {
            if known.contains(uuid.as_str()) || self.busy().contains(&uuid) {
                continue;
            }
            if matches!(self.store.get_container(&uuid).await, Ok(Some(_))) {
                continue;
            }
            tracing::info!(%uuid, "removing a gone capsule's namespaces");
            if let Err(err) = self.namespaces.remove(&uuid).await {
                tracing::warn!(%uuid, error = %err, "removing leftover capsule namespaces failed");
            }
        }
    }
}
