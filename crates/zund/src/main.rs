//! `zund`: the one daemon binary. Roles are subcommands; this file only
//! wires configuration into the library crates.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use tracing_subscriber::EnvFilter;
use zun_api::identity::{Keystone, NoAuth, TokenFile};
use zun_api::{ApiState, Authenticator, Identity, RegistryClient};
use zun_compute::docker::{DEFAULT_OCI_RUNTIME, NETNS_RUNTIME_PREFIX};
use zun_compute::reconciler::Volumes;
use zun_compute::{
    Advertised, Agent, AgentConfig, ContainerIo, DockerRuntime, FakeRuntime, Runtime,
};
use zun_network::{BuiltinDriver, NetworkDriver};
use zun_secrets::SecretKey;
use zun_store::{PgStore, SqliteStore, Store};
use zun_volume::files::InjectedFiles;
use zun_volume::local::LocalDriver;

mod config;

use config::{Config, IdentityMode, VolumeDriverKind};

#[derive(Parser)]
#[command(
    name = "zund",
    version,
    about = "OpenStack Zun-compatible container service"
)]
struct Cli {
    /// Configuration file (TOML); flags override it.
    #[arg(long, global = true, env = "ZUN_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    role: Role,
}

#[derive(Subcommand)]
enum Role {
    /// API server and compute agent in one process.
    AllInOne {
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        api: ApiArgs,
        #[command(flatten)]
        compute: ComputeArgs,
    },
    /// The API server alone.
    Api {
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Loads the images of a `docker save` tarball into this host's engine,
    /// for hosts without a registry.
    ImportImage {
        #[command(flatten)]
        compute: ComputeArgs,
        /// The tarball (`docker save -o FILE IMAGE...`).
        file: PathBuf,
    },
    /// One host's compute agent alone.
    Compute {
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        compute: ComputeArgs,
    },
    /// Prints the certificate of the CA the service derives from its key
    /// (PEM): what the API trusts of agent endpoints by default.
    AgentCa {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Creates or upgrades the store's schema, then exits.
    Migrate {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// The API with simulated compute hosts: one agent per host over an
    /// in-memory engine, for scale benchmarks. Never a proof that anything
    /// works on a real engine.
    Simulate {
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        api: ApiArgs,
        /// How many hosts to simulate.
        #[arg(long, default_value_t = 100)]
        hosts: usize,
        /// Their names: `<prefix>-0000`, `<prefix>-0001`, ...
        #[arg(long, default_value = "sim")]
        host_prefix: String,
    },
}

#[derive(Args)]
struct StoreArgs {
    /// Directory holding the SQLite store [default: .data].
    #[arg(long, env = "ZUN_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// PostgreSQL store shared by several hosts
    /// (`postgres://user:password@host:port/database`) instead of SQLite.
    #[arg(long, env = "ZUN_STORE_URL", hide_env_values = true)]
    store_url: Option<String>,
}

#[derive(Args)]
struct ApiArgs {
    /// Address to serve the API on [default: 127.0.0.1:9517].
    #[arg(long, env = "ZUN_LISTEN")]
    listen: Option<SocketAddr>,
    /// `noauth` identity: the project every request acts in.
    #[arg(long, env = "ZUN_PROJECT_ID")]
    project_id: Option<String>,
    /// `noauth` identity: the user every request acts as.
    #[arg(long, env = "ZUN_USER_ID")]
    user_id: Option<String>,
    /// `noauth` identity: comma-separated roles (`admin` makes the caller an admin).
    #[arg(long, env = "ZUN_ROLES", value_delimiter = ',')]
    roles: Option<Vec<String>>,
}

#[derive(Args)]
struct ComputeArgs {
    /// The Docker engine's local socket [default: /var/run/docker.sock].
    #[arg(long, env = "ZUN_DOCKER_SOCKET")]
    docker_socket: Option<String>,
    /// How containers get networks: builtin or none [default: builtin].
    #[arg(long, env = "ZUN_NETWORK_DRIVER")]
    network_driver: Option<config::NetworkDriverKind>,
    /// Where project networks' subnets are carved from [default: 10.128.0.0/9].
    #[arg(long, env = "ZUN_NETWORK_POOL")]
    network_pool: Option<String>,
    /// Length of each project network's subnet [default: 20].
    #[arg(long, env = "ZUN_NETWORK_SUBNET_PREFIX")]
    network_subnet_prefix: Option<u8>,
    /// A named network namespace holding this host's bridges (several
    /// simulated hosts on one machine).
    #[arg(long, env = "ZUN_NETWORK_HOST_NETNS")]
    network_host_netns: Option<String>,
    /// This host's address between compute hosts, over which its networks
    /// span the other hosts (VXLAN).
    #[arg(long, env = "ZUN_NETWORK_OVERLAY_ADDRESS")]
    network_overlay_address: Option<String>,
    /// This compute host's name [default: the machine's hostname].
    #[arg(long, env = "ZUN_HOST_NAME")]
    host_name: Option<String>,
}

impl StoreArgs {
    fn apply(self, config: &mut Config) {
        if let Some(dir) = self.data_dir {
            config.store.data_dir = dir;
        }
        if self.store_url.is_some() {
            config.store.url = self.store_url;
        }
    }
}

impl ApiArgs {
    fn apply(self, config: &mut Config) {
        if let Some(listen) = self.listen {
            config.api.listen = listen;
        }
        let noauth = &mut config.identity.noauth;
        if let Some(project_id) = self.project_id {
            noauth.project_id = project_id;
        }
        if let Some(user_id) = self.user_id {
            noauth.user_id = user_id;
        }
        if let Some(roles) = self.roles {
            noauth.roles = roles;
        }
    }
}

impl ComputeArgs {
    fn apply(self, config: &mut Config) {
        if let Some(socket) = self.docker_socket {
            config.compute.docker_socket = socket;
        }
        if let Some(driver) = self.network_driver {
            config.network.driver = driver;
        }
        if let Some(pool) = self.network_pool {
            config.network.pool = pool;
        }
        if let Some(prefix) = self.network_subnet_prefix {
            config.network.subnet_prefix = prefix;
        }
        if self.network_host_netns.is_some() {
            config.network.host_netns = self.network_host_netns;
        }
        if self.network_overlay_address.is_some() {
            config.network.overlay_address = self.network_overlay_address;
        }
        if self.host_name.is_some() {
            config.compute.host_name = self.host_name;
        }
    }
}

fn default_host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// PostgreSQL when a URL is configured, else SQLite under `data_dir`; the
/// schema is brought up to date either way.
async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    if let Some(url) = &config.store.url {
        // The URL may hold a password: it is not repeated in errors or logs.
        let store = PgStore::connect(url)
            .await
            .context("opening the PostgreSQL store ([store] url)")?;
        tracing::info!("store: PostgreSQL");
        return Ok(Arc::new(store));
    }
    let dir = &config.store.data_dir;
    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating data directory {}", dir.display()))?;
    let path = dir.join("zun.sqlite");
    let store = SqliteStore::open(&path)
        .await
        .with_context(|| format!("opening store {}", path.display()))?;
    Ok(Arc::new(store))
}

async fn connect_docker(config: &Config, host: &str) -> anyhow::Result<Arc<DockerRuntime>> {
    let socket = &config.compute.docker_socket;
    let runtime = DockerRuntime::connect(socket, host)
        .await
        .with_context(|| format!("connecting to the Docker engine at {socket}"))?
        .with_hardening(config.compute.hardening());
    Ok(Arc::new(runtime))
}

fn policy(config: &Config) -> anyhow::Result<zun_policy::PolicyFile> {
    let file = zun_policy::PolicyFile::new(config.policy.file.clone())
        .context("loading the policy file")?;
    for diagnostic in file.current().diagnostics() {
        tracing::warn!(%diagnostic, "policy rule problem; the rule denies");
    }
    Ok(file)
}

fn authenticator(config: &Config) -> anyhow::Result<Arc<dyn Authenticator>> {
    let identity = &config.identity;
    Ok(match identity.mode {
        IdentityMode::Noauth => {
            let n = &identity.noauth;
            Arc::new(NoAuth(Identity::new(
                n.project_id.clone(),
                n.user_id.clone(),
                n.roles.clone(),
            )))
        }
        IdentityMode::Tokens => {
            let path = identity
                .tokens
                .file
                .as_ref()
                .context("identity mode `tokens` needs [identity.tokens] file")?;
            Arc::new(TokenFile::open(path).context("loading the token file")?)
        }
        IdentityMode::Keystone => {
            let keystone = identity
                .keystone
                .clone()
                .context("identity mode `keystone` needs an [identity.keystone] section")?;
            Arc::new(Keystone::new(keystone).context("building the Keystone client")?)
        }
    })
}

async fn serve_api(
    state: ApiState,
    listen: SocketAddr,
    tls: Option<rustls::ServerConfig>,
) -> anyhow::Result<()> {
    let listener =
        std::net::TcpListener::bind(listen).with_context(|| format!("binding {listen}"))?;
    let state = Arc::new(state);
    match tls {
        Some(tls) => {
            tracing::info!(%listen, "API listening (HTTPS)");
            zun_api::serve_tls(listener, state, shutdown_signal(), Arc::new(tls)).await
        }
        None => {
            tracing::info!(%listen, "API listening");
            listener.set_nonblocking(true)?;
            let listener = tokio::net::TcpListener::from_std(listener)?;
            zun_api::serve(listener, state, shutdown_signal()).await
        }
    }
    .context("serving the API")
}

/// The API's own certificate, when `[api] tls_cert_file` gives one.
fn api_tls(config: &Config) -> anyhow::Result<Option<rustls::ServerConfig>> {
    use zun_hostlink::tls::ServerIdentity;
    match (&config.api.tls_cert_file, &config.api.tls_key_file) {
        (Some(cert), Some(key)) => ServerIdentity::from_pem_files(cert, key)
            .and_then(ServerIdentity::server_config)
            .map(Some)
            .context("loading [api] tls_cert_file and tls_key_file"),
        (None, None) => Ok(None),
        _ => anyhow::bail!("[api] tls_cert_file and tls_key_file go together"),
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(_) => {
            let _ = ctrl_c.await;
            return;
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
}

fn secret_key(config: &Config) -> anyhow::Result<SecretKey> {
    let path = config.key_file();
    SecretKey::load_or_create(&path)
        .with_context(|| format!("loading the secret key {}", path.display()))
}

/// Binds this host's agent endpoint (`[compute] listen`) and serves it in
/// the background; returns the URL the agent records for the API.
async fn serve_agent_endpoint(
    config: &Config,
    store: Arc<dyn Store>,
    host: &str,
    link: zun_hostlink::local::LocalHost,
    key: &SecretKey,
) -> anyhow::Result<String> {
    let listen = config.compute.listen;
    let listener = std::net::TcpListener::bind(listen)
        .with_context(|| format!("binding the agent endpoint ([compute] listen) {listen}"))?;
    let bound = listener
        .local_addr()
        .context("the agent endpoint's address")?;
    let scheme = if config.compute.tls { "https" } else { "http" };
    let url = match &config.compute.advertise_url {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None => {
            if bound.ip().is_unspecified() {
                tracing::warn!(
                    %bound,
                    "the agent endpoint listens on a wildcard address: set [compute] advertise_url to the address the API hosts should use"
                );
            }
            format!("{scheme}://{bound}")
        }
    };
    let endpoint = Arc::new(zun_hostlink::endpoint::Endpoint::new(
        host.to_owned(),
        store,
        Arc::new(link),
        key.clone(),
    ));
    let app = zun_hostlink::endpoint::router(endpoint).into_make_service();
    let server = if config.compute.tls {
        let tls = agent_identity(config, key, &url, bound)?
            .server_config()
            .context("the agent endpoint's TLS")?;
        let tls = axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(tls));
        tokio::spawn(axum_server::from_tcp_rustls(listener, tls)?.serve(app))
    } else {
        tracing::warn!("[compute] tls = false: the agent endpoint serves plain HTTP");
        tokio::spawn(axum_server::from_tcp(listener)?.serve(app))
    };
    tokio::spawn(async move {
        if let Ok(Err(err)) = server.await {
            tracing::error!(error = %err, "the agent endpoint stopped");
        }
    });
    tracing::info!(%bound, %url, "agent endpoint listening");
    Ok(url)
}

/// The agent endpoint's certificate: the operator's, or one this agent
/// makes itself from the CA derived from the service key.
fn agent_identity(
    config: &Config,
    key: &SecretKey,
    url: &str,
    bound: SocketAddr,
) -> anyhow::Result<zun_hostlink::tls::ServerIdentity> {
    use zun_hostlink::tls::{AgentCa, ServerIdentity, endpoint_names};
    match (&config.compute.tls_cert_file, &config.compute.tls_key_file) {
        (Some(cert), Some(key_file)) => ServerIdentity::from_pem_files(cert, key_file)
            .context("loading [compute] tls_cert_file and tls_key_file"),
        (None, None) => {
            let names = endpoint_names(url, bound);
            anyhow::ensure!(
                !names.is_empty(),
                "the agent endpoint has no name for its certificate: set [compute] advertise_url"
            );
            AgentCa::derive(key)
                .and_then(|ca| ca.issue(names))
                .context("making the agent endpoint's certificate")
        }
        _ => anyhow::bail!("[compute] tls_cert_file and tls_key_file go together"),
    }
}

/// What the API accepts of agents' certificates: the operator's CA, or the
/// one derived from the service key.
fn agent_trust(config: &Config, key: &SecretKey) -> anyhow::Result<rustls::ClientConfig> {
    use zun_hostlink::tls::{AgentCa, certificates_from_pem, client_config};
    let anchors = match &config.api.agent_ca_file {
        Some(path) => certificates_from_pem(path).context("loading [api] agent_ca_file")?,
        None => vec![
            AgentCa::derive(key)
                .context("deriving the agents' CA")?
                .certificate()
                .clone(),
        ],
    };
    client_config(&anchors).context("the API's TLS towards agents")
}

fn remote_host(
    config: &Config,
    store: &Arc<dyn Store>,
    key: &SecretKey,
) -> anyhow::Result<zun_hostlink::remote::RemoteHost> {
    let tls = agent_trust(config, key)?;
    zun_hostlink::remote::RemoteHost::new(Arc::clone(store), key.clone(), tls)
        .context("building the agent endpoint client")
}

/// The host's network driver, when containers get networks; the engine must
/// then know the `zun-runc` runtime that puts containers into them.
async fn network_driver(
    config: &Config,
    store: &Arc<dyn Store>,
    host: &str,
    runtime: &Arc<dyn Runtime>,
) -> anyhow::Result<Option<Arc<dyn NetworkDriver>>> {
    let Some(settings) = config.network.builtin(host)? else {
        tracing::info!("[network] driver = none: containers get no network");
        return Ok(None);
    };
    let wrapper = format!("{NETNS_RUNTIME_PREFIX}{DEFAULT_OCI_RUNTIME}");
    match runtime.host_facts().await {
        Ok(facts) if !facts.runtimes.contains(&wrapper) => anyhow::bail!(
            "the container engine does not know the OCI runtime {wrapper}, which starts \
             containers in their network: start dockerd with --add-runtime \
             {wrapper}=/path/to/{wrapper} (built with zund; scripts/dockerd.sh does it), \
             or set [network] driver = \"none\""
        ),
        Ok(_) => {}
        // The agent retries the engine; so will its creates.
        Err(err) => tracing::warn!(error = %err, "cannot ask the engine for its runtimes"),
    }
    Ok(Some(Arc::new(BuiltinDriver::new(
        Arc::clone(store),
        settings,
    ))))
}

/// The host's volume driver and injected files, as `[volume]` says.
fn volumes(config: &Config, host: &str) -> anyhow::Result<Option<Volumes>> {
    if config.volume.driver == VolumeDriverKind::None {
        tracing::info!("[volume] driver = none: containers with mounts cannot run here");
        return Ok(None);
    }
    let dir = config.volume.dir(&config.store.data_dir);
    let driver: Arc<dyn zun_volume::VolumeDriver> = match config.volume.cinder()? {
        Some(c) => zun_volume::cinder::CinderDriver::new(
            &c.url,
            zun_volume::cinder::ServiceUser {
                auth_url: c.auth_url.clone(),
                username: c.username.clone(),
                password: c.password.clone(),
                project_name: c.project_name.clone(),
                domain: c.domain.clone(),
            },
            zun_volume::cinder::CephClient {
                conf: c.ceph_conf.clone(),
                id: c.ceph_id.clone(),
            },
            dir.join("cinder"),
            host,
        ),
        None => Arc::new(LocalDriver::new(dir.join("local"))),
    };
    Ok(Some(Volumes {
        driver,
        files: InjectedFiles::new(dir.join("files")),
    }))
}

fn agent_config(config: &Config, host: String, key: &SecretKey) -> AgentConfig {
    let compute = &config.compute;
    let mut agent = AgentConfig::new(host);
    agent.pull_timeout = Duration::from_secs(compute.image_pull_timeout_seconds.max(1));
    agent.secrets = Some(key.clone());
    agent.availability_zone = compute.availability_zone.clone();
    agent.report_interval = Duration::from_secs(compute.report_interval_seconds.max(1));
    agent.advertise = Advertised {
        cpus: compute.cpus,
        memory: compute.memory_mib,
        disk: compute.disk_gib,
    };
    if config.network.driver == config::NetworkDriverKind::Builtin {
        agent
            .overlay_address
            .clone_from(&config.network.overlay_address);
    }
    agent
}

/// The API's state, with `host_link` for the streams of its containers.
fn api_state(
    config: &Config,
    store: Arc<dyn Store>,
    host_link: Arc<dyn zun_api::HostLink>,
    key: SecretKey,
) -> anyhow::Result<ApiState> {
    Ok(ApiState {
        store,
        auth: authenticator(config)?,
        policy: policy(config)?,
        scheduler: config.scheduler_settings()?,
        host_cache: zun_api::placement::HostCache::default(),
        host_link,
        quota_defaults: config.quota.limits(),
        streams: config.stream_settings(),
        secrets: key,
        registry_client: RegistryClient::new(),
        network_pool: config
            .network
            .builtin("api")?
            .map(|n| (n.pool, n.subnet_prefix)),
        cinder: match config.volume.cinder()? {
            Some(c) if config.identity.mode == IdentityMode::Keystone => {
                Some(zun_volume::cinder::Cinder::new(&c.url))
            }
            Some(_) => anyhow::bail!(
                "[volume] driver = \"cinder\" needs [identity] mode = \"keystone\": \
                 Cinder is asked with the caller's token"
            ),
            None => None,
        },
        audit: match &config.api.audit_log {
            Some(path) => Some(Arc::new(
                zun_api::audit::AuditLog::open(path).with_context(|| {
                    format!("opening the audit log ([api] audit_log) {}", path.display())
                })?,
            )),
            None => None,
        },
    })
}

/// Serves the API, with the task that marks the containers of down hosts.
async fn run_api(state: ApiState, config: &Config) -> anyhow::Result<()> {
    let tls = api_tls(config)?;
    let settings = state.scheduler.clone();
    let every = (settings.down_after / 4).clamp(Duration::from_secs(1), Duration::from_secs(15));
    let monitor = tokio::spawn(zun_api::monitor::watch_hosts(
        Arc::clone(&state.store),
        settings,
        every,
    ));
    let result = serve_api(state, config.api.listen, tls).await;
    monitor.abort();
    result
}

fn host_name(config: &Config) -> String {
    config
        .compute
        .host_name
        .clone()
        .unwrap_or_else(default_host_name)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    let mut config = Config::load(cli.config.as_deref())?;
    match cli.role {
        Role::AllInOne {
            store,
            api,
            compute,
        } => {
            store.apply(&mut config);
            api.apply(&mut config);
            compute.apply(&mut config);
            let store = open_store(&config).await?;
            let host = host_name(&config);
            let docker = connect_docker(&config, &host).await?;
            let runtime: Arc<dyn Runtime> = docker.clone();
            let io: Arc<dyn ContainerIo> = docker;
            let local = zun_hostlink::local::LocalHost::new(runtime.clone(), io);
            let key = secret_key(&config)?;
            let mut agent_config = agent_config(&config, host.clone(), &key);
            agent_config.endpoint = Some(
                serve_agent_endpoint(&config, store.clone(), &host, local.clone(), &key).await?,
            );
            let network = network_driver(&config, &store, &host, &runtime).await?;
            let agent = Agent::new(
                store.clone(),
                runtime,
                network,
                volumes(&config, &host)?,
                agent_config,
            );
            agent.report().await;
            let agent_task = tokio::spawn(agent.run());
            let link = zun_hostlink::local::Dispatch {
                host,
                local,
                remote: remote_host(&config, &store, &key)?,
            };
            let state = api_state(&config, store, Arc::new(link), key)?;
            let result = run_api(state, &config).await;
            agent_task.abort();
            result
        }
        Role::Api { store, api } => {
            store.apply(&mut config);
            api.apply(&mut config);
            let store = open_store(&config).await?;
            let key = secret_key(&config)?;
            let link = remote_host(&config, &store, &key)?;
            let state = api_state(&config, store, Arc::new(link), key)?;
            run_api(state, &config).await
        }
        Role::Compute { store, compute } => {
            store.apply(&mut config);
            compute.apply(&mut config);
            let store = open_store(&config).await?;
            let host = host_name(&config);
            let docker = connect_docker(&config, &host).await?;
            let local = zun_hostlink::local::LocalHost::new(docker.clone(), docker.clone());
            let key = secret_key(&config)?;
            let mut agent_config = agent_config(&config, host.clone(), &key);
            agent_config.endpoint =
                Some(serve_agent_endpoint(&config, store.clone(), &host, local, &key).await?);
            let runtime: Arc<dyn Runtime> = docker;
            let network = network_driver(&config, &store, &host, &runtime).await?;
            Agent::new(
                store,
                runtime,
                network,
                volumes(&config, &host)?,
                agent_config,
            )
            .run()
            .await;
            Ok(())
        }
        Role::ImportImage { compute, file } => {
            compute.apply(&mut config);
            let host = host_name(&config);
            let docker = connect_docker(&config, &host).await?;
            let tarball = tokio::fs::File::open(&file)
                .await
                .with_context(|| format!("opening {}", file.display()))?;
            let loaded = docker
                .import_images(tarball)
                .await
                .with_context(|| format!("loading {} into the engine", file.display()))?;
            for reference in loaded {
                println!("{reference}");
            }
            Ok(())
        }
        Role::Simulate {
            store,
            api,
            hosts,
            host_prefix,
        } => {
            store.apply(&mut config);
            api.apply(&mut config);
            let store = open_store(&config).await?;
            // Read once; every simulated agent shares it.
            let key = secret_key(&config)?;
            let mut agents = Vec::with_capacity(hosts);
            for i in 0..hosts {
                let runtime = Arc::new(FakeRuntime::new());
                runtime
                    .add_image("busybox:latest")
                    .context("adding the simulated image")?;
                let mut agent = agent_config(&config, format!("{host_prefix}-{i:04}"), &key);
                // Many agents share this process: wake-ups are per host and
                // in-process, so they need not poll often.
                agent.idle_poll = Duration::from_secs(30);
                agent.resync_interval = Duration::from_secs(60);
                agent.report_interval = Duration::from_secs(60);
                // Simulated hosts have no kernel objects to plumb.
                let agent = Agent::new(Arc::clone(&store), runtime, None, None, agent);
                agent.report().await;
                agents.push(tokio::spawn(agent.run()));
            }
            tracing::info!(hosts, "simulated hosts registered");
            // Simulated hosts serve no endpoint: their streams answer 503.
            let link = remote_host(&config, &store, &key)?;
            let state = api_state(&config, store, Arc::new(link), key)?;
            let result = run_api(state, &config).await;
            agents.iter().for_each(tokio::task::JoinHandle::abort);
            result
        }
        Role::AgentCa { store } => {
            store.apply(&mut config);
            let ca = zun_hostlink::tls::AgentCa::derive(&secret_key(&config)?)
                .context("deriving the agents' CA")?;
            print!("{}", ca.certificate_pem());
            Ok(())
        }
        Role::Migrate { store } => {
            store.apply(&mut config);
            open_store(&config).await?;
            tracing::info!("store schema is up to date");
            Ok(())
        }
    }
}
