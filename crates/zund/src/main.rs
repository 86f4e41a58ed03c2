//! `zund`: the one daemon binary. Roles are subcommands; this file only
//! wires configuration into the library crates.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use tracing_subscriber::EnvFilter;
use zun_api::{ApiState, Identity};
use zun_compute::{Agent, AgentConfig, DockerRuntime, Runtime};
use zun_store::{SqliteStore, Store};

mod host_link;

#[derive(Parser)]
#[command(
    name = "zund",
    version,
    about = "OpenStack Zun-compatible container service"
)]
struct Cli {
    #[command(subcommand)]
    role: Role,
}

#[derive(Subcommand)]
enum Role {
    /// API server and compute agent in one process, on SQLite.
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
        /// Compute host that new containers are placed on.
        #[arg(long, env = "ZUN_COMPUTE_HOST")]
        compute_host: Option<String>,
    },
    /// One host's compute agent alone.
    Compute {
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        compute: ComputeArgs,
    },
    /// Creates or upgrades the store's schema, then exits.
    Migrate {
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Args)]
struct StoreArgs {
    /// Directory holding the SQLite store.
    #[arg(long, env = "ZUN_DATA_DIR", default_value = ".data")]
    data_dir: PathBuf,
}

#[derive(Args)]
struct ApiArgs {
    #[arg(long, env = "ZUN_LISTEN", default_value = "127.0.0.1:9517")]
    listen: SocketAddr,
    /// `noauth` identity: the project every request acts in.
    #[arg(long, env = "ZUN_PROJECT_ID", default_value = "default")]
    project_id: String,
    /// `noauth` identity: the user every request acts as.
    #[arg(long, env = "ZUN_USER_ID", default_value = "admin")]
    user_id: String,
    /// `noauth` identity: comma-separated roles (`admin` makes the caller an admin).
    #[arg(
        long,
        env = "ZUN_ROLES",
        default_value = "admin",
        value_delimiter = ','
    )]
    roles: Vec<String>,
}

#[derive(Args)]
struct ComputeArgs {
    /// The Docker engine's local socket. Never a TCP address.
    #[arg(
        long,
        env = "ZUN_DOCKER_SOCKET",
        default_value = "/var/run/docker.sock"
    )]
    docker_socket: String,
    /// This compute host's name.
    #[arg(long, env = "ZUN_HOST_NAME")]
    host_name: Option<String>,
}

fn default_host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

async fn open_store(args: &StoreArgs) -> anyhow::Result<Arc<SqliteStore>> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating data directory {}", args.data_dir.display()))?;
    let path: &Path = &args.data_dir.join("zun.sqlite");
    let store = SqliteStore::open(path)
        .await
        .with_context(|| format!("opening store {}", path.display()))?;
    Ok(Arc::new(store))
}

async fn connect_runtime(args: &ComputeArgs, host: &str) -> anyhow::Result<Arc<dyn Runtime>> {
    let runtime = DockerRuntime::connect(&args.docker_socket, host)
        .await
        .with_context(|| format!("connecting to the Docker engine at {}", args.docker_socket))?;
    Ok(Arc::new(runtime))
}

async fn serve_api(state: ApiState, listen: SocketAddr) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    tracing::info!(%listen, "API listening");
    zun_api::serve(listener, Arc::new(state), shutdown_signal())
        .await
        .context("serving the API")
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

fn identity(api: &ApiArgs) -> Identity {
    Identity {
        project_id: api.project_id.clone(),
        user_id: api.user_id.clone(),
        roles: api.roles.clone(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    match cli.role {
        Role::AllInOne {
            store,
            api,
            compute,
        } => {
            let store = open_store(&store).await?;
            let host = compute.host_name.clone().unwrap_or_else(default_host_name);
            let runtime = connect_runtime(&compute, &host).await?;
            let agent = Agent::new(
                store.clone(),
                runtime.clone(),
                AgentConfig::new(host.clone()),
            );
            let agent_task = tokio::spawn(agent.run());
            let state = ApiState {
                store,
                identity: identity(&api),
                compute_host: host,
                host_link: Arc::new(host_link::LocalHost::new(runtime)),
            };
            let result = serve_api(state, api.listen).await;
            agent_task.abort();
            result
        }
        Role::Api {
            store,
            api,
            compute_host,
        } => {
            let store: Arc<dyn Store> = open_store(&store).await?;
            let state = ApiState {
                store,
                identity: identity(&api),
                compute_host: compute_host.unwrap_or_else(default_host_name),
                host_link: Arc::new(host_link::Unreachable),
            };
            serve_api(state, api.listen).await
        }
        Role::Compute { store, compute } => {
            let store = open_store(&store).await?;
            let host = compute.host_name.clone().unwrap_or_else(default_host_name);
            let runtime = connect_runtime(&compute, &host).await?;
            Agent::new(store, runtime, AgentConfig::new(host))
                .run()
                .await;
            Ok(())
        }
        Role::Migrate { store } => {
            open_store(&store).await?;
            tracing::info!("store schema is up to date");
            Ok(())
        }
    }
}
