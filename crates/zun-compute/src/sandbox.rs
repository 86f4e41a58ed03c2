//! What the members of a capsule share besides the network namespace
//! (which the network driver owns): an IPC namespace and a `/dev/shm`,
//! kept by the agent for the capsule's life so that a member's restart, or
//! the engine's, finds them. Nothing runs in a capsule to hold them (no
//! pause container): the IPC namespace is bind-mounted on a file, as
//! `ip netns` keeps network namespaces, and `/dev/shm` is a small tmpfs.

use std::path::{Path, PathBuf};

use async_trait::async_trait;

/// Upstream Docker's default `/dev/shm` size.
const SHM_SIZE: &str = "64m";

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("{program} failed: {output}")]
    Command { program: String, output: String },
}

/// The paths a member joins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedNamespaces {
    /// A file the capsule's IPC namespace is mounted on.
    pub ipc: PathBuf,
    /// The directory every member gets as `/dev/shm`.
    pub shm: PathBuf,
}

/// One host's capsule namespaces. Every method is idempotent.
#[async_trait]
pub trait CapsuleNamespaces: Send + Sync + 'static {
    /// Makes capsule `uuid`'s namespaces unless they exist.
    async fn ensure(&self, uuid: &str) -> Result<SharedNamespaces, SandboxError>;
    /// Whether they exist (a reboot empties /run).
    async fn is_ready(&self, uuid: &str) -> bool;
    /// Unmounts and removes them.
    async fn remove(&self, uuid: &str) -> Result<(), SandboxError>;
    /// The capsules that have some here, for garbage collection.
    async fn present(&self) -> Vec<String>;
}

/// The real thing: `<dir>/<uuid>/ipc` and `<dir>/<uuid>/shm`.
pub struct HostNamespaces {
    dir: PathBuf,
}

impl HostNamespaces {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    fn paths(&self, uuid: &str) -> SharedNamespaces {
        let root = self.dir.join(uuid);
        SharedNamespaces {
            ipc: root.join("ipc"),
            shm: root.join("shm"),
        }
    }
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> SandboxError {
    let context = context.into();
    move |source| SandboxError::Io { context, source }
}

async fn run(program: &str, args: &[&str]) -> Result<(), SandboxError> {
    let output = tokio::process::Command::new(program)
        .args(args)
        .output()
        .await
        .map_err(io(format!("running {program}")))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(SandboxError::Command {
            program: program.to_owned(),
            output: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }
}

/// Whether `path` is a mount point, from the kernel's table.
async fn is_mounted(path: &Path) -> Result<bool, SandboxError> {
    let table = tokio::fs::read_to_string("/proc/self/mountinfo")
        .await
        .map_err(io("reading /proc/self/mountinfo"))?;
    let wanted = path.to_string_lossy();
    Ok(table
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .any(|point| point == wanted))
}

#[async_trait]
impl CapsuleNamespaces for HostNamespaces {
    async fn ensure(&self, uuid: &str) -> Result<SharedNamespaces, SandboxError> {
        let paths = self.paths(uuid);
        if !is_mounted(&paths.ipc).await? {
            let root = self.dir.join(uuid);
            tokio::fs::create_dir_all(&root)
                .await
                .map_err(io(format!("making {}", root.display())))?;
            tokio::fs::write(&paths.ipc, b"")
                .await
                .map_err(io(format!("making {}", paths.ipc.display())))?;
            let ipc = format!("--ipc={}", paths.ipc.display());
            run("unshare", &[&ipc, "true"]).await?;
        }
        if !is_mounted(&paths.shm).await? {
            tokio::fs::create_dir_all(&paths.shm)
                .await
                .map_err(io(format!("making {}", paths.shm.display())))?;
            let options = format!("size={SHM_SIZE},mode=1777,nosuid,nodev,noexec");
            let shm = paths.shm.to_string_lossy();
            run("mount", &["-t", "tmpfs", "-o", &options, "shm", &shm]).await?;
        }
        Ok(paths)
    }

    async fn is_ready(&self, uuid: &str) -> bool {
        let paths = self.paths(uuid);
        is_mounted(&paths.ipc).await.unwrap_or(false)
            && is_mounted(&paths.shm).await.unwrap_or(false)
    }

    async fn remove(&self, uuid: &str) -> Result<(), SandboxError> {
        let paths = self.paths(uuid);
        for point in [&paths.ipc, &paths.shm] {
            if is_mounted(point).await? {
                run("umount", &[&point.to_string_lossy()]).await?;
            }
        }
        match tokio::fs::remove_dir_all(self.dir.join(uuid)).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(format!("removing {}", self.dir.join(uuid).display()))(e)),
        }
    }

    async fn present(&self) -> Vec<String> {
        let Ok(mut entries) = tokio::fs::read_dir(&self.dir).await else {
            return Vec::new();
        };
        let mut uuids = Vec::new();
        while let Ok(Some(entry)) = entries.next_entry().await {
            uuids.push(entry.file_name().to_string_lossy().into_owned());
        }
        uuids
    }
}
