//! [`ContainerIo`] for the Docker driver: exec, attach, tty sizes, `top`,
//! resource use, file archives and commit.

use std::collections::HashMap;
use std::pin::{Pin, pin};

use async_trait::async_trait;
use bollard::container::LogOutput;
use bollard::errors::Error as EngineError;
use bollard::exec::{StartExecOptions, StartExecResults};
use bollard::models::{
    ContainerBlkioStats, ContainerConfig, ContainerCpuStats, ContainerMemoryStats,
    ContainerNetworkStats, ContainerStatsResponse, ExecConfig,
};
use bollard::query_parameters::{
    AttachContainerOptions, CommitContainerOptions, DownloadFromContainerOptions,
    InspectContainerOptions, RemoveImageOptions, ResizeContainerTTYOptions, ResizeExecOptions,
    StatsOptions, TagImageOptions, TopOptions, UploadToContainerOptions,
};
use bytes::{Bytes, BytesMut};
use chrono::{DateTime, SecondsFormat};
use futures_util::{Stream, StreamExt, TryStreamExt};
use tar::EntryType;
use tokio::io::AsyncWrite;

use crate::docker::{DockerRuntime, map_err, refused_with, status_of};
use crate::runtime::{Archive, ContainerIo, PathStat, Processes, RuntimeError, Session, Usage};

/// Engine refusals of an upload the caller got wrong (a 500, so only the
/// text tells them apart from engine failures).
const BAD_UPLOAD_TEXTS: [&str; 2] = [
    // The target path is a file.
    "not a directory",
    // The body is not a tar.
    "Error processing tar file",
];

/// Engine refusals of an image's repository or tag (a 500 too).
const BAD_REFERENCE_TEXTS: [&str; 2] = ["invalid reference format", "invalid tag format"];

/// Go `os.FileMode` type and special bits, as Docker reports a path's mode.
mod go_mode {
    pub const DIR: u32 = 1 << 31;
    pub const SYMLINK: u32 = 1 << 27;
    pub const DEVICE: u32 = 1 << 26;
    pub const NAMED_PIPE: u32 = 1 << 25;
    pub const SOCKET: u32 = 1 << 24;
    pub const SETUID: u32 = 1 << 23;
    pub const SETGID: u32 = 1 << 22;
    pub const CHAR_DEVICE: u32 = 1 << 21;
    pub const STICKY: u32 = 1 << 20;
}

#[async_trait]
impl ContainerIo for DockerRuntime {
    async fn exec_create(
        &self,
        name: &str,
        command: &[String],
        interactive: bool,
    ) -> Result<String, RuntimeError> {
        let config = ExecConfig {
            attach_stdin: Some(interactive),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(interactive),
            cmd: Some(command.to_vec()),
            ..Default::default()
        };
        // A stopped or paused container is a 409 with the engine's reason,
        // which map_err keeps as Rejected.
        let created = self
            .client()
            .create_exec(name, config)
            .await
            .map_err(map_err)?;
        tracing::debug!(container = %name, exec = %created.id, interactive, "exec created");
        Ok(created.id)
    }

    async fn exec_start(&self, exec_id: &str, interactive: bool) -> Result<Session, RuntimeError> {
        let options = StartExecOptions {
            detach: false,
            tty: interactive,
            output_capacity: None,
        };
        match self
            .client()
            .start_exec(exec_id, Some(options))
            .await
            .map_err(map_err)?
        {
            StartExecResults::Attached { output, input } => Ok(session(output, input)),
            StartExecResults::Detached => Err(RuntimeError::Unavailable(format!(
                "the engine started exec {exec_id} detached instead of connecting to it"
            ))),
        }
    }

    async fn exec_exit_code(&self, exec_id: &str) -> Result<Option<i64>, RuntimeError> {
        let exec = self.client().inspect_exec(exec_id).await.map_err(map_err)?;
        if exec.running == Some(true) {
            return Ok(None);
        }
        // Not running and no exit code: the exec was never started.
        Ok(exec.exit_code)
    }

    async fn exec_resize(
        &self,
        exec_id: &str,
        height: u16,
        width: u16,
    ) -> Result<(), RuntimeError> {
        let options = ResizeExecOptions {
            h: i32::from(height),
            w: i32::from(width),
        };
        self.client()
            .resize_exec(exec_id, options)
            .await
            .map_err(map_err)
    }

    async fn attach(&self, name: &str) -> Result<Session, RuntimeError> {
        let options = AttachContainerOptions {
            detach_keys: None,
            logs: false,
            stream: true,
            stdin: true,
            stdout: true,
            stderr: true,
        };
        let attached = self
            .client()
            .attach_container(name, Some(options))
            .await
            .map_err(map_err)?;
        Ok(session(attached.output, attached.input))
    }

    async fn resize_tty(&self, name: &str, height: u16, width: u16) -> Result<(), RuntimeError> {
        let options = ResizeContainerTTYOptions {
            h: i32::from(height),
            w: i32::from(width),
        };
        self.client()
            .resize_container_tty(name, options)
            .await
            .map_err(map_err)
    }

    async fn top(&self, name: &str, ps_args: Option<&str>) -> Result<Processes, RuntimeError> {
        // Without ps_args, bollard's default `-ef` is what `docker top` uses.
        let options = ps_args.map_or_else(TopOptions::default, |args| TopOptions {
            ps_args: args.to_owned(),
        });
        let top = self
            .client()
            .top_processes(name, Some(options))
            .await
            .map_err(map_err)?;
        Ok(Processes {
            titles: top.titles.unwrap_or_default(),
            processes: top.processes.unwrap_or_default(),
        })
    }

    async fn stats(&self, name: &str) -> Result<Usage, RuntimeError> {
        // Not one-shot: the engine then waits for a second sample and fills
        // `precpu_stats` from the first, which the CPU figure needs.
        let options = StatsOptions {
            stream: false,
            one_shot: false,
        };
        let mut samples = pin!(self.client().stats(name, Some(options)));
        let sample = samples.try_next().await.map_err(map_err)?.ok_or_else(|| {
            RuntimeError::Unavailable(format!("the engine sent no stats for {name}"))
        })?;
        Ok(usage_of(&sample))
    }

    async fn get_archive(
        &self,
        name: &str,
        path: &str,
        max_bytes: usize,
    ) -> Result<Archive, RuntimeError> {
        let options = DownloadFromContainerOptions {
            path: path.to_owned(),
        };
        let mut chunks = pin!(self.client().download_from_container(name, Some(options)));
        let mut tar = BytesMut::new();
        // A 404 (no such container, or "Could not find the file <path> in
        // container <name>") arrives as the first item.
        while let Some(chunk) = chunks.try_next().await.map_err(map_err)? {
            if tar.len().saturating_add(chunk.len()) > max_bytes {
                // Dropping the stream closes the connection: the engine stops.
                return Err(RuntimeError::Rejected(format!(
                    "The archive of {path} in container {name} is larger than {max_bytes} bytes"
                )));
            }
            tar.extend_from_slice(&chunk);
        }
        let tar = tar.freeze();
        let stat = path_stat_of_tar(&tar)?;
        Ok(Archive { stat, tar })
    }

    async fn put_archive(&self, name: &str, path: &str, tar: Bytes) -> Result<(), RuntimeError> {
        let options = UploadToContainerOptions {
            path: path.to_owned(),
            no_overwrite_dir_non_dir: None,
            copy_uidgid: None,
        };
        match self
            .client()
            .upload_to_container(name, Some(options), bollard::body_full(tar))
            .await
        {
            Ok(()) => Ok(()),
            // A 404 is either the container or the target directory.
            Err(e) if status_of(&e) == Some(404) => {
                if self.container_exists(name).await? {
                    Err(invalid(e))
                } else {
                    Err(map_err(e))
                }
            }
            Err(e) if callers_fault(&e, &BAD_UPLOAD_TEXTS) => Err(invalid(e)),
            Err(e) => Err(map_err(e)),
        }
    }

    async fn commit(
        &self,
        name: &str,
        repository: &str,
        tag: &str,
    ) -> Result<String, RuntimeError> {
        // The engine writes the image before it checks the name, and leaves
        // it behind untagged when the name is bad. Committing untagged and
        // tagging afterwards lets a bad name remove what the commit wrote.
        let options = CommitContainerOptions {
            container: Some(name.to_owned()),
            pause: true,
            ..Default::default()
        };
        // An empty config keeps the container's own (the engine merges it in).
        let image = self
            .client()
            .commit_container(options, ContainerConfig::default())
            .await
            .map_err(map_err)?;
        let reference = TagImageOptions {
            repo: Some(repository.to_owned()),
            tag: Some(tag.to_owned()),
        };
        match self.client().tag_image(&image.id, Some(reference)).await {
            Ok(()) => {
                tracing::debug!(container = %name, image = %image.id, "committed as {repository}:{tag}");
                Ok(image.id)
            }
            Err(e) => {
                self.remove_untagged_image(&image.id).await;
                if callers_fault(&e, &BAD_REFERENCE_TEXTS) {
                    Err(invalid(e))
                } else {
                    Err(map_err(e))
                }
            }
        }
    }
}

impl DockerRuntime {
    async fn container_exists(&self, name: &str) -> Result<bool, RuntimeError> {
        match self
            .client()
            .inspect_container(name, None::<InspectContainerOptions>)
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if status_of(&e) == Some(404) => Ok(false),
            Err(e) => Err(map_err(e)),
        }
    }

    /// Best effort: a leftover image is garbage, not a failure of the caller.
    async fn remove_untagged_image(&self, id: &str) {
        let options = RemoveImageOptions {
            force: false,
            noprune: false,
        };
        if let Err(e) = self.client().remove_image(id, Some(options), None).await {
            tracing::warn!(image = %id, error = %e, "could not remove the image of a failed commit");
        }
    }
}

/// Whether the engine refused a request as wrong: a 400, or one of `texts`
/// (Docker 20.10 answers several such refusals with a 500).
fn callers_fault(err: &EngineError, texts: &[&str]) -> bool {
    status_of(err) == Some(400) || texts.iter().any(|t| refused_with(err, t))
}

/// A refusal the caller caused, with the engine's text.
fn invalid(err: EngineError) -> RuntimeError {
    match err {
        EngineError::DockerResponseServerError {
            status_code,
            message,
        } => RuntimeError::Invalid(if message.trim().is_empty() {
            format!("the engine refused the request (HTTP {status_code})")
        } else {
            message.trim().to_owned()
        }),
        other => map_err(other),
    }
}

/// What bollard reads from an attached or exec'd process.
type EngineOutput = Pin<Box<dyn Stream<Item = Result<LogOutput, EngineError>> + Send>>;

/// A connection to a process as bollard hands it over. Frames keep their
/// order; stdout and stderr frames (and a tty's undivided output) all become
/// plain bytes.
///
/// Known limit (bollard 0.19): it tells a tty's raw output from multiplexed
/// frames by the first byte of each read, so tty output whose read starts
/// with byte 0, 1 or 2 is taken for a frame header and the stream ends with
/// an error item.
fn session(output: EngineOutput, input: Pin<Box<dyn AsyncWrite + Send>>) -> Session {
    Session {
        output: output
            .map_ok(LogOutput::into_bytes)
            .map_err(map_err)
            .boxed(),
        input,
    }
}

// ---- stats ----------------------------------------------------------------

/// One stats sample in the units and with the arithmetic of `docker stats`.
fn usage_of(sample: &ContainerStatsResponse) -> Usage {
    let (memory_bytes, memory_limit_bytes) = sample
        .memory_stats
        .as_ref()
        .map_or((0, 0), |m| (memory_without_cache(m), m.limit.unwrap_or(0)));
    let (block_read_bytes, block_write_bytes) =
        sample.blkio_stats.as_ref().map_or((0, 0), block_io);
    let (net_rx_bytes, net_tx_bytes) = sample.networks.as_ref().map_or((0, 0), network_io);
    Usage {
        cpu_percent: cpu_percent(sample.cpu_stats.as_ref(), sample.precpu_stats.as_ref()),
        memory_bytes,
        memory_limit_bytes,
        block_read_bytes,
        block_write_bytes,
        net_rx_bytes,
        net_tx_bytes,
    }
}

/// The container's CPU time over the host's, between the two samples,
/// scaled to the online CPUs: 100.0 is one full CPU.
fn cpu_percent(cpu: Option<&ContainerCpuStats>, precpu: Option<&ContainerCpuStats>) -> f64 {
    let (Some(cpu), Some(precpu)) = (cpu, precpu) else {
        return 0.0;
    };
    let total = |s: &ContainerCpuStats| s.cpu_usage.as_ref().and_then(|u| u.total_usage);
    let delta = |now: Option<u64>, before: Option<u64>| {
        now.zip(before)
            .and_then(|(now, before)| now.checked_sub(before))
            .filter(|&d| d > 0)
    };
    let (Some(cpu_delta), Some(system_delta)) = (
        delta(total(cpu), total(precpu)),
        delta(cpu.system_cpu_usage, precpu.system_cpu_usage),
    ) else {
        return 0.0;
    };
    let online_cpus = cpu
        .online_cpus
        .filter(|&n| n > 0)
        .or_else(|| {
            cpu.cpu_usage
                .as_ref()
                .and_then(|u| u.percpu_usage.as_ref())
                .and_then(|per_cpu| u32::try_from(per_cpu.len()).ok())
                .filter(|&n| n > 0)
        })
        .unwrap_or(1);
    cpu_delta as f64 / system_delta as f64 * f64::from(online_cpus) * 100.0
}

/// Memory use without the reclaimable page cache, as the docker CLI shows it.
fn memory_without_cache(memory: &ContainerMemoryStats) -> u64 {
    let usage = memory.usage.unwrap_or(0);
    let Some(stats) = memory.stats.as_ref() else {
        return usage;
    };
    let below_usage = |key: &str| stats.get(key).copied().filter(|&v| v < usage);
    // cgroup v1 names it `total_inactive_file`, cgroup v2 `inactive_file`.
    below_usage("total_inactive_file")
        .or_else(|| below_usage("inactive_file"))
        .map_or(usage, |cache| usage - cache)
}

/// Bytes read and written, summed over devices.
fn block_io(blkio: &ContainerBlkioStats) -> (u64, u64) {
    let entries = blkio
        .io_service_bytes_recursive
        .as_deref()
        .unwrap_or_default();
    let sum = |op: &str| {
        entries
            .iter()
            .filter(|e| e.op.as_deref().is_some_and(|o| o.eq_ignore_ascii_case(op)))
            .filter_map(|e| e.value)
            .fold(0u64, u64::saturating_add)
    };
    (sum("read"), sum("write"))
}

/// Bytes received and sent, summed over networks.
fn network_io(networks: &HashMap<String, ContainerNetworkStats>) -> (u64, u64) {
    networks.values().fold((0, 0), |(rx, tx), n| {
        (
            rx.saturating_add(n.rx_bytes.unwrap_or(0)),
            tx.saturating_add(n.tx_bytes.unwrap_or(0)),
        )
    })
}

// ---- archives -------------------------------------------------------------

/// The stat of the archived path, from the tar's first entry: the engine
/// archives the path itself first (Docker's `X-Docker-Container-Path-Stat`
/// header carries the same facts, but bollard does not expose headers).
/// Differences from that header: `mtime` has whole seconds (the engine
/// truncates tar times), and a directory's size is 0, not its inode size.
fn path_stat_of_tar(tar: &[u8]) -> Result<PathStat, RuntimeError> {
    let unreadable =
        |e: std::io::Error| RuntimeError::Unavailable(format!("unreadable archive: {e}"));
    let mut archive = tar::Archive::new(tar);
    let entry = archive
        .entries()
        .map_err(unreadable)?
        .next()
        .ok_or_else(|| RuntimeError::Unavailable("the archive is empty".to_owned()))?
        .map_err(unreadable)?;
    let header = entry.header();
    let entry_type = header.entry_type();
    let link_target = entry
        .link_name_bytes()
        .map(|l| String::from_utf8_lossy(&l).into_owned())
        .unwrap_or_default();
    let size = if entry_type == EntryType::Symlink {
        // What lstat reports for a symlink, as the engine's stat does.
        link_target.len() as u64
    } else {
        entry.size()
    };
    let mtime = header
        .mtime()
        .ok()
        .and_then(|secs| i64::try_from(secs).ok())
        .and_then(|secs| DateTime::from_timestamp(secs, 0))
        .unwrap_or_default();
    Ok(PathStat {
        name: stat_name(&String::from_utf8_lossy(&entry.path_bytes())),
        size: i64::try_from(size).unwrap_or(i64::MAX),
        mode: go_file_mode(header.mode().map_err(unreadable)?, entry_type),
        mtime: mtime.to_rfc3339_opts(SecondsFormat::Secs, true),
        link_target,
    })
}

/// The archived path's own name from its entry's path ("d/" → "d"); the
/// root directory is archived as "/".
fn stat_name(entry_path: &str) -> String {
    entry_path
        .split('/')
        .find(|component| !component.is_empty())
        .unwrap_or("/")
        .to_owned()
}

/// A tar header's mode and type as Go's `os.FileMode` (what Go's
/// `tar.Header.FileInfo().Mode()` gives, which is what Docker reports).
fn go_file_mode(mode: u32, entry_type: EntryType) -> u32 {
    let mut go = mode & 0o777;
    for (unix_bit, go_bit) in [
        (0o4000, go_mode::SETUID),
        (0o2000, go_mode::SETGID),
        (0o1000, go_mode::STICKY),
    ] {
        if mode & unix_bit != 0 {
            go |= go_bit;
        }
    }
    // Some writers keep the file type (S_IFMT) in the mode field too.
    go |= match mode & !0o7777 {
        0o040000 => go_mode::DIR,
        0o010000 => go_mode::NAMED_PIPE,
        0o120000 => go_mode::SYMLINK,
        0o060000 => go_mode::DEVICE,
        0o020000 => go_mode::DEVICE | go_mode::CHAR_DEVICE,
        0o140000 => go_mode::SOCKET,
        _ => 0,
    };
    go | match entry_type {
        EntryType::Directory => go_mode::DIR,
        EntryType::Symlink => go_mode::SYMLINK,
        EntryType::Block => go_mode::DEVICE,
        EntryType::Char => go_mode::DEVICE | go_mode::CHAR_DEVICE,
        EntryType::Fifo => go_mode::NAMED_PIPE,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use bollard::models::{ContainerBlkioStatEntry, ContainerCpuUsage};

    use super::*;

    fn cpu(
        total: u64,
        system: u64,
        online: Option<u32>,
        per_cpu: Option<usize>,
    ) -> ContainerCpuStats {
        ContainerCpuStats {
            cpu_usage: Some(ContainerCpuUsage {
                total_usage: Some(total),
                percpu_usage: per_cpu.map(|n| vec![0; n]),
                ..Default::default()
            }),
            system_cpu_usage: Some(system),
            online_cpus: online,
            ..Default::default()
        }
    }

    #[test]
    fn cpu_percent_as_the_docker_cli() {
        // Half of the host's time over 2 CPUs is one full CPU.
        let now = cpu(1_500, 3_000, Some(2), None);
        let before = cpu(1_000, 2_000, Some(2), None);
        assert!((cpu_percent(Some(&now), Some(&before)) - 100.0).abs() < 1e-9);
        // Online CPUs missing: the per-CPU list, then 1.
        let now = cpu(1_500, 3_000, None, Some(4));
        assert!((cpu_percent(Some(&now), Some(&before)) - 200.0).abs() < 1e-9);
        let now = cpu(1_500, 3_000, Some(0), Some(0));
        assert!((cpu_percent(Some(&now), Some(&before)) - 50.0).abs() < 1e-9);
        // No delta, a counter that went back, or no previous sample: 0.
        let idle = cpu(1_000, 3_000, Some(2), None);
        assert_eq!(cpu_percent(Some(&idle), Some(&before)), 0.0);
        let same_system = cpu(1_500, 2_000, Some(2), None);
        assert_eq!(cpu_percent(Some(&same_system), Some(&before)), 0.0);
        let reset = cpu(500, 3_000, Some(2), None);
        assert_eq!(cpu_percent(Some(&reset), Some(&before)), 0.0);
        assert_eq!(cpu_percent(Some(&now), None), 0.0);
        assert_eq!(
            cpu_percent(Some(&now), Some(&ContainerCpuStats::default())),
            0.0
        );
    }

    fn memory(usage: u64, stats: &[(&str, u64)]) -> ContainerMemoryStats {
        ContainerMemoryStats {
            usage: Some(usage),
            limit: Some(64 << 20),
            stats: Some(stats.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()),
            ..Default::default()
        }
    }

    #[test]
    fn memory_leaves_out_the_page_cache() {
        // cgroup v1 (as the test engine reports): the hierarchical total wins.
        let v1 = memory(
            1000,
            &[("total_inactive_file", 300), ("inactive_file", 100)],
        );
        assert_eq!(memory_without_cache(&v1), 700);
        // cgroup v2.
        assert_eq!(
            memory_without_cache(&memory(1000, &[("inactive_file", 400)])),
            600
        );
        // A cache figure not below the usage is ignored, as the CLI does.
        let odd = memory(
            1000,
            &[("total_inactive_file", 1000), ("inactive_file", 100)],
        );
        assert_eq!(memory_without_cache(&odd), 900);
        assert_eq!(
            memory_without_cache(&memory(1000, &[("inactive_file", 2000)])),
            1000
        );
        assert_eq!(memory_without_cache(&memory(1000, &[])), 1000);
        assert_eq!(memory_without_cache(&ContainerMemoryStats::default()), 0);
    }

    #[test]
    fn usage_sums_devices_and_networks() {
        let entry = |op: &str, value: u64| ContainerBlkioStatEntry {
            major: Some(8),
            minor: Some(0),
            op: Some(op.to_owned()),
            value: Some(value),
        };
        let network = |rx: u64, tx: u64| ContainerNetworkStats {
            rx_bytes: Some(rx),
            tx_bytes: Some(tx),
            ..Default::default()
        };
        let sample = ContainerStatsResponse {
            memory_stats: Some(memory(1000, &[("total_inactive_file", 200)])),
            blkio_stats: Some(ContainerBlkioStats {
                io_service_bytes_recursive: Some(vec![
                    entry("Read", 10),
                    entry("Write", 20),
                    entry("read", 1),
                    entry("write", 2),
                    entry("Sync", 100),
                    entry("Total", 1000),
                ]),
                ..Default::default()
            }),
            networks: Some(HashMap::from([
                ("eth0".to_owned(), network(5, 6)),
                ("eth1".to_owned(), network(50, 60)),
            ])),
            ..Default::default()
        };
        let usage = usage_of(&sample);
        assert_eq!(
            usage,
            Usage {
                cpu_percent: 0.0,
                memory_bytes: 800,
                memory_limit_bytes: 64 << 20,
                block_read_bytes: 11,
                block_write_bytes: 22,
                net_rx_bytes: 55,
                net_tx_bytes: 66,
            }
        );
        // What a stopped container (or one without networks) reports.
        assert_eq!(
            usage_of(&ContainerStatsResponse::default()),
            Usage::default()
        );
    }

    #[test]
    fn go_file_modes() {
        assert_eq!(go_file_mode(0o644, EntryType::Regular), 0o644);
        assert_eq!(go_file_mode(0o755, EntryType::Directory), (1 << 31) | 0o755);
        assert_eq!(go_file_mode(0o777, EntryType::Symlink), (1 << 27) | 0o777);
        assert_eq!(go_file_mode(0o4755, EntryType::Regular), (1 << 23) | 0o755);
        assert_eq!(go_file_mode(0o2755, EntryType::Regular), (1 << 22) | 0o755);
        assert_eq!(
            go_file_mode(0o1777, EntryType::Directory),
            (1 << 31) | (1 << 20) | 0o777
        );
        assert_eq!(go_file_mode(0o660, EntryType::Block), (1 << 26) | 0o660);
        assert_eq!(
            go_file_mode(0o666, EntryType::Char),
            (1 << 26) | (1 << 21) | 0o666
        );
        assert_eq!(go_file_mode(0o644, EntryType::Fifo), (1 << 25) | 0o644);
        // Type bits in the mode field, as older writers set them.
        assert_eq!(
            go_file_mode(0o040755, EntryType::Regular),
            (1 << 31) | 0o755
        );
        assert_eq!(
            go_file_mode(0o140755, EntryType::Regular),
            (1 << 24) | 0o755
        );
        // The values the test engine's own stat header reported.
        assert_eq!(go_file_mode(0o4755, EntryType::Regular), 8_389_101);
        assert_eq!(go_file_mode(0o755, EntryType::Directory), 2_147_484_141);
        assert_eq!(go_file_mode(0o777, EntryType::Symlink), 134_218_239);
    }

    fn header(path: &str, entry_type: EntryType, mode: u32, size: u64) -> tar::Header {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(entry_type);
        header.set_mode(mode);
        header.set_size(size);
        header.set_mtime(1_700_000_000);
        header.set_path(path).expect("path");
        header.set_cksum();
        header
    }

    #[test]
    fn stat_from_the_first_tar_entry() {
        let mut builder = tar::Builder::new(Vec::new());
        builder
            .append(&header("d/", EntryType::Directory, 0o1777, 0), &b""[..])
            .expect("dir");
        builder
            .append(&header("d/f", EntryType::Regular, 0o644, 3), &b"abc"[..])
            .expect("file");
        let tar = builder.into_inner().expect("tar");
        assert_eq!(
            path_stat_of_tar(&tar).expect("stat"),
            PathStat {
                name: "d".into(),
                size: 0,
                mode: (1 << 31) | (1 << 20) | 0o777,
                mtime: "2023-11-14T22:13:20Z".into(),
                link_target: String::new(),
            }
        );

        let mut builder = tar::Builder::new(Vec::new());
        let mut link = header("l", EntryType::Symlink, 0o777, 0);
        link.set_link_name("/tmp/d/f").expect("link name");
        link.set_cksum();
        builder.append(&link, &b""[..]).expect("link");
        let stat = path_stat_of_tar(&builder.into_inner().expect("tar")).expect("stat");
        assert_eq!((stat.name.as_str(), stat.size), ("l", 8));
        assert_eq!(stat.mode, (1 << 27) | 0o777);
        assert_eq!(stat.link_target, "/tmp/d/f");

        // A name longer than a tar header holds (a GNU long-name entry first).
        let long = "x".repeat(150);
        let mut builder = tar::Builder::new(Vec::new());
        let mut file = tar::Header::new_gnu();
        file.set_mode(0o600);
        file.set_size(2);
        file.set_mtime(0);
        builder
            .append_data(&mut file, &long, &b"hi"[..])
            .expect("long name");
        let stat = path_stat_of_tar(&builder.into_inner().expect("tar")).expect("stat");
        assert_eq!((stat.name, stat.size, stat.mode), (long, 2, 0o600));
        assert_eq!(stat.mtime, "1970-01-01T00:00:00Z");
    }

    /// One pax record: its length counts itself.
    fn pax_record(key: &str, value: &str) -> String {
        let body = format!(" {key}={value}\n");
        let mut length = body.len() + 1;
        while format!("{length}{body}").len() != length {
            length += 1;
        }
        format!("{length}{body}")
    }

    #[test]
    fn stat_honours_pax_records() {
        // How Go (and so the engine) writes names and link targets longer
        // than a tar header holds.
        let name = "n".repeat(120);
        let target = format!("/{}", "t".repeat(120));
        let records = pax_record("path", &name) + &pax_record("linkpath", &target);
        let mut builder = tar::Builder::new(Vec::new());
        builder
            .append(
                &header("PaxHeader", EntryType::XHeader, 0o644, records.len() as u64),
                records.as_bytes(),
            )
            .expect("pax entry");
        builder
            .append(&header("short", EntryType::Symlink, 0o777, 0), &b""[..])
            .expect("link");
        let stat = path_stat_of_tar(&builder.into_inner().expect("tar")).expect("stat");
        assert_eq!(stat.name, name);
        assert_eq!(stat.link_target, target);
        assert_eq!(stat.size, 121);
    }

    #[test]
    fn unreadable_archives_are_errors() {
        assert!(matches!(
            path_stat_of_tar(&[]),
            Err(RuntimeError::Unavailable(_))
        ));
        assert!(matches!(
            path_stat_of_tar(&[0u8; 1024]),
            Err(RuntimeError::Unavailable(_))
        ));
        assert!(matches!(
            path_stat_of_tar(&[7u8; 700]),
            Err(RuntimeError::Unavailable(_))
        ));
    }

    #[test]
    fn stat_names() {
        assert_eq!(stat_name("f"), "f");
        assert_eq!(stat_name("d/"), "d");
        assert_eq!(stat_name("d/f"), "d");
        assert_eq!(stat_name("/"), "/");
    }
}
