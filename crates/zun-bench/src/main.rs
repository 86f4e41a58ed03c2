//! `zun-bench`: how much `zund` adds on top of the Docker engine it drives.
//!
//! It starts its own `zund all-in-one` (fresh data directory, free port,
//! a compute host name of its own so it never touches another zund's
//! containers), then measures, in one run and against the same engine:
//!
//! * create-to-Running latency through the Zun API (`POST ?run=true`, then
//!   `GET` every few milliseconds until `status` is `Running`), sequentially
//!   and N at a time;
//! * the raw engine baseline: create + start + inspect of the same image and
//!   command through bollard, sequentially and N at a time, each container
//!   on an engine bridge network made for the run (zund gives its
//!   containers networks, so the baseline pays for one too);
//! * `GET /v1/containers` latency with the containers present (and the raw
//!   engine's container list beside it);
//! * zund's resident memory idle, with the containers running, and after;
//! * TCP throughput between two containers (1 GiB over HTTP, busybox httpd
//!   to wget) on zund's network beside the same between two raw containers
//!   on the engine's bridge network;
//! * create-to-Running of a container with one new 1 GiB local volume
//!   beside the same container without, alternating (up to 20 each);
//! * sequential write throughput (512 MiB, flushed) inside a container onto
//!   a local volume beside this process writing onto the filesystem that
//!   holds the volumes.
//!
//! Phases run in A-B-B-A order (raw, zun sequential; zun, raw concurrent)
//! after an untimed warm-up of both, so slow drift on a shared machine hits
//! both sides alike. zund is always stopped at the end (SIGTERM, then kill),
//! and every engine container this run made is removed.

use std::collections::HashMap;
use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use bollard::Docker;
use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{
    CreateContainerOptions, InspectContainerOptions, ListContainersOptions, RemoveContainerOptions,
    StartContainerOptions,
};
use clap::Parser;
use futures_util::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Label put on the raw baseline containers: the run id.
const RAW_LABEL: &str = "zun-bench.run";
/// zund's label naming the compute host that created a container.
const ZUN_HOST_LABEL: &str = "zun.host";
/// The API microversion every request asks for.
const API_VERSION: &str = "container 1.40";

#[derive(Parser, Debug, Clone)]
#[command(
    name = "zun-bench",
    about = "Benchmark zund's create-to-Running latency and memory against raw Docker engine calls"
)]
struct Cli {
    /// The zund binary to start.
    #[arg(long, default_value = "target/release/zund")]
    zund: PathBuf,
    /// The Docker engine's unix socket (zund and the baseline both use it).
    #[arg(
        long,
        env = "ZUN_BENCH_DOCKER_SOCKET",
        default_value = "/var/run/docker.sock"
    )]
    docker_socket: String,
    /// Containers per timed phase.
    #[arg(long, default_value_t = 50)]
    count: usize,
    /// CPUs each latency container asks for (both sides get the same
    /// limits): small, so the run fits a 2-core host (32 CPUs to place at
    /// the default allocation ratio).
    #[arg(long, default_value_t = 0.1)]
    cpu: f64,
    /// MiB of memory each container asks for (both sides).
    #[arg(long, default_value_t = 64)]
    memory_mib: i64,
    /// Containers in flight at once in the concurrent phases.
    #[arg(long, default_value_t = 10)]
    concurrency: usize,
    /// Untimed containers created first on each side.
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// Image to run; must already be in the engine (nothing is pulled).
    #[arg(long, default_value = "busybox")]
    image: String,
    /// Interval between GETs while waiting for Running, in milliseconds.
    #[arg(long, default_value_t = 5)]
    poll_ms: u64,
    /// `image_pull_policy` sent with each create ("ifnotpresent", "never",
    /// "always"), or "omit" to send none (Zun then pulls every time, as upstream).
    #[arg(long, default_value = "ifnotpresent")]
    pull_policy: String,
    /// Requests timed for the list row.
    #[arg(long, default_value_t = 20)]
    list_requests: usize,
    /// Give up on one container (or a cleanup wait) after this many seconds.
    #[arg(long, default_value_t = 120)]
    timeout_secs: u64,
    /// Run the scale benchmark instead: this many simulated compute hosts
    /// (`zund simulate`), no engine involved.
    #[arg(long)]
    scale_hosts: Option<usize>,
    /// Instead of the latency phases: fill the host with this many
    /// networked containers and time 10 creates on the full host beside
    /// the first 10 on the empty one (rule updates must not grow with the
    /// host's size).
    #[arg(long)]
    host_scale: Option<usize>,
    /// Containers placed by the scale benchmark.
    #[arg(long, default_value_t = 10_000)]
    scale_containers: usize,
    /// Keep a container quota (of this many) in the scale benchmark, so each
    /// create also counts its project's usage; without it quotas are lifted.
    #[arg(long)]
    scale_quota: Option<i64>,
    /// The store of the scale benchmark (`postgres://...`); SQLite when unset.
    #[arg(long, env = "ZUN_BENCH_STORE_URL")]
    store_url: Option<String>,
    /// Instead of the latency phases: the volume rows with Cinder volumes.
    /// zund runs with `--zund-config` (Keystone identity, `[volume] driver
    /// = "cinder"`), and the benchmark authenticates with `--keystone-*`
    /// (`scripts/bench.sh --cinder` brings all of it up).
    #[arg(long)]
    cinder: bool,
    /// Instead of the latency phases: what the hostile-tenant defaults cost
    /// (hardened against relaxed create->Running, and the agent endpoint
    /// over TLS against plain HTTP), two zunds in one run.
    #[arg(long)]
    security: bool,
    /// A configuration file for the benchmark's zund.
    #[arg(long, env = "ZUN_BENCH_ZUND_CONFIG")]
    zund_config: Option<PathBuf>,
    /// Keystone v3 (`http://127.0.0.1:5000/v3`): the benchmark's requests
    /// carry a token of `--keystone-user` in `--keystone-project`.
    #[arg(long, env = "ZUN_BENCH_KEYSTONE_URL")]
    keystone_url: Option<String>,
    #[arg(long, env = "ZUN_BENCH_KEYSTONE_USER", default_value = "admin")]
    keystone_user: String,
    #[arg(long, env = "ZUN_BENCH_KEYSTONE_PASSWORD", default_value = "")]
    keystone_password: String,
    #[arg(long, env = "ZUN_BENCH_KEYSTONE_PROJECT", default_value = "admin")]
    keystone_project: String,
}

mod capsules;
mod scale;
mod security;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(hosts) = cli.scale_hosts {
        return match scale::run(&cli, hosts).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("zun-bench: error: {err:#}");
                ExitCode::FAILURE
            }
        };
    }
    let outcome = if cli.security {
        security::run(&cli).await
    } else {
        run(cli).await
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("zun-bench: some containers failed (listed above)");
            ExitCode::from(2)
        }
        Err(err) => {
            eprintln!("zun-bench: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the whole benchmark; `Ok(false)` when containers failed.
async fn run(cli: Cli) -> Result<bool> {
    if cli.count == 0 || cli.concurrency == 0 {
        bail!("--count and --concurrency must be at least 1");
    }
    let docker = connect_engine(&cli.docker_socket).await?;
    let image = engine_image(&cli.image);
    docker.inspect_image(&image).await.with_context(|| {
        format!(
            "image {image} is not in the engine at {} (nothing is pulled)",
            cli.docker_socket
        )
    })?;

    let run_id = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
    let host_name = format!("zun-bench-{run_id}");
    let data_dir = std::env::temp_dir().join(format!("zun-bench-{run_id}"));
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;

    println!(
        "zun-bench: zund {} | engine {} | image {} | {} containers of {} CPU and {} MiB, concurrency {}, warm-up {}",
        cli.zund.display(),
        cli.docker_socket,
        cli.image,
        cli.count,
        cli.cpu,
        cli.memory_mib,
        cli.concurrency,
        cli.warmup
    );

    let raw_network = format!("zunbench-{run_id}");
    docker
        .create_network(bollard::models::NetworkCreateRequest {
            name: raw_network.clone(),
            driver: Some("bridge".into()),
            ..Default::default()
        })
        .await
        .with_context(|| format!("creating the baseline's bridge network {raw_network}"))?;

    let mut zund = match Zund::spawn(&cli, &host_name, &data_dir) {
        Ok(z) => z,
        Err(err) => {
            let _ = std::fs::remove_dir_all(&data_dir);
            let _ = docker.remove_network(&raw_network).await;
            return Err(err);
        }
    };
    let mut api = Api::new(&zund.base_url)?;
    if let Some(url) = &cli.keystone_url {
        api.token = Some(api.keystone_token(&cli, url).await?);
    }
    let ctx = Ctx {
        cli: cli.clone(),
        docker: docker.clone(),
        api,
        run_id: run_id.clone(),
        host_name: host_name.clone(),
        pid: zund.pid(),
        raw_network: raw_network.clone(),
        data_dir: data_dir.clone(),
    };

    let outcome = tokio::select! {
        r = async {
            zund.wait_ready(&ctx.api, Duration::from_secs(30)).await?;
            ctx.api.lift_quotas().await?;
            match ctx.cli.host_scale {
                Some(n) => host_scale(&ctx, n).await,
                None if ctx.cli.cinder => cinder_volumes(&ctx).await,
                None => bench(&ctx).await,
            }
        } => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
    };

    // Always: stop zund, then remove whatever engine containers this run left.
    let stopped = zund.stop().await;
    let leftovers = cleanup_engine(&docker, &host_name, &run_id).await;
    if let Err(err) = docker.remove_network(&raw_network).await {
        eprintln!("zun-bench: removing the network {raw_network} failed: {err}");
    }
    let log_path = zund.log_path.clone();
    match (&outcome, &stopped) {
        (Ok(_), Ok(())) => {
            let _ = std::fs::remove_dir_all(&data_dir);
        }
        _ => eprintln!("zun-bench: zund's log kept at {}", log_path.display()),
    }
    match &leftovers {
        Ok(0) => {}
        Ok(n) => eprintln!("zun-bench: removed {n} leftover engine container(s)"),
        Err(err) => eprintln!("zun-bench: cleaning the engine failed: {err:#}"),
    }

    let report = outcome?;
    stopped?;
    report.print(&cli);
    Ok(report.failures.is_empty())
}

// ---------------------------------------------------------------- zund process

struct Zund {
    child: Child,
    base_url: String,
    log_path: PathBuf,
    stopped: bool,
}

impl Zund {
    fn spawn(cli: &Cli, host_name: &str, data_dir: &Path) -> Result<Self> {
        let config = match &cli.zund_config {
            Some(config) => Some(config.clone()),
            None if cli.host_scale.is_some() => {
                // Hundreds of 0.1-CPU containers on a 2-core host: the run
                // is about the network's cost at that size, not placement.
                let config = data_dir.join("zun.toml");
                std::fs::write(&config, "[scheduler]\ncpu_allocation_ratio = 1000.0\n")
                    .with_context(|| format!("writing {}", config.display()))?;
                Some(config)
            }
            None => None,
        };
        Self::spawn_with(cli, host_name, data_dir, config.as_deref())
    }

    /// An all-in-one on a free port, with `config` when given.
    fn spawn_with(
        cli: &Cli,
        host_name: &str,
        data_dir: &Path,
        config: Option<&Path>,
    ) -> Result<Self> {
        let port = free_port()?;
        let listen = format!("127.0.0.1:{port}");
        let log_path = data_dir.join("zund.log");
        let log =
            File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
        let log_err = log.try_clone().context("duplicating the log file")?;
        let mut command = Command::new(&cli.zund);
        if let Some(config) = config {
            command.arg("--config").arg(config);
        }
        let child = command
            .arg("all-in-one")
            .arg("--listen")
            .arg(&listen)
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--docker-socket")
            .arg(&cli.docker_socket)
            .arg("--host-name")
            .arg(host_name)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .with_context(|| format!("starting {}", cli.zund.display()))?;
        Ok(Self {
            child,
            base_url: format!("http://{listen}"),
            log_path,
            stopped: false,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    async fn wait_ready(&mut self, api: &Api, limit: Duration) -> Result<()> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().context("polling zund")? {
                bail!(
                    "zund exited during start-up ({status}); its log:\n{}",
                    log_tail(&self.log_path)
                );
            }
            if api.root_ok().await {
                return Ok(());
            }
            if start.elapsed() > limit {
                bail!(
                    "zund did not answer GET / within {limit:?}; its log:\n{}",
                    log_tail(&self.log_path)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM, up to 10 s for a clean exit, then SIGKILL.
    async fn stop(&mut self) -> Result<()> {
        self.stopped = true;
        if self.child.try_wait().ok().flatten().is_some() {
            bail!(
                "zund had already exited before the end; its log:\n{}",
                log_tail(&self.log_path)
            );
        }
        let pid = self.child.id().to_string();
        let _ = Command::new("kill")
            .args(["-TERM", &pid])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if let Some(status) = self.child.try_wait().context("waiting for zund")? {
                if status.success() {
                    return Ok(());
                }
                bail!("zund exited with {status} after SIGTERM");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        bail!("zund did not exit within 10 s of SIGTERM; killed it")
    }
}

impl Drop for Zund {
    fn drop(&mut self) {
        if !self.stopped {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr().context("finding a free port")?.port())
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// `VmRSS` and `VmHWM` of a process, in KiB.
fn memory_kib(pid: u32) -> Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let field = |name: &str| -> Result<u64> {
        let line = status
            .lines()
            .find(|l| l.starts_with(name))
            .ok_or_else(|| anyhow!("no {name} in /proc/{pid}/status"))?;
        line[name.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .with_context(|| format!("parsing {line:?}"))
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

// ---------------------------------------------------------------- Zun API client

struct Api {
    http: reqwest::Client,
    base: String,
    /// A Keystone token, when zund validates them.
    token: Option<String>,
}

impl Api {
    fn new(base: &str) -> Result<Self> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(60))
            .build()
            .context("building the HTTP client")?;
        Ok(Self {
            http,
            base: base.to_owned(),
            token: None,
        })
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("OpenStack-API-Version", API_VERSION);
        match &self.token {
            Some(token) => request.header("X-Auth-Token", token),
            None => request,
        }
    }

    /// A project-scoped token of the benchmark's Keystone user.
    async fn keystone_token(&self, cli: &Cli, url: &str) -> Result<String> {
        let body = json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": cli.keystone_user,
                "password": cli.keystone_password,
                "domain": {"name": "Default"},
            }}},
            "scope": {"project": {"name": cli.keystone_project, "domain": {"name": "Default"}}},
        }});
        let resp = self
            .http
            .post(format!("{url}/auth/tokens?nocatalog"))
            .json(&body)
            .send()
            .await
            .with_context(|| format!("POST {url}/auth/tokens"))?;
        if resp.status() != StatusCode::CREATED {
            bail!(
                "Keystone answered {} to the benchmark's login",
                resp.status()
            );
        }
        resp.headers()
            .get("x-subject-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("Keystone gave no X-Subject-Token"))
    }

    async fn root_ok(&self) -> bool {
        matches!(
            self.http.get(format!("{}/", self.base)).send().await,
            Ok(r) if r.status().is_success()
        )
    }

    /// `POST /v1/containers?run=true`; the new container's uuid.
    async fn create(&self, body: &Value) -> Result<String> {
        let resp = self
            .request(Method::POST, "/v1/containers?run=true")
            .json(body)
            .send()
            .await
            .context("POST /v1/containers")?;
        let status = resp.status();
        let text = resp.text().await.context("reading the create response")?;
        if status != StatusCode::ACCEPTED {
            bail!("POST /v1/containers answered {status}: {}", snippet(&text));
        }
        let view: Value = serde_json::from_str(&text).context("create response is not JSON")?;
        view.get("uuid")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("create response has no uuid: {}", snippet(&text)))
    }

    /// `GET /v1/containers/{uuid}`: the container's first address.
    async fn address(&self, uuid: &str) -> Result<String> {
        let resp = self
            .request(Method::GET, &format!("/v1/containers/{uuid}"))
            .send()
            .await
            .context("GET /v1/containers/{uuid}")?;
        let view: Value = resp.json().await.context("show response is not JSON")?;
        view.get("addresses")
            .and_then(Value::as_object)
            .and_then(|nets| nets.values().next())
            .and_then(|entries| entries.get(0)?.get("addr")?.as_str())
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("container {uuid} has no address: {view}"))
    }

    /// `GET /v1/containers/{uuid}`: `status` and `status_reason`.
    async fn status(&self, uuid: &str) -> Result<(String, Option<String>)> {
        let resp = self
            .request(Method::GET, &format!("/v1/containers/{uuid}"))
            .send()
            .await
            .context("GET /v1/containers/{uuid}")?;
        let code = resp.status();
        let text = resp.text().await.context("reading the show response")?;
        if code != StatusCode::OK {
            bail!(
                "GET /v1/containers/{uuid} answered {code}: {}",
                snippet(&text)
            );
        }
        let view: Value = serde_json::from_str(&text).context("show response is not JSON")?;
        let status = view
            .get("status")
            .and_then(Value::as_str)
            .ok_or_else(|| anyhow!("show response has no status: {}", snippet(&text)))?
            .to_owned();
        let reason = view
            .get("status_reason")
            .and_then(Value::as_str)
            .map(str::to_owned);
        Ok((status, reason))
    }

    /// `PUT /v1/quota_classes/default` with every limit -1: the run holds
    /// more containers than the default quota (20 vCPUs) allows.
    async fn lift_quotas(&self) -> Result<()> {
        self.set_container_quota(-1).await
    }

    /// The class `default`: `containers` limited to `limit` (-1: none),
    /// every other resource unlimited.
    async fn set_container_quota(&self, limit: i64) -> Result<()> {
        let unlimited =
            serde_json::json!({"containers": limit, "cpu": -1, "memory": -1, "disk": -1});
        let resp = self
            .request(Method::PUT, "/v1/quota_classes/default")
            .json(&unlimited)
            .send()
            .await
            .context("PUT /v1/quota_classes/default")?;
        let code = resp.status();
        if code == StatusCode::OK {
            return Ok(());
        }
        let text = resp.text().await.unwrap_or_default();
        bail!(
            "PUT /v1/quota_classes/default answered {code}: {}",
            snippet(&text)
        )
    }

    /// `DELETE /v1/containers/{uuid}?force=true`; a 404 counts as done.
    async fn delete(&self, uuid: &str) -> Result<()> {
        let resp = self
            .request(Method::DELETE, &format!("/v1/containers/{uuid}?force=true"))
            .send()
            .await
            .context("DELETE /v1/containers/{uuid}")?;
        let code = resp.status();
        if code == StatusCode::NO_CONTENT || code == StatusCode::NOT_FOUND {
            return Ok(());
        }
        let text = resp.text().await.unwrap_or_default();
        bail!(
            "DELETE /v1/containers/{uuid} answered {code}: {}",
            snippet(&text)
        )
    }

    /// `GET /v1/containers`: (uuid, status) of each listed container.
    async fn list(&self) -> Result<Vec<(String, String)>> {
        self.list_at("/v1/containers", "containers").await
    }

    /// Only the containers still in Creating: a small page however many
    /// containers exist, so polling it costs the host little CPU.
    async fn list_creating(&self) -> Result<Vec<(String, String)>> {
        self.list_at("/v1/containers?status=Creating", "containers")
            .await
    }

    /// (uuid, status) of each item of the `collection` list at `path`.
    async fn list_at(&self, path: &str, collection: &str) -> Result<Vec<(String, String)>> {
        let resp = self
            .request(Method::GET, path)
            .send()
            .await
            .with_context(|| format!("GET {path}"))?;
        let code = resp.status();
        let text = resp.text().await.context("reading the list response")?;
        if code != StatusCode::OK {
            bail!("GET {path} answered {code}: {}", snippet(&text));
        }
        let doc: Value = serde_json::from_str(&text).context("list response is not JSON")?;
        let items = doc
            .get(collection)
            .and_then(Value::as_array)
            .ok_or_else(|| anyhow!("list response has no {collection} array"))?;
        Ok(items
            .iter()
            .map(|c| {
                let field = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
                (field("uuid"), field("status"))
            })
            .collect())
    }
}

fn snippet(text: &str) -> String {
    let t: String = text.chars().take(300).collect();
    t.replace('\n', " ")
}

// ---------------------------------------------------------------- engine

async fn connect_engine(socket: &str) -> Result<Docker> {
    let docker = Docker::connect_with_unix(socket, 120, bollard::API_DEFAULT_VERSION)
        .with_context(|| format!("connecting to the engine at {socket}"))?;
    docker
        .negotiate_version()
        .await
        .with_context(|| format!("negotiating the API version with the engine at {socket}"))
}

/// The engine's name for a Zun image reference (`busybox` → `busybox:latest`).
fn engine_image(image: &str) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    if last.contains(':') || image.contains('@') {
        image.to_owned()
    } else {
        format!("{image}:latest")
    }
}

/// Engine containers (any state) carrying `label` (`key=value`).
async fn engine_ids(docker: &Docker, label: &str) -> Result<Vec<String>> {
    let options = ListContainersOptions {
        all: true,
        filters: Some(HashMap::from([(
            "label".to_owned(),
            vec![label.to_owned()],
        )])),
        ..Default::default()
    };
    let list = docker
        .list_containers(Some(options))
        .await
        .context("listing engine containers")?;
    Ok(list.into_iter().filter_map(|c| c.id).collect())
}

async fn remove_engine(docker: &Docker, id: &str) -> Result<()> {
    let options = RemoveContainerOptions {
        force: true,
        v: true,
        link: false,
    };
    match docker.remove_container(id, Some(options)).await {
        Ok(()) => Ok(()),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing engine container {id}")),
    }
}

/// Removes every engine container of this run (zund's and the baseline's).
async fn cleanup_engine(docker: &Docker, host_name: &str, run_id: &str) -> Result<usize> {
    let mut removed = 0;
    for label in [
        format!("{ZUN_HOST_LABEL}={host_name}"),
        format!("{RAW_LABEL}={run_id}"),
    ] {
        for id in engine_ids(docker, &label).await? {
            remove_engine(docker, &id).await?;
            removed += 1;
        }
    }
    Ok(removed)
}

// ---------------------------------------------------------------- phases

struct Ctx {
    cli: Cli,
    docker: Docker,
    api: Api,
    run_id: String,
    host_name: String,
    pid: u32,
    /// The engine bridge network the raw baseline's containers join.
    raw_network: String,
    /// zund's data dir, on the filesystem that holds its local volumes: the
    /// host-disk baseline of the volume write is written here.
    data_dir: PathBuf,
}

/// The statuses of every listed container, refreshed by ONE poller with
/// `GET /v1/containers` every `poll_ms`. Polling each container separately
/// would send concurrency × 200 requests a second and steal the CPU the
/// engine needs, which the raw baseline does not pay.
struct StatusBoard {
    /// When the latest completed poll was sent, and the uuids it saw in
    /// Creating.
    statuses: std::sync::Mutex<(Option<Instant>, std::collections::HashSet<String>)>,
    notify: tokio::sync::watch::Sender<u64>,
    changes: tokio::sync::watch::Receiver<u64>,
}

impl StatusBoard {
    fn new() -> Self {
        let (notify, changes) = tokio::sync::watch::channel(0);
        Self {
            statuses: std::sync::Mutex::new((None, std::collections::HashSet::new())),
            notify,
            changes,
        }
    }

    /// Whether a poll sent after `since` no longer lists `uuid` in Creating.
    fn left_creating(&self, uuid: &str, since: Instant) -> bool {
        let guard = self
            .statuses
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        matches!(guard.0, Some(sent) if sent > since) && !guard.1.contains(uuid)
    }

    /// Never returns on its own; errors are retried on the next tick.
    async fn poll(&self, api: &Api, every: Duration) {
        self.poll_with(every, || api.list_creating()).await;
    }

    /// [`StatusBoard::poll`] with the list `fetch` gives (uuid, status of
    /// those in Creating).
    async fn poll_with<F, Fut>(&self, every: Duration, fetch: F)
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<Vec<(String, String)>>>,
    {
        let mut round = 0u64;
        loop {
            let sent = Instant::now();
            if let Ok(listed) = fetch().await {
                let mut statuses = self
                    .statuses
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                *statuses = (
                    Some(sent),
                    listed.into_iter().map(|(uuid, _)| uuid).collect(),
                );
            }
            round += 1;
            self.notify.send_replace(round);
            tokio::time::sleep(every).await;
        }
    }
}

/// One container's result: its id (to clean up) and its latency or why it failed.
struct Sample {
    id: Option<String>,
    result: std::result::Result<Duration, String>,
}

#[derive(Default)]
struct Phase {
    latencies: Vec<Duration>,
    failures: Vec<String>,
    ids: Vec<String>,
    wall: Duration,
}

impl Phase {
    fn from_samples(samples: Vec<Sample>, wall: Duration) -> Self {
        let mut phase = Phase {
            wall,
            ..Default::default()
        };
        for s in samples {
            match s.result {
                Ok(d) => phase.latencies.push(d),
                Err(why) => phase.failures.push(match &s.id {
                    Some(id) => format!("{id}: {why}"),
                    None => why,
                }),
            }
            phase.ids.extend(s.id);
        }
        phase.latencies.sort();
        phase
    }

    fn ok(&self) -> usize {
        self.latencies.len()
    }
}

impl Ctx {
    /// The engine limits zund maps `cpu` and `memory` to (its Docker
    /// driver's rule), on the baseline's bridge network.
    fn raw_host_config(&self, cpu: f64, memory_mib: i64) -> bollard::models::HostConfig {
        bollard::models::HostConfig {
            memory: Some(memory_mib * 1024 * 1024),
            nano_cpus: Some((cpu * 1e9).round() as i64),
            cpu_shares: Some(((1024.0 * cpu) as i64).max(2)),
            network_mode: Some(self.raw_network.clone()),
            ..Default::default()
        }
    }

    fn zun_body(&self) -> Value {
        let mut body = json!({
            "image": self.cli.image,
            "command": ["sleep", "3600"],
            "cpu": self.cli.cpu,
            "memory": self.cli.memory_mib,
        });
        if self.cli.pull_policy != "omit" {
            body["image_pull_policy"] = json!(self.cli.pull_policy);
        }
        body
    }

    /// POST ?run=true, then wait until the shared poller sees it leave
    /// Creating, and read its status once.
    async fn zun_one(&self, body: &Value, board: &StatusBoard) -> Sample {
        let start = Instant::now();
        match self.api.create(body).await {
            Ok(uuid) => {
                self.settled(uuid, start, board, |uuid| async move {
                    self.api.status(&uuid).await
                })
                .await
            }
            Err(err) => Sample {
                id: None,
                result: Err(format!("{err:#}")),
            },
        }
    }

    /// Waits until the shared poller sees `uuid` leave Creating, then reads
    /// its status once with `status`: Running is the time since `start`.
    async fn settled<F, Fut>(
        &self,
        uuid: String,
        start: Instant,
        board: &StatusBoard,
        status: F,
    ) -> Sample
    where
        F: Fn(String) -> Fut,
        Fut: std::future::Future<Output = Result<(String, Option<String>)>>,
    {
        let accepted = Instant::now();
        let limit = Duration::from_secs(self.cli.timeout_secs);
        let mut changes = board.changes.clone();
        let result = loop {
            if board.left_creating(&uuid, accepted) {
                let seen = start.elapsed();
                break match status(uuid.clone()).await {
                    Ok((status, _)) if status == "Running" => Ok(seen),
                    Ok((status, reason)) => Err(format!(
                        "went to {status}: {}",
                        reason.unwrap_or_else(|| "(no status_reason)".into())
                    )),
                    Err(err) => Err(format!("{err:#}")),
                };
            }
            if start.elapsed() > limit {
                break Err(format!("still Creating after {limit:?}"));
            }
            if changes.changed().await.is_err() {
                break Err("the status poller stopped".into());
            }
        };
        Sample {
            id: Some(uuid),
            result,
        }
    }

    /// Engine create + start + inspect (running) of the same image and command.
    async fn raw_one(&self, name: String) -> Sample {
        let start = Instant::now();
        match self.raw_started(&name, None).await {
            Ok(id) => Sample {
                id: Some(id),
                result: Ok(start.elapsed()),
            },
            Err(why) => Sample {
                id: None,
                result: Err(why),
            },
        }
    }

    /// A raw container of the benchmark's image, command and limits,
    /// created, started and seen running; on the baseline's bridge, or in
    /// `network` (`container:<id>`). Its id.
    async fn raw_started(&self, name: &str, network: Option<String>) -> Result<String, String> {
        let mut host_config = self.raw_host_config(self.cli.cpu, self.cli.memory_mib);
        if let Some(network) = network {
            host_config.network_mode = Some(network);
        }
        let body = ContainerCreateBody {
            image: Some(engine_image(&self.cli.image)),
            cmd: Some(vec!["sleep".into(), "3600".into()]),
            labels: Some(HashMap::from([(RAW_LABEL.to_owned(), self.run_id.clone())])),
            // The limits zund gives the same container, so both sides ask
            // the engine for the same thing.
            host_config: Some(host_config),
            ..Default::default()
        };
        let options = CreateContainerOptions {
            name: Some(name.to_owned()),
            platform: String::new(),
        };
        let id = self
            .docker
            .create_container(Some(options), body)
            .await
            .map_err(|e| format!("create {name}: {e}"))?
            .id;
        self.docker
            .start_container(&id, None::<StartContainerOptions>)
            .await
            .map_err(|e| format!("start {name}: {e}"))?;
        let info = self
            .docker
            .inspect_container(&id, None::<InspectContainerOptions>)
            .await
            .map_err(|e| format!("inspect {name}: {e}"))?;
        if info.state.and_then(|s| s.running) == Some(true) {
            Ok(id)
        } else {
            Err(format!("{name} is not running after start"))
        }
    }

    /// A raw container on the baseline's bridge network running `script`,
    /// started; returns its id and address.
    async fn raw_running(&self, name: String, script: &str) -> Result<(String, String)> {
        let body = ContainerCreateBody {
            image: Some(engine_image(&self.cli.image)),
            cmd: Some(vec!["/bin/sh".into(), "-c".into(), script.into()]),
            labels: Some(HashMap::from([(RAW_LABEL.to_owned(), self.run_id.clone())])),
            host_config: Some(self.raw_host_config(TRANSFER_CPU, TRANSFER_MEMORY_MIB)),
            ..Default::default()
        };
        let options = CreateContainerOptions {
            name: Some(name),
            platform: String::new(),
        };
        let id = self.docker.create_container(Some(options), body).await?.id;
        self.docker
            .start_container(&id, None::<StartContainerOptions>)
            .await?;
        let info = self
            .docker
            .inspect_container(&id, None::<InspectContainerOptions>)
            .await?;
        let ip = info
            .network_settings
            .and_then(|n| n.networks)
            .and_then(|mut nets| nets.remove(&self.raw_network))
            .and_then(|net| net.ip_address)
            .filter(|ip| !ip.is_empty())
            .ok_or_else(|| anyhow!("raw container {id} has no address"))?;
        Ok((id, ip))
    }

    /// A zund container running `script`, Running; returns its uuid and address.
    async fn zun_running(&self, script: &str) -> Result<(String, String)> {
        self.zun_running_with(script, None).await
    }

    /// [`Ctx::zun_running`] with `mounts`.
    async fn zun_running_with(
        &self,
        script: &str,
        mounts: Option<Value>,
    ) -> Result<(String, String)> {
        let mut body = self.zun_body();
        if let Some(mounts) = mounts {
            body["mounts"] = mounts;
        }
        body["command"] = json!(["/bin/sh", "-c", script]);
        body["cpu"] = json!(TRANSFER_CPU);
        body["memory"] = json!(TRANSFER_MEMORY_MIB);
        let uuid = self.api.create(&body).await?;
        let deadline = Instant::now() + Duration::from_secs(self.cli.timeout_secs);
        loop {
            match self.api.status(&uuid).await? {
                (status, _) if status == "Running" => break,
                (status, reason) if status == "Error" => {
                    bail!("{uuid} went to Error: {}", reason.unwrap_or_default())
                }
                _ if Instant::now() > deadline => bail!("{uuid} is not Running in time"),
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        let ip = self.api.address(&uuid).await?;
        Ok((uuid, ip))
    }

    /// Seconds `client` takes to fetch the big file from `server_ip`,
    /// timed inside the container (so `docker exec` costs nothing).
    async fn transfer(&self, client: &str, server_ip: &str) -> Result<f64> {
        self.timed_exec(
            client,
            &format!("wget -O /dev/null http://{server_ip}:8080/big 2>/dev/null"),
        )
        .await
        .with_context(|| format!("the transfer to {server_ip} failed"))
    }

    /// Seconds `command` takes inside engine container `container`, timed
    /// inside it (so `docker exec` costs nothing).
    async fn timed_exec(&self, container: &str, command: &str) -> Result<f64> {
        use bollard::exec::StartExecResults;
        let script = format!(
            "a=$(cut -d' ' -f1 /proc/uptime); {command} || exit 1; \
             b=$(cut -d' ' -f1 /proc/uptime); echo $a $b"
        );
        let exec = self
            .docker
            .create_exec(
                container,
                bollard::models::ExecConfig {
                    cmd: Some(vec!["/bin/sh".into(), "-c".into(), script]),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    ..Default::default()
                },
            )
            .await?;
        let mut text = String::new();
        if let StartExecResults::Attached { mut output, .. } =
            self.docker.start_exec(&exec.id, None).await?
        {
            while let Some(chunk) = output.next().await {
                text.push_str(&chunk?.to_string());
            }
        }
        let times: Vec<f64> = text
            .split_whitespace()
            .filter_map(|t| t.parse().ok())
            .collect();
        match times.as_slice() {
            [start, end] if end > start => Ok(end - start),
            [_, _] => Ok(0.01), // under /proc/uptime's resolution
            _ => bail!("{command:?} printed {text:?}"),
        }
    }

    /// Create->Running of a container with one new local volume and of the
    /// same container without, alternating one by one.
    async fn paired_volume(&self, n: usize) -> (Phase, Phase) {
        let plain = self.zun_body();
        let mut with_volume = self.zun_body();
        with_volume["mounts"] = json!([{"size": 1, "destination": "/data"}]);
        let board = StatusBoard::new();
        let poller = board.poll(&self.api, Duration::from_millis(self.cli.poll_ms));
        let work = async {
            let (mut with, mut without) = (Vec::new(), Vec::new());
            let (mut with_wall, mut without_wall) = (Duration::ZERO, Duration::ZERO);
            for _ in 0..n {
                let began = Instant::now();
                without.push(self.zun_one(&plain, &board).await);
                without_wall += began.elapsed();
                let began = Instant::now();
                with.push(self.zun_one(&with_volume, &board).await);
                with_wall += began.elapsed();
            }
            (
                Phase::from_samples(with, with_wall),
                Phase::from_samples(without, without_wall),
            )
        };
        tokio::select! {
            phases = work => phases,
            () = poller => (
                Phase::from_samples(Vec::new(), Duration::ZERO),
                Phase::from_samples(Vec::new(), Duration::ZERO),
            ),
        }
    }

    /// Sequential write throughput (bytes a second, flushed to disk) inside
    /// a container onto a local volume, and by this process onto the
    /// filesystem that holds the volumes: the median of [`WRITES`]
    /// alternating writes each.
    async fn volume_write(&self) -> Result<Throughput> {
        let mounts = json!([{"size": 2, "destination": "/data"}]);
        let (uuid, _) = self
            .zun_running_with("exec sleep 3600", Some(mounts))
            .await?;
        let result = async {
            let container = format!("zun-{uuid}");
            let mib = WRITE_BYTES >> 20;
            let command =
                format!("dd if=/dev/zero of=/data/f bs=1M count={mib} conv=fsync 2>/dev/null");
            let host_file = self.data_dir.join("write-baseline");
            let (mut volume, mut host) = (Vec::new(), Vec::new());
            for _ in 0..WRITES {
                host.push(host_write(&host_file).await?);
                volume.push(self.timed_exec(&container, &command).await?);
            }
            let _ = std::fs::remove_file(&host_file);
            let median = |mut v: Vec<f64>| {
                v.sort_by(f64::total_cmp);
                WRITE_BYTES as f64 / v[v.len() / 2]
            };
            Ok((median(volume), median(host)))
        }
        .await;
        self.zun_clear(&[uuid]).await?;
        result
    }

    /// TCP throughput between two zund containers and between two raw
    /// ones: the median of [`TRANSFERS`] alternating transfers each.
    async fn throughput(&self) -> Result<Throughput> {
        let (zun_server, zun_ip) = self.zun_running(SERVE_BIG).await?;
        let (zun_client, _) = self.zun_running("exec sleep 3600").await?;
        let uuids = vec![zun_server.clone(), zun_client.clone()];
        let result = async {
            let (_, raw_ip) = self
                .raw_running(format!("zunbench-raw-{}-tput-s", self.run_id), SERVE_BIG)
                .await?;
            let (raw_client, _) = self
                .raw_running(
                    format!("zunbench-raw-{}-tput-c", self.run_id),
                    "exec sleep 3600",
                )
                .await?;
            // Let both servers write their file and listen.
            tokio::time::sleep(Duration::from_secs(1)).await;
            let zun_client = format!("zun-{zun_client}");
            let (mut zun, mut raw) = (Vec::new(), Vec::new());
            for _ in 0..TRANSFERS {
                raw.push(self.transfer(&raw_client, &raw_ip).await?);
                zun.push(self.transfer(&zun_client, &zun_ip).await?);
            }
            let median = |mut v: Vec<f64>| {
                v.sort_by(f64::total_cmp);
                TRANSFER_BYTES as f64 / v[v.len() / 2]
            };
            Ok((median(zun), median(raw)))
        }
        .await;
        self.zun_clear(&uuids).await?;
        self.raw_clear().await?;
        result
    }

    async fn zun_phase(&self, n: usize, concurrency: usize) -> Phase {
        let body = self.zun_body();
        let board = StatusBoard::new();
        let poller = board.poll(&self.api, Duration::from_millis(self.cli.poll_ms));
        let start = Instant::now();
        let work = futures_util::stream::iter(0..n)
            .map(|_| self.zun_one(&body, &board))
            .buffer_unordered(concurrency)
            .collect::<Vec<Sample>>();
        // The poller runs until every create has been seen settled.
        let samples = tokio::select! {
            samples = work => samples,
            () = poller => Vec::new(),
        };
        Phase::from_samples(samples, start.elapsed())
    }

    /// Sequential phases of both sides, alternating one raw container and
    /// one zund container, so both meet the same machine conditions (on a
    /// shared host, the engine's speed drifts between back-to-back phases).
    async fn paired_sequential(&self, n: usize) -> (Phase, Phase) {
        let body = self.zun_body();
        let board = StatusBoard::new();
        let poller = board.poll(&self.api, Duration::from_millis(self.cli.poll_ms));
        let work = async {
            let (mut zun, mut raw) = (Vec::new(), Vec::new());
            let (mut zun_wall, mut raw_wall) = (Duration::ZERO, Duration::ZERO);
            for i in 0..n {
                let began = Instant::now();
                raw.push(
                    self.raw_one(format!("zunbench-raw-{}-seq-{i}", self.run_id))
                        .await,
                );
                raw_wall += began.elapsed();
                let began = Instant::now();
                zun.push(self.zun_one(&body, &board).await);
                zun_wall += began.elapsed();
            }
            (
                Phase::from_samples(zun, zun_wall),
                Phase::from_samples(raw, raw_wall),
            )
        };
        tokio::select! {
            phases = work => phases,
            () = poller => (
                Phase::from_samples(Vec::new(), Duration::ZERO),
                Phase::from_samples(Vec::new(), Duration::ZERO),
            ),
        }
    }

    async fn raw_phase(&self, tag: &str, n: usize, concurrency: usize) -> Phase {
        let start = Instant::now();
        let samples: Vec<Sample> = futures_util::stream::iter(0..n)
            .map(|i| self.raw_one(format!("zunbench-raw-{}-{tag}-{i}", self.run_id)))
            .buffer_unordered(concurrency)
            .collect()
            .await;
        Phase::from_samples(samples, start.elapsed())
    }

    /// Deletes the given Zun containers and waits until neither the API nor
    /// the engine has any of this run's left. Not timed.
    async fn zun_clear(&self, uuids: &[String]) -> Result<()> {
        let concurrency = self.cli.concurrency;
        let results: Vec<Result<()>> = futures_util::stream::iter(uuids)
            .map(|u| self.api.delete(u))
            .buffer_unordered(concurrency)
            .collect()
            .await;
        for r in results {
            r?;
        }
        let label = format!("{ZUN_HOST_LABEL}={}", self.host_name);
        let limit = Duration::from_secs(self.cli.timeout_secs);
        let start = Instant::now();
        loop {
            let rows = self.api.list().await?;
            let engine = engine_ids(&self.docker, &label).await?;
            if rows.is_empty() && engine.is_empty() {
                return Ok(());
            }
            if start.elapsed() > limit {
                bail!(
                    "after deleting, {} container(s) still listed by zund and {} in the engine after {limit:?}",
                    rows.len(),
                    engine.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn raw_clear(&self) -> Result<()> {
        let label = format!("{RAW_LABEL}={}", self.run_id);
        let ids = engine_ids(&self.docker, &label).await?;
        let results: Vec<Result<()>> = futures_util::stream::iter(&ids)
            .map(|id| remove_engine(&self.docker, id))
            .buffer_unordered(self.cli.concurrency)
            .collect()
            .await;
        for r in results {
            r?;
        }
        if !engine_ids(&self.docker, &label).await?.is_empty() {
            bail!("baseline containers remain in the engine after removal");
        }
        Ok(())
    }

    async fn time_zun_list(&self) -> Result<Vec<Duration>> {
        let mut out = Vec::with_capacity(self.cli.list_requests);
        for _ in 0..self.cli.list_requests {
            let start = Instant::now();
            self.api.list().await?;
            out.push(start.elapsed());
        }
        out.sort();
        Ok(out)
    }

    async fn time_raw_list(&self) -> Result<Vec<Duration>> {
        let label = format!("{RAW_LABEL}={}", self.run_id);
        let mut out = Vec::with_capacity(self.cli.list_requests);
        for _ in 0..self.cli.list_requests {
            let start = Instant::now();
            engine_ids(&self.docker, &label).await?;
            out.push(start.elapsed());
        }
        out.sort();
        Ok(out)
    }
}

/// Medians of the transfers, bytes a second: (zund, raw).
type Throughput = (f64, f64);

/// How many creates each side of the volume row times (at most).
const VOLUME_CREATES: usize = 20;

/// What one volume write moves, and how many each side makes.
const WRITE_BYTES: u64 = 512 << 20;
const WRITES: usize = 3;

/// Seconds to write [`WRITE_BYTES`] to `path` and flush them to disk.
async fn host_write(path: &Path) -> Result<f64> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || -> Result<f64> {
        use std::io::Write;
        let chunk = vec![0u8; 1 << 20];
        let began = Instant::now();
        let mut file =
            File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        for _ in 0..(WRITE_BYTES >> 20) {
            file.write_all(&chunk)?;
        }
        file.sync_all()?;
        Ok(began.elapsed().as_secs_f64())
    })
    .await?
}

/// What one throughput transfer moves.
const TRANSFER_BYTES: u64 = 1 << 30;
const TRANSFERS: usize = 3;
/// The throughput containers' limits, the same on both sides: a whole CPU
/// each, so the network rather than the CPU limit bounds the transfer.
const TRANSFER_CPU: f64 = 1.0;
const TRANSFER_MEMORY_MIB: i64 = 512;
/// Serves a sparse 1 GiB file (read from the page cache, not the disk).
const SERVE_BIG: &str = "mkdir -p /www && dd if=/dev/zero of=/www/big bs=1 count=0 \
     seek=1073741824 2>/dev/null && exec httpd -f -p 8080 -h /www";

struct Report {
    /// `--host-scale`: containers on the host, the first 10 creates and the
    /// last 10.
    host_scale: Option<(usize, Phase, Phase)>,
    rows: Vec<(String, Phase, Phase)>,
    throughput: Option<Throughput>,
    /// Create->Running with one volume (of the kind named) and without.
    volume_creates: Option<(&'static str, Phase, Phase)>,
    /// Write throughput onto a local volume and onto the host's disk.
    volume_write: Option<Throughput>,
    /// Capsules against raw pods: (concurrency, zun, raw) per row.
    capsules: Vec<(usize, Phase, Phase)>,
    list: (Vec<Duration>, Vec<Duration>, usize),
    memory: Vec<(String, u64)>,
    failures: Vec<String>,
}

/// How many creates are timed at each end of `--host-scale`.
const HOST_SCALE_SAMPLE: usize = 10;

async fn host_scale(ctx: &Ctx, n: usize) -> Result<Report> {
    if n < 2 * HOST_SCALE_SAMPLE {
        bail!(
            "--host-scale needs at least {} containers",
            2 * HOST_SCALE_SAMPLE
        );
    }
    println!(
        "host scale: {HOST_SCALE_SAMPLE} timed creates, {} untimed, {HOST_SCALE_SAMPLE} timed",
        n - 2 * HOST_SCALE_SAMPLE
    );
    let first = ctx.zun_phase(HOST_SCALE_SAMPLE, 1).await;
    let fill = ctx
        .zun_phase(n - 2 * HOST_SCALE_SAMPLE, ctx.cli.concurrency)
        .await;
    let last = ctx.zun_phase(HOST_SCALE_SAMPLE, 1).await;
    let (rss, _) = memory_kib(ctx.pid)?;
    let mut failures = Vec::new();
    for (name, phase) in [("first", &first), ("fill", &fill), ("last", &last)] {
        for f in &phase.failures {
            failures.push(format!("{name}: {f}"));
        }
    }
    let ids: Vec<String> = [&first, &fill, &last]
        .iter()
        .flat_map(|p| p.ids.iter().cloned())
        .collect();
    ctx.zun_clear(&ids).await?;
    Ok(Report {
        host_scale: Some((n, first, last)),
        capsules: Vec::new(),
        volume_creates: None,
        volume_write: None,
        rows: Vec::new(),
        throughput: None,
        list: (Vec::new(), Vec::new(), 0),
        memory: vec![(format!("zund VmRSS with {n} containers running"), rss)],
        failures,
    })
}

/// `--cinder`: create->Running with one new 1 GiB Cinder volume beside the
/// same container without, alternating.
async fn cinder_volumes(ctx: &Ctx) -> Result<Report> {
    let n = ctx.cli.count.min(VOLUME_CREATES);
    println!("volumes: {n} creates with one new Cinder volume and without, alternating");
    let (with, without) = ctx.paired_volume(n).await;
    let mut made = with.ids.clone();
    made.extend(without.ids.iter().cloned());
    ctx.zun_clear(&made).await?;
    let mut failures = Vec::new();
    for (name, phase) in [("with a volume", &with), ("without a volume", &without)] {
        for f in &phase.failures {
            failures.push(format!("{name}: {f}"));
        }
    }
    Ok(Report {
        host_scale: None,
        capsules: Vec::new(),
        throughput: None,
        volume_creates: Some(("one 1 GiB Cinder volume", with, without)),
        volume_write: None,
        rows: Vec::new(),
        list: (Vec::new(), Vec::new(), 0),
        memory: vec![("zund VmRSS at the end".to_owned(), memory_kib(ctx.pid)?.0)],
        failures,
    })
}

async fn bench(ctx: &Ctx) -> Result<Report> {
    let n = ctx.cli.count;
    let c = ctx.cli.concurrency;
    let mut memory = Vec::new();
    let mut failures = Vec::new();

    // Idle memory: the API has answered; let start-up work settle first.
    tokio::time::sleep(Duration::from_secs(1)).await;
    memory.push((
        "zund VmRSS idle after start-up".to_owned(),
        memory_kib(ctx.pid)?.0,
    ));

    // Untimed warm-up of both sides.
    if ctx.cli.warmup > 0 {
        println!("warm-up: {} container(s) each side", ctx.cli.warmup);
        let raw = ctx.raw_phase("warm", ctx.cli.warmup, 1).await;
        ctx.raw_clear().await?;
        let zun = ctx.zun_phase(ctx.cli.warmup, 1).await;
        ctx.zun_clear(&zun.ids).await?;
        for f in raw.failures {
            failures.push(format!("warm-up raw: {f}"));
        }
        for f in zun.failures {
            failures.push(format!("warm-up zun: {f}"));
        }
    }

    // Sequential: raw and zund alternate container by container.
    // Concurrent: zund then raw.
    println!("phases 1-2/4: raw engine and zund alternating, sequential ({n} each)");
    let (zun_seq, raw_seq) = ctx.paired_sequential(n).await;
    ctx.raw_clear().await?;
    ctx.zun_clear(&zun_seq.ids).await?;

    println!("phase 3/4: zund, {c} at a time ({n})");
    let zun_conc = ctx.zun_phase(n, c).await;
    let running = ctx
        .api
        .list()
        .await?
        .iter()
        .filter(|(_, s)| s == "Running")
        .count();
    // Let the agent's post-create work finish before sampling memory.
    tokio::time::sleep(Duration::from_secs(1)).await;
    memory.push((
        format!("zund VmRSS with {running} containers running"),
        memory_kib(ctx.pid)?.0,
    ));
    let zun_list = ctx.time_zun_list().await?;
    ctx.zun_clear(&zun_conc.ids).await?;

    println!("phase 4/4: raw engine, {c} at a time ({n})");
    let raw_conc = ctx.raw_phase("conc", n, c).await;
    let raw_list = ctx.time_raw_list().await?;
    ctx.raw_clear().await?;

    tokio::time::sleep(Duration::from_secs(1)).await;
    let (rss, hwm) = memory_kib(ctx.pid)?;
    memory.push(("zund VmRSS after deleting all".to_owned(), rss));
    memory.push(("zund VmHWM (peak RSS over the run)".to_owned(), hwm));

    for (name, phase) in [
        ("raw sequential", &raw_seq),
        ("zun sequential", &zun_seq),
        ("zun concurrent", &zun_conc),
        ("raw concurrent", &raw_conc),
    ] {
        for f in &phase.failures {
            failures.push(format!("{name}: {f}"));
        }
    }

    println!("throughput: {TRANSFERS} transfers of 1 GiB each side, alternating");
    let throughput = match ctx.throughput().await {
        Ok(t) => Some(t),
        Err(err) => {
            failures.push(format!("throughput: {err:#}"));
            None
        }
    };

    let volumes_n = n.min(VOLUME_CREATES);
    println!("volumes: {volumes_n} creates with one local volume and without, alternating");
    let (with, without) = ctx.paired_volume(volumes_n).await;
    let mut made = with.ids.clone();
    made.extend(without.ids.iter().cloned());
    ctx.zun_clear(&made).await?;
    for (name, phase) in [("with a volume", &with), ("without a volume", &without)] {
        for f in &phase.failures {
            failures.push(format!("{name}: {f}"));
        }
    }
    println!(
        "volume write: {WRITES} writes of {} MiB each side, alternating",
        WRITE_BYTES >> 20
    );
    let volume_write = match ctx.volume_write().await {
        Ok(t) => Some(t),
        Err(err) => {
            failures.push(format!("volume write: {err:#}"));
            None
        }
    };

    let capsules = ctx.capsule_rows(&mut failures).await?;

    Ok(Report {
        host_scale: None,
        capsules,
        throughput,
        volume_creates: Some(("one 1 GiB local volume", with, without)),
        volume_write,
        rows: vec![
            ("create->Running, sequential".to_owned(), zun_seq, raw_seq),
            (
                format!("create->Running, {c} at a time"),
                zun_conc,
                raw_conc,
            ),
        ],
        list: (zun_list, raw_list, running),
        memory,
        failures,
    })
}

// ---------------------------------------------------------------- report

/// Nearest-rank percentile of sorted samples.
fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

fn ms(d: Option<Duration>) -> String {
    d.map(|d| format!("{:.1} ms", d.as_secs_f64() * 1000.0))
        .unwrap_or_else(|| "-".into())
}

fn ratio(a: Option<Duration>, b: Option<Duration>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if !b.is_zero() => format!("{:.2}x", a.as_secs_f64() / b.as_secs_f64()),
        _ => "-".into(),
    }
}

fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<String>| {
        let parts: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, cell)| {
                let w = widths.get(i).copied().unwrap_or(0);
                if i == 0 {
                    format!("{cell:<w$}")
                } else {
                    format!("{cell:>w$}")
                }
            })
            .collect();
        println!("{}", parts.join("  ").trim_end());
    };
    line(header.iter().map(|h| (*h).to_owned()).collect());
    let total: usize = widths.iter().sum::<usize>() + 2 * widths.len().saturating_sub(1);
    println!("{}", "-".repeat(total));
    for row in rows {
        line(row.clone());
    }
}

impl Report {
    fn print(&self, cli: &Cli) {
        if let Some((n, first, last)) = &self.host_scale {
            println!();
            let row = |name: String, phase: &Phase| {
                vec![
                    name,
                    format!("{}/{}", phase.ok(), phase.ok() + phase.failures.len()),
                    ms(percentile(&phase.latencies, 50.0)),
                    ms(percentile(&phase.latencies, 95.0)),
                ]
            };
            print_table(
                &["create->Running, one at a time", "ok", "p50", "p95"],
                &[
                    row(
                        format!("first {HOST_SCALE_SAMPLE}, on an empty host"),
                        first,
                    ),
                    row(
                        format!(
                            "last {HOST_SCALE_SAMPLE}, with {} already there",
                            n - HOST_SCALE_SAMPLE
                        ),
                        last,
                    ),
                ],
            );
            println!(
                "p50 ratio last/first: {}",
                ratio(
                    percentile(&last.latencies, 50.0),
                    percentile(&first.latencies, 50.0)
                )
            );
            self.print_memory_and_failures();
            return;
        }
        if !self.rows.is_empty() {
            self.print_latency(cli);
        }

        if let Some((zun, raw)) = self.throughput {
            println!();
            let mib = |bps: f64| format!("{:.0} MiB/s", bps / (1024.0 * 1024.0));
            print_table(
                &["throughput between two containers", "zun", "raw", "zun/raw"],
                &[vec![
                    format!("TCP, 1 GiB over HTTP (median of {TRANSFERS})"),
                    mib(zun),
                    mib(raw),
                    if raw > 0.0 {
                        format!("{:.2}x", zun / raw)
                    } else {
                        "-".into()
                    },
                ]],
            );
        }

        if let Some((kind, with, without)) = &self.volume_creates {
            println!();
            let row = |name: &str, p: f64| {
                let (a, b) = (
                    percentile(&with.latencies, p),
                    percentile(&without.latencies, p),
                );
                vec![name.to_owned(), ms(a), ms(b), ratio(a, b)]
            };
            print_table(
                &[
                    &format!(
                        "create->Running, one at a time ({}/{} and {}/{} ok)",
                        with.ok(),
                        with.ok() + with.failures.len(),
                        without.ok(),
                        without.ok() + without.failures.len()
                    ),
                    kind,
                    "no volume",
                    "ratio",
                ],
                &[row("p50", 50.0), row("p95", 95.0)],
            );
        }
        if let Some((volume, host)) = self.volume_write {
            println!();
            let mib = |bps: f64| format!("{:.0} MiB/s", bps / (1024.0 * 1024.0));
            print_table(
                &[
                    "sequential write, flushed",
                    "local volume",
                    "host disk",
                    "ratio",
                ],
                &[vec![
                    format!(
                        "{} MiB, dd in a container vs this process (median of {WRITES})",
                        WRITE_BYTES >> 20
                    ),
                    mib(volume),
                    mib(host),
                    if host > 0.0 {
                        format!("{:.2}x", volume / host)
                    } else {
                        "-".into()
                    },
                ]],
            );
        }

        capsules::print(&self.capsules);
        self.print_memory_and_failures();
    }

    /// The latency table: each phase against the raw engine, and the list.
    fn print_latency(&self, cli: &Cli) {
        println!();
        println!(
            "Latency: zun = POST ?run=true until it leaves Creating (one poller of GET /v1/containers?status=Creating, every {} ms), then Running; raw = engine create+start+inspect, same image, command and limits",
            cli.poll_ms
        );
        let header = [
            "phase",
            "zun ok",
            "zun p50",
            "zun p95",
            "raw ok",
            "raw p50",
            "raw p95",
            "p50 ratio",
            "p95 ratio",
            "zun wall",
            "raw wall",
        ];
        let mut rows: Vec<Vec<String>> = Vec::new();
        for (name, zun, raw) in &self.rows {
            let (zp50, zp95) = (
                percentile(&zun.latencies, 50.0),
                percentile(&zun.latencies, 95.0),
            );
            let (rp50, rp95) = (
                percentile(&raw.latencies, 50.0),
                percentile(&raw.latencies, 95.0),
            );
            rows.push(vec![
                name.clone(),
                format!("{}/{}", zun.ok(), zun.ok() + zun.failures.len()),
                ms(zp50),
                ms(zp95),
                format!("{}/{}", raw.ok(), raw.ok() + raw.failures.len()),
                ms(rp50),
                ms(rp95),
                ratio(zp50, rp50),
                ratio(zp95, rp95),
                format!("{:.2} s", zun.wall.as_secs_f64()),
                format!("{:.2} s", raw.wall.as_secs_f64()),
            ]);
        }
        let (zun_list, raw_list, running) = &self.list;
        let (zp50, zp95) = (percentile(zun_list, 50.0), percentile(zun_list, 95.0));
        let (rp50, rp95) = (percentile(raw_list, 50.0), percentile(raw_list, 95.0));
        rows.push(vec![
            format!("GET /v1/containers ({running} present)"),
            format!("{}", zun_list.len()),
            ms(zp50),
            ms(zp95),
            format!("{}", raw_list.len()),
            ms(rp50),
            ms(rp95),
            ratio(zp50, rp50),
            ratio(zp95, rp95),
            String::new(),
            String::new(),
        ]);
        print_table(&header, &rows);
        println!(
            "(list row: raw = engine GET /containers/json?all=1 filtered by label, with the {} baseline containers present)",
            cli.count
        );
    }

    fn print_memory_and_failures(&self) {
        println!();
        let mem_rows: Vec<Vec<String>> = self
            .memory
            .iter()
            .map(|(name, kib)| vec![name.clone(), format!("{:.1} MiB", *kib as f64 / 1024.0)])
            .collect();
        print_table(&["memory", "value"], &mem_rows);

        if !self.failures.is_empty() {
            println!();
            println!("failures ({}):", self.failures.len());
            for f in &self.failures {
                println!("  {f}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<Duration> = (1..=20).map(Duration::from_millis).collect();
        assert_eq!(percentile(&v, 50.0), Some(Duration::from_millis(10)));
        assert_eq!(percentile(&v, 95.0), Some(Duration::from_millis(19)));
        assert_eq!(percentile(&v[..1], 95.0), Some(Duration::from_millis(1)));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn engine_image_names() {
        assert_eq!(engine_image("busybox"), "busybox:latest");
        assert_eq!(engine_image("busybox:1.36"), "busybox:1.36");
        assert_eq!(engine_image("localhost:5000/x"), "localhost:5000/x:latest");
        assert_eq!(engine_image("a@sha256:ab"), "a@sha256:ab");
    }
}
