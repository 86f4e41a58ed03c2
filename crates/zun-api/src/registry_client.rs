//! A client of the registry HTTP API (Docker Registry v2 / OCI
//! distribution), for image search: the catalog and tag lists of the
//! registries a project configured. It answers Basic challenges (htpasswd
//! registries) and Bearer token challenges (token-service registries such
//! as Harbor or a hub) with the registry's credentials.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::WWW_AUTHENTICATE;
use serde::Deserialize;

/// Bound of one request to a registry.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How many repositories one catalog request asks for.
const CATALOG_PAGE: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("the registry could not be reached: {0}")]
    Unreachable(String),
    #[error("the registry refused the credentials (HTTP {0})")]
    Denied(u16),
    #[error("the registry answered HTTP {status}: {body}")]
    Failed { status: u16, body: String },
}

/// One registry to talk to: its domain and, when configured, credentials.
#[derive(Clone)]
pub struct Target {
    pub domain: String,
    pub credentials: Option<(String, String)>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("domain", &self.domain)
            .finish_non_exhaustive()
    }
}

/// Plain HTTP only for loopback registries, as Docker treats them as
/// insecure by default; HTTPS everywhere else.
fn base_url(domain: &str) -> String {
    let host = domain.rsplit_once(':').map_or(domain, |(h, port)| {
        if port.chars().all(|c| c.is_ascii_digit()) {
            h
        } else {
            domain
        }
    });
    let loopback = host == "localhost"
        || host == "[::1]"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback());
    if loopback {
        format!("http://{domain}")
    } else {
        format!("https://{domain}")
    }
}

/// The parameters of a `Bearer realm="...",service="...",scope="..."`
/// challenge.
#[derive(Debug, Default, PartialEq, Eq)]
struct BearerChallenge {
    realm: String,
    service: Option<String>,
    scope: Option<String>,
}

fn bearer_challenge(header: &str) -> Option<BearerChallenge> {
    let rest = header.trim().strip_prefix("Bearer ")?;
    let mut challenge = BearerChallenge::default();
    let mut rest = rest.trim();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let after = after.trim_start();
        let (value, remainder) = match after.strip_prefix('"') {
            Some(quoted) => {
                let end = quoted.find('"')?;
                (&quoted[..end], &quoted[end + 1..])
            }
            None => after.split_once(',').unwrap_or((after, "")),
        };
        match key.trim() {
            "realm" => challenge.realm = value.to_owned(),
            "service" => challenge.service = Some(value.to_owned()),
            "scope" => challenge.scope = Some(value.to_owned()),
            _ => {}
        }
        rest = remainder.trim_start().trim_start_matches(',').trim_start();
    }
    (!challenge.realm.is_empty()).then_some(challenge)
}

#[derive(Deserialize)]
struct TokenAnswer {
    token: Option<String>,
    access_token: Option<String>,
}

#[derive(Deserialize)]
struct Catalog {
    #[serde(default)]
    repositories: Vec<String>,
}

#[derive(Deserialize)]
struct TagList {
    #[serde(default)]
    tags: Option<Vec<String>>,
}

#[derive(Debug, Clone)]
pub struct RegistryClient {
    http: reqwest::Client,
}

impl Default for RegistryClient {
    fn default() -> Self {
        Self::new()
    }
}

impl RegistryClient {
    pub fn new() -> Self {
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .unwrap_or_default();
        Self { http }
    }

    /// The repositories of the registry (its catalog's first page).
    pub async fn repositories(&self, target: &Target) -> Result<Vec<String>, RegistryError> {
        let catalog: Catalog = self
            .get_json(target, &format!("/v2/_catalog?n={CATALOG_PAGE}"))
            .await?;
        Ok(catalog.repositories)
    }

    /// The tags of `repository`.
    pub async fn tags(
        &self,
        target: &Target,
        repository: &str,
    ) -> Result<Vec<String>, RegistryError> {
        let list: TagList = self
            .get_json(target, &format!("/v2/{repository}/tags/list"))
            .await?;
        Ok(list.tags.unwrap_or_default())
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        target: &Target,
        path: &str,
    ) -> Result<T, RegistryError> {
        let url = format!("{}{path}", base_url(&target.domain));
        let basic = |request: reqwest::RequestBuilder| match &target.credentials {
            Some((user, password)) => request.basic_auth(user, Some(password)),
            None => request,
        };
        let first = basic(self.http.get(&url))
            .send()
            .await
            .map_err(unreachable)?;
        let response = if first.status() == StatusCode::UNAUTHORIZED {
            let challenge = first
                .headers()
                .get(WWW_AUTHENTICATE)
                .and_then(|h| h.to_str().ok())
                .and_then(bearer_challenge);
            match challenge {
                // A Basic challenge after Basic credentials: refused.
                None => return Err(RegistryError::Denied(401)),
                Some(challenge) => {
                    let token = self.token(&challenge, &basic).await?;
                    self.http
                        .get(&url)
                        .bearer_auth(token)
                        .send()
                        .await
                        .map_err(unreachable)?
                }
            }
        } else {
            first
        };
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(RegistryError::Denied(status.as_u16()));
        }
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            return Err(RegistryError::Failed {
                status: status.as_u16(),
                body: body.chars().take(200).collect(),
            });
        }
        response.json().await.map_err(|e| RegistryError::Failed {
            status: status.as_u16(),
            body: format!("unreadable answer: {e}"),
        })
    }

    async fn token(
        &self,
        challenge: &BearerChallenge,
        basic: &(dyn Fn(reqwest::RequestBuilder) -> reqwest::RequestBuilder + Sync),
    ) -> Result<String, RegistryError> {
        let mut query = Vec::new();
        if let Some(service) = &challenge.service {
            query.push(("service", service.as_str()));
        }
        if let Some(scope) = &challenge.scope {
            query.push(("scope", scope.as_str()));
        }
        let response = basic(self.http.get(&challenge.realm).query(&query))
            .send()
            .await
            .map_err(unreachable)?;
        if !response.status().is_success() {
            return Err(RegistryError::Denied(response.status().as_u16()));
        }
        let answer: TokenAnswer = response.json().await.map_err(|e| RegistryError::Failed {
            status: 200,
            body: format!("unreadable token answer: {e}"),
        })?;
        answer
            .token
            .or(answer.access_token)
            .ok_or(RegistryError::Denied(401))
    }
}

fn unreachable(err: reqwest::Error) -> RegistryError {
    RegistryError::Unreachable(err.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_registries_speak_plain_http() {
        assert_eq!(base_url("127.0.0.1:5000"), "http://127.0.0.1:5000");
        assert_eq!(base_url("localhost:5000"), "http://localhost:5000");
        assert_eq!(base_url("localhost"), "http://localhost");
        assert_eq!(
            base_url("registry.example.com"),
            "https://registry.example.com"
        );
        assert_eq!(base_url("10.0.0.5:5000"), "https://10.0.0.5:5000");
    }

    #[test]
    fn bearer_challenges_are_parsed() {
        let parsed = bearer_challenge(
            r#"Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="registry:catalog:*""#,
        );
        assert_eq!(
            parsed,
            Some(BearerChallenge {
                realm: "https://auth.example.com/token".into(),
                service: Some("registry.example.com".into()),
                scope: Some("registry:catalog:*".into()),
            })
        );
        assert_eq!(bearer_challenge(r#"Basic realm="zun""#), None);
        assert_eq!(bearer_challenge("Bearer service=x"), None);
        assert_eq!(
            bearer_challenge("Bearer realm=https://a/token, service=b").map(|c| c.service),
            Some(Some("b".into()))
        );
    }
}
