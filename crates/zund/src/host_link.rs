//! How the API reaches a container's agent for synchronous requests. In the
//! all-in-one the agent is in the same process.

use std::sync::Arc;

use async_trait::async_trait;
use zun_api::{HostLink, LogRequest};
use zun_compute::runtime::LogOptions;
use zun_compute::{Runtime, RuntimeError};
use zun_types::{ApiError, Container};

pub struct LocalHost {
    runtime: Arc<dyn Runtime>,
}

impl LocalHost {
    pub fn new(runtime: Arc<dyn Runtime>) -> Self {
        Self { runtime }
    }
}

fn to_api(err: RuntimeError) -> ApiError {
    match err {
        RuntimeError::NotFound(text) => ApiError::conflict(text),
        RuntimeError::Rejected(text) => ApiError::conflict(text),
        RuntimeError::Unavailable(text) => ApiError::service_unavailable(text),
    }
}

#[async_trait]
impl HostLink for LocalHost {
    async fn logs(&self, container: &Container, request: &LogRequest) -> Result<String, ApiError> {
        let options = LogOptions {
            stdout: request.stdout,
            stderr: request.stderr,
            timestamps: request.timestamps,
            tail: request.tail,
            since: request.since,
        };
        self.runtime
            .logs(&container.engine_name(), &options)
            .await
            .map_err(to_api)
    }
}

/// The API role alone has no agent endpoint to call yet (that arrives with
/// the separate-hosts work), so synchronous requests answer 503.
pub struct Unreachable;

#[async_trait]
impl HostLink for Unreachable {
    async fn logs(&self, container: &Container, _: &LogRequest) -> Result<String, ApiError> {
        Err(ApiError::service_unavailable(format!(
            "The compute host {} cannot be reached from this API process.",
            container.host.as_deref().unwrap_or("(none)")
        )))
    }
}
