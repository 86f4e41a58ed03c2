//! The capsule rows: a capsule of [`MEMBERS`] containers, `POST
//! /v1/capsules` until it leaves Creating (Running), one at a time and
//! [`CONCURRENT`] at once, beside the same containers on the raw engine
//! started together in one network namespace (the first on the baseline's
//! bridge, the others joining it with `container:<first>`).

use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use futures_util::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::{Api, Ctx, Phase, Sample, StatusBoard, ms, percentile, print_table, ratio, snippet};

/// Containers in each capsule (and each raw pod).
const MEMBERS: usize = 3;
/// Capsules in flight at once in the concurrent row.
const CONCURRENT: usize = 20;
/// Capsules timed per row and side.
const SAMPLES: usize = 20;

impl Api {
    /// `POST /v1/capsules`; the new capsule's uuid.
    async fn create_capsule(&self, template: &Value) -> Result<String> {
        let resp = self
            .request(Method::POST, "/v1/capsules")
            .json(&json!({ "template": template }))
            .send()
            .await
            .context("POST /v1/capsules")?;
        let status = resp.status();
        let text = resp.text().await.context("reading the create response")?;
        if status != StatusCode::ACCEPTED {
            bail!("POST /v1/capsules answered {status}: {}", snippet(&text));
        }
        let view: Value = serde_json::from_str(&text).context("create response is not JSON")?;
        view.get("uuid")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("create response has no uuid: {}", snippet(&text)))
    }

    /// (uuid, status) of every capsule.
    async fn capsules(&self) -> Result<Vec<(String, String)>> {
        self.list_at("/v1/capsules", "capsules").await
    }

    async fn capsules_creating(&self) -> Result<Vec<(String, String)>> {
        let mut all = self.capsules().await?;
        all.retain(|(_, status)| status == "Creating");
        Ok(all)
    }

    /// `GET /v1/capsules/{uuid}`: `status` and `status_reason`.
    async fn capsule_status(&self, uuid: &str) -> Result<(String, Option<String>)> {
        let resp = self
            .request(Method::GET, &format!("/v1/capsules/{uuid}"))
            .send()
            .await
            .context("GET /v1/capsules/{uuid}")?;
        let view: Value = resp.json().await.context("show response is not JSON")?;
        let field = |k: &str| view.get(k).and_then(Value::as_str).map(str::to_owned);
        Ok((field("status").unwrap_or_default(), field("status_reason")))
    }

    async fn delete_capsule(&self, uuid: &str) -> Result<()> {
        let resp = self
            .request(Method::DELETE, &format!("/v1/capsules/{uuid}"))
            .send()
            .await
            .context("DELETE /v1/capsules/{uuid}")?;
        let code = resp.status();
        if code == StatusCode::NO_CONTENT || code == StatusCode::NOT_FOUND {
            return Ok(());
        }
        bail!("DELETE /v1/capsules/{uuid} answered {code}")
    }
}

impl Ctx {
    /// [`MEMBERS`] containers of the benchmark's image, command and limits.
    fn capsule_template(&self) -> Value {
        let member = |i: usize| {
            let mut m = json!({
                "name": format!("m{i}"),
                "image": self.cli.image,
                "command": ["sleep", "3600"],
                "resources": {"requests": {"cpu": self.cli.cpu, "memory": self.cli.memory_mib}},
            });
            if self.cli.pull_policy != "omit" {
                m["imagePullPolicy"] = json!(self.cli.pull_policy);
            }
            m
        };
        json!({
            "kind": "capsule",
            "metadata": {},
            "spec": {"containers": (0..MEMBERS).map(member).collect::<Vec<_>>()},
        })
    }

    async fn capsule_one(&self, template: &Value, board: &StatusBoard) -> Sample {
        let start = Instant::now();
        match self.api.create_capsule(template).await {
            Ok(uuid) => {
                self.settled(uuid, start, board, |uuid| async move {
                    self.api.capsule_status(&uuid).await
                })
                .await
            }
            Err(err) => Sample {
                id: None,
                result: Err(format!("{err:#}")),
            },
        }
    }

    /// The raw pod: the first container on the bridge, the others in its
    /// network namespace, all created and started, then inspected running.
    async fn raw_pod_one(&self, name: String) -> Sample {
        let start = Instant::now();
        let result = async {
            let first = self.raw_started(&format!("{name}-0"), None).await?;
            let joined = format!("container:{first}");
            let others = futures_util::future::join_all((1..MEMBERS).map(|i| {
                let (name, joined) = (format!("{name}-{i}"), joined.clone());
                async move { self.raw_started(&name, Some(joined)).await }
            }))
            .await;
            for other in others {
                other?;
            }
            Ok(start.elapsed())
        }
        .await;
        Sample {
            id: Some(name),
            result,
        }
    }

    async fn capsule_phase(&self, n: usize, concurrency: usize) -> Phase {
        let template = self.capsule_template();
        let board = StatusBoard::new();
        let every = Duration::from_millis(self.cli.poll_ms);
        let poller = board.poll_with(every, || self.api.capsules_creating());
        let start = Instant::now();
        let work = futures_util::stream::iter(0..n)
            .map(|_| self.capsule_one(&template, &board))
            .buffer_unordered(concurrency)
            .collect::<Vec<Sample>>();
        let samples = tokio::select! {
            samples = work => samples,
            () = poller => Vec::new(),
        };
        Phase::from_samples(samples, start.elapsed())
    }

    async fn raw_pod_phase(&self, tag: &str, n: usize, concurrency: usize) -> Phase {
        let start = Instant::now();
        let samples: Vec<Sample> = futures_util::stream::iter(0..n)
            .map(|i| self.raw_pod_one(format!("zunbench-pod-{}-{tag}-{i}", self.run_id)))
            .buffer_unordered(concurrency)
            .collect()
            .await;
        Phase::from_samples(samples, start.elapsed())
    }

    /// Deletes every capsule and waits until none is listed and the engine
    /// holds none of this host's containers.
    async fn capsules_clear(&self) -> Result<()> {
        let all = self.api.capsules().await?;
        let results: Vec<Result<()>> = futures_util::stream::iter(&all)
            .map(|(uuid, _)| self.api.delete_capsule(uuid))
            .buffer_unordered(self.cli.concurrency)
            .collect()
            .await;
        for r in results {
            r?;
        }
        // Containers of capsules are not in the container list; the
        // engine-side check of zun_clear covers them.
        let limit = Duration::from_secs(self.cli.timeout_secs);
        let start = Instant::now();
        while !self.api.capsules().await?.is_empty() {
            if start.elapsed() > limit {
                bail!("capsules still listed {limit:?} after their delete");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.zun_clear(&[]).await
    }

    /// Both rows: one at a time (raw and zund alternating, pod by pod),
    /// then [`CONCURRENT`] at once, zund then raw.
    pub(super) async fn capsule_rows(
        &self,
        failures: &mut Vec<String>,
    ) -> Result<Vec<(usize, Phase, Phase)>> {
        println!("capsules: {SAMPLES} of {MEMBERS} containers each side, one at a time");
        let template = self.capsule_template();
        let board = StatusBoard::new();
        let every = Duration::from_millis(self.cli.poll_ms);
        let poller = board.poll_with(every, || self.api.capsules_creating());
        let work = async {
            let (mut zun, mut raw) = (Vec::new(), Vec::new());
            let (mut zun_wall, mut raw_wall) = (Duration::ZERO, Duration::ZERO);
            for i in 0..SAMPLES {
                let began = Instant::now();
                raw.push(
                    self.raw_pod_one(format!("zunbench-pod-{}-seq-{i}", self.run_id))
                        .await,
                );
                raw_wall += began.elapsed();
                let began = Instant::now();
                zun.push(self.capsule_one(&template, &board).await);
                zun_wall += began.elapsed();
            }
            (
                Phase::from_samples(zun, zun_wall),
                Phase::from_samples(raw, raw_wall),
            )
        };
        let (zun_one, raw_one) = tokio::select! {
            phases = work => phases,
            () = poller => (Phase::default(), Phase::default()),
        };
        self.capsules_clear().await?;
        self.raw_clear().await?;

        println!("capsules: {SAMPLES} each side, {CONCURRENT} at a time");
        let zun_many = self.capsule_phase(SAMPLES, CONCURRENT).await;
        self.capsules_clear().await?;
        let raw_many = self.raw_pod_phase("conc", SAMPLES, CONCURRENT).await;
        self.raw_clear().await?;

        for (name, phase) in [
            ("capsules one at a time", &zun_one),
            ("raw pods one at a time", &raw_one),
            ("capsules concurrent", &zun_many),
            ("raw pods concurrent", &raw_many),
        ] {
            for f in &phase.failures {
                failures.push(format!("{name}: {f}"));
            }
        }
        Ok(vec![
            (1, zun_one, raw_one),
            (CONCURRENT, zun_many, raw_many),
        ])
    }
}

/// The capsule table.
pub(super) fn print(rows: &[(usize, Phase, Phase)]) {
    if rows.is_empty() {
        return;
    }
    println!();
    println!(
        "Capsules of {MEMBERS} containers: zun = POST /v1/capsules until it leaves Creating, then Running; raw = the same {MEMBERS} engine containers created and started in one network namespace (the 2nd and 3rd together, joining the 1st)"
    );
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|(concurrency, zun, raw)| {
            let (z50, z99) = (
                percentile(&zun.latencies, 50.0),
                percentile(&zun.latencies, 99.0),
            );
            let (r50, r99) = (
                percentile(&raw.latencies, 50.0),
                percentile(&raw.latencies, 99.0),
            );
            vec![
                format!("{concurrency} at a time"),
                format!("{}/{}", zun.ok(), zun.ok() + zun.failures.len()),
                ms(z50),
                ms(z99),
                format!("{}/{}", raw.ok(), raw.ok() + raw.failures.len()),
                ms(r50),
                ms(r99),
                ratio(z50, r50),
                ratio(z99, r99),
            ]
        })
        .collect();
    print_table(
        &[
            "capsule create->Running",
            "zun ok",
            "zun p50",
            "zun p99",
            "raw ok",
            "raw p50",
            "raw p99",
            "p50 ratio",
            "p99 ratio",
        ],
        &table,
    );
}
