//! Running iproute2 and nftables, in the host's network namespace (which is
//! another named namespace when several simulated hosts share a machine).

use std::process::Stdio;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::{NETNS_DIR, NetworkError};

/// How to run a command in the host's network namespace.
#[derive(Debug, Clone)]
pub(crate) struct HostShell {
    /// A named namespace holding this host's bridges; None: the agent's own.
    pub netns: Option<String>,
}

impl HostShell {
    /// `ip` in the host's namespace, optionally reading a batch on stdin.
    pub async fn ip(&self, args: &[&str], batch: Option<&str>) -> Result<String, NetworkError> {
        let mut full: Vec<&str> = Vec::new();
        if let Some(ns) = &self.netns {
            full.extend(["-n", ns.as_str()]);
        }
        full.extend_from_slice(args);
        run("ip", &full, batch).await
    }

    /// `ip` inside another named namespace.
    pub async fn ip_in(
        &self,
        netns: &str,
        args: &[&str],
        batch: Option<&str>,
    ) -> Result<String, NetworkError> {
        let mut full = vec!["-n", netns];
        full.extend_from_slice(args);
        run("ip", &full, batch).await
    }

    /// Makes the named namespace `name`. Never under `ip -n`: that runs in a
    /// mount namespace of its own, where the new namespace's bind mount
    /// would stay invisible to everyone else.
    pub async fn netns_add(&self, name: &str) -> Result<(), NetworkError> {
        run("ip", &["netns", "add", name], None).await.map(drop)
    }

    /// Removes the named namespace `name` (see [`Self::netns_add`]).
    pub async fn netns_del(&self, name: &str) -> Result<(), NetworkError> {
        run("ip", &["netns", "del", name], None).await.map(drop)
    }

    /// Any other program in the host's namespace (`nft`, `sysctl`).
    pub async fn run(
        &self,
        program: &str,
        args: &[&str],
        stdin: Option<&str>,
    ) -> Result<String, NetworkError> {
        match &self.netns {
            None => run(program, args, stdin).await,
            Some(ns) => {
                let target = format!("--net={NETNS_DIR}/{ns}");
                let mut full = vec![target.as_str(), program];
                full.extend_from_slice(args);
                run("nsenter", &full, stdin).await
            }
        }
    }

    /// `nft -f -` with `script`.
    pub async fn nft(&self, script: &str) -> Result<(), NetworkError> {
        self.run("nft", &["-f", "-"], Some(script)).await.map(drop)
    }
}

/// Runs `program args` with `stdin`, returning stdout; a non-zero exit is
/// an error carrying stderr.
async fn run(program: &str, args: &[&str], stdin: Option<&str>) -> Result<String, NetworkError> {
    let describe = || format!("{program} {}", args.join(" "));
    let mut child = Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| NetworkError::Command {
            command: describe(),
            detail: e.to_string(),
        })?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes())
            .await
            .map_err(|e| NetworkError::Command {
                command: describe(),
                detail: format!("writing its input: {e}"),
            })?;
    }
    let output = child
        .wait_with_output()
        .await
        .map_err(|e| NetworkError::Command {
            command: describe(),
            detail: e.to_string(),
        })?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(NetworkError::Command {
            command: describe(),
            detail: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }
}

/// Whether a failed command said the object already exists.
pub(crate) fn already_exists(err: &NetworkError) -> bool {
    matches!(err, NetworkError::Command { detail, .. } if detail.contains("File exists"))
}

/// A removal's result, where "it is not there" is success.
pub(crate) fn unless_missing<T>(result: Result<T, NetworkError>) -> Result<(), NetworkError> {
    match result {
        Ok(_) => Ok(()),
        Err(err) if missing(&err) => Ok(()),
        Err(err) => Err(err),
    }
}

/// Whether a failed command said the object does not exist.
pub(crate) fn missing(err: &NetworkError) -> bool {
    matches!(err, NetworkError::Command { detail, .. }
        if detail.contains("Cannot find device")
            || detail.contains("does not exist")
            || detail.contains("No such file or directory")
            || detail.contains("Could not process rule: No such file"))
}
