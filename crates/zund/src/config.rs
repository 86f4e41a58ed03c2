//! The configuration file (TOML) and the command-line flags that override it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde::Deserialize;
use zun_api::identity::KeystoneConfig;
use zun_store::QuotaLimits;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub api: ApiSection,
    pub store: StoreSection,
    pub compute: ComputeSection,
    pub identity: IdentitySection,
    pub policy: PolicySection,
    pub quota: QuotaSection,
    pub websocket: WebsocketSection,
    pub registry: RegistrySection,
    pub network: NetworkSection,
    pub volume: VolumeSection,
    /// The filter scheduler (zun-scheduler's `Policy`: enabled filters,
    /// allocation ratios, reserved amounts, weigher).
    pub scheduler: zun_scheduler::Policy,
}

/// Private registries' passwords are sealed with the service's key.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistrySection {
    /// The key file (32 random bytes, base64). Generated on first start,
    /// readable by the service's user only, when missing; by default
    /// `<data_dir>/secret.key`. Every API and compute host of one
    /// deployment needs the same key.
    pub key_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiSection {
    pub listen: SocketAddr,
    /// Deadline of `execute` with `run=true`; the command is left running
    /// after it and the caller gets upstream's 409.
    pub exec_timeout_seconds: u64,
    /// A compute service not heard from for this long is down (upstream's
    /// `service_down_time`): it gets no new containers and its containers
    /// show `Unknown`.
    pub service_down_time_seconds: u64,
    /// The API serves HTTPS with this certificate (PEM, then its chain)
    /// and key; both or neither.
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    /// The CA (PEM) whose certificates the API accepts from agent
    /// endpoints; by default the CA the service derives from its key.
    pub agent_ca_file: Option<PathBuf>,
    /// A JSON line per state-changing request is appended to this file
    /// (`-`: standard output); none when unset.
    pub audit_log: Option<PathBuf>,
}

impl Default for ApiSection {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9517)),
            exec_timeout_seconds: 60,
            service_down_time_seconds: 180,
            tls_cert_file: None,
            tls_key_file: None,
            agent_ca_file: None,
            audit_log: None,
        }
    }
}

/// The websocket that carries attach and interactive exec sessions, served
/// by the API at `/websocket`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebsocketSection {
    /// The URL clients are told to connect to (e.g. behind a TLS proxy,
    /// `wss://zun.example.com/websocket`); by default `ws://` plus the host
    /// the client used for the API, plus `/websocket`.
    pub base_url: Option<String>,
    /// Host names of web pages allowed to open a websocket, besides the
    /// API's own.
    pub allowed_origins: Vec<String>,
    /// Lifetime of an unused websocket token.
    pub token_ttl_seconds: u64,
}

impl Default for WebsocketSection {
    fn default() -> Self {
        Self {
            base_url: None,
            allowed_origins: Vec::new(),
            token_ttl_seconds: 60,
        }
    }
}

impl Config {
    /// The scheduler's settings, checked.
    pub fn scheduler_settings(&self) -> anyhow::Result<zun_api::placement::SchedulerSettings> {
        self.scheduler
            .validate()
            .context("the [scheduler] section is invalid")?;
        Ok(zun_api::placement::SchedulerSettings {
            policy: self.scheduler.clone(),
            down_after: Duration::from_secs(self.api.service_down_time_seconds.max(1)),
        })
    }

    /// Where the service's secret key is kept.
    pub fn key_file(&self) -> PathBuf {
        self.registry
            .key_file
            .clone()
            .unwrap_or_else(|| self.store.data_dir.join("secret.key"))
    }

    /// What the API needs to know about streams.
    pub fn stream_settings(&self) -> zun_api::streams::StreamSettings {
        zun_api::streams::StreamSettings {
            websocket_base_url: self.websocket.base_url.clone(),
            allowed_origins: self.websocket.allowed_origins.clone(),
            token_ttl: Duration::from_secs(self.websocket.token_ttl_seconds.max(1)),
            exec_timeout: Duration::from_secs(self.api.exec_timeout_seconds.max(1)),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSection {
    /// Directory holding the SQLite store (and the secret key by default).
    pub data_dir: PathBuf,
    /// A PostgreSQL URL (`postgres://user:password@host:port/database`):
    /// every role of every host then shares that database instead of the
    /// SQLite file under `data_dir`.
    pub url: Option<String>,
}

impl Default for StoreSection {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from(".data"),
            url: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ComputeSection {
    /// The Docker engine's local socket. Never a TCP address.
    pub docker_socket: String,
    /// This compute host's name; the machine's hostname when unset.
    pub host_name: Option<String>,
    /// Bound of one image pull; a create's own deadline does not count it.
    pub image_pull_timeout_seconds: u64,
    /// The availability zone of this host's service (the scheduler's
    /// default zone when unset).
    pub availability_zone: Option<String>,
    /// How often the service heartbeats and reports what the host offers.
    pub report_interval_seconds: u64,
    /// What the host offers instead of what the engine reports.
    pub cpus: Option<f64>,
    pub memory_mib: Option<i64>,
    pub disk_gib: Option<i64>,
    /// Address of this host's agent endpoint, which the API calls for
    /// logs, exec, attach and the other streams (authenticated with a
    /// token per request made with the service key). The default, loopback
    /// on a free port, only serves an API on the same machine: on several
    /// hosts set an address the API hosts can reach (and firewall it to
    /// them).
    pub listen: SocketAddr,
    /// The URL the API should use for the endpoint (`https://host:port`),
    /// when `listen` is not what the API can reach (a wildcard address,
    /// NAT); by default `https://<the bound listen address>`.
    pub advertise_url: Option<String>,
    /// The endpoint serves HTTPS (the default); `false` serves plain HTTP,
    /// for a network the operator trusts.
    pub tls: bool,
    /// The endpoint's certificate (PEM, then its chain) and key, from the
    /// operator's CA (give the API `[api] agent_ca_file`); by default the
    /// agent makes itself one from the CA derived from the service key.
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    /// The most processes and threads one container may have (a fork bomb
    /// stops inside it); 0: no limit.
    pub pids_limit: i64,
    /// Containers run with `no-new-privileges` (setuid binaries and file
    /// capabilities grant nothing).
    pub no_new_privileges: bool,
    /// Capabilities taken from every unprivileged container (from the
    /// engine's default set); `[]` keeps the engine's set.
    pub drop_capabilities: Vec<String>,
    /// A container's engine log is rotated at this size (Docker's units:
    /// `10m`) keeping `log_max_files` files; `""`: unbounded.
    pub log_max_size: String,
    pub log_max_files: u32,
}

impl ComputeSection {
    /// What every container of this host gets.
    pub fn hardening(&self) -> zun_compute::runtime::Hardening {
        zun_compute::runtime::Hardening {
            pids_limit: (self.pids_limit > 0).then_some(self.pids_limit),
            no_new_privileges: self.no_new_privileges,
            drop_capabilities: self.drop_capabilities.clone(),
            log_max_size: Some(self.log_max_size.trim().to_owned()).filter(|s| !s.is_empty()),
            log_max_files: self.log_max_files,
        }
    }
}

impl Default for ComputeSection {
    fn default() -> Self {
        Self {
            docker_socket: "/var/run/docker.sock".into(),
            host_name: None,
            image_pull_timeout_seconds: 600,
            availability_zone: None,
            report_interval_seconds: 10,
            cpus: None,
            memory_mib: None,
            disk_gib: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            advertise_url: None,
            tls: true,
            tls_cert_file: None,
            tls_key_file: None,
            pids_limit: zun_compute::runtime::Hardening::DEFAULT_PIDS_LIMIT,
            no_new_privileges: true,
            drop_capabilities: zun_compute::runtime::Hardening::DEFAULT_DROPPED_CAPABILITIES
                .map(str::to_owned)
                .to_vec(),
            log_max_size: zun_compute::runtime::Hardening::DEFAULT_LOG_MAX_SIZE.to_owned(),
            log_max_files: zun_compute::runtime::Hardening::DEFAULT_LOG_MAX_FILES,
        }
    }
}

/// How a compute host gives its containers networks.
#[derive(Debug, Default, Deserialize, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum NetworkDriverKind {
    /// Per-project networks on Linux bridges, addresses in the store.
    #[default]
    Builtin,
    /// No network: containers get loopback only.
    None,
}

/// Containers' `mounts` on a compute host.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VolumeSection {
    pub driver: VolumeDriverKind,
    /// Where local volumes (`local/`), attached Cinder volumes (`cinder/`)
    /// and injected files (`files/`) live; by default `<data_dir>/volumes`.
    pub dir: Option<PathBuf>,
    /// With `driver = "cinder"` (Keystone identity): the block-storage API
    /// and, on compute hosts, how to attach its volumes.
    pub cinder: Option<CinderSection>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CinderSection {
    /// The block-storage endpoint without the project (`http://host:8776/v3`).
    pub url: String,
    /// Keystone v3, for the agent's own tokens (`http://host:5000/v3`).
    pub auth_url: String,
    /// A user that may attach and delete any project's volumes (admin in
    /// Cinder), as Nova's compute service has.
    pub username: String,
    pub password: String,
    pub project_name: String,
    #[serde(default = "default_domain")]
    pub domain: String,
    /// A ceph.conf naming the monitors and the client's keyring.
    pub ceph_conf: PathBuf,
    /// The cephx user whose keyring that conf names.
    #[serde(default = "default_ceph_id")]
    pub ceph_id: String,
}

fn default_domain() -> String {
    "Default".into()
}

fn default_ceph_id() -> String {
    "cinder".into()
}

#[derive(Debug, Default, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum VolumeDriverKind {
    /// A size-bounded filesystem image per volume on this host.
    #[default]
    Local,
    /// Cinder's volumes (RBD), in the caller's project.
    Cinder,
    /// No volumes: creates with `mounts` fail on this host.
    None,
}

impl VolumeSection {
    /// The `[volume.cinder]` settings when volumes are Cinder's.
    pub fn cinder(&self) -> anyhow::Result<Option<&CinderSection>> {
        match (self.driver, &self.cinder) {
            (VolumeDriverKind::Cinder, Some(cinder)) => Ok(Some(cinder)),
            (VolumeDriverKind::Cinder, None) => {
                anyhow::bail!("[volume] driver = \"cinder\" needs a [volume.cinder] section")
            }
            _ => Ok(None),
        }
    }

    /// The directory of this host's volumes and files.
    pub fn dir(&self, data_dir: &Path) -> PathBuf {
        self.dir.clone().unwrap_or_else(|| data_dir.join("volumes"))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkSection {
    pub driver: NetworkDriverKind,
    /// Where every project network's subnet is carved from; every API and
    /// compute host of a deployment must agree (a network keeps the subnet
    /// it was given).
    pub pool: String,
    /// Length of each network's subnet.
    pub subnet_prefix: u8,
    /// A named network namespace (`ip netns`) holding this host's bridges
    /// and rules, for several simulated hosts on one machine; unset: the
    /// agent's own namespace.
    pub host_netns: Option<String>,
    /// Per-container resolv.conf and hosts files.
    pub state_dir: PathBuf,
    /// This host's address on the network between compute hosts; with it,
    /// project networks span every host that sets one (VXLAN, UDP 4789
    /// between these addresses). Unset: each host's networks stay on it.
    pub overlay_address: Option<String>,
    /// MTU of the networks' bridges and containers' interfaces. Unset:
    /// 1450 with an overlay (a 1500-byte underlay less VXLAN's 50 bytes),
    /// else 1500 (Ethernet's, as the engine's own bridges).
    pub mtu: Option<u32>,
}

impl Default for NetworkSection {
    fn default() -> Self {
        Self {
            driver: NetworkDriverKind::Builtin,
            pool: zun_network::BuiltinConfig::DEFAULT_POOL.into(),
            subnet_prefix: zun_network::BuiltinConfig::DEFAULT_SUBNET_PREFIX,
            host_netns: None,
            state_dir: PathBuf::from("/run/zun/net"),
            overlay_address: None,
            mtu: None,
        }
    }
}

impl NetworkSection {
    /// The built-in driver's settings for `host`, checked; None when
    /// containers get no network.
    pub fn builtin(&self, host: &str) -> anyhow::Result<Option<zun_network::BuiltinConfig>> {
        if self.driver == NetworkDriverKind::None {
            return Ok(None);
        }
        let pool: zun_types::network::Ipv4Net = self
            .pool
            .parse()
            .context("[network] pool must be an IPv4 network such as 10.128.0.0/9")?;
        if self.subnet_prefix < pool.prefix() || self.subnet_prefix > 29 {
            anyhow::bail!(
                "[network] subnet_prefix must be between the pool's length ({}) and 29",
                pool.prefix()
            );
        }
        let mut config = zun_network::BuiltinConfig::new(host);
        config.pool = pool;
        config.subnet_prefix = self.subnet_prefix;
        config.host_netns = self.host_netns.clone();
        config.state_dir = self.state_dir.clone();
        config.overlay_address = self
            .overlay_address
            .as_deref()
            .map(str::parse)
            .transpose()
            .context("[network] overlay_address must be an IPv4 address")?;
        let mtu = self.mtu.unwrap_or(if config.overlay_address.is_some() {
            1450
        } else {
            1500
        });
        if !(576..=9000).contains(&mtu) {
            anyhow::bail!("[network] mtu must be between 576 and 9000");
        }
        config.mtu = mtu;
        Ok(Some(config))
    }
}

#[derive(Debug, Default, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum IdentityMode {
    #[default]
    Noauth,
    Tokens,
    Keystone,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdentitySection {
    pub mode: IdentityMode,
    pub noauth: NoauthSection,
    pub tokens: TokensSection,
    pub keystone: Option<KeystoneConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NoauthSection {
    pub project_id: String,
    pub user_id: String,
    pub roles: Vec<String>,
}

impl Default for NoauthSection {
    fn default() -> Self {
        Self {
            project_id: "default".into(),
            user_id: "admin".into(),
            roles: vec!["admin".into()],
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokensSection {
    /// JSON file mapping tokens to identities; re-read when it changes.
    pub file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicySection {
    /// A `policy.yaml` overriding Zun's default rules; re-read when it changes.
    pub file: Option<PathBuf>,
}

/// Upstream's `[quota]` defaults per project (reference §10): what a
/// project gets when neither it nor the quota class `default` has a row.
/// -1 is unlimited.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuotaSection {
    /// Containers per project.
    pub containers: i64,
    /// MiB of container memory per project.
    pub memory: i64,
    /// vCPUs per project.
    pub cpu: i64,
    /// GiB of container disk per project.
    pub disk: i64,
}

impl Default for QuotaSection {
    fn default() -> Self {
        let d = QuotaLimits::UPSTREAM_DEFAULTS;
        Self {
            containers: d.containers,
            memory: d.memory,
            cpu: d.cpu,
            disk: d.disk,
        }
    }
}

impl QuotaSection {
    pub fn limits(&self) -> QuotaLimits {
        QuotaLimits {
            containers: self.containers,
            cpu: self.cpu,
            memory: self.memory,
            disk: self.disk,
        }
    }

    fn validate(&self) -> anyhow::Result<()> {
        for (name, value) in [
            ("containers", self.containers),
            ("memory", self.memory),
            ("cpu", self.cpu),
            ("disk", self.disk),
        ] {
            if value < -1 {
                anyhow::bail!("[quota] {name} = {value}: must be -1 (unlimited) or more");
            }
        }
        Ok(())
    }
}

impl Config {
    pub fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        let Some(path) = path else {
            return Ok(Self::default());
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading configuration {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("parsing configuration {}", path.display()))
    }

    fn parse(text: &str) -> anyhow::Result<Self> {
        let config: Self = toml::from_str(text)?;
        config.quota.validate()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_file_parses() {
        let text = r#"
            [api]
            listen = "127.0.0.1:9999"
            [store]
            data_dir = "/var/lib/zun"
            url = "postgres://zun:pw@db.example.com/zun"
            [compute]
            docker_socket = "/run/docker.sock"
            host_name = "c1"
            listen = "0.0.0.0:9518"
            advertise_url = "http://10.0.0.12:9518"
            [identity]
            mode = "keystone"
            [identity.keystone]
            auth_url = "http://127.0.0.1:5000/v3"
            username = "zun"
            password = "pw"
            project_name = "service"
            [policy]
            file = "/etc/zun/policy.yaml"
            [websocket]
            base_url = "wss://zun.example.com/websocket"
            allowed_origins = ["console.example.com"]
            token_ttl_seconds = 30
        "#;
        let config: Config = toml::from_str(text).expect("valid");
        assert_eq!(config.identity.mode, IdentityMode::Keystone);
        assert_eq!(config.api.listen.port(), 9999);
        assert_eq!(config.compute.listen.port(), 9518);
        assert_eq!(
            config.compute.advertise_url.as_deref(),
            Some("http://10.0.0.12:9518")
        );
        assert_eq!(Config::default().compute.listen.port(), 0);
        assert_eq!(
            config.store.url.as_deref(),
            Some("postgres://zun:pw@db.example.com/zun")
        );
        let keystone = config.identity.keystone.as_ref().expect("keystone section");
        assert_eq!(keystone.token_cache_seconds, 300);
        assert_eq!(keystone.user_domain_name, "Default");
        let streams = config.stream_settings();
        assert_eq!(streams.token_ttl, Duration::from_secs(30));
        assert_eq!(streams.exec_timeout, Duration::from_secs(60));
        assert_eq!(
            streams.websocket_base_url.as_deref(),
            Some("wss://zun.example.com/websocket")
        );
    }

    #[test]
    fn quota_defaults() {
        let config = Config::parse("").expect("empty file");
        assert_eq!(config.store.url, None);
        assert_eq!(config.quota.limits(), QuotaLimits::UPSTREAM_DEFAULTS);
        assert_eq!(
            config.quota.limits(),
            QuotaLimits {
                containers: 40,
                cpu: 20,
                memory: 51200,
                disk: 100
            }
        );
        let config = Config::parse("[quota]\ncpu = -1\ncontainers = 3").expect("valid");
        assert_eq!(config.quota.limits().cpu, -1);
        assert_eq!(config.quota.limits().containers, 3);
        assert_eq!(config.quota.limits().memory, 51200);
        assert!(Config::parse("[quota]\ndisk = -2").is_err());
        assert!(Config::parse("[quota]\nvolumes = 1").is_err());
    }

    #[test]
    fn unknown_keys_are_errors() {
        assert!(toml::from_str::<Config>("[api]\nlisten_on = \"x\"").is_err());
        assert!(toml::from_str::<Config>("[identity]\nmode = \"ldap\"").is_err());
    }
}
