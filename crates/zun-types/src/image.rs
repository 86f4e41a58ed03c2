//! Images and private registries (reference §7.1, §7.7): image references as
//! the engine understands them, the registry and image records, validation
//! of their request bodies with upstream's error texts, and their views.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::error::ApiError;
use crate::validation::{
    NAME_PATTERN, NAME_RE, additional_property, compile, field_error, py_repr, string_field,
    type_error,
};
use crate::view;

/// A parsed image reference: `[domain/]path[:tag][@digest]`, as Docker's
/// reference grammar splits it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// The registry host (`127.0.0.1:5000`, `registry.example.com`), when
    /// the first component names one.
    pub domain: Option<String>,
    pub path: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

static PATH_COMPONENT_RE: LazyLock<Regex> =
    LazyLock::new(|| compile("^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$"));
static TAG_RE: LazyLock<Regex> = LazyLock::new(|| compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$"));
static DIGEST_RE: LazyLock<Regex> =
    LazyLock::new(|| compile("^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-fA-F0-9]{32,}$"));
static DOMAIN_RE: LazyLock<Regex> = LazyLock::new(|| {
    compile(
        r"^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?$",
    )
});

impl ImageRef {
    /// Parses `text` by Docker's rules: the first `/`-separated component
    /// is a registry domain when it contains `.` or `:` or is `localhost`;
    /// a `:` after the last `/` starts the tag; `@` starts a digest.
    pub fn parse(text: &str) -> Result<Self, String> {
        let invalid = |why: &str| format!("Invalid image reference {text:?}: {why}");
        let (rest, digest) = match text.split_once('@') {
            Some((rest, digest)) => {
                if !DIGEST_RE.is_match(digest) {
                    return Err(invalid("malformed digest"));
                }
                (rest, Some(digest.to_owned()))
            }
            None => (text, None),
        };
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(tag) = tag
            && !TAG_RE.is_match(tag)
        {
            return Err(invalid("malformed tag"));
        }
        let (domain, path) = match name.split_once('/') {
            Some((first, path))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                if !DOMAIN_RE.is_match(first) {
                    return Err(invalid("malformed registry domain"));
                }
                (Some(first.to_owned()), path)
            }
            _ => (None, name),
        };
        if path.is_empty() || !path.split('/').all(|c| PATH_COMPONENT_RE.is_match(c)) {
            return Err(invalid(
                "repository names must be lowercase letters, digits and separators",
            ));
        }
        if name.len() > 255 {
            return Err(invalid("repository name longer than 255 characters"));
        }
        Ok(Self {
            domain,
            path: path.to_owned(),
            tag: tag.map(str::to_owned),
            digest,
        })
    }

    /// The repository, with its domain when there is one.
    pub fn repository(&self) -> String {
        match &self.domain {
            Some(domain) => format!("{domain}/{}", self.path),
            None => self.path.clone(),
        }
    }

    /// The tag, `latest` when none was given (as Docker's CLI and upstream
    /// default it).
    pub fn tag_or_latest(&self) -> &str {
        self.tag.as_deref().unwrap_or("latest")
    }

    /// The reference with `domain` put in front when it names none: how a
    /// container's image is found in its registry (upstream prepends the
    /// registry's domain the same way).
    pub fn in_registry(mut self, domain: Option<&str>) -> Self {
        if self.domain.is_none() {
            self.domain = domain.map(str::to_owned);
        }
        self
    }

    /// `repository:tag`, or `repository@digest` when pinned by digest.
    pub fn pull_reference(&self) -> String {
        match &self.digest {
            Some(digest) => format!("{}@{digest}", self.repository()),
            None => format!("{}:{}", self.repository(), self.tag_or_latest()),
        }
    }
}

/// What a container or pull asks the engine to hold: the image as the user
/// named it, resolved against its registry's domain. An unparsable name is
/// passed through unchanged, for the engine to refuse with its own words.
pub fn resolve_image(image: &str, registry_domain: Option<&str>) -> String {
    match ImageRef::parse(image.trim()) {
        Ok(reference) => reference.in_registry(registry_domain).pull_reference(),
        Err(_) => image.trim().to_owned(),
    }
}

/// A private registry's credentials, owned by one project. The password
/// is only ever held sealed (encrypted); see the `zun-secrets` crate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Registry {
    pub uuid: String,
    pub name: Option<String>,
    pub domain: String,
    pub username: Option<String>,
    /// The password encrypted under the service's key, bound to `uuid`.
    pub password_sealed: Option<String>,
    pub project_id: String,
    pub user_id: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: Option<DateTime<Utc>>,
}

/// Work an agent still has to do for an image row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageTask {
    Pulling,
    Deleting,
}

impl ImageTask {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pulling => "pulling",
            Self::Deleting => "deleting",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "pulling" => Some(Self::Pulling),
            "deleting" => Some(Self::Deleting),
            _ => None,
        }
    }
}

/// An image pulled onto a host through the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Image {
    pub uuid: String,
    /// The engine's image id, once pulled.
    pub image_id: Option<String>,
    pub repo: String,
    pub tag: String,
    /// Bytes, as a decimal string (upstream's column is a string).
    pub size: Option<String>,
    pub host: String,
    pub project_id: String,
    pub user_id: String,
    pub task: Option<ImageTask>,
    pub created_at: DateTime<Utc>,
    pub updated_at: Option<DateTime<Utc>>,
}

// ---- validation ------------------------------------------------------------

/// Fields of a registry create or update body (reference §7.7).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistryFields {
    pub name: Option<String>,
    pub domain: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
}

const REGISTRY_KEYS: &[&str] = &["name", "domain", "username", "password"];

/// `{"registry": {...}}` with nothing else beside it.
fn registry_object(body: &Value) -> Result<&Map<String, Value>, ApiError> {
    let Value::Object(outer) = body else {
        return Err(type_error("registry", body, "'object'"));
    };
    let Some(inner) = outer.get("registry") else {
        return Err(ApiError::schema("'registry' is a required property"));
    };
    if let Some(extra) = outer.keys().find(|k| *k != "registry") {
        return Err(additional_property(extra));
    }
    match inner {
        Value::Object(map) => Ok(map),
        other => Err(type_error("registry", other, "'object'")),
    }
}

fn registry_fields(map: &Map<String, Value>) -> Result<RegistryFields, ApiError> {
    if let Some(extra) = map.keys().find(|k| !REGISTRY_KEYS.contains(&k.as_str())) {
        return Err(additional_property(extra));
    }
    let text = |field: &str, min: usize| -> Result<Option<String>, ApiError> {
        map.get(field)
            .map(|v| string_field(field, v, min, usize::MAX, None))
            .transpose()
    };
    Ok(RegistryFields {
        name: map
            .get("name")
            .map(|v| string_field("name", v, 2, 255, Some((&NAME_RE, NAME_PATTERN))))
            .transpose()?,
        domain: text("domain", 1)?,
        username: text("username", 1)?,
        password: text("password", 1)?,
    })
}

/// A `POST /v1/registries` body: `domain` is required.
pub fn registry_create(body: &Value) -> Result<RegistryFields, ApiError> {
    let map = registry_object(body)?;
    if !map.contains_key("domain") {
        return Err(ApiError::schema("'domain' is a required property"));
    }
    registry_fields(map)
}

/// A `PATCH /v1/registries/{id}` body: any of the fields.
pub fn registry_update(body: &Value) -> Result<RegistryFields, ApiError> {
    registry_fields(registry_object(body)?)
}

/// A `POST /v1/images` body (reference §7.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequest {
    pub repo: String,
    pub host: String,
    pub image_pull_policy: Option<String>,
}

static IMAGE_FIELD_RE: LazyLock<Regex> = LazyLock::new(|| compile(IMAGE_FIELD_PATTERN));
const IMAGE_FIELD_PATTERN: &str = "[a-zA-Z0-9][a-zA-Z0-9_.-]";
static SIZE_RE: LazyLock<Regex> = LazyLock::new(|| compile(SIZE_PATTERN));
const SIZE_PATTERN: &str = "^[0-9]+[b|B|k|K|m|M|g|G]?$";
const PULL_KEYS: &[&str] = &[
    "image_id",
    "repo",
    "tag",
    "size",
    "image_pull_policy",
    "host",
];

/// Validates a pull body. `tag`, `image_id` and `size` are checked as
/// upstream's schema does but not used: the tag comes from `repo`, and the
/// id and size from the engine.
pub fn image_pull(body: &Value) -> Result<PullRequest, ApiError> {
    let Value::Object(map) = body else {
        return Err(type_error("image", body, "'object'"));
    };
    let pattern = Some((&*IMAGE_FIELD_RE, IMAGE_FIELD_PATTERN));
    for field in ["image_id", "tag"] {
        match map.get(field) {
            None | Some(Value::Null) => {}
            Some(v @ Value::String(_)) => {
                string_field(field, v, 2, 255, pattern)?;
            }
            Some(v) => return Err(type_error(field, v, "'string', 'null'")),
        }
    }
    let repo = map
        .get("repo")
        .map(|v| string_field("repo", v, 2, 255, pattern))
        .transpose()?;
    match map.get("size") {
        None | Some(Value::Null) => {}
        Some(v @ Value::String(s)) if !SIZE_RE.is_match(s) => {
            return Err(field_error(
                "size",
                v,
                format!("{} does not match '{SIZE_PATTERN}'", py_repr(v)),
            ));
        }
        Some(Value::String(_)) => {}
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => {}
        Some(v) => return Err(type_error("size", v, "'string', 'integer', 'null'")),
    }
    let image_pull_policy = match map.get("image_pull_policy") {
        None | Some(Value::Null) => None,
        Some(v) => Some(crate::validation::image_pull_policy(v)?),
    };
    let host = map
        .get("host")
        .map(|v| string_field("host", v, 2, 255, pattern))
        .transpose()?;
    let Some(repo) = repo else {
        return Err(ApiError::schema("'repo' is a required property"));
    };
    let Some(host) = host else {
        return Err(ApiError::schema("'host' is a required property"));
    };
    if let Some(extra) = map.keys().find(|k| !PULL_KEYS.contains(&k.as_str())) {
        return Err(additional_property(extra));
    }
    Ok(PullRequest {
        repo,
        host,
        image_pull_policy,
    })
}

// ---- views -----------------------------------------------------------------

/// Upstream's registry view: the password is never shown, only `***`.
/// `host_url` adds `links` (single-registry responses).
pub fn registry_view(r: &Registry, host_url: Option<&str>) -> Value {
    let mut m = Map::new();
    m.insert("uuid".into(), json!(r.uuid));
    if let Some(url) = host_url {
        m.insert("links".into(), view::links(url, "registries", &r.uuid));
    }
    m.insert("user_id".into(), json!(r.user_id));
    m.insert("project_id".into(), json!(r.project_id));
    m.insert("name".into(), json!(r.name));
    m.insert("domain".into(), json!(r.domain));
    m.insert("username".into(), json!(r.username));
    m.insert("password".into(), json!("***"));
    Value::Object(m)
}

/// Upstream's image view (`uuid, links, image_id, repo, tag, size,
/// project_id, host`).
pub fn image_view(i: &Image, host_url: &str) -> Value {
    json!({
        "uuid": i.uuid,
        "links": view::links(host_url, "images", &i.uuid),
        "image_id": i.image_id,
        "repo": i.repo,
        "tag": i.tag,
        "size": i.size,
        "project_id": i.project_id,
        "host": i.host,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> (Option<String>, String, Option<String>, Option<String>) {
        let r = ImageRef::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        (r.domain, r.path, r.tag, r.digest)
    }

    #[test]
    fn references_split_as_docker_does() {
        let s = |v: &str| Some(v.to_owned());
        assert_eq!(parsed("busybox"), (None, "busybox".into(), None, None));
        assert_eq!(
            parsed("library/busybox:1.36"),
            (None, "library/busybox".into(), s("1.36"), None)
        );
        assert_eq!(
            parsed("127.0.0.1:5000/private/box:1.0"),
            (s("127.0.0.1:5000"), "private/box".into(), s("1.0"), None)
        );
        assert_eq!(
            parsed("127.0.0.1:5000/box"),
            (s("127.0.0.1:5000"), "box".into(), None, None)
        );
        assert_eq!(
            parsed("localhost/box"),
            (s("localhost"), "box".into(), None, None)
        );
        assert_eq!(
            parsed("registry.example.com/team/app:v2"),
            (s("registry.example.com"), "team/app".into(), s("v2"), None)
        );
        // A first component without '.' or ':' is a path, not a domain.
        assert_eq!(parsed("team/app"), (None, "team/app".into(), None, None));
        let digest = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            parsed(&format!("box@{digest}")),
            (None, "box".into(), None, Some(digest.clone()))
        );
    }

    #[test]
    fn malformed_references_are_refused() {
        for bad in [
            "",
            "Busybox",
            "box:",
            "box:-x",
            "/box",
            "box/",
            "a//b",
            "box@sha256:zz",
            "bad_domain.com:x/box",
        ] {
            assert!(ImageRef::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn images_resolve_against_their_registry() {
        assert_eq!(resolve_image("busybox", None), "busybox:latest");
        assert_eq!(
            resolve_image("private/box:1.0", Some("127.0.0.1:5000")),
            "127.0.0.1:5000/private/box:1.0"
        );
        // A name with its own domain keeps it.
        assert_eq!(
            resolve_image("other.io/box", Some("127.0.0.1:5000")),
            "other.io/box:latest"
        );
        assert_eq!(resolve_image("Not Valid", None), "Not Valid");
    }

    #[test]
    fn registry_bodies_follow_the_schema() {
        let ok = registry_create(&json!({"registry": {
            "domain": "127.0.0.1:5000", "name": "mine", "username": "u", "password": "p"}}))
        .expect("valid");
        assert_eq!(ok.domain.as_deref(), Some("127.0.0.1:5000"));
        assert_eq!(ok.password.as_deref(), Some("p"));
        let detail = |body: Value, create: bool| {
            let result = if create {
                registry_create(&body)
            } else {
                registry_update(&body)
            };
            result.expect_err("invalid").detail
        };
        assert_eq!(
            detail(json!({"registry": {"name": "mine"}}), true),
            "'domain' is a required property"
        );
        assert_eq!(detail(json!({}), true), "'registry' is a required property");
        assert_eq!(
            detail(json!({"registry": {"domain": "d"}, "x": 1}), true),
            "Additional properties are not allowed ('x' was unexpected)"
        );
        assert_eq!(
            detail(json!({"registry": {"domain": "d", "colour": "red"}}), true),
            "Additional properties are not allowed ('colour' was unexpected)"
        );
        assert!(detail(json!({"registry": {"domain": ""}}), true).contains("is too short"));
        assert!(detail(json!({"registry": {"name": "-x"}}), false).contains("does not match"));
        assert!(detail(json!({"registry": {"password": null}}), false).contains("is not of type"));
        assert_eq!(
            registry_update(&json!({"registry": {}})).expect("empty update"),
            RegistryFields::default()
        );
    }

    #[test]
    fn pull_bodies_follow_the_schema() {
        let ok = image_pull(&json!({"repo": "busybox:1.0", "host": "node-1", "size": 3}))
            .expect("valid");
        assert_eq!(ok.repo, "busybox:1.0");
        assert_eq!(ok.host, "node-1");
        let detail = |body: Value| image_pull(&body).expect_err("invalid").detail;
        assert_eq!(
            detail(json!({"host": "node-1"})),
            "'repo' is a required property"
        );
        assert_eq!(
            detail(json!({"repo": "busybox"})),
            "'host' is a required property"
        );
        assert!(detail(json!({"repo": "b", "host": "node-1"})).contains("is too short"));
        assert!(
            detail(json!({"repo": "busybox", "host": "node-1", "size": "3T"}))
                .contains("does not match")
        );
        assert!(
            detail(json!({"repo": "busybox", "host": "node-1", "image_pull_policy": "maybe"}))
                .contains("is not one of")
        );
        assert_eq!(
            detail(json!({"repo": "busybox", "host": "node-1", "colour": 1})),
            "Additional properties are not allowed ('colour' was unexpected)"
        );
    }

    #[test]
    fn registry_view_never_shows_the_password() {
        let r = Registry {
            uuid: "u".into(),
            name: Some("mine".into()),
            domain: "d".into(),
            username: Some("alice".into()),
            password_sealed: Some("sealed".into()),
            project_id: "p".into(),
            user_id: "x".into(),
            created_at: Utc::now(),
            updated_at: None,
        };
        let shown = registry_view(&r, Some("http://h"));
        assert_eq!(shown["password"], "***");
        assert!(!shown.to_string().contains("sealed"));
        assert!(registry_view(&r, None).get("links").is_none());
    }
}
