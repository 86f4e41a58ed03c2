//! The Docker driver against a real engine. The socket comes from
//! `ZUN_TEST_DOCKER_SOCKET` (default `/var/run/docker.sock`); an unreachable
//! engine fails the tests, it does not skip them. The image `busybox:latest`
//! must exist locally (no pulls are possible on the test machines).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use bollard::models::{ContainerCreateBody, ContainerInspectResponse, RestartPolicyNameEnum};
use bollard::query_parameters::{CreateContainerOptions, InspectContainerOptions, TagImageOptions};
use chrono::Utc;
use futures_util::StreamExt;
use zun_compute::DockerRuntime;
use zun_compute::runtime::{
    EngineState, LogOptions, Observed, PullError, Runtime, RuntimeError, Sandbox,
};
use zun_types::container::RestartPolicy;

mod common;

use common::{Cleanup, HOST, IMAGE, engine, new_uuid, record, runtime, socket};

async fn engine_inspect(name: &str) -> ContainerInspectResponse {
    engine()
        .await
        .inspect_container(name, None::<InspectContainerOptions>)
        .await
        .expect("inspect")
}

/// Polls `inspect` until `done` holds for the observed container.
async fn wait_for(
    rt: &DockerRuntime,
    name: &str,
    what: &str,
    done: impl Fn(&Observed) -> bool,
) -> Observed {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let seen = rt.inspect(name).await.expect("inspect");
        if let Some(o) = seen.as_ref().filter(|o| done(o)) {
            return o.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {name} to be {what}; last seen {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn unreachable_engine_is_unavailable() {
    let err = DockerRuntime::connect("/nonexistent/docker.sock", HOST)
        .await
        .expect_err("no engine there");
    assert!(matches!(err, RuntimeError::Unavailable(_)), "{err:?}");
}

#[tokio::test]
async fn create_maps_every_field_onto_the_engine() {
    let rt = runtime().await;
    let mut cleanup = Cleanup::default();
    let uuid = new_uuid();
    let mut c = record(&uuid, &["-c", "sleep 1000"]);
    c.image = "busybox".into();
    c.entrypoint = Some(vec!["/bin/sh".into()]);
    c.environment = BTreeMap::from([("FOO".into(), "bar".into()), ("EMPTY".into(), "".into())]);
    c.workdir = Some("/tmp".into());
    c.labels = BTreeMap::from([("app".into(), "web".into())]);
    c.hostname = Some("myhost".into());
    c.cpu = Some(0.5);
    c.memory = Some("64".into());
    c.restart_policy = Some(RestartPolicy {
        name: "on-failure".into(),
        maximum_retry_count: "3".into(),
    });
    c.interactive = true;
    c.tty = true;
    c.privileged = true;
    c.runtime = Some("runc".into());
    c.healthcheck = Some(serde_json::json!({
        "test": "stat /etc/passwd", "interval": 5, "retries": 2, "timeout": 3
    }));
    c.exposed_ports = Some(serde_json::json!({"80/tcp": {}, "53/udp": {}}));
    let name = cleanup.container(c.engine_name());

    // The agent resolves the record's image (default tag, registry domain)
    // into the reference the driver creates from.
    let id = rt
        .create(&c, "busybox:latest", Sandbox::default(), &[])
        .await
        .expect("create");
    let info = engine_inspect(&name).await;
    assert_eq!(info.id.as_deref(), Some(id.as_str()));
    assert_eq!(info.name.as_deref(), Some(format!("/zun-{uuid}").as_str()));

    let config = info.config.expect("config");
    assert_eq!(config.image.as_deref(), Some("busybox:latest"));
    assert_eq!(
        config.cmd,
        Some(vec!["-c".to_owned(), "sleep 1000".to_owned()])
    );
    assert_eq!(config.entrypoint, Some(vec!["/bin/sh".to_owned()]));
    let env = config.env.expect("env");
    assert!(env.contains(&"FOO=bar".to_owned()), "{env:?}");
    assert!(env.contains(&"EMPTY=".to_owned()), "{env:?}");
    assert_eq!(config.working_dir.as_deref(), Some("/tmp"));
    let labels = config.labels.expect("labels");
    assert_eq!(labels.get("app").map(String::as_str), Some("web"));
    assert_eq!(labels.get("zun.uuid"), Some(&uuid));
    assert_eq!(labels.get("zun.host").map(String::as_str), Some(HOST));
    assert_eq!(config.hostname.as_deref(), Some("myhost"));
    assert_eq!(config.tty, Some(true));
    assert_eq!(config.open_stdin, Some(true));
    assert_eq!(config.attach_stdin, Some(true));
    assert_eq!(config.stdin_once, Some(false));
    let health = config.healthcheck.expect("healthcheck");
    assert_eq!(
        health.test,
        Some(vec!["CMD-SHELL".to_owned(), "stat /etc/passwd".to_owned()])
    );
    assert_eq!(health.interval, Some(5_000_000_000));
    assert_eq!(health.timeout, Some(3_000_000_000));
    assert_eq!(health.retries, Some(2));
    let mut exposed: Vec<String> = config
        .exposed_ports
        .expect("exposed ports")
        .into_keys()
        .collect();
    exposed.sort();
    assert_eq!(exposed, vec!["53/udp".to_owned(), "80/tcp".to_owned()]);

    let hc = info.host_config.expect("host config");
    assert_eq!(hc.nano_cpus, Some(500_000_000));
    assert_eq!(hc.cpu_shares, Some(512));
    assert_eq!(hc.memory, Some(64 * 1024 * 1024));
    let policy = hc.restart_policy.expect("restart policy");
    assert_eq!(policy.name, Some(RestartPolicyNameEnum::ON_FAILURE));
    assert_eq!(policy.maximum_retry_count, Some(3));
    assert_eq!(hc.auto_remove, Some(false));
    assert_eq!(hc.privileged, Some(true));
    // The host's hardening, whatever the record says.
    assert_eq!(hc.pids_limit, Some(4096));
    // (the engine adds `label=disable` to a privileged container's)
    let security = hc.security_opt.unwrap_or_default();
    assert!(
        security.contains(&"no-new-privileges:true".to_owned()),
        "{security:?}"
    );
    assert_eq!(hc.runtime.as_deref(), Some("runc"));

    let observed = rt.inspect(&name).await.expect("inspect").expect("exists");
    assert_eq!(observed.engine_id, id);
    assert_eq!(observed.uuid, uuid);
    assert_eq!(observed.state, EngineState::Created);
    assert_eq!(observed.status_detail, "Created");
    assert_eq!(observed.ports, vec![53, 80]);
    assert_eq!(observed.error, None);
    assert_eq!(observed.started_at, None);
    assert_eq!(observed.finished_at, None);

    rt.remove(&name).await.expect("remove");
}

#[tokio::test]
async fn auto_remove_and_array_healthcheck() {
    let rt = runtime().await;
    let mut cleanup = Cleanup::default();
    let uuid = new_uuid();
    let mut c = record(&uuid, &["true"]);
    c.auto_remove = true;
    c.restart_policy = Some(RestartPolicy {
        name: "no".into(),
        maximum_retry_count: "0".into(),
    });
    c.healthcheck = Some(serde_json::json!({"cmd": ["true"], "interval": "2", "retries": "1"}));
    let name = cleanup.container(c.engine_name());
    rt.create(&c, &c.image, Sandbox::default(), &[])
        .await
        .expect("create");

    let info = engine_inspect(&name).await;
    let hc = info.host_config.expect("host config");
    assert_eq!(hc.auto_remove, Some(true));
    assert_eq!(hc.nano_cpus, Some(0));
    let health = info
        .config
        .and_then(|c| c.healthcheck)
        .expect("healthcheck");
    assert_eq!(health.test, Some(vec!["CMD".to_owned(), "true".to_owned()]));
    assert_eq!(health.interval, Some(2_000_000_000));
    assert_eq!(health.retries, Some(1));

    // `true` exits at once and the engine removes the container itself.
    rt.start(&name).await.expect("start");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while rt.inspect(&name).await.expect("inspect").is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "auto_remove did not remove"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    rt.remove(&name)
        .await
        .expect("removing a removed container is fine");
}

#[tokio::test]
async fn create_twice_returns_the_same_container() {
    let rt = runtime().await;
    let mut cleanup = Cleanup::default();
    let c = record(&new_uuid(), &["sleep", "1000"]);
    let name = cleanup.container(c.engine_name());
    let first = rt
        .create(&c, &c.image, Sandbox::default(), &[])
        .await
        .expect("create");
    let second = rt
        .create(&c, &c.image, Sandbox::default(), &[])
        .await
        .expect("create again");
    assert_eq!(first, second);
    rt.remove(&name).await.expect("remove");
}

#[tokio::test]
async fn lifecycle_is_idempotent() {
    let rt = runtime().await;
    let mut cleanup = Cleanup::default();
    let c = record(&new_uuid(), &["sleep", "1000"]);
    let name = cleanup.container(c.engine_name());
    rt.create(&c, &c.image, Sandbox::default(), &[])
        .await
        .expect("create");

    rt.start(&name).await.expect("start");
    rt.start(&name).await.expect("start a running container");
    let o = rt.inspect(&name).await.expect("inspect").expect("exists");
    assert_eq!(o.state, EngineState::Running);
    assert!(o.status_detail.starts_with("Up "), "{}", o.status_detail);
    assert!(o.started_at.is_some());
    assert_eq!(o.exit_code, None);

    rt.pause(&name).await.expect("pause");
    rt.pause(&name).await.expect("pause a paused container");
    let o = rt.inspect(&name).await.expect("inspect").expect("exists");
    assert_eq!(o.state, EngineState::Paused);
    assert!(
        o.status_detail.ends_with(" (paused)"),
        "{}",
        o.status_detail
    );
    let err = rt
        .start(&name)
        .await
        .expect_err("a paused container cannot start");
    assert!(
        matches!(&err, RuntimeError::Rejected(m) if m.contains("paused")),
        "{err:?}"
    );

    rt.unpause(&name).await.expect("unpause");
    rt.unpause(&name)
        .await
        .expect("unpause a running container");
    let o = rt.inspect(&name).await.expect("inspect").expect("exists");
    assert_eq!(o.state, EngineState::Running);

    // busybox sleep as pid 1 ignores SIGTERM: stop escalates to SIGKILL.
    rt.stop(&name, Some(1)).await.expect("stop");
    rt.stop(&name, Some(1))
        .await
        .expect("stop a stopped container");
    let o = rt.inspect(&name).await.expect("inspect").expect("exists");
    assert_eq!(o.state, EngineState::Exited);
    assert_eq!(o.exit_code, Some(137));
    assert!(
        o.status_detail.starts_with("Exited(137) ") && o.status_detail.ends_with(" ago "),
        "{:?}",
        o.status_detail
    );
    assert!(o.finished_at.is_some());
    let err = rt
        .pause(&name)
        .await
        .expect_err("a stopped container cannot pause");
    assert!(
        matches!(&err, RuntimeError::Rejected(m) if m.contains("not running")),
        "{err:?}"
    );

    rt.restart(&name, Some(1)).await.expect("restart");
    let o = rt.inspect(&name).await.expect("inspect").expect("exists");
    assert_eq!(o.state, EngineState::Running);

    rt.kill(&name, None).await.expect("kill");
    wait_for(&rt, &name, "exited", |o| o.state == EngineState::Exited).await;
    rt.kill(&name, None)
        .await
        .expect("kill a stopped container");
    rt.kill(&name, Some("9"))
        .await
        .expect("SIGKILL a stopped container");
    let err = rt
        .kill(&name, Some("SIGHUP"))
        .await
        .expect_err("another signal to a stopped container is refused");
    assert!(matches!(err, RuntimeError::Rejected(_)), "{err:?}");

    rt.start(&name).await.expect("start again");
    rt.kill(&name, Some("SIGTERM"))
        .await
        .expect("deliver SIGTERM");

    rt.remove(&name).await.expect("remove a running container");
    rt.remove(&name).await.expect("remove a removed container");
    assert_eq!(rt.inspect(&name).await.expect("inspect"), None);
    for result in [
        rt.start(&name).await,
        rt.stop(&name, None).await,
        rt.pause(&name).await,
        rt.unpause(&name).await,
        rt.kill(&name, None).await,
        rt.restart(&name, Some(0)).await,
        rt.update(&name, Some(1.0), None).await,
    ] {
        assert!(
            matches!(result, Err(RuntimeError::NotFound(_))),
            "{result:?}"
        );
    }
}

#[tokio::test]
async fn bad_command_is_rejected_with_the_engine_message() {
    let rt = runtime().await;
    let mut cleanup = Cleanup::default();
    let c = record(&new_uuid(), &["nosuch"]);
    let name = cleanup.container(c.engine_name());
    rt.create(&c, &c.image, Sandbox::default(), &[])
        .await
        .expect("create");
    let err = rt.start(&name).await.expect_err("start must fail");
    match &err {
        RuntimeError::Rejected(m) => {
            assert!(m.contains("executable file not found"), "{m}");
            assert!(m.contains("nosuch"), "{m}");
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
    let o = rt.inspect(&name).await.expect("inspect").expect("exists");
    assert!(
        o.error
            .as_deref()
            .is_some_and(|e| e.contains("executable file not found")),
        "{o:?}"
    );
    assert!(o.status_detail.ends_with("(error)"), "{}", o.status_detail);
    assert_eq!(o.exit_code, Some(127));
    rt.remove(&name).await.expect("remove");
}

#[tokio::test]
async fn bad_create_values_are_rejected() {
    let rt = runtime().await;
    let mut c = record(&new_uuid(), &["true"]);
    c.memory = Some("lots".into());
    let err = rt
        .create(&c, &c.image, Sandbox::default(), &[])
        .await
        .expect_err("bad memory");
    assert!(matches!(err, RuntimeError::Rejected(_)), "{err:?}");

    let mut c = record(&new_uuid(), &["true"]);
    c.image = "zun-test-no-such-image:v0".into();
    let err = rt
        .create(&c, &c.image, Sandbox::default(), &[])
        .await
        .expect_err("missing image");
    assert!(matches!(err, RuntimeError::NotFound(_)), "{err:?}");
}

#[tokio::test]
async fn update_changes_live_limits() {
    let rt = runtime().await;
    let mut cleanup = Cleanup::default();
    let mut c = record(&new_uuid(), &["sleep", "1000"]);
    c.cpu = Some(1.0);
    c.memory = Some("32".into());
    let name = cleanup.container(c.engine_name());
    rt.create(&c, &c.image, Sandbox::default(), &[])
        .await
        .expect("create");
    rt.start(&name).await.expect("start");

    rt.update(&name, Some(0.25), Some(128))
        .await
        .expect("update");
    let hc = engine_inspect(&name)
        .await
        .host_config
        .expect("host config");
    assert_eq!(hc.nano_cpus, Some(250_000_000));
    assert_eq!(hc.cpu_shares, Some(256));
    assert_eq!(hc.memory, Some(128 * 1024 * 1024));

    rt.update(&name, None, Some(16))
        .await
        .expect("shrink memory");
    let hc = engine_inspect(&name)
        .await
        .host_config
        .expect("host config");
    assert_eq!(hc.memory, Some(16 * 1024 * 1024));
    assert_eq!(hc.nano_cpus, Some(250_000_000));

    rt.update(&name, None, None)
        .await
        .expect("nothing to change");
    rt.remove(&name).await.expect("remove");
}

#[tokio::test]
async fn a_huge_log_is_cut_to_its_end() {
    // An engine log unbounded by rotation (the default keeps 30 MiB), so
    // the driver's own cut is what is tested.
    let rt = runtime()
        .await
        .with_hardening(zun_compute::runtime::Hardening {
            log_max_size: None,
            ..Default::default()
        });
    let mut cleanup = Cleanup::default();
    // 2 MiB more than the cap, in lines of 1 KiB, then a last line.
    let lines = (zun_compute::docker::MAX_LOG_BYTES / 1024) + 2048;
    let script = format!("yes $(printf '%01023d' 0) | head -n {lines}; echo the-end");
    let c = record(&new_uuid(), &["sh", "-c", &script]);
    let name = cleanup.container(c.engine_name());
    rt.create(&c, &c.image, Sandbox::default(), &[])
        .await
        .expect("create");
    rt.start(&name).await.expect("start");
    wait_for(&rt, &name, "exited", |o| o.state == EngineState::Exited).await;
    let log = rt.logs(&name, &LogOptions::default()).await.expect("logs");
    assert!(log.starts_with("["), "{}", &log[..80.min(log.len())]);
    let (notice, rest) = log.split_once('\n').expect("a notice line");
    assert!(
        notice.ends_with(" bytes of earlier output omitted]"),
        "{notice}"
    );
    assert!(rest.len() <= zun_compute::docker::MAX_LOG_BYTES);
    assert!(rest.ends_with("the-end\n"), "the end is kept");
}

#[tokio::test]
async fn logs_honour_streams_and_tail() {
    let rt = runtime().await;
    let mut cleanup = Cleanup::default();
    let c = record(
        &new_uuid(),
        &[
            "sh",
            "-c",
            "echo err1 >&2; sleep 0.3; echo out1; echo out2; echo out3",
        ],
    );
    let name = cleanup.container(c.engine_name());
    rt.create(&c, &c.image, Sandbox::default(), &[])
        .await
        .expect("create");
    rt.start(&name).await.expect("start");
    let o = wait_for(&rt, &name, "exited", |o| o.state == EngineState::Exited).await;
    assert_eq!(o.exit_code, Some(0));

    let stdout_tail = rt
        .logs(
            &name,
            &LogOptions {
                stdout: true,
                tail: Some(2),
                ..Default::default()
            },
        )
        .await
        .expect("logs");
    // The engine counts the tail over both streams, then filters.
    assert_eq!(stdout_tail, "out2\nout3\n");

    let stderr = rt
        .logs(
            &name,
            &LogOptions {
                stderr: true,
                ..Default::default()
            },
        )
        .await
        .expect("logs");
    assert_eq!(stderr, "err1\n");

    let all = rt.logs(&name, &LogOptions::default()).await.expect("logs");
    for line in ["out1", "out2", "out3", "err1"] {
        assert!(all.contains(line), "{all:?}");
    }

    let stamped = rt
        .logs(
            &name,
            &LogOptions {
                stdout: true,
                timestamps: true,
                tail: Some(1),
                ..Default::default()
            },
        )
        .await
        .expect("logs");
    assert!(
        stamped.ends_with(" out3\n") && stamped.len() > 20,
        "{stamped:?}"
    );

    let future = rt
        .logs(
            &name,
            &LogOptions {
                stdout: true,
                since: Some(Utc::now().timestamp() + 3600),
                ..Default::default()
            },
        )
        .await
        .expect("logs");
    assert_eq!(future, "");

    let err = rt
        .logs(
            "zun-00000000-0000-0000-0000-000000000000",
            &LogOptions::default(),
        )
        .await
        .expect_err("no such container");
    assert!(matches!(err, RuntimeError::NotFound(_)), "{err:?}");
    rt.remove(&name).await.expect("remove");
}

#[tokio::test]
async fn events_report_start_and_die() {
    let rt = runtime().await;
    let mut cleanup = Cleanup::default();
    let uuid = new_uuid();
    let c = record(&uuid, &["sh", "-c", "exit 3"]);
    let name = cleanup.container(c.engine_name());

    let mut events = rt.events();
    rt.create(&c, &c.image, Sandbox::default(), &[])
        .await
        .expect("create");
    rt.start(&name).await.expect("start");

    let mut seen = Vec::new();
    let collected = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(event) = events.next().await {
            let event = event.expect("event");
            assert!(!event.uuid.is_empty());
            if event.uuid == uuid {
                seen.push(event.action);
                if seen.iter().any(|a| a == "start") && seen.iter().any(|a| a == "die") {
                    return;
                }
            }
        }
    })
    .await;
    assert!(collected.is_ok(), "saw only {seen:?}");
    assert!(seen.iter().any(|a| a == "create"), "{seen:?}");
    rt.remove(&name).await.expect("remove");
}

/// Forwards a private unix socket to the engine's, so a test can cut the
/// connection under a live event stream.
async fn start_proxy(dir: &std::path::Path) -> (String, tokio::task::JoinHandle<()>) {
    let path = dir.join("proxy.sock");
    let listener = tokio::net::UnixListener::bind(&path).expect("bind proxy");
    let target = socket();
    let handle = tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        loop {
            let Ok((mut inbound, _)) = listener.accept().await else {
                return;
            };
            let target = target.clone();
            conns.spawn(async move {
                if let Ok(mut outbound) = tokio::net::UnixStream::connect(&target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
        // Dropping the JoinSet (when this task is aborted) aborts every
        // connection, which closes both ends.
    });
    (path.to_string_lossy().into_owned(), handle)
}

#[tokio::test]
async fn event_stream_ends_when_the_engine_goes_away() {
    let dir = std::env::temp_dir().join(format!("zun-proxy-{}", new_uuid()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (proxy, handle) = start_proxy(&dir).await;
    let rt = DockerRuntime::connect(&proxy, HOST)
        .await
        .expect("connect through the proxy");
    let mut events = rt.events();
    let reader = tokio::spawn(async move {
        let mut items = Vec::new();
        while let Some(item) = events.next().await {
            items.push(item);
        }
        items
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    handle.abort();
    let items = tokio::time::timeout(Duration::from_secs(10), reader)
        .await
        .expect("the stream must end once the engine is gone")
        .expect("the stream must not panic");
    // Whatever came, at most the last item is an error.
    let errors = items.iter().filter(|i| i.is_err()).count();
    assert!(errors <= 1, "{items:?}");
    if let Some(Err(e)) = items.last() {
        assert!(matches!(e, RuntimeError::Unavailable(_)), "{e:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn list_returns_only_this_hosts_managed_containers() {
    let rt = runtime().await;
    let engine = engine().await;
    let mut cleanup = Cleanup::default();

    // Ours, running with exposed ports.
    let ours_uuid = new_uuid();
    let mut ours = record(&ours_uuid, &["sleep", "1000"]);
    ours.exposed_ports = Some(serde_json::json!({"8080": {}}));
    let ours_name = cleanup.container(ours.engine_name());
    let ours_id = rt
        .create(&ours, &ours.image, Sandbox::default(), &[])
        .await
        .expect("create");
    rt.start(&ours_name).await.expect("start");

    // Ours, never started.
    let idle_uuid = new_uuid();
    let idle = record(&idle_uuid, &["sleep", "1000"]);
    cleanup.container(idle.engine_name());
    rt.create(&idle, &idle.image, Sandbox::default(), &[])
        .await
        .expect("create");

    // Ours, exited.
    let done_uuid = new_uuid();
    let done = record(&done_uuid, &["sh", "-c", "exit 4"]);
    let done_name = cleanup.container(done.engine_name());
    rt.create(&done, &done.image, Sandbox::default(), &[])
        .await
        .expect("create");
    rt.start(&done_name).await.expect("start");
    wait_for(&rt, &done_name, "exited", |o| {
        o.state == EngineState::Exited
    })
    .await;

    let make = |name: String, labels: HashMap<String, String>| {
        let engine = engine.clone();
        async move {
            engine
                .create_container(
                    Some(CreateContainerOptions {
                        name: Some(name),
                        platform: String::new(),
                    }),
                    ContainerCreateBody {
                        image: Some(IMAGE.into()),
                        cmd: Some(vec!["true".into()]),
                        labels: Some(labels),
                        ..Default::default()
                    },
                )
                .await
                .expect("create directly")
        }
    };
    // Another host's container on the same engine.
    let foreign_uuid = new_uuid();
    make(
        cleanup.container(format!("zun-{foreign_uuid}")),
        HashMap::from([("zun.host".to_owned(), "another-host".to_owned())]),
    )
    .await;
    // A container made by upstream Zun: no labels, but the name.
    let legacy_uuid = new_uuid();
    make(
        cleanup.container(format!("zun-{legacy_uuid}")),
        HashMap::new(),
    )
    .await;
    // Not managed at all.
    make(
        cleanup.container(format!("zun-web-{}", new_uuid())),
        HashMap::new(),
    )
    .await;
    make(
        cleanup.container(format!("other-{}", new_uuid())),
        HashMap::new(),
    )
    .await;

    let listed = rt.list().await.expect("list");
    let find = |uuid: &str| listed.iter().find(|o| o.uuid == uuid);
    for o in &listed {
        assert!(o.uuid.len() == 36, "unmanaged container listed: {o:?}");
    }
    assert!(
        find(&foreign_uuid).is_none(),
        "another host's container listed"
    );
    assert!(
        find(&legacy_uuid).is_some(),
        "unlabelled zun-<uuid> not listed"
    );

    let o = find(&ours_uuid).expect("ours listed");
    assert_eq!(o.engine_id, ours_id);
    assert_eq!(o.state, EngineState::Running);
    assert!(o.status_detail.starts_with("Up "), "{}", o.status_detail);
    assert_eq!(o.ports, vec![8080]);

    let o = find(&idle_uuid).expect("idle listed");
    assert_eq!(o.state, EngineState::Created);
    assert_eq!(o.status_detail, "Created");

    let o = find(&done_uuid).expect("exited listed");
    assert_eq!(o.state, EngineState::Exited);
    assert_eq!(o.exit_code, Some(4));
    let inspected = rt
        .inspect(&done_name)
        .await
        .expect("inspect")
        .expect("exists");
    assert_eq!(o.status_detail, inspected.status_detail);
    assert_eq!(o.exit_code, inspected.exit_code);

    // Exposed ports stay known once the container stops.
    rt.stop(&ours_name, Some(0)).await.expect("stop");
    let listed = rt.list().await.expect("list");
    let o = listed.iter().find(|o| o.uuid == ours_uuid).expect("listed");
    assert_eq!(o.state, EngineState::Exited);
    assert_eq!(o.ports, vec![8080]);

    // Paused shows as such.
    rt.start(&ours_name).await.expect("start");
    rt.pause(&ours_name).await.expect("pause");
    let listed = rt.list().await.expect("list");
    let o = listed.iter().find(|o| o.uuid == ours_uuid).expect("listed");
    assert_eq!(o.state, EngineState::Paused);
    assert!(
        o.status_detail.ends_with(" (paused)"),
        "{}",
        o.status_detail
    );
}

#[tokio::test]
async fn images_are_inspected_pulled_and_removed() {
    let rt = runtime().await;
    let info = rt.image(IMAGE).await.expect("inspect").expect("present");
    assert!(info.id.starts_with("sha256:"), "{info:?}");
    assert!(info.size > 0, "{info:?}");
    assert!(info.repo_tags.iter().any(|t| t == IMAGE), "{info:?}");
    let missing = format!("zun-test-missing-{}:v1", new_uuid());
    assert!(rt.image(&missing).await.expect("inspect").is_none());

    // Nothing listens on port 1: the registry cannot be reached.
    let err = rt
        .pull("127.0.0.1:1/zun-test/missing:v1", None, &|_| {})
        .await
        .expect_err("no registry");
    assert!(matches!(err, PullError::Unreachable(_)), "{err:?}");

    let repo = format!("zun-test-tag-{}", new_uuid());
    let options = TagImageOptions {
        repo: Some(repo.clone()),
        tag: Some("v1".into()),
    };
    engine()
        .await
        .tag_image(IMAGE, Some(options))
        .await
        .expect("tag");
    let tagged = format!("{repo}:v1");
    assert!(rt.image(&tagged).await.expect("inspect").is_some());
    rt.remove_image(&tagged).await.expect("remove");
    assert!(rt.image(&tagged).await.expect("inspect").is_none());
    rt.remove_image(&tagged)
        .await
        .expect("removing again succeeds");
    assert!(
        rt.image(IMAGE).await.expect("inspect").is_some(),
        "the original stays"
    );
}
