//! The local volume driver: each volume is a sparse file holding an ext4
//! filesystem of the volume's size, mounted through a loop device under
//! the driver's directory. The filesystem bounds what a container can
//! write (a quota would need the host's filesystem mounted with project
//! quotas, which an operator's root filesystem rarely is; a loop device
//! works on any), and the sparse file takes host disk only as it is
//! written.
//!
//! Layout under the root: `<uuid>.img` (the filesystem), `<uuid>/` (where
//! it is mounted), `<uuid>/data` (what containers see, so ext4's
//! `lost+found` stays out of their way). A filesystem is made only in
//! `<uuid>.img.new`, which is renamed into place once made: an `.img`
//! exists only formatted, and nothing here ever formats an `.img`.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use tokio::sync::Mutex;
use zun_types::volume::VolumeRef;

use crate::mounts::{data_dir, entry_names, is_mount_point, loop_devices, run};
use crate::{VolumeDriver, VolumeError};

const GIB: u64 = 1024 * 1024 * 1024;

pub struct LocalDriver {
    root: PathBuf,
    /// Attaches, detaches and removals one at a time: each is a few
    /// milliseconds of mkfs and mount, and a garbage collection must not
    /// see a volume half made.
    busy: Mutex<()>,
}

impl LocalDriver {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            busy: Mutex::new(()),
        }
    }

    fn image(&self, uuid: &str) -> PathBuf {
        self.root.join(format!("{uuid}.img"))
    }

    fn mount_point(&self, uuid: &str) -> PathBuf {
        self.root.join(uuid)
    }

    /// Makes a new, empty filesystem of `size_gib` as `<uuid>.img`.
    async fn make(&self, uuid: &str, size_gib: i64) -> Result<(), VolumeError> {
        let image = self.image(uuid);
        let fresh = self.root.join(format!("{uuid}.img.new"));
        let size = u64::try_from(size_gib)
            .ok()
            .and_then(|g| g.checked_mul(GIB))
            .filter(|s| *s > 0)
            .ok_or_else(|| VolumeError::Broken(format!("invalid volume size {size_gib} GiB")))?;
        let file = tokio::fs::File::create(&fresh)
            .await
            .map_err(VolumeError::io(format!("creating {}", fresh.display())))?;
        file.set_len(size)
            .await
            .map_err(VolumeError::io(format!("sizing {}", fresh.display())))?;
        drop(file);
        let fresh_text = fresh.to_string_lossy();
        // No blocks reserved for root: the container's root is the tenant.
        run(
            "mkfs.ext4",
            &[
                "-q",
                "-F",
                "-m",
                "0",
                "-E",
                "lazy_itable_init=1,lazy_journal_init=1",
                &fresh_text,
            ],
        )
        .await?;
        let synced = tokio::fs::File::open(&fresh)
            .await
            .map_err(VolumeError::io(format!("opening {}", fresh.display())))?;
        synced
            .sync_all()
            .await
            .map_err(VolumeError::io(format!("syncing {}", fresh.display())))?;
        tokio::fs::rename(&fresh, &image)
            .await
            .map_err(VolumeError::io(format!("renaming {}", fresh.display())))?;
        tracing::info!(%uuid, size_gib, "local volume made");
        Ok(())
    }

    /// The loop devices over the volume's image.
    async fn loops(&self, uuid: &str) -> Result<Vec<String>, VolumeError> {
        let image = self.image(uuid);
        if !tokio::fs::try_exists(&image)
            .await
            .map_err(VolumeError::io("looking for the volume's image"))?
        {
            return Ok(Vec::new());
        }
        Ok(loop_devices(
            &run("losetup", &["-j", &image.to_string_lossy()]).await?,
        ))
    }

    /// A loop device over the volume's image: the one already there (an
    /// agent that died between this and the mount), else a new one with
    /// direct I/O, so written data is not cached twice (once for the
    /// volume's filesystem, once for the image's file): it more than
    /// doubles flushed writes here.
    async fn loop_device(&self, uuid: &str) -> Result<String, VolumeError> {
        if let Some(dev) = self.loops(uuid).await?.into_iter().next() {
            return Ok(dev);
        }
        let image = self.image(uuid);
        let out = run(
            "losetup",
            &[
                "--direct-io=on",
                "--find",
                "--show",
                &image.to_string_lossy(),
            ],
        )
        .await?;
        Ok(out.trim().to_owned())
    }

    async fn unmount(&self, uuid: &str) -> Result<(), VolumeError> {
        let point = self.mount_point(uuid);
        if is_mount_point(&point).await? {
            let text = point.to_string_lossy();
            if let Err(err) = run("umount", &[&text]).await {
                // Something still holds it (an engine slow to let go):
                // detach it from the tree now; the loop device goes once
                // the last user does (detaching a busy one marks it so).
                tracing::warn!(%uuid, error = %err, "volume busy; detaching it lazily");
                run("umount", &["-l", &text]).await?;
            }
        }
        for dev in self.loops(uuid).await? {
            run("losetup", &["-d", &dev]).await?;
        }
        Ok(())
    }

    async fn remove_data(&self, uuid: &str) -> Result<(), VolumeError> {
        self.unmount(uuid).await?;
        for path in [self.image(uuid), self.root.join(format!("{uuid}.img.new"))] {
            remove_file(&path).await?;
        }
        remove_dir(&self.mount_point(uuid)).await
    }
}

async fn remove_file(path: &Path) -> Result<(), VolumeError> {
    match tokio::fs::remove_file(path).await {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            Err(VolumeError::io(format!("removing {}", path.display()))(err))
        }
        _ => Ok(()),
    }
}

/// Removes a mount point directory once nothing is mounted on it (an
/// unmounted one holds nothing but the empty `data` a container may have
/// left when the volume was not there).
async fn remove_dir(path: &Path) -> Result<(), VolumeError> {
    match tokio::fs::remove_dir_all(path).await {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            Err(VolumeError::io(format!("removing {}", path.display()))(err))
        }
        _ => Ok(()),
    }
}

#[async_trait]
impl VolumeDriver for LocalDriver {
    async fn attach(&self, volume: &VolumeRef) -> Result<PathBuf, VolumeError> {
        let _busy = self.busy.lock().await;
        let uuid = volume.uuid.as_str();
        let point = self.mount_point(uuid);
        if !is_mount_point(&point).await? {
            tokio::fs::create_dir_all(&point)
                .await
                .map_err(VolumeError::io(format!("creating {}", point.display())))?;
            if tokio::fs::try_exists(self.image(uuid))
                .await
                .map_err(VolumeError::io("looking for the volume's image"))?
            {
                tracing::debug!(%uuid, "mounting an existing local volume");
            } else {
                if !volume.new {
                    // Made for an earlier container whose create failed
                    // before its mounts (a failed pull), or removed behind
                    // the service's back: either way it holds nothing now.
                    tracing::warn!(%uuid, "an existing volume has no data on this host; making it empty");
                }
                self.make(uuid, volume.size_gib).await?;
            }
            let dev = self.loop_device(uuid).await?;
            run(
                "mount",
                &["-o", "nosuid,nodev", &dev, &point.to_string_lossy()],
            )
            .await?;
            if !is_mount_point(&point).await? {
                return Err(VolumeError::Broken(format!(
                    "volume {uuid} is not mounted at {} after mount",
                    point.display()
                )));
            }
        }
        data_dir(&point).await
    }

    async fn detach(&self, uuid: &str) -> Result<(), VolumeError> {
        let _busy = self.busy.lock().await;
        self.unmount(uuid).await?;
        // The empty mount point goes too (never a directory with data: a
        // volume's data is inside its image).
        let point = self.mount_point(uuid);
        match tokio::fs::remove_dir(&point).await {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                tracing::warn!(%uuid, error = %err, "mount point left in place");
            }
            _ => {}
        }
        Ok(())
    }

    async fn destroy(&self, uuid: &str) -> Result<(), VolumeError> {
        let _busy = self.busy.lock().await;
        self.remove_data(uuid).await?;
        tracing::info!(%uuid, "local volume removed");
        Ok(())
    }

    async fn volumes_here(&self) -> Result<Vec<String>, VolumeError> {
        let mut here: Vec<String> = entry_names(&self.root)
            .await?
            .iter()
            .map(|name| {
                name.strip_suffix(".img.new")
                    .or_else(|| name.strip_suffix(".img"))
                    .unwrap_or(name)
                    .to_owned()
            })
            .collect();
        here.sort();
        here.dedup();
        Ok(here)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    //! These mount real filesystems: they need root and loop devices, as
    //! the agent does.

    use super::*;

    fn volume(size_gib: i64) -> VolumeRef {
        VolumeRef {
            uuid: format!("test-{}", std::process::id()) + &size_gib.to_string(),
            name: None,
            size_gib,
            auto_remove: true,
            new: true,
            driver: "local".into(),
        }
    }

    #[tokio::test]
    async fn a_volume_keeps_its_data_is_bounded_and_is_never_formatted_twice() {
        let dir = tempfile::tempdir().unwrap();
        let driver = LocalDriver::new(dir.path());
        let v = volume(1);
        let data = driver.attach(&v).await.unwrap();
        assert_eq!(data, dir.path().join(&v.uuid).join("data"));
        tokio::fs::write(data.join("kept"), b"hello").await.unwrap();
        // Attached again while attached: the same place, nothing redone.
        assert_eq!(driver.attach(&v).await.unwrap(), data);
        assert_eq!(driver.loops(&v.uuid).await.unwrap().len(), 1);
        driver.detach(&v.uuid).await.unwrap();
        assert!(!is_mount_point(&dir.path().join(&v.uuid)).await.unwrap());
        // A device something still holds a moment (udev probing it after
        // the unmount) is only marked by `losetup -d`, and goes when let go.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !driver.loops(&v.uuid).await.unwrap().is_empty() {
            assert!(std::time::Instant::now() < deadline, "loop device left");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        // Attached again after a detach: mounted, not made anew.
        let again = driver.attach(&v).await.unwrap();
        assert_eq!(tokio::fs::read(again.join("kept")).await.unwrap(), b"hello");
        // The filesystem bounds what is written: 1 GiB holds no 2 GiB file.
        let big = vec![0u8; 64 * 1024 * 1024];
        let mut written = 0u64;
        let mut file = std::fs::File::create(again.join("big")).unwrap();
        let refused = loop {
            use std::io::Write;
            match file.write_all(&big) {
                Ok(()) => written += big.len() as u64,
                Err(err) => break err,
            }
            assert!(written < 2 * GIB, "wrote 2 GiB into a 1 GiB volume");
        };
        assert!(written < GIB, "{written}");
        assert_eq!(refused.raw_os_error(), Some(28), "{refused}"); // ENOSPC
        drop(file);
        assert_eq!(driver.volumes_here().await.unwrap(), [v.uuid.as_str()]);
        driver.destroy(&v.uuid).await.unwrap();
        assert!(!dir.path().join(format!("{}.img", v.uuid)).exists());
        assert!(!dir.path().join(&v.uuid).exists());
    }

    #[tokio::test]
    async fn volumes_here_include_a_make_cut_short() {
        let dir = tempfile::tempdir().unwrap();
        let driver = LocalDriver::new(dir.path());
        let kept = VolumeRef {
            uuid: "kept".into(),
            ..volume(1)
        };
        let gone = VolumeRef {
            uuid: "gone".into(),
            ..volume(1)
        };
        driver.attach(&kept).await.unwrap();
        driver.attach(&gone).await.unwrap();
        // A make cut short by a crash.
        tokio::fs::write(dir.path().join("half.img.new"), b"")
            .await
            .unwrap();
        assert_eq!(
            driver.volumes_here().await.unwrap(),
            ["gone", "half", "kept"]
        );
        for uuid in ["gone", "half", "kept"] {
            driver.destroy(uuid).await.unwrap();
        }
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "the root holds nothing"
        );
    }
}
