"""Interactive and streaming actions (issue 4) through the real
`openstack appcontainer` CLI and raw HTTP/websocket, against `zund all-in-one`
on the real Docker engine: exec (plain and --interactive under a
pseudo-terminal), attach, cp both ways, top, stats, commit, and the
websocket's single-use, expiring, container-bound tokens and origin check.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import pty
import select
import struct
import subprocess
import termios
import time
import uuid as uuidlib

import pytest
import websocket  # websocket-client, the library python-zunclient uses

from conftest import MAX_VERSION, OPENSTACK, ZunAllInOne, _make

MiB = 1024 * 1024
SLEEPER = ["/bin/sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]


def suffix() -> str:
    return uuidlib.uuid4().hex[:6]


@pytest.fixture(scope="module")
def zun(engine_cleanup, tmp_path_factory, log_dir):
    """This module's own all-in-one (the session's one carries other modules'
    containers and quota settings)."""
    z = _make(ZunAllInOne, tmp_path_factory, log_dir, "streams")
    try:
        z.start()
        yield z
    finally:
        z.stop()


@pytest.fixture(scope="module")
def box(zun):
    """A running container with a memory limit, for exec, cp, top and stats."""
    name = f"box-{suffix()}"
    c = zun.create({"name": name, "command": SLEEPER, "memory": "128"}, run=True)
    zun.wait_status(c["uuid"], "Running")
    return {"uuid": c["uuid"], "name": name}


@pytest.fixture(scope="module")
def console(zun):
    """A running interactive container (stdin open, tty) whose main process is a shell."""
    # Created over HTTP: `appcontainer run --interactive` would attach at once.
    name = f"console-{suffix()}"
    c = zun.create({"name": name, "command": ["/bin/sh"], "interactive": True, "tty": True},
                   run=True)
    zun.wait_status(c["uuid"], "Running")
    return {"uuid": c["uuid"], "name": name}


# --------------------------------------------------------------------------- a pty


class Terminal:
    """A command run on a pseudo-terminal, as a user at a shell runs it."""

    def __init__(self, argv: list[str], env: dict[str, str], rows: int = 24, cols: int = 80):
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env,
                                     start_new_session=True)
        os.close(slave)
        self.seen = b""

    def read_until(self, needle: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while needle.encode() not in self.seen:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"did not see {needle!r} within {timeout}s; "
                                     f"terminal shows:\n{self.text()}")
            ready, _, _ = select.select([self.master], [], [], min(left, 0.5))
            if ready:
                try:
                    chunk = os.read(self.master, 65536)
                except OSError:  # the command exited and closed the pty
                    chunk = b""
                if not chunk and self.proc.poll() is not None:
                    raise AssertionError(f"command exited ({self.proc.returncode}) before "
                                         f"{needle!r}; terminal shows:\n{self.text()}")
                self.seen += chunk
        return self.text()

    def type(self, text: str, pause: float = 0.3) -> None:
        os.write(self.master, text.encode())
        time.sleep(pause)

    def wait(self, timeout: float = 30) -> int:
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"command still running after {timeout}s; "
                                     f"terminal shows:\n{self.text()}")
            ready, _, _ = select.select([self.master], [], [], 0.2)
            if ready:
                try:
                    self.seen += os.read(self.master, 65536)
                except OSError:
                    pass
        return self.proc.returncode

    def text(self) -> str:
        return self.seen.decode(errors="replace")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)


def cli_env(zun) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env.update(OS_AUTH_TYPE="none", OS_ENDPOINT=f"{zun.base_url}/v1", TERM="xterm")
    return env


def cli_on_pty(zun, *args: str) -> Terminal:
    return Terminal([OPENSTACK, *args], cli_env(zun))


# --------------------------------------------------------------------------- exec


def test_exec_prints_output_and_returns_the_exit_code(zun, box):
    rc, out, err = zun.openstack("appcontainer", "exec", box["name"], "echo", "hello", "world")
    assert rc == 0, err
    assert out.strip() == "hello world"
    rc, out, err = zun.openstack("appcontainer", "exec", box["name"],
                                 "sh", "-c", "echo to-stderr >&2; exit 3")
    assert rc == 3, (out, err)
    assert "to-stderr" in out


def test_exec_http_body_and_errors(zun, box):
    r = zun.http("POST", f"/v1/containers/{box['uuid']}/execute", version=MAX_VERSION,
                 params={"command": "sh -c 'echo a b; exit 7'"})
    assert r.status_code == 200, r.text
    assert r.json() == {"output": "a b\n", "exit_code": 7, "exec_id": None, "proxy_url": None}
    # Missing or unusable command: 400 with upstream's body, not upstream's 500.
    for params in ({}, {"command": ""}, {"command": "echo 'open"}):
        r = zun.http("POST", f"/v1/containers/{box['uuid']}/execute", version=MAX_VERSION,
                     params=params)
        assert r.status_code == 400, (params, r.text)
        assert r.json()["errors"][0]["status"] == 400
    r = zun.http("POST", f"/v1/containers/{box['uuid']}/execute_resize", version=MAX_VERSION,
                 params={"exec_id": "nothex", "h": "10", "w": "10"})
    assert r.status_code == 400


def test_exec_interactive_under_a_pty(zun, box):
    term = cli_on_pty(zun, "appcontainer", "exec", "--interactive", box["name"], "/bin/sh")
    try:
        term.read_until("connected to")
        term.type("\r")
        term.type("echo answer-$((6*7))\r")
        term.read_until("answer-42")
        term.type("stty size\r")
        term.read_until("24 80")  # the CLI sent the pty's size through execute_resize
        term.type("exit\r")
        assert term.wait() == 0, term.text()
    finally:
        term.close()


def test_exec_on_a_stopped_container_is_a_409(zun):
    c = zun.create({"name": f"stopped-{suffix()}", "command": ["true"]}, run=True)
    zun.wait_status(c["uuid"], "Stopped")
    r = zun.http("POST", f"/v1/containers/{c['uuid']}/execute", version=MAX_VERSION,
                 params={"command": "echo hi"})
    assert r.status_code == 409
    assert r.json()["errors"][0]["detail"] == \
        f"Cannot execute container {c['uuid']} in Stopped state"
    zun.http("DELETE", f"/v1/containers/{c['uuid']}", version=MAX_VERSION)


# --------------------------------------------------------------------------- attach


def test_attach_under_a_pty_and_leaving_keeps_it_running(zun, console):
    term = cli_on_pty(zun, "appcontainer", "attach", console["name"])
    try:
        term.read_until("connected to")
        term.type("\r")
        term.type("echo attached-$((2*3))\r")
        term.read_until("attached-6")
    finally:
        # The client's `~.` escape compares bytes with a str under Python 3
        # and never fires (python-zunclient 5.4.0), so the user closes the
        # terminal instead: the websocket drops, the container must not care.
        term.close()
    time.sleep(1)
    assert zun.get(console["uuid"]).json()["status"] == "Running"
    # The same shell answers a new attach.
    url = zun.http("GET", f"/v1/containers/{console['uuid']}/attach", version=MAX_VERSION).json()
    ws = connect(url)
    try:
        ws.send_binary(b"echo again-$((3+4))\n")
        seen = b""
        while b"again-7" not in seen:
            seen += ws.recv()
    finally:
        ws.close()


def test_attach_needs_an_interactive_container(zun, box):
    r = zun.http("GET", f"/v1/containers/{box['uuid']}/attach", version=MAX_VERSION)
    assert r.status_code == 400
    assert r.json()["errors"][0]["code"] == "container.no-interactive-flag"


# --------------------------------------------------------------------------- cp


def test_cp_random_bytes_in_and_out(zun, box, tmp_path):
    payload = os.urandom(MiB)
    src = tmp_path / "blob.bin"
    src.write_bytes(payload)
    rc, out, err = zun.openstack("appcontainer", "cp", str(src), f"{box['name']}:/tmp")
    assert rc == 0, (out, err)
    # The file really is in the container.
    r = zun.http("POST", f"/v1/containers/{box['uuid']}/execute", version=MAX_VERSION,
                 params={"command": "sha256sum /tmp/blob.bin"})
    assert r.json()["output"].split()[0] == hashlib.sha256(payload).hexdigest()

    back = tmp_path / "back"
    back.mkdir()
    rc, out, err = zun.openstack("appcontainer", "cp", f"{box['name']}:/tmp/blob.bin", str(back))
    assert rc == 0, (out, err)
    assert hashlib.sha256((back / "blob.bin").read_bytes()).hexdigest() == \
        hashlib.sha256(payload).hexdigest()


def test_get_archive_stat_and_errors(zun, box):
    r = zun.http("GET", f"/v1/containers/{box['uuid']}/get_archive", version=MAX_VERSION,
                 params={"path": "/etc"})
    assert r.status_code == 200, r.text
    stat = r.json()["stat"]
    assert stat["name"] == "etc"
    assert stat["mode"] & (1 << 31), stat  # Go's ModeDir, as Docker reports it
    assert set(stat) == {"name", "size", "mode", "mtime", "linkTarget"}
    r = zun.http("GET", f"/v1/containers/{box['uuid']}/get_archive", version=MAX_VERSION,
                 params={"path": "/no/such/file"})
    assert r.status_code == 404, r.text
    r = zun.http("GET", f"/v1/containers/{box['uuid']}/get_archive", version=MAX_VERSION)
    assert r.status_code == 400
    r = zun.http("POST", f"/v1/containers/{box['uuid']}/put_archive", version=MAX_VERSION,
                 params={"path": "/tmp"}, json={"data": "%%% not base64 %%%"})
    assert r.status_code == 400
    assert r.json()["errors"][0]["code"] == "container.base-64-exception"


# --------------------------------------------------------------------------- top, stats


def test_top_has_dockers_columns(zun, box):
    r = zun.http("GET", f"/v1/containers/{box['uuid']}/top", version=MAX_VERSION)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"Titles", "Processes"}
    assert "PID" in body["Titles"] and "CMD" in body["Titles"]
    assert any("sleep" in " ".join(p) or "sh -c" in " ".join(p) for p in body["Processes"])
    r = zun.http("GET", f"/v1/containers/{box['uuid']}/top", version=MAX_VERSION,
                 params={"ps_args": "-o pid,comm"})
    assert r.status_code == 200, r.text
    assert r.json()["Titles"] == ["PID", "COMMAND"]


def test_stats_prints_upstreams_columns(zun, box):
    data = zun.openstack_json("appcontainer", "stats", "-f", "json", box["name"])
    assert set(data) == {"CONTAINER", "CPU %", "MEM USAGE(MiB)", "MEM LIMIT(MiB)", "MEM %",
                         "BLOCK I/O(B)", "NET I/O(B)"}
    assert data["CONTAINER"] == box["name"]
    assert data["MEM LIMIT(MiB)"] == 128
    assert 0 < data["MEM USAGE(MiB)"] < 128


# --------------------------------------------------------------------------- commit


def test_commit_then_run_the_new_image(zun, box):
    repo = f"committed-{suffix()}"
    zun.http("POST", f"/v1/containers/{box['uuid']}/execute", version=MAX_VERSION,
             params={"command": "sh -c 'echo from-the-commit > /marker'"})
    rc, out, err = zun.openstack("appcontainer", "commit", box["name"], f"{repo}:v1")
    assert rc == 0, err
    assert "Request to commit container" in out and "The image is" in out, out
    image_uuid = out.strip().rsplit(" ", 1)[-1].rstrip(".")
    uuidlib.UUID(image_uuid)
    # Listed among the host's images, as a pulled one would be.
    listed = zun.openstack_json("appcontainer", "image", "show", "-f", "json", image_uuid)
    assert listed["repo"] == repo and listed["tag"] == "v1", listed
    assert listed["image_id"].startswith("sha256:"), listed
    assert listed["host"] == zun.host_name, listed
    try:
        name = f"from-commit-{suffix()}"
        data = zun.openstack_json("appcontainer", "run", "-f", "json", "--name", name,
                                  f"{repo}:v1", "cat", "/marker")
        zun.wait_status(data["uuid"], "Stopped")
        rc, out, err = zun.openstack("appcontainer", "logs", name)
        assert "from-the-commit" in out, (out, err)
        zun.openstack("appcontainer", "delete", name)
        zun.wait_gone(data["uuid"])
    finally:
        zun.docker("rmi", "-f", f"{repo}:v1")
    # The repository must be in the query string, as upstream's schema says.
    r = zun.http("POST", f"/v1/containers/{box['uuid']}/commit", version=MAX_VERSION,
                 json={"repository": repo})
    assert r.status_code == 400


# --------------------------------------------------------------------------- websocket tokens


def exec_url(zun, uuid: str, command: str = "/bin/sh") -> tuple[str, str]:
    r = zun.http("POST", f"/v1/containers/{uuid}/execute", version=MAX_VERSION,
                 params={"command": command, "run": "false", "interactive": "true"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["output"] is None and body["exit_code"] is None
    assert len(body["exec_id"]) == 64
    return body["proxy_url"], body["exec_id"]


def connect(url: str, origin: str | None = None) -> websocket.WebSocket:
    kwargs = {"subprotocols": ["binary", "base64"], "timeout": 10}
    if origin is not None:
        kwargs["origin"] = origin
    return websocket.create_connection(url, **kwargs)


def refused(url: str, origin: str | None = None) -> int:
    with pytest.raises(websocket.WebSocketBadStatusException) as caught:
        connect(url, origin).close()
    return caught.value.status_code


def test_exec_websocket_round_trip(zun, box):
    url, _ = exec_url(zun, box["uuid"])
    assert url.startswith(f"ws://127.0.0.1:{zun.port}/websocket?token=")
    ws = connect(url)
    try:
        assert ws.getsubprotocol() == "binary"
        ws.send_binary(b"echo over-$((1+1))-ws\n")
        seen = b""
        while b"over-2-ws" not in seen:
            seen += ws.recv()
        ws.send_binary(b"exit\n")
        # The shell exits, and the service closes the websocket.
        with pytest.raises(websocket.WebSocketConnectionClosedException):
            while True:
                ws.recv()
    finally:
        ws.close()


def test_token_is_single_use(zun, box):
    url, _ = exec_url(zun, box["uuid"], "true")
    connect(url).close()
    assert refused(url) == 403


def test_token_is_bound_to_its_container_and_exec(zun, box, console):
    url, exec_id = exec_url(zun, box["uuid"], "true")
    assert refused(url.replace(box["uuid"], console["uuid"])) == 403
    url, exec_id = exec_url(zun, box["uuid"], "true")
    assert refused(url.replace(exec_id, "0" * 64)) == 403
    # An attach token is not an exec token.
    attach_url = zun.http("GET", f"/v1/containers/{console['uuid']}/attach",
                          version=MAX_VERSION).json()
    assert refused(attach_url + f"&exec_id={exec_id}") == 403
    assert refused(f"ws://127.0.0.1:{zun.port}/websocket?token={uuidlib.uuid4()}"
                   f"&uuid={box['uuid']}") == 403


def test_origin_must_be_the_service_or_allowed(zun, box):
    url, _ = exec_url(zun, box["uuid"], "true")
    assert refused(url, origin="http://evil.example.com") == 403
    url, _ = exec_url(zun, box["uuid"], "true")
    connect(url, origin=f"http://127.0.0.1:{zun.port}").close()


@pytest.fixture(scope="module")
def zun_short_tokens(engine_cleanup, tmp_path_factory, log_dir):
    """An all-in-one whose websocket tokens live one second, and which
    allows pages from console.example.com."""
    z = _make(ZunAllInOne, tmp_path_factory, log_dir, "ws")
    config = z.data_dir / "zund.toml"
    config.write_text('[websocket]\ntoken_ttl_seconds = 1\n'
                      'allowed_origins = ["console.example.com"]\n')
    z.config_file = config
    try:
        z.start()
        yield z
    finally:
        z.stop()


def test_expired_token_is_refused_and_allowed_origins_work(zun_short_tokens):
    z = zun_short_tokens
    c = z.create({"name": f"ttl-{suffix()}", "command": SLEEPER}, run=True)
    z.wait_status(c["uuid"], "Running")
    try:
        url, _ = exec_url(z, c["uuid"], "true")
        connect(url, origin="http://console.example.com").close()
        url, _ = exec_url(z, c["uuid"], "true")
        time.sleep(2.5)
        assert refused(url) == 403
    finally:
        z.http("DELETE", f"/v1/containers/{c['uuid']}", version=MAX_VERSION,
               params={"force": "true"})


# --------------------------------------------------------------------------- memory


def zund_rss_mib(zun) -> float:
    return zun.processes[0].rss_kib() / 1024


def test_100_mib_of_exec_output_keeps_memory_bounded(zun, box):
    before = zund_rss_mib(zun)
    command = "sh -c 'dd if=/dev/zero bs=1048576 count=100 2>/dev/null | tr \"\\0\" x'"
    r = zun.http("POST", f"/v1/containers/{box['uuid']}/execute", version=MAX_VERSION,
                 params={"command": command}, timeout=120)
    assert r.status_code == 200, r.text[:500]
    output = r.json()["output"]
    # The end of the output, and how much was left out.
    assert output.startswith(f"[{100 * MiB - MiB} bytes of earlier output omitted]\n")
    assert output.endswith("x" * 1000)
    after = zund_rss_mib(zun)
    print(f"zund RSS {before:.1f} MiB before, {after:.1f} MiB after 100 MiB of exec output")
    assert after - before < 32, f"RSS grew from {before:.1f} MiB to {after:.1f} MiB"


def test_slow_websocket_client_does_not_grow_the_service(zun, box):
    before = zund_rss_mib(zun)
    url, _ = exec_url(zun, box["uuid"], "sh -c 'dd if=/dev/zero bs=1048576 count=100 | tr \"\\0\" x'")
    ws = connect(url)
    ws.sock.setsockopt(__import__("socket").SOL_SOCKET, __import__("socket").SO_RCVBUF, 65536)
    received = 0
    try:
        # Read a little, slowly: the process must be held back, not buffered.
        for _ in range(20):
            received += len(ws.recv())
            time.sleep(0.1)
        during = zund_rss_mib(zun)
        print(f"zund RSS {before:.1f} MiB before, {during:.1f} MiB with a slow reader "
              f"({received} bytes read)")
        assert received < 50 * MiB
        assert during - before < 32, f"RSS grew from {before:.1f} MiB to {during:.1f} MiB"
    finally:
        ws.close()
    # Closing the client ends the exec: no dd left writing into the void.
    deadline = time.monotonic() + 20
    while True:
        top = zun.http("GET", f"/v1/containers/{box['uuid']}/top", version=MAX_VERSION).json()
        if not any("dd" in " ".join(p).split() for p in top["Processes"]):
            break
        assert time.monotonic() < deadline, f"exec still running after the client left: {top}"
        time.sleep(0.5)
