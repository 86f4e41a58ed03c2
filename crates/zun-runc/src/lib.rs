//! The OCI runtime wrapper between the container engine and `runc`.
//!
//! The network driver owns each container's network namespace (DESIGN
//! decision 9): it makes a named namespace, plumbs it, and the runtime must
//! start the container inside it. containerd and the VM runtime take a
//! namespace path directly; the Docker engine cannot (its API only knows its
//! own network modes). So the Docker driver registers this wrapper with the
//! engine (`dockerd --add-runtime zun-runc=/path/to/zun-runc`) and, for each
//! container, links `ENGINE_NETNS_DIR/<engine id>` to the namespace. When
//! the engine asks the wrapper to `create` (or `run`) a container that has
//! such a link, the wrapper writes the namespace's path into the bundle's
//! `config.json`; every other call passes through unchanged. Because the
//! namespace outlives the process, a restart of the container or of the
//! engine keeps its addresses, and nothing runs before its network is ready.
//! The members of a capsule share one more namespace the same way: an IPC
//! namespace the agent keeps for the capsule, linked in `ENGINE_IPCNS_DIR`.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

/// Where the Docker driver links engine container ids to namespaces.
pub const ENGINE_NETNS_DIR: &str = "/run/zun/engine-netns";

/// Where it links the members of a capsule to the capsule's IPC namespace.
pub const ENGINE_IPCNS_DIR: &str = "/run/zun/engine-ipcns";

/// Each link directory with the OCI namespace type its links name.
pub const ENGINE_LINKS: [(&str, &str); 2] =
    [(ENGINE_NETNS_DIR, "network"), (ENGINE_IPCNS_DIR, "ipc")];

/// The link for the engine container `engine_id` under `dir`.
pub fn link_path(dir: &Path, engine_id: &str) -> PathBuf {
    dir.join(engine_id)
}

#[derive(Debug, thiserror::Error)]
pub enum WrapError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not an OCI runtime configuration: {reason}")]
    BadConfig { path: PathBuf, reason: String },
    #[error("the {kind} namespace {path} of this container is gone; it must be set up again")]
    NamespaceGone { kind: String, path: PathBuf },
}

/// A `create` or `run` call: the bundle directory (None: the working
/// directory, as runc defaults) and the container id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateCall {
    pub bundle: Option<String>,
    pub id: String,
}

/// runc's global options that take a value.
const GLOBAL_VALUED: &[&str] = &["--root", "--log", "--log-format", "--criu", "--rootless"];
/// `create`/`run` options that take a value.
const CREATE_VALUED: &[&str] = &[
    "--bundle",
    "-b",
    "--console-socket",
    "--pid-file",
    "--preserve-fds",
];

/// Finds a `create` or `run` call in runc's arguments (without argv[0]).
pub fn parse_create(args: &[String]) -> Option<CreateCall> {
    let mut rest = args.iter();
    // Global options, then the subcommand.
    loop {
        let arg = rest.next()?;
        if GLOBAL_VALUED.contains(&arg.as_str()) {
            rest.next()?;
        } else if arg.starts_with('-') {
            continue;
        } else if arg == "create" || arg == "run" {
            break;
        } else {
            return None;
        }
    }
    let mut bundle = None;
    let mut id = None;
    while let Some(arg) = rest.next() {
        if let Some(value) = arg.strip_prefix("--bundle=") {
            bundle = Some(value.to_owned());
        } else if arg == "--bundle" || arg == "-b" {
            bundle = rest.next().cloned();
        } else if CREATE_VALUED.contains(&arg.as_str()) {
            rest.next();
        } else if !arg.starts_with('-') {
            id = Some(arg.clone());
        }
    }
    Some(CreateCall { bundle, id: id? })
}

/// Sets the path of the configuration's namespace of type `kind`
/// (`network`, `ipc`) to `path`, adding the namespace when the
/// configuration has none.
pub fn join_namespace(config: &mut Value, kind: &str, path: &str) -> Result<(), String> {
    let linux = config
        .as_object_mut()
        .ok_or("the configuration is not an object")?
        .entry("linux")
        .or_insert_with(|| json!({}));
    let namespaces = linux
        .as_object_mut()
        .ok_or("`linux` is not an object")?
        .entry("namespaces")
        .or_insert_with(|| json!([]));
    let namespaces = namespaces
        .as_array_mut()
        .ok_or("`linux.namespaces` is not a list")?;
    match namespaces
        .iter_mut()
        .find(|ns| ns.get("type").and_then(Value::as_str) == Some(kind))
    {
        Some(ns) => {
            ns.as_object_mut()
                .ok_or("a namespace is not an object")?
                .insert("path".into(), json!(path));
        }
        None => namespaces.push(json!({"type": kind, "path": path})),
    }
    Ok(())
}

/// Rewrites the bundle of `call` when any of `links` (a directory of links
/// and the namespace type they name) holds a namespace for it; returns the
/// namespaces it was put in.
pub fn prepare(
    call: &CreateCall,
    links: &[(PathBuf, &str)],
    cwd: &Path,
) -> Result<Vec<PathBuf>, WrapError> {
    let mut joined = Vec::new();
    for (dir, kind) in links {
        let link = link_path(dir, &call.id);
        let target = match std::fs::read_link(&link) {
            Ok(target) => target,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => return Err(WrapError::Read { path: link, source }),
        };
        if !target.exists() {
            return Err(WrapError::NamespaceGone {
                kind: (*kind).to_owned(),
                path: target,
            });
        }
        joined.push((*kind, target));
    }
    if joined.is_empty() {
        return Ok(Vec::new());
    }
    let bundle = call
        .bundle
        .as_ref()
        .map_or_else(|| cwd.to_path_buf(), PathBuf::from);
    let path = bundle.join("config.json");
    let text = std::fs::read(&path).map_err(|source| WrapError::Read {
        path: path.clone(),
        source,
    })?;
    let mut config: Value = serde_json::from_slice(&text).map_err(|e| WrapError::BadConfig {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    for (kind, target) in &joined {
        join_namespace(&mut config, kind, &target.to_string_lossy()).map_err(|reason| {
            WrapError::BadConfig {
                path: path.clone(),
                reason,
            }
        })?;
    }
    let written = serde_json::to_vec(&config).map_err(|e| WrapError::BadConfig {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    // Written aside and renamed, so runc never reads half a file.
    let temporary = bundle.join(".config.json.zun");
    std::fs::write(&temporary, written).map_err(|source| WrapError::Write {
        path: temporary.clone(),
        source,
    })?;
    std::fs::rename(&temporary, &path).map_err(|source| WrapError::Write {
        path: path.clone(),
        source,
    })?;
    Ok(joined.into_iter().map(|(_, target)| target).collect())
}

/// The runtime this wrapper hands over to: its own name without `zun-`
/// (`zun-runc` runs `runc`, `zun-crun` runs `crun`).
pub fn wrapped_runtime(argv0: &str) -> String {
    let name = Path::new(argv0)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    match name.strip_prefix("zun-") {
        Some(inner) if !inner.is_empty() => inner.to_owned(),
        _ => "runc".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn finds_the_create_call_as_the_shim_makes_it() {
        let call = parse_create(&args(
            "--root /run/docker/runtime-zun-runc/moby --log /b/log.json --log-format json \
             create --bundle /b --pid-file /b/init.pid --console-socket /tmp/s abc123",
        ));
        assert_eq!(
            call,
            Some(CreateCall {
                bundle: Some("/b".into()),
                id: "abc123".into()
            })
        );
        assert_eq!(
            parse_create(&args("--systemd-cgroup run -b /x --no-pivot id9")),
            Some(CreateCall {
                bundle: Some("/x".into()),
                id: "id9".into()
            })
        );
        assert_eq!(
            parse_create(&args("create --bundle=/y id")).and_then(|c| c.bundle),
            Some("/y".into())
        );
    }

    #[test]
    fn other_calls_pass_through() {
        assert_eq!(parse_create(&args("--root /r start abc")), None);
        assert_eq!(parse_create(&args("--root /r delete --force abc")), None);
        assert_eq!(parse_create(&args("--version")), None);
        assert_eq!(parse_create(&args("create --bundle /b")), None, "no id");
    }

    #[test]
    fn sets_the_network_namespace_path() {
        let mut config = json!({"linux": {"namespaces": [{"type": "pid"}, {"type": "network"}]}});
        join_namespace(&mut config, "network", "/var/run/netns/zun-x").expect("joins");
        assert_eq!(
            config["linux"]["namespaces"],
            json!([{"type": "pid"}, {"type": "network", "path": "/var/run/netns/zun-x"}])
        );
        let mut bare = json!({});
        join_namespace(&mut bare, "network", "/n").expect("joins");
        assert_eq!(
            bare["linux"]["namespaces"],
            json!([{"type": "network", "path": "/n"}])
        );
        assert!(join_namespace(&mut json!([]), "network", "/n").is_err());
    }

    #[test]
    fn rewrites_a_bundle_only_when_linked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let links = dir.path().join("links");
        let bundle = dir.path().join("bundle");
        std::fs::create_dir_all(&links).expect("mkdir");
        std::fs::create_dir_all(&bundle).expect("mkdir");
        let original = json!({"linux": {"namespaces": [{"type": "network"}]}});
        std::fs::write(bundle.join("config.json"), original.to_string()).expect("write");
        let call = CreateCall {
            bundle: Some(bundle.to_string_lossy().into_owned()),
            id: "e1".into(),
        };
        let ipc_links = dir.path().join("ipc-links");
        std::fs::create_dir_all(&ipc_links).expect("mkdir");
        let links = [(links, "network"), (ipc_links.clone(), "ipc")];
        assert!(
            prepare(&call, &links, dir.path())
                .expect("passes")
                .is_empty()
        );

        let netns = dir.path().join("netns-file");
        std::fs::write(&netns, "").expect("write");
        std::os::unix::fs::symlink(&netns, links[0].0.join("e1")).expect("link");
        assert_eq!(
            prepare(&call, &links, dir.path()).expect("rewrites"),
            vec![netns.clone()]
        );
        let written: Value =
            serde_json::from_slice(&std::fs::read(bundle.join("config.json")).expect("read"))
                .expect("json");
        assert_eq!(
            written["linux"]["namespaces"][0]["path"],
            json!(netns.to_string_lossy())
        );

        let ipcns = dir.path().join("ipcns-file");
        std::fs::write(&ipcns, "").expect("write");
        std::os::unix::fs::symlink(&ipcns, ipc_links.join("e1")).expect("link");
        assert_eq!(
            prepare(&call, &links, dir.path()).expect("rewrites"),
            vec![netns.clone(), ipcns.clone()]
        );
        let written: Value =
            serde_json::from_slice(&std::fs::read(bundle.join("config.json")).expect("read"))
                .expect("json");
        assert_eq!(
            written["linux"]["namespaces"],
            json!([
                {"type": "network", "path": netns.to_string_lossy()},
                {"type": "ipc", "path": ipcns.to_string_lossy()},
            ])
        );

        std::fs::remove_file(&netns).expect("rm");
        assert!(matches!(
            prepare(&call, &links, dir.path()),
            Err(WrapError::NamespaceGone { .. })
        ));
    }

    #[test]
    fn hands_over_to_the_runtime_its_name_says() {
        assert_eq!(wrapped_runtime("/usr/local/bin/zun-runc"), "runc");
        assert_eq!(wrapped_runtime("zun-crun"), "crun");
        assert_eq!(wrapped_runtime("something"), "runc");
    }
}
