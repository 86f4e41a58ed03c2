"""Acceptance-test harness: real `zund` processes, the real Docker engine, the
real `openstack appcontainer` CLI and raw HTTP.

Environment:
  ZUND_BIN                the daemon binary (default target/debug/zund)
  ZUN_TEST_DOCKER_SOCKET  the project's dedicated dockerd (default
                          /run/zun-docker/docker.sock, see scripts/dockerd.sh)
  ZUN_TEST_OPENSTACK      the openstack CLI (default .venv/bin/openstack)
  ZUN_TEST_LOG_DIR        where server logs go (default: pytest's temp dir)
  ZUN_TEST_RUST_LOG       RUST_LOG for the servers (default "info")

Nothing here is skipped: a missing binary, socket or CLI fails the tests.
"""

from __future__ import annotations

import http.client
import json
import itertools
import os
import random
import signal
import socket
import subprocess
import time
import uuid as uuidlib
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
ZUND_BIN = Path(os.environ.get("ZUND_BIN") or ROOT / "target" / "debug" / "zund")
DOCKER_SOCKET = os.environ.get("ZUN_TEST_DOCKER_SOCKET") or "/run/zun-docker/docker.sock"
OPENSTACK = os.environ.get("ZUN_TEST_OPENSTACK") or str(ROOT / ".venv" / "bin" / "openstack")
RUST_LOG = os.environ.get("ZUN_TEST_RUST_LOG") or "info"

# A `[compute]` line for deployments whose tests probe with the test
# image's busybox `ping`, which needs a raw socket (it has no fallback to
# ICMP echo sockets): they keep NET_RAW, which the service drops by
# default. Their spoofing checks are then the stronger: a tenant that can
# forge frames still reaches nothing.
KEEP_NET_RAW = 'drop_capabilities = ["MKNOD", "AUDIT_WRITE", "SETFCAP"]\n'

MIN_VERSION = "1.1"
MAX_VERSION = "1.40"
IMAGE = "busybox"

# How long a server may take to answer `GET /` after it was started.
SERVER_START_TIMEOUT_S = 30
# Default deadline for a container to reach a status after an action.
STATUS_TIMEOUT_S = 30
# One CLI invocation (each one does version discovery plus the request).
CLI_TIMEOUT_S = 60
HTTP_TIMEOUT_S = 30

_ALL_SERVERS: list["ZundProcess"] = []
# Host names of the services this session started (each one unique).
_OUR_HOSTS: set[str] = set()


# --------------------------------------------------------------------------- helpers


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def docker_cmd(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """The docker CLI against the dedicated engine."""
    return subprocess.run(
        ["docker", "-H", f"unix://{DOCKER_SOCKET}", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 30):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)


def engine_api(path: str):
    """GET on the dedicated engine's API (faster than the CLI, for polling)."""
    conn = _UnixHTTPConnection(DOCKER_SOCKET)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read()
        assert resp.status == 200, f"engine GET {path}: {resp.status} {body[:300]!r}"
        return json.loads(body)
    finally:
        conn.close()


def engine_zun_containers(host: str | None = None) -> dict[str, str]:
    """{engine id: name without the leading '/'} of the `zun-` containers in the
    engine; with `host`, only those labelled `zun.host=<host>` (other services,
    a benchmark say, may share the engine)."""
    out = {}
    for c in engine_api("/containers/json?all=1"):
        if host is not None and (c.get("Labels") or {}).get("zun.host") != host:
            continue
        for name in c.get("Names") or []:
            name = name.lstrip("/")
            if name.startswith("zun-"):
                out[c["Id"]] = name
    return out


def docker_inspect(name: str) -> dict | None:
    """`docker inspect` of one engine container, or None when the engine has none."""
    r = docker_cmd("inspect", "--type", "container", name)
    if r.returncode != 0:
        if "No such" in r.stderr or "no such" in r.stderr:
            return None
        raise AssertionError(f"docker inspect {name} failed: {r.stderr}")
    data = json.loads(r.stdout)
    return data[0] if data else None


# 448 pools of /20 in 10.100.0.0-10.127.255.255, below the default pool
# (10.128.0.0/9); each session starts at a random one, so the leftovers of an
# interrupted earlier session are unlikely to share its subnets.
_POOLS = 28 * 16
_pools = itertools.count(random.randrange(_POOLS))


def network_pool() -> str:
    """A pool (/20: sixteen /24 networks) no other zund of this session uses:
    several deployments share this machine's network namespace, and two
    stores handing out the same subnet would share a bridge and addresses."""
    n = next(_pools) % _POOLS
    return f"10.{100 + n // 16}.{(n % 16) * 16}.0/20"


class ZundProcess:
    """One `zund` process with its log file. Processes that run an agent get
    a network pool of their own (ZUN_NETWORK_POOL, /24 subnets) unless
    `network_pool` is given."""

    def __init__(self, role: str, args: list[str], log_path: Path, network_pool: str | None = None):
        self.role = role
        self.args = args
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None
        self.network_pool = network_pool or (globals()["network_pool"]()
                                             if role in ("all-in-one", "compute") else "")
        _ALL_SERVERS.append(self)

    def start(self) -> None:
        env = dict(os.environ)
        env["RUST_LOG"] = RUST_LOG
        env["NO_COLOR"] = "1"
        env.setdefault("RUST_BACKTRACE", "1")
        if self.network_pool:
            env["ZUN_NETWORK_POOL"] = self.network_pool
            env["ZUN_NETWORK_SUBNET_PREFIX"] = "24"
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== start {' '.join(self.args)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [str(ZUND_BIN), *self.args],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )

    def rss_kib(self) -> int:
        """Resident memory of the process (VmRSS), in KiB."""
        assert self.proc is not None
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError(f"no VmRSS for pid {self.proc.pid}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL, no chance to clean up."""
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self, timeout: float = 15) -> int | None:
        """SIGTERM, then SIGKILL after `timeout`. Returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGKILL)
                self.proc.wait(timeout=10)
        return self.proc.returncode

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


class ContainerWaits:
    """Polling helpers for any client class with `get(ident)` returning the
    `GET /v1/containers/<ident>` response."""

    def wait_status(self, ident: str, statuses, timeout: float = STATUS_TIMEOUT_S) -> dict:
        """Polls GET /v1/containers/<ident> until its status is one of `statuses`.
        Fails early when it lands in Error and Error was not asked for."""
        if isinstance(statuses, str):
            statuses = {statuses}
        statuses = set(statuses)
        deadline = time.monotonic() + timeout
        last = None
        while True:
            r = self.get(ident)
            if r.status_code == 200:
                last = r.json()
                if last.get("status") in statuses:
                    return last
                if last.get("status") == "Error" and "Error" not in statuses:
                    pytest.fail(f"container {ident} went to Error while waiting for "
                                f"{sorted(statuses)}: {last.get('status_reason')!r}; view: {last}")
            else:
                last = f"{r.status_code} {r.text}"
            if time.monotonic() > deadline:
                pytest.fail(f"container {ident} not in {sorted(statuses)} after {timeout}s; "
                            f"last: {last}")
            time.sleep(0.2)

    def wait_gone(self, ident: str, timeout: float = STATUS_TIMEOUT_S) -> None:
        """Polls until GET answers 404."""
        deadline = time.monotonic() + timeout
        while True:
            r = self.get(ident)
            if r.status_code == 404:
                return
            if time.monotonic() > deadline:
                pytest.fail(f"container {ident} still there after {timeout}s: "
                            f"{r.status_code} {r.text}")
            time.sleep(0.2)


class Zun(ContainerWaits):
    """What a test gets: one running service (all-in-one, or api + compute)."""

    def __init__(self, port: int, data_dir: Path, log_dir: Path, host_name: str,
                 project_id: str, user_id: str, roles: str):
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        self.data_dir = data_dir
        self.log_dir = log_dir
        self.host_name = host_name
        self.project_id = project_id
        self.user_id = user_id
        self.roles = roles
        self.docker_socket = DOCKER_SOCKET
        # A zund TOML configuration file, passed as --config when set.
        self.config_file: Path | None = None
        self.session = requests.Session()
        self.processes: list[ZundProcess] = []

    # ------------------------------------------------------------------ HTTP
    def http(self, method: str, path: str, version: str | None = None, json=None,
             params=None, headers: dict | None = None, data=None,
             timeout: float = HTTP_TIMEOUT_S) -> requests.Response:
        """One request. `version` is the X.Y (or 'latest', or any raw text) put in
        `OpenStack-API-Version: container <version>`; None sends no header."""
        hdrs = {"Accept": "application/json"}
        if version is not None:
            hdrs["OpenStack-API-Version"] = f"container {version}"
        if headers:
            hdrs.update(headers)
        url = path if path.startswith("http") else self.base_url + path
        return self.session.request(method, url, json=json, params=params, headers=hdrs,
                                    data=data, timeout=timeout)

    def create(self, body: dict, run: bool = False, version: str = MAX_VERSION) -> dict:
        """POST /v1/containers, asserting 202; returns the view."""
        body = dict(body)
        body.setdefault("image", IMAGE)
        r = self.http("POST", "/v1/containers", version=version, json=body,
                      params={"run": "true"} if run else None)
        assert r.status_code == 202, f"create {body} -> {r.status_code} {r.text}"
        return r.json()

    def get(self, ident: str, version: str = MAX_VERSION) -> requests.Response:
        return self.http("GET", f"/v1/containers/{ident}", version=version)

    def list_all(self, version: str = MAX_VERSION, **params) -> list[dict]:
        r = self.http("GET", "/v1/containers", version=version, params=params or None)
        assert r.status_code == 200, f"list -> {r.status_code} {r.text}"
        return r.json()["containers"]

    # ------------------------------------------------------------------ CLIs
    def openstack(self, *args: str, timeout: float = CLI_TIMEOUT_S) -> tuple[int, str, str]:
        """The real `openstack` CLI, pointed at this service without Keystone."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
        env["OS_AUTH_TYPE"] = "none"
        env["OS_ENDPOINT"] = f"{self.base_url}/v1"
        r = subprocess.run(
            [OPENSTACK, "--os-auth-type", "none", "--os-endpoint", f"{self.base_url}/v1", *args],
            capture_output=True, text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL,
        )
        return r.returncode, r.stdout, r.stderr

    def openstack_json(self, *args: str):
        """Runs the CLI with `-f json` appended to the sub-command's options
        (callers put it before positional REMAINDER args themselves when needed)."""
        rc, out, err = self.openstack(*args)
        assert rc == 0, f"openstack {' '.join(args)} -> rc {rc}\nstdout: {out}\nstderr: {err}"
        try:
            return json.loads(out)
        except ValueError:
            raise AssertionError(f"openstack {' '.join(args)} printed no JSON: {out!r} {err!r}")

    def docker(self, *args: str, timeout: float = 60) -> tuple[int, str, str]:
        r = docker_cmd(*args, timeout=timeout)
        return r.returncode, r.stdout, r.stderr

    def inspect(self, container_uuid: str) -> dict | None:
        return docker_inspect(f"zun-{container_uuid}")

    # ------------------------------------------------------------------ lifecycle
    def wait_ready(self, timeout: float = SERVER_START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            for p in self.processes:
                if p.proc is not None and not p.alive():
                    pytest.fail(f"zund {p.role} exited with {p.proc.returncode} during start-up; "
                                f"log {p.log_path}:\n{p.log_tail()}")
            try:
                r = self.session.get(self.base_url + "/", timeout=2)
                if r.status_code == 200:
                    return
                last = f"{r.status_code} {r.text[:200]}"
            except requests.RequestException as e:
                last = repr(e)
            time.sleep(0.1)
        pytest.fail(f"zund did not answer GET / on {self.base_url} in {timeout}s ({last}); "
                    + "; ".join(f"{p.role} log:\n{p.log_tail()}" for p in self.processes))

    def stop(self) -> None:
        for p in reversed(self.processes):
            p.stop()
        self.session.close()


class ZunAllInOne(Zun):
    def start(self) -> "ZunAllInOne":
        args = ["--config", str(self.config_file)] if self.config_file else []
        args += [
            "all-in-one",
            "--listen", f"127.0.0.1:{self.port}",
            "--data-dir", str(self.data_dir),
            "--docker-socket", DOCKER_SOCKET,
            "--host-name", self.host_name,
            "--project-id", self.project_id,
            "--user-id", self.user_id,
            "--roles", self.roles,
        ]
        p = ZundProcess("all-in-one", args, self.log_dir / f"zund-{self.host_name}.log")
        self.processes.append(p)
        p.start()
        self.wait_ready()
        return self


class ZunSplit(Zun):
    """`zund api` and `zund compute` as two processes on one data dir, so a
    test can kill and restart the agent alone."""

    def start(self, together: bool = False) -> "ZunSplit":
        """`together`: start both processes at once, as an operator might."""
        config = ["--config", str(self.config_file)] if self.config_file else []
        self.api = ZundProcess("api", [
            *config,
            "api",
            "--listen", f"127.0.0.1:{self.port}",
            "--data-dir", str(self.data_dir),
            "--project-id", self.project_id,
            "--user-id", self.user_id,
            "--roles", self.roles,
        ], self.log_dir / f"zund-{self.host_name}-api.log")
        self.compute = ZundProcess("compute", [
            *config,
            "compute",
            "--data-dir", str(self.data_dir),
            "--docker-socket", DOCKER_SOCKET,
            "--host-name", self.host_name,
        ], self.log_dir / f"zund-{self.host_name}-compute.log")
        self.processes += [self.api, self.compute]
        if together:
            self.api.start()
            self.compute.start()
            self.wait_ready()
        else:
            # The API first (it migrates the store), the agent once it answers.
            self.api.start()
            self.wait_ready()
            self.compute.start()
        self.assert_alive(settle=1.0)
        self.wait_host_registered()
        return self

    def wait_host_registered(self, timeout: float = SERVER_START_TIMEOUT_S) -> None:
        """Until the agent's compute service is up (the scheduler places
        containers only on registered hosts)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = self.http("GET", "/v1/services", version=MAX_VERSION)
            if r.status_code == 200 and any(
                    s["host"] == self.host_name and s["state"] == "up"
                    for s in r.json()["services"]):
                return
            time.sleep(0.1)
        pytest.fail(f"compute host {self.host_name} did not register in {timeout}s; "
                    f"compute log:\n{self.compute.log_tail()}")

    def assert_alive(self, settle: float = 0.0) -> None:
        """Both processes still running (after `settle` seconds)."""
        time.sleep(settle)
        for p in (self.api, self.compute):
            assert p.alive(), (f"zund {p.role} exited with {p.proc.returncode}; "
                               f"log {p.log_path}:\n{p.log_tail()}")

    def kill_compute(self) -> None:
        self.compute.kill()

    def restart_compute(self) -> None:
        self.compute.stop()
        self.compute.start()
        self.assert_alive(settle=0.5)


# --------------------------------------------------------------------------- fixtures


def _check_prerequisites() -> None:
    problems = []
    if not ZUND_BIN.is_file() or not os.access(ZUND_BIN, os.X_OK):
        problems.append(f"zund binary {ZUND_BIN} missing (set ZUND_BIN or cargo build)")
    if not Path(DOCKER_SOCKET).is_socket():
        problems.append(f"docker socket {DOCKER_SOCKET} missing (bash scripts/dockerd.sh start)")
    else:
        r = docker_cmd("image", "inspect", f"{IMAGE}:latest")
        if r.returncode != 0:
            problems.append(f"image {IMAGE}:latest missing in {DOCKER_SOCKET}: {r.stderr.strip()}")
    if not os.access(OPENSTACK, os.X_OK):
        problems.append(f"openstack CLI {OPENSTACK} missing (bash scripts/setup.sh)")
    if problems:
        pytest.fail("acceptance prerequisites missing:\n  " + "\n  ".join(problems))


@pytest.fixture(scope="session")
def log_dir(tmp_path_factory) -> Path:
    d = os.environ.get("ZUN_TEST_LOG_DIR")
    if d:
        path = Path(d)
        path.mkdir(parents=True, exist_ok=True)
        return path
    return tmp_path_factory.mktemp("logs")


@pytest.fixture(scope="session")
def engine_cleanup(tmp_path_factory):
    """Checks the prerequisites; when the session ends, removes from the engine
    whatever `zun-` containers the session's services left (found by their
    `zun.host` label, so a service sharing the engine keeps its own) with
    their network namespaces, and
    unmounts the local volumes left mounted under the session's data dirs
    (volumes stay mounted across agent restarts by design; a failed test
    may leave some)."""
    _check_prerequisites()
    yield
    leftover = {cid: name for host in sorted(_OUR_HOSTS)
                for cid, name in engine_zun_containers(host).items()}
    if leftover:
        docker_cmd("rm", "-f", *leftover, timeout=120)
    # Their network namespaces too (with them their veths): a later
    # session given the same pool would find them on its bridges, with the
    # same MAC and address as its own containers.
    for name in leftover.values():
        subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)
    base = str(tmp_path_factory.getbasetemp())
    with open("/proc/self/mountinfo") as table:
        points = [line.split(" ")[4] for line in table]
    for point in points:
        if point.startswith(base + "/"):
            subprocess.run(["umount", "-l", point], check=False)


def _make(cls, tmp_path_factory, log_dir, prefix: str, roles: str = "admin"):
    host = f"{prefix}-{uuidlib.uuid4().hex[:8]}"
    _OUR_HOSTS.add(host)
    z = cls(
        port=free_port(),
        data_dir=tmp_path_factory.mktemp(f"data-{host}"),
        log_dir=log_dir,
        host_name=host,
        project_id=uuidlib.uuid4().hex,
        user_id=uuidlib.uuid4().hex,
        roles=roles,
    )
    _SERVICES.append(z)
    return z


@pytest.fixture(scope="session")
def zun(engine_cleanup, tmp_path_factory, log_dir):
    """`zund all-in-one` as an admin of one project, for the whole session."""
    z = _make(ZunAllInOne, tmp_path_factory, log_dir, "aio")
    try:
        z.start()
        yield z
    finally:
        z.stop()


# Every service a test has made, in the order made (see `_make`).
_SERVICES: list = []


def _container_uuids(z) -> set[str] | None:
    """The containers a service shows its caller, or None when it does not
    answer (stopped, restarting)."""
    if not any(p.alive() for p in z.processes):
        return None
    try:
        r = z.http("GET", "/v1/containers", version=MAX_VERSION, timeout=10)
    except requests.RequestException:
        return None
    if r.status_code != 200:
        return None
    return {c["uuid"] for c in r.json()["containers"]}


def _snapshot() -> dict[int, set[str]]:
    return {id(z): uuids for z in _SERVICES if (uuids := _container_uuids(z)) is not None}


def _delete_made_since(before: dict[int, set[str]]) -> None:
    for z in _SERVICES:
        after = _container_uuids(z)
        if after is None:
            continue
        for uuid in sorted(after - before.get(id(z), set())):
            try:
                z.http("DELETE", f"/v1/containers/{uuid}", version=MAX_VERSION,
                       params={"force": "true", "stop": "true"}, timeout=10)
            except requests.RequestException:
                break


@pytest.fixture(scope="module", autouse=True)
def _modules_leave_the_services_as_they_found_them():
    """Deletes the containers a test file made and left, on every service
    still running: the session's all-in-one serves many files under one
    project quota (20 CPUs by upstream's default), which leftovers would use
    up for the files after."""
    before = _snapshot()
    yield
    _delete_made_since(before)


@pytest.fixture(autouse=True)
def _tests_leave_the_services_as_they_found_them():
    """The same per test, so that one file's tests do not add up either."""
    before = _snapshot()
    yield
    _delete_made_since(before)


@pytest.fixture(scope="session")
def zun_member(engine_cleanup, tmp_path_factory, log_dir):
    """A second all-in-one whose caller has only the `member` role."""
    z = _make(ZunAllInOne, tmp_path_factory, log_dir, "member", roles="member")
    try:
        z.start()
        yield z
    finally:
        z.stop()


@pytest.fixture
def zun_split(engine_cleanup, tmp_path_factory, log_dir):
    """`zund api` + `zund compute` on one data dir (fresh for each test)."""
    z = _make(ZunSplit, tmp_path_factory, log_dir, "split")
    try:
        z.start()
        yield z
    finally:
        z.stop()


@pytest.fixture
def make_split(engine_cleanup, tmp_path_factory, log_dir):
    """A factory of not-yet-started ZunSplit services; all stopped at the end."""
    made = []

    def factory() -> ZunSplit:
        z = _make(ZunSplit, tmp_path_factory, log_dir, "split")
        made.append(z)
        return z

    yield factory
    for z in made:
        z.stop()


# --------------------------------------------------------------------------- reporting


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """On failure, show where the server logs are and their last lines."""
    if exitstatus == 0 or not _ALL_SERVERS:
        return
    terminalreporter.section("zund logs (last lines)")
    for p in _ALL_SERVERS:
        terminalreporter.write_line(f"--- {p.role}: {p.log_path}")
        terminalreporter.write_line(p.log_tail(25))
