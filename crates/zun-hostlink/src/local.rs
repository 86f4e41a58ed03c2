//! How the API reaches a container's agent for synchronous requests.
//! [`LocalHost`] is the agent's own side: direct calls to the engine driver
//! on its local socket. The all-in-one uses it for its own host, and every
//! agent's endpoint ([`crate::endpoint`]) serves it to APIs elsewhere
//! ([`crate::remote::RemoteHost`]).

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

#[derive(Clone)]
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

/// The all-in-one's link: its own host's containers through the in-process
/// [`LocalHost`], every other host's through its agent endpoint.
pub struct Dispatch {
    pub host: String,
    pub local: LocalHost,
    pub remote: crate::remote::RemoteHost,
}

impl Dispatch {
    fn pick(&self, container: &Container) -> &dyn HostLink {
        if container.host.as_deref() == Some(self.host.as_str()) {
            &self.local
        } else {
            &self.remote
        }
    }
}

#[async_trait]
impl HostLink for Dispatch {
    async fn logs(&self, c: &Container, o: &LogOptions) -> Result<String, ApiError> {
        self.pick(c).logs(c, o).await
    }
    async fn exec_run(
        &self,
        c: &Container,
        command: &[String],
        timeout: Duration,
    ) -> Result<Option<ExecOutput>, ApiError> {
        self.pick(c).exec_run(c, command, timeout).await
    }
    async fn exec_create(
        &self,
        c: &Container,
        command: &[String],
        interactive: bool,
    ) -> Result<String, ApiError> {
        self.pick(c).exec_create(c, command, interactive).await
    }
    async fn exec_resize(&self, c: &Container, id: &str, h: u16, w: u16) -> Result<(), ApiError> {
        self.pick(c).exec_resize(c, id, h, w).await
    }
    async fn exec_connect(&self, c: &Container, id: &str) -> Result<Terminal, ApiError> {
        self.pick(c).exec_connect(c, id).await
    }
    async fn attach(&self, c: &Container) -> Result<Terminal, ApiError> {
        self.pick(c).attach(c).await
    }
    async fn resize(&self, c: &Container, h: u16, w: u16) -> Result<(), ApiError> {
        self.pick(c).resize(c, h, w).await
    }
    async fn top(&self, c: &Container, ps_args: Option<&str>) -> Result<Processes, ApiError> {
        self.pick(c).top(c, ps_args).await
    }
    async fn stats(&self, c: &Container) -> Result<Usage, ApiError> {
        self.pick(c).stats(c).await
    }
    async fn get_archive(
        &self,
        c: &Container,
        path: &str,
        max_bytes: usize,
    ) -> Result<(PathStat, Bytes), ApiError> {
        self.pick(c).get_archive(c, path, max_bytes).await
    }
    async fn put_archive(&self, c: &Container, path: &str, tar: Bytes) -> Result<(), ApiError> {
        self.pick(c).put_archive(c, path, tar).await
    }
    async fn commit(&self, c: &Container, repo: &str, tag: &str) -> Result<String, ApiError> {
        self.pick(c).commit(c, repo, tag).await
    }
}
