//! Cinder volumes: the block-storage API (volumes and the attachments API
//! of microversion 3.27+) and the driver that attaches an RBD-backed volume
//! on this host without the kernel's rbd module: one `rbd-fuse` per volume
//! exposes the image as a file, a loop device bounded to the volume's size
//! (`--sizelimit`: rbd-fuse grows an image on write) carries its ext4,
//! mounted under the driver's directory. Wire facts: docs/cinder-notes.md.
//!
//! A volume is formatted only when it is blank (no filesystem signature and
//! its first MiBs all zeros): never a volume that holds anything, whatever
//! its mount does (upstream ran `mkfs -F` after any failed mount).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;
use tokio::sync::Mutex;
use zun_types::volume::VolumeRef;

use crate::mounts::{data_dir, entry_names, is_mount_point, loop_devices, run};
use crate::{VolumeDriver, VolumeError};

/// The attachments API with the `mode` field.
const ATTACHMENTS_VERSION: &str = "volume 3.54";
/// `os-complete`.
const COMPLETE_VERSION: &str = "volume 3.44";
/// How long a volume may take to become usable (upstream's 60 s).
const AVAILABLE_WITHIN: Duration = Duration::from_secs(60);
/// How much of a volume must read as zeros for it to count as blank.
const BLANK_PROBE_BYTES: usize = 4 << 20;

#[derive(Debug, thiserror::Error)]
pub enum CinderError {
    #[error("Cinder could not be reached: {0}")]
    Unreachable(String),
    /// Cinder answered with an error: its status and message.
    #[error("Cinder answered {status}: {message}")]
    Refused { status: u16, message: String },
    #[error("Keystone refused the volume service's credentials: {0}")]
    Auth(String),
}

impl From<reqwest::Error> for CinderError {
    fn from(err: reqwest::Error) -> Self {
        CinderError::Unreachable(err.to_string())
    }
}

impl From<CinderError> for VolumeError {
    fn from(err: CinderError) -> Self {
        VolumeError::Broken(err.to_string())
    }
}

/// A volume as Cinder shows it.
#[derive(Debug, Clone, Deserialize)]
pub struct Volume {
    pub id: String,
    pub status: String,
    pub size: i64,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub multiattach: bool,
    #[serde(default)]
    pub attachments: Vec<Value>,
    /// Shown to admins only.
    #[serde(default, rename = "os-vol-tenant-attr:tenant_id")]
    pub tenant_id: Option<String>,
}

/// An attachment, with its `connection_info` once a connector was given.
#[derive(Debug, Clone, Deserialize)]
pub struct Attachment {
    pub id: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub connection_info: Value,
}

/// A token and the project it is scoped to: the caller's (API) or the
/// volume service user's (agent).
#[derive(Debug, Clone)]
pub struct Scope {
    pub token: String,
    pub project_id: String,
}

/// The block-storage API at `url` (`http://host:port/v3`, the project id is
/// added per call).
#[derive(Debug, Clone)]
pub struct Cinder {
    http: reqwest::Client,
    url: String,
}

impl Cinder {
    pub fn new(url: &str) -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap_or_default(),
            url: url.trim_end_matches('/').to_owned(),
        }
    }

    async fn call(
        &self,
        scope: &Scope,
        method: Method,
        path: &str,
        version: Option<&str>,
        body: Option<Value>,
    ) -> Result<(StatusCode, Value), CinderError> {
        let url = format!("{}/{}{path}", self.url, scope.project_id);
        let mut request = self
            .http
            .request(method, url)
            .header("X-Auth-Token", &scope.token)
            .header("Accept", "application/json");
        if let Some(version) = version {
            request = request.header("OpenStack-API-Version", version);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status();
        let text = response.text().await?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status.is_success() || status == StatusCode::NOT_FOUND {
            return Ok((status, value));
        }
        // Cinder's error bodies: {"badRequest": {"message": ...}}.
        let message = value
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(|v| v.get("message"))
            .and_then(Value::as_str)
            .map_or(text.clone(), str::to_owned);
        Err(CinderError::Refused {
            status: status.as_u16(),
            message,
        })
    }

    pub async fn volume(&self, scope: &Scope, id: &str) -> Result<Option<Volume>, CinderError> {
        let (status, body) = self
            .call(scope, Method::GET, &format!("/volumes/{id}"), None, None)
            .await?;
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        decode(&body["volume"])
    }

    /// The project's volumes named `name`.
    pub async fn volumes_named(
        &self,
        scope: &Scope,
        name: &str,
    ) -> Result<Vec<Volume>, CinderError> {
        let path = format!("/volumes/detail?name={}", url_escape(name));
        let (_, body) = self.call(scope, Method::GET, &path, None, None).await?;
        decode(&body["volumes"])
    }

    pub async fn create_volume(&self, scope: &Scope, size_gib: i64) -> Result<Volume, CinderError> {
        let (_, body) = self
            .call(
                scope,
                Method::POST,
                "/volumes",
                None,
                Some(json!({"volume": {"size": size_gib}})),
            )
            .await?;
        decode(&body["volume"])
    }

    /// Deletes a volume; one already gone is fine.
    pub async fn delete_volume(&self, scope: &Scope, id: &str) -> Result<(), CinderError> {
        self.call(scope, Method::DELETE, &format!("/volumes/{id}"), None, None)
            .await
            .map(drop)
    }

    async fn attachments_of(
        &self,
        scope: &Scope,
        volume_id: &str,
    ) -> Result<Vec<Attachment>, CinderError> {
        // The service user is an admin of its own project: another
        // project's attachments show only with all_tenants.
        let path = format!("/attachments?volume_id={volume_id}&all_tenants=1");
        let (_, body) = self
            .call(scope, Method::GET, &path, Some(ATTACHMENTS_VERSION), None)
            .await?;
        decode(&body["attachments"])
    }

    async fn attachment(&self, scope: &Scope, id: &str) -> Result<Attachment, CinderError> {
        let (_, body) = self
            .call(
                scope,
                Method::GET,
                &format!("/attachments/{id}"),
                Some(ATTACHMENTS_VERSION),
                None,
            )
            .await?;
        decode(&body["attachment"])
    }

    async fn attach(
        &self,
        scope: &Scope,
        volume_id: &str,
        connector: Value,
    ) -> Result<Attachment, CinderError> {
        let body =
            json!({"attachment": {"volume_uuid": volume_id, "connector": connector, "mode": "rw"}});
        let (_, body) = self
            .call(
                scope,
                Method::POST,
                "/attachments",
                Some(ATTACHMENTS_VERSION),
                Some(body),
            )
            .await?;
        decode(&body["attachment"])
    }

    async fn complete(&self, scope: &Scope, id: &str) -> Result<(), CinderError> {
        self.call(
            scope,
            Method::POST,
            &format!("/attachments/{id}/action"),
            Some(COMPLETE_VERSION),
            Some(json!({"os-complete": null})),
        )
        .await
        .map(drop)
    }

    async fn detach(&self, scope: &Scope, id: &str) -> Result<(), CinderError> {
        self.call(
            scope,
            Method::DELETE,
            &format!("/attachments/{id}"),
            Some(ATTACHMENTS_VERSION),
            None,
        )
        .await
        .map(drop)
    }
}

fn decode<T: serde::de::DeserializeOwned>(value: &Value) -> Result<T, CinderError> {
    serde_json::from_value(value.clone()).map_err(|e| CinderError::Refused {
        status: 200,
        message: format!("unexpected answer ({e}): {value}"),
    })
}

fn url_escape(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// The volume service user's credentials, from which the agent gets its
/// own tokens (it attaches any project's volumes, as Nova's compute does).
#[derive(Debug, Clone)]
pub struct ServiceUser {
    /// Keystone's v3 URL (`http://host:port/v3`).
    pub auth_url: String,
    pub username: String,
    pub password: String,
    pub project_name: String,
    pub domain: String,
}

/// A cached token of the service user, renewed before it expires.
struct ServiceToken {
    user: ServiceUser,
    http: reqwest::Client,
    cached: Mutex<Option<(Scope, Instant)>>,
}

/// How long a token is reused (Keystone's default lifetime is an hour).
const TOKEN_REUSE: Duration = Duration::from_secs(30 * 60);

impl ServiceToken {
    async fn scope(&self) -> Result<Scope, CinderError> {
        let mut cached = self.cached.lock().await;
        if let Some((scope, at)) = cached.as_ref()
            && at.elapsed() < TOKEN_REUSE
        {
            return Ok(scope.clone());
        }
        let u = &self.user;
        let body = json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": u.username, "domain": {"name": u.domain}, "password": u.password}}},
            "scope": {"project": {"name": u.project_name, "domain": {"name": u.domain}}}}});
        let response = self
            .http
            .post(format!(
                "{}/auth/tokens?nocatalog",
                u.auth_url.trim_end_matches('/')
            ))
            .json(&body)
            .send()
            .await?;
        if !response.status().is_success() {
            return Err(CinderError::Auth(format!(
                "{} for user {}",
                response.status(),
                u.username
            )));
        }
        let token = response
            .headers()
            .get("X-Subject-Token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or_else(|| CinderError::Auth("no X-Subject-Token".into()))?;
        let value: Value = response.json().await?;
        let project_id = value["token"]["project"]["id"]
            .as_str()
            .ok_or_else(|| CinderError::Auth("the token has no project".into()))?
            .to_owned();
        let scope = Scope { token, project_id };
        *cached = Some((scope.clone(), Instant::now()));
        Ok(scope)
    }
}

/// How this host reaches Ceph for the RBD volumes Cinder hands out.
#[derive(Debug, Clone)]
pub struct CephClient {
    /// A ceph.conf naming the monitors and the client's keyring.
    pub conf: PathBuf,
    /// The cephx user (`cinder`).
    pub id: String,
}

pub struct CinderDriver {
    cinder: Cinder,
    token: ServiceToken,
    ceph: CephClient,
    root: PathBuf,
    /// This host's name, in the connector Cinder records.
    host: String,
    busy: Mutex<()>,
}

impl CinderDriver {
    pub fn new(
        url: &str,
        user: ServiceUser,
        ceph: CephClient,
        root: impl Into<PathBuf>,
        host: &str,
    ) -> Arc<Self> {
        Arc::new(Self {
            cinder: Cinder::new(url),
            token: ServiceToken {
                user,
                http: reqwest::Client::new(),
                cached: Mutex::new(None),
            },
            ceph,
            root: root.into(),
            host: host.to_owned(),
            busy: Mutex::new(()),
        })
    }

    fn fuse_dir(&self, uuid: &str) -> PathBuf {
        self.root.join(uuid).join("rbd")
    }

    fn mount_point(&self, uuid: &str) -> PathBuf {
        self.root.join(uuid).join("fs")
    }

    fn connector(&self) -> Value {
        json!({"host": self.host, "platform": "x86_64", "os_type": "linux",
               "multipath": false, "ip": "127.0.0.1", "initiator": "",
               "do_local_attach": false})
    }

    /// Waits until Cinder has made the volume (a `size` mount's volume is
    /// created by the API a moment before).
    async fn usable(&self, scope: &Scope, uuid: &str) -> Result<Volume, VolumeError> {
        let deadline = Instant::now() + AVAILABLE_WITHIN;
        loop {
            let volume =
                self.cinder.volume(scope, uuid).await?.ok_or_else(|| {
                    VolumeError::Broken(format!("Volume {uuid} could not be found."))
                })?;
            match volume.status.as_str() {
                "available" | "in-use" | "attaching" | "reserved" => return Ok(volume),
                "error" => {
                    return Err(VolumeError::Broken(format!(
                        "Volume {uuid} is in error in Cinder"
                    )));
                }
                _ if Instant::now() > deadline => {
                    return Err(VolumeError::Broken(format!(
                        "Volumes did not reach available status after {} seconds",
                        AVAILABLE_WITHIN.as_secs()
                    )));
                }
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    /// The image file rbd-fuse shows for `connection_info`, starting an
    /// rbd-fuse for it unless one runs.
    async fn fuse(&self, uuid: &str, info: &Value) -> Result<PathBuf, VolumeError> {
        let name = info["name"]
            .as_str()
            .ok_or_else(|| VolumeError::Broken(format!("no RBD image in {info}")))?;
        let (pool, image) = name
            .split_once('/')
            .ok_or_else(|| VolumeError::Broken(format!("unexpected RBD name {name}")))?;
        let dir = self.fuse_dir(uuid);
        let file = dir.join(image);
        if !is_mount_point(&dir).await? {
            tokio::fs::create_dir_all(&dir)
                .await
                .map_err(VolumeError::io(format!("creating {}", dir.display())))?;
            // Its own process group: it outlives the agent, as the mount
            // it serves does.
            let mut command = tokio::process::Command::new("rbd-fuse");
            command
                .arg("-c")
                .arg(&self.ceph.conf)
                .args(["--id", &self.ceph.id, "-p", pool, "-r", image])
                .arg(&dir)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .process_group(0);
            let status = command
                .status()
                .await
                .map_err(VolumeError::io("starting rbd-fuse"))?;
            if !status.success() {
                return Err(VolumeError::Command {
                    command: format!("rbd-fuse -p {pool} -r {image}"),
                    output: status.to_string(),
                });
            }
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while !tokio::fs::try_exists(&file).await.unwrap_or(false) {
            if Instant::now() > deadline {
                return Err(VolumeError::Broken(format!(
                    "rbd-fuse shows no {} for volume {uuid}",
                    file.display()
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(file)
    }

    async fn teardown(&self, uuid: &str) -> Result<(), VolumeError> {
        let point = self.mount_point(uuid);
        if is_mount_point(&point).await? {
            run("umount", &[&point.to_string_lossy()]).await?;
        }
        let dir = self.fuse_dir(uuid);
        if let Ok(mut entries) = tokio::fs::read_dir(&dir).await {
            while let Ok(Some(entry)) = entries.next_entry().await {
                let listing = run("losetup", &["-j", &entry.path().to_string_lossy()]).await?;
                for dev in loop_devices(&listing) {
                    run("losetup", &["-d", &dev]).await?;
                    // Detaching is asynchronous: the image stays busy until
                    // the device lets go of it.
                    let sys = format!(
                        "/sys/block/{}/loop/backing_file",
                        dev.trim_start_matches("/dev/")
                    );
                    let deadline = Instant::now() + Duration::from_secs(10);
                    while Path::new(&sys).exists() && Instant::now() < deadline {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        }
        if is_mount_point(&dir).await? {
            // rbd-fuse exits once its mount goes.
            run("umount", &[&dir.to_string_lossy()]).await?;
        }
        match tokio::fs::remove_dir_all(self.root.join(uuid)).await {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                tracing::warn!(%uuid, error = %err, "volume directory left in place");
            }
            _ => {}
        }
        Ok(())
    }

    async fn detach_all(&self, uuid: &str) -> Result<(), VolumeError> {
        self.teardown(uuid).await?;
        let scope = self.token.scope().await?;
        for attachment in self.cinder.attachments_of(&scope, uuid).await? {
            self.cinder.detach(&scope, &attachment.id).await?;
        }
        Ok(())
    }
}

/// Whether a device holds nothing yet: no filesystem signature and zeros
/// at its start.
async fn is_blank(dev: &str) -> Result<bool, VolumeError> {
    let output = tokio::process::Command::new("blkid")
        .args(["-p", "-o", "value", "-s", "TYPE", dev])
        .output()
        .await
        .map_err(VolumeError::io("running blkid"))?;
    if !String::from_utf8_lossy(&output.stdout).trim().is_empty() {
        return Ok(false);
    }
    let mut file = tokio::fs::File::open(dev)
        .await
        .map_err(VolumeError::io(format!("opening {dev}")))?;
    let mut buffer = vec![0u8; BLANK_PROBE_BYTES];
    let mut read = 0;
    while read < buffer.len() {
        let n = file
            .read(&mut buffer[read..])
            .await
            .map_err(VolumeError::io(format!("reading {dev}")))?;
        if n == 0 {
            break;
        }
        read += n;
    }
    Ok(buffer[..read].iter().all(|b| *b == 0))
}

#[async_trait]
impl VolumeDriver for CinderDriver {
    async fn attach(&self, volume: &VolumeRef) -> Result<PathBuf, VolumeError> {
        let _busy = self.busy.lock().await;
        let uuid = volume.uuid.as_str();
        let scope = self.token.scope().await?;
        let found = self.usable(&scope, uuid).await?;
        // One attachment per volume: a volume serves one container, so one
        // that exists is this host's, made before an agent restart.
        let attachment = match self.cinder.attachments_of(&scope, uuid).await?.first() {
            Some(existing) => self.cinder.attachment(&scope, &existing.id).await?,
            None => self.cinder.attach(&scope, uuid, self.connector()).await?,
        };
        let point = self.mount_point(uuid);
        if !is_mount_point(&point).await? {
            let file = self.fuse(uuid, &attachment.connection_info).await?;
            let file_text = file.to_string_lossy().into_owned();
            let dev = match loop_devices(&run("losetup", &["-j", &file_text]).await?)
                .into_iter()
                .next()
            {
                Some(dev) => dev,
                None => {
                    let size = (found.size.max(1) as u64) << 30;
                    run(
                        "losetup",
                        &[
                            "--find",
                            "--show",
                            "--sizelimit",
                            &size.to_string(),
                            &file_text,
                        ],
                    )
                    .await?
                    .trim()
                    .to_owned()
                }
            };
            if is_blank(&dev).await? {
                tracing::info!(%uuid, "formatting a blank Cinder volume");
                run("mkfs.ext4", &["-q", "-m", "0", &dev]).await?;
            }
            tokio::fs::create_dir_all(&point)
                .await
                .map_err(VolumeError::io(format!("creating {}", point.display())))?;
            if let Err(err) = run(
                "mount",
                &["-o", "nosuid,nodev", &dev, &point.to_string_lossy()],
            )
            .await
            {
                // Never formatted over: a volume with data that will not
                // mount (another filesystem, damage) is the user's to mend.
                return Err(VolumeError::Broken(format!(
                    "volume {uuid} holds data that cannot be mounted as a filesystem here: {err}"
                )));
            }
        }
        let data = data_dir(&point).await?;
        if attachment.status != "attached" {
            self.cinder.complete(&scope, &attachment.id).await?;
        }
        Ok(data)
    }

    async fn detach(&self, uuid: &str) -> Result<(), VolumeError> {
        let _busy = self.busy.lock().await;
        self.detach_all(uuid).await
    }

    async fn destroy(&self, uuid: &str) -> Result<(), VolumeError> {
        let _busy = self.busy.lock().await;
        self.detach_all(uuid).await?;
        let scope = self.token.scope().await?;
        self.cinder.delete_volume(&scope, uuid).await?;
        tracing::info!(%uuid, "Cinder volume deleted");
        Ok(())
    }

    async fn forget(&self, uuid: &str) -> Result<(), VolumeError> {
        // The volume is the project's, in Cinder: let go of it only.
        self.detach(uuid).await
    }

    async fn volumes_here(&self) -> Result<Vec<String>, VolumeError> {
        entry_names(&self.root).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_escaped_for_the_query() {
        assert_eq!(url_escape("db data/1"), "db%20data%2F1");
        assert_eq!(url_escape("plain-name_1.x"), "plain-name_1.x");
    }
}
