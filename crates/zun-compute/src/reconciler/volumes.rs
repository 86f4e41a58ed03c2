//! A container's mounts on the agent's host: its volumes made ready by the
//! volume driver and its injected files written, before the engine creates
//! it (and again before a start, after a reboot unmounted them); released
//! after the engine removed it; leftovers of volumes and containers the
//! store no longer has removed at each resync.

use std::sync::Arc;

use zun_types::Container;
use zun_types::volume::Mount;
use zun_volume::files::InjectedFiles;
use zun_volume::{HostMount, VolumeDriver, VolumeError};

use super::{Agent, WorkError};

/// The host's volume driver and injected files.
pub struct Volumes {
    pub driver: Arc<dyn VolumeDriver>,
    pub files: InjectedFiles,
}

impl Agent {
    /// The host paths of `container`'s mounts, ready to bind.
    pub(super) async fn prepare_mounts(
        &self,
        container: &Container,
    ) -> Result<Vec<HostMount>, WorkError> {
        if container.mounts.is_empty() {
            return Ok(Vec::new());
        }
        let Some(volumes) = &self.volumes else {
            return Err(WorkError::Volume(VolumeError::Broken(
                "this host has no volume driver".into(),
            )));
        };
        let mut binds = volumes
            .files
            .write(&container.uuid, &container.mounts)
            .await?;
        for mount in &container.mounts {
            if let Mount::Volume {
                destination,
                volume,
                read_only,
            } = mount
            {
                let source = volumes.driver.attach(volume).await?;
                binds.push(HostMount {
                    source,
                    target: destination.clone(),
                    read_only: *read_only,
                });
            }
        }
        Ok(binds)
    }

    /// Lets go of `container`'s mounts once the engine no longer holds it:
    /// volumes made for it are removed, the others detached with their data.
    pub(super) async fn release_mounts(&self, container: &Container) -> Result<(), WorkError> {
        let Some(volumes) = &self.volumes else {
            return Ok(());
        };
        for mount in &container.mounts {
            if let Mount::Volume { volume, .. } = mount {
                if volume.auto_remove {
                    volumes.driver.destroy(&volume.uuid).await?;
                } else {
                    volumes.driver.detach(&volume.uuid).await?;
                }
            }
        }
        volumes.files.remove(&container.uuid).await?;
        Ok(())
    }

    /// Removes the data of volumes, and the files of containers, that the
    /// store no longer has (a force delete while this host was down, an
    /// agent that died between removing a container and its mounts).
    /// Each is checked against the store by itself, after the listing, so
    /// nothing made meanwhile is taken for a leftover.
    pub(super) async fn collect_volume_garbage(&self) -> Result<usize, WorkError> {
        let Some(volumes) = &self.volumes else {
            return Ok(0);
        };
        let mut removed = 0;
        for uuid in volumes.driver.volumes_here().await? {
            if self.store.get_volume(&uuid).await?.is_none() {
                tracing::info!(%uuid, "letting go of a volume the store no longer has");
                volumes.driver.forget(&uuid).await?;
                removed += 1;
            }
        }
        for uuid in volumes.files.containers_here().await? {
            if !self.busy().contains(&uuid) && self.store.get_container(&uuid).await?.is_none() {
                volumes.files.remove(&uuid).await?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}
