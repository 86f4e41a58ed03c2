//! `--security`: what the hostile-tenant defaults cost (issue 15).
//!
//! Two all-in-ones on the same engine in one run: one with the defaults
//! (PID limit, `no-new-privileges`, dropped capabilities, bounded logs, its
//! agent endpoint over TLS), one with all of that off (`[compute]
//! pids_limit = 0`, `no_new_privileges = false`, `drop_capabilities = []`,
//! `log_max_size = ""`, `tls = false`). Rows:
//!
//! * create-to-Running, one at a time, alternating between the two;
//! * a request to each agent endpoint (a container's last log line), made
//!   as the API makes it (a token per request), over one kept-alive
//!   connection and over a new connection each time, alternating.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::json;
use zun_hostlink::endpoint::{container_path, token, unix_now};
use zun_hostlink::tls::{AgentCa, client_config};
use zun_secrets::SecretKey;

use crate::{Api, Cli, Zund, free_port, ms, percentile, print_table, ratio};

/// Creates timed on each side.
const CREATES: usize = 20;
/// Endpoint requests timed on each side, per connection kind.
const REQUESTS: usize = 200;

const RELAXED: &str = "[compute]\npids_limit = 0\nno_new_privileges = false\n\
     drop_capabilities = []\nlog_max_size = \"\"\ntls = false\n";

/// One all-in-one of the run.
struct Side {
    name: &'static str,
    zund: Zund,
    api: Api,
    host: String,
    data_dir: PathBuf,
    endpoint: String,
    made: Vec<String>,
}

impl Side {
    async fn start(cli: &Cli, name: &'static str, run_id: &str, relaxed: bool) -> Result<Self> {
        let host = format!("zun-bench-{run_id}-{name}");
        let data_dir = std::env::temp_dir().join(&host);
        std::fs::create_dir_all(&data_dir)
            .with_context(|| format!("creating {}", data_dir.display()))?;
        let port = free_port()?;
        let mut config = format!("[compute]\nlisten = \"127.0.0.1:{port}\"\n");
        if relaxed {
            config = RELAXED.replace("[compute]\n", &config);
        }
        let path = data_dir.join("zun.toml");
        std::fs::write(&path, config).with_context(|| format!("writing {}", path.display()))?;
        let mut zund = Zund::spawn_with(cli, &host, &data_dir, Some(&path))?;
        let api = Api::new(&zund.base_url)?;
        zund.wait_ready(&api, Duration::from_secs(30)).await?;
        api.lift_quotas().await?;
        let scheme = if relaxed { "http" } else { "https" };
        Ok(Self {
            name,
            zund,
            api,
            host,
            data_dir,
            endpoint: format!("{scheme}://127.0.0.1:{port}"),
            made: Vec::new(),
        })
    }

    /// Create-to-Running of one container, polled every 5 ms.
    async fn time_create(&mut self, cli: &Cli) -> Result<Duration> {
        let body = json!({
            "image": cli.image,
            "command": ["sh", "-c", "echo ready; exec sleep 3600"],
            "cpu": cli.cpu,
            "memory": cli.memory_mib,
            "image_pull_policy": "ifnotpresent",
        });
        let start = Instant::now();
        let uuid = self.api.create(&body).await?;
        self.made.push(uuid.clone());
        loop {
            let (status, reason) = self.api.status(&uuid).await?;
            match status.as_str() {
                "Running" => return Ok(start.elapsed()),
                "Error" => bail!("{} container {uuid} failed: {reason:?}", self.name),
                _ if start.elapsed() > Duration::from_secs(cli.timeout_secs) => {
                    bail!("{} container {uuid} not Running in time", self.name)
                }
                _ => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    }

    async fn stop(mut self) -> Result<()> {
        for uuid in &self.made {
            let _ = self.api.delete(uuid).await;
        }
        let stopped = self.zund.stop().await;
        if stopped.is_ok() {
            let _ = std::fs::remove_dir_all(&self.data_dir);
        }
        stopped
    }
}

/// What the API holds to call one agent endpoint.
struct Caller {
    key: SecretKey,
    host: String,
    url: String,
    tls: Option<rustls::ClientConfig>,
}

impl Caller {
    fn for_side(side: &Side) -> Result<Self> {
        let key = SecretKey::load(&side.data_dir.join("secret.key"))
            .map_err(|e| anyhow!("loading {}'s key: {e}", side.name))?;
        let tls = if side.endpoint.starts_with("https") {
            let ca = AgentCa::derive(&key).map_err(|e| anyhow!("deriving the agents' CA: {e}"))?;
            Some(client_config(&[ca.certificate().clone()]).map_err(|e| anyhow!("{e}"))?)
        } else {
            None
        };
        Ok(Self {
            key,
            host: side.host.clone(),
            url: side.endpoint.clone(),
            tls,
        })
    }

    fn client(&self, keep_alive: bool) -> Result<reqwest::Client> {
        let mut builder = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(30));
        if !keep_alive {
            builder = builder.pool_max_idle_per_host(0);
        }
        if let Some(tls) = &self.tls {
            builder = builder.use_preconfigured_tls(tls.clone());
        }
        builder.build().context("building the endpoint client")
    }

    /// The container's last log line through the agent endpoint.
    async fn time_logs(&self, client: &reqwest::Client, uuid: &str) -> Result<Duration> {
        let path = format!("{}/logs", container_path(uuid));
        let bearer = token(&self.key, &self.host, "POST", &path, unix_now());
        let body =
            json!({"stdout": true, "stderr": true, "timestamps": false, "tail": 1, "since": null});
        let start = Instant::now();
        let resp = client
            .post(format!("{}{path}", self.url))
            .bearer_auth(bearer)
            .json(&body)
            .send()
            .await
            .context("calling the agent endpoint")?;
        let status = resp.status();
        resp.bytes()
            .await
            .context("reading the endpoint's answer")?;
        if !status.is_success() {
            bail!("the agent endpoint answered {status}");
        }
        Ok(start.elapsed())
    }
}

/// Runs `--security`; `Ok(false)` when a step failed.
pub async fn run(cli: &Cli) -> Result<bool> {
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
    println!(
        "security: {CREATES} creates on each side alternating, then {REQUESTS} agent-endpoint requests per connection kind"
    );
    let hardened = Side::start(cli, "hardened", &run_id, false).await?;
    let relaxed = match Side::start(cli, "relaxed", &run_id, true).await {
        Ok(side) => side,
        Err(err) => {
            let _ = hardened.stop().await;
            return Err(err);
        }
    };
    let mut sides = [hardened, relaxed];
    let measured = measure(cli, &mut sides).await;
    let [hardened, relaxed] = sides;
    let stopped = (hardened.stop().await, relaxed.stop().await);
    let (creates, requests) = measured?;
    stopped.0?;
    stopped.1?;
    print(&creates, &requests);
    Ok(true)
}

type Samples = [Vec<Duration>; 2];

async fn measure(cli: &Cli, sides: &mut [Side; 2]) -> Result<(Samples, Vec<(String, Samples)>)> {
    let mut creates: Samples = [Vec::new(), Vec::new()];
    for i in 0..CREATES {
        // Alternate which side goes first, so neither always follows the other.
        let order = if i % 2 == 0 { [0, 1] } else { [1, 0] };
        for s in order {
            creates[s].push(sides[s].time_create(cli).await?);
        }
    }
    let callers = [Caller::for_side(&sides[0])?, Caller::for_side(&sides[1])?];
    let targets = [sides[0].made[0].clone(), sides[1].made[0].clone()];
    let mut rows = Vec::new();
    for (name, keep_alive) in [
        ("one kept-alive connection", true),
        ("a new connection each", false),
    ] {
        let clients = [
            callers[0].client(keep_alive)?,
            callers[1].client(keep_alive)?,
        ];
        // One untimed request each: the kept-alive connection is made.
        for s in 0..2 {
            callers[s].time_logs(&clients[s], &targets[s]).await?;
        }
        let mut samples: Samples = [Vec::new(), Vec::new()];
        for i in 0..REQUESTS {
            let order = if i % 2 == 0 { [0, 1] } else { [1, 0] };
            for s in order {
                samples[s].push(callers[s].time_logs(&clients[s], &targets[s]).await?);
            }
        }
        rows.push((name.to_owned(), samples));
    }
    Ok((creates, rows))
}

fn print(creates: &Samples, requests: &[(String, Samples)]) {
    let sorted = |v: &Vec<Duration>| {
        let mut v = v.clone();
        v.sort();
        v
    };
    let row = |name: String, samples: &Samples| {
        let (a, b) = (sorted(&samples[0]), sorted(&samples[1]));
        let (a50, b50) = (percentile(&a, 50.0), percentile(&b, 50.0));
        let (a95, b95) = (percentile(&a, 95.0), percentile(&b, 95.0));
        vec![
            name,
            ms(a50),
            ms(b50),
            ratio(a50, b50),
            ms(a95),
            ms(b95),
            ratio(a95, b95),
        ]
    };
    println!();
    print_table(
        &[
            "create->Running, one at a time",
            "hardened p50",
            "relaxed p50",
            "ratio",
            "hardened p95",
            "relaxed p95",
            "ratio",
        ],
        &[row(format!("{CREATES} each, alternating"), creates)],
    );
    println!();
    print_table(
        &[
            "agent endpoint: a container's last log line",
            "TLS p50",
            "plain p50",
            "ratio",
            "TLS p95",
            "plain p95",
            "ratio",
        ],
        &requests
            .iter()
            .map(|(name, samples)| row(format!("{REQUESTS} each, {name}"), samples))
            .collect::<Vec<_>>(),
    );
}
