//! [`ContainerIo`] of the Docker driver against a real engine. The socket
//! comes from `ZUN_TEST_DOCKER_SOCKET` (default `/var/run/docker.sock`); an
//! unreachable engine fails the tests. The image `busybox:latest` must exist
//! locally (no pulls are possible on the test machines).

use std::collections::HashMap;
use std::time::Duration;

use bollard::query_parameters::ListImagesOptions;
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use tokio::io::AsyncWriteExt;
use zun_compute::DockerRuntime;
use zun_compute::runtime::{
    ContainerIo, EngineState, LogOptions, PathStat, Runtime, RuntimeError, Sandbox, Session,
};
use zun_types::Container;

mod common;

use common::{Cleanup, engine, new_uuid, record, runtime};

/// How long any single expectation may take before the test fails.
const PATIENCE: Duration = Duration::from_secs(20);

/// Creates and starts the container of `record`; returns its engine name.
async fn run(rt: &DockerRuntime, cleanup: &mut Cleanup, record: &Container) -> String {
    let name = cleanup.container(record.engine_name());
    rt.create(record, &record.image, Sandbox::default(), &[])
        .await
        .expect("create");
    rt.start(&name).await.expect("start");
    name
}

/// A running `sleep 300` container.
async fn sleeper(rt: &DockerRuntime, cleanup: &mut Cleanup) -> String {
    run(rt, cleanup, &record(&new_uuid(), &["sleep", "300"])).await
}

/// Reads `output` until its text contains `needle`; returns all text read.
async fn read_until(
    output: &mut BoxStream<'static, Result<Bytes, RuntimeError>>,
    needle: &str,
) -> String {
    let mut text = String::new();
    let found = tokio::time::timeout(PATIENCE, async {
        while let Some(chunk) = output.next().await {
            text.push_str(&String::from_utf8_lossy(&chunk.expect("output chunk")));
            if text.contains(needle) {
                return true;
            }
        }
        false
    })
    .await;
    assert!(
        found == Ok(true),
        "expected {needle:?} in the output; got {text:?} ({})",
        if found.is_err() {
            "timed out"
        } else {
            "stream ended"
        }
    );
    text
}

/// Everything `output` sends until the engine closes it.
async fn read_to_end(output: BoxStream<'static, Result<Bytes, RuntimeError>>) -> Vec<u8> {
    let chunks: Vec<Result<Bytes, RuntimeError>> = tokio::time::timeout(PATIENCE, output.collect())
        .await
        .expect("the output stream ends");
    let mut bytes = Vec::new();
    for chunk in chunks {
        bytes.extend_from_slice(&chunk.expect("output chunk"));
    }
    bytes
}

/// The exit code of a finished exec; the engine may record it just after
/// the output stream closes.
async fn exit_code(rt: &DockerRuntime, exec_id: &str) -> i64 {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(code) = rt.exec_exit_code(exec_id).await.expect("exec exit code") {
            return code;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "exec {exec_id} never reported an exit code"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn write(session: &mut Session, text: &str) {
    session
        .input
        .write_all(text.as_bytes())
        .await
        .expect("write input");
    session.input.flush().await.expect("flush input");
}

fn strings(words: &[&str]) -> Vec<String> {
    words.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test]
async fn exec_runs_a_command_and_reports_its_exit_code() {
    let rt = runtime().await;
    let mut cleanup = Cleanup::default();
    let name = sleeper(&rt, &mut cleanup).await;

    let id = rt
        .exec_create(&name, &strings(&["echo", "hello"]), false)
        .await
        .expect("exec create");
    assert_eq!(id.len(), 64, "{id}");
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
    assert_eq!(rt.exec_exit_code(&id).await.expect("not started"), None);
    let session = rt.exec_start(&id, false).await.expect("exec start");
    assert_eq!(read_to_end(session.output).await, b"hello\n");
    assert_eq!(exit_code(&rt, &id).await, 0);

    // stdout and stderr both come through, in order, without a tty.
    let command = strings(&["sh", "-c", "echo out; sleep 0.3; echo err >&2; exit 3"]);
    let id = rt
        .exec_create(&name, &command, false)
        .await
        .expect("exec create");
    let session = rt.exec_start(&id, false).await.expect("exec start");
    assert_eq!(read_to_end(session.output).await, b"out\nerr\n");
    assert_eq!(exit_code(&rt, &id).await, 3);

    // Frames larger than one read arrive whole and in order.
    let command = strings(&["sh", "-c", "seq 1 20000"]);
    let id = rt
        .exec_create(&name, &command, false)
        .await
        .expect("exec create");
    let session = rt.exec_start(&id, false).await.expect("exec start");
    let expected: String = (1..=20000).map(|n| format!("{n}\n")).collect();
    assert_eq!(
        String::from_utf8(read_to_end(session.output).await).expect("utf-8"),
        expected
    );
    rt.remove(&name).await.expect("remove");
}

#[tokio::test]
async fn exec_is_refused_where_the_engine_cannot_run_it() {
    let rt = runtime().await;
    let mut cleanup = Cleanup::default();
    let name = sleeper(&rt, &mut cleanup).await;
    let command = strings(&["true"]);

    let missing = format!("zun-{}", new_uuid());
    let err = rt
        .exec_create(&missing, &command, false)
        .await
        .expect_err("no container");
    assert!(matches!(err, RuntimeError::NotFound(_)), "{err:?}");

    rt.pause(&name).await.expect("pause");
    let err = rt
        .exec_create(&name, &command, true)
        .await
        .expect_err("paused");
    assert!(
        matches!(&err, RuntimeError::Rejected(m) if m.contains("paused")),
        "{err:?}"
    );
    rt.unpause(&name).await.expect("unpause");

    rt.kill(&name, None).await.expect("kill");
    let err = rt
        .exec_create(&name, &command, false)
        .await
        .expect_err("stopped");
    assert!(
        matches!(&err, RuntimeError::Rejected(m) if m.contains("is not running")),
        "{err:?}"
    );

    let err = rt.exec_exit_code("deadbeef").await.expect_err("no exec");
    assert!(matches!(err, RuntimeError::NotFound(_)), "{err:?}");
    let err = rt.exec_start("deadbeef", false).await.expect_err("no exec");
    assert!(matches!(err, RuntimeError::NotFound(_)), "{err:?}");
    let err = rt
        .exec_resize("deadbeef", 10, 10)
        .await
        .expect_err("no exec");
    assert!(matches!(err, RuntimeError::NotFound(_)), "{err:?}");
    rt.remove(&name).await.expect("remove");
}

#[tokio::test]
async fn interactive_exec_takes_input_and_resizes() {
    let rt = runtime().await;
    let mut cleanup = Cleanup::default();
    let name = sleeper(&rt, &mut cleanup).await;

    let id = rt
        .exec_create(&name, &strings(&["sh"]), true)
        .await
        .expect("exec create");
    let mut session = rt.exec_start(&id, true).await.expect("exec start");
    assert_eq!(rt.exec_exit_code(&id).await.expect("running"), None);

    rt.exec_resize(&id, 30, 100).await.expect("resize");
    write(&mut session, "stty size\n").await;
    read_until(&mut session.output, "30 100").await;

    // The tty echoes the input; only the shell computes 42.
    write(&mut session, "echo $((6*7))\nexit\n").await;
    let text = read_until(&mut session.output, "42").await;
    assert!(text.contains("$((6*7))"), "the tty echoes input: {text:?}");
    read_to_end(session.output).await;
    assert_eq!(exit_code(&rt, &id).await, 0);
    rt.remove(&name).await.expect("remove");
}

#[tokio::test]
async fn attach_reaches_the_main_process() {
    let rt = runtime().await;
    let mut cleanup = Cleanup::default();
    let mut shell = record(&new_uuid(), &["sh"]);
    shell.interactive = true;
    shell.tty = true;
    let name = run(&rt, &mut cleanup, &shell).await;

    let mut session = rt.attach(&name).await.expect("attach");
    rt.resize_tty(&name, 25, 91).await.expect("resize tty");
    write(&mut session, "stty size\n").await;
    read_until(&mut session.output, "25 91").await;
    write(&mut session, "echo $((6*7))\n").await;
    read_until(&mut session.output, "42").await;

    // The shell reads from the attached stdin: `exit` ends the container.
    write(&mut session, "exit 7\n").await;
    read_to_end(session.output).await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let seen = rt.inspect(&name).await.expect("inspect").expect("exists");
        if seen.state == EngineState::Exited {
            assert_eq!(seen.exit_code, Some(7));
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "still {seen:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let missing = format!("zun-{}", new_uuid());
    let err = rt.attach(&missing).await.expect_err("no container");
    assert!(matches!(err, RuntimeError::NotFound(_)), "{err:?}");
    let err = rt
        .resize_tty(&missing, 10, 10)
        .await
        .expect_err("no container");
    assert!(matches!(err, RuntimeError::NotFound(_)), "{err:?}");
    rt.remove(&name).await.expect("remove");
}

#[tokio::test]
async fn top_lists_the_container_processes() {
    let rt = runtime().await;
    let mut cleanup = Cleanup::default();
    let name = sleeper(&rt, &mut cleanup).await;

    let top = rt.top(&name, None).await.expect("top");
    assert!(top.titles.iter().any(|t| t == "PID"), "{top:?}");
    let cmd = top
        .titles
        .iter()
        .position(|t| t == "CMD")
        .expect("CMD column");
    assert!(
        top.processes
            .iter()
            .any(|p| p.get(cmd).is_some_and(|c| c == "sleep 300")),
        "{top:?}"
    );

    let top = rt
        .top(&name, Some("-o pid,comm"))
        .await
        .expect("top with ps_args");
    assert_eq!(top.titles, ["PID", "COMMAND"]);
    assert!(
        top.processes
            .iter()
            .any(|p| p.get(1).is_some_and(|c| c == "sleep")),
        "{top:?}"
    );

    let missing = format!("zun-{}", new_uuid());
    let err = rt.top(&missing, None).await.expect_err("no container");
    assert!(matches!(err, RuntimeError::NotFound(_)), "{err:?}");
    rt.remove(&name).await.expect("remove");
}

#[tokio::test]
async fn stats_report_cpu_and_memory() {
    let rt = runtime().await;
    let mut cleanup = Cleanup::default();
    let mut busy = record(&new_uuid(), &["sh", "-c", "while :; do :; done"]);
    busy.cpu = Some(0.5);
    busy.memory = Some("64".into());
    let name = run(&rt, &mut cleanup, &busy).await;

    let usage = rt.stats(&name).await.expect("stats");
    assert_eq!(usage.memory_limit_bytes, 64 << 20, "{usage:?}");
    assert!(
        usage.memory_bytes > 0 && usage.memory_bytes < usage.memory_limit_bytes,
        "{usage:?}"
    );
    // Limited to half a CPU, the loop uses about 50% of one.
    assert!(
        usage.cpu_percent > 5.0 && usage.cpu_percent < 80.0,
        "{usage:?}"
    );

    let missing = format!("zun-{}", new_uuid());
    let err = rt.stats(&missing).await.expect_err("no container");
    assert!(matches!(err, RuntimeError::NotFound(_)), "{err:?}");
    rt.remove(&name).await.expect("remove");
}

/// 1 MiB of random bytes.
fn random_mebibyte() -> Vec<u8> {
    (0..(1 << 20) / 16)
        .flat_map(|_| *uuid::Uuid::new_v4().as_bytes())
        .collect()
}

/// Fixed modification time of the uploaded files: 2023-11-14T22:13:20Z.
const MTIME: u64 = 1_700_000_000;

fn tar_header(entry_type: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(entry_type);
    header.set_mode(mode);
    header.set_size(size);
    header.set_mtime(MTIME);
    header
}

/// A tar of one file `path` with `data`.
fn tar_of(path: &str, data: &[u8]) -> Bytes {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar_header(tar::EntryType::Regular, 0o640, data.len() as u64);
    builder
        .append_data(&mut header, path, data)
        .expect("tar entry");
    Bytes::from(builder.into_inner().expect("tar"))
}

/// The path and content of every entry of `tar`.
fn tar_entries(tar: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut archive = tar::Archive::new(tar);
    archive
        .entries()
        .expect("tar")
        .map(|entry| {
            let mut entry = entry.expect("tar entry");
            let path = entry.path().expect("path").to_string_lossy().into_owned();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut data).expect("entry data");
            (path, data)
        })
        .collect()
}

#[tokio::test]
async fn archives_go_in_and_out() {
    let rt = runtime().await;
    let mut cleanup = Cleanup::default();
    let name = sleeper(&rt, &mut cleanup).await;
    let blob = random_mebibyte();

    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar_header(tar::EntryType::Regular, 0o640, blob.len() as u64);
    builder
        .append_data(&mut header, "blob.bin", &blob[..])
        .expect("tar file");
    let mut link = tar_header(tar::EntryType::Symlink, 0o777, 0);
    builder
        .append_link(&mut link, "blob.link", "/tmp/blob.bin")
        .expect("tar link");
    let tar = Bytes::from(builder.into_inner().expect("tar"));
    rt.put_archive(&name, "/tmp", tar)
        .await
        .expect("put archive");

    let archive = rt
        .get_archive(&name, "/tmp/blob.bin", 4 << 20)
        .await
        .expect("get archive");
    assert_eq!(
        archive.stat,
        PathStat {
            name: "blob.bin".into(),
            size: 1 << 20,
            mode: 0o640,
            mtime: "2023-11-14T22:13:20Z".into(),
            link_target: String::new(),
        }
    );
    let entries = tar_entries(&archive.tar);
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].0, "blob.bin");
    assert!(entries[0].1 == blob, "the file came back changed");

    let link = rt
        .get_archive(&name, "/tmp/blob.link", 4 << 20)
        .await
        .expect("get link");
    assert_eq!(
        link.stat,
        PathStat {
            name: "blob.link".into(),
            size: "/tmp/blob.bin".len() as i64,
            mode: (1 << 27) | 0o777,
            mtime: "2023-11-14T22:13:20Z".into(),
            link_target: "/tmp/blob.bin".into(),
        }
    );

    let dir = rt
        .get_archive(&name, "/tmp/", 4 << 20)
        .await
        .expect("get directory");
    assert_eq!(dir.stat.name, "tmp");
    assert_eq!(
        dir.stat.mode,
        (1 << 31) | (1 << 20) | 0o777,
        "{:?}",
        dir.stat
    );
    let paths: Vec<String> = tar_entries(&dir.tar).into_iter().map(|(p, _)| p).collect();
    assert!(paths.contains(&"tmp/blob.bin".to_owned()), "{paths:?}");

    // Refused once the tar grows past the limit, whatever its final size.
    let err = rt
        .get_archive(&name, "/tmp/blob.bin", 512 << 10)
        .await
        .expect_err("too large");
    assert!(
        matches!(&err, RuntimeError::Rejected(m) if m.contains("larger than 524288 bytes")),
        "{err:?}"
    );

    let err = rt
        .get_archive(&name, "/no/such/file", 4 << 20)
        .await
        .expect_err("no such path");
    assert!(
        matches!(&err, RuntimeError::NotFound(m) if m.contains("/no/such/file") && m.contains(&name)),
        "{err:?}"
    );
    let missing = format!("zun-{}", new_uuid());
    let err = rt
        .get_archive(&missing, "/tmp", 4 << 20)
        .await
        .expect_err("no container");
    assert!(matches!(err, RuntimeError::NotFound(_)), "{err:?}");
    rt.remove(&name).await.expect("remove");
}

#[tokio::test]
async fn bad_uploads_are_invalid() {
    let rt = runtime().await;
    let mut cleanup = Cleanup::default();
    let name = sleeper(&rt, &mut cleanup).await;
    let tar = tar_of("x.txt", b"x");

    let err = rt
        .put_archive(&name, "/no/such/dir", tar.clone())
        .await
        .expect_err("no such directory");
    assert!(
        matches!(&err, RuntimeError::Invalid(m) if m.contains("/no/such/dir")),
        "{err:?}"
    );
    let err = rt
        .put_archive(&name, "/etc/passwd", tar.clone())
        .await
        .expect_err("not a directory");
    assert!(matches!(err, RuntimeError::Invalid(_)), "{err:?}");
    let garbage = Bytes::from(random_mebibyte());
    let err = rt
        .put_archive(&name, "/tmp", garbage)
        .await
        .expect_err("not a tar");
    assert!(matches!(err, RuntimeError::Invalid(_)), "{err:?}");

    let missing = format!("zun-{}", new_uuid());
    let err = rt
        .put_archive(&missing, "/tmp", tar)
        .await
        .expect_err("no container");
    assert!(matches!(err, RuntimeError::NotFound(_)), "{err:?}");
    rt.remove(&name).await.expect("remove");
}

#[tokio::test]
async fn commit_makes_a_runnable_image() {
    let rt = runtime().await;
    let mut cleanup = Cleanup::default();
    let name = sleeper(&rt, &mut cleanup).await;
    let marker = new_uuid();
    rt.put_archive(&name, "/", tar_of("marker.txt", marker.as_bytes()))
        .await
        .expect("put marker");

    let repository = format!("zun-test-commit-{}", &new_uuid()[..8]);
    let image = cleanup.image(format!("{repository}:v1"));
    let id = rt.commit(&name, &repository, "v1").await.expect("commit");
    assert!(id.starts_with("sha256:"), "{id}");
    // The pause during the commit is undone.
    let seen = rt.inspect(&name).await.expect("inspect").expect("exists");
    assert_eq!(seen.state, EngineState::Running);

    let mut from_image = record(&new_uuid(), &["cat", "/marker.txt"]);
    from_image.image = image;
    let copy = run(&rt, &mut cleanup, &from_image).await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let seen = rt.inspect(&copy).await.expect("inspect").expect("exists");
        if seen.state == EngineState::Exited {
            assert_eq!(seen.exit_code, Some(0), "{seen:?}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "still {seen:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let logs = rt.logs(&copy, &LogOptions::default()).await.expect("logs");
    assert_eq!(logs, marker);

    let err = rt
        .commit(&name, "Not_A_Valid_Repository", "v1")
        .await
        .expect_err("bad repository");
    assert!(matches!(err, RuntimeError::Invalid(_)), "{err:?}");
    let err = rt
        .commit(&name, &repository, "bad:tag")
        .await
        .expect_err("bad tag");
    assert!(matches!(err, RuntimeError::Invalid(_)), "{err:?}");
    // The engine writes an image before it rejects the name: none is left.
    let uuid = name.strip_prefix("zun-").expect("engine name");
    let options = ListImagesOptions {
        all: true,
        filters: Some(HashMap::from([(
            "label".to_owned(),
            vec![format!("zun.uuid={uuid}")],
        )])),
        ..Default::default()
    };
    let images = engine()
        .await
        .list_images(Some(options))
        .await
        .expect("list images");
    let tags: Vec<&Vec<String>> = images.iter().map(|i| &i.repo_tags).collect();
    assert_eq!(tags, [&vec![format!("{repository}:v1")]], "{images:?}");

    let missing = format!("zun-{}", new_uuid());
    let err = rt
        .commit(&missing, &repository, "v2")
        .await
        .expect_err("no container");
    assert!(matches!(err, RuntimeError::NotFound(_)), "{err:?}");
    rt.remove(&copy).await.expect("remove copy");
    rt.remove(&name).await.expect("remove");
}
