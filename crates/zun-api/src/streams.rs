//! Container actions that reach into a running container through its host
//! (reference §4.1, §4.6, §9): execute, attach, tty resizes, top, stats,
//! archives and commit, and the websocket that carries attach and
//! interactive exec sessions.
//!
//! The websocket is served by the API itself at `/websocket` (upstream ran a
//! separate proxy on port 6784; the client only follows the URL it is
//! given). Its tokens are single-use, expire, and are bound to one container
//! of one project (and one exec instance); only their hash is stored.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Json, body::Bytes};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::Utc;
use futures_util::StreamExt;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use zun_store::WebsocketGrant;
use zun_types::microversion::Version;
use zun_types::state::Action;
use zun_types::validation;
use zun_types::{ApiError, Container, ContainerStatus};

use crate::context::Ctx;
use crate::error::Error;
use crate::params::Params;
use crate::{ApiState, Terminal, null_response};

type Result<T> = std::result::Result<T, Error>;

/// Path of the websocket endpoint on the API's listener.
pub const WEBSOCKET_PATH: &str = "/websocket";

/// Largest tar `get_archive` returns and `put_archive` accepts: both travel
/// whole (base64) in one JSON body, so the API holds them in memory.
pub const MAX_ARCHIVE_BYTES: usize = 32 * 1024 * 1024;

/// Request body limit of `put_archive`: the archive in base64 plus the JSON
/// around it.
pub const MAX_PUT_ARCHIVE_BODY_BYTES: usize = MAX_ARCHIVE_BYTES / 3 * 4 + 64 * 1024;

/// Largest websocket message accepted from a client (keystrokes and pastes).
const MAX_CLIENT_MESSAGE_BYTES: usize = 1024 * 1024;

/// How `execute`, `attach` and the websocket behave; from the configuration.
#[derive(Debug, Clone)]
pub struct StreamSettings {
    /// Public URL of the websocket endpoint, e.g. `wss://zun.example.com/websocket`
    /// behind a TLS proxy. `None`: `ws://<the Host the client used>/websocket`.
    pub websocket_base_url: Option<String>,
    /// Host names a browser page may open a websocket from, besides the
    /// API's own (upstream's `allowed_origins`).
    pub allowed_origins: Vec<String>,
    /// How long a websocket token stays valid if unused.
    pub token_ttl: Duration,
    /// Deadline of `execute` with `run=true` (upstream: 5 s, which cut off
    /// ordinary commands).
    pub exec_timeout: Duration,
}

impl Default for StreamSettings {
    fn default() -> Self {
        Self {
            websocket_base_url: None,
            allowed_origins: Vec::new(),
            token_ttl: Duration::from_secs(60),
            exec_timeout: Duration::from_secs(60),
        }
    }
}

/// Handles one of this module's actions on `container`, already found and
/// authorized (`container:<action>`). `None`: not one of them.
pub async fn handle(
    state: &ApiState,
    ctx: &Ctx,
    action: &str,
    container: &Container,
    params: &Params,
) -> Option<Result<Response>> {
    let response = match action {
        "execute" => execute(state, ctx, container, params).await,
        "execute_resize" => execute_resize(state, container, params).await,
        "attach" => attach(state, ctx, container).await,
        "resize" => resize(state, container, params).await,
        "top" => top(state, container, params).await,
        "stats" => stats(state, container).await,
        "get_archive" => get_archive(state, ctx, container, params).await,
        "put_archive" => put_archive(state, ctx, container, params).await,
        "commit" => commit(state, container, params).await,
        _ => return None,
    };
    Some(response)
}

async fn execute(
    state: &ApiState,
    ctx: &Ctx,
    container: &Container,
    params: &Params,
) -> Result<Response> {
    Action::Execute.check(&container.uuid, container.status)?;
    let raw_command = params.get("command");
    let command = validation::exec_command(raw_command)?;
    let run = params.bool("run", true)?;
    let interactive = params.bool("interactive", false)?;
    let host = &state.host_link;
    if run {
        let finished = host
            .exec_run(container, &command, state.streams.exec_timeout)
            .await?;
        let Some(done) = finished else {
            return Err(Error(ApiError::conflict(format!(
                "Timeout on executing command: {}",
                raw_command.unwrap_or_default()
            ))));
        };
        return Ok(Json(json!({
            "output": done.output,
            "exit_code": done.exit_code,
            "exec_id": null,
            "proxy_url": null,
        }))
        .into_response());
    }
    let exec_id = host.exec_create(container, &command, interactive).await?;
    let url = grant_url(state, ctx, container, Some(&exec_id)).await?;
    Ok(Json(json!({
        "output": null,
        "exit_code": null,
        "exec_id": exec_id,
        "proxy_url": url,
    }))
    .into_response())
}

async fn execute_resize(
    state: &ApiState,
    container: &Container,
    params: &Params,
) -> Result<Response> {
    Action::ExecuteResize.check(&container.uuid, container.status)?;
    let exec_id = validation::exec_id(params.get("exec_id"))?;
    let height = validation::tty_dimension("h", params.get("h"))?;
    let width = validation::tty_dimension("w", params.get("w"))?;
    state
        .host_link
        .exec_resize(container, exec_id, height, width)
        .await?;
    Ok(null_response(StatusCode::OK))
}

async fn attach(state: &ApiState, ctx: &Ctx, container: &Container) -> Result<Response> {
    Action::Attach.check(&container.uuid, container.status)?;
    if !container.interactive {
        return Err(Error(ApiError::bad_request(
            "no-interactive-flag",
            "Container doesn't support to be attached, please check the interactive set properly",
        )));
    }
    let url = grant_url(state, ctx, container, None).await?;
    Ok(Json(Value::String(url)).into_response())
}

async fn resize(state: &ApiState, container: &Container, params: &Params) -> Result<Response> {
    Action::Resize.check(&container.uuid, container.status)?;
    let height = validation::tty_dimension("h", params.get("h"))?;
    let width = validation::tty_dimension("w", params.get("w"))?;
    state.host_link.resize(container, height, width).await?;
    Ok(null_response(StatusCode::OK))
}

async fn top(state: &ApiState, container: &Container, params: &Params) -> Result<Response> {
    Action::Top.check(&container.uuid, container.status)?;
    let processes = state
        .host_link
        .top(container, params.get("ps_args").filter(|a| !a.is_empty()))
        .await?;
    Ok(Json(processes.view()).into_response())
}

async fn stats(state: &ApiState, container: &Container) -> Result<Response> {
    Action::Stats.check(&container.uuid, container.status)?;
    let usage = state.host_link.stats(container).await?;
    Ok(Json(usage.view(&container.name)).into_response())
}

/// From 1.25 archives travel as base64; before, as the raw bytes in a JSON
/// string (only text survives that, as upstream).
const BASE64_ARCHIVES: Version = Version::new(1, 25);

async fn get_archive(
    state: &ApiState,
    ctx: &Ctx,
    container: &Container,
    params: &Params,
) -> Result<Response> {
    Action::GetArchive.check(&container.uuid, container.status)?;
    let path = validation::required("path", params.get("path"))?;
    let (stat, tar) = state
        .host_link
        .get_archive(container, path, MAX_ARCHIVE_BYTES)
        .await?;
    let data = if ctx.version >= BASE64_ARCHIVES {
        BASE64.encode(&tar)
    } else {
        String::from_utf8_lossy(&tar).into_owned()
    };
    Ok(Json(json!({"data": data, "stat": stat.view()})).into_response())
}

async fn put_archive(
    state: &ApiState,
    ctx: &Ctx,
    container: &Container,
    params: &Params,
) -> Result<Response> {
    Action::PutArchive.check(&container.uuid, container.status)?;
    let path = validation::required("path", params.get("path"))?;
    let data = validation::required("data", params.get("data"))?;
    let tar = if ctx.version >= BASE64_ARCHIVES {
        BASE64
            .decode(data.trim())
            .map_err(|_| ApiError::bad_request("base-64-exception", "Invalid Base 64 file data"))?
    } else {
        data.as_bytes().to_vec()
    };
    state
        .host_link
        .put_archive(container, path, Bytes::from(tar))
        .await?;
    Ok(null_response(StatusCode::OK))
}

async fn commit(state: &ApiState, container: &Container, params: &Params) -> Result<Response> {
    Action::Commit.check(&container.uuid, container.status)?;
    let repository = validation::required("repository", params.query("repository"))?;
    let tag = params.get("tag").unwrap_or("latest");
    let image_id = state.host_link.commit(container, repository, tag).await?;
    let uuid = image_uuid(&image_id);
    record_committed_image(state, container, &uuid, &image_id, repository, tag).await;
    let mut response = Json(json!({"uuid": uuid})).into_response();
    *response.status_mut() = StatusCode::ACCEPTED;
    Ok(response)
}

/// Lists a committed image among the images of the container's host (and
/// project), as a pull through `/v1/images` would: `image list` shows it and
/// `image delete` removes it. The image exists whatever happens here, so a
/// failure to record it is logged, not answered.
async fn record_committed_image(
    state: &ApiState,
    container: &Container,
    uuid: &str,
    image_id: &str,
    repository: &str,
    tag: &str,
) {
    let Some(host) = container.host.clone() else {
        return;
    };
    let repo = zun_types::image::ImageRef::parse(repository)
        .map_or_else(|_| repository.to_owned(), |r| r.repository());
    let image = zun_types::image::Image {
        uuid: uuid.to_owned(),
        image_id: Some(image_id.to_owned()),
        repo,
        tag: tag.to_owned(),
        size: None,
        host,
        project_id: container.project_id.clone(),
        user_id: container.user_id.clone(),
        task: None,
        created_at: chrono::Utc::now(),
        updated_at: None,
    };
    let recorded = match state.store.get_image(uuid).await {
        // The same image committed again: already listed.
        Ok(Some(_)) => Ok(()),
        Ok(None) => state.store.insert_image(&image).await,
        Err(err) => Err(err),
    };
    if let Err(err) = recorded {
        tracing::warn!(%uuid, error = %err, "recording the committed image failed");
    }
}

/// Upstream answers a commit with the uuid of the Glance image it uploads
/// to; the image stays on the host here, and its uuid is the first 128 bits
/// of the engine's image digest (so the same image always has the same uuid).
fn image_uuid(image_id: &str) -> String {
    let hex: String = image_id
        .trim_start_matches("sha256:")
        .chars()
        .filter(char::is_ascii_hexdigit)
        .take(32)
        .collect();
    match u128::from_str_radix(&hex, 16) {
        Ok(bits) if hex.len() == 32 => uuid::Uuid::from_u128(bits).to_string(),
        // Not a digest (another engine): a fresh uuid rather than a made-up one.
        _ => uuid::Uuid::new_v4().to_string(),
    }
}

// ------------------------------------------------------------------ tokens

fn token_hash(token: &str) -> String {
    format!("{:x}", Sha256::digest(token.as_bytes()))
}

/// Records a single-use grant to `container` (and `exec_id`) and returns the
/// websocket URL that carries its token.
async fn grant_url(
    state: &ApiState,
    ctx: &Ctx,
    container: &Container,
    exec_id: Option<&str>,
) -> Result<String> {
    let token = uuid::Uuid::new_v4().to_string();
    let ttl = chrono::TimeDelta::from_std(state.streams.token_ttl)
        .unwrap_or(chrono::TimeDelta::seconds(60));
    let grant = WebsocketGrant {
        container_uuid: container.uuid.clone(),
        project_id: container.project_id.clone(),
        exec_id: exec_id.map(str::to_owned),
        expires_at: Utc::now() + ttl,
    };
    state
        .store
        .insert_websocket_grant(&token_hash(&token), &grant)
        .await?;
    let base = match &state.streams.websocket_base_url {
        Some(url) => url.clone(),
        None => format!(
            "ws://{}{WEBSOCKET_PATH}",
            ctx.host_url.trim_start_matches("http://")
        ),
    };
    let mut url = format!("{base}?token={token}&uuid={}", container.uuid);
    if let Some(exec_id) = exec_id {
        url.push_str("&exec_id=");
        url.push_str(exec_id);
    }
    Ok(url)
}

fn refused(detail: impl Into<String>) -> Error {
    Error(ApiError::new(403, "invalid-websocket-token", detail))
}

/// Upstream's origin rule: a browser (which sends `Origin`) may connect only
/// from the API's own host name or an allowed one, with a scheme matching
/// the connection's (ws from http pages, wss from https pages).
fn origin_allowed(headers: &HeaderMap, allowed: &[String]) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Some(origin) = origin.to_str().ok().and_then(|o| url_parts(o.trim())) else {
        return false;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| url_parts(&format!("http://{h}")))
        .map(|(_, name)| name);
    let secure = headers
        .get("x-forwarded-proto")
        .and_then(|p| p.to_str().ok())
        .is_some_and(|p| p.eq_ignore_ascii_case("https"));
    let schemes: &[&str] = if secure {
        &["https", "wss"]
    } else {
        &["http", "ws"]
    };
    let (scheme, name) = origin;
    schemes.contains(&scheme.as_str())
        && (host.as_deref() == Some(name.as_str())
            || allowed.iter().any(|a| a.eq_ignore_ascii_case(&name)))
}

/// (scheme, host name) of an absolute URL, lowercased; brackets of an IPv6
/// literal removed.
fn url_parts(url: &str) -> Option<(String, String)> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let name = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next()?
    } else {
        authority.split(':').next()?
    };
    if name.is_empty() {
        return None;
    }
    Some((scheme.to_ascii_lowercase(), name.to_ascii_lowercase()))
}

/// `GET /websocket?token=...&uuid=...[&exec_id=...]`: checks the grant, then
/// connects to the container's host and relays bytes both ways.
pub async fn websocket(
    State(state): State<std::sync::Arc<ApiState>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    upgrade: std::result::Result<
        WebSocketUpgrade,
        axum::extract::ws::rejection::WebSocketUpgradeRejection,
    >,
) -> Result<Response> {
    let upgrade = upgrade.map_err(|rejection| {
        Error(ApiError::invalid(format!(
            "This endpoint only speaks websocket: {rejection}"
        )))
    })?;
    if !origin_allowed(&headers, &state.streams.allowed_origins) {
        return Err(Error(ApiError::new(
            403,
            "",
            "The Origin of this websocket request is not allowed.",
        )));
    }
    let params = Params::from_query(query.as_deref());
    let token = params
        .get("token")
        .ok_or_else(|| refused("A websocket token is required."))?;
    let grant = state
        .store
        .take_websocket_grant(&token_hash(token))
        .await?
        .ok_or_else(|| refused("Invalid or already used websocket token."))?;
    if grant.expires_at < Utc::now() {
        return Err(refused("The websocket token has expired."));
    }
    let container = state
        .store
        .get_container(&grant.container_uuid)
        .await?
        .filter(|c| c.project_id == grant.project_id)
        .ok_or_else(|| refused("The container of this token no longer exists."))?;
    let named = params.get("uuid").unwrap_or_default();
    if named != container.uuid && named != container.name {
        return Err(refused("This websocket token is for another container."));
    }
    if params.get("exec_id") != grant.exec_id.as_deref() {
        return Err(refused(
            "This websocket token is for another exec instance.",
        ));
    }
    if container.status != ContainerStatus::Running {
        return Err(Error(ApiError::conflict(format!(
            "Cannot connect to container {} in {} state",
            container.uuid,
            container.status.as_str()
        ))));
    }
    let terminal = match &grant.exec_id {
        Some(exec_id) => state.host_link.exec_connect(&container, exec_id).await?,
        None => state.host_link.attach(&container).await?,
    };
    tracing::info!(
        container = %container.uuid,
        exec = grant.exec_id.as_deref().unwrap_or("-"),
        "websocket session opened"
    );
    let uuid = container.uuid;
    Ok(upgrade
        .protocols(["binary"])
        .max_message_size(MAX_CLIENT_MESSAGE_BYTES)
        .on_upgrade(move |socket| async move {
            relay(socket, terminal).await;
            tracing::info!(container = %uuid, "websocket session closed");
        }))
}

/// Copies output to the client and client input to the process until either
/// side ends. One output chunk is in flight at a time: a slow client slows
/// the engine stream (and the process) instead of growing a buffer here.
async fn relay(mut socket: WebSocket, terminal: Terminal) {
    let Terminal {
        mut output,
        mut input,
    } = terminal;
    let mut carry = Utf8Carry::default();
    loop {
        tokio::select! {
            chunk = output.next() => match chunk {
                Some(Ok(bytes)) => {
                    let frame = carry.frame(&bytes);
                    if !frame.is_empty() && socket.send(Message::Binary(frame)).await.is_err() {
                        return;
                    }
                }
                Some(Err(error)) => {
                    tracing::warn!(%error, "container stream failed");
                    close(&mut socket, close_code::ERROR, "container stream failed").await;
                    return;
                }
                None => {
                    let rest = carry.finish();
                    if !rest.is_empty() {
                        let _ = socket.send(Message::Binary(rest)).await;
                    }
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
                // Closed by the client, or the connection broke: dropping the
                // terminal closes the engine stream and the process's stdin.
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

/// Keeps frames on UTF-8 character boundaries: the reference client decodes
/// every binary frame as UTF-8 on its own, so a character split across two
/// frames would break it. Bytes that are not UTF-8 at all pass unchanged.
#[derive(Debug, Default)]
struct Utf8Carry {
    pending: Vec<u8>,
}

impl Utf8Carry {
    /// The bytes to send now for `chunk`; an incomplete character at its end
    /// waits for the next chunk.
    fn frame(&mut self, chunk: &[u8]) -> Bytes {
        let mut data = std::mem::take(&mut self.pending);
        data.extend_from_slice(chunk);
        let keep = incomplete_tail(&data);
        self.pending = data.split_off(data.len() - keep);
        Bytes::from(data)
    }

    fn finish(&mut self) -> Bytes {
        Bytes::from(std::mem::take(&mut self.pending))
    }
}

/// Length of an incomplete UTF-8 sequence at the end of `data` (0 to 3).
fn incomplete_tail(data: &[u8]) -> usize {
    // Look back at most 3 bytes for the lead byte of the last character.
    for back in 1..=data.len().min(3) {
        let byte = data[data.len() - back];
        if byte & 0b1100_0000 == 0b1000_0000 {
            continue; // continuation byte
        }
        let needed = match byte {
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF7 => 4,
            _ => 1,
        };
        return if needed > back { back } else { 0 };
    }
    0
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(origin: Option<&str>, host: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::HOST,
            HeaderValue::from_str(host).unwrap_or(HeaderValue::from_static("x")),
        );
        if let Some(origin) = origin {
            h.insert(
                header::ORIGIN,
                HeaderValue::from_str(origin).unwrap_or(HeaderValue::from_static("x")),
            );
        }
        h
    }

    #[test]
    fn origins_follow_upstreams_rule() {
        let allowed = vec!["console.example.com".to_owned()];
        // No Origin: not a browser.
        assert!(origin_allowed(&headers(None, "127.0.0.1:9517"), &[]));
        // The client's own host, any port (the reference client sends this).
        assert!(origin_allowed(
            &headers(Some("http://127.0.0.1:9517"), "127.0.0.1:9517"),
            &[]
        ));
        assert!(origin_allowed(
            &headers(Some("http://console.example.com"), "127.0.0.1:9517"),
            &allowed
        ));
        assert!(!origin_allowed(
            &headers(Some("http://evil.example.com"), "127.0.0.1:9517"),
            &allowed
        ));
        // A page served over https cannot open a plain ws connection.
        assert!(!origin_allowed(
            &headers(Some("https://127.0.0.1"), "127.0.0.1:9517"),
            &[]
        ));
        assert!(!origin_allowed(
            &headers(Some("null"), "127.0.0.1:9517"),
            &[]
        ));
        assert!(origin_allowed(
            &headers(Some("http://[::1]:8080"), "[::1]:9517"),
            &[]
        ));
    }

    #[test]
    fn frames_never_split_a_character() {
        let text = "héllo → 世界 🎉".as_bytes();
        for split in 0..=text.len() {
            let mut carry = Utf8Carry::default();
            let first = carry.frame(&text[..split]);
            let second = carry.frame(&text[split..]);
            let rest = carry.finish();
            assert!(std::str::from_utf8(&first).is_ok(), "split at {split}");
            assert!(std::str::from_utf8(&second).is_ok(), "split at {split}");
            assert!(rest.is_empty());
            assert_eq!([&first[..], &second[..]].concat(), text);
        }
        // Bytes that are not UTF-8 are passed on, not held forever.
        let mut carry = Utf8Carry::default();
        assert_eq!(&carry.frame(&[0xff, 0xfe, b'a'])[..], &[0xff, 0xfe, b'a']);
    }

    #[test]
    fn image_uuid_is_the_digest_prefix() {
        assert_eq!(
            image_uuid("sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"),
            "01234567-89ab-cdef-0123-456789abcdef"
        );
        assert!(uuid::Uuid::parse_str(&image_uuid("not-a-digest")).is_ok());
    }
}
