//! How the API reaches a container's agent for synchronous requests. In the
//! all-in-one the agent is in the same process: these are direct calls to
//! the engine driver on its local socket.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use zun_api::{HostLink, Terminal};
use zun_compute::exec::{self, ExecRun};
use zun_compute::runtime::Session;
use zun_compute::{ContainerIo, Runtime, RuntimeError};
use zun_types::host::{ExecOutput, LogOptions, PathStat, Processes, Usage};
use zun_types::{ApiError, Container};

/// Most output `execute` with `run=true` returns (the end of it).
const MAX_EXEC_OUTPUT_BYTES: usize = 1024 * 1024;

pub struct LocalHost {
    runtime: Arc<dyn Runtime>,
    io: Arc<dyn ContainerIo>,
}

impl LocalHost {
    pub fn new(runtime: Arc<dyn Runtime>, io: Arc<dyn ContainerIo>) -> Self {
        Self { runtime, io }
    }
}

fn to_api(err: RuntimeError) -> ApiError {
    match err {
        RuntimeError::NotFound(text) | RuntimeError::Rejected(text) => ApiError::conflict(text),
        RuntimeError::Invalid(text) => ApiError::invalid(text),
        RuntimeError::Unavailable(text) => ApiError::service_unavailable(text),
    }
}

/// A missing path inside a container is the caller's mistake, not a state
/// conflict.
fn path_error(err: RuntimeError) -> ApiError {
    match err {
        RuntimeError::NotFound(text) => ApiError::new(404, "", text),
        other => to_api(other),
    }
}

fn terminal(session: Session) -> Terminal {
    Terminal {
        output: session
            .output
            .map_err(|e| std::io::Error::other(e.to_string()))
            .boxed(),
        input: session.input,
    }
}

#[async_trait]
impl HostLink for LocalHost {
    async fn logs(&self, container: &Container, options: &LogOptions) -> Result<String, ApiError> {
        self.runtime
            .logs(&container.engine_name(), options)
            .await
            .map_err(to_api)
    }

    async fn exec_run(
        &self,
        container: &Container,
        command: &[String],
        timeout: Duration,
    ) -> Result<Option<ExecOutput>, ApiError> {
        let run = exec::run_to_completion(
            self.io.as_ref(),
            &container.engine_name(),
            command,
            MAX_EXEC_OUTPUT_BYTES,
            timeout,
        )
        .await
        .map_err(to_api)?;
        Ok(match run {
            ExecRun::Finished(done) => Some(done),
            ExecRun::TimedOut => None,
        })
    }

    async fn exec_create(
        &self,
        container: &Container,
        command: &[String],
        interactive: bool,
    ) -> Result<String, ApiError> {
        self.io
            .exec_create(&container.engine_name(), command, interactive)
            .await
            .map_err(to_api)
    }

    async fn exec_resize(
        &self,
        _container: &Container,
        exec_id: &str,
        height: u16,
        width: u16,
    ) -> Result<(), ApiError> {
        self.io
            .exec_resize(exec_id, height, width)
            .await
            .map_err(path_error)
    }

    async fn exec_connect(
        &self,
        _container: &Container,
        exec_id: &str,
    ) -> Result<Terminal, ApiError> {
        // As upstream's proxy: always a raw (tty-style) stream, which for an
        // exec made without a tty simply carries its output unframed.
        self.io
            .exec_start(exec_id, true)
            .await
            .map(terminal)
            .map_err(to_api)
    }

    async fn attach(&self, container: &Container) -> Result<Terminal, ApiError> {
        self.io
            .attach(&container.engine_name())
            .await
            .map(terminal)
            .map_err(to_api)
    }

    async fn resize(&self, container: &Container, height: u16, width: u16) -> Result<(), ApiError> {
        self.io
            .resize_tty(&container.engine_name(), height, width)
            .await
            .map_err(to_api)
    }

    async fn top(
        &self,
        container: &Container,
        ps_args: Option<&str>,
    ) -> Result<Processes, ApiError> {
        self.io
            .top(&container.engine_name(), ps_args)
            .await
            .map_err(to_api)
    }

    async fn stats(&self, container: &Container) -> Result<Usage, ApiError> {
        self.io
            .stats(&container.engine_name())
            .await
            .map_err(to_api)
    }

    async fn get_archive(
        &self,
        container: &Container,
        path: &str,
        max_bytes: usize,
    ) -> Result<(PathStat, Bytes), ApiError> {
        let archive = self
            .io
            .get_archive(&container.engine_name(), path, max_bytes)
            .await
            .map_err(path_error)?;
        Ok((archive.stat, archive.tar))
    }

    async fn put_archive(
        &self,
        container: &Container,
        path: &str,
        tar: Bytes,
    ) -> Result<(), ApiError> {
        self.io
            .put_archive(&container.engine_name(), path, tar)
            .await
            .map_err(path_error)
    }

    async fn commit(
        &self,
        container: &Container,
        repository: &str,
        tag: &str,
    ) -> Result<String, ApiError> {
        self.io
            .commit(&container.engine_name(), repository, tag)
            .await
            .map_err(to_api)
    }
}

/// The API role alone has no agent endpoint to call yet (that arrives with
/// the separate-hosts work), so synchronous requests answer 503.
pub struct Unreachable;

impl Unreachable {
    fn refuse<T>(container: &Container) -> Result<T, ApiError> {
        Err(ApiError::service_unavailable(format!(
            "The compute host {} cannot be reached from this API process.",
            container.host.as_deref().unwrap_or("(none)")
        )))
    }
}

#[async_trait]
impl HostLink for Unreachable {
    async fn logs(&self, c: &Container, _: &LogOptions) -> Result<String, ApiError> {
        Self::refuse(c)
    }
    async fn exec_run(
        &self,
        c: &Container,
        _: &[String],
        _: Duration,
    ) -> Result<Option<ExecOutput>, ApiError> {
        Self::refuse(c)
    }
    async fn exec_create(&self, c: &Container, _: &[String], _: bool) -> Result<String, ApiError> {
        Self::refuse(c)
    }
    async fn exec_resize(&self, c: &Container, _: &str, _: u16, _: u16) -> Result<(), ApiError> {
        Self::refuse(c)
    }
    async fn exec_connect(&self, c: &Container, _: &str) -> Result<Terminal, ApiError> {
        Self::refuse(c)
    }
    async fn attach(&self, c: &Container) -> Result<Terminal, ApiError> {
        Self::refuse(c)
    }
    async fn resize(&self, c: &Container, _: u16, _: u16) -> Result<(), ApiError> {
        Self::refuse(c)
    }
    async fn top(&self, c: &Container, _: Option<&str>) -> Result<Processes, ApiError> {
        Self::refuse(c)
    }
    async fn stats(&self, c: &Container) -> Result<Usage, ApiError> {
        Self::refuse(c)
    }
    async fn get_archive(
        &self,
        c: &Container,
        _: &str,
        _: usize,
    ) -> Result<(PathStat, Bytes), ApiError> {
        Self::refuse(c)
    }
    async fn put_archive(&self, c: &Container, _: &str, _: Bytes) -> Result<(), ApiError> {
        Self::refuse(c)
    }
    async fn commit(&self, c: &Container, _: &str, _: &str) -> Result<String, ApiError> {
        Self::refuse(c)
    }
}
