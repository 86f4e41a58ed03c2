//! Zun API v1 vocabulary shared by every other crate: the microversion table,
//! the container record and its view, create/update validation with upstream's
//! error texts, and the container state machine. Nothing here performs IO.

pub mod capsule;
pub mod container;
pub mod error;
pub mod host;
pub mod image;
pub mod microversion;
pub mod network;
pub mod security_group;
pub mod state;
pub mod validation;
pub mod view;
pub mod volume;

pub use container::{Container, ContainerStatus, RestartPolicy, TaskState};
pub use error::ApiError;
pub use microversion::Version;
