//! What the kernel has mounted, and the host commands that change it.

use std::path::Path;

use tokio::process::Command;

use crate::VolumeError;

/// Whether `path` is a mount point now (per `/proc/self/mountinfo`).
pub(crate) async fn is_mount_point(path: &Path) -> Result<bool, VolumeError> {
    let table = tokio::fs::read_to_string("/proc/self/mountinfo")
        .await
        .map_err(VolumeError::io("reading /proc/self/mountinfo"))?;
    Ok(mount_points(&table).any(|p| Path::new(&p) == path))
}

/// The mount points of a mountinfo table (its fifth field, with the
/// kernel's octal escapes of space, tab, newline and backslash undone).
pub(crate) fn mount_points(table: &str) -> impl Iterator<Item = String> + '_ {
    table
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(unescape)
}

fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match octal {
            Some(d) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Runs a host command to completion and answers what it printed; on
/// failure its output is the error's text.
pub(crate) async fn run(program: &str, args: &[&str]) -> Result<String, VolumeError> {
    let command = format!("{program} {}", args.join(" "));
    let output = Command::new(program)
        .args(args)
        .output()
        .await
        .map_err(VolumeError::io(format!("running {command}")))?;
    if output.status.success() {
        return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
    }
    let mut text = String::from_utf8_lossy(&output.stderr).trim().to_owned();
    if text.is_empty() {
        text = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    }
    Err(VolumeError::Command {
        command,
        output: format!("{} ({})", text, output.status),
    })
}

/// The directory containers see inside a mounted volume at `point`
/// (`data`, so ext4's lost+found stays out of view), made the first time
/// writable by whatever user the image runs as, as Kubernetes' emptyDir is.
pub(crate) async fn data_dir(point: &Path) -> Result<std::path::PathBuf, VolumeError> {
    let data = point.join("data");
    if !tokio::fs::try_exists(&data)
        .await
        .map_err(VolumeError::io("looking for the volume's data directory"))?
    {
        tokio::fs::create_dir(&data)
            .await
            .map_err(VolumeError::io(format!("creating {}", data.display())))?;
        use std::os::unix::fs::PermissionsExt;
        tokio::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o1777))
            .await
            .map_err(VolumeError::io(format!("opening up {}", data.display())))?;
    }
    Ok(data)
}

/// The names in directory `root`, sorted; none when it does not exist.
pub(crate) async fn entry_names(root: &Path) -> Result<Vec<String>, VolumeError> {
    let context = || format!("listing {}", root.display());
    let mut entries = match tokio::fs::read_dir(root).await {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(VolumeError::io(context())(err)),
    };
    let mut names = Vec::new();
    while let Some(entry) = entries
        .next_entry()
        .await
        .map_err(VolumeError::io(context()))?
    {
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}

/// The loop devices backed by `file`, from `losetup -j FILE`'s lines
/// (`/dev/loop0: [64768]:1234 (/path/file)`).
pub(crate) fn loop_devices(listing: &str) -> Vec<String> {
    listing
        .lines()
        .filter_map(|line| line.split_once(':').map(|(dev, _)| dev.trim().to_owned()))
        .filter(|dev| dev.starts_with("/dev/"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_points_are_read_and_unescaped() {
        let table = "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw\n\
                     95 22 7:0 / /var/lib/zun/a\\040b rw,nosuid - ext4 /dev/loop0 rw\n";
        let points: Vec<String> = mount_points(table).collect();
        assert_eq!(points, ["/", "/var/lib/zun/a b"]);
        assert_eq!(unescape("a\\134b\\011"), "a\\b\t");
        assert_eq!(unescape("trailing\\04"), "trailing\\04");
    }

    #[test]
    fn loop_devices_are_read_from_losetup() {
        let listing = "/dev/loop3: [64768]:1234 (/var/lib/zun/volumes/local/a.img)\n\
                       /dev/loop7: [64768]:1234 (/var/lib/zun/volumes/local/a.img)\n";
        assert_eq!(loop_devices(listing), ["/dev/loop3", "/dev/loop7"]);
        assert!(loop_devices("").is_empty());
    }
}
