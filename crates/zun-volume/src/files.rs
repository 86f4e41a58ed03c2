//! The files of `bind` mounts (upstream's file injection): each is written
//! under `<root>/<container uuid>/` and bound read-only at its
//! destination. Read-only, unlike upstream: a writable bind of a host file
//! would let a container grow it on the host's disk without bound.

use std::path::PathBuf;

use base64::Engine as _;
use zun_types::volume::Mount;

use crate::{HostMount, VolumeError};

pub struct InjectedFiles {
    root: PathBuf,
}

impl InjectedFiles {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// Writes the files of `mounts` for container `uuid` (again, if they
    /// are there) and answers their binds.
    pub async fn write(&self, uuid: &str, mounts: &[Mount]) -> Result<Vec<HostMount>, VolumeError> {
        let dir = self.root.join(uuid);
        let mut binds = Vec::new();
        for (index, mount) in mounts.iter().enumerate() {
            let Mount::Bind {
                destination,
                contents,
            } = mount
            else {
                continue;
            };
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(contents.as_bytes())
                .map_err(|_| {
                    VolumeError::Broken(format!("the file for {destination} is not base64"))
                })?;
            tokio::fs::create_dir_all(&dir)
                .await
                .map_err(VolumeError::io(format!("creating {}", dir.display())))?;
            let path = dir.join(index.to_string());
            let partial = dir.join(format!("{index}.new"));
            tokio::fs::write(&partial, &bytes)
                .await
                .map_err(VolumeError::io(format!("writing {}", partial.display())))?;
            tokio::fs::rename(&partial, &path)
                .await
                .map_err(VolumeError::io(format!("renaming {}", partial.display())))?;
            binds.push(HostMount {
                source: path,
                target: destination.clone(),
                read_only: true,
            });
        }
        Ok(binds)
    }

    /// Removes container `uuid`'s files.
    pub async fn remove(&self, uuid: &str) -> Result<(), VolumeError> {
        let dir = self.root.join(uuid);
        match tokio::fs::remove_dir_all(&dir).await {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                Err(VolumeError::io(format!("removing {}", dir.display()))(err))
            }
            _ => Ok(()),
        }
    }

    /// The containers with files on this host (for garbage collection:
    /// the caller removes those the store no longer has).
    pub async fn containers_here(&self) -> Result<Vec<String>, VolumeError> {
        crate::mounts::entry_names(&self.root).await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn files_are_written_bound_read_only_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let files = InjectedFiles::new(dir.path());
        let mounts = vec![
            Mount::Bind {
                destination: "/etc/app.conf".into(),
                contents: "a2V5PXZhbHVlCg==".into(),
            },
            Mount::Bind {
                destination: "/etc/empty".into(),
                contents: String::new(),
            },
        ];
        let binds = files.write("c1", &mounts).await.unwrap();
        assert_eq!(binds.len(), 2);
        assert_eq!(binds[0].target, "/etc/app.conf");
        assert!(binds.iter().all(|b| b.read_only));
        assert_eq!(std::fs::read(&binds[0].source).unwrap(), b"key=value\n");
        assert_eq!(std::fs::read(&binds[1].source).unwrap(), b"");
        // Written again (an agent redoing a create): the same.
        assert_eq!(files.write("c1", &mounts).await.unwrap(), binds);
        files.write("c2", &mounts).await.unwrap();
        assert_eq!(files.containers_here().await.unwrap(), ["c1", "c2"]);
        files.remove("c1").await.unwrap();
        assert!(!dir.path().join("c1").exists());
        files.remove("c2").await.unwrap();
        files.remove("c2").await.unwrap();
        assert!(!dir.path().join("c2").exists());
    }
}
