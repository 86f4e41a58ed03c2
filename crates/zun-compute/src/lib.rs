//! The compute agent of one host: it drives the host's container runtime
//! toward the desired state the store holds, and writes back what is true.

pub mod docker;
mod docker_io;
pub mod exec;
pub mod fake;
pub mod reconciler;
pub mod runtime;
pub mod sandbox;

pub use docker::DockerRuntime;
pub use fake::{FakeRuntime, PullFailure};
pub use reconciler::{Advertised, Agent, AgentConfig};
pub use runtime::{ContainerIo, Runtime, RuntimeError};
