//! Who is asking (DESIGN decision 5): `noauth` for a laptop, static tokens
//! from a file for several tenants without OpenStack, and Keystone v3 token
//! validation as keystonemiddleware does it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// The caller, as identity establishes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub project_id: String,
    pub user_id: String,
    pub roles: Vec<String>,
    pub domain_id: Option<String>,
    pub is_admin_project: bool,
}

impl Identity {
    pub fn new(
        project_id: impl Into<String>,
        user_id: impl Into<String>,
        roles: Vec<String>,
    ) -> Self {
        Self {
            project_id: project_id.into(),
            user_id: user_id.into(),
            roles,
            domain_id: None,
            is_admin_project: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no token was presented")]
    Missing,
    #[error("the token is invalid, expired or revoked")]
    Invalid,
    /// The identity service could not be asked: 503, not 500.
    #[error("identity service unavailable: {0}")]
    Unavailable(String),
}

/// Turns a request's `X-Auth-Token` into an identity.
#[async_trait]
pub trait Authenticator: Send + Sync + 'static {
    async fn authenticate(&self, token: Option<&str>) -> Result<Identity, AuthError>;

    /// The `WWW-Authenticate` value of a 401, naming where to get a token.
    fn challenge(&self) -> String;
}

/// Every request acts as one configured identity.
pub struct NoAuth(pub Identity);

#[async_trait]
impl Authenticator for NoAuth {
    async fn authenticate(&self, _: Option<&str>) -> Result<Identity, AuthError> {
        Ok(self.0.clone())
    }

    fn challenge(&self) -> String {
        "None".into()
    }
}

#[derive(Debug, Deserialize)]
struct TokenEntry {
    project_id: String,
    user_id: String,
    #[serde(default)]
    roles: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct TokenFileBody {
    tokens: HashMap<String, TokenEntry>,
}

struct LoadedTokens {
    modified: Option<SystemTime>,
    by_digest: HashMap<[u8; 32], Identity>,
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Static tokens from a JSON file, re-read when it changes:
/// `{"tokens": {"<token>": {"project_id": "...", "user_id": "...", "roles": ["member"]}}}`.
pub struct TokenFile {
    path: PathBuf,
    loaded: Mutex<LoadedTokens>,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("parsing {path}: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
}

impl TokenFile {
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, TokenFileError> {
        let path = path.into();
        let loaded = Self::load(&path)?;
        Ok(Self {
            path,
            loaded: Mutex::new(loaded),
        })
    }

    fn load(path: &PathBuf) -> Result<LoadedTokens, TokenFileError> {
        let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
        let text = std::fs::read_to_string(path).map_err(|source| TokenFileError::Read {
            path: path.clone(),
            source,
        })?;
        let body: TokenFileBody =
            serde_json::from_str(&text).map_err(|source| TokenFileError::Parse {
                path: path.clone(),
                source,
            })?;
        let by_digest = body
            .tokens
            .into_iter()
            .map(|(token, e)| {
                (
                    digest(&token),
                    Identity::new(e.project_id, e.user_id, e.roles),
                )
            })
            .collect();
        Ok(LoadedTokens {
            modified,
            by_digest,
        })
    }

    /// Re-reads the file when its modification time changed. A file that
    /// became unreadable or invalid keeps the last good tokens (logged).
    fn refresh(&self) {
        let modified = std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok();
        let mut loaded = self
            .loaded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if modified == loaded.modified {
            return;
        }
        match Self::load(&self.path) {
            Ok(fresh) => {
                tracing::info!(path = %self.path.display(), tokens = fresh.by_digest.len(), "token file reloaded");
                *loaded = fresh;
            }
            Err(err) => {
                tracing::warn!(error = %err, "token file not reloaded; keeping the previous tokens");
                loaded.modified = modified;
            }
        }
    }
}

#[async_trait]
impl Authenticator for TokenFile {
    async fn authenticate(&self, token: Option<&str>) -> Result<Identity, AuthError> {
        let token = token.filter(|t| !t.is_empty()).ok_or(AuthError::Missing)?;
        self.refresh();
        let loaded = self
            .loaded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        loaded
            .by_digest
            .get(&digest(token))
            .cloned()
            .ok_or(AuthError::Invalid)
    }

    fn challenge(&self) -> String {
        "Token".into()
    }
}

/// Keystone v3 settings: the service user that validates tokens.
#[derive(Debug, Clone, Deserialize)]
pub struct KeystoneConfig {
    /// e.g. `http://127.0.0.1:5000/v3` (a trailing `/v3` is optional).
    pub auth_url: String,
    pub username: String,
    pub password: String,
    pub project_name: String,
    #[serde(default = "default_domain")]
    pub user_domain_name: String,
    #[serde(default = "default_domain")]
    pub project_domain_name: String,
    /// How long a validated token is trusted before Keystone is asked again
    /// (keystonemiddleware's `token_cache_time`); never past its expiry.
    #[serde(default = "default_cache_seconds")]
    pub token_cache_seconds: u64,
    /// Most validated tokens kept.
    #[serde(default = "default_cache_size")]
    pub token_cache_size: u64,
}

fn default_domain() -> String {
    "Default".into()
}

fn default_cache_seconds() -> u64 {
    300
}

fn default_cache_size() -> u64 {
    10_000
}

#[derive(Debug, Deserialize)]
struct Named {
    id: String,
}

#[derive(Debug, Deserialize)]
struct TokenProject {
    id: String,
    domain: Option<Named>,
}

#[derive(Debug, Deserialize)]
struct RoleRef {
    name: String,
}

#[derive(Debug, Deserialize)]
struct TokenBody {
    expires_at: DateTime<Utc>,
    user: Named,
    project: Option<TokenProject>,
    #[serde(default)]
    roles: Vec<RoleRef>,
    #[serde(default = "default_true")]
    is_admin_project: bool,
}

fn default_true() -> bool {
    true
}

#[derive(Debug, Deserialize)]
struct TokenEnvelope {
    token: TokenBody,
}

#[derive(Clone)]
struct Cached {
    identity: Identity,
    valid_until: Instant,
}

struct ServiceToken {
    token: String,
    expires_at: DateTime<Utc>,
}

/// Validates tokens against Keystone with the service user's own token,
/// which is fetched once and reused until shortly before it expires.
pub struct Keystone {
    config: KeystoneConfig,
    base: String,
    http: reqwest::Client,
    service_token: tokio::sync::Mutex<Option<ServiceToken>>,
    cache: moka::sync::Cache<[u8; 32], Cached>,
}

/// Renew the service token this long before Keystone says it expires.
const SERVICE_TOKEN_MARGIN: chrono::Duration = chrono::Duration::seconds(60);

impl Keystone {
    pub fn new(config: KeystoneConfig) -> Result<Self, reqwest::Error> {
        let base = config
            .auth_url
            .trim_end_matches('/')
            .trim_end_matches("/v3")
            .to_string();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(3))
            .build()?;
        let cache = moka::sync::Cache::builder()
            .max_capacity(config.token_cache_size)
            .build();
        Ok(Self {
            config,
            base,
            http,
            service_token: tokio::sync::Mutex::new(None),
            cache,
        })
    }

    fn unavailable(err: impl std::fmt::Display) -> AuthError {
        AuthError::Unavailable(err.to_string())
    }

    async fn fetch_service_token(&self) -> Result<ServiceToken, AuthError> {
        let c = &self.config;
        let body = serde_json::json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": c.username, "password": c.password,
                "domain": {"name": c.user_domain_name}}}},
            "scope": {"project": {"name": c.project_name, "domain": {"name": c.project_domain_name}}}
        }});
        let response = self
            .http
            .post(format!("{}/v3/auth/tokens", self.base))
            .json(&body)
            .send()
            .await
            .map_err(Self::unavailable)?;
        if !response.status().is_success() {
            return Err(AuthError::Unavailable(format!(
                "the service user could not log in to Keystone: HTTP {}",
                response.status()
            )));
        }
        let token = response
            .headers()
            .get("X-Subject-Token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .ok_or_else(|| Self::unavailable("Keystone returned no X-Subject-Token"))?;
        let envelope: TokenEnvelope = response.json().await.map_err(Self::unavailable)?;
        tracing::info!(expires_at = %envelope.token.expires_at, "service token obtained from Keystone");
        Ok(ServiceToken {
            token,
            expires_at: envelope.token.expires_at,
        })
    }

    /// The service token, fetched only when absent or about to expire.
    async fn service_token(&self, stale: Option<&str>) -> Result<String, AuthError> {
        let mut held = self.service_token.lock().await;
        let usable = held.as_ref().filter(|t| {
            t.expires_at - SERVICE_TOKEN_MARGIN > Utc::now() && Some(t.token.as_str()) != stale
        });
        if let Some(token) = usable {
            return Ok(token.token.clone());
        }
        let fresh = self.fetch_service_token().await?;
        let token = fresh.token.clone();
        *held = Some(fresh);
        Ok(token)
    }

    async fn validate(&self, token: &str) -> Result<TokenBody, AuthError> {
        let mut service = self.service_token(None).await?;
        for attempt in 0..2 {
            let response = self
                .http
                .get(format!("{}/v3/auth/tokens", self.base))
                .header("X-Auth-Token", &service)
                .header("X-Subject-Token", token)
                .send()
                .await
                .map_err(Self::unavailable)?;
            match response.status().as_u16() {
                200 => {
                    let envelope: TokenEnvelope =
                        response.json().await.map_err(Self::unavailable)?;
                    return Ok(envelope.token);
                }
                404 => return Err(AuthError::Invalid),
                // Our own token was refused (revoked or expired early): log
                // in again once.
                401 if attempt == 0 => service = self.service_token(Some(&service)).await?,
                status => {
                    return Err(AuthError::Unavailable(format!(
                        "Keystone answered HTTP {status} to a token validation"
                    )));
                }
            }
        }
        Err(AuthError::Unavailable(
            "Keystone refused the service user's token".into(),
        ))
    }
}

#[async_trait]
impl Authenticator for Keystone {
    async fn authenticate(&self, token: Option<&str>) -> Result<Identity, AuthError> {
        let token = token.filter(|t| !t.is_empty()).ok_or(AuthError::Missing)?;
        let key = digest(token);
        if let Some(hit) = self.cache.get(&key) {
            if hit.valid_until > Instant::now() {
                return Ok(hit.identity);
            }
            self.cache.invalidate(&key);
        }
        let body = self.validate(token).await?;
        let now = Utc::now();
        if body.expires_at <= now {
            return Err(AuthError::Invalid);
        }
        let Some(project) = body.project else {
            // Zun acts on projects; an unscoped or domain-scoped token
            // carries no project to act in.
            return Err(AuthError::Invalid);
        };
        let identity = Identity {
            project_id: project.id,
            user_id: body.user.id,
            roles: body.roles.into_iter().map(|r| r.name).collect(),
            domain_id: project.domain.map(|d| d.id),
            is_admin_project: body.is_admin_project,
        };
        let until_expiry = (body.expires_at - now).to_std().unwrap_or_default();
        let ttl = until_expiry.min(Duration::from_secs(self.config.token_cache_seconds));
        self.cache.insert(
            key,
            Cached {
                identity: identity.clone(),
                valid_until: Instant::now() + ttl,
            },
        );
        Ok(identity)
    }

    fn challenge(&self) -> String {
        format!("Keystone uri=\"{}\"", self.base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn token_file_maps_tokens_and_reloads_on_change() {
        let dir = std::env::temp_dir().join(format!("zun-tokens-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("tokens.json");
        std::fs::write(
            &path,
            r#"{"tokens": {"t1": {"project_id": "p1", "user_id": "u1", "roles": ["member"]}}}"#,
        )
        .expect("write");
        let file = TokenFile::open(&path).expect("valid file");
        let who = file.authenticate(Some("t1")).await.expect("known token");
        assert_eq!(
            (who.project_id.as_str(), who.user_id.as_str()),
            ("p1", "u1")
        );
        assert_eq!(who.roles, vec!["member".to_string()]);
        assert_eq!(
            file.authenticate(Some("nope")).await,
            Err(AuthError::Invalid)
        );
        assert_eq!(file.authenticate(None).await, Err(AuthError::Missing));
        assert_eq!(file.authenticate(Some("")).await, Err(AuthError::Missing));

        // mtime granularity: make sure the change is visible as a new mtime.
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(
            &path,
            r#"{"tokens": {"t2": {"project_id": "p2", "user_id": "u2"}}}"#,
        )
        .expect("rewrite");
        let later = SystemTime::now() + Duration::from_secs(2);
        let f = std::fs::File::options()
            .write(true)
            .open(&path)
            .expect("open");
        f.set_modified(later).expect("set mtime");
        assert_eq!(file.authenticate(Some("t1")).await, Err(AuthError::Invalid));
        assert_eq!(
            file.authenticate(Some("t2"))
                .await
                .expect("reloaded")
                .project_id,
            "p2"
        );

        // A broken file keeps the last good tokens.
        std::fs::write(&path, "not json").expect("break");
        f.set_modified(later + Duration::from_secs(2))
            .expect("set mtime");
        assert_eq!(
            file.authenticate(Some("t2"))
                .await
                .expect("kept")
                .project_id,
            "p2"
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    #[tokio::test]
    async fn keystone_unreachable_is_unavailable_not_invalid() {
        let keystone = Keystone::new(KeystoneConfig {
            // Port 9 (discard) on loopback: nothing listens.
            auth_url: "http://127.0.0.1:9/v3".into(),
            username: "zun".into(),
            password: "x".into(),
            project_name: "service".into(),
            user_domain_name: default_domain(),
            project_domain_name: default_domain(),
            token_cache_seconds: 1,
            token_cache_size: 10,
        })
        .expect("client");
        assert!(matches!(
            keystone.authenticate(Some("tok")).await,
            Err(AuthError::Unavailable(_))
        ));
        assert_eq!(keystone.authenticate(None).await, Err(AuthError::Missing));
        assert_eq!(keystone.challenge(), "Keystone uri=\"http://127.0.0.1:9\"");
    }
}
