//! The agent endpoint (DESIGN decision 4): each compute agent serves the
//! [`HostLink`] operations for the containers of its own host over HTTP,
//! so an API in another process or on another machine reaches the engine
//! only through the agent, which reaches it on its local socket.
//!
//! Only the API may call it: every request carries a bearer token made
//! with the service key for this host, this request's method and path, and
//! the time ([`token`]); the agent checks it in constant time, accepts it
//! within [`TOKEN_LIFETIME_S`] of its time, and once only, so a token seen
//! on the wire is no good for another request nor later. One-shot calls are plain HTTP bodies; attach and
//! interactive exec are a websocket relayed chunk by chunk. The operations
//! themselves are the in-process link's ([`crate::local::LocalHost`]).

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::StreamExt;
use hex_header::encode as encode_header;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::io::AsyncWriteExt;
use zun_api::streams::MAX_ARCHIVE_BYTES;
use zun_api::{HostLink, Terminal};
use zun_secrets::SecretKey;
use zun_store::Store;
use zun_types::host::LogOptions;
use zun_types::{ApiError, Container};

/// What the endpoint's tokens are for; part of every token's MAC.
pub const TOKEN_PURPOSE: &str = "zun agent endpoint v2";
/// How far from the agent's clock a token's time may be: the API makes a
/// token right before its request, so this only has to cover the hosts'
/// clocks being a little apart.
pub const TOKEN_LIFETIME_S: u64 = 60;
/// Carries the [`zun_types::host::PathStat`] of a `get_archive` (JSON, hex).
pub const PATH_STAT_HEADER: &str = "x-zun-path-stat";
/// Largest websocket message the API may send (keystrokes and pastes).
const MAX_INPUT_MESSAGE_BYTES: usize = 1024 * 1024;

/// The bearer token the API presents to the agent of `host` for one
/// request: `<issued>.<nonce>.<mac>`, the MAC over the host, the method,
/// the path with its query as sent, the issue time in Unix seconds and a
/// random nonce (two identical requests in one second get two tokens, each
/// accepted once).
pub fn token(
    key: &SecretKey,
    host: &str,
    method: &str,
    path_and_query: &str,
    issued: u64,
) -> String {
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    let mac = key.mac(
        TOKEN_PURPOSE,
        &token_message(host, method, path_and_query, issued, &nonce),
    );
    format!("{issued}.{nonce}.{mac}")
}

fn token_message(
    host: &str,
    method: &str,
    path_and_query: &str,
    issued: u64,
    nonce: &str,
) -> String {
    format!("{host}\n{method}\n{path_and_query}\n{issued}\n{nonce}")
}

/// Now, in Unix seconds (0 on a clock before 1970, which no token matches).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The tokens accepted within their lifetime, so that none is accepted
/// twice; older ones are forgotten, their time alone refuses them.
#[derive(Debug, Default)]
struct Ledger {
    seen: HashSet<String>,
    /// Issue time and MAC, oldest accepted first.
    order: VecDeque<(u64, String)>,
}

impl Ledger {
    /// Records `mac`; false when it was accepted before.
    fn accept_once(&mut self, mac: &str, issued: u64, now: u64) -> bool {
        while let Some((at, _)) = self.order.front() {
            if at.saturating_add(TOKEN_LIFETIME_S) >= now {
                break;
            }
            if let Some((_, old)) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        if !self.seen.insert(mac.to_owned()) {
            return false;
        }
        self.order.push_back((issued, mac.to_owned()));
        true
    }
}

/// Checks the tokens presented to one host's endpoint.
struct TokenCheck {
    host: String,
    key: SecretKey,
    accepted: Mutex<Ledger>,
}

impl TokenCheck {
    /// Whether `presented` is a token of this host for this request, within
    /// its lifetime at `now`, and not used before.
    fn admits(&self, method: &str, path_and_query: &str, presented: &str, now: u64) -> bool {
        let mut parts = presented.splitn(3, '.');
        let (Some(issued), Some(nonce), Some(mac)) = (parts.next(), parts.next(), parts.next())
        else {
            return false;
        };
        let Ok(issued) = issued.parse::<u64>() else {
            return false;
        };
        if issued.abs_diff(now) > TOKEN_LIFETIME_S {
            return false;
        }
        let message = token_message(&self.host, method, path_and_query, issued, nonce);
        if !self.key.verify_mac(TOKEN_PURPOSE, &message, mac) {
            return false;
        }
        self.accepted
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .accept_once(mac, issued, now)
    }
}

/// Path of the endpoint's operations on container `uuid`.
pub fn container_path(uuid: &str) -> String {
    format!("/v1/agent/containers/{uuid}")
}

/// An error as it crosses the hop: everything the API's answer needs.
#[derive(Debug, Serialize, Deserialize)]
pub struct WireError {
    pub status: u16,
    pub code: String,
    pub title: String,
    pub detail: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ExecRunRequest {
    pub command: Vec<String>,
    pub timeout_ms: u64,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ExecCreateRequest {
    pub command: Vec<String>,
    pub interactive: bool,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ResizeRequest {
    #[serde(default)]
    pub exec_id: Option<String>,
    pub height: u16,
    pub width: u16,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct TopRequest {
    pub ps_args: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct CommitRequest {
    pub repository: String,
    pub tag: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ArchiveQuery {
    pub path: String,
    #[serde(default)]
    pub max_bytes: Option<usize>,
}

/// The answer to an [`ApiError`]: its status and a [`WireError`] body.
pub fn error_response(err: &ApiError) -> Response {
    let status = StatusCode::from_u16(err.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = WireError {
        status: err.status,
        code: err.code.to_owned(),
        title: err.title.clone(),
        detail: err.detail.clone(),
    };
    (status, Json(body)).into_response()
}

/// What one agent's endpoint serves.
pub struct Endpoint {
    /// This host; only its containers are served.
    host: String,
    store: Arc<dyn Store>,
    /// The in-process link to this host's engine.
    link: Arc<dyn HostLink>,
    tokens: TokenCheck,
}

impl Endpoint {
    pub fn new(
        host: String,
        store: Arc<dyn Store>,
        link: Arc<dyn HostLink>,
        key: SecretKey,
    ) -> Self {
        let tokens = TokenCheck {
            host: host.clone(),
            key,
            accepted: Mutex::new(Ledger::default()),
        };
        Self {
            host,
            store,
            link,
            tokens,
        }
    }

    /// The container `uuid` if it is on this host; else the refusal.
    async fn container(&self, uuid: &str) -> Result<Container, Response> {
        match self.store.get_container(uuid).await {
            Ok(Some(c)) if c.host.as_deref() == Some(self.host.as_str()) => Ok(c),
            Ok(Some(_)) => Err(StatusCode::FORBIDDEN.into_response()),
            Ok(None) => Err(error_response(&ApiError::container_not_found(uuid))),
            Err(err) => {
                tracing::warn!(error = %err, "agent endpoint: reading the container failed");
                Err(error_response(&ApiError::service_unavailable(
                    "The compute host cannot read the store.",
                )))
            }
        }
    }
}

/// The endpoint's routes, behind the token check.
pub fn router(endpoint: Arc<Endpoint>) -> Router {
    Router::new()
        .route(
            "/v1/agent/containers/{uuid}/archive",
            get(get_archive).put(put_archive),
        )
        .route("/v1/agent/containers/{uuid}/attach", get(attach))
        .route(
            "/v1/agent/containers/{uuid}/exec/{exec_id}",
            get(exec_connect),
        )
        .route("/v1/agent/containers/{uuid}/{op}", post(call))
        .layer(DefaultBodyLimit::max(MAX_ARCHIVE_BYTES + 64 * 1024))
        .route_layer(middleware::from_fn_with_state(
            Arc::clone(&endpoint),
            authenticate,
        ))
        .with_state(endpoint)
}

/// Refuses (401, no detail) any request without a token of this host for
/// it, before its body is read.
async fn authenticate(State(ep): State<Arc<Endpoint>>, request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
    match presented {
        Some(token)
            if ep
                .tokens
                .admits(request.method().as_str(), path, token.trim(), unix_now()) =>
        {
            next.run(request).await
        }
        _ => StatusCode::UNAUTHORIZED.into_response(),
    }
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid(format!("Malformed agent endpoint request: {e}")))
}

/// The one-shot operations: a JSON request, a JSON (or text) answer.
async fn call(
    State(ep): State<Arc<Endpoint>>,
    Path((uuid, op)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let container = match ep.container(&uuid).await {
        Ok(c) => c,
        Err(refusal) => return refusal,
    };
    let link = ep.link.as_ref();
    let c = &container;
    let answer: Result<Response, ApiError> = async {
        Ok(match op.as_str() {
            "logs" => {
                let options: LogOptions = parse(&body)?;
                link.logs(c, &options).await?.into_response()
            }
            "exec_run" => {
                let r: ExecRunRequest = parse(&body)?;
                let timeout = Duration::from_millis(r.timeout_ms);
                Json(link.exec_run(c, &r.command, timeout).await?).into_response()
            }
            "exec_create" => {
                let r: ExecCreateRequest = parse(&body)?;
                let exec_id = link.exec_create(c, &r.command, r.interactive).await?;
                Json(json!({ "exec_id": exec_id })).into_response()
            }
            "exec_resize" | "resize" => {
                let r: ResizeRequest = parse(&body)?;
                match (op.as_str(), r.exec_id) {
                    ("exec_resize", Some(exec_id)) => {
                        link.exec_resize(c, &exec_id, r.height, r.width).await?;
                    }
                    ("resize", None) => link.resize(c, r.height, r.width).await?,
                    _ => return Err(ApiError::invalid("Malformed agent endpoint request.")),
                }
                StatusCode::NO_CONTENT.into_response()
            }
            "top" => {
                let r: TopRequest = parse(&body)?;
                Json(link.top(c, r.ps_args.as_deref()).await?).into_response()
            }
            "stats" => Json(link.stats(c).await?).into_response(),
            "commit" => {
                let r: CommitRequest = parse(&body)?;
                let image_id = link.commit(c, &r.repository, &r.tag).await?;
                Json(json!({ "image_id": image_id })).into_response()
            }
            _ => return Err(ApiError::not_found_route()),
        })
    }
    .await;
    answer.unwrap_or_else(|err| error_response(&err))
}

async fn get_archive(
    State(ep): State<Arc<Endpoint>>,
    Path(uuid): Path<String>,
    Query(query): Query<ArchiveQuery>,
) -> Response {
    let container = match ep.container(&uuid).await {
        Ok(c) => c,
        Err(refusal) => return refusal,
    };
    let max = query
        .max_bytes
        .unwrap_or(MAX_ARCHIVE_BYTES)
        .min(MAX_ARCHIVE_BYTES);
    match ep.link.get_archive(&container, &query.path, max).await {
        Ok((stat, tar)) => {
            let stat = serde_json::to_vec(&stat).unwrap_or_default();
            let mut headers = HeaderMap::new();
            if let Ok(value) = HeaderValue::from_str(&encode_header(&stat)) {
                headers.insert(PATH_STAT_HEADER, value);
            }
            (headers, tar).into_response()
        }
        Err(err) => error_response(&err),
    }
}

async fn put_archive(
    State(ep): State<Arc<Endpoint>>,
    Path(uuid): Path<String>,
    Query(query): Query<ArchiveQuery>,
    tar: Bytes,
) -> Response {
    let container = match ep.container(&uuid).await {
        Ok(c) => c,
        Err(refusal) => return refusal,
    };
    match ep.link.put_archive(&container, &query.path, tar).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(err) => error_response(&err),
    }
}

async fn attach(
    State(ep): State<Arc<Endpoint>>,
    Path(uuid): Path<String>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let container = match ep.container(&uuid).await {
        Ok(c) => c,
        Err(refusal) => return refusal,
    };
    match ep.link.attach(&container).await {
        Ok(terminal) => upgrade_to(upgrade, terminal),
        Err(err) => error_response(&err),
    }
}

async fn exec_connect(
    State(ep): State<Arc<Endpoint>>,
    Path((uuid, exec_id)): Path<(String, String)>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let container = match ep.container(&uuid).await {
        Ok(c) => c,
        Err(refusal) => return refusal,
    };
    match ep.link.exec_connect(&container, &exec_id).await {
        Ok(terminal) => upgrade_to(upgrade, terminal),
        Err(err) => error_response(&err),
    }
}

fn upgrade_to(upgrade: WebSocketUpgrade, terminal: Terminal) -> Response {
    upgrade
        .max_message_size(MAX_INPUT_MESSAGE_BYTES)
        .on_upgrade(move |socket| relay(socket, terminal))
}

/// Engine output to the API, the API's input to the process, until either
/// ends; one chunk in flight at a time, so a slow API slows the stream
/// instead of growing a buffer. The end of the output is a normal close,
/// a failed stream an error close.
async fn relay(mut socket: WebSocket, terminal: Terminal) {
    let Terminal {
        mut output,
        mut input,
    } = terminal;
    loop {
        tokio::select! {
            chunk = output.next() => match chunk {
                Some(Ok(bytes)) => {
                    if socket.send(Message::Binary(bytes)).await.is_err() {
                        return;
                    }
                }
                Some(Err(error)) => {
                    tracing::warn!(%error, "container stream failed");
                    close(&mut socket, close_code::ERROR, "container stream failed").await;
                    return;
                }
                None => {
                    close(&mut socket, close_code::NORMAL, "").await;
                    return;
                }
            },
            message = socket.recv() => match message {
                Some(Ok(Message::Binary(data))) => {
                    if input.write_all(&data).await.is_err() || input.flush().await.is_err() {
                        return;
                    }
                }
                Some(Ok(Message::Text(text))) => {
                    if input.write_all(text.as_bytes()).await.is_err() || input.flush().await.is_err() {
                        return;
                    }
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Close(_)) | Err(_)) | None => return,
            },
        }
    }
}

async fn close(socket: &mut WebSocket, code: u16, reason: &str) {
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        })))
        .await;
}

/// The path stat travels in a header: JSON, hex-encoded (file names need
/// not be ASCII).
pub mod hex_header {
    pub fn encode(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn decode(text: &str) -> Option<Vec<u8>> {
        if !text.len().is_multiple_of(2) || !text.is_ascii() {
            return None;
        }
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATS: &str = "/v1/agent/containers/c1/stats";
    const NOW: u64 = 1_800_000_000;

    fn check(host: &str, key: &SecretKey) -> TokenCheck {
        TokenCheck {
            host: host.into(),
            key: key.clone(),
            accepted: Mutex::new(Ledger::default()),
        }
    }

    fn new_key() -> (tempfile::TempDir, SecretKey) {
        let dir = tempfile::tempdir().expect("temp dir");
        let key = SecretKey::load_or_create(&dir.path().join("secret.key")).expect("key");
        (dir, key)
    }

    #[test]
    fn a_token_admits_its_own_request_once() {
        let (_dir, key) = new_key();
        let h1 = check("h1", &key);
        let once = token(&key, "h1", "POST", STATS, NOW);
        assert!(h1.admits("POST", STATS, &once, NOW + 1));
        assert!(!h1.admits("POST", STATS, &once, NOW + 2), "replayed");
        let fresh = token(&key, "h1", "POST", STATS, NOW + 2);
        assert!(
            h1.admits("POST", STATS, &fresh, NOW + 2),
            "a new token is fine"
        );
        // The same request twice in one second: two tokens, both good once.
        let (one, two) = (
            token(&key, "h1", "POST", STATS, NOW + 3),
            token(&key, "h1", "POST", STATS, NOW + 3),
        );
        assert_ne!(one, two);
        assert!(h1.admits("POST", STATS, &one, NOW + 3));
        assert!(h1.admits("POST", STATS, &two, NOW + 3));
    }

    #[test]
    fn a_token_is_bound_to_host_method_path_and_time() {
        let (_dir, key) = new_key();
        let h1 = check("h1", &key);
        let made = |host: &str, method: &str, path: &str| token(&key, host, method, path, NOW);
        assert!(!h1.admits("POST", STATS, &made("h2", "POST", STATS), NOW));
        assert!(!h1.admits("POST", STATS, &made("h1", "GET", STATS), NOW));
        let logs = "/v1/agent/containers/c1/logs";
        assert!(!h1.admits("POST", STATS, &made("h1", "POST", logs), NOW));
        let other = "/v1/agent/containers/c2/stats";
        assert!(!h1.admits("POST", STATS, &made("h1", "POST", other), NOW));
        let archive = "/v1/agent/containers/c1/archive?path=%2Fetc";
        let elsewhere = "/v1/agent/containers/c1/archive?path=%2Froot";
        assert!(!h1.admits("GET", elsewhere, &made("h1", "GET", archive), NOW));
        // Another service key makes other tokens.
        let (_other_dir, other_key) = new_key();
        let foreign = token(&other_key, "h1", "POST", STATS, NOW);
        assert!(!h1.admits("POST", STATS, &foreign, NOW));
        // Too old, or too far ahead of this clock.
        let late = NOW + TOKEN_LIFETIME_S + 1;
        assert!(!h1.admits("POST", STATS, &made("h1", "POST", STATS), late));
        let early = NOW - TOKEN_LIFETIME_S - 1;
        assert!(!h1.admits("POST", STATS, &made("h1", "POST", STATS), early));
        assert!(h1.admits(
            "POST",
            STATS,
            &made("h1", "POST", STATS),
            NOW + TOKEN_LIFETIME_S
        ));
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let (_dir, key) = new_key();
        let h1 = check("h1", &key);
        let good = token(&key, "h1", "POST", STATS, NOW);
        let (_, rest) = good.split_once('.').expect("a dot");
        let (nonce, mac) = rest.split_once('.').expect("a second dot");
        let other_nonce = format!("{NOW}.{}.{mac}", "0".repeat(nonce.len()));
        for bad in [
            "",
            ".",
            "..",
            mac,
            rest,
            &format!("{NOW}.{mac}"),
            &format!("x.{rest}"),
            &format!("-1.{rest}"),
            &format!("{NOW}.{nonce}."),
            &format!("{NOW}.{nonce}.zz"),
            &other_nonce,
        ] {
            assert!(!h1.admits("POST", STATS, bad, NOW), "{bad:?}");
        }
        assert!(h1.admits("POST", STATS, &good, NOW));
    }

    #[test]
    fn the_ledger_forgets_only_what_time_alone_refuses() {
        let mut ledger = Ledger::default();
        assert!(ledger.accept_once("a", NOW, NOW));
        assert!(ledger.accept_once("b", NOW + 30, NOW + 30));
        assert!(!ledger.accept_once("a", NOW, NOW + TOKEN_LIFETIME_S));
        // Past a's lifetime it is forgotten; b is still remembered.
        assert!(ledger.accept_once("c", NOW + 61, NOW + 61));
        assert!(!ledger.seen.contains("a"));
        assert!(!ledger.accept_once("b", NOW + 30, NOW + 61));
        assert_eq!(ledger.order.len(), 2);
    }
}
