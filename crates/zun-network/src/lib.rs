//! Container networking (DESIGN decisions 6 and 9): the [`NetworkDriver`]
//! trait the compute agent composes with its runtime, and the built-in
//! driver ([`builtin::BuiltinDriver`]).
//!
//! A driver owns each container's network namespace: it makes the named
//! namespace `zun-<uuid>`, plumbs it, and hands its path to the runtime,
//! which starts the container inside it (Docker through the `zun-runc`
//! wrapper, containerd and VMs directly). Nothing above the trait knows
//! which driver is in use.

use std::path::PathBuf;

use async_trait::async_trait;
use zun_store::StoreError;
use zun_types::Container;
use zun_types::network::RequestedNetwork;

pub mod builtin;
mod command;
pub mod rules;

pub use builtin::{BuiltinConfig, BuiltinDriver};

/// Where named network namespaces live (iproute2's convention, so `ip -n`
/// and `ip netns` see ours).
pub const NETNS_DIR: &str = "/var/run/netns";

/// The namespace of container `uuid`.
pub fn netns_name(uuid: &str) -> String {
    format!("zun-{uuid}")
}

#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// A host command failed (iproute2, nftables).
    #[error("{command} failed: {detail}")]
    Command { command: String, detail: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Io(String),
    /// No network of the container's project by that name or id.
    #[error("Neutron network {0} could not be found.")]
    NotFound(String),
    /// Something this driver cannot do.
    #[error("{0}")]
    Unsupported(String),
}

/// What a runtime needs to start a container on its network.
#[derive(Debug, Clone, PartialEq)]
pub struct Attachment {
    /// The network namespace the container must run in.
    pub netns: PathBuf,
    /// Upstream's `addresses` value for the container's view.
    pub addresses: serde_json::Value,
    /// Files to bind read-only into the container: (host path, path inside).
    pub files: Vec<(PathBuf, String)>,
}

/// One host's container networking. Every method is idempotent, so an agent
/// that dies part way redoes it.
#[async_trait]
pub trait NetworkDriver: Send + Sync + 'static {
    /// Host-wide set-up, when the agent starts: forwarding, and the rules
    /// that isolate networks, stop spoofing and translate egress.
    async fn prepare_host(&self) -> Result<(), NetworkError>;

    /// Whether container `uuid`'s namespace exists on this host (it is gone
    /// after a reboot, with everything else under /run).
    fn is_attached(&self, uuid: &str) -> bool;

    /// Gives the container its addresses (kept in the store) and plumbs
    /// them on this host.
    async fn attach(&self, container: &Container) -> Result<Attachment, NetworkError>;

    /// Removes the container's plumbing from this host and releases its
    /// addresses.
    async fn detach(&self, container_uuid: &str) -> Result<(), NetworkError>;

    /// Connects the container (running or not) to one more network;
    /// returns its `addresses` now.
    async fn attach_network(
        &self,
        container: &Container,
        network: &RequestedNetwork,
    ) -> Result<serde_json::Value, NetworkError>;

    /// Disconnects the container from `network` (name or id); returns its
    /// `addresses` now.
    async fn detach_network(
        &self,
        container: &Container,
        network: &str,
    ) -> Result<serde_json::Value, NetworkError>;

    /// Sets the container's security rules to what its groups (in the
    /// store) say now: after `add/remove_security_group`.
    async fn apply_security_groups(&self, container: &Container) -> Result<(), NetworkError>;

    /// Brings the member sets of the security groups this host's rules
    /// name up to date when the store's ports changed (containers come and
    /// go on other hosts); cheap when nothing changed. Called every second.
    async fn refresh_members(&self) -> Result<(), NetworkError> {
        Ok(())
    }

    /// Removes this host's network objects of containers the store no
    /// longer has (a crash between a delete's steps, a killed agent), and
    /// brings the rules of the `live` containers (the host's, as the store
    /// has them) back to what the store says. Returns how many containers'
    /// objects it removed.
    async fn collect_garbage(&self, live: &[Container]) -> Result<usize, NetworkError>;
}
