//! The configuration file (TOML) and the command-line flags that override it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;
use zun_api::identity::KeystoneConfig;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub api: ApiSection,
    pub store: StoreSection,
    pub compute: ComputeSection,
    pub identity: IdentitySection,
    pub policy: PolicySection,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiSection {
    pub listen: SocketAddr,
    /// Compute host new containers are placed on (the `api` role alone).
    pub compute_host: Option<String>,
}

impl Default for ApiSection {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9517)),
            compute_host: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSection {
    /// Directory holding the SQLite store.
    pub data_dir: PathBuf,
}

impl Default for StoreSection {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from(".data"),
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
}

impl Default for ComputeSection {
    fn default() -> Self {
        Self {
            docker_socket: "/var/run/docker.sock".into(),
            host_name: None,
        }
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

impl Config {
    pub fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        let Some(path) = path else {
            return Ok(Self::default());
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading configuration {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing configuration {}", path.display()))
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
            [compute]
            docker_socket = "/run/docker.sock"
            host_name = "c1"
            [identity]
            mode = "keystone"
            [identity.keystone]
            auth_url = "http://127.0.0.1:5000/v3"
            username = "zun"
            password = "pw"
            project_name = "service"
            [policy]
            file = "/etc/zun/policy.yaml"
        "#;
        let config: Config = toml::from_str(text).expect("valid");
        assert_eq!(config.identity.mode, IdentityMode::Keystone);
        assert_eq!(config.api.listen.port(), 9999);
        let keystone = config.identity.keystone.expect("keystone section");
        assert_eq!(keystone.token_cache_seconds, 300);
        assert_eq!(keystone.user_domain_name, "Default");
    }

    #[test]
    fn unknown_keys_are_errors() {
        assert!(toml::from_str::<Config>("[api]\nlisten_on = \"x\"").is_err());
        assert!(toml::from_str::<Config>("[identity]\nmode = \"ldap\"").is_err());
    }
}
