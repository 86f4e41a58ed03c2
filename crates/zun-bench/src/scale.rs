//! The scale benchmark: placements through the API and the store with many
//! simulated compute hosts (`zund simulate`: the API plus one agent per
//! host, each over an in-memory runtime), and the latency of create and of
//! list at that size.
//!
//! The baseline of its ratios is the same run's first containers, placed
//! while the system is empty: how much slower a create gets once 1,000
//! hosts hold 10,000 containers.

use std::fs::File;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures_util::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{Api, Cli, free_port, log_tail, memory_kib, ms, percentile, print_table, ratio};

/// How many of the first and of the last creates are compared.
const EDGE: usize = 500;

struct Simulation {
    child: Child,
    log_path: std::path::PathBuf,
}

impl Drop for Simulation {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sorted(mut samples: Vec<Duration>) -> Vec<Duration> {
    samples.sort();
    samples
}

async fn timed(api: &Api, path: &str, times: usize) -> Result<Vec<Duration>> {
    let mut samples = Vec::with_capacity(times);
    for _ in 0..times {
        let started = Instant::now();
        let resp = api
            .request(Method::GET, path)
            .send()
            .await
            .with_context(|| format!("GET {path}"))?;
        let code = resp.status();
        resp.bytes()
            .await
            .with_context(|| format!("reading GET {path}"))?;
        if code != StatusCode::OK {
            bail!("GET {path} answered {code}");
        }
        samples.push(started.elapsed());
    }
    Ok(sorted(samples))
}

async fn count(api: &Api, path: &str, key: &str) -> Result<usize> {
    let resp = api.request(Method::GET, path).send().await?;
    let doc: Value = resp.json().await.context("list response is not JSON")?;
    Ok(doc.get(key).and_then(Value::as_array).map_or(0, Vec::len))
}

pub(crate) async fn run(cli: &Cli, hosts: usize) -> Result<()> {
    let containers = cli.scale_containers;
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
    let data_dir = std::env::temp_dir().join(format!("zun-bench-scale-{run_id}"));
    std::fs::create_dir_all(&data_dir)?;
    let port = free_port()?;
    let log_path = data_dir.join("zund.log");
    let log = File::create(&log_path)?;
    let mut command = Command::new(&cli.zund);
    command.arg("simulate");
    if let Some(url) = &cli.store_url {
        command.arg("--store-url").arg(url);
    }
    command
        .arg("--hosts")
        .arg(hosts.to_string())
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(&data_dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    let child = command
        .spawn()
        .with_context(|| format!("starting {}", cli.zund.display()))?;
    let sim = Simulation { child, log_path };
    let api = Api::new(&format!("http://127.0.0.1:{port}"))?;
    let started = Instant::now();
    while !api.root_ok().await {
        if started.elapsed() > Duration::from_secs(60) {
            bail!(
                "zund simulate did not answer; its log:\n{}",
                log_tail(&sim.log_path)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    api.set_container_quota(cli.scale_quota.unwrap_or(-1))
        .await?;
    let registered = Instant::now();
    loop {
        let seen = count(&api, "/v1/hosts?limit=1000", "hosts").await?;
        if seen >= hosts.min(1000) {
            break;
        }
        if registered.elapsed() > Duration::from_secs(300) {
            bail!("only {seen} of {hosts} simulated hosts registered");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let registration = registered.elapsed();
    println!(
        "zun-bench scale: {hosts} simulated hosts registered in {:.1} s; placing {containers} containers, {} at a time ({}; {})",
        registration.as_secs_f64(),
        cli.concurrency,
        cli.store_url.as_deref().map_or("SQLite", |_| "PostgreSQL"),
        match cli.scale_quota {
            Some(limit) => format!("quota of {limit} containers counted on every create"),
            None => "quotas lifted".to_owned(),
        },
    );

    let body = json!({"image": "busybox", "command": ["sleep", "1000"], "cpu": 0.5, "memory": 128});
    let placing = Instant::now();
    let results: Vec<Result<(usize, Duration)>> = futures_util::stream::iter(0..containers)
        .map(|i| {
            let api = &api;
            let body = &body;
            async move {
                let t = Instant::now();
                api.create(body).await?;
                Ok((i, t.elapsed()))
            }
        })
        .buffer_unordered(cli.concurrency)
        .collect()
        .await;
    let wall = placing.elapsed();
    let mut by_index = Vec::with_capacity(containers);
    for result in results {
        by_index.push(result?);
    }
    by_index.sort_by_key(|(i, _)| *i);
    let all = sorted(by_index.iter().map(|(_, d)| *d).collect());
    let first = sorted(by_index.iter().take(EDGE).map(|(_, d)| *d).collect());
    let last = sorted(
        by_index
            .iter()
            .skip(containers.saturating_sub(EDGE))
            .map(|(_, d)| *d)
            .collect(),
    );
    let placements_per_s = containers as f64 / wall.as_secs_f64();

    let settling = Instant::now();
    loop {
        let creating = count(&api, "/v1/containers?status=Creating&limit=1", "containers").await?;
        if creating == 0 || settling.elapsed() > Duration::from_secs(600) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let settle = settling.elapsed();
    let unplaced = count(&api, "/v1/containers?status=Error&limit=1000", "containers").await?;

    let list_full = timed(&api, "/v1/containers", 20).await?;
    let list_page = timed(&api, "/v1/containers?limit=50", 50).await?;
    let hosts_list = timed(&api, "/v1/hosts?limit=1000", 20).await?;
    let (rss, peak) = memory_kib(sim.child.id())?;

    println!();
    let header = ["measure", "p50", "p99", "vs empty system (p50)"];
    let rows = vec![
        vec![
            format!(
                "create (POST, {} at a time), all {containers}",
                cli.concurrency
            ),
            ms(percentile(&all, 50.0)),
            ms(percentile(&all, 99.0)),
            String::new(),
        ],
        vec![
            format!("create, first {EDGE} (empty system: baseline)"),
            ms(percentile(&first, 50.0)),
            ms(percentile(&first, 99.0)),
            "1.00x".into(),
        ],
        vec![
            format!("create, last {EDGE} (~{containers} placed)"),
            ms(percentile(&last, 50.0)),
            ms(percentile(&last, 99.0)),
            ratio(percentile(&last, 50.0), percentile(&first, 50.0)),
        ],
        vec![
            format!(
                "GET /v1/containers ({} of {containers} rows)",
                containers.min(1000)
            ),
            ms(percentile(&list_full, 50.0)),
            ms(percentile(&list_full, 99.0)),
            String::new(),
        ],
        vec![
            "GET /v1/containers?limit=50".into(),
            ms(percentile(&list_page, 50.0)),
            ms(percentile(&list_page, 99.0)),
            String::new(),
        ],
        vec![
            format!("GET /v1/hosts ({} hosts)", hosts.min(1000)),
            ms(percentile(&hosts_list, 50.0)),
            ms(percentile(&hosts_list, 99.0)),
            String::new(),
        ],
    ];
    print_table(&header, &rows);
    println!();
    println!(
        "placements: {containers} in {:.1} s = {placements_per_s:.0} per second through the API and the store; all Running {:.1} s later; {unplaced} found no host",
        wall.as_secs_f64(),
        settle.as_secs_f64(),
    );
    println!(
        "zund simulate (API + {hosts} agents): resident {:.1} MiB, peak {:.1} MiB",
        rss as f64 / 1024.0,
        peak as f64 / 1024.0
    );
    drop(sim);
    let _ = std::fs::remove_dir_all(&data_dir);
    Ok(())
}
