//! A container's mounts on its host (DESIGN decision 6: one trait per
//! backend kind): the [`VolumeDriver`] trait that makes a volume's data
//! ready on this host and removes it, the [`local::LocalDriver`] (the
//! embedded default), and [`files::InjectedFiles`], the files of `bind`
//! mounts. The agent binds what they return into the container.

use std::path::PathBuf;

use async_trait::async_trait;
use zun_types::volume::VolumeRef;

pub mod cinder;
pub mod files;
pub mod local;
mod mounts;

/// A host path bound into a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostMount {
    pub source: PathBuf,
    /// The absolute path inside the container.
    pub target: String,
    pub read_only: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    /// A host command (mkfs, mount) failed; `output` is what it printed.
    #[error("{command} failed: {output}")]
    Command { command: String, output: String },
    /// The volume's data is not where it must be (an image that will not
    /// mount, a mount point that is not one).
    #[error("{0}")]
    Broken(String),
}

impl VolumeError {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| VolumeError::Io { context, source }
    }
}

/// One host's volumes. Every method is idempotent, so an agent that dies
/// part way redoes it, and none ever formats data it did not just make.
#[async_trait]
pub trait VolumeDriver: Send + Sync + 'static {
    /// Makes `volume`'s data ready on this host (made, empty, the first
    /// time) and answers the directory to bind into the container.
    async fn attach(&self, volume: &VolumeRef) -> Result<PathBuf, VolumeError>;

    /// Lets go of the volume on this host, keeping its data.
    async fn detach(&self, uuid: &str) -> Result<(), VolumeError>;

    /// Removes the volume's data from this host.
    async fn destroy(&self, uuid: &str) -> Result<(), VolumeError>;

    /// Lets go of a volume the store no longer has: by default its data
    /// goes (a local volume's data is only ever Zun's); a driver whose
    /// volumes live in another service only detaches it.
    async fn forget(&self, uuid: &str) -> Result<(), VolumeError> {
        self.destroy(uuid).await
    }

    /// The uuids of the volumes with data on this host (for garbage
    /// collection: the caller forgets those the store no longer has).
    async fn volumes_here(&self) -> Result<Vec<String>, VolumeError>;
}
