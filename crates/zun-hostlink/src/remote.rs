//! [`RemoteHost`]: the API's link to agents in other processes or on other
//! machines. It finds the container's host's endpoint in the store (the
//! agent records it in its compute node) and calls it with that host's
//! token; the agent's errors come back as the same [`ApiError`]s the
//! in-process link gives (status, code and message), and an agent that
//! cannot be reached is a 503.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::AsyncReadExt;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};
use zun_api::{HostLink, Terminal};
use zun_secrets::SecretKey;
use zun_store::Store;
use zun_types::host::{ExecOutput, LogOptions, PathStat, Processes, Usage};
use zun_types::{ApiError, Container};

use crate::endpoint::{
    self, ArchiveQuery, CommitRequest, ExecCreateRequest, ExecRunRequest, PATH_STAT_HEADER,
    ResizeRequest, TopRequest, WireError,
};

/// Deadline of quick calls (resize, top, stats, exec_create).
const QUICK: Duration = Duration::from_secs(60);
/// Deadline of calls that move data or build images.
const LONG: Duration = Duration::from_secs(1800);
/// How long connecting to an agent may take.
const CONNECT: Duration = Duration::from_secs(10);
/// The most of a log returned through the hop (its end, as `execute`
/// keeps the end of its output).
pub const MAX_LOG_BYTES: usize = 64 * 1024 * 1024;
/// The most of an agent's error body read.
const MAX_ERROR_BYTES: usize = 64 * 1024;
/// Bytes of API-side input buffered towards the agent.
const INPUT_BUFFER_BYTES: usize = 64 * 1024;

/// Error codes the in-process link produces; any other code crosses the
/// hop as none (the status, title and detail still do).
const KNOWN_CODES: &[&str] = &[
    "conflict",
    "invalid",
    "invalid-value",
    "schema-validation-error",
    "container-not-found",
    "over-quota",
    "invalid-state-exception",
];

/// Rebuilds the error an agent answered with `status` and `body`.
pub fn error_from_agent(host: &str, status: u16, body: &[u8]) -> ApiError {
    if let Ok(wire) = serde_json::from_slice::<WireError>(body) {
        let code = KNOWN_CODES
            .iter()
            .copied()
            .find(|c| *c == wire.code)
            .unwrap_or("");
        return ApiError {
            status: wire.status,
            code,
            title: wire.title,
            detail: wire.detail,
        };
    }
    let why = match status {
        401 => "refused this API's credentials (do the API and the agent share the service key?)",
        403 => "says the container is not on that host",
        _ => "gave an unexpected answer",
    };
    tracing::warn!(host, status, "agent endpoint {why}");
    ApiError::service_unavailable(format!("The agent of compute host {host} {why}."))
}

fn unreachable(host: &str, error: &dyn std::error::Error) -> ApiError {
    // With its causes: reqwest's own text leaves out why (a refused
    // certificate, a reset connection).
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    tracing::warn!(host, error = %text, "agent endpoint unreachable");
    ApiError::service_unavailable(format!(
        "The agent of compute host {host} cannot be reached."
    ))
}

/// Reads at most `max` bytes of `response`; with `keep_tail`, the last
/// `max` bytes of a longer body, else an error past `max`.
async fn read_bounded(
    host: &str,
    mut response: reqwest::Response,
    max: usize,
    keep_tail: bool,
) -> Result<Vec<u8>, ApiError> {
    let mut data = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| unreachable(host, &e))? {
        data.extend_from_slice(&chunk);
        if data.len() > max {
            if !keep_tail {
                return Err(ApiError::service_unavailable(format!(
                    "The agent of compute host {host} sent more than {max} bytes."
                )));
            }
            let excess = data.len() - max;
            data.drain(..excess);
        }
    }
    Ok(data)
}

pub struct RemoteHost {
    store: Arc<dyn Store>,
    key: SecretKey,
    http: reqwest::Client,
    /// What the API trusts of agents' certificates (websockets use it too).
    tls: Arc<rustls::ClientConfig>,
}

impl RemoteHost {
    pub fn new(
        store: Arc<dyn Store>,
        key: SecretKey,
        tls: rustls::ClientConfig,
    ) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT)
            .use_preconfigured_tls(tls.clone())
            .build()?;
        Ok(Self {
            store,
            key,
            http,
            tls: Arc::new(tls),
        })
    }

    /// The container's host and the base URL of its operations there.
    async fn locate(&self, container: &Container) -> Result<(String, String), ApiError> {
        let Some(host) = container.host.clone() else {
            return Err(ApiError::conflict(format!(
                "Container {} is not on any host.",
                container.uuid
            )));
        };
        let view = self.store.get_host(&host).await.map_err(|e| {
            tracing::warn!(error = %e, "reading the compute node failed");
            ApiError::service_unavailable("The store cannot be read.")
        })?;
        let Some(url) = view.and_then(|v| v.node.endpoint) else {
            return Err(ApiError::service_unavailable(format!(
                "The compute host {host} has not recorded an agent endpoint; \
                 its agent may not be running."
            )));
        };
        let base = format!(
            "{}{}",
            url.trim_end_matches('/'),
            endpoint::container_path(&container.uuid)
        );
        Ok((host, base))
    }

    /// The `Authorization` header of one request to `host`'s agent: a
    /// token made now for that method and path.
    fn bearer(
        &self,
        host: &str,
        method: &str,
        path_and_query: &str,
    ) -> Result<reqwest::header::HeaderValue, ApiError> {
        let token = endpoint::token(
            &self.key,
            host,
            method,
            path_and_query,
            endpoint::unix_now(),
        );
        format!("Bearer {token}")
            .parse()
            .map_err(|e| unreachable(host, &e))
    }

    async fn send(
        &self,
        host: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ApiError> {
        let mut request = request.build().map_err(|e| unreachable(host, &e))?;
        let url = request.url();
        let path = match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        };
        let bearer = self.bearer(host, request.method().as_str(), &path)?;
        request
            .headers_mut()
            .insert(reqwest::header::AUTHORIZATION, bearer);
        let response = self
            .http
            .execute(request)
            .await
            .map_err(|e| unreachable(host, &e))?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status().as_u16();
        let body = read_bounded(host, response, MAX_ERROR_BYTES, false)
            .await
            .unwrap_or_default();
        Err(error_from_agent(host, status, &body))
    }

    /// POSTs `body` to operation `op`; returns the host and the answer.
    async fn post(
        &self,
        container: &Container,
        op: &str,
        body: &impl Serialize,
        timeout: Duration,
    ) -> Result<(String, reqwest::Response), ApiError> {
        let (host, base) = self.locate(container).await?;
        let request = self
            .http
            .post(format!("{base}/{op}"))
            .json(body)
            .timeout(timeout);
        let response = self.send(&host, request).await?;
        Ok((host, response))
    }

    async fn post_json<T: DeserializeOwned>(
        &self,
        container: &Container,
        op: &str,
        body: &impl Serialize,
        timeout: Duration,
    ) -> Result<T, ApiError> {
        let (host, response) = self.post(container, op, body, timeout).await?;
        let data = read_bounded(&host, response, MAX_LOG_BYTES, false).await?;
        serde_json::from_slice(&data).map_err(|e| unreachable(&host, &e))
    }

    /// Opens the websocket at `path` (below the container's base URL).
    async fn connect(&self, container: &Container, path: &str) -> Result<Terminal, ApiError> {
        let (host, base) = self.locate(container).await?;
        let url = match base.split_once("://") {
            Some(("https", rest)) => format!("wss://{rest}{path}"),
            Some((_, rest)) => format!("ws://{rest}{path}"),
            None => base.clone(),
        };
        let mut request = url
            .into_client_request()
            .map_err(|e| unreachable(&host, &e))?;
        let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
        let bearer = self.bearer(&host, "GET", path)?;
        request.headers_mut().insert("authorization", bearer);
        let config = WebSocketConfig::default().max_message_size(Some(16 * 1024 * 1024));
        let connector = tokio_tungstenite::Connector::Rustls(Arc::clone(&self.tls));
        let connecting = tokio_tungstenite::connect_async_tls_with_config(
            request,
            Some(config),
            false,
            Some(connector),
        );
        let socket = match tokio::time::timeout(CONNECT + QUICK, connecting).await {
            Err(elapsed) => return Err(unreachable(&host, &elapsed)),
            Ok(Err(tungstenite::Error::Http(response))) => {
                let body = response.body().as_deref().unwrap_or_default();
                return Err(error_from_agent(&host, response.status().as_u16(), body));
            }
            Ok(Err(error)) => return Err(unreachable(&host, &error)),
            Ok(Ok((socket, _))) => socket,
        };
        let (mut sink, stream) = socket.split();
        // Input: what the API writes goes to the agent chunk by chunk; when
        // the terminal is dropped the pipe ends and the websocket closes.
        let (writer, mut reader) = tokio::io::duplex(INPUT_BUFFER_BYTES);
        tokio::spawn(async move {
            let mut buffer = vec![0u8; 16 * 1024];
            loop {
                match reader.read(&mut buffer).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let chunk = Bytes::copy_from_slice(&buffer[..n]);
                        if sink.send(Message::Binary(chunk)).await.is_err() {
                            return;
                        }
                    }
                }
            }
            let _ = sink.close().await;
        });
        let output = futures_util::stream::unfold(Some(stream), |state| async move {
            let mut stream = state?;
            loop {
                match stream.next().await {
                    Some(Ok(Message::Binary(data))) => return Some((Ok(data), Some(stream))),
                    Some(Ok(Message::Text(text))) => {
                        let data = Bytes::copy_from_slice(text.as_bytes());
                        return Some((Ok(data), Some(stream)));
                    }
                    Some(Ok(Message::Close(Some(frame)))) if frame.code != CloseCode::Normal => {
                        let error = std::io::Error::other(frame.reason.to_string());
                        return Some((Err(error), None));
                    }
                    Some(Ok(Message::Close(_))) | None => return None,
                    Some(Ok(_)) => {}
                    Some(Err(error)) => return Some((Err(std::io::Error::other(error)), None)),
                }
            }
        });
        Ok(Terminal {
            output: output.boxed(),
            input: Box::pin(writer),
        })
    }
}

#[async_trait]
impl HostLink for RemoteHost {
    async fn logs(&self, container: &Container, options: &LogOptions) -> Result<String, ApiError> {
        let (host, response) = self.post(container, "logs", options, LONG).await?;
        let data = read_bounded(&host, response, MAX_LOG_BYTES, true).await?;
        Ok(String::from_utf8_lossy(&data).into_owned())
    }

    async fn exec_run(
        &self,
        container: &Container,
        command: &[String],
        timeout: Duration,
    ) -> Result<Option<ExecOutput>, ApiError> {
        let body = ExecRunRequest {
            command: command.to_vec(),
            timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
        };
        self.post_json(container, "exec_run", &body, timeout + QUICK)
            .await
    }

    async fn exec_create(
        &self,
        container: &Container,
        command: &[String],
        interactive: bool,
    ) -> Result<String, ApiError> {
        let body = ExecCreateRequest {
            command: command.to_vec(),
            interactive,
        };
        let answer: serde_json::Value = self
            .post_json(container, "exec_create", &body, QUICK)
            .await?;
        Ok(answer["exec_id"].as_str().unwrap_or_default().to_owned())
    }

    async fn exec_resize(
        &self,
        container: &Container,
        exec_id: &str,
        height: u16,
        width: u16,
    ) -> Result<(), ApiError> {
        let body = ResizeRequest {
            exec_id: Some(exec_id.to_owned()),
            height,
            width,
        };
        self.post(container, "exec_resize", &body, QUICK).await?;
        Ok(())
    }

    async fn exec_connect(
        &self,
        container: &Container,
        exec_id: &str,
    ) -> Result<Terminal, ApiError> {
        if exec_id.is_empty()
            || !exec_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(ApiError::invalid("Invalid exec id."));
        }
        self.connect(container, &format!("/exec/{exec_id}")).await
    }

    async fn attach(&self, container: &Container) -> Result<Terminal, ApiError> {
        self.connect(container, "/attach").await
    }

    async fn resize(&self, container: &Container, height: u16, width: u16) -> Result<(), ApiError> {
        let body = ResizeRequest {
            exec_id: None,
            height,
            width,
        };
        self.post(container, "resize", &body, QUICK).await?;
        Ok(())
    }

    async fn top(
        &self,
        container: &Container,
        ps_args: Option<&str>,
    ) -> Result<Processes, ApiError> {
        let body = TopRequest {
            ps_args: ps_args.map(str::to_owned),
        };
        self.post_json(container, "top", &body, QUICK).await
    }

    async fn stats(&self, container: &Container) -> Result<Usage, ApiError> {
        self.post_json(container, "stats", &serde_json::json!({}), QUICK)
            .await
    }

    async fn get_archive(
        &self,
        container: &Container,
        path: &str,
        max_bytes: usize,
    ) -> Result<(PathStat, Bytes), ApiError> {
        let (host, base) = self.locate(container).await?;
        let query = ArchiveQuery {
            path: path.to_owned(),
            max_bytes: Some(max_bytes),
        };
        let request = self
            .http
            .get(format!("{base}/archive"))
            .query(&query)
            .timeout(LONG);
        let response = self.send(&host, request).await?;
        let stat = response
            .headers()
            .get(PATH_STAT_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(endpoint::hex_header::decode)
            .and_then(|json| serde_json::from_slice::<PathStat>(&json).ok())
            .ok_or_else(|| {
                let missing = std::io::Error::other("no path stat in the archive answer");
                unreachable(&host, &missing)
            })?;
        let tar = read_bounded(&host, response, max_bytes, false).await?;
        Ok((stat, Bytes::from(tar)))
    }

    async fn put_archive(
        &self,
        container: &Container,
        path: &str,
        tar: Bytes,
    ) -> Result<(), ApiError> {
        let (host, base) = self.locate(container).await?;
        let query = ArchiveQuery {
            path: path.to_owned(),
            max_bytes: None,
        };
        let request = self
            .http
            .put(format!("{base}/archive"))
            .query(&query)
            .body(tar)
            .timeout(LONG);
        self.send(&host, request).await?;
        Ok(())
    }

    async fn commit(
        &self,
        container: &Container,
        repository: &str,
        tag: &str,
    ) -> Result<String, ApiError> {
        let body = CommitRequest {
            repository: repository.to_owned(),
            tag: tag.to_owned(),
        };
        let answer: serde_json::Value = self.post_json(container, "commit", &body, LONG).await?;
        Ok(answer["image_id"].as_str().unwrap_or_default().to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoint::error_response;

    async fn across(err: &ApiError) -> ApiError {
        let response = error_response(err);
        let status = response.status().as_u16();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        error_from_agent("h1", status, &body)
    }

    #[tokio::test]
    async fn errors_keep_status_code_and_message_across_the_hop() {
        for err in [
            ApiError::conflict("Container abc is not running"),
            ApiError::invalid("bad tty"),
            ApiError::new(404, "", "Could not find the file /nope in container abc"),
            ApiError::service_unavailable("The engine is down"),
            ApiError::container_not_found("abc"),
        ] {
            assert_eq!(across(&err).await, err);
        }
        // A code the API does not know crosses without it, message intact.
        let odd = ApiError::new(418, "teapot", "short and stout");
        let back = across(&odd).await;
        assert_eq!((back.status, back.code), (418, ""));
        assert_eq!(back.detail, "short and stout");
    }

    #[test]
    fn refusals_and_garbage_become_503s_naming_the_host() {
        for status in [401, 403, 500, 502] {
            let err = error_from_agent("h2", status, b"");
            assert_eq!(err.status, 503, "{status}");
            assert!(err.detail.contains("compute host h2"), "{}", err.detail);
        }
        assert!(
            error_from_agent("h2", 401, b"")
                .detail
                .contains("service key")
        );
    }
}
