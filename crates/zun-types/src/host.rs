//! What the API asks a compute host about the inside of one container and
//! what the host reports (`logs`, `execute`, `top`, `stats`, archive stats),
//! with upstream's wire form of each (reference §4.6).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Which lines of a container's log to read (reference §4.1).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogOptions {
    pub stdout: bool,
    pub stderr: bool,
    pub timestamps: bool,
    /// `None` means all lines.
    pub tail: Option<u64>,
    /// Unix seconds.
    pub since: Option<i64>,
}

/// The output and exit code of a command run to completion (`execute`
/// with `run=true`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecOutput {
    /// stdout and stderr interleaved, as UTF-8 (invalid bytes replaced).
    pub output: String,
    pub exit_code: i64,
}

/// `ps` inside a container, as the engine reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Processes {
    pub titles: Vec<String>,
    pub processes: Vec<Vec<String>>,
}

impl Processes {
    /// Upstream's `top` body: Docker's own field names.
    pub fn view(&self) -> Value {
        json!({"Titles": self.titles, "Processes": self.processes})
    }
}

/// One sample of a container's resource use.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Usage {
    /// Percent of one host CPU (100.0 = one full CPU) over the engine's last
    /// sampling interval, as `docker stats` shows it.
    pub cpu_percent: f64,
    pub memory_bytes: u64,
    pub memory_limit_bytes: u64,
    pub block_read_bytes: u64,
    pub block_write_bytes: u64,
    pub net_rx_bytes: u64,
    pub net_tx_bytes: u64,
}

const MIB: f64 = 1024.0 * 1024.0;

impl Usage {
    /// Upstream's `stats` body for the container named `name`.
    pub fn view(&self, name: &str) -> Value {
        let usage_mib = self.memory_bytes as f64 / MIB;
        let limit_mib = self.memory_limit_bytes as f64 / MIB;
        let mem_percent = if self.memory_limit_bytes == 0 {
            0.0
        } else {
            usage_mib / limit_mib * 100.0
        };
        json!({
            "CONTAINER": name,
            "CPU %": self.cpu_percent,
            "MEM USAGE(MiB)": usage_mib,
            "MEM LIMIT(MiB)": limit_mib,
            "MEM %": mem_percent,
            "BLOCK I/O(B)": format!("{}/{}", self.block_read_bytes, self.block_write_bytes),
            "NET I/O(B)": format!("{}/{}", self.net_rx_bytes, self.net_tx_bytes),
        })
    }
}

/// What the engine says of a path inside a container (Docker's
/// `X-Docker-Container-Path-Stat`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathStat {
    pub name: String,
    pub size: i64,
    /// Go `os.FileMode` bits, as Docker reports them (type bits above the
    /// permission bits, e.g. 1<<31 for a directory).
    pub mode: u32,
    /// RFC 3339.
    pub mtime: String,
    pub link_target: String,
}

impl PathStat {
    /// The `stat` object of upstream's `get_archive` body.
    pub fn view(&self) -> Value {
        json!({
            "name": self.name,
            "size": self.size,
            "mode": self.mode,
            "mtime": self.mtime,
            "linkTarget": self.link_target,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_view_has_upstreams_fields_and_units() {
        let usage = Usage {
            cpu_percent: 12.5,
            memory_bytes: 64 * 1024 * 1024,
            memory_limit_bytes: 256 * 1024 * 1024,
            block_read_bytes: 10,
            block_write_bytes: 20,
            net_rx_bytes: 30,
            net_tx_bytes: 40,
        };
        assert_eq!(
            usage.view("web"),
            json!({
                "CONTAINER": "web",
                "CPU %": 12.5,
                "MEM USAGE(MiB)": 64.0,
                "MEM LIMIT(MiB)": 256.0,
                "MEM %": 25.0,
                "BLOCK I/O(B)": "10/20",
                "NET I/O(B)": "30/40",
            })
        );
        // No limit known: no division by zero.
        assert_eq!(Usage::default().view("x")["MEM %"], json!(0.0));
    }

    #[test]
    fn top_and_stat_views_use_dockers_names() {
        let top = Processes {
            titles: vec!["UID".into(), "PID".into()],
            processes: vec![vec!["root".into(), "1".into()]],
        };
        assert_eq!(
            top.view(),
            json!({"Titles": ["UID", "PID"], "Processes": [["root", "1"]]})
        );
        let stat = PathStat {
            name: "etc".into(),
            size: 4096,
            mode: 2_147_484_141,
            mtime: "2026-11-23T00:00:00Z".into(),
            link_target: String::new(),
        };
        assert_eq!(stat.view()["linkTarget"], json!(""));
        assert_eq!(stat.view()["mode"], json!(2_147_484_141u32));
    }
}
