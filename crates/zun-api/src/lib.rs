//! The Zun API v1 HTTP server. It validates, authorizes and writes desired
//! state plus an action record to the store, then answers; compute agents do
//! the work. It never talks to a container engine itself.

pub mod audit;
mod capsules;
mod containers;
mod context;
mod error;
pub mod identity;
mod images;
pub mod monitor;
mod networks;
mod params;
pub mod placement;
mod quotas;
mod registries;
mod registry_client;
mod security_groups;
mod services;
pub mod streams;
mod volumes;

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::stream::BoxStream;
use serde_json::{Value, json};
use tokio::io::AsyncWrite;
use zun_store::{QuotaLimits, Store};
use zun_types::host::{ExecOutput, LogOptions, PathStat, Processes, Usage};
use zun_types::microversion::Version;
use zun_types::{ApiError, Container};

pub use error::Error;
pub use identity::{Authenticator, Identity};
pub use registry_client::RegistryClient;

/// Largest request body accepted; Zun bodies are small, and a cap keeps a
/// hostile client from making the API buffer without bound.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// A live byte stream to a process in a container (an exec instance or the
/// container's main process), relayed over a websocket. Dropping it ends
/// the stream.
pub struct Terminal {
    pub output: BoxStream<'static, std::io::Result<Bytes>>,
    pub input: Pin<Box<dyn AsyncWrite + Send>>,
}

/// Synchronous requests the API forwards to the agent that runs a container
/// (DESIGN decision 4). In the all-in-one this is a call into the agent;
/// the agent reaches the engine on its local socket. Errors are already
/// what the user should see.
#[async_trait]
pub trait HostLink: Send + Sync + 'static {
    async fn logs(&self, container: &Container, options: &LogOptions) -> Result<String, ApiError>;

    /// Runs `command` to completion; `None` when it outlived `timeout`.
    async fn exec_run(
        &self,
        container: &Container,
        command: &[String],
        timeout: Duration,
    ) -> Result<Option<ExecOutput>, ApiError>;
    /// Creates an exec instance to be started over a websocket; returns its id.
    async fn exec_create(
        &self,
        container: &Container,
        command: &[String],
        interactive: bool,
    ) -> Result<String, ApiError>;
    async fn exec_resize(
        &self,
        container: &Container,
        exec_id: &str,
        height: u16,
        width: u16,
    ) -> Result<(), ApiError>;
    /// Starts exec instance `exec_id` (made by [`HostLink::exec_create`]) and
    /// connects to it.
    async fn exec_connect(
        &self,
        container: &Container,
        exec_id: &str,
    ) -> Result<Terminal, ApiError>;

    /// Connects to the container's main process.
    async fn attach(&self, container: &Container) -> Result<Terminal, ApiError>;
    async fn resize(&self, container: &Container, height: u16, width: u16) -> Result<(), ApiError>;

    async fn top(
        &self,
        container: &Container,
        ps_args: Option<&str>,
    ) -> Result<Processes, ApiError>;
    async fn stats(&self, container: &Container) -> Result<Usage, ApiError>;

    /// A tar of `path` of at most `max_bytes`.
    async fn get_archive(
        &self,
        container: &Container,
        path: &str,
        max_bytes: usize,
    ) -> Result<(PathStat, Bytes), ApiError>;
    async fn put_archive(
        &self,
        container: &Container,
        path: &str,
        tar: Bytes,
    ) -> Result<(), ApiError>;

    /// Commits the container as image `repository:tag` on its host; returns
    /// the image id.
    async fn commit(
        &self,
        container: &Container,
        repository: &str,
        tag: &str,
    ) -> Result<String, ApiError>;
}

/// What every handler shares.
pub struct ApiState {
    pub store: Arc<dyn Store>,
    pub auth: Arc<dyn Authenticator>,
    /// Zun's default rules, overridden by the operator's `policy.yaml`.
    pub policy: zun_policy::PolicyFile,
    /// Where new containers go, and when a silent host counts as down.
    pub scheduler: placement::SchedulerSettings,
    /// This process's snapshot of the hosts, between reads of the store.
    pub host_cache: placement::HostCache,
    pub host_link: Arc<dyn HostLink>,
    /// The configured `[quota]` defaults; the quota class `default` and
    /// per-project rows override them.
    pub quota_defaults: QuotaLimits,
    /// execute, attach and websocket settings.
    pub streams: streams::StreamSettings,
    /// Seals registry passwords before they reach the store, and opens
    /// them for image search.
    pub secrets: zun_secrets::SecretKey,
    pub registry_client: registry_client::RegistryClient,
    /// Where new project networks' subnets come from (`[network] pool`
    /// and `subnet_prefix`, as the agents have them); None when
    /// containers get no network.
    pub network_pool: Option<(zun_types::network::Ipv4Net, u8)>,
    /// The block-storage API, when volumes are Cinder's (`[volume] driver
    /// = "cinder"`); else volumes are the hosts' own (local).
    pub cinder: Option<zun_volume::cinder::Cinder>,
    /// Where a line per state-changing request goes (`[api] audit_log`).
    pub audit: Option<Arc<dyn audit::AuditSink>>,
}

/// The whole HTTP application, including path normalisation (trailing
/// slashes, the unversioned alias of `/v1`).
pub fn app(state: Arc<ApiState>) -> Router {
    let v1 = containers::routes()
        .merge(capsules::routes())
        .merge(quotas::routes())
        .merge(registries::routes())
        .merge(images::routes())
        .merge(services::routes())
        .merge(networks::routes())
        .merge(security_groups::routes())
        .merge(volumes::routes())
        .route("/v1", get(v1_root))
        .layer(axum::middleware::from_fn(context::negotiate_version));
    Router::new()
        .route("/", get(root))
        .route(streams::WEBSOCKET_PATH, get(streams::websocket))
        .merge(v1)
        .fallback(|| async { Error(ApiError::not_found_route()) })
        .method_not_allowed_fallback(|| async { Error(ApiError::method_not_allowed()) })
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            context::authenticate,
        ))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            audit::record,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// Rewrites the request path the way upstream's root controller routes it:
/// a trailing `/` is ignored and `/containers/...` means `/v1/containers/...`.
pub fn normalize_path(mut request: Request) -> Request {
    let uri = request.uri();
    let path = uri.path();
    let trimmed = path.trim_end_matches('/');
    let trimmed = trimmed.strip_suffix(".json").unwrap_or(trimmed);
    let new_path = if trimmed.is_empty() {
        "/".to_string()
    } else if trimmed == "/v1" || trimmed.starts_with("/v1/") || trimmed == streams::WEBSOCKET_PATH
    {
        trimmed.to_string()
    } else {
        format!("/v1{trimmed}")
    };
    if new_path != path {
        let query = uri.query().map(|q| format!("?{q}")).unwrap_or_default();
        if let Ok(new_uri) = format!("{new_path}{query}").parse() {
            *request.uri_mut() = new_uri;
        }
    }
    request
}

/// Scheme, host and port the client used, for links.
fn host_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    format!("http://{host}")
}

fn version_entry(host_url: &str) -> Value {
    json!({
        "id": "v1",
        "links": [{"href": format!("{host_url}/v1/"), "rel": "self"}],
        "status": "CURRENT",
        "max_version": Version::MAX.to_string(),
        "min_version": Version::MIN.to_string(),
    })
}

async fn root(headers: HeaderMap) -> Response {
    let url = host_url(&headers);
    axum::Json(json!({
        "name": "OpenStack Zun API",
        "description": "Zun is an OpenStack project which aims to provide containers service.",
        "versions": [version_entry(&url)],
        "default_version": version_entry(&url),
    }))
    .into_response()
}

async fn v1_root(headers: HeaderMap) -> Response {
    let url = host_url(&headers);
    let mut doc = json!({
        "id": "v1",
        "media_types": [{"base": "application/json", "type": "application/vnd.openstack.zun.v1+json"}],
        "links": [
            {"href": format!("{url}/v1/"), "rel": "self"},
            {"href": "https://docs.openstack.org/developer/zun/dev/api-spec-v1.html",
             "rel": "describedby", "type": "text/html"},
        ],
    });
    for resource in [
        "services",
        "containers",
        "images",
        "networks",
        "hosts",
        "capsules",
        "availability_zones",
        "quotas",
        "quota_classes",
        "registries",
    ] {
        doc[resource] = json!([
            {"href": format!("{url}/v1/{resource}/"), "rel": "self"},
            {"href": format!("{url}/{resource}/"), "rel": "bookmark"},
        ]);
    }
    axum::Json(doc).into_response()
}

/// A new resource's view with `status` and a `Location` header naming
/// `<host_url>/v1/<collection>/<uuid>`, as upstream answers a create.
fn created(
    status: axum::http::StatusCode,
    view: Value,
    host_url: &str,
    collection: &str,
    uuid: &str,
) -> Response {
    let mut response = (status, axum::Json(view)).into_response();
    let location = format!("{host_url}/v1/{collection}/{uuid}");
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// `null` with the given status: upstream's rendering of handlers that
/// return nothing.
fn null_response(status: axum::http::StatusCode) -> Response {
    let mut response = (status, "null").into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Serves the API on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<ApiState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use tower::Layer as _;
    let router = app(state);
    let service = tower::util::MapRequestLayer::new(normalize_path).layer(router);
    axum::serve(
        listener,
        axum::ServiceExt::<Request>::into_make_service(service),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// [`normalize_path`] of a request whatever its body type (axum-server
/// hands hyper's own).
fn normalize_any_body<B>(request: axum::http::Request<B>) -> Request
where
    B: axum::body::HttpBody<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    normalize_path(request.map(axum::body::Body::new))
}

/// [`serve`] over TLS (`[api] tls_cert_file`): once `shutdown` completes,
/// requests in flight get up to 10 s to finish.
pub async fn serve_tls(
    listener: std::net::TcpListener,
    state: Arc<ApiState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    tls: Arc<rustls::ServerConfig>,
) -> std::io::Result<()> {
    use tower::Layer as _;
    let handle = axum_server::Handle::new();
    let stopper = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        stopper.graceful_shutdown(Some(std::time::Duration::from_secs(10)));
    });
    let service = tower::util::MapRequestLayer::new(normalize_any_body).layer(app(state));
    axum_server::from_tcp_rustls(
        listener,
        axum_server::tls_rustls::RustlsConfig::from_config(tls),
    )?
    .handle(handle)
    .serve(axum::ServiceExt::<axum::http::Request<_>>::into_make_service(service))
    .await
}
